"""The leftover check of the lab and bench tests: it looks at the run's own
namespaces, so another namespace appearing (or going) on the host meanwhile
neither fails it nor hides a leftover of the run's."""

import subprocess

import pytest

from helpers.netns import Lab, announced_prefix, namespaces

pytestmark = pytest.mark.netns


def every_namespace() -> set[str]:
    """What test_lab and test_bench_e2e compared before: the whole host."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         timeout=30).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@pytest.mark.usefixtures("namespaces_allowed")
def test_only_the_runs_own_namespaces_count():
    run, other = Lab(), Lab()        # the run under test; someone else on the host
    try:
        host_before = every_namespace()
        run.netns("r1")
        run.netns("r2")
        other.netns("x")             # created while the run is going on
        assert namespaces(run.prefix) == {f"{run.prefix}-r1", f"{run.prefix}-r2"}
        run.close()                  # the run cleans up
        assert namespaces(run.prefix) == set()
        # The whole-host comparison fails here although the run left nothing.
        assert every_namespace() != host_before
        # A leftover of the run's own is still seen, whatever else is there.
        leftover = run.netns("left")
        assert namespaces(run.prefix) == {leftover}
    finally:
        run.close()
        other.close()
    assert namespaces(run.prefix) == set() and namespaces(other.prefix) == set()


def test_the_prefix_is_read_from_what_the_run_prints():
    assert announced_prefix("hivrrp lab: 260 VRRP instances on 2 segments (250 VRIDs each)\n"
                            "  namespaces hvl1a2b-*, logs in /tmp/x\n") == "hvl1a2b"
    assert announced_prefix("[12:00:00] N=20: building the topology (1 segment) in "
                            "namespaces hvl0f0f-*\n") == "hvl0f0f"
    with pytest.raises(AssertionError, match="did not say"):
        announced_prefix("nothing here")
