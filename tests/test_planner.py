"""The planner on plain data: no SDK, no cloud. These are the routing decisions themselves."""

from __future__ import annotations

from ipaddress import IPv4Network as N
from pathlib import Path

import pytest

from provisioner import planner
from provisioner.errors import SpecError
from provisioner.model import (
    CONNECTOR_SOURCE,
    AppAccess,
    AppGroup,
    Connector,
    IngressRule,
    Network,
    Observed,
    ObservedConnector,
    ObservedRoute,
    ObservedSubnet,
    Part,
    Ports,
    ProfileFile,
    RouteTable,
    Topology,
    WayOut,
)
from provisioner.providers.aws.cloud import AwsLocation
from provisioner.steps import stages

PUBLIC = ObservedSubnet("subnet-1", WayOut.INTERNET_GATEWAY, "igw-1", "rtb-pub")


def net(
    name: str,
    subnets: list[str] | None,
    vpc: str,
    app: tuple[AppAccess, ...] = (AppAccess("sg-app"),),
    **conn,
) -> Network:
    return Network(
        name=name,
        cloud="aws",
        subnets=tuple(N(s) for s in subnets) if subnets else None,
        location=AwsLocation("us-east-1", vpc),
        app_access=app,
        connector=Connector(
            subnet="subnet-1",
            size="t3.small",
            nat=conn.get("nat", False),
            egress=conn.get("egress", False),
            nat_preserve_source=conn.get("preserve", True),
            profile=ProfileFile(Path("p.ovpn"), "fp"),
        ),
    )


def observed(
    name: str,
    cidr: str,
    tables: list[RouteTable],
    connector: ObservedConnector | None = None,
    rules: tuple[IngressRule, ...] = (),
    subnet: ObservedSubnet = PUBLIC,
) -> Observed:
    return Observed(
        network=name,
        cidrs=(N(cidr),),
        route_tables=tuple(tables),
        subnets=(subnet,),
        connector=connector,
        parts=(
            Part("vpn-profile", "p", "the profile", True, fingerprint="fp"),
            Part("security-group", "g", "its group", True),
        ),
        app_groups=(AppGroup("sg-app", rules),),
        connector_ingress=(N(cidr),),
    )


HQ = net("hq", ["10.0.0.0/18"], "vpc-1")
BRANCH = net("branch", ["192.168.0.0/22"], "vpc-2")
EXTERNAL = Network(name="partner", cloud="external", subnets=(N("172.31.0.0/16"),))
TOPOLOGY = Topology(networks=(HQ, BRANCH, EXTERNAL))


def running(eni: str = "eni-1", fingerprint: str | None = None) -> ObservedConnector:
    fp = fingerprint or planner.connector_fingerprint(HQ, (N("10.0.0.0/18"),), N("100.96.0.0/11"))
    return ObservedConnector(
        "i-1", "running", eni, "10.0.0.4", True, "t3.small", "ami", "subnet-1", fp, "198.51.100.4"
    )


def our_rules(name: str, topology: Topology = TOPOLOGY) -> tuple[IngressRule, ...]:
    """The app rules apply made for network `name`, as observe reads them back."""
    subnets = planner.local_subnets(topology, {})
    return planner.app_rules(topology.network(name), topology, subnets)["sg-app"]


def converged(name: str, cidr: str, dests: list[str], eni: str) -> Observed:
    table = RouteTable(
        "rtb-1", tuple(ObservedRoute(N(d), eni) for d in dests) + (ObservedRoute(N(cidr), "local"),)
    )
    fp = planner.connector_fingerprint(TOPOLOGY.network(name), (N(cidr),), N("100.96.0.0/11"))
    conn = ObservedConnector(
        "i-" + name, "running", eni, "x", True, "t3.small", "ami", "subnet-1", fp, "198.51.100.9"
    )
    return observed(name, cidr, [table], conn, rules=our_rules(name))


def test_routes_are_vpn_range_and_every_other_network_never_its_own():
    subnets = planner.local_subnets(TOPOLOGY, {})
    dests = planner.routed_destinations(HQ, TOPOLOGY, subnets)
    assert set(dests) == {N("100.96.0.0/11"), N("192.168.0.0/22"), N("172.31.0.0/16")}
    assert N("10.0.0.0/18") not in dests
    assert dests[N("100.96.0.0/11")] == "VPN clients"
    assert dests[N("192.168.0.0/22")] == "network branch"


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
        ("delete", "app-access"),  # vpn, branch, partner
        ("delete", "app-access"),
        ("delete", "app-access"),
        ("delete", "connector"),
        ("delete", "security-group"),
        ("delete", "vpn-profile"),
    ]


def test_a_hundred_peers_are_routed_in_every_table():
    # plan computation time for this case is a figure in bench/, not an assertion
    # (every other /24: no two join, see the next test)
    peers = tuple(
        Network(name=f"p{i}", cloud="external",
                subnets=(N(f"172.{16 + 2 * i // 256}.{2 * i % 256}.0/24"),))
        for i in range(100)
    )  # fmt: skip
    topo = Topology(networks=(HQ, *peers))
    obs = {
        "hq": observed(
            "hq", "10.0.0.0/18", [RouteTable(f"rtb-{t}", ()) for t in range(5)], running()
        )
    }
    plan = planner.plan_apply(topo, obs)
    assert len([c for c in plan.changes if c.kind == "route"]) == 5 * 101


def test_routes_that_now_join_are_replaced_by_one_made_before_the_narrow_ones_go():
    """Two peers' /24s routed apart before (an older version, or the peers were apart): the
    /23 that joins them is created first, the /24s deleted after it, in a later step."""
    a = Network(name="a", cloud="external", subnets=(N("172.20.0.0/24"),))
    b = Network(name="b", cloud="external", subnets=(N("172.20.1.0/24"),))
    topo = Topology(networks=(HQ, a, b))
    old = (
        ObservedRoute(N("100.96.0.0/11"), "eni-1"),
        ObservedRoute(N("172.20.0.0/24"), "eni-1"),
        ObservedRoute(N("172.20.1.0/24"), "eni-1"),
    )
    obs = {"hq": observed("hq", "10.0.0.0/18", [RouteTable("rtb-1", old)], running())}
    plan = planner.plan_apply(topo, obs)
    routes = [(c.action, str(c.destination)) for c in plan.changes if c.kind == "route"]
    assert routes == [
        ("create", "172.20.0.0/23"),
        ("delete", "172.20.0.0/24"),
        ("delete", "172.20.1.0/24"),
    ]
    made = next(c for c in plan.changes if c.kind == "route" and c.action == "create")
    assert made.label == "networks a, b (joined)"
    steps = stages(plan.changes)
    step_of = {c: i for i, step in enumerate(steps) for c in step}
    assert all(step_of[made] < step_of[c] for c in plan.changes if c.action == "delete"
               and c.kind == "route")  # fmt: skip


# --- app access: admit what really arrives -------------------------------------------------

VPN = N("100.96.0.0/11")


def app_changes(plan, network: str = "hq") -> list[tuple[str, str, str]]:
    return [
        (str(c.action), str(c.rule.source), str(c.rule.ports))
        for c in plan.changes
        if c.network == network and c.kind == "app-access" and c.rule is not None
    ]


def hq_plan(hq: Network, rules: tuple[IngressRule, ...] = (), **kw) -> object:
    topo = Topology(networks=(hq, BRANCH, EXTERNAL))
    obs = {
        "hq": observed("hq", "10.0.0.0/18", [], running(), rules=rules, **kw),
        "branch": converged(
            "branch", "192.168.0.0/22", ["100.96.0.0/11", "10.0.0.0/18", "172.31.0.0/16"], "eni-b"
        ),
    }
    return planner.plan_apply(topo, obs)


@pytest.mark.parametrize(
    "settings",
    [{"nat": False}, {"nat": True, "preserve": True}],
    ids=["no NAT", "NAT with the ! -d exception"],
)
def test_sources_kept_are_admitted_by_address_never_by_group(settings):
    plan = hq_plan(net("hq", ["10.0.0.0/18"], "vpc-1", **settings))
    assert app_changes(plan) == [
        ("create", "100.96.0.0/11", "all"),  # VPN clients: seed remote access steps 14-16
        ("create", "192.168.0.0/22", "all"),  # branch hosts: site-to-site steps 18-20
        ("create", "172.31.0.0/16", "all"),  # the external partner
    ]
    assert all("0.0.0.0/0" not in c[1] and c[1] != CONNECTOR_SOURCE for c in app_changes(plan))
    create = next(c for c in plan.changes if c.kind == "app-access")
    assert "keep their source" in create.why and "remote access hop 6" in create.why


def test_nat_everything_is_admitted_by_the_connector_group():
    plan = hq_plan(net("hq", ["10.0.0.0/18"], "vpc-1", nat=True, preserve=False))
    assert app_changes(plan) == [("create", CONNECTOR_SOURCE, "all")]


def test_ports_restrict_every_source():
    app = (AppAccess("sg-app", (Ports("tcp", 443, 443), Ports("udp", 5000, 5100))),)
    plan = hq_plan(net("hq", ["10.0.0.0/18"], "vpc-1", app=app))
    assert app_changes(plan) == [
        (a, s, p)
        for s in ("100.96.0.0/11", "192.168.0.0/22", "172.31.0.0/16")
        for a, p in (("create", "tcp/443"), ("create", "udp/5000-5100"))
    ]


def test_switching_nat_mode_swaps_the_rules_and_keeps_foreign_ones():
    foreign = IngressRule(N("10.0.0.0/18"), Ports("tcp", 443, 443))
    kept = net("hq", ["10.0.0.0/18"], "vpc-1")
    rules = (*our_rules("hq", Topology(networks=(kept, BRANCH, EXTERNAL))), foreign)
    assert app_changes(hq_plan(kept, rules)) == []  # converged
    plan = hq_plan(net("hq", ["10.0.0.0/18"], "vpc-1", nat=True, preserve=False), rules)
    assert app_changes(plan) == [
        ("create", CONNECTOR_SOURCE, "all"),  # the new rule first: no gap in access
        ("delete", "100.96.0.0/11", "all"),
        ("delete", "192.168.0.0/22", "all"),
        ("delete", "172.31.0.0/16", "all"),
    ]


def test_a_removed_peer_takes_its_rule_with_it_and_an_identical_foreign_rule_counts():
    hq = net("hq", ["10.0.0.0/18"], "vpc-1")
    with_partner = Topology(networks=(hq, BRANCH, EXTERNAL))
    # the admin already admits the VPN range exactly as we would: not created, not ours
    admin = IngressRule(VPN, label="admin")
    rules = (admin, *(r for r in our_rules("hq", with_partner) if r.source != VPN))
    topo = Topology(networks=(hq, BRANCH))  # partner removed from the file
    obs = {
        "hq": observed("hq", "10.0.0.0/18", [], running(), rules=rules),
        "branch": observed("branch", "192.168.0.0/22", [], None),
    }
    plan = planner.plan_apply(topo, obs)
    assert app_changes(plan) == [("delete", "172.31.0.0/16", "all")]
    destroy = planner.plan_destroy(topo, obs)
    # both of ours go; the admin's rule for the VPN range never does
    assert app_changes(destroy) == [
        ("delete", "192.168.0.0/22", "all"),
        ("delete", "172.31.0.0/16", "all"),
    ]


def test_a_group_no_longer_listed_loses_our_rules_only():
    hq = net("hq", ["10.0.0.0/18"], "vpc-1", app=())
    rules = (IngressRule(VPN, ours=True), IngressRule(N("10.0.0.0/18")))
    plan = hq_plan(hq, rules)
    assert app_changes(plan) == [("delete", "100.96.0.0/11", "all")]
    (delete,) = [c for c in plan.changes if c.kind == "app-access"]
    assert delete.why == "no longer in app_security_groups"


# --- the connector's way out --------------------------------------------------------------


@pytest.mark.parametrize(
    "subnet, state",
    [
        (ObservedSubnet("subnet-1", WayOut.NONE, None, "rtb-main"), "no 0.0.0.0/0 route"),
        (ObservedSubnet("subnet-1", WayOut.NONE, "eni-gone", "rtb-9"), "a blackhole"),
    ],
)
def test_no_way_out_is_bad_input_naming_the_subnet(subnet, state):
    with pytest.raises(SpecError) as e:
        hq_plan(HQ, subnet=subnet)
    assert e.value.field == "networks.hq.connector.subnet"
    assert "'subnet-1'" in e.value.message and state in e.value.message
    assert "could not reach the VPN service" in e.value.message


def test_internet_gateway_subnet_gets_a_public_address_at_launch():
    topo = Topology(networks=(HQ, BRANCH))
    obs = {
        "hq": observed("hq", "10.0.0.0/18", []),
        "branch": observed(
            "branch",
            "192.168.0.0/22",
            [],
            subnet=ObservedSubnet("subnet-1", WayOut.NAT_GATEWAY, "nat-1", "rtb-2"),
        ),
    }
    plan = planner.plan_apply(topo, obs)
    launches = {c.network: c.connector for c in plan.changes if c.kind == "connector"}
    assert launches["hq"] is not None and launches["hq"].public_address
    assert launches["branch"] is not None and not launches["branch"].public_address
    notes = {n.network: " ".join((*n.facts, *n.notes)) for n in plan.networks}
    assert "through igw-1, which translates only public" in notes["hq"]
    assert "public address at launch" in notes["hq"]
    assert (
        "through nat-1, a NAT gateway" in notes["branch"] and "no public address" in notes["branch"]
    )


def test_a_connector_without_public_address_behind_an_internet_gateway_is_replaced():
    lost = ObservedConnector(
        "i-1", "running", "eni-1", "10.0.0.4", True, "t3.small", "ami", "subnet-1",
        planner.connector_fingerprint(HQ, (N("10.0.0.0/18"),), VPN), None,
    )  # fmt: skip
    plan = hq_plan(HQ)
    assert not any(c.kind == "connector" for c in plan.changes)
    topo = Topology(networks=(HQ, BRANCH, EXTERNAL))
    obs = {
        "hq": observed("hq", "10.0.0.0/18", [], lost, rules=our_rules("hq")),
        "branch": observed("branch", "192.168.0.0/22", [], None),
    }
    plan = planner.plan_apply(topo, obs)
    # made before break (AWS): the new one beside, the old one deleted after the routes
    made, gone = [c for c in plan.changes if c.kind == "connector" and c.network == "hq"]
    assert (made.action, gone.action) == ("create", "delete") and "no public address" in made.why
    hq = [c for c in plan.changes if c.network == "hq"]
    assert gone.resource == lost.instance and hq[-1] is gone
    (status,) = [s for s in planner.network_status(topo, obs) if s.network == "hq"]
    assert not status.reaches_vpn_service and not status.healthy


def test_egress_behind_something_else_than_an_internet_gateway_is_said():
    hq = net("hq", ["10.0.0.0/18"], "vpc-1", nat=True, egress=True)
    plan = hq_plan(hq, subnet=ObservedSubnet("subnet-1", WayOut.OTHER, "tgw-1", "rtb-3"))
    (network,) = [n for n in plan.networks if n.network == "hq"]
    assert any(
        n.startswith("warning: egress network") and "tgw-1" in n
        for n in (*network.facts, *network.notes)
    )
    assert any("sends 0.0.0.0/0 to tgw-1" in n for n in (*network.facts, *network.notes))


# --- status: which sources each group admits, and whether that covers what arrives --------


def test_status_says_what_each_group_admits_and_what_it_drops():
    hq = net("hq", ["10.0.0.0/18"], "vpc-1")
    topo = Topology(networks=(hq, BRANCH))
    seed_rule = IngressRule(CONNECTOR_SOURCE)  # the seed's advice alone
    broad = IngressRule(N("100.64.0.0/10"), Ports("tcp"))  # the admin's, covers VPN on tcp only
    obs = {
        "hq": observed("hq", "10.0.0.0/18", [], running(), rules=(seed_rule, broad)),
        "branch": observed("branch", "192.168.0.0/22", [], None),
    }
    (status,) = [s for s in planner.network_status(topo, obs) if s.network == "hq"]
    (group,) = status.app_groups
    assert group.found and not group.covered and not status.healthy
    assert [(str(r.source), str(r.ports)) for r in group.missing] == [
        ("100.96.0.0/11", "all"),  # tcp only is not all traffic
        ("192.168.0.0/22", "all"),  # a group reference never matches a forwarded source
    ]
    # a broader rule on all traffic covers; a group reference covers only the NATting connector
    wide = (IngressRule(N("0.0.0.0/1")), IngressRule(N("128.0.0.0/1")))
    obs["hq"] = observed("hq", "10.0.0.0/18", [], running(), rules=(seed_rule, *wide))
    (status,) = [s for s in planner.network_status(topo, obs) if s.network == "hq"]
    assert status.app_groups[0].covered
    nat_all = Topology(networks=(net("hq", ["10.0.0.0/18"], "vpc-1", nat=True, preserve=False),))
    own_range = IngressRule(N("10.0.0.0/18"))  # holds the connector's own address 10.0.0.4
    for rules in ((seed_rule,), (own_range,)):
        obs["hq"] = observed("hq", "10.0.0.0/18", [], running(), rules=rules)
        (status,) = planner.network_status(nat_all, obs)
        assert status.app_groups[0].covered, rules


def test_status_of_a_group_that_is_gone():
    obs = {
        "hq": Observed(network="hq", cidrs=(N("10.0.0.0/18"),), route_tables=(), subnets=(PUBLIC,)),
        "branch": observed("branch", "192.168.0.0/22", [], None),
    }
    (status,) = [s for s in planner.network_status(TOPOLOGY, obs) if s.network == "hq"]
    assert not status.app_groups[0].found and not status.app_groups[0].covered


# --- parts that hang on the VM (an Azure VM extension carries the profile) -----------------


def with_parts(obs: Observed, *parts: Part) -> Observed:
    return Observed(**{**obs.__dict__, "parts": parts})


EXTENSION = Part("vpn-profile", "ext", "hands the VM its profile", True, fingerprint="fp",
                 after_connector=True)  # fmt: skip


def kinds(plan, network: str = "hq") -> list[tuple[str, str]]:
    return [
        (str(c.action), c.part.kind if c.part else str(c.kind))
        for c in plan.changes
        if c.network == network and c.kind != "route" and c.kind != "app-access"
    ]


def test_a_part_on_the_vm_comes_after_it_and_again_on_a_new_vm():
    group = Part("security-group", "g", "its group", False)
    missing = Part(**{**EXTENSION.__dict__, "present": False})
    obs = {
        "hq": with_parts(observed("hq", "10.0.0.0/18", []), group, missing),
        "branch": converged("branch", "192.168.0.0/22", ["100.96.0.0/11"], "eni-b"),
    }
    assert kinds(planner.plan_apply(TOPOLOGY, obs))[:4] == [
        ("create", "security-group"),
        ("create", "connector"),
        ("update", "forwarding"),
        ("create", "vpn-profile"),  # after the VM: it is made on it
    ]
    # the VM is replaced (its size changed): the extension is made again on the new one
    resized = net("hq", ["10.0.0.0/18"], "vpc-1")
    resized = Network(**{**resized.__dict__, "connector": Connector(
        **{**resized.connector.__dict__, "size": "t3.large"})})  # fmt: skip
    topo = Topology(networks=(resized, BRANCH, EXTERNAL))
    obs["hq"] = with_parts(observed("hq", "10.0.0.0/18", [], running()), EXTENSION)
    changes = kinds(planner.plan_apply(topo, obs))
    assert changes[:3] == [
        ("create", "connector"),  # made beside the old one (AWS: make before break)
        ("update", "forwarding"),
        ("create", "vpn-profile"),
    ]
    assert changes[-1] == ("delete", "connector")  # the old one, once the routes moved


def test_a_changed_profile_on_the_vm_is_updated_without_replacing_it():
    stale = Part(**{**EXTENSION.__dict__, "fingerprint": "old"})
    obs = {
        "hq": with_parts(
            observed("hq", "10.0.0.0/18", [], running(), rules=our_rules("hq")), stale
        ),
        "branch": converged("branch", "192.168.0.0/22", ["100.96.0.0/11"], "eni-b"),
    }
    plan = planner.plan_apply(TOPOLOGY, obs)
    assert kinds(plan) == [("update", "vpn-profile")]
    # destroy: what hangs on the VM goes before it
    assert kinds(planner.plan_destroy(TOPOLOGY, obs))[:2] == [
        ("delete", "vpn-profile"),
        ("delete", "connector"),
    ]


def test_overlaps_are_found_by_one_sweep_as_by_every_pair():
    """The overlap check looks each network up among those before it by address (a thousand in
    milliseconds, where every pair
    took seconds): it finds the pair every-pair finds, the later one first in file order."""
    import random
    from ipaddress import IPv4Network

    from provisioner.model import first_overlap

    def every_pair(items):
        for j in range(len(items)):
            for i in range(j):
                if items[i][1].overlaps(items[j][1]):
                    return (i, j)
        return None

    rng = random.Random(7)
    for _ in range(300):
        items = [
            (k, IPv4Network((((10 << 24) + rng.randrange(0, 2**24)) >> (32 - p) << (32 - p), p)))
            for k, p in enumerate(
                rng.choice((8, 12, 16, 20, 24)) for _ in range(rng.randrange(1, 8))
            )
        ]
        assert first_overlap(items) == every_pair(items), items
