"""Which adverts go out as AF_PACKET frames and which through the raw IP socket (pure).

`hivrrp run --send-path auto` (the default) sends the multicast IPv4 adverts
of an instance on an Ethernet link as whole frames (_io.FramePath): the
kernel's IP output (route lookup, neighbour output, netfilter's OUTPUT and
POSTROUTING hooks) is skipped, about half of its time per advert. The rest
keep the raw IP socket, for a reason the daemon logs once per instance:

- unicast peers: their MACs are the neighbour table's (ARP/ND, its timers
  and failures), which only the IP layer keeps;
- IPv6: the kernel writes an automatic flow label on the raw socket, a hash
  of the addresses under a secret drawn at boot, which nothing outside the
  kernel can compute: a frame of ours could not be the same on the wire;
- a link that is not Ethernet (a tunnel, loopback, InfiniBand) or has no
  Ethernet address.

A frame larger than the link's MTU (the MTU went down after the adverts were
sized) also takes the raw socket, whose kernel fragments it as before;
FramePath counts those, and daemon/sendlog.py says it once per interface
and MTU. `--send-path raw` keeps every advert on the raw
socket: hivrrp's only path before, kept for comparison and as an escape hatch.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from hivrrp.kernel.rtnl import ARPHRD_ETHER

if TYPE_CHECKING:
    from hivrrp.daemon.plan import InstancePlan
    from hivrrp.kernel.netlink import Link

MODES = ("auto", "raw")
NAMES_SHOWN = 8                # names in a line about many instances

UNICAST = "unicast peers (their MACs are the kernel's neighbour table's)"
IPV6 = ("IPv6 (the kernel's automatic flow label on the raw socket is a hash under a "
        "secret drawn at boot: no frame of ours could match it)")


def link_reason(link: Link) -> str | None:
    """Why frames cannot go out on `link`, or None when they can."""
    if link.arphrd != ARPHRD_ETHER:
        return f"interface {link.name} is not Ethernet (link type {link.arphrd})"
    if len(link.mac) != 6 or not any(link.mac):
        return f"interface {link.name} has no Ethernet address"
    return None


def raw_reasons(instances: Iterable[InstancePlan],
                links: Mapping[int, Link]) -> dict[str, list[str]]:
    """reason -> the instances whose adverts keep the raw IP socket for it, in
    `--send-path auto`. An instance whose interface is missing is in FAULT and
    sends nothing: not listed (it is judged again when the interface appears,
    which rebuilds)."""
    out: dict[str, list[str]] = {}
    for inst in instances:
        c = inst.config
        if c.family == 6:
            reason = IPV6
        elif c.unicast_peers:
            reason = UNICAST
        else:
            link = links.get(inst.ifindex)
            reason = None if link is None else link_reason(link)
            if reason is None:
                continue
        out.setdefault(reason, []).append(inst.name)
    return out


def fallback_lines(reasons: Mapping[str, list[str]],
                   logged: set[tuple[str, str]]) -> list[str]:
    """The log lines for what is not in `logged` yet (which is then updated):
    one per instance, or one per reason with the first names when many
    instances share it (10,000 IPv6 instances are one line, not 10,000)."""
    lines = []
    for reason, names in reasons.items():
        new = [name for name in names if (name, reason) not in logged]
        if not new:
            continue
        logged.update((name, reason) for name in new)
        if len(new) <= NAMES_SHOWN:
            lines += [f"({name}) adverts go through the raw IP socket: {reason}" for name in new]
        else:
            more = len(new) - NAMES_SHOWN
            lines.append(f"{len(new)} instances send their adverts through the raw IP socket: "
                         f"{reason}: {', '.join(new[:NAMES_SHOWN])} and {more} more")
    return lines


FULL = "the interface's queue or the socket's send buffer is full"
GONE = "the interface is gone"
# What a refused send means where the errno alone does not say it.
REFUSALS = {
    errno.ENOBUFS: FULL,
    errno.EAGAIN: FULL,
    errno.ENETDOWN: "the interface is down",
    errno.ENXIO: GONE,
    errno.ENODEV: GONE,
    errno.EMSGSIZE: "the frame is over the interface's MTU",
    errno.ENETUNREACH: "no route to the peer",
    errno.EHOSTUNREACH: "no route to the peer",
    errno.EPERM: "a firewall rule (netfilter OUTPUT) dropped it",
}


def refusal(code: int) -> str:
    """A refused send's errno in words, with what it means for an advert."""
    text = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
    meaning = REFUSALS.get(code)
    return f"{text}: {meaning}" if meaning else text
