"""keepalived's strict mode (`vrrp_strict`, `strict_mode`) and the defaults it sets.

keepalived 2.2.7's vrrp_complete_instance() bends an instance in strict mode to
RFC 3768/5798 and reports each change as a config error: `keepalived -t` exits 5,
keepalived itself runs with the change. So each is a non-fatal error here
(Diagnostic.fatal False): `hivrrp check` fails, `hivrrp run` logs it and runs.
The messages are keepalived's own, at the offending keyword's line.

validate._instance calls these in keepalived's order, which matters: the version
is settled before the authentication is judged, the priority before the state,
the state before preempt_delay.

What keepalived 2.2.7 means to do and does not, so neither does hivrrp: refuse
unicast peers on a multicast-capable interface ("Unicast peers are not supported
in strict mode"). Its test reads a flag that is set only a few lines later (from
2.2.5's unicast_fault_no_peer to 2.3.4), so it runs such an instance, in unicast;
keepalived 2.4.0 refuses it. A warning says so (unicast()).

owner_ignore_adverts is keepalived 2.3.3's (2.2.7 calls it an unknown keyword);
it is what makes "an address owner in strict mode ignores adverts" hold.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from hivrrp.config.diagnostics import Diagnostics, Where
from hivrrp.config.model import GlobalDefs, Instance

OWNER = 255
STRICT = "strict-mode "         # the rules' keys: "... and 999 more strict-mode state errors"
DOWN_TIMER_ADVERTS = 3          # keepalived's VRRP_DOWN_TIMER_ADVERTS


def at(diag: Diagnostics, inst: Instance, keyword: str) -> Where:
    """Where the instance says `keyword` (sections/instance.py PLACED), else
    the instance's own line."""
    return diag.places.get((id(inst), keyword), (inst.where, keyword))[0]


def corrected(diag: Diagnostics, where: Where, inst: Instance, message: str,
              rule: str) -> None:
   """One of keepalived's config errors that it corrects and runs with (also
   outside strict mode: validate uses it too). `rule` keys it: a generated
   file makes the same correction in each of thousands of instances, and
   `check` and the daemon's log (at every start and reload) show a few and
   count the rest."""
   diag.error(where, f"({inst.name}) {message}", key=rule, fatal=False)


def resolve(inst: Instance, g: GlobalDefs) -> bool:
    """The instance's strict_mode, else vrrp_strict's."""
    if inst.strict_mode is None:
        inst.strict_mode = g.vrrp_strict
    return inst.strict_mode


def version(inst: Instance, diag: Diagnostics) -> None:
    """An IPv6 instance that says `version 2` runs as v3. (One that takes v2
    from vrrp_version becomes v3 without a word from keepalived.)"""
    if inst.strict_mode and inst.family == 6 and inst.version == 2:
        corrected(diag, at(diag, inst, "version"), inst,
                  "cannot use IPv6 with VRRP version 2; setting version 3", STRICT + "version")
        inst.version = 3


def state(inst: Instance, diag: Diagnostics) -> None:
    """`state MASTER` is for the address owner only; the state follows the
    priority (keepalived sets its initial state from it)."""
    owner = inst.priority == OWNER
    if inst.strict_mode and inst.state is not None and (inst.state == "MASTER") != owner:
        corrected(diag, at(diag, inst, "state"), inst,
                  "State MASTER must match being address owner", STRICT + "state")
        inst.state = "MASTER" if owner else "BACKUP"


def authentication(inst: Instance, diag: Diagnostics) -> bool:
    """No authentication in strict mode: adverts go without, as keepalived's
    do (with PASS kept, a keepalived peer drops every advert: "received a 1
    auth, expecting 0!", and both become master). AH goes the same way, so a
    strict AH instance runs (hivrrp refuses AH only where it would be sent).
    Only an auth_type is authentication: an auth_pass alone is none, and
    keepalived says nothing of it. True when it took it away."""
    if not (inst.strict_mode and inst.auth_type):
        return False
    corrected(diag, at(diag, inst, "authentication"), inst,
              "Strict mode does not support authentication. Ignoring.", STRICT + "authentication")
    inst.auth_type = inst.auth_pass = None
    return True


IFF_MULTICAST = 0x1000


def unicast(inst: Instance, diag: Diagnostics, flags: Callable[[str], int | None]) -> None:
    """Unicast peers on a multicast-capable interface: keepalived 2.2.7 runs
    them, 2.4.0 refuses the configuration. Judged as keepalived judges it: by
    the interface's flags, when the interface exists here (`flags` gives None
    otherwise, and without check_host)."""
    if not (inst.strict_mode and inst.unicast_peers and inst.interface):
        return
    value = flags(inst.interface)
    if value is not None and value & IFF_MULTICAST:
        diag.warning(at(diag, inst, "unicast_peer"),
                     f"({inst.name}) unicast peers on {inst.interface}, which can multicast, "
                     "in strict mode: keepalived 2.2.7 (and hivrrp) run them, keepalived 2.4.0 "
                     "and later refuse the configuration (\"Unicast peers are not supported "
                     "in strict mode\")", key=STRICT + "unicast_peer")


def vmac_mac(inst: Instance, diag: Diagnostics) -> None:
    if inst.strict_mode and inst.vmac_mac is not None:
        diag.error(at(diag, inst, "use_vmac"),
                   f"({inst.name}): cannot specify MAC address with strict mode - clearing",
                   key=STRICT + "use_vmac", fatal=False)
        inst.vmac_mac = None


def link_local(inst: Instance, diag: Diagnostics) -> None:
    """RFC 5798 5.2.9: the first address of an IPv6 advert is link-local.
    keepalived reports it (only in strict mode) and runs the instance as it is."""
    if (inst.strict_mode and inst.family == 6 and not inst.unicast_peers and inst.vips
            and not ipaddress.IPv6Address(inst.vips[0].address).is_link_local):
        corrected(diag, inst.vips[0].where, inst,
                  "the first IPv6 VIP address must be link local", STRICT + "first IPv6 VIP")


def preempt_delay(inst: Instance, diag: Diagnostics) -> None:
    if inst.strict_mode and inst.preempt_delay:
        corrected(diag, at(diag, inst, "preempt_delay"), inst,
                  "preempt_delay is incompatible with strict mode - resetting",
                  STRICT + "preempt_delay")
        inst.preempt_delay = 0.0


def settle(inst: Instance, g: GlobalDefs, diag: Diagnostics) -> None:
    """The rest of vrrp_complete_instance()'s strict rules, in its order, and
    the defaults strict mode chooses: accept mode, the lower-priority GARPs
    and adverts, owner_ignore_adverts. Each setting ends resolved to a value
    (accept and owner_ignore_adverts never None after this)."""
    strict = inst.strict_mode
    owner = inst.priority == OWNER
    if strict and (inst.down_timer_adverts or g.down_timer_adverts) != DOWN_TIMER_ADVERTS:
        corrected(diag, at(diag, inst, "down_timer_adverts"), inst,
                  "down_timer_adverts is incompatible with strict mode - resetting",
                  STRICT + "down_timer_adverts")
        inst.down_timer_adverts = DOWN_TIMER_ADVERTS
    # Accept mode: on unless strict, always for the owner (keepalived: "At
    # some point we might want to change this to make non accept_mode the
    # default, to comply with the RFCs").
    if inst.accept is None:
        inst.accept = owner or not strict
    if inst.accept and not owner and strict and inst.version == 2:
        corrected(diag, at(diag, inst, "accept"), inst,
                  "warning - accept mode for VRRP version 2 does not comply with RFC3768 "
                  "- resetting", STRICT + "accept")
        inst.accept = False
    if strict:
        _lower_priority(inst, diag)
    _owner_ignore_adverts(inst, g, diag)


def _lower_priority(inst: Instance, diag: Diagnostics) -> None:
    """Strict: a master that hears a lower priority sends no GARPs again and
    no advert of its own; one that hears a higher one sends none either. The
    global vrrp_garp_lower_prio_* and vrrp_*_prio_* do not count: the
    instance's own setting is the one corrected."""
    garp = dict(inst.garp)
    for key, keyword, message in (
            ("lower_prio_repeat", "garp_lower_prio_repeat",
             "Strict mode requires no repeat garps. resetting"),
            ("lower_prio_delay", "garp_lower_prio_delay",
             "Strict mode requires no repeat garp delay. resetting")):
        if garp.get(key):
            corrected(diag, at(diag, inst, keyword), inst, message, STRICT + keyword)
        garp[key] = 0
    inst.garp = garp
    if inst.lower_prio_no_advert is False:
        corrected(diag, at(diag, inst, "lower_prio_no_advert"), inst,
                  "Strict mode requires no lower priority advert. resetting",
                  STRICT + "lower_prio_no_advert")
    inst.lower_prio_no_advert = True
    if inst.higher_prio_send_advert:
        corrected(diag, at(diag, inst, "higher_prio_send_advert"), inst,
                  "strict mode requires higher_prio_send_advert to be clear. resetting",
                  STRICT + "higher_prio_send_advert")
    inst.higher_prio_send_advert = False


def _owner_ignore_adverts(inst: Instance, g: GlobalDefs, diag: Diagnostics) -> None:
    """keepalived 2.3.3's: an address owner may drop every advert it
    receives, and in strict mode does unless told otherwise. Its third branch
    (an owner told `owner_ignore_adverts false`) is written in keepalived for
    every owner, with a message about strict mode: it applies here in strict
    mode only, since outside it `false` is what the owner was told and what
    the global default is anyway."""
    owner = inst.priority == OWNER
    where = at(diag, inst, "owner_ignore_adverts")
    if inst.owner_ignore_adverts is True and not owner:
        corrected(diag, where, inst, f"ignoring owner_ignore_adverts since priority is not "
                                     f"{OWNER}", "owner_ignore_adverts")
        inst.owner_ignore_adverts = False
    elif inst.owner_ignore_adverts is None:
        inst.owner_ignore_adverts = owner and (bool(inst.strict_mode)
                                               or g.owner_ignore_adverts)
    elif owner and not inst.owner_ignore_adverts and inst.strict_mode:
        corrected(diag, where, inst, f"strict_mode with priority {OWNER} requires "
                                     "owner_ignore_adverts", STRICT + "owner_ignore_adverts")
        inst.owner_ignore_adverts = True


def vmac_xmit_base(inst: Instance, diag: Diagnostics) -> None:
    """Strict: adverts go out of the VMAC, never of its parent."""
    if inst.strict_mode and inst.use_vmac and inst.vmac_xmit_base:
        corrected(diag, at(diag, inst, "vmac_xmit_base"), inst,
                  "xmit_base is incompatible with strict mode - resetting",
                  STRICT + "vmac_xmit_base")
        inst.vmac_xmit_base = False
