"""Azure through azure-mgmt-network and azure-mgmt-compute, split by resource: `network` (the
VNet, route tables, routes; the provider class), `groups` (network security groups), `instance`
(public IP, NIC, VM, the profile extension).
`cloud` is what the rest of the toolkit knows of it (no SDK); the rest is imported when a
network of it is touched."""

from .cloud import CLOUD

__all__ = ["CLOUD"]
