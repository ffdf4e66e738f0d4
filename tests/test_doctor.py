"""`provision doctor` on AWS (moto): each flow traced through the connector, the subnets'
network ACLs (stateless, rule numbers, the answer's ephemeral ports), the app's security
group (stateful) and the route back (longest prefix over every route). Each case breaks one
thing as a user might, and the doctor names the hop, the rule or route, the flow hop it
breaks, and the fix (and whether apply makes it)."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from typing import Any

import pytest
from conftest import FORBIDDEN, CallLog, error_response, inject

from provisioner import Deployment, load_topology
from provisioner.cli import run
from provisioner.doctor import FlowReport
from provisioner.providers import Clouds
from provisioner.providers.aws.world import add_app_host
from provisioner.sandbox import SandboxWorld

VPN_RANGE = "100.96.0.0/11"  # the VPN clients' range: the doctor judges all of it


@pytest.fixture
def applied(world: SandboxWorld, session: Any) -> tuple[SandboxWorld, Any, Any]:
    """The world applied, with an app server in HQ's app group in another subnet than the
    connector's (so that the subnets' network ACLs are crossed)."""
    ec2 = session.client("ec2", region_name="us-east-1")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                      SubnetId=world.hq.subnets[1], SecurityGroupIds=[world.hq.app_group])  # fmt: skip
    add_app_host(session, world.branch)  # every app group has a host: every flow is judged
    deployment(world, session).apply()
    return world, session, ec2


def deployment(world: SandboxWorld, session: Any, **connector: Any) -> Deployment:
    doc = world.topology(partner=True)
    doc["networks"]["hq"]["connector"].update(connector)
    path = world.directory / "topology.yaml"
    path.write_text(json.dumps(doc))
    return Deployment(
        load_topology(path), Clouds(options={"aws": {"session": session, "poll_seconds": 0.0}})
    )


def remote_access(reports: tuple[FlowReport, ...]) -> FlowReport:
    return next(r for r in reports if r.flow.startswith("VPN clients (") and " hq " in r.flow)


def use_acl(ec2: Any, world: SandboxWorld, acl: str) -> None:
    """HQ's app subnet takes network ACL `acl`."""
    current = ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [world.hq.subnets[1]]}]
    )["NetworkAcls"][0]
    association = next(a["NetworkAclAssociationId"] for a in current["Associations"]
                       if a["SubnetId"] == world.hq.subnets[1])  # fmt: skip
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)


def app_subnet_acl(ec2: Any, world: SandboxWorld, outbound: list[tuple[int, str, int, int]]) -> str:
    """A network ACL of the admin's on HQ's app subnet: everything in, and out only
    `outbound` (rule number, action, ports from, to: TCP to anywhere)."""
    acl = ec2.create_network_acl(VpcId=world.hq.vpc)["NetworkAcl"]["NetworkAclId"]
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1",
                                 RuleAction="allow", Egress=False, CidrBlock="0.0.0.0/0")  # fmt: skip
    for number, action, first, last in outbound:
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=number, Protocol="6",
                                     RuleAction=action, Egress=True, CidrBlock="0.0.0.0/0",
                                     PortRange={"From": first, "To": last})  # fmt: skip
    use_acl(ec2, world, acl)
    return str(acl)


def test_after_apply_every_flow_is_ok(applied: Any):
    world, session, _ = applied
    reports = deployment(world, session).doctor()
    flows = {r.kind for r in reports if r.hops}
    assert flows == {"remote-access", "unsolicited", "site-to-site", "egress"}
    assert all(r.ok for r in reports), [(r.flow, r.dropped_at) for r in reports if not r.ok]
    hops = [h.what for h in remote_access(reports).hops]
    assert hops[0] == "connector of hq" and "route back" in hops
    assert any(h.startswith("network ACL acl-") for h in hops)  # the subnets' edges were crossed
    assert any(h.startswith("security group sg-") for h in hops)


def test_a_network_acl_that_drops_the_answers_ephemeral_ports(applied: Any):
    world, session, ec2 = applied
    acl = app_subnet_acl(ec2, world, [(100, "allow", 443, 443)])  # answers need 1024-65535
    dropped = remote_access(deployment(world, session).doctor()).dropped_at
    assert dropped is not None and dropped.what == f"network ACL {acl}"
    assert "tcp/1024-65535 out to" in dropped.detail and "default deny" in dropped.detail
    assert dropped.breaks == "remote access hop 7" and not dropped.apply_fixes
    # a deny at a better number than the allow decides, as ACLs do
    acl = app_subnet_acl(ec2, world, [(90, "deny", 30000, 40000), (100, "allow", 1024, 65535)])
    dropped = remote_access(deployment(world, session).doctor()).dropped_at
    assert dropped is not None and "rule 90: deny" in dropped.detail
    acl = app_subnet_acl(ec2, world, [(100, "allow", 1024, 65535)])
    assert remote_access(deployment(world, session).doctor()).ok


def test_a_more_specific_route_steals_the_way_back(applied: Any):
    world, session, ec2 = applied
    table = next(t for t in ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [world.hq.subnets[1]]}]
    )["RouteTables"])  # fmt: skip
    ec2.create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="100.96.3.0/24",
                     GatewayId=world.hq.internet_gateway)  # fmt: skip
    reports = deployment(world, session).doctor()
    dropped = remote_access(reports).dropped_at
    assert dropped is not None and dropped.what == "route back"
    assert "100.96.3.0/24" in dropped.detail and "takes" in dropped.detail
    assert dropped.breaks == "remote access hop 7" and not dropped.apply_fixes
    # the app's own connections to VPN clients (the seed's Option 1) die there too
    unsolicited = next(r for r in reports if r.kind == "unsolicited" and r.flow.startswith("hq "))
    assert unsolicited.dropped_at is not None and unsolicited.dropped_at.what == "route back"


def test_a_missing_app_rule_is_named_and_apply_makes_it(applied: Any):
    world, session, ec2 = applied
    group = ec2.describe_security_groups(GroupIds=[world.hq.app_group])["SecurityGroups"][0]
    vpn = [p for p in group["IpPermissions"]
           if any(r["CidrIp"] == "100.96.0.0/11" for r in p.get("IpRanges", []))]  # fmt: skip
    ec2.revoke_security_group_ingress(GroupId=world.hq.app_group, IpPermissions=vpn)
    dropped = remote_access(deployment(world, session).doctor()).dropped_at
    assert dropped is not None and dropped.what == f"security group {world.hq.app_group}"
    assert dropped.breaks == "remote access hop 6" and dropped.apply_fixes
    deployment(world, session).apply()
    assert remote_access(deployment(world, session).doctor()).ok


def test_a_stopped_connector_and_forwarding_off(applied: Any):
    world, session, ec2 = applied
    d = deployment(world, session)
    connector = d.observe()["hq"].connector
    assert connector is not None
    ec2.modify_network_interface_attribute(NetworkInterfaceId=connector.interface,
                                           SourceDestCheck={"Value": True})  # fmt: skip
    dropped = remote_access(deployment(world, session).doctor()).dropped_at
    assert dropped is not None and "does not forward" in dropped.detail and dropped.apply_fixes
    ec2.stop_instances(InstanceIds=[connector.instance])
    dropped = remote_access(deployment(world, session).doctor()).dropped_at
    assert dropped is not None and "stopped" in dropped.detail
    assert dropped.breaks == "remote access hop 2" and dropped.fix == "apply starts it"


def test_what_the_app_sees_follows_the_nat_mode(world: SandboxWorld, session: Any, applied: Any):
    _, _, ec2 = applied
    sees = next(h for h in remote_access(deployment(world, session).doctor()).hops
                if h.what == "source seen by the app")  # fmt: skip
    assert sees.detail == VPN_RANGE  # NAT with the ! -d exception: the real addresses
    everything = deployment(world, session, nat_preserve_source=False)
    everything.apply()
    report = remote_access(deployment(world, session, nat_preserve_source=False).doctor())
    sees = next(h for h in report.hops if h.what == "source seen by the app")
    assert "NAT: the app sees 10.0." in sees.detail and report.ok


def test_the_cli_says_ok_or_dropped_and_exits_accordingly(
    applied: Any, capsys: pytest.CaptureFixture[str]
):
    world, session, ec2 = applied
    path = world.directory / "topology.yaml"
    assert run(["doctor", "-f", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK       VPN clients" in out and "flows OK" in out
    app_subnet_acl(ec2, world, [(100, "allow", 443, 443)])
    assert (
        run(["doctor", "-f", str(path), "--json", "--flow", f"vpn->hq:{world.hq.app_group}"]) == 1
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "connector-provisioner/doctor"
    verdicts = {f["verdict"] for f in doc["flows"]}
    assert verdicts == {"DROPPED"} and all(
        f["flow"].startswith("VPN clients (") for f in doc["flows"]
    )
    dropped = doc["flows"][0]["dropped_at"]
    assert set(dropped) == {"hop", "ok", "detail", "breaks", "fix", "apply_fixes"}
    assert run(["doctor", "-f", str(path)]) == 1
    text = capsys.readouterr().out
    assert "DROPPED" in text and "breaks remote access hop 7" in text and "by hand" in text


def test_one_flow_by_its_source_network_host_and_ports(
    applied: Any, capsys: pytest.CaptureFixture[str], calls: CallLog
):
    world, session, ec2 = applied
    path = str(world.directory / "topology.yaml")
    host = next(
        i["PrivateIpAddress"]
        for r in ec2.describe_instances(Filters=[{"Name": "instance.group-id",
                                                  "Values": [world.hq.app_group]}])["Reservations"]
        for i in r["Instances"]
    )  # fmt: skip
    assert run(["doctor", "-f", path, "--json", "--flow", f"vpn->hq:{host}:tcp/8443"]) == 0
    flows = json.loads(capsys.readouterr().out)["flows"]
    assert [f["flow"].split(" -> ")[1] for f in flows] == [
        f"hq {world.hq.app_group} ({host}) tcp/8443"
    ]
    assert run(["doctor", "-f", path, "--json", "--flow", f"branch->hq:{world.hq.app_group}"]) == 0
    flows = json.loads(capsys.readouterr().out)["flows"]
    assert len(flows) == 1 and flows[0]["kind"] == "site-to-site"
    assert run(["doctor", "-f", path, "--json", "--flow", "hq->vpn"]) == 0
    flows = json.loads(capsys.readouterr().out)["flows"]
    assert [f["kind"] for f in flows] == ["unsolicited"]
    assert run(["doctor", "-f", path, "--flow", "vpn->nowhere"]) == 2
    assert "'nowhere' (network) is not a network of the file" in capsys.readouterr().err
    assert run(["doctor", "-f", path, "--flow", "vpn->hq:x:tcp/99999"]) == 2
    assert "--flow" in capsys.readouterr().err
    calls.clear()  # bad input is said before anything is read
    assert run(["doctor", "-f", path, "--flow", "vpn->nowhere"]) == 2
    assert run(["doctor", "-f", path, "--flow", "vpn->"]) == 2
    assert calls.calls == []


def test_a_connector_on_an_older_bootstrap_is_named(applied: Any):
    """The file now wants NAT for everything; the running connector still has the old
    bootstrap: what the app sees is not what the file says until apply replaces it."""
    world, session, _ = applied
    stale = deployment(world, session, nat_preserve_source=False).doctor()
    dropped = remote_access(stale).dropped_at
    assert dropped is not None and "older bootstrap" in dropped.detail
    assert dropped.fix == "apply replaces it" and dropped.apply_fixes


def test_a_flow_that_cannot_be_judged_is_unknown_and_fails_the_exit(
    world: SandboxWorld, session: Any, capsys: pytest.CaptureFixture[str]
):
    """Before: an app group with no hosts gave `? VPN clients -> ...`, `doctor: 0 of 1 flows
    OK` and exit 0, and `--json` said OK with no hops. Now it is UNKNOWN in both, with how to
    trace one host, and the exit says so (5); a --flow that matches nothing is exit 2."""
    deployment(world, session).apply()  # no host in the app groups
    path = str(world.directory / "topology.yaml")
    assert run(["doctor", "-f", path]) == 5
    text = capsys.readouterr().out
    assert "UNKNOWN  VPN clients" in text and "has no hosts to reach" in text
    # the way on names what to add to the file, then this very flow with the group's ports
    group = world.hq.app_group
    assert (f"not judged: put a server in {group}, or name a group that has one in "
            f"networks.hq.app_security_groups; then provision doctor --flow vpn->hq:{group}:all"
            ) in text  # fmt: skip
    assert "UNKNOWN" in text.splitlines()[-1]
    assert run(["doctor", "-f", path, "--flow", "vpn->hq:10.0.0.5:tcp/443"]) != 2  # it parses
    capsys.readouterr()
    assert run(["doctor", "-f", path, "--json"]) == 5
    flows = json.loads(capsys.readouterr().out)["flows"]
    unknown = [f for f in flows if not f["hops"]]
    assert unknown and all(f["verdict"] == "UNKNOWN" for f in unknown)
    assert run(["doctor", "-f", path, "--flow", "no flow is named like this"]) == 2
    assert "matches no flow of the file" in capsys.readouterr().err
    # the README's form (its own-network example has no host either): UNKNOWN, not nothing
    for query, source in (("vpn->hq", "VPN clients"), ("partner->hq", "partner"),
                          ("192.168.0.9->hq", "192.168.0.9")):  # fmt: skip
        assert run(["doctor", "-f", path, "--flow", query]) == 5, query
        text = capsys.readouterr().out
        assert f"UNKNOWN  {source} -> hq {world.hq.app_group}" in text, text
        assert f"--flow {query.split('->')[0]}->hq:{world.hq.app_group}:all" in text, text


# --- whole ranges, not one sample address (issue 28) ------------------------------------------


def _app_table(ec2: Any, world: SandboxWorld) -> str:
    return str(next(t for t in ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [world.hq.subnets[1]]}]
    )["RouteTables"])["RouteTableId"])  # fmt: skip


def test_a_route_for_a_quarter_of_a_range_drops_that_quarter_and_says_so(
    applied: Any, capsys: pytest.CaptureFixture[str]
):
    """Before: one sample address stood for Branch (192.168.0.10) and the doctor said OK
    while a peering route took a quarter of Branch's answers away. Now the range is cut at
    the route's boundary and the quarter is DROPPED, named, with its share."""
    world, session, ec2 = applied
    pcx = ec2.create_vpc_peering_connection(VpcId=world.hq.vpc, PeerVpcId=world.hq.vpc)[
        "VpcPeeringConnection"]["VpcPeeringConnectionId"]  # fmt: skip
    ec2.create_route(RouteTableId=_app_table(ec2, world), DestinationCidrBlock="192.168.1.0/24",
                     VpcPeeringConnectionId=pcx)  # fmt: skip
    reports = deployment(world, session).doctor()
    branch = next(r for r in reports if r.kind == "site-to-site" and r.flow.startswith("branch ("))
    assert branch.verdict == "DROPPED" and branch.flow.startswith("branch (192.168.0.0/22) -> hq")
    (lost,) = branch.dropped
    assert lost.ranges == (IPv4Network("192.168.1.0/24"),) and lost.share == "a quarter of it"
    assert lost.dropped_at is not None and lost.dropped_at.what == "route back"
    assert f"192.168.1.0/24 -> {pcx}" in lost.dropped_at.detail
    kept = [p for p in branch.pieces if p.ok]
    assert sorted(r for p in kept for r in p.ranges) == [
        IPv4Network("192.168.0.0/24"), IPv4Network("192.168.2.0/23")]  # fmt: skip
    assert remote_access(reports).ok  # the VPN clients' answers are not touched

    path = str(world.directory / "topology.yaml")
    assert run(["doctor", "-f", path, "--flow", f"branch->hq:{world.hq.app_group}"]) == 1
    text = capsys.readouterr().out
    assert "DROPPED for 192.168.1.0/24 of branch (a quarter of it)" in text
    assert f"at route back: {_app_table(ec2, world)}: 192.168.1.0/24 -> {pcx}" in text
    assert run(["doctor", "-f", path, "--json", "--flow", f"branch->hq:{world.hq.app_group}"]) == 1
    (flow,) = json.loads(capsys.readouterr().out)["flows"]
    assert [(p["source"], p["verdict"]) for p in flow["pieces"]] == [
        (["192.168.1.0/24"], "DROPPED"), (["192.168.0.0/24", "192.168.2.0/23"], "OK")]  # fmt: skip


def test_an_acl_deny_for_part_of_the_vpn_range_is_that_part_dropped(applied: Any):
    world, session, ec2 = applied
    acl = ec2.create_network_acl(VpcId=world.hq.vpc)["NetworkAcl"]["NetworkAclId"]
    for number, egress, action, cidr in ((90, False, "deny", "100.96.4.0/22"),
                                         (100, False, "allow", "0.0.0.0/0"),
                                         (100, True, "allow", "0.0.0.0/0")):  # fmt: skip
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=number, Protocol="-1",
                                     RuleAction=action, Egress=egress, CidrBlock=cidr)  # fmt: skip
    use_acl(ec2, world, acl)
    report = remote_access(deployment(world, session).doctor())
    assert report.verdict == "DROPPED"
    (lost,) = report.dropped
    assert lost.ranges == (IPv4Network("100.96.4.0/22"),)
    assert lost.dropped_at is not None and "rule 90: deny" in lost.dropped_at.detail
    assert lost.share == "0.0488 % of it"


def test_the_flow_grammar_takes_ranges_sites_any_host_and_names_what_exists(
    applied: Any, capsys: pytest.CaptureFixture[str]
):
    world, session, ec2 = applied
    path = str(world.directory / "topology.yaml")

    def flows(query: str, code: int = 0) -> list[dict[str, Any]]:
        assert run(["doctor", "-f", path, "--json", "--flow", query]) == code, query
        return list(json.loads(capsys.readouterr().out)["flows"])

    # a range of the VPN clients: only that range is judged
    got = flows("100.96.3.0/24->hq")
    assert got and {f["kind"] for f in got} == {"remote-access", "egress"}
    assert all(f["pieces"][0]["source"] == ["100.96.3.0/24"] for f in got)
    # an address of Branch: a site-to-site flow from that address alone
    (one,) = flows(f"192.168.1.7->hq:{world.hq.app_group}")
    assert one["kind"] == "site-to-site" and one["flow"].startswith("branch (192.168.1.7) -> hq")
    # an external site, both ways: the partner's LAN to HQ's app, HQ's app to the partner
    assert {f["kind"] for f in flows("partner->hq")} == {"site-to-site"}
    (back,) = flows("hq->partner")
    assert (
        back["flow"].startswith(f"hq {world.hq.app_group} (")
        and "-> partner (172.31.0.0/16)" in back["flow"]
    )
    assert back["verdict"] == "OK", back
    # the internet: egress
    assert [f["kind"] for f in flows("internet->hq")] == ["egress"]
    # an address of HQ in no app group: its subnet's layers judged, its own not read
    (loose,) = flows("vpn->hq:10.0.1.250:tcp/22", code=5)
    assert loose["verdict"] == "UNKNOWN" and "in no app group" in loose["dropped_at"]["detail"]
    assert any(h["hop"] == "route back" for h in loose["hops"])
    # a query that matches no flow is bad input naming the flows that exist
    assert run(["doctor", "-f", path, "--flow", "partner->vpn"]) == 2
    err = capsys.readouterr().err
    assert "matches no flow of the file" in err and "vpn->hq" in err and "branch->hq" in err
    assert run(["doctor", "-f", path, "--flow", "10.0.0.5/40->hq"]) == 2
    assert "(source) is not vpn, internet" in capsys.readouterr().err


def test_security_group_egress_rules_on_the_path(applied: Any):
    """The app's group lets its own connections out (the seed's Option 1) only by its egress
    rules; what the connector forwards leaves through its own group's egress rules."""
    world, session, ec2 = applied
    every = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.revoke_security_group_egress(GroupId=world.hq.app_group, IpPermissions=every)
    reports = deployment(world, session).doctor()
    unsolicited = next(r for r in reports if r.kind == "unsolicited" and r.flow.startswith("hq "))
    dropped = unsolicited.dropped_at
    assert dropped is not None and dropped.what == f"security group {world.hq.app_group} (egress)"
    assert "100.96.0.0/11" in dropped.detail and not dropped.apply_fixes
    assert remote_access(reports).ok  # an answer to an admitted request is not egress-judged
    own = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [world.hq.vpc]},
                 {"Name": "group-name", "Values": ["connector-hq"]}])["SecurityGroups"][0]  # fmt: skip
    ec2.revoke_security_group_egress(GroupId=own["GroupId"], IpPermissions=every)
    reports = deployment(world, session).doctor()
    dropped = remote_access(reports).dropped_at
    assert dropped is not None and dropped.what == "the connector's group (egress)"
    egress = next(r for r in reports if r.kind == "egress" and r.flow.endswith("through hq"))
    assert (
        egress.dropped_at is not None and egress.dropped_at.what == "the connector's group (egress)"
    )


def test_a_credential_that_may_not_read_the_layers_leaves_flows_unknown(
    applied: Any, capsys: pytest.CaptureFixture[str]
):
    """Before: a denied DescribeNetworkAcls failed the whole run. Now the network's flows are
    UNKNOWN with the reason (exit 5), and the flows elsewhere are still judged."""
    world, session, _ = applied
    inject(session, "ec2", "DescribeNetworkAcls", lambda: error_response("ec2", *FORBIDDEN["ec2"]),
           times=1)  # fmt: skip
    from provisioner.render import doctor_text

    reports = deployment(world, session).doctor()
    text = doctor_text(reports)
    verdicts = {r.verdict for r in reports}
    assert "UNKNOWN" in verdicts and "DROPPED" not in verdicts, text  # exit 5
    assert "UNKNOWN  VPN clients -> hq" in text and "UnauthorizedOperation" in text, text
    assert "OK       VPN clients (100.96.0.0/11) -> branch" in text


def test_one_flow_grammar_in_help_readme_and_parser(capsys: pytest.CaptureFixture[str]):
    from pathlib import Path

    from provisioner.doctor import FLOW_GRAMMAR

    with pytest.raises(SystemExit):
        run(["doctor", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    page = (Path(__file__).parent.parent / "docs" / "doctor.md").read_text()
    assert f"--flow {FLOW_GRAMMAR}" in help_text
    assert f"--flow {FLOW_GRAMMAR}" in page
    for source in ("vpn", "internet", "address or range"):
        assert source in help_text


def test_advice_names_a_clouds_own_rule_in_its_words_and_doctor_help_lists_its_own_flags(capsys):
    """`before the implied deny of all ingress (65535)`, not `before rule the implied deny`;
    `doctor --help` does not list what only making a VM takes (--size, --image, --nat)."""
    from ipaddress import IPv4Network

    from provisioner.doctor import _rule_ref
    from provisioner.model import FilterRule

    implied = FilterRule(131070, False, True, IPv4Network("0.0.0.0/0"),
                         name="the implied deny of all ingress (65535)", default=True)  # fmt: skip
    assert _rule_ref(implied) == "the implied deny of all ingress (65535)"
    assert _rule_ref(FilterRule(100, True, True, IPv4Network("10.0.0.0/8"))) == "rule 100"
    with pytest.raises(SystemExit):
        run(["doctor", "--help"])
    shown = capsys.readouterr().out
    assert "--cloud" in shown and "--connector-subnet" in shown
    assert not any(f in shown for f in ("--size", "--image", "--nat", "--egress"))
    with pytest.raises(SystemExit):
        run(["apply", "--help"])
    listed = capsys.readouterr().out
    assert all(f in listed for f in ("--size", "--image", "--nat", "--egress"))
