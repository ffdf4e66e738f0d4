"""Bad input: exit 2, one line naming the field and the value, and no cloud call at all.

Each case is a topology document edited from the seed's valid HQ + Branch, run through the
real CLI inside moto with every boto3 call recorded."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CallLog

from provisioner.cli import run
from provisioner.sandbox import SandboxWorld

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        node = doc
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return edit


def _delete(path: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        node = doc
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return edit


def _rename_network(old: str, new: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        doc["networks"][new] = doc["networks"].pop(old)

    return edit


HQ = "networks.hq"


def _pair(subnets: list[str] | None, profiles: list[str] | None, ha: bool = True) -> Edit:
    """HQ's connector as a pair (`ha`), `subnets` and `profiles` instead of the one's."""

    def edit(doc: dict[str, Any]) -> None:
        c = doc["networks"]["hq"]["connector"]
        c["ha"] = ha
        if subnets is not None:
            c.pop("subnet")
            c["subnets"] = subnets
        if profiles is not None:
            c.pop("profile")
            c["profiles"] = profiles

    return edit


@pytest.fixture
def world(unchanged_aws: tuple[Any, SandboxWorld], calls: CallLog) -> SandboxWorld:
    """Bad input reaches no cloud: every test here shares one seeded world, and checks that."""
    calls.clear()
    return unchanged_aws[1]


CASES: list[tuple[str, Edit, str, str]] = [
    # (id, edit, the field the message must name, the value it must name)
    (
        "seed typo 100.96.0.300",
        _set("vpn_subnet", "100.96.0.300/32"),
        "vpn_subnet",
        "100.96.0.300/32",
    ),
    (
        "seed typo 10.0.0.0.13",
        _set(f"{HQ}.subnets", ["10.0.0.0.13/32"]),
        f"{HQ}.subnets[0]",
        "10.0.0.0.13/32",
    ),
    ("no prefix length", _set(f"{HQ}.subnets", ["10.0.0.0"]), f"{HQ}.subnets[0]", "10.0.0.0"),
    ("host bits set", _set(f"{HQ}.subnets", ["10.0.0.10/18"]), f"{HQ}.subnets[0]", "10.0.0.10/18"),
    ("ipv6 subnet", _set(f"{HQ}.subnets", ["fd00::/64"]), f"{HQ}.subnets[0]", "fd00::/64"),
    ("subnet not a string", _set(f"{HQ}.subnets", [10]), f"{HQ}.subnets[0]", "10"),
    ("subnets not a list", _set(f"{HQ}.subnets", "10.0.0.0/18"), f"{HQ}.subnets", "10.0.0.0/18"),
    ("empty subnets", _set(f"{HQ}.subnets", []), f"{HQ}.subnets", "[]"),
    (
        "overlap within a network",
        _set(f"{HQ}.subnets", ["10.0.0.0/18", "10.0.1.0/24"]),
        f"{HQ}.subnets[1]",
        "10.0.1.0/24",
    ),
    (
        "overlap between networks",
        _set("networks.branch.subnets", ["10.0.32.0/20"]),
        "networks.branch.subnets[0]",
        "10.0.32.0/20",
    ),
    (
        "overlap with vpn_subnet",
        _set(f"{HQ}.subnets", ["100.100.0.0/16"]),
        f"{HQ}.subnets[0]",
        "100.100.0.0/16",
    ),
    (
        "vpn_subnet overlaps a network",
        _set("vpn_subnet", "10.0.0.0/8"),
        f"{HQ}.subnets[0]",
        "10.0.0.0/18",
    ),
    (
        "external overlaps",
        _set("networks.partner", {"cloud": "external", "subnets": ["192.168.2.0/24"]}),
        "networks.partner.subnets[0]",
        "192.168.2.0/24",
    ),
    ("upper-case name", _rename_network("hq", "HQ"), "networks.HQ", "HQ"),
    (
        "name with underscore",
        _rename_network("hq", "head_office"),
        "networks.head_office",
        "head_office",
    ),
    ("name too long", _rename_network("hq", "a" * 40), "networks." + "a" * 40, "a" * 40),
    (
        "unknown top key",
        _set("vpn_subnets", "100.96.0.0/11"),
        "vpn_subnets",
        "did you mean 'vpn_subnet'",
    ),
    (
        "unknown network key",
        _set(f"{HQ}.route_table", "all"),
        f"{HQ}.route_table",
        "did you mean 'route_tables'",
    ),
    (
        "unknown connector key",
        _set(f"{HQ}.connector.egres", True),
        f"{HQ}.connector.egres",
        "did you mean 'egress'",
    ),
    ("unknown cloud", _set(f"{HQ}.cloud", "awz"), f"{HQ}.cloud", "awz"),
    ("cloud missing", _delete(f"{HQ}.cloud"), f"{HQ}.cloud", "required"),
    ("version 2", _set("version", 2), "version", "2"),
    ("version missing", _delete("version"), "version", "None"),
    ("no networks", _set("networks", {}), "networks", "at least one"),
    (
        "only external",
        _set("networks", {"p": {"cloud": "external", "subnets": ["172.31.0.0/16"]}}),
        "networks",
        "managed",
    ),
    (
        "external without subnets",
        _set("networks.partner", {"cloud": "external"}),
        "networks.partner.subnets",
        "required",
    ),
    (
        "external with a connector",
        _set(
            "networks.partner", {"cloud": "external", "subnets": ["172.31.0.0/16"], "connector": {}}
        ),
        "networks.partner.connector",
        "unknown key",
    ),
    ("bad region", _set(f"{HQ}.region", "useast1"), f"{HQ}.region", "useast1"),
    ("bad vpc id", _set(f"{HQ}.vpc", "vpc_123"), f"{HQ}.vpc", "vpc_123"),
    ("missing vpc", _delete(f"{HQ}.vpc"), f"{HQ}.vpc", "required"),
    (
        "bad connector subnet",
        _set(f"{HQ}.connector.subnet", "sn-1"),
        f"{HQ}.connector.subnet",
        "sn-1",
    ),
    ("missing connector", _delete(f"{HQ}.connector"), f"{HQ}.connector", "required"),
    (
        "missing profile",
        _set(f"{HQ}.connector.profile", "nowhere.ovpn"),
        f"{HQ}.connector.profile",
        "nowhere.ovpn",
    ),
    (
        "empty profile",
        _set(f"{HQ}.connector.profile", "empty.ovpn"),
        f"{HQ}.connector.profile",
        "empty.ovpn",
    ),
    ("nat not a bool", _set(f"{HQ}.connector.nat", "yes"), f"{HQ}.connector.nat", "yes"),
    ("egress with nat false", _set(f"{HQ}.connector.nat", False), f"{HQ}.connector.nat", "false"),
    (
        "bad route table id",
        _set(f"{HQ}.route_tables", ["rtb-XYZ"]),
        f"{HQ}.route_tables[0]",
        "rtb-XYZ",
    ),
    ("empty route table list", _set(f"{HQ}.route_tables", []), f"{HQ}.route_tables", "[]"),
    (
        "duplicate route table",
        _set(f"{HQ}.route_tables", ["rtb-0123abcd", "rtb-0123abcd"]),
        f"{HQ}.route_tables[1]",
        "rtb-0123abcd",
    ),
    (
        "bad security group",
        _set(f"{HQ}.app_security_groups", ["hr-app"]),
        f"{HQ}.app_security_groups[0]",
        "hr-app",
    ),
    *[
        (
            f"app ports {name}",
            _set(f"{HQ}.app_security_groups", [{"group": "sg-0123abcd", "ports": ports}]),
            f"{HQ}.app_security_groups[0].ports" + suffix,
            shown,
        )
        for name, ports, suffix, shown in (
            ("not a list", "tcp/443", "", "tcp/443"),
            ("empty", [], "", "[]"),
            ("port 0", ["tcp/0"], "[0]", "tcp/0"),
            ("port too high", ["udp/70000"], "[0]", "udp/70000"),
            ("range reversed", ["tcp/90-80"], "[0]", "tcp/90-80"),
            ("unknown protocol", ["sctp/1"], "[0]", "sctp"),
            ("icmp with a port", ["icmp/8"], "[0]", "icmp/8"),
            ("a bare number", [443], "[0]", "tcp/443"),
            ("not a number", ["tcp/https"], "[0]", "tcp/https"),
            ("all and more", ["all", "tcp/443"], "[1]", "tcp/443"),
            ("overlapping ranges", ["tcp/80-90", "tcp/85"], "[1]", "tcp/85"),
        )
    ],
    (
        "app entry with unknown key",
        _set(f"{HQ}.app_security_groups", [{"group": "sg-0123abcd", "port": ["tcp/443"]}]),
        f"{HQ}.app_security_groups[0].port",
        "did you mean 'ports'",
    ),
    (
        "app entry without group",
        _set(f"{HQ}.app_security_groups", [{"ports": ["tcp/443"]}]),
        f"{HQ}.app_security_groups[0].group",
        "required",
    ),
    (
        "app entry not a group",
        _set(f"{HQ}.app_security_groups", [5]),
        f"{HQ}.app_security_groups[0]",
        "5",
    ),
    (
        "app group twice in two forms",
        _set(f"{HQ}.app_security_groups", ["sg-0123abcd", {"group": "sg-0123abcd"}]),
        f"{HQ}.app_security_groups[1]",
        "sg-0123abcd",
    ),
    (
        "app entry with a bad group id",
        _set(f"{HQ}.app_security_groups", [{"group": "web", "ports": ["tcp/80"]}]),
        f"{HQ}.app_security_groups[0].group",
        "web",
    ),
    (
        "two networks, one vpc",
        _set("networks.branch.vpc", "SAME"),
        "networks.branch",
        "same cloud network",
    ),
    (
        "lan interface with space",
        _set(f"{HQ}.connector.lan_interface", "eth 0"),
        f"{HQ}.connector.lan_interface",
        "eth 0",
    ),
    (
        "summary over the VPN range",
        _set(f"{HQ}.summarize", ["100.64.0.0/10"]),
        f"{HQ}.summarize[0]",
        "100.64.0.0/10",
    ),
    (
        "summary over its own subnet",
        _set(f"{HQ}.summarize", ["10.0.0.0/8"]),
        f"{HQ}.summarize[0]",
        "10.0.0.0/8",
    ),
    (
        "summary over part of a peer's subnet",
        _set(f"{HQ}.summarize", ["192.168.0.0/23"]),
        f"{HQ}.summarize[0]",
        "192.168.0.0/23",
    ),
    (
        "summary not a CIDR",
        _set(f"{HQ}.summarize", ["172.20.0.0/33"]),
        f"{HQ}.summarize[0]",
        "172.20.0.0/33",
    ),
    (
        "takes_over with space",
        _set(f"{HQ}.connector.takes_over", "i-0123 i-0456"),
        f"{HQ}.connector.takes_over",
        "i-0123 i-0456",
    ),
    ("pair with one subnet key", _pair(None, None), f"{HQ}.connector.subnet", "ha: true"),
    (
        "pair subnets without ha",
        _pair(["subnet-0123abcd", "subnet-0123abce"], None, ha=False),
        f"{HQ}.connector.subnets",
        "ha: true",
    ),
    (
        "pair of one subnet",
        _pair(["subnet-0123abcd"], ["hq.ovpn", "branch.ovpn"]),
        f"{HQ}.connector.subnets",
        "['subnet-0123abcd']",
    ),
    (
        "pair with one profile",
        _pair(["subnet-0123abcd", "subnet-0123abce"], None),
        f"{HQ}.connector.profile",
        "profiles: [a, b]",
    ),
    (
        "pair with the same profile twice",
        _pair(["subnet-0123abcd", "subnet-0123abce"], ["hq.ovpn", "hq.ovpn"]),
        f"{HQ}.connector.profiles[1]",
        "'hq.ovpn'",
    ),
    (
        "pair profile missing",
        _pair(["subnet-0123abcd", "subnet-0123abce"], ["hq.ovpn", "nope.ovpn"]),
        f"{HQ}.connector.profiles[1]",
        "nope.ovpn",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_topology(case, world: SandboxWorld, calls: CallLog, capsys) -> None:
    name, edit, field, value = case
    doc = copy.deepcopy(world.topology(partner=True))
    (world.directory / "empty.ovpn").write_text("  \n")
    if name == "two networks, one vpc":
        doc["networks"]["branch"]["vpc"] = doc["networks"]["hq"]["vpc"]
        doc["networks"]["branch"]["region"] = "us-east-1"
    else:
        edit(doc)
    path = world.directory / "bad.yaml"
    path.write_text(json.dumps(doc))

    code = run(["plan", "-f", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert field in err and value in err, err
    assert "Traceback" not in err
    assert calls.calls == []


def test_yaml_errors_are_one_line(world: SandboxWorld, calls: CallLog, capsys) -> None:
    cases = {
        "dup.yaml": "version: 1\nnetworks:\n  hq: {cloud: external, subnets: [10.0.0.0/8]}\n  hq: {cloud: external}\n",
        "broken.yaml": "version: 1\nnetworks: [\n",
        "list.yaml": "- 1\n- 2\n",
    }
    expected = {
        "dup.yaml": "duplicate key 'hq'",
        "broken.yaml": "broken.yaml:3: not valid YAML",  # the file and the line
        "list.yaml": "mapping",
    }
    for file, text in cases.items():
        (world.directory / file).write_text(text)
        assert run(["plan", "-f", str(world.directory / file)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected[file] in err, err
    assert run(["plan", "-f", str(world.directory / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err
    assert calls.calls == []


def test_unsupported_cloud_is_bad_input_before_any_call(
    world: SandboxWorld, calls: CallLog, capsys, monkeypatch
):
    # an install without a cloud's package (its description unregistered) says so
    from provisioner import clouds

    monkeypatch.delitem(clouds.known(), "oci")
    doc = world.topology()
    doc["networks"]["oc"] = {
        "cloud": "oci",
        "region": "eu-frankfurt-1",
        "compartment": "ocid1.compartment.oc1..aaaa",
        "vcn": "ocid1.vcn.oc1.eu-frankfurt-1.aaaa",
        "subnets": ["172.16.0.0/16"],
        "connector": {
            "subnet": "ocid1.subnet.oc1.eu-frankfurt-1.aaaaaaaaaa",
            "profile": "hq.ovpn",
            "vault": "ocid1.vault.oc1.eu-frankfurt-1.aaaaaaaaaa",
            "key": "ocid1.key.oc1.eu-frankfurt-1.aaaaaaaaaa",
        },
    }
    (world.directory / "oc.yaml").write_text(json.dumps(doc))
    assert run(["apply", "--yes", "-f", str(world.directory / "oc.yaml")]) == 2
    err = capsys.readouterr().err
    assert "networks.oc.cloud" in err and "oci" in err
    assert calls.calls == []


def test_vpc_that_does_not_exist_is_found_on_the_first_read(
    world: SandboxWorld, calls: CallLog, capsys
):
    doc = world.topology()
    doc["networks"]["hq"]["vpc"] = "vpc-0123456789abcdef0"
    (world.directory / "novpc.yaml").write_text(json.dumps(doc))
    assert run(["apply", "--yes", "-f", str(world.directory / "novpc.yaml")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    # progress lines ("  .. reading hq") may come first; the error is one line
    errors = [line for line in lines if not line.lstrip().startswith("..")]
    assert errors == [
        "provision: networks.hq.vpc: 'vpc-0123456789abcdef0' does not exist in us-east-1"
    ]
    # HQ's first read finds it; Branch (us-west-2) is read beside it, and nothing is changed
    assert calls.in_region("us-east-1") == ["DescribeVpcs"]
    assert calls.mutating == []


def test_a_region_without_the_default_image_is_said_at_plan_with_the_way_out(
    world: SandboxWorld, session, calls: CallLog, capsys
):
    """A VPC in a region where Ubuntu's public parameter is not (here: the sandbox published
    no image in eu-west-1) is one line at plan naming connector.image and the parameter, exit
    2, nothing written; an image the file names that the region does not have, likewise; with
    an image of the region, the plan goes through."""
    from provisioner.providers.aws.world import seed_vpc

    vpc = seed_vpc(session, "west", "eu-west-1", "10.60.0.0/16", ["10.60.0.0/24"])
    doc = world.topology()
    doc["networks"] = {"west": {**doc["networks"]["hq"], "region": "eu-west-1", "vpc": vpc.vpc,
                                "subnets": [vpc.cidr], "app_security_groups": [vpc.app_group],
                                "connector": {"subnet": vpc.connector_subnet,
                                              "profile": "hq.ovpn"}}}  # fmt: skip
    path = world.directory / "west.yaml"
    path.write_text(json.dumps(doc))
    calls.clear()
    assert run(["plan", "-f", str(path)]) == 2
    errors = [
        x for x in capsys.readouterr().err.strip().splitlines() if not x.lstrip().startswith("..")
    ]
    assert len(errors) == 1, errors
    assert "networks.west.connector.image: no default image in eu-west-1" in errors[0]
    assert "/aws/service/canonical/ubuntu/" in errors[0] and "connector.image" in errors[0]
    assert calls.mutating == []

    doc["networks"]["west"]["connector"]["image"] = "ami-0123456789abcdef0"
    path.write_text(json.dumps(doc))
    assert run(["apply", "--yes", "-f", str(path)]) == 2
    err = capsys.readouterr().err
    assert "networks.west.connector.image: image ami-0123456789abcdef0 is not in eu-west-1" in err
    assert calls.mutating == []

    ec2 = session.client("ec2", region_name="eu-west-1")
    own = ec2.register_image(Name="my-ubuntu", Architecture="x86_64", RootDeviceName="/dev/sda1",
                             VirtualizationType="hvm")["ImageId"]  # fmt: skip
    doc["networks"]["west"]["connector"]["image"] = own
    path.write_text(json.dumps(doc))
    assert run(["plan", "-f", str(path)]) == 0


@pytest.mark.parametrize(
    "argv, flag, value",
    [
        (["--subnet", "10.0.0.0.13/32"], "--subnet[0]", "10.0.0.0.13/32"),
        (["--peer", "100.96.0.300/32"], "--peer[0]", "100.96.0.300/32"),
        (["--region", "nowhere"], "--region", "nowhere"),
        (["--profile", "missing.ovpn"], "--profile", "missing.ovpn"),
        (["--app-security-group", "hr"], "--app-security-group[0]", "hr"),
    ],
)
def test_one_network_flags_name_the_flag(
    argv, flag, value, world: SandboxWorld, calls: CallLog, capsys, monkeypatch
):
    monkeypatch.chdir(world.directory)
    world.topology()  # writes hq.ovpn
    base = {
        "--cloud": "aws",
        "--region": "us-east-1",
        "--vpc": world.hq.vpc,
        "--connector-subnet": world.hq.connector_subnet,
        "--subnet": "10.0.0.0/18",
        "--profile": "hq.ovpn",
    }
    args: list[str] = []
    for k, v in base.items():
        if k not in argv:
            args += [k, v]
    assert run([*args, *argv, "--yes"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(re.escape(flag) + r"\b|" + re.escape(flag), err) and value in err, err
    assert len(err.splitlines()) == 1
    assert calls.calls == []


def test_every_example_is_a_valid_topology():
    """What a user copies first: each file under examples/ loads as it is (no cloud call)."""
    from provisioner import load_topology

    examples = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))
    assert len(examples) >= 4
    for path in examples:
        topology = load_topology(path)
        assert topology.networks, path
    pair = load_topology(examples[0].with_name("hq-pair.yaml")).network("hq").connector
    assert pair is not None and pair.ha and pair.subnets[1] == "subnet-0fedcba9876543210"
