"""A connector pair on Azure (`connector.ha`): an internal Standard load balancer `cp-<network>-lb`
in front of both connectors, whose frontend address is the next hop of every route of ours.
Its one rule is HA ports (protocol All, ports 0): every flow goes to a connector its probe
finds up, and the probe asks each connector's `/active` (port 8181), which only the active one
answers. The pair's watchdogs agree among themselves who that is (`watchdog.Peers`): nothing
is moved and nothing is written when it fails over, so the VMs need no identity and no role.

Each VM carries the other's address in a tag (`connector-provisioner:peer`), which its
watchdog reads from the instance metadata; apply keeps it current."""

from __future__ import annotations

import contextlib
from typing import Any

from ...errors import CloudError
from ...model import Action, Change, ObservedConnector, ObservedFront, Part
from ...watchdog import DEFAULT_PORT
from .common import PEER_TAG, AzureSeen, AzureState

PEERS_PART = "pair-peers"
FRONT = "load balancer frontend"
PROBE_SECONDS = 5  # Microsoft's guide for network virtual appliances
PROBE_THRESHOLD = 1  # one answer decides (Azure's default)
RULE = "ha-ports"  # the balancer's one rule (HA ports)


def _probe(m: Any) -> Any:
    """The balancer's probe: each connector's `/active`, which only the active one answers."""
    return m.Probe(
        name="active",
        properties=m.ProbePropertiesFormat(
            protocol="Http",
            port=DEFAULT_PORT,
            request_path="/active",
            interval_in_seconds=PROBE_SECONDS,
            probe_threshold=PROBE_THRESHOLD,
        ),
    )


def _ha_ports_rule(m: Any, base: str) -> Any:
    """An HA-ports rule: every protocol and port of the frontend to the pair's pool."""
    return m.LoadBalancingRule(
        name=RULE,
        properties=m.LoadBalancingRulePropertiesFormat(
            protocol="All",
            frontend_port=0,
            backend_port=0,
            frontend_ip_configuration=m.SubResource(id=f"{base}/frontendIPConfigurations/front"),
            backend_address_pool=m.SubResource(id=f"{base}/backendAddressPools/pair"),
            probe=m.SubResource(id=f"{base}/probes/active"),
            idle_timeout_in_minutes=4,
        ),
    )


class Pair(AzureState):
    def _observe_front(
        self, found: dict[int, ObservedConnector], nics: list[Any], seen: AzureSeen
    ) -> ObservedFront | None:
        """The pair's load balancer, its frontend's address, and whether every connector's NIC
        is in its pool; the address and the pool into `seen`."""
        from azure.core.exceptions import ResourceNotFoundError

        assert self.network.connector is not None
        try:
            lb = self.net.load_balancers.get(self.rg, self.lb_name)
        except ResourceNotFoundError:
            return None
        seen.front_ip = lb.frontend_ip_configurations[0].private_ip_address
        seen.pool_id = lb.backend_address_pools[0].id if lb.backend_address_pools else None
        names = {self.held[m]["nic_name"] for m in found}
        joined = {
            n.name
            for n in nics
            if n.name in names
            and any(
                (p.id or "").lower() == (seen.pool_id or "").lower()
                for c in n.ip_configurations or []
                for p in c.load_balancer_backend_address_pools or []
            )
        }
        return ObservedFront(
            FRONT,
            str(seen.front_ip),
            None,  # the probe's choice: not readable through ARM
            wanted=self.network.connector.ha,
            complete=joined == names,
        )

    def _watchdog_words(self, members: tuple[ObservedConnector, ...]) -> dict[str, str]:
        """Azure's VM has no identity to write with: what the cloud holds of a member's
        watchdog is what the balancer's probe finds of its `/active` (the health status of the
        HA-ports rule): Up on the member the front sends to, Down on the other."""
        health = self.wait(
            self.net.load_balancer_load_balancing_rules.begin_health(self.rg, self.lb_name, RULE),
            f"the health status of load balancer {self.lb_name}",
        )
        found = {a.ip_address: a for a in health.load_balancer_backend_addresses or []}
        words = {}
        for c in members:
            a = found.get(c.private_ip or "")
            if a is not None:
                role = "active (answers /active)" if a.state == "Up" else "not active"
                words[c.instance] = f"the front's probe: {a.state} ({a.reason}): {role}"
        return words

    def _peers_part(self, found: dict[int, ObservedConnector], vm_tags: dict[int, dict[str, str]]) -> Part:  # fmt: skip
        assert self.network.connector is not None
        addresses = {m: x.private_ip for m, x in found.items()}
        right = len(found) == 2 and all(
            vm_tags.get(m, {}).get(PEER_TAG) == addresses[1 - m] for m in (0, 1)
        )
        return Part(
            PEERS_PART,
            f"{PEER_TAG} on both VMs",
            "each connector's watchdog finds the other by this tag (instance metadata)",
            bool(found) and any(PEER_TAG in vm_tags.get(m, {}) for m in found),
            complete=right,
            after_connector=True,
            member=1,
            wanted=self.network.connector.ha,
        )

    # --- the handlers ------------------------------------------------------------------------

    def _front(self, change: Change) -> None:
        if change.action is Action.DELETE:
            for member in (0, 1):
                self._join(self.held[member]["nic_name"], False)
            from azure.core.exceptions import ResourceNotFoundError

            with contextlib.suppress(ResourceNotFoundError):
                self.wait(
                    self.net.load_balancers.begin_delete(self.rg, self.lb_name),
                    f"load balancer {self.lb_name}",
                )
            self.seen.front_ip = self.seen.pool_id = None
            return
        if change.action is Action.CREATE:
            self._make_load_balancer()
        for member in (0, 1):
            if self.held[member]["connector_ip"]:
                self._join(self.held[member]["nic_name"], True)

    def _make_load_balancer(self) -> None:
        from azure.mgmt.network import models as m

        assert self.network.connector is not None and self.seen.vnet is not None
        subnet_name = self.network.connector.subnet
        subnet = next((s for s in self.seen.vnet.subnets or [] if s.name == subnet_name), None)
        if subnet is None:
            raise CloudError(f"subnet {subnet_name} is not in vnet {self.location.vnet}")
        base = self.rid("loadBalancers", self.lb_name)
        lb = self.wait(
            self.net.load_balancers.begin_create_or_update(
                self.rg,
                self.lb_name,
                m.LoadBalancer(
                    location=self.location.location,
                    tags=self.tags,
                    sku=m.LoadBalancerSku(name="Standard"),
                    properties=m.LoadBalancerPropertiesFormat(
                        frontend_ip_configurations=[
                            m.FrontendIPConfiguration(
                                name="front",
                                properties=m.FrontendIPConfigurationPropertiesFormat(
                                    subnet=m.Subnet(id=subnet.id),
                                    private_ip_address=self.free_address(subnet, None),
                                    private_ip_allocation_method="Static",  # routes name it
                                ),
                            )
                        ],
                        backend_address_pools=[m.BackendAddressPool(name="pair")],
                        probes=[_probe(m)],
                        load_balancing_rules=[_ha_ports_rule(m, base)],
                    ),
                ),
            ),
            f"load balancer {self.lb_name}",
        )
        self.seen.front_ip = lb.frontend_ip_configurations[0].private_ip_address
        self.seen.pool_id = lb.backend_address_pools[0].id
        self.progress(f"{self.network.name}: load balancer {self.lb_name} at {self.seen.front_ip}")

    def _join(self, nic_name: str, join: bool) -> None:
        """A connector's NIC in the pair's pool (or out of it), sent back whole."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.mgmt.network import models as m

        if self.seen.pool_id is None:
            return
        try:
            nic = self.net.network_interfaces.get(self.rg, nic_name)
        except ResourceNotFoundError:
            return
        config = nic.ip_configurations[0]
        pools = [p for p in config.load_balancer_backend_address_pools or []
                 if (p.id or "").lower() != self.seen.pool_id.lower()]  # fmt: skip
        if join:
            pools.append(m.BackendAddressPool(id=self.seen.pool_id))
        if len(pools) == len(config.load_balancer_backend_address_pools or []):
            return  # as it should be
        config.load_balancer_backend_address_pools = pools
        self.put_whole(self.net.network_interfaces, self.rg, nic_name, nic)

    def _set_peers(self) -> None:
        from azure.mgmt.compute import models as compute

        for member in (0, 1):
            other = self.held[1 - member]["connector_ip"]
            vm = self.held[member]["vm_name"]
            current = self.compute.virtual_machines.get(self.rg, vm)
            tags = dict(current.tags or {})
            if not other or tags.get(PEER_TAG) == other:
                continue
            tags[PEER_TAG] = other
            self.wait(
                self.compute.virtual_machines.begin_update(
                    self.rg, vm, compute.VirtualMachineUpdate(tags=tags)
                ),
                f"VM {vm}'s tags",
            )

    def _drop_peers(self) -> None:
        """A connector left alone: its peer's address goes (its watchdog then finds no pair)."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.mgmt.compute import models as compute

        for member in (0, 1):
            vm = self.held[member]["vm_name"]
            try:
                tags = dict(self.compute.virtual_machines.get(self.rg, vm).tags or {})
            except ResourceNotFoundError:
                continue
            if tags.pop(PEER_TAG, None) is not None:
                self.wait(
                    self.compute.virtual_machines.begin_update(
                        self.rg, vm, compute.VirtualMachineUpdate(tags=tags)
                    ),
                    f"VM {vm}'s tags",
                )

    def route_target(self, change: Change) -> str:
        """The next hop a route change names (the load balancer's frontend, or a connector)."""
        return self.target_of(change, self.seen.front_ip, "connector_ip")
