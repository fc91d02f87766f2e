"""`hivrrp check` on more VIPs than an advert has room for: a warning that says
how many are advertised (keepalived moves the rest to eVIPs and runs)."""

from __future__ import annotations

from hivrrp.config import load


def conf(vips, *, version=2, interface="eth0") -> str:
    lines = "".join(f"        {v}\n" for v in vips)
    auth = ("    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n"
            if version == 2 else "")
    return (f"vrrp_instance VI_1 {{\n    interface {interface}\n    virtual_router_id 51\n"
            f"    version {version}\n{auth}    virtual_ipaddress {{\n{lines}    }}\n}}\n")


def v4(n: int) -> list[str]:
    return [f"10.{1 + k // 65025}.{k // 255 % 255}.{k % 255 + 1}/32" for k in range(n)]


def v6(n: int) -> list[str]:
    return [f"fd00::1:{k + 1:x}/64" for k in range(n)]


def warnings_of(tmp_path, text: str, *, check_host: bool = False) -> list[str]:
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    result = load(str(path), check_host=check_host)
    assert result.ok, result.errors
    return [d.message for d in result.warnings if "eVIPs" in d.message]


def test_check_warns_by_the_count_limit(tmp_path):
    assert warnings_of(tmp_path, conf(v4(1000))) == [
        "vrrp_instance VI_1: 1000 VIPs, but only the first 255 fit in its adverts (an advert "
        "lists at most 255 addresses): the other 745 are added and removed like the rest, not "
        "advertised (keepalived's eVIPs)"]
    assert warnings_of(tmp_path, conf(v4(255))) == []


def test_check_warns_for_ipv6_at_1500_without_the_interface(tmp_path):
    assert warnings_of(tmp_path, conf(v6(100), version=3, interface="nosuch0"),
                       check_host=True) == [
        "vrrp_instance VI_1: 100 VIPs, but only the first 89 fit in its adverts (at the usual "
        "MTU of 1500; the daemon uses the interface's): the other 11 are added and removed "
        "like the rest, not advertised (keepalived's eVIPs)"]
    assert warnings_of(tmp_path, conf(v6(89), version=3)) == []


def test_check_uses_the_mtu_of_the_interface_it_finds(tmp_path, monkeypatch):
    # The real /sys read is in tests/netns/test_extreme_configs.py.
    from hivrrp.config import validate
    monkeypatch.setattr(validate, "_interface_mtu", lambda name: 1280)
    assert warnings_of(tmp_path, conf(v6(100), version=3), check_host=True) == [
        "vrrp_instance VI_1: 100 VIPs, but only the first 76 fit in its adverts (at the MTU of "
        "eth0, 1280): the other 24 are added and removed like the rest, not advertised "
        "(keepalived's eVIPs)"]
    monkeypatch.setattr(validate, "_interface_mtu", lambda name: 9000)
    assert warnings_of(tmp_path, conf(v6(200), version=3), check_host=True) == []


def test_check_reads_an_interface_s_sys_files_once_for_all_its_instances(tmp_path, monkeypatch):
    # 10,000 instances on one interface read /sys 20,000 times before.
    from hivrrp.config import validate
    reads = []

    def counting_open(path, *args, **kwargs):
        reads.append(path)
        return open(path, *args, **kwargs)
    monkeypatch.setattr(validate, "open", counting_open, raising=False)
    text = "".join(conf(v4(1)).replace("VI_1", f"VI_{n}").replace(" 51\n", f" {n}\n")
                   for n in range(1, 31))
    assert warnings_of(tmp_path, text, check_host=True) == []
    assert sorted(reads) == ["/sys/class/net/eth0/mtu", "/sys/class/net/eth0/type"]
