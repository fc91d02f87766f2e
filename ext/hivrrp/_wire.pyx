# cython: language_level=3
"""VRRPv2 (RFC 3768) and VRRPv3 (RFC 9568) advertisement codec.

The C functions (declared in _wire.pxd) do the per-packet work on raw buffers.
The Python classes around them exist for set-up, tests and troubleshooting
tools; the daemon's hot path uses RxBatch/AdvertTable at the C level only.
"""

from enum import IntEnum
import ipaddress
import socket

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

# Label of each Reason, in enum order. These strings are metric label values.
REASONS = (
    "ok", "ip_header", "protocol", "length", "ttl",
    "version", "type", "checksum", "vrid", "interval",
)
assert len(REASONS) == R_NREASONS

Reason = IntEnum("Reason", [(label.upper(), i) for i, label in enumerate(REASONS)])

CHECKSUM_LABELS = (None, "ok", "ok-pseudo", "ok-no-pseudo", "bad")


class WireError(ValueError):
    """Misuse of the codec API (bad field values to encode, full batch...).

    Received packets never raise: their problems are reported as a Reason.
    """


# ---------------------------------------------------------------- advert size

DEFAULT_MTU = 1500      # what keepalived assumes for an instance with no interface
MAX_ADDRESSES = VRRP_MAX_ADDRS      # the count field is one byte
ETHER_HDR_LEN = 14


def advert_room(int family, int version, int mtu=DEFAULT_MTU):
    """How many of an instance's VIPs its adverts list on a link of `mtu`
    bytes (the rest are keepalived's eVIPs: on the interface, not in adverts).

    keepalived's rule (vrrp_complete_instance), to the byte: it also counts an
    Ethernet header the MTU does not include, so at 1500 an IPv6 advert lists
    89 addresses, not the 90 that would fit. A peer listing one address more
    would fail keepalived's address count check, and ours, in both directions.
    """
    cdef int header = ETHER_HDR_LEN + VRRP_HDR_LEN
    if family not in (4, 6):
        raise WireError(f"family must be 4 or 6, not {family!r}")
    if mtu <= 0:
        mtu = DEFAULT_MTU       # a link that reports none
    if family == 4:
        header += IPV4_HDR_LEN + (VRRP_AUTH_LEN if version == 2 else 0)
    else:
        header += IPV6_HDR_LEN
    return max(0, min(VRRP_MAX_ADDRS, (mtu - header) // addr_len(family)))


# ---------------------------------------------------------------- checksums

cdef inline uint16_t load16(const uint8_t *p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef inline uint16_t be16(const uint8_t *p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef uint64_t csum_partial(const uint8_t *buf, size_t n, uint64_t acc) noexcept nogil:
    # RFC 1071 sum over native-order 16-bit words: the one's complement sum is
    # byte-order independent (RFC 1071 section 2B), so no per-word byte swap.
    cdef size_t i = 0
    cdef uint8_t tail[2]
    while i + 1 < n:
        acc += load16(buf + i)
        i += 2
    if i < n:
        tail[0] = buf[i]
        tail[1] = 0
        acc += load16(tail)
    return acc


cdef uint16_t csum_fold(uint64_t acc) noexcept nogil:
    while acc >> 16:
        acc = (acc & 0xffff) + (acc >> 16)
    return <uint16_t>acc


cdef uint16_t addr_len(uint8_t family) noexcept nogil:
    return 4 if family == 4 else 16


cdef uint64_t pseudo_sum(uint8_t family, const uint8_t *src, const uint8_t *dst,
                         uint32_t length) noexcept nogil:
    # IPv4: src, dst, zero, protocol, 16-bit length (RFC 768 style).
    # IPv6: src, dst, 32-bit length, 3 zero bytes, next header (RFC 8200 8.1).
    cdef uint8_t tail[8]
    cdef uint64_t acc
    if family == 4:
        acc = csum_partial(src, 4, 0)
        acc = csum_partial(dst, 4, acc)
        tail[0] = 0
        tail[1] = VRRP_PROTO
        tail[2] = (length >> 8) & 0xff
        tail[3] = length & 0xff
        return csum_partial(tail, 4, acc)
    acc = csum_partial(src, 16, 0)
    acc = csum_partial(dst, 16, acc)
    tail[0] = (length >> 24) & 0xff
    tail[1] = (length >> 16) & 0xff
    tail[2] = (length >> 8) & 0xff
    tail[3] = length & 0xff
    tail[4] = 0
    tail[5] = 0
    tail[6] = 0
    tail[7] = VRRP_PROTO
    return csum_partial(tail, 8, acc)


# ------------------------------------------------------------------- decode

cdef inline int reject(vrrp_adv_t *out, int reason) noexcept nogil:
    out.reason = reason
    return reason


cdef int vrrp_decode(const rx_slot_t *slot, vrrp_adv_t *out) noexcept nogil:
    """Validate and decode one datagram; returns (and stores) the Reason."""
    cdef const uint8_t *p = slot.data
    cdef uint32_t n = slot.len
    cdef const uint8_t *msg
    cdef uint32_t mlen, ihl, total, expected
    cdef uint64_t acc
    cdef bint plain_ok, pseudo_ok

    out.have = 0
    out.checksum = CK_UNCHECKED
    out.family = slot.family
    out.ifindex = slot.ifindex

    if slot.family == 4:
        if n < IPV4_HDR_LEN:
            return reject(out, R_LENGTH)
        if (p[0] >> 4) != 4:
            return reject(out, R_IP_HEADER)
        ihl = (p[0] & 0x0f) * 4
        total = be16(p + 2)
        if ihl < IPV4_HDR_LEN or total < ihl:
            return reject(out, R_IP_HEADER)
        if n < total:
            return reject(out, R_LENGTH)
        # Bytes past the IP total length are link-layer padding (short
        # Ethernet frames in captures): ignored, as keepalived does.
        memset(out.src, 0, 16)
        memset(out.dst, 0, 16)
        memcpy(out.src, p + 12, 4)
        memcpy(out.dst, p + 16, 4)
        out.ttl = p[8]
        out.have = HAVE_IP
        if p[9] != VRRP_PROTO:
            return reject(out, R_PROTOCOL)
        msg = p + ihl
        mlen = total - ihl
        out.msg_off = <uint16_t>ihl
    elif slot.family == 6:
        memcpy(out.src, slot.src, 16)
        memcpy(out.dst, slot.dst, 16)
        out.ttl = slot.hoplimit
        out.have = HAVE_IP
        msg = p
        mlen = n
        out.msg_off = 0
    else:
        return reject(out, R_IP_HEADER)

    # The header is read before the TTL verdict so that tools can show who
    # sent an advert from the wrong hop distance.
    if mlen >= VRRP_HDR_LEN:
        out.msg_len = <uint16_t>mlen if mlen <= 0xffff else 0xffff
        out.version = msg[0] >> 4
        out.type = msg[0] & 0x0f
        out.vrid = msg[1]
        out.priority = msg[2]
        out.count = msg[3]
        if out.version == 2:
            out.auth_type = msg[4]
            out.interval = msg[5]
        else:
            out.auth_type = 0
            out.interval = be16(msg + 4) & 0x0fff
        out.have |= HAVE_HEADER
    if out.ttl < slot.min_ttl:
        return reject(out, R_TTL)
    if mlen < VRRP_HDR_LEN:
        return reject(out, R_LENGTH)

    if out.version == 2:
        if slot.family != 4:
            return reject(out, R_VERSION)
        expected = VRRP_HDR_LEN + 4 * out.count + VRRP_AUTH_LEN
    elif out.version == 3:
        expected = VRRP_HDR_LEN + addr_len(slot.family) * out.count
    else:
        return reject(out, R_VERSION)
    if out.type != VRRP_TYPE_ADVERT:
        return reject(out, R_TYPE)
    # Exact length, as RFC 9568 7.1 asks: this also rejects CARP, which
    # shares protocol 112 but is 36 bytes whatever its "count" byte says.
    if mlen != expected:
        return reject(out, R_LENGTH)
    out.have |= HAVE_ADDRS

    acc = csum_partial(msg, mlen, 0)
    if out.version == 2:
        out.checksum = CK_OK if csum_fold(acc) == 0xffff else CK_BAD
    elif slot.family == 6:
        acc += pseudo_sum(6, out.src, out.dst, mlen)
        out.checksum = CK_OK if csum_fold(acc) == 0xffff else CK_BAD
    else:
        # Both readings of the v3/IPv4 checksum are in the field; accept
        # either and say which, preferring the one we send by default.
        plain_ok = csum_fold(acc) == 0xffff
        pseudo_ok = csum_fold(acc + pseudo_sum(4, out.src, out.dst, mlen)) == 0xffff
        if pseudo_ok:
            out.checksum = CK_OK_PSEUDO
        elif plain_ok:
            out.checksum = CK_OK_NO_PSEUDO
        else:
            out.checksum = CK_BAD
    if out.checksum == CK_BAD:
        return reject(out, R_CHECKSUM)
    if out.vrid == 0:
        return reject(out, R_VRID)
    # v3 forbids 0 explicitly; a v2 interval of 0 can never match a
    # configured one (1..255 s), so it is rejected the same way.
    if out.interval == 0:
        return reject(out, R_INTERVAL)
    return reject(out, R_OK)


# ------------------------------------------------------------------- encode

cdef void advert_refresh(advert_t *adv, uint8_t priority, uint16_t interval) noexcept nogil:
    """Set priority and interval of a prebuilt advert and fix its checksum."""
    cdef uint8_t *m = adv.msg
    cdef uint16_t check
    m[2] = priority
    if adv.version == 2:
        m[5] = <uint8_t>interval
    else:
        m[4] = (interval >> 8) & 0x0f
        m[5] = interval & 0xff
    check = ~csum_fold(adv.base_sum + load16(m + 2) + load16(m + 4))
    memcpy(m + 6, &check, 2)


cdef int advert_build(advert_t *adv, uint8_t version, uint8_t family, uint8_t vrid,
                      uint8_t priority, uint16_t interval, const uint8_t *addrs,
                      uint8_t count, uint8_t auth_type, const uint8_t *auth8,
                      bint pseudo, const uint8_t *src, const uint8_t *dst) noexcept nogil:
    # Caller has validated the fields; this only lays the bytes out.
    cdef uint16_t alen = addr_len(family)
    cdef uint16_t length = VRRP_HDR_LEN + alen * count + (VRRP_AUTH_LEN if version == 2 else 0)
    cdef uint8_t *m = <uint8_t *>calloc(length, 1)
    if m == NULL:
        return -1
    m[0] = (version << 4) | VRRP_TYPE_ADVERT
    m[1] = vrid
    m[3] = count
    if version == 2:
        m[4] = auth_type
    memcpy(m + VRRP_HDR_LEN, addrs, alen * count)
    if version == 2:
        memcpy(m + VRRP_HDR_LEN + alen * count, auth8, VRRP_AUTH_LEN)
    adv.msg = m
    adv.len = length
    adv.version = version
    adv.family = family
    adv.base_sum = csum_partial(m, 2, 0) + csum_partial(m + VRRP_HDR_LEN, length - VRRP_HDR_LEN, 0)
    if version == 3 and (family == 6 or pseudo):
        adv.base_sum += pseudo_sum(family, src, dst, length)
    advert_refresh(adv, priority, interval)
    return 0


# ------------------------------------------------------- Python-side helpers

cdef bytes pack_addr(object addr, int family, str what):
    """Accept an address as str, ipaddress object or packed bytes."""
    if isinstance(addr, (bytes, bytearray)):
        packed = bytes(addr)
    else:
        try:
            packed = ipaddress.ip_address(addr).packed
        except ValueError as exc:
            raise WireError(f"{what}: {exc}") from None
    if len(packed) != addr_len(family):
        raise WireError(f"{what}: {addr!r} is not an IPv{family} address")
    return packed


cdef class _Fields:
    """Validated encode arguments in packed form."""
    cdef uint8_t version, family, vrid, priority, count, auth_type
    cdef uint16_t interval
    cdef bint pseudo
    cdef bytes addrs, auth8, src, dst

    def __init__(self, version, vrid, priority, interval, addresses, family,
                 src, dst, auth_type, auth_data, pseudo_header):
        if family not in (4, 6):
            raise WireError(f"family must be 4 or 6, not {family!r}")
        if version not in (2, 3):
            raise WireError(f"version must be 2 or 3, not {version!r}")
        if version == 2 and family == 6:
            raise WireError("VRRPv2 is IPv4 only")
        if not 1 <= vrid <= 255:
            raise WireError(f"VRID must be 1..255, not {vrid}")
        if not 0 <= priority <= 255:
            raise WireError(f"priority must be 0..255, not {priority}")
        max_interval = 255 if version == 2 else 4095
        if not 1 <= interval <= max_interval:
            unit = "s" if version == 2 else "cs"
            raise WireError(f"v{version} interval must be 1..{max_interval} {unit}, not {interval}")
        addresses = list(addresses)
        if len(addresses) > VRRP_MAX_ADDRS:
            raise WireError(f"at most {VRRP_MAX_ADDRS} addresses fit in an advert, not {len(addresses)}")
        if version == 3 and auth_type:
            raise WireError("VRRPv3 has no authentication")
        if not 0 <= auth_type <= 255:
            raise WireError(f"auth_type must be 0..255, not {auth_type}")
        auth_data = bytes(auth_data)
        if len(auth_data) > VRRP_AUTH_LEN:
            raise WireError(f"v2 auth data is at most {VRRP_AUTH_LEN} bytes, not {len(auth_data)}")
        self.version = version
        self.family = family
        self.vrid = vrid
        self.priority = priority
        self.interval = interval
        self.count = len(addresses)
        self.auth_type = auth_type
        self.addrs = b"".join([pack_addr(a, family, "address") for a in addresses])
        self.auth8 = auth_data.ljust(VRRP_AUTH_LEN, b"\0")
        self.pseudo = pseudo_header
        needs_pseudo = version == 3 and (family == 6 or pseudo_header)
        if needs_pseudo and (src is None or dst is None):
            raise WireError("the v3 checksum needs the IP source and destination (src=, dst=)")
        zero = bytes(addr_len(family))
        self.src = pack_addr(src, family, "src") if src is not None else zero
        self.dst = pack_addr(dst, family, "dst") if dst is not None else zero

    cdef int build(self, advert_t *adv) except -1:
        if advert_build(adv, self.version, self.family, self.vrid, self.priority,
                        self.interval, <const uint8_t *>PyBytes_AS_STRING(self.addrs),
                        self.count, self.auth_type,
                        <const uint8_t *>PyBytes_AS_STRING(self.auth8), self.pseudo,
                        <const uint8_t *>PyBytes_AS_STRING(self.src),
                        <const uint8_t *>PyBytes_AS_STRING(self.dst)) != 0:
            raise MemoryError()
        return 0


def encode(*, int version, int vrid, int priority, int interval, addresses=(), int family=4,
           src=None, dst=None, int auth_type=0, auth_data=b"", bint pseudo_header=True):
    """Build one VRRP message (no IP header).

    interval is in seconds for v2 and centiseconds for v3. The v3 checksum
    covers the pseudo-header of src/dst (the real destination: group or
    unicast peer); pseudo_header=False gives the RFC 9568 IPv4 reading.
    """
    cdef _Fields fields = _Fields(version, vrid, priority, interval, addresses, family,
                                  src, dst, auth_type, auth_data, pseudo_header)
    cdef advert_t adv
    fields.build(&adv)
    try:
        return PyBytes_FromStringAndSize(<char *>adv.msg, adv.len)
    finally:
        free(adv.msg)


def ipv4_packet(message, src, dst, *, int ttl=255, int tos=0xc0):
    """Wrap a VRRP message in an IPv4 header (for IP_HDRINCL and tests)."""
    cdef bytes msg = bytes(message)
    cdef uint32_t total = IPV4_HDR_LEN + len(msg)
    if total > 0xffff:
        raise WireError("message too long for IPv4")
    cdef bytearray pkt = bytearray(IPV4_HDR_LEN)
    pkt[0] = 0x45
    pkt[1] = tos & 0xff
    pkt[2] = total >> 8
    pkt[3] = total & 0xff
    pkt[8] = ttl & 0xff
    pkt[9] = VRRP_PROTO
    pkt[12:16] = pack_addr(src, 4, "src")
    pkt[16:20] = pack_addr(dst, 4, "dst")
    cdef uint16_t check = ~csum_fold(csum_partial(<const uint8_t *><char *>pkt, IPV4_HDR_LEN, 0))
    memcpy(<char *>pkt + 10, &check, 2)
    return bytes(pkt) + msg


cdef str ntop(uint8_t family, const uint8_t *addr):
    cdef bytes packed = PyBytes_FromStringAndSize(<const char *>addr, addr_len(family))
    return socket.inet_ntop(socket.AF_INET if family == 4 else socket.AF_INET6, packed)


cdef class Advert:
    """A decoded advertisement, for tools and tests (not the hot path).

    Fields the decoder did not reach before rejecting the packet are None.
    """
    cdef readonly object reason
    cdef readonly object checksum
    cdef readonly int family
    cdef readonly int ifindex
    cdef readonly object src, dst, ttl
    cdef readonly object version, type, vrid, priority, count, interval, auth_type
    cdef readonly object addresses, auth_data

    @property
    def ok(self):
        return self.reason == 0

    @property
    def error(self):
        """None when the packet is valid, else the reason label."""
        return None if self.reason == 0 else REASONS[self.reason]

    @property
    def interval_cs(self):
        if self.interval is None:
            return None
        return self.interval * 100 if self.version == 2 else self.interval

    def as_dict(self):
        return {
            "src": self.src, "dst": self.dst, "ttl": self.ttl,
            "version": self.version, "type": self.type, "vrid": self.vrid,
            "priority": self.priority, "count": self.count,
            "interval_cs": self.interval_cs, "auth_type": self.auth_type,
            "addresses": list(self.addresses) if self.addresses is not None else None,
            "checksum": self.checksum, "error": self.error,
        }

    def __repr__(self):
        return f"Advert({self.as_dict()!r})"


cdef Advert make_advert(const vrrp_adv_t *r, const uint8_t *data):
    cdef Advert a = Advert.__new__(Advert)
    cdef uint16_t alen = addr_len(r.family)
    cdef const uint8_t *addrs
    cdef int i
    a.reason = Reason(r.reason)
    a.checksum = CHECKSUM_LABELS[r.checksum]
    a.family = r.family
    a.ifindex = r.ifindex
    if r.have & HAVE_IP:
        a.src = ntop(r.family, r.src)
        a.dst = ntop(r.family, r.dst)
        a.ttl = r.ttl
    if r.have & HAVE_HEADER:
        a.version = r.version
        a.type = r.type
        a.vrid = r.vrid
        a.priority = r.priority
        a.count = r.count
        a.interval = r.interval
        a.auth_type = r.auth_type if r.version == 2 else None
    if r.have & HAVE_ADDRS:
        addrs = data + r.msg_off + VRRP_HDR_LEN
        a.addresses = tuple([ntop(r.family, addrs + i * alen) for i in range(r.count)])
        if r.version == 2:
            a.auth_data = PyBytes_FromStringAndSize(
                <const char *>addrs + r.count * alen, VRRP_AUTH_LEN)
    return a


cdef int fill_slot(rx_slot_t *slot, int family, const uint8_t *data, Py_ssize_t n,
                   object src, object dst, int hoplimit, int ifindex, int min_ttl) except -1:
    if family not in (4, 6):
        raise WireError(f"family must be 4 or 6, not {family!r}")
    if not 0 <= min_ttl <= 255 or not 0 <= hoplimit <= 255:
        raise WireError("TTL and hop limit are 0..255")
    slot.family = family
    slot.data = data
    slot.len = <uint32_t>n
    slot.ifindex = ifindex
    slot.min_ttl = min_ttl
    slot.hoplimit = hoplimit
    if family == 6:
        if src is None or dst is None:
            raise WireError("IPv6 datagrams need src and dst (from msg_name and IPV6_PKTINFO)")
        memcpy(slot.src, PyBytes_AS_STRING(pack_addr(src, 6, "src")), 16)
        memcpy(slot.dst, PyBytes_AS_STRING(pack_addr(dst, 6, "dst")), 16)
    return 0


def decode_ipv4(data, *, int ifindex=0, int min_ttl=255):
    """Decode an IPv4 datagram (IP header included, as a raw socket reads it)."""
    cdef bytes buf = bytes(data)
    cdef rx_slot_t slot
    cdef vrrp_adv_t res
    fill_slot(&slot, 4, <const uint8_t *>PyBytes_AS_STRING(buf), len(buf),
              None, None, 0, ifindex, min_ttl)
    vrrp_decode(&slot, &res)
    return make_advert(&res, slot.data)


def decode_ipv6(payload, src, dst, int hoplimit, *, int ifindex=0, int min_ttl=255):
    """Decode an IPv6 VRRP payload; src/dst/hop limit come from the socket."""
    cdef bytes buf = bytes(payload)
    cdef rx_slot_t slot
    cdef vrrp_adv_t res
    fill_slot(&slot, 6, <const uint8_t *>PyBytes_AS_STRING(buf), len(buf),
              src, dst, hoplimit, ifindex, min_ttl)
    vrrp_decode(&slot, &res)
    return make_advert(&res, slot.data)


cdef class RxBatch:
    """Receive slots laid out for recvmmsg, decoded in one call.

    The IO layer writes datagrams straight into the slots (C level); add_*()
    copy datagrams in from Python for tests and benchmarks.
    """

    def __cinit__(self, Py_ssize_t capacity=64, Py_ssize_t slot_size=2048):
        cdef Py_ssize_t i
        if capacity < 1 or slot_size < IPV4_HDR_LEN:
            raise WireError("capacity must be >= 1 and slot_size >= 20")
        self.capacity = capacity
        self.slot_size = slot_size
        self.count = 0
        self.slots = <rx_slot_t *>calloc(capacity, sizeof(rx_slot_t))
        self.results = <vrrp_adv_t *>calloc(capacity, sizeof(vrrp_adv_t))
        self.arena = <uint8_t *>malloc(capacity * slot_size)
        if self.slots == NULL or self.results == NULL or self.arena == NULL:
            raise MemoryError()
        for i in range(capacity):
            self.slots[i].data = self.arena + i * slot_size

    def __dealloc__(self):
        free(self.slots)
        free(self.results)
        free(self.arena)

    def __len__(self):
        return self.count

    def clear(self):
        self.count = 0

    cdef Py_ssize_t next_slot(self) except -1:
        if self.count >= self.capacity:
            raise WireError(f"batch is full ({self.capacity} datagrams)")
        return self.count

    cdef Py_ssize_t add(self, int family, data, src, dst, int hoplimit, int ifindex,
                        int min_ttl) except -1:
        cdef Py_ssize_t i = self.next_slot()
        cdef const unsigned char[:] view = memoryview(bytes(data))
        cdef uint8_t *area = self.arena + i * self.slot_size
        # Longer datagrams are cut to the slot, as recvmmsg would truncate them.
        cdef Py_ssize_t n = min(view.shape[0], self.slot_size)
        if n:
            memcpy(area, &view[0], n)
        fill_slot(&self.slots[i], family, area, n, src, dst, hoplimit, ifindex, min_ttl)
        self.count += 1
        return i

    def add_ipv4(self, data, *, int ifindex=0, int min_ttl=255):
        return self.add(4, data, None, None, 0, ifindex, min_ttl)

    def add_ipv6(self, payload, src, dst, int hoplimit, *, int ifindex=0, int min_ttl=255):
        return self.add(6, payload, src, dst, hoplimit, ifindex, min_ttl)

    cdef Py_ssize_t decode_all(self) noexcept nogil:
        cdef Py_ssize_t i, ok = 0
        for i in range(self.count):
            if vrrp_decode(&self.slots[i], &self.results[i]) == R_OK:
                ok += 1
        return ok

    def decode(self):
        """Decode every filled slot; returns how many are valid."""
        cdef Py_ssize_t ok
        with nogil:
            ok = self.decode_all()
        return ok

    def reason_counts(self):
        """{label: count} over the decoded slots (zero counts omitted)."""
        counts = [0] * R_NREASONS
        for i in range(self.count):
            counts[self.results[i].reason] += 1
        return {REASONS[r]: c for r, c in enumerate(counts) if c}

    def __getitem__(self, Py_ssize_t i):
        if not 0 <= i < self.count:
            raise IndexError(i)
        return make_advert(&self.results[i], self.slots[i].data)


cdef class AdvertTable:
    """Per-instance prebuilt adverts; refresh() rewrites priority/interval in place."""

    def __cinit__(self, Py_ssize_t capacity=16):
        if capacity < 1:
            raise WireError("capacity must be >= 1")
        self.capacity = capacity
        self.count = 0
        self.adverts = <advert_t *>calloc(capacity, sizeof(advert_t))
        if self.adverts == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.adverts != NULL:
            for i in range(self.count):
                free(self.adverts[i].msg)
            free(self.adverts)

    def __len__(self):
        return self.count

    def reserve(self, Py_ssize_t capacity):
        """Grow the table to hold at least `capacity` adverts."""
        cdef advert_t *grown
        if capacity <= self.capacity:
            return
        grown = <advert_t *>realloc(self.adverts, capacity * sizeof(advert_t))
        if grown == NULL:
            raise MemoryError()
        self.adverts = grown
        self.capacity = capacity

    def add(self, *, int version, int vrid, int priority, int interval, addresses=(),
            int family=4, src=None, dst=None, int auth_type=0, auth_data=b"",
            bint pseudo_header=True):
        """Prebuild an advert (arguments as encode()); returns its index."""
        cdef _Fields fields = _Fields(version, vrid, priority, interval, addresses, family,
                                      src, dst, auth_type, auth_data, pseudo_header)
        if self.count >= self.capacity:
            raise WireError(f"table is full ({self.capacity} adverts)")
        fields.build(&self.adverts[self.count])
        self.count += 1
        return self.count - 1

    cdef advert_t *get(self, Py_ssize_t i) except NULL:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return &self.adverts[i]

    def refresh(self, Py_ssize_t i, int priority, int interval):
        cdef advert_t *adv = self.get(i)
        max_interval = 255 if adv.version == 2 else 4095
        if not 0 <= priority <= 255 or not 1 <= interval <= max_interval:
            raise WireError(f"priority 0..255 and interval 1..{max_interval} expected")
        advert_refresh(adv, priority, interval)

    def refresh_all(self, int priority, int interval):
        """Refresh every advert (what an engine tick does for its masters)."""
        cdef Py_ssize_t i
        max_interval = 4095
        for i in range(self.count):
            if self.adverts[i].version == 2:
                max_interval = 255
                break
        if not 0 <= priority <= 255 or not 1 <= interval <= max_interval:
            raise WireError(f"priority 0..255 and interval 1..{max_interval} expected")
        with nogil:
            for i in range(self.count):
                advert_refresh(&self.adverts[i], <uint8_t>priority, <uint16_t>interval)

    def message(self, Py_ssize_t i):
        cdef advert_t *adv = self.get(i)
        return PyBytes_FromStringAndSize(<char *>adv.msg, adv.len)
