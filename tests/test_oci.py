"""OCI end to end: the real `oci` SDK against the fake on 127.0.0.1 (provisioner/providers/oci/fake.py),
with a no-op signer and no circuit breaker. The outcomes a user relies on."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from conftest import OciWorld

from provisioner import ConflictError, RouteState
from provisioner.cli import run

PEERS = ("100.96.0.0/11", "10.7.0.0/16", "172.31.0.0/16")  # vpn, spoke, partner


def instance(o: OciWorld, network: str = "hq") -> dict[str, Any] | None:
    found = [
        i
        for i in o.fake.of_kind("instances")
        if i["displayName"] == f"cp-{network}-connector" and i["lifecycleState"] != "TERMINATED"
    ]
    return found[0] if found else None


def vnic(o: OciWorld, network: str = "hq") -> dict[str, Any]:
    vm = instance(o, network)
    assert vm is not None
    (attachment,) = [a for a in o.fake.of_kind("vnicAttachments") if a["instanceId"] == vm["id"]]
    found = o.fake.get(attachment["vnicId"])
    assert found is not None
    return found


def private_ip(o: OciWorld, network: str = "hq") -> str:
    (ip,) = [p for p in o.fake.of_kind("privateIps") if p["vnicId"] == vnic(o, network)["id"]]
    return str(ip["id"])


def rules(o: OciWorld, table: str) -> dict[str, str]:
    found = o.fake.get(table)
    assert found is not None
    return {r["destination"]: r["networkEntityId"] for r in found["routeRules"]}


def tables(o: OciWorld, network: str = "hq") -> list[str]:
    vcn = o.hq.vcn if network == "hq" else o.spoke.vcn
    return [t["id"] for t in o.fake.of_kind("routeTables") if t["vcnId"] == vcn]


def nsg_rules(o: OciWorld, group: str) -> list[dict[str, Any]]:
    with o.fake.lock:
        return list(o.fake.state.resources[group]["_rules"])


def test_apply_routes_every_table_of_the_vcn_through_the_connector(oci_world: OciWorld):
    o = oci_world
    o.deployment().apply()
    target = private_ip(o)
    assert len(tables(o)) == 3  # the VCN's default table, the public one, the app one
    for table in tables(o):
        found = rules(o, table)
        for destination in PEERS:
            assert found[destination] == target
        assert "10.6.0.0/16" not in found  # never its own range
    # the admin's rules are all still there, as they were
    assert rules(o, o.hq.route_table)["198.51.100.0/24"].startswith("ocid1.internetgateway.")
    assert rules(o, o.hq.public_table)["0.0.0.0/0"].startswith("ocid1.internetgateway.")


def test_the_connector_skips_the_check_has_its_nsg_and_way_out(oci_world: OciWorld):
    o = oci_world
    o.deployment().apply()
    vm = instance(o)
    assert vm is not None and vm["lifecycleState"] == "RUNNING"
    assert vm["shape"] == "VM.Standard.E4.Flex" and vm["shapeConfig"]["ocpus"] == 1
    hq = vnic(o)
    assert hq["skipSourceDestCheck"] is True
    (own,) = [
        g for g in o.fake.of_kind("networkSecurityGroups") if g["displayName"] == "cp-hq-connector"
    ]
    assert hq["nsgIds"] == [own["id"]]
    assert hq["publicIp"].startswith("203.0.113.")  # hq's subnet: an internet gateway
    assert vnic(o, "spoke")["publicIp"] is None  # spoke's: a NAT gateway
    assert [r["source"] for r in nsg_rules(o, own["id"])] == ["10.6.0.0/16"]


def test_app_nsgs_admit_what_arrives_by_address(oci_world: OciWorld):
    o = oci_world
    o.deployment().apply()
    ours = [
        r
        for r in nsg_rules(o, o.hq.app_group)
        if r["description"].startswith("connector-provisioner")
    ]
    assert sorted(r["source"] for r in ours) == sorted(PEERS)
    assert {r["sourceType"] for r in ours} == {"CIDR_BLOCK"} and {r["protocol"] for r in ours} == {
        "all"
    }
    assert any(r["description"] == "https from the VCN" for r in nsg_rules(o, o.hq.app_group))


def test_nat_everything_admits_the_connectors_nsg(oci_world: OciWorld):
    o = oci_world
    o.deployment(o.topology(nat=True, nat_preserve_source=False)).apply()
    (own,) = [
        g for g in o.fake.of_kind("networkSecurityGroups") if g["displayName"] == "cp-hq-connector"
    ]
    ours = [
        r
        for r in nsg_rules(o, o.hq.app_group)
        if r["description"].startswith("connector-provisioner")
    ]
    assert [(r["sourceType"], r["source"]) for r in ours] == [("NETWORK_SECURITY_GROUP", own["id"])]


def test_second_apply_changes_nothing(oci_world: OciWorld):
    o = oci_world
    o.deployment().apply()
    o.fake.calls.clear()
    assert o.deployment().apply().done == ()
    assert o.mutating() == []


def test_destroy_leaves_the_tenancy_as_it_was_but_a_secret_pending_deletion(oci_world: OciWorld):
    o = oci_world
    before = o.snapshot()
    o.deployment().apply()
    o.fake.calls.clear()
    o.deployment().destroy()
    assert o.snapshot() == before
    # the connector shut down first (SOFTSTOP: the OS's shutdown, so its OpenVPN tells the VPN
    # service it leaves), then terminated
    acts = [c.verb for c in o.fake.calls if c.kind == "instances" and c.method != "GET"]
    # (the networks' connectors go side by side: each delete has a shutdown before it)
    assert acts.count("softstop") == acts.count("delete") == 2, acts
    assert all(acts[:i].count("softstop") >= acts[:i].count("delete") for i in range(5)), acts
    secrets = o.fake.of_kind("secrets")
    assert {s["lifecycleState"] for s in secrets} == {"PENDING_DELETION"}  # OCI: a day at least
    o.fake.calls.clear()
    assert o.deployment().destroy().done == ()
    assert o.mutating() == []
    # and a new apply takes the secret back rather than failing on its name
    o.deployment().apply()
    assert {s["lifecycleState"] for s in o.fake.of_kind("secrets")} == {"ACTIVE"}
    assert o.deployment().plan().changes == ()


def test_another_writer_between_read_and_write_is_met_with_the_etag(
    oci_world: OciWorld, monkeypatch
):
    """The table is changed by someone else after we read it: our write (If-Match) is refused
    with 412, we read again and write both rules back."""
    o = oci_world
    fake = o.fake
    table = o.hq.route_table
    original = fake._check_etag
    raced: list[bool] = []

    def racing(stored: dict[str, Any], headers: dict[str, str]) -> None:
        if stored["id"] == table and not raced:
            raced.append(True)
            gateway = rules(o, o.hq.public_table)["0.0.0.0/0"]
            stored["routeRules"].append(
                {
                    "destination": "192.0.2.0/24",
                    "destinationType": "CIDR_BLOCK",
                    "networkEntityId": gateway,
                }
            )
            stored["_etag"] = "changed-by-another-writer"
        original(stored, headers)

    monkeypatch.setattr(fake, "_check_etag", racing)
    o.deployment().apply()
    found = rules(o, table)
    assert "192.0.2.0/24" in found and "198.51.100.0/24" in found  # nothing of theirs lost
    assert all(found[d] == private_ip(o) for d in PEERS)
    assert raced


def test_a_foreign_rule_for_a_destination_is_a_conflict(oci_world: OciWorld):
    o = oci_world
    from oci.core import models as m

    api = o.api()
    gateway = rules(o, o.hq.public_table)["0.0.0.0/0"]
    current = api.network.get_route_table(o.hq.route_table).data.route_rules
    api.network.update_route_table(
        o.hq.route_table,
        m.UpdateRouteTableDetails(
            route_rules=[
                *current,
                m.RouteRule(
                    destination="172.31.0.0/16",
                    destination_type="CIDR_BLOCK",
                    network_entity_id=gateway,
                ),
            ]
        ),
    )
    o.fake.calls.clear()
    with pytest.raises(ConflictError) as e:
        o.deployment().apply()
    assert "172.31.0.0/16" in str(e.value)
    assert o.mutating() == []
    assert run(["apply", "-f", str(o.write(o.topology())), "--yes"]) == 3
    assert o.mutating() == []


def test_a_rule_to_a_private_ip_that_is_gone_is_a_blackhole_and_replaced(oci_world: OciWorld):
    o = oci_world
    o.deployment().apply()
    api = o.api()
    vm = instance(o)
    assert vm is not None
    api.compute.terminate_instance(vm["id"])
    api.compute.get_instance(vm["id"])  # TERMINATED: its VNIC and private IP are gone
    status = o.deployment().status()[0]
    assert status.connector is None
    assert {r.state for r in status.routes} == {RouteState.BLACKHOLE}
    o.deployment().apply()
    target = private_ip(o)
    for table in tables(o):
        assert all(rules(o, table)[d] == target for d in PEERS)
    assert o.deployment().plan().changes == ()


def test_the_profile_is_a_vault_secret_readable_by_the_instance_alone(oci_world: OciWorld):
    o = oci_world
    o.deployment().apply()
    (secret,) = [s for s in o.fake.of_kind("secrets") if s["secretName"] == "cp-hq-vpn-profile"]
    assert o.fake.secret_content(secret["id"]) == (o.directory / "hq.ovpn").read_text()
    assert secret["vaultId"] == o.hq.vault and secret["keyId"] == o.hq.key
    vm = instance(o)
    assert vm is not None
    (group,) = [g for g in o.fake.of_kind("dynamicGroups") if g["name"] == "cp-hq-connector"]
    assert group["matchingRule"] == f"ALL {{instance.id = '{vm['id']}'}}"
    (policy,) = [p for p in o.fake.of_kind("policies") if p["name"] == "cp-hq-read-vpn-profile"]
    assert policy["statements"] == [
        f"Allow dynamic-group cp-hq-connector to read secret-bundles in compartment id "
        f"{o.hq.compartment} where target.secret.id = '{secret['id']}'"
    ]
    # the secret-retrieval API gives it back, as the boot reads it
    import oci

    from provisioner.providers.oci.common import _sandbox_signer

    bundles = oci.secrets.SecretsClient(
        {"region": o.hq.region}, signer=_sandbox_signer(), service_endpoint=o.url
    )
    content = bundles.get_secret_bundle(secret["id"]).data.secret_bundle_content.content
    assert base64.b64decode(content).decode() == (o.directory / "hq.ovpn").read_text()


def test_a_new_profile_updates_the_secret_and_replaces_the_connector(oci_world: OciWorld):
    o = oci_world
    o.deployment().apply()
    first = instance(o)
    assert first is not None
    (o.directory / "hq.ovpn").write_text(
        "client\nremote other.vpn.invalid 1194\n<key>\nk\n</key>\n"
    )
    result = o.deployment().apply()
    assert any("VPN profile changed" in c.why for c in result.done)
    (secret,) = [s for s in o.fake.of_kind("secrets") if s["secretName"] == "cp-hq-vpn-profile"]
    assert (
        o.fake.secret_content(secret["id"])
        == "client\nremote other.vpn.invalid 1194\n<key>\nk\n</key>\n"
    )
    assert secret["currentVersionNumber"] == 2
    second = instance(o)
    assert second is not None and second["id"] != first["id"]
    (group,) = [g for g in o.fake.of_kind("dynamicGroups") if g["name"] == "cp-hq-connector"]
    assert second["id"] in group["matchingRule"]  # the new instance alone reads it
    assert o.deployment().plan().changes == ()


def test_a_dynamic_group_named_in_the_file_is_used_not_made(oci_world: OciWorld, capsys):
    o = oci_world
    from oci.identity import models as im

    o.api().identity.create_dynamic_group(
        im.CreateDynamicGroupDetails(
            compartment_id=o.fake.tenancy,
            name="vpn-connectors",
            description="admin's",
            matching_rule="ANY {instance.compartment.id = 'x'}",
        )
    )
    doc = o.topology(dynamic_group="vpn-connectors")
    o.deployment(doc).apply()
    assert not any(g["name"] == "cp-hq-connector" for g in o.fake.of_kind("dynamicGroups"))
    (policy,) = [p for p in o.fake.of_kind("policies") if p["name"] == "cp-hq-read-vpn-profile"]
    assert policy["statements"][0].startswith(
        "Allow dynamic-group vpn-connectors to read secret-bundles"
    )
    o.deployment(doc).destroy()
    assert any(g["name"] == "vpn-connectors" for g in o.fake.of_kind("dynamicGroups"))  # kept
    assert run(["plan", "-f", str(o.write(o.topology(dynamic_group="nobody")))]) == 2
    assert "networks.hq.connector.dynamic_group" in capsys.readouterr().err


def test_the_profile_is_in_no_output_log_or_metadata(oci_world: OciWorld, capsys, caplog):
    o = oci_world
    caplog.set_level(logging.DEBUG)
    path = o.write(o.topology())
    for argv in (
        ["plan"],
        ["plan", "--json"],
        ["apply", "--yes"],
        ["status", "--json"],
        ["bootstrap", "--network", "hq"],
    ):
        run([*argv, "-f", str(path)])
    out = capsys.readouterr()
    records = json.dumps([vars(r) for r in caplog.records], default=str)
    text = out.out + out.err + caplog.text + records
    stored = json.dumps(o.fake.snapshot()) + json.dumps([c.body for c in o.fake.calls])
    for name in ("hq", "spoke"):
        profile = (o.directory / f"{name}.ovpn").read_text()
        for form in (profile.splitlines()[4], base64.b64encode(profile.encode()).decode()):
            assert form not in text
            assert form not in stored  # instance metadata, user-data, recorded bodies
    vm = instance(o)
    assert vm is not None
    user_data = base64.b64decode(vm["metadata"]["user_data"]).decode()
    (secret,) = [s for s in o.fake.of_kind("secrets") if s["secretName"] == "cp-hq-vpn-profile"]
    assert secret["id"] in user_data and "--auth instance_principal" in user_data


def test_a_throttle_is_retried_after_the_seconds_asked(oci_world: OciWorld, monkeypatch):
    import time

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", lambda s: slept.append(s))
    o = oci_world
    fault = o.fake.fail(
        "PUT",
        r"/routeTables/",
        429,
        "TooManyRequests",
        "Too many requests for the tenancy",
        times=2,
        retry_after="7",
    )
    o.deployment().apply()
    assert fault.served == 2
    assert slept.count(7.0) == 2  # Retry-After, not the SDK's own back-off
    assert all(rules(o, t)["100.96.0.0/11"] == private_ip(o) for t in tables(o))


def test_the_one_network_flags_apply_like_a_topology(oci_world: OciWorld, capsys, monkeypatch):
    o = oci_world
    monkeypatch.chdir(o.directory)
    (o.directory / "hq.ovpn").write_text(
        "client\nremote sandbox.vpn.invalid 1194\n<key>\nk\n</key>\n"
    )
    hq = o.hq
    argv = [
        "--cloud", "oci", "--region", hq.region, "--compartment", hq.compartment, "--vcn", hq.vcn,
        "--connector-subnet", hq.connector_subnet, "--subnet", hq.cidr, "--peer", "192.168.0.0/22",
        "--profile", "hq.ovpn", "--vault", hq.vault, "--key", hq.key,
        "--app-security-group", f"{hq.app_group}:tcp/443", "--yes",
    ]  # fmt: skip
    assert run(argv) == 0
    assert rules(o, hq.route_table)["192.168.0.0/22"].startswith("ocid1.privateip.")
    ours = [
        r
        for r in nsg_rules(o, hq.app_group)
        if r["description"].startswith("connector-provisioner")
    ]
    assert {(r["protocol"], r["tcpOptions"]["destinationPortRange"]["min"]) for r in ours} == {
        ("6", 443)
    }
    assert run(argv) == 0
    assert "nothing to do" in capsys.readouterr().out


def _needs(call) -> set[tuple[tuple[str, str], str]]:
    """The (resource type, scope) and verb one recorded call needs, as OCI's policy reference
    groups the permissions of each operation."""
    c = ("compartment",)
    types = {
        "vcns": "vcns", "subnets": "subnets", "routeTables": "route-tables",
        "internetGateways": "internet-gateways", "natGateways": "nat-gateways",
        "networkSecurityGroups": "network-security-groups", "vnics": "vnics",
        "vnicAttachments": "vnic-attachments", "privateIps": "private-ips", "instances": "instances",
        "images": "instance-images", "secrets": "secrets", "policies": "policies",
        "dynamicGroups": "dynamic-groups", "compartments": "compartments", "availabilityDomains": "compartments",
        "vaults": "vaults", "securityLists": "security-lists",
        "instanceConsoleHistories": "console-histories",
    }  # fmt: skip
    scope = (
        "tenancy" if call.kind in ("dynamicGroups", "compartments", "availabilityDomains") else c[0]
    )
    verb = {
        "list": "inspect", "get": "read", "securityRules": "read", "create": "manage", "delete": "manage",
        "update": "manage", "addSecurityRules": "manage", "removeSecurityRules": "manage",
        "scheduleDeletion": "manage", "cancelDeletion": "manage", "start": "use", "softstop": "use",
            "data": "read",
    }[call.verb]  # fmt: skip
    exceptions = {
        ("vnics", "update"): "use",  # VNIC_UPDATE
        # a pair's floating IP: PRIVATE_IP_CREATE, _UPDATE, _DELETE (with _ASSIGN, _UNASSIGN)
        ("privateIps", "create"): "use",
        ("privateIps", "update"): "use",
        ("privateIps", "delete"): "use",
        ("vnicAttachments", "list"): "read",  # VNIC_ATTACHMENT_READ
        ("compartments", "get"): "inspect",  # COMPARTMENT_INSPECT
    }
    verb = exceptions.get((call.kind, call.verb), verb)
    needed = {((types[call.kind], scope), verb)}
    if (call.kind, call.verb) == ("instances", "create"):
        needed |= {
            (("subnets", "compartment"), "use"), (("vnics", "compartment"), "use"),
            (("network-security-groups", "compartment"), "use"), (("boot-volumes", "compartment"), "manage"),
        }  # fmt: skip
    if call.kind == "privateIps" and call.verb in ("create", "update", "delete"):
        # VNIC_ASSIGN / VNIC_UNASSIGN; a create or delete also SUBNET_ATTACH / SUBNET_DETACH
        needed.add((("vnics", "compartment"), "use"))
        if call.verb != "update":
            needed.add((("subnets", "compartment"), "use"))
    if (call.kind, call.verb) in (("secrets", "create"), ("secrets", "update")):
        needed |= {(("vaults", "compartment"), "use"), (("keys", "compartment"), "use")}
    return needed


def test_the_documented_policy_is_exactly_what_the_calls_need(oci_world: OciWorld):
    from provisioner.providers.oci.permissions import ONLY, POLICY, VERBS, statements

    o = oci_world
    _app_host(o)  # a host in the app NSG: status and doctor read its subnet's security lists
    o.fake.calls.clear()
    o.deployment().apply()
    vm = instance(o)
    assert vm is not None
    o.api().compute.instance_action(vm["id"], "STOP")  # someone stops it; apply starts it
    o.deployment().apply()
    (o.directory / "hq.ovpn").write_text("client\nremote new.invalid 1194\n<key>\nk\n</key>\n")
    o.deployment().apply()  # a new profile: the secret updated, the connector replaced
    o.deployment().status()
    o.deployment().doctor()
    o.deployment().destroy()
    o.deployment().apply()  # after destroy: the secret pending deletion is taken back
    from test_oci_pair import as_pair

    o.deployment(as_pair(o)).apply()  # a pair: its floating IP made, moved when replaced
    o.deployment().apply()  # and back: the IP deleted
    calls = [c for c in o.fake.calls if not (c.kind == "instances" and c.verb == "stop")]
    # the lease's UpdateVcn: granted by a statement for VCN_UPDATE alone, not by manage vcns
    leases = [c for c in calls if (c.kind, c.verb) == ("vcns", "update")]
    assert leases and ONLY == {("vcns", "compartment"): ("manage", "VCN_UPDATE")}
    assert any("manage vcns" in s and "'VCN_UPDATE'" in s for s in statements())
    calls = [c for c in calls if (c.kind, c.verb) != ("vcns", "update")]
    needed: dict[tuple[str, str], str] = {}
    for call in calls:
        for key, verb in _needs(call):
            if VERBS.index(verb) > VERBS.index(needed.get(key, "inspect")):
                needed[key] = verb
            needed.setdefault(key, verb)
    assert needed == POLICY  # every call allowed, nothing more granted


def test_without_an_oci_config_the_error_says_so_and_nothing_is_changed(
    oci_world: OciWorld, capsys, monkeypatch
):
    o = oci_world
    monkeypatch.delenv("PROVISION_OCI_ENDPOINT")  # the real path: ~/.oci/config, and there is none
    monkeypatch.delenv("OCI_CLI_AUTH", raising=False)
    monkeypatch.setenv("HOME", str(o.directory / "nobody"))
    assert run(["plan", "-f", str(o.write(o.topology()))]) == 1
    err = capsys.readouterr().err.strip()
    assert "no OCI credentials" in err and "nothing was changed" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert o.fake.calls == []


def test_lifecycle_states_are_awaited_with_progress(oci_world: OciWorld):
    from provisioner import Clouds, Deployment, load_topology

    o = oci_world
    o.fake.settle_reads = 1  # the instance is PROVISIONING for one more read
    said: list[str] = []
    options = {"endpoint": o.url, "progress_seconds": 0.0, "poll_seconds": 0.05}
    doc = o.topology()
    del doc["networks"]["spoke"]
    Deployment(
        load_topology(o.write(doc)), Clouds(options={"oci": options}, progress=said.append)
    ).apply()
    assert any(
        m.startswith("hq: waiting for instance cp-hq-connector: PROVISIONING") for m in said
    ), said
    assert instance(o)["lifecycleState"] == "RUNNING"  # type: ignore[index]


def test_an_app_nsg_of_the_vcn_in_another_compartment_is_found(oci_world: OciWorld):
    from oci.core import models as m

    o = oci_world
    elsewhere = o.fake.add_compartment("cmp-apps")
    nsg = (
        o.api()
        .network.create_network_security_group(
            m.CreateNetworkSecurityGroupDetails(
                compartment_id=elsewhere, vcn_id=o.hq.vcn, display_name="nsg-apps"
            )
        )
        .data
    )
    o.deployment(o.topology(app_security_groups=[nsg.id])).apply()
    assert sorted(r["source"] for r in nsg_rules(o, nsg.id)) == sorted(PEERS)
    assert o.deployment(o.topology(app_security_groups=[nsg.id])).plan().changes == ()


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("oci")


def test_doctor_joins_security_lists_and_nsgs_and_judges_stateless_answers(oci_world: OciWorld):
    """A host in hq's app NSG: after apply our NSG rules admit the VPN clients. Without them,
    a stateless rule of the subnet's security list admits the request but its answer is let
    out only while an egress rule allows it; and with neither, nothing admits it (apply puts
    our rule back)."""
    import oci
    from oci.core import models as m

    api = oci_world.api()
    address = _app_host(oci_world)
    oci_world.deployment().apply()

    def remote() -> Any:
        return next(r for r in oci_world.deployment().doctor()
                    if r.flow.startswith("VPN clients (") and address in r.flow)  # fmt: skip

    assert remote().ok, remote().dropped_at
    layer = f"security lists and NSGs of {address}"
    assert any(h.what == layer for h in remote().hops)
    # our rules for the VPN range gone from the NSG (drift): nothing admits, apply fixes it
    rules = oci.pagination.list_call_get_all_results(
        api.network.list_network_security_group_security_rules, oci_world.hq.app_group
    ).data
    ours = [r.id for r in rules if r.source == "100.96.0.0/11"]
    api.network.remove_network_security_group_security_rules(
        oci_world.hq.app_group, m.RemoveNetworkSecurityGroupSecurityRulesDetails(security_rule_ids=ours)
    )  # fmt: skip
    dropped = remote().dropped_at
    assert dropped is not None and dropped.what == layer and dropped.apply_fixes
    # a stateless security-list rule admits the request; its answer needs an egress rule
    subnet = api.network.get_subnet(oci_world.hq.app_subnet).data
    security_list = subnet.security_list_ids[0]
    stateless = m.IngressSecurityRule(protocol="6", source="100.96.0.0/11", is_stateless=True,
        tcp_options=m.TcpOptions(destination_port_range=m.PortRange(min=443, max=443)))  # fmt: skip
    api.network.update_security_list(security_list, m.UpdateSecurityListDetails(
        ingress_security_rules=[stateless], egress_security_rules=[]))  # fmt: skip
    dropped = remote().dropped_at
    assert dropped is not None and "is stateless" in dropped.detail
    assert dropped.breaks == "remote access hop 7"
    back = m.EgressSecurityRule(protocol="6", destination="100.96.0.0/11", is_stateless=True,
        tcp_options=m.TcpOptions(destination_port_range=m.PortRange(min=1024, max=65535)))  # fmt: skip
    api.network.update_security_list(security_list, m.UpdateSecurityListDetails(
        ingress_security_rules=[stateless], egress_security_rules=[back]))  # fmt: skip
    assert remote().ok, remote().dropped_at


def _app_host(o: OciWorld) -> str:
    """A host in hq's app NSG, in the app subnet: its private address."""
    from oci.core import models as m

    api = o.api()
    image = o.fake.of_kind("images")[0]["id"]
    vm = api.compute.launch_instance(m.LaunchInstanceDetails(
        compartment_id=o.hq.compartment, availability_domain="Uocm:EU-FRANKFURT-1-AD-1",
        shape="VM.Standard.E4.Flex", shape_config=m.LaunchInstanceShapeConfigDetails(ocpus=1),
        display_name="hr-app", source_details=m.InstanceSourceViaImageDetails(image_id=image),
        create_vnic_details=m.CreateVnicDetails(subnet_id=o.hq.app_subnet, nsg_ids=[o.hq.app_group]),
    )).data  # fmt: skip
    attachment = api.compute.list_vnic_attachments(o.hq.compartment, instance_id=vm.id).data[0]
    return str(api.network.get_vnic(attachment.vnic_id).data.private_ip)


def test_a_new_image_release_replaces_nothing_until_apply_roll(oci_world: OciWorld):
    """Oracle publishes a newer Ubuntu platform image: plan and apply change nothing; status
    says it exists and since when; `apply --roll` takes it, made before the old one goes."""
    o = oci_world
    o.deployment().apply()
    first = instance(o)
    assert first is not None
    newer = o.fake.add_image(first["compartmentId"], released="2026.12.01")
    assert o.deployment().plan().changes == ()  # no surprise
    (hq,) = [s for s in o.deployment().status() if s.network == "hq"]
    note = next(n for n in hq.notes if n.startswith("a newer image exists"))
    running = first["sourceDetails"]["imageId"]
    assert newer in note and "2026-12-01" in note and running in note
    plan = o.deployment().plan(roll=True)
    made, gone = [c for c in plan.changes if c.kind == "connector" and c.network == "hq"]
    assert (made.action, gone.action) == ("create", "delete") and "(--roll)" in made.why
    assert made.previous_target == gone.resource == first["id"]
    o.deployment().apply(roll=True)
    second = instance(o)
    assert second is not None and second["id"] != first["id"]
    assert second["sourceDetails"]["imageId"] == newer
    assert not any(n.startswith("a newer image") for s in o.deployment().status() for n in s.notes)
