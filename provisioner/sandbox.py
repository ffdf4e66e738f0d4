"""The built-in sandbox: an in-process fake AWS (moto) seeded with the seed document's world,
so `provision demo` shows the whole job without a cloud account. The tests use the same world.

Nothing here can reach a real cloud: every boto3 call made inside `mock_aws()` is answered
in-process, and the session carries fake credentials.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
VPN_REGION = "eu-central-1"  # the sandbox's VPN region on the fake CloudConnexa
UBUNTU_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-20261101"
FAKE_PROFILE = (
    "client\ndev tun\nproto udp\nremote sandbox.vpn.invalid 1194\n"
    "<key>\nSANDBOX-PRIVATE-KEY-{name}-do-not-print\n</key>\n"
)


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

    from .fakeserver import sandbox_watchdog_word
    from .providers.aws.common import MEMBER_TAG, READY_TAG, TAG, WATCH_TAG

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
    from .providers.aws.common import new_session

    return new_session(
        aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=region
    )


def publish_ubuntu_image(session: Any, region: str, account: str | None = None) -> dict[str, str]:
    """What Canonical and AWS provide in a real account: an Ubuntu LTS image per architecture
    and the public SSM parameter naming it. moto has neither, so the sandbox adds them."""
    from moto.ssm.models import Parameter, ssm_backends

    from .providers.aws import UBUNTU_PARAMETER

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


@dataclass
class SandboxWorld:
    hq: SandboxVpc
    branch: SandboxVpc
    directory: Path
    azure: Any = None  # providers.azure.world.SandboxVnet: the Azure hub, when the world has one
    azure_url: str = ""  # where its fake ARM listens
    gcp: Any = None  # providers.gcp.world.SandboxGcpNetwork: the GCP hub, when the world has one
    gcp_url: str = ""  # where the fake Google Cloud listens
    oci: Any = None  # providers.oci.world.SandboxVcn: the OCI hub, when the world has one
    oci_url: str = ""  # where the fake OCI listens
    service_url: str = ""  # where the fake CloudConnexa listens

    def topology(self, partner: bool = False, service: bool = False) -> dict[str, Any]:
        """The seed's HQ + Branch as a topology document (profiles written beside it), or with
        `service` the VPN service's half too: no profile files, the service makes them (and
        the partner's goes to partner.ovpn)."""
        networks: dict[str, Any] = {}
        for net, egress in ((self.hq, True), (self.branch, False)):
            profile = self.directory / f"{net.name}.ovpn"
            if not profile.exists() and not service:
                profile.write_text(FAKE_PROFILE.format(name=net.name))
            networks[net.name] = {
                "cloud": "aws",
                "region": net.region,
                "vpc": net.vpc,
                "subnets": [net.cidr],
                "route_tables": "all",
                "app_security_groups": [net.app_group],
                "connector": {
                    "subnet": net.connector_subnet,
                    "size": "t3.small",
                    "egress": egress,
                    "profile": profile.name,
                },
            }
        if self.azure is not None:
            profile = self.directory / "azhub.ovpn"
            if not profile.exists():
                profile.write_text(FAKE_PROFILE.format(name="azhub"))
            networks["azhub"] = self.azure.network(profile.name)
        if self.gcp is not None:
            profile = self.directory / "gchub.ovpn"
            if not profile.exists():
                profile.write_text(FAKE_PROFILE.format(name="gchub"))
            networks["gchub"] = self.gcp.network_entry(profile.name)
        if self.oci is not None:
            profile = self.directory / "ochub.ovpn"
            if not profile.exists():
                profile.write_text(FAKE_PROFILE.format(name="ochub"))
            networks["ochub"] = self.oci.network_entry(profile.name)
        if partner:
            networks["partner"] = {"cloud": "external", "subnets": ["172.31.0.0/16"]}
        doc: dict[str, Any] = {"version": 1, "vpn_subnet": "100.96.0.0/11"}
        if service:
            doc["service"] = {"cloudconnexa": {"cloud_id": "sandbox", "vpn_region": VPN_REGION}}
            for entry in networks.values():
                entry.get("connector", {}).pop("profile", None)
            if partner:
                networks["partner"]["connector"] = {"profile_out": "partner.ovpn"}
        return {**doc, "networks": networks}

    def write_topology(self, partner: bool = False, service: bool = False) -> Path:
        """The topology as a user writes one: YAML, in the README's order of keys."""
        import yaml

        path = self.directory / "topology.yaml"
        made = "the VPN service makes" if service else "profiles are the files beside this one"
        path.write_text(
            f"# the sandbox's networks; {made}\n"
            + yaml.safe_dump(
                self.topology(partner, service), sort_keys=False, default_flow_style=False
            )
        )
        return path

    def describe(self) -> list[str]:
        """One line per seeded network: what a user names in a topology of their own."""
        lines = [
            f"hq      aws    {self.hq.vpc} 10.0.0.0/18 in us-east-1, route tables "
            f"{', '.join(self.hq.route_tables)}, app group {self.hq.app_group}",
            f"branch  aws    {self.branch.vpc} 192.168.0.0/22 in us-west-2, app group "
            f"{self.branch.app_group}",
        ]
        if self.azure is not None:
            lines.append(
                f"azhub   azure  {self.azure.vnet} {AZURE_HUB} in {self.azure.region}, "
                f"resource group {self.azure.resource_group}"
            )
        if self.gcp is not None:
            lines.append(
                f"gchub   gcp    {self.gcp.network} {GCP_HUB} in {self.gcp.zone}, "
                f"project {self.gcp.project}"
            )
        if self.oci is not None:
            lines.append(f"ochub   oci    a VCN {OCI_HUB} in {self.oci.region}")
        lines.append("partner external, 172.31.0.0/16 (routed to, not managed)")
        return lines


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
    if app_hosts:  # the sandbox's: the doctor has a server to trace each flow to
        for vpc in (hq, branch):
            add_app_host(session, vpc)
    return SandboxWorld(hq=hq, branch=branch, directory=directory)


@contextlib.contextmanager
def sandbox() -> Iterator[tuple[Any, SandboxWorld]]:
    """A fake AWS (moto, in-process) and a fake Azure (ARM on 127.0.0.1) with the seed's world in
    them (HQ and Branch on AWS, an Azure hub), and a scratch directory for topology files."""
    try:
        from moto import mock_aws

        from .providers.azure.fake import Arm
        from .providers.gcp.fake import Gce
        from .providers.oci.fake import Oci
    except ImportError:  # pragma: no cover - depends on the install
        from .errors import SpecError

        raise SpecError(
            "demo", "the sandbox needs its extra: pip install 'connector-provisioner[sandbox]'"
        ) from None
    # the sandbox publishes its own Ubuntu images: moto's catalogue of 14,000 is not needed
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    serialize_moto()
    tag_launched_interfaces()
    from .cloudconnexa.fake import CloudConnexa

    with (
        mock_aws(),
        tempfile.TemporaryDirectory(prefix="provision-demo-") as tmp,
        Arm().serve() as arm,
        Gce().serve() as gce,
        Oci().serve() as oci,
        CloudConnexa(online_with_profile=True).serve() as service,
    ):
        session = fake_session()
        world = seed_world(session, Path(tmp), app_hosts=True)
        seed_hubs(world, arm, gce, oci)
        world.service_url = service.url
        # as mock_aws catches every boto3 client: every Azure and GCP client made meanwhile
        # goes to their fakes
        before = {name: os.environ.get(name) for name in ENDPOINTS}
        os.environ.update(
            {
                AZURE_ENDPOINT: arm.url,
                GCP_ENDPOINT: gce.url,
                OCI_ENDPOINT: oci.url,
                **service_exports(service.url),
            }
        )
        try:
            yield session, world
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


AZURE_HUB = "10.8.0.0/16"
GCP_HUB = "10.9.0.0/16"
OCI_HUB = "10.10.0.0/16"
AZURE_ENDPOINT = "PROVISION_AZURE_ENDPOINT"
GCP_ENDPOINT = "PROVISION_GCP_ENDPOINT"
OCI_ENDPOINT = "PROVISION_OCI_ENDPOINT"
SERVICE_VARIABLES = ("CLOUDCONNEXA_API_URL", "CLOUDCONNEXA_CLIENT_ID", "CLOUDCONNEXA_CLIENT_SECRET")
ENDPOINTS = (AZURE_ENDPOINT, GCP_ENDPOINT, OCI_ENDPOINT, *SERVICE_VARIABLES)


def sandbox_clouds(session: Any, service_url: str, **service: Any) -> Any:
    """Clouds for a library caller (a test, a bench) against the sandbox: AWS through
    `session` (moto), the VPN service at `service_url` with the sandbox's credentials, and any
    of the service client's options (`sleep`, `clock`, `progress`...)."""
    from .cloudconnexa.fake import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
    from .providers import Clouds

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


def service_exports(url: str) -> dict[str, str]:
    """What points the CLI at the fake CloudConnexa: its URL and the sandbox's credentials."""
    from .cloudconnexa.fake import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    return dict(
        zip(SERVICE_VARIABLES, (url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), strict=True)
    )


def seed_hubs(world: SandboxWorld, arm: Any, gce: Any, oci: Any) -> None:
    """An Azure hub in the fake ARM, a GCP hub in the fake Google Cloud and an OCI hub in the
    fake OCI (their servers given)."""
    from .providers.azure.world import seed_vnet
    from .providers.gcp.world import seed_network
    from .providers.oci.world import seed_vcn

    world.azure = seed_vnet(arm.fake, arm.url, "azhub", AZURE_HUB)
    world.azure_url = arm.url
    world.gcp = seed_network(gce.fake, gce.url, "gchub", GCP_HUB)
    world.gcp_url = gce.url
    world.oci = seed_vcn(oci.fake, oci.url, "ochub", OCI_HUB)
    world.oci_url = oci.url


def _say(message: str) -> None:
    sys.stdout.write(f"  .. {message}\n")  # one write: networks report side by side
    sys.stdout.flush()


def _say_briefly(message: str) -> None:
    """Progress without the one line per change (`[12/133 4s] hq: create route ...`)."""
    if not re.match(r"^\[\d+/\d+ \d+s\] ", message):
        _say(message)


def run_demo(verbose: bool = False) -> int:
    """plan -> apply -> status -> re-plan -> destroy, printed as the CLI prints them."""
    from . import api, render, spec
    from .model import ApplyResult
    from .providers import Clouds

    def step(title: str) -> None:
        print(f"\n=== {title}")

    def done(result: ApplyResult) -> None:
        print(render.result_text(result.plan, len(result.done)))

    with sandbox() as (session, world):
        path = world.write_topology(partner=True, service=True)
        # Branch already has a connector, made by hand from the VPN service's guide: the plan
        # takes it over (ours beside it, its routes moved to ours)
        made = hand_made_connector(session, world.branch, [world.hq.cidr, "172.31.0.0/16"])
        print(
            "Sandbox: fake clouds holding HQ and Branch on AWS and a hub on each other cloud, "
            "and a fake CloudConnexa (the VPN service's half, from the same file):"
        )
        for line in world.describe():
            print(f"  {line}")
        print(f"  branch already has a connector made by hand: {made.instance} "
              f"({made.interface}), its routes to it")  # fmt: skip
        topology = spec.load_topology(path)
        clouds = Clouds(
            options={
                "aws": {"session": session, "poll_seconds": 0.01},
                "azure": {"endpoint": world.azure_url, "progress_seconds": 5.0},
                "gcp": {"endpoint": world.gcp_url, "progress_seconds": 5.0},
                "oci": {"endpoint": world.oci_url, "progress_seconds": 5.0, "poll_seconds": 0.1},
            },
            progress=_say if verbose else _say_briefly,
        )
        deployment = api.Deployment(topology, clouds)
        more = "" if verbose else "   (grouped; every change: provision demo --verbose)"

        b = world.branch
        step(f"provision discover --cloud aws --region {b.region} --vpc {b.vpc} --name branch")
        print(_discovered(clouds, b), end="")
        print("(the demo's topology names Branch the same way: its plan takes that connector "
              "over)")  # fmt: skip

        step(f"provision plan -f topology.yaml{more}")
        print(render.plan_text(deployment.plan(), verbose=verbose))
        step("provision apply -f topology.yaml --yes")
        done(deployment.apply())
        step("provision status -f topology.yaml")
        applied = deployment.status()
        print(render.status_text(applied))
        step("provision plan -f topology.yaml   (again: nothing to do)")
        print(render.plan_text(deployment.plan(), verbose=verbose))
        step("provision destroy -f topology.yaml --yes")
        done(deployment.destroy())
        step("provision status -f topology.yaml   (after destroy)")
        after = deployment.status()
        print(render.status_text(after))
        healthy = all(s.healthy for s in applied)
        clean = all(s.nothing_of_ours for s in after)
    print(
        "\nThe demo "
        + ("planned, applied, checked, re-planned (nothing to do) and destroyed both halves: "
           "every network was healthy after apply, and nothing of ours was left after destroy."
           if healthy and clean else
           "did NOT end as it should: " + ("a network was not healthy after apply; "
                                           if not healthy else "")
           + ("something of ours was left after destroy" if not clean else "")
           + " (see above).")
        + " The sandbox is gone; no cloud account was used."
    )  # fmt: skip
    return 0 if healthy and clean else 1


def _discovered(clouds: Any, vpc: SandboxVpc) -> str:
    """What `provision discover` prints for one of the sandbox's VPCs."""
    from .discover import render
    from .model import AwsLocation
    from .reading import placeholder

    network = placeholder(vpc.name, "aws", AwsLocation(vpc.region, vpc.vpc))
    return render(clouds.connect(network).discover(vpc.name), None)


def serve(directory: Path, seconds: float | None = None, verbose: bool = False) -> int:
    """Every cloud's fake on 127.0.0.1, seeded with the sandbox's world: prints the `export`
    lines that point the CLI (or any SDK client) at them, one line per fake, the seeded
    networks and a topology file of them, then serves until Ctrl-C or SIGTERM (or for
    `seconds`). Requests are logged (to stderr) only when `verbose`."""
    import logging
    import signal
    import threading

    from moto.server import ThreadedMotoServer

    from .cloudconnexa.fake import CloudConnexa, RateLimit
    from .providers.azure.fake import Arm
    from .providers.gcp.fake import Gce
    from .providers.oci.fake import Oci

    # moto's server logs every request through werkzeug: only with --verbose
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.ERROR)
    if verbose:
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    directory.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    stopped_by: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=verbose)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        aws_url = f"http://{host}:{port}"
        os.environ["AWS_ENDPOINT_URL"] = aws_url  # the seeding below goes there too
        oci_fake = Oci()
        with (
            Arm().serve(log=verbose) as arm,
            Gce().serve(log=verbose) as gce,
            oci_fake.serve(log=verbose) as oci,
            # the service's kind of rate limit, which a user sees in every answer's headers
            # and in plan's note, at 10 calls a second where the service gives 1 per 15 s
            CloudConnexa(
                online_with_profile=True, rate_limit=RateLimit(burst=20, rate=10, period=1.0)
            ).serve(log=verbose) as service,
        ):
            world = seed_world(fake_session(), directory, app_hosts=True)
            seed_hubs(world, arm, gce, oci)
            path = world.write_topology(partner=True, service=True)
            print("# fake clouds on 127.0.0.1 (no account, nothing leaves this machine):")
            print(f"#   aws    {aws_url}  moto: EC2, IAM, SSM, KMS, STS (account {ACCOUNT})")
            print(
                f"#   azure  {arm.url}  Resource Manager: resource groups, network, compute "
                "(any subscription id, any bearer token)"
            )
            print(
                f"#   gcp    {gce.url}  Compute Engine, Secret Manager, IAM "
                "(any project id, any token)"
            )
            print(
                f"#   oci    {oci.url}  Core, Identity, Vault, KMS, Secrets "
                f"(tenancy {oci_fake.tenancy}, any signing key)"
            )
            print(
                f"#   cloudconnexa {service.url}  the VPN service's API v1 (cloud_id sandbox, "
                f"VPN region {VPN_REGION})"
            )
            print("# paste these lines into your shell:")
            print(f"export AWS_ENDPOINT_URL={aws_url}")
            print("export AWS_ACCESS_KEY_ID=sandbox AWS_SECRET_ACCESS_KEY=sandbox")
            print("export AWS_DEFAULT_REGION=us-east-1")
            print(f"export {AZURE_ENDPOINT}={arm.url}")
            print(f"export {GCP_ENDPOINT}={gce.url}")
            print(f"export {OCI_ENDPOINT}={oci.url}")
            exports = service_exports(service.url)
            print(" ".join(["export", *(f"{k}={v}" for k, v in exports.items())]))
            print("# seeded networks:")
            for line in world.describe():
                print(f"#   {line}")
            print(f"# a topology of them: provision plan -f {path}")
            print("# serving until Ctrl-C" + ("" if verbose else " (requests: --verbose)"))
            sys.stdout.flush()
            stop.wait(seconds)
    finally:
        moto.stop()
    why = f" ({stopped_by[0]})" if stopped_by else f" after {seconds:g} s" if seconds else ""
    print(f"sandbox stopped{why}; what it held is gone", file=sys.stderr)
    return 0
