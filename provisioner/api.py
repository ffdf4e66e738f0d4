"""The library face: load a topology, plan, apply, destroy, status. Returns data.

import provisioner
topology = provisioner.load_topology("topology.yaml")
plan = provisioner.plan(topology)
result = provisioner.apply(topology)            # or Deployment(topology) for more control

A Deployment plans; what it reads comes from its `Reader` (`reading.py`), and a plan is carried
out by the engine (`engine.carry_out`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from . import lease, planner
from .bootstrap import render_setup_script
from .engine import carry_out
from .errors import CloudError, ConflictError, LimitError, ProvisionerError, SpecError
from .lease import Holder, LeaseStore
from .model import (
    SERVICE_PLAN,
    Action,
    ApplyResult,
    Kind,
    NetworkPlan,
    NetworkStatus,
    Observed,
    ObservedService,
    Plan,
    Stray,
    Topology,
)
from .providers import Clouds
from .providers.base import NetworkProvider
from .reading import Reader, placeholder

if TYPE_CHECKING:
    from .cloudconnexa.client import CloudConnexaSide
    from .doctor import FlowReport

Confirm = Callable[[Plan], bool]
Show = Callable[[Plan], None]  # told the plan first, before any refusal, question or change


class Declined(Exception):
    """The confirmation callback said no; nothing was changed."""


class Deployment:
    """One topology against the clouds. Observes once per plan; applies a plan change by change."""

    def __init__(self, topology: Topology, clouds: Clouds | None = None) -> None:
        self.topology = topology
        self.clouds = clouds or Clouds()
        self.reader = Reader(topology, self.clouds)
        self.service_observed: ObservedService | None = None  # the last observe's

    def provider(self, name: str) -> NetworkProvider:
        return self.reader.provider(name)

    def service(self) -> CloudConnexaSide:
        """The VPN service's half (with a service block): see `Reader.service`."""
        return self.reader.service()

    def observe(self) -> dict[str, Observed]:
        """Read every managed network, side by side, and the VPN service with them (kept in
        `service_observed`). Only read calls; raises SpecError for ids the cloud does not know,
        CloudError when a cloud cannot be read."""
        world = self.reader.observe()
        self.service_observed = world.service
        return world.networks

    def strays(self) -> tuple[Stray, ...]:
        """Connectors of ours, of networks not in the file, where the file's networks are."""
        return self.reader.strays(self.service_observed)

    # --- planning ------------------------------------------------------------------------

    def plan(
        self,
        *,
        replace_conflicting_routes: bool = False,
        prune: bool = False,
        roll: bool = False,
        rotate: Iterable[str] = (),
        retire_old: bool = False,
    ) -> Plan:
        """What apply would change. Networks of ours that left the file (connectors the
        clouds show where the file's networks are; networks of ours on the VPN service) are
        listed in notes, and with `prune` their removal is planned too, both halves.
        `rotate`: managed networks whose connectors get a new profile (see `rotate`)."""
        rotating = self._rotating(rotate)
        observed = self.observe()
        if roll:
            observed = self._with_images(observed)
        plan = planner.plan_apply(
            self.topology,
            observed,
            replace_conflicting_routes=replace_conflicting_routes,
            service=self.service_observed,
            prune=prune,
            rotate=rotating,
        )
        if retire_old:  # connectors made by hand that are taken over: stopped after
            plan = planner.with_retirement(plan, self.topology, observed, self.service_observed)
        self._check_images(plan)
        plan = self._paced(plan)
        strays = [self._stray_plan(s, prune) for s in self.strays()]
        if not strays:
            return plan
        return Plan(plan.operation, plan.networks + tuple(strays), plan.vpn_subnet)

    def _check_images(self, plan: Plan) -> None:
        """Each VM the plan launches has its image: the one the file pins, or the cloud's
        default resolved now (a read or two, only where a VM is to be made; the launch uses
        what was read). One that cannot be had is bad input at plan, nothing written."""
        launching = {
            c.network: c.connector
            for n in plan.networks
            for c in n.changes
            if c.kind is Kind.CONNECTOR and c.connector is not None
            and c.action in (Action.CREATE, Action.REPLACE)
        }  # fmt: skip
        for name, connector in launching.items():
            problem = self.provider(name).image_problem(connector)
            if problem is not None:
                raise SpecError(
                    f"networks.{name}.connector.image",
                    f"{problem}; name an image of the network's region there (connector.image), "
                    "or use a region that has the cloud's default; nothing was changed",
                )

    def _paced(self, plan: Plan) -> Plan:
        """The service half's plan with what its rate limit makes of it: the limit the reads'
        answers gave, the calls left now, and the least time its changes take."""
        if self.topology.service is None:
            return plan
        pace = self.service().api.pace
        limit, left = pace.limit, pace.left()
        networks = []
        for n in plan.networks:
            if n.network == SERVICE_PLAN and n.changes and limit is not None and left is not None:
                wait = limit.floor(len(n.changes), left)
                when = f"about {wait / 60:.0f} min at that pace" if wait >= 60 else "no wait"
                note = (
                    f"the VPN service's rate limit: {limit.text()}, {left:.0f} call(s) left now; "
                    f"{len(n.changes)} change(s), a call each: {when}"
                )
                n = replace(n, notes=(*n.notes, note))
            networks.append(n)
        return Plan(plan.operation, tuple(networks), plan.vpn_subnet)

    def _stray_plan(self, stray: Stray, prune: bool) -> NetworkPlan:
        note = (
            f"a connector of ours ({stray.describe()}) of a network that is no longer in the file: "
        )
        if not prune:
            note += "its routes, rules, identity and stored profile stay until apply --prune"
            return NetworkPlan(network=stray.network, cloud=stray.cloud, notes=(note,))
        network = placeholder(stray.network, stray.cloud, stray.location, stray.subnet, stray.vault)
        provider = self.reader.adopt(network)
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
        observed = self._with_images(self.observe())
        observed = {name: self.provider(name).watchdogs(self.provider(name).filters(obs))
                    for name, obs in observed.items()}  # fmt: skip
        return planner.network_status(self.topology, observed, self._with_policy())

    def _with_images(self, observed: dict[str, Observed]) -> dict[str, Observed]:
        """Each connector on its cloud's default image, with the newest release of it when
        that is not what it runs (a read or two per network; status and `--roll` only)."""
        out = dict(observed)
        for network in self.topology.managed:
            obs, c = observed[network.name], network.connector
            if c is None or c.image or obs.connector is None:
                continue
            newest = self.provider(network.name).newest_image(c.size)
            if newest is not None and newest[0] != obs.connector.image:
                out[network.name] = replace(obs, newer_image=newest)
        return out

    def _with_policy(self) -> ObservedService | None:
        """The VPN service as the last observe read it, with who may reach what (doctor and
        status only: plan and apply read as before)."""
        if self.service_observed is None:
            return None
        return replace(self.service_observed, policy=self.service().policy())

    def doctor(self, flow: str | None = None) -> tuple[FlowReport, ...]:
        """Every flow the topology implies (or those whose name contains `flow`), traced
        through what the clouds and the VPN service hold. Only reads."""
        from .doctor import diagnose, flow_query

        flow_query(self.topology, flow)  # a bad --flow is bad input, before any read
        observed = self.observe()
        observed = {
            # a pair's flows go through the connector its routes lead to
            name: replace(
                self._filters(name, obs),
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
            self.topology, observed, subnets, self._with_policy(), flow, bootstraps=bootstraps
        )

    def _filters(self, name: str, obs: Observed) -> Observed:
        """The layers the doctor reads; a read the credential may not make leaves the network's
        flows UNKNOWN with the reason, not the whole run failed."""
        try:
            return self.provider(name).filters(obs)
        except CloudError as e:
            return replace(obs, unread=str(e))

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

    # --- carrying out ----------------------------------------------------------------------

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
        if plan.overfull:
            raise LimitError(
                f"{len(plan.overfull)} route table(s) or group(s) would be over the cloud's "
                "limit; nothing was changed:\n"
                + "\n".join(f"  {f.summary()}" for f in plan.overfull)
            )
        for n in plan.networks:  # made here, not from the engine's threads
            if n.changes:  # (a network listed for a note alone may be no network of the file)
                self.provider(n.network)
        return ApplyResult(plan=plan, done=carry_out(plan, self.provider, self.clouds))

    def apply(
        self,
        *,
        replace_conflicting_routes: bool = False,
        confirm: Confirm | None = None,
        prune: bool = False,
        roll: bool = False,
        retire_old: bool = False,
        show: Show | None = None,
    ) -> ApplyResult:
        """`roll`: connectors on the cloud's default image take its newest release (made
        before the old ones go); without it a new release replaces nothing. `retire_old`: a
        connector made by hand that is taken over is stopped once its routes have moved.
        `show` is told the plan before anything else happens (the CLI prints it there)."""

        def again() -> Plan:
            return self.plan(
                replace_conflicting_routes=replace_conflicting_routes, prune=prune, roll=roll,
                retire_old=retire_old,
            )  # fmt: skip

        return self._run(again(), confirm, again, show)

    def rotate(
        self,
        networks: Iterable[str] = (),
        *,
        confirm: Confirm | None = None,
        show: Show | None = None,
    ) -> ApplyResult:
        """A new VPN profile for the connectors of `networks` (every managed one when empty),
        handed over without an outage: with the service block, a new connector on the service
        per connector VM, its profile stored for a VM made beside the old one (a pair: one
        member at a time), the old connector removed (its profile revoked) once the routes
        have left the old VM; with a profile file, the file's new content, the same way. The
        rest of the file is applied too, as by apply."""
        names = tuple(networks) or tuple(n.name for n in self.topology.managed)
        return self._run(self.plan(rotate=names), confirm, lambda: self.plan(rotate=names), show)

    def _rotating(self, names: Iterable[str]) -> frozenset[str]:
        managed = {n.name for n in self.topology.managed}
        for name in names:
            if name not in managed:
                raise SpecError(
                    "--network", f"{name!r} is not a managed network of the file (it has: "
                    f"{', '.join(sorted(managed)) or 'none'})"
                )  # fmt: skip
        return frozenset(names)

    def destroy(self, *, confirm: Confirm | None = None, show: Show | None = None) -> ApplyResult:
        return self._run(self.plan_destroy(), confirm, self.plan_destroy, show)

    def _run(
        self,
        plan: Plan,
        confirm: Confirm | None,
        again: Callable[[], Plan],
        show: Show | None = None,
    ) -> ApplyResult:
        """The one apply sequence (the library's and the CLI's): the plan shown, refused whole
        if it has conflicts or overfills a table, asked for, then carried out under the
        networks' leases as it is made again once they are held."""
        if show is not None:
            show(plan)
        if plan.conflicts or plan.overfull:
            return self.execute(plan)  # raises ConflictError (LimitError): nothing changed
        if plan.empty:
            return ApplyResult(plan=plan)
        if confirm is not None and not confirm(plan):
            raise Declined(f"{plan.operation} declined; nothing was changed")
        return self.execute_leased(plan, again, shown=confirm is not None)

    def execute_leased(self, plan: Plan, again: Callable[[], Plan], *, shown: bool) -> ApplyResult:
        """Carry out `plan` under the leases of the networks it changes: it is made again once
        they are held (another run may have just changed the networks) and the new one is
        carried out; where `plan` was `shown` (and confirmed), only if it is still the same."""
        with self.leases(plan):
            self.clouds.progress(
                "leases taken: reading the networks again, to change only what the plan showed"
            )
            # the same networks' `reading …` lines once more would say nothing new; the rest
            # (a wait for a rate limit, a warning) is said as it comes
            self.reader.announce = False
            try:
                fresh = again()
            finally:
                self.reader.announce = True
            if shown and _what(fresh) != _what(plan):
                raise lease.Locked(
                    f"{plan.operation}: the networks changed after this plan was made (another "
                    "run?); nothing was changed: run it again to see the new plan"
                )
            if fresh.empty and not fresh.conflicts:
                return ApplyResult(plan=fresh)
            return self.execute(fresh)

    @contextmanager
    def leases(self, plan: Plan) -> Iterator[None]:
        """Each network with changes in `plan` leased to this run, released at the end whatever
        happens. The file's first such network is taken first, alone: every run of the same
        file takes it first, so of two at once one gets it and the other stops there, never
        each holding a part; the others are then taken side by side (a lease is a read and a
        write on the network's own cloud: taken one after the other they cost four networks
        four times one), and a refusal of any releases those taken."""
        changing = {n.network for n in plan.networks if n.changes}
        managed = [n.name for n in self.topology.managed]
        for n in plan.networks:
            if n.network == SERVICE_PLAN:
                # the VPN service's half has no lease of its own (its API writes nothing
                # conditionally): a change there is made under its network's lease, and an
                # external site's under the file's first managed network's, which every run
                # of the same file takes first
                changing |= {c.label if c.label in managed else managed[0] for c in n.changes}
        order = [name for name in managed if name in changing]
        held: list[tuple[LeaseStore, Holder]] = []
        try:
            if order:
                held += self._take(order[:1], plan.operation)
                held += self._take(order[1:], plan.operation)
            yield
        finally:
            self._release(held)

    def _take(self, names: list[str], operation: str) -> list[tuple[LeaseStore, Holder]]:
        """The leases of `names`, side by side; any refused: those taken are released and the
        first refusal (in the file's order) is raised."""
        from concurrent.futures import ThreadPoolExecutor

        def take(name: str) -> tuple[LeaseStore, Holder] | None:
            provider = self.provider(name)
            store = provider.lease_store()
            if store is None:
                return None
            try:
                return store, lease.take(store, name, operation)
            except ProvisionerError:
                raise
            except Exception as e:  # noqa: BLE001 - the cloud's refusal, in one line
                raise CloudError(
                    f"network {name}: could not take its lease ({store.where}): "
                    f"{provider.error_text(e)}; nothing was changed"
                ) from None

        if not names:
            return []
        workers = max(1, min(self.clouds.networks_at_once, len(names)))
        with ThreadPoolExecutor(workers, thread_name_prefix="provision-lease") as pool:
            futures = [pool.submit(take, name) for name in names]
        taken = [f.result() for f in futures if f.exception() is None]
        held = [t for t in taken if t is not None]
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is not None:
            self._release(held)
            raise failed
        return held

    def _release(self, held: list[tuple[LeaseStore, Holder]]) -> None:
        """Remove our leases side by side; one that cannot be is said (it expires by itself)."""
        from concurrent.futures import ThreadPoolExecutor

        def release(store: LeaseStore, holder: Holder) -> None:
            try:
                lease.release(store, holder)
            except Exception as e:  # noqa: BLE001 - the run's outcome stands; say it
                self.clouds.progress(
                    f"could not remove the lease at {store.where} ({type(e).__name__}); it "
                    "expires by itself, or: provision unlock"
                )

        if not held:
            return
        workers = max(1, min(self.clouds.networks_at_once, len(held)))
        with ThreadPoolExecutor(workers, thread_name_prefix="provision-lease") as pool:
            for store, holder in reversed(held):
                pool.submit(release, store, holder)

    def unlock(self, network: str | None = None) -> dict[str, Holder | None]:
        """Remove the lease of each managed network (or `network`) whatever run holds it: what
        each held, None where there was none."""
        names = [n.name for n in self.topology.managed if network in (None, n.name)]
        if network is not None and not names:
            raise SpecError("--network", f"{network!r} is not a managed network of the topology")
        out: dict[str, Holder | None] = {}
        for name in names:
            store = self.provider(name).lease_store()
            out[name] = lease.force_release(store) if store is not None else None
        return out


def _what(plan: Plan) -> set[tuple[str, ...]]:
    """A plan's changes as a comparable set: what, where and to which target."""
    return {
        (
            n.network,
            str(c.kind),
            str(c.action),
            c.resource,
            str(c.route_table),
            str(c.destination),
            str(c.target),
        )  # fmt: skip
        for n in plan.networks
        for c in n.changes
    }


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
