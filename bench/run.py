"""Figures, not assertions: cold `provision --help` time, API calls per phase as route tables
grow, and plan computation time for 100 peers. Compare runs by diffing the output.

    python bench/run.py            # 1, 50 and 500 route tables
    python bench/run.py --quick    # 1 and 50 (what CI runs)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import botocore.handlers

READS = ("Describe", "Get", "List")


def cold_help(runs: int = 7) -> dict[str, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "provisioner.cli", "--help"], capture_output=True, check=True
        )
        times.append(time.perf_counter() - start)
    return {"min_s": round(min(times), 3), "median_s": round(statistics.median(times), 3)}


class Recorder:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any = None, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> dict[str, Any]:
        reads = {k: v for k, v in sorted(self.calls.items()) if k.startswith(READS)}
        writes = {k: v for k, v in sorted(self.calls.items()) if not k.startswith(READS)}
        self.calls.clear()
        return {
            "reads": sum(reads.values()),
            "mutations": sum(writes.values()),
            "by_kind": {**reads, **writes},
        }


def calls_for(tables: int, peers: int) -> dict[str, Any]:
    from moto import mock_aws

    from provisioner import Clouds, Deployment, load_topology
    from provisioner.sandbox import FAKE_PROFILE, fake_session, publish_ubuntu_image, seed_vpc

    recorder = Recorder()
    entry = ("before-call", recorder)
    botocore.handlers.BUILTIN_HANDLERS.append(entry)
    try:
        with mock_aws(), tempfile.TemporaryDirectory() as tmp:
            session = fake_session()
            publish_ubuntu_image(session, "us-east-1")
            hq = seed_vpc(
                session,
                "hq",
                "us-east-1",
                "10.0.0.0/16",
                ["10.0.0.0/24"],
                extra_route_tables=tables - 1,
            )
            (Path(tmp) / "hq.ovpn").write_text(FAKE_PROFILE.format(name="hq"))
            networks: dict[str, Any] = {
                "hq": {
                    "cloud": "aws",
                    "region": "us-east-1",
                    "vpc": hq.vpc,
                    "subnets": ["10.0.0.0/16"],
                    "app_security_groups": [hq.app_group],
                    "connector": {"subnet": hq.connector_subnet, "profile": "hq.ovpn"},
                },
            }
            for i in range(peers):
                networks[f"peer{i}"] = {"cloud": "external", "subnets": [f"172.20.{i}.0/24"]}
            path = Path(tmp) / "topology.yaml"
            path.write_text(json.dumps({"version": 1, "networks": networks}))
            clouds = Clouds(options={"aws": {"session": session, "poll_seconds": 0.0}})
            topology = load_topology(path)
            recorder.take()
            out: dict[str, Any] = {}
            for phase in ("plan", "apply", "re-apply", "destroy"):
                d = Deployment(topology, clouds)
                start = time.perf_counter()
                if phase == "plan":
                    plan = d.plan()
                elif phase == "destroy":
                    plan = d.plan_destroy()
                    d.execute(plan)
                else:
                    plan = d.plan()
                    d.execute(plan)
                seconds = time.perf_counter() - start
                figures = recorder.take()
                figures["planned_changes"] = len(plan.changes)
                figures["planned_route_changes"] = sum(1 for c in plan.changes if c.kind == "route")
                route_calls = sum(
                    figures["by_kind"].get(k, 0)
                    for k in ("CreateRoute", "ReplaceRoute", "DeleteRoute")
                )
                figures["route_mutations"] = route_calls
                figures["seconds_against_moto"] = round(seconds, 2)
                out[phase] = figures
            return out
    finally:
        botocore.handlers.BUILTIN_HANDLERS.remove(entry)


def plan_time(peers: int = 100, tables: int = 50, repeat: int = 20) -> dict[str, float]:
    from provisioner import planner
    from provisioner.model import (
        AppAccess,
        AppGroup,
        AwsLocation,
        Connector,
        Network,
        Observed,
        ObservedSubnet,
        Part,
        RouteTable,
        Topology,
        WayOut,
    )

    hq = Network(
        name="hq",
        cloud="aws",
        subnets=(IPv4Network("10.0.0.0/16"),),
        location=AwsLocation("us-east-1", "vpc-1"),
        app_access=(AppAccess("sg"),),
        connector=Connector(
            subnet="subnet-1",
            size="t3.small",
            nat=False,
            egress=False,
            profile=Path("p"),
            profile_fingerprint="f",
        ),
    )
    peer_nets = tuple(
        Network(name=f"p{i}", cloud="external", subnets=(IPv4Network(f"172.20.{i}.0/24"),))
        for i in range(peers)
    )
    topology = Topology(networks=(hq, *peer_nets))
    observed = {
        "hq": Observed(
            network="hq",
            cidrs=(IPv4Network("10.0.0.0/16"),),
            route_tables=tuple(RouteTable(f"rtb-{t}", ()) for t in range(tables)),
            subnets=(ObservedSubnet("subnet-1", WayOut.NAT_GATEWAY, "nat-1"),),
            parts=(Part("security-group", "g", "its group", True),),
            app_groups=(AppGroup("sg"),),
        )
    }
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        plan = planner.plan_apply(topology, observed)
        times.append(time.perf_counter() - start)
    return {
        "peers": peers,
        "route_tables": tables,
        "changes": len(plan.changes),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "min_ms": round(min(times) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1 and 50 route tables only")
    parser.add_argument("--peers", type=int, default=20)
    args = parser.parse_args()
    sizes = (1, 50) if args.quick else (1, 50, 500)
    print(f"cold `provision --help`: {json.dumps(cold_help())}")
    print(f"plan computation, 100 peers: {json.dumps(plan_time())}")
    for tables in sizes:
        figures = calls_for(tables, args.peers)
        for phase, f in figures.items():
            print(
                f"{tables:>4} route tables, {args.peers} peers, {phase:>8}: reads={f['reads']:<3} "
                f"mutations={f['mutations']:<6} planned={f['planned_changes']:<6} "
                f"route mutations={f['route_mutations']}/{f['planned_route_changes']} planned "
                f"({f['seconds_against_moto']}s)"
            )
            print(f"      by kind: {json.dumps(f['by_kind'])}")


if __name__ == "__main__":
    main()
