"""Bad input for Azure networks: exit 2, one line naming the field and the value, and not one
request to ARM (the fake counts them) — or, for names ARM does not know, only reads."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import AzureWorld, edit_network

from provisioner.cli import run

GUID = "00000000-0000-4000-8000-000000000001"
NSG_ID = f"/subscriptions/{GUID}/resourceGroups/rg-hq/providers/Microsoft.Network/networkSecurityGroups/nsg"

CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, changes to networks.hq (None deletes), the field named, the value named)
    ("subscription not a GUID", {"subscription": "1234"}, "networks.hq.subscription", "1234"),
    ("resource group with a space", {"resource_group": "rg hq"}, "networks.hq.resource_group", "rg hq"),
    ("vnet with a slash", {"vnet": "vnet/x"}, "networks.hq.vnet", "vnet/x"),
    ("region with a space", {"region": "West Europe"}, "networks.hq.region", "West Europe"),
    ("no subscription", {"subscription": None}, "networks.hq.subscription", "required"),
    ("no resource group", {"resource_group": None}, "networks.hq.resource_group", "required"),
    ("no vnet", {"vnet": None}, "networks.hq.vnet", "required"),
    ("no region", {"region": None}, "networks.hq.region", "required"),
    ("an AWS key", {"vpc": "vpc-0abc1234"}, "networks.hq.vpc", "unknown key"),
    ("connector subnet with a slash", {"connector.subnet": "snet/x"}, "networks.hq.connector.subnet", "snet/x"),
    ("connector subnet too long", {"connector.subnet": "s" * 81}, "networks.hq.connector.subnet", "s" * 81),
    ("size with a space", {"connector.size": "Standard B2s"}, "networks.hq.connector.size", "Standard B2s"),
    ("NSG name starting with a dash", {"app_security_groups": ["-nsg"]}, "networks.hq.app_security_groups[0]", "-nsg"),
    ("NSG id with no GUID", {"app_security_groups": [NSG_ID.replace(GUID, "sub")]}, "networks.hq.app_security_groups[0]", "/subscriptions/sub"),
    ("NSG id of a route table", {"app_security_groups": [NSG_ID.replace("networkSecurityGroups", "routeTables")]}, "networks.hq.app_security_groups[0]", "routeTables"),
    ("route table with a space", {"route_tables": ["rt app"]}, "networks.hq.route_tables[0]", "rt app"),
    ("route table id of an NSG", {"route_tables": [NSG_ID]}, "networks.hq.route_tables[0]", "networkSecurityGroups"),
    ("NSG ports", {"app_security_groups": [{"group": "nsg-hq-app", "ports": ["tcp/0"]}]}, "networks.hq.app_security_groups[0].ports[0]", "tcp/0"),
    ("a pair that NATs all", {"connector.ha": True, "connector.subnet": None, "connector.subnets": ["snet-a", "snet-b"], "connector.profile": None, "connector.profiles": ["hq.ovpn", "spoke.ovpn"], "connector.nat": True, "connector.nat_preserve_source": False}, "networks.hq.connector.nat_preserve_source", "not supported with ha"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_azure_input_is_one_line_exit_2_and_no_request(case, azure: AzureWorld, capsys):
    _, changes, field, value = case
    path = azure.write(edit_network(azure.topology(), changes), "bad.yaml")
    assert run(["plan", "-f", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert field in err and value in err, err
    assert azure.arm.calls == []


def _reads_only(azure: AzureWorld) -> bool:
    return bool(azure.arm.calls) and azure.mutating() == []


@pytest.mark.parametrize(
    "changes, field, value",
    [
        ({"vnet": "vnet-nowhere"}, "networks.hq.vnet", "vnet-nowhere"),
        ({"resource_group": "rg-nowhere"}, "networks.hq.resource_group", "rg-nowhere"),
        ({"connector.subnet": "snet-nowhere"}, "networks.hq.connector.subnet", "snet-nowhere"),
        ({"app_security_groups": ["nsg-nowhere"]}, "networks.hq.app_security_groups[0]", "nsg-nowhere"),
        ({"route_tables": ["rt-nowhere"]}, "networks.hq.route_tables[0]", "rt-nowhere"),
    ],
    ids=["vnet", "resource group", "subnet", "nsg", "route table"],
)  # fmt: skip
def test_names_azure_does_not_know_are_found_on_the_first_read(
    changes, field, value, azure: AzureWorld, capsys
):
    path = azure.write(edit_network(azure.topology(), changes), "unknown.yaml")
    assert run(["apply", "-f", str(path), "--yes"]) == 2
    errors = [
        line for line in capsys.readouterr().err.splitlines() if not line.lstrip().startswith("..")
    ]
    assert len(errors) == 1 and field in errors[0] and value in errors[0], errors
    assert _reads_only(azure)


def test_a_connector_subnet_whose_default_route_drops_is_bad_input(azure: AzureWorld, capsys):
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.world import network_client

    net = network_client(azure.url)
    hq = azure.hq
    table = net.route_tables.begin_create_or_update(
        hq.resource_group,
        "rt-isolated",
        m.RouteTable(
            location=hq.region,
            properties=m.RouteTablePropertiesFormat(
                routes=[
                    m.Route(
                        name="drop-all",
                        properties=m.RoutePropertiesFormat(
                            address_prefix="0.0.0.0/0", next_hop_type="None"
                        ),
                    )
                ]
            ),
        ),
    ).result()
    connector = net.subnets.get(hq.resource_group, hq.vnet, hq.connector_subnet)
    connector.route_table = m.RouteTable(id=table.id)
    net.subnets.begin_create_or_update(
        hq.resource_group, hq.vnet, hq.connector_subnet, connector
    ).result()
    azure.arm.calls.clear()
    path = azure.write(azure.topology(), "isolated.yaml")
    assert run(["plan", "-f", str(path)]) == 2
    err = [
        line for line in capsys.readouterr().err.splitlines() if not line.lstrip().startswith("..")
    ]
    assert (
        len(err) == 1 and "networks.hq.connector.subnet" in err[0] and hq.connector_subnet in err[0]
    )
    assert "could not reach the VPN service" in err[0]
    assert _reads_only(azure)


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("azure")
