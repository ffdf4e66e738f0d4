"""`provision discover` on GCP: a VPC network as it is, its hand-made connector found by the
routes that lead to it (next hop an instance with canIpForward)."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from ...discover import (
    Candidate,
    Found,
    FoundConnector,
    FoundGroup,
    choose,
    network_name,
    vpn_range,
)
from .cloud import GcpLocation
from .common import LABEL, partial, short

WHOLE = "(the whole network)"


def discover(api: Any, location: GcpLocation, name: str | None) -> Found:
    """Read the network's subnetworks, routes, instances and firewalls: four calls."""
    project = location.project
    url = partial(api.networks.get(project=project, network=location.network).self_link)
    subnets = [s for _, scoped in api.subnetworks.aggregated_list(project=project)
               for s in scoped.subnetworks or [] if partial(s.network) == url]  # fmt: skip
    instances = {
        f"zones/{short(i.zone)}/instances/{i.name}": i
        for _, scoped in api.instances.aggregated_list(project=project)
        for i in scoped.instances or []
    }
    # next hop -> scope (a tag, or the whole network) -> destinations
    led: dict[str, dict[str, list[IPv4Network]]] = {}
    for r in api.routes.list(project=project):
        if partial(r.network) != url or not r.next_hop_instance:
            continue
        path = partial(r.next_hop_instance)
        hop = path.split("/", 2)[2] if path.startswith("projects/") else path
        for scope in list(r.tags or []) or [WHOLE]:
            led.setdefault(hop, {}).setdefault(scope, []).append(IPv4Network(r.dest_range))
    doubts: list[str] = []
    candidates = [
        Candidate(hop, routes, vm)
        for hop, routes in led.items()
        if (vm := instances.get(hop)) is not None and vm.can_ip_forward
    ]
    chosen = choose(candidates, doubts, "an instance with canIpForward")
    connector, routes, zone = None, {}, location.zone
    if chosen is not None:
        vm, routes = chosen.record, chosen.routes
        zone = short(vm.zone)
        connector = FoundConnector(
            instance=vm.name, interface=chosen.name,
            subnet=short(vm.network_interfaces[0].subnetwork), size=short(vm.machine_type),
            ours=(vm.labels or {}).get(LABEL),
        )  # fmt: skip
    vpn = vpn_range(routes)
    groups = _app_groups(api, project, url, vpn) if vpn is not None else ()
    cidrs = [IPv4Network(s.ip_cidr_range) for s in subnets]
    return Found(
        name=network_name(name or location.network),
        cloud="gcp",
        location={"project": project, "network": location.network, "zone": zone},
        cidrs=tuple(cidrs),
        connector=connector,
        routes={t: tuple(ds) for t, ds in routes.items()},
        all_tables=(WHOLE,),
        app_groups=groups,
        doubts=tuple(doubts),
    )


def _app_groups(api: Any, project: str, url: str, vpn: IPv4Network) -> tuple[FoundGroup, ...]:
    """The network tags that ingress firewalls admitting the VPN range target, and the ports
    they open (an app group on GCP is a network tag)."""
    found: dict[str, list[str]] = {}
    every: set[str] = set()
    for f in api.firewalls.list(project=project):
        if partial(f.network) != url or f.direction != "INGRESS" or not f.allowed:
            continue
        if not any(vpn.subnet_of(IPv4Network(s)) for s in f.source_ranges or []):
            continue
        for tag in f.target_tags or []:
            for a in f.allowed:
                protocol = a.I_p_protocol
                if protocol == "all":
                    every.add(tag)
                elif protocol in ("tcp", "udp"):
                    found.setdefault(tag, []).extend(
                        [f"{protocol}/{p}" for p in a.ports] if a.ports else [protocol])  # fmt: skip
                elif protocol == "icmp":
                    found.setdefault(tag, []).append("icmp")
    return tuple(FoundGroup(t, () if t in every else tuple(found.get(t, ())))
                 for t in sorted(set(found) | every))  # fmt: skip
