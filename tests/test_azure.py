"""Azure end to end: the real azure-mgmt-network / azure-mgmt-compute SDK against the fake ARM
on 127.0.0.1 (provisioner/fakes/arm.py). The outcomes a user relies on."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from conftest import AzureWorld

from provisioner import ConflictError, RouteState
from provisioner.cli import run
from provisioner.providers.azure.fake import iter_resources

N = "microsoft.network"


def resource(azure: AzureWorld, kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in iter_resources(azure.arm, kind) if r["name"] == name]
    return found


def subnet(azure: AzureWorld, name: str) -> dict[str, Any]:
    return resource(azure, f"{N}/virtualnetworks/subnets", name)["properties"]


def routes(azure: AzureWorld, table: str) -> dict[str, tuple[str, str | None]]:
    t = resource(azure, f"{N}/routetables", table)
    return {
        r["properties"]["addressPrefix"]: (
            r["properties"]["nextHopType"],
            r["properties"].get("nextHopIpAddress"),
        )
        for r in t["properties"]["routes"]
    }


def connector_ip(azure: AzureWorld, network: str = "hq") -> str:
    nic = resource(azure, f"{N}/networkinterfaces", f"cp-{network}-nic")
    return str(nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"])


def test_apply_routes_every_subnet_through_the_connector(azure: AzureWorld):
    azure.deployment().apply()
    ip = connector_ip(azure)
    hq = azure.hq
    # subnets without a route table get ours; the app subnet keeps the admin's (and its NSG)
    ours = "cp-hq-routes"
    for name in (hq.connector_subnet, hq.subnets[2]):
        assert subnet(azure, name)["routeTable"]["id"].endswith(f"/routeTables/{ours}")
    app = subnet(azure, hq.subnets[1])
    assert app["routeTable"]["id"].endswith(f"/routeTables/{hq.route_table}")
    assert app["networkSecurityGroup"]["id"].endswith(f"/networkSecurityGroups/{hq.app_group}")
    for table in (ours, hq.route_table):
        r = routes(azure, table)
        for destination in ("100.96.0.0/11", "10.2.0.0/16", "172.31.0.0/16"):  # vpn, spoke, partner
            assert r[destination] == ("VirtualAppliance", ip)
        assert "10.1.0.0/16" not in r  # never its own range
    assert routes(azure, hq.route_table)["198.51.100.0/24"] == ("Internet", None)  # the admin's

    # the NIC forwards, with a static private address and the connector's own NSG
    nic = resource(azure, f"{N}/networkinterfaces", "cp-hq-nic")["properties"]
    assert nic["enableIPForwarding"] is True
    config = nic["ipConfigurations"][0]["properties"]
    assert config["privateIPAllocationMethod"] == "Static"
    assert nic["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/cp-hq-connector")
    # no NAT gateway on the subnet: a Standard public address to dial the VPN service
    public = resource(azure, f"{N}/publicipaddresses", "cp-hq-ip")
    assert public["sku"]["name"] == "Standard"
    assert config["publicIPAddress"]["id"] == public["id"]
    own = resource(azure, f"{N}/networksecuritygroups", "cp-hq-connector")["properties"]
    sources = [r["properties"]["sourceAddressPrefix"] for r in own["securityRules"]]
    assert sources == ["10.1.0.0/16"]  # its own range, nothing from the internet

    vm = resource(azure, "microsoft.compute/virtualmachines", "cp-hq-connector")["properties"]
    assert vm["storageProfile"]["imageReference"]["offer"] == "ubuntu-24_04-lts"
    assert vm["hardwareProfile"]["vmSize"] == "Standard_B2s"
    assert vm["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    assert "customData" not in vm["osProfile"]  # never returned


def test_app_nsg_admits_the_kept_sources_by_address_at_free_priorities(azure: AzureWorld):
    azure.deployment().apply()
    nsg = resource(azure, f"{N}/networksecuritygroups", azure.hq.app_group)["properties"]
    rules = {r["name"]: r["properties"] for r in nsg["securityRules"]}
    ours = {n: p for n, p in rules.items() if n.startswith("cp-hq-")}
    assert sorted(p["sourceAddressPrefix"] for p in ours.values()) == sorted(
        ["100.96.0.0/11", "10.2.0.0/16", "172.31.0.0/16"]
    )
    assert all(
        p["sourceAddressPrefix"] not in ("*", "Internet", "0.0.0.0/0") for p in ours.values()
    )
    assert all(p["access"] == "Allow" and p["direction"] == "Inbound" for p in ours.values())
    priorities = [p["priority"] for p in rules.values() if p["direction"] == "Inbound"]
    assert len(priorities) == len(set(priorities))
    assert rules["https-from-vnet"]["priority"] == 100  # the admin's rule untouched


def test_second_apply_makes_no_mutating_call(azure: AzureWorld):
    azure.deployment().apply()
    azure.arm.calls.clear()
    d = azure.deployment()
    assert d.plan().empty
    assert d.apply().done == ()
    assert azure.mutating() == []
    assert all(s.healthy for s in azure.deployment().status())


def test_destroy_leaves_azure_as_it_was(azure: AzureWorld):
    before = azure.snapshot()
    azure.deployment().apply()
    assert azure.snapshot() != before
    assert azure.deployment().destroy().done
    assert azure.snapshot() == before
    assert azure.deployment().plan_destroy().empty


def test_destroy_shuts_the_connector_down_before_it_deletes_it(azure: AzureWorld):
    """A delete does not shut the guest down: apply powers the VM off first, gracefully, so its
    OpenVPN tells the VPN service it leaves (and a pair member's watchdog drains it)."""
    azure.deployment().apply()
    azure.arm.calls.clear()
    azure.deployment().destroy()
    seen = [f"{c.method} {c.path.lower()}" for c in azure.arm.calls]
    vm = "/virtualmachines/cp-hq-connector"
    off = next(
        i for i, c in enumerate(seen) if c.startswith("POST") and c.endswith(f"{vm}/poweroff")
    )
    gone = next(i for i, c in enumerate(seen) if c.startswith("DELETE") and c.endswith(vm))
    assert off < gone, seen


def test_a_subnet_keeps_its_nsg_endpoints_and_delegation_when_associated(azure: AzureWorld):
    """PUT replaces the whole subnet: what the toolkit does not own must be sent back."""
    from provisioner.providers.azure.world import network_client

    net = network_client(azure.url)
    data = net.subnets.get(azure.hq.resource_group, azure.hq.vnet, azure.hq.subnets[2])
    data["properties"]["networkSecurityGroup"] = {
        "id": resource(azure, f"{N}/networksecuritygroups", azure.hq.app_group)["id"]
    }
    data["properties"]["serviceEndpoints"] = [{"service": "Microsoft.Storage"}]
    data["properties"]["delegations"] = [
        {"name": "d", "properties": {"serviceName": "Microsoft.Sql/managedInstances"}}
    ]
    net.subnets.begin_create_or_update(
        azure.hq.resource_group, azure.hq.vnet, azure.hq.subnets[2], data
    ).result()
    before = subnet(azure, azure.hq.subnets[2])
    azure.deployment().apply()
    after = subnet(azure, azure.hq.subnets[2])
    assert after["routeTable"]["id"].endswith("/routeTables/cp-hq-routes")
    for key in ("networkSecurityGroup", "serviceEndpoints", "delegations", "addressPrefix"):
        assert after[key] == before[key], key
    azure.deployment().destroy()
    assert subnet(azure, azure.hq.subnets[2]) == before


def test_a_foreign_route_for_our_destination_is_a_conflict(azure: AzureWorld, capsys):
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.world import network_client

    network_client(azure.url).routes.begin_create_or_update(
        azure.hq.resource_group,
        azure.hq.route_table,
        "to-vpn-gateway",
        m.Route(
            properties=m.RoutePropertiesFormat(
                address_prefix="100.96.0.0/11", next_hop_type="VirtualNetworkGateway"
            )
        ),
    ).result()
    before = azure.snapshot()
    azure.arm.calls.clear()
    path = azure.write(azure.topology())
    assert run(["apply", "-f", str(path), "--yes"]) == 3
    assert "100.96.0.0/11" in capsys.readouterr().err
    assert azure.mutating() == [] and azure.snapshot() == before
    with pytest.raises(ConflictError):
        azure.deployment().apply()
    azure.deployment().apply(replace_conflicting_routes=True)
    ip = connector_ip(azure)
    assert routes(azure, azure.hq.route_table)["100.96.0.0/11"] == ("VirtualAppliance", ip)


def test_a_route_to_an_address_no_nic_holds_is_replaced(azure: AzureWorld):
    azure.deployment().apply()
    # someone deletes the connector by hand: its routes now lead nowhere
    azure.arm.state.resources = {
        k: v
        for k, v in azure.arm.state.resources.items()
        if "/virtualmachines/cp-hq-connector" not in k
        and not k.endswith("/networkinterfaces/cp-hq-nic")
    }
    statuses = {s.network: s for s in azure.deployment().status()}
    assert any(r.state is RouteState.BLACKHOLE for r in statuses["hq"].routes)
    plan = azure.deployment().plan()
    assert not plan.conflicts
    azure.deployment().apply()
    ip = connector_ip(azure)
    assert routes(azure, "cp-hq-routes")["100.96.0.0/11"] == ("VirtualAppliance", ip)
    assert all(s.healthy for s in azure.deployment().status())


def test_nat_everything_admits_the_connectors_own_address(azure: AzureWorld):
    doc = azure.topology(nat=True, nat_preserve_source=False)
    azure.deployment(doc).apply()
    nsg = resource(azure, f"{N}/networksecuritygroups", azure.hq.app_group)["properties"]
    ours = [r["properties"] for r in nsg["securityRules"] if r["name"].startswith("cp-hq-")]
    assert [r["sourceAddressPrefix"] for r in ours] == [f"{connector_ip(azure)}/32"]
    assert azure.deployment(doc).plan().empty
    assert all(s.healthy for s in azure.deployment(doc).status())


def test_a_changed_profile_is_handed_to_the_same_vm(azure: AzureWorld):
    azure.deployment().apply()
    vm = resource(azure, "microsoft.compute/virtualmachines", "cp-hq-connector")
    (azure.directory / "hq.ovpn").write_text("client\nremote other.invalid 1194\n<key>NEW</key>\n")
    plan = azure.deployment().plan()
    hq = [
        (str(c.action), c.part.kind if c.part else str(c.kind))
        for c in plan.changes
        if c.network == "hq"
    ]
    assert hq == [("update", "vpn-profile")]
    azure.deployment().apply()
    assert (
        resource(azure, "microsoft.compute/virtualmachines", "cp-hq-connector")["properties"][
            "vmId"
        ]
        == vm["properties"]["vmId"]
    )
    assert azure.deployment().plan().empty


def test_the_profile_reaches_the_vm_only_in_protected_settings(azure: AzureWorld, capsys, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    path = azure.write(azure.topology())
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    assert run(["plan", "-f", str(path), "--json"]) == 0
    assert run(["status", "-f", str(path), "--json"]) == 0
    assert run(["bootstrap", "-f", str(path), "--network", "hq"]) == 0
    out = capsys.readouterr()
    secret = "AZURE-SANDBOX-PRIVATE-KEY"
    assert secret not in out.out + out.err
    assert secret not in caplog.text
    # what Azure returns of the extension: no protectedSettings
    (ext,) = [
        r
        for r in iter_resources(azure.arm, "microsoft.compute/virtualmachines/extensions")
        if "/cp-hq-connector/" in r["id"]
    ]
    assert "protectedSettings" not in ext["properties"]
    assert ext["properties"]["settings"]["profileSha256"]
    # the custom data (as stored, never returned) names the extension, not the profile
    with azure.arm.lock:
        (stored,) = [
            r
            for k, r in azure.arm.state.resources.items()
            if k.endswith("/virtualmachines/cp-hq-connector")
        ]
        custom = base64.b64decode(stored["properties"]["osProfile"]["customData"]).decode()
        (held,) = [
            r
            for k, r in azure.arm.state.resources.items()
            if k.endswith("/extensions/connector-profile") and "/cp-hq-" in k
        ]
        protected = json.dumps(held["properties"]["protectedSettings"])
    assert secret not in custom and "connector-profile" in custom
    script = base64.b64decode(json.loads(protected)["script"]).decode()
    assert secret in base64.b64decode(script.split("echo '")[1].split("'")[0]).decode()


def test_throttling_is_retried(azure: AzureWorld):
    azure.arm.fail(
        "PUT", "/routeTables/[^/]+$", 429, "TooManyRequests", "slow down", times=3, retry_after="0"
    )
    azure.deployment().apply()
    assert all(s.healthy for s in azure.deployment().status())
    assert azure.arm.faults[0].served == 3


def test_one_network_flags_for_azure(azure: AzureWorld, monkeypatch, capsys):
    monkeypatch.chdir(azure.directory)
    azure.topology()  # writes the profiles
    hq = azure.hq
    argv = [
        "--cloud", "azure", "--subscription", hq.subscription, "--resource-group", hq.resource_group,
        "--vnet", hq.vnet, "--region", hq.region, "--connector-subnet", hq.connector_subnet,
        "--subnet", hq.cidr, "--peer", "192.168.0.0/22", "--profile", "hq.ovpn",
        "--app-security-group", f"{hq.app_group}:tcp/443", "--yes",
    ]  # fmt: skip
    assert run(argv) == 0
    ip = str(
        resource(azure, f"{N}/networkinterfaces", "cp-net-nic")["properties"]["ipConfigurations"][
            0
        ]["properties"]["privateIPAddress"]
    )
    assert routes(azure, "cp-net-routes")["192.168.0.0/22"] == ("VirtualAppliance", ip)
    nsg = resource(azure, f"{N}/networksecuritygroups", hq.app_group)["properties"]
    ours = [r["properties"] for r in nsg["securityRules"] if r["name"].startswith("cp-net-")]
    assert {(r["sourceAddressPrefix"], r["protocol"], r["destinationPortRange"]) for r in ours} == {
        ("100.96.0.0/11", "Tcp", "443"),
        ("192.168.0.0/22", "Tcp", "443"),
    }
    capsys.readouterr()
    azure.arm.calls.clear()
    assert run([*argv[:2], "--subscription", "nope", *argv[4:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--subscription" in err[0] and "nope" in err[0]
    assert azure.arm.calls == []


def _action(call) -> set[str]:
    """The Azure RBAC actions one recorded call needs (case-insensitive, as Azure compares)."""
    kind = call.kind
    if call.method == "POST":
        return {f"{kind}/{call.path.rsplit('/', 1)[-1]}/action"}
    verb = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}[call.method]
    needed = {f"{kind}/{verb}"}
    # what a write references is joined, except the resource's own parts (a NIC's ipconfigs)
    needed |= {
        f"{ref}/join/action" for ref in call.refs if ref != kind and not ref.startswith(kind + "/")
    }
    if kind == "microsoft.compute/virtualmachines" and verb in ("write", "delete"):
        needed.add(f"microsoft.compute/disks/{verb}")  # its managed OS disk goes with it
    return needed


def test_the_documented_role_is_exactly_what_the_calls_need(azure: AzureWorld):
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.permissions import ACTIONS
    from provisioner.providers.azure.world import network_client

    # a NAT gateway on a subnet the toolkit writes: writing the subnet joins it again
    net = network_client(azure.url)
    hq = azure.hq
    ip = net.public_ip_addresses.begin_create_or_update(
        hq.resource_group, "nat-ip", m.PublicIPAddress(location=hq.region, sku=m.PublicIPAddressSku(
            name="Standard"), properties=m.PublicIPAddressPropertiesFormat(public_ip_allocation_method="Static")),
    ).result()  # fmt: skip
    nat = net.nat_gateways.begin_create_or_update(
        hq.resource_group, "nat-hq", m.NatGateway(location=hq.region, properties=m.NatGatewayPropertiesFormat(
            public_ip_addresses=[m.SubResource(id=ip.id)])),
    ).result()  # fmt: skip
    data = net.subnets.get(hq.resource_group, hq.vnet, hq.subnets[2])
    data.nat_gateway = m.SubResource(id=nat.id)
    net.subnets.begin_create_or_update(hq.resource_group, hq.vnet, hq.subnets[2], data).result()
    azure.arm.calls.clear()

    azure.deployment().apply()
    with azure.arm.lock:  # someone stops the connector; apply starts it again
        for key, r in azure.arm.state.resources.items():
            if key.endswith("/virtualmachines/cp-hq-connector"):
                r["powerState"] = "deallocated"
    azure.deployment().apply()
    (azure.directory / "hq.ovpn").write_text("client\nremote new.invalid 1194\n<key>\nk\n</key>\n")
    azure.deployment().apply()  # the new profile handed over
    azure.deployment().status()
    azure.deployment().doctor()
    azure.deployment().destroy()
    from test_azure_pair import as_pair

    azure.deployment(as_pair(azure)).apply()  # a pair: its load balancer, the pool, the tags
    azure.deployment(as_pair(azure)).status()
    azure.deployment().apply()  # and back to one
    azure.deployment(as_pair(azure)).apply()
    azure.deployment(as_pair(azure)).destroy()

    needed = {a for call in azure.arm.calls for a in _action(call)}
    documented = {a.lower() for a in ACTIONS}
    assert needed - documented == set()  # every call is allowed
    assert documented - needed == set()  # and nothing more is granted


def test_when_every_subnet_has_a_table_none_of_ours_is_made(azure: AzureWorld):
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.world import network_client

    net = network_client(azure.url)
    hq = azure.hq
    table = net.route_tables.get(hq.resource_group, hq.route_table)
    for name in (hq.connector_subnet, hq.subnets[2]):
        s = net.subnets.get(hq.resource_group, hq.vnet, name)
        s.route_table = m.RouteTable(id=table.id)
        net.subnets.begin_create_or_update(hq.resource_group, hq.vnet, name, s).result()
    azure.deployment().apply()
    names = {r["name"] for r in iter_resources(azure.arm, f"{N}/routetables")}
    assert "cp-hq-routes" not in names and "cp-spoke-routes" in names
    assert routes(azure, hq.route_table)["100.96.0.0/11"] == (
        "VirtualAppliance",
        connector_ip(azure),
    )
    azure.arm.calls.clear()
    assert azure.deployment().plan().empty and azure.mutating() == []


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("azure")


_FIRST_USE = """
import sys, threading
sys.setswitchinterval(1e-6)
from azure.mgmt.network import models as m
from azure.mgmt.network._utils.model_base import _deserialize
from provisioner.providers.azure.common import clients
clients("sub", "http://127.0.0.1:9", None, retry_total=0)  # what the provider does first
doc = {"name": "v", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
       "subnets": [{"name": "s", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}
barrier, errors = threading.Barrier(8), []
def work():
    barrier.wait()
    try:
        v = _deserialize(m.VirtualNetwork, doc)
        v.properties.address_space.address_prefixes
        v.properties.subnets[0].properties.address_prefix
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
print(errors)
"""


def test_models_met_first_by_two_threads_at_once_come_back_whole():
    """azure-mgmt builds a model class's field table at its first use, unguarded: two threads
    at once saw nested fields as plain dicts (3 fresh processes in 20 without the guard). With
    the provider's clients made, 8 threads meet VirtualNetwork first at once, in 8 fresh
    processes: every field is a model. (Probabilistic: without the guard, ~70 % of runs of
    this test fail.)"""
    import subprocess
    import sys

    runs = [
        subprocess.Popen([sys.executable, "-c", _FIRST_USE], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    said = [r.communicate(timeout=120)[0].strip() for r in runs]
    assert said == ["[]"] * 8, said


def _app_nic(azure: AzureWorld) -> str:
    """A host in HQ's app subnet (behind the app NSG): its private address."""
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.world import network_client

    hq = azure.hq
    net = network_client(azure.url, hq.subscription)
    subnet = net.subnets.get(hq.resource_group, hq.vnet, hq.subnets[1])
    nic = net.network_interfaces.begin_create_or_update(
        hq.resource_group, "nic-hr-app",
        m.NetworkInterface(location=hq.region, properties=m.NetworkInterfacePropertiesFormat(
            ip_configurations=[m.NetworkInterfaceIPConfiguration(
                name="ip", properties=m.NetworkInterfaceIPConfigurationPropertiesFormat(
                    subnet=m.Subnet(id=subnet.id)))]
        )),
    ).result()  # fmt: skip
    return str(nic.properties.ip_configurations[0].properties.private_ip_address)


def _deny_vpn_in_the_app_nsg(azure: AzureWorld) -> None:
    """The admin denies the VPN range in the app NSG at 101, before our allow rules."""
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.world import network_client

    hq = azure.hq
    network_client(azure.url, hq.subscription).security_rules.begin_create_or_update(
        hq.resource_group, hq.app_group, "deny-vpn",
        m.SecurityRule(properties=m.SecurityRulePropertiesFormat(
            protocol="*", source_address_prefix="100.96.0.0/11", source_port_range="*",
            destination_address_prefix="*", destination_port_range="*", access="Deny",
            direction="Inbound", priority=101)),
    ).result()  # fmt: skip


def test_doctor_reads_the_subnet_nsg_with_its_priorities_and_deny_rules(azure: AzureWorld):
    """The app NSG (on the app subnet) as Azure orders it: a deny at a better priority than
    our allow drops the VPN clients, and the doctor names that rule."""

    address = _app_nic(azure)
    azure.deployment().apply()
    reports = azure.deployment().doctor()
    remote = next(r for r in reports if r.flow.startswith("VPN clients (") and address in r.flow)
    assert remote.ok, remote.dropped_at
    assert any(h.what == f"NSG {azure.hq.app_group}" for h in remote.hops)
    hq = azure.hq
    _deny_vpn_in_the_app_nsg(azure)
    remote = next(r for r in azure.deployment().doctor()
                  if r.flow.startswith("VPN clients (") and address in r.flow)  # fmt: skip
    dropped = remote.dropped_at
    assert dropped is not None and dropped.what == f"NSG {hq.app_group}"
    assert "deny-vpn (101)" in dropped.detail and dropped.breaks == "remote access hop 6"
    assert not dropped.apply_fixes  # a deny of the admin's: by hand


def test_status_sees_a_deny_at_a_better_priority_as_the_doctor_does(azure: AzureWorld):
    """Status used to count our allow rule and call the group covered; with the layers at
    the app's host it sees the deny before it, as the doctor does."""

    _app_nic(azure)
    azure.deployment().apply()
    assert all(s.healthy for s in azure.deployment().status())
    hq = azure.hq
    _deny_vpn_in_the_app_nsg(azure)
    status = next(s for s in azure.deployment().status() if s.network == "hq")
    group = next(g for g in status.app_groups if g.id == hq.app_group)
    assert not status.healthy and [str(n.source) for n in group.missing] == ["100.96.0.0/11"]


def test_doctor_meets_the_nic_nsg_after_the_subnet_nsg(azure: AzureWorld):
    """The subnet's NSG admits the VPN clients (our rules); an NSG of the admin's on the app's
    NIC denies them: the packet dies there, at the second layer."""
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.world import network_client

    address = _app_nic(azure)
    azure.deployment().apply()
    hq = azure.hq
    net = network_client(azure.url, hq.subscription)
    nsg = net.network_security_groups.begin_create_or_update(
        hq.resource_group, "nsg-nic",
        m.NetworkSecurityGroup(location=hq.region, properties=m.NetworkSecurityGroupPropertiesFormat(
            security_rules=[m.SecurityRule(name="deny-vpn", properties=m.SecurityRulePropertiesFormat(
                protocol="*", source_address_prefix="100.96.0.0/11", source_port_range="*",
                destination_address_prefix="*", destination_port_range="*", access="Deny",
                direction="Inbound", priority=200))])),
    ).result()  # fmt: skip
    nic = net.network_interfaces.get(hq.resource_group, "nic-hr-app")
    nic.properties.network_security_group = m.NetworkSecurityGroup(id=nsg.id)
    net.network_interfaces.begin_create_or_update(hq.resource_group, "nic-hr-app", nic).result()
    remote = next(r for r in azure.deployment().doctor()
                  if r.flow.startswith("VPN clients (") and address in r.flow)  # fmt: skip
    hops = [h.what for h in remote.hops]
    assert hops.index(f"NSG {hq.app_group}") < hops.index("NSG nsg-nic")  # subnet, then NIC
    dropped = remote.dropped_at
    assert (
        dropped is not None and dropped.what == "NSG nsg-nic" and "deny-vpn (200)" in dropped.detail
    )


def test_a_new_image_version_replaces_nothing_until_apply_roll(azure: AzureWorld):
    """The VM runs `latest` as Azure resolved it (its read-only exactVersion); Canonical
    publishes a newer build: plan and apply change nothing, status says it exists and since
    when, `apply --roll` takes it (made before the old one goes)."""
    azure.deployment().apply()
    (before,) = [c for c in [azure.deployment().observe()["hq"].connector] if c is not None]
    assert before.image == "Canonical:ubuntu-24_04-lts:server:24.04.202611010"
    azure.arm.publish_image_version("Canonical", "ubuntu-24_04-lts", "server", "24.04.202612010")
    assert azure.deployment().plan().empty  # no surprise
    (hq,) = [s for s in azure.deployment().status() if s.network == "hq"]
    note = next(n for n in hq.notes if n.startswith("a newer image exists"))
    assert "server:24.04.202612010 (out since 2026-12-01" in note and before.image in note
    plan = azure.deployment().plan(roll=True)
    made, gone = [c for c in plan.changes if c.kind == "connector" and c.network == "hq"]
    assert (made.action, gone.action) == ("create", "delete") and "(--roll)" in made.why
    assert made.previous_target == gone.resource == "cp-hq-connector"
    azure.deployment().apply(roll=True)
    after = azure.deployment().observe()["hq"].connector
    assert after is not None and after.image.endswith(":24.04.202612010")
    assert after.instance == "cp-hq-connector-r"
    assert not any(n.startswith("a newer image") for s in azure.deployment().status()
                   for n in s.notes)  # fmt: skip
