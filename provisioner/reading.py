"""Reading a topology's world: the providers of its networks and its VPN service half, made once
each, what they observe side by side, and connectors of ours that the file no longer names.
Only read calls; decides nothing (the planner does) and changes nothing (the engine does)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .clouds import place_from_text
from .model import (
    SERVICE_PLAN,
    Connector,
    Location,
    Network,
    Observed,
    ObservedService,
    ProfileFile,
    Stray,
    Topology,
)
from .providers import Clouds
from .providers.base import NetworkProvider

if TYPE_CHECKING:
    from .cloudconnexa.client import CloudConnexaSide


@dataclass(frozen=True)
class World:
    """What one observe read: each managed network's state, and the VPN service's (or None
    without a service block)."""

    networks: dict[str, Observed]
    service: ObservedService | None


class Reader:
    """The topology's providers (one per network, made on first use) and its service half."""

    def __init__(self, topology: Topology, clouds: Clouds) -> None:
        self.topology = topology
        self.clouds = clouds
        self._providers: dict[str, NetworkProvider] = {}
        self._service: CloudConnexaSide | None = None
        # observe says `reading …` per network (False: a second read of the same networks,
        # under the leases, which says so once itself)
        self.announce = True

    def provider(self, name: str) -> NetworkProvider:
        if name == SERVICE_PLAN and self.topology.service is not None:
            return self.service()  # type: ignore[return-value]
        if name not in self._providers:
            self._providers[name] = self.clouds.connect(self.topology.network(name))
        return self._providers[name]

    def adopt(self, network: Network) -> NetworkProvider:
        """The provider of a network the file does not name (a stray to prune): kept, so that
        the engine finds it by name."""
        self._providers[network.name] = self.clouds.connect(network)
        return self._providers[network.name]

    def service(self) -> CloudConnexaSide:
        """The VPN service's half: its API from the environment, or from
        `clouds.options["cloudconnexa"]` (`base_url`, `client_id`, `client_secret`...)."""
        if self._service is None:
            from .cloudconnexa.client import Api, CloudConnexaSide

            options = dict(self.clouds.options.get(SERVICE_PLAN, {}))
            api = None
            if options:
                api = Api(
                    options.pop("base_url"),
                    options.pop("client_id"),
                    options.pop("client_secret"),
                    **options,
                )
            self._service = CloudConnexaSide(self.topology, api, self.clouds.progress)
        return self._service

    def observe(self) -> World:
        """Every managed network and the VPN service, side by side. Raises SpecError for ids
        the cloud does not know, CloudError when a cloud cannot be read (the first network's
        error in the file's order, when several fail)."""
        # connect every network first: an unsupported cloud is bad input, and missing service
        # credentials are said, before any call
        for n in self.topology.managed:
            self.provider(n.name)
        service = self.service() if self.topology.service is not None else None
        workers = max(1, min(self.clouds.networks_at_once, len(self.topology.managed) + 1))
        with ThreadPoolExecutor(workers, thread_name_prefix="provision-observe") as pool:
            reading = None
            say = self.clouds.progress if self.announce else (lambda _: None)
            if service is not None:
                say(f"reading the VPN service (cloudconnexa: {service.service.cloud_id})")
                reading = pool.submit(service.observe)
            futures = {}
            for n in self.topology.managed:
                where = n.location.describe() if n.location else ""
                say(f"reading {n.name} ({n.cloud}: {where})")
                futures[n.name] = pool.submit(self.provider(n.name).observe)
            observed = {name: future.result() for name, future in futures.items()}
            return World(observed, reading.result() if reading is not None else None)

    def strays(self, service: ObservedService | None) -> tuple[Stray, ...]:
        """Connectors of ours, of networks not in the file, where the file's networks are (and
        where the VPN service's inventory says a network of ours that left the file lives):
        one look per cloud scope (an AWS region...); clouds that do not look say nothing."""
        known = frozenset(n.name for n in self.topology.networks)
        scopes: dict[tuple[str, str], NetworkProvider] = {}
        for n in self.topology.managed:
            provider = self.provider(n.name)
            scopes.setdefault((n.cloud, provider.throttle_scope), provider)
        for sn in service.networks if service else ():
            place = place_from_text(sn.description) if sn.ours and sn.name not in known else None
            if place is not None:
                cloud, location = place
                provider = self.clouds.connect(placeholder(f"look-{sn.name}", cloud, location))
                scopes.setdefault((cloud, provider.throttle_scope), provider)
        # networks of other files on the VPN service's account: their connectors are theirs
        theirs = (
            frozenset(sn.name for sn in service.networks if sn.theirs) if service else frozenset()
        )
        found: dict[str, Stray] = {}
        for provider in scopes.values():
            for stray in provider.strays(known | theirs):
                found.setdefault(stray.network, stray)
        return tuple(found.values())


def placeholder(
    name: str, cloud: str, location: Location, subnet: str = "-", vault: str | None = None
) -> Network:
    """A network the file does not name, at `location`: enough to look there and destroy."""
    return Network(
        name=name,
        cloud=cloud,
        subnets=None,
        location=location,
        connector=Connector(
            subnet=subnet,
            size="-",
            nat=False,
            egress=False,
            profile=ProfileFile(Path(os.devnull), "-"),
            vault=vault,
        ),
    )
