# C-level interface of the VRRP wire codec, for the engine and the packet IO
# layer to cimport. Everything here works on raw buffers and C structs so that
# the per-packet path creates no Python object.

from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    VRRP_PROTO = 112
    VRRP_TYPE_ADVERT = 1
    VRRP_HDR_LEN = 8
    VRRP_AUTH_LEN = 8
    VRRP_MAX_ADDRS = 255
    # v3/IPv6 with 255 addresses; v2 with 255 IPv4 addresses and auth is smaller
    VRRP_MAX_MSG = 8 + 255 * 16
    IPV4_HDR_LEN = 20
    IPV6_HDR_LEN = 40

# Why a packet was dropped. Order and labels are part of the metrics API
# (they become `reason` label values): append, never renumber.
cdef enum drop_reason:
    R_OK = 0
    R_IP_HEADER      # IPv4 header unusable (IP version nibble, IHL, total length < IHL)
    R_PROTOCOL       # IP protocol is not 112
    R_LENGTH         # truncated, or not exactly header + count * address (+ auth in v2)
    R_TTL            # TTL / hop limit below what the socket accepts (255 for multicast)
    R_VERSION        # VRRP version not 2/3, or v2 over IPv6
    R_TYPE           # VRRP type is not 1 (advertisement)
    R_CHECKSUM       # checksum wrong under every accepted reading
    R_VRID           # VRID 0
    R_INTERVAL       # advertisement interval 0
    R_NREASONS

cdef enum checksum_verdict:
    CK_UNCHECKED = 0     # the packet was rejected before the checksum step
    CK_OK                # v2 (message only) or v3/IPv6 (pseudo-header)
    CK_OK_PSEUDO         # v3/IPv4 with the IPv4 pseudo-header (RFC 5798 text, keepalived/FRR)
    CK_OK_NO_PSEUDO      # v3/IPv4 without it (RFC 9568 reading, Cisco/Juniper)
    CK_BAD

# Which parts of the result are meaningful (the decode stops at the first error).
cdef enum:
    HAVE_IP = 1          # src, dst, ttl
    HAVE_HEADER = 2      # version .. interval, auth_type
    HAVE_ADDRS = 4       # address list (and v2 auth data) are complete

# One received datagram as recvmmsg delivers it. For IPv4 the data starts at
# the IP header (raw sockets include it); for IPv6 it is the VRRP payload and
# the addresses and hop limit come from the msg_name / ancillary data.
ctypedef struct rx_slot_t:
    const uint8_t *data
    uint32_t len
    int32_t ifindex
    uint8_t family          # 4 or 6
    uint8_t hoplimit        # IPv6 only
    uint8_t min_ttl         # 255 unless the socket serves routed unicast peers
    uint8_t src[16]         # IPv6 only
    uint8_t dst[16]         # IPv6 only

ctypedef struct vrrp_adv_t:
    uint8_t reason
    uint8_t have
    uint8_t checksum
    uint8_t family
    uint8_t version
    uint8_t type
    uint8_t vrid
    uint8_t priority
    uint8_t count
    uint8_t auth_type       # v2 only
    uint8_t ttl
    uint16_t interval       # v2: seconds; v3: centiseconds, reserved bits masked
    uint16_t msg_off        # VRRP message offset in the slot data
    uint16_t msg_len
    int32_t ifindex
    uint8_t src[16]
    uint8_t dst[16]

# A prebuilt advertisement: the VRRP message with a precomputed partial
# checksum, so that a priority or interval change costs a few additions.
ctypedef struct advert_t:
    uint8_t *msg
    uint16_t len
    uint8_t version
    uint8_t family
    uint64_t base_sum       # RFC 1071 sum (native order) of all but words 1-3, incl. pseudo-header

cdef int vrrp_decode(const rx_slot_t *slot, vrrp_adv_t *out) noexcept nogil
cdef uint16_t addr_len(uint8_t family) noexcept nogil
cdef void advert_refresh(advert_t *adv, uint8_t priority, uint16_t interval) noexcept nogil
cdef uint64_t csum_partial(const uint8_t *buf, size_t n, uint64_t acc) noexcept nogil
cdef uint16_t csum_fold(uint64_t acc) noexcept nogil


cdef class RxBatch:
    cdef rx_slot_t *slots
    cdef vrrp_adv_t *results
    cdef uint8_t *arena
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t slot_size
    cdef readonly Py_ssize_t count

    cdef Py_ssize_t decode_all(self) noexcept nogil
    cdef Py_ssize_t next_slot(self) except -1
    cdef Py_ssize_t add(self, int family, data, src, dst, int hoplimit, int ifindex,
                        int min_ttl) except -1


cdef class AdvertTable:
    cdef advert_t *adverts
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t count

    cdef advert_t *get(self, Py_ssize_t i) except NULL
