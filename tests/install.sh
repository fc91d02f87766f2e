#!/usr/bin/env bash
# Installs hivrrp into a virtual environment (.venv next to this repository's
# pyproject.toml) on a Debian-like machine, as root, with the Debian packages
# it needs (only those missing): the README's first command and tests/run.sh
# use it. conf/install.sh does the work; without --venv-only it is the system
# install (/opt/hivrrp, the systemd unit, the man page).
# Usage: bash tests/install.sh [EXTRAS]   e.g. "test,pcap"; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash conf/install.sh --venv-only "$PWD/.venv" ${1:+--extras "$1"}
