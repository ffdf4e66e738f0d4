"""OCI through the `oci` SDK, split by resource: `network` (the VCN, its route tables; the
provider class), `groups` (network security groups), `instance` (the profile secret, the
instance and its VNIC, the dynamic group and policy)."""

from .common import ENDPOINT_VARIABLE, TAG
from .network import OciNetwork

__all__ = ["ENDPOINT_VARIABLE", "TAG", "OciNetwork"]
