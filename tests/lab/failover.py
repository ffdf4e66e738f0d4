"""A connector pair's failure matrix, run on the lab's pair (`pair.py`): each member, the one the
cloud's routes (or front) lead to and the other one, in turn

- **VM killed**: every process gone, its interface down;
- **tunnel cut**: the VM up, the VPN service unreachable from it;
- **network side broken**: the VM and its tunnel up, but it forwards nothing (IPv4 forwarding
  off): its own watchdog must close its tunnel so the service stops sending to it;
- **replaced (planned)**: a planned change, as apply makes it: the VM shut down gracefully
  (what EC2's and Compute's deletes do, and apply does on Azure and OCI before it deletes),
  whose watchdog drains it first (the other takes the routes or front, then its tunnel closes
  with an exit notice), then the VM gone; a new one with a new identity (a new certificate: a
  new connector) comes up in its place.

Each failure is measured in two halves: **the cloud's** (from the failure until the routes or
front lead to a living member: the watchdogs' and the cloud's part, ours; 0 when they never
led to the failed one) and **the service's** (until the VPN service stops sending to the
failed member: its session ended, by its detection time or by the member's exit notice; the
service's part). Then: when every flow (UDP and TCP, from both VPN clients) was answered again,
what was lost after both halves were whole (must be nothing), and while the failed member came
back. A planned change must lose nothing at all.

One piece of code for both users: the test (`tests/test_lab_failover.py`, each failure once per
cloud, asserting the behaviour) and the bench (`bench/failover.py`, ten runs of each, printing
the figures)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .pair import Member, PairWorld

MODES = ("VM killed", "tunnel cut", "network side broken", "replaced (planned)")
ROLES = ("route target", "other member")
PROBED = ("azure", "gcp")  # where a load balancer's probe follows the pair's agreement


@dataclass
class Run:
    """One failure of one member."""

    mode: str
    role: str
    cloud_half: float | None  # seconds; None: the routes never came to a living member
    service_half: float | None  # None: the service never stopped sending to it
    recovered: float | None  # every flow answered again
    lost_after: int  # UDP packets lost after both halves were whole, until it came back
    lost_returning: int  # while it came back (the service may send to a session it has just
    # opened before the connector's OpenVPN has its tunnel device: a packet or two)
    lost_total: int  # from the failure (the drain's start) until it was back
    lost_failing: int  # from the failure (the drain's start) until it came back
    stall: float  # the longest TCP answer gap over the run
    resets: int  # TCP connections the network reset
    stayed: bool  # the survivor still held the routes after the failed one came back
    carried: tuple[int, int]  # flows seen through each member (a, b) before the failure


@dataclass
class Matrix:
    cloud: str
    interval: float  # the watchdog's
    fails: int
    probe: float  # the balancer's probe interval in the lab's cloud (Azure, GCP)
    detection: float  # the service's
    nat: str
    runs: list[Run] = field(default_factory=list)

    def of(self, mode: str, role: str) -> list[Run]:
        return [r for r in self.runs if r.mode == mode and r.role == role]

    def rows(self) -> list[dict[str, str]]:
        """One row per failure: the figures over its runs."""
        out = []
        for mode in MODES:
            for role in ROLES:
                runs = self.of(mode, role)
                if runs:
                    out.append({
                        "cloud": self.cloud, "nat": self.nat, "failure": mode, "member": role,
                        "runs": str(len(runs)),
                        "cloud half": _spread([r.cloud_half for r in runs]),
                        "service half": _spread([r.service_half for r in runs]),
                        "all flows answered": _spread([r.recovered for r in runs]),
                        "lost after both whole": _total([r.lost_after for r in runs]),
                        "lost while it came back": _total([r.lost_returning for r in runs]),
                        "lost in all": _total([r.lost_total for r in runs]),
                        "TCP stall": _spread([r.stall for r in runs]),
                        "TCP resets": str(sum(r.resets for r in runs)),
                    })  # fmt: skip
        return out

    def setting(self) -> str:
        probe = f", the balancer's probe every {self.probe:g}s" if self.cloud in PROBED else ""
        return (
            f"watchdog every {self.interval:g}s, down after {self.fails}{probe}; the service "
            f"drops a silent connector after {self.detection:g}s"
        )


def _spread(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "never"
    text = f"median {statistics.median(known):.1f}s, worst {max(known):.1f}s"
    return text + (f" ({len(values) - len(known)} never)" if len(known) < len(values) else "")


def _total(values: list[int]) -> str:
    return f"{sum(values)} (worst run {max(values)})" if values else "-"


def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds:g}s: {what}")


# --- reading the flows' answers ---------------------------------------------------------------


def _sent_times(pair: PairWorld, since: float = 0.0) -> dict[str, dict[int, float]]:
    """Per client (bob, carol), when each sequence number was sent (of those answered from
    `since` on): every flow of a client sends seq k at the same moment; a k no flow got
    answered is placed between its neighbours."""
    seen: dict[str, dict[int, float]] = {}
    for flow, seq, sent, _ in pair.answers(since):
        seen.setdefault(flow.split("-")[0], {})[seq] = sent
    out: dict[str, dict[int, float]] = {}
    for client, known in seen.items():
        seqs = sorted(known)
        full = dict(known)
        for lo, hi in zip(seqs, seqs[1:], strict=False):
            for k in range(lo + 1, hi):
                full[k] = known[lo] + (known[hi] - known[lo]) * (k - lo) / (hi - lo)
        out[client] = full
    return out


def lost_in(pair: PairWorld, start: float, end: float) -> int:
    """UDP packets sent in [start, end) that got no answer, over every UDP flow."""
    since = start - 60  # (an answer comes after its question: earlier ones cannot count)
    sent = _sent_times(pair, since)
    answered: dict[str, set[int]] = {}
    for flow, seq, _, _ in pair.answers(since):
        answered.setdefault(flow, set()).add(seq)
    lost = 0
    for client, times in sent.items():
        window = {k for k, t in times.items() if start <= t < end}
        for i in range(pair.udp_flows):
            lost += len(window - answered.get(f"{client}-u{i}", set()))
    return lost


def all_answered_after(pair: PairWorld, moment: float) -> float | None:
    """When the last flow got its first answer to something sent after `moment`; None while a
    flow has none."""
    first: dict[str, float] = {}
    for flow, _, sent, got in pair.answers(moment):
        if sent > moment and (flow not in first or got < first[flow]):
            first[flow] = got
    every = 2 * (pair.udp_flows + pair.tcp_flows) - len(set(pair.resets()))
    return max(first.values()) if len(first) >= every else None


def tcp_stall(pair: PairWorld, start: float, end: float) -> float:
    """The longest time a TCP flow went without an answer within [start, end)."""
    got: dict[str, list[float]] = {}
    for flow, _, _, at in pair.answers(start):
        if "-t" in flow and at < end:
            got.setdefault(flow, []).append(at)
    gaps = [max((b - a for a, b in zip(v, v[1:], strict=False)), default=0.0)
            for v in (sorted(x) for x in got.values())]  # fmt: skip
    return max(gaps, default=end - start)


def carried(pair: PairWorld) -> tuple[int, int]:
    """How many of the clients' flows each member forwards now (its tracked connections from
    the VPN's range to the app's ports)."""
    out = []
    for m in pair.members.values():
        listed = pair.world.lab.run(m.site.connector, "conntrack", "-L", "-s", "100.96.0.0/11",
                                    check=False).stdout  # fmt: skip
        out.append(sum(1 for line in listed.splitlines()
                       if "dport=7007" in line or "dport=7008" in line))  # fmt: skip
    return out[0], out[1]


def steady(pair: PairWorld) -> None:
    """Both members healthy and connected to the service, every flow answered."""
    for m in pair.members.values():
        until(lambda m=m: pair.healthy(m), 60, f"connector {m.name} healthy")
    try:
        until(lambda: pair.connected() == set(pair.members), 30, "the service sends to both")
    except AssertionError as e:
        route = pair.world.lab.run(pair.world.vpn, "ip", "route", check=False).stdout
        raise AssertionError(f"{e}: its routes:\n{route}\nits sessions: "
                             f"{pair.service_events()}") from None  # fmt: skip
    until(lambda: all_answered_after(pair, time.time() - 1.0) is not None, 30, "every flow")


# --- one failure --------------------------------------------------------------------------------


def _failures(pair: PairWorld) -> dict[str, tuple[Callable[[Member], None], Callable[[Member], None]]]:  # fmt: skip
    return {
        "VM killed": (pair.kill_vm, pair.revive_vm),
        "tunnel cut": (pair.cut_tunnel, pair.mend_tunnel),
        "network side broken": (pair.break_forwarding, pair.mend_forwarding),
        "replaced (planned)": (pair.shut_down, lambda m: pair.revive_vm(m, new_identity=True)),
    }  # fmt: skip


def fail_once(pair: PairWorld, mode: str, role: str) -> Run:
    fail, mend = _failures(pair)[mode]
    steady(pair)
    target = pair.active()
    victim = target if role == "route target" else next(
        m for m in pair.members.values() if m is not target)  # fmt: skip
    survivor = next(m for m in pair.members.values() if m is not victim)
    seen_before, resets = carried(pair), len(pair.resets())
    t0 = time.time()
    fail(victim)
    limit = 60 + 3 * pair.detection
    until(lambda: all_answered_after(pair, t0) is not None, limit, f"{mode}: every flow again")
    recovered = all_answered_after(pair, t0)
    until(lambda: _left(pair, victim, t0) is not None, limit, f"{mode}: the service left it")
    service_half = _left(pair, victim, t0)
    if victim is target:  # (either half may heal first: both are waited for)
        until(lambda: _moved(pair, survivor, t0) is not None, limit, f"{mode}: the routes moved")
    cloud_half = 0.0 if victim is not target else _moved(pair, survivor, t0)
    whole = t0 + max(service_half or 0.0, cloud_half or 0.0)
    time.sleep(0.5)  # the flows through the survivor alone, for a while
    mended = time.time()
    mend(victim)
    until(lambda: pair.healthy(victim), 60, f"{victim.name} back")
    until(lambda: victim.name in pair.connected(), 30, f"the service sends to {victim.name}")
    time.sleep(1.0)  # the flows over both again; a healthy route target keeps the routes
    end = time.time() - 0.5  # (what was sent in the last half second may still be on its way)
    return Run(
        mode=mode, role=role, cloud_half=cloud_half, service_half=service_half,
        recovered=None if recovered is None else recovered - t0,
        lost_after=lost_in(pair, whole + 0.05, mended),
        lost_returning=lost_in(pair, mended, end),
        lost_total=lost_in(pair, t0, end), lost_failing=lost_in(pair, t0, mended),
        stall=tcp_stall(pair, t0, end), resets=len(pair.resets()) - resets,
        stayed=pair.active() is survivor, carried=seen_before,
    )  # fmt: skip


def _left(pair: PairWorld, m: Member, after: float) -> float | None:
    """Seconds from `after` until the service ended its session with `m`."""
    return next((at - after for at, what, who in pair.service_events()
                 if at >= after and what == "del" and who == m.name), None)  # fmt: skip


def _moved(pair: PairWorld, to: Member, after: float) -> float | None:
    """Seconds from `after` until HQ's router sent the answers to `to`."""
    return next((at - after for at, who in pair.route_moves() if at >= after and who == to.name),
                None)  # fmt: skip


def matrix(
    pair: PairWorld,
    runs: int,
    modes: tuple[str, ...] = MODES,
    each: Callable[[Run], None] = lambda run: None,
) -> Matrix:
    """`runs` failures of each mode, of each member in turn, on the one pair; `each` is told
    of every run as it ends (the bench keeps them as they come)."""
    result = Matrix(pair.cloud, pair.interval, pair.fails, pair.probe, pair.detection,
                    pair_nat(pair))  # fmt: skip
    for mode in modes:
        for _ in range(runs):
            for role in ROLES:
                result.runs.append(fail_once(pair, mode, role))
                each(result.runs[-1])
    return result


def pair_nat(pair: PairWorld) -> str:
    if not pair.mode.nat:
        return "no NAT"
    return "NAT but to local subnets" if pair.mode.preserve_source else "NAT everything"
