"""`provision discover` on OCI: a VCN as it is, its hand-made connector found by the route
rules that lead to it (a private IP on a VNIC that skips the source/destination check)."""

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
from .cloud import OciLocation
from .common import TAG


def _all(call: Any, *args: Any, **kwargs: Any) -> list[Any]:
    import oci

    return list(oci.pagination.list_call_get_all_results(call, *args, **kwargs).data)


def discover(api: Any, location: OciLocation, name: str | None) -> Found:
    """Read the VCN, its route tables, the private IPs their rules name (their VNIC and
    instance), and the VCN's NSGs that admit the VPN range."""
    import oci

    net, compartment = api.network, location.compartment
    vcn = net.get_vcn(location.vcn).data
    tables = _all(net.list_route_tables, compartment, vcn_id=location.vcn)
    led: dict[str, dict[str, list[IPv4Network]]] = {}  # private IP -> table -> destinations
    for t in tables:
        for r in t.route_rules or []:
            if r.network_entity_id.startswith("ocid1.privateip.") and r.destination:
                led.setdefault(r.network_entity_id, {}).setdefault(t.id, []).append(
                    IPv4Network(r.destination))  # fmt: skip
    doubts: list[str] = []
    candidates = []
    for private_ip, routes in led.items():
        try:
            vnic = net.get_vnic(net.get_private_ip(private_ip).data.vnic_id).data
        except oci.exceptions.ServiceError as e:
            if e.status != 404:
                raise
            continue
        if vnic.skip_source_dest_check:
            candidates.append(Candidate(private_ip, routes, vnic))
    chosen = choose(candidates, doubts, "a VNIC that skips the source/dest check")
    connector, routes = None, {}
    if chosen is not None:
        vnic, routes = chosen.record, chosen.routes
        attached = api.compute.list_vnic_attachments(compartment, vnic_id=vnic.id).data
        vm = api.compute.get_instance(attached[0].instance_id).data if attached else None
        connector = FoundConnector(
            instance=vm.id if vm else "?", interface=chosen.name, subnet=vnic.subnet_id,
            size=vm.shape if vm else "VM.Standard.E4.Flex",
            ours=(vm.freeform_tags or {}).get(TAG) if vm else None,
        )  # fmt: skip
    vpn = vpn_range(routes)
    groups = _app_groups(api, compartment, location.vcn, vpn) if vpn is not None else ()
    return Found(
        name=network_name(name or vcn.display_name or "net"),
        cloud="oci",
        location={"region": location.region, "compartment": compartment, "vcn": location.vcn},
        cidrs=tuple(IPv4Network(c) for c in vcn.cidr_blocks),
        connector=connector,
        routes={t: tuple(ds) for t, ds in routes.items()},
        all_tables=tuple(t.id for t in tables),
        app_groups=groups,
        doubts=tuple(doubts),
    )


def _app_groups(api: Any, compartment: str, vcn: str, vpn: IPv4Network) -> tuple[FoundGroup, ...]:
    out = []
    for g in _all(api.network.list_network_security_groups, compartment_id=compartment,
                  vcn_id=vcn):  # fmt: skip
        ports: list[str] = []
        every = False
        for r in _all(api.network.list_network_security_group_security_rules, g.id):
            if r.direction != "INGRESS" or r.source_type != "CIDR_BLOCK":
                continue
            try:
                if not vpn.subnet_of(IPv4Network(r.source)):
                    continue
            except ValueError:
                continue
            if r.protocol == "all":
                every = True
            elif r.protocol in ("6", "17"):
                name = "tcp" if r.protocol == "6" else "udp"
                options = r.tcp_options if r.protocol == "6" else r.udp_options
                span = options.destination_port_range if options else None
                if span is None:
                    ports.append(name)
                else:
                    lo, hi = span.min, span.max
                    ports.append(f"{name}/{lo}" if lo == hi else f"{name}/{lo}-{hi}")
        if every or ports:
            out.append(FoundGroup(g.id, () if every else tuple(ports)))
    return tuple(out)
