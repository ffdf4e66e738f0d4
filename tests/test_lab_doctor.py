"""The lab is the judge of `provision doctor`: each case is an observed state, as a cloud would
report it (the connector, the route table, the app's layers with their cloud's semantics), that
the doctor reads, and the same state built in the lab, each layer a real netfilter table on the
app server and each route an `ip route` on HQ's router. Bob's HTTP request to the HR app either
gets through or not; the doctor's verdict must agree, every case.

A network ACL sits at a subnet's edge in AWS: here the connector and the app are in one lab
LAN, so the observed state puts the app in a subnet of its own and the lab applies the ACL on
the app server itself, which is the same filter on this path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

import pytest
from conftest import FIGURES, lab_marks
from lab.plan import NAT_EVERYTHING, NAT_EXCEPT_LOCAL, NO_NAT, Mode, lab_plan, lab_topology
from lab.plan import planned_setup_script as script
from lab.world import (
    BOB_VPN_IP,
    HQ,
    SeedWorld,
    connector_reset,
    open_security_group,
    run_setup_script,
)

from provisioner import planner
from provisioner.doctor import diagnose
from provisioner.model import (
    AppAccess,
    AppGroup,
    ConnectorState,
    FilterLayer,
    FilterRule,
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

pytestmark = lab_marks("lab-doctor")

N = IPv4Network
VPN = N("100.96.0.0/11")
HTTP = Ports("tcp", 80, 80)
ENI = "eni-connector"


def rule(order: int, allow: bool, peer: str, ports: Ports = HTTP, inbound: bool = True,
         name: str = "", stateless: bool = False, default: bool = False) -> FilterRule:  # fmt: skip
    return FilterRule(order, allow, inbound, N(peer) if peer[0].isdigit() else peer, ports,
                      name or f"r{order}", stateless, default)  # fmt: skip


def acl(*rules: FilterRule) -> FilterLayer:
    return FilterLayer("network ACL acl-lab", ordered=True, stateful=False, rules=rules)


@dataclass
class Case:
    name: str
    mode: Mode = NO_NAT
    vpn_route: bool = True  # the router sends the VPN range to the connector
    steal: str | None = None  # a more specific route for part of it, elsewhere
    running: bool = True
    forwarding: bool = True
    group: tuple[IngressRule, ...] = (IngressRule(VPN, HTTP), IngressRule(N("10.0.0.0/18"), HTTP))
    edge: FilterLayer | None = None  # the app subnet's ACL
    host: tuple[FilterLayer, ...] = ()  # layers at the app (Azure, GCP, OCI)
    names: dict[str, tuple[IPv4Network, ...]] = field(default_factory=dict)


ALLOW_ALL_OUT = rule(100, True, "0.0.0.0/0", Ports("all"), inbound=False)
NSG_DEFAULTS = (
    rule(65000, True, "VirtualNetwork", Ports("all"), name="AllowVnetInBound (65000)", default=True),
    rule(65500, False, "*", Ports("all"), name="DenyAllInBound (65500)", default=True),
)  # fmt: skip
GCP_IMPLIED = rule(131070, False, "0.0.0.0/0", Ports("all"), name="implied deny", default=True)

CASES = [
    Case("no NAT, every route and rule"),
    Case("NAT except local, every route and rule", mode=NAT_EXCEPT_LOCAL),
    Case("NAT everything, no route back: the answer goes to the connector",
         mode=NAT_EVERYTHING, vpn_route=False, group=(IngressRule(N("10.0.0.0/18"), HTTP),)),
    Case("no NAT, no route back", vpn_route=False),
    Case("a more specific route steals the way back", steal="100.96.1.0/24"),
    Case("the connector is stopped", running=False),
    Case("the forwarding flag is off", forwarding=False),
    Case("the app group lacks the VPN range", group=(IngressRule(N("10.0.0.0/18"), HTTP),)),
    Case("NAT except local, the app group lacks the VPN range", mode=NAT_EXCEPT_LOCAL,
         group=(IngressRule(N("10.0.0.0/18"), HTTP),)),
    Case("an ACL that drops the answer's ephemeral ports",
         edge=acl(rule(100, True, "0.0.0.0/0"), rule(100, True, "0.0.0.0/0", HTTP, inbound=False))),
    Case("an ACL that lets the ephemeral ports out",
         edge=acl(rule(100, True, "0.0.0.0/0"),
                  rule(100, True, "0.0.0.0/0", Ports("tcp", 1024, 65535), inbound=False))),
    Case("an ACL deny for the VPN range at a better number",
         edge=acl(rule(90, False, "100.96.0.0/11"), rule(100, True, "0.0.0.0/0"), ALLOW_ALL_OUT)),
    Case("an NSG deny at a better priority than the allow",
         host=(FilterLayer("NSG nsg-app", True, True, (
             rule(101, False, "100.96.0.0/11", Ports("all"), name="deny-vpn (101)"),
             rule(4096, True, "100.96.0.0/11", name="ours (4096)"), *NSG_DEFAULTS)),)),
    Case("the NSG's defaults: VirtualNetwork takes the routes' prefixes",
         host=(FilterLayer("NSG nsg-app", True, True, NSG_DEFAULTS),),
         names={"VirtualNetwork": (N("10.0.0.0/18"), VPN)}),
    Case("the NSG's defaults without the route: DenyAllInBound", vpn_route=False, mode=NAT_EXCEPT_LOCAL,
         host=(FilterLayer("NSG nsg-app", True, True, NSG_DEFAULTS),),
         names={"VirtualNetwork": (N("10.0.0.0/18"),)}),
    Case("a GCP deny at the allow's priority goes first",
         host=(FilterLayer("firewall rules of app", True, True, (
             rule(2000, False, "100.96.0.0/11", Ports("all"), name="deny-vpn (1000)"),
             rule(2001, True, "100.96.0.0/11", name="ours (1000)"), GCP_IMPLIED)),)),
    Case("a GCP allow, nothing denying",
         host=(FilterLayer("firewall rules of app", True, True, (
             rule(2001, True, "100.96.0.0/11", name="ours (1000)"), GCP_IMPLIED)),)),
    Case("an OCI security list without the VPN range",
         host=(FilterLayer("security lists and NSGs", False, True, (
             rule(0, True, "10.0.0.0/18"), ALLOW_ALL_OUT)),)),
    Case("an OCI stateless rule without an egress rule for its answer",
         host=(FilterLayer("security lists and NSGs", False, True, (
             rule(0, True, "100.96.0.0/11", stateless=True),)),)),
    Case("an OCI stateless rule with its answer's egress rule",
         host=(FilterLayer("security lists and NSGs", False, True, (
             rule(0, True, "100.96.0.0/11", stateless=True),
             rule(0, True, "100.96.0.0/11", Ports("tcp", 1024, 65535), inbound=False,
                  stateless=True))),)),
]  # fmt: skip


def observed(case: Case) -> Observed:
    routes = [ObservedRoute(VPN, ENI)] if case.vpn_route else []
    if case.steal:
        routes.append(ObservedRoute(N(case.steal), "igw-lab"))
    connector = ObservedConnector(
        instance="i-connector", state=ConnectorState.RUNNING if case.running else ConnectorState.STOPPED,
        interface=ENI, private_ip=HQ.connector_ip, forwarding=case.forwarding, size="t3.small",
        image="ami-lab", subnet="subnet-1", fingerprint="", public_ip="198.51.100.2",
    )  # fmt: skip
    return Observed(
        network="hq",
        cidrs=(N(HQ.subnet),),
        route_tables=(RouteTable("rtb-lab", tuple(routes)),),
        subnets=(
            ObservedSubnet("subnet-1", WayOut.INTERNET_GATEWAY, "igw-lab", "rtb-lab"),
            ObservedSubnet("subnet-app", WayOut.INTERNET_GATEWAY, "igw-lab", "rtb-lab"),
        ),
        connector=connector,
        app_groups=(AppGroup("sg-app", case.group),),
        subnet_filters={"subnet-app": case.edge} if case.edge else {},
        members={"sg-app": (Member(HQ.server_ip, "subnet-app"),)},
        host_filters={HQ.server_ip: case.host} if case.host else {},
        peer_names=case.names,
    )


def verdict(case: Case) -> str:
    topology = lab_topology(hq=case.mode)
    hq = replace(topology.networks[0], app_access=(AppAccess("sg-app", (HTTP,)),))
    topology = replace(topology, networks=(hq, topology.networks[1]))
    obs = {"hq": observed(case), "branch": observed(case)}
    subnets = planner.local_subnets(topology, obs)
    (report,) = [
        r for r in diagnose(topology, obs, subnets, only="VPN clients (",
                            vpn_client=IPv4Address(BOB_VPN_IP))
        if " hq " in r.flow
    ]  # fmt: skip
    dropped = report.dropped_at
    return "OK" if dropped is None else f"DROPPED at {dropped.what}"


# --- the same state in the lab -----------------------------------------------------------


def iptables(world: SeedWorld, *args: str) -> None:
    world.lab.run(HQ.server, "iptables", *args)


def _match(
    r: FilterRule, names: dict[str, tuple[IPv4Network, ...]], inbound: bool
) -> list[list[str]]:
    """iptables matches for a rule: one per address range it stands for."""
    if isinstance(r.peer, IPv4Network):
        peers = [str(r.peer)]
    elif r.peer == "*":
        peers = ["0.0.0.0/0"]
    else:
        peers = [str(n) for n in names.get(r.peer, ())]
    proto: list[str] = []
    if r.ports.protocol != "all":
        proto = ["-p", r.ports.protocol]
        if r.ports.first is not None:
            proto += ["--dport", f"{r.ports.first}:{r.ports.last}"]
    where = "-s" if inbound else "-d"
    return [[where, peer, *proto] for peer in peers]


def build(world: SeedWorld, case: Case) -> None:
    """The case's state in the lab: the connector, HQ router's routes, the app's filters."""
    world.lab.run(HQ.server, "iptables", "-F", check=False)  # the app server's filters, all
    world.lab.run(HQ.server, "iptables", "-X", check=False)
    world.lab.run(HQ.server, "conntrack", "-F", check=False)
    open_security_group(world, HQ)
    connector = (case.mode, case.running)
    if getattr(world, "doctor_connector", None) != connector:  # set up again only on a change
        connector_reset(world, HQ)
        if case.running:
            run_setup_script(world, HQ, script(HQ, lab_plan(hq=case.mode)))
        world.doctor_connector = connector  # type: ignore[attr-defined]
    world.lab.run(HQ.router, "ip", "route", "flush", "proto", "static")
    world.lab.run(HQ.connector, "iptables", "-D", "FORWARD", "-j", "DROP", check=False)
    if case.running and not case.forwarding:  # the cloud drops what is not addressed to the VM
        world.lab.run(HQ.connector, "iptables", "-I", "FORWARD", "1", "-j", "DROP")
    if case.vpn_route:
        world.lab.run(HQ.router, "ip", "route", "add", str(VPN), "via", HQ.connector_ip,
                      "proto", "static")  # fmt: skip
    if case.steal:
        inet = HQ.wan.split("/")[0]
        world.lab.run(HQ.router, "ip", "route", "add", case.steal, "via", inet, "proto", "static")
    iptables(world, "-N", "LAB-IN")
    iptables(world, "-N", "LAB-OUT")
    iptables(world, "-A", "INPUT", "-j", "LAB-IN")
    iptables(world, "-A", "OUTPUT", "-j", "LAB-OUT")
    iptables(world, "-A", "LAB-IN", "-i", "lo", "-j", "ACCEPT")
    iptables(world, "-A", "LAB-OUT", "-o", "lo", "-j", "ACCEPT")
    if case.edge is not None:  # stateless, in order, at the app's edge: both directions
        for way, inbound in (("LAB-IN", True), ("LAB-OUT", False)):
            chain = f"{way}-ACL"
            iptables(world, "-N", chain)
            for r in sorted(
                (r for r in case.edge.rules if r.inbound == inbound), key=lambda r: r.order
            ):
                for m in _match(r, case.names, inbound):
                    iptables(world, "-A", chain, *m, "-j", "RETURN" if r.allow else "DROP")
            iptables(world, "-A", chain, "-j", "DROP")
            iptables(world, "-A", way, "-j", chain)
    layers = case.host or (FilterLayer("security group sg-app", False, True, tuple(
        FilterRule(0, True, True, g.source, g.ports) for g in case.group
        if isinstance(g.source, IPv4Network))),)  # fmt: skip
    for i, layer in enumerate(layers):
        chain = f"LAB-L{i}"
        iptables(world, "-N", chain)
        # stateful: an admitted connection's packets pass (marked 1 when a stateful rule
        # admitted it; a stateless rule's connection is judged again on the way out)
        iptables(world, "-A", chain, "-m", "connmark", "--mark", "1", "-j", "RETURN")
        rules = [r for r in layer.rules if r.inbound]
        rules = (
            sorted(rules, key=lambda r: r.order) if layer.ordered else [r for r in rules if r.allow]
        )
        for r in rules:
            for m in _match(r, case.names, True):
                if not r.allow:
                    iptables(world, "-A", chain, *m, "-j", "DROP")
                elif r.stateless:
                    iptables(world, "-A", chain, *m, "-j", "RETURN")
                else:
                    iptables(world, "-A", chain, *m, "-j", "CONNMARK", "--set-mark", "1")
                    iptables(world, "-A", chain, *m, "-j", "RETURN")
        iptables(world, "-A", chain, "-j", "DROP")
        iptables(world, "-A", "LAB-IN", "-j", chain)
        out = f"LAB-O{i}"
        iptables(world, "-N", out)
        # the answer of a connection a stateful rule admitted passes; any other packet out
        # (a stateless rule's answer) meets the layer's egress rules
        iptables(world, "-A", out, "-m", "connmark", "--mark", "1", "-j", "RETURN")
        egress = [r for r in layer.rules if not r.inbound]
        egress = (
            sorted(egress, key=lambda r: r.order)
            if layer.ordered
            else [r for r in egress if r.allow]
        )
        for r in egress:
            for m in _match(r, case.names, False):
                iptables(world, "-A", out, *m, "-j", "RETURN" if r.allow else "DROP")
        iptables(world, "-A", out, "-j", "DROP")
        iptables(world, "-A", "LAB-OUT", "-j", out)


@pytest.fixture
def doctor_lab(seed_lab: SeedWorld) -> Iterator[SeedWorld]:
    try:
        yield seed_lab
    finally:
        for chain in ("LAB-IN", "LAB-OUT"):
            seed_lab.lab.run(HQ.server, "iptables", "-D", "INPUT" if chain == "LAB-IN" else "OUTPUT",
                             "-j", chain, check=False)  # fmt: skip
        seed_lab.lab.run(HQ.server, "iptables", "-F", check=False)
        seed_lab.lab.run(HQ.server, "iptables", "-X", check=False)
        open_security_group(seed_lab, HQ)
        seed_lab.lab.run(HQ.connector, "iptables", "-D", "FORWARD", "-j", "DROP", check=False)
        connector_reset(seed_lab, HQ)
        seed_lab.doctor_connector = None  # type: ignore[attr-defined]


def test_the_doctor_agrees_with_the_packets(doctor_lab: SeedWorld):
    table = []
    # the cases that share the connector's setup one after another: it is set up once each
    for case in sorted(CASES, key=lambda c: (c.mode.nat, c.mode.preserve_source, not c.running)):
        build(doctor_lab, case)
        got_through = doctor_lab.http(doctor_lab.bob, HQ.server_ip, timeout=1.5) is not None
        said = verdict(case)
        table.append((case.name, said, "passes" if got_through else "dropped"))
    agree = sum(1 for _, said, outcome in table if (said == "OK") == (outcome == "passes"))
    FIGURES["lab doctor agreement"] = f"{agree}/{len(table)} cases: " + "; ".join(
        f"{name}: {said} / {outcome}" for name, said, outcome in table
    )
    assert agree == len(table) >= 16, "\n".join(f"{n}: doctor {s}, packet {o}" for n, s, o in table)
