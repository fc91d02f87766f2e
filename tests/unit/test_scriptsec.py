"""scriptsec: keepalived's enable_script_security rules (lib/notify.c check_security)."""

import os
import shlex

import pytest

from hivrrp.config.model import Script
from hivrrp.notify import scriptsec
from hivrrp.notify.scriptsec import check_script, check_scripts, insecure_reason

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="ownership tests need root")


@pytest.fixture
def bindir(tmp_path):
    # pytest's tmp_path chain is root-owned and not writable by others.
    d = tmp_path / "bin"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    return d


def make(directory, name="notify.sh", mode=0o755):
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def script(path, user=None):
    return Script(command=shlex.quote(str(path)), argv=[str(path)], user=user)


def test_root_owned_script_in_safe_directories_is_safe(bindir):
    assert insecure_reason(str(make(bindir))) is None
    assert insecure_reason("/bin/sh") is None


def test_world_writable_script_is_named_with_its_mode(bindir):
    path = make(bindir, mode=0o777)
    assert insecure_reason(str(path)) == f"{path} is writable by non-root users (mode 0777)"


def test_group_write_is_fine_only_for_the_root_group(bindir):
    path = make(bindir, mode=0o775)
    assert insecure_reason(str(path)) is None
    os.chown(path, 0, 1000)
    assert insecure_reason(str(path)) == f"{path} is writable by non-root users (mode 0775)"


def test_a_writable_directory_on_the_path_is_named(bindir):
    path = make(bindir)
    bindir.chmod(0o777)
    assert insecure_reason(str(path)) == f"directory {bindir} is writable by non-root users (mode 0777)"


def test_a_sticky_directory_is_fine_but_not_a_non_root_owner(bindir):
    path = make(bindir)
    bindir.chmod(0o1777)
    assert insecure_reason(str(path)) is None
    os.chown(bindir, 1000, 0)
    assert insecure_reason(str(path)) == f"directory {bindir} is owned by uid 1000, not root"


def test_a_script_owned_by_another_user_is_unsafe(bindir):
    path = make(bindir)
    os.chown(path, 1000, 1000)
    assert insecure_reason(str(path)) == f"{path} is owned by uid 1000, not root"


def test_missing_script_and_non_file(bindir):
    assert insecure_reason(str(bindir / "nope.sh")) == f"{bindir / 'nope.sh'} not found"
    assert insecure_reason(str(bindir)) == f"{bindir} is not a regular file"


def test_a_bare_name_is_looked_up_in_path(bindir, monkeypatch):
    path = make(bindir, "hivrrp-notify", mode=0o777)
    monkeypatch.setenv("PATH", f"/nonexistent:{bindir}")
    assert insecure_reason("hivrrp-notify") == f"{path} is writable by non-root users (mode 0777)"
    path.chmod(0o755)
    assert insecure_reason("hivrrp-notify") is None
    assert insecure_reason("hivrrp-missing").startswith("hivrrp-missing not found in PATH")


def test_a_symlink_is_judged_by_its_target(tmp_path, bindir):
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    target = make(unsafe, "real.sh")
    link = bindir / "notify"
    link.symlink_to(target)
    assert insecure_reason(str(link)) == f"directory {unsafe} is writable by non-root users (mode 0777)"


def test_a_symlink_in_an_unsafe_directory_is_unsafe_even_to_a_safe_target(tmp_path, bindir):
    # Stricter than keepalived, which executes the resolved path: we execute
    # the path as written, so whoever can replace the link controls the script.
    target = make(bindir)
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    (unsafe / "notify").symlink_to(target)
    assert insecure_reason(str(unsafe / "notify")) == \
        f"directory {unsafe} is writable by non-root users (mode 0777)"


def test_check_script_refuses_insecure_root_scripts_only_when_enabled(bindir):
    path = make(bindir, mode=0o777)
    refused = check_script(script(path), enabled=True, script_user="root")
    assert refused == scriptsec.Verdict(False, f"{path} is writable by non-root users (mode 0777)", True)
    allowed = check_script(script(path), enabled=False, script_user="root")
    assert allowed.runnable and allowed.insecure and str(path) in allowed.message


def test_an_unprivileged_script_user_needs_no_path_protection(bindir):
    path = make(bindir, mode=0o777)
    assert check_script(script(path, user="nobody"), enabled=True) == scriptsec.Verdict(True)


def test_a_setuid_root_script_needs_protection_even_for_an_unprivileged_user(bindir):
    path = make(bindir, mode=0o4777)
    verdict = check_script(script(path, user="nobody"), enabled=True)
    assert not verdict.runnable and verdict.insecure


def test_not_executable_or_missing_is_never_runnable(bindir):
    path = make(bindir, mode=0o644)
    verdict = check_script(script(path), enabled=False, script_user="root")
    assert not verdict.runnable and "not executable" in verdict.message
    missing = check_script(script(bindir / "gone.sh"), enabled=False, script_user="root")
    assert missing == scriptsec.Verdict(False, f"{bindir / 'gone.sh'} not found", missing=True)


def test_unknown_users(bindir):
    path = make(bindir)
    assert check_script(script(path, user="no-such-user-hivrrp"), True).message == \
        "script user 'no-such-user-hivrrp' does not exist"


def test_security_without_a_script_user_refuses_the_root_default(bindir, monkeypatch):
    # keepalived: "Unable to set default user keepalived_script for script".
    monkeypatch.setattr(scriptsec, "DEFAULT_SCRIPT_USER", "no-such-user-hivrrp")
    path = make(bindir)
    assert not check_script(script(path), enabled=True).runnable
    assert check_script(script(path), enabled=False).runnable
    monkeypatch.setattr(scriptsec, "DEFAULT_SCRIPT_USER", "nobody")
    assert scriptsec.run_as(script(path)) == ("nobody", None)
    assert scriptsec.run_as(script(path), "root", "adm") == ("root", "adm")
    assert check_script(script(path), enabled=True).runnable


def test_check_scripts_report(bindir):
    good, bad = script(make(bindir)), script(make(bindir, "bad.sh", 0o777))
    report = check_scripts([good, None, bad, bad], enabled=True, script_user="root")
    assert report.allows(good) and not report.allows(bad)
    assert report.messages == [(f"script {bad.command!r} disabled: "
                                f"{bindir / 'bad.sh'} is writable by non-root users (mode 0777)")]
    lax = check_scripts([good, bad], enabled=False, script_user="root")
    assert lax.allows(bad)
    assert lax.messages[-1] == ("SECURITY VIOLATION - scripts are being executed but "
                                "script_security not enabled. There are insecure scripts.")


def test_a_verdict_belongs_to_the_user_a_script_runs_as(tmp_path):
    # From a race review: keyed by command alone, the unprivileged check let
    # the same world-writable script run as root.
    cmd = tmp_path / "x.sh"
    cmd.write_text("#!/bin/sh\n")
    cmd.chmod(0o777)
    as_nobody = Script(str(cmd), [str(cmd)], "nobody", None)
    as_root = Script(str(cmd), [str(cmd)], "root", None)
    assert not check_scripts([as_root], enabled=True).allows(as_root)
    both = check_scripts([as_nobody, as_root], enabled=True)
    assert not both.allows(as_root)
    # A script the report never saw is judged on the spot, not waved through.
    assert not check_scripts([], enabled=True).allows(as_root)


def test_each_user_and_path_is_resolved_once_per_load(bindir, monkeypatch):
    # 1,000 instances x 6 notify lines: one script with per-instance arguments
    # is one user lookup and one walk of its path, not 2-3 lookups per line.
    monkeypatch.setattr(scriptsec, "DEFAULT_SCRIPT_USER", "no-such-user-hivrrp")
    path = make(bindir)
    users, walks = [], []
    real_user, real_check = scriptsec.pwd.getpwnam, scriptsec._check_path
    monkeypatch.setattr(scriptsec.pwd, "getpwnam", lambda name: users.append(name) or
                        real_user(name))
    monkeypatch.setattr(scriptsec, "_check_path", lambda *a: walks.append(a[0]) or
                        real_check(*a))
    lines = [Script(f"{path} master vi{i}", [str(path), "master", f"vi{i}"]) for i in range(600)]
    report = check_scripts(lines + [script(bindir / "gone.sh")], enabled=False)
    assert users == ["no-such-user-hivrrp"]
    assert walks == [str(path), str(bindir / "gone.sh")]
    assert all(report.allows(line) for line in lines)
    assert users == ["no-such-user-hivrrp"]        # lookups after the load: none
    # One message per problem, not one per command line.
    many = check_scripts([script(bindir / "gone.sh"), Script(f"{bindir}/gone.sh x",
                                                             [f"{bindir}/gone.sh", "x"])],
                         enabled=True, script_user="root")
    assert many.messages == [f"script '{bindir}/gone.sh' disabled: {bindir}/gone.sh not found "
                             "(and 1 more command line like it)"]


def test_a_verdict_is_true_when_runnable_and_says_why_not(bindir):
    good = check_script(script(make(bindir)), enabled=True, script_user="root")
    assert good and good.refusal is None
    missing = check_script(script(bindir / "gone.sh"), enabled=True, script_user="root")
    assert not missing and missing.refusal == f"{bindir / 'gone.sh'} not found"
    unsafe = check_script(script(make(bindir, "bad.sh", 0o777)), enabled=True, script_user="root")
    assert not unsafe and unsafe.refusal == (f"refused by script security: {bindir / 'bad.sh'} "
                                             "is writable by non-root users (mode 0777)")
