"""Carries out a plan: every network side by side, and within a network step by step
(`steps.stages`), the changes of one step at once. Calls that share one of a cloud's rate
limits (the provider's `throttle_scope`: for AWS an account's region) are bounded together,
whichever network makes them, so throttling stays rare; the SDKs' own retries do the rest.
Decides nothing.

A failure stops the run: no change starts after it, in any network; the changes already under
way finish. The error lists, per network, what was done and what was not.

`carry_out` runs a plan's phases in order (`phases`: the VPN service's half before or after
the clouds'); within a phase, `Engine` schedules (which change runs when, on which pool) and
`Ledger` keeps the account (progress lines, what was done, what failed, and the error that says
so)."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

from . import steps
from .errors import CloudError, Interrupted
from .model import SERVICE_PLAN, Action, Change, Kind, NetworkPlan, Plan
from .progress import Lines, Meter
from .providers import Clouds
from .providers.base import DEFAULT_CONCURRENCY, NetworkProvider, PartlyDone


def carry_out(
    plan: Plan, provider: Callable[[str], NetworkProvider], clouds: Clouds
) -> tuple[Change, ...]:
    """Carry out `plan` phase by phase (`phases`), each phase's networks side by side; returns
    the changes made. On failure raises CloudError listing what was done and what was not, the
    later phases' changes among the latter."""
    done: list[Change] = []
    steps = phases(plan)
    total = sum(len(p.changes) for p in steps)
    since = time.monotonic()  # the progress lines say how long the run has taken
    meter = clouds.meter or Lines(clouds.progress)
    for i, phase in enumerate(steps):
        engine = Engine(
            phase,
            provider,
            concurrency=clouds.concurrency,
            networks_at_once=clouds.networks_at_once,
            ledger=Ledger(phase, meter, before=len(done), total=total, since=since),
        )
        try:
            done += engine.run()
        except CloudError as e:
            later = _summaries(tuple(c for p in steps[i + 1 :] for c in p.changes))
            before = _summaries(tuple(done))
            raise type(e)(e.message, done=before + e.done, not_done=e.not_done + later) from None
    return tuple(done)


def phases(plan: Plan) -> list[Plan]:
    """The VPN service's changes before the clouds' on apply (a connector's profile is made
    there before a cloud stores it), but its removals after them (`_after_clouds`); all after
    them on destroy (the VMs go first)."""
    clouds = tuple(n for n in plan.networks if n.network != SERVICE_PLAN and n.changes)
    service = next((n for n in plan.networks if n.network == SERVICE_PLAN), None)
    if service is None:
        order: tuple[tuple[NetworkPlan, ...], ...] = (clouds,)
    elif plan.operation == "destroy":
        order = (clouds, (service,))
    else:  # apply: the service first, but what it removes after the clouds' changes
        late = tuple(c for c in service.changes if _after_clouds(c))
        first = replace(service, changes=tuple(c for c in service.changes if not _after_clouds(c)))
        order = ((first,), clouds, (replace(service, changes=late),))
    return [
        Plan(operation=plan.operation, networks=tuple(n for n in networks if n.changes),
             vpn_subnet=plan.vpn_subnet)
        for networks in order
        if any(n.changes for n in networks)
    ]  # fmt: skip


def _after_clouds(change: Change) -> bool:
    """A pruned network, or a connector of ours removed: the VMs that dial in with their
    profiles are gone or replaced first (a connector made beside stays up until then)."""
    return change.action is Action.DELETE and change.kind in (
        Kind.SERVICE_NETWORK,
        Kind.SERVICE_CONNECTOR,
    )


class Ledger:
    """The account of one run: a progress line per change as it starts, the changes done, the
    failures; `result()` returns what was done or raises the error that lists both."""

    def __init__(self, plan: Plan, meter: Meter, *, before: int, total: int, since: float) -> None:
        """`plan`: one phase of a run; `before`: the changes the run's earlier phases made,
        `total`: the run's changes in all (the meter and the error count over both halves);
        `since`: when the run started (time.monotonic); `meter`: told as changes start and
        end."""
        self.plan = plan
        self.meter = meter
        self.before, self.total, self.since = before, total, since
        self.stop = threading.Event()  # set by the first failure: nothing starts after it
        self._lock = threading.Lock()
        self._started = 0
        self._done: set[int] = set()  # positions in plan.changes
        self._failures: list[tuple[int, str]] = []
        self._position = {id(c): i for i, c in enumerate(plan.changes)}

    def starting(self, batch: list[Change]) -> None:
        for change in batch:
            with self._lock:
                self._started += 1
                count = self._started
            took = time.monotonic() - self.since
            what = f"{change.network}: {change.summary()}"
            self.meter.started(what, self.before + count, self.total, took)

    def done(self, changes: list[Change]) -> None:
        with self._lock:
            self._done.update(self._position[id(c)] for c in changes)
            count = len(self._done)
        self.meter.finished(self.before + count, self.total, time.monotonic() - self.since)

    def failed(self, change: Change, message: str) -> None:
        with self._lock:
            self._failures.append((self._position[id(change)], message))
        self.stop.set()

    def result(self, interrupted: bool) -> tuple[Change, ...]:
        changes = self.plan.changes
        done = tuple(c for i, c in enumerate(changes) if i in self._done)
        if not self._failures and not interrupted:
            return done
        if interrupted:
            what = "interrupted"
        else:
            what = "; ".join(
                f"{changes[i].network}: {_naming(changes[i], message)}"
                for i, message in sorted(self._failures)
            )
        not_done = tuple(c for i, c in enumerate(changes) if i not in self._done)
        raise (Interrupted if interrupted else CloudError)(
            f"{self.plan.operation} stopped after {self.before + len(done)} of {self.total} "
            f"changes: {what}",
            done=_summaries(done),
            not_done=_summaries(not_done),
        )


class Engine:
    def __init__(
        self,
        plan: Plan,
        provider: Callable[[str], NetworkProvider],
        *,
        concurrency: Mapping[str, int],
        networks_at_once: int,
        ledger: Ledger,
    ) -> None:
        self.plan = plan
        self.provider = provider
        self.concurrency = concurrency
        self.networks_at_once = max(1, networks_at_once)
        self.ledger = ledger

    def run(self) -> tuple[Change, ...]:
        """Carry out the plan; returns the changes made, in plan order. Raises CloudError."""
        networks = [n for n in self.plan.networks if n.changes]
        pools = self._pools(networks)
        interrupted = False
        try:
            with ThreadPoolExecutor(
                max_workers=min(self.networks_at_once, max(1, len(networks))),
                thread_name_prefix="provision-network",
            ) as by_network:
                futures: list[Future[None]] = []
                try:  # Ctrl-C may land while networks are still being handed out, too
                    for n in networks:
                        pool = pools[n.network]
                        futures.append(by_network.submit(self._network, n.changes, pool))
                    interrupted = self._wait(futures)
                except KeyboardInterrupt:
                    self.ledger.stop.set()
                    wait(futures)
                    interrupted = True
        finally:
            for pool in {id(p): p for p in pools.values()}.values():
                pool.shutdown(wait=True)
        return self.ledger.result(interrupted)

    def _pools(self, networks: list[NetworkPlan]) -> dict[str, ThreadPoolExecutor]:
        """Each network's pool: one per rate limit (networks in one AWS region share it, other
        regions do not), as wide as the user's figure for the cloud, else the provider's own."""
        by_scope: dict[str, ThreadPoolExecutor] = {}
        out = {}
        for n in networks:
            provider = self.provider(n.network)
            scope = provider.throttle_scope
            if scope not in by_scope:
                own: int = getattr(provider, "concurrency", DEFAULT_CONCURRENCY)
                at_once = self.concurrency.get(n.cloud) or own
                by_scope[scope] = ThreadPoolExecutor(
                    max_workers=max(1, at_once), thread_name_prefix=f"provision-{n.cloud}"
                )
            out[n.network] = by_scope[scope]
        return out

    def _wait(self, futures: list[Future[None]]) -> bool:
        """Wait for every network; on Ctrl-C start nothing more and let what runs finish."""
        try:
            pending = set(futures)
            while pending:  # a timeout, so that Ctrl-C is seen while waiting
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            return False
        except KeyboardInterrupt:
            self.ledger.stop.set()
            wait(futures)
            return True

    def _network(self, changes: tuple[Change, ...], pool: ThreadPoolExecutor) -> None:
        for step in steps.stages(changes):
            if self.ledger.stop.is_set():
                return
            wait([pool.submit(self._batch, batch) for batch in batches(step, self._batch_key)])

    def _batch_key(self, change: Change) -> Hashable | None:
        try:
            return self.provider(change.network).batch_key(change)
        except Exception:  # e.g. its container is not there: it goes alone, and says so
            return None

    def _batch(self, batch: list[Change]) -> None:
        if self.ledger.stop.is_set():  # queued behind a failure: not started
            return
        self.ledger.starting(batch)
        try:
            self.provider(batch[0].network).apply(batch)
        except PartlyDone as e:
            made = {id(c) for c in e.made}
            self.ledger.done([c for c in batch if id(c) in made])
            self.ledger.failed(batch[len(made)], e.message)
        except CloudError as e:
            self.ledger.failed(batch[0], e.message)
        except Exception as e:  # a bug of ours must not leave the other networks hanging
            where = traceback.extract_tb(e.__traceback__)[-1]
            at = f"{Path(where.filename).name}:{where.lineno}"
            self.ledger.failed(batch[0], f"unexpected error: {type(e).__name__}: {e} (at {at})")
        else:
            self.ledger.done(batch)


def batches(
    step: tuple[Change, ...], key_of: Callable[[Change], Hashable | None]
) -> list[list[Change]]:
    """The step's changes, those of one container together (the provider's batch key), in
    plan order. Asked when the step starts: a container made by an earlier step has its id."""
    out: list[list[Change]] = []
    by_key: dict[Hashable, list[Change]] = {}
    for change in step:
        key = key_of(change)
        if key is None:
            out.append([change])
        elif key in by_key:
            by_key[key].append(change)
        else:
            by_key[key] = [change]
            out.append(by_key[key])
    return out


def _naming(change: Change, message: str) -> str:
    """The error, led by the change it stopped (providers' messages often lead with it)."""
    summary = change.summary()
    return message if message.startswith(summary) else f"{summary}: {message}"


def _summaries(changes: tuple[Change, ...]) -> tuple[str, ...]:
    return tuple(f"{c.network}: {c.summary()}" for c in changes)
