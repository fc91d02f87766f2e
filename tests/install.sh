#!/usr/bin/env bash
# Installs hivrrp into a virtual environment (.venv next to this repository's
# pyproject.toml) on a Debian-like machine, as root. Debian 12 and Ubuntu
# 24.04 refuse `pip install` into the system Python (PEP 668), and their
# python3 lacks venv and the headers the Cython extensions compile against,
# so those come from apt first, only when missing.
# Usage: bash tests/install.sh [EXTRAS]   e.g. "test,pcap"; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
extras=${1:-}

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
if ! have "$python"; then
    missing+=(python3 python3-venv python3-dev)   # a minimal system: none of them yet
else
    # Debian splits ensurepip (python3-venv) and Python.h (python3-dev) out.
    "$python" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    "$python" -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
        2>/dev/null || missing+=(python3-dev)
fi
have cc || missing+=(gcc libc6-dev)
have ip || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    if ! have apt-get; then
        echo "install.sh: missing ${missing[*]} and no apt-get to install them" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A venv made by another interpreter (or half made) is made again.
if ! .venv/bin/python -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
    rm -rf .venv
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check ".${extras:+[$extras]}"
