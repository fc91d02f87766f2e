# Hierarchical timer wheel for the engine: integer timer ids, microsecond
# deadlines, O(1) schedule/cancel, batched expiry.

from libc.stdint cimport int32_t, int64_t

cdef enum:
    WHEEL_TICK_SHIFT = 10           # level-0 slot = 1024 us
    WHEEL_L0_SIZE = 256
    WHEEL_LN_SIZE = 64
    WHEEL_LEVELS = 4                # upper levels; span 2^(8 + 6*4) ticks ~ 51 days
    WHEEL_NSLOTS = 256 + 4 * 64


# One struct per timer: a reschedule touches one cache line per timer
# instead of one per array (it matters at 100,000 instances).
ctypedef struct wtimer_t:
    int64_t deadline
    int32_t next
    int32_t prev
    int32_t slot                   # -1 when the timer is not scheduled


cdef class TimerWheel:
    cdef wtimer_t *timers
    cdef int32_t heads[WHEEL_NSLOTS]
    cdef int64_t tick              # current level-0 tick (cascades done up to it)
    cdef int32_t *due              # output of expire_c()
    cdef Py_ssize_t level0_count
    cdef int64_t hint              # <= every scheduled deadline when > expired_through
    cdef int64_t expired_through   # the last `now` given to expire_c()
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t scheduled

    cdef void schedule_c(self, int32_t timer, int64_t deadline) noexcept nogil
    cdef bint cancel_c(self, int32_t timer) noexcept nogil
    cdef Py_ssize_t expire_c(self, int64_t now) noexcept nogil
    cdef int64_t next_deadline_c(self) noexcept nogil
    cdef int64_t wakeup_c(self) noexcept nogil
    cdef void link(self, int32_t timer) noexcept nogil
    cdef void unlink(self, int32_t timer) noexcept nogil
    cdef void cascade(self, int32_t slot) noexcept nogil
    cdef void cascade_from(self, int64_t t) noexcept nogil
    cdef Py_ssize_t drain(self, int32_t slot, int64_t now, Py_ssize_t n) noexcept nogil
    cdef int64_t slot_min(self, int32_t slot) noexcept nogil
    cdef int check_timer(self, timer) except -1
