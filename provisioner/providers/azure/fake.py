"""A fake of Azure Resource Manager for the resources a connector touches, served over HTTP on
127.0.0.1 so that azure-mgmt-network and azure-mgmt-compute talk to it as to ARM.

What it keeps of ARM (the tests rely on each):
- PUT replaces the whole resource: a subnet PUT without its `networkSecurityGroup` drops the
  association; a parent PUT with an embedded child list (a route table's `routes`) replaces
  the children. Names are unique per parent, paths are case-insensitive.
- Long-running operations: PUT answers 201 (created) or 200, DELETE and POST actions 202, each
  with an `Azure-AsyncOperation` URL polled until `Succeeded` (the first poll says
  `InProgress`); a DELETE of nothing is 204.
- Refusals with ARM's error body `{"error": {"code", "message"}}`: 404 `ResourceNotFound`,
  `ResourceGroupNotFound`, `ParentResourceNotFound`; `nextHopIpAddress` required for
  `VirtualAppliance` and refused for every other next-hop type; one route table per subnet
  (a subnet holds one reference); NSG rule priorities 100-4096, unique per direction; a static
  private IP inside its subnet, not reserved, not taken; a public IP on one NIC at a time; a
  NIC on one VM; tables, groups, NICs and public IPs in use cannot be deleted; a Linux VM
  needs an SSH key or a password; 401 without a bearer token; 400 without api-version.
- `protectedSettings` of a VM extension and a VM's `customData` are never returned.
- Optimistic concurrency: every write gives a resource a new etag, and a child's write
  (a route, a rule) its parent's too; a PUT or DELETE with `If-Match` and another etag is
  412 `PreconditionFailed`.
- Resource groups (Microsoft.Resources): PUT makes one (201) or updates its tags (200), never
  moves it (409 `InvalidResourceGroupLocation`), names as ARM allows them
  (`InvalidResourceGroup`); HEAD is 204 or 404; DELETE is long-running and deletes everything
  in the group, as Microsoft's reference says, unless a resource outside the group still uses
  one inside (then nothing is deleted). Any subscription id is taken.
- Faults: `fail(...)` answers the next matching requests with an error (429 with Retry-After
  for throttling), before anything is changed.

Error codes are ARM's where its documentation names them; the ones it does not (the route
next-hop checks) are named after what they refuse.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ...fakeserver import Call, FakeServer, Faults, Injectable

# (provider namespace, type) of what the fake holds; children under their parent's type
TOP_TYPES = {
    "microsoft.network/virtualnetworks": "Microsoft.Network/virtualNetworks",
    "microsoft.network/routetables": "Microsoft.Network/routeTables",
    "microsoft.network/networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
    "microsoft.network/networkinterfaces": "Microsoft.Network/networkInterfaces",
    "microsoft.network/publicipaddresses": "Microsoft.Network/publicIPAddresses",
    "microsoft.network/natgateways": "Microsoft.Network/natGateways",
    "microsoft.network/loadbalancers": "Microsoft.Network/loadBalancers",
    "microsoft.compute/virtualmachines": "Microsoft.Compute/virtualMachines",
}
# a load balancer's parts, held inline (with ids) as its GET shows them: property -> child type
LB_PARTS = {
    "frontendIPConfigurations": "frontendIPConfigurations",
    "backendAddressPools": "backendAddressPools",
    "probes": "probes",
    "loadBalancingRules": "loadBalancingRules",
}
CHILD_TYPES = {  # parent type -> (child segment, embedded property, child type)
    "microsoft.network/virtualnetworks": ("subnets", "subnets", "virtualNetworks/subnets"),
    "microsoft.network/routetables": ("routes", "routes", "routeTables/routes"),
    "microsoft.network/networksecuritygroups": (
        "securityrules",
        "securityRules",
        "networkSecurityGroups/securityRules",
    ),
    "microsoft.compute/virtualmachines": ("extensions", None, "virtualMachines/extensions"),
}
NEXT_HOP_TYPES = ("VirtualNetworkGateway", "VnetLocal", "Internet", "VirtualAppliance", "None")
RULE_PROTOCOLS = ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")
RESOURCE_GROUPS = "microsoft.resources/resourcegroups"
IMAGE_VERSIONS = "microsoft.compute/locations/publishers/artifacttypes/offers/skus/versions"
PAGE = 50  # list pages hold this many; the rest follows through nextLink
PUBLIC_POOL = ipaddress.IPv4Network("203.0.113.0/24")  # documentation addresses only


# Network's per-resource limits, as Usages - List names them, at Azure's documented values (the
# limits page and Azure's 2026 update: 1,000 routes per route table, 2,000 rules per NSG); a
# test lowers them. The error code for one over the limit is no documented value (no source
# states it): a named parameter here, the status (400) and the message's shape ARM's.
NETWORK_LIMITS = {"RoutesPerRouteTable": 1000, "SecurityRulesPerNetworkSecurityGroup": 2000}
LIMIT_NAMES = {
    "RoutesPerRouteTable": "Routes per Route Table",
    "SecurityRulesPerNetworkSecurityGroup": "Security rules per Network Security Group",
}
LIMIT_REACHED_CODE = "LimitReached"


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _referenced_types(value: Any) -> set[str]:
    """The resource types of every {"id": ...} inside a request body's properties."""
    out: set[str] = set()
    if isinstance(value, dict):
        rid = value.get("id")
        if isinstance(rid, str) and "/providers/" in rid:
            segments = rid.split("/providers/", 1)[1].split("/")
            kinds = segments[0:1] + segments[1::2]
            out.add("/".join(kinds).lower())
        for v in value.values():
            out |= _referenced_types(v)
    elif isinstance(value, list):
        for v in value:
            out |= _referenced_types(v)
    return out


@dataclass
class ArmState:
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower-case id -> body
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # "sub/rg" -> resource group
    operations: dict[str, list[str]] = field(default_factory=dict)  # id -> statuses still to say


class Arm(Injectable):
    """The in-memory ARM. `handle` answers one request; `serve` puts it on 127.0.0.1."""

    name = "fake-arm"

    def __init__(self) -> None:
        self.state = ArmState()
        self.lock = threading.RLock()
        self.faults = Faults()
        self.calls: list[Call] = []
        self._public_ips = itertools.count(10)
        self._created = itertools.count(1)
        # a VM's CustomScript extension succeeds (its script exits 0: the connector's once its
        # tunnel is up); False: it fails as Azure reports one whose script did not
        self.extensions_succeed = True
        # what each load balancer's probes last found of its pool's members (LbProbes writes
        # it): lb id (lower case) -> address -> up. A balancer nothing probes here (the
        # sandbox's VMs answer nothing) reports as a fresh pair's watchdogs make it: the
        # pool's first member up (it claimed `/active`), the others down
        self.probed: dict[str, dict[str, bool]] = {}
        # the Marketplace's image versions, oldest first: `latest` is the last
        self.limits = dict(NETWORK_LIMITS)  # (a test lowers one)
        self.image_versions: dict[tuple[str, str, str], list[str]] = {
            ("canonical", "ubuntu-24_04-lts", "server"): ["24.04.202611010"]
        }

    def publish_image_version(self, publisher: str, offer: str, sku: str, version: str) -> None:
        """A new version of a Marketplace image (Canonical's next Ubuntu build)."""
        with self.lock:
            key = (publisher.lower(), offer.lower(), sku.lower())
            self.image_versions.setdefault(key, []).append(version)

    def _image_versions(self, found: tuple[str, ...], query: dict[str, str]) -> list[Any]:
        sub, location, publisher, offer, sku = found
        versions = self.image_versions.get((publisher.lower(), offer.lower(), sku.lower()))
        if versions is None:
            raise ArmError(404, "NotFound", "Artifact: VMImage was not found.")
        order = query.get("$orderby", "")
        listed = sorted(versions, reverse=order.lower() == "name desc") if order else list(versions)
        top = query.get("$top")
        if top:
            listed = listed[: int(top)]
        return [
            {"name": v, "location": location,
             "id": f"/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{location}/"
                   f"Publishers/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/"
                   f"Versions/{v}"}
            for v in listed
        ]  # fmt: skip

    # --- what a test or the sandbox does directly -------------------------------------------

    def create_resource_group(
        self, subscription: str, name: str, location: str, tags: dict[str, str] | None = None
    ) -> None:
        rid = f"/subscriptions/{subscription}/resourceGroups/{name}"
        self.state.groups[f"{subscription}/{name}".lower()] = {
            "id": rid,
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location,
            "tags": tags or {},
            "properties": {"provisioningState": "Succeeded"},
        }

    # --- HTTP ---------------------------------------------------------------------------------

    def handle(
        self, method: str, url: str, headers: dict[str, str], body: bytes, base: str
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            self._check_fault(method, path)
            if not headers.get("authorization", "").startswith("Bearer "):
                raise ArmError(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                )
            if "api-version" not in query:
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            data = _without_nulls(json.loads(body)) if body else None  # null: absent, for ARM
            with self.lock:
                status, out, extra = self._route(method, path, query, data, base, headers)
            return (
                status,
                {"Content-Type": "application/json", **extra, **_request_id()},
                (json.dumps(out).encode() if out is not None else b""),
            )
        except ArmError as e:
            err = {"error": {"code": e.code, "message": e.message}}
            return (
                e.status,
                {"Content-Type": "application/json", **e.headers, **_request_id()},
                json.dumps(err).encode(),
            )

    def _check_fault(self, method: str, path: str) -> None:
        fault = self.faults.due(method, path)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            raise ArmError(fault.status, fault.code, fault.message, headers)

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        data: Any,
        base: str,
        headers: dict[str, str],
    ) -> tuple[int, Any, dict[str, str]]:
        m = re.match(
            r"^/subscriptions/([^/]+)/providers/([^/]+)/locations/([^/]+)/operations/([^/]+)$",
            path,
            re.I,
        )
        if m:
            return self._operation(m.group(2), m.group(4))
        m = re.match(
            r"^/subscriptions/([^/]+)/providers/microsoft\.compute/locations/([^/]+)/publishers/"
            r"([^/]+)/artifacttypes/vmimage/offers/([^/]+)/skus/([^/]+)/versions$",
            path,
            re.I,
        )
        if m and method == "GET":  # VirtualMachineImages_List: a plain array, not a page
            self.calls.append(Call("GET", path, IMAGE_VERSIONS, "list"))
            return 200, self._image_versions(m.groups(), query), {}
        m = re.match(r"^/subscriptions/([^/]+)/providers/microsoft\.network/locations/([^/]+)/usages$", path, re.I)  # fmt: skip
        if m and method == "GET":  # Usages - List: the network's limits in a region
            self.calls.append(Call("GET", path, "microsoft.network/locations/usages", "list"))
            base_id = f"/subscriptions/{m.group(1)}/providers/Microsoft.Network/locations/{m.group(2)}/usages"  # fmt: skip
            return 200, {"value": [
                {"currentValue": 0, "id": f"{base_id}/{k}", "limit": v, "unit": "Count",
                 "name": {"localizedValue": LIMIT_NAMES[k], "value": k}}
                for k, v in self.limits.items()]}, {}  # fmt: skip
        m = re.match(r"^/subscriptions/([^/]+)/providers/([^/]+)/([^/]+)$", path, re.I)
        if m and method == "GET":  # a subscription-wide list (list_all)
            kind = f"{m.group(2)}/{m.group(3)}".lower()
            if kind not in TOP_TYPES:
                raise ArmError(404, "InvalidResourceType", f"No route for {path}")
            prefix = f"/subscriptions/{m.group(1)}/".lower()
            items = [
                self._view(r)
                for key, r in self.state.resources.items()
                if key.startswith(prefix) and r["type"].lower() == kind
            ]
            self.calls.append(Call("GET", path, kind))
            return 200, _Context(self, m.group(1), {}, "", kind, base, query).page(path, items), {}
        m = re.match(r"^/subscriptions/([^/]+)/resourcegroups$", path, re.I)
        if m:
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", "resource groups are only listed here")
            self.calls.append(Call("GET", path, RESOURCE_GROUPS, "list"))
            prefix = f"{m.group(1)}/".lower()
            groups = [g for k, g in self.state.groups.items() if k.startswith(prefix)]
            return 200, _Context(self, m.group(1), {}, "", "", base, query).page(path, groups), {}
        m = re.match(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)(/.*)?$", path, re.I)
        if not m:
            raise ArmError(404, "InvalidResourceType", f"No route for {path}")
        sub, rg, rest = m.group(1), m.group(2), m.group(3) or ""
        if not rest:
            return self._resource_group(method, sub, rg, data, base)
        group = self.state.groups.get(f"{sub}/{rg}".lower())
        if group is None:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found."
            )
        segments = rest.strip("/").split("/")
        if len(segments) < 3 or segments[0].lower() != "providers":
            raise ArmError(404, "InvalidResourceType", f"No route for {path}")
        namespace, kind = segments[1], segments[2]
        top = f"{namespace}/{kind}".lower()
        if top not in TOP_TYPES:
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type '{kind}' could not be found in the namespace '{namespace}'.",
            )
        prefix = f"/subscriptions/{sub}/resourceGroups/{group['name']}/providers/{TOP_TYPES[top]}"
        names = segments[3:]
        context = _Context(self, sub, group, prefix, top, base, query)
        context.if_match = headers.get("if-match")
        if not names:
            if method == "GET":
                return 200, context.page(path, self._list(prefix + "/")), {}
            raise ArmError(405, "MethodNotAllowed", "collections are only listed")
        name = names[0]
        rid = f"{prefix}/{name}"
        if len(names) == 1:
            return context.resource(method, rid, data, child=None)
        if len(names) == 2 and top == "microsoft.compute/virtualmachines":
            return context.vm_action(method, rid, names[1].lower())
        if (
            len(names) == 4
            and top == "microsoft.network/loadbalancers"
            and method == "POST"
            and names[1].lower() == "loadbalancingrules"
            and names[3].lower() == "health"
        ):
            return self._rule_health(rid, names[2])
        child = CHILD_TYPES.get(top)
        if child is None or names[1].lower() != child[0]:
            raise ArmError(404, "InvalidResourceType", f"No route for {path}")
        if self.state.resources.get(rid.lower()) is None:
            raise ArmError(
                404,
                "ParentResourceNotFound",
                f"Can not perform requested operation on nested resource. Parent resource '{name}' not found.",
            )
        child_prefix = f"{self.state.resources[rid.lower()]['id']}/{child[2].split('/')[1]}"
        if len(names) == 2:
            if method == "GET":
                return 200, context.page(path, self._list(child_prefix + "/")), {}
            raise ArmError(405, "MethodNotAllowed", "collections are only listed")
        if len(names) == 3:
            return context.resource(method, f"{child_prefix}/{names[2]}", data, child=child)
        raise ArmError(404, "InvalidResourceType", f"No route for {path}")

    def _rule_health(self, lb_id: str, rule: str) -> tuple[int, Any, dict[str, str]]:
        """LoadBalancerLoadBalancingRules_Health: each backend address of the rule's pool, Up
        or Down as its probe last found it (answered at once: a 200, which the operation may
        give instead of its 202)."""
        self.calls.append(Call("POST", f"{lb_id}/loadBalancingRules/{rule}/health",
                               "microsoft.network/loadbalancers/loadbalancingrules",
                               "health"))  # fmt: skip
        lb = self.state.resources.get(lb_id.lower())
        rules = {r["name"].lower(): r for r in (lb or {}).get("properties", {}).get(
            "loadBalancingRules", [])}  # fmt: skip
        if lb is None or rule.lower() not in rules:
            raise ArmError(404, "NotFound", f"Load balancing rule {rule} of {lb_id} was not found.")
        pool = rules[rule.lower()]["properties"]["backendAddressPool"]["id"]
        members = self.pool_members(pool)
        probed = self.probed.get(lb_id.lower())
        addresses = []
        for i, (config, address) in enumerate(members):
            up = probed.get(address, False) if probed is not None else i == 0
            addresses.append({
                "ipAddress": address, "networkInterfaceIPConfigurationId": config,
                "state": "Up" if up else "Down",
                "reason": "Up_Probe_Success" if up else "Down_Probe_HttpStatusCodeError",
            })  # fmt: skip
        count = sum(a["state"] == "Up" for a in addresses)
        return 200, {"up": count, "down": len(addresses) - count,
                     "loadBalancerBackendAddresses": addresses}, {}  # fmt: skip

    def _resource_group(
        self, method: str, sub: str, rg: str, data: Any, base: str
    ) -> tuple[int, Any, dict[str, str]]:
        """PUT makes or updates one (its location fixed once made), HEAD says whether it exists
        (204 or 404, no body), GET reads it, DELETE deletes it with everything in it, as ARM
        does: a long-running operation, refused (nothing deleted) when a resource outside the
        group still uses one inside."""
        key = f"{sub}/{rg}".lower()
        group = self.state.groups.get(key)
        verb = {"PUT": "insert" if group is None else "update"}.get(method, method.lower())
        self.calls.append(
            Call(method, f"/subscriptions/{sub}/resourceGroups/{rg}", RESOURCE_GROUPS, verb)
        )
        if method == "HEAD":
            return (204 if group else 404), None, {}
        if method == "PUT":
            if not re.fullmatch(r"[-\w._()]{1,90}", rg) or rg.endswith("."):
                raise ArmError(
                    400,
                    "InvalidResourceGroup",
                    f"The provided resource group name '{rg}' has these invalid characters: "
                    "names are 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'",
                )
            location = (data or {}).get("location")
            if not location:
                raise ArmError(
                    400,
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            if group is not None:
                if location.replace(" ", "").lower() != group["location"].replace(" ", "").lower():
                    raise ArmError(
                        409,
                        "InvalidResourceGroupLocation",
                        f"Invalid resource group location '{location}'. The Resource group "
                        f"already exists in location '{group['location']}'.",
                    )
                group["tags"] = (data or {}).get("tags") or {}
                return 200, group, {}
            self.create_resource_group(sub, rg, location, (data or {}).get("tags") or {})
            return 201, self.state.groups[key], {}
        if group is None:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found."
            )
        if method == "GET":
            return 200, group, {}
        if method != "DELETE":
            raise ArmError(405, "MethodNotAllowed", f"{method} of a resource group is not served")
        inside = f"{group['id']}/".lower()
        held = [k for k in self.state.resources if k.startswith(inside)]
        for other_key, other in self.state.resources.items():
            if other_key.startswith(inside):
                continue
            text = json.dumps(other).lower()
            used = next((k for k in held if f'"{k}"' in text or f'"{k}/' in text), None)
            if used is not None:
                raise ArmError(
                    409,
                    "InUseResourceCannotBeDeleted",
                    f"Resource group '{rg}' cannot be deleted: {self.state.resources[used]['id']} "
                    f"is in use by {other['id']}, outside the group. Nothing was deleted.",
                )
        for k in held:
            del self.state.resources[k]
        del self.state.groups[key]
        return 202, None, self.new_operation(base, sub, group["location"], "Microsoft.Resources")

    def _list(self, prefix: str) -> list[dict[str, Any]]:
        """The direct children under `prefix`, in the order they were made (stable for paging;
        sorting the whole store for every table made observing 500 tables take minutes)."""
        low = prefix.lower()
        return [
            self._view(r)
            for key, r in self.state.resources.items()
            if key.startswith(low) and "/" not in key[len(low) :]
        ]

    def _operation(self, namespace: str, op_id: str) -> tuple[int, Any, dict[str, str]]:
        self.calls.append(Call("GET", op_id, f"{namespace.lower()}/locations/operations"))
        statuses = self.state.operations.get(op_id)
        if statuses is None:
            raise ArmError(404, "OperationNotFound", f"Operation {op_id} was not found.")
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        body: dict[str, Any] = {"id": op_id, "name": op_id, "status": status}
        if status == "Failed":  # (the one failure modelled: a VM extension's script)
            body["error"] = {
                "code": "VMExtensionProvisioningError",
                "message": "VM has reported a failure when processing extension "
                "'connector-profile'. Error message: \"Enable failed: failed to execute "
                'command: command terminated with exit status=1".',
            }
        return 200, body, {}

    def new_operation(
        self, base: str, subscription: str, location: str, namespace: str, failed: bool = False
    ) -> dict[str, str]:
        op = uuid.uuid4().hex
        self.state.operations[op] = ["InProgress", "Failed" if failed else "Succeeded"]
        url = (
            f"{base}/subscriptions/{subscription}/providers/{namespace}/locations/{location}"
            f"/operations/{op}?api-version=2024-01-01"
        )
        return {"Azure-AsyncOperation": url}

    # --- views: what GET shows ---------------------------------------------------------------

    def _view(self, stored: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(stored)
        props = out.setdefault("properties", {})
        kind = out["type"].lower()
        rid = out["id"].lower()
        if kind == "microsoft.network/virtualnetworks":
            props["subnets"] = self._list(out["id"] + "/subnets/")
        elif kind == "microsoft.network/routetables":
            props["routes"] = self._list(out["id"] + "/routes/")
            props["subnets"] = [{"id": s["id"]} for s in self._subnets_referring("routeTable", rid)]
        elif kind == "microsoft.network/networksecuritygroups":
            props["securityRules"] = self._list(out["id"] + "/securityRules/")
            props["defaultSecurityRules"] = DEFAULT_RULES
            props["subnets"] = [
                {"id": s["id"]} for s in self._subnets_referring("networkSecurityGroup", rid)
            ]
        elif kind == "microsoft.network/networkinterfaces":
            vm = self._vm_of_nic(rid)
            if vm:
                props["virtualMachine"] = {"id": vm["id"]}
        elif kind == "microsoft.network/loadbalancers":
            for pool in props.get("backendAddressPools", []):
                pool["properties"]["backendIPConfigurations"] = [
                    {"id": config_id} for config_id, _ in self.pool_members(pool["id"])
                ]
        elif kind == "microsoft.compute/virtualmachines/extensions":
            props.pop("protectedSettings", None)  # encrypted to the VM, never returned
        elif kind == "microsoft.compute/virtualmachines":
            props.get("osProfile", {}).pop("customData", None)
            props.get("osProfile", {}).pop("adminPassword", None)
        return out

    def _subnets_referring(self, prop: str, target_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.state.resources.values()
            if r["type"].lower() == "microsoft.network/virtualnetworks/subnets"
            and (r["properties"].get(prop) or {}).get("id", "").lower() == target_id
        ]

    def _vm_of_nic(self, nic_id: str) -> dict[str, Any] | None:
        for r in self.state.resources.values():
            if r["type"].lower() == "microsoft.compute/virtualmachines":
                for ref in r["properties"].get("networkProfile", {}).get("networkInterfaces", []):
                    if ref.get("id", "").lower() == nic_id:
                        return r
        return None

    def _nics_using_public_ip(self, pip_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.state.resources.values()
            if r["type"].lower() == "microsoft.network/networkinterfaces"
            and any(
                (c.get("properties", {}).get("publicIPAddress") or {}).get("id", "").lower()
                == pip_id
                for c in r["properties"].get("ipConfigurations", [])
            )
        ]

    def pool_members(self, pool_id: str) -> list[tuple[str, str]]:
        """(ipConfiguration id, private address) of the NICs in a load balancer's pool."""
        out = []
        for r in self.state.resources.values():
            if r["type"].lower() != "microsoft.network/networkinterfaces":
                continue
            for c in r["properties"].get("ipConfigurations", []):
                p = c.get("properties", {})
                pools = {
                    x.get("id", "").lower() for x in p.get("loadBalancerBackendAddressPools") or []
                }
                if pool_id.lower() in pools:
                    out.append((c["id"], p.get("privateIPAddress", "")))
        return out

    def lb_part(self, part_id: str, prop: str) -> dict[str, Any] | None:
        """A part (a pool, a frontend...) of a stored load balancer, by its id."""
        lb = self.state.resources.get(part_id.lower().rsplit("/", 2)[0])
        if lb is None or lb["type"].lower() != "microsoft.network/loadbalancers":
            return None
        return next(
            (x for x in lb["properties"].get(prop, []) if x["id"].lower() == part_id.lower()), None
        )

    def private_ips(self, subnet_id: str) -> dict[str, str]:
        """address -> NIC id (or load balancer id, for a frontend), of what is in a subnet."""
        out = {}
        for r in self.state.resources.values():
            if r["type"].lower() == "microsoft.network/loadbalancers":
                for f in r["properties"].get("frontendIPConfigurations", []):
                    p = f.get("properties", {})
                    if (p.get("subnet") or {}).get("id", "").lower() == subnet_id.lower():
                        out[p.get("privateIPAddress", "")] = r["id"]
            if r["type"].lower() != "microsoft.network/networkinterfaces":
                continue
            for c in r["properties"].get("ipConfigurations", []):
                p = c.get("properties", {})
                if (p.get("subnet") or {}).get("id", "").lower() == subnet_id.lower() and p.get(
                    "privateIPAddress"
                ):
                    out[p["privateIPAddress"]] = r["id"]
        return out


DEFAULT_RULES = [
    {
        "name": name,
        "properties": {
            "protocol": "*",
            "sourceAddressPrefix": source,
            "destinationAddressPrefix": dest,
            "sourcePortRange": "*",
            "destinationPortRange": "*",
            "access": access,
            "priority": priority,
            "direction": direction,
        },
    }
    for name, source, dest, access, priority, direction in (
        ("AllowVnetInBound", "VirtualNetwork", "VirtualNetwork", "Allow", 65000, "Inbound"),
        ("AllowAzureLoadBalancerInBound", "AzureLoadBalancer", "*", "Allow", 65001, "Inbound"),
        ("DenyAllInBound", "*", "*", "Deny", 65500, "Inbound"),
        ("AllowVnetOutBound", "VirtualNetwork", "VirtualNetwork", "Allow", 65000, "Outbound"),
        ("AllowInternetOutBound", "*", "Internet", "Allow", 65001, "Outbound"),
        ("DenyAllOutBound", "*", "*", "Deny", 65500, "Outbound"),
    )
]


class _Context:
    """One request's view of a resource group: validation and storage by resource type."""

    def __init__(
        self, arm: Arm, sub: str, group: dict[str, Any], prefix: str, top: str, base: str,
        query: dict[str, str],
    ) -> None:  # fmt: skip
        self.arm, self.sub, self.group, self.prefix = arm, sub, group, prefix
        self.top, self.base, self.query = top, base, query
        self.store = arm.state.resources
        self.if_match: str | None = None  # the request's If-Match: the etag it was read at

    def page(self, path: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """One page of a list, with a nextLink to the rest (the SDK follows it)."""
        start = int(self.query.get("$skiptoken", "0"))
        out: dict[str, Any] = {"value": items[start : start + PAGE]}
        if start + PAGE < len(items):
            version = self.query["api-version"]
            out["nextLink"] = f"{self.base}{path}?api-version={version}&$skiptoken={start + PAGE}"
        return out

    def _record(self, method: str, rid: str, kind: str, body: Any = None) -> None:
        refs = (
            _referenced_types((body or {}).get("properties")) if isinstance(body, dict) else set()
        )
        self.arm.calls.append(Call(method, rid, kind, refs=tuple(sorted(refs))))

    def resource(
        self, method: str, rid: str, data: Any, child: tuple[str, str | None, str] | None
    ) -> tuple[int, Any, dict[str, str]]:
        key = rid.lower()
        kind = self.top if child is None else f"{self.top.split('/')[0]}/{child[2]}".lower()
        self._record(method, rid, kind, data)
        found = self.store.get(key)
        type_name = (
            TOP_TYPES[self.top]
            if child is None
            else f"{TOP_TYPES[self.top].split('/')[0]}/{child[2]}"
        )
        if method == "GET":
            if found is None:
                raise ArmError(
                    404,
                    "ResourceNotFound",
                    f"The Resource '{type_name}/{rid.rsplit('/', 1)[-1]}' under resource group "
                    f"'{self.group['name']}' was not found. For more details please go to "
                    "https://aka.ms/ARMResourceNotFoundFix",
                )
            view = self.arm._view(found)
            if (
                kind == "microsoft.compute/virtualmachines"
                and self.query.get("$expand") == "instanceView"
            ):
                view["properties"]["instanceView"] = instance_view(found)
            return 200, view, {}
        namespace = TOP_TYPES[self.top].split("/")[0]
        location = (found or {}).get("location") or self.group["location"]
        self._check_if_match(rid, found)
        if child is not None and method in ("PUT", "DELETE"):
            # a child's change changes its parent: a route's PUT gives its table a new etag
            parent = self.store.get(rid.rsplit("/", 2)[0].lower())
            if parent is not None:
                parent["etag"] = f'W/"{uuid.uuid4()}"'
        if method == "DELETE":
            if found is None:
                return 204, None, {}
            self._check_delete(kind, found)
            self._delete(key, kind)
            return 202, None, self.arm.new_operation(self.base, self.sub, location, namespace)
        if method == "PATCH" and found is not None and isinstance(data, dict):
            # an update of tags (UpdateTags; a VM's PATCH with tags alone): nothing else moves
            unknown = sorted(set(data) - {"tags"})
            if unknown:
                raise ArmError(405, "MethodNotAllowed", f"PATCH of {unknown} is not served")
            found["tags"] = dict(data.get("tags") or {})
            found["etag"] = f'W/"{uuid.uuid4()}"'
            return (
                200,
                self.arm._view(found),
                self.arm.new_operation(self.base, self.sub, location, namespace),
            )
        if method != "PUT":
            raise ArmError(405, "MethodNotAllowed", f"{method} is not served for {type_name}")
        if not isinstance(data, dict):
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request.")
        name = rid.rsplit("/", 1)[-1]
        if found is not None:
            rid = found["id"]  # names keep the case they were made with
        body: dict[str, Any] = {
            "id": rid,
            "name": name if found is None else found["name"],
            "type": type_name,
            "etag": f'W/"{uuid.uuid4()}"',
        }
        if child is None:
            if not data.get("location"):
                raise ArmError(
                    400,
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            body["location"] = data["location"]
            if "tags" in data:
                body["tags"] = data["tags"]
        for extra in ("sku", "identity", "zones"):
            if extra in data:
                body[extra] = data[extra]
        body["properties"] = copy.deepcopy(data.get("properties") or {})
        embedded = CHILD_TYPES.get(self.top, (None, None, None))[1] if child is None else None
        children = body["properties"].pop(embedded, None) if embedded else None
        VALIDATE[kind](self, body, found)
        failing = kind == "microsoft.compute/virtualmachines/extensions" and not (
            self.arm.extensions_succeed
        )
        body["properties"]["provisioningState"] = "Failed" if failing else "Succeeded"
        self.store[key] = body
        if embedded and (children is not None or found is None):
            self._replace_children(body, embedded, children or [])
        status = 201 if found is None else 200
        return (
            status,
            self.arm._view(body),
            self.arm.new_operation(self.base, self.sub, location, namespace, failed=failing),
        )

    def _check_if_match(self, rid: str, found: dict[str, Any] | None) -> None:
        """A write with If-Match goes through only while the resource still has that etag
        (ARM's optimistic concurrency: 412 PreconditionFailed otherwise)."""
        if self.if_match is None:
            return
        current = (found or {}).get("etag")
        if current is not None and self.if_match in ("*", current):
            return
        raise ArmError(
            412,
            "PreconditionFailed",
            f"Precondition failed. Etag provided in if-match header {self.if_match} does not "
            f"match etag {current} of resource {rid} in NRP data store.",
        )

    def _replace_children(
        self, parent: dict[str, Any], embedded: str, children: list[dict[str, Any]]
    ) -> None:
        """A parent PUT with its embedded children replaces them all (ARM's PUT semantics)."""
        segment = CHILD_TYPES[parent["type"].lower()][2]
        child_kind = f"{parent['type'].split('/')[0]}/{segment}".lower()
        prefix = f"{parent['id']}/{segment.split('/')[1]}/".lower()
        names = set()
        for item in children:
            if not item.get("name"):
                raise ArmError(
                    400, "InvalidRequestFormat", f"Every item of {embedded} needs a name."
                )
            name = item["name"]
            if name.lower() in names:
                raise ArmError(400, "InvalidRequestFormat", f"{embedded} lists '{name}' twice.")
            names.add(name.lower())
        limit = {"routes": "RoutesPerRouteTable",
                 "securityRules": "SecurityRulesPerNetworkSecurityGroup"}.get(embedded)  # fmt: skip
        if limit and len(children) > self.arm.limits[limit]:  # refused whole, nothing changed
            raise ArmError(400, LIMIT_REACHED_CODE,
                           f"{parent['name']} would hold {len(children)} {embedded}: the limit "
                           f"of {LIMIT_NAMES[limit]} ({limit}) is {self.arm.limits[limit]}.")  # fmt: skip
        for key in [k for k in self.store if k.startswith(prefix)]:
            if key[len(prefix) :] not in names:
                del self.store[key]
        for item in children:
            rid = f"{parent['id']}/{segment.split('/')[1]}/{item['name']}"
            child = {
                "id": rid,
                "name": item["name"],
                "type": f"{parent['type'].split('/')[0]}/{segment}",
                "etag": f'W/"{uuid.uuid4()}"',
                "properties": copy.deepcopy(item.get("properties") or {}),
            }
            VALIDATE[child_kind](self, child, self.store.get(rid.lower()))
            child["properties"]["provisioningState"] = "Succeeded"
            self.store[rid.lower()] = child

    def _check_delete(self, kind: str, found: dict[str, Any]) -> None:
        rid = found["id"].lower()
        if kind == "microsoft.network/routetables" and self.arm._subnets_referring(
            "routeTable", rid
        ):
            raise ArmError(
                400,
                "InUseRouteTableCannotBeDeleted",
                f"Route table {found['id']} is in use and cannot be deleted.",
            )
        if kind == "microsoft.network/networksecuritygroups" and (
            self.arm._subnets_referring("networkSecurityGroup", rid) or self._nics_with_nsg(rid)
        ):
            raise ArmError(
                400,
                "InUseNetworkSecurityGroupCannotBeDeleted",
                f"Network security group {found['id']} cannot be deleted because it is in use.",
            )
        if kind == "microsoft.network/networkinterfaces":
            vm = self.arm._vm_of_nic(rid)
            if vm:
                raise ArmError(
                    400,
                    "NicInUse",
                    f"Network Interface {found['id']} is used by existing resource {vm['id']}.",
                )
        if kind == "microsoft.network/loadbalancers":
            for pool in found["properties"].get("backendAddressPools", []):
                members = self.arm.pool_members(pool["id"])
                if members:  # (ARM refuses; its code here is not confirmed by a reference)
                    raise ArmError(
                        400,
                        "LoadBalancerInUseByVirtualMachine",
                        f"Cannot delete load balancer {found['id']}: its backend address pool "
                        f"{pool['id']} is in use by {members[0][0]}.",
                    )
        if kind == "microsoft.network/publicipaddresses" and self.arm._nics_using_public_ip(rid):
            raise ArmError(
                400,
                "PublicIPAddressCannotBeDeleted",
                f"Public IP address {found['id']} can not be deleted since it is still allocated to a resource.",
            )
        if kind == "microsoft.network/virtualnetworks/subnets" and self.arm.private_ips(
            found["id"]
        ):
            raise ArmError(400, "InUseSubnetCannotBeDeleted", f"Subnet {found['name']} is in use.")

    def _nics_with_nsg(self, nsg_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.store.values()
            if r["type"].lower() == "microsoft.network/networkinterfaces"
            and (r["properties"].get("networkSecurityGroup") or {}).get("id", "").lower() == nsg_id
        ]

    def _delete(self, key: str, kind: str) -> None:
        for k in [k for k in self.store if k == key or k.startswith(key + "/")]:
            del self.store[k]

    def vm_action(self, method: str, rid: str, action: str) -> tuple[int, Any, dict[str, str]]:
        found = self.store.get(rid.lower())
        self._record(method, f"{rid}/{action}", "microsoft.compute/virtualmachines")
        if found is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Compute/virtualMachines/{rid.rsplit('/', 1)[-1]}' under resource group '{self.group['name']}' was not found.",
            )
        if method == "GET" and action == "instanceview":
            return 200, instance_view(found), {}
        states = {
            "start": "running",
            "restart": "running",
            "poweroff": "stopped",
            "deallocate": "deallocated",
        }
        if method != "POST" or action not in states:
            raise ArmError(405, "MethodNotAllowed", f"{method} {action} is not served")
        found["powerState"] = states[action]
        return (
            202,
            None,
            self.arm.new_operation(self.base, self.sub, found["location"], "Microsoft.Compute"),
        )

    # --- validation by type (each raises what ARM raises) ---------------------------------------

    def ref(self, value: Any, holder: str, expect: str) -> str | None:
        """A {id} reference that must name an existing resource of type `expect`."""
        if value is None:
            return None
        rid = value.get("id") if isinstance(value, dict) else None
        target = self.store.get(str(rid).lower()) if rid else None
        if target is None or target["type"].lower() != expect:
            raise ArmError(
                400,
                "InvalidResourceReference",
                f"Resource {rid} referenced by resource {holder} was not found. Please make sure "
                "that the referenced resource exists, and that both resources are in the same region.",
            )
        return str(rid)


def _request_id() -> dict[str, str]:
    return {"x-ms-request-id": str(uuid.uuid4())}


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _cidr(value: Any, what: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError:
        raise ArmError(
            400, "InvalidAddressPrefixFormat", f"Address prefix {value} of {what} is not valid."
        ) from None


def _vnet(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    prefixes = body["properties"].get("addressSpace", {}).get("addressPrefixes") or []
    if not prefixes:
        raise ArmError(
            400,
            "InvalidAddressSpace",
            "The address space of a virtual network needs at least one prefix.",
        )
    for p in prefixes:
        _cidr(p, body["id"])


def _subnet(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    props = body["properties"]
    if "addressPrefix" not in props:
        raise ArmError(400, "InvalidRequestFormat", "Subnet addressPrefix is required.")
    prefix = _cidr(props["addressPrefix"], body["id"])
    vnet_id = body["id"].rsplit("/subnets/", 1)[0]
    vnet = ctx.store[vnet_id.lower()]
    space = [
        ipaddress.IPv4Network(p) for p in vnet["properties"]["addressSpace"]["addressPrefixes"]
    ]
    if not any(prefix.subnet_of(s) for s in space):
        raise ArmError(
            400,
            "NetcfgSubnetRangeOutsideVnet",
            f"Subnet '{body['name']}' is not valid because its IP address range is outside the IP address range of virtual network '{vnet['name']}'.",
        )
    for key, other in ctx.store.items():
        sibling = key.startswith(vnet_id.lower() + "/subnets/") and key != body["id"].lower()
        if sibling and ipaddress.IPv4Network(other["properties"]["addressPrefix"]).overlaps(prefix):
            raise ArmError(
                400,
                "NetcfgSubnetRangesOverlap",
                f"Subnet '{body['name']}' is not valid because its IP address range overlaps with that of an existing subnet in virtual network '{vnet['name']}'.",
            )
    # one route table, one NSG, one NAT gateway: a subnet holds one reference to each
    ctx.ref(props.get("routeTable"), body["id"], "microsoft.network/routetables")
    ctx.ref(
        props.get("networkSecurityGroup"), body["id"], "microsoft.network/networksecuritygroups"
    )
    ctx.ref(props.get("natGateway"), body["id"], "microsoft.network/natgateways")
    if isinstance(props.get("routeTable"), list):
        raise ArmError(400, "InvalidRequestFormat", "A subnet has one route table.")


def _route_table(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    body["properties"].pop("subnets", None)  # read-only: follows the subnets' references


def _over_limit(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None,
                child: str, limit: str) -> None:  # fmt: skip
    """A new child of a route table or NSG past the network's limit is refused whole."""
    if found is not None:
        return
    parent = body["id"].rsplit(f"/{child}/", 1)[0]
    held = sum(1 for k in ctx.store if k.startswith(parent.lower() + f"/{child.lower()}/"))
    if held >= ctx.arm.limits[limit]:
        raise ArmError(400, LIMIT_REACHED_CODE,
                       f"Cannot add {body['name']} to {parent.rsplit('/', 1)[-1]}: it holds "
                       f"{held}, the limit of {LIMIT_NAMES[limit]} ({limit}) is "
                       f"{ctx.arm.limits[limit]}.")  # fmt: skip


def _route(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    _over_limit(ctx, body, found, "routes", "RoutesPerRouteTable")
    props = body["properties"]
    _cidr(props.get("addressPrefix"), body["id"])
    hop = props.get("nextHopType")
    if hop not in NEXT_HOP_TYPES:
        raise ArmError(
            400,
            "InvalidRequestFormat",
            f"nextHopType '{hop}' is not one of {', '.join(NEXT_HOP_TYPES)}.",
        )
    address = props.get("nextHopIpAddress")
    if hop == "VirtualAppliance":
        try:
            ipaddress.IPv4Address(str(address))
        except ValueError:
            raise ArmError(
                400,
                "RouteNextHopIpAddressRequired",
                f"Route {body['name']} has nextHopType VirtualAppliance: nextHopIpAddress must be a valid IP address (given: {address}).",
            ) from None
    elif address:
        raise ArmError(
            400,
            "RouteNextHopIpAddressNotAllowed",
            f"Route {body['name']}: nextHopIpAddress is only allowed when nextHopType is VirtualAppliance, not {hop}.",
        )


def _nsg(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    for key in ("defaultSecurityRules", "subnets", "networkInterfaces"):
        body["properties"].pop(key, None)  # read-only


def _security_rule(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    _over_limit(ctx, body, found, "securityRules", "SecurityRulesPerNetworkSecurityGroup")
    props = body["properties"]
    priority = props.get("priority")
    if not isinstance(priority, int) or not 100 <= priority <= 4096:
        raise ArmError(
            400,
            "SecurityRuleInvalidPriority",
            f"Security rule has invalid Priority. Value provided: {priority} Allowed range 100-4096.",
        )
    direction = props.get("direction")
    if direction not in ("Inbound", "Outbound") or props.get("access") not in ("Allow", "Deny"):
        raise ArmError(
            400,
            "InvalidRequestFormat",
            "direction must be Inbound or Outbound, access Allow or Deny.",
        )
    if props.get("protocol") not in RULE_PROTOCOLS:
        raise ArmError(
            400,
            "SecurityRuleInvalidProtocol",
            f"Security rule has invalid Protocol. Value provided: {props.get('protocol')}.",
        )
    if props.get("sourceAddressPrefix") and props.get("sourceAddressPrefixes"):
        raise ArmError(
            400,
            "SecurityRuleParameterContainsUnsupportedValue",
            "Give sourceAddressPrefix or sourceAddressPrefixes, not both.",
        )
    if not (
        props.get("sourceAddressPrefix")
        or props.get("sourceAddressPrefixes")
        or props.get("sourceApplicationSecurityGroups")
    ):
        raise ArmError(400, "SecurityRuleInvalidAddressPrefix", "Security rule has no source.")
    nsg_prefix = body["id"].rsplit("/securityRules/", 1)[0].lower() + "/securityrules/"
    for key, other in ctx.store.items():
        o = other["properties"]
        if (
            key.startswith(nsg_prefix)
            and key != body["id"].lower()
            and o.get("priority") == priority
            and o.get("direction") == direction
        ):
            raise ArmError(
                400,
                "SecurityRuleConflict",
                f"Security rule {body['name']} conflicts with rule {other['name']}. Rules cannot have the same Priority and Direction.",
            )


def _public_ip(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    props = body["properties"]
    if (body.get("sku") or {}).get("name") == "Standard" and props.get(
        "publicIPAllocationMethod"
    ) != "Static":
        raise ArmError(
            400,
            "StandardSkuPublicIPAddressesMustBeStatic",
            "Standard sku publicIp addresses must have the allocation method Static.",
        )
    props["ipAddress"] = (found or {}).get("properties", {}).get("ipAddress") or str(
        PUBLIC_POOL.network_address + next(ctx.arm._public_ips) % 250 + 1
    )


def _nat_gateway(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    for ref in body["properties"].get("publicIpAddresses") or []:
        ctx.ref(ref, body["id"], "microsoft.network/publicipaddresses")


def _nic(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    props = body["properties"]
    configs = props.get("ipConfigurations") or []
    if not configs:
        raise ArmError(400, "InvalidRequestFormat", "A network interface needs an ipConfiguration.")
    ctx.ref(
        props.get("networkSecurityGroup"), body["id"], "microsoft.network/networksecuritygroups"
    )
    props.pop("virtualMachine", None)  # read-only
    for c in configs:
        c.setdefault("id", f"{body['id']}/ipConfigurations/{c.get('name', 'ipconfig1')}")
        p = c.setdefault("properties", {})
        subnet_id = ctx.ref(
            p.get("subnet"), body["id"], "microsoft.network/virtualnetworks/subnets"
        )
        if subnet_id is None:
            raise ArmError(400, "InvalidRequestFormat", "An ipConfiguration needs a subnet.")
        subnet = ipaddress.IPv4Network(ctx.store[subnet_id.lower()]["properties"]["addressPrefix"])
        taken = {
            ip: nic
            for ip, nic in ctx.arm.private_ips(subnet_id).items()
            if nic.lower() != body["id"].lower()
        }
        reserved = {str(subnet.network_address + i) for i in range(4)} | {
            str(subnet.broadcast_address)
        }
        if p.get("privateIPAllocationMethod") == "Static":
            address = p.get("privateIPAddress")
            try:
                ip = ipaddress.IPv4Address(str(address))
            except ValueError:
                raise ArmError(
                    400, "InvalidPrivateIPAddress", f"Private IP address {address} is not valid."
                ) from None
            if ip not in subnet:
                raise ArmError(
                    400,
                    "PrivateIPAddressNotInSubnet",
                    f"IP configuration {c['id']} has a private IP address {ip} that does not belong to subnet {subnet_id}.",
                )
            if str(ip) in reserved:
                raise ArmError(
                    400,
                    "PrivateIPAddressIsReserved",
                    f"Private static IP address {ip} falls within reserved IP range of subnet prefix {subnet}.",
                )
            if str(ip) in taken:
                raise ArmError(
                    400,
                    "PrivateIPAddressInUse",
                    f"IP configuration {c['id']} is using the private IP address {ip} which is already allocated to resource {taken[str(ip)]}.",
                )
        else:
            p["privateIPAllocationMethod"] = "Dynamic"
            old = next(
                (
                    oc.get("properties", {}).get("privateIPAddress")
                    for oc in (found or {}).get("properties", {}).get("ipConfigurations", [])
                ),
                None,
            )
            p["privateIPAddress"] = old or next(
                str(a) for a in subnet.hosts() if str(a) not in reserved and str(a) not in taken
            )
        for pool in p.get("loadBalancerBackendAddressPools") or []:
            if ctx.arm.lb_part(str((pool or {}).get("id", "")), "backendAddressPools") is None:
                raise ArmError(
                    400,
                    "InvalidResourceReference",
                    f"Resource {(pool or {}).get('id')} referenced by resource {body['id']} was "
                    "not found. Please make sure that the referenced resource exists, and that "
                    "both resources are in the same region.",
                )
        pip_id = ctx.ref(
            p.get("publicIPAddress"), body["id"], "microsoft.network/publicipaddresses"
        )
        if pip_id:
            users = [
                n
                for n in ctx.arm._nics_using_public_ip(pip_id.lower())
                if n["id"].lower() != body["id"].lower()
            ]
            if users:
                raise ArmError(
                    400,
                    "PublicIPAddressInUse",
                    f"Resource {pip_id} is already in use by {users[0]['id']}.",
                )


def _bad(message: str) -> ArmError:
    return ArmError(400, "InvalidRequestFormat", message)


def _load_balancer(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    """An internal Standard load balancer as a next hop needs: frontends in a subnet (a static
    address must be in it and free), backend pools (NICs join from their side), probes (Http
    and Https with a path), and rules naming this balancer's own parts; an HA-ports rule
    (protocol All, ports 0 and 0) only on a Standard balancer's internal frontend."""
    props = body["properties"]
    for prop, segment in LB_PARTS.items():
        names = set()
        for part in props.setdefault(prop, []):
            name = part.get("name")
            if not name or name.lower() in names:
                raise _bad(f"Every item of {prop} needs a name of its own.")
            names.add(name.lower())
            part["id"] = f"{body['id']}/{segment}/{name}"
            part["type"] = f"Microsoft.Network/loadBalancers/{segment}"
            part["etag"] = body["etag"]
            part.setdefault("properties", {})["provisioningState"] = "Succeeded"
    own = {prop: {p["id"].lower(): p for p in props[prop]} for prop in LB_PARTS}
    standard = (body.get("sku") or {}).get("name") == "Standard"
    for f in props["frontendIPConfigurations"]:
        p = f["properties"]
        subnet_id = ctx.ref(p.get("subnet"), f["id"], "microsoft.network/virtualnetworks/subnets")
        if subnet_id is None:
            if not p.get("publicIPAddress"):
                raise _bad(f"Frontend IP configuration {f['id']} needs a subnet or a public IP.")
            ctx.ref(p["publicIPAddress"], f["id"], "microsoft.network/publicipaddresses")
            continue
        subnet = ipaddress.IPv4Network(ctx.store[subnet_id.lower()]["properties"]["addressPrefix"])
        taken = {ip for ip, who in ctx.arm.private_ips(subnet_id).items()
                 if who.lower() != body["id"].lower()}  # fmt: skip
        reserved = {str(subnet.network_address + i) for i in range(4)} | {
            str(subnet.broadcast_address)
        }
        if p.get("privateIPAllocationMethod") == "Static":
            address = str(p.get("privateIPAddress"))
            try:
                inside = ipaddress.IPv4Address(address) in subnet
            except ValueError:
                inside = False
            if not inside or address in reserved:
                raise ArmError(400, "PrivateIPAddressNotInSubnet",
                               f"Frontend IP configuration {f['id']} has a private IP address "
                               f"{address} that does not belong to subnet {subnet_id}.")  # fmt: skip
            if address in taken:
                raise ArmError(400, "PrivateIPAddressInUse",
                               f"Frontend IP configuration {f['id']} is using the private IP "
                               f"address {address} which is already allocated.")  # fmt: skip
        else:
            p["privateIPAllocationMethod"] = "Dynamic"
            p["privateIPAddress"] = next(str(a) for a in subnet.hosts()
                                         if str(a) not in reserved and str(a) not in taken)  # fmt: skip
    for probe in props["probes"]:
        p = probe["properties"]
        if p.get("protocol") not in ("Http", "Https", "Tcp"):
            raise _bad(
                f"Probe {probe['id']} has protocol {p.get('protocol')!r}: Http, Https or Tcp."
            )
        if p["protocol"] != "Tcp" and not p.get("requestPath"):
            raise _bad(f"Probe {probe['id']} uses {p['protocol']} and needs a requestPath.")
        if not 1 <= int(p.get("port") or 0) <= 65535:
            raise _bad(f"Probe {probe['id']} has port {p.get('port')}: 1 to 65535.")
        p.setdefault("intervalInSeconds", 15)
        p.setdefault("numberOfProbes", 2)
        if int(p["intervalInSeconds"]) < 5:
            raise _bad(f"Probe {probe['id']}: intervalInSeconds is at least 5.")
    for rule in props["loadBalancingRules"]:
        p = rule["properties"]
        refs = {"frontendIPConfiguration": "frontendIPConfigurations",
                "backendAddressPool": "backendAddressPools", "probe": "probes"}  # fmt: skip
        for key, prop in refs.items():
            ref = (p.get(key) or {}).get("id", "").lower()
            if (ref or key != "probe") and ref not in own[prop]:
                raise ArmError(400, "InvalidResourceReference",
                               f"Resource {ref or '(none)'} referenced by resource {rule['id']} was "
                               "not found in the load balancer.")  # fmt: skip
        protocol, ports = p.get("protocol"), (p.get("frontendPort"), p.get("backendPort"))
        if protocol not in ("Tcp", "Udp", "All"):
            raise _bad(
                f"Load balancing rule {rule['id']} has protocol {protocol!r}: Tcp, Udp or All."
            )
        if (protocol == "All") != (ports == (0, 0)):
            raise _bad(f"Load balancing rule {rule['id']}: HA ports are protocol All with "
                       "frontendPort 0 and backendPort 0, and only they use port 0.")  # fmt: skip
        frontend = own["frontendIPConfigurations"][p["frontendIPConfiguration"]["id"].lower()]
        if protocol == "All" and not (standard and frontend["properties"].get("subnet")):
            raise _bad(f"Load balancing rule {rule['id']}: HA ports are for an internal "
                       "frontend of a Standard load balancer.")  # fmt: skip


class LbProbes:
    """What a load balancer's health probes make of its pool's members, as Azure's do: each
    member asked every `intervalInSeconds` on the probe's port and path (Http: up on a 200), up
    or down once `probeThreshold` answers in a row say so (else the older `numberOfProbes`; a
    new member starts down). `round`
    asks once; `healthy` is where the balancer sends new flows now (an HA-ports rule spreads
    them over the healthy members; with none healthy, Azure sends no new flow anywhere)."""

    def __init__(self, arm: Arm, lb_id: str) -> None:
        self.arm, self.lb_id = arm, lb_id
        self.streak: dict[str, tuple[bool, int]] = {}  # address -> (last answer, in a row)
        self.up: dict[str, bool] = {}

    def probe(self) -> dict[str, Any]:
        with self.arm.lock:
            lb = self.arm.state.resources[self.lb_id.lower()]
            return dict(copy.deepcopy(lb["properties"]["probes"][0]["properties"]))

    def members(self) -> list[str]:
        with self.arm.lock:
            lb = self.arm.state.resources[self.lb_id.lower()]
            pools = lb["properties"]["backendAddressPools"]
            return [ip for pool in pools for _, ip in self.arm.pool_members(pool["id"])]

    def round(self, timeout: float = 1.0) -> None:
        import urllib.request

        probe = self.probe()
        for address in self.members():
            url = f"http://{address}:{probe['port']}{probe.get('requestPath', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    ok = r.status == 200
            except Exception:  # refused, timed out, not 200
                ok = False
            last, count = self.streak.get(address, (ok, 0))
            count = count + 1 if last == ok else 1
            self.streak[address] = (ok, count)
            if count >= int(probe.get("probeThreshold") or probe.get("numberOfProbes") or 1):
                self.up[address] = ok
        with self.arm.lock:  # what the health status API reports
            self.arm.probed[self.lb_id.lower()] = dict(self.up)

    def healthy(self) -> list[str]:
        return [a for a in self.members() if self.up.get(a)]


def _vm(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    props = body["properties"]
    if not (props.get("hardwareProfile") or {}).get("vmSize"):
        raise ArmError(
            400,
            "InvalidParameter",
            "Required parameter 'hardwareProfile.vmSize' is missing (null).",
        )
    refs = (props.get("networkProfile") or {}).get("networkInterfaces") or []
    if not refs:
        raise ArmError(
            400, "InvalidParameter", "Required parameter 'networkProfile' is missing (null)."
        )
    for ref in refs:
        nic_id = ctx.ref(ref, body["id"], "microsoft.network/networkinterfaces") or ""
        other = ctx.arm._vm_of_nic(nic_id.lower())
        if other and other["id"].lower() != body["id"].lower():
            raise ArmError(
                400,
                "NicInUse",
                f"Network Interface {nic_id} is used by existing resource {other['id']}.",
            )
    os_profile = props.get("osProfile") or (found or {}).get("properties", {}).get("osProfile")
    if found is None:
        if (
            not os_profile
            or not os_profile.get("adminUsername")
            or not os_profile.get("computerName")
        ):
            raise ArmError(
                400, "InvalidParameter", "Required parameter 'osProfile' is missing (null)."
            )
        linux = os_profile.get("linuxConfiguration") or {}
        keys = (linux.get("ssh") or {}).get("publicKeys") or []
        if linux.get("disablePasswordAuthentication") and not keys:
            raise ArmError(
                400,
                "InvalidParameter",
                "Authentication using either SSH or by user name and password must be enabled in Linux profile.",
            )
        data = os_profile.get("customData")
        if data is not None:
            try:
                base64.b64decode(data, validate=True)
            except ValueError:
                raise ArmError(
                    400, "InvalidParameter", "Custom data in OSProfile must be in Base64 encoding."
                ) from None
            if len(data) > 87380:
                raise ArmError(400, "InvalidParameter", "Custom data in OSProfile is too long.")
        body["powerState"] = "running"
    else:
        props["osProfile"] = found["properties"].get("osProfile")
        body["powerState"] = found.get("powerState", "running")
    props["vmId"] = (found or {}).get("properties", {}).get("vmId") or str(uuid.uuid4())
    # when it was made (read-only, API 2021-11-01 on): each VM later than the one before
    props["timeCreated"] = (found or {}).get("properties", {}).get("timeCreated") or _stamp(
        next(ctx.arm._created)
    )
    image = (props.get("storageProfile") or {}).get("imageReference") or {}
    if image.get("publisher"):  # a Marketplace image: the version it was made with, read-only
        key = (image["publisher"].lower(), str(image.get("offer")).lower(),
               str(image.get("sku")).lower())  # fmt: skip
        versions = ctx.arm.image_versions.get(key)
        if not versions:
            raise ArmError(404, "PlatformImageNotFound",
                           f"The platform image '{image['publisher']}:{image.get('offer')}:"
                           f"{image.get('sku')}:{image.get('version')}' is not available.")  # fmt: skip
        wanted = image.get("version") or "latest"
        if wanted != "latest" and wanted not in versions:
            raise ArmError(404, "PlatformImageNotFound", f"Version {wanted} is not available.")
        old = (((found or {}).get("properties") or {}).get("storageProfile") or {}).get(
            "imageReference") or {}  # fmt: skip
        image["exactVersion"] = old.get("exactVersion") or (
            versions[-1] if wanted == "latest" else wanted
        )


def _extension(ctx: _Context, body: dict[str, Any], found: dict[str, Any] | None) -> None:
    props = body["properties"]
    for key in ("publisher", "type", "typeHandlerVersion"):
        if not props.get(key):
            raise ArmError(
                400, "InvalidParameter", f"Required parameter '{key}' is missing (null)."
            )
    if "location" not in body:
        vm = ctx.store[body["id"].rsplit("/extensions/", 1)[0].lower()]
        body["location"] = vm["location"]


def _stamp(step: int) -> str:
    """The step-th moment after the fake's start, as ARM writes a timeCreated."""
    import datetime

    at = datetime.datetime(2026, 11, 25, 8, tzinfo=datetime.UTC) + datetime.timedelta(seconds=step)
    return at.strftime("%Y-%m-%dT%H:%M:%S.0000000+00:00")


def instance_view(vm: dict[str, Any]) -> dict[str, Any]:
    power = vm.get("powerState", "running")
    return {
        "statuses": [
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Provisioning succeeded",
            },
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ]
    }


VALIDATE: dict[str, Callable[[_Context, dict[str, Any], dict[str, Any] | None], None]] = {
    "microsoft.network/virtualnetworks": _vnet,
    "microsoft.network/virtualnetworks/subnets": _subnet,
    "microsoft.network/routetables": _route_table,
    "microsoft.network/routetables/routes": _route,
    "microsoft.network/networksecuritygroups": _nsg,
    "microsoft.network/networksecuritygroups/securityrules": _security_rule,
    "microsoft.network/publicipaddresses": _public_ip,
    "microsoft.network/natgateways": _nat_gateway,
    "microsoft.network/networkinterfaces": _nic,
    "microsoft.network/loadbalancers": _load_balancer,
    "microsoft.compute/virtualmachines": _vm,
    "microsoft.compute/virtualmachines/extensions": _extension,
}


ArmServer = FakeServer  # the name the Azure tests and the sandbox know


def iter_resources(arm: Arm, kind: str) -> Iterator[dict[str, Any]]:
    """Stored resources of one type (lower case, e.g. 'microsoft.network/routetables')."""
    with arm.lock:
        for r in list(arm.state.resources.values()):
            if r["type"].lower() == kind:
                yield arm._view(r)
