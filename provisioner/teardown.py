"""The destroy plan: everything of ours, in the reverse order of apply, the VMs before the
service connectors they use. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from .changes import delete_connectors, delete_parts, route_change
from .cloudconnexa.planner import plan_service_destroy
from .desired import pair_of
from .model import (
    Action,
    Change,
    Kind,
    NetworkPlan,
    Observed,
    ObservedService,
    Plan,
    Topology,
)


def plan_destroy(
    topology: Topology,
    observed: Mapping[str, Observed],
    service: ObservedService | None = None,
) -> Plan:
    """Remove what apply created, in reverse, and nothing else: the service's half last."""
    plans = []
    for network in topology.managed:
        obs = observed[network.name]
        name = network.name
        changes: list[Change] = []
        found = pair_of(obs)
        ours = {x.interface for x in found if x.interface}
        if obs.front is not None:
            ours.add(obs.front.id)
        if ours:
            for table in obs.route_tables:
                for route in table.routes:
                    if route.target in ours:
                        changes.append(
                            route_change(
                                name,
                                Action.DELETE,
                                table.id,
                                route.destination,
                                route.target,
                                "destroy: route to the connector",
                            )
                        )
        for g in obs.app_groups:
            for rule in g.ours:
                changes.append(
                    Change(
                        name,
                        Action.DELETE,
                        Kind.APP_ACCESS,
                        g.id,
                        "destroy: access granted for the connector's traffic",
                        rule=rule,
                    )
                )
        changes += delete_parts(name, obs.parts, on_the_vm=True)  # they go before it
        if obs.front is not None:
            changes.append(Change(name, Action.DELETE, Kind.FRONT, obs.front.id,
                                  f"destroy: the pair's {obs.front.name}"))  # fmt: skip
        changes += delete_connectors(name, found, "destroy: the connector VM")
        changes += delete_parts(name, obs.parts, on_the_vm=False)
        plans.append(NetworkPlan(network=name, cloud=network.cloud, changes=tuple(changes)))
    if service is not None:
        plans.append(plan_service_destroy(topology, service))
    return Plan(operation="destroy", networks=tuple(plans), vpn_subnet=topology.vpn_subnet)
