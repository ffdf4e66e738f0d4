"""Plain data shared by the spec, the planner, the providers and the faces.

Nothing here imports a cloud SDK or does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Network
from pathlib import Path

DEFAULT_VPN_SUBNET = IPv4Network("100.96.0.0/11")
MANAGED_CLOUDS = ("aws", "azure", "gcp", "oci")
CLOUDS = (*MANAGED_CLOUDS, "external")


# --- the topology (what the user asked for) -------------------------------------------------


@dataclass(frozen=True)
class AwsLocation:
    region: str
    vpc: str

    def describe(self) -> str:
        return f"{self.vpc} in {self.region}"


@dataclass(frozen=True)
class AzureLocation:
    subscription: str
    resource_group: str
    vnet: str
    location: str

    def describe(self) -> str:
        return f"vnet {self.vnet} in {self.resource_group}"


@dataclass(frozen=True)
class GcpLocation:
    project: str
    network: str
    zone: str

    def describe(self) -> str:
        return f"network {self.network} in {self.project}"


@dataclass(frozen=True)
class OciLocation:
    region: str
    compartment: str
    vcn: str

    def describe(self) -> str:
        return f"vcn {self.vcn} in {self.region}"


Location = AwsLocation | AzureLocation | GcpLocation | OciLocation


@dataclass(frozen=True)
class Connector:
    """The connector VM a managed network gets. `profile` is a path; its content is a secret
    and is never held here, only its fingerprint."""

    subnet: str
    size: str
    nat: bool
    egress: bool
    profile: Path
    profile_fingerprint: str
    image: str | None = None
    # seed "Enable NAT": `! -d <local subnet>` so LAN hosts see the real VPN address
    nat_preserve_source: bool = True
    lan_interface: str | None = None


@dataclass(frozen=True)
class Network:
    name: str
    cloud: str
    subnets: tuple[IPv4Network, ...] | None  # None: the network's own CIDRs, read from the cloud
    location: Location | None = None  # None only for external networks
    route_tables: tuple[str, ...] | None = None  # None: every route table of the network
    app_security_groups: tuple[str, ...] = ()
    connector: Connector | None = None

    @property
    def managed(self) -> bool:
        return self.cloud != "external"


@dataclass(frozen=True)
class Topology:
    networks: tuple[Network, ...]
    vpn_subnet: IPv4Network = DEFAULT_VPN_SUBNET

    @property
    def managed(self) -> tuple[Network, ...]:
        return tuple(n for n in self.networks if n.managed)

    def network(self, name: str) -> Network:
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)


# --- what a provider observed ----------------------------------------------------------------


@dataclass(frozen=True)
class ObservedRoute:
    destination: IPv4Network
    target: str  # the cloud's id of the next hop (ENI id, IGW id, "local", ...)
    usable: bool = True  # False when the cloud marks it as a blackhole


@dataclass(frozen=True)
class RouteTable:
    id: str
    routes: tuple[ObservedRoute, ...]

    def route_to(self, destination: IPv4Network) -> ObservedRoute | None:
        for r in self.routes:
            if r.destination == destination:
                return r
        return None


@dataclass(frozen=True)
class ObservedConnector:
    instance: str
    state: str  # pending | running | stopping | stopped
    interface: str | None
    private_ip: str | None
    forwarding: bool
    size: str
    image: str
    subnet: str
    fingerprint: str  # of the settings it was launched with (see planner.connector_fingerprint)


@dataclass(frozen=True)
class AppGroup:
    id: str
    allows_connector: bool


@dataclass(frozen=True)
class Part:
    """A supporting resource the connector is made of on this cloud (a secret, a role, a
    security group...). The provider names them and their order; the planner creates the
    missing ones in that order and deletes them in reverse."""

    kind: str
    name: str
    why: str  # why the connector needs it, shown in the plan
    present: bool  # exists at all: destroy removes it
    complete: bool | None = None  # fully set up (None: same as present); apply finishes it
    fingerprint: str | None = None  # for content that can go stale (the stored VPN profile)

    @property
    def ready(self) -> bool:
        return self.present if self.complete is None else self.complete


@dataclass(frozen=True)
class Observed:
    network: str
    cidrs: tuple[IPv4Network, ...]
    route_tables: tuple[RouteTable, ...]
    subnets: tuple[str, ...]  # ids of the network's subnets (where a connector may go)
    connector: ObservedConnector | None = None
    parts: tuple[Part, ...] = ()
    app_groups: tuple[AppGroup, ...] = ()
    connector_ingress: tuple[IPv4Network, ...] = ()  # CIDRs the connector's own group admits


# --- the plan ---------------------------------------------------------------------------------


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    START = "start"


class Kind(StrEnum):
    PART = "part"  # a supporting resource named by the provider (secret, role, group...)
    CONNECTOR = "connector"
    FORWARDING = "forwarding"
    CONNECTOR_INGRESS = "connector-ingress"
    APP_ACCESS = "app-access"
    ROUTE = "route"


CONNECTOR_TARGET = "connector"  # stands for the connector's interface until it exists


@dataclass(frozen=True)
class DesiredConnector:
    """Everything needed to launch the connector, resolved from spec + observation."""

    network: str
    subnet: str
    size: str
    image: str | None
    profile: Path
    nat: bool
    nat_preserve_source: bool
    local_subnets: tuple[IPv4Network, ...]
    lan_interface: str | None
    fingerprint: str


@dataclass(frozen=True)
class Change:
    network: str
    action: Action
    kind: Kind
    resource: str  # what it touches, as the user would name it
    why: str  # the seed step or rule that requires it
    route_table: str | None = None
    destination: IPv4Network | None = None
    target: str | None = None
    previous_target: str | None = None
    part: Part | None = None
    connector: DesiredConnector | None = None

    def summary(self) -> str:
        if self.kind is Kind.ROUTE:
            arrow = f"{self.destination} -> {self.target}"
            if self.previous_target:
                arrow += f" (was {self.previous_target})"
            return f"{self.action} route {arrow} in {self.route_table}"
        if self.kind is Kind.FORWARDING:
            return f"{self.action} forwarding on {self.resource} (source/dest check off)"
        return f"{self.action} {self.part.kind if self.part else self.kind} {self.resource}"

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "action": str(self.action),
            "kind": self.part.kind if self.part else str(self.kind),
            "resource": self.resource,
            "why": self.why,
        }
        if self.route_table is not None:
            out["route_table"] = self.route_table
        if self.destination is not None:
            out["destination"] = str(self.destination)
        if self.target is not None:
            out["target"] = self.target
        if self.previous_target is not None:
            out["previous_target"] = self.previous_target
        if self.connector is not None:
            c = self.connector
            out["connector"] = {
                "subnet": c.subnet,
                "size": c.size,
                "image": c.image,
                "nat": c.nat,
                "nat_preserve_source": c.nat_preserve_source,
                "local_subnets": [str(s) for s in c.local_subnets],
            }
        return out


@dataclass(frozen=True)
class Conflict:
    network: str
    route_table: str
    destination: IPv4Network
    current_target: str

    def summary(self) -> str:
        return (
            f"{self.route_table}: {self.destination} already points at {self.current_target}, "
            "not at the connector"
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "route_table": self.route_table,
            "destination": str(self.destination),
            "current_target": self.current_target,
        }


@dataclass(frozen=True)
class NetworkPlan:
    network: str
    cloud: str
    changes: tuple[Change, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    operation: str  # apply | destroy
    networks: tuple[NetworkPlan, ...] = ()
    vpn_subnet: IPv4Network = DEFAULT_VPN_SUBNET

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(c for n in self.networks for c in n.changes)

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return tuple(c for n in self.networks for c in n.conflicts)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.conflicts

    def to_dict(self) -> dict[str, object]:
        """The documented JSON form (schema `connector-provisioner/plan` version 1)."""
        return {
            "schema": "connector-provisioner/plan",
            "version": 1,
            "operation": self.operation,
            "vpn_subnet": str(self.vpn_subnet),
            "summary": summarize(self.changes, len(self.conflicts)),
            "networks": [
                {
                    "name": n.network,
                    "cloud": n.cloud,
                    "changes": [c.to_dict() for c in n.changes],
                    "conflicts": [c.to_dict() for c in n.conflicts],
                    "notes": list(n.notes),
                }
                for n in self.networks
            ],
        }


def summarize(changes: tuple[Change, ...], conflicts: int = 0) -> dict[str, int]:
    counts = {str(a): 0 for a in Action}
    for c in changes:
        counts[str(c.action)] += 1
    counts["conflicts"] = conflicts
    return counts


# --- status -----------------------------------------------------------------------------------


class RouteState(StrEnum):
    OK = "ok"
    MISSING = "missing"
    ELSEWHERE = "elsewhere"  # points at another target
    BLACKHOLE = "blackhole"


@dataclass(frozen=True)
class RouteStatus:
    route_table: str
    destination: IPv4Network
    state: RouteState
    target: str | None


@dataclass(frozen=True)
class NetworkStatus:
    network: str
    cloud: str
    connector: ObservedConnector | None
    routes: tuple[RouteStatus, ...] = ()
    app_groups: tuple[AppGroup, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return (
            self.connector is not None
            and self.connector.state == "running"
            and self.connector.forwarding
            and all(r.state is RouteState.OK for r in self.routes)
            and all(g.allows_connector for g in self.app_groups)
        )

    def to_dict(self) -> dict[str, object]:
        c = self.connector
        return {
            "name": self.network,
            "cloud": self.cloud,
            "healthy": self.healthy,
            "connector": None
            if c is None
            else {
                "instance": c.instance,
                "state": c.state,
                "interface": c.interface,
                "private_ip": c.private_ip,
                "forwarding": c.forwarding,
                "size": c.size,
                "image": c.image,
            },
            "routes": [
                {
                    "route_table": r.route_table,
                    "destination": str(r.destination),
                    "state": str(r.state),
                    "target": r.target,
                }
                for r in self.routes
            ],
            "app_security_groups": [
                {"id": g.id, "allows_connector": g.allows_connector} for g in self.app_groups
            ],
            "notes": list(self.notes),
        }


def fingerprint(*parts: object) -> str:
    """A short, stable digest. Used for secrets too: it reveals nothing of the content."""
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    done: tuple[Change, ...] = field(default_factory=tuple)
