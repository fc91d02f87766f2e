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
