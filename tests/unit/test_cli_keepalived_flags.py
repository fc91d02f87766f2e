"""keepalived's command line on `hivrrp`: each flag does what it does there,
is harmless, or is refused with the reason; none is silently ignored."""

import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hivrrp import cli
from hivrrp.ops.keepalived_args import HARMLESS, REFUSED, parse_umask

GOOD = """vrrp_instance VI_1 {
    interface eth1
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.26/24
    }
}
"""
BAD = GOOD.replace("virtual_router_id 51", "virtual_router_id 300")
HARMLESS_FLAGS = {"log_console": "-l", "log_detail": "-D", "vrrp_only": "-P", "no_bfd": "-B",
                  "no_syslog": "-G", "dont_respawn": "-R", "dont_release_ipvs": "-I"}


@pytest.fixture
def files(tmp_path):
    good, bad = tmp_path / "good.conf", tmp_path / "bad.conf"
    good.write_text(GOOD)
    bad.write_text(BAD)
    return str(good), str(bad)


@pytest.fixture
def ran(monkeypatch):
    """`hivrrp run` replaced by a recorder of what it was asked (and the umask then)."""
    calls = []

    def fake_run(**kwargs):
        mask = os.umask(0)
        os.umask(mask)
        calls.append({**kwargs, "umask": mask})

    monkeypatch.setattr(cli.run, "callback", fake_run)
    mask = os.umask(0o022)
    yield calls
    os.umask(mask)


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_f_alone_refuses_with_a_hint_instead_of_help_and_zero(files, ran):
    result = invoke("-f", files[0])
    assert result.exit_code == 2
    assert "keepalived would fork into the background, and hivrrp never forks" in result.stderr
    assert "hivrrp -n -f FILE" in result.stderr
    assert "Commands:" not in result.output     # not the help
    assert ran == []


def test_bare_hivrrp_still_prints_help():
    result = invoke()
    assert result.exit_code == 0 and "Commands:" in result.stdout


def test_dont_fork_runs_the_daemon_with_keepalived_flags_mapped(files, ran, tmp_path):
    pid = str(tmp_path / "ka.pid")
    result = invoke("--dont-fork", "-f", files[0], "-i", "left", "-p", pid, "-u", "027",
                    *HARMLESS_FLAGS.values())
    assert result.exit_code == 0, result.output
    [call] = ran
    assert (call["config_file"], call["config_id"], call["pid_file"]) == (files[0], "left", pid)
    assert call["umask"] == 0o027
    # The rest is hivrrp run's own defaults.
    assert call["log_level"] == "info" and call["metrics_address"] is None


def test_dont_fork_alone_uses_keepalived_defaults(ran):
    assert invoke("-n").exit_code == 0
    [call] = ran
    assert call["config_file"] == "/etc/keepalived/keepalived.conf"
    assert call["pid_file"] == cli.default_pid_file() and call["umask"] == 0o022


@pytest.mark.parametrize("name", HARMLESS)
def test_harmless_flags_need_n_too(name, ran):
    result = invoke(HARMLESS_FLAGS[name])
    assert result.exit_code == 2 and "without -n" in result.stderr and ran == []


def test_every_harmless_flag_is_declared_with_its_help():
    result = invoke("--help")
    for flag in HARMLESS_FLAGS.values():
        assert flag in result.stdout
    assert set(HARMLESS_FLAGS) == set(HARMLESS)


@pytest.mark.parametrize("refused", REFUSED, ids=lambda r: r.flags[1])
@pytest.mark.parametrize("spelling", [0, 1])
def test_refused_flags_say_why(refused, spelling, ran):
    args = [refused.flags[spelling]] + (["x"] if refused.takes_value else [])
    for extra in ([], ["-n"]):
        result = invoke(*extra, *args)
        assert result.exit_code == 2, result.output
        assert f"keepalived's {'/'.join(refused.flags)} is not supported: {refused.why}" in \
            result.stderr
    assert ran == []


def test_refused_flags_are_hidden_from_help():
    text = invoke("--help").stdout
    assert "--dump-conf" not in text and "--dont-release-vrrp" not in text


def test_version_is_keepalived_v_and_capital_v_is_refused():
    assert invoke("-v").stdout.startswith("hivrrp, version ")
    assert invoke("--version").stdout.startswith("hivrrp, version ")
    result = invoke("-V")
    assert result.exit_code == 2 and "its version is -v/--version" in result.stderr


@pytest.mark.parametrize("function, number", [("STOP", signal.SIGTERM), ("RELOAD", signal.SIGHUP),
                                              ("DATA", signal.SIGUSR1),
                                              ("stats", signal.SIGUSR2)])
def test_signum(function, number):
    result = invoke(f"--signum={function}")
    assert result.exit_code == 0 and result.stdout == f"{int(number)}\n"


@pytest.mark.parametrize("function, words", [("JSON", "hivrrp dump"),
                                             ("STATS_CLEAR", "never cleared"),
                                             ("FOO", "unknown signal function")])
def test_signum_without_a_signal(function, words):
    result = invoke("--signum", function)
    assert result.exit_code == 2 and words in result.stderr and result.stdout == ""


@pytest.mark.parametrize("text, value", [("022", 0o22), ("0x12", 0x12), ("18", 18), ("0", 0),
                                         ("0777", 0o777)])
def test_umask_reads_as_strtoul(text, value):
    assert parse_umask(text) == value


@pytest.mark.parametrize("text", ["u=rwx", "01000", "-1", "", "0x", "1_0", "0x_1f",
                                  "\u0663"])
def test_bad_umask_is_refused(text, ran):
    result = invoke("-n", "-u", text)
    assert result.exit_code == 2 and "-u/--umask" in result.stderr and ran == []


def test_t_checks(files):
    good, bad = files
    assert invoke("-t", "-f", good).exit_code == 0
    result = invoke("-t", "-f", bad)
    assert result.exit_code == 1 and "virtual_router_id: 300 is out of range" in result.stderr
    assert invoke("--config-test", "--use-file", bad, "-D", "-l").exit_code == 1


@pytest.mark.parametrize("args", [["check", "-t", "-f", "{}"], ["check", "{}"],
                                  ["check", "-t", "{}"], ["check", "-f", "{}"],
                                  ["check", "{}", "-f", "{}"]])
def test_check_spellings(files, args):
    good, bad = files
    assert invoke(*[a.format(good) for a in args]).exit_code == 0
    result = invoke(*[a.format(bad) for a in args])
    assert result.exit_code == 1 and "virtual_router_id: 300" in result.stderr


def test_check_with_two_different_files(files):
    result = invoke("check", files[0], "-f", files[1])
    assert result.exit_code == 2 and "two files to check" in result.stderr


def test_group_flags_with_a_command_are_refused(files):
    result = invoke("-f", files[1], "check")
    assert result.exit_code == 2 and "give check its own options" in result.stderr


def hivrrp(*args):
    return subprocess.run([sys.executable, "-m", "hivrrp", *args], capture_output=True,
                          text=True, timeout=60)


def test_exit_codes_as_a_process(files):
    """What a unit or a script sees."""
    good, bad = files
    assert hivrrp("-f", good).returncode == 2
    assert hivrrp("-t", "-f", good).returncode == 0
    assert hivrrp("-t", "-f", bad).returncode == 1
    assert hivrrp("check", "-t", "-f", bad).returncode == 1
