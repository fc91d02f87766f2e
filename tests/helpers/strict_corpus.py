"""Strict-mode configurations, one per rule of keepalived 2.2.7's vrrp_complete_instance()
plus Debian's sample, and the rules beside them that keepalived applies with or without
strict mode (authentication, preemption), with what `keepalived -t` says of each (recorded
with keepalived 2.2.7 in a namespace where interface eth1 exists) and what `hivrrp check`
must say.

hivrrp's messages are keepalived's own, at the offending keyword's line: for each case
`keepalived -t` prints every message of `errors` and `hivrrp check` prints each as an
error at its line, and both call the same cases valid (keepalived exit 0, hivrrp 0) or
invalid (keepalived exit 5, hivrrp 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "debian-keepalived.conf.sample"


@dataclass
class Case:
    text: str
    errors: list[tuple[str, str]]       # (text of the line it is at, message)
    fatal: bool = False                 # the daemon refuses it too (keepalived refuses it)
    # What keepalived -t prints besides, and hivrrp does not: (message, why)
    keepalived_only: list[tuple[str, str]] = field(default_factory=list)
    multicast: bool = True              # the namespace's eth1 can multicast
    # hivrrp check's warnings that depend on the host's interfaces: (line's text, start)
    host_warnings: list[tuple[str, str]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors and not self.keepalived_only

    def line_of(self, needle: str) -> int:
        for number, line in enumerate(self.text.splitlines(), 1):
            if needle in line:
                return number
        raise ValueError(f"{needle!r} is not in the case's text")

    def expected(self) -> list[tuple[int, str]]:
        return [(self.line_of(needle), message) for needle, message in self.errors]


STRICT = "    vrrp_strict\n"
AUTH = "    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }\n"
AUTH_PASS_ONLY = "    authentication {\n        auth_pass 1111\n    }\n"
AUTH_TYPE_ONLY = "    authentication {\n        auth_type PASS\n    }\n"
AUTH_AH = "    authentication {\n        auth_type AH\n        auth_pass 1111\n    }\n"


def conf(inside: str = "", *, glob: str = STRICT, head: str = "", priority: str = "100",
         vips=("192.0.2.26/24",), interface: str = "eth1", advert: str = "1") -> str:
    vip_lines = "".join(f"        {v}\n" for v in vips)
    vip_block = f"    virtual_ipaddress {{\n{vip_lines}    }}\n" if vips else ""
    return (f"global_defs {{\n{glob}}}\nvrrp_instance VI_1 {{\n{head}    interface {interface}\n"
            f"    virtual_router_id 51\n    priority {priority}\n    advert_int {advert}\n"
            f"{vip_block}"
            f"{inside}}}\n")


def debian_sample(interface: str = "eth1") -> str:
    """Debian's sample with its interface renamed to one the test namespace has."""
    return DEBIAN_SAMPLE.read_text().replace("interface eth0", f"interface {interface}")


CASES: dict[str, Case] = {
    "nothing to correct": Case(conf(), []),
    "authentication": Case(conf(AUTH), [
        ("authentication {", "(VI_1) Strict mode does not support authentication. Ignoring.")]),
    # keepalived tests auth_type only: a password alone is no authentication, said nothing of.
    "auth_pass without auth_type": Case(conf(AUTH_PASS_ONLY), []),
    "auth_pass without auth_type, not strict": Case(conf(AUTH_PASS_ONLY, glob=""), []),
    # Strict mode takes AH away like PASS, and keepalived runs it (outside strict mode
    # hivrrp refuses AH: tests/config/test_strict.py).
    "auth_type AH": Case(conf(AUTH_AH), [
        ("authentication {", "(VI_1) Strict mode does not support authentication. Ignoring.")]),
    "auth_type without auth_pass, not strict": Case(conf(AUTH_TYPE_ONLY, glob=""), [
        ("authentication {", "(VI_1) Authentication specified but no password given. Ignoring")]),
    "authentication with version 3, not strict": Case(
        conf(AUTH, glob="", head="    version 3\n"), [
            ("authentication {",
             "(VI_1) VRRP version 3 does not support authentication. Ignoring.")]),
    "IPv6 with version 2": Case(
        conf(head="    version 2\n", vips=("fe80::26/64", "fd00::26/64")),
        [("version 2", "(VI_1) cannot use IPv6 with VRRP version 2; setting version 3")]),
    "IPv6 with the global version 2": Case(
        conf(glob=STRICT + "    vrrp_version 2\n", vips=("fe80::26/64", "fd00::26/64")), []),
    "state MASTER below 255": Case(conf(head="    state MASTER\n"), [
        ("state MASTER", "(VI_1) State MASTER must match being address owner")]),
    "state BACKUP at 255": Case(conf(head="    state BACKUP\n", priority="255"), [
        ("state BACKUP", "(VI_1) State MASTER must match being address owner")]),
    "state MASTER at 255": Case(conf(head="    state MASTER\n", priority="255"), []),
    "no VIP": Case(conf(vips=()), [
        ("vrrp_instance", "(VI_1) No VIP specified; at least one is required")], fatal=True),
    "no VIP in version 2, not strict": Case(conf(glob="", vips=()), [
        ("vrrp_instance", "(VI_1) No VIP specified; at least one is sensible")]),
    "user VMAC address": Case(conf("    use_vmac 02:11:22:33:44:55\n"), [
        ("use_vmac", "(VI_1): cannot specify MAC address with strict mode - clearing")]),
    "vmac_xmit_base": Case(conf("    use_vmac\n    vmac_xmit_base\n"), [
        ("vmac_xmit_base", "(VI_1) xmit_base is incompatible with strict mode - resetting")]),
    "first IPv6 VIP not link-local": Case(conf(vips=("fd00::26/64",)), [
        ("fd00::26", "(VI_1) the first IPv6 VIP address must be link local")]),
    "preempt_delay": Case(conf("    preempt_delay 5\n"), [
        ("preempt_delay", "(VI_1) preempt_delay is incompatible with strict mode - resetting")]),
    # Preemption: keepalived's rules with or without strict mode. The initial state is
    # MASTER when written so, or unwritten at priority 255.
    "nopreempt at priority 255": Case(conf("    nopreempt\n", priority="255"), [
        ("nopreempt", "(VI_1) nopreempt is incompatible with priority 255. resetting nopreempt")]),
    "nopreempt at priority 255, not strict": Case(
        conf("    nopreempt\n", glob="", priority="255"), [
            ("nopreempt",
             "(VI_1) nopreempt is incompatible with priority 255. resetting nopreempt")]),
    "nopreempt with state MASTER, not strict": Case(
        conf("    nopreempt\n", glob="", head="    state MASTER\n"), [
            ("nopreempt", "(VI_1) Warning - nopreempt will not work with initial state MASTER "
                          "- clearing")]),
    "preempt_delay with state MASTER": Case(
        conf("    preempt_delay 5\n", head="    state MASTER\n", priority="255"), [
            ("preempt_delay", "(VI_1) Warning - preempt delay will not work with initial state "
                              "MASTER - clearing")]),
    "preempt_delay at priority 255": Case(conf("    preempt_delay 5\n", priority="255"), [
        ("preempt_delay", "(VI_1) Warning - preempt delay will not work with initial state "
                          "MASTER - clearing")]),
    "preempt_delay with state MASTER, not strict": Case(
        conf("    preempt_delay 5\n", glob="", head="    state MASTER\n"), [
            ("preempt_delay", "(VI_1) Warning - preempt delay will not work with initial state "
                              "MASTER - clearing")]),
    "preempt_delay with nopreempt": Case(conf("    preempt_delay 5\n    nopreempt\n"), [
        ("preempt_delay", "(VI_1) preempt_delay is incompatible with strict mode - resetting"),
        ("preempt_delay", "(VI_1) preempt_delay is incompatible with nopreempt mode - resetting")]),
    "preempt_delay with nopreempt, not strict": Case(
        conf("    preempt_delay 5\n    nopreempt\n", glob=""), [
            ("preempt_delay",
             "(VI_1) preempt_delay is incompatible with nopreempt mode - resetting")]),
    "down_timer_adverts": Case(conf("    down_timer_adverts 5\n"), [
        ("down_timer_adverts",
         "(VI_1) down_timer_adverts is incompatible with strict mode - resetting")]),
    "global down_timer_adverts": Case(conf(glob=STRICT + "    vrrp_down_timer_adverts 5\n"), [
        ("vrrp_instance",
         "(VI_1) down_timer_adverts is incompatible with strict mode - resetting")]),
    "garp_lower_prio_repeat": Case(conf("    garp_lower_prio_repeat 3\n"), [
        ("garp_lower_prio_repeat", "(VI_1) Strict mode requires no repeat garps. resetting")]),
    "garp_lower_prio_delay": Case(conf("    garp_lower_prio_delay 2\n"), [
        ("garp_lower_prio_delay",
         "(VI_1) Strict mode requires no repeat garp delay. resetting")]),
    "global garp_lower_prio_*": Case(conf(glob=STRICT + "    vrrp_garp_lower_prio_repeat 3\n"
                                          "    vrrp_garp_lower_prio_delay 2\n"), []),
    "lower_prio_no_advert off": Case(conf("    lower_prio_no_advert false\n"), [
        ("lower_prio_no_advert",
         "(VI_1) Strict mode requires no lower priority advert. resetting")]),
    "higher_prio_send_advert": Case(conf("    higher_prio_send_advert\n"), [
        ("higher_prio_send_advert",
         "(VI_1) strict mode requires higher_prio_send_advert to be clear. resetting")]),
    "global lower/higher priority adverts": Case(
        conf(glob=STRICT + "    vrrp_lower_prio_no_advert false\n"
                           "    vrrp_higher_prio_send_advert\n"), []),
    "accept with version 2": Case(conf("    accept\n"), [
        ("accept", "(VI_1) warning - accept mode for VRRP version 2 does not comply with "
                   "RFC3768 - resetting")]),
    "accept with version 3": Case(conf("    accept\n", head="    version 3\n"), []),
    "accept at 255": Case(conf("    accept\n", priority="255"), []),
    # keepalived 2.2.7 means to refuse these, and does not (2.4.0 does): see
    # hivrrp.config.strict.unicast.
    "unicast peers on a multicast interface": Case(
        conf("    unicast_src_ip 192.0.2.1\n    unicast_peer {\n        192.0.2.2\n    }\n"),
        [], host_warnings=[("unicast_peer", "(VI_1) unicast peers on eth1, which can multicast, "
                                            "in strict mode: keepalived 2.2.7 (and hivrrp) run "
                                            "them, keepalived 2.4.0 and later refuse")]),
    "unicast peers on an interface without multicast": Case(
        conf("    unicast_src_ip 192.0.2.1\n    unicast_peer {\n        192.0.2.2\n    }\n"),
        [], multicast=False),
    "strict_mode in the instance": Case(
        conf("    strict_mode\n    preempt_delay 5\n", glob=""), [
            ("preempt_delay", "(VI_1) preempt_delay is incompatible with strict mode - "
                              "resetting")]),
    "strict_mode off under vrrp_strict": Case(conf("    strict_mode off\n    preempt_delay 5\n"),
                                              []),
    "vrrp_strict off is strict": Case(conf("    preempt_delay 5\n", glob="    vrrp_strict off\n"),
                                      [("preempt_delay", "(VI_1) preempt_delay is incompatible "
                                                         "with strict mode - resetting")]),
    # advert_int: rounded half up to whole seconds (v2) or 10 ms (v3), clamped to 40.95 s.
    "advert_int not whole seconds in version 2": Case(conf(advert="2.5"), [
        ("advert_int", "(VI_1) VRRPv2 advertisement interval 2.500000s must be an integer. "
                       "rounding")]),
    "advert_int not in 10 ms in version 3, not strict": Case(
        conf(glob="", head="    version 3\n", advert="0.015"), [
            ("advert_int", "(VI_1) VRRPv3 advertisement interval 0.015000s must be in units "
                           "of 10ms - rounding")]),
    "advert_int above 40.95 s in version 3": Case(
        conf(head="    version 3\n", advert="41"), [
            ("advert_int", "(VI_1) VRRPv3 advertisement interval 41.00s is out of range. "
                           "Must be less than 40.96s. Setting to 40.95s")]),
    # `nftables` is read as keepalived reads it; what it ignores is a config error it runs
    # with. The name is measured in bytes (keepalived's strlen, the kernel's limit).
    "nftables name too long": Case(conf(glob=STRICT + "    nftables " + "x" * 300 + "\n"), [
        ("nftables ", "nftables table name too long - ignoring")]),
    "nftables name too long in bytes": Case(
        conf(glob=STRICT + "    nftables " + "\u00e9" * 128 + "\n"), [
            ("nftables ", "nftables table name too long - ignoring")]),
    "nftables name of 255 bytes": Case(
        conf(glob=STRICT + "    nftables " + "\u00e9" * 127 + "t\n"), []),
    "nftables twice": Case(conf(glob=STRICT + "    nftables one\n    nftables two\n"), [
        ("nftables two", "nftables already specified - ignoring")]),
    "Debian's sample": Case(debian_sample(), [
        ("state MASTER", "(VI_1) State MASTER must match being address owner"),
        ("authentication {", "(VI_1) Strict mode does not support authentication. Ignoring.")],
        keepalived_only=[
            ("vrrp_garp_interval '0' is invalid",
             "keepalived 2.2.7 reads the value from 0.000001 s (0 stays its default)"),
            ("vrrp_gna_interval '0' is invalid", "the same")]),
}
