"""keepalived's script security check (enable_script_security).

A script that runs as root must not be replaceable by anyone but root: the
file and every directory leading to it must be root-owned and not writable by
group (unless the group is root) or others; a directory with the sticky bit is
fine because others cannot replace root's files in it.  This follows
keepalived 2.2.7 lib/notify.c check_script_secure/check_security/find_path.

Everything here only reads the filesystem (stat, realpath) and the user
database, and returns verdicts; the caller decides what to log and whether to
run. Both can be slow (NSS, a network filesystem), so the daemon judges a
configuration's scripts off its event loop, once per load: Lookups resolves
each user, group and command path once however many command lines use it.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hivrrp.config.model import Script
from hivrrp.util.text import plural

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


class Lookups:
    """The user database and command paths as one configuration load saw them.

    keepalived resolves users and checks scripts when it reads its
    configuration; a load resolves each name once, however many of its 6,000
    notify lines use it (a lookup of a missing user took 0.13 ms here through
    nss-systemd, more with LDAP). A new load starts afresh: users and files
    may have changed since.
    """

    def __init__(self) -> None:
        self.users: dict[str, pwd.struct_passwd | None] = {}
        self.groups: dict[str, grp.struct_group | None] = {}
        self.verdicts: dict[tuple, Verdict] = {}     # (argv[0], uid, gid, enabled)

    def user(self, name: str) -> pwd.struct_passwd | None:
        return _looked_up(self.users, name, pwd.getpwnam)

    def group(self, name: str) -> grp.struct_group | None:
        return _looked_up(self.groups, name, grp.getgrnam)


def _looked_up(seen: dict, name: str, lookup: Callable):
    """lookup(name) once per Lookups, None for a name that does not exist."""
    if name not in seen:
        try:
            seen[name] = lookup(name)
        except KeyError:
            seen[name] = None
    return seen[name]


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
    return None, f"{name} not found in PATH ({search})"


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
        return [], f"{path} not found"
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
    up in PATH first; a missing script gives "... not found"."""
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
    """True when the script may run (a Verdict stands for the yes/no of
    SecurityReport.allows and carries the reason along for the log line)."""

    runnable: bool                # False: the daemon must not run it
    message: str | None = None    # why not runnable, or why it is unsafe though allowed
    insecure: bool = False        # refused (or only reported) for its unsafe path
    missing: bool = False         # no such file (keepalived: not found/accessible)

    def __bool__(self) -> bool:
        return self.runnable

    @property
    def refusal(self) -> str | None:
        """Why it does not run, for a log line: a missing script says "not
        found", a refusal for an unsafe path says it was script security."""
        if self.runnable:
            return None
        if self.insecure:
            return f"refused by script security: {self.message}"
        return self.message


def run_as(script: Script, script_user: str | None = None,
           script_group: str | None = None,
           lookups: Lookups | None = None) -> tuple[str | None, str | None]:
    """(user, group) names a script runs as, with keepalived's defaults: its
    own user, else global script_user, else keepalived_script if that user
    exists, else (None, None) = ourselves."""
    if script.user is not None:
        return script.user, script.group
    if script_user is not None:
        return script_user, script_group
    if (lookups or Lookups()).user(DEFAULT_SCRIPT_USER) is None:
        return None, None
    return DEFAULT_SCRIPT_USER, None


NO_SCRIPT_USER = f"no script_user configured and user {DEFAULT_SCRIPT_USER} does not exist"


def _identity(script: Script, enabled: bool, script_user: str | None,
              script_group: str | None, lookups: Lookups) -> tuple[int, int] | str:
    user, group = run_as(script, script_user, script_group, lookups)
    if user is None:
        if enabled:
            # keepalived ignores such scripts: under script security it will
            # not fall back to running them as root by default.
            return NO_SCRIPT_USER
        return os.getuid(), os.getgid()
    pw = lookups.user(user)
    if pw is None:
        return f"script user {user!r} does not exist"
    uid, gid = pw.pw_uid, pw.pw_gid
    if group is not None:
        gr = lookups.group(group)
        if gr is None:
            return f"script group {group!r} does not exist"
        gid = gr.gr_gid
    return uid, gid


def check_script(script: Script, enabled: bool, script_user: str | None = None,
                 script_group: str | None = None, lookups: Lookups | None = None) -> Verdict:
    """keepalived's check_notify_script_secure for one script.

    Not runnable when: the command cannot be found or is not executable for
    the user it runs as (always, as keepalived), or it runs with root
    privileges (uid 0, gid 0, or a setuid/setgid-root file) and its path is
    not secure while `enabled` (enable_script_security).  With security off
    an unsafe path is reported but the script stays runnable.
    """
    if not script.argv:
        return Verdict(False, "empty command")
    lookups = lookups or Lookups()
    ident = _identity(script, enabled, script_user, script_group, lookups)
    # Arguments do not change the verdict: 4,000 instances running one
    # script with their own arguments cost one walk of its path.
    key = ident if isinstance(ident, str) else (script.argv[0], *ident, enabled)
    verdict = lookups.verdicts.get(key)
    if verdict is None:
        verdict = lookups.verdicts[key] = (Verdict(False, ident) if isinstance(ident, str)
                                           else _check_path(script.argv[0], *ident, enabled))
    return verdict


def _check_path(path: str, uid: int, gid: int, enabled: bool) -> Verdict:
    if "/" not in path:
        found, reason = _search_path(path, uid, gid)
        if found is None:
            # keepalived's find_path: denied or absent, the script is "not found".
            return Verdict(False, reason, missing=True)
        path = found
    path = os.path.abspath(path)
    checked, reason = _resolved(path)
    if reason is not None:
        return Verdict(False, reason, missing=True)
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

    `allows` is the predicate hivrrp.notify.notifier.Notifier takes as `secure`.
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
    lookups: Lookups = field(default_factory=Lookups)

    def allows(self, script: Script) -> Verdict:
        """Whether `script` may run (a Verdict, true if so, with the reason
        if not); one not seen at load is checked now (and remembered), never
        waved through."""
        key = _key(script)
        verdict = self.verdicts.get(key)
        if verdict is None:
            verdict = self.verdicts[key] = check_script(script, self.enabled, self.script_user,
                                                        self.script_group, self.lookups)
        return verdict

    def run_as(self, script: Script) -> tuple[str | None, str | None]:
        """scriptsec.run_as with the users this report resolved at load."""
        return run_as(script, self.script_user, self.script_group, self.lookups)


def _key(script: Script) -> tuple:
    return (script.command, script.user, script.group)


def check_scripts(scripts: Iterable[Script | None], enabled: bool,
                  script_user: str | None = None,
                  script_group: str | None = None) -> SecurityReport:
    """Check every script once (None entries are skipped) at config load.

    enabled: global_defs enable_script_security; script_user/script_group:
    global_defs script_user.  Returns a SecurityReport; the caller logs its
    messages and passes report.allows to whatever runs scripts.  Each user
    and each command path is resolved once (Lookups), and each problem is one
    message however many command lines share it.
    """
    report = SecurityReport(enabled=enabled, script_user=script_user, script_group=script_group)
    first: dict[int, Script] = {}           # id(verdict) -> the first command line with it
    lines: dict[int, int] = {}              # ... and how many command lines share it
    order: list[Verdict] = []
    for script in scripts:
        if script is None or _key(script) in report.verdicts:
            continue
        verdict = check_script(script, enabled, script_user, script_group, report.lookups)
        report.verdicts[_key(script)] = verdict
        if script.user is None:
            # check_script judged it as run_as() would run it; a caller that
            # fills the user in (the script trackers) asks under that key.
            user, group = report.run_as(script)
            report.verdicts.setdefault((script.command, user, group), verdict)
        if id(verdict) not in first:
            first[id(verdict)] = script
            order.append(verdict)
        lines[id(verdict)] = lines.get(id(verdict), 0) + 1
    for verdict in order:
        if verdict.runnable and not verdict.insecure:
            continue
        others = lines[id(verdict)] - 1
        more = f" (and {plural(others, 'more command line')} like it)" if others else ""
        what = "disabled" if not verdict.runnable else "is unsafe"
        report.messages.append(f"script {first[id(verdict)].command!r} {what}: "
                               f"{verdict.message}{more}")
    # keepalived counts the scripts it found: a missing one runs nothing.
    if not enabled and any(not v.missing for v in order):
        report.messages.append(
            "SECURITY VIOLATION - scripts are being executed but script_security not enabled."
            + (" There are insecure scripts." if any(v.insecure for v in order) else ""))
    return report
