"""`provision doctor`: every flow the topology implies, traced hop by hop through what the
clouds hold, both directions, each filter layer with its cloud's semantics. Pure: it reads
the observed state (and the VPN service's) and decides; nothing is changed.

The verdict per flow is OK, or DROPPED at the first hop that fails, with the rule or route
that drops it, the hop of docs/flows.md it breaks, and the fix (and whether apply makes it).

Layers (`FilterLayer`): `union` (any allow rule admits: a security group) or `ordered` (the
first matching rule by order decides, deny included: a network ACL), stateful (the answer to
an admitted request passes) or stateless (the answer is judged on its own, to the client's
ephemeral ports). A layer sits at a subnet's edge (it filters what enters or leaves the
subnet, not what stays in it) or at a host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from .model import (
    ALL_TRAFFIC,
    CONNECTOR_SOURCE,
    ConnectorState,
    FilterLayer,
    FilterRule,
    IngressRule,
    Member,
    Network,
    Observed,
    ObservedService,
    Ports,
    RouteTable,
    Topology,
    WayOut,
)

EPHEMERAL = Ports("tcp", 1024, 65535)  # the client's side of an answer (AWS's advice)
SAMPLE = Ports("tcp", 443, 443)  # the port a flow to "all traffic" is traced with


@dataclass(frozen=True)
class Hop:
    what: str
    ok: bool
    detail: str
    breaks: str = ""  # the hop of docs/flows.md a failure here breaks
    fix: str = ""
    apply_fixes: bool = False

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"hop": self.what, "ok": self.ok, "detail": self.detail}
        if not self.ok:
            out.update(breaks=self.breaks, fix=self.fix, apply_fixes=self.apply_fixes)
        return out


@dataclass(frozen=True)
class FlowReport:
    flow: str  # "VPN clients -> hq sg-1 (10.0.1.5) tcp/443"
    kind: str  # remote-access | unsolicited | site-to-site | egress (docs/flows.md)
    hops: tuple[Hop, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """OK, DROPPED, or UNKNOWN: no hop could be traced (no host to reach, nothing read)."""
        if not self.hops:
            return "UNKNOWN"
        return "OK" if all(h.ok for h in self.hops) else "DROPPED"

    @property
    def ok(self) -> bool:
        return self.verdict == "OK"

    @property
    def dropped_at(self) -> Hop | None:
        return next((h for h in self.hops if not h.ok), None)

    def to_dict(self) -> dict[str, object]:
        dropped = self.dropped_at
        return {
            "flow": self.flow,
            "kind": self.kind,
            "verdict": self.verdict,
            "dropped_at": dropped.to_dict() if dropped else None,
            "hops": [h.to_dict() for h in self.hops],
            "notes": list(self.notes),
        }


# --- one layer ---------------------------------------------------------------------------


def _ports_overlap(a: Ports, b: Ports) -> bool:
    if a.protocol == "all" or b.protocol == "all":
        return True
    if a.protocol != b.protocol:
        return False
    if a.first is None or b.first is None:
        return True
    assert a.last is not None and b.last is not None
    return a.first <= b.last and b.first <= a.last


def _peer_relation(rule: FilterRule, peer: IPv4Network, names: frozenset[str]) -> str:
    """How a rule's peer stands to the packets' peer: all of it, part of it, or none."""
    if not isinstance(rule.peer, IPv4Network):
        return "all" if rule.peer in names else "none"
    if peer.subnet_of(rule.peer):
        return "all"
    return "part" if peer.overlaps(rule.peer) else "none"


def decide(
    layer: FilterLayer,
    inbound: bool,
    peer: IPv4Address | IPv4Network,
    ports: Ports,
    names: frozenset[str] = frozenset(),
) -> tuple[bool, FilterRule | None]:
    """Whether `layer` lets every packet from (inbound) or to `peer` (an address, or every
    address of a range) on `ports` through, and the rule that decides (None: nothing matched).
    `names`: what else the peer is (a group it belongs to, a service tag)."""
    net = IPv4Network(peer) if isinstance(peer, IPv4Address) else peer
    rules = [
        (r, _peer_relation(r, net, names))
        for r in layer.rules
        if r.inbound == inbound and _peer_relation(r, net, names) != "none"
    ]
    if not layer.ordered:
        for rule, relation in rules:
            if rule.allow and relation == "all" and rule.ports.covers(ports):
                return True, rule
        return False, None
    remaining = [ports]  # ordered: walk the rules, the part of the range not yet decided
    for rule, relation in sorted(rules, key=lambda x: x[0].order):
        if not any(_ports_overlap(rule.ports, p) for p in remaining):
            continue
        if not rule.allow:
            return False, rule
        if relation != "all":  # admits some of the peer's addresses: the rest goes on
            continue
        remaining = [left for p in remaining for left in _subtract(p, rule.ports)]
        if not remaining:
            return True, rule
    return layer.default_allow, None


def host_admits(obs: Observed, group: str, need: IngressRule) -> bool | None:
    """What `status` asks where the cloud's layers at the group's hosts were read (Azure's
    NSGs with their defaults and denies, GCP's rules with their targets, OCI's lists and
    NSGs): does every layer at the group's first host admit every packet `need` stands for.
    None: nothing read there (the group's own rules decide)."""
    members = obs.members.get(group, ())
    layers = obs.host_filters.get(members[0].address) if members else None
    if not layers or not isinstance(need.source, IPv4Network):
        return None
    names = frozenset(
        tag for tag, nets in obs.peer_names.items() if any(need.source.subnet_of(n) for n in nets)
    ) | {"*"}
    return all(decide(layer, True, need.source, need.ports, names)[0] for layer in layers)


def group_admits(
    rules: tuple[IngressRule, ...], need: IngressRule, connector_ip: str | None
) -> bool:
    """What `status` asks of an app group: do its rules admit every packet `need` stands for
    (the same layer and the same decision as the doctor's)."""
    layer = security_group("", rules, connector_ip)
    if need.source == CONNECTOR_SOURCE:
        if connector_ip is None:  # a reference to the connector's group admits it, by name
            return any(r.source == CONNECTOR_SOURCE and r.ports.covers(need.ports) for r in rules)
        peer: IPv4Network = IPv4Network(connector_ip)
    elif isinstance(need.source, IPv4Network):
        peer = need.source
    else:
        return any(r.source == need.source and r.ports.covers(need.ports) for r in rules)
    return decide(layer, True, peer, need.ports)[0]


def _subtract(have: Ports, rule: Ports) -> list[Ports]:
    """What of `have` `rule` does not cover (port ranges of one protocol)."""
    if rule.covers(have):
        return []
    if not _ports_overlap(have, rule) or have.first is None or rule.first is None:
        return [have]
    assert have.last is not None and rule.last is not None
    out = []
    if have.first < rule.first:
        out.append(Ports(have.protocol, have.first, rule.first - 1))
    if rule.last < have.last:
        out.append(Ports(have.protocol, rule.last + 1, have.last))
    return out


def security_group(
    group: str, rules: tuple[IngressRule, ...], connector_ip: str | None
) -> FilterLayer:
    """An AWS security group's inbound rules as a union layer (what status reads too): a
    reference to the connector's group admits the connector's own address only."""
    out = []
    for r in rules:
        if r.source == CONNECTOR_SOURCE:
            if connector_ip is None:
                continue
            peer: IPv4Network | str = IPv4Network(connector_ip)
        else:
            peer = r.source
        out.append(FilterRule(0, True, True, peer, r.ports, str(r)))
    return FilterLayer(f"security group {group}", ordered=False, stateful=True, rules=tuple(out))


def longest_match(table: RouteTable, address: IPv4Address) -> tuple[IPv4Network, str] | None:
    """The route a table uses for `address`: the longest prefix among every route it holds."""
    best = None
    for r in table.routes:
        if address in r.destination and (
            best is None or r.destination.prefixlen > best[0].prefixlen
        ):
            best = (r.destination, r.target if r.usable else f"{r.target} (blackhole)")
    return best


# --- flows -------------------------------------------------------------------------------


@dataclass
class _Trace:
    hops: list[Hop] = field(default_factory=list)
    # network -> the fingerprint of the bootstrap the file wants (a connector running another
    # one forwards as the file no longer says)
    bootstraps: Mapping[str, str] = field(default_factory=dict)

    def add(self, hop: Hop) -> bool:
        self.hops.append(hop)
        return hop.ok


def _sample_address(subnet: IPv4Network, offset: int = 10) -> IPv4Address:
    return subnet.network_address + min(offset, subnet.num_addresses - 2)


def _ports_of(network: Network, group: str) -> Ports:
    for access in network.app_access:
        if access.group == group:
            first = access.ports[0]
            return SAMPLE if first == ALL_TRAFFIC else first
    return SAMPLE


def _connector_hops(trace: _Trace, network: Network, obs: Observed, breaks: str) -> bool:
    c = obs.connector
    if c is None:
        return trace.add(Hop(f"connector of {network.name}", False, "no connector", breaks,
                             "apply launches it", True))  # fmt: skip
    if c.state != ConnectorState.RUNNING:
        return trace.add(Hop(f"connector of {network.name}", False, f"{c.instance} is {c.state}",
                             breaks, "apply starts it", True))  # fmt: skip
    if not c.forwarding:
        return trace.add(Hop(f"connector of {network.name}", False,
                             f"{c.instance} does not forward (source/dest check on)",
                             "remote access hop 4", "apply turns the check off", True))  # fmt: skip
    wanted = trace.bootstraps.get(network.name)
    if wanted and c.fingerprint and c.fingerprint != wanted:
        return trace.add(Hop(f"connector of {network.name}", False,
                             f"{c.instance} runs an older bootstrap than the file says (NAT, "
                             "subnets, image or interface): what it forwards, and as whom, is "
                             "not what the file says", "remote access hop 5",
                             "apply replaces it", True))  # fmt: skip
    return trace.add(Hop(f"connector of {network.name}", True,
                         f"{c.instance} running, forwarding, at {c.private_ip}"))  # fmt: skip


def _seen_source(network: Network, obs: Observed, source: IPv4Address) -> IPv4Address:
    """What the app sees as the source: the connector's own address when it NATs this
    traffic, else the real one."""
    c = network.connector
    assert c is not None
    local = any(source in s for s in obs.cidrs)
    if (
        c.nat
        and (not c.nat_preserve_source or local)
        and obs.connector
        and obs.connector.private_ip
    ):
        return IPv4Address(obs.connector.private_ip)
    return source


def _edge(
    trace: _Trace,
    obs: Observed,
    subnet: str,
    inbound: bool,
    peer: IPv4Address,
    ports: Ports,
    breaks: str,
    crossing: bool,
) -> bool:
    """The subnet's edge layer (AWS: its network ACL), for a packet that crosses it."""
    layer = obs.subnet_filters.get(subnet)
    if layer is None or not crossing:
        return True
    ok, rule = decide(layer, inbound, peer, ports)
    way = "in from" if inbound else "out to"
    if ok:
        return trace.add(Hop(layer.name, True, f"{subnet}: {ports} {way} {peer} allowed by {rule}"))
    why = f"by {rule}" if rule else "by no rule (the default deny)"
    fix = (
        f"allow {ports} {'inbound from' if inbound else 'outbound to'} {peer} in {layer.name} "
        f"before {'rule ' + str(rule.order) if rule else 'its default deny'}"
    )
    return trace.add(Hop(layer.name, False, f"{subnet}: {ports} {way} {peer} dropped {why}",
                         breaks, fix, False))  # fmt: skip


def _route_back(trace: _Trace, obs: Observed, subnet: str, to: IPv4Address, breaks: str) -> bool:
    """The answer's route from the app's subnet: the longest prefix match must reach the
    connector (or stay local when the answer goes to an address of the network)."""
    if any(to in c for c in obs.cidrs):
        return trace.add(Hop("route back", True, f"{to} is local to the network"))
    table_id = obs.subnet_tables.get(subnet) or next(
        (s.route_table for s in obs.subnets if s.id == subnet and s.route_table), None
    )
    table = next((t for t in obs.route_tables if t.id == table_id), None)
    if table is None:
        return trace.add(Hop("route back", True, f"{subnet}: its route table was not read"))
    ours = obs.routed_to(obs.connector)
    best = longest_match(table, to)
    if best is not None and best[1] == ours:
        return trace.add(Hop("route back", True, f"{table.id}: {best[0]} -> the connector"))
    if best is None:
        return trace.add(Hop("route back", False, f"{table.id} has no route for {to}", breaks,
                             "apply adds the route to the connector", True))  # fmt: skip
    ours_for = [r for r in table.routes if r.target == ours and to in r.destination]
    if ours_for:
        fix = (f"remove or narrow the route {best[0]} -> {best[1]}: it is more specific than "
               f"ours ({ours_for[0].destination}); apply does not touch routes it did not make")  # fmt: skip
        return trace.add(Hop("route back", False,
                             f"{table.id}: {best[0]} -> {best[1]} takes {to} away from the connector",
                             breaks, fix, False))  # fmt: skip
    return trace.add(Hop("route back", False, f"{table.id}: {to} goes to {best[1]} ({best[0]})",
                         breaks, "apply adds the route to the connector (a conflict if it is "
                         "this very destination: --replace-conflicting-routes)", True))  # fmt: skip


def _app_layer(
    trace: _Trace,
    network: Network,
    obs: Observed,
    group: str,
    seen: IPv4Address,
    ports: Ports,
    breaks: str,
    member: Member | None = None,
) -> bool:
    layers = obs.host_filters.get(str(member.address)) if member else None
    if layers:  # the host's own layers, in the order a packet meets them
        names = frozenset(
            tag for tag, nets in obs.peer_names.items() if any(seen in n for n in nets)
        ) | ({"Internet"} if seen.is_global else frozenset())
        for layer in layers:
            ok, rule = decide(layer, True, seen, ports, names | {"*"})
            if not ok:
                # apply adds our allow when nothing but the cloud's defaults decided
                managed = group in network.app_security_groups and (rule is None or rule.default)
                why = f"by {rule}" if rule else "by no rule"
                return trace.add(Hop(layer.name, False, f"{ports} from {seen} dropped {why}",
                                     breaks, f"admit {seen} on {ports} in {layer.name} before "
                                     f"{'rule ' + (rule.name or str(rule.order)) if rule else 'its defaults'}",
                                     managed))  # fmt: skip
            trace.add(Hop(layer.name, True, f"{ports} from {seen} admitted by {rule}"))
            if rule is not None and rule.stateless:  # its answer is judged on its own
                answer = (
                    Ports(ports.protocol, EPHEMERAL.first, EPHEMERAL.last) if ports.first else ports
                )
                back_ok, back = decide(layer, False, seen, answer, names | {"*"})
                if not back_ok:
                    return trace.add(Hop(layer.name, False,
                                         f"the answer {answer} to {seen} is let out by no rule "
                                         f"(the rule that admits the request, {rule}, is stateless)",
                                         breaks.replace("6", "7"), f"allow {answer} out to {seen} "
                                         f"in {layer.name}, or make the rule stateful", False))  # fmt: skip
        return True
    found = next((g for g in obs.app_groups if g.id == group), None)
    if found is None:
        return trace.add(Hop(f"app group {group}", False, "not found in the network", breaks,
                             "name an existing group in app_security_groups", False))  # fmt: skip
    ip = obs.connector.private_ip if obs.connector else None
    layer = security_group(group, found.rules, ip)
    ok, rule = decide(layer, True, seen, ports)
    if ok:
        return trace.add(Hop(layer.name, True, f"{ports} from {seen} admitted by {rule}"))
    managed = group in network.app_security_groups
    return trace.add(Hop(layer.name, False, f"no rule admits {ports} from {seen}", breaks,
                         f"admit {seen} on {ports}" + (" (apply adds it)" if managed else ""),
                         managed))  # fmt: skip


def _to_app(
    network: Network,
    obs: Observed,
    group: str,
    member: Member,
    source: IPv4Address,
    ports: Ports,
    trace: _Trace,
    kind: str,
) -> None:
    """From the connector of `network` to an app host and back: its filters, its route."""
    breaks = "remote access hop 6" if kind == "remote-access" else "site-to-site hop 6"
    back = "remote access hop 7" if kind == "remote-access" else "site-to-site hop 7"
    up = "remote access hop 2" if kind == "remote-access" else "site-to-site hop 2"
    if not _connector_hops(trace, network, obs, up):
        return
    seen = _seen_source(network, obs, source)
    nat = "" if seen == source else f" (NAT: the app sees {seen})"
    trace.add(Hop("source seen by the app", True, f"{seen}{nat}"))
    connector_subnet = obs.connector.subnet if obs.connector else ""
    crossing = connector_subnet != member.subnet
    connector_ip = (
        IPv4Address(obs.connector.private_ip)
        if obs.connector and obs.connector.private_ip
        else seen
    )
    member_ip = IPv4Address(member.address)
    if not _edge(trace, obs, connector_subnet, False, member_ip, ports, breaks, crossing):
        return
    if not _edge(trace, obs, member.subnet, True, seen, ports, breaks, crossing):
        return
    if not _app_layer(trace, network, obs, group, seen, ports, breaks, member):
        return
    answer = Ports(ports.protocol, EPHEMERAL.first, EPHEMERAL.last) if ports.first else ports
    if not _edge(trace, obs, member.subnet, False, seen, answer, back, crossing):
        return
    if not _edge(trace, obs, connector_subnet, True, member_ip, answer, back, crossing):
        return
    if seen != source or not crossing and seen == connector_ip:
        trace.add(Hop("route back", True, f"the answer goes to the connector itself ({seen})"))
        return
    _route_back(trace, obs, member.subnet, seen, back)


def _service_hop(
    trace: _Trace,
    network: Network,
    service: ObservedService | None,
    address: IPv4Address,
    breaks: str,
) -> bool:
    if service is None:
        return True
    found = service.network(network.name)
    if found is None:
        return trace.add(Hop("VPN service", False, f"no network {network.name} on the service",
                             breaks, "apply makes it", True))  # fmt: skip
    if not any(address in r.subnet for r in found.routes):
        return trace.add(Hop("VPN service", False,
                             f"network {network.name} has no route for {address}",
                             breaks, "apply adds the route", True))  # fmt: skip
    ours = [c for c in found.connectors if c.name == f"cp-{network.name}"]
    if not ours or ours[0].status != "ONLINE":
        state = ours[0].status if ours else "none of ours"
        return trace.add(Hop("VPN service", False, f"connector of {network.name}: {state}",
                             "remote access hop 2", "the connector VM must dial in "
                             "(status shows why it cannot)", False))  # fmt: skip
    return trace.add(Hop("VPN service", True,
                         f"routes {address} to {network.name}'s connector ({ours[0].address})"))  # fmt: skip


@dataclass(frozen=True)
class FlowQuery:
    """`--flow vpn->hq:10.0.1.5:tcp/443`: from VPN clients (or a network) to a network, to
    one host (an address) or one app group, on one port spec (default: the group's)."""

    source: str
    network: str
    destination: str | None = None
    ports: Ports | None = None


def parse_flow(text: str) -> FlowQuery:
    """SOURCE->NETWORK[:HOST_OR_GROUP][:PORTS]; bad input names `--flow` and the value."""
    from .errors import SpecError
    from .spec import parse_ports

    source, arrow, rest = text.partition("->")
    parts = rest.split(":") if arrow else []
    if not arrow or not source or not parts or not parts[0] or len(parts) > 3:
        raise SpecError(
            "--flow", f"{text!r} is not SOURCE->NETWORK[:HOST_OR_GROUP][:PORTS] "
            "(e.g. vpn->hq:10.0.1.5:tcp/443)"
        )  # fmt: skip
    ports = parse_ports("--flow", parts[2]) if len(parts) == 3 else None
    return FlowQuery(source, parts[0], parts[1] if len(parts) > 1 and parts[1] else None, ports)


def flow_query(topology: Topology, only: str | None) -> FlowQuery | None:
    """`--flow` as a query (None: plain text to match flow names), its names checked against
    the file: bad input, said before anything is read."""
    if not only or "->" not in only:
        return None
    from .errors import SpecError

    query = parse_flow(only)
    known = {n.name for n in topology.networks} | {"vpn"}
    for name, what in ((query.source, "source"), (query.network, "network")):
        if name not in known:
            raise SpecError("--flow", f"{name!r} ({what}) is not 'vpn' or a network of the file")
    return query


def _wanted(query: FlowQuery | None, source: str, network: str, group: str, host: str) -> bool:
    if query is None:
        return True
    return (
        query.source == source
        and query.network == network
        and query.destination in (None, group, host)
    )


def diagnose(
    topology: Topology,
    observed: Mapping[str, Observed],
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    service: ObservedService | None = None,
    only: str | None = None,
    vpn_client: IPv4Address | None = None,
    bootstraps: Mapping[str, str] | None = None,
) -> tuple[FlowReport, ...]:
    """Every flow the topology implies, or those `only` asks for (a `--flow` query, or text
    the flow's name contains); VPN clients are traced with `vpn_client` (default: an address
    of the VPN range)."""
    reports: list[FlowReport] = []
    vpn_client = vpn_client or _sample_address(topology.vpn_subnet, 1000)
    query = flow_query(topology, only)
    if query is not None:
        only = None
    for network in topology.managed:
        obs = observed[network.name]
        for group in network.app_security_groups:
            members = obs.members.get(group, ())
            ports = (query.ports if query and query.ports else None) or _ports_of(network, group)
            if query is not None:
                members = tuple(m for m in members if query.destination in (None, group, m.address))
            if not members and query is not None:
                continue
            if not members:
                reports.append(FlowReport(f"VPN clients -> {network.name} {group}",
                                          "remote-access",
                                          notes=(f"app group {group} has no hosts to reach",)))  # fmt: skip
                continue
            for member in _one_per_subnet(members):
                name = f"VPN clients ({vpn_client}) -> {network.name} {group} ({member.address}) {ports}"
                trace = _Trace(bootstraps=bootstraps or {})
                if _service_hop(trace, network, service, IPv4Address(member.address),
                                "remote access hop 1"):  # fmt: skip
                    _to_app(network, obs, group, member, vpn_client, ports, trace, "remote-access")
                if _wanted(query, "vpn", network.name, group, member.address):
                    reports.append(FlowReport(name, "remote-access", tuple(trace.hops)))
                c = network.connector
                keeps = c is not None and (not c.nat or c.nat_preserve_source)
                if keeps and (
                    query is None or (query.source, query.network) == (network.name, "vpn")
                ):
                    reports.append(_unsolicited(network, obs, group, member, vpn_client,
                                                bootstraps or {}))  # fmt: skip
                for peer in topology.networks:
                    if peer.name == network.name or not subnets.get(peer.name):
                        continue
                    if not _wanted(query, peer.name, network.name, group, member.address):
                        continue
                    source = _sample_address(subnets[peer.name][0])
                    name = f"{peer.name} ({source}) -> {network.name} {group} ({member.address}) {ports}"
                    trace = _Trace(bootstraps=bootstraps or {})
                    if peer.managed and not _peer_side(trace, peer, observed[peer.name], member):
                        reports.append(FlowReport(name, "site-to-site", tuple(trace.hops)))
                        continue
                    if _service_hop(trace, network, service, IPv4Address(member.address),
                                    "site-to-site hop 1"):  # fmt: skip
                        _to_app(network, obs, group, member, source, ports, trace, "site-to-site")
                    reports.append(FlowReport(name, "site-to-site", tuple(trace.hops)))
        egress = network.connector is not None and network.connector.egress
        if egress and (query is None or (query.source, query.network) == ("vpn", network.name)
                       and query.destination in (None, "internet")):  # fmt: skip
            reports.append(_egress(network, obs, bootstraps or {}))
    if only:
        reports = [r for r in reports if only in r.flow]
    return tuple(reports)


def _unsolicited(
    network: Network, obs: Observed, group: str, member: Member, client: IPv4Address,
    bootstraps: Mapping[str, str],
) -> FlowReport:  # fmt: skip
    """An app host opens a connection to a VPN client (the seed's Option 1): its route table
    must send the VPN range to the connector, its subnet's edge must let the packet out and
    the answer in, and the connector must forward it into the tunnel."""
    trace = _Trace(bootstraps=bootstraps)
    flow = f"{network.name} {group} ({member.address}) -> VPN clients ({client}) {SAMPLE}"
    if not _connector_hops(trace, network, obs, "remote access hop 2"):
        return FlowReport(flow, "unsolicited", tuple(trace.hops))
    host = IPv4Address(member.address)
    connector_subnet = obs.connector.subnet if obs.connector else ""
    crossing = connector_subnet != member.subnet
    answer = Ports(SAMPLE.protocol, EPHEMERAL.first, EPHEMERAL.last)
    steps = (
        (member.subnet, False, client, SAMPLE, "remote access hop 7"),
        (connector_subnet, True, host, SAMPLE, "remote access hop 7"),
        (connector_subnet, False, host, answer, "remote access hop 6"),
        (member.subnet, True, client, answer, "remote access hop 6"),
    )
    for subnet, inbound, peer, ports, breaks in steps:
        if not _edge(trace, obs, subnet, inbound, peer, ports, breaks, crossing):
            return FlowReport(flow, "unsolicited", tuple(trace.hops))
    _route_back(trace, obs, member.subnet, client, "remote access hop 7")
    return FlowReport(flow, "unsolicited", tuple(trace.hops))


def _peer_side(trace: _Trace, peer: Network, obs: Observed, member: Member) -> bool:
    """A host of the peer network sends to the app: its route table must send it to the
    peer's connector, which must forward (site-to-site hops 2 and 3)."""
    if not _connector_hops(trace, peer, obs, "site-to-site hop 2"):
        return False
    sub = next((s for s in obs.subnets if s.route_table), None)
    if sub is None:
        return True
    return _route_back(trace, obs, sub.id, IPv4Address(member.address), "site-to-site hop 3")


def _one_per_subnet(members: tuple[Member, ...]) -> list[Member]:
    seen: dict[str, Member] = {}
    for m in members:
        seen.setdefault(m.subnet, m)
    return list(seen.values())


def _egress(network: Network, obs: Observed, bootstraps: Mapping[str, str]) -> FlowReport:
    trace = _Trace(bootstraps=bootstraps)
    flow = f"VPN clients -> the internet through {network.name}"
    if not _connector_hops(trace, network, obs, "egress hop 3"):
        return FlowReport(flow, "egress", tuple(trace.hops))
    c = obs.connector
    assert c is not None
    subnet = obs.subnet(c.subnet)
    if subnet is None or subnet.way_out is WayOut.NONE:
        trace.add(Hop("way out", False, f"{c.subnet} has no route to the internet", "egress hop 4",
                      "give the connector's subnet a 0.0.0.0/0 route", False))  # fmt: skip
    elif subnet.way_out is WayOut.INTERNET_GATEWAY and not c.public_ip:
        trace.add(Hop("way out", False, "no public address behind an internet gateway",
                      "egress hop 4", "apply replaces the connector", True))  # fmt: skip
    else:
        trace.add(Hop("way out", True, f"{c.subnet} -> {subnet.via}, NAT on the connector"))
        internet = IPv4Address("198.51.100.80")  # documentation address: any
        _edge(trace, obs, c.subnet, False, internet, SAMPLE, "egress hop 4", True)
        if trace.hops[-1].ok:
            _edge(trace, obs, c.subnet, True, internet, EPHEMERAL, "egress hop 5", True)
    return FlowReport(flow, "egress", tuple(trace.hops))
