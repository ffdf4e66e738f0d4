"""AWS end to end against moto, through the real boto3 client: the outcomes a user relies on."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest
from conftest import CallLog, deployment, snapshot, written

from provisioner import ConflictError, RouteState, SpecError
from provisioner.providers.aws.common import TAG
from provisioner.sandbox import SandboxWorld


def routes_of(session: Any, region: str, table: str) -> dict[str, str]:
    ec2 = session.client("ec2", region_name=region)
    t = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]
    return {
        r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") or r.get("GatewayId", "")
        for r in t["Routes"]
        if "DestinationCidrBlock" in r
    }


def app_sources(session: Any, region: str, group: str) -> set[tuple[str, str, str]]:
    """(source, protocol and ports, description) of every inbound rule of `group`."""
    ec2 = session.client("ec2", region_name=region)
    g = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    out = set()
    for p in g["IpPermissions"]:
        ports = p["IpProtocol"]
        if "FromPort" in p and p["IpProtocol"] != "-1":
            ports = f"{p['IpProtocol']} {p['FromPort']}-{p['ToPort']}"
        for r in p.get("IpRanges", []):
            out.add((r["CidrIp"], ports, r.get("Description", "the admin's")))
        for pair in p.get("UserIdGroupPairs", []):
            out.add((pair["GroupId"], ports, pair.get("Description", "the admin's")))
    return out


def connector_of(session: Any, region: str, name: str) -> dict[str, Any]:
    ec2 = session.client("ec2", region_name=region)
    found = [
        i
        for r in ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{TAG}", "Values": [name]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )["Reservations"]
        for i in r["Instances"]
    ]
    assert len(found) == 1, found
    return found[0]


def test_apply_makes_every_table_route_through_the_connector(session, world: SandboxWorld, clouds):
    d = deployment(world, clouds, partner=True)
    d.apply()

    hq = connector_of(session, "us-east-1", "hq")
    eni = hq["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for table in world.hq.route_tables:  # "all": the main table included
        routes = routes_of(session, "us-east-1", table)
        assert routes["100.96.0.0/11"] == eni
        assert routes["192.168.0.0/22"] == eni  # branch
        assert routes["172.31.0.0/16"] == eni  # external partner
        assert routes["10.0.0.0/18"] == "local"  # never a route for its own subnets
    branch = connector_of(session, "us-west-2", "branch")
    beni = branch["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for table in world.branch.route_tables:
        routes = routes_of(session, "us-west-2", table)
        assert routes["10.0.0.0/18"] == beni
        assert routes["100.96.0.0/11"] == beni
    # the public table keeps its default route to the internet gateway
    assert (
        routes_of(session, "us-east-1", world.hq.route_tables[1])["0.0.0.0/0"]
        == world.hq.internet_gateway
    )

    ec2 = session.client("ec2", region_name="us-east-1")
    eni_desc = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert eni_desc["SourceDestCheck"] is False
    assert hq["MetadataOptions"]["HttpTokens"] == "required"
    assert hq["SubnetId"] == world.hq.connector_subnet
    root = next(m for m in hq["BlockDeviceMappings"] if m["DeviceName"] == hq["RootDeviceName"])
    volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
    assert volume["Encrypted"] is True

    # the connector's group: no inbound from the internet, only from its own network
    own = ec2.describe_security_groups(GroupIds=[eni_desc["Groups"][0]["GroupId"]])[
        "SecurityGroups"
    ][0]
    sources = [r["CidrIp"] for p in own["IpPermissions"] for r in p.get("IpRanges", [])]
    assert sources == ["10.0.0.0/18"]
    # HQ NATs with the `! -d` exception: packets reach the HR app with their own source, so
    # its group admits the VPN range and every peer by address; never 0.0.0.0/0, and no
    # group reference (it would match only the connector's own address)
    assert app_sources(session, "us-east-1", world.hq.app_group) == {
        ("10.0.0.0/18", "tcp 443-443", "the admin's"),  # seeded before apply
        ("100.96.0.0/11", "-1", "connector-provisioner: hq: VPN clients"),
        ("192.168.0.0/22", "-1", "connector-provisioner: hq: network branch"),
        ("172.31.0.0/16", "-1", "connector-provisioner: hq: network partner"),
    }
    # the connector subnet's way out is the internet gateway, and the subnet maps no public
    # addresses itself: the connector asked for one at launch, to dial the VPN service
    subnet = ec2.describe_subnets(SubnetIds=[world.hq.connector_subnet])["Subnets"][0]
    assert subnet["MapPublicIpOnLaunch"] is False
    assert hq.get("PublicIpAddress")

    # the image is the current Ubuntu LTS from Canonical's public SSM parameter
    ssm = session.client("ssm", region_name="us-east-1")
    current = ssm.get_parameter(
        Name="/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
    )["Parameter"]["Value"]
    assert hq["ImageId"] == current


def test_profile_is_a_secure_parameter_readable_only_by_the_connector(session, world, clouds):
    d = deployment(world, clouds)
    d.apply()
    hq = connector_of(session, "us-east-1", "hq")
    profile_text = (world.directory / "hq.ovpn").read_text()

    ssm = session.client("ssm", region_name="us-east-1")
    name = f"/connector-provisioner/{world.hq.vpc}/hq/profile"
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])[
        "Parameters"
    ][0]
    assert meta["Type"] == "SecureString"
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == profile_text

    iam = session.client("iam")
    profile_name = hq["IamInstanceProfile"]["Arn"].split("/")[-1]
    role = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]["Roles"][
        0
    ]["RoleName"]
    policy = iam.get_role_policy(RoleName=role, PolicyName="read-vpn-profile")["PolicyDocument"]
    if isinstance(policy, str):
        policy = json.loads(policy)
    (statement,) = policy["Statement"]
    assert statement["Action"] == "ssm:GetParameter"
    assert statement["Resource"].endswith(f":parameter{name}")

    ec2 = session.client("ec2", region_name="us-east-1")
    raw = ec2.describe_instance_attribute(InstanceId=hq["InstanceId"], Attribute="userData")[
        "UserData"
    ]["Value"]
    user_data = gzip.decompress(base64.b64decode(raw)).decode()  # (sent gzip'd: cloud-init unzips)
    assert name in user_data
    assert "SANDBOX-PRIVATE-KEY" not in user_data
    script = written(user_data, "/usr/local/sbin/connector-setup")  # (gz+b64)
    assert "SANDBOX-PRIVATE-KEY" not in script
    assert "NAT=1" in script  # hq is the egress network: NAT on
    assert "LOCAL_SUBNETS=10.0.0.0/18" in script


def test_second_apply_plans_nothing_and_makes_no_mutating_call(world, clouds, calls: CallLog):
    deployment(world, clouds, partner=True).apply()
    calls.clear()
    d = deployment(world, clouds, partner=True)
    plan = d.plan()
    assert plan.empty, plan.changes
    result = d.apply()
    assert result.done == ()
    assert calls.mutating == []
    assert calls.reads  # it did look


def test_mutating_calls_equal_the_planned_changes(world, clouds, calls: CallLog):
    d = deployment(world, clouds)
    plan = d.plan()
    calls.clear()
    d.execute(plan)
    routes = [c for c in plan.changes if c.kind == "route"]
    assert calls.mutating.count("CreateRoute") == len(routes)
    assert len(routes) == 4 * 2 + 2 * 2  # hq: 4 tables x (vpn, branch); branch: 2 x (vpn, hq)
    assert calls.mutating.count("RunInstances") == 2
    assert calls.mutating.count("ModifyNetworkInterfaceAttribute") == 2


def test_destroy_leaves_the_account_as_it_was(session, world, clouds):
    before = snapshot(session)
    deployment(world, clouds, partner=True).apply()
    assert snapshot(session) != before
    result = deployment(world, clouds, partner=True).destroy()
    assert result.done
    assert snapshot(session) == before
    # and a second destroy finds nothing to do
    assert deployment(world, clouds, partner=True).plan_destroy().empty


def test_destroy_removes_only_what_apply_created(session, world, clouds):
    ec2 = session.client("ec2", region_name="us-east-1")
    # the admin's own route, instance and rule elsewhere in the VPC
    ec2.create_route(
        RouteTableId=world.hq.route_tables[2],
        DestinationCidrBlock="198.51.100.0/24",
        GatewayId=world.hq.internet_gateway,
    )
    before = snapshot(session)
    deployment(world, clouds).apply()
    deployment(world, clouds).destroy()
    assert snapshot(session) == before
    assert (
        routes_of(session, "us-east-1", world.hq.route_tables[2])["198.51.100.0/24"]
        == world.hq.internet_gateway
    )


def test_adding_and_removing_a_network_adds_and_removes_its_subnets(session, world, clouds):
    deployment(world, clouds).apply()
    eni = connector_of(session, "us-east-1", "hq")["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert "172.31.0.0/16" not in routes_of(session, "us-east-1", world.hq.route_tables[0])

    plan = deployment(world, clouds, partner=True).plan()
    routes = [c for c in plan.changes if c.kind == "route"]
    rules = [c for c in plan.changes if c.kind == "app-access"]
    assert len(routes) + len(rules) == len(plan.changes)
    assert all(c.action == "create" and str(c.destination) == "172.31.0.0/16" for c in routes)
    assert len(routes) == 4 + 2  # every table of both managed networks
    # the partner's hosts keep their source through either connector: each app group admits it
    assert sorted((c.network, c.resource, str(c.rule.source)) for c in rules) == [
        ("branch", world.branch.app_group, "172.31.0.0/16"),
        ("hq", world.hq.app_group, "172.31.0.0/16"),
    ]
    deployment(world, clouds, partner=True).apply()
    for table in world.hq.route_tables:
        assert routes_of(session, "us-east-1", table)["172.31.0.0/16"] == eni
    for table in world.branch.route_tables:
        assert "172.31.0.0/16" in routes_of(session, "us-west-2", table)
    partner_rule = ("172.31.0.0/16", "-1", "connector-provisioner: branch: network partner")
    assert partner_rule in app_sources(session, "us-west-2", world.branch.app_group)

    deployment(world, clouds).apply()  # partner removed from the file
    for table in world.hq.route_tables:
        assert "172.31.0.0/16" not in routes_of(session, "us-east-1", table)
        assert routes_of(session, "us-east-1", table)["100.96.0.0/11"] == eni
    assert partner_rule not in app_sources(session, "us-west-2", world.branch.app_group)
    assert not any(
        s == "172.31.0.0/16" for s, _, _ in app_sources(session, "us-east-1", world.hq.app_group)
    )


def test_adding_a_managed_network_routes_it_from_the_others(session, world, clouds):
    def hq_only(doc):
        del doc["networks"]["branch"]

    deployment(world, clouds, edit=hq_only).apply()
    assert "192.168.0.0/22" not in routes_of(session, "us-east-1", world.hq.route_tables[0])
    deployment(world, clouds).apply()
    eni = connector_of(session, "us-east-1", "hq")["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for table in world.hq.route_tables:
        assert routes_of(session, "us-east-1", table)["192.168.0.0/22"] == eni


def test_conflicting_route_is_listed_and_refused_before_any_change(
    session, world, clouds, calls: CallLog
):
    ec2 = session.client("ec2", region_name="us-east-1")
    table = world.hq.route_tables[2]
    ec2.create_route(
        RouteTableId=table,
        DestinationCidrBlock="192.168.0.0/22",
        GatewayId=world.hq.internet_gateway,
    )
    before = snapshot(session)

    d = deployment(world, clouds)
    plan = d.plan()
    (conflict,) = plan.conflicts
    assert (conflict.route_table, str(conflict.destination), conflict.current_target) == (
        table,
        "192.168.0.0/22",
        world.hq.internet_gateway,
    )
    calls.clear()
    with pytest.raises(ConflictError, match="192.168.0.0/22"):
        d.apply()
    assert calls.mutating == []
    assert snapshot(session) == before

    deployment(world, clouds).apply(replace_conflicting_routes=True)
    eni = connector_of(session, "us-east-1", "hq")["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert routes_of(session, "us-east-1", table)["192.168.0.0/22"] == eni


def test_selected_route_tables_only(session, world, clouds):
    chosen = world.hq.route_tables[1:3]

    def select(doc):
        doc["networks"]["hq"]["route_tables"] = chosen

    deployment(world, clouds, edit=select).apply()
    for table in world.hq.route_tables:
        routes = routes_of(session, "us-east-1", table)
        assert ("100.96.0.0/11" in routes) == (table in chosen)

    # narrowing the selection removes our routes from the table left out
    def narrower(doc):
        doc["networks"]["hq"]["route_tables"] = chosen[:1]

    deployment(world, clouds, edit=narrower).apply()
    assert "100.96.0.0/11" not in routes_of(session, "us-east-1", chosen[1])
    assert "100.96.0.0/11" in routes_of(session, "us-east-1", chosen[0])


def test_status_marks_missing_and_elsewhere(session, world, clouds):
    deployment(world, clouds).apply()
    ec2 = session.client("ec2", region_name="us-east-1")
    t0, t1 = world.hq.route_tables[0], world.hq.route_tables[1]
    ec2.delete_route(RouteTableId=t0, DestinationCidrBlock="100.96.0.0/11")
    ec2.replace_route(
        RouteTableId=t1, DestinationCidrBlock="192.168.0.0/22", GatewayId=world.hq.internet_gateway
    )

    statuses = {s.network: s for s in deployment(world, clouds).status()}
    hq = statuses["hq"]
    states = {(r.route_table, str(r.destination)): r.state for r in hq.routes}
    assert states[(t0, "100.96.0.0/11")] is RouteState.MISSING
    assert states[(t1, "192.168.0.0/22")] is RouteState.ELSEWHERE
    assert sum(s is RouteState.OK for s in states.values()) == len(states) - 2
    assert not hq.healthy
    assert hq.connector is not None and hq.connector.forwarding
    assert statuses["branch"].healthy


def test_forwarding_turned_back_on_and_stopped_connector_started(session, world, clouds):
    deployment(world, clouds).apply()
    hq = connector_of(session, "us-east-1", "hq")
    ec2 = session.client("ec2", region_name="us-east-1")
    eni = hq["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": True})
    ec2.stop_instances(InstanceIds=[hq["InstanceId"]])

    plan = deployment(world, clouds).plan()
    assert sorted((c.kind, c.action) for c in plan.changes) == [
        ("connector", "start"),
        ("forwarding", "update"),
    ]
    deployment(world, clouds).apply()
    assert all(s.healthy for s in deployment(world, clouds).status())


def test_changing_nat_replaces_the_connector_and_repoints_routes(session, world, clouds):
    deployment(world, clouds).apply()
    old = connector_of(session, "us-west-2", "branch")

    def nat_on(doc):
        doc["networks"]["branch"]["connector"]["nat"] = True

    plan = deployment(world, clouds, edit=nat_on).plan()
    replace = [c for c in plan.changes if c.kind == "connector"]
    assert [c.action for c in replace] == ["create", "delete"]  # made before break
    assert replace[1].resource == old["InstanceId"]
    deployment(world, clouds, edit=nat_on).apply()
    new = connector_of(session, "us-west-2", "branch")
    assert new["InstanceId"] != old["InstanceId"]
    eni = new["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for table in world.branch.route_tables:
        assert routes_of(session, "us-west-2", table)["10.0.0.0/18"] == eni
    assert deployment(world, clouds, edit=nat_on).plan().empty


def test_changed_profile_updates_the_parameter_and_replaces_the_connector(session, world, clouds):
    deployment(world, clouds).apply()
    (world.directory / "branch.ovpn").write_text(
        "client\nremote other.invalid 1194\n<key>NEW</key>\n"
    )
    plan = deployment(world, clouds).plan()
    kinds = [
        (c.kind if not c.part else c.part.kind, c.action)
        for c in plan.changes
        if c.network == "branch"
    ]
    assert ("vpn-profile", "update") in kinds and ("connector", "create") in kinds
    assert kinds[-1] == ("connector", "delete")  # the old one, after the routes moved
    deployment(world, clouds).apply()
    ssm = session.client("ssm", region_name="us-west-2")
    value = ssm.get_parameter(
        Name=f"/connector-provisioner/{world.branch.vpc}/branch/profile", WithDecryption=True
    )
    assert "other.invalid" in value["Parameter"]["Value"]
    assert deployment(world, clouds).plan().empty


def test_egress_requires_nat(world, clouds):
    def egress_without_nat(doc):
        doc["networks"]["hq"]["connector"]["nat"] = False

    with pytest.raises(SpecError, match=r"networks\.hq\.connector\.nat"):
        deployment(world, clouds, edit=egress_without_nat)
    plan = deployment(world, clouds).plan()
    hq = next(n for n in plan.networks if n.network == "hq")
    assert any("egress" in note for note in (*hq.facts, *hq.notes))
    launch = next(c for c in hq.changes if c.kind == "connector")
    assert launch.connector is not None and launch.connector.nat


def test_subnets_default_to_the_vpc_cidrs(session, world, clouds):
    def no_subnets(doc):
        for n in doc["networks"].values():
            n.pop("subnets", None)

    deployment(world, clouds, edit=no_subnets).apply()
    eni = connector_of(session, "us-west-2", "branch")["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert routes_of(session, "us-west-2", world.branch.route_tables[0])["10.0.0.0/18"] == eni


def test_observation_calls_do_not_grow_with_route_tables(session, world, clouds, calls: CallLog):
    deployment(world, clouds).plan()
    few = sorted(calls.reads)
    ec2 = session.client("ec2", region_name="us-east-1")
    for _ in range(40):
        ec2.create_route_table(VpcId=world.hq.vpc)
    calls.clear()
    plan = deployment(world, clouds).plan()
    assert sorted(calls.reads) == few
    assert len([c for c in plan.changes if c.network == "hq" and c.kind == "route"]) == 44 * 2


def test_unknown_ids_in_the_vpc_are_bad_input_found_on_read(world, clouds, calls: CallLog):
    def wrong_subnet(doc):
        doc["networks"]["hq"]["connector"]["subnet"] = world.branch.connector_subnet

    with pytest.raises(SpecError, match=r"networks\.hq\.connector\.subnet: .* is not a subnet of"):
        deployment(world, clouds, edit=wrong_subnet).apply()
    assert calls.mutating == []

    def wrong_table(doc):
        doc["networks"]["hq"]["route_tables"] = ["rtb-0123456789abcdef0"]

    with pytest.raises(SpecError, match=r"networks\.hq\.route_tables\[0\]"):
        deployment(world, clouds, edit=wrong_table).apply()
    assert calls.mutating == []


def test_blackhole_route_to_a_lost_connector_is_replaced(session, world, clouds):
    deployment(world, clouds).apply()
    ec2 = session.client("ec2", region_name="us-west-2")
    # someone terminates the connector by hand: its routes become blackholes
    old = connector_of(session, "us-west-2", "branch")
    ec2.terminate_instances(InstanceIds=[old["InstanceId"]])
    plan = deployment(world, clouds).plan()
    branch = next(n for n in plan.networks if n.network == "branch")
    assert not branch.conflicts
    deployment(world, clouds).apply()
    eni = connector_of(session, "us-west-2", "branch")["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for table in world.branch.route_tables:
        assert routes_of(session, "us-west-2", table)["100.96.0.0/11"] == eni
