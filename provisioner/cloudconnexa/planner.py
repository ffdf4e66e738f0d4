"""Decisions for the VPN service's half: the topology's networks + what the service holds ->
the plan's `cloudconnexa` entry, and the status of each network there. Pure but for asking
whether an external site's profile file is there.

Ours and theirs: a service network is ours when its description leads with our mark; one of
the file's name that is not ours is a conflict unless the file adopts it. Routes and connectors
of others are never removed."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Network

from ..model import (
    SERVICE_PLAN,
    Action,
    Change,
    Kind,
    Network,
    NetworkPlan,
    ObservedService,
    ServiceConflict,
    ServiceConnector,
    ServiceNetwork,
    ServiceStatus,
    Topology,
    service_connector_name,
    service_connector_of,
)

WHY_SERVICE_NETWORK = (
    "the VPN service sends a network's subnets to its connector only when it knows them: a "
    "network with one route per subnet and a connector (remote access hop 1, site-to-site hop 1)"
)
WHY_SERVICE_ROUTE = (
    "the VPN service sends this subnet to the network's connector only with a route for it "
    "(remote access hop 1, site-to-site hop 1)"
)
WHY_SERVICE_ROUTE_GONE = "no longer a subnet of this network in the file"
WHY_EGRESS_ON = "the VPN's internet traffic leaves through this network's connector (egress hop 1)"
WHY_EGRESS_OFF = "the file makes another network, or none, the VPN's way out (egress hop 1)"
WHY_SERVICE_CONNECTOR = (
    "the connector VM dials in with this connector's profile and gets its VPN address "
    "(remote access hop 2)"
)
WHY_PROFILE_OUT = (
    "the site's admin installs this profile on the site's own connector (remote access hop 2)"
)
WHY_PRUNE = "a network of ours on the service that is no longer in the file (--prune)"


def vpn_region(network: Network, topology: Topology) -> str:
    assert topology.service is not None
    if network.connector is not None and network.connector.vpn_region:
        return network.connector.vpn_region
    return topology.service.vpn_region


def egress(network: Network) -> bool:
    return bool(network.connector and network.connector.egress)


def members(network: Network) -> int:
    """How many connectors of ours the network has on the service: two for a pair."""
    return len(network.connector.subnets) if network.connector is not None else 1


def _change(
    action: Action, kind: Kind, network: str, resource: str, why: str, **kw: object
) -> Change:
    return Change(SERVICE_PLAN, action, kind, resource, why, label=network, **kw)  # type: ignore[arg-type]


class AccountRoutes:
    """Every route on the VPN service's account, by address: which one, of another network,
    a subnet would overlap (the API refuses it with a 400). Sorted once; each look is a bisect
    and, rarely, a short walk back."""

    def __init__(self, observed: ObservedService) -> None:
        import bisect

        self._bisect = bisect.bisect_right
        routes = sorted(
            (
                int(r.subnet.network_address),
                int(r.subnet.broadcast_address),
                n.name,
                r.subnet,
                r.ours,
            )  # fmt: skip
            for n in observed.networks
            for r in n.routes
        )
        self._starts = [r[0] for r in routes]
        self._routes = routes
        self._reach: list[int] = []  # the highest address covered by routes[0..i]
        top = -1
        for r in routes:
            top = max(top, r[1])
            self._reach.append(top)

    def overlap(
        self, subnet: IPv4Network, network: str
    ) -> tuple[IPv4Network, str, IPv4Network] | None:
        start, end = int(subnet.network_address), int(subnet.broadcast_address)
        i = self._bisect(self._starts, end) - 1  # routes from here back start at or before its end
        while i >= 0 and self._reach[i] >= start:
            _, r_end, owner, route, ours = self._routes[i]
            # the network's own routes count unless they are this one or ours (which go first)
            mine = owner == network and (route == subnet or ours)
            if r_end >= start and not mine:
                return subnet, owner, route
            i -= 1
        return None


def plan_service(
    topology: Topology,
    observed: ObservedService,
    subnets: Mapping[str, tuple[IPv4Network, ...]],
    *,
    prune: bool = False,
) -> tuple[NetworkPlan, frozenset[tuple[str, int]]]:
    """The service's changes, and the connectors on the service that are new, as (network,
    member): the cloud side stores a new profile for each."""
    changes: list[Change] = []
    conflicts: list[ServiceConflict] = []
    account = AccountRoutes(observed)
    notes: list[str] = []
    renewed: set[tuple[str, int]] = set()
    for n in topology.networks:
        found = observed.network(n.name)
        want = subnets[n.name]
        region = vpn_region(n, topology)
        if found is None:
            routes = ", ".join(str(s) for s in want)
            count = "connector" if members(n) == 1 else f"{members(n)} connectors"
            resource = (f"{n.name} ({routes}; {count} in VPN region {region}"
                        f"{'; egress' if egress(n) else ''})")  # fmt: skip
            changes.append(_change(Action.CREATE, Kind.SERVICE_NETWORK, n.name, resource,
                                   WHY_SERVICE_NETWORK, target=region, subnets=want))  # fmt: skip
            renewed |= {(n.name, m) for m in range(members(n))}
        elif not found.ours and not n.adopt_service_network:
            conflicts.append(ServiceConflict(n.name, found.description))
            continue
        else:
            changes += _keep_up(n, found, want, region, renewed)
        clash = next((hit for s in want if (hit := account.overlap(s, n.name)) is not None), None)
        if clash is not None:
            subnet, other, other_subnet = clash
            conflicts.append(ServiceConflict(n.name, "", str(subnet), other, str(other_subnet)))
        if n.profile_out is not None and ((n.name, 0) in renewed or not n.profile_out.exists()):
            changes.append(_change(Action.CREATE, Kind.PROFILE_OUT, n.name, str(n.profile_out),
                                   WHY_PROFILE_OUT))  # fmt: skip
    if any(c.kind in (Kind.SERVICE_NETWORK, Kind.SERVICE_CONNECTOR) and c.action is Action.CREATE
           for c in changes):  # fmt: skip
        notes.append(
            f"VPN region {topology.service.vpn_region} (service.cloudconnexa.vpn_region): where "  # type: ignore[union-attr]
            "the connectors attach on the VPN service, whatever their cloud's region (a "
            "network's connector.vpn_region overrides it)"
        )
    left, said = _not_in_the_file(topology, observed, prune)
    changes += left
    notes += said
    plan = NetworkPlan(
        network=SERVICE_PLAN,
        cloud="cloudconnexa",
        changes=tuple(changes),
        conflicts=tuple(conflicts),
        notes=tuple(notes),
    )
    return plan, frozenset(renewed)


def _not_in_the_file(
    topology: Topology, observed: ObservedService, prune: bool
) -> tuple[list[Change], list[str]]:
    """The service's networks the file does not name: other files' (said, never touched), and
    ours that left it (deleted with --prune, else said)."""
    changes: list[Change] = []
    notes: list[str] = []
    names = {n.name for n in topology.networks}
    theirs = sorted(sn.name for sn in observed.networks if sn.theirs and sn.name not in names)
    if theirs:
        notes.append(
            f"{len(theirs)} network(s) of other files on this account, never touched: "
            + ", ".join(f"{name} ({observed.network(name).owner})" for name in theirs[:20])  # type: ignore[union-attr]
            + (" ..." if len(theirs) > 20 else "")
        )
    for sn in observed.networks:
        if not sn.ours or sn.name in names:
            continue
        if prune:
            changes.append(_change(Action.DELETE, Kind.SERVICE_NETWORK, sn.name,
                                   f"{sn.name} (its routes and connectors)", WHY_PRUNE, ref=sn.id))  # fmt: skip
        else:
            notes.append(
                f"{sn.name}: a network of ours on the VPN service that is no longer in the file "
                f"({sn.description}); its connector on the service stays until apply --prune"
            )
    return changes, notes


def _keep_up(
    n: Network,
    found: ServiceNetwork,
    want: tuple[IPv4Network, ...],
    region: str,
    renewed: set[tuple[str, int]],
) -> list[Change]:
    """An existing network (ours, or adopted) brought to what the file says: its egress flag,
    a route per subnet (ours removed when no longer wanted; others' never), our connector."""
    changes = []
    if found.egress != egress(n):
        why = WHY_EGRESS_ON if egress(n) else WHY_EGRESS_OFF
        resource = f"{n.name}: egress {'on' if egress(n) else 'off'}"
        changes.append(_change(Action.UPDATE, Kind.SERVICE_NETWORK, n.name, resource, why,
                               ref=found.id))  # fmt: skip
    have = {r.subnet for r in found.routes}
    # the old routes go first: no two routes of the account may overlap, the network's own
    # included, so a range narrowed or widened is deleted before its new route is made
    for route in found.routes:
        if route.ours and route.subnet not in want:
            changes.append(_change(Action.DELETE, Kind.SERVICE_ROUTE, n.name,
                                   f"{route.subnet} on {n.name}", WHY_SERVICE_ROUTE_GONE,
                                   ref=route.id, destination=route.subnet))  # fmt: skip
    for subnet in want:
        if subnet not in have:
            changes.append(_change(Action.CREATE, Kind.SERVICE_ROUTE, n.name,
                                   f"{subnet} on {n.name}", WHY_SERVICE_ROUTE, ref=found.id,
                                   destination=subnet))  # fmt: skip
    for member in range(members(n)):
        changes += _keep_connector(n, found, region, member, renewed)
    # a pair's second connector, when the file has one connector again
    for extra in found.connectors:
        if extra.ours and (_member(extra, n.name) or 0) >= members(n):
            changes.append(_change(Action.DELETE, Kind.SERVICE_CONNECTOR, n.name,
                                   f"{extra.name} on {n.name}",
                                   "the file no longer has a connector pair here",
                                   ref=found.id, previous_target=extra.id))  # fmt: skip
    return changes


def _member(c: ServiceConnector, network: str) -> int | None:
    seen = service_connector_of(c.name, network)
    return seen[0] if seen is not None else None


def mine(found: ServiceNetwork, network: str, member: int) -> list[ServiceConnector]:
    """Our connectors for the network's `member`, every generation, the oldest first."""
    out = []
    for c in found.connectors:
        seen = service_connector_of(c.name, network)
        if c.ours and seen is not None and seen[0] == member:
            out.append((seen[1], c))
    return [c for _, c in sorted(out, key=lambda g: g[0])]


def _generation(c: ServiceConnector, network: str) -> int:
    seen = service_connector_of(c.name, network)
    return seen[1] if seen is not None else 1


def _keep_connector(
    n: Network, found: ServiceNetwork, region: str, member: int, renewed: set[tuple[str, int]]
) -> list[Change]:
    """One connector of ours on the network (a pair has two): made, or made anew in the region.
    The one it replaces, and any left by an interrupted replacement, go after the clouds' changes
    (the VM that dials in with it is replaced first)."""
    changes = []
    ours = mine(found, n.name, member)
    keep = our_connector(found, n.name, region, member)
    if keep is None:
        changes.append(_change(Action.CREATE, Kind.SERVICE_CONNECTOR, n.name,
                               f"{service_connector_name(n.name, member)} in VPN region {region} "
                               f"on {n.name}",
                               WHY_SERVICE_CONNECTOR, target=region, ref=found.id,
                               member=member))  # fmt: skip
        renewed.add((n.name, member))
    elif keep.region != region:
        changes += successor(n.name, found, region, member, f"in {region} (was {keep.region})")
        renewed.add((n.name, member))
        return changes
    for extra in ours:  # left by an interrupted replacement: the newest is the one kept
        if extra is not keep:
            changes.append(_retire(n.name, found, extra, "a leftover: the network keeps one"))
    return changes


WHY_SUCCESSOR = (
    "the new VM dials in with a profile of its own while the old one still carries the traffic "
    "(the service admits one session per connector): " + WHY_SERVICE_CONNECTOR
)


def successor(
    network: str, found: ServiceNetwork, region: str, member: int, because: str
) -> list[Change]:
    """A connector made to replace ours for `member` (of the next generation), and ours removed
    once the clouds' changes are done: the VM that dials in with it is replaced by then."""
    ours = mine(found, network, member)
    generation = max((_generation(c, network) for c in ours), default=0) + 1
    name = service_connector_name(network, member, generation)
    changes = [_change(Action.CREATE, Kind.SERVICE_CONNECTOR, network,
                       f"{name} {because} on {network}", WHY_SUCCESSOR, target=region,
                       ref=found.id, member=member, generation=generation)]  # fmt: skip
    for old in ours:
        changes.append(_retire(network, found, old, f"replaced by {name}"))
    return changes


def _retire(network: str, found: ServiceNetwork, c: ServiceConnector, why: str) -> Change:
    """Our connector `c` removed, after the clouds' changes (its profile revoked with it)."""
    return _change(Action.DELETE, Kind.SERVICE_CONNECTOR, network,
                   f"{c.name} in {c.region} on {network}",
                   f"{why}; removed once no VM dials in with it (its profile is revoked with it)",
                   ref=found.id, previous_target=c.id)  # fmt: skip


def our_connector(
    found: ServiceNetwork, network: str, region: str, member: int = 0
) -> ServiceConnector | None:
    """Our connector on the network (of a pair: `member`'s): the newest generation in the
    wanted region (an interrupted replacement leaves two), else the newest."""
    ours = mine(found, network, member)
    there = [c for c in ours if c.region == region]
    return (there or ours)[-1] if ours else None


def plan_service_destroy(topology: Topology, observed: ObservedService) -> NetworkPlan:
    """What apply made on the service: our networks go whole; on an adopted network, our
    routes and our connector (the API keeps a network's last connector: then it stays)."""
    changes: list[Change] = []
    notes: list[str] = []
    for n in topology.networks:
        if n.profile_out is not None and n.profile_out.exists():
            changes.append(_change(Action.DELETE, Kind.PROFILE_OUT, n.name, str(n.profile_out),
                                   "destroy: the site's profile (its connector goes)"))  # fmt: skip
        found = observed.network(n.name)
        if found is None:
            continue
        if found.ours and not n.adopt_service_network:
            changes.append(_change(Action.DELETE, Kind.SERVICE_NETWORK, n.name,
                                   f"{n.name} (its routes and connectors)",
                                   "destroy: the network we made on the VPN service",
                                   ref=found.id))  # fmt: skip
            continue
        if not n.adopt_service_network:
            continue  # theirs, not adopted: nothing of it is ours
        for route in found.routes:
            if route.ours:
                changes.append(_change(Action.DELETE, Kind.SERVICE_ROUTE, n.name,
                                       f"{route.subnet} on {n.name}", "destroy: a route we added",
                                       ref=route.id, destination=route.subnet))  # fmt: skip
        ours = [c for c in found.connectors if c.ours and _member(c, n.name) is not None]
        others = len(found.connectors) - len(ours)
        for i, c in enumerate(ours):
            if others or i < len(ours) - 1:
                changes.append(_change(Action.DELETE, Kind.SERVICE_CONNECTOR, n.name,
                                       f"{c.name} on {n.name}", "destroy: a connector we added",
                                       ref=found.id, previous_target=c.id))  # fmt: skip
            else:
                notes.append(
                    f"{n.name}: our connector {c.name} is the network's last; the API keeps a "
                    "network's last connector (adopted: the network is not ours to delete)"
                )
    return NetworkPlan(
        network=SERVICE_PLAN, cloud="cloudconnexa", changes=tuple(changes), notes=tuple(notes)
    )


def service_status(
    network: Network,
    topology: Topology,
    observed: ObservedService,
    subnets: Mapping[str, tuple[IPv4Network, ...]],
) -> ServiceStatus:
    found = observed.network(network.name)
    if found is None:
        want = tuple((str(s), "MISSING") for s in subnets[network.name])
        return ServiceStatus(False, False, want, egress_wanted=egress(network))
    have = {r.subnet for r in found.routes}
    want_set = set(subnets[network.name])
    routes = [(str(s), "ok" if s in have else "MISSING") for s in subnets[network.name]]
    routes += [(str(r.subnet), "EXTRA") for r in found.routes if r.subnet not in want_set]
    region = vpn_region(network, topology)
    ours = our_connector(found, network.name, region)
    second = our_connector(found, network.name, region, 1) if members(network) > 1 else None
    return ServiceStatus(
        found=True,
        ours=found.ours,
        routes=tuple(routes),
        egress=found.egress,
        egress_wanted=egress(network),
        connector=ours.status if ours else None,
        address=ours.address if ours else None,
        pair=members(network) > 1,
        second=second.status if second else None,
        second_address=second.address if second else None,
        access=_access(observed, found.id),
    )


def _access(observed: ObservedService, network_id: str) -> str | None:
    """Who the service lets reach the network, when its policy rather than the clouds
    decides (topology CUSTOM: the access groups), or why it could not be read."""
    policy = observed.policy
    if policy is None or (not policy.decides and policy.error is None):
        return None
    if policy.error is not None:
        return f"not read ({policy.error}): the service's access policy may refuse traffic"
    got, groups = policy.admits(("USER_GROUP", None), ("NETWORK_SERVICE", network_id))
    who = {"all": "every VPN user", "part": "some VPN users", "none": "no VPN user"}[got]
    named = f" (access groups: {', '.join(groups)})" if groups else ""
    return f"topology {policy.topology}: the service's access groups decide: {who}{named}"
