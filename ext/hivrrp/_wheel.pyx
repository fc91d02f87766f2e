# cython: language_level=3
"""Hierarchical timer wheel (Varghese & Lauck, as the pre-4.8 Linux kernel did it).

Why not a heap: the engine reschedules one timer per received advert and one
per sent advert, thousands of times a second; a wheel does that in O(1).
Exact deadlines are kept per timer, so expiry is exact to the microsecond
even though slots are 1.024 ms wide (v3 skew times are sub-millisecond at
10 ms adverts, and rounding them to a slot would re-create FRR's bug).
"""

from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

cdef int64_t L0_MASK = WHEEL_L0_SIZE - 1
cdef int64_t LN_MASK = WHEEL_LN_SIZE - 1
cdef int64_t MAX_SPAN = (<int64_t>1 << 32) - 1


cdef inline int32_t upper_slot(int level, int64_t index) noexcept nogil:
    # level 1..4
    return <int32_t>(WHEEL_L0_SIZE + (level - 1) * WHEEL_LN_SIZE + (index & LN_MASK))


cdef inline int64_t min_deadline(int64_t a, int64_t b) noexcept nogil:
    # -1 means "none"
    if a < 0:
        return b
    if b < 0:
        return a
    return a if a < b else b


cdef extern from "stdlib.h" nogil:
    # glibc's qsort_r: the comparator gets the deadline array as its context.
    void qsort_r(void *base, size_t nmemb, size_t size,
                 int (*compar)(const void *, const void *, void *) noexcept nogil,
                 void *arg)


cdef int by_deadline(const void *a, const void *b, void *context) noexcept nogil:
    cdef const wtimer_t *timers = <const wtimer_t *>context
    cdef int32_t x = (<const int32_t *>a)[0]
    cdef int32_t y = (<const int32_t *>b)[0]
    if timers[x].deadline != timers[y].deadline:
        return -1 if timers[x].deadline < timers[y].deadline else 1
    return -1 if x < y else (1 if x > y else 0)


cdef void sort_by_deadline(int32_t *ids, Py_ssize_t n, const wtimer_t *timers) noexcept nogil:
    """Order by (deadline, id): deterministic for the engine and the simulator."""
    cdef Py_ssize_t i, j
    cdef int32_t moving
    if n > 16:
        # Thousands of instances started together share one deadline, so a
        # tick can hold them all: O(n log n), never insertion sort's O(n^2).
        qsort_r(ids, n, sizeof(int32_t), by_deadline, <void *>timers)
        return
    for i in range(1, n):
        moving = ids[i]
        j = i
        while j > 0 and by_deadline(&ids[j - 1], &moving, <void *>timers) > 0:
            ids[j] = ids[j - 1]
            j -= 1
        ids[j] = moving


cdef class TimerWheel:
    """Timers 0..capacity-1 with deadlines in integer microseconds.

    `now` never goes backwards for expire(); a deadline in the past fires at the
    next expire(). next_deadline() is never later than the earliest deadline:
    it is exact when that deadline is within about 262 ms, otherwise it may be
    earlier (the caller wakes up once for nothing and asks again).
    """

    def __cinit__(self, Py_ssize_t capacity, int64_t now=0):
        cdef Py_ssize_t i
        if capacity < 1 or capacity > 0x7fffffff:
            raise ValueError("capacity must be 1..2**31-1")
        if now < 0:
            raise ValueError("time is a non-negative number of microseconds")
        self.capacity = capacity
        self.timers = <wtimer_t *>malloc(capacity * sizeof(wtimer_t))
        self.due = <int32_t *>malloc(capacity * sizeof(int32_t))
        if self.timers == NULL or self.due == NULL:
            raise MemoryError()
        for i in range(capacity):
            self.timers[i].slot = -1
        for i in range(WHEEL_NSLOTS):
            self.heads[i] = -1
        self.tick = now >> WHEEL_TICK_SHIFT
        self.scheduled = 0
        self.level0_count = 0
        self.hint = -1
        self.expired_through = -1

    def __dealloc__(self):
        free(self.timers)
        free(self.due)

    # ------------------------------------------------------------ C level

    cdef void link(self, int32_t timer) noexcept nogil:
        cdef int64_t expires = self.timers[timer].deadline >> WHEEL_TICK_SHIFT
        cdef int64_t delta = expires - self.tick
        cdef int32_t slot
        if delta < WHEEL_L0_SIZE:
            slot = <int32_t>((expires if delta >= 0 else self.tick) & L0_MASK)
            self.level0_count += 1
        elif delta < (<int64_t>1 << 14):
            slot = upper_slot(1, expires >> 8)
        elif delta < (<int64_t>1 << 20):
            slot = upper_slot(2, expires >> 14)
        elif delta < (<int64_t>1 << 26):
            slot = upper_slot(3, expires >> 20)
        else:
            if delta > MAX_SPAN:
                # Beyond the wheel's span: park it at the far end; it is
                # re-placed by its real deadline when that slot cascades.
                expires = self.tick + MAX_SPAN
            slot = upper_slot(4, expires >> 26)
        self.timers[timer].slot = slot
        self.timers[timer].prev = -1
        self.timers[timer].next = self.heads[slot]
        if self.heads[slot] != -1:
            self.timers[self.heads[slot]].prev = timer
        self.heads[slot] = timer

    cdef void unlink(self, int32_t timer) noexcept nogil:
        cdef int32_t slot = self.timers[timer].slot
        cdef int32_t before = self.timers[timer].prev
        cdef int32_t after = self.timers[timer].next
        if before != -1:
            self.timers[before].next = after
        else:
            self.heads[slot] = after
        if after != -1:
            self.timers[after].prev = before
        if slot < WHEEL_L0_SIZE:
            self.level0_count -= 1
        self.timers[timer].slot = -1

    cdef void schedule_c(self, int32_t timer, int64_t deadline) noexcept nogil:
        if self.timers[timer].slot != -1:
            self.unlink(timer)
        else:
            self.scheduled += 1
        self.timers[timer].deadline = deadline
        if deadline < self.hint:
            self.hint = deadline
        self.link(timer)

    cdef bint cancel_c(self, int32_t timer) noexcept nogil:
        if self.timers[timer].slot == -1:
            return False
        self.unlink(timer)
        self.scheduled -= 1
        return True

    cdef void cascade(self, int32_t slot) noexcept nogil:
        cdef int32_t timer = self.heads[slot]
        cdef int32_t following
        self.heads[slot] = -1
        while timer != -1:
            following = self.timers[timer].next
            self.link(timer)
            timer = following

    cdef Py_ssize_t drain(self, int32_t slot, int64_t now, Py_ssize_t n) noexcept nogil:
        """Move the due timers of a level-0 slot to self.due, sorted by deadline."""
        cdef int32_t timer = self.heads[slot]
        cdef int32_t following
        cdef Py_ssize_t start = n
        self.heads[slot] = -1
        while timer != -1:
            following = self.timers[timer].next
            self.level0_count -= 1
            if self.timers[timer].deadline <= now:
                self.timers[timer].slot = -1
                self.scheduled -= 1
                self.due[n] = timer
                n += 1
            else:
                self.link(timer)
            timer = following
        sort_by_deadline(self.due + start, n - start, self.timers)
        return n

    cdef Py_ssize_t expire_c(self, int64_t now) noexcept nogil:
        """Remove every timer with deadline <= now; they are in self.due[0:n]."""
        cdef int64_t target = now >> WHEEL_TICK_SHIFT
        cdef int64_t boundary
        cdef Py_ssize_t n = 0
        if now > self.expired_through:
            self.expired_through = now
        if target < self.tick:
            target = self.tick
        while True:
            n = self.drain(<int32_t>(self.tick & L0_MASK), now, n)
            if self.tick >= target:
                return n
            if self.scheduled == 0:
                self.tick = target
                return n
            if self.level0_count == 0:
                # Nothing in level 0: jump to the next cascade point (or the target).
                boundary = (self.tick | L0_MASK) + 1
                if boundary > target:
                    self.tick = target
                    continue
                self.tick = boundary
            else:
                self.tick += 1
            if (self.tick & L0_MASK) == 0:
                self.cascade_from(self.tick)

    cdef void cascade_from(self, int64_t t) noexcept nogil:
        # Entering a new level-0 round: pull the next slot of each level whose
        # own round also starts now (the kernel's cascade chain).
        cdef int64_t i1 = (t >> 8) & LN_MASK
        cdef int64_t i2 = (t >> 14) & LN_MASK
        cdef int64_t i3 = (t >> 20) & LN_MASK
        if i1 == 0:
            if i2 == 0:
                if i3 == 0:
                    self.cascade(upper_slot(4, t >> 26))
                self.cascade(upper_slot(3, i3))
            self.cascade(upper_slot(2, i2))
        self.cascade(upper_slot(1, i1))

    cdef int64_t slot_min(self, int32_t slot) noexcept nogil:
        cdef int32_t timer = self.heads[slot]
        cdef int64_t best = -1
        while timer != -1:
            if best < 0 or self.timers[timer].deadline < best:
                best = self.timers[timer].deadline
            timer = self.timers[timer].next
        return best

    cdef int64_t next_deadline_c(self) noexcept nogil:
        """Earliest deadline (exact within ~262 ms, else a lower bound); -1 if idle."""
        cdef int64_t index = self.tick & L0_MASK
        cdef int64_t boundary = (self.tick | L0_MASK) + 1
        cdef int64_t k, best
        if self.scheduled == 0:
            return -1
        # Level-0 slots from the current tick to the end of the round hold
        # the deadlines before the next cascade, which all upper levels follow.
        for k in range(index, WHEEL_L0_SIZE):
            if self.heads[k] != -1:
                return self.slot_min(<int32_t>k)
        # Next round: the wrapped level-0 slots and every slot that cascades
        # at the boundary. Their minimum is exact if it falls in the next
        # round, since every other slot holds later deadlines.
        best = -1
        for k in range(0, index):
            if self.heads[k] != -1:
                best = self.slot_min(<int32_t>k)
                break
        best = min_deadline(best, self.slot_min(upper_slot(1, boundary >> 8)))
        if ((boundary >> 8) & LN_MASK) == 0:
            best = min_deadline(best, self.slot_min(upper_slot(2, boundary >> 14)))
            if ((boundary >> 14) & LN_MASK) == 0:
                best = min_deadline(best, self.slot_min(upper_slot(3, boundary >> 20)))
                if ((boundary >> 20) & LN_MASK) == 0:
                    best = min_deadline(best, self.slot_min(upper_slot(4, boundary >> 26)))
        if best >= 0 and (best >> WHEEL_TICK_SHIFT) < boundary + WHEEL_L0_SIZE:
            return best
        return boundary << WHEEL_TICK_SHIFT

    cdef int64_t wakeup_c(self) noexcept nogil:
        """A lower bound of the earliest deadline, cached; -1 if idle.

        next_deadline_c() walks slot lists: on a backup every received advert
        pushes the earliest master-down timer later, and walking hundreds of
        timers per packet cost 8 % of the daemon's CPU. Rescheduling later or
        cancelling keeps a lower bound valid, so it is recomputed only after
        an expire() passed it (the caller woke up at it, early or not).
        """
        if self.scheduled == 0:
            return -1
        if self.hint <= self.expired_through:
            self.hint = self.next_deadline_c()
        return self.hint

    # ------------------------------------------------------- Python level

    cdef int check_timer(self, timer) except -1:
        if not 0 <= timer < self.capacity:
            raise IndexError(f"timer {timer} out of range 0..{self.capacity - 1}")
        return 0

    def schedule(self, int32_t timer, int64_t deadline):
        """Arm (or re-arm) a timer for `deadline` microseconds."""
        self.check_timer(timer)
        if deadline < 0:
            raise ValueError("deadline must be >= 0")
        self.schedule_c(timer, deadline)

    def cancel(self, int32_t timer):
        """Disarm a timer; returns whether it was armed."""
        self.check_timer(timer)
        return self.cancel_c(timer)

    def deadline(self, int32_t timer):
        self.check_timer(timer)
        return self.timers[timer].deadline if self.timers[timer].slot != -1 else None

    def expire(self, int64_t now):
        """Ids of all timers due at `now`, ordered by deadline (then id)."""
        cdef Py_ssize_t n = self.expire_c(now)
        return [self.due[i] for i in range(n)]

    def next_deadline(self):
        cdef int64_t d = self.next_deadline_c()
        return None if d < 0 else d

    def wakeup(self):
        """When to call expire() next: never after the earliest deadline, maybe before."""
        cdef int64_t d = self.wakeup_c()
        return None if d < 0 else d

    def __len__(self):
        return self.scheduled
