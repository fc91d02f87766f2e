"""no_accept on a real (namespaced) network, read from the kernel with `nft -j`:
a no_accept master's VIP does not answer, an accepting one does, the VIP answers
again from the peer after a failover; the table is keepalived's, is there from the
start, goes at SIGTERM and is replaced after a SIGKILL; 4,000 masters at once are
one nftables transaction; keepalived 2.2.7 on the same configuration drops and
answers alike (issue 20, points 2 and 4(c))."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys

import pytest
from netns_conf import FAST, FAST_MDI_100, VIP, conf

from helpers.netns import Lab, wait_for

pytestmark = pytest.mark.netns


@pytest.fixture(autouse=True)
def nft_installed():
    if shutil.which("nft") is None:
        pytest.fail("nft is missing: tests/run.sh installs it (Debian package nftables)")


def ruleset(lab, ns: str) -> list[dict]:
    out = lab.run(ns, "nft", "-j", "list", "ruleset").stdout
    return [item for item in json.loads(out)["nftables"] if "metainfo" not in item]


def tables(lab, ns: str) -> set[tuple[str, str]]:
    return {(t["table"]["family"], t["table"]["name"]) for t in ruleset(lab, ns)
            if "table" in t}


def shape(lab, ns: str, family: str, table: str) -> dict:
    """A table as comparable data: chains with hook, priority and policy; sets
    with type, flags and elements; rules by chain, handles and names left out."""
    out: dict = {"chains": {}, "sets": {}, "rules": {}}
    for item in ruleset(lab, ns):
        kind, body = next(iter(item.items()))
        if body.get("family") != family or body.get("table", body.get("name")) != table:
            continue
        if kind == "chain":
            out["chains"][body["name"]] = tuple(body.get(k) for k in ("type", "hook", "prio",
                                                                        "policy"))
        elif kind == "set":
            out["sets"][body["name"]] = (body["type"], tuple(body.get("flags", ())),
                                         sorted(map(json.dumps, body.get("elem", []))))
        elif kind == "rule":
            out["rules"].setdefault(body["chain"], []).append(json.dumps(body["expr"]))
    return out


def ping(lab, client: str, address: str, tries: int = 1) -> bool:
    flag = "-6" if ":" in address else "-4"
    # -i 0.2: the tries 0.2 s apart, not 1 s; each still waits 1 s for its reply.
    return lab.run(client, "ping", flag, "-c", str(tries), "-i", "0.2", "-W", "1", address,
                   check=False).returncode == 0


def never_answers(lab, client: str, address: str) -> bool:
    return not ping(lab, client, address, tries=2)


def answers(lab, client: str, address: str, within: float = 8) -> bool:
    """Within a few seconds: after a failover the client may need the new
    master's gratuitous ARP, or its own probe, to find it."""
    return wait_for(lambda: ping(lab, client, address), within, interval=0.2)


def neighbour(lab, client: str, address: str) -> str:
    return lab.run(client, "ip", "neigh", "show", address).stdout


def test_an_unreachable_vip_is_reachable_again_after_failover(lan):
    client = lan.node("client", ipv4="192.0.2.100/24")
    r1 = lan.node("r1", ipv4="192.0.2.1/24")
    r2 = lan.node("r2", ipv4="192.0.2.2/24")
    config = lan.write("r1.conf", conf(200, extra="    no_accept\n", **FAST))
    first = lan.hivrrp("r1", config)
    assert lan.wait_running("r1"), lan.log("r1")
    lan.hivrrp("r2", lan.write("r2.conf", conf(100, extra="    accept\n", **FAST)))
    assert lan.wait_owner(VIP, "r1", 8), (lan.log("r1"), lan.log("r2"))

    # The table is there from the start, as keepalived makes it; the accepting
    # backup has none.
    table = shape(lan, r1, "ip", "hivrrp")
    assert table["chains"] == {"in": ("filter", "input", -1, "accept"),
                               "out": ("filter", "output", -1, "accept")}
    assert table["sets"] == {"vips": ("ipv4_addr", (), [json.dumps(VIP)])}
    assert sorted(table["rules"]) == ["in", "out"]
    assert tables(lan, r2) == set()
    assert "nftables: table ip hivrrp created for no_accept (priority -1)" in lan.log("r1")

    # ARP still answers (the client knows where the VIP is), IP does not.
    assert never_answers(lan, client, VIP), lan.log("r1")
    mac = json.loads(lan.run(r1, "ip", "-j", "link", "show", "dev", "eth1").stdout)[0]["address"]
    assert wait_for(lambda: mac in neighbour(lan, client, VIP), 3), neighbour(lan, client, VIP)

    # The master dies: the accepting peer takes over and the VIP answers again.
    lan.kill(first)
    first.wait(5)
    lan.run(lan.switch, "ip", "link", "set", lan.port_of["r1"], "down")
    assert lan.wait_has(VIP, "r2", FAST_MDI_100 + 2), lan.log("r2")
    assert answers(lan, client, VIP), lan.log("r2")
    assert tables(lan, r1) == {("ip", "hivrrp")}         # what the SIGKILL left

    # Back on the LAN, a new run replaces that table, preempts, and drops again.
    lan.run(lan.switch, "ip", "link", "set", lan.port_of["r1"], "up")
    second = lan.hivrrp("r1", config)
    assert lan.wait_owner(VIP, "r1", 12), (lan.log("r1"), lan.log("r2"))
    assert "nftables: table ip hivrrp left by a previous run replaced" in lan.log("r1")
    assert shape(lan, r1, "ip", "hivrrp") == table
    assert never_answers(lan, client, VIP), (lan.log("r1"), lan.log("r2"))

    # SIGTERM: the VIP and the table go; the peer answers.
    lan.stop(second)
    assert second.returncode == 0, lan.log("r1")
    assert tables(lan, r1) == set()
    assert "nftables: table ip hivrrp removed" in lan.log("r1")
    assert lan.wait_has(VIP, "r2", FAST_MDI_100 + 2), lan.log("r2")
    assert answers(lan, client, VIP), lan.log("r2")


DAEMONS = {  # router name -> (daemon, accept mode, address, last digit of its VIPs)
    "h1": ("hivrrp", "no_accept", "192.0.2.1/24", 1),
    "h2": ("hivrrp", "accept", "192.0.2.2/24", 2),
    "k1": ("keepalived", "no_accept", "192.0.2.3/24", 3),
    "k2": ("keepalived", "accept", "192.0.2.4/24", 4),
}


def both_families(mode: str, n: int) -> str:
    """An IPv4 and an IPv6 instance, alone on their VRIDs: each becomes master (after
    0.75 s and a bit at netns_conf.FAST's 0.25 s; the tables do not depend on it)."""
    return (conf(150, vrid=10 + n, vips=(f"192.0.2.3{n}/24",), extra=f"    {mode}\n", **FAST)
            + conf(150, vrid=20 + n, vips=(f"fd00::3{n}/64",), extra=f"    {mode}\n",
                   **FAST).replace("VI_1", "VI_6"))


def test_keepalived_and_hivrrp_drop_and_answer_alike(lan):
    client = lan.node("client", ipv4="192.0.2.100/24", ipv6="fd00::100/64")
    for name, (daemon, mode, address, n) in DAEMONS.items():
        lan.node(name, ipv4=address, ipv6=f"fd00::{n}/64")
        path = lan.write(f"{name}.conf", both_families(mode, n))
        getattr(lan, daemon)(name, path)
    for name, (daemon, _mode, _address, n) in DAEMONS.items():
        for vip in (f"192.0.2.3{n}", f"fd00::3{n}"):
            assert lan.wait_has(vip, name, 12), lan.log(name, daemon)

    for name, (daemon, mode, _address, n) in DAEMONS.items():
        for vip in (f"192.0.2.3{n}", f"fd00::3{n}"):
            if mode == "accept":
                assert answers(lan, client, vip), (daemon, vip, lan.log(name, daemon))
            else:
                assert never_answers(lan, client, vip), (daemon, vip)
                # ARP and neighbour discovery still answer for it: the table lets
                # ND through, so the client resolved the VIP.
                assert wait_for(lambda vip=vip: re.search(
                    r"lladdr \S+ (REACHABLE|STALE|DELAY|PROBE)", neighbour(lan, client, vip)),
                    3), (daemon, vip, neighbour(lan, client, vip))

    # The same table: keepalived's ip table and ours are one shape; in ip6 ours
    # also has the link-local set and its two rules, which keepalived adds at
    # its first link-local VIP (this configuration has none).
    theirs4, ours4 = (shape(lan, lan.nodes[r][0], "ip", t) for r, t in (("k1", "keepalived"),
                                                                          ("h1", "hivrrp")))
    assert theirs4["sets"]["vips"][2] == [json.dumps("192.0.2.33")]
    assert ours4["sets"]["vips"][2] == [json.dumps("192.0.2.31")]
    for t in (theirs4, ours4):
        t["sets"]["vips"] = t["sets"]["vips"][:2]
    assert ours4 == theirs4
    theirs6, ours6 = (shape(lan, lan.nodes[r][0], "ip6", t) for r, t in (("k1", "keepalived"),
                                                                          ("h1", "hivrrp")))
    assert ours6["chains"] == theirs6["chains"]
    assert {k: v for k, v in ours6["rules"].items() if not k.endswith("_link_local")} == \
        theirs6["rules"]
    assert set(ours6["sets"]) - set(theirs6["sets"]) == {"vips_link_local"}
    assert ours6["sets"]["neighbor-discovery"] == theirs6["sets"]["neighbor-discovery"]
    # The accepting routers have no table, with either daemon.
    for name in ("h2", "k2"):
        assert tables(lan, lan.nodes[name][0]) == set()


INTERFACES = 16
PER_INTERFACE = 250          # 4,000 instances: VRIDs are per interface


def many_no_accept(names: list[str]) -> str:
    return "".join(
        f"vrrp_instance V{i}_{v} {{\n    interface {ifname}\n    virtual_router_id {v}\n"
        f"    priority 100\n    advert_int 1\n    no_accept\n"
        f"    virtual_ipaddress {{\n        10.{100 + i}.{v}.1/32\n    }}\n}}\n"
        for i, ifname in enumerate(names) for v in range(1, PER_INTERFACE + 1))


def test_4000_no_accept_masters_at_once_are_one_nftables_transaction(namespaces_allowed,
                                                                      tmp_path):
    total = INTERFACES * PER_INTERFACE
    with Lab() as lab:
        ns, peer = lab.netns("r"), lab.netns("peer")
        names = []
        for k in range(INTERFACES):
            ifname = lab.veth(ns, peer, k)[0]
            lab.run(ns, "ip", "addr", "add", f"10.{100 + k}.0.1/16", "dev", ifname)
            names.append(ifname)
        config = tmp_path / "many.conf"
        config.write_text(many_no_accept(names))
        # The kernel's own account: one "new generation" per committed transaction.
        with open(tmp_path / "monitor", "wb") as out:
            monitor = lab.popen(ns, "nft", "monitor", stdout=out, stderr=subprocess.STDOUT)
        log_path = tmp_path / "hivrrp.log"
        with open(log_path, "wb") as log:
            daemon = lab.popen(ns, sys.executable, "-m", "hivrrp", "run", "-f", str(config),
                               "--pid-file", str(tmp_path / "pid"),
                               "--control", str(tmp_path / "sock"),
                               stdout=log, stderr=subprocess.STDOUT)

        def in_set() -> int:
            listing = json.loads(lab.run(ns, "nft", "-j", "list", "set", "ip", "hivrrp",
                                         "vips", check=False).stdout or '{"nftables": []}')
            return sum(len(item["set"].get("elem", [])) for item in listing["nftables"]
                       if "set" in item)

        assert wait_for(lambda: in_set() == total, 40, interval=0.5), log_path.read_text()[-3000:]
        log = log_path.read_text()
        assert f"{total} instances BACKUP -> MASTER" in log, log[-3000:]
        assert log.count("VIP changes applied in") == 1, log[-3000:]     # one trip
        lab.stop(daemon, timeout=30)
        assert daemon.returncode == 0, log_path.read_text()[-3000:]
        lab.stop(monitor, signal.SIGINT)
        events = (tmp_path / "monitor").read_text()
        generations = re.findall(r"# new generation \d+ by process \d+ \((\S+)\)", events)
        # Start (the table), the takeover, the release at SIGTERM, the table removed.
        assert len(generations) == 4, events[-2000:]
        assert events.count("add element ip hivrrp vips") == total
        assert events.count("delete element ip hivrrp vips") == total
        assert tables(lab, ns) == set()


def test_a_reload_switches_a_master_between_accept_and_no_accept(lan):
    client = lan.node("client", ipv4="192.0.2.100/24")
    r1 = lan.node("r1", ipv4="192.0.2.1/24")
    path = lan.write("r1.conf", conf(200, extra="    accept\n", **FAST))
    daemon = lan.hivrrp("r1", path)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    assert answers(lan, client, VIP)
    assert tables(lan, r1) == set()          # nothing filters: no table at start

    def reload_to(mode: str, count: int) -> None:
        path.write_text(conf(200, extra=f"    {mode}\n", **FAST))
        lan.kill(daemon, signal.SIGHUP)
        assert wait_for(lambda: lan.log("r1").count("reloaded:") == count, 10), lan.log("r1")

    # The first no_accept instance gets its table with its VIP in one go; the
    # address never moves.
    reload_to("no_accept", 1)
    assert wait_for(lambda: ("ip", "hivrrp") in tables(lan, r1), 5), lan.log("r1")
    assert shape(lan, r1, "ip", "hivrrp")["sets"]["vips"][2] == [json.dumps(VIP)]
    assert never_answers(lan, client, VIP)
    reload_to("accept", 2)
    assert wait_for(lambda: shape(lan, r1, "ip", "hivrrp")["sets"]["vips"][2] == [], 5)
    assert answers(lan, client, VIP)
    assert lan.log("r1").count("BACKUP -> MASTER") == 1 and lan.owner_of(VIP) == ["r1"]
