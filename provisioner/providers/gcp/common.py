"""Names, clients and helpers shared by the GCP provider's modules."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from ...errors import CloudError
from ...limits import limits
from ...model import Change, Network
from ..base import Members, Provider
from .cloud import ENDPOINT_VARIABLE, GcpLocation

LABEL = "connector-provisioner-network"  # on the instance and the secret: whose they are
FILE_LABEL = "connector-provisioner-file"  # the topology file's id, as a label value takes it


def file_label(file_id: str) -> str:
    """A file id as a label value ([a-z0-9_-], at most 63)."""
    return re.sub(r"[^a-z0-9_-]", "-", file_id.lower())[:63]


FINGERPRINT_LABEL = "connector-provisioner-fingerprint"
PROFILE_ANNOTATION = "connector-provisioner/profile-sha256"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Canonical's Ubuntu 24.04 LTS image family, published in the ubuntu-os-cloud project: a
# connector is launched on its newest release, by name
UBUNTU_FAMILY = ("ubuntu-os-cloud", "ubuntu-2404-lts-amd64")  # (its project, the family)
ACCESSOR = "roles/secretmanager.secretAccessor"
WHOLE_NETWORK = "network/"  # + the network's name: the route "table" of untagged routes
RETRIED = (429, 500, 502, 503, 504)


def successor_name(name: str) -> str:
    """The other of a connector's two instance names: a connector made beside the one it
    replaces takes it (instance names are unique in a zone), the next one the first again."""
    return name.removesuffix("-r") if name.endswith("-r") else f"{name}-r"


def digest(text: str, n: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def dashed(destination: IPv4Network) -> str:
    return str(destination).replace(".", "-").replace("/", "-")


def fit(name: str, key: str) -> str:
    """A resource name of at most 63 characters: as it is when it fits, else cut, with a digest
    of the whole so that two long names stay apart."""
    if len(name) <= 63:
        return name
    return f"{name[:52].rstrip('-')}-{digest(key)}"


def short(url: str | None) -> str:
    return (url or "").rstrip("/").rsplit("/", 1)[-1]


def partial(url: str | None) -> str:
    """A compute URL from `projects/` on: how the API accepts and this provider compares them."""
    text = url or ""
    return text[text.index("projects/") :] if "projects/" in text else text


def error_text(e: BaseException) -> str:
    from google.api_core.exceptions import GoogleAPICallError

    if isinstance(e, GoogleAPICallError):
        reason = getattr(e, "reason", None) or next(
            (x.get("reason") for x in e.errors or [] if isinstance(x, dict)), None
        )
        return f"{e.code} {reason or type(e).__name__}: {e.message}"
    return f"{type(e).__name__}: {e}".split("\n")[0]


def status_of(e: Exception) -> int | None:
    code = getattr(e, "code", None)
    return int(code) if isinstance(code, int) else None


@dataclass
class Clients:
    routes: Any
    firewalls: Any
    instances: Any
    networks: Any
    subnetworks: Any
    routers: Any
    zone_operations: Any
    region_operations: Any
    global_operations: Any
    secrets: Any
    session: Any  # google-auth's AuthorizedSession, for IAM service accounts
    iam_url: str
    # a pair's internal load balancer (connector.ha), and the zones the pair is spread over
    health_checks: Any = None
    instance_groups: Any = None
    backend_services: Any = None
    forwarding_rules: Any = None
    zones: Any = None
    images: Any = None  # the public image family's newest release (launch, status, --roll)
    projects: Any = None  # the project's quotas (routes, firewall rules): counted at plan


def credentials_for(endpoint: str | None, credentials: Any) -> Any:
    """The sandbox's static token against the fake; else the caller's, else google.auth.default."""
    if endpoint:
        from google.oauth2.credentials import Credentials

        return Credentials(token="sandbox")  # never refreshed: reaches nothing but the fake
    if credentials is not None:
        return credentials
    import google.auth

    found, _ = google.auth.default(scopes=[SCOPE])
    return found


def make_clients(endpoint: str | None, credentials: Any) -> Clients:
    """Every client over REST. Against `endpoint` (the sandbox) they all go there, the
    operation pollers included; otherwise to Google's own hosts."""
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import compute_v1, secretmanager_v1

    creds = credentials_for(endpoint, credentials)
    options = {"api_endpoint": endpoint} if endpoint else None
    adapter = bounded_adapter()

    def client(cls: Any) -> Any:
        made = cls(credentials=creds, transport="rest", client_options=options)
        # the REST transport sends `timeout=None` (wait for ever) unless each call names one:
        # its session's adapter puts the toolkit's limits in their place
        for scheme in ("https://", "http://"):
            made.transport._session.mount(scheme, adapter)
        return made

    return Clients(
        routes=client(compute_v1.RoutesClient),
        firewalls=client(compute_v1.FirewallsClient),
        instances=client(compute_v1.InstancesClient),
        networks=client(compute_v1.NetworksClient),
        subnetworks=client(compute_v1.SubnetworksClient),
        routers=client(compute_v1.RoutersClient),
        zone_operations=client(compute_v1.ZoneOperationsClient),
        region_operations=client(compute_v1.RegionOperationsClient),
        global_operations=client(compute_v1.GlobalOperationsClient),
        secrets=client(secretmanager_v1.SecretManagerServiceClient),
        session=_bounded_session(AuthorizedSession(creds), adapter),
        iam_url=(endpoint or "https://iam.googleapis.com").rstrip("/") + "/v1",
        health_checks=client(compute_v1.RegionHealthChecksClient),
        instance_groups=client(compute_v1.InstanceGroupsClient),
        backend_services=client(compute_v1.RegionBackendServicesClient),
        forwarding_rules=client(compute_v1.ForwardingRulesClient),
        zones=client(compute_v1.ZonesClient),
        images=client(compute_v1.ImagesClient),
        projects=client(compute_v1.ProjectsClient),
    )


def bounded_adapter() -> Any:
    """A requests adapter that waits at most the toolkit's limits where a caller named none, and
    retries nothing itself (the SDK's and our retries decide)."""
    from requests.adapters import HTTPAdapter

    bounds = limits()

    class Bounded(HTTPAdapter):
        def send(  # type: ignore[override]
            self, request: Any, stream: bool = False, timeout: Any = None, **kwargs: Any
        ) -> Any:
            # the SDK's own time to its deadline (600 s) shortened to the toolkit's read limit
            if isinstance(timeout, tuple):
                connect, read = timeout
            else:
                connect, read = bounds.connect, timeout
            bounded = (
                min(connect or bounds.connect, bounds.connect),
                min(read or bounds.read, bounds.read),
            )
            return super().send(request, stream=stream, timeout=bounded, **kwargs)

    return Bounded()


def _bounded_session(session: Any, adapter: Any) -> Any:
    for scheme in ("https://", "http://"):
        session.mount(scheme, adapter)
    return session


def sandbox_endpoint() -> str | None:
    return os.environ.get(ENDPOINT_VARIABLE) or None


@dataclass
class GcpSeen:
    """What observe learnt of the network that apply's handlers act on, and apply keeps current:
    made anew by each observe (its helpers fill the one they are handed) and read by the parts
    through `GcpState.seen`, never through attributes of their own."""

    network_url: str  # the VPC network (firewalls, routes, the pair's group and rule name it)
    # our routes' names: (tag scope, destination) -> route name (routes are replaced by name)
    route_names: dict[tuple[str, IPv4Network], str] = field(default_factory=dict)
    front_ip: str | None = None  # a pair's load balancer address (Pair; routes name it)
    metadata: dict[int, Any] = field(default_factory=dict)  # each member's instance metadata


class GcpState(Members, Provider):
    """What the provider's parts share: the network, its clients, the names of what it owns and
    what observe learnt. Set up by GcpNetwork.__init__ and observe."""

    network: Network
    location: GcpLocation
    api: Clients
    project: str
    zone: str
    region: str
    progress: Callable[[str], None]
    wait_seconds: float
    progress_seconds: float
    retries: int
    priority: int
    instance_name: str
    tag: str  # the connector's own network tag
    account_email: str
    account_is_ours: bool
    secret_name: str
    ingress_name: str  # the connector's own firewall
    ilb_name: str  # a pair's load balancer
    seen: GcpSeen  # what the last observe learnt (and apply since)
    connector_url: str | None  # the current member's (Members.as_member), learnt by observe

    def route_hop(self, change: Change) -> dict[str, str]:
        """What a route change names as its next hop (Pair's: the front or a connector)."""
        raise NotImplementedError

    def member_names(self, member: int) -> dict[str, Any]:
        """A pair's second connector has names of its own (and a zone of its own: apply's)."""
        name, end = self.network.name, "-2" if member else ""
        assert self.network.connector is not None
        given = self.network.connector.service_account
        # an account id is 6 to 30 characters
        account = (
            f"cp-{name}-vpn" if len(name) <= 23 else f"cp-{name[:16].rstrip('-')}-{digest(name, 6)}"
        )
        if member:
            account = f"{account[:28].rstrip('-')}-2"
        return {
            "member": member,
            "instance_name": f"cp-{name}-connector{end}",
            "secret_name": f"cp-{name}-vpn-profile{end}",
            "account_email": given or f"{account}@{self.location.project}.iam.gserviceaccount.com",
            "zone": self.location.zone,  # the second's is set by observe
            "connector_url": None,
        }

    @property
    def connector_ref(self) -> str:
        """The connector as routes name it: zones/<zone>/instances/<name>."""
        return f"zones/{self.zone}/instances/{self.instance_name}"

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One SDK call, again after a throttle or a 5xx (Retry-After honoured, else backing
        off): Compute's methods carry no retry of their own."""
        from google.api_core.exceptions import GoogleAPICallError

        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except GoogleAPICallError as e:
                if status_of(e) not in RETRIED or attempt == self.retries:
                    raise
                delay = _retry_after(e) or min(2.0**attempt, 20.0)
                self.progress(f"{what}: {error_text(e)}; again in {delay:.0f}s")
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def wait(self, operation: Any, what: str) -> None:
        """Wait for a Compute operation (zonal, regional or global, as it says) through the
        SDK's own operation clients, which go where the provider's do; each look is Compute's
        own wait, which blocks until the operation is done or a while has passed."""
        op = [operation]

        def look() -> tuple[bool, str]:
            current = op[0]
            if str(getattr(current.status, "name", current.status)) == "DONE":
                return True, ""
            if current.zone:
                wait, where = self.api.zone_operations.wait, {"zone": short(current.zone)}
            elif current.region:
                wait, where = self.api.region_operations.wait, {"region": short(current.region)}
            else:
                wait, where = self.api.global_operations.wait, {}
            op[0] = self.call(what, wait, project=self.project, operation=current.name, **where)
            return str(getattr(op[0].status, "name", op[0].status)) == "DONE", ""

        self.wait_until(what, look)
        done = op[0]
        if done.error and done.error.errors:
            first = done.error.errors[0]
            raise CloudError(f"{what}: {first.code}: {first.message}")

    def _insert(
        self,
        what: str,
        insert: Callable[..., Any],
        matches: Callable[[str], bool],
        name: str,
        **request: Any,
    ) -> None:
        """Insert, treating 'already exists' as done when what is there is what we want."""
        from google.api_core.exceptions import Conflict

        try:
            op = self.call(what, insert, **request)
        except Conflict:
            if matches(name):
                return
            op = self.call(what, insert, **request)
        self.wait(op, what)

    def delete(self, what: str, delete: Callable[..., Any], **request: Any) -> None:
        """Delete and wait for it; what is gone already is as good."""
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            op = self.call(what, delete, **request)
            self.wait(op, f"{what} to be deleted")

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        from google.api_core.exceptions import GoogleAPICallError
        from google.auth.exceptions import GoogleAuthError
        from requests import RequestException

        return (GoogleAPICallError, GoogleAuthError, RequestException)

    def error_text(self, e: BaseException) -> str:
        return error_text(e)


def _retry_after(e: Exception) -> float | None:
    response = getattr(e, "response", None)
    value = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


LEASE_ANNOTATION = "connector-provisioner-lease"


class SecretLease:
    """A network's lease on GCP (whose VPC networks carry no labels): a Secret Manager secret
    `cp-<network>-lease` in the network's project, the holder in an annotation. Creating it is
    atomic (409 to the second of two runs); it is deleted with the etag it was read at (400
    FAILED_PRECONDITION when another run changed it since)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.secret_id = f"cp-{state.network.name}-lease"
        self.name = f"projects/{state.project}/secrets/{self.secret_id}"
        self.where = f"secret {self.name}"

    def read(self) -> tuple[str | None, Any]:
        from google.api_core.exceptions import NotFound

        try:
            found = self.state.call("lease", self.state.api.secrets.get_secret, name=self.name)
        except NotFound:
            return None, None
        return dict(found.annotations).get(LEASE_ANNOTATION, ""), found.etag

    def write(self, text: str | None, version: Any) -> bool:
        from google.api_core.exceptions import Conflict, FailedPrecondition, NotFound

        secrets = self.state.api.secrets
        if version is not None:
            try:
                self.state.call(
                    "lease", secrets.delete_secret, request={"name": self.name, "etag": version}
                )
            except FailedPrecondition:
                return False
            except NotFound:
                pass
        if text is None:
            return True
        secret = {
            "replication": {"automatic": {}},
            "labels": {LABEL: self.state.network.name},
            "annotations": {LEASE_ANNOTATION: text},
        }
        request = {"parent": f"projects/{self.state.project}", "secret_id": self.secret_id,
                   "secret": secret}  # fmt: skip
        try:
            self.state.call("lease", secrets.create_secret, request=request)
        except Conflict:
            return False
        return True
