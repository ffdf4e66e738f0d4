"""connector-provisioner: put a VPN connector into a cloud network and route the network
through it. The library face; the `provision` CLI is a thin layer over it."""

from .api import Declined, Deployment, apply, destroy, plan, status
from .errors import CloudError, ConflictError, ProvisionerError, SpecError
from .model import (
    ApplyResult,
    Change,
    Conflict,
    NetworkPlan,
    NetworkStatus,
    Plan,
    RouteState,
    Topology,
)
from .providers import Clouds
from .spec import load_topology, load_topology_text, parse_topology

__version__ = "0.1.0"

__all__ = [
    "ApplyResult",
    "Change",
    "CloudError",
    "Clouds",
    "Conflict",
    "ConflictError",
    "Declined",
    "Deployment",
    "NetworkPlan",
    "NetworkStatus",
    "Plan",
    "ProvisionerError",
    "RouteState",
    "SpecError",
    "Topology",
    "apply",
    "destroy",
    "load_topology",
    "load_topology_text",
    "parse_topology",
    "plan",
    "status",
]
