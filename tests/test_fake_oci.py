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


def _launch(o: OciWorld, skip: bool) -> tuple[Any, str]:
    api = o.api()
    image = [i for i in o.fake.of_kind("images")][0]["id"]
    vm = api.compute.launch_instance(
        m.LaunchInstanceDetails(
            compartment_id=o.hq.compartment, availability_domain="Uocm:EU-FRANKFURT-1-AD-1", shape="VM.Standard.E4.Flex",
            shape_config=m.LaunchInstanceShapeConfigDetails(ocpus=1), display_name="router",
            source_details=m.InstanceSourceViaImageDetails(image_id=image),
            create_vnic_details=m.CreateVnicDetails(subnet_id=o.hq.connector_subnet, skip_source_dest_check=skip),
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
