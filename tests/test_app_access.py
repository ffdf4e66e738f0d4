"""App access that real packet filters accept, and the connector's way out to the VPN service:
AWS against moto through the real boto3, the CLI as a user types it."""

from __future__ import annotations

import json
from typing import Any

from conftest import CallLog, deployment, snapshot
from test_aws import app_sources, connector_of

from provisioner.cli import run
from provisioner.sandbox import SandboxWorld

OURS = "connector-provisioner"


def nat_everything(doc: dict[str, Any]) -> None:
    doc["networks"]["branch"]["connector"].update(nat=True, nat_preserve_source=False)


def ours(session: Any, region: str, group: str) -> set[tuple[str, str]]:
    return {(s, p) for s, p, d in app_sources(session, region, group) if d.startswith(OURS)}


def private_subnet(session: Any, world: SandboxWorld, cidr: str, via: str | None) -> str:
    """A new subnet of HQ whose own route table sends 0.0.0.0/0 to `via` (a NAT gateway made in
    the public subnet, when via == 'nat'), or has no default route at all (via None)."""
    ec2 = session.client("ec2", region_name="us-east-1")
    subnet = ec2.create_subnet(VpcId=world.hq.vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=world.hq.vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    if via == "nat":
        eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=world.hq.connector_subnet, AllocationId=eip)
        ec2.create_route(
            RouteTableId=table,
            DestinationCidrBlock="0.0.0.0/0",
            NatGatewayId=nat["NatGateway"]["NatGatewayId"],
        )
    return subnet


def test_nat_everything_admits_the_connector_group_and_switching_back_swaps_the_rules(
    session, world: SandboxWorld, clouds, calls: CallLog
):
    before = snapshot(session)
    deployment(world, clouds, edit=nat_everything).apply()
    branch = connector_of(session, "us-west-2", "branch")
    branch_group = branch["NetworkInterfaces"][0]["Groups"][0]["GroupId"]
    # everything reaches Finance from the connector's own address: the seed's group rule
    assert ours(session, "us-west-2", world.branch.app_group) == {(branch_group, "-1")}

    deployment(world, clouds).apply()  # back to the default: sources kept
    assert ours(session, "us-west-2", world.branch.app_group) == {
        ("100.96.0.0/11", "-1"),
        ("10.0.0.0/18", "-1"),
    }
    calls.clear()
    assert deployment(world, clouds).apply().done == ()
    assert calls.mutating == []
    deployment(world, clouds).destroy()
    assert snapshot(session) == before


def test_ports_restrict_the_rules_and_reapply_makes_no_call(
    session, world: SandboxWorld, clouds, calls: CallLog
):
    def restricted(doc: dict[str, Any]) -> None:
        doc["networks"]["hq"]["app_security_groups"] = [
            {"group": world.hq.app_group, "ports": ["tcp/443", "udp/5000-5100", "icmp"]}
        ]

    deployment(world, clouds, edit=restricted).apply()
    assert ours(session, "us-east-1", world.hq.app_group) == {
        (source, ports)
        for source in ("100.96.0.0/11", "192.168.0.0/22")
        for ports in ("tcp 443-443", "udp 5000-5100", "icmp -1--1")
    }
    calls.clear()
    assert deployment(world, clouds, edit=restricted).plan().empty
    assert calls.mutating == []
    deployment(world, clouds).apply()  # the restriction lifted: all traffic again
    assert ours(session, "us-east-1", world.hq.app_group) == {
        ("100.96.0.0/11", "-1"),
        ("192.168.0.0/22", "-1"),
    }


def test_an_identical_admin_rule_is_neither_duplicated_nor_removed(
    session, world: SandboxWorld, clouds
):
    ec2 = session.client("ec2", region_name="us-east-1")
    admin = {
        "IpProtocol": "-1",
        "IpRanges": [{"CidrIp": "100.96.0.0/11", "Description": "VPN users (admin)"}],
    }
    ec2.authorize_security_group_ingress(GroupId=world.hq.app_group, IpPermissions=[admin])
    before = snapshot(session)
    plan = deployment(world, clouds).plan()
    hq_rules = [c for c in plan.changes if c.network == "hq" and c.kind == "app-access"]
    assert [str(c.rule.source) for c in hq_rules] == ["192.168.0.0/22"]
    deployment(world, clouds).apply()
    assert ("100.96.0.0/11", "-1", "VPN users (admin)") in app_sources(
        session, "us-east-1", world.hq.app_group
    )
    deployment(world, clouds).destroy()
    assert snapshot(session) == before  # the admin's rule is still there


def test_a_connector_subnet_with_no_way_out_is_bad_input(
    session, world: SandboxWorld, calls: CallLog, capsys
):
    isolated = private_subnet(session, world, "10.0.8.0/24", via=None)
    doc = world.topology()
    doc["networks"]["hq"]["connector"]["subnet"] = isolated
    path = world.directory / "isolated.yaml"
    path.write_text(json.dumps(doc))
    calls.clear()
    for command in (["plan"], ["apply", "--yes"]):
        assert run([*command, "-f", str(path)]) == 2
        errors = [
            line
            for line in capsys.readouterr().err.splitlines()
            if not line.lstrip().startswith("..")
        ]
        assert len(errors) == 1, errors
        assert "networks.hq.connector.subnet" in errors[0] and isolated in errors[0]
        assert "could not reach the VPN service" in errors[0]
    assert calls.mutating == []


def test_behind_a_nat_gateway_no_public_address_and_egress_is_warned(
    session, world: SandboxWorld, clouds
):
    behind_nat = private_subnet(session, world, "10.0.8.0/24", via="nat")

    def move(doc: dict[str, Any]) -> None:
        doc["networks"]["hq"]["connector"]["subnet"] = behind_nat

    plan = deployment(world, clouds, edit=move).plan()
    (hq,) = [n for n in plan.networks if n.network == "hq"]
    assert any("through nat-" in n and "a NAT gateway" in n for n in (*hq.facts, *hq.notes))
    # hq is the egress network: its internet traffic would leave through the NAT gateway
    assert any(n.startswith("warning: egress network") for n in (*hq.facts, *hq.notes))
    deployment(world, clouds, edit=move).apply()
    assert not connector_of(session, "us-east-1", "hq").get("PublicIpAddress")


def test_a_connector_left_without_public_address_is_replaced(session, world: SandboxWorld, clouds):
    subnet = private_subnet(session, world, "10.0.8.0/24", via="nat")

    def move(doc: dict[str, Any]) -> None:
        doc["networks"]["hq"]["connector"]["subnet"] = subnet

    deployment(world, clouds, edit=move).apply()
    old = connector_of(session, "us-east-1", "hq")
    # the admin moves the subnet behind the internet gateway: the connector cannot get out
    ec2 = session.client("ec2", region_name="us-east-1")
    table = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
    )["RouteTables"][0]["RouteTableId"]
    ec2.replace_route(
        RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=world.hq.internet_gateway
    )
    (status,) = [s for s in deployment(world, clouds, edit=move).status() if s.network == "hq"]
    assert not status.healthy and not status.reaches_vpn_service
    assert any("no public address" in n for n in status.notes)
    plan = deployment(world, clouds, edit=move).plan()
    made, gone = [c for c in plan.changes if c.kind == "connector"]
    assert (made.action, gone.action) == ("create", "delete") and "no public address" in made.why
    deployment(world, clouds, edit=move).apply()
    new = connector_of(session, "us-east-1", "hq")
    assert new["InstanceId"] != old["InstanceId"] and new.get("PublicIpAddress")
    assert all(s.healthy for s in deployment(world, clouds, edit=move).status())


def test_status_says_what_each_group_admits_and_what_it_drops(session, world: SandboxWorld, capsys):
    path = world.write_topology()
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    capsys.readouterr()
    assert run(["status", "-f", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"app group {world.branch.app_group}: admits every arriving source" in text
    assert "arriving: 100.96.0.0/11 all (VPN clients), 10.0.0.0/18 all (network hq)" in text

    # someone removes the rule for HQ's hosts: Branch's Finance now drops site-to-site traffic
    ec2 = session.client("ec2", region_name="us-west-2")
    ec2.revoke_security_group_ingress(
        GroupId=world.branch.app_group,
        IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.0.0.0/18"}]}],
    )
    assert run(["status", "-f", str(path)]) == 1
    text = capsys.readouterr().out
    assert f"app group {world.branch.app_group}: DROPS part of the arriving traffic" in text
    assert "MISSING:  10.0.0.0/18 all (network hq): no rule admits it" in text
    assert run(["status", "-f", str(path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (branch,) = [n for n in doc["networks"] if n["name"] == "branch"]
    (group,) = branch["app_security_groups"]
    assert group["covers_arriving_sources"] is False
    assert group["missing"] == [
        {"source": "10.0.0.0/18", "ports": "all", "ours": True, "from": "network hq"}
    ]
    assert {"source": "100.96.0.0/11", "ports": "all", "ours": True} in group["admits"]
    # apply puts it back
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    assert run(["status", "-f", str(path)]) == 0


def test_one_network_form_takes_ports(session, world: SandboxWorld, monkeypatch, capsys):
    monkeypatch.chdir(world.directory)
    world.topology()  # writes the profiles
    argv = [
        "--cloud", "aws", "--region", "us-east-1", "--vpc", world.hq.vpc,
        "--connector-subnet", world.hq.connector_subnet, "--subnet", "10.0.0.0/18",
        "--peer", "192.168.0.0/22", "--profile", "hq.ovpn",
        "--app-security-group", f"{world.hq.app_group}:tcp/443,udp/53", "--yes",
    ]  # fmt: skip
    assert run(argv) == 0
    assert ours(session, "us-east-1", world.hq.app_group) == {
        (s, p) for s in ("100.96.0.0/11", "192.168.0.0/22") for p in ("tcp 443-443", "udp 53-53")
    }
    assert run([*argv[:-3], "--app-security-group", f"{world.hq.app_group}:tcp/0", "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--app-security-group[0].ports[0]" in err and "tcp/0" in err
