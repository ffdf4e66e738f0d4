"""Azure's route tables: ours (cp-<network>, on subnets that had none) and the admin's, their
routes read, merged and written back whole under the table's etag, and each subnet's way out."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from ipaddress import IPv4Network
from typing import Any

from ...model import Action, Change, ObservedRoute, ObservedSubnet, RouteTable, WayOut
from .common import AzureSeen, AzureState, _group_of, route_name, short

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")


class Routes(AzureState):
    """The connector's routes in the route tables' words."""

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
