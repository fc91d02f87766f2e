"""load() in a child process, for the daemon.

Parsing 10,000 instances allocates several times what the configuration
keeps, and the objects kept end up scattered among that garbage: CPython's
allocator can give back a 1 MiB arena only when nothing in it lives, so the
daemon kept about 13 MiB more RSS at 10,000 instances than its configuration
needs, for as long as it ran. A child parses and sends the result back
pickled; unpickling here allocates only what is kept, close together.

The child is this same interpreter and package; if it cannot run or fails,
the file is loaded in this process instead (same result, more RSS).
"""

from __future__ import annotations

import gc
import json
import logging
import pickle
import subprocess
import sys

from hivrrp.config import LoadResult, load

log = logging.getLogger("hivrrp")

CHILD_TIMEOUT = 300.0          # seconds: a 10,000-instance file takes about 1.5 s


def load_isolated(path: str, *, config_id: str | None = None) -> LoadResult:
    request = json.dumps({"path": path, "config_id": config_id})
    try:
        child = subprocess.run([sys.executable, "-m", "hivrrp.config.isolated", request],
                               capture_output=True, timeout=CHILD_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("configuration loader process failed (%s): loading here", exc)
        return load(path, config_id=config_id)
    if child.returncode != 0 or not child.stdout:
        error = child.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        log.warning("configuration loader process failed (exit %d: %s): loading here",
                    child.returncode, error[0])
        return load(path, config_id=config_id)
    # No cycles in what comes back: the collector need not walk it while it grows.
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = pickle.loads(child.stdout)
        # The unshared trip gave each VIP a copy of its instance's position back.
        for inst in result.config.instances:
            for vip in (*inst.vips, *inst.excluded_vips):
                vip.where = inst.where
    finally:
        if collecting:
            gc.enable()
    return result


def main() -> None:
    request = json.loads(sys.argv[1])
    result = load(request["path"], config_id=request["config_id"])
    pickler = pickle.Pickler(sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    # No memo: the reader in the parent then keeps no temporary per object
    # alive until the end (that would scatter the result again). The result
    # has no shared parts worth keeping shared, and no cycles.
    pickler.fast = True
    pickler.dump(result)


if __name__ == "__main__":
    main()
