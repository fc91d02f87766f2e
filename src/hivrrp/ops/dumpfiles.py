"""keepalived's SIGUSR2 stats file and SIGUSR1 data file, in its formats.

Existing tooling (keepalived exporters, monitoring plugins, scripts) sends
keepalived SIGUSR1/SIGUSR2 and reads /tmp/keepalived.data and
/tmp/keepalived.stats. This module writes the same text from hivrrp's
instance rows (hivrrp.ops.control.dump_of()["instances"]); it does no IO besides
write_file().

keepalived 2.2.7, which this follows:
- SIGUSR2: vrrp_print_stats() (keepalived/vrrp/vrrp_print.c:55-111), called by
  print_vrrp_stats() (vrrp_daemon.c:887); the parent only propagates the
  signal to the VRRP child (core/main.c:915, 1277).
- SIGUSR1: vrrp_print_data() (vrrp_print.c:40-52) -> dump_data_vrrp()
  (vrrp_data.c:1328) -> dump_vrrp_data() (vrrp_data.c:1275) -> dump_vrrp()
  (vrrp_data.c:581-838), dump_sync_group() (vrrp_data.c:196), dump_vscript()
  (vrrp_data.c:286). Every line goes through conf_write() (lib/logger.c:203):
  the text plus "\n".
- Paths: make_tmp_filename() (lib/utils.c:1307) puts both files in tmp_dir,
  which set_tmp_dir() (lib/utils.c:1300) takes from $TMPDIR when that is an
  absolute path, else KA_TMP_DIR (/tmp). 2.2.7 has no *_file_location
  keywords (global_parser.c installs none; they came later). With
  `data_use_instance` and an `instance` or `net_namespace`, open_dump_file()
  (core/global_data.c:421) names the data file keepalived.NETNS_INSTANCE.data;
  the stats file never changes name.
- keepalived creates the file under a temporary name, chmods it to
  0666 & ~umask (0600 with its default umask 0177), renames it into place
  and only then writes it (fopen_safe, lib/utils.c:967), so a reader can see
  it empty or half written. write_file() writes first and renames last.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Mapping, Sequence

from hivrrp.util.atomicfile import write_atomically

KA_TMP_DIR = "/tmp"
STATS_FILE = "keepalived.stats"
DATA_FILE = "keepalived.data"

# vrrp_print_stats(), line by line: (indent, label, counter), counter None for
# a section heading. Counters without a line in keepalived's file
# (checksum_pseudo_header_received, checksum_no_pseudo_header_received) are
# left out: a line keepalived never writes could break its readers' parsers.
# "Type Mismatch" and "Failure" are under #ifdef _WITH_VRRP_AUTH_, which
# distribution builds (and hivrrp, which does PASS/AH) have.
STATS_LINES: tuple[tuple[int, str, str | None], ...] = (
    (2, "Advertisements", None),
    (4, "Received", "adverts_received"),
    (4, "Sent", "adverts_sent"),
    (2, "Became master", "became_master"),
    (2, "Released master", "released_master"),
    (2, "Packet Errors", None),
    (4, "Length", "packet_length_errors"),
    (4, "TTL", "ip_ttl_errors"),
    (4, "Invalid Type", "invalid_type_received"),
    (4, "Advertisement Interval", "advert_interval_errors"),
    (4, "Address List", "address_list_errors"),
    (2, "Authentication Errors", None),
    (4, "Invalid Type", "auth_invalid_type"),
    (4, "Type Mismatch", "auth_type_mismatch"),
    (4, "Failure", "auth_failure"),
    (2, "Priority Zero", None),
    (4, "Received", "priority_zero_received"),
    (4, "Sent", "priority_zero_sent"),
)

# dump_vrrp()'s tracker lists: heading and per-tracker line format (vrrp_track.c:58
# dump_track_if, :175 dump_track_script, :298 dump_track_process; track_file.c:72
# dump_track_file_monitor), in dump_vrrp()'s order.
_TRACKED = (
    ("interface", "   Tracked interfaces :", "     {name} weight {weight}{reverse}"),
    ("script", "   Tracked scripts :", "     {name} weight {weight}{reverse}"),
    ("file", "   Tracked files :", "     {name}, weight {weight}{reverse}"),
    ("process", "   Tracked processes :", "     {name}, weight {weight}{reverse}"),
)


def tmp_dir(environ: Mapping[str, str] | None = None) -> str:
    """keepalived's set_tmp_dir(): $TMPDIR if it is an absolute path, else /tmp."""
    value = (os.environ if environ is None else environ).get("TMPDIR")
    return value if value and value.startswith("/") else KA_TMP_DIR


def stats_path(environ: Mapping[str, str] | None = None) -> str:
    """Where keepalived writes its SIGUSR2 file: <tmp_dir>/keepalived.stats."""
    return f"{tmp_dir(environ)}/{STATS_FILE}"


def data_path(environ: Mapping[str, str] | None = None, *, use_instance: bool = False,
              instance: str | None = None, netns: str | None = None) -> str:
    """Where keepalived writes its SIGUSR1 file (open_dump_file()):
    <tmp_dir>/keepalived.data, or keepalived.NETNS_INSTANCE.data (either part
    alone without the "_") with `data_use_instance` and an instance or namespace."""
    if use_instance and (instance or netns):
        middle = "_".join(part for part in (netns, instance) if part)
        return f"{tmp_dir(environ)}/keepalived.{middle}.data"
    return f"{tmp_dir(environ)}/{DATA_FILE}"


def stats_text(rows: Sequence[Mapping]) -> str:
    """The stats file keepalived 2.2.7 writes on SIGUSR2, one block per instance.

    Byte for byte vrrp_print_stats() for the lines it prints; keepalived's
    32-bit counters (%u) would wrap at 2**32, these print the full value.
    """
    out = []
    for row in rows:
        counters = row.get("counters") or {}
        out.append(f"VRRP Instance: {row['instance']}\n")
        for indent, label, key in STATS_LINES:
            if key is None:
                out.append(f"{' ' * indent}{label}:\n")
            else:
                out.append(f"{' ' * indent}{label}: {int(counters.get(key, 0))}\n")
    return "".join(out)


def ctime_us(seconds: int, usec: int) -> str:
    """keepalived's ctime_us_r() (lib/utils.c:952): asctime() in local time with
    the microseconds after the seconds, e.g. "Sun Nov 29 17:23:02.341541 2026"."""
    tm = time.localtime(seconds)
    text = time.asctime(tm)                   # "Sun Nov 29 17:23:02 2026", day %3d
    return f"{text[:19]}.{usec:06d} {tm.tm_year}"


def _timeval(unix: float | None) -> tuple[int, int]:
    micro = round(unix * 1_000_000) if unix else 0
    return divmod(micro, 1_000_000)


def _vip_line(text: str, options: Mapping, interface: str, master: bool) -> str:
    """format_ipaddress() (vrrp_ipaddress.c:284): address, brd, dev, scope, label.

    A VIP with its own `dev` is on that interface, not the instance's."""
    vip = ipaddress.ip_interface(text.strip())
    full = vip.max_prefixlen
    addr = str(vip.ip) if vip.network.prefixlen == full else f"{vip.ip}/{vip.network.prefixlen}"
    line = f"     {addr}"
    brd = str(options.get("brd", ""))
    if vip.version == 4 and brd not in ("", "+", "-"):
        line += f" brd {brd}"
    line += f" dev {options.get('dev', interface)} scope {options.get('scope', 'global')}"
    if "label" in options:
        line += f" label {options['label']}"
    if vip.version == 6:
        # parse_ipaddress_ex() defaults (vrrp_ipaddress.c:702): a /128 is
        # added deprecated (preferred_lft 0), anything else preferred forever.
        line += " deprecated" if vip.network.prefixlen == full else " preferred_lft forever"
    if master:
        line += " set"                     # the address is on the interface
    return line


def _instance_lines(row: Mapping) -> list[str]:
    state = row["state"]
    version = int(row.get("version", 2))
    lines = [f" VRRP Instance = {row['instance']}", f"   VRRP Version = {version}"]
    if row.get("sync_group"):
        lines.append(f"   Sync group = {row['sync_group']}")
    if row.get("family") == "ipv6":
        lines.append("   Using Native IPv6")
    lines.append(f"   State = {state}")
    if state == "BACKUP" and row.get("master"):
        lines.append(f"   Master router = {row['master']}")
    sec, usec = _timeval(row.get("last_transition"))
    lines.append(f"   Last transition = {sec}.{usec:06d} ({ctime_us(sec, usec)})")
    lines.append(f"   Interface = {row['interface']}")
    lines.append(f"   Virtual Router ID = {row['vrid']}")
    lines.append(f"   Priority = {row['base_priority']}")
    lines.append(f"   Effective priority = {row['priority']}")
    if row.get("priority_delta") is not None:
        lines.append(f"   Total priority = {row['base_priority'] + row['priority_delta']}")
    interval_us = round(float(row["advert_int"]) * 1_000_000)
    if version == 2:
        lines.append(f"   Advert interval = {interval_us // 1_000_000} sec")
    else:
        lines.append(f"   Advert interval = {interval_us // 1000} milli-sec")
    vips = list(row.get("vips") or ())
    if vips:
        lines.append(f"   Virtual IP ({len(vips)}):")
        options = row.get("vip_options") or [{}] * len(vips)
        lines += [_vip_line(v, o, row["interface"], state == "MASTER")
                  for v, o in zip(vips, options)]
    trackers = list(row.get("trackers") or ())
    for kind, heading, fmt in _TRACKED:
        mine = [t for t in trackers if t.get("type") == kind]
        if mine:
            lines.append(heading)
            lines += [fmt.format(name=t["name"], weight=int(t.get("weight") or 0),
                                 reverse=" reverse" if t.get("reverse") else "")
                      for t in mine]
    return lines


def data_text(rows: Sequence[Mapping], sync_groups: Mapping[str, str] | None = None,
              trackers: Mapping[str, object] | None = None) -> str:
    """The VRRP part of the data file keepalived 2.2.7 writes on SIGUSR1.

    keepalived calls this file's format unstable; what is written follows
    dump_vrrp() & co. line for line, for what hivrrp has:

    ------< VRRP Topology >------, per instance in dump_vrrp()'s order:
    "VRRP Instance", "VRRP Version", "Sync group" (in a group), "Using Native
    IPv6" (IPv6), "State", "Master router" (BACKUP with a known master),
    "Last transition" (0.000000, the epoch, before the first one), "Interface",
    "Virtual Router ID", "Priority", "Effective priority", "Total priority"
    (when the row has "priority_delta": base + the unclamped tracker sum),
    "Advert interval", "Virtual IP (n)" with one line per VIP, and the
    "Tracked interfaces/scripts/files/processes" lists (the row's trackers,
    which include those a sync group adds).
    ------< VRRP Sync groups >------ (with `sync_groups`, name -> state, as
    dump()["sync_groups"]): "VRRP Sync Group = NAME, STATE" and "VRRP member
    instances".
    ------< VRRP Scripts >------ (with `trackers`, "kind name" -> status, as
    dump()["trackers"]): for each script "VRRP Script", "Status" (GOOD when up,
    BAD when down, INIT before its first result), "VRRP instances :" and its "Tracking instances".

    Omitted, as hivrrp's rows do not carry them: "Master priority", "Master
    advert int", "Master advert interval", "Flags", "Wantstate", the fault and
    script-init counts, "Read timeout", "Master down timer", VMAC/VRF lines,
    "Using src_ip", "Multicast address", the gratuitous ARP and advert-after-
    receive settings, "Down timer adverts", "Accept", "Preempt", "Preempt
    delay", "Promote_secondaries", authentication, kernel buffer and debug
    lines, excluded VIPs, unicast peers, fd_in/fd_out, virtual routes and
    rules, tracked BFDs, smtp/notify-deleted/notify-script/notify-priority
    lines; VIP options other than brd, dev, scope and label (no peer or
    flags); in the sync group
    block the member fault/init counts and group trackers/scripts; in the
    script block everything but its name, status and instances. Whole
    sections omitted: Global definitions, Gratuitous ARP delays, Static
    addresses/routes/rules/track groups, VRRP Sockpool, VRRP Track files,
    VRRP Track processes, VRRP Track BFDs, Interfaces.
    """
    lines: list[str] = []
    if rows:
        lines.append("------< VRRP Topology >------")
        for row in rows:
            lines += _instance_lines(row)
    if sync_groups:
        lines.append("------< VRRP Sync groups >------")
        for group, state in sync_groups.items():
            lines.append(f" VRRP Sync Group = {group}, {state}")
            members = [r["instance"] for r in rows if r.get("sync_group") == group]
            if members:
                lines.append("   VRRP member instances :")
                lines += [f"     {name}" for name in members]
    scripts = [key.split(" ", 1)[1] for key in (trackers or {}) if key.startswith("script ")]
    if scripts:
        lines.append("------< VRRP Scripts >------")
        for name in scripts:
            users = [(row["instance"], t) for row in rows for t in row.get("trackers") or ()
                     if t.get("type") == "script" and t.get("name") == name]
            lines.append(f" VRRP Script = {name}")
            status = trackers[f"script {name}"]
            # dump_vscript(): INIT until the script's first result counts.
            lines.append(f"   Status = {'INIT' if status is None else 'GOOD' if status else 'BAD'}")
            lines.append("   VRRP instances :")
            if users:             # dump_tracking_obj_list(), track_file.c:432
                lines.append("   Tracking instances :")
                lines += [f"     {inst}, weight {int(t.get('weight') or 0)}"
                          f"{' reverse' if t.get('reverse') else ''}" for inst, t in users]
    return "".join(line + "\n" for line in lines)


def text_of(kind: str, state: Mapping) -> str:
    """The "stats" (SIGUSR2) or "data" (SIGUSR1) file for a hivrrp.ops.control.dump_of()."""
    if kind == "stats":
        return stats_text(state["instances"])
    return data_text(state["instances"], state["sync_groups"], state["trackers"])


def write_file(path: str, text: str, mode: int = 0o644) -> None:
    """`text` into `path` with exactly `mode`, atomically (hivrrp.util.atomicfile)."""
    write_atomically(path, text.encode("utf-8"), mode)
