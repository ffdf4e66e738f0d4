"""The fake OCI keeps the semantics the provider relies on, checked through the real oci SDK
(no-op signer, no circuit breaker) or raw HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import oci
import pytest
from conftest import OciWorld
from oci.core import models as m


def raw(
    o: OciWorld, method: str, path: str, signed: bool = True
) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(
        f"{o.url}{path}",
        method=method,
        headers={"Authorization": 'Signature keyId="t"'} if signed else {},
    )
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, json.load(r), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e), dict(e.headers)


def _launch(o: OciWorld, skip: bool, subnet: str | None = None) -> tuple[Any, str]:
    api = o.api()
    image = [i for i in o.fake.of_kind("images")][0]["id"]
    vm = api.compute.launch_instance(
        m.LaunchInstanceDetails(
            compartment_id=o.hq.compartment, availability_domain="Uocm:EU-FRANKFURT-1-AD-1", shape="VM.Standard.E4.Flex",
            shape_config=m.LaunchInstanceShapeConfigDetails(ocpus=1), display_name="router",
            source_details=m.InstanceSourceViaImageDetails(image_id=image),
            create_vnic_details=m.CreateVnicDetails(subnet_id=subnet or o.hq.connector_subnet, skip_source_dest_check=skip),
        )
    ).data  # fmt: skip
    attachment = api.compute.list_vnic_attachments(o.hq.compartment, instance_id=vm.id).data[0]
    ip = api.network.list_private_ips(vnic_id=attachment.vnic_id).data[0]
    return vm, ip.id


def _rules_with(o: OciWorld, target: str) -> list[Any]:
    current = o.api().network.get_route_table(o.hq.route_table).data.route_rules
    return [
        *current,
        m.RouteRule(
            destination="192.0.2.0/24", destination_type="CIDR_BLOCK", network_entity_id=target
        ),
    ]


def test_a_stale_etag_is_412_and_the_rules_are_replaced_whole(oci_world: OciWorld):
    o = oci_world
    net = o.api().network
    read = net.get_route_table(o.hq.route_table)
    gateway = read.data.route_rules[0].network_entity_id
    net.update_route_table(
        o.hq.route_table, m.UpdateRouteTableDetails(route_rules=[]), if_match=read.headers["etag"]
    )
    assert net.get_route_table(o.hq.route_table).data.route_rules == []  # whole: the list sent
    with pytest.raises(oci.exceptions.ServiceError) as e:  # the etag read before that write
        net.update_route_table(
            o.hq.route_table,
            m.UpdateRouteTableDetails(
                route_rules=[m.RouteRule(destination="192.0.2.0/24", network_entity_id=gateway)]
            ),
            if_match=read.headers["etag"],
        )
    assert (e.value.status, e.value.code) == (412, "NoEtagMatch")


def test_a_private_ip_is_a_route_target_only_when_its_vnic_skips_the_check(oci_world: OciWorld):
    o = oci_world
    net = o.api().network
    _, checked = _launch(o, skip=False)
    with pytest.raises(oci.exceptions.ServiceError) as e:
        net.update_route_table(
            o.hq.route_table, m.UpdateRouteTableDetails(route_rules=_rules_with(o, checked))
        )
    assert e.value.status == 400 and "source/destination check" in e.value.message
    _, skipping = _launch(o, skip=True)
    net.update_route_table(
        o.hq.route_table, m.UpdateRouteTableDetails(route_rules=_rules_with(o, skipping))
    )
    with pytest.raises(oci.exceptions.ServiceError) as e:
        net.update_route_table(
            o.hq.route_table,
            m.UpdateRouteTableDetails(
                route_rules=_rules_with(o, "ocid1.privateip.oc1.eu-frankfurt-1.nowhere0000")
            ),
        )
    assert e.value.status == 400


def test_nsg_rules_are_added_and_removed_by_id(oci_world: OciWorld):
    o = oci_world
    net = o.api().network
    added = net.add_network_security_group_security_rules(
        o.hq.app_group,
        m.AddNetworkSecurityGroupSecurityRulesDetails(security_rules=[m.AddSecurityRuleDetails(direction="INGRESS", protocol="17", source="10.0.0.0/8", source_type="CIDR_BLOCK")]),
    ).data.security_rules  # fmt: skip
    assert len(added) == 1 and added[0].id
    rules = net.list_network_security_group_security_rules(o.hq.app_group).data
    assert {r.id for r in rules} >= {added[0].id}
    net.remove_network_security_group_security_rules(
        o.hq.app_group,
        m.RemoveNetworkSecurityGroupSecurityRulesDetails(security_rule_ids=[added[0].id]),
    )
    assert added[0].id not in {
        r.id for r in net.list_network_security_group_security_rules(o.hq.app_group).data
    }


def test_lifecycle_states_provisioning_running_terminating_terminated(oci_world: OciWorld):
    o = oci_world
    compute = o.api().compute
    vm, _ = _launch(o, skip=True)
    assert vm.lifecycle_state == "PROVISIONING"
    assert compute.get_instance(vm.id).data.lifecycle_state == "RUNNING"
    compute.terminate_instance(vm.id)
    assert compute.get_instance(vm.id).data.lifecycle_state == "TERMINATED"
    assert compute.list_instances(o.hq.compartment).data  # a terminated instance stays listed
    assert not [p for p in o.fake.of_kind("privateIps") if p["ipAddress"] == "10.6.0.2"]


def test_not_found_is_not_authorized_or_not_found(oci_world: OciWorld):
    status, body, headers = raw(
        oci_world, "GET", "/20160918/vcns/ocid1.vcn.oc1.eu-frankfurt-1.nowhere"
    )
    assert status == 404 and body == {
        "code": "NotAuthorizedOrNotFound",
        "message": "Authorization failed or requested resource not found.",
    }
    assert headers["opc-request-id"]


def test_throttling_is_429_too_many_requests(oci_world: OciWorld):
    oci_world.fake.fail(
        "GET", r"/vcns/", 429, "TooManyRequests", "Too many requests", retry_after="3"
    )
    status, body, headers = raw(oci_world, "GET", f"/20160918/vcns/{oci_world.hq.vcn}")
    assert (status, body["code"], headers["Retry-After"]) == (429, "TooManyRequests", "3")


def test_an_unsigned_request_is_401(oci_world: OciWorld):
    status, body, _ = raw(oci_world, "GET", f"/20160918/vcns/{oci_world.hq.vcn}", signed=False)
    assert status == 401 and body["code"] == "NotAuthenticated"


def test_a_secret_pending_deletion_is_kept_and_its_content_never_listed(oci_world: OciWorld):
    o = oci_world
    o.deployment().apply()
    (secret,) = [s for s in o.fake.of_kind("secrets") if s["secretName"] == "cp-hq-vpn-profile"]
    status, body, _ = raw(o, "GET", f"/20180608/secrets/{secret['id']}")
    assert status == 200 and "content" not in json.dumps(body).lower().replace("contenttype", "")
    vaults = o.api().vaults
    vaults.schedule_secret_deletion(secret["id"], oci.vault.models.ScheduleSecretDeletionDetails())
    with pytest.raises(oci.exceptions.ServiceError) as e:
        vaults.update_secret(secret["id"], oci.vault.models.UpdateSecretDetails(description="x"))
    assert e.value.status == 409
    assert o.fake.get(secret["id"])["lifecycleState"] == "PENDING_DELETION"  # type: ignore[index]


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("oci")


def _error(call: Any) -> tuple[int, str]:
    with pytest.raises(oci.exceptions.ServiceError) as e:
        call()
    return e.value.status, e.value.code


def test_compartments_are_made_and_deleted_as_identity_does(oci_world: OciWorld):
    """CreateCompartment: CREATING, then ACTIVE (nothing can be made in it before); a name
    unique among the parent's compartments (409 CompartmentAlreadyExists); DeleteCompartment
    is accepted (202) and fails while anything is inside, else DELETED with its name freed."""
    identity, net = oci_world.api().identity, oci_world.api().network
    tenancy = oci_world.fake.tenancy
    details = oci.identity.models.CreateCompartmentDetails
    made = identity.create_compartment(
        details(compartment_id=tenancy, name="mine", description="a world of my own")
    ).data
    assert made.lifecycle_state == "CREATING"
    vcn = m.CreateVcnDetails(compartment_id=made.id, cidr_blocks=["10.97.0.0/16"])
    assert _error(lambda: net.create_vcn(vcn)) == (400, "InvalidParameter")  # not ACTIVE yet
    assert identity.get_compartment(made.id).data.lifecycle_state == "ACTIVE"
    assert _error(
        lambda: identity.create_compartment(details(compartment_id=tenancy, name="mine", description="x"))
    ) == (409, "CompartmentAlreadyExists")  # fmt: skip
    assert _error(
        lambda: identity.create_compartment(details(compartment_id=tenancy, name="other", description=""))
    ) == (400, "InvalidParameter")  # fmt: skip
    # the same name under another parent is another compartment
    child = identity.create_compartment(
        details(compartment_id=made.id, name="mine", description="nested")
    ).data
    assert identity.get_compartment(child.id).data.compartment_id == made.id
    assert identity.delete_compartment(child.id).status == 202
    vcn_id = net.create_vcn(vcn).data.id
    response = identity.delete_compartment(made.id)
    assert response.status == 202 and response.headers["opc-work-request-id"]
    assert identity.get_compartment(made.id).data.lifecycle_state == "ACTIVE"  # not empty
    net.delete_vcn(vcn_id)
    assert identity.get_compartment(child.id).data.lifecycle_state == "DELETED"
    identity.delete_compartment(made.id)
    gone = identity.get_compartment(made.id).data
    assert gone.lifecycle_state == "DELETED" and gone.name.startswith("mine.")


def test_vaults_and_keys_are_made_at_their_endpoints(oci_world: OciWorld):
    """CreateVault (CREATING, then ACTIVE, with a management endpoint); CreateKey only at that
    endpoint (CREATING, then ENABLED), with a key shape OCI lists; a key is not found at
    another vault's endpoint; the provider's secret takes a key of its vault only."""
    from provisioner.providers.oci.common import _sandbox_signer

    api = oci_world.api()
    compartment = oci_world.hq.compartment
    km = oci.key_management.models
    vault = api.kms.create_vault(
        km.CreateVaultDetails(compartment_id=compartment, display_name="v", vault_type="DEFAULT")
    ).data
    assert vault.lifecycle_state == "CREATING"
    assert _error(
        lambda: api.kms.create_vault(km.CreateVaultDetails(compartment_id=compartment, display_name="v"))
    ) == (400, "InvalidParameter")  # fmt: skip
    vault = api.kms.get_vault(vault.id).data
    assert vault.lifecycle_state == "ACTIVE" and vault.management_endpoint.startswith(oci_world.url)

    def keys_at(endpoint: str) -> Any:
        return oci.key_management.KmsManagementClient(
            {"region": oci_world.hq.region}, signer=_sandbox_signer(), service_endpoint=endpoint
        )

    keys = keys_at(vault.management_endpoint)
    shape = km.KeyShape(algorithm="AES", length=32)
    key = keys.create_key(
        km.CreateKeyDetails(compartment_id=compartment, display_name="k", key_shape=shape)
    ).data
    assert key.lifecycle_state == "CREATING" and key.vault_id == vault.id
    assert keys.get_key(key.id).data.lifecycle_state == "ENABLED"
    bad = km.CreateKeyDetails(
        compartment_id=compartment, display_name="k", key_shape=km.KeyShape(algorithm="AES", length=20)
    )  # fmt: skip
    assert _error(lambda: keys.create_key(bad)) == (400, "InvalidParameter")
    status, _, _ = raw(oci_world, "GET", f"/20180608/keys/{key.id}")  # not the vault's endpoint
    assert status == 404
    seeded = api.kms.get_vault(oci_world.hq.vault).data
    assert _error(lambda: keys_at(seeded.management_endpoint).get_key(key.id)) == (
        404,
        "NotAuthorizedOrNotFound",
    )
    secret = oci.vault.models.CreateSecretDetails(
        compartment_id=compartment, vault_id=oci_world.hq.vault, key_id=key.id, secret_name="s",
        secret_content=oci.vault.models.Base64SecretContentDetails(content_type="BASE64", content="eA=="),
    )  # fmt: skip
    assert _error(lambda: api.vaults.create_secret(secret)) == (400, "InvalidParameter")
    scheduled = keys.schedule_key_deletion(key.id, km.ScheduleKeyDeletionDetails()).data
    assert scheduled.lifecycle_state == "PENDING_DELETION"


def test_a_vcn_goes_only_when_empty(oci_world: OciWorld):
    """DeleteVcn, DeleteSubnet and DeleteInternetGateway are refused (409 Conflict) while
    something depends on them, as OCI documents; then they go."""
    net = oci_world.api().network
    c = oci_world.hq.compartment
    vcn = net.create_vcn(m.CreateVcnDetails(compartment_id=c, cidr_blocks=["10.98.0.0/16"])).data
    igw = net.create_internet_gateway(
        m.CreateInternetGatewayDetails(compartment_id=c, vcn_id=vcn.id, is_enabled=True)
    ).data
    table = net.create_route_table(
        m.CreateRouteTableDetails(compartment_id=c, vcn_id=vcn.id, route_rules=[
            m.RouteRule(destination="0.0.0.0/0", destination_type="CIDR_BLOCK", network_entity_id=igw.id)
        ])
    ).data  # fmt: skip
    subnet = net.create_subnet(
        m.CreateSubnetDetails(compartment_id=c, vcn_id=vcn.id, cidr_block="10.98.0.0/24")
    ).data
    assert _error(lambda: net.delete_vcn(vcn.id)) == (409, "Conflict")
    assert _error(lambda: net.delete_internet_gateway(igw.id)) == (409, "Conflict")
    assert _error(lambda: net.delete_route_table(vcn.default_route_table_id)) == (409, "Conflict")
    net.delete_subnet(subnet.id)
    net.delete_route_table(table.id)
    net.delete_internet_gateway(igw.id)
    net.delete_vcn(vcn.id)
    assert _error(lambda: net.get_vcn(vcn.id)) == (404, "NotAuthorizedOrNotFound")
    assert oci_world.fake.get(vcn.default_route_table_id) is None


def test_a_secondary_private_ip_moves_between_vnics_and_its_route_rule_follows(
    oci_world: OciWorld,
):
    """What an OCI standby does to take the routes over: the route rule names a secondary
    private IP, and UpdatePrivateIp moves that IP to the standby's VNIC in the same subnet.
    Primary IPs cannot be moved or deleted; a move to another subnet is refused; a deleted
    secondary leaves its route rule as a blackhole."""
    net = oci_world.api().network
    active, _ = _launch(oci_world, skip=True)
    standby, _ = _launch(oci_world, skip=True)

    def vnic_of(vm: Any) -> Any:
        attachment = (
            oci_world.api()
            .compute.list_vnic_attachments(oci_world.hq.compartment, instance_id=vm.id)
            .data[0]
        )
        return net.get_vnic(attachment.vnic_id).data

    a, b = vnic_of(active), vnic_of(standby)
    floating = net.create_private_ip(m.CreatePrivateIpDetails(vnic_id=a.id)).data
    assert not floating.is_primary and floating.subnet_id == a.subnet_id
    table = net.get_route_table(oci_world.hq.route_table).data
    rule = m.RouteRule(destination="100.96.0.0/11", destination_type="CIDR_BLOCK",
                       network_entity_id=floating.id)  # fmt: skip
    net.update_route_table(table.id, m.UpdateRouteTableDetails(
        route_rules=[*table.route_rules, rule]))  # fmt: skip
    moved = net.update_private_ip(floating.id, m.UpdatePrivateIpDetails(vnic_id=b.id)).data
    assert moved.vnic_id == b.id and moved.ip_address == floating.ip_address
    rules = net.get_route_table(table.id).data.route_rules
    assert [r.network_entity_id for r in rules if r.destination == "100.96.0.0/11"] == [floating.id]
    primary = net.list_private_ips(vnic_id=a.id).data
    primary_id = next(p.id for p in primary if p.is_primary)
    for call in (
        lambda: net.update_private_ip(primary_id, m.UpdatePrivateIpDetails(vnic_id=b.id)),
        lambda: net.delete_private_ip(primary_id),
    ):
        with pytest.raises(oci.exceptions.ServiceError) as refused:
            call()
        assert refused.value.status == 400
    other, _ = _launch(oci_world, skip=True, subnet=oci_world.hq.app_subnet)
    with pytest.raises(oci.exceptions.ServiceError) as refused:
        net.update_private_ip(floating.id, m.UpdatePrivateIpDetails(vnic_id=vnic_of(other).id))
    assert refused.value.status == 400 and "same subnet" in refused.value.message
    net.delete_private_ip(floating.id)
    rules = net.get_route_table(table.id).data.route_rules
    assert [r.network_entity_id for r in rules if r.destination == "100.96.0.0/11"] == [floating.id]
