"""The changes the plans are made of, as the apply and destroy plans write them: a route, a
supporting part, a connector or part that goes. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network

from .model import (
    PROFILE_PART,
    SERVICE_FINGERPRINT,
    Action,
    Change,
    Kind,
    Observed,
    ObservedConnector,
    Part,
)


def part_changes(
    network: str, part: Part, profile_fingerprint: str, *, vm_is_new: bool
) -> list[Change]:
    """Create a part that is missing or, when it hangs on a VM that is new, again; bring the
    stored profile up to date with the file."""
    if not part.ready:
        return [Change(network, Action.CREATE, Kind.PART, part.name, part.why, part=part)]
    if part.after_connector and vm_is_new:
        why = part.why + " (again, on the new VM)"
        return [Change(network, Action.CREATE, Kind.PART, part.name, why, part=part)]
    if part.kind == PROFILE_PART and part.fingerprint != profile_fingerprint:
        what = (
            "the VPN service makes the network a new connector, so a new profile"
            if profile_fingerprint.startswith(SERVICE_FINGERPRINT)
            else "the profile file changed"
        )
        why = (
            f"{what}; the connector is handed the new one"
            if part.after_connector
            else f"{what}; the connector reads it at boot, so it is replaced"
        )
        return [Change(network, Action.UPDATE, Kind.PART, part.name, why, part=part)]
    return []


def route_change(
    network: str,
    action: Action,
    table: str,
    dest: IPv4Network,
    target: str,
    why: str,
    previous: str | None = None,
    label: str = "",
    member: int = 0,
) -> Change:
    return Change(
        network,
        action,
        Kind.ROUTE,
        f"{table} {dest}",
        why,
        route_table=table,
        destination=dest,
        target=target,
        previous_target=previous,
        label=label,
        member=member,
    )


def delete_connectors(
    network: str, connectors: Sequence[ObservedConnector], why: str
) -> list[Change]:
    return [
        Change(network, Action.DELETE, Kind.CONNECTOR, x.instance, why, member=x.member)
        for x in connectors
    ]


def delete_parts(network: str, parts: tuple[Part, ...], *, on_the_vm: bool) -> list[Change]:
    """Destroy's deletions of the parts that exist, in reverse of the provider's order."""
    return [
        Change(
            network,
            Action.DELETE,
            Kind.PART,
            part.name,
            f"destroy: the connector's {part.kind}",
            part=part,
        )
        for part in reversed(parts)
        if part.present and part.after_connector is on_the_vm
    ]


def routes_left(
    name: str,
    obs: Observed,
    selected: set[str],
    destinations: Mapping[IPv4Network, str],
    ours: set[str],
) -> list[Change]:
    """Routes of ours the file no longer wants: in a table no longer selected, or to a
    destination no longer a peer's or the VPN range."""
    changes = []
    for table in obs.route_tables:
        for route in table.routes:
            if route.target in ours and (
                table.id not in selected or route.destination not in destinations
            ):
                why = (
                    "no longer a selected route table"
                    if table.id not in selected
                    else "no longer a peer subnet or the VPN range"
                )
                changes.append(
                    route_change(
                        name, Action.DELETE, table.id, route.destination, route.target, why
                    )
                )
    return changes
