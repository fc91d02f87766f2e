"""Where a daemon keeps its pid file and control socket: one daemon per network
namespace, as keepalived (which suffixes its pid files with the namespace's
name). `ip netns exec X hivrrp status` must reach X's daemon, so the paths
are derived from the namespace the command runs in, found the way
`ip netns identify` finds it.
"""

from __future__ import annotations

import os

RUN_DIR = "/run/hivrrp"
NETNS_DIR = "/run/netns"       # where `ip netns add` binds its namespaces


def ns_id(path: str = "/proc/self/ns/net") -> tuple[int, int] | None:
    """A network namespace itself (device, inode), ours by default; None where
    /proc does not tell (another process's takes ptrace access to it)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def namespace_name() -> str | None:
    """None in the host's (init's) network namespace; else the name `ip netns`
    gave ours, or `netns-INODE` for one it did not name."""
    mine = ns_id("/proc/self/ns/net")
    init = ns_id("/proc/1/ns/net")
    if mine is None or mine == init:
        return None
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except OSError:
        names = []
    for name in names:
        if ns_id(os.path.join(NETNS_DIR, name)) == mine:
            return name
    if init is None:
        # Reading pid 1's namespace takes ptrace access to it, which a
        # capability bounding set without CAP_SYS_PTRACE (the shipped unit's)
        # denies. Not named by `ip netns` and not known otherwise: the host's,
        # where systemd starts us, so `hivrrp status` from a shell finds us.
        return None
    return f"netns-{mine[1]}"


def run_dir(namespace: str | None = None) -> str:
    return RUN_DIR if namespace is None else os.path.join(RUN_DIR, "netns", namespace)


def pid_file() -> str:
    return os.path.join(run_dir(namespace_name()), "hivrrp.pid")


def control_socket() -> str:
    return os.path.join(run_dir(namespace_name()), "control.sock")


def namespace_lock() -> str | None:
    """A lock file named after our network namespace itself (not its names,
    which can change and can be two): one daemon per namespace, whatever pid
    file each is given. None where /proc does not tell."""
    mine = ns_id("/proc/self/ns/net")
    if mine is None:
        return None
    return os.path.join(RUN_DIR, "locks", f"netns-{mine[0]}-{mine[1]}.lock")
