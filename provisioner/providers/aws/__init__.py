"""AWS through boto3, split by resource: `network` (the VPC, routes, security groups; the
provider class), `identity` (profile parameter, role, instance profile), `instance` (the VM).
`cloud` is what the rest of the toolkit knows of it (no SDK); the rest is imported when a
network of AWS is touched."""

from .cloud import CLOUD

__all__ = ["CLOUD"]
