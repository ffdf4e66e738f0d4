"""The engine's order of a network's changes: steps taken one after another, the changes of
one step at once. Reads the plan's words (`model`), never the planner's decisions: what a
provider or the engine needs of a plan is in the plan."""

from __future__ import annotations

from collections.abc import Sequence

from .model import (
    NEW_CONNECTOR,
    SIDE_BY_SIDE,
    TAKE_OVER,
    VPN_CLIENTS,
    Action,
    Change,
    ForeignConnector,
    Kind,
)


def stages(changes: Sequence[Change]) -> tuple[tuple[Change, ...], ...]:
    """One network's changes as steps taken one after another, in the plan's order. The changes
    of one step do not depend on each other and may run at once: the parts, the VM and its
    forwarding flag come one at a time; the routes and rules after them, side by side."""
    out: list[list[Change]] = []
    for change in changes:
        # (a rule admitting a connector made beside another: in place before its routes)
        # (a narrow route of ours goes only once the wider one that takes its traffic is in)
        first = (
            change.kind is Kind.ROUTE
            and out
            and (
                any(_admits_new(c) for c in out[-1])
                or (takes_vpn(change) and not any(takes_vpn(c) for c in out[-1]))
                or any(_covers(c, change) for c in out[-1])
            )
        )
        if change.kind in SIDE_BY_SIDE and out and out[-1][0].kind in SIDE_BY_SIDE and not first:
            out[-1].append(change)
        else:
            out.append([change])
    return tuple(tuple(step) for step in out)


def _covers(made: Change, gone: Change) -> bool:
    """`made` routes a wider prefix that takes in what `gone` (a route deleted) carried."""
    return (
        gone.action is Action.DELETE
        and made.kind is Kind.ROUTE
        and made.action in (Action.CREATE, Action.REPLACE)
        and made.destination is not None
        and gone.destination is not None
        and made.route_table == gone.route_table
        and gone.destination.subnet_of(made.destination)
    )


def takes_vpn(change: Change, old: ForeignConnector | None = None) -> bool:
    """A route of the VPN range moved off a connector made by hand (a take-over): those move
    after every other route of it, so that a take-over stopped half-way always leaves one
    leading to the old VM, by which the next plan finds it again."""
    return (change.kind is Kind.ROUTE and change.action is Action.REPLACE
            and change.label == VPN_CLIENTS and change.ref == TAKE_OVER
            and (old is None or change.previous_target == old.interface))  # fmt: skip


def _admits_new(change: Change) -> bool:
    return change.kind is Kind.APP_ACCESS and change.target == NEW_CONNECTOR
