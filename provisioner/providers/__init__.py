"""Cloud providers, by the cloud's name. Each module is imported only when a network of that
cloud is touched, so `provision --help` never pays for a cloud SDK."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedCloudError
from ..model import Network
from .base import NetworkProvider

# cloud name -> "module:class". Adding a cloud: its module, plus one line here.
REGISTRY: dict[str, str] = {
    "aws": "provisioner.providers.aws:AwsNetwork",
}

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Clouds:
    """How to reach the clouds: per-cloud options (an AWS `boto3.Session`, ...) and where
    to report progress while waiting. The default reaches each cloud through its SDK's
    own credential chain."""

    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: Progress = _quiet

    def connect(self, network: Network) -> NetworkProvider:
        target = REGISTRY.get(network.cloud)
        if target is None:
            raise UnsupportedCloudError(
                f"networks.{network.name}.cloud",
                f"{network.cloud!r} is not supported by this version yet (supported: "
                f"{', '.join(sorted(REGISTRY))})",
            )
        module_name, class_name = target.split(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        provider: NetworkProvider = cls(
            network, progress=self.progress, **self.options.get(network.cloud, {})
        )
        return provider
