"""Azure as the rest of the toolkit sees it (no SDK here): where a network is, what the file
says of it, and where the provider, the watchdog's mechanism, the cloud-init and the sandbox
part are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...clouds import Cloud, CloudSchema
from ...model import Location

ENDPOINT_VARIABLE = "PROVISION_AZURE_ENDPOINT"  # the sandbox's fake ARM (provision sandbox serve)

# Azure names: 1-80 letters, digits, '_', '.', '-', starting with a letter or digit and ending
# with a letter, digit or '_'; a resource of another group by its full id
NAME = r"^[A-Za-z0-9]([\w.-]{0,78}\w)?$"
NAME_OR_ID = (
    r"^([A-Za-z0-9]([\w.-]{{0,78}}\w)?|/subscriptions/[0-9a-fA-F-]{{36}}/resourceGroups/[\w.()-]+"
    r"/providers/Microsoft\.Network/{kind}/[A-Za-z0-9]([\w.-]{{0,78}}\w)?)$"
)


@dataclass(frozen=True)
class AzureLocation(Location):
    subscription: str
    resource_group: str
    vnet: str
    location: str

    def describe(self) -> str:
        return f"vnet {self.vnet} in {self.resource_group}"


def location(f: Any) -> AzureLocation:
    return AzureLocation(
        subscription=f.text(
            "subscription", pattern=r"^[0-9a-fA-F-]{36}$", example="a 36-character GUID"
        ),
        resource_group=f.text("resource_group", pattern=r"^[\w.()-]{1,90}$"),
        vnet=f.text("vnet", pattern=r"^[\w.-]{2,64}$"),
        location=f.text("region", pattern=r"^[a-z0-9]+$", example="westeurope"),
    )


CLOUD = Cloud(
    name="azure",
    title="Azure",
    package=__package__ or "",
    location=AzureLocation,
    schema=CloudSchema(
        ("subscription", "resource_group", "vnet", "region"),
        location,
        route_table=(NAME_OR_ID.format(kind="routeTables"), "rt-app or its resource id"),
        security_group=(
            NAME_OR_ID.format(kind="networkSecurityGroups"),
            "nsg-app or its resource id",
        ),
        subnet=(NAME, "a subnet name of the vnet, like snet-connector"),
        default_size="Standard_B2s",
        ha_mechanism=(
            "the routes' next hop is an internal Standard load balancer (cp-<network>, an "
            "HA-ports rule) with both connectors behind it; its probe asks each one's /active, "
            "which only the active one answers: the pair agrees among itself who that is (no "
            "cloud call, no permission), and a standby takes over when the active one is down"
        ),
        ha_front="load balancer frontend",
        ha_front_probed=True,
        watchdog_settings=("member",),  # the first claims when both are healthy (Peers)
        drain_settle=6.0,  # the balancer's probe every 5 s, one answer decides
        make_before_break=True,
        connector_by_address=True,
    ),
    provider="provisioner.providers.azure.network:AzureNetwork",
    watchdog="provisioner.providers.azure.watchdog",
    credentials=(
        (
            "AZURE_CLIENT_ID, AZURE_*",
            "Azure: DefaultAzureCredential (environment, managed identity, az login)",
        ),
    ),  # fmt: skip
    endpoint=(ENDPOINT_VARIABLE, "Azure Resource Manager's, likewise"),
    secret_variables=("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD"),
    # azure-identity logs its whole credential chain (a dozen lines) as a warning before the
    # error the provider turns into one line; --debug shows it
    quiet_loggers=("azure.identity",),
    sandbox="provisioner.providers.azure.world:sandbox_part",
)
