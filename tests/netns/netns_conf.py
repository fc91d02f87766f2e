"""The keepalived.conf text the namespace tests run with."""

VIP = "192.0.2.26"
MDI_100 = 3 + 156 / 256      # Master_Down_Interval, priority 100, 1 s adverts
SKEW_100 = 156 / 256


def conf(priority: int, *, interface: str = "eth1", vrid: int = 51, extra: str = "",
         version: int = 2, vips=(f"{VIP}/24",), auth: bool = True) -> str:
    auth_block = ("    authentication {\n        auth_type PASS\n        auth_pass 1234\n    }\n"
                  if auth and version == 2 else "")
    vip_lines = "".join(f"        {v}\n" for v in vips)
    return (f"vrrp_instance VI_1 {{\n    interface {interface}\n    virtual_router_id {vrid}\n"
            f"    priority {priority}\n    advert_int 1\n    version {version}\n{auth_block}"
            f"{extra}    virtual_ipaddress {{\n{vip_lines}    }}\n}}\n")
