#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian-like machine
# (as root: namespace tests need it) into .venv and runs the whole suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers and capture tools for the namespace tests.
missing=()
command -v keepalived >/dev/null || missing+=(keepalived)
command -v tcpdump >/dev/null || missing+=(tcpdump)
command -v sysctl >/dev/null || missing+=(procps)
command -v ping >/dev/null || missing+=(iputils-ping)
# nft reads the no_accept tables back (test_no_accept.py); the daemon itself does not need it.
command -v nft >/dev/null || missing+=(nftables)
# FRR's zebra and bgpd for test_bgp_frr.py (started by the test, not as a service).
[ -x /usr/lib/frr/bgpd ] || missing+=(frr)
# ip(8) names protocols from /etc/protocols: the rule tests read "ipproto tcp".
[ -e /etc/protocols ] || missing+=(netbase)
# The man page renders (man, groff); the unit is checked by systemd-analyze
# (verify, security, syscall-filter) and its sandbox rebuilt with strace.
command -v man >/dev/null || missing+=(man-db)
command -v groff >/dev/null || missing+=(groff-base)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v strace >/dev/null || missing+=(strace)
# tshark decodes the adverts of both send paths with checksum validation (test_sendpath.py).
command -v tshark >/dev/null || missing+=(tshark)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash tests/install.sh test,pcap
# Tests start `hivrrp` and `python -m hivrrp` from the venv.
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
