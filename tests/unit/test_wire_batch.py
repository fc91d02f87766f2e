"""The batch decoder and the prebuilt adverts the engine will use."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP

from helpers.packets import scapy_recomputed_checksum, scapy_v6, scapy_vrrp
from hivrrp import _wire


def test_batch_decodes_each_slot_like_a_single_decode():
    good = bytes(IP(src="192.0.2.1", dst="224.0.0.18", ttl=255) / VRRP(vrid=3, priority=120,
                                                                       addrlist=["192.0.2.3"]))
    low_ttl = bytes(IP(src="192.0.2.2", dst="224.0.0.18", ttl=64) / VRRP(vrid=4))
    v6 = _wire.encode(version=3, vrid=5, priority=90, interval=10, addresses=["fe80::5"],
                      family=6, src="fe80::2", dst="ff02::12")
    batch = _wire.RxBatch(capacity=8, slot_size=256)
    batch.add_ipv4(good, ifindex=11)
    batch.add_ipv4(low_ttl, ifindex=12)
    batch.add_ipv6(v6, "fe80::2", "ff02::12", 255, ifindex=13)
    batch.add_ipv4(good[:30])
    assert len(batch) == 4
    assert batch.decode() == 2
    assert [batch[i].error for i in range(4)] == [None, "ttl", None, "length"]
    assert [batch[i].ifindex for i in range(3)] == [11, 12, 13]
    assert (batch[0].vrid, batch[0].priority, batch[2].vrid, batch[2].addresses) == (
        3, 120, 5, ("fe80::5",))
    assert batch.reason_counts() == {"ok": 2, "ttl": 1, "length": 1}
    for i, data in enumerate([good, low_ttl]):
        assert batch[i].as_dict() == _wire.decode_ipv4(data).as_dict()
    batch.clear()
    assert len(batch) == 0 and batch.decode() == 0
    with pytest.raises(IndexError):
        batch[0]


def test_batch_full_and_oversized_datagrams():
    batch = _wire.RxBatch(capacity=2, slot_size=40)
    packet = bytes(IP(src="192.0.2.1", dst="224.0.0.18", ttl=255) /
                   VRRP(vrid=3, addrlist=["192.0.2.3", "192.0.2.4"]))
    assert len(packet) > 40
    batch.add_ipv4(packet)  # cut to the slot, as recvmmsg truncates
    batch.add_ipv4(b"")
    with pytest.raises(_wire.WireError):
        batch.add_ipv4(packet)
    batch.decode()
    assert (batch[0].error, batch[1].error) == ("length", "length")


def test_batch_argument_errors():
    with pytest.raises(_wire.WireError):
        _wire.RxBatch(capacity=0)
    batch = _wire.RxBatch(capacity=2)
    with pytest.raises(_wire.WireError):
        batch.add_ipv6(b"x" * 8, "192.0.2.1", "ff02::12", 255)
    with pytest.raises(_wire.WireError):
        batch.add_ipv4(b"x" * 20, min_ttl=300)


@given(prio=st.integers(0, 255), interval=st.integers(1, 255), prio2=st.integers(0, 255),
       interval2=st.integers(1, 255))
def test_v2_refresh_keeps_a_valid_checksum(prio, interval, prio2, interval2):
    table = _wire.AdvertTable(4)
    i = table.add(version=2, vrid=51, priority=prio, interval=interval,
                  addresses=["192.0.2.26"], auth_type=1, auth_data=b"1234")
    table.refresh(i, prio2, interval2)
    ip, layer = scapy_vrrp(_wire.ipv4_packet(table.message(i), "192.0.2.1", "224.0.0.18"))
    assert (layer.priority, layer.adv, layer.authtype) == (prio2, interval2, 1)
    assert layer.chksum == scapy_recomputed_checksum(ip)


@given(prio=st.integers(0, 255), interval=st.integers(1, 4095))
def test_v3_refresh_keeps_a_valid_checksum(prio, interval):
    table = _wire.AdvertTable(4)
    v4 = table.add(version=3, vrid=9, priority=100, interval=100, addresses=["192.0.2.9"],
                   src="192.0.2.1", dst="192.0.2.2")
    v6 = table.add(version=3, vrid=9, priority=100, interval=100, addresses=["fe80::9"],
                   family=6, src="fe80::1", dst="fd00::2")
    table.refresh(v4, prio, interval)
    table.refresh(v6, prio, interval)
    ip, layer = scapy_vrrp(_wire.ipv4_packet(table.message(v4), "192.0.2.1", "192.0.2.2"))
    assert (layer.priority, layer.adv) == (prio, interval)
    assert layer.chksum == scapy_recomputed_checksum(ip)
    ip6, layer6 = scapy_v6(table.message(v6), "fe80::1", "fd00::2")
    assert (layer6.priority, layer6.adv) == (prio, interval)
    assert layer6.chksum == scapy_recomputed_checksum(ip6)


def test_refresh_all_and_limits():
    table = _wire.AdvertTable(3)
    for vrid in (1, 2, 3):
        table.add(version=2, vrid=vrid, priority=100, interval=1, addresses=["192.0.2.1"])
    table.refresh_all(0, 2)  # e.g. every master releasing at shutdown
    for i in range(3):
        advert = _wire.decode_ipv4(_wire.ipv4_packet(table.message(i), "192.0.2.9",
                                                     "224.0.0.18"))
        assert (advert.error, advert.vrid, advert.priority, advert.interval) == (None, i + 1,
                                                                                 0, 2)
    with pytest.raises(_wire.WireError):
        table.add(version=2, vrid=4, priority=100, interval=1)
    with pytest.raises(_wire.WireError):
        table.refresh(0, 100, 0)
    with pytest.raises(_wire.WireError):
        table.refresh(0, 256, 1)
    with pytest.raises(IndexError):
        table.message(3)


def test_refresh_all_interval_limits_follow_the_versions_in_the_table():
    table = _wire.AdvertTable(2)
    table.add(version=3, vrid=1, priority=100, interval=100, src="192.0.2.1", dst="224.0.0.18")
    table.refresh_all(100, 4095)  # v3 counts centiseconds: 40.95 s is the maximum
    advert = _wire.decode_ipv4(_wire.ipv4_packet(table.message(0), "192.0.2.1", "224.0.0.18"))
    assert (advert.error, advert.interval) == (None, 4095)
    with pytest.raises(_wire.WireError):
        table.refresh_all(100, 0)
    table.add(version=2, vrid=2, priority=100, interval=1)
    with pytest.raises(_wire.WireError):
        table.refresh_all(100, 256)  # v2 has one byte of seconds


@pytest.mark.parametrize("kwargs, message", [
    (dict(version=2, vrid=0, priority=1, interval=1), "VRID"),
    (dict(version=2, vrid=1, priority=256, interval=1), "priority"),
    (dict(version=2, vrid=1, priority=1, interval=256), "interval"),
    (dict(version=3, vrid=1, priority=1, interval=4096, src="192.0.2.1", dst="224.0.0.18"),
     "interval"),
    (dict(version=4, vrid=1, priority=1, interval=1), "version"),
    (dict(version=2, vrid=1, priority=1, interval=1, family=6), "IPv4 only"),
    (dict(version=3, vrid=1, priority=1, interval=1, auth_type=1, pseudo_header=False),
     "authentication"),
    (dict(version=2, vrid=1, priority=1, interval=1, auth_data=b"123456789"), "auth data"),
    (dict(version=2, vrid=1, priority=1, interval=1, addresses=["fd00::1"]), "IPv4"),
    (dict(version=2, vrid=1, priority=1, interval=1, addresses=["not-an-ip"]), "address"),
    (dict(version=2, vrid=1, priority=1, interval=1, addresses=["192.0.2.1"] * 256), "255"),
    (dict(version=3, vrid=1, priority=1, interval=1), "src"),
])
def test_encode_rejects_bad_fields(kwargs, message):
    with pytest.raises(_wire.WireError, match=message):
        _wire.encode(**kwargs)


def test_255_addresses_fit():
    v6 = _wire.encode(version=3, vrid=1, priority=1, interval=1, family=6, src="fe80::1",
                      dst="ff02::12", addresses=[f"fd00::{i:x}" for i in range(255)])
    assert len(v6) == 8 + 255 * 16
    advert = _wire.decode_ipv6(v6, "fe80::1", "ff02::12", 255)
    assert advert.error is None and advert.count == 255 and advert.addresses[-1] == "fd00::fe"
