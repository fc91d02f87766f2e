"""How transitions reach the log: one line each, or a summary for a mass move."""

import ipaddress
import logging

from hivrrp.daemon.wiring import LOG_EACH_UP_TO, log_transitions


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


def test_a_transition_names_its_cause(caplog):
    def packed(address):
        return ipaddress.ip_address(address).packed

    names = ["VI_1", "VI_2", "VI_3", "VI_4", "VI_5", "VI_6"]
    batch = [
        (0, "MASTER", "BACKUP", "higher_priority", 0, (packed("192.0.2.2"), 255, 254)),
        (1, "BACKUP", "MASTER", "master_down", 0, (packed("fe80::2"), 200, 100)),
        (2, "BACKUP", "MASTER", "master_down", 0, (None, 0, 100)),
        (3, "BACKUP", "MASTER", "released", 0, (packed("192.0.2.2"), 200, 100)),
        (4, "BACKUP", "MASTER", "preempt", 0, (packed("192.0.2.2"), 200, 250)),
        (5, "MASTER", "FAULT", "fault", 0, (packed("192.0.2.2"), 200, 100)),
        (5, "FAULT", "BACKUP", "fault_cleared", 0),         # no cause given: none said
    ]
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        log_transitions(names, batch)
    assert [r.getMessage() for r in caplog.records] == [
        "(VI_1) MASTER -> BACKUP (higher_priority): advert from 192.0.2.2 with priority 255, "
        "ours 254",
        "(VI_2) BACKUP -> MASTER (master_down): master fe80::2 (priority 200) went silent, "
        "ours 100",
        "(VI_3) BACKUP -> MASTER (master_down): no master heard, ours 100",
        "(VI_4) BACKUP -> MASTER (released): master 192.0.2.2 sent priority 0, ours 100",
        "(VI_5) BACKUP -> MASTER (preempt): a lower-priority master was heard, ours 250",
        "(VI_6) MASTER -> FAULT (fault)",
        "(VI_6) FAULT -> BACKUP (fault_cleared)"]


def test_a_leaders_line_counts_the_followers_it_moved(caplog):
    names = [f"L{i}" for i in range(40)]
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        log_transitions(names, [(0, "BACKUP", "MASTER", "master_down", 0, (None, 0, 100), 249)])
        log_transitions(names, [(i, "BACKUP", "MASTER", "master_down", 0, (None, 0, 100), 249)
                                for i in range(40)])
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == ("(L0) BACKUP -> MASTER (master_down): no master heard, ours 100, "
                        "249 followers with it")
    assert lines[1].startswith("40 instances BACKUP -> MASTER (master_down), 9960 followers "
                               "with it: L0, L1, ")
