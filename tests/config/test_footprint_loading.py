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
from hivrrp.config.diagnostics import Where
from hivrrp.config.isolated import load_isolated
from hivrrp.config.model import EMPTY, Instance, TrackRef, compact

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
            "warnings": [d.as_dict() for d in result.warnings],
            "infos": [d.as_dict() for d in result.infos]}


# two-node-master.conf: its e-mail settings make an info line, which crosses the pipe too.
@pytest.mark.parametrize("path", CONFIGS[:3] + CONFIGS[-2:], ids=lambda p: p.name)
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
    code = ("import sys, hivrrp.kernel.netlink as n; I = n.iproute_class();"
            "assert 'pyroute2.ndb' not in sys.modules and 'sqlite3' not in sys.modules, 'heavy';"
            "from pyroute2 import IPRoute, NDB;"      # someone else's full import still works
            "assert IPRoute is I and NDB.__name__ == 'NDB'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


# The child process: what it must not pick up, and what happens when it fails.
# (Found by review; each failed before the fix.)

import shutil  # noqa: E402
import stat  # noqa: E402
import textwrap  # noqa: E402

import hivrrp.config.isolated as isolated  # noqa: E402

TWO = ("vrrp_instance A {\n interface eth0\n virtual_router_id 7\n priority 150\n"
       " virtual_ipaddress {\n 192.0.2.7/24\n }\n}\n"
       "vrrp_instance B {\n interface eth0\n virtual_router_id 8\n"
       " virtual_ipaddress {\n 192.0.2.8/24\n }\n}\n")


@pytest.fixture
def two(tmp_path):
    path = tmp_path / "k.conf"
    path.write_text(TWO)
    return str(path)


def wrapper(tmp_path, body: str) -> str:
    """A stand-in for sys.executable: runs `body` (sh), then the real interpreter."""
    script = tmp_path / "python-wrapper"
    script.write_text(f"#!/bin/sh\n{body}\nexec {sys.executable} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_the_child_runs_no_code_from_the_working_directory(tmp_path, two, monkeypatch):
    trap = tmp_path / "cwd"
    trap.mkdir()
    (trap / "json.py").write_text(
        "import pathlib; pathlib.Path(__file__).with_name('RAN').write_text('x')\n"
        "raise ImportError('planted json.py')\n")
    shutil.copytree(ROOT / "src" / "hivrrp", trap / "hivrrp",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "lab", "sim"))
    monkeypatch.chdir(trap)
    result = load_isolated(two)
    assert result.ok and not (trap / "RAN").exists()


def test_a_child_with_other_hivrrp_files_is_a_failed_load_that_says_restart(
        two, monkeypatch):
    monkeypatch.setattr(isolated, "IMPORTED", [["elsewhere/model.py", 1, 2]])
    calls = []
    monkeypatch.setattr(isolated, "load", lambda *a, **k: calls.append(a))
    result = load_isolated(two)
    assert not result.ok and calls == []       # no new reader into old classes here
    assert "restart hivrrp" in result.errors[0].message


def test_a_child_killed_by_a_nameless_signal_is_a_failed_load(tmp_path, two, monkeypatch):
    monkeypatch.setattr(sys, "executable", wrapper(tmp_path, "kill -s RTMIN+1 $$"))
    result = load_isolated(two)
    assert not result.ok and "killed by signal" in result.errors[0].message


def test_no_interpreter_to_run_means_loading_here(two, monkeypatch):
    monkeypatch.setattr(sys, "executable", None)
    result = load_isolated(two)
    assert result.ok and [i.vrid for i in result.config.instances] == [7, 8]


def test_noise_on_the_childs_output_means_loading_here(tmp_path, two, monkeypatch):
    monkeypatch.setattr(sys, "executable", wrapper(tmp_path, "echo 'site banner'"))
    result = load_isolated(two)
    assert result.ok and result.config.instances[0].vrid == 7


def test_a_child_killed_by_a_signal_is_a_failed_load_not_a_parse_here(
        tmp_path, two, monkeypatch):
    monkeypatch.setattr(sys, "executable", wrapper(tmp_path, "kill -TERM $$"))
    calls = []
    monkeypatch.setattr(isolated, "load", lambda *a, **k: calls.append(a))
    result = load_isolated(two)
    assert calls == [] and not result.ok
    assert "killed by SIGTERM" in result.errors[0].message


def test_interface_names_stay_shared_after_the_trip(two):
    a, b = load_isolated(two).config.instances
    assert a.interface == b.interface == "eth0" and a.interface is b.interface


def test_pyroute2_full_init_from_another_thread_is_whole_for_everyone():
    code = textwrap.dedent("""
        import threading
        from hivrrp.kernel.pyroute2_lean import install
        install()
        import pyroute2
        errors = []
        def full():
            try:
                pyroute2.NDB
            except Exception as exc:
                errors.append(exc)
        threads = [threading.Thread(target=full) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            from pyroute2 import IPSet
        except ImportError as exc:
            errors.append(exc)
        for t in threads:
            t.join()
        print('ok' if not errors and '__getattr__' not in pyroute2.__dict__ else errors)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert out.stdout.strip() == "ok", out.stdout + out.stderr


def backup_with_auth(name: str, vrid: int, vips: str) -> str:
    """An instance whose rare settings (state, nopreempt, auth) are the same for every name."""
    return (f"vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n state BACKUP\n"
            f" nopreempt\n authentication {{\n auth_type PASS\n auth_pass secret\n }}\n"
            f" virtual_ipaddress {{\n{vips} }}\n}}\n")


RARE = backup_with_auth("A", 1, " 192.0.2.1/24\n 192.0.2.2\n") + backup_with_auth(
    "B", 2, " 192.0.2.3/24\n") + """\
vrrp_instance C {
    interface eth0
    virtual_router_id 3
    state BACKUP
    notify_master "/bin/true C"
    virtual_ipaddress {
        fd00::0001/64
    }
}
"""


@pytest.mark.parametrize("how", ["here", "child"])
def test_rare_settings_read_back_and_are_shared_by_equal_instances(tmp_path, how):
    path = tmp_path / "rare.conf"
    path.write_text(RARE)
    result = load(str(path), check_host=False) if how == "here" else load_isolated(str(path))
    a, b, c = result.config.instances
    assert (a.nopreempt, a.auth_type, a.auth_pass, a.state) == (True, "PASS", "secret", "BACKUP")
    assert (c.nopreempt, c.auth_type, c.auth_pass, c.preempt_delay) == (False, None, None, 0.0)
    assert c.unicast_peers == () and c.garp is EMPTY and c.complete is True
    assert a._rare is b._rare                    # equal rare settings: one tuple for both
    assert c.notify["master"].argv == ("/bin/true", "C")   # a script: its own, still read
    assert c._rare is not a._rare
    # Written text back as written: ADDR/LEN spelled again, bare ADDR, a non-normal form kept.
    assert [v.text for v in (*a.vips, *c.vips)] == ["192.0.2.1/24", "192.0.2.2", "fd00::0001/64"]
    assert a.vips[1].text is a.vips[1].address
    assert [v.address for v in (*a.vips, *c.vips)] == ["192.0.2.1", "192.0.2.2", "fd00::1"]


def test_a_loaded_instance_can_still_be_changed_and_compacted_again():
    config = load(str(ROOT / "conf" / "large-4000.conf"), check_host=False).config
    first, second = config.instances[:2]
    shared = first._rare
    first.nopreempt = True
    track = TrackRef("interface", "eth9", 0, False, Where("f", 2))
    first.tracks = [track]
    assert first.nopreempt and first.tracks == [track] and not second.nopreempt
    assert second._rare is shared                # the other instance is untouched
    compact(config)
    third = config.instances[2]
    assert first.tracks == (track,) and first._rare is not second._rare
    assert track.where is first.where            # its own line served the checks, done
    assert second._rare is third._rare
    copy = pickle.loads(pickle.dumps(first))
    assert copy == first and copy.nopreempt and copy.settings() == first.settings()


def test_an_unknown_keyword_is_a_type_error_like_a_dataclass():
    with pytest.raises(TypeError, match="unexpected keyword argument 'prio'"):
        Instance("A", Where("f", 1), prio=1)
    assert Instance("A", Where("f", 1), priority=7, nopreempt=True).nopreempt is True


MACRO = """\
vrrp_script chk {
    script "/bin/true"
    weight -20
}
$INSTANCE= \\
vrrp_instance vi_${ID} { \\
    state BACKUP \\
    interface eth0 \\
    virtual_router_id ${ID} \\
    authentication { \\
        auth_type PASS \\
        auth_pass secret \\
    } \\
    virtual_ipaddress { \\
        10.9.${ID}.1/24 dev lo label lo:vip \\
    } \\
    track_script { \\
        chk \\
    } \\
    notify_master "/bin/true master" \\
}
~SEQ(ID, 1, 3) $INSTANCE
"""


@pytest.mark.parametrize("how", ["here", "child"])
def test_what_a_macro_repeats_is_one_object_for_all_its_instances(tmp_path, how):
    path = tmp_path / "macro.conf"
    path.write_text(MACRO)
    result = load(str(path), check_host=False) if how == "here" else load_isolated(str(path))
    assert result.ok, result.errors
    a, b, c = result.config.instances
    assert [i.vrid for i in (a, b, c)] == [1, 2, 3]
    assert a.tracks is b.tracks is c.tracks and a.tracks[0].weight == -20
    assert a.notify is b.notify and a.notify["master"].argv == ("/bin/true", "master")
    assert a._rare is b._rare is c._rare and a.auth_pass == "secret"
    assert a.vips[0].options is b.vips[0].options
    assert dict(a.vips[0].options) == {"dev": "lo", "label": "lo:vip"}
    assert a.state is b.state == "BACKUP"
    # One position for all: the line the macro was expanded from, without its note.
    assert a.where is b.where and (a.where.file, a.where.line) == (str(path), 6)
    assert a.where.note is None and a.as_dict()["line"] == 6


def test_equal_settings_in_another_order_share_one_tuple(tmp_path):
    path = tmp_path / "order.conf"
    path.write_text("vrrp_instance A {\n interface eth0\n virtual_router_id 1\n nopreempt\n"
                    " authentication {\n auth_type PASS\n auth_pass x\n }\n"
                    " virtual_ipaddress {\n 192.0.2.1/24\n }\n}\n"
                    "vrrp_instance B {\n interface eth0\n virtual_router_id 2\n"
                    " authentication {\n auth_type PASS\n auth_pass x\n }\n nopreempt\n"
                    " virtual_ipaddress {\n 192.0.2.2/24\n }\n}\n")
    for result in (load(str(path), check_host=False), load_isolated(str(path))):
        a, b = result.config.instances
        assert a._rare is b._rare and (b.nopreempt, b.auth_pass) == (True, "x")


def test_an_unknown_keyword_in_a_restored_instance_leaves_no_layout_behind():
    from hivrrp.config import model
    before = set(model._LAYOUTS)
    with pytest.raises(KeyError):
        model.restore_instance(("A", Where("f", 1), None, "lo", 1, 100, 1.0, 2, 4, ()),
                               (("nopreempt", True), ("no_such_keyword", 1)))
    assert set(model._LAYOUTS) == before
