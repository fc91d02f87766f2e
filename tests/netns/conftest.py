import shutil

import pytest

from helpers.keepalived_capture import FORMATS, record_all
from helpers.netns import netns_available
from helpers.topology import Lan


@pytest.fixture(scope="session")
def namespaces_allowed():
    """Skip (with why) where namespace tests cannot run; CI runs them as root."""
    reason = netns_available()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lan(tmp_path, namespaces_allowed):
    """A fresh switched LAN in namespaces, removed after the test."""
    with Lan(tmp_path) as lan:
        yield lan


@pytest.fixture(scope="session")
def keepalived_recording(tmp_path_factory, namespaces_allowed):
    """Real keepalived adverts of every scenario (helpers/keepalived_capture.py), captured
    per scenario and in each of tcpdump's FORMATS: one keepalived run for all the live
    capture tests (one run took as long as each module's own)."""
    for tool in ("keepalived", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: tests/run.sh installs it")
    return record_all(tmp_path_factory.mktemp("keepalived"), FORMATS)
