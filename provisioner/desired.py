"""The desired state of a network, read against what the cloud holds: its own subnets, the
destinations its routes carry, the sources its groups admit, the connector the file asks for,
and what of the cloud the plan reads (the pair, the active connector, the selected tables).
Pure: no SDK, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Network

from . import capacity
from .errors import SpecError
from .model import (
    CONNECTOR_SOURCE,
    VPN_CLIENTS,
    ConnectorState,
    DesiredConnector,
    ForeignConnector,
    IngressRule,
    Network,
    Observed,
    ObservedConnector,
    ObservedRoute,
    ObservedSubnet,
    RouteState,
    RouteTable,
    Topology,
    WayOut,
    fingerprint,
    first_overlap,
)
from .spec import CLOUD_SCHEMAS, check_summaries

WHY_LAUNCH = (
    "a VM in the network that keeps the VPN tunnel open and forwards between it and the "
    "network: IPv4 forwarding on, rp_filter off (remote access hops 2 and 5, site-to-site hop 2)"
)


WHY_FORWARDING = (
    "the cloud drops packets not addressed to the VM itself unless its interface lets them "
    "through (remote access hop 4, egress hop 3)"
)


WHY_VPN_ROUTE = (
    "answers to VPN clients leave through this route table, which has no way to the VPN range "
    "but the connector (remote access hop 7)"
)


WHY_PEER_ROUTE = (
    "hosts here reach the other networks of the VPN only through the connector "
    "(site-to-site hops 3 and 7)"
)


WHY_APP_ACCESS_NAT = (
    "the connector NATs everything it forwards to the app, so packets come from the "
    "connector's own address, which a reference to its group admits (remote access hop 6)"
)


WHY_APP_ACCESS_KEPT = (
    "forwarded packets keep their source, and a reference to the connector's group matches "
    "only the connector's own address: the group admits each source by address "
    "(remote access hop 6, site-to-site hop 6)"
)


WHY_INGRESS = (
    "the connector admits what the network's hosts in this range send through it, to the VPN "
    "and to other networks (site-to-site hop 4)"
)


def local_subnets(
    topology: Topology, observed: Mapping[str, Observed]
) -> dict[str, tuple[IPv4Network, ...]]:
    """Each network's own subnets: as written, or the network's CIDRs read from the cloud.

    Subnets read from the cloud are checked for overlaps as the spec checks written ones.
    """
    out: dict[str, tuple[IPv4Network, ...]] = {}
    for n in topology.networks:
        if n.subnets is not None:
            out[n.name] = n.subnets
        else:
            out[n.name] = observed[n.name].cidrs
    every: list[tuple[str, IPv4Network]] = []
    for a, nets in out.items():
        for net in nets:
            if net.overlaps(topology.vpn_subnet):
                raise SpecError(
                    f"networks.{a}.subnets", f"'{net}' (read from the cloud) overlaps vpn_subnet"
                )
            every.append((a, net))
    check_summaries(topology.networks, out, topology.vpn_subnet)  # (against what was read)
    found = first_overlap(every)
    # (one network's own never overlap: the spec refuses it, a cloud's CIDRs do not)
    if found is not None:
        (a, net), (b, other) = every[found[0]], every[found[1]]
        raise SpecError(
            f"networks.{b}.subnets",
            f"'{other}' overlaps '{net}' of network {a} "
            "(give 'subnets' explicitly to choose what each network offers)",
        )
    return out


def routed_destinations(
    network: Network, topology: Topology, subnets: Mapping[str, tuple[IPv4Network, ...]]
) -> dict[IPv4Network, str]:
    """destination -> whose it is: the VPN range and every *other* network's subnets, never
    its own; the peers' as few prefixes as cover them (the network's `summarize`, and
    subnets that join exactly: see capacity.summarized)."""
    out: dict[IPv4Network, str] = {topology.vpn_subnet: VPN_CLIENTS}
    return out | capacity.summarized(peer_subnets(network, topology, subnets), network.summarize)


def peer_subnets(
    network: Network, topology: Topology, subnets: Mapping[str, tuple[IPv4Network, ...]]
) -> dict[IPv4Network, str]:
    return {
        s: f"network {peer.name}"
        for peer in topology.networks
        if peer.name != network.name
        for s in subnets[peer.name]
    }


def arriving_sources(
    network: Network, topology: Topology, subnets: Mapping[str, tuple[IPv4Network, ...]]
) -> tuple[IngressRule, ...]:
    """The sources of the packets the connector delivers to the network's hosts (all traffic).

    A connector that NATs everything delivers its own address, which a reference to its group
    matches. Otherwise (no NAT, or NAT with the seed's `! -d <local subnet>` exception) packets
    keep their source: a VPN client or a host of a peer network, which only an address rule
    matches: a group reference never does."""
    c = network.connector
    assert c is not None
    if c.nat and not c.nat_preserve_source:
        return (IngressRule(CONNECTOR_SOURCE, label="the connector, NATting everything"),)
    out = [IngressRule(topology.vpn_subnet, label=VPN_CLIENTS)]
    peers = capacity.summarized(peer_subnets(network, topology, subnets), network.summarize)
    out += [IngressRule(s, label=whose) for s, whose in peers.items()]
    return tuple(out)


def app_rules(
    network: Network, topology: Topology, subnets: Mapping[str, tuple[IPv4Network, ...]]
) -> dict[str, tuple[IngressRule, ...]]:
    """group -> the inbound rules it needs: every arriving source on each of its port specs."""
    sources = arriving_sources(network, topology, subnets)
    return {
        a.group: tuple(
            IngressRule(s.source, ports, ours=True, label=s.label)
            for s in sources
            for ports in a.ports
        )
        for a in network.app_access
    }


def desired_connector(
    network: Network,
    local: tuple[IPv4Network, ...],
    vpn: IPv4Network,
    public_address: bool = False,
    member: int = 0,
) -> DesiredConnector:
    """The connector to launch (of a pair: `member`). Its fingerprint covers what the bootstrap
    depends on: when it changes, the connector is replaced."""
    c = network.connector
    assert c is not None
    return DesiredConnector(
        public_address=public_address,
        member=member,
        ha=c.ha,
        network=network.name,
        subnet=c.subnets[member],
        size=c.size,
        image=c.image,
        profile=c.member_profile(member),
        nat=c.nat,
        nat_preserve_source=c.nat_preserve_source,
        local_subnets=local,
        lan_interface=c.lan_interface,
        fingerprint=bootstrap_fingerprint(network, local, vpn, ha=c.ha),
    )


def bootstrap_fingerprint(
    network: Network, local: tuple[IPv4Network, ...], vpn: IPv4Network, *, ha: bool
) -> str:
    c = network.connector
    assert c is not None
    return fingerprint(
        "v1",
        c.nat,
        c.nat_preserve_source,
        c.lan_interface,
        c.image,
        tuple(sorted(str(s) for s in local)),
        str(vpn),
        *(("ha",) if ha else ()),  # its bootstrap runs the pair's watchdog
    )


def connector_fingerprint(
    network: Network, local: tuple[IPv4Network, ...], vpn: IPv4Network
) -> str:
    return desired_connector(network, local, vpn).fingerprint


def check_against_cloud(network: Network, obs: Observed) -> None:
    """Ids in the spec that the cloud does not know: bad input, found on the first read."""
    assert network.connector is not None and network.location is not None
    where = network.location.describe()
    c = network.connector
    for i, subnet_id in enumerate(c.subnets):
        field = f"networks.{network.name}.connector." + (f"subnets[{i}]" if c.ha else "subnet")
        subnet = obs.subnet(subnet_id)
        if subnet is None:
            raise SpecError(field, f"{subnet_id!r} is not a subnet of {where}")
        if subnet.way_out is WayOut.NONE:
            # seed remote access step 3: the connector dials out to the VPN service
            table = f" in {subnet.route_table}" if subnet.route_table else ""
            state = "a blackhole" if subnet.via else "no 0.0.0.0/0 route"
            raise SpecError(
                field,
                f"{subnet.id!r} has {state}{table}: the connector could not reach the VPN "
                "service (give the subnet an internet or NAT gateway route, or choose one "
                "that has)",
            )
    known = {t.id for t in obs.route_tables}
    for i, t in enumerate(network.route_tables or ()):
        if t not in known:
            raise SpecError(
                f"networks.{network.name}.route_tables[{i}]",
                f"{t!r} is not a route table of {where}",
            )
    groups = {g.id for g in obs.app_groups}
    for i, g in enumerate(network.app_security_groups):
        if g not in groups:
            raise SpecError(
                f"networks.{network.name}.app_security_groups[{i}]",
                f"{g!r} is not a security group of {where}",
            )


def pair_of(obs: Observed) -> tuple[ObservedConnector, ...]:
    """Every connector of the network the provider found (newest first)."""
    if obs.connectors:
        return obs.connectors
    return (obs.connector,) if obs.connector is not None else ()


def active_connector(network: Network, obs: Observed) -> ObservedConnector | None:
    """Of the network's connectors, the one its routes lead to: the one holding the pair's
    front, where there is one; else the one most routes name (a pair's watchdog may have moved
    some and not yet all); none leading anywhere: the newest."""
    found = pair_of(obs)
    if len(found) < 2:
        return found[0] if found else None
    if obs.front is not None:
        holder = next((c for c in found if c.interface == obs.front.holder), None)
        if holder is not None:
            return holder
    counts = {
        c.interface: sum(
            1
            for t in selected_tables(network, obs)
            for r in t.routes
            if r.usable and r.target == c.interface
        )
        for c in found
    }
    best = max(found, key=lambda c: (counts[c.interface], -found.index(c)))
    return best if counts[best.interface] else found[0]


def lacks_public_address(subnet: ObservedSubnet, current: ObservedConnector | None) -> bool:
    """A running connector behind an internet gateway without a public address cannot dial the
    VPN service (remote access hop 2); a stopped one gets its address back at start."""
    return (
        subnet.way_out is WayOut.INTERNET_GATEWAY
        and current is not None
        and current.state == ConnectorState.RUNNING
        and not current.public_ip
    )


def route_state(route: ObservedRoute | None, ours: str | None) -> RouteState:
    """How a table's entry for a destination stands: the one rule `status` shows and `apply`
    acts on."""
    if route is None:
        return RouteState.MISSING
    if not route.usable:
        return RouteState.BLACKHOLE
    if ours is not None and route.target == ours:
        return RouteState.OK
    return RouteState.ELSEWHERE


def way_out_notes(
    network: Network, subnet: ObservedSubnet, current: ObservedConnector | None
) -> list[str]:
    """How the connector reaches the VPN service from its subnet, and whether egress works."""
    assert network.connector is not None
    notes = []
    if subnet.way_out is WayOut.INTERNET_GATEWAY:
        if current is None:
            address = "gets a public address at launch"
        elif current.public_ip:
            address = f"has public address {current.public_ip}"
        else:
            address = "has NO public address"
        notes.append(
            f"the connector's subnet {subnet.id} reaches the internet through {subnet.via}, "
            f"which translates only public addresses: the connector {address}, to dial the VPN "
            "service"
        )
    elif subnet.way_out is WayOut.NAT_GATEWAY:
        notes.append(
            f"the connector's subnet {subnet.id} reaches the internet through {subnet.via}, a "
            "NAT gateway: no public address needed to dial the VPN service"
        )
    elif subnet.way_out is WayOut.OTHER:
        notes.append(
            f"the connector's subnet {subnet.id} sends 0.0.0.0/0 to {subnet.via}: the connector "
            "dials the VPN service through it (not checked beyond it)"
        )
    if network.connector.egress and subnet.way_out is not WayOut.INTERNET_GATEWAY:
        notes.append(
            f"warning: egress network, but the connector's subnet sends 0.0.0.0/0 to "
            f"{subnet.via}, not to an internet gateway: egress has the connector NAT onto the "
            f"internet gateway's path (egress hop 4); VPN internet traffic "
            f"will leave through {subnet.via} instead"
        )
    return notes


def hand_made(network: Network, topology: Topology, obs: Observed) -> ForeignConnector | None:
    """The connector someone made by hand: the VM not of ours, that forwards, which the VPN
    range leads to in a selected table (a forwarding VM that only peer ranges lead to, a
    firewall say, is not taken: its routes stay conflicts)."""
    by_interface = {f.interface: f for f in obs.foreign}
    named = network.connector.takes_over if network.connector else None
    if named:  # the file names it: that one, by its VM or by what routes to it name
        return next((f for f in obs.foreign if named in (f.instance, f.interface)), None)
    for table in selected_tables(network, obs):
        route = table.route_to(topology.vpn_subnet)
        if route is not None and route.target in by_interface:
            return by_interface[route.target]
    return None


def makes_before_break(network: Network) -> bool:
    """A replaced single connector of the network is made beside the old one: where its cloud
    lets the new VM say it is up (or the VPN service says so)."""
    return CLOUD_SCHEMAS[network.cloud].make_before_break


# changes that need only the connector and its group to exist, and nothing of each other: a
# route, a rule in an app group, a rule in the connector's own group
def selected_tables(network: Network, obs: Observed) -> tuple[RouteTable, ...]:
    """The tables the spec selects that the cloud has (all of the network's by default)."""
    if network.route_tables is None:
        return tuple(t for t in obs.route_tables if t.in_all)
    wanted = set(network.route_tables)
    return tuple(t for t in obs.route_tables if t.id in wanted)
