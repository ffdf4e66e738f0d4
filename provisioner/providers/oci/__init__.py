"""OCI through the `oci` SDK, split by resource: `network` (the VCN, its route tables; the
provider class), `groups` (network security groups), `instance` (the profile secret, the
instance and its VNIC, the dynamic group and policy).
`cloud` is what the rest of the toolkit knows of it (no SDK); the rest is imported when a
network of it is touched."""

from .cloud import CLOUD

__all__ = ["CLOUD"]
