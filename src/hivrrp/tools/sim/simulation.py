"""Building and running a simulated network of hivrrp engines."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hivrrp._engine import Engine
from hivrrp._simnet import VirtualLan
from hivrrp.tracking.syncgroups import EngineView, SyncGroups, carry_out

SECOND = 1_000_000
MILLISECOND = 1_000
MAX_STEPS = 50_000_000  # a runaway scenario stops instead of spinning forever


@dataclass(frozen=True)
class Event:
    time: int
    router: str
    instance: str
    old: str
    new: str
    reason: str


@dataclass
class _Interface:
    segment: str
    ipv4: str | None
    ipv6: str | None


@dataclass
class Router:
    name: str
    index: int
    interfaces: dict[int, _Interface] = field(default_factory=dict)
    specs: list[tuple[str, dict]] = field(default_factory=list)
    engine: Engine | None = None
    names: list[str] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    sync: SyncGroups | None = None
    view: EngineView | None = None

    def attach(self, segment: str, *, ifindex: int, ipv4: str | None = None,
               ipv6: str | None = None) -> None:
        """Plug interface `ifindex` into a segment with the given primary addresses."""
        self.interfaces[ifindex] = _Interface(segment, ipv4, ipv6)

    def instance(self, name: str, *, ifindex: int, **config) -> None:
        """Declare a VRRP instance (Engine.add_instance keywords; src defaults to
        the interface's primary address of the instance's family; `follow`:
        the name of its leader, `follow_refresh` its refresh period in seconds)."""
        self.specs.append((name, {"ifindex": ifindex, **config}))

    def sync_group(self, name: str, members: list[str]) -> None:
        """A vrrp_sync_group of this router's instances (tracking.syncgroups policy)."""
        self.groups[name] = list(members)

    def index_of(self, name: str) -> int:
        return self.names.index(name)

    def build(self, now: int) -> Engine:
        engine = Engine(max(1, len(self.specs)), now=now)
        self.names = []
        follows = []
        for name, config in self.specs:
            config = dict(config)
            if "follow" in config:
                follows.append((name, config.pop("follow"), config.pop("follow_refresh", 60.0)))
            interface = self.interfaces[config["ifindex"]]
            family = config.get("family", 4)
            config.setdefault("src", interface.ipv4 if family == 4 else interface.ipv6)
            engine.add_instance(**config)
            self.names.append(name)
        for name, leader, refresh in follows:
            engine.follow(self.names.index(name), self.names.index(leader), refresh)
        for members in self.groups.values():
            for member in members:
                engine.set_sync_member(self.names.index(member), True)
        self.sync = SyncGroups(self.groups)
        self.view = EngineView(engine, {n: k for k, n in enumerate(self.names)})
        self.engine = engine
        return engine


class Simulation:
    def __init__(self, *, seed: int = 1) -> None:
        self.seed = seed
        self.now = 0
        self.routers: dict[str, Router] = {}
        self.segments: dict[str, tuple[int, float, float]] = {}  # name -> (id, delay s, loss)
        self.events: list[Event] = []
        self.group_states: list[tuple[int, str, str, str]] = []   # (time, router, group, state)
        self.lan: VirtualLan | None = None

    # ------------------------------------------------------------ set-up

    def segment(self, name: str, *, delay: float = 0.0, loss: float = 0.0) -> None:
        """A LAN segment; delay in seconds, loss as a probability per packet."""
        self.segments[name] = (len(self.segments), delay, loss)

    def router(self, name: str) -> Router:
        router = Router(name, len(self.routers))
        self.routers[name] = router
        return router

    def start(self, at: int = 0) -> None:
        """Build every engine and the LAN, then start all instances at `at`."""
        self.now = at
        lan = VirtualLan(len(self.routers), max(1, len(self.segments)),
                         max_ifindex=max((i for r in self.routers.values()
                                          for i in r.interfaces), default=0),
                         seed=self.seed)
        for seg_id, delay, loss in self.segments.values():
            lan.set_delay(seg_id, int(delay * SECOND))
            lan.set_loss(seg_id, loss)
        for router in self.routers.values():
            lan.set_engine(router.index, router.build(at))
            for ifindex, interface in router.interfaces.items():
                lan.attach(router.index, ifindex, self.segments[interface.segment][0])
                for address in (interface.ipv4, interface.ipv6):
                    if address:
                        lan.own_address(router.index, ipaddress.ip_address(address).packed)
        self.lan = lan
        for router in self.routers.values():
            router.engine.start_all(at)
        self._settle()

    # ------------------------------------------------------------ running

    def _settle(self) -> None:
        # Sync groups answer events with more engine work, which may queue
        # adverts and events of its own: step again until it is quiet.
        for _ in range(16):
            self.lan.step(self.now)
            acted = False
            for router in self.routers.values():
                view = router.view
                events = router.engine.take_events()
                for instance, old, new, reason, time in events:
                    name = router.names[instance]
                    self.events.append(Event(time, router.name, name, old, new, reason))
                    # As the daemon: each event's actions before the next is judged.
                    acted |= self._sync(router, router.sync.event(name, old, new, reason, view))
                acted |= self._sync(router, router.sync.recheck(view))
            if not acted:
                break

    def _sync(self, router: Router, actions: list) -> bool:
        for change in carry_out(actions, router.view, self.now):
            self.group_states.append((self.now, router.name, change.group, change.state))
        return bool(actions)

    def _next_time(self) -> int | None:
        times = [r.engine.next_deadline() for r in self.routers.values()
                 if self.lan.is_alive(r.index)]
        times.append(self.lan.next_arrival())
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def run_until(self, until: int, *, quantum: int | None = None) -> None:
        """Advance the virtual clock to `until` (microseconds).

        Without a quantum every timer fires at its exact deadline. With one, the
        clock moves in fixed steps (for large scenarios); timers then fire up to
        one quantum late, as in a daemon that wakes up at that rate.
        """
        for _ in range(MAX_STEPS):
            if quantum:
                following = self.now + quantum
            else:
                following = self._next_time()
                if following is None:
                    break
            if following > until:
                break
            self.now = max(self.now, following)
            self._settle()
        else:
            raise RuntimeError(f"simulation did not reach {until} in {MAX_STEPS} steps")
        self.now = max(self.now, until)
        self._settle()

    def run_for(self, duration: int, **kw) -> None:
        self.run_until(self.now + duration, **kw)

    # ------------------------------------------------------- disturbances

    def crash(self, router: str) -> None:
        """The router dies silently: no priority 0, no more adverts or receptions."""
        self.lan.set_alive(self.routers[router].index, False)

    def shutdown(self, router: str) -> None:
        """Graceful stop: masters send priority 0 (what SIGTERM does)."""
        self.routers[router].engine.stop_all(self.now)
        self._settle()
        self.lan.set_alive(self.routers[router].index, False)

    def restart(self, router: str) -> None:
        """Boot a crashed or stopped router again with fresh state."""
        r = self.routers[router]
        self.lan.set_engine(r.index, r.build(self.now))
        self.lan.set_alive(r.index, True)
        r.engine.start_all(self.now)
        self._settle()

    def partition(self, a: str, b: str) -> None:
        """Cut a and b off from each other (both directions)."""
        self._block(a, b, True)

    def heal(self, a: str, b: str) -> None:
        self._block(a, b, False)

    def _block(self, a: str, b: str, blocked: bool) -> None:
        ia, ib = self.routers[a].index, self.routers[b].index
        self.lan.set_blocked(ia, ib, blocked)
        self.lan.set_blocked(ib, ia, blocked)

    def set_priority_delta(self, router: str, instance: str, delta: int) -> None:
        r = self.routers[router]
        r.engine.set_priority_delta(r.index_of(instance), delta, self.now)
        self._settle()

    def set_fault(self, router: str, instance: str, flag: int, active: bool) -> None:
        r = self.routers[router]
        r.engine.set_fault(r.index_of(instance), flag, active, self.now)
        self._settle()

    def set_base_priority(self, router: str, instance: str, priority: int) -> None:
        r = self.routers[router]
        r.engine.set_base_priority(r.index_of(instance), priority, self.now)
        self._settle()

    def stop_instance(self, router: str, instance: str) -> None:
        """One instance stops (a master sends priority 0), the others go on."""
        r = self.routers[router]
        r.engine.stop(r.index_of(instance), self.now)
        self._settle()

    def force(self, router: str, instance: str, state: str, reason: str = "admin") -> bool:
        """Engine.force(): True when the instance is in `state` afterwards."""
        r = self.routers[router]
        done = r.engine.force(r.index_of(instance), state, self.now, reason)
        self._settle()
        return done

    # ------------------------------------------------------------ queries

    def engine(self, router: str) -> Engine:
        return self.routers[router].engine

    def state(self, router: str, instance: str) -> str:
        r = self.routers[router]
        return r.engine.state(r.index_of(instance))

    def masters(self, instance: str) -> list[str]:
        return [name for name, r in self.routers.items()
                if instance in r.names and self.lan.is_alive(r.index)
                and r.engine.state(r.index_of(instance)) == "MASTER"]

    def transitions(self, *, router: str | None = None, instance: str | None = None,
                    since: int = 0) -> list[Event]:
        """State changes (not the same-state notices) matching the filters."""
        return [e for e in self.events
                if e.old != e.new and e.time >= since
                and (router is None or e.router == router)
                and (instance is None or e.instance == instance)]
