"""OCI: a VCN, its route tables (rule lists written back whole, guarded by the etag), network
security groups, and the connector put there. Translates; decides nothing.

What the toolkit creates carries the freeform tag `connector-provisioner: <network>` and a
`cp-` name; its route rules are described `connector-provisioner: <network>` and lead to the
connector VNIC's private IP, so observe finds them again and destroy removes exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from ipaddress import IPv4Network
from typing import Any

from ...discover import Found
from ...errors import CloudError, SpecError
from ...model import (
    PROFILE_PART,
    Action,
    Cap,
    Change,
    Counted,
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
    Ports,
    RouteTable,
    Stray,
    WayOut,
)
from ..base import PartHandlers, Provider, sandbox_clients
from .cloud import OciLocation
from .common import FILE_TAG, TAG, OciSeen, VcnTagLease, error_text, make_clients, sandbox_endpoint
from .groups import Groups
from .instance import STATES, Instance
from .pair import PAIR_POLICY_PART, Pair

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")


OCI_PROTOCOLS = {"all": "all", "6": "tcp", "17": "udp", "1": "icmp"}


def _oci_ports(protocol: str, options: Any) -> Ports:
    proto = OCI_PROTOCOLS.get(str(protocol), str(protocol))
    span = getattr(options, "destination_port_range", None) if options is not None else None
    if proto in ("tcp", "udp") and span is not None:
        return Ports(proto, int(span.min), int(span.max))
    return Ports(proto)


def _oci_rule(name: str, inbound: bool, peer: str, protocol: str, options: Any,
              stateless: bool) -> FilterRule | None:  # fmt: skip
    try:
        network = IPv4Network(str(peer), strict=False)
    except ValueError:
        return None  # a service CIDR label or an NSG reference: not an address range
    return FilterRule(0, True, inbound, network, _oci_ports(protocol, options),
                      f"{name}{' (stateless)' if stateless else ''}", stateless)  # fmt: skip


def _list_rules(security_list: Any) -> list[FilterRule]:
    """A security list's ingress and egress rules."""
    name = f"security list {security_list.display_name or security_list.id}"
    out = []
    for rule in security_list.ingress_security_rules or []:
        options = rule.tcp_options if str(rule.protocol) == "6" else rule.udp_options
        out.append(
            _oci_rule(name, True, rule.source, rule.protocol, options, bool(rule.is_stateless))
        )
    for rule in security_list.egress_security_rules or []:
        options = rule.tcp_options if str(rule.protocol) == "6" else rule.udp_options
        out.append(_oci_rule(name, False, rule.destination, rule.protocol, options,
                             bool(rule.is_stateless)))  # fmt: skip
    return [r for r in out if r is not None]


def _nsg_rule(nsg: str, rule: Any) -> FilterRule | None:
    inbound = rule.direction == "INGRESS"
    options = rule.tcp_options if str(rule.protocol) == "6" else rule.udp_options
    peer = rule.source if inbound else rule.destination
    return _oci_rule(f"NSG {nsg[-12:]} rule {rule.id}", inbound, peer, rule.protocol, options,
                     bool(rule.is_stateless))  # fmt: skip


# OCI's Networking limits on what the toolkit writes (the service limits page, "Networking
# Limits"): route rules per route table, 200; security rules per network security group, 120,
# ingress and egress together. Fixed per table and NSG: the Limits service does not hold them
# (its `vcn` family names VCNs and reserved public IPs), so they are not read, and cannot be
# raised.
ROUTE_RULES, NSG_RULES = 200, 120


def _caps(routes: int, rules: int) -> tuple[Cap, ...]:
    said = "" if (routes, rules) == (ROUTE_RULES, NSG_RULES) else "; the tenancy's, as given"
    return (
        Cap(Counted.ROUTES, "route table", routes,
            f"OCI's documented Networking limit (fixed, not readable){said}"),
        Cap(Counted.RULES, "network security group", rules,
            f"OCI's documented Networking limit, ingress and egress together (fixed, not "
            f"readable){said}"),
    )  # fmt: skip


class OciNetwork(Groups, Instance, Pair, Provider):
    """One VCN, with the connector this toolkit puts there."""

    PARTS = {
        "security-group": PartHandlers(
            create=Groups._create_security_group, delete=Groups._delete_security_group
        ),
        PROFILE_PART: PartHandlers(
            create=Instance._create_vpn_profile,
            update=Instance._update_vpn_profile,
            delete=Instance._delete_vpn_profile,
        ),
        "dynamic-group": PartHandlers(
            create=Instance._create_dynamic_group, delete=Instance._delete_dynamic_group
        ),
        "policy": PartHandlers(create=Instance._create_policy, delete=Instance._delete_policy),
        PAIR_POLICY_PART: PartHandlers(
            create=Pair._create_pair_policy, delete=Pair._delete_pair_policy
        ),
    }

    concurrency = 6  # OCI throttles per tenancy and region; the SDK backs off on 429

    def __init__(
        self,
        network: Network,
        *,
        progress: Callable[[str], None],
        config: dict[str, Any] | None = None,
        signer: Any = None,
        endpoint: str | None = None,
        retries: int = 6,
        wait_seconds: float = 1800.0,
        progress_seconds: float = 10.0,
        poll_seconds: float = 10.0,
        route_rules_limit: int = ROUTE_RULES,
        nsg_rules_limit: int = NSG_RULES,
    ) -> None:
        import oci

        assert isinstance(network.location, OciLocation) and network.connector is not None
        # the documented limits, unless a tenancy's own are given (they are not readable)
        self.caps = _caps(route_rules_limit, nsg_rules_limit)
        loc = network.location
        self.network = network
        self.location = loc
        self.compartment = loc.compartment
        self.progress = progress
        self.wait_seconds = wait_seconds
        self.progress_seconds = progress_seconds
        self.poll_seconds = poll_seconds
        self.throttle_scope = f"oci:{loc.region}"
        try:
            where = endpoint or sandbox_endpoint()
            self.api = sandbox_clients(
                where if config is None and signer is None else None,
                ("oci", network.name, loc.region, retries),
                lambda: make_clients(loc.region, where, config, signer, retries),
            )
        except (
            oci.exceptions.ConfigFileNotFound,
            oci.exceptions.InvalidConfig,
            oci.exceptions.ProfileNotFound,
        ) as e:
            raise CloudError(
                f"network {network.name}: no OCI credentials (~/.oci/config, profile "
                f"OCI_CONFIG_PROFILE or DEFAULT; or OCI_CLI_AUTH=instance_principal): {e}; "
                "nothing was changed"
            ) from None
        name = network.name
        self.tags = {TAG: name}
        if network.file:  # whose: another file on the account never takes it for a stray
            self.tags[FILE_TAG] = network.file
        self.nsg_name = f"cp-{name}-connector"
        self.pair_policy_name = f"cp-{name}-pair"
        self.held = {m: self.member_names(m) for m in (0, 1)}
        for key, value in self.held[0].items():
            setattr(self, key, value)
        self.seen = OciSeen()
        self.tenancy_id = None

    # --- what the contract asks of the cloud ---------------------------------------------

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        import oci

        return (oci.exceptions.ServiceError, oci.exceptions.RequestException)

    def error_text(self, e: BaseException) -> str:
        return error_text(e)

    def batch_key(self, change: Change) -> Hashable | None:
        """A route table's rules are written back whole, once per step; an NSG's rules are
        added (or removed) together."""
        if change.kind is Kind.ROUTE:
            return ("route-table", change.route_table)
        if change.kind in (Kind.APP_ACCESS, Kind.CONNECTOR_INGRESS):
            return ("nsg", self._group_of(change), change.action is Action.DELETE)
        return None

    # --- observe -------------------------------------------------------------------------

    def _list(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        import oci

        return list(oci.pagination.list_call_get_all_results(fn, *args, **kwargs).data)

    def filters(self, observed: Observed) -> Observed:
        """The doctor's reads: each app group's VNICs (the compartment's attachments), and for
        each one the security lists of its subnet and the rules of every NSG it is in, as OCI
        applies them: one union (any rule admits), a stateless rule's answer judged again."""
        import oci

        groups = set(self.network.app_security_groups)
        members: dict[str, list[Member]] = {}
        hosts: dict[str, tuple[FilterLayer, ...]] = {}
        lists: dict[str, Any] = {}
        nsg_rules: dict[str, list[Any]] = {}
        try:
            attachments = oci.pagination.list_call_get_all_results(
                self.api.compute.list_vnic_attachments, self.compartment
            ).data
            for attachment in attachments:
                if attachment.lifecycle_state not in ("ATTACHED", "ATTACHING"):
                    continue
                vnic = self.api.network.get_vnic(attachment.vnic_id).data
                mine = groups & set(vnic.nsg_ids or [])
                if not mine or not vnic.private_ip:
                    continue
                subnet = self.api.network.get_subnet(vnic.subnet_id).data
                rules: list[FilterRule] = []
                for ref in subnet.security_list_ids or []:
                    if ref not in lists:
                        lists[ref] = self.api.network.get_security_list(ref).data
                    rules += _list_rules(lists[ref])
                for nsg in vnic.nsg_ids or []:
                    if nsg not in nsg_rules:
                        nsg_rules[nsg] = oci.pagination.list_call_get_all_results(
                            self.api.network.list_network_security_group_security_rules, nsg
                        ).data
                    rules += [x for r in nsg_rules[nsg] if (x := _nsg_rule(nsg, r)) is not None]
                hosts[vnic.private_ip] = (
                    FilterLayer(f"security lists and NSGs of {vnic.private_ip}", ordered=False,
                                stateful=True, rules=tuple(rules)),
                )  # fmt: skip
                for group in mine:
                    members.setdefault(group, []).append(Member(vnic.private_ip, vnic.subnet_id))
        except self.sdk_errors() as e:
            raise CloudError(f"network {self.network.name}: reading its security lists: "
                             f"{self.error_text(e)}") from None  # fmt: skip
        return replace(
            observed, members={k: tuple(v) for k, v in members.items()}, host_filters=hosts
        )

    def strays(self, known: frozenset[str]) -> tuple[Stray, ...]:
        """Connectors of ours in the compartment, by their freeform tag; each one's VNIC names
        its subnet (and so its VCN), its stored profile's secret names its vault."""
        import oci

        found: dict[str, Stray] = {}
        try:
            instances = oci.pagination.list_call_get_all_results(
                self.api.compute.list_instances, self.compartment
            ).data
            for vm in instances:
                name = (vm.freeform_tags or {}).get(TAG, "")
                owner = (vm.freeform_tags or {}).get(FILE_TAG)
                if self.anothers(owner):
                    continue  # another file's network
                gone = vm.lifecycle_state in ("TERMINATED", "TERMINATING")
                if not name or name in known or name in found or gone:
                    continue
                attachments = self.api.compute.list_vnic_attachments(
                    self.compartment, instance_id=vm.id
                ).data
                if not attachments:
                    continue
                vnic = self.api.network.get_vnic(attachments[0].vnic_id).data
                subnet = self.api.network.get_subnet(vnic.subnet_id).data
                secrets = self.api.vaults.list_secrets(
                    self.compartment, name=f"cp-{name}-vpn-profile"
                ).data
                found[name] = Stray(
                    network=name,
                    cloud="oci",
                    location=OciLocation(self.location.region, self.compartment, subnet.vcn_id),
                    subnet=subnet.id,
                    instance=vm.id,
                    vault=secrets[0].vault_id if secrets else None,
                )
        except self.sdk_errors() as e:
            raise CloudError(
                f"looking for connectors of ours in {self.compartment}: {self.error_text(e)}"
            ) from None
        return tuple(found.values())

    def lease_store(self) -> VcnTagLease:
        return VcnTagLease(self.api.network, self.location.vcn)

    def _observe(self) -> Observed:
        loc, name = self.location, self.network.name
        seen = OciSeen()  # what this observe learns for apply; the parts' from now on
        seen.vcn = self._vcn()
        net = self.api.network
        subnets = self._list(net.list_subnets, self.compartment, vcn_id=loc.vcn)
        tables = {
            t.id: t for t in self._list(net.list_route_tables, self.compartment, vcn_id=loc.vcn)
        }
        gateways = {
            g.id for g in self._list(net.list_internet_gateways, self.compartment, vcn_id=loc.vcn)
        }
        nats = {g.id for g in self._list(net.list_nat_gateways, self.compartment, vcn_id=loc.vcn)}
        groups = self._list(
            net.list_network_security_groups, compartment_id=self.compartment, vcn_id=loc.vcn
        )
        c = self.network.connector
        assert c is not None
        policies = self._list(self.api.identity.list_policies, self.compartment)
        pair = c.ha or any(p.name == self.pair_policy_name for p in policies)
        found, extras = self._observe_members(pair)
        front = None
        if pair:
            where = next((x.subnet for x in found.values() if x.subnet), None)
            front = self._observe_front(where or c.subnet, found, seen)
        live = self._live_private_ips(tables)
        app_groups, ingress, own_nsg = self._observe_groups(groups, seen)
        seen.nsg_id = own_nsg  # what the launch and apply's rules refer to
        ours = {x.interface for x in (*found.values(), *extras) if x.interface}
        if front is not None:
            ours.add(front.id)
        cidrs = tuple(IPv4Network(c) for c in seen.vcn.cidr_blocks)
        route_tables = self._observe_tables(tables, set(live), ours)
        foreign = self._foreign(live, ours)
        parts = self._observe_parts(own_nsg, policies, pair)
        self.seen = seen
        return Observed(
            network=name,
            cidrs=cidrs,
            route_tables=route_tables,
            subnets=tuple(
                replace(self._way_out(s, tables, gateways, nats), cidr=IPv4Network(s.cidr_block))
                for s in subnets
            ),
            connector=found.get(0) or found.get(1),
            connectors=(*found.values(), *extras) if pair or extras else (),
            front=front,
            parts=parts,
            app_groups=app_groups,
            connector_ingress=ingress,
            foreign=foreign,
            caps=self.caps,
            held=dict(seen.rule_counts),
            connector_group=own_nsg,
        )

    def _vcn(self) -> Any:
        """The VCN the file names, in the compartment it names (SpecError: not so)."""
        import oci

        loc, name = self.location, self.network.name
        try:
            vcn = self.api.network.get_vcn(loc.vcn).data
        except oci.exceptions.ServiceError as e:
            if e.status != 404:
                raise
            raise SpecError(
                f"networks.{name}.vcn", f"{loc.vcn!r} does not exist (or is not visible to you)"
            ) from None
        if vcn.compartment_id != self.compartment:
            raise SpecError(
                f"networks.{name}.compartment",
                f"{self.compartment!r} is not the compartment of {loc.vcn} ({vcn.compartment_id})",
            )
        return vcn

    def _observe_members(
        self, pair: bool
    ) -> tuple[dict[int, ObservedConnector], list[ObservedConnector]]:
        """The connectors by member and the other live ones of ours (an interrupted
        replacement's): a pair's second connector, its parts and front are looked for with ha,
        or where the pair's policy says a pair was here (so a single connector costs no read
        more)."""
        found: dict[int, ObservedConnector] = {}
        extras: list[ObservedConnector] = []
        for member in (0, 1) if pair else (0,):
            with self.as_member(member):
                connector, older = self._observe_connector()
            if connector is not None:
                found[member] = connector
            extras += older
        return found, extras

    def _discover(self, name: str | None) -> Found:
        import oci

        from .discover import discover

        try:
            return discover(self.api, self.location, name)
        except oci.exceptions.ServiceError as e:
            if e.status != 404:
                raise
            raise SpecError("--vcn", f"{self.location.vcn!r} does not exist (or is not visible "
                            "to you)") from None  # fmt: skip

    def _live_private_ips(self, tables: dict[str, Any]) -> dict[str, str]:
        """The private IPs that route rules name and that still exist: a rule to one that is
        gone carries nothing. One read per distinct target, not per table."""
        import oci

        targets = {
            r.network_entity_id
            for t in tables.values()
            for r in t.route_rules or []
            if r.network_entity_id.startswith("ocid1.privateip.")
        }
        live: dict[str, str] = {}
        for target in sorted(targets):
            try:
                live[target] = self.api.network.get_private_ip(target).data.vnic_id
            except oci.exceptions.ServiceError as e:
                if e.status != 404:
                    raise
        return live

    def _foreign(self, live: dict[str, str], ours: set[str]) -> tuple[ForeignConnector, ...]:
        """The instances not of ours that route rules lead to (a private IP on their VNIC) whose
        VNIC skips the source/destination check: three reads each, only for such rules."""
        out = []
        for private_ip, vnic_id in sorted(live.items()):
            if private_ip in ours:
                continue
            vnic = self.api.network.get_vnic(vnic_id).data
            if not vnic.skip_source_dest_check:
                continue
            attached = self.api.compute.list_vnic_attachments(self.compartment,
                                                              vnic_id=vnic_id).data  # fmt: skip
            if not attached:
                continue
            vm = self.api.compute.get_instance(attached[0].instance_id).data
            if TAG in (vm.freeform_tags or {}) or vm.lifecycle_state not in STATES:
                continue  # another network's connector of ours (a conflict), or gone
            out.append(ForeignConnector(vm.id, private_ip, STATES[vm.lifecycle_state],
                                        vm.display_name or ""))  # fmt: skip
        return tuple(out)

    def _observe_tables(
        self, tables: dict[str, Any], live: set[str], ours: set[str]
    ) -> tuple[RouteTable, ...]:
        """The selected tables, and any other that routes to our connectors' private IPs or the
        pair's floating one (`ours`: left when the selection shrank)."""
        wanted = set(self.network.route_tables or tables)
        for i, t in enumerate(self.network.route_tables or ()):
            if t not in tables:
                raise SpecError(
                    f"networks.{self.network.name}.route_tables[{i}]",
                    f"{t!r} is not a route table of {self.location.vcn}",
                )
        out = []
        for table_id, t in sorted(tables.items()):
            rules = t.route_rules or []
            if table_id not in wanted and not any(r.network_entity_id in ours for r in rules):
                continue
            routes = []
            for r in rules:
                if (r.destination_type or "CIDR_BLOCK") != "CIDR_BLOCK":
                    continue  # a service's CIDR label: never ours
                target = r.network_entity_id
                usable = not target.startswith("ocid1.privateip.") or target in live
                routes.append(ObservedRoute(IPv4Network(r.destination), target, usable))
            out.append(RouteTable(table_id, tuple(routes)))
        return tuple(out)

    def _way_out(
        self, subnet: Any, tables: dict[str, Any], gateways: set[str], nats: set[str]
    ) -> ObservedSubnet:
        table = tables.get(subnet.route_table_id)
        rule = next(
            (
                r
                for r in (table.route_rules if table else None) or []
                if r.destination == str(DEFAULT_ROUTE)
            ),
            None,
        )
        label = subnet.route_table_id
        if rule is None:
            return ObservedSubnet(subnet.id, WayOut.NONE, None, label)
        target = rule.network_entity_id
        if target in gateways:
            if subnet.prohibit_public_ip_on_vnic:
                # an internet gateway translates public addresses only, and this subnet allows none
                return ObservedSubnet(subnet.id, WayOut.NONE, target, label)
            return ObservedSubnet(subnet.id, WayOut.INTERNET_GATEWAY, target, label)
        if target in nats:
            return ObservedSubnet(subnet.id, WayOut.NAT_GATEWAY, target, label)
        return ObservedSubnet(subnet.id, WayOut.OTHER, target, label)

    def _observe_parts(
        self, own_nsg: str | None, policies: list[Any], pair: bool
    ) -> tuple[Part, ...]:
        """The group, each connector's secret, then each one's dynamic group and policy (after
        its VM), then the pair's policy; a pair's that the file no longer has: to go."""
        members = (0, 1) if pair else (0,)
        parts = [
            Part(
                "security-group",
                self.nsg_name,
                "the connector's own network security group: the VCN's own ranges in",
                own_nsg is not None,
            )
        ]
        for member in members:
            with self.as_member(member):
                parts.append(self._observe_secret())
        groups = self._dynamic_groups()
        for member in members:
            with self.as_member(member):
                parts += self._observe_identity(groups, policies)
        if pair:
            parts.append(self._pair_policy_part(policies))
        return tuple(p for p in parts if p.wanted or p.present)

    # --- apply ---------------------------------------------------------------------------

    def _dispatch(self, change: Change) -> None:
        """Each change acts on the connector it is about (of a pair: its member); the one a
        connector made beside it replaces is removed by its own id, and the member's stays the
        new one."""
        with self.for_change(change):
            if change.kind is not Kind.CONNECTOR or change.action is Action.CREATE:
                super()._dispatch(change)
                return
            kept = (self.instance_id, self.vnic_id, self.private_ip_id)
            other = change.action is Action.DELETE and kept[0] not in (None, change.resource)
            self.instance_id = change.resource
            try:
                super()._dispatch(change)
            finally:
                if other:
                    self.instance_id, self.vnic_id, self.private_ip_id = kept

    def _routes_batch(self, changes: Sequence[Change]) -> None:
        """The table's rules written back whole, ours merged in (or taken out), once a step;
        every other rule of the table goes back as it was."""
        import oci

        table_id = changes[0].route_table
        assert table_id is not None
        touched = {str(c.destination) for c in changes}
        adding = [
            (str(c.destination), self.route_target(c))
            for c in changes
            if c.action is not Action.DELETE
        ]

        def merge(read: Any) -> Any:
            before = read.data.route_rules or []
            rules = [r for r in before if r.destination not in touched]
            if not adding and len(rules) == len(before):
                return None  # already gone
            rules += [
                oci.core.models.RouteRule(
                    destination=destination,
                    destination_type="CIDR_BLOCK",
                    network_entity_id=target,
                    description=f"{TAG}: {self.network.name}",
                )
                for destination, target in adding
            ]
            return rules, read.headers["etag"]

        def write(merged: Any) -> None:
            rules, etag = merged
            self.api.network.update_route_table(
                table_id, oci.core.models.UpdateRouteTableDetails(route_rules=rules), if_match=etag
            )

        self.read_merge_write(
            f"route table {table_id[-12:]}",
            lambda: self.api.network.get_route_table(table_id),
            merge,
            write,
        )
