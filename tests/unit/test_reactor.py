"""The reactor: engine events in, ordered actions out, keyed by name."""

from helpers.plans import instance_text, plan_of
from hivrrp.daemon import reactor
from hivrrp.daemon.plan import match
from hivrrp.daemon.reactor import Announce, SetRoutes, SetVips, StopAnnouncing

ROUTE = "    virtual_routes {\n        203.0.113.0/24 via 192.0.2.254\n    }\n"


def test_becoming_master_adds_vips_then_routes_then_announces(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24", "192.0.2.27/24"],
                                           extra=ROUTE))
    inst = plan.instances["VI_1"]
    actions = reactor.transition(inst, "BACKUP", "MASTER", "master_down")
    assert [type(a) for a in actions] == [SetVips, SetRoutes, Announce]
    assert [c.address for c in actions[0].changes] == ["192.0.2.26", "192.0.2.27"]
    assert all(c.add for c in actions[0].changes)
    assert actions[1].add and actions[1].entries[0][1]["dst"] == "203.0.113.0/24"
    assert actions[2] == Announce("VI_1", "master")


def test_leaving_master_stops_announcing_removes_routes_then_vips(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"], extra=ROUTE))
    for new in ("BACKUP", "FAULT", "INIT"):
        actions = reactor.transition(plan.instances["VI_1"], "MASTER", new, "x")
        assert [type(a) for a in actions] == [StopAnnouncing, SetRoutes, SetVips]
        assert not actions[1].add and not any(c.add for c in actions[2].changes)


def test_a_master_hearing_a_lower_priority_announces_with_the_lower_prio_burst(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"]))
    inst = plan.instances["VI_1"]
    assert reactor.transition(inst, "MASTER", "MASTER", "rx_lower_priority") == [
        Announce("VI_1", "lower_prio")]
    # Not a new mastership: no VIP work, and other same-state events do nothing.
    assert reactor.transition(inst, "MASTER", "MASTER", "priority") == []
    assert reactor.transition(inst, "INIT", "BACKUP", "start") == []
    assert reactor.transition(inst, "BACKUP", "FAULT", "fault") == []


def test_a_vip_removed_behind_a_masters_back_is_put_back_and_only_that_one(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24", "192.0.2.27/24"]))
    inst = plan.instances["VI_1"]
    actions = reactor.vip_removed(inst, "MASTER", 2, "192.0.2.27")
    assert [(c.add, c.address) for c in actions[0].changes] == [(True, "192.0.2.27")]
    assert reactor.vip_removed(inst, "BACKUP", 2, "192.0.2.27") == []
    assert reactor.vip_removed(inst, "MASTER", 3, "192.0.2.27") == []  # other interface


def test_reload_diff_keeps_masters_vips_and_releases_removed_masters(tmp_path):
    old = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24", "192.0.2.27/24"])
                  + instance_text("VI_2", 52, ["192.0.2.52/24"], extra=ROUTE)
                  + instance_text("VI_3", 53, ["192.0.2.53/24"]))
    new = plan_of(tmp_path, instance_text("NEW_0", 50, ["192.0.2.50/24"])
                  + instance_text("RENAMED", 51, ["192.0.2.26/24", "192.0.2.28/24"])
                  + instance_text("VI_3", 53, ["192.0.2.53/24"]))
    kept = match(old, new)
    assert kept == {"RENAMED": "VI_1", "VI_3": "VI_3"}
    states = {"VI_1": "MASTER", "VI_2": "MASTER", "VI_3": "BACKUP"}
    actions = reactor.reloaded(old, new, kept, states)
    stops = [a.name for a in actions if isinstance(a, StopAnnouncing)]
    assert sorted(stops) == ["VI_1", "VI_2"]   # renamed, removed
    routes = [a for a in actions if isinstance(a, SetRoutes)]
    assert len(routes) == 1 and not routes[0].add
    (vips,) = [a for a in actions if isinstance(a, SetVips)]
    assert sorted((c.add, c.address) for c in vips.changes) == [
        (False, "192.0.2.27"), (False, "192.0.2.52"), (True, "192.0.2.28")]
    # Routes leave before the addresses they may use as source.
    assert actions.index(routes[0]) < actions.index(vips)


def test_a_reload_that_adds_vips_to_a_kept_master_announces_it_after_them(tmp_path):
    # keepalived's reload (vrrp.c, restore_vrrp_state's callers): a master
    # that got addresses sends a burst, one that only lost some does not.
    old = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"])
                  + instance_text("VI_2", 52, ["192.0.2.52/24", "192.0.2.53/24"]))
    new = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24", "192.0.2.28/24"])
                  + instance_text("VI_2", 52, ["192.0.2.52/24"]))
    actions = reactor.reloaded(old, new, match(old, new), {"VI_1": "MASTER", "VI_2": "MASTER"})
    announces = [a for a in actions if isinstance(a, Announce)]
    assert announces == [Announce("VI_1", "added")]
    (vips,) = [a for a in actions if isinstance(a, SetVips)]
    assert actions.index(vips) < actions.index(announces[0])


def test_reload_of_an_unchanged_config_changes_nothing(tmp_path):
    text = instance_text("VI_1", 51, ["192.0.2.26/24"], extra=ROUTE)
    old, new = plan_of(tmp_path, text), plan_of(tmp_path, text)
    assert reactor.reloaded(old, new, match(old, new), {"VI_1": "MASTER"}) == []


def test_resync_reasserts_only_the_masters_vips(tmp_path):
    plan = plan_of(tmp_path, instance_text("A", 51, ["192.0.2.51/24"], priority=255)
                   + instance_text("B", 52, ["192.0.2.52/24"]))
    plan.engine.start_all(0)
    (action,) = reactor.resync(plan)
    assert [c.address for c in action.changes] == ["192.0.2.51"]


FOLLOWED = (instance_text("L", 1, ["192.0.2.100/24"], priority=200)
            + "".join(instance_text(f"F{k}", 2 + k, [f"192.0.2.{10 + k}/24"],
                                    extra="    follow L\n" + (ROUTE if k == 0 else "")
                                    + ("    no_accept\n" if k == 1 else ""))
                      for k in range(3)))


def test_followers_moved_all_together_are_one_precomputed_unit(tmp_path):
    from hivrrp.daemon.reactor import SetDrops
    from hivrrp.kernel.addrbatch import Encoded
    plan = plan_of(tmp_path, FOLLOWED)
    group = plan.followers["L"]
    assert group.names == ("F0", "F1", "F2")
    up = reactor.group_transition(group, "BACKUP", "MASTER", 3)
    assert [type(a) for a in up] == [SetDrops, SetVips, SetRoutes, Announce]
    assert [c.address for c in up[0].changes] == ["192.0.2.11"]     # F1 filters
    [unit] = up[1].changes
    assert isinstance(unit, Encoded) and unit is group.vips
    assert [c.address for c in unit.changes] == ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
    assert up[2].add and len(up[2].entries) == 1
    assert up[3] == Announce("L", "followers")
    for new in ("BACKUP", "FAULT", "INIT"):
        down = reactor.group_transition(group, "MASTER", new, 3)
        assert [type(a) for a in down] == [StopAnnouncing, SetRoutes, SetVips, SetDrops]
        assert down[0] == StopAnnouncing("L", followers=True)
        assert down[2].changes == (group.removals,) and not group.removals.add
        assert group.removals.key is group.vips.key
    # Only some moved (the others FAULT or INIT): each follower's own events decide.
    assert reactor.group_transition(group, "BACKUP", "MASTER", 2) is None


def test_a_master_followers_refresh_announces_once(tmp_path):
    plan = plan_of(tmp_path, FOLLOWED)
    assert reactor.transition(plan.instances["F2"], "MASTER", "MASTER", "follow_refresh") == [
        Announce("F2", "refresh")]
    assert reactor.transition(plan.instances["F2"], "BACKUP", "BACKUP", "follow_refresh") == []


def test_the_vip_queue_keeps_units_whole_and_the_last_word_on_each_address(tmp_path):
    from hivrrp.kernel.addrbatch import Change
    from hivrrp.kernel.vipqueue import Batch
    plan = plan_of(tmp_path, FOLLOWED)
    group = plan.followers["L"]
    batch = Batch(plan.unit_key)
    single = Change(False, 2, 4, "192.0.2.11", 24)
    batch.add(SetVips((group.vips,)))
    batch.add(SetVips((single,)))                  # F1's own fault after its group's move
    batch.add(SetVips((group.removals,)))          # the group leaves ...
    batch.add(SetVips((group.vips,)))              # ... and comes back: the last word on all
    assert batch.vips == [group.vips]
    batch = Batch(plan.unit_key)
    batch.add(SetVips((group.vips,)))
    batch.add(SetVips((single,)))                  # F1's own fault, after: its VIP is left out
    assert batch.vips == [*(c for c in group.vips.changes if c.address != "192.0.2.11"), single]
    batch = Batch()
    batch.add(SetVips((group.vips,)))
    batch.add(SetVips((group.removals,)))          # right after: the last word on all of them
    assert batch.vips == [group.removals]
