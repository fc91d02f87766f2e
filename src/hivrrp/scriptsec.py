"""keepalived's script security check (enable_script_security).

A script that runs as root must not be replaceable by anyone but root: the
file and every directory leading to it must be root-owned and not writable by
group (unless the group is root) or others; a directory with the sticky bit is
fine because others cannot replace root's files in it.  This follows
keepalived 2.2.7 lib/notify.c check_script_secure/check_security/find_path.

Everything here only reads the filesystem (stat, realpath) and returns
verdicts; the caller decides what to log and whether to run.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from hivrrp.config.model import Script

# keepalived picks this user for scripts when script_user is not configured
# and the user exists (lib/notify.c get_default_script_user).
DEFAULT_SCRIPT_USER = "keepalived_script"


def _is_executable(st: os.stat_result, uid: int, gid: int) -> bool:
    """keepalived's is_executable: root needs any x bit, others the bit for
    their class.  Supplementary groups are ignored on purpose: scripts run
    with them reset."""
    mode = st.st_mode
    if uid == 0:
        return bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if uid == st.st_uid:
        return bool(mode & stat.S_IXUSR)
    if gid == st.st_gid:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)


def _search_path(name: str, uid: int, gid: int) -> tuple[str | None, str | None]:
    """(path, None) or (None, reason) for a bare command name, as glibc's
    execvp would find it (keepalived find_path)."""
    search = os.environ.get("PATH") or os.confstr("CS_PATH") or "/bin:/usr/bin"
    denied = None
    for directory in search.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and _is_executable(st, uid, gid):
            return candidate, None
        denied = candidate
    if denied is not None:
        return None, f"{name} found in PATH as {denied} but it is not executable"
    return None, f"{name} does not exist in PATH ({search})"


def _walk_reason(path: str, written: bool = False) -> str | None:
    """keepalived check_security on an absolute path: each element, from '/'
    down, root-owned and not writable by non-root users (sticky directories
    excepted); the last element a regular file or a symlink.

    written=True is our extra check of the path as the configuration spells
    it: hivrrp executes that spelling (keepalived executes the resolved one),
    so its directories must be safe too, following symlinks in them.
    """
    parts = path.split("/")
    prefixes = ["/"] + ["/".join(parts[:i + 1]) for i in range(1, len(parts))]
    if written:
        prefixes = prefixes[:-1]          # the file itself is checked resolved
    for i, element in enumerate(prefixes):
        last = not written and i == len(prefixes) - 1
        try:
            st = os.stat(element) if written else os.lstat(element)
        except OSError as exc:
            return f"{element} does not exist" if isinstance(exc, FileNotFoundError) \
                else f"{element}: {exc.strerror}"
        mode = st.st_mode
        what = element if last else f"directory {element}"
        if not last and not stat.S_ISDIR(mode):
            return f"{element} (in the path of {path}) is not a directory"
        if last and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            return f"{element} is not a regular file"
        if st.st_uid != 0:
            return f"{what} is owned by uid {st.st_uid}, not root"
        sticky_dir = stat.S_ISDIR(mode) and mode & stat.S_ISVTX
        if stat.S_ISLNK(mode) or sticky_dir:
            continue
        if (st.st_gid != 0 and mode & stat.S_IWGRP) or mode & stat.S_IWOTH:
            return f"{what} is writable by non-root users (mode {stat.S_IMODE(mode):04o})"
    return None


def _resolved(path: str) -> tuple[list[str], str | None]:
    """The path(s) keepalived checks for a script given with a slash: the
    realpath, or the real directory with the configured file name when that
    names the same file (so argv[0]'s name is kept); both when they differ."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        return [], f"{path} does not exist"
    keep_name = os.path.join(os.path.dirname(real), os.path.basename(path))
    if keep_name == real:
        return [real], None
    try:
        same = os.path.samefile(keep_name, real)
    except OSError:
        same = False
    return ([keep_name, real] if same else [real]), None


def insecure_reason(path: str) -> str | None:
    """None if `path` (a command as configured) is safe to run as root, else
    why not, naming the offending file or directory.  A bare name is looked
    up in PATH first; a missing script gives "... does not exist"."""
    if not path:
        return "empty command"
    if "/" not in path:
        found, reason = _search_path(path, 0, 0)
        if found is None:
            return reason
        path = found
    path = os.path.abspath(path)
    checked, reason = _resolved(path)
    if reason is not None:
        return reason
    for candidate in checked:
        reason = _walk_reason(candidate)
        if reason is not None:
            return reason
    return _walk_reason(path, written=True)


@dataclass(frozen=True)
class Verdict:
    runnable: bool                # False: the daemon must not run it
    message: str | None = None    # why not runnable, or why it is unsafe though allowed
    insecure: bool = False


def run_as(script: Script, script_user: str | None = None,
           script_group: str | None = None) -> tuple[str | None, str | None]:
    """(user, group) names a script runs as, with keepalived's defaults: its
    own user, else global script_user, else keepalived_script if that user
    exists, else (None, None) = ourselves."""
    if script.user is not None:
        return script.user, script.group
    if script_user is not None:
        return script_user, script_group
    try:
        pwd.getpwnam(DEFAULT_SCRIPT_USER)
    except KeyError:
        return None, None
    return DEFAULT_SCRIPT_USER, None


def _identity(script: Script, enabled: bool, script_user: str | None,
              script_group: str | None) -> tuple[int, int] | str:
    user, group = run_as(script, script_user, script_group)
    if user is None:
        if enabled:
            # keepalived ignores such scripts: under script security it will
            # not fall back to running them as root by default.
            return f"no script_user configured and user {DEFAULT_SCRIPT_USER} does not exist"
        return os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return f"script user {user!r} does not exist"
    uid, gid = pw.pw_uid, pw.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            return f"script group {group!r} does not exist"
    return uid, gid


def check_script(script: Script, enabled: bool, script_user: str | None = None,
                 script_group: str | None = None) -> Verdict:
    """keepalived's check_notify_script_secure for one script.

    Not runnable when: the command cannot be found or is not executable for
    the user it runs as (always, as keepalived), or it runs with root
    privileges (uid 0, gid 0, or a setuid/setgid-root file) and its path is
    not secure while `enabled` (enable_script_security).  With security off
    an unsafe path is reported but the script stays runnable.
    """
    if not script.argv:
        return Verdict(False, "empty command")
    ident = _identity(script, enabled, script_user, script_group)
    if isinstance(ident, str):
        return Verdict(False, ident)
    uid, gid = ident
    path = script.argv[0]
    if "/" not in path:
        found, reason = _search_path(path, uid, gid)
        if found is None:
            return Verdict(False, reason)
        path = found
    path = os.path.abspath(path)
    checked, reason = _resolved(path)
    if reason is not None:
        return Verdict(False, reason)
    try:
        st = os.stat(checked[-1])
    except OSError as exc:        # removed since _resolved looked
        return Verdict(False, f"{checked[-1]}: {exc.strerror}")
    if not _is_executable(st, uid, gid):
        return Verdict(False, f"{path} is not executable for uid:gid {uid}:{gid}")
    privileged = (uid == 0 or gid == 0
                  or (st.st_uid == 0 and st.st_mode & stat.S_ISUID and st.st_mode & stat.S_IXUSR)
                  or (st.st_gid == 0 and st.st_mode & stat.S_ISGID and st.st_mode & stat.S_IXGRP))
    if not privileged:
        return Verdict(True)
    for candidate in checked:
        reason = _walk_reason(candidate)
        if reason is not None:
            break
    else:
        reason = _walk_reason(path, written=True)
    if reason is None:
        return Verdict(True)
    return Verdict(not enabled, reason, insecure=True)


@dataclass
class SecurityReport:
    """Verdicts for every script of a configuration, keyed by command line.

    `allows` is the predicate hivrrp.notify.Notifier takes as `secure`.
    `messages` are ready-to-log lines: refusals, unsafe-but-allowed scripts,
    and keepalived's SECURITY VIOLATION summary when scripts run without
    enable_script_security.
    """

    # Keyed by (command, user, group) as configured: the same command may run
    # as root in one place and unprivileged in another, with other verdicts.
    verdicts: dict[tuple, Verdict] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    enabled: bool = False
    script_user: str | None = None
    script_group: str | None = None

    def allows(self, script: Script) -> bool:
        """Whether `script` may run; one not seen at load is checked now (and
        remembered), never waved through."""
        key = _key(script)
        verdict = self.verdicts.get(key)
        if verdict is None:
            verdict = self.verdicts[key] = check_script(script, self.enabled, self.script_user,
                                                        self.script_group)
        return verdict.runnable


def _key(script: Script) -> tuple:
    return (script.command, script.user, script.group)


def check_scripts(scripts: Iterable[Script | None], enabled: bool,
                  script_user: str | None = None,
                  script_group: str | None = None) -> SecurityReport:
    """Check every script once (None entries are skipped) at config load.

    enabled: global_defs enable_script_security; script_user/script_group:
    global_defs script_user.  Returns a SecurityReport; the caller logs its
    messages and passes report.allows to whatever runs scripts.
    """
    report = SecurityReport(enabled=enabled, script_user=script_user, script_group=script_group)
    any_script = any_insecure = False
    for script in scripts:
        if script is None or _key(script) in report.verdicts:
            continue
        verdict = check_script(script, enabled, script_user, script_group)
        report.verdicts[_key(script)] = verdict
        if script.user is None:
            # check_script judged it as run_as() would run it; a caller that
            # fills the user in (the script trackers) asks under that key.
            user, group = run_as(script, script_user, script_group)
            report.verdicts.setdefault((script.command, user, group), verdict)
        any_script = True
        any_insecure |= verdict.insecure
        if not verdict.runnable:
            report.messages.append(f"script {script.command!r} disabled: {verdict.message}")
        elif verdict.insecure:
            report.messages.append(f"script {script.command!r} is unsafe: {verdict.message}")
    if any_script and not enabled:
        report.messages.append(
            "SECURITY VIOLATION - scripts are being executed but script_security not enabled."
            + (" There are insecure scripts." if any_insecure else ""))
    return report
