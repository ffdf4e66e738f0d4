"""A fake of the Google Cloud APIs a connector touches (Compute Engine v1, Secret Manager v1, IAM
v1 service accounts), served over HTTP on 127.0.0.1 so that google-cloud-compute,
google-cloud-secret-manager and google-auth talk to it as to Google.

What it keeps of Google Cloud (the tests rely on each):
- Names unique per project and kind (per zone / region where the kind lives there): a second
  insert is 409 `alreadyExists`. A missing resource is 404 `notFound`, with Compute's error body
  `{"error": {"code", "message", "errors": [{"message", "domain", "reason"}]}}`; Secret Manager
  and IAM answer in google.rpc's form `{"error": {"code", "message", "status"}}`.
- Every Compute mutation returns an Operation (zonal, regional or global, as the resource is)
  that says RUNNING until it is polled once (`get` or `wait`), then DONE.
- Routes cannot be changed (the API has no update): only inserted and deleted. A route names
  exactly one next hop; `nextHopInstance` must name an existing instance with an interface in
  the route's network. A route whose next-hop instance is gone, or cannot forward, says so in
  `warnings` (NEXT_HOP_INSTANCE_NOT_FOUND, NEXT_HOP_CANNOT_IP_FORWARD), as Compute does.
  Subnet routes come and go with their subnetworks and cannot be deleted.
- `canIpForward` is fixed at creation: an update that changes it is refused.
- Firewall priority 0-65535; `allowed` or `denied`, not both; ports only for tcp, udp, sctp.
  A PATCH replaces the fields it names.
- Instances get an internal address from their subnetwork and an external one from
  203.0.113.0/24 (documentation addresses) per ONE_TO_ONE_NAT access config, released when
  stopped; machine types and images are checked against a small catalogue; the instance's
  service account must exist.
- Secret payloads are never returned except by `versions/*:access`.
- 401 without a bearer token; faults (`fail`) answered before anything is changed, a 429 in
  Compute's `rateLimitExceeded` form with Retry-After when asked.
"""

from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import itertools
import json
import re
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ...fakeserver import Answer, Call, Fault, Faults, Injectable, sandbox_watchdog_word

GOOGLE = "https://www.googleapis.com/compute/v1/"
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
MACHINE_TYPES = ("e2-micro", "e2-small", "e2-medium", "e2-standard-2", "n2-standard-2")
IMAGE_FAMILIES = {("ubuntu-os-cloud", "ubuntu-2404-lts-amd64"), ("debian-cloud", "debian-12")}
PUBLIC_POOL = ipaddress.IPv4Network("203.0.113.0/24")  # documentation addresses only
PAGE = 500  # Compute's largest maxResults
_EPOCH = datetime.datetime(2026, 11, 25, tzinfo=datetime.timezone(datetime.timedelta(hours=-8)))
SERVER_OWNED = ("name", "kind", "id", "selfLink", "creationTimestamp", "zone", "region")
RPC_STATUS = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
}
FORWARDING_PROTOCOLS = ("tcp", "udp", "sctp")
PROTOCOLS = ("all", "tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip")


# a project's quotas on the resources the toolkit makes, as a new project's limits show them
PROJECT_QUOTAS = {"ROUTES": 250.0, "FIREWALLS": 200.0}
QUOTA_OF = {"routes": "ROUTES", "firewalls": "FIREWALLS"}  # resource kind -> its quota's metric


class GceError(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        headers: dict[str, str] | None = None,
        domain: str = "global",
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.domain = status, reason, message, domain
        self.headers = headers or {}


def not_found(path: str) -> GceError:
    return GceError(404, "notFound", f"The resource '{path}' was not found")


def invalid(field_name: str, value: Any, why: str) -> GceError:
    return GceError(400, "invalid", f"Invalid value for field '{field_name}': '{value}'. {why}")


@dataclass
class GceState:
    # compute resources by their path: "projects/p/global/routes/r" -> body as stored
    compute: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)  # projects/p/secrets/s
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # secret -> versions
    payloads: dict[str, str] = field(default_factory=dict)  # version name -> base64 data
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # secret -> IAM policy
    accounts: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # projects/p/serviceAccounts/e


class Gce(Injectable):
    """The in-memory Google Cloud. `handle` answers one request; `serve` puts it on 127.0.0.1."""

    name = "fake-gce"
    not_mutating = frozenset({"wait", "getIamPolicy", "access", "listInstances"})

    def __init__(self) -> None:
        self.state = GceState()
        # a project's quotas on what it holds (a test lowers them): the limits a new project
        # shows (`gcloud compute project-info describe`); what is held is counted, as Compute does
        self.quotas: dict[str, dict[str, float]] = {}
        self.lock = threading.RLock()
        self.faults = Faults()
        self.calls: list[Call] = []
        self.errors: list[str] = []  # the fake's own faults (a test fails on any)
        self._ids = itertools.count(1000)
        self._public = itertools.count(40)  # (ARM's from .11, OCI's from .70: told apart)
        # a VM with guest attributes enabled says its tunnel is up at once (the sandbox's VMs
        # have no tunnel to wait for; a test turns it off to be the VM that never comes up)
        self.vms_report_ready = True
        # each public image family's releases, oldest first: the family names the newest
        self.releases: dict[tuple[str, str], list[dict[str, Any]]] = {
            key: [_image(*key)] for key in IMAGE_FAMILIES
        }

    def publish_image(self, project: str, family: str, released: str) -> str:
        """A new release of a public family (Canonical's next Ubuntu image): the family names
        it from now on. `released`: YYYYMMDD. Returns its selfLink."""
        with self.lock:
            image = _image(project, family, released)
            self.releases[(project, family)].append(image)
            return str(image["selfLink"])

    def view(self, path: str) -> dict[str, Any] | None:
        """A compute resource as a GET shows it (None when absent)."""
        with self.lock:
            found = self.state.compute.get(path)
            return self._view(found) if found else None

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """Every compute resource of a kind (routes, firewalls, instances...), as listed."""
        with self.lock:
            return [self._view(r) for r in self.state.compute.values() if r["_kind"] == kind]

    def snapshot(self) -> dict[str, Any]:
        """Everything the fake holds except operations: equal before apply and after destroy."""
        with self.lock:
            return copy.deepcopy(
                {
                    "compute": {k: v for k, v in self.state.compute.items()},
                    "secrets": self.state.secrets,
                    "versions": self.state.versions,
                    "policies": self.state.policies,
                    "accounts": self.state.accounts,
                }
            )

    # --- HTTP ---------------------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: dict[str, str], body: bytes, base: str
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        path = unquote(parts.path).strip("/")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        api = "compute" if path.startswith("compute/v1/") else "rpc"
        if path.startswith("metadata/"):
            return self._metadata(method, path, headers, body)
        try:
            fault = self.faults.due(method, path)
            if fault is not None and fault.in_operation and api == "compute":
                with self.lock:
                    out = self._failed_operation(method, path.removeprefix("compute/v1/"), fault)
                return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()
            if fault is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                domain = "usageLimits" if fault.status == 429 else "global"
                raise GceError(fault.status, fault.code, fault.message, extra, domain)
            if not headers.get("authorization", "").startswith("Bearer "):
                raise GceError(
                    401,
                    "authError",
                    "Request is missing required authentication credential. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential.",
                )
            data = json.loads(body) if body else None
            with self.lock:
                if api == "compute":
                    out = self._compute(method, path.removeprefix("compute/v1/"), query, data)
                else:
                    out = self._rpc(method, path.removeprefix("v1/"), query, data)
            return 200, {"Content-Type": "application/json"}, json.dumps(out).encode()
        except Exception as e:  # a fault of the fake's own: a 500 that says so, not a hang-up
            if not isinstance(e, GceError):
                self.errors.append(f"{method} {path}: {type(e).__name__}: {e}")
                e = GceError(500, "backendError", f"the fake failed: {type(e).__name__}: {e}")
            if api == "compute":
                err: dict[str, Any] = {
                    "code": e.status,
                    "message": e.message,
                    "errors": [{"message": e.message, "domain": e.domain, "reason": e.reason}],
                }
            else:
                err = {
                    "code": e.status,
                    "message": e.message,
                    "status": RPC_STATUS.get(e.status, "UNKNOWN"),
                }
            return (
                e.status,
                {"Content-Type": "application/json", **e.headers},
                json.dumps({"error": err}).encode(),
            )

    def _metadata(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """A VM's metadata server, as far as its guest attributes: `metadata/PROJECT/ZONE/
        INSTANCE/computeMetadata/v1/instance/guest-attributes/NAMESPACE/KEY` (the real one
        knows the VM by who asks). PUT writes (guest attributes enabled on the instance, else
        403), GET reads; the `Metadata-Flavor: Google` header is required (else 403)."""
        seg = path.split("/")
        text = {"Content-Type": "text/plain"}
        if headers.get("metadata-flavor") != "Google":
            return 403, text, b"Missing required header: Metadata-Flavor"
        where = ["computeMetadata", "v1", "instance", "guest-attributes"]
        if len(seg) != 10 or seg[4:8] != where or not seg[8] or not seg[9]:
            return 404, text, b"Not found"
        project, zone, instance, key = seg[1], seg[2], seg[3], f"{seg[8]}/{seg[9]}"
        with self.lock:
            found = self.state.compute.get(f"projects/{project}/zones/{zone}/instances/{instance}")
            if found is None:
                return 404, text, b"Not found"
            items = {i.get("key"): i.get("value")
                     for i in (found.get("metadata") or {}).get("items") or []}  # fmt: skip
            if str(items.get("enable-guest-attributes", "")).upper() != "TRUE":
                return 403, text, b"Guest attributes endpoint access is disabled."
            if method == "PUT":
                found.setdefault("_guest", {})[key] = body.decode()
                return 200, text, b""
            value = (found.get("_guest") or {}).get(key)
            return (200, text, value.encode()) if value is not None else (404, text, b"Not found")

    # --- Compute ------------------------------------------------------------------------------

    def _compute(self, method: str, path: str, query: dict[str, str], data: Any) -> Any:
        seg = path.split("/")
        if len(seg) < 2 or seg[0] != "projects":
            raise GceError(404, "notFound", f"The requested URL /compute/v1/{path} was not found")
        project = seg[1]
        if len(seg) == 2 and method == "GET":  # projects.get: its quotas among the rest
            self._record(method, path, "compute", "projects", "get")
            return {"kind": "compute#project", "name": project, "id": str(zlib.crc32(project.encode())),
                    "selfLink": GOOGLE + path,
                    "quotas": [{"metric": m, "limit": self.quota(project, m),
                                "usage": float(self.usage(project, m))} for m in PROJECT_QUOTAS]}  # fmt: skip
        if len(seg) == 3 and seg[2] == "zones" and method == "GET":  # zones.list
            self._record(method, path, "compute", "zones", "list")
            regions = sorted({_short(r["region"]) for r in self.state.compute.values()
                              if r["_kind"] == "subnetworks"})  # fmt: skip
            items = [{"kind": "compute#zone", "name": f"{r}-{x}", "status": "UP",
                      "region": f"{GOOGLE}projects/{project}/regions/{r}",
                      "selfLink": f"{GOOGLE}projects/{project}/zones/{r}-{x}"}
                     for r in regions for x in "bcd"]  # fmt: skip
            return self._page("compute#zoneList", items, query)
        if len(seg) >= 4 and seg[2] == "aggregated":
            self._record(method, path, "compute", seg[3], "aggregatedList")
            return self._aggregated(project, seg[3], query)
        # projects/p/{global | zones/z | regions/r}/kind[/name[/action]]
        if len(seg) >= 4 and seg[2] == "global":
            scope, rest = f"projects/{project}/global", seg[3:]
        elif len(seg) >= 5 and seg[2] in ("zones", "regions"):
            scope, rest = f"projects/{project}/{seg[2]}/{seg[3]}", seg[4:]
        else:
            raise GceError(404, "notFound", f"The requested URL /compute/v1/{path} was not found")
        kind = rest[0]
        if kind == "operations" and len(rest) >= 2:
            verb = "wait" if len(rest) == 3 and rest[2] == "wait" else "get"
            self._record(method, path, "compute", kind, verb)
            return self._poll(f"{scope}/operations/{rest[1]}")
        if kind == "images" and len(rest) == 3 and rest[1] == "family" and method == "GET":
            self._record(method, path, "compute", kind, "getFromFamily")
            if (project, rest[2]) not in IMAGE_FAMILIES:
                raise not_found(path)
            return self.releases[(project, rest[2])][-1]
        if kind == "images" and len(rest) == 2 and method == "GET":  # images.get, by name
            self._record(method, path, "compute", kind, "get")
            named = [i for (p, _), images in self.releases.items() if p == project
                     for i in images if i["name"] == rest[1]]  # fmt: skip
            if not named:
                raise not_found(path)
            return named[-1]
        if kind == "machineTypes" and len(rest) == 2 and method == "GET":
            self._record(method, path, "compute", kind, "get")
            if rest[1] not in MACHINE_TYPES:
                raise not_found(path)
            return {"kind": "compute#machineType", "name": rest[1], "selfLink": GOOGLE + path}
        handler = KINDS.get(kind)
        if handler is None:
            raise GceError(404, "notFound", f"The requested URL /compute/v1/{path} was not found")
        collection = f"{scope}/{kind}"
        if len(rest) == 1:
            if method == "GET":
                self._record(method, path, "compute", kind, "list")
                items = [
                    self._view(r) for k, r in self.state.compute.items() if _parent(k) == collection
                ]
                return self._page(f"compute#{handler.list_kind}", items, query)
            if method == "POST":
                self._record(method, path, "compute", kind, "insert", data)
                return self._insert(handler, scope, collection, data or {})
        elif len(rest) == 2:
            rpath = f"{collection}/{rest[1]}"
            if method == "GET":
                self._record(method, path, "compute", kind, "get")
                return self._view(self._get(rpath))
            if method == "DELETE":
                self._record(method, path, "compute", kind, "delete")
                found = self._get(rpath)
                handler.check_delete(self, found)
                del self.state.compute[rpath]
                handler.deleted(self, found)
                return self._operation(scope, "delete", found)
            if method in ("PATCH", "PUT"):
                self._record(
                    method, path, "compute", kind, "patch" if method == "PATCH" else "update", data
                )
                found = self._get(rpath)
                if handler.patch is None:
                    raise GceError(
                        405, "methodNotAllowed", f"{kind} cannot be changed: delete and insert"
                    )
                new = copy.deepcopy(found)
                if method == "PUT":  # the whole resource: what the body leaves out is gone
                    new = {k: v for k, v in found.items() if k.startswith("_") or k in SERVER_OWNED}
                new.update({k: v for k, v in (data or {}).items() if k not in SERVER_OWNED})
                handler.patch(self, found, new)
                self.state.compute[rpath] = new
                return self._operation(scope, method.lower(), new)
        elif (
            len(rest) == 3
            and method == "GET"
            and kind == "instances"
            and (rest[2] == "getGuestAttributes")
        ):
            self._record(method, path, "compute", kind, "getGuestAttributes")
            return _guest_attributes(self._get(f"{collection}/{rest[1]}"), query)
        elif len(rest) == 3 and method == "POST" and handler.actions:
            rpath = f"{collection}/{rest[1]}"
            action = rest[2]
            self._record(method, path, "compute", kind, action, data)
            found = self._get(rpath)
            if action not in handler.actions:
                raise GceError(
                    404, "notFound", f"The requested URL /compute/v1/{path} was not found"
                )
            answer = handler.actions[action](self, found, data or {})
            if answer is not None:  # a read dressed as a POST (listInstances)
                return answer
            return self._operation(scope, action, found)
        raise GceError(404, "notFound", f"The requested URL /compute/v1/{path} was not found")

    def _record(
        self, method: str, path: str, api: str, kind: str, verb: str, body: Any = None
    ) -> None:
        self.calls.append(Call(method, path, kind, verb, api, copy.deepcopy(body)))

    def _get(self, path: str) -> dict[str, Any]:
        found = self.state.compute.get(path)
        if found is None:
            raise not_found(path)
        return found

    def quota(self, project: str, metric: str) -> float:
        return self.quotas.get(project, {}).get(metric, PROJECT_QUOTAS[metric])

    def usage(self, project: str, metric: str) -> int:
        held = f"projects/{project}/global/{ {v: k for k, v in QUOTA_OF.items()}[metric] }/"
        return sum(1 for k in self.state.compute if k.startswith(held))

    def _insert(
        self, handler: ResourceType, scope: str, collection: str, data: dict[str, Any]
    ) -> Any:
        name = data.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise invalid(
                "resource.name",
                name,
                "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
            )
        path = f"{collection}/{name}"
        if path in self.state.compute:
            raise GceError(409, "alreadyExists", f"The resource '{path}' already exists")
        metric = QUOTA_OF.get(handler.name)
        project = scope.split("/")[1]
        if metric and self.usage(project, metric) >= self.quota(project, metric):
            # Compute takes the insert and fails its operation: QUOTA_EXCEEDED, as the error a
            # `gcloud` or Terraform user sees after "waiting for" the create
            op = self._operation(scope, "insert", {"selfLink": GOOGLE + path})
            self.state.operations[f"{scope}/operations/{op['name']}"]["_error"] = {
                "error": {"errors": [{"code": "QUOTA_EXCEEDED", "message": (
                    f"Quota '{metric}' exceeded.  Limit: {self.quota(project, metric)} "
                    "globally.")}]},
                "httpErrorStatusCode": 403,
                "httpErrorMessage": "FORBIDDEN",
            }  # fmt: skip
            return op
        body = {k: v for k, v in data.items() if v is not None}
        made = next(self._ids)
        # when it was made, as Compute says it (RFC 3339, milliseconds): later for each one
        at = _EPOCH + datetime.timedelta(seconds=made)
        body.update(
            _kind=handler.name,
            kind=f"compute#{handler.item_kind}",
            id=str(made),
            selfLink=GOOGLE + path,
            creationTimestamp=at.isoformat(timespec="milliseconds"),
        )
        if scope.split("/")[2] == "zones":
            body["zone"] = GOOGLE + scope
        elif scope.split("/")[2] == "regions":
            body["region"] = GOOGLE + scope
        handler.insert(self, scope, body)
        self.state.compute[path] = body
        return self._operation(scope, "insert", body)

    def _operation(self, scope: str, verb: str, target: dict[str, Any]) -> dict[str, Any]:
        op_id = next(self._ids)
        name = f"operation-{op_id}-{verb}"
        op = {
            "kind": "compute#operation",
            "id": str(op_id),
            "name": name,
            "operationType": verb,
            "targetLink": target["selfLink"],
            "status": "RUNNING",
            "progress": 0,
            "user": "sandbox@connector-provisioner",
            "insertTime": "2026-11-25T00:00:00.000-08:00",
            "selfLink": f"{GOOGLE}{scope}/operations/{name}",
        }
        if target.get("id"):
            op["targetId"] = target["id"]
        kind = scope.split("/")[2]
        if kind == "zones":
            op["zone"] = GOOGLE + scope
        elif kind == "regions":
            op["region"] = GOOGLE + scope
        self.state.operations[f"{scope}/operations/{name}"] = op
        return dict(op)

    def _failed_operation(self, method: str, path: str, fault: Fault) -> dict[str, Any]:
        seg = path.split("/")
        scope = "/".join(seg[:3]) if seg[2] == "global" else "/".join(seg[:4])
        kind = seg[3] if seg[2] == "global" else seg[4]
        self._record(method, path, "compute", kind, "failed-in-operation")
        op = self._operation(scope, method.lower(), {"selfLink": GOOGLE + path})
        stored = self.state.operations[f"{scope}/operations/{op['name']}"]
        stored["_error"] = {
            "error": {"errors": [{"code": fault.code, "message": fault.message}]},
            "httpErrorStatusCode": fault.status,
            "httpErrorMessage": "FORBIDDEN" if fault.status == 403 else "ERROR",
        }
        return op

    def _poll(self, path: str) -> dict[str, Any]:
        op = self.state.operations.get(path)
        if op is None:
            raise not_found(path)
        if op["status"] != "DONE":
            op.update(status="DONE", progress=100, endTime="2026-11-25T00:00:01.000-08:00")
            op.update(op.pop("_error", {}))
            return {**op, "status": "RUNNING", "progress": 50}  # the first poll: still running
        return dict(op)

    def _page(
        self, kind: str, items: list[dict[str, Any]], query: dict[str, str]
    ) -> dict[str, Any]:
        size = min(int(query.get("maxResults") or PAGE), PAGE)
        start = int(query.get("pageToken") or 0)
        out: dict[str, Any] = {"kind": kind, "items": items[start : start + size]}
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out

    def _aggregated(self, project: str, kind: str, query: dict[str, str]) -> dict[str, Any]:
        handler = KINDS.get(kind)
        if handler is None:
            raise GceError(404, "notFound", f"The requested URL was not found: aggregated/{kind}")
        scoped: dict[str, list[dict[str, Any]]] = {}
        for k, r in self.state.compute.items():
            if r["_kind"] == kind and k.startswith(f"projects/{project}/"):
                scope = "/".join(k.split("/")[2:4])
                scoped.setdefault(scope, []).append(self._view(r))
        # one page holds every scope's items: enough for the fake's sizes
        return {
            "kind": f"compute#{handler.item_kind}AggregatedList",
            "items": {scope: {kind: items} for scope, items in scoped.items()},
        }

    def _view(self, stored: dict[str, Any]) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in stored.items() if not k.startswith("_")}
        handler = KINDS[stored["_kind"]]
        if handler.view is not None:
            handler.view(self, out)
        return out

    def instance(self, url: str) -> dict[str, Any] | None:
        return self.state.compute.get(_path(url))

    def next_public_ip(self) -> str:
        return str(PUBLIC_POOL.network_address + next(self._public))

    # --- Secret Manager and IAM ---------------------------------------------------------------

    def _rpc(self, method: str, path: str, query: dict[str, str], data: Any) -> Any:
        seg = path.split("/")
        if len(seg) >= 3 and seg[0] == "projects" and seg[2].startswith("serviceAccounts"):
            return self._accounts(method, path, seg, data or {})
        if len(seg) >= 3 and seg[0] == "projects" and seg[2].startswith("secrets"):
            return self._secrets(method, path, seg, query, data or {})
        raise GceError(404, "notFound", f"The requested URL /v1/{path} was not found")

    def _accounts(self, method: str, path: str, seg: list[str], data: dict[str, Any]) -> Any:
        project = seg[1]
        if len(seg) == 3 and method == "POST":
            self._record(method, path, "iam", "serviceAccounts", "create", data)
            account = data.get("accountId", "")
            if not re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", account):
                raise GceError(400, "invalid", f"Invalid account id: {account!r}")
            email = f"{account}@{project}.iam.gserviceaccount.com"
            key = f"projects/{project}/serviceAccounts/{email}"
            if key in self.state.accounts:
                raise GceError(
                    409,
                    "alreadyExists",
                    f"Service account {account} already exists within project projects/{project}.",
                )
            given = data.get("serviceAccount") or {}
            self.state.accounts[key] = {
                "name": key,
                "projectId": project,
                "uniqueId": str(next(self._ids)) * 2,
                "email": email,
                "displayName": given.get("displayName", ""),
                "description": given.get("description", ""),
                "oauth2ClientId": str(next(self._ids)),
            }
            return self.state.accounts[key]
        if len(seg) == 4:
            key = f"projects/{project}/serviceAccounts/{seg[3]}"
            if method == "GET":
                self._record(method, path, "iam", "serviceAccounts", "get")
                if key not in self.state.accounts and self.account_exists(seg[3]):
                    return {"name": key, "projectId": project, "email": seg[3]}  # the default
                if key not in self.state.accounts:
                    raise GceError(404, "notFound", f"Unknown service account {seg[3]}")
                return self.state.accounts[key]
            if method == "DELETE":
                self._record(method, path, "iam", "serviceAccounts", "delete")
                if self.state.accounts.pop(key, None) is None:
                    raise GceError(404, "notFound", f"Unknown service account {seg[3]}")
                return {}
        raise GceError(404, "notFound", f"The requested URL /v1/{path} was not found")

    def account_exists(self, email: str) -> bool:
        if email.endswith("-compute@developer.gserviceaccount.com"):
            return True  # a project's default compute service account
        return any(a["email"] == email for a in self.state.accounts.values())

    def _secrets(
        self, method: str, path: str, seg: list[str], query: dict[str, str], data: dict[str, Any]
    ) -> Any:
        project = seg[1]
        last = seg[-1]
        action = last.split(":", 1)[1] if ":" in last else None
        seg = [*seg[:-1], last.split(":", 1)[0]]
        if len(seg) == 3 and method == "POST":  # projects/p/secrets?secretId=
            self._record(method, path, "secretmanager", "secrets", "create", data)
            secret_id = query.get("secretId", "")
            if not re.match(r"^[\w-]{1,255}$", secret_id):
                raise GceError(400, "invalid", f"Invalid secret id: {secret_id!r}")
            name = f"projects/{project}/secrets/{secret_id}"
            if name in self.state.secrets:
                raise GceError(409, "alreadyExists", f"Secret [{name}] already exists.")
            if not (data.get("replication") or {}):
                raise GceError(400, "invalid", "Secret.replication is required")
            self.state.secrets[name] = {
                "name": name,
                "replication": data["replication"],
                "labels": data.get("labels") or {},
                "annotations": data.get("annotations") or {},
                "createTime": "2026-11-25T08:00:00Z",
                "etag": f'"{next(self._ids)}"',
            }
            self.state.versions[name] = []
            self.state.policies[name] = {"version": 1, "etag": "ACAB"}
            return self.state.secrets[name]
        if len(seg) == 3 and method == "GET":
            self._record(method, path, "secretmanager", "secrets", "list")
            found = [
                s for k, s in self.state.secrets.items() if k.startswith(f"projects/{project}/")
            ]
            return {"secrets": found, "totalSize": len(found)}
        if len(seg) < 4:
            raise GceError(404, "notFound", f"The requested URL /v1/{path} was not found")
        name = f"projects/{project}/secrets/{seg[3]}"
        secret = self.state.secrets.get(name)
        verb = action or {"GET": "get", "DELETE": "delete", "PATCH": "patch"}.get(method, method)
        if len(seg) >= 5:
            verb = action or ("listVersions" if len(seg) == 5 else "getVersion")
        self._record(method, path, "secretmanager", "secrets", verb, _redacted(data))
        if secret is None:
            raise GceError(404, "notFound", f"Secret [{name}] not found or has no versions.")
        if len(seg) == 4:
            if action == "addVersion" and method == "POST":
                payload = (data.get("payload") or {}).get("data")
                if not payload:
                    raise GceError(400, "invalid", "SecretPayload.data is required")
                number = len(self.state.versions[name]) + 1
                version: dict[str, Any] = {
                    "name": f"{name}/versions/{number}",
                    "createTime": "2026-11-25T08:00:00Z",
                    "state": "ENABLED",
                    "replicationStatus": {"automatic": {}},
                    "etag": f'"{next(self._ids)}"',
                }
                self.state.versions[name].append(version)
                self.state.payloads[version["name"]] = payload
                return version
            if action == "setIamPolicy" and method == "POST":
                policy = dict(data.get("policy") or {})
                policy["etag"] = base64.b64encode(str(next(self._ids)).encode()).decode()
                policy.setdefault("version", 1)
                self.state.policies[name] = policy
                return policy
            if action == "getIamPolicy" and method == "GET":
                return self.state.policies[name]
            if action is None and method == "GET":
                return secret
            if action is None and method == "PATCH":
                for key in ("labels", "annotations"):
                    if key in data:
                        secret[key] = data[key] or {}
                secret["etag"] = f'"{next(self._ids)}"'
                return secret
            if action is None and method == "DELETE":
                asked = query.get("etag")  # optional: the request succeeds only at that etag
                if asked and asked != secret["etag"]:
                    raise GceError(400, "failedPrecondition",
                                   "The etag provided in the request does not match the etag of "
                                   "the current resource.")  # fmt: skip
                del self.state.secrets[name]
                for v in self.state.versions.pop(name, []):
                    self.state.payloads.pop(v["name"], None)
                self.state.policies.pop(name, None)
                return {}
        if len(seg) == 5 and method == "GET" and seg[4] == "versions":
            versions = self.state.versions[name]
            return {"versions": list(reversed(versions)), "totalSize": len(versions)}
        if len(seg) == 6 and seg[4] == "versions":
            versions = self.state.versions[name]
            if seg[5] == "latest":
                wanted = next((v for v in reversed(versions) if v["state"] == "ENABLED"), None)
            else:
                wanted = next(
                    (v for v in versions if v["name"].endswith(f"/versions/{seg[5]}")), None
                )
            if wanted is None:
                raise GceError(
                    404, "notFound", f"Secret Version [{name}/versions/{seg[5]}] not found."
                )
            if action == "access" and method == "GET":
                if wanted["state"] != "ENABLED":
                    raise GceError(
                        400,
                        "failedPrecondition",
                        f"Secret Version [{wanted['name']}] is in {wanted['state']} state.",
                    )
                return {
                    "name": wanted["name"],
                    "payload": {"data": self.state.payloads[wanted["name"]]},
                }
            if action == "destroy" and method == "POST":
                wanted["state"] = "DESTROYED"
                self.state.payloads.pop(wanted["name"], None)
                return wanted
            if action is None and method == "GET":
                return wanted
        raise GceError(404, "notFound", f"The requested URL /v1/{path} was not found")

    def secret_payload(self, secret: str) -> str | None:
        """The latest enabled version's payload, decoded (what the VM would read at boot)."""
        with self.lock:
            for v in reversed(self.state.versions.get(secret, [])):
                if v["state"] == "ENABLED":
                    return base64.b64decode(self.state.payloads[v["name"]]).decode()
        return None


def _redacted(data: Any) -> Any:
    if isinstance(data, dict) and "payload" in data:
        return {**data, "payload": "(redacted)"}
    return data


def _path(url: str) -> str:
    """A compute URL or partial URL as the fake keys it: projects/p/..."""
    text = url.split("/compute/v1/", 1)[-1] if "/compute/v1/" in url else url
    return text.strip("/")


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0]


def _short(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _image(project: str, family: str, released: str = "20261101") -> dict[str, Any]:
    name = f"{family}-v{released}"
    day = f"{released[:4]}-{released[4:6]}-{released[6:]}"
    return {
        "kind": "compute#image",
        "id": str(int(released) * 100 + len(family)),
        "name": name,
        "family": family,
        "status": "READY",
        "creationTimestamp": f"{day}T00:00:00.000-07:00",
        "selfLink": f"{GOOGLE}projects/{project}/global/images/{name}",
    }


def _cidr(value: Any, field_name: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError:
        raise invalid(
            field_name, value, "Must be a CIDR address range that is contained in the valid range."
        ) from None


# --- kinds -------------------------------------------------------------------------------------


@dataclass
class ResourceType:
    """How the fake serves one resource type: what its writes check and do."""

    name: str
    item_kind: str
    list_kind: str
    insert: Any = lambda gce, scope, body: None
    view: Any = None
    patch: Any = None
    check_delete: Any = lambda gce, found: None
    deleted: Any = lambda gce, found: None
    actions: dict[str, Any] = field(default_factory=dict)


def _network_ref(gce: Gce, value: Any, field_name: str) -> str:
    if not value:
        raise invalid(field_name, value, "The network must be specified.")
    path = _path(str(value))
    if not path.startswith("projects/"):
        raise invalid(field_name, value, "Must be a URL to a network.")
    found = gce.state.compute.get(path)
    if found is None or found["_kind"] != "networks":
        raise not_found(path)
    return GOOGLE + path


def _insert_network(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    if body.get("autoCreateSubnetworks", True):
        raise invalid(
            "resource.autoCreateSubnetworks", True, "The fake models custom-mode networks only."
        )
    project = scope.split("/")[1]
    route = f"default-route-{next(gce._ids):x}"
    gce.state.compute[f"projects/{project}/global/routes/{route}"] = {
        "_kind": "routes",
        "kind": "compute#route",
        "id": str(next(gce._ids)),
        "name": route,
        "description": "Default route to the Internet.",
        "network": body["selfLink"],
        "destRange": "0.0.0.0/0",
        "priority": 1000,
        "nextHopGateway": f"{GOOGLE}projects/{project}/global/gateways/default-internet-gateway",
        "selfLink": f"{GOOGLE}projects/{project}/global/routes/{route}",
    }


def _check_delete_network(gce: Gce, found: dict[str, Any]) -> None:
    for k, r in gce.state.compute.items():
        if r["_kind"] in ("subnetworks", "firewalls", "instances") and found[
            "selfLink"
        ] in json.dumps(r):
            raise GceError(
                400,
                "resourceInUseByAnotherResource",
                f"The network resource '{_path(found['selfLink'])}' is already being used by '{k}'",
            )


def _deleted_network(gce: Gce, found: dict[str, Any]) -> None:
    for k in [
        k
        for k, r in gce.state.compute.items()
        if r["_kind"] == "routes" and r.get("network") == found["selfLink"]
    ]:
        del gce.state.compute[k]


def _insert_subnetwork(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    body["network"] = _network_ref(gce, body.get("network"), "resource.network")
    primary = _cidr(body.get("ipCidrRange"), "resource.ipCidrRange")
    ranges = [primary] + [
        _cidr(s.get("ipCidrRange"), "resource.secondaryIpRanges")
        for s in body.get("secondaryIpRanges") or []
    ]
    for r in gce.state.compute.values():
        if r["_kind"] == "subnetworks" and r["network"] == body["network"]:
            theirs = [ipaddress.IPv4Network(r["ipCidrRange"])] + [
                ipaddress.IPv4Network(s["ipCidrRange"]) for s in r.get("secondaryIpRanges") or []
            ]
            for mine in ranges:
                if any(mine.overlaps(t) for t in theirs):
                    raise invalid(
                        "resource.ipCidrRange",
                        mine,
                        f"Invalid IPCidrRange: {mine} conflicts with existing subnetwork '{r['name']}' in region '{_short(r['region'])}'.",
                    )
    body["gatewayAddress"] = str(primary.network_address + 1)
    body["fingerprint"] = "fp"
    project = scope.split("/")[1]
    route = f"default-route-{next(gce._ids):x}"
    body["_route"] = f"projects/{project}/global/routes/{route}"
    gce.state.compute[body["_route"]] = {
        "_kind": "routes",
        "_subnet": True,
        "kind": "compute#route",
        "id": str(next(gce._ids)),
        "name": route,
        "description": f"Default local route to the subnetwork {primary}.",
        "network": body["network"],
        "destRange": str(primary),
        "priority": 0,
        "nextHopNetwork": body["network"],
        "selfLink": f"{GOOGLE}{body['_route']}",
    }


def _check_delete_subnetwork(gce: Gce, found: dict[str, Any]) -> None:
    for k, r in gce.state.compute.items():
        if r["_kind"] == "instances" and any(
            n.get("subnetwork") == found["selfLink"] for n in r.get("networkInterfaces") or []
        ):
            raise GceError(
                400,
                "resourceInUseByAnotherResource",
                f"The subnetwork resource '{_path(found['selfLink'])}' is already being used by '{k}'",
            )


def _deleted_subnetwork(gce: Gce, found: dict[str, Any]) -> None:
    gce.state.compute.pop(found.get("_route", ""), None)


def _insert_router(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    body["network"] = _network_ref(gce, body.get("network"), "resource.network")
    for nat in body.get("nats") or []:
        mode = nat.get("sourceSubnetworkIpRangesToNat")
        if mode not in (
            "ALL_SUBNETWORKS_ALL_IP_RANGES",
            "ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES",
            "LIST_OF_SUBNETWORKS",
        ):
            raise invalid(
                "resource.nats[0].sourceSubnetworkIpRangesToNat",
                mode,
                "Must be one of the listed values.",
            )


def _route_warnings(gce: Gce, out: dict[str, Any]) -> None:
    hop = out.get("nextHopInstance")
    if not hop:
        if out.get("nextHopIp"):
            taken = {
                n.get("networkIP")
                for r in gce.state.compute.values()
                if r["_kind"] == "instances"
                for n in r.get("networkInterfaces") or []
            }
            if out["nextHopIp"] not in taken:
                out["warnings"] = [
                    {
                        "code": "NEXT_HOP_ADDRESS_NOT_ASSIGNED",
                        "message": f"Next hop IP address '{out['nextHopIp']}' is not assigned to an instance on the network.",
                    }
                ]
        return
    instance = gce.instance(hop)
    if instance is None:
        out["warnings"] = [
            {
                "code": "NEXT_HOP_INSTANCE_NOT_FOUND",
                "message": f"Next hop instance '{hop}' does not exist.",
            }
        ]
    elif not instance.get("canIpForward"):
        out["warnings"] = [
            {
                "code": "NEXT_HOP_CANNOT_IP_FORWARD",
                "message": f"Next hop instance '{hop}' cannot forward IP traffic.",
            }
        ]
    elif instance.get("status") != "RUNNING":
        out["warnings"] = [
            {
                "code": "NEXT_HOP_NOT_RUNNING",
                "message": f"Next hop instance '{hop}' is not running.",
            }
        ]


NEXT_HOPS = ("nextHopGateway", "nextHopInstance", "nextHopIp", "nextHopVpnTunnel", "nextHopIlb")


def _insert_route(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    body["network"] = _network_ref(gce, body.get("network"), "resource.network")
    _cidr(body.get("destRange"), "resource.destRange")
    priority = body.setdefault("priority", 1000)
    if not isinstance(priority, int) or not 0 <= priority <= 65535:
        raise invalid("resource.priority", priority, "Must be between 0 and 65535.")
    hops = [h for h in NEXT_HOPS if body.get(h)]
    if len(hops) != 1:
        raise GceError(
            400,
            "invalid",
            "Exactly one of nextHopGateway, nextHopInstance, nextHopIp, nextHopVpnTunnel or nextHopIlb must be specified.",
        )
    if hops[0] == "nextHopInstance":
        path = _path(body["nextHopInstance"])
        instance = gce.state.compute.get(path)
        if instance is None or instance["_kind"] != "instances":
            raise not_found(path)
        if not any(
            n.get("network") == body["network"] for n in instance.get("networkInterfaces") or []
        ):
            raise invalid(
                "resource.nextHopInstance",
                body["nextHopInstance"],
                "Instance has no network interface in the route's network.",
            )
        body["nextHopInstance"] = GOOGLE + path
        body["nextHopNetwork"] = body["network"]
    if hops[0] == "nextHopIlb":  # an internal forwarding rule, by its URL or its address
        hop = str(body["nextHopIlb"])
        rule = next(
            (r for r in gce.state.compute.values()
             if r["_kind"] == "forwardingRules" and hop in (r["selfLink"], r.get("IPAddress"), _path(r["selfLink"]))),
            None,
        )  # fmt: skip
        if rule is None or rule.get("loadBalancingScheme") != "INTERNAL":
            raise invalid("resource.nextHopIlb", hop,
                          "Must be an internal passthrough Network Load Balancer forwarding rule.")  # fmt: skip
        if rule.get("network") != body["network"]:
            raise invalid("resource.nextHopIlb", hop, "The forwarding rule is in another network.")
    for tag in body.get("tags") or []:
        if not NAME.match(tag):
            raise invalid(
                "resource.tags",
                tag,
                "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
            )


def _check_delete_route(gce: Gce, found: dict[str, Any]) -> None:
    if found.get("_subnet"):
        raise GceError(
            400, "invalid", f"The local route '{found['name']}' of a subnetwork cannot be deleted."
        )


def _check_firewall(gce: Gce, body: dict[str, Any]) -> None:
    body["network"] = _network_ref(gce, body.get("network"), "resource.network")
    priority = body.setdefault("priority", 1000)
    if not isinstance(priority, int) or not 0 <= priority <= 65535:
        raise invalid(
            "resource.priority",
            priority,
            "Must be less than or equal to 65535 and greater than or equal to 0.",
        )
    direction = body.setdefault("direction", "INGRESS")
    if direction not in ("INGRESS", "EGRESS"):
        raise invalid("resource.direction", direction, "Must be INGRESS or EGRESS.")
    if bool(body.get("allowed")) == bool(body.get("denied")):
        raise GceError(400, "invalid", "Exactly one of 'allowed' or 'denied' must be specified.")
    for entry in body.get("allowed") or body.get("denied") or []:
        protocol = str(entry.get("IPProtocol", "")).lower()
        if protocol not in PROTOCOLS and not protocol.isdigit():
            raise invalid(
                "resource.allowed[0].IPProtocol",
                entry.get("IPProtocol"),
                "Must be a protocol name or number.",
            )
        if entry.get("ports") and protocol not in FORWARDING_PROTOCOLS:
            raise invalid(
                "resource.allowed[0].ports",
                entry["ports"],
                "Ports may only be given for tcp, udp or sctp.",
            )
        for p in entry.get("ports") or []:
            first, _, last = str(p).partition("-")
            if (
                not first.isdigit()
                or (last and not last.isdigit())
                or not 0 <= int(first) <= int(last or first) <= 65535
            ):
                raise invalid("resource.allowed[0].ports", p, "Must be a port or a range of ports.")
    for r in body.get("sourceRanges") or []:
        try:
            ipaddress.IPv4Network(r, strict=False)
        except ValueError:
            raise invalid("resource.sourceRanges", r, "Must be a CIDR address range.") from None
    for tag in (body.get("sourceTags") or []) + (body.get("targetTags") or []):
        if not NAME.match(tag):
            raise invalid(
                "resource.targetTags",
                tag,
                "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'",
            )


def _patch_firewall(gce: Gce, found: dict[str, Any], new: dict[str, Any]) -> None:
    if new.get("network") != found.get("network") and _path(str(new.get("network"))) != _path(
        found["network"]
    ):
        raise invalid(
            "resource.network", new.get("network"), "The network of a firewall cannot be changed."
        )
    _check_firewall(gce, new)


def _insert_instance(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    zone = scope.split("/")[3]
    region = zone.rsplit("-", 1)[0]
    project = scope.split("/")[1]
    machine = _short(str(body.get("machineType", "")))
    if machine not in MACHINE_TYPES:
        raise invalid(
            "resource.machineType",
            body.get("machineType"),
            f"Machine type with name '{machine}' does not exist in zone '{zone}'.",
        )
    body["machineType"] = f"{GOOGLE}{scope}/machineTypes/{machine}"
    nics = body.get("networkInterfaces") or []
    if len(nics) != 1:
        raise GceError(400, "invalid", "The fake models instances with one network interface.")
    nic = nics[0]
    subnet_path = _path(str(nic.get("subnetwork", "")))
    if "/regions/" not in subnet_path:
        subnet_path = f"projects/{project}/regions/{region}/subnetworks/{_short(subnet_path)}"
    subnet = gce.state.compute.get(subnet_path)
    if subnet is None or subnet["_kind"] != "subnetworks":
        raise not_found(subnet_path)
    if _short(subnet["region"]) != region:
        raise invalid(
            "resource.networkInterfaces[0].subnetwork",
            nic["subnetwork"],
            f"Subnetwork must be in region '{region}'.",
        )
    nic.update(subnetwork=subnet["selfLink"], network=subnet["network"], name="nic0")
    nic["networkIP"] = nic.get("networkIP") or _free_address(gce, subnet)
    for ac in nic.get("accessConfigs") or []:
        if ac.get("type", "ONE_TO_ONE_NAT") != "ONE_TO_ONE_NAT":
            raise invalid(
                "resource.networkInterfaces[0].accessConfigs[0].type",
                ac.get("type"),
                "Must be ONE_TO_ONE_NAT.",
            )
        ac.update(kind="compute#accessConfig", type="ONE_TO_ONE_NAT", natIP=gce.next_public_ip())
    disks = body.get("disks") or []
    boot = next((d for d in disks if d.get("boot")), None)
    if boot is None:
        raise GceError(400, "invalid", "A boot disk must be specified.")
    image = str((boot.get("initializeParams") or {}).get("sourceImage", ""))
    m = re.match(r"^(?:.*/)?projects/([^/]+)/global/images/family/([^/]+)$", image)
    if m is None:  # one image by name: a release of a family
        named = re.match(r"^(?:.*/)?projects/([^/]+)/global/images/([^/]+)$", image)
        found = named and next(
            (family for (p, family), images in gce.releases.items()
             if p == named.group(1) and any(i["name"] == named.group(2) for i in images)),
            None,
        )  # fmt: skip
        if not found or named is None:
            raise not_found(_path(image) or "images/(none)")
        m = re.match(r"^projects/([^/]+)/global/images/family/([^/]+)$",
                     f"projects/{named.group(1)}/global/images/family/{found}")  # fmt: skip
    if m is None or (m.group(1), m.group(2)) not in IMAGE_FAMILIES:
        raise not_found(_path(image) or "images/(none)")
    boot.update(
        source=f"{GOOGLE}{scope}/disks/{body['name']}",
        deviceName=body["name"],
        licenses=[f"{GOOGLE}projects/{m.group(1)}/global/licenses/{m.group(2)}"],
    )
    boot.pop("initializeParams", None)
    for account in body.get("serviceAccounts") or []:
        if not gce.account_exists(account.get("email", "")):
            raise invalid(
                "resource.serviceAccounts[0].email",
                account.get("email"),
                "The service account does not exist.",
            )
    body["canIpForward"] = bool(body.get("canIpForward", False))
    items = {i.get("key"): i.get("value") for i in (body.get("metadata") or {}).get("items") or []}
    if gce.vms_report_ready and str(items.get("enable-guest-attributes", "")).upper() == "TRUE":
        body["_guest"] = {"connector-provisioner/ready": "0"}  # what its connector-ready writes
        word = sandbox_watchdog_word(str(items.get("user-data") or ""),
                                     str(body.get("name", "")).endswith("-2"))  # fmt: skip
        if word:
            body["_guest"]["connector-provisioner/watchdog"] = word
    body["status"] = "RUNNING"
    body.setdefault("tags", {})["fingerprint"] = "tf"
    body.setdefault("metadata", {})["fingerprint"] = "mf"
    body["labelFingerprint"] = "lf"


def _guest_attributes(found: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    """getGuestAttributes: what the VM wrote to its metadata server under `queryPath`
    (`namespace/`), or 404 when nothing is there (or guest attributes are not enabled)."""
    path = str(query.get("queryPath") or "")
    items = [
        {"namespace": key.split("/", 1)[0], "key": key.split("/", 1)[1], "value": value}
        for key, value in (found.get("_guest") or {}).items()
        if key.startswith(path)
    ]
    if not items:
        raise GceError(404, "notFound", f"The resource '{found['selfLink']}' guest attributes "
                       f"under '{path}' were not found")  # fmt: skip
    return {"kind": "compute#guestAttributes", "queryPath": path,
            "queryValue": {"items": items}, "selfLink": found["selfLink"]}  # fmt: skip


def _free_address(gce: Gce, subnet: dict[str, Any]) -> str:
    prefix = ipaddress.IPv4Network(subnet["ipCidrRange"])
    taken = {
        n.get("networkIP")
        for r in gce.state.compute.values()
        if r["_kind"] == "instances"
        for n in r.get("networkInterfaces") or []
    }
    # Compute reserves the network, gateway, second-to-last and broadcast addresses
    reserved = {
        prefix.network_address,
        prefix.network_address + 1,
        prefix.broadcast_address - 1,
        prefix.broadcast_address,
    }
    for host in prefix:
        if host not in reserved and str(host) not in taken:
            return str(host)
    raise GceError(400, "ipSpaceExhausted", f"IP space of '{subnet['selfLink']}' is exhausted.")


def _update_instance(gce: Gce, found: dict[str, Any], new: dict[str, Any]) -> None:
    if bool(new.get("canIpForward")) != bool(found.get("canIpForward")):
        raise invalid(
            "resource.canIpForward",
            new.get("canIpForward"),
            "canIpForward can only be set when the instance is created.",
        )


def _start(gce: Gce, found: dict[str, Any], data: dict[str, Any]) -> None:
    found["status"] = "RUNNING"
    for nic in found.get("networkInterfaces") or []:
        for ac in nic.get("accessConfigs") or []:
            ac["natIP"] = gce.next_public_ip()  # an ephemeral address is new at every start


def _set_metadata(gce: Gce, found: dict[str, Any], data: dict[str, Any]) -> None:
    """setMetadata: the whole metadata, guarded by the fingerprint it was read at."""
    current = found.setdefault("metadata", {})
    if data.get("fingerprint") != current.get("fingerprint"):
        raise GceError(412, "conditionNotMet",
                       "Supplied fingerprint does not match current metadata fingerprint.")  # fmt: skip
    current["items"] = list(data.get("items") or [])
    current["fingerprint"] = f"mf{next(gce._ids)}"


def _stop(gce: Gce, found: dict[str, Any], data: dict[str, Any]) -> None:
    found["status"] = "TERMINATED"
    for nic in found.get("networkInterfaces") or []:
        for ac in nic.get("accessConfigs") or []:
            ac.pop("natIP", None)


# --- an internal passthrough Network Load Balancer (a route's nextHopIlb) ------------------------


def _in_use(gce: Gce, found: dict[str, Any], by: str, field_of: Any) -> None:
    for r in gce.state.compute.values():
        if r["_kind"] == by and found["selfLink"] in field_of(r):
            raise GceError(400, "resourceInUseByAnotherResource",
                           f"The {found['_kind'][:-1]} resource '{_path(found['selfLink'])}' is "
                           f"already being used by '{_path(r['selfLink'])}'")  # fmt: skip


def _insert_health_check(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    kind = body.get("type")
    if kind not in ("TCP", "HTTP", "HTTPS"):
        raise invalid("resource.type", kind, "Must be TCP, HTTP or HTTPS (in this fake).")
    spec = body.get(f"{kind.lower()}HealthCheck") or {}
    if not 1 <= int(spec.get("port") or 0) <= 65535:
        raise invalid(
            f"resource.{kind.lower()}HealthCheck.port", spec.get("port"), "Must be 1 to 65535."
        )
    if kind != "TCP":
        spec.setdefault("requestPath", "/")
    for key, default in (("checkIntervalSec", 5), ("timeoutSec", 5), ("healthyThreshold", 2),
                         ("unhealthyThreshold", 2)):  # fmt: skip
        body[key] = int(body.get(key) or default)
    if body["timeoutSec"] > body["checkIntervalSec"]:
        raise invalid("resource.timeoutSec", body["timeoutSec"],
                      "timeoutSec should be less than or equal to checkIntervalSec.")  # fmt: skip


def _insert_instance_group(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    if body.get("network"):
        body["network"] = _network_ref(gce, body["network"], "resource.network")
    body["size"] = 0
    body["_members"] = []


def _group_members(gce: Gce, found: dict[str, Any], data: dict[str, Any], add: bool) -> None:
    zone = _short(found["zone"])
    for ref in data.get("instances") or []:
        path = _path(str(ref.get("instance", "")))
        instance = gce.state.compute.get(path)
        if instance is None or instance["_kind"] != "instances":
            raise not_found(path)
        if _short(instance["zone"]) != zone:
            raise invalid("instances", ref.get("instance"), f"Instance must be in zone '{zone}'.")
        url = GOOGLE + path
        if add and url not in found["_members"]:
            network = instance["networkInterfaces"][0]["network"]
            if found.get("network") and found["network"] != network:
                raise invalid("instances", url, "Instance is in another network than the group.")
            found.setdefault("network", network)
            found["_members"].append(url)
        elif not add and url in found["_members"]:
            found["_members"].remove(url)
    found["size"] = len(found["_members"])


def _list_group(gce: Gce, found: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "compute#instanceGroupsListInstances",
        "items": [
            {"instance": url, "status": (gce.state.compute.get(_path(url)) or {}).get("status", "")}
            for url in found["_members"]
        ],
    }


def _insert_backend_service(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    if body.get("loadBalancingScheme") != "INTERNAL":
        raise invalid("resource.loadBalancingScheme", body.get("loadBalancingScheme"),
                      "This fake serves regional INTERNAL backend services only.")  # fmt: skip
    if body.setdefault("protocol", "TCP") not in ("TCP", "UDP", "UNSPECIFIED"):
        raise invalid("resource.protocol", body["protocol"], "Must be TCP, UDP or UNSPECIFIED.")
    checks = body.get("healthChecks") or []
    if len(checks) != 1:
        raise invalid(
            "resource.healthChecks", checks, "Exactly one health check must be specified."
        )
    path = _path(str(checks[0]))
    if (gce.state.compute.get(path) or {}).get("_kind") != "healthChecks":
        raise not_found(path)
    body["healthChecks"] = [GOOGLE + path]
    backends = body.get("backends") or []
    for i, backend in enumerate(backends):
        group = _path(str(backend.get("group", "")))
        if (gce.state.compute.get(group) or {}).get("_kind") != "instanceGroups":
            raise not_found(group)
        backend["group"] = GOOGLE + group
        backend["failover"] = bool(backend.get("failover", False))
        backend.setdefault("balancingMode", "CONNECTION")
        if backend["balancingMode"] != "CONNECTION":
            raise invalid(f"resource.backends[{i}].balancingMode", backend["balancingMode"],
                          "An internal backend service balances by CONNECTION.")  # fmt: skip
    if any(b["failover"] for b in backends) and not any(not b["failover"] for b in backends):
        raise invalid("resource.backends", "failover", "A failover backend needs a primary one.")


def _patch_backend_service(gce: Gce, found: dict[str, Any], new: dict[str, Any]) -> None:
    _insert_backend_service(gce, "", new)


def _insert_forwarding_rule(gce: Gce, scope: str, body: dict[str, Any]) -> None:
    if body.get("loadBalancingScheme") != "INTERNAL":
        raise invalid("resource.loadBalancingScheme", body.get("loadBalancingScheme"),
                      "This fake serves INTERNAL forwarding rules only.")  # fmt: skip
    service = _path(str(body.get("backendService", "")))
    found = gce.state.compute.get(service)
    if found is None or found["_kind"] != "backendServices":
        raise not_found(service or "backendServices/(none)")
    body["backendService"] = GOOGLE + service
    protocol = body.setdefault("IPProtocol", "TCP")
    if protocol not in ("TCP", "UDP", "L3_DEFAULT"):
        raise invalid("resource.IPProtocol", protocol, "Must be TCP, UDP or L3_DEFAULT.")
    if protocol == "L3_DEFAULT" and (
        found["protocol"] != "UNSPECIFIED" or not body.get("allPorts")
    ):
        raise invalid("resource.IPProtocol", protocol,
                      "L3_DEFAULT needs allPorts and a backend service of protocol UNSPECIFIED.")  # fmt: skip
    subnet_path = _path(str(body.get("subnetwork", "")))
    subnet = gce.state.compute.get(subnet_path)
    if subnet is None or subnet["_kind"] != "subnetworks":
        raise not_found(subnet_path or "subnetworks/(none)")
    body["subnetwork"], body["network"] = subnet["selfLink"], subnet["network"]
    prefix = ipaddress.IPv4Network(subnet["ipCidrRange"])
    taken = {n.get("networkIP") for r in gce.state.compute.values() if r["_kind"] == "instances"
             for n in r.get("networkInterfaces") or []}  # fmt: skip
    taken |= {
        r.get("IPAddress") for r in gce.state.compute.values() if r["_kind"] == "forwardingRules"
    }
    address = body.get("IPAddress")
    if address:
        if ipaddress.IPv4Address(address) not in prefix or address in taken:
            raise invalid(
                "resource.IPAddress", address, "The address is not free in the subnetwork."
            )
    else:
        body["IPAddress"] = _free_address(gce, subnet)


def _patch_instance_group(gce: Gce, found: dict[str, Any], new: dict[str, Any]) -> None:
    raise GceError(405, "methodNotAllowed", "instanceGroups cannot be changed: use its actions")


class IlbHealth:
    """What an internal passthrough load balancer's health checks make of its backends, as
    Compute's do: each instance of each backend group asked every `checkIntervalSec` (HTTP: up
    on a 200 within `timeoutSec`); up after `healthyThreshold` answers in a row, down after
    `unhealthyThreshold` misses (a new one starts down). `targets`: where new connections go —
    the healthy primary backends, else (failover) the healthy failover backends, else, unless
    the failover policy drops traffic, every primary backend."""

    def __init__(self, gce: Gce, service_path: str) -> None:
        self.gce, self.path = gce, _path(service_path)
        self.streak: dict[str, tuple[bool, int]] = {}
        self.up: dict[str, bool] = {}

    def _read(self) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, bool]]]:
        with self.gce.lock:
            service = copy.deepcopy(self.gce.state.compute[self.path])
            check = copy.deepcopy(self.gce.state.compute[_path(service["healthChecks"][0])])
            members = []
            for backend in service.get("backends") or []:
                group = self.gce.state.compute.get(_path(backend["group"])) or {}
                for url in group.get("_members", []):
                    instance = self.gce.state.compute.get(_path(url)) or {}
                    if instance.get("status") == "RUNNING":
                        ip = instance["networkInterfaces"][0]["networkIP"]
                        members.append((ip, bool(backend["failover"])))
        return service, check, members

    def round(self) -> None:
        import urllib.request

        _, check, members = self._read()
        spec = check.get("httpHealthCheck") or {}
        for address, _ in members:
            url = f"http://{address}:{spec.get('port')}{spec.get('requestPath', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=check["timeoutSec"]) as r:
                    ok = r.status == 200
            except Exception:
                ok = False
            last, count = self.streak.get(address, (ok, 0))
            count = count + 1 if last == ok else 1
            self.streak[address] = (ok, count)
            if count >= check["healthyThreshold" if ok else "unhealthyThreshold"]:
                self.up[address] = ok

    def targets(self) -> list[str]:
        service, _, members = self._read()
        for failover in (False, True):
            healthy = [a for a, f in members if f is failover and self.up.get(a)]
            if healthy:
                return healthy
        if (service.get("failoverPolicy") or {}).get("dropTrafficIfUnhealthy"):
            return []
        return [a for a, f in members if not f]


KINDS: dict[str, ResourceType] = {
    "networks": ResourceType(
        "networks",
        "network",
        "networkList",
        insert=_insert_network,
        check_delete=_check_delete_network,
        deleted=_deleted_network,
    ),
    "subnetworks": ResourceType(
        "subnetworks",
        "subnetwork",
        "subnetworkList",
        insert=_insert_subnetwork,
        check_delete=_check_delete_subnetwork,
        deleted=_deleted_subnetwork,
    ),
    "routers": ResourceType("routers", "router", "routerList", insert=_insert_router),
    "routes": ResourceType(
        "routes",
        "route",
        "routeList",
        insert=_insert_route,
        view=_route_warnings,
        check_delete=_check_delete_route,
    ),
    "firewalls": ResourceType(
        "firewalls",
        "firewall",
        "firewallList",
        insert=lambda gce, scope, body: _check_firewall(gce, body),
        patch=_patch_firewall,
    ),
    "instances": ResourceType(
        "instances",
        "instance",
        "instanceList",
        insert=_insert_instance,
        patch=_update_instance,
        actions={"start": _start, "stop": _stop, "setMetadata": _set_metadata},
        deleted=lambda gce, found: [
            (g["_members"].remove(found["selfLink"]), g.update(size=len(g["_members"])))
            for g in gce.state.compute.values()
            if g["_kind"] == "instanceGroups" and found["selfLink"] in g["_members"]
        ],  # Compute takes a deleted instance out of its unmanaged groups
    ),
    "healthChecks": ResourceType(
        "healthChecks", "healthCheck", "healthCheckList", insert=_insert_health_check,
        check_delete=lambda gce, found: _in_use(gce, found, "backendServices", lambda r: r["healthChecks"]),
    ),
    "instanceGroups": ResourceType(
        "instanceGroups", "instanceGroup", "instanceGroupList", insert=_insert_instance_group,
        patch=_patch_instance_group,
        check_delete=lambda gce, found: _in_use(gce, found, "backendServices",
                                                lambda r: [b["group"] for b in r.get("backends") or []]),
        actions={
            "addInstances": lambda gce, found, data: _group_members(gce, found, data, True),
            "removeInstances": lambda gce, found, data: _group_members(gce, found, data, False),
            "listInstances": _list_group,
        },
    ),
    "backendServices": ResourceType(
        "backendServices", "backendService", "backendServiceList", insert=_insert_backend_service,
        patch=_patch_backend_service,
        check_delete=lambda gce, found: _in_use(gce, found, "forwardingRules", lambda r: [r["backendService"]]),
    ),
    "forwardingRules": ResourceType(
        "forwardingRules", "forwardingRule", "forwardingRuleList", insert=_insert_forwarding_rule,
    ),
}  # fmt: skip
