"""`provision discover` on AWS: a VPC as it is, its hand-made connector found by the routes that
lead to it (CloudConnexa's guide: an instance with source/destination check off, the VPN range
and the peer ranges routed to its interface)."""

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
from .common import TAG, pages


def discover(ec2: Any, region: str, vpc_id: str, name: str | None) -> Found:
    """Read the VPC, its route tables, the interfaces its routes lead to, and the groups that
    admit the VPN range: 5 to 7 calls, each a page."""
    (vpc,) = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
    by_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    cidrs = tuple(
        IPv4Network(a["CidrBlock"])
        for a in vpc.get("CidrBlockAssociationSet", [{"CidrBlock": vpc["CidrBlock"]}])
        if a.get("CidrBlockState", {}).get("State", "associated") == "associated"
    )
    tables = list(pages(ec2, "describe_route_tables", "RouteTables", Filters=by_vpc))
    # every route of the VPC that leads to an interface (or an instance, as older ones say)
    led: dict[str, dict[str, list[IPv4Network]]] = {}  # interface -> table -> destinations
    for t in tables:
        for r in t.get("Routes", []):
            target = r.get("NetworkInterfaceId") or r.get("InstanceId")
            if target and "DestinationCidrBlock" in r and r.get("State") != "blackhole":
                led.setdefault(target, {}).setdefault(t["RouteTableId"], []).append(
                    IPv4Network(r["DestinationCidrBlock"]))  # fmt: skip
    doubts: list[str] = []
    connector, routes = _the_connector(ec2, led, doubts)
    own = set()
    if connector is not None:
        own = {g["GroupId"] for g in _interface(ec2, connector.interface).get("Groups", [])}
    vpn = vpn_range(routes)
    groups = _app_groups(ec2, by_vpc, vpn, own) if vpn is not None else ()
    tags = {t["Key"]: t["Value"] for t in vpc.get("Tags", [])}
    return Found(
        name=network_name(name or tags.get("Name") or vpc_id),
        cloud="aws",
        location={"region": region, "vpc": vpc_id},
        cidrs=cidrs,
        connector=connector,
        routes={t: tuple(ds) for t, ds in routes.items()},
        all_tables=tuple(t["RouteTableId"] for t in tables),
        app_groups=groups,
        doubts=tuple(doubts),
    )


def _interface(ec2: Any, eni: str) -> dict[str, Any]:
    found = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    return dict(found[0]) if found else {}


def _the_connector(
    ec2: Any, led: dict[str, dict[str, list[IPv4Network]]], doubts: list[str]
) -> tuple[FoundConnector | None, dict[str, list[IPv4Network]]]:
    """Of the interfaces the routes lead to, the connector: on an instance, source/dest check
    off, the VPN range (a route in 100.64.0.0/10) among its destinations; the most routes wins
    where several are."""
    enis = [e for e in led if e.startswith("eni-")]
    found = (
        list(pages(ec2, "describe_network_interfaces", "NetworkInterfaces",
                   NetworkInterfaceIds=enis)) if enis else []
    )  # fmt: skip
    candidates = [
        Candidate(f"{eni['Attachment']['InstanceId']} ({eni['NetworkInterfaceId']})",
                  led.get(eni["NetworkInterfaceId"], {}), eni)
        for eni in found
        if (eni.get("Attachment") or {}).get("InstanceId") and not eni.get("SourceDestCheck", True)
    ]  # fmt: skip
    chosen = choose(candidates, doubts, "an instance whose source/dest check is off")
    if chosen is None:
        return None, {}
    eni, routes = chosen.record, chosen.routes
    instance = eni["Attachment"]["InstanceId"]
    inst = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    return FoundConnector(
        instance=instance,
        interface=eni["NetworkInterfaceId"],
        subnet=eni["SubnetId"],
        size=inst["InstanceType"],
        ours=tags.get(TAG),
    ), routes


def _app_groups(
    ec2: Any, by_vpc: list[dict[str, Any]], vpn: IPv4Network, own: set[str]
) -> tuple[FoundGroup, ...]:
    """The VPC's groups (not the connector's own) with an inbound rule from the VPN range or a
    range that covers it, and the ports those rules open (all: none listed)."""
    out = []
    for g in pages(ec2, "describe_security_groups", "SecurityGroups", Filters=by_vpc):
        if g["GroupId"] in own:
            continue
        ports: list[str] = []
        every = False
        for rule in g.get("IpPermissions", []):
            sources = [IPv4Network(r["CidrIp"]) for r in rule.get("IpRanges", [])]
            if not any(vpn.subnet_of(s) for s in sources):
                continue
            protocol = rule.get("IpProtocol", "-1")
            if protocol == "-1":
                every = True
            elif protocol in ("tcp", "udp"):
                low, high = rule.get("FromPort", 0), rule.get("ToPort", 65535)
                ports.append(f"{protocol}/{low}" if low == high else f"{protocol}/{low}-{high}")
            elif protocol == "icmp":
                ports.append("icmp")
        if every or ports:
            out.append(FoundGroup(g["GroupId"], () if every else tuple(ports)))
    return tuple(out)
