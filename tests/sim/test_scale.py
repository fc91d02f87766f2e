"""10,000 instances on 40 interfaces x 250 VRIDs: converge once, then stay put."""

from hivrrp.tools.sim import MILLISECOND, SECOND, Simulation

INTERFACES, VRIDS = 40, 250


def build(instances_per_router_fn):
    sim = Simulation()
    for ifindex in range(1, INTERFACES + 1):
        sim.segment(f"vlan{ifindex}")
    routers = {}
    for n, name in enumerate(("a", "b")):
        r = sim.router(name)
        for ifindex in range(1, INTERFACES + 1):
            r.attach(f"vlan{ifindex}", ifindex=ifindex, ipv4=f"10.{ifindex}.0.{n + 1}")
        routers[name] = r
    for ifindex in range(1, INTERFACES + 1):
        for vrid in range(1, VRIDS + 1):
            # Mastership split between the routers, as load-balancer pairs do.
            a_wins = (ifindex + vrid) % 2 == 0
            for name in ("a", "b"):
                routers[name].instance(
                    f"vi-{ifindex}-{vrid}", ifindex=ifindex, vrid=vrid,
                    priority=200 if (name == "a") == a_wins else 100,
                    addresses=[f"10.{ifindex}.{vrid}.1"])
    return sim


def test_ten_thousand_instances_converge_without_spurious_transitions():
    sim = build(None)
    sim.start()
    sim.run_until(10 * SECOND, quantum=10 * MILLISECOND)
    a, b = sim.engine("a"), sim.engine("b")
    assert a.count == b.count == INTERFACES * VRIDS
    assert a.count_in_state("MASTER") == b.count_in_state("MASTER") == 5000
    assert a.count_in_state("BACKUP") == b.count_in_state("BACKUP") == 5000
    for ifindex, vrid in ((1, 1), (1, 2), (40, 250), (17, 133)):
        name = f"vi-{ifindex}-{vrid}"
        assert sim.masters(name) == (["a"] if (ifindex + vrid) % 2 == 0 else ["b"])
    settled = sim.now
    sim.run_until(settled + 600 * SECOND, quantum=10 * MILLISECOND)
    assert sim.transitions(since=settled + 1) == []
    # Every master's adverts reached its backup.
    sent = sum(a.counters(i)["adverts_sent"] for i in range(a.count) if a.state(i) == "MASTER")
    received = sum(b.counters(i)["adverts_received"] for i in range(b.count)
                   if b.state(i) == "BACKUP")
    assert sent == received > 5000 * 600
    assert a.global_counters()["drops"] == dict.fromkeys(a.global_counters()["drops"], 0)
