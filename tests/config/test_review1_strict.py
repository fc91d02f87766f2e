"""Review of issue 20's strict mode: configurations on which `hivrrp check` (and run)
and keepalived 2.2.7 disagree (tests/helpers/review1_strict.py, keepalived's verdicts
recorded there; tests/netns/test_review1_strict_check.py runs keepalived -t beside).
xfail(strict=True) until each agrees."""

import pytest

from helpers.conf import load_text
from helpers.review1_strict import CASES


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=CASES[name].why))
    for name in CASES])
def test_check_and_run_agree_with_keepalived(tmp_path, name):
    case = CASES[name]
    result = load_text(tmp_path, case.text)
    assert (result.clean, result.ok) == (case.keepalived_exit == 0, case.keepalived_runs), (
        [(d.message, d.fatal) for d in result.errors])


def strict_instances(count: int) -> str:
    """Debian's sample pattern (strict, PASS) in `count` generated instances."""
    return "global_defs {\n    vrrp_strict\n}\n" + "".join(
        f"vrrp_instance VI_{i} {{\n    interface eth{i // 250}\n    virtual_router_id "
        f"{i % 250 + 1}\n    priority 100\n    advert_int 1\n    authentication {{\n"
        f"        auth_type PASS\n        auth_pass 1111\n    }}\n    virtual_ipaddress {{\n"
        f"        10.{i >> 8}.{i & 255}.1/32\n    }}\n}}\n" for i in range(count))


@pytest.mark.xfail(strict=True, reason=(
    "config/strict.py reports each correction with no `key`, and diagnostics.log_problems "
    "logs every error uncondensed: the daemon logs one ERROR per instance at every start "
    "and every reload (1,000 here), where repeated warnings are condensed to "
    "REPEATS_SHOWN and a summary line"))
def test_a_thousand_strict_corrections_do_not_flood_the_log(tmp_path):
    import logging

    from hivrrp.config.diagnostics import REPEATS_SHOWN, log_problems

    result = load_text(tmp_path, strict_instances(1000))
    assert result.ok and len(result.errors) == 1000
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    log = logging.getLogger("review1-strict-flood")
    log.propagate = False
    log.addHandler(Capture())
    log_problems(result, log)
    said = [line for line in lines if "Strict mode does not support authentication" in line]
    assert len(said) <= REPEATS_SHOWN + 1, len(said)
