"""One filter layer and one route table, as a cloud holds them, judged for a packet or a whole
range of them: what `provision doctor` traces every hop with, and what `status` asks of an app
group (the same decision for both).

Layers (`FilterLayer`): `union` (any allow rule admits: a security group) or `ordered` (the
first matching rule by order decides, deny included: a network ACL), stateful (the answer to
an admitted request passes) or stateless (the answer is judged on its own, to the client's
ephemeral ports).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from .model import (
    CONNECTOR_SOURCE,
    FilterLayer,
    FilterRule,
    IngressRule,
    Observed,
    Ports,
    RouteTable,
)


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


def longest_match(
    table: RouteTable, address: IPv4Address | IPv4Network
) -> tuple[IPv4Network, str] | None:
    """The route a table uses for `address` (or every address of a piece, which no route
    splits): the longest prefix among every route it holds."""
    net = IPv4Network(address) if isinstance(address, IPv4Address) else address
    best = None
    for r in table.routes:
        if net.subnet_of(r.destination) and (
            best is None or r.destination.prefixlen > best[0].prefixlen
        ):
            best = (r.destination, r.target if r.usable else f"{r.target} (blackhole)")
    return best
