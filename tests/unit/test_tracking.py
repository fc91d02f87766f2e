"""keepalived's tracker arithmetic (tracking/policy.py) against a transliteration of
keepalived 2.2.7's own incremental code (vrrp_track.c, track_file.c), over
every weight/reverse combination and random status histories."""

from hypothesis import given
from hypothesis import strategies as st

from hivrrp.tracking.policy import Outcome, Tracking, Use, effect

BASE = 244


def clamp(total):
    return max(1, min(254, total))


class KeepalivedScriptModel:
    """process_script_update_priority() and down_instance()/try_up_instance(),
    for one instance tracking up/down trackers. Status None = INIT."""

    def __init__(self, uses):
        self.uses = uses
        self.total = BASE
        self.status = {u.tracker: None for u in uses}
        self.faults = 0
        self.init = sum(1 for u in uses if u.weight == 0)

    def update(self, tracker, ok):
        use = next(u for u in self.uses if u.tracker == tracker)
        before = self.status[tracker]
        if before == ok:
            return
        self.status[tracker] = ok
        m = -1 if use.reverse else 1
        if use.weight == 0:
            if before is None:
                self.init -= 1
            now_fault = ok != (m == 1)
            was_fault = before is not None and before != (m == 1)
            self.faults += now_fault - was_fault
            return
        if before is None:
            if ok and use.weight > 0:
                self.total += use.weight * m
            if not ok and use.weight < 0:
                self.total += use.weight * m
        elif ok:
            self.total += abs(use.weight) * m
        else:
            self.total -= abs(use.weight) * m


weights = st.integers(-253, 253)
uses = st.lists(st.tuples(weights, st.booleans()), min_size=1, max_size=4).map(
    lambda ws: [Use("script", f"s{k}", w, r) for k, (w, r) in enumerate(ws)])


@given(uses, st.data())
def test_up_down_trackers_match_keepalived_incremental_totals(instance_uses, data):
    tracking = Tracking({"VI_1": tuple(instance_uses)})
    model = KeepalivedScriptModel(instance_uses)
    history = data.draw(st.lists(st.tuples(st.integers(0, len(instance_uses) - 1),
                                           st.booleans()), max_size=30))
    for k, ok in history:
        tracking.update("script", f"s{k}", ok)
        model.update(f"s{k}", ok)
        outcome = tracking.outcome("VI_1")
        assert BASE + outcome.delta == model.total
        assert clamp(BASE + outcome.delta) == clamp(model.total)
        assert outcome.fault == (model.faults > 0)
        assert outcome.held == (model.init > 0)


def file_model(value, weight, reverse):
    """update_track_file_status() + process_update_vrrp_track_file_status():
    the contribution, or 'FAULT'."""
    m = -1 if reverse else 1
    if weight == 0:
        return "FAULT" if (not value) != (m == 1) else 0
    status = max(-254, min(253, value * weight * m))
    return "FAULT" if status == -254 else status


@given(st.integers(-2**31, 2**31 - 1), st.integers(-254, 254), st.booleans())
def test_file_values_match_keepalived(value, weight, reverse):
    out = effect(Use("file", "f", weight, reverse), value)
    expected = file_model(value, weight, reverse)
    if expected == "FAULT":
        assert out == Outcome(fault=True)
    else:
        assert out == Outcome(delta=expected)


def test_the_articles_figures():
    # 254 -> 244 when the process dies (weight -10)...
    assert effect(Use("process", "p", -10, False), False).delta == -10
    assert effect(Use("process", "p", -10, False), True).delta == 0
    # ...249 when the health file reads 5 (weight -1)...
    assert BASE + 10 + effect(Use("file", "f", -1, False), 5).delta == 249
    # ...and an unweighted script that fails faults.
    assert effect(Use("script", "s", 0, False), False) == Outcome(fault=True)
    assert effect(Use("script", "s", 0, True), True) == Outcome(fault=True)
    assert effect(Use("script", "s", 0, True), False) == Outcome()


def test_file_weight_extremes_clamp_and_fault():
    assert effect(Use("file", "f", 254, False), 1).delta == 253
    assert effect(Use("file", "f", 1, False), -253).delta == -253
    assert effect(Use("file", "f", 1, False), -254).fault
    assert effect(Use("file", "f", -1, True), -300).fault   # -300 * -1 * -1 <= -254
    assert effect(Use("file", "f", -1, True), 300).delta == 253
    assert effect(Use("file", "f", 2, True), 200).fault          # 200 * 2 * -1 <= -254
    assert effect(Use("file", "f", 0, True), 0).fault            # reverse: zero faults
    assert not effect(Use("file", "f", 0, True), 7).fault


def test_the_unclamped_total_is_kept():
    # Observed on keepalived 2.2.7 (reference section 8): 244 + 10 + 5 is
    # advertised as 254 but drops to 249, not 244, when the +10 tracker fails.
    uses = (Use("script", "a", 10, False), Use("script", "b", 5, False))
    tracking = Tracking({"VI_1": uses})
    tracking.update("script", "a", True)
    tracking.update("script", "b", True)
    assert clamp(BASE + tracking.outcome("VI_1").delta) == 254
    tracking.update("script", "a", False)
    assert clamp(BASE + tracking.outcome("VI_1").delta) == 249


def test_update_reports_only_instances_whose_outcome_changed():
    tracking = Tracking({"A": (Use("script", "s", -10, False),),
                         "B": (Use("script", "s", 10, False),),
                         "C": (Use("file", "f", 1, False),)})
    assert tracking.update("script", "s", True) == ["B"]       # A: no result yet -> 0, still 0
    assert tracking.update("script", "s", True) == []
    assert sorted(tracking.update("script", "s", False)) == ["A", "B"]
    assert tracking.update("script", "unknown", False) == []
    assert tracking.update("file", "f", 0) == []


def test_a_reload_keeps_the_statuses_of_trackers_still_in_use():
    old = Tracking({"A": (Use("script", "s", -10, False), Use("file", "f", 1, False))})
    old.update("script", "s", False)
    old.update("file", "f", 3)
    new = Tracking({"A": (Use("script", "s", -20, False),)}, old.statuses)
    assert new.outcome("A").delta == -20
    assert ("file", "f") not in new.statuses


def test_priority_range_for_check():
    tracking = Tracking({"A": (Use("script", "s", -10, False), Use("process", "p", 5, True),
                               Use("interface", "eth1", 0, False))})
    assert tracking.priority_range("A") == (-15, 0)
