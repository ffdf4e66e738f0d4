"""The lab is the judge of `provision doctor`: each case is an observed state, as a cloud would
report it (the connector, the route table, the app's layers with their cloud's semantics), that
the doctor reads, and the same state built in the lab, each layer a real netfilter table on the
app server and each route an `ip route` on HQ's router. Bob's HTTP request to the HR app either
gets through or not; the doctor's verdict must agree, every case.

A network ACL sits at a subnet's edge in AWS: here the connector and the app are in one lab
LAN, so the observed state puts the app in a subnet of its own and the lab applies the ACL on
the app server itself, which is the same filter on this path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

import pytest
from conftest import FIGURES, lab_marks
from lab.plan import (
    NAT_EVERYTHING,
    NAT_EXCEPT_LOCAL,
    NO_NAT,
    Mode,
    lab_plan,
    lab_topology,
    planned_routes,
)
from lab.plan import planned_setup_script as script
from lab.world import (
    BOB_ALT,
    BOB_ALT_IP,
    BOB_VPN_IP,
    BRANCH,
    HQ,
    VPN_SERVER,
    WEB,
    SeedWorld,
    Site,
    add_router_routes,
    connector_reset,
    open_security_group,
    run_setup_script,
)

from provisioner import planner
from provisioner.cloudconnexa.client import Api, read_policy
from provisioner.cloudconnexa.fake import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, CloudConnexa
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
    ObservedService,
    ObservedSubnet,
    Ports,
    RouteTable,
    ServiceConnector,
    ServiceNetwork,
    ServicePolicy,
    ServiceRoute,
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


# --- ranges, the app's own connections, sites both ways, egress, the service (issue 28) -----

BRANCH_ALT = "192.168.1.20"  # a second address of Branch's Finance server, in another quarter


@dataclass
class Probe:
    """One packet the lab sends and the flow whose piece for its source the doctor judges."""

    name: str
    flow: str  # the --flow query
    source: str  # the address the packet leaves from
    send: Callable[[SeedWorld], bool]  # True: it got through


@dataclass
class Scene:
    """A state of both networks (and the service) the doctor reads, and the same state in the
    lab: the connectors as `mode` sets them up, the routers' planned routes, then `tweak`."""

    name: str
    probes: tuple[Probe, ...]
    mode: Mode = NO_NAT
    branch: bool = False  # Branch's connector too (site-to-site)
    hq_routes: tuple[ObservedRoute, ...] = ()  # HQ's table besides the planned routes
    hq_without: str | None = None  # a planned route gone from HQ's table
    edge: FilterLayer | None = None
    host: tuple[FilterLayer, ...] = ()
    app_egress: tuple[IngressRule, ...] | None = None
    way_out: WayOut = WayOut.INTERNET_GATEWAY
    service: ObservedService | None = None
    tweak: Callable[[SeedWorld], None] | None = None
    untweak: Callable[[SeedWorld], None] | None = None


def _bob(source: str = BOB_VPN_IP) -> Callable[[SeedWorld], bool]:
    return lambda w: w.http(w.bob, HQ.server_ip, timeout=1.5, source=source) is not None


def _from_branch(source: str = BRANCH.server_ip) -> Callable[[SeedWorld], bool]:
    return lambda w: w.http(BRANCH.server, HQ.server_ip, timeout=1.5, source=source) is not None


def _to_bob(w: SeedWorld) -> bool:
    return w.http(HQ.server, BOB_VPN_IP, timeout=1.5, port=443) is not None


def _hq_to_branch(w: SeedWorld) -> bool:
    return w.http(HQ.server, BRANCH.server_ip, timeout=1.5) is not None


def _bob_to_the_internet(w: SeedWorld) -> bool:
    bob = w.bob
    w.lab.run(bob, "ip", "route", "replace", f"{VPN_SERVER}/32", "via", "198.51.100.13")
    for half in ("0.0.0.0/1", "128.0.0.0/1"):
        w.lab.run(bob, "ip", "route", "replace", half, "via", "100.96.0.1", "dev", "tun0")
    try:
        return w.http(bob, WEB, timeout=1.5) is not None
    finally:
        for half in ("0.0.0.0/1", "128.0.0.0/1"):
            w.lab.run(bob, "ip", "route", "del", half, check=False)


REMOTE = "vpn->hq:sg-app"
BOTH_BOBS = (Probe("Bob", REMOTE, BOB_VPN_IP, _bob()),
             Probe("Bob's other address", REMOTE, BOB_ALT_IP, _bob(BOB_ALT_IP)))  # fmt: skip


def _steal(world: SeedWorld, router: str, subnet: str) -> None:
    inet = HQ.wan.split("/")[0] if router == HQ.router else BRANCH.wan.split("/")[0]
    world.lab.run(router, "ip", "route", "add", subnet, "via", inet, "proto", "static")


def _no_way_out(world: SeedWorld) -> None:
    world.lab.run(HQ.router, "iptables", "-I", "FORWARD", "-o", "wan1", "-j", "DROP")


def _way_out_again(world: SeedWorld) -> None:
    world.lab.run(HQ.router, "iptables", "-D", "FORWARD", "-o", "wan1", "-j", "DROP", check=False)


def _egress_off(world: SeedWorld) -> None:
    world.lab.run(world.vpn, "ip", "rule", "del", "iif", "tun0", "lookup", "100", check=False)


def _egress_on(world: SeedWorld) -> None:
    _egress_off(world)
    world.lab.run(world.vpn, "ip", "rule", "add", "iif", "tun0", "lookup", "100")


def _service(egress: bool = True, policy: ServicePolicy | None = None) -> ObservedService:
    def net(name: str, site: Site, on: bool) -> ServiceNetwork:
        return ServiceNetwork(
            f"id-{name}", name, "connector-provisioner@lab:", on,
            (ServiceRoute(f"r-{name}", N(site.subnet), True),),
            (ServiceConnector(f"c-{name}", f"cp-{name}", "eu-central-1", site.connector_vpn_ip,
                              "ONLINE", True),),
        )  # fmt: skip

    return ObservedService(("eu-central-1",), (net("hq", HQ, egress), net("branch", BRANCH, False)),
                           policy)  # fmt: skip


SCENES = [
    Scene("a more specific route for part of the VPN range", BOTH_BOBS,
          hq_routes=(ObservedRoute(N(BOB_ALT), "igw-lab"),),
          tweak=lambda w: _steal(w, HQ.router, BOB_ALT)),
    Scene("an ACL deny for part of the VPN range", BOTH_BOBS,
          edge=acl(rule(90, False, BOB_ALT, Ports("all")), rule(100, True, "0.0.0.0/0", Ports("all")),
                   ALLOW_ALL_OUT)),
    Scene("an NSG deny for part of the VPN range", BOTH_BOBS,
          host=(FilterLayer("NSG nsg-app", True, True, (
              rule(100, False, BOB_ALT, Ports("all"), name="deny-part (100)"),
              rule(4096, True, "100.96.0.0/11", name="ours (4096)"), *NSG_DEFAULTS)),)),
    Scene("the app reaches Bob, sources kept",
          (Probe("HQ app -> Bob", "hq->vpn", BOB_VPN_IP, _to_bob),)),
    Scene("the app reaches Bob, NAT except local", mode=NAT_EXCEPT_LOCAL,
          probes=(Probe("HQ app -> Bob", "hq->vpn", BOB_VPN_IP, _to_bob),)),
    Scene("the app reaches Bob, NAT everything (the planned routes stay)", mode=NAT_EVERYTHING,
          probes=(Probe("HQ app -> Bob", "hq->vpn", BOB_VPN_IP, _to_bob),)),
    Scene("the app reaches Bob, the VPN range's route gone", hq_without=str(VPN),
          tweak=lambda w: w.lab.run(HQ.router, "ip", "route", "del", str(VPN)),
          probes=(Probe("HQ app -> Bob", "hq->vpn", BOB_VPN_IP, _to_bob),)),
    Scene("the app's group lets nothing out to the VPN range",
          (Probe("HQ app -> Bob", "hq->vpn", BOB_VPN_IP, _to_bob),),
          app_egress=(IngressRule(N("10.0.0.0/18")),),
          tweak=lambda w: w.lab.run(HQ.server, "iptables", "-A", "OUTPUT", "-d", str(VPN),
                                    "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")),
    Scene("site to site, both ways", branch=True, probes=(
        Probe("Branch -> HQ app", "branch->hq:sg-app", BRANCH.server_ip, _from_branch()),
        Probe("HQ app -> Branch", "hq->branch:sg-app", HQ.server_ip, _hq_to_branch))),
    Scene("a more specific route for a quarter of Branch", branch=True,
          hq_routes=(ObservedRoute(N("192.168.1.0/24"), "pcx-lab"),),
          tweak=lambda w: _steal(w, HQ.router, "192.168.1.0/24"),
          probes=(Probe("Branch -> HQ app", "branch->hq:sg-app", BRANCH.server_ip, _from_branch()),
                  Probe("Branch's other quarter -> HQ app", "branch->hq:sg-app", BRANCH_ALT,
                        _from_branch(BRANCH_ALT)))),
    Scene("egress through HQ", mode=NAT_EXCEPT_LOCAL, service=_service(),
          probes=(Probe("Bob -> the internet", "vpn->internet", BOB_VPN_IP, _bob_to_the_internet),)),
    Scene("egress, the connector's subnet without a way out", mode=NAT_EXCEPT_LOCAL,
          way_out=WayOut.NONE, tweak=_no_way_out, untweak=_way_out_again,
          probes=(Probe("Bob -> the internet", "vpn->internet", BOB_VPN_IP, _bob_to_the_internet),)),
    Scene("egress off on the service", mode=NAT_EXCEPT_LOCAL, service=_service(egress=False),
          tweak=_egress_off, untweak=_egress_on,
          probes=(Probe("Bob -> the internet", "vpn->internet", BOB_VPN_IP, _bob_to_the_internet),)),
]  # fmt: skip


def policy_from_the_fake() -> ServicePolicy:
    """An admin's policy on the fake service, read back through the API as the doctor reads
    it: topology CUSTOM, one access group letting Branch reach HQ (and no VPN user)."""
    with CloudConnexa().serve() as server:
        fake: CloudConnexa = server.fake  # type: ignore[assignment]
        fake.set_topology("CUSTOM")
        with fake.lock:
            fake.state.access_groups.clear()
        fake.add_access_group(
            "branch to hq",
            [{"type": "NETWORK_SERVICE", "allCovered": True, "parent": "id-branch"}],
            [{"type": "NETWORK_SERVICE", "allCovered": True, "parent": "id-hq"}],
        )
        return read_policy(Api(server.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET))


def access_filter(world: SeedWorld, policy: ServicePolicy) -> None:
    """The lab's VPN server refuses, as the service does, what the policy does not let through:
    what it forwards from one tunnel to another, unless an access group admits all of it."""
    ends: dict[tuple[str, str | None], list[str]] = {
        ("USER_GROUP", None): [str(VPN)],
        ("NETWORK_SERVICE", "id-hq"): [HQ.subnet],
        ("NETWORK_SERVICE", "id-branch"): [BRANCH.subnet],
    }
    run = world.lab.run
    run(world.vpn, "iptables", "-N", "LAB-ACCESS")
    run(world.vpn, "iptables", "-I", "FORWARD", "-i", "tun0", "-o", "tun0", "-j", "LAB-ACCESS")
    run(world.vpn, "iptables", "-A", "LAB-ACCESS", "-m", "conntrack", "--ctstate",
        "ESTABLISHED,RELATED", "-j", "ACCEPT")  # fmt: skip
    if not policy.decides:
        return
    for source, froms in ends.items():
        for destination, tos in ends.items():
            if source != destination and policy.admits(source, destination)[0] == "all":
                for a in froms:
                    for b in tos:
                        run(world.vpn, "iptables", "-A", "LAB-ACCESS", "-s", a, "-d", b,
                            "-j", "ACCEPT")  # fmt: skip
    run(world.vpn, "iptables", "-A", "LAB-ACCESS", "-j", "DROP")


def access_filter_off(world: SeedWorld) -> None:
    run = world.lab.run
    run(world.vpn, "iptables", "-D", "FORWARD", "-i", "tun0", "-o", "tun0", "-j", "LAB-ACCESS",
        check=False)  # fmt: skip
    run(world.vpn, "iptables", "-F", "LAB-ACCESS", check=False)
    run(world.vpn, "iptables", "-X", "LAB-ACCESS", check=False)


def access_scene() -> Scene:
    policy = policy_from_the_fake()
    return Scene(
        "the service's access groups let Branch reach HQ, no VPN user", branch=True,
        service=_service(policy=policy),
        tweak=lambda w: access_filter(w, policy), untweak=access_filter_off,
        probes=(Probe("Bob -> HQ app", REMOTE, BOB_VPN_IP, _bob()),
                Probe("Branch -> HQ app", "branch->hq:sg-app", BRANCH.server_ip, _from_branch())),
    )  # fmt: skip


def scene_observed(scene: Scene, site: Site) -> Observed:
    """What the cloud would report for `site` in this scene: the planned routes in its table
    (as apply writes them), and the scene's own."""
    eni = f"eni-{site.name}"
    plan = lab_plan(hq=scene.mode)
    mine = site is HQ
    routes = [ObservedRoute(d, eni) for d in planned_routes(site, plan)
              if not mine or str(d) != scene.hq_without]  # fmt: skip
    if mine:
        routes += scene.hq_routes
    connector = ObservedConnector(
        instance=f"i-{site.name}", state=ConnectorState.RUNNING, interface=eni,
        private_ip=site.connector_ip, forwarding=True, size="t3.small", image="ami-lab",
        subnet="subnet-1", fingerprint="", public_ip="198.51.100.2",
    )  # fmt: skip
    group = (IngressRule(VPN, HTTP), IngressRule(N("10.0.0.0/18"), HTTP),
             IngressRule(N("192.168.0.0/22"), HTTP))  # fmt: skip
    return Observed(
        network=site.name,
        cidrs=(N(site.subnet),),
        route_tables=(RouteTable("rtb-lab", tuple(routes)),),
        subnets=(
            ObservedSubnet(
                "subnet-1", scene.way_out if mine else WayOut.INTERNET_GATEWAY, "igw-lab", "rtb-lab"
            ),
            ObservedSubnet("subnet-app", WayOut.INTERNET_GATEWAY, "igw-lab", "rtb-lab"),
        ),  # fmt: skip
        connector=connector,
        app_groups=(AppGroup("sg-app", group, scene.app_egress if mine else None),),
        subnet_filters={"subnet-app": scene.edge} if scene.edge and mine else {},
        members={"sg-app": (Member(site.server_ip, "subnet-app"),)},
        host_filters={site.server_ip: scene.host} if scene.host and mine else {},
    )


def scene_verdict(scene: Scene, probe: Probe) -> str:
    """The doctor's verdict for the piece of the probe's flow its source falls in."""
    topology = lab_topology(hq=scene.mode)
    topology = replace(topology, networks=tuple(
        replace(n, app_access=(AppAccess("sg-app", (HTTP,)),)) for n in topology.networks))  # fmt: skip
    obs = {"hq": scene_observed(scene, HQ), "branch": scene_observed(scene, BRANCH)}
    subnets = planner.local_subnets(topology, obs)
    reports = diagnose(topology, obs, subnets, scene.service, only=probe.flow)
    source = IPv4Address(probe.source)
    for report in reports:
        for piece in report.pieces:
            if any(source in r for r in piece.ranges):
                hop = piece.dropped_at
                return "OK" if hop is None else f"{piece.verdict} at {hop.what}"
    raise AssertionError(f"{probe.flow}: no piece holds {probe.source}: {reports}")


def build_scene(world: SeedWorld, scene: Scene) -> None:
    for ns in (HQ.server, BRANCH.server):
        world.lab.run(ns, "iptables", "-F", check=False)
        world.lab.run(ns, "conntrack", "-F", check=False)
    setup = (scene.mode, scene.branch)
    plan = lab_plan(hq=scene.mode)
    if getattr(world, "scene_connectors", None) != setup:  # set up again only on a change
        for site in (HQ, BRANCH):
            connector_reset(world, site)
        run_setup_script(world, HQ, script(HQ, plan))
        if scene.branch:
            run_setup_script(world, BRANCH, script(BRANCH, plan))
        world.scene_connectors = setup  # type: ignore[attr-defined]
    world.doctor_connector = (scene.mode, True)  # type: ignore[attr-defined]
    for site in (HQ, BRANCH):
        world.lab.run(site.router, "ip", "route", "flush", "proto", "static")
    if scene.edge is not None or scene.host:  # the app's layers, as the first test builds them
        build(world, Case(scene.name, mode=scene.mode, edge=scene.edge, host=scene.host))
        world.lab.run(HQ.router, "ip", "route", "flush", "proto", "static")
    add_router_routes(world, HQ, planned_routes(HQ, plan))
    if scene.branch:
        add_router_routes(world, BRANCH, planned_routes(BRANCH, plan))
    if scene.tweak:
        scene.tweak(world)


@pytest.fixture
def scene_lab(doctor_lab: SeedWorld) -> Iterator[SeedWorld]:
    doctor_lab.lab.run(BRANCH.server, "ip", "addr", "add", f"{BRANCH_ALT}/22", "dev", "lan0")
    try:
        yield doctor_lab
    finally:
        doctor_lab.lab.run(BRANCH.server, "ip", "addr", "del", f"{BRANCH_ALT}/22", "dev", "lan0",
                           check=False)  # fmt: skip
        for scene in SCENES:
            if scene.untweak:
                scene.untweak(doctor_lab)
        access_filter_off(doctor_lab)
        for site in (HQ, BRANCH):
            connector_reset(doctor_lab, site)
        doctor_lab.scene_connectors = None  # type: ignore[attr-defined]


@pytest.mark.xdist_group("lab-doctor-flows")  # a worker (and a lab) of its own: the suite's time
def test_the_doctor_agrees_over_ranges_sites_egress_and_the_apps_own_connections(
    scene_lab: SeedWorld,
):
    rows = []
    scenes = [*SCENES, access_scene()]
    for scene in sorted(scenes, key=lambda s: (s.mode.nat, s.mode.preserve_source, s.branch)):
        build_scene(scene_lab, scene)
        try:
            for probe in scene.probes:
                got = probe.send(scene_lab)
                rows.append((f"{scene.name}: {probe.name}", scene_verdict(scene, probe),
                             "passes" if got else "dropped"))  # fmt: skip
        finally:
            if scene.untweak:
                scene.untweak(scene_lab)
    agree = sum(1 for _, said, outcome in rows if (said == "OK") == (outcome == "passes"))
    FIGURES["lab doctor agreement, ranges and flows"] = f"{agree}/{len(rows)}: " + "; ".join(
        f"{name}: {said} / {outcome}" for name, said, outcome in rows
    )
    assert agree == len(rows) >= 16, "\n".join(f"{n}: doctor {s}, packet {o}" for n, s, o in rows)
