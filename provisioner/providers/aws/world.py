"""The sandbox's AWS: moto (in-process, or served on 127.0.0.1), made to do what EC2, SSM and
moto's serving leave out, and seeded with the seed document's world (HQ and Branch) through the
real boto3: for `provision demo`, `provision sandbox serve` and the tests."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...fakeserver import SandboxPart, SandboxWorld
from .cloud import ENDPOINT_VARIABLE, AwsLocation

ACCOUNT = "123456789012"
UBUNTU_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-20261101"


@dataclass
class SandboxVpc:
    """One seeded VPC: what a test or the demo needs to name in a topology."""

    name: str
    region: str
    vpc: str
    cidr: str
    connector_subnet: str
    subnets: list[str] = field(default_factory=list)
    route_tables: list[str] = field(default_factory=list)  # main first
    app_group: str = ""
    internet_gateway: str = ""
    egress: bool = False  # the VPN's internet exit, in the sandbox's topology
    shown_tables: bool = False  # its route tables named in the sandbox's list of networks

    def network_entry(self, profile: str, **connector: Any) -> dict[str, Any]:
        """This VPC as a topology network entry."""
        return {
            "cloud": "aws",
            "region": self.region,
            "vpc": self.vpc,
            "subnets": [self.cidr],
            "route_tables": "all",
            "app_security_groups": [self.app_group],
            "connector": {
                "subnet": self.connector_subnet,
                "size": "t3.small",
                "egress": self.egress,
                "profile": profile,
                **connector,
            },
        }

    def describe(self) -> str:
        tables = f", route tables {', '.join(self.route_tables)}" if self.shown_tables else ""
        return f"{self.vpc} {self.cidr} in {self.region}{tables}, app group {self.app_group}"


MOTO_LOCK = threading.RLock()  # held while moto answers a request (also by readers of its backends)


def serialize_moto() -> None:
    """moto answers one request at a time. Its backends are plain dicts that one request
    iterates while another inserts (IAM's get_role walks every role while a create_role adds
    one): fine for a real service, a 'dictionary changed size' error for a client that calls
    from several threads, as apply does. The client side stays concurrent."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    if getattr(original, "serialized", False):
        return
    lock = MOTO_LOCK

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, event_name, request, **kwargs)

    call.serialized = True  # type: ignore[attr-defined]
    BotocoreStubber.__call__ = call  # type: ignore[method-assign]
    _moto_handlers_once()


def _moto_handlers_once() -> None:
    """moto finds a request's handler among its response class's methods, listed anew with
    `inspect.getmembers` for every request (~0.3 ms of CPU each, measured on EC2's class). A
    class's methods do not change while it serves: listed once per class."""
    import functools

    from moto.core import responses

    if hasattr(responses.method_names_from_class, "cache_info"):
        return
    responses.method_names_from_class = functools.cache(responses.method_names_from_class)


# the sandbox's connectors have no tunnel to bring up: each says it is ready at launch, as a
# real one's cloud-init does once its tunnel is up (a test turns it off to be the VM that never
# comes up)
VMS_REPORT_READY = {"aws": True}


def tag_launched_interfaces() -> None:
    """EC2 tags the interfaces RunInstances makes with its `network-interface` tag
    specification; moto drops that one. A pair's watchdogs find each other by those tags (and
    their role's condition names them), so the sandbox does as EC2 does. And each connector
    says it is ready (VMS_REPORT_READY), as its cloud-init would once its tunnel is up."""
    from moto.ec2.models.instances import InstanceBackend

    from ...fakeserver import sandbox_watchdog_word
    from .common import MEMBER_TAG, READY_TAG, TAG, WATCH_TAG

    original = InstanceBackend.run_instances
    if getattr(original, "tags_interfaces", False):
        return

    def run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
        tags = dict(kwargs.get("tags") or {}).get("network-interface", {})
        reservation = original(self, *args, **kwargs)
        for instance in reservation.instances:
            for nic in instance.nics.values():
                nic.add_tags(tags)
            own = dict(kwargs.get("tags") or {}).get("instance", {})
            if VMS_REPORT_READY["aws"] and TAG in own:
                instance.add_tag(READY_TAG, "0")
                user_data = args[2] if len(args) > 2 else kwargs.get("user_data")
                encoded = getattr(user_data, "as_bytes", lambda: b"")()  # (base64, as EC2's)
                word = sandbox_watchdog_word(encoded, own.get(MEMBER_TAG) == "1")
                if word:
                    instance.add_tag(WATCH_TAG, word)
        return reservation

    run_instances.tags_interfaces = True  # type: ignore[attr-defined]
    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]


def fake_session(region: str = "us-east-1") -> Any:
    from .common import new_session

    return new_session(
        aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=region
    )


def publish_ubuntu_image(session: Any, region: str, account: str | None = None) -> dict[str, str]:
    """What Canonical and AWS provide in a real account: an Ubuntu LTS image per architecture
    and the public SSM parameter naming it. moto has neither, so the sandbox adds them."""
    from moto.ssm.models import Parameter, ssm_backends

    from .common import UBUNTU_PARAMETER

    ec2 = session.client("ec2", region_name=region)
    images = {}
    account = account or ACCOUNT  # (moto keeps each account's parameters apart)
    backend = ssm_backends[account][region]
    for aws_arch, arch in (("x86_64", "amd64"), ("arm64", "arm64")):
        image = ec2.register_image(
            Name=UBUNTU_NAME.format(arch=arch),
            Architecture=aws_arch,
            RootDeviceName="/dev/sda1",
            VirtualizationType="hvm",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        name = UBUNTU_PARAMETER.format(arch=arch)
        backend._parameters[name].append(
            Parameter(  # type: ignore[abstract]
                account_id=account,
                name=name,
                value=image,
                parameter_type="String",
                description=None,
                allowed_pattern=None,
                keyid=None,
                last_modified_date=datetime.now(UTC),
                version=1,
                data_type="aws:ec2:image",
            )
        )
        images[arch] = image
    return images


def seed_vpc(
    session: Any,
    name: str,
    region: str,
    cidr: str,
    subnet_cidrs: list[str],
    extra_route_tables: int = 2,
    app_group: bool = True,
) -> SandboxVpc:
    """A VPC as a network admin has it before the toolkit: subnets, an internet gateway on a
    public route table, private route tables, and an app security group."""
    ec2 = session.client("ec2", region_name=region)
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=c)["Subnet"]["SubnetId"] for c in subnet_cidrs
    ]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    main = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"][0]["RouteTableId"]
    tables = [main]
    if extra_route_tables == 0:  # the main table is the only one: it is the way out
        ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    for i in range(extra_route_tables):
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        if i == 0:
            ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        if i < len(subnets):
            ec2.associate_route_table(RouteTableId=table, SubnetId=subnets[i])
        tables.append(table)
    group = ""
    if app_group:
        group = ec2.create_security_group(
            GroupName=f"{name}-app", Description=f"{name} application servers", VpcId=vpc
        )["GroupId"]
        ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 443,
                    "ToPort": 443,
                    "IpRanges": [{"CidrIp": cidr}],
                }
            ],
        )
    return SandboxVpc(
        name=name,
        region=region,
        vpc=vpc,
        cidr=cidr,
        connector_subnet=subnets[0],
        subnets=subnets,
        route_tables=tables,
        app_group=group,
        internet_gateway=igw,
    )


@dataclass(frozen=True)
class HandMade:
    """A connector made by hand from CloudConnexa's guide, before the toolkit: its instance,
    interface and group."""

    instance: str
    interface: str
    group: str


def hand_made_connector(
    session: Any, vpc: SandboxVpc, peers: list[str], vpn: str = "100.96.0.0/11"
) -> HandMade:
    """What the guide's manual steps make in a VPC: a security group for the connector, an
    Ubuntu instance in the connector subnet with source/destination check off, the VPN range
    and each peer range routed to its interface in every route table, and the app group
    admitting the VPN range (tcp/443). No tag of ours anywhere."""
    ec2 = session.client("ec2", region_name=vpc.region)
    group = ec2.create_security_group(
        GroupName="vpn-connector", Description="CloudConnexa connector", VpcId=vpc.vpc
    )["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": vpc.cidr}]}])  # fmt: skip
    image = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(
        ImageId=image, InstanceType="t3.small", MinCount=1, MaxCount=1,
        SubnetId=vpc.connector_subnet, SecurityGroupIds=[group],
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": "Name", "Value": "cloudconnexa-connector"}]}],
    )["Instances"][0]  # fmt: skip
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni,
                                           SourceDestCheck={"Value": False})  # fmt: skip
    for table in vpc.route_tables:
        for destination in (vpn, *peers):
            ec2.create_route(RouteTableId=table, DestinationCidrBlock=destination,
                             NetworkInterfaceId=eni)  # fmt: skip
    if vpc.app_group:
        ec2.authorize_security_group_ingress(GroupId=vpc.app_group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
             "IpRanges": [{"CidrIp": vpn}]}])  # fmt: skip
    return HandMade(instance["InstanceId"], eni, group)


def add_app_host(session: Any, vpc: SandboxVpc) -> str:
    """An app server in the VPC's app group, in a subnet other than the connector's (so that
    the subnets' network ACLs are on the way): what `provision doctor` traces a flow to."""
    ec2 = session.client("ec2", region_name=vpc.region)
    image = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
    made = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
        SubnetId=vpc.subnets[1], SecurityGroupIds=[vpc.app_group],
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": "Name", "Value": f"{vpc.name}-app"}]}],
    )  # fmt: skip
    return str(made["Instances"][0]["PrivateIpAddress"])


def seed_world(session: Any, directory: Path, app_hosts: bool = False) -> SandboxWorld:
    """The seed document's networks: HQ (10.0.0.0/18, HR app, several route tables) in
    us-east-1 and Branch (192.168.0.0/22, Finance) in us-west-2."""
    for region in ("us-east-1", "us-west-2"):
        publish_ubuntu_image(session, region)
    hq = seed_vpc(
        session,
        "hq",
        "us-east-1",
        "10.0.0.0/18",
        ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"],
        extra_route_tables=3,
    )
    branch = seed_vpc(
        session,
        "branch",
        "us-west-2",
        "192.168.0.0/22",
        ["192.168.0.0/24", "192.168.1.0/24"],
        extra_route_tables=1,
    )
    hq.egress = hq.shown_tables = True
    if app_hosts:  # the sandbox's: the doctor has a server to trace each flow to
        for vpc in (hq, branch):
            add_app_host(session, vpc)
    part = SandboxPart(
        "aws",
        [hq, branch],
        {"session": session, "poll_seconds": 0.01},
        fake=session,
        location_of=lambda vpc: AwsLocation(vpc.region, vpc.vpc),
        hand_made=lambda vpc, peers: hand_made_connector(session, vpc, peers),
    )
    return SandboxWorld(directory, {"aws": part})


def sandbox_clouds(session: Any, service_url: str, **service: Any) -> Any:
    """Clouds for a library caller (a test, a bench) against the sandbox: AWS through
    `session` (moto), the VPN service at `service_url` with the sandbox's credentials, and any
    of the service client's options (`sleep`, `clock`, `progress`...)."""
    from ...cloudconnexa.fake import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
    from .. import Clouds

    return Clouds(
        options={
            "aws": {"session": session, "poll_seconds": 0.0},
            "cloudconnexa": {
                "base_url": service_url,
                "client_id": SANDBOX_CLIENT_ID,
                "client_secret": SANDBOX_CLIENT_SECRET,
                **service,
            },
        },
    )


@contextlib.contextmanager
def sandbox_part(
    directory: Path, served: bool = False, verbose: bool = False
) -> Iterator[SandboxPart]:
    """AWS's part of the sandbox: moto in this process (every boto3 call made meanwhile is
    answered by it), or `served` on 127.0.0.1 for another process; HQ and Branch seeded, each
    with an app host. Its `hand_made` makes the connector the seed's guide has a user make."""
    from moto import mock_aws

    # the sandbox publishes its own Ubuntu images: moto's catalogue of 14,000 is not needed
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    if not served:
        serialize_moto()
        tag_launched_interfaces()
        with mock_aws():
            world = seed_world(fake_session(), directory, app_hosts=True)
            yield world.parts["aws"]
        return
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=verbose)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        url = f"http://{host}:{port}"
        os.environ[ENDPOINT_VARIABLE] = url  # the seeding below goes there too
        world = seed_world(fake_session(), directory, app_hosts=True)
        # a user's own VPC may be in any region: each has Ubuntu's images, as AWS's do
        import boto3

        for region in boto3.session.Session().get_available_regions("ec2"):
            if region not in (world.hq.region, world.branch.region):
                publish_ubuntu_image(fake_session(), region)
        part = world.parts["aws"]
        part.exports = {
            ENDPOINT_VARIABLE: url,
            "AWS_ACCESS_KEY_ID": "sandbox",
            "AWS_SECRET_ACCESS_KEY": "sandbox",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        part.served = f"{url}  moto: EC2, IAM, SSM, KMS, STS (account {ACCOUNT})"
        yield part
    finally:
        moto.stop()
