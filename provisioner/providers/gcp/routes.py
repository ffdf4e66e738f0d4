"""GCP's routes: the network's routes of ours (by name, scoped to instance tags or the whole
network) and each subnet's way out (its default route, or a Cloud NAT of its region)."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from ...model import (
    Action,
    Change,
    ConnectorState,
    ForeignConnector,
    ObservedRoute,
    ObservedSubnet,
    RouteTable,
    WayOut,
)
from .common import LABEL, WHOLE_NETWORK, GcpState, dashed, fit, partial, short
from .instance import STATES

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")


# a route whose next hop is one of these carries nothing: a blackhole
DEAD_HOPS = {
    "NEXT_HOP_INSTANCE_NOT_FOUND",
    "NEXT_HOP_INSTANCE_NOT_ON_NETWORK",
    "NEXT_HOP_CANNOT_IP_FORWARD",
    "NEXT_HOP_ADDRESS_NOT_ASSIGNED",
}


NAT_ALL = ("ALL_SUBNETWORKS_ALL_IP_RANGES", "ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES")


def _foreign(routes: list[Any], instances: list[Any], ours: set[str | None]) -> tuple[ForeignConnector, ...]:  # fmt: skip
    """The instances not of ours that routes name as next hop and that may forward
    (canIpForward): from what observe read already, no call more."""
    by_hop = {f"zones/{short(i.zone)}/instances/{i.name}": i for i in instances}
    out = {}
    for r in routes:
        hop = _hop(r) if r.next_hop_instance else ""
        vm = by_hop.get(hop)
        if vm is None or hop in ours or hop in out or not vm.can_ip_forward:
            continue
        if LABEL in (vm.labels or {}):  # another network's connector of ours: a conflict
            continue
        out[hop] = ForeignConnector(hop, hop, STATES.get(vm.status, ConnectorState.PENDING),
                                    vm.name)  # fmt: skip
    return tuple(out.values())


def _hop(route: Any) -> str:
    """A route's next hop as the plan shows it: the instance as zones/<z>/instances/<name>,
    else the gateway, address or tunnel."""
    if route.next_hop_instance:
        path = partial(route.next_hop_instance)
        return path.split("/", 2)[2] if path.startswith("projects/") else path
    for value in (
        route.next_hop_gateway,
        route.next_hop_ip,
        route.next_hop_ilb,
        route.next_hop_vpn_tunnel,
        route.next_hop_network,
    ):
        if value:
            return short(value) if "/" in value else value
    return route.name


def _cloud_nat(subnet: Any, routers: list[Any], network_url: str) -> str | None:
    for router in routers:
        if partial(router.network) != network_url:
            continue
        for nat in router.nats or []:
            mode = nat.source_subnetwork_ip_ranges_to_nat
            if mode in NAT_ALL or any(
                partial(s.name) == partial(subnet.self_link) for s in nat.subnetworks or []
            ):
                return f"Cloud NAT {nat.name} on router {router.name}"
    return None


class Routes(GcpState):
    """The connector's routes in the network's words."""

    @property
    def whole_network(self) -> str:
        return WHOLE_NETWORK + self.location.network

    def _is_ours(self, route: Any) -> bool:
        return route.name.startswith(f"cp-{self.network.name}-") and bool(
            route.next_hop_instance or route.next_hop_ilb
        )

    def _observe_routes(
        self, routes: list[Any], tags: set[str]
    ) -> tuple[tuple[RouteTable, ...], dict[tuple[str, IPv4Network], str]]:
        """One table per scope: the whole network, or each tag. In each, per destination, what
        decides it for those instances: a foreign route at our priority or better (a conflict),
        else ours. Routes are sorted once, so 500 scopes cost no more than one. With the tables,
        each (scope, destination)'s route name, which apply deletes by."""
        whole = self.whole_network
        scopes = [whole] if self.network.route_tables is None else list(self.network.route_tables)
        ours: dict[str, list[tuple[IPv4Network, Any]]] = {}
        untagged: list[tuple[IPv4Network, Any]] = []  # foreign, for every instance
        tagged: list[tuple[IPv4Network, Any]] = []  # foreign, for some instances
        by_tag: dict[str, list[tuple[IPv4Network, Any]]] = {}
        for r in routes:
            try:
                destination = IPv4Network(r.dest_range)
            except ValueError:
                continue
            if self._is_ours(r):
                scope = r.tags[0] if r.tags else whole
                ours.setdefault(scope, []).append((destination, r))
                if scope not in scopes:  # left when the selection shrank
                    scopes.append(scope)
            elif r.priority <= self.priority:
                if not r.tags:
                    untagged.append((destination, r))
                else:
                    tagged.append((destination, r))
                    for t in r.tags:
                        by_tag.setdefault(t, []).append((destination, r))
        out = []
        names: dict[tuple[str, IPv4Network], str] = {}
        for scope in scopes:
            tag = None if scope == whole else scope
            chosen: dict[IPv4Network, tuple[Any, bool]] = {
                d: (r, True) for d, r in ours.get(scope, [])
            }
            for destination, r in untagged + (tagged if tag is None else by_tag.get(tag, [])):
                held = chosen.get(destination)
                if held is None or held[1] or r.priority < held[0].priority:
                    chosen[destination] = (r, False)
            table = []
            for destination, (r, mine) in sorted(chosen.items(), key=lambda kv: kv[0]):
                names[(scope, destination)] = r.name
                dead = any(w.code in DEAD_HOPS for w in r.warnings or [])
                stale = (
                    f"priority {r.priority}, the file wants {self.priority}"
                    if mine and r.priority != self.priority
                    else None
                )
                table.append(ObservedRoute(destination, _hop(r), not dead, stale))
            out.append(RouteTable(scope, tuple(table), in_all=tag is None))
        return tuple(out), names

    def _way_out(self, subnet: Any, routes: list[Any], routers: list[Any]) -> ObservedSubnet:
        """The best untagged 0.0.0.0/0 of the network, and Cloud NAT in the subnet's region."""
        defaults = sorted(
            (r for r in routes if r.dest_range == str(DEFAULT_ROUTE) and not r.tags),
            key=lambda r: r.priority,
        )
        table = self.whole_network
        if not defaults:
            return ObservedSubnet(subnet.name, WayOut.NONE, None, table)
        best = defaults[0]
        if any(w.code in DEAD_HOPS for w in best.warnings or []):
            return ObservedSubnet(subnet.name, WayOut.NONE, _hop(best), table)
        if best.next_hop_gateway:
            nat = _cloud_nat(subnet, routers, self.seen.network_url)
            if nat:
                return ObservedSubnet(subnet.name, WayOut.NAT_GATEWAY, nat, table)
            return ObservedSubnet(
                subnet.name, WayOut.INTERNET_GATEWAY, short(best.next_hop_gateway), table
            )
        return ObservedSubnet(subnet.name, WayOut.OTHER, _hop(best), table)

    def _route(self, change: Change) -> None:
        """Routes cannot be changed: a changed one is made anew under the other of its two
        names first, then the old one is deleted (both live for a moment and share the
        traffic), so the destination never falls to a worse route meanwhile."""
        from google.cloud import compute_v1

        assert change.route_table is not None and change.destination is not None
        scope, destination = change.route_table, change.destination
        current = self.seen.route_names.get((scope, destination))
        if change.action is Action.DELETE:
            if current:
                self.delete(f"route {current}", self.api.routes.delete_unary,
                            project=self.project, route=current)  # fmt: skip
            return
        hop = self.route_hop(change)
        tag = None if scope.startswith(WHOLE_NETWORK) else scope  # a tag has no '/'
        name = self.route_name(tag, destination)
        if name == current:
            name = self.route_name(tag, destination, other=True)
        route = compute_v1.Route(
            name=name,
            network=self.seen.network_url,
            dest_range=str(destination),
            priority=self.priority,
            **hop,
            tags=[tag] if tag else [],
            description=f"connector-provisioner: {self.network.name}: {change.why}"[:2048],
        )
        self._insert(
            f"route {name}",
            self.api.routes.insert_unary,
            lambda found: self._route_matches(found, hop),
            name,
            project=self.project,
            route_resource=route,
        )
        if change.action is Action.REPLACE and current and current != name:
            self.delete(f"route {current}", self.api.routes.delete_unary,
                        project=self.project, route=current)  # fmt: skip
        self.seen.route_names[(scope, destination)] = name

    def route_name(self, tag: str | None, destination: IPv4Network, other: bool = False) -> str:
        """A route's name; `other`: its second name, for the route that replaces it."""
        text = f"cp-{self.network.name}-{tag + '-' if tag else ''}{dashed(destination)}"
        return fit(text + "-b", text + "-b") if other else fit(text, text)

    def _route_matches(self, name: str, hop: dict[str, str]) -> bool:
        """A route of that name is already there (an interrupted run made it): right when it
        leads to this connector; a stale one is deleted so the insert can follow."""
        # a race, so rare: read through the list the role grants anyway
        routes = self.call(f"route {name}", self.api.routes.list, project=self.project)
        found = next((r for r in routes if r.name == name), None)
        if found is None:
            return False  # gone meanwhile: insert it
        there = {
            "next_hop_instance": partial(found.next_hop_instance),
            "next_hop_ilb": found.next_hop_ilb,
        }
        if all(there[k] == partial(v) for k, v in hop.items()) and found.priority == self.priority:
            return True
        op = self.call(
            f"route {name}", self.api.routes.delete_unary, project=self.project, route=name
        )
        self.wait(op, f"route {name} to be deleted")
        return False
