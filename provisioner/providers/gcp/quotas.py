"""GCP's limits on what the toolkit writes: the project's Compute Engine quotas.

Routes and VPC firewall rules are project resources counted against the project's `ROUTES`
and `FIREWALLS` quotas (Compute Engine's "Quotas and limits": per project, adjustable), over
every network of the project. The limits are read with `projects.get` (its `quotas`); what is
held is counted from the project's routes and firewall rules, which observe lists whole. A
credential that cannot read the project gets a new project's limits (250 routes, 200
firewall rules, as `gcloud compute project-info describe` shows them), and the plan says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...model import Cap, Counted
from .common import error_text

# metric -> (what it counts, its name in the console's quotas page, a new project's limit)
QUOTAS = {
    "ROUTES": (Counted.ROUTES, "Routes", 250),
    "FIREWALLS": (Counted.RULES, "Firewall rules", 200),
}


def caps(call: Callable[..., Any], projects: Any, project: str, held: dict[str, int]) -> tuple[Cap, ...]:  # fmt: skip
    """The project's quotas on routes and firewall rules, with what the project holds now
    (`held`: by metric, counted from the project's lists)."""
    from google.api_core.exceptions import GoogleAPICallError

    read: dict[str, float] = {}
    why = ""
    try:
        found = call("project", projects.get, project=project)
        read = {q.metric: q.limit for q in found.quotas or []}
    except GoogleAPICallError as e:
        why = error_text(e)
    out = []
    for metric, (counts, name, default) in QUOTAS.items():
        if metric in read:
            value, source = int(read[metric]), f"project {project}'s quota {metric}, read"
        else:
            value = default
            source = (f"a new project's {metric} quota; project {project}'s was not read: "
                      f"{why or 'not among its quotas'}")  # fmt: skip
        quota = f"Compute Engine API, '{name}' ({metric}) of project {project}"
        out.append(Cap(counts, f"project {project}", value, source, quota, used=held[metric],
                       per_ports=counts is Counted.RULES))  # fmt: skip
    return tuple(out)
