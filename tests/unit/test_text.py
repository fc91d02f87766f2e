"""Counts in log lines: "1 instance", never "1 instances"."""

import asyncio
import logging

from helpers.conf import write
from helpers.fakedaemon import started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.daemon.lifecycle import Rejected, read_config
from hivrrp.util.text import plural


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


def test_one_instance_running_and_one_error_rejected(tmp_path, monkeypatch, caplog):
    async def scenario():
        d = await started(tmp_path, instance_text("VI_1", 51, ["192.0.2.51/24"]), LINKS,
                          ADDRESSES, monkeypatch)
        bad = write(tmp_path, "bad.conf", instance_text("VI_1", 51, ["192.0.2.51/24"],
                                                        priority=300))
        return d, await read_config(str(bad), None)

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        daemon, config = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert isinstance(config, Rejected) and "300 is out of range" in config.errors[0]
    messages = [r.getMessage() for r in caplog.records]
    assert "running 1 instance" in messages
    assert "reload rejected (1 error): the running configuration stays" in messages
    assert daemon.status() == "1 instance: 0 master, 1 backup, 0 fault"
