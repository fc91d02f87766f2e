#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian-like machine
# (as root: namespace tests need it) and runs the whole suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers and capture tools for the namespace tests.
missing=()
command -v keepalived >/dev/null || missing+=(keepalived)
command -v tcpdump >/dev/null || missing+=(tcpdump)
command -v ip >/dev/null || missing+=(iproute2)
command -v sysctl >/dev/null || missing+=(procps)
command -v ping >/dev/null || missing+=(iputils-ping)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python3 -m pip install --quiet --disable-pip-version-check ".[test,pcap]"
# Run from a directory without the sources so only the installed package is importable.
exec python3 -m pytest "$@"
