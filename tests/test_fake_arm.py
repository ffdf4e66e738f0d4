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

from provisioner.providers.azure.world import network_client


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


# --- an internal Standard load balancer with an HA-ports rule, and its probes -----------------


def _ha_lb(rg: str, subnet_id: str, lb: str, *, address: str, sku: str = "Standard",
           protocol: str = "All", port: int = 0, path: str | None = "/active") -> m.LoadBalancer:  # fmt: skip
    base = f"{subnet_id.split('/providers/')[0]}/providers/Microsoft.Network/loadBalancers/{lb}"
    return m.LoadBalancer(
        location="westeurope",
        sku=m.LoadBalancerSku(name=sku),
        frontend_ip_configurations=[m.FrontendIPConfiguration(
            name="front", subnet=m.Subnet(id=subnet_id), private_ip_address=address,
            private_ip_allocation_method="Static")],
        backend_address_pools=[m.BackendAddressPool(name="pair")],
        probes=[m.Probe(name="active", protocol="Http" if path else "Tcp", port=_free_port(),
                        request_path=path, interval_in_seconds=5, number_of_probes=2)],
        load_balancing_rules=[m.LoadBalancingRule(
            name="ha-ports", protocol=protocol, frontend_port=port, backend_port=port,
            frontend_ip_configuration=m.SubResource(id=f"{base}/frontendIPConfigurations/front"),
            backend_address_pool=m.SubResource(id=f"{base}/backendAddressPools/pair"),
            probe=m.SubResource(id=f"{base}/probes/active"))],
    )  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _nic(net: Any, rg: str, name: str, subnet_id: str, address: str, pool: str | None) -> Any:
    config = m.NetworkInterfaceIPConfiguration(
        name="ipconfig1", subnet=m.Subnet(id=subnet_id), private_ip_address=address,
        private_ip_allocation_method="Static",
        load_balancer_backend_address_pools=[m.BackendAddressPool(id=pool)] if pool else None,
    )  # fmt: skip
    nic = m.NetworkInterface(location="westeurope", ip_configurations=[config])
    return net.network_interfaces.begin_create_or_update(rg, name, nic).result()


@pytest.fixture
def loopback_subnet(azure: AzureWorld, net) -> str:
    """A subnet of HQ's VNet on loopback addresses: what the probes ask is really there."""
    hq = azure.hq
    vnet = net.virtual_networks.get(hq.resource_group, hq.vnet)
    vnet.address_space.address_prefixes.append("127.0.0.0/24")
    net.virtual_networks.begin_create_or_update(hq.resource_group, hq.vnet, vnet).result()
    made = net.subnets.begin_create_or_update(
        hq.resource_group, hq.vnet, "loop", m.Subnet(address_prefix="127.0.0.0/24")
    ).result()
    return str(made.id)


def test_an_ha_ports_load_balancer_says_no_where_arm_does(azure: AzureWorld, net, loopback_subnet):
    rg = azure.hq.resource_group
    put = net.load_balancers.begin_create_or_update
    sub = loopback_subnet
    assert code(lambda: put(rg, "lb", _ha_lb(rg, sub, "lb", address="127.0.0.10", sku="Basic")).result()) == "InvalidRequestFormat"  # fmt: skip
    assert code(lambda: put(rg, "lb", _ha_lb(rg, sub, "lb", address="127.0.0.10", protocol="Tcp")).result()) == "InvalidRequestFormat"  # fmt: skip
    assert code(lambda: put(rg, "lb", _ha_lb(rg, sub, "lb", address="127.0.0.10", port=443)).result()) == "InvalidRequestFormat"  # fmt: skip
    bad = _ha_lb(rg, sub, "lb", address="127.0.0.10")
    bad.probes[0].request_path = None  # an Http probe needs its path (a Tcp one has none)
    assert code(lambda: put(rg, "lb", bad).result()) == "InvalidRequestFormat"
    assert code(lambda: put(rg, "lb", _ha_lb(rg, sub, "lb", address="10.9.9.9")).result()) == "PrivateIPAddressNotInSubnet"  # fmt: skip
    _nic(net, rg, "taken", sub, "127.0.0.10", None)
    assert code(lambda: put(rg, "lb", _ha_lb(rg, sub, "lb", address="127.0.0.10")).result()) == "PrivateIPAddressInUse"  # fmt: skip


def test_nics_join_the_pool_and_the_probes_pick_who_answers(
    azure: AzureWorld, net, loopback_subnet
):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from provisioner.providers.azure.fake import LbProbes

    rg, sub = azure.hq.resource_group, loopback_subnet
    lb = net.load_balancers.begin_create_or_update(
        rg, "lb", _ha_lb(rg, sub, "lb", address="127.0.0.10")
    ).result()
    assert lb.frontend_ip_configurations[0].private_ip_address == "127.0.0.10"
    assert lb.load_balancing_rules[0].protocol == "All"
    pool = lb.backend_address_pools[0].id
    for name, address in (("a", "127.0.0.5"), ("b", "127.0.0.6")):
        _nic(net, rg, f"nic-{name}", sub, address, pool)
    got = net.load_balancers.get(rg, "lb").backend_address_pools[0]
    assert len(got.backend_ip_configurations) == 2
    # a NIC cannot join a pool that is not there; the balancer cannot go while NICs are in it
    assert (
        code(lambda: _nic(net, rg, "c", sub, "127.0.0.7", pool + "x")) == "InvalidResourceReference"
    )
    assert (
        code(lambda: net.load_balancers.begin_delete(rg, "lb").result())
        == "LoadBalancerInUseByVirtualMachine"
    )

    answers = {"127.0.0.5": 200, "127.0.0.6": 503}
    port = lb.probes[0].port

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(
                answers[self.server.server_address[0]] if self.path == "/active" else 404
            )
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    servers = [ThreadingHTTPServer((a, port), Handler) for a in answers]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        probes = LbProbes(azure.arm, lb.id)
        probes.round()
        assert probes.healthy() == []  # a new member is down until 2 answers in a row
        probes.round()
        assert probes.healthy() == ["127.0.0.5"]
        answers["127.0.0.5"], answers["127.0.0.6"] = 503, 200
        probes.round()
        assert probes.healthy() == ["127.0.0.5"]  # one answer is not yet 2 in a row
        probes.round()
        assert probes.healthy() == ["127.0.0.6"]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def test_the_suites_groups_reach_xdist(request: pytest.FixtureRequest):
    """Each cloud's tests stay on one worker (its fake seeded there once) only if xdist sees the
    group: under `--dist loadgroup` a grouped test's id ends with its group."""
    if request.config.getvalue("loadgroup"):
        assert request.node.nodeid.endswith("@azure"), request.node.nodeid
