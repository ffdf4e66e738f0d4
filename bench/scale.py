"""Figures at fleet scale: plan and apply of a file of 1, 10, 100 and 1,000 networks against the
fakes, the VPN service's half included. The file is HQ (AWS, in moto) and N-1 external sites,
every one of them a service network with its route: the service half grows with N, the cloud
half by one route per site. Each size runs in a process of its own (its peak memory is its
own). Printed per size: wall time, peak memory, the calls per phase and per network, and the
time CloudConnexa's default rate limit (20 at once, 1 more every 15 s) would take for the calls.

    python bench/scale.py                 # 1, 10, 100 and 1,000 (apply up to 1,000)
    python bench/scale.py --sizes 1 10    # some sizes
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def one(size: int, apply: bool, scattered: bool = False) -> dict[str, Any]:
    """Plan (and apply) of `size` networks, in this process. The sites' /24s are consecutive
    (they join: HQ's table holds a handful of routes for all of them), or with `scattered`
    every other one (none joins: a route each, and AWS's 50 routes per table is met)."""
    import yaml
    from moto import mock_aws

    sys.path.insert(0, str(REPO))
    from provisioner import Deployment, load_topology
    from provisioner.cloudconnexa.fake import CloudConnexa
    from provisioner.cloudconnexa.pace import Limit
    from provisioner.providers.aws.world import fake_session, sandbox_clouds, seed_world

    aws_calls: Counter[str] = Counter()

    def count(model: Any = None, **_: Any) -> None:
        aws_calls[model.name] += 1

    out: dict[str, Any] = {"networks": size}
    with mock_aws(), tempfile.TemporaryDirectory() as tmp, CloudConnexa().serve() as server:
        session = fake_session()
        session.events.register("before-call", count)
        world = seed_world(session, Path(tmp))
        doc = world.topology(service=True)
        hq = doc["networks"]["hq"]
        hq.pop("app_security_groups", None)
        hq["route_tables"] = [world.hq.route_tables[0]]
        doc["networks"] = {"hq": hq}
        step = 2 if scattered else 1
        for i in range(size - 1):
            doc["networks"][f"site{i:04d}"] = {
                "cloud": "external",
                "subnets": [f"172.{16 + (step * i) // 256}.{(step * i) % 256}.0/24"],
            }
        path = Path(tmp) / "fleet.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        clouds = sandbox_clouds(session, server.url)
        fake = server.fake
        phases = [("plan", lambda d: d.plan())]
        if apply:
            phases += [("apply", lambda d: d.apply()), ("re-plan", lambda d: d.plan())]
        for phase, act in phases:
            aws_calls.clear()
            fake.calls.clear()
            started = time.perf_counter()
            deployment = Deployment(load_topology(path), clouds)
            result = act(deployment)
            seconds = time.perf_counter() - started
            service = len([c for c in fake.calls if c.kind != "oauth"])
            plan = result.plan if hasattr(result, "done") else result
            changes = len(plan.changes)
            table = [f for n in plan.networks for f in n.fills if f.cap.counts == "routes"]
            if phase == "plan" and table:  # what HQ's table holds after apply, of its limit
                out["hq_table"] = f"{table[0].after} of {table[0].cap.value} routes"
            if plan.overfull:  # refused at plan: nothing is written
                out["refused"] = plan.overfull[0].summary()
                break
            out[phase] = {
                "seconds": round(seconds, 2),
                "changes": changes,
                "aws_calls": sum(aws_calls.values()),
                "service_calls": service,
                "service_calls_per_network": round(service / size, 2),
                "at_the_default_limit_min": round(Limit(20, 1, 15.0).floor(service) / 60, 1),
            }
    out["peak_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[1, 10, 100, 1000])
    parser.add_argument("--one", type=int)
    parser.add_argument("--no-apply", action="store_true")
    parser.add_argument("--scattered", action="store_true", help="sites whose /24s never join")
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, not args.no_apply, args.scattered)))
        return
    print("fleet scale: HQ (AWS) and N-1 external sites, the service half included, per size"
          + (" (scattered: no two sites' subnets join)" if args.scattered else ""))  # fmt: skip
    for size in args.sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(size), *(["--no-apply"] if args.no_apply else []),
             *(["--scattered"] if args.scattered else [])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            print(f"  {size:>5} networks: failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"figure: scale {size} networks: {json.dumps(figures)}")


if __name__ == "__main__":
    main()
