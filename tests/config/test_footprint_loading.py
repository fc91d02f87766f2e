"""The daemon's ways of keeping less memory: compacted configurations, parsing
in a child process, and pyroute2 without its package __init__."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from hivrrp.config import load
from hivrrp.config.isolated import load_isolated
from hivrrp.config.model import EMPTY

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "conf" / "article").glob("*.conf")) + [ROOT / "conf" / "large-4000.conf"]


def described(result) -> dict:
    return {"instances": [i.as_dict() for i in result.config.instances],
            "global": repr(result.config.global_defs),
            "groups": repr(result.config.sync_groups),
            "scripts": repr(result.config.scripts),
            "processes": repr(result.config.track_processes),
            "files": repr(result.config.track_files),
            "errors": [d.as_dict() for d in result.errors],
            "warnings": [d.as_dict() for d in result.warnings]}


@pytest.mark.parametrize("path", CONFIGS[:3] + CONFIGS[-1:], ids=lambda p: p.name)
def test_child_process_load_gives_the_same_configuration(path):
    here, there = load(str(path)), load_isolated(str(path))
    assert described(there) == described(here)
    assert [i == j for i, j in zip(there.config.instances, here.config.instances)] == \
        [True] * len(here.config.instances)
    # One file position per instance, shared by its VIPs, as in-process loading keeps it.
    assert all(vip.where is inst.where for inst in there.config.instances for vip in inst.vips)


def test_errors_come_back_from_the_child_as_diagnostics(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("vrrp_instance A {\n interface eth0\n priority 300\n}\n")
    result = load_isolated(str(conf))
    assert not result.ok
    assert result.errors[0].where.file == str(conf)
    assert [d.as_dict() for d in result.errors] == [d.as_dict() for d in load(str(conf)).errors]


def test_a_child_that_cannot_run_falls_back_to_loading_here(tmp_path, monkeypatch, caplog):
    conf = tmp_path / "ok.conf"
    conf.write_text("vrrp_instance A {\n interface eth0\n virtual_router_id 7\n"
                    " virtual_ipaddress {\n 192.0.2.7/24\n }\n}\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with caplog.at_level(logging.WARNING, logger="hivrrp"):
        result = load_isolated(str(conf))
    assert result.ok and result.config.instances[0].vrid == 7
    assert "loading here" in caplog.text


def test_compacted_instances_are_read_only_and_share_their_empties():
    config = load(str(ROOT / "conf" / "large-4000.conf"), check_host=False).config
    first, second = config.instances[:2]
    assert isinstance(first.vips, tuple) and first.routes is second.routes == ()
    assert first.garp is EMPTY and second.notify is EMPTY
    same_link = [i for i in config.instances if i.interface == first.interface]
    assert len(same_link) > 1 and all(i.interface is first.interface for i in same_link)
    with pytest.raises(TypeError):
        first.garp["x"] = 1            # a shared empty must never be filled
    again = pickle.loads(pickle.dumps(config))
    assert again.instances[0].garp is EMPTY          # still shared after the trip


def test_the_daemon_imports_pyroute2_without_its_package_init():
    code = ("import sys, hivrrp.netlink as n; I = n.iproute_class();"
            "assert 'pyroute2.ndb' not in sys.modules and 'sqlite3' not in sys.modules, 'heavy';"
            "from pyroute2 import IPRoute, NDB;"      # someone else's full import still works
            "assert IPRoute is I and NDB.__name__ == 'NDB'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
