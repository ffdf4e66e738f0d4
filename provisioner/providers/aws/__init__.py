"""AWS through boto3, split by resource: `network` (the VPC, routes, security groups; the
provider class), `identity` (profile parameter, role, instance profile), `instance` (the VM)."""

from .common import FINGERPRINT_TAG, TAG, UBUNTU_PARAMETER
from .network import AwsNetwork

__all__ = ["FINGERPRINT_TAG", "TAG", "UBUNTU_PARAMETER", "AwsNetwork"]
