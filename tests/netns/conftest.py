import pytest

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
