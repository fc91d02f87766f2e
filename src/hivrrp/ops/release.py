"""`hivrrp release`: the VIPs (and VMACs) a dead daemon left on the interfaces, removed.

A daemon that exits cleanly removes its VIPs. One that is SIGKILLed, killed by
systemd's watchdog or crashes cannot: its VIPs stay on the interfaces, answer
ARP and traffic, and a routing daemon that announces connected routes (the BGP
recipe in conf/frr/) goes on announcing them until something removes them. The
next `hivrrp run` does so at start; this is that same step on its own, for
systemd's ExecStopPost= (which runs after any stop, crashes included) and for
an operator who will not restart the daemon. The no_accept firewall's tables
such a daemon left go too, whatever the name it gave them (they would drop
the VIPs' traffic on whichever router holds them next: here, after a restart
with accept); a table of the configured name hivrrp did not make stays.
"""

from __future__ import annotations

import asyncio
import logging

from hivrrp.config.model import Config
from hivrrp.daemon.driver import now_us
from hivrrp.daemon.plan import build
from hivrrp.kernel.firewall import Firewall, FirewallError, names
from hivrrp.kernel.firewall_policy import Settings
from hivrrp.kernel.netlink import Netlink
from hivrrp.kernel.vipqueue import remove_leftovers
from hivrrp.kernel.vmac import VmacManager

log = logging.getLogger("hivrrp")


async def release(config: Config) -> tuple[int, list[str], str | None, list[str]]:
    """Remove every VIP of `config` found on its interface, then the no_accept
    tables: (VIPs found, the kernel's reasons for those not removed, why the
    tables were not removed or None, the VMACs not deleted with the reasons).

    The caller holds the daemon locks: a running daemon's VIPs are not leftovers."""
    netlink = Netlink()
    vmacs = VmacManager(netlink)
    try:
        await netlink.start()
        # Its VMACs first, and the VIPs on them with them; the sysctls it
        # changed put back from the file it kept their own values in.
        vmac_failures = await vmacs.release(config)
        links = await netlink.links()
        addresses = await netlink.addresses()
        # The same plan `run` would build, so the same VIPs on the same
        # interfaces (a VIP's own `dev`, eVIPs) count as this configuration's.
        # Quiet: a missing interface or source address is no news at a stop,
        # and would read in the journal as if the daemon had faulted.
        plan = await asyncio.to_thread(build, config, links, addresses,
                                       now_us(asyncio.get_running_loop()), True)
        found, failures = await remove_leftovers(netlink.apply, plan, addresses)
        # After the VIPs: none is up unfiltered meanwhile.
        table_error = await asyncio.to_thread(remove_tables, Settings.of(config.global_defs))
        return found, failures, table_error, vmac_failures
    finally:
        await vmacs.close()
        netlink.close()


def remove_tables(settings: Settings) -> str | None:
    """The no_accept tables a dead daemon left (hivrrp's mark, whatever their
    name), removed; the reason if not."""
    firewall = Firewall(settings)
    try:
        removed = firewall.remove_leftovers()
    except (OSError, FirewallError) as exc:
        log.error("cannot remove the nftables tables left over: %s", exc)
        return str(exc)
    finally:
        firewall.close()
    if removed:
        log.info("removed the nftables table %s left over", names(removed))
    return None
