"""A connector pair's failure matrix on a real kernel (tests/lab/pair.py, tests/lab/failover.py),
against a VPN service that spreads the network's flows over both members as CloudConnexa
documents, and a cloud whose filters on each member's interface are stateful: each member in
turn (the one the routes or front lead to, and the other) is killed, cut off from the service,
left unable to forward with its tunnel up, and replaced by a planned change, while 32 UDP flows
and 4 TCP connections from two VPN clients run. On AWS the standby's watchdog moves HQ's routes
in moto's table; on OCI it moves the floating private IP the rules name; on Azure and GCP it
answers the load balancer's probe, which the router follows.

Once per failure and cloud, asserted: both members carry flows; every flow is answered again;
nothing is lost once the cloud's half (the routes on a living member) and the service's half
(the service no longer sending to the failed member) are whole; no TCP connection is reset;
the survivor keeps the routes when the failed member returns (no flapping); a member that
cannot forward leaves the service at once; a planned change loses nothing. The watchdog runs
with its defaults; the lab's balancer probes every second and the service drops a silent
connector after 3 s here (the bench's figures, ten runs of each at the clouds' 5 s, are
`python3 bench/failover.py`'s)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
from conftest import FIGURES, lab_marks
from lab.failover import MODES, ROLES, all_answered_after, matrix, steady
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
INTERVAL, FAILS = 0.5, 3  # the watchdog's defaults
PROBE = 1.0  # the lab balancer's probe: shorter than the clouds' documented 5 s
DETECTION = 3.0  # the lab service's: a silent connector dropped after 3 s


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
                      cloud=request.param, probe=PROBE, detection=DETECTION, mode=NO_NAT,
                      flow_interval=float(os.environ.get("LAB_FLOW_INTERVAL", "0.2")))  # fmt: skip
    try:
        yield world
    finally:
        world.close()


def test_each_member_fails_every_way_and_the_pair_loses_nothing_once_both_halves_are_whole(
    pair: PairWorld,
):
    seen = matrix(pair, runs=1)
    for row in seen.rows():
        print(" | ".join(row.values()))
        FIGURES[f"lab pair ({pair.cloud}), {row['failure']}, {row['member']}"] = (
            f"cloud half {row['cloud half']}; service half {row['service half']}; "
            f"lost after both whole {row['lost after both whole']}; in all {row['lost in all']}"
        )
    for note in FIGURES_NOTES:
        print(f"lab note: {note}")
    assert len(seen.runs) == len(MODES) * len(ROLES)
    for run in seen.runs:
        what = f"{run.mode}, {run.role}: {run}"
        assert all(run.carried), what  # the service spreads the flows over both members
        assert run.recovered is not None, what
        assert run.lost_after == 0, what
        # a member dialling in again may be sent a packet before its tunnel device is open
        assert run.lost_returning <= 3, what
        assert run.resets == 0, what  # the TCP connections survive
        assert run.stayed, what  # the survivor keeps the routes: no flapping
        assert run.service_half is not None, what
        if run.role == "other member":
            assert run.cloud_half == 0.0, what  # the routes never led to it
        else:  # the watchdog's misses (or none), the router or the balancer following
            assert run.cloud_half is not None and run.cloud_half <= FAILS * INTERVAL + PROBE + 2
        if run.mode in ("VM killed", "tunnel cut"):  # silent: the service's detection time
            assert DETECTION - 1.5 <= run.service_half <= DETECTION + 3, what
        elif run.mode == "network side broken":  # it says it leaves at its next step
            assert run.service_half <= INTERVAL + 1.0, what
        if run.mode == "replaced (planned)":
            assert run.lost_failing == 0, what  # drained first: nothing lost as it goes


def test_a_reply_through_the_other_member_passes_by_the_connector_group_rule(pair: PairWorld):
    """The cloud's filter on the route target's interface admits the answers to flows that came
    in through the other member because the plan's connector-ingress rule (HQ's subnet) admits
    them, not by luck: without it, exactly those flows go unanswered."""
    if pair.cloud != "aws":
        pytest.skip("the lab cloud's filter is the same on every cloud: judged once, on AWS")
    steady(pair)
    target = pair.active()
    other = next(m for m in pair.members.values() if m is not target)

    def silent_flows() -> set[str]:
        moment = time.time()
        time.sleep(1.5)
        answered = {f for f, _, sent, _ in pair.answers(moment) if moment + 0.2 < sent}
        every = {f for f, *_ in pair.answers(moment - 5)}
        return every - answered

    assert silent_flows() == set()
    pair.cloud_filter(target, [])
    pair.forget_connections()  # nothing admitted by what the target saw before
    try:
        silent = silent_flows()
        through_other = _flows_through(pair, other)
    finally:
        pair.cloud_filter(target, pair.ingress)
    assert silent and silent == through_other, (silent, through_other)
    assert len(silent) < 2 * (pair.udp_flows + pair.tcp_flows)  # the target's own still answered
    steady(pair)
    assert all_answered_after(pair, time.time() - 1) is not None


def _flows_through(pair: PairWorld, member: Any) -> set[str]:
    """The flows whose questions `member` forwards now (its tracked connections to the app's
    ports), by the clients' names for them."""
    found = set()
    for protocol, port in (("udp", "7007"), ("tcp", "7008")):
        listed = pair.world.lab.run(member.site.connector, "conntrack", "-L", "-p", protocol,
                                    "--dport", port, check=False).stdout  # fmt: skip
        for line in listed.splitlines():
            words = dict(w.split("=", 1) for w in reversed(line.split()) if "=" in w)  # first wins
            found.add(pair.flow_name(words.get("src", ""), int(words.get("sport", "0"))))
    return found - {""}


def _router_follows_table(pair: PairWorld) -> Any:
    """The member HQ's router sends to, once it is the one the table names (the router follows
    the table a moment later, as a cloud's does)."""
    deadline = time.monotonic() + 30
    while True:
        active = pair.active()
        vpn = next(r for r in _table(pair).routes if IPv4Address(BOB_VPN_IP) in r.destination)
        if vpn.target == active.interface or time.monotonic() > deadline:
            return active
        time.sleep(0.2)


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
    steady(pair)
    active = _router_follows_table(pair)  # (a matrix before may have just moved the routes)
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
