"""Plain data shared by the spec, the planner, the providers and the faces.

Nothing here imports a cloud SDK or does I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from ipaddress import IPv4Network
from pathlib import Path
from typing import TypeVar

DEFAULT_VPN_SUBNET = IPv4Network("100.96.0.0/11")


# --- the topology (what the user asked for) -------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where a managed network is in its cloud. Each cloud's package defines its own (a frozen
    dataclass: the fields that compare say where the network is, the others how it is reached)
    and registers it with its `clouds.Cloud`."""

    def describe(self) -> str:
        raise NotImplementedError


def place_text(cloud: str, location: Location) -> str:
    """A cloud and a location in full, `<cloud> region=... vpc=...;`: what
    `clouds.place_from_text` reads back (the VPN service keeps it where the cloud half lives)."""
    placed = [f for f in fields(location) if f.compare]  # where it is, not how it is reached
    return " ".join([cloud, *(f"{f.name}={getattr(location, f.name)}" for f in placed)]) + ";"


T = TypeVar("T")


def first_overlap(items: Sequence[tuple[T, IPv4Network]]) -> tuple[int, int] | None:
    """The first two of `items` whose networks overlap, as their indexes (earlier, later): the
    later is the first in `items`' order that overlaps one before it, the earlier the first of
    those. Until then the networks seen are disjoint, so each new one is looked up among them
    by address (bisect): n log n, where every pair of a thousand networks took seconds."""
    import bisect

    starts: list[int] = []  # of the disjoint networks seen so far, sorted
    ends: list[int] = []
    index: list[int] = []
    for j, (_, net) in enumerate(items):
        start, end = int(net.network_address), int(net.broadcast_address)
        at = bisect.bisect_right(starts, end)  # those from here on start past its end
        first = at
        while first > 0 and ends[first - 1] >= start:  # a contiguous run of those it covers
            first -= 1
        if first < at:
            return (min(index[first:at]), j)
        starts.insert(at, start)
        ends.insert(at, end)
        index.insert(at, j)
    return None


PROTOCOLS = ("tcp", "udp", "icmp")


@dataclass(frozen=True, order=True)
class Ports:
    """What traffic a rule admits: all traffic, or one protocol with an optional port range.
    Written `all`, `tcp`, `udp`, `icmp`, `tcp/443`, `udp/5000-5100` (and shown the same way)."""

    protocol: str = "all"  # all | tcp | udp | icmp | another protocol as the cloud names it
    first: int | None = None
    last: int | None = None

    def __str__(self) -> str:
        if self.first is None:
            return self.protocol
        if self.first == self.last:
            return f"{self.protocol}/{self.first}"
        return f"{self.protocol}/{self.first}-{self.last}"

    def covers(self, other: Ports) -> bool:
        """Every packet `other` admits, this admits too."""
        if self.protocol == "all":
            return True
        if self.protocol != other.protocol:
            return False
        if self.first is None:
            return True
        if other.first is None or other.last is None or self.last is None:
            return False
        return self.first <= other.first and other.last <= self.last


ALL_TRAFFIC = Ports()


@dataclass(frozen=True)
class AppAccess:
    """An app security group the connector's traffic must get into, and on which ports."""

    group: str
    ports: tuple[Ports, ...] = (ALL_TRAFFIC,)


class ProfileSource:
    """Where a connector's VPN profile comes from. Its content is a secret: read only when it
    goes into the cloud's secret store, never held by the model."""

    @property
    def fingerprint(self) -> str:
        """Names the profile's version: what the stored copy is compared with."""
        raise NotImplementedError

    def read(self) -> bytes:
        raise NotImplementedError


class ProfileFile(ProfileSource):
    """A profile file the admin downloaded (the topology's `connector.profile`)."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self._fingerprint = fingerprint

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def read(self) -> bytes:
        from .files import MAX_PROFILE_BYTES, read_bounded

        return read_bounded(self.path, MAX_PROFILE_BYTES)

    def __repr__(self) -> str:
        return f"ProfileFile({str(self.path)!r})"


class ServiceProfile(ProfileSource):
    """The profile of the network's connector on the VPN service: made by the service's API when
    it is stored in the cloud, in memory only. `source` (the service's side of the deployment)
    is bound before anything is read."""

    def __init__(self, network: str, member: int = 0) -> None:
        self.network = network
        self.member = member  # of a pair: whose connector on the service
        self.source: ProfileSupplier | None = None

    def _bound(self) -> ProfileSupplier:
        if self.source is None:
            raise RuntimeError(f"the VPN service's profile of {self.network} is not bound")
        return self.source

    @property
    def fingerprint(self) -> str:
        return self._bound().profile_fingerprint(self.network, self.member)

    def read(self) -> bytes:
        return self._bound().profile(self.network, self.member)

    def __repr__(self) -> str:
        return f"ServiceProfile({self.network!r}, {self.member})"


class ProfileSupplier:
    """What hands out service-made profiles: the VPN service's side of a deployment."""

    def profile_fingerprint(self, network: str, member: int = 0) -> str:
        raise NotImplementedError

    def profile(self, network: str, member: int = 0) -> bytes:
        raise NotImplementedError

    def connector_status(self, network: str, member: int = 0) -> tuple[str, str]:
        """(name, connection status as the service reports it: ONLINE...) of the network's
        connector whose profile `profile` hands out."""
        raise NotImplementedError


@dataclass(frozen=True)
class Connector:
    """The connector VM a managed network gets. `profile` says where its VPN profile comes from
    (a file, or the VPN service's API); its content is never held here."""

    subnet: str
    size: str
    nat: bool
    egress: bool
    profile: ProfileSource
    image: str | None = None
    # seed "Enable NAT": `! -d <local subnet>` so LAN hosts see the real VPN address
    nat_preserve_source: bool = True
    lan_interface: str | None = None
    service_account: str | None = None  # GCP: the connector's identity, when not made for it
    vault: str | None = None  # OCI: the vault and key that hold the profile secret
    key: str | None = None
    dynamic_group: str | None = None  # OCI: the connector's dynamic group, when not made for it
    vpn_region: str | None = None  # the VPN service's region it attaches to (service block)
    takes_over: str | None = None  # a connector made by hand, named: its VM's id, or its hop
    # a pair (`ha: true`): the second connector's subnet and profile; the first one's are
    # `subnet` and `profile`
    standby_subnet: str | None = None
    standby_profile: ProfileSource | None = None

    @property
    def profile_fingerprint(self) -> str:
        return self.profile.fingerprint

    @property
    def ha(self) -> bool:
        return self.standby_subnet is not None

    @property
    def subnets(self) -> tuple[str, ...]:
        """Where its connectors go: one subnet, or the pair's two."""
        return (self.subnet,) if self.standby_subnet is None else (self.subnet, self.standby_subnet)

    def member_profile(self, member: int) -> ProfileSource:
        if member == 0:
            return self.profile
        assert self.standby_profile is not None
        return self.standby_profile


@dataclass(frozen=True)
class Network:
    name: str
    cloud: str
    subnets: tuple[IPv4Network, ...] | None  # None: the network's own CIDRs, read from the cloud
    location: Location | None = None  # None only for external networks
    route_tables: tuple[str, ...] | None = None  # None: every route table of the network
    app_access: tuple[AppAccess, ...] = ()
    connector: Connector | None = None
    route_priority: int | None = None  # GCP: our routes' priority (default 1000)
    adopt_service_network: bool = False  # the service's network of this name is ours to manage
    profile_out: Path | None = None  # external network: where its connector's profile goes
    file: str | None = None  # the id of the file it is in (Topology.id): whose its parts are
    # covering prefixes routed (and admitted) instead of the peers' subnets inside them
    summarize: tuple[IPv4Network, ...] = ()

    @property
    def managed(self) -> bool:
        return self.cloud != "external"

    @property
    def app_security_groups(self) -> tuple[str, ...]:
        return tuple(a.group for a in self.app_access)


@dataclass(frozen=True)
class CloudConnexa:
    """The VPN service's half (`service.cloudconnexa`): its API is at
    https://<cloud_id>.api.openvpn.com; connectors attach in `vpn_region` unless a network says
    otherwise. Credentials come from the environment, never from here."""

    cloud_id: str
    vpn_region: str


@dataclass(frozen=True)
class Topology:
    networks: tuple[Network, ...]
    vpn_subnet: IPv4Network = DEFAULT_VPN_SUBNET
    service: CloudConnexa | None = None
    # which file this is, on an account several files share: what it made on the VPN service
    # records it, and a file plans, prunes and destroys only its own
    id: str = "topology"

    @property
    def managed(self) -> tuple[Network, ...]:
        return tuple(n for n in self.networks if n.managed)

    def network(self, name: str) -> Network:
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)


# --- what the VPN service holds ------------------------------------------------------------

SERVICE_MARK = "connector-provisioner"  # leads the description of what we made on the service


@dataclass(frozen=True)
class ServiceRoute:
    id: str
    subnet: IPv4Network
    ours: bool


@dataclass(frozen=True)
class ServiceConnector:
    id: str
    name: str
    region: str
    address: str  # its VPN address, from the VPN range
    status: str  # as the API reports it: ONLINE, OFFLINE...
    ours: bool


_OWNER = re.compile(re.escape(SERVICE_MARK) + r"(?:@([a-z0-9][a-z0-9._-]{0,31}))?:")


def service_owner(description: str) -> tuple[bool, str | None]:
    """(made by this toolkit, by which file: None when it recorded none)."""
    m = _OWNER.match(description)
    return (m is not None, m.group(1) if m else None)


@dataclass(frozen=True)
class ServiceNetwork:
    id: str
    name: str
    description: str
    egress: bool
    routes: tuple[ServiceRoute, ...] = ()
    connectors: tuple[ServiceConnector, ...] = ()
    file: str | None = None  # the id of the file that read it (None: any)

    @property
    def owner(self) -> str | None:
        """The file that made it, as its description records (None: none recorded)."""
        return service_owner(self.description)[1]

    @property
    def ours(self) -> bool:
        """Made by this toolkit for the file that reads it (or recording no file: made before
        files recorded themselves, and taken as the reader's)."""
        marked, owner = service_owner(self.description)
        return marked and (owner is None or self.file is None or owner == self.file)

    @property
    def theirs(self) -> bool:
        """Made by this toolkit for another file on the same account: never touched."""
        marked, owner = service_owner(self.description)
        return marked and owner is not None and self.file is not None and owner != self.file


@dataclass(frozen=True)
class AccessItem:
    """One source or destination of an access group, as the API gives it: a `type`
    (USER_GROUP, NETWORK_SERVICE, HOST_SERVICE, PUBLISHED_SERVICE), `all_covered` with no
    `parent` (every one of that type), or a `parent` (a user group, a network) with
    `all_covered` (all of it) or some of its `children` (its IP services)."""

    type: str
    all_covered: bool = False
    parent: str | None = None
    children: tuple[str, ...] = ()

    def covers(self, kind: str, parent: str | None) -> str:
        """Whether it covers every one of `kind` under `parent` (None: any user): all, part
        (some of its services, or one user group of the users) or none."""
        if self.type != kind:
            return "none"
        if self.parent is None:
            return "all" if self.all_covered else "none"
        if parent is None:  # "VPN users": a user group is part of them
            return "part"
        if self.parent != parent:
            return "none"
        return "all" if self.all_covered else ("part" if self.children else "none")


@dataclass(frozen=True)
class AccessGroup:
    id: str
    name: str
    sources: tuple[AccessItem, ...] = ()
    destinations: tuple[AccessItem, ...] = ()


@dataclass(frozen=True)
class ServicePolicy:
    """Who may reach what on the VPN service: the account's topology setting (FULL_MESH: every
    user and network reaches every other; CUSTOM: the access groups decide) and its access
    groups. `error`: why it could not be read (the doctor then cannot judge the service)."""

    topology: str | None = None
    groups: tuple[AccessGroup, ...] = ()
    error: str | None = None

    @property
    def decides(self) -> bool:
        return self.topology is not None and self.topology != "FULL_MESH"

    def admits(
        self, source: tuple[str, str | None], destination: tuple[str, str | None]
    ) -> tuple[str, tuple[str, ...]]:
        """all | part | none, and the access groups that admit (some of) it. `source` and
        `destination` are (type, parent): ("USER_GROUP", None) for VPN users,
        ("NETWORK_SERVICE", network id) for a network."""
        if not self.decides:
            return "all", ()
        best, names = "none", []
        for g in self.groups:
            src = max((i.covers(*source) for i in g.sources), key=_RANK.__getitem__, default="none")
            dst = max(
                (i.covers(*destination) for i in g.destinations),
                key=_RANK.__getitem__,
                default="none",
            )
            got = min(src, dst, key=_RANK.__getitem__)
            if got != "none":
                names.append(g.name)
                best = max(best, got, key=_RANK.__getitem__)
        return best, tuple(names)


_RANK = {"none": 0, "part": 1, "all": 2}


@dataclass(frozen=True)
class ObservedService:
    regions: tuple[str, ...]
    networks: tuple[ServiceNetwork, ...] = ()
    policy: ServicePolicy | None = None  # read by doctor and status only

    def network(self, name: str) -> ServiceNetwork | None:
        return next((n for n in self.networks if n.name == name), None)


@dataclass(frozen=True)
class Stray:
    """A connector of ours a provider can see where the file's networks are, of a network no
    longer in the file: what `plan` lists and `apply --prune` removes."""

    network: str
    cloud: str
    location: Location
    subnet: str  # the connector's
    instance: str
    vault: str | None = None  # OCI: the vault of its stored profile

    def describe(self) -> str:
        return f"{self.cloud} {self.location.describe()}, connector {self.instance}"


# --- what a provider observed ----------------------------------------------------------------


@dataclass(frozen=True)
class ObservedRoute:
    destination: IPv4Network
    target: str  # the cloud's id of the next hop (ENI id, IGW id, "local", ...)
    usable: bool = True  # False when the cloud marks it as a blackhole
    # ours, but not as the file now wants it (GCP: another priority): written again
    stale: str | None = None


@dataclass(frozen=True)
class RouteTable:
    id: str
    routes: tuple[ObservedRoute, ...]
    in_all: bool = True  # `route_tables: all` selects it (GCP: not a tag scope)

    def route_to(self, destination: IPv4Network) -> ObservedRoute | None:
        for r in self.routes:
            if r.destination == destination:
                return r
        return None


class ConnectorState(StrEnum):
    """The connector VM's state, in the same four words on every cloud."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ObservedConnector:
    instance: str
    state: ConnectorState
    interface: str | None
    private_ip: str | None
    forwarding: bool
    size: str
    image: str
    subnet: str
    # of the settings it was launched with (see planner.connector_fingerprint), and of the
    # profile it dials in with (`launch_fingerprint`; VMs launched before it was recorded: none)
    fingerprint: str
    public_ip: str | None = None
    member: int = 0  # of a pair: 0 the first (`subnets[0]`, `profiles[0]`), 1 the second
    ready: bool | None = None  # it said its tunnel is up (None: its cloud does not say)
    # a pair member's watchdog's last word, where its cloud keeps it (read for status only;
    # None: none said, or not read)
    watchdog: str | None = None

    @property
    def bootstrap(self) -> str:
        return self.fingerprint.partition("-")[0]

    @property
    def runs(self) -> str | None:
        """The fingerprint of the profile it was launched with (None: not recorded)."""
        return self.fingerprint.partition("-")[2] or None


@dataclass(frozen=True)
class ForeignConnector:
    """A VM that is not of ours, that may forward (source/dest check off, IP forwarding on)
    and that a route of the network leads to: where the VPN range leads, a connector someone
    made by hand, which apply takes over (ours made beside it, the routes moved to ours)."""

    instance: str
    interface: str  # what the routes to it name
    state: ConnectorState
    name: str = ""  # the cloud's name for it, if any


@dataclass(frozen=True)
class ObservedFront:
    """A pair's stable route target, where the cloud moves that instead of the routes (OCI: a
    floating secondary private IP): the routes name it, and it leads to one connector."""

    name: str
    id: str  # what the routes name
    holder: str | None  # the interface of the connector it leads to now (None: its probe's choice)
    wanted: bool = True  # False: left from a pair the file no longer has: deleted
    # every connector of the network is behind it (a load balancer's pool); False: apply puts
    # them there
    complete: bool = True


class WayOut(StrEnum):
    """How a subnet reaches the internet, as its route table's 0.0.0.0/0 says."""

    INTERNET_GATEWAY = "internet-gateway"  # translates only addresses that have a public one
    NAT_GATEWAY = "nat-gateway"  # translates private addresses itself
    OTHER = "other"  # a transit gateway, VPN gateway, appliance...: the way goes on from there
    NONE = "none"  # no 0.0.0.0/0, or a blackhole


@dataclass(frozen=True)
class ObservedSubnet:
    id: str
    way_out: WayOut
    via: str | None = None  # the 0.0.0.0/0 target (igw-..., nat-...)
    route_table: str | None = None  # the table that decides it
    zone: str | None = None  # its availability zone, where the cloud has them per subnet
    cidr: IPv4Network | None = None  # its address range: the doctor finds an address's subnet


PROFILE_PART = "vpn-profile"  # the Part kind whose fingerprint follows the profile file
CONNECTOR_SOURCE = "connector"  # a rule source: the connector's own group / identity


@dataclass(frozen=True)
class IngressRule:
    """One inbound rule of a security group. `source` is an address range, `connector` (a
    reference to the connector's own group: it matches only the connector's own private
    address), or another group's id. `ours`: described as this toolkit's, for this network."""

    source: IPv4Network | str
    ports: Ports = ALL_TRAFFIC
    ours: bool = field(default=False, compare=False)
    label: str = field(default="", compare=False)  # whose traffic it admits, for people

    def __str__(self) -> str:
        source = "the connector's group" if self.source == CONNECTOR_SOURCE else str(self.source)
        return f"{source} {self.ports}"

    def to_dict(self) -> dict[str, object]:
        return {"source": str(self.source), "ports": str(self.ports), "ours": self.ours}


@dataclass(frozen=True)
class AppGroup:
    id: str
    rules: tuple[IngressRule, ...] = ()
    # its egress rules (AWS), each's `source` the destination; None: not read (the cloud's
    # layers at the host say it, or nothing does)
    egress: tuple[IngressRule, ...] | None = field(default=None, compare=False)

    @property
    def ours(self) -> tuple[IngressRule, ...]:
        return tuple(r for r in self.rules if r.ours)


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
    # made after the VM, on it (a VM extension): a new VM needs it again; destroy removes it
    # before the VM
    after_connector: bool = False
    member: int = 0  # of a pair: whose it is (its stored profile follows that one's file)
    wanted: bool = True  # False: left from a setting the file no longer has (a pair): deleted

    @property
    def ready(self) -> bool:
        return self.present if self.complete is None else self.complete


@dataclass(frozen=True)
class FilterRule:
    """One rule of a filter layer, as its cloud holds it. `peer` is the source of an inbound
    rule, the destination of an outbound one: an address range, or a name the cloud resolves
    (a group reference, a service tag)."""

    order: int  # rule number or priority: lower decides first (union layers: 0)
    allow: bool
    inbound: bool
    peer: IPv4Network | str
    ports: Ports = ALL_TRAFFIC
    name: str = ""  # how the cloud names it (rule number, rule name)
    stateless: bool = False  # in a stateful layer, a rule whose answers are judged again (OCI)
    default: bool = False  # the cloud's own (Azure's default rules, GCP's implied deny)

    def __str__(self) -> str:
        what = "allow" if self.allow else "deny"
        way = "inbound from" if self.inbound else "outbound to"
        return f"{self.name or self.order}: {what} {self.ports} {way} {self.peer}"


@dataclass(frozen=True)
class FilterLayer:
    """One layer a packet crosses on its way to or from a host, with its cloud's semantics:
    `union` (any allow rule admits, nothing denies: an AWS security group, OCI's lists and
    NSGs) or `ordered` (the first rule by order that matches decides, deny included; nothing
    matching: `default_allow`), stateful (an admitted request's answer passes) or stateless
    (the answer is judged again, on its own ports)."""

    name: str  # "network ACL acl-1", "security group sg-1"...
    ordered: bool
    stateful: bool
    rules: tuple[FilterRule, ...]
    default_allow: bool = False


@dataclass(frozen=True)
class Member:
    """A host of an app group: its address and its subnet."""

    address: str
    subnet: str


@dataclass(frozen=True)
class Observed:
    network: str
    cidrs: tuple[IPv4Network, ...]
    route_tables: tuple[RouteTable, ...]
    subnets: tuple[ObservedSubnet, ...]  # the network's subnets (where a connector may go)
    connector: ObservedConnector | None = None
    # every live connector of the network, where the cloud's provider does pairs (`connector`
    # is one of them)
    connectors: tuple[ObservedConnector, ...] = ()
    # a pair's front, where the cloud's mechanism has one (see CloudSchema.ha_front)
    front: ObservedFront | None = None
    # VMs not of ours that forward and that routes of the network lead to (see
    # ForeignConnector); the planner takes over the one the VPN range leads to
    foreign: tuple[ForeignConnector, ...] = ()
    parts: tuple[Part, ...] = ()
    app_groups: tuple[AppGroup, ...] = ()
    connector_ingress: tuple[IPv4Network, ...] = ()  # CIDRs the connector's own group admits
    # the cloud sets the forwarding flag only when the VM is made (GCP's canIpForward): a
    # connector without it is replaced, a new one is launched with it
    forwarding_at_launch: bool = False
    # what the doctor reads (clouds that read them): the layers at each subnet's edge (AWS:
    # its network ACL), the hosts of each app group, and the route table each subnet uses
    subnet_filters: Mapping[str, FilterLayer] = field(default_factory=dict)
    members: Mapping[str, tuple[Member, ...]] = field(default_factory=dict)
    subnet_tables: Mapping[str, str] = field(default_factory=dict)
    # layers at a host itself, whatever subnet the packet comes from (Azure: its subnet's NSG,
    # then its NIC's), by the host's address; and what a cloud's named peers stand for
    # (Azure's VirtualNetwork service tag: the VNet's and its routes' prefixes)
    host_filters: Mapping[str, tuple[FilterLayer, ...]] = field(default_factory=dict)
    peer_names: Mapping[str, tuple[IPv4Network, ...]] = field(default_factory=dict)
    # the egress rules of the connector's own group (AWS; None: not read)
    connector_egress: tuple[IngressRule, ...] | None = None
    # why the doctor's reads of the network's layers failed (a credential without them): its
    # flows cannot be judged
    unread: str | None = None
    # the image the cloud's default now names, when newer than the running connector's and
    # asked for (status, `--roll`): (its id, since when)
    newer_image: tuple[str, str] | None = None
    # the cloud's limits on what the toolkit writes (see Cap), and, by holder, what a table or
    # group holds now where that is not what was read of it (propagated routes, egress rules)
    caps: tuple[Cap, ...] = ()
    held: Mapping[str, int] = field(default_factory=dict)
    connector_group: str | None = None  # the connector's own group, as a holder of rules

    def subnet(self, subnet_id: str) -> ObservedSubnet | None:
        return next((s for s in self.subnets if s.id == subnet_id), None)

    def routed_to(self, connector: ObservedConnector | None) -> str | None:
        """What the network's routes name when they lead to `connector`: a pair's front where
        there is one, else the connector's interface."""
        if self.front is not None and self.front.wanted:
            return self.front.id
        return connector.interface if connector is not None else None


# --- the clouds' limits -----------------------------------------------------------------------


class Counted(StrEnum):
    """What a cloud's limit counts, of what the toolkit writes."""

    ROUTES = "routes"  # the entries of a route table (or of a project's routes)
    RULES = "rules"  # the rules of a security group, NSG, firewall or security list


@dataclass(frozen=True)
class Cap:
    """A cloud's limit on what one holder of ours holds (a route table, a group), or, with
    `used`, on what many hold together (a GCP project's routes): the number, where it comes
    from (read from the account, or the documented default when it cannot be read), and the
    quota to raise, by the cloud's name for it."""

    counts: Counted
    per: str  # what one holder is: "route table", "security group", "project p"
    value: int
    source: str  # said in the plan: "this account's Service Quotas", "documented default ..."
    quota: str = ""  # what to ask to raise, by the cloud's name for it ("": cannot be raised)
    used: int | None = None  # a cap over many holders: what they hold now
    # GCP's firewall: one rule per port spec holds many sources (what is counted is the rule)
    per_ports: bool = False

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "counts": str(self.counts),
            "per": self.per,
            "value": self.value,
            "source": self.source,
            "quota": self.quota,
        }
        if self.used is not None:
            out["used"] = self.used
        return out


@dataclass(frozen=True)
class Fill:
    """What a holder the plan changes will hold after apply, against its cap, and the way out
    that the file offers when it is over."""

    holder: str  # the table's or group's id (the project, for a cap over many)
    cap: Cap
    now: int
    after: int
    way: str = ""  # what in the file makes it hold less

    @property
    def over(self) -> bool:
        """Over the limit and grown by the plan (a holder already over that the plan only
        shrinks is not refused)."""
        return self.after > self.cap.value and self.after > self.now

    def text(self) -> str:
        return f"{self.holder} {self.after}/{self.cap.value} {self.cap.counts}"

    def summary(self) -> str:
        what = self.cap.per if self.cap.used is None else f"the {self.cap.counts} of"
        ways = [self.way] if self.way else []
        if self.cap.quota:
            ways.append(f"raise the quota: {self.cap.quota}")
        return (
            f"{what} {self.holder} would hold {self.after} {self.cap.counts} (now {self.now}), "
            f"over its limit of {self.cap.value} ({self.cap.source}). Ways out: "
            + ("; or ".join(ways) or "none in the file: fewer networks")
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "holder": self.holder,
            "now": self.now,
            "after": self.after,
            "over": self.over,
            "cap": self.cap.to_dict(),
            "way": self.way,
        }


# --- the plan ---------------------------------------------------------------------------------


# the plan's words: what a change names before apply makes it, and how the engine may order
# what it changes (providers and the engine read these; they never import the planner)
NEW_CONNECTOR = "new-connector"  # a route target that does not exist until apply launches it
NEW_FRONT = "new-front"  # a pair's front (a floating IP) that apply makes before the routes
SERVICE_FINGERPRINT = "cc-"  # a service-made profile's fingerprint: cc-<its connector's id>
NEW_SERVICE_PROFILE = "cc-new"  # the profile of a connector the service makes in this apply
VPN_CLIENTS = "VPN clients"  # a route's label: the VPN range's
TAKE_OVER = "take-over"  # a route change's `ref`: it moves a route off a connector made by hand
SERVICE_PLAN = "cloudconnexa"  # the plan's entry for the VPN service's changes


class Verdict(StrEnum):
    """The doctor's word on a flow or a piece of one (the same in text and JSON)."""

    OK = "OK"
    DROPPED = "DROPPED"  # some hop drops it
    UNKNOWN = "UNKNOWN"  # nothing could be judged (no host to reach, nothing read)


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
    FRONT = "front"  # a pair's stable route target (a floating IP), moved to the active one
    # a connector made beside the one it replaces says its tunnel is up: apply waits for it
    # before the routes move (make before break)
    READY = "ready"
    # a connector made by hand, taken over: stopped once the routes have left it (`apply
    # --retire-old`), never terminated (it is not ours)
    RETIRE = "retire"
    # the VPN service's half (the plan's `cloudconnexa` entry)
    SERVICE_NETWORK = "service-network"
    SERVICE_ROUTE = "service-route"
    SERVICE_CONNECTOR = "service-connector"
    PROFILE_OUT = "profile-out"  # an external site's profile, written where the file says


# kinds of change whose changes of one step may run at once (routes and rules)
SIDE_BY_SIDE = frozenset({Kind.ROUTE, Kind.APP_ACCESS, Kind.CONNECTOR_INGRESS})
SERVICE_KINDS = frozenset(
    {Kind.SERVICE_NETWORK, Kind.SERVICE_ROUTE, Kind.SERVICE_CONNECTOR, Kind.PROFILE_OUT}
)
VPN_SERVICE = "vpn-service"  # a ready step's target: the VPN service says the new VM is up
SERVICE_CONNECTOR_PREFIX = "cp-"  # our connector on a service network: cp-<network>


def service_connector_name(network: str, member: int = 0, generation: int = 1) -> str:
    """Our connector on the network's service side: cp-<network>; a pair's second, cp-<network>-2.
    One made to replace it (a new VM made beside the old one dials in with a profile of its
    own while the old one still carries the traffic; a rotated profile) is its next
    generation: cp-<network>_2, cp-<network>-2_2... (`_` is no character of a network's name,
    so no other network's connector can be named so)."""
    name = f"{SERVICE_CONNECTOR_PREFIX}{network}" + (f"-{member + 1}" if member else "")
    return name + (f"_{generation}" if generation > 1 else "")


def service_connector_of(name: str, network: str) -> tuple[int, int] | None:
    """(member, generation) of a connector name of ours on `network` (see
    `service_connector_name`); None when it is not one."""
    base = f"{SERVICE_CONNECTOR_PREFIX}{network}"
    if not name.startswith(base):
        return None
    rest, _, generation = name[len(base) :].partition("_")
    if generation and not (generation.isdigit() and int(generation) > 1):
        return None
    if rest == "":
        member = 0
    elif rest.startswith("-") and rest[1:].isdigit() and int(rest[1:]) > 1:
        member = int(rest[1:]) - 1
    else:
        return None
    return member, int(generation) if generation else 1


def profile_mark(profile: str) -> str:
    """A profile's fingerprint as a VM records it: lower case, [a-z0-9-] (a GCP label value
    takes it as it is)."""
    return re.sub(r"[^a-z0-9-]", "-", profile.lower())[:40]


def launch_fingerprint(bootstrap: str, profile: str) -> str:
    """What a VM records of how it was launched: its bootstrap's fingerprint and that of the
    profile it dials in with."""
    return f"{bootstrap}-{profile_mark(profile)}"


@dataclass(frozen=True)
class DesiredConnector:
    """Everything needed to launch the connector, resolved from spec + observation."""

    network: str
    subnet: str
    size: str
    image: str | None
    profile: ProfileSource
    nat: bool
    nat_preserve_source: bool
    local_subnets: tuple[IPv4Network, ...]
    lan_interface: str | None
    fingerprint: str
    public_address: bool = False  # its subnet's way out is an internet gateway
    member: int = 0  # of a pair: which one (its subnet and profile)
    ha: bool = False  # one of a pair: it runs the watchdog

    @property
    def launch_fingerprint(self) -> str:
        """What the VM is tagged with: asked at launch, when its profile is the one it gets
        (a connector the VPN service makes in this apply has its id by then)."""
        return launch_fingerprint(self.fingerprint, self.profile.fingerprint)


@dataclass(frozen=True)
class Change:
    network: str
    action: Action
    kind: Kind
    resource: str  # what it touches, as the user would name it
    why: str  # the hop of a flow (docs/flows.md) or the rule that needs it
    route_table: str | None = None
    destination: IPv4Network | None = None
    target: str | None = None
    previous_target: str | None = None
    part: Part | None = None
    connector: DesiredConnector | None = None
    rule: IngressRule | None = None  # app-access: the rule added to or removed from `resource`
    label: str = ""  # a route's: whose destination it is; a service change's: the network
    ref: str | None = None  # a service change's: the service's id of what it changes
    subnets: tuple[IPv4Network, ...] = ()  # a new service network's routes
    member: int = 0  # a connector's, its forwarding's, a route's target's: which of a pair
    generation: int = 1  # a service connector's (see `service_connector_name`)

    def summary(self) -> str:
        if self.kind is Kind.ROUTE:
            whose = f" ({self.label})" if self.label else ""
            arrow = f"{self.destination}{whose} -> {self.target}"
            if self.previous_target:
                arrow += f" (was {self.previous_target})"
            return f"{self.action} route {arrow} in {self.route_table}"
        if self.kind is Kind.FRONT and self.target:
            was = f" (was {self.previous_target})" if self.previous_target else ""
            return f"{self.action} front {self.resource} -> {self.target}{was}"
        if self.kind is Kind.FORWARDING:
            return f"{self.action} forwarding on {self.resource} (source/dest check off)"
        if self.kind is Kind.READY and self.target == VPN_SERVICE:
            return (f"await {self.resource}'s connector ONLINE on the VPN service (the routes "
                    f"stay on {self.previous_target} until then)")  # fmt: skip
        if self.kind is Kind.READY:
            return (f"await {self.resource}'s tunnel (the routes stay on {self.previous_target} "
                    "until it is up)")  # fmt: skip
        if self.kind is Kind.RETIRE:
            return f"stop {self.resource} (the connector made by hand; not terminated)"
        if self.kind is Kind.APP_ACCESS and self.rule is not None:
            whose = f" ({self.rule.label})" if self.rule.label else ""
            return f"{self.action} app-access {self.resource}: from {self.rule}{whose}"
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
        if self.rule is not None:
            out["source"] = str(self.rule.source)
            out["ports"] = str(self.rule.ports)
        if self.kind in SERVICE_KINDS:
            out["network"] = self.label
            if self.subnets:
                out["subnets"] = [str(s) for s in self.subnets]
            if self.kind in (Kind.SERVICE_NETWORK, Kind.SERVICE_CONNECTOR) and self.target:
                out["vpn_region"] = self.target
                out.pop("target", None)
        if self.connector is not None:
            c = self.connector
            out["connector"] = {
                "subnet": c.subnet,
                "size": c.size,
                "image": c.image,
                "nat": c.nat,
                "nat_preserve_source": c.nat_preserve_source,
                "local_subnets": [str(s) for s in c.local_subnets],
                "public_address": c.public_address,
            }
            if c.ha:
                out["connector"]["member"] = c.member  # type: ignore[index]
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
class ServiceConflict:
    """A network of the file's name on the VPN service that we did not make: nothing is changed
    until the file adopts it (`adopt_service_network: true`) or the name changes."""

    network: str
    description: str
    # a route the file wants that overlaps another network's route on the account (which the
    # API refuses, 400): the subnet, and the other network's name and route
    subnet: str | None = None
    other: str | None = None
    other_subnet: str | None = None

    def summary(self) -> str:
        if self.subnet is not None:
            return (
                f"route {self.subnet} of {self.network} overlaps route {self.other_subnet} of "
                f"network {self.other} on the VPN service's account, where no two routes may "
                "overlap: change one of the ranges (or the other network's route)"
            )
        made = f"'{self.description}'" if self.description else "no description"
        marked, owner = service_owner(self.description)
        if marked and owner:
            return (
                f"the VPN service already has a network named {self.network}, made by another "
                f"file on this account (id {owner}): rename the network in one of the files, "
                "or adopt it with adopt_service_network: true if this file is to own it"
            )
        return (
            f"the VPN service already has a network named {self.network} that "
            f"connector-provisioner did not make ({made}): adopt it with "
            "adopt_service_network: true, or rename the network"
        )

    def to_dict(self) -> dict[str, str]:
        out = {"service_network": self.network, "description": self.description}
        if self.subnet is not None:
            out.update(subnet=self.subnet, overlaps=str(self.other_subnet), of=str(self.other))
        return out


@dataclass(frozen=True)
class NetworkPlan:
    network: str
    cloud: str
    changes: tuple[Change, ...] = ()
    conflicts: tuple[Conflict | ServiceConflict, ...] = ()
    notes: tuple[str, ...] = ()
    hand_made: str | None = None  # the connector made by hand this plan takes over (its VM)
    # what each table and group the plan changes holds after apply, against the cloud's limit
    fills: tuple[Fill, ...] = ()
    # how the network is, for the reader (its way out, egress, NAT): said with its changes, not
    # again and again when there is nothing to do (text: --verbose; JSON: with the notes)
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    operation: str  # apply | destroy
    networks: tuple[NetworkPlan, ...] = ()
    vpn_subnet: IPv4Network = DEFAULT_VPN_SUBNET

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(c for n in self.networks for c in n.changes)

    @property
    def conflicts(self) -> tuple[Conflict | ServiceConflict, ...]:
        return tuple(c for n in self.networks for c in n.conflicts)

    @property
    def overfull(self) -> tuple[Fill, ...]:
        """The holders the plan would fill over a limit (each once: a project's is in every
        network of it that adds)."""
        seen: dict[tuple[str, str], Fill] = {}
        for n in self.networks:
            for f in n.fills:
                if f.over:
                    seen.setdefault((f.holder, str(f.cap.counts)), f)
        return tuple(seen.values())

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
                    "limits": [f.to_dict() for f in n.fills],
                    "notes": [*n.facts, *n.notes],
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
class AppGroupStatus:
    """What an app group admits, what the connector delivers to it, and what it drops."""

    id: str
    found: bool
    admits: tuple[IngressRule, ...]
    arriving: tuple[IngressRule, ...]  # the sources and ports that will arrive
    missing: tuple[IngressRule, ...]  # of those, what no rule admits

    @property
    def covered(self) -> bool:
        return self.found and not self.missing

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "found": self.found,
            # kept from the first version of this document: true when every arriving
            # source is admitted
            "allows_connector": self.covered,
            "covers_arriving_sources": self.covered,
            "admits": [r.to_dict() for r in self.admits],
            "arriving": [{**r.to_dict(), "from": r.label} for r in self.arriving],
            "missing": [{**r.to_dict(), "from": r.label} for r in self.missing],
        }


@dataclass(frozen=True)
class ServiceStatus:
    """One network on the VPN service, against what the cloud side routes."""

    found: bool
    ours: bool
    routes: tuple[tuple[str, str], ...] = ()  # (subnet, ok | MISSING | EXTRA)
    egress: bool = False
    egress_wanted: bool = False
    connector: str | None = None  # our connector's connection status, as the API says
    address: str | None = None  # its VPN address
    pair: bool = False  # a pair's network: two connectors of ours
    second: str | None = None  # the pair's second connector's status, and its address
    second_address: str | None = None
    # who may reach it, when the service's access policy decides (CUSTOM) or was not read
    access: str | None = None

    @property
    def healthy(self) -> bool:
        return (
            self.found
            and all(state == "ok" for _, state in self.routes)
            and self.egress == self.egress_wanted
            and self.connector == "ONLINE"
            and (not self.pair or self.second == "ONLINE")
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "found": self.found,
            "ours": self.ours,
            "healthy": self.healthy,
            "routes": [{"subnet": s, "state": state} for s, state in self.routes],
            "egress": self.egress,
            "egress_wanted": self.egress_wanted,
            "connector": self.connector,
            "vpn_address": self.address,
            "access": self.access,
            **(
                {"second_connector": self.second, "second_vpn_address": self.second_address}
                if self.pair
                else {}
            ),
        }


@dataclass(frozen=True)
class NetworkStatus:
    network: str
    cloud: str
    connector: ObservedConnector | None
    routes: tuple[RouteStatus, ...] = ()
    app_groups: tuple[AppGroupStatus, ...] = ()
    notes: tuple[str, ...] = ()
    reaches_vpn_service: bool = True  # its subnet has a way out the connector can use
    service: ServiceStatus | None = None  # the VPN service's half, with a service block
    ha: bool = False  # a pair: `connector` is the active one, `standby` the other
    standby: ObservedConnector | None = None
    # the parts of ours the network holds (`kind name`: a role, a stored profile, a group...)
    parts: tuple[str, ...] = ()

    @property
    def nothing_of_ours(self) -> bool:
        """No connector, no route, no app rule and no service network of ours: removed by
        destroy, or never applied (status says so in one line)."""
        return (
            self.connector is None
            and self.standby is None
            and all(r.state is RouteState.MISSING for r in self.routes)
            and not any(rule.ours for g in self.app_groups for rule in g.admits)
            and (self.service is None or not self.service.found)
            and not self.parts
        )

    @property
    def half_made(self) -> bool:
        """Parts of ours, but no connector and no route of ours: an apply that stopped
        before its VM (or a destroy that stopped after it)."""
        return (
            bool(self.parts)
            and self.connector is None
            and self.standby is None
            and all(r.state is RouteState.MISSING for r in self.routes)
        )

    def members(self) -> list[dict[str, object]]:
        """A pair's two members, each as a whole: its VM, its forwarding, the service's
        connection status for its connector (with the service block), who the routes lead to.
        (The service spreads the network's traffic over both: both must be well.)"""
        out: list[dict[str, object]] = []
        for role, c in (("active", self.connector), ("standby", self.standby)):
            if c is None:
                out.append({"role": role, "vm": None})
                continue
            service = None
            if self.service is not None and self.service.found:
                first = c.member == 0
                service = {
                    "connection_status": self.service.connector if first else self.service.second,
                    "vpn_address": self.service.address if first else self.service.second_address,
                }
            out.append({
                "role": role, "member": c.member, "vm": c.instance, "state": str(c.state),
                "forwarding": c.forwarding, "service": service,
                # its watchdog's last word where the cloud keeps it (see ObservedConnector)
                "watchdog": c.watchdog,
            })  # fmt: skip
        return out

    @property
    def standby_ready(self) -> bool:
        s = self.standby
        return s is not None and s.state == ConnectorState.RUNNING and s.forwarding

    @property
    def healthy(self) -> bool:
        return (
            (self.service is None or self.service.healthy)
            and (not self.ha or self.standby_ready)
            and self.connector is not None
            and self.connector.state == ConnectorState.RUNNING
            and self.connector.forwarding
            and self.reaches_vpn_service
            and all(r.state is RouteState.OK for r in self.routes)
            and all(g.covered for g in self.app_groups)
        )

    def to_dict(self) -> dict[str, object]:
        def connector(c: ObservedConnector | None) -> dict[str, object] | None:
            if c is None:
                return None
            return {
                "instance": c.instance,
                "state": c.state,
                "interface": c.interface,
                "private_ip": c.private_ip,
                "public_ip": c.public_ip,
                "forwarding": c.forwarding,
                "size": c.size,
                "image": c.image,
                "subnet": c.subnet,
            }

        return {
            "name": self.network,
            "cloud": self.cloud,
            "healthy": self.healthy,
            "half_made": self.half_made,
            "parts": list(self.parts),
            "reaches_vpn_service": self.reaches_vpn_service,
            **({"service": self.service.to_dict()} if self.service is not None else {}),
            "connector": connector(self.connector),
            **(
                {
                    "standby": connector(self.standby),
                    "standby_ready": self.standby_ready,
                    "members": self.members(),
                }
                if self.ha
                else {}
            ),
            "routes": [
                {
                    "route_table": r.route_table,
                    "destination": str(r.destination),
                    "state": str(r.state),
                    "target": r.target,
                }
                for r in self.routes
            ],
            "app_security_groups": [g.to_dict() for g in self.app_groups],
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
