"""keepalived's SIGUSR2 stats file and SIGUSR1 data file as hivrrp writes them."""

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from helpers.keepalived_files import data_sections, parse_data, parse_stats
from hivrrp.ops import dumpfiles
from hivrrp.ops.dumpfiles import data_path, data_text, stats_path, stats_text, tmp_dir, write_file

COUNTERS = {
    "adverts_received": 11, "checksum_pseudo_header_received": 7,
    "checksum_no_pseudo_header_received": 4, "adverts_sent": 22, "became_master": 3,
    "released_master": 2, "packet_length_errors": 5, "ip_ttl_errors": 6,
    "invalid_type_received": 8, "advert_interval_errors": 9, "address_list_errors": 10,
    "auth_invalid_type": 12, "auth_type_mismatch": 13, "auth_failure": 14,
    "priority_zero_received": 15, "priority_zero_sent": 2**40,
}


def row(**over):
    base = {
        "instance": "VI_1", "interface": "eth1", "vrid": 51, "family": "ipv4", "version": 2,
        "state": "MASTER", "base_priority": 200, "priority": 190, "priority_delta": -10,
        "master": "192.0.2.1", "vips": ["192.0.2.26/24", "192.0.2.27"],
        "last_transition": 1700000000.25, "advert_int": 1.0, "counters": dict(COUNTERS),
        "fault_reasons": [], "sync_group": None,
        "trackers": [
            {"type": "interface", "name": "eth2", "weight": -10, "reverse": False},
            {"type": "script", "name": "chk", "weight": 0, "reverse": True},
            {"type": "file", "name": "f1", "weight": 5, "reverse": False},
            {"type": "process", "name": "p1", "weight": 2, "reverse": True},
        ],
    }
    base.update(over)
    return base


def backup_v6():
    return row(instance="VI_6", vrid=52, family="ipv6", version=3, state="BACKUP",
               base_priority=100, priority=100, priority_delta=0, master="fe80::1",
               sync_group="G1",
               vips=["2001:db8::26/64", "2001:DB8::27"], last_transition=None,
               advert_int=0.25, trackers=[], counters={k: 0 for k in COUNTERS})


# Written by the Debian keepalived 2.2.7 (vrrp_print_stats) on SIGUSR2.
KEEPALIVED_STATS = """\
VRRP Instance: VI_1
  Advertisements:
    Received: 0
    Sent: 2
  Became master: 1
  Released master: 0
  Packet Errors:
    Length: 0
    TTL: 0
    Invalid Type: 0
    Advertisement Interval: 0
    Address List: 0
  Authentication Errors:
    Invalid Type: 0
    Type Mismatch: 0
    Failure: 0
  Priority Zero:
    Received: 0
    Sent: 0
"""

# An instance block of keepalived 2.2.7's SIGUSR1 file (a v3 IPv6 backup in a
# sync group), as the Debian package wrote it in a namespace.
KEEPALIVED_DATA = """\
------< VRRP Topology >------
 VRRP Instance = VI_6
   VRRP Version = 3
   Sync group = G1
   Using Native IPv6
   State = BACKUP
   Master router = fe80::c81c:18ff:feeb:27b4
   Master priority = 200
   Master advert int = 1.00 sec
   Flags: none
   Wantstate = BACKUP
   Number of config faults = 0
   Number of interface and track script faults = 0
   Number of track scripts init = 0
   Last transition = 1795973024.399353 (Sun Nov 29 17:23:44.399353 2026)
   Read timeout = 1795973033.189932 (Sun Nov 29 17:23:53.189932 2026)
   Master down timer = 3609375 usecs
   Interface = eth1
   Using src_ip = fe80::281a:8fff:fe61:51e6
   Multicast address ff02::12, ifindex 2
   Gratuitous ARP delay = 5
   Gratuitous ARP repeat = 5
   Gratuitous ARP refresh = 0
   Gratuitous ARP refresh repeat = 1
   Gratuitous ARP lower priority delay = 5
   Gratuitous ARP lower priority repeat = 5
   Down timer adverts = 3
   Send advert after receive lower priority advert = true
   Send advert after receive higher priority advert = false
   Virtual Router ID = 52
   Priority = 100
   Effective priority = 100
   Total priority = 100
   Advert interval = 1000 milli-sec
   Master advert interval = 1000 milli-sec
   Accept = enabled
   Preempt = enabled
   Promote_secondaries = disabled
   Virtual IP (2):
     2001:db8::26/64 dev eth1 scope global preferred_lft forever
     2001:db8::27 dev eth1 scope global deprecated
   fd_in 15, fd_out 16
   Using smtp notification = no
   Notify deleted = Fault
   Notify priority changes = false
------< VRRP Sockpool >------
------< VRRP Sync groups >------
 VRRP Sync Group = G1, BACKUP
   Num member fault 0, num member init 0
   VRRP member instances :
     VI_1
     VI_6
   Using smtp notification = no
"""


@pytest.fixture
def utc(monkeypatch):
    """Local time is UTC (keepalived prints the last transition in local time)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_stats_text_exact():
    assert stats_text([row(), backup_v6()]) == """\
VRRP Instance: VI_1
  Advertisements:
    Received: 11
    Sent: 22
  Became master: 3
  Released master: 2
  Packet Errors:
    Length: 5
    TTL: 6
    Invalid Type: 8
    Advertisement Interval: 9
    Address List: 10
  Authentication Errors:
    Invalid Type: 12
    Type Mismatch: 13
    Failure: 14
  Priority Zero:
    Received: 15
    Sent: 1099511627776
VRRP Instance: VI_6
  Advertisements:
    Received: 0
    Sent: 0
  Became master: 0
  Released master: 0
  Packet Errors:
    Length: 0
    TTL: 0
    Invalid Type: 0
    Advertisement Interval: 0
    Address List: 0
  Authentication Errors:
    Invalid Type: 0
    Type Mismatch: 0
    Failure: 0
  Priority Zero:
    Received: 0
    Sent: 0
"""


def test_stats_text_no_instances_is_an_empty_file():
    assert stats_text([]) == ""
    assert parse_stats("") == {}


def test_stats_text_parses_like_keepalived_own_file():
    theirs = parse_stats(KEEPALIVED_STATS)["VI_1"]
    ours = parse_stats(stats_text([row()]))["VI_1"]
    assert list(ours) == list(theirs)           # same labels, same order, same nesting
    assert len(ours) == 14
    assert ours["Advertisements/Sent"] == 22
    assert ours["Priority Zero/Sent"] == 2**40
    assert ours["Authentication Errors/Invalid Type"] == 12
    assert ours["Packet Errors/Invalid Type"] == 8


def test_stats_counters_without_a_keepalived_line_are_left_out():
    text = stats_text([row()])
    values = set(parse_stats(text)["VI_1"].values())
    assert not values & {7, 4}                   # the two checksum readings
    assert len(text.splitlines()) == 19          # 1 + vrrp_print_stats' 18 lines


@pytest.mark.parametrize("broken", [
    KEEPALIVED_STATS[:-1],                                   # cut inside the last line
    KEEPALIVED_STATS.replace("    Received: 0\n    Sent: 0\n", ""),   # heading, no counters
    KEEPALIVED_STATS.replace("    TTL: 0", "   TTL: 0"),
    KEEPALIVED_STATS.replace("Length: 0", "Length: x"),
    "  Became master: 1\n",
    KEEPALIVED_STATS + KEEPALIVED_STATS,
])
def test_stats_parser_is_strict(broken):
    with pytest.raises(ValueError):
        parse_stats(broken)


def test_data_text_exact(utc):
    text = data_text([row(), backup_v6()], sync_groups={"G1": "BACKUP"},
                     trackers={"interface eth2": True, "script chk": False, "file f1": 0,
                               "process p1": True})
    assert text == """\
------< VRRP Topology >------
 VRRP Instance = VI_1
   VRRP Version = 2
   State = MASTER
   Last transition = 1700000000.250000 (Tue Nov 14 22:13:20.250000 2023)
   Interface = eth1
   Virtual Router ID = 51
   Priority = 200
   Effective priority = 190
   Total priority = 190
   Advert interval = 1 sec
   Virtual IP (2):
     192.0.2.26/24 dev eth1 scope global set
     192.0.2.27 dev eth1 scope global set
   Tracked interfaces :
     eth2 weight -10
   Tracked scripts :
     chk weight 0 reverse
   Tracked files :
     f1, weight 5
   Tracked processes :
     p1, weight 2 reverse
 VRRP Instance = VI_6
   VRRP Version = 3
   Sync group = G1
   Using Native IPv6
   State = BACKUP
   Master router = fe80::1
   Last transition = 0.000000 (Thu Jan  1 00:00:00.000000 1970)
   Interface = eth1
   Virtual Router ID = 52
   Priority = 100
   Effective priority = 100
   Total priority = 100
   Advert interval = 250 milli-sec
   Virtual IP (2):
     2001:db8::26/64 dev eth1 scope global preferred_lft forever
     2001:db8::27 dev eth1 scope global deprecated
------< VRRP Sync groups >------
 VRRP Sync Group = G1, BACKUP
   VRRP member instances :
     VI_6
------< VRRP Scripts >------
 VRRP Script = chk
   Status = BAD
   VRRP instances :
   Tracking instances :
     VI_1, weight 0 reverse
"""


def test_a_vip_with_options_is_printed_as_keepalived_prints_it(tmp_path, monkeypatch, utc):
    # From a configuration through the daemon's snapshot, as SIGUSR1 writes it: a
    # VIP's own dev, scope, label and brd (the instance's interface was printed).
    import asyncio

    from helpers.fakedaemon import started
    from helpers.plans import ADDRESSES, LINKS, instance_text
    from hivrrp.ops.control import dump_of, snapshot

    text = instance_text("VI_1", 51, ["192.0.2.5/24 dev eth1 scope link label eth1:1",
                                      "192.0.2.6 brd 192.0.2.255", "192.0.2.7/24"],
                         priority=255)

    async def scenario():
        daemon = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        return data_text(dump_of(snapshot(daemon))["instances"])

    lines = asyncio.run(asyncio.wait_for(scenario(), 20)).splitlines()
    assert "     192.0.2.5/24 dev eth1 scope link label eth1:1 set" in lines
    assert "     192.0.2.6 brd 192.0.2.255 dev eth0 scope global set" in lines
    assert "     192.0.2.7/24 dev eth0 scope global set" in lines


def test_a_script_without_a_result_yet_is_init(utc):
    users = [{"type": "script", "name": "chk", "weight": 0}]
    text = data_text([row(trackers=users)], trackers={"script chk": None})
    assert "   Status = INIT\n" in text


def test_data_text_optional_lines(utc):
    r = row(state="FAULT", priority_delta=None, trackers=[], vips=[])
    del r["priority_delta"]
    lines = data_text([r]).splitlines()
    assert "   State = FAULT" in lines
    assert not any(x.startswith(("   Total priority", "   Virtual IP", "   Tracked",
                                 "   Master router")) for x in lines)
    # A backup whose master is not known yet has no "Master router" line.
    assert "   Master router" not in data_text([backup_v6() | {"master": None}])
    assert data_text([]) == ""


def test_last_transition_like_ctime_us_r(utc):
    # %ld.%6.6ld, then asctime with the day padded to 3 and microseconds inserted.
    text = data_text([row(last_transition=1717200000.000001)])
    assert "   Last transition = 1717200000.000001 (Sat Jun  1 00:00:00.000001 2024)\n" in text


def test_data_text_parses_like_keepalived_own_file(utc):
    theirs = parse_data(KEEPALIVED_DATA)["VI_6"]
    mine = backup_v6() | {"advert_int": 1.0, "master": "fe80::c81c:18ff:feeb:27b4",
                          "last_transition": 1795973024.399353}
    ours = parse_data(data_text([mine]))["VI_6"]
    # Every line we write is a line keepalived writes, in keepalived's order...
    assert set(ours) <= set(theirs)
    order = [k for k in theirs if k in ours]
    assert list(ours) == order
    # ... with keepalived's value, for the fields hivrrp has.
    for key, value in ours.items():
        if key != "Last transition":               # local time: compare the seconds
            assert value == theirs[key], key
    assert ours["Last transition"].split()[0] == theirs["Last transition"].split()[0]
    # The sync group block has keepalived's header and member list layout.
    ours_groups = parse_data(data_text([mine], sync_groups={"G1": "BACKUP"}), "VRRP Sync groups")
    theirs_groups = parse_data(KEEPALIVED_DATA, "VRRP Sync groups")
    assert list(ours_groups) == list(theirs_groups) == ["G1, BACKUP"]
    assert ours_groups["G1, BACKUP"]["VRRP member instances"] == ["VI_6"]


def test_data_sections_and_parser_are_strict():
    assert list(data_sections(KEEPALIVED_DATA)) == ["VRRP Topology", "VRRP Sockpool",
                                                    "VRRP Sync groups"]
    with pytest.raises(ValueError):
        parse_data(KEEPALIVED_DATA[:-1])
    with pytest.raises(ValueError):
        parse_data("   State = MASTER\n")                      # outside any section
    with pytest.raises(ValueError):
        parse_data("------< VRRP Topology >------\n   State = MASTER\n")   # outside a block
    with pytest.raises(ValueError):
        parse_data("------< VRRP Topology >------\n VRRP Instance = A\n     x\n")


def test_paths_follow_keepalived_tmp_dir():
    assert tmp_dir({}) == "/tmp"
    assert tmp_dir({"TMPDIR": "relative/dir"}) == "/tmp"       # set_tmp_dir wants a '/'
    assert tmp_dir({"TMPDIR": "/run/ka"}) == "/run/ka"
    assert stats_path({}) == "/tmp/keepalived.stats"
    assert data_path({}) == "/tmp/keepalived.data"
    assert data_path({"TMPDIR": "/x"}, instance="i1") == "/x/keepalived.data"
    assert data_path({}, use_instance=True, instance="i1") == "/tmp/keepalived.i1.data"
    assert data_path({}, use_instance=True, netns="ns") == "/tmp/keepalived.ns.data"
    assert data_path({}, use_instance=True, instance="i1",
                     netns="ns") == "/tmp/keepalived.ns_i1.data"


def test_write_file_content_and_mode(tmp_path):
    path = tmp_path / "keepalived.stats"
    old = os.umask(0o077)
    try:
        write_file(str(path), "one\n")
    finally:
        os.umask(old)
    assert path.read_text() == "one\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    write_file(str(path), "two\n")
    assert path.read_text() == "two\n"
    assert os.listdir(tmp_path) == ["keepalived.stats"]       # no temporary file left


def test_write_file_renames_a_complete_file(tmp_path, monkeypatch):
    """Nothing is visible at the path until the whole text is in the file that
    is renamed there; a reader of the old file keeps the old text."""
    path = tmp_path / "keepalived.data"
    path.write_text("old\n")
    text = "x" * 100_000 + "\n"
    seen = []
    real_rename = os.rename

    def rename(src, dst):
        seen.append((os.path.dirname(src), Path(src).read_text() == text, path.read_text()))
        real_rename(src, dst)

    monkeypatch.setattr(dumpfiles.os, "rename", rename)
    with open(path) as reader:
        write_file(str(path), text)
        assert reader.read() == "old\n"
    assert seen == [(str(tmp_path), True, "old\n")]
    assert path.read_text() == text


def test_write_file_readers_never_see_a_partial_file(tmp_path):
    path = tmp_path / "keepalived.stats"
    texts = ["a" * 300_000 + "\n", "b" * 200_000 + "\n"]
    write_file(str(path), texts[0])
    bad, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            content = path.read_text()
            if content not in texts:
                bad.append(len(content))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(200):
            write_file(str(path), texts[i % 2])
    finally:
        stop.set()
        reader.join()
    assert bad == []


def test_write_file_errors_are_oserror_and_leave_nothing(tmp_path):
    with pytest.raises(OSError):
        write_file(str(tmp_path / "missing" / "keepalived.stats"), "x\n")
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        write_file(str(tmp_path / "adir"), "x\n")               # a directory is in the way
    assert os.listdir(tmp_path) == ["adir"]
    assert os.listdir(tmp_path / "adir") == []
