"""track_file trackers: the integer in a file, re-read when the file changes.

Follows keepalived's trackers/track_file.c: the file's directory is watched
with inotify (the file itself may not exist yet, and a watch on the file would
not survive it being replaced by a rename), and the value is strtol() of the
first 127 bytes.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import stat
import struct
from collections.abc import Callable
from dataclasses import dataclass

from hivrrp.config.model import TrackFile
from hivrrp.util.atomicfile import write_atomically

log = logging.getLogger("hivrrp")

# <sys/inotify.h>
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
# keepalived's mask: written and closed, deleted, moved away or in.
WATCH_MASK = IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO

_EVENT = struct.Struct("iIII")          # wd, mask, cookie, len; then len bytes of name
_READ_SIZE = 64 * 1024
# Reads per wakeup: the fd is level-triggered, so what is left is read on the
# next wakeup and a flood of events cannot hold the loop.
_READS_PER_WAKEUP = 16

# keepalived reads at most this much of the file (char buf[128], NUL-terminated).
_VALUE_BYTES = 127
_MIN, _MAX = -2**31, 2**31   # keepalived accepts INT32_MAX + 1 (track_file.c, process_track_file)

_C_SPACE = b" \t\n\v\f\r"
_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def strtol0(data: bytes) -> int:
    """C strtol(data, NULL, 0) without the overflow clamping: leading C-locale
    whitespace, a sign, then 0x/0X hex, 0 octal or decimal digits; whatever
    follows is ignored and no digits at all gives 0."""
    data = data.split(b"\0", 1)[0]
    i, n = 0, len(data)
    while i < n and data[i] in _C_SPACE:
        i += 1
    sign = 1
    if i < n and data[i] in b"+-":
        sign = -1 if data[i] == ord("-") else 1
        i += 1
    base = 10
    if data[i:i + 2] in (b"0x", b"0X") and i + 2 < n and chr(data[i + 2]) in _DIGITS[16]:
        base, i = 16, i + 2
    elif data[i:i + 1] == b"0":
        base = 8
    digits = _DIGITS[base]
    start = i
    while i < n and chr(data[i]) in digits:
        i += 1
    return sign * int(data[start:i], base) if i > start else 0


def read_value(path: str) -> int | None:
    """The value keepalived would read from path: 0 when the file is missing,
    unreadable or empty; None (keep the previous value) when the number is
    outside what keepalived accepts."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        data = os.read(fd, _VALUE_BYTES)
    except OSError:                 # EISDIR and the like: keepalived reads 0
        return 0
    finally:
        os.close(fd)
    value = strtol0(data)
    if not _MIN <= value <= _MAX:
        log.warning("Invalid number %d read from %s - ignoring", value, path)
        return None
    return value


class _Inotify:
    """The few inotify calls we need.

    The standard library has no inotify binding and the project takes no
    dependency for it (pyroute2 has none either), so libc is called through
    ctypes; the events are plain structs read from the fd.
    """

    _libc = None

    def __init__(self) -> None:
        if _Inotify._libc is None:
            _Inotify._libc = ctypes.CDLL(None, use_errno=True)
        # IN_CLOEXEC and IN_NONBLOCK are defined as O_CLOEXEC and O_NONBLOCK,
        # whose values differ between architectures.
        self.fd = self._check(self._libc.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK),
                              "inotify_init1")

    def add_watch(self, path: str, mask: int) -> int:
        return self._check(self._libc.inotify_add_watch(self.fd, os.fsencode(path),
                                                        ctypes.c_uint32(mask)),
                           f"inotify_add_watch {path}")

    def read(self) -> bytes:
        """What is queued; b"" when nothing is."""
        try:
            return os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return b""

    def close(self) -> None:
        os.close(self.fd)

    @staticmethod
    def _check(result: int, what: str) -> int:
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return result


def parse_events(buf: bytes):
    """(wd, mask, name) for each event in buf."""
    off, size = 0, _EVENT.size
    while off + size <= len(buf):
        wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
        name = buf[off + size:off + size + length].split(b"\0", 1)[0]
        off += size + length
        yield wd, mask, os.fsdecode(name)


@dataclass
class _Tracked:
    name: str
    path: str          # resolved as keepalived does: real directory + file name
    directory: str
    file: str
    value: int = 0


class FileTrackers:
    """All configured track_files of the daemon.

    report(name, value) is called on the loop when a tracker's value changes.
    configure() reports the trackers it keeps whose value differs from before
    (including a changed path); a new tracker is not reported: read value().
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, report: Callable[[str, int], None]) -> None:
        self._loop = loop
        self._report = report
        self._tracked: dict[str, _Tracked] = {}
        self._dropped: set[str] = set()
        self._by_wd: dict[int, dict[str, list[_Tracked]]] = {}   # wd -> file name -> trackers
        self._inotify: _Inotify | None = None
        self._configured = False

    def configure(self, files: dict[str, TrackFile]) -> None:
        # keepalived writes init_file values when it reads the config and
        # overwrites an existing file only then, never on a reload.
        first = not self._configured
        self._configured = True
        previous = {name: t.value for name, t in self._tracked.items()}

        # As keepalived's reload: drop every watch, set them up again, then
        # read every file.  A change in between is seen by that read.
        self._unwatch()
        self._tracked, self._dropped = {}, set()
        for name, tf in files.items():
            tracked = self._resolve(tf)
            if tracked is None:
                self._dropped.add(name)
                continue
            if tf.init_file is not None:
                _init_file(tf, overwrite=tf.init_overwrite and first)
            self._tracked[name] = tracked
        self._watch()
        for tracked in self._tracked.values():
            value = read_value(tracked.path)
            if value is None:
                # Out of range: keepalived keeps the previous value (0 at start).
                value = previous.get(tracked.name, 0)
            tracked.value = value

        for name, tracked in self._tracked.items():
            if name in previous and previous[name] != tracked.value:
                self._tell(name, tracked.value)

    def value(self, name: str) -> int:
        """Current value; 0 for a missing, empty or unreadable file, and for
        an unknown or dropped tracker."""
        tracked = self._tracked.get(name)
        return tracked.value if tracked is not None else 0

    @property
    def dropped(self) -> frozenset[str]:
        """Trackers removed because their directory does not exist or their
        path is not accessible.  keepalived removes them from the instances
        tracking them (track_file.c init_track_files): callers should too."""
        return frozenset(self._dropped)

    def close(self) -> None:
        self._unwatch()
        self._tracked, self._dropped = {}, set()

    def _resolve(self, tf: TrackFile) -> _Tracked | None:
        """keepalived's path handling: realpath of the file, or of its
        directory when the file does not exist yet; the directory must exist."""
        if not tf.path:
            log.error("track_file %s has no file - removing", tf.name)
            return None
        try:
            path = os.path.realpath(tf.path, strict=True)
        except FileNotFoundError:
            head, tail = os.path.split(tf.path)
            try:
                directory = os.path.realpath(head or ".", strict=True)
            except OSError:
                directory = None
            if directory is None or not os.path.isdir(directory) or not tail:
                log.error("Track file directory for %s does not exist - removing", tf.name)
                return None
            path = os.path.join(directory, tail)
        except OSError as exc:
            log.error("track file %s is not accessible - ignoring (%s)", tf.name, exc.strerror)
            return None
        directory, file = os.path.split(path)
        return _Tracked(tf.name, path, directory, file)

    def _watch(self) -> None:
        if not self._tracked:
            return
        try:
            self._inotify = _Inotify()
        except OSError as exc:
            # keepalived carries on unwatched too; values are still read now.
            log.error("Unable to monitor track files: %s", exc.strerror)
            return
        for tracked in self._tracked.values():
            try:
                wd = self._inotify.add_watch(tracked.directory, WATCH_MASK)
            except OSError as exc:
                log.error("track_file %s: cannot watch %s: %s - its changes will not be seen",
                          tracked.name, tracked.directory, exc.strerror)
                continue
            # A directory added twice gives the same wd.
            self._by_wd.setdefault(wd, {}).setdefault(tracked.file, []).append(tracked)
        self._loop.add_reader(self._inotify.fd, self._on_events)

    def _unwatch(self) -> None:
        if self._inotify is not None:
            self._loop.remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
        self._by_wd = {}

    def _on_events(self) -> None:
        inotify = self._inotify
        for _ in range(_READS_PER_WAKEUP):
            try:
                buf = inotify.read()
            except OSError as exc:
                log.error("inotify read() failed: %s", exc.strerror)
                return
            if not buf:
                return
            for wd, mask, name in parse_events(buf):
                self._event(wd, mask, name)
                # A report callback reconfigured or closed us: the rest of
                # these events are about watches that no longer exist (and
                # whose numbers the new fd reuses).
                if self._inotify is not inotify:
                    return

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:
            # keepalived ignores this; events were lost, so read everything.
            log.warning("track_file: inotify queue overflow, re-reading all files")
            for tracked in list(self._tracked.values()):
                self._update(tracked, read_value(tracked.path))
            return
        files = self._by_wd.get(wd)
        if files is None:
            return
        if mask & IN_IGNORED:
            # The watched directory itself was removed (or unmounted).
            names = sorted(t.name for ts in files.values() for t in ts)
            log.warning("track_file %s: directory removed, no longer watched", ", ".join(names))
            del self._by_wd[wd]
            return
        if mask & IN_ISDIR:
            return
        for tracked in files.get(name, ()):
            if mask & (IN_MOVED_FROM | IN_DELETE):
                # Gone: as keepalived, the value is 0.
                self._update(tracked, 0)
            else:                           # IN_CLOSE_WRITE, IN_MOVED_TO
                self._update(tracked, read_value(tracked.path))

    def _update(self, tracked: _Tracked, value: int | None) -> None:
        if value is None or value == tracked.value:
            return
        tracked.value = value
        self._tell(tracked.name, value)

    def _tell(self, name: str, value: int) -> None:
        # Reports run inside the inotify callback: a failing one must not
        # lose the other events read in the same batch.
        try:
            self._report(name, value)
        except Exception:   # the receiver's bug: logged with its traceback
            log.exception("track_file %s: reporting value %d failed", name, value)


def _init_file(tf: TrackFile, overwrite: bool) -> None:
    """init_file VAL [overwrite]: write VAL if the file is missing, or always
    (but only a regular file) with overwrite."""
    try:
        st = os.stat(tf.path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        log.error("Unable to initialise track file %s: %s", tf.name, exc.strerror)
        return
    if st is not None:
        if not overwrite:
            return
        if not stat.S_ISREG(st.st_mode):
            log.error("Cannot initialise track file %s - it is not a regular file", tf.name)
            return
    try:
        write_atomically(tf.path, f"{tf.init_file}\n".encode())
    except OSError as exc:
        log.error("Unable to initialise track file %s: %s", tf.name, exc.strerror)
