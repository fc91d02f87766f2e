"""Strict mode (`vrrp_strict`, `strict_mode`), one test per rule of keepalived 2.2.7's
vrrp_complete_instance(), and the defaults it sets (accept, owner_ignore_adverts).

keepalived reports each correction as a config error and runs with it: here an error
that is not fatal (`check` fails, the daemon runs). The messages are keepalived's;
tests/netns/test_strict_keepalived_check.py runs keepalived -t on the same rules.
"""

import logging
import subprocess
import sys

import pytest

from helpers.conf import load_text, write
from hivrrp.config.diagnostics import REPEATS_SHOWN, log_problems

STRICT = "global_defs {\n    vrrp_strict\n}\n"


def instance(body: str = "", *, head: str = "", priority: int | None = 100,
             vips: tuple[str, ...] = ("192.0.2.26/24",)) -> str:
    """VI_1 after STRICT: `head` on line 5, the body after the VIPs (line 11 with one VIP
    and no head)."""
    vip_block = ("    virtual_ipaddress {\n" + "".join(f"        {v}\n" for v in vips)
                 + "    }\n") if vips else ""
    prio = f"    priority {priority}\n" if priority is not None else ""
    return (f"vrrp_instance VI_1 {{\n{head}    interface eth0\n    virtual_router_id 51\n"
            f"{prio}{vip_block}{body}}}\n")


def load(tmp_path, text):
    result = load_text(tmp_path, text)
    return result, (result.config.instances[0] if result.config.instances else None)


def corrected(result) -> list[tuple[int, str]]:
    """The errors, each checked to be of the kind the daemon runs with."""
    assert all(not d.fatal for d in result.errors), result.errors
    assert result.ok and not result.clean
    return [(d.where.line, d.message) for d in result.errors]


def test_strict_without_anything_to_correct_is_clean(tmp_path):
    result, inst = load(tmp_path, STRICT + instance())
    assert result.clean and result.warnings == []
    assert inst.strict_mode is True


def test_authentication_is_removed(tmp_path):
    # Debian's sample: PASS under vrrp_strict. keepalived sends no authentication,
    # so neither may we (a keepalived peer drops ours: "received a 1 auth, expecting 0!").
    result, inst = load(tmp_path, STRICT + instance(
        "    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }\n"))
    assert corrected(result) == [
        (11, "(VI_1) Strict mode does not support authentication. Ignoring.")]
    assert (inst.auth_type, inst.auth_pass) == (None, None)


def test_without_strict_mode_authentication_stays(tmp_path):
    result, inst = load(tmp_path, instance(
        "    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }\n"))
    assert result.clean and (inst.auth_type, inst.auth_pass) == ("PASS", "1111")


AH = "    authentication {\n        auth_type AH\n        auth_pass 1111\n    }\n"


def test_ah_is_taken_away_in_strict_mode_and_runs(tmp_path):
    # keepalived 2.2.7 runs it without authentication (-t exits 5); hivrrp refused it
    # at parse time, so `hivrrp run` refused what keepalived runs.
    result, inst = load(tmp_path, STRICT + instance(AH))
    assert corrected(result) == [
        (11, "(VI_1) Strict mode does not support authentication. Ignoring.")]
    assert (inst.auth_type, inst.auth_pass) == (None, None)


def test_ah_is_refused_where_it_would_be_sent(tmp_path):
    # keepalived runs IPsec AH; hivrrp sends none, so the daemon refuses the file
    # rather than run an instance no keepalived peer would accept.
    result, _ = load(tmp_path, instance(AH))
    assert [(d.where.line, d.message) for d in result.fatal] == [
        (9, "(VI_1) auth_type AH (IPsec AH) is not supported by hivrrp; use PASS or no "
            "authentication")]


@pytest.mark.parametrize("head, body, message", [
    ("    version 3\n", AH, "(VI_1) VRRP version 3 does not support authentication. Ignoring."),
    ("", "    authentication {\n        auth_type AH\n    }\n",
     "(VI_1) Authentication specified but no password given. Ignoring"),
])
def test_ah_that_keepalived_takes_away_runs(tmp_path, head, body, message):
    result, inst = load(tmp_path, instance(body, head=head))
    assert [d.message for d in result.errors] == [message] and result.ok
    assert (inst.auth_type, inst.auth_pass) == (None, None)


@pytest.mark.parametrize("prefix", [STRICT, ""])
def test_a_password_alone_is_no_authentication(tmp_path, prefix):
    # keepalived tests auth_type only, and says nothing (-t exits 0).
    result, inst = load(tmp_path, prefix + instance(
        "    authentication {\n        auth_pass 1111\n    }\n"))
    assert result.clean and (inst.auth_type, inst.auth_pass) == (None, None)


def test_ipv6_with_version_2_becomes_version_3(tmp_path):
    result, inst = load(tmp_path, STRICT + instance(
        head="    version 2\n", vips=("fe80::26/64", "fd00::26/64")))
    assert corrected(result) == [
        (5, "(VI_1) cannot use IPv6 with VRRP version 2; setting version 3")]
    assert inst.version == 3


def test_ipv6_with_the_global_version_2_becomes_version_3_without_an_error(tmp_path):
    result, inst = load(tmp_path, "global_defs {\n    vrrp_strict\n    vrrp_version 2\n}\n"
                        + instance(vips=("fe80::26/64",)))
    assert result.errors == [] and inst.version == 3


@pytest.mark.parametrize("state, priority, corrected_state", [
    ("MASTER", 100, "BACKUP"), ("BACKUP", 255, "MASTER")])
def test_the_state_follows_the_priority(tmp_path, state, priority, corrected_state):
    result, inst = load(tmp_path, STRICT + instance(head=f"    state {state}\n",
                                                    priority=priority))
    assert corrected(result) == [(5, "(VI_1) State MASTER must match being address owner")]
    assert inst.state == corrected_state and inst.priority == priority


def test_state_master_without_a_priority_is_the_owner(tmp_path):
    result, inst = load(tmp_path, STRICT + instance(head="    state MASTER\n", priority=None))
    assert result.clean and (inst.state, inst.priority) == ("MASTER", 255)


def test_the_corrected_state_is_what_preempt_delay_is_judged_with(tmp_path):
    # keepalived: state first, so `state MASTER` at priority 100 no longer clears
    # preempt_delay for being MASTER: strict mode does, with its own message.
    result, inst = load(tmp_path, STRICT + instance("    preempt_delay 5\n",
                                                    head="    state MASTER\n"))
    assert corrected(result) == [
        (5, "(VI_1) State MASTER must match being address owner"),
        (12, "(VI_1) preempt_delay is incompatible with strict mode - resetting")]
    assert inst.preempt_delay == 0 and result.warnings == []


def test_a_user_vmac_address_is_cleared(tmp_path):
    result, inst = load(tmp_path, STRICT + instance("    use_vmac vrrp51 02:11:22:33:44:55\n"))
    assert corrected(result) == [
        (11, "(VI_1): cannot specify MAC address with strict mode - clearing")]
    assert inst.vmac_mac is None and inst.use_vmac == "vrrp51"


def test_vmac_xmit_base_is_cleared(tmp_path):
    result, inst = load(tmp_path, STRICT + instance("    use_vmac\n    vmac_xmit_base\n"))
    assert corrected(result) == [
        (12, "(VI_1) xmit_base is incompatible with strict mode - resetting")]
    assert inst.vmac_xmit_base is False


def test_vmac_settings_stay_without_strict_mode(tmp_path):
    result, inst = load(tmp_path, instance("    use_vmac 02:11:22:33:44:55\n"
                                           "    vmac_xmit_base\n"))
    assert result.clean and (inst.vmac_mac, inst.vmac_xmit_base) == ("02:11:22:33:44:55", True)


@pytest.mark.parametrize("keyword, line, default", [
    ("preempt_delay 5", "(VI_1) preempt_delay is incompatible with strict mode - resetting",
     ("preempt_delay", 0.0)),
    ("down_timer_adverts 5",
     "(VI_1) down_timer_adverts is incompatible with strict mode - resetting",
     ("down_timer_adverts", 3)),
    ("accept", "(VI_1) warning - accept mode for VRRP version 2 does not comply with RFC3768 "
               "- resetting", ("accept", False)),
    ("lower_prio_no_advert false",
     "(VI_1) Strict mode requires no lower priority advert. resetting",
     ("lower_prio_no_advert", True)),
    ("higher_prio_send_advert",
     "(VI_1) strict mode requires higher_prio_send_advert to be clear. resetting",
     ("higher_prio_send_advert", False)),
])
def test_each_setting_strict_mode_resets(tmp_path, keyword, line, default):
    result, inst = load(tmp_path, STRICT + instance(f"    {keyword}\n"))
    assert corrected(result) == [(11, line)]
    attribute, value = default
    assert getattr(inst, attribute) == value


@pytest.mark.parametrize("keyword, line", [
    ("garp_lower_prio_repeat 3", "(VI_1) Strict mode requires no repeat garps. resetting"),
    ("garp_lower_prio_delay 2", "(VI_1) Strict mode requires no repeat garp delay. resetting"),
])
def test_lower_priority_garps_are_reset(tmp_path, keyword, line):
    result, inst = load(tmp_path, STRICT + instance(f"    {keyword}\n"))
    assert corrected(result) == [(11, line)]
    assert (inst.garp["lower_prio_repeat"], inst.garp["lower_prio_delay"]) == (0, 0)


def test_the_global_down_timer_adverts_is_reset_at_the_instance(tmp_path):
    result, inst = load(tmp_path, "global_defs {\n    vrrp_strict\n"
                                  "    vrrp_down_timer_adverts 5\n}\n" + instance())
    assert corrected(result) == [
        (5, "(VI_1) down_timer_adverts is incompatible with strict mode - resetting")]
    assert inst.down_timer_adverts == 3


def test_global_lower_priority_settings_give_way_without_an_error(tmp_path):
    # keepalived: the instance's unset settings take strict mode's values, not the global ones.
    result, inst = load(tmp_path, "global_defs {\n    vrrp_strict\n"
                                  "    vrrp_garp_lower_prio_repeat 3\n"
                                  "    vrrp_garp_lower_prio_delay 2\n"
                                  "    vrrp_lower_prio_no_advert false\n"
                                  "    vrrp_higher_prio_send_advert\n}\n" + instance())
    assert result.clean
    assert (inst.garp["lower_prio_repeat"], inst.garp["lower_prio_delay"],
            inst.lower_prio_no_advert, inst.higher_prio_send_advert) == (0, 0, True, False)


@pytest.mark.parametrize("strict, priority, version, written, accept", [
    (False, 100, 2, "", True),
    (False, 100, 2, "    no_accept\n", False),
    (True, 100, 2, "", False),
    (True, 255, 2, "", True),
    (True, 100, 3, "", False),
    (True, 100, 3, "    accept\n", True),       # v3 allows accept mode (RFC 5798)
    (True, 255, 2, "    accept\n", True),
])
def test_accept_mode_is_always_resolved(tmp_path, strict, priority, version, written, accept):
    # The firewall reads Instance.accept: a bool after loading, never None.
    result, inst = load(tmp_path, (STRICT if strict else "") + instance(
        written, head=f"    version {version}\n", priority=priority))
    assert result.errors == []
    assert inst.accept is accept


def test_the_first_ipv6_vip_must_be_link_local(tmp_path):
    # An error for keepalived -t (exit 5), but the instance runs as written.
    result, inst = load(tmp_path, STRICT + instance(vips=("fd00::26/64", "fe80::26/64")))
    assert corrected(result) == [(9, "(VI_1) the first IPv6 VIP address must be link local")]
    assert [v.address for v in inst.vips] == ["fd00::26", "fe80::26"]


def test_the_first_ipv6_vip_may_be_global_without_strict_mode(tmp_path):
    result, _ = load(tmp_path, instance(vips=("fd00::26/64",)))
    assert result.errors == []


@pytest.mark.parametrize("prefix, version", [(STRICT, ""), ("", "    version 3\n")])
def test_an_instance_without_vips_is_refused(tmp_path, prefix, version):
    # keepalived refuses the whole configuration: fatal here, the daemon does not start.
    result, inst = load(tmp_path, prefix + instance(head=version, vips=()))
    assert inst is None and not result.ok
    assert [(d.where.line, d.message) for d in result.fatal] == [
        (len(prefix.splitlines()) + 1, "(VI_1) No VIP specified; at least one is required")]


def test_a_v2_instance_without_vips_runs_with_a_config_error(tmp_path):
    # keepalived 2.2.7 -t exits 5 on it too, and keepalived runs it.
    result, inst = load(tmp_path, instance(vips=()))
    assert corrected(result) == [(1, "(VI_1) No VIP specified; at least one is sensible")]
    assert inst is not None and result.warnings == []


def test_unicast_peers_are_accepted_as_keepalived_2_2_7_accepts_them(tmp_path):
    # keepalived means to refuse them on a multicast interface, but its test reads
    # a flag set only later: it runs them, in unicast (tests/netns checks it).
    result, inst = load(tmp_path, STRICT + instance(
        "    unicast_src_ip 192.0.2.1\n    unicast_peer {\n        192.0.2.2\n    }\n"))
    assert result.clean and len(inst.unicast_peers) == 1


def test_strict_mode_per_instance(tmp_path):
    text = (instance("    strict_mode\n    preempt_delay 5\n")
            + instance("    preempt_delay 5\n").replace("VI_1", "VI_2").replace(" 51", " 52"))
    result = load_text(tmp_path, text)
    assert [(d.where.line, d.message) for d in result.errors] == [
        (9, "(VI_1) preempt_delay is incompatible with strict mode - resetting")]
    one, two = result.config.instances
    assert (one.strict_mode, one.preempt_delay) == (True, 0)
    assert (two.strict_mode, two.preempt_delay) == (False, 5)


def test_strict_mode_off_overrides_vrrp_strict(tmp_path):
    result, inst = load(tmp_path, STRICT + instance("    strict_mode off\n    preempt_delay 5\n"))
    assert result.clean and inst.strict_mode is False and inst.preempt_delay == 5


def test_vrrp_strict_takes_no_value(tmp_path):
    # keepalived 2.2.7 reads none: `vrrp_strict off` turns strict mode on.
    result, inst = load(tmp_path, "global_defs {\n    vrrp_strict off\n}\n" + instance())
    assert inst.strict_mode is True
    assert [(d.where.line, d.message) for d in result.warnings] == [
        (2, "vrrp_strict takes no value: 'off' is ignored and strict mode is on, as in "
            "keepalived")]


def test_strict_mode_with_a_bad_value_is_an_error(tmp_path):
    result, _ = load(tmp_path, instance("    strict_mode maybe\n"))
    assert [d.message for d in result.fatal] == [
        "strict_mode: 'maybe' is not one of on|off|true|false|yes|no"]


# ------------------------------------------------------- owner_ignore_adverts

@pytest.mark.parametrize("prefix, priority, written, expected", [
    (STRICT, 255, "", True),                       # strict: on for the owner
    (STRICT, 100, "", False),                      # never below 255
    ("", 255, "", False),                          # the global default
    ("global_defs {\n    vrrp_owner_ignore_adverts\n}\n", 255, "", True),
    ("global_defs {\n    vrrp_owner_ignore_adverts\n}\n", 100, "", False),
    ("", 255, "    owner_ignore_adverts\n", True),
    ("", 255, "    owner_ignore_adverts false\n", False),   # outside strict mode: as told
])
def test_owner_ignore_adverts_defaults(tmp_path, prefix, priority, written, expected):
    result, inst = load(tmp_path, prefix + instance(written, priority=priority))
    assert result.errors == []
    assert inst.owner_ignore_adverts is expected


def test_owner_ignore_adverts_below_255_is_ignored(tmp_path):
    result, inst = load(tmp_path, instance("    owner_ignore_adverts\n"))
    assert corrected(result) == [
        (8, "(VI_1) ignoring owner_ignore_adverts since priority is not 255")]
    assert inst.owner_ignore_adverts is False


def test_a_strict_owner_must_ignore_adverts(tmp_path):
    # keepalived 2.3.3 writes this branch for every owner; in strict mode only here
    # (its message is about strict mode, and outside it `false` is the default anyway).
    result, inst = load(tmp_path, STRICT + instance("    owner_ignore_adverts false\n",
                                                    priority=255))
    assert corrected(result) == [
        (11, "(VI_1) strict_mode with priority 255 requires owner_ignore_adverts")]
    assert inst.owner_ignore_adverts is True


# ------------------------------------------------------------- the CLI

def test_check_fails_and_says_the_daemon_runs_it(tmp_path):
    path = write(tmp_path, "k.conf", STRICT + instance(
        "    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }\n"))
    result = subprocess.run([sys.executable, "-m", "hivrrp", "check", "-f", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert (f"{path}:11: error: (VI_1) Strict mode does not support authentication. "
            "Ignoring.") in result.stderr.splitlines()
    assert result.stdout.startswith(f"{path}: FAILED: 1 error (hivrrp run, as keepalived, "
                                    "runs with it corrected), 0 warnings\n")


# ------------------------------------------------------- many instances

def strict_instances(count: int) -> str:
    """Debian's sample pattern (strict, PASS) in `count` generated instances."""
    return "global_defs {\n    vrrp_strict\n}\n" + "".join(
        f"vrrp_instance VI_{i} {{\n    interface eth{i // 250}\n    virtual_router_id "
        f"{i % 250 + 1}\n    priority 100\n    advert_int 1\n    authentication {{\n"
        f"        auth_type PASS\n        auth_pass 1111\n    }}\n    virtual_ipaddress {{\n"
        f"        10.{i >> 8}.{i & 255}.1/32\n    }}\n}}\n" for i in range(count))


def test_a_thousand_strict_corrections_do_not_flood_the_log(tmp_path):
    # The daemon logs a load's problems at every start and reload: one ERROR per
    # instance of a generated file would be 1,000 lines each time.
    result = load_text(tmp_path, strict_instances(1000))
    assert result.ok and len(result.errors) == 1000
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    log = logging.getLogger("test-strict-flood")
    log.propagate = False
    log.addHandler(Capture())
    log_problems(result, log)
    said = [line for line in lines if "Strict mode does not support authentication" in line]
    assert len(said) == REPEATS_SHOWN, len(said)
    # The rest counted on one line, at the first one left out (VI_5's authentication).
    assert lines[-1] == (f"{tmp_path / 'keepalived.conf'}:{4 + 5 * 13 + 5}: error: ... and "
                         f"{1000 - REPEATS_SHOWN} more strict-mode authentication errors "
                         "like these (hivrrp check --json lists every one)"), lines[-1]
    assert len(lines) == REPEATS_SHOWN + 1 + len(result.warnings)


def test_check_prints_a_thousand_strict_corrections_condensed(tmp_path):
    path = tmp_path / "keepalived.conf"
    path.write_text(strict_instances(1000))
    check = subprocess.run([sys.executable, "-m", "hivrrp", "check", "-f", str(path)],
                           capture_output=True, text=True, timeout=120)
    errors = [line for line in check.stderr.splitlines() if ": error: " in line]
    assert check.returncode == 1
    assert len(errors) == REPEATS_SHOWN + 1, check.stderr[:2000]
    assert errors[-1].endswith(f"... and {1000 - REPEATS_SHOWN} more strict-mode authentication "
                               "errors like these (hivrrp check --json lists every one)")
    assert check.stdout.startswith(f"{path}: FAILED: 1000 errors"), check.stdout
