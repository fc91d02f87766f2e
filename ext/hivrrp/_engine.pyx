# cython: language_level=3
"""The VRRP engine: RFC 3768 / RFC 9568 state machine with keepalived's choices.

Sans-IO: `now` (integer microseconds) is an argument, datagrams come in as an
RxBatch and adverts go out through a TX arena. Everything per packet and per
timer runs in C without the GIL; Python sees only the rare events
(transitions) and reads counters when it wants them.
"""

import ipaddress
import os

cimport cython
from cpython.buffer cimport PyBUF_WRITABLE
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset

from hivrrp._wheel cimport TimerWheel
from hivrrp._wire cimport (
    CK_OK_NO_PSEUDO, CK_OK_PSEUDO, HAVE_HEADER, HAVE_IP, IPV4_HDR_LEN, R_CHECKSUM, R_INTERVAL,
    R_LENGTH, R_NREASONS, R_OK, R_TTL, R_TYPE, R_VERSION, VRRP_AUTH_LEN, VRRP_HDR_LEN,
    VRRP_TYPE_ADVERT, AdvertTable, RxBatch, addr_len, advert_refresh, rx_slot_t, vrrp_adv_t,
)

from hivrrp._wire import REASONS as DROP_REASONS

STATES = ("INIT", "BACKUP", "MASTER", "FAULT")
EVENT_REASONS = (
    "start", "owner", "master_down", "preempt", "released", "higher_priority",
    "fault", "fault_cleared", "stop", "rx_lower_priority", "priority", "sync_group", "admin",
    "want_master", "leader", "follow_refresh",
)
assert len(EVENT_REASONS) == EV_NREASONS
# Counter names follow keepalived's stats file (vrrp_print.c), snake_cased, plus
# which reading of the v3/IPv4 checksum peers use.
COUNTERS = (
    "adverts_received", "checksum_pseudo_header_received",
    "checksum_no_pseudo_header_received", "adverts_sent", "became_master", "released_master",
    "packet_length_errors", "ip_ttl_errors", "invalid_type_received",
    "advert_interval_errors", "address_list_errors", "auth_invalid_type",
    "auth_type_mismatch", "auth_failure", "priority_zero_received", "priority_zero_sent",
    "owner_ignored_adverts", "follow_mismatch", "leader_transitions",
)
assert len(COUNTERS) == C_NCOUNTERS

# Reasons an instance is in FAULT, bit -> label (labels become metric labels).
FAULT_REASONS = {
    FAULT_INTERFACE: "interface", FAULT_TRACKER: "tracker", FAULT_NO_SOURCE: "no_source",
    FAULT_CONFIG: "config", FAULT_SYNC_GROUP: "sync_group", FAULT_ADMIN: "admin",
}
assert sum(FAULT_REASONS) == FAULT_ALL
# A cdef enum is invisible to Python; export each bit under its C name so the
# two cannot drift apart.
globals().update({"FAULT_" + label.upper(): bit for bit, label in FAULT_REASONS.items()})
# force() reasons: label -> (event reason, the FAULT bit a forced FAULT sets)
cdef dict FORCE_REASONS = {
    "sync_group": (EV_SYNC_GROUP, FAULT_SYNC_GROUP), "admin": (EV_ADMIN, FAULT_ADMIN),
}


def fault_reasons(unsigned int flags):
    """The labels of the FAULT bits set in `flags`, lowest bit first."""
    return [label for bit, label in FAULT_REASONS.items() if flags & bit]

# Labels of drop records' reasons, by code (_engine.pxd D_*; "" for unused codes).
DROP_RECORD_REASONS = DROP_REASONS + ("",) * (D_UNKNOWN_VRID - R_NREASONS) + (
    "unknown_vrid", "version_mismatch", "auth_invalid_type", "auth_type_mismatch",
    "auth_failure", "interval_mismatch", "address_count", "address_list", "not_peer",
    "not_group", "owner", "follow_mismatch",
)
assert len(DROP_RECORD_REASONS) == D_NREASONS
# Drop records an engine keeps allocated across windows; a burst beyond this
# is handed back when its window ends.
cdef Py_ssize_t DROP_RECORDS_KEPT = 64

cdef uint8_t ZERO16[16]
memset(ZERO16, 0, 16)
cdef int64_t SECOND = 1000000
cdef int64_t CENTISECOND = 10000


cdef inline int64_t refresh_offset(int32_t i, int64_t period) noexcept nogil:
    """When in its period a follower that just became master sends its first
    refresh: spread over the period by a multiplicative hash of its index, so
    that the followers of a leader (which move in the same call) do not all
    refresh in the same tick, period after period."""
    cdef uint64_t h = <uint64_t>(i + 1) * 11400714819323198485ULL
    return <int64_t>(<double>(h >> 11) * (1.0 / 9007199254740992.0) * <double>period)


cdef int64_t REFRESH_SLOT = 250000


cdef inline int64_t refresh_slot(int64_t t) noexcept nogil:
    """`t` moved up to the refresh grid (every REFRESH_SLOT of the engine's
    clock). The refreshes spread over a period still wake the loop, and the
    peer's, once per refresh when each keeps its own microsecond: 10,000
    followers at 60 s were 166 wake-ups a second on either side, half the
    master's CPU and a third of the backup's. On the grid they go in 4
    bursts a second, each at most 250 ms after its time (periods are >= 1 s)."""
    return (t + REFRESH_SLOT - 1) // REFRESH_SLOT * REFRESH_SLOT


cdef inline uint32_t ifindex_hash(int32_t ifindex) noexcept nogil:
    return <uint32_t>ifindex * 2654435761U


cdef inline void forget_master(inst_t *inst) noexcept nogil:
    """No master known: our own interval until one advertises (RFC 9568 6.4.2)."""
    inst.master_adver_int_us = inst.adver_int_us
    memset(inst.master_src, 0, 16)
    inst.master_priority = 0


# Random per process: the senders are the attacker's to choose, and with a
# fixed hash a few thousand crafted ones fell in one probe run (22x the cost
# per drop, found by review).
cdef uint32_t DROP_SEED = int.from_bytes(os.urandom(4), "little")


cdef inline uint32_t drop_hash(const drop_t *d) noexcept nogil:
    # The record's key: instance, interface (for drops of no instance),
    # reason, family, sender.
    cdef uint32_t h = (<uint32_t>d.instance ^ DROP_SEED) * 2654435761U
    cdef uint32_t word
    cdef int k
    h = (h ^ <uint32_t>(d.ifindex if d.instance < 0 else 0)) * 16777619U
    h = (h ^ (<uint32_t>d.reason << 8 | d.family)) * 16777619U
    for k in range(0, 16, 4):
        memcpy(&word, d.sender + k, 4)
        h = (h ^ word ^ DROP_SEED) * 16777619U
    return h ^ (h >> 15)


cdef inline bint drop_same(const drop_t *a, const drop_t *b) noexcept nogil:
    return (a.instance == b.instance and a.reason == b.reason and a.family == b.family
            and (a.instance >= 0 or a.ifindex == b.ifindex)
            and memcmp(a.sender, b.sender, 16) == 0)


cdef inline int first_absent(const uint8_t *xs, int nx, const uint8_t *ys, int ny,
                             uint16_t alen) noexcept nogil:
    # The index of the first of the nx addresses at xs that is not among the
    # ny at ys, or -1: O(nx * ny) over a few VIPs.
    cdef int a, b
    for a in range(nx):
        for b in range(ny):
            if memcmp(xs + a * alen, ys + b * alen, alen) == 0:
                break
        else:
            return a
    return -1


cdef bytes packed(object addr, int family, str what):
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if ip.version != family:
        raise ValueError(f"{what}: {addr} is not an IPv{family} address")
    return ip.packed


@cython.final
cdef class _Table:
    """A read-only C array exported through the buffer protocol. memoryview()
    of a bytearray cannot have a zero-length dimension; an engine with no
    instances must still give shape (0, len(COUNTERS))."""
    cdef char *data
    cdef Py_ssize_t shape[2]
    cdef Py_ssize_t strides[2]
    cdef int ndim
    cdef Py_ssize_t itemsize
    cdef bytes format

    @staticmethod
    cdef _Table new(Py_ssize_t rows, Py_ssize_t columns, Py_ssize_t itemsize, bytes format):
        """rows x columns items (columns 0: one dimension), zero-filled."""
        cdef _Table table = _Table.__new__(_Table)
        table.data = <char *>calloc(max(1, rows * max(1, columns)), itemsize)
        if table.data == NULL:
            raise MemoryError()
        table.ndim = 2 if columns else 1
        table.shape[0], table.shape[1] = rows, columns
        table.strides[0], table.strides[1] = max(1, columns) * itemsize, itemsize
        table.itemsize = itemsize
        table.format = format
        return table

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        if flags & PyBUF_WRITABLE:
            raise BufferError("a snapshot is read-only")
        buffer.buf = self.data
        buffer.obj = self
        buffer.len = self.shape[0] * max(1, self.shape[1]) * self.itemsize
        buffer.readonly = 1
        buffer.itemsize = self.itemsize
        buffer.format = self.format
        buffer.ndim = self.ndim
        buffer.shape = self.shape
        buffer.strides = self.strides
        buffer.suboffsets = NULL
        buffer.internal = NULL

    def __releasebuffer__(self, Py_buffer *buffer):
        pass

    def __dealloc__(self):
        free(self.data)


cdef class Engine:
    """A table of VRRP instances driven by received datagrams and the clock."""

    def __cinit__(self, Py_ssize_t capacity, int64_t now=0):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.count = 0
        self.insts = <inst_t *>calloc(capacity, sizeof(inst_t))
        self.if_mask = 15
        self.if_keys = <int32_t *>malloc(16 * sizeof(int32_t))
        self.if_numbers = <int32_t *>malloc(16 * sizeof(int32_t))
        self.vrid_heads = NULL
        self.n_interfaces = 0
        self.tx_cap = 256
        self.tx = <tx_t *>malloc(self.tx_cap * sizeof(tx_t))
        self.tx_arena_cap = 65536
        self.tx_arena = <uint8_t *>malloc(self.tx_arena_cap)
        self.event_cap = 64
        self.evq = <event_t *>malloc(self.event_cap * sizeof(event_t))
        self.deferred = NULL
        self.deferred_count = self.deferred_cap = 0
        self.leading = -1
        if (self.insts == NULL or self.if_keys == NULL or self.if_numbers == NULL or self.tx == NULL
                or self.tx_arena == NULL or self.evq == NULL):
            raise MemoryError()
        for i in range(16):
            self.if_keys[i] = -1
        self.wheel = TimerWheel(capacity, now)
        self.adverts = AdvertTable(capacity)
        self.advert_dst = NULL
        self.peer_addrs = NULL
        self.peers_used = 0
        self.peers_cap = 0
        memset(self.drops, 0, sizeof(self.drops))
        self.if_drops = <uint64_t *>calloc(IF_DROP_COLUMNS, sizeof(uint64_t))
        if self.if_drops == NULL:
            raise MemoryError()
        # Made at the first drop: an engine that drops nothing holds none.
        self.drop_records = NULL
        self.drop_slots = NULL
        self.drop_count = self.drop_cap = self.drop_taken = 0
        # Enough for every instance to have one kind of drop in a window, so
        # that a mass misconfiguration names every instance, not only the
        # first few hundred to drop an advert.
        self.drop_limit = capacity + DROP_RECORDS_KEPT
        self.drops_unrecorded = 0

    def __dealloc__(self):
        free(self.drop_records)
        free(self.drop_slots)
        free(self.if_drops)
        free(self.insts)
        free(self.if_keys)
        free(self.if_numbers)
        free(self.vrid_heads)
        free(self.tx)
        free(self.tx_arena)
        free(self.evq)
        free(self.deferred)
        free(self.advert_dst)
        free(self.peer_addrs)

    # ------------------------------------------------------------ set-up

    def add_instance(self, *, int vrid, int ifindex, src, int family=4, int version=2,
                     int priority=100, int interval_cs=100, bint preempt=True,
                     double preempt_delay=0.0, group=None, peers=(), addresses=(),
                     int auth_type=0, auth_data=b"", int down_timer_adverts=3,
                     bint lower_prio_no_advert=False, bint higher_prio_send_advert=False,
                     bint pseudo_header=True, bint track_link=True,
                     bint owner_ignore_adverts=False):
        """Configure one instance (not started); returns its index.

        src is the primary address (advert source, tie-break); peers makes it
        unicast (one advert per peer). track_link=False (keepalived's
        dont_track_primary): set_interface() leaves it alone.
        owner_ignore_adverts: while its priority is 255 it drops every advert
        it receives (keepalived 2.3.3's, on by default in strict mode). Values arrive
        validated by the config layer; this re-checks only what would corrupt
        the engine.
        """
        cdef inst_t *inst
        cdef Py_ssize_t i = self.count
        cdef int32_t number
        cdef int32_t *head
        peers = list(peers)
        if i >= self.capacity:
            raise ValueError(f"engine is full ({self.capacity} instances)")
        if family not in (4, 6) or version not in (2, 3) or (version == 2 and family == 6):
            raise ValueError("VRRPv2 over IPv4, or VRRPv3 over IPv4/IPv6")
        if not 1 <= vrid <= 255 or not 1 <= priority <= 255 or ifindex < 0:
            raise ValueError("vrid and priority are 1..255, ifindex >= 0")
        if version == 2 and (interval_cs % 100 or not 100 <= interval_cs <= 25500):
            raise ValueError("a v2 interval is whole seconds, 1..255")
        if version == 3 and not 1 <= interval_cs <= 4095:
            raise ValueError("a v3 interval is 1..4095 centiseconds")
        if not 1 <= down_timer_adverts <= 100 or not 0 <= preempt_delay <= 1000:
            raise ValueError("down_timer_adverts is 1..100, preempt_delay 0..1000 s")
        if auth_type not in (0, 1) or (auth_type and version != 2):
            raise ValueError("authentication is none or PASS, and v2 only")
        src_packed = packed(src, family, "src")
        if group is None:
            group = "224.0.0.18" if family == 4 else "ff02::12"
        group_packed = packed(group, family, "group")
        dsts = [packed(p, family, "peer") for p in peers] or [group_packed]
        interval_field = interval_cs // 100 if version == 2 else interval_cs
        first = len(self.adverts)
        self.grow_adverts(first + len(dsts))
        for dst in dsts:
            k = self.adverts.add(version=version, vrid=vrid, priority=priority,
                                 interval=interval_field, addresses=addresses, family=family,
                                 src=src_packed, dst=dst, auth_type=auth_type,
                                 auth_data=auth_data, pseudo_header=pseudo_header)
            memset(self.advert_dst[k], 0, 16)
            memcpy(self.advert_dst[k], <const char *>dst, len(dst))
        if peers:
            self.grow_peers(self.peers_used + len(dsts))

        inst = &self.insts[i]
        memset(inst, 0, sizeof(inst_t))
        inst.state = ST_INIT
        inst.version = version
        inst.family = family
        inst.vrid = vrid
        inst.base_priority = priority
        inst.effective_priority = priority
        inst.auth_type = auth_type
        auth8 = bytes(auth_data).ljust(8, b"\0")[:8]
        memcpy(inst.auth_data, <const char *>auth8, 8)
        inst.down_timer_adverts = down_timer_adverts
        inst.ifindex = ifindex
        inst.advert_first = first
        inst.advert_count = len(dsts)
        inst.adver_int_us = interval_cs * CENTISECOND
        inst.master_adver_int_us = inst.adver_int_us
        inst.preempt_delay_us = <int64_t>(preempt_delay * SECOND)
        memcpy(inst.src, <const char *>src_packed, len(src_packed))
        memcpy(inst.group, <const char *>group_packed, len(group_packed))
        inst.leader = inst.first_follower = inst.last_follower = inst.next_follower = -1
        inst.flags = ((F_PREEMPT if preempt else 0)
                      | (F_LOWER_PRIO_NO_ADVERT if lower_prio_no_advert else 0)
                      | (F_HIGHER_PRIO_SEND_ADVERT if higher_prio_send_advert else 0)
                      | (F_UNICAST if peers else 0)
                      | (0 if track_link else F_IGNORE_LINK)
                      | (F_OWNER_IGNORE_ADVERTS if owner_ignore_adverts else 0))
        if peers:
            inst.peer_first = self.peers_used
            inst.peer_count = len(dsts)
            for n, dst in enumerate(dsts):
                memcpy(self.peer_addrs[self.peers_used + n], <const char *>dst, len(dst))
            self.peers_used += len(dsts)

        number = self.interface_number(ifindex)
        if number < 0:
            number = self.add_interface(ifindex)
        head = &self.vrid_heads[(number * 2 + (family == 6)) * 256 + vrid]
        # Same (interface, family, VRID) twice is legal for unicast instances
        # with other peers; the config layer rejects the rest. Chain them.
        inst.next_same_key = head[0]
        head[0] = i
        self.count += 1
        return i

    cdef int32_t interface_number(self, int32_t ifindex) noexcept nogil:
        cdef uint32_t slot = ifindex_hash(ifindex) & self.if_mask
        while self.if_keys[slot] != -1:
            if self.if_keys[slot] == ifindex:
                return self.if_numbers[slot]
            slot = (slot + 1) & self.if_mask
        return -1

    cdef int32_t add_interface(self, int32_t ifindex) except -1:
        cdef int32_t number = self.n_interfaces
        cdef uint32_t size = self.if_mask + 1, slot, k
        cdef int32_t *keys
        cdef int32_t *numbers
        cdef void *p
        if 2 * (number + 1) > <int32_t>size:
            # Keep the table at most half full: double it and re-insert.
            keys, numbers = self.if_keys, self.if_numbers
            self.if_keys = <int32_t *>malloc(2 * size * sizeof(int32_t))
            self.if_numbers = <int32_t *>malloc(2 * size * sizeof(int32_t))
            if self.if_keys == NULL or self.if_numbers == NULL:
                raise MemoryError()
            self.if_mask = 2 * size - 1
            for k in range(2 * size):
                self.if_keys[k] = -1
            for k in range(size):
                if keys[k] != -1:
                    slot = ifindex_hash(keys[k]) & self.if_mask
                    while self.if_keys[slot] != -1:
                        slot = (slot + 1) & self.if_mask
                    self.if_keys[slot] = keys[k]
                    self.if_numbers[slot] = numbers[k]
            free(keys)
            free(numbers)
        slot = ifindex_hash(ifindex) & self.if_mask
        while self.if_keys[slot] != -1:
            slot = (slot + 1) & self.if_mask
        self.if_keys[slot] = ifindex
        self.if_numbers[slot] = number
        p = realloc(self.vrid_heads, (number + 1) * 512 * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        self.vrid_heads = <int32_t *>p
        for k in range(512):
            self.vrid_heads[number * 512 + k] = -1
        p = realloc(self.if_drops, (number + 2) * IF_DROP_COLUMNS * sizeof(uint64_t))
        if p == NULL:
            raise MemoryError()
        self.if_drops = <uint64_t *>p
        memset(self.if_drops + (number + 1) * IF_DROP_COLUMNS, 0,
               IF_DROP_COLUMNS * sizeof(uint64_t))
        self.n_interfaces += 1
        return number

    cdef int grow_adverts(self, Py_ssize_t needed) except -1:
        cdef void *p
        if needed > self.adverts.capacity:
            self.adverts.reserve(max(needed, 2 * self.adverts.capacity))
        p = realloc(self.advert_dst, self.adverts.capacity * 16)
        if p == NULL:
            raise MemoryError()
        self.advert_dst = <uint8_t (*)[16]>p
        return 0

    cdef int grow_peers(self, Py_ssize_t needed) except -1:
        cdef void *p
        if needed <= self.peers_cap:
            return 0
        self.peers_cap = max(needed, 2 * self.peers_cap, 16)
        p = realloc(self.peer_addrs, self.peers_cap * 16)
        if p == NULL:
            raise MemoryError()
        self.peer_addrs = <uint8_t (*)[16]>p
        return 0

    # ------------------------------------------------------------ timing

    cdef int64_t skew_us(self, inst_t *inst) noexcept nogil:
        # RFC 3768: (256 - Priority) / 256 s; RFC 9568 scales it by the
        # master's interval. Integer microseconds, as keepalived computes it.
        cdef int64_t unit = SECOND if inst.version == 2 else inst.master_adver_int_us
        return (256 - inst.effective_priority) * unit // 256

    cdef int64_t master_down_us(self, inst_t *inst) noexcept nogil:
        cdef int64_t interval = (inst.adver_int_us if inst.version == 2
                                 else inst.master_adver_int_us)
        return inst.down_timer_adverts * interval + self.skew_us(inst)

    # ---------------------------------------------------------- priority

    cdef uint8_t target_priority(self, inst_t *inst) noexcept nogil:
        # keepalived vrrp_set_effective_priority(): an owner is never changed
        # by tracking, and only an owner may advertise 255.
        cdef int64_t total = <int64_t>inst.base_priority + inst.priority_delta
        if inst.base_priority == 255:
            return 255
        return <uint8_t>(1 if total < 1 else (254 if total > 254 else total))

    cdef void apply_priority(self, int32_t i, int64_t now) noexcept nogil:
        """Make the effective priority follow base + delta after either changed."""
        cdef inst_t *inst = &self.insts[i]
        cdef uint8_t effective = self.target_priority(inst)
        cdef int64_t old_skew, deadline
        if effective == inst.effective_priority:
            return
        old_skew = self.skew_us(inst)
        inst.effective_priority = effective
        self.event(i, inst.state, inst.state, EV_PRIORITY, now)
        if inst.state != ST_BACKUP or inst.flags & F_FOLLOWER:
            # A master's next advert carries it; INIT/FAULT use it when they
            # come up; a follower's only shows in its refresh adverts.
            return
        if effective == 255:
            # Became the address owner: an owner does not wait for a master
            # to go silent (RFC Initialize; our choice where keepalived keeps
            # the old effective priority until a restart).
            self.become_master(i, now, EV_OWNER)
        elif self.wheel.timers[i].slot != -1:
            # Skew depends on our priority: move the pending deadline with it,
            # as keepalived does with sands.
            deadline = self.wheel.timers[i].deadline + self.skew_us(inst) - old_skew
            self.wheel.schedule_c(i, deadline if deadline > now else now)

    # ----------------------------------------------------------- outputs

    cdef void event(self, int32_t i, uint8_t old_state, uint8_t new_state, uint8_t reason,
                    int64_t now) noexcept nogil:
        cdef void *p
        cdef event_t *e
        cdef bint room = True
        if self.event_count == self.event_cap:
            p = realloc(self.evq, 2 * self.event_cap * sizeof(event_t))
            if p == NULL:
                self.output_overflow += 1
                room = False
            else:
                self.evq = <event_t *>p
                self.event_cap *= 2
        if room:
            e = &self.evq[self.event_count]
            e.instance = i
            e.old_state = old_state
            e.new_state = new_state
            e.reason = reason
            e.time = now
            e.master_priority = self.insts[i].master_priority
            e.our_priority = self.insts[i].effective_priority
            e.by_leader = self.leading >= 0
            memcpy(e.master_src, self.insts[i].master_src, 16)
            self.event_count += 1
        if old_state != new_state:
            self.insts[i].last_transition = now
            if self.leading >= 0:
                self.insts[i].counters[C_LEADER_TRANSITIONS] += 1
            elif self.insts[i].first_follower != -1:
                # Its followers move in this call (an event lost for want of
                # memory must not leave them behind), their events right after its own.
                self.lead(i, now)

    cdef void send(self, int32_t i, uint8_t priority) noexcept nogil:
        cdef inst_t *inst = &self.insts[i]
        cdef uint16_t interval = <uint16_t>(inst.adver_int_us // SECOND if inst.version == 2
                                            else inst.adver_int_us // CENTISECOND)
        cdef int32_t k
        cdef tx_t *t
        cdef void *p
        for k in range(inst.advert_first, inst.advert_first + inst.advert_count):
            advert_refresh(&self.adverts.adverts[k], priority, interval)
            if self.tx_count == self.tx_cap:
                p = realloc(self.tx, 2 * self.tx_cap * sizeof(tx_t))
                if p == NULL:
                    self.output_overflow += 1
                    return
                self.tx = <tx_t *>p
                self.tx_cap *= 2
            if self.tx_used + self.adverts.adverts[k].len > self.tx_arena_cap:
                p = realloc(self.tx_arena, 2 * self.tx_arena_cap)
                if p == NULL:
                    self.output_overflow += 1
                    return
                self.tx_arena = <uint8_t *>p
                self.tx_arena_cap *= 2
            t = &self.tx[self.tx_count]
            t.ifindex = inst.ifindex
            t.instance = i
            t.family = inst.family
            t.len = self.adverts.adverts[k].len
            t.offset = <uint32_t>self.tx_used
            memcpy(t.src, inst.src, 16)
            memcpy(t.dst, self.advert_dst[k], 16)
            memcpy(self.tx_arena + self.tx_used, self.adverts.adverts[k].msg, t.len)
            self.tx_used += t.len
            self.tx_count += 1
        inst.counters[C_ADVERTS_TX] += 1
        if priority == 0:
            inst.counters[C_PRIORITY_ZERO_TX] += 1

    # ---------------------------------------------------- state changes

    cdef void become_master(self, int32_t i, int64_t now, uint8_t reason) noexcept nogil:
        cdef inst_t *inst = &self.insts[i]
        cdef uint8_t old = inst.state
        inst.state = ST_MASTER
        inst.flags &= ~(F_HEARD_LOWER | F_HEARD_RELEASE | F_WANTS_MASTER)
        inst.preempt_at = 0
        inst.counters[C_BECAME_MASTER] += 1
        if inst.flags & F_FOLLOWER:
            # No advert now: its leader's adverts speak for it, and 10,000
            # followers moving at once must not queue 10,000 sends ahead of
            # their VIPs. Its first refresh comes somewhere in the period.
            if inst.follow_refresh_us > 0:
                self.schedule_refresh(i, now + refresh_offset(i, inst.follow_refresh_us))
            else:
                self.wheel.cancel_c(i)
        else:
            self.send(i, inst.effective_priority)
            self.wheel.schedule_c(i, now + inst.adver_int_us)
        self.event(i, old, ST_MASTER, reason, now)

    cdef void become_backup(self, int32_t i, int64_t now, uint8_t reason) noexcept nogil:
        cdef inst_t *inst = &self.insts[i]
        cdef uint8_t old = inst.state
        if old == ST_MASTER:
            inst.counters[C_RELEASED_MASTER] += 1
        inst.state = ST_BACKUP
        inst.flags &= ~(F_HEARD_LOWER | F_HEARD_RELEASE | F_WANTS_MASTER)
        inst.preempt_at = 0
        if inst.flags & F_FOLLOWER:
            self.wheel.cancel_c(i)       # no master-down timer: it does not elect
        else:
            self.wheel.schedule_c(i, now + self.master_down_us(inst))
        self.event(i, old, ST_BACKUP, reason, now)

    cdef void come_up(self, int32_t i, int64_t now, uint8_t reason) noexcept nogil:
        # RFC Initialize: the owner becomes master at once, others wait as
        # backup for one Master_Down_Interval at their own advert interval.
        cdef inst_t *inst = &self.insts[i]
        # Whoever was master before we went down is not known to be now.
        forget_master(inst)
        if inst.flags & F_FOLLOWER:
            # Its leader's state, now: MASTER with a master leader, else BACKUP.
            if self.insts[inst.leader].state == ST_MASTER:
                self.become_master(i, now, EV_LEADER if reason == EV_START else reason)
            else:
                self.become_backup(i, now, reason)
        elif inst.base_priority == 255:
            self.become_master(i, now, EV_OWNER)
        else:
            self.become_backup(i, now, reason)

    cdef void leave(self, int32_t i, uint8_t new_state, int64_t now, uint8_t reason) noexcept nogil:
        """To FAULT or INIT: a master first tells the backups with priority 0."""
        cdef inst_t *inst = &self.insts[i]
        cdef uint8_t old = inst.state
        if old == ST_MASTER:
            # Not a follower: its priority 0 would reach only the peer's
            # follower, which does not obey adverts; its leader's says it all.
            if not inst.flags & F_FOLLOWER:
                self.send(i, 0)
            inst.counters[C_RELEASED_MASTER] += 1
        self.wheel.cancel_c(i)
        inst.state = new_state
        inst.flags &= ~(F_HEARD_LOWER | F_HEARD_RELEASE | F_WANTS_MASTER)
        inst.preempt_at = 0
        self.event(i, old, new_state, reason, now)

    cdef void lead(self, int32_t i, int64_t now) noexcept nogil:
        """Leader i changed state: each of its followers takes the state that
        follows from it, here, in one C loop (their events queue right after
        the leader's, marked by_leader). A master leader makes its BACKUP
        followers masters; any other leader state makes its MASTER followers
        backups; one in FAULT or INIT keeps its own state (it takes its
        leader's when its fault clears, or when it starts). A leader that
        stops (shutdown, removed by a reload) stops its followers with it:
        the masters marked, then the others."""
        cdef inst_t *leader = &self.insts[i]
        cdef int32_t f = leader.first_follower
        cdef inst_t *inst
        self.leading = i
        while f != -1:
            inst = &self.insts[f]
            if leader.state == ST_MASTER:
                if inst.state == ST_BACKUP:
                    self.become_master(f, now, EV_LEADER)
            elif inst.state == ST_MASTER and leader.state == ST_INIT:
                self.leave(f, ST_INIT, now, EV_STOP)
            elif inst.state == ST_MASTER:
                self.become_backup(f, now, EV_LEADER)
            f = inst.next_follower
        self.leading = -1
        if leader.state == ST_INIT:
            # The others stop too, unmarked: a marked run is one kind of move
            # (every follower of a whole run went the same way), which the
            # daemon may then apply as one precomputed change.
            f = leader.first_follower
            while f != -1:
                if self.insts[f].state != ST_INIT:
                    self.leave(f, ST_INIT, now, EV_STOP)
                f = self.insts[f].next_follower

    cdef void align(self, int32_t i, int64_t now) noexcept nogil:
        """A running follower (BACKUP or MASTER) whose leader's state says
        otherwise takes it (a reload made it a follower, or gave it a new leader)."""
        cdef inst_t *inst = &self.insts[i]
        cdef bint master = self.insts[inst.leader].state == ST_MASTER
        if inst.state == ST_BACKUP and master:
            self.become_master(i, now, EV_LEADER)
        elif inst.state == ST_MASTER and not master:
            self.become_backup(i, now, EV_LEADER)

    # ----------------------------------------------------------- receive

    cdef int32_t lookup(self, const vrrp_adv_t *r) noexcept nogil:
        """The instance for an advert; -1 if none has its VRID here, or
        -2 - first instance when the VRID exists but not for this sender/group."""
        cdef int32_t number = self.interface_number(r.ifindex)
        cdef int32_t head, i, k
        cdef inst_t *inst
        cdef uint16_t alen = addr_len(r.family)
        if number < 0:
            return -1
        head = self.vrid_heads[(number * 2 + (r.family == 6)) * 256 + r.vrid]
        i = head
        while i != -1:
            inst = &self.insts[i]
            if inst.flags & F_UNICAST:
                for k in range(inst.peer_first, inst.peer_first + inst.peer_count):
                    if memcmp(self.peer_addrs[k], r.src, alen) == 0:
                        return i
            elif memcmp(inst.group, r.dst, alen) == 0:
                return i
            i = inst.next_same_key
        return -1 if head == -1 else -2 - head

    cdef bint addresses_match(self, inst_t *inst, const vrrp_adv_t *r,
                              const uint8_t *data) noexcept nogil:
        # keepalived compares count and membership (order-insensitive) and
        # drops on mismatch; the RFCs only ask to log. O(n^2) over a few VIPs.
        cdef const uint8_t *mine = self.adverts.adverts[inst.advert_first].msg
        return (r.count == mine[3]
                and first_absent(data + r.msg_off + VRRP_HDR_LEN, r.count,
                                 mine + VRRP_HDR_LEN, mine[3], addr_len(inst.family)) < 0)

    cdef void count_if_drop(self, int32_t ifindex, int column) noexcept nogil:
        self.if_drops[(self.interface_number(ifindex) + 1) * IF_DROP_COLUMNS + column] += 1

    cdef void rx_one(self, const vrrp_adv_t *r, const rx_slot_t *slot, int64_t now) noexcept nogil:
        cdef int32_t i = -1
        cdef inst_t *inst
        cdef const uint8_t *auth
        cdef const uint8_t *data = slot.data
        if r.reason != R_OK:
            self.drops[r.reason] += 1
            self.count_if_drop(r.ifindex, r.reason)
            if not (r.have & HAVE_HEADER):
                self.wire_drop(-1, r, slot)
                return
            i = self.lookup(r)
            if i < -1:
                i = -2 - i
            if i < 0:
                self.wire_drop(-1, r, slot)
                return
            inst = &self.insts[i]
            if r.reason == R_LENGTH:
                inst.counters[C_PACKET_LENGTH_ERRORS] += 1
            elif r.reason == R_TTL:
                inst.counters[C_IP_TTL_ERRORS] += 1
            elif r.reason == R_TYPE:
                inst.counters[C_INVALID_TYPE] += 1
            elif r.reason == R_INTERVAL:
                inst.counters[C_INTERVAL_ERRORS] += 1
            self.wire_drop(i, r, slot)
            return
        i = self.lookup(r)
        if i == -1:
            self.unknown_vrid += 1
            self.count_if_drop(r.ifindex, IF_UNKNOWN_VRID)
            self.record_drop(-1, r, D_UNKNOWN_VRID, 0, 0, NULL)
            return
        if i < -1:
            # Right VRID, wrong sender or unicast/multicast: keepalived counts
            # it as an address list error.
            i = -2 - i
            self.insts[i].counters[C_ADDRESS_LIST_ERRORS] += 1
            self.record_drop(i, r, D_NOT_PEER if self.insts[i].flags & F_UNICAST else D_NOT_GROUP,
                             0, 0, r.dst)
            return
        inst = &self.insts[i]
        if inst.state != ST_BACKUP and inst.state != ST_MASTER:
            return
        if memcmp(r.src, inst.src, addr_len(inst.family)) == 0:
            self.own_adverts += 1          # our own advert looped back
            return
        if r.version != inst.version:
            self.version_mismatch += 1
            self.count_if_drop(r.ifindex, IF_VERSION_MISMATCH)
            self.record_drop(i, r, D_VERSION_MISMATCH, r.version, inst.version, NULL)
            return
        if inst.version == 2:
            if r.auth_type > 2:
                inst.counters[C_AUTH_INVALID_TYPE] += 1
                self.record_drop(i, r, D_AUTH_INVALID_TYPE, r.auth_type, 0, NULL)
                return
            if r.auth_type != inst.auth_type:
                inst.counters[C_AUTH_TYPE_MISMATCH] += 1
                self.record_drop(i, r, D_AUTH_TYPE_MISMATCH, r.auth_type, inst.auth_type, NULL)
                return
            if inst.auth_type == 1:
                auth = data + r.msg_off + VRRP_HDR_LEN + 4 * r.count
                if memcmp(auth, inst.auth_data, 8) != 0:
                    inst.counters[C_AUTH_FAILURE] += 1
                    self.record_drop(i, r, D_AUTH_FAILURE, 0, 0, NULL)
                    return
            # v2 requires equal intervals (RFC 3768 7.1); keepalived never
            # counted this, we do.
            if r.interval * SECOND != inst.adver_int_us:
                inst.counters[C_INTERVAL_ERRORS] += 1
                self.record_drop(i, r, D_INTERVAL_MISMATCH, r.interval,
                                 <int32_t>(inst.adver_int_us // SECOND), NULL)
                return
        # keepalived 2.3.3: where its vrrp_check_packet() has checked all but
        # the addresses, before the advert counts as received.
        if inst.flags & F_OWNER_IGNORE_ADVERTS and inst.effective_priority == 255:
            inst.counters[C_OWNER_IGNORED] += 1
            self.record_drop(i, r, D_OWNER, r.priority, 255, NULL)
            return
        if not self.addresses_match(inst, r, data):
            inst.counters[C_ADDRESS_LIST_ERRORS] += 1
            self.address_drop(i, r, data)
            return
        inst.counters[C_ADVERTS_RX] += 1
        if r.checksum == CK_OK_PSEUDO:
            inst.counters[C_CHECKSUM_PSEUDO_RX] += 1
        elif r.checksum == CK_OK_NO_PSEUDO:
            inst.counters[C_CHECKSUM_NO_PSEUDO_RX] += 1
        if r.priority == 0:
            inst.counters[C_PRIORITY_ZERO_RX] += 1
        if inst.flags & F_FOLLOWER:
            self.follower_rx(i, r)
        elif inst.state == ST_BACKUP:
            self.backup_rx(i, r, now)
        else:
            self.master_rx(i, r, now)

    # ------------------------------------------------------ drop records
    # Off the valid-advert path: only a dropped advert comes here.

    cdef void wire_drop(self, int32_t i, const vrrp_adv_t *r, const rx_slot_t *slot) noexcept nogil:
        """A record for a datagram the codec rejected, with what the log needs
        to say why: received and expected length or TTL, the type, the version."""
        cdef int32_t got = 0, want = 0
        cdef uint32_t total
        if r.reason == R_LENGTH:
            if r.have & HAVE_HEADER and (r.version == 2 or r.version == 3):
                got = r.msg_len
                want = VRRP_HDR_LEN + addr_len(r.family) * r.count
                if r.version == 2:
                    want += VRRP_AUTH_LEN
            else:
                got = slot.len
                if r.family == 4 and slot.len >= IPV4_HDR_LEN:
                    total = (<uint32_t>slot.data[2] << 8) | slot.data[3]
                    want = total      # the IP header's length, more than arrived
        elif r.reason == R_TTL:
            got, want = r.ttl, slot.min_ttl
        elif r.reason == R_TYPE:
            got, want = r.type, VRRP_TYPE_ADVERT
        elif r.reason == R_VERSION:
            got = r.version
            want = self.insts[i].version if i >= 0 else 0
        elif r.reason == R_CHECKSUM:
            got = r.version
        self.record_drop(i, r, r.reason, got, want, NULL)

    cdef void address_drop(self, int32_t i, const vrrp_adv_t *r,
                           const uint8_t *data) noexcept nogil:
        """The advert's VIPs differ from ours: by count, or the first of ours
        it lacks (as keepalived names it)."""
        cdef inst_t *inst = &self.insts[i]
        cdef const uint8_t *mine = self.adverts.adverts[inst.advert_first].msg
        cdef uint16_t alen = addr_len(inst.family)
        cdef uint8_t missing[16]
        cdef int b
        if r.count != mine[3]:
            self.record_drop(i, r, D_ADDRESS_COUNT, r.count, mine[3], NULL)
            return
        memset(missing, 0, 16)
        b = first_absent(mine + VRRP_HDR_LEN, mine[3], data + r.msg_off + VRRP_HDR_LEN, r.count,
                         alen)
        if b >= 0:
            memcpy(missing, mine + VRRP_HDR_LEN + b * alen, alen)
        self.record_drop(i, r, D_ADDRESS_LIST, 0, 0, missing)

    cdef bint drop_room(self) noexcept nogil:
        """Room for one more record: grow (records x2, index kept at most half
        full) up to drop_limit. False at the limit or out of memory."""
        cdef Py_ssize_t cap, k
        cdef uint32_t slots, slot
        cdef void *p
        cdef int32_t *index
        if self.drop_count < self.drop_cap:
            return True
        if self.drop_cap >= self.drop_limit:
            return False
        cap = min(max(2 * self.drop_cap, 64), self.drop_limit)
        slots = 128
        while slots < 2 * cap:
            slots *= 2
        p = realloc(self.drop_records, cap * sizeof(drop_t))
        if p == NULL:
            return False
        self.drop_records = <drop_t *>p
        index = <int32_t *>malloc(slots * sizeof(int32_t))
        if index == NULL:
            return False
        free(self.drop_slots)
        self.drop_slots = index
        self.drop_mask = slots - 1
        self.drop_cap = cap
        memset(index, 0xff, slots * sizeof(int32_t))
        for k in range(self.drop_count):
            slot = drop_hash(&self.drop_records[k]) & self.drop_mask
            while index[slot] != -1:
                slot = (slot + 1) & self.drop_mask
            index[slot] = <int32_t>k
        return True

    cdef void record_drop(self, int32_t i, const vrrp_adv_t *r, uint8_t reason, int32_t detail0,
                          int32_t detail1, const uint8_t *addr) noexcept nogil:
        """Count a drop on its record, making the record on the kind's first
        drop; the details are the latest drop's."""
        cdef drop_t key
        cdef drop_t *d
        cdef uint32_t h, slot
        cdef int32_t k
        key.instance = i
        # An instance's drops all come in on its interface; the others are
        # told apart by the interface (drop_same, drop_hash).
        key.ifindex = r.ifindex
        key.reason = reason
        key.family = r.family
        if r.have & HAVE_IP:
            memcpy(key.sender, r.src, 16)
        else:
            memset(key.sender, 0, 16)
        h = drop_hash(&key)
        if self.drop_slots != NULL:
            slot = h & self.drop_mask
            k = self.drop_slots[slot]
            while k != -1:
                d = &self.drop_records[k]
                if drop_same(d, &key):
                    d.count += 1
                    d.detail[0], d.detail[1] = detail0, detail1
                    if addr != NULL:
                        memcpy(d.addr, addr, 16)
                    return
                slot = (slot + 1) & self.drop_mask
                k = self.drop_slots[slot]
        if not self.drop_room():
            self.drops_unrecorded += 1
            return
        slot = h & self.drop_mask   # the index may have grown
        while self.drop_slots[slot] != -1:
            slot = (slot + 1) & self.drop_mask
        k = <int32_t>self.drop_count
        self.drop_slots[slot] = k
        self.drop_count += 1
        d = &self.drop_records[k]
        d[0] = key
        d.have = r.have
        d.version = r.version if r.have & HAVE_HEADER else 0
        d.vrid = r.vrid if r.have & HAVE_HEADER else 0
        d.count = 1
        d.taken = 0
        d.detail[0], d.detail[1] = detail0, detail1
        if addr != NULL:
            memcpy(d.addr, addr, 16)
        else:
            memset(d.addr, 0, 16)

    cdef void follower_rx(self, int32_t i, const vrrp_adv_t *r) noexcept nogil:
        """A valid advert for a follower's VRID: counted like any, never obeyed.
        A backup notes the master it heard (status shows it); a master has
        heard another master of its VRID: a follow mismatch, counted and
        recorded per sender for the log (a peer that does not follow the
        same leader, or does not follow at all)."""
        cdef inst_t *inst = &self.insts[i]
        if inst.state == ST_MASTER:
            inst.counters[C_FOLLOW_MISMATCH] += 1
            self.record_drop(i, r, D_FOLLOW_MISMATCH, r.priority, inst.effective_priority, NULL)
        elif r.priority != 0:
            inst.master_priority = r.priority
            memcpy(inst.master_src, r.src, 16)

    cdef void backup_rx(self, int32_t i, const vrrp_adv_t *r, int64_t now) noexcept nogil:
        cdef inst_t *inst = &self.insts[i]
        cdef bint accept
        if r.priority == 0:
            # The master is leaving: take over after Skew_Time only.
            self.wheel.schedule_c(i, now + self.skew_us(inst))
            inst.flags |= F_HEARD_RELEASE
            return
        accept = not (inst.flags & F_PREEMPT) or r.priority >= inst.effective_priority
        if not accept and inst.preempt_delay_us > 0:
            # preempt_delay: keep deferring to a lower-priority master until
            # the delay since we first heard it has passed.
            if inst.preempt_at == 0:
                inst.preempt_at = now + inst.preempt_delay_us
            accept = now < inst.preempt_at
        if not accept:
            inst.flags |= F_HEARD_LOWER
            return
        if r.priority >= inst.effective_priority:
            inst.preempt_at = 0
        inst.flags &= ~(F_HEARD_LOWER | F_HEARD_RELEASE | F_WANTS_MASTER)
        if inst.version == 3:
            inst.master_adver_int_us = r.interval * CENTISECOND
        inst.master_priority = r.priority
        memcpy(inst.master_src, r.src, 16)
        self.wheel.schedule_c(i, now + self.master_down_us(inst))

    cdef void master_rx(self, int32_t i, const vrrp_adv_t *r, int64_t now) noexcept nogil:
        cdef inst_t *inst = &self.insts[i]
        if r.priority == 0:
            # A master leaving while we are master: re-assert at once.
            self.send(i, inst.effective_priority)
            self.wheel.schedule_c(i, now + inst.adver_int_us)
            return
        if (r.priority > inst.effective_priority
                or (r.priority == inst.effective_priority
                    and memcmp(r.src, inst.src, addr_len(inst.family)) > 0)):
            if inst.flags & F_HIGHER_PRIO_SEND_ADVERT:
                self.send(i, inst.effective_priority)
            inst.master_adver_int_us = (r.interval * CENTISECOND if inst.version == 3
                                        else inst.adver_int_us)
            inst.master_priority = r.priority
            memcpy(inst.master_src, r.src, 16)
            self.become_backup(i, now, EV_HIGHER_PRIORITY)
            return
        # A lower-priority master: RFC 9568 answers with an advert so it
        # steps down (keepalived also GARPs: the daemon does on this event).
        if not (inst.flags & F_LOWER_PRIO_NO_ADVERT):
            self.send(i, inst.effective_priority)
        self.event(i, ST_MASTER, ST_MASTER, EV_RX_LOWER_PRIORITY, now)

    cdef Py_ssize_t receive_c(self, RxBatch batch, int64_t now) noexcept nogil:
        cdef Py_ssize_t n, accepted = 0
        batch.decode_all()
        for n in range(batch.count):
            self.rx_one(&batch.results[n], &batch.slots[n], now)
            if batch.results[n].reason == R_OK:
                accepted += 1
        return accepted

    # ------------------------------------------------------------ timers

    cdef void schedule_refresh(self, int32_t i, int64_t due) noexcept nogil:
        self.insts[i].refresh_due_us = due
        self.wheel.schedule_c(i, refresh_slot(due))

    cdef void fire(self, int32_t i, int64_t deadline, int64_t now) noexcept nogil:
        cdef inst_t *inst = &self.insts[i]
        cdef int64_t following
        cdef uint8_t reason
        if inst.flags & F_FOLLOWER:
            # Its only timer: a master's refresh, one advert at its real
            # priority (the daemon adds its GARP/NA on the event).
            if inst.state == ST_MASTER and inst.follow_refresh_us > 0:
                self.send(i, inst.effective_priority)
                # From the time it was due, not the grid's: a period
                # off the grid keeps its cadence.
                following = inst.refresh_due_us + inst.follow_refresh_us
                if following <= now:
                    following = now + inst.follow_refresh_us
                self.schedule_refresh(i, following)
                self.event(i, ST_MASTER, ST_MASTER, EV_FOLLOW_REFRESH, now)
            return
        if inst.state == ST_MASTER:
            self.send(i, inst.effective_priority)
            # Keep the cadence of the original schedule (no drift), unless
            # we are so late that it would be in the past.
            following = deadline + inst.adver_int_us
            if following <= now:
                following = now + inst.adver_int_us
            self.wheel.schedule_c(i, following)
        elif inst.state == ST_BACKUP:
            if inst.flags & F_HEARD_RELEASE:
                reason = EV_RELEASED
            elif inst.flags & F_HEARD_LOWER:
                reason = EV_PREEMPT
            else:
                reason = EV_MASTER_DOWN
            if inst.flags & F_SYNC_MEMBER:
                # keepalived vrrp_sync_can_goto_master(): a member goes master
                # only with its whole group, so it says it is ready and waits
                # another Master_Down_Interval. One event per readiness, not
                # per expiry: the group decides when the last member is ready.
                self.wheel.schedule_c(i, now + self.master_down_us(inst))
                if not inst.flags & F_WANTS_MASTER:
                    inst.flags |= F_WANTS_MASTER
                    self.event(i, ST_BACKUP, ST_BACKUP, EV_WANT_MASTER, now)
                return
            self.become_master(i, now, reason)

    cdef Py_ssize_t expire_c(self, int64_t now) noexcept nogil:
        cdef Py_ssize_t n = self.wheel.expire_c(now), k
        cdef int32_t i
        for k in range(n):
            i = self.wheel.due[k]
            self.fire(i, self.wheel.timers[i].deadline, now)
        return n

    # ----------------------------------------------------- Python inputs

    cdef int check_index(self, Py_ssize_t i) except -1:
        if not 0 <= i < self.count:
            raise IndexError(f"no instance {i}")
        return 0

    # receive() and expire() keep the GIL although their work is nogil: a
    # release lasts microseconds, but hands the GIL to any busy thread (a
    # reload parsing and building on a worker) for a whole switch interval
    # (5 ms) each time; a few per wake-up stalled the loop for 300-500 ms
    # during a 4,000-instance reload.

    def receive(self, RxBatch batch, int64_t now):
        """Process a batch of received datagrams; returns how many were valid."""
        return self.receive_c(batch, now)

    def expire(self, int64_t now):
        """Run every timer due at `now`; returns how many fired."""
        return self.expire_c(now)

    def next_deadline(self):
        """When expire() must next be called (microseconds), or None."""
        return self.wheel.next_deadline()

    def wakeup(self):
        """A cheap lower bound of next_deadline(): when the daemon's timer should fire."""
        return self.wheel.wakeup()

    def start(self, Py_ssize_t i, int64_t now):
        self.check_index(i)
        if self.insts[i].state == ST_INIT:
            if self.insts[i].fault_flags:
                self.leave(<int32_t>i, ST_FAULT, now, EV_FAULT)
            else:
                self.come_up(<int32_t>i, now, EV_START)

    def stop(self, Py_ssize_t i, int64_t now):
        self.check_index(i)
        if self.insts[i].state != ST_INIT:
            self.leave(<int32_t>i, ST_INIT, now, EV_STOP)

    def start_all(self, int64_t now):
        for i in range(self.count):
            self.start(i, now)

    def stop_all(self, int64_t now):
        """Stop every instance, leaders first: each takes its followers with
        it in one call (a shutdown releases a leader's group as one move)."""
        for i in range(self.count):
            if self.insts[i].first_follower != -1:
                self.stop(i, now)
        for i in range(self.count):
            self.stop(i, now)

    def set_fault(self, Py_ssize_t i, unsigned int flag, bint active, int64_t now):
        """Set or clear FAULT reasons (FAULT_* bits); the instance is in FAULT while any is set.

        Entering FAULT from MASTER sends priority 0 (event "fault"); clearing the
        last reason brings it up as after start() (event "fault_cleared").
        """
        cdef inst_t *inst
        self.check_index(i)
        if not flag or flag & ~(<unsigned int>FAULT_ALL):
            raise ValueError(f"not a FAULT reason: {flag:#x}")
        inst = &self.insts[i]
        was = inst.fault_flags
        inst.fault_flags = (was | flag) if active else (was & ~flag)
        if not was and inst.fault_flags and inst.state in (ST_BACKUP, ST_MASTER):
            self.leave(<int32_t>i, ST_FAULT, now, EV_FAULT)
        elif was and not inst.fault_flags and inst.state == ST_FAULT:
            self.come_up(<int32_t>i, now, EV_FAULT_CLEARED)

    def set_sync_member(self, Py_ssize_t i, bint member):
        """A sync-group member does not become master on its own: when its
        master-down timer fires it emits "want_master" and stays BACKUP until
        force(i, "MASTER", ...) (see wants_master()). An address owner still
        becomes master at once, as in keepalived. A follower cannot be one."""
        self.check_index(i)
        if member and self.insts[i].flags & F_FOLLOWER:
            raise ValueError(f"instance {i} follows a leader: it cannot be in a sync group")
        if member:
            self.insts[i].flags |= F_SYNC_MEMBER
        else:
            self.insts[i].flags &= ~(F_SYNC_MEMBER | F_WANTS_MASTER)

    def wants_master(self, Py_ssize_t i):
        """True for a sync-group member in BACKUP whose master-down timer fired
        and that has accepted no advert since: it would be master on its own."""
        self.check_index(i)
        return bool(self.insts[i].flags & F_WANTS_MASTER)

    def set_interface(self, int ifindex, bint up, int64_t now):
        """Link state of an interface: its instances go to FAULT while it is down
        (not those added with track_link=False)."""
        for i in range(self.count):
            if self.insts[i].ifindex == ifindex and not self.insts[i].flags & F_IGNORE_LINK:
                self.set_fault(i, FAULT_INTERFACE, not up, now)

    def set_priority_delta(self, Py_ssize_t i, int delta, int64_t now):
        """Tracking input: the sum of tracker weights now applying to instance i.

        effective = clamp(base + delta, 1, 254); an owner (base 255) stays 255.
        The base priority is left alone. When the effective priority changes:
        event "priority"; a master advertises it from its next advert, a backup
        moves its pending master-down deadline by the change in Skew_Time.
        """
        self.check_index(i)
        self.insts[i].priority_delta = delta
        self.apply_priority(<int32_t>i, now)

    def set_base_priority(self, Py_ssize_t i, int priority, int64_t now):
        """Runtime set-priority (the configured priority, 1..255); the tracker
        delta is kept and applied on top, with the effects of set_priority_delta.

        A backup whose base becomes 255 is the address owner: it becomes master
        at once (events "priority", then "owner"). A master that stops being
        the owner advertises base + delta from its next advert.
        """
        self.check_index(i)
        if not 1 <= priority <= 255:
            raise ValueError("priority is 1..255")
        self.insts[i].base_priority = priority
        self.apply_priority(<int32_t>i, now)

    def force(self, Py_ssize_t i, str state, int64_t now, str reason):
        """Move an instance to `state` whatever the election says (sync groups,
        operators); `reason` ("sync_group" or "admin") is the event's reason.
        Returns True when the instance is in `state` on return, False when the
        request was refused. What each state does (keepalived vrrp_sync.c):

        - "MASTER" from BACKUP: become master now: advert at the effective
          priority, advert timer armed, became_master counted
          (vrrp_sync_master -> vrrp_state_goto_master). Refused from INIT and
          FAULT: a faulty or stopped instance must not own the addresses.
        - "BACKUP" from MASTER: step down *without* a priority-0 advert
          (vrrp_sync_backup -> vrrp_state_leave_master(isync, false)), so
          peers take over after their Master_Down_Interval; the master-down
          timer is armed at our own interval and the master becomes unknown.
          Refused from INIT and FAULT: leave a forced FAULT by clearing its
          bit with set_fault (it then comes up as after start()).
        - "FAULT": sets FAULT_SYNC_GROUP or FAULT_ADMIN (by `reason`) and, from
          BACKUP or MASTER, enters FAULT like set_fault does (a master sends
          priority 0, as vrrp_sync_fault -> vrrp_state_leave_master with
          wantstate FAULT does). The bit holds it there, across a reload too,
          until set_fault(i, bit, False, now). From INIT the bit is recorded,
          start() then goes to FAULT, and the call returns False.

        Already in `state`: nothing happens (no event), True. The forced state
        is not sticky: a forced master still steps down for a better advert.
        A follower (follow()) is moved only to FAULT: MASTER and BACKUP are
        its leader's to decide (False unless it is there already).
        """
        cdef inst_t *inst
        cdef uint8_t code, ev
        cdef uint32_t flag
        self.check_index(i)
        if state not in STATES[1:]:
            raise ValueError(f"force() goes to BACKUP, MASTER or FAULT, not {state!r}")
        if reason not in FORCE_REASONS:
            raise ValueError(f"force() reasons are {', '.join(FORCE_REASONS)}, not {reason!r}")
        code = STATES.index(state)
        ev, flag = FORCE_REASONS[reason]
        inst = &self.insts[i]
        if code != ST_FAULT and inst.flags & F_FOLLOWER:
            return inst.state == code     # its leader decides: move the leader
        if code == ST_FAULT:
            inst.fault_flags |= flag
            if inst.state == ST_BACKUP or inst.state == ST_MASTER:
                self.leave(<int32_t>i, ST_FAULT, now, ev)
            return inst.state == ST_FAULT
        if inst.state == code:
            return True
        if inst.state != ST_BACKUP and inst.state != ST_MASTER:
            return False
        if code == ST_MASTER:
            self.become_master(<int32_t>i, now, ev)
        else:
            # We were the master, so ours is the master interval; the next
            # master is whoever advertises first.
            forget_master(inst)
            self.become_backup(<int32_t>i, now, ev)
        return True

    def follow(self, Py_ssize_t i, Py_ssize_t leader, double refresh=60.0):
        """Make instance i a follower of `leader` (both configured, neither
        started yet). A follower takes its leader's state instead of
        electing: MASTER while the leader is MASTER, BACKUP while it is
        anything else, FAULT for its own reasons only (set_fault), and when
        those clear, its leader's state again. The leader's transitions move
        its followers in the same call (events with reason "leader", marked
        for take_events(defer_followers=True)); a leader that stops stops
        them. A follower has no master-down timer and sends no periodic
        adverts: becoming master sends nothing (its first refresh falls
        somewhere in the period), and while master it sends one advert at
        its effective priority every `refresh` seconds (0: never), each with
        a "follow_refresh" event for the daemon's GARP/NA. Leaving MASTER it
        sends no priority 0: its leader's tells the peer. Adverts received
        for it are checked and counted as usual and never obeyed; a master
        follower counts each as a follow mismatch (counter follow_mismatch,
        a drop record per sender for the log). No chains: a leader follows
        nobody, a follower leads nobody; no sync-group members."""
        cdef inst_t *inst
        cdef inst_t *head
        self.check_index(i)
        self.check_index(leader)
        inst, head = &self.insts[i], &self.insts[leader]
        if i == leader:
            raise ValueError("an instance cannot follow itself")
        if head.flags & F_FOLLOWER or inst.first_follower != -1 or inst.flags & F_FOLLOWER:
            raise ValueError("no chains: a leader follows nobody, a follower leads nobody "
                             "and follows one leader")
        if inst.flags & F_SYNC_MEMBER:
            raise ValueError(f"instance {i} is in a sync group: it cannot follow")
        if inst.state != ST_INIT:
            raise ValueError(f"instance {i} is running: make it a follower before start()")
        if not 0 <= refresh <= 86400:
            raise ValueError("refresh is 0..86400 s (0: none)")
        inst.flags |= F_FOLLOWER
        inst.leader = <int32_t>leader
        inst.follow_refresh_us = <int64_t>(refresh * SECOND)
        if head.first_follower == -1:
            head.first_follower = <int32_t>i
        else:
            self.insts[head.last_follower].next_follower = <int32_t>i
        head.last_follower = <int32_t>i
        head.follower_count += 1

    def leader(self, Py_ssize_t i):
        """The index of the instance i follows, None if it elects on its own."""
        self.check_index(i)
        return None if self.insts[i].leader < 0 else self.insts[i].leader

    def followers(self, Py_ssize_t i):
        """The indexes of i's followers, in the order they were added."""
        cdef int32_t f
        self.check_index(i)
        out = []
        f = self.insts[i].first_follower
        while f != -1:
            out.append(f)
            f = self.insts[f].next_follower
        return out

    def follower_count(self, Py_ssize_t i):
        self.check_index(i)
        return self.insts[i].follower_count

    def snapshot(self, Py_ssize_t i):
        """An instance's runtime state, for carrying it across a reload (opaque)."""
        cdef inst_t *inst
        self.check_index(i)
        inst = &self.insts[i]
        return (inst.state, self.wheel.deadline(i), inst.master_adver_int_us, inst.preempt_at,
                inst.flags & (F_HEARD_LOWER | F_HEARD_RELEASE | F_FOLLOWER), inst.master_priority,
                bytes(inst.master_src[:16]), tuple(inst.counters[k] for k in range(C_NCOUNTERS)),
                inst.last_transition, inst.priority_delta, inst.fault_flags & FAULT_CARRIED,
                inst.effective_priority)

    def restore(self, Py_ssize_t i, snapshot, int64_t now):
        """Continue an instance where snapshot() left it: same state, same timer,
        no advert (a reload must not flap anything). Call it on an instance
        freshly configured by add_instance, before set_fault and start().

        Carried over: the tracker delta and the FAULT bits only runtime inputs
        set (FAULT_TRACKER, FAULT_SYNC_GROUP, FAULT_ADMIN). FAULT_INTERFACE,
        FAULT_NO_SOURCE and FAULT_CONFIG are not: the daemon re-derives them
        from the new config and the links with set_fault. The base priority is
        the new config's, so effective = clamp(new base + carried delta).

        A FAULT or INIT snapshot, or one with carried FAULT bits, comes back as
        INIT for the caller to start() (to FAULT while a bit is set); a MASTER
        with carried bits (not reachable through this API) is restored and
        sent to FAULT at once, with priority 0 and a "fault" event, so nobody
        keeps addresses a faulty instance should not hold.

        Events only for what the new config changed: "priority" when the
        effective priority differs from the old one (a backup's deadline
        moves with Skew_Time), and "owner" when a restored backup is now the
        address owner (base 255): it becomes master at once.
        """
        cdef uint64_t counter_values[C_NCOUNTERS]
        self.check_index(i)
        try:
            (state, timer, master_interval, preempt_at, heard, master_priority, master_src,
             counters, last_transition, delta, carried, effective) = snapshot
        except (TypeError, ValueError):
            raise ValueError("bad snapshot") from None
        if (state not in (ST_INIT, ST_BACKUP, ST_MASTER, ST_FAULT) or not 1 <= effective <= 255
                or len(master_src) != 16 or len(counters) != C_NCOUNTERS):
            raise ValueError("bad snapshot")
        for k in range(C_NCOUNTERS):
            counter_values[k] = counters[k]
        self.restore_c(<int32_t>i, state, -1 if timer is None else timer, master_interval,
                       preempt_at, heard, master_priority, master_src, counter_values,
                       last_transition, delta, carried, effective, now)

    def carry(self, Engine old, const int32_t[:] new_indexes, const int32_t[:] old_indexes,
              int64_t now):
        """restore(new_indexes[k], old.snapshot(old_indexes[k]), now) for every k,
        in one call and without a Python object per instance: a reload of
        4,000 instances spent 13 ms of the loop's time in snapshot/restore."""
        cdef Py_ssize_t k
        cdef int32_t i, j
        cdef inst_t *src
        if new_indexes.shape[0] != old_indexes.shape[0]:
            raise ValueError("index arrays differ in length")
        for k in range(new_indexes.shape[0]):
            i, j = new_indexes[k], old_indexes[k]
            self.check_index(i)
            old.check_index(j)
        for k in range(new_indexes.shape[0]):
            i, j = new_indexes[k], old_indexes[k]
            src = &old.insts[j]
            # A follower's refresh is carried as it was due, before the grid
            # moved it: carried as the slot, each reload made it up to 250 ms later.
            self.restore_c(i, src.state,
                           -1 if old.wheel.timers[j].slot == -1
                           else src.refresh_due_us if src.flags & F_FOLLOWER
                           else old.wheel.timers[j].deadline,
                           src.master_adver_int_us, src.preempt_at,
                           src.flags & (F_HEARD_LOWER | F_HEARD_RELEASE | F_FOLLOWER),
                           src.master_priority, src.master_src, src.counters,
                           src.last_transition, src.priority_delta,
                           src.fault_flags & FAULT_CARRIED, src.effective_priority, now)
        self.align_followers(now)

    def align_followers(self, int64_t now):
        """Every running follower takes its leader's state (carry() does it;
        after restore() of single instances, call it once they all are)."""
        cdef Py_ssize_t i
        for i in range(self.count):
            if self.insts[i].flags & F_FOLLOWER:
                self.align(<int32_t>i, now)

    cdef void restore_c(self, int32_t i, uint8_t state, int64_t timer, int64_t master_interval,
                        int64_t preempt_at, uint16_t heard, uint8_t master_priority,
                        const uint8_t *master_src, const uint64_t *counters,
                        int64_t last_transition, int32_t delta, uint32_t carried,
                        uint8_t effective, int64_t now) noexcept nogil:
        cdef inst_t *inst = &self.insts[i]
        cdef int64_t deadline
        cdef bint faulty_master
        cdef bint was_follower = heard & F_FOLLOWER
        heard &= F_HEARD_LOWER | F_HEARD_RELEASE
        carried &= FAULT_CARRIED
        faulty_master = state == ST_MASTER and carried != 0
        if (state != ST_BACKUP and state != ST_MASTER) or (carried and not faulty_master):
            # FAULT and INIT are re-derived by start(): the reasons may have changed.
            state = ST_INIT
        inst.state = state
        inst.priority_delta = delta
        inst.fault_flags |= carried
        inst.master_adver_int_us = (master_interval if inst.version == 3
                                    else inst.adver_int_us)
        inst.preempt_at = preempt_at
        inst.flags = (inst.flags & ~(F_HEARD_LOWER | F_HEARD_RELEASE)) | heard
        inst.master_priority = master_priority
        memcpy(inst.master_src, master_src, 16)
        memcpy(inst.counters, counters, C_NCOUNTERS * sizeof(uint64_t))
        inst.last_transition = last_transition
        if state != ST_BACKUP and state != ST_MASTER:
            inst.effective_priority = self.target_priority(inst)
            self.wheel.cancel_c(i)
            return
        if inst.flags & F_FOLLOWER:
            # A follower's only timer is a master's refresh: its own, if it
            # followed before (no later than the new period allows), else
            # one spread over the period. align_followers() then gives it
            # its leader's state.
            if state == ST_BACKUP or inst.follow_refresh_us == 0:
                self.wheel.cancel_c(i)
            elif was_follower and timer >= 0:
                self.schedule_refresh(i, min(timer, now + inst.follow_refresh_us))
            else:
                self.schedule_refresh(i, now + refresh_offset(i, inst.follow_refresh_us))
        elif was_follower:
            # No longer a follower: it keeps its state and elects from now,
            # a master advertising at once (it was silent), a backup waiting
            # one Master_Down_Interval as after start.
            self.wheel.schedule_c(i, now if state == ST_MASTER
                                  else now + self.master_down_us(inst))
        else:
            deadline = timer if timer >= 0 else now
            if state == ST_MASTER and deadline > now + inst.adver_int_us:
                deadline = now + inst.adver_int_us   # the interval got shorter
            self.wheel.schedule_c(i, deadline)
        # The timer was computed with the old priority: start from it so
        # that apply_priority moves it by the Skew_Time difference.
        inst.effective_priority = effective
        self.apply_priority(i, now)
        if faulty_master:
            self.leave(i, ST_FAULT, now, EV_FAULT)

    # ---------------------------------------------------- Python outputs

    cdef object event_tuple(self, event_t *e, bint causes):
        cdef uint16_t alen
        if not causes:
            return (e.instance, STATES[e.old_state], STATES[e.new_state],
                    EVENT_REASONS[e.reason], e.time)
        alen = addr_len(self.insts[e.instance].family)
        master = (None if memcmp(e.master_src, ZERO16, alen) == 0
                  else PyBytes_FromStringAndSize(<char *>e.master_src, alen))
        return (e.instance, STATES[e.old_state], STATES[e.new_state], EVENT_REASONS[e.reason],
                e.time, (master, e.master_priority, e.our_priority))

    cdef int defer(self, event_t *e) except -1:
        cdef void *p
        if self.deferred_count == self.deferred_cap:
            self.deferred_cap = max(64, 2 * self.deferred_cap)
            p = realloc(self.deferred, self.deferred_cap * sizeof(event_t))
            if p == NULL:
                raise MemoryError()
            self.deferred = <event_t *>p
        self.deferred[self.deferred_count] = e[0]
        self.deferred_count += 1
        return 0

    def take_events(self, bint causes=False, bint defer_followers=False):
        """Events since the last call: (instance, old, new, reason, time), and
        with `causes` a sixth item, (master, master priority, our priority):
        the master last heard at the event (packed address, None if none; for
        "higher_priority" the advert's sender) with its priority, and ours
        then. Taken from the event, not read later: the log runs after a whole
        batch, when another advert may have replaced the master heard.

        defer_followers: the events of followers their leader moved (which
        come right after the leader's own) are held back for take_deferred(),
        and every event gets a last item, how many of them followed it. A
        mass move of 40 leaders and 10,000 followers is then 40 events here,
        in order with everything else, and 10,000 later."""
        cdef Py_ssize_t n, k
        cdef event_t *e
        if self.event_count == 0:
            return ()  # the usual case, on every wake-up: no list to build
        out = []
        n = 0
        while n < self.event_count:
            e = &self.evq[n]
            n += 1
            if not defer_followers:
                out.append(self.event_tuple(e, causes))
                continue
            k = 0
            while (n < self.event_count and self.evq[n].by_leader
                   and self.insts[self.evq[n].instance].leader == e.instance):
                self.defer(&self.evq[n])
                n += 1
                k += 1
            out.append(self.event_tuple(e, causes) + (k,))
        self.event_count = 0
        return out

    def take_deferred(self, bint causes=False, Py_ssize_t limit=-1, bint discard=False):
        """The followers' events take_events(defer_followers=True) held back,
        in order, shaped as take_events' (without the count): the first
        `limit` of them (all by default), the rest kept for the next call.
        discard: only how many were taken (nobody wants them: no object each)."""
        cdef Py_ssize_t n, taken = self.deferred_count
        if 0 <= limit < taken:
            taken = limit
        if taken == 0:
            return 0 if discard else ()
        out = (taken if discard
               else [self.event_tuple(&self.deferred[n], causes) for n in range(taken)])
        self.deferred_count -= taken
        if self.deferred_count:
            memmove(self.deferred, self.deferred + taken, self.deferred_count * sizeof(event_t))
        elif self.deferred_cap > 4096:
            # A mass move's worth: not kept for the daemon's lifetime.
            free(self.deferred)
            self.deferred, self.deferred_cap = NULL, 0
        return out

    @property
    def deferred_pending(self):
        """How many followers' events wait for take_deferred()."""
        return self.deferred_count

    def take_drops(self, bint everything=False):
        """Dropped adverts since the last call, as (records, unrecorded).

        A record is one kind of drop: (instance or -1, ifindex, reason label,
        sender (packed, None if unknown), count, detail0, detail1, address
        (packed, None if the reason has none), VRRP version, VRID); count is
        how many drops of the kind the record gained since it was last
        handed out. Details by reason: length: received, expected bytes; ttl:
        received, least accepted; type, version, version_mismatch,
        auth_invalid_type, auth_type_mismatch, interval_mismatch,
        address_count: received, ours; checksum: version. Address:
        address_list: our VIP the advert lacked; not_group: its destination.

        Without `everything`, only records made since the last call (the
        first drop of a kind: what a log says at once). With it, every record
        that counted more, and the records are then cleared: the next drop
        of a kind makes a new record. `unrecorded` counts drops that found
        no room for a record (counted by the counters all the same).
        Indexes are this engine's: turn them into names before a reload.
        """
        cdef Py_ssize_t k, first = 0 if everything else self.drop_taken
        cdef drop_t *d
        cdef uint16_t alen
        cdef uint32_t count
        out = []
        for k in range(first, self.drop_count):
            d = &self.drop_records[k]
            count = d.count - d.taken
            if count == 0:
                continue
            d.taken = d.count
            alen = addr_len(d.family)
            sender = (PyBytes_FromStringAndSize(<char *>d.sender, alen)
                      if d.have & HAVE_IP else None)
            addr = (PyBytes_FromStringAndSize(<char *>d.addr, alen)
                    if d.reason == D_ADDRESS_LIST or d.reason == D_NOT_GROUP else None)
            out.append((d.instance, d.ifindex, DROP_RECORD_REASONS[d.reason], sender, count,
                        d.detail[0], d.detail[1], addr, d.version, d.vrid))
        self.drop_taken = self.drop_count
        if everything:
            self.drop_count = self.drop_taken = 0
            if self.drop_cap > DROP_RECORDS_KEPT:
                free(self.drop_records)
                free(self.drop_slots)
                self.drop_records, self.drop_slots, self.drop_cap = NULL, NULL, 0
            elif self.drop_slots != NULL:
                memset(self.drop_slots, 0xff, (self.drop_mask + 1) * sizeof(int32_t))
        unrecorded, self.drops_unrecorded = self.drops_unrecorded, 0
        return out, unrecorded

    def tx_packets(self):
        """Adverts to send: (instance, ifindex, family, src, dst, message)."""
        cdef Py_ssize_t n
        cdef tx_t *t
        out = []
        for n in range(self.tx_count):
            t = &self.tx[n]
            alen = addr_len(t.family)
            out.append((t.instance, t.ifindex, t.family,
                        str(ipaddress.ip_address(PyBytes_FromStringAndSize(<char *>t.src, alen))),
                        str(ipaddress.ip_address(PyBytes_FromStringAndSize(<char *>t.dst, alen))),
                        PyBytes_FromStringAndSize(<char *>self.tx_arena + t.offset, t.len)))
        return out

    def clear_tx(self):
        self.tx_count = 0
        self.tx_used = 0

    def state(self, Py_ssize_t i):
        self.check_index(i)
        return STATES[self.insts[i].state]

    def effective_priority(self, Py_ssize_t i):
        """What the instance advertises and elects with: clamp(base + delta, 1, 254), or 255."""
        self.check_index(i)
        return self.insts[i].effective_priority

    def base_priority(self, Py_ssize_t i):
        self.check_index(i)
        return self.insts[i].base_priority

    def priority_delta(self, Py_ssize_t i):
        self.check_index(i)
        return self.insts[i].priority_delta

    def fault_flags(self, Py_ssize_t i):
        """The FAULT_* bits set (see fault_reasons()); non-zero in FAULT, and in
        INIT when start() will go to FAULT."""
        self.check_index(i)
        return self.insts[i].fault_flags

    def last_transition(self, Py_ssize_t i):
        """`now` of the last state change (microseconds), 0 if none yet."""
        self.check_index(i)
        return self.insts[i].last_transition

    def master_address(self, Py_ssize_t i):
        """The current master as a str: our primary address in MASTER, the
        source of the last accepted advert in BACKUP; None when not known yet
        (a backup that heard no one since it came up) and in INIT and FAULT."""
        cdef const uint8_t *addr
        self.check_index(i)
        addr = current_master(&self.insts[i])
        if addr == NULL:
            return None
        return str(ipaddress.ip_address(PyBytes_FromStringAndSize(
            <const char *>addr, addr_len(self.insts[i].family))))

    def timer(self, Py_ssize_t i):
        """The pending deadline (advert or master-down), or None."""
        self.check_index(i)
        return self.wheel.deadline(i)

    def master_adver_int_us(self, Py_ssize_t i):
        self.check_index(i)
        return self.insts[i].master_adver_int_us

    def master_down_interval_us(self, Py_ssize_t i):
        self.check_index(i)
        return self.master_down_us(&self.insts[i])

    def skew_time_us(self, Py_ssize_t i):
        self.check_index(i)
        return self.skew_us(&self.insts[i])

    def counters(self, Py_ssize_t i):
        self.check_index(i)
        return {name: self.insts[i].counters[k] for k, name in enumerate(COUNTERS)}

    def counters_array(self):
        """Every instance's counters at once, for a scrape: a read-only copy
        taken in one pass (a consistent snapshot to render from), as a
        memoryview of format 'Q' and shape (count, len(COUNTERS)); row i is
        counters(i) in COUNTERS order."""
        cdef Py_ssize_t n, row = C_NCOUNTERS * sizeof(uint64_t)
        cdef _Table table = _Table.new(self.count, C_NCOUNTERS, sizeof(uint64_t), b"Q")
        for n in range(self.count):
            memcpy(table.data + n * row, self.insts[n].counters, row)
        return memoryview(table)

    def states_array(self):
        """Every instance's state code (an index in STATES), format 'B', shape (count,)."""
        cdef Py_ssize_t n
        cdef _Table table = _Table.new(self.count, 0, 1, b"B")
        for n in range(self.count):
            table.data[n] = self.insts[n].state
        return memoryview(table)

    def priorities_array(self):
        """Every instance's effective priority, format 'B', shape (count,)."""
        cdef Py_ssize_t n
        cdef _Table table = _Table.new(self.count, 0, 1, b"B")
        for n in range(self.count):
            table.data[n] = self.insts[n].effective_priority
        return memoryview(table)

    def interface_drops(self):
        """global_counters()' drops, unknown_vrid and version_mismatch by the
        interface they came in on: {ifindex: {reason: count}} with what is
        non-zero; ifindex 0 for interfaces no instance uses."""
        cdef uint32_t slot
        cdef int32_t row, k
        labels = list(DROP_REASONS[:IF_UNKNOWN_VRID])
        labels += [""] * (IF_UNKNOWN_VRID - len(labels)) + ["unknown_vrid", "version_mismatch"]
        rows = {0: 0}
        for slot in range(self.if_mask + 1):
            # ifindex 0: instances whose interface was missing; nothing arrives there.
            if self.if_keys[slot] > 0:
                rows[self.if_keys[slot]] = self.if_numbers[slot] + 1
        out = {}
        for ifindex, row in rows.items():
            counts = {labels[k]: self.if_drops[row * IF_DROP_COLUMNS + k]
                      for k in range(1, IF_DROP_COLUMNS)
                      if labels[k] and self.if_drops[row * IF_DROP_COLUMNS + k]}
            if counts:
                out[ifindex] = counts
        return out

    def global_counters(self):
        drops = {DROP_REASONS[k]: self.drops[k] for k in range(1, len(DROP_REASONS))}
        return {"drops": drops, "unknown_vrid": self.unknown_vrid,
                "version_mismatch": self.version_mismatch, "own_adverts": self.own_adverts,
                "output_overflow": self.output_overflow}

    def states(self):
        """State name of every instance, in index order."""
        return [STATES[self.insts[i].state] for i in range(self.count)]

    def count_in_state(self, state):
        cdef uint8_t code = STATES.index(state)
        cdef Py_ssize_t i, n = 0
        for i in range(self.count):
            if self.insts[i].state == code:
                n += 1
        return n
