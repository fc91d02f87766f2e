"""Time to load a generated keepalived.conf of N instances (default 10,000).

    python bench/config_load.py [--instances 10000] [--rounds 5]

The config is what large sites write: one multi-line $INSTANCE definition
expanded by ~SEQ over interfaces x VRIDs (250 per interface), with a tracker
and two VIPs per instance. Prints the median load time and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from hivrrp.config import load

TEMPLATE = """\
global_defs {{
    router_id bench
}}
vrrp_script chk {{
    script "/bin/true"
    interval 2
    weight -20
}}
$INSTANCE= \\
vrrp_instance vi_${{IF}}_${{ID}} {{ \\
    state BACKUP \\
    interface bench${{IF}} \\
    virtual_router_id ${{ID}} \\
    priority 100 \\
    advert_int 1 \\
    authentication {{ \\
        auth_type PASS \\
        auth_pass secret \\
    }} \\
    virtual_ipaddress {{ \\
        10.${{IF}}.${{ID}}.1/24 \\
        10.${{IF}}.${{ID}}.2/24 dev bench${{IF}} label bench${{IF}}:vip \\
    }} \\
    track_script {{ \\
        chk \\
    }} \\
}}
~SEQ(IF, 1, {interfaces}) ~SEQ(ID, 1, {per_interface}) $INSTANCE
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    per_interface = min(250, args.instances)
    interfaces = -(-args.instances // per_interface)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keepalived.conf"
        path.write_text(TEMPLATE.format(interfaces=interfaces, per_interface=per_interface))
        samples, result = [], None
        for _ in range(args.rounds):
            start = time.perf_counter()
            result = load(str(path), check_host=False)
            samples.append(time.perf_counter() - start)
    assert result is not None and result.ok, result.errors[:3]
    loaded = len(result.config.instances)
    median = statistics.median(samples)
    print(f"{loaded} instances ({interfaces} interfaces x {per_interface} VRIDs): "
          f"median {median * 1000:.0f} ms over {args.rounds} loads "
          f"(min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f}); "
          f"{median / loaded * 1e6:.1f} us per instance")
    print(json.dumps({"instances": loaded, "load_s_median": round(median, 4),
                      "load_s_min": round(min(samples), 4), "rounds": args.rounds,
                      "us_per_instance": round(median / loaded * 1e6, 1)}))


if __name__ == "__main__":
    main()
