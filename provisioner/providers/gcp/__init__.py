"""GCP through google-cloud-compute and google-cloud-secret-manager (IAM service accounts through
google-auth's session), split by resource: `network` (the VPC network, its routes; the provider
class), `firewalls` (firewall rules), `instance` (service account, profile secret, instance).
`cloud` is what the rest of the toolkit knows of it (no SDK); the rest is imported when a
network of it is touched."""

from .cloud import CLOUD

__all__ = ["CLOUD"]
