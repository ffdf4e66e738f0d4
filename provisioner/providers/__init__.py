"""Cloud providers, by the cloud's name: one package per cloud, each registering its
description (`clouds.Cloud`) in its `__init__`. A provider's modules are imported only when a
network of that cloud is touched, so `provision --help` never pays for a cloud SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import clouds
from ..errors import UnsupportedCloudError
from ..model import Network
from ..progress import Meter
from .base import NetworkProvider, Progress


def _quiet(_: str) -> None:
    pass


@dataclass
class Clouds:
    """How to reach the clouds: per-cloud options (an AWS `boto3.Session`, ...), where to
    report progress (`progress`: messages; `meter`: each change as it starts and ends, see
    `provisioner.progress`), and how much to do at once: `concurrency` bounds the calls in
    flight to one cloud (default: the provider's own `concurrency`), `networks_at_once` the
    networks worked on side by side. `concurrency={cloud: 1}, networks_at_once=1` runs one change at a
    time. The default reaches each cloud through its SDK's own credential chain."""

    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: Progress = _quiet
    # told as a run's changes start and end (progress.LiveLine on a terminal); None: a line
    # per change to `progress`
    meter: Meter | None = None
    concurrency: dict[str, int] = field(default_factory=dict)
    networks_at_once: int = 8

    def connect(self, network: Network) -> NetworkProvider:
        described = clouds.get(network.cloud)
        if described is None:
            raise UnsupportedCloudError(
                f"networks.{network.name}.cloud",
                f"{network.cloud!r} is not supported by this version yet (supported: "
                f"{', '.join(sorted(clouds.known()))})",
            )
        cls = clouds.load(described.provider)

        def progress(message: str) -> None:  # tagged: networks report side by side
            self.progress(f"{network.name}: {message}")

        provider: NetworkProvider = cls(
            network, progress=progress, **self.options.get(network.cloud, {})
        )
        return provider
