"""Azure: a VNet, the route tables of its subnets (user-defined routes), network security groups,
and the connector put there. Translates; decides nothing.

What the toolkit creates carries the tag `connector-provisioner:network=<name>` and a `cp-` name
(`cp-<network>-connector`, `cp-<network>-routes`, UDRs `cp-100-96-0-0-11`, NSG rules
`cp-<network>-<digest>`), so observe finds it again and destroy removes exactly that.
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
    Cap,
    Change,
    ConnectorState,
    ForeignConnector,
    Kind,
    Network,
    Observed,
    ObservedConnector,
    Part,
    RouteTable,
    Stray,
)
from ..base import PartHandlers, Provider, sandbox_clients
from . import quotas
from .cloud import AzureLocation
from .common import (
    FILE_TAG,
    TAG,
    AzureSeen,
    VnetTagLease,
    _group_of,
    error_text,
    sandbox_endpoint,
    short,
)
from .common import clients as make_clients
from .groups import Groups
from .instance import POWER_STATES, Instance
from .pair import PEERS_PART, Pair
from .routes import Routes


class AzureNetwork(Groups, Routes, Instance, Pair, Provider):
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
        seen = AzureSeen()  # what this observe learns for apply; the parts' from now on
        seen.vnet = vnet = self._vnet()
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
        found, leftovers, extras, pair = self._observe_members(nics, seen)
        front = self._observe_front(found, nics, seen) if pair else None
        ours = {x.interface for x in (*found.values(), *extras) if x.interface}
        if front is not None:
            in_use.add(front.id)  # a next hop as live as a NIC's address
            ours.add(front.id)
        observed_tables = self._observe_tables(subnets, tables, in_use, ours, seen)
        groups = list(self.net.network_security_groups.list(self.rg))
        first = found.get(0) or found.get(1)
        app_groups, ingress = self._observe_groups(groups, first.interface if first else None, seen)
        parts = self._observe_parts(subnets, tables, groups, leftovers, found, seen)
        self.seen = seen
        return Observed(
            network=self.network.name,
            cidrs=tuple(IPv4Network(p) for p in vnet.address_space.address_prefixes),
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
            foreign=self._foreign(nics, observed_tables, ours),
            caps=self._caps(),
            held=dict(seen.rule_counts),
            connector_group=self.nsg_name,
        )

    def _vnet(self) -> Any:
        """The VNet the file names (SpecError: it, or its resource group, does not exist)."""
        from azure.core.exceptions import ResourceNotFoundError

        loc, name = self.location, self.network.name
        try:
            return self.net.virtual_networks.get(self.rg, loc.vnet)
        except ResourceNotFoundError as e:
            if e.error is not None and e.error.code == "ResourceGroupNotFound":
                raise SpecError(
                    f"networks.{name}.resource_group",
                    f"{self.rg!r} does not exist in subscription {loc.subscription}",
                ) from None
            raise SpecError(
                f"networks.{name}.vnet", f"{loc.vnet!r} does not exist in resource group {self.rg}"
            ) from None

    def _observe_members(
        self, nics: list[Any], seen: AzureSeen
    ) -> tuple[dict[int, ObservedConnector], dict[int, bool], list[ObservedConnector], bool]:
        """The connectors by member, whether each left parts of a VM behind, the other live
        ones of ours (an interrupted replacement's), and whether this is a pair: a pair's second
        connector and its load balancer are looked for with ha, or where the pair's second NIC
        says a pair was here (so a single connector costs no read more)."""
        c = self.network.connector
        assert c is not None
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
        return found, leftovers, extras, pair

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
        parts += [self._profile_part(member, member in found) for member in leftovers]
        if len(leftovers) > 1:
            parts.append(self._peers_part(found, seen.vm_tags))
        return tuple(p for p in parts if p.wanted or p.present)

    def _profile_part(self, member: int, has_vm: bool) -> Part:
        """A connector's profile, handed to its VM in an extension (after the VM is made)."""
        c = self.network.connector
        assert c is not None
        with self.as_member(member):
            extension = self._observe_extension() if has_vm else None
        return Part(
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

    # --- apply ---------------------------------------------------------------------------

    def _start(self) -> None:
        self.wait(
            self.compute.virtual_machines.begin_start(self.rg, self.vm_name),
            f"{self.vm_name} to start",
        )

    # --- our route table, for subnets that have none --------------------------------------

    PARTS = {
        "security-group": PartHandlers(
            create=Groups._create_security_group, delete=Groups._delete_security_group
        ),
        "route-table": PartHandlers(
            create=Routes._create_route_table, delete=Routes._delete_route_table
        ),
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


def _subnet_range(subnet: Any) -> IPv4Network | None:
    """A subnet's (first) IPv4 address range: Azure gives one prefix or a list."""
    prefixes = [subnet.address_prefix] if subnet.address_prefix else subnet.address_prefixes or []
    return next((IPv4Network(p) for p in prefixes if ":" not in p), None)
