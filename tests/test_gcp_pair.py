"""A connector pair on GCP (`connector.ha`) against the fake Compute, through the real
google-cloud-compute SDK: two connectors in two zones behind an internal passthrough load
balancer (the second the failover backend) that every route names as `nextHopIlb`; each
instance told the other's address; the load balancer's health checks following the pair's own
agreement; and a network that goes from one connector to a pair and back without a moment
when its routes lead nowhere."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import GcpWorld, WriteWatch, peer_watchdogs, written

from provisioner.render import plan_text, status_text

P = "sandbox-project-1"
OURS = ("100.96.0.0/11", "10.5.0.0/16", "172.31.0.0/16")  # HQ's destinations: VPN, spoke, partner


def as_pair(gcp: GcpWorld) -> dict[str, Any]:
    doc = gcp.topology()
    (gcp.directory / "hq-b.ovpn").write_text(gcp.profile_text.format(name="hq-b"))
    c = doc["networks"]["hq"]["connector"]
    c["ha"] = True
    c["subnets"] = [c.pop("subnet"), "hq-app"]
    c["profiles"] = [c.pop("profile"), "hq-b.ovpn"]
    return doc


def of(gcp: GcpWorld, kind: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in gcp.gce.resources(kind) if r["name"].startswith("cp-hq")}


def ilb_hops(gcp: GcpWorld) -> set[str]:
    """What HQ's routes of ours name: an ILB's address, or an instance by its name."""
    return {
        r.get("nextHopIlb") or r["nextHopInstance"].rsplit("/", 1)[-1]
        for r in of(gcp, "routes").values()
        if r["destRange"] in OURS
    }


def metadata(vm: dict[str, Any]) -> dict[str, str]:
    return {i["key"]: i["value"] for i in vm["metadata"].get("items", [])}


def test_a_pair_is_two_connectors_in_two_zones_behind_the_routes_load_balancer(gcp: GcpWorld):
    doc = as_pair(gcp)
    text = plan_text(gcp.deployment(doc).plan())
    assert "connector pair in" in text and "failover backend" in text
    gcp.deployment(doc).apply()
    vms = of(gcp, "instances")
    assert set(vms) == {"cp-hq-connector", "cp-hq-connector-2"}
    zones = {n: v["zone"].rsplit("/", 1)[-1] for n, v in vms.items()}
    assert (
        zones["cp-hq-connector"] == "europe-west1-b"
        and zones["cp-hq-connector-2"] != "europe-west1-b"
    )
    (check,) = of(gcp, "healthChecks").values()
    assert (check["type"], check["httpHealthCheck"]["port"], check["httpHealthCheck"]["requestPath"],
            check["checkIntervalSec"]) == ("HTTP", 8181, "/active", 1)  # fmt: skip
    (service,) = of(gcp, "backendServices").values()
    assert service["loadBalancingScheme"] == "INTERNAL"
    backends = {b["group"].rsplit("/", 1)[-1]: b["failover"] for b in service["backends"]}
    assert backends == {"cp-hq-ig": False, "cp-hq-ig-2": True}  # the second is the failover
    (rule,) = of(gcp, "forwardingRules").values()
    assert (rule["IPProtocol"], rule["allPorts"]) == ("L3_DEFAULT", True)
    assert ilb_hops(gcp) == {rule["IPAddress"]}  # every route of ours: nextHopIlb
    groups = {g["name"]: g["size"] for g in of(gcp, "instanceGroups").values()}
    assert groups == {"cp-hq-ig": 1, "cp-hq-ig-2": 1}
    address = {n: v["networkInterfaces"][0]["networkIP"] for n, v in vms.items()}
    assert metadata(vms["cp-hq-connector"])["connector-peer"] == address["cp-hq-connector-2"]
    assert metadata(vms["cp-hq-connector-2"])["connector-peer"] == address["cp-hq-connector"]
    # each watchdog's word is a guest attribute, written through its metadata server: status
    # shows both (the first's the sandbox's stand-in: no watchdog runs on the fake's VMs)
    from provisioner.providers.gcp.watchdog import GcpPeers
    from provisioner.watchdog import Settings

    said = "standby, the other member no answer (since 2026-12-07T17:00:00Z)"
    server = f"{gcp.url}/metadata/{P}/{zones['cp-hq-connector-2']}/cp-hq-connector-2"
    GcpPeers(Settings(cloud="gcp", network="hq", metadata=server, peer="10.0.0.1")).publish(said)
    (hq,) = [s for s in gcp.deployment(doc).status() if s.network == "hq"]
    words = {m["member"]: m["watchdog"] for m in hq.to_dict()["members"]}
    assert words[1] == said and str(words[0]).startswith("active, the other member ok")
    assert f"; watchdog: {said}" in status_text((hq,))
    # Google's health checkers may reach the connectors' health endpoint
    hc = gcp.gce.view(f"projects/{P}/global/firewalls/cp-hq-hc")
    assert hc is not None and sorted(hc["sourceRanges"]) == ["130.211.0.0/22", "35.191.0.0/16"]
    # each its own service account and secret, the watchdog with the system's python
    accounts = {v["serviceAccounts"][0]["email"] for v in vms.values()}
    assert len(accounts) == 2
    for name, member in (("cp-hq-connector", 0), ("cp-hq-connector-2", 1)):
        data = metadata(vms[name])["user-data"]
        settings = json.loads(written(data, "/etc/connector-provisioner/watchdog.json"))
        assert settings == {
            "cloud": "gcp",
            "network": "hq",
            "region": "europe-west1",
            "member": member,
            "settle": 3.0,
        }
        assert "class Peers" in written(data, "/usr/local/sbin/connector-watchdog")
    again = gcp.deployment(doc).plan()
    assert again.empty, plan_text(again)
    status = gcp.deployment(doc).status()
    (hq,) = [s for s in status if s.network == "hq"]
    assert hq.healthy and hq.standby is not None
    assert "internal load balancer" in status_text(status)


def routes_lead(gcp: GcpWorld) -> set[str]:
    """Each of HQ's routes of ours: "ok" when its next hop is a running instance, or an ILB
    with a running instance in one of its backend groups."""
    res = gcp.gce.state.compute
    running = {
        r["selfLink"]
        for r in res.values()
        if r["_kind"] == "instances" and r.get("status") == "RUNNING"
    }
    fronts: dict[str, bool] = {}
    for rule in (r for r in res.values() if r["_kind"] == "forwardingRules"):
        service = res.get(rule["backendService"].split("/compute/v1/", 1)[-1]) or {}
        members = {u for b in service.get("backends", [])
                   for u in (res.get(b["group"].split("/compute/v1/", 1)[-1]) or {}).get("_members", [])}  # fmt: skip
        fronts[rule["IPAddress"]] = bool(members & running)
    out = set()
    for r in res.values():
        if r["_kind"] == "routes" and r["name"].startswith("cp-hq-") and r["destRange"] in OURS:
            ok = fronts.get(r.get("nextHopIlb", ""), False) or r.get("nextHopInstance") in running
            out.add("ok" if ok else "NOWHERE")
    return out


@pytest.fixture
def route_watch(gcp: GcpWorld) -> Iterator[WriteWatch]:
    with WriteWatch(gcp.gce, lambda: routes_lead(gcp)).installed() as watch:
        yield watch


def test_one_connector_to_a_pair_and_back_never_leaves_the_routes_leading_nowhere(
    gcp: GcpWorld, route_watch: WriteWatch
):
    before = gcp.snapshot()
    gcp.deployment().apply()
    alone = of(gcp, "instances")["cp-hq-connector"]
    route_watch.seen.clear()
    doc = as_pair(gcp)
    plan = gcp.deployment(doc).plan()
    assert any("without the pair's watchdog" in c.why for c in plan.changes)
    gcp.deployment(doc).apply()
    assert route_watch.seen and route_watch.nowhere == []
    vms = of(gcp, "instances")
    assert vms["cp-hq-connector"]["id"] != alone["id"]  # replaced: it had no watchdog
    (rule,) = of(gcp, "forwardingRules").values()
    assert ilb_hops(gcp) == {rule["IPAddress"]}
    assert gcp.deployment(doc).plan().empty
    route_watch.seen.clear()
    gcp.deployment().apply()  # back to one: the routes to it, then the pair's pieces go
    assert route_watch.seen and route_watch.nowhere == []
    assert set(of(gcp, "instances")) == {"cp-hq-connector"}
    assert of(gcp, "forwardingRules") == {} and of(gcp, "instanceGroups") == {}
    assert ilb_hops(gcp) == {"cp-hq-connector"}
    assert gcp.deployment().plan().empty
    gcp.deployment().destroy()
    assert gcp.snapshot() == before


def test_destroy_of_a_pair_leaves_the_project_as_it_was(gcp: GcpWorld):
    before = gcp.snapshot()
    doc = as_pair(gcp)
    gcp.deployment(doc).apply()
    gcp.deployment(doc).destroy()
    assert gcp.snapshot() == before
    gcp.gce.calls.clear()
    assert gcp.deployment(doc).destroy().done == ()
    assert gcp.mutating() == []


def test_the_failover_backend_serves_while_the_pair_says_so_and_no_failback(gcp: GcpWorld):
    """Compute fails back to a primary that is healthy again; the pair's agreement keeps the
    returning first connector unhealthy to the check (it does not answer /active)."""
    from provisioner.providers.gcp.fake import IlbHealth

    doc = as_pair(gcp)
    gcp.deployment(doc).apply()
    with gcp.gce.lock:  # the instances on loopback: what the checks ask is really there
        for name, ip in (("cp-hq-connector", "127.0.0.41"), ("cp-hq-connector-2", "127.0.0.42")):
            (vm,) = [r for r in gcp.gce.state.compute.values()
                     if r["_kind"] == "instances" and r["name"] == name]  # fmt: skip
            vm["networkInterfaces"][0]["networkIP"] = ip
    health = IlbHealth(gcp.gce, f"projects/{P}/regions/europe-west1/backendServices/cp-hq-ilb")
    addresses = {"a": "127.0.0.41", "b": "127.0.0.42"}

    def chosen() -> list[str]:
        health.round()
        return [n for n, a in addresses.items() if a in health.targets()
                and health.up.get(a)]  # fmt: skip

    def until(want: list[str]) -> list[str]:
        deadline = time.monotonic() + 10
        while (got := chosen()) != want and time.monotonic() < deadline:
            time.sleep(0.1)
        return got

    ups = {"a": True, "b": True}
    with peer_watchdogs("gcp", ups, addresses, 8181) as said:
        assert until(["a"]) == ["a"]  # the primary, the first, claims
        ups["a"] = False
        assert until(["b"]) == ["b"]  # the failover backend, once the first stops answering
        ups["a"] = True
        time.sleep(0.6)
        assert chosen() == ["b"]  # healthy again, but not active: no failback
    assert sum("took over" in line for line in said) == 1


# --- a pair's own steps, failing once: the next apply finishes, destroy cleans up -------------

PAIR_STEPS = [
    ("POST", r"/regions/[^/]+/healthChecks$", 0),
    ("POST", r"/zones/[^/]+/instanceGroups$", 1),  # the second connector's group
    ("POST", r"/regions/[^/]+/backendServices$", 0),
    ("POST", r"/regions/[^/]+/forwardingRules$", 0),
    ("POST", r"/instanceGroups/[^/]+/addInstances$", 0),
    ("POST", r"/instances/[^/]+/setMetadata$", 0),  # the peers' metadata
    ("POST", r"/global/firewalls$", 0),  # the health checkers' rule
    ("POST", r"/global/routes$", 1),  # half-way through the routes to the load balancer
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, path, after", PAIR_STEPS, ids=[f"{m} {p} #{a}" for m, p, a in PAIR_STEPS]
)
def test_a_pair_step_that_fails_is_finished_by_apply_and_cleaned_by_destroy(
    method, path, after, gcp: GcpWorld
):
    from conftest import apply_survives
    from test_gcp_faults import FORBIDDEN

    apply_survives(gcp, lambda: gcp.gce.fail(method, path, *FORBIDDEN, after=after),
                   "403", doc=as_pair(gcp))  # fmt: skip


# --- a single connector replaced without an outage (make before break, issue 29) ---------------


def _larger(gcp: GcpWorld) -> dict[str, Any]:
    doc = gcp.topology()
    doc["networks"]["hq"]["connector"]["size"] = "e2-standard-2"
    return doc


def test_a_replaced_connector_is_made_before_the_old_one_goes(
    gcp: GcpWorld, route_watch: WriteWatch
):
    """A new size: the new VM under the member's other name, its guest attribute says its
    tunnel is up, the routes made anew towards it (then the old ones deleted), then the old
    VM deleted; at no write do HQ's routes lead nowhere; the next time, the first name again."""
    before = gcp.snapshot()
    gcp.deployment().apply()
    (old,) = of(gcp, "instances")
    route_watch.seen.clear()
    plan = gcp.deployment(_larger(gcp)).plan()
    hq = [c for c in plan.changes if c.network == "hq"]
    kinds = [c.kind.value for c in hq]
    assert kinds.index("connector") < kinds.index("ready") < kinds.index("route")
    assert (hq[-1].action.value, hq[-1].resource) == ("delete", old)
    gcp.deployment(_larger(gcp)).apply()
    assert route_watch.seen and route_watch.nowhere == [], route_watch.seen
    (new,) = of(gcp, "instances")
    assert new == f"{old}-r" and ilb_hops(gcp) == {new}
    assert gcp.deployment(_larger(gcp)).plan().empty
    gcp.deployment().apply()  # back to the first size: the first name again
    assert list(of(gcp, "instances")) == [old] and route_watch.nowhere == []
    gcp.deployment().destroy()
    assert gcp.snapshot() == before


@pytest.mark.parametrize(
    "method, path, after",
    [
        ("GET", r"/getGuestAttributes$", 0),
        ("POST", r"/global/routes$", 1),
        ("DELETE", r"/zones/[^/]+/instances/cp-hq-connector$", 0),
    ],
    ids=["new VM launched", "routes half moved", "old VM not yet removed"],
)
def test_a_replacement_interrupted_at_each_step_is_finished_and_cleaned(
    gcp: GcpWorld, route_watch: WriteWatch, method: str, path: str, after: int
):
    from provisioner import CloudError

    before = gcp.snapshot()
    gcp.deployment().apply()
    route_watch.seen.clear()  # (before the first apply, nothing led anywhere)
    gcp.gce.faults.add(method, path, 403, "forbidden", "injected", after=after, times=1)
    with pytest.raises(CloudError):
        gcp.deployment(_larger(gcp)).apply()
    assert route_watch.nowhere == [], route_watch.seen
    gcp.deployment(_larger(gcp)).apply()  # finishes: one connector, the new one
    assert route_watch.nowhere == []
    (name,) = of(gcp, "instances")
    assert name == "cp-hq-connector-r" and ilb_hops(gcp) == {name}
    assert gcp.deployment(_larger(gcp)).plan().empty
    gcp.deployment(_larger(gcp)).destroy()
    assert gcp.snapshot() == before


def test_routes_move_only_once_the_new_vm_says_its_tunnel_is_up(
    gcp: GcpWorld, route_watch: WriteWatch
):
    """A VM that never writes its guest attribute: apply stops, the routes still on the old
    one; the next apply waits for the same VM; once it says so, the routes move."""
    from provisioner import CloudError, Deployment, load_topology

    gcp.deployment().apply()
    route_watch.seen.clear()
    gcp.gce.vms_report_ready = False
    from provisioner.providers import Clouds

    impatient = Deployment(load_topology(gcp.write(_larger(gcp))),
                           Clouds(options={"gcp": {"endpoint": gcp.url, "wait_seconds": 0.3}}))  # fmt: skip
    with pytest.raises(CloudError) as failed:
        impatient.apply()
    assert "to say its tunnel is up" in str(failed.value)
    assert "still lead to cp-hq-connector" in str(failed.value)
    assert ilb_hops(gcp) == {"cp-hq-connector"} and route_watch.nowhere == []
    again = Deployment(load_topology(gcp.write(_larger(gcp))), impatient.clouds).plan()
    (wait,) = [c for c in again.changes if c.kind == "ready"]
    assert wait.resource == "cp-hq-connector-r" and wait.previous_target == "cp-hq-connector"
    assert not any(c.kind == "connector" and c.action == "create" for c in again.changes)
    with gcp.gce.lock:  # its tunnel comes up: its connector-ready writes the attribute
        vm = gcp.gce.state.compute["projects/sandbox-project-1/zones/europe-west1-b/instances/"
                                   "cp-hq-connector-r"]  # fmt: skip
        vm["_guest"] = {"connector-provisioner/ready": "1"}
    gcp.deployment(_larger(gcp)).apply()
    assert list(of(gcp, "instances")) == ["cp-hq-connector-r"] and route_watch.nowhere == []
    gcp.gce.vms_report_ready = True


def test_a_pair_changes_one_member_at_a_time_and_the_routes_never_lead_nowhere(
    gcp: GcpWorld, route_watch: WriteWatch
):
    """Both members need replacing (a new size): one at a time, the other behind the ILB
    throughout; at no write do HQ's routes lead nowhere."""
    doc = as_pair(gcp)
    gcp.deployment(doc).apply()
    before = {i["id"] for n, i in of(gcp, "instances").items() if n.startswith("cp-hq")}
    route_watch.seen.clear()
    doc["networks"]["hq"]["connector"]["size"] = "e2-standard-2"
    gcp.deployment(doc).apply()
    assert route_watch.seen and route_watch.nowhere == [], route_watch.seen
    after = {n: i for n, i in of(gcp, "instances").items() if n.startswith("cp-hq")}
    assert len(after) == 2 and all(
        i["machineType"].endswith("/e2-standard-2") for i in after.values()
    )
    assert not {i["id"] for i in after.values()} & before  # both replaced
    assert gcp.deployment(doc).plan().empty
