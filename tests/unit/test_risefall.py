"""RiseFall against a line-by-line transliteration of keepalived 2.2.7.

The reference below is vrrp_init_script (vrrp_scheduler.c ~356) plus the
result block of vrrp_script_child_thread (~1350-1381); update_script_priorities
calls are recorded as the reports they cause.
"""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivrrp.tracking.risefall import RiseFall

INIT, FAILED, DONE = "SCRIPT_INIT_STATE_INIT", "SCRIPT_INIT_STATE_FAILED", "SCRIPT_INIT_STATE_DONE"


class KeepalivedScript:
    def __init__(self, rise, fall, init_fail):
        self.rise, self.fall = rise, fall
        self.init_state = FAILED if init_fail else INIT
        # vrrp_init_script
        if self.init_state == INIT:
            self.result = self.rise - 1
        elif self.init_state == FAILED:
            self.result = 0
        self.reports = []

    def update_script_priorities(self, ok):
        self.reports.append(ok)

    def child_exit(self, script_success):
        if script_success:
            if self.result < self.rise - 1:
                self.result += 1
            elif self.result != self.rise + self.fall - 1:
                if self.result < self.rise:
                    self.update_script_priorities(True)
                self.result = self.rise + self.fall - 1
        else:
            if self.result > self.rise:
                self.result -= 1
            else:
                if self.result == self.rise or self.init_state == INIT:
                    self.update_script_priorities(False)
                self.result = 0
        self.init_state = DONE

    @property
    def ok(self):
        # What initialise_track_script_state and the FAULT logic read once the
        # script has run; before that (INIT) there is no status.
        if self.init_state == INIT:
            return None
        return self.result >= self.rise


def check(rise, fall, init_fail, results):
    ours = RiseFall(rise, fall, init_fail)
    ref = KeepalivedScript(rise, fall, init_fail)
    assert ours.status == ref.ok
    for i, ok in enumerate(results):
        before = len(ref.reports)
        ref.child_exit(ok)
        expected = ref.reports[-1] if len(ref.reports) > before else None
        assert ours.result(ok) == expected, (rise, fall, init_fail, results[:i + 1])
        assert ours.status == ref.ok, (rise, fall, init_fail, results[:i + 1])
        # A report always carries the status it leads to.
        if expected is not None:
            assert ours.status is expected


@pytest.mark.parametrize("rise,fall", list(itertools.product(range(1, 6), range(1, 6))))
@pytest.mark.parametrize("init_fail", [False, True])
def test_every_short_sequence(rise, fall, init_fail):
    for n in range(9):
        for results in itertools.product([True, False], repeat=n):
            check(rise, fall, init_fail, list(results))


@given(st.integers(1, 5), st.integers(1, 5), st.booleans(), st.lists(st.booleans(), max_size=60))
def test_random_sequences(rise, fall, init_fail, results):
    check(rise, fall, init_fail, results)


def test_first_result_decides():
    up = RiseFall(3, 3)
    assert up.status is None
    assert up.result(True) is True
    down = RiseFall(3, 3)
    assert down.result(False) is False
    assert down.status is False


def test_fall_then_rise():
    rf = RiseFall(rise=2, fall=3)
    assert rf.result(True) is True
    assert [rf.result(False) for _ in range(3)] == [None, None, False]
    assert [rf.result(True) for _ in range(2)] == [None, True]
    # A single failure in a run of successes resets nothing once fully up.
    assert rf.result(False) is None and rf.result(True) is None
    assert [rf.result(False) for _ in range(3)] == [None, None, False]


def test_init_fail_needs_rise_successes():
    rf = RiseFall(rise=3, fall=1, init_fail=True)
    assert rf.status is False
    assert rf.result(False) is None
    assert [rf.result(True) for _ in range(3)] == [None, None, True]


def test_rejects_zero():
    with pytest.raises(ValueError):
        RiseFall(0, 1)
