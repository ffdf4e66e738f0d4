"""A fifth cloud plugs in from its own package alone: `tests/toycloud` (its description, its
provider, its cloud-init template and a tiny fake) registered, and nothing of the toolkit
edited. The file's `cloud: toy` is parsed by the toy's schema, planned, applied, re-planned,
judged healthy and destroyed, with the toy's own bootstrap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import toycloud
from toycloud.fake import ToyFake

from provisioner import Clouds, Deployment, load_topology
from provisioner.cli import run
from provisioner.model import Kind

PROFILE = "client\nremote toy.vpn.invalid 1194\n<key>\nTOY-PRIVATE-KEY\n</key>\n"


@pytest.fixture
def toy() -> Iterator[ToyFake]:
    toycloud.register()
    try:
        yield ToyFake()
    finally:
        toycloud.unregister()


def topology(fake: ToyFake, directory: Path, **connector: Any) -> tuple[Path, dict[str, Any]]:
    seeded = fake.seed("10.20.0.0/16", ["10.20.0.0/24", "10.20.1.0/24"])
    (directory / "lab.ovpn").write_text(PROFILE)
    doc = {
        "version": 1,
        "networks": {
            "lab": {
                "cloud": "toy",
                "zone": "toy-1",
                "net": seeded["net"],
                "subnets": ["10.20.0.0/16"],
                "connector": {
                    "subnet": next(iter(seeded["subnets"])),
                    "profile": "lab.ovpn",
                    **connector,
                },
            },  # fmt: skip
            "office": {"cloud": "external", "subnets": ["192.168.50.0/24"]},
        },
    }
    path = directory / "topology.yaml"
    path.write_text(json.dumps(doc))
    return path, seeded


def test_a_toy_cloud_plans_applies_and_destroys_from_its_own_package(toy: ToyFake, tmp_path):
    path, seeded = topology(toy, tmp_path)
    before = toy.snapshot()
    d = Deployment(load_topology(path), Clouds(options={"toy": {"fake": toy}}))

    plan = d.plan()
    kinds = {c.kind for c in plan.changes}
    assert {Kind.PART, Kind.CONNECTOR, Kind.FORWARDING, Kind.ROUTE} <= kinds
    assert toy.snapshot() == before  # a plan writes nothing

    d.apply()
    ((vm, made),) = toy.vms.items()
    assert made["forwarding"] and made["size"] == "toy.small"  # the toy schema's default size
    for table, routes in toy.nets[seeded["net"]]["tables"].items():
        # the VPN range and the office lead to the connector, in every table; the way out stays
        assert routes["100.96.0.0/11"] == made["nic"], table
        assert routes["192.168.50.0/24"] == made["nic"], table
        assert routes["0.0.0.0/0"] == "gw-internet"
    # the toy's own cloud-init: it names the secret, never holds the profile
    assert made["user_data"].startswith("#cloud-config\n# the toy cloud's connector")
    assert "connector-provisioner/lab/profile" in made["user_data"]
    assert "TOY-PRIVATE-KEY" not in made["user_data"]
    assert toy.secrets["connector-provisioner/lab/profile"]["value"] == PROFILE

    assert d.plan().empty  # the second apply makes no change
    (status,) = d.status()
    assert status.healthy, status

    d.destroy()
    assert toy.snapshot() == before  # as it was


def test_the_toy_clouds_keys_are_checked_by_its_own_schema(toy: ToyFake, tmp_path, capsys):
    """Bad input in the toy's keys is one line naming the field, exit 2, no call."""
    path, _ = topology(toy, tmp_path)
    doc = json.loads(path.read_text())
    doc["networks"]["lab"]["zone"] = "Toy One"
    path.write_text(json.dumps(doc))
    calls = len(toy.calls)
    assert run(["plan", "-f", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "networks.lab.zone" in err and "Toy One" in err and "toy-1" in err
    assert len(err.splitlines()) == 1 and len(toy.calls) == calls


def test_the_toy_cloud_is_in_the_editor_schema_and_the_help(toy: ToyFake, tmp_path, capsys):
    """The editor schema validates a toy network by the toy's keys; `--cloud` names it."""
    import jsonschema

    from provisioner import editor_schema

    schema = editor_schema.json_schema()
    path, _ = topology(toy, tmp_path)
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, schema)  # as an editor checks it
    doc["networks"]["lab"]["vpc"] = "vpc-0abc1234"  # another cloud's key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    with pytest.raises(SystemExit):
        run(["apply", "--help"])
    assert "toy" in capsys.readouterr().out
