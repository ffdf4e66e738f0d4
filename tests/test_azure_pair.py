"""A connector pair on Azure (`connector.ha`) against the fake ARM, through the real azure-mgmt
SDKs: two connectors behind an internal Standard load balancer (an HA-ports rule, a probe on
`/active`) whose frontend is the next hop of every route; each VM told the other's address;
the load balancer's probes following the pair's own agreement; and a network that goes from
one connector to a pair and back without a moment when its routes lead nowhere."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import AzureWorld, WriteWatch, peer_watchdogs, written

from provisioner.providers.azure.fake import iter_resources
from provisioner.render import plan_text, status_text

N = "microsoft.network"
OURS = ("100.96.0.0/11", "10.2.0.0/16", "172.31.0.0/16")  # HQ's destinations: VPN, spoke, partner


def as_pair(azure: AzureWorld) -> dict[str, Any]:
    doc = azure.topology()
    (azure.directory / "hq-b.ovpn").write_text(azure.profile_text.format(name="hq-b"))
    c = doc["networks"]["hq"]["connector"]
    c["ha"] = True
    c["subnets"] = [c.pop("subnet"), azure.hq.subnets[2]]  # the connector's, and the data subnet
    c["profiles"] = [c.pop("profile"), "hq-b.ovpn"]
    return doc


def resource(azure: AzureWorld, kind: str, name: str) -> dict[str, Any]:
    (found,) = [r for r in iter_resources(azure.arm, kind) if r["name"] == name]
    return found


def of(azure: AzureWorld, kind: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in iter_resources(azure.arm, kind)}


def address(azure: AzureWorld, nic: str) -> str:
    nics = of(azure, f"{N}/networkinterfaces")
    return str(nics[nic]["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"])


def next_hops(azure: AzureWorld) -> set[str]:
    return {
        str(r["properties"].get("nextHopIpAddress"))
        for t in of(azure, f"{N}/routetables").values()
        if f"/resourcegroups/{azure.hq.resource_group}/" in t["id"].lower()
        for r in t["properties"]["routes"]
        if r["properties"]["addressPrefix"] in OURS
    }


def test_a_pair_is_two_connectors_behind_a_load_balancer_the_routes_lead_to(azure: AzureWorld):
    doc = as_pair(azure)
    text = plan_text(azure.deployment(doc).plan())
    assert "connector pair in" in text and "HA-ports rule" in text
    assert "create front load balancer frontend" in text
    azure.deployment(doc).apply()
    vms = of(azure, "microsoft.compute/virtualmachines")
    assert {"cp-hq-connector", "cp-hq-connector-2"} <= set(vms)
    (lb,) = of(azure, f"{N}/loadbalancers").values()
    props = lb["properties"]
    assert lb["sku"]["name"] == "Standard"
    (rule,) = props["loadBalancingRules"]
    assert (rule["properties"]["protocol"], rule["properties"]["frontendPort"],
            rule["properties"]["backendPort"]) == ("All", 0, 0)  # fmt: skip
    (probe,) = props["probes"]
    assert (probe["properties"]["protocol"], probe["properties"]["port"],
            probe["properties"]["requestPath"]) == ("Http", 8181, "/active")  # fmt: skip
    front = props["frontendIPConfigurations"][0]["properties"]["privateIPAddress"]
    a, b = address(azure, "cp-hq-nic"), address(azure, "cp-hq-nic-2")
    members = {m["id"].split("/networkInterfaces/")[1].split("/")[0]
               for m in props["backendAddressPools"][0]["properties"]["backendIPConfigurations"]}  # fmt: skip
    assert members == {"cp-hq-nic", "cp-hq-nic-2"}
    assert next_hops(azure) == {front}  # every route of ours: the frontend
    assert len({front, a, b}) == 3
    # each VM knows the other's address (its watchdog reads it from the instance metadata)
    assert vms["cp-hq-connector"]["tags"]["connector-provisioner:peer"] == b
    assert vms["cp-hq-connector-2"]["tags"]["connector-provisioner:peer"] == a
    # each VM is handed its own profile
    extensions = {r["id"].split("/virtualMachines/")[1].split("/")[0]: r for r in
                  iter_resources(azure.arm, "microsoft.compute/virtualmachines/extensions")}  # fmt: skip
    assert (
        extensions["cp-hq-connector"]["properties"]["settings"]["profileSha256"]
        != (extensions["cp-hq-connector-2"]["properties"]["settings"]["profileSha256"])
    )
    again = azure.deployment(doc).plan()
    assert again.empty, plan_text(again)
    status = azure.deployment(doc).status()
    (hq,) = [s for s in status if s.network == "hq"]
    assert hq.healthy and hq.standby is not None
    assert "load balancer" in status_text(status)


def test_the_watchdog_needs_no_identity_and_runs_with_the_systems_python(azure: AzureWorld):
    doc = as_pair(azure)
    azure.deployment(doc).apply()
    vms = of(azure, "microsoft.compute/virtualmachines")
    for name, member in (("cp-hq-connector", 0), ("cp-hq-connector-2", 1)):
        vm = azure.arm.state.resources[vms[name]["id"].lower()]
        text = base64.b64decode(vm["properties"]["osProfile"]["customData"]).decode()
        settings = json.loads(written(text, "/etc/connector-provisioner/watchdog.json"))
        assert settings == {"cloud": "azure", "network": "hq", "region": azure.hq.region,
                            "member": member, "settle": 6.0}  # fmt: skip
        unit = written(text, "/etc/systemd/system/connector-watchdog.service")
        assert "ExecStart=/usr/bin/python3 " in unit
        source = written(text, "/usr/local/sbin/connector-watchdog")
        assert "class Peers" in source and "class AwsRoutes" not in source
        assert "identity" not in vms[name]  # no managed identity: nothing to call, nothing to allow


def hops_lead(azure: AzureWorld) -> set[str]:
    """Each of HQ's routes for our destinations: "ok" when its next hop is the address of a
    NIC a VM uses, or a load balancer's frontend with such a NIC in its pool."""
    arm = azure.arm
    res = arm.state.resources
    live = set()  # addresses of NICs a VM uses
    for r in res.values():
        if r["type"].lower() == f"{N}/networkinterfaces" and arm._vm_of_nic(r["id"].lower()):
            live |= {
                c["properties"]["privateIPAddress"] for c in r["properties"]["ipConfigurations"]
            }
    fronts: dict[str, set[str]] = {}
    for r in res.values():
        if r["type"].lower() == f"{N}/loadbalancers":
            members = {
                ip for _, ip in arm.pool_members(r["properties"]["backendAddressPools"][0]["id"])
            }
            for f in r["properties"]["frontendIPConfigurations"]:
                fronts[f["properties"]["privateIPAddress"]] = members
    out = set()
    for r in res.values():
        if (r["type"].lower() == f"{N}/routetables/routes"
                and f"/resourcegroups/{azure.hq.resource_group}/" in r["id"].lower()
                and r["properties"]["addressPrefix"] in OURS):  # fmt: skip
            hop = r["properties"].get("nextHopIpAddress")
            out.add("ok" if hop in live or fronts.get(hop, set()) & live else "NOWHERE")
    return out


@pytest.fixture
def hop_watch(azure: AzureWorld) -> Iterator[WriteWatch]:
    with WriteWatch(azure.arm, lambda: hops_lead(azure)).installed() as watch:
        yield watch


def test_one_connector_to_a_pair_and_back_never_leaves_the_routes_leading_nowhere(
    azure: AzureWorld, hop_watch: WriteWatch
):
    before = azure.snapshot()
    azure.deployment().apply()
    alone = of(azure, "microsoft.compute/virtualmachines")["cp-hq-connector"]
    hop_watch.seen.clear()
    doc = as_pair(azure)
    plan = azure.deployment(doc).plan()
    assert any("without the pair's watchdog" in c.why for c in plan.changes)
    azure.deployment(doc).apply()
    assert hop_watch.seen and hop_watch.nowhere == []
    fingerprint = "connector-provisioner:fingerprint"
    vms = of(azure, "microsoft.compute/virtualmachines")
    assert vms["cp-hq-connector"]["tags"][fingerprint] != alone["tags"][fingerprint]  # replaced
    (lb,) = of(azure, f"{N}/loadbalancers").values()
    assert next_hops(azure) == {
        lb["properties"]["frontendIPConfigurations"][0]["properties"]["privateIPAddress"]
    }
    assert azure.deployment(doc).plan().empty
    # pair -> one: the routes lead to the connector that stays, then the load balancer, the
    # second connector and its profile go
    hop_watch.seen.clear()
    azure.deployment().apply()
    assert hop_watch.seen and hop_watch.nowhere == []
    assert of(azure, f"{N}/loadbalancers") == {}
    assert set(of(azure, "microsoft.compute/virtualmachines")) == {
        "cp-hq-connector",
        "cp-spoke-connector",
    }
    assert next_hops(azure) == {address(azure, "cp-hq-nic")}
    assert azure.deployment().plan().empty
    azure.deployment().destroy()
    assert azure.snapshot() == before


def test_destroy_of_a_pair_leaves_the_group_as_it_was(azure: AzureWorld):
    before = azure.snapshot()
    doc = as_pair(azure)
    azure.deployment(doc).apply()
    azure.deployment(doc).destroy()
    assert azure.snapshot() == before
    azure.arm.calls.clear()
    assert azure.deployment(doc).destroy().done == ()
    assert azure.mutating() == []


# --- the load balancer's probes follow the pair's own agreement -----------------------------


def test_the_balancer_sends_to_the_one_the_pair_agreed_on_and_follows_a_takeover(azure: AzureWorld):
    """The fake's probes (as Azure's: every interval, a threshold in a row) against two real
    watchdogs on loopback NICs in the balancer's pool."""
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.fake import LbProbes
    from provisioner.providers.azure.pair import PROBE_THRESHOLD
    from provisioner.providers.azure.world import network_client

    net = network_client(azure.url)
    rg = azure.hq.resource_group
    vnet = net.virtual_networks.get(rg, azure.hq.vnet)
    vnet.address_space.address_prefixes.append("127.0.0.0/24")
    net.virtual_networks.begin_create_or_update(rg, azure.hq.vnet, vnet).result()
    net.subnets.begin_create_or_update(rg, azure.hq.vnet, "loop",
                                       m.Subnet(address_prefix="127.0.0.0/24")).result()  # fmt: skip
    doc = as_pair(azure)
    doc["networks"]["hq"]["connector"]["subnets"] = ["loop", azure.hq.subnets[2]]
    azure.deployment(doc).apply()
    (lb,) = of(azure, f"{N}/loadbalancers").values()
    assert lb["properties"]["probes"][0]["properties"]["probeThreshold"] == PROBE_THRESHOLD
    # the watchdogs at the pool's addresses (the second NIC moved onto loopback too)
    nic = net.network_interfaces.get(rg, "cp-hq-nic-2")
    nic.ip_configurations[0].subnet = m.Subnet(id=net.subnets.get(rg, azure.hq.vnet, "loop").id)
    nic.ip_configurations[0].private_ip_address = "127.0.0.20"
    net.network_interfaces.begin_create_or_update(rg, "cp-hq-nic-2", nic).result()
    addresses = {"a": address(azure, "cp-hq-nic"), "b": "127.0.0.20"}
    probes = LbProbes(azure.arm, lb["id"])

    def chosen() -> list[str]:
        probes.round(timeout=0.3)
        return [n for n, a in addresses.items() if a in probes.healthy()]

    ups = {"a": True, "b": True}
    with peer_watchdogs("azure", ups, addresses, 8181) as said:
        deadline = time.monotonic() + 10
        while chosen() != ["a"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert chosen() == ["a"]  # the first claims; the balancer sends to it alone
        ups["a"] = False  # its tunnel is down: it stops answering /active, b takes over
        deadline = time.monotonic() + 10
        while chosen() != ["b"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert chosen() == ["b"]
        ups["a"] = True
        time.sleep(0.6)
        assert chosen() == ["b"]  # back, and standby: no flapping
        # no identity to write with: status shows what the balancer's probe finds of each
        # member's watchdog (the rule's health status)
        (hq,) = [s for s in azure.deployment(doc).status() if s.network == "hq"]
    assert sum("took over" in line for line in said) == 1
    words = {m["member"]: m["watchdog"] for m in hq.to_dict()["members"]}
    assert words == {
        0: "the front's probe: Down (Down_Probe_HttpStatusCodeError): not active",
        1: "the front's probe: Up (Up_Probe_Success): active (answers /active)",
    }


# --- a pair's own steps, failing once: the next apply finishes, destroy cleans up -------------

PAIR_STEPS = [
    ("PUT", r"/loadBalancers/cp-hq-lb$", 0),
    ("PUT", r"/networkInterfaces/cp-hq-nic$", 2),  # the first connector joining the pool
    ("PATCH", r"/virtualMachines/", 0),  # the peers' tags
    ("PUT", r"/routeTables/[^/]+$", 1),  # half-way through the routes to the frontend
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, path, after", PAIR_STEPS, ids=[f"{m} {p} #{a}" for m, p, a in PAIR_STEPS]
)
def test_a_pair_step_that_fails_is_finished_by_apply_and_cleaned_by_destroy(
    method, path, after, azure: AzureWorld
):
    from conftest import apply_survives
    from test_azure_faults import FORBIDDEN

    apply_survives(azure, lambda: azure.arm.fail(method, path, *FORBIDDEN, after=after),
                   "AuthorizationFailed", doc=as_pair(azure))  # fmt: skip


# --- a single connector replaced without an outage (make before break, issue 29) ---------------


def _larger(azure: AzureWorld) -> dict[str, Any]:
    doc = azure.topology()
    doc["networks"]["hq"]["connector"]["size"] = "Standard_B2ms"
    return doc


def _vms(azure: AzureWorld) -> list[str]:
    return sorted(
        n for n in of(azure, "microsoft.compute/virtualmachines") if n.startswith("cp-hq")
    )


def test_a_replaced_connector_is_made_before_the_old_one_goes(
    azure: AzureWorld, hop_watch: WriteWatch
):
    """A new size: the new VM under the member's other names (cp-hq-connector-r, its NIC and
    public IP: names are unique in a resource group) beside the old one; its profile extension
    succeeds only once its tunnel is up (its script waits for it), then the routes move (one
    guarded PUT per table), then the old VM, NIC and public IP go; at no write do HQ's routes
    lead nowhere; the next replacement takes the first names again."""
    before = azure.snapshot()
    azure.deployment().apply()
    old = address(azure, "cp-hq-nic")
    hop_watch.seen.clear()
    plan = azure.deployment(_larger(azure)).plan()
    hq = [c for c in plan.changes if c.network == "hq"]
    kinds = [c.kind.value for c in hq]
    assert (
        kinds.index("connector") < kinds.index("part") < kinds.index("ready") < kinds.index("route")
    )
    assert (hq[-1].action.value, hq[-1].resource) == ("delete", "cp-hq-connector")
    azure.deployment(_larger(azure)).apply()
    assert hop_watch.seen and hop_watch.nowhere == [], hop_watch.seen
    assert _vms(azure) == ["cp-hq-connector-r"]
    new = address(azure, "cp-hq-nic-r")
    assert new != old and next_hops(azure) == {new}
    assert "cp-hq-nic" not in of(azure, f"{N}/networkinterfaces")
    assert azure.deployment(_larger(azure)).plan().empty
    azure.deployment().apply()  # back to the first size: the first names again
    assert _vms(azure) == ["cp-hq-connector"] and hop_watch.nowhere == []
    azure.deployment().destroy()
    assert azure.snapshot() == before


def test_a_new_vm_whose_tunnel_never_comes_up_leaves_the_routes_where_they_were(
    azure: AzureWorld, hop_watch: WriteWatch
):
    """Its extension fails (the script found no tunnel in 15 minutes): apply stops with the
    routes on the old VM and says so; the next apply launches no third VM, hands the profile
    again and waits; once it is up, the routes move and the old VM goes."""
    from provisioner import CloudError

    azure.deployment().apply()
    old = address(azure, "cp-hq-nic")
    hop_watch.seen.clear()
    azure.arm.extensions_succeed = False
    with pytest.raises(CloudError) as failed:
        azure.deployment(_larger(azure)).apply()
    assert "VMExtensionProvisioningError" in str(failed.value)
    assert next_hops(azure) == {old} and hop_watch.nowhere == []
    assert _vms(azure) == ["cp-hq-connector", "cp-hq-connector-r"]
    again = azure.deployment(_larger(azure)).plan()
    assert not [
        c for c in again.changes if c.kind.value == "connector" and c.action.value == "create"
    ]
    azure.arm.extensions_succeed = True
    azure.deployment(_larger(azure)).apply()
    assert _vms(azure) == ["cp-hq-connector-r"] and next_hops(azure) == {
        address(azure, "cp-hq-nic-r")
    }
    assert hop_watch.nowhere == [] and azure.deployment(_larger(azure)).plan().empty


@pytest.mark.parametrize(
    "method, path, after",
    [("PUT", r"/virtualMachines/cp-hq-connector-r$", 0),
     ("PUT", r"/networkInterfaces/cp-hq-nic-r$", 1), ("PUT", r"/routeTables/[^/]+$", 1),
     ("DELETE", r"/virtualMachines/cp-hq-connector$", 0)],
    ids=["new NIC made, no VM", "new VM launched", "routes half moved", "old VM not yet removed"],
)  # fmt: skip
def test_a_replacement_interrupted_at_each_step_is_finished_and_cleaned(
    azure: AzureWorld, hop_watch: WriteWatch, method: str, path: str, after: int
):
    from provisioner import CloudError

    before = azure.snapshot()
    azure.deployment().apply()
    hop_watch.seen.clear()
    azure.arm.fail(method, path, 409, "Conflict", "injected", after=after)
    with pytest.raises(CloudError):
        azure.deployment(_larger(azure)).apply()
    assert hop_watch.nowhere == [], hop_watch.seen
    azure.deployment(_larger(azure)).apply()
    assert hop_watch.nowhere == [], hop_watch.seen
    assert _vms(azure) == ["cp-hq-connector-r"]
    assert next_hops(azure) == {address(azure, "cp-hq-nic-r")}
    assert azure.deployment(_larger(azure)).plan().empty
    azure.deployment(_larger(azure)).destroy()
    assert azure.snapshot() == before


def admitted(azure: AzureWorld) -> set[str]:
    """Each of HQ's routes of ours: "ok" when the app NSG has a rule from its next hop's
    address (a connector that NATs everything is admitted by it)."""
    rules = resource(azure, f"{N}/networksecuritygroups", azure.hq.app_group)["properties"]
    sources = {r["properties"].get("sourceAddressPrefix") for r in rules["securityRules"]}
    return {"ok" if f"{hop}/32" in sources else "NOWHERE" for hop in next_hops(azure)}


def test_nat_everything_admits_the_new_connector_before_the_routes_move_to_it(azure: AzureWorld):
    """A connector that NATs everything is admitted by the app NSG by its own address. The
    one made beside it has another: a rule from the new address is made before the routes
    move, and the old address's goes only after the old VM; at every write the routes lead
    to a VM the app NSG admits. The next plan is empty."""
    doc = azure.topology(nat=True, nat_preserve_source=False)
    azure.deployment(doc).apply()
    nsg = azure.hq.app_group

    doc["networks"]["hq"]["connector"]["size"] = "Standard_B2ms"
    plan = azure.deployment(doc).plan()
    hq = [(c.action.value, c.kind.value) for c in plan.changes if c.network == "hq"]
    made = hq.index(("create", "app-access"))
    assert hq.index(("create", "connector")) < made < hq.index(("replace", "route"))
    assert hq[-2:] == [("delete", "connector"), ("delete", "app-access")]
    with WriteWatch(azure.arm, lambda: hops_lead(azure) | admitted(azure)).installed() as watch:
        azure.deployment(doc).apply()
    assert watch.seen and watch.nowhere == [], watch.seen
    new = address(azure, "cp-hq-nic-r")
    rules = resource(azure, f"{N}/networksecuritygroups", nsg)["properties"]["securityRules"]
    ours = [r["properties"]["sourceAddressPrefix"] for r in rules if r["name"].startswith("cp-hq-")]
    assert ours == [f"{new}/32"] and next_hops(azure) == {new}
    assert azure.deployment(doc).plan().empty


def test_a_pair_changes_one_member_at_a_time_and_the_routes_never_lead_nowhere(
    azure: AzureWorld, hop_watch: WriteWatch
):
    """Both members need replacing (a new size): one at a time, the other behind the load
    balancer throughout; at no write do HQ's routes lead nowhere."""
    doc = as_pair(azure)
    azure.deployment(doc).apply()
    hop_watch.seen.clear()
    doc["networks"]["hq"]["connector"]["size"] = "Standard_B2ms"
    azure.deployment(doc).apply()
    assert hop_watch.seen and hop_watch.nowhere == [], hop_watch.seen
    vms = {
        n: v
        for n, v in of(azure, "microsoft.compute/virtualmachines").items()
        if n.startswith("cp-hq")
    }
    assert len(vms) == 2
    assert {v["properties"]["hardwareProfile"]["vmSize"] for v in vms.values()} == {"Standard_B2ms"}
    assert azure.deployment(doc).plan().empty


def test_nat_everything_interrupted_with_the_routes_half_moved_keeps_both_admitted(
    azure: AzureWorld,
):
    """The next apply keeps the old VM's address admitted until the old VM is gone."""
    from provisioner import CloudError

    doc = azure.topology(nat=True, nat_preserve_source=False)
    azure.deployment(doc).apply()
    doc["networks"]["hq"]["connector"]["size"] = "Standard_B2ms"
    azure.arm.fail("PUT", r"/routeTables/[^/]+$", 409, "Conflict", "injected", after=1)
    with WriteWatch(azure.arm, lambda: hops_lead(azure) | admitted(azure)).installed() as watch:
        with pytest.raises(CloudError):
            azure.deployment(doc).apply()
        plan = azure.deployment(doc).plan()
        hq = [(c.action.value, c.kind.value) for c in plan.changes if c.network == "hq"]
        assert hq[-2:] == [("delete", "connector"), ("delete", "app-access")]
        azure.deployment(doc).apply()
    assert watch.seen and watch.nowhere == [], watch.seen
    assert azure.deployment(doc).plan().empty
