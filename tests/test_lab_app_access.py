"""Why app access is by address: the seed's flows on a real kernel, with each site's app server
filtering inbound packets the way an AWS security group does (tests/lab/world.py,
enforce_security_group). The filter is built from the plan's own app-access changes, and
compared with the seed's advice alone ("add the Security Group of the Connector instance").

Both connectors run the plan's setup script in one of three modes; routers get the plan's
routes. Outcomes (the source each server saw, or DROPPED) are printed as figures."""

from __future__ import annotations

import pytest
from conftest import FIGURES, lab_marks
from lab.plan import (
    NAT_EVERYTHING,
    NAT_EXCEPT_LOCAL,
    NO_NAT,
    Mode,
    lab_plan,
    planned_app_rules,
    planned_routes,
    planned_setup_script,
)
from lab.world import (
    BOB_VPN_IP,
    BRANCH,
    HQ,
    SeedWorld,
    add_router_routes,
    connector_reset,
    enforce_security_group,
    open_security_group,
    run_setup_script,
)

from provisioner.model import CONNECTOR_SOURCE, IngressRule, Plan, Ports

pytestmark = lab_marks("lab-app-access")

MODES = {"no NAT": NO_NAT, "NAT with ! -d": NAT_EXCEPT_LOCAL, "NAT everything": NAT_EVERYTHING}
SEED_RULE = [IngressRule(CONNECTOR_SOURCE)]  # the seed's advice: the connector's group


def connect(lab: SeedWorld, mode: Mode, plan: Plan) -> None:
    """Both connectors as the plan launches them, both routers with the plan's routes."""
    for site in (HQ, BRANCH):
        connector_reset(lab, site)
        run_setup_script(lab, site, planned_setup_script(site, plan))
        add_router_routes(lab, site, planned_routes(site, plan))


def flows(lab: SeedWorld) -> dict[str, str | None]:
    """Remote access and site-to-site both ways: the source each server saw, or None."""
    return {
        "Bob -> HR app": lab.http(lab.bob, HQ.server_ip, timeout=2),
        "HQ host -> Finance": lab.http(HQ.server, BRANCH.server_ip, timeout=2),
        "Finance -> HR app": lab.http(BRANCH.server, HQ.server_ip, timeout=2),
    }


def record(mode: str, rules: str, seen: dict[str, str | None]) -> None:
    FIGURES[f"lab app access, {mode}, {rules}"] = "; ".join(
        f"{flow} sees {source}" if source else f"{flow} DROPPED" for flow, source in seen.items()
    )


@pytest.mark.parametrize("name", MODES)
def test_app_filters_admit_the_planned_sources_and_not_the_seed_rule_alone(
    seed_lab: SeedWorld, name: str
):
    mode = MODES[name]
    plan = lab_plan(hq=mode, branch=mode)
    connect(seed_lab, mode, plan)
    if mode.keeps_source:
        # seed remote access steps 14-16 and site-to-site steps 18-20: the real sources arrive
        expected = {
            "Bob -> HR app": BOB_VPN_IP,
            "HQ host -> Finance": HQ.server_ip,
            "Finance -> HR app": BRANCH.server_ip,
        }
    else:  # seed remote access steps 18-20: each connector's own address arrives
        expected = {
            "Bob -> HR app": HQ.connector_ip,
            "HQ host -> Finance": BRANCH.connector_ip,
            "Finance -> HR app": HQ.connector_ip,
        }
    try:
        assert flows(seed_lab) == expected  # no filter: the routing itself works

        for site in (HQ, BRANCH):
            rules = planned_app_rules(site, plan)
            if mode.keeps_source:  # by address: the VPN range and the peer, never a group
                assert {str(r.source) for r in rules} == {"100.96.0.0/11", *planned_peers(site)}
            else:
                assert [r.source for r in rules] == [CONNECTOR_SOURCE]
            enforce_security_group(seed_lab, site, rules)
        seen = flows(seed_lab)
        record(name, "the toolkit's rules", seen)
        assert seen == expected
        if mode.keeps_source:  # Option 1: the app reaches Bob unsolicited through the filter
            assert seed_lab.ping(HQ.server, BOB_VPN_IP)

        for site in (HQ, BRANCH):
            enforce_security_group(seed_lab, site, SEED_RULE)
        seen = flows(seed_lab)
        record(name, "the seed's group reference alone", seen)
        if mode.keeps_source:  # a group reference never matches a forwarded source
            assert seen == dict.fromkeys(expected)
        else:
            assert seen == expected
    finally:
        for site in (HQ, BRANCH):
            open_security_group(seed_lab, site)


def planned_peers(site) -> set[str]:
    return {BRANCH.subnet} if site is HQ else {HQ.subnet}


def test_app_filter_with_ports_admits_only_those(seed_lab: SeedWorld):
    plan = lab_plan(hq=NO_NAT, branch=NO_NAT, ports=(Ports("tcp", 80, 80),))
    connect(seed_lab, NO_NAT, plan)
    try:
        enforce_security_group(seed_lab, HQ, planned_app_rules(HQ, plan))
        assert seed_lab.http(seed_lab.bob, HQ.server_ip) == BOB_VPN_IP  # tcp/80 admitted
        assert not seed_lab.ping(seed_lab.bob, HQ.server_ip)  # icmp is not
        assert seed_lab.ping(HQ.server, BOB_VPN_IP)  # replies to what the app sends are
        FIGURES["lab app access, no NAT, ports tcp/80"] = "Bob -> HR app HTTP ok, ping DROPPED"
    finally:
        open_security_group(seed_lab, HQ)
