"""GCP through google-cloud-compute and google-cloud-secret-manager (IAM service accounts through
google-auth's session), split by resource: `network` (the VPC network, its routes; the provider
class), `firewalls` (firewall rules), `instance` (service account, profile secret, instance)."""

from .common import ENDPOINT_VARIABLE, LABEL
from .network import GcpNetwork

__all__ = ["ENDPOINT_VARIABLE", "LABEL", "GcpNetwork"]
