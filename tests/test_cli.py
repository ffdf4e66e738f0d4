"""The CLI face: what a user types and sees, run through `provision` itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CallLog, snapshot, written

from provisioner.cli import run
from provisioner.sandbox import SandboxWorld

REPO = Path(__file__).resolve().parent.parent


def test_help_loads_no_cloud_sdk():
    code = (
        "import sys\n"
        "from provisioner.cli import run\n"
        "try:\n    run(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('boto3', 'botocore', 'moto', 'azure', 'google', 'oci') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "provision plan -f topology.yaml" in out.stdout and "exit codes:" in out.stdout


@pytest.mark.long
def test_demo_runs_the_whole_job_without_an_account(capsys):
    assert run(["demo"]) == 0
    out = capsys.readouterr().out
    for step in ("provision plan", "provision apply", "provision status", "provision destroy"):
        assert step in out
    assert "apply: done" in out and "destroy: done" in out
    assert "apply: nothing to do" in out  # the re-plan after apply
    assert "SANDBOX-PRIVATE-KEY" not in out
    assert "network gchub (gcp)" in out and "network ochub (oci)" in out  # every cloud built
    # quiet by default: plans grouped, no progress line per change (--verbose has both)
    assert "[1/" not in out and "5 destinations x 4 route tables" in out  # (two hubs joined)
    assert out.count("apply: nothing to do") == 1
    # it ends clean: after destroy one line per network, and a last line saying what it proved
    ending = out[out.index("(after destroy)") :].splitlines()
    networks = [line for line in ending if line.startswith("network ")]
    assert len(networks) == 5 and all("nothing of ours here" in n for n in networks)
    assert "MISSING" not in "\n".join(ending) and "NOT healthy" not in "\n".join(ending)
    assert "every network was healthy after apply, and nothing of ours was left" in ending[-1]
    assert "seed" not in out.lower()
    # say things once: a why an earlier network gave is referred to; the first plan fits 100
    # lines (--verbose keeps every change with its why)
    first = out[out.index("=== provision plan") : out.index("=== provision apply")].splitlines()
    first = [line for line in first[1:] if line and not line.startswith("  .. ")]  # (progress)
    assert len(first) <= 105, len(first)  # (100, and Branch's take-over: its routes, its note)
    # Branch's hand-made connector: discovered, then taken over by the plan, never a conflict
    assert "=== provision discover --cloud aws --region us-west-2" in out
    assert "takes over the connector made by hand, i-" in out and "conflict" not in out.lower()
    # a why said once, at the first change it explains (the foot says so), not per network
    assert "as for hq" not in "\n".join(first) and "a why is said once" in "\n".join(first)
    # the small ones: the VPN region said and explained once, each hub its own public address,
    # Azure's connector line without its address twice
    assert out.count("(service.cloudconnexa.vpn_region): where the connectors attach") == 1
    import re

    publics = re.findall(r"connector: \S+ running.*?public (\S+),", out)
    assert len(publics) >= 5 and len(set(publics)) == len(publics), publics
    azure = next(line for line in out.splitlines() if "connector: cp-azhub-connector" in line)
    assert " on 10." not in azure


def test_plan_json_is_stable_and_documented(world: SandboxWorld, calls: CallLog, capsys):
    path = world.write_topology(partner=True)
    assert run(["plan", "-f", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "connector-provisioner/plan" and doc["version"] == 1
    assert doc["operation"] == "apply" and doc["vpn_subnet"] == "100.96.0.0/11"
    assert set(doc["summary"]) == {"create", "update", "replace", "delete", "start", "conflicts"}
    hq = next(n for n in doc["networks"] if n["name"] == "hq")
    assert set(hq) == {"name", "cloud", "changes", "conflicts", "limits", "notes"}
    route = next(c for c in hq["changes"] if c["kind"] == "route")
    assert set(route) == {
        "action",
        "kind",
        "resource",
        "why",
        "route_table",
        "destination",
        "target",
    }
    assert route["target"] == "new-connector"
    kinds = {c["kind"] for c in hq["changes"]}
    assert kinds == {
        "vpn-profile",
        "role",
        "instance-profile",
        "security-group",
        "connector",
        "forwarding",
        "connector-ingress",
        "app-access",
        "route",
    }
    assert calls.mutating == []  # plan touches nothing


def test_apply_needs_yes_without_a_terminal(
    world: SandboxWorld, calls: CallLog, capsys, monkeypatch
):
    """Bad input (exit 2, as the README lists it), found before any cloud is read."""
    path = world.write_topology()
    with open("/dev/null") as no_terminal:
        monkeypatch.setattr("sys.stdin", no_terminal)
        assert run(["apply", "-f", str(path)]) == 2
        assert run(["destroy", "-f", str(path), "--json"]) == 2
    assert "--yes: not given, and there is no terminal to confirm on" in capsys.readouterr().err
    assert calls.calls == []  # not even a read
    # as apply's --help (and so the README) says: 2 without a terminal, 1 when declined
    from provisioner.helptext import command

    exits = dict(command("apply").exits)
    assert "no terminal" in exits[2] and "declined" in exits[1]


def test_apply_asks_and_a_no_changes_nothing(
    world: SandboxWorld, session, calls: CallLog, capsys, monkeypatch
):
    path = world.write_topology()
    before = snapshot(session)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert run(["apply", "-f", str(path)]) == 1
    assert "declined; nothing was changed" in capsys.readouterr().err
    assert snapshot(session) == before


def test_cli_apply_status_destroy_round_trip(world: SandboxWorld, session, capsys):
    path = world.write_topology(partner=True)
    before = snapshot(session)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    out = capsys.readouterr()
    assert "apply: done" in out.out
    assert "[1/" in out.err  # progress while it works, with the time the run has taken
    import re

    assert re.search(r"\[1/\d+ \d+s\] \w+: ", out.err), out.err[:300]
    # each network read once to plan; the second read under the leases said in one line
    assert out.err.count("  .. reading hq (aws") == 1, out.err[:600]
    assert out.err.count("leases taken: reading the networks again") == 1
    assert run(["status", "-f", str(path)]) == 0
    status = capsys.readouterr().out
    assert "network hq (aws): healthy" in status and "forwarding on" in status
    assert run(["apply", "-f", str(path), "--yes", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)  # one JSON document
    assert again["done"] == 0 and again["summary"]["create"] == 0
    assert run(["status", "-f", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert all(n["healthy"] for n in doc["networks"])
    # the drift check a scheduled CI job runs: 0 while the clouds are as the file says...
    assert run(["plan", "-f", str(path), "--detailed-exitcode"]) == 0
    capsys.readouterr()
    assert run(["plan", "-f", str(path), "--detailed-exitcode", "--json"]) == 0
    assert not any(n["changes"] for n in json.loads(capsys.readouterr().out)["networks"])
    # ...6 once someone removed a route of ours by hand (and plain plan still 0), the JSON the
    # same plan
    ec2 = session.client("ec2", region_name="us-east-1")
    table = world.hq.route_tables[0]
    ec2.delete_route(RouteTableId=table, DestinationCidrBlock="100.96.0.0/11")
    assert run(["plan", "-f", str(path)]) == 0
    capsys.readouterr()
    assert run(["plan", "-f", str(path), "--detailed-exitcode", "--json"]) == 6
    drift = json.loads(capsys.readouterr().out)
    (change,) = [c for n in drift["networks"] for c in n["changes"]]
    assert (change["kind"], change["route_table"], change["destination"]) == (
        "route", table, "100.96.0.0/11")  # fmt: skip
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    assert run(["plan", "-f", str(path), "--detailed-exitcode"]) == 0
    assert run(["destroy", "-f", str(path), "--yes"]) == 0
    assert snapshot(session) == before
    assert run(["status", "-f", str(path)]) == 1  # not healthy: nothing there any more


def test_conflict_exits_3_and_changes_nothing(world: SandboxWorld, session, calls: CallLog, capsys):
    ec2 = session.client("ec2", region_name="us-east-1")
    ec2.create_route(
        RouteTableId=world.hq.route_tables[0],
        DestinationCidrBlock="100.96.0.0/11",
        GatewayId=world.hq.internet_gateway,
    )
    path = world.write_topology()
    calls.clear()
    assert run(["plan", "-f", str(path)]) == 3
    assert "conflict" in capsys.readouterr().out
    assert run(["apply", "-f", str(path), "--yes"]) == 3
    err = capsys.readouterr().err
    assert "100.96.0.0/11" in err and "--replace-conflicting-routes" in err
    assert calls.mutating == []
    assert run(["apply", "-f", str(path), "--yes", "--replace-conflicting-routes"]) == 0


def test_cloud_error_is_a_message_with_done_and_not_done(world: SandboxWorld, capsys, monkeypatch):
    import re

    import botocore.handlers
    from conftest import FORBIDDEN, error_response, every_session_faults

    # the CLI makes its own boto3 session: hook every new session; every launch is refused
    handlers = every_session_faults(
        "before-send.ec2.RunInstances", lambda: error_response("ec2", *FORBIDDEN["ec2"])
    )
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", handlers)
    path = world.write_topology()
    assert run(["apply", "-f", str(path), "--yes"]) == 1
    err = capsys.readouterr().err
    assert "UnauthorizedOperation" in err and "Traceback" not in err
    # each network makes its 4 parts before its connector; the first refusal stops both, so
    # the other has made between none and all of its own by then
    done = re.search(r"^done \((\d+)\):$", err, re.M)
    assert done and 4 <= int(done.group(1)) <= 8, err
    assert "+ hq: create vpn-profile" in err or "+ branch: create vpn-profile" in err
    assert "- hq: create connector" in err and "- branch: create connector" in err
    assert "Run the same command again to finish" in err


def test_a_refused_read_of_the_default_image_is_a_cloud_error_not_bad_input(
    world: SandboxWorld, capsys, monkeypatch
):
    """The image check at plan: a credential that may not read Ubuntu's public parameter is
    the cloud's refusal (exit 1, said in one line with nothing changed), not a file's fault."""
    import botocore.handlers
    from conftest import FORBIDDEN, error_response, every_session_faults

    handlers = every_session_faults(
        "before-send.ssm.GetParameter", lambda: error_response("ssm", *FORBIDDEN["ssm"])
    )
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", handlers)
    assert run(["plan", "-f", str(world.write_topology())]) == 1
    err = capsys.readouterr().err
    assert "reading the default image in" in err and "AccessDeniedException" in err
    assert "nothing was changed" in err and "Traceback" not in err and "connector.image" not in err


def test_status_of_a_half_made_network_names_each_part_and_the_way_on(
    world: SandboxWorld, capsys, monkeypatch
):
    """An apply that stopped before the VM (its launch refused) leaves the network's parts:
    status lists each by name and says that apply finishes it and destroy removes it, and
    after destroy there is nothing of ours."""
    import json

    import botocore.handlers
    from conftest import FORBIDDEN, error_response, every_session_faults

    handlers = every_session_faults(
        "before-send.ec2.RunInstances", lambda: error_response("ec2", *FORBIDDEN["ec2"])
    )
    doc = world.topology()
    del doc["networks"]["branch"]  # (hq alone: its parts are all made before its launch)
    path = str(world.directory / "hq-only.yaml")
    Path(path).write_text(json.dumps(doc))
    with monkeypatch.context() as m:
        m.setattr(botocore.handlers, "BUILTIN_HANDLERS", handlers)
        assert run(["apply", "-f", path, "--yes"]) == 1
    capsys.readouterr()
    assert run(["status", "-f", path]) == 1
    out = capsys.readouterr().out
    hq = out[out.index("network hq (aws)") :].split("\nnetwork ")[0]
    assert "half made" in hq and "`apply` finishes it, `destroy` removes them" in hq, out
    listed = [line.strip() for line in hq.splitlines()[1:] if line.startswith("  ")]
    assert "4 part(s) of ours are here" in hq and len(listed) == 4, hq
    assert listed[0].startswith("vpn-profile /connector-provisioner/") and listed[1:] == [
        f"role cp-hq-{world.hq.vpc}",
        f"instance-profile cp-hq-{world.hq.vpc}",
        "security-group connector-hq",
    ]
    assert "nothing of ours here" not in out
    assert run(["status", "-f", path, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    first = next(n for n in doc["networks"] if n["name"] == "hq")
    assert first["half_made"] and first["parts"] == listed
    assert run(["destroy", "-f", path, "--yes"]) == 0
    capsys.readouterr()
    assert run(["status", "-f", path]) == 1
    assert out.count("nothing of ours here") == 0
    assert capsys.readouterr().out.count("nothing of ours here") == 1


def test_one_network_invocation_applies_like_a_topology(
    world: SandboxWorld, session, capsys, monkeypatch
):
    monkeypatch.chdir(world.directory)
    world.topology()  # writes hq.ovpn
    argv = [
        "--cloud",
        "aws",
        "--region",
        "us-east-1",
        "--vpc",
        world.hq.vpc,
        "--connector-subnet",
        world.hq.connector_subnet,
        "--subnet",
        "10.0.0.0/18",
        "--peer",
        "192.168.0.0/22",
        "--nat",
        "--egress",
        "--app-security-group",
        world.hq.app_group,
        "--profile",
        "hq.ovpn",
        "--name",
        "hq",
        "--yes",
    ]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "apply: done" in out
    ec2 = session.client("ec2", region_name="us-east-1")
    for table in world.hq.route_tables:
        routes = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Routes"]
        targets = {r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") for r in routes}
        assert targets["192.168.0.0/22"] and targets["192.168.0.0/22"] == targets["100.96.0.0/11"]
    assert run(argv) == 0
    assert capsys.readouterr().out.count("nothing to do") == 1  # said once, not twice


def test_plan_status_destroy_take_the_one_network_flags(
    world: SandboxWorld, session, calls: CallLog, capsys, monkeypatch
):
    """`provision plan --cloud aws ...` (and status, apply, destroy) with the flags of the
    one-network form: the same network as a file would name."""
    monkeypatch.chdir(world.directory)
    world.topology()  # writes hq.ovpn
    flags = [
        "--cloud", "aws", "--region", "us-east-1", "--vpc", world.hq.vpc,
        "--connector-subnet", world.hq.connector_subnet, "--subnet", "10.0.0.0/18",
        "--peer", "192.168.0.0/22", "--profile", "hq.ovpn", "--name", "hq",
    ]  # fmt: skip
    before = snapshot(session)
    assert run(["plan", *flags]) == 0
    assert "network hq (aws)" in capsys.readouterr().out
    assert calls.mutating == []
    assert run(["status", *flags]) == 1  # no connector yet
    assert "nothing of ours here: removed, or never applied" in capsys.readouterr().out
    assert run(["apply", *flags, "--yes"]) == 0
    assert run(["status", *flags, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out.split("apply: done", 1)[1].split("\n", 1)[1])
    assert doc["networks"][0]["healthy"] is True
    assert run(["destroy", *flags, "--yes"]) == 0
    assert snapshot(session) == before
    assert run(["plan", "-f", "x.yaml", *flags]) == 2  # one or the other
    assert "--cloud" in capsys.readouterr().err
    assert run(["plan"]) == 2
    assert "--file: is required" in capsys.readouterr().err


def test_sandbox_serve_help_is_its_own():
    out = subprocess.run(
        [sys.executable, "-m", "provisioner.cli", "sandbox", "serve", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out.startswith("usage: provision sandbox serve")
    assert "--dir" in out and "--verbose" in out and "--seconds" in out


@pytest.mark.parametrize(
    ("text", "line", "hint"),
    [
        ("version: 1\nnetworks:\n  hq:\n    cloud: aws\n   region: us-east-1\n", 5, "indentation"),
        ("version: 1\nnetworks:\n\thq:\n", 3, "spaces, not tabs"),
        (
            "version: 1\nnetworks:\n  hq:\n    cloud: aws\n    region us-east-1\n    vpc: v\n",
            6,
            "ends with ':'",
        ),
    ],
)
def test_a_yaml_error_names_the_file_and_the_usual_cause(tmp_path, capsys, text, line, hint):
    path = tmp_path / "topo.yaml"
    path.write_text(text)
    assert run(["plan", "-f", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"provision: {path}:{line}: not valid YAML")
    assert hint in err and len(err.splitlines()) == 1


def test_plan_groups_what_repeats_and_verbose_shows_every_change(
    world: SandboxWorld, session, capsys
):
    """Grouped: each destination once with the tables once, each app group's rules on a line,
    each why once; --verbose: every change with its why. Replacements and deletions are
    never folded: each is its own line with its reason."""
    path = world.write_topology(partner=True)
    assert run(["plan", "-f", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    hq = next(n for n in doc["networks"] if n["name"] == "hq")
    routes = [c for c in hq["changes"] if c["kind"] == "route"]
    tables = sorted({c["route_table"] for c in routes})
    assert len(routes) == 3 * len(tables) == 12  # vpn, branch, partner x 4 tables

    assert run(["plan", "-f", str(path)]) == 0
    grouped = capsys.readouterr().out
    section = grouped.split("network hq (aws)")[1].split("\nnetwork branch (aws)")[0]
    assert "+ create 12 routes -> new-connector: 3 destinations x 4 route tables" in section
    assert section.count("in " + ", ".join(world.hq.route_tables)) == 1
    assert section.count("192.168.0.0/22 (network branch)") == 1
    assert section.count("why: hosts here reach the other networks") == 1
    assert section.count("create 3 app-access rules in " + world.hq.app_group) == 1
    assert "remote access hop 7" in section and "docs/flows.md" in grouped

    assert run(["plan", "-f", str(path), "--verbose"]) == 0
    verbose = capsys.readouterr().out
    section = verbose.split("network hq (aws)")[1].split("\nnetwork branch (aws)")[0]
    assert section.count("  + create route ") == 12
    assert section.count("      why: ") == len(hq["changes"])
    assert len(verbose.splitlines()) > len(grouped.splitlines()) + 20

    # after apply: a bigger connector (a replacement) and the partner gone (deletions)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    capsys.readouterr()
    path = world.write_topology(partner=False)
    text = path.read_text().replace("size: t3.small", "size: t3.medium", 1)
    path.write_text(text)
    assert run(["plan", "-f", str(path)]) == 0
    changed = capsys.readouterr().out
    section = changed.split("network hq (aws)")[1].split("\nnetwork branch (aws)")[0]
    # made before break: the new one first, the old one last
    assert "+ create connector VM in" in section and "(replacing i-" in section
    assert section.rstrip().split("\n  note:")[0].count("- delete connector i-") == 1
    assert section.count("- delete route 172.31.0.0/16") == 4  # one line per table
    assert section.count("- delete app-access") == 1
    assert run(["destroy", "-f", str(path), "--yes"]) == 0


def test_secrets_appear_in_no_output_plan_json_or_user_data(
    world: SandboxWorld, session, capsys, caplog
):
    caplog.set_level("DEBUG")  # botocore's DEBUG log prints request bodies: the profile is redacted
    path = world.write_topology(partner=True)
    secret = "SANDBOX-PRIVATE-KEY"
    outputs = []
    for argv in (
        ["plan", "-f", str(path)],
        ["plan", "-f", str(path), "--json"],
        ["apply", "-f", str(path), "--yes", "--json"],
        ["status", "-f", str(path), "--json"],
        ["status", "-f", str(path)],
        ["bootstrap", "-f", str(path), "--network", "hq"],
        ["bootstrap", "-f", str(path), "--network", "hq", "--script"],
        ["destroy", "-f", str(path), "--yes"],
    ):
        run(argv)
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    outputs.append(caplog.text)
    assert "PutParameter" in caplog.text  # the upload was logged, without its content
    assert all(secret not in o for o in outputs)
    assert any("cloud-config" in o for o in outputs)  # the user-data was printed


def test_bootstrap_prints_user_data_that_names_the_parameter(
    world: SandboxWorld, capsys, calls: CallLog
):
    path = world.write_topology()
    assert run(["bootstrap", "-f", str(path), "--network", "branch"]) == 0
    user_data = capsys.readouterr().out
    assert user_data.startswith("#cloud-config")
    assert f"/connector-provisioner/{world.branch.vpc}/branch/profile" in user_data
    script = written(user_data, "/usr/local/sbin/connector-setup")  # (gz+b64)
    assert "LOCAL_SUBNETS=192.168.0.0/22" in script and "NAT=0" in script
    assert calls.calls == []  # subnets are in the file: no cloud read needed
    assert run(["bootstrap", "-f", str(path), "--network", "nope"]) == 2


@pytest.mark.parametrize(
    "example", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_are_valid_topologies(example: Path):
    from provisioner import load_topology

    topology = load_topology(example)
    assert topology.managed


def test_every_why_cites_hops_that_docs_flows_md_has(world: SandboxWorld, capsys):
    """The whys and notes stand on their own: they cite hops of the project's own
    docs/flows.md (which exist there, numbered under their flow), never a document outside."""
    import re

    from provisioner import planner

    flows = (REPO / "docs" / "flows.md").read_text()
    hops: dict[str, set[int]] = {}
    for title, flow in (
        ("## Remote access", "remote access"),
        ("## Internet egress", "egress"),
        ("## Site-to-site", "site-to-site"),
    ):
        body = flows.split(title, 1)[1].split("\n## ", 1)[0]
        hops[flow] = {int(n) for n in re.findall(r"^(\d+)\. \*\*", body, re.M)}
    assert all(hops.values()) and max(hops["remote access"]) == 8

    path = world.write_topology(partner=True)
    assert run(["plan", "-f", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    texts = [c["why"] for n in doc["networks"] for c in n["changes"]]
    texts += [note for n in doc["networks"] for note in n["notes"]]
    from provisioner import desired
    from provisioner.cloudconnexa import planner as service_planner

    for module in (planner, desired, service_planner):
        texts += [v for k, v in vars(module).items() if k.startswith("WHY_")]
    assert sum(k.startswith("WHY_") for k in vars(desired)) >= 7
    cited = 0
    for text in texts:
        assert "seed" not in text and "step" not in text, text
        for flow, numbers in re.findall(
            r"(remote access|egress|site-to-site) hops? (\d+(?:(?:, | and )\d+)*)", text
        ):
            for n in re.findall(r"\d+", numbers):
                assert int(n) in hops[flow], f"{flow} hop {n}: not in docs/flows.md ({text})"
                cited += 1
    assert cited >= 10


def test_the_programs_name_alone_prints_its_usage_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
):
    from provisioner.cli import run

    assert run([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: provision") and "a command is needed" in err
    assert "--yes" not in err.splitlines()[-1]  # not taken for an apply


def _on_a_terminal(monkeypatch: pytest.MonkeyPatch, columns: int = 160) -> Any:
    """sys.stderr on a real pseudo-terminal (isatty, its own size); returns what reads it:
    call it once the run is over for everything the terminal was sent."""
    import fcntl
    import os
    import struct
    import termios
    import threading

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the slave side closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    terminal = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
    monkeypatch.setattr(sys, "stderr", terminal)

    def seen() -> str:
        terminal.close()
        reader.join(10)
        os.close(master)
        return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")

    return seen


def test_apply_on_a_terminal_shows_one_live_line(
    world: SandboxWorld, session, monkeypatch: pytest.MonkeyPatch, capsys
):
    import re

    path = world.write_topology(partner=True)
    seen = _on_a_terminal(monkeypatch)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    screen = seen()
    assert "apply: done" in capsys.readouterr().out
    # no line per change: one line, redrawn in place, done/total, elapsed, an estimate
    assert not re.search(r"\[\d+/\d+ \d+s\]", screen), screen[:400]
    states = re.findall(r"\r\x1b\[Kapply: (\d+)/(\d+) done, (\d+)s, ([^·\r\n]+)", screen)
    assert states, screen[:400]
    totals = {int(t) for _, t, _, _ in states}
    assert len(totals) == 1
    total = totals.pop()
    done = [int(d) for d, _, _, _ in states]
    assert done == sorted(done) and done[-1] == total and done[0] < total
    assert any(e.startswith("about ") and e.strip().endswith(" left") for *_, e in states)
    assert "· hq: create" in screen or "· branch: create" in screen  # what it is doing now
    # the line's last state is left on the screen, ended; what else the run says is above it
    assert re.search(rf"apply: {total}/{total} done, \d+s, done\n", screen), screen[-300:]
    assert "\n  .. reading hq (aws" in screen or screen.startswith("  .. reading hq (aws")


def test_destroy_without_a_terminal_keeps_a_line_per_change(world: SandboxWorld, session, capsys):
    path = world.write_topology()
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    capsys.readouterr()
    assert run(["destroy", "-f", str(path), "--yes"]) == 0
    err = capsys.readouterr().err
    import re

    assert re.search(r"^  \.\. \[1/\d+ \d+s\] \w+: delete ", err, re.M), err[:300]
    assert "\x1b[" not in err and "\r" not in err


def test_the_live_line_counts_time_while_nothing_ends():
    """A long wait (a VM coming up) still shows its time: redrawn every tick, counts kept."""
    import io
    import time

    from provisioner.progress import LiveLine, estimate

    stream = io.StringIO()
    line = LiveLine(stream, "apply", tick=0.05)
    line.started("hq: await cp-hq-connector-r's tunnel", 3, 10, 0.0)
    line.finished(2, 10, 1.0)
    time.sleep(0.3)
    line("hq: waiting for the VM")  # a message goes above the line, which is drawn again
    line.close()
    text = stream.getvalue()
    assert text.count("\r\x1b[Kapply: 2/10 done") >= 4  # redrawn by the ticker meanwhile
    assert "\r\x1b[K  .. hq: waiting for the VM\n\r\x1b[Kapply: 2/10 done" in text
    assert text.endswith("\n") and "· hq: await" in text
    assert estimate(10, 40, 20.0) == "about 1m00s left"
    assert estimate(0, 40, 20.0) == "estimating" and estimate(40, 40, 9.0) == "done"
    assert estimate(1, 1000, 60.0) == "about 16h39m left"


def test_status_says_ok_routes_once_and_every_other_route_on_its_line(
    world: SandboxWorld, session, capsys
):
    import re

    path = world.write_topology(partner=True)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    capsys.readouterr()
    assert run(["status", "-f", str(path)]) == 0
    grouped = capsys.readouterr().out
    tables = len(world.hq.route_tables)
    hq = grouped[grouped.index("network hq") : grouped.index("\nnetwork branch")]
    assert re.search(rf"  routes ok -> eni-\w+: 3 destinations x {tables} route tables\n", hq), hq
    assert all(t in hq for t in world.hq.route_tables)
    assert "    ok " not in grouped  # no line per healthy route
    assert run(["status", "-f", str(path), "--verbose"]) == 0
    every = capsys.readouterr().out
    hq = every[every.index("network hq") : every.index("\nnetwork branch")]
    assert hq.count("    ok        ") == 3 * tables  # each route of hq on its own line
    assert "routes ok ->" not in every
    # a route gone: that table's routes each on their line, the missing one named
    ec2 = session.client("ec2", region_name="us-east-1")
    gone = world.hq.route_tables[-1]
    ec2.delete_route(RouteTableId=gone, DestinationCidrBlock="100.96.0.0/11")
    assert run(["status", "-f", str(path)]) == 1
    broken = capsys.readouterr().out
    hq = broken[broken.index("network hq") : broken.index("\nnetwork branch")]
    assert "network hq (aws): NOT healthy" in hq
    assert f"  route table {gone}:\n" in hq and "    MISSING   100.96.0.0/11" in hq


def test_a_reader_that_goes_away_ends_the_run_quietly(
    world: SandboxWorld, session, calls: CallLog, monkeypatch: pytest.MonkeyPatch, capsys
):
    """`provision plan | head -1`: the pipe's reader is gone before the plan is written. As
    any tool in a pipe: no 'unexpected error', exit 141 (128 + SIGPIPE), and an apply whose
    plan could not be shown changes nothing."""
    import os

    path = world.write_topology(partner=True)
    for argv in (["plan", "-f", str(path)], ["apply", "-f", str(path), "--yes"]):
        read, write = os.pipe()
        os.close(read)  # the reader has gone
        with os.fdopen(write, "w", buffering=1, encoding="utf-8") as gone:
            monkeypatch.setattr(sys, "stdout", gone)
            assert run(argv) == 141, argv
            monkeypatch.undo()
    err = capsys.readouterr().err
    assert "unexpected error" not in err and "Traceback" not in err and "Broken pipe" not in err
    assert calls.mutating == []  # the apply stopped at its plan: nothing was changed
