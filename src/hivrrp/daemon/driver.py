"""The engine on real sockets: batched reads, the one loop timer, batched sends.

Raw sockets are read in batches (recvmmsg) straight into the engine, one
timer is armed at the engine's next deadline, and whatever the engine queued
goes out in one sendmmsg per family, the multicast IPv4 adverts as frames on
a packet socket unless `--send-path raw` (kernel/sendpath.py says which and
why). The engine's events, with their causes and how many followers each
moved (held back in the engine), go to `on_events`; nothing here decides what
they mean.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from hivrrp._engine import Engine
from hivrrp._io import FramePath, PacketIO
from hivrrp._wire import RxBatch
from hivrrp.daemon import sendlog
from hivrrp.daemon.sendlog import Refused, SendLog
from hivrrp.kernel import sendpath
from hivrrp.kernel.sockets import (
    SocketPool,
    device_mtu,
    force_buffers,
    open_packet,
    pmtudisc,
)
from hivrrp.util.text import plural

if TYPE_CHECKING:
    from hivrrp.daemon.plan import Plan
    from hivrrp.kernel.netlink import Link

log = logging.getLogger("hivrrp")

RX_SLOT = 4200                 # the largest advert (255 IPv6 addresses) fits
EVENT_ROUNDS = 8               # event handling that causes engine work, per wake-up
RX_BATCH = 256
MAX_READS_PER_WAKEUP = 16      # bound the time one socket can hold the loop
RX_POLL_PERIOD = 0.002         # seconds between reads of a busy socket
SOCKET_BUFFER_PER_INSTANCE = 2048
SOCKET_BUFFER_MIN = 1 << 20


def buffer_size(instances: int) -> int:
    return max(SOCKET_BUFFER_MIN, SOCKET_BUFFER_PER_INSTANCE * instances)


def now_us(loop: asyncio.AbstractEventLoop) -> int:
    # Rounded, not truncated: uvloop's whole milliseconds as floats are often a
    # hair short (1083.043 * 1e6 = 1083042999.99...), and a timer due at
    # exactly 1083043000 then found nothing to expire and spun until the next
    # millisecond.
    return round(loop.time() * 1_000_000)


def timer_when(deadline_us: int) -> float:
    """The loop time to arm for a deadline: the next whole millisecond.

    uvloop keeps time in milliseconds: armed at the exact deadline, the timer
    fires in the millisecond that holds it, where now_us() is still short of
    it, expire() finds nothing and re-arming became a busy call_soon until the
    millisecond ticked over (25,000 empty wake-ups in 3 s with 200 masters).
    """
    return math.ceil(deadline_us / 1000) / 1000


class Driver:
    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_events: Callable[[list[tuple]], None], send_path: str = "auto") -> None:
        if send_path not in sendpath.MODES:
            raise ValueError(f"send path is one of {', '.join(sendpath.MODES)}")
        self.loop = loop
        self.send_path = send_path
        self.packet_socket: socket.socket | None = None
        self.buffer_bytes = 0                     # each socket's buffers (open_sockets)
        self.frames_problem: str | None = None   # why `auto` runs without frames
        self.links: Mapping[int, Link] = {}      # the live links as last told (sync_links)
        self.links_told: dict[int, tuple[bytes, int, int]] = {}   # what frames knows, by index
        self.frames: FramePath | None = None     # None: every advert on the raw sockets
        self.raw_logged: set[tuple[str, str]] = set()   # (instance, reason) said in the log
        self.on_events = on_events
        self.engine: Engine | None = None
        self.pools: dict[int, SocketPool] = {}
        self.ios: list[tuple[PacketIO, RxBatch]] = []
        self.polls: dict[int, asyncio.TimerHandle] = {}   # fd -> next read of a busy socket
        self.senders: list[PacketIO] = []
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: int | None = None       # the deadline the loop timer is armed for
        self.wakeups = {"work": 0, "empty": 0}  # timer wake-ups that did / did not expire one
        self.closed = False
        self.sendlog = SendLog(loop.time if loop is not None else time.monotonic, self.ifname,
                               self.on_refused)
        self.mtu_asked: dict[int, tuple[bytes, int, int]] = {}   # index -> told when asked

    @property
    def frames(self) -> FramePath | None:
        return self._frames

    @frames.setter
    def frames(self, frames: FramePath | None) -> None:
        # links_told describes one FramePath: a new one knows no link and is
        # told every link of the last table at once. The table may have come
        # before the packet path existed (the news of the leftover VIPs a
        # start removes), and nothing else would tell it until a link changed.
        self._frames = frames
        self.links_told = {}
        if frames is not None:
            self.sync_links(self.links)

    def use(self, engine: Engine) -> None:
        """Drive `engine` from now on (a reload swaps engines)."""
        self.engine = engine
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_at = None

    def flush(self, engine: Engine) -> None:
        """Send what a retired engine still queued (priority 0 of removed masters)
        and drop its events: the reload already decided what follows from them."""
        self.send(engine)
        engine.take_events()

    def send(self, engine: Engine) -> None:
        """Everything `engine` queued, in one sendmmsg per family and path."""
        if engine.tx_count:
            for io in self.senders:
                io.send(engine, self.frames if io.family == 4 else None)
            engine.clear_tx()
            self.sendlog.after_send(self.frames, self.senders)

    # ----------------------------------------------------------- sockets

    def open_sockets(self, families: set[int], instances: int) -> None:
        self.buffer_bytes = buffer_bytes = buffer_size(instances)
        for family in (4, 6):
            # Both families, so that a reload may add instances of either.
            try:
                self.pools[family] = SocketPool.create(family, buffer_bytes)
            except OSError as exc:
                if family in families:
                    raise
                log.warning("no IPv%d VRRP socket (%s): IPv%d instances cannot be added by "
                            "a reload", family, exc, family)
        if self.send_path == "auto":
            self._open_frames(buffer_bytes)

    def size_buffers(self, instances: int) -> None:
        """The sockets' buffers for `instances`: a reload that adds thousands
        must not overflow what was sized for the start's few (the adverts of
        a mass takeover go out in one sendmmsg). Grown, never shrunk."""
        wanted = buffer_size(instances)
        if wanted <= self.buffer_bytes:
            return
        self.buffer_bytes = wanted
        try:
            for pool in self.pools.values():
                pool.resize(wanted)
            if self.packet_socket is not None:
                force_buffers(self.packet_socket, send=wanted)
        except OSError as exc:
            log.warning("socket buffers not grown to %d bytes for %s: %s", wanted,
                        plural(instances, "instance"), exc)

    def _open_frames(self, buffer_bytes: int) -> None:
        try:
            self.packet_socket = open_packet(buffer_bytes)
        except OSError as exc:
            self.frames_problem = f"no packet socket ({exc})"
            log.warning("%s: every advert goes through the raw IP socket", self.frames_problem)
            return
        # DF as the raw IPv4 socket sets it: from net.ipv4.ip_no_pmtu_disc as
        # it was when that socket was made, for its whole life (a sysctl
        # changed later changes neither), so read once, here.
        raw = self.pools.get(4)
        self.frames = FramePath(self.packet_socket.fileno(), RX_BATCH,
                                pmtudisc(raw.primary) if raw is not None else -1)

    # ---------------------------------------------------------- send path

    def sync_links(self, links: Mapping[int, Link], changed: Iterable[int] | None = None) -> None:
        """Tell the packet path the links as they are now (LinkTable.live: by
        index, each as its latest news says): a MAC that changed is the
        frames' source from the next advert on. `changed`: the indexes whose
        link changed or went since the last call (a link event touches one
        of 10,000, and this runs on every netlink batch); None: every link,
        and those it no longer has are forgotten."""
        self.links = links
        if self.frames is None:
            return
        if changed is None:
            changed = [*links, *(i for i in self.links_told if i not in links)]
        for index in changed:
            link = links.get(index)
            if link is None:
                self.mtu_asked.pop(index, None)
                if self.links_told.pop(index, None) is not None:
                    self.frames.forget_link(index)
                continue
            told = (link.mac, link.mtu, link.arphrd)
            before = self.links_told.get(index)
            if before == told:
                continue
            usable = sendpath.link_reason(link) is None
            self.frames.set_link(index, link.mac, link.mtu, usable)
            if before is not None and before[0] != link.mac and usable:
                log.info("interface %s: MAC %s -> %s: adverts go out from the new one", link.name,
                         before[0].hex(":"), link.mac.hex(":"))
            self.links_told[index] = told

    def on_refused(self, refused: Refused) -> None:
        """EMSGSIZE from the packet socket: a frame over the device's MTU, so
        the one the frames were told is stale (its news not here yet, or
        lost). The kernel's own is asked (once per link and MTU told) and
        told to the frames: the adverts over it take the raw socket from the
        next one on, where the kernel fragments them, instead of being lost."""
        index = refused.ifindex
        told = self.links_told.get(index)
        if (refused.errno != errno.EMSGSIZE or refused.socket != sendlog.PACKET
                or told is None or self.mtu_asked.get(index) == told):
            return
        self.mtu_asked[index] = told
        mtu = device_mtu(index)
        if mtu is None or mtu >= told[1]:
            return          # not the MTU: the refusals are logged, nothing to correct
        mac, old_mtu, arphrd = told
        self.frames.set_link(index, mac, mtu)     # usable: it took frames until now
        self.links_told[index] = self.mtu_asked[index] = (mac, mtu, arphrd)
        log.info("interface %s: its MTU is %d, not %d as last heard: adverts over it go "
                 "through the raw IP socket", self.ifname(index), mtu, old_mtu)

    def explain_paths(self, plan: Plan, links: Mapping[int, Link]) -> None:
        """Log once per instance why its adverts keep the raw socket (unicast
        peers, IPv6, a link that is not Ethernet): `plan` was just installed
        on the live `links`."""
        if self.frames is None:
            return
        reasons = sendpath.raw_reasons(plan.instances.values(), links)
        for line in sendpath.fallback_lines(reasons, self.raw_logged):
            log.info("%s", line)

    def path_summary(self) -> str:
        """The send path in a few words, for the start line and `hivrrp status`."""
        if self.send_path == "raw" or self.frames is not None:
            return self.send_path
        return f"auto, but raw: {self.frames_problem or 'sockets not open yet'}"

    def path_status(self) -> dict:
        """The send path and its counters, for the control socket."""
        status = {"mode": self.send_path, "frames": self.frames is not None,
                  "summary": self.path_summary(),
                  "raw_send_errors": sum(io.send_errors for io in self.senders)}
        if self.frames is not None:
            status.update(self.frames.counters())
        return status

    def send_errors(self) -> dict[str, int]:
        """Adverts the kernel refused, by socket: for the metrics."""
        frames = self.frames
        return {"packet": frames.send_errors if frames is not None else 0,
                "raw": sum(io.send_errors for io in self.senders)}

    def ifname(self, index: int) -> str:
        link = self.links.get(index)
        return link.name if link is not None else f"index {index}"

    def set_memberships(self, wanted: set[tuple[int, bytes, int]]) -> None:
        """Join exactly the (family, group, ifindex) memberships in `wanted`."""
        for family, pool in self.pools.items():
            for group, ifindex in list(pool.members):
                if (family, group, ifindex) not in wanted:
                    pool.leave(group, ifindex)
        for family, group, ifindex in sorted(wanted):
            if family not in self.pools:
                log.error("no IPv%d socket: cannot serve IPv%d instances", family, family)
                continue
            try:
                self.pools[family].join(group, ifindex)
            except OSError as exc:
                log.error("cannot join a VRRP group on interface %d: %s", ifindex, exc)
        readers = {io.fd for io, _ in self.ios}
        for family, pool in self.pools.items():
            for sock in pool.sockets:
                if sock.fileno() in readers:
                    continue
                io = PacketIO(sock.fileno(), family, RX_BATCH)
                batch = RxBatch(RX_BATCH, RX_SLOT)
                self.ios.append((io, batch))
                self.loop.add_reader(sock.fileno(), self.on_readable, io, batch)
            if not any(sender.family == family for sender in self.senders):
                self.senders.append(PacketIO(pool.primary.fileno(), family, RX_BATCH))

    def close(self) -> None:
        self.closed = True
        self.sendlog.close()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for io, _batch in self.ios:
            poll = self.polls.pop(io.fd, None)
            if poll is not None:
                poll.cancel()
            else:
                self.loop.remove_reader(io.fd)
        self.ios.clear()
        for pool in self.pools.values():
            pool.close()
        if self.packet_socket is not None:
            self.frames = None
            self.packet_socket.close()
            self.packet_socket = None

    # ------------------------------------------------------------ events

    def drain(self, io: PacketIO, batch: RxBatch) -> int:
        """Feed everything queued on one socket to the engine; returns how many packets."""
        total = 0
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                n = io.receive(batch)
            except OSError as exc:
                log.error("receive failed: %s", exc)
                break
            if n == 0:
                break
            total += n
            self.engine.receive(batch, now_us(self.loop))
            batch.clear()
            if n < batch.capacity:
                break  # drained: asking again would only return EAGAIN
        return total

    def on_readable(self, io: PacketIO, batch: RxBatch) -> None:
        if self.drain(io, batch):
            # Traffic: poll the socket every RX_POLL_PERIOD instead of waking
            # up per packet (the kernel's NAPI does the same for interrupts).
            # A backup of 1,000 v3 instances at 0.1 s otherwise wakes 10,000
            # times a second for one packet each; the added delay (<= 2 ms) is
            # far below any Skew_Time.
            self.loop.remove_reader(io.fd)
            self.polls[io.fd] = self.loop.call_later(RX_POLL_PERIOD, self.on_poll, io, batch)
        self.after_engine_work()

    def on_poll(self, io: PacketIO, batch: RxBatch) -> None:
        if self.drain(io, batch):
            self.polls[io.fd] = self.loop.call_later(RX_POLL_PERIOD, self.on_poll, io, batch)
        else:
            del self.polls[io.fd]  # quiet: back to waking up on arrival
            self.loop.add_reader(io.fd, self.on_readable, io, batch)
        self.after_engine_work()

    def on_timer(self) -> None:
        self.timer = None
        self.timer_at = None
        fired = self.engine.expire(now_us(self.loop))
        self.wakeups["work" if fired else "empty"] += 1
        self.after_engine_work()

    def after_engine_work(self) -> None:
        """Send what the engine queued, report its events, re-arm the timer."""
        engine = self.engine
        # Handling events may make more (a sync group moving its members):
        # send and report until quiet; a few rounds suffice, the bound guards.
        for _ in range(EVENT_ROUNDS):
            self.send(engine)
            # A leader's followers come later (Daemon.report_followers): a
            # mass move reaches Python as its leaders' events.
            events = engine.take_events(causes=True, defer_followers=True)
            if not events:
                break
            self.on_events(events)
            engine = self.engine
        else:
            self.send(engine)   # events of the last round wait, the adverts do not
        if self.closed:
            return
        deadline = engine.wakeup()
        if deadline != self.timer_at:
            # wakeup() is a lower bound that stays put while received adverts
            # push timers later, so this re-arms only when a deadline moved
            # earlier, timers stopped, or the timer fired (timer_at cleared).
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.timer_at = deadline
            if deadline is not None:
                self.timer = self.loop.call_at(timer_when(deadline), self.on_timer)
