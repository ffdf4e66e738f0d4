"""The seed's traffic flows on a real kernel with a real OpenVPN, in network namespaces: the
connector hosts run the rendered setup script, the routers get exactly the planner's route
entries. Each assertion names the seed step it checks. TCP (HTTP to a server that answers
with the client address it saw) and ping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from ipaddress import IPv4Network as N
from pathlib import Path

import pytest
from conftest import FIGURES, desired_connector
from lab.netns import lab_available, remove_stale
from lab.world import (
    BOB_VPN_IP,
    BRANCH,
    HQ,
    VPN_SERVER,
    WEB,
    SeedWorld,
    Site,
    add_router_routes,
    connector_reset,
    run_setup_script,
    start_vpn_client_only,
)

from provisioner import planner
from provisioner.bootstrap import render_setup_script
from provisioner.model import (
    AwsLocation,
    Connector,
    Network,
    Observed,
    RouteTable,
    Topology,
)

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.skipif(lab_available() is not None, reason=str(lab_available())),
]


def _network(site: Site, vpc: str, egress: bool = False) -> Network:
    return Network(
        name=site.name,
        cloud="aws",
        subnets=(N(site.subnet),),
        location=AwsLocation("us-east-1", vpc),
        connector=Connector(
            subnet="subnet-1",
            size="t3.small",
            nat=egress,
            egress=egress,
            profile=Path("unused"),
            profile_fingerprint="-",
        ),
    )


TOPOLOGY = Topology(
    networks=(_network(HQ, "vpc-11111111", egress=True), _network(BRANCH, "vpc-22222222"))
)


def planned_routes(site: Site) -> list[N]:
    """Exactly the route entries `plan_apply` writes into an empty route table of this network."""
    observed = {
        n.name: Observed(
            network=n.name,
            cidrs=(N(n.subnets[0]),) if n.subnets else (),
            route_tables=(RouteTable("rtb-lab", ()),),
            subnets=("subnet-1",),
        )
        for n in TOPOLOGY.networks
    }
    plan = planner.plan_apply(TOPOLOGY, observed)
    return sorted(
        c.destination
        for c in plan.changes
        if c.network == site.name and c.kind == "route" and c.destination is not None
    )


def setup_script(site: Site, nat: bool, preserve_source: bool = True) -> str:
    return render_setup_script(
        desired_connector(
            network=site.name,
            nat=nat,
            nat_preserve_source=preserve_source,
            local_subnets=(N(site.subnet),),
        )
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[SeedWorld]:
    remove_stale()
    started = time.monotonic()
    w = SeedWorld(tmp_path_factory.mktemp("lab"))
    try:
        w.connect_bob()
        yield w
    finally:
        w.close()
        FIGURES["lab wall time (build, 3 flows, teardown)"] = f"{time.monotonic() - started:.1f}s"


def test_planner_routes_are_the_vpn_range_and_the_peer():
    assert planned_routes(HQ) == [N("100.96.0.0/11"), N("192.168.0.0/22")]
    assert planned_routes(BRANCH) == [N("10.0.0.0/18"), N("100.96.0.0/11")]


def test_remote_access(world: SeedWorld):
    hr = HQ.server_ip
    connector_reset(world, HQ)
    start_vpn_client_only(world, HQ)
    assert world.ping(world.bob, HQ.connector_vpn_ip)  # the tunnel itself works
    # step 11: the connector drops packets not addressed to it
    assert world.http(world.bob, hr) is None
    assert not world.ping(world.bob, hr)

    connector_reset(world, HQ)
    run_setup_script(world, HQ, setup_script(HQ, nat=False))
    # step 15: forwarding alone: the app answers via the router, which has no route back
    assert world.http(world.bob, hr) is None
    assert not world.ping(world.bob, hr)

    connector_reset(world, HQ)
    run_setup_script(world, HQ, setup_script(HQ, nat=True, preserve_source=False))
    # steps 18-20: forwarding + NAT works; the app sees the connector's address
    assert world.http(world.bob, hr) == HQ.connector_ip
    # NAT alone: the app cannot reach Bob unsolicited (Option 1 vs Option 2)
    assert not world.ping(HQ.server, BOB_VPN_IP)

    connector_reset(world, HQ)
    run_setup_script(world, HQ, setup_script(HQ, nat=False))
    add_router_routes(world, HQ, planned_routes(HQ))
    # steps 16-17: forwarding + the planner's static route works, with Bob's real address
    assert world.http(world.bob, hr) == BOB_VPN_IP
    assert world.ping(world.bob, hr)
    # and the app can reach Bob unsolicited
    assert world.ping(HQ.server, BOB_VPN_IP)

    connector_reset(world, HQ)
    run_setup_script(world, HQ, setup_script(HQ, nat=True, preserve_source=True))
    add_router_routes(world, HQ, planned_routes(HQ))
    # NAT with the `! -d` exception: local hosts still see the real VPN address
    assert world.http(world.bob, hr) == BOB_VPN_IP


def test_egress(world: SeedWorld):
    bob = world.bob
    # Split Tunnel OFF (egress step 4): Bob's default route is the VPN, as redirect-gateway def1
    # sets it: the server itself stays reachable outside the tunnel
    # without the VPN, Bob cannot reach the internet server: it is only behind HQ's router
    assert world.http(bob, WEB) is None
    world.lab.run(bob, "ip", "route", "replace", f"{VPN_SERVER}/32", "via", "198.51.100.13")
    for half in ("0.0.0.0/1", "128.0.0.0/1"):
        world.lab.run(bob, "ip", "route", "replace", half, "via", "100.96.0.1", "dev", "tun0")
    try:
        connector_reset(world, HQ)
        run_setup_script(world, HQ, setup_script(HQ, nat=False))
        # step 12: without NAT on the connector and without the static route, the reply is lost
        assert world.http(bob, WEB) is None

        connector_reset(world, HQ)
        run_setup_script(world, HQ, setup_script(HQ, nat=True))
        # steps 15-21: with NAT the internet server answers; it sees HQ's router address
        assert world.http(bob, WEB) == "203.0.113.1"
        assert world.ping(bob, WEB)
    finally:
        for half in ("0.0.0.0/1", "128.0.0.0/1"):
            world.lab.run(bob, "ip", "route", "del", half, check=False)


def test_site_to_site(world: SeedWorld):
    for site in (HQ, BRANCH):
        connector_reset(world, site)
        run_setup_script(world, site, setup_script(site, nat=False))
        add_router_routes(world, site, planned_routes(site))
    finance, hr = BRANCH.server_ip, HQ.server_ip
    # steps 17-28: an HQ host and the Finance server reach each other, real addresses both ways
    assert world.http(HQ.server, finance) == hr
    assert world.http(BRANCH.server, hr) == finance
    assert world.ping(HQ.server, finance) and world.ping(BRANCH.server, hr)

    # step 30: without the branch router's route for HQ, branch -> HQ fails
    world.lab.run(BRANCH.router, "ip", "route", "del", HQ.subnet)
    assert world.http(BRANCH.server, hr) is None
