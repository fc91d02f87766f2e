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
from collections.abc import Callable
from dataclasses import dataclass

from hivrrp.notify.scriptsec import DEFAULT_SCRIPT_USER
from hivrrp.util.tasks import spawn

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


@dataclass(frozen=True)
class Identity:
    """Whom a script runs as, resolved from names once per configuration
    (resolve, Identities): a run only switches to these numbers, so a slow
    user database (sssd, LDAP) never delays a run, let alone the loop."""

    uid: int
    gid: int
    groups: tuple[int, ...]       # supplementary groups: keepalived keeps just the primary

    def __call__(self) -> None:
        # Runs in the child between fork and exec.  Order matters: groups must
        # be dropped while we are still root.  Supplementary groups are reset
        # (keepalived's set_privileges), so the script does not inherit root's.
        os.setgid(self.gid)
        os.setgroups(list(self.groups))
        os.setuid(self.uid)


def resolve(user: str | None, group: str | None) -> Identity | str | None:
    """None: run as ourselves; str: an error message; else whom to become.

    Blocking (getpwnam/getgrnam go through NSS): call it off the event
    loop, as Identities does."""
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
    return Identity(uid, gid, (gid,))


class Identities:
    """The identities of one configuration's scripts, each resolved once, on
    a worker thread, the first time a run needs it.

    script_user/script_group: global_defs script_user, for scripts without
    their own; with neither, keepalived's default applies (keepalived_script
    if that user exists, else ourselves).  Make a new one when the
    configuration changes: users may have changed too.
    """

    def __init__(self, script_user: str | None = None, script_group: str | None = None):
        self.script_user = script_user
        self.script_group = script_group
        # Futures, so that the 4,000 runs of a mass failover wait for one lookup.
        self._resolved: dict[tuple, asyncio.Future] = {}

    async def get(self, user: str | None, group: str | None) -> Identity | str | None:
        """The identity for a script configured with `user`/`group` (names or
        None); as resolve() returns it."""
        key = (user, group)
        future = self._resolved.get(key)
        if future is None:
            future = self._resolved[key] = asyncio.ensure_future(
                asyncio.to_thread(self._lookup, user, group))
        # Shielded: one waiter being cancelled must not cancel the others' lookup.
        return await asyncio.shield(future)

    def _lookup(self, user: str | None, group: str | None) -> Identity | str | None:
        try:
            if user is not None:
                return resolve(user, group)
            if self.script_user is not None:
                return resolve(self.script_user, self.script_group)
            found = resolve(DEFAULT_SCRIPT_USER, None)
            # keepalived_script only if it exists (scriptsec.run_as).
            return None if isinstance(found, str) else found
        except Exception as exc:  # noqa: BLE001 - NSS can fail oddly; an error outcome, not a crash
            return f"looking up {user or self.script_user or DEFAULT_SCRIPT_USER}: {exc}"


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


async def run(argv: list[str], timeout: float | None, *,
              identity: Identity | str | None = None, env: dict | None = None,
              started: Callable[[int], object] | None = None) -> Outcome:
    """Run argv and return how it ended; never raises except CancelledError.

    timeout: seconds before the process group is terminated (None: no limit).
    identity: whom to run as (needs root), from Identities.get or resolve; a
    string there (a lookup that failed) is returned as an error Outcome.
    env: the child's whole environment (None: inherit ours).  started: told
    the child's pid once it runs.
    If the awaiting task is cancelled the process group is SIGKILLed (the
    caller has given up on it, so nobody would wait out a grace period) and
    CancelledError propagates.
    """
    if not argv:
        return Outcome(ok=False, error="empty command")
    if any("\0" in arg for arg in argv):
        # uvloop would silently cut the argument at the NUL and run that.
        return Outcome(ok=False, error=f"{argv[0]!r}: NUL byte in the command line")
    if isinstance(identity, str):
        return Outcome(ok=False, error=identity)
    spawning = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        # uvloop refuses user=/group=/extra_groups=, so switch identity
        # in the child ourselves; it works on both loops.
        preexec_fn=identity,
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
    if started is not None:
        try:
            started(proc.pid)
        except Exception:
            log.exception("script %d: start callback failed", proc.pid)

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
