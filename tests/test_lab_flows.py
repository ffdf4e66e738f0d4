"""The seed's traffic flows on a real kernel with a real OpenVPN, in network namespaces: the
connector hosts run the rendered setup script, the routers get exactly the planner's route
entries. Each assertion names the seed step it checks. TCP (HTTP to a server that answers
with the client address it saw) and ping."""

from __future__ import annotations

import sys
from ipaddress import IPv4Network as N

from conftest import lab_marks
from lab.plan import (
    NAT_EVERYTHING,
    NAT_EXCEPT_LOCAL,
    NO_NAT,
    lab_plan,
    planned_routes,
    planned_setup_script,
    ready_script,
)
from lab.world import (
    BOB_VPN_IP,
    BRANCH,
    HQ,
    VPN_SERVER,
    WEB,
    SeedWorld,
    add_router_routes,
    connector_reset,
    run_setup_script,
    start_vpn_client_only,
)

pytestmark = lab_marks("lab-flows")


def test_planner_routes_are_the_vpn_range_and_the_peer():
    assert planned_routes(HQ) == [N("100.96.0.0/11"), N("192.168.0.0/22")]
    assert planned_routes(BRANCH) == [N("10.0.0.0/18"), N("100.96.0.0/11")]


def test_remote_access(seed_lab: SeedWorld):
    hr = HQ.server_ip
    connector_reset(seed_lab, HQ)
    start_vpn_client_only(seed_lab, HQ)
    assert seed_lab.ping(seed_lab.bob, HQ.connector_vpn_ip)  # the tunnel itself works
    # step 11: the connector drops packets not addressed to it
    assert seed_lab.http(seed_lab.bob, hr) is None
    assert not seed_lab.ping(seed_lab.bob, hr)

    connector_reset(seed_lab, HQ)
    run_setup_script(seed_lab, HQ, planned_setup_script(HQ, lab_plan(hq=NO_NAT)))
    # step 15: forwarding alone: the app answers via the router, which has no route back
    assert seed_lab.http(seed_lab.bob, hr) is None
    assert not seed_lab.ping(seed_lab.bob, hr)

    connector_reset(seed_lab, HQ)
    run_setup_script(seed_lab, HQ, planned_setup_script(HQ, lab_plan(hq=NAT_EVERYTHING)))
    # steps 18-20: forwarding + NAT works; the app sees the connector's address
    assert seed_lab.http(seed_lab.bob, hr) == HQ.connector_ip
    # NAT alone: the app cannot reach Bob unsolicited (Option 1 vs Option 2)
    assert not seed_lab.ping(HQ.server, BOB_VPN_IP)

    connector_reset(seed_lab, HQ)
    ready = [sys.executable, str(ready_script()), "--check"]
    assert seed_lab.lab.run(HQ.connector, *ready, check=False).returncode == 1  # no tunnel
    run_setup_script(seed_lab, HQ, planned_setup_script(HQ, lab_plan(hq=NO_NAT)))
    # the AWS user-data's connector-ready sees the tunnel up (what it then tags the VM with)
    assert seed_lab.lab.run(HQ.connector, *ready, check=False).returncode == 0
    add_router_routes(seed_lab, HQ, planned_routes(HQ))
    # steps 16-17: forwarding + the planner's static route works, with Bob's real address
    assert seed_lab.http(seed_lab.bob, hr) == BOB_VPN_IP
    assert seed_lab.ping(seed_lab.bob, hr)
    # and the app can reach Bob unsolicited
    assert seed_lab.ping(HQ.server, BOB_VPN_IP)

    connector_reset(seed_lab, HQ)
    run_setup_script(seed_lab, HQ, planned_setup_script(HQ, lab_plan(hq=NAT_EXCEPT_LOCAL)))
    add_router_routes(seed_lab, HQ, planned_routes(HQ))
    # NAT with the `! -d` exception: local hosts still see the real VPN address
    assert seed_lab.http(seed_lab.bob, hr) == BOB_VPN_IP


def test_egress(seed_lab: SeedWorld):
    bob = seed_lab.bob
    # Split Tunnel OFF (egress step 4): Bob's default route is the VPN, as redirect-gateway def1
    # sets it: the server itself stays reachable outside the tunnel
    # without the VPN, Bob cannot reach the internet server: it is only behind HQ's router
    assert seed_lab.http(bob, WEB) is None
    seed_lab.lab.run(bob, "ip", "route", "replace", f"{VPN_SERVER}/32", "via", "198.51.100.13")
    for half in ("0.0.0.0/1", "128.0.0.0/1"):
        seed_lab.lab.run(bob, "ip", "route", "replace", half, "via", "100.96.0.1", "dev", "tun0")
    try:
        connector_reset(seed_lab, HQ)
        run_setup_script(seed_lab, HQ, planned_setup_script(HQ, lab_plan(hq=NO_NAT)))
        # step 12: without NAT on the connector and without the static route, the reply is lost
        assert seed_lab.http(bob, WEB) is None

        connector_reset(seed_lab, HQ)
        run_setup_script(seed_lab, HQ, planned_setup_script(HQ, lab_plan(hq=NAT_EXCEPT_LOCAL)))
        # steps 15-21: with NAT the internet server answers; it sees HQ's router address
        assert seed_lab.http(bob, WEB) == "203.0.113.1"
        assert seed_lab.ping(bob, WEB)
    finally:
        for half in ("0.0.0.0/1", "128.0.0.0/1"):
            seed_lab.lab.run(bob, "ip", "route", "del", half, check=False)


def test_site_to_site(seed_lab: SeedWorld):
    for site in (HQ, BRANCH):
        connector_reset(seed_lab, site)
        run_setup_script(seed_lab, site, planned_setup_script(site, lab_plan(hq=NO_NAT)))
        add_router_routes(seed_lab, site, planned_routes(site))
    finance, hr = BRANCH.server_ip, HQ.server_ip
    # steps 17-28: an HQ host and the Finance server reach each other, real addresses both ways
    assert seed_lab.http(HQ.server, finance) == hr
    assert seed_lab.http(BRANCH.server, hr) == finance
    assert seed_lab.ping(HQ.server, finance) and seed_lab.ping(BRANCH.server, hr)

    # step 30: without the branch router's route for HQ, branch -> HQ fails
    seed_lab.lab.run(BRANCH.router, "ip", "route", "del", HQ.subnet)
    assert seed_lab.http(BRANCH.server, hr) is None
