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

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

import pytest
from conftest import FIGURES, lab_marks
from lab.failover import fail_over
from lab.pair import API_PORT, FIGURES_NOTES, PairWorld
from lab.plan import NO_NAT, lab_topology
from lab.world import BOB_VPN_IP, BRANCH, HQ, SeedWorld

from provisioner import planner
from provisioner.doctor import diagnose
from provisioner.model import (
    AppAccess,
    AppGroup,
    ConnectorState,
    IngressRule,
    Member,
    Observed,
    ObservedConnector,
    ObservedRoute,
    ObservedSubnet,
    Ports,
    RouteTable,
    WayOut,
)

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


def _table(pair: PairWorld) -> RouteTable:
    """HQ's route table as the lab's cloud (moto on HQ's router) holds it, read as the doctor's
    observe would: through the EC2 API."""
    seed = json.loads((pair.dir / "cloud" / "seed.json").read_text())
    code = (
        "import boto3, json\n"
        f"ec2 = boto3.client('ec2', region_name='us-east-1', endpoint_url='http://{HQ.router_ip}:"
        f"{API_PORT}', aws_access_key_id='testing', aws_secret_access_key='testing')\n"
        f"(t,) = ec2.describe_route_tables(RouteTableIds=['{seed['table']}'])['RouteTables']\n"
        "print(json.dumps([[r['DestinationCidrBlock'], r.get('NetworkInterfaceId') or "
        "r.get('GatewayId', '')] for r in t['Routes']]))\n"
    )
    out = pair.world.lab.run(HQ.router, sys.executable, "-c", code).stdout
    routes = tuple(ObservedRoute(IPv4Network(d), t) for d, t in json.loads(out))
    return RouteTable(seed["table"], routes)


def _doctor_says(pair: PairWorld, dead: str | None) -> tuple[str, str]:
    """The doctor's verdict for Bob -> the HR app over HQ's pair as the cloud now holds it (the
    member `dead` stopped), and the connector it traced through."""
    http = Ports("tcp", 80, 80)
    connectors = tuple(
        ObservedConnector(
            instance=f"i-{m.name}", interface=m.interface, private_ip=m.site.connector_ip,
            state=ConnectorState.STOPPED if m.name == dead else ConnectorState.RUNNING,
            forwarding=True, size="t3.small", image="ami-lab", subnet="subnet-1",
            fingerprint="", public_ip="198.51.100.2", member=i,
        )
        for i, m in enumerate(pair.members.values())
    )  # fmt: skip
    table = _table(pair)
    obs = Observed(
        network="hq", cidrs=(IPv4Network(HQ.subnet),), route_tables=(table,),
        subnets=(ObservedSubnet("subnet-1", WayOut.INTERNET_GATEWAY, "igw-lab", table.id),
                 ObservedSubnet("subnet-app", WayOut.INTERNET_GATEWAY, "igw-lab", table.id)),
        connector=connectors[0], connectors=connectors,
        app_groups=(AppGroup("sg-app", (IngressRule(IPv4Network("100.96.0.0/11"), http),)),),
        members={"sg-app": (Member(HQ.server_ip, "subnet-app"),)},
    )  # fmt: skip
    topology = lab_topology(hq=NO_NAT)
    hq, branch = topology.networks
    assert hq.connector is not None
    hq = replace(hq, app_access=(AppAccess("sg-app", (http,)),),
                 connector=replace(hq.connector, standby_subnet="subnet-2"))  # fmt: skip
    topology = replace(topology, networks=(hq, branch))
    obs = replace(obs, connector=planner.active_connector(hq, obs))
    branch_obs = replace(obs, network="branch", cidrs=(IPv4Network(BRANCH.subnet),))
    (report,) = diagnose(topology, {"hq": obs, "branch": branch_obs},
                         planner.local_subnets(topology, {"hq": obs, "branch": branch_obs}),
                         only="vpn->hq:sg-app", vpn_client=IPv4Address(BOB_VPN_IP))  # fmt: skip
    hop = report.dropped_at
    via = obs.connector.instance if obs.connector else "-"
    return ("OK" if hop is None else f"{report.verdict} at {hop.what}"), via


def test_the_doctor_follows_the_pair_through_a_takeover(pair: PairWorld):
    """The doctor traces a pair's flow through the connector the routes lead to: the active
    one, then after the active one dies the standby that took over; Bob's request agrees."""
    if pair.cloud != "aws":
        pytest.skip("the doctor's reading of a pair is judged on AWS's lab cloud (moto)")
    world = pair.world
    rows = []
    active = pair.active()
    said, via = _doctor_says(pair, None)
    got = world.http(world.bob, HQ.server_ip, timeout=2) is not None
    rows.append((f"the active connector ({active.name})", said, via, got))
    assert via == f"i-{active.name}"
    pair.kill_vm(active)
    try:
        deadline = time.monotonic() + 30
        while pair.active() is active and time.monotonic() < deadline:
            time.sleep(0.2)
        standby = pair.active()
        assert standby is not active, "no takeover"
        said, via = _doctor_says(pair, active.name)
        got = world.http(world.bob, HQ.server_ip, timeout=2) is not None
        rows.append((f"after the takeover ({standby.name}; {active.name} dead)", said, via, got))
        assert via == f"i-{standby.name}"
    finally:
        pair.revive_vm(active)
    FIGURES["lab doctor agreement, a pair (aws)"] = "; ".join(
        f"{name}: {said} via {via} / {'passes' if got else 'dropped'}"
        for name, said, via, got in rows
    )
    assert all((said == "OK") == got for _, said, _, got in rows), rows


def test_a_replaced_connector_made_before_the_old_one_goes_loses_nothing(pair: PairWorld):
    """HQ's one connector replaced while Bob's flow runs (a packet every 20 ms), on the lab's
    AWS cloud: made before break (apply's order), then break before make (the old order): the
    first loses nothing beyond the route switch itself; the figures are the bench's
    (`python3 bench/failover.py --replace`)."""
    if pair.cloud != "aws":
        pytest.skip("a single connector's replacement is measured on AWS's lab cloud (moto)")
    from lab.replace import PAIR_MODE, replace

    seen = replace(pair, runs=1)
    FIGURES.update(seen.figures())
    (mbb_lost,), (mbb_gap,) = seen.lost["make before break"], seen.gap["make before break"]
    (one_lost,), (one_gap,) = (seen.lost["make before break, one profile"],
                               seen.gap["make before break, one profile"])  # fmt: skip
    assert one_gap < 5.0, (one_lost, one_gap)  # one profile for both: under 5 s
    (pair_lost,), (pair_gap,) = seen.lost[PAIR_MODE], seen.gap[PAIR_MODE]
    # a pair: the standby replaced, the routes handed to it, then the other: only what was on
    # its way through the old active's tunnel when it went (the goal, 0, is not met: a few)
    # (loosely: on 2 busy cores once 14 packets, 0.31 s; the bench's 10 runs: 5-7, 0.16 s)
    assert pair_lost <= 50 and pair_gap < 1.0, (pair_lost, pair_gap)
    (bbm_lost,), (bbm_gap,) = seen.lost["break before make"], seen.gap["break before make"]
    assert mbb_gap < 1.0 and mbb_lost <= 25, (mbb_lost, mbb_gap)  # the route switch, no more
    assert bbm_gap > mbb_gap and bbm_lost > mbb_lost, (bbm_lost, bbm_gap, mbb_lost, mbb_gap)
