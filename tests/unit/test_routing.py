"""virtual_routes / virtual_rules entries into netlink requests (the kernel's view is
checked in tests/netns/test_daemon.py; here, what never reaches the kernel)."""

import socket

import pytest

from hivrrp.kernel.routing import route_spec, rule_spec


def test_rule_prefixes_set_the_family_and_lengths():
    spec = rule_spec({"from": "fd00:1::/64", "table": "100"}, family=4)
    assert spec["family"] == socket.AF_INET6
    assert (spec["src"], spec["src_len"], spec["table"]) == ("fd00:1::", 64, 100)
    assert "dst" not in spec
    spec = rule_spec({"from": "all", "to": "198.51.100.7", "lookup": "main"}, family=4)
    assert (spec["dst"], spec["dst_len"], spec["table"]) == ("198.51.100.7", 32, 254)
    assert "src" not in spec


def test_rule_numbers_in_hex_and_ranges():
    spec = rule_spec({"fwmark": "0x21/0xff", "realms": "3/4", "sport": "1000-2000",
                      "dport": "443", "table": "7"}, family=4)
    assert (spec["fwmark"], spec["fwmask"]) == (0x21, 0xFF)
    assert spec["flow"] == (3 << 16) | 4
    assert (spec["sport_range"], spec["dport_range"]) == ("1000:2000", "443:443")


def test_rule_actions_and_inversion():
    spec = rule_spec({"not": True, "from": "10.1.0.0/16", "prohibit": True}, family=4)
    assert spec["action"] == 8 and spec["flags"] == 2
    assert rule_spec({"goto": "1005"}, family=4)["action"] == "FR_ACT_GOTO"


@pytest.mark.parametrize("options, message", [
    ({"from": "192.0.2.0/24"}, "needs a table"),
    ({"from": "192.0.2.0/24", "table": "vrf-blue"}, "unknown table"),
])
def test_rules_the_kernel_would_refuse_are_refused_here(options, message):
    with pytest.raises(ValueError, match=message):
        rule_spec(options, family=4)


def test_route_default_follows_the_instance_family():
    assert route_spec("default", {}, 6, lambda name: 1)["dst"] == "::/0"
    spec = route_spec("default", {"via": "192.0.2.254", "table": "local"}, 4, lambda name: 1)
    assert (spec["dst"], spec["gateway"], spec["table"]) == ("0.0.0.0/0", "192.0.2.254", 255)
