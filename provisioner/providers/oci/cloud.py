"""OCI as the rest of the toolkit sees it (no SDK here): where a network is, what the file
says of it, and where the provider, the watchdog's mechanism, the cloud-init and the sandbox
part are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...clouds import Cloud, CloudSchema
from ...model import Location

ENDPOINT_VARIABLE = "PROVISION_OCI_ENDPOINT"  # the sandbox's fake (provision sandbox serve)


def ocid(kind: str) -> str:
    """An OCID of one resource type: ocid1.<type>.<realm>.[region].<unique>."""
    return rf"^ocid1\.{kind}\.oc\d+\.[a-z0-9-]*\.[a-z0-9]{{8,}}$"


@dataclass(frozen=True)
class OciLocation(Location):
    region: str
    compartment: str
    vcn: str

    def describe(self) -> str:
        return f"vcn {self.vcn} in {self.region}"


def location(f: Any) -> OciLocation:
    return OciLocation(
        region=f.text("region", pattern=r"^[a-z]+-[a-z]+-\d+$", example="eu-frankfurt-1"),
        compartment=f.text("compartment", pattern=r"^ocid1\.(compartment|tenancy)\..+$"),
        vcn=f.text("vcn", pattern=r"^ocid1\.vcn\..+$", example="ocid1.vcn.oc1..."),
    )


CLOUD = Cloud(
    name="oci",
    title="OCI",
    package=__package__ or "",
    location=OciLocation,
    schema=CloudSchema(
        ("region", "compartment", "vcn"),
        location,
        route_table=(ocid("routetable"), "ocid1.routetable.oc1..."),
        security_group=(ocid("networksecuritygroup"), "ocid1.networksecuritygroup.oc1..."),
        subnet=(ocid("subnet"), "ocid1.subnet.oc1..."),
        default_size="VM.Standard.E4.Flex",
        connector_keys=("vault", "key", "dynamic_group"),
        required_connector_keys=(
            ("vault", ocid("vault"), "ocid1.vault.oc1..."),
            ("key", ocid("key"), "ocid1.key.oc1..."),
        ),
        connector_key_patterns={"dynamic_group": (r"^[\w.-]{1,100}$", "vpn-connectors")},
        key_help={
            "vault": "the vault that holds the profile secret",
            "key": "the key of that vault",
            "dynamic_group": "the connector's dynamic group; default: one made for it",
        },
        ha_mechanism=(
            "the route rules name a floating private IP (a secondary IP of the pair's subnet, "
            "tagged connector-provisioner:ha=<network>); the standby's watchdog moves it to its "
            "own VNIC with UpdatePrivateIp and the rules follow it"
        ),
        ha_front="floating private IP",
        ha_one_subnet=True,
        # where the pair's floating private IP is; which member (the key of its word there)
        watchdog_settings=("subnet", "member"),
        watchdog_python="/opt/oci-cli/bin/python3",  # the venv the profile's fetch installs
        make_before_break=True,
    ),
    provider="provisioner.providers.oci.network:OciNetwork",
    watchdog="provisioner.providers.oci.watchdog",
    credentials=(
        ("OCI_CONFIG_PROFILE", "OCI: the profile of ~/.oci/config (default DEFAULT)"),
        ("OCI_CLI_AUTH", "OCI: instance_principal instead of the config file"),
    ),
    endpoint=(ENDPOINT_VARIABLE, "OCI's, likewise"),
    secret_variables=("OCI_CLI_KEY_CONTENT",),
    sandbox="provisioner.providers.oci.world:sandbox_part",
)
