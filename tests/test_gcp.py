"""GCP end to end: the real google-cloud-compute / google-cloud-secret-manager SDKs (and
google-auth for IAM) against the fake on 127.0.0.1 (provisioner/fakes/gce.py). The outcomes a
user relies on."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from conftest import GcpWorld

from provisioner import ConflictError, RouteState
from provisioner.cli import run

P = "sandbox-project-1"
HQ_CONNECTOR = f"projects/{P}/zones/europe-west1-b/instances/cp-hq-connector"
PEERS = ("100.96.0.0/11", "10.5.0.0/16", "172.31.0.0/16")  # vpn, spoke, partner


def routes(gcp: GcpWorld, network: str = "hq") -> dict[tuple[str, tuple[str, ...]], dict[str, Any]]:
    """The network's routes of ours by (destination, tags)."""
    return {
        (r["destRange"], tuple(r.get("tags") or ())): r
        for r in gcp.gce.resources("routes")
        if r["name"].startswith(f"cp-{network}-") and r.get("nextHopInstance")
    }


def hop(route: dict[str, Any]) -> str:
    return route["nextHopInstance"].split("/compute/v1/", 1)[-1]


def firewall(gcp: GcpWorld, name: str) -> dict[str, Any] | None:
    return gcp.gce.view(f"projects/{P}/global/firewalls/{name}")


def app_rules(gcp: GcpWorld, tag: str = "hq-app") -> list[dict[str, Any]]:
    return [
        f
        for f in gcp.gce.resources("firewalls")
        if f["name"].startswith("cp-") and f.get("targetTags") == [tag]
    ]


def instance(gcp: GcpWorld, network: str = "hq") -> dict[str, Any] | None:
    """The network's connector, under either of its two names (a replacement takes the other)."""
    zone = "europe-west1-b" if network == "hq" else "us-central1-a"
    for name in (f"cp-{network}-connector", f"cp-{network}-connector-r"):
        found = gcp.gce.view(f"projects/{P}/zones/{zone}/instances/{name}")
        if found is not None:
            return found
    return None


def test_apply_routes_the_network_through_the_connector(gcp: GcpWorld):
    gcp.deployment().apply()
    ours = routes(gcp)
    for destination in PEERS:
        route = ours[(destination, ())]
        assert hop(route) == HQ_CONNECTOR
        assert route["priority"] == 1000
        assert route["description"].startswith("connector-provisioner: hq: ")
    assert not any(d == "10.4.0.0/16" or d.startswith("10.4.") for d, _ in ours)  # never its own
    assert len(ours) == 3
    # spoke's routes are spoke's, in spoke's network, to spoke's connector
    assert {d for d, _ in routes(gcp, "spoke")} == {"100.96.0.0/11", "10.4.0.0/16", "172.31.0.0/16"}
    # the admin's own route is untouched
    admin = [r for r in gcp.gce.resources("routes") if r["name"] == "hq-docs-via-internet"]
    assert admin and admin[0]["destRange"] == "198.51.100.0/24"


def test_the_connector_forwards_has_its_tag_identity_and_way_out(gcp: GcpWorld):
    gcp.deployment().apply()
    hq, spoke = instance(gcp, "hq"), instance(gcp, "spoke")
    assert hq is not None and spoke is not None
    assert hq["canIpForward"] is True
    assert hq["tags"]["items"] == ["cp-hq-connector"]
    assert hq["machineType"].endswith("/machineTypes/e2-small")
    assert hq["serviceAccounts"][0]["email"] == f"cp-hq-vpn@{P}.iam.gserviceaccount.com"
    # hq reaches the internet through the default internet gateway: an external address;
    # spoke's region has Cloud NAT: none
    assert hq["networkInterfaces"][0]["accessConfigs"][0]["natIP"].startswith("203.0.113.")
    assert not spoke["networkInterfaces"][0].get("accessConfigs")
    assert "ubuntu-2404-lts-amd64" in hq["disks"][0]["licenses"][0]


def test_firewall_rules_admit_what_arrives_and_the_connector_admits_its_network(gcp: GcpWorld):
    gcp.deployment().apply()
    (rule,) = app_rules(gcp)
    assert rule["direction"] == "INGRESS" and rule["allowed"] == [{"IPProtocol": "all"}]
    assert sorted(rule["sourceRanges"]) == sorted(PEERS)  # by address: sources are kept
    assert not rule.get("sourceTags")
    own = firewall(gcp, "cp-hq-connector-in")
    assert own is not None
    assert own["targetTags"] == ["cp-hq-connector"] and own["sourceRanges"] == ["10.4.0.0/16"]
    assert "0.0.0.0/0" not in json.dumps(
        [f for f in gcp.gce.resources("firewalls") if f["name"].startswith("cp-")]
    )


def test_nat_everything_admits_the_connectors_tag(gcp: GcpWorld):
    gcp.deployment(gcp.topology(nat=True, nat_preserve_source=False)).apply()
    (rule,) = app_rules(gcp)
    assert rule["sourceTags"] == ["cp-hq-connector"] and not rule.get("sourceRanges")


def test_ports_per_tag_make_one_rule_per_port_spec(gcp: GcpWorld):
    doc = gcp.topology(
        app_security_groups=[{"group": "hq-app", "ports": ["tcp/443", "udp/5000-5100"]}]
    )
    gcp.deployment(doc).apply()
    allowed = sorted(json.dumps(r["allowed"], sort_keys=True) for r in app_rules(gcp))
    assert allowed == [
        json.dumps([{"IPProtocol": "tcp", "ports": ["443"]}], sort_keys=True),
        json.dumps([{"IPProtocol": "udp", "ports": ["5000-5100"]}], sort_keys=True),
    ]
    assert gcp.deployment(doc).plan().changes == ()


def test_second_apply_changes_nothing(gcp: GcpWorld):
    gcp.deployment().apply()
    gcp.gce.calls.clear()
    assert gcp.deployment().apply().done == ()
    assert gcp.mutating() == []


def test_destroy_leaves_the_project_as_it_was(gcp: GcpWorld):
    before = gcp.snapshot()
    gcp.deployment().apply()
    assert gcp.snapshot() != before
    gcp.deployment().destroy()
    assert gcp.snapshot() == before
    gcp.gce.calls.clear()
    assert gcp.deployment().destroy().done == ()  # nothing left to remove
    assert gcp.mutating() == []


def test_every_operation_is_awaited_through_the_fake(gcp: GcpWorld):
    gcp.gce.state.operations.clear()  # the seeding's
    gcp.deployment().apply()
    polled = {
        c.path.rsplit("/", 2)[-2] if c.path.endswith("/wait") else c.path.rsplit("/", 1)[-1]
        for c in gcp.gce.calls
        if c.kind == "operations"
    }
    made = {path.rsplit("/", 1)[-1] for path in gcp.gce.state.operations}
    assert made and made <= polled  # each until DONE, through the SDK's operation clients
    assert all(op["status"] == "DONE" for op in gcp.gce.state.operations.values())
    scopes = {c.path.split("/")[2] for c in gcp.gce.calls if c.kind == "operations"}
    assert scopes == {"zones", "global"}  # instances are zonal; routes and firewalls global


def test_a_foreign_route_at_a_better_priority_is_a_conflict(gcp: GcpWorld):
    from google.cloud import compute_v1 as c

    api = gcp.compute()
    api.routes.insert_unary(
        project=P,
        route_resource=c.Route(
            name="admin-partner",
            network=f"projects/{P}/global/networks/vpc-hq",
            dest_range="172.31.0.0/16",
            priority=500,
            next_hop_gateway=f"projects/{P}/global/gateways/default-internet-gateway",
        ),
    )
    gcp.gce.calls.clear()
    with pytest.raises(ConflictError) as e:
        gcp.deployment().apply()
    assert "172.31.0.0/16" in str(e.value) and "default-internet-gateway" in str(e.value)
    assert gcp.mutating() == []
    path = gcp.write(gcp.topology())
    assert run(["apply", "-f", str(path), "--yes"]) == 3
    assert gcp.mutating() == []


def test_a_foreign_route_at_a_worse_priority_is_outranked_not_a_conflict(gcp: GcpWorld):
    from google.cloud import compute_v1 as c

    gcp.compute().routes.insert_unary(
        project=P,
        route_resource=c.Route(
            name="admin-partner",
            network=f"projects/{P}/global/networks/vpc-hq",
            dest_range="172.31.0.0/16",
            priority=2000,
            next_hop_gateway=f"projects/{P}/global/gateways/default-internet-gateway",
        ),
    )
    gcp.deployment().apply()
    assert hop(routes(gcp)[("172.31.0.0/16", ())]) == HQ_CONNECTOR
    assert any(r["name"] == "admin-partner" for r in gcp.gce.resources("routes"))


def test_a_route_whose_connector_is_gone_is_a_blackhole_and_replaced(gcp: GcpWorld):
    gcp.deployment().apply()
    api = gcp.compute()
    api.instances.delete_unary(project=P, zone="europe-west1-b", instance="cp-hq-connector")
    warnings = routes(gcp)[("100.96.0.0/11", ())]["warnings"]
    assert warnings[0]["code"] == "NEXT_HOP_INSTANCE_NOT_FOUND"
    status = gcp.deployment().status()[0]
    assert any(r.state is RouteState.BLACKHOLE for r in status.routes)
    gcp.deployment().apply()
    assert instance(gcp) is not None
    assert all("warnings" not in r for r in routes(gcp).values())
    assert len(routes(gcp)) == 3
    assert gcp.deployment().plan().changes == ()


def test_a_connector_that_cannot_forward_is_replaced_not_patched(gcp: GcpWorld):
    gcp.deployment().apply()
    with gcp.gce.lock:  # as if launched by hand without the flag
        gcp.gce.state.compute[HQ_CONNECTOR]["canIpForward"] = False
    plan = gcp.deployment().plan()
    launch, gone = [c for c in plan.changes if c.kind.value == "connector"]
    assert (launch.action.value, gone.action.value) == ("create", "delete")  # made before break
    assert "cannot forward" in launch.why and gone.resource == "cp-hq-connector"
    gcp.gce.calls.clear()
    gcp.deployment().apply()
    assert instance(gcp)["canIpForward"] is True  # type: ignore[index]
    assert not any(c.kind == "instances" and c.verb in ("update", "patch") for c in gcp.gce.calls)
    assert gcp.deployment().plan().changes == ()


def test_routes_scoped_to_tags_follow_the_selection(gcp: GcpWorld):
    gcp.deployment(gcp.topology(route_tables=["hq-app"])).apply()
    assert set(routes(gcp)) == {(d, ("hq-app",)) for d in PEERS}
    gcp.deployment().apply()  # all: the whole network
    assert set(routes(gcp)) == {(d, ()) for d in PEERS}


def test_route_priority_is_configurable(gcp: GcpWorld):
    gcp.deployment().apply()
    assert {r["priority"] for r in routes(gcp).values()} == {1000}
    gcp.deployment(gcp.topology(route_priority=900)).apply()  # routes are replaced, not patched
    assert {r["priority"] for r in routes(gcp).values()} == {900}
    assert len(routes(gcp)) == 3
    assert gcp.deployment(gcp.topology(route_priority=900)).plan().changes == ()


def test_a_removed_peer_leaves_routes_and_firewall_sources(gcp: GcpWorld):
    gcp.deployment().apply()
    gcp.deployment(gcp.topology(partner=False)).apply()
    assert "172.31.0.0/16" not in {d for d, _ in routes(gcp)}
    (rule,) = app_rules(gcp)
    assert "172.31.0.0/16" not in rule["sourceRanges"]


def test_the_profile_is_in_secret_manager_readable_by_the_connector_alone(gcp: GcpWorld):
    gcp.deployment().apply()
    secret = f"projects/{P}/secrets/cp-hq-vpn-profile"
    assert gcp.gce.secret_payload(secret) == (gcp.directory / "hq.ovpn").read_text()
    policy = gcp.gce.state.policies[secret]
    assert policy["bindings"] == [
        {
            "role": "roles/secretmanager.secretAccessor",
            "members": [f"serviceAccount:cp-hq-vpn@{P}.iam.gserviceaccount.com"],
        }
    ]
    # what a GET of the secret and of its versions shows holds no payload
    from google.cloud import secretmanager_v1

    from provisioner.providers.gcp.common import make_clients

    client = make_clients(gcp.url, None).secrets
    assert isinstance(client, secretmanager_v1.SecretManagerServiceClient)
    assert "GCP-SANDBOX" not in str(client.get_secret(name=secret))
    # and the VM reads it as the boot does: the latest version
    data = client.access_secret_version(name=f"{secret}/versions/latest").payload.data
    assert data.decode() == (gcp.directory / "hq.ovpn").read_text()


def test_a_new_profile_is_a_new_version_and_a_new_connector(gcp: GcpWorld):
    gcp.deployment().apply()
    first_id = instance(gcp)["id"]  # type: ignore[index]
    (gcp.directory / "hq.ovpn").write_text(
        "client\nremote other.vpn.invalid 1194\n<key>\nk\n</key>\n"
    )
    result = gcp.deployment().apply()
    assert any("VPN profile changed" in c.why for c in result.done)
    secret = f"projects/{P}/secrets/cp-hq-vpn-profile"
    assert (
        gcp.gce.secret_payload(secret)
        == "client\nremote other.vpn.invalid 1194\n<key>\nk\n</key>\n"
    )
    states = [v["state"] for v in gcp.gce.state.versions[secret]]
    assert states == ["DESTROYED", "ENABLED"]  # the old profile is not kept
    assert instance(gcp)["id"] != first_id  # type: ignore[index]
    assert gcp.deployment().plan().changes == ()


def test_a_service_account_named_in_the_file_is_used_not_made(gcp: GcpWorld):
    email = "123456789-compute@developer.gserviceaccount.com"
    doc = gcp.topology(service_account=email)
    gcp.deployment(doc).apply()
    assert instance(gcp)["serviceAccounts"][0]["email"] == email  # type: ignore[index]
    assert [a["email"] for a in gcp.gce.state.accounts.values()] == [
        f"cp-spoke-vpn@{P}.iam.gserviceaccount.com"
    ]
    policy = gcp.gce.state.policies[f"projects/{P}/secrets/cp-hq-vpn-profile"]
    assert policy["bindings"][0]["members"] == [f"serviceAccount:{email}"]
    gcp.deployment(doc).destroy()
    made = [c for c in gcp.gce.calls if c.api == "iam" and c.verb in ("create", "delete")]
    assert made and not any("cp-hq" in c.path or "cp-hq" in json.dumps(c.body) for c in made)


def test_the_profile_is_in_no_output_log_or_metadata(gcp: GcpWorld, capsys, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    # Google's SDK logging on, as GOOGLE_SDK_PYTHON_LOGGING_SCOPE=google turns it on (its
    # structured handler prints the request body in the record's httpRequest), reaching caplog
    google = logging.getLogger("google")
    monkeypatch.setattr(google, "propagate", True)
    monkeypatch.setattr(google, "level", logging.DEBUG)
    path = gcp.write(gcp.topology())
    for argv in (
        ["plan"],
        ["plan", "--json"],
        ["apply", "--yes"],
        ["status", "--json"],
        ["bootstrap", "--network", "hq"],
    ):
        run([*argv, "-f", str(path)])
    out = capsys.readouterr()
    # the records whole: Google's transports log request bodies in their extras
    records = json.dumps([vars(r) for r in caplog.records], default=str)
    assert "httpRequest" in records  # the SDK's own DEBUG logging was on
    text = out.out + out.err + caplog.text + records
    everything = json.dumps(gcp.gce.snapshot()["compute"]) + json.dumps(
        [c.body for c in gcp.gce.calls]
    )
    for name in ("hq", "spoke"):
        profile = (gcp.directory / f"{name}.ovpn").read_text()
        key = profile.splitlines()[4]
        for form in (key, base64.b64encode(profile.encode()).decode()):
            assert form not in text
            assert form not in everything  # instance metadata, user-data, recorded bodies
    user_data = [i["value"] for i in instance(gcp)["metadata"]["items"] if i["key"] == "user-data"][
        0
    ]  # type: ignore[index]
    assert f"projects/{P}/secrets/cp-hq-vpn-profile" in user_data


def test_a_throttle_is_waited_out_and_retried(gcp: GcpWorld):
    fault = gcp.gce.fail(
        "POST",
        r"global/routes$",
        429,
        "rateLimitExceeded",
        "Rate Limit Exceeded",
        times=2,
        retry_after="0",
    )
    gcp.deployment().apply()
    assert fault.served == 2
    assert len(routes(gcp)) == 3


def test_status_reads_health_from_the_cloud(gcp: GcpWorld):
    gcp.deployment().apply()
    hq = gcp.deployment().status()[0]
    assert hq.healthy
    assert hq.connector is not None and hq.connector.forwarding
    assert {r.state for r in hq.routes} == {RouteState.OK}


def test_the_one_network_flags_apply_like_a_topology(gcp: GcpWorld, capsys, monkeypatch):
    monkeypatch.chdir(gcp.directory)
    (gcp.directory / "hq.ovpn").write_text(
        "client\nremote sandbox.vpn.invalid 1194\n<key>\nk\n</key>\n"
    )
    hq = gcp.hq
    argv = [
        "--cloud", "gcp", "--project", hq.project, "--network", hq.network, "--zone", hq.zone,
        "--connector-subnet", hq.connector_subnet, "--subnet", hq.cidr, "--peer", "192.168.0.0/22",
        "--profile", "hq.ovpn", "--app-security-group", f"{hq.app_tag}:tcp/443", "--yes",
    ]  # fmt: skip
    assert run(argv) == 0
    ours = {d: r for (d, _), r in routes(gcp, "net").items()}
    assert hop(ours["192.168.0.0/22"]).endswith("/instances/cp-net-connector")
    (rule,) = [f for f in gcp.gce.resources("firewalls") if f["name"].startswith("cp-net-app-")]
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["443"]}]
    assert run(argv) == 0
    assert "nothing to do" in capsys.readouterr().out


def _permissions(call) -> set[str]:
    """The IAM permissions one recorded call needs, as the APIs' references name them."""
    if call.kind == "operations":
        scope = call.path.split("/")[2]  # zones | regions | global
        return {
            f"compute.{ {'zones': 'zone', 'regions': 'region'}.get(scope, scope) }Operations.get"
        }
    if call.api == "iam":
        return {f"iam.serviceAccounts.{call.verb}"}
    if call.kind == "images" and "projects/ubuntu-os-cloud/" in call.path:
        return set()  # a public image project: Google grants its images' use to every caller
    if call.api == "secretmanager":
        return {
            "create": {"secretmanager.secrets.create"},
            "get": {"secretmanager.secrets.get"},
            "patch": {"secretmanager.secrets.update"},
            "delete": {"secretmanager.secrets.delete"},
            "getIamPolicy": {"secretmanager.secrets.getIamPolicy"},
            "setIamPolicy": {"secretmanager.secrets.setIamPolicy"},
            "listVersions": {"secretmanager.versions.list"},
            "addVersion": {"secretmanager.versions.add"},
            "destroy": {"secretmanager.versions.destroy"},
        }[call.verb]
    verb = {
        "aggregatedList": "list", "insert": "create", "patch": "update",
        "addInstances": "update", "removeInstances": "update", "listInstances": "list",
    }.get(call.verb, call.verb)  # fmt: skip
    kind = call.kind
    if "/regions/" in call.path and kind in ("healthChecks", "backendServices"):
        kind = "region" + kind[0].upper() + kind[1:]  # regionHealthChecks...
    needed = {f"compute.{kind}.{verb}"}
    body = call.body or {}
    if call.verb == "addInstances":
        needed.add("compute.instances.use")
    if kind == "regionBackendServices" and verb in ("create", "update"):
        needed |= {"compute.regionHealthChecks.useReadOnly", "compute.instanceGroups.use"}
    if kind == "forwardingRules" and verb == "create":
        needed |= {"compute.regionBackendServices.use", "compute.subnetworks.use",
                   "compute.networks.use"}  # fmt: skip
    if kind == "instanceGroups" and verb == "create":
        needed.add("compute.networks.use")
    if kind == "routes" and body.get("nextHopIlb"):
        needed.add("compute.forwardingRules.use")
    if call.kind in ("routes", "firewalls") and verb in ("create", "update", "delete"):
        needed.add("compute.networks.updatePolicy")
    if call.kind == "instances" and verb == "create":
        body = call.body
        needed |= {"compute.disks.create", "compute.subnetworks.use"}
        needed |= {
            "compute.instances.setMetadata",
            "compute.instances.setTags",
            "compute.instances.setLabels",
        }
        if body.get("serviceAccounts"):
            needed |= {"compute.instances.setServiceAccount", "iam.serviceAccounts.actAs"}
        if any(n.get("accessConfigs") for n in body["networkInterfaces"]):
            needed.add("compute.subnetworks.useExternalIp")
    return needed


def test_the_documented_role_is_exactly_what_the_calls_need(gcp: GcpWorld):
    from provisioner.providers.gcp.permissions import PERMISSIONS

    gcp.deployment().apply()
    api = gcp.compute()  # someone stops the connector; apply starts it again
    api.instances.stop_unary(project=P, zone="europe-west1-b", instance="cp-hq-connector")
    gcp.deployment().apply()
    (gcp.directory / "hq.ovpn").write_text("client\nremote new.invalid 1194\n<key>\nk\n</key>\n")
    gcp.deployment().apply()  # the new profile: a new version, a new connector
    gcp.deployment(gcp.topology(partner=False)).apply()  # a peer leaves: a firewall update
    gcp.deployment().status()
    gcp.deployment().doctor()
    gcp.deployment().destroy()
    from test_gcp_pair import as_pair

    gcp.deployment(as_pair(gcp)).apply()  # a pair: its load balancer, groups, metadata
    gcp.deployment(as_pair(gcp)).status()
    gcp.deployment().apply()  # and back to one
    gcp.deployment(as_pair(gcp)).apply()
    gcp.deployment(as_pair(gcp)).destroy()
    calls = [c for c in gcp.gce.calls if not (c.kind == "instances" and c.verb == "stop")]
    needed = {p for call in calls for p in _permissions(call)}
    assert needed - set(PERMISSIONS) == set()  # every call is allowed
    assert set(PERMISSIONS) - needed == set()  # and nothing more is granted


def test_without_credentials_the_error_says_so_and_nothing_is_changed(
    gcp: GcpWorld, capsys, monkeypatch
):
    # no sandbox endpoint: google.auth.default() decides, and finds a key file that is not there
    # (never the metadata server: the test sends nothing off loopback)
    monkeypatch.delenv("PROVISION_GCP_ENDPOINT")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(gcp.directory / "missing.json"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    assert run(["plan", "-f", str(gcp.write(gcp.topology()))]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        "no Google Cloud credentials" in err
        and "missing.json" in err
        and "nothing was changed" in err
    )
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert gcp.gce.calls == []


def test_progress_is_reported_while_an_operation_runs(gcp: GcpWorld):
    from provisioner import Clouds, Deployment, load_topology

    said: list[str] = []
    clouds = Clouds(
        options={"gcp": {"endpoint": gcp.url, "progress_seconds": 0.0}}, progress=said.append
    )
    Deployment(load_topology(gcp.write(gcp.topology())), clouds).apply()
    assert any(m.startswith("hq: waiting for instance cp-hq-connector") for m in said)
    assert any(m.startswith("hq: waiting for route cp-hq-") for m in said)


def test_bootstrap_prints_user_data_that_names_the_secret(gcp: GcpWorld, capsys):
    assert run(["bootstrap", "-f", str(gcp.write(gcp.topology())), "--network", "hq"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#cloud-config") and "(GCP, europe-west1)" in out
    assert f"v1/projects/{P}/secrets/cp-hq-vpn-profile/versions/latest:access" in out
    assert "metadata.google.internal" in out and "GCP-SANDBOX" not in out
    assert gcp.gce.mutating_calls() == []


def test_an_unreachable_api_is_a_message_not_a_traceback(gcp: GcpWorld, capsys, monkeypatch):
    monkeypatch.setenv("PROVISION_GCP_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    assert run(["plan", "-f", str(gcp.write(gcp.topology()))]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("  ..")]
    assert len(err) == 1 and "could not read network vpc-hq" in err[0], err
    assert "ConnectionError" in err[0] and "nothing was changed" in err[0]


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("gcp")


def test_doctor_judges_firewall_rules_by_priority_deny_first_and_targets(gcp: GcpWorld):
    """After apply the VPN clients reach hq's app instance; a deny for the VPN range at the
    priority of our allow wins (a deny goes first at equal priority), and a deny aimed at
    other tags does not touch it."""
    from google.cloud import compute_v1 as c

    from provisioner.providers.gcp.world import compute

    gcp.deployment().apply()

    def remote() -> Any:
        return next(r for r in gcp.deployment().doctor() if r.flow.startswith("VPN clients ("))

    assert remote().ok, remote().dropped_at
    assert any(h.what.startswith("firewall rules of hq-app-1") for h in remote().hops)
    api = compute(gcp.url)
    project, network = gcp.hq.project, f"projects/{gcp.hq.project}/global/networks/{gcp.hq.network}"

    def deny(name: str, tags: list[str]) -> None:
        api.firewalls.insert_unary(project=project, firewall_resource=c.Firewall(
            name=name, network=network, direction="INGRESS", priority=1000, target_tags=tags,
            source_ranges=["100.96.0.0/11"], denied=[c.Denied(I_p_protocol="all")]))  # fmt: skip

    deny("deny-vpn-elsewhere", ["some-other-tag"])
    assert remote().ok  # targets another tag: not this instance
    api.firewalls.insert_unary(project=project, firewall_resource=c.Firewall(
        name="deny-vpn-for-an-account", network=network, direction="INGRESS", priority=900,
        target_service_accounts=["batch@sandbox-project-1.iam.gserviceaccount.com"],
        source_ranges=["100.96.0.0/11"], denied=[c.Denied(I_p_protocol="all")]))  # fmt: skip
    assert remote().ok  # targets instances running as another service account
    deny("deny-vpn", [gcp.hq.app_tag])
    dropped = remote().dropped_at
    assert dropped is not None and dropped.what == "firewall rules of hq-app-1"
    assert "deny-vpn (priority 1000)" in dropped.detail and not dropped.apply_fixes


def test_a_new_image_release_replaces_nothing_until_apply_roll(gcp: GcpWorld):
    """A connector runs the family's newest release by name; Canonical publishes the next one:
    plan and apply change nothing, status says it exists and since when, `apply --roll` takes
    it, the new connector made before the old one goes."""
    gcp.deployment().apply()

    def running() -> str:
        vm = instance(gcp)
        assert vm is not None
        return str(vm["description"]).removeprefix("image: ")

    first = running()
    assert first.endswith("/global/images/ubuntu-2404-lts-amd64-v20261101")
    newer = gcp.gce.publish_image("ubuntu-os-cloud", "ubuntu-2404-lts-amd64", "20261201")
    assert gcp.deployment().plan().empty  # no surprise
    (hq,) = [s for s in gcp.deployment().status() if s.network == "hq"]
    note = next(n for n in hq.notes if n.startswith("a newer image exists"))
    assert newer in note and "2026-12-01" in note and first in note
    plan = gcp.deployment().plan(roll=True)
    made, gone = [c for c in plan.changes if c.kind == "connector" and c.network == "hq"]
    assert (made.action, gone.action) == ("create", "delete") and "(--roll)" in made.why
    gcp.deployment().apply(roll=True)
    assert running() == newer
    assert not any(
        n.startswith("a newer image") for s in gcp.deployment().status() for n in s.notes
    )
