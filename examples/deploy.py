"""A deployment script using the library: plan, show, apply, and fail the pipeline on drift.

python examples/deploy.py examples/hq-branch.yaml [--apply]
"""

from __future__ import annotations

import json
import sys

import provisioner


def main(path: str, do_apply: bool) -> int:
    try:
        topology = provisioner.load_topology(path)
        deployment = provisioner.Deployment(topology, provisioner.Clouds(progress=print))
        plan = deployment.plan()
    except provisioner.ProvisionerError as e:
        print(e, file=sys.stderr)
        return e.exit_code
    print(json.dumps(plan.to_dict()["summary"]))
    for change in plan.changes:
        print(f"{change.network}: {change.summary()}  # {change.why}")
    if plan.conflicts:
        print("conflicting routes; not applying", file=sys.stderr)
        return 3
    if not do_apply:
        return 0 if plan.empty else 1  # non-zero: there is drift to apply
    result = deployment.execute(plan)
    print(f"applied {len(result.done)} change(s)")
    unhealthy = [s.network for s in deployment.status() if not s.healthy]
    return 1 if unhealthy else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--apply" in sys.argv[2:]))
