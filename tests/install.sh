#!/usr/bin/env bash
# Installs hivrrp into a virtual environment (.venv next to this repository's
# pyproject.toml) on a Debian-like machine, as root, with the Debian packages
# it needs (only those missing): the README's first command and tests/run.sh
# use it. conf/install.sh does the work; without --venv-only it is the system
# install (/opt/hivrrp, the systemd unit, the man page).
# Usage: bash tests/install.sh [EXTRAS]   e.g. "test,pcap"; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
# The clone is compiled once, into a wheel in build/test-wheel that .venv gets
# (--wheel) and tests/system/test_install.py installs again, instead of building
# the Cython extensions a second time (half a minute of every CI run). Where the
# interpreter has no pip, headers or compiler yet, conf/install.sh builds from
# the clone (installing what it needs) and that test builds its own wheel.
wheels=build/test-wheel
rm -rf "$wheels"
if "$python" -m pip --version >/dev/null 2>&1 && command -v cc >/dev/null 2>&1 \
    && "$python" -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null; then
    "$python" -m pip wheel --quiet --no-deps --disable-pip-version-check -w "$wheels" .
    built=("$wheels"/hivrrp-*.whl)
    exec bash conf/install.sh --venv-only "$PWD/.venv" --wheel "${built[0]}" ${1:+--extras "$1"}
fi
exec bash conf/install.sh --venv-only "$PWD/.venv" ${1:+--extras "$1"}
