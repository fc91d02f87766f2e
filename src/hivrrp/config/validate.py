"""Checks across the whole configuration, and keepalived's defaults that depend
on more than one keyword (priority 255 for `state MASTER`, interval rounding
per version, the family of an instance)."""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from collections.abc import Callable

from hivrrp._wire import DEFAULT_MTU, MAX_ADDRESSES, advert_room
from hivrrp.config import followers
from hivrrp.config import strict as strict_mode
from hivrrp.config.diagnostics import Diagnostics, Where
from hivrrp.config.model import Config, Instance, Script, TrackRef
from hivrrp.notify import scriptsec

TRACKER_TABLES = {"script": "scripts", "process": "track_processes", "file": "track_files"}
TRACKER_KEYWORDS = {"script": "vrrp_script", "process": "vrrp_track_process", "file": "track_file"}


def validate(config: Config, diag: Diagnostics, *, check_host: bool = True,
             check_scripts: bool = False) -> None:
    """check_host: compare with this host's interfaces; check_scripts: every
    script the daemon would not run is an error (hivrrp check, see scripts())."""
    names: dict[str, Instance] = {}
    valid: list[Instance] = []
    # An interface's /sys files are read once however many instances name it:
    # 10,000 instances on one interface read them 20,000 times (0.27 s).
    kind = functools.cache(_interface_type) if check_host else _not_read
    flags = functools.cache(_interface_flags) if check_host else _not_read
    mtu = functools.cache(_interface_mtu) if check_host else _not_read
    for inst in config.instances:
        if inst.name in names:
            diag.error(inst.where, f"vrrp_instance {inst.name} is already defined at "
                                   f"{names[inst.name].where}")
            continue
        names[inst.name] = inst
        if _instance(config, inst, diag, kind, flags):
            valid.append(inst)
    config.instances = valid
    _advert_room(config, diag, mtu)
    _unique_vrids(config, diag)
    _sync_groups(config, names, diag)
    _trackers(config, diag)
    followers.validate(config, names, diag)
    if check_host:
        _host_interfaces(config, diag)
    if check_scripts:
        scripts(config, diag)


ARPHRD_LOOPBACK = 772


def _loopback(name: str, kind: Callable[[str], int | None]) -> bool:
    """keepalived refuses an interface of hardware type loopback; "lo" is
    the loopback in every namespace, another name only this host can tell."""
    return name == "lo" or kind(name) == ARPHRD_LOOPBACK


def _sys_net(name: str, attribute: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/{attribute}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _interface_type(name: str) -> int | None:
    return _sys_net(name, "type")


def _interface_mtu(name: str) -> int | None:
    return _sys_net(name, "mtu")


def _interface_flags(name: str) -> int | None:
    try:
        with open(f"/sys/class/net/{name}/flags") as f:
            return int(f.read(), 16)
    except (OSError, ValueError):
        return None


def _not_read(name: str) -> None:
    """Without check_host: nothing is known of this host's interfaces."""
    return None


def _instance(config: Config, inst: Instance, diag: Diagnostics,
              kind: Callable[[str], int | None], flags: Callable[[str], int | None]) -> bool:
    """keepalived's vrrp_complete_instance; False drops the instance."""
    g = config.global_defs
    label = f"vrrp_instance {inst.name}"
    if not inst.complete:
        return False  # its bad virtual_router_id was reported where it is written
    if inst.vrid is None:
        diag.error(inst.where, f"{label}: virtual_router_id is not set")
        return False
    if inst.interface is not None and _loopback(inst.interface, kind):
        # keepalived -t exits 5: "(VI_1) cannot use a loopback interface (lo)
        # for vrrp - ignoring", then "(VI_1) Unknown interface!".
        diag.error(inst.where, f"{label}: interface {inst.interface} is a loopback interface: "
                               "VRRP cannot run on it")
        return False
    strict = strict_mode.resolve(inst, g)
    # Family: from the VIPs, else the unicast addresses, else IPv4.
    if inst.vips:
        inst.family = inst.vips[0].family
    elif inst.unicast_src_ip or inst.unicast_peers:
        inst.family = (inst.unicast_src_ip or inst.unicast_peers[0].address).version
    if inst.interface is None and not (inst.unicast_peers and inst.family == 4):
        diag.error(inst.where, f"{label}: interface is not set (only unicast instances with "
                               "IPv4 addresses can do without)")
        return False
    for peer in inst.unicast_peers:
        if peer.address.version != inst.family:
            diag.error(inst.where, f"{label}: unicast_peer {peer.address} is not IPv"
                                   f"{inst.family} like the instance")
    if inst.unicast_src_ip and inst.unicast_src_ip.version != inst.family:
        diag.error(inst.where, f"{label}: unicast_src_ip {inst.unicast_src_ip} is not "
                               f"IPv{inst.family}")
    for attribute in ("mcast_src_ip", "mcast_dst_ip"):
        value = getattr(inst, attribute)
        if value is not None and value.version != inst.family:
            diag.error(inst.where, f"{label}: {attribute} {value} is not IPv{inst.family}")
    # Version: the instance's, else the global one for IPv4; IPv6 is v3 (keepalived
    # says nothing when the 2 is vrrp_version's).
    strict_mode.version(inst, diag)
    if inst.version is None:
        inst.version = 3 if inst.family == 6 else g.vrrp_version
    elif inst.family == 6 and inst.version == 2:
        diag.warning(strict_mode.at(diag, inst, "version"),
                     f"{label}: VRRPv2 is IPv4 only; hivrrp runs this IPv6 instance as VRRPv3 "
                     "(keepalived 2.2.7 outside strict mode sends VRRPv2 over IPv6 when "
                     "`version 2` comes before the VIPs)", key="version 2 with IPv6")
        inst.version = 3
    if not inst.vips:
        if inst.version == 3 or strict:
            # keepalived refuses the whole configuration (-t exits 5).
            diag.error(inst.where, f"({inst.name}) No VIP specified; at least one is required")
            return False
        # keepalived -t exits 5 on this too, and runs the instance.
        diag.error(inst.where, f"({inst.name}) No VIP specified; at least one is sensible",
                   key="no VIP", fatal=False)
    # Priority: 100 by default, 255 for `state MASTER` without a priority (vrrp.c).
    if not inst.priority_given and inst.state == "MASTER":
        inst.priority = 255
    strict_mode.state(inst, diag)
    _authentication(inst, diag)
    _vmac_unicast(inst, diag)
    strict_mode.unicast(inst, diag, flags)
    strict_mode.vmac_mac(inst, diag)
    strict_mode.link_local(inst, diag)
    _preemption(inst, diag)
    strict_mode.settle(inst, g, diag)
    strict_mode.vmac_xmit_base(inst, diag)
    _vmac(inst, diag)
    _advert_int(inst, diag)
    return True


def _vmac_unicast(inst: Instance, diag: Diagnostics) -> None:
    """keepalived's vrrp_end_handler, before anything of vrrp_complete_instance:
    unicast with a VMAC. Its config errors, run with their corrections."""
    if inst.use_vmac and inst.unicast_peers:
        where = strict_mode.at(diag, inst, "use_vmac")
        if inst.interface is None:
            diag.error(where, f"({inst.name}): Cannot use VMAC/ipvlan with unicast and no "
                              "interface - clearing use_vmac", fatal=False)
            inst.use_vmac, inst.vmac_mac, inst.vmac_xmit_base = False, None, False
        elif not inst.vmac_xmit_base:
            # Unicast adverts go to the peers' own MACs: only the parent may send them.
            diag.error(where, f"({inst.name}) unicast with use_vmac requires vmac_xmit_base "
                              "- setting", fatal=False)
            inst.vmac_xmit_base = True


def _vmac(inst: Instance, diag: Diagnostics) -> None:
    """The rest of keepalived's VMAC rules (vrrp_complete_instance), after strict
    mode has had its say (it clears a user MAC and vmac_xmit_base)."""
    if inst.vmac_xmit_base and not inst.use_vmac:
        diag.error(strict_mode.at(diag, inst, "vmac_xmit_base"),
                   f"({inst.name}) vmac_xmit_base is only valid with a vmac", fatal=False)
        inst.vmac_xmit_base = False


def _preemption(inst: Instance, diag: Diagnostics) -> None:
    """keepalived's rules, in its order: config errors (-t exits 5) that it
    corrects and runs with. The initial state is MASTER when written so or,
    unwritten, for the address owner (keepalived derives it from the
    priority), and strict mode has settled it already."""
    corrected = strict_mode.corrected
    nopreempt = strict_mode.at(diag, inst, "nopreempt")
    delay = strict_mode.at(diag, inst, "preempt_delay")
    if inst.nopreempt and inst.priority == strict_mode.OWNER:
        corrected(diag, nopreempt, inst, f"nopreempt is incompatible with priority "
                                         f"{strict_mode.OWNER}. resetting nopreempt",
                  "nopreempt at priority 255")
        inst.nopreempt = False
    if inst.state == "MASTER" or (inst.state is None and inst.priority == strict_mode.OWNER):
        if inst.nopreempt:
            corrected(diag, nopreempt, inst, "Warning - nopreempt will not work with initial "
                                             "state MASTER - clearing",
                      "nopreempt with state MASTER")
            inst.nopreempt = False
        if inst.preempt_delay:
            corrected(diag, delay, inst, "Warning - preempt delay will not work with initial "
                                         "state MASTER - clearing",
                      "preempt_delay with state MASTER")
            inst.preempt_delay = 0.0
    if inst.preempt_delay:
        # Both may be said: keepalived tests nopreempt after strict mode's reset.
        strict_mode.preempt_delay(inst, diag)
        if inst.nopreempt:
            corrected(diag, delay, inst, "preempt_delay is incompatible with nopreempt mode - "
                                         "resetting", "preempt_delay with nopreempt")
            inst.preempt_delay = 0.0


def _authentication(inst: Instance, diag: Diagnostics) -> None:
    """keepalived's chain, in its order: strict mode, then VRRPv3, then a
    missing password take the authentication away (config errors it runs
    with); an auth_pass without auth_type is no authentication and no error.
    AH that survives them is refused: hivrrp sends no IPsec AH."""
    where = strict_mode.at(diag, inst, "authentication")
    if strict_mode.authentication(inst, diag) or inst.auth_type is None:
        pass
    elif inst.version == 3:
        diag.error(where, f"({inst.name}) VRRP version 3 does not support authentication. "
                          "Ignoring.", key="authentication", fatal=False)
        inst.auth_type = None
    elif not inst.auth_pass:
        diag.error(where, f"({inst.name}) Authentication specified but no password given. "
                          "Ignoring", key="authentication", fatal=False)
        inst.auth_type = None
    elif inst.auth_type == "AH":
        diag.error(strict_mode.at(diag, inst, "auth_type"),
                   f"({inst.name}) auth_type AH (IPsec AH) is not supported by hivrrp; use "
                   "PASS or no authentication", key="auth_type AH")
    if inst.auth_type is None:
        inst.auth_pass = None


US = 1_000_000                  # keepalived's timers count microseconds (TIMER_HZ)
V3_UNIT = US // 100             # VRRPv3 adverts carry centiseconds, in 12 bits
V3_MAX = 4095 * V3_UNIT


def _advert_int(inst: Instance, diag: Diagnostics) -> None:
    """v2 counts whole seconds, v3 centiseconds up to 40.95 s. keepalived
    rounds half up (never to 0) and clamps, each a config error it runs with
    (-t exits 5), in its words."""
    where = strict_mode.at(diag, inst, "advert_int")
    us = round(inst.advert_int * US)
    if inst.version == 2:
        unit, what = US, "must be an integer. rounding"
    else:
        unit, what = V3_UNIT, "must be in units of 10ms - rounding"
        if us >= V3_MAX + V3_UNIT:
            strict_mode.corrected(diag, where, inst, f"VRRPv3 advertisement interval "
                                  f"{us / US:.2f}s is out of range. Must be less than 40.96s. "
                                  "Setting to 40.95s", "advert_int")
            us = V3_MAX
    if us % unit:
        strict_mode.corrected(diag, where, inst, f"VRRPv{inst.version} advertisement interval "
                              f"{us / US:f}s {what}", "advert_int")
        us = max(unit, (us + unit // 2) // unit * unit)
        if inst.version == 3:
            # keepalived would send 40.955 s as 4096 cs, 0 in 12 bits: 40.95 s here.
            us = min(us, V3_MAX)
    inst.advert_int = us / US


def _advert_room(config: Config, diag: Diagnostics, mtu_of: Callable[[str], int | None]) -> None:
    """VIPs beyond what an advert has room for (255, fewer by the MTU) are
    keepalived's eVIPs. The daemon decides with the MTU the link has when it
    builds; here, the interface's MTU if it exists on this host, else 1500."""
    for inst in config.instances:
        mtu = mtu_of(inst.interface) if inst.interface else None
        room = advert_room(inst.family, inst.version, mtu or DEFAULT_MTU)
        excess = len(inst.vips) - room
        if excess <= 0:
            continue
        if room == MAX_ADDRESSES:
            why = f"an advert lists at most {room} addresses"
        elif mtu:
            why = f"at the MTU of {inst.interface}, {mtu}"
        else:
            why = f"at the usual MTU of {DEFAULT_MTU}; the daemon uses the interface's"
        diag.warning(inst.where, f"vrrp_instance {inst.name}: {len(inst.vips)} VIPs, but only "
                                 f"the first {room} fit in its adverts ({why}): the other "
                                 f"{excess} are added and removed like the rest, not advertised "
                                 "(keepalived's eVIPs)", key="virtual_ipaddress")


def _unique_vrids(config: Config, diag: Diagnostics) -> None:
    """One (interface, family, VRID) per multicast group; unicast ones need disjoint peers."""
    seen: dict[tuple, list[Instance]] = defaultdict(list)
    for inst in config.instances:
        if inst.unicast_peers:
            key = (inst.interface, inst.family, inst.vrid, "unicast")
        else:
            group = inst.mcast_dst_ip or (config.global_defs.mcast_group4 if inst.family == 4
                                          else config.global_defs.mcast_group6)
            key = (inst.interface, inst.family, inst.vrid, str(group))
        for other in seen[key]:
            if key[3] == "unicast":
                shared = ({p.address for p in inst.unicast_peers}
                          & {p.address for p in other.unicast_peers})
                if not shared:
                    continue
            diag.error(inst.where, f"vrrp_instance {inst.name}: VRID {inst.vrid} on "
                                   f"{inst.interface or 'its unicast peers'} (IPv{inst.family}) "
                                   f"is already used by {other.name} at {other.where}")
            break
        seen[key].append(inst)


def _sync_groups(config: Config, names: dict[str, Instance], diag: Diagnostics) -> None:
    member_of: dict[str, str] = {}
    for group in config.sync_groups:
        if not group.members:
            diag.error(group.where, f"vrrp_sync_group {group.name}: empty group")
        elif len(group.members) == 1:
            diag.warning(group.where, f"vrrp_sync_group {group.name} has only one member")
        for member in group.members:
            inst = names.get(member)
            if inst is None:
                diag.error(group.where, f"vrrp_sync_group {group.name}: no vrrp_instance "
                                        f"named {member}")
            elif member in member_of:
                diag.error(group.where, f"vrrp_sync_group {group.name}: {member} is already "
                                        f"in vrrp_sync_group {member_of[member]}")
            else:
                member_of[member] = group.name
                inst.sync_group = group.name


def _trackers(config: Config, diag: Diagnostics) -> None:
    used: set[tuple[str, str]] = set()
    groups = {g.name: g for g in config.sync_groups}
    owners = [*config.instances, *config.sync_groups]
    for owner in owners:
        for track in owner.tracks:
            if track.kind == "interface":
                if track.weight is None:
                    track.weight = 0  # keepalived: an unweighted interface faults on link down
                continue
            table = getattr(config, TRACKER_TABLES[track.kind])
            tracker = table.get(track.name)
            if tracker is None:
                diag.error(track.where, f"track_{track.kind} {track.name}: no "
                                        f"{TRACKER_KEYWORDS[track.kind]} {track.name} is defined")
                continue
            used.add((track.kind, track.name))
            if track.weight is None:
                # No weight on the reference: the tracker's own weight and sense apply.
                track.weight = tracker.weight
                track.reverse = track.reverse or tracker.reverse
        owner.tracks = [t for t in owner.tracks
                        if t.kind == "interface" or (t.kind, t.name) in used]
    for inst in config.instances:
        group = groups.get(inst.sync_group) if inst.sync_group else None
        if inst.priority == 255:
            inst.tracks = _unweighted(inst.tracks, inst.name, "address owner", diag)
        elif group is not None and not group.tracking_weight:
            inst.tracks = _unweighted(inst.tracks, inst.name, f"sync group {group.name}", diag)
    for group in config.sync_groups:
        if not group.tracking_weight:
            group.tracks = _unweighted(group.tracks, group.name, f"sync group {group.name}",
                                       diag)
    for kind, attribute in TRACKER_TABLES.items():
        for name, tracker in getattr(config, attribute).items():
            if (kind, name) not in used:
                diag.warning(tracker.where, f"{TRACKER_KEYWORDS[kind]} {name} is not used by "
                                            "any instance or sync group")


def _unweighted(tracks: list[TrackRef], owner: str, why: str,
                diag: Diagnostics) -> list[TrackRef]:
    """keepalived vrrp_complete_instance(): an address owner's priority never
    moves, and sync-group members move together rather than by weight (unless
    sync_group_tracking_weight), so weights go: a weighted interface becomes
    unweighted in a group (faults while down) and is dropped for an owner, a
    file with the default weight 1 becomes unweighted, any other weighted
    tracker is dropped. Weight 0 trackers still fault."""
    kept = []
    for track in tracks:
        if not track.weight:
            kept.append(track)
        elif track.kind == "interface" and why != "address owner":
            diag.warning(track.where, f"({owner}) weight of tracked interface {track.name} "
                                      f"ignored due to {why}: it faults while down")
            track.weight = 0
            kept.append(track)
        elif track.kind == "file" and track.weight == 1:
            diag.warning(track.where, f"({owner}) default weight of tracked file {track.name} "
                                      f"ignored due to {why}: specify weight 0")
            track.weight = 0
            kept.append(track)
        else:
            diag.warning(track.where, f"({owner}) ignoring tracked {track.kind} {track.name} "
                                      f"with weight {track.weight} due to {why}")
    return kept


def host_interfaces() -> set[str] | None:
    try:
        return set(os.listdir("/sys/class/net"))
    except OSError:
        return None


def _host_interfaces(config: Config, diag: Diagnostics) -> None:
    present = host_interfaces()
    if present is None:
        return
    reported: set[str] = set()
    for inst in config.instances:
        wanted = [(inst.interface, inst.where)] if inst.interface else []
        wanted += [(t.name, t.where) for t in inst.tracks if t.kind == "interface"]
        wanted += [(v.options["dev"], v.where) for v in (*inst.vips, *inst.excluded_vips)
                   if isinstance(v.options.get("dev"), str)]
        for name, where in wanted:
            if name not in present and name not in reported:
                reported.add(name)
                diag.warning(where, f"interface {name} does not exist on this host (yet)")


# ------------------------------------------------------------------ scripts

def _scripts_written(config: Config, diag: Diagnostics) -> list[tuple[Script, str, Where]]:
    """Every script of the configuration with what to call it and where it
    is written: keepalived's order (vrrp_scripts, instances, sync groups,
    the FIFO scripts)."""
    found: list[tuple[Script, str, Where]] = []

    def add(script: Script | None, label: str | None, fallback: Where) -> None:
        if script is not None:
            where, keyword = diag.places.get(id(script), (fallback, "script"))
            found.append((script, label or keyword, where))

    for name, vs in config.scripts.items():
        add(vs.script, f"vrrp_script {name}", vs.where)
    for owner in (*config.instances, *config.sync_groups):
        for script in owner.notify.values():
            add(script, None, owner.where)
    for inst in config.instances:
        add(inst.notify_master_rx_lower_pri, None, inst.where)
    g = config.global_defs
    for script in (g.notify_fifo_script, g.vrrp_notify_fifo_script):
        add(script, None, Where("global_defs", 0))
    return found


def scripts(config: Config, diag: Diagnostics) -> None:
    """`hivrrp check` fails where keepalived -t does and where the daemon
    would not run a script (it logs those and runs without them).

    keepalived 2.2.7 -t exits 5 for a vrrp_script whose script is missing
    (also denied in PATH) or unsafe under enable_script_security, for a
    script_user that does not exist, and for enable_script_security with
    scripts but no user to run them as (neither script_user nor a
    keepalived_script user); it exits 6 (SECURITY VIOLATION) when scripts
    exist without enable_script_security, here a warning. We also fail
    what keepalived -t lets through but never runs: a notify script that is
    missing, not executable, unsafe under enable_script_security or with a
    user that does not exist, and a non-executable vrrp_script.
    """
    g = config.global_defs
    lookups = scriptsec.Lookups()
    global_problems: set[str] = set()
    if g.script_user is not None:
        where = diag.places.get("script_user", (Where("global_defs", 0), ""))[0]
        if lookups.user(g.script_user) is None:
            problem = f"script user {g.script_user!r} does not exist"
            diag.error(where, f"script_user: {problem}; scripts without a user of their own "
                              "would not run")
            global_problems.add(problem)
        if g.script_group is not None and lookups.group(g.script_group) is None:
            problem = f"script group {g.script_group!r} does not exist"
            diag.error(where, f"script_user: {problem}; scripts without a user of their own "
                              "would not run")
            global_problems.add(problem)
    written = _scripts_written(config, diag)
    if (g.enable_script_security and g.script_user is None
            and any(script.user is None for script, _, _ in written)
            and lookups.user(scriptsec.DEFAULT_SCRIPT_USER) is None):
        where = diag.places.get("enable_script_security", (Where("global_defs", 0), ""))[0]
        diag.error(where, f"enable_script_security: {scriptsec.NO_SCRIPT_USER}: scripts without "
                          "a user of their own would not run (set script_user)")
        global_problems.add(scriptsec.NO_SCRIPT_USER)
    first_found = None               # keepalived's SECURITY VIOLATION counts found scripts
    for script, label, where in written:
        verdict = scriptsec.check_script(script, g.enable_script_security, g.script_user,
                                         g.script_group, lookups)
        if not verdict.missing and first_found is None:
            first_found = where
        if verdict.message in global_problems:
            continue
        if not verdict:
            consequence = ("it would be disabled and the instances tracking it would ignore it"
                           if label.startswith("vrrp_script ") else "it would never run")
            diag.error(where, f"{label}: {verdict.refusal}; {consequence}",
                       key=label.split(" ")[0])
        elif verdict.insecure:
            diag.warning(where, f"{label}: unsafe to run as root, {verdict.message} "
                                "(enable_script_security would refuse it)",
                         key=label.split(" ")[0])
    if first_found is not None and not g.enable_script_security:
        diag.warning(first_found, "scripts are configured without enable_script_security "
                            "(keepalived -t: SECURITY VIOLATION)")
