"""Decisions: spec + observed state -> desired state -> Plan. Pure: no SDK, no I/O.

Every change carries the hop of a flow (docs/flows.md) that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network

from .doctor import group_admits, host_admits
from .errors import SpecError
from .model import (
    CONNECTOR_SOURCE,
    PROFILE_PART,
    Action,
    AppGroup,
    AppGroupStatus,
    Change,
    Conflict,
    ConnectorState,
    DesiredConnector,
    IngressRule,
    Kind,
    Network,
    NetworkPlan,
    NetworkStatus,
    Observed,
    ObservedConnector,
    ObservedRoute,
    ObservedService,
    ObservedSubnet,
    Part,
    Plan,
    RouteState,
    RouteStatus,
    RouteTable,
    Topology,
    WayOut,
    fingerprint,
)
from .service_planner import plan_service, plan_service_destroy, service_status

NEW_CONNECTOR = "new-connector"  # a route target that does not exist until apply launches it
SERVICE_FINGERPRINT = "cc-"  # a service-made profile's fingerprint: cc-<its connector's id>
NEW_SERVICE_PROFILE = "cc-new"  # the profile of a connector the service makes in this apply

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
    "the connector admits what hosts of {cidr} send through it, to the VPN and to other "
    "networks (site-to-site hop 4)"
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
    names = list(out)
    for i, a in enumerate(names):
        for net in out[a]:
            if net.overlaps(topology.vpn_subnet):
                raise SpecError(
                    f"networks.{a}.subnets", f"'{net}' (read from the cloud) overlaps vpn_subnet"
                )
            for b in names[i + 1 :]:
                for other in out[b]:
                    if net.overlaps(other):
                        raise SpecError(
                            f"networks.{b}.subnets",
                            f"'{other}' overlaps '{net}' of network {a} "
                            "(give 'subnets' explicitly to choose what each network offers)",
                        )
    return out


VPN_CLIENTS = "VPN clients"


def routed_destinations(
    network: Network, topology: Topology, subnets: Mapping[str, tuple[IPv4Network, ...]]
) -> dict[IPv4Network, str]:
    """destination -> whose it is: the VPN range and every *other* network's subnets, never
    its own."""
    out: dict[IPv4Network, str] = {topology.vpn_subnet: VPN_CLIENTS}
    for peer in topology.networks:
        if peer.name == network.name:
            continue
        for s in subnets[peer.name]:
            out[s] = f"network {peer.name}"
    return out


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
    for peer in topology.networks:
        if peer.name != network.name:
            out += [IngressRule(s, label=f"network {peer.name}") for s in subnets[peer.name]]
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
) -> DesiredConnector:
    """The connector to launch. Its fingerprint covers what the bootstrap depends on: when it
    changes, the connector is replaced."""
    c = network.connector
    assert c is not None
    return DesiredConnector(
        public_address=public_address,
        network=network.name,
        subnet=c.subnet,
        size=c.size,
        image=c.image,
        profile=c.profile,
        nat=c.nat,
        nat_preserve_source=c.nat_preserve_source,
        local_subnets=local,
        lan_interface=c.lan_interface,
        fingerprint=fingerprint(
            "v1",
            c.nat,
            c.nat_preserve_source,
            c.lan_interface,
            c.image,
            tuple(sorted(str(s) for s in local)),
            str(vpn),
        ),
    )


def connector_fingerprint(
    network: Network, local: tuple[IPv4Network, ...], vpn: IPv4Network
) -> str:
    return desired_connector(network, local, vpn).fingerprint


def check_against_cloud(network: Network, obs: Observed) -> None:
    """Ids in the spec that the cloud does not know: bad input, found on the first read."""
    assert network.connector is not None and network.location is not None
    where = network.location.describe()
    subnet = obs.subnet(network.connector.subnet)
    if subnet is None:
        raise SpecError(
            f"networks.{network.name}.connector.subnet",
            f"{network.connector.subnet!r} is not a subnet of {where}",
        )
    if subnet.way_out is WayOut.NONE:
        # seed remote access step 3: the connector dials out to the VPN service
        table = f" in {subnet.route_table}" if subnet.route_table else ""
        state = "a blackhole" if subnet.via else "no 0.0.0.0/0 route"
        raise SpecError(
            f"networks.{network.name}.connector.subnet",
            f"{subnet.id!r} has {state}{table}: the connector could not reach the VPN "
            "service (give the subnet an internet or NAT gateway route, or choose one that has)",
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


def plan_apply(
    topology: Topology,
    observed: Mapping[str, Observed],
    *,
    replace_conflicting_routes: bool = False,
    service: ObservedService | None = None,
    prune: bool = False,
) -> Plan:
    """What `apply` must change so that every managed network routes through its connector,
    and (with `service`, what the VPN service holds) the service routes to each network's
    connector: the service's changes come first."""
    subnets = local_subnets(topology, observed)
    plans = []
    renewed: frozenset[str] = frozenset()
    if service is not None:
        service_plan, renewed = plan_service(topology, service, subnets, prune=prune)
        plans.append(service_plan)
    for network in topology.managed:
        obs = observed[network.name]
        check_against_cloud(network, obs)
        plans.append(
            _plan_network(
                network,
                topology,
                obs,
                subnets,
                replace_conflicting_routes,
                new_profile=network.name in renewed,
            )
        )
    return Plan(operation="apply", networks=tuple(plans), vpn_subnet=topology.vpn_subnet)


def _plan_network(
    network: Network,
    topology: Topology,
    obs: Observed,
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    replace_conflicting_routes: bool,
    new_profile: bool = False,
) -> NetworkPlan:
    c = network.connector
    assert c is not None
    subnet = obs.subnet(c.subnet)
    assert subnet is not None  # check_against_cloud
    local = subnets[network.name]
    want = desired_connector(
        network,
        local,
        topology.vpn_subnet,
        public_address=subnet.way_out is WayOut.INTERNET_GATEWAY,
    )
    changes, interface, new_connector = _connector_changes(network, obs, subnet, want, new_profile)
    changes += _ingress_changes(network.name, obs, local)
    changes += _app_access_changes(network, obs, app_rules(network, topology, subnets))
    destinations = routed_destinations(network, topology, subnets)
    routes, conflicts = _route_changes(
        network, obs, destinations, interface, new_connector, replace_conflicting_routes
    )
    notes = _notes(network, subnet, None if new_connector else obs.connector, local)
    if replace_conflicting_routes and conflicts:
        notes.append(f"{len(conflicts)} conflicting route(s) will be replaced")
    return NetworkPlan(
        network=network.name,
        cloud=network.cloud,
        changes=tuple(changes + routes),
        conflicts=tuple(conflicts) if not replace_conflicting_routes else (),
        notes=tuple(notes),
    )


def _connector_changes(
    network: Network,
    obs: Observed,
    subnet: ObservedSubnet,
    want: DesiredConnector,
    new_profile: bool = False,
) -> tuple[list[Change], str, bool]:
    """The parts, the VM and its forwarding flag, and the parts that hang on the VM: (changes,
    the interface routes point at, whether the VM is new). `new_profile`: the VPN service
    makes the network a new connector in this apply, so the stored profile is stale."""
    c = network.connector
    assert c is not None
    name = network.name
    changes: list[Change] = []
    fingerprint = NEW_SERVICE_PROFILE if new_profile else c.profile_fingerprint
    # supporting parts the VM needs, in the provider's order; the stored profile follows the file
    for part in obs.parts:
        if not part.after_connector:
            changes += _part_changes(name, part, fingerprint, vm_is_new=False)
    current = obs.connector
    profile_changed = any(ch.kind is Kind.PART and ch.action is Action.UPDATE for ch in changes)
    reasons = _replace_reasons(network, obs, subnet, want, profile_changed)
    if current is None:
        changes.append(
            Change(
                name, Action.CREATE, Kind.CONNECTOR, f"VM in {c.subnet}", WHY_LAUNCH, connector=want
            )
        )
    elif reasons:
        why = WHY_LAUNCH + "; replaced: " + ", ".join(reasons)
        changes.append(
            Change(name, Action.REPLACE, Kind.CONNECTOR, current.instance, why, connector=want)
        )
    elif current.state in (ConnectorState.STOPPED, ConnectorState.STOPPING):
        changes.append(
            Change(
                name,
                Action.START,
                Kind.CONNECTOR,
                current.instance,
                "the connector is stopped: nothing routes",
            )
        )
    new_connector = current is None or bool(reasons)
    interface = NEW_CONNECTOR if new_connector else current.interface  # type: ignore[union-attr]
    assert interface is not None
    # (a cloud that sets the flag only at launch launched it so, or replaces it above)
    if not obs.forwarding_at_launch and (new_connector or not current.forwarding):  # type: ignore[union-attr]
        changes.append(Change(name, Action.UPDATE, Kind.FORWARDING, interface, WHY_FORWARDING))
    # parts that hang on the VM itself (a VM extension...): a new VM needs them again
    for part in obs.parts:
        if part.after_connector:
            changes += _part_changes(name, part, fingerprint, vm_is_new=new_connector)
    return changes, interface, new_connector


def _replace_reasons(
    network: Network,
    obs: Observed,
    subnet: ObservedSubnet,
    want: DesiredConnector,
    profile_changed: bool,
) -> list[str]:
    """Why the connector that is there cannot stay (none: it stays)."""
    c, current = network.connector, obs.connector
    assert c is not None
    if current is None:
        return []
    reasons = []
    if current.size != c.size:
        reasons.append(f"size {current.size} -> {c.size}")
    if current.subnet != c.subnet:
        reasons.append(f"subnet {current.subnet} -> {c.subnet}")
    if current.fingerprint != want.fingerprint:
        reasons.append("bootstrap settings changed (nat, subnets, image or interface)")
    if profile_changed:
        reasons.append("VPN profile changed")
    if obs.forwarding_at_launch and not current.forwarding:
        reasons.append("it cannot forward packets, and the flag is set only at launch")
    if current.subnet == c.subnet and lacks_public_address(subnet, current):
        # a public address is given at launch only (seed remote access step 3)
        reasons.append(
            f"it has no public address and its subnet reaches the internet only through "
            f"internet gateway {subnet.via}, so it cannot dial the VPN service"
        )
    return reasons


def lacks_public_address(subnet: ObservedSubnet, current: ObservedConnector | None) -> bool:
    """A running connector behind an internet gateway without a public address cannot dial the
    VPN service (remote access hop 2); a stopped one gets its address back at start."""
    return (
        subnet.way_out is WayOut.INTERNET_GATEWAY
        and current is not None
        and current.state == ConnectorState.RUNNING
        and not current.public_ip
    )


def _ingress_changes(name: str, obs: Observed, local: tuple[IPv4Network, ...]) -> list[Change]:
    """The connector's own group admits the local subnets (forwarded traffic), nothing else."""
    have = set(obs.connector_ingress)
    changes = [
        Change(
            name,
            Action.CREATE,
            Kind.CONNECTOR_INGRESS,
            str(cidr),
            WHY_INGRESS.format(cidr=cidr),
            destination=cidr,
        )
        for cidr in local
        if cidr not in have
    ]
    changes += [
        Change(
            name,
            Action.DELETE,
            Kind.CONNECTOR_INGRESS,
            str(cidr),
            "no longer a subnet of this network",
            destination=cidr,
        )
        for cidr in obs.connector_ingress
        if cidr not in local
    ]
    return changes


def _app_access_changes(
    network: Network, obs: Observed, wanted: Mapping[str, tuple[IngressRule, ...]]
) -> list[Change]:
    """App groups admit what really arrives (see arriving_sources), and no longer what not."""
    changes = []
    for g in obs.app_groups:
        need = wanted.get(g.id, ())
        present = set(g.rules)
        for rule in need:
            if rule not in present:
                why = WHY_APP_ACCESS_NAT if rule.source == CONNECTOR_SOURCE else WHY_APP_ACCESS_KEPT
                changes.append(
                    Change(network.name, Action.CREATE, Kind.APP_ACCESS, g.id, why, rule=rule)
                )
        for rule in (r for r in g.ours if r not in set(need)):
            why = (
                "no longer in app_security_groups"
                if g.id not in wanted
                else "no longer a source that arrives (peers, ports or NAT changed)"
            )
            changes.append(
                Change(network.name, Action.DELETE, Kind.APP_ACCESS, g.id, why, rule=rule)
            )
    return changes


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


def _route_changes(
    network: Network,
    obs: Observed,
    destinations: Mapping[IPv4Network, str],
    interface: str,
    new_connector: bool,
    replace_conflicting_routes: bool,
) -> tuple[list[Change], list[Conflict]]:
    """Every selected table routes every destination to the connector; routes of ours that are
    no longer wanted go. A foreign route for a destination is a conflict."""
    name = network.name
    current = obs.connector
    ours = current.interface if current is not None else None
    changes: list[Change] = []
    conflicts: list[Conflict] = []
    selected = selected_tables(network, obs)
    for table in selected:
        for dest, label in destinations.items():
            why = WHY_VPN_ROUTE if label == VPN_CLIENTS else WHY_PEER_ROUTE
            route = table.route_to(dest)
            state = route_state(route, ours)
            if route is None:
                changes.append(
                    _route(name, Action.CREATE, table.id, dest, interface, why, label=label)
                )
                continue
            replace_why = None
            if state is RouteState.BLACKHOLE:
                replace_why = why + "; the current route is a blackhole"
            elif state is RouteState.OK:
                replace_why = why if new_connector else None  # re-point to the new connector
                if route.stale and not replace_why:
                    replace_why = f"{why}; {route.stale}"
            else:
                conflicts.append(Conflict(name, table.id, dest, route.target))
                if replace_conflicting_routes:
                    replace_why = (
                        why + "; replaces a conflicting route (--replace-conflicting-routes)"
                    )
            if replace_why:
                changes.append(
                    _route(
                        name,
                        Action.REPLACE,
                        table.id,
                        dest,
                        interface,
                        replace_why,
                        route.target,
                        label=label,
                    )
                )
    selected_ids = {t.id for t in selected}
    for table in obs.route_tables:
        for route in table.routes:
            if route.target == ours and (
                table.id not in selected_ids or route.destination not in destinations
            ):
                why = (
                    "no longer a selected route table"
                    if table.id not in selected_ids
                    else "no longer a peer subnet or the VPN range"
                )
                changes.append(
                    _route(name, Action.DELETE, table.id, route.destination, route.target, why)
                )
    return changes, conflicts


def _notes(
    network: Network,
    subnet: ObservedSubnet,
    current: ObservedConnector | None,
    local: tuple[IPv4Network, ...],
) -> list[str]:
    """What the reader should know: the way out, egress, NAT."""
    c = network.connector
    assert c is not None
    notes = way_out_notes(network, subnet, current)
    if c.egress:
        notes.append(
            "egress network: the connector NATs internet-bound VPN traffic, since the internet "
            "gateway only translates the connector's own address (egress hop 4)"
        )
    if c.nat:
        if c.nat_preserve_source:
            notes.append(
                "NAT on, except towards "
                + ", ".join(str(s) for s in local)
                + ": local hosts see the real VPN and peer addresses (remote access hop 6)"
            )
        else:
            notes.append(
                "NAT on for all forwarded traffic: answers come straight back to the connector, "
                "and nothing here can open a connection to a VPN client (remote access hop 7)"
            )
    return notes


def _part_changes(
    network: str, part: Part, profile_fingerprint: str, *, vm_is_new: bool
) -> list[Change]:
    """Create a part that is missing or, when it hangs on a VM that is new, again; bring the
    stored profile up to date with the file."""
    if not part.ready:
        return [Change(network, Action.CREATE, Kind.PART, part.name, part.why, part=part)]
    if part.after_connector and vm_is_new:
        why = part.why + " (again, on the new VM)"
        return [Change(network, Action.CREATE, Kind.PART, part.name, why, part=part)]
    if part.kind == PROFILE_PART and part.fingerprint != profile_fingerprint:
        what = (
            "the VPN service makes the network a new connector, so a new profile"
            if profile_fingerprint.startswith(SERVICE_FINGERPRINT)
            else "the profile file changed"
        )
        why = (
            f"{what}; the connector is handed the new one"
            if part.after_connector
            else f"{what}; the connector reads it at boot, so it is replaced"
        )
        return [Change(network, Action.UPDATE, Kind.PART, part.name, why, part=part)]
    return []


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


def _route(
    network: str,
    action: Action,
    table: str,
    dest: IPv4Network,
    target: str,
    why: str,
    previous: str | None = None,
    label: str = "",
) -> Change:
    return Change(
        network,
        action,
        Kind.ROUTE,
        f"{table} {dest}",
        why,
        route_table=table,
        destination=dest,
        target=target,
        previous_target=previous,
        label=label,
    )


def plan_destroy(
    topology: Topology,
    observed: Mapping[str, Observed],
    service: ObservedService | None = None,
) -> Plan:
    """Remove what apply created, in reverse, and nothing else: the service's half last."""
    plans = []
    for network in topology.managed:
        obs = observed[network.name]
        name = network.name
        changes: list[Change] = []
        current = obs.connector
        if current is not None and current.interface:
            for table in obs.route_tables:
                for route in table.routes:
                    if route.target == current.interface:
                        changes.append(
                            _route(
                                name,
                                Action.DELETE,
                                table.id,
                                route.destination,
                                route.target,
                                "destroy: route to the connector",
                            )
                        )
        for g in obs.app_groups:
            for rule in g.ours:
                changes.append(
                    Change(
                        name,
                        Action.DELETE,
                        Kind.APP_ACCESS,
                        g.id,
                        "destroy: access granted for the connector's traffic",
                        rule=rule,
                    )
                )
        changes += _delete_parts(name, obs.parts, on_the_vm=True)  # they go before it
        if current is not None:
            changes.append(
                Change(
                    name,
                    Action.DELETE,
                    Kind.CONNECTOR,
                    current.instance,
                    "destroy: the connector VM",
                )
            )
        changes += _delete_parts(name, obs.parts, on_the_vm=False)
        plans.append(NetworkPlan(network=name, cloud=network.cloud, changes=tuple(changes)))
    if service is not None:
        plans.append(plan_service_destroy(topology, service))
    return Plan(operation="destroy", networks=tuple(plans), vpn_subnet=topology.vpn_subnet)


def _delete_parts(network: str, parts: tuple[Part, ...], *, on_the_vm: bool) -> list[Change]:
    """Destroy's deletions of the parts that exist, in reverse of the provider's order."""
    return [
        Change(
            network,
            Action.DELETE,
            Kind.PART,
            part.name,
            f"destroy: the connector's {part.kind}",
            part=part,
        )
        for part in reversed(parts)
        if part.present and part.after_connector is on_the_vm
    ]


def network_status(
    topology: Topology,
    observed: Mapping[str, Observed],
    service: ObservedService | None = None,
) -> tuple[NetworkStatus, ...]:
    """Per network: the connector, and each selected table's entry for each routed destination;
    with `service`, the VPN service's routes against the subnets, its egress flag, and the
    connector's connection status there."""
    subnets = local_subnets(topology, observed)
    out = []
    for network in topology.managed:
        obs = observed[network.name]
        current = obs.connector
        ours = current.interface if current else None
        routes = []
        for table in selected_tables(network, obs):
            for dest in routed_destinations(network, topology, subnets):
                r = table.route_to(dest)
                state = route_state(r, ours)
                routes.append(RouteStatus(table.id, dest, state, r.target if r else None))
        notes = []
        if current is None:
            notes.append("no connector: run apply")
        elif current.state != ConnectorState.RUNNING:
            notes.append(f"connector is {current.state}")
        elif not current.forwarding:
            notes.append("source/dest check is on: the connector cannot forward")
        assert network.connector is not None
        subnet = obs.subnet(current.subnet if current else network.connector.subnet)
        reaches = subnet is not None and subnet.way_out is not WayOut.NONE
        if subnet is not None:
            if not reaches:
                notes.append(
                    f"the connector's subnet {subnet.id} has no route to the internet: the "
                    "connector cannot reach the VPN service"
                )
            elif lacks_public_address(subnet, current):
                reaches = False
                notes.append(
                    f"the connector has no public address and its subnet reaches the internet "
                    f"only through {subnet.via}: it cannot reach the VPN service (apply "
                    "replaces it)"
                )
        connector_ip = current.private_ip if current else None
        groups = []
        found = {g.id: g for g in obs.app_groups}
        for group_id, arriving in app_rules(network, topology, subnets).items():
            g = found.get(group_id, AppGroup(group_id))
            missing = tuple(
                need
                for need in arriving
                if not _admitted(obs, group_id, g.rules, need, connector_ip)
            )
            groups.append(AppGroupStatus(group_id, group_id in found, g.rules, arriving, missing))
        out.append(
            NetworkStatus(
                network=network.name,
                cloud=network.cloud,
                connector=current,
                routes=tuple(routes),
                app_groups=tuple(groups),
                notes=tuple(notes),
                reaches_vpn_service=reaches,
                service=(
                    service_status(network, topology, service, subnets)
                    if service is not None
                    else None
                ),
            )
        )
    return tuple(out)


def _admitted(
    obs: Observed, group: str, rules: tuple[IngressRule, ...], need: IngressRule, ip: str | None
) -> bool:
    """The doctor's decision: the layers at the group's hosts where they were read, else the
    group's own rules."""
    at_hosts = host_admits(obs, group, need)
    return at_hosts if at_hosts is not None else group_admits(rules, need, ip)


# changes that need only the connector and its group to exist, and nothing of each other: a
# route, a rule in an app group, a rule in the connector's own group
SIDE_BY_SIDE = frozenset({Kind.ROUTE, Kind.APP_ACCESS, Kind.CONNECTOR_INGRESS})


def stages(changes: Sequence[Change]) -> tuple[tuple[Change, ...], ...]:
    """One network's changes as steps taken one after another, in the plan's order. The changes
    of one step do not depend on each other and may run at once: the parts, the VM and its
    forwarding flag come one at a time; the routes and rules after them, side by side."""
    out: list[list[Change]] = []
    for change in changes:
        if change.kind in SIDE_BY_SIDE and out and out[-1][0].kind in SIDE_BY_SIDE:
            out[-1].append(change)
        else:
            out.append([change])
    return tuple(tuple(step) for step in out)


def selected_tables(network: Network, obs: Observed) -> tuple[RouteTable, ...]:
    """The tables the spec selects that the cloud has (all of the network's by default)."""
    if network.route_tables is None:
        return tuple(t for t in obs.route_tables if t.in_all)
    wanted = set(network.route_tables)
    return tuple(t for t in obs.route_tables if t.id in wanted)
