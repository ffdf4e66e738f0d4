"""The fake ARM says no where ARM says no, and answers as ARM answers: checked through the real
azure-mgmt-network SDK (and raw HTTP where the SDK would hide the shape)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.network import models as m
from conftest import AzureWorld

from provisioner.fakes.azure_world import network_client


@pytest.fixture
def net(azure: AzureWorld) -> Any:
    return network_client(azure.url)


def code(call: Any) -> str:
    with pytest.raises(HttpResponseError) as e:
        call()
    return str(e.value.error.code)


def route(prefix: str, hop: str, address: str | None = None) -> m.Route:
    return m.Route(
        properties=m.RoutePropertiesFormat(
            address_prefix=prefix, next_hop_type=hop, next_hop_ip_address=address
        )
    )


def rule(priority: int, direction: str = "Inbound", source: str = "10.0.0.0/8") -> m.SecurityRule:
    return m.SecurityRule(
        properties=m.SecurityRulePropertiesFormat(
            protocol="*", source_address_prefix=source, source_port_range="*",
            destination_address_prefix="*", destination_port_range="*", access="Allow",
            direction=direction, priority=priority,
        )
    )  # fmt: skip


def test_a_subnet_put_without_its_nsg_drops_the_association(azure: AzureWorld, net):
    hq = azure.hq
    app = net.subnets.get(hq.resource_group, hq.vnet, hq.subnets[1])
    assert app.network_security_group is not None
    bare = m.Subnet(properties=m.SubnetPropertiesFormat(address_prefix=app.address_prefix))
    net.subnets.begin_create_or_update(hq.resource_group, hq.vnet, hq.subnets[1], bare).result()
    after = net.subnets.get(hq.resource_group, hq.vnet, hq.subnets[1])
    assert after.network_security_group is None and after.route_table is None


def test_next_hop_address_rules(azure: AzureWorld, net):
    rg, table = azure.hq.resource_group, azure.hq.route_table
    put = net.routes.begin_create_or_update
    assert code(lambda: put(rg, table, "a", route("10.9.0.0/16", "VirtualAppliance")).result()) == (
        "RouteNextHopIpAddressRequired"
    )
    assert code(
        lambda: put(rg, table, "b", route("10.9.0.0/16", "Internet", "10.1.0.4")).result()
    ) == ("RouteNextHopIpAddressNotAllowed")
    assert code(lambda: put(rg, table, "c", route("10.9.0.0/33", "None")).result()) == (
        "InvalidAddressPrefixFormat"
    )
    put(rg, table, "d", route("10.9.0.0/16", "VirtualAppliance", "10.1.0.4")).result()


def test_nsg_priorities_are_100_to_4096_and_unique_per_direction(azure: AzureWorld, net):
    rg, nsg = azure.hq.resource_group, azure.hq.app_group
    put = net.security_rules.begin_create_or_update
    assert code(lambda: put(rg, nsg, "low", rule(99)).result()) == "SecurityRuleInvalidPriority"
    assert code(lambda: put(rg, nsg, "high", rule(4097)).result()) == "SecurityRuleInvalidPriority"
    # the admin's rule holds 100 inbound
    assert code(lambda: put(rg, nsg, "same", rule(100)).result()) == "SecurityRuleConflict"
    put(rg, nsg, "outbound", rule(100, "Outbound")).result()  # the other direction is free
    put(rg, nsg, "outbound", rule(101, "Outbound")).result()  # a name is unique: an update
    names = [r.name for r in net.security_rules.list(rg, nsg)]
    assert names.count("outbound") == 1


def test_in_use_resources_cannot_be_deleted(azure: AzureWorld, net):
    hq = azure.hq
    assert code(
        lambda: net.route_tables.begin_delete(hq.resource_group, hq.route_table).result()
    ) == ("InUseRouteTableCannotBeDeleted")
    assert code(
        lambda: net.network_security_groups.begin_delete(hq.resource_group, hq.app_group).result()
    ) == ("InUseNetworkSecurityGroupCannotBeDeleted")


def test_not_found_is_arms_404_body(azure: AzureWorld, net):
    with pytest.raises(ResourceNotFoundError) as e:
        net.virtual_networks.get(azure.hq.resource_group, "nowhere")
    assert e.value.error.code == "ResourceNotFound" and "ARMResourceNotFoundFix" in str(e.value)
    with pytest.raises(ResourceNotFoundError) as e:
        net.virtual_networks.get("rg-nowhere", "x")
    assert e.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as e:
        net.routes.get(azure.hq.resource_group, "rt-nowhere", "x")
    assert e.value.error.code == "ParentResourceNotFound"


def test_a_write_is_a_long_running_operation_polled_to_succeeded(azure: AzureWorld):
    url = (
        f"{azure.url}/subscriptions/{azure.hq.subscription}/resourceGroups/"
        f"{azure.hq.resource_group}/providers/Microsoft.Network/routeTables/rt-raw?api-version=2024-05-01"
    )
    body = json.dumps({"location": "westeurope"}).encode()
    put = urllib.request.Request(
        url, data=body, method="PUT",
        headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(put) as answer:
        assert answer.status == 201
        operation = answer.headers["Azure-AsyncOperation"]
    statuses = []
    for _ in range(3):
        poll = urllib.request.Request(operation, headers={"Authorization": "Bearer x"})
        with urllib.request.urlopen(poll) as answer:
            statuses.append(json.loads(answer.read())["status"])
    assert statuses == ["InProgress", "Succeeded", "Succeeded"]
    # no token, no answer
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(url))
    assert e.value.code == 401


def test_throttling_answers_429_with_retry_after_and_the_sdk_waits(azure: AzureWorld, net):
    fault = azure.arm.fail(
        "GET", "/virtualNetworks/", 429, "TooManyRequests", times=2, retry_after="0"
    )
    net.virtual_networks.get(azure.hq.resource_group, azure.hq.vnet)
    assert fault.served == 2


def test_the_sdks_own_bearer_policy_refuses_plain_http(azure: AzureWorld):
    """Why the sandbox path replaces the token policy, and why the real path never can reach a
    plain-http endpoint with a real credential."""
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import ServiceRequestError
    from azure.mgmt.network import NetworkManagementClient

    class Credential:
        def get_token(self, *_: Any, **__: Any) -> AccessToken:
            return AccessToken("real-looking", 4102444800)

    client = NetworkManagementClient(
        Credential(), azure.hq.subscription, base_url=azure.url, retry_total=0
    )
    with pytest.raises(ServiceRequestError, match="https"):
        client.virtual_networks.get(azure.hq.resource_group, azure.hq.vnet)


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("azure")


def resource_client(url: str, subscription: str) -> Any:
    """azure-mgmt-resource's client, pointed at the fake as the provider points its own."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.resource.resources import ResourceManagementClient

    from provisioner.providers.azure.common import _NoCredential, _SandboxToken

    token = type("SandboxToken", (_SandboxToken, SansIOHTTPPolicy), {})()
    return ResourceManagementClient(
        _NoCredential(), subscription, base_url=url, authentication_policy=token, polling_interval=0
    )


def test_resource_groups_are_made_read_and_deleted_with_what_they_hold(azure: AzureWorld):
    """ARM's Resource Groups API: PUT makes one (201) or updates it (200) but never moves it;
    HEAD says whether it exists; DELETE is long-running and takes every resource inside
    (Microsoft's reference: 'all of its resources are also deleted'); names are ARM's."""
    sub = azure.hq.subscription
    groups = resource_client(azure.url, sub).resource_groups
    net = network_client(azure.url, sub)
    assert groups.check_existence("rg-new") is False
    made = groups.create_or_update("rg-new", {"location": "westeurope", "tags": {"team": "net"}})
    assert (made.name, made.location, made.properties.provisioning_state) == (
        "rg-new", "westeurope", "Succeeded"
    )  # fmt: skip
    assert groups.check_existence("rg-new") is True
    assert groups.create_or_update("rg-new", {"location": "westeurope"}).tags == {}
    assert code(lambda: groups.create_or_update("rg-new", {"location": "eastus"})) == (
        "InvalidResourceGroupLocation"
    )
    assert code(lambda: groups.create_or_update("rg-new.", {"location": "westeurope"})) == (
        "InvalidResourceGroup"
    )
    assert "rg-new" in {g.name for g in groups.list()}
    # a VNet with a subnet and an NSG in the new group; a NIC in another group uses the subnet
    nsg = net.network_security_groups.begin_create_or_update(
        "rg-new", "nsg-new", m.NetworkSecurityGroup(location="westeurope")
    ).result()
    vnet = net.virtual_networks.begin_create_or_update(
        "rg-new", "vnet-new",
        m.VirtualNetwork(location="westeurope", properties=m.VirtualNetworkPropertiesFormat(
            address_space=m.AddressSpace(address_prefixes=["10.99.0.0/16"]),
            subnets=[m.Subnet(name="s", properties=m.SubnetPropertiesFormat(
                address_prefix="10.99.0.0/24", network_security_group=m.NetworkSecurityGroup(id=nsg.id)))],
        )),
    ).result()  # fmt: skip
    nic = net.network_interfaces.begin_create_or_update(
        azure.hq.resource_group, "nic-elsewhere",
        m.NetworkInterface(location="westeurope", properties=m.NetworkInterfacePropertiesFormat(
            ip_configurations=[m.NetworkInterfaceIPConfiguration(name="ip", properties=m.NetworkInterfaceIPConfigurationPropertiesFormat(
                subnet=m.Subnet(id=vnet.properties.subnets[0].id)))]
        )),
    ).result()  # fmt: skip
    # in use from outside: refused, nothing deleted
    assert code(lambda: groups.begin_delete("rg-new").result()) == "InUseResourceCannotBeDeleted"
    assert net.virtual_networks.get("rg-new", "vnet-new").name == "vnet-new"
    net.network_interfaces.begin_delete(azure.hq.resource_group, nic.name).result()
    groups.begin_delete("rg-new").result()
    assert groups.check_existence("rg-new") is False
    assert code(lambda: groups.get("rg-new")) == "ResourceGroupNotFound"
    assert code(lambda: net.virtual_networks.get("rg-new", "vnet-new")) == "ResourceGroupNotFound"
    assert not [k for k in azure.arm.state.resources if "/resourcegroups/rg-new/" in k]
