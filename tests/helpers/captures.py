"""Assertions shared by the committed-capture tests and the live keepalived test."""

from __future__ import annotations

from pathlib import Path

from hivrrp._wire import decode_ipv4, decode_ipv6

from helpers.keepalived_capture import PACKETS_PER_CAPTURE, Scenario
from hivrrp.tools.decode.capture import read_vrrp

DATA = Path(__file__).resolve().parent.parent / "data"


def decode_file(path: Path):
    adverts = []
    for datagram in read_vrrp(str(path)):
        if datagram.family == 4:
            adverts.append(decode_ipv4(datagram.data))
        else:
            adverts.append(decode_ipv6(datagram.data, datagram.src, datagram.dst,
                                       datagram.hoplimit))
    return adverts


def assert_matches_scenario(path: Path, scenario: Scenario) -> None:
    adverts = decode_file(path)
    assert len(adverts) == PACKETS_PER_CAPTURE, path
    for advert in adverts:
        assert advert.error is None, advert
        assert advert.checksum == scenario.checksum
        assert (advert.version, advert.type, advert.vrid) == (scenario.version, 1, scenario.vrid)
        assert advert.priority == scenario.priority
        assert advert.interval_cs == scenario.interval_cs
        assert advert.addresses == scenario.addresses
        assert advert.dst == scenario.dst and advert.ttl == 255
        assert advert.auth_type == scenario.auth_type
        assert advert.auth_data == scenario.auth_data
        if advert.family == 6:
            assert advert.src.startswith("fe80:")  # RFC 9568 5.1.2.1: link-local source
