"""`hivrrp run --log-level debug` shows hivrrp's debug lines, not pyroute2's
netlink dumps or asyncio's; --debug-libraries adds those."""

import logging
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hivrrp import cli
from hivrrp.ops import logsetup

LIBRARIES = ("pyroute2", "pyroute2.netlink.core", "asyncio")


@pytest.fixture(autouse=True)
def restore_levels():
    names = ("", "hivrrp", *LIBRARIES)
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def levels() -> dict:
    return {name: logging.getLogger(name).getEffectiveLevel()
            for name in ("hivrrp", "hivrrp.kernel.netlink", *LIBRARIES)}


def test_debug_is_hivrrps_own_unless_libraries_are_asked_for():
    logsetup.configure("debug")
    assert levels() == {"hivrrp": logging.DEBUG, "hivrrp.kernel.netlink": logging.DEBUG,
                        "pyroute2": logging.INFO, "pyroute2.netlink.core": logging.INFO,
                        "asyncio": logging.INFO}
    logsetup.configure("debug", debug_libraries=True)
    assert set(levels().values()) == {logging.DEBUG}


def test_other_levels_apply_to_everyone():
    logsetup.configure("warning")
    assert set(levels().values()) == {logging.WARNING}
    logsetup.configure("info")
    assert set(levels().values()) == {logging.INFO}
    with pytest.raises(ValueError):
        logsetup.configure("chatty")


# The CLI's set-up in a fresh interpreter (pytest's own handlers would hide
# what logging.basicConfig does), then one debug line from each side.
PROBE = """
import logging, sys
from hivrrp import cli
try:
    cli.main(["run", "-f", sys.argv[1], *sys.argv[2:]], standalone_mode=False)
except SystemExit:
    pass                      # no such configuration: run stops there
logging.getLogger("pyroute2.netlink.core").debug("LIBRARY: a netlink message")
logging.getLogger("asyncio").debug("LIBRARY: asyncio internals")
logging.getLogger("hivrrp.kernel.netlink").debug("OURS: a hivrrp debug line")
"""


def run_probe(tmp_path, *options: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "nope.conf"), *options],
                         capture_output=True, text=True, timeout=60)
    return out.stderr


def test_hivrrp_run_debug_lines_are_its_own(tmp_path):
    err = run_probe(tmp_path, "--log-level", "debug")
    assert "OURS: a hivrrp debug line" in err and "LIBRARY" not in err, err
    err = run_probe(tmp_path, "--log-level", "debug", "--debug-libraries")
    assert "OURS" in err and err.count("LIBRARY") == 2, err
    err = run_probe(tmp_path)                                    # info
    assert "OURS" not in err and "LIBRARY" not in err, err
    assert "configuration error" in err          # and the run's own lines still come out


def test_the_option_is_in_the_help():
    help_text = CliRunner().invoke(cli.main, ["run", "--help"]).output
    assert "--debug-libraries" in help_text and "pyroute2" in help_text
