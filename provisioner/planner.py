"""Decisions: spec + observed state -> desired state -> Plan. Pure: no SDK, no I/O.

Every change carries the hop of a flow (docs/flows.md) that needs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Network

from . import capacity
from .errors import SpecError
from .layers import group_admits, host_admits
from .model import (
    CONNECTOR_SOURCE,
    NEW_CONNECTOR,
    NEW_FRONT,
    NEW_SERVICE_PROFILE,
    PROFILE_PART,
    SERVICE_FINGERPRINT,
    SERVICE_PLAN,
    TAKE_OVER,
    VPN_CLIENTS,
    VPN_SERVICE,
    Action,
    AppGroup,
    AppGroupStatus,
    Change,
    Conflict,
    ConnectorState,
    DesiredConnector,
    ForeignConnector,
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
    ServiceProfile,
    Topology,
    WayOut,
    fingerprint,
    first_overlap,
    profile_mark,
)
from .service_planner import plan_service, plan_service_destroy, service_status
from .spec import CLOUD_SCHEMAS, check_summaries
from .steps import takes_vpn

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
    return out | capacity.summarized(_peers(network, topology, subnets), network.summarize)


def _peers(
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
    peers = capacity.summarized(_peers(network, topology, subnets), network.summarize)
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
                new_profiles=new, offline=_offline(network, topology, service),
            )  # fmt: skip

        cloud = planned(renewed)
        rotating = network.name in rotate
        if service is not None:
            more = _successors(network, topology, service, obs, cloud, renewed, rotating)
            if more:  # the VM made beside gets a connector of its own on the service
                plans[0] = replace(plans[0], changes=plans[0].changes + tuple(more))
                renewed |= {(network.name, c.member) for c in more if c.action is Action.CREATE}
                cloud = planned(renewed)
        if rotating:
            cloud = replace(cloud, notes=cloud.notes + _rotation_notes(network, obs, cloud))
        plans.append(replace(cloud, fills=capacity.fills(network.name, obs, cloud.changes)))
    networks = capacity.across(plans)
    return Plan(operation="apply", networks=networks, vpn_subnet=topology.vpn_subnet)


def _offline(
    network: Network, topology: Topology, service: ObservedService | None
) -> frozenset[int]:
    """The members whose connector on the VPN service (the newest of ours) is not ONLINE."""
    from .service_planner import our_connector, vpn_region

    found = service.network(network.name) if service is not None else None
    if found is None or network.connector is None:
        return frozenset()
    region = vpn_region(network, topology)
    out = set()
    for m in range(len(network.connector.subnets)):
        ours = our_connector(found, network.name, region, m)
        if ours is not None and ours.status != "ONLINE":
            out.add(m)
    return frozenset(out)


def _successors(
    network: Network,
    topology: Topology,
    service: ObservedService,
    obs: Observed,
    plan: NetworkPlan,
    renewed: frozenset[tuple[str, int]],
    rotate: bool = False,
) -> list[Change]:
    """A connector VM made beside the one it replaces dials in while the old one still does: it
    needs a connector of its own on the VPN service (which admits one session per connector),
    made first; the old one's goes after the clouds' changes. `rotate`: every member's VM gets
    one (and is replaced for it). None when the newest connector of ours is not the one the
    old VM dials in with: an interrupted run made it for this."""
    from .service_planner import successor, vpn_region

    assert network.connector is not None
    found = service.network(network.name)
    replacing: dict[int, tuple[str, str]] = {}  # member -> (the VM it replaces, why)
    for c in plan.changes:
        if c.kind is Kind.CONNECTOR and c.action is Action.CREATE and c.previous_target:
            replacing[c.member] = (c.previous_target, f"for {c.resource}")
    if rotate:
        for vm in pair_of(obs):  # (newest first: a member's newest is the one it runs)
            replacing.setdefault(vm.member, (vm.instance, "(rotate)"))
    out: list[Change] = []
    for member, (instance, why) in sorted(replacing.items()):
        profile = network.connector.member_profile(member)
        if found is None or (network.name, member) in renewed:
            continue
        if not isinstance(profile, ServiceProfile):
            continue
        old = next((x for x in pair_of(obs) if x.instance == instance), None)
        if old is not None and old.runs not in (None, profile_mark(profile.fingerprint)):
            continue
        out += successor(network.name, found, vpn_region(network, topology), member, why)
    return out


def _rotation_notes(network: Network, obs: Observed, plan: NetworkPlan) -> tuple[str, ...]:
    """What `provision rotate` does to the network's connectors, or why nothing."""
    assert network.connector is not None
    notes = []
    for member in range(len(network.connector.subnets)):
        profile = network.connector.member_profile(member)
        whose = f" (of the pair: {member + 1})" if network.connector.ha else ""
        new = any(c.kind is Kind.CONNECTOR and c.member == member and c.action in
                  (Action.CREATE, Action.REPLACE) for c in plan.changes)  # fmt: skip
        handed = any(c.kind is Kind.PART and c.part is not None and c.part.member == member
                     and c.part.kind == PROFILE_PART for c in plan.changes)  # fmt: skip
        if isinstance(profile, ServiceProfile) and new:
            notes.append(f"rotate{whose}: a new connector on the VPN service, its profile stored "
                         "for a new VM; the old connector and its profile are removed once the "
                         "routes have left the old VM")  # fmt: skip
        elif isinstance(profile, ServiceProfile) and handed:
            notes.append(f"rotate{whose}: a new connector on the VPN service, its profile handed "
                         "to the running VM, which dials in again with it (a gap of seconds); "
                         "the old connector and its profile are removed after")  # fmt: skip
        elif isinstance(profile, ServiceProfile):
            notes.append(f"rotate{whose}: no connector VM to hand a new profile to")
        elif new:
            notes.append(f"rotate{whose}: the new profile file is stored and a new VM dials in "
                         "with it; the old profile's VM goes once the routes have left it")  # fmt: skip
        else:
            path = getattr(profile, "path", "the profile file")
            notes.append(f"rotate{whose}: nothing to rotate: {path} is the profile the connector "
                         "already dials in with; put the new profile there first (revoke the "
                         "old one on the VPN service once it is handed over)")  # fmt: skip
    return tuple(notes)


@dataclass
class _Slot:
    """One connector the file wants (a pair has two): what is there, and what apply does to it."""

    member: int
    subnet: ObservedSubnet
    want: DesiredConnector
    current: ObservedConnector | None
    changes: list[Change]
    new: bool  # launched in this apply (made or replaced)

    @property
    def stays(self) -> bool:
        """There, running, and kept: routes may lead to it before anything else is done."""
        return (
            self.current is not None
            and not self.new
            and self.current.state == ConnectorState.RUNNING
        )

    @property
    def interface(self) -> str:
        if self.new or self.current is None or not self.current.interface:
            return NEW_CONNECTOR
        return self.current.interface


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
    # supporting parts the VMs need, in the provider's order; stored profiles follow the file
    changes: list[Change] = []
    for part in obs.parts:
        if not part.after_connector and part.wanted:
            changes += _part_changes(name, part, prints.get(part.member, ""), vm_is_new=False)
    renewed = {
        ch.part.member
        for ch in changes
        if ch.kind is Kind.PART and ch.action is Action.UPDATE and ch.part is not None
    }
    slots, extras = _slots(network, topology, obs, local, renewed, prints)
    # routes lead to one connector: the one they lead to now if it stays, else one that stays,
    # else one launched fresh (made before the routes, the others replaced after them)
    active = active_connector(network, obs)
    target = (
        next((s for s in slots if s.stays and s.current == active), None)
        or next((s for s in slots if s.stays), None)
        or next((s for s in slots if s.current is None), None)
        # both replaced: the one the routes do not lead to first, the active one after them
        or next((s for s in slots if s.current != active), None)
        or slots[0]
    )
    changes += target.changes
    old = hand_made(network, topology, obs)  # a connector made by hand, taken over
    if makes_before_break(network):  # where the new VM, or the VPN service, says it is ready
        others = [s.current for s in slots if s is not target]
        ready = _ready_changes(name, target, extras, others, target.member in offline, old)
        changes += [_told_by_service(c, network, obs, prints, new_profiles) for c in ready]
    front, front_changes = _front_changes(network, obs, target)
    changes += front_changes
    changes += _ingress_changes(name, obs, local)
    wanted_rules = app_rules(network, topology, subnets)
    access = _app_access_changes(network, obs, wanted_rules)
    # where the app groups admit the connector by its own address (Azure, NAT everything), a
    # VM made beside the old one is admitted by its own before the routes move to it, and the
    # old one's address only once the old VM is gone
    by_address = CLOUD_SCHEMAS[network.cloud].connector_by_address
    old_addresses = {
        IPv4Network(f"{x.private_ip}/32") for x in extras if x.private_ip
    } | ({IPv4Network(f"{target.current.private_ip}/32")}
         if target.new and target.current is not None and target.current.private_ip else set())  # fmt: skip
    late = [c for c in access if by_address and c.action is Action.DELETE and c.rule is not None
            and c.rule.source in old_addresses]  # fmt: skip
    changes += [c for c in access if c not in late]
    readdressed: list[Change] = []
    if by_address and beside_made(target):
        for g in obs.app_groups:
            for rule in wanted_rules.get(g.id, ()):
                if rule.source == CONNECTOR_SOURCE and rule in set(g.rules):
                    changes.append(Change(name, Action.CREATE, Kind.APP_ACCESS, g.id,
                                          WHY_APP_ACCESS_NAT + " (the new connector's address)",
                                          rule=rule, target=NEW_CONNECTOR))  # fmt: skip
                    readdressed.append(Change(name, Action.DELETE, Kind.APP_ACCESS, g.id,
                                              "the replaced connector's address",
                                              rule=rule, previous_target="replaced"))  # fmt: skip
    destinations = routed_destinations(network, topology, subnets)
    ours = {x.interface for x in pair_of(obs) if x.interface}
    if obs.front is not None:
        ours.add(obs.front.id)
    routes, conflicts = _route_changes(
        network, obs, destinations, target, front or target.interface, ours,
        replace_conflicting_routes, old,
    )  # fmt: skip
    if old is not None:  # the VPN range's routes move last, a step of their own (see stages)
        last = [r for r in routes if takes_vpn(r, old)]
        routes = [r for r in routes if r not in last] + last
    changes += routes
    for slot in slots:
        if slot is not target:
            changes += slot.changes
    if obs.front is not None and not front:
        changes.append(
            Change(name, Action.DELETE, Kind.FRONT, obs.front.id,
                   f"the file no longer has a pair: its {obs.front.name} goes")
        )  # fmt: skip
    changes += _delete_connectors(
        name,
        extras,
        "no longer a connector the file wants (its routes lead to the one that stays first)",
    )
    replaced = [
        s.current for s in slots
        if s.new and s.current is not None
        and not any(c.kind is Kind.CONNECTOR and c.action is Action.REPLACE for c in s.changes)
    ]  # fmt: skip
    changes += _delete_connectors(
        name, replaced, "replaced: the routes lead to the new connector now (made before break)"
    )
    changes += late + readdressed  # (the old VM's address, once it is gone)
    # what a setting the file no longer has left (a pair's): once nothing uses it
    changes += [
        Change(name, Action.DELETE, Kind.PART, p.name, "the file no longer needs it", part=p)
        for p in reversed(obs.parts)
        if p.present and not p.wanted
    ]
    notes = _notes(network, target.subnet, None if target.new else target.current, local)
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
        notes += _pair_notes(network, slots, target)
    if replace_conflicting_routes and conflicts:
        notes.append(f"{len(conflicts)} conflicting route(s) will be replaced")
    return NetworkPlan(
        network=network.name,
        cloud=network.cloud,
        changes=tuple(changes),
        conflicts=tuple(conflicts) if not replace_conflicting_routes else (),
        notes=tuple(notes),
        hand_made=old.instance if old is not None else None,
    )


def _front_changes(network: Network, obs: Observed, target: _Slot) -> tuple[str, list[Change]]:
    """Where the cloud moves a front rather than the routes (CLOUD_SCHEMAS' ha_front): the
    front made on the target connector, or moved to it, before the routes name it. Returns
    what the routes name ("" where there is no front) and the change."""
    schema = CLOUD_SCHEMAS[network.cloud]
    assert network.connector is not None
    if not (network.connector.ha and schema.ha_front):
        return "", []
    where = "the new connector" if target.interface == NEW_CONNECTOR else target.interface
    if obs.front is None:
        why = (f"the {schema.ha_front} the routes name: it leads to the active connector, "
               f"and the standby's watchdog moves it to itself")  # fmt: skip
        return NEW_FRONT, [
            Change(network.name, Action.CREATE, Kind.FRONT, f"{schema.ha_front} on {where}", why,
                   target=target.interface, member=target.member)
        ]  # fmt: skip
    if schema.ha_front_probed:  # nothing to move: its probe decides; new members join it
        if obs.front.complete:
            return obs.front.id, []
        why = f"every connector of the pair behind the {schema.ha_front}"
        return obs.front.id, [
            Change(network.name, Action.UPDATE, Kind.FRONT, obs.front.id, why,
                   target=target.interface, member=target.member)
        ]  # fmt: skip
    if target.interface == NEW_CONNECTOR or obs.front.holder != target.interface:
        why = (f"the routes lead to {where}: the {schema.ha_front} moves to it "
               f"(from {obs.front.holder or 'nowhere'})")  # fmt: skip
        return obs.front.id, [
            Change(network.name, Action.UPDATE, Kind.FRONT, obs.front.id, why,
                   target=target.interface, previous_target=obs.front.holder,
                   member=target.member)
        ]  # fmt: skip
    return obs.front.id, []


def _slots(
    network: Network,
    topology: Topology,
    obs: Observed,
    local: tuple[IPv4Network, ...],
    renewed: set[int],
    prints: Mapping[int, str],
) -> tuple[list[_Slot], list[ObservedConnector]]:
    """Each connector the file wants, matched with the one found of that member (the newest);
    the others found are extras, deleted once the routes lead elsewhere."""
    c = network.connector
    assert c is not None
    found: dict[int, ObservedConnector] = {}
    extras: list[ObservedConnector] = []
    for x in pair_of(obs):
        if x.member < len(c.subnets) and x.member not in found:
            found[x.member] = x
        else:
            extras.append(x)
    # what the bootstrap a connector was launched with says: None, it may stay; else why not.
    # One launched as one of a pair may stay alone (its watchdog finds no pair and idles).
    other = bootstrap_fingerprint(network, local, topology.vpn_subnet, ha=not c.ha)
    slots = []
    for member, subnet_id in enumerate(c.subnets):
        subnet = obs.subnet(subnet_id)
        assert subnet is not None  # check_against_cloud
        want = desired_connector(
            network,
            local,
            topology.vpn_subnet,
            public_address=subnet.way_out is WayOut.INTERNET_GATEWAY,
            member=member,
        )
        current = found.get(member)
        fits = {
            want.fingerprint: None,
            other: "it runs without the pair's watchdog" if c.ha else None,
        }
        beside = makes_before_break(network) and not c.ha
        changes, new = _vm_changes(
            network, obs, subnet, want, current, member in renewed, prints[member], fits, beside
        )
        slots.append(_Slot(member, subnet, want, current, changes, new))
    return slots, extras


def _vm_changes(
    network: Network,
    obs: Observed,
    subnet: ObservedSubnet,
    want: DesiredConnector,
    current: ObservedConnector | None,
    profile_changed: bool,
    profile_fingerprint: str,
    fits: Mapping[str, str | None],
    beside: bool = False,
) -> tuple[list[Change], bool]:
    """One connector's VM, its forwarding flag, and the parts that hang on the VM: (changes,
    whether the VM is new). `beside`: one to replace is made beside the old one (which the
    caller deletes once the routes lead to the new one)."""
    name, member = network.name, want.member
    changes: list[Change] = []
    # the stored profile changed, or the VM dials in with another than the one stored (an
    # interrupted run stored the new one and stopped before the VM was replaced); not where the
    # profile is handed to the running VM (Azure's extension)
    runs = current.runs if current is not None else None
    in_place = any(
        p.kind == PROFILE_PART and p.after_connector and p.member == member for p in obs.parts
    )
    profile_changed |= (
        not in_place and runs is not None and runs != profile_mark(profile_fingerprint)
    )
    reasons = _replace_reasons(network, obs, subnet, want, current, profile_changed, fits)
    if current is None:
        changes.append(
            Change(
                name,
                Action.CREATE,
                Kind.CONNECTOR,
                f"VM in {want.subnet}" + (f" (of the pair: {member + 1})" if want.ha else ""),
                WHY_LAUNCH,
                connector=want,
                member=member,
            )
        )
    elif reasons and beside:
        why = (f"{WHY_LAUNCH}; replaces {current.instance} ({', '.join(reasons)}), made beside "
               "it: the routes move to the new one once it runs, then the old one goes")  # fmt: skip
        changes.append(
            Change(name, Action.CREATE, Kind.CONNECTOR, f"VM in {want.subnet} (replacing "
                   f"{current.instance})", why, connector=want, member=member,
                   previous_target=current.instance)
        )  # fmt: skip
    elif reasons:
        why = WHY_LAUNCH + "; replaced: " + ", ".join(reasons)
        if not want.ha:
            why += (" (the old one goes first: the routes lead nowhere until the new one runs; "
                    "make before break is not yet done on this cloud)")  # fmt: skip
        changes.append(
            Change(
                name,
                Action.REPLACE,
                Kind.CONNECTOR,
                current.instance,
                why,
                connector=want,
                member=member,
            )
        )
    elif current.state in (ConnectorState.STOPPED, ConnectorState.STOPPING):
        changes.append(
            Change(
                name,
                Action.START,
                Kind.CONNECTOR,
                current.instance,
                "the connector is stopped: nothing routes",
                member=member,
            )
        )
    new = current is None or bool(reasons)
    interface = NEW_CONNECTOR if new else current.interface  # type: ignore[union-attr]
    assert interface is not None
    # (a cloud that sets the flag only at launch launched it so, or replaces it above)
    if not obs.forwarding_at_launch and (new or not current.forwarding):  # type: ignore[union-attr]
        changes.append(
            Change(name, Action.UPDATE, Kind.FORWARDING, interface, WHY_FORWARDING, member=member)
        )
    # parts that hang on the VM itself (a VM extension...): a new VM needs them again
    for part in obs.parts:
        if part.after_connector and part.member == member and part.wanted:
            changes += _part_changes(name, part, profile_fingerprint, vm_is_new=new)
    return changes, new


def _replace_reasons(
    network: Network,
    obs: Observed,
    subnet: ObservedSubnet,
    want: DesiredConnector,
    current: ObservedConnector | None,
    profile_changed: bool,
    fits: Mapping[str, str | None],
) -> list[str]:
    """Why the connector that is there cannot stay (none: it stays). `fits`: the bootstraps it
    may have been launched with."""
    c = network.connector
    assert c is not None
    if current is None:
        return []
    reasons = []
    if current.size != c.size:
        reasons.append(f"size {current.size} -> {c.size}")
    if current.subnet != want.subnet:
        reasons.append(f"subnet {current.subnet} -> {want.subnet}")
    if current.bootstrap not in fits or fits[current.bootstrap]:
        reasons.append(
            fits.get(current.bootstrap)
            or "bootstrap settings changed (nat, subnets, image or interface)"
        )
    if profile_changed:
        reasons.append("VPN profile changed")
    if obs.newer_image and not c.image and current.image != obs.newer_image[0]:
        reasons.append(f"image {current.image} -> {obs.newer_image[0]} (--roll)")
    if obs.forwarding_at_launch and not current.forwarding:
        reasons.append("it cannot forward packets, and the flag is set only at launch")
    if current.subnet == want.subnet and lacks_public_address(subnet, current):
        # a public address is given at launch only (seed remote access step 3)
        reasons.append(
            f"it has no public address and its subnet reaches the internet only through "
            f"internet gateway {subnet.via}, so it cannot dial the VPN service"
        )
    return reasons


def _pair_notes(network: Network, slots: list[_Slot], target: _Slot) -> list[str]:
    assert network.connector is not None
    where = " and ".join(f"{s.want.subnet}" + (f" ({s.subnet.zone})" if s.subnet.zone else "")
                         for s in slots)  # fmt: skip
    lead = target.current.instance if not target.new and target.current else "the new connector"
    notes = [
        f"connector pair in {where}: the routes lead to one ({lead} in {target.want.subnet}); "
        "when it is down (VM gone, or its tunnel down), "
        + CLOUD_SCHEMAS[network.cloud].ha_mechanism.replace("<network>", network.name)
    ]
    zones = {s.subnet.zone for s in slots}
    if len(zones) == 1 and None not in zones:
        notes.append(
            f"warning: both connectors of the pair are in zone {zones.pop()}: an outage of that "
            "zone stops both"
        )
    return notes


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
    target: _Slot,
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
                    _route(
                        name, Action.CREATE, table.id, dest, interface, why, label=label,
                        member=member,
                    )
                )  # fmt: skip
                continue
            replace_why, taking = None, False
            state = route_state(route, interface)
            if state is RouteState.BLACKHOLE:
                replace_why = why + "; the current route is a blackhole"
            elif state is RouteState.OK:
                if route.stale:
                    replace_why = f"{why}; {route.stale}"
            elif route.target in ours:  # ours, to the connector being replaced or to the other
                replace_why = why
                if interface != target.interface:
                    replace_why += (
                        "; the pair's routes name its front, which leads to the active one"
                    )
                elif not target.new and len(ours) > 1:
                    replace_why += f"; the pair's routes lead to one connector, {interface}"
            elif old is not None and route.target == old.interface:
                replace_why = f"{why}; takes over from the hand-made connector {old.instance}"
                taking = True
            else:
                conflicts.append(Conflict(name, table.id, dest, route.target))
                if replace_conflicting_routes:
                    replace_why = (
                        why + "; replaces a conflicting route (--replace-conflicting-routes)"
                    )
            if replace_why:
                moved = _route(name, Action.REPLACE, table.id, dest, interface, replace_why,
                               route.target, label=label, member=member)  # fmt: skip
                changes.append(replace(moved, ref=TAKE_OVER) if taking else moved)
    selected_ids = {t.id for t in selected}
    for table in obs.route_tables:
        for route in table.routes:
            if route.target in ours and (
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
    member: int = 0,
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
        member=member,
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
        found = pair_of(obs)
        ours = {x.interface for x in found if x.interface}
        if obs.front is not None:
            ours.add(obs.front.id)
        if ours:
            for table in obs.route_tables:
                for route in table.routes:
                    if route.target in ours:
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
        if obs.front is not None:
            changes.append(Change(name, Action.DELETE, Kind.FRONT, obs.front.id,
                                  f"destroy: the pair's {obs.front.name}"))  # fmt: skip
        changes += _delete_connectors(name, found, "destroy: the connector VM")
        changes += _delete_parts(name, obs.parts, on_the_vm=False)
        plans.append(NetworkPlan(network=name, cloud=network.cloud, changes=tuple(changes)))
    if service is not None:
        plans.append(plan_service_destroy(topology, service))
    return Plan(operation="destroy", networks=tuple(plans), vpn_subnet=topology.vpn_subnet)


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


def _ready_changes(
    network: str,
    target: _Slot,
    extras: list[ObservedConnector],
    others: list[ObservedConnector | None],
    offline: bool = False,
    hand: ForeignConnector | None = None,
) -> list[Change]:
    """Before the routes move to a new connector while another one still carries them (one made
    beside the one it replaces; a pair's standby replaced first, before the active one): wait
    until it says its tunnel is up. Also when an interrupted run left it launched, not ready."""
    why = ("made before break: the routes move to it only once its tunnel is up; until then "
           "they stay on the one they lead to now")  # fmt: skip
    made = next(
        (c for c in target.changes
         if c.kind is Kind.CONNECTOR and c.action is Action.CREATE and c.previous_target),
        None,
    )  # fmt: skip
    if made is not None:
        return [Change(network, Action.UPDATE, Kind.READY, NEW_CONNECTOR, why,
                       previous_target=made.previous_target, member=target.member)]  # fmt: skip
    carrying = next((o for o in others if o is not None and o.state == ConnectorState.RUNNING),
                    None)  # fmt: skip
    if target.new and carrying is not None:  # a pair's member replaced while the other routes
        return [Change(network, Action.UPDATE, Kind.READY, NEW_CONNECTOR, why,
                       previous_target=carrying.instance, member=target.member)]  # fmt: skip
    if target.new and hand is not None:  # a hand-made connector carries them until ours is up
        return [Change(network, Action.UPDATE, Kind.READY, NEW_CONNECTOR, why,
                       previous_target=hand.instance, member=target.member)]  # fmt: skip
    current = target.current
    old = next((x for x in extras if x.state == ConnectorState.RUNNING), None)
    # (with the service block: not ONLINE there, whatever the VM says)
    if current is None or target.new or old is None or (current.ready is not False and not offline):
        return []
    return [Change(network, Action.UPDATE, Kind.READY, current.instance, why,
                   previous_target=old.instance, member=target.member)]  # fmt: skip


def _told_by_service(
    change: Change,
    network: Network,
    obs: Observed,
    prints: Mapping[int, str],
    new_profiles: frozenset[int],
) -> Change:
    """A new VM that dials in with a connector of its own on the VPN service (made for it: the
    one it replaces dialled in with another) is ready when the service says that connector is
    ONLINE; otherwise the VM's own word is waited for (the old session could still show)."""
    assert network.connector is not None
    member = change.member
    if not isinstance(network.connector.member_profile(member), ServiceProfile):
        return change
    old = next((c for c in pair_of(obs) if c.instance == change.previous_target), None)
    made_for_it = member in new_profiles or (
        old is not None and old.runs is not None and old.runs != profile_mark(prints[member])
    )
    return replace(change, target=VPN_SERVICE) if made_for_it else change


def beside_made(slot: _Slot) -> bool:
    """The slot's connector is made beside the one it replaces in this apply."""
    return any(c.kind is Kind.CONNECTOR and c.action is Action.CREATE and c.previous_target
               for c in slot.changes)  # fmt: skip


def makes_before_break(network: Network) -> bool:
    """A replaced single connector of the network is made beside the old one: where its cloud
    lets the new VM say it is up (or the VPN service says so)."""
    return CLOUD_SCHEMAS[network.cloud].make_before_break


def _delete_connectors(
    network: str, connectors: Sequence[ObservedConnector], why: str
) -> list[Change]:
    return [
        Change(network, Action.DELETE, Kind.CONNECTOR, x.instance, why, member=x.member)
        for x in connectors
    ]


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
def selected_tables(network: Network, obs: Observed) -> tuple[RouteTable, ...]:
    """The tables the spec selects that the cloud has (all of the network's by default)."""
    if network.route_tables is None:
        return tuple(t for t in obs.route_tables if t.in_all)
    wanted = set(network.route_tables)
    return tuple(t for t in obs.route_tables if t.id in wanted)
