"""The keepalived.conf text the namespace tests run with."""

VIP = "192.0.2.26"
MDI_100 = 3 + 156 / 256      # Master_Down_Interval, priority 100, 1 s adverts
SKEW_100 = 156 / 256

# Tests about something other than VRRP's own timing (leftovers, release, reloads,
# faults, VMACs, nftables, the control socket) run VRRPv3 adverts every 0.25 s: a
# start waits 0.75 s and a bit instead of 3.2 s (VRRPv2 cannot go below 1 s). The
# protocol's tests, the interop and every v2-only feature (PASS) keep 1 s VRRPv2.
FAST = {"version": 3, "advert": 0.25}


def master_down(priority: int = 100, advert: float = 1.0) -> float:
    """Master_Down_Interval: 3 adverts and the Skew_Time (RFC 9568 6.1)."""
    return 3 * advert + (256 - priority) * advert / 256


FAST_MDI_100 = master_down(100, FAST["advert"])


def conf(priority: int, *, interface: str = "eth1", vrid: int = 51, extra: str = "",
         version: int = 2, advert: float = 1, vips=(f"{VIP}/24",), auth: bool = True) -> str:
    auth_block = ("    authentication {\n        auth_type PASS\n        auth_pass 1234\n    }\n"
                  if auth and version == 2 else "")
    vip_lines = "".join(f"        {v}\n" for v in vips)
    return (f"vrrp_instance VI_1 {{\n    interface {interface}\n    virtual_router_id {vrid}\n"
            f"    priority {priority}\n    advert_int {advert:g}\n    version {version}\n"
            f"{auth_block}"
            f"{extra}    virtual_ipaddress {{\n{vip_lines}    }}\n}}\n")
