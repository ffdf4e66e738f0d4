"""The library face: load a topology, plan, apply, destroy, status. Returns data.

import provisioner
topology = provisioner.load_topology("topology.yaml")
plan = provisioner.plan(topology)
result = provisioner.apply(topology)            # or Deployment(topology) for more control
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import planner
from .bootstrap import render_setup_script
from .engine import Engine
from .errors import CloudError, ConflictError, SpecError
from .model import (
    Action,
    ApplyResult,
    Change,
    Connector,
    Kind,
    Location,
    Network,
    NetworkPlan,
    NetworkStatus,
    Observed,
    ObservedService,
    Plan,
    ProfileFile,
    Stray,
    Topology,
    place_from_text,
)
from .providers import Clouds
from .providers.base import NetworkProvider
from .spec import SERVICE_PLAN

if TYPE_CHECKING:
    from .doctor import FlowReport
    from .service import CloudConnexaSide

Confirm = Callable[[Plan], bool]


class Declined(Exception):
    """The confirmation callback said no; nothing was changed."""


class Deployment:
    """One topology against the clouds. Observes once per plan; applies a plan change by change."""

    def __init__(self, topology: Topology, clouds: Clouds | None = None) -> None:
        self.topology = topology
        self.clouds = clouds or Clouds()
        self._providers: dict[str, NetworkProvider] = {}
        self._service: CloudConnexaSide | None = None
        self.service_observed: ObservedService | None = None  # the last observe's

    def provider(self, name: str) -> NetworkProvider:
        if name == SERVICE_PLAN and self.topology.service is not None:
            return self.service()  # type: ignore[return-value]
        if name not in self._providers:
            self._providers[name] = self.clouds.connect(self.topology.network(name))
        return self._providers[name]

    def service(self) -> CloudConnexaSide:
        """The VPN service's half (with a service block): its API from the environment, or
        from `clouds.options["cloudconnexa"]` (`base_url`, `client_id`, `client_secret`...)."""
        if self._service is None:
            from .service import Api, CloudConnexaSide

            options = dict(self.clouds.options.get(SERVICE_PLAN, {}))
            api = None
            if options:
                api = Api(
                    options.pop("base_url"),
                    options.pop("client_id"),
                    options.pop("client_secret"),
                    **options,
                )
            self._service = CloudConnexaSide(self.topology, api)
        return self._service

    def observe(self) -> dict[str, Observed]:
        """Read every managed network, side by side, and the VPN service with them (kept in
        `service_observed`). Only read calls; raises SpecError for ids the cloud does not know,
        CloudError when a cloud cannot be read (the first network's error in the file's order,
        when several fail)."""
        # connect every network first: an unsupported cloud is bad input, and missing service
        # credentials are said, before any call
        for n in self.topology.managed:
            self.provider(n.name)
        service = self.service() if self.topology.service is not None else None
        workers = max(1, min(self.clouds.networks_at_once, len(self.topology.managed) + 1))
        with ThreadPoolExecutor(workers, thread_name_prefix="provision-observe") as pool:
            futures = {}
            if service is not None:
                assert self.topology.service is not None
                self.clouds.progress(
                    f"reading the VPN service (cloudconnexa: {self.topology.service.cloud_id})"
                )
                reading = pool.submit(service.observe)
            for n in self.topology.managed:
                where = n.location.describe() if n.location else ""
                self.clouds.progress(f"reading {n.name} ({n.cloud}: {where})")
                futures[n.name] = pool.submit(self.provider(n.name).observe)
            observed = {name: future.result() for name, future in futures.items()}
            self.service_observed = reading.result() if service is not None else None
            return observed

    def plan(self, *, replace_conflicting_routes: bool = False, prune: bool = False) -> Plan:
        """What apply would change. Networks of ours that left the file (connectors the
        clouds show where the file's networks are; networks of ours on the VPN service) are
        listed in notes, and with `prune` their removal is planned too, both halves."""
        observed = self.observe()
        plan = planner.plan_apply(
            self.topology,
            observed,
            replace_conflicting_routes=replace_conflicting_routes,
            service=self.service_observed,
            prune=prune,
        )
        strays = [self._stray_plan(s, prune) for s in self.strays()]
        if not strays:
            return plan
        return Plan(plan.operation, plan.networks + tuple(strays), plan.vpn_subnet)

    def strays(self) -> tuple[Stray, ...]:
        """Connectors of ours, of networks not in the file, where the file's networks are: one
        look per cloud scope (an AWS region...); clouds that do not look say nothing."""
        known = frozenset(n.name for n in self.topology.networks)
        scopes: dict[tuple[str, str], NetworkProvider] = {}
        for n in self.topology.managed:
            provider = self.provider(n.name)
            scopes.setdefault((n.cloud, provider.throttle_scope), provider)
        # where the VPN service's inventory says a network of ours that left the file lives
        for sn in self.service_observed.networks if self.service_observed else ():
            place = place_from_text(sn.description) if sn.ours and sn.name not in known else None
            if place is not None:
                cloud, location = place
                provider = self.clouds.connect(_placeholder(f"look-{sn.name}", cloud, location))
                scopes.setdefault((cloud, provider.throttle_scope), provider)
        found: dict[str, Stray] = {}
        for provider in scopes.values():
            for stray in provider.strays(known):
                found.setdefault(stray.network, stray)
        return tuple(found.values())

    def _stray_plan(self, stray: Stray, prune: bool) -> NetworkPlan:
        note = (
            f"a connector of ours ({stray.describe()}) of a network that is no longer in the file: "
        )
        if not prune:
            note += "its routes, rules, identity and stored profile stay until apply --prune"
            return NetworkPlan(network=stray.network, cloud=stray.cloud, notes=(note,))
        network = _placeholder(
            stray.network, stray.cloud, stray.location, stray.subnet, stray.vault
        )
        provider = self.clouds.connect(network)
        self._providers[stray.network] = provider
        destroy = planner.plan_destroy(
            Topology(networks=(network,)), {network.name: provider.observe()}
        )
        (removal,) = destroy.networks
        return NetworkPlan(
            network=stray.network,
            cloud=stray.cloud,
            changes=removal.changes,
            notes=(note + "removed (--prune)",),
        )

    def plan_destroy(self) -> Plan:
        observed = self.observe()
        return planner.plan_destroy(self.topology, observed, self.service_observed)

    def status(self) -> tuple[NetworkStatus, ...]:
        """Per network, as the doctor would judge it: the app groups' coverage through the
        layers the clouds read at the groups' hosts (one or two reads more per network)."""
        observed = self.observe()
        observed = {name: self.provider(name).filters(obs) for name, obs in observed.items()}
        return planner.network_status(self.topology, observed, self.service_observed)

    def doctor(self, flow: str | None = None) -> tuple[FlowReport, ...]:
        """Every flow the topology implies (or those whose name contains `flow`), traced
        through what the clouds and the VPN service hold. Only reads."""
        from .doctor import diagnose, flow_query

        flow_query(self.topology, flow)  # a bad --flow is bad input, before any read
        observed = self.observe()
        observed = {
            # a pair's flows go through the connector its routes lead to
            name: replace(
                self.provider(name).filters(obs),
                connector=planner.active_connector(self.topology.network(name), obs),
            )
            for name, obs in observed.items()
        }
        subnets = planner.local_subnets(self.topology, observed)
        bootstraps = {
            n.name: planner.connector_fingerprint(n, subnets[n.name], self.topology.vpn_subnet)
            for n in self.topology.managed
        }
        return diagnose(
            self.topology, observed, subnets, self.service_observed, flow, bootstraps=bootstraps
        )

    def bootstrap(self, name: str, *, script_only: bool = False) -> str:
        """The connector's user-data for network `name` (or its setup script alone). Reads the
        cloud only when the network's subnets are not written in the file."""
        try:
            network = self.topology.network(name)
        except KeyError:
            raise SpecError("--network", f"{name!r} is not a network of the topology") from None
        if not network.managed:
            raise SpecError("--network", f"{name!r} is external: it has no connector")
        observed = (
            {} if all(n.subnets is not None for n in self.topology.networks) else self.observe()
        )
        local = planner.local_subnets(self.topology, observed)[name]
        connector = planner.desired_connector(network, local, self.topology.vpn_subnet)
        if script_only:
            return render_setup_script(connector)
        return self.provider(name).user_data(connector)

    def execute(self, plan: Plan) -> ApplyResult:
        """Carry out `plan`: networks side by side, each network's steps in order (see
        `engine`). Refuses a plan with unresolved conflicts before any change. On failure
        raises CloudError listing what was done and what was not."""
        if plan.conflicts:
            raise ConflictError(
                f"{len(plan.conflicts)} route(s) already exist with another target; nothing was "
                "changed. Remove them, or pass --replace-conflicting-routes "
                "(replace_conflicting_routes=True):\n"
                + "\n".join(f"  {c.network}: {c.summary()}" for c in plan.conflicts)
            )
        for n in plan.networks:  # made here, not from the engine's threads
            self.provider(n.network)
        done: list[Change] = []
        phases = _phases(plan)
        for i, phase in enumerate(phases):
            engine = Engine(
                phase,
                self.provider,
                concurrency=self.clouds.concurrency,
                networks_at_once=self.clouds.networks_at_once,
                progress=self.clouds.progress,
            )
            try:
                done += engine.run()
            except CloudError as e:
                later = tuple(
                    f"{c.network}: {c.summary()}" for p in phases[i + 1 :] for c in p.changes
                )
                before = tuple(f"{c.network}: {c.summary()}" for c in done)
                raise type(e)(
                    e.message, done=before + e.done, not_done=e.not_done + later
                ) from None
        return ApplyResult(plan=plan, done=tuple(done))

    def apply(
        self,
        *,
        replace_conflicting_routes: bool = False,
        confirm: Confirm | None = None,
        prune: bool = False,
    ) -> ApplyResult:
        plan = self.plan(replace_conflicting_routes=replace_conflicting_routes, prune=prune)
        return self._run(plan, confirm)

    def destroy(self, *, confirm: Confirm | None = None) -> ApplyResult:
        return self._run(self.plan_destroy(), confirm)

    def _run(self, plan: Plan, confirm: Confirm | None) -> ApplyResult:
        if plan.conflicts:
            return self.execute(plan)  # raises ConflictError: nothing changed
        if plan.empty:
            return ApplyResult(plan=plan)
        if confirm is not None and not confirm(plan):
            raise Declined(f"{plan.operation} declined; nothing was changed")
        return self.execute(plan)


def _phases(plan: Plan) -> list[Plan]:
    """The VPN service's changes before the clouds' on apply (a connector's profile is made
    there before a cloud stores it), after them on destroy (the VMs go first)."""
    clouds = tuple(n for n in plan.networks if n.network != SERVICE_PLAN and n.changes)
    service = next((n for n in plan.networks if n.network == SERVICE_PLAN), None)
    if service is None:
        order: tuple[tuple[NetworkPlan, ...], ...] = (clouds,)
    elif plan.operation == "destroy":
        order = (clouds, (service,))
    else:  # apply: the service first, but a pruned network's removal after its cloud half
        pruned = tuple(c for c in service.changes if _prunes(c))
        first = replace(service, changes=tuple(c for c in service.changes if not _prunes(c)))
        order = ((first,), clouds, (replace(service, changes=pruned),))
    return [
        Plan(operation=plan.operation, networks=tuple(n for n in networks if n.changes),
             vpn_subnet=plan.vpn_subnet)
        for networks in order
        if any(n.changes for n in networks)
    ]  # fmt: skip


def _placeholder(
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


def _prunes(change: Change) -> bool:
    return change.kind is Kind.SERVICE_NETWORK and change.action is Action.DELETE


# --- one-call functions ------------------------------------------------------------------


def plan(
    topology: Topology, *, clouds: Clouds | None = None, replace_conflicting_routes: bool = False
) -> Plan:
    """What `apply` would change; reads the clouds, changes nothing."""
    return Deployment(topology, clouds).plan(replace_conflicting_routes=replace_conflicting_routes)


def apply(
    topology: Topology,
    *,
    clouds: Clouds | None = None,
    replace_conflicting_routes: bool = False,
    confirm: Confirm | None = None,
    prune: bool = False,
) -> ApplyResult:
    """Make every managed network route through its connector (with a service block, the VPN
    service route to them); `prune`: also remove networks of ours that left the file."""
    return Deployment(topology, clouds).apply(
        replace_conflicting_routes=replace_conflicting_routes, confirm=confirm, prune=prune
    )


def destroy(
    topology: Topology, *, clouds: Clouds | None = None, confirm: Confirm | None = None
) -> ApplyResult:
    """Remove what apply created, and nothing else."""
    return Deployment(topology, clouds).destroy(confirm=confirm)


def status(topology: Topology, *, clouds: Clouds | None = None) -> tuple[NetworkStatus, ...]:
    """Per network: the connector, its forwarding flag, and each selected route table's entries."""
    return Deployment(topology, clouds).status()
