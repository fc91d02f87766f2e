"""A leader and its followers for the daemon's follower tests (`follow`), and
what those tests do to them: fire a leader's timer, read the frames sent."""

from __future__ import annotations

import asyncio

from helpers.plans import instance_text

# Announcements fast enough to watch: one frame per burst, no delayed burst,
# a refresh round every 40 ms.
GARP_REFRESH = """
global_defs {
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 1
    vrrp_garp_master_refresh 0.04
    vrrp_garp_master_refresh_repeat 1
}
"""

VIPS = {"F0": "192.0.2.10", "F1": "192.0.2.11", "F2": "192.0.2.12"}


def group_text(vips: dict[str, str], head: str = GARP_REFRESH) -> str:
    """Leader L (192.0.2.200) and a follower per entry of `vips` (name -> VIP)."""
    out = head + instance_text("L", 1, ["192.0.2.200/24"], priority=200)
    for k, (name, vip) in enumerate(vips.items()):
        out += instance_text(name, 2 + k, [f"{vip}/24"], priority=200, extra="    follow L\n")
    return out


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 20))


def fire(d, name):
    """The instance's timer is due now (a backup's master-down): run it as the driver does."""
    engine = d.plan.engine
    engine.expire(engine.timer(d.plan.index[name]))
    d.driver.after_engine_work()


def announced(d) -> set[str]:
    """The addresses of the gratuitous ARPs sent (the ARP target of each frame)."""
    return {".".join(str(b) for b in frame[-4:]) for frame in d.frames}
