"""Record real keepalived adverts in a namespace pair.

Used by tests/netns (live, in CI) and to regenerate the committed captures:
    python tests/helpers/keepalived_capture.py tests/data
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.netns import Lab, wait_for  # noqa: E402

SRC_V4, PEER_V4 = "10.0.0.1", "10.0.0.2"


@dataclass(frozen=True)
class Scenario:
    """One keepalived instance and what its adverts must decode to."""

    name: str
    vrid: int
    version: int
    priority: int
    interval_cs: int
    addresses: tuple[str, ...]
    dst: str
    checksum: str
    capture_in: str  # "sender" (-i any, Linux cooked) or "peer" (Ethernet)
    bpf: str
    auth_type: int | None = None
    auth_data: bytes | None = None
    config: str = ""


SCENARIOS = (
    Scenario(
        name="keepalived-v2-pass", vrid=51, version=2, priority=255, interval_cs=100,
        addresses=("192.0.2.26",), dst="224.0.0.18", checksum="ok", capture_in="peer",
        bpf="ip proto 112 and ip[21] = 51", auth_type=1, auth_data=b"1234\0\0\0\0",
        config="""
    state MASTER
    virtual_router_id 51
    priority 255
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1234
    }
    virtual_ipaddress {
        192.0.2.26/24
    }""",
    ),
    Scenario(
        name="keepalived-v3-ipv4-any", vrid=53, version=3, priority=200, interval_cs=50,
        addresses=("198.51.100.53", "198.51.100.54"), dst="224.0.0.18",
        checksum="ok-pseudo", capture_in="sender", bpf="ip proto 112 and ip[21] = 53",
        config="""
    version 3
    state MASTER
    virtual_router_id 53
    priority 200
    advert_int 0.5
    virtual_ipaddress {
        198.51.100.53/24
        198.51.100.54/24
    }""",
    ),
    Scenario(
        name="keepalived-v3-ipv6", vrid=52, version=3, priority=150, interval_cs=30,
        addresses=("fe80::52", "fd00::52"), dst="ff02::12", checksum="ok",
        capture_in="peer", bpf="ip6 proto 112 and ip6[41] = 52",
        config="""
    version 3
    state MASTER
    virtual_router_id 52
    priority 150
    advert_int 0.3
    virtual_ipaddress {
        fe80::52/64
        fd00::52/64
    }""",
    ),
    Scenario(
        name="keepalived-v3-unicast", vrid=54, version=3, priority=100, interval_cs=100,
        addresses=("203.0.113.54",), dst=PEER_V4, checksum="ok-pseudo", capture_in="peer",
        bpf="ip proto 112 and ip[21] = 54",
        config=f"""
    version 3
    state BACKUP
    virtual_router_id 54
    priority 100
    advert_int 1
    unicast_src_ip {SRC_V4}
    unicast_peer {{
        {PEER_V4}
    }}
    virtual_ipaddress {{
        203.0.113.54/24
    }}""",
    ),
)

PACKETS_PER_CAPTURE = 3


def keepalived_conf(interface: str) -> str:
    instances = "".join(
        f"\nvrrp_instance {s.name.upper().replace('-', '_')} {{\n    interface {interface}"
        f"{s.config}\n}}\n"
        for s in SCENARIOS
    )
    return "global_defs {\n    router_id hivrrp_capture\n}\n" + instances


def peer_conf(interface: str) -> str:
    """keepalived_conf() as the sender's peer has it: unicast source and peer
    swapped, so that it takes the sender's adverts (`hivrrp decode --config`)."""
    return (keepalived_conf(interface).replace(f"unicast_src_ip {SRC_V4}", "unicast_src_ip X")
            .replace(f"        {PEER_V4}", f"        {SRC_V4}")
            .replace("unicast_src_ip X", f"unicast_src_ip {PEER_V4}"))


# Captures of the whole run in the link types and time precisions tcpdump writes, for
# the capture reader (tests/netns/test_decode_live.py): name -> (namespace, options).
FORMATS = {
    "ethernet-nano": ("peer", ["--time-stamp-precision=nano"]),
    "any-sll2": ("sender", []),
    "any-sll": ("sender", ["-y", "LINUX_SLL"]),
}
FORMAT_ADVERTS = 40          # per format capture: every scenario several times
FORMAT_FILTER = "ip proto 112 or ip6 proto 112"


@dataclass(frozen=True)
class Recording:
    """One keepalived run's captures: {name: pcap path} per scenario and per format,
    and the veth pair's names (the sender's and its peer's)."""

    scenarios: dict[str, Path]
    formats: dict[str, Path]
    if_sender: str
    if_peer: str


def record(outdir: Path, timeout: float = 30.0) -> dict[str, Path]:
    """Run keepalived in a fresh namespace pair; return {scenario name: pcap path}."""
    return record_all(outdir, {}, timeout).scenarios


def record_all(outdir: Path, formats: dict[str, tuple[str, list[str]]],
               timeout: float = 30.0) -> Recording:
    """record(), and beside each scenario's capture the `formats` captures of
    FORMAT_ADVERTS adverts each, all of one keepalived run: the live tests share it."""
    for tool in ("keepalived", "tcpdump"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed")
    outdir.mkdir(parents=True, exist_ok=True)
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="hivrrp-ka-") as tmp:
        sender, peer = lab.netns("ka"), lab.netns("peer")
        if_sender, if_peer = lab.veth(sender, peer)
        lab.run(sender, "ip", "addr", "add", f"{SRC_V4}/24", "dev", if_sender)
        lab.run(peer, "ip", "addr", "add", f"{PEER_V4}/24", "dev", if_peer)

        # (name, tcpdump, its stderr) of every capture; the scenarios' first.
        dumps, paths, format_paths = [], {}, {}
        for scenario in SCENARIOS:
            path = outdir / f"{scenario.name}.pcap"
            paths[scenario.name] = path
            ns, ifname = (sender, "any") if scenario.capture_in == "sender" else (peer, if_peer)
            log = open(Path(tmp) / f"{scenario.name}.tcpdump", "w+")
            proc = lab.popen(ns, "tcpdump", "-i", ifname, "-U", "-n", "-c",
                             str(PACKETS_PER_CAPTURE), "-w", str(path), scenario.bpf,
                             stdout=subprocess.DEVNULL, stderr=log)
            dumps.append((scenario.name, proc, log))
        for name, (where, options) in formats.items():
            path = outdir / f"{name}.pcap"
            format_paths[name] = path
            ns, ifname = (sender, "any") if where == "sender" else (peer, if_peer)
            log = open(Path(tmp) / f"{name}.tcpdump", "w+")
            proc = lab.popen(ns, "tcpdump", "-i", ifname, *options, "-U", "-n", "-c",
                             str(FORMAT_ADVERTS), "-w", str(path), FORMAT_FILTER,
                             stdout=subprocess.DEVNULL, stderr=log)
            dumps.append((name, proc, log))
        for name, _proc, log in dumps:
            started = Path(log.name)
            if not wait_for(lambda started=started: "listening on" in started.read_text(), 10):
                raise RuntimeError(f"tcpdump for {name} did not start: "
                                   f"{Path(log.name).read_text()}")

        conf = Path(tmp) / "keepalived.conf"
        conf.write_text(keepalived_conf(if_sender))
        ka_log = open(Path(tmp) / "keepalived.log", "w+")
        keepalived = lab.popen(
            sender, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp",
            "--use-file", str(conf), "--pid", f"{tmp}/ka.pid", "--vrrp_pid", f"{tmp}/vrrp.pid",
            "--checkers_pid", f"{tmp}/chk.pid", stdout=ka_log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            for name, proc, _log in dumps:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise RuntimeError(
                        f"tcpdump {name}: not all its adverts in {timeout} s; "
                        f"keepalived said:\n{Path(ka_log.name).read_text()[-3000:]}") from None
        finally:
            lab.stop(keepalived)
        return Recording(paths, format_paths, if_sender, if_peer)


def to_pcapng(path: Path) -> Path | None:
    """A pcapng copy (via Wireshark's editcap), so both file formats get tested."""
    if shutil.which("editcap") is None:
        return None
    out = path.with_suffix(".pcapng")
    subprocess.run(["editcap", "-F", "pcapng", str(path), str(out)], check=True)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data")
    recorded = record(target)
    ipv6 = recorded["keepalived-v3-ipv6"]
    converted = to_pcapng(ipv6)
    if converted:
        os.unlink(ipv6)
        recorded["keepalived-v3-ipv6"] = converted
    for name, p in recorded.items():
        print(name, p, p.stat().st_size, "bytes")
