"""A fake of the Oracle Cloud APIs a connector touches (Core: networking and compute; Identity:
compartments, availability domains, dynamic groups, policies; KMS vaults and keys; Vault
secrets; Secret retrieval),
served over HTTP on 127.0.0.1 so that the `oci` SDK talks to it as to OCI.

What it keeps of OCI (the tests rely on each):
- A route table's rules are replaced whole by PUT; an `If-Match` that is not the table's
  current etag is 412 `NoEtagMatch`, and every write gives a new etag.
- A route rule's `networkEntityId` must be an existing gateway or private IP; a private IP may
  be a route target only when its VNIC skips the source/destination check (OCI's documentation
  on using a private IP as a route target). Destinations are unique within a table. A rule
  sent back exactly as the table holds it is not checked again: its private IP may be gone
  since (a blackhole), and refusing it would make every writer lose the table.
- NSG security rules are added and removed by id; an NSG with VNICs in it cannot be deleted.
- A secondary private IP is made on a VNIC, moved to another VNIC of the same subnet
  (UpdatePrivateIp: route rules naming it follow it) and deleted (a route rule naming it stays,
  a blackhole); a primary one is none of these.
- Lifecycle states: an instance is PROVISIONING until it is read once, then RUNNING;
  terminating is TERMINATING, then TERMINATED (its VNIC and private IP go). A secret is CREATING,
  then ACTIVE; a secret scheduled for deletion is PENDING_DELETION and cannot be deleted sooner.
- Compartments (Identity): CREATING, then ACTIVE at the next read, and nothing can be made in
  one before; a name unique among its parent's compartments (409 `CompartmentAlreadyExists`);
  a delete is accepted (202, a work request), DELETING, and ends ACTIVE again while anything is
  inside, else DELETED with a suffix on its name.
- Vaults and keys (KMS): a vault is CREATING, then ACTIVE, with a `managementEndpoint` of its own
  (a path on this server); its keys are made and read only there, CREATING then ENABLED, with
  the key shapes OCI lists; both are deleted only by scheduling (PENDING_DELETION).
- A VCN, subnet or gateway is not deleted while something depends on it (409 `Conflict`); a
  VCN's default route table goes with it and only with it.
- Errors in OCI's body `{"code", "message"}` with an `opc-request-id`: 404
  `NotAuthorizedOrNotFound`, 409 `Conflict`, 412 `NoEtagMatch`, 400 `InvalidParameter`, 401
  `NotAuthenticated` without a signature, 429 `TooManyRequests` (faults, with Retry-After).
- Secret contents are returned only by the secret-retrieval API (`secretbundles`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ...fakeserver import Call, Faults, Injectable, stand_in_word
from ...watchdog import HA_TAG, WATCH_TAG

PUBLIC_POOL = ipaddress.IPv4Network("203.0.113.0/24")  # documentation addresses only
SHAPES = ("VM.Standard.E4.Flex", "VM.Standard.E5.Flex", "VM.Standard2.1", "VM.Standard.A1.Flex")
TARGET_KINDS = (
    "internetgateway",
    "natgateway",
    "privateip",
    "drg",
    "servicegateway",
    "localpeeringgateway",
)
PROTOCOLS = ("all", "1", "6", "17", "58")
GONE = {("secrets", "PENDING_DELETION"), ("instances", "TERMINATED")}


class OciError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def not_found() -> OciError:
    return OciError(
        404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource not found."
    )


def invalid(message: str) -> OciError:
    return OciError(400, "InvalidParameter", message)


@dataclass
class OciState:
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # ocid -> as stored
    payloads: dict[str, list[str]] = field(default_factory=dict)  # secret ocid -> base64 versions


class Oci(Injectable):
    """The in-memory OCI. `handle` answers one request; `serve` puts it on 127.0.0.1."""

    name = "fake-oci"
    not_mutating = frozenset({"getByPrivateIpId"})

    def __init__(self, region: str = "eu-frankfurt-1") -> None:
        self.region = region
        self.state = OciState()
        # OCI's Networking limits (fixed per table and NSG; a test lowers them)
        self.limits = {"route-rules": 200, "nsg-rules": 120}
        self.lock = threading.RLock()
        self.faults = Faults()
        self.calls: list[Call] = []
        self.errors: list[str] = []
        # reads an instance stays PROVISIONING / STARTING / TERMINATING after the call that
        # put it there (0: the next read finds it done; oci.wait_until then sleeps a second)
        self.settle_reads = 0
        self.base_url = ""  # where it is served, as the last request named it (vault endpoints)
        self._n = itertools.count(1)
        self._created = itertools.count(1)
        # a connector's instance says on its console that its tunnel is up (a test turns it
        # off to be the one that never comes up)
        self.vms_report_ready = True
        self.console_captures_fail = 0  # the next so many console captures end FAILED
        self._public = itertools.count(70)  # (GCE's from .10, ARM's from .11: told apart)
        self.tenancy = self.ocid("tenancy", region=False)
        self.store(
            {
                "id": self.tenancy,
                "_kind": "compartments",
                "name": "sandbox",
                "compartmentId": self.tenancy,
                "lifecycleState": "ACTIVE",
            }
        )

    # --- what a test or the sandbox does directly ---------------------------------------------

    def created(self) -> str:
        """Each resource's own timeCreated, later than the one before (OCI's has milliseconds):
        a connector made beside another is told from it as the newer."""
        import datetime

        step = next(self._created)
        at = datetime.datetime(2026, 11, 25, 8, tzinfo=datetime.UTC) + datetime.timedelta(
            milliseconds=step
        )
        return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"

    def ocid(self, kind: str, region: bool = True) -> str:
        unique = hashlib.sha256(f"{kind}{next(self._n)}".encode()).hexdigest()[:32]
        return f"ocid1.{kind}.oc1.{self.region if region else ''}.{unique}"

    def store(self, body: dict[str, Any]) -> dict[str, Any]:
        body.setdefault("_etag", uuid.uuid4().hex[:16])
        self.state.resources[body["id"]] = body
        return body

    def add_compartment(self, name: str) -> str:
        ocid = self.ocid("compartment", region=False)
        self.store(
            {
                "id": ocid,
                "_kind": "compartments",
                "name": name,
                "compartmentId": self.tenancy,
                "lifecycleState": "ACTIVE",
            }
        )
        return ocid

    def add_vault(self, compartment: str) -> tuple[str, str]:
        """(vault OCID, key OCID): what an admin made beforehand and names in the file."""
        vault = self.store(
            {
                "id": self.ocid("vault"),
                "_kind": "vaults",
                "compartmentId": compartment,
                "lifecycleState": "ACTIVE",
            }
        )
        key = self.store(
            {
                "id": self.ocid("key"),
                "_kind": "keys",
                "vaultId": vault["id"],
                "compartmentId": compartment,
                "lifecycleState": "ENABLED",
            }
        )
        return vault["id"], key["id"]

    def add_image(
        self,
        compartment: str,
        os_name: str = "Canonical Ubuntu",
        version: str = "24.04",
        released: str = "2026.11.01",
    ) -> str:
        """A platform image (Oracle publishes each Ubuntu release as a new one)."""
        day = released.replace(".", "-")
        image = self.store({
            "id": self.ocid("image"), "_kind": "images", "compartmentId": None,
            "displayName": f"{os_name.replace(' ', '-')}-{version}-{released}-0", "operatingSystem": os_name,
            "operatingSystemVersion": version, "lifecycleState": "AVAILABLE",
            "timeCreated": f"{day}T00:00:00.000Z",
        })  # fmt: skip
        return str(image["id"])

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [self.view(r) for r in self.state.resources.values() if r["_kind"] == kind]

    def get(self, ocid: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.state.resources.get(ocid)
            return self.view(found) if found else None

    def snapshot(self) -> dict[str, Any]:
        """Everything held, as stored (etags aside): equal before apply and after destroy, but
        for what OCI itself keeps a while: secrets pending deletion (deleted one day at the
        soonest) and terminated instances (listed for a while after)."""
        with self.lock:
            return copy.deepcopy({
                k: {x: y for x, y in v.items() if x != "_etag"}
                for k, v in self.state.resources.items()
                if (v["_kind"], v.get("lifecycleState")) not in GONE
            })  # fmt: skip

    def secret_content(self, ocid: str) -> str | None:
        with self.lock:
            versions = self.state.payloads.get(ocid)
            return base64.b64decode(versions[-1]).decode() if versions else None

    def view(self, stored: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in stored.items() if not k.startswith("_")}
        if stored["_kind"] == "vaults":  # its endpoints: paths on this server, wherever it is
            out["managementEndpoint"] = f"{self.base_url}/kms-management/{stored['id']}"
            out["cryptoEndpoint"] = f"{self.base_url}/kms-crypto/{stored['id']}"
        return out

    # --- HTTP ---------------------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: dict[str, str], body: bytes, base: str
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        path = unquote(parts.path)
        query = {k: v for k, v in parse_qs(parts.query).items()}
        vault = None  # a vault's management endpoint: what its keys' calls are sent to
        m = re.match(r"^/kms-management/([^/]+)(/.*)$", path)
        if m:
            vault, path = m.group(1), m.group(2)
        request_id = {"opc-request-id": uuid.uuid4().hex.upper()}
        try:
            fault = self.faults.due(method, path)
            if fault is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                raise OciError(fault.status, fault.code, fault.message, extra)
            if not headers.get("authorization", "").startswith("Signature "):
                raise OciError(
                    401,
                    "NotAuthenticated",
                    "The required information to complete authentication was not provided.",
                )
            data = json.loads(body) if body else {}
            with self.lock:
                self.base_url = base
                status, out, extra = self._route(
                    method, path, {k: v[0] for k, v in query.items()}, data, headers, vault
                )
            if isinstance(out, Raw):
                return status, {"Content-Type": "application/octet-stream", **request_id}, out
            return (
                status,
                {"Content-Type": "application/json", **extra, **request_id},
                json.dumps(out).encode() if out is not None else b"",
            )
        except Exception as e:  # a fault of the fake's own is a 500 that says so
            if not isinstance(e, OciError):
                self.errors.append(f"{method} {path}: {type(e).__name__}: {e}")
                e = OciError(
                    500, "InternalServerError", f"the fake failed: {type(e).__name__}: {e}"
                )
            err = {"code": e.code, "message": e.message}
            return (
                e.status,
                {"Content-Type": "application/json", **e.headers, **request_id},
                json.dumps(err).encode(),
            )

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        data: Any,
        headers: dict[str, str],
        vault: str | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        m = re.match(r"^/(\d{8})/([A-Za-z]+)(?:/([^/]+))?(?:/(.+))?$", path)
        if m is None:
            raise OciError(404, "NotFound", f"No route for {path}")
        _version, kind, ocid, rest = m.groups()
        if (kind == "keys") != (vault is not None):  # keys live at their vault's endpoint only
            raise OciError(404, "NotFound", f"No route for {path} at this endpoint")
        if vault is not None:
            found = self.state.resources.get(vault)
            if found is None or found["_kind"] != "vaults":
                raise not_found()
            query = {**query, "vaultId": vault}
            if method == "POST" and ocid is None:
                data = {**data, "vaultId": vault}
            if ocid and ocid != "actions":
                key = self.state.resources.get(ocid)
                if key is not None and key.get("vaultId") != vault:
                    raise not_found()
        if kind == "secretbundles" and method == "GET" and ocid and not rest:
            self._record(method, path.split("/", 2)[2], kind, "get")
            secret = self.state.resources.get(ocid)
            if (
                secret is None
                or secret["_kind"] != "secrets"
                or secret["lifecycleState"] == "PENDING_DELETION"
            ):
                raise not_found()
            versions = self.state.payloads[ocid]
            bundle = {
                "secretId": ocid,
                "versionNumber": len(versions),
                "stages": ["CURRENT", "LATEST"],
                "secretBundleContent": {"contentType": "BASE64", "content": versions[-1]},
            }
            return 200, bundle, {}
        handler = HANDLERS.get(kind)
        if handler is None:
            raise OciError(404, "NotFound", f"No route for {path}")
        call_path = path.split("/", 2)[2]
        if ocid is None:
            if method == "GET":
                self._record(method, call_path, kind, "list")
                return 200, self._list(kind, query), {}
            if method == "POST":
                self._record(method, call_path, kind, "create", data)
                found = handler.create(self, data)
                return 200, self.view(found), {"etag": found["_etag"]}
        elif ocid == "actions" and rest:
            self._record(method, call_path, kind, rest.split("/")[-1], data)
            return 200, handler.actions[rest](self, None, data, query), {}
        else:
            stored = self.state.resources.get(ocid)
            if stored is None or stored["_kind"] != kind:
                self._record(method, call_path, kind, "get" if method == "GET" else method.lower())
                raise not_found()
            if rest:
                verb = rest.split("/")[-1]
                self._record(method, call_path, kind, verb, data)
                action = handler.actions.get(rest if method == "POST" else f"GET {rest}")
                if action is None:
                    raise OciError(404, "NotFound", f"No route for {path}")
                return 200, action(self, stored, data, query), {"etag": stored["_etag"]}
            if method == "GET":
                self._record(method, call_path, kind, "get")
                handler.read(self, stored)
                return 200, self.view(stored), {"etag": stored["_etag"]}
            if method == "POST" and "action" in query:  # instances: ?action=START
                self._record(method, call_path, kind, query["action"].lower())
                handler.actions[query["action"]](self, stored, data, query)
                return 200, self.view(stored), {"etag": stored["_etag"]}
            self._check_etag(stored, headers)
            if method == "PUT":
                self._record(method, call_path, kind, "update", data)
                handler.update(self, stored, data)
                stored["_etag"] = uuid.uuid4().hex[:16]
                return 200, self.view(stored), {"etag": stored["_etag"]}
            if method == "DELETE":
                self._record(method, call_path, kind, "delete")
                if handler.delete is None:
                    raise OciError(404, "NotFound", f"DELETE of {kind} is not served by the fake")
                accepted = handler.delete(self, stored)  # (status, headers) when asynchronous
                return (*accepted[:1], None, accepted[1]) if accepted else (204, None, {})
        raise OciError(404, "NotFound", f"No route for {method} {path}")

    def _check_etag(self, stored: dict[str, Any], headers: dict[str, str]) -> None:
        wanted = headers.get("if-match")
        if wanted and wanted != stored["_etag"]:
            raise OciError(
                412,
                "NoEtagMatch",
                "The resource's etag does not match the value of the If-Match header.",
            )

    def _record(self, method: str, path: str, kind: str, verb: str, body: Any = None) -> None:
        self.calls.append(Call(method, path, kind, verb, body=_redacted(copy.deepcopy(body))))

    def _list(self, kind: str, query: dict[str, str]) -> list[dict[str, Any]]:
        filters = {
            k: v
            for k, v in query.items()
            if k
            in (
                "compartmentId",
                "vcnId",
                "vnicId",
                "subnetId",
                "instanceId",
                "vaultId",
                "name",
                "displayName",  # ListInstances, ListVcns...: an exact match, as OCI's
                "lifecycleState",
                "operatingSystem",
                "operatingSystemVersion",
            )
        }
        out = []
        for r in self.state.resources.values():
            if r["_kind"] != kind:
                continue
            if all(
                (k == "compartmentId" and kind == "images")  # platform images: every tenancy's
                or r.get("secretName" if (k, kind) == ("name", "secrets") else k) == v
                for k, v in filters.items()
            ):
                out.append(self.view(r))
        if query.get("sortBy") in ("TIMECREATED", "DISPLAYNAME"):  # as the List calls sort
            key = "timeCreated" if query["sortBy"] == "TIMECREATED" else "displayName"
            descending = query.get("sortOrder", "DESC" if key == "timeCreated" else "ASC")
            out.sort(key=lambda r: str(r.get(key) or ""), reverse=descending == "DESC")
        if kind == "availabilityDomains":
            return [
                {
                    "name": f"Uocm:{self.region.upper()}-AD-{i}",
                    "compartmentId": query.get("compartmentId"),
                }
                for i in (1, 2, 3)
            ]
        return out

    def next_public_ip(self) -> str:
        return str(PUBLIC_POOL.network_address + next(self._public))


def _redacted(body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("secretContent"), dict):
        return {**body, "secretContent": {**body["secretContent"], "content": "(redacted)"}}
    return body


# --- kinds --------------------------------------------------------------------------------------


@dataclass
class ResourceType:
    """How the fake serves one resource type: what its writes check and do."""

    create: Any = None
    update: Any = None
    delete: Any = None
    read: Any = lambda oci, stored: None
    actions: dict[str, Any] = field(default_factory=dict)


def _need(oci: Oci, ocid: Any, kind: str, what: str) -> dict[str, Any]:
    found = oci.state.resources.get(str(ocid))
    if found is None or found["_kind"] != kind:
        raise invalid(f"{what} {ocid!r} does not exist or is not authorized")
    return found


def _base(
    oci: Oci, kind: str, ocid_kind: str, data: dict[str, Any], state: str = "AVAILABLE"
) -> dict[str, Any]:
    if "compartmentId" not in data:
        raise invalid("compartmentId is required")
    compartment = _need(oci, data["compartmentId"], "compartments", "compartment")
    if compartment["lifecycleState"] != "ACTIVE":  # a new one is CREATING until read ACTIVE
        raise invalid(f"compartment Ocid not found in Compartment Tree! ({data['compartmentId']})")
    body = {k: v for k, v in data.items() if v is not None}
    body.update(
        id=oci.ocid(ocid_kind),
        _kind=kind,
        lifecycleState=state,
        timeCreated=oci.created(),
    )
    body.setdefault("freeformTags", {})
    body.setdefault("definedTags", {})
    return body


def _create_vcn(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    body = _base(oci, "vcns", "vcn", data)
    body["cidrBlocks"] = data.get("cidrBlocks") or [data["cidrBlock"]]
    oci.store(body)
    table = oci.store(
        _base(
            oci,
            "routeTables",
            "routetable",
            {
                "compartmentId": data["compartmentId"],
                "vcnId": body["id"],
                "displayName": f"Default Route Table for {body.get('displayName')}",
                "routeRules": [],
            },
        )
    )
    body["defaultRouteTableId"] = table["id"]
    default = oci.store(
        _base(
            oci,
            "securityLists",
            "securitylist",
            {
                "compartmentId": data["compartmentId"],
                "vcnId": body["id"],
                "displayName": f"Default Security List for {body.get('displayName')}",
                # what OCI puts in a new VCN's default list: SSH and path-MTU ICMP in, all out
                "ingressSecurityRules": [
                    {"protocol": "6", "source": "0.0.0.0/0", "isStateless": False,
                     "tcpOptions": {"destinationPortRange": {"min": 22, "max": 22}}},
                    {"protocol": "1", "source": "0.0.0.0/0", "isStateless": False,
                     "icmpOptions": {"type": 3, "code": 4}},
                    {"protocol": "1", "source": body["cidrBlocks"][0], "isStateless": False,
                     "icmpOptions": {"type": 3}},
                ],
                "egressSecurityRules": [
                    {"protocol": "all", "destination": "0.0.0.0/0", "isStateless": False}
                ],
            },
        )
    )  # fmt: skip
    body["defaultSecurityListId"] = default["id"]
    return body


def _create_security_list(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    _need(oci, data.get("vcnId"), "vcns", "vcnId")
    _check_security_rules(data)
    return oci.store(_base(oci, "securityLists", "securitylist", data))


def _update_security_list(oci: Oci, stored: dict[str, Any], data: dict[str, Any]) -> None:
    """PUT replaces each rule list given, whole."""
    _check_security_rules(data)
    for key in ("ingressSecurityRules", "egressSecurityRules", "displayName"):
        if key in data and data[key] is not None:
            stored[key] = data[key]


def _check_security_rules(data: dict[str, Any]) -> None:
    for way, peer in (("ingressSecurityRules", "source"), ("egressSecurityRules", "destination")):
        for i, rule in enumerate(data.get(way) or []):
            if str(rule.get("protocol")) not in PROTOCOLS:
                raise invalid(f"{way}[{i}].protocol {rule.get('protocol')!r} is not supported")
            try:
                ipaddress.IPv4Network(str(rule.get(peer)))
            except ValueError:
                raise invalid(f"{way}[{i}].{peer} {rule.get(peer)!r} is not a CIDR block") from None


def _subnets_using(oci: Oci, stored: dict[str, Any]) -> list[dict[str, Any]]:
    vcn = oci.state.resources.get(stored.get("vcnId", ""), {})
    if vcn.get("defaultSecurityListId") == stored["id"]:
        return [vcn]  # a VCN's default list goes only with it
    return [
        r
        for r in oci.state.resources.values()
        if r["_kind"] == "subnets" and stored["id"] in (r.get("securityListIds") or [])
    ]


def _create_subnet(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    vcn = _need(oci, data.get("vcnId"), "vcns", "vcnId")
    body = _base(oci, "subnets", "subnet", data)
    cidr = ipaddress.IPv4Network(data["cidrBlock"])
    if not any(cidr.subnet_of(ipaddress.IPv4Network(c)) for c in vcn["cidrBlocks"]):
        raise invalid(f"cidrBlock {cidr} is not within the VCN's CIDR blocks")
    body.setdefault("routeTableId", vcn["defaultRouteTableId"])
    _need(oci, body["routeTableId"], "routeTables", "routeTableId")
    body["securityListIds"] = data.get("securityListIds") or [vcn["defaultSecurityListId"]]
    if len(body["securityListIds"]) > 5:
        raise invalid("securityListIds: a subnet has at most 5 security lists")
    for ref in body["securityListIds"]:
        _need(oci, ref, "securityLists", "securityListIds")
    body.setdefault("prohibitPublicIpOnVnic", False)
    body["virtualRouterIp"] = str(cidr.network_address + 1)
    return oci.store(body)


def _create_gateway(kind: str, ocid_kind: str) -> Any:
    def create(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
        _need(oci, data.get("vcnId"), "vcns", "vcnId")
        return oci.store(_base(oci, kind, ocid_kind, data))

    return create


def _check_rules(
    oci: Oci, rules: list[dict[str, Any]], kept: list[dict[str, Any]] | None = None
) -> None:
    """Refuse a rule list OCI would refuse. A rule sent back exactly as the table holds it is
    not checked again (its target may be gone since: a blackhole, not a new mistake)."""
    seen: set[str] = set()
    unchanged = [_rule_key(r) for r in kept or []]
    for i, rule in enumerate(rules):
        destination = rule.get("destination") or rule.get("cidrBlock")
        try:
            ipaddress.IPv4Network(str(destination))
        except ValueError:
            raise invalid(
                f"routeRules[{i}].destination {destination!r} is not a valid CIDR block"
            ) from None
        if destination in seen:
            raise invalid(
                f"routeRules[{i}]: a rule for {destination} is already in the route table"
            )
        seen.add(str(destination))
        if rule.get("destinationType", "CIDR_BLOCK") != "CIDR_BLOCK":
            raise invalid(f"routeRules[{i}].destinationType must be CIDR_BLOCK here")
        if _rule_key(rule) in unchanged:
            continue
        target = str(rule.get("networkEntityId", ""))
        kind = target.split(".")[1] if target.count(".") > 2 else ""
        if kind not in TARGET_KINDS or target not in oci.state.resources:
            raise invalid(
                f"routeRules[{i}].networkEntityId {target!r} does not exist or is not a valid route target"
            )
        if kind == "privateip":
            vnic = oci.state.resources.get(oci.state.resources[target]["vnicId"], {})
            if not vnic.get("skipSourceDestCheck"):
                raise invalid(
                    f"routeRules[{i}].networkEntityId {target!r}: a private IP can be a route target only "
                    "when its VNIC skips the source/destination check"
                )


def _rule_key(rule: dict[str, Any]) -> tuple[str, str]:
    return (str(rule.get("destination")), str(rule.get("networkEntityId")))


def _create_route_table(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    _need(oci, data.get("vcnId"), "vcns", "vcnId")
    _check_rules(oci, data.get("routeRules") or [])
    _route_rules_limit(oci, data.get("routeRules") or [])
    body = _base(oci, "routeTables", "routetable", data)
    body.setdefault("routeRules", [])
    return oci.store(body)


def _route_rules_limit(oci: Oci, rules: list[dict[str, Any]]) -> None:
    if len(rules) > oci.limits["route-rules"]:  # refused whole: the table keeps what it held
        raise OciError(400, "LimitExceeded", f"A route table holds at most "
                       f"{oci.limits['route-rules']} route rules ({len(rules)} given).")  # fmt: skip


def _update_route_table(oci: Oci, stored: dict[str, Any], data: dict[str, Any]) -> None:
    if "routeRules" in data:
        _route_rules_limit(oci, data["routeRules"] or [])
        _check_rules(oci, data["routeRules"] or [], stored["routeRules"])
        stored["routeRules"] = [
            {"destinationType": "CIDR_BLOCK", **r} for r in data["routeRules"] or []
        ]
    for key in ("displayName", "freeformTags"):
        if key in data:
            stored[key] = data[key]


def _delete_route_table(oci: Oci, stored: dict[str, Any]) -> None:
    vcn = oci.state.resources.get(stored.get("vcnId", ""))
    if vcn is not None and vcn.get("defaultRouteTableId") == stored["id"]:
        raise OciError(409, "Conflict", "A VCN's default route table cannot be deleted.")
    if any(
        r["_kind"] == "subnets" and r.get("routeTableId") == stored["id"]
        for r in oci.state.resources.values()
    ):
        raise OciError(
            409, "Conflict", "The route table is associated with a subnet and cannot be deleted."
        )
    del oci.state.resources[stored["id"]]


def _delete_unless_used(what: str, uses: Any) -> Any:
    """A delete that OCI refuses (409 Conflict) while `uses(oci, stored)` finds something
    that still depends on the resource; a VCN takes its default route table with it."""

    def delete(oci: Oci, stored: dict[str, Any]) -> None:
        users = uses(oci, stored)
        if users:
            raise OciError(
                409,
                "Conflict",
                f"The {what} cannot be deleted: {users[0]['id']} ({users[0]['_kind']}) depends on it.",
            )
        if stored["_kind"] == "vcns":
            oci.state.resources.pop(stored.get("defaultRouteTableId", ""), None)
            oci.state.resources.pop(stored.get("defaultSecurityListId", ""), None)
        del oci.state.resources[stored["id"]]

    return delete


def _in_vcn(oci: Oci, vcn: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in oci.state.resources.values()
        if r.get("vcnId") == vcn["id"]
        and r["id"] not in (vcn.get("defaultRouteTableId"), vcn.get("defaultSecurityListId"))
        and r.get("lifecycleState") not in ("TERMINATED",)
    ]


def _in_subnet(oci: Oci, subnet: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in oci.state.resources.values()
        if r["_kind"] == "vnics" and r.get("subnetId") == subnet["id"]
    ]


def _routing_to(oci: Oci, gateway: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in oci.state.resources.values()
        if r["_kind"] == "routeTables"
        and any(rule.get("networkEntityId") == gateway["id"] for rule in r.get("routeRules") or [])
    ]


def _create_nsg(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    _need(oci, data.get("vcnId"), "vcns", "vcnId")
    body = _base(oci, "networkSecurityGroups", "networksecuritygroup", data, state="PROVISIONING")
    body["_rules"] = []
    return oci.store(body)


def _read_nsg(oci: Oci, stored: dict[str, Any]) -> None:
    stored["lifecycleState"] = "AVAILABLE"


def _delete_nsg(oci: Oci, stored: dict[str, Any]) -> None:
    if any(
        r["_kind"] == "vnics" and stored["id"] in (r.get("nsgIds") or [])
        for r in oci.state.resources.values()
    ):
        raise OciError(
            409, "Conflict", "The network security group has VNICs in it and cannot be deleted."
        )
    del oci.state.resources[stored["id"]]


RULES_PER_CALL = 25


def _nsg_rules(oci: Oci, stored: dict[str, Any], data: Any, query: dict[str, str]) -> Any:
    return copy.deepcopy(stored["_rules"])


def _add_rules(
    oci: Oci, stored: dict[str, Any], data: dict[str, Any], query: dict[str, str]
) -> Any:
    added = []
    if len(data.get("securityRules") or []) > RULES_PER_CALL:
        # "You can add up to 25 rules in a single AddNetworkSecurityGroupSecurityRules operation"
        raise invalid(f"securityRules: at most {RULES_PER_CALL} rules can be added in one request")
    for i, rule in enumerate(data.get("securityRules") or []):
        if rule.get("direction") not in ("INGRESS", "EGRESS"):
            raise invalid(f"securityRules[{i}].direction must be INGRESS or EGRESS")
        if str(rule.get("protocol")) not in PROTOCOLS:
            raise invalid(f"securityRules[{i}].protocol {rule.get('protocol')!r} is not supported")
        source_type = rule.get("sourceType", "CIDR_BLOCK")
        if rule["direction"] == "INGRESS":
            if source_type == "NETWORK_SECURITY_GROUP":
                _need(
                    oci, rule.get("source"), "networkSecurityGroups", f"securityRules[{i}].source"
                )
            else:
                try:
                    ipaddress.IPv4Network(str(rule.get("source")))
                except ValueError:
                    raise invalid(
                        f"securityRules[{i}].source {rule.get('source')!r} is not a CIDR block"
                    ) from None
        for options in ("tcpOptions", "udpOptions"):
            ports = (rule.get(options) or {}).get("destinationPortRange")
            if ports and not 1 <= ports.get("min", 0) <= ports.get("max", 0) <= 65535:
                raise invalid(
                    f"securityRules[{i}].{options}.destinationPortRange is not a valid range"
                )
        added.append(
            {
                **rule,
                "sourceType": source_type,
                "id": uuid.uuid4().hex[:6].upper(),
                "isStateless": bool(rule.get("isStateless", False)),
                "isValid": True,
                "timeCreated": "2026-11-25T08:00:00.000Z",
            }
        )
    if len(stored["_rules"]) + len(added) > oci.limits["nsg-rules"]:
        raise OciError(400, "LimitExceeded", "A network security group holds at most "
                       f"{oci.limits['nsg-rules']} security rules (ingress and egress).")  # fmt: skip
    stored["_rules"] += added
    return {"securityRules": copy.deepcopy(added)}


def _remove_rules(
    oci: Oci, stored: dict[str, Any], data: dict[str, Any], query: dict[str, str]
) -> Any:
    ids = set(data.get("securityRuleIds") or [])
    unknown = ids - {r["id"] for r in stored["_rules"]}
    if unknown:
        raise invalid(
            f"securityRuleIds {sorted(unknown)} are not rules of this network security group"
        )
    stored["_rules"] = [r for r in stored["_rules"] if r["id"] not in ids]
    return None


def _update_vnic(oci: Oci, stored: dict[str, Any], data: dict[str, Any]) -> None:
    for key in ("skipSourceDestCheck", "displayName", "freeformTags"):
        if key in data:
            stored[key] = data[key]
    if "nsgIds" in data:
        for nsg in data["nsgIds"] or []:
            _need(oci, nsg, "networkSecurityGroups", "nsgIds")
        stored["nsgIds"] = data["nsgIds"] or []


def _launch(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    details = data.get("createVnicDetails") or {}
    subnet = _need(oci, details.get("subnetId") or data.get("subnetId"), "subnets", "subnetId")
    if data.get("shape") not in SHAPES:
        raise invalid(f"Shape {data.get('shape')!r} is not valid")
    if data["shape"].endswith(".Flex") and not (data.get("shapeConfig") or {}).get("ocpus"):
        raise invalid("shapeConfig.ocpus is required for a flexible shape")
    source = data.get("sourceDetails") or {}
    _need(oci, source.get("imageId"), "images", "sourceDetails.imageId")
    ad = data.get("availabilityDomain")
    if (
        not ad
        or not str(ad).startswith("Uocm:")
        or (subnet.get("availabilityDomain") and subnet["availabilityDomain"] != ad)
    ):
        raise invalid(f"availabilityDomain {ad!r} is not valid for the subnet")
    if details.get("assignPublicIp") and subnet.get("prohibitPublicIpOnVnic"):
        raise invalid("The subnet prohibits public IPs on its VNICs")
    for nsg in details.get("nsgIds") or []:
        _need(oci, nsg, "networkSecurityGroups", "createVnicDetails.nsgIds")
    body = _base(
        oci,
        "instances",
        "instance",
        {k: v for k, v in data.items() if k != "createVnicDetails"},
        state="PROVISIONING",
    )
    body["region"] = oci.region
    oci.store(body)
    vnic = oci.store({
        "id": oci.ocid("vnic"), "_kind": "vnics", "compartmentId": data["compartmentId"], "subnetId": subnet["id"],
        "isPrimary": True, "lifecycleState": "AVAILABLE", "skipSourceDestCheck": bool(details.get("skipSourceDestCheck")),
        "nsgIds": details.get("nsgIds") or [], "privateIp": details.get("privateIp") or _free_address(oci, subnet),
        "publicIp": oci.next_public_ip() if details.get("assignPublicIp", not subnet.get("prohibitPublicIpOnVnic")) else None,
        "freeformTags": {}, "definedTags": {},
    })  # fmt: skip
    oci.store({
        "id": oci.ocid("privateip"), "_kind": "privateIps", "vnicId": vnic["id"], "subnetId": subnet["id"],
        "ipAddress": vnic["privateIp"], "isPrimary": True, "compartmentId": data["compartmentId"], "freeformTags": {}, "definedTags": {},
    })  # fmt: skip
    oci.store({
        "id": oci.ocid("vnicattachment"), "_kind": "vnicAttachments", "instanceId": body["id"], "vnicId": vnic["id"],
        "subnetId": subnet["id"], "compartmentId": data["compartmentId"], "lifecycleState": "ATTACHED", "availabilityDomain": ad,
    })  # fmt: skip
    return body


def _free_address(oci: Oci, subnet: dict[str, Any]) -> str:
    prefix = ipaddress.IPv4Network(subnet["cidrBlock"])
    taken = {r.get("ipAddress") for r in oci.state.resources.values() if r["_kind"] == "privateIps"}
    for host in list(prefix.hosts())[1:-1]:  # OCI keeps the first two and the last address
        if str(host) not in taken:
            return str(host)
    raise invalid(f"Subnet {subnet['id']} has no free private IP address")


def _create_private_ip(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    """CreatePrivateIp: a secondary private IP on a VNIC, from its subnet (an address given
    must be in the subnet and free)."""
    vnic = _need(oci, data.get("vnicId"), "vnics", "vnicId")
    subnet = _need(oci, vnic["subnetId"], "subnets", "subnet")
    address = data.get("ipAddress") or _free_address(oci, subnet)
    if ipaddress.IPv4Address(address) not in ipaddress.IPv4Network(subnet["cidrBlock"]):
        raise invalid(f"ipAddress {address} is not in the VNIC's subnet {subnet['cidrBlock']}")
    if any(r["_kind"] == "privateIps" and r.get("ipAddress") == address
           for r in oci.state.resources.values()):  # fmt: skip
        raise OciError(409, "Conflict", f"The private IP address {address} is already in use")
    tags = dict(data.get("freeformTags") or {})
    if oci.vms_report_ready and HA_TAG in tags:  # a pair's floating IP: the sandbox's stand-in
        # for what its members' watchdogs write there (none runs on the fake's VMs)
        tags.update({f"{WATCH_TAG}-{m}": stand_in_word(bool(m)) for m in (0, 1)})
    return oci.store({
        "id": oci.ocid("privateip"), "_kind": "privateIps", "vnicId": vnic["id"], "subnetId": subnet["id"],
        "ipAddress": address, "isPrimary": False, "compartmentId": vnic["compartmentId"],
        "displayName": data.get("displayName"), "freeformTags": tags,
        "definedTags": {}, "lifecycleState": "AVAILABLE", "timeCreated": "2026-11-25T08:00:00.000Z",
    })  # fmt: skip


def _secondary(stored: dict[str, Any]) -> None:
    if stored.get("isPrimary"):
        raise invalid(
            "This operation cannot be used with primary private IPs (use UpdateVnic, or "
            "terminate the VNIC)"
        )


def _update_private_ip(oci: Oci, stored: dict[str, Any], data: dict[str, Any]) -> None:
    """UpdatePrivateIp: a secondary private IP moves to another VNIC of the same subnet (route
    rules naming it follow it), or is renamed; never a primary one."""
    _secondary(stored)
    if data.get("vnicId") and data["vnicId"] != stored["vnicId"]:
        vnic = _need(oci, data["vnicId"], "vnics", "vnicId")
        if vnic["subnetId"] != stored["subnetId"]:
            raise invalid("A private IP moves only to a VNIC in the same subnet")
        stored["vnicId"] = vnic["id"]
    for key in ("displayName", "freeformTags"):
        if data.get(key) is not None:
            stored[key] = data[key]


def _delete_private_ip(oci: Oci, stored: dict[str, Any]) -> None:
    """DeletePrivateIp: a secondary one only; a route rule naming it stays, a blackhole."""
    _secondary(stored)
    del oci.state.resources[stored["id"]]


class Raw(bytes):
    """A response body as it is (not JSON): GetConsoleHistoryContent's bytes."""


def _capture_history(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    """CaptureConsoleHistory: REQUESTED (see `_read_history` for what follows)."""
    instance = _need(oci, data.get("instanceId"), "instances", "instanceId")
    if instance["lifecycleState"] in ("TERMINATED", "TERMINATING"):
        raise OciError(409, "Conflict", f"Instance {instance['id']} is not running")
    body = _base(
        oci, "instanceConsoleHistories", "consolehistory",
        {**data, "compartmentId": instance["compartmentId"],
         "availabilityDomain": instance.get("availabilityDomain")},
        state="REQUESTED",
    )  # fmt: skip
    return oci.store(body)


def _read_history(oci: Oci, stored: dict[str, Any]) -> None:
    """REQUESTED, then GETTING-HISTORY, then SUCCEEDED (or FAILED: `console_captures_fail`,
    the next so many captures), a step per read, as the reference orders them."""
    if stored["lifecycleState"] == "REQUESTED":
        stored["lifecycleState"] = "GETTING-HISTORY"
    elif stored["lifecycleState"] == "GETTING-HISTORY":
        failing = oci.console_captures_fail > 0
        oci.console_captures_fail -= failing
        stored["lifecycleState"] = "FAILED" if failing else "SUCCEEDED"


def _history_data(oci: Oci, stored: dict[str, Any], data: Any, query: dict[str, str]) -> Raw:
    """The instance's serial console as captured: its boot, and once the connector's
    cloud-init says its tunnel is up (`vms_report_ready`, the sandbox's stand-in for the
    tunnel; only an instance whose user data runs connector-ready), that line."""
    if stored["lifecycleState"] != "SUCCEEDED":
        raise OciError(409, "Conflict", "The console history is not captured yet")
    length = int(query.get("length", 10240))
    if length < 10240:  # (the reference: "cannot be less than 10240"; a capture holds 1 MB)
        raise invalid("length cannot be less than 10240")
    instance = oci.state.resources.get(stored["instanceId"]) or {}
    user_data = base64.b64decode((instance.get("metadata") or {}).get("user_data") or "")
    lines = ["Ubuntu 24.04 LTS connector ttyS0", "cloud-init: modules:final running"]
    if oci.vms_report_ready and b"connector-ready" in user_data:
        lines.append("connector-provisioner: tunnel up")
    content = ("\n".join(lines) + "\n").encode()
    offset = int(query.get("offset", 0))
    return Raw(content[offset : offset + length])


def _read_instance(oci: Oci, stored: dict[str, Any]) -> None:
    """The launch, start or terminate answered PROVISIONING, STARTING or TERMINATING; the next
    read finds the change made (oci.wait_until's first sleep is a whole second)."""
    if stored["lifecycleState"] in ("PROVISIONING", "STARTING", "TERMINATING"):
        stored["_reads"] = stored.get("_reads", 0) + 1
        if stored["_reads"] <= oci.settle_reads:
            return
        stored.pop("_reads")
    if stored["lifecycleState"] in ("PROVISIONING", "STARTING"):
        stored["lifecycleState"] = "RUNNING"
    elif stored["lifecycleState"] == "TERMINATING":
        stored["lifecycleState"] = "TERMINATED"
        for attachment in [
            r
            for r in oci.state.resources.values()
            if r["_kind"] == "vnicAttachments" and r["instanceId"] == stored["id"]
        ]:
            vnic = attachment["vnicId"]
            for r in [r for r in oci.state.resources.values() if r.get("vnicId") == vnic]:
                del oci.state.resources[r["id"]]
            oci.state.resources.pop(vnic, None)


def _terminate(oci: Oci, stored: dict[str, Any]) -> None:
    if stored["lifecycleState"] not in ("TERMINATING", "TERMINATED"):
        stored.update(lifecycleState="TERMINATING")


def _instance_action(target: str) -> Any:
    def act(oci: Oci, stored: dict[str, Any], data: Any, query: dict[str, str]) -> Any:
        if stored["lifecycleState"] in ("TERMINATING", "TERMINATED"):
            raise OciError(409, "IncorrectState", "The instance is terminated")
        stored.update(lifecycleState=target)
        vnic = _vnic_of(oci, stored["id"])
        if vnic is not None and target == "STOPPED":
            vnic["publicIp"] = None if vnic.get("publicIp") is None else ""
        if vnic is not None and target == "STARTING" and vnic.get("publicIp") == "":
            vnic["publicIp"] = oci.next_public_ip()  # an ephemeral public IP is new at start
        return None

    return act


def _vnic_of(oci: Oci, instance: str) -> dict[str, Any] | None:
    for r in oci.state.resources.values():
        if r["_kind"] == "vnicAttachments" and r["instanceId"] == instance:
            return oci.state.resources.get(r["vnicId"])
    return None


def _create_identity(kind: str, ocid_kind: str) -> Any:
    def create(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
        if not re.match(r"^[\w.-]{1,100}$", str(data.get("name", ""))):
            raise invalid(f"name {data.get('name')!r} is not valid")
        if any(
            r["_kind"] == kind and r.get("name") == data["name"]
            for r in oci.state.resources.values()
        ):
            raise OciError(
                409, "EntityAlreadyExists", f"{ocid_kind} {data['name']!r} already exists"
            )
        if kind == "dynamicGroups" and data.get("compartmentId") != oci.tenancy:
            raise invalid(
                "Dynamic groups are made in the tenancy (compartmentId must be the tenancy OCID)"
            )
        if kind == "policies" and not data.get("statements"):
            raise invalid("statements is required")
        body = _base(oci, kind, ocid_kind, data, state="ACTIVE")
        return oci.store(body)

    return create


def _update_fields(*keys: str) -> Any:
    def update(oci: Oci, stored: dict[str, Any], data: dict[str, Any]) -> None:
        for key in keys:
            if key in data and data[key] is not None:
                stored[key] = data[key]

    return update


def _delete_plain(oci: Oci, stored: dict[str, Any]) -> None:
    del oci.state.resources[stored["id"]]


def _create_compartment(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    """Identity's CreateCompartment: a name unique among the parent's compartments (OCI's
    documentation says the tenancy's in places; the API checks the parent's), a description
    (required, 1-400 characters); CREATING until read, then ACTIVE."""
    name = str(data.get("name") or "")
    if not re.fullmatch(r"[\w.-]{1,100}", name):
        raise invalid(f"name {name!r} is not valid: 1-100 letters, digits, '.', '-' or '_'")
    if not 1 <= len(str(data.get("description") or "")) <= 400:
        raise invalid("description is required (1-400 characters)")
    parent = data.get("compartmentId")
    if any(
        r["_kind"] == "compartments"
        and r.get("compartmentId") == parent
        and r.get("name") == name
        and r["lifecycleState"] != "DELETED"
        and r["id"] != oci.tenancy
        for r in oci.state.resources.values()
    ):
        raise OciError(
            409, "CompartmentAlreadyExists", f"A compartment with name '{name}' already exists."
        )
    body = _base(oci, "compartments", "compartment", data, state="CREATING")
    body["id"] = oci.ocid("compartment", region=False)
    return oci.store(body)


def _holds(oci: Oci, compartment: str) -> list[dict[str, Any]]:
    """What is still in a compartment: resources and compartments not gone."""
    return [
        r
        for r in oci.state.resources.values()
        if r.get("compartmentId") == compartment
        and r["id"] != compartment
        and r.get("lifecycleState") not in ("DELETED", "TERMINATED", "PENDING_DELETION")
    ]


def _read_compartment(oci: Oci, stored: dict[str, Any]) -> None:
    """CREATING becomes ACTIVE; a DELETING one becomes DELETED (its name freed with a suffix,
    as OCI renames it) when it was empty, else its work request fails and it is ACTIVE again."""
    if stored["lifecycleState"] == "CREATING":
        stored["lifecycleState"] = "ACTIVE"
    elif stored["lifecycleState"] == "DELETING":
        if _holds(oci, stored["id"]):
            stored["lifecycleState"] = "ACTIVE"
        else:
            stored.update(lifecycleState="DELETED", name=f"{stored['name']}.{uuid.uuid4().hex[:8]}")


def _delete_compartment(oci: Oci, stored: dict[str, Any]) -> tuple[int, dict[str, str]]:
    """Accepted (202, a work request), DELETING; it fails later if anything is still inside."""
    if stored["id"] == oci.tenancy:
        raise OciError(400, "InvalidParameter", "The root compartment (tenancy) cannot be deleted")
    if stored["lifecycleState"] != "ACTIVE":
        raise OciError(409, "IncorrectState", f"The compartment is {stored['lifecycleState']}")
    stored["lifecycleState"] = "DELETING"
    return 202, {"opc-work-request-id": oci.ocid("workrequest", region=False)}


def _create_vault(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    """KMS CreateVault: displayName and vaultType (DEFAULT, VIRTUAL_PRIVATE, EXTERNAL) required;
    CREATING until read, then ACTIVE; its keys are made at its managementEndpoint."""
    if not data.get("displayName"):
        raise invalid("displayName is required")
    if data.get("vaultType") not in ("DEFAULT", "VIRTUAL_PRIVATE", "EXTERNAL"):
        raise invalid(f"vaultType {data.get('vaultType')!r}: DEFAULT, VIRTUAL_PRIVATE or EXTERNAL")
    body = _base(oci, "vaults", "vault", data, state="CREATING")
    return oci.store(body)


def _read_vault(oci: Oci, stored: dict[str, Any]) -> None:
    if stored["lifecycleState"] == "CREATING":
        stored["lifecycleState"] = "ACTIVE"


KEY_LENGTHS = {"AES": (16, 24, 32), "RSA": (256, 384, 512), "ECDSA": (32, 48, 66)}


def _create_key(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    """KMS CreateKey, at the vault's management endpoint: displayName and keyShape (algorithm
    and length in bytes, as OCI lists them) required, the vault ACTIVE; CREATING until read,
    then ENABLED."""
    vault = _need(oci, data.get("vaultId"), "vaults", "vault")
    if vault["lifecycleState"] != "ACTIVE":
        raise OciError(409, "IncorrectState", f"The vault is {vault['lifecycleState']}")
    if not data.get("displayName"):
        raise invalid("displayName is required")
    shape = data.get("keyShape") or {}
    lengths = KEY_LENGTHS.get(str(shape.get("algorithm")))
    if lengths is None or shape.get("length") not in lengths:
        raise invalid(
            f"keyShape {shape!r} is not valid: AES 16/24/32, RSA 256/384/512, ECDSA 32/48/66 bytes"
        )
    if data.get("protectionMode", "HSM") not in ("HSM", "SOFTWARE", "EXTERNAL"):
        raise invalid(f"protectionMode {data.get('protectionMode')!r} is not valid")
    body = _base(oci, "keys", "key", data, state="CREATING")
    body.setdefault("protectionMode", "HSM")
    body["currentKeyVersion"] = oci.ocid("keyversion")
    return oci.store(body)


def _read_key(oci: Oci, stored: dict[str, Any]) -> None:
    if stored["lifecycleState"] == "CREATING":
        stored["lifecycleState"] = "ENABLED"


def _schedule_kms_deletion(kind: str) -> Any:
    """A vault or key is never deleted at once: scheduled 7 to 30 days ahead (PENDING_DELETION).
    The fake takes any date it is given."""
    ready = "ACTIVE" if kind == "vaults" else "ENABLED"

    def schedule(oci: Oci, stored: dict[str, Any], data: Any, query: dict[str, str]) -> Any:
        if stored["lifecycleState"] not in (ready, "DISABLED"):
            raise OciError(409, "IncorrectState", f"It is {stored['lifecycleState']}")
        stored.update(
            lifecycleState="PENDING_DELETION",
            timeOfDeletion=(data or {}).get("timeOfDeletion") or "2026-12-31T00:00:00.000Z",
        )
        return oci.view(stored)

    return schedule


def _create_secret(oci: Oci, data: dict[str, Any]) -> dict[str, Any]:
    vault = _need(oci, data.get("vaultId"), "vaults", "vaultId")
    key = _need(oci, data.get("keyId"), "keys", "keyId")
    if key["vaultId"] != vault["id"]:
        raise invalid("keyId is not a key of vaultId")
    if any(
        r["_kind"] == "secrets"
        and r.get("secretName") == data.get("secretName")
        and r["vaultId"] == vault["id"]
        for r in oci.state.resources.values()
    ):
        raise OciError(
            409,
            "Conflict",
            f"A secret named {data.get('secretName')!r} already exists in the vault",
        )
    content = data.get("secretContent") or {}
    if content.get("contentType") != "BASE64" or not content.get("content"):
        raise invalid("secretContent.content (BASE64) is required")
    body = _base(
        oci,
        "secrets",
        "vaultsecret",
        {k: v for k, v in data.items() if k != "secretContent"},
        state="CREATING",
    )
    body["currentVersionNumber"] = 1
    oci.state.payloads[body["id"]] = [content["content"]]
    return oci.store(body)


def _read_secret(oci: Oci, stored: dict[str, Any]) -> None:
    if stored["lifecycleState"] in ("CREATING", "UPDATING"):
        stored["lifecycleState"] = "ACTIVE"


def _update_secret(oci: Oci, stored: dict[str, Any], data: dict[str, Any]) -> None:
    if stored["lifecycleState"] != "ACTIVE":
        raise OciError(409, "IncorrectState", f"The secret is {stored['lifecycleState']}")
    content = data.get("secretContent")
    if content:
        oci.state.payloads[stored["id"]].append(content["content"])
        stored["currentVersionNumber"] += 1
    for key in ("freeformTags", "description"):
        if key in data:
            stored[key] = data[key]
    stored.update(lifecycleState="UPDATING")


def _schedule_deletion(oci: Oci, stored: dict[str, Any], data: Any, query: dict[str, str]) -> Any:
    if stored["lifecycleState"] != "ACTIVE":
        raise OciError(409, "IncorrectState", f"The secret is {stored['lifecycleState']}")
    stored.update(
        lifecycleState="PENDING_DELETION",
        timeOfDeletion=(data or {}).get("timeOfDeletion", "2026-12-02T00:00:00.000Z"),
    )
    return None


def _cancel_deletion(oci: Oci, stored: dict[str, Any], data: Any, query: dict[str, str]) -> Any:
    if stored["lifecycleState"] != "PENDING_DELETION":
        raise OciError(409, "IncorrectState", f"The secret is {stored['lifecycleState']}")
    stored.update(lifecycleState="ACTIVE")
    stored.pop("timeOfDeletion", None)
    return None


HANDLERS: dict[str, ResourceType] = {
    "compartments": ResourceType(
        create=_create_compartment,
        read=_read_compartment,
        update=_update_fields("name", "description", "freeformTags", "definedTags"),
        delete=_delete_compartment,
    ),
    "vaults": ResourceType(
        create=_create_vault,
        read=_read_vault,
        actions={"actions/scheduleDeletion": _schedule_kms_deletion("vaults")},
    ),
    "keys": ResourceType(
        create=_create_key,
        read=_read_key,
        actions={"actions/scheduleDeletion": _schedule_kms_deletion("keys")},
    ),
    "availabilityDomains": ResourceType(),
    "vcns": ResourceType(
        create=_create_vcn,
        # UpdateVcnDetails: its names and tags (a run's lease is a freeform tag)
        update=_update_fields("displayName", "freeformTags", "definedTags"),
        delete=_delete_unless_used("VCN", _in_vcn),
    ),
    "securityLists": ResourceType(
        create=_create_security_list,
        update=_update_security_list,
        delete=_delete_unless_used("security list", _subnets_using),
    ),
    "subnets": ResourceType(
        create=_create_subnet,
        update=_update_fields("routeTableId", "nsgIds", "displayName", "securityListIds"),
        delete=_delete_unless_used("subnet", _in_subnet),
    ),
    "internetGateways": ResourceType(
        create=_create_gateway("internetGateways", "internetgateway"),
        delete=_delete_unless_used("internet gateway", _routing_to),
    ),
    "natGateways": ResourceType(
        create=_create_gateway("natGateways", "natgateway"),
        delete=_delete_unless_used("NAT gateway", _routing_to),
    ),
    "routeTables": ResourceType(
        create=_create_route_table, update=_update_route_table, delete=_delete_route_table
    ),
    "networkSecurityGroups": ResourceType(
        create=_create_nsg,
        read=_read_nsg,
        delete=_delete_nsg,
        actions={
            "GET securityRules": _nsg_rules,
            "actions/addSecurityRules": _add_rules,
            "actions/removeSecurityRules": _remove_rules,
        },
    ),
    "vnics": ResourceType(update=_update_vnic),
    "privateIps": ResourceType(
        create=_create_private_ip, update=_update_private_ip, delete=_delete_private_ip
    ),
    "vnicAttachments": ResourceType(),
    "images": ResourceType(),
    "instances": ResourceType(
        create=_launch,
        read=_read_instance,
        delete=lambda oci, stored: _terminate(oci, stored),
        actions={
            "START": _instance_action("STARTING"),
            "STOP": _instance_action("STOPPED"),
            "SOFTSTOP": _instance_action("STOPPED"),
        },  # (the OS's shutdown: instant here)
    ),
    "instanceConsoleHistories": ResourceType(
        create=_capture_history,
        read=_read_history,
        delete=_delete_plain,
        actions={"GET data": _history_data},
    ),
    "dynamicGroups": ResourceType(
        create=_create_identity("dynamicGroups", "dynamicgroup"),
        update=_update_fields("matchingRule", "description", "freeformTags"),
        delete=_delete_plain,
    ),
    "policies": ResourceType(
        create=_create_identity("policies", "policy"),
        update=_update_fields("statements", "description", "freeformTags"),
        delete=_delete_plain,
    ),
    "secrets": ResourceType(
        create=_create_secret,
        read=_read_secret,
        update=_update_secret,
        actions={
            "actions/scheduleDeletion": _schedule_deletion,
            "actions/cancelDeletion": _cancel_deletion,
        },
    ),
}
