# cython: language_level=3
"""Batched raw-socket IO: recvmmsg into an RxBatch, sendmmsg from the engine's TX.

Sockets are created and configured in Python (hivrrp.kernel.sockets); this module
only moves datagrams, one system call per batch, with the interface, IPv6
addresses and hop limit taken from ancillary data.
"""

from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from hivrrp._engine cimport Engine, tx_t
from hivrrp._wire cimport RxBatch

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<netinet/in.h>" nogil:
    ctypedef uint32_t in_addr_t
    struct in_addr:
        in_addr_t s_addr
    struct in6_addr:
        uint8_t s6_addr[16]
    struct sockaddr_in:
        uint16_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        uint16_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    struct in_pktinfo:
        int ipi_ifindex
        in_addr ipi_spec_dst
        in_addr ipi_addr
    struct in6_pktinfo:
        in6_addr ipi6_addr
        unsigned int ipi6_ifindex
    int IPPROTO_IP
    int IPPROTO_IPV6
    int IP_PKTINFO
    int IPV6_PKTINFO
    int IPV6_HOPLIMIT

cdef extern from "<sys/socket.h>" nogil:
    ctypedef uint32_t socklen_t
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type
    cmsghdr *CMSG_FIRSTHDR(msghdr *msg)
    cmsghdr *CMSG_NXTHDR(msghdr *msg, cmsghdr *cmsg)
    unsigned char *CMSG_DATA(cmsghdr *cmsg)
    size_t CMSG_SPACE(size_t length)
    size_t CMSG_LEN(size_t length)
    int recvmmsg(int fd, mmsghdr *msgs, unsigned int vlen, int flags, void *timeout)
    int sendmmsg(int fd, mmsghdr *msgs, unsigned int vlen, int flags)
    int MSG_DONTWAIT
    int MSG_TRUNC
    int AF_INET
    int AF_INET6

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

    def send(self, Engine engine):
        """Send the engine's queued adverts of this socket's family (sendmmsg).

        Returns how many went out; failures (a peer route gone, a link down)
        are counted in send_errors and skipped, never raised.
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
        k = 0
        while k < engine.tx_count:
            n = 0
            while k < engine.tx_count and n < self.capacity:
                t = &engine.tx[k]
                k += 1
                if t.family != self.family:
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
                    done += 1
                else:
                    done += result
                    total += result
        self.sent += total
        return total
