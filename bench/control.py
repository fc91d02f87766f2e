"""How long `hivrrp status` and `hivrrp dump` hold the event loop at N
instances (default 10,000).

    python bench/control.py [--instances 10000] [--rounds 5]

Builds a plan of N instances (bench/metrics.py's: 40 interfaces x 250
VRIDs, no network), serves the real control socket on a temporary path, and
per round asks for status and for dump from a client thread while a probe
on the loop records its longest stall. Two ways, in the same run: the
daemon's (a snapshot on the loop, rows and JSON on a worker thread) and
the rows built inline on the loop (how it was before). Prints medians and
their ratio; the target is a stall under 20 ms at 10,000 instances.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import statistics
import tempfile
import time
from types import SimpleNamespace

from hivrrp.ops import control
from hivrrp.tracking.policy import Tracking
from metrics import instances_and_rounds, plan_of, stall_while


def fake_daemon(plan, loop):
    return SimpleNamespace(
        plan=plan, loop=loop, config_path="bench.conf", started_at=time.time(),
        namespace=None, trackers=SimpleNamespace(policy=Tracking({})),
        sync=SimpleNamespace(states={}),
        lifecycle=SimpleNamespace(reloads={"ok": 0}, stopping=False))


def raw_request(path: str, command: str) -> list[bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(path)
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        chunks = []
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    return chunks


def inline(daemon, line: bytes) -> bytes:
    """The old way: the whole answer built and encoded on the loop."""
    return control.encode(control.answer(daemon, line))


async def measure(plan, rounds: int) -> dict:
    loop = asyncio.get_running_loop()
    daemon = fake_daemon(plan, loop)
    path = os.path.join(tempfile.mkdtemp(prefix="hivrrp-bench-control-"), "control.sock")
    server = control.ControlServer(daemon, path)
    await server.start()
    results: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    real_respond = control.respond
    try:
        for _ in range(rounds):
            for way in ("snapshot", "inline"):
                async def served_inline(d, line):
                    return inline(d, line)
                control.respond = real_respond if way == "snapshot" else served_inline
                for command in ("status", "dump"):
                    reply = {}

                    def ask():
                        # Raw bytes only: parsing 7 MB of JSON here, in the
                        # daemon's process, would hold the GIL (the CLI is a
                        # process of its own).
                        reply["chunks"] = raw_request(path, command)

                    worst = await stall_while(loop, ask)
                    answer = json.loads(b"".join(reply["chunks"]))
                    assert answer["ok"], answer
                    rows = answer["result"] if command == "status" else answer["result"]["instances"]
                    assert len(rows) == len(plan.names)
                    sizes[command] = len(json.dumps(answer))
                    results.setdefault(f"{way} {command}", []).append(worst)
    finally:
        control.respond = real_respond
        await server.close()
    return {"medians_ms": {k: round(statistics.median(v) * 1000, 1) for k, v in results.items()},
            "max_ms": {k: round(max(v) * 1000, 1) for k, v in results.items()},
            "answer_bytes": sizes}


def main() -> None:
    args = instances_and_rounds(__doc__.splitlines()[0])
    plan = plan_of(args.instances)
    gc.collect()
    gc.freeze()               # as the daemon does once its plan is built
    import uvloop  # the daemon's loop
    out = uvloop.run(measure(plan, args.rounds))
    med = out["medians_ms"]
    print(f"{len(plan.names)} instances, {args.rounds} rounds: longest loop stall while "
          "serving one request (median of rounds)")
    for command in ("status", "dump"):
        snap, old = med[f"snapshot {command}"], med[f"inline {command}"]
        ratio = f"{old / snap:.1f}x less" if snap > 0 else "no measurable stall"
        print(f"  {command:6}  snapshot + worker: {snap:7.1f} ms   inline on the loop: "
              f"{old:7.1f} ms   ({ratio}; {out['answer_bytes'][command]:,} bytes)")
    print(json.dumps({"instances": len(plan.names), "rounds": args.rounds, **out}))


if __name__ == "__main__":
    main()
