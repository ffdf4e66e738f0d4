"""`provision discover` on Azure: a VNet as it is, its hand-made connector found by the routes
that lead to it (a user-defined route, next hop a virtual appliance: the address of a NIC with
IP forwarding on that a VM uses)."""

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
from .cloud import AzureLocation
from .common import TAG, short


def discover(net: Any, compute: Any, location: AzureLocation, name: str | None) -> Found:
    """Read the VNet, its subnets' route tables, the NICs their routes lead to, and the
    group's NSGs that admit the VPN range."""
    rg = location.resource_group
    vnet = net.virtual_networks.get(rg, location.vnet)
    cidrs = tuple(IPv4Network(p) for p in vnet.address_space.address_prefixes)
    subnets = list(vnet.subnets or [])
    tables: dict[str, Any] = {}
    for s in subnets:
        if s.route_table is not None and s.route_table.id.lower() not in tables:
            group = s.route_table.id.split("/resourceGroups/", 1)[1].split("/", 1)[0]
            tables[s.route_table.id.lower()] = net.route_tables.get(group, short(s.route_table.id))
    nics = {
        c.private_ip_address: n
        for n in net.network_interfaces.list_all()
        for c in n.ip_configurations or []
        if c.private_ip_address
    }
    led = _led(tables.values(), rg)
    doubts: list[str] = []
    candidates = [
        Candidate(short(nic.virtual_machine.id), routes, nic)
        for address, routes in led.items()
        if (nic := nics.get(address)) is not None and nic.enable_ip_forwarding
        and nic.virtual_machine is not None
    ]  # fmt: skip
    chosen = choose(candidates, doubts, "a VM whose NIC forwards")
    connector, routes = None, {}
    if chosen is not None:
        routes, connector = chosen.routes, _connector(compute, chosen.record)
    vpn = vpn_range(routes)
    groups = _app_groups(net, rg, vpn) if vpn is not None else ()
    # what `route_tables: all` selects on Azure: every subnet's table, and a table of ours for
    # the subnets without one
    every = [t.name if rg.lower() in t.id.lower() else t.id for t in tables.values()]
    if any(s.route_table is None for s in subnets):
        every.append("(a table of ours for the subnets without one)")
    return Found(
        name=network_name(name or location.vnet),
        cloud="azure",
        location={
            "subscription": location.subscription,
            "resource_group": rg,
            "vnet": location.vnet,
            "region": vnet.location,
        },  # fmt: skip
        cidrs=cidrs,
        connector=connector,
        routes={t: tuple(ds) for t, ds in routes.items()},
        all_tables=tuple(every),
        app_groups=groups,
        doubts=tuple(doubts),
    )


def _led(tables: Any, rg: str) -> dict[str, dict[str, list[IPv4Network]]]:
    """Where the tables' routes lead: next hop address -> table label -> destinations."""
    led: dict[str, dict[str, list[IPv4Network]]] = {}
    for t in tables:
        label = t.name if rg.lower() in t.id.lower() else t.id
        for r in t.routes or []:
            if r.next_hop_type == "VirtualAppliance" and r.next_hop_ip_address:
                try:
                    destination = IPv4Network(r.address_prefix)
                except ValueError:
                    continue  # a service tag
                led.setdefault(r.next_hop_ip_address, {}).setdefault(label, []).append(destination)
    return led


def _connector(compute: Any, nic: Any) -> FoundConnector:
    """The VM behind the NIC the routes lead to."""
    vm_id = nic.virtual_machine.id
    group = vm_id.split("/resourceGroups/", 1)[1].split("/", 1)[0]
    size = compute.virtual_machines.get(group, short(vm_id)).hardware_profile.vm_size
    config = nic.ip_configurations[0]
    return FoundConnector(
        instance=short(vm_id), interface=config.private_ip_address,
        subnet=short(config.subnet.id), size=str(getattr(size, "value", size)),
        ours=(nic.tags or {}).get(TAG),
    )  # fmt: skip


def _app_groups(net: Any, rg: str, vpn: IPv4Network) -> tuple[FoundGroup, ...]:
    """The group's NSGs with an inbound allow rule from the VPN range (or a range covering
    it), and the ports those rules open."""
    out = []
    for g in net.network_security_groups.list(rg):
        ports: list[str] = []
        every = False
        for r in g.security_rules or []:
            if r.direction != "Inbound" or r.access != "Allow":
                continue
            sources = [r.source_address_prefix, *(r.source_address_prefixes or [])]
            try:
                if not any(s and vpn.subnet_of(IPv4Network(s)) for s in sources):
                    continue
            except ValueError:
                continue  # a service tag
            protocol = str(getattr(r.protocol, "value", r.protocol)).lower()
            port = r.destination_port_range or "*"
            if protocol == "*" and port == "*":
                every = True
            elif protocol in ("tcp", "udp"):
                ports.append(f"{protocol}" if port == "*" else f"{protocol}/{port}")
        if every or ports:
            out.append(FoundGroup(g.name, () if every else tuple(ports)))
    return tuple(out)
