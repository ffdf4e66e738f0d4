"""A fake of the CloudConnexa (OpenVPN Cloud) API v1.x for what the service's half of a
connector needs: OAuth client credentials, VPN regions, networks, their routes and connectors,
and connector profiles. Served on 127.0.0.1, so that our client talks to it as to
`https://<cloud_id>.api.openvpn.com`.

What it keeps of the API (CloudConnexa API v1.2 reference and schemas, and the
OpenVPN/cloudconnexa-go-client that uses it); the tests rely on each:
- `POST /api/v1/oauth/token` with HTTP Basic client credentials and `{"grant_type":
  "client_credentials"}` (the Go client's form), or `?client_id=&client_secret=&grant_type=`
  (the reference's), answers
  `{access_token, token_type: bearer, expires_in, scope}`; every other call needs
  `Authorization: Bearer <token>` and is 401 without a live one (`expire_tokens()` ends them
  all, as a token's lifetime does).
- Lists are pages: `page` (from 0) and `size` in, `{content, numberOfElements, page, size,
  success, totalElements, totalPages}` out; `GET /api/v1/regions` is a plain list.
- `POST /api/v1/networks` makes a network with its routes and connectors (none is allowed:
  the Terraform provider now makes networks without and adds connectors on their own); names
  are unique (409), and not blank.
  `PUT` updates name, description, egress and internet access; `DELETE` takes its routes and
  connectors with it.
- Routes: `POST /api/v1/networks/routes?networkId=` with `{value, description}` answers
  `{id, type: IP_V4, subnet, description}`; a route that overlaps any route of the account, of
  any network, the same one included, is 400 (the Go client's e2e test meets a 400 there and
  picks subnets clear of every network's routes); a value that is no network address is 400; `GET/PUT/DELETE /api/v1/networks/routes/{id}`.
- Connectors: `POST /api/v1/networks/connectors?networkId=` with `{name, description,
  vpnRegionId}`; the region must be one the API lists (400); each gets a VPN address from
  `100.96.0.0/11` and `connectionStatus: OFFLINE` until its VM connects (`connect()`); any
  connector may be deleted, a network's last one too. `POST
  .../connectors/{id}/profile` generates a profile (plain text, new key material each time).
- Errors: `{"errorMessage", "statusError"}` with 400, 401, 404, 409; 429 (faults) with
  Retry-After or X-RateLimit-Replenish-Rate/-Time, as the Go client reads them.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..fakeserver import Call, Faults, Injectable

SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret-not-a-real-one"
VPN_RANGE = ipaddress.IPv4Network("100.96.0.0/11")
REGIONS = (
    {"id": "eu-central-1", "continent": "Europe", "country": "Germany", "countryIso": "DE",
     "regionName": "Frankfurt"},
    {"id": "us-east-1", "continent": "North America", "country": "United States",
     "countryIso": "US", "regionName": "Virginia"},
    {"id": "us-west-1", "continent": "North America", "country": "United States",
     "countryIso": "US", "regionName": "California"},
    {"id": "ap-southeast-1", "continent": "Asia", "country": "Singapore", "countryIso": "SG",
     "regionName": "Singapore"},
)  # fmt: skip
MAX_PAGE_SIZE = 1000
TOPOLOGIES = ("FULL_MESH", "CUSTOM")  # PUT /settings/wpc/topology's enumerated values
SOURCE_TYPES = ("USER_GROUP", "NETWORK_SERVICE", "HOST_SERVICE")
DESTINATION_TYPES = (*SOURCE_TYPES, "PUBLISHED_SERVICE")
DEFAULT_ACCESS_GROUP: dict[str, Any] = {
    "id": "00000000-0000-0000-0000-000000000001",
    "name": "Default Full Mesh Access",
    "description": "",
    "defaultGroup": True,
    "source": [{"type": t, "allCovered": True, "parent": None, "children": []}
               for t in SOURCE_TYPES],
    "destination": [{"type": t, "allCovered": True, "parent": None, "children": []}
                    for t in SOURCE_TYPES],
}  # fmt: skip


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = headers or {}


class RateLimit:
    """The API's limit as its support describes it (terraform-provider-openvpn-cloud#131): a
    token bucket per API credential, `burst` tokens, `rate` more every `period` seconds. Every
    answer carries X-RateLimit-Burst-Capacity, -Replenish-Rate, -Replenish-Time and -Remaining;
    a call that finds the bucket empty is 429 with the same headers. `clock` may run faster than
    time (a test's scale); the headers always say the service's own figures."""

    def __init__(
        self,
        burst: int = 20,
        rate: int = 1,
        period: float = 15.0,
        clock: Any = None,
    ) -> None:
        import time

        self.burst, self.rate, self.period = burst, rate, period
        self.clock = clock or time.monotonic
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.refused = 0  # 429s served
        self.first: float | None = None  # when the first and the last call came (its clock)
        self.last: float | None = None

    def take(self, who: str) -> tuple[bool, dict[str, str]]:
        with self._lock:
            now = self.clock()
            self.first = now if self.first is None else self.first
            self.last = now
            tokens, at = self._buckets.get(who, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate / self.period)
            ok = tokens >= 1.0
            if ok:
                tokens -= 1.0
            else:
                self.refused += 1
            self._buckets[who] = (tokens, now)
        return ok, {
            "X-RateLimit-Burst-Capacity": str(self.burst),
            "X-RateLimit-Replenish-Rate": str(self.rate),
            "X-RateLimit-Replenish-Time": f"{self.period:g}",
            "X-RateLimit-Remaining": str(int(tokens)),
        }


@dataclass
class CcState:
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> network
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> route (+ networkId)
    connectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> connector
    tokens: set[str] = field(default_factory=set)
    token_clients: dict[str, str] = field(default_factory=dict)  # token -> its API credential
    profiles: dict[str, int] = field(default_factory=dict)  # connector id -> profiles made
    # who may reach what (the API reference's settings and access groups): a new account is
    # FULL_MESH with its default access group, every source to every destination
    topology: str = "FULL_MESH"
    access_groups: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        DEFAULT_ACCESS_GROUP["id"]: dict(DEFAULT_ACCESS_GROUP)})  # fmt: skip


class CloudConnexa(Injectable):
    """The in-memory API. `handle` answers one request; `serve` puts it on 127.0.0.1."""

    name = "fake-cloudconnexa"
    not_mutating = frozenset({"token", "429"})

    def __init__(
        self,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        *,
        online_with_profile: bool = False,
        rate_limit: RateLimit | None = None,
    ) -> None:
        """`online_with_profile` (the sandbox): a connector counts as dialled in once its profile
        is made, standing in for the VM that would use it."""
        self.online_with_profile = online_with_profile
        self.rate_limit = rate_limit  # None: unlimited (the tests that are not about it)
        self.credentials = {client_id: client_secret}
        self.state = CcState()
        self.lock = threading.RLock()
        self.faults = Faults()
        self.calls: list[Call] = []
        self._addresses = itertools.count(2)

    # --- what a test or the sandbox does directly -------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far stops working, as at the end of its lifetime."""
        with self.lock:
            self.state.tokens.clear()

    def connect(self, connector_id: str, online: bool = True) -> None:
        """The connector's VM dialled in (or dropped): what `connectionStatus` then says."""
        with self.lock:
            self.state.connectors[connector_id]["connectionStatus"] = (
                "ONLINE" if online else "OFFLINE"
            )

    def network_named(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            found = next((n for n in self.state.networks.values() if n["name"] == name), None)
            return self._network_view(found) if found else None

    def snapshot(self) -> dict[str, Any]:
        """Networks with their routes and connectors, as GET shows them (status aside)."""
        with self.lock:
            return {
                n["name"]: {
                    "description": n["description"],
                    "egress": n["egress"],
                    "routes": sorted(r["subnet"] for r in self._routes_of(n["id"])),
                    "connectors": sorted(c["name"] for c in self._connectors_of(n["id"])),
                }
                for n in self.state.networks.values()
            }

    # --- HTTP ---------------------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: dict[str, str], body: bytes, base: str
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        limited: dict[str, str] = {}  # the rate limit's headers, on every answer they count
        try:
            fault = self.faults.due(method, path)
            if fault is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                raise ApiError(fault.status, fault.message, extra)
            with self.lock:
                if path == "/api/v1/oauth/token":
                    return self._json(200, self._token(method, query, headers, body))
                token = headers.get("authorization", "")
                if not token.startswith("Bearer ") or token[7:] not in self.state.tokens:
                    raise ApiError(401, "Full authentication is required to access this resource")
                if self.rate_limit is not None:
                    who = self.state.token_clients.get(token[7:], "")
                    ok, limited = self.rate_limit.take(who)
                    if not ok:
                        self._record(method, path.removeprefix("/api/v1"), "limit", "429")
                        raise ApiError(429, "Too Many Requests")
                text = headers.get("content-type", "").startswith("text/plain")
                data = body.decode() if text else json.loads(body) if body else {}
                status, out = self._route(method, path, query, data)
            if isinstance(out, str):
                return status, {"Content-Type": "text/plain", **limited}, out.encode()
            status, answer, raw = self._json(status, out)
            return status, {**answer, **limited}, raw
        except ApiError as e:
            reason = HTTPStatus(e.status).phrase
            err = {"errorMessage": e.message, "statusError": reason}
            return (
                e.status,
                {"Content-Type": "application/json", **limited, **e.headers},
                json.dumps(err).encode(),
            )

    @staticmethod
    def _json(status: int, out: Any) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps(out).encode() if out is not None else b""
        return status, {"Content-Type": "application/json"}, body

    def _record(self, method: str, path: str, kind: str, verb: str, body: Any = None) -> None:
        self.calls.append(Call(method, path, kind, verb, body=body))

    def _token(
        self, method: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        """Client credentials in either form the API takes: HTTP Basic with the grant in a JSON
        body (the Go client's), or the reference's query parameters."""
        self._record(method, "/oauth/token", "oauth", "token", body={"query": sorted(query)})
        if method != "POST":
            raise ApiError(405, "Request method not supported")
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            try:
                client, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                grant = json.loads(body or b"{}").get("grant_type") or query.get("grant_type")
            except ValueError:
                raise ApiError(400, "Malformed Basic credentials or body") from None
        else:
            client, secret = query.get("client_id", ""), query.get("client_secret", "")
            grant = query.get("grant_type")
        if grant != "client_credentials":
            raise ApiError(400, "grant_type must be client_credentials")
        if self.credentials.get(client) != secret:
            raise ApiError(401, "Bad credentials")
        token = secrets.token_urlsafe(24)
        self.state.tokens.add(token)
        self.state.token_clients[token] = client
        return {"access_token": token, "token_type": "bearer", "expires_in": 43199,
                "scope": "read write"}  # fmt: skip

    def _route(self, method: str, path: str, query: dict[str, str], data: Any) -> tuple[int, Any]:
        rest = path.removeprefix("/api/v1")
        if rest == "/regions" and method == "GET":
            self._record(method, rest, "regions", "list")
            return 200, list(REGIONS)
        if rest == "/settings/wpc/topology":
            return self._topology(method, data)
        m = re.fullmatch(r"/access-groups(?:/([^/]+))?", rest)
        if m:
            return self._access_groups(method, m.group(1), query, data)
        m = re.fullmatch(r"/networks/(routes|connectors)(?:/([^/]+))?(/profile)?", rest)
        if m:
            kind, item, profile = m.groups()
            if profile:
                return self._profile(method, item)
            return (self._routes if kind == "routes" else self._connectors)(
                method, item, query, data
            )
        m = re.fullmatch(r"/networks(?:/([^/]+))?", rest)
        if m:
            return self._networks(method, m.group(1), query, data)
        raise ApiError(404, f"No handler found for {method} {path}")

    # --- who may reach what -----------------------------------------------------------------

    def _topology(self, method: str, data: Any) -> tuple[int, Any]:
        """GET answers the setting as plain text; PUT takes FULL_MESH or CUSTOM."""
        self._record(method, "/settings/wpc/topology", "settings", _verb(method, "topology"))
        if method == "GET":
            return 200, self.state.topology
        if method == "PUT":
            value = data if isinstance(data, str) else ""
            if value not in TOPOLOGIES:
                raise ApiError(400, f"topology must be one of {', '.join(TOPOLOGIES)}")
            self.state.topology = value
            return 200, value
        raise ApiError(405, "Request method not supported")

    def _access_groups(
        self, method: str, item: str | None, query: dict[str, str], data: Any
    ) -> tuple[int, Any]:
        self._record(method, f"/access-groups{'/' + item if item else ''}", "access-groups",
                     _verb(method, item), data)  # fmt: skip
        groups = self.state.access_groups
        if item is None and method == "GET":
            return 200, _page(list(groups.values()), query)
        if item is None and method == "POST":
            made = {"id": str(uuid.uuid4()), "defaultGroup": False, **_access_group(data)}
            groups[made["id"]] = made
            return 201, made
        group = groups.get(str(item))
        if group is None:
            raise ApiError(404, f"Access group with ID {item} not found")
        if method == "GET":
            return 200, group
        if method == "PUT":
            group.update(_access_group(data))
            return 200, group
        if method == "DELETE":
            del groups[group["id"]]
            return 204, None
        raise ApiError(405, "Request method not supported")

    def set_topology(self, value: str) -> None:
        """What an admin does in the portal (Settings > WPC > Topology)."""
        assert value in TOPOLOGIES
        with self.lock:
            self.state.topology = value

    def add_access_group(self, name: str, sources: list[dict[str, Any]],
                         destinations: list[dict[str, Any]]) -> str:  # fmt: skip
        """An admin's access group: `source` and `destination` items as the API takes them."""
        with self.lock:
            group = {"id": str(uuid.uuid4()), "defaultGroup": False,
                     **_access_group({"name": name, "source": sources,
                                      "destination": destinations})}  # fmt: skip
            self.state.access_groups[group["id"]] = group
            return str(group["id"])

    # --- networks -------------------------------------------------------------------------

    def _networks(
        self, method: str, item: str | None, query: dict[str, str], data: Any
    ) -> tuple[int, Any]:
        verb = _verb(method, item)
        self._record(method, f"/networks{'/' + item if item else ''}", "networks", verb, data)
        if item is None and method == "GET":
            views = [self._network_view(n) for n in self.state.networks.values()]
            return 200, _page(views, query)
        if item is None and method == "POST":
            return 201, self._create_network(data)
        network = self.state.networks.get(str(item))
        if network is None:
            raise ApiError(404, f"Network with ID {item} not found")
        if method == "GET":
            return 200, self._network_view(network)
        if method == "PUT":
            name = data.get("name") or network["name"]
            if self._name_taken(name, network["id"]):
                raise ApiError(409, f"Network with name {name} already exists")
            network.update(
                name=name,
                description=data.get("description", network["description"]),
                egress=bool(data.get("egress", network["egress"])),
                internetAccess=data.get("internetAccess", network["internetAccess"]),
            )
            return 200, self._network_view(network)
        if method == "DELETE":
            for r in self._routes_of(network["id"]):
                del self.state.routes[r["id"]]
            for c in self._connectors_of(network["id"]):
                del self.state.connectors[c["id"]]
            del self.state.networks[network["id"]]
            return 204, None
        raise ApiError(405, "Request method not supported")

    def _name_taken(self, name: str, other_than: str | None = None) -> bool:
        return any(
            n["name"] == name and n["id"] != other_than for n in self.state.networks.values()
        )

    def _create_network(self, data: dict[str, Any]) -> dict[str, Any]:
        name = str(data.get("name") or "")
        if not name:
            raise ApiError(400, "name: must not be blank")
        if self._name_taken(name):
            raise ApiError(409, f"Network with name {name} already exists")
        # a network may be made without connectors (the Terraform provider makes them so now,
        # and adds connectors as resources of their own); no source gives a name length limit
        connectors = data.get("connectors") or []
        if data.get("internetAccess", "SPLIT_TUNNEL_ON") not in (
            "SPLIT_TUNNEL_ON", "SPLIT_TUNNEL_OFF", "RESTRICTED_INTERNET"
        ):  # fmt: skip
            raise ApiError(400, f"internetAccess: {data.get('internetAccess')!r} is not valid")
        values = [_subnet(route.get("value")) for route in data.get("routes") or []]
        for i, value in enumerate(values):  # checked before anything is made
            self._clear_of_every_route(value)
            if any(
                ipaddress.ip_network(value).overlaps(ipaddress.ip_network(v)) for v in values[:i]
            ):
                raise ApiError(400, f"Route {value} overlaps another route of the request")
        for c in connectors:
            self._check_connector(c)
        network = {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": data.get("description") or "",
            "egress": bool(data.get("egress", False)),
            "internetAccess": data.get("internetAccess", "SPLIT_TUNNEL_ON"),
            "systemSubnets": [],
            "tunnelingProtocol": "OPENVPN",
        }
        self.state.networks[network["id"]] = network
        for route in data.get("routes") or []:
            self._add_route(network["id"], route)
        for c in connectors:
            self._add_connector(network["id"], c)
        return self._network_view(network)

    def _network_view(self, network: dict[str, Any]) -> dict[str, Any]:
        return {
            **network,
            "routes": [_route_view(r) for r in self._routes_of(network["id"])],
            "connectors": [dict(c) for c in self._connectors_of(network["id"])],
        }

    def _clear_of_every_route(self, subnet: str, but: str | None = None) -> None:
        """A route may not overlap any route of the account, of any network (the same subnet
        in the same network included): 400, as the Go client's e2e test meets it and picks its
        subnets clear of every network's routes."""
        new = ipaddress.ip_network(subnet)
        for r in self.state.routes.values():
            if r["id"] != but and ipaddress.ip_network(r["subnet"]).overlaps(new):
                owner = self.state.networks.get(r["networkItemId"], {}).get("name", "?")
                raise ApiError(
                    400, f"Route {subnet} overlaps route {r['subnet']} of network {owner}"
                )

    def _routes_of(self, network_id: str) -> list[dict[str, Any]]:
        return [r for r in self.state.routes.values() if r["networkItemId"] == network_id]

    def _connectors_of(self, network_id: str) -> list[dict[str, Any]]:
        return [c for c in self.state.connectors.values() if c["networkItemId"] == network_id]

    def _network_of(self, query: dict[str, str]) -> dict[str, Any]:
        network = self.state.networks.get(query.get("networkId", ""))
        if network is None:
            raise ApiError(404, f"Network with ID {query.get('networkId')} not found")
        return network

    # --- routes -----------------------------------------------------------------------------

    def _routes(
        self, method: str, item: str | None, query: dict[str, str], data: Any
    ) -> tuple[int, Any]:
        verb = _verb(method, item)
        self._record(method, f"/networks/routes{'/' + item if item else ''}", "routes", verb, data)
        if item is None and method == "GET":
            network = self._network_of(query)
            return 200, _page([_route_view(r) for r in self._routes_of(network["id"])], query)
        if item is None and method == "POST":
            network = self._network_of(query)
            return 201, _route_view(self._add_route(network["id"], data))
        route = self.state.routes.get(str(item))
        if route is None:
            raise ApiError(404, f"Route with ID {item} not found")
        if method == "GET":
            return 200, _route_view(route)
        if method == "PUT":
            subnet = _subnet(data.get("value", route["subnet"]))
            self._clear_of_every_route(subnet, but=route["id"])
            route.update(subnet=subnet, description=data.get("description", route["description"]))
            return 200, _route_view(route)
        if method == "DELETE":
            del self.state.routes[route["id"]]
            return 204, None
        raise ApiError(405, "Request method not supported")

    def _add_route(self, network_id: str, data: dict[str, Any]) -> dict[str, Any]:
        subnet = _subnet(data.get("value"))
        self._clear_of_every_route(subnet)
        route = {
            "id": str(uuid.uuid4()),
            "type": "IP_V4",
            "subnet": subnet,
            "description": data.get("description") or "",
            "networkItemId": network_id,
        }
        self.state.routes[route["id"]] = route
        return route

    # --- connectors -------------------------------------------------------------------------

    def _connectors(
        self, method: str, item: str | None, query: dict[str, str], data: Any
    ) -> tuple[int, Any]:
        verb = _verb(method, item)
        where = f"/networks/connectors{'/' + item if item else ''}"
        self._record(method, where, "connectors", verb, data)
        if item is None and method == "GET":
            network = self._network_of(query)
            return 200, _page([dict(c) for c in self._connectors_of(network["id"])], query)
        if item is None and method == "POST":
            network = self._network_of(query)
            self._check_connector(data)
            return 201, dict(self._add_connector(network["id"], data))
        connector = self.state.connectors.get(str(item))
        if connector is None:
            raise ApiError(404, f"Connector with ID {item} not found")
        if method == "GET":
            return 200, dict(connector)
        if method == "PUT":
            self._check_connector({**connector, **data})
            for key in ("name", "description", "vpnRegionId"):
                if key in data:
                    connector[key] = data[key]
            return 200, dict(connector)
        if method == "DELETE":  # (its network's last one too: a network may have none)
            del self.state.connectors[connector["id"]]
            return 204, None
        raise ApiError(405, "Request method not supported")

    def _check_connector(self, data: dict[str, Any]) -> None:
        if not data.get("name"):
            raise ApiError(400, "connectors.name: must not be blank")
        if data.get("vpnRegionId") not in {r["id"] for r in REGIONS}:
            raise ApiError(400, f"vpnRegionId: {data.get('vpnRegionId')!r} is not a VPN region")

    def _add_connector(self, network_id: str, data: dict[str, Any]) -> dict[str, Any]:
        address = VPN_RANGE.network_address + next(self._addresses)
        connector = {
            "id": str(uuid.uuid4()),
            "name": data["name"],
            "description": data.get("description") or "",
            "networkItemId": network_id,
            "networkItemType": "NETWORK",
            "vpnRegionId": data["vpnRegionId"],
            "ipV4Address": str(address),
            "ipV6Address": "",
            "tunnelingProtocol": "OPENVPN",
            "connectionStatus": "OFFLINE",
        }
        self.state.connectors[connector["id"]] = connector
        return connector

    def _profile(self, method: str, item: str | None) -> tuple[int, Any]:
        self._record(method, f"/networks/connectors/{item}/profile", "connectors", "profile")
        if method != "POST":
            raise ApiError(405, "Request method not supported")
        connector = self.state.connectors.get(str(item))
        if connector is None:
            raise ApiError(404, f"Connector with ID {item} not found")
        made = self.state.profiles.get(connector["id"], 0) + 1
        self.state.profiles[connector["id"]] = made
        if self.online_with_profile:
            connector["connectionStatus"] = "ONLINE"
        return 200, (
            "client\ndev tun\nproto udp\n"
            f"remote {connector['vpnRegionId']}.sandbox.openvpn.invalid 1194\n"
            f"# connector {connector['name']} ({connector['ipV4Address']}), profile {made}\n"
            f"<key>\nCLOUDCONNEXA-PRIVATE-KEY-{secrets.token_hex(16)}\n</key>\n"
        )


def _verb(method: str, item: str | None) -> str:
    """The call as the tests read it: get or list, create, update, delete."""
    verbs = {"GET": "get" if item else "list", "POST": "create", "PUT": "update"}
    return verbs.get(method, method.lower())


def _route_view(route: dict[str, Any]) -> dict[str, Any]:
    return {k: route[k] for k in ("id", "type", "subnet", "description")}


def _subnet(value: Any) -> str:
    try:
        network = ipaddress.IPv4Network(str(value), strict=True)
    except ValueError:
        raise ApiError(400, f"value: {value!r} is not a valid subnet") from None
    return str(network)


def _access_group(data: Any) -> dict[str, Any]:
    """An access group as the API keeps it, refused as the API refuses: a name, and each
    source and destination item of a known type, covering all or naming a parent."""
    if not isinstance(data, dict) or not str(data.get("name") or "").strip():
        raise ApiError(400, "name: must not be blank")
    out: dict[str, Any] = {"name": data["name"], "description": data.get("description", "")}
    for side, types in (("source", SOURCE_TYPES), ("destination", DESTINATION_TYPES)):
        items = data.get(side) or []
        if not items:
            raise ApiError(400, f"{side}: must not be empty")
        kept = []
        for i in items:
            if i.get("type") not in types:
                raise ApiError(400, f"{side}.type: {i.get('type')!r} is not one of "
                               f"{', '.join(types)}")  # fmt: skip
            if not i.get("allCovered") and not i.get("parent"):
                raise ApiError(400, f"{side}: an item covers all or names a parent")
            kept.append({"type": i["type"], "allCovered": bool(i.get("allCovered")),
                         "parent": i.get("parent"), "children": list(i.get("children") or [])})  # fmt: skip
        out[side] = kept
    return out


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    try:
        page, size = int(query.get("page", 0)), int(query.get("size", 10))
    except ValueError:
        raise ApiError(400, "page and size must be numbers") from None
    if page < 0 or not 1 <= size <= MAX_PAGE_SIZE:
        raise ApiError(400, f"page must be >= 0 and size between 1 and {MAX_PAGE_SIZE}")
    content = items[page * size : (page + 1) * size]
    return {
        "content": content,
        "numberOfElements": len(content),
        "page": page,
        "size": size,
        "success": True,
        "totalElements": len(items),
        "totalPages": (len(items) + size - 1) // size,
    }
