import pytest

from helpers.netns import netns_available
from helpers.topology import Lan


@pytest.fixture
def lan(tmp_path):
    """A fresh switched LAN in namespaces, removed after the test."""
    reason = netns_available()
    if reason:
        pytest.skip(reason)
    with Lan(tmp_path) as lan:
        yield lan
