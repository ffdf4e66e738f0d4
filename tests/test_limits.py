"""The clouds' own limits (issue 38) on AWS, against moto through the real boto3 client: the
plan counts what each route table and security group holds after apply against the account's
quota as Service Quotas says it; over it, nothing is written and the exit is 3. moto serves
the VPC quotas but enforces none: here EC2 refuses the route or rule over the quota as AWS
does (`RouteLimitExceeded`, `RulesPerSecurityGroupLimitExceeded`), counting with the same
reads the provider makes, so an apply that got past the plan would meet the cloud's refusal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import CallLog, deployment, snapshot

from provisioner.cli import run
from provisioner.errors import LimitError
from provisioner.model import Counted
from provisioner.providers.aws import quotas
from provisioner.sandbox import SandboxWorld

ROUTES = "L-93826ACB"
RULES = "L-0EA8095F"


@pytest.fixture
def quota(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set one of the account's VPC quotas as Service Quotas answers it (moto's table)."""
    from moto.servicequotas.resources.default_quotas.vpc import VPC_DEFAULT_QUOTAS

    def set_quota(code: str, value: int) -> None:
        (entry,) = [q for q in VPC_DEFAULT_QUOTAS if q["QuotaCode"] == code]
        monkeypatch.setitem(entry, "Value", float(value))

    yield set_quota


class Refused:
    """What a real AWS answers for one over the quota: an error response, not applied."""

    status_code = 400
    headers: dict[str, str] = {}
    content = b""
    text = ""
    raw = None


@pytest.fixture
def enforced(session: Any) -> list[str]:
    """EC2 refuses a route or a rule that would take a table or group over the account's
    quota, as AWS does; returns what it refused."""
    refused: list[str] = []

    def caps(region: str) -> dict[Counted, int]:
        read = quotas.caps(session.client("service-quotas", region_name=region))
        return {c.counts: c.value for c in read}

    def route(params: Any, context: Any, **_: Any) -> Any:
        region = context.get("client_region") or "us-east-1"
        ec2 = session.client("ec2", region_name=region)
        params = params["body"]  # (EC2's query parameters, as they go on the wire)
        table = params["RouteTableId"]
        raw = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"]
        if quotas.held(raw)[table] + 1 > caps(region)[Counted.ROUTES]:
            refused.append(f"route {params.get('DestinationCidrBlock')} in {table}")
            return Refused(), {"Error": {"Code": "RouteLimitExceeded", "Message": (
                "The maximum number of routes has been reached for the specified route "
                "table.")}, "ResponseMetadata": {"HTTPStatusCode": 400}}  # fmt: skip
        return None

    def rules(params: Any, context: Any, **_: Any) -> Any:
        region = context.get("client_region") or "us-east-1"
        ec2 = session.client("ec2", region_name=region)
        params = params["body"]
        (group,) = ec2.describe_security_groups(GroupIds=[params["GroupId"]])["SecurityGroups"]
        held = sum(_rules(p) for p in group.get("IpPermissions", []))
        adding = sum(1 for k in params if re.fullmatch(SOURCE_KEY, k))
        if held + adding > caps(region)[Counted.RULES]:
            refused.append(f"{adding} rule(s) in {params['GroupId']}")
            return Refused(), {"Error": {"Code": "RulesPerSecurityGroupLimitExceeded",
                "Message": "The maximum number of rules per security group has been reached."},
                "ResponseMetadata": {"HTTPStatusCode": 400}}  # fmt: skip
        return None

    session.events.register("before-call.ec2.CreateRoute", route)
    session.events.register("before-call.ec2.AuthorizeSecurityGroupIngress", rules)
    yield refused
    session.events.unregister("before-call.ec2.CreateRoute", route)
    session.events.unregister("before-call.ec2.AuthorizeSecurityGroupIngress", rules)


SOURCE_KEY = r"IpPermissions\.\d+\.(IpRanges\.\d+\.CidrIp|Groups\.\d+\.GroupId|PrefixListIds\.\d+\.PrefixListId)"  # fmt: skip


def _rules(permission: dict[str, Any]) -> int:
    """AWS counts a rule per CIDR, group and prefix list of a permission."""
    return sum(len(permission.get(k, [])) for k in ("IpRanges", "UserIdGroupPairs",
                                                     "PrefixListIds")) or 1  # fmt: skip


BRANCHES = 12  # branch offices, each a /24 that joins no other: a route each


def with_branches(summarize: bool = False) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        for i in range(BRANCHES):
            doc["networks"][f"office{i}"] = {
                "cloud": "external", "subnets": [f"172.20.{2 * i}.0/24"],
            }  # fmt: skip
        if summarize:
            for name in ("hq", "branch"):
                doc["networks"][name]["summarize"] = ["172.20.0.0/16"]

    return edit


def test_a_route_table_over_its_quota_is_refused_at_plan_and_nothing_is_written(
    session, world: SandboxWorld, clouds, calls: CallLog, quota, enforced, capsys
):
    quota(ROUTES, 10)  # the account's quota, as Service Quotas says it
    before = snapshot(session)
    d = deployment(world, clouds, edit=with_branches())
    plan = d.plan()
    over = plan.overfull
    assert over and {f.cap.counts for f in over} == {Counted.ROUTES}
    # every table of both VPCs is counted: ours (the VPN range, the other VPC, 12 offices)
    # plus what each already holds (the local route, the internet gateway's)
    hq = next(n for n in plan.networks if n.network == "hq")
    fills = {f.holder: f for f in hq.fills if f.cap.counts is Counted.ROUTES}
    assert set(fills) == set(world.hq.route_tables)
    assert all(f.after == f.now + 2 + BRANCHES and f.cap.value == 10 for f in fills.values())
    assert all(f.cap.source == f"this account's Service Quotas, {ROUTES}" for f in fills.values())
    # the CLI: exit 3, each table named with its count, its limit, the limit's source and the
    # two ways out (the file's summarize; the quota, by its name)
    path = world.directory / "topology.yaml"
    assert run(["plan", "-f", str(path)]) == 3
    out = capsys.readouterr().out
    table = world.hq.route_tables[0]
    line = next(x for x in out.splitlines() if "! over a limit" in x and table in x)
    assert f"would hold {fills[table].after} routes" in line and "limit of 10" in line
    assert f"Service Quotas, {ROUTES}" in line and "networks.hq.summarize" in line
    assert "'Routes per route table' (L-93826ACB)" in line
    assert run(["apply", "-f", str(path), "--yes"]) == 3
    with pytest.raises(LimitError, match="nothing was changed"):
        d.apply()
    assert calls.mutating == [] and enforced == []  # refused before any write
    assert snapshot(session) == before


def test_a_summary_fits_the_quota_applies_replans_empty_and_destroys_clean(
    session, world: SandboxWorld, clouds, quota, enforced
):
    quota(ROUTES, 10)
    before = snapshot(session)
    d = deployment(world, clouds, edit=with_branches(summarize=True))
    plan = d.plan()
    assert plan.overfull == ()
    routes = [c for c in plan.changes if c.kind == "route" and c.network == "hq"]
    per_table = len(routes) // len(world.hq.route_tables)
    assert per_table == 3  # the VPN range, Branch's subnet, one summary for the 12 offices
    summary = next(c for c in routes if str(c.destination) == "172.20.0.0/16")
    assert "(summarized)" in summary.label and "office0" in summary.label
    d.apply()
    assert enforced == []  # the cloud, counting as AWS does, refused nothing
    ec2 = session.client("ec2", region_name="us-east-1")
    for t in ec2.describe_route_tables(RouteTableIds=world.hq.route_tables)["RouteTables"]:
        held = {r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") for r in t["Routes"]}
        assert held["172.20.0.0/16"] and held["172.20.0.0/16"].startswith("eni-")
        assert not any(d.startswith("172.20.") and d != "172.20.0.0/16" for d in held)
    again = deployment(world, clouds, edit=with_branches(summarize=True))
    assert again.plan().empty
    (hq,) = [s for s in again.status() if s.network == "hq"]
    assert hq.healthy
    again.destroy()
    assert snapshot(session) == before


def test_a_group_over_its_rule_quota_is_refused_at_plan(
    session, world: SandboxWorld, clouds, calls: CallLog, quota, enforced
):
    """Each office's /24 is a rule in the app group (no NAT: sources are kept); 12 offices,
    the VPN range and the other VPC on two port specs is 28 rules over a quota of 20."""
    quota(RULES, 20)

    def edit(doc: dict[str, Any]) -> None:
        with_branches()(doc)
        group = doc["networks"]["hq"]["app_security_groups"][0]
        doc["networks"]["hq"]["app_security_groups"] = [
            {"group": group, "ports": ["tcp/443", "tcp/22"]}
        ]
        doc["networks"]["hq"]["connector"]["nat"] = False
        doc["networks"]["hq"]["connector"]["egress"] = False
        doc["networks"]["hq"]["summarize"] = doc["networks"]["branch"]["summarize"] = []

    def fits(doc: dict[str, Any]) -> None:
        edit(doc)
        for name in ("hq", "branch"):
            doc["networks"][name]["summarize"] = ["172.20.0.0/16"]

    d = deployment(world, clouds, edit=lambda doc: (edit(doc), _drop_empty(doc)))
    plan = d.plan()
    (over,) = [f for f in plan.overfull if f.cap.counts is Counted.RULES]
    assert over.holder == world.topology()["networks"]["hq"]["app_security_groups"][0]
    assert over.after == over.now + 2 * (1 + 1 + BRANCHES) and over.cap.value == 20
    assert "app_security_groups" in over.summary() and RULES in over.summary()
    with pytest.raises(LimitError):
        d.apply()
    assert calls.mutating == []
    # summarized, the group holds 2 x 3 rules and apply meets no refusal
    fitting = deployment(world, clouds, edit=fits)
    assert fitting.plan().overfull == ()
    fitting.apply()
    assert enforced == []
    assert fitting.plan().empty


def _drop_empty(doc: dict[str, Any]) -> None:
    for n in doc["networks"].values():
        if n.get("summarize") == []:
            del n["summarize"]


def test_the_plan_says_what_each_table_holds_and_where_the_limit_comes_from(
    session, world: SandboxWorld, clouds, capsys
):
    """Under the limit: one line per network with each table's and group's count against its
    limit, and the JSON plan's `limits`; a credential that cannot read Service Quotas gets
    the documented default, said so."""
    path = world.write_topology()
    assert run(["plan", "-f", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    hq = next(n for n in doc["networks"] if n["name"] == "hq")
    tables = [x for x in hq["limits"] if x["cap"]["counts"] == "routes"]
    assert {x["holder"] for x in tables} == set(world.hq.route_tables)
    assert all(x["cap"]["value"] == 50 and not x["over"] for x in tables)
    assert run(["plan", "-f", str(path)]) == 0
    text = capsys.readouterr().out  # one line for the whole plan: the fullest
    assert (
        "limits: the fullest after apply, route table rtb-" in text and "of its 50 routes" in text
    )
    assert run(["plan", "-f", str(path), "--verbose"]) == 0
    each = next(x for x in capsys.readouterr().out.splitlines() if "route tables: " in x)
    assert all(t in each for t in world.hq.route_tables) and "of 50 routes" in each


def test_with_the_service_the_doctor_traces_an_office_through_the_summary_and_the_service_keeps_each_subnet(  # noqa: E501
    session, world: SandboxWorld, service
):
    """Both halves: the clouds route the summary, the VPN service routes each office's own
    subnet to that office (the service half is not summarized); the doctor traces an office's
    flow into HQ, its answer's route back through the summary."""
    from provisioner.api import Deployment
    from provisioner.providers.aws.world import add_app_host, sandbox_clouds
    from provisioner.spec import load_topology

    add_app_host(session, world.hq)  # a host for the flows to reach

    doc = world.topology(partner=True, service=True)
    with_branches(summarize=True)(doc)
    path = world.directory / "service.yaml"
    path.write_text(json.dumps(doc))
    clouds = sandbox_clouds(session, service.url, sleep=lambda seconds: None)
    d = Deployment(load_topology(path), clouds)
    d.apply()
    for connector in list(service.fake.state.connectors):  # each VM dials in
        service.fake.connect(connector)
    held = service.fake.snapshot()
    assert held["office3"]["routes"] == ["172.20.6.0/24"]  # its own, as the file says it
    assert held["hq"]["routes"] == ["10.0.0.0/18"]
    reports = [r for r in d.doctor() if r.kind == "site-to-site" and r.flow.startswith("office3")
               and " hq " in r.flow]  # fmt: skip
    assert reports and all(r.ok for r in reports), [r.dropped_at for r in reports]
    back = [h.detail for r in reports for p in r.pieces for h in p.hops if h.what == "route back"]
    assert back and all("172.20.0.0/16 -> the connector" in x for x in back), back
    assert Deployment(load_topology(path), clouds).plan().empty
    d.destroy()
