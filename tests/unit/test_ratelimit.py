"""The policy of repeated log lines: first at once, then a count at most every period."""

import pytest

from hivrrp.util.ratelimit import RateLimiter, Summary

PERIOD = 60.0


def test_the_first_occurrence_is_logged_and_repeats_are_only_counted():
    limiter = RateLimiter(PERIOD)
    assert limiter.note("k", "first", 0.0) is True
    assert [limiter.note("k", f"again {n}", 1.0 + n) for n in range(5)] == [False] * 5
    assert limiter.due(59.9) == []                   # the window is not over
    assert limiter.due(60.0) == [Summary("k", 5, "again 4", 60.0)]


def test_summaries_come_at_most_once_a_period_while_the_repeats_go_on():
    limiter = RateLimiter(PERIOD)
    said = []
    for second in range(200):                        # one a second, due() every 10 s
        if second % 10 == 0:
            said += [(second, s.repeats) for s in limiter.due(float(second))]
        limiter.note("k", "x", float(second))
    # The first is the line; 59 repeats in its window, then 60 per window.
    assert said == [(60, 59), (120, 60), (180, 60)]


def test_a_quiet_key_is_forgotten_and_its_next_occurrence_is_news_again():
    limiter = RateLimiter(PERIOD)
    limiter.note("k", "x", 0.0)
    limiter.note("k", "x", 5.0)
    assert [s.repeats for s in limiter.due(60.0)] == [1]
    assert limiter.due(120.0) == []                  # nothing since: forgotten
    assert "k" not in limiter.entries
    assert limiter.note("k", "x", 121.0) is True


def test_a_followed_key_is_in_the_limiter_until_forgotten():
    limiter = RateLimiter(PERIOD)
    assert "k" not in limiter
    limiter.note("k", "x", 0.0)
    assert "k" in limiter
    limiter.due(60.0)
    assert "k" not in limiter


def test_a_key_that_never_recurred_gets_no_summary():
    limiter = RateLimiter(PERIOD)
    limiter.note("k", "x", 0.0)
    assert limiter.due(61.0) == [] and limiter.entries == {}


def test_a_new_sender_or_reason_is_logged_at_once_while_another_is_held_back():
    limiter = RateLimiter(PERIOD)
    assert limiter.note(("VI_1", "auth_failure", "192.0.2.2"), "a", 0.0)
    assert not limiter.note(("VI_1", "auth_failure", "192.0.2.2"), "a", 1.0)
    assert limiter.note(("VI_1", "auth_failure", "192.0.2.3"), "b", 2.0)     # new sender
    assert limiter.note(("VI_1", "address_count", "192.0.2.2"), "c", 3.0)    # new reason
    assert limiter.note(("VI_2", "auth_failure", "192.0.2.2"), "d", 4.0)     # new instance


def test_several_occurrences_at_once_log_one_and_count_the_rest():
    limiter = RateLimiter(PERIOD)
    assert limiter.note("k", "x", 0.0, count=7) is True
    assert [s.repeats for s in limiter.due(60.0)] == [6]


def test_keys_beyond_the_bound_are_counted_not_kept():
    limiter = RateLimiter(PERIOD, max_keys=2)
    assert limiter.note("a", 1, 0.0) and limiter.note("b", 2, 0.0)
    assert limiter.note("c", 3, 0.0, count=4) is False
    assert limiter.note("a", 1, 1.0) is False        # known keys still count
    assert len(limiter.entries) == 2
    assert limiter.take_overflow() == 4 and limiter.take_overflow() == 0


@pytest.mark.parametrize("period, max_keys", [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_bounds_are_refused(period, max_keys):
    with pytest.raises(ValueError):
        RateLimiter(period, max_keys)
