"""keepalived's rise/fall counter for vrrp_script results.

Kept free of processes and timers so that it can be checked result by result
against keepalived's own code (vrrp_scheduler.c, vrrp_script_child_thread).
"""

from __future__ import annotations


class RiseFall:
    """Turns a stream of script results into an up/down status.

    keepalived keeps one integer r in [0, rise+fall-1]; the script is up iff
    r >= rise.  Starting at rise-1 makes the very first result decide either
    way; init_fail starts at 0 instead, already down, so it then takes `rise`
    successes to come up.
    """

    __slots__ = ("_init", "_r", "fall", "rise")

    def __init__(self, rise: int = 1, fall: int = 1, init_fail: bool = False) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be at least 1 (got {rise}, {fall})")
        self.rise = rise
        self.fall = fall
        self._r = 0 if init_fail else rise - 1
        # keepalived's SCRIPT_INIT_STATE_INIT: no result yet, so the first
        # failure reports down even though r never was >= rise.
        self._init = not init_fail

    @property
    def status(self) -> bool | None:
        """True up, False down, None before the first result (unless init_fail)."""
        if self._init:
            return None
        return self._r >= self.rise

    def carry(self, status: bool | None) -> None:
        """Continue from another counter's status (a script changed by a
        reload, as keepalived's clear_diff_script carries it by name): fully
        up or fully down, so it takes `fall` or `rise` results to change."""
        if status is None:
            return
        self._r = self.rise + self.fall - 1 if status else 0
        self._init = False

    def result(self, ok: bool) -> bool | None:
        """Count one result; return the new status if it changed, else None."""
        rise, top = self.rise, self.rise + self.fall - 1
        changed = None
        if ok:
            if self._r < rise - 1:
                self._r += 1
            elif self._r != top:
                if self._r < rise:
                    changed = True
                self._r = top
        else:
            if self._r > rise:
                self._r -= 1
            else:
                if self._r == rise or self._init:
                    changed = False
                self._r = 0
        self._init = False
        return changed
