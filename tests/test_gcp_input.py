"""Bad input for GCP networks: exit 2, one line naming the field and the value, and not one
request to the fake (it counts them) — or, for names Google Cloud does not know, only reads."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import GcpWorld, edit_network

from provisioner.cli import run

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, changes to networks.hq (None deletes), the field named, the value named)
    ("project with capitals", {"project": "Sandbox-Project"}, "networks.hq.project", "Sandbox-Project"),
    ("project too short", {"project": "abc"}, "networks.hq.project", "abc"),
    ("network with an underscore", {"network": "vpc_hq"}, "networks.hq.network", "vpc_hq"),
    ("zone that is a region", {"zone": "europe-west1"}, "networks.hq.zone", "europe-west1"),
    ("no project", {"project": None}, "networks.hq.project", "required"),
    ("no network", {"network": None}, "networks.hq.network", "required"),
    ("no zone", {"zone": None}, "networks.hq.zone", "required"),
    ("a pair on one service account", {"connector.ha": True, "connector.subnet": None, "connector.subnets": ["hq-connector", "hq-app"], "connector.profile": None, "connector.profiles": ["hq.ovpn", "spoke.ovpn"], "connector.service_account": "vpn@sandbox-project-1.iam.gserviceaccount.com"}, "networks.hq.connector.service_account", "each gets a service account of its own"),
    ("an AWS key", {"vpc": "vpc-0abc1234"}, "networks.hq.vpc", "unknown key"),
    ("an Azure key", {"resource_group": "rg"}, "networks.hq.resource_group", "unknown key"),
    ("subnetwork with capitals", {"connector.subnet": "HQ-connector"}, "networks.hq.connector.subnet", "HQ-connector"),
    ("subnetwork as an AWS id", {"connector.subnet": "subnet_0123"}, "networks.hq.connector.subnet", "subnet_0123"),
    ("size with a space", {"connector.size": "e2 small"}, "networks.hq.connector.size", "e2 small"),
    ("tag with capitals", {"app_security_groups": ["Web"]}, "networks.hq.app_security_groups[0]", "Web"),
    ("tag starting with a digit", {"app_security_groups": ["1web"]}, "networks.hq.app_security_groups[0]", "1web"),
    ("tag of 64 characters", {"app_security_groups": ["w" * 64]}, "networks.hq.app_security_groups[0]", "w" * 64),
    ("route tag ending with a dash", {"route_tables": ["web-"]}, "networks.hq.route_tables[0]", "web-"),
    ("route priority negative", {"route_priority": -1}, "networks.hq.route_priority", "-1"),
    ("route priority too high", {"route_priority": 65536}, "networks.hq.route_priority", "65536"),
    ("route priority a word", {"route_priority": "high"}, "networks.hq.route_priority", "high"),
    ("route priority true", {"route_priority": True}, "networks.hq.route_priority", "True"),
    ("service account not an email", {"connector.service_account": "connector"}, "networks.hq.connector.service_account", "connector"),
    ("service account of another domain", {"connector.service_account": "vpn@example.com"}, "networks.hq.connector.service_account", "vpn@example.com"),
    ("route priority on the connector", {"connector.route_priority": 900}, "networks.hq.connector.route_priority", "unknown key"),
    ("tag ports", {"app_security_groups": [{"group": "hq-app", "ports": ["icmp/8"]}]}, "networks.hq.app_security_groups[0].ports[0]", "icmp/8"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_gcp_input_is_one_line_exit_2_and_no_request(case, gcp: GcpWorld, capsys):
    _, changes, field, value = case
    path = gcp.write(edit_network(gcp.topology(), changes), "bad.yaml")
    assert run(["plan", "-f", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert field in err and value in err, err
    assert gcp.gce.calls == []


def test_a_service_account_key_is_refused_on_another_cloud(gcp: GcpWorld, azure, capsys):
    doc = azure.topology()
    doc["networks"]["hq"]["connector"]["service_account"] = (
        f"vpn-hq@{gcp.hq.project}.iam.gserviceaccount.com"
    )
    assert run(["plan", "-f", str(azure.write(doc, "bad.yaml"))]) == 2
    err = capsys.readouterr().err.strip()
    assert "networks.hq.connector.service_account" in err and "unknown key" in err
    assert azure.arm.calls == []


def _one_error(capsys) -> str:
    errors = [
        line for line in capsys.readouterr().err.splitlines() if not line.lstrip().startswith("..")
    ]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(
    "changes, field, value",
    [
        ({"network": "vpc-nowhere"}, "networks.hq.network", "vpc-nowhere"),
        ({"project": "project-nowhere"}, "networks.hq.network", "project-nowhere"),
        ({"connector.subnet": "nowhere"}, "networks.hq.connector.subnet", "nowhere"),
        ({"connector.subnet": "spoke-connector"}, "networks.hq.connector.subnet", "spoke-connector"),
        ({"app_security_groups": ["no-such-tag"]}, "networks.hq.app_security_groups[0]", "no-such-tag"),
        ({"route_tables": ["no-such-tag"]}, "networks.hq.route_tables[0]", "no-such-tag"),
        ({"connector.service_account": "vpn-nobody@sandbox-project-1.iam.gserviceaccount.com"}, "networks.hq.connector.service_account", "vpn-nobody@"),
        ({"connector.image": "projects/ubuntu-os-cloud/global/images/ubuntu-1004-nowhere"}, "networks.hq.connector.image", "ubuntu-1004-nowhere"),
    ],
    ids=["network", "project", "subnetwork", "another network's subnetwork", "app tag", "route tag", "service account", "image"],
)  # fmt: skip
def test_names_gcp_does_not_know_are_found_on_the_first_read(
    changes, field, value, gcp: GcpWorld, capsys
):
    path = gcp.write(edit_network(gcp.topology(), changes), "unknown.yaml")
    assert run(["apply", "-f", str(path), "--yes"]) == 2
    err = _one_error(capsys)
    assert field in err and value in err, err
    assert gcp.gce.calls and gcp.mutating() == []


def test_a_network_without_a_default_route_is_bad_input(gcp: GcpWorld, capsys):
    api = gcp.compute()
    (default,) = [
        r["name"]
        for r in gcp.gce.resources("routes")
        if r["destRange"] == "0.0.0.0/0" and r["network"].endswith("/vpc-hq")
    ]
    api.routes.delete_unary(project=gcp.hq.project, route=default)
    gcp.gce.calls.clear()
    assert run(["plan", "-f", str(gcp.write(gcp.topology()))]) == 2
    err = _one_error(capsys)
    assert "networks.hq.connector.subnet" in err and "hq-connector" in err
    assert "could not reach the VPN service" in err
    assert gcp.mutating() == []


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("gcp")
