"""`provision sandbox serve` as a new user meets it: quiet, a world of their own built with each
cloud's SDK and the export lines alone, `provision` run against it from another process, and a
stop that is said and immediate.

One server for the module (its tests run in order on one worker): seeding it costs seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FIGURES

pytestmark = [pytest.mark.long, pytest.mark.xdist_group("sandbox-serve")]

PROFILE = "client\ndev tun\nremote vpn.invalid 1194\n<key>\nSCRATCH-KEY-do-not-print\n</key>\n"
SUBSCRIPTION = "00000000-0000-4000-8000-00000000c0de"
PROJECT = "my-own-project-42"  # any project id: the fake keeps one world per id


@dataclass
class Served:
    process: subprocess.Popen[str]
    heading: list[str]  # what it printed before serving
    exports: dict[str, str]
    topology: Path
    tenancy: str
    env: dict[str, str]  # a shell with the exports pasted
    directory: Path
    built: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("serve")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PROVISION_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioner.cli", "sandbox", "serve", "--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=(directory / "serve.err").open("w"),
        text=True,
        env={**base, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"},
    )
    assert process.stdout is not None
    heading: list[str] = []
    for line in process.stdout:
        heading.append(line.rstrip("\n"))
        if "serving until" in line:
            break
    exports = {}
    for line in heading:
        if line.startswith("export "):
            for pair in line.split()[1:]:
                key, _, value = pair.partition("=")
                exports[key] = value
    topology = Path(next(x for x in heading if "provision plan -f" in x).rsplit(" ", 1)[-1])
    tenancy = next(x for x in heading if "ocid1.tenancy." in x).split("tenancy ")[1].split(",")[0]
    yield Served(process, heading, exports, topology, tenancy, {**base, **exports}, directory)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def provision(served: Served, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`provision ...` in another process, in a shell that has the exports."""
    done = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", *args],
        capture_output=True,
        text=True,
        env=served.env,
        timeout=600,
    )
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


_SESSION = """
import contextlib, io, json, sys
from provisioner.cli import run
said = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(argv)
    said.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(said))
"""


def provision_each(served: Served, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Several `provision` commands one after the other in one client process with the
    exports, as a user's shell runs them (one import of the SDKs for all: the suite's time)."""
    done = subprocess.run(
        [sys.executable, "-c", _SESSION, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=served.env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    said = [
        subprocess.CompletedProcess(argv, code, out, err)
        for argv, (code, out, err) in zip(commands, json.loads(done.stdout), strict=True)
    ]
    for one in said:
        assert one.returncode == 0, f"{one.args}: {one.stdout[-2000:]}{one.stderr[-2000:]}"
    return said


def test_serve_says_what_a_user_needs_and_nothing_else(served: Served):
    """The exports, one line per fake, the seeded networks and the topology: no request log,
    although seeding made hundreds of requests."""
    assert set(served.exports) == {
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "PROVISION_AZURE_ENDPOINT",
        "PROVISION_GCP_ENDPOINT",
        "PROVISION_OCI_ENDPOINT",
        "CLOUDCONNEXA_API_URL",
        "CLOUDCONNEXA_CLIENT_ID",
        "CLOUDCONNEXA_CLIENT_SECRET",
    }
    assert all(
        v.startswith("http://127.0.0.1:")
        for k, v in served.exports.items()
        if "URL" in k or "ENDPOINT" in k
    )
    fakes = [
        x
        for x in served.heading
        if x.startswith(("#   aws ", "#   azure ", "#   gcp ", "#   oci ", "#   cloudconnexa "))
    ]
    assert len(fakes) == 5
    assert all(x.startswith(("#", "export ")) for x in served.heading)  # pasteable as a whole
    assert len(served.heading) <= 25, served.heading
    assert (served.directory / "serve.err").read_text() == ""  # no request log
    # the topology is YAML as the README writes it (not JSON), and valid
    text = served.topology.read_text()
    assert not text.lstrip().startswith("{") and "networks:\n  hq:\n    cloud: aws" in text
    assert provision(served, "plan", "-f", str(served.topology)).returncode == 0


def test_the_seeded_world_from_another_process(served: Served):
    """apply, status and destroy of the seeded topology in a client process with the exports;
    any SDK client pointed there reads what apply made."""
    topology = str(served.topology)
    applied, status = provision_each(
        served, ["apply", "-f", topology, "--yes"], ["status", "-f", topology, "--json"]
    )
    doc = json.loads(status.stdout)
    assert {n["name"]: n["healthy"] for n in doc["networks"]} == dict.fromkeys(
        ("hq", "branch", "azhub", "gchub", "ochub"), True
    )
    # both halves from the one file: the service routes each network's subnets to it
    assert all(n["service"]["healthy"] for n in doc["networks"])
    assert [n["service"]["egress"] for n in doc["networks"]] == [True, False, False, False, False]
    partner = served.directory / "partner.ovpn"  # the external site's, for its admin
    assert partner.stat().st_mode & 0o777 == 0o600
    said = applied.stdout + applied.stderr + status.stdout + status.stderr
    assert "PRIVATE-KEY" not in said and "PRIVATE-KEY" in partner.read_text()
    from provisioner.providers.gcp.world import compute

    made = compute(served.exports["PROVISION_GCP_ENDPOINT"]).routes.list(
        project="sandbox-project-1"
    )
    assert sum(r.name.startswith("cp-gchub-") for r in made) == 6  # vpn + 5 peers
    provision(served, "destroy", "-f", topology, "--yes")
    assert not partner.exists()


# --- a world of one's own, with the SDKs and the exports alone -------------------------------


def build_aws(env: dict[str, str]) -> list[dict[str, Any]]:
    """Two VPCs as a user makes them with boto3 (AWS_ENDPOINT_URL is honoured by boto3 itself),
    one in a region the sandbox's own world is not in (eu-west-1): a public subnet for the
    connector, an app subnet on a private table, an app group."""
    import boto3

    networks = []
    for name, cidr, region in (
        ("aws-a", "10.50.0.0/16", "us-east-1"),
        ("aws-b", "10.51.0.0/16", "eu-west-1"),
    ):
        ec2 = boto3.client(
            "ec2",
            region_name=region,
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        base = cidr.rsplit(".", 2)[0]
        vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        public = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{base}.0.0/24")["Subnet"]["SubnetId"]
        app = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{base}.1.0/24")["Subnet"]["SubnetId"]
        public_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        ec2.associate_route_table(RouteTableId=public_rt, SubnetId=public)
        app_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=app_rt, SubnetId=app)
        group = ec2.create_security_group(GroupName=f"{name}-app", Description="app", VpcId=vpc)
        networks.append(
            {
                "name": name,
                "entry": {
                    "cloud": "aws",
                    "region": region,
                    "vpc": vpc,
                    "app_security_groups": [{"group": group["GroupId"], "ports": ["tcp/443"]}],
                    "connector": {"subnet": public, "profile": "mine.ovpn"},
                },
                "tables": [app_rt, public_rt],
                "vpc": vpc,
                "region": region,
            }
        )
    return networks


class _SandboxAuth:
    """What an azure-mgmt client needs against the fake ARM: any bearer token over plain
    http (azure-core's own bearer policy refuses http)."""

    def on_request(self, request: Any) -> None:
        request.http_request.headers["Authorization"] = "Bearer my-token"

    def on_response(self, request: Any, response: Any) -> None:
        pass

    def on_exception(self, request: Any) -> None:
        pass


class _AnyCredential:
    def get_token(self, *_: Any, **__: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("my-token", int(time.time()) + 3600)


def azure_clients(env: dict[str, str]) -> tuple[Any, Any]:
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    auth = type("Auth", (_SandboxAuth, SansIOHTTPPolicy), {})()
    options = {
        "base_url": env["PROVISION_AZURE_ENDPOINT"],
        "authentication_policy": auth,
        "polling_interval": 0,
    }
    return (
        ResourceManagementClient(_AnyCredential(), SUBSCRIPTION, **options),
        NetworkManagementClient(_AnyCredential(), SUBSCRIPTION, **options),
    )


def build_azure(env: dict[str, str]) -> list[dict[str, Any]]:
    """A resource group of one's own, two VNets in it, an app NSG on each app subnet."""
    resources, net = azure_clients(env)
    rg = "rg-mine"
    assert not resources.resource_groups.check_existence(rg)
    resources.resource_groups.create_or_update(rg, {"location": "westeurope"})
    networks = []
    for name, cidr in (("az-a", "10.60.0.0/16"), ("az-b", "10.61.0.0/16")):
        base = cidr.rsplit(".", 2)[0]
        nsg = net.network_security_groups.begin_create_or_update(
            rg, f"nsg-{name}", {"location": "westeurope"}
        ).result()
        net.virtual_networks.begin_create_or_update(
            rg,
            f"vnet-{name}",
            {
                "location": "westeurope",
                "properties": {
                    "addressSpace": {"addressPrefixes": [cidr]},
                    "subnets": [
                        {"name": "connector", "properties": {"addressPrefix": f"{base}.0.0/24"}},
                        {
                            "name": "app",
                            "properties": {
                                "addressPrefix": f"{base}.1.0/24",
                                "networkSecurityGroup": {"id": nsg.id},
                            },
                        },
                    ],
                },
            },
        ).result()
        networks.append(
            {
                "name": name,
                "entry": {
                    "cloud": "azure",
                    "subscription": SUBSCRIPTION,
                    "resource_group": rg,
                    "vnet": f"vnet-{name}",
                    "region": "westeurope",
                    "app_security_groups": [f"nsg-{name}"],
                    "connector": {"subnet": "connector", "profile": "mine.ovpn"},
                },
            }
        )
    return networks


def gcp_clients(env: dict[str, str]) -> dict[str, Any]:
    from google.cloud import compute_v1
    from google.oauth2.credentials import Credentials

    options = {"api_endpoint": env["PROVISION_GCP_ENDPOINT"]}
    token = Credentials(token="my-token")  # any token: the fake checks there is one
    return {
        name: cls(credentials=token, transport="rest", client_options=options)
        for name, cls in (
            ("networks", compute_v1.NetworksClient),
            ("subnetworks", compute_v1.SubnetworksClient),
            ("firewalls", compute_v1.FirewallsClient),
            ("routes", compute_v1.RoutesClient),
            ("instances", compute_v1.InstancesClient),
            ("global_operations", compute_v1.GlobalOperationsClient),
            ("zone_operations", compute_v1.ZoneOperationsClient),
            ("region_operations", compute_v1.RegionOperationsClient),
        )
    }


def gcp_done(api: dict[str, Any], op: Any) -> None:
    """Wait for an operation through the operations clients pointed at the fake: an extended
    operation's own `.result()` polls compute.googleapis.com whatever the api_endpoint."""
    while op.status.name != "DONE":
        if op.zone:
            op = api["zone_operations"].wait(
                project=PROJECT, zone=op.zone.rsplit("/", 1)[-1], operation=op.name
            )
        elif op.region:
            op = api["region_operations"].wait(
                project=PROJECT, region=op.region.rsplit("/", 1)[-1], operation=op.name
            )
        else:
            op = api["global_operations"].wait(project=PROJECT, operation=op.name)


def build_gcp(env: dict[str, str]) -> list[dict[str, Any]]:
    """A project id of one's own (any is taken), two custom-mode networks, a subnetwork each
    for the connector and the apps, and a firewall rule for the apps' tag."""
    from google.cloud import compute_v1 as c

    api = gcp_clients(env)
    networks = []
    for name, cidr in (("gc-a", "10.70.0.0/16"), ("gc-b", "10.71.0.0/16")):
        base = cidr.rsplit(".", 2)[0]
        network = f"vpc-{name}"
        gcp_done(api, api["networks"].insert_unary(
            project=PROJECT, network_resource=c.Network(name=network, auto_create_subnetworks=False)
        ))  # fmt: skip
        for sub, prefix in (("connector", f"{base}.0.0/24"), ("app", f"{base}.1.0/24")):
            gcp_done(api, api["subnetworks"].insert_unary(
                project=PROJECT,
                region="europe-west1",
                subnetwork_resource=c.Subnetwork(
                    name=f"{name}-{sub}",
                    network=f"projects/{PROJECT}/global/networks/{network}",
                    ip_cidr_range=prefix,
                ),
            ))  # fmt: skip
        gcp_done(api, api["firewalls"].insert_unary(
            project=PROJECT,
            firewall_resource=c.Firewall(
                name=f"{name}-https",
                network=f"projects/{PROJECT}/global/networks/{network}",
                direction="INGRESS",
                target_tags=[f"{name}-app"],
                source_ranges=[cidr],
                allowed=[c.Allowed(I_p_protocol="tcp", ports=["443"])],
            ),
        ))  # fmt: skip
        gcp_done(api, api["instances"].insert_unary(
            project=PROJECT,
            zone="europe-west1-b",
            instance_resource=c.Instance(
                name=f"{name}-app-1",
                machine_type="zones/europe-west1-b/machineTypes/e2-micro",
                tags=c.Tags(items=[f"{name}-app"]),
                network_interfaces=[c.NetworkInterface(
                    subnetwork=f"projects/{PROJECT}/regions/europe-west1/subnetworks/{name}-app"
                )],
                disks=[c.AttachedDisk(boot=True, auto_delete=True,
                    initialize_params=c.AttachedDiskInitializeParams(
                        source_image="projects/debian-cloud/global/images/family/debian-12"))],
            ),
        ))  # fmt: skip
        networks.append(
            {
                "name": name,
                "entry": {
                    "cloud": "gcp",
                    "project": PROJECT,
                    "network": network,
                    "zone": "europe-west1-b",
                    "app_security_groups": [f"{name}-app"],
                    "connector": {"subnet": f"{name}-connector", "profile": "mine.ovpn"},
                },
            }
        )
    return networks


def oci_config(env: dict[str, str], tenancy: str, directory: Path) -> dict[str, Any]:
    """An OCI SDK config of one's own: any RSA key signs (the fake checks that requests are
    signed, not by whom)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = directory / "oci_api_key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {
        "user": "ocid1.user.oc1..me",
        "tenancy": tenancy,
        "fingerprint": ":".join(["ab"] * 16),
        "key_file": str(pem),
        "region": "eu-frankfurt-1",
    }


def build_oci(env: dict[str, str], tenancy: str, directory: Path) -> list[dict[str, Any]]:
    """A compartment, a vault and a key of one's own (each waited for, as OCI's states ask),
    and two VCNs in it: an internet gateway, a public route table for the connector's subnet,
    an app subnet and an app NSG."""
    import oci

    config = oci_config(env, tenancy, directory)
    endpoint = {"service_endpoint": env["PROVISION_OCI_ENDPOINT"]}
    identity = oci.identity.IdentityClient(config, **endpoint)
    made = identity.create_compartment(
        oci.identity.models.CreateCompartmentDetails(
            compartment_id=tenancy, name="mine", description="a world of my own"
        )
    ).data
    assert made.lifecycle_state == "CREATING"
    compartment = oci.wait_until(
        identity,
        identity.get_compartment(made.id),
        "lifecycle_state",
        "ACTIVE",
        max_wait_seconds=30,
    ).data.id
    vaults = oci.key_management.KmsVaultClient(config, **endpoint)
    vault = vaults.create_vault(
        oci.key_management.models.CreateVaultDetails(
            compartment_id=compartment, display_name="mine", vault_type="DEFAULT"
        )
    ).data
    vault = oci.wait_until(
        vaults, vaults.get_vault(vault.id), "lifecycle_state", "ACTIVE", max_wait_seconds=30
    ).data
    keys = oci.key_management.KmsManagementClient(
        config, service_endpoint=vault.management_endpoint
    )
    key = keys.create_key(
        oci.key_management.models.CreateKeyDetails(
            compartment_id=compartment,
            display_name="profiles",
            key_shape=oci.key_management.models.KeyShape(algorithm="AES", length=32),
        )
    ).data
    key = oci.wait_until(
        keys, keys.get_key(key.id), "lifecycle_state", "ENABLED", max_wait_seconds=30
    ).data
    m = oci.core.models
    net = oci.core.VirtualNetworkClient(config, **endpoint)
    networks = []
    for name, cidr in (("oc-a", "10.80.0.0/16"), ("oc-b", "10.81.0.0/16")):
        base = cidr.rsplit(".", 2)[0]
        vcn = net.create_vcn(
            m.CreateVcnDetails(compartment_id=compartment, cidr_blocks=[cidr], display_name=name)
        ).data
        igw = net.create_internet_gateway(
            m.CreateInternetGatewayDetails(
                compartment_id=compartment, vcn_id=vcn.id, is_enabled=True
            )
        ).data
        public = net.create_route_table(
            m.CreateRouteTableDetails(
                compartment_id=compartment,
                vcn_id=vcn.id,
                route_rules=[
                    m.RouteRule(
                        destination="0.0.0.0/0",
                        destination_type="CIDR_BLOCK",
                        network_entity_id=igw.id,
                    )
                ],
            )
        ).data
        connector = net.create_subnet(
            m.CreateSubnetDetails(
                compartment_id=compartment,
                vcn_id=vcn.id,
                cidr_block=f"{base}.0.0/24",
                route_table_id=public.id,
            )
        ).data
        net.create_subnet(
            m.CreateSubnetDetails(
                compartment_id=compartment, vcn_id=vcn.id, cidr_block=f"{base}.1.0/24"
            )
        )
        nsg = net.create_network_security_group(
            m.CreateNetworkSecurityGroupDetails(compartment_id=compartment, vcn_id=vcn.id)
        ).data
        networks.append(
            {
                "name": name,
                "entry": {
                    "cloud": "oci",
                    "region": "eu-frankfurt-1",
                    "compartment": compartment,
                    "vcn": vcn.id,
                    "app_security_groups": [nsg.id],
                    "connector": {
                        "subnet": connector.id,
                        "profile": "mine.ovpn",
                        "vault": vault.id,
                        "key": key.id,
                    },
                },
            }
        )
    return networks


def test_a_world_of_ones_own_on_every_cloud(served: Served, tmp_path: Path):
    """Two networks per cloud, built from scratch with each SDK and the exports alone; then
    `provision apply` from another process makes them route through their connectors, a
    second apply has nothing to do, and destroy leaves each as it was built."""
    env = served.env
    built = {
        "aws": build_aws(env),
        "azure": build_azure(env),
        "gcp": build_gcp(env),
        "oci": build_oci(env, served.tenancy, tmp_path),
    }
    (tmp_path / "mine.ovpn").write_text(PROFILE)
    networks = {n["name"]: n["entry"] for nets in built.values() for n in nets}
    networks["office"] = {"cloud": "external", "subnets": ["192.168.77.0/24"]}
    topology = tmp_path / "mine.yaml"
    topology.write_text(yaml.safe_dump({"version": 1, "networks": networks}, sort_keys=False))

    path = str(topology)
    plan, applied, status_json, again = provision_each(
        served,
        ["plan", "-f", path],
        ["apply", "-f", path, "--yes"],
        ["status", "-f", path, "--json"],
        ["apply", "-f", path, "--yes"],
    )
    assert plan.stdout.count("create connector VM") == 8
    assert "apply: done" in applied.stdout
    assert "SCRATCH-KEY" not in applied.stdout + applied.stderr
    assert again.stdout.count("apply: nothing to do") == 1 and "done" not in again.stdout
    status = json.loads(status_json.stdout)
    assert {n["name"]: n["healthy"] for n in status["networks"]} == dict.fromkeys(
        (n for n in networks if n != "office"), True
    )

    # each cloud's own SDK sees routes to the connector for the VPN range and the office
    import boto3

    for n in built["aws"]:
        ec2 = boto3.client("ec2", region_name=n["region"], endpoint_url=env["AWS_ENDPOINT_URL"],
                           aws_access_key_id="sandbox", aws_secret_access_key="sandbox")  # fmt: skip
        for table in ec2.describe_route_tables(RouteTableIds=n["tables"])["RouteTables"]:
            by_dest = {r.get("DestinationCidrBlock"): r for r in table["Routes"]}
            assert by_dest["100.96.0.0/11"]["NetworkInterfaceId"].startswith("eni-")
            assert by_dest["192.168.77.0/24"]["NetworkInterfaceId"].startswith("eni-")
    _, net = azure_clients(env)
    for n in built["azure"]:
        vnet = net.virtual_networks.get("rg-mine", n["entry"]["vnet"])
        app = next(s for s in vnet.properties.subnets if s.name == "app")
        table = net.route_tables.get("rg-mine", app.properties.route_table.id.rsplit("/", 1)[-1])
        hops = {
            r.properties.address_prefix: r.properties.next_hop_type for r in table.properties.routes
        }
        assert hops["100.96.0.0/11"] == hops["192.168.77.0/24"] == "VirtualAppliance"
    gcp = gcp_clients(env)
    routes = list(gcp["routes"].list(project=PROJECT))
    for n in built["gcp"]:
        ours = {
            r.dest_range
            for r in routes
            if r.network.endswith(n["entry"]["network"]) and r.next_hop_instance
        }
        assert {"100.96.0.0/11", "192.168.77.0/24"} <= ours

    provision(served, "destroy", "-f", path, "--yes")
    for n in built["aws"]:
        ec2 = boto3.client("ec2", region_name=n["region"], endpoint_url=env["AWS_ENDPOINT_URL"],
                           aws_access_key_id="sandbox", aws_secret_access_key="sandbox")  # fmt: skip
        for table in ec2.describe_route_tables(RouteTableIds=n["tables"])["RouteTables"]:
            assert all("NetworkInterfaceId" not in r for r in table["Routes"])
    assert not [r for r in gcp["routes"].list(project=PROJECT) if r.next_hop_instance]
    # what the user built is theirs again: the resource group goes with all it holds
    resources, _ = azure_clients(env)
    resources.resource_groups.begin_delete("rg-mine").result()
    assert not resources.resource_groups.check_existence("rg-mine")


def _shape(doc: Any) -> Any:
    """A document's keys, nested, without its values."""
    if isinstance(doc, dict):
        return {k: _shape(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_shape(v) for v in doc]
    return None


def test_verbose_logs_requests_and_a_stop_is_said_at_once(served: Served):
    """SIGTERM: 'sandbox stopped' on stderr and the exit follows at once; nothing was logged
    per request all along (without --verbose). With --verbose, each request is one line."""
    served.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert served.process.wait(timeout=20) == 0
    stopped_after = time.monotonic() - started
    err = (served.directory / "serve.err").read_text()
    assert err.splitlines() == ["sandbox stopped (SIGTERM); what it held is gone"], err[-2000:]
    FIGURES["sandbox serve: exit after SIGTERM"] = f"{stopped_after:.2f} s"

    verbose_dir = served.directory / "verbose"
    process = subprocess.Popen(
        [sys.executable, "-m", "provisioner.cli", "sandbox", "serve", "--dir", str(verbose_dir),
         "--verbose"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**served.env, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"},
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        if "serving until" in line:
            break
    process.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = process.communicate(timeout=20)
    assert process.returncode == 0
    lines = err.splitlines()
    assert lines[-1] == "sandbox stopped (SIGINT); what it held is gone"
    assert any("fake-arm:" in x and "PUT" in x for x in lines)  # the seeding's requests
    assert any("POST / HTTP" in x for x in lines)  # moto's own log
    assert "Traceback" not in err
