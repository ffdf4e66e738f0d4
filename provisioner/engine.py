"""Carries out a plan: every network side by side, and within a network step by step
(`planner.stages`), the changes of one step at once. Calls that share one of a cloud's rate
limits (the provider's `throttle_scope`: for AWS an account's region) are bounded together,
whichever network makes them, so throttling stays rare; the SDKs' own retries do the rest.
Decides nothing.

A failure stops the run: no change starts after it, in any network; the changes already under
way finish. The error lists, per network, what was done and what was not."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from . import planner
from .errors import CloudError, Interrupted
from .model import Change, Plan
from .providers.base import DEFAULT_CONCURRENCY, NetworkProvider, PartlyDone


class Engine:
    def __init__(
        self,
        plan: Plan,
        provider: Callable[[str], NetworkProvider],
        *,
        concurrency: Mapping[str, int],
        networks_at_once: int,
        progress: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.provider = provider
        self.concurrency = concurrency
        self.networks_at_once = max(1, networks_at_once)
        self.progress = progress
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._started = 0
        self._done: set[int] = set()  # positions in plan.changes
        self._failures: list[tuple[int, str]] = []
        self._position = {id(c): i for i, c in enumerate(plan.changes)}

    def run(self) -> tuple[Change, ...]:
        """Carry out the plan; returns the changes made, in plan order. Raises CloudError."""
        networks = [n for n in self.plan.networks if n.changes]
        # one pool per rate limit: networks in one AWS region share it, other regions do not
        scopes = {n.network: self.provider(n.network).throttle_scope for n in networks}
        # at once per rate limit: the user's figure for the cloud, else the provider's own
        at_once = {
            scopes[n.network]: self.concurrency.get(n.cloud)
            or getattr(self.provider(n.network), "concurrency", DEFAULT_CONCURRENCY)
            for n in networks
        }
        pools = {
            scope: ThreadPoolExecutor(
                max_workers=max(1, at_once[scope]), thread_name_prefix=f"provision-{cloud}"
            )
            for scope, cloud in {(scopes[n.network], n.cloud) for n in networks}
        }
        interrupted = False
        try:
            with ThreadPoolExecutor(
                max_workers=min(self.networks_at_once, max(1, len(networks))),
                thread_name_prefix="provision-network",
            ) as by_network:
                futures: list[Future[None]] = []
                try:  # Ctrl-C may land while networks are still being handed out, too
                    for n in networks:
                        futures.append(
                            by_network.submit(self._network, n.changes, pools[scopes[n.network]])
                        )
                    interrupted = self._wait(futures)
                except KeyboardInterrupt:
                    self._stop.set()
                    wait(futures)
                    interrupted = True
        finally:
            for pool in pools.values():
                pool.shutdown(wait=True)
        return self._result(interrupted)

    def _wait(self, futures: list[Future[None]]) -> bool:
        """Wait for every network; on Ctrl-C start nothing more and let what runs finish."""
        try:
            pending = set(futures)
            while pending:  # a timeout, so that Ctrl-C is seen while waiting
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            return False
        except KeyboardInterrupt:
            self._stop.set()
            wait(futures)
            return True

    def _network(self, changes: tuple[Change, ...], pool: ThreadPoolExecutor) -> None:
        for step in planner.stages(changes):
            if self._stop.is_set():
                return
            wait([pool.submit(self._batch, batch) for batch in self._batches(step)])

    def _batches(self, step: tuple[Change, ...]) -> list[list[Change]]:
        """The step's changes, those of one container together (the provider's batch key), in
        plan order. Asked when the step starts: a container made by an earlier step has its id."""
        batches: list[list[Change]] = []
        by_key: dict[object, list[Change]] = {}
        for change in step:
            try:
                key = self.provider(change.network).batch_key(change)
            except Exception:  # e.g. its container is not there: it goes alone, and says so
                key = None
            if key is None:
                batches.append([change])
            elif key in by_key:
                by_key[key].append(change)
            else:
                by_key[key] = [change]
                batches.append(by_key[key])
        return batches

    def _batch(self, batch: list[Change]) -> None:
        if self._stop.is_set():  # queued behind a failure: not started
            return
        for change in batch:
            with self._lock:
                self._started += 1
                count = self._started
            self.progress(
                f"[{count}/{len(self.plan.changes)}] {change.network}: {change.summary()}"
            )
        positions = [self._position[id(c)] for c in batch]
        try:
            self.provider(batch[0].network).apply(batch)
        except PartlyDone as e:
            made = {id(c) for c in e.made}
            self._record_done([p for p, c in zip(positions, batch, strict=True) if id(c) in made])
            self._fail(positions[len(made)], e.message)
        except CloudError as e:
            self._fail(positions[0], e.message)
        except Exception as e:  # a bug of ours must not leave the other networks hanging
            where = traceback.extract_tb(e.__traceback__)[-1]
            at = f"{Path(where.filename).name}:{where.lineno}"
            self._fail(positions[0], f"unexpected error: {type(e).__name__}: {e} (at {at})")
        else:
            self._record_done(positions)

    def _record_done(self, positions: list[int]) -> None:
        with self._lock:
            self._done.update(positions)

    def _fail(self, position: int, message: str) -> None:
        with self._lock:
            self._failures.append((position, message))
        self._stop.set()

    def _result(self, interrupted: bool) -> tuple[Change, ...]:
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
            f"{self.plan.operation} stopped after {len(done)} of {len(changes)} changes: {what}",
            done=_summaries(done),
            not_done=_summaries(not_done),
        )


def _naming(change: Change, message: str) -> str:
    """The error, led by the change it stopped (providers' messages often lead with it)."""
    summary = change.summary()
    return message if message.startswith(summary) else f"{summary}: {message}"


def _summaries(changes: tuple[Change, ...]) -> tuple[str, ...]:
    return tuple(f"{c.network}: {c.summary()}" for c in changes)
