"""A connector pair's failover on a real kernel (tests/lab/pair.py, tests/lab/failover.py): the
active connector is killed (the VM gone) or cut off from the VPN service (the VM up, its tunnel
down), and the standby's own watchdog moves HQ's routes in the lab's cloud, which HQ's router
follows: on AWS it moves the routes in moto's table; on OCI it moves the floating private IP the
rules of the fake OCI's table name; on Azure and GCP it answers the load balancer's probe
(health check), which the router follows.

Once per failure and cloud, asserted: the standby takes over, nothing is lost after the switch
(answers coming back through the other connector included), exactly one takeover per failure,
and the failed connector stays standby when it returns (no flapping). The watchdog runs with its
defaults; the lab's balancer probes every second here (the clouds' 5 s is the bench's: the
figures, ten runs of each, are `python3 bench/failover.py`'s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import lab_marks
from lab.failover import fail_over
from lab.pair import FIGURES_NOTES, PairWorld
from lab.world import SeedWorld

pytestmark = lab_marks(None)  # a group per cloud, below
INTERVAL, FAILS = 1.0, 3  # the watchdog's defaults
PROBE = 1.0  # the lab balancer's probe: shorter than the clouds' documented 5 s


# each cloud's pair on a worker of its own where there are several: each builds its own lab
@pytest.fixture(
    scope="module",
    params=[
        pytest.param(cloud, marks=pytest.mark.xdist_group(f"lab-{cloud}"))
        for cloud in ("aws", "oci", "azure", "gcp")
    ],
)
def pair(
    seed_lab: SeedWorld, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[PairWorld]:
    world = PairWorld(seed_lab, tmp_path_factory.mktemp("pair"), interval=INTERVAL, fails=FAILS,
                      cloud=request.param, probe=PROBE)  # fmt: skip
    try:
        yield world
    finally:
        world.close()


def test_the_standby_takes_over_when_the_active_dies_or_loses_its_tunnel(pair: PairWorld):
    seen = fail_over(pair, runs=1, probe=PROBE)
    for line in seen.runs_text() + [f"lab note: {note}" for note in FIGURES_NOTES]:
        print(line)
    assert seen.runs == 2
    assert seen.taken_over == seen.runs  # the standby answered each time
    assert seen.lost == 0  # nothing lost after the switch
    assert seen.takeovers == seen.runs  # one move per failure
    assert seen.stayed == seen.runs  # the returning connector stays standby: no flapping
    # the second run's questions went in through the standby (the service prefers the first
    # connector again once it is back), the answers came back via the active one
    assert seen.asymmetric > 0
