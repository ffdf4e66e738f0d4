"""The least an identity needs for `provision plan`, `apply`, `status`, `doctor` and `destroy` on Azure: a
custom role, assigned at the subscription (observe lists the subscription's network interfaces
to tell a live next hop from a blackhole). `tests/test_azure.py` checks it against every call
the provider makes, and that it holds nothing those calls do not need.

    python -m provisioner.providers.azure.permissions     # the role definition, as JSON
"""

from __future__ import annotations

import json

NETWORK = "Microsoft.Network"
COMPUTE = "Microsoft.Compute"

ACTIONS = (
    # read the VNet and its subnets; write a subnet to associate our route table (the subnet is
    # sent back whole, so the NSG and NAT gateway it already has are joined again)
    f"{NETWORK}/virtualNetworks/read",
    # a run's lease is a tag on the VNet: the VNet is PUT back as it was read, under its etag
    # (its subnets' NSGs and their rules are joined again by that PUT)
    f"{NETWORK}/virtualNetworks/write",
    f"{NETWORK}/networkSecurityGroups/securityRules/join/action",
    f"{NETWORK}/virtualNetworks/subnets/read",
    f"{NETWORK}/virtualNetworks/subnets/write",
    f"{NETWORK}/virtualNetworks/subnets/join/action",
    f"{NETWORK}/natGateways/join/action",
    # the region's limits on routes per table and rules per NSG, counted at plan
    f"{NETWORK}/locations/usages/read",
    # route tables; their user-defined routes are written inside the table (one PUT, If-Match)
    f"{NETWORK}/routeTables/read",
    f"{NETWORK}/routeTables/write",
    f"{NETWORK}/routeTables/delete",
    f"{NETWORK}/routeTables/join/action",
    # the connector's NSG and the app NSGs; their rules are written inside the NSG (one PUT, If-Match)
    f"{NETWORK}/networkSecurityGroups/read",
    f"{NETWORK}/networkSecurityGroups/write",
    f"{NETWORK}/networkSecurityGroups/delete",
    f"{NETWORK}/networkSecurityGroups/join/action",
    # the connector's NIC and public address
    f"{NETWORK}/networkInterfaces/read",
    f"{NETWORK}/networkInterfaces/write",
    f"{NETWORK}/networkInterfaces/delete",
    f"{NETWORK}/networkInterfaces/join/action",
    f"{NETWORK}/publicIPAddresses/read",
    f"{NETWORK}/publicIPAddresses/write",
    f"{NETWORK}/publicIPAddresses/delete",
    f"{NETWORK}/publicIPAddresses/join/action",
    f"{NETWORK}/locations/operations/read",
    # a pair's load balancer (connector.ha); the NICs join its pool
    f"{NETWORK}/loadBalancers/read",
    f"{NETWORK}/loadBalancers/write",
    f"{NETWORK}/loadBalancers/delete",
    f"{NETWORK}/loadBalancers/backendAddressPools/join/action",
    # status of a pair: what the balancer's probe finds of each member (its watchdog's word)
    f"{NETWORK}/loadBalancers/loadBalancingRules/health/action",
    # the VM and the extension that hands it the profile
    f"{COMPUTE}/virtualMachines/read",
    # status: the Marketplace's newest version of the image (a newer one than the VM runs)
    f"{COMPUTE}/locations/publishers/artifacttypes/offers/skus/versions/read",
    f"{COMPUTE}/virtualMachines/write",
    f"{COMPUTE}/virtualMachines/delete",
    f"{COMPUTE}/virtualMachines/start/action",
    # a connector that goes is powered off first, gracefully (an OS shutdown: its OpenVPN tells
    # the VPN service it leaves), since a delete does not shut the OS down
    f"{COMPUTE}/virtualMachines/powerOff/action",
    f"{COMPUTE}/virtualMachines/extensions/read",
    f"{COMPUTE}/virtualMachines/extensions/write",
    f"{COMPUTE}/virtualMachines/extensions/delete",
    f"{COMPUTE}/locations/operations/read",
    # the VM's managed OS disk is made and removed with the VM
    f"{COMPUTE}/disks/write",
    f"{COMPUTE}/disks/delete",
)


def role_definition(subscription: str = "<subscription id>") -> dict[str, object]:
    return {
        "Name": "connector-provisioner",
        "IsCustom": True,
        "Description": "Puts a VPN connector into a VNet and routes the VNet through it.",
        "Actions": list(ACTIONS),
        "NotActions": [],
        "AssignableScopes": [f"/subscriptions/{subscription}"],
    }


if __name__ == "__main__":
    print(json.dumps(role_definition(), indent=2))
