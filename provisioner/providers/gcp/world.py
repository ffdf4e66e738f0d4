"""A GCP network as an admin has it before the toolkit, built in the fake through the real SDK
(google-cloud-compute): for `provision demo`, `provision sandbox serve` and the tests."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...fakeserver import SandboxPart, served_hub
from .cloud import ENDPOINT_VARIABLE
from .fake import Gce

PROJECT = "sandbox-project-1"


@dataclass
class SandboxGcpNetwork:
    """One seeded VPC network: what a topology names."""

    name: str
    project: str
    network: str
    zone: str
    cidr: str
    connector_subnet: str
    app_tag: str
    app_instance: str

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0]

    def network_entry(self, profile: str, **connector: Any) -> dict[str, Any]:
        """This network as a topology network entry."""
        return {
            "cloud": "gcp",
            "project": self.project,
            "network": self.network,
            "zone": self.zone,
            "subnets": [self.cidr],
            "app_security_groups": [self.app_tag],
            "connector": {"subnet": self.connector_subnet, "profile": profile, **connector},
        }

    def describe(self) -> str:
        return f"{self.network} {self.cidr} in {self.zone}, project {self.project}"


def compute(endpoint: str) -> Any:
    """google-cloud-compute's clients, pointed at the fake (as the provider points them)."""
    from .common import make_clients

    return make_clients(endpoint, None)


def _done(api: Any, project: str, op: Any) -> None:
    while op.status.name != "DONE":
        if op.zone:
            op = api.zone_operations.wait(
                project=project, zone=op.zone.rsplit("/", 1)[-1], operation=op.name
            )
        elif op.region:
            op = api.region_operations.wait(
                project=project, region=op.region.rsplit("/", 1)[-1], operation=op.name
            )
        else:
            op = api.global_operations.wait(project=project, operation=op.name)


def seed_network(
    gce: Gce,
    endpoint: str,
    name: str,
    cidr: str,
    *,
    zone: str = "europe-west1-b",
    project: str = PROJECT,
    cloud_nat: bool = False,
    app_instances: int = 1,
) -> SandboxGcpNetwork:
    """A custom-mode VPC network with two subnetworks in the zone's region (the connector's,
    and the app servers'), app instances tagged `<name>-app`, the admin's HTTPS rule for them,
    an admin route, and Cloud NAT on a router when asked."""
    from google.cloud import compute_v1 as c

    del gce  # seeded through the SDK, as an admin would
    api = compute(endpoint)
    region = zone.rsplit("-", 1)[0]
    base = cidr.split("/")[0].rsplit(".", 2)[0]  # 10.4.0.0/16 -> 10.4
    network = f"vpc-{name}"
    net_url = f"projects/{project}/global/networks/{network}"
    _done(
        api,
        project,
        api.networks.insert_unary(
            project=project, network_resource=c.Network(name=network, auto_create_subnetworks=False)
        ),
    )
    for subnet, prefix in (
        (f"{name}-connector", f"{base}.0.0/24"),
        (f"{name}-app", f"{base}.1.0/24"),
    ):
        _done(
            api,
            project,
            api.subnetworks.insert_unary(
                project=project,
                region=region,
                subnetwork_resource=c.Subnetwork(
                    name=subnet, network=net_url, ip_cidr_range=prefix, region=region
                ),
            ),
        )
    tag = f"{name}-app"
    for i in range(1, app_instances + 1):
        _done(
            api,
            project,
            api.instances.insert_unary(
                project=project,
                zone=zone,
                instance_resource=c.Instance(
                    name=f"{name}-app-{i}",
                    machine_type=f"zones/{zone}/machineTypes/e2-micro",
                    tags=c.Tags(items=[tag]),
                    network_interfaces=[
                        c.NetworkInterface(
                            subnetwork=f"projects/{project}/regions/{region}/subnetworks/{name}-app"
                        )
                    ],
                    disks=[
                        c.AttachedDisk(
                            boot=True,
                            auto_delete=True,
                            initialize_params=c.AttachedDiskInitializeParams(
                                source_image="projects/debian-cloud/global/images/family/debian-12"
                            ),
                        )
                    ],
                ),
            ),
        )
    _done(
        api,
        project,
        api.firewalls.insert_unary(
            project=project,
            firewall_resource=c.Firewall(
                name=f"{name}-allow-https-internal",
                network=net_url,
                direction="INGRESS",
                priority=1000,
                target_tags=[tag],
                source_ranges=[cidr],
                allowed=[c.Allowed(I_p_protocol="tcp", ports=["443"])],
            ),
        ),
    )
    _done(
        api,
        project,
        api.routes.insert_unary(
            project=project,
            route_resource=c.Route(
                name=f"{name}-docs-via-internet",
                network=net_url,
                dest_range="198.51.100.0/24",
                priority=900,
                next_hop_gateway=f"projects/{project}/global/gateways/default-internet-gateway",
            ),
        ),
    )
    if cloud_nat:
        _done(
            api,
            project,
            api.routers.insert_unary(
                project=project,
                region=region,
                router_resource=c.Router(
                    name=f"{name}-router",
                    network=net_url,
                    nats=[
                        c.RouterNat(
                            name=f"{name}-nat",
                            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
                            nat_ip_allocate_option="AUTO_ONLY",
                        )
                    ],
                ),
            ),
        )
    return SandboxGcpNetwork(
        name=name,
        project=project,
        network=network,
        zone=zone,
        cidr=cidr,
        connector_subnet=f"{name}-connector",
        app_tag=tag,
        app_instance=f"{name}-app-1",
    )


def hand_made_connector(
    endpoint: str, net: SandboxGcpNetwork, peers: list[str], vpn: str = "100.96.0.0/11"
) -> str:
    """What CloudConnexa's guide makes by hand in a VPC network: an instance in the connector
    subnet with canIpForward, and a route per range (the VPN's and each peer's) with it as next
    hop, at the default priority. No label of ours. Returns the hop as routes name it
    (zones/<zone>/instances/<name>)."""
    from google.cloud import compute_v1 as c

    api = compute(endpoint)
    project, zone, region = net.project, net.zone, net.region
    _done(api, project, api.instances.insert_unary(project=project, zone=zone, instance_resource=c.Instance(
        name="cloudconnexa-connector", machine_type=f"zones/{zone}/machineTypes/e2-small",
        can_ip_forward=True,
        network_interfaces=[c.NetworkInterface(
            subnetwork=f"projects/{project}/regions/{region}/subnetworks/{net.connector_subnet}")],
        disks=[c.AttachedDisk(boot=True, auto_delete=True, initialize_params=c.AttachedDiskInitializeParams(
            source_image="projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"))],
    )))  # fmt: skip
    hop = f"projects/{project}/zones/{zone}/instances/cloudconnexa-connector"
    for i, destination in enumerate((vpn, *peers)):
        _done(api, project, api.routes.insert_unary(project=project, route_resource=c.Route(
            name=f"to-connector-{i}", network=f"projects/{project}/global/networks/{net.network}",
            dest_range=destination, next_hop_instance=hop, priority=1000)))  # fmt: skip
    return f"zones/{zone}/instances/cloudconnexa-connector"


HUB = ("gchub", "10.9.0.0/16")  # the sandbox's hub here: its name and range


def sandbox_part(
    directory: Path, served: bool = False, verbose: bool = False
) -> contextlib.AbstractContextManager[SandboxPart]:
    """GCP's part of the sandbox: the fake Google Cloud on 127.0.0.1, a hub network in it."""
    return served_hub(
        "gcp",
        Gce(),
        seed_network,
        HUB,
        ENDPOINT_VARIABLE,
        "{url}  Compute Engine, Secret Manager, IAM (any project id, any token)",
        verbose,
        progress_seconds=5.0,
    )
