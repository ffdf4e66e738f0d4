"""VPCs of several AWS accounts in one file (the usual landing zone): a network names the role
its calls are made as (`assume_role`, optional `external_id`), assumed with the user's own
credentials. Against moto, whose STS answers AssumeRole with credentials of the role's
account and serves each account its own EC2."""

from __future__ import annotations

from typing import Any

import yaml
from botocore.config import Config

from provisioner.cli import run
from provisioner.providers.aws.common import TAG, assumed
from provisioner.providers.aws.world import publish_ubuntu_image, seed_vpc
from provisioner.sandbox import SandboxWorld

ROLE = "arn:aws:iam::111111111111:role/connector-provisioner"


def live(session: Any, region: str) -> dict[str, str]:
    """Our connectors in `session`'s account: network -> instance id."""
    ec2 = session.client("ec2", region_name=region)
    out = {}
    for r in ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )["Reservations"]:
        for i in r["Instances"]:
            tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            if TAG in tags:
                out[tags[TAG]] = i["InstanceId"]
    return out


def test_one_file_meshes_vpcs_of_two_accounts(world: SandboxWorld, session: Any, capsys):
    other = assumed(session, ROLE, "ops-42", "seed", Config(region_name="us-west-2"))
    assert other.client("sts").get_caller_identity()["Account"] == "111111111111"
    publish_ubuntu_image(other, "us-west-2", account="111111111111")
    spoke = seed_vpc(other, "spoke", "us-west-2", "172.22.0.0/22", ["172.22.0.0/24"])
    doc = world.topology()
    doc["networks"] = {"hq": doc["networks"]["hq"]}
    (world.directory / "spoke.ovpn").write_text((world.directory / "hq.ovpn").read_text() + "#b\n")
    doc["networks"]["spoke"] = {
        "cloud": "aws", "region": "us-west-2", "vpc": spoke.vpc, "assume_role": ROLE,
        "external_id": "ops-42", "subnets": ["172.22.0.0/22"],
        "connector": {"subnet": spoke.connector_subnet, "profile": "spoke.ovpn"},
    }  # fmt: skip
    path = world.directory / "accounts.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    assert run(["apply", "-f", str(path), "--yes"]) == 0, capsys.readouterr().err
    assert set(live(other, "us-west-2")) == {"spoke"}  # the spoke's connector, in its account
    assert set(live(session, "us-east-1")) == {"hq"} and live(session, "us-west-2") == {}
    # each VPC routes the other's range to its own connector
    ec2 = other.client("ec2", region_name="us-west-2")
    routes = {
        r.get("DestinationCidrBlock")
        for t in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [spoke.vpc]}])[
            "RouteTables"
        ]
        for r in t["Routes"]
    }
    assert "10.0.0.0/18" in routes
    capsys.readouterr()
    assert run(["plan", "-f", str(path)]) == 0
    assert "apply: nothing to do" in capsys.readouterr().out
    assert run(["destroy", "-f", str(path), "--yes"]) == 0
    assert live(other, "us-west-2") == {} and live(session, "us-east-1") == {}


def test_an_external_id_without_a_role_is_bad_input(world: SandboxWorld, capsys, calls):
    doc = world.topology()
    doc["networks"]["hq"]["external_id"] = "ops-42"
    path = world.directory / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert run(["plan", "-f", str(path)]) == 2
    assert "networks.hq.external_id: is given without assume_role" in capsys.readouterr().err
    assert calls.calls == []


def test_where_a_network_lives_is_recorded_without_its_role_or_external_id():
    """The service network's description records the cloud half's place: the VPC, never how
    it is reached (a role and an external id are not a place, and the id is not for others)."""
    from provisioner.clouds import place_from_text
    from provisioner.model import place_text
    from provisioner.providers.aws.cloud import AwsLocation

    located = AwsLocation("us-west-2", "vpc-0abc12345678", role=ROLE, external_id="ops-42")
    text = place_text("aws", located)
    assert text == "aws region=us-west-2 vpc=vpc-0abc12345678;"
    assert place_from_text(f"connector-provisioner@a: spoke; cloud half: {text}") == (
        "aws",
        AwsLocation("us-west-2", "vpc-0abc12345678"),
    )
