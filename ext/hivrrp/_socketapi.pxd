# The C socket API that _io and _announce share (declarations only, no module
# of its own): batched sends and receives with sendmmsg/recvmmsg, ancillary
# data, AF_PACKET addresses.

from libc.stdint cimport uint8_t, uint16_t, uint32_t

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
    int AF_PACKET

cdef extern from "<linux/if_packet.h>" nogil:
    struct sockaddr_ll:
        unsigned short sll_family
        uint16_t sll_protocol
        int sll_ifindex
        unsigned short sll_hatype
        unsigned char sll_pkttype
        unsigned char sll_halen
        unsigned char sll_addr[8]

cdef extern from "<arpa/inet.h>" nogil:
    uint16_t htons(uint16_t)
