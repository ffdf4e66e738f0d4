"""The VPN service's half from the same file: CloudConnexa networks, routes, egress and
connector profiles, against the fake API over HTTP and AWS (moto) for the cloud half.

What a user relies on: apply makes both halves and the profile goes only into the cloud's
secret store; re-apply writes nothing on either half; routes follow the file and others' stay;
a network we did not make is a conflict until adopted; destroy removes ours, VMs first; status
names what the service lacks; bad input and missing credentials change nothing anywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CallLog, GcpWorld, snapshot

from provisioner import CloudError, Deployment, load_topology
from provisioner.cli import run
from provisioner.cloudconnexa.client import Api
from provisioner.cloudconnexa.fake import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    CloudConnexa,
)
from provisioner.clouds import place_from_text
from provisioner.fakeserver import FakeServer
from provisioner.providers import Clouds
from provisioner.providers.aws.world import sandbox_clouds
from provisioner.sandbox import SandboxWorld


def fake(server: FakeServer) -> CloudConnexa:
    return server.fake  # type: ignore[return-value]


def topology_file(
    world: SandboxWorld, edit: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    doc = world.topology(partner=True, service=True)
    if edit:
        edit(doc)
    path = world.directory / "topology.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def deployment(
    world: SandboxWorld,
    session: Any,
    server: FakeServer,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Deployment:
    clouds = sandbox_clouds(session, server.url, sleep=lambda seconds: None)
    return Deployment(load_topology(topology_file(world, edit)), clouds)


def stored_profile(session: Any, world: SandboxWorld, net: str = "hq") -> str:
    vpc = getattr(world, net)
    ssm = session.client("ssm", region_name=vpc.region)
    name = f"/connector-provisioner/{vpc.vpc}/{net}/profile"
    return str(ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])


def online(server: FakeServer) -> None:
    """Every connector dialled in (what the VMs would do)."""
    for connector in list(fake(server).state.connectors):
        fake(server).connect(connector)


def test_apply_makes_both_halves_and_the_profile_goes_only_into_the_secret_store(
    world: SandboxWorld, session: Any, service: FakeServer, capsys: pytest.CaptureFixture[str]
):
    path = topology_file(world)
    assert run(["apply", "-f", str(path), "--yes", "--json"]) == 0
    out = capsys.readouterr()
    import json

    doc = json.loads(out.out)  # the plan lists the service's changes like any other
    entry = next(n for n in doc["networks"] if n["name"] == "cloudconnexa")
    made = [c for c in entry["changes"] if c["kind"] == "service-network"]
    assert [(c["network"], c["subnets"], c["vpn_region"]) for c in made] == [
        ("hq", ["10.0.0.0/18"], "eu-central-1"),
        ("branch", ["192.168.0.0/22"], "eu-central-1"),
        ("partner", ["172.31.0.0/16"], "eu-central-1"),
    ]
    assert all("hop 1" in c["why"] for c in made) and doc["done"] > 0
    held = fake(service).snapshot()
    assert {name: (n["egress"], n["routes"], n["connectors"]) for name, n in held.items()} == {
        "hq": (True, ["10.0.0.0/18"], ["cp-hq"]),
        "branch": (False, ["192.168.0.0/22"], ["cp-branch"]),
        "partner": (False, ["172.31.0.0/16"], ["cp-partner"]),
    }
    assert all(
        n["description"].startswith("connector-provisioner@topology: ") for n in held.values()
    )
    hq = load_topology(topology_file(world)).network("hq")
    assert place_from_text(held["hq"]["description"]) == ("aws", hq.location)  # the other half
    # the profile the API made went into SSM, once per connector, and nowhere else
    profile = stored_profile(session, world)
    assert "connector cp-hq" in profile and "CLOUDCONNEXA-PRIVATE-KEY" in profile
    assert sorted(fake(service).state.profiles.values()) == [1, 1, 1]
    assert "PRIVATE-KEY" not in out.out + out.err
    assert not list(world.directory.glob("hq*.ovpn"))  # never on disk for a managed network
    partner = world.directory / "partner.ovpn"
    assert partner.stat().st_mode & 0o777 == 0o600 and "connector cp-partner" in partner.read_text()
    # the user-data names the parameter, never the profile
    assert run(["bootstrap", "-f", str(path), "--network", "hq"]) == 0
    assert "PRIVATE-KEY" not in capsys.readouterr().out


def test_reapply_makes_no_write_on_either_half(
    world: SandboxWorld, session: Any, service: FakeServer, calls: CallLog
):
    deployment(world, session, service).apply()
    calls.clear()
    fake(service).calls.clear()
    again = deployment(world, session, service)
    plan = again.plan()
    assert plan.empty, [c.summary() for c in plan.changes]
    assert again.apply().done == ()
    assert calls.mutating == [] and fake(service).mutating_calls() == []


def test_routes_follow_the_file_and_others_routes_stay(
    world: SandboxWorld, session: Any, service: FakeServer
):
    deployment(world, session, service).apply()
    server = fake(service)
    branch = next(n for n in server.state.networks.values() if n["name"] == "branch")
    server._add_route(branch["id"], {"value": "192.168.200.0/24", "description": "the admin's"})

    def narrower(doc: dict[str, Any]) -> None:
        doc["networks"]["branch"]["subnets"] = ["192.168.0.0/24"]

    d = deployment(world, session, service, narrower)
    plan = d.plan()
    service_changes = {(c.action.value, c.kind.value, str(c.destination)) for c in plan.changes
                       if c.network == "cloudconnexa"}  # fmt: skip
    # branch's VM runs a bootstrap for its subnets: replaced, made beside the old one, so it
    # dials in with a connector of its own; the old one goes once the routes left it
    assert service_changes == {
        ("create", "service-route", "192.168.0.0/24"),
        ("delete", "service-route", "192.168.0.0/22"),
        ("create", "service-connector", "None"),
        ("delete", "service-connector", "None"),
    }
    d.execute(plan)
    assert [c["name"] for c in server.network_named("branch")["connectors"]] == ["cp-branch_2"]
    assert server.snapshot()["branch"]["routes"] == ["192.168.0.0/24", "192.168.200.0/24"]
    assert deployment(world, session, service, narrower).plan().empty


def test_a_service_network_we_did_not_make_is_a_conflict_until_adopted(
    world: SandboxWorld,
    session: Any,
    service: FakeServer,
    calls: CallLog,
    capsys: pytest.CaptureFixture[str],
):
    server = fake(service)
    with server.lock:
        theirs = server._create_network({
            "name": "hq", "description": "made in the portal", "routes": [{"value": "10.250.0.0/24"}],
            "connectors": [{"name": "theirs", "vpnRegionId": "us-east-1"}],
        })  # fmt: skip
    before, held = snapshot(session), server.snapshot()
    server.calls.clear()
    path = topology_file(world)
    assert run(["apply", "-f", str(path), "--yes"]) == 3
    assert "already has a network named hq" in capsys.readouterr().out
    assert snapshot(session) == before and server.snapshot() == held
    assert calls.mutating == [] and server.mutating_calls() == []

    def adopt(doc: dict[str, Any]) -> None:
        doc["networks"]["hq"]["adopt_service_network"] = True

    d = deployment(world, session, service, adopt)
    d.apply()
    hq = server.snapshot()["hq"]
    assert hq["description"] == "made in the portal"  # still theirs
    assert hq["routes"] == ["10.0.0.0/18", "10.250.0.0/24"]  # theirs kept, ours added
    assert hq["connectors"] == ["cp-hq", "theirs"] and hq["egress"] is True
    deployment(world, session, service, adopt).destroy()
    after = server.snapshot()
    assert after == {"hq": {**held["hq"], "egress": True}}  # only ours went
    assert after["hq"]["connectors"] == ["theirs"] and theirs["id"] in server.state.networks
    assert snapshot(session) == before


def test_destroy_takes_the_vms_first_and_a_failure_is_finished_by_the_next_run(
    world: SandboxWorld, session: Any, service: FakeServer
):
    before = snapshot(session)
    deployment(world, session, service).apply()
    fake(service).fail("DELETE", r"^/api/v1/networks/[^/]+$", 400, "", "injected", times=1)
    with pytest.raises(CloudError) as failed:
        deployment(world, session, service).destroy()
    done = "\n".join(failed.value.done)
    assert "hq: delete connector" in done and "branch: delete connector" in done  # VMs first
    assert any("cloudconnexa: delete service-network" in x for x in failed.value.not_done)
    assert len(fake(service).snapshot()) >= 1
    deployment(world, session, service).destroy()  # the next run finishes
    assert fake(service).snapshot() == {} and snapshot(session) == before
    assert not (world.directory / "partner.ovpn").exists()


@pytest.mark.parametrize(
    ("method", "pattern"),
    [("POST", r"^/api/v1/networks$"), ("POST", r"/profile$")],
    ids=["create network", "make profile"],
)
def test_a_failed_service_write_during_apply_is_finished_by_apply(
    world: SandboxWorld, session: Any, service: FakeServer, method: str, pattern: str
):
    before = snapshot(session)
    fake(service).fail(method, pattern, 400, "", "injected refusal", times=1)
    with pytest.raises(CloudError) as failed:
        deployment(world, session, service).apply()
    assert "injected refusal" in str(failed.value)
    result = deployment(world, session, service).apply()
    assert result.done
    assert deployment(world, session, service).plan().empty
    assert len(fake(service).snapshot()) == 3
    deployment(world, session, service).destroy()
    assert fake(service).snapshot() == {} and snapshot(session) == before


def test_status_names_what_the_service_lacks(
    world: SandboxWorld, session: Any, service: FakeServer, capsys: pytest.CaptureFixture[str]
):
    path = topology_file(world)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    online(service)
    capsys.readouterr()
    assert run(["status", "-f", str(path)]) == 0
    assert "connector: ONLINE at 100.96." in capsys.readouterr().out
    server = fake(service)
    hq = next(n for n in server.state.networks.values() if n["name"] == "hq")
    with server.lock:
        for route in server._routes_of(hq["id"]):
            del server.state.routes[route["id"]]
        hq["egress"] = False
    assert run(["status", "-f", str(path)]) == 1
    text = capsys.readouterr().out
    assert "10.0.0.0/18 MISSING" in text and "egress:    off (the file says on)" in text
    assert run(["status", "-f", str(path), "--json"]) == 1
    import json

    doc = json.loads(capsys.readouterr().out)
    hq_status = next(n for n in doc["networks"] if n["name"] == "hq")["service"]
    assert hq_status["routes"] == [{"subnet": "10.0.0.0/18", "state": "MISSING"}]
    assert hq_status["healthy"] is False


def test_a_connector_the_service_makes_anew_hands_the_cloud_a_new_profile(
    world: SandboxWorld, session: Any, service: FakeServer
):
    deployment(world, session, service).apply()
    first = stored_profile(session, world)
    server = fake(service)
    hq = next(n for n in server.state.networks.values() if n["name"] == "hq")
    with server.lock:  # someone deletes our connector in the portal (after adding another)
        server._add_connector(hq["id"], {"name": "spare", "vpnRegionId": "eu-central-1"})
        ours = next(c for c in server._connectors_of(hq["id"]) if c["name"] == "cp-hq")
        del server.state.connectors[ours["id"]]
    d = deployment(world, session, service)
    plan = d.plan()
    hq_changes = {(c.action.value, c.kind.value) for c in plan.changes if c.network == "hq"}
    assert ("update", "part") in hq_changes and ("create", "connector") in hq_changes
    assert ("delete", "connector") in hq_changes  # made before break: the old one after
    assert any(c.kind.value == "service-connector" for c in plan.changes)
    d.execute(plan)
    second = stored_profile(session, world)
    assert second != first and "connector cp-hq" in second
    assert deployment(world, session, service).plan().empty


def test_networks_of_ours_that_left_the_file_are_listed_and_pruned_only_when_asked(
    world: SandboxWorld, session: Any, service: FakeServer
):
    deployment(world, session, service).apply()

    def without_partner(doc: dict[str, Any]) -> None:
        del doc["networks"]["partner"]

    plan = deployment(world, session, service, without_partner).plan()
    notes = "\n".join(n for p in plan.networks for n in p.notes)
    assert "partner: a network of ours on the VPN service that is no longer in the file" in notes
    assert not any(c.network == "cloudconnexa" for c in plan.changes)
    pruned = deployment(world, session, service, without_partner).plan(prune=True)
    assert [(c.action.value, c.label) for c in pruned.changes if c.network == "cloudconnexa"] == [
        ("delete", "partner")
    ]
    deployment(world, session, service, without_partner).apply(prune=True)
    assert "partner" not in fake(service).snapshot()


def test_a_token_that_expires_mid_run_is_renewed_once(
    world: SandboxWorld, session: Any, service: FakeServer
):
    d = deployment(world, session, service)
    plan = d.plan()
    fake(service).expire_tokens()
    d.execute(plan)  # the first write meets a 401: one new token, and on
    tokens = [c for c in fake(service).calls if c.verb == "token"]
    assert len(tokens) == 2
    fake(service).expire_tokens()
    fake(service).credentials.clear()  # the credential itself revoked: fail, clearly
    with pytest.raises(CloudError) as failed:
        deployment(world, session, service).plan()
    assert "refused the API credentials" in str(failed.value)


def test_throttling_is_waited_out_as_the_api_asks(service: FakeServer):
    waits: list[float] = []
    api = Api(service.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, sleep=waits.append)
    fake(service).fail("GET", r"^/api/v1/regions$", 429, "", "Too Many Requests", times=2,
                       retry_after="3")  # fmt: skip
    assert api.call("GET", "/regions")
    assert len(waits) == 2 and all(3 <= w <= 20 for w in waits)
    fake(service).fail("GET", r"^/api/v1/regions$", 429, "", "Too Many Requests", times=9)
    with pytest.raises(CloudError) as failed:
        api.call("GET", "/regions")
    assert "still throttled" in str(failed.value)


def test_pages_are_followed_to_the_last(service: FakeServer):
    api = Api(service.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    server = fake(service)
    with server.lock:
        for i in range(230):
            server._create_network({"name": f"n{i}", "connectors": [
                {"name": "c", "vpnRegionId": "eu-central-1"}]})  # fmt: skip
    server.calls.clear()
    assert len(api.pages("/networks")) == 230
    assert [c.verb for c in server.calls if c.kind == "networks"] == ["list"] * 3  # 100 a page


def test_bad_input_and_missing_credentials_change_nothing_anywhere(
    world: SandboxWorld,
    session: Any,
    service: FakeServer,
    calls: CallLog,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    def bad(edit: Callable[[dict[str, Any]], None]) -> str:
        path = topology_file(world, edit)
        code = run(["plan", "-f", str(path)])
        said = [x for x in capsys.readouterr().err.splitlines() if not x.lstrip().startswith("..")]
        assert len(said) == 1, said  # one line (besides the progress of reading)
        return f"{code} {said[0]}"

    def cloud_id(doc: dict[str, Any]) -> None:
        doc["service"]["cloudconnexa"]["cloud_id"] = "Acme Corp!"

    def profile(doc: dict[str, Any]) -> None:
        doc["networks"]["hq"]["connector"]["profile"] = "hq.ovpn"

    def region(doc: dict[str, Any]) -> None:
        doc["networks"]["branch"]["connector"]["vpn_region"] = "xx-nowhere-9"

    def region_format(doc: dict[str, Any]) -> None:
        doc["service"]["cloudconnexa"]["vpn_region"] = "Frankfurt"

    said = bad(cloud_id)
    assert said.startswith("2 ") and "service.cloudconnexa.cloud_id" in said
    said = bad(region_format)
    assert said.startswith("2 ") and "service.cloudconnexa.vpn_region: 'Frankfurt'" in said
    said = bad(profile)
    assert said.startswith("2 ") and "networks.hq.connector.profile" in said
    assert calls.calls == [] and fake(service).calls == []  # not even a read
    said = bad(region)  # known only from the API's list: bad input at the first read
    assert said.startswith("2 ") and "networks.branch.connector.vpn_region" in said
    assert "'xx-nowhere-9' is not a VPN region" in said
    assert calls.mutating == [] and fake(service).mutating_calls() == []
    calls.clear()
    fake(service).calls.clear()
    monkeypatch.delenv("CLOUDCONNEXA_CLIENT_SECRET")
    said = bad(lambda doc: None)
    assert said.startswith("1 ") and "CLOUDCONNEXA_CLIENT_SECRET" in said
    assert calls.calls == [] and fake(service).calls == []  # nothing read on either side


def _narrower(doc: dict[str, Any]) -> None:
    doc["networks"]["branch"]["subnets"] = ["192.168.0.0/24"]


def _branch_egress(doc: dict[str, Any]) -> None:
    doc["networks"]["hq"]["connector"]["egress"] = False
    doc["networks"]["hq"]["connector"]["nat"] = True
    doc["networks"]["branch"]["connector"]["egress"] = True


def _other_region(doc: dict[str, Any]) -> None:
    doc["networks"]["branch"]["connector"]["vpn_region"] = "us-west-1"


@pytest.mark.parametrize(
    ("edit", "method", "pattern"),
    [
        (_narrower, "POST", r"^/api/v1/networks/routes$"),
        (_narrower, "DELETE", r"^/api/v1/networks/routes/"),
        (_branch_egress, "PUT", r"^/api/v1/networks/[^/]+$"),
        (_other_region, "POST", r"^/api/v1/networks/connectors$"),
        (_other_region, "DELETE", r"^/api/v1/networks/connectors/"),
    ],
    ids=["add route", "remove route", "egress flag", "new connector", "old connector"],
)
def test_each_service_write_of_a_change_is_finished_by_the_next_apply(
    world: SandboxWorld,
    session: Any,
    service: FakeServer,
    edit: Callable[[dict[str, Any]], None],
    method: str,
    pattern: str,
):
    """The file changes after a first apply; the service refuses the write once; the next
    apply finishes, and the one after has nothing to do."""
    deployment(world, session, service).apply()
    fake(service).fail(method, pattern, 400, "", "injected refusal", times=1)
    with pytest.raises(CloudError) as failed:
        deployment(world, session, service, edit).apply()
    assert "injected refusal" in str(failed.value) and failed.value.not_done
    deployment(world, session, service, edit).apply()
    left = deployment(world, session, service, edit).plan()
    assert left.empty, [c.summary() for c in left.changes]
    held = fake(service).snapshot()
    if edit is _narrower:
        assert held["branch"]["routes"] == ["192.168.0.0/24"]
    if edit is _branch_egress:
        assert (held["hq"]["egress"], held["branch"]["egress"]) == (False, True)
    if edit is _other_region:
        branch = next(n for n in fake(service).state.networks.values() if n["name"] == "branch")
        regions = [c["vpnRegionId"] for c in fake(service)._connectors_of(branch["id"])]
        assert regions == ["us-west-1"]


def test_a_network_that_left_the_file_is_listed_in_both_halves_and_pruned_only_when_asked(
    world: SandboxWorld, session: Any, service: FakeServer, calls: CallLog
):
    """Apply the world, remove branch from the file: plan says that branch's connector (and its
    network on the service) are ours and left behind, changes nothing of them; apply --prune
    removes both halves, the VM before the service's network."""
    before = snapshot(session, regions=("us-west-2",))
    deployment(world, session, service).apply()

    def without_branch(doc: dict[str, Any]) -> None:
        del doc["networks"]["branch"]

    plan = deployment(world, session, service, without_branch).plan()
    notes = {p.network: " ".join(p.notes) for p in plan.networks}
    assert "connector of ours (aws vpc-" in notes["branch"] and "apply --prune" in notes["branch"]
    assert "branch: a network of ours on the VPN service" in notes["cloudconnexa"]
    assert not [c for c in plan.changes if c.network == "branch" or c.label == "branch"]
    calls.clear()
    fake(service).calls.clear()
    result = deployment(world, session, service, without_branch).apply(prune=True)
    order = [c.summary() for c in result.done if c.network == "branch" or c.label == "branch"]
    assert order[-1].startswith("delete service-network branch")  # after the cloud half
    assert any(s.startswith("delete connector") for s in order[:-1])
    after = snapshot(session, regions=("us-west-2",))
    assert {k: v for k, v in after.items() if k != "iam"} == {
        k: v for k, v in before.items() if k != "iam"
    }  # branch's cloud half gone: its VPC as before apply
    assert not [r for r in after["iam"]["roles"] if r.startswith("cp-branch-")]  # its role too
    assert "branch" not in fake(service).snapshot()
    again = deployment(world, session, service, without_branch).plan(prune=True)
    assert again.empty, [c.summary() for c in again.changes]


def _two_clouds(
    world: SandboxWorld, session: Any, service: FakeServer, gcp: GcpWorld
) -> tuple[dict[str, Any], dict[str, Any], Path, Clouds]:
    """hq and branch on AWS, spoke on GCP, every profile from the service: (the document,
    spoke's entry in it, where to write it, the clouds)."""
    doc = world.topology(service=True)
    spoke = gcp.entry(gcp.spoke, "unused.ovpn")
    spoke["connector"].pop("profile")
    doc["networks"]["spoke"] = spoke
    path = world.directory / "two-clouds.yaml"
    clouds = Clouds(
        options={
            "aws": {"session": session, "poll_seconds": 0.0},
            "gcp": {"endpoint": gcp.url, "progress_seconds": 5.0},
            "cloudconnexa": {"base_url": service.url, "client_id": SANDBOX_CLIENT_ID,
                             "client_secret": SANDBOX_CLIENT_SECRET, "sleep": lambda s: None},
        }
    )  # fmt: skip
    return doc, spoke, path, clouds


def test_a_network_that_left_the_file_is_found_where_the_service_says_on_any_cloud(
    world: SandboxWorld, session: Any, service: FakeServer, gcp: GcpWorld
):
    """spoke on GCP and hq on AWS: spoke leaves the file, and no network left in it is on GCP.
    The service's description of spoke's network says where its cloud half lives, so plan
    looks there and names spoke's connector; apply --prune removes it from GCP and the
    service, leaving the project as it was before apply."""
    before = gcp.snapshot()
    doc, spoke, path, clouds = _two_clouds(world, session, service, gcp)
    path.write_text(yaml.safe_dump(doc))
    Deployment(load_topology(path), clouds).apply()
    assert gcp.snapshot() != before
    assert place_from_text(fake(service).snapshot()["spoke"]["description"])[0] == "gcp"

    del doc["networks"]["spoke"]
    path.write_text(yaml.safe_dump(doc))
    plan = Deployment(load_topology(path), clouds).plan()
    notes = {p.network: " ".join(p.notes) for p in plan.networks}
    assert "connector of ours (gcp network " in notes["spoke"]
    assert "apply --prune" in notes["spoke"]
    Deployment(load_topology(path), clouds).apply(prune=True)
    assert gcp.snapshot() == before
    assert "spoke" not in fake(service).snapshot()
    assert Deployment(load_topology(path), clouds).plan(prune=True).empty


def test_without_a_service_block_plan_still_lists_connectors_of_ours_left_behind(
    world: SandboxWorld, session: Any
):
    """In the regions the file names: a second VPC in HQ's region, applied, then removed from
    the file."""
    from provisioner.providers.aws.world import seed_vpc

    extra = seed_vpc(session, "extra", "us-east-1", "10.30.0.0/16", ["10.30.0.0/24"], 0)
    before = snapshot(session, regions=("us-east-1",))
    clouds = Clouds(options={"aws": {"session": session, "poll_seconds": 0.0}})
    path = world.directory / "plain.yaml"
    doc = world.topology(partner=True)
    (world.directory / "extra.ovpn").write_text("client\nremote x 1194\n<key>\nk\n</key>\n")
    doc["networks"]["extra"] = {"cloud": "aws", "region": "us-east-1", "vpc": extra.vpc,
                                "connector": {"subnet": extra.connector_subnet,
                                              "profile": "extra.ovpn"}}  # fmt: skip
    path.write_text(yaml.safe_dump(doc))
    Deployment(load_topology(path), clouds).apply()
    del doc["networks"]["extra"]
    path.write_text(yaml.safe_dump(doc))
    plan = Deployment(load_topology(path), clouds).plan()
    left = next(p for p in plan.networks if p.network == "extra")
    assert not left.changes and "no longer in the file" in left.notes[0]
    assert extra.vpc in left.notes[0]
    Deployment(load_topology(path), clouds).apply(prune=True)
    # extra's half gone; hq's routes to extra gone with it (no longer a peer)
    after = snapshot(session, regions=("us-east-1",))
    assert after != before  # hq's own connector is there ...
    Deployment(load_topology(path), clouds).destroy()
    assert snapshot(session, regions=("us-east-1",)) == before  # ... and nothing else was left


def _adopted(doc: dict[str, Any]) -> None:
    doc["networks"]["hq"]["adopt_service_network"] = True


@pytest.mark.parametrize(
    ("method", "pattern"),
    [("DELETE", r"^/api/v1/networks/routes/"), ("DELETE", r"^/api/v1/networks/connectors/")],
    ids=["our route", "our connector"],
)
def test_each_service_write_of_destroy_on_an_adopted_network_is_finished_by_destroy(
    world: SandboxWorld, session: Any, service: FakeServer, method: str, pattern: str
):
    server = fake(service)
    with server.lock:
        server._create_network({"name": "hq", "description": "made in the portal",
                                "connectors": [{"name": "theirs", "vpnRegionId": "us-east-1"}]})  # fmt: skip
    held = server.snapshot()["hq"]
    deployment(world, session, service, _adopted).apply()
    server.fail(method, pattern, 400, "", "injected refusal", times=1)
    with pytest.raises(CloudError) as failed:
        deployment(world, session, service, _adopted).destroy()
    assert "injected refusal" in str(failed.value) and failed.value.not_done
    deployment(world, session, service, _adopted).destroy()
    assert server.snapshot() == {"hq": {**held, "egress": True}}


def test_a_failed_prune_on_the_service_is_finished_by_the_next_apply(
    world: SandboxWorld, session: Any, service: FakeServer
):
    deployment(world, session, service).apply()

    def without_partner(doc: dict[str, Any]) -> None:
        del doc["networks"]["partner"]

    fake(service).fail("DELETE", r"^/api/v1/networks/[^/]+$", 400, "", "injected", times=1)
    with pytest.raises(CloudError):
        deployment(world, session, service, without_partner).apply(prune=True)
    deployment(world, session, service, without_partner).apply(prune=True)
    assert "partner" not in fake(service).snapshot()
    assert deployment(world, session, service, without_partner).plan(prune=True).empty


def test_the_services_access_groups_decide_the_vpn_hop_and_status_says_so(
    world: SandboxWorld, session: Any, service: FakeServer, capsys: pytest.CaptureFixture[str]
):
    """With the account's topology CUSTOM, the service refuses what no access group allows
    before any cloud sees it: the doctor reads the setting and the groups (read-only) and
    judges the VPN hop with them; a credential that may not read them makes it UNKNOWN."""
    from provisioner.providers.aws.world import add_app_host

    for vpc in (world.hq, world.branch):
        add_app_host(session, vpc)
    path = str(topology_file(world))
    assert run(["apply", "-f", path, "--yes"]) == 0
    online(service)
    capsys.readouterr()
    server = fake(service)
    assert run(["doctor", "-f", path]) == 0  # FULL_MESH: every flow allowed
    capsys.readouterr()
    hq = server.network_named("hq")
    branch = server.network_named("branch")
    assert hq is not None and branch is not None
    server.set_topology("CUSTOM")
    with server.lock:
        server.state.access_groups.clear()
    server.add_access_group(
        "branch to hq",
        [{"type": "NETWORK_SERVICE", "allCovered": True, "parent": branch["id"]}],
        [{"type": "NETWORK_SERVICE", "allCovered": True, "parent": hq["id"]}],
    )
    reports = deployment(world, session, service).doctor()
    remote = next(r for r in reports if r.kind == "remote-access" and " hq " in r.flow)
    dropped = remote.dropped_at
    assert dropped is not None and dropped.what == "VPN service access groups"
    assert "CUSTOM" in dropped.detail and not dropped.apply_fixes
    site = next(r for r in reports if r.kind == "site-to-site" and r.flow.startswith("branch (")
                and " hq " in r.flow)  # fmt: skip
    assert site.ok, site.dropped_at
    assert any(h.what == "VPN service access groups" and "'branch to hq'" in h.detail
               for h in site.hops)  # fmt: skip
    assert run(["status", "-f", path]) == 0
    assert "access:    topology CUSTOM: the service's access groups decide: no VPN user" in (
        capsys.readouterr().out
    )
    server.add_access_group(
        "users to hq",
        [{"type": "USER_GROUP", "allCovered": True}],
        [{"type": "NETWORK_SERVICE", "allCovered": True, "parent": hq["id"]}],
    )
    remote = next(r for r in deployment(world, session, service).doctor()
                  if r.kind == "remote-access" and " hq " in r.flow)  # fmt: skip
    assert remote.ok, remote.dropped_at
    # a credential that may not read settings: the service's hop cannot be judged
    server.faults.add("GET", "/settings/wpc/topology$", 403, "Forbidden", "Access Forbidden",
                      times=10)  # fmt: skip
    assert run(["doctor", "-f", path]) == 5
    text = capsys.readouterr().out
    assert "at VPN service access groups: not read" in text and "403" in text


def test_on_gcp_a_replaced_connector_dials_in_with_its_own_and_the_service_says_when(
    world: SandboxWorld, session: Any, service: FakeServer, gcp: GcpWorld
):
    """spoke on GCP with its profile from the service: a new size makes the VM beside the old
    one (the member's other instance name) with a connector of its own on the service; the
    routes move when the service says it is ONLINE (the VM's guest attribute never says so
    here); then the old VM and the old connector go."""
    doc, spoke, path, clouds = _two_clouds(world, session, service, gcp)
    path.write_text(yaml.safe_dump(doc))
    Deployment(load_topology(path), clouds).apply()
    before = {i["name"] for i in gcp.gce.resources("instances") if i["name"].startswith("cp-")}
    gcp.gce.vms_report_ready = False  # only the service can say the new VM is up
    spoke["connector"]["size"] = "e2-standard-2"
    path.write_text(yaml.safe_dump(doc))
    plan = Deployment(load_topology(path), clouds).plan()
    (ready,) = [c for c in plan.changes if c.network == "spoke" and c.kind.value == "ready"]
    assert ready.target == "vpn-service"
    Deployment(load_topology(path), clouds).apply()
    after = {i["name"] for i in gcp.gce.resources("instances") if i["name"].startswith("cp-")}
    assert len(after) == 1 and not after & before and next(iter(after)).endswith("-r")
    connectors = fake(service).network_named("spoke")["connectors"]
    assert [c["name"] for c in connectors] == ["cp-spoke_2"]
    assert Deployment(load_topology(path), clouds).plan().empty


def test_an_interrupted_apply_counts_every_change_of_both_halves(
    world: SandboxWorld, session: Any, service: FakeServer
):
    """A cloud change fails after the service's half was made: `stopped after N of M` counts
    the service's changes too, N as the list of what was done, M as the plan."""
    from conftest import FORBIDDEN, error_response, inject

    # (before the clients are made: each copies the session's hooks)
    inject(session, "ec2", "RunInstances", lambda: error_response("ec2", *FORBIDDEN["ec2"]))
    d = deployment(world, session, service)
    plan = d.plan()
    with pytest.raises(CloudError) as failed:
        d.execute(plan)
    e = failed.value
    assert any(line.startswith("cloudconnexa:") for line in e.done)
    assert f"stopped after {len(e.done)} of {len(plan.changes)} changes" in str(e)
    assert len(e.done) + len(e.not_done) == len(plan.changes)


def test_apply_json_says_what_was_done_and_what_was_not(
    world: SandboxWorld, session: Any, service: FakeServer, capsys: pytest.CaptureFixture[str]
):
    """`apply --json`: one document, the plan and its result: each change done, each not
    done, and the error; the same when it stops half-way."""
    import json

    path = topology_file(world)
    fake(service).fail("POST", r"^/api/v1/networks$", 400, "", "injected refusal", times=1)
    assert run(["apply", "-f", str(path), "--yes", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    result = doc["result"]
    assert "injected refusal" in result["error"] and result["not_done"]
    assert doc["done"] == len(result["done"])
    assert len(result["done"]) + len(result["not_done"]) == sum(
        len(n["changes"]) for n in doc["networks"])  # fmt: skip
    assert run(["apply", "-f", str(path), "--yes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"]["error"] is None and doc["result"]["not_done"] == []
    assert len(doc["result"]["done"]) == doc["done"] > 0
    assert all(": " in line for line in doc["result"]["done"])
