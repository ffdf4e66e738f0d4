"""The provider contract, for every cloud: the parts observe can find have their handlers before
any change is made, and the changes of one container go out in one write where the cloud's API
takes them together."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from conftest import CallLog, FakeCloudWorld, deployment

from provisioner import Clouds, Deployment, load_topology
from provisioner.model import PROFILE_PART, Kind
from provisioner.providers.base import PartHandlers

FAKE_WORLDS = ["azure", "gcp", "oci_world"]


def _world(request: pytest.FixtureRequest, name: str) -> FakeCloudWorld:
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def _parts_and_handlers(d: Deployment) -> list[tuple[str, str, bool, PartHandlers | None]]:
    out = []
    for name, observed in d.observe().items():
        provider: Any = d.provider(name)
        for part in observed.parts:
            out.append((name, part.kind, part.ready, provider.PARTS.get(part.kind)))
    return out


@pytest.mark.parametrize("fixture", FAKE_WORLDS)
def test_every_part_observe_finds_has_its_handlers(fixture: str, request: pytest.FixtureRequest):
    """Before apply (parts missing), after apply (parts present) and after destroy: each part
    kind observe emits has a delete, a create when it is missing, an update for the profile."""
    world = _world(request, fixture)
    for step in ("fresh", "applied", "destroyed"):
        found = _parts_and_handlers(world.deployment())
        assert found, step
        for network, kind, ready, handlers in found:
            assert handlers is not None, (step, network, kind)
            assert handlers.delete is not None
            assert ready or handlers.create is not None, (step, network, kind)
            assert kind != PROFILE_PART or handlers.update is not None
        if step == "fresh":
            world.deployment().apply()
        elif step == "applied":
            world.deployment().destroy()


def test_every_aws_part_has_its_handlers(world: Any, clouds: Clouds):
    for step in ("fresh", "applied"):
        found = _parts_and_handlers(deployment(world, clouds))
        assert {k for _, k, _, _ in found} == {
            PROFILE_PART,
            "role",
            "instance-profile",
            "security-group",
        }
        for _, kind, ready, handlers in found:
            assert handlers is not None and (ready or handlers.create is not None), (step, kind)
        deployment(world, clouds).apply()


def test_a_part_kind_without_handlers_fails_at_observe_before_any_change(
    oci_world: Any, monkeypatch: pytest.MonkeyPatch
):
    from provisioner.providers.oci.network import OciNetwork

    parts = {k: v for k, v in OciNetwork.PARTS.items() if k != "dynamic-group"}
    monkeypatch.setattr(OciNetwork, "PARTS", parts)
    with pytest.raises(AssertionError, match="'dynamic-group' has no handlers"):
        oci_world.deployment().apply()
    assert oci_world.fake.mutating_calls() == []


def test_a_part_class_without_delete_is_refused_when_the_class_is_made():
    from provisioner.providers.base import Provider

    with pytest.raises(TypeError, match="names no delete handler"):
        type("Broken", (Provider,), {"PARTS": {"secret": PartHandlers(delete=None)}})  # type: ignore[arg-type]


# --- one write per container ------------------------------------------------------------------


def _route_tables(plan: Any) -> Counter[str]:
    return Counter(c.route_table for c in plan.changes if c.kind is Kind.ROUTE)


def test_oci_writes_each_route_table_once_per_apply_and_destroy(oci_world: Any):
    o = oci_world
    d = o.deployment()
    tables = _route_tables(d.plan())
    assert max(tables.values()) > 1  # several routes per table: the batch is real
    o.fake.calls.clear()
    d.apply()
    writes = Counter(
        c.path.rsplit("/", 1)[1] for c in o.fake.mutating_calls() if c.kind == "routeTables"
    )
    assert writes == Counter(dict.fromkeys(tables, 1))
    # an NSG's rules go in one call (at most 25 each)
    adds = [c for c in o.fake.mutating_calls() if c.verb == "addSecurityRules"]
    assert len(adds) == len({c.path for c in adds})
    assert all(s.healthy for s in o.deployment().status())
    o.fake.calls.clear()
    o.deployment().destroy()
    writes = Counter(
        c.path.rsplit("/", 1)[1] for c in o.fake.mutating_calls() if c.kind == "routeTables"
    )
    assert writes == Counter(dict.fromkeys(tables, 1))


def test_azure_writes_each_route_table_and_nsg_once_with_its_etag(azure: Any):
    d = azure.deployment()
    tables = _route_tables(d.plan())
    assert max(tables.values()) > 1
    d.apply()
    calls = azure.arm.mutating_calls()
    assert not [c for c in calls if c.kind.endswith("routetables/routes")]  # no route alone
    # nor a rule alone: each NSG's rules in one PUT of the NSG (ours once more when made)
    assert not [c for c in calls if c.kind.endswith("securityrules")]
    nsg_puts = Counter(
        c.path.rsplit("/", 1)[1]
        for c in calls
        if c.kind == "microsoft.network/networksecuritygroups" and c.method == "PUT"
    )
    assert all(n == (2 if name.startswith("cp-") else 1) for name, n in nsg_puts.items())
    table_puts = Counter(
        c.path.rsplit("/", 1)[1] for c in calls if c.kind == "microsoft.network/routetables"
    )
    # each table once for its routes, and ours once more when it is made
    assert all(table_puts[t.rsplit("/", 1)[-1]] in (1, 2) for t in tables)
    assert sum(table_puts.values()) == len(tables) + sum(t.startswith("cp-") for t in table_puts)
    assert all(s.healthy for s in azure.deployment().status())


def test_azure_another_writer_between_read_and_write_is_met_with_the_etag(
    azure: Any, monkeypatch: pytest.MonkeyPatch
):
    """Someone adds a route to the admin's table after we read it: our PUT (If-Match) is
    refused with 412, we read again and write ours beside theirs."""
    from provisioner.providers.azure import fake as fake_arm

    table = azure.hq.route_table
    original = fake_arm._Context._check_if_match
    raced: list[bool] = []

    def racing(self: Any, rid: str, found: Any) -> None:
        if self.if_match and rid.lower().endswith(f"/routetables/{table}".lower()) and not raced:
            raced.append(True)
            prefix = found["id"] + "/routes/"
            self.store[(prefix + "theirs").lower()] = {
                "id": prefix + "theirs",
                "name": "theirs",
                "type": "Microsoft.Network/routeTables/routes",
                "etag": 'W/"theirs"',
                "properties": {"addressPrefix": "192.0.2.0/24", "nextHopType": "None"},
            }
            found["etag"] = 'W/"changed-by-another-writer"'
        original(self, rid, found)

    monkeypatch.setattr(fake_arm._Context, "_check_if_match", racing)
    said: list[str] = []
    doc = azure.topology()
    Deployment(load_topology(azure.write(doc)), azure.clouds(progress=said.append)).apply()
    assert raced and any("changed meanwhile" in m for m in said)
    names = {
        r["name"]
        for r in azure.arm._list(
            azure.arm.state.resources[
                next(
                    k
                    for k in azure.arm.state.resources
                    if k.endswith(f"/routetables/{table}".lower())
                )
            ]["id"]
            + "/routes/"
        )
    }
    assert "theirs" in names and any(n.startswith("cp-") for n in names)
    assert all(s.healthy for s in azure.deployment().status())


def test_gcp_writes_each_firewall_rule_once(gcp: Any):
    gcp.deployment().apply()
    writes = [c for c in gcp.gce.mutating_calls() if c.kind == "firewalls"]
    assert writes and all(c.verb == "insert" for c in writes)
    assert len(writes) == len({c.body["name"] for c in writes})
    assert all(s.healthy for s in gcp.deployment().status())


def test_aws_authorizes_each_groups_rules_in_one_call(world: Any, clouds: Clouds, calls: CallLog):
    plan = deployment(world, clouds, partner=True).plan()
    groups = {(c.network, c.resource) for c in plan.changes if c.kind is Kind.APP_ACCESS}
    per_network = Counter(c.network for c in plan.changes if c.kind is Kind.APP_ACCESS)
    assert max(per_network.values()) > 1
    calls.clear()
    deployment(world, clouds, partner=True).apply()
    authorized = [op for _, op in calls.calls if op == "AuthorizeSecurityGroupIngress"]
    networks = {c.network for c in plan.changes if c.kind is Kind.CONNECTOR_INGRESS}
    assert len(authorized) == len(groups) + len(networks)
    assert all(s.healthy for s in deployment(world, clouds, partner=True).status())


def test_aws_a_rule_already_there_sends_each_alone_and_a_failure_says_which_were_made(
    session: Any, world: Any, clouds: Clouds
):
    """EC2 refuses a whole authorize when one rule of it is there already (an interrupted run
    left it): each rule then goes alone. When one of those fails, the error names exactly the
    rules made, and they are in the group; the next apply finishes."""
    from conftest import FORBIDDEN, error_response, inject

    from provisioner import CloudError

    def without_app_groups(doc: dict[str, Any]) -> None:
        for net in doc["networks"].values():
            net.pop("app_security_groups", None)

    deployment(world, clouds, partner=True, edit=without_app_groups).apply()
    # now only hq's and branch's app rules are to be made; one network at a time, so the
    # attempts come in order: the batch, then each rule alone
    one_network = Clouds(options=clouds.options, networks_at_once=1)
    plan = deployment(world, one_network, partner=True).plan()
    first = plan.networks[0]
    assert [c.kind for c in first.changes] == [Kind.APP_ACCESS] * len(first.changes)
    assert len(first.changes) >= 2
    inject(
        session,
        "ec2",
        "AuthorizeSecurityGroupIngress",
        lambda: error_response(
            "ec2", 400, "InvalidPermission.Duplicate", "the specified rule already exists"
        ),
    )
    inject(
        session,
        "ec2",
        "AuthorizeSecurityGroupIngress",
        lambda: error_response("ec2", *FORBIDDEN["ec2"]),
        after=2,
    )
    with pytest.raises(CloudError) as failed:
        deployment(world, one_network, partner=True).apply()
    error = failed.value
    made, refused = first.changes[0], first.changes[1]
    assert f"{made.network}: {made.summary()}" in error.done
    assert f"{refused.network}: {refused.summary()}" in error.not_done
    assert "UnauthorizedOperation" in error.message and refused.summary() in error.message
    region = "us-east-1" if made.network == "hq" else "us-west-2"
    group = session.client("ec2", region_name=region).describe_security_groups(
        GroupIds=[made.resource]
    )["SecurityGroups"][0]
    ranges = {r["CidrIp"] for p in group["IpPermissions"] for r in p.get("IpRanges", [])}
    assert made.rule is not None and refused.rule is not None
    assert str(made.rule.source) in ranges and str(refused.rule.source) not in ranges
    deployment(world, clouds, partner=True).apply()
    assert all(s.healthy for s in deployment(world, clouds, partner=True).status())


def _left_behind(world: FakeCloudWorld, extra: dict[str, Any] | None) -> None:
    """Apply hq, spoke and (when given) `extra` beside hq; take the last one out of the file:
    plan lists its connector as ours and left behind, changing nothing; apply --prune removes
    it; destroying the rest leaves the fake as it was."""
    before = world.snapshot()  # type: ignore[attr-defined]
    doc = world.topology(partner=False)
    gone = "spoke"
    if extra is not None:
        doc["networks"]["extra"] = extra
        gone = "extra"
    world.deployment(doc).apply()
    del doc["networks"][gone]
    plan = world.deployment(doc).plan()
    left = next(p for p in plan.networks if p.network == gone)
    assert not left.changes and "no longer in the file" in left.notes[0], left
    assert not [c for c in plan.changes if c.network == gone]
    world.deployment(doc).apply(prune=True)
    assert not any(p.network == gone for p in world.deployment(doc).plan().networks)
    world.deployment(doc).destroy()
    assert world.snapshot() == before  # type: ignore[attr-defined]


def test_gcp_lists_and_prunes_a_network_that_left_the_file(gcp: Any):
    _left_behind(gcp, None)  # spoke is in hq's project


def test_azure_lists_and_prunes_a_network_that_left_the_file(azure: Any):
    from provisioner.providers.azure.world import seed_vnet

    extra = seed_vnet(azure.arm, azure.url, "extra", "10.3.0.0/16",
                      resource_group=azure.hq.resource_group)  # fmt: skip
    (azure.directory / "extra.ovpn").write_text("client\nremote x 1194\n<key>\nk\n</key>\n")
    _left_behind(azure, extra.network_entry("extra.ovpn"))


def test_oci_lists_and_prunes_a_network_that_left_the_file(oci_world: Any):
    from provisioner.providers.oci.world import seed_vcn

    extra = seed_vcn(oci_world.fake, oci_world.url, "extra", "10.8.0.0/16", beside=oci_world.hq)
    (oci_world.directory / "extra.ovpn").write_text("client\nremote x 1194\n<key>\nk\n</key>\n")
    _left_behind(oci_world, extra.network_entry("extra.ovpn"))
