"""`provision discover`: one network as it is, written as a topology file. A provider reads
what its cloud holds (`Found`); this module writes it in the file's words, with a comment on
each thing the cloud cannot say (a connector's NAT lives in its iptables, a peer range's site
is not in any route) so the user decides it, not the tool."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from .model import DEFAULT_VPN_SUBNET

# where a CloudConnexa VPN range is (its default 100.96.0.0/11 is inside): the shared address
# space of RFC 6598, which a cloud network's own subnets rarely use
SHARED_SPACE = IPv4Network("100.64.0.0/10")


@dataclass(frozen=True)
class FoundConnector:
    """A VM the network's routes lead to, that may forward: the connector someone made."""

    instance: str
    interface: str
    subnet: str
    size: str
    ours: str | None = None  # the network of ours it is (made by this toolkit), else None


@dataclass(frozen=True)
class FoundGroup:
    """An app group that admits the VPN range, and on which ports (empty: all traffic)."""

    id: str
    ports: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundService:
    """The VPN service's network whose routes are the network's ranges (made in the portal),
    and its connectors: the file adopts it."""

    cloud_id: str
    name: str
    vpn_region: str
    connectors: tuple[str, ...]


def service_network(api: object, cloud_id: str, cidrs: tuple[IPv4Network, ...]) -> FoundService | None:  # fmt: skip
    """Of the account's networks on the VPN service, the one with a route that overlaps the
    network's ranges (one call per page of networks); None: no such one."""
    from .cloudconnexa.client import parse_network

    for doc in api.pages("/networks"):  # type: ignore[attr-defined]
        sn = parse_network(doc)
        if any(r.subnet.overlaps(c) for r in sn.routes for c in cidrs):
            regions = [c.region for c in sn.connectors if c.region]
            return FoundService(cloud_id, sn.name, regions[0] if regions else "",
                                tuple(c.name for c in sn.connectors))  # fmt: skip
    return None


@dataclass(frozen=True)
class Found:
    """What one network holds, in the cloud's ids, as discover reads it."""

    name: str
    cloud: str
    location: dict[str, str]  # the topology's location keys (region, vpc, ...)
    cidrs: tuple[IPv4Network, ...]
    connector: FoundConnector | None
    # the destinations each table routes to the connector: table id -> destinations
    routes: dict[str, tuple[IPv4Network, ...]] = field(default_factory=dict)
    all_tables: tuple[str, ...] = ()
    app_groups: tuple[FoundGroup, ...] = ()
    doubts: tuple[str, ...] = ()  # what the cloud could not say, as comments

    @property
    def destinations(self) -> tuple[IPv4Network, ...]:
        seen = {d for ds in self.routes.values() for d in ds}
        return tuple(sorted(seen, key=lambda n: (int(n.network_address), n.prefixlen)))

    @property
    def vpn_subnet(self) -> IPv4Network | None:
        """The VPN range among the routes to the connector: the one in the shared space."""
        return next((d for d in self.destinations if d.subnet_of(SHARED_SPACE)), None)

    @property
    def peers(self) -> tuple[IPv4Network, ...]:
        vpn = self.vpn_subnet
        return tuple(d for d in self.destinations if d != vpn and d.prefixlen > 0)


Led = dict[str, list[IPv4Network]]  # a route table (or scope) -> destinations routed to a VM


@dataclass(frozen=True)
class Candidate:
    """A VM the routes lead to that may forward: `name` as the doubts say it, `routes` to it,
    `record` the cloud's own (its VM, NIC or VNIC) for the reader to describe."""

    name: str
    routes: Led
    record: Any


def vpn_range(routes: Led) -> IPv4Network | None:
    """The VPN range among routes to a connector: the one in the shared space."""
    return next((d for ds in routes.values() for d in ds if d.subnet_of(SHARED_SPACE)), None)


def choose(candidates: list[Candidate], doubts: list[str], forwarding: str) -> Candidate | None:
    """The connector: the candidate the VPN range leads to, the most routes breaking ties; the
    others said as doubts, and none found said too (`forwarding`: what such a VM is called)."""
    if not candidates:
        doubts.append(f"no route leads to {forwarding}: no connector found (a new one is made "
                      "where `connector.subnet` says)")  # fmt: skip
        return None

    def rank(c: Candidate) -> tuple[bool, int]:
        return vpn_range(c.routes) is not None, sum(len(ds) for ds in c.routes.values())

    ranked = sorted(candidates, key=rank, reverse=True)
    for other in ranked[1:]:
        doubts.append(f"{other.name} also forwards, with {rank(other)[1]} routes to it: not "
                      "taken for the connector")  # fmt: skip
    return ranked[0]


def network_name(raw: str) -> str:
    """A topology network name (`[a-z0-9-]`, up to 32) from a cloud's name or id."""
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:32].strip("-")
    return name or "net"


def _routed(found: Found) -> list[str]:
    """The network's route tables and app groups, as they are routed and admit now."""
    lines = []
    tables = sorted(found.routes)
    if tables and sorted(tables) == sorted(found.all_tables):
        lines.append("    route_tables: all  # every table routes to the connector now")
    elif tables:
        lines.append(f"    route_tables: [{', '.join(tables)}]  # those that route to it now")
    else:
        lines.append("    route_tables: all  # DECIDE: no table routes to a connector now")
    if found.app_groups:
        lines.append("    app_security_groups:  # they admit the VPN range now")
        for g in found.app_groups:
            if g.ports:
                lines.append(f"      - {{group: {g.id}, ports: [{', '.join(g.ports)}]}}")
            else:
                lines.append(f"      - {g.id}")
    return lines


def _connector_lines(found: Found, profile: str | None, service: bool) -> list[str]:
    """The connector's block: where the one found is, and its profile (none: the VPN service
    makes each connector's)."""
    c = found.connector
    lines = ["    connector:"]
    if c is not None:
        lines.append(f"      subnet: {c.subnet}  # where {c.instance} ({c.interface}) is")
        lines.append(f"      size: {c.size}")
    else:
        lines.append("      subnet: DECIDE  # no connector found: where ours goes")
    if service:
        pass
    elif profile:
        lines.append(f"      profile: {profile}")
    else:
        lines.append("      profile: connector.ovpn  # DECIDE: the connector's VPN profile file "
                     "(--profile PATH)")  # fmt: skip
    return lines


def render(
    found: Found,
    profile: str | None,
    connector_keys: dict[str, str] | None = None,
    missing: tuple[str, ...] = (),
    service: FoundService | None = None,
) -> str:
    """The topology file for `found`, YAML with comments; `profile`: the connector's VPN
    profile file (None: a placeholder to replace, said so); `connector_keys`: the cloud's own
    connector settings given (OCI's vault and key), `missing`: those it needs and was not given."""
    lines = [
        f"# discovered by `provision discover` from {found.cloud} "
        + ", ".join(f"{k} {v}" for k, v in found.location.items()),
        "# Read it, settle each comment marked DECIDE, then `provision plan -f` this file.",
        "version: 1",
    ]
    vpn = found.vpn_subnet
    if vpn is None:
        lines.append(f"vpn_subnet: {DEFAULT_VPN_SUBNET}  # DECIDE: no route to the connector is "
                     "in 100.64.0.0/10; CloudConnexa's default range")  # fmt: skip
    else:
        lines.append(f"vpn_subnet: {vpn}  # routed to the connector now")
    name = found.name
    if service is not None:
        region = service.vpn_region or "DECIDE"
        lines += ["service:", "  cloudconnexa:", f"    cloud_id: {service.cloud_id}",
                  f"    vpn_region: {region}  # where its connectors attach now"]  # fmt: skip
        name = network_name(service.name)
    lines += ["networks:", f"  {name}:", f"    cloud: {found.cloud}"]
    if service is not None:
        lines.append(f"    adopt_service_network: true  # {service.name!r} on the VPN service, made "
                     f"there with {', '.join(service.connectors) or 'no connector'}: "
                     "`apply --retire-old` removes those once the routes are ours")  # fmt: skip
    lines += [f"    {k}: {v}" for k, v in found.location.items()]
    lines.append(f"    subnets: [{', '.join(str(x) for x in found.cidrs)}]")
    lines += _routed(found)
    lines += _connector_lines(found, profile, service is not None)
    for key, value in (connector_keys or {}).items():
        lines.append(f"      {key}: {value}")
    for key in missing:
        lines.append(
            f"      # DECIDE: {key}: required on {found.cloud} (--{key.replace('_', '-')})"
        )
    lines.append("      # DECIDE: nat / egress are on the VM (its iptables), not in the cloud: "
                 "add `egress: true` if this network is the VPN's internet exit")  # fmt: skip
    if found.peers:
        lines += [
            "  peers:  # DECIDE: the other ranges routed to the connector now; one network per "
            "site if you like (a managed one names its cloud)",
            "    cloud: external",
            f"    subnets: [{', '.join(str(p) for p in found.peers)}]",
        ]
    lines += [f"# {d}" for d in found.doubts]
    return "\n".join(lines) + "\n"
