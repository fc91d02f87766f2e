"""vrrp_sync_group scenarios on the simulator: the engine's member hold plus
tracking/syncgroups.py, as keepalived's vrrp_sync.c moves members together."""

from hivrrp._engine import FAULT_INTERFACE

from hivrrp.tools.sim import SECOND, Simulation


def two_vlans(*, group_on=("r1", "r2")):
    """r1 (priority 200) and r2 (100), each with VI_A on vlan A and VI_B on vlan B."""
    sim = Simulation()
    sim.segment("A")
    sim.segment("B")
    for k, (name, priority) in enumerate((("r1", 200), ("r2", 100))):
        r = sim.router(name)
        r.attach("A", ifindex=1, ipv4=f"192.0.2.{k + 1}")
        r.attach("B", ifindex=2, ipv4=f"198.51.100.{k + 1}")
        r.instance("VI_A", ifindex=1, vrid=1, priority=priority, addresses=["192.0.2.100"])
        r.instance("VI_B", ifindex=2, vrid=2, priority=priority, addresses=["198.51.100.100"])
        if name in group_on:
            r.sync_group("G", ["VI_A", "VI_B"])
    sim.start()
    return sim


def states(sim, router):
    return (sim.state(router, "VI_A"), sim.state(router, "VI_B"))


def test_the_group_becomes_master_together_and_the_peer_stays_backup():
    sim = two_vlans()
    sim.run_for(5 * SECOND)
    assert states(sim, "r1") == ("MASTER", "MASTER")
    assert states(sim, "r2") == ("BACKUP", "BACKUP")
    [(when_a, new_a)] = [(e.time, e.new) for e in sim.transitions(router="r1", instance="VI_A")
                         if e.new == "MASTER"]
    [when_b] = [e.time for e in sim.transitions(router="r1", instance="VI_B")
                if e.new == "MASTER"]
    assert when_a == when_b
    # Up as BACKUP first (keepalived's start-up, notified too), then MASTER.
    assert [s for _, r, g, s in sim.group_states if r == "r1"] == ["BACKUP", "MASTER"]


def test_one_member_faulting_takes_the_whole_group_down_and_the_peer_over():
    sim = two_vlans()
    sim.run_for(5 * SECOND)
    sim.set_fault("r1", "VI_A", FAULT_INTERFACE, True)
    assert states(sim, "r1") == ("FAULT", "FAULT")
    # r1 VI_B left MASTER too, with priority 0: r2 takes both over after Skew_Time.
    assert sim.engine("r1").counters(1)["priority_zero_sent"] == 1
    sim.run_for(SECOND)
    assert states(sim, "r2") == ("MASTER", "MASTER")
    # The group stays in FAULT while its member is faulty...
    sim.run_for(10 * SECOND)
    assert states(sim, "r1") == ("FAULT", "FAULT")
    # ...and comes back as one when it recovers, taking over again (preempt).
    sim.set_fault("r1", "VI_A", FAULT_INTERFACE, False)
    assert states(sim, "r1") == ("BACKUP", "BACKUP")
    sim.run_for(5 * SECOND)
    assert states(sim, "r1") == ("MASTER", "MASTER")
    assert states(sim, "r2") == ("BACKUP", "BACKUP")
    assert [s for _, r, g, s in sim.group_states if r == "r1"] == [
        "BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"]
    assert [s for _, r, g, s in sim.group_states if r == "r2"] == ["BACKUP", "MASTER", "BACKUP"]


def test_a_member_that_recovers_first_waits_for_the_others():
    sim = two_vlans()
    sim.run_for(5 * SECOND)
    sim.set_fault("r1", "VI_A", FAULT_INTERFACE, True)
    sim.set_fault("r1", "VI_B", FAULT_INTERFACE, True)
    sim.set_fault("r1", "VI_A", FAULT_INTERFACE, False)
    assert states(sim, "r1") == ("FAULT", "FAULT")
    sim.set_fault("r1", "VI_B", FAULT_INTERFACE, False)
    assert states(sim, "r1") == ("BACKUP", "BACKUP")


def test_a_group_member_waits_while_another_still_hears_its_master():
    # Only r2 groups its instances. r1 stops VI_A: r2's VI_A would take over,
    # but VI_B still hears r1's master, so the group stays BACKUP.
    sim = two_vlans(group_on=("r2",))
    sim.run_for(5 * SECOND)
    sim.stop_instance("r1", "VI_A")
    sim.run_for(10 * SECOND)
    assert states(sim, "r2") == ("BACKUP", "BACKUP")
    assert sim.engine("r2").wants_master(0) and not sim.engine("r2").wants_master(1)
    # When VI_B's master goes too, the whole group takes over at once.
    sim.stop_instance("r1", "VI_B")
    sim.run_for(SECOND)
    assert states(sim, "r2") == ("MASTER", "MASTER")
    [a] = [e.time for e in sim.transitions(router="r2", instance="VI_A") if e.new == "MASTER"]
    [b] = [e.time for e in sim.transitions(router="r2", instance="VI_B") if e.new == "MASTER"]
    assert a == b


def test_a_master_member_stepping_down_pulls_the_group_to_backup_without_priority_zero():
    sim = two_vlans(group_on=("r2",))
    sim.run_for(5 * SECOND)
    sim.stop_instance("r1", "VI_A")
    sim.stop_instance("r1", "VI_B")
    sim.run_for(SECOND)
    assert states(sim, "r2") == ("MASTER", "MASTER")
    zero_before = sim.engine("r2").counters(1)["priority_zero_sent"]
    # r1's VI_A comes back with priority 200 and preempts r2's VI_A: VI_B follows.
    r1 = sim.engine("r1")
    r1.start(0, sim.now)
    sim.run_for(5 * SECOND)
    assert states(sim, "r2") == ("BACKUP", "BACKUP")
    assert sim.engine("r2").counters(1)["priority_zero_sent"] == zero_before
    reasons = [e.reason for e in sim.transitions(router="r2", instance="VI_B")
               if e.old == "MASTER"]
    assert reasons == ["sync_group"]
