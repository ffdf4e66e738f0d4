"""Names, clients and helpers shared by the OCI provider's modules."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import CloudError
from ...limits import limits
from ...model import Network
from ..base import Members, Provider
from .cloud import ENDPOINT_VARIABLE, OciLocation

TAG = "connector-provisioner"  # freeform tag on what we make: the network's name
FILE_TAG = "connector-provisioner-file"  # the id of the topology file whose network it is
FINGERPRINT_TAG = "connector-provisioner-fingerprint"
PROFILE_TAG = "connector-provisioner-profile-sha256"
PROFILE_VARIABLE = "OCI_CONFIG_PROFILE"
UBUNTU = ("Canonical Ubuntu", "24.04")


def error_text(e: BaseException) -> str:
    import oci

    if isinstance(e, oci.exceptions.ServiceError):
        return f"{e.status} {e.code}: {e.message}"
    return f"{type(e).__name__}: {e}".split("\n")[0]


def _sandbox_signer() -> Any:
    from .watchdog import OciPrivateIp

    return OciPrivateIp.sandbox_signer()


RETRIED = (429, 500, 502, 503, 504)


class RetryAfter:
    """OCI's retry, honouring Retry-After: a throttle (429) or a 5xx is tried again after the
    seconds the service asks for, else after an exponential back-off; the SDK still adds its
    opc-retry-token to creates, so a retried create is not made twice."""

    def __init__(self, attempts: int, cap_seconds: float = 30.0) -> None:
        self.attempts = max(1, attempts)
        self.cap_seconds = cap_seconds

    def add_circuit_breaker_callback(self, callback: Any) -> None:
        self.circuit_breaker_callback = callback

    def make_retrying_call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import oci

        begun, deadline = time.monotonic(), limits().deadline
        for attempt in range(self.attempts):
            try:
                return func(*args, **kwargs)
            except oci.exceptions.RequestException as e:
                # no answer (a timeout, a connection refused or lost): one line naming where
                where = getattr(getattr(func, "__self__", None), "endpoint", None) or "OCI"
                raise CloudError(f"{where} did not answer: {type(e).__name__}") from None
            except oci.exceptions.ServiceError as e:
                out_of_time = time.monotonic() - begun >= deadline
                if e.status not in RETRIED or attempt == self.attempts - 1 or out_of_time:
                    raise
                asked = (e.headers or {}).get("retry-after") or (e.headers or {}).get("Retry-After")
                try:
                    delay = float(asked) if asked else min(2.0**attempt, self.cap_seconds)
                except ValueError:
                    delay = min(2.0**attempt, self.cap_seconds)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Clients:
    network: Any  # oci.core.VirtualNetworkClient
    compute: Any  # oci.core.ComputeClient
    identity: Any  # oci.identity.IdentityClient
    vaults: Any  # oci.vault.VaultsClient
    kms: Any  # oci.key_management.KmsVaultClient: is the vault there
    tenancy: str | None  # from the config or the signer, when they say


def make_clients(
    region: str, endpoint: str | None, config: dict[str, Any] | None, signer: Any, retries: int
) -> Clients:
    """Every client. Against `endpoint` (the sandbox): a no-op signer, no circuit breaker, every
    client there. Otherwise `~/.oci/config` (profile OCI_CONFIG_PROFILE, else DEFAULT), or an
    instance principal when OCI_CLI_AUTH=instance_principal, and OCI's own retry strategy."""
    import oci

    bounds = limits()
    kwargs: dict[str, Any] = {"retry_strategy": RetryAfter(retries), "timeout": bounds.pair}
    tenancy = None
    if endpoint:
        config = {"region": region}
        kwargs.update(
            signer=_sandbox_signer(),
            circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy(),
        )
    elif signer is not None:
        config = {"region": region, **(config or {})}
        kwargs["signer"] = signer
        tenancy = getattr(signer, "tenancy_id", None)
    elif os.environ.get("OCI_CLI_AUTH") == "instance_principal":
        signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
        config = {"region": region}
        kwargs["signer"] = signer
        tenancy = signer.tenancy_id
    else:
        config = {
            **oci.config.from_file(profile_name=os.environ.get(PROFILE_VARIABLE, "DEFAULT")),
            "region": region,
        }
        tenancy = config.get("tenancy")

    def client(cls: Any) -> Any:
        extra = {"service_endpoint": endpoint} if endpoint else {}
        return cls(config, **kwargs, **extra)

    return Clients(
        network=client(oci.core.VirtualNetworkClient),
        compute=client(oci.core.ComputeClient),
        identity=client(oci.identity.IdentityClient),
        vaults=client(oci.vault.VaultsClient),
        kms=client(oci.key_management.KmsVaultClient),
        tenancy=tenancy,
    )


def sandbox_endpoint() -> str | None:
    return os.environ.get(ENDPOINT_VARIABLE) or None


@dataclass
class OciSeen:
    """What observe learnt of the VCN that apply's handlers act on, and apply keeps current:
    made anew by each observe (its helpers fill the one they are handed) and read by the parts
    through `OciState.seen`, never through attributes of their own."""

    vcn: Any = None  # the VCN (Groups makes the connector's NSG in it)
    nsg_id: str | None = None  # the connector's own NSG (Groups; the launch names it)
    # our security rules: (nsg, source, ports) -> rule id (Groups adds and removes them)
    rule_ids: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # every NSG's rules, ingress and egress, ours or not: what its limit counts
    rule_counts: dict[str, int] = field(default_factory=dict)
    front_id: str | None = None  # a pair's floating private IP (Pair makes, moves, deletes it)
    # each member's watchdog's last word, by member: freeform tags of the floating private IP
    words: dict[int, str] = field(default_factory=dict)


class OciState(Members, Provider):
    """What the provider's parts share: the network, its clients, names, and what observe
    learnt. Set up by OciNetwork.__init__ and observe."""

    network: Network
    location: OciLocation
    api: Clients
    compartment: str
    progress: Callable[[str], None]
    wait_seconds: float
    progress_seconds: float
    poll_seconds: float
    tags: dict[str, str]
    instance_name: str
    nsg_name: str
    secret_name: str
    group_name: str
    policy_name: str
    seen: OciSeen  # what the last observe learnt (and apply since)
    # the current member's (Members.as_member), learnt by observe and apply
    instance_id: str | None
    vnic_id: str | None
    private_ip_id: str | None
    secret_id: str | None
    tenancy_id: str | None  # found by walking up the compartments (the sandbox's signer says none)

    def member_names(self, member: int) -> dict[str, Any]:
        """A pair's second connector has names of its own: cp-<network>-connector-2..."""
        name, end = self.network.name, "-2" if member else ""
        assert self.network.connector is not None
        return {
            "member": member,
            "instance_name": f"cp-{name}-connector{end}",
            "secret_name": f"cp-{name}-vpn-profile{end}",
            "group_name": (self.network.connector.dynamic_group if not member else None)
            or f"cp-{name}-connector{end}",
            "policy_name": f"cp-{name}-read-vpn-profile{end}",
            "instance_id": None,
            "vnic_id": None,
            "private_ip_id": None,
            "secret_id": None,
        }

    def wait_for(
        self, get: Callable[[], Any], states: tuple[str, ...], what: str, gone_ok: bool = False
    ) -> str:
        """Read a resource until its lifecycle state is one of `states` (or, with `gone_ok`, it
        is gone: "gone"), saying so while it takes; the state it reached."""
        import oci

        reached = ["gone"]

        def look() -> tuple[bool, str]:
            try:
                reached[0] = str(get().data.lifecycle_state)
            except oci.exceptions.ServiceError as e:
                if gone_ok and e.status == 404:
                    reached[0] = "gone"
                    return True, "gone"
                raise
            return reached[0] in states, reached[0]

        self.wait_until(what, look, pause=self.poll_seconds)
        return reached[0]

    def gone(self, get: Callable[[], Any], done: tuple[str, ...] = ()) -> bool:
        """OCI answers 404 NotAuthorizedOrNotFound both for what is gone and for what we may
        not touch: a delete's 404 counts as done only when a read says it is gone too."""
        import oci

        try:
            state = getattr(get().data, "lifecycle_state", None)
        except oci.exceptions.ServiceError as e:
            if e.status == 404:
                return True
            raise
        return state in done


LEASE_TAG = "connector-provisioner-lease"


class VcnTagLease:
    """A network's lease on OCI: a freeform tag on its VCN, written by UpdateVcn with the etag
    the VCN was read at (If-Match: 412 to the second of two runs)."""

    def __init__(self, network_client: Any, vcn: str) -> None:
        self.net, self.vcn = network_client, vcn
        self.where = f"freeform tag {LEASE_TAG} of VCN {vcn}"

    def read(self) -> tuple[str | None, Any]:
        answer = self.net.get_vcn(self.vcn)
        tags = answer.data.freeform_tags or {}
        return tags.get(LEASE_TAG), (answer.headers.get("etag"), dict(tags))

    def write(self, text: str | None, version: Any) -> bool:
        import oci

        etag, tags = version
        tags = {k: v for k, v in tags.items() if k != LEASE_TAG}
        if text is not None:
            tags[LEASE_TAG] = text
        try:
            self.net.update_vcn(
                self.vcn, oci.core.models.UpdateVcnDetails(freeform_tags=tags), if_match=etag
            )
        except oci.exceptions.ServiceError as e:
            if e.status == 412:
                return False
            raise
        return True
