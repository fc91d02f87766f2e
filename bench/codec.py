"""Codec speed: batch decode+validate and prebuilt-advert refresh, in ns per packet.

    python bench/codec.py [--packets 4096] [--rounds 9]

Compares the Cython codec with the pure-Python baseline (bench/pybaseline.py)
and with scapy, all measured in this run; figures are medians over rounds.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pybaseline  # noqa: E402
from hivrrp import _wire  # noqa: E402


def sample_packets(n: int) -> list[tuple[int, bytes]]:
    """A realistic mix: v2 with auth, v3/IPv4, v3/IPv6, one to four VIPs each."""
    packets = []
    for i in range(n):
        vrid, vips = i % 255 + 1, i % 4 + 1
        kind = i % 3
        if kind == 0:
            msg = _wire.encode(version=2, vrid=vrid, priority=100, interval=1,
                               addresses=[f"10.{i >> 8 & 255}.{i & 255}.{k}" for k in range(vips)],
                               auth_type=1, auth_data=b"1234")
            packets.append((4, _wire.ipv4_packet(msg, "192.0.2.1", "224.0.0.18")))
        elif kind == 1:
            msg = _wire.encode(version=3, vrid=vrid, priority=100, interval=100,
                               addresses=[f"10.{i >> 8 & 255}.{i & 255}.{k}" for k in range(vips)],
                               src="192.0.2.1", dst="224.0.0.18")
            packets.append((4, _wire.ipv4_packet(msg, "192.0.2.1", "224.0.0.18")))
        else:
            msg = _wire.encode(version=3, vrid=vrid, priority=100, interval=100, family=6,
                               addresses=[f"fd00::{i:x}:{k}" for k in range(vips)],
                               src="fe80::1", dst="ff02::12")
            packets.append((6, msg))
    return packets


def median_ns_per_item(fn, items: int, rounds: int, repeat: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(repeat):
            fn()
        samples.append((time.perf_counter_ns() - start) / (items * repeat))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    n, rounds = args.packets, args.rounds

    packets = sample_packets(n)
    batch = _wire.RxBatch(capacity=n, slot_size=256)
    for family, data in packets:
        if family == 4:
            batch.add_ipv4(data)
        else:
            batch.add_ipv6(data, "fe80::1", "ff02::12", 255)
    assert batch.decode() == n, batch.reason_counts()
    decode_ns = median_ns_per_item(batch.decode, n, rounds, repeat=200)

    table = _wire.AdvertTable(n)
    for i in range(n):
        table.add(version=2, vrid=i % 255 + 1, priority=100, interval=1,
                  addresses=[f"10.0.{i & 255}.1"], auth_type=1, auth_data=b"1234")
    flip = iter(range(10**9))
    refresh_ns = median_ns_per_item(lambda: table.refresh_all(100 + next(flip) % 2, 1), n,
                                    rounds, repeat=200)

    # The pure-Python baseline on the same IPv4 datagrams (it has no IPv6 path).
    v4 = [data for family, data in packets if family == 4]
    py_decode_ns = median_ns_per_item(lambda: [pybaseline.decode_ipv4(p) for p in v4], len(v4),
                                      rounds, repeat=3)
    assert all(pybaseline.decode_ipv4(p)[0] == "ok" for p in v4)
    messages = [bytearray(table.message(i)) for i in range(n)]
    py_refresh_ns = median_ns_per_item(
        lambda: [pybaseline.refresh(m, 101, 1) for m in messages], n, rounds, repeat=3)

    scapy_decode_ns = None
    try:
        from scapy.layers.inet import IP
        from scapy.layers.vrrp import VRRP, VRRPv3

        few = v4[:300]

        def scapy_decode():
            for p in few:
                ip = IP(p)
                layer = ip.getlayer(VRRPv3) or ip.getlayer(VRRP)
                _ = (layer.vrid, layer.priority, layer.chksum, layer.addrlist)

        scapy_decode_ns = median_ns_per_item(scapy_decode, len(few), min(rounds, 5), repeat=1)
    except ImportError:
        pass

    result = {
        "packets": n,
        "decode_ns": round(decode_ns, 1),
        "refresh_ns": round(refresh_ns, 1),
        "py_decode_ns": round(py_decode_ns, 1),
        "py_refresh_ns": round(py_refresh_ns, 1),
        "scapy_decode_ns": round(scapy_decode_ns, 1) if scapy_decode_ns else None,
        "decode_speedup_vs_py": round(py_decode_ns / decode_ns, 1),
        "refresh_speedup_vs_py": round(py_refresh_ns / refresh_ns, 1),
    }
    rows = [
        ("batch decode+validate", decode_ns, py_decode_ns, scapy_decode_ns),
        ("advert refresh+checksum", refresh_ns, py_refresh_ns, None),
    ]
    print(f"{'ns per packet (median of %d rounds)' % rounds:<34}{'cython':>10}{'pure py':>12}"
          f"{'scapy':>12}{'py/cython':>11}")
    for name, ours, py, sc in rows:
        scapy_col = f"{sc:12.0f}" if sc else f"{'-':>12}"
        print(f"{name:<34}{ours:10.1f}{py:12.0f}{scapy_col}{py / ours:10.0f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
