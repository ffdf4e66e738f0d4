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
from dataclasses import dataclass, replace
from ipaddress import IPv4Network
from typing import Any

from ...discover import Found
from ...errors import CloudError, SpecError
from ...model import (
    PROFILE_PART,
    Action,
    Change,
    Kind,
    Network,
    Observed,
    ObservedConnector,
    Part,
    Stray,
)
from ..base import PartHandlers, Provider, sandbox_clients
from . import quotas
from .cloud import GcpLocation
from .common import (
    FILE_LABEL,
    LABEL,
    GcpSeen,
    SecretLease,
    file_label,
    make_clients,
    partial,
    sandbox_endpoint,
    short,
    successor_name,
)
from .firewalls import Firewalls
from .instance import Instance
from .pair import HEALTH_PART, PEERS_PART, Pair
from .routes import Routes, _foreign


@dataclass(frozen=True)
class _Read:
    """What observe reads of the project, this network's part of it."""

    subnets: list[Any]
    instances: list[Any]
    routes: list[Any]
    firewalls: list[Any]
    routers: list[Any]
    held: dict[str, int]  # the project's routes and firewall rules, all networks' (its quotas)
    tags: set[str]


class GcpNetwork(Firewalls, Routes, Instance, Pair, Provider):
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

    def credentials_problem(self, e: BaseException) -> str | None:
        from google.auth.exceptions import GoogleAuthError

        return _no_credentials(e) if isinstance(e, GoogleAuthError) else None

    def batch_key(self, change: Change) -> Hashable | None:
        """The sources the changes of one step add to one firewall rule go in one write."""
        if change.kind in (Kind.APP_ACCESS, Kind.CONNECTOR_INGRESS):
            return ("firewall", self._firewall_of(change)[0])
        return None

    # --- observe -------------------------------------------------------------------------

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
        seen = GcpSeen(network_url=partial(self._network_read().self_link))
        read = self._read(seen.network_url)
        self._check_tags(read.tags)
        found, extras, pair = self._observe_members(read.instances, seen)
        connector = found.get(0) or found.get(1)
        cidrs = []
        for s in read.subnets:
            cidrs.append(IPv4Network(s.ip_cidr_range))
            cidrs += [IPv4Network(r.ip_cidr_range) for r in s.secondary_ip_ranges or []]
        here = [s for s in read.subnets if short(s.region) == self.region]
        app_groups, ingress = self._observe_firewalls(read.firewalls, read.tags)
        route_tables, seen.route_names = self._observe_routes(read.routes, read.tags)
        ours = {x.interface for x in (*found.values(), *extras)}
        self.seen = seen
        return Observed(
            network=self.network.name,
            cidrs=tuple(cidrs),
            route_tables=route_tables,
            subnets=tuple(
                replace(
                    self._way_out(s, read.routes, read.routers), cidr=IPv4Network(s.ip_cidr_range)
                )
                for s in here
            ),
            connector=connector,
            connectors=(*found.values(), *extras) if pair or extras else (),
            front=self._observe_front(found, seen) if pair else None,
            parts=self._observe_parts(read.routes, read.firewalls, found, pair, seen),
            app_groups=app_groups,
            connector_ingress=ingress,
            forwarding_at_launch=True,  # canIpForward is fixed at creation
            foreign=_foreign(read.routes, read.instances, ours),
            caps=quotas.caps(self.call, self.api.projects, self.project, read.held),
        )

    def _network_read(self) -> Any:
        """The VPC network the file names (SpecError: there is none)."""
        from google.api_core.exceptions import NotFound

        loc = self.location
        try:
            return self.call(
                "network", self.api.networks.get, project=self.project, network=loc.network
            )
        except NotFound:
            raise SpecError(
                f"networks.{self.network.name}.network",
                f"{loc.network!r} is not a VPC network of project {self.project} (or the project "
                "does not exist)",
            ) from None

    def _read(self, network_url: str) -> _Read:
        """The project's lists, each read once, kept to this network's."""

        def mine(items: list[Any]) -> list[Any]:
            return [x for x in items if partial(x.network) == network_url]

        project = self.project
        subnets = [s for scoped in self.call("subnetworks", self.api.subnetworks.aggregated_list,
                                             project=project)
                   for s in (scoped[1].subnetworks or [])]  # fmt: skip
        instances = [
            i
            for scoped in self.call(
                "instances", self.api.instances.aggregated_list, project=project
            )
            for i in (scoped[1].instances or [])
            if any(partial(n.network) == network_url for n in i.network_interfaces)
        ]
        every_route = list(self.call("routes", self.api.routes.list, project=project))
        every_firewall = list(self.call("firewalls", self.api.firewalls.list, project=project))
        routers = self.call("routers", self.api.routers.list, project=project, region=self.region)
        return _Read(
            subnets=mine(subnets),
            instances=instances,
            routes=mine(every_route),
            firewalls=mine(every_firewall),
            routers=list(routers),
            held={"ROUTES": len(every_route), "FIREWALLS": len(every_firewall)},
            tags={t for i in instances for t in (i.tags.items if i.tags else [])},
        )

    def _observe_members(
        self, instances: list[Any], seen: GcpSeen
    ) -> tuple[dict[int, ObservedConnector], list[ObservedConnector], bool]:
        """The connectors by member, the other live ones of ours (an interrupted replacement's),
        and whether this is a pair: a pair's second connector and its load balancer are looked
        for with ha, or where the second instance says a pair was here (so a single connector
        costs no read more)."""
        c = self.network.connector
        assert c is not None
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
        return found, extras, pair

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
