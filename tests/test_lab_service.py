"""Both halves together on a real kernel: the lab's VPN service (the OpenVPN server in its
namespace) is configured from what the fake CloudConnexa holds after apply, nothing of it
written by hand: each connector's VPN address and the subnets routed to it (`iroute`), the
routes pushed to Bob and to the other connectors, the egress network's default route. The
seed's three flows pass; a subnet left out on the service side breaks exactly the flows that
need it, and `status`'s check of the service names it."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Network

import pytest
from conftest import lab_marks
from lab.plan import NAT_EXCEPT_LOCAL, NO_NAT, lab_plan, lab_topology, planned_routes
from lab.plan import planned_setup_script as script
from lab.world import (
    BOB_VPN_IP,
    BRANCH,
    HQ,
    VPN_SERVER,
    WEB,
    SeedWorld,
    ServiceConfig,
    add_router_routes,
    connector_reset,
    run_setup_script,
)

from provisioner import planner
from provisioner.cloudconnexa.client import Api, CloudConnexaSide
from provisioner.cloudconnexa.fake import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, CloudConnexa
from provisioner.cloudconnexa.planner import plan_service, service_status
from provisioner.model import CloudConnexa as Service
from provisioner.model import service_connector_name

pytestmark = lab_marks("lab-service")


def config_from_the_service(api: Api) -> ServiceConfig:
    """The OpenVPN server's configuration from the service's state, read through its API: our
    connector of each network (its certificate name is the network's) with its VPN address,
    the network's routes, and the egress flag."""
    addresses, routes, egress = {}, {}, None
    for network in api.pages("/networks"):
        name = network["name"]
        ours = [c for c in network["connectors"] if c["name"] == service_connector_name(name)]
        if not ours:
            continue
        addresses[name] = ours[0]["ipV4Address"]
        routes[name] = [r["subnet"] for r in network["routes"]]
        if network["egress"]:
            egress = name
    return ServiceConfig(addresses=addresses, routes=routes, egress=egress)


@pytest.fixture
def service_lab(seed_lab: SeedWorld) -> Iterator[SeedWorld]:
    """The lab, given back as it was (the seed's hand-written service) after the test."""
    try:
        yield seed_lab
    finally:
        for site in (HQ, BRANCH):
            connector_reset(seed_lab, site)
        seed_lab.restart_vpn_service()


def test_the_service_half_from_the_fake_routes_the_seeds_flows(service_lab: SeedWorld):
    lab, bob = service_lab, service_lab.bob
    with CloudConnexa().serve() as server:
        api = Api(server.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
        topology = lab_topology(hq=NAT_EXCEPT_LOCAL, branch=NO_NAT,
                                service=Service("lab", "eu-central-1"))  # fmt: skip
        side = CloudConnexaSide(topology, api)
        subnets = planner.local_subnets(topology, {})
        plan, _ = plan_service(topology, side.observe(), subnets)
        side.apply(plan.changes)  # apply's service half, as the engine runs it
        config = config_from_the_service(api)
        assert config.routes == {"hq": [HQ.subnet], "branch": [BRANCH.subnet]}
        assert config.egress == "hq"
        assert all(IPv4Network("100.96.0.0/11").supernet_of(IPv4Network(a + "/32"))
                   for a in config.addresses.values())  # fmt: skip
        lab.restart_vpn_service(config)
        assert HQ.connector_vpn_ip == config.addresses["hq"]  # the service's, not the seed's

        cloud = lab_plan(hq=NAT_EXCEPT_LOCAL, branch=NO_NAT)  # the cloud half, as the lab has it
        for site in (HQ, BRANCH):
            connector_reset(lab, site)
            run_setup_script(lab, site, script(site, cloud))
            add_router_routes(lab, site, planned_routes(site, cloud))
        # remote access (hops 1-8): Bob reaches both apps with his own address
        assert lab.http(bob, HQ.server_ip) == BOB_VPN_IP
        assert lab.http(bob, BRANCH.server_ip) == BOB_VPN_IP
        # site-to-site (hops 1-7), both ways, real addresses
        assert lab.http(HQ.server, BRANCH.server_ip) == HQ.server_ip
        assert lab.http(BRANCH.server, HQ.server_ip) == BRANCH.server_ip
        # egress (hops 1-5): Bob's internet traffic leaves through HQ (split tunnel off)
        lab.lab.run(bob, "ip", "route", "replace", f"{VPN_SERVER}/32", "via", "198.51.100.13")
        for half in ("0.0.0.0/1", "128.0.0.0/1"):
            lab.lab.run(bob, "ip", "route", "replace", half, "via", "100.96.0.1", "dev", "tun0")
        try:
            assert lab.http(bob, WEB) == "203.0.113.1"
        finally:
            for half in ("0.0.0.0/1", "128.0.0.0/1"):
                lab.lab.run(bob, "ip", "route", "del", half, check=False)

        # the service loses Branch's subnet: exactly the flows to Branch break
        branch = next(n for n in api.pages("/networks") if n["name"] == "branch")
        api.call("DELETE", f"/networks/routes/{branch['routes'][0]['id']}")
        observed = side.observe()
        status = service_status(topology.network("branch"), topology, observed, subnets)
        assert status.routes == ((BRANCH.subnet, "MISSING"),) and not status.healthy
        assert service_status(topology.network("hq"), topology, observed, subnets).routes == (
            (HQ.subnet, "ok"),
        )
        lab.restart_vpn_service(config_from_the_service(api))
        for site in (HQ, BRANCH):
            connector_reset(lab, site)
            run_setup_script(lab, site, script(site, cloud))
            add_router_routes(lab, site, planned_routes(site, cloud))
        assert lab.http(bob, HQ.server_ip) == BOB_VPN_IP  # untouched
        assert lab.http(bob, BRANCH.server_ip) is None  # remote access to Branch: hop 1
        assert lab.http(HQ.server, BRANCH.server_ip) is None  # site-to-site: hop 1
        assert lab.http(BRANCH.server, HQ.server_ip) is None  # (the answers too)

        # apply puts it back, and the flows with it
        plan, _ = plan_service(topology, side.observe(), subnets)
        assert [(c.action.value, str(c.destination)) for c in plan.changes] == [
            ("create", BRANCH.subnet)
        ]
        side.apply(plan.changes)
        lab.restart_vpn_service(config_from_the_service(api))
        for site in (HQ, BRANCH):
            connector_reset(lab, site)
            run_setup_script(lab, site, script(site, cloud))
            add_router_routes(lab, site, planned_routes(site, cloud))
        assert lab.http(bob, BRANCH.server_ip) == BOB_VPN_IP
        assert lab.http(HQ.server, BRANCH.server_ip) == HQ.server_ip
