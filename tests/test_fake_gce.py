"""The fake Google Cloud keeps the semantics the provider relies on, checked through the real
SDKs (google-cloud-compute, google-cloud-secret-manager) or raw HTTP where the SDK has no call."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from conftest import GcpWorld

P = "sandbox-project-1"
NET = f"projects/{P}/global/networks/vpc-hq"
GATEWAY = f"projects/{P}/global/gateways/default-internet-gateway"


def raw(
    gcp: GcpWorld, method: str, path: str, body: Any = None, token: bool = True
) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(
        f"{gcp.url}/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"} if token else {},
    )
    try:
        with urllib.request.urlopen(request) as r:
            return r.status, json.load(r), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e), dict(e.headers)


def route(name: str, **kw: Any) -> Any:
    from google.cloud import compute_v1 as c

    fields = {
        "name": name,
        "network": NET,
        "dest_range": "192.0.2.0/24",
        "next_hop_gateway": GATEWAY,
        **kw,
    }
    return c.Route(**fields)


def test_names_are_unique_per_project_and_kind_with_computes_409(gcp: GcpWorld):
    from google.api_core.exceptions import Conflict

    api = gcp.compute()
    api.routes.insert_unary(project=P, route_resource=route("r1"))
    with pytest.raises(Conflict) as e:
        api.routes.insert_unary(project=P, route_resource=route("r1", dest_range="192.0.3.0/24"))
    assert "The resource 'projects/sandbox-project-1/global/routes/r1' already exists" in str(
        e.value
    )
    assert e.value.errors[0]["reason"] == "alreadyExists"


def test_a_missing_resource_is_computes_404(gcp: GcpWorld):
    status, body, _ = raw(gcp, "GET", f"compute/v1/projects/{P}/global/routes/nowhere")
    assert status == 404
    assert body["error"]["code"] == 404
    assert body["error"]["errors"] == [
        {
            "message": f"The resource 'projects/{P}/global/routes/nowhere' was not found",
            "domain": "global",
            "reason": "notFound",
        }
    ]


def test_routes_cannot_be_changed_only_deleted_and_inserted(gcp: GcpWorld):
    gcp.compute().routes.insert_unary(project=P, route_resource=route("r1"))
    status, _, _ = raw(gcp, "PATCH", f"compute/v1/projects/{P}/global/routes/r1", {"priority": 10})
    assert status == 405
    assert gcp.gce.view(f"projects/{P}/global/routes/r1")["priority"] == 1000


def test_can_ip_forward_is_fixed_at_creation(gcp: GcpWorld):
    from google.api_core.exceptions import BadRequest

    api = gcp.compute()
    vm = api.instances.get(project=P, zone="europe-west1-b", instance="hq-app-1")
    assert vm.can_ip_forward is False
    vm.can_ip_forward = True
    with pytest.raises(BadRequest) as e:
        api.instances.update_unary(
            project=P, zone="europe-west1-b", instance="hq-app-1", instance_resource=vm
        )
    assert "canIpForward" in str(e.value)


def test_a_next_hop_instance_must_exist_in_the_routes_network(gcp: GcpWorld):
    from google.api_core.exceptions import BadRequest, NotFound

    api = gcp.compute()
    with pytest.raises(NotFound):
        api.routes.insert_unary(
            project=P,
            route_resource=route(
                "r1",
                next_hop_gateway=None,
                next_hop_instance=f"projects/{P}/zones/europe-west1-b/instances/nowhere",
            ),
        )
    with pytest.raises(BadRequest) as e:  # spoke's app instance is in another network
        api.routes.insert_unary(
            project=P,
            route_resource=route(
                "r1",
                next_hop_gateway=None,
                next_hop_instance=f"projects/{P}/zones/us-central1-a/instances/spoke-app-1",
            ),
        )
    assert "network" in str(e.value)
    with pytest.raises(BadRequest):  # two next hops
        api.routes.insert_unary(project=P, route_resource=route("r1", next_hop_ip="10.4.1.2"))
    assert not any(r["name"] == "r1" for r in gcp.gce.resources("routes"))


def test_a_route_to_an_instance_that_cannot_forward_says_so(gcp: GcpWorld):
    api = gcp.compute()
    op = api.routes.insert_unary(
        project=P,
        route_resource=route(
            "r1",
            next_hop_gateway=None,
            next_hop_instance=f"projects/{P}/zones/europe-west1-b/instances/hq-app-1",
        ),
    )
    assert op.status.name == "RUNNING"
    found = api.routes.get(project=P, route="r1")
    assert [w.code for w in found.warnings] == ["NEXT_HOP_CANNOT_IP_FORWARD"]


@pytest.mark.parametrize("priority", [-1, 65536, 70000])
def test_firewall_priority_is_0_to_65535(priority: int, gcp: GcpWorld):
    status, body, _ = raw(
        gcp,
        "POST",
        f"compute/v1/projects/{P}/global/firewalls",
        {
            "name": "fw",
            "network": NET,
            "priority": priority,
            "allowed": [{"IPProtocol": "tcp"}],
            "sourceRanges": ["10.0.0.0/8"],
        },
    )
    assert status == 400 and "resource.priority" in body["error"]["message"]
    assert body["error"]["errors"][0]["reason"] == "invalid"


def test_a_mutation_is_an_operation_polled_to_done(gcp: GcpWorld):
    api = gcp.compute()
    op = api.routes.insert_unary(project=P, route_resource=route("r1"))
    assert op.status.name == "RUNNING" and op.target_link.endswith("/global/routes/r1")
    first = api.global_operations.get(project=P, operation=op.name)
    second = api.global_operations.wait(project=P, operation=op.name)
    assert (first.status.name, second.status.name) == ("RUNNING", "DONE")
    zonal = api.instances.stop_unary(project=P, zone="europe-west1-b", instance="hq-app-1")
    assert zonal.zone.endswith("/zones/europe-west1-b")
    assert (
        api.zone_operations.wait(project=P, zone="europe-west1-b", operation=zonal.name).status.name
        == "RUNNING"
    )
    assert (
        api.zone_operations.wait(project=P, zone="europe-west1-b", operation=zonal.name).status.name
        == "DONE"
    )


def test_throttling_is_a_429_rate_limit_exceeded_with_retry_after(gcp: GcpWorld):
    gcp.gce.fail(
        "GET", r"global/routes$", 429, "rateLimitExceeded", "Rate Limit Exceeded", retry_after="7"
    )
    status, body, headers = raw(gcp, "GET", f"compute/v1/projects/{P}/global/routes")
    assert status == 429 and headers["Retry-After"] == "7"
    assert body["error"]["errors"] == [
        {"message": "Rate Limit Exceeded", "domain": "usageLimits", "reason": "rateLimitExceeded"}
    ]
    assert raw(gcp, "GET", f"compute/v1/projects/{P}/global/routes")[0] == 200  # once


def test_no_token_is_401(gcp: GcpWorld):
    status, body, _ = raw(gcp, "GET", f"compute/v1/projects/{P}/global/routes", token=False)
    assert status == 401 and "authentication credential" in body["error"]["message"]


def test_a_stopped_instance_loses_its_ephemeral_external_address(gcp: GcpWorld):
    gcp.deployment().apply()
    api = gcp.compute()
    zone = "europe-west1-b"
    before = (
        api.instances.get(project=P, zone=zone, instance="cp-hq-connector")
        .network_interfaces[0]
        .access_configs[0]
        .nat_i_p
    )
    api.instances.stop_unary(project=P, zone=zone, instance="cp-hq-connector")
    stopped = api.instances.get(project=P, zone=zone, instance="cp-hq-connector")
    assert (
        stopped.status == "TERMINATED"
        and not stopped.network_interfaces[0].access_configs[0].nat_i_p
    )
    api.instances.start_unary(project=P, zone=zone, instance="cp-hq-connector")
    after = (
        api.instances.get(project=P, zone=zone, instance="cp-hq-connector")
        .network_interfaces[0]
        .access_configs[0]
        .nat_i_p
    )
    assert after and after != before


def test_secret_payloads_are_returned_by_access_alone(gcp: GcpWorld):
    gcp.deployment().apply()
    name = f"projects/{P}/secrets/cp-hq-vpn-profile"
    for path in (
        f"v1/{name}",
        f"v1/{name}/versions",
        f"v1/{name}/versions/1",
        f"v1/{name}:getIamPolicy",
    ):
        status, body, _ = raw(gcp, "GET", path)
        assert status == 200 and "payload" not in json.dumps(body), path
    status, body, _ = raw(gcp, "GET", f"v1/{name}/versions/latest:access")
    assert status == 200 and body["payload"]["data"]
    status, body, _ = raw(gcp, "GET", f"v1/projects/{P}/secrets/nowhere")
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("gcp")
