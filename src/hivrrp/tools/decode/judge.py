"""Would this router take an advert? The daemon's own engine answers.

`hivrrp decode --config` builds the engine the daemon would build from the
configuration (daemon.plan.build), starts every instance and hands it each
captured advert as the daemon's receive path does (one RxBatch slot of the
daemon's size, TTL floor 255). The verdict is what the engine did with it:
a drop record gives the reason label of the drop counters and the daemon's
log line for it (daemon.droplog.describe); a count on an instance's
adverts_received means accepted; a count on own_adverts means it came from
this router's own configured source. No check is written twice, so decode
and the daemon cannot disagree.

The daemon knows the interface an advert came in on; a capture may not.
The interface is the one asked for (--interface), else the capture's (a
pcapng if_name other than "any"); without either the advert is judged on each
configured interface that has an instance of its VRID and family, and the
first that takes it wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from hivrrp._wire import Advert, RxBatch
from hivrrp.config.model import Config
from hivrrp.daemon.driver import RX_SLOT
from hivrrp.daemon.droplog import describe, drop_of
from hivrrp.daemon.plan import build
from hivrrp.kernel.netlink import Link
from hivrrp.ops.metrics import INSTANCE_COUNTERS, RECEIVE_ERRORS
from hivrrp.tools.decode.capture import Datagram, ipv4_checksum_ok

# Engine counter -> the metric the daemon exports it as (ops.metrics).
INSTANCE_METRICS = {
    **{counter: name for name, counter, _text in INSTANCE_COUNTERS},
    **{counter: f'hivrrp_instance_receive_errors_total{{reason="{reason}"}}'
       for reason, counter in RECEIVE_ERRORS},
}
NOW = 1_000_000          # the engine's clock; it never runs (no timer fires in decode)
UNNAMED = ("", "any")     # capture interface names that say nothing about the interface
KERNEL_DROP = "ip_checksum"   # the verdict on what ip_rcv() drops (no daemon counter)
ANYWHERE = "(any interface)"  # where an advert no configured interface has its VRID is judged


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: str                 # "ok", a drop reason label (the counters'), or "own_advert"
    instance: str | None        # the instance that judged it; None: no instance did
    interface: str | None       # the interface it was judged as received on
    detail: str | None = None   # the daemon's log line for a drop
    by_vrid: bool = False       # the capture did not say the interface: matched by VRID
    counters: tuple[str, ...] = ()   # the daemon's metrics it counted in (no instance label)


class Judge:
    def __init__(self, config: Config) -> None:
        names = sorted({inst.interface for inst in config.instances if inst.interface})
        # Made-up indexes: the daemon's are this host's, which the capture need not be from.
        self.links = {name: Link(k + 1, name, b"\0" * 6, True) for k, name in enumerate(names)}
        self.names = {link.index: name for name, link in self.links.items()}
        # Quiet: build() warns about this host's links and source addresses;
        # here both are made up, so its warnings would be about nothing real.
        self.plan = build(config, self.links, [], NOW, quiet=True)
        self.engine = self.plan.engine
        self.engine.start_all(NOW)
        self.engine.take_events()
        self.engine.clear_tx()
        # (family, VRID) -> the interfaces with such an instance; (ifindex,
        # family, VRID) -> those instances, to tell which one took an advert.
        self.interfaces_of: dict[tuple[int, int], list[int]] = {}
        self.instances_at: dict[tuple[int, int, int], list[int]] = {}
        for name, inst in self.plan.instances.items():
            family, vrid = inst.config.family, inst.config.vrid
            where = self.interfaces_of.setdefault((family, vrid), [])
            if inst.ifindex not in where:
                where.append(inst.ifindex)
            self.instances_at.setdefault((inst.ifindex, family, vrid), []).append(
                self.plan.index[name])
        self.batch = RxBatch(1, RX_SLOT)

    def ifindex(self, name: str) -> int:
        """The index of interface `name`, a new one for a name the configuration lacks."""
        link = self.links.get(name)
        if link is None:
            link = self.links[name] = Link(len(self.links) + 1, name, b"\0" * 6, True)
            self.names[link.index] = name
        return link.index

    def judge(self, datagram: Datagram, advert: Advert, interface: str | None = None) -> Verdict:
        """The verdict on `datagram` (decoded as `advert`), received on
        `interface`, else the capture's interface, else any with its VRID."""
        name = interface or (datagram.interface if datagram.interface not in UNNAMED
                             else None)
        if datagram.family == 4 and not ipv4_checksum_ok(datagram.data):
            # The engine would take it; the kernel never hands it over.
            return Verdict(KERNEL_DROP, None, name,
                           detail=f"bad IPv4 header checksum from {advert.src}: the kernel "
                                  "drops it before any VRRP daemon sees it (no hivrrp counter)")
        if name is not None:
            return self.feed(datagram, advert, self.ifindex(name), False)
        candidates = (self.interfaces_of.get((advert.family, advert.vrid))
                      or [self.ifindex(ANYWHERE)])
        verdict = None
        for ifindex in candidates:
            got = self.feed(datagram, advert, ifindex, True)
            if got.reason == "ok":
                return got
            verdict = verdict or got
        return verdict

    def feed(self, datagram: Datagram, advert: Advert, ifindex: int, by_vrid: bool) -> Verdict:
        engine, batch = self.engine, self.batch
        batch.clear()
        if datagram.family == 4:
            batch.add_ipv4(datagram.data, ifindex=ifindex)
        else:
            batch.add_ipv6(datagram.data, datagram.src, datagram.dst, datagram.hoplimit,
                           ifindex=ifindex)
        takers = self.instances_at.get((ifindex, datagram.family, advert.vrid), ())
        before = [engine.counters(i) for i in takers]
        if_before = engine.interface_drops()
        own = engine.global_counters()["own_adverts"]
        engine.receive(batch, NOW)
        records, _unrecorded = engine.take_drops(True)
        # A master answers some adverts; nothing is sent from here.
        engine.take_events()
        engine.clear_tx()
        where = self.names.get(ifindex)
        counted, taker = self.counted(takers, before, if_before)
        if records:
            record = records[0]
            scope = self.plan.names[record[0]] if record[0] >= 0 else record[1]
            return Verdict(record[2], scope if isinstance(scope, str) else None, where,
                           describe(drop_of(scope, record), self.ifname), by_vrid, counted)
        if taker is not None:
            return Verdict("ok", taker, where, None, by_vrid, counted)
        if engine.global_counters()["own_adverts"] > own:
            mine = self.instance_of(takers)
            return Verdict("own_advert", mine, where,
                           f"({mine}) our own advert (from the configured source address), "
                           "ignored", by_vrid, counted)
        # Every instance runs, so the engine judges every advert; say so if not.
        return Verdict("ignored", self.instance_of(takers), where,
                       "the engine neither took nor dropped it", by_vrid, counted)

    def counted(self, takers, before: list[dict], if_before: dict
                ) -> tuple[tuple[str, ...], str | None]:
        """The metrics the advert went up (from the engine's counters, as the
        daemon exports them), and the instance that took it, if one did."""
        out, taker = [], None
        for i, was in zip(takers, before):
            for counter, value in self.engine.counters(i).items():
                if value > was[counter]:
                    if counter == "adverts_received":
                        taker = self.plan.names[i]
                    if counter in INSTANCE_METRICS:
                        out.append(INSTANCE_METRICS[counter])
        for ifindex, counts in self.engine.interface_drops().items():
            was = if_before.get(ifindex, {})
            interface = self.names.get(ifindex, "other") if ifindex else "other"
            out += [f'hivrrp_receive_errors_total{{interface="{interface}",reason="{reason}"}}'
                    for reason, count in counts.items() if count > was.get(reason, 0)]
        return tuple(out), taker

    def instance_of(self, indexes) -> str | None:
        return self.plan.names[indexes[0]] if indexes else None

    def ifname(self, ifindex: int) -> str:
        return self.names.get(ifindex) or "(no interface)"
