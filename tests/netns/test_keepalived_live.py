"""Live: the Debian keepalived in a namespace pair, its adverts decoded by our codec."""

import shutil

import pytest

from helpers.captures import assert_matches_scenario
from helpers.keepalived_capture import SCENARIOS, record

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def live_captures(tmp_path_factory, namespaces_allowed):
    for tool in ("keepalived", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: tests/run.sh installs it")
    return record(tmp_path_factory.mktemp("keepalived"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_live_keepalived_adverts(live_captures, scenario):
    assert_matches_scenario(live_captures[scenario.name], scenario)
