# cython: language_level=3
"""Gratuitous ARPs and unsolicited neighbour advertisements, queued and sent in C.

A mass takeover announces thousands of VIPs at once: frame by frame from
Python that was about 6.5 us each (10,000 VIPs: 65 ms before the last one's
first frame), where the kernel's own share is about 2 us on a veth. Here the
queue is C structs (one per address, not per frame), the frames are written
into fixed buffers and go out in sendmmsg batches: no Python object per
frame. What to announce and when is kernel/announce_policy.py's; the pacing
and the logging are kernel/announce.py's.

Order: an address's first frame goes before any address's next one, also for
addresses queued while others are being repeated (`fresh` is served before
`again`); repeats go round by round. Each frame is checked against its
instance's state in the engine when it is its turn: a frame of an instance
that is no longer MASTER (a follower in FAULT of its own included) is dropped
with the rest of its repeats.
"""

from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_FromStringAndSize

from hivrrp._engine cimport ST_MASTER, Engine
from hivrrp._socketapi cimport (
    AF_INET6, AF_PACKET, htons, iovec, mmsghdr, msghdr, sendmmsg, sockaddr_in6, sockaddr_ll,
)

cdef enum:
    ETH_P_ARP = 0x0806
    ARP_FRAME = 42                  # Ethernet header + ARP over Ethernet/IPv4
    NA_MESSAGE = 32                 # ICMPv6 NA + target link-layer address option
    FRAME_ROOM = 48                 # per message
    RECORD = 24                     # an input record (kernel/announce.py RECORD)
    ERROR_KINDS = 16                # distinct (errno, ifindex, family) kept between takes

# One address to announce: what its frames need, and how many are left.
ctypedef struct garp_t:
    int32_t inst                    # engine index in the plan the queue is for; -1: none
    int32_t ifindex
    uint32_t left                   # frames still to send
    uint8_t family                  # 4: gratuitous ARP, 6: unsolicited NA
    uint8_t mac[6]
    uint8_t fresh                   # no frame sent yet
    uint8_t addr[16]

ctypedef struct ring_t:
    garp_t *items
    Py_ssize_t cap                  # a power of two, or 0
    Py_ssize_t head
    Py_ssize_t count

ctypedef struct error_t:
    int code
    int32_t ifindex
    uint8_t family
    uint32_t count


cdef int ring_reserve(ring_t *r, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap = r.cap if r.cap else 64, k
    cdef garp_t *items
    if r.count + more <= r.cap:
        return 0
    while cap < r.count + more:
        cap *= 2
    items = <garp_t *>malloc(cap * sizeof(garp_t))
    if items == NULL:
        raise MemoryError()
    for k in range(r.count):            # unwrapped: head at 0
        items[k] = r.items[(r.head + k) & (r.cap - 1)]
    free(r.items)
    r.items, r.cap, r.head = items, cap, 0
    return 0


cdef inline garp_t *ring_front(ring_t *r) noexcept nogil:
    return &r.items[r.head]


cdef inline void ring_pop(ring_t *r) noexcept nogil:
    r.head = (r.head + 1) & (r.cap - 1)
    r.count -= 1


cdef inline void ring_push(ring_t *r, const garp_t *g) noexcept nogil:
    # Room is there: entries only move between the rings' reserved slots.
    r.items[(r.head + r.count) & (r.cap - 1)] = g[0]
    r.count += 1


cdef inline void ring_unpop(ring_t *r, const garp_t *g) noexcept nogil:
    r.head = (r.head - 1) & (r.cap - 1)
    r.items[r.head] = g[0]
    r.count += 1


cdef void write_arp(uint8_t *f, const garp_t *g) noexcept nogil:
    """An ARP request announcing the address at the MAC, as keepalived and
    arping -U send it: broadcast, sender = target = the address, target
    hardware address all ones."""
    memset(f, 0xFF, 6)
    memcpy(f + 6, g.mac, 6)
    f[12] = ETH_P_ARP >> 8
    f[13] = ETH_P_ARP & 0xFF
    f[14] = 0                       # hardware: Ethernet
    f[15] = 1
    f[16] = 0x08                    # protocol: IPv4
    f[17] = 0x00
    f[18] = 6
    f[19] = 4
    f[20] = 0                       # request
    f[21] = 1
    memcpy(f + 22, g.mac, 6)
    memcpy(f + 28, g.addr, 4)
    memset(f + 32, 0xFF, 6)
    memcpy(f + 38, g.addr, 4)


cdef void write_na(uint8_t *f, const garp_t *g) noexcept nogil:
    """An unsolicited neighbour advertisement (RFC 4861 4.4), Router and
    Override set (a VRRP master is a router), with the target link-layer
    address option; the kernel fills in the checksum of a raw ICMPv6 socket."""
    memset(f, 0, NA_MESSAGE)
    f[0] = 136
    f[4] = 0xA0
    memcpy(f + 8, g.addr, 16)
    f[24] = 2                       # option: target link-layer address
    f[25] = 1                       # its length, in units of 8 bytes
    memcpy(f + 26, g.mac, 6)


cdef class AnnounceQueue:
    """The addresses waiting for frames, and the buffers they go out from."""
    cdef ring_t fresh               # no frame sent yet, in the order queued
    cdef ring_t again               # the repeats, round by round
    cdef readonly Py_ssize_t capacity
    cdef mmsghdr *msgs
    cdef iovec *iov
    cdef uint8_t *frames
    cdef sockaddr_in6 *names        # large enough for a sockaddr_ll too
    cdef garp_t *batch              # the entries of the frames in msgs
    cdef error_t errors_seen[ERROR_KINDS]
    cdef int error_kinds
    cdef readonly unsigned long long sent
    cdef readonly unsigned long long first      # of them, an address's first frame
    cdef readonly unsigned long long errors
    cdef readonly unsigned long long dropped    # frames of instances no longer MASTER
    cdef readonly bint blocked      # the last drain stopped at a full send buffer

    def __cinit__(self, Py_ssize_t capacity=256):
        if capacity < 1 or capacity > 1024:     # UIO_MAXIOV caps a sendmmsg
            raise ValueError("capacity must be 1..1024")
        self.capacity = capacity
        self.msgs = <mmsghdr *>calloc(capacity, sizeof(mmsghdr))
        self.iov = <iovec *>calloc(capacity, sizeof(iovec))
        self.frames = <uint8_t *>calloc(capacity, FRAME_ROOM)
        self.names = <sockaddr_in6 *>calloc(capacity, sizeof(sockaddr_in6))
        self.batch = <garp_t *>calloc(capacity, sizeof(garp_t))
        if (self.msgs == NULL or self.iov == NULL or self.frames == NULL
                or self.names == NULL or self.batch == NULL):
            raise MemoryError()

    def __dealloc__(self):
        free(self.fresh.items)
        free(self.again.items)
        free(self.msgs)
        free(self.iov)
        free(self.frames)
        free(self.names)
        free(self.batch)

    def __len__(self):
        """Addresses with frames still to send."""
        return self.fresh.count + self.again.count

    @property
    def waiting_first(self):
        """Addresses whose first frame is still to send."""
        return self.fresh.count

    def add(self, const uint8_t[::1] records, const int32_t[::1] ifindexes,
            const uint8_t[::1] macs, unsigned int repeat, const int32_t[::1] mapping=None):
        """Queue `repeat` frames for each record (RECORD bytes: engine index
        int32, link slot uint16, family uint8, a pad byte, the address in 16
        bytes, native order). A slot names the link in `ifindexes` and its MAC
        in `macs` (6 bytes each); a slot whose ifindex is 0 or less (the link
        is gone) queues nothing. `mapping`: the records' engine indexes are of
        an earlier plan, index i is mapping[i] now (-1: gone, nothing queued).
        Returns how many addresses were queued."""
        cdef Py_ssize_t n = records.shape[0] // RECORD, k, queued = 0
        cdef Py_ssize_t links = ifindexes.shape[0]
        cdef const uint8_t *r
        cdef uint16_t slot
        cdef garp_t g
        if records.shape[0] % RECORD:
            raise ValueError(f"records are {RECORD} bytes each")
        if macs.shape[0] != 6 * links:
            raise ValueError("one 6-byte MAC per link")
        if repeat == 0 or n == 0:
            return 0
        # An entry is in one ring at a time and only ever moves from `fresh`
        # to `again`: `again` has room for all, `fresh` for its own.
        ring_reserve(&self.fresh, n)
        ring_reserve(&self.again, self.fresh.count + n)
        for k in range(n):
            r = &records[k * RECORD]
            memcpy(&g.inst, r, 4)
            memcpy(&slot, r + 4, 2)
            g.family = r[6]
            if mapping is not None:
                g.inst = mapping[g.inst] if 0 <= g.inst < mapping.shape[0] else -1
                if g.inst < 0:
                    continue
            if slot >= links or ifindexes[slot] <= 0 or (g.family != 4 and g.family != 6):
                continue
            g.ifindex = ifindexes[slot]
            memcpy(g.mac, &macs[6 * slot], 6)
            memcpy(g.addr, r + 8, 16)
            g.left = repeat
            g.fresh = 1
            ring_push(&self.fresh, &g)
            queued += 1
        return queued

    def remap(self, const int32_t[::1] mapping):
        """A reload renumbered the instances: queued entry of index i is now
        mapping[i] (-1: gone; its frames are dropped when due)."""
        cdef ring_t *r
        cdef Py_ssize_t k
        cdef garp_t *g
        cdef int which
        for which in range(2):
            r = &self.fresh if which == 0 else &self.again
            for k in range(r.count):
                g = &r.items[(r.head + k) & (r.cap - 1)]
                g.inst = mapping[g.inst] if 0 <= g.inst < mapping.shape[0] else -1

    def clear(self):
        """Forget every queued frame; returns how many."""
        cdef Py_ssize_t k, total = 0
        cdef ring_t *r
        cdef int which
        for which in range(2):
            r = &self.fresh if which == 0 else &self.again
            for k in range(r.count):
                total += r.items[(r.head + k) & (r.cap - 1)].left
            r.head = 0
            r.count = 0
        return total

    def take_errors(self):
        """[(errno, ifindex, family, count)] of the failed sends since the last call."""
        cdef int k
        out = []
        for k in range(self.error_kinds):
            out.append((self.errors_seen[k].code, self.errors_seen[k].ifindex,
                        self.errors_seen[k].family, self.errors_seen[k].count))
        self.error_kinds = 0
        return out

    cdef void note_error(self, int code, const garp_t *g) noexcept nogil:
        cdef int k
        self.errors += 1
        for k in range(self.error_kinds):
            if (self.errors_seen[k].code == code and self.errors_seen[k].ifindex == g.ifindex
                    and self.errors_seen[k].family == g.family):
                self.errors_seen[k].count += 1
                return
        if self.error_kinds == ERROR_KINDS:
            k = ERROR_KINDS - 1             # the rest are counted with the last kind kept
            self.errors_seen[k].count += 1
            return
        k = self.error_kinds
        self.error_kinds += 1
        self.errors_seen[k].code = code
        self.errors_seen[k].ifindex = g.ifindex
        self.errors_seen[k].family = g.family
        self.errors_seen[k].count = 1

    def drain(self, Engine engine, int packet_fd, int icmp6_fd, Py_ssize_t budget,
              list capture=None, bint named=True, bint give_up=False, bint first_only=False):
        """Send up to `budget` frames: gratuitous ARPs as Ethernet frames on
        the packet socket, NAs on the raw ICMPv6 socket, in batches of one
        family (sendmmsg on non-blocking sockets, see flush()). Each
        entry is checked against `engine` when it is its turn. A send buffer
        full (EAGAIN) stops the drain with the frame and the rest kept in
        their place (`blocked`), unless `give_up`: then it fails as any error.
        Failures are counted (take_errors()), never raised. With `capture`, a
        list, nothing is sent: (family, ifindex, frame) tuples go there (tests,
        tools). named=False: the sockets are connected, the messages carry no
        address (tests). first_only: the repeats wait, only first frames go.
        Returns how many frames went out."""
        cdef Py_ssize_t n = 0
        cdef unsigned long long before = self.sent
        cdef garp_t *g
        cdef ring_t *src
        cdef uint8_t family = 0
        cdef int ok
        self.blocked = False
        while True:
            src = &self.fresh if self.fresh.count or first_only else &self.again
            if src.count == 0 and n:
                # The rest is in the batch: sent, its repeats come round again.
                ok = self.flush(n, family, packet_fd if family == 4 else icmp6_fd, capture,
                                named, give_up)
                n = 0
                if not ok:
                    break
                continue
            if src.count == 0 or (budget <= 0 and n == 0):
                break
            g = ring_front(src)
            if not (0 <= g.inst < engine.count and engine.insts[g.inst].state == ST_MASTER):
                self.dropped += g.left
                ring_pop(src)
                continue
            if n and (g.family != family or n == self.capacity or budget <= 0):
                # Send what is batched; its entries go round again.
                ok = self.flush(n, family, packet_fd if family == 4 else icmp6_fd, capture,
                                named, give_up)
                n = 0
                if not ok:
                    break
                continue
            family = g.family
            self.prepare(n, g)
            ring_pop(src)
            n += 1
            budget -= 1
        return self.sent - before

    cdef void prepare(self, Py_ssize_t n, const garp_t *g) noexcept nogil:
        cdef uint8_t *f = self.frames + n * FRAME_ROOM
        cdef sockaddr_ll *ll
        cdef msghdr *h = &self.msgs[n].msg_hdr
        self.batch[n] = g[0]
        memset(h, 0, sizeof(msghdr))
        memset(&self.names[n], 0, sizeof(sockaddr_in6))
        if g.family == 4:
            write_arp(f, g)
            self.iov[n].iov_len = ARP_FRAME
            ll = <sockaddr_ll *>&self.names[n]
            ll.sll_family = AF_PACKET
            ll.sll_protocol = htons(ETH_P_ARP)
            ll.sll_ifindex = g.ifindex
            h.msg_namelen = sizeof(sockaddr_ll)
        else:
            write_na(f, g)
            self.iov[n].iov_len = NA_MESSAGE
            self.names[n].sin6_family = AF_INET6
            self.names[n].sin6_addr.s6_addr[0] = 0xFF       # ff02::1, all nodes
            self.names[n].sin6_addr.s6_addr[1] = 0x02
            self.names[n].sin6_addr.s6_addr[15] = 0x01
            self.names[n].sin6_scope_id = <uint32_t>g.ifindex
            h.msg_namelen = sizeof(sockaddr_in6)
        self.iov[n].iov_base = <void *>f
        h.msg_iov = &self.iov[n]
        h.msg_iovlen = 1
        h.msg_name = &self.names[n]

    cdef int flush(self, Py_ssize_t n, uint8_t family, int fd, list capture, bint named,
                   bint give_up) except -1:
        """Send the batch; every entry that went out (or failed for good) goes
        round again with a frame less. 0: the send buffer is full, the rest is
        back at the front of its ring, in its order."""
        cdef Py_ssize_t done = 0, k
        cdef int result, code
        cdef garp_t *g
        if capture is not None:
            for k in range(n):
                capture.append((family, self.batch[k].ifindex, PyBytes_FromStringAndSize(
                    <char *>self.frames + k * FRAME_ROOM, self.iov[k].iov_len)))
                self.went(&self.batch[k], True)
            return 1
        if not named:
            for k in range(n):
                self.msgs[k].msg_hdr.msg_name = NULL
                self.msgs[k].msg_hdr.msg_namelen = 0
        while done < n:
            # With the GIL held, as the adverts' sends (_io.pyx): the socket
            # is non-blocking, and a release lets the loop wait for the GIL
            # after each batch. While a VIP trip is in flight only first
            # frames go (announce.py holds the repeats back), so the netlink
            # thread waits for the GIL at most one short drain: releasing it
            # here made the first GARPs no sooner in bench/takeover_path.py
            # (58-64 ms against 58-62) and the longest drain call longer
            # (2.1-4.0 ms against 1.9-2.0).
            result = sendmmsg(fd, self.msgs + done, <unsigned int>(n - done), 0)
            code = errno
            if result >= 0:
                for k in range(done, done + result):
                    self.went(&self.batch[k], True)
                done += result
                continue
            if code == EINTR:
                continue
            if code == EAGAIN and not give_up:
                self.blocked = True
                for k in range(n - 1, done - 1, -1):
                    g = &self.batch[k]
                    ring_unpop(&self.fresh if g.fresh else &self.again, g)
                return 0
            # The first message of the rest failed: count it, go on with the rest.
            self.note_error(code, &self.batch[done])
            self.went(&self.batch[done], False)
            done += 1
        return 1

    cdef void went(self, garp_t *g, bint ok) noexcept nogil:
        if ok:
            self.sent += 1
            if g.fresh:
                self.first += 1
        g.fresh = 0
        g.left -= 1
        if g.left:
            ring_push(&self.again, g)
