"""GCP: a VPC network, its routes (network-wide, or scoped to instance tags), its firewall rules,
and the connector put there. Translates; decides nothing.

Routes in GCP belong to the network, not to route tables. The plan's "route tables" are the
routes' scopes: `network/<name>` (untagged routes, every instance) when `route_tables` is `all`,
or one per instance tag listed. What the toolkit creates is named `cp-<network>-...` and carries
the label or description `connector-provisioner`, so observe finds it again and destroy removes
exactly that.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import replace
from ipaddress import IPv4Network
from typing import Any

from ...discover import Found
from ...errors import CloudError, SpecError
from ...model import (
    PROFILE_PART,
    Action,
    Change,
    ConnectorState,
    FilterLayer,
    FilterRule,
    ForeignConnector,
    Kind,
    Member,
    Network,
    Observed,
    ObservedConnector,
    ObservedRoute,
    ObservedSubnet,
    Part,
    RouteTable,
    Stray,
    WayOut,
)
from ..base import PartHandlers, Provider, sandbox_clients
from . import quotas
from .cloud import GcpLocation
from .common import (
    FILE_LABEL,
    LABEL,
    WHOLE_NETWORK,
    GcpSeen,
    SecretLease,
    dashed,
    error_text,
    file_label,
    fit,
    make_clients,
    partial,
    sandbox_endpoint,
    short,
    successor_name,
)
from .firewalls import Firewalls
from .instance import STATES, Instance
from .pair import HEALTH_PART, PEERS_PART, Pair

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")
# a route whose next hop is one of these carries nothing: a blackhole
DEAD_HOPS = {
    "NEXT_HOP_INSTANCE_NOT_FOUND",
    "NEXT_HOP_INSTANCE_NOT_ON_NETWORK",
    "NEXT_HOP_CANNOT_IP_FORWARD",
    "NEXT_HOP_ADDRESS_NOT_ASSIGNED",
}
NAT_ALL = ("ALL_SUBNETWORKS_ALL_IP_RANGES", "ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES")


def _firewall_layer(
    name: str, firewalls: list[Any], tags: set[str], accounts: set[str]
) -> FilterLayer:
    """The ingress rules that apply to one instance, as one ordered stateful layer: ordered by
    priority, a deny before an allow of the same priority, the implied deny last."""
    from .firewalls import _ports

    rules = []
    for fw in firewalls:
        if "INGRESS" not in str(fw.direction):  # the field, or its enum's name
            continue
        targets_tags, targets_accounts = (
            set(fw.target_tags or []),
            set(fw.target_service_accounts or []),
        )
        if (targets_tags or targets_accounts) and not (
            targets_tags & tags or targets_accounts & accounts
        ):
            continue
        for allow, entries in ((False, fw.denied or []), (True, fw.allowed or [])):
            for entry in entries:
                for ports in _ports(entry):
                    for source in fw.source_ranges or []:
                        rules.append(FilterRule(
                            order=int(fw.priority) * 2 + (1 if allow else 0), allow=allow,
                            inbound=True, peer=IPv4Network(source, strict=False), ports=ports,
                            name=f"{fw.name} (priority {fw.priority})",
                        ))  # fmt: skip
    rules.append(FilterRule(65535 * 2, False, True, IPv4Network("0.0.0.0/0"),
                            name="the implied deny of all ingress (65535)", default=True))  # fmt: skip
    return FilterLayer(f"firewall rules of {name}", ordered=True, stateful=True, rules=tuple(rules))


class GcpNetwork(Firewalls, Instance, Pair, Provider):
    """One VPC network, with the connector this toolkit puts there."""

    # Compute Engine's write quota is per project and per minute: a few writes at once
    concurrency = 6

    def __init__(
        self,
        network: Network,
        *,
        progress: Callable[[str], None],
        credentials: Any = None,
        endpoint: str | None = None,
        retries: int = 6,
        wait_seconds: float = 1800.0,
        progress_seconds: float = 10.0,
    ) -> None:
        assert isinstance(network.location, GcpLocation) and network.connector is not None
        loc = network.location
        self.network = network
        self.location = loc
        self.progress = progress
        self.wait_seconds = wait_seconds
        self.progress_seconds = progress_seconds
        self.retries = retries
        self.project, self.zone = loc.project, loc.zone
        self.region = loc.zone.rsplit("-", 1)[0]
        self.throttle_scope = f"gcp:{loc.project}"
        self.priority = network.route_priority if network.route_priority is not None else 1000
        from google.auth.exceptions import GoogleAuthError

        try:
            where = endpoint or sandbox_endpoint()
            self.api = sandbox_clients(
                where if credentials is None else None,
                ("gcp", network.name),
                lambda: make_clients(where, credentials),
            )
        except GoogleAuthError as e:
            raise CloudError(
                f"network {network.name}: {_no_credentials(e)}; nothing was changed"
            ) from None
        name = network.name
        self.tag = f"cp-{name}-connector"
        self.ingress_name = f"cp-{name}-connector-in"
        self.held = {m: self.member_names(m) for m in (0, 1)}
        for key, value in self.held[0].items():
            setattr(self, key, value)
        self.account_is_ours = network.connector.service_account is None
        self.ilb_name = f"cp-{name}-ilb"
        self.seen = GcpSeen(network_url=f"projects/{loc.project}/global/networks/{loc.network}")

    # --- what the contract asks of the cloud ---------------------------------------------

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        from google.api_core.exceptions import GoogleAPICallError
        from google.auth.exceptions import GoogleAuthError
        from requests import RequestException

        return (GoogleAPICallError, GoogleAuthError, RequestException)

    def error_text(self, e: BaseException) -> str:
        return error_text(e)

    def credentials_problem(self, e: BaseException) -> str | None:
        from google.auth.exceptions import GoogleAuthError

        return _no_credentials(e) if isinstance(e, GoogleAuthError) else None

    def batch_key(self, change: Change) -> Hashable | None:
        """The sources the changes of one step add to one firewall rule go in one write."""
        if change.kind in (Kind.APP_ACCESS, Kind.CONNECTOR_INGRESS):
            return ("firewall", self._firewall_of(change)[0])
        return None

    # --- observe -------------------------------------------------------------------------

    def filters(self, observed: Observed) -> Observed:
        """The doctor's reads: the network's firewall rules, judged per instance as Compute
        does: the enabled ingress rules whose targets (tags, service accounts, or none: all)
        take the instance, the lowest priority deciding, a deny before an allow of the same
        priority, then the implied deny of all ingress (65535)."""
        try:
            firewalls = [
                f
                for f in self.call("firewalls", self.api.firewalls.list, project=self.project)
                if partial(f.network) == self.seen.network_url and not f.disabled
            ]
            instances = [
                i
                for scoped in self.call(
                    "instances", self.api.instances.aggregated_list, project=self.project
                )
                for i in (scoped[1].instances or [])
                if any(partial(n.network) == self.seen.network_url for n in i.network_interfaces)
            ]
        except self.sdk_errors() as e:
            raise CloudError(f"network {self.network.name}: reading its firewall rules: "
                             f"{self.error_text(e)}") from None  # fmt: skip
        members: dict[str, list[Member]] = {}
        hosts: dict[str, tuple[FilterLayer, ...]] = {}
        for vm in instances:
            nic = vm.network_interfaces[0]
            if not nic.network_i_p:
                continue
            tags = set(vm.tags.items if vm.tags else [])
            accounts = {a.email for a in vm.service_accounts or []}
            hosts[nic.network_i_p] = (_firewall_layer(vm.name, firewalls, tags, accounts),)
            for group in self.network.app_security_groups:
                if group in tags:
                    members.setdefault(group, []).append(
                        Member(nic.network_i_p, short(nic.subnetwork))
                    )
        return replace(
            observed, members={k: tuple(v) for k, v in members.items()}, host_filters=hosts
        )

    def strays(self, known: frozenset[str]) -> tuple[Stray, ...]:
        """Connectors of ours anywhere in the project (one aggregated list), by their label."""
        found: dict[str, Stray] = {}
        for scoped in self.call(
            "instances", self.api.instances.aggregated_list, project=self.project
        ):
            for vm in scoped[1].instances or []:
                name, owner = (vm.labels or {}).get(LABEL, ""), (vm.labels or {}).get(FILE_LABEL)
                if not name or name in known or name in found or not vm.network_interfaces:
                    continue
                if self.anothers(owner, file_label(self.network.file or "")):
                    continue  # another file's network
                nic = vm.network_interfaces[0]
                found[name] = Stray(
                    network=name,
                    cloud="gcp",
                    location=GcpLocation(self.project, short(nic.network), short(vm.zone)),
                    subnet=short(nic.subnetwork),
                    instance=vm.name,
                )
        return tuple(found.values())

    def lease_store(self) -> SecretLease:
        return SecretLease(self)

    def _observe(self) -> Observed:
        from google.api_core.exceptions import NotFound

        loc, name = self.location, self.network.name
        try:
            net = self.call(
                "network", self.api.networks.get, project=self.project, network=loc.network
            )
        except NotFound:
            raise SpecError(
                f"networks.{name}.network",
                f"{loc.network!r} is not a VPC network of project {self.project} (or the project "
                "does not exist)",
            ) from None
        seen = GcpSeen(network_url=partial(net.self_link))  # what this observe learns for apply
        network_url = seen.network_url
        subnets = [
            s
            for scoped in self.call(
                "subnetworks", self.api.subnetworks.aggregated_list, project=self.project
            )
            for s in (scoped[1].subnetworks or [])
            if partial(s.network) == network_url
        ]
        instances = [
            i
            for scoped in self.call(
                "instances", self.api.instances.aggregated_list, project=self.project
            )
            for i in (scoped[1].instances or [])
            if any(partial(n.network) == network_url for n in i.network_interfaces)
        ]
        every_route = list(self.call("routes", self.api.routes.list, project=self.project))
        routes = [r for r in every_route if partial(r.network) == network_url]
        every_firewall = list(self.call("firewalls", self.api.firewalls.list, project=self.project))
        firewalls = [f for f in every_firewall if partial(f.network) == network_url]
        held = {"ROUTES": len(every_route), "FIREWALLS": len(every_firewall)}
        routers = list(
            self.call("routers", self.api.routers.list, project=self.project, region=self.region)
        )
        tags = {t for i in instances for t in (i.tags.items if i.tags else [])}
        self._check_tags(tags)
        c = self.network.connector
        assert c is not None
        # a pair's second connector and its load balancer: looked for with ha, or where the
        # second instance says a pair was here (so a single connector costs no read more)
        names = {self.member_names(1)["instance_name"]}
        names.add(successor_name(next(iter(names))))
        second = next((i for i in instances if i.name in names), None)
        pair = c.ha or second is not None
        if pair:
            self.held[1]["zone"] = short(second.zone) if second else self._pick_standby_zone()
        found: dict[int, ObservedConnector] = {}
        extras: list[ObservedConnector] = []
        for member in (0, 1) if pair else (0,):
            with self.as_member(member):
                connector, self.connector_url, extra = self._observe_member(instances, seen)
            if connector is not None:
                found[member] = connector
            if extra is not None:
                extras.append(extra)
        connector = found.get(0) or found.get(1)
        front = self._observe_front(found, seen) if pair else None
        cidrs = []
        for s in subnets:
            cidrs.append(IPv4Network(s.ip_cidr_range))
            cidrs += [IPv4Network(r.ip_cidr_range) for r in s.secondary_ip_ranges or []]
        here = [s for s in subnets if short(s.region) == self.region]
        app_groups, ingress = self._observe_firewalls(firewalls, tags)
        route_tables, seen.route_names = self._observe_routes(routes, tags)
        foreign = _foreign(routes, instances, {x.interface for x in (*found.values(), *extras)})
        parts = self._observe_parts(routes, firewalls, found, pair, seen)
        self.seen = seen
        return Observed(
            network=name,
            cidrs=tuple(cidrs),
            route_tables=route_tables,
            subnets=tuple(
                replace(self._way_out(s, routes, routers), cidr=IPv4Network(s.ip_cidr_range))
                for s in here
            ),
            connector=connector,
            connectors=(*found.values(), *extras) if pair or extras else (),
            front=front,
            parts=parts,
            app_groups=app_groups,
            connector_ingress=ingress,
            forwarding_at_launch=True,  # canIpForward is fixed at creation
            foreign=foreign,
            caps=quotas.caps(self.call, self.api.projects, self.project, held),
        )

    def _discover(self, name: str | None) -> Found:
        from google.api_core.exceptions import NotFound

        from .discover import discover

        try:
            return discover(self.api, self.location, name)
        except NotFound:
            raise SpecError("--network", f"{self.location.network!r} is not a VPC network of "
                            f"project {self.project}") from None  # fmt: skip

    def _check_tags(self, tags: set[str]) -> None:
        """Tags in the file that no instance of the network carries name nothing: bad input,
        like an id that does not exist."""
        name, where = self.network.name, f"network {self.location.network}"
        for i, tag in enumerate(self.network.route_tables or ()):
            if tag not in tags:
                raise SpecError(
                    f"networks.{name}.route_tables[{i}]",
                    f"{tag!r}: no instance of {where} carries this network tag",
                )
        for i, tag in enumerate(self.network.app_security_groups):
            if tag not in tags:
                raise SpecError(
                    f"networks.{name}.app_security_groups[{i}]",
                    f"{tag!r}: no instance of {where} carries this network tag",
                )

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

    def _observe_parts(
        self, routes: list[Any], firewalls: list[Any], found: dict[int, ObservedConnector],
        pair: bool, seen: GcpSeen,
    ) -> tuple[Part, ...]:  # fmt: skip
        """Each connector's service account and secret, the connector's firewall, routes left
        by a gone connector, and a pair's health-check firewall and peer metadata; a pair's
        that the file no longer has: to go."""
        assert self.network.connector is not None
        parts = []
        members = (0, 1) if pair else (0,)
        for member in members:
            with self.as_member(member):
                if self.account_is_ours:
                    parts.append(
                        Part(
                            "service-account",
                            self.account_email,
                            "the connector's own identity: the only one that may read its VPN "
                            "profile",
                            self._exists_account(),
                            member=member,
                            wanted=member == 0 or self.network.connector.ha,
                        )
                    )
                elif member == 0:
                    self._check_named_account()
        for member in members:
            with self.as_member(member):
                parts.append(self._observe_secret())
        if any(f.name == self.ingress_name for f in firewalls):
            # made by the first connector-ingress change (an empty source list would admit the
            # whole internet); it only waits for destroy
            parts.append(
                Part(
                    "connector-firewall",
                    self.ingress_name,
                    "the connector's own firewall rule: the network's own ranges in",
                    True,
                )
            )
        hops = {self.held[m]["connector_url"] for m in found} | {seen.front_ip}
        stale = [
            r.name
            for r in routes
            if self._is_ours(r)
            and (partial(r.next_hop_instance) if r.next_hop_instance else r.next_hop_ilb)
            not in hops
        ]
        if stale and not found:
            parts.append(
                Part(
                    "connector-leftovers",
                    f"{len(stale)} route(s) to a connector that is gone",
                    "routes of ours whose next hop instance no longer exists",
                    True,
                )
            )
        if pair:
            parts.append(self._health_part(firewalls))
            parts.append(self._peers_part(found, seen))
        return tuple(p for p in parts if p.wanted or p.present)

    # --- apply ---------------------------------------------------------------------------

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

    def _delete_connector_leftovers(self) -> None:

        hops = {self.held[m]["connector_url"] for m in (0, 1)} | {self.seen.front_ip}
        for r in self.call("routes", self.api.routes.list, project=self.project):
            if partial(r.network) == self.seen.network_url and self._is_ours(r):
                hop = partial(r.next_hop_instance) if r.next_hop_instance else r.next_hop_ilb
                if hop in hops - {None}:
                    continue
                self.delete(
                    f"route {r.name}",
                    self.api.routes.delete_unary,
                    project=self.project,
                    route=r.name,
                )

    PARTS = {
        "service-account": PartHandlers(
            create=Instance._create_service_account, delete=Instance._delete_service_account
        ),
        PROFILE_PART: PartHandlers(
            create=Instance._create_vpn_profile,
            update=Instance._update_vpn_profile,
            delete=Instance._delete_vpn_profile,
        ),
        # made by the first connector-ingress change, never empty
        "connector-firewall": PartHandlers(delete=Firewalls._delete_connector_firewall),
        "connector-leftovers": PartHandlers(delete=_delete_connector_leftovers),
        HEALTH_PART: PartHandlers(
            create=Pair._allow_health_checks, delete=Pair._stop_health_checks
        ),
        PEERS_PART: PartHandlers(create=Pair._set_peers, delete=Pair._drop_peers),
    }

    def _dispatch(self, change: Change) -> None:
        """Each change acts on the connector it is about (of a pair: its member); one made
        beside the one it replaces takes the other of its member's two names, and the old one
        is deleted (or awaited) by its own name."""
        from ...model import NEW_CONNECTOR

        with self.for_change(change):
            kept, url = self.instance_name, self.connector_url
            if (
                change.kind is Kind.CONNECTOR
                and change.action is Action.CREATE
                and (change.previous_target)
            ):
                self.instance_name = successor_name(change.previous_target)
                super()._dispatch(change)
                return  # the member's connector is the new one from now on
            named = (
                change.kind in (Kind.CONNECTOR, Kind.READY)
                and change.resource not in (NEW_CONNECTOR, kept)
                and change.action is not Action.CREATE
            )
            if named:
                self.instance_name = change.resource
            try:
                super()._dispatch(change)
            finally:
                if named:
                    self.instance_name, self.connector_url = kept, url


def _no_credentials(e: BaseException) -> str:
    return (
        "no Google Cloud credentials (google.auth.default: GOOGLE_APPLICATION_CREDENTIALS, "
        f"gcloud auth application-default login, the metadata server): {e}"
    )


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
