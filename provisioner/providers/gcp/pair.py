"""A connector pair on GCP (`connector.ha`): an internal passthrough Network Load Balancer
`cp-<network>-ilb` (a forwarding rule of all ports and protocols, L3_DEFAULT) is the next hop
(`nextHopIlb`) of every route of ours. Its regional backend service has the first connector's
instance group as its primary backend and the second's, in another zone, as its failover
backend; its health check asks each connector's `/active` (port 8181) every second, which only
the active one answers. The pair's watchdogs agree among themselves who that is
(`watchdog.Peers`), so a connector that comes back does not take the traffic back, as
Compute's failback would: it does not answer. Nothing is moved or written when it fails over:
the VMs need no permission beyond reading their own profile.

Each instance carries the other's address in its metadata (`connector-peer`), which its
watchdog reads from the metadata server; apply keeps it current."""

from __future__ import annotations

from typing import Any

from ...errors import CloudError
from ...model import (
    NEW_CONNECTOR,
    NEW_FRONT,
    Action,
    Change,
    ObservedConnector,
    ObservedFront,
    Part,
)
from ...watchdog import DEFAULT_PORT
from .common import GcpSeen, GcpState, partial, short

FRONT = "internal load balancer"
PEER_KEY = "connector-peer"
PEERS_PART = "pair-peers"
HEALTH_PART = "pair-health-checks"
HEALTH_RANGES = ("35.191.0.0/16", "130.211.0.0/22")  # Google's health checkers
# every second (Compute's least): the cloud's half of a failover is the watchdog's takeover and
# at most one check more (its timeout may not exceed the interval)
PROBE_SECONDS = 1
# down after one miss: harmless here, since with no healthy backend at all Compute keeps
# sending to the primary, and only a connector that claimed answers `/active`
UNHEALTHY_THRESHOLD = 1


class Pair(GcpState):
    standby_zone: str | None

    def _group_name(self, member: int) -> str:
        return f"cp-{self.network.name}-ig" + ("-2" if member else "")

    def _health_firewall(self) -> str:
        return f"cp-{self.network.name}-hc"  # (the firewalls' observe leaves it to this part)

    def _pick_standby_zone(self) -> str:
        """Another zone of the region than the first connector's (the first in name order)."""
        zones = sorted(
            z.name
            for z in self.call("zones", self.api.zones.list, project=self.project)
            if short(z.region) == self.region and z.name != self.location.zone
            and str(z.status) in ("UP", "Status.UP")
        )  # fmt: skip
        if not zones:
            raise CloudError(
                f"region {self.region} has no other zone for the pair's second connector"
            )
        return zones[0]

    def _observe_front(
        self, found: dict[int, ObservedConnector], seen: GcpSeen
    ) -> ObservedFront | None:
        """The pair's forwarding rule, its address (into `seen`), and whether each connector is
        in its instance group."""
        from google.api_core.exceptions import NotFound

        assert self.network.connector is not None
        try:
            rule = self.call("forwarding rule", self.api.forwarding_rules.get, project=self.project,
                             region=self.region, forwarding_rule=self.ilb_name)  # fmt: skip
        except NotFound:
            return None
        seen.front_ip = rule.I_p_address
        complete = all(self._in_group(m) for m in found)
        return ObservedFront(FRONT, str(seen.front_ip), None, wanted=self.network.connector.ha,
                             complete=complete)  # fmt: skip

    def _in_group(self, member: int) -> bool:
        from google.api_core.exceptions import NotFound
        from google.cloud import compute_v1

        names = self.held[member]
        try:
            listed = self.call("instance group", self.api.instance_groups.list_instances,
                               project=self.project, zone=names["zone"],
                               instance_group=self._group_name(member),
                               instance_groups_list_instances_request_resource=compute_v1.InstanceGroupsListInstancesRequest())  # fmt: skip
        except NotFound:
            return False
        return any(partial(i.instance) == names["connector_url"] for i in listed)

    def _peers_part(self, found: dict[int, ObservedConnector], seen: GcpSeen) -> Part:
        assert self.network.connector is not None
        told = {m: _metadata(seen.metadata.get(m)).get(PEER_KEY) for m in found}
        right = len(found) == 2 and all(told[m] == found[1 - m].private_ip for m in (0, 1))
        return Part(
            PEERS_PART,
            f"{PEER_KEY} on both instances",
            "each connector's watchdog finds the other by this metadata (the metadata server)",
            any(told.values()),
            complete=right,
            after_connector=True,
            member=1,
            wanted=self.network.connector.ha,
        )

    def _health_part(self, firewalls: list[Any]) -> Part:
        assert self.network.connector is not None
        return Part(
            HEALTH_PART,
            self._health_firewall(),
            f"Google's health checkers may ask the connectors' tcp/{DEFAULT_PORT}",
            any(f.name == self._health_firewall() for f in firewalls),
            wanted=self.network.connector.ha,
        )

    # --- the handlers ------------------------------------------------------------------------

    def _allow_health_checks(self) -> None:
        from google.cloud import compute_v1

        body = compute_v1.Firewall(
            name=self._health_firewall(), network=self.seen.network_url, direction="INGRESS",
            priority=1000, target_tags=[self.tag], source_ranges=list(HEALTH_RANGES),
            allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=[str(DEFAULT_PORT)])],
            description=f"connector-provisioner: {self.network.name}: the pair's health checks",
        )  # fmt: skip
        self._insert(f"firewall {self._health_firewall()}", self.api.firewalls.insert_unary,
                     lambda _: True, self._health_firewall(), project=self.project,
                     firewall_resource=body)  # fmt: skip

    def _stop_health_checks(self) -> None:
        self.delete(f"firewall {self._health_firewall()}", self.api.firewalls.delete_unary,
                    project=self.project, firewall=self._health_firewall())  # fmt: skip

    def _front(self, change: Change) -> None:
        if change.action is Action.DELETE:
            self._drop_load_balancer()
            return
        if change.action is Action.CREATE:
            self._make_load_balancer()
        for member in (0, 1):
            if self.held[member]["connector_url"]:
                self._join(member)

    def _make_load_balancer(self) -> None:
        from google.cloud import compute_v1

        assert self.network.connector is not None
        region, project = self.region, self.project
        check = compute_v1.HealthCheck(
            name=self.ilb_name, type_="HTTP", check_interval_sec=PROBE_SECONDS, timeout_sec=1,
            healthy_threshold=1, unhealthy_threshold=UNHEALTHY_THRESHOLD,
            http_health_check=compute_v1.HTTPHealthCheck(port=DEFAULT_PORT, request_path="/active"),
        )  # fmt: skip
        self._insert(f"health check {self.ilb_name}", self.api.health_checks.insert_unary,
                     lambda _: True, self.ilb_name, project=project, region=region,
                     health_check_resource=check)  # fmt: skip
        backends = []
        for member in (0, 1):
            zone, group = self.held[member]["zone"], self._group_name(member)
            self._insert(f"instance group {group}", self.api.instance_groups.insert_unary,
                         lambda _: True, group, project=project, zone=zone,
                         instance_group_resource=compute_v1.InstanceGroup(name=group, network=self.seen.network_url))  # fmt: skip
            backends.append(compute_v1.Backend(
                group=f"projects/{project}/zones/{zone}/instanceGroups/{group}",
                balancing_mode="CONNECTION", failover=bool(member)))  # fmt: skip
        service = compute_v1.BackendService(
            name=self.ilb_name, load_balancing_scheme="INTERNAL", protocol="UNSPECIFIED",
            health_checks=[f"projects/{project}/regions/{region}/healthChecks/{self.ilb_name}"],
            backends=backends,
            failover_policy=compute_v1.BackendServiceFailoverPolicy(
                disable_connection_drain_on_failover=True, drop_traffic_if_unhealthy=False),
        )  # fmt: skip
        self._insert(f"backend service {self.ilb_name}", self.api.backend_services.insert_unary,
                     lambda _: True, self.ilb_name, project=project, region=region,
                     backend_service_resource=service)  # fmt: skip
        rule = compute_v1.ForwardingRule(
            name=self.ilb_name, load_balancing_scheme="INTERNAL", I_p_protocol="L3_DEFAULT",
            all_ports=True, network=self.seen.network_url,
            subnetwork=f"projects/{project}/regions/{region}/subnetworks/{self.network.connector.subnet}",
            backend_service=f"projects/{project}/regions/{region}/backendServices/{self.ilb_name}",
        )  # fmt: skip
        self._insert(f"forwarding rule {self.ilb_name}", self.api.forwarding_rules.insert_unary,
                     lambda _: True, self.ilb_name, project=project, region=region,
                     forwarding_rule_resource=rule)  # fmt: skip
        made = self.call("forwarding rule", self.api.forwarding_rules.get, project=project,
                         region=region, forwarding_rule=self.ilb_name)  # fmt: skip
        self.seen.front_ip = made.I_p_address
        self.progress(
            f"{self.network.name}: internal load balancer {self.ilb_name} at {self.seen.front_ip}"
        )

    def _join(self, member: int) -> None:
        from google.cloud import compute_v1

        if self._in_group(member):
            return
        names = self.held[member]
        request = compute_v1.InstanceGroupsAddInstancesRequest(
            instances=[compute_v1.InstanceReference(instance=names["connector_url"])]
        )
        op = self.call("instance group", self.api.instance_groups.add_instances_unary,
                       project=self.project, zone=names["zone"],
                       instance_group=self._group_name(member),
                       instance_groups_add_instances_request_resource=request)  # fmt: skip
        self.wait(op, f"{names['instance_name']} into its instance group")

    def _drop_load_balancer(self) -> None:
        region, project = self.region, self.project
        self.delete(f"forwarding rule {self.ilb_name}", self.api.forwarding_rules.delete_unary,
                    project=project, region=region, forwarding_rule=self.ilb_name)  # fmt: skip
        self.delete(f"backend service {self.ilb_name}", self.api.backend_services.delete_unary,
                    project=project, region=region, backend_service=self.ilb_name)  # fmt: skip
        for member in (0, 1):
            self.delete(f"instance group {self._group_name(member)}",
                        self.api.instance_groups.delete_unary, project=project,
                        zone=self.held[member]["zone"], instance_group=self._group_name(member))  # fmt: skip
        self.delete(f"health check {self.ilb_name}", self.api.health_checks.delete_unary,
                    project=project, region=region, health_check=self.ilb_name)  # fmt: skip
        self.seen.front_ip = None

    def _set_peers(self, drop: bool = False) -> None:
        """Each instance's metadata names the other's address (or, `drop`, no longer)."""
        from google.api_core.exceptions import NotFound
        from google.cloud import compute_v1

        for member in (0, 1):
            names = self.held[member]
            try:
                vm = self.call("instance", self.api.instances.get, project=self.project,
                               zone=names["zone"], instance=names["instance_name"])  # fmt: skip
            except NotFound:
                continue
            items = {i.key: i.value for i in vm.metadata.items or []}
            other = self.held[1 - member]["connector_url"] and self._address_of(1 - member)
            wanted = None if drop else other
            if items.get(PEER_KEY) == wanted or (wanted is None and PEER_KEY not in items):
                continue
            items.pop(PEER_KEY, None)
            if wanted:
                items[PEER_KEY] = wanted
            metadata = compute_v1.Metadata(
                fingerprint=vm.metadata.fingerprint,
                items=[compute_v1.Items(key=k, value=v) for k, v in items.items()],
            )
            op = self.call("instance metadata", self.api.instances.set_metadata_unary,
                           project=self.project, zone=names["zone"],
                           instance=names["instance_name"], metadata_resource=metadata)  # fmt: skip
            self.wait(op, f"{names['instance_name']}'s metadata")

    def _drop_peers(self) -> None:
        self._set_peers(drop=True)

    def _address_of(self, member: int) -> str | None:
        names = self.held[member]
        vm = self.call("instance", self.api.instances.get, project=self.project,
                       zone=names["zone"], instance=names["instance_name"])  # fmt: skip
        return str(vm.network_interfaces[0].network_i_p) or None

    def route_hop(self, change: Change) -> dict[str, str]:
        """What a route change names as its next hop: the load balancer (by its address) or a
        connector instance (by its URL)."""
        if change.target == NEW_FRONT or (change.target and change.target == self.seen.front_ip):
            if not self.seen.front_ip:
                raise CloudError("the internal load balancer has no address yet")
            return {"next_hop_ilb": str(self.seen.front_ip)}
        member = change.member
        if change.target not in (None, NEW_CONNECTOR):
            member = next((m for m, h in self.held.items()
                           if h["connector_url"] and change.target in h["connector_url"]), member)  # fmt: skip
        url = self.held[member]["connector_url"]
        if not url:
            raise CloudError("the connector does not exist yet")
        return {"next_hop_instance": str(url)}


def _metadata(vm_metadata: Any) -> dict[str, str]:
    return {i.key: i.value for i in (vm_metadata.items if vm_metadata else None) or []}
