"""Live: the Debian keepalived in a namespace pair, its adverts decoded by our codec."""

import pytest

from helpers.captures import assert_matches_scenario
from helpers.keepalived_capture import SCENARIOS

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_live_keepalived_adverts(keepalived_recording, scenario):
    assert_matches_scenario(keepalived_recording.scenarios[scenario.name], scenario)
