"""conf/install.sh, the operators' install, into a scratch root (--root):
the files where the unit and man look for them, `systemd-analyze verify`
and `man` on the installed result, a re-run that upgrades without losing
the operator's /etc/default/hivrrp, and --uninstall.

The Cython extensions are compiled once, into a wheel that both installs
use (--wheel): the one tests/install.sh built for this run's venv when it
is still there, else one built here (building from the clone is the same
`pip install` of the clone that tests/install.sh runs before every test
run). Nothing outside the scratch root is written: `verify` and `man` see
the installed /opt and /usr/local through bind mounts in a mount namespace
of their own.
"""

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "conf" / "install.sh"


def installed_wheel() -> Path | None:
    """The wheel this test run's venv was installed from (tests/install.sh builds one
    in build/test-wheel), if that file is still there, unchanged (its sha256 as pip
    recorded it): the same build, without compiling the extensions a second time."""
    text = importlib.metadata.distribution("hivrrp").read_text("direct_url.json")
    info = json.loads(text or "{}")
    url, expected = info.get("url", ""), info.get("archive_info", {}).get("hashes", {})
    if not url.startswith("file://") or "sha256" not in expected:
        return None
    path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if path.suffix != ".whl" or not path.is_file():
        return None
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected["sha256"]:
        return None
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    built = installed_wheel()
    if built is not None:
        return built
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    [built] = out.glob("hivrrp-*.whl")
    return built


def install(root: Path, *args: str) -> subprocess.CompletedProcess:
    # The interpreter that built this test run's venv: it has venv and the
    # headers, so the installer needs nothing from apt (no system change).
    env = {**os.environ, "PYTHON": os.path.realpath(sys.executable)}
    result = subprocess.run(["bash", str(INSTALL), "--root", str(root), *args], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel):
    root = tmp_path_factory.mktemp("root")
    result = install(root, "--wheel", str(wheel), "--enable")
    return root, result.stdout


def in_installed_system(root: Path, *cmd: str) -> subprocess.CompletedProcess:
    """`cmd` in a private mount namespace where the scratch root's /opt and
    /usr/local are the system's: what the unit and man(1) see after a real install."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private mount namespace")
    script = ('mount --bind "$1/opt" /opt && mount --bind "$1/usr/local" /usr/local '
              '&& shift && exec "$@"')
    # A system's PATH, not this test run's: man(1) would find the page of
    # the test venv (next to its bin/) and prove nothing.
    env = {key: value for key, value in os.environ.items() if key != "MANPATH"}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           "sh", str(root), *cmd], capture_output=True, text=True, timeout=120,
                          env=env)


def test_files_go_where_the_unit_and_man_look(installed):
    root, output = installed
    link = root / "usr/local/sbin/hivrrp"
    assert os.readlink(link) == "/opt/hivrrp/bin/hivrrp"
    version = subprocess.run([root / "opt/hivrrp/bin/hivrrp", "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("hivrrp, version ")
    assert (root / "etc/systemd/system/hivrrp.service").read_text() == \
        (REPO / "conf/hivrrp.service").read_text()
    assert (root / "etc/default/hivrrp").read_text() == (REPO / "conf/default/hivrrp").read_text()
    page = root / "usr/local/share/man/man8/hivrrp.8"
    assert page.read_text() == (root / "opt/hivrrp/share/man/man8/hivrrp.8").read_text()
    # --enable, offline: systemctl --root makes the boot-time link.
    wants = root / "etc/systemd/system/multi-user.target.wants/hivrrp.service"
    assert os.readlink(wants) == "/etc/systemd/system/hivrrp.service"
    # It says what it did, and started nothing.
    for line in ("made /opt/hivrrp", "linked /usr/local/sbin/hivrrp", "enabled hivrrp.service",
                 "installed /etc/default/hivrrp", "installed /usr/local/share/man/man8/hivrrp.8"):
        assert line in output, output
    assert "started hivrrp" not in output


def test_systemd_analyze_verify_passes_on_the_installed_unit(installed):
    """verify checks ExecStart's binary and runs `man hivrrp(8)` for
    Documentation=: both must exist as installed (the unit used to name a
    /usr/local/bin/hivrrp that no install made)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: tests/run.sh installs systemd")
    root, _ = installed
    result = in_installed_system(root, analyze, "verify",
                                 str(root / "etc/systemd/system/hivrrp.service"))
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    found = in_installed_system(root, "man", "-w", "hivrrp")
    assert found.stdout.strip() == "/usr/local/share/man/man8/hivrrp.8", found.stderr
    runs = in_installed_system(root, "/usr/local/sbin/hivrrp", "check", "--help")
    assert runs.returncode == 0 and "keepalived.conf" in runs.stdout, runs.stderr


def test_a_rerun_upgrades_and_keeps_the_operators_settings_then_uninstall(installed, wheel):
    root, _ = installed
    defaults = root / "etc/default/hivrrp"
    defaults.write_text('HIVRRP_OPTS="--metrics 127.0.0.1:9736"\n')
    unit = root / "etc/systemd/system/hivrrp.service"
    unit.write_text(unit.read_text() + "# edited in place\n")
    marker = root / "opt/hivrrp/marker"         # the venv is upgraded, not made again
    marker.write_text("")

    output = install(root, "--wheel", str(wheel)).stdout
    assert "upgraded /opt/hivrrp" in output and "kept /etc/default/hivrrp" in output, output
    assert defaults.read_text() == 'HIVRRP_OPTS="--metrics 127.0.0.1:9736"\n'
    assert unit.read_text() == (REPO / "conf/hivrrp.service").read_text()
    assert (root / "etc/systemd/system/hivrrp.service.old").read_text().endswith("in place\n")
    assert marker.exists()

    output = install(root, "--uninstall").stdout
    for gone in ("opt/hivrrp", "usr/local/sbin/hivrrp", "usr/local/share/man/man8/hivrrp.8",
                 "etc/systemd/system/hivrrp.service", "etc/systemd/system/hivrrp.service.old",
                 "etc/systemd/system/multi-user.target.wants/hivrrp.service"):
        assert not os.path.lexists(root / gone), gone
    assert defaults.exists() and "kept /etc/default/hivrrp" in output


def test_a_file_that_is_not_our_link_is_not_replaced(tmp_path):
    """Checked before any build: a hivrrp of someone else's in /usr/local/sbin stays."""
    theirs = tmp_path / "usr/local/sbin/hivrrp"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("#!/bin/sh\n")
    result = subprocess.run(["bash", str(INSTALL), "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "is not our link" in result.stderr
    assert theirs.read_text() == "#!/bin/sh\n" and not (tmp_path / "opt").exists()


def test_a_directory_that_is_not_a_venv_is_never_removed(tmp_path):
    # --venv-only makes a broken venv again by removing it first; a mistyped
    # path (an existing directory with other things in it) must survive.
    target = tmp_path / "usr"
    (target / "share").mkdir(parents=True)
    (target / "share" / "keep").write_text("mine")
    done = subprocess.run(["bash", str(INSTALL), "--venv-only", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "is not a virtual environment and not empty" in done.stderr
    assert (target / "share" / "keep").read_text() == "mine"


def test_a_clone_at_the_venvs_place_is_never_removed(tmp_path):
    # A clone put at /opt/hivrrp, installing from there: the venv would be made
    # again by removing /opt/hivrrp, the clone with it.
    clone = tmp_path / "opt" / "hivrrp"
    (clone / "conf").mkdir(parents=True)
    shutil.copy(INSTALL, clone / "conf" / "install.sh")
    (clone / "notes").write_text("mine")
    env = {**os.environ, "PYTHON": os.path.realpath(sys.executable)}
    done = subprocess.run(["bash", str(clone / "conf" / "install.sh"), "--root", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and "holds this clone" in done.stderr, done.stderr
    assert (clone / "notes").read_text() == "mine"


def test_a_masked_unit_stays_masked(tmp_path, wheel):
    unit = tmp_path / "etc/systemd/system/hivrrp.service"
    unit.parent.mkdir(parents=True)
    unit.symlink_to("/dev/null")
    done = install(tmp_path, "--wheel", str(wheel))
    assert "kept /etc/systemd/system/hivrrp.service masked" in done.stdout
    assert os.readlink(unit) == "/dev/null"
    assert not (unit.parent / "hivrrp.service.old").exists()


def test_a_clone_inside_the_venv_survives_symlinks_and_uninstall(tmp_path):
    # /opt a symlink (opt -> real/opt), a broken venv there (pyvenv.cfg, no
    # python) holding the clone: neither the rebuild nor --uninstall removes it.
    (tmp_path / "real" / "opt").mkdir(parents=True)
    (tmp_path / "opt").symlink_to("real/opt")
    venv = tmp_path / "opt" / "hivrrp"
    clone = venv / "src" / "clone"
    (clone / "conf").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /nowhere\n")
    shutil.copy(INSTALL, clone / "conf" / "install.sh")
    (clone / "notes").write_text("mine")
    env = {**os.environ, "PYTHON": os.path.realpath(sys.executable)}
    for args in (["--venv-only", str(venv)], ["--uninstall", "--root", str(tmp_path)]):
        done = subprocess.run(["bash", "conf/install.sh", *args], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and "holds this clone" in done.stderr, (args, done.stderr)
        assert (clone / "notes").read_text() == "mine"


def test_uninstall_keeps_a_mask(tmp_path):
    unit = tmp_path / "etc/systemd/system/hivrrp.service"
    unit.parent.mkdir(parents=True)
    unit.symlink_to("/dev/null")
    done = subprocess.run(["bash", str(INSTALL), "--uninstall", "--root", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "kept /etc/systemd/system/hivrrp.service masked" in done.stdout
    assert os.readlink(unit) == "/dev/null"
