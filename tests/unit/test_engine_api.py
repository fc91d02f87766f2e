"""The engine's Python-side API for trackers, sync groups, set-priority,
metrics and reloads: force(), base priority vs tracker delta, getters, bulk
arrays, and what snapshot()/restore() carry across a reload."""

import pytest
from hivrrp._engine import (
    COUNTERS,
    EVENT_REASONS,
    FAULT_ADMIN,
    FAULT_CONFIG,
    FAULT_INTERFACE,
    FAULT_NO_SOURCE,
    FAULT_REASONS,
    FAULT_SYNC_GROUP,
    FAULT_TRACKER,
    STATES,
    Engine,
    fault_reasons,
)
from hivrrp._wire import RxBatch, encode, ipv4_packet
from scapy.layers.vrrp import VRRP, VRRPv3

from hivrrp.tools.sim import SECOND, Simulation

VIPS = ["192.0.2.26"]
OWN, PEER = "192.0.2.10", "192.0.2.20"


def skew(priority, interval=SECOND):
    return (256 - priority) * interval // 256


def mdi(priority, interval=SECOND):
    return 3 * interval + skew(priority, interval)


def configure(engine, **config):
    settings = {"vrid": 51, "ifindex": 2, "src": OWN, "priority": 100, "addresses": VIPS,
                **config}
    return engine.add_instance(**settings)


def started(now=0, **config):
    """One instance, started at `now`, outputs drained."""
    engine = Engine(2, now=0)
    configure(engine, **config)
    engine.start(0, now)
    engine.take_events()
    engine.clear_tx()
    return engine


def as_master(priority=200, **config):
    """A non-owner that became master by the master-down timer; returns (engine, now)."""
    engine = started(priority=priority, **config)
    now = engine.timer(0)
    engine.expire(now)
    assert engine.state(0) == "MASTER"
    engine.take_events()
    engine.clear_tx()
    return engine, now


def feed(engine, priority, now, *, src=PEER, version=2, interval=1):
    message = encode(version=version, vrid=51, priority=priority, interval=interval,
                     addresses=VIPS, src=src, dst="224.0.0.18")
    batch = RxBatch(1)
    batch.add_ipv4(ipv4_packet(message, src, "224.0.0.18"), ifindex=2)
    return engine.receive(batch, now)


def sent_priorities(engine):
    """Priorities of the queued adverts, as a dissector reads them off the wire."""
    out = []
    for _, _, _, _, _, message in engine.tx_packets():
        layer = VRRP(message) if message[0] >> 4 == 2 else VRRPv3(message)
        out.append(layer.priority)
    engine.clear_tx()
    return out


def events(engine):
    return [(old, new, reason) for _, old, new, reason, _ in engine.take_events()]


# ------------------------------------------------------------ fault reasons

def test_fault_bits_keep_their_values_and_labels():
    assert (FAULT_INTERFACE, FAULT_TRACKER, FAULT_NO_SOURCE, FAULT_CONFIG, FAULT_SYNC_GROUP,
            FAULT_ADMIN) == (1, 2, 4, 8, 16, 32)
    assert list(FAULT_REASONS.values()) == ["interface", "tracker", "no_source", "config",
                                            "sync_group", "admin"]
    assert fault_reasons(FAULT_ADMIN | FAULT_TRACKER) == ["tracker", "admin"]
    assert fault_reasons(0) == []
    assert EVENT_REASONS[-5:] == ("sync_group", "admin", "want_master", "leader", "follow_refresh")


@pytest.mark.parametrize("flag", [0, 64, FAULT_ADMIN | 128])
def test_set_fault_rejects_unknown_bits(flag):
    engine = started()
    with pytest.raises(ValueError, match="FAULT reason"):
        engine.set_fault(0, flag, True, 0)
    assert engine.fault_flags(0) == 0 and engine.state(0) == "BACKUP"


# ------------------------------------------------------------------ force()

def test_force_master_from_backup_advertises_and_arms_the_advert_timer():
    engine = started(priority=100)
    assert engine.force(0, "MASTER", SECOND, "sync_group") is True
    assert engine.state(0) == "MASTER"
    assert sent_priorities(engine) == [100]
    assert engine.timer(0) == 2 * SECOND
    assert engine.counters(0)["became_master"] == 1
    assert events(engine) == [("BACKUP", "MASTER", "sync_group")]


def test_force_backup_from_master_sends_no_priority_zero():
    # keepalived vrrp_sync_backup -> vrrp_state_leave_master(isync, false).
    engine, now = as_master(priority=200)
    assert engine.force(0, "BACKUP", now + 10, "admin") is True
    assert engine.state(0) == "BACKUP"
    assert sent_priorities(engine) == []
    counters = engine.counters(0)
    assert counters["priority_zero_sent"] == 0 and counters["released_master"] == 1
    assert engine.timer(0) == now + 10 + mdi(200)
    assert engine.master_address(0) is None
    assert events(engine) == [("MASTER", "BACKUP", "admin")]


def test_forced_backup_waits_at_its_own_interval_not_the_last_learned_one():
    engine = started(version=3, interval_cs=50, priority=100)
    feed(engine, 200, SECOND, version=3, interval=200)   # learns a 2 s master
    assert engine.master_adver_int_us(0) == 2 * SECOND
    engine.force(0, "MASTER", 2 * SECOND, "sync_group")
    engine.force(0, "BACKUP", 3 * SECOND, "sync_group")
    assert engine.timer(0) == 3 * SECOND + mdi(100, SECOND // 2)


def test_force_fault_from_master_sends_priority_zero_and_holds_until_cleared():
    engine, now = as_master(priority=200)
    assert engine.force(0, "FAULT", now, "sync_group") is True
    assert sent_priorities(engine) == [0]
    assert engine.state(0) == "FAULT" and engine.timer(0) is None
    assert engine.fault_flags(0) == FAULT_SYNC_GROUP
    assert engine.force(0, "BACKUP", now, "sync_group") is False   # set_fault leaves it
    assert engine.force(0, "MASTER", now, "admin") is False
    assert engine.state(0) == "FAULT"
    engine.set_fault(0, FAULT_SYNC_GROUP, False, now + 1)
    assert engine.state(0) == "BACKUP"
    assert events(engine) == [("MASTER", "FAULT", "sync_group"),
                              ("FAULT", "BACKUP", "fault_cleared")]


def test_force_fault_adds_its_bit_to_a_real_fault():
    engine = started()
    engine.set_interface(2, False, 5)
    engine.take_events()
    assert engine.force(0, "FAULT", 6, "admin") is True
    assert engine.fault_flags(0) == FAULT_INTERFACE | FAULT_ADMIN
    assert events(engine) == []
    engine.set_interface(2, True, 7)
    assert engine.state(0) == "FAULT"   # the admin still holds it


def test_force_refuses_to_raise_a_faulty_or_stopped_instance():
    engine = started()
    engine.set_fault(0, FAULT_TRACKER, True, 1)
    engine.take_events()
    assert engine.force(0, "MASTER", 2, "admin") is False
    assert engine.force(0, "BACKUP", 2, "sync_group") is False
    assert engine.state(0) == "FAULT"
    engine.stop(0, 3)
    engine.take_events()
    assert engine.force(0, "MASTER", 4, "admin") is False
    assert engine.state(0) == "INIT"
    assert events(engine) == [] and sent_priorities(engine) == []


def test_force_fault_on_a_stopped_instance_applies_at_start():
    engine = Engine(1)
    configure(engine)
    assert engine.force(0, "FAULT", 1, "admin") is False   # recorded, still INIT
    assert engine.state(0) == "INIT" and engine.fault_flags(0) == FAULT_ADMIN
    engine.start(0, 2)
    assert engine.state(0) == "FAULT"
    assert events(engine) == [("INIT", "FAULT", "fault")]


def test_force_to_the_current_state_does_nothing():
    engine = started()
    timer = engine.timer(0)
    assert engine.force(0, "BACKUP", 5, "admin") is True
    assert engine.timer(0) == timer and events(engine) == []


@pytest.mark.parametrize("state, reason, message", [
    ("INIT", "admin", "BACKUP, MASTER or FAULT"), ("master", "admin", "BACKUP, MASTER or FAULT"),
    ("MASTER", "tracker", "sync_group, admin"),
])
def test_force_rejects_unknown_states_and_reasons(state, reason, message):
    engine = started()
    with pytest.raises(ValueError, match=message):
        engine.force(0, state, 1, reason)
    assert engine.state(0) == "BACKUP"


# ---------------------------------------------------------------- priority

def test_base_priority_and_tracker_delta_do_not_overwrite_each_other():
    engine = started(priority=100)
    engine.set_priority_delta(0, -10, 1)
    engine.set_base_priority(0, 200, 2)
    assert (engine.base_priority(0), engine.priority_delta(0),
            engine.effective_priority(0)) == (200, -10, 190)
    engine.set_base_priority(0, 150, 3)
    assert engine.priority_delta(0) == -10 and engine.effective_priority(0) == 140
    engine.set_priority_delta(0, 0, 4)
    assert engine.base_priority(0) == 150 and engine.effective_priority(0) == 150
    assert [e[2] for e in events(engine)] == ["priority"] * 4


@pytest.mark.parametrize("priority", [0, 256, -1])
def test_base_priority_is_1_to_255(priority):
    engine = started()
    with pytest.raises(ValueError, match="1..255"):
        engine.set_base_priority(0, priority, 1)
    assert engine.base_priority(0) == 100


def test_an_owner_ignores_the_delta_until_it_stops_being_the_owner():
    engine = started(priority=255)
    engine.set_priority_delta(0, -50, 1)
    assert engine.effective_priority(0) == 255 and events(engine) == []
    engine.set_base_priority(0, 200, 2)
    assert engine.effective_priority(0) == 150
    assert engine.state(0) == "MASTER"   # it still is, until a better advert
    engine.expire(engine.timer(0))
    assert sent_priorities(engine) == [150]


def test_a_backup_whose_base_becomes_255_is_the_owner_and_takes_over():
    engine = started(priority=100)
    feed(engine, 200, SECOND)
    engine.set_base_priority(0, 255, 2 * SECOND)
    assert engine.state(0) == "MASTER"
    assert sent_priorities(engine) == [255]
    assert events(engine) == [("BACKUP", "BACKUP", "priority"), ("BACKUP", "MASTER", "owner")]


def test_backup_deadline_moves_with_skew_when_the_priority_changes():
    engine = started(priority=100)
    feed(engine, 200, SECOND)
    assert engine.timer(0) == SECOND + mdi(100)
    engine.set_priority_delta(0, 50, SECOND + 500_000)
    assert engine.timer(0) == SECOND + mdi(150)
    engine.set_base_priority(0, 60, SECOND + 600_000)   # 60 + 50
    assert engine.timer(0) == SECOND + mdi(110)
    assert engine.skew_time_us(0) == skew(110)


def test_a_master_advertises_a_changed_priority_from_its_next_advert():
    engine, now = as_master(priority=200)
    engine.set_priority_delta(0, -50, now + 1)
    assert sent_priorities(engine) == []
    engine.expire(engine.timer(0))
    assert sent_priorities(engine) == [150]


# ----------------------------------------------------------------- getters

def test_getters_follow_every_transition():
    engine = Engine(1)
    configure(engine, priority=150)
    assert engine.master_address(0) is None and engine.last_transition(0) == 0
    assert (engine.base_priority(0), engine.priority_delta(0), engine.fault_flags(0)) == \
        (150, 0, 0)
    engine.start(0, 7)
    assert engine.last_transition(0) == 7
    assert engine.master_address(0) is None            # nobody heard yet
    feed(engine, 200, SECOND)
    assert engine.master_address(0) == PEER
    engine.stop(0, 2 * SECOND)
    assert engine.master_address(0) is None and engine.last_transition(0) == 2 * SECOND
    engine.start(0, 3 * SECOND)
    assert engine.master_address(0) is None            # the old master is forgotten
    down = engine.timer(0)
    engine.expire(down)
    assert engine.master_address(0) == OWN and engine.last_transition(0) == down
    engine.set_priority_delta(0, 10, down + 1)         # no state change
    assert engine.last_transition(0) == down
    feed(engine, 250, down + 2)
    assert engine.state(0) == "BACKUP" and engine.master_address(0) == PEER
    assert engine.last_transition(0) == down + 2
    engine.set_fault(0, FAULT_TRACKER, True, down + 3)
    assert engine.master_address(0) is None and engine.last_transition(0) == down + 3
    assert engine.fault_flags(0) == FAULT_TRACKER
    engine.set_fault(0, FAULT_TRACKER, False, down + 4)
    assert engine.last_transition(0) == down + 4


def test_master_address_is_a_string_for_ipv6_too():
    engine = Engine(1)
    engine.add_instance(vrid=5, ifindex=2, family=6, version=3, src="fe80::10", priority=255,
                        addresses=["fd00::1"])
    engine.start(0, 0)
    assert engine.master_address(0) == "fe80::10"


# ------------------------------------------------------------ bulk arrays

def test_bulk_arrays_equal_the_per_instance_getters_after_an_exchange():
    sim = Simulation(seed=3)
    sim.segment("lan", loss=0.05)
    for name, address, priority in (("r1", "192.0.2.1", 200), ("r2", "192.0.2.2", 100)):
        r = sim.router(name)
        r.attach("lan", ifindex=1, ipv4=address)
        for vrid in (1, 2, 3):
            r.instance(f"VI_{vrid}", ifindex=1, vrid=vrid, priority=priority + vrid,
                       addresses=[f"198.51.100.{vrid}"])
    sim.start()
    sim.run_for(10 * SECOND)
    sim.partition("r1", "r2")
    sim.run_for(5 * SECOND)
    sim.heal("r1", "r2")
    sim.set_priority_delta("r2", "VI_2", 120)
    sim.run_for(10 * SECOND)
    for name in ("r1", "r2"):
        engine = sim.engine(name)
        table = engine.counters_array()
        assert (table.format, table.shape, table.readonly) == ("Q", (3, len(COUNTERS)), True)
        rows = table.tolist()
        for i in range(engine.count):
            assert rows[i] == list(engine.counters(i).values())
        assert [STATES[s] for s in engine.states_array()] == engine.states()
        assert list(engine.priorities_array()) == [engine.effective_priority(i)
                                                   for i in range(engine.count)]
        assert sum(table[i, COUNTERS.index("became_master")] for i in range(3)) >= 1
    assert sim.state("r2", "VI_2") == "MASTER"


def test_bulk_arrays_of_an_empty_engine_keep_their_shape():
    engine = Engine(1)
    assert engine.counters_array().shape == (0, len(COUNTERS))
    assert engine.states_array().shape == (0,) and engine.priorities_array().tolist() == []


def test_counters_array_is_a_copy():
    engine, now = as_master()
    table = engine.counters_array()
    engine.expire(engine.timer(0))
    assert table[0, COUNTERS.index("adverts_sent")] + 1 == \
        engine.counters(0)["adverts_sent"]


# ------------------------------------------------------- snapshot / restore

def reload(old, now, **config):
    """The same instance under a new config, restored from the old engine."""
    new = Engine(2, now=now)
    configure(new, **config)
    new.restore(0, old.snapshot(0), now)
    return new


def test_a_tracker_fault_survives_a_reload_and_an_interface_fault_is_rederived():
    old = started()
    old.set_fault(0, FAULT_TRACKER | FAULT_INTERFACE, True, 5)
    new = reload(old, 10)
    assert new.state(0) == "INIT" and new.fault_flags(0) == FAULT_TRACKER
    new.start(0, 10)
    assert new.state(0) == "FAULT"
    new.set_fault(0, FAULT_TRACKER, False, 11)
    assert new.state(0) == "BACKUP"


def test_a_forced_fault_survives_a_reload():
    old = started()
    old.force(0, "FAULT", 5, "admin")
    new = reload(old, 10)
    new.start(0, 10)
    assert new.state(0) == "FAULT" and new.fault_flags(0) == FAULT_ADMIN


def test_a_down_weighted_master_keeps_its_weighted_priority_on_the_wire():
    old, now = as_master(priority=200)
    old.set_priority_delta(0, -50, now + 1)
    new = reload(old, now + 2, priority=200)
    assert new.state(0) == "MASTER" and new.priority_delta(0) == -50
    assert events(new) == [] and sent_priorities(new) == []   # a reload flaps nothing
    new.expire(new.timer(0))
    assert sent_priorities(new) == [150]


def test_a_new_base_priority_applies_under_the_carried_delta():
    old, now = as_master(priority=200)
    old.set_priority_delta(0, -50, now + 1)
    new = reload(old, now + 2, priority=220)
    assert new.effective_priority(0) == 170
    assert events(new) == [("MASTER", "MASTER", "priority")]


def test_a_restored_backup_deadline_moves_with_the_new_skew():
    old = started(priority=100)
    feed(old, 200, SECOND)
    new = reload(old, SECOND + 500_000, priority=150)
    assert new.state(0) == "BACKUP" and new.timer(0) == SECOND + mdi(150)
    assert new.master_address(0) == PEER


def test_a_backup_that_becomes_the_owner_on_reload_takes_over():
    old = started(priority=100)
    new = reload(old, SECOND, priority=255)
    assert new.state(0) == "MASTER"
    assert sent_priorities(new) == [255] and new.timer(0) == 2 * SECOND
    assert events(new) == [("BACKUP", "BACKUP", "priority"), ("BACKUP", "MASTER", "owner")]
    assert new.last_transition(0) == SECOND


def test_a_master_snapshot_with_fault_bits_goes_to_fault_at_once():
    old, now = as_master()
    snapshot = list(old.snapshot(0))
    snapshot[10] = FAULT_ADMIN    # carried bits: not reachable through the API
    new = Engine(1)
    configure(new, priority=200)
    new.restore(0, tuple(snapshot), now)
    assert new.state(0) == "FAULT" and sent_priorities(new) == [0]
    assert events(new) == [("MASTER", "FAULT", "fault")]


def test_restore_keeps_counters_and_last_transition():
    old, now = as_master()
    new = reload(old, now + 5, priority=200)
    assert new.counters(0) == old.counters(0)
    assert new.last_transition(0) == now


@pytest.mark.parametrize("snapshot", [(), (9,) * 12, None])
def test_restore_rejects_what_snapshot_did_not_make(snapshot):
    engine = Engine(1)
    configure(engine)
    with pytest.raises(ValueError, match="bad snapshot"):
        engine.restore(0, snapshot, 0)


def test_carry_equals_restore_of_every_snapshot():
    """The bulk carry() a reload uses must leave each instance exactly as
    restore(snapshot()) would: state, timer, priorities, delta, faults, counters."""
    from array import array

    old = Engine(4, now=0)
    for vrid in (51, 52, 53, 54):
        configure(old, vrid=vrid, priority=100 + vrid)
    old.start_all(0)
    old.expire(old.timer(0))                        # 51 master by the timer
    feed(old, 250, old.timer(1) - 10)               # 52 hears a master
    old.set_priority_delta(2, -20, 5)               # 53 down-weighted
    old.set_fault(3, FAULT_TRACKER, True, 6)        # 54 faulted by a tracker
    now = 3 * SECOND

    def fresh():
        engine = Engine(4, now=0)
        for vrid in (54, 53, 52, 51):               # renumbered, as a reload may
            configure(engine, vrid=vrid, priority=90 + vrid)
        return engine

    pairs = [(3, 0), (2, 1), (1, 2), (0, 3)]
    by_restore, by_carry = fresh(), fresh()
    for i, j in pairs:
        by_restore.restore(i, old.snapshot(j), now)
    by_carry.carry(old, array("i", [i for i, _ in pairs]), array("i", [j for _, j in pairs]),
                   now)
    for i in range(4):
        assert by_carry.snapshot(i) == by_restore.snapshot(i)
        assert by_carry.fault_flags(i) == by_restore.fault_flags(i)
        assert by_carry.effective_priority(i) == by_restore.effective_priority(i)
    assert events(by_carry) == events(by_restore)
    with pytest.raises(IndexError):
        by_carry.carry(old, array("i", [0]), array("i", [9]), now)


# ------------------------------------------------------- sync-group members

def test_a_sync_member_waits_for_its_group_when_the_master_goes_silent():
    # keepalived vrrp_sync_can_goto_master(): the timer fires, the member stays
    # BACKUP, re-arms a full Master_Down_Interval and says it is ready once.
    engine = started(priority=100)
    engine.set_sync_member(0, True)
    first = engine.timer(0)
    engine.expire(first)
    assert engine.state(0) == "BACKUP" and engine.wants_master(0)
    assert sent_priorities(engine) == []
    assert events(engine) == [("BACKUP", "BACKUP", "want_master")]
    assert engine.timer(0) == first + mdi(100)
    engine.expire(engine.timer(0))
    assert events(engine) == []          # still ready: no second event
    assert engine.force(0, "MASTER", engine.timer(0), "sync_group")
    assert not engine.wants_master(0)
    assert sent_priorities(engine) == [100]


def test_a_sync_member_that_hears_a_master_again_is_no_longer_ready():
    engine = started(priority=100)
    engine.set_sync_member(0, True)
    now = engine.timer(0)
    engine.expire(now)
    assert engine.wants_master(0)
    feed(engine, 200, now + 10)
    assert not engine.wants_master(0) and engine.state(0) == "BACKUP"
    assert engine.timer(0) == now + 10 + mdi(100)


def test_leaving_the_group_restores_the_ordinary_takeover():
    engine = started(priority=100)
    engine.set_sync_member(0, True)
    engine.expire(engine.timer(0))
    engine.set_sync_member(0, False)
    assert not engine.wants_master(0)
    engine.expire(engine.timer(0))
    assert engine.state(0) == "MASTER"


def test_a_sync_member_owner_still_becomes_master_at_once():
    engine = Engine(1, now=0)
    configure(engine, priority=255)
    engine.set_sync_member(0, True)
    engine.start(0, 0)
    assert engine.state(0) == "MASTER"


# ------------------------------------------------------ drops by interface

def test_drops_are_also_counted_by_the_interface_they_came_in_on():
    engine = Engine(2, now=0)
    configure(engine)                                  # VRID 51 on ifindex 2
    configure(engine, vrid=52, ifindex=3, src="198.51.100.1")
    engine.start_all(0)

    def arrive(vrid, ifindex, *, ttl=255, version=2):
        message = encode(version=version, vrid=vrid, priority=100, interval=1,
                         addresses=VIPS, src=PEER, dst="224.0.0.18")
        batch = RxBatch(1)
        batch.add_ipv4(ipv4_packet(message, PEER, "224.0.0.18", ttl=ttl), ifindex=ifindex)
        engine.receive(batch, SECOND)

    arrive(51, 2, ttl=1)         # a bad TTL where VI 51 lives
    arrive(99, 3)                # a VRID nobody has on ifindex 3
    arrive(99, 3)
    arrive(51, 7)                # an interface no instance uses
    arrive(51, 2, version=3)     # v3 for a v2 instance
    assert engine.interface_drops() == {
        2: {"ttl": 1, "version_mismatch": 1},
        3: {"unknown_vrid": 2},
        0: {"unknown_vrid": 1}}
    totals = engine.global_counters()
    assert totals["drops"]["ttl"] == 1 and totals["unknown_vrid"] == 3
    assert totals["version_mismatch"] == 1
