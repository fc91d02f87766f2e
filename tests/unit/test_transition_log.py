"""How transitions reach the log: one line each, or a summary for a mass move."""

import logging

from hivrrp.daemon import LOG_EACH_UP_TO, log_transitions


def events(count, old="BACKUP", new="MASTER", reason="master_down"):
    return [(i, old, new, reason, 0) for i in range(count)]


def test_a_few_transitions_get_a_line_each(caplog):
    names = [f"vi{i}" for i in range(LOG_EACH_UP_TO)]
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        log_transitions(names, events(LOG_EACH_UP_TO) + [(0, "MASTER", "MASTER", "x", 0)])
    assert [r.getMessage() for r in caplog.records] == [
        f"(vi{i}) BACKUP -> MASTER (master_down)" for i in range(LOG_EACH_UP_TO)]


def test_a_mass_move_is_one_info_line_per_kind_and_each_at_debug(caplog):
    n = 4000
    names = [f"vi{i}" for i in range(n)]
    batch = events(n - 10) + [(i, "MASTER", "FAULT", "interface", 0) for i in range(n - 10, n)]
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        log_transitions(names, batch)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("3990 instances BACKUP -> MASTER (master_down): vi0, vi1, ")
    assert "and 3982 more" in lines[0]
    assert lines[1].startswith("10 instances MASTER -> FAULT (interface): vi3990")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="hivrrp"):
        log_transitions(names, batch)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == n and debug[-1] == "(vi3999) MASTER -> FAULT (interface)"
