"""Deterministic VRRP simulator: engines on a virtual LAN with a virtual clock.

    sim = Simulation()
    sim.segment("lan")
    r1 = sim.router("r1"); r1.attach("lan", ifindex=1, ipv4="192.0.2.1")
    r1.instance("VI_1", ifindex=1, vrid=51, priority=200, addresses=["192.0.2.26"])
    ...
    sim.start()
    sim.run_until(10 * SECOND)
    sim.state("r1", "VI_1")  -> "MASTER"

Packets are the engines' real adverts, encoded by the codec and decoded by
the receiving engine from IPv4 datagrams / IPv6 payloads, as on a wire.
Times are integer microseconds.
"""

from hivrrp.tools.sim.simulation import MILLISECOND, SECOND, Event, Router, Simulation

__all__ = ["MILLISECOND", "SECOND", "Event", "Router", "Simulation"]
