"""connector-provisioner: put a VPN connector into a cloud network and route the network
through it. The library face; the `provision` CLI is a thin layer over it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# each name from its module when first asked for (PEP 562): `provision --help` imports this
# package and needs none of them
_HOMES = {
    **dict.fromkeys(("Declined", "Deployment", "apply", "destroy", "plan", "status"), "api"),
    **dict.fromkeys(("CloudError", "ConflictError", "ProvisionerError", "SpecError"), "errors"),
    **dict.fromkeys(
        (
            "ApplyResult",
            "Change",
            "Conflict",
            "NetworkPlan",
            "NetworkStatus",
            "Plan",
            "RouteState",
            "Topology",
        ),
        "model",
    ),  # fmt: skip
    "Clouds": "providers",
    **dict.fromkeys(("load_topology", "load_topology_text", "parse_topology"), "spec"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'provisioner' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


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
