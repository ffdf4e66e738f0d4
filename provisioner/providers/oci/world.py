"""An OCI VCN as an admin has it before the toolkit, built in the fake through the real SDK
(oci): for `provision demo`, `provision sandbox serve` and the tests."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...fakeserver import SandboxPart, served_hub
from .cloud import ENDPOINT_VARIABLE
from .fake import Oci


@dataclass
class SandboxVcn:
    """One seeded VCN: what a topology names."""

    name: str
    region: str
    compartment: str
    vcn: str
    cidr: str
    connector_subnet: str
    app_subnet: str
    route_table: str  # the admin's, of the app subnet
    public_table: str  # the connector subnet's: 0.0.0.0/0 to the internet gateway
    app_group: str  # the admin's NSG of the app servers
    vault: str
    key: str

    def network_entry(self, profile: str, **connector: Any) -> dict[str, Any]:
        return {
            "cloud": "oci",
            "region": self.region,
            "compartment": self.compartment,
            "vcn": self.vcn,
            "subnets": [self.cidr],
            "app_security_groups": [self.app_group],
            "connector": {
                "subnet": self.connector_subnet,
                "profile": profile,
                "vault": self.vault,
                "key": self.key,
                **connector,
            },
        }

    def describe(self) -> str:
        return f"a VCN {self.cidr} in {self.region}"


def clients(endpoint: str, region: str) -> Any:
    """The oci SDK's clients, pointed at the fake (as the provider points them)."""
    from .common import make_clients

    return make_clients(region, endpoint, None, None, retries=3)


def seed_vcn(
    oci_fake: Oci,
    endpoint: str,
    name: str,
    cidr: str,
    *,
    nat: bool = False,
    beside: SandboxVcn | None = None,
) -> SandboxVcn:
    """A compartment with a VCN: an internet gateway (or a NAT gateway, `nat`), the connector's
    subnet behind a table of the admin's that sends 0.0.0.0/0 there, an app subnet behind
    another table (with an admin rule) and an NSG of the app servers (with an admin rule), a
    vault and key for the profile, and the Ubuntu image the region offers. `beside`: in that
    VCN's compartment, with its vault and key."""
    import oci
    from oci.core import models as m

    region = oci_fake.region
    if beside is not None:  # in that VCN's compartment, its profiles in the same vault
        compartment, vault, key = beside.compartment, beside.vault, beside.key
    else:
        compartment = oci_fake.add_compartment(f"cmp-{name}")
        vault, key = oci_fake.add_vault(compartment)
        oci_fake.add_image(compartment)
    api = clients(endpoint, region)
    net = api.network
    base = cidr.split("/")[0].rsplit(".", 2)[0]  # 10.6.0.0/16 -> 10.6
    vcn = net.create_vcn(
        m.CreateVcnDetails(
            compartment_id=compartment, cidr_blocks=[cidr], display_name=f"vcn-{name}"
        )
    ).data
    if nat:
        gateway = net.create_nat_gateway(
            m.CreateNatGatewayDetails(compartment_id=compartment, vcn_id=vcn.id)
        ).data
    else:
        gateway = net.create_internet_gateway(
            m.CreateInternetGatewayDetails(
                compartment_id=compartment, vcn_id=vcn.id, is_enabled=True
            )
        ).data
    igw = net.create_internet_gateway(
        m.CreateInternetGatewayDetails(compartment_id=compartment, vcn_id=vcn.id, is_enabled=True)
    ).data if nat else gateway  # fmt: skip
    public = net.create_route_table(
        m.CreateRouteTableDetails(
            compartment_id=compartment,
            vcn_id=vcn.id,
            display_name=f"rt-{name}-public",
            route_rules=[
                m.RouteRule(
                    destination="0.0.0.0/0",
                    destination_type="CIDR_BLOCK",
                    network_entity_id=gateway.id,
                )
            ],
        )
    ).data
    app_table = net.create_route_table(
        m.CreateRouteTableDetails(
            compartment_id=compartment,
            vcn_id=vcn.id,
            display_name=f"rt-{name}-app",
            route_rules=[
                m.RouteRule(
                    destination="198.51.100.0/24",
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
            display_name=f"{name}-connector",
        )
    ).data
    app = net.create_subnet(
        m.CreateSubnetDetails(
            compartment_id=compartment,
            vcn_id=vcn.id,
            cidr_block=f"{base}.1.0/24",
            route_table_id=app_table.id,
            display_name=f"{name}-app",
            prohibit_public_ip_on_vnic=True,
        )
    ).data
    nsg = net.create_network_security_group(
        m.CreateNetworkSecurityGroupDetails(
            compartment_id=compartment, vcn_id=vcn.id, display_name=f"nsg-{name}-app"
        )
    ).data
    net.add_network_security_group_security_rules(
        nsg.id,
        m.AddNetworkSecurityGroupSecurityRulesDetails(
            security_rules=[
                m.AddSecurityRuleDetails(
                    direction="INGRESS", protocol="6", source=cidr, source_type="CIDR_BLOCK",
                    tcp_options=m.TcpOptions(destination_port_range=m.PortRange(min=443, max=443)),
                    description="https from the VCN",
                )
            ]
        ),
    )  # fmt: skip
    del oci
    return SandboxVcn(
        name=name,
        region=region,
        compartment=compartment,
        vcn=vcn.id,
        cidr=cidr,
        connector_subnet=connector.id,
        app_subnet=app.id,
        route_table=app_table.id,
        public_table=public.id,
        app_group=nsg.id,
        vault=vault,
        key=key,
    )


def hand_made_connector(
    endpoint: str, vcn: SandboxVcn, image: str, peers: list[str], vpn: str = "100.96.0.0/11"
) -> dict[str, str]:
    """What CloudConnexa's guide makes by hand in a VCN: an instance in the connector subnet
    whose VNIC skips the source/destination check, and in the app subnet's route table the VPN
    range and each peer range to its primary private IP. No tag of ours. Returns the
    instance's id and that private IP's."""
    from oci.core import models as m

    api = clients(endpoint, vcn.region)
    vm = api.compute.launch_instance(m.LaunchInstanceDetails(
        compartment_id=vcn.compartment, availability_domain="Uocm:EU-FRANKFURT-1-AD-1",
        shape="VM.Standard.E4.Flex", shape_config=m.LaunchInstanceShapeConfigDetails(ocpus=1),
        display_name="cloudconnexa-connector",
        source_details=m.InstanceSourceViaImageDetails(image_id=image),
        create_vnic_details=m.CreateVnicDetails(subnet_id=vcn.connector_subnet),
    )).data  # fmt: skip
    attachment = api.compute.list_vnic_attachments(vcn.compartment, instance_id=vm.id).data[0]
    api.network.update_vnic(attachment.vnic_id, m.UpdateVnicDetails(skip_source_dest_check=True))
    (primary,) = [p for p in api.network.list_private_ips(vnic_id=attachment.vnic_id).data
                  if p.is_primary]  # fmt: skip
    table = api.network.get_route_table(vcn.route_table).data
    rules = list(table.route_rules) + [
        m.RouteRule(destination=d, destination_type="CIDR_BLOCK", network_entity_id=primary.id)
        for d in (vpn, *peers)
    ]
    api.network.update_route_table(vcn.route_table, m.UpdateRouteTableDetails(route_rules=rules))
    return {"instance": vm.id, "private_ip": primary.id}


HUB = ("ochub", "10.10.0.0/16")  # the sandbox's hub here: its name and range


def sandbox_part(
    directory: Path, served: bool = False, verbose: bool = False
) -> contextlib.AbstractContextManager[SandboxPart]:
    """OCI's part of the sandbox: the fake OCI on 127.0.0.1, a hub VCN in it."""
    fake = Oci()
    return served_hub(
        "oci",
        fake,
        seed_vcn,
        HUB,
        ENDPOINT_VARIABLE,
        f"{{url}}  Core, Identity, Vault, KMS, Secrets (tenancy {fake.tenancy}, any signing key)",
        verbose,
        progress_seconds=5.0,
        poll_seconds=0.1,
    )
