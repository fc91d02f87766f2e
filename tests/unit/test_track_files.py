"""track_file trackers on real files and inotify (hivrrp.tracking.files)."""

import asyncio
import ctypes
import logging
import os

import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st

from hivrrp.config.diagnostics import Where
from hivrrp.config.model import TrackFile
from hivrrp.tracking.files import FileTrackers, read_value, strtol0

HERE = Where("keepalived.conf", 1)
PROMPT = 0.1        # a change must be reported this quickly


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    runner = asyncio.run if request.param == "asyncio" else uvloop.run
    return lambda coro: runner(asyncio.wait_for(coro, 10))


def tf(name, path, **kw) -> TrackFile:
    return TrackFile(name, HERE, str(path), **kw)


class Watch:
    """FileTrackers whose reports land in a queue."""

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.trackers = FileTrackers(asyncio.get_running_loop(),
                                     lambda name, value: self.queue.put_nowait((name, value)))

    async def next(self):
        return await asyncio.wait_for(self.queue.get(), PROMPT)

    async def quiet(self, seconds=0.05):
        await asyncio.sleep(seconds)
        assert self.queue.empty(), self.queue.get_nowait()


# -- values, as keepalived's strtol(buf, NULL, 0) --------------------------------

@pytest.mark.parametrize("text,value", [
    ("0x10", 16), ("0X1f\n", 31), ("010", 8), ("08", 0), ("0", 0), ("  -5\n", -5),
    ("+7", 7), ("\t\n\v\f\r 42", 42), ("12abc", 12), ("abc", 0), ("", 0), ("-", 0),
    ("0x", 0), ("0xg", 0), ("-0x1f", -31), ("+-3", 0), ("- 3", 0), ("1 2", 1),
    ("1_000", 1), ("٣", 0), ("7\x003", 7), ("\x005", 0),
])
def test_strtol_cases(text, value):
    assert strtol0(text.encode()) == value


_libc = ctypes.CDLL(None, use_errno=True)
_libc.strtol.restype = ctypes.c_long
_libc.strtol.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]


@given(st.binary(max_size=20) | st.lists(st.sampled_from(
    [b" ", b"\t", b"\n", b"+", b"-", b"0", b"1", b"7", b"8", b"9", b"x", b"X", b"a", b"f",
     b"g", b"\x00", b"\xa0"]), max_size=12).map(b"".join))
def test_strtol_matches_libc(data):
    ctypes.set_errno(0)
    expected = _libc.strtol(data, None, 0)
    if ctypes.get_errno() == 0:       # overflow: libc clamps, we keep the true value
        assert strtol0(data) == expected


@pytest.mark.parametrize("content,value", [
    (b"2147483647", 2**31 - 1), (b"2147483648", 2**31),       # keepalived lets INT32_MAX+1 through
    (b"-2147483648", -2**31), (b"2147483649", None), (b"-2147483649", None),
    (b"99999999999999999999999", None),
    (b" " * 126 + b"5", 5), (b" " * 127 + b"5", 0),             # only the first 127 bytes count
])
def test_read_value_range_and_length(tmp_path, content, value):
    path = tmp_path / "f"
    path.write_bytes(content)
    assert read_value(str(path)) == value


def test_read_value_missing_empty_unreadable(tmp_path):
    assert read_value(str(tmp_path / "missing")) == 0
    (tmp_path / "empty").write_bytes(b"")
    assert read_value(str(tmp_path / "empty")) == 0
    assert read_value(str(tmp_path)) == 0          # a directory: read() fails


# -- watching ---------------------------------------------------------------------

def test_write_delete_move_in_and_out(run, tmp_path):
    path = tmp_path / "prio"
    path.write_text("5\n")

    async def scenario():
        w = Watch()
        w.trackers.configure({"t": tf("t", path)})
        assert w.trackers.value("t") == 5
        await w.quiet(0.02)

        path.write_text("0x10\n")
        assert await w.next() == ("t", 16)
        path.write_text("16")                    # same value: nothing to say
        await w.quiet()

        path.unlink()
        assert await w.next() == ("t", 0)
        assert w.trackers.value("t") == 0

        staged = tmp_path / "staged"
        staged.write_text("-7")
        os.rename(staged, path)                  # moved in
        assert await w.next() == ("t", -7)

        staged.write_text("3")
        os.replace(staged, path)                 # atomic replace: moved in over it
        assert await w.next() == ("t", 3)

        os.rename(path, tmp_path / "elsewhere")  # moved away
        assert await w.next() == ("t", 0)

        (tmp_path / "other").write_text("9")     # a neighbour is not our file
        await w.quiet()
        w.trackers.close()

    run(scenario())


def test_out_of_range_keeps_previous(run, tmp_path, caplog):
    path = tmp_path / "prio"
    path.write_text("4")

    async def scenario():
        w = Watch()
        w.trackers.configure({"t": tf("t", path)})
        path.write_text("4294967296")
        await w.quiet()
        assert w.trackers.value("t") == 4
        path.write_text("6")
        assert await w.next() == ("t", 6)
        w.trackers.close()

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        run(scenario())
    assert any("Invalid number 4294967296" in r.getMessage() for r in caplog.records)


def test_two_trackers_same_directory_and_file(run, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"

    async def scenario():
        w = Watch()
        w.trackers.configure({"a": tf("a", a), "b": tf("b", b), "a2": tf("a2", a)})
        a.write_text("1")
        got = {await w.next(), await w.next()}
        assert got == {("a", 1), ("a2", 1)}
        b.write_text("2")
        assert await w.next() == ("b", 2)
        w.trackers.close()

    run(scenario())


def test_symlinked_directory_is_resolved(run, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)

    async def scenario():
        w = Watch()
        w.trackers.configure({"t": tf("t", tmp_path / "link" / "prio")})
        (real / "prio").write_text("11")
        assert await w.next() == ("t", 11)
        w.trackers.close()

    run(scenario())


def test_reconfigure(run, tmp_path):
    p, q = tmp_path / "p", tmp_path / "q"
    p.write_text("1")
    q.write_text("2")

    async def scenario():
        w = Watch()
        w.trackers.configure({"t": tf("t", p), "u": tf("u", q)})
        # Unchanged: nothing reported, still watched.
        w.trackers.configure({"t": tf("t", p, weight=-10), "u": tf("u", q)})
        await w.quiet(0.02)
        p.write_text("3")
        assert await w.next() == ("t", 3)
        # t now points elsewhere (value 2: reported), u is gone, v is new (not reported).
        r = tmp_path / "r"
        r.write_text("8")
        w.trackers.configure({"t": tf("t", q), "v": tf("v", r)})
        assert w.queue.get_nowait() == ("t", 2)
        assert w.trackers.value("v") == 8
        assert w.trackers.value("u") == 0
        p.write_text("4")                        # no longer tracked
        await w.quiet()
        q.write_text("5")
        assert await w.next() == ("t", 5)
        w.trackers.close()
        q.write_text("6")                        # closed: nothing more
        await w.quiet()

    run(scenario())


def test_value_changed_while_unwatched_is_reported_at_reconfigure(run, tmp_path):
    p = tmp_path / "p"
    p.write_text("1")

    async def scenario():
        w = Watch()
        w.trackers.configure({"t": tf("t", p)})
        w.trackers.close()
        p.write_text("2")
        w.trackers.configure({"t": tf("t", p)})
        # close() forgot the tracker, so this is a new one: read, not reported.
        assert w.trackers.value("t") == 2
        await w.quiet(0.02)
        w.trackers.close()

    run(scenario())


def test_missing_directory_drops_tracker(run, tmp_path, caplog):
    async def scenario():
        w = Watch()
        w.trackers.configure({"t": tf("t", tmp_path / "nodir" / "prio", init_file=3),
                              "ok": tf("ok", tmp_path / "prio")})
        assert w.trackers.dropped == {"t"}
        assert w.trackers.value("t") == 0
        (tmp_path / "prio").write_text("1")
        assert await w.next() == ("ok", 1)
        w.trackers.close()

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        run(scenario())
    assert "Track file directory for t does not exist - removing" in caplog.messages
    assert not (tmp_path / "nodir").exists()


def test_init_file(run, tmp_path):
    new, kept, forced = tmp_path / "new", tmp_path / "kept", tmp_path / "forced"
    kept.write_text("7")
    forced.write_text("7")

    async def scenario():
        w = Watch()
        files = {"new": tf("new", new, init_file=-5),
                 "kept": tf("kept", kept, init_file=1),
                 "forced": tf("forced", forced, init_file=2, init_overwrite=True)}
        w.trackers.configure(files)
        assert new.read_text() == "-5\n"
        assert kept.read_text() == "7"
        assert forced.read_text() == "2\n"
        assert [w.trackers.value(n) for n in ("new", "kept", "forced")] == [-5, 7, 2]
        await w.quiet(0.02)                      # our own writes are not events
        # A reload neither overwrites an existing file, but still creates a missing one.
        forced.write_text("9")
        assert await w.next() == ("forced", 9)
        new.unlink()
        assert await w.next() == ("new", 0)
        w.trackers.configure(files)
        assert forced.read_text() == "9"
        assert new.read_text() == "-5\n"
        assert w.queue.get_nowait() == ("new", -5)
        w.trackers.close()

    run(scenario())
    assert sorted(os.listdir(tmp_path)) == ["forced", "kept", "new"]   # no temporary left


def test_init_file_mode_follows_umask(run, tmp_path):
    path = tmp_path / "prio"

    async def scenario():
        old = os.umask(0o022)
        try:
            FileTrackers(asyncio.get_running_loop(), lambda *a: None).configure(
                {"t": tf("t", path, init_file=0)})
        finally:
            os.umask(old)

    run(scenario())
    assert path.stat().st_mode & 0o777 == 0o644


def test_overwrite_refuses_non_regular_file(run, tmp_path, caplog):
    (tmp_path / "d").mkdir()

    async def scenario():
        w = Watch()
        w.trackers.configure({"t": tf("t", tmp_path / "d", init_file=1, init_overwrite=True)})
        assert w.trackers.value("t") == 0
        w.trackers.close()

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        run(scenario())
    assert "Cannot initialise track file t - it is not a regular file" in caplog.messages
    assert (tmp_path / "d").is_dir()


def test_removed_directory_is_logged(run, tmp_path, caplog):
    d = tmp_path / "d"
    d.mkdir()
    (d / "prio").write_text("3")

    async def scenario():
        w = Watch()
        w.trackers.configure({"t": tf("t", d / "prio")})
        (d / "prio").unlink()
        assert await w.next() == ("t", 0)
        d.rmdir()
        await w.quiet()
        w.trackers.close()

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        run(scenario())
    assert "track_file t: directory removed, no longer watched" in caplog.messages


def test_failing_report_does_not_lose_other_events(run, tmp_path, caplog):
    a = tmp_path / "a"

    async def scenario():
        got = asyncio.Queue()

        def report(name, value):
            if name == "first":
                raise RuntimeError("receiver bug")
            got.put_nowait((name, value))

        trackers = FileTrackers(asyncio.get_running_loop(), report)
        trackers.configure({"first": tf("first", a), "second": tf("second", a)})
        a.write_text("1")
        assert await asyncio.wait_for(got.get(), PROMPT) == ("second", 1)
        assert trackers.value("first") == 1
        trackers.close()

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        run(scenario())
    assert "track_file first: reporting value 1 failed" in caplog.messages
