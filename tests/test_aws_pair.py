"""A connector pair on AWS (`connector.ha`) against moto, through the real boto3 client: two
connectors, the routes on one, the watchdog's takeover, and a network that goes from one
connector to a pair and back without a moment when its routes lead nowhere."""

from __future__ import annotations

import base64
import fnmatch
import gzip
import json
import threading
from dataclasses import replace
from typing import Any

import boto3
import pytest
from conftest import CallLog, deployment, snapshot
from test_service import deployment as with_service

from provisioner import Deployment
from provisioner import clouds as registry
from provisioner.providers.aws.common import READY_TAG, TAG, WATCH_TAG
from provisioner.providers.aws.pair import PAIR_POLICY, pair_policy
from provisioner.providers.aws.watchdog import AwsRoutes
from provisioner.render import plan_text, status_text
from provisioner.sandbox import FAKE_PROFILE, SandboxWorld
from provisioner.watchdog import HA_TAG, Holder, Settings

OURS = ("100.96.0.0/11", "192.168.0.0/22")  # HQ's routed destinations: the VPN, Branch


@pytest.fixture
def second_subnet(session: Any, world: SandboxWorld) -> str:
    """A subnet of HQ in another zone, public like the first connector's."""
    ec2 = session.client("ec2", region_name="us-east-1")
    subnet = ec2.create_subnet(
        VpcId=world.hq.vpc, CidrBlock="10.0.3.0/24", AvailabilityZone="us-east-1b"
    )["Subnet"]["SubnetId"]
    ec2.associate_route_table(RouteTableId=world.hq.route_tables[1], SubnetId=subnet)
    return subnet


def as_pair(world: SandboxWorld, second: str):
    def edit(doc: dict[str, Any]) -> None:
        c = doc["networks"]["hq"]["connector"]
        (world.directory / "hq-b.ovpn").write_text(FAKE_PROFILE.format(name="hq-b"))
        c["ha"] = True
        c["subnets"] = [c.pop("subnet"), second]
        c["profiles"] = [c.pop("profile"), "hq-b.ovpn"]

    return edit


def connectors(session: Any) -> dict[int, dict[str, Any]]:
    """HQ's live connectors by member."""
    ec2 = session.client("ec2", region_name="us-east-1")
    found = {}
    for r in ec2.describe_instances(
        Filters=[
            {"Name": f"tag:{TAG}", "Values": ["hq"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]:
        for i in r["Instances"]:
            tags = {t["Key"]: t["Value"] for t in i["Tags"]}
            found[int(tags["connector-provisioner:member"])] = i
    return found


def eni(instance: dict[str, Any]) -> str:
    return str(instance["NetworkInterfaces"][0]["NetworkInterfaceId"])


def targets(session: Any, world: SandboxWorld) -> set[str]:
    """What HQ's routes to our destinations lead to, over every table."""
    ec2 = session.client("ec2", region_name="us-east-1")
    out = set()
    for t in ec2.describe_route_tables(RouteTableIds=world.hq.route_tables)["RouteTables"]:
        for r in t["Routes"]:
            if r.get("DestinationCidrBlock") in OURS:
                out.add(r.get("NetworkInterfaceId", "?") + ("" if r["State"] == "active" else "!"))
    return out


def test_a_pair_is_two_connectors_with_the_routes_on_the_first(
    session, world: SandboxWorld, clouds, second_subnet, calls: CallLog
):
    d = deployment(world, clouds, edit=as_pair(world, second_subnet))
    text = plan_text(d.plan())
    assert "connector pair in subnet-" in text and "(us-east-1b)" in text
    assert "ec2:ReplaceRoute" in text
    d.apply()
    pair = connectors(session)
    assert sorted(pair) == [0, 1]
    assert pair[0]["SubnetId"] == world.hq.connector_subnet
    assert pair[1]["SubnetId"] == second_subnet
    ec2 = session.client("ec2", region_name="us-east-1")
    for i in pair.values():
        desc = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni(i)])["NetworkInterfaces"]
        assert desc[0]["SourceDestCheck"] is False  # both forward, either may take over
    assert targets(session, world) == {eni(pair[0])}
    # each watchdog reaches the other's health endpoint: the group admits its own members there
    group = pair[0]["NetworkInterfaces"][0]["Groups"][0]["GroupId"]
    (own,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    assert any(
        p["IpProtocol"] == "tcp" and p["FromPort"] == p["ToPort"] == 8181
        and [g["GroupId"] for g in p["UserIdGroupPairs"]] == [group]
        for p in own["IpPermissions"]
    )  # fmt: skip
    # the tables the watchdogs may change carry the tag their role's condition names
    for t in ec2.describe_route_tables(RouteTableIds=world.hq.route_tables)["RouteTables"]:
        assert {"Key": HA_TAG, "Value": "hq"} in t["Tags"]
    # each connector reads its own profile: its user-data names its parameter, and runs the
    # watchdog
    ssm = session.client("ssm", region_name="us-east-1")
    for member, suffix in ((0, ""), (1, "-2")):
        data = ec2.describe_instance_attribute(
            InstanceId=pair[member]["InstanceId"], Attribute="userData"
        )["UserData"]["Value"]
        text = gzip.decompress(base64.b64decode(data)).decode()  # (sent gzip'd)
        parameter = f"/connector-provisioner/{world.hq.vpc}/hq/profile{suffix}"
        assert f'Name="{parameter}"' in text and "connector-watchdog" in text
        value = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
        assert value == FAKE_PROFILE.format(name="hq" if member == 0 else "hq-b")
        assert value not in text
    # each VM has a role of its own: it reads its own profile and nothing of the other's
    iam = session.client("iam")
    for member, suffix in ((0, ""), (1, "-2")):
        role = f"cp-hq-{world.hq.vpc}{suffix}"
        assert pair[member]["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{role}")
        policies = role_policies(iam, role)
        assert policies[PAIR_POLICY] == pair_policy("us-east-1", "123456789012", "hq")
        (read,) = policies["read-vpn-profile"]["Statement"]
        assert read["Resource"].endswith(f"/hq/profile{suffix}")
    # status names the active one and the standby
    (status,) = [s for s in d.status() if s.network == "hq"]
    assert status.healthy and status.ha
    assert status.connector is not None and status.connector.instance == pair[0]["InstanceId"]
    assert status.standby is not None and status.standby.instance == pair[1]["InstanceId"]
    shown = status_text((status,))
    assert f"connector (active): {pair[0]['InstanceId']}" in shown
    assert f"connector (standby): {pair[1]['InstanceId']}" in shown
    calls.clear()
    assert deployment(world, clouds, edit=as_pair(world, second_subnet)).plan().empty
    assert calls.mutating == []


def test_a_release_that_changes_a_pairs_user_data_replaces_no_running_connector(
    session, world: SandboxWorld, clouds, second_subnet, calls: CallLog, monkeypatch
):
    """The user-data carries the watchdog (its code, settings and interpreter, from the cloud's
    schema), but a connector's fingerprint is made of the settings it was launched with, not of
    the rendered text: a release that renders a pair's user-data otherwise keeps the running
    pair (it gets the new watchdog when it is replaced for a reason of its own)."""
    edit = as_pair(world, second_subnet)
    d = deployment(world, clouds, edit=edit)
    d.apply()
    before = {m: i["InstanceId"] for m, i in connectors(session).items()}
    old = d.bootstrap("hq")
    aws = registry.known()["aws"]
    newer = replace(aws, schema=replace(aws.schema, watchdog_python="/opt/next/python3"))
    monkeypatch.setitem(registry.known(), "aws", newer)
    again = deployment(world, clouds, edit=edit)
    assert again.bootstrap("hq") != old and "/opt/next/python3" in gunzipped(again.bootstrap("hq"))
    calls.clear()
    assert again.plan().empty
    again.apply()
    assert calls.mutating == []
    assert {m: i["InstanceId"] for m, i in connectors(session).items()} == before


def gunzipped(user_data: str) -> str:
    """The user-data with its base64 files decoded (the watchdog's service unit among them)."""
    import yaml

    out = [user_data]
    for entry in yaml.safe_load(user_data).get("write_files", []):
        if entry.get("encoding") == "b64":
            out.append(base64.b64decode(entry["content"]).decode())
    return "\n".join(out)


def watchdog_of(session: Any, instance: dict[str, Any]) -> AwsRoutes:
    settings = Settings(
        cloud="aws",
        network="hq",
        region="us-east-1",
        interface=eni(instance),
        address=instance["PrivateIpAddress"],
    )
    return AwsRoutes(settings, session.client("ec2", region_name="us-east-1"))


def test_after_a_takeover_apply_keeps_the_routes_where_the_watchdog_put_them(
    session, world: SandboxWorld, clouds, second_subnet
):
    edit = as_pair(world, second_subnet)
    deployment(world, clouds, edit=edit).apply()
    pair = connectors(session)
    standby = watchdog_of(session, pair[1])
    assert standby.holder() == Holder(eni(pair[0]), pair[0]["PrivateIpAddress"])
    writes = standby.take_over(standby.holder())
    assert writes == len(OURS) * len(world.hq.route_tables)
    assert targets(session, world) == {eni(pair[1])}
    d = deployment(world, clouds, edit=edit)
    assert d.plan().empty  # no taking back: the pair's routes lead to one, whichever it is
    (status,) = [s for s in d.status() if s.network == "hq"]
    assert status.connector.instance == pair[1]["InstanceId"]
    assert status.standby.instance == pair[0]["InstanceId"]
    # the standby stopped: status says the pair has no failover; apply starts it
    ec2 = session.client("ec2", region_name="us-east-1")
    ec2.stop_instances(InstanceIds=[pair[0]["InstanceId"]])
    (status,) = [s for s in d.status() if s.network == "hq"]
    assert not status.healthy and any("no failover" in n for n in status.notes)
    d.apply()
    assert targets(session, world) == {eni(pair[1])}
    assert connectors(session)[0]["State"]["Name"] == "running"


class RouteWatch:
    """After every EC2 write of a run, what HQ's routes lead to: each must be a running
    connector's interface. Read from moto's backend itself, as the cloud's router would (two
    describes after every write were a sixth of these tests' CPU), under the lock that
    serializes moto's requests; moto reports every route `active`, so the target's instance
    being running is the whole test."""

    def __init__(self, session: Any, world: SandboxWorld) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends

        from provisioner.providers.aws.world import MOTO_LOCK

        self.backend = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        self.moto = MOTO_LOCK
        self.world = world
        self.seen: list[tuple[str, set[str]]] = []
        self.lock = threading.Lock()
        session.events.register("after-call.ec2", self.after)

    def after(self, model: Any = None, **_: Any) -> None:
        if model.name.startswith("Describe"):
            return
        with self.lock, self.moto:
            live = {
                nic.id
                for instance in self.backend.all_instances()
                if instance.state == "running"
                for nic in instance.nics.values()
            }
            leads = set()
            for table in self.world.hq.route_tables:
                for r in self.backend.route_tables[table].routes:
                    if r.destination_cidr_block in OURS:
                        target = r.interface.id if r.interface is not None else "?"
                        leads.add(target if target in live else "NOWHERE")
            self.seen.append((model.name, leads))

    @property
    def nowhere(self) -> list[str]:
        return [op for op, leads in self.seen if "NOWHERE" in leads or not leads]


def test_one_connector_to_a_pair_and_back_never_leaves_the_routes_leading_nowhere(
    session, world: SandboxWorld, clouds, second_subnet
):
    before = snapshot(session)
    deployment(world, clouds).apply()
    (alone,) = connectors(session).values()
    watch = RouteWatch(session, world)
    # one -> pair: the first connector's bootstrap lacks the watchdog, so it is replaced; the
    # second is launched first and the routes move to it before that
    plan = deployment(world, clouds, edit=as_pair(world, second_subnet)).plan()
    assert any("without the pair's watchdog" in c.why for c in plan.changes)
    deployment(world, clouds, edit=as_pair(world, second_subnet)).apply()
    assert watch.seen and watch.nowhere == []
    pair = connectors(session)
    assert alone["InstanceId"] not in {i["InstanceId"] for i in pair.values()}
    assert targets(session, world) == {eni(pair[1])}  # the one that stayed up throughout
    assert deployment(world, clouds, edit=as_pair(world, second_subnet)).plan().empty
    # pair -> one: the routes move to the connector that stays, then the other goes, and
    # everything the pair had: the second profile, the pair policy, the tables' tags
    watch.seen.clear()
    deployment(world, clouds).apply()
    assert watch.seen and watch.nowhere == []
    (single,) = connectors(session).values()
    assert single["InstanceId"] == pair[0]["InstanceId"]  # launched for a pair, fine alone
    assert targets(session, world) == {eni(pair[0])}
    assert deployment(world, clouds).plan().empty
    deployment(world, clouds).destroy()
    assert snapshot(session) == before  # nothing of the pair left behind


# --- the watchdog's permissions, against the calls it makes -----------------------------------


def _allows(policy: dict[str, Any], action: str, resource: str, tags: dict[str, str]) -> bool:
    for st in policy["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] != "Allow" or action not in actions:
            continue
        if not fnmatch.fnmatchcase(resource, st["Resource"]):
            continue
        conditions = st.get("Condition", {}).get("StringEquals", {})
        keys = st.get("Condition", {}).get("ForAllValues:StringEquals", {}).get("aws:TagKeys")
        if keys is not None and not set(tags.get("aws:TagKeys", [])) <= set(keys):
            continue  # a tag key the statement does not name
        if all(tags.get(k.split("/", 1)[1]) == v for k, v in conditions.items()):
            return True
    return False


def _authorizations(session: Any, call: tuple[str, dict[str, Any]]) -> list[tuple[str, str, dict]]:
    """What IAM authorizes for one call: (action, resource ARN, the resource's tags). EC2's
    Describe calls are not scoped by resource; ReplaceRoute is, on the table and on the target
    interface."""
    name, params = call
    ec2 = session.client("ec2", region_name="us-east-1")
    arn = "arn:aws:ec2:us-east-1:123456789012"
    if name == "GetParameter":
        return [
            (
                "ssm:GetParameter",
                f"arn:aws:ssm:us-east-1:123456789012:parameter{params['Name']}",
                {},
            )
        ]
    if name.startswith("Describe"):
        return [(f"ec2:{name}", "*", {})]
    if name == "CreateTags":  # the VM says it is ready, its watchdog its word: on its instance
        (instance,) = params["Resources"]
        found = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
        return [("ec2:CreateTags", f"{arn}:instance/{instance}",
                 {**{t["Key"]: t["Value"] for t in found.get("Tags", [])},
                  "aws:TagKeys": [t["Key"] for t in params["Tags"]]})]  # fmt: skip
    assert name == "ReplaceRoute", name
    table = ec2.describe_route_tables(RouteTableIds=[params["RouteTableId"]])["RouteTables"][0]
    nic = ec2.describe_network_interfaces(NetworkInterfaceIds=[params["NetworkInterfaceId"]])[
        "NetworkInterfaces"
    ][0]
    return [
        ("ec2:ReplaceRoute", f"{arn}:route-table/{table['RouteTableId']}",
         {t["Key"]: t["Value"] for t in table.get("Tags", [])}),
        ("ec2:ReplaceRoute", f"{arn}:network-interface/{nic['NetworkInterfaceId']}",
         {t["Key"]: t["Value"] for t in nic.get("TagSet", [])}),
    ]  # fmt: skip


def role_policies(iam: Any, role: str) -> dict[str, dict[str, Any]]:
    """A role's inline policies by name, as documents."""
    out = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        out[name] = json.loads(doc) if isinstance(doc, str) else doc
    return out


def test_the_second_vms_role_is_exactly_what_its_boot_and_its_watchdog_need(
    session, world: SandboxWorld, clouds, second_subnet
):
    deployment(world, clouds, edit=as_pair(world, second_subnet)).apply()
    pair = connectors(session)
    made: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any = None, params: Any = None, **_: Any) -> None:
        made.append((model.name, dict(params)))

    vm = boto3.Session(region_name="us-east-1")  # what the second VM's role does
    vm.events.register("provide-client-params", record)
    second = f"/connector-provisioner/{world.hq.vpc}/hq/profile-2"
    vm.client("ssm").get_parameter(Name=second, WithDecryption=True)  # its boot
    watchdog = AwsRoutes(
        Settings(cloud="aws", network="hq", region="us-east-1", interface=eni(pair[1]),
                 instance=pair[1]["InstanceId"]),
        vm.client("ec2"),
    )  # fmt: skip
    watchdog.take_over(watchdog.holder())
    said = "active, the other member no answer (since 2026-12-07T17:00:00Z)"
    watchdog.publish(said)  # its word, where status reads it
    (status,) = [s for s in deployment(world, clouds, edit=as_pair(world, second_subnet)).status()
                 if s.network == "hq"]  # fmt: skip
    words = {m["member"]: m["watchdog"] for m in status.to_dict()["members"]}
    assert words[1] == said and f"; watchdog: {said}" in status_text((status,))
    # its tunnel up, its cloud-init's connector-ready tags it
    vm.client("ec2").create_tags(Resources=[pair[1]["InstanceId"]],
                                 Tags=[{"Key": READY_TAG, "Value": "1"}])  # fmt: skip
    # what its role holds: its own profile's read policy, the pair's, and saying it is ready
    policies = role_policies(session.client("iam"), f"cp-hq-{world.hq.vpc}-2")
    assert sorted(policies) == [PAIR_POLICY, "read-vpn-profile", "report-ready"]
    (ready,) = policies["report-ready"]["Statement"]
    assert ready["Condition"]["ForAllValues:StringEquals"] == {
        "aws:TagKeys": [READY_TAG, WATCH_TAG]
    }
    policy = {"Statement": [st for doc in policies.values() for st in doc["Statement"]]}
    needed = [a for call in made for a in _authorizations(session, call)]
    assert {a[0] for a in needed} == {
        "ssm:GetParameter", "ec2:DescribeNetworkInterfaces", "ec2:DescribeRouteTables",
        "ec2:ReplaceRoute", "ec2:CreateTags",
    }  # fmt: skip
    assert all(_allows(policy, *a) for a in needed)  # every call allowed
    for i in range(len(policy["Statement"])):  # and nothing more: each statement is needed
        fewer = {**policy, "Statement": policy["Statement"][:i] + policy["Statement"][i + 1 :]}
        assert not all(_allows(fewer, *a) for a in needed), policy["Statement"][i]
    # the other way: not in a table without the tag, not towards an interface not of the pair
    table = f"arn:aws:ec2:us-east-1:123456789012:route-table/{world.branch.route_tables[0]}"
    assert not _allows(policy, "ec2:ReplaceRoute", table, {})
    assert not _allows(policy, "ec2:ReplaceRoute", table, {HA_TAG: "branch"})
    nic = "arn:aws:ec2:us-east-1:123456789012:network-interface/eni-0123456789abcdef0"
    assert not _allows(policy, "ec2:ReplaceRoute", nic, {TAG: "branch"})
    first = f"arn:aws:ssm:us-east-1:123456789012:parameter/connector-provisioner/{world.hq.vpc}/hq/profile"
    assert not _allows(policy, "ssm:GetParameter", first, {})  # the first VM's profile: not this
    assert not _allows(policy, "ec2:CreateRoute", table, {HA_TAG: "hq"})
    other = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
    assert not _allows(policy, "ec2:CreateTags", other, {TAG: "branch"})  # not another's VM
    own = f"arn:aws:ec2:us-east-1:123456789012:instance/{pair[1]['InstanceId']}"
    assert not _allows(policy, "ec2:CreateTags", own, {TAG: "hq", "aws:TagKeys": [TAG]})


# --- with the VPN service's half ---------------------------------------------------------------


def test_with_the_service_both_connectors_belong_to_the_one_service_network(
    session, world: SandboxWorld, second_subnet, service
):
    def paired(doc: dict[str, Any]) -> None:
        c = doc["networks"]["hq"]["connector"]
        c.update(ha=True, subnets=[c.pop("subnet"), second_subnet])

    fake = service.fake
    d = with_service(world, session, service, paired)
    d.apply()
    held = fake.snapshot()
    assert held["hq"]["connectors"] == ["cp-hq", "cp-hq-2"]  # one network, two connectors
    # each VM's parameter holds its own connector's profile, made by the API once
    ssm = session.client("ssm", region_name="us-east-1")
    base = f"/connector-provisioner/{world.hq.vpc}/hq/profile"
    first, second = (
        ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        for name in (base, base + "-2")
    )
    assert "# connector cp-hq (" in first and "# connector cp-hq-2 (" in second
    assert sorted(fake.state.profiles.values()) == [1, 1, 1, 1]  # hq twice, branch, partner
    ids = {c["name"]: i for i, c in fake.state.connectors.items()}
    for name, connector in ids.items():
        fake.connect(connector, online=name != "cp-hq-2")  # the second's VM has dropped
    # the service spreads the network's traffic over both members: each one's connection is
    # on its own line, and the pair is not healthy while one is offline
    (status,) = [s for s in d.status() if s.network == "hq"]
    members = status.to_dict()["members"]
    assert [(m["role"], m["member"], m["state"], m["forwarding"]) for m in members] == [
        ("active", 0, "running", True), ("standby", 1, "running", True)]  # fmt: skip
    assert [m["service"]["connection_status"] for m in members] == ["ONLINE", "OFFLINE"]
    # and each one's watchdog's word (the sandbox's VMs: its stand-in for a fresh pair's)
    assert [str(m["watchdog"]).split(",")[0] for m in members] == ["active", "standby"]
    assert all(m["vm"].startswith("i-") for m in members) and not status.healthy
    text = status_text((status,))
    assert "connector (standby): " in text and text.count("; on the service OFFLINE") == 1
    fake.connect(ids["cp-hq-2"])
    (status,) = [s for s in d.status() if s.network == "hq"]
    assert status.service is not None and status.service.pair
    assert status.service.connector == "ONLINE" and status.service.second == "ONLINE"
    assert [m["service"]["connection_status"] for m in status.members()] == ["ONLINE"] * 2
    assert status.healthy
    assert with_service(world, session, service, paired).plan().empty
    # back to one: the service's second connector goes with the second VM and its profile
    with_service(world, session, service).apply()
    assert fake.snapshot()["hq"]["connectors"] == ["cp-hq"]
    assert len(connectors(session)) == 1
    assert not ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [base + "-2"]}]
    )["Parameters"]


def test_a_pair_that_left_the_file_is_listed_and_pruned_whole(
    session, world: SandboxWorld, second_subnet, service
):
    """The service's network records where the cloud half is: a pair is found there and
    pruned whole, both connectors and all the pair had."""
    before = snapshot(session)

    def paired(doc: dict[str, Any]) -> None:
        c = doc["networks"]["hq"]["connector"]
        c.update(ha=True, subnets=[c.pop("subnet"), second_subnet])

    def without_hq(doc: dict[str, Any]) -> None:
        del doc["networks"]["hq"]

    with_service(world, session, service, paired).apply()
    assert len(connectors(session)) == 2
    plan = with_service(world, session, service, without_hq).plan()
    (hq,) = [n for n in plan.networks if n.network == "hq"]
    assert not hq.changes and "no longer in the file" in hq.notes[0]
    with_service(world, session, service, without_hq).apply(prune=True)
    assert connectors(session) == {}
    assert "hq" not in service.fake.snapshot()
    with_service(world, session, service, without_hq).destroy()
    assert snapshot(session) == before  # both connectors and all the pair had: gone


def test_the_documented_policy_is_exactly_what_the_calls_need(
    session, world: SandboxWorld, clouds, second_subnet, calls: CallLog
):
    """`python -m provisioner.providers.aws.permissions` prints the IAM policy for the user
    running `provision`: every action a run of each command calls is in it, and nothing more
    (iam:PassRole, which RunInstances needs without calling it, aside)."""
    import json

    from provisioner.providers.aws.permissions import ACTIONS, IMPLIED, policy

    calls.clear()
    deployment(world, clouds).apply()
    ec2 = session.client("ec2", region_name="us-east-1")
    (first,) = connectors(session).values()
    ec2.stop_instances(InstanceIds=[first["InstanceId"]])  # someone stops it: apply starts it
    deployment(world, clouds).apply()
    (world.directory / "hq.ovpn").write_text(FAKE_PROFILE.format(name="hq-new"))
    deployment(world, clouds).apply()  # a new profile: a new parameter value and connector
    deployment(world, clouds).status()
    deployment(world, clouds).doctor()
    deployment(world, clouds, edit=as_pair(world, second_subnet)).apply()
    deployment(world, clouds, edit=as_pair(world, second_subnet)).status()
    deployment(world, clouds).apply()  # and back to one
    deployment(world, clouds, edit=as_pair(world, second_subnet)).apply()
    deployment(world, clouds, edit=as_pair(world, second_subnet)).destroy()
    deployment(world, clouds).destroy()

    # (IAM's prefix of a service is its endpoint's name without the dash: service-quotas)
    needed = {f"{service.replace('-', '')}:{op}" for service, op in calls.calls} | set(IMPLIED)
    needed.discard("ec2:StopInstances")  # the test's own, as someone else's
    documented = set(ACTIONS)
    assert needed - documented == set()  # every call is allowed
    assert documented - needed == set()  # and nothing more is granted
    doc = policy()
    granted = {a for s in doc["Statement"] for a in s["Action"]}
    assert granted == documented
    assert all(s["Resource"] for s in doc["Statement"])
    json.dumps(doc)  # printable as the policy document IAM takes


# --- a single connector replaced without an outage (make before break, issue 29) ---------------


def _next_second() -> None:
    """Wait into the next second: EC2's LaunchTime counts whole seconds, and a connector made
    beside another is told from it as the newer (on a cloud, minutes or months apart)."""
    import time

    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def _larger(doc: dict[str, Any]) -> None:
    doc["networks"]["hq"]["connector"]["size"] = "t3.large"


def test_a_replaced_connector_is_made_before_the_old_one_goes(session, world: SandboxWorld, clouds):
    """A size change replaces HQ's one connector: the new VM is launched beside the old one,
    its forwarding set, the routes moved to it (ReplaceRoute), and only then the old one
    terminated; at no moment do HQ's routes lead nowhere."""
    deployment(world, clouds).apply()
    (old,) = connectors(session).values()
    watch = RouteWatch(session, world)
    plan = deployment(world, clouds, edit=_larger).plan()
    hq = [c for c in plan.changes if c.network == "hq"]
    assert [(c.action, c.kind) for c in hq if c.kind == "connector"] == [
        ("create", "connector"), ("delete", "connector")]  # fmt: skip
    assert hq[-1].resource == old["InstanceId"] and "made before break" in hq[-1].why
    assert f"replaces {old['InstanceId']} (size t3.small -> t3.large)" in hq[0].why
    _next_second()  # (EC2's LaunchTime has whole seconds)
    deployment(world, clouds, edit=_larger).apply()
    assert watch.seen and watch.nowhere == [], watch.seen
    ops = [op for op, _ in watch.seen]
    assert ops.index("RunInstances") < ops.index("ReplaceRoute") < ops.index("TerminateInstances")
    (new,) = connectors(session).values()
    assert new["InstanceId"] != old["InstanceId"] and new["InstanceType"] == "t3.large"
    assert targets(session, world) == {eni(new)}
    assert deployment(world, clouds, edit=_larger).plan().empty


@pytest.mark.parametrize(
    "operation, after",
    [("ModifyNetworkInterfaceAttribute", 0), ("ReplaceRoute", 1), ("TerminateInstances", 0)],
    ids=["new VM launched", "routes half moved", "old VM not yet removed"],
)
def test_a_replacement_interrupted_at_each_step_is_finished_by_apply_and_cleaned_by_destroy(
    session, world: SandboxWorld, clouds, operation: str, after: int
):
    from conftest import FORBIDDEN, error_response, inject

    from provisioner import CloudError

    before = snapshot(session)
    deployment(world, clouds).apply()
    (old,) = connectors(session).values()
    watch = RouteWatch(session, world)
    inject(session, "ec2", operation, lambda: error_response("ec2", *FORBIDDEN["ec2"]),
           after=after)  # fmt: skip
    _next_second()  # (EC2's LaunchTime has whole seconds)
    with pytest.raises(CloudError):
        deployment(world, clouds, edit=_larger).apply()
    assert watch.nowhere == [], watch.seen  # the routes led to a running connector throughout
    # the next apply finishes the change: one connector, the new one, the routes on it
    deployment(world, clouds, edit=_larger).apply()
    assert watch.nowhere == [], watch.seen
    (new,) = connectors(session).values()
    assert new["InstanceId"] != old["InstanceId"] and new["InstanceType"] == "t3.large"
    assert targets(session, world) == {eni(new)}
    assert deployment(world, clouds, edit=_larger).plan().empty
    deployment(world, clouds, edit=_larger).destroy()
    assert snapshot(session) == before


def test_a_new_image_release_replaces_nothing_until_apply_roll(
    session, world: SandboxWorld, clouds, capsys: pytest.CaptureFixture[str]
):
    """A new Ubuntu release (the public parameter names another AMI): plan and apply change
    nothing; status says a newer image exists and since when; `apply --roll` takes it, the new
    connector made before the old one goes."""
    from provisioner.providers.aws.world import publish_ubuntu_image

    deployment(world, clouds).apply()
    (old,) = connectors(session).values()
    newer = publish_ubuntu_image(session, "us-east-1")["amd64"]  # Canonical's next release
    assert deployment(world, clouds).plan().empty  # no surprise
    (hq,) = [s for s in deployment(world, clouds).status() if s.network == "hq"]
    note = next(n for n in hq.notes if n.startswith("a newer image exists"))
    assert newer in note and old["ImageId"] in note and "apply --roll" in note
    watch = RouteWatch(session, world)
    plan = deployment(world, clouds).plan(roll=True)
    made = next(c for c in plan.changes if c.network == "hq" and c.kind == "connector")
    assert f"image {old['ImageId']} -> {newer} (--roll)" in made.why
    _next_second()  # (EC2's LaunchTime has whole seconds)
    deployment(world, clouds).apply(roll=True)
    assert watch.nowhere == []
    (new,) = connectors(session).values()
    assert new["ImageId"] == newer and new["InstanceId"] != old["InstanceId"]
    assert not any(n.startswith("a newer image") for s in deployment(world, clouds).status()
                   for n in s.notes)  # fmt: skip
    assert deployment(world, clouds).plan(roll=True).empty


def test_routes_move_only_once_the_new_connector_says_its_tunnel_is_up(
    session, world: SandboxWorld, clouds, monkeypatch: pytest.MonkeyPatch
):
    """The new VM tags itself ready once its tunnel is up (its cloud-init's connector-ready);
    apply waits for that before any route moves. One that never says so: apply stops with the
    routes still on the old one, says so, and the next apply goes on from there."""
    from provisioner import CloudError
    from provisioner.providers import Clouds
    from provisioner.providers.aws.world import VMS_REPORT_READY

    deployment(world, clouds).apply()
    (old,) = connectors(session).values()
    plan = deployment(world, clouds, edit=_larger).plan()
    hq = [c for c in plan.changes if c.network == "hq"]
    kinds = [c.kind.value for c in hq]
    assert kinds.index("connector") < kinds.index("ready") < kinds.index("route")
    ready = hq[kinds.index("ready")]
    assert ready.summary() == (f"await new-connector's tunnel (the routes stay on "
                               f"{old['InstanceId']} until it is up)")  # fmt: skip
    monkeypatch.setitem(VMS_REPORT_READY, "aws", False)  # the VM that never comes up
    impatient = Clouds(options={"aws": {"session": session, "poll_seconds": 0.0,
                                        "wait_seconds": 0.2}})  # fmt: skip
    watch = RouteWatch(session, world)
    _next_second()  # (EC2's LaunchTime has whole seconds)
    with pytest.raises(CloudError) as failed:
        deployment(world, impatient, edit=_larger).apply()
    message = str(failed.value)
    assert "to say its tunnel is up" in message and f"still lead to {old['InstanceId']}" in message
    assert targets(session, world) == {eni(old)} and watch.nowhere == []
    # again, still not up: the plan waits for the one launched, launches no third
    again = deployment(world, impatient, edit=_larger).plan()
    (wait,) = [c for c in again.changes if c.kind == "ready"]
    launched = next(i for i in connectors_all(session) if i["InstanceId"] != old["InstanceId"])
    assert wait.resource == launched["InstanceId"] and wait.previous_target == old["InstanceId"]
    assert not any(c.kind == "connector" and c.action == "create" for c in again.changes)
    with pytest.raises(CloudError):
        deployment(world, impatient, edit=_larger).apply()
    assert targets(session, world) == {eni(old)}
    # it comes up: the next apply moves the routes and removes the old one
    session.client("ec2", region_name="us-east-1").create_tags(
        Resources=[launched["InstanceId"]], Tags=[{"Key": READY_TAG, "Value": "1"}]
    )
    deployment(world, impatient, edit=_larger).apply()
    assert targets(session, world) == {eni(launched)} and watch.nowhere == []
    assert [i["InstanceId"] for i in connectors_all(session)] == [launched["InstanceId"]]


def connectors_all(session: Any) -> list[dict[str, Any]]:
    """HQ's live connectors, every one (two of one member while one replaces the other)."""
    ec2 = session.client("ec2", region_name="us-east-1")
    return [
        i
        for r in ec2.describe_instances(Filters=[
            {"Name": f"tag:{TAG}", "Values": ["hq"]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ])["Reservations"]
        for i in r["Instances"]
    ]  # fmt: skip


def test_a_pair_changes_one_member_at_a_time_and_the_routes_never_lead_nowhere(
    session, world: SandboxWorld, clouds, second_subnet
):
    """Both connectors of a pair must be replaced (a new size): the standby first, the routes
    handed to it once it says its tunnel is up, then the other; nothing leads nowhere."""
    paired = as_pair(world, second_subnet)
    deployment(world, clouds, edit=paired).apply()
    before = connectors(session)
    active = targets(session, world)

    def larger_pair(doc: dict[str, Any]) -> None:
        paired(doc)
        _larger(doc)

    plan = deployment(world, clouds, edit=larger_pair).plan()
    hq = [(c.action.value, c.kind.value, c.resource) for c in plan.changes if c.network == "hq"]
    kinds = [k for _, k, _ in hq]
    first_replace, ready = kinds.index("connector"), kinds.index("ready")
    assert (
        first_replace
        < ready
        < kinds.index("route")
        < len(kinds) - 1 - kinds[::-1].index("connector")
    )
    standby = next(i for i in before.values() if eni(i) not in active)
    assert hq[first_replace][2] == standby["InstanceId"]  # the standby goes first
    watch = RouteWatch(session, world)
    _next_second()  # (EC2's LaunchTime has whole seconds)
    deployment(world, clouds, edit=larger_pair).apply()
    assert watch.seen and watch.nowhere == [], watch.seen
    after = connectors(session)
    assert {i["InstanceType"] for i in after.values()} == {"t3.large"}
    assert not {i["InstanceId"] for i in after.values()} & {
        i["InstanceId"] for i in before.values()
    }
    assert deployment(world, clouds, edit=larger_pair).plan().empty


# --- with the service block: the new VM dials in with a connector of its own -----------------


def _service_connectors(service: Any, network: str = "hq") -> dict[str, dict[str, Any]]:
    found = service.fake.network_named(network)
    return {c["name"]: c for c in found["connectors"]}


def _impatient(session: Any, service: Any) -> Any:
    from provisioner.providers.aws.world import sandbox_clouds

    clouds = sandbox_clouds(session, service.url, sleep=lambda seconds: None)
    clouds.options["aws"]["wait_seconds"] = 0.2
    return clouds


def test_with_the_service_a_replaced_connector_dials_in_with_its_own_and_the_old_one_goes_after(
    session, world: SandboxWorld, service
):
    """A size change on a network whose profile the VPN service makes: the service gets a
    second connector (cp-hq_2) before the new VM is launched, the VM is stored its profile and
    dials in with it while the old VM still carries the traffic on cp-hq; the routes move once
    the service says cp-hq_2 is ONLINE; the old VM goes, and cp-hq (its profile revoked with
    it) only after that."""
    from test_service import stored_profile

    with_service(world, session, service).apply()
    (old,) = connectors(session).values()
    first = _service_connectors(service)["cp-hq"]
    plan = with_service(world, session, service, _larger).plan()
    cc = [(c.action.value, c.kind.value, c.resource) for c in plan.changes
          if c.network == "cloudconnexa" and c.label == "hq"]  # fmt: skip
    assert [(a, k) for a, k, _ in cc] == [("create", "service-connector"),
                                          ("delete", "service-connector")]  # fmt: skip
    assert cc[0][2].startswith("cp-hq_2 for VM in") and cc[1][2] == "cp-hq in eu-central-1 on hq"
    hq = [c for c in plan.changes if c.network == "hq"]
    (ready,) = [c for c in hq if c.kind == "ready"]
    assert ready.target == "vpn-service" and ready.previous_target == old["InstanceId"]
    # what the service holds when the clouds' steps happen
    at: dict[str, set[str]] = {}

    def seen(model: Any = None, **_: Any) -> None:
        if model.name in ("RunInstances", "ReplaceRoute", "TerminateInstances"):
            at.setdefault(model.name, set(_service_connectors(service)))

    session.events.register("after-call.ec2", seen)
    watch = RouteWatch(session, world)
    _next_second()  # (EC2's LaunchTime has whole seconds)
    with_service(world, session, service, _larger).apply()
    assert watch.seen and watch.nowhere == [], watch.seen
    # both connectors while the new VM comes up and the routes move; the old one's VM goes first
    assert at == {op: {"cp-hq", "cp-hq_2"} for op in
                  ("RunInstances", "ReplaceRoute", "TerminateInstances")}  # fmt: skip
    (new,) = connectors(session).values()
    assert new["InstanceType"] == "t3.large" and targets(session, world) == {eni(new)}
    after = _service_connectors(service)
    assert list(after) == ["cp-hq_2"] and first["id"] not in service.fake.state.connectors
    assert "connector cp-hq_2" in stored_profile(session, world)
    tags = {t["Key"]: t["Value"] for t in new["Tags"]}
    assert tags["connector-provisioner:fingerprint"].endswith("cc-" + after["cp-hq_2"]["id"][:13])
    assert with_service(world, session, service, _larger).plan().empty
    # and once more: the next generation, cp-hq_3
    _next_second()
    with_service(world, session, service).apply()
    assert list(_service_connectors(service)) == ["cp-hq_3"] and watch.nowhere == []


def test_with_the_service_routes_wait_for_the_new_connector_to_be_online(
    session, world: SandboxWorld, service, monkeypatch: pytest.MonkeyPatch
):
    """The new VM never dials in: apply stops with the routes on the old VM and both connectors
    on the service; the next apply launches no third VM and makes no third connector, and
    finishes once the new one is ONLINE."""
    from provisioner import CloudError
    from provisioner.providers.aws.world import VMS_REPORT_READY

    with_service(world, session, service).apply()
    (old,) = connectors(session).values()
    service.fake.online_with_profile = False  # the VM that never comes up
    monkeypatch.setitem(VMS_REPORT_READY, "aws", False)
    impatient = _impatient(session, service)
    watch = RouteWatch(session, world)
    _next_second()  # (EC2's LaunchTime has whole seconds)
    topology = load(world, _larger)
    with pytest.raises(CloudError) as failed:
        Deployment(topology, impatient).apply()
    message = str(failed.value)
    assert (
        "cp-hq_2 on the VPN service" in message and f"still lead to {old['InstanceId']}" in message
    )
    assert "OFFLINE" in message
    assert targets(session, world) == {eni(old)} and watch.nowhere == []
    assert set(_service_connectors(service)) == {"cp-hq", "cp-hq_2"}
    again = Deployment(load(world, _larger), impatient).plan()
    assert not [c for c in again.changes if c.action == "create"], [
        c.summary() for c in again.changes]  # fmt: skip
    (wait,) = [c for c in again.changes if c.kind == "ready"]
    assert wait.target == "vpn-service"
    # it dials in: the routes move, the old VM and its connector go
    service.fake.connect(_service_connectors(service)["cp-hq_2"]["id"])
    Deployment(load(world, _larger), impatient).apply()
    (new,) = connectors(session).values()
    assert targets(session, world) == {eni(new)} and watch.nowhere == []
    assert list(_service_connectors(service)) == ["cp-hq_2"]
    assert Deployment(load(world, _larger), impatient).plan().empty


@pytest.mark.parametrize(
    "operation", ["PutParameter", "RunInstances"],
    ids=["connector made, profile not stored", "profile stored, VM not launched"],
)  # fmt: skip
def test_with_the_service_a_replacement_interrupted_is_finished_without_a_third_connector(
    session, world: SandboxWorld, service, operation: str
):
    from conftest import FORBIDDEN, error_response, inject

    from provisioner import CloudError

    before = snapshot(session)
    with_service(world, session, service).apply()
    api = "ssm" if operation == "PutParameter" else "ec2"
    # (the run's first PutParameter is its lease's)
    inject(session, api, operation, lambda: error_response(api, *FORBIDDEN[api]),
           after=1 if api == "ssm" else 0)  # fmt: skip
    _next_second()
    with pytest.raises(CloudError):
        with_service(world, session, service, _larger).apply()
    assert set(_service_connectors(service)) == {"cp-hq", "cp-hq_2"}
    watch = RouteWatch(session, world)
    _next_second()
    with_service(world, session, service, _larger).apply()
    assert watch.nowhere == [], watch.seen
    (new,) = connectors(session).values()
    assert new["InstanceType"] == "t3.large" and targets(session, world) == {eni(new)}
    assert list(_service_connectors(service)) == ["cp-hq_2"]
    assert with_service(world, session, service, _larger).plan().empty
    with_service(world, session, service, _larger).destroy()
    assert snapshot(session) == before and "hq" not in service.fake.snapshot()


def test_a_profile_stored_but_not_yet_dialled_in_with_replaces_the_connector(
    session, world: SandboxWorld, clouds
):
    """A new profile file: apply stores it, then stops before the new VM is launched. The VM
    still dials in with the old profile (it records which): the next apply replaces it."""
    from conftest import FORBIDDEN, error_response, inject

    from provisioner import CloudError

    deployment(world, clouds).apply()
    (old,) = connectors(session).values()
    (world.directory / "hq.ovpn").write_text(FAKE_PROFILE.format(name="hq-rotated"))
    inject(session, "ec2", "RunInstances", lambda: error_response("ec2", *FORBIDDEN["ec2"]))
    with pytest.raises(CloudError):
        deployment(world, clouds).apply()
    plan = deployment(world, clouds).plan()
    made = next(c for c in plan.changes if c.network == "hq" and c.kind == "connector")
    assert "VPN profile changed" in made.why and made.previous_target == old["InstanceId"]
    _next_second()
    deployment(world, clouds).apply()
    (new,) = connectors(session).values()
    assert new["InstanceId"] != old["InstanceId"] and targets(session, world) == {eni(new)}
    assert deployment(world, clouds).plan().empty


def load(world: SandboxWorld, edit: Any) -> Any:
    from test_service import topology_file

    from provisioner import load_topology

    return load_topology(topology_file(world, edit))


# --- provision rotate --------------------------------------------------------------------------


def test_rotate_hands_each_connector_a_new_profile_without_an_outage(
    session, world: SandboxWorld, service
):
    """`provision rotate --network hq`: the plan says what happens; a new connector on the
    service with its profile in SSM, a VM made beside the old one dialling in with it, the
    routes moved once it is ONLINE, then the old VM and the old connector (its profile revoked
    with it). Branch is not touched; the profile shows nowhere but the secret store."""
    from test_service import stored_profile

    with_service(world, session, service).apply()
    (old,) = connectors(session).values()
    before = stored_profile(session, world)
    branch = _service_connectors(service, "branch")
    shown = with_service(world, session, service).plan(rotate=["hq"])
    text = plan_text(shown, verbose=True)
    assert "rotate: a new connector on the VPN service" in text
    assert "create service-connector cp-hq_2 (rotate) on hq" in text
    assert "PRIVATE-KEY" not in text + json.dumps(shown.to_dict())
    watch = RouteWatch(session, world)
    _next_second()  # (EC2's LaunchTime has whole seconds)
    with_service(world, session, service).rotate(["hq"])
    assert watch.seen and watch.nowhere == [], watch.seen
    (new,) = connectors(session).values()
    assert new["InstanceId"] != old["InstanceId"] and targets(session, world) == {eni(new)}
    assert list(_service_connectors(service)) == ["cp-hq_2"]
    assert _service_connectors(service, "branch") == branch
    after = stored_profile(session, world)
    assert after != before and "connector cp-hq_2" in after
    assert with_service(world, session, service).plan().empty


def test_rotate_a_profile_file_takes_the_new_file_or_says_to_put_it_there_first(
    session, world: SandboxWorld, clouds, capsys: pytest.CaptureFixture[str]
):
    from provisioner.cli import run

    path = world.write_topology()
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    (old,) = connectors(session).values()
    capsys.readouterr()
    assert run(["rotate", "-f", str(path), "--network", "hq", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "nothing to rotate" in out and "hq.ovpn" in out and "put the new profile" in out
    assert connectors(session) == {0: old}
    (world.directory / "hq.ovpn").write_text(FAKE_PROFILE.format(name="hq-rotated"))
    _next_second()
    assert run(["rotate", "-f", str(path), "--network", "hq", "--yes"]) == 0
    assert "the new profile file is stored" in capsys.readouterr().out
    (new,) = connectors(session).values()
    assert new["InstanceId"] != old["InstanceId"] and targets(session, world) == {eni(new)}
    assert run(["rotate", "-f", str(path), "--network", "nowhere", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "--network" in err and "'nowhere'" in err and "hq" in err


def test_rotate_a_pair_one_member_at_a_time(session, world: SandboxWorld, second_subnet, service):
    """A pair's two connectors each get a new connector on the service; one member is replaced
    while the other carries the routes; the old connectors go after; nothing leads nowhere."""

    def paired(doc: dict[str, Any]) -> None:
        c = doc["networks"]["hq"]["connector"]
        c.update(ha=True, subnets=[c.pop("subnet"), second_subnet])

    with_service(world, session, service, paired).apply()
    before = {i["InstanceId"] for i in connectors(session).values()}
    watch = RouteWatch(session, world)
    _next_second()
    with_service(world, session, service, paired).rotate(["hq"])
    assert watch.seen and watch.nowhere == [], watch.seen
    assert set(_service_connectors(service)) == {"cp-hq_2", "cp-hq-2_2"}
    after = connectors(session)
    assert len(after) == 2 and not {i["InstanceId"] for i in after.values()} & before
    assert with_service(world, session, service, paired).plan().empty
