"""The timer wheel against a plain heap model, driven by hypothesis."""


import pytest
from hivrrp._wheel import TimerWheel
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

N = 64
US = 1
MS = 1000


class HeapModel:
    """Readable reference: a dict of deadlines and a lazy heap."""

    def __init__(self):
        self.deadlines = {}

    def schedule(self, timer, deadline):
        self.deadlines[timer] = deadline

    def cancel(self, timer):
        return self.deadlines.pop(timer, None) is not None

    def expire(self, now):
        due = sorted((d, t) for t, d in self.deadlines.items() if d <= now)
        for _, t in due:
            del self.deadlines[t]
        return [t for _, t in due]

    def earliest(self):
        return min(self.deadlines.values()) if self.deadlines else None


# Offsets cover sub-tick precision, every level of the wheel and beyond its span.
offsets = st.one_of(
    st.integers(-5 * MS, 5 * MS),
    st.integers(0, 300 * MS),
    st.integers(0, 20_000 * MS),
    st.integers(0, 3_000_000 * MS),
    st.integers(0, 10**14),
)
steps = st.one_of(st.integers(0, 3 * MS), st.integers(0, 1_000 * MS),
                  st.integers(0, 100_000 * MS), st.integers(0, 10**12))


class WheelMachine(RuleBasedStateMachine):
    @initialize(start=st.one_of(st.just(0), st.integers(0, 10**13)))
    def setup(self, start):
        self.now = start
        self.wheel = TimerWheel(N, now=start)
        self.model = HeapModel()

    @rule(timer=st.integers(0, N - 1), offset=offsets)
    def schedule(self, timer, offset):
        deadline = max(0, self.now + offset)
        self.wheel.schedule(timer, deadline)
        self.model.schedule(timer, deadline)

    @rule(timer=st.integers(0, N - 1))
    def cancel(self, timer):
        assert self.wheel.cancel(timer) == self.model.cancel(timer)

    @rule(step=steps)
    def advance(self, step):
        self.now += step
        assert self.wheel.expire(self.now) == self.model.expire(self.now)

    @rule(cached=st.booleans())
    def advance_to_next_deadline(self, cached):
        bound = self.wheel.wakeup() if cached else self.wheel.next_deadline()
        if bound is not None:
            self.now = max(self.now, bound)
            assert self.wheel.expire(self.now) == self.model.expire(self.now)
            # No spinning: once woken at it, the cached bound moves on.
            following = self.wheel.wakeup()
            assert following is None or following > self.now

    @invariant()
    def wakeup_is_never_late(self):
        wakeup, earliest = self.wheel.wakeup(), self.model.earliest()
        assert (wakeup is None) == (earliest is None)
        if earliest is not None:
            assert wakeup <= earliest

    @invariant()
    def agree(self):
        assert len(self.wheel) == len(self.model.deadlines)
        for timer in range(N):
            assert self.wheel.deadline(timer) == self.model.deadlines.get(timer)
        bound, earliest = self.wheel.next_deadline(), self.model.earliest()
        assert (bound is None) == (earliest is None)
        if earliest is not None:
            # Never late; exact whenever the earliest timer is near.
            assert bound <= earliest
            if earliest - self.now < 200 * MS:
                assert bound == earliest or earliest <= self.now


TestWheel = WheelMachine.TestCase


def test_next_deadline_walk_reaches_every_timer_in_order():
    wheel = TimerWheel(1000, now=0)
    model = HeapModel()
    for t in range(1000):
        deadline = (t * 7919) % 40_000_000  # up to 40 s, v3's longest interval
        wheel.schedule(t, deadline)
        model.schedule(t, deadline)
    fired, now, wakeups = [], 0, 0
    while len(wheel):
        now = max(now, wheel.next_deadline())
        fired += wheel.expire(now)
        wakeups += 1
        assert wakeups < 5000
    assert fired == model.expire(10**9)


def test_wakeup_stays_put_while_timers_move_later():
    # A backup's pattern: every received advert pushes one master-down timer later.
    wheel = TimerWheel(100, now=0)
    for t in range(100):
        wheel.schedule(t, 361_000 + t * 1000)
    first = wheel.wakeup()
    assert first == 361_000
    for t in range(100):
        wheel.schedule(t, 461_000 + t * 1000)
        assert wheel.wakeup() == first          # cached: no walk per packet
    assert wheel.expire(first) == []             # the early wake-up finds nothing due...
    assert wheel.wakeup() == 461_000             # ...and learns the real deadline
    wheel.schedule(5, 400_000)
    assert wheel.wakeup() == 400_000             # an earlier deadline is never missed


def test_submillisecond_deadlines_in_one_slot():
    wheel = TimerWheel(4, now=0)
    for timer, deadline in enumerate([1500, 1100, 1999, 1100]):
        wheel.schedule(timer, deadline)
    assert wheel.next_deadline() == 1100
    assert wheel.expire(1099) == []
    assert wheel.expire(1100) == [1, 3]
    assert wheel.next_deadline() == 1500
    assert wheel.expire(1600) == [0]
    assert wheel.expire(2000) == [2]
    assert wheel.next_deadline() is None


def test_reschedule_and_past_deadlines():
    wheel = TimerWheel(2, now=10_000_000)
    wheel.schedule(0, 5)  # already past: fires at the next expire
    wheel.schedule(1, 20_000_000)
    wheel.schedule(1, 10_500_000)  # re-armed earlier
    assert wheel.expire(10_000_000) == [0]
    assert wheel.expire(10_499_999) == []
    assert wheel.expire(10_500_000) == [1]
    assert len(wheel) == 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        TimerWheel(0)
    wheel = TimerWheel(2)
    with pytest.raises(IndexError):
        wheel.schedule(2, 10)
    with pytest.raises(IndexError):
        wheel.cancel(-1)
    with pytest.raises(ValueError):
        wheel.schedule(0, -1)
