"""hivrrp under tracemalloc, summarised by owner when a trigger file appears.

    python bench/traced_daemon.py OUT.json TRIGGER hivrrp-arguments...

With HIVRRP_UNTRACED set, no tracing: OUT.json has CPython's small-object
allocator figures instead (arenas, live and free bytes), which tracemalloc's
hooks hide.

bench/footprint.py runs the daemon through this in a namespace. Once TRIGGER
exists, a thread takes one snapshot and writes OUT.json: traced bytes and
blocks per owner, where the owner of an allocation is the innermost hivrrp
module on its stack (what our code keeps), "imports" for anything allocated
while a module was being imported (code, functions, module dicts), and else
the library or stdlib file that allocated it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import tracemalloc

TRACE_DEPTH = 24
WAIT_LIMIT = 900.0     # seconds: the thread gives up if nobody asks
BY_LINE = bool(os.environ.get("HIVRRP_TRACE_BY_LINE"))   # owner file:line, to dig further


def owner(traceback: tracemalloc.Traceback) -> str:
    frames = [frame.filename for frame in traceback]   # oldest first
    if any(name.startswith("<frozen importlib") for name in frames):
        return "imports"
    for frame in reversed(list(traceback)):
        if "/hivrrp/" in frame.filename:
            where = "hivrrp/" + frame.filename.rsplit("/hivrrp/", 1)[1]
            return f"{where}:{frame.lineno}" if BY_LINE else where
    innermost = frames[-1] if frames else "?"
    if "site-packages/" in innermost:
        return innermost.split("site-packages/", 1)[1].split("/", 1)[0]
    return innermost.rsplit("/", 1)[-1]


def imported_package(traceback: tracemalloc.Traceback) -> str:
    """The top-level package whose import allocated this: the innermost frame
    that is not importlib's is the module body being run."""
    for frame in reversed(list(traceback)):
        name = frame.filename
        if name.startswith("<frozen"):
            continue
        if "site-packages/" in name:
            return name.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
        if "/hivrrp/" in name:
            return "hivrrp"
        parts = name.rsplit("/python3", 1)[-1].split("/")
        return "stdlib " + (parts[1] if len(parts) > 1 else name).removesuffix(".py")
    return "?"


def ranked(table: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    return {name: {"bytes": size, "blocks": count}
            for name, (size, count) in sorted(table.items(), key=lambda kv: -kv[1][0])}


def pymalloc_stats() -> dict:
    """CPython's small-object allocator: arenas held, bytes in live blocks,
    bytes free inside partly used pools. sys._debugmallocstats() writes to
    fd 2 only, so fd 2 points at a file for the moment it takes."""
    import tempfile

    sys.stderr.flush()
    with tempfile.TemporaryFile("w+") as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()

    def figure(key: str) -> int:
        return int(text.split(key, 1)[1].split("=", 1)[1].split()[0].replace(",", ""))

    if "# arenas allocated current" not in text:
        return None          # tracemalloc's hooks hide pymalloc's figures
    return {"arenas": figure("# arenas allocated current"),
            "allocated_bytes": figure("# bytes in allocated blocks"),
            "free_in_pools_bytes": figure("# bytes in available blocks")}


def malloc_stats() -> dict | None:
    """glibc's figures (mallinfo2, all arenas): bytes in use and free."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return None
    info = libc.mallinfo2()
    return {"heap_bytes": info.arena, "mmapped_bytes": info.hblkhd,
            "in_use_bytes": info.uordblks + info.hblkhd, "free_bytes": info.fordblks}


def summary() -> dict:
    if not tracemalloc.is_tracing():
        return {"pymalloc": pymalloc_stats(), "malloc": malloc_stats()}
    snapshot = tracemalloc.take_snapshot()
    by_owner: dict[str, list[int]] = {}
    imports: dict[str, list[int]] = {}
    for stat in snapshot.statistics("traceback"):
        name = owner(stat.traceback)
        for table, key in ((by_owner, name), (imports, imported_package(stat.traceback))):
            if table is imports and name != "imports":
                continue
            entry = table.setdefault(key, [0, 0])
            entry[0] += stat.size
            entry[1] += stat.count
    return {"traced_bytes": sum(size for size, _ in by_owner.values()),
            "owners": ranked(by_owner), "imports": ranked(imports)}


def watch(out: str, trigger: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while time.monotonic() < deadline:
        if os.path.exists(trigger):
            data = summary()
            with open(out + ".tmp", "w") as f:
                json.dump(data, f)
            os.replace(out + ".tmp", out)
            return
        time.sleep(0.2)


def main() -> None:
    out, trigger, *args = sys.argv[1:]
    if not os.environ.get("HIVRRP_UNTRACED"):     # set: pymalloc's figures only
        tracemalloc.start(TRACE_DEPTH)
    threading.Thread(target=watch, args=(out, trigger), daemon=True).start()
    from hivrrp.cli import main as hivrrp_main
    sys.argv = ["hivrrp", *args]
    hivrrp_main()


if __name__ == "__main__":
    main()
