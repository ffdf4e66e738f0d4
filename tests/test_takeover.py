"""Taking over what already runs (issue: connectors made by hand from CloudConnexa's guide):
`provision discover` reads such a network and writes its topology file, `plan` sees the
hand-made connector and `apply` moves its routes to ours without a moment when they lead to a
VM that is not running; `plan --detailed-exitcode` is the drift check after."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import CallLog

from provisioner.api import Deployment
from provisioner.cli import run
from provisioner.providers.aws.world import hand_made_connector
from provisioner.sandbox import SandboxWorld
from provisioner.spec import load_topology

PEERS = ["192.168.0.0/22", "172.31.0.0/16"]


def test_discover_writes_the_hand_made_connectors_network_as_a_file_and_touches_nothing(
    world: SandboxWorld, session, calls: CallLog, capsys
):
    made = hand_made_connector(session, world.hq, PEERS)
    (world.directory / "hq.ovpn").write_text("client\nremote vpn.example 1194\n<key>\nk\n</key>\n")
    calls.clear()
    argv = ["discover", "--cloud", "aws", "--region", "us-east-1", "--vpc", world.hq.vpc]
    assert run([*argv, "--name", "hq", "--profile", str(world.directory / "hq.ovpn")]) == 0
    text = capsys.readouterr().out
    assert calls.mutating == []  # it reads, and only reads
    doc = yaml.safe_load(text)
    hq = doc["networks"]["hq"]
    assert doc["vpn_subnet"] == "100.96.0.0/11"
    assert (hq["cloud"], hq["region"], hq["vpc"]) == ("aws", "us-east-1", world.hq.vpc)
    assert hq["subnets"] == ["10.0.0.0/18"] and hq["route_tables"] == "all"
    assert hq["connector"]["subnet"] == world.hq.connector_subnet
    assert hq["connector"]["size"] == "t3.small"
    assert f"where {made.instance} ({made.interface}) is" in text
    # the app group admits the VPN range on tcp/443: that, not the connector's own group
    assert hq["app_security_groups"] == [{"group": world.hq.app_group, "ports": ["tcp/443"]}]
    assert doc["networks"]["peers"] == {"cloud": "external", "subnets": sorted(PEERS)}
    assert "DECIDE: nat / egress are on the VM" in text
    # what it wrote is a topology file the toolkit reads as it is
    path = world.directory / "discovered.yaml"
    path.write_text(text)
    topology = load_topology(path)
    assert [n.name for n in topology.networks] == ["hq", "peers"]


def test_discover_without_a_connector_says_so_and_a_bad_flag_is_one_line(
    world: SandboxWorld, calls: CallLog, capsys
):
    argv = ["discover", "--cloud", "aws", "--region", "us-east-1", "--vpc", world.hq.vpc]
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "no connector found" in text and "DECIDE: the connector's VPN profile file" in text
    calls.clear()
    assert run(["discover", "--cloud", "aws", "--region", "us-east-1", "--vpc", "vpc-nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--vpc" in err[0] and "vpc-nope" in err[0]
    assert calls.calls == []  # bad input: no cloud call


def test_a_hand_made_connector_is_taken_over_without_an_outage_and_left_as_it_was(
    world: SandboxWorld, session, clouds, capsys
):
    """discover -> plan (no conflict: the routes to the hand-made VM are ours to move) -> apply
    (ours made beside it; after every write each route leads to a running connector) -> the
    drift check says 0 -> destroy removes ours only: the hand-made VM is as it was."""
    from test_aws_pair import RouteWatch

    made = hand_made_connector(session, world.hq, PEERS)
    profile = world.directory / "hq.ovpn"
    profile.write_text("client\nremote vpn.example 1194\n<key>\nk\n</key>\n")
    where = ["--cloud", "aws", "--region", "us-east-1", "--vpc", world.hq.vpc]
    assert run(["discover", *where, "--name", "hq", "--profile", str(profile)]) == 0
    path = world.directory / "hq.yaml"
    path.write_text(capsys.readouterr().out)
    ec2 = session.client("ec2", region_name="us-east-1")
    before = ec2.describe_instances(InstanceIds=[made.instance])["Reservations"][0]["Instances"][0]

    assert run(["plan", "-f", str(path), "--detailed-exitcode"]) == 6  # changes, no conflict
    text = capsys.readouterr().out
    assert f"takes over the connector made by hand, {made.instance}" in text
    assert "conflict" not in text.lower().replace("no conflict", "")
    watch = RouteWatch(session, world)
    result = Deployment(load_topology(path), clouds).apply()  # (the library: its session watched)
    assert watch.seen and watch.nowhere == [], watch.seen  # never to a VM that is not running
    from provisioner.render import result_text

    closing = result_text(result.plan, len(result.done))  # the old VM named in the closing lines
    assert f"hq: {made.instance}, the connector made by hand, is still running" in closing
    ours = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag-key", "Values": ["connector-provisioner:network"]}])["Reservations"]
        for i in r["Instances"]]  # fmt: skip
    (connector,) = ours
    eni = connector["NetworkInterfaces"][0]["NetworkInterfaceId"]
    for table in ec2.describe_route_tables(RouteTableIds=world.hq.route_tables)["RouteTables"]:
        led = {r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") for r in table["Routes"]}
        assert all(led[d] == eni for d in ("100.96.0.0/11", *PEERS)), led
    capsys.readouterr()
    assert run(["plan", "-f", str(path), "--detailed-exitcode"]) == 0  # nothing left to do
    # the old VM: not ours, left running as it was (its interface still forwards)
    after = ec2.describe_instances(InstanceIds=[made.instance])["Reservations"][0]["Instances"][0]
    assert after["State"]["Name"] == "running" and after["Tags"] == before["Tags"]
    assert run(["destroy", "-f", str(path), "--yes"]) == 0
    after = ec2.describe_instances(InstanceIds=[made.instance])["Reservations"][0]["Instances"][0]
    assert after["State"]["Name"] == "running"
    nic = ec2.describe_network_interfaces(NetworkInterfaceIds=[made.interface])
    assert nic["NetworkInterfaces"][0]["SourceDestCheck"] is False


def test_retire_old_stops_the_hand_made_connector_after_its_routes_have_left_it(
    world: SandboxWorld, session, clouds, capsys
):
    from test_aws_pair import RouteWatch

    made = hand_made_connector(session, world.hq, PEERS)
    profile = world.directory / "hq.ovpn"
    profile.write_text("client\nremote vpn.example 1194\n<key>\nk\n</key>\n")
    where = ["--cloud", "aws", "--region", "us-east-1", "--vpc", world.hq.vpc]
    assert run(["discover", *where, "--name", "hq", "--profile", str(profile)]) == 0
    path = world.directory / "hq.yaml"
    path.write_text(capsys.readouterr().out)
    assert run(["plan", "-f", str(path), "--retire-old"]) == 0
    text = capsys.readouterr().out
    assert f"stop {made.instance} (the connector made by hand; not terminated)" in text
    watch = RouteWatch(session, world)
    result = Deployment(load_topology(path), clouds).apply(retire_old=True)
    kinds = [c.kind for c in result.done]
    assert kinds[-1] == "retire" and kinds.index("route") < kinds.index("retire")
    assert watch.seen and watch.nowhere == [], watch.seen  # the routes had left it before
    ec2 = session.client("ec2", region_name="us-east-1")
    old = ec2.describe_instances(InstanceIds=[made.instance])["Reservations"][0]["Instances"][0]
    assert old["State"]["Name"] == "stopped"  # stopped, never terminated: not ours
    assert run(["plan", "-f", str(path), "--detailed-exitcode"]) == 0


# --- Azure: a route's next hop is the hand-made VM's address ------------------------------------


def test_azure_a_hand_made_connector_is_discovered_and_taken_over_without_an_outage(
    azure, capsys, monkeypatch
):
    from conftest import WriteWatch
    from test_azure_pair import hops_lead

    from provisioner.providers.azure.world import hand_made_connector as azure_hand_made

    made = azure_hand_made(azure.url, azure.hq, PEERS)
    monkeypatch.setenv("PROVISION_AZURE_ENDPOINT", azure.url)
    profile = azure.directory / "hq.ovpn"
    profile.write_text(azure.profile_text.format(name="hq"))
    hq = azure.hq
    before = len(azure.arm.mutating_calls())
    assert run(["discover", "--cloud", "azure", "--subscription", hq.subscription,
                "--resource-group", hq.resource_group, "--vnet", hq.vnet, "--region", hq.region,
                "--name", "hq",
                "--profile", str(profile)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert len(azure.arm.mutating_calls()) == before  # it reads, and only reads
    doc = yaml.safe_load(text)
    entry = doc["networks"]["hq"]
    assert (entry["resource_group"], entry["vnet"], entry["region"]) == (
        hq.resource_group, hq.vnet, hq.region)  # fmt: skip
    assert entry["connector"]["subnet"] == hq.connector_subnet
    # only the admin's table leads to it; `all` would add a table of ours: the list is kept
    assert entry["route_tables"] == [hq.route_table]
    assert entry["app_security_groups"] == [{"group": hq.app_group, "ports": ["tcp/443"]}]
    assert doc["networks"]["peers"]["subnets"] == sorted(PEERS)
    path = azure.directory / "discovered.yaml"
    path.write_text(text)
    topology = load_topology(path)
    plan = Deployment(topology, azure.clouds()).plan()
    assert not plan.conflicts
    (note,) = [n for p in plan.networks for n in p.notes if "made by hand" in n]
    assert made["vm"] in note and "running" in note
    moving = [c for c in plan.changes if c.previous_target == made["address"]]
    assert len(moving) == 3 and all("takes over from the hand-made connector" in c.why
                                    for c in moving)  # fmt: skip
    with WriteWatch(azure.arm, lambda: hops_lead(azure)).installed() as watch:
        Deployment(topology, azure.clouds()).apply()
    assert watch.seen and watch.nowhere == [], watch.seen
    assert Deployment(topology, azure.clouds()).plan().empty
    vm = azure.arm.state.resources[made["vm"].lower()]
    assert vm.get("powerState", "running") == "running"  # the old VM: as it was
    Deployment(topology, azure.clouds()).destroy()  # ours only: the old VM and its NIC stay
    assert made["vm"].lower() in azure.arm.state.resources
    assert any(
        r["name"] == "cloudconnexa-connector-nic" for r in azure.arm.state.resources.values()
    )


def test_azure_retire_old_powers_the_hand_made_vm_off_after_its_routes_moved(azure):
    from provisioner.providers.azure.world import hand_made_connector as azure_hand_made

    made = azure_hand_made(azure.url, azure.hq, [azure.spoke.cidr, "172.31.0.0/16"])
    doc = azure.topology()
    result = azure.deployment(doc).apply(retire_old=True)
    kinds = [c.kind for c in result.done if c.network == "hq"]
    assert kinds[-1] == "retire" and "route" not in kinds[kinds.index("retire") :], " ".join(kinds)
    vm = azure.arm.state.resources[made["vm"].lower()]
    assert vm["powerState"] == "stopped"  # powered off, not deallocated, not deleted
    assert azure.deployment(doc).plan().empty


# --- OCI: a route rule names the hand-made instance's primary private IP ------------------------


def test_oci_a_hand_made_connector_is_discovered_taken_over_and_retired(oci_world, capsys):
    from conftest import WriteWatch
    from test_oci_pair import rules_lead

    from provisioner.providers.oci.world import hand_made_connector as oci_hand_made

    o = oci_world
    image = o.fake.of_kind("images")[0]["id"]
    made = oci_hand_made(o.url, o.hq, image, [o.spoke.cidr, "172.31.0.0/16"])
    with o.fake.lock:  # (the fake's instances answer RUNNING once read)
        o.fake.state.resources[made["instance"]]["lifecycleState"] = "RUNNING"
    # discover: the VCN's file, OCI's vault and key given as flags (the cloud cannot say them)
    import pytest

    doc = o.topology()  # (its profiles written)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PROVISION_OCI_ENDPOINT", o.url)
        hq = o.hq
        assert (
            run(
                [
                    "discover",
                    "--cloud",
                    "oci",
                    "--region",
                    hq.region,
                    "--compartment",
                    hq.compartment,
                    "--vcn",
                    hq.vcn,
                    "--name",
                    "hq",
                    "--profile",
                    str(o.directory / "hq.ovpn"),
                    "--vault",
                    hq.vault,
                    "--key",
                    hq.key,
                ]
            )
            == 0
        )
    text = capsys.readouterr().out
    found = yaml.safe_load(text)["networks"]
    assert found["hq"]["connector"]["subnet"] == hq.connector_subnet
    assert (found["hq"]["connector"]["vault"], found["hq"]["connector"]["key"]) == (
        hq.vault,
        hq.key,
    )
    assert found["hq"]["route_tables"] == [hq.route_table]
    assert sorted(found["peers"]["subnets"]) == sorted([o.spoke.cidr, "172.31.0.0/16"])
    (o.directory / "found.yaml").write_text(text)
    found_topology = load_topology(o.directory / "found.yaml")
    assert [n.name for n in found_topology.networks] == ["hq", "peers"]
    assert not Deployment(found_topology, o.clouds()).plan().conflicts  # plan reads it as is
    plan = o.deployment(doc).plan(retire_old=True)
    assert not plan.conflicts
    (note,) = [n for p in plan.networks for n in p.notes if "made by hand" in n]
    assert made["instance"] in note
    moving = [c for c in plan.changes if c.previous_target == made["private_ip"]]
    assert len(moving) == 3 and all("takes over from the hand-made connector" in c.why
                                    for c in moving)  # fmt: skip
    hq = [c for c in plan.changes if c.network == "hq"]
    assert hq[-1].kind == "retire"  # the last step: its rules have all moved
    with WriteWatch(o.fake, lambda: rules_lead(o)).installed() as watch:
        result = o.deployment(doc).apply(retire_old=True)
    assert watch.seen and watch.nowhere == [], watch.seen
    kinds = [str(c.kind) for c in result.done if c.network == "hq"]
    assert kinds[-1] == "retire" and "route" not in kinds[kinds.index("retire") :], kinds
    assert o.fake.state.resources[made["instance"]]["lifecycleState"] == "STOPPED"  # not gone
    assert o.deployment(doc).plan().empty


def test_retire_old_stops_nothing_that_routes_the_file_does_not_move_still_lead_to(
    world: SandboxWorld, session, clouds
):
    """A range the file does not route (192.168.0.0/22 here: no network of it) still goes
    through the hand-made VM after the take-over: --retire-old leaves it running, and says
    why."""
    made = hand_made_connector(session, world.hq, PEERS)
    doc = world.topology()
    doc["networks"].pop("branch")  # (192.168.0.0/22 is Branch's: not routed by this file)
    doc["networks"]["partner"] = {"cloud": "external", "subnets": ["172.31.0.0/16"]}
    path = world.directory / "hq.yaml"
    path.write_text(yaml.safe_dump(doc))
    plan = Deployment(load_topology(path), clouds).plan(retire_old=True)
    assert not plan.conflicts and "retire" not in [c.kind for c in plan.changes]
    (note,) = [n for p in plan.networks for n in p.notes if n.startswith("--retire-old")]
    assert made.instance in note and "192.168.0.0/22" in note


# --- GCP: a route's next hop is the hand-made instance -------------------------------------------


def test_gcp_a_hand_made_connector_is_discovered_taken_over_and_retired(gcp, capsys, monkeypatch):
    from conftest import WriteWatch

    from provisioner.providers.gcp.world import hand_made_connector as gcp_hand_made

    hop = gcp_hand_made(gcp.url, gcp.hq, [gcp.spoke.cidr, "172.31.0.0/16"])
    doc = gcp.topology()  # (its profiles written)
    monkeypatch.setenv("PROVISION_GCP_ENDPOINT", gcp.url)
    hq = gcp.hq
    assert (
        run(
            [
                "discover",
                "--cloud",
                "gcp",
                "--project",
                hq.project,
                "--network",
                hq.network,
                "--zone",
                hq.zone,
                "--name",
                "hq",
                "--profile",
                str(gcp.directory / "hq.ovpn"),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    found = yaml.safe_load(text)["networks"]
    assert found["hq"]["connector"]["subnet"] == hq.connector_subnet
    assert found["hq"]["route_tables"] == "all" and found["hq"]["zone"] == hq.zone
    assert sorted(found["peers"]["subnets"]) == sorted([gcp.spoke.cidr, "172.31.0.0/16"])
    (gcp.directory / "found.yaml").write_text(text)
    found_topology = load_topology(gcp.directory / "found.yaml")
    assert [n.name for n in found_topology.networks] == ["hq", "peers"]
    assert not Deployment(found_topology, gcp.clouds()).plan().conflicts  # plan reads it as is
    plan = gcp.deployment(doc).plan(retire_old=True)
    assert not plan.conflicts
    (note,) = [n for p in plan.networks for n in p.notes if "made by hand" in n]
    assert hop in note
    moving = [c for c in plan.changes if c.previous_target == hop and c.kind == "route"]
    assert len(moving) == 3 and all("takes over from the hand-made connector" in c.why
                                    for c in moving)  # fmt: skip
    assert [c for c in plan.changes if c.network == "hq"][-1].kind == "retire"

    def leads() -> set[str]:
        """Each route for our destinations: its instance running, or NOWHERE."""
        res = gcp.gce.state.compute
        running = {f"zones/{k.split('/')[3]}/instances/{r['name']}" for k, r in res.items()
                   if r["_kind"] == "instances" and r.get("status") == "RUNNING"}  # fmt: skip
        out = set()
        for r in res.values():
            if r["_kind"] == "routes" and r["destRange"] in ("100.96.0.0/11", "172.31.0.0/16"):
                target = "/".join(r.get("nextHopInstance", "").split("/")[-4:])
                out.add("ok" if target in running or r.get("nextHopIlb") else "NOWHERE")
        return out

    with WriteWatch(gcp.gce, leads).installed() as watch:
        result = gcp.deployment(doc).apply(retire_old=True)
    assert watch.seen and watch.nowhere == [], watch.seen
    kinds = [str(c.kind) for c in result.done if c.network == "hq"]
    assert kinds[-1] == "retire" and "route" not in kinds[kinds.index("retire") :], kinds
    (vm,) = [r for r in gcp.gce.state.compute.values()
             if r["_kind"] == "instances" and r["name"] == "cloudconnexa-connector"]  # fmt: skip
    assert vm["status"] in ("TERMINATED", "STOPPED")  # stopped, not deleted
    assert gcp.deployment(doc).plan().empty


def test_a_take_over_stopped_half_way_is_finished_by_the_next_apply(
    world: SandboxWorld, session, clouds
):
    """EC2 refuses the take-over's 5th route write (once): apply stops there, some
    routes on ours, the VPN range's still on the old VM (they move last, a step of their own);
    the next plan finds the old VM by them and apply finishes the take-over."""
    from conftest import error_response, inject

    from provisioner.errors import CloudError

    made = hand_made_connector(session, world.hq, PEERS)
    doc = world.topology()
    doc["networks"]["partner"] = {"cloud": "external", "subnets": ["172.31.0.0/16"]}
    path = world.directory / "hq.yaml"
    path.write_text(yaml.safe_dump(doc))
    topology = load_topology(path)
    plan = Deployment(topology, clouds).plan()
    hq = [c for c in plan.changes if c.network == "hq" and c.kind == "route"]
    vpn = [i for i, c in enumerate(hq) if c.label == "VPN clients"]
    assert vpn and min(vpn) > max(i for i, c in enumerate(hq) if c.label != "VPN clients")
    inject(session, "ec2", "ReplaceRoute", lambda: error_response(
        "ec2", 403, "UnauthorizedOperation", "You are not authorized"), after=4)  # fmt: skip
    try:
        Deployment(topology, clouds).apply()
    except CloudError as e:
        assert "not done" in str(e) or "stopped" in str(e)
    else:
        raise AssertionError("the apply should have stopped")
    ec2 = session.client("ec2", region_name="us-east-1")
    old = {(t["RouteTableId"], r["DestinationCidrBlock"])
           for t in ec2.describe_route_tables(RouteTableIds=world.hq.route_tables)["RouteTables"]
           for r in t["Routes"] if r.get("NetworkInterfaceId") == made.interface}  # fmt: skip
    assert any(d == "100.96.0.0/11" for _, d in old)  # found again by these
    again = Deployment(topology, clouds).plan()
    assert not again.conflicts
    assert any(
        "takes over the connector made by hand" in n for p in again.networks for n in p.notes
    )
    Deployment(topology, clouds).apply()
    assert Deployment(topology, clouds).plan().empty
    left = [r for t in ec2.describe_route_tables(RouteTableIds=world.hq.route_tables)["RouteTables"]
            for r in t["Routes"] if r.get("NetworkInterfaceId") == made.interface]  # fmt: skip
    assert left == []


# --- with the service block: the service's network made in the portal, adopted ------------------


def test_with_the_service_the_portal_network_is_adopted_and_its_old_connector_goes_after_the_routes(
    world: SandboxWorld, session, service, capsys
):
    """The guide's whole setup: HQ's network made in the admin portal with its connector, the
    VM made by hand dialling in with it. The file adopts the network; apply --retire-old adds
    our connector and routes there, takes the cloud routes over, stops the old VM, and only then
    removes the portal's connector (the API keeps a network's last one: ours is there by then)."""
    from test_service import deployment as service_deployment
    from test_service import fake

    server = fake(service)
    with server.lock:
        server._create_network({
            "name": "hq", "description": "made in the portal", "routes": [{"value": "10.0.0.0/18"}],
            "connectors": [{"name": "hq-by-hand", "vpnRegionId": "eu-central-1"}],
        })  # fmt: skip
    made = hand_made_connector(session, world.hq, [world.branch.cidr, "172.31.0.0/16"])

    # discover, with the service's credentials: the portal's network adopted, its connector
    # named, no profile file (the service makes ours)
    where = ["--cloud", "aws", "--region", "us-east-1", "--vpc", world.hq.vpc]
    assert run(["discover", *where, "--service-cloud-id", "sandbox"]) == 0
    text = capsys.readouterr().out
    doc = yaml.safe_load(text)
    assert doc["service"]["cloudconnexa"] == {"cloud_id": "sandbox", "vpn_region": "eu-central-1"}
    assert doc["networks"]["hq"]["adopt_service_network"] is True and "hq-by-hand" in text
    assert "profile" not in doc["networks"]["hq"]["connector"]
    (world.directory / "found.yaml").write_text(text)
    assert [n.name for n in load_topology(world.directory / "found.yaml").networks][0] == "hq"

    def adopt(doc: dict[str, Any]) -> None:
        doc["networks"]["hq"]["adopt_service_network"] = True

    plan = service_deployment(world, session, service, adopt).plan(retire_old=True)
    assert not plan.conflicts
    gone = [c for c in plan.changes if c.kind == "service-connector" and c.action == "delete"]
    assert [c.resource for c in gone] == ["hq-by-hand on hq"]
    result = service_deployment(world, session, service, adopt).apply(retire_old=True)
    order = [(c.network, str(c.kind), c.resource) for c in result.done]
    stop = next(i for i, (n, k, _) in enumerate(order) if n == "hq" and k == "retire")
    last_route = max(i for i, (n, k, _) in enumerate(order) if n == "hq" and k == "route")
    removed = order.index(("cloudconnexa", "service-connector", "hq-by-hand on hq"))
    assert last_route < stop < removed  # routes moved, old VM stopped, then its connector
    hq = server.snapshot()["hq"]
    assert hq["connectors"] == ["cp-hq"] and hq["description"] == "made in the portal"
    assert "10.0.0.0/18" in hq["routes"]
    ec2 = session.client("ec2", region_name="us-east-1")
    old = ec2.describe_instances(InstanceIds=[made.instance])["Reservations"][0]["Instances"][0]
    assert old["State"]["Name"] == "stopped"
    assert service_deployment(world, session, service, adopt).plan().empty


@pytest.mark.parametrize("cloud", ["azure", "gcp", "oci"])
def test_a_take_over_stopped_half_way_is_finished_on_the_other_clouds(cloud, request):
    """The cloud refuses a route write of the take-over once (after the first): apply stops,
    the VPN range still leads to the old VM, and the next apply finishes the take-over."""
    from provisioner.errors import CloudError

    w = request.getfixturevalue("oci_world" if cloud == "oci" else cloud)
    peers = [w.spoke.cidr, "172.31.0.0/16"]
    if cloud == "azure":
        from provisioner.providers.azure.world import hand_made_connector as make

        hop = make(w.url, w.hq, peers)["address"]
        fake, fault = w.arm, ("PUT", rf"/routeTables/{w.hq.route_table}$", 1)
    elif cloud == "gcp":
        from provisioner.providers.gcp.world import hand_made_connector as make_gcp

        hop = make_gcp(w.url, w.hq, peers)
        fake, fault = w.gce, ("POST", r"/global/routes$", 1)
    else:
        from provisioner.providers.oci.world import hand_made_connector as make_oci

        hop = make_oci(w.url, w.hq, w.fake.of_kind("images")[0]["id"], peers)["private_ip"]
        with w.fake.lock:
            for r in w.fake.state.resources.values():
                if r["_kind"] == "instances":
                    r["lifecycleState"] = "RUNNING"
        fake, fault = w.fake, ("PUT", rf"/routeTables/{w.hq.route_table}$", 1)
    doc = w.topology()
    method, path, after = fault
    fake.fail(method, path, 403, "Forbidden", "refused", after=after)
    with pytest.raises(CloudError):
        w.deployment(doc).apply()
    again = w.deployment(doc).plan()
    assert not again.conflicts
    assert any(c.previous_target == hop and c.label == "VPN clients" for c in again.changes)
    w.deployment(doc).apply()
    assert w.deployment(doc).plan().empty
    assert not any(r.target == hop for obs in [w.deployment(doc).observe()["hq"]]
                   for t in obs.route_tables for r in t.routes)  # fmt: skip


def test_a_forwarding_vm_that_only_peer_ranges_lead_to_stays_a_conflict(
    world: SandboxWorld, session, clouds
):
    """A firewall appliance (source/dest check off) that Branch's range goes through, and no
    VPN route: not a connector to take over. The route to it stays a conflict (exit 3)."""
    instance, eni = _firewall(session, world)
    path = world.directory / "hq.yaml"
    path.write_text(yaml.safe_dump(world.topology()))
    plan = Deployment(load_topology(path), clouds).plan()
    assert [(c.route_table, str(c.destination)) for c in plan.conflicts] == [
        (world.hq.route_tables[1], world.branch.cidr)]  # fmt: skip
    assert not any("made by hand" in n for p in plan.networks for n in p.notes)


def test_a_connector_named_in_the_file_is_taken_over_where_its_routes_alone_would_not_say(
    world: SandboxWorld, session, clouds
):
    """A forwarding VM that only a peer range goes through is a conflict by its routes alone
    (above); named in the file (`connector.takes_over`), it is the one taken over. A name no
    route leads to is said, and nothing is taken."""
    instance, eni = _firewall(session, world)
    doc = world.topology()
    path = world.directory / "hq.yaml"
    doc["networks"]["hq"]["connector"]["takes_over"] = "i-0123456789abcdef0"
    path.write_text(yaml.safe_dump(doc))
    plan = Deployment(load_topology(path), clouds).plan()
    assert any("connector.takes_over i-0123456789abcdef0: no route" in n
               for p in plan.networks for n in p.notes)  # fmt: skip
    assert plan.conflicts  # the firewall's route stays a conflict
    doc["networks"]["hq"]["connector"]["takes_over"] = instance
    path.write_text(yaml.safe_dump(doc))
    plan = Deployment(load_topology(path), clouds).plan()
    assert not plan.conflicts
    (moved,) = [c for c in plan.changes if c.previous_target == eni and c.kind == "route"]
    assert moved.destination is not None and str(moved.destination) == world.branch.cidr
    Deployment(load_topology(path), clouds).apply()
    ec2 = session.client("ec2", region_name="us-east-1")
    (ours,) = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag-key", "Values": ["connector-provisioner:network"]}])["Reservations"]
        for i in r["Instances"]]  # fmt: skip
    (table,) = ec2.describe_route_tables(RouteTableIds=[world.hq.route_tables[1]])["RouteTables"]
    led = {r["DestinationCidrBlock"]: r.get("NetworkInterfaceId") for r in table["Routes"]}
    assert led[world.branch.cidr] == ours["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert Deployment(load_topology(path), clouds).plan().empty  # taken: nothing left to do
    firewall = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert firewall["State"]["Name"] == "running"  # not ours: left as it was


def _firewall(session: Any, world: SandboxWorld) -> tuple[str, str]:
    """A firewall appliance in HQ (source/dest check off) that Branch's range goes through in
    one table, and no VPN route: (its instance, its interface)."""
    ec2 = session.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
    vm = ec2.run_instances(ImageId=image, InstanceType="t3.small", MinCount=1, MaxCount=1,
                           SubnetId=world.hq.subnets[2])["Instances"][0]  # fmt: skip
    eni = vm["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": False})
    ec2.create_route(RouteTableId=world.hq.route_tables[1], DestinationCidrBlock=world.branch.cidr,
                     NetworkInterfaceId=eni)  # fmt: skip
    return vm["InstanceId"], eni
