"""Prometheus metrics of running daemons (namespaces): scraped from another
namespace, read with prometheus-client's parser, compared with `hivrrp status
--json`, across an election and a failover; r2 also serves keepalived-exporter's
families (--metrics-compat)."""

import json
import signal
import subprocess
import sys

import pytest
from netns_conf import FAST, VIP, conf
from prometheus_client.parser import text_string_to_metric_families

from helpers.netns import wait_for

pytestmark = pytest.mark.netns
KEEPALIVED_VI_1 = frozenset({("iname", "VI_1"), ("intf", "eth1"), ("vrid", "51")})
KEEPALIVED_VIP = KEEPALIVED_VI_1 | {("ip_address", f"{VIP}/24")}

FETCH = ("import sys, urllib.request\n"
         "r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
         "print(r.headers['Content-Type']); sys.stdout.write(r.read().decode())")


def scrape(lan, url: str) -> tuple[str, dict]:
    client, _ = lan.nodes["client"]
    out = lan.run(client, sys.executable, "-c", FETCH, url).stdout
    content_type, _, body = out.partition("\n")
    samples = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return content_type, samples


def status(sock) -> dict:
    out = subprocess.run([sys.executable, "-m", "hivrrp", "status", "--json", "--socket",
                          str(sock)], capture_output=True, text=True, timeout=30, check=True)
    [row] = json.loads(out.stdout)
    return row


def per_instance(samples: dict, name: str) -> float:
    [value] = [v for (n, labels), v in samples.items()
               if n == name and dict(labels).get("vrrp_instance") == "VI_1"
               and "reason" not in dict(labels) and "reading" not in dict(labels)]
    return value


def test_scrapes_agree_with_status_through_an_election_and_a_failover(lan):
    lan.node("client", ipv4="192.0.2.100/24")
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    r1 = lan.hivrrp("r1", lan.write("r1.conf", conf(200, **FAST)), "--metrics", "192.0.2.1:9736")
    assert lan.wait_running("r1"), lan.log("r1")
    lan.hivrrp("r2", lan.write("r2.conf", conf(100, **FAST)), "--metrics", "192.0.2.2",
               "--metrics-compat", "keepalived-exporter")
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    codes = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}
    for node, url in (("r1", "http://192.0.2.1:9736/metrics"),
                      ("r2", "http://192.0.2.2:9736/metrics")):
        content_type, samples = scrape(lan, url)
        assert content_type.startswith("text/plain; version=0.0.4")
        row = status(lan.workdir / f"{node}.sock")
        assert per_instance(samples, "hivrrp_instance_state") == codes[row["state"]]
        assert per_instance(samples, "hivrrp_instance_priority") == row["priority"]
        assert per_instance(samples, "hivrrp_instance_base_priority") == row["base_priority"]
    _, before = scrape(lan, "http://192.0.2.2:9736/metrics")
    assert per_instance(before, "hivrrp_became_master_total") == 0
    # keepalived-exporter's state series: one per VIP, the state keepalived numbers.
    assert before[("keepalived_vrrp_state", KEEPALIVED_VIP)] == codes["BACKUP"]
    assert before[("keepalived_become_master_total", KEEPALIVED_VI_1)] == 0
    _, r1_samples = scrape(lan, "http://192.0.2.1:9736/metrics")
    assert not [name for name, _ in r1_samples if name.startswith("keepalived_")]
    assert per_instance(before, "hivrrp_adverts_received_total") >= 1
    # r1 leaves with priority 0: r2 takes over; its counters say so.
    r1.send_signal(signal.SIGTERM)
    assert lan.wait_owner(VIP, "r2", 3), lan.log("r2")
    assert wait_for(lambda: status(lan.workdir / "r2.sock")["state"] == "MASTER", 3)
    _, after = scrape(lan, "http://192.0.2.2:9736/metrics")
    row = status(lan.workdir / "r2.sock")
    assert per_instance(after, "hivrrp_instance_state") == 2 == codes[row["state"]]
    assert per_instance(after, "hivrrp_became_master_total") == 1
    assert per_instance(after, "hivrrp_priority_zero_received_total") == 1
    assert per_instance(after, "hivrrp_adverts_sent_total") >= 1
    assert (per_instance(after, "hivrrp_instance_last_transition_timestamp_seconds")
            == pytest.approx(row["last_transition"], abs=0.01))
    add = after[("hivrrp_vip_changes_total", frozenset({("action", "add")}))]
    assert add == 1
    assert after[("keepalived_vrrp_state", KEEPALIVED_VIP)] == codes["MASTER"]
    assert after[("keepalived_become_master_total", KEEPALIVED_VI_1)] == 1
    assert after[("keepalived_priority_zero_received_total", KEEPALIVED_VI_1)] == 1
    assert after[("keepalived_up", frozenset())] == 1
