"""Names, clients and helpers shared by the Azure provider's modules."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from ...errors import CloudError
from ...limits import limits
from ...model import Change, Network
from ..base import Members, Provider
from .cloud import ENDPOINT_VARIABLE, AzureLocation

TAG = "connector-provisioner:network"
FILE_TAG = "connector-provisioner:file"  # the id of the topology file whose network it is
FINGERPRINT_TAG = "connector-provisioner:fingerprint"
EXTENSION = "connector-profile"
PEER_TAG = "connector-provisioner:peer"  # on each VM of a pair: the other's address
# Canonical's Ubuntu 24.04 LTS on the Azure Marketplace
UBUNTU = {
    "publisher": "Canonical",
    "offer": "ubuntu-24_04-lts",
    "sku": "server",
    "version": "latest",
}


def route_name(destination: IPv4Network) -> str:
    """Our UDRs are named after what they route: cp-100-96-0-0-11."""
    return "cp-" + str(destination).replace(".", "-").replace("/", "-")


def rule_name(network: str, key: str) -> str:
    return f"cp-{network}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def short(resource_id: str | None) -> str:
    return (resource_id or "").rstrip("/").rsplit("/", 1)[-1]


def error_text(e: BaseException) -> str:
    from azure.core.exceptions import HttpResponseError

    if isinstance(e, HttpResponseError) and e.error is not None:
        return f"{e.error.code}: {e.error.message}"
    return f"{type(e).__name__}: {e}".split("\n")[0]


def _group_of(resource_id: str, default: str = "") -> str:
    """The resource group named in a resource id (lower case as given)."""
    parts = resource_id.split("/")
    for i, p in enumerate(parts):
        if p.lower() == "resourcegroups" and i + 1 < len(parts):
            return parts[i + 1]
    return default


class _SandboxToken:
    """Stands in for the bearer-token policy against the sandbox's fake ARM only: that policy
    refuses plain http, and the fake takes any token. The real path keeps azure-core's own."""

    def on_request(self, request: Any) -> None:
        request.http_request.headers["Authorization"] = "Bearer sandbox"

    def on_response(self, request: Any, response: Any) -> None:
        pass

    def on_exception(self, request: Any) -> None:
        pass


class _NoCredential:
    def get_token(self, *_: Any, **__: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("sandbox", int(time.time()) + 3600)


MODEL_BASES = (
    "azure.mgmt.network._utils.model_base",
    "azure.mgmt.compute._utils.model_base",
)


def serialize_model_setup() -> None:
    """azure-mgmt-network and -compute build each model class's field table the first time the
    class is instantiated, unguarded: two threads that meet a class for the first time at once
    (two networks observed side by side, two VMs launched) can see it half-built, and a nested
    field comes back as a plain dict ("'dict' object has no attribute 'address_prefixes'") or
    the class dict changes size under a comprehension. Measured: 3 processes in 20 with 8
    threads deserializing a VNet. The first instantiation of each class is serialized here;
    after it, instantiation goes through unlocked as before."""
    import importlib
    import threading

    for name in MODEL_BASES:
        model = importlib.import_module(name).Model
        original = model.__dict__["__new__"]
        if getattr(original, "serialized", False):
            continue
        lock = threading.RLock()

        def new(
            cls: Any, *args: Any, _original: Any = original, _lock: Any = lock, **kw: Any
        ) -> Any:
            if f"{cls.__module__}.{cls.__qualname__}" in cls._calculated:
                return _original(cls, *args, **kw)
            with _lock:
                return _original(cls, *args, **kw)

        new.serialized = True  # type: ignore[attr-defined]
        model.__new__ = new


class RetryProgress:
    """A per-retry policy of azure-core's pipeline: from a call's second attempt on (a timeout,
    a 429, a 5xx), one progress line each time; azure-core's retries are otherwise silent."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.progress = progress

    def on_request(self, request: Any) -> None:
        attempt = int(request.context.get("provision_attempt", 0)) + 1
        request.context["provision_attempt"] = attempt
        if attempt > 1:
            url = str(request.http_request.url).split("?")[0]
            self.progress(f"{request.http_request.method} {url}: trying again (attempt {attempt})")

    def on_response(self, request: Any, response: Any) -> None:
        pass

    def on_exception(self, request: Any) -> None:
        pass


def clients(
    subscription: str,
    endpoint: str | None,
    credential: Any,
    retry_total: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[Any, Any]:
    """(network client, compute client). Against `endpoint` (the sandbox) no real credential is
    used and nothing else is reached; otherwise DefaultAzureCredential, azure-core's retries
    (which honour Retry-After on 429) and ARM's own polling intervals."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

    serialize_model_setup()
    bounds = limits()
    # azure-core's transport waits `connection_timeout` / `read_timeout`; its retry policy
    # gives up on a call with its retries after `timeout` seconds
    options: dict[str, Any] = {
        "retry_total": retry_total,
        "connection_timeout": bounds.connect,
        "read_timeout": bounds.read,
        "timeout": bounds.deadline,
    }
    if progress is not None:
        policy = type("RetryProgressPolicy", (RetryProgress, SansIOHTTPPolicy), {})(progress)
        options["per_retry_policies"] = [policy]
    if endpoint:
        token = type("SandboxToken", (_SandboxToken, SansIOHTTPPolicy), {})()
        options.update(base_url=endpoint, authentication_policy=token, polling_interval=0)
        credential = _NoCredential()
    elif credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return (
        NetworkManagementClient(credential, subscription, **options),
        ComputeManagementClient(credential, subscription, **options),
    )


def sandbox_endpoint() -> str | None:
    return os.environ.get(ENDPOINT_VARIABLE) or None


@dataclass
class AzureSeen:
    """What observe learnt of the network that apply's handlers act on, and apply keeps current:
    made anew by each observe (its helpers fill the one they are handed) and read by the parts
    through `AzureState.seen`, never through attributes of their own."""

    vnet: Any = None  # the VNet with its subnets (the launch, the pair's frontend, filters)
    # our routes' names: (table, destination) -> route name (the route tables' writes)
    route_names: dict[tuple[str, IPv4Network], str] = field(default_factory=dict)
    table_ids: dict[str, str] = field(default_factory=dict)  # table as the plan names it -> id
    # our app rules' names: (group, source, ports) -> rule name (Groups)
    app_rule_names: dict[tuple[str, str, str], str] = field(default_factory=dict)
    group_ids: dict[str, str] = field(default_factory=dict)  # app group as named -> id (Groups)
    # every NSG's security rules, inbound and outbound, by its name in the plan: what the
    # limit counts (one rule may hold several of the rules observe reads)
    rule_counts: dict[str, int] = field(default_factory=dict)
    # a pair's load balancer: its frontend's address and its pool (Pair; the launch joins it)
    front_ip: str | None = None
    pool_id: str | None = None
    vm_tags: dict[int, dict[str, str]] = field(default_factory=dict)  # each member's VM's tags
    # each member's names whose NIC or public IP is left without its VM (the leftovers' delete)
    leftovers: dict[int, dict[str, Any]] = field(default_factory=dict)
    # each member's VMs of its other names, replaced by one made beside them: name -> address
    older: dict[str, str | None] = field(default_factory=dict)


class AzureState(Members, Provider):
    """What the provider's parts share: the network, its clients, the names of what it owns and
    what observe learnt. Set up by AzureNetwork.__init__ and observe."""

    network: Network
    location: AzureLocation
    net: Any
    compute: Any
    rg: str
    progress: Callable[[str], None]
    wait_seconds: float
    progress_seconds: float
    tags: dict[str, str]
    nsg_name: str
    table_name: str
    vm_name: str
    nic_name: str
    ip_name: str
    lb_name: str  # a pair's load balancer
    seen: AzureSeen  # what the last observe learnt (and apply since)
    connector_ip: str | None  # the current member's (Members.as_member), learnt by observe

    def route_target(self, change: Change) -> str:
        """The next hop a route change names (Pair's: the load balancer or a connector)."""
        raise NotImplementedError

    def member_names(self, member: int, successor: bool = False) -> dict[str, Any]:
        """A pair's second connector has names of its own: cp-<network>-connector-2... A VM made
        beside the one it replaces takes the member's other names (`successor`: ...-r; names
        are unique in a resource group), the next replacement the first ones again."""
        name, end = self.network.name, ("-2" if member else "") + ("-r" if successor else "")
        return {
            "member": member,
            "vm_name": f"cp-{name}-connector{end}",
            "nic_name": f"cp-{name}-nic{end}",
            "ip_name": f"cp-{name}-ip{end}",
            "connector_ip": None,
        }

    def names_of(self, vm_name: str) -> dict[str, Any]:
        """The names that go with one of the member's two VM names."""
        return self.member_names(self.member, successor=vm_name.endswith("-r"))

    @contextlib.contextmanager
    def as_vm(self, names: dict[str, Any]) -> Iterator[None]:
        """For the length of the block, the handlers act on the VM of `names` (one that a VM
        made beside it replaces); the member's own names and address come back after."""
        keys = ("vm_name", "nic_name", "ip_name", "connector_ip")
        kept = {k: getattr(self, k) for k in keys}
        for k in ("vm_name", "nic_name", "ip_name"):
            setattr(self, k, names[k])
        try:
            yield
        finally:
            for k, v in kept.items():
                setattr(self, k, v)

    def wait(self, poller: Any, what: str) -> Any:
        """Wait for a long-running operation through the SDK's poller, saying so while it runs."""

        def look() -> tuple[bool, str]:
            if not poller.done():
                poller.wait(timeout=self.progress_seconds)
            return poller.done(), ""

        self.wait_until(what, look)
        return poller.result()

    def put_whole(self, operations: Any, group: str, name: str, resource: Any) -> None:
        """PUT a resource back whole, guarded by the etag it was read at (ARM answers 412 when
        another writer changed it since)."""
        self.wait(
            operations.begin_create_or_update(
                group, name, resource, headers={"If-Match": resource.etag}
            ),
            f"{type(resource).__name__} {name}",
        )

    def _connector_address(self) -> str:
        """The connector's private address: the next hop of every UDR of ours."""
        if not self.connector_ip:
            raise CloudError("the connector has no private address yet")
        return self.connector_ip

    def free_address(self, subnet: Any, prefer: str | None) -> str:
        """`prefer` (a connector's former address) when it is in the subnet and free again (its
        routes stay right), else the first free one Azure does not reserve."""
        prefix = ipaddress.IPv4Network(subnet.address_prefix)
        taken = {
            c.private_ip_address
            for n in self.net.network_interfaces.list_all()
            for c in n.ip_configurations or []
            if c.subnet is not None and c.subnet.id.lower() == subnet.id.lower()
        }
        if self.seen.front_ip:  # the pair's load balancer's frontend holds one too
            taken.add(self.seen.front_ip)
        if prefer and prefer not in taken and ipaddress.IPv4Address(prefer) in prefix:
            return prefer
        reserved = {str(prefix.network_address + i) for i in range(4)} | {
            str(prefix.broadcast_address)
        }
        for host in prefix.hosts():
            if str(host) not in taken and str(host) not in reserved:
                return str(host)
        raise CloudError(f"subnet {subnet.name} has no free address")

    def rid(self, kind: str, name: str) -> str:
        loc = self.location
        return (
            f"/subscriptions/{loc.subscription}/resourceGroups/{self.rg}/providers/"
            f"Microsoft.Network/{kind}/{name}"
        )


LEASE_TAG = "connector-provisioner-lease"


class VnetTagLease:
    """A network's lease on Azure: a tag on its VNet, written by a PUT of the VNet as it was
    read, guarded by the etag it was read at (ARM answers 412 to the second of two runs)."""

    def __init__(self, state: Any, vnet: str) -> None:
        self.state, self.vnet = state, vnet
        self.where = f"tag {LEASE_TAG} of VNet {vnet}"

    def read(self) -> tuple[str | None, Any]:
        found = self.state.net.virtual_networks.get(self.state.rg, self.vnet)
        return (found.tags or {}).get(LEASE_TAG), found

    def write(self, text: str | None, version: Any) -> bool:
        from azure.core.exceptions import HttpResponseError

        tags = {k: v for k, v in (version.tags or {}).items() if k != LEASE_TAG}
        if text is not None:
            tags[LEASE_TAG] = text
        version.tags = tags or None  # none left: as the VNet was before
        try:
            self.state.put_whole(self.state.net.virtual_networks, self.state.rg, self.vnet, version)
        except HttpResponseError as e:
            if e.status_code == 412:
                return False
            raise
        return True
