"""The version, as the start-up line and `--version` give it."""

import subprocess
import sys
from importlib.metadata import version


def test_the_version_is_the_installed_one_without_importlib_metadata():
    # importlib.metadata costs the daemon 2.4 MB (email, zipfile, csv) for
    # the one line that says its version at start.
    code = ("import sys, hivrrp\nprint(hivrrp.__version__)\n"
            "print('importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/").stdout.split()
    assert out == [version("hivrrp"), "False"]
