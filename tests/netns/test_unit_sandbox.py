"""The daemon at work inside conf/hivrrp.service's sandbox, as far as it can
be rebuilt without systemd: root with the unit's CapabilityBoundingSet
(setpriv), traced (strace) to hold its system calls against the unit's
SystemCallFilter, its sockets against RestrictAddressFamilies and its writes
against ProtectSystem=full and ProtectHome=read-only.

The work is what the capabilities are there for: a VIP (NET_ADMIN) on a
no_accept master (its nftables table: NET_ADMIN over AF_NETLINK) that sends
adverts (NET_RAW), a notify script that runs as script_user (SETUID, SETGID),
and a track script as script_user killed at its timeout (KILL: it is another
user's process group). Without any one of them this test fails.
"""

import configparser
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from netns_conf import FAST, VIP, conf

from helpers.netns import wait_for

pytestmark = pytest.mark.netns

UNIT = Path(__file__).resolve().parents[2] / "conf" / "hivrrp.service"
# ProtectSystem=full (read-only /usr, /boot, /efi, /etc), ProtectHome=read-only,
# ProtectKernelTunables=yes (/proc/sys, /sys).
READ_ONLY = ("/usr/", "/boot/", "/efi/", "/etc/", "/home/", "/root/", "/proc/sys/", "/sys/")
CHANGES = {"mkdir", "mkdirat", "unlink", "unlinkat", "rmdir", "rename", "renameat", "renameat2",
           "mknod", "mknodat", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat",
           "chown", "fchownat", "lchown", "truncate", "utimensat", "creat"}


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(UNIT)
    return parser["Service"]


def syscall_set(names: str) -> set[str]:
    """A SystemCallFilter= value (names and @groups) as system call names,
    groups expanded by systemd-analyze itself."""
    out = set()
    for name in names.split():
        if not name.startswith("@"):
            out.add(name)
            continue
        listing = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                                 capture_output=True, text=True, timeout=60).stdout
        for line in listing.splitlines()[1:]:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                out |= syscall_set(entry)
    return out


def written_paths(lines: list[str]) -> set[str]:
    """Absolute paths the traced processes opened for writing or changed."""
    found = set()
    for line in lines:
        call = re.match(r"\d+\s+(\w+)\((.*)", line)
        if call is None:
            continue
        name, args = call.groups()
        if name in CHANGES or (name in ("open", "openat")
                               and re.search(r"O_(?:WRONLY|RDWR|CREAT)", args)):
            found |= set(re.findall(r'"(/[^"]*)"', args))
    return found


def test_the_daemon_works_inside_the_units_sandbox(lan):
    for tool in ("setpriv", "strace", "systemd-analyze"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: tests/run.sh installs it")
    unit = service()
    bounding = ",".join(["-all"] + ["+" + cap.lower().removeprefix("cap_")
                                    for cap in unit["CapabilityBoundingSet"].split()])
    nobody = pwd.getpwnam("nobody").pw_uid
    # Scripts run as nobody, who must reach them and write their reports:
    # not under this test's 0700 tmp_path.
    with tempfile.TemporaryDirectory(prefix="hivrrp-sandbox-") as scratch:
        work = Path(scratch)
        work.chmod(0o711)
        out = work / "out"
        out.mkdir()
        out.chmod(0o777)
        notify = work / "notify.sh"
        notify.write_text(f"#!/bin/sh\nid -u > {out}/notify.tmp && mv {out}/notify.tmp "
                          f"{out}/notify-uid\n")
        track = work / "track.sh"
        track.write_text(f"#!/bin/sh\necho $$ > {out}/track.tmp && mv {out}/track.tmp "
                         f"{out}/track-pid\nexec sleep 30\n")
        for script in (notify, track):
            script.chmod(0o755)
        ns = lan.node("r1", ipv4="192.0.2.1/24")
        config = lan.write("r1.conf", (
            "global_defs {\n    script_user nobody\n}\n"
            f'vrrp_script slow {{\n    script "{track}"\n    interval 30\n    timeout 1\n'
            "    weight -10\n}\n"
            + conf(200, extra=f'    state MASTER\n    notify_master "{notify}"\n'
                              "    track_script {\n        slow\n    }\n    no_accept\n")))
        trace = work / "trace"
        pid_file = work / "hivrrp.pid"
        with open(lan.workdir / "r1-hivrrp.log", "ab") as log:    # lan.log() reads it
            traced = lan.popen(ns, "setpriv", f"--bounding-set={bounding}",
                               "strace", "-f", "-qq", "-o", str(trace),
                               sys.executable, "-m", "hivrrp", "run", "-f", str(config),
                               "--pid-file", str(pid_file),
                               "--control", str(lan.workdir / "r1.sock"),
                               stdout=log, stderr=subprocess.STDOUT)
        try:
            assert lan.wait_has(VIP, "r1", 20) is not None, lan.log("r1")
            # no_accept's drop set holds the VIP: nfnetlink works in the sandbox.
            assert VIP in lan.run(ns, "nft", "list", "set", "ip", "hivrrp", "vips").stdout, \
                lan.log("r1")
            uid = out / "notify-uid"
            assert wait_for(uid.exists, 10), f"notify_master never ran\n{lan.log('r1')}"
            assert uid.read_text().strip() == str(nobody)
            started = out / "track-pid"
            assert wait_for(started.exists, 10), lan.log("r1")
            script_pid = int(started.read_text())
            assert wait_for(lambda: not os.path.exists(f"/proc/{script_pid}"), 8), \
                f"the timed-out track script was not killed\n{lan.log('r1')}"
        finally:
            # The daemon, not strace: strace leaves when its tracee does.
            if pid_file.exists():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            lan.stop(traced, timeout=20)
        assert "Operation not permitted" not in lan.log("r1"), lan.log("r1")
        assert "NOT enforced" not in lan.log("r1")
        assert "nftables: table ip hivrrp removed" in lan.log("r1"), lan.log("r1")

        lines = trace.read_text().splitlines()
    allowed = syscall_set(unit["SystemCallFilter"])
    called = {m.group(1) for m in (re.match(r"\d+\s+(?:<\.\.\. )?(\w+)\(", line)
                                   for line in lines) if m}
    assert called and called <= allowed, f"outside SystemCallFilter: {sorted(called - allowed)}"
    families = {m.group(1) for m in (re.search(r"\bsocket(?:pair)?\((AF_\w+)", line)
                                     for line in lines) if m}
    assert {"AF_INET", "AF_NETLINK", "AF_UNIX", "AF_PACKET"} <= families
    assert families <= set(unit["RestrictAddressFamilies"].split()), families
    written = written_paths(lines)
    assert str(pid_file) in written                  # the parser sees writes
    assert not [p for p in written if p.startswith(READ_ONLY)
                and not p.startswith(writable())], sorted(written)


def writable() -> tuple[str, ...]:
    """The unit's ReadWritePaths=: holes in the read-only ones (a directory
    with its "/", to be a prefix of what is under it only)."""
    paths = (path.removeprefix("-") for path in service().get("ReadWritePaths", "").split())
    return tuple(path if os.path.isfile(path) else path.rstrip("/") + "/" for path in paths)


@pytest.mark.parametrize("carved", [True, False], ids=["ReadWritePaths", "without"])
def test_vmac_sysctls_under_the_units_read_only_proc_sys(lan, carved):
    """ProtectKernelTunables=yes makes /proc/sys read-only; the unit's
    ReadWritePaths=/proc/sys/net gives back the network's part, deeper paths
    applied after their prefixes as systemd orders them. Rebuilt here with a
    mount namespace of the daemon's own: use_vmac's /proc writes (IPv6 off on
    an IPv4 VMAC, all/default rp_filter) work with the hole, and without it
    the daemon says what it could not set, and why, and runs."""
    assert writable() == ("/proc/sys/net/ipv4/conf/", "/proc/sys/net/ipv6/conf/",
                          "/proc/sys/net/ipv4/igmp_link_local_mcast_reports")
    ns = lan.node("r1", ipv4="192.0.2.1/24")
    lan.run(ns, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
    config = lan.write("r1.conf", conf(200, extra="    use_vmac\n", **FAST))
    mounts = "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys"
    if carved:
        for path in writable():
            mounts += f" && mount --bind {path} {path} && mount -o remount,bind,rw {path}"
    bounding = ",".join(["-all"] + ["+" + cap.lower().removeprefix("cap_")
                                    for cap in service()["CapabilityBoundingSet"].split()])
    with open(lan.workdir / "r1-hivrrp.log", "ab") as log:
        daemon = lan.popen(ns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f'{mounts} && exec "$@"', "sh",
                           "setpriv", f"--bounding-set={bounding}",
                           sys.executable, "-m", "hivrrp", "run", "-f", str(config),
                           "--pid-file", str(lan.workdir / "r1.pid"),
                           "--control", str(lan.workdir / "r1.sock"),
                           stdout=log, stderr=subprocess.STDOUT)
    try:
        def vip_on_vmac() -> bool:
            return VIP in lan.run(ns, "ip", "-br", "addr", "show", "dev", "vrrp.51",
                                  check=False).stdout
        assert wait_for(vip_on_vmac, 20), lan.log("r1")

        def sysctl(path: str) -> str:
            return lan.run(ns, "cat", f"/proc/sys/net/{path}").stdout.strip()
        if carved:
            assert sysctl("ipv6/conf/vrrp.51/disable_ipv6") == "1"
            assert sysctl("ipv4/conf/all/rp_filter") == "0"
            assert sysctl("ipv4/igmp_link_local_mcast_reports") == "0"
            assert "cannot set" not in lan.log("r1"), lan.log("r1")
        else:
            assert sysctl("ipv6/conf/vrrp.51/disable_ipv6") == "0"
            assert sysctl("ipv4/conf/all/rp_filter") == "1"
            assert ("cannot set net.ipv6.conf.vrrp.51.disable_ipv6 = 1: Read-only file system "
                    "(under systemd: it must be writable, see ReadWritePaths= in "
                    "hivrrp.service)") in lan.log("r1")
            # Netlink sets the rest all the same.
            assert sysctl("ipv4/conf/vrrp.51/arp_ignore") == "1"
    finally:
        # The daemon (pid file), not unshare's shell: it exec()ed into it anyway.
        lan.stop(daemon, timeout=20)
    assert daemon.returncode == 0, lan.log("r1")
    assert lan.run(ns, "cat", "/proc/sys/net/ipv4/conf/all/rp_filter").stdout.strip() == "1"
    assert "Traceback" not in lan.log("r1")


def test_under_the_units_capabilities_the_host_daemon_keeps_the_hosts_paths():
    # systemd (pid 1, every capability) starts the daemon in its own network
    # namespace with the unit's bounding set, which takes away the ptrace
    # access /proc/1/ns/net needs. The daemon used to think itself in an
    # unnamed namespace and put its socket where `hivrrp status` never looks.
    # Modelled without touching the host: a new, unnamed network namespace
    # whose pid 1 is a shell with every capability, as systemd is.
    bounding = ",".join(["-all"] + ["+" + cap.lower().removeprefix("cap_")
                                    for cap in service()["CapabilityBoundingSet"].split()])
    probe = ("from hivrrp.ops import runpaths; "
             "print(runpaths.namespace_name(), runpaths.control_socket())")
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "--net", "sh", "-c",
         f'setpriv --bounding-set={bounding} "$0" -c "$1"; status=$?; exit $status',
         sys.executable, probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "/run/hivrrp/control.sock"]
