"""The fake CloudConnexa API answers as the API v1.x reference says, checked through raw HTTP:
the token, pages, the network/route/connector shapes, its refusals and their bodies."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from provisioner.cloudconnexa.fake import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    CloudConnexa,
)
from provisioner.fakeserver import FakeServer


@pytest.fixture
def api() -> Iterator[FakeServer]:
    with CloudConnexa().serve() as server:
        yield server


def call(
    server: FakeServer, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request) as r:
            raw, status, headers = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, headers = e.read(), e.code, dict(e.headers)
    if headers.get("Content-Type", "").startswith("application/json") and raw:
        return status, json.loads(raw), headers
    return status, raw.decode(), headers


def token(server: FakeServer) -> str:
    query = urlencode({"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
                       "grant_type": "client_credentials"})  # fmt: skip
    status, body, _ = call(server, "POST", f"/api/v1/oauth/token?{query}")
    assert status == 200
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    return str(body["access_token"])


def network(name: str, region: str = "eu-central-1", routes: tuple[str, ...] = ()) -> Any:
    return {"name": name, "description": "d", "egress": False,
            "routes": [{"value": r, "description": "x"} for r in routes],
            "connectors": [{"name": f"c-{name}", "description": "", "vpnRegionId": region}]}  # fmt: skip


def test_the_token_and_what_needs_it(api: FakeServer):
    query = urlencode({"client_id": SANDBOX_CLIENT_ID, "client_secret": "wrong",
                       "grant_type": "client_credentials"})  # fmt: skip
    status, body, _ = call(api, "POST", f"/api/v1/oauth/token?{query}")
    assert status == 401 and body == {
        "errorMessage": "Bad credentials",
        "statusError": "Unauthorized",
    }
    status, body, _ = call(api, "GET", "/api/v1/networks")
    assert status == 401 and body["statusError"] == "Unauthorized"
    bearer = token(api)
    assert call(api, "GET", "/api/v1/networks", token=bearer)[0] == 200
    api.fake.expire_tokens()  # its lifetime over
    assert call(api, "GET", "/api/v1/networks", token=bearer)[0] == 401


def test_regions_are_a_list_and_networks_come_in_pages(api: FakeServer):
    bearer = token(api)
    status, regions, _ = call(api, "GET", "/api/v1/regions", token=bearer)
    assert status == 200 and isinstance(regions, list)
    assert set(regions[0]) == {"id", "continent", "country", "countryIso", "regionName"}
    for i in range(5):
        assert call(api, "POST", "/api/v1/networks", network(f"n{i}"), bearer)[0] == 201
    status, page, _ = call(api, "GET", "/api/v1/networks?page=1&size=2", token=bearer)
    assert status == 200
    assert {k: page[k] for k in ("page", "size", "totalElements", "totalPages", "numberOfElements",
                                 "success")} == {"page": 1, "size": 2, "totalElements": 5,
                                                 "totalPages": 3, "numberOfElements": 2,
                                                 "success": True}  # fmt: skip
    assert [n["name"] for n in page["content"]] == ["n2", "n3"]
    assert call(api, "GET", "/api/v1/networks?page=0&size=0", token=bearer)[0] == 400


def test_networks_routes_and_connectors_as_the_reference_shapes_them(api: FakeServer):
    bearer = token(api)
    status, made, _ = call(
        api, "POST", "/api/v1/networks", network("hq", routes=("10.0.0.0/18",)), bearer
    )
    assert status == 201
    assert {"id", "name", "description", "egress", "internetAccess", "routes", "connectors",
            "systemSubnets", "tunnelingProtocol"} <= set(made)  # fmt: skip
    assert made["routes"][0] == {"id": made["routes"][0]["id"], "type": "IP_V4",
                                 "subnet": "10.0.0.0/18", "description": "x"}  # fmt: skip
    connector = made["connectors"][0]
    assert (
        connector["ipV4Address"].startswith("100.") and connector["connectionStatus"] == "OFFLINE"
    )
    assert connector["networkItemId"] == made["id"] and connector["networkItemType"] == "NETWORK"
    # refusals, with the API's body
    status, body, _ = call(api, "POST", "/api/v1/networks", network("hq"), bearer)
    assert status == 409 and set(body) == {"errorMessage", "statusError"}
    # a network without connectors is made (the Terraform provider makes them so)
    status, bare, _ = call(
        api, "POST", "/api/v1/networks", {**network("x"), "connectors": []}, bearer
    )
    assert status == 201 and bare["connectors"] == []
    assert call(api, "DELETE", f"/api/v1/networks/{bare['id']}", token=bearer)[0] == 204
    assert call(api, "POST", "/api/v1/networks", network("y", region="mars-1"), bearer)[0] == 400
    routes = f"/api/v1/networks/routes?networkId={made['id']}"
    # a route overlapping any route of the account (here its own) is 400 (the Go client's e2e)
    assert call(api, "POST", routes, {"value": "10.0.0.0/18"}, bearer)[0] == 400
    assert call(api, "POST", routes, {"value": "10.0.3.0/24"}, bearer)[0] == 400
    assert call(api, "POST", routes, {"value": "10.0.0.1/18"}, bearer)[0] == 400
    status, route, _ = call(
        api, "POST", routes, {"value": "10.1.0.0/24", "description": "b"}, bearer
    )
    assert status == 201 and route["subnet"] == "10.1.0.0/24"
    status, page, _ = call(api, "GET", routes + "&page=0&size=10", token=bearer)
    assert page["totalElements"] == 2
    assert call(api, "DELETE", f"/api/v1/networks/routes/{route['id']}", token=bearer)[0] == 204
    assert call(api, "DELETE", f"/api/v1/networks/routes/{route['id']}", token=bearer)[0] == 404
    connectors = f"/api/v1/networks/connectors?networkId={made['id']}"
    status, second, _ = call(
        api, "POST", connectors, {"name": "two", "vpnRegionId": "us-east-1"}, bearer
    )
    assert status == 201 and second["ipV4Address"] != connector["ipV4Address"]
    assert (
        call(api, "DELETE", f"/api/v1/networks/connectors/{second['id']}", token=bearer)[0] == 204
    )
    # a profile: plain text, new key material each time
    profile = f"/api/v1/networks/connectors/{connector['id']}/profile"
    status, first, headers = call(api, "POST", profile, token=bearer)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert first.startswith("client\n") and first != call(api, "POST", profile, token=bearer)[1]
    # any connector can go, a network's last one too; the network takes its routes with it
    last = f"/api/v1/networks/connectors/{connector['id']}?networkId={made['id']}"
    assert call(api, "DELETE", last, token=bearer)[0] == 204
    assert call(api, "DELETE", f"/api/v1/networks/{made['id']}", token=bearer)[0] == 204
    assert api.fake.snapshot() == {}
    status, body, _ = call(api, "GET", f"/api/v1/networks/{made['id']}", token=bearer)
    assert status == 404 and "not found" in body["errorMessage"]


def test_throttling_is_429_with_the_wait_it_asks(api: FakeServer):
    bearer = token(api)
    api.fake.fail("GET", r"^/api/v1/networks$", 429, "TooManyRequests", "Too Many Requests",
                  retry_after="2")  # fmt: skip
    status, body, headers = call(api, "GET", "/api/v1/networks", token=bearer)
    assert status == 429 and headers["Retry-After"] == "2"
    assert body == {"errorMessage": "Too Many Requests", "statusError": "Too Many Requests"}
    assert call(api, "GET", "/api/v1/networks", token=bearer)[0] == 200


def test_the_verbose_request_log_never_shows_the_client_secret(capfd: pytest.CaptureFixture[str]):
    """`sandbox serve --verbose` logs each request line; the token request carries the client
    secret in its query, as the API takes it: the log shows it redacted."""
    with CloudConnexa().serve(log=True) as server:
        token(server)
    err = capfd.readouterr().err
    assert "/api/v1/oauth/token?" in err and "client_secret=(redacted)" in err
    assert SANDBOX_CLIENT_SECRET not in err
