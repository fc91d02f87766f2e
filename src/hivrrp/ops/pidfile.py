"""The pid file as a lock: one daemon per network namespace.

A second `hivrrp run` used to delete the live daemon's VIPs as leftovers
before it found the control socket taken. The lock is taken before anything
touches the kernel; the file names the holder. flock, not the pid's
liveness: a pid can be reused, a lock dies with its holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat

from hivrrp.ops import runpaths


class AlreadyRunning(Exception):
    def __init__(self, path: str, pid: int | None, elsewhere: bool = False) -> None:
        self.path, self.pid = path, pid
        holder = f"pid {pid}" if pid else "a process that has not written its pid yet"
        if elsewhere:
            # Our namespace's own lock was free: the pid file's holder runs in
            # another namespace whose name, like ours, could not be found.
            super().__init__(f"the pid file {path} is held by hivrrp {holder} of another "
                             "network namespace: give this one its own --pid-file and "
                             "--control")
        else:
            super().__init__(f"hivrrp is already running in this network namespace "
                             f"({holder}, pid file {path})")


class PidFileError(Exception):
    """The path cannot be our pid file (a symlink, a directory, no permission)."""


class PidLock:
    """`names`: the pid file a namespace lock stands for, written after the
    pid, so a refusal can name the running daemon's pid file."""

    def __init__(self, path: str, names: str | None = None) -> None:
        self.path = path
        self.names = names
        self.fd: int | None = None

    def acquire(self) -> PidLock:
        """Lock the file and write our pid; AlreadyRunning if another holds it."""
        directory = os.path.dirname(self.path)
        for _ in range(10):
            if directory:
                # Again each time: the last daemon of a namespace removes its directory.
                try:
                    os.makedirs(directory, mode=0o755, exist_ok=True)
                except FileExistsError:
                    continue        # removed by its last daemon between mkdir and the check
                except OSError as exc:
                    raise PidFileError(f"cannot make {directory}: {exc.strerror or exc}"
                                       ) from None
            fd = self._open()
            if fd is None:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid, names = _read_holder(fd)
                os.close(fd)
                raise AlreadyRunning(names or self.path, pid) from None
            # The holder we waited on may have removed the file meanwhile: a
            # lock on an unlinked inode would let a third daemon lock a new one.
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                text = f"{os.getpid()}\n" + (f"{self.names}\n" if self.names else "")
                os.pwrite(fd, text.encode(), 0)
                self.fd = fd
                return self
            os.close(fd)
        raise PidFileError(f"{self.path} keeps being replaced")

    def _open(self) -> int | None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            return None                  # the directory went meanwhile
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PidFileError(f"{self.path} is a symbolic link: refusing it as a pid "
                                   "file") from None
            raise PidFileError(f"cannot open the pid file {self.path}: "
                               f"{exc.strerror or exc}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise PidFileError(f"{self.path} is not a regular file: refusing it as a pid file")
        return fd

    def release(self) -> None:
        """Remove the file if it is still ours, then unlock (in that order: a
        daemon starting meanwhile creates a file of its own)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self.fd, self.path):
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None
        # The namespace's own directory goes with its last daemon.
        directory = os.path.dirname(self.path)
        if os.path.basename(os.path.dirname(directory)) == "netns":
            with contextlib.suppress(OSError):
                os.rmdir(directory)

    def __enter__(self) -> PidLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: str) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    """The holder's pid and, for a namespace lock, its pid file."""
    try:
        lines = os.pread(fd, 4096, 0).decode("utf-8", "replace").splitlines()
    except OSError:
        return None, None
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    return pid, (lines[1] if len(lines) > 1 and lines[1] else None)


def _same_namespace(pid: int | None) -> bool:
    """Whether `pid` shares our network namespace; False where /proc cannot tell."""
    theirs = runpaths.ns_id(f"/proc/{pid}/ns/net") if pid else None
    return theirs is not None and theirs == runpaths.ns_id()


class DaemonLocks:
    """The pid file and the network namespace's own lock, taken together.

    The pid file's path follows the namespace's name, and a namespace can
    have two names, or get one after a daemon started in it, or a second
    daemon can be given another --pid-file: the namespace lock, named after
    the namespace itself (its inode), refuses a second daemon all the same."""

    def __init__(self, pid_file: str, namespace_lock: str | None) -> None:
        self.locks = ([PidLock(namespace_lock, names=pid_file)] if namespace_lock else [])
        self.locks.append(PidLock(pid_file))

    def acquire(self) -> DaemonLocks:
        taken: list[PidLock] = []
        try:
            for lock in self.locks:
                try:
                    taken.append(lock.acquire())
                except AlreadyRunning as exc:
                    # The namespace's lock is ours, so the holder is no daemon of
                    # this namespace, unless /proc says it is (an older hivrrp).
                    if taken and not _same_namespace(exc.pid):
                        raise AlreadyRunning(exc.path, exc.pid, elsewhere=True) from None
                    raise
        except BaseException:
            for lock in reversed(taken):
                lock.release()
            raise
        return self

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()
