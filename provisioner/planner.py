"""Decisions: spec + observed state -> desired state -> Plan. Pure: no SDK, no I/O.

Every change carries the hop of a flow (docs/flows.md) that needs it. The apply plan is made
here; its parts live by job: the desired state and the cloud check (`desired`), the changes
(`changes`), the connector VMs and their replacement (`replacing`), the destroy plan
(`destroy`) and `status` (`status`). Their public functions are the planner's too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from ipaddress import IPv4Network

from . import capacity
from .changes import delete_connectors, part_changes, route_change, routes_left
from .cloudconnexa.planner import plan_service
from .desired import (
    WHY_APP_ACCESS_KEPT,
    WHY_APP_ACCESS_NAT,
    WHY_INGRESS,
    WHY_PEER_ROUTE,
    WHY_VPN_ROUTE,
    active_connector,
    app_rules,
    check_against_cloud,
    hand_made,
    local_subnets,
    makes_before_break,
    pair_of,
    route_state,
    routed_destinations,
    selected_tables,
    way_out_notes,
)
from .model import (
    CONNECTOR_SOURCE,
    NEW_CONNECTOR,
    NEW_SERVICE_PROFILE,
    SERVICE_PLAN,
    TAKE_OVER,
    VPN_CLIENTS,
    Action,
    Change,
    Conflict,
    ConnectorState,
    ForeignConnector,
    IngressRule,
    Kind,
    Network,
    NetworkPlan,
    Observed,
    ObservedConnector,
    ObservedRoute,
    ObservedService,
    ObservedSubnet,
    Plan,
    RouteState,
    Topology,
)
from .replacing import (
    Slot,
    beside_made,
    front_plan,
    offline_members,
    pair_notes,
    ready_changes,
    rotation_notes,
    slots_of,
    successors,
    told_by_service,
)
from .spec import CLOUD_SCHEMAS
from .steps import takes_vpn


def plan_apply(
    topology: Topology,
    observed: Mapping[str, Observed],
    *,
    replace_conflicting_routes: bool = False,
    service: ObservedService | None = None,
    prune: bool = False,
    rotate: frozenset[str] = frozenset(),
) -> Plan:
    """What `apply` must change so that every managed network routes through its connector,
    and (with `service`, what the VPN service holds) the service routes to each network's
    connector: the service's changes come first. `rotate`: the networks whose connectors get
    a new profile (`provision rotate`): with the service block a new connector on the service
    each, handed over as any replacement is; a profile file is taken when it changed."""
    subnets = local_subnets(topology, observed)
    plans = []
    renewed: frozenset[tuple[str, int]] = frozenset()
    if service is not None:
        service_plan, renewed = plan_service(topology, service, subnets, prune=prune)
        plans.append(service_plan)
    for network in topology.managed:
        obs = observed[network.name]
        check_against_cloud(network, obs)

        def planned(renewed: frozenset[tuple[str, int]], network: Network = network) -> NetworkPlan:
            new = frozenset(m for n, m in renewed if n == network.name)
            return _plan_network(
                network, topology, observed[network.name], subnets, replace_conflicting_routes,
                new_profiles=new, offline=offline_members(network, topology, service),
            )  # fmt: skip

        cloud = planned(renewed)
        rotating = network.name in rotate
        if service is not None:
            more = successors(network, topology, service, obs, cloud, renewed, rotating)
            if more:  # the VM made beside gets a connector of its own on the service
                plans[0] = replace(plans[0], changes=plans[0].changes + tuple(more))
                renewed |= {(network.name, c.member) for c in more if c.action is Action.CREATE}
                cloud = planned(renewed)
        if rotating:
            cloud = replace(cloud, notes=cloud.notes + rotation_notes(network, obs, cloud))
        plans.append(replace(cloud, fills=capacity.fills(network.name, obs, cloud.changes)))
    networks = capacity.across(plans)
    return Plan(operation="apply", networks=networks, vpn_subnet=topology.vpn_subnet)


def _plan_network(
    network: Network,
    topology: Topology,
    obs: Observed,
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    replace_conflicting_routes: bool,
    new_profiles: frozenset[int] = frozenset(),
    offline: frozenset[int] = frozenset(),
) -> NetworkPlan:
    """`new_profiles`: the members whose connector the VPN service makes in this apply (so a
    new profile for each); `offline`: those whose connector there is not ONLINE."""
    c = network.connector
    assert c is not None
    local = subnets[network.name]
    name = network.name
    prints = {
        m: NEW_SERVICE_PROFILE if m in new_profiles else c.member_profile(m).fingerprint
        for m in range(len(c.subnets))
    }
    changes, renewed = _parts_first(name, obs, prints)
    slots, extras = slots_of(network, topology, obs, local, renewed, prints)
    target = _target(slots, active_connector(network, obs))
    changes += target.changes
    old = hand_made(network, topology, obs)  # a connector made by hand, taken over
    if makes_before_break(network):  # where the new VM, or the VPN service, says it is ready
        others = [s.current for s in slots if s is not target]
        ready = ready_changes(name, target, extras, others, target.member in offline, old)
        changes += [told_by_service(c, network, obs, prints, new_profiles) for c in ready]
    front, front_changes = front_plan(network, obs, target)
    changes += front_changes
    changes += _ingress_changes(name, obs, local)
    access, late, readdressed = _group_changes(network, topology, obs, subnets, target, extras)
    changes += access
    routes, conflicts = _routes(
        network, topology, obs, subnets, target, front, replace_conflicting_routes, old
    )
    changes += routes
    changes += _after_the_routes(name, obs, slots, target, extras, front)
    changes += late + readdressed  # (the old VM's address, once it is gone)
    # what a setting the file no longer has left (a pair's): once nothing uses it
    changes += [
        Change(name, Action.DELETE, Kind.PART, p.name, "the file no longer needs it", part=p)
        for p in reversed(obs.parts)
        if p.present and not p.wanted
    ]
    # how the network is (its way out, egress, NAT): facts, said with its changes; a warning
    # among them is a note, said always
    facts = _notes(network, target.subnet, None if target.new else target.current, local)
    notes = [n for n in facts if n.startswith("warning:")]
    notes += _network_notes(network, obs, local, slots, target, old, routes)
    if replace_conflicting_routes and conflicts:
        notes.append(f"{len(conflicts)} conflicting route(s) will be replaced")
    return NetworkPlan(
        network=network.name,
        cloud=network.cloud,
        changes=tuple(changes),
        conflicts=tuple(conflicts) if not replace_conflicting_routes else (),
        notes=tuple(notes),
        hand_made=old.instance if old is not None else None,
        facts=tuple(n for n in facts if not n.startswith("warning:")),
    )


def _parts_first(
    name: str, obs: Observed, prints: Mapping[int, str]
) -> tuple[list[Change], set[int]]:
    """The supporting parts the VMs need, in the provider's order (stored profiles follow the
    file), and the members whose stored profile is renewed."""
    changes: list[Change] = []
    for part in obs.parts:
        if not part.after_connector and part.wanted:
            changes += part_changes(name, part, prints.get(part.member, ""), vm_is_new=False)
    renewed = {
        ch.part.member
        for ch in changes
        if ch.kind is Kind.PART and ch.action is Action.UPDATE and ch.part is not None
    }
    return changes, renewed


def _routes(
    network: Network,
    topology: Topology,
    obs: Observed,
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    target: Slot,
    front: str | None,
    replace_conflicting_routes: bool,
    old: ForeignConnector | None,
) -> tuple[list[Change], list[Conflict]]:
    """The routes to the connector (or the pair's front), and the conflicts; taking over from
    a hand-made connector, the VPN range's routes move last, a step of their own (see stages)."""
    destinations = routed_destinations(network, topology, subnets)
    ours = {x.interface for x in pair_of(obs) if x.interface}
    if obs.front is not None:
        ours.add(obs.front.id)
    routes, conflicts = _route_changes(
        network, obs, destinations, target, front or target.interface, ours,
        replace_conflicting_routes, old,
    )  # fmt: skip
    if old is not None:
        last = [r for r in routes if takes_vpn(r, old)]
        routes = [r for r in routes if r not in last] + last
    return routes, conflicts


def _target(slots: list[Slot], active: ObservedConnector | None) -> Slot:
    """The member the routes lead to: the one they lead to now if it stays, else one that
    stays, else one launched fresh (made before the routes, the others replaced after them)."""
    return (
        next((s for s in slots if s.stays and s.current == active), None)
        or next((s for s in slots if s.stays), None)
        or next((s for s in slots if s.current is None), None)
        # both replaced: the one the routes do not lead to first, the active one after them
        or next((s for s in slots if s.current != active), None)
        or slots[0]
    )


def _group_changes(
    network: Network,
    topology: Topology,
    obs: Observed,
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    target: Slot,
    extras: list[ObservedConnector],
) -> tuple[list[Change], list[Change], list[Change]]:
    """The app groups' rules: (now, with the new connector's address where the groups admit a
    connector by its address; late: the old VM's address, once it is gone; and the replaced
    connector's rule the same way). Where the app groups admit the connector by its own
    address (Azure, NAT everything), a VM made beside the old one is admitted by its own
    before the routes move to it, and the old one's address only once the old VM is gone."""
    name = network.name
    wanted_rules = app_rules(network, topology, subnets)
    access = _app_access_changes(network, obs, wanted_rules)
    by_address = CLOUD_SCHEMAS[network.cloud].connector_by_address
    old_addresses = {
        IPv4Network(f"{x.private_ip}/32") for x in extras if x.private_ip
    } | ({IPv4Network(f"{target.current.private_ip}/32")}
         if target.new and target.current is not None and target.current.private_ip else set())  # fmt: skip
    late = [c for c in access if by_address and c.action is Action.DELETE and c.rule is not None
            and c.rule.source in old_addresses]  # fmt: skip
    now = [c for c in access if c not in late]
    readdressed: list[Change] = []
    if by_address and beside_made(target):
        for g in obs.app_groups:
            for rule in wanted_rules.get(g.id, ()):
                if rule.source == CONNECTOR_SOURCE and rule in set(g.rules):
                    now.append(Change(name, Action.CREATE, Kind.APP_ACCESS, g.id,
                                      WHY_APP_ACCESS_NAT + " (the new connector's address)",
                                      rule=rule, target=NEW_CONNECTOR))  # fmt: skip
                    readdressed.append(Change(name, Action.DELETE, Kind.APP_ACCESS, g.id,
                                              "the replaced connector's address",
                                              rule=rule, previous_target="replaced"))  # fmt: skip
    return now, late, readdressed


def _after_the_routes(
    name: str,
    obs: Observed,
    slots: list[Slot],
    target: Slot,
    extras: list[ObservedConnector],
    front: str,
) -> list[Change]:
    """What waits for the routes: the other members' changes, a front the file no longer
    has, connectors no longer wanted and those replaced beside."""
    changes: list[Change] = []
    for slot in slots:
        if slot is not target:
            changes += slot.changes
    if obs.front is not None and not front:
        changes.append(
            Change(name, Action.DELETE, Kind.FRONT, obs.front.id,
                   f"the file no longer has a pair: its {obs.front.name} goes")
        )  # fmt: skip
    changes += delete_connectors(
        name,
        extras,
        "no longer a connector the file wants (its routes lead to the one that stays first)",
    )
    replaced = [
        s.current for s in slots
        if s.new and s.current is not None
        and not any(c.kind is Kind.CONNECTOR and c.action is Action.REPLACE for c in s.changes)
    ]  # fmt: skip
    changes += delete_connectors(
        name, replaced, "replaced: the routes lead to the new connector now (made before break)"
    )
    return changes


def _network_notes(
    network: Network,
    obs: Observed,
    local: tuple[IPv4Network, ...],
    slots: list[Slot],
    target: Slot,
    old: ForeignConnector | None,
    routes: list[Change],
) -> list[str]:
    c = network.connector
    assert c is not None
    notes: list[str] = []
    if old is None and c.takes_over:
        notes.append(f"connector.takes_over {c.takes_over}: no route of the network leads to a "
                     "VM of that name that forwards: nothing to take over")  # fmt: skip
    if old is not None:
        moving = sum(1 for ch in routes if ch.previous_target == old.interface)
        notes.append(
            f"takes over the connector made by hand, {old.instance}"
            + (f" ({old.name})" if old.name else "") + f", {old.state}: ours is made beside it "
            f"and {moving} route(s) move to ours once its tunnel is up, never to a VM that is "
            "not running; the old VM is not ours: it stays as it is (stop it once its traffic "
            "has gone, or delete it)"
        )  # fmt: skip
    if c.ha:
        notes += pair_notes(network, slots, target)
    return notes


def _ingress_changes(name: str, obs: Observed, local: tuple[IPv4Network, ...]) -> list[Change]:
    """The connector's own group admits the local subnets (forwarded traffic), nothing else."""
    have = set(obs.connector_ingress)
    changes = [
        Change(
            name,
            Action.CREATE,
            Kind.CONNECTOR_INGRESS,
            str(cidr),
            WHY_INGRESS,
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


def _route_changes(
    network: Network,
    obs: Observed,
    destinations: Mapping[IPv4Network, str],
    target: Slot,
    interface: str,
    ours: set[str],
    replace_conflicting_routes: bool,
    old: ForeignConnector | None = None,
) -> tuple[list[Change], list[Conflict]]:
    """Every selected table routes every destination to `interface` (the `target` connector's,
    or the pair's front that leads to it); routes of ours (to any of `ours`: the network's
    connectors, its front) that are no longer wanted go. A foreign route for a destination is
    a conflict, but for one to `old`, the connector made by hand: that one moves to ours."""
    name = network.name
    member = target.member
    changes: list[Change] = []
    conflicts: list[Conflict] = []
    selected = selected_tables(network, obs)
    for table in selected:
        for dest, label in destinations.items():
            why = WHY_VPN_ROUTE if label == VPN_CLIENTS else WHY_PEER_ROUTE
            route = table.route_to(dest)
            if route is None:
                changes.append(
                    route_change(
                        name, Action.CREATE, table.id, dest, interface, why, label=label,
                        member=member,
                    )
                )  # fmt: skip
                continue
            replace_why, taking, conflict = _why_replace(
                route, why, interface, target, ours, old, replace_conflicting_routes
            )
            if conflict:
                conflicts.append(Conflict(name, table.id, dest, route.target))
            if replace_why:
                moved = route_change(name, Action.REPLACE, table.id, dest, interface, replace_why,
                               route.target, label=label, member=member)  # fmt: skip
                changes.append(replace(moved, ref=TAKE_OVER) if taking else moved)
    changes += routes_left(name, obs, {t.id for t in selected}, destinations, ours)
    return changes, conflicts


def _why_replace(
    route: ObservedRoute,
    why: str,
    interface: str,
    target: Slot,
    ours: set[str],
    old: ForeignConnector | None,
    replace_conflicting_routes: bool,
) -> tuple[str | None, bool, bool]:
    """Why an existing route for a wanted destination is written again (None: it is as
    wanted), whether that takes it over from the hand-made connector, and whether it is
    another's (a conflict)."""
    state = route_state(route, interface)
    if state is RouteState.BLACKHOLE:
        return why + "; the current route is a blackhole", False, False
    if state is RouteState.OK:
        return (f"{why}; {route.stale}" if route.stale else None), False, False
    if route.target in ours:  # ours, to the connector being replaced or to the other
        if interface != target.interface:
            return (
                why + "; the pair's routes name its front, which leads to the active one",
                False,
                False,
            )
        if not target.new and len(ours) > 1:
            return why + f"; the pair's routes lead to one connector, {interface}", False, False
        return why, False, False
    if old is not None and route.target == old.interface:
        return f"{why}; takes over from the hand-made connector {old.instance}", True, False
    if replace_conflicting_routes:
        return why + "; replaces a conflicting route (--replace-conflicting-routes)", False, True
    return None, False, True


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


def with_retirement(
    plan: Plan,
    topology: Topology,
    observed: Mapping[str, Observed],
    service: ObservedService | None = None,
) -> Plan:
    """`apply --retire-old`: each connector made by hand that a network's plan takes over is
    stopped after its routes have moved (its plan's last step); never terminated. Not while a
    route the plan does not move still leads to it (a range the file does not route, a table
    it does not select): stopping it would cut that traffic; the note says which."""
    networks, retired = [], []
    for n in plan.networks:
        network = next((x for x in topology.managed if x.name == n.network), None)
        obs = observed.get(n.network)
        old = hand_made(network, topology, obs) if network and obs else None
        if old is None or obs is None or old.state is not ConnectorState.RUNNING:
            networks.append(n)
            continue
        moved = {(c.route_table, c.destination) for c in n.changes
                 if c.kind is Kind.ROUTE and c.previous_target == old.interface}  # fmt: skip
        left = [f"{r.destination} in {t.id}" for t in obs.route_tables for r in t.routes
                if r.target == old.interface and (t.id, r.destination) not in moved]  # fmt: skip
        if left:
            note = (f"--retire-old: {old.instance} is not stopped: routes the file does not "
                    f"move still lead to it ({', '.join(left[:4])}"
                    + (f", {len(left) - 4} more" if len(left) > 4 else "") + ")")  # fmt: skip
            networks.append(replace(n, notes=(*n.notes, note)))
            continue
        retire = Change(n.network, Action.UPDATE, Kind.RETIRE, old.instance,
                        "--retire-old: the connector made by hand, once the routes have left it "
                        "(stopped, not terminated: it is not ours)")  # fmt: skip
        networks.append(replace(n, changes=(*n.changes, retire)))
        retired.append(n.network)
    return replace(plan, networks=tuple(
        _retire_service_connectors(x, topology, service, retired) if x.network == SERVICE_PLAN
        else x for x in networks))  # fmt: skip


def _retire_service_connectors(
    plan: NetworkPlan, topology: Topology, service: ObservedService | None, retired: list[str]
) -> NetworkPlan:
    """With the service block: on an adopted service network of a network whose connector
    made by hand is retired, the connectors we did not make go too, after the clouds' changes
    (the old VM dials in with one of them; the API keeps a network's last connector, and ours
    is there by then)."""
    changes = list(plan.changes)
    for name in retired:
        network = next(x for x in topology.managed if x.name == name)
        found = service.network(name) if service is not None else None
        if found is None or not network.adopt_service_network:
            continue
        for c in found.connectors:
            if not c.ours:
                changes.append(Change(
                    SERVICE_PLAN, Action.DELETE, Kind.SERVICE_CONNECTOR, f"{c.name} on {name}",
                    "--retire-old: the connector made by hand's, once no VM dials in with it",
                    ref=found.id, previous_target=c.id, label=name))  # fmt: skip
    return replace(plan, changes=tuple(changes))


# the planner's public functions, wherever they live (api.py and the tests call them here)
from .desired import (  # noqa: E402
    connector_fingerprint,
    desired_connector,
)
from .health import network_status  # noqa: E402
from .teardown import plan_destroy  # noqa: E402

__all__ = [
    "active_connector",
    "app_rules",
    "connector_fingerprint",
    "desired_connector",
    "local_subnets",
    "network_status",
    "plan_apply",
    "plan_destroy",
    "routed_destinations",
    "with_retirement",
]
