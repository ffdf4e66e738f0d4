"""GCP as the rest of the toolkit sees it (no SDK here): where a network is, what the file
says of it, and where the provider, the watchdog's mechanism, the cloud-init and the sandbox
part are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...clouds import Cloud, CloudSchema
from ...model import Location

ENDPOINT_VARIABLE = "PROVISION_GCP_ENDPOINT"  # the sandbox's fake (provision sandbox serve)

# GCP names and network tags: 1-63 lower-case letters, digits and '-', a letter first
NAME = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
# a service account of a project, or a project's Compute Engine default account
ACCOUNT = (
    r"^([a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
    r"|\d+-compute@developer\.gserviceaccount\.com)$"
)


@dataclass(frozen=True)
class GcpLocation(Location):
    project: str
    network: str
    zone: str

    def describe(self) -> str:
        return f"network {self.network} in {self.project}"


def location(f: Any) -> GcpLocation:
    return GcpLocation(
        project=f.text("project", pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"),
        network=f.text("network", pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"),
        zone=f.text("zone", pattern=r"^[a-z]+-[a-z]+\d+-[a-z]$", example="europe-west1-b"),
    )


CLOUD = Cloud(
    name="gcp",
    title="GCP",
    package=__package__ or "",
    location=GcpLocation,
    schema=CloudSchema(
        ("project", "network", "zone"),
        location,
        route_table=(NAME, "a network tag of the instances the routes are for, like web"),
        security_group=(NAME, "a network tag of the app instances, like web"),
        subnet=(NAME, "a subnetwork name in the zone's region, like connector"),
        default_size="e2-small",
        network_keys=("route_priority",),
        connector_keys=("service_account",),
        connector_key_patterns={
            "service_account": (ACCOUNT, "connector@my-project.iam.gserviceaccount.com"),
        },
        key_help={
            "route_priority": "our routes' priority (0-65535, default 1000)",
            "service_account": "the connector's identity; default: one made for it",
        },
        ha_mechanism=(
            "the routes' next hop is an internal passthrough load balancer (cp-<network>-ilb, "
            "all ports), the second connector its failover backend in another zone; its health "
            "check asks each one's /active, which only the active one answers: the pair agrees "
            "among itself who that is (no cloud call, no permission), and a standby takes over "
            "when the active one is down"
        ),
        ha_front="internal load balancer",
        ha_front_probed=True,
        watchdog_settings=("member",),  # the first claims when both are healthy (Peers)
        drain_settle=3.0,  # the health check every second, one answer decides
        make_before_break=True,
    ),
    provider="provisioner.providers.gcp.network:GcpNetwork",
    watchdog="provisioner.providers.gcp.watchdog",
    credentials=(
        ("GOOGLE_APPLICATION_CREDENTIALS", "GCP: google.auth.default() (or gcloud's login)"),
    ),
    endpoint=(ENDPOINT_VARIABLE, "Google Cloud's, likewise"),
    secret_variables=("GOOGLE_OAUTH_ACCESS_TOKEN",),
    sandbox="provisioner.providers.gcp.world:sandbox_part",
)
