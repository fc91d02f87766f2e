"""no_accept's policy without root: which instances filter, which elements their VIPs are,
what the reactor asks for and in which order the queue hands it to netlink."""

import asyncio
import socket
import struct

import pytest

from helpers.plans import instance_text, plan_of
from hivrrp.config.model import GlobalDefs
from hivrrp.daemon import reactor
from hivrrp.daemon.plan import match
from hivrrp.daemon.reactor import Announce, SetDrops, SetRoutes, SetVips, StopAnnouncing
from hivrrp.kernel import firewall_policy as policy
from hivrrp.kernel.addrbatch import Change
from hivrrp.kernel.vipqueue import Batch, VipQueue


def one(tmp_path, extra="", priority=100, vips=("192.0.2.26/24",), name="VI_1", vrid=51):
    return instance_text(name, vrid, list(vips), priority=priority, extra=extra)


@pytest.mark.parametrize(("extra", "priority", "filtering"), [
    ("", 100, False),                          # unset: accept (keepalived without vrrp_strict)
    ("    accept\n", 100, False),
    ("    no_accept\n", 100, True),
    ("    no_accept\n", 255, False),           # the address owner always accepts
    ("    strict_mode\n", 100, True),          # strict: no accept mode below 255
    ("    strict_mode\n", 255, False),
    ("    strict_mode\n    version 3\n    accept\n", 100, False),    # v3 may accept
])
def test_which_instances_filter(tmp_path, extra, priority, filtering):
    plan = plan_of(tmp_path, one(tmp_path, extra, priority))
    assert policy.filters(plan.instances["VI_1"].config) is filtering


def test_elements_ipv4_ipv6_and_link_local_keyed_by_interface():
    v4 = Change(True, 3, 4, "192.0.2.26", 24)
    v6 = Change(True, 3, 6, "fd00::26", 64)
    ll = Change(True, 3, 6, "fe80::26", 64)
    febf = Change(True, 7, 6, "febf::1", 64)
    not_ll = Change(True, 3, 6, "fec0::1", 64)       # just past fe80::/10
    short = Change(True, 3, 6, "fe8::1", 64)         # 0fe8::1, not link-local
    assert policy.element(v4) == (4, "vips", socket.inet_aton("192.0.2.26"))
    assert policy.element(v6) == (6, "vips", socket.inet_pton(socket.AF_INET6, "fd00::26"))
    assert policy.element(ll) == (6, "vips_link_local",
                                  socket.inet_pton(socket.AF_INET6, "fe80::26")
                                  + struct.pack("=I", 3))
    assert policy.element(febf)[1] == "vips_link_local"
    assert policy.element(not_ll)[1] == "vips" and policy.element(short)[1] == "vips"
    # One global address on two interfaces is one element (with two holders);
    # a link-local one is two.
    other = Change(True, 9, 4, "192.0.2.26", 24)
    assert policy.element(v4) == policy.element(other)
    assert policy.holder(v4) != policy.holder(other)
    assert policy.element(ll) != policy.element(Change(True, 9, 6, "fe80::26", 64))


def test_the_drop_set_sends_only_what_changes_the_kernels_sets():
    drops = policy.DropSet()
    a, b = (4, "vips", b"\1\1\1\1"), (4, "vips", b"\2\2\2\2")
    ha, hb = (2, "1.1.1.1"), (2, "2.2.2.2")
    assert drops.change([(a, ha), (b, hb), (a, ha)], []) == ([a, b], [])
    assert drops.change([(a, ha)], []) == ([], [])               # already there
    assert drops.change([], [(b, hb), (b, hb)]) == ([], [b])
    assert drops.change([], [(b, hb)]) == ([], [])               # absent: a removal would fail
    assert list(drops.elements) == [a]


def test_an_element_stays_while_any_of_its_holders_does():
    drops = policy.DropSet()
    a = (4, "vips", b"\1\1\1\1")
    eth0, eth1 = (2, "1.1.1.1"), (3, "1.1.1.1")     # one VIP, two masters' interfaces
    assert drops.change([(a, eth0)], []) == ([a], [])
    assert drops.change([(a, eth1)], []) == ([], [])
    assert drops.change([], [(a, eth0)]) == ([], [])
    assert drops.change([], [(a, eth0)]) == ([], [])             # not a holder twice over
    assert drops.change([], [(a, eth1)]) == ([], [a])
    # Handed over within one update: it never leaves the set.
    assert drops.change([(a, eth0)], []) == ([a], [])
    assert drops.change([(a, eth1)], [(a, eth0)]) == ([], [])
    assert drops.elements == {a: {eth1}}


def test_settings_from_global_defs_and_what_a_reload_cannot_change():
    g = GlobalDefs()
    running = policy.Settings.of(g)
    assert running == policy.Settings("hivrrp", -1, False)
    g.nftables_table, g.nftables_priority, g.nftables_counters = "fw", 5, True
    assert policy.settings_change(running, running) is None
    assert policy.settings_change(running, policy.Settings.of(g)) == (
        "the nftables table (fw, priority 5, counters) differs from the running one "
        "(hivrrp, priority -1): it changes at the next start")


def test_tables_only_for_the_families_of_filtering_instances(tmp_path):
    plan = plan_of(tmp_path, one(tmp_path, "    no_accept\n")
                   + one(tmp_path, "", vips=("fd00::1/64",), name="V6", vrid=52)
                   + one(tmp_path, "    no_accept\n    virtual_ipaddress_excluded {\n"
                                   "        fd00::3/64\n    }\n", name="E", vrid=53,
                         vips=("192.0.2.53/24",)))
    assert policy.families(plan.instances.values()) == {4, 6}     # the eVIP's family counts
    assert policy.families([plan.instances["V6"]]) == set()


def test_a_no_accept_master_is_dropped_before_its_vips_and_undropped_after(tmp_path):
    plan = plan_of(tmp_path, one(tmp_path, "    no_accept\n"))
    inst = plan.instances["VI_1"]
    up = reactor.transition(inst, "BACKUP", "MASTER", "master_down")
    assert [type(a) for a in up] == [SetDrops, SetVips, SetRoutes, Announce]
    assert up[0].add and up[0].changes == inst.vips
    down = reactor.transition(inst, "MASTER", "BACKUP", "higher_priority")
    assert [type(a) for a in down] == [StopAnnouncing, SetRoutes, SetVips, SetDrops]
    assert not down[-1].add and down[-1].changes == inst.vips


@pytest.mark.parametrize("extra", ["", "    accept\n"])
def test_an_accepting_master_has_no_drops(tmp_path, extra):
    inst = plan_of(tmp_path, one(tmp_path, extra)).instances["VI_1"]
    assert not any(isinstance(a, SetDrops)
                   for a in reactor.transition(inst, "BACKUP", "MASTER", "x")
                   + reactor.transition(inst, "MASTER", "BACKUP", "x"))


def drops_of(actions):
    return sorted((a.add, c.address) for a in actions if isinstance(a, SetDrops)
                  for c in a.changes)


@pytest.mark.parametrize(("before", "after", "expected"), [
    # A master switched to no_accept by a reload: all its VIPs dropped.
    ("", "    no_accept\n", [(True, "192.0.2.26"), (True, "192.0.2.27")]),
    # ... and back to accept (or made the owner): all undropped.
    ("    no_accept\n", "    accept\n", [(False, "192.0.2.26"), (False, "192.0.2.27")]),
    ("    no_accept\n", "", [(False, "192.0.2.26"), (False, "192.0.2.27")]),
    ("    no_accept\n", "    no_accept\n", []),
])
def test_a_reload_switching_accept_while_master_updates_the_drops(tmp_path, before, after,
                                                                 expected):
    vips = ("192.0.2.26/24", "192.0.2.27/24")
    old = plan_of(tmp_path, one(tmp_path, before, vips=vips))
    new = plan_of(tmp_path, one(tmp_path, after, vips=vips))
    actions = reactor.reloaded(old, new, match(old, new), {"VI_1": "MASTER"})
    assert drops_of(actions) == expected
    assert not any(isinstance(a, SetVips) for a in actions)      # the addresses stay
    # Not a master: nothing to drop or undrop.
    assert reactor.reloaded(old, new, match(old, new), {"VI_1": "BACKUP"}) == []


def test_a_reload_drops_a_no_accept_masters_new_vips_and_undrops_removed_ones(tmp_path):
    old = plan_of(tmp_path, one(tmp_path, "    no_accept\n", vips=("192.0.2.26/24",
                                                                     "192.0.2.27/24"))
                  + one(tmp_path, "    no_accept\n", vips=("192.0.2.52/24",), name="GONE",
                        vrid=52))
    new = plan_of(tmp_path, one(tmp_path, "    no_accept\n", vips=("192.0.2.26/24",
                                                                     "192.0.2.28/24")))
    actions = reactor.reloaded(old, new, match(old, new), {"VI_1": "MASTER", "GONE": "MASTER"})
    assert drops_of(actions) == [(False, "192.0.2.27"), (False, "192.0.2.52"),
                                 (True, "192.0.2.28")]
    kinds = [type(a) for a in actions]
    # The queue orders them by kind; the list only has to reduce right (last word).
    assert kinds.index(SetDrops) < kinds.index(SetVips)


class Netlink:
    """apply() as Netlink's: records each trip's drops, VIP changes and undrops."""

    def __init__(self):
        self.trips = []

    async def apply(self, changes, drop=(), undrop=()):
        self.trips.append(([c.address for c in drop], [(c.add, c.address) for c in changes],
                           [c.address for c in undrop]))
        return []

    async def routing(self, add, entries):
        return []


def test_one_trip_takes_the_drops_with_the_vips_and_a_flap_ends_as_it_should(tmp_path):
    text = "".join(one(tmp_path, "    no_accept\n", vips=(f"192.0.2.{i}/24",), name=f"V{i}",
                       vrid=i) for i in range(1, 5))
    plan = plan_of(tmp_path, text)
    netlink = Netlink()

    async def scenario():
        queue = VipQueue(netlink.apply, netlink.routing, lambda announce: None)
        actions = []
        for name in ("V1", "V2", "V3"):
            actions += reactor.transition(plan.instances[name], "BACKUP", "MASTER", "x")
        # V3 flaps back within the same trip; V4 was master and leaves.
        actions += reactor.transition(plan.instances["V3"], "MASTER", "BACKUP", "x")
        actions += reactor.transition(plan.instances["V4"], "MASTER", "BACKUP", "x")
        queue.submit(actions)
        await queue.idle()

    asyncio.run(scenario())
    assert netlink.trips == [(["192.0.2.1", "192.0.2.2"],
                              [(True, "192.0.2.1"), (True, "192.0.2.2"), (False, "192.0.2.3"),
                               (False, "192.0.2.4")],
                              ["192.0.2.3", "192.0.2.4"])]


def test_a_trip_without_drops_calls_apply_as_before(tmp_path):
    plan = plan_of(tmp_path, one(tmp_path))
    seen = []

    async def apply(changes):                    # no drop/undrop parameters at all
        seen.append(len(changes))
        return []

    async def scenario():
        queue = VipQueue(apply, Netlink().routing, lambda announce: None)
        queue.submit(reactor.transition(plan.instances["VI_1"], "BACKUP", "MASTER", "x"))
        await queue.idle()

    asyncio.run(scenario())
    assert seen == [1]


def test_a_trip_keeps_the_drops_of_two_masters_sharing_a_vip():
    """One global VIP, two masters on two interfaces: the last word is per master,
    not per address, or the leaving one's removal would be lost (and the element
    kept after both left) or taken for the other's."""
    a = Change(True, 2, 4, "192.0.2.26", 24)
    b = Change(True, 3, 4, "192.0.2.26", 24)
    batch = Batch()
    batch.add(SetDrops(False, (a,)))                # A leaves ...
    batch.add(SetDrops(True, (b,)))                 # ... and B takes over, in one trip
    assert batch.drop_changes(False) == [a] and batch.drop_changes(True) == [b]
