"""A connector pair on OCI (`connector.ha`) against the fake OCI, through the real `oci` SDK:
two connectors in one subnet and two availability domains, the route rules naming a floating
private IP on the active one, the watchdog's move of that IP, each connector's own identity,
and a network that goes from one connector to a pair and back without a moment when its rules
lead nowhere."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import OciWorld, WriteWatch, written

from provisioner.providers.oci.pair import pair_statements
from provisioner.providers.oci.watchdog import OciPrivateIp
from provisioner.render import plan_text, status_text
from provisioner.watchdog import HA_TAG, Settings

OURS = ("100.96.0.0/11", "10.7.0.0/16", "172.31.0.0/16")  # HQ's destinations: VPN, spoke, partner
NAMES = {0: "cp-hq-connector", 1: "cp-hq-connector-2"}


def as_pair(o: OciWorld) -> dict[str, Any]:
    doc = o.topology()
    (o.directory / "hq-b.ovpn").write_text(o.profile_text.format(name="hq-b"))
    c = doc["networks"]["hq"]["connector"]
    c["ha"] = True
    c["profiles"] = [c.pop("profile"), "hq-b.ovpn"]
    return doc


def connectors(o: OciWorld) -> dict[int, dict[str, Any]]:
    """HQ's live connectors by member."""
    return {
        m: i
        for i in o.fake.of_kind("instances")
        for m, name in NAMES.items()
        if i["displayName"] == name and i["lifecycleState"] not in ("TERMINATED", "TERMINATING")
    }


def vnic_of(o: OciWorld, instance: dict[str, Any]) -> dict[str, Any]:
    (a,) = [a for a in o.fake.of_kind("vnicAttachments") if a["instanceId"] == instance["id"]]
    found = o.fake.get(a["vnicId"])
    assert found is not None
    return found


def floating(o: OciWorld) -> list[dict[str, Any]]:
    return [
        p
        for p in o.fake.of_kind("privateIps")
        if not p["isPrimary"] and p["freeformTags"].get(HA_TAG) == "hq"
    ]


def targets(o: OciWorld) -> set[str]:
    """What HQ's rules for our destinations name, over every table of its VCN."""
    return {
        r["networkEntityId"]
        for t in o.fake.of_kind("routeTables")
        if t["vcnId"] == o.hq.vcn
        for r in t["routeRules"]
        if r["destination"] in OURS
    }


def user_data(instance: dict[str, Any]) -> str:
    return base64.b64decode(instance["metadata"]["user_data"]).decode()


def test_a_pair_is_two_connectors_and_the_rules_name_the_floating_ip_on_the_first(
    oci_world: OciWorld,
):
    o = oci_world
    doc = as_pair(o)
    text = plan_text(o.deployment(doc).plan())
    assert "connector pair in" in text and "UpdatePrivateIp" in text
    assert "create front floating private IP on the new connector" in text
    o.deployment(doc).apply()
    pair = connectors(o)
    assert set(pair) == {0, 1}
    # one subnet (what the IP moves within), two availability domains
    assert {vnic_of(o, i)["subnetId"] for i in pair.values()} == {o.hq.connector_subnet}
    assert pair[0]["availabilityDomain"] != pair[1]["availabilityDomain"]
    # every rule names the floating IP, and it is on the first connector's VNIC
    (ip,) = floating(o)
    assert targets(o) == {ip["id"]}
    assert ip["vnicId"] == vnic_of(o, pair[0])["id"]
    assert all(vnic_of(o, i)["skipSourceDestCheck"] for i in pair.values())
    # each connector: its own secret, a dynamic group of itself alone, a policy for its secret
    secrets = {s["secretName"]: s["id"] for s in o.fake.of_kind("secrets")}
    groups = {g["name"]: g for g in o.fake.of_kind("dynamicGroups")}
    policies = {p["name"]: p["statements"] for p in o.fake.of_kind("policies")}
    for member, end in ((0, ""), (1, "-2")):
        group = groups[f"cp-hq-connector{end}"]
        assert group["matchingRule"] == f"ALL {{instance.id = '{pair[member]['id']}'}}"
        secret = secrets[f"cp-hq-vpn-profile{end}"]
        assert policies[f"cp-hq-read-vpn-profile{end}"] == [
            f"Allow dynamic-group cp-hq-connector{end} to read secret-bundles in compartment id "
            f"{o.hq.compartment} where target.secret.id = '{secret}'"
        ]
        text = user_data(pair[member])
        assert secret in text and "connector-watchdog" in text
        unit = written(text, "/etc/systemd/system/connector-watchdog.service")
        assert "ExecStart=/opt/oci-cli/bin/python3 " in unit  # the interpreter with the oci SDK
        settings = json.loads(written(text, "/etc/connector-provisioner/watchdog.json"))
        assert settings == {"cloud": "oci", "network": "hq", "region": o.hq.region,
                            "subnet": o.hq.connector_subnet, "member": member,
                            "settle": 2.0}  # fmt: skip
    assert policies["cp-hq-pair"] == pair_statements(
        ("cp-hq-connector", "cp-hq-connector-2"), o.hq.compartment
    )
    # the watchdog written on the VM carries OCI's mechanism and not AWS's
    source = written(user_data(pair[1]), "/usr/local/sbin/connector-watchdog")
    assert "class OciPrivateIp" in source and "class AwsRoutes" not in source
    again = o.deployment(doc).plan()
    assert again.empty, plan_text(again)
    status = o.deployment(doc).status()
    (hq,) = [s for s in status if s.network == "hq"]
    assert hq.connector is not None and hq.connector.instance == pair[0]["id"]
    assert hq.standby is not None and hq.standby.instance == pair[1]["id"]
    assert hq.healthy and hq.standby_ready
    assert "standby" in status_text(status)


def watchdog(o: OciWorld, instance: dict[str, Any], member: int = 1) -> OciPrivateIp:
    vnic = vnic_of(o, instance)
    settings = Settings(cloud="oci", network="hq", region=o.hq.region, interface=vnic["id"],
                        address=vnic["privateIp"], subnet=o.hq.connector_subnet,
                        member=member)  # fmt: skip
    return OciPrivateIp(settings, o.api().network)


def test_after_the_watchdog_moves_the_ip_apply_leaves_it_there(oci_world: OciWorld):
    o = oci_world
    doc = as_pair(o)
    o.deployment(doc).apply()
    pair = connectors(o)
    standby = watchdog(o, pair[1])
    before = standby.holder()
    assert before is not None and before.address == vnic_of(o, pair[0])["privateIp"]
    assert standby.take_over(before) == 1
    (ip,) = floating(o)
    assert ip["vnicId"] == vnic_of(o, pair[1])["id"]
    assert targets(o) == {ip["id"]}  # the rules were not written: they follow the IP
    # its word: a freeform tag on its primary private IP (UpdatePrivateIp), where status reads
    said = "active, the other member no answer (since 2026-12-07T17:00:00Z)"
    standby.publish(said)
    plan = o.deployment(doc).plan()
    assert plan.empty, plan_text(plan)
    (hq,) = [s for s in o.deployment(doc).status() if s.network == "hq"]
    assert hq.connector is not None and hq.connector.instance == pair[1]["id"]
    words = {m["member"]: m["watchdog"] for m in hq.to_dict()["members"]}
    # (the first's: the sandbox's stand-in, no watchdog runs on the fake's VMs)
    assert words[1] == said and str(words[0]).startswith("active, the other member ok")
    assert f"; watchdog: {said}" in status_text((hq,))
    # the active one is replaced (a new size): the IP moves to the other before it goes
    o.fake.calls.clear()
    doc["networks"]["hq"]["connector"]["size"] = "VM.Standard.E5.Flex"
    o.deployment(doc).apply()
    moves = [c.body.get("vnicId") for c in o.fake.mutating_calls()
             if c.kind == "privateIps" and c.verb == "update"]  # fmt: skip
    first = connectors(o)[0]
    assert moves and moves[0] == vnic_of(o, first)["id"]
    assert floating(o)[0]["vnicId"] == vnic_of(o, first)["id"]
    assert len(floating(o)) == 1 and targets(o) == {floating(o)[0]["id"]}


def rules_lead(o: OciWorld) -> set[str]:
    """Each of HQ's rules for our destinations: "ok" when it names a private IP on the VNIC of
    a running instance (read from the fake's state, under its lock)."""
    res = o.fake.state.resources
    running = {
        a["vnicId"]
        for a in res.values()
        if a["_kind"] == "vnicAttachments"
        and res.get(a["instanceId"], {}).get("lifecycleState") == "RUNNING"
    }
    out = set()
    for t in [r for r in res.values() if r["_kind"] == "routeTables" and r["vcnId"] == o.hq.vcn]:
        for rule in t["routeRules"]:
            if rule["destination"] in OURS:
                ip = res.get(rule["networkEntityId"])
                out.add("ok" if ip is not None and ip["vnicId"] in running else "NOWHERE")
    return out


@pytest.fixture
def rule_watch(oci_world: OciWorld) -> Iterator[WriteWatch]:
    with WriteWatch(oci_world.fake, lambda: rules_lead(oci_world)).installed() as watch:
        yield watch


def test_one_connector_to_a_pair_and_back_never_leaves_the_rules_leading_nowhere(
    oci_world: OciWorld, rule_watch: WriteWatch
):
    o = oci_world
    before = o.snapshot()
    o.deployment().apply()
    (alone,) = connectors(o).values()
    rule_watch.seen.clear()
    # one -> pair: the connector launched alone lacks the watchdog, so it is replaced; the
    # second is launched first, the floating IP made on it and the rules moved to it
    doc = as_pair(o)
    plan = o.deployment(doc).plan()
    assert any("without the pair's watchdog" in c.why for c in plan.changes)
    o.deployment(doc).apply()
    assert rule_watch.seen and rule_watch.nowhere == []
    pair = connectors(o)
    assert alone["id"] not in {i["id"] for i in pair.values()}
    (ip,) = floating(o)
    assert ip["vnicId"] == vnic_of(o, pair[1])["id"]  # the one that stayed up throughout
    assert targets(o) == {ip["id"]}
    assert o.deployment(doc).plan().empty
    # pair -> one: the rules move to the connector that stays, then the floating IP and the
    # other connector go, with everything of the pair (its secret, group, policies)
    rule_watch.seen.clear()
    o.deployment().apply()
    assert rule_watch.seen and rule_watch.nowhere == []
    (single,) = connectors(o).values()
    assert single["id"] == pair[0]["id"]  # launched for a pair, fine alone
    assert floating(o) == [] and targets(o) == {
        p["id"] for p in o.fake.of_kind("privateIps") if p["vnicId"] == vnic_of(o, single)["id"]
    }
    assert not {"cp-hq-connector-2", "cp-hq-pair", "cp-hq-read-vpn-profile-2"} & {
        x["name"] for x in o.fake.of_kind("dynamicGroups") + o.fake.of_kind("policies")
    }
    assert o.deployment().plan().empty
    o.deployment().destroy()
    assert o.snapshot() == before  # nothing of the pair left behind (secrets: pending deletion)


def test_destroy_of_a_pair_leaves_the_tenancy_as_it_was(oci_world: OciWorld):
    o = oci_world
    before = o.snapshot()
    doc = as_pair(o)
    o.deployment(doc).apply()
    watchdog(o, connectors(o)[1]).take_over(None)  # wherever the IP is
    o.deployment(doc).destroy()
    assert o.snapshot() == before
    o.fake.calls.clear()
    assert o.deployment(doc).destroy().done == ()
    assert o.mutating() == []


# --- the watchdog's permissions, against the calls it makes -----------------------------------


def _statement_allows(statement: str, kind: str, verb: str, operation: str) -> bool:
    """Does one of our statements allow a call: `verb` on `kind` (OCI's resource type) during
    `operation`? Only the forms pair_statements writes are read."""
    m = re.match(
        r"^Allow dynamic-group (\S+) to (inspect|read|use|manage) (\S+) in compartment id (\S+)"
        r"(?: where request\.operation = '(\w+)')?$",
        statement,
    )
    assert m, statement
    levels = ("inspect", "read", "use", "manage")
    return (
        m.group(3) == kind
        and levels.index(m.group(2)) >= levels.index(verb)
        and (m.group(5) is None or m.group(5) == operation)
    )


# what each call the watchdog makes needs, by OCI's policy reference: ListPrivateIps and
# GetPrivateIp PRIVATE_IP_READ (inspect private-ips); UpdatePrivateIp PRIVATE_IP_UPDATE (use
# private-ips) and VNIC_ASSIGN and VNIC_UNASSIGN (use vnics)
NEEDS = {
    ("privateIps", "list"): [("private-ips", "inspect")],
    ("privateIps", "get"): [("private-ips", "inspect")],
    ("privateIps", "update"): [("private-ips", "use"), ("vnics", "use")],
}
OPERATIONS = {"list": "ListPrivateIps", "get": "GetPrivateIp", "update": "UpdatePrivateIp"}


def test_the_pair_policy_is_exactly_what_the_watchdog_needs(oci_world: OciWorld):
    o = oci_world
    doc = as_pair(o)
    o.deployment(doc).apply()
    (policy,) = [p for p in o.fake.of_kind("policies") if p["name"] == "cp-hq-pair"]
    mine = [s for s in policy["statements"] if "cp-hq-connector-2 " in s]
    o.fake.calls.clear()
    standby = watchdog(o, connectors(o)[1])
    standby.take_over(standby.holder())
    standby.holder()
    standby.publish("active (since 2026-12-07T17:00:00Z)")  # its word, on the floating IP
    calls = [(c.kind, c.verb) for c in o.fake.calls]
    assert ("privateIps", "update") in calls
    used = set()
    for kind, verb in calls:
        for resource, level in NEEDS[(kind, verb)]:
            allowing = [s for s in mine if _statement_allows(s, resource, level, OPERATIONS[verb])]
            assert allowing, f"{kind}.{verb} needs {level} {resource}"
            used.update(allowing)
    assert used == set(mine)  # every statement is needed
    # and nothing more: not a write outside the move, not another operation
    assert not any(_statement_allows(s, "private-ips", "use", "DeletePrivateIp") for s in mine)
    assert not any(_statement_allows(s, "vnics", "use", "UpdateVnic") for s in mine)
    assert not any(_statement_allows(s, "route-tables", "inspect", "") for s in mine)
    assert not any(_statement_allows(s, "secret-bundles", "read", "") for s in mine)


def test_with_the_service_both_connectors_belong_to_the_one_service_network(
    oci_world: OciWorld, service
):
    """The VPN service's half from the same file: the service makes cp-hq and cp-hq-2 in HQ's
    one service network, and each connector's own secret holds its own profile."""
    from provisioner.api import Deployment
    from provisioner.cloudconnexa.fake import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
    from provisioner.sandbox import VPN_REGION
    from provisioner.spec import load_topology

    o = oci_world
    doc = o.topology()
    doc["service"] = {"cloudconnexa": {"cloud_id": "sandbox", "vpn_region": VPN_REGION}}
    for entry in doc["networks"].values():
        entry.get("connector", {}).pop("profile", None)
    doc["networks"]["partner"]["connector"] = {"profile_out": "partner.ovpn"}
    doc["networks"]["hq"]["connector"]["ha"] = True
    clouds = o.clouds()
    clouds.options["cloudconnexa"] = {"base_url": service.url, "client_id": SANDBOX_CLIENT_ID,
                                      "client_secret": SANDBOX_CLIENT_SECRET, "sleep": lambda s: None}  # fmt: skip
    d = Deployment(load_topology(o.write(doc)), clouds)
    d.apply()
    assert service.fake.snapshot()["hq"]["connectors"] == ["cp-hq", "cp-hq-2"]
    secrets = {s["secretName"]: s["id"] for s in o.fake.of_kind("secrets")}
    first = o.fake.secret_content(secrets["cp-hq-vpn-profile"]) or ""
    second = o.fake.secret_content(secrets["cp-hq-vpn-profile-2"]) or ""
    assert "# connector cp-hq (" in first and "# connector cp-hq-2 (" in second
    assert Deployment(load_topology(o.write(doc)), clouds).plan().empty
    # status: each member with the service's connection status and its watchdog's word (the
    # sandbox's stand-in on the floating IP: no watchdog runs on the fake's VMs)
    (hq,) = [x for x in d.status() if x.network == "hq"]
    members = hq.to_dict()["members"]
    assert all(m["service"]["connection_status"] for m in members)
    assert [str(m["watchdog"]).split(",")[0] for m in members] == ["active", "standby"]


# --- a pair's own steps, failing once: the next apply finishes, destroy cleans up -------------

PAIR_STEPS = [
    ("POST", r"/privateIps$", 0),  # the floating IP
    ("POST", r"/policies$", 2),  # the pair's policy (after the two connectors' own)
    ("POST", r"/dynamicGroups$", 1),  # the second connector's group
    ("PUT", r"/routeTables/", 1),  # half-way through the rules naming the floating IP
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, path, after", PAIR_STEPS, ids=[f"{m} {p} #{a}" for m, p, a in PAIR_STEPS]
)
def test_a_pair_step_that_fails_is_finished_by_apply_and_cleaned_by_destroy(
    method, path, after, oci_world: OciWorld
):
    from conftest import apply_survives
    from test_oci_faults import FORBIDDEN

    o = oci_world
    apply_survives(o, lambda: o.fake.fail(method, path, *FORBIDDEN, after=after),
                   "NotAuthorizedOrNotFound", doc=as_pair(o))  # fmt: skip


# --- a single connector replaced without an outage: with the service block (issue 29) ---------


def _served(o: OciWorld, service: Any, **hq: Any) -> Any:
    """HQ and spoke with their profiles from the VPN service (the fake), on the fake OCI."""
    from provisioner import Deployment, load_topology
    from provisioner.cloudconnexa.fake import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
    from provisioner.providers import Clouds

    doc = o.topology(**hq)
    doc["service"] = {"cloudconnexa": {"cloud_id": "sandbox", "vpn_region": "eu-central-1"}}
    for entry in doc["networks"].values():
        entry.get("connector", {}).pop("profile", None)
    clouds = Clouds(options={
        "oci": {"endpoint": o.url, "progress_seconds": 5.0, **o.options},
        "cloudconnexa": {"base_url": service.url, "client_id": SANDBOX_CLIENT_ID,
                         "client_secret": SANDBOX_CLIENT_SECRET, "sleep": lambda s: None},
    })  # fmt: skip
    return Deployment(load_topology(o.write(doc, "served.yaml")), clouds)


def vnic_ip(o: OciWorld, instance: dict[str, Any]) -> str:
    """The primary private IP's id of the instance's VNIC: what a rule to it names."""
    vnic = vnic_of(o, instance)
    (ip,) = [
        p for p in o.fake.of_kind("privateIps") if p["vnicId"] == vnic["id"] and p["isPrimary"]
    ]
    return str(ip["id"])


def _instances(o: OciWorld) -> list[dict[str, Any]]:
    return [i for i in o.fake.of_kind("instances") if i["displayName"] == NAMES[0]
            and i["lifecycleState"] not in ("TERMINATED", "TERMINATING")]  # fmt: skip


def test_with_the_service_a_replaced_connector_is_made_before_the_old_one_goes(
    oci_world: OciWorld, rule_watch: WriteWatch, service: Any
):
    """With the service block the VPN service says when the new VM is up. A new shape: the new
    instance beside the old one with a connector of its own on the service, the rules moved
    (one guarded write per table) once that connector is ONLINE, then the old instance, then
    the old connector."""
    o = oci_world
    before = o.snapshot()
    _served(o, service).apply()
    (old,) = _instances(o)
    rule_watch.seen.clear()
    plan = _served(o, service, size="VM.Standard.E5.Flex").plan()
    hq = [c for c in plan.changes if c.network == "hq"]
    kinds = [c.kind.value for c in hq]
    assert kinds.index("connector") < kinds.index("ready") < kinds.index("route")
    assert (hq[-1].action.value, hq[-1].kind.value, hq[-1].resource) == (
        "delete", "connector", old["id"])  # fmt: skip
    assert hq[kinds.index("ready")].target == "vpn-service"
    _served(o, service, size="VM.Standard.E5.Flex").apply()
    assert rule_watch.seen and rule_watch.nowhere == [], rule_watch.seen
    (new,) = _instances(o)
    assert new["id"] != old["id"] and new["shape"] == "VM.Standard.E5.Flex"
    assert targets(o) == {vnic_ip(o, new)}
    names = [c["name"] for c in service.fake.network_named("hq")["connectors"]]
    assert names == ["cp-hq_2"]
    assert _served(o, service, size="VM.Standard.E5.Flex").plan().empty
    _served(o, service, size="VM.Standard.E5.Flex").destroy()
    assert o.snapshot() == before


def test_with_the_service_an_interrupted_replacement_is_finished_and_cleaned(
    oci_world: OciWorld, rule_watch: WriteWatch, service: Any
):
    """Stopped with the new instance launched and its connector not yet ONLINE: the rules
    stay on the old one; the next apply launches no third, waits for the service, moves the
    rules, removes the old instance and connector; destroy leaves the compartment as it was."""
    from provisioner import CloudError

    o = oci_world
    before = o.snapshot()
    _served(o, service).apply()
    (old,) = _instances(o)
    rule_watch.seen.clear()
    service.fake.online_with_profile = False
    impatient = _served(o, service, size="VM.Standard.E5.Flex")
    impatient.clouds.options["oci"]["wait_seconds"] = 0.3
    with pytest.raises(CloudError) as failed:
        impatient.apply()
    assert "cp-hq_2 on the VPN service" in str(failed.value)
    assert len(_instances(o)) == 2 and targets(o) == {vnic_ip(o, old)}
    again = _served(o, service, size="VM.Standard.E5.Flex").plan()
    assert not [
        c for c in again.changes if c.action.value == "create" and c.kind.value == "connector"
    ]
    assert [c.target for c in again.changes if c.kind.value == "ready"] == ["vpn-service"]
    service.fake.online_with_profile = True
    for c in service.fake.network_named("hq")["connectors"]:
        service.fake.connect(c["id"])
    _served(o, service, size="VM.Standard.E5.Flex").apply()
    assert rule_watch.nowhere == [], rule_watch.seen
    (new,) = _instances(o)
    assert new["id"] != old["id"] and targets(o) == {vnic_ip(o, new)}
    assert [c["name"] for c in service.fake.network_named("hq")["connectors"]] == ["cp-hq_2"]
    _served(o, service, size="VM.Standard.E5.Flex").destroy()
    assert o.snapshot() == before


def test_a_replaced_connector_says_on_its_console_when_its_tunnel_is_up(
    oci_world: OciWorld, rule_watch: WriteWatch
):
    """A profile file and a new shape: the new instance beside the old one; apply reads its
    serial console (a console history captured, read, deleted) until it says its tunnel is
    up; then the rules move and the old instance goes. One that never says so: apply stops
    with the rules on the old one; the next apply launches no third and finishes once it
    does. Nothing of it is left after destroy."""
    from provisioner import CloudError

    o = oci_world
    before = o.snapshot()
    o.deployment().apply()
    (old,) = _instances(o)
    rule_watch.seen.clear()
    larger = o.topology(size="VM.Standard.E5.Flex")
    plan = o.deployment(larger).plan()
    hq = [c for c in plan.changes if c.network == "hq"]
    kinds = [c.kind.value for c in hq]
    assert kinds.index("connector") < kinds.index("ready") < kinds.index("route")
    assert hq[-1].resource == old["id"] and hq[kinds.index("ready")].target is None
    o.fake.vms_report_ready = False  # the instance whose tunnel never comes up
    impatient = o.deployment(larger)
    impatient.clouds.options["oci"]["wait_seconds"] = 0.3
    with pytest.raises(CloudError) as failed:
        impatient.apply()
    assert "to say its tunnel is up" in str(failed.value)
    assert len(_instances(o)) == 2 and targets(o) == {vnic_ip(o, old)}
    again = o.deployment(larger).plan()
    assert not [
        c for c in again.changes if c.action.value == "create" and c.kind.value == "connector"
    ]
    assert [c.kind.value for c in again.changes if c.network == "hq"].count("ready") == 1
    o.fake.vms_report_ready = True
    o.fake.console_captures_fail = 1  # a capture that fails is asked again, not an error
    o.deployment(larger).apply()
    assert o.fake.console_captures_fail == 0
    assert rule_watch.seen and rule_watch.nowhere == [], rule_watch.seen
    (new,) = _instances(o)
    assert new["id"] != old["id"] and targets(o) == {vnic_ip(o, new)}
    reads = [c for c in o.fake.calls if c.kind == "instanceConsoleHistories"]
    assert {c.verb for c in reads} == {"create", "get", "data", "delete"}
    assert not o.fake.of_kind("instanceConsoleHistories")  # each one read and deleted
    assert o.deployment(larger).plan().empty
    o.deployment(larger).destroy()
    assert o.snapshot() == before


@pytest.mark.parametrize(
    "method, path, after",
    [("PUT", r"/vnics/", 0), ("POST", r"/instanceConsoleHistories$", 0),
     ("PUT", r"/routeTables/", 1), ("DELETE", r"/instances/", 0)],
    ids=["new instance launched", "its console not yet read", "rules half moved",
         "old instance not yet removed"],
)  # fmt: skip
def test_a_replacement_interrupted_at_each_step_is_finished_and_cleaned(
    oci_world: OciWorld, rule_watch: WriteWatch, method: str, path: str, after: int
):
    from provisioner import CloudError

    o = oci_world
    before = o.snapshot()
    o.deployment().apply()
    rule_watch.seen.clear()
    larger = o.topology(size="VM.Standard.E5.Flex")
    o.fake.fail(method, path, 409, "Conflict", "injected", after=after)
    with pytest.raises(CloudError):
        o.deployment(larger).apply()
    assert rule_watch.nowhere == [], rule_watch.seen
    o.deployment(larger).apply()
    assert rule_watch.nowhere == [], rule_watch.seen
    (new,) = _instances(o)
    assert new["shape"] == "VM.Standard.E5.Flex" and targets(o) == {vnic_ip(o, new)}
    assert o.deployment(larger).plan().empty
    o.deployment(larger).destroy()
    assert o.snapshot() == before


def test_a_pair_changes_one_member_at_a_time_and_the_rules_never_lead_nowhere(
    oci_world: OciWorld, rule_watch: WriteWatch
):
    """Both members need replacing (a new shape): one at a time, the floating IP on the other
    throughout; at no write do HQ's rules lead nowhere."""
    o = oci_world
    doc = as_pair(o)
    o.deployment(doc).apply()
    before = {i["id"] for i in connectors(o).values()}
    rule_watch.seen.clear()
    doc["networks"]["hq"]["connector"]["size"] = "VM.Standard.E5.Flex"
    o.deployment(doc).apply()
    assert rule_watch.seen and rule_watch.nowhere == [], rule_watch.seen
    after = connectors(o)
    assert len(after) == 2 and not {i["id"] for i in after.values()} & before
    assert {i["shape"] for i in after.values()} == {"VM.Standard.E5.Flex"}
    assert o.deployment(doc).plan().empty
