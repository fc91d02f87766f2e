"""Plans built from config text against invented links and addresses: the
daemon's policy tested without root, sockets or a kernel."""

from __future__ import annotations

from pathlib import Path

from helpers.conf import load_text
from hivrrp.daemon.plan import Plan, build
from hivrrp.kernel.netlink import Address, Link

LINKS = {"eth0": Link(2, "eth0", bytes.fromhex("020000000001"), True),
         "eth1": Link(3, "eth1", bytes.fromhex("020000000002"), True)}
ADDRESSES = [Address(2, 4, "192.0.2.1", 24, 0), Address(3, 4, "198.51.100.1", 24, 0)]


def instance_text(name: str, vrid: int, vips: list[str], *, interface: str = "eth0",
                  priority: int = 100, extra: str = "") -> str:
    addresses = "\n".join(f"        {v}" for v in vips)
    return f"""
vrrp_instance {name} {{
    interface {interface}
    virtual_router_id {vrid}
    priority {priority}
    virtual_ipaddress {{
{addresses}
    }}
{extra}
}}
"""


def plan_of(directory: Path, text: str, *, links=None, addresses=None, now: int = 0) -> Plan:
    result = load_text(directory, text)
    assert result.ok, result.errors
    return build(result.config, LINKS if links is None else links,
                 ADDRESSES if addresses is None else addresses, now)


def owner_plan(directory: Path, names_vrids: list[tuple[str, int]], extra: str = "",
               prefix: str = "") -> Plan:
    """Instances with priority 255: start() makes them MASTER at once."""
    text = prefix + "".join(instance_text(name, vrid, [f"192.0.2.{vrid}/24"], priority=255,
                                          extra=extra) for name, vrid in names_vrids)
    return plan_of(directory, text)
