"""Drop records: what the engine keeps of a dropped advert for the log (kind,
sender, details), one record per kind with a count, and the cause carried by
transition events."""

import ipaddress

import pytest
from hivrrp._engine import DROP_RECORD_REASONS, Engine
from hivrrp._wire import RxBatch, encode, ipv4_packet
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP

from helpers.engines import OWN, PEER, SECOND, VIPS, engine_with


def packed(address):
    return ipaddress.ip_address(address).packed


def feed(engine, *datagrams, ifindex=2, min_ttl=255):
    batch = RxBatch(max(1, len(datagrams)))
    for data in datagrams:
        batch.add_ipv4(data, ifindex=ifindex, min_ttl=min_ttl)
    return engine.receive(batch, SECOND)


def v2(priority=200, *, src=PEER, dst="224.0.0.18", vrid=51, interval=1, addresses=VIPS,
       auth_type=1, auth=b"1234", ttl=255):
    message = encode(version=2, vrid=vrid, priority=priority, interval=interval,
                     addresses=addresses, auth_type=auth_type, auth_data=auth)
    return ipv4_packet(message, src, dst, ttl=ttl)


def v3(priority=200, *, src=PEER, vrid=51, addresses=VIPS):
    message = encode(version=3, vrid=vrid, priority=priority, interval=100,
                     addresses=addresses, src=src, dst="224.0.0.18")
    return ipv4_packet(message, src, "224.0.0.18")


def record(engine, everything=False):
    """The one record taken, as a dict."""
    records, unrecorded = engine.take_drops(everything)
    assert unrecorded == 0
    [(instance, ifindex, reason, sender, count, d0, d1, address, version, vrid)] = records
    return {"instance": instance, "ifindex": ifindex, "reason": reason,
            "sender": sender, "count": count, "detail": (d0, d1), "address": address,
            "version": version, "vrid": vrid}


@pytest.mark.parametrize("packet, reason, detail, address", [
    (v2(auth=b"4321"), "auth_failure", (0, 0), None),
    (v2(auth_type=0, auth=b""), "auth_type_mismatch", (0, 1), None),
    (v2(auth_type=7), "auth_invalid_type", (7, 0), None),
    (v2(interval=3), "interval_mismatch", (3, 1), None),
    (v2(addresses=["192.0.2.26"]), "address_count", (1, 2), None),
    (v2(addresses=["192.0.2.26", "192.0.2.99"]), "address_list", (0, 0), packed("192.0.2.27")),
    (v2(ttl=64), "ttl", (64, 255), None),
    (v3(), "version_mismatch", (3, 2), None),
    (v2(dst="192.0.2.10"), "not_group", (0, 0), packed("192.0.2.10")),
    (bytes(IP(src=PEER, dst="224.0.0.18", ttl=255) / VRRP(vrid=51, type=2, addrlist=VIPS)),
     "type", (2, 1), None),
    # 3 addresses announced, 2 present: 8 + 2 * 4 + 8 bytes for the 8 + 3 * 4 + 8 expected.
    (bytes(IP(src=PEER, dst="224.0.0.18", ttl=255) / VRRP(vrid=51, ipcount=3, addrlist=VIPS)),
     "length", (24, 28), None),
])
def test_each_drop_of_an_instance_leaves_a_record_saying_why_and_from_whom(
        packet, reason, detail, address):
    engine = engine_with()
    feed(engine, packet)
    assert record(engine) == {
        "instance": 0, "ifindex": 2, "reason": reason, "sender": packed(PEER), "count": 1,
        "detail": detail, "address": address, "version": packet[20] >> 4, "vrid": 51}


def test_a_sender_that_is_not_a_unicast_peer_is_recorded_on_the_instance():
    engine = engine_with(peers=["192.0.2.30"])
    feed(engine, v2(dst=OWN))
    assert record(engine)["reason"] == "not_peer"


def test_drops_of_no_instance_are_recorded_by_interface():
    engine = engine_with()
    broken = bytearray(v2(vrid=52))
    broken[-1] ^= 1
    feed(engine, v2(vrid=52), ifindex=7)
    unknown = record(engine)
    assert (unknown["instance"], unknown["ifindex"], unknown["reason"], unknown["vrid"]) == (
        -1, 7, "unknown_vrid", 52)
    feed(engine, bytes(broken), ifindex=7)
    [checksum], _ = engine.take_drops()
    assert checksum[:4] == (-1, 7, "checksum", packed(PEER)) and checksum[5] == 2


def test_unknown_vrids_are_told_apart_by_interface_and_sender():
    engine = engine_with()
    feed(engine, v2(vrid=52), v2(vrid=52), v2(vrid=52, src="192.0.2.21"), ifindex=3)
    feed(engine, v2(vrid=52), ifindex=4)
    records, _ = engine.take_drops()
    assert sorted((r[1], r[2], str(ipaddress.ip_address(r[3])), r[4], r[9]) for r in records) == [
        (3, "unknown_vrid", "192.0.2.20", 2, 52), (3, "unknown_vrid", "192.0.2.21", 1, 52),
        (4, "unknown_vrid", "192.0.2.20", 1, 52)]


def test_a_valid_advert_and_our_own_leave_no_record():
    engine = engine_with()
    feed(engine, v2(), v2(src=OWN))
    assert engine.take_drops(True) == ([], 0)


def test_repeats_count_on_the_record_and_are_handed_out_once():
    engine = engine_with()
    feed(engine, v2(auth=b"bad"))
    assert record(engine)["count"] == 1
    feed(engine, *[v2(auth=b"bad")] * 4)
    assert engine.take_drops() == ([], 0)              # no new kind
    assert record(engine, everything=True)["count"] == 4
    assert engine.take_drops(True) == ([], 0)          # nothing since
    feed(engine, v2(auth=b"bad"))                      # after the reset: a record again
    assert record(engine)["count"] == 1


def test_the_latest_details_are_kept():
    engine = engine_with()
    feed(engine, v2(ttl=64))
    engine.take_drops()
    feed(engine, v2(ttl=32))
    assert record(engine, everything=True)["detail"] == (32, 255)


def test_records_are_bounded_and_the_rest_is_counted():
    engine = engine_with()                       # capacity 4: at most 4 + 64 kinds
    senders = [str(ipaddress.ip_address("10.0.0.1") + n) for n in range(100)]
    for sender in senders:
        feed(engine, v2(src=sender, auth=b"bad"))
    feed(engine, v2(src=senders[-1], auth=b"bad"))
    records, unrecorded = engine.take_drops()
    assert len(records) == 68 and unrecorded == 100 - 68 + 1
    assert engine.counters(0)["auth_failure"] == 101
    assert len(engine.take_drops(True)[0]) == 0     # counted nothing more on the 68
    feed(engine, v2(src=senders[-1], auth=b"bad"))  # the reset made room again
    assert len(engine.take_drops()[0]) == 1


def test_the_record_index_survives_growth():
    # Past the first allocation (64), every earlier kind must still be found.
    engine = Engine(300, now=0)
    engine.add_instance(vrid=51, ifindex=2, src=OWN, addresses=VIPS)
    engine.start(0, 0)
    senders = [str(ipaddress.ip_address("10.0.0.1") + n) for n in range(200)]
    for sender in senders:
        feed(engine, v3(src=sender))
    for sender in senders:
        feed(engine, v3(src=sender))
    records, unrecorded = engine.take_drops(True)
    assert unrecorded == 0 and len(records) == 200
    assert {r[4] for r in records} == {2}


def test_labels_of_record_reasons_are_stable():
    # They are part of the log's words and of take_drops()' API.
    assert DROP_RECORD_REASONS[16:] == (
        "unknown_vrid", "version_mismatch", "auth_invalid_type", "auth_type_mismatch",
        "auth_failure", "interval_mismatch", "address_count", "address_list", "not_peer",
        "not_group", "owner", "follow_mismatch")


# ------------------------------------------------------- owner_ignore_adverts

def owner(**config):
    engine = engine_with(priority=255, **config)
    assert engine.state(0) == "MASTER"
    return engine


def test_an_owner_that_ignores_adverts_drops_them_before_counting_them():
    # keepalived 2.3.3's owner_ignore_adverts (on for an owner in strict mode): an
    # advert that would make it step down (priority 255 too, from a higher address)
    # is dropped, recorded with its own reason and counted as such, not as received.
    engine = owner(owner_ignore_adverts=True)
    feed(engine, v2(255))
    assert engine.state(0) == "MASTER" and not engine.take_events()
    assert record(engine) == {
        "instance": 0, "ifindex": 2, "reason": "owner", "sender": packed(PEER), "count": 1,
        "detail": (255, 255), "address": None, "version": 2, "vrid": 51}
    counters = engine.counters(0)
    assert (counters["adverts_received"], counters["owner_ignored_adverts"]) == (0, 1)


def test_without_it_the_same_advert_makes_the_owner_step_down():
    engine = owner()
    feed(engine, v2(255))
    assert engine.state(0) == "BACKUP"
    assert engine.take_drops(True) == ([], 0)
    counters = engine.counters(0)
    assert (counters["adverts_received"], counters["owner_ignored_adverts"]) == (1, 0)


def test_it_applies_only_while_the_effective_priority_is_255():
    engine = owner(owner_ignore_adverts=True)
    engine.set_base_priority(0, 200, SECOND // 2)     # `hivrrp set-priority`: no owner now
    engine.take_events()
    feed(engine, v2(255))
    assert engine.state(0) == "BACKUP"
    assert engine.counters(0)["owner_ignored_adverts"] == 0


def test_checks_before_it_still_come_first():
    # As keepalived: a wrong password is an authentication failure, not an owner drop.
    engine = owner(owner_ignore_adverts=True)
    feed(engine, v2(255, auth=b"4321"))
    assert record(engine)["reason"] == "auth_failure"


# ---------------------------------------------------------------- causes

def as_master(priority=254):
    engine = engine_with(priority=priority)
    engine.expire(10 * SECOND)
    assert engine.state(0) == "MASTER"
    engine.take_events()
    return engine


def test_a_master_stepping_down_names_the_advert_that_outranked_it():
    engine = as_master()
    feed(engine, v2(255))
    [event] = engine.take_events(causes=True)
    assert event[1:4] == ("MASTER", "BACKUP", "higher_priority")
    assert event[5] == (packed(PEER), 255, 254)


def test_the_cause_is_the_events_not_the_latest_advert():
    # A second advert in the same batch replaces the master heard; the event
    # keeps the one that made the master step down.
    engine = as_master(100)
    feed(engine, v2(255), v2(200, src="192.0.2.21"))
    assert engine.master_address(0) == "192.0.2.21"
    [event] = engine.take_events(causes=True)
    assert event[5] == (packed(PEER), 255, 100)


def test_a_takeover_names_the_master_that_went_silent_or_none():
    engine = engine_with()
    engine.expire(10 * SECOND)
    [event] = engine.take_events(causes=True)
    assert event[3] == "master_down" and event[5] == (None, 0, 100)
    engine = engine_with()
    feed(engine, v2(150))
    engine.expire(10 * SECOND)
    [event] = engine.take_events(causes=True)
    assert event[3] == "master_down" and event[5] == (packed(PEER), 150, 100)


def test_events_without_causes_keep_their_five_items():
    engine = as_master()
    feed(engine, v2(255))
    [event] = engine.take_events()
    assert len(event) == 5
