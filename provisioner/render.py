"""Text for people: plans, results and status. The JSON forms come from the same objects
(`Plan.to_dict`, `NetworkStatus.to_dict`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .model import (
    SERVICE_PLAN,
    Action,
    AppGroupStatus,
    Change,
    Fill,
    Kind,
    NetworkStatus,
    Plan,
    RouteState,
    RouteStatus,
    ServiceStatus,
    Verdict,
)

if TYPE_CHECKING:
    from .doctor import FlowReport

_MARK = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "±",
    Action.DELETE: "-",
    Action.START: ">",
}


FLOWS = "docs/flows.md"  # the hops every why cites


# why destroy counts fewer changes than apply did, in the destroy plan's count line
DESTROY_COUNTS = (
    " (what apply made, each once; apply's count also had what it changed in place, like a "
    "forwarding flag, which goes with its VM)"
)


def plan_text(plan: Plan, verbose: bool = False) -> str:
    """Per network: its connector and parts one per line, routes as destinations x tables, app
    rules per group, each group's why once. `verbose`: every change on its own line with its
    why. Replacements, updates, deletions and conflicts are never folded: each is a line of
    its own, with its why."""
    lines: list[str] = []
    said: dict[str, str] = {}  # a why -> the network that said it first (grouped only)
    quiet = 0  # notes of networks with nothing to do, not shown (--verbose shows them)
    folded = False  # a change's why not said again (the first of its kind above says it)
    for n in plan.networks:
        if n.network == SERVICE_PLAN:
            lines.append(f"the VPN service ({n.cloud}): {_changes_count(n.changes)}")
        else:
            lines.append(f"network {n.network} ({n.cloud}): {_changes_count(n.changes)}")
        if verbose:
            lines += _each_change(n.changes)
        else:
            grouped = _grouped(n.changes)
            kept = _once(grouped, said)
            folded |= len(kept) < len(grouped)
            lines += kept
        for conflict in n.conflicts:
            lines.append(f"  ! conflict: {conflict.summary()}")
        if n.fills and (verbose or any(f.after >= NEAR * f.cap.value for f in n.fills)):
            lines.append(_fills_line(n.fills, verbose))
        for fill in (f for f in n.fills if f.over):
            lines.append(f"  ! over a limit: {fill.summary()}")
        if n.changes or verbose:
            lines += [f"  note: {note}" for note in n.facts]
        else:  # as it should be: how it is was said when its changes were planned
            quiet += len(n.facts)
        lines += [f"  note: {note}" for note in n.notes]
    counts = plan.to_dict()["summary"]
    assert isinstance(counts, dict)
    parts = [f"{v} to {k}" for k, v in counts.items() if v and k != "conflicts"]
    if plan.empty:
        lines.append(f"{plan.operation}: nothing to do"
                     + (f" ({quiet} note(s) on how it is: --verbose)" if quiet else ""))  # fmt: skip
    else:
        why = DESTROY_COUNTS if plan.operation == "destroy" else ""
        lines.append(f"{plan.operation}: " + (", ".join(parts) or "no change") + why)
        hint = "" if verbose else "; every change: --verbose"
        once = "; a why is said once, at the first change it explains" if folded else ""
        lines.append(f"(hops: {FLOWS}{once}{hint})")
    if plan.conflicts:
        lines.append(
            f"{len(plan.conflicts)} conflict(s): apply refuses until they are removed or "
            "--replace-conflicting-routes is given"
        )
    fills = [f for n in plan.networks for f in n.fills]
    if fills and not plan.overfull and not verbose:
        f = max(fills, key=lambda f: f.after / f.cap.value)
        lines.append(f"limits: the fullest after apply, {f.cap.per} {f.holder}, holds {f.after} of "
                     f"its {f.cap.value} {f.cap.counts} (every table and group: --verbose)")  # fmt: skip
    if plan.overfull:
        lines.append(
            f"{len(plan.overfull)} table(s) or group(s) over the cloud's limit: apply refuses "
            "and writes nothing until the file summarizes or the quota is raised"
        )
    return "\n".join(lines)


NEAR = 0.8  # a holder this full after apply is shown without --verbose


def _fills_line(fills: tuple[Fill, ...], verbose: bool) -> str:
    """What the tables and groups hold after apply against their limits, one line: per kind
    of holder the fullest and how many there are (--verbose: each one), and where the limit
    comes from."""
    kinds: dict[tuple[str, str], list[Fill]] = {}
    for f in fills:
        kinds.setdefault((f.cap.per, str(f.cap.counts)), []).append(f)
    parts = []
    for (per, counts), group in kinds.items():
        fullest = max(group, key=lambda f: f.after)
        if verbose:
            each = ", ".join(f"{f.holder} {f.after}" for f in group)
            held = f"{per}s: {each} of {fullest.cap.value} {counts}"
        elif fullest.cap.used is not None:
            held = f"{per}: {fullest.after} of {fullest.cap.value} {counts}"
        else:
            many = f" (the fullest of {len(group)})" if len(group) > 1 else ""
            held = f"{per} {fullest.holder}: {fullest.after} of {fullest.cap.value} {counts}{many}"
        parts.append(f"{held} [{fullest.cap.source}]")
    return "  after apply: " + "; ".join(parts)


def _once(lines: list[str], said: dict[str, str]) -> list[str]:
    """A why said already, by this network or one above, is not said again: the first change
    it explains says it (the plan's foot says so once)."""
    out: list[str] = []
    for line in lines:
        indent, _, why = line.partition("why: ")
        if why and not indent.strip():
            if why in said and out:
                continue
            said.setdefault(why, "")
        out.append(line)
    return out


def _changes_count(changes: tuple[Change, ...]) -> str:
    return "no change" if not changes else f"{len(changes)} change{'s' * (len(changes) != 1)}"


def _each_change(changes: Sequence[Change]) -> list[str]:
    lines = []
    for c in changes:
        lines.append(f"  {_MARK[c.action]} {c.summary()}")
        lines.append(f"      why: {c.why}")
    return lines


def _grouped(changes: tuple[Change, ...]) -> list[str]:
    """New routes of one target fold into destinations x tables, new app rules of one group
    and one why into a list of sources; new parts of the connector are one line each, without
    their why; the rest stays one per line, and a run of changes with one why says it once."""
    folded: dict[tuple[object, ...], list[Change]] = {}
    order: list[tuple[object, ...] | Change] = []
    for c in changes:
        key: tuple[object, ...] | None = None
        if c.action is Action.CREATE and c.kind is Kind.ROUTE:
            key = ("routes", c.target)
        elif c.action is Action.REPLACE and c.kind is Kind.ROUTE and c.previous_target:
            key = ("routes", c.target, c.previous_target)  # (a take-over: all from one VM)
        elif c.action is Action.CREATE and c.kind is Kind.APP_ACCESS:
            key = ("rules", c.resource, c.why)
        if key is None:
            order.append(c)
        else:
            if key not in folded:
                folded[key] = []
                order.append(key)
            folded[key].append(c)
    lines: list[str] = []
    run: list[Change] = []  # single changes in a row that share a why

    def flush() -> None:
        for c in run:
            lines.append(f"  {_MARK[c.action]} {c.summary()}")
        if run:
            lines.append(f"      why: {run[0].why}")
        run.clear()

    parts: list[str] = []  # new parts of the connector in a row: one line (their whys: --verbose)

    def flush_parts() -> None:
        if parts:
            lines.append("  + create " + "; ".join(parts))
        parts.clear()

    for item in order:
        if isinstance(item, Change) and item.kind is Kind.PART and item.action is Action.CREATE:
            flush()
            assert item.part is not None
            parts.append(f"{item.part.kind} {item.resource}")
            continue
        flush_parts()
        if isinstance(item, Change):
            if run and run[0].why != item.why:
                flush()
            run.append(item)
            continue
        flush()
        group = folded[item]
        lines += _route_block(group) if item[0] == "routes" else _rule_block(group)
    flush_parts()
    flush()
    return lines


def _route_block(routes: list[Change]) -> list[str]:
    """New routes to one target (or routes moved from one target to another): the tables
    once when every destination goes into the same ones, then the destinations (and whose they
    are) of each why, the why once."""
    tables: dict[str, list[str]] = {}  # destination -> tables, in plan order
    first: dict[str, Change] = {}
    for c in routes:
        tables.setdefault(str(c.destination), []).append(str(c.route_table))
        first.setdefault(str(c.destination), c)
    shapes = {tuple(t) for t in tables.values()}
    n, many = len(routes), "s" * (len(routes) != 1)
    head = routes[0]
    was = f" (was {head.previous_target})" if head.action is Action.REPLACE else ""
    lines = [f"  {_MARK[head.action]} {head.action} {n} route{many} -> {head.target}{was}"]
    if len(shapes) == 1:
        (shared,) = shapes
        lines[0] += (
            f": {len(tables)} destination{'s' * (len(tables) != 1)} x {len(shared)} "
            f"route table{'s' * (len(shared) != 1)}"
        )
        lines.append(f"      in {', '.join(shared)}")
    by_why: dict[str, list[str]] = {}
    for d, c in first.items():
        whose = f" ({c.label})" if c.label else ""
        where = "" if len(shapes) == 1 else f" in {', '.join(tables[d])}"
        by_why.setdefault(c.why, []).append(f"{d}{whose}{where}")
    for why, destinations in by_why.items():
        lines += _wrapped(destinations)
        lines.append(f"        why: {why}")
    return lines


def _wrapped(items: list[str], width: int = 96) -> list[str]:
    """`items` joined by commas, on lines of about `width` characters."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(item) > width:
            lines.append(f"      {line.rstrip(', ')},")
            line = ""
        line += item + ", "
    lines.append(f"      {line.rstrip(', ')}")
    return lines


def _labelled(label: str, items: list[str], width: int = 96) -> list[str]:
    """`      admits:   a, b,` and the rest of `items` wrapped under the first one."""
    lines = [f"      {label:10}{line.lstrip()}" for line in _wrapped(items, width - 16)[:1]]
    return lines + [f"          {line}" for line in _wrapped(items, width - 16)[1:]]


def _rule_block(rules: list[Change]) -> list[str]:
    """New rules of one group with one why: the sources, wrapped, then the why."""
    if len(rules) == 1:
        return _each_change(rules)
    sources = [f"{c.rule}{f' ({c.rule.label})' if c.rule and c.rule.label else ''}" for c in rules]
    lines = [f"  + create {len(rules)} app-access rules in {rules[0].resource}, from:"]
    lines += _wrapped(sources)
    lines.append(f"      why: {rules[0].why}")
    return lines


def result_text(plan: Plan, done: int) -> str:
    if not done:
        return f"{plan.operation}: nothing to do"
    why = DESTROY_COUNTS if plan.operation == "destroy" else ""
    lines = [f"{plan.operation}: done, {done} change(s) made{why}"]
    # a connector made by hand that was taken over and not retired: still running, not ours
    stopped = {c.resource for c in plan.changes if c.kind is Kind.RETIRE}
    for n in plan.networks:
        if n.hand_made and n.hand_made not in stopped:
            lines.append(f"  {n.network}: {n.hand_made}, the connector made by hand, is still "
                         "running and not ours: stop or delete it once its traffic has gone")  # fmt: skip
    return "\n".join(lines)


def doctor_text(reports: Sequence[FlowReport]) -> str:
    """Per flow: OK (one line), or for each piece of its source that dies or could not be
    judged: which part of the range, the hop, what drops it, the hop of the flows it breaks
    and the fix. Every hop and every piece with `--json`."""
    lines = []
    for r in reports:
        if r.verdict is Verdict.OK:
            lines.append(f"OK       {r.flow}")
            continue
        lines.append(f"{r.verdict:<8} {r.flow}")
        if not r.pieces:
            lines.append("         " + "; ".join(r.notes))
        for piece in r.dropped:
            hop = piece.dropped_at
            assert hop is not None
            if len(r.pieces) > 1:
                ranges = ", ".join(str(x) for x in piece.ranges)
                lines.append(f"         {piece.verdict} for {ranges} of {r.source} ({piece.share})")
            lines.append(f"         at {hop.what}: {hop.detail}")
            if hop.unknown:
                lines.append(f"         to judge it: {hop.fix}")
                continue
            lines.append(f"         breaks {hop.breaks} (docs/flows.md)")
            made = "apply makes it" if hop.apply_fixes else "apply does not: by hand"
            lines.append(f"         fix: {hop.fix} ({made})")
        if r.verdict is Verdict.UNKNOWN:
            how = r.trace or (
                "trace one host with --flow SOURCE->NETWORK:HOST:PORTS "
                "(e.g. vpn->hq:10.0.1.5:tcp/443)"
            )
            lines.append(f"         not judged: {how}")
    verdicts = [r.verdict for r in reports]
    summary = f"doctor: {verdicts.count(Verdict.OK)} of {len(reports)} flows OK"
    for verdict in (Verdict.DROPPED, Verdict.UNKNOWN):
        if verdicts.count(verdict):
            summary += f", {verdicts.count(verdict)} {verdict}"
    lines.append(summary)
    return "\n".join(lines)


def status_text(statuses: tuple[NetworkStatus, ...], verbose: bool = False) -> str:
    """Per network: healthy or not, the connector(s), the service's half, each app group, the
    routes. Routes that are as they should be are said once per target, as destinations x
    tables (`verbose`: each on its own line, as every route that is not is always)."""
    lines: list[str] = []
    for s in statuses:
        if s.nothing_of_ours:
            lines.append(f"network {s.network} ({s.cloud}): nothing of ours here: removed, or "
                         "never applied (apply makes it)")  # fmt: skip
            continue
        if s.half_made:
            lines.append(f"network {s.network} ({s.cloud}): half made: no connector and no route "
                         f"of ours yet, but {len(s.parts)} part(s) of ours are here; `apply` "
                         "finishes it, `destroy` removes them")  # fmt: skip
            lines += [f"  {part}" for part in s.parts]
            continue
        lines.append(
            f"network {s.network} ({s.cloud}): {'healthy' if s.healthy else 'NOT healthy'}"
        )
        roles = (("active", s.connector), ("standby", s.standby)) if s.ha else (("", s.connector),)
        for role, c in roles:
            label = f"connector ({role})" if role else "connector"
            if c is None:
                lines.append(f"  {label}: none")
                continue
            # (where the route target is the address itself, Azure's, it is said once)
            on = "" if c.interface == c.private_ip else f" on {c.interface or '-'}"
            lines.append(
                f"  {label}: {c.instance} {c.state}, {c.size}, {c.private_ip or '-'}{on}"
                + (f" in {c.subnet}" if role else "")
                + (f", public {c.public_ip}" if c.public_ip else "")
                + f", forwarding {'on' if c.forwarding else 'OFF'}"
                + _member_service(s, c.member if role else None)
                + (f"; watchdog: {c.watchdog or 'no word read'}" if role else "")
            )
        if s.service is not None:
            lines += service_lines(s.network, s.service)
        for g in s.app_groups:
            lines += app_group_lines(g)
        lines += _route_lines(s.routes, verbose)
        for note in s.notes:
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def _member_service(s: NetworkStatus, member: int | None) -> str:
    """A pair member's connector on the VPN service, on its line: the service spreads the
    network's traffic over both, so each one's connection counts."""
    if member is None or s.service is None or not s.service.found:
        return ""
    state = s.service.connector if member == 0 else s.service.second
    return f"; on the service {state or 'NONE of ours'}"


def _route_lines(routes: tuple[RouteStatus, ...], verbose: bool) -> list[str]:
    """The routes a status found: the ok ones of one target folded into one block when each
    of their tables holds the same destinations, every other route on a line of its own under
    its table."""
    folded: dict[str, dict[str, list[str]]] = {}  # target -> table -> destinations
    if not verbose:
        for r in routes:
            if r.state is RouteState.OK and r.target:
                folded.setdefault(r.target, {}).setdefault(r.route_table, []).append(
                    str(r.destination)
                )
        # only where every table has the same destinations (else each table says its own)
        folded = {t: by for t, by in folded.items() if len({tuple(d) for d in by.values()}) == 1}
    lines: list[str] = []
    for target, by_table in folded.items():
        tables = list(by_table)
        destinations = by_table[tables[0]]
        n = len(destinations)
        lines.append(
            f"  routes ok -> {target}: {n} destination{'s' * (n != 1)} x {len(tables)} "
            f"route table{'s' * (len(tables) != 1)}"
        )
        where = _wrapped(tables)
        lines += [f"      in {where[0].lstrip()}", *where[1:], *_wrapped(destinations)]
    table = None
    for r in routes:
        if r.state is RouteState.OK and r.target in folded and r.route_table in folded[r.target]:
            continue
        if r.route_table != table:
            table = r.route_table
            lines.append(f"  route table {table}:")
        mark = "ok" if r.state is RouteState.OK else r.state.upper()
        target = f" -> {r.target}" if r.target else ""
        lines.append(f"    {mark:9} {r.destination}{target}")
    return lines


def service_lines(network: str, s: ServiceStatus) -> list[str]:
    """The VPN service's half: its routes against the subnets, egress, our connector there."""
    if not s.found:
        return [f"  service: NO network {network} on the VPN service: run apply"]
    mark = "" if s.healthy else "  (NOT as the file says)"
    lines = [f"  service: network {network}{'' if s.ours else ' (adopted)'}{mark}"]
    routes = ", ".join(
        f"{subnet}{'' if state == 'ok' else ' ' + state}" for subnet, state in s.routes
    )
    lines.append(f"      routes:    {routes or 'none'}")
    egress = "on" if s.egress else "off"
    if s.egress != s.egress_wanted:
        egress += f" (the file says {'on' if s.egress_wanted else 'off'})"
    lines.append(f"      egress:    {egress}")
    connectors = [("connector", s.connector, s.address)]
    if s.pair:
        connectors.append(("second", s.second, s.second_address))
    for label, state, address in connectors:
        if state is None:
            lines.append(f"      {label + ':':10} NONE of ours")
        else:
            lines.append(f"      {label + ':':10} {state} at {address or '-'}")
    if s.access:
        lines.append(f"      access:    {s.access}")
    return lines


def app_group_lines(g: AppGroupStatus) -> list[str]:
    """Which sources the group admits, and whether that covers what the connector delivers."""
    if not g.found:
        return [f"  app group {g.id}: NOT FOUND in the network"]
    if g.covered:
        head = f"  app group {g.id}: admits every arriving source"
    else:
        head = f"  app group {g.id}: DROPS part of the arriving traffic"
    lines = [head]
    admits = [f"{r}{' (ours)' if r.ours else ''}" for r in g.admits] or ["nothing"]
    lines += _labelled("admits:", admits)
    lines += _labelled("arriving:", [f"{r} ({r.label})" for r in g.arriving])
    for r in g.missing:
        lines.append(f"      MISSING:  {r} ({r.label}): no rule admits it")
    return lines
