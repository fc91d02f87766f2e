"""Users of notify and track scripts are looked up once per configuration, on
a worker thread: with sssd/LDAP a slow lookup on the loop would stall adverts
(keepalived resolves them once, at config time)."""

import asyncio
import grp
import os
import pwd
import threading

from helpers.scripts import make
from hivrrp.config.diagnostics import Where
from hivrrp.config.model import Script, VrrpScript
from hivrrp.notify.notifier import Notifier
from hivrrp.tracking.scripts import ScriptTrackers


class Lookups:
    """pwd.getpwnam / grp.getgrnam stand-ins: any name is us; counts calls by thread."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, str, int]] = []
        real_pw = pwd.getpwuid(os.geteuid())
        real_gr = grp.getgrgid(os.getegid())

        def getpwnam(name):
            self.calls.append(("getpwnam", name, threading.get_ident()))
            return real_pw

        def getgrnam(name):
            self.calls.append(("getgrnam", name, threading.get_ident()))
            return real_gr
        monkeypatch.setattr(pwd, "getpwnam", getpwnam)
        monkeypatch.setattr(grp, "getgrnam", getgrnam)

    def count(self, which):
        return sum(1 for call in self.calls if call[0] == which)


def test_script_user_is_looked_up_once_per_configuration_never_on_the_loop(tmp_path,
                                                                          monkeypatch):
    lookups = Lookups(monkeypatch)
    done = tmp_path / "count"
    counter = make(tmp_path, "count.sh", f"echo x >> {done}\n")

    async def scenario():
        loop_thread = threading.get_ident()
        n = Notifier(script_user="hivrrp-notify", script_group="hivrrp-notify")
        for configuration in range(2):
            for seq in range(10):
                for inst in range(10):
                    n.instance(f"VI_{inst}", "MASTER", seq, {"master": counter})
            for _ in range(2000):
                if done.exists() and len(done.read_text().split()) == 100 * (configuration + 1):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)       # the last runs' bookkeeping
            assert (lookups.count("getpwnam"), lookups.count("getgrnam")) == \
                (configuration + 1, configuration + 1)
            n.set_script_identity("hivrrp-notify", "hivrrp-notify")   # what a reload does
        await n.close(5)
        return loop_thread, n.runs

    loop_thread, runs = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert runs == {"ok": 200}
    assert len(done.read_text().split()) == 200
    assert lookups.calls and all(thread != loop_thread for *_, thread in lookups.calls)
    assert {name for _, name, _ in lookups.calls} == {"hivrrp-notify"}


def test_a_track_script_user_is_looked_up_once_per_configuration(tmp_path, monkeypatch):
    lookups = Lookups(monkeypatch)
    ran = tmp_path / "ran"
    argv = ["/bin/sh", "-c", f"echo x >> {ran}"]
    vs = VrrpScript("chk", Where("keepalived.conf", 1),
                    Script(" ".join(argv), argv, user="hivrrp-track", group="hivrrp-track"),
                    interval=0.01, timeout=5)

    async def scenario():
        loop_thread = threading.get_ident()
        trackers = ScriptTrackers(asyncio.get_running_loop(), lambda name, up: None)
        trackers.configure({"chk": vs})
        await asyncio.sleep(0.6)        # dozens of runs
        trackers.configure({"chk": vs})          # a reload: looked up again, once
        await asyncio.sleep(0.3)
        await trackers.close()
        return loop_thread

    loop_thread = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert len(ran.read_text().split()) >= 10
    assert (lookups.count("getpwnam"), lookups.count("getgrnam")) == (2, 2)
    assert all(thread != loop_thread for *_, thread in lookups.calls)
