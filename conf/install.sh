#!/usr/bin/env bash
# Installs hivrrp from this clone as a system service, as root:
#   /opt/hivrrp                           a virtual environment with hivrrp built into it
#   /usr/local/sbin/hivrrp                -> /opt/hivrrp/bin/hivrrp (what the unit runs)
#   /usr/local/share/man/man8/hivrrp.8    `man hivrrp`
#   /etc/systemd/system/hivrrp.service    the unit (conf/hivrrp.service), replaced on each run
#   /etc/default/hivrrp                   HIVRRP_OPTS for `hivrrp run`; never replaced
# A venv because Debian 12 and Ubuntu 24.04 refuse `pip install` into their
# Python (PEP 668); /opt and /usr/local because this is the administrator's
# install, not the distribution's (FHS); sbin and section 8 as for keepalived:
# a daemon for root. Running it again upgrades in place (then restart the
# service: the installer does not, its masters would fail over). It changes
# no service state unless asked.
#
# Usage: conf/install.sh [--extras LIST] [--wheel FILE] [--enable] [--start] [--root DIR]
#        conf/install.sh --uninstall [--root DIR]
#        conf/install.sh --venv-only DIR [--extras LIST]
#   --extras LIST    optional dependencies too, e.g. "pcap" (pyproject.toml lists them)
#   --wheel FILE     install this wheel instead of building this clone: routers need
#                    no compiler (build it where there is one, on the same distribution
#                    and Python: pip wheel --no-deps -w dist .)
#   --enable         start hivrrp at boot (systemctl enable)
#   --start          start it now, or restart it if it runs (its masters fail over)
#   --root DIR       install under DIR instead of / (tests, inspection): the files
#                    name the final paths; the venv there runs only from DIR
#   --uninstall      remove all of the above but /etc/default/hivrrp (and
#                    keepalived.conf, never ours), stopping and disabling the service
#   --venv-only DIR  only make or upgrade a virtual environment at DIR, nothing
#                    else (tests/install.sh does this for the clone's .venv)
# PYTHON picks the interpreter (default: the system's /usr/bin/python3).
set -euo pipefail
# -P: the real path, as the venv's is compared (a symlinked /opt must not
# hide that the clone is inside the venv that gets removed).
here=$(cd "$(dirname "$0")/.." && pwd -P)

VENV=/opt/hivrrp
LINK=/usr/local/sbin/hivrrp
MAN8=/usr/local/share/man/man8
UNIT=/etc/systemd/system/hivrrp.service
DEFAULTS=/etc/default/hivrrp

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

extras="" wheel="" enable=0 start=0 root="" uninstall=0 venv_only=""
while [ $# -gt 0 ]; do
    case $1 in
        --extras) extras=${2:?--extras needs a list}; shift ;;
        --wheel) wheel=$(realpath "${2:?--wheel needs a file}"); shift ;;
        --enable) enable=1 ;;
        --start) start=1 ;;
        --root) root=${2:?--root needs a directory}; shift ;;
        --uninstall) uninstall=1 ;;
        --venv-only) venv_only=${2:?--venv-only needs a directory}; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (--help lists them)" ;;
    esac
    shift
done
[ -z "$root" ] || root=$(realpath -m "$root")
# A venv others can read: `hivrrp check` and `hivrrp decode` work for any user.
umask 022

# Debian splits ensurepip (python3-venv) and Python.h (python3-dev) out of
# python3, and the Cython extensions need a compiler (not to install a
# wheel): installed from apt only when missing.
prerequisites() {
    local python=$1 missing=()
    if ! have "$python"; then
        missing+=(python3 python3-venv)   # a minimal system: none of them yet
    elif ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        missing+=(python3-venv)
    fi
    if [ -z "$wheel" ]; then              # building: headers and a compiler
        have "$python" && "$python" -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
            2>/dev/null || missing+=(python3-dev)
        have cc || missing+=(gcc libc6-dev)
    fi
    have ip || missing+=(iproute2)
    if [ ${#missing[@]} -gt 0 ]; then
        have apt-get || die "missing ${missing[*]} and no apt-get to install them"
        say "installing ${missing[*]} (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

not_the_clone() {
    case "$here/" in "$(realpath -m "$1")/"*) die "$1 holds this clone ($here): clone it elsewhere" ;; esac
}

# Make the venv at $2 with interpreter $1 (again, if it is not a working venv:
# made by an interpreter since removed, or half made), then build and install
# this clone (or install --wheel) into it. pip replaces an installed hivrrp:
# re-running upgrades.
venv() {
    local python=$1 dir=$2
    prerequisites "$python"
    # The venv is made again when broken, by removing it: never this clone,
    # nor a directory that is not a venv (a mistyped --venv-only /usr, a clone
    # put at /opt/hivrrp).
    not_the_clone "$dir"
    if ! "$dir/bin/python" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
        if [ -e "$dir" ] && [ ! -e "$dir/pyvenv.cfg" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
            die "$dir is not a virtual environment and not empty; not replacing it"
        fi
        rm -rf "$dir"
        "$python" -m venv "$dir"
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    if [ -n "$wheel" ]; then
        # Over an installed hivrrp of the same version too: pip would keep
        # that, and a rebuilt wheel of a clone often has the same version.
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
            --force-reinstall --no-deps "$wheel"
    fi
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        "${wheel:-$here}${extras:+[$extras]}"
}

if [ -n "$venv_only" ]; then
    venv "${PYTHON:-python3}" "$venv_only"
    exit 0
fi

[ -n "$root" ] || [ "$(id -u)" = 0 ] || die "run as root (or --root DIR to install under DIR)"
# The running systemd for a real install on a systemd host; otherwise (--root,
# an image being built, a container) systemctl --root, which only makes links.
live=0
if [ -z "$root" ] && [ -d /run/systemd/system ] && have systemctl; then live=1; fi
systemctl_() {
    if [ "$live" = 1 ]; then systemctl "$@"
    elif have systemctl; then systemctl --root="${root:-/}" "$@"
    else say "no systemctl here: skipped systemctl $*"; return 1
    fi
}

if [ "$uninstall" = 1 ]; then
    not_the_clone "$root$VENV"
    if [ "$(readlink "$root$UNIT" 2>/dev/null)" = /dev/null ]; then
        say "kept $UNIT masked (systemctl unmask hivrrp to remove the mask)"
    elif [ -e "$root$UNIT" ]; then
        if [ "$live" = 1 ]; then
            systemctl stop hivrrp.service
            say "stopped hivrrp.service"
        fi
        systemctl_ disable --quiet hivrrp.service || true
        rm -f "$root$UNIT" "$root$UNIT.old"
        say "removed $UNIT"
        if [ "$live" = 1 ]; then systemctl daemon-reload; fi
    fi
    # Only our link: a hivrrp put there otherwise is not ours to remove.
    if [ "$(readlink "$root$LINK" 2>/dev/null)" = "$VENV/bin/hivrrp" ]; then
        rm -f "$root$LINK"
        say "removed $LINK"
    fi
    if [ -e "$root$MAN8/hivrrp.8" ]; then
        rm -f "$root$MAN8/hivrrp.8"
        say "removed $MAN8/hivrrp.8"
    fi
    if [ -e "$root$VENV/pyvenv.cfg" ]; then
        rm -rf "$root$VENV"
        say "removed $VENV"
    elif [ -e "$root$VENV" ]; then
        say "kept $VENV: not a virtual environment, so not ours"
    fi
    if [ -e "$root$DEFAULTS" ]; then say "kept $DEFAULTS (yours: rm it if you want it gone)"; fi
    exit 0
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
    # The distribution's interpreter, updated with the system: not one a user
    # built under a home directory (a pyenv's), which the service then needs.
    python=python3
    if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; fi
fi
# Before the build: refusing after it would leave a half install.
if [ -e "$root$LINK" ] && [ ! -L "$root$LINK" ]; then
    die "$LINK exists and is not our link: not replacing it (move it away and run again)"
fi
had_venv=0
if [ -x "$root$VENV/bin/hivrrp" ]; then had_venv=1; fi
venv "$python" "$root$VENV"
version=$("$root$VENV/bin/hivrrp" --version)
if [ "$had_venv" = 1 ]; then say "upgraded $VENV: $version"; else say "made $VENV: $version"; fi

mkdir -p "$(dirname "$root$LINK")"
ln -sfn "$VENV/bin/hivrrp" "$root$LINK"
say "linked $LINK -> $VENV/bin/hivrrp"

# A copy, not a link into the venv: man finds it where it looks already
# (/usr/local/share/man), and a re-run copies the new one.
page="$root$VENV/share/man/man8/hivrrp.8"
[ -f "$page" ] || die "the build wrote no man page at $page"
install -D -m 0644 "$page" "$root$MAN8/hivrrp.8"
say "installed $MAN8/hivrrp.8"

mkdir -p "$(dirname "$root$UNIT")"
if [ "$(readlink "$root$UNIT" 2>/dev/null)" = /dev/null ]; then
    # Masked (systemctl mask): the administrator said it must not run here.
    say "kept $UNIT masked (systemctl unmask hivrrp, then run again, to install the unit)"
else
    if [ -e "$root$UNIT" ] && ! cmp -s "$here/conf/hivrrp.service" "$root$UNIT"; then
        cp -pL "$root$UNIT" "$root$UNIT.old"
        say "replacing $UNIT (the previous one is $UNIT.old; change it with systemctl edit hivrrp)"
    fi
    install -m 0644 "$here/conf/hivrrp.service" "$root$UNIT"
    say "installed $UNIT"
fi
if [ -e "$root$DEFAULTS" ]; then
    say "kept $DEFAULTS"
else
    install -D -m 0644 "$here/conf/default/hivrrp" "$root$DEFAULTS"
    say "installed $DEFAULTS"
fi
if [ "$live" = 1 ]; then systemctl daemon-reload; fi

if [ "$enable" = 1 ] && systemctl_ enable --quiet hivrrp.service; then
    say "enabled hivrrp.service (starts at boot)"
fi
if [ "$start" = 1 ] && [ "$live" = 1 ]; then
    # restart: starts it if stopped, and an upgrade takes effect.
    systemctl restart hivrrp.service
    say "started hivrrp.service: systemctl status hivrrp; journalctl -u hivrrp"
elif [ "$live" = 1 ] && systemctl is-active --quiet hivrrp.service; then
    say "hivrrp.service runs the previous version until: systemctl restart hivrrp"
elif [ "$start" = 1 ]; then
    say "--start ignored: no running systemd manages this install"
elif [ -z "$root" ]; then
    say "not started: systemctl enable --now hivrrp (reads /etc/keepalived/keepalived.conf)"
fi
