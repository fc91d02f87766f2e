"""Strict mode reaches the engine and the announcements: what the daemon sends and
takes, built from config text as the daemon builds it (daemon.plan.build)."""

from hivrrp._wire import RxBatch, encode, ipv4_packet
from scapy.layers.vrrp import VRRP

from helpers.plans import instance_text, plan_of
from hivrrp.kernel.announce_policy import settings

STRICT = "global_defs {\n    vrrp_strict\n}\n"
AUTH = "    authentication {\n        auth_type PASS\n        auth_pass 1111\n    }"
SECOND = 1_000_000


def first_advert(plan):
    plan.engine.start_all(0)
    plan.engine.expire(10 * SECOND)
    [*_, message] = plan.engine.tx_packets()[0]
    return VRRP(message)


def test_debian_sample_sends_no_authentication_under_strict_mode(tmp_path):
    # What a keepalived peer in strict mode expects ("received a 1 auth, expecting 0!"
    # otherwise, and both routers master).
    plan = plan_of(tmp_path, STRICT + instance_text("VI_1", 51, ["192.0.2.16"], extra=AUTH))
    advert = first_advert(plan)
    assert (advert.authtype, advert.auth1, advert.auth2) == (0, 0, 0)


def test_without_strict_mode_the_password_goes_out(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.16"], extra=AUTH))
    advert = first_advert(plan)
    assert advert.authtype == 1 and advert.auth1.to_bytes(4, "big") == b"1111"


def test_a_strict_owner_drops_the_adverts_it_receives(tmp_path):
    plan = plan_of(tmp_path, STRICT + instance_text("VI_1", 51, ["192.0.2.16"], priority=255))
    engine = plan.engine
    engine.start_all(0)
    assert engine.state(0) == "MASTER"
    batch = RxBatch(1)
    # Priority 255 from a higher address: a master that took it would step down.
    batch.add_ipv4(ipv4_packet(encode(version=2, vrid=51, priority=255, interval=1,
                                      addresses=["192.0.2.16"]), "192.0.2.200", "224.0.0.18"),
                   ifindex=2)
    engine.receive(batch, SECOND)
    assert engine.state(0) == "MASTER"
    assert engine.counters(0)["owner_ignored_adverts"] == 1


def garp_of(tmp_path, global_defs: str):
    plan = plan_of(tmp_path, f"global_defs {{\n{global_defs}    vrrp_garp_master_repeat 3\n}}\n"
                   + instance_text("VI_1", 51, ["192.0.2.16"]))
    return settings(plan.instances["VI_1"].config, plan.config.global_defs)


def test_strict_mode_sends_no_garps_on_hearing_a_lower_priority(tmp_path):
    garp = garp_of(tmp_path, "    vrrp_strict\n")
    assert (garp.master_repeat, garp.lower_prio_repeat, garp.lower_prio_delay) == (3, 0, 0.0)
    # Without it the lower-priority bursts follow the master's (keepalived's default).
    garp = garp_of(tmp_path, "")
    assert (garp.lower_prio_repeat, garp.lower_prio_delay) == (3, 5.0)
