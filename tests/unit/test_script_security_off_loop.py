"""Issue 18 point 4: the notify-script security check of a load runs off the
event loop, each user resolved once per load.

On the loop, 1,000 instances with six distinct notify lines each held it
1.0-1.3 s during a SIGHUP (2-3 getpwnam per command line through NSS): with
0.1 s adverts the peer takes over. Counted here by thread rather than timed.
"""

import asyncio
import grp
import pwd
import threading

from helpers.fakedaemon import reload, settle, started
from helpers.plans import ADDRESSES, LINKS
from hivrrp.notify import scriptrun, scriptsec

NO_USER = "hivrrp-test-no-such-user"     # keepalived_script stand-in: absent on any host
EVENTS = ("notify_master", "notify_backup", "notify_fault", "notify_stop", "notify_deleted",
          "notify")


def config(instances: int, generation: int) -> str:
    # advert_int 255 (v2): no instance leaves BACKUP, so no notify runs meanwhile; a
    # weighted script holds no instance in INIT until its first result.
    text = ['vrrp_script chk {\n    script "/bin/true"\n    interval 1000\n    weight 10\n}\n']
    for i in range(instances):
        notify = "".join(f'    {e} "/bin/true {e} vi{i} {generation}"\n' for e in EVENTS)
        text.append(f"vrrp_instance vi{i} {{\n    interface eth0\n    virtual_router_id {i + 1}\n"
                    f"    advert_int 255\n    virtual_ipaddress {{\n        10.0.{i}.1/32\n    }}\n"
                    f"    track_script {{\n        chk\n    }}\n{notify}}}\n")
    return "".join(text)


def test_reload_looks_no_user_up_on_the_loop(tmp_path, monkeypatch):
    monkeypatch.setattr(scriptsec, "DEFAULT_SCRIPT_USER", NO_USER)
    monkeypatch.setattr(scriptrun, "DEFAULT_SCRIPT_USER", NO_USER)
    calls: list[tuple[str, str, threading.Thread]] = []
    real_user, real_group = pwd.getpwnam, grp.getgrnam

    def user(name):
        calls.append(("user", name, threading.current_thread()))
        return real_user(name)

    def group(name):
        calls.append(("group", name, threading.current_thread()))
        return real_group(name)

    async def scenario():
        loop_thread = threading.current_thread()
        daemon = await started(tmp_path, config(100, 0), LINKS, ADDRESSES, monkeypatch)
        await settle(daemon)
        assert set(daemon.plan.states().values()) == {"BACKUP"}
        monkeypatch.setattr(pwd, "getpwnam", user)
        monkeypatch.setattr(grp, "getgrnam", group)
        await reload(daemon, config(100, 1))
        monkeypatch.setattr(pwd, "getpwnam", real_user)
        monkeypatch.setattr(grp, "getgrnam", real_group)
        # The reload happened and its verdicts are in use: 600 new command lines.
        assert daemon.lifecycle.reloads["ok"] == 1
        assert len(daemon.notifications.security.verdicts) >= 600
        assert daemon.notifications.allows(daemon.plan.config.instances[5].notify["master"])
        assert set(daemon.plan.states().values()) == {"BACKUP"}
        await daemon.shutdown()
        return loop_thread

    loop_thread = asyncio.run(asyncio.wait_for(scenario(), 60))
    on_loop = [(kind, name) for kind, name, thread in calls if thread is loop_thread]
    assert on_loop == []
    # Off the loop, once per load: the default script user (absent), not once per line
    # (1,203 on the loop before). The vrrp_script's first run may resolve its own
    # identity meanwhile, on a worker thread too (scriptrun.Identities): at most one more.
    off_loop = [(kind, name) for kind, name, _ in calls]
    assert ("user", NO_USER) in off_loop and len(off_loop) <= 2, off_loop
