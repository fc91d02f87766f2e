"""The control socket: `hivrrp status`, `set-priority`, `reload`, `dump`.

A unix stream socket, mode 0600 and root only (the peer's credentials are
checked too: a socket file's mode is not the only gate). One JSON request per
line, one JSON answer per line: {"command": "status"} ->
{"ok": true, "result": ...} or {"ok": false, "error": "..."}. Bad requests
(garbage, lines over MAX_LINE, unknown commands, wrong types) get an error
answer; the daemon carries on. status and dump take a snapshot on the loop
(the engine's table copied in one memcpy) and build their rows and JSON on a
worker thread, by instance name (no index outlives the request). A reload
asked with {"wait": SECONDS} answers with its outcome: ok only when the new
configuration runs, else the file's errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hivrrp._snapshot import EngineSnapshot
from hivrrp.daemon.driver import now_us
from hivrrp.daemon.lifecycle import Outcome
from hivrrp.ops import runpaths

if TYPE_CHECKING:
    from hivrrp.daemon.plan import Plan
    from hivrrp.ops.view import DaemonView

log = logging.getLogger("hivrrp")

MAX_LINE = 65536
CLIENT_TIMEOUT = 10.0          # seconds a client may take to send its request
MAX_RELOAD_WAIT = 3600.0       # seconds a client may wait for a reload's outcome
SMALL = 64                     # items a list may have and still be encoded in one call
RUNTIME_PRIORITY = ("runtime only: the configured priority comes back at the next reload "
                    "or restart")


class RequestError(Exception):
    """The request cannot be served; its message goes back to the client."""


@dataclass(frozen=True)
class Snapshot:
    """What status and dump show, taken on the loop in O(1) Python work (the
    engine's table in one memcpy, a few small dict copies); the rows and
    their JSON are built from it on a worker thread. The plan is never
    changed once built, so the worker may read it."""
    plan: Plan | None
    engine: EngineSnapshot | None
    wall_offset: float
    uses: dict
    tracker_statuses: dict
    sync_states: dict
    global_counters: dict
    reloads: dict
    daemon: dict


def daemon_info(daemon: DaemonView) -> dict:
    """Which daemon answered: `ip netns exec X hivrrp status` names X's."""
    started = getattr(daemon, "started_at", None)
    firewall = getattr(getattr(daemon, "netlink", None), "firewall", None)
    return {"pid": os.getpid(), "version": hivrrp_version(),
            "config_file": getattr(daemon, "config_path", ""),
            "started": round(started, 3) if started else None,
            "uptime": round(time.time() - started, 1) if started else None,
            "namespace": getattr(daemon, "namespace", None), "netns_id": netns_id(),
            "firewall": firewall.status() if firewall is not None else None,
            "send_path": _send_path(daemon)}


def _send_path(daemon: DaemonView) -> dict | None:
    driver = getattr(daemon, "driver", None)
    return driver.path_status() if driver is not None else None


def netns_id() -> str | None:
    """Our network namespace itself ("dev:inode"), which /proc/self always
    tells, even where its name cannot be found (see ops.runpaths)."""
    found = runpaths.ns_id()
    return f"{found[0]}:{found[1]}" if found else None


def snapshot(daemon: DaemonView) -> Snapshot:
    plan = daemon.plan
    policy = daemon.trackers.policy
    return Snapshot(
        plan=plan, engine=EngineSnapshot(plan.engine) if plan is not None else None,
        wall_offset=time.time() - daemon.loop.time(),     # the engine's clock is the loop's
        uses=policy.uses, tracker_statuses=dict(policy.statuses),
        sync_states=dict(daemon.sync.states),
        global_counters=plan.engine.global_counters() if plan is not None else {},
        reloads=dict(daemon.lifecycle.reloads), daemon=daemon_info(daemon))


def rows_of(snap: Snapshot) -> list[dict]:
    """Every instance, in configuration order (no index outlives the snapshot)."""
    plan, engine = snap.plan, snap.engine
    if plan is None:
        return []
    rows = []
    for i, name in enumerate(plan.names):
        c = plan.instances[name].config
        changed = engine.last_transition(i)
        rows.append({
            "instance": name, "interface": c.interface, "vrid": c.vrid,
            "family": f"ipv{c.family}", "version": c.version, "state": engine.state(i),
            "base_priority": engine.base_priority(i),
            "priority": engine.effective_priority(i),
            "master": engine.master_address(i),
            "vips": [v.text for v in c.vips], "advert_int": c.advert_int,
            "last_transition": (round(changed / 1e6 + snap.wall_offset, 3) if changed else None),
        })
        if c.follow is not None:
            rows[-1]["leader"] = c.follow      # it takes that instance's state (`follow`)
        if any(v.options for v in c.vips):
            # dev, scope, label, brd ...: the SIGUSR1 file prints them, as keepalived.
            rows[-1]["vip_options"] = [dict(v.options) for v in c.vips]
    return rows


def dump_of(snap: Snapshot) -> dict:
    """status plus counters, FAULT reasons, trackers and sync groups: everything."""
    from hivrrp._engine import fault_reasons

    rows = rows_of(snap)
    if snap.plan is not None:
        engine = snap.engine
        for i, row in enumerate(rows):
            name = row["instance"]
            row["counters"] = engine.counters(i)
            row["fault_reasons"] = fault_reasons(engine.fault_flags(i))
            row["priority_delta"] = engine.priority_delta(i)
            row["trackers"] = [{"type": u.kind, "name": u.tracker, "weight": u.weight,
                                "reverse": u.reverse}
                               for u in snap.uses.get(name, ())]
            row["sync_group"] = snap.plan.instances[name].config.sync_group
    return {"daemon": snap.daemon, "instances": rows, "sync_groups": snap.sync_states,
            "trackers": {f"{kind} {name}": status
                         for (kind, name), status in snap.tracker_statuses.items()},
            "global_counters": snap.global_counters, "reloads": snap.reloads}


def instance_rows(daemon: DaemonView) -> list[dict]:
    return rows_of(snapshot(daemon))


def set_priority(daemon: DaemonView, instance, priority) -> dict:
    if not isinstance(instance, str):
        raise RequestError("instance must be a string")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 255:
        raise RequestError("priority must be an integer 1..255")
    plan = daemon.plan
    i = plan.index.get(instance) if plan else None
    if i is None:
        raise RequestError(f"no instance {instance!r}")
    before = plan.engine.base_priority(i)
    plan.engine.set_base_priority(i, priority, now_us(daemon.loop))
    daemon.runtime_priority[instance] = priority
    daemon.driver.after_engine_work()
    log.info("(%s) base priority set to %d at runtime (was %d)", instance, priority, before)
    return {"instance": instance, "base_priority": priority, "was": before,
            "priority": plan.engine.effective_priority(i), "note": RUNTIME_PRIORITY}


def status_reply(snap: Snapshot) -> dict:
    return {"ok": True, "result": rows_of(snap), "daemon": snap.daemon}


def dump_reply(snap: Snapshot) -> dict:
    return {"ok": True, "result": dump_of(snap)}


def outcome_reply(outcome: Outcome) -> dict:
    """`hivrrp reload`'s answer: ok only when the new configuration runs."""
    reply = {"result": outcome.result, "detail": outcome.detail, "errors": list(outcome.errors)}
    if outcome.applied:
        return {"ok": True, "result": reply}
    return {"ok": False, "error": f"reload {outcome.result}: {outcome.detail}", "result": reply}


async def waited_outcome(outcome: asyncio.Future, timeout: float) -> dict:
    try:
        return outcome_reply(await asyncio.wait_for(asyncio.shield(outcome), timeout))
    except TimeoutError:
        return {"ok": False, "error": f"no outcome within {timeout:g} s: the reload goes on, "
                                      "its result will be in the log"}


def parse(line: bytes) -> dict:
    try:
        request = json.loads(line)
    except RecursionError:     # "[[[[...": a bad request, not a bug to log
        raise RequestError("not JSON: nested too deeply") from None
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        raise RequestError('a request is a JSON object with a "command" string')
    return request


def reload_wait(request: dict) -> float:
    """Seconds the client waits for the reload's outcome; 0: it does not."""
    wait = request.get("wait")
    if wait is None or wait is False:
        return 0.0
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait < 1e6:
        raise RequestError('"wait" is a number of seconds')
    return min(float(wait), MAX_RELOAD_WAIT)


def start_reload(daemon: DaemonView, request: dict) -> tuple[asyncio.Future, float]:
    """Ask for a reload: (its outcome, seconds the client waits for it)."""
    wait = reload_wait(request)
    if daemon.lifecycle.stopping:
        raise RequestError("stopping: no reload")
    return daemon.lifecycle.request_reload(), wait


def handle(daemon: DaemonView, request: dict) -> dict:
    command = request["command"]
    if command == "status":
        return status_reply(snapshot(daemon))
    if command == "dump":
        return dump_reply(snapshot(daemon))
    if command == "set-priority":
        return {"ok": True, "result": set_priority(daemon, request.get("instance"),
                                                   request.get("priority"))}
    if command == "reload":
        start_reload(daemon, request)
        return {"ok": True, "result": "reload requested"}
    raise RequestError(f"unknown command {command!r} (status, dump, set-priority, reload)")


def failure(exc: BaseException) -> dict:
    """A request that cannot be served: an error answer; the daemon carries on."""
    if isinstance(exc, (ValueError, UnicodeDecodeError)):
        return {"ok": False, "error": f"not JSON: {exc}"}
    if isinstance(exc, RequestError):
        return {"ok": False, "error": str(exc)}
    log.exception("control request failed")    # a bug must not take the daemon down with it
    return {"ok": False, "error": f"internal error: {exc}"}


def answer(daemon: DaemonView, line: bytes) -> dict:
    """The answer to one request line, all built here; never raises."""
    try:
        return handle(daemon, parse(line))
    except Exception as exc:
        return failure(exc)


async def respond(daemon: DaemonView, line: bytes) -> bytes:
    """The server's answer, encoded. Status and dump are snapshotted on the loop
    and built and encoded on a worker thread; a reload asked with "wait"
    answers with its outcome."""
    try:
        request = parse(line)
        command = request["command"]
        if command in ("status", "dump"):
            snap = snapshot(daemon)
            build = status_reply if command == "status" else dump_reply
            return await asyncio.to_thread(lambda: encode(build(snap)))
        if command == "reload" and reload_wait(request):
            return encode(await waited_outcome(*start_reload(daemon, request)))
        return encode(handle(daemon, request))
    except Exception as exc:
        return encode(failure(exc))


def encode(reply: dict) -> bytes:
    """One JSON line. Long lists are encoded item by item: json.dumps is one C
    call that holds the GIL throughout (50 ms for a 10,000-instance dump, on
    a worker thread, was 50 ms the loop could not run); between items the
    loop gets its turn."""
    return "".join(_pieces(reply, 0)).encode() + b"\n"


def _pieces(value, depth: int):
    if depth < 3 and isinstance(value, dict) and value:
        yield "{"
        for k, (key, item) in enumerate(value.items()):
            yield ("," if k else "") + json.dumps(str(key)) + ":"
            yield from _pieces(item, depth + 1)
        yield "}"
    elif depth < 3 and isinstance(value, list) and len(value) > SMALL:
        yield "["
        for k, item in enumerate(value):
            yield ("," if k else "") + json.dumps(item, default=str)
        yield "]"
    else:
        yield json.dumps(value, default=str)


def peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISREG, "a regular file")):
        if test(mode):
            return kind
    return "a special file"


def _answers(path: str) -> bool:
    """Is a daemon listening on this socket file (or is it a leftover)?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


class ControlServer:
    def __init__(self, daemon: DaemonView, path: str) -> None:
        self.daemon, self.path = daemon, path
        self.server: asyncio.AbstractServer | None = None
        self.inode = 0
        self.refused = 0

    async def start(self) -> None:
        """Listen; raises OSError (FileExistsError: another daemon answers there, or
        something other than a socket is at the path: it is left alone)."""
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(mode):
                raise FileExistsError(f"{self.path} is {_kind(mode)}, not a socket: left alone "
                                      "(remove it or choose another --control path)")
            if _answers(self.path):
                raise FileExistsError(f"{self.path} belongs to another running hivrrp")
            os.unlink(self.path)      # left by a run that was killed
        # Bound here, not by asyncio: given a path, it removes whatever socket a
        # symlink there points to. bind() itself never replaces anything.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Created 0600 from the start: no moment where another user may connect.
            old = os.umask(0o177)
            try:
                sock.bind(self.path)
            finally:
                os.umask(old)
            self.inode = os.stat(self.path).st_ino
            self.server = await asyncio.start_unix_server(self.serve, sock=sock,
                                                          limit=MAX_LINE)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                if self.inode and os.lstat(self.path).st_ino == self.inode:   # bound above
                    os.unlink(self.path)
            raise
        log.info("control socket %s", self.path)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = peer_uid(writer.get_extra_info("socket"))
            if uid != 0:
                self.refused += 1
                await self._send(writer, {"ok": False, "error": "permission denied: root only"})
                return
            # A bounded number of requests per connection, each bounded in size and time.
            for _ in range(1000):
                try:
                    line = await asyncio.wait_for(reader.readuntil(b"\n"), CLIENT_TIMEOUT)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        await self._send(writer, await respond(self.daemon, exc.partial))
                    return
                except asyncio.LimitOverrunError:
                    await self._send(writer, {"ok": False,
                                              "error": f"request over {MAX_LINE} bytes"})
                    return
                except TimeoutError:
                    return
                await self._send(writer, await respond(self.daemon, line))
        except (ConnectionError, OSError, TimeoutError):
            pass                       # the client went away: nothing to tell it
        except asyncio.CancelledError:
            pass    # the daemon is stopping with this client connected
        finally:
            writer.close()
            # Cancellation is swallowed here too: a handler that ends cancelled
            # makes asyncio's stream callback (Python 3.11) log a traceback,
            # and the task ends either way.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: dict | bytes) -> None:
        writer.write(reply if isinstance(reply, bytes) else encode(reply))
        # A client that stops reading must not hold megabytes of dumps forever.
        await asyncio.wait_for(writer.drain(), CLIENT_TIMEOUT)

    async def close(self) -> None:
        if self.server is None:
            return
        self.server.close()
        self.server = None
        # Only our own socket: another daemon may have taken the path since.
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)


def request(path: str, command: dict, timeout: float = 10.0) -> dict:
    """The CLI side: one request, one answer (blocking)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(command).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def hivrrp_version() -> str:
    import hivrrp
    return hivrrp.__version__
