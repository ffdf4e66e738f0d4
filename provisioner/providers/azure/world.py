"""An Azure network as an admin has it before the toolkit, built in the fake ARM through the real
SDK (azure-mgmt-network): for `provision demo`, `provision sandbox serve` and the tests."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...fakeserver import SandboxPart, served_hub
from .cloud import ENDPOINT_VARIABLE
from .fake import Arm

SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"


@dataclass
class SandboxVnet:
    """One seeded VNet: what a topology names."""

    name: str
    subscription: str
    resource_group: str
    region: str
    vnet: str
    cidr: str
    connector_subnet: str
    subnets: list[str] = field(default_factory=list)
    route_table: str = ""  # the admin's, on the app subnet
    app_group: str = ""  # the admin's NSG of the app servers

    def network_entry(self, profile: str, **connector: Any) -> dict[str, Any]:
        """This VNet as a topology network entry."""
        return {
            "cloud": "azure",
            "subscription": self.subscription,
            "resource_group": self.resource_group,
            "vnet": self.vnet,
            "region": self.region,
            "subnets": [self.cidr],
            "app_security_groups": [self.app_group],
            "connector": {"subnet": self.connector_subnet, "profile": profile, **connector},
        }

    def describe(self) -> str:
        return f"{self.vnet} {self.cidr} in {self.region}, resource group {self.resource_group}"


def network_client(endpoint: str, subscription: str = SUBSCRIPTION) -> Any:
    """azure-mgmt-network's client, pointed at the fake (as the provider points it)."""
    from .common import clients

    return clients(subscription, endpoint, None, retry_total=3)[0]


def seed_vnet(
    arm: Arm,
    endpoint: str,
    name: str,
    cidr: str,
    *,
    region: str = "westeurope",
    subscription: str = SUBSCRIPTION,
    resource_group: str | None = None,
) -> SandboxVnet:
    """A resource group (or `resource_group`, which exists) with a VNet of three subnets: the
    connector's (no route table), the app servers' (the admin's route table and NSG, with an
    admin route and rule), and a data subnet (nothing)."""
    from azure.mgmt.network import models as m

    rg = resource_group or f"rg-{name}"
    if resource_group is None:
        arm.create_resource_group(subscription, rg, region)
    net = network_client(endpoint, subscription)
    base = cidr.split("/")[0].rsplit(".", 2)[0]  # 10.1.0.0/16 -> 10.1
    nsg = net.network_security_groups.begin_create_or_update(
        rg,
        f"nsg-{name}-app",
        m.NetworkSecurityGroup(
            location=region,
            properties=m.NetworkSecurityGroupPropertiesFormat(
                security_rules=[
                    m.SecurityRule(
                        name="https-from-vnet",
                        properties=m.SecurityRulePropertiesFormat(
                            protocol="Tcp",
                            source_address_prefix=cidr,
                            source_port_range="*",
                            destination_address_prefix="*",
                            destination_port_range="443",
                            access="Allow",
                            direction="Inbound",
                            priority=100,
                        ),
                    )
                ]
            ),
        ),
    ).result()
    table = net.route_tables.begin_create_or_update(
        rg,
        f"rt-{name}-app",
        m.RouteTable(
            location=region,
            properties=m.RouteTablePropertiesFormat(
                routes=[
                    m.Route(
                        name="partner-via-internet",
                        properties=m.RoutePropertiesFormat(
                            address_prefix="198.51.100.0/24", next_hop_type="Internet"
                        ),
                    )
                ]
            ),
        ),
    ).result()
    subnets = [
        (f"snet-{name}-connector", f"{base}.0.0/24", {}),
        (
            f"snet-{name}-app",
            f"{base}.1.0/24",
            {"route_table": m.RouteTable(id=table.id), "network_security_group": nsg},
        ),
        (f"snet-{name}-data", f"{base}.2.0/24", {}),
    ]
    net.virtual_networks.begin_create_or_update(
        rg,
        f"vnet-{name}",
        m.VirtualNetwork(
            location=region,
            properties=m.VirtualNetworkPropertiesFormat(
                address_space=m.AddressSpace(address_prefixes=[cidr]),
                subnets=[
                    m.Subnet(name=s, properties=m.SubnetPropertiesFormat(address_prefix=p, **extra))
                    for s, p, extra in subnets
                ],
            ),
        ),
    ).result()
    return SandboxVnet(
        name=name,
        subscription=subscription,
        resource_group=rg,
        region=region,
        vnet=f"vnet-{name}",
        cidr=cidr,
        connector_subnet=subnets[0][0],
        subnets=[s for s, _, _ in subnets],
        route_table=table.name,
        app_group=nsg.name,
    )


def hand_made_connector(
    endpoint: str, vnet: SandboxVnet, peers: list[str], vpn: str = "100.96.0.0/11"
) -> dict[str, str]:
    """What CloudConnexa's guide makes by hand in a VNet: a NIC with IP forwarding on in the
    connector subnet, an Ubuntu VM on it, and in the admin's route table (the app subnet's) the
    VPN range and each peer range with the VM's address as next hop (VirtualAppliance). No tag
    of ours. Returns the VM's id and its address."""
    from azure.mgmt.compute import models as c
    from azure.mgmt.network import models as m

    from .common import clients
    from .instance import _unusable_key

    net, compute = clients(vnet.subscription, endpoint, None, retry_total=3)
    rg, region = vnet.resource_group, vnet.region
    subnet = net.subnets.get(rg, vnet.vnet, vnet.connector_subnet)
    nic = net.network_interfaces.begin_create_or_update(rg, "cloudconnexa-connector-nic", m.NetworkInterface(
        location=region, properties=m.NetworkInterfacePropertiesFormat(
            enable_ip_forwarding=True, ip_configurations=[m.NetworkInterfaceIPConfiguration(
                name="ipconfig1", properties=m.NetworkInterfaceIPConfigurationPropertiesFormat(
                    subnet=m.Subnet(id=subnet.id), private_ip_allocation_method="Dynamic"))])),
    ).result()  # fmt: skip
    key = c.SshPublicKey(path="/home/admin1/.ssh/authorized_keys", key_data=_unusable_key())
    vm = compute.virtual_machines.begin_create_or_update(rg, "cloudconnexa-connector", c.VirtualMachine(
        location=region, properties=c.VirtualMachineProperties(
            hardware_profile=c.HardwareProfile(vm_size="Standard_B1s"),
            storage_profile=c.StorageProfile(image_reference=c.ImageReference(
                publisher="canonical", offer="ubuntu-24_04-lts", sku="server", version="latest")),
            os_profile=c.OSProfile(computer_name="connector", admin_username="admin1",
                                   linux_configuration=c.LinuxConfiguration(
                                       disable_password_authentication=True,
                                       ssh=c.SshConfiguration(public_keys=[key]))),
            network_profile=c.NetworkProfile(network_interfaces=[c.NetworkInterfaceReference(
                id=nic.id, properties=c.NetworkInterfaceReferenceProperties(primary=True))]))),
    ).result()  # fmt: skip
    address = net.network_interfaces.get(rg, nic.name).ip_configurations[0].private_ip_address
    for i, destination in enumerate((vpn, *peers)):
        net.routes.begin_create_or_update(rg, vnet.route_table, f"connector-{i}", m.Route(
            properties=m.RoutePropertiesFormat(address_prefix=destination,
                                               next_hop_type="VirtualAppliance",
                                               next_hop_ip_address=address))).result()  # fmt: skip
    net.security_rules.begin_create_or_update(rg, vnet.app_group, "https-from-vpn", m.SecurityRule(
        properties=m.SecurityRulePropertiesFormat(
            protocol="Tcp", source_address_prefix=vpn, source_port_range="*",
            destination_address_prefix="*", destination_port_range="443", access="Allow",
            direction="Inbound", priority=110))).result()  # fmt: skip
    return {"vm": vm.id, "address": address}


HUB = ("azhub", "10.8.0.0/16")  # the sandbox's hub here: its name and range


def sandbox_part(
    directory: Path, served: bool = False, verbose: bool = False
) -> contextlib.AbstractContextManager[SandboxPart]:
    """Azure's part of the sandbox: the fake Resource Manager on 127.0.0.1, a hub VNet in it."""
    return served_hub(
        "azure",
        Arm(),
        seed_vnet,
        HUB,
        ENDPOINT_VARIABLE,
        "{url}  Resource Manager: resource groups, network, compute (any subscription id, any bearer token)",
        verbose,
        progress_seconds=5.0,
    )
