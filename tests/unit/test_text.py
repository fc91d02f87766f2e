"""Counts in log lines: "1 instance", never "1 instances"."""

from hivrrp.text import plural


def test_plural():
    assert plural(1, "instance") == "1 instance"
    assert [plural(n, "instance") for n in (0, 2, 4000)] == [
        "0 instances", "2 instances", "4000 instances"]
    assert plural(1, "error") == "1 error" and plural(2, "error") == "2 errors"
    assert plural(2, "VIP") == "2 VIPs" and plural(1, "VIP") == "1 VIP"
    assert plural(3, "address") == "3 addresses" and plural(2, "process") == "2 processes"
    assert plural(2, "entry") == "2 entries" and plural(2, "key") == "2 keys"
    assert plural(5, "more connection") == "5 more connections"
    assert plural(2, "child", "children") == "2 children" and plural(1, "child") == "1 child"
