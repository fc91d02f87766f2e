# cython: language_level=3
"""Virtual LAN for the simulator: moves the engines' real encoded adverts.

Written in Cython because a 10,000-instance scenario moves millions of
packets per virtual minute; the per-packet work (IPv4 header, copy into the
receiver's RxBatch slot, delay queue, loss) must not be Python.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from hivrrp._engine cimport Engine, tx_t
from hivrrp._wire cimport IPV4_HDR_LEN, RxBatch, addr_len, csum_fold, csum_partial

cdef enum:
    MAX_ROUNDS = 32        # zero-delay answer/answer rounds within one instant
    RX_SLOT = 4200         # fits the largest advert (v3, 255 IPv6 addresses)

ctypedef struct flight_t:
    int64_t arrival
    int32_t sender
    int32_t segment
    uint8_t family
    uint16_t len
    uint32_t offset
    uint8_t src[16]
    uint8_t dst[16]


cdef inline int64_t clock_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline bint is_multicast(uint8_t family, const uint8_t *addr) noexcept nogil:
    return (addr[0] & 0xf0) == 0xe0 if family == 4 else addr[0] == 0xff


cdef class VirtualLan:
    """Routers (engines) attached to segments by (router, ifindex)."""
    cdef list engines
    cdef list batches
    cdef int32_t nrouters
    cdef int32_t max_ifindex
    cdef int32_t *segment_of          # [router * (max_ifindex + 1) + ifindex] -> segment or -1
    cdef int32_t *ifindex_on          # [router * nsegments + segment] -> ifindex or -1
    cdef int32_t nsegments
    cdef int64_t *delay_us            # per segment
    cdef uint32_t *loss_threshold     # per segment: drop when rng < threshold
    cdef uint8_t *blocked             # [a * nrouters + b]: a's packets do not reach b
    cdef uint8_t *alive               # per router
    cdef object owned                 # router -> list of owned unicast addresses (bytes)
    cdef flight_t *flights
    cdef Py_ssize_t nflights, flights_cap
    cdef uint8_t *arena
    cdef Py_ssize_t arena_used, arena_cap
    cdef uint64_t rng
    cdef readonly int64_t engine_tx_ns      # time inside engine.expire (send side)
    cdef readonly int64_t engine_rx_ns      # time inside engine.receive (receive side)
    cdef readonly uint64_t delivered
    cdef readonly uint64_t lost

    def __cinit__(self, int nrouters, int nsegments, int max_ifindex=255, uint64_t seed=1):
        if nrouters < 1 or nsegments < 1 or max_ifindex < 0:
            raise ValueError("need at least one router and one segment")
        self.nrouters = nrouters
        self.nsegments = nsegments
        self.max_ifindex = max_ifindex
        self.segment_of = <int32_t *>malloc(nrouters * (max_ifindex + 1) * sizeof(int32_t))
        self.ifindex_on = <int32_t *>malloc(nrouters * nsegments * sizeof(int32_t))
        self.delay_us = <int64_t *>calloc(nsegments, sizeof(int64_t))
        self.loss_threshold = <uint32_t *>calloc(nsegments, sizeof(uint32_t))
        self.blocked = <uint8_t *>calloc(nrouters * nrouters, 1)
        self.alive = <uint8_t *>malloc(nrouters)
        self.flights_cap = 1024
        self.flights = <flight_t *>malloc(self.flights_cap * sizeof(flight_t))
        self.arena_cap = 1 << 20
        self.arena = <uint8_t *>malloc(self.arena_cap)
        if (self.segment_of == NULL or self.ifindex_on == NULL or self.delay_us == NULL or self.loss_threshold == NULL
                or self.blocked == NULL or self.alive == NULL or self.flights == NULL
                or self.arena == NULL):
            raise MemoryError()
        for i in range(nrouters * (max_ifindex + 1)):
            self.segment_of[i] = -1
        for i in range(nrouters * nsegments):
            self.ifindex_on[i] = -1
        memset(self.alive, 1, nrouters)
        self.engines = [None] * nrouters
        self.batches = [RxBatch(256, RX_SLOT) for _ in range(nrouters)]
        self.owned = [[] for _ in range(nrouters)]
        self.rng = seed or 1

    def __dealloc__(self):
        free(self.segment_of)
        free(self.ifindex_on)
        free(self.delay_us)
        free(self.loss_threshold)
        free(self.blocked)
        free(self.alive)
        free(self.flights)
        free(self.arena)

    # ------------------------------------------------------------ set-up

    def set_engine(self, int router, Engine engine):
        self.engines[router] = engine

    def attach(self, int router, int ifindex, int segment):
        if not (0 <= router < self.nrouters and 0 <= ifindex <= self.max_ifindex
                and 0 <= segment < self.nsegments):
            raise ValueError("router, ifindex or segment out of range")
        if self.ifindex_on[router * self.nsegments + segment] not in (-1, ifindex):
            raise ValueError(f"router {router} already has an interface on segment {segment}")
        self.segment_of[router * (self.max_ifindex + 1) + ifindex] = segment
        self.ifindex_on[router * self.nsegments + segment] = ifindex

    def own_address(self, int router, bytes packed):
        """Unicast packets to this address reach this router only."""
        self.owned[router].append(packed.ljust(16, b"\0"))

    def set_delay(self, int segment, int64_t delay_us):
        self.delay_us[segment] = delay_us

    def set_loss(self, int segment, double probability):
        if not 0.0 <= probability <= 1.0:
            raise ValueError("loss probability is 0..1")
        self.loss_threshold[segment] = <uint32_t>(probability * 4294967295.0)

    def set_blocked(self, int sender, int receiver, bint blocked):
        self.blocked[sender * self.nrouters + receiver] = blocked

    def set_alive(self, int router, bint alive):
        self.alive[router] = alive

    def is_alive(self, int router):
        return bool(self.alive[router])

    def reset_timing(self):
        self.engine_tx_ns = 0
        self.engine_rx_ns = 0

    # --------------------------------------------------------- the step

    cdef inline uint32_t random32(self) noexcept:
        # xorshift64*: deterministic loss for reproducible scenarios
        self.rng ^= self.rng >> 12
        self.rng ^= self.rng << 25
        self.rng ^= self.rng >> 27
        return <uint32_t>((self.rng * 0x2545F4914F6CDD1DULL) >> 32)

    cdef int collect(self, int32_t r, int64_t now) except -1:
        """Move router r's outgoing adverts into the air."""
        cdef Engine engine = <Engine>self.engines[r]
        cdef Py_ssize_t n
        cdef tx_t *t
        cdef flight_t *f
        cdef int32_t segment
        cdef void *p
        for n in range(engine.tx_count):
            t = &engine.tx[n]
            if t.ifindex > self.max_ifindex:
                continue
            segment = self.segment_of[r * (self.max_ifindex + 1) + t.ifindex]
            if segment < 0:
                continue
            if self.loss_threshold[segment] and self.random32() < self.loss_threshold[segment]:
                self.lost += 1
                continue
            if self.nflights == self.flights_cap:
                p = realloc(self.flights, 2 * self.flights_cap * sizeof(flight_t))
                if p == NULL:
                    raise MemoryError()
                self.flights = <flight_t *>p
                self.flights_cap *= 2
            if self.arena_used + t.len > self.arena_cap:
                p = realloc(self.arena, 2 * self.arena_cap)
                if p == NULL:
                    raise MemoryError()
                self.arena = <uint8_t *>p
                self.arena_cap *= 2
            f = &self.flights[self.nflights]
            f.arrival = now + self.delay_us[segment]
            f.sender = r
            f.segment = segment
            f.family = t.family
            f.len = t.len
            f.offset = <uint32_t>self.arena_used
            memcpy(f.src, t.src, 16)
            memcpy(f.dst, t.dst, 16)
            memcpy(self.arena + self.arena_used, engine.tx_arena + t.offset, t.len)
            self.arena_used += t.len
            self.nflights += 1
        engine.tx_count = 0
        engine.tx_used = 0
        return 0

    cdef int flush(self, int32_t r, int64_t now) except -1:
        cdef RxBatch batch = <RxBatch>self.batches[r]
        cdef Engine engine = <Engine>self.engines[r]
        cdef int64_t start
        if batch.count:
            start = clock_ns()
            engine.receive_c(batch, now)
            self.engine_rx_ns += clock_ns() - start
            batch.count = 0
        return 0

    cdef int enqueue(self, int32_t r, flight_t *f, int64_t now) except -1:
        """Put a datagram into router r's receive batch as its raw socket would."""
        cdef RxBatch batch = <RxBatch>self.batches[r]
        cdef uint8_t *data
        cdef uint16_t check, total
        cdef Py_ssize_t i
        if batch.count == batch.capacity:
            self.flush(r, now)
        i = batch.count
        data = <uint8_t *>batch.slots[i].data
        batch.slots[i].ifindex = self.ifindex_on[r * self.nsegments + f.segment]
        batch.slots[i].family = f.family
        batch.slots[i].min_ttl = 255
        if f.family == 4:
            total = IPV4_HDR_LEN + f.len
            memset(data, 0, IPV4_HDR_LEN)
            data[0] = 0x45
            data[1] = 0xc0
            data[2] = total >> 8
            data[3] = total & 0xff
            data[8] = 255
            data[9] = 112
            memcpy(data + 12, f.src, 4)
            memcpy(data + 16, f.dst, 4)
            check = ~csum_fold(csum_partial(data, IPV4_HDR_LEN, 0))
            memcpy(data + 10, &check, 2)
            memcpy(data + IPV4_HDR_LEN, self.arena + f.offset, f.len)
            batch.slots[i].len = total
        else:
            memcpy(data, self.arena + f.offset, f.len)
            memcpy(batch.slots[i].src, f.src, 16)
            memcpy(batch.slots[i].dst, f.dst, 16)
            batch.slots[i].hoplimit = 255
            batch.slots[i].len = f.len
        batch.count += 1
        self.delivered += 1
        return 0

    cdef bint owns(self, int32_t r, flight_t *f):
        cdef bytes addr
        for addr in self.owned[r]:
            if memcmp(<const char *>addr, f.dst, addr_len(f.family)) == 0:
                return True
        return False

    cdef int deliver(self, int64_t now) except -1:
        """Hand every datagram that has arrived by `now` to its receivers."""
        cdef Py_ssize_t n, kept = 0
        cdef flight_t *f
        cdef int32_t r
        cdef bint multicast
        for n in range(self.nflights):
            f = &self.flights[n]
            if f.arrival > now:
                self.flights[kept] = self.flights[n]
                kept += 1
                continue
            multicast = is_multicast(f.family, f.dst)
            for r in range(self.nrouters):
                if r == f.sender or not self.alive[r] or self.engines[r] is None:
                    continue
                if self.blocked[f.sender * self.nrouters + r]:
                    continue
                if self.ifindex_on[r * self.nsegments + f.segment] < 0:
                    continue
                if multicast or self.owns(r, f):
                    self.enqueue(r, f, now)
        self.nflights = kept
        if kept == 0:
            self.arena_used = 0
        for r in range(self.nrouters):
            if self.engines[r] is not None:
                self.flush(r, now)
        return 0

    def step(self, int64_t now):
        """Run every router's timers due at `now` and deliver until quiet."""
        cdef int32_t r
        cdef int rounds
        cdef Engine engine
        cdef int64_t start
        for r in range(self.nrouters):
            if self.alive[r] and self.engines[r] is not None:
                engine = <Engine>self.engines[r]
                start = clock_ns()
                engine.expire_c(now)
                self.engine_tx_ns += clock_ns() - start
        for rounds in range(MAX_ROUNDS):
            for r in range(self.nrouters):
                if self.engines[r] is not None:
                    if self.alive[r]:
                        self.collect(r, now)
                    else:
                        (<Engine>self.engines[r]).tx_count = 0
                        (<Engine>self.engines[r]).tx_used = 0
            if self.nflights == 0:
                break
            self.deliver(now)
            if not self.pending_now(now):
                break

    cdef bint pending_now(self, int64_t now):
        cdef int32_t r
        for r in range(self.nrouters):
            if self.engines[r] is not None and (<Engine>self.engines[r]).tx_count:
                return True
        return False

    def next_arrival(self):
        """Earliest in-flight arrival time, or None."""
        cdef Py_ssize_t n
        cdef int64_t best = -1
        for n in range(self.nflights):
            if best < 0 or self.flights[n].arrival < best:
                best = self.flights[n].arrival
        return None if best < 0 else best

    def in_flight(self):
        return self.nflights
