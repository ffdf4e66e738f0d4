"""Azure through azure-mgmt-network and azure-mgmt-compute, split by resource: `network` (the
VNet, route tables, routes; the provider class), `groups` (network security groups), `instance`
(public IP, NIC, VM, the profile extension)."""

from .common import ENDPOINT_VARIABLE, TAG
from .network import AzureNetwork

__all__ = ["ENDPOINT_VARIABLE", "TAG", "AzureNetwork"]
