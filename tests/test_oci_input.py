"""Bad input for OCI networks: exit 2, one line naming the field and the value, and not one
request to the fake (it counts them) — or, for OCIDs OCI does not know, only reads."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import OciWorld, edit_network

from provisioner.cli import run

SUBNET = "ocid1.subnet.oc1.eu-frankfurt-1.aaaaaaaaaaaa"
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, changes to networks.hq (None deletes), the field named, the value named)
    ("region with capitals", {"region": "EU-Frankfurt-1"}, "networks.hq.region", "EU-Frankfurt-1"),
    ("compartment not an OCID", {"compartment": "my-compartment"}, "networks.hq.compartment", "my-compartment"),
    ("vcn OCID of a subnet", {"vcn": SUBNET}, "networks.hq.vcn", SUBNET),
    ("no region", {"region": None}, "networks.hq.region", "required"),
    ("no compartment", {"compartment": None}, "networks.hq.compartment", "required"),
    ("no vcn", {"vcn": None}, "networks.hq.vcn", "required"),
    ("an AWS key", {"vpc": "vpc-0abc1234"}, "networks.hq.vpc", "unknown key"),
    ("a GCP key", {"route_priority": 900}, "networks.hq.route_priority", "unknown key"),
    ("connector subnet a name", {"connector.subnet": "public"}, "networks.hq.connector.subnet", "public"),
    ("connector subnet a VCN OCID", {"connector.subnet": "ocid1.vcn.oc1.eu-frankfurt-1.aaaaaaaaaaaa"}, "networks.hq.connector.subnet", "ocid1.vcn."),
    ("no vault", {"connector.vault": None}, "networks.hq.connector.vault", "required"),
    ("vault a key OCID", {"connector.vault": "ocid1.key.oc1.eu-frankfurt-1.aaaaaaaaaaaa"}, "networks.hq.connector.vault", "ocid1.key."),
    ("no key", {"connector.key": None}, "networks.hq.connector.key", "required"),
    ("key a vault OCID", {"connector.key": "ocid1.vault.oc1.eu-frankfurt-1.aaaaaaaaaaaa"}, "networks.hq.connector.key", "ocid1.vault."),
    ("dynamic group with a space", {"connector.dynamic_group": "vpn connectors"}, "networks.hq.connector.dynamic_group", "vpn connectors"),
    ("NSG a security list", {"app_security_groups": ["ocid1.securitylist.oc1.eu-frankfurt-1.aaaaaaaaaaaa"]}, "networks.hq.app_security_groups[0]", "ocid1.securitylist."),
    ("route table a name", {"route_tables": ["rt-app"]}, "networks.hq.route_tables[0]", "rt-app"),
    ("shape with a space", {"connector.size": "VM Standard"}, "networks.hq.connector.size", "VM Standard"),
    ("a GCP service account", {"connector.service_account": "a@b.iam.gserviceaccount.com"}, "networks.hq.connector.service_account", "unknown key"),
    ("a pair on one profile", {"connector.ha": True}, "networks.hq.connector.profile", "give profiles: [a, b]"),
    ("a pair in two subnets", {"connector.ha": True, "connector.subnet": None, "connector.subnets": [SUBNET, SUBNET.replace("aaaa", "bbbb")]}, "networks.hq.connector.subnets", "shares one subnet"),
    ("NSG ports", {"app_security_groups": [{"group": "ocid1.networksecuritygroup.oc1.eu-frankfurt-1.aaaaaaaaaaaa", "ports": ["udp/70000"]}]}, "networks.hq.app_security_groups[0].ports[0]", "udp/70000"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_oci_input_is_one_line_exit_2_and_no_request(case, oci_world: OciWorld, capsys):
    _, changes, field, value = case
    path = oci_world.write(edit_network(oci_world.topology(), changes), "bad.yaml")
    assert run(["plan", "-f", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert field in err and value in err, err
    assert oci_world.fake.calls == []


def _one_error(capsys) -> str:
    errors = [
        line for line in capsys.readouterr().err.splitlines() if not line.lstrip().startswith("..")
    ]
    assert len(errors) == 1, errors
    return errors[0]


UNKNOWN = "ocid1.{kind}.oc1.eu-frankfurt-1.0123456789abcdef"


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"vcn": UNKNOWN.format(kind="vcn")}, "networks.hq.vcn"),
        ({"connector.subnet": UNKNOWN.format(kind="subnet")}, "networks.hq.connector.subnet"),
        ({"app_security_groups": [UNKNOWN.format(kind="networksecuritygroup")]}, "networks.hq.app_security_groups[0]"),
        ({"route_tables": [UNKNOWN.format(kind="routetable")]}, "networks.hq.route_tables[0]"),
        ({"connector.vault": UNKNOWN.format(kind="vault")}, "networks.hq.connector.vault"),
        ({"connector.image": UNKNOWN.format(kind="image")}, "networks.hq.connector.image"),
    ],
    ids=["vcn", "subnet", "nsg", "route table", "vault", "image"],
)  # fmt: skip
def test_ocids_oci_does_not_know_are_found_on_the_first_read(
    changes, field, oci_world: OciWorld, capsys
):
    path = oci_world.write(edit_network(oci_world.topology(), changes), "unknown.yaml")
    assert run(["apply", "-f", str(path), "--yes"]) == 2
    err = _one_error(capsys)
    assert field in err and "0123456789abcdef" in err, err
    assert oci_world.fake.calls and oci_world.mutating() == []


def test_another_vcns_compartment_is_bad_input(oci_world: OciWorld, capsys):
    path = oci_world.write(
        edit_network(oci_world.topology(), {"compartment": oci_world.spoke.compartment})
    )
    assert run(["plan", "-f", str(path)]) == 2
    err = _one_error(capsys)
    assert "networks.hq.compartment" in err and oci_world.spoke.compartment in err


def test_a_connector_subnet_without_a_way_out_is_bad_input(oci_world: OciWorld, capsys):
    """The app subnet's table has no 0.0.0.0/0: no way to the VPN service at all."""
    path = oci_world.write(
        edit_network(oci_world.topology(), {"connector.subnet": oci_world.hq.app_subnet})
    )
    assert run(["plan", "-f", str(path)]) == 2
    err = _one_error(capsys)
    assert "networks.hq.connector.subnet" in err and "could not reach the VPN service" in err
    assert oci_world.mutating() == []


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("oci")
