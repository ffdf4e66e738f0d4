"""The planner on plain data: no SDK, no cloud. These are the routing decisions themselves."""

from __future__ import annotations

from ipaddress import IPv4Network as N
from pathlib import Path

import pytest

from provisioner import planner
from provisioner.errors import SpecError
from provisioner.model import (
    AppGroup,
    AwsLocation,
    Connector,
    Network,
    Observed,
    ObservedConnector,
    ObservedRoute,
    Part,
    RouteTable,
    Topology,
)


def net(name: str, subnets: list[str] | None, vpc: str, **conn) -> Network:
    return Network(
        name=name,
        cloud="aws",
        subnets=tuple(N(s) for s in subnets) if subnets else None,
        location=AwsLocation("us-east-1", vpc),
        app_security_groups=("sg-app",),
        connector=Connector(
            subnet="subnet-1",
            size="t3.small",
            nat=conn.get("nat", False),
            egress=False,
            profile=Path("p.ovpn"),
            profile_fingerprint="fp",
        ),
    )


def observed(
    name: str,
    cidr: str,
    tables: list[RouteTable],
    connector: ObservedConnector | None = None,
    allows: bool = False,
) -> Observed:
    return Observed(
        network=name,
        cidrs=(N(cidr),),
        route_tables=tuple(tables),
        subnets=("subnet-1",),
        connector=connector,
        parts=(
            Part("vpn-profile", "p", "the profile", True, fingerprint="fp"),
            Part("security-group", "g", "its group", True),
        ),
        app_groups=(AppGroup("sg-app", allows),),
        connector_ingress=(N(cidr),),
    )


HQ = net("hq", ["10.0.0.0/18"], "vpc-1")
BRANCH = net("branch", ["192.168.0.0/22"], "vpc-2")
EXTERNAL = Network(name="partner", cloud="external", subnets=(N("172.31.0.0/16"),))
TOPOLOGY = Topology(networks=(HQ, BRANCH, EXTERNAL))


def running(eni: str = "eni-1", fingerprint: str | None = None) -> ObservedConnector:
    fp = fingerprint or planner.connector_fingerprint(HQ, (N("10.0.0.0/18"),), N("100.96.0.0/11"))
    return ObservedConnector(
        "i-1", "running", eni, "10.0.0.4", True, "t3.small", "ami", "subnet-1", fp
    )


def converged(name: str, cidr: str, dests: list[str], eni: str) -> Observed:
    table = RouteTable(
        "rtb-1", tuple(ObservedRoute(N(d), eni) for d in dests) + (ObservedRoute(N(cidr), "local"),)
    )
    fp = planner.connector_fingerprint(TOPOLOGY.network(name), (N(cidr),), N("100.96.0.0/11"))
    conn = ObservedConnector(
        "i-" + name, "running", eni, "x", True, "t3.small", "ami", "subnet-1", fp
    )
    return observed(name, cidr, [table], conn, allows=True)


def test_routes_are_vpn_range_and_every_other_network_never_its_own():
    subnets = planner.local_subnets(TOPOLOGY, {})
    dests = planner.routed_destinations(HQ, TOPOLOGY, subnets)
    assert set(dests) == {N("100.96.0.0/11"), N("192.168.0.0/22"), N("172.31.0.0/16")}
    assert N("10.0.0.0/18") not in dests
    assert "steps 14-16" in dests[N("100.96.0.0/11")]
    assert "network branch" in dests[N("192.168.0.0/22")]


def test_converged_state_plans_nothing():
    obs = {
        "hq": converged(
            "hq", "10.0.0.0/18", ["100.96.0.0/11", "192.168.0.0/22", "172.31.0.0/16"], "eni-h"
        ),
        "branch": converged(
            "branch", "192.168.0.0/22", ["100.96.0.0/11", "10.0.0.0/18", "172.31.0.0/16"], "eni-b"
        ),
    }
    assert planner.plan_apply(TOPOLOGY, obs).empty


def test_removed_peer_routes_are_deleted_and_only_ours():
    obs = {
        "hq": converged(
            "hq",
            "10.0.0.0/18",
            ["100.96.0.0/11", "192.168.0.0/22", "172.31.0.0/16", "198.18.0.0/15"],
            "eni-h",
        ),
        "branch": converged("branch", "192.168.0.0/22", ["100.96.0.0/11", "10.0.0.0/18"], "eni-b"),
    }
    # someone else's route to another target stays untouched
    hq_table = obs["hq"].route_tables[0]
    obs["hq"] = Observed(
        **{
            **obs["hq"].__dict__,
            "route_tables": (
                RouteTable(
                    "rtb-1", hq_table.routes + (ObservedRoute(N("203.0.113.0/24"), "igw-1"),)
                ),
            ),
        }
    )
    plan = planner.plan_apply(TOPOLOGY, obs)
    hq = [(c.action, str(c.destination)) for c in plan.changes if c.network == "hq"]
    assert hq == [("delete", "198.18.0.0/15")]
    branch = [(c.action, str(c.destination)) for c in plan.changes if c.network == "branch"]
    assert branch == [("create", "172.31.0.0/16")]


def test_conflict_is_listed_unless_replacing():
    table = RouteTable("rtb-1", (ObservedRoute(N("100.96.0.0/11"), "pcx-9"),))
    obs = {
        "hq": observed("hq", "10.0.0.0/18", [table], running()),
        "branch": converged(
            "branch", "192.168.0.0/22", ["100.96.0.0/11", "10.0.0.0/18", "172.31.0.0/16"], "eni-b"
        ),
    }
    plan = planner.plan_apply(TOPOLOGY, obs)
    assert [(c.route_table, str(c.destination), c.current_target) for c in plan.conflicts] == [
        ("rtb-1", "100.96.0.0/11", "pcx-9")
    ]
    assert not any(
        c.kind == "route" and str(c.destination) == "100.96.0.0/11" for c in plan.changes
    )
    plan = planner.plan_apply(TOPOLOGY, obs, replace_conflicting_routes=True)
    assert not plan.conflicts
    (replace,) = [c for c in plan.changes if c.action == "replace"]
    assert replace.previous_target == "pcx-9" and replace.target == "eni-1"


def test_blackhole_is_replaced_not_a_conflict():
    table = RouteTable("rtb-1", (ObservedRoute(N("100.96.0.0/11"), "eni-old", usable=False),))
    obs = {
        "hq": observed("hq", "10.0.0.0/18", [table], running()),
        "branch": converged(
            "branch", "192.168.0.0/22", ["100.96.0.0/11", "10.0.0.0/18", "172.31.0.0/16"], "eni-b"
        ),
    }
    plan = planner.plan_apply(TOPOLOGY, obs)
    assert not plan.conflicts
    assert any(c.action == "replace" and "blackhole" in c.why for c in plan.changes)


def test_overlap_read_from_the_cloud_is_bad_input():
    topo = Topology(networks=(net("hq", None, "vpc-1"), net("branch", None, "vpc-2")))
    obs = {
        "hq": observed("hq", "10.0.0.0/16", []),
        "branch": observed("branch", "10.0.128.0/17", []),
    }
    with pytest.raises(SpecError, match="networks.branch.subnets"):
        planner.plan_apply(topo, obs)


def test_destroy_plan_reverses_apply():
    obs = {
        "hq": converged("hq", "10.0.0.0/18", ["100.96.0.0/11"], "eni-h"),
        "branch": observed("branch", "192.168.0.0/22", []),
    }
    plan = planner.plan_destroy(TOPOLOGY, obs)
    hq = [(c.action, c.part.kind if c.part else c.kind) for c in plan.changes if c.network == "hq"]
    assert hq == [
        ("delete", "route"),
        ("delete", "app-access"),
        ("delete", "connector"),
        ("delete", "security-group"),
        ("delete", "vpn-profile"),
    ]


def test_a_hundred_peers_are_routed_in_every_table():
    # plan computation time for this case is a figure in bench/, not an assertion
    peers = tuple(
        Network(name=f"p{i}", cloud="external", subnets=(N(f"172.{16 + i // 256}.{i % 256}.0/24"),))
        for i in range(100)
    )
    topo = Topology(networks=(HQ, *peers))
    obs = {
        "hq": observed(
            "hq", "10.0.0.0/18", [RouteTable(f"rtb-{t}", ()) for t in range(5)], running()
        )
    }
    plan = planner.plan_apply(topo, obs)
    assert len([c for c in plan.changes if c.kind == "route"]) == 5 * 101
