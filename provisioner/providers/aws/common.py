"""Names and helpers shared by the AWS provider's modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ... import watchdog as _watchdog
from ...errors import CloudError
from ...model import Network
from ..base import Provider
from .cloud import AwsLocation

TAG = "connector-provisioner:network"
FINGERPRINT_TAG = "connector-provisioner:fingerprint"
MEMBER_TAG = "connector-provisioner:member"  # of a pair: 0 or 1
FILE_TAG = "connector-provisioner:file"  # the id of the topology file whose network it is
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
UBUNTU_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id"
)
ARCHES = {"x86_64": "amd64", "arm64": "arm64"}
POLICY_NAME = "read-vpn-profile"
READY_POLICY = "report-ready"  # the connector tags itself ready (READY_TAG), nothing else
READY_TAG = "connector-provisioner:ready"  # set by the VM once its tunnel is up
WATCH_TAG = _watchdog.WATCH_TAG  # a pair member's watchdog's last word, set by it (status reads)
PAIR_POLICY = "pair"  # a pair's: the watchdog's calls and the second profile (providers/aws/pair)
MARK = "connector-provisioner"  # how our rules' descriptions begin


_LOADER: list[Any] = []  # botocore's data loader, shared by every session of this process


def new_session(**kwargs: Any) -> Any:
    """A boto3 session (credentials resolved as boto3 does, per session) whose service models
    are parsed once per process: each new botocore session otherwise re-reads EC2's ~0.3 s of
    JSON, once per network and per command."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    if _LOADER:
        core.register_component("data_loader", _LOADER[0])
    else:
        _LOADER.append(core.get_component("data_loader"))
    return boto3.Session(botocore_session=core, **kwargs)


def assumed(base: Any, role: str, external_id: str | None, name: str, config: Any) -> Any:
    """A session whose calls are made as `role` (another account's), assumed with `base`'s own
    credentials and assumed again before they expire (botocore refreshes them when less than
    15 minutes are left)."""
    import botocore.credentials

    sts = base.client("sts", config=config)

    def fetch() -> dict[str, Any]:
        ask: dict[str, Any] = {
            "RoleArn": role,
            "RoleSessionName": f"connector-provisioner-{name}"[:64],
        }
        if external_id:
            ask["ExternalId"] = external_id
        got = sts.assume_role(**ask)["Credentials"]
        return {
            "access_key": got["AccessKeyId"],
            "secret_key": got["SecretAccessKey"],
            "token": got["SessionToken"],
            "expiry_time": got["Expiration"].isoformat(),
        }

    credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=fetch(), refresh_using=fetch, method="sts-assume-role"
    )
    session = new_session(region_name=config.region_name)
    # botocore takes a refreshable credential object only this way (as its own AssumeRole
    # provider does for profiles)
    session._session._credentials = credentials
    return session


def bound_calls(client: Any, deadline: float, progress: Callable[[str], None]) -> Any:
    """Each call of `client` with its retries ends by `deadline` seconds: a retry that would
    start later raises a CloudError naming the endpoint instead; a call retried after a timeout
    or a lost connection says so in a progress line (botocore alone retries silently, up to
    max_attempts x read timeout)."""
    import time

    def started(model: Any, context: dict[str, Any], **_: Any) -> None:
        context["provision-started"] = time.monotonic()
        context["operation"] = model.name

    def retrying(
        request_dict: dict[str, Any], attempts: int, caught_exception: Any = None, **_: Any
    ) -> None:
        if caught_exception is None:
            return
        begun = request_dict.get("context", {}).get("provision-started", time.monotonic())
        spent = time.monotonic() - begun
        where = client.meta.endpoint_url
        operation = request_dict.get("context", {}).get("operation") or "a call"
        if spent >= deadline:
            raise CloudError(
                f"{where} did not answer {operation} within {deadline:.0f} s ({attempts} "
                f"attempts; last: {type(caught_exception).__name__})"
            )
        progress(f"{where}: no answer to {operation} ({type(caught_exception).__name__}), "
                 f"trying again ({attempts} attempts, {spent:.0f} s)")  # fmt: skip

    client.meta.events.register("before-call", started)
    client.meta.events.register_first("needs-retry", retrying)
    return client


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def done_already(call: Callable[[], Any], *codes: str) -> bool:
    """`call()`, where an answer with one of `codes` means what it does is done already (an
    interrupted run made it, or it was gone): False then, True when the call did it."""
    try:
        call()
    except ClientError as e:
        if e.response["Error"]["Code"] not in codes:
            raise
        return False
    return True


# the codes AWS answers when the credentials themselves are wrong, expired or unknown
CREDENTIAL_CODES = frozenset({
    "SignatureDoesNotMatch", "InvalidClientTokenId", "UnrecognizedClientException",
    "AuthFailure", "ExpiredToken", "ExpiredTokenException", "InvalidAccessKeyId",
    "IncompleteSignature", "MissingAuthenticationToken",
})  # fmt: skip


def error_text(e: BaseException) -> str:
    """One line: a SignatureDoesNotMatch message goes on with the canonical request and the
    string to sign (the signing header's parts), never printed."""
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        code = str(err.get("Code", "Error"))
        message = str(err.get("Message", "")).strip().splitlines()
        first = message[0] if message else ""
        if code == "SignatureDoesNotMatch":
            first = "the request signature does not match: check AWS_SECRET_ACCESS_KEY"
        return f"{code}: {first[:300]}".strip()
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]


@dataclass
class AwsSeen:
    """What observe learnt of the network that apply's handlers act on, and apply keeps current:
    made anew by each observe (its helpers fill the one they are handed) and read by the parts
    through `AwsState.seen`, never through attributes of their own."""

    # the connector's own security group (Groups makes and deletes it; the launch, the app
    # groups' rules and the pair's health rule name it)
    group_id: str | None = None
    # each live connector's primary network interface, by instance (Instance, Pair)
    interfaces: dict[str, str | None] = field(default_factory=dict)
    # each role's inline policies (Identity deletes them with the role; Pair adds its own)
    role_policies: dict[str, set[str]] = field(default_factory=dict)
    # a pair's route tables: those the watchdogs may write, and those tagged so (Pair)
    ha_tables_wanted: set[str] = field(default_factory=set)
    ha_tables_tagged: set[str] = field(default_factory=set)
    # connectors launched by this apply: member -> (instance, its interface) (Instance, Pair)
    launched: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)


class AwsState(Provider):
    """What the provider's parts share: the network, its clients and the names and ids of
    what it owns. Set up by AwsNetwork.__init__ and observe."""

    network: Network
    location: AwsLocation
    ec2: Any
    ssm: Any
    iam: Any
    parameter: str
    role: str  # the connector's role and instance profile (of a pair: the member's)
    member: int  # of a pair: whose connector (and profile) the handlers act on
    group_name: str
    tags: list[dict[str, str]]
    progress: Callable[[str], None]
    poll_seconds: float
    wait_seconds: float
    iam_propagation_seconds: float
    seen: AwsSeen  # what the last observe learnt (and apply since)
    # the connector a change is about (Pair.as_member), else the first one observe found
    instance: str | None
    interface: str | None

    def parameter_of(self, member: int) -> str:
        """Each connector's own profile parameter (a pair's second: .../profile-2)."""
        first = f"/connector-provisioner/{self.location.vpc}/{self.network.name}/profile"
        return first if member == 0 else f"{first}-{member + 1}"

    def role_of(self, member: int) -> str:
        """Each connector's own role and instance profile, so it reads its own profile alone.
        IAM names are account-wide: the VPC keeps networks apart."""
        first = f"cp-{self.network.name}-{self.location.vpc}"
        return first if member == 0 else f"{first}-{member + 1}"

    def _group(self) -> str:
        """The connector's own security group (made by the security-group part)."""
        if not self.seen.group_id:
            raise CloudError(f"the connector's security group {self.group_name} does not exist")
        return self.seen.group_id


class ParameterLease:
    """A network's lease on AWS: an SSM parameter beside its profile's, made only if absent
    (PutParameter without Overwrite is atomic: one of two runs gets ParameterAlreadyExists).
    The parameter's version is what a removal is checked against; a stale lease is taken over
    by deleting it and making it again."""

    def __init__(self, ssm: Any, name: str) -> None:
        self.ssm, self.name = ssm, name
        self.where = f"SSM parameter {name}"

    def read(self) -> tuple[str | None, Any]:
        try:
            p = self.ssm.get_parameter(Name=self.name)["Parameter"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "ParameterNotFound":
                return None, None
            raise
        return str(p["Value"]), int(p["Version"])

    def write(self, text: str | None, version: Any) -> bool:
        if version is not None:  # a lease there: it goes first (removal, or takeover)
            _, current = self.read()
            if current != version:
                return False
            if not done_already(
                lambda: self.ssm.delete_parameter(Name=self.name), "ParameterNotFound"
            ):
                return False
        if text is None:
            return True
        return done_already(
            lambda: self.ssm.put_parameter(
                Name=self.name, Value=text, Type="String", Overwrite=False,
                Description="connector-provisioner: a run's lease on this network",
            ),
            "ParameterAlreadyExists",
        )  # fmt: skip
