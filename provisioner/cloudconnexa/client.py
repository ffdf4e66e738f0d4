"""The VPN service's half: CloudConnexa (OpenVPN Cloud) through its API v1.

Per network of the topology: a Network named after it (our description marks it), one route per
subnet the topology resolves for it (flows: remote access hop 1, site-to-site hop 1), the egress
flag where the connector egresses (egress hop 1), and a connector in the VPN region whose
profile the API makes when the cloud's secret store takes it: in memory, never on disk, in the
output or a log. An external site's profile goes only where its `connector.profile_out` says.

Credentials come from the environment (CLOUDCONNEXA_CLIENT_ID, CLOUDCONNEXA_CLIENT_SECRET:
OAuth2 client credentials); the API is https://<cloud_id>.api.openvpn.com, or
CLOUDCONNEXA_API_URL (the sandbox's fake).
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from ipaddress import IPv4Network, ip_address
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..errors import CloudError, ProvisionerError, SpecError
from ..files import write_secret
from ..limits import limits
from ..model import (
    SERVICE_MARK,
    SERVICE_PLAN,
    AccessGroup,
    AccessItem,
    Action,
    Change,
    Kind,
    ObservedService,
    ProfileSupplier,
    ServiceConnector,
    ServiceNetwork,
    ServicePolicy,
    ServiceProfile,
    ServiceRoute,
    Topology,
    place_text,
    service_connector_name,
)
from ..redact import secret as protect_secret
from .pace import DEFAULT_DEADLINE, Pace, service_deadline
from .planner import members, our_connector, vpn_region

API_URL_VARIABLE = "CLOUDCONNEXA_API_URL"
CLIENT_ID_VARIABLE = "CLOUDCONNEXA_CLIENT_ID"
CLIENT_SECRET_VARIABLE = "CLOUDCONNEXA_CLIENT_SECRET"
PAGE_SIZE = 100
MAX_DESCRIPTION = 120  # what the Terraform provider validates (1-120) for a description


class CredentialsMissing(ProvisionerError):
    """No API credentials in the environment: nothing was read or changed on either side."""

    exit_code = 1


class ApiError(CloudError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def description(network: str, where: str, file_id: str | None = None) -> str:
    """What marks a service network as ours, names the file that made it, and records where
    its cloud half lives."""
    mark = f"{SERVICE_MARK}@{file_id}" if file_id else SERVICE_MARK
    whole = f"{mark}: {network}; cloud half: {where}"
    if len(whole) <= MAX_DESCRIPTION:
        return whole
    # too long for what the Terraform provider accepts (1-120): the place goes (it is read back
    # only to look for that network's connectors once it leaves the file), the owner stays
    return f"{mark}: {network}"[:MAX_DESCRIPTION]


class Api:
    """The API's calls: a token got once and again once when the API says it expired (401),
    429 waited out as the response asks (Retry-After, or X-RateLimit-Replenish-Rate/-Time),
    pages followed, error bodies (`errorMessage`) turned into one line."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        attempts: int = 6,
        max_wait: float = 20.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[str], None] | None = None,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = (client_id, client_secret)
        self.attempts, self.max_wait, self.timeout, self.sleep = attempts, max_wait, timeout, sleep
        # the API's rate limit, paced from what its answers say (pace.py), shared by the run's
        # threads: each call waits for its token rather than meeting a 429
        self.pace = Pace(clock=clock, sleep=sleep, progress=progress, deadline=deadline)
        self._token: str | None = None
        self._lock = threading.Lock()
        self.calls = 0  # requests sent, the token's included (the bench reads it)

    # --- the token ----------------------------------------------------------------------

    def _new_token(self) -> str:
        """The client credentials as the API's OAuth endpoint takes them from the official Go
        client: HTTP Basic and a JSON body, so that no URL (which errors and proxies print)
        ever carries the secret."""
        client_id, secret = self._client
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        protect_secret(basic)
        status, _, body = self._send(
            "POST",
            "/api/v1/oauth/token",
            {"grant_type": "client_credentials", "scope": "default"},
            None,
            basic=basic,
        )
        if status == 401:
            raise CloudError(
                f"CloudConnexa refused the API credentials ({CLIENT_ID_VARIABLE}="
                f"{client_id}): {_message(body)}; nothing was changed by this call"
            )
        if status != 200:
            raise ApiError(status, f"CloudConnexa token request: {status} {_message(body)}")
        token = json.loads(body).get("access_token")
        if not token:
            raise CloudError("CloudConnexa's token answer held no access_token")
        protect_secret(str(token))
        return str(token)

    def _current_token(self, stale: str | None = None) -> str:
        with self._lock:
            if self._token is None or self._token == stale:
                self._token = self._new_token()
            return self._token

    # --- requests -----------------------------------------------------------------------

    def call(
        self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None
    ) -> Any:
        """One API call: JSON in and out (plain text when the API answers text). Raises
        ApiError with the API's message."""
        url = f"/api/v1{path}" + (f"?{urlencode(query)}" if query else "")
        token = self._current_token()
        renewed = False
        for attempt in range(self.attempts):
            self.pace.before(f"{method} {path}")
            status, headers, raw = self._send(method, url, body, token)
            self.pace.after(headers, refused=status == 429)
            if status == 401 and not renewed:  # expired mid-run: one new token, then fail
                token, renewed = self._current_token(stale=token), True
                continue
            if status == 429 and self.pace.limit is not None and attempt + 1 < self.attempts:
                continue  # the next token, as the limit says: `pace.before` waits for it
            if (status == 429 or status >= 500) and attempt + 1 < self.attempts:
                self.sleep(self._wait(headers, attempt))
                continue
            if status >= 400:
                what = f"{method} {path}"
                if status == 401:
                    raise ApiError(status, f"{what}: 401 even with a new token: {_message(raw)}")
                if status == 429:
                    raise ApiError(
                        status, f"{what}: still throttled after {self.attempts} attempts"
                    )
                raise ApiError(status, f"{what}: {status} {_message(raw)}")
            if not raw:
                return None
            if headers.get("content-type", "").startswith("application/json"):
                return json.loads(raw)
            return raw.decode("utf-8")
        raise ApiError(429, f"{method} {path}: still throttled after {self.attempts} attempts")

    def pages(self, path: str, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paged list (`page` from 0, `totalPages`)."""
        out: list[dict[str, Any]] = []
        page = 0
        while True:
            answer = self.call("GET", path, {**(query or {}), "page": page, "size": PAGE_SIZE})
            out += answer.get("content") or []
            page += 1
            if page >= int(answer.get("totalPages") or 0):
                return out

    def _wait(self, headers: dict[str, str], attempt: int) -> float:
        """What the API asks (Retry-After, seconds or a date; else one token's replenish time),
        never less than a jittered backoff, never more than max_wait."""
        backoff = 0.5 * 2**attempt
        wait = backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311 - jitter only
        hint = headers.get("retry-after")
        if hint:
            if hint.isdigit():
                wait = max(wait, float(hint))
            else:
                when = email.utils.parsedate_to_datetime(hint)
                wait = max(wait, when.timestamp() - time.time())
        else:
            rate, period = (
                headers.get("x-ratelimit-replenish-rate"),
                headers.get("x-ratelimit-replenish-time"),
            )
            if rate and period and rate.isdigit() and period.isdigit() and int(rate) > 0:
                wait = max(wait, int(period) / int(rate))
        return min(wait, self.max_wait)

    def _send(
        self, method: str, url: str, body: Any, token: str | None, basic: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        elif basic:
            request.add_header("Authorization", f"Basic {basic}")
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:  # noqa: S310
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            path = url.split("?")[0]
            raise CloudError(
                f"CloudConnexa API at {self.base_url} cannot be reached ({method} {path}: "
                f"{reason}); nothing more was sent"
            ) from None


def _message(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:200]
    if isinstance(doc, dict):
        return str(doc.get("errorMessage") or doc.get("message") or doc.get("error") or doc)
    return str(doc)


def api_url(value: str | None) -> str | None:
    """CLOUDCONNEXA_API_URL, checked before any request: https://host[:port], or http:// to a
    loopback address (the sandbox's fake), with nothing else in it. Bad input otherwise."""
    if not value:
        return None
    shown = repr(value) if "@" not in value else "(a URL with credentials in it: not shown)"
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise SpecError(API_URL_VARIABLE, f"{shown} is not a URL") from None
    if parts.username or parts.password:
        raise SpecError(API_URL_VARIABLE, f"{shown}: credentials go in {CLIENT_ID_VARIABLE} and "
                        f"{CLIENT_SECRET_VARIABLE}, never in the URL")  # fmt: skip
    if not host or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise SpecError(
            API_URL_VARIABLE, f"{shown} is not a base URL like https://acme.api.openvpn.com"
        )
    if parts.scheme == "https" or (parts.scheme == "http" and _loopback(host)):
        return value.rstrip("/")
    raise SpecError(
        API_URL_VARIABLE, f"{shown} must be https:// (http:// only to a loopback address)"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def api_from_environment(cloud_id: str, progress: Callable[[str], None] | None = None) -> Api:
    client_id = os.environ.get(CLIENT_ID_VARIABLE, "")
    secret = os.environ.get(CLIENT_SECRET_VARIABLE, "")
    if not client_id or not secret:
        raise CredentialsMissing(
            f"service.cloudconnexa: set {CLIENT_ID_VARIABLE} and {CLIENT_SECRET_VARIABLE} "
            "(API credentials from the Administration portal, API & Logs > API); nothing "
            "was read or changed"
        )
    base = api_url(os.environ.get(API_URL_VARIABLE)) or f"https://{cloud_id}.api.openvpn.com"
    return Api(
        base, client_id, secret, timeout=limits().read, progress=progress,
        deadline=service_deadline(),
    )  # fmt: skip


class ServiceIds:
    """The service's ids of what is ours, as observe found them and apply made or removed them
    (threads of one apply share it): each topology network's service network, and its
    connectors (a pair has two, by member)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._networks: dict[str, str] = {}  # topology network -> service network id
        self._connectors: dict[tuple[str, int], str] = {}  # (network, member) -> connector id

    def connector(self, network: str, member: int = 0) -> str | None:
        with self._lock:
            return self._connectors.get((network, member))

    def set_connector(self, network: str, member: int, connector: str) -> None:
        with self._lock:
            self._connectors[(network, member)] = connector

    def found(self, topology: Topology, observed: ObservedService) -> None:
        """Ours among what observe read: each file network's service network and connectors."""
        for n in topology.networks:
            found = observed.network(n.name)
            if found is None:
                continue
            with self._lock:
                self._networks[n.name] = found.id
            for member in range(members(n)):
                ours = our_connector(found, n.name, vpn_region(n, topology), member)
                if ours is not None:
                    self.set_connector(n.name, member, ours.id)

    def made(self, topology: Topology, name: str, network: dict[str, Any]) -> None:
        """A service network the API made (or an interrupted run had made), its connectors in."""
        with self._lock:
            self._networks[name] = str(network["id"])
        for member in range(members(topology.network(name))):
            wanted = service_connector_name(name, member)
            ours = [c for c in network.get("connectors") or [] if c.get("name") == wanted]
            if ours:
                self.set_connector(name, member, str(ours[0]["id"]))

    def forget(self, network: str) -> None:
        with self._lock:
            self._networks.pop(network, None)
            for key in [k for k in self._connectors if k[0] == network]:
                del self._connectors[key]


class ServiceProfiles(ProfileSupplier):
    """Each connector's profile, made by the API once per process when a cloud's secret store
    takes it; kept in memory only."""

    def __init__(self, api: Api, ids: ServiceIds) -> None:
        self.api, self.ids = api, ids
        self._lock = threading.Lock()
        self._profiles: dict[str, bytes] = {}  # connector id -> its profile

    def profile_fingerprint(self, network: str, member: int = 0) -> str:
        found = self.ids.connector(network, member)
        return f"cc-{found[:13]}" if found else "cc-none"

    def profile(self, network: str, member: int = 0) -> bytes:
        """The profile of the network's connector (of a pair: `member`'s)."""
        connector = self.ids.connector(network, member)
        if connector is None:
            raise CloudError(
                f"{network}: no connector of ours on CloudConnexa to make a profile for"
            )
        with self._lock:
            cached = self._profiles.get(connector)
        if cached is None:
            text = self.api.call("POST", f"/networks/connectors/{connector}/profile")
            cached = str(text).encode("utf-8")
            with self._lock:
                self._profiles[connector] = cached
        return cached


class ServiceWriter:
    """Carries out the plan's service changes, one API call (or two) each. A service change
    names its network (`label`) and the service's ids: of the network (`ref`; of a route, for a
    route's delete), and of the connector it replaces or deletes (`previous_target`)."""

    def __init__(
        self, topology: Topology, api: Api, ids: ServiceIds, profiles: ServiceProfiles
    ) -> None:
        assert topology.service is not None
        self.topology, self.api, self.ids, self.profiles = topology, api, ids, profiles
        self.vpn_region = topology.service.vpn_region
        self.handlers: dict[tuple[Kind, Action], Callable[[Change], None]] = {
            (Kind.SERVICE_NETWORK, Action.CREATE): self._create_network,
            (Kind.SERVICE_NETWORK, Action.UPDATE): self._update_network,
            (Kind.SERVICE_NETWORK, Action.DELETE): self._delete_network,
            (Kind.SERVICE_ROUTE, Action.CREATE): self._create_route,
            (Kind.SERVICE_ROUTE, Action.DELETE): self._delete_route,
            (Kind.SERVICE_CONNECTOR, Action.CREATE): self._create_connector,
            (Kind.SERVICE_CONNECTOR, Action.DELETE): self._delete_connector,
            (Kind.PROFILE_OUT, Action.CREATE): self._write_profile_out,
            (Kind.PROFILE_OUT, Action.DELETE): self._remove_profile_out,
        }

    def write(self, change: Change) -> None:
        handler = self.handlers.get((change.kind, change.action))
        if handler is None:  # pragma: no cover - the planner makes no other
            raise CloudError(f"{change.summary()}: not a change the service side makes")
        handler(change)

    def _create_network(self, c: Change) -> None:
        name = c.label
        network = self.topology.network(name)
        region = c.target or self.vpn_region
        body = {
            "name": name,
            "description": description(name, _where(self.topology, name), self.topology.id),
            "internetAccess": "SPLIT_TUNNEL_ON",
            "egress": bool(network.connector and network.connector.egress),
            "routes": [
                {"value": str(s), "description": f"{SERVICE_MARK}: {name}"} for s in c.subnets
            ],
            "connectors": [
                {"name": service_connector_name(name, m), "description": f"{SERVICE_MARK}: {name}",
                 "vpnRegionId": region}
                for m in range(members(network))
            ],
        }  # fmt: skip
        try:
            made = self.api.call("POST", "/networks", body=body)
        except ApiError as e:
            if e.status != 409:
                raise
            # made by an interrupted run of ours? then it is done; else the plan was stale
            made = next((n for n in self.api.pages("/networks") if n.get("name") == name), None)
            if made is None or not str(made.get("description", "")).startswith(SERVICE_MARK):
                raise
        self.ids.made(self.topology, name, made)

    def _update_network(self, c: Change) -> None:
        network = self.topology.network(c.label)
        current = self.api.call("GET", f"/networks/{c.ref}")
        egress = bool(network.connector and network.connector.egress)
        # the network back whole, as read (the Go client's and the provider's update sends
        # tunnelingProtocol and gatewaysIds too: a PUT without them may clear them)
        keep = ("name", "description", "internetAccess", "tunnelingProtocol", "gatewaysIds")
        body = {k: current[k] for k in keep if k in current}
        self.api.call("PUT", f"/networks/{c.ref}", body={**body, "egress": egress})

    def _delete_network(self, c: Change) -> None:
        _gone(lambda: self.api.call("DELETE", f"/networks/{c.ref}"))
        self.ids.forget(c.label)

    def _create_route(self, c: Change) -> None:
        body = {"value": str(c.destination), "description": f"{SERVICE_MARK}: {c.label}"}
        try:
            self.api.call("POST", "/networks/routes", {"networkId": c.ref}, body)
        except ApiError as e:
            if e.status not in (400, 409):
                raise
            # refused: made by an interrupted run of ours (then done), or overlapping another
            # route of the account: told by reading the network's routes, not by the status
            there = self.api.pages("/networks/routes", {"networkId": str(c.ref)})
            if not any(str(r.get("subnet")) == str(c.destination) for r in there):
                raise

    def _delete_route(self, c: Change) -> None:
        _gone(lambda: self.api.call("DELETE", f"/networks/routes/{c.ref}"))

    def _create_connector(self, c: Change) -> None:
        name, network_id = c.label, str(c.ref)
        body = {
            "name": service_connector_name(name, c.member, c.generation),
            "description": f"{SERVICE_MARK}: {name}",
            "vpnRegionId": c.target or self.vpn_region,
        }
        made = self.api.call("POST", "/networks/connectors", {"networkId": network_id}, body)
        self.ids.set_connector(name, c.member, str(made["id"]))

    def _delete_connector(self, c: Change) -> None:
        where = {"networkId": str(c.ref)}
        gone = f"/networks/connectors/{c.previous_target}"
        _gone(lambda: self.api.call("DELETE", gone, where))

    def _write_profile_out(self, c: Change) -> None:
        out = self.topology.network(c.label).profile_out
        assert out is not None
        write_secret(out, self.profiles.profile(c.label))

    def _remove_profile_out(self, c: Change) -> None:
        out = self.topology.network(c.label).profile_out
        assert out is not None
        out.unlink(missing_ok=True)


class CloudConnexaSide(ProfileSupplier):
    """The service's half of a deployment, behind the providers' interface: observes (and
    remembers its ids in `ids`), applies the plan's `cloudconnexa` changes (`ServiceWriter`),
    and hands out the profiles the cloud providers store (`ServiceProfiles`)."""

    network = SERVICE_PLAN
    concurrency = 4
    throttle_scope = "cloudconnexa"

    def __init__(
        self,
        topology: Topology,
        api: Api | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        assert topology.service is not None
        self.topology = topology
        self.service = topology.service
        self.api = api or api_from_environment(self.service.cloud_id, progress)
        self.ids = ServiceIds()
        self.profiles = ServiceProfiles(self.api, self.ids)
        self.writer = ServiceWriter(topology, self.api, self.ids, self.profiles)
        for n in topology.networks:
            if n.connector is None:
                continue
            for profile in (n.connector.profile, n.connector.standby_profile):
                if isinstance(profile, ServiceProfile):
                    profile.source = self

    def observe(self) -> ObservedService:
        """The VPN regions and every network with its routes and connectors: one call for the
        regions and one per page of networks (each network carries its routes and connectors).
        An unknown VPN region is bad input."""
        regions = tuple(str(r["id"]) for r in self.api.call("GET", "/regions"))
        wanted = {self.service.vpn_region: "service.cloudconnexa.vpn_region"}
        for n in self.topology.managed:
            if n.connector is not None and n.connector.vpn_region:
                wanted[n.connector.vpn_region] = f"networks.{n.name}.connector.vpn_region"
        for region, field in wanted.items():
            if region not in regions:
                raise SpecError(
                    field,
                    f"{region!r} is not a VPN region of the API (it lists: {', '.join(regions)})",
                )
        networks = tuple(parse_network(n, self.topology.id) for n in self.api.pages("/networks"))
        observed = ObservedService(regions=regions, networks=networks)
        self.ids.found(self.topology, observed)
        return observed

    def policy(self) -> ServicePolicy:
        """Who may reach what (doctor and status only): see `read_policy`."""
        return read_policy(self.api)

    def profile_fingerprint(self, network: str, member: int = 0) -> str:
        return self.profiles.profile_fingerprint(network, member)

    def connector_status(self, network: str, member: int = 0) -> tuple[str, str]:
        connector = self.ids.connector(network, member)
        if connector is None:
            raise CloudError(f"{network}: no connector of ours on CloudConnexa to ask about")
        found = self.api.call("GET", f"/networks/connectors/{connector}")
        return str(found.get("name") or connector), str(found.get("connectionStatus") or "")

    def profile(self, network: str, member: int = 0) -> bytes:
        return self.profiles.profile(network, member)

    def batch_key(self, change: Change) -> None:
        return None

    def apply(self, changes: Sequence[Change]) -> None:
        for change in changes:
            try:
                self.writer.write(change)
            except ApiError as e:
                raise CloudError(f"{change.summary()}: {e.message}") from None


def _gone(call: Callable[[], Any]) -> None:
    """A delete of what is already gone (an interrupted run) is done."""
    try:
        call()
    except ApiError as e:
        if e.status != 404:
            raise


def parse_network(doc: dict[str, Any], file_id: str | None = None) -> ServiceNetwork:
    """A network as the API answers it (its routes and connectors inline)."""
    return ServiceNetwork(
        file=file_id,
        id=str(doc["id"]),
        name=str(doc.get("name", "")),
        description=str(doc.get("description") or ""),
        egress=bool(doc.get("egress")),
        routes=tuple(
            ServiceRoute(
                id=str(r["id"]),
                subnet=IPv4Network(str(r["subnet"]), strict=False),
                ours=str(r.get("description") or "").startswith(SERVICE_MARK),
            )
            for r in doc.get("routes") or []
            if r.get("type", "IP_V4") == "IP_V4" and r.get("subnet")
        ),
        connectors=tuple(
            ServiceConnector(
                id=str(c["id"]),
                name=str(c.get("name", "")),
                region=str(c.get("vpnRegionId", "")),
                address=str(c.get("ipV4Address") or ""),
                status=str(c.get("connectionStatus") or "UNKNOWN"),
                ours=str(c.get("description") or "").startswith(SERVICE_MARK),
            )
            for c in doc.get("connectors") or []
        ),
    )


def read_policy(api: Api) -> ServicePolicy:
    """The account's topology setting, and with CUSTOM its access groups (one call per page).
    A credential that may not read them gets the reason, not an error: the doctor then cannot
    judge the service's hop."""
    try:
        topology = str(api.call("GET", "/settings/wpc/topology") or "").strip().strip('"')
        if topology == "FULL_MESH":
            return ServicePolicy(topology)
        groups = tuple(_access_group(g) for g in api.pages("/access-groups"))
    except ApiError as e:
        return ServicePolicy(error=str(e))
    return ServicePolicy(topology, groups)


def _access_group(doc: dict[str, Any]) -> AccessGroup:
    def items(side: str) -> tuple[AccessItem, ...]:
        return tuple(
            AccessItem(
                str(i.get("type")),
                bool(i.get("allCovered")),
                (str(i["parent"]) if i.get("parent") else None),
                tuple(
                    str(c.get("id", c)) if isinstance(c, dict) else str(c)
                    for c in i.get("children") or ()
                ),
            )  # fmt: skip
            for i in doc.get(side) or ()
        )

    return AccessGroup(str(doc.get("id")), str(doc.get("name")), items("source"),
                       items("destination"))  # fmt: skip


def _where(topology: Topology, name: str) -> str:
    network = topology.network(name)
    if network.location is None:
        return "external"
    return place_text(network.cloud, network.location)
