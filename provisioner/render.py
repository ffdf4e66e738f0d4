"""Text for people: plans, results and status. The JSON forms come from the same objects
(`Plan.to_dict`, `NetworkStatus.to_dict`)."""

from __future__ import annotations

from .model import Action, AppGroupStatus, NetworkStatus, Plan, RouteState

_MARK = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "±",
    Action.DELETE: "-",
    Action.START: ">",
}


def plan_text(plan: Plan) -> str:
    lines: list[str] = []
    for n in plan.networks:
        lines.append(f"network {n.network} ({n.cloud}): {len(n.changes)} change(s)")
        for c in n.changes:
            lines.append(f"  {_MARK[c.action]} {c.summary()}")
            lines.append(f"      why: {c.why}")
        for conflict in n.conflicts:
            lines.append(f"  ! conflict: {conflict.summary()}")
        for note in n.notes:
            lines.append(f"  note: {note}")
    counts = plan.to_dict()["summary"]
    assert isinstance(counts, dict)
    parts = [f"{v} to {k}" for k, v in counts.items() if v and k != "conflicts"]
    if plan.empty:
        lines.append(f"{plan.operation}: nothing to do")
    else:
        lines.append(f"{plan.operation}: " + (", ".join(parts) or "no change"))
    if plan.conflicts:
        lines.append(
            f"{len(plan.conflicts)} conflict(s): apply refuses until they are removed or "
            "--replace-conflicting-routes is given"
        )
    return "\n".join(lines)


def result_text(plan: Plan, done: int) -> str:
    if not done:
        return f"{plan.operation}: nothing to do"
    return f"{plan.operation}: done, {done} change(s) made"


def status_text(statuses: tuple[NetworkStatus, ...]) -> str:
    lines: list[str] = []
    for s in statuses:
        lines.append(
            f"network {s.network} ({s.cloud}): {'healthy' if s.healthy else 'NOT healthy'}"
        )
        c = s.connector
        if c is None:
            lines.append("  connector: none")
        else:
            lines.append(
                f"  connector: {c.instance} {c.state}, {c.size}, {c.private_ip or '-'} on "
                f"{c.interface or '-'}"
                + (f", public {c.public_ip}" if c.public_ip else "")
                + f", forwarding {'on' if c.forwarding else 'OFF'}"
            )
        for g in s.app_groups:
            lines += app_group_lines(g)
        table = None
        for r in s.routes:
            if r.route_table != table:
                table = r.route_table
                lines.append(f"  route table {table}:")
            mark = "ok" if r.state is RouteState.OK else r.state.upper()
            target = f" -> {r.target}" if r.target else ""
            lines.append(f"    {mark:9} {r.destination}{target}")
        for note in s.notes:
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def app_group_lines(g: AppGroupStatus) -> list[str]:
    """Which sources the group admits, and whether that covers what the connector delivers."""
    if not g.found:
        return [f"  app group {g.id}: NOT FOUND in the network"]
    if g.covered:
        head = f"  app group {g.id}: admits every arriving source"
    else:
        head = f"  app group {g.id}: DROPS part of the arriving traffic"
    lines = [head]
    admits = ", ".join(f"{r}{' (ours)' if r.ours else ''}" for r in g.admits) or "nothing"
    lines.append(f"      admits:   {admits}")
    lines.append("      arriving: " + ", ".join(f"{r} ({r.label})" for r in g.arriving))
    for r in g.missing:
        lines.append(f"      MISSING:  {r} ({r.label}): no rule admits it")
    return lines
