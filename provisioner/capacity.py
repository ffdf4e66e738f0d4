"""The clouds' own limits on what the toolkit writes (capacity), counted in the plan before any write.

Each provider's observe states its cloud's caps (`Cap`: the number, where it comes from, the
quota's name) and what each table or group holds now. Here the plan's changes are counted
against them: for every route table and group a network's plan changes, what it holds after
apply (ours plus what is already there). A plan that would fill one over its cap is refused
whole (exit 3, nothing written), as a conflict is: a cloud refuses the 51st route of a table
with 50, and an apply refused half way leaves a network half routed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from ipaddress import IPv4Network, collapse_addresses

from .model import (
    Action,
    Cap,
    Change,
    Counted,
    Fill,
    IngressRule,
    Kind,
    NetworkPlan,
    Observed,
)

GROWS = {Action.CREATE: 1, Action.DELETE: -1}


def fills(network: str, obs: Observed, changes: Sequence[Change]) -> tuple[Fill, ...]:
    """What each holder the changes touch holds after them, against each of the cloud's caps
    (a cap over many holders, a project's, is counted for this network alone here: see
    `across`)."""
    out: list[Fill] = []
    for cap in obs.caps:
        if cap.counts is Counted.ROUTES:
            out += _route_fills(network, obs, changes, cap)
        else:
            out += _rule_fills(network, obs, changes, cap)
    return tuple(out)


def across(plans: Iterable[NetworkPlan]) -> tuple[NetworkPlan, ...]:
    """Caps over many holders (a GCP project's routes, its firewall rules) counted over every
    network of the plan that writes there: each network's fill says the project's total."""
    plans = tuple(plans)
    grows: dict[tuple[str, Counted], int] = defaultdict(int)
    for n in plans:
        for f in n.fills:
            if f.cap.used is not None:
                grows[(f.cap.per, f.cap.counts)] += f.after - f.now
    out = []
    for n in plans:
        mended = tuple(
            replace(f, after=f.now + grows[(f.cap.per, f.cap.counts)])
            if f.cap.used is not None
            else f
            for f in n.fills
        )
        out.append(replace(n, fills=mended) if mended != n.fills else n)
    return tuple(out)


def _route_fills(network: str, obs: Observed, changes: Sequence[Change], cap: Cap) -> list[Fill]:
    grows: dict[str, int] = {}
    for c in changes:
        if c.kind is Kind.ROUTE and c.route_table is not None:
            grows[c.route_table] = grows.get(c.route_table, 0) + GROWS.get(c.action, 0)
    if not grows:
        return []
    way = (
        f"route a covering prefix instead of the peers' subnets in it (networks.{network}."
        "summarize), or select fewer tables (route_tables)"
    )
    if cap.used is not None:  # one count for all the project's routes
        return [Fill(cap.per, cap, cap.used, cap.used + sum(grows.values()), way)]
    held = {t.id: obs.held.get(t.id, len(t.routes)) for t in obs.route_tables}
    return [Fill(t, cap, held.get(t, 0), held.get(t, 0) + n, way) for t, n in grows.items()]


def _rule_fills(network: str, obs: Observed, changes: Sequence[Change], cap: Cap) -> list[Fill]:
    """The connector's own group (the network's subnets) and each app group (the arriving
    sources, per port spec)."""
    own = obs.connector_group or f"the connector's group of {network}"
    now: dict[str, set[IngressRule]] = {own: {IngressRule(c) for c in obs.connector_ingress}}
    now |= {g.id: set(g.rules) for g in obs.app_groups}
    after = {holder: set(rules) for holder, rules in now.items()}
    touched: list[str] = []
    for c in changes:
        if c.kind is Kind.CONNECTOR_INGRESS and c.destination is not None:
            holder, rule = own, IngressRule(c.destination)
        elif c.kind is Kind.APP_ACCESS and c.rule is not None:
            holder, rule = c.resource, c.rule
        else:
            continue
        rules = after.setdefault(holder, set())
        if c.action is Action.CREATE:
            rules.add(rule)
        elif c.action is Action.DELETE:
            rules.discard(rule)
        if holder not in touched:
            touched.append(holder)
    if not touched:
        return []

    def size(holder: str, rules: set[IngressRule]) -> int:
        if not cap.per_ports:
            return len(rules)
        # one rule per port spec, whatever its sources; the connector's own: one rule
        if holder == own:
            return 1 if rules else 0
        return len({r.ports for r in rules if r.ours})

    def way(holder: str) -> str:
        if cap.per_ports:  # (a rule holds every source of its port spec: a summary saves none)
            return "fewer port specs in app_security_groups: a firewall rule each"
        if holder == own:
            return f"give the network's own subnets as fewer, wider ranges (networks.{network}.subnets)"  # fmt: skip
        return (
            f"admit a covering prefix instead of the peers' subnets in it (networks.{network}."
            "summarize), or fewer port specs (app_security_groups)"
        )

    fills = []
    for holder in touched:
        before = now.get(holder, set())
        held = obs.held.get(holder, size(holder, before))
        fills.append(Fill(holder, cap, held, held + size(holder, after[holder]) - size(holder, before), way(holder)))  # fmt: skip
    if cap.used is not None:  # one count for the project: the app groups' way out first
        grown = sum(f.after - f.now for f in fills)
        ways = sorted({f.way for f in fills}, key=lambda w: "subnets)" in w)
        return [Fill(cap.per, cap, cap.used, cap.used + grown, "; or ".join(ways))]
    return fills


# --- summaries: fewer routes and rules for the same reach -------------------------------------


def summarized(
    peers: Mapping[IPv4Network, str], summaries: Sequence[IPv4Network] = ()
) -> dict[IPv4Network, str]:
    """The peers' subnets (destination -> whose) as the fewest prefixes that cover exactly
    them: those inside a summary of the file's (`networks.<name>.summarize`) become that
    summary, and prefixes that join exactly (10.1.0.0/24 and 10.1.1.0/24) one route. Whose:
    the networks it stands for ("networks a, b")."""
    whose: dict[IPv4Network, set[str]] = {}
    for subnet, label in peers.items():
        home = next((s for s in summaries if subnet.subnet_of(s)), subnet)
        whose.setdefault(home, set()).add(label)
    for s in summaries:  # a summary covering no subnet of the file's stays: the file says so
        whose.setdefault(s, set())
    order = {net: i for i, net in enumerate(whose)}  # the file's order, as before summaries
    joins = list(collapse_addresses(whose))  # (sorted by address)
    inside: dict[IPv4Network, list[IPv4Network]] = {j: [] for j in joins}
    j = 0
    for net in sorted(whose):  # each prefix into the join that holds it, in one walk
        while not net.subnet_of(joins[j]):
            j += 1
        inside[joins[j]].append(net)
    out: dict[IPv4Network, str] = {}
    for joined in sorted(joins, key=lambda x: min(order[n] for n in inside[x])):
        labels = sorted({x for net in inside[joined] for x in whose[net]})
        how = "summarized" if joined in summaries else "joined" if joined not in whose else ""
        out[joined] = _whose(labels, how)
    return out


def _whose(labels: list[str], how: str) -> str:
    """`network a`, `networks a, b (joined)`, `networks a, b (summarized)`."""
    names = [x.removeprefix("network ") for x in labels]
    if not names:
        return "the file's summary (no network's subnet in it yet)"
    said = ("network " if len(names) == 1 else "networks ") + ", ".join(names[:4])
    if len(names) > 4:  # (a fleet's summary: its first few, and how many)
        said += f" and {len(names) - 4} more"
    return f"{said} ({how})" if how else said
