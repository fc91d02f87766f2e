# The sans-IO VRRP engine: instance table, state machine, timers, counters.

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

from hivrrp._wheel cimport TimerWheel
from hivrrp._wire cimport AdvertTable, RxBatch, rx_slot_t, vrrp_adv_t

# keepalived's numbering (its JSON/stats dumps), so tools can compare.
cdef enum:
    ST_INIT = 0
    ST_BACKUP = 1
    ST_MASTER = 2
    ST_FAULT = 3

# Why an event happened; labels in _engine.pyx EVENT_REASONS (append only).
cdef enum event_reason:
    EV_START = 0            # INIT -> BACKUP
    EV_OWNER                # -> MASTER at once: priority 255 (address owner)
    EV_MASTER_DOWN          # BACKUP -> MASTER: the master went silent
    EV_PREEMPT              # BACKUP -> MASTER: outranked a lower-priority master
    EV_RELEASED             # BACKUP -> MASTER: the master sent priority 0
    EV_HIGHER_PRIORITY      # MASTER -> BACKUP: heard a better master
    EV_FAULT                # -> FAULT
    EV_FAULT_CLEARED        # FAULT -> BACKUP (or MASTER for an owner)
    EV_STOP                 # -> INIT (admin stop / shutdown)
    EV_RX_LOWER_PRIORITY    # MASTER heard a lower-priority master (no state change)
    EV_PRIORITY             # effective priority changed (no state change)
    EV_SYNC_GROUP           # force(): a sync group moved this member
    EV_ADMIN                # force(): an operator asked for it
    EV_WANT_MASTER          # a sync-group member's master-down timer fired: it waits for its group
    EV_LEADER               # a follower took its leader's state (`follow`)
    EV_FOLLOW_REFRESH       # a master follower sent its refresh advert (no state change)
    EV_NREASONS

# Why an instance is in FAULT (keepalived's flags_if_fault): any set bit faults
# it. Labels in _engine.pyx FAULT_REASONS; the values are part of the API.
cdef enum fault_reason:
    FAULT_INTERFACE = 1
    FAULT_TRACKER = 2
    FAULT_NO_SOURCE = 4
    FAULT_CONFIG = 8
    FAULT_SYNC_GROUP = 16
    FAULT_ADMIN = 32

cdef enum:
    FAULT_ALL = 63
    # What a reload carries over: the daemon re-derives the rest from the
    # new config and the links it sees (interfaces, source addresses).
    FAULT_CARRIED = FAULT_TRACKER | FAULT_SYNC_GROUP | FAULT_ADMIN

cdef enum:
    IF_UNKNOWN_VRID = 16
    IF_VERSION_MISMATCH = 17
    IF_DROP_COLUMNS = 18

# Why a drop record was made (see drop_t): 1 .. R_NREASONS - 1 are the wire's
# reasons (_wire.pxd), then the engine's own checks. Labels in _engine.pyx
# DROP_RECORD_REASONS (append only).
cdef enum:
    D_UNKNOWN_VRID = 16         # no instance has its VRID on that interface
    D_VERSION_MISMATCH          # v2 advert for a v3 instance, or the reverse
    D_AUTH_INVALID_TYPE
    D_AUTH_TYPE_MISMATCH
    D_AUTH_FAILURE              # wrong auth_pass
    D_INTERVAL_MISMATCH         # v2 advert interval differs from ours
    D_ADDRESS_COUNT             # not as many VIPs as ours
    D_ADDRESS_LIST              # as many, but one of ours is missing
    D_NOT_PEER                  # unicast instance: the sender is not a peer
    D_NOT_GROUP                 # multicast instance: sent elsewhere than our group
    D_OWNER                     # owner_ignore_adverts: we are the address owner
    D_FOLLOW_MISMATCH           # a master follower heard another master (accepted, not obeyed)
    D_NREASONS

# One kind of dropped advert, for the log: the first drop of a kind (instance
# or interface, reason, sender) makes a record, later ones only count on it.
# Records live from one take_drops(everything=True) to the next.
ctypedef struct drop_t:
    int32_t instance            # -1: not tied to an instance
    int32_t ifindex
    uint8_t reason              # D_* or the wire's R_*
    uint8_t family
    uint8_t have                # the wire's HAVE_* bits: what the fields below hold
    uint8_t version             # the advert's
    uint8_t vrid
    uint8_t unused[3]
    uint32_t count              # drops of this kind since the record was made
    uint32_t taken              # of them, how many take_drops() has handed out
    int32_t detail[2]           # by reason: received / expected value
    uint8_t sender[16]
    uint8_t addr[16]            # by reason: our VIP missing from the advert, its destination

cdef enum:
    F_PREEMPT = 1
    F_LOWER_PRIO_NO_ADVERT = 2
    F_HIGHER_PRIO_SEND_ADVERT = 4
    F_UNICAST = 8
    F_HEARD_LOWER = 16          # backup is ignoring a lower-priority master
    F_HEARD_RELEASE = 32        # backup's timer was cut to Skew_Time by a priority-0 advert
    F_SYNC_MEMBER = 64          # becomes master only when its sync group says so (force())
    F_WANTS_MASTER = 128        # sync member whose master-down timer fired, no master heard since
    F_IGNORE_LINK = 256         # dont_track_primary: its interface's link state does not fault it
    F_OWNER_IGNORE_ADVERTS = 512  # at priority 255, drop every advert received (strict mode)
    F_FOLLOWER = 1024           # takes its leader's state (`follow`): no election, no advert timer

# Per-instance counters (names: _engine.pyx COUNTERS). The ones every
# received advert touches come first, in the instance's hot cache line.
cdef enum:
    C_ADVERTS_RX = 0
    C_CHECKSUM_PSEUDO_RX        # v3/IPv4 adverts that used the pseudo-header reading
    C_CHECKSUM_NO_PSEUDO_RX     # ... and those that used the RFC 9568 reading
    C_ADVERTS_TX
    C_BECAME_MASTER
    C_RELEASED_MASTER
    C_PACKET_LENGTH_ERRORS
    C_IP_TTL_ERRORS
    C_INVALID_TYPE
    C_INTERVAL_ERRORS
    C_ADDRESS_LIST_ERRORS
    C_AUTH_INVALID_TYPE
    C_AUTH_TYPE_MISMATCH
    C_AUTH_FAILURE
    C_PRIORITY_ZERO_RX
    C_PRIORITY_ZERO_TX
    C_OWNER_IGNORED             # dropped by owner_ignore_adverts
    C_FOLLOW_MISMATCH           # a master follower heard another router's advert for its VRID
    C_LEADER_TRANSITIONS        # a follower's state changes made by its leader's
    C_NCOUNTERS

# Field order is for the cache: line 0 holds what every received advert and
# timer reads, line 1 the addresses, line 2 starts with the hot counters.
ctypedef struct inst_t:
    uint8_t state
    uint8_t version
    uint8_t family
    uint8_t vrid
    uint8_t base_priority
    uint8_t effective_priority
    uint8_t auth_type
    uint8_t down_timer_adverts
    uint8_t master_priority        # last accepted advert's priority
    uint8_t unused
    uint16_t flags
    int32_t ifindex
    int32_t advert_first           # index in the AdvertTable / advert_dst
    int32_t advert_count           # 1 for multicast, one per unicast peer
    int32_t next_same_key          # demux chain for VRIDs shared by unicast instances
    uint32_t fault_flags
    int64_t adver_int_us
    int64_t master_adver_int_us
    int64_t preempt_at             # when a lower-priority master may be outranked; 0 = not yet heard
    int64_t preempt_delay_us
    uint8_t src[16]                # primary address: advert source and tie-break
    uint8_t group[16]              # multicast destination
    uint8_t master_src[16]         # last accepted advert's source; all zero = not heard yet
    uint8_t auth_data[8]
    int32_t priority_delta
    int32_t peer_first             # unicast peers in peer_addrs
    int32_t peer_count
    int64_t last_transition
    uint64_t counters[C_NCOUNTERS]
    # Followers (`follow`), cold: read when a leader changes state and when a
    # follower's refresh is due. A leader's followers are a chain through
    # next_follower, in the order they were added.
    int32_t leader                 # the leader's index; -1: elects on its own
    int32_t first_follower         # -1: leads nobody
    int32_t last_follower
    int32_t next_follower
    int32_t follower_count
    int64_t follow_refresh_us      # a master follower's refresh period; 0: none
    int64_t refresh_due_us         # its next refresh before the grid moved it: the cadence


cdef inline const uint8_t *current_master(const inst_t *inst) noexcept nogil:
    # The master's address: ours in MASTER, the last accepted advert's source
    # in BACKUP; NULL when not known (no advert heard yet, INIT, FAULT).
    cdef int k
    if inst.state == ST_MASTER:
        return inst.src
    if inst.state == ST_BACKUP:
        for k in range(16 if inst.family == 6 else 4):
            if inst.master_src[k] != 0:
                return inst.master_src
    return NULL

ctypedef struct tx_t:
    int32_t ifindex
    int32_t instance
    uint8_t family
    uint16_t len
    uint32_t offset                # in the TX arena
    uint8_t src[16]
    uint8_t dst[16]

ctypedef struct event_t:
    int32_t instance
    uint8_t old_state
    uint8_t new_state
    uint8_t reason
    # The cause, for the log: the master last heard at the event (the sender
    # of the advert that made a master step down) and both priorities.
    uint8_t master_priority
    uint8_t our_priority
    uint8_t by_leader              # a follower moved by its leader in the same call (lead())
    int64_t time
    uint8_t master_src[16]


cdef class Engine:
    cdef inst_t *insts
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t count
    cdef TimerWheel wheel
    cdef AdvertTable adverts
    cdef uint8_t (*advert_dst)[16]
    cdef uint8_t (*peer_addrs)[16]
    cdef Py_ssize_t peers_used
    cdef Py_ssize_t peers_cap
    # demux: a small table of interfaces (open addressing on ifindex), then a
    # dense array of VRID heads per interface and family: the per-packet
    # lookup touches two hot arrays instead of one big random hash.
    cdef int32_t *if_keys          # ifindex, or -1 for an empty slot
    cdef int32_t *if_numbers
    cdef uint32_t if_mask
    cdef int32_t n_interfaces
    cdef int32_t *vrid_heads       # [(number * 2 + (family == 6)) * 256 + vrid] -> instance or -1
    # outputs
    cdef tx_t *tx
    cdef readonly Py_ssize_t tx_count
    cdef Py_ssize_t tx_cap
    cdef uint8_t *tx_arena
    cdef Py_ssize_t tx_used
    cdef Py_ssize_t tx_arena_cap
    cdef event_t *evq
    cdef Py_ssize_t event_count
    cdef Py_ssize_t event_cap
    # Followers' events held back by take_events(defer_followers=True) until
    # take_deferred(): a mass move reports its leaders first.
    cdef event_t *deferred
    cdef Py_ssize_t deferred_count
    cdef Py_ssize_t deferred_cap
    cdef int32_t leading           # the leader moving its followers now (lead()), else -1
    # counters not tied to one instance (RFC 6527 keeps these global)
    cdef uint64_t drops[16]
    cdef uint64_t unknown_vrid
    cdef uint64_t version_mismatch
    cdef uint64_t own_adverts
    cdef uint64_t output_overflow
    # The same drops by receiving interface: row 1 + interface number, row 0
    # for an interface no instance uses; columns: the wire's drop reasons,
    # then IF_UNKNOWN_VRID and IF_VERSION_MISMATCH. Touched only on a drop.
    cdef uint64_t *if_drops
    # Drop records (drop_t), with an open-addressing index on their key: only
    # a drop touches them.
    cdef drop_t *drop_records
    cdef int32_t *drop_slots       # record index, or -1 for an empty slot
    cdef uint32_t drop_mask        # slots - 1
    cdef Py_ssize_t drop_count
    cdef Py_ssize_t drop_cap
    cdef Py_ssize_t drop_taken     # records before this one were handed out
    cdef Py_ssize_t drop_limit     # records at most between two resets
    cdef uint64_t drops_unrecorded # drops that found no room for a record

    cdef Py_ssize_t receive_c(self, RxBatch batch, int64_t now) noexcept nogil
    cdef Py_ssize_t expire_c(self, int64_t now) noexcept nogil
    cdef void rx_one(self, const vrrp_adv_t *r, const rx_slot_t *slot, int64_t now) noexcept nogil
    cdef void count_if_drop(self, int32_t ifindex, int column) noexcept nogil
    cdef void wire_drop(self, int32_t i, const vrrp_adv_t *r, const rx_slot_t *slot) noexcept nogil
    cdef void address_drop(self, int32_t i, const vrrp_adv_t *r,
                           const uint8_t *data) noexcept nogil
    cdef void record_drop(self, int32_t i, const vrrp_adv_t *r, uint8_t reason, int32_t detail0,
                          int32_t detail1, const uint8_t *addr) noexcept nogil
    cdef bint drop_room(self) noexcept nogil
    cdef int32_t lookup(self, const vrrp_adv_t *r) noexcept nogil
    cdef int32_t interface_number(self, int32_t ifindex) noexcept nogil
    cdef int32_t add_interface(self, int32_t ifindex) except -1
    cdef bint addresses_match(self, inst_t *inst, const vrrp_adv_t *r, const uint8_t *data) noexcept nogil
    cdef void backup_rx(self, int32_t i, const vrrp_adv_t *r, int64_t now) noexcept nogil
    cdef void master_rx(self, int32_t i, const vrrp_adv_t *r, int64_t now) noexcept nogil
    cdef void schedule_refresh(self, int32_t i, int64_t due) noexcept nogil
    cdef void fire(self, int32_t i, int64_t deadline, int64_t now) noexcept nogil
    cdef void come_up(self, int32_t i, int64_t now, uint8_t reason) noexcept nogil
    cdef void become_master(self, int32_t i, int64_t now, uint8_t reason) noexcept nogil
    cdef void become_backup(self, int32_t i, int64_t now, uint8_t reason) noexcept nogil
    cdef void leave(self, int32_t i, uint8_t new_state, int64_t now, uint8_t reason) noexcept nogil
    cdef void lead(self, int32_t i, int64_t now) noexcept nogil
    cdef void follower_rx(self, int32_t i, const vrrp_adv_t *r) noexcept nogil
    cdef void align(self, int32_t i, int64_t now) noexcept nogil
    cdef void send(self, int32_t i, uint8_t priority) noexcept nogil
    cdef uint8_t target_priority(self, inst_t *inst) noexcept nogil
    cdef void apply_priority(self, int32_t i, int64_t now) noexcept nogil
    cdef void restore_c(self, int32_t i, uint8_t state, int64_t timer, int64_t master_interval,
                        int64_t preempt_at, uint16_t heard, uint8_t master_priority,
                        const uint8_t *master_src, const uint64_t *counters,
                        int64_t last_transition, int32_t delta, uint32_t carried,
                        uint8_t effective, int64_t now) noexcept nogil
    cdef void event(self, int32_t i, uint8_t old_state, uint8_t new_state, uint8_t reason,
                    int64_t now) noexcept nogil
    cdef int64_t skew_us(self, inst_t *inst) noexcept nogil
    cdef int64_t master_down_us(self, inst_t *inst) noexcept nogil
    cdef object event_tuple(self, event_t *e, bint causes)
    cdef int defer(self, event_t *e) except -1
    cdef int check_index(self, Py_ssize_t i) except -1
    cdef int grow_adverts(self, Py_ssize_t needed) except -1
    cdef int grow_peers(self, Py_ssize_t needed) except -1
