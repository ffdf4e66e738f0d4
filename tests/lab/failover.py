"""A connector pair's failover, run on the lab's pair (`pair.py`): the active connector is
killed (the VM gone) or cut off from the VPN service (the VM up, its tunnel down), `runs` times
each; each time the standby must take over, and keep the traffic when the failed one returns.
One piece of code for both users: the test (`tests/test_lab_failover.py`, one run of each
failure, asserting the behaviour) and the bench (`bench/failover.py`, ten runs of each, printing
the figures)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .pair import Member, PairWorld
from .world import HQ

MODES = ("VM killed", "tunnel cut")
PROBED = ("azure", "gcp")  # where a load balancer's probe follows the pair's agreement


@dataclass
class Failovers:
    """What `runs` failures of each mode showed."""

    cloud: str
    interval: float  # the watchdog's
    fails: int
    probe: float  # the balancer's probe interval in the lab's cloud (Azure, GCP)
    seconds: dict[str, list[float]] = field(default_factory=dict)  # mode -> failure to answer
    taken_over: int = 0  # runs where the standby was the active one after the failure
    stayed: int = 0  # runs where it still was after the failed one came back
    takeovers: int = 0  # "took over" in the watchdogs' logs, during the runs
    lost: int = 0  # packets lost after the switch, until the failed one came back
    returning: int = 0  # packets lost while it came back
    asymmetric: int = 0  # runs whose questions went in through the standby

    @property
    def runs(self) -> int:
        return sum(len(v) for v in self.seconds.values())

    def figures(self) -> dict[str, str]:
        """The `figure:` lines, by name."""
        out = {}
        for mode, values in self.seconds.items():
            out[f"failover ({self.cloud}), {mode}"] = (
                f"median {statistics.median(values):.1f}s, worst {max(values):.1f}s over "
                f"{len(values)} runs (watchdog every {self.interval:g}s, down after {self.fails}"
                + (f", the balancer's probe every {self.probe:g}s)" if self.cloud in PROBED
                   else ")")
            )  # fmt: skip
        out[f"failover ({self.cloud}), packets lost after the switch"] = (
            f"{self.lost} ({self.asymmetric} runs answered through the other connector); while "
            f"the failed one came back: {self.returning}"
        )
        return out

    def runs_text(self) -> list[str]:
        """Each mode's runs, one line each: the figure and every value."""
        return [
            f"failover ({self.cloud}), {mode}: "
            f"{self.figures()[f'failover ({self.cloud}), {mode}']}: "
            + ", ".join(f"{v:.1f}" for v in values)
            for mode, values in self.seconds.items()
        ]


def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds:g}s: {what}")


def answered_after(pair: PairWorld, moment: float) -> float | None:
    """When the first packet sent after `moment` was answered."""
    return min((got for _, sent, got in pair.answers() if sent > moment), default=None)


def service_sends_to(pair: PairWorld) -> Member:
    """The connector the VPN service sends HQ's traffic to (its lowest-metric route)."""
    out = pair.world.lab.run(pair.world.vpn, "ip", "route", "get", HQ.server_ip).stdout
    return next(m for m in pair.members.values() if f"dev {m.device} " in out)


def steady(pair: PairWorld) -> None:
    """Both connectors healthy, and Bob's flow answered."""
    for m in pair.members.values():
        until(lambda m=m: pair.healthy(m), 60, f"connector {m.name} healthy")
    until(lambda: answered_after(pair, time.time() - 0.5) is not None, 30, "the flow answered")


def takeovers(pair: PairWorld) -> int:
    return sum(
        Path(pair.dir / f"watchdog-{m}.log").read_text().count("took over") for m in pair.members
    )


def lost_in(pair: PairWorld, windows: list[tuple[float, float]]) -> int:
    """Packets sent within the windows (first answer to last sent) that got no answer."""
    answers = pair.answers()
    answered = {seq for seq, _, _ in answers}
    lost = 0
    for start, end in windows:
        window = [seq for seq, sent, got in answers if got >= start and sent < end]
        if window:
            lost += len(set(range(min(window), max(window) + 1)) - answered)
    return lost


def fail_over(pair: PairWorld, runs: int, *, probe: float) -> Failovers:
    """`runs` failures of each mode, one after the other on the one pair: each time the active
    connector fails, the time until Bob's flow is answered again is taken, then the failed one
    comes back and must stay standby for two detections' time."""
    modes: dict[str, tuple[Callable[[Member], None], Callable[[Member], None]]] = {
        "VM killed": (pair.kill_vm, pair.revive_vm),
        "tunnel cut": (pair.cut_tunnel, pair.mend_tunnel),
    }
    result = Failovers(pair.cloud, pair.interval, pair.fails, probe, {m: [] for m in modes})
    failures: list[float] = []
    backs: list[float] = []
    mends: list[float] = []
    steady(pair)
    before = takeovers(pair)  # (a pair that agrees among itself has one claim to begin with)
    for mode, (fail, mend) in modes.items():
        for _ in range(runs):
            steady(pair)
            active = pair.active()
            standby = next(m for m in pair.members.values() if m is not active)
            result.asymmetric += service_sends_to(pair) is not active  # answers go the other way
            fail(active)
            failed_at = time.time()  # once the failure is complete: nothing sent after gets by
            failures.append(failed_at)
            until(lambda f=failed_at: answered_after(pair, f) is not None, 60, "failover")
            back = answered_after(pair, failed_at)
            assert back is not None
            backs.append(back)
            result.seconds[mode].append(back - failed_at)
            result.taken_over += pair.active() is standby
            time.sleep(1)  # the flow through the standby alone, for a while
            mends.append(time.time())
            mend(active)
            until(lambda a=active: pair.healthy(a), 60, f"{active.name} back")
            time.sleep(2 * pair.interval * pair.fails)  # a healthy standby keeps the routes
            result.stayed += pair.active() is standby
    # after the switch: from the first answer to the moment the failed connector comes back
    result.lost = lost_in(pair, list(zip(backs, mends, strict=True)))
    # while it comes back: the service sends to it again once its tunnel is up (the lab's
    # service as soon as the connector authenticates: a packet may meet a tunnel not yet
    # addressed), and the routes stay where they are
    ends = [f - 0.3 for f in failures[1:]] + [time.time() - 1]  # the next failure's own loss aside
    result.returning = lost_in(pair, list(zip(mends, ends, strict=True)))
    result.takeovers = takeovers(pair) - before
    return result
