"""The clouds' own limits (issue 38) on GCP, Azure and OCI, against our fakes through each real
SDK: each fake refuses what goes over its cloud's limit with the cloud's own error body, and
the plan counts first: over the limit nothing is written and apply raises LimitError (exit 3);
the same file with a `summarize` entry applies, re-plans to nothing and destroys clean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from provisioner.errors import CloudError, LimitError
from provisioner.model import Counted

OFFICES = 12  # branch offices, each a /24 that joins no other: a route each


def with_offices(doc: dict[str, Any], summarize: bool = False) -> dict[str, Any]:
    for i in range(OFFICES):
        doc["networks"][f"office{i}"] = {"cloud": "external", "subnets": [f"172.20.{2 * i}.0/24"]}
    if summarize:
        for name in ("hq", "spoke"):
            doc["networks"][name]["summarize"] = ["172.20.0.0/16"]
    return doc


def _gcp_limit(world: Any, routes: int) -> Callable[[], None]:
    """The project's ROUTES quota: what it holds now (the seed's) plus `routes`."""
    project = world.hq.project
    held = world.gce.usage(project, "ROUTES")
    world.gce.quotas[project] = {"ROUTES": float(held + routes)}
    return lambda: world.gce.quotas.pop(project, None)


def _azure_limit(world: Any, routes: int) -> Callable[[], None]:
    """Routes per route table, as Usages - List says it: `routes`."""
    world.arm.limits["RoutesPerRouteTable"] = routes
    return lambda: world.arm.limits.update(RoutesPerRouteTable=1000)


def _oci_limit(world: Any, routes: int) -> Callable[[], None]:
    """Route rules per table: OCI's is fixed and not readable, so the tenancy's is given to
    the provider (`route_rules_limit`) as the fake holds it."""
    world.fake.limits["route-rules"] = routes
    world.options = {**type(world).options, "route_rules_limit": routes}

    def restore() -> None:
        world.fake.limits["route-rules"] = 200
        world.options = type(world).options

    return restore


LOWER = {"gcp": _gcp_limit, "azure": _azure_limit, "oci": _oci_limit}


@pytest.fixture(params=sorted(LOWER))
def cloud(request: pytest.FixtureRequest) -> Any:
    world = request.getfixturevalue({"oci": "oci_world"}.get(request.param, request.param))
    return world


def test_over_the_limit_the_plan_refuses_and_the_cloud_would_too(cloud: Any):
    """Room for 10 routes: the file needs more (per table or in the project); the plan says
    so and apply writes nothing. Without the plan's count the cloud refuses half way: the
    fake's own refusal, in the cloud's words."""
    restore = LOWER[cloud.cloud](cloud, 10)
    try:
        before = cloud.snapshot()
        d = cloud.deployment(with_offices(cloud.topology()))
        plan = d.plan()
        over = [f for f in plan.overfull if f.cap.counts is Counted.ROUTES]
        assert over, [f.to_dict() for n in plan.networks for f in n.fills]
        summary = over[0].summary()
        assert "would hold" in summary and "limit of" in summary and "summarize" in summary
        with pytest.raises(LimitError, match="nothing was changed"):
            d.apply()
        assert cloud.mutating() == [] and cloud.snapshot() == before
        # the same plan carried out regardless (the engine, past the plan's check): the
        # cloud's own refusal, reported as what was done and what was not
        with pytest.raises(CloudError) as refused:
            d.execute(_without_fills(plan))
        assert QUOTA_WORDS[cloud.cloud] in str(refused.value)
        d.destroy()
        assert cloud.snapshot() == before
    finally:
        restore()


QUOTA_WORDS = {
    "gcp": "Quota 'ROUTES' exceeded", "azure": "RoutesPerRouteTable", "oci": "LimitExceeded",
}  # fmt: skip


def _without_fills(plan: Any) -> Any:
    from dataclasses import replace

    return replace(plan, networks=tuple(replace(n, fills=()) for n in plan.networks))


def test_a_summary_fits_applies_replans_empty_and_destroys_clean(cloud: Any):
    restore = LOWER[cloud.cloud](cloud, 10)
    try:
        before = cloud.snapshot()
        doc = with_offices(cloud.topology(), summarize=True)
        d = cloud.deployment(doc)
        plan = d.plan()
        assert plan.overfull == ()
        dests = {str(c.destination) for c in plan.changes if c.kind == "route"}
        assert "172.20.0.0/16" in dests and not any(
            x.startswith("172.20.") and x != "172.20.0.0/16" for x in dests
        )
        d.apply()
        again = cloud.deployment(doc)
        assert again.plan().empty
        assert all(s.healthy for s in again.status())
        again.destroy()
        assert cloud.snapshot() == before
    finally:
        restore()


def _azure_rules(world: Any, rules: int) -> Callable[[], None]:
    world.arm.limits["SecurityRulesPerNetworkSecurityGroup"] = rules
    return lambda: world.arm.limits.update(SecurityRulesPerNetworkSecurityGroup=2000)


def _oci_rules(world: Any, rules: int) -> Callable[[], None]:
    world.fake.limits["nsg-rules"] = rules
    world.options = {**type(world).options, "nsg_rules_limit": rules}

    def restore() -> None:
        world.fake.limits["nsg-rules"] = 120
        world.options = type(world).options

    return restore


def _gcp_rules(world: Any, rules: int) -> Callable[[], None]:
    """The project's FIREWALLS quota: room for one more rule (the plan makes two: the
    connector's and the app tag's)."""
    project = world.hq.project
    world.gce.quotas[project] = {"FIREWALLS": float(world.gce.usage(project, "FIREWALLS") + 1)}
    return lambda: world.gce.quotas.pop(project, None)


LOWER_RULES = {"azure": _azure_rules, "oci": _oci_rules, "gcp": _gcp_rules}


def test_a_group_over_its_rule_limit_is_refused_and_a_summary_fits(cloud: Any):
    """HQ's app group admits every arriving source (no NAT: sources are kept): the VPN range,
    the spoke, the partner and 12 offices is over a limit of 10 rules; summarized, 4 fit. On
    GCP one firewall rule holds every source of a port spec: what is counted is the project's
    rules, and the way out is fewer port specs."""
    restore = LOWER_RULES[cloud.cloud](cloud, 10)
    try:
        before = cloud.snapshot()
        d = cloud.deployment(with_offices(cloud.topology()))
        plan = d.plan()
        over = next(f for f in plan.overfull if f.cap.counts is Counted.RULES)
        assert "app_security_groups" in over.summary() or "subnets" in over.summary()
        with pytest.raises(LimitError):
            d.apply()
        assert cloud.mutating() == [] and cloud.snapshot() == before
        if cloud.cloud == "gcp":
            assert "fewer port specs" in over.summary()
            return
        fits = cloud.deployment(with_offices(cloud.topology(), summarize=True))
        assert fits.plan().overfull == ()
        fits.apply()
        assert cloud.deployment(with_offices(cloud.topology(), summarize=True)).plan().empty
        fits.destroy()
        assert cloud.snapshot() == before
    finally:
        restore()
