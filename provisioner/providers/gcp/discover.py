"""`provision discover` on GCP: a VPC network as it is, its hand-made connector found by the
routes that lead to it (next hop an instance with canIpForward)."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from ...discover import SHARED_SPACE, Found, FoundConnector, FoundGroup, network_name
from ...model import GcpLocation
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
    candidates = []
    for hop, routes in led.items():
        vm = instances.get(hop)
        if vm is None or not vm.can_ip_forward:
            continue
        has_vpn = any(d.subnet_of(SHARED_SPACE) for ds in routes.values() for d in ds)
        candidates.append((has_vpn, sum(len(ds) for ds in routes.values()), hop, vm, routes))
    connector, routes, zone = None, {}, location.zone
    if candidates:
        candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
        _, _, hop, vm, routes = candidates[0]
        zone = short(vm.zone)
        connector = FoundConnector(
            instance=vm.name, interface=hop,
            subnet=short(vm.network_interfaces[0].subnetwork), size=short(vm.machine_type),
            ours=(vm.labels or {}).get(LABEL),
        )  # fmt: skip
        for _, count, other, _, _ in candidates[1:]:
            doubts.append(f"{other} also forwards, with {count} routes to it: not taken for the "
                          "connector")  # fmt: skip
    else:
        doubts.append("no route leads to an instance with canIpForward: no connector found (a "
                      "new one is made where `connector.subnet` says)")  # fmt: skip
    vpn = next((d for ds in routes.values() for d in ds if d.subnet_of(SHARED_SPACE)), None)
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
