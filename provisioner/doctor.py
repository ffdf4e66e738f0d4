"""`provision doctor`: every flow the topology implies, traced hop by hop through what the
clouds hold, both directions, each filter layer with its cloud's semantics. Pure: it reads
the observed state (and the VPN service's) and decides; nothing is changed.

A flow's source is a range, cut at every boundary what the networks hold draws inside it
(`split`); each piece is traced, and the verdict per flow is OK only if every piece is, else
DROPPED for the pieces that die (at the first hop that fails, with the rule or route that
drops them, the hop of docs/flows.md it breaks, and the fix, and whether apply makes it), or
UNKNOWN where something could not be read. How one layer or one route table decides is
layers.py's; a layer sits at a subnet's edge (it filters what enters or leaves the subnet,
not what stays in it) or at a host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from ipaddress import IPv4Address, IPv4Network, collapse_addresses

from .helptext import FLOW_GRAMMAR  # what --help and the README say too
from .layers import decide, longest_match, security_group
from .model import (
    ALL_TRAFFIC,
    AppGroup,
    ConnectorState,
    FilterLayer,
    FilterRule,
    Member,
    Network,
    Observed,
    ObservedService,
    Ports,
    Topology,
    Verdict,
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
    unknown: bool = False  # not judged (not read): neither passes nor drops

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"hop": self.what, "ok": self.ok, "detail": self.detail}
        if self.unknown:
            out["unknown"] = True
        if not self.ok:
            out.update(breaks=self.breaks, fix=self.fix, apply_fixes=self.apply_fixes)
        return out


@dataclass(frozen=True)
class Piece:
    """A part of a flow's source range whose packets all meet the same fate: the ranges it
    stands for (the source split at every boundary a route, a rule or a service route draws
    inside it), and the hops one packet of it takes."""

    ranges: tuple[IPv4Network, ...]
    hops: tuple[Hop, ...]
    share: str = "all of it"  # of the flow's source

    @property
    def verdict(self) -> Verdict:
        if any(not h.ok and not h.unknown for h in self.hops):
            return Verdict.DROPPED
        return Verdict.UNKNOWN if any(h.unknown for h in self.hops) else Verdict.OK

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    @property
    def dropped_at(self) -> Hop | None:
        """The hop that drops it, or the one that could not be judged."""
        return next((h for h in self.hops if not h.ok and not h.unknown), None) or next(
            (h for h in self.hops if h.unknown), None
        )

    def to_dict(self) -> dict[str, object]:
        dropped = self.dropped_at
        return {
            "source": [str(r) for r in self.ranges],
            "share": self.share,
            "verdict": self.verdict,
            "dropped_at": dropped.to_dict() if dropped else None,
            "hops": [h.to_dict() for h in self.hops],
        }


@dataclass(frozen=True)
class FlowReport:
    """One flow, judged over its whole source range: OK only if every piece is."""

    flow: str  # "VPN clients (100.96.0.0/11) -> hq sg-1 (10.0.1.5) tcp/443"
    kind: str  # remote-access | unsolicited | site-to-site | egress (docs/flows.md)
    pieces: tuple[Piece, ...] = ()
    notes: tuple[str, ...] = ()
    source: str = ""  # whose range the pieces are of ("branch", "VPN clients")
    # how to trace it by hand when it could not be judged: a --flow for this very flow
    trace: str = ""

    @property
    def verdict(self) -> Verdict:
        """OK, DROPPED (some piece dies), or UNKNOWN: nothing could be traced (no host to
        reach, nothing read)."""
        verdicts = {p.verdict for p in self.pieces}
        if Verdict.DROPPED in verdicts:
            return Verdict.DROPPED
        return Verdict.UNKNOWN if not self.pieces or Verdict.UNKNOWN in verdicts else Verdict.OK

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    @property
    def dropped(self) -> tuple[Piece, ...]:
        """The pieces that die, then those that could not be judged."""
        return tuple(p for p in self.pieces if p.verdict is Verdict.DROPPED) + tuple(
            p for p in self.pieces if p.verdict is Verdict.UNKNOWN
        )

    @property
    def hops(self) -> tuple[Hop, ...]:
        """The first dropped piece's hops, else those of the (first) piece that passes."""
        first = (self.dropped or self.pieces or (Piece((), ()),))[0]
        return first.hops

    @property
    def dropped_at(self) -> Hop | None:
        first = (self.dropped or self.pieces or (Piece((), ()),))[0]
        return first.dropped_at

    def to_dict(self) -> dict[str, object]:
        dropped = self.dropped_at
        return {
            "flow": self.flow,
            "kind": self.kind,
            "verdict": self.verdict,
            "dropped_at": dropped.to_dict() if dropped else None,
            "hops": [h.to_dict() for h in self.hops],
            "pieces": [p.to_dict() for p in self.pieces],
            "notes": list(self.notes),
        }


# --- ranges --------------------------------------------------------------------------------


def split(ranges: Iterable[IPv4Network], cuts: Iterable[IPv4Network]) -> list[IPv4Network]:
    """`ranges` cut at every boundary `cuts` draw inside them: each piece is, for every cut,
    inside it or apart from it, so one packet of a piece stands for all of it."""
    pieces = list(collapse_addresses(ranges))
    for cut in sorted(set(cuts), key=lambda c: c.prefixlen):
        out: list[IPv4Network] = []
        for p in pieces:
            if cut.prefixlen > p.prefixlen and cut.subnet_of(p):
                out += [*p.address_exclude(cut), cut]
            else:
                out.append(p)
        pieces = out
    return sorted(pieces)


def _cuts(obs: Observed, service: ObservedService | None) -> set[IPv4Network]:
    """Every boundary what the network holds draws: its ranges and subnets, every route of
    every table, every rule's peer of every layer, what named peers stand for, the
    connector's own address, and the VPN service's routes."""
    out = set(obs.cidrs) | {s.cidr for s in obs.subnets if s.cidr is not None}
    for table in obs.route_tables:
        out |= {r.destination for r in table.routes}
    layers = [*obs.subnet_filters.values(), *(x for xs in obs.host_filters.values() for x in xs)]
    for layer in layers:
        out |= {r.peer for r in layer.rules if isinstance(r.peer, IPv4Network)}
    for group in obs.app_groups:
        out |= {r.source for r in (*group.rules, *(group.egress or ()))
                if isinstance(r.source, IPv4Network)}  # fmt: skip
    for nets in obs.peer_names.values():
        out |= set(nets)
    if obs.connector is not None and obs.connector.private_ip:
        out.add(IPv4Network(obs.connector.private_ip))
    if service is not None:
        out |= {r.subnet for n in service.networks for r in n.routes}
    return out


_SHARES = {Fraction(1, 2): "half of it", Fraction(1, 4): "a quarter of it",
           Fraction(3, 4): "three quarters of it", Fraction(1, 8): "an eighth of it"}  # fmt: skip


def _share(part: int, whole: int) -> str:
    if part == whole:
        return "all of it"
    if part == 1:
        return f"one address of {whole}"
    share = Fraction(part, whole)
    return _SHARES.get(share) or f"{float(share) * 100:.3g} % of it"


def _show(net: IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


# --- flows -------------------------------------------------------------------------------


@dataclass
class _Trace:
    hops: list[Hop] = field(default_factory=list)
    # network -> the fingerprint of the bootstrap the file wants (a connector running another
    # one forwards as the file no longer says)
    bootstraps: Mapping[str, str] = field(default_factory=dict)

    def add(self, hop: Hop) -> bool:
        """Records the hop; False when the packet goes no further (a hop that could not be
        judged lets the trace go on: what follows may still drop it)."""
        self.hops.append(hop)
        return hop.ok or hop.unknown


@dataclass(frozen=True)
class _Dest:
    """Where a flow goes in a network: one host, the app group it is traced as (None: an
    address the query named, in no app group), the subnet it is in."""

    address: IPv4Address
    subnet: str
    group: str | None


@dataclass(frozen=True)
class _Spec:
    """One flow before it is traced: what the query matches against."""

    kind: str
    source: str  # vpn, a network's name, internet
    label: str  # how the source is named ("VPN clients", "branch")
    ranges: tuple[IPv4Network, ...]
    to: str  # a network's name, vpn, internet
    network: str  # whose hosts and connector the flow meets first (the app's network)
    dest: _Dest | None = None
    ports: Ports = SAMPLE
    site: str | None = None  # app -> site: the site (a network of the file)
    implied: bool = True  # False: traced only when a query asks (the file does not promise it)

    @property
    def name(self) -> str:
        ranges = ", ".join(_show(r) for r in self.ranges)
        where = f"{self.dest.group or 'host'} ({self.dest.address})" if self.dest else ""
        if self.kind == "egress":
            return f"{self.label} ({ranges}) -> the internet through {self.network}"
        if self.kind == "unsolicited":
            return f"{self.network} {where} -> VPN clients ({ranges}) {self.ports}"
        if self.site is not None:
            return f"{self.network} {where} -> {self.site} ({ranges}) {self.ports}"
        return f"{self.label} ({ranges}) -> {self.network} {where} {self.ports}"


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
    if wanted and c.bootstrap and c.bootstrap != wanted:
        return trace.add(Hop(f"connector of {network.name}", False,
                             f"{c.instance} runs an older bootstrap than the file says (NAT, "
                             "subnets, image or interface): what it forwards, and as whom, is "
                             "not what the file says", "remote access hop 5",
                             "apply replaces it", True))  # fmt: skip
    return trace.add(Hop(f"connector of {network.name}", True,
                         f"{c.instance} running, forwarding, at {c.private_ip}"))  # fmt: skip


def _seen_source(network: Network, obs: Observed, source: IPv4Network) -> IPv4Network:
    """What the app sees as the source: the connector's own address when it NATs this
    traffic, else the real one."""
    c = network.connector
    assert c is not None
    local = any(source.subnet_of(s) for s in obs.cidrs)
    if (
        c.nat
        and (not c.nat_preserve_source or local)
        and obs.connector
        and obs.connector.private_ip
    ):
        return IPv4Network(obs.connector.private_ip)
    return source


def _edge(
    trace: _Trace,
    obs: Observed,
    subnet: str,
    inbound: bool,
    peer: IPv4Network,
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
        return trace.add(
            Hop(layer.name, True, f"{subnet}: {ports} {way} {_show(peer)} allowed by {rule}")
        )
    why = f"by {rule}" if rule else "by no rule (the default deny)"
    fix = (
        f"allow {ports} {'inbound from' if inbound else 'outbound to'} {_show(peer)} in "
        f"{layer.name} before {'rule ' + str(rule.order) if rule else 'its default deny'}"
    )
    return trace.add(Hop(layer.name, False, f"{subnet}: {ports} {way} {_show(peer)} dropped {why}",
                         breaks, fix, False))  # fmt: skip


def _route_back(trace: _Trace, obs: Observed, subnet: str, to: IPv4Network, breaks: str) -> bool:
    """The answer's route from the app's subnet: the longest prefix match must reach the
    connector (or stay local when the answer goes to an address of the network)."""
    if any(to.subnet_of(c) for c in obs.cidrs):
        return trace.add(Hop("route back", True, f"{_show(to)} is local to the network"))
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
        return trace.add(Hop("route back", False, f"{table.id} has no route for {_show(to)}",
                             breaks, "apply adds the route to the connector", True))  # fmt: skip
    ours_for = [r for r in table.routes if r.target == ours and to.subnet_of(r.destination)]
    if ours_for:
        fix = (f"remove or narrow the route {best[0]} -> {best[1]}: it is more specific than "
               f"ours ({ours_for[0].destination}); apply does not touch routes it did not make")  # fmt: skip
        return trace.add(Hop("route back", False,
                             f"{table.id}: {best[0]} -> {best[1]} takes {_show(to)} away from "
                             "the connector", breaks, fix, False))  # fmt: skip
    return trace.add(Hop("route back", False, f"{table.id}: {_show(to)} goes to {best[1]} "
                         f"({best[0]})", breaks, "apply adds the route to the connector (a "
                         "conflict if it is this very destination: --replace-conflicting-routes)",
                         True))  # fmt: skip


def _names(obs: Observed, peer: IPv4Network) -> frozenset[str]:
    """What else a peer is, to the cloud: the named peers it falls in."""
    named = {tag for tag, nets in obs.peer_names.items() if any(peer.subnet_of(n) for n in nets)}
    return frozenset(named) | ({"Internet"} if peer.is_global else frozenset()) | {"*"}


def _host_groups(obs: Observed, dest: _Dest) -> list[AppGroup]:
    """The app groups of the file the host is in (AWS: its security groups we read)."""
    address = str(dest.address)
    return [
        g for g in obs.app_groups
        if g.id == dest.group or any(m.address == address for m in obs.members.get(g.id, ()))
    ]  # fmt: skip


def _app_layer(
    trace: _Trace,
    network: Network,
    obs: Observed,
    dest: _Dest,
    seen: IPv4Network,
    ports: Ports,
    breaks: str,
) -> bool:
    """The host's own layers (Azure, GCP, OCI), or its security groups (AWS)."""
    layers = obs.host_filters.get(str(dest.address))
    if layers:
        return _host_layers(trace, network, obs, layers, dest.group, seen, ports, breaks)
    group = dest.group
    groups = _host_groups(obs, dest)
    if not groups:
        if group is not None:
            return trace.add(Hop(f"app group {group}", False, "not found in the network", breaks,
                                 "name an existing group in app_security_groups", False))  # fmt: skip
        return trace.add(Hop(f"host {dest.address}", False, "its own filters were not read: it "
                             "is in no app group of the file", breaks, "trace a host of an app "
                             "group, or add its group to app_security_groups", False, unknown=True))  # fmt: skip
    ip = obs.connector.private_ip if obs.connector else None
    layer = security_group(
        " ".join(g.id for g in groups), tuple(r for g in groups for r in g.rules), ip
    )
    ok, rule = decide(layer, True, seen, ports)
    if ok:
        return trace.add(Hop(layer.name, True, f"{ports} from {_show(seen)} admitted by {rule}"))
    managed = group in network.app_security_groups
    return trace.add(Hop(layer.name, False, f"no rule admits {ports} from {_show(seen)}", breaks,
                         f"admit {_show(seen)} on {ports}" + (" (apply adds it)" if managed else ""),
                         managed))  # fmt: skip


def _host_layers(
    trace: _Trace,
    network: Network,
    obs: Observed,
    layers: tuple[FilterLayer, ...],
    group: str | None,
    seen: IPv4Network,
    ports: Ports,
    breaks: str,
) -> bool:
    """The host's own layers, in the order a packet meets them."""
    names = _names(obs, seen)
    for layer in layers:
        ok, rule = decide(layer, True, seen, ports, names)
        if not ok:
            # apply adds our allow when nothing but the cloud's defaults decided
            managed = group in network.app_security_groups and (rule is None or rule.default)
            why = f"by {rule}" if rule else "by no rule"
            return trace.add(Hop(layer.name, False, f"{ports} from {_show(seen)} dropped {why}",
                                 breaks, f"admit {_show(seen)} on {ports} in {layer.name} "
                                 f"before {_rule_ref(rule) if rule else 'its defaults'}",
                                 managed))  # fmt: skip
        trace.add(Hop(layer.name, True, f"{ports} from {_show(seen)} admitted by {rule}"))
        if rule is not None and rule.stateless:  # its answer is judged on its own
            answer = (
                Ports(ports.protocol, EPHEMERAL.first, EPHEMERAL.last) if ports.first else ports
            )
            back_ok, back = decide(layer, False, seen, answer, names)
            if not back_ok:
                return trace.add(Hop(layer.name, False,
                                     f"the answer {answer} to {_show(seen)} is let out by no "
                                     f"rule (the rule that admits the request, {rule}, is "
                                     "stateless)", breaks.replace("6", "7"),
                                     f"allow {answer} out to {_show(seen)} in {layer.name}, or "
                                     "make the rule stateful", False))  # fmt: skip
    return True


def _group_egress(
    trace: _Trace, obs: Observed, dest: _Dest, peer: IPv4Network, ports: Ports, breaks: str
) -> bool:
    """The host's security groups' egress rules (AWS), for a connection the host opens."""
    groups = [g for g in _host_groups(obs, dest) if g.egress is not None]
    if not groups:
        return True
    layer = FilterLayer(f"security group {' '.join(g.id for g in groups)} (egress)", False, True,
                        tuple(FilterRule(0, True, False, r.source, r.ports, str(r))
                              for g in groups for r in g.egress or ()))  # fmt: skip
    ok, rule = decide(layer, False, peer, ports)
    if ok:
        return trace.add(Hop(layer.name, True, f"{ports} out to {_show(peer)} allowed by {rule}"))
    return trace.add(Hop(layer.name, False, f"no egress rule lets {ports} out to {_show(peer)}",
                         breaks, f"allow {ports} outbound to {_show(peer)} in "
                         f"{' '.join(g.id for g in groups)}", False))  # fmt: skip


def _connector_egress(
    trace: _Trace, obs: Observed, peer: IPv4Network, ports: Ports, breaks: str
) -> bool:
    """The connector's own group's egress rules (AWS): what it forwards leaves through them."""
    rules = obs.connector_egress
    if rules is None:
        return True
    layer = FilterLayer("the connector's group (egress)", False, True,
                        tuple(FilterRule(0, True, False, r.source, r.ports, str(r))
                              for r in rules))  # fmt: skip
    ok, rule = decide(layer, False, peer, ports)
    if ok:
        return trace.add(Hop(layer.name, True, f"{ports} out to {_show(peer)} allowed by {rule}"))
    return trace.add(Hop(layer.name, False, f"no egress rule lets {ports} out to {_show(peer)}",
                         breaks, f"allow {ports} outbound to {_show(peer)} in the connector's "
                         "group (apply does not remove egress rules it did not make)", False))  # fmt: skip


def _to_app(
    network: Network,
    obs: Observed,
    dest: _Dest,
    source: IPv4Network,
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
    nat = "" if seen == source else f" (NAT: the app sees {_show(seen)})"
    trace.add(Hop("source seen by the app", True, f"{_show(seen)}{nat}"))
    host = IPv4Network(dest.address)
    if not _connector_egress(trace, obs, host, ports, breaks):
        return
    connector_subnet = obs.connector.subnet if obs.connector else ""
    crossing = connector_subnet != dest.subnet
    connector_ip = (
        IPv4Network(obs.connector.private_ip)
        if obs.connector and obs.connector.private_ip
        else seen
    )
    if not _edge(trace, obs, connector_subnet, False, host, ports, breaks, crossing):
        return
    if not _edge(trace, obs, dest.subnet, True, seen, ports, breaks, crossing):
        return
    if not _app_layer(trace, network, obs, dest, seen, ports, breaks):
        return
    answer = Ports(ports.protocol, EPHEMERAL.first, EPHEMERAL.last) if ports.first else ports
    if not _edge(trace, obs, dest.subnet, False, seen, answer, back, crossing):
        return
    if not _edge(trace, obs, connector_subnet, True, host, answer, back, crossing):
        return
    if seen != source or not crossing and seen == connector_ip:
        trace.add(Hop("route back", True,
                      f"the answer goes to the connector itself ({_show(seen)})"))  # fmt: skip
        return
    _route_back(trace, obs, dest.subnet, seen, back)


def _policy_hop(
    trace: _Trace,
    service: ObservedService,
    source: tuple[str, str | None],
    destination: tuple[str, str | None],
    what: str,
    breaks: str,
) -> bool:
    """The service's own filter: with the account's topology CUSTOM, an access group must let
    the source reach the destination, or the service refuses the packet before any cloud."""
    policy = service.policy
    if policy is None:
        return True
    if policy.error is not None:
        return trace.add(Hop("VPN service access groups", False,
                             f"not read ({policy.error})", breaks,
                             "give the API credential read access to settings and access "
                             "groups", False, unknown=True))  # fmt: skip
    if not policy.decides:
        return trace.add(Hop("VPN service access groups", True,
                             f"topology {policy.topology}: {what} is allowed"))  # fmt: skip
    got, groups = policy.admits(source, destination)
    named = ", ".join(repr(g) for g in groups)
    if got == "all":
        return trace.add(Hop("VPN service access groups", True, f"{what}: admitted by {named}"))
    if got == "part":
        return trace.add(Hop("VPN service access groups", True,
                             f"{what}: only in part ({named} names some user groups or "
                             "services): others are refused by the service"))  # fmt: skip
    return trace.add(Hop("VPN service access groups", False,
                         f"topology {policy.topology} and no access group lets {what}", breaks,
                         f"add an access group for {what} on the VPN service (the access policy "
                         "is the admin's: apply does not)", False))  # fmt: skip


def _service_id(service: ObservedService, name: str) -> str | None:
    found = service.network(name)
    return found.id if found else None


def _service_hop(
    trace: _Trace,
    network: Network,
    service: ObservedService | None,
    address: IPv4Network,
    breaks: str,
    source: tuple[str, str | None] = ("USER_GROUP", None),
    who: str = "VPN users",
) -> bool:
    if service is None:
        return True
    found = service.network(network.name)
    if found is None:
        return trace.add(Hop("VPN service", False, f"no network {network.name} on the service",
                             breaks, "apply makes it", True))  # fmt: skip
    if not _policy_hop(trace, service, source, ("NETWORK_SERVICE", found.id),
                       f"{who} reach network {network.name}", breaks):  # fmt: skip
        return False
    if not any(address.subnet_of(r.subnet) for r in found.routes):
        return trace.add(Hop("VPN service", False,
                             f"network {network.name} has no route for {_show(address)}",
                             breaks, "apply adds the route", True))  # fmt: skip
    ours = (
        [c for c in found.connectors if c.status == "ONLINE"]
        if not network.managed
        else [c for c in found.connectors if c.name == f"cp-{network.name}"]
    )
    if not ours or ours[0].status != "ONLINE":
        state = ours[0].status if ours else "none of ours"
        return trace.add(Hop("VPN service", False, f"connector of {network.name}: {state}",
                             "remote access hop 2", "the connector VM must dial in "
                             "(status shows why it cannot)", False))  # fmt: skip
    return trace.add(Hop("VPN service", True,
                         f"routes {_show(address)} to {network.name}'s connector ({ours[0].address})"))  # fmt: skip


def _unsolicited(
    network: Network, obs: Observed, service: ObservedService | None, dest: _Dest,
    client: IPv4Network, trace: _Trace, site: Network | None = None,
) -> None:  # fmt: skip
    """An app host opens a connection to a VPN client (the seed's Option 1), or to a host of
    another site: its security groups must let it out, its route table must send the range
    to the connector, its subnet's edge must let the packet out and the answer in, the
    connector must forward it into the tunnel, and the service must take it there."""
    hop = "site-to-site hop" if site is not None else "remote access hop"
    if not _connector_hops(trace, network, obs, f"{hop} 2"):
        return
    host = IPv4Network(dest.address)
    if not _group_egress(trace, obs, dest, client, SAMPLE, f"{hop} 7"):
        return
    connector_subnet = obs.connector.subnet if obs.connector else ""
    crossing = connector_subnet != dest.subnet
    answer = Ports(SAMPLE.protocol, EPHEMERAL.first, EPHEMERAL.last)
    steps = (
        (dest.subnet, False, client, SAMPLE, f"{hop} 7"),
        (connector_subnet, True, host, SAMPLE, f"{hop} 7"),
        (connector_subnet, False, host, answer, f"{hop} 6"),
        (dest.subnet, True, client, answer, f"{hop} 6"),
    )
    for subnet, inbound, peer, ports, breaks in steps:
        if not _edge(trace, obs, subnet, inbound, peer, ports, breaks, crossing):
            return
    if not _route_back(trace, obs, dest.subnet, client, f"{hop} 7"):
        return
    if service is None:
        return
    source = ("NETWORK_SERVICE", _service_id(service, network.name))
    if site is None:
        _policy_hop(trace, service, source, ("USER_GROUP", None),
                    f"network {network.name} reaches VPN users", f"{hop} 7")  # fmt: skip
        return
    _service_hop(trace, site, service, client, f"{hop} 7", source, f"network {network.name}")


def _peer_side(trace: _Trace, peer: Network, obs: Observed, dest: _Dest) -> bool:
    """A host of the peer network sends to the app: its route table must send it to the
    peer's connector, which must forward (site-to-site hops 2 and 3)."""
    if not _connector_hops(trace, peer, obs, "site-to-site hop 2"):
        return False
    sub = next((s for s in obs.subnets if s.route_table), None)
    if sub is None:
        return True
    return _route_back(trace, obs, sub.id, IPv4Network(dest.address), "site-to-site hop 3")


def _egress(
    network: Network, obs: Observed, service: ObservedService | None, trace: _Trace
) -> None:
    if service is not None:
        found = service.network(network.name)
        if found is not None and not found.egress:
            trace.add(Hop("VPN service", False, f"network {network.name} is not the VPN's way "
                          "to the internet (egress off)", "egress hop 1", "apply sets it", True))  # fmt: skip
            return
    if not _connector_hops(trace, network, obs, "egress hop 3"):
        return
    c = obs.connector
    assert c is not None
    subnet = obs.subnet(c.subnet)
    if subnet is None or subnet.way_out is WayOut.NONE:
        trace.add(Hop("way out", False, f"{c.subnet} has no route to the internet", "egress hop 4",
                      "give the connector's subnet a 0.0.0.0/0 route", False))  # fmt: skip
        return
    if subnet.way_out is WayOut.INTERNET_GATEWAY and not c.public_ip:
        trace.add(Hop("way out", False, "no public address behind an internet gateway",
                      "egress hop 4", "apply replaces the connector", True))  # fmt: skip
        return
    trace.add(Hop("way out", True, f"{c.subnet} -> {subnet.via}, NAT on the connector"))
    internet = IPv4Network("198.51.100.80/32")  # documentation address: any
    if not _connector_egress(trace, obs, internet, SAMPLE, "egress hop 4"):
        return
    if _edge(trace, obs, c.subnet, False, internet, SAMPLE, "egress hop 4", True):
        _edge(trace, obs, c.subnet, True, internet, EPHEMERAL, "egress hop 5", True)


# --- which flows -------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowQuery:
    """`--flow SOURCE->NETWORK[:HOST|GROUP][:PORTS]`: from `vpn`, `internet`, a network of the
    file (external sites included), or any address or range; to a network (or `vpn`: the app
    hosts' own connections to VPN clients; or `internet`: egress), to one host (any address
    of it: one in no app group is traced through its subnet's layers) or one app group, on
    one port spec (default: the group's)."""

    source: str
    network: str
    destination: str | None = None
    ports: Ports | None = None

    @property
    def source_range(self) -> IPv4Network | None:
        try:
            return IPv4Network(self.source)
        except ValueError:
            return None


def parse_flow(text: str) -> FlowQuery:
    """SOURCE->NETWORK[:HOST|GROUP][:PORTS]; bad input names `--flow` and the value."""
    from .errors import SpecError
    from .spec import parse_ports

    source, arrow, rest = text.partition("->")
    parts = rest.split(":") if arrow else []
    if not arrow or not source or not parts or not parts[0] or len(parts) > 3:
        raise SpecError("--flow", f"{text!r} is not {FLOW_GRAMMAR} (e.g. vpn->hq:10.0.1.5:tcp/443)")
    ports = parse_ports("--flow", parts[2]) if len(parts) == 3 else None
    return FlowQuery(source.strip(), parts[0].strip(),
                     parts[1].strip() if len(parts) > 1 and parts[1] else None, ports)  # fmt: skip


def flow_query(topology: Topology, only: str | None) -> FlowQuery | None:
    """`--flow` as a query (None: plain text to match flow names), its names checked against
    the file: bad input, said before anything is read."""
    if not only or "->" not in only:
        return None
    from .errors import SpecError

    query = parse_flow(only)
    names = {n.name for n in topology.networks}
    if query.source not in names | {"vpn", "internet"} and query.source_range is None:
        raise SpecError("--flow", f"{query.source!r} (source) is not vpn, internet, a network "
                        f"of the file ({', '.join(sorted(names))}) or an address or range")  # fmt: skip
    if query.network not in names | {"vpn", "internet"}:
        raise SpecError("--flow", f"{query.network!r} (network) is not a network of the file "
                        f"({', '.join(sorted(names))}), vpn or internet")  # fmt: skip
    if query.destination is not None and "/" in query.destination:
        raise SpecError("--flow", f"{query.destination!r} (host) is a range: name one address "
                        "or an app group")  # fmt: skip
    return query


def _owner(
    topology: Topology, subnets: Mapping[str, tuple[IPv4Network, ...]], net: IPv4Network
) -> str | None:
    """Whose a range is: vpn, a network's name, or None (the internet, or several)."""
    if net.subnet_of(topology.vpn_subnet):
        return "vpn"
    return next((n for n, nets in subnets.items() if any(net.subnet_of(x) for x in nets)), None)


def _host(obs: Observed, address: str) -> _Dest | None:
    """An address of the network as a destination: its subnet (by its range), and the app
    group it is a host of, if any."""
    try:
        ip = IPv4Address(address)
    except ValueError:
        return None
    subnet = next((s.id for s in obs.subnets if s.cidr is not None and ip in s.cidr), None)
    group = next(
        (g for g, ms in obs.members.items() if any(m.address == address for m in ms)), None
    )
    member_subnet = next(
        (m.subnet for ms in obs.members.values() for m in ms if m.address == address), None
    )
    where = member_subnet or subnet
    if where is None:
        return None
    return _Dest(ip, where, group)


def _specs(
    topology: Topology,
    observed: Mapping[str, Observed],
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    vpn: tuple[IPv4Network, ...],
    query: FlowQuery | None,
) -> tuple[list[_Spec], list[FlowReport | None]]:
    """Every flow the topology implies (a query's host added as a destination), and the flows
    that cannot be judged (an app group with no host)."""
    specs: list[_Spec] = []
    unknown: list[FlowReport | None] = []
    for network in topology.managed:
        obs = observed[network.name]
        dests: list[_Dest] = []
        for group in network.app_security_groups:
            members = obs.members.get(group, ())
            if not members:
                unknown.append(_no_host(topology, subnets, network.name, group, query, obs.unread))
            dests += [
                _Dest(IPv4Address(m.address), m.subnet, group) for m in _one_per_subnet(members)
            ]
        if query is not None and query.destination and query.network == network.name:
            asked = _host(obs, query.destination)
            if asked is not None and all(d.address != asked.address for d in dests):
                dests.append(asked)
        c = network.connector
        keeps = c is not None and (not c.nat or c.nat_preserve_source)
        for dest in dests:
            ports = _ports_of(network, dest.group) if dest.group else SAMPLE
            specs.append(_Spec("remote-access", "vpn", "VPN clients", vpn, network.name,
                               network.name, dest, ports))  # fmt: skip
            specs.append(_Spec("unsolicited", network.name, network.name, vpn, "vpn",
                               network.name, dest, implied=keeps))  # fmt: skip
            for peer in topology.networks:
                if peer.name == network.name or not subnets.get(peer.name):
                    continue
                specs.append(_Spec("site-to-site", peer.name, peer.name, subnets[peer.name],
                                   network.name, network.name, dest, ports))  # fmt: skip
                if not peer.managed and keeps:  # and the app's own connections to the site
                    specs.append(_Spec("site-to-site", network.name, network.name,
                                       subnets[peer.name], peer.name, network.name, dest,
                                       site=peer.name))  # fmt: skip
        if c is not None and c.egress:
            specs.append(_Spec("egress", "vpn", "VPN clients", vpn, "internet", network.name))
    return specs, unknown


def _rule_ref(rule: FilterRule) -> str:
    """A rule as advice names it: `rule NAME` (`rule 100`), or the cloud's own by its words
    (`the implied deny of all ingress (65535)`)."""
    name = rule.name or str(rule.order)
    return name if name.startswith("the ") else f"rule {name}"


def _no_host(
    topology: Topology,
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    network: str,
    group: str,
    query: FlowQuery | None,
    unread: str | None = None,
) -> FlowReport | None:
    """The flows to an app group with no host cannot be judged: one UNKNOWN report (from VPN
    clients; with a query, from what it asks), or None when the query asks for other flows."""
    note = (
        (f"app group {group} has no hosts to reach",) if unread is None
        else (f"the hosts and filters of {network} were not read ({unread})",)
    )  # fmt: skip
    opened = next((a.ports for a in topology.network(network).app_access if a.group == group),
                  (ALL_TRAFFIC,))  # fmt: skip
    ports = ",".join(str(p) for p in opened)
    trace = (f"put a server in {group}, or name a group that has one in "
             f"networks.{network}.app_security_groups; then provision doctor --flow "
             f"vpn->{network}:{group}:{ports}")  # fmt: skip
    if query is None:
        return FlowReport(
            f"VPN clients -> {network} {group}", "remote-access", notes=note, trace=trace
        )
    if query.network != network or query.destination not in (None, group):
        return None
    asked = query.source_range
    owner = _owner(topology, subnets, asked) if asked is not None else query.source
    if owner == "vpn":
        return FlowReport(
            f"VPN clients -> {network} {group}", "remote-access", notes=note, trace=trace
        )
    if owner is None or owner == network or owner == "internet":
        return None
    trace = trace.replace("vpn->", f"{query.source}->", 1)
    return FlowReport(
        f"{query.source} -> {network} {group}", "site-to-site", notes=note, trace=trace
    )


def _matches(spec: _Spec, query: FlowQuery | None) -> bool:
    if query is None:
        return True
    if query.destination is not None:
        if spec.dest is None and not (spec.kind == "egress" and query.destination == "internet"):
            return False
        if spec.dest is not None and query.destination not in (
            spec.dest.group,
            str(spec.dest.address),
        ):
            return False
    to = {spec.to, spec.network} if spec.kind == "egress" else {spec.to}
    if query.network not in to:
        return False
    asked = query.source_range
    if asked is not None:
        return any(asked.overlaps(r) for r in spec.ranges)
    if query.source == "internet":
        return spec.kind == "egress"
    return query.source == spec.source


def _restricted(spec: _Spec, query: FlowQuery | None) -> _Spec:
    """A spec whose source a query's range narrows: only what the two share."""
    asked = query.source_range if query else None
    if asked is None:
        return spec
    ranges = tuple(asked if asked.subnet_of(r) else r for r in spec.ranges if asked.overlaps(r))
    return replace(spec, ranges=ranges)


def diagnose(
    topology: Topology,
    observed: Mapping[str, Observed],
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    service: ObservedService | None = None,
    only: str | None = None,
    vpn_client: IPv4Address | IPv4Network | None = None,
    bootstraps: Mapping[str, str] | None = None,
) -> tuple[FlowReport, ...]:
    """Every flow the topology implies, or those `only` asks for (a `--flow` query, or text
    the flow's name contains), each judged over its whole source range (VPN clients: the VPN
    range, or `vpn_client`). A query that matches no flow is bad input naming what exists."""
    query = flow_query(topology, only)
    vpn = (IPv4Network(vpn_client),) if vpn_client is not None else (topology.vpn_subnet,)
    specs, unknown = _specs(topology, observed, subnets, vpn, query)
    asked = query is not None and query.network == "vpn"
    wanted = [_restricted(s, query) for s in specs if _matches(s, query) and (s.implied or asked)]
    cannot_judge = [u for u in unknown if u is not None]
    if query is not None and not wanted and not cannot_judge:
        from .errors import SpecError

        exist = sorted({f"{s.source}->{s.to}" for s in specs if s.implied})
        said = ", ".join(exist[:12]) + (" ..." if len(exist) > 12 else "")
        raise SpecError("--flow", f"{only!r} matches no flow of the file; its flows: "
                        f"{said or 'none (no app group has a host to reach)'}")  # fmt: skip
    reports = [
        _judge(topology, observed, service, spec, query, bootstraps or {}) for spec in wanted
    ]
    reports += cannot_judge
    if only and query is None:
        reports = [r for r in reports if only in r.flow]
    return tuple(reports)


def _judge(
    topology: Topology,
    observed: Mapping[str, Observed],
    service: ObservedService | None,
    spec: _Spec,
    query: FlowQuery | None,
    bootstraps: Mapping[str, str],
) -> FlowReport:
    """One flow over its source range: the range cut at every boundary the networks on its
    path draw, each piece traced, pieces that meet the same fate joined."""
    network = topology.network(spec.network)
    obs = observed[spec.network]
    ports = query.ports if query is not None and query.ports else spec.ports
    cuts = _cuts(obs, service)
    peer = topology.network(spec.source) if spec.source in observed else None
    if peer is not None and spec.kind == "site-to-site" and spec.site is None:
        cuts |= _cuts(observed[peer.name], None)
    pieces = split(spec.ranges, cuts) if spec.kind != "egress" else list(spec.ranges)
    fates: dict[tuple[object, ...], tuple[list[IPv4Network], tuple[Hop, ...]]] = {}
    for piece in pieces:
        trace = _Trace(bootstraps=bootstraps)
        _trace_one(network, obs, observed, service, spec, piece, ports, trace, topology)
        key = _fate(trace.hops, piece)
        fates.setdefault(key, ([], tuple(trace.hops)))[0].append(piece)
    whole = sum(r.num_addresses for r in spec.ranges)
    judged = tuple(
        Piece(tuple(collapse_addresses(ranges)), hops,
              _share(sum(r.num_addresses for r in ranges), whole))
        for ranges, hops in fates.values()
    )  # fmt: skip
    judged = tuple(sorted(judged, key=lambda p: (p.ok, p.ranges[0])))
    notes = (
        ()
        if spec.implied
        else (f"{network.name} NATs everything it forwards: the file does not promise this flow",)
    )
    return FlowReport(replace(spec, ports=ports).name, spec.kind, judged, notes, spec.label)


def _fate(hops: list[Hop], piece: IPv4Network) -> tuple[object, ...]:
    """What two pieces must share to be one: the hop that drops them, said of either."""
    dropped = next((h for h in hops if not h.ok and not h.unknown), None) or next(
        (h for h in hops if h.unknown), None
    )
    if dropped is None:
        return ("OK",)
    text = _show(piece)
    return (dropped.what, dropped.unknown, dropped.breaks,
            dropped.detail.replace(text, "*"), dropped.fix.replace(text, "*"))  # fmt: skip


def _trace_one(
    network: Network,
    obs: Observed,
    observed: Mapping[str, Observed],
    service: ObservedService | None,
    spec: _Spec,
    piece: IPv4Network,
    ports: Ports,
    trace: _Trace,
    topology: Topology,
) -> None:
    unread = next((o for o in (obs, observed.get(spec.source)) if o and o.unread), None)
    if unread is not None:
        trace.add(Hop(f"filters of {unread.network}", False, f"not read ({unread.unread})",
                      "", "give the credential the doctor's reads (docs/doctor.md: `provision "
                      "doctor`)", False, unknown=True))  # fmt: skip
        return
    if spec.kind == "egress":
        _egress(network, obs, service, trace)
        return
    assert spec.dest is not None
    host = IPv4Network(spec.dest.address)
    if spec.kind == "unsolicited":
        _unsolicited(network, obs, service, spec.dest, piece, trace)
        return
    if spec.site is not None:
        _unsolicited(network, obs, service, spec.dest, piece, trace, topology.network(spec.site))
        return
    if spec.kind == "remote-access":
        if _service_hop(trace, network, service, host, "remote access hop 1"):
            _to_app(network, obs, spec.dest, piece, ports, trace, "remote-access")
        return
    peer = topology.network(spec.source)
    if peer.managed and not _peer_side(trace, peer, observed[peer.name], spec.dest):
        return
    source = ("NETWORK_SERVICE", _service_id(service, peer.name)) if service else ("", None)
    if _service_hop(trace, network, service, host, "site-to-site hop 1", source,
                    f"network {peer.name}"):  # fmt: skip
        _to_app(network, obs, spec.dest, piece, ports, trace, "site-to-site")


def _ports_of(network: Network, group: str) -> Ports:
    for access in network.app_access:
        if access.group == group:
            first = access.ports[0]
            return SAMPLE if first == ALL_TRAFFIC else first
    return SAMPLE


def _one_per_subnet(members: tuple[Member, ...]) -> list[Member]:
    seen: dict[str, Member] = {}
    for m in members:
        seen.setdefault(m.subnet, m)
    return list(seen.values())
