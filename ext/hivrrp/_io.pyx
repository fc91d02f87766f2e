# cython: language_level=3
"""Batched socket IO: recvmmsg into an RxBatch, sendmmsg from the engine's TX.

Sockets are created and configured in Python (hivrrp.kernel.sockets); this module
only moves datagrams, one system call per batch, with the interface, IPv6
addresses and hop limit taken from ancillary data. FramePath sends the
multicast IPv4 adverts as whole Ethernet frames on an AF_PACKET socket, which
skips the IP layer's per-packet work (route lookup, neighbour output,
netfilter): about half the kernel's time per advert (bench/sendpath_micro.py).
"""

from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_FromStringAndSize

from hivrrp._engine cimport Engine, tx_t
from hivrrp._socketapi cimport (
    AF_INET, AF_INET6, AF_PACKET, CMSG_DATA, CMSG_FIRSTHDR, CMSG_LEN, CMSG_NXTHDR, CMSG_SPACE,
    IP_PKTINFO, IPPROTO_IP, IPPROTO_IPV6, IPV6_HOPLIMIT, IPV6_PKTINFO, MSG_DONTWAIT, MSG_TRUNC,
    cmsghdr, htons, in6_addr, in6_pktinfo, in_addr, in_pktinfo, iovec, mmsghdr, msghdr,
    recvmmsg, sendmmsg, sockaddr_in, sockaddr_in6, sockaddr_ll, socklen_t,
)
from hivrrp._wire cimport RxBatch, csum_fold, csum_partial

from os import urandom as os_urandom

cdef enum:
    CONTROL_SIZE = 128      # room for PKTINFO + HOPLIMIT (+ slack) per message


cdef class PacketIO:
    """One raw socket's batched receive and send buffers."""
    cdef readonly int fd
    cdef readonly int family
    cdef readonly Py_ssize_t capacity
    cdef mmsghdr *msgs
    cdef iovec *iov
    cdef uint8_t *control
    cdef sockaddr_in6 *names          # large enough for either family
    cdef readonly unsigned long long received
    cdef readonly unsigned long long truncated
    cdef readonly unsigned long long sent
    cdef readonly unsigned long long send_errors
    cdef readonly int last_errno
    # The last refused send's interface and destination, for its log line.
    cdef readonly int last_error_ifindex
    cdef uint8_t last_error_dst[16]

    def __cinit__(self, int fd, int family, Py_ssize_t capacity=256):
        if family not in (4, 6):
            raise ValueError("family is 4 or 6")
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.fd = fd
        self.family = family
        self.capacity = capacity
        self.msgs = <mmsghdr *>calloc(capacity, sizeof(mmsghdr))
        self.iov = <iovec *>calloc(capacity, sizeof(iovec))
        self.control = <uint8_t *>calloc(capacity, CONTROL_SIZE)
        self.names = <sockaddr_in6 *>calloc(capacity, sizeof(sockaddr_in6))
        if self.msgs == NULL or self.iov == NULL or self.control == NULL or self.names == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.msgs)
        free(self.iov)
        free(self.control)
        free(self.names)

    def receive(self, RxBatch batch):
        """Read what is queued (one recvmmsg) into the free slots of `batch`.

        Returns the number of datagrams read; 0 when nothing was waiting.
        """
        cdef Py_ssize_t room = min(batch.capacity - batch.count, self.capacity)
        cdef Py_ssize_t first = batch.count, i
        cdef int n
        if room <= 0:
            return 0
        for i in range(room):
            self.iov[i].iov_base = <void *>batch.slots[first + i].data
            self.iov[i].iov_len = batch.slot_size
            memset(&self.msgs[i].msg_hdr, 0, sizeof(msghdr))
            self.msgs[i].msg_hdr.msg_iov = &self.iov[i]
            self.msgs[i].msg_hdr.msg_iovlen = 1
            self.msgs[i].msg_hdr.msg_name = &self.names[i]
            self.msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_in6)
            self.msgs[i].msg_hdr.msg_control = self.control + i * CONTROL_SIZE
            self.msgs[i].msg_hdr.msg_controllen = CONTROL_SIZE
        # With the GIL held: a non-blocking call, and releasing the GIL would hand
        # it to a busy worker thread for a whole switch interval (see _engine.receive).
        n = recvmmsg(self.fd, self.msgs, <unsigned int>room, MSG_DONTWAIT, NULL)
        if n < 0:
            if errno == EAGAIN or errno == EINTR:  # EWOULDBLOCK == EAGAIN on Linux
                return 0
            self.last_errno = errno
            raise OSError(errno, "recvmmsg failed")
        for i in range(n):
            self.fill_slot(batch, first + i, i)
        batch.count = first + n
        self.received += n
        return n

    cdef void fill_slot(self, RxBatch batch, Py_ssize_t slot, Py_ssize_t i):
        cdef msghdr *hdr = &self.msgs[i].msg_hdr
        cdef cmsghdr *cmsg
        cdef in_pktinfo *info4
        cdef in6_pktinfo *info6
        cdef int hops
        batch.slots[slot].len = self.msgs[i].msg_len
        if hdr.msg_flags & MSG_TRUNC:
            # Cut to the slot: the decoder then reports a length error.
            batch.slots[slot].len = <uint32_t>batch.slot_size
            self.truncated += 1
        batch.slots[slot].family = self.family
        batch.slots[slot].min_ttl = 255
        batch.slots[slot].ifindex = -1
        batch.slots[slot].hoplimit = 0
        if self.family == 6:
            memcpy(batch.slots[slot].src, self.names[i].sin6_addr.s6_addr, 16)
            memset(batch.slots[slot].dst, 0, 16)
        cmsg = CMSG_FIRSTHDR(hdr)
        while cmsg != NULL:
            if cmsg.cmsg_level == IPPROTO_IP and cmsg.cmsg_type == IP_PKTINFO:
                info4 = <in_pktinfo *>CMSG_DATA(cmsg)
                batch.slots[slot].ifindex = info4.ipi_ifindex
            elif cmsg.cmsg_level == IPPROTO_IPV6 and cmsg.cmsg_type == IPV6_PKTINFO:
                info6 = <in6_pktinfo *>CMSG_DATA(cmsg)
                batch.slots[slot].ifindex = info6.ipi6_ifindex
                memcpy(batch.slots[slot].dst, info6.ipi6_addr.s6_addr, 16)
            elif cmsg.cmsg_level == IPPROTO_IPV6 and cmsg.cmsg_type == IPV6_HOPLIMIT:
                memcpy(&hops, CMSG_DATA(cmsg), sizeof(int))
                batch.slots[slot].hoplimit = <uint8_t>hops
            cmsg = CMSG_NXTHDR(hdr, cmsg)

    cdef void note_error(self, Py_ssize_t n) noexcept nogil:
        """Keep message n's interface and destination (it was refused)."""
        cdef cmsghdr *cmsg = CMSG_FIRSTHDR(&self.msgs[n].msg_hdr)
        if self.family == 4:
            self.last_error_ifindex = (<in_pktinfo *>CMSG_DATA(cmsg)).ipi_ifindex
            memcpy(self.last_error_dst, &(<sockaddr_in *>&self.names[n]).sin_addr.s_addr, 4)
        else:
            self.last_error_ifindex = self.names[n].sin6_scope_id
            memcpy(self.last_error_dst, self.names[n].sin6_addr.s6_addr, 16)

    @property
    def last_error_destination(self):
        """The last refused send's destination address (packed), or None."""
        if not self.send_errors:
            return None
        return PyBytes_FromStringAndSize(<char *>self.last_error_dst, 4 if self.family == 4 else 16)

    def send(self, Engine engine, FramePath frames=None):
        """Send the engine's queued adverts of this socket's family (sendmmsg).

        With `frames`, the adverts it takes (multicast IPv4 on an Ethernet
        link it knows) go out as frames on its packet socket, the rest here.
        Returns how many went out by either; failures (a peer route gone, a
        link down) are counted in send_errors and skipped, never raised.
        """
        cdef Py_ssize_t k, n = 0, done = 0
        cdef tx_t *t
        cdef sockaddr_in *name4
        cdef sockaddr_in6 *name6
        cdef cmsghdr *cmsg
        cdef in_pktinfo *info4
        cdef in6_pktinfo *info6
        cdef int result
        cdef Py_ssize_t total = 0
        cdef unsigned long long frames_before = frames.sent if frames is not None else 0
        k = 0
        while k < engine.tx_count:
            n = 0
            while k < engine.tx_count and n < self.capacity:
                t = &engine.tx[k]
                k += 1
                if t.family != self.family:
                    continue
                if frames is not None and frames.take(t, engine.tx_arena + t.offset):
                    continue
                memset(&self.msgs[n].msg_hdr, 0, sizeof(msghdr))
                memset(&self.names[n], 0, sizeof(sockaddr_in6))
                memset(self.control + n * CONTROL_SIZE, 0, CONTROL_SIZE)
                self.iov[n].iov_base = <void *>(engine.tx_arena + t.offset)
                self.iov[n].iov_len = t.len
                self.msgs[n].msg_hdr.msg_iov = &self.iov[n]
                self.msgs[n].msg_hdr.msg_iovlen = 1
                self.msgs[n].msg_hdr.msg_name = &self.names[n]
                self.msgs[n].msg_hdr.msg_control = self.control + n * CONTROL_SIZE
                if self.family == 4:
                    name4 = <sockaddr_in *>&self.names[n]
                    name4.sin_family = AF_INET
                    memcpy(&name4.sin_addr.s_addr, t.dst, 4)
                    self.msgs[n].msg_hdr.msg_namelen = sizeof(sockaddr_in)
                    self.msgs[n].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo))
                    cmsg = CMSG_FIRSTHDR(&self.msgs[n].msg_hdr)
                    cmsg.cmsg_level = IPPROTO_IP
                    cmsg.cmsg_type = IP_PKTINFO
                    cmsg.cmsg_len = CMSG_LEN(sizeof(in_pktinfo))
                    info4 = <in_pktinfo *>CMSG_DATA(cmsg)
                    info4.ipi_ifindex = t.ifindex
                    memcpy(&info4.ipi_spec_dst.s_addr, t.src, 4)
                else:
                    name6 = &self.names[n]
                    name6.sin6_family = AF_INET6
                    memcpy(name6.sin6_addr.s6_addr, t.dst, 16)
                    name6.sin6_scope_id = t.ifindex
                    self.msgs[n].msg_hdr.msg_namelen = sizeof(sockaddr_in6)
                    self.msgs[n].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo))
                    cmsg = CMSG_FIRSTHDR(&self.msgs[n].msg_hdr)
                    cmsg.cmsg_level = IPPROTO_IPV6
                    cmsg.cmsg_type = IPV6_PKTINFO
                    cmsg.cmsg_len = CMSG_LEN(sizeof(in6_pktinfo))
                    info6 = <in6_pktinfo *>CMSG_DATA(cmsg)
                    info6.ipi6_ifindex = t.ifindex
                    memcpy(info6.ipi6_addr.s6_addr, t.src, 16)
                n += 1
            done = 0
            while done < n:
                # GIL held, as for recvmmsg: the socket is non-blocking.
                result = sendmmsg(self.fd, self.msgs + done, <unsigned int>(n - done), 0)
                if result < 0:
                    if errno == EINTR:
                        continue
                    # The first message of the rest failed: count it, go on.
                    self.last_errno = errno
                    self.send_errors += 1
                    self.note_error(done)
                    done += 1
                else:
                    done += result
                    total += result
        self.sent += total
        if frames is not None:
            frames.flush_c()
            total += frames.sent - frames_before   # take() flushes each full batch itself
        return total


# ---------------------------------------------------------------- frames

cdef extern from "<netinet/in.h>" nogil:
    int IP_MTU_DISCOVER
    int IP_PMTUDISC_WANT
    int IP_PMTUDISC_DO
    int IP_PMTUDISC_PROBE

cdef extern from "<sys/socket.h>" nogil:
    int SOCK_DGRAM
    int socket(int domain, int type, int protocol)
    int getsockopt(int fd, int level, int name, void *value, socklen_t *size)

cdef extern from "<unistd.h>" nogil:
    int close(int fd)


cdef int new_socket_pmtudisc() noexcept nogil:
    """IP_MTU_DISCOVER of an IPv4 socket made now: DONT where this namespace's
    net.ipv4.ip_no_pmtu_disc is set, else WANT (the kernel's inet_create)."""
    cdef int fd = socket(AF_INET, SOCK_DGRAM, 0)
    cdef int value = IP_PMTUDISC_WANT
    cdef socklen_t size = sizeof(int)
    if fd < 0:
        return value
    if getsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &value, &size) < 0:
        value = IP_PMTUDISC_WANT
    close(fd)
    return value


cdef enum:
    ETH_HLEN = 14
    HEADERS = ETH_HLEN + 20         # Ethernet + IPv4 header, written per packet
    HEADER_ROOM = 48                # per message, 16-byte aligned
    ETH_P_IP = 0x0800
    TOS_NETWORK_CONTROL = 0xC0      # as sockets.py sets IP_TOS on the raw socket
    IP_DF = 0x40                    # high byte of the flags / fragment offset field

# One link the packet path may send on, in an open-addressing table keyed by
# ifindex (slots are never emptied: a link gone is marked unusable).
ctypedef struct link_t:
    int32_t ifindex                 # -1: empty slot
    uint32_t mtu
    uint16_t ip_id                  # next IPv4 identification on this link
    uint8_t mac[6]
    uint8_t usable                  # Ethernet, known MAC: frames may go out here


cdef inline uint32_t link_hash(int32_t ifindex) noexcept nogil:
    return <uint32_t>ifindex * 2654435761U


cdef class FramePath:
    """Multicast IPv4 adverts as Ethernet frames on one AF_PACKET socket.

    Per packet it writes the 34 bytes of Ethernet and IPv4 header (the link's
    MAC, the group's multicast MAC, TOS 0xC0, TTL 255, DF as the raw socket
    sets it, an identification counter per link, the header checksum) as the
    kernel writes them for the raw IP socket; the VRRP message is not copied:
    the second iovec of each message points into the engine's TX arena,
    checksum included. What it does not take (unicast, IPv6, an unknown or
    non-Ethernet link, a frame over the link's MTU, which the kernel
    fragments on the IP path) the raw socket sends, each counted by reason.
    The daemon tells it the links (set_link) at start and on every netlink
    change: a new MAC is used from the next advert on.
    """
    cdef readonly int fd
    cdef readonly Py_ssize_t capacity
    cdef mmsghdr *msgs
    cdef iovec *iov                 # two per message: headers, VRRP message
    cdef uint8_t *headers
    cdef sockaddr_ll *names
    cdef link_t *links
    cdef uint32_t link_mask
    cdef Py_ssize_t link_used
    cdef Py_ssize_t pending
    cdef readonly unsigned long long sent
    cdef readonly unsigned long long send_errors
    cdef readonly int last_errno
    cdef readonly int last_error_ifindex    # the last refused frame's interface
    cdef readonly int pmtudisc      # the raw IPv4 socket's IP_MTU_DISCOVER
    cdef readonly bint df           # which sets DF on its adverts
    # adverts left to the raw socket, by reason
    cdef readonly unsigned long long raw_unicast
    cdef readonly unsigned long long raw_link
    cdef readonly unsigned long long raw_oversize
    # The last advert over its link's MTU: its interface and IP length.
    cdef readonly int last_oversize_ifindex
    cdef readonly int last_oversize_length

    def __cinit__(self, int fd, Py_ssize_t capacity=256, int pmtudisc=-1):
        """fd -1: builds frames (frames()) but sends none, for tests and tools.
        pmtudisc: the IP_MTU_DISCOVER of the raw IPv4 socket whose adverts
        the frames must equal; -1: an IPv4 socket's made now (both follow
        net.ipv4.ip_no_pmtu_disc when they are made, and only then)."""
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if pmtudisc < 0:
            pmtudisc = new_socket_pmtudisc()
        self.pmtudisc = pmtudisc
        # __ip_make_skb: DF for DO and PROBE, and for WANT on a datagram that
        # fits the route's MTU (the frames' do; a route with a locked MTU,
        # which would clear it, is not looked up: no routing here).
        self.df = pmtudisc in (IP_PMTUDISC_WANT, IP_PMTUDISC_DO, IP_PMTUDISC_PROBE)
        self.fd = fd
        self.capacity = capacity
        self.msgs = <mmsghdr *>calloc(capacity, sizeof(mmsghdr))
        self.iov = <iovec *>calloc(2 * capacity, sizeof(iovec))
        self.headers = <uint8_t *>calloc(capacity, HEADER_ROOM)
        self.names = <sockaddr_ll *>calloc(capacity, sizeof(sockaddr_ll))
        self.link_mask = 15
        self.links = <link_t *>malloc((self.link_mask + 1) * sizeof(link_t))
        if (self.msgs == NULL or self.iov == NULL or self.headers == NULL or self.names == NULL
                or self.links == NULL):
            raise MemoryError()
        for k in range(self.link_mask + 1):
            self.links[k].ifindex = -1

    def __dealloc__(self):
        free(self.msgs)
        free(self.iov)
        free(self.headers)
        free(self.names)
        free(self.links)

    # ------------------------------------------------------------ links

    cdef link_t *find(self, int32_t ifindex) noexcept nogil:
        cdef uint32_t slot = link_hash(ifindex) & self.link_mask
        while self.links[slot].ifindex != -1:
            if self.links[slot].ifindex == ifindex:
                return &self.links[slot]
            slot = (slot + 1) & self.link_mask
        return NULL

    cdef link_t *insert(self, int32_t ifindex) except NULL:
        cdef link_t *old
        cdef uint32_t old_mask, slot, k
        if 2 * (self.link_used + 1) > self.link_mask + 1:
            old, old_mask = self.links, self.link_mask
            self.links = <link_t *>malloc((2 * (old_mask + 1)) * sizeof(link_t))
            if self.links == NULL:
                self.links = old
                raise MemoryError()
            self.link_mask = 2 * old_mask + 1
            for k in range(self.link_mask + 1):
                self.links[k].ifindex = -1
            for k in range(old_mask + 1):
                if old[k].ifindex != -1:
                    slot = link_hash(old[k].ifindex) & self.link_mask
                    while self.links[slot].ifindex != -1:
                        slot = (slot + 1) & self.link_mask
                    self.links[slot] = old[k]
            free(old)
        slot = link_hash(ifindex) & self.link_mask
        while self.links[slot].ifindex != -1:
            slot = (slot + 1) & self.link_mask
        memset(&self.links[slot], 0, sizeof(link_t))
        self.links[slot].ifindex = ifindex
        self.link_used += 1
        return &self.links[slot]

    def set_link(self, int ifindex, mac, int mtu, bint usable=True, int ip_id=-1):
        """Frames on `ifindex` from `mac` (6 bytes) and at most `mtu` bytes of IP;
        usable=False: none (not Ethernet, or gone). ip_id: the first IPv4
        identification on a link new to the table (-1: random, as the kernel's)."""
        cdef bytes packed = bytes(mac)
        cdef link_t *link
        if ifindex <= 0 or mtu < 0:
            raise ValueError("ifindex > 0, mtu >= 0")
        if usable and len(packed) != 6:
            raise ValueError("an Ethernet link's MAC is 6 bytes")
        link = self.find(ifindex)
        if link == NULL:
            link = self.insert(ifindex)
            link.ip_id = <uint16_t>(int.from_bytes(os_urandom(2), "little") if ip_id < 0
                                     else ip_id)
        elif ip_id >= 0:
            link.ip_id = <uint16_t>ip_id
        link.mtu = <uint32_t>mtu
        link.usable = usable
        if usable:
            memcpy(link.mac, <const char *>packed, 6)

    def forget_link(self, int ifindex):
        """No frames on `ifindex` any more (the link is gone)."""
        cdef link_t *link = self.find(ifindex)
        if link != NULL:
            link.usable = 0

    def link(self, int ifindex):
        """(mac, mtu, usable, next ip_id) as the table has it, or None."""
        cdef link_t *link = self.find(ifindex)
        if link == NULL:
            return None
        return (PyBytes_FromStringAndSize(<char *>link.mac, 6), link.mtu, bool(link.usable),
                link.ip_id)

    # ------------------------------------------------------------ packets

    cdef link_t *usable_link(self, const tx_t *t) noexcept nogil:
        """The link a TX entry goes out on as a frame, or NULL (counted by reason)."""
        cdef link_t *link
        if t.family != 4:
            return NULL
        if (t.dst[0] & 0xF0) != 0xE0:
            self.raw_unicast += 1       # a peer's MAC is the neighbour table's business
            return NULL
        link = self.find(t.ifindex)
        if link == NULL or not link.usable:
            self.raw_link += 1
            return NULL
        if 20 + <uint32_t>t.len > link.mtu:
            self.raw_oversize += 1
            self.last_oversize_ifindex = t.ifindex
            self.last_oversize_length = 20 + t.len
            return NULL
        return link

    cdef void write_headers(self, uint8_t *h, const tx_t *t, link_t *link) noexcept nogil:
        cdef uint16_t total = 20 + t.len
        cdef uint16_t check
        # Ethernet: the group's MAC (RFC 1112 6.4), the link's, IPv4.
        h[0] = 0x01
        h[1] = 0x00
        h[2] = 0x5E
        h[3] = t.dst[1] & 0x7F
        h[4] = t.dst[2]
        h[5] = t.dst[3]
        memcpy(h + 6, link.mac, 6)
        h[12] = ETH_P_IP >> 8
        h[13] = ETH_P_IP & 0xFF
        # IPv4 as raw_sendmsg makes it: no options, DF as the raw socket's
        # pmtudisc says (see __cinit__), an identification from a counter
        # (the kernel's too: DF alone does not make it 0, the socket may
        # fragment).
        h += ETH_HLEN
        h[0] = 0x45
        h[1] = TOS_NETWORK_CONTROL
        h[2] = total >> 8
        h[3] = total & 0xFF
        h[4] = link.ip_id >> 8
        h[5] = link.ip_id & 0xFF
        link.ip_id += 1
        h[6] = IP_DF if self.df else 0
        h[7] = 0
        h[8] = 255
        h[9] = 112
        h[10] = 0
        h[11] = 0
        memcpy(h + 12, t.src, 4)
        memcpy(h + 16, t.dst, 4)
        check = ~csum_fold(csum_partial(h, 20, 0))
        memcpy(h + 10, &check, 2)       # the sum is byte-order independent (RFC 1071)

    cdef bint take(self, const tx_t *t, const uint8_t *message) noexcept nogil:
        """Queue the advert as a frame if the packet path serves it (flushing a
        full batch); False leaves it to the raw socket."""
        cdef link_t *link = self.usable_link(t)
        cdef Py_ssize_t n = self.pending
        cdef uint8_t *h
        if link == NULL:
            return False
        h = self.headers + n * HEADER_ROOM
        self.write_headers(h, t, link)
        self.iov[2 * n].iov_base = <void *>h
        self.iov[2 * n].iov_len = HEADERS
        self.iov[2 * n + 1].iov_base = <void *>message
        self.iov[2 * n + 1].iov_len = t.len
        memset(&self.names[n], 0, sizeof(sockaddr_ll))
        self.names[n].sll_family = AF_PACKET
        self.names[n].sll_protocol = htons(ETH_P_IP)
        self.names[n].sll_ifindex = t.ifindex
        self.names[n].sll_halen = 6
        memcpy(self.names[n].sll_addr, h, 6)
        memset(&self.msgs[n].msg_hdr, 0, sizeof(msghdr))
        self.msgs[n].msg_hdr.msg_name = &self.names[n]
        self.msgs[n].msg_hdr.msg_namelen = sizeof(sockaddr_ll)
        self.msgs[n].msg_hdr.msg_iov = &self.iov[2 * n]
        self.msgs[n].msg_hdr.msg_iovlen = 2
        self.pending = n + 1
        if self.pending == self.capacity:
            self.flush_c()
        return True

    cdef Py_ssize_t flush_c(self) noexcept nogil:
        cdef Py_ssize_t done = 0, total = 0, n = self.pending
        cdef int result
        self.pending = 0
        if self.fd < 0:
            return 0
        while done < n:
            # GIL held, as for the raw socket: the socket is non-blocking.
            result = sendmmsg(self.fd, self.msgs + done, <unsigned int>(n - done), 0)
            if result < 0:
                if errno == EINTR:
                    continue
                self.last_errno = errno
                self.last_error_ifindex = self.names[done].sll_ifindex
                self.send_errors += 1
                done += 1
            else:
                done += result
                total += result
        self.sent += total
        return total

    def flush(self):
        """Send what take() queued; returns how many went out."""
        return self.flush_c()

    def frames(self, Engine engine):
        """The frames the engine's queued adverts would go out as, sending
        nothing: a list of (ifindex, frame), None for those left to the raw
        socket. For tests and tools; each call advances the links' IP ids."""
        cdef Py_ssize_t k
        cdef tx_t *t
        cdef link_t *link
        cdef uint8_t h[HEADER_ROOM]
        out = []
        for k in range(engine.tx_count):
            t = &engine.tx[k]
            link = self.usable_link(t)
            if link == NULL:
                out.append((t.ifindex, None))
                continue
            self.write_headers(h, t, link)
            out.append((t.ifindex, PyBytes_FromStringAndSize(<char *>h, HEADERS)
                        + PyBytes_FromStringAndSize(<char *>engine.tx_arena + t.offset, t.len)))
        return out

    def counters(self):
        return {"sent": self.sent, "send_errors": self.send_errors,
                "raw_unicast": self.raw_unicast, "raw_link": self.raw_link,
                "raw_oversize": self.raw_oversize}
