"""load() in a child process, for the daemon.

Parsing 10,000 instances allocates several times what the configuration
keeps, and the objects kept end up scattered among that garbage: CPython's
allocator can give back a 1 MiB arena only when nothing in it lives, so the
daemon kept about 13 MiB more RSS at 10,000 instances than its configuration
needs, for as long as it ran. A child parses and sends the result back
pickled; unpickling here allocates only what is kept, close together.

The child is this interpreter with this process's sys.path, isolated (-I:
no current directory, user site or PYTHON* variables on its path), in a
session of its own (a Ctrl-C or a signal to our process group is ours to
handle, not the parser's). It checks that the hivrrp it imports is the one
this process runs (the files of the classes it pickles, unchanged since we
imported them): if not, the load fails and says to restart. If the child
cannot run or fails otherwise, the file is loaded in this process instead
(same result, more RSS). A child killed by a signal or out of time is a
failed load, not a reason to parse again here.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading

from hivrrp.config import LoadResult, diagnostics, load, model
from hivrrp.config.diagnostics import Diagnostic, Where

log = logging.getLogger("hivrrp")

CHILD_TIMEOUT = 300.0          # seconds: a 10,000-instance file takes about 1.5 s
NOT_THE_SAME_HIVRRP = 3        # the child's exit status when its files differ from ours
ABANDONED = "reading the configuration was abandoned: hivrrp is stopping"


def fingerprint() -> list:
    """The files that define what crosses the pipe, as this process imported them."""
    out = []
    for module in (model, diagnostics, sys.modules["hivrrp.config"]):
        try:
            st = os.stat(module.__file__)
            out.append([module.__file__, st.st_mtime_ns, st.st_size])
        except OSError:
            out.append([module.__file__, None, None])
    return out


# Taken when the daemon imports this module, at start-up: an upgrade on disk
# later on makes a child's classes differ from ours.
IMPORTED = fingerprint()

CHILD = ("import sys; sys.path[:] = {path!r}; "
         "from hivrrp.config.isolated import main; main()")


def failed(path: str, message: str) -> LoadResult:
    return LoadResult(model.Config(), [Diagnostic("error", Where(path, 0), message)], [])


def load_here(path: str, config_id: str | None) -> LoadResult:
    try:
        return load(path, config_id=config_id)
    except Exception as exc:  # noqa: BLE001 - e.g. a reader upgraded on disk under us
        log.exception("loading the configuration failed")
        return failed(path, f"cannot load the configuration: {exc}")


class Abort:
    """Lets the event loop end a load that a worker thread waits for: a parse
    can hang on an `include` of a FIFO or a dead NFS mount, and a SIGTERM must
    not wait for CHILD_TIMEOUT to release the masters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None
        self.aborted = False

    def attach(self, child: subprocess.Popen) -> None:
        with self._lock:
            self._child = child
            if self.aborted:
                child.kill()

    def abort(self) -> None:
        """Kill the child, now or as soon as it starts; callable from any thread."""
        with self._lock:
            self.aborted = True
            if self._child is not None and self._child.returncode is None:
                with contextlib.suppress(OSError):
                    self._child.kill()


def load_isolated(path: str, *, config_id: str | None = None,
                  abort: Abort | None = None) -> LoadResult:
    if not sys.executable or getattr(sys, "frozen", False):
        return load_here(path, config_id)      # no interpreter of ours to run a child with
    request = json.dumps({"path": path, "config_id": config_id, "fingerprint": IMPORTED})
    # Our own path, "" (the working directory) spelled out: the child finds what we found.
    code = CHILD.format(path=[p or os.getcwd() for p in sys.path])
    try:
        process = subprocess.Popen([sys.executable, "-I", "-c", code, request],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
    except (OSError, ValueError, TypeError) as exc:
        if abort is not None and abort.aborted:
            return failed(path, ABANDONED)
        log.warning("configuration loader process failed to start (%s): loading here", exc)
        return load_here(path, config_id)
    if abort is not None:
        abort.attach(process)
    with process:
        try:
            stdout, stderr = process.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return failed(path, f"reading the configuration took over {CHILD_TIMEOUT:.0f} s")
    if abort is not None and abort.aborted:
        return failed(path, ABANDONED)
    child = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if child.returncode < 0:
        try:
            name = signal.Signals(-child.returncode).name
        except ValueError:                       # real-time signals have no name
            name = f"signal {-child.returncode}"
        return failed(path, f"the configuration loader process was killed by {name}")
    if child.returncode == NOT_THE_SAME_HIVRRP:
        # Loading here would run the reader from disk (the new one) into our
        # (old) classes: the very mix the check is there to prevent.
        return failed(path, "the hivrrp files on disk are not the running daemon's (upgraded?): "
                            "restart hivrrp to load this configuration")
    if child.returncode != 0 or not child.stdout:
        error = child.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        log.warning("configuration loader process failed (exit %d: %s): loading here",
                    child.returncode, error[0])
        return load_here(path, config_id)
    # No cycles in what comes back: the collector need not walk it while it grows.
    collecting = gc.isenabled()
    gc.disable()
    try:
        result = SharingUnpickler(io.BytesIO(child.stdout)).load()
        if not isinstance(result, LoadResult):
            raise TypeError(f"got {type(result).__name__}")
    except Exception as exc:  # noqa: BLE001 - whatever came down the pipe, parse here instead
        log.warning("configuration loader process sent what cannot be read (%s): loading here",
                    exc)
        return load_here(path, config_id)
    finally:
        if collecting:
            gc.enable()
    return result


class SharingUnpickler(pickle.Unpickler):
    """Compacts each instance as soon as it is unpickled.

    The child pickles without a memo, so every value shared in its
    configuration ("BACKUP", a script, a VIP's options) comes back as an
    object per instance. Shared again at once, each duplicate is freed while
    the next instance is read and its memory reused; shared at the end, the
    duplicates of 10,000 instances left holes all over the heap (measured
    after malloc_trim: 1,176 bytes of RSS an instance more for a macro-made
    config with auth, a track_script and two VIPs; 155 for the lab's)."""

    def __init__(self, file) -> None:
        super().__init__(file)
        self.share = model.Sharing()

    def find_class(self, module: str, name: str):
        found = super().find_class(module, name)
        if found is model.restore_instance:
            return lambda *args: model.compact_instance(found(*args), self.share)
        return found


def main() -> None:
    request = json.loads(sys.argv[1])
    if request["fingerprint"] != IMPORTED:
        print("hivrrp.config.isolated: the hivrrp files differ from the running daemon's",
              file=sys.stderr)
        sys.exit(NOT_THE_SAME_HIVRRP)
    result = load(request["path"], config_id=request["config_id"])
    pickler = pickle.Pickler(sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    # No memo: the reader in the parent then keeps no temporary per object
    # alive until the end (that would scatter the result again), and the
    # result has no cycles. What the memo would have kept shared, the parent
    # shares again as each instance arrives (SharingUnpickler).
    pickler.fast = True
    pickler.dump(result)
