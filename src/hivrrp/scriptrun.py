"""Run one external command the way keepalived runs its scripts.

keepalived (lib/notify.c, system_call_script) forks the script into its own
process group with stdio on /dev/null, and on timeout signals the whole group:
SIGTERM first, SIGKILL if the script is still there 2 s later.  A timed-out
script counts as failed.  This module reproduces that for one command and
reports the result as an `Outcome` value; it never raises for a script that
cannot be started, because callers run inside the event loop and a bad
notify_* line in the configuration must not take a task down.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import signal as _signal
import subprocess
from dataclasses import dataclass

from hivrrp.tasks import spawn

log = logging.getLogger("hivrrp")

# keepalived's child_killed_thread waits this long between SIGTERM and SIGKILL.
KILL_GRACE = 2.0

# After SIGKILL the leader dies unless it is stuck in the kernel; we still bound
# the wait so a wedged process cannot stall the caller forever (the event
# loop's child watcher reaps it whenever it does die).
_REAP_LIMIT = 5.0


@dataclass(frozen=True)
class Outcome:
    ok: bool                      # exited with status 0
    returncode: int | None = None  # exit status, None if killed by a signal or never started
    signal: int | None = None     # terminating signal, if any
    timed_out: bool = False
    error: str | None = None      # why it could not be started

    def describe(self) -> str:
        """A short human phrase for logs."""
        if self.error is not None:
            return f"could not start: {self.error}"
        if self.timed_out:
            return "timed out"
        if self.signal is not None:
            return f"killed by signal {self.signal}"
        return f"exit status {self.returncode}"


class _Identity:
    """The uid/gid a script should run as, resolved before forking so that an
    unknown name is a clear error instead of a failure inside the child."""

    def __init__(self, uid: int, gid: int):
        self.uid = uid
        self.gid = gid

    def __call__(self) -> None:
        # Runs in the child between fork and exec.  Order matters: groups must
        # be dropped while we are still root.  Supplementary groups are reset
        # to just the primary one, as keepalived's set_privileges does, so the
        # script does not inherit root's groups.
        os.setgid(self.gid)
        os.setgroups([self.gid])
        os.setuid(self.uid)


def _resolve_identity(user: str | None, group: str | None) -> _Identity | str | None:
    """None: run as ourselves; str: an error message; else whom to become."""
    if user is None and group is None:
        return None
    try:
        if user is not None:
            pw = pwd.getpwnam(user)
            uid, gid = pw.pw_uid, pw.pw_gid
        else:
            uid, gid = os.getuid(), os.getgid()
    except KeyError:
        return f"unknown user {user!r}"
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            return f"unknown group {group!r}"
    if uid == os.geteuid() and gid == os.getegid() and os.geteuid() != 0:
        # Already that identity; changing groups would need root for nothing.
        return None
    if os.geteuid() != 0:
        return f"cannot run as {user or ''}:{group or ''} without root"
    return _Identity(uid, gid)


def _start_error(argv: list[str], exc: BaseException) -> str:
    prog = argv[0]
    if isinstance(exc, FileNotFoundError):
        return f"{prog}: no such file or command"
    if isinstance(exc, PermissionError):
        return f"{prog}: permission denied (not executable?)"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{prog}: {exc.strerror}"
    return f"{prog}: {exc}"


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass                      # the whole group is already gone
    except OSError as exc:        # EPERM: a setuid child; nothing more we can do
        log.warning("cannot signal process group %d: %s", pid, exc)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(proc.wait(), _REAP_LIMIT)
    except TimeoutError:
        log.error("script process %d did not die after SIGKILL", proc.pid)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the group, SIGKILL it if the leader outlives the grace period."""
    _killpg(proc.pid, _signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
        return
    except TimeoutError:
        pass
    _killpg(proc.pid, _signal.SIGKILL)
    await _reap(proc)


def _finished(rc: int, timed_out: bool = False) -> Outcome:
    if rc < 0:
        return Outcome(ok=False, returncode=None, signal=-rc, timed_out=timed_out)
    return Outcome(ok=(rc == 0 and not timed_out), returncode=rc, timed_out=timed_out)


def _kill_spawned(spawning: asyncio.Future) -> None:
    """Done-callback of a spawn whose caller was cancelled: kill what it started."""
    if spawning.cancelled() or spawning.exception() is not None:
        return
    proc = spawning.result()
    _killpg(proc.pid, _signal.SIGKILL)
    spawn(_reap(proc), f"reap cancelled script {proc.pid}")


async def run(argv: list[str], timeout: float | None, *, user: str | None = None,
              group: str | None = None, env: dict | None = None) -> Outcome:
    """Run argv and return how it ended; never raises except CancelledError.

    timeout: seconds before the process group is terminated (None: no limit).
    user/group: names to run as (needs root); unknown names are an error
    Outcome.  env: the child's whole environment (None: inherit ours).
    If the awaiting task is cancelled the process group is SIGKILLed (the
    caller has given up on it, so nobody would wait out a grace period) and
    CancelledError propagates.
    """
    if not argv:
        return Outcome(ok=False, error="empty command")
    if any("\0" in arg for arg in argv):
        # uvloop would silently cut the argument at the NUL and run that.
        return Outcome(ok=False, error=f"{argv[0]!r}: NUL byte in the command line")
    ident = _resolve_identity(user, group)
    if isinstance(ident, str):
        return Outcome(ok=False, error=ident)
    spawning = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        # uvloop refuses user=/group=/extra_groups=, so switch identity
        # in the child ourselves; it works on both loops.
        preexec_fn=ident,
    ))
    try:
        # Shielded: cancelled mid-spawn, uvloop (unlike asyncio) leaves the
        # forked child running; finish the spawn and kill its group instead.
        proc = await asyncio.shield(spawning)
    except asyncio.CancelledError:
        # Wait for the spawn (milliseconds) so that whoever cancelled us can
        # count on the child being gone once we are; cancelled again, the
        # done-callback still kills it.
        spawning.add_done_callback(_kill_spawned)
        try:
            proc = await spawning
            await _reap(proc)
        except BaseException:
            pass
        raise
    # SubprocessError: the identity switch failed in the child.
    except (OSError, subprocess.SubprocessError, ValueError, TypeError) as exc:
        return Outcome(ok=False, error=_start_error(argv, exc))

    try:
        try:
            async with asyncio.timeout(timeout):
                rc = await proc.wait()
        except TimeoutError:
            await _terminate(proc)
            return _finished(proc.returncode if proc.returncode is not None else -_signal.SIGKILL,
                             timed_out=True)
        return _finished(rc)
    except asyncio.CancelledError:
        _killpg(proc.pid, _signal.SIGKILL)
        try:
            await _reap(proc)
        except asyncio.CancelledError:
            pass                  # cancelled again: the loop's child watcher still reaps it
        raise
