"""`status`: each network's routes, connector, pair, groups and the VPN service, judged
against the file. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from .cloudconnexa.planner import service_status
from .desired import (
    active_connector,
    app_rules,
    lacks_public_address,
    local_subnets,
    makes_before_break,
    pair_of,
    route_state,
    routed_destinations,
    selected_tables,
)
from .layers import group_admits, host_admits
from .model import (
    AppGroup,
    AppGroupStatus,
    ConnectorState,
    IngressRule,
    Network,
    NetworkStatus,
    Observed,
    ObservedConnector,
    ObservedService,
    RouteStatus,
    Topology,
    WayOut,
)


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
        assert network.connector is not None
        ha = network.connector.ha
        current = active_connector(network, obs)
        standby = next((x for x in pair_of(obs) if x is not current), None) if ha else None
        ours = obs.routed_to(current)
        routes = []
        for table in selected_tables(network, obs):
            for dest in routed_destinations(network, topology, subnets):
                r = table.route_to(dest)
                state = route_state(r, ours)
                routes.append(RouteStatus(table.id, dest, state, r.target if r else None))
        notes, reaches = _connector_notes(network, obs, current, standby)
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
                ha=ha,
                standby=standby,
                parts=tuple(f"{x.kind} {x.name}" for x in obs.parts if x.present),
                service=(
                    service_status(network, topology, service, subnets)
                    if service is not None
                    else None
                ),
            )
        )
    return tuple(out)


def _connector_notes(
    network: Network,
    obs: Observed,
    current: ObservedConnector | None,
    standby: ObservedConnector | None,
) -> tuple[list[str], bool]:
    """What status says of the connectors (the active one, a newer image, the pair's front, the
    standby) and whether the active one reaches the VPN service from its subnet."""
    assert network.connector is not None
    ha = network.connector.ha
    notes = []
    if current is None:
        notes.append("no connector: run apply")
    elif current.state != ConnectorState.RUNNING:
        notes.append(f"connector is {current.state}")
    elif not current.forwarding:
        notes.append("source/dest check is on: the connector cannot forward")
    if current is not None and obs.newer_image and current.image != obs.newer_image[0]:
        image, since = obs.newer_image
        how = ("the new connector made before the old one goes"
               if makes_before_break(network) and not ha
               else "each connector replaced in turn" if ha
               else "the old connector goes first on this cloud: an outage while the new one "
               "boots")  # fmt: skip
        notes.append(f"a newer image exists: {image} (out since {since or 'unknown'}; the "
                     f"connector runs {current.image}): `apply --roll` takes it, {how}; "
                     "nothing changes until then")  # fmt: skip
    if ha and obs.front is not None and obs.front.holder is None:
        notes.append(
            f"the routes lead to the pair's {obs.front.name} {obs.front.id}; which connector "
            "it sends to is its probe's choice (each one's /active), which the cloud's API "
            "does not show: 'active' here is the first"
        )
    if ha and standby is None:
        notes.append("no standby connector: no failover (run apply)")
    elif standby is not None and standby.state != ConnectorState.RUNNING:
        notes.append(f"standby {standby.instance} is {standby.state}: no failover")
    elif standby is not None and not standby.forwarding:
        notes.append(f"standby {standby.instance} cannot forward: no failover")
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
    return notes, reaches


def _admitted(
    obs: Observed, group: str, rules: tuple[IngressRule, ...], need: IngressRule, ip: str | None
) -> bool:
    """The doctor's decision: the layers at the group's hosts where they were read, else the
    group's own rules."""
    at_hosts = host_admits(obs, group, need)
    return at_hosts if at_hosts is not None else group_admits(rules, need, ip)
