"""A small, readable reference model of one VRRP instance (RFC 3768 / RFC 9568 with
keepalived's choices), written independently of the Cython engine to test it.

Times are integer microseconds. Each method returns the priorities of the
adverts the instance sends in response.
"""

from __future__ import annotations

SECOND = 1_000_000


class ModelInstance:
    def __init__(self, *, version: int, priority: int, interval_us: int, src: int,
                 preempt: bool = True, preempt_delay_us: int = 0, down_adverts: int = 3,
                 lower_prio_no_advert: bool = False):
        self.version = version
        self.base = priority
        self.effective = priority
        self.interval = interval_us
        self.master_interval = interval_us
        self.src = src
        self.preempt = preempt
        self.preempt_delay = preempt_delay_us
        self.down_adverts = down_adverts
        self.lower_prio_no_advert = lower_prio_no_advert
        self.state = "INIT"
        self.timer: int | None = None
        self.faulted = False
        self.preempt_at: int | None = None

    # timers
    def skew(self) -> int:
        unit = SECOND if self.version == 2 else self.master_interval
        return (256 - self.effective) * unit // 256

    def master_down(self) -> int:
        interval = self.interval if self.version == 2 else self.master_interval
        return self.down_adverts * interval + self.skew()

    # transitions
    def _up(self, now: int) -> list[int]:
        self.master_interval = self.interval
        if self.base == 255:
            return self._to_master(now)
        self._to_backup(now)
        return []

    def _to_master(self, now: int) -> list[int]:
        self.state = "MASTER"
        self.preempt_at = None
        self.timer = now + self.interval
        return [self.effective]

    def _to_backup(self, now: int) -> None:
        self.state = "BACKUP"
        self.preempt_at = None
        self.timer = now + self.master_down()

    def _down(self, new_state: str) -> list[int]:
        sent = [0] if self.state == "MASTER" else []
        self.state = new_state
        self.timer = None
        self.preempt_at = None
        return sent

    # inputs
    def start(self, now: int) -> list[int]:
        if self.state != "INIT":
            return []
        if self.faulted:
            self.state = "FAULT"
            return []
        return self._up(now)

    def stop(self, now: int) -> list[int]:
        return self._down("INIT") if self.state != "INIT" else []

    def fault(self, now: int, active: bool) -> list[int]:
        was, self.faulted = self.faulted, active
        if active and not was and self.state in ("BACKUP", "MASTER"):
            return self._down("FAULT")
        if not active and was and self.state == "FAULT":
            return self._up(now)
        return []

    def set_delta(self, now: int, delta: int) -> list[int]:
        if self.base == 255:
            return []
        new = min(254, max(1, self.base + delta))
        if new == self.effective:
            return []
        old_skew = self.skew()
        self.effective = new
        if self.state == "BACKUP" and self.timer is not None:
            self.timer = max(now, self.timer + self.skew() - old_skew)
        return []

    def advance(self, now: int) -> list[int]:
        """The clock reaches `now`: the pending timer fires (at most once)."""
        if self.timer is None or self.timer > now:
            return []
        deadline = self.timer
        if self.state == "MASTER":
            following = deadline + self.interval
            self.timer = following if following > now else now + self.interval
            return [self.effective]
        return self._to_master(now)  # BACKUP: the master is gone

    def receive(self, now: int, *, priority: int, src: int, interval_us: int) -> list[int]:
        """A valid advert with our VIPs (the engine's packet checks passed)."""
        if self.state not in ("BACKUP", "MASTER") or src == self.src:
            return []
        if self.version == 2 and interval_us != self.interval:
            return []  # RFC 3768: intervals must match
        if self.state == "BACKUP":
            if priority == 0:
                self.timer = now + self.skew()
                return []
            accept = not self.preempt or priority >= self.effective
            if not accept and self.preempt_delay:
                if self.preempt_at is None:
                    self.preempt_at = now + self.preempt_delay
                accept = now < self.preempt_at
            if accept:
                if priority >= self.effective:
                    self.preempt_at = None
                if self.version == 3:
                    self.master_interval = interval_us
                self.timer = now + self.master_down()
            return []
        # MASTER
        if priority == 0:
            self.timer = now + self.interval
            return [self.effective]
        if priority > self.effective or (priority == self.effective and src > self.src):
            self.master_interval = interval_us if self.version == 3 else self.interval
            self._to_backup(now)
            return []
        return [] if self.lower_prio_no_advert else [self.effective]
