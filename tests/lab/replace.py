"""A single connector replaced, on the lab's AWS cloud (`pair.py`: moto on HQ's router holds
HQ's route table, which the router follows), while Bob's flow (a UDP packet every 20 ms) runs:

- **make before break** (what apply does on AWS): the new connector is launched beside the old
  one and its tunnel comes up, the routes move to it (`ReplaceRoute` in the lab's cloud, as
  apply calls it), then the old one is terminated;
- **the same, one profile**: the new connector dials in with the old one's profile (a user's own
  profile file: one for both VMs), so the service drops the old one's session as the new one
  connects; the answers go to the old one until the routes move;
- **break before make** (what a replacement did before, and does on the other clouds): the old
  one goes first, then the new one is launched, its tunnel comes up, the routes move.

The lab's "launch" is the connector's real setup script bringing its tunnel up (seconds); a
cloud's is a VM booting and installing its packages (minutes): the break-before-make gap here
is a lower bound. One piece of code for the test (one run of each) and the bench (ten)."""

from __future__ import annotations

import copy
import statistics
import sys
import time
from dataclasses import dataclass, field

from .failover import all_answered_after, lost_in, steady, until
from .pair import API_PORT, Member, PairWorld
from .world import HQ, Site, run_setup_script

MODES = ("make before break", "make before break, one profile", "break before make")
PAIR_MODE = "a pair, one member at a time"


@dataclass
class Replacements:
    lost: dict[str, list[int]] = field(default_factory=lambda: {m: [] for m in (*MODES, PAIR_MODE)})
    gap: dict[str, list[float]] = field(
        default_factory=lambda: {m: [] for m in (*MODES, PAIR_MODE)}
    )

    def figures(self) -> dict[str, str]:
        out = {}
        for mode in (*MODES, PAIR_MODE):
            if not self.lost[mode]:
                continue
            what = (
                "replace a pair (aws)" if mode == PAIR_MODE else "replace a single connector (aws)"
            )
            out[f"{what}, {mode}"] = (
                f"packets lost median {statistics.median(self.lost[mode]):g}, worst "
                f"{max(self.lost[mode])}; longest gap median "
                f"{statistics.median(self.gap[mode]):.2f}s, worst {max(self.gap[mode]):.2f}s over "
                f"{len(self.lost[mode])} runs (UDP flows, a packet every 100 ms each)"
            )
        return out


def move_routes(pair: PairWorld, to: Member) -> None:
    """Every route of HQ's table that names a connector, to `to`'s interface: apply's
    `ReplaceRoute`s, against the lab's cloud."""
    seed = (pair.dir / "cloud" / "seed.json").read_text()
    code = (
        "import boto3, json\n"
        f"table = json.loads({seed!r})['table']\n"
        f"ec2 = boto3.client('ec2', region_name='us-east-1', endpoint_url='http://{HQ.router_ip}:"
        f"{API_PORT}', aws_access_key_id='testing', aws_secret_access_key='testing')\n"
        "(t,) = ec2.describe_route_tables(RouteTableIds=[table])['RouteTables']\n"
        "for r in t['Routes']:\n"
        f"    if r.get('NetworkInterfaceId') and r['NetworkInterfaceId'] != '{to.interface}':\n"
        "        ec2.replace_route(RouteTableId=table, DestinationCidrBlock=r['DestinationCidrBlock'],"
        f" NetworkInterfaceId='{to.interface}')\n"
    )
    pair.world.lab.run(HQ.router, sys.executable, "-c", code)


def _up(pair: PairWorld, m: Member) -> bool:
    """Its health endpoint answers 200 (its tunnel is up), asked from HQ's router: the other
    connector may be gone."""
    code = (
        "import urllib.request,sys\n"
        f"sys.exit(0 if urllib.request.urlopen('http://{m.site.connector_ip}:8181/health',"
        "timeout=1).status == 200 else 1)\n"
    )
    return pair.world.lab.run(HQ.router, sys.executable, "-c", code, check=False).returncode == 0


def _longest_gap(pair: PairWorld, start: float, end: float) -> float:
    """The longest time any flow went without an answer to what it sent in [start, end]."""
    got: dict[str, list[float]] = {}
    for flow, _, sent, at in pair.answers(start):
        if start <= sent <= end:
            got.setdefault(flow, []).append(at)
    gaps = [max((b - a for a, b in zip(v, v[1:], strict=False)), default=end - start)
            for v in (sorted(x) for x in got.values())]  # fmt: skip
    return max(gaps, default=end - start)


def _as_old(pair: PairWorld, new: Member, old: Member) -> Site:
    """`new`'s host dialling in with `old`'s profile (one profile for both, as a user's own
    profile file is): what its setup script is run as."""
    site = copy.copy(new.site)
    site.name, site.connector_vpn_ip = f"{new.site.name}-as-{old.name}", old.site.connector_vpn_ip
    pair.world.profiles[site.name] = pair.world.profiles[old.identity]
    return site


def _launch(
    pair: PairWorld, m: Member, profile_of: Member | None = None, watchdog: bool = False
) -> None:
    """`m`'s VM up again: its interface, then its setup (its tunnel up), with its own profile
    and watchdog, or with `profile_of`'s profile and no watchdog."""
    if profile_of is None:  # (its setup script returns once its tunnel is up)
        pair.revive_vm(m, watchdog=watchdog)
        if watchdog:
            until(lambda: _up(pair, m), 60, f"{m.name} up")
        return
    lab = pair.world.lab
    lab.run(m.site.connector, "ip", "link", "set", "lan0", "up")
    lab.run(m.site.connector, "ip", "route", "replace", "default", "via", HQ.router_ip)
    run_setup_script(pair.world, _as_old(pair, m, profile_of), pair.setup)


def _switch(pair: PairWorld, to: Member) -> None:
    move_routes(pair, to)
    until(lambda: pair.active() is to, 10, "the router follows the table")


def replace(pair: PairWorld, runs: int) -> Replacements:
    """`runs` replacements of each mode of HQ's one connector `a` by `b` (the pair's `b` gone
    first: the network has one connector); after each, `a` is put back as it was."""
    assert pair.cloud == "aws"
    result = Replacements()
    steady(pair)
    old, new = pair.members["a"], pair.members["b"]
    if pair.active() is not old:
        _switch(pair, old)
    pair.kill_vm(new)  # one connector: the one the routes lead to, and no watchdog
    pair.stop_watchdog(old)
    for mode in MODES:
        for _ in range(runs):
            until(lambda: all_answered_after(pair, time.time() - 1) is not None, 30, "the flows")
            started = time.time()
            if mode == "break before make":
                pair.kill_vm(old)
                _launch(pair, new)
                _switch(pair, new)
            else:  # made beside the old one, its tunnel up; the routes moved; the old one
                # terminated, which on EC2 is a graceful OS shutdown: its OpenVPN tells the
                # service it leaves (the service sends the new one all) and forwards what is in
                # flight until it exits
                _launch(pair, new, old if mode.endswith("one profile") else None)
                _switch(pair, new)
                pair.shut_down(old)
            until(lambda s=started: all_answered_after(pair, s + 0.1) is not None, 30, "answered")
            time.sleep(1)  # the flow through the new one for a while
            ended = time.time()
            # from half a second before: answers before the change anchor the count
            result.lost[mode].append(lost_in(pair, started - 0.5, ended))
            result.gap[mode].append(_longest_gap(pair, started - 0.5, ended))
            _launch(pair, old)  # as it was: `a` with its own profile, the routes on it
            _switch(pair, old)
            pair.kill_vm(new)
    _launch(pair, new, watchdog=True)  # the pair as it was: both members up, each watched
    pair.start_watchdog(old)
    steady(pair)
    for _ in range(runs):  # a pair replaced as apply does it: the standby, the routes, the other
        until(lambda: all_answered_after(pair, time.time() - 1) is not None, 30, "the flows")
        active = pair.active()
        standby = next(m for m in pair.members.values() if m is not active)
        started = time.time()
        pair.shut_down(standby)  # the standby replaced first (terminated: a graceful shutdown)
        _launch(pair, standby, watchdog=True)
        _switch(pair, standby)  # the routes handed to it once its tunnel is up
        pair.shut_down(active)  # then the other
        _launch(pair, active, watchdog=True)
        time.sleep(1)
        ended = time.time()
        result.lost[PAIR_MODE].append(lost_in(pair, started - 0.5, ended))
        result.gap[PAIR_MODE].append(_longest_gap(pair, started - 0.5, ended))
    return result
