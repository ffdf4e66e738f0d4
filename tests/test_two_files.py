"""Two topology files on one CloudConnexa account (and one AWS account): teams split their
networks into files, the service account is shared. Each file owns what it made (its `id` in
the service network's description, a tag on its cloud parts); it plans, applies, prunes and
destroys only its own, and lists the others' as someone else's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.cli import run
from provisioner.sandbox import SandboxWorld


def two_files(world: SandboxWorld) -> tuple[Path, Path]:
    """File `a` with HQ, file `b` with Branch, both with the service block."""
    paths = []
    for name, network in (("a", "hq"), ("b", "branch")):
        doc = world.topology(service=True)
        doc["networks"] = {network: doc["networks"][network]}
        path = world.directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        paths.append(path)
    return paths[0], paths[1]


def instances(session: Any, region: str) -> list[str]:
    ec2 = session.client("ec2", region_name=region)
    return [
        i["InstanceId"]
        for r in ec2.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )["Reservations"]
        for i in r["Instances"]
    ]


def test_a_second_file_on_the_account_touches_nothing_of_the_first(
    world: SandboxWorld, service, session, capsys
):
    """Before: applying file B after file A crashed (`unexpected error: KeyError: 'office-vpc'`)
    and B could not be applied until A was destroyed."""
    a, b = two_files(world)
    assert run(["apply", "-f", str(a), "--yes"]) == 0
    capsys.readouterr()
    assert run(["apply", "-f", str(b), "--yes"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "network(s) of other files on this account, never touched: hq (a)" in out
    assert "no longer in the file" not in out  # A's networks are not B's strays
    snapshot = service.fake.snapshot()
    assert set(snapshot) == {"hq", "branch"}
    assert snapshot["hq"]["description"].startswith("connector-provisioner@a: hq")
    assert snapshot["branch"]["description"].startswith("connector-provisioner@b: branch")
    hq_vm = instances(session, "us-east-1")
    assert len(hq_vm) == 1

    # B prunes and destroys: A's halves stay, and A has nothing to do
    assert run(["apply", "-f", str(b), "--yes", "--prune"]) == 0
    assert run(["destroy", "-f", str(b), "--yes"]) == 0
    assert set(service.fake.snapshot()) == {"hq"}
    assert instances(session, "us-east-1") == hq_vm and instances(session, "us-west-2") == []
    capsys.readouterr()
    assert run(["plan", "-f", str(a)]) == 0
    assert "apply: nothing to do" in capsys.readouterr().out


def test_the_same_network_name_in_two_files_is_a_conflict(world: SandboxWorld, service, capsys):
    a, _ = two_files(world)
    assert run(["apply", "-f", str(a), "--yes"]) == 0
    other = world.directory / "c.yaml"
    other.write_text(a.read_text())  # the same network, hq, in a file of another id
    capsys.readouterr()
    assert run(["plan", "-f", str(other)]) == 3
    out = capsys.readouterr()
    text = out.out + out.err
    assert "made by another file on this account (id a)" in text, text


def test_a_route_that_overlaps_another_networks_route_is_a_conflict_at_plan(
    world: SandboxWorld, service, capsys
):
    """Routes may not overlap across the account (the API refuses with a 400): a network of
    someone else's routing Branch's range is found at plan time, exit 3, naming it, and
    nothing is changed."""
    fake = service.fake
    with fake.lock:
        fake._create_network({
            "name": "legacy-office", "description": "made in the portal",
            "routes": [{"value": "192.168.0.0/16"}],
            "connectors": [{"name": "legacy", "vpnRegionId": "us-east-1"}],
        })  # fmt: skip
    held = fake.snapshot()
    fake.calls.clear()
    path = world.write_topology(service=True)
    assert run(["apply", "-f", str(path), "--yes"]) == 3
    out = capsys.readouterr()
    text = out.out + out.err
    assert (
        "route 192.168.0.0/22 of branch overlaps route 192.168.0.0/16 of network legacy-office"
        in text
    ), text
    assert fake.snapshot() == held and fake.mutating_calls() == []


def test_an_interrupted_route_create_is_recovered_by_reading(world: SandboxWorld, service, session):
    """A stale plan wants a route an interrupted run made meanwhile: the API refuses it (400,
    it overlaps itself); the client reads the network's routes, finds it, and counts it done."""
    from provisioner import Deployment, load_topology
    from provisioner.providers import Clouds

    path = world.write_topology(partner=True, service=True)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    doc = yaml.safe_load(path.read_text())
    doc["networks"]["partner"]["subnets"] = ["172.31.0.0/16", "172.30.5.0/24"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    d = Deployment(load_topology(path), Clouds(options={"aws": {"session": session}}))
    plan = d.plan()
    fake = service.fake
    with fake.lock:  # the interrupted run's route, made after this plan read the service
        (partner,) = [n for n in fake.state.networks.values() if n["name"] == "partner"]
        fake._add_route(
            partner["id"],
            {"value": "172.30.5.0/24", "description": "connector-provisioner: partner"},
        )
    d.execute(plan)  # no error: the refusal was read as done
    routes = fake.snapshot()["partner"]["routes"]
    assert routes.count("172.30.5.0/24") == 1


def test_a_description_fits_what_the_provider_accepts():
    """The Terraform provider validates descriptions of 1-120 characters: a place too long for
    that (OCI's OCIDs) is left out, the owner and the name kept."""
    from provisioner.cloudconnexa.client import description
    from provisioner.clouds import place_from_text
    from provisioner.model import place_text
    from provisioner.providers.oci.cloud import OciLocation

    oci = OciLocation(
        "eu-frankfurt-1",
        "ocid1.compartment.oc1..aaaaaaaa" + "x" * 52,
        "ocid1.vcn.oc1.eu-frankfurt-1." + "y" * 60,
    )
    long = description("hub", place_text("oci", oci), "team-a")
    assert len(long) <= 120 and long == "connector-provisioner@team-a: hub"
    short = description("hq", "aws region=us-east-1 vpc=vpc-0abc12345678;", "team-a")
    assert len(short) <= 120 and place_from_text(short) is not None


def _not_anothers(world: Any, extra: dict[str, Any] | None) -> None:
    """File `topology` applies hq, spoke (and `extra`); a file of another id beside it, with no
    service block, never lists their connectors as its own left behind."""
    doc = world.topology(partner=False)
    if extra is not None:
        doc["networks"]["extra"] = extra
    world.deployment(doc).apply()
    other = {**doc, "id": "other", "networks": {"hq": doc["networks"]["hq"]}}
    plan = world.deployment(other).plan()
    assert not [n for n in plan.networks if any("no longer in the file" in x for x in n.notes)], [
        n.notes for n in plan.networks
    ]
    world.deployment(doc).destroy()


@pytest.mark.xdist_group("gcp")
def test_another_files_connectors_are_not_strays_on_gcp(gcp: Any):
    _not_anothers(gcp, None)  # spoke is in hq's project


@pytest.mark.xdist_group("azure")
def test_another_files_connectors_are_not_strays_on_azure(azure: Any):
    from provisioner.providers.azure.world import seed_vnet

    extra = seed_vnet(azure.arm, azure.url, "extra", "10.3.0.0/16",
                      resource_group=azure.hq.resource_group)  # fmt: skip
    (azure.directory / "extra.ovpn").write_text("client\nremote x 1194\n<key>\nk\n</key>\n")
    _not_anothers(azure, extra.network_entry("extra.ovpn"))


@pytest.mark.xdist_group("oci")
def test_another_files_connectors_are_not_strays_on_oci(oci_world: Any):
    from provisioner.providers.oci.world import seed_vcn

    extra = seed_vcn(oci_world.fake, oci_world.url, "extra", "10.8.0.0/16", beside=oci_world.hq)
    (oci_world.directory / "extra.ovpn").write_text("client\nremote x 1194\n<key>\nk\n</key>\n")
    _not_anothers(oci_world, extra.network_entry("extra.ovpn"))
