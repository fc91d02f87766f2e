"""The control socket: `hivrrp status`, `set-priority`, `reload`, `dump`.

A unix stream socket, mode 0600 and root only (the peer's credentials are
checked too: a socket file's mode is not the only gate). One JSON request per
line, one JSON answer per line: {"command": "status"} ->
{"ok": true, "result": ...} or {"ok": false, "error": "..."}. Bad requests
(garbage, lines over MAX_LINE, unknown commands, wrong types) get an error
answer; the daemon carries on. Answers are built on the loop from one pass
over the engine, by instance name (no index outlives the request).
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
from typing import TYPE_CHECKING

from hivrrp.driver import now_us

if TYPE_CHECKING:
    from hivrrp.daemon import Daemon

log = logging.getLogger("hivrrp")

DEFAULT_SOCKET = "/run/hivrrp/control.sock"
MAX_LINE = 65536
CLIENT_TIMEOUT = 10.0          # seconds a client may take to send its request
RUNTIME_PRIORITY = ("runtime only: the configured priority comes back at the next reload "
                    "or restart")


class RequestError(Exception):
    """The request cannot be served; its message goes back to the client."""


def instance_rows(daemon: Daemon) -> list[dict]:
    """Every instance now, in configuration order."""
    plan, loop = daemon.plan, daemon.loop
    if plan is None:
        return []
    engine = plan.engine
    wall_offset = time.time() - loop.time()     # the engine's clock is the loop's
    rows = []
    for i, name in enumerate(plan.names):
        inst = plan.instances[name]
        c = inst.config
        changed = engine.last_transition(i)
        rows.append({
            "instance": name, "interface": c.interface, "vrid": c.vrid,
            "family": f"ipv{c.family}", "version": c.version, "state": engine.state(i),
            "base_priority": engine.base_priority(i),
            "priority": engine.effective_priority(i),
            "master": engine.master_address(i),
            "vips": [v.text for v in c.vips], "advert_int": c.advert_int,
            "last_transition": (round(changed / 1e6 + wall_offset, 3) if changed else None),
        })
    return rows


def dump(daemon: Daemon) -> dict:
    """status plus counters, FAULT reasons, trackers and sync groups: everything."""
    from hivrrp._engine import fault_reasons

    plan = daemon.plan
    rows = instance_rows(daemon)
    if plan is not None:
        engine = plan.engine
        for i, row in enumerate(rows):
            name = row["instance"]
            row["counters"] = engine.counters(i)
            row["fault_reasons"] = fault_reasons(engine.fault_flags(i))
            row["priority_delta"] = engine.priority_delta(i)
            row["trackers"] = [{"type": u.kind, "name": u.tracker, "weight": u.weight,
                                "reverse": u.reverse}
                               for u in daemon.trackers.uses(name)]
            row["sync_group"] = plan.instances[name].config.sync_group
    return {"instances": rows,
            "sync_groups": dict(daemon.sync.states),
            "trackers": {f"{kind} {name}": status
                         for (kind, name), status in daemon.trackers.policy.statuses.items()},
            "global_counters": plan.engine.global_counters() if plan else {},
            "reloads": dict(daemon.lifecycle.reloads)}


def set_priority(daemon: Daemon, instance, priority) -> dict:
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


def answer(daemon: Daemon, line: bytes) -> dict:
    """The answer to one request line; never raises."""
    try:
        try:
            request = json.loads(line)
        except RecursionError:     # "[[[[...": a bad request, not a bug to log
            return {"ok": False, "error": "not JSON: nested too deeply"}
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            raise RequestError('a request is a JSON object with a "command" string')
        command = request["command"]
        if command == "status":
            return {"ok": True, "result": instance_rows(daemon)}
        if command == "dump":
            return {"ok": True, "result": dump(daemon)}
        if command == "set-priority":
            return {"ok": True, "result": set_priority(daemon, request.get("instance"),
                                                       request.get("priority"))}
        if command == "reload":
            if daemon.lifecycle.stopping:
                raise RequestError("stopping: no reload")
            daemon.lifecycle.request_reload()
            return {"ok": True, "result": "reload requested"}
        raise RequestError(f"unknown command {command!r} "
                           "(status, dump, set-priority, reload)")
    except (ValueError, UnicodeDecodeError) as exc:
        return {"ok": False, "error": f"not JSON: {exc}"}
    except RequestError as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:       # a bug must not take the daemon down with it
        log.exception("control request failed")
        return {"ok": False, "error": f"internal error: {exc}"}


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
    def __init__(self, daemon: Daemon, path: str) -> None:
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
                        await self._send(writer, answer(self.daemon, exc.partial))
                    return
                except asyncio.LimitOverrunError:
                    await self._send(writer, {"ok": False,
                                              "error": f"request over {MAX_LINE} bytes"})
                    return
                except TimeoutError:
                    return
                await self._send(writer, answer(self.daemon, line))
        except (ConnectionError, OSError, TimeoutError):
            pass                       # the client went away: nothing to tell it
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: dict) -> None:
        writer.write(json.dumps(reply, default=str).encode() + b"\n")
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
