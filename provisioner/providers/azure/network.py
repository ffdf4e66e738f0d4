"""Azure: a VNet, the route tables of its subnets (user-defined routes), network security groups,
and the connector put there. Translates; decides nothing.

What the toolkit creates carries the tag `connector-provisioner:network=<name>` and a `cp-` name
(`cp-<network>-connector`, `cp-<network>-routes`, UDRs `cp-100-96-0-0-11`, NSG rules
`cp-<network>-<digest>`), so observe finds it again and destroy removes exactly that.
"""

from __future__ import annotations

import contextlib
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
    Ports,
    RouteTable,
    Stray,
    WayOut,
)
from ..base import PartHandlers, Provider, sandbox_clients
from . import quotas
from .cloud import AzureLocation
from .common import (
    FILE_TAG,
    TAG,
    AzureSeen,
    VnetTagLease,
    error_text,
    route_name,
    sandbox_endpoint,
    short,
)
from .common import clients as make_clients
from .groups import Groups
from .instance import POWER_STATES, Instance
from .pair import PEERS_PART, Pair

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")


def _nsg_layer(nsg: Any) -> FilterLayer:
    """An NSG's rules, its own and its default ones, as an ordered stateful layer: the lowest
    priority that matches decides; a service tag is a named peer ("*" matches everything)."""
    rules = []
    defaults = {id(r) for r in nsg.default_security_rules or []}
    for rule in [*(nsg.security_rules or []), *(nsg.default_security_rules or [])]:
        inbound = str(getattr(rule.direction, "value", rule.direction)) == "Inbound"
        peers = (
            (rule.source_address_prefixes or [rule.source_address_prefix])
            if inbound
            else (rule.destination_address_prefixes or [rule.destination_address_prefix])
        )
        spans = rule.destination_port_ranges or [rule.destination_port_range]
        protocol = str(getattr(rule.protocol, "value", rule.protocol)).lower()
        for peer in peers:
            for span in spans:
                rules.append(
                    FilterRule(
                        order=int(rule.priority),
                        allow=str(getattr(rule.access, "value", rule.access)) == "Allow",
                        inbound=inbound,
                        peer=_nsg_peer(str(peer)),
                        ports=_nsg_ports(protocol, str(span)),
                        name=f"{rule.name} ({rule.priority})",
                        default=id(rule) in defaults,
                    )
                )
    return FilterLayer(f"NSG {nsg.name}", ordered=True, stateful=True, rules=tuple(rules))


def _nsg_peer(value: str) -> IPv4Network | str:
    if value == "*":
        return "*"
    try:
        return IPv4Network(value, strict=False)
    except ValueError:
        return value  # a service tag: VirtualNetwork, Internet, AzureLoadBalancer...


def _nsg_ports(protocol: str, span: str) -> Ports:
    proto = {"*": "all", "tcp": "tcp", "udp": "udp", "icmp": "icmp"}.get(protocol, protocol)
    if proto in ("all", "icmp") or span in ("*", "None", ""):
        return Ports(proto) if proto != "all" or span in ("*", "None", "") else Ports("all")
    first, _, last = span.partition("-")
    return Ports(proto, int(first), int(last or first))


class AzureNetwork(Groups, Instance, Pair, Provider):
    """One VNet, with the connector this toolkit puts there."""

    # ARM takes a few writes at once per subscription; the changes of one route table or one
    # security group go together, in one write (batch_key)
    concurrency = 6

    def __init__(
        self,
        network: Network,
        *,
        progress: Callable[[str], None],
        credential: Any = None,
        endpoint: str | None = None,
        retry_total: int = 10,
        wait_seconds: float = 1800.0,
        progress_seconds: float = 10.0,
    ) -> None:
        assert isinstance(network.location, AzureLocation) and network.connector is not None
        self.network = network
        self.location = network.location
        self.progress = progress
        self.wait_seconds = wait_seconds
        self.progress_seconds = progress_seconds
        self.throttle_scope = f"azure:{network.location.subscription}"
        self.rg = network.location.resource_group
        where, subscription = endpoint or sandbox_endpoint(), network.location.subscription
        self.endpoint = where
        self.net, self.compute = sandbox_clients(
            where if credential is None else None,
            ("azure", network.name, subscription, retry_total),
            lambda: make_clients(subscription, where, credential, retry_total, progress),
        )
        name = network.name
        self.tags = {TAG: name}
        if network.file:  # whose: another file on the account never takes it for a stray
            self.tags[FILE_TAG] = network.file
        self.nsg_name = f"cp-{name}-connector"
        self.table_name = f"cp-{name}-routes"
        self.held = {m: self.member_names(m) for m in (0, 1)}
        for key, value in self.held[0].items():
            setattr(self, key, value)
        self.lb_name = f"cp-{name}-lb"
        self.seen = AzureSeen()

    # --- what the contract asks of the cloud ---------------------------------------------

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        from azure.core.exceptions import AzureError

        return (AzureError,)

    def error_text(self, e: BaseException) -> str:
        from azure.core.exceptions import ServiceRequestError, ServiceResponseError

        if isinstance(e, (ServiceRequestError, ServiceResponseError)):  # no answer at all
            where = self.endpoint or "https://management.azure.com"
            return f"{where} did not answer ({error_text(e)})"
        return error_text(e)

    def credentials_problem(self, e: BaseException) -> str | None:
        from azure.core.exceptions import ClientAuthenticationError

        if isinstance(e, ClientAuthenticationError):
            return (
                "no Azure credentials (DefaultAzureCredential: environment, managed identity, "
                f"Azure CLI login): {error_text(e)}"
            )
        return None

    def batch_key(self, change: Change) -> Hashable | None:
        """A route table's routes are written in one PUT of the table, an NSG's rules in one PUT
        of the NSG."""
        if change.kind is Kind.ROUTE:
            assert change.route_table is not None
            return ("route-table", self._table_id(change.route_table).lower())
        if change.kind in (Kind.APP_ACCESS, Kind.CONNECTOR_INGRESS):
            return ("nsg", self._nsg_of(change).lower())
        return None

    # --- observe -------------------------------------------------------------------------

    def filters(self, observed: Observed) -> Observed:
        """The doctor's reads: the resource group's NSGs with their own and default rules
        (ordered by priority, deny included, stateful) and the VNet's NICs. A host of an app
        group (an NSG on its NIC or its subnet) meets its subnet's NSG, then its NIC's."""
        try:
            nsgs = {n.id.lower(): n for n in self.net.network_security_groups.list(self.rg)}
            nics = list(self.net.network_interfaces.list_all())
        except self.sdk_errors() as e:
            raise CloudError(f"network {self.network.name}: reading its NSGs: "
                             f"{self.error_text(e)}") from None  # fmt: skip
        layers = {key: _nsg_layer(n) for key, n in nsgs.items()}
        subnet_nsg = {
            s.name: (s.network_security_group.id.lower() if s.network_security_group else None)
            for s in self.seen.vnet.subnets or []
        }
        vnet_id = self.seen.vnet.id.lower()
        members: dict[str, list[Member]] = {}
        hosts: dict[str, tuple[FilterLayer, ...]] = {}
        for nic in nics:
            config = (nic.ip_configurations or [None])[0]
            if config is None or config.subnet is None or not config.private_ip_address:
                continue
            if not config.subnet.id.lower().startswith(vnet_id + "/"):
                continue
            subnet = short(config.subnet.id)
            nic_nsg = nic.network_security_group.id.lower() if nic.network_security_group else None
            on_host = [k for k in (subnet_nsg.get(subnet), nic_nsg) if k and k in layers]
            hosts[config.private_ip_address] = tuple(layers[k] for k in on_host)
            for key in on_host:
                group = short(key)
                if group in self.network.app_security_groups:
                    members.setdefault(group, []).append(Member(config.private_ip_address, subnet))
        udr = tuple(r.destination for t in observed.route_tables for r in t.routes)
        return replace(
            observed,
            members={k: tuple(v) for k, v in members.items()},
            host_filters=hosts,
            peer_names={"VirtualNetwork": (*observed.cidrs, *udr)},
        )

    def strays(self, known: frozenset[str]) -> tuple[Stray, ...]:
        """Connectors of ours in the resource group, by their tag; each VM's NIC names its
        VNet and subnet."""
        found: dict[str, Stray] = {}
        try:
            vms = list(self.compute.virtual_machines.list(self.rg))
            for vm in vms:
                name, owner = (vm.tags or {}).get(TAG, ""), (vm.tags or {}).get(FILE_TAG)
                if not name or name in known or name in found:
                    continue
                if self.anothers(owner):
                    continue  # another file's network
                nics = vm.properties.network_profile.network_interfaces or []
                if not nics:
                    continue
                nic = self.net.network_interfaces.get(self.rg, short(nics[0].id))
                subnet_id = nic.properties.ip_configurations[0].properties.subnet.id
                vnet = subnet_id.split("/virtualNetworks/", 1)[1].split("/", 1)[0]
                found[name] = Stray(
                    network=name,
                    cloud="azure",
                    location=AzureLocation(self.location.subscription, self.rg, vnet, vm.location),
                    subnet=short(subnet_id),
                    instance=vm.name,
                )
        except self.sdk_errors() as e:
            raise CloudError(
                f"looking for connectors of ours in {self.rg}: {self.error_text(e)}"
            ) from None
        return tuple(found.values())

    def lease_store(self) -> VnetTagLease:
        return VnetTagLease(self, self.location.vnet)

    def _caps(self) -> tuple[Cap, ...]:
        """The cloud's limits, read once per provider (a plan and its re-read under the
        leases ask the same account: the quotas do not change between them)."""
        found: tuple[Cap, ...] | None = getattr(self, "_read_caps", None)
        if found is None:
            found = self._read_caps = quotas.caps(self.net, self.location.location)
        return found

    def _observe(self) -> Observed:
        from azure.core.exceptions import ResourceNotFoundError

        loc, name = self.location, self.network.name
        seen = AzureSeen()  # what this observe learns for apply; the parts' from now on
        try:
            seen.vnet = self.net.virtual_networks.get(self.rg, loc.vnet)
        except ResourceNotFoundError as e:
            if e.error is not None and e.error.code == "ResourceGroupNotFound":
                raise SpecError(
                    f"networks.{name}.resource_group",
                    f"{self.rg!r} does not exist in subscription {loc.subscription}",
                ) from None
            raise SpecError(
                f"networks.{name}.vnet", f"{loc.vnet!r} does not exist in resource group {self.rg}"
            ) from None
        vnet = seen.vnet
        cidrs = tuple(IPv4Network(p) for p in vnet.address_space.address_prefixes)
        subnets = list(vnet.subnets or [])
        tables = {t.id.lower(): t for t in self.net.route_tables.list(self.rg)}
        for s in subnets:  # a subnet may use a table of another resource group
            ref = (s.route_table.id if s.route_table else "").lower()
            if ref and ref not in tables:
                tables[ref] = self.net.route_tables.get(_group_of(ref), short(ref))
        nics = list(self.net.network_interfaces.list_all())
        in_use = {
            c.private_ip_address
            for n in nics
            for c in n.ip_configurations or []
            if c.private_ip_address
        }
        c = self.network.connector
        assert c is not None
        # a pair's second connector and its load balancer: looked for with ha, or where the
        # pair's second NIC says a pair was here (so a single connector costs no read more)
        second = self.member_names(1)["nic_name"]
        pair = c.ha or any(n.name == second and self.rg.lower() in n.id.lower() for n in nics)
        found: dict[int, ObservedConnector] = {}
        leftovers: dict[int, bool] = {}
        extras: list[ObservedConnector] = []
        for member in (0, 1) if pair else (0,):
            with self.as_member(member):
                connector, leftovers[member], older = self._observe_connector(nics, seen)
                self.connector_ip = connector.interface if connector else None  # routes' next hop
                if connector is not None and older:  # made beside: has it said it is up?
                    extension = self._observe_extension()
                    state = (extension or {}).get("state")
                    connector = replace(connector, ready=state == "Succeeded")
            if connector is not None:
                found[member] = connector
            extras += older
        front = self._observe_front(found, nics, seen) if pair else None
        if front is not None:
            in_use.add(front.id)  # a next hop as live as a NIC's address
        ours = {x.interface for x in (*found.values(), *extras) if x.interface}
        if front is not None:
            ours.add(front.id)
        observed_tables = self._observe_tables(subnets, tables, in_use, ours, seen)
        foreign = self._foreign(nics, observed_tables, ours)
        groups = list(self.net.network_security_groups.list(self.rg))
        first = found.get(0) or found.get(1)
        app_groups, ingress = self._observe_groups(groups, first.interface if first else None, seen)
        parts = self._observe_parts(subnets, tables, groups, leftovers, found, seen)
        self.seen = seen
        return Observed(
            network=name,
            cidrs=cidrs,
            route_tables=observed_tables,
            subnets=tuple(
                replace(self._way_out(s, tables), cidr=_subnet_range(s)) for s in subnets
            ),
            connector=first,
            connectors=(*found.values(), *extras) if pair or extras else (),
            front=front,
            parts=parts,
            app_groups=app_groups,
            connector_ingress=ingress,
            foreign=foreign,
            caps=self._caps(),
            held=dict(seen.rule_counts),
            connector_group=self.nsg_name,
        )

    def _discover(self, name: str | None) -> Found:
        from azure.core.exceptions import ResourceNotFoundError

        from .discover import discover

        try:
            return discover(self.net, self.compute, self.location, name)
        except ResourceNotFoundError:
            raise SpecError("--vnet", f"{self.location.vnet!r} does not exist in resource group "
                            f"{self.rg}") from None  # fmt: skip

    def _foreign(
        self, nics: list[Any], tables: tuple[RouteTable, ...], ours: set[str]
    ) -> tuple[ForeignConnector, ...]:
        """The VMs not of ours that routes lead to (their NIC's address as next hop) whose NIC
        may forward (IP forwarding on): their power state read, one call each."""
        hops = {r.target for t in tables for r in t.routes} - ours
        out = []
        for n in nics:
            address = next((c.private_ip_address for c in n.ip_configurations or []
                            if c.private_ip_address in hops), None)  # fmt: skip
            if not address or not n.enable_ip_forwarding or n.virtual_machine is None:
                continue
            if TAG in (n.tags or {}):  # another network's connector of ours: a conflict
                continue
            vm_id = n.virtual_machine.id
            vm = self.compute.virtual_machines.get(_group_of(vm_id.lower()), short(vm_id),
                                                   expand="instanceView")  # fmt: skip
            codes = [s.code for s in (vm.instance_view.statuses if vm.instance_view else None)
                     or []]  # fmt: skip
            power = next((c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")), "")
            out.append(ForeignConnector(vm_id, address, POWER_STATES.get(
                power, ConnectorState.PENDING), short(vm_id)))  # fmt: skip
        return tuple(out)

    def _label(self, table_id: str) -> str:
        """How the plan names a table: its name in the network's resource group, else its id."""
        return short(table_id) if _group_of(table_id.lower()) == self.rg.lower() else table_id

    def _observe_tables(
        self,
        subnets: list[Any],
        tables: dict[str, Any],
        in_use: set[str],
        ours: set[str],
        seen: AzureSeen,
    ) -> tuple[RouteTable, ...]:
        """The selected tables (and any that routes to a connector of ours); their ids and
        their routes' names into `seen`."""
        chosen: dict[str, Any] = {}
        if self.network.route_tables is None:  # all: every subnet's table, ours for the others
            for s in subnets:
                if s.route_table:
                    chosen[s.route_table.id.lower()] = tables[s.route_table.id.lower()]
            own = self.rid("routeTables", self.table_name).lower()
            if any(not s.route_table for s in subnets):  # ours is for them (made if need be)
                chosen[own] = tables.get(own)
        else:
            wanted = {
                w if w.startswith("/") else self.rid("routeTables", w)
                for w in self.network.route_tables
            }
            chosen = {k: t for k, t in tables.items() if k in {w.lower() for w in wanted}}
        # and any table of the group that routes to our connector (left when the selection shrank)
        for key, t in tables.items():
            if any(r.next_hop_ip_address in ours for r in t.routes or []):
                chosen.setdefault(key, t)
        out = []
        for _key, t in sorted(chosen.items()):
            table_id = t.id if t is not None else self.rid("routeTables", self.table_name)
            label = self._label(table_id)
            seen.table_ids[label] = table_id
            routes = []
            for r in (t.routes if t is not None else None) or []:
                try:
                    destination = IPv4Network(r.address_prefix)
                except ValueError:
                    continue  # a service tag: never ours
                seen.route_names[(label, destination)] = r.name
                if r.next_hop_type == "VirtualAppliance":
                    # an appliance address no NIC holds carries nothing: a blackhole
                    target, usable = r.next_hop_ip_address, r.next_hop_ip_address in in_use
                else:
                    target, usable = r.next_hop_type, True
                routes.append(ObservedRoute(destination, str(target), usable))
            out.append(RouteTable(label, tuple(routes)))
        return tuple(out)

    def _way_out(self, subnet: Any, tables: dict[str, Any]) -> ObservedSubnet:
        """A NAT gateway on the subnet, else the 0.0.0.0/0 of its route table, else Azure's
        system route to the internet (which needs a public address since default outbound
        access was retired)."""
        table = tables.get(subnet.route_table.id.lower()) if subnet.route_table else None
        label = self._label(table.id) if table is not None else None
        if subnet.nat_gateway:
            return ObservedSubnet(
                subnet.name, WayOut.NAT_GATEWAY, short(subnet.nat_gateway.id), label
            )
        route = next(
            (
                r
                for r in (table.routes if table else None) or []
                if r.address_prefix == str(DEFAULT_ROUTE)
            ),
            None,
        )
        if route is None or route.next_hop_type == "Internet":
            return ObservedSubnet(
                subnet.name, WayOut.INTERNET_GATEWAY, "Azure's Internet next hop", label
            )
        if route.next_hop_type == "None":
            return ObservedSubnet(subnet.name, WayOut.NONE, "None", label)
        via = route.next_hop_ip_address or route.next_hop_type
        return ObservedSubnet(subnet.name, WayOut.OTHER, str(via), label)

    def _observe_parts(
        self,
        subnets: list[Any],
        tables: dict[str, Any],
        groups: list[Any],
        leftovers: dict[int, bool],
        found: dict[int, ObservedConnector],
        seen: AzureSeen,
    ) -> tuple[Part, ...]:
        """The group, our route table, what a gone VM left, each connector's profile (after
        its VM), and a pair's peer tags; a pair's that the file no longer has: to go."""
        c = self.network.connector
        assert c is not None
        nsg = next((g for g in groups if g.name == self.nsg_name), None)
        parts = [
            Part(
                "security-group",
                self.nsg_name,
                "the connector's own security group: the network's own ranges in, nothing from "
                "the internet",
                nsg is not None,
            )
        ]
        ours = tables.get(self.rid("routeTables", self.table_name).lower())
        bare = [s.name for s in subnets if not s.route_table]
        # our table is wanted while a subnet has none; once made it stays until destroy
        if ours is not None or (self.network.route_tables is None and bare):
            parts.append(
                Part(
                    "route-table",
                    self.table_name,
                    "a route table of ours for the subnets that have none"
                    + (f" ({', '.join(bare)})" if bare else ""),
                    ours is not None,
                    # with tables listed in the file, ours only waits for destroy
                    complete=ours is not None
                    and (not bare or self.network.route_tables is not None),
                )
            )
        for member, left in leftovers.items():
            if left:
                names = self.held[member]
                parts.append(
                    Part(
                        "connector-leftovers",
                        f"{names['nic_name']} / {names['ip_name']}",
                        "the network interface and public address of a connector VM that is gone",
                        True,
                        member=member,
                    )
                )
        for member in leftovers:
            with self.as_member(member):
                extension = self._observe_extension() if member in found else None
            parts.append(
                Part(
                    PROFILE_PART,
                    f"connector-profile extension of {self.held[member]['vm_name']}",
                    "the VPN profile in a VM extension's protectedSettings: encrypted to this VM, "
                    "never returned by Azure, never in custom data",
                    extension is not None,
                    # (one whose script failed, no tunnel: handed again)
                    complete=extension is not None and extension.get("state") != "Failed",
                    fingerprint=((extension or {}).get("settings") or {}).get("profileSha256"),
                    after_connector=True,
                    member=member,
                    wanted=member == 0 or c.ha,
                )
            )
        if len(leftovers) > 1:
            parts.append(self._peers_part(found, seen.vm_tags))
        return tuple(p for p in parts if p.wanted or p.present)

    # --- apply ---------------------------------------------------------------------------

    def _start(self) -> None:
        self.wait(
            self.compute.virtual_machines.begin_start(self.rg, self.vm_name),
            f"{self.vm_name} to start",
        )

    def _table_id(self, label: str) -> str:
        return self.seen.table_ids.get(label) or self.rid("routeTables", label)

    def _routes_batch(self, changes: Sequence[Change]) -> None:
        """The table written back whole in one PUT, our routes merged in (or taken out), once
        a step; every other route of the table goes back as it was."""
        from azure.mgmt.network import models

        label = changes[0].route_table
        assert label is not None
        table_id = self._table_id(label)
        group, name = _group_of(table_id.lower(), self.rg), short(table_id)
        names = {}
        for c in changes:
            assert c.destination is not None
            names[c.destination] = self.seen.route_names.get((label, c.destination)) or route_name(
                c.destination
            )
        touched = {n.lower() for n in names.values()}
        adding = {
            d: self.route_target(c)
            for d, c in zip(names, changes, strict=True)
            if c.action is not Action.DELETE
        }

        def merge(table: Any) -> Any:
            before = list(table.routes or [])
            routes = [r for r in before if r.name.lower() not in touched]
            if not adding and len(routes) == len(before):
                return None  # already gone
            table.routes = routes + [
                models.Route(
                    name=names[d],
                    properties=models.RoutePropertiesFormat(
                        address_prefix=str(d),
                        next_hop_type="VirtualAppliance",
                        next_hop_ip_address=address,
                    ),
                )
                for d, address in adding.items()
            ]
            return table

        self.read_merge_write(
            f"route table {name}",
            lambda: self.net.route_tables.get(group, name),
            merge,
            lambda table: self.put_whole(self.net.route_tables, group, name, table),
        )

    # --- our route table, for subnets that have none --------------------------------------

    def _create_route_table(self) -> None:
        from azure.mgmt.network import models

        table_id = self.rid("routeTables", self.table_name)
        tables = {t.id.lower() for t in self.net.route_tables.list(self.rg)}
        if table_id.lower() not in tables:
            self.wait(
                self.net.route_tables.begin_create_or_update(
                    self.rg,
                    self.table_name,
                    models.RouteTable(location=self.location.location, tags=self.tags),
                ),
                f"route table {self.table_name}",
            )
        for subnet in self.net.subnets.list(self.rg, self.location.vnet):
            if subnet.route_table is None:
                # PUT replaces the whole subnet: send it back as read, plus the table
                subnet.route_table = models.RouteTable(id=table_id)
                self._put_subnet(subnet)

    def _delete_route_table(self) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        table_id = self.rid("routeTables", self.table_name).lower()
        for subnet in self.net.subnets.list(self.rg, self.location.vnet):
            if subnet.route_table is not None and subnet.route_table.id.lower() == table_id:
                subnet.route_table = None
                self._put_subnet(subnet)
        with contextlib.suppress(ResourceNotFoundError):
            self.wait(
                self.net.route_tables.begin_delete(self.rg, self.table_name),
                f"route table {self.table_name}",
            )

    def _put_subnet(self, subnet: Any) -> None:
        self.wait(
            self.net.subnets.begin_create_or_update(
                self.rg, self.location.vnet, subnet.name, subnet
            ),
            f"subnet {subnet.name}",
        )

    PARTS = {
        "security-group": PartHandlers(
            create=Groups._create_security_group, delete=Groups._delete_security_group
        ),
        "route-table": PartHandlers(create=_create_route_table, delete=_delete_route_table),
        "connector-leftovers": PartHandlers(delete=Instance._delete_connector_leftovers),
        PROFILE_PART: PartHandlers(
            create=Instance._create_vpn_profile,
            update=Instance._update_vpn_profile,
            delete=Instance._delete_vpn_profile,
        ),
        PEERS_PART: PartHandlers(create=Pair._set_peers, delete=Pair._drop_peers),
    }

    def _dispatch(self, change: Change) -> None:
        """Each change acts on the connector it is about (of a pair: its member); one made
        beside the one it replaces takes the member's other names, and the old one is removed
        by its own names."""
        with self.for_change(change):
            if (
                change.kind is Kind.CONNECTOR
                and change.action is Action.CREATE
                and (change.previous_target)
            ):
                names = self.names_of(change.previous_target)
                other = self.member_names(
                    self.member, successor=not names["vm_name"].endswith("-r")
                )
                for key in ("vm_name", "nic_name", "ip_name"):
                    setattr(self, key, other[key])
                super()._dispatch(change)  # the member's connector is the new one from now on
                return
            if (
                change.kind is Kind.CONNECTOR
                and change.action is Action.DELETE
                and (change.resource != self.vm_name)
            ):
                with self.as_vm(self.names_of(change.resource)):
                    super()._dispatch(change)
                return
            super()._dispatch(change)


def _group_of(resource_id: str, default: str = "") -> str:
    """The resource group named in a resource id (lower case as given)."""
    parts = resource_id.split("/")
    for i, p in enumerate(parts):
        if p.lower() == "resourcegroups" and i + 1 < len(parts):
            return parts[i + 1]
    return default


def _subnet_range(subnet: Any) -> IPv4Network | None:
    """A subnet's (first) IPv4 address range: Azure gives one prefix or a list."""
    prefixes = [subnet.address_prefix] if subnet.address_prefix else subnet.address_prefixes or []
    return next((IPv4Network(p) for p in prefixes if ":" not in p), None)
