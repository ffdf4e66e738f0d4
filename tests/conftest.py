"""Shared test fixtures: a moto AWS seeded with the seed document's world, driven by the real
boto3; a recorder of every API call (botocore's before-call event); fault injection through
botocore's before-send event; and snapshots of the account to compare."""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, ClassVar

import botocore.handlers
import pytest
from botocore.awsrequest import AWSResponse

from provisioner import Clouds, Deployment, load_topology
from provisioner.model import DesiredConnector
from provisioner.providers.aws.world import (
    fake_session,
    seed_world,
    serialize_moto,
    tag_launched_interfaces,
)
from provisioner.sandbox import SandboxWorld

READ_PREFIXES = ("Describe", "Get", "List")
# the sandbox publishes its own Ubuntu images; moto's catalogue of 14,000 costs 0.5 s a world
os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
# no test may reach a real cloud or a credential chain (Azure's would probe the instance
# metadata address): Azure goes to a closed port on loopback unless a test's fake says where
os.environ["PROVISION_AZURE_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["PROVISION_GCP_ENDPOINT"] = "http://127.0.0.1:9"  # GCP's likewise
os.environ["PROVISION_OCI_ENDPOINT"] = "http://127.0.0.1:9"  # and OCI's
serialize_moto()  # moto's backends are not safe for requests from several threads at once
tag_launched_interfaces()  # as EC2 does: RunInstances' network-interface tags


def _botocore_once() -> None:
    """What botocore and moto make anew for every client or key, made once per test process.
    botocore builds a client's class and its service model anew for every client (EC2: ~700
    methods with lazy docstrings, and every operation's shapes resolved again: tens of ms a
    client), and every Deployment makes three clients per AWS network; moto makes a new RSA key
    for every KMS key (SSM's default key, once per account and region after each reset). The
    class depends only on the service model and the class-creation hooks, botocore's and
    boto3's own for every session here; models are read-only once loaded. Clients stay new,
    each with its own copy of the session's events, so faults injected into a session reach
    them."""
    from botocore.client import ClientCreator
    from moto.kms import models as kms_models

    lock = threading.Lock()

    def once(original: Callable[..., Any], key: Callable[..., Any]) -> Callable[..., Any]:
        made: dict[Any, Any] = {}

        def cached(*args: Any) -> Any:
            k = key(*args)
            with lock:
                if k not in made:
                    made[k] = original(*args)
                return made[k]

        return cached

    ClientCreator._create_client_class = once(  # type: ignore[method-assign]
        ClientCreator._create_client_class, lambda _, name, model: (name, model.api_version)
    )
    ClientCreator._load_service_model = once(  # type: ignore[method-assign]
        ClientCreator._load_service_model, lambda _, name, version=None: (name, version)
    )
    kms_models.generate_private_key = once(  # type: ignore[attr-defined]
        kms_models.generate_private_key, lambda spec: spec
    )


_botocore_once()
gc.freeze()  # botocore's and moto's models, loaded above, live as long as the process
gc.set_threshold(50_000, 20, 100)  # as `provision` runs (cli.run), whichever test came first
FIGURES: dict[str, str] = {}  # measured by tests, printed at the end of the run


SUITE_STARTED: list[float] = []


# each test's last measured time (setup, call and teardown), by node id: what `--quick-under`
# reads (scripts/test.sh --quick), written by every run that is not filtered by it
DURATIONS = Path(__file__).resolve().parent.parent / ".test-durations.json"
MEASURED: dict[str, float] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick-under",
        type=float,
        default=None,
        metavar="SECONDS",
        help="deselect the tests that took SECONDS or more when last measured here "
        "(.test-durations.json, written by every other run; a test not measured runs)",
    )


def _quick(config: pytest.Config, items: list[pytest.Item]) -> None:
    limit = config.getoption("--quick-under")
    if limit is None or not DURATIONS.exists():
        return
    took = json.loads(DURATIONS.read_text())
    slow = [item for item in items if took.get(item.nodeid, 0.0) >= limit]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if took.get(item.nodeid, 0.0) < limit]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest first: the tests marked `long` (sandbox serve's module), the lab's failover
    pairs (each a group, mostly waiting), each cloud's group, the lab's other modules, the
    rest in their order: on a few workers a long one that starts last ends the run alone.
    xdist hands the groups out in this order with `--no-loadscope-reorder` (scripts/test.sh);
    without it, the groups with the most tests first."""

    def rank_of(item: pytest.Item) -> int:
        if "long" in item.keywords:  # the longest chains of CPU (sandbox serve's processes)
            return 0
        if "lab" in item.keywords:  # the failover pairs are the lab's longest, and mostly wait
            return 1 if "failover" in item.nodeid else 3
        return 2 if item.get_closest_marker("xdist_group") else 4  # each cloud's group

    rank = {id(item): rank_of(item) for item in items}
    items.sort(key=lambda item: rank[id(item)])
    _quick(config, items)


def pytest_sessionstart(session: pytest.Session) -> None:
    SUITE_STARTED.append(time.monotonic())


def pytest_sessionfinish(session: pytest.Session) -> None:
    # an xdist worker hands its figures (the lab's, measured where it ran) to the controller
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["figures"] = json.dumps(FIGURES)
    elif MEASURED and session.config.getoption("--quick-under") is None:
        known = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
        DURATIONS.write_text(json.dumps({**known, **MEASURED}, indent=0, sort_keys=True))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    FIGURES.update(json.loads(getattr(node, "workeroutput", {}).get("figures", "{}")))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"figure: {name}: {value}")
    if SUITE_STARTED:
        workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT") or getattr(
            terminalreporter.config.option, "numprocesses", None
        )
        wall = time.monotonic() - SUITE_STARTED[0]
        terminalreporter.write_line(
            f"figure: suite wall time: {wall:.1f}s ({workers or 1} worker(s))"
        )


@dataclass
class CallLog:
    """Every API call any boto3 client made (once per call, not per retry attempt)."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    regions: list[str] = field(default_factory=list)  # of each call, in the same order

    def record(self, model: Any = None, context: Any = None, **_: Any) -> None:
        self.calls.append((model.service_model.service_name, model.name))
        self.regions.append((context or {}).get("client_region", ""))

    def in_region(self, region: str) -> list[str]:
        return [op for (_, op), r in zip(self.calls, self.regions, strict=True) if r == region]

    def record_attempt(self, event_name: str = "", **_: Any) -> None:
        self.attempts[event_name.split(".")[-1]] += 1

    @property
    def mutating(self) -> list[str]:
        return [op for _, op in self.calls if not op.startswith(READ_PREFIXES)]

    @property
    def reads(self) -> list[str]:
        return [op for _, op in self.calls if op.startswith(READ_PREFIXES)]

    def clear(self) -> None:
        self.calls.clear()
        self.attempts.clear()
        self.regions.clear()


@pytest.fixture
def calls() -> Iterator[CallLog]:
    """Records the calls of every boto3 client, whatever session made it (the CLI's too)."""
    log = CallLog()
    entries = [("before-call", log.record), ("before-send", log.record_attempt)]
    botocore.handlers.BUILTIN_HANDLERS.extend(entries)
    yield log
    for e in entries:
        botocore.handlers.BUILTIN_HANDLERS.remove(e)


@contextlib.contextmanager
def moto_world(directory: Path) -> Iterator[tuple[Any, SandboxWorld]]:
    """moto with the seed's HQ (us-east-1) and Branch (us-west-2) VPCs, no real credential."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as env:
        for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
            env.delenv(var, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", str(directory / "no-aws-config"))
        with mock_aws():
            session = fake_session()
            yield session, seed_world(session, directory)


@pytest.fixture
def aws(tmp_path: Path, calls: CallLog) -> Iterator[tuple[Any, SandboxWorld]]:
    """A fresh moto world for this test. The call log starts empty after the seeding."""
    with moto_world(tmp_path) as (session, world):
        calls.clear()
        yield session, world


@pytest.fixture(scope="module")
def unchanged_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, SandboxWorld]]:
    """One moto world for a whole module whose tests change nothing in it (bad input: they
    assert that no call is made at all)."""
    with moto_world(tmp_path_factory.mktemp("world")) as found:
        yield found


@pytest.fixture
def world(aws: tuple[Any, SandboxWorld]) -> SandboxWorld:
    return aws[1]


@pytest.fixture
def session(aws: tuple[Any, SandboxWorld]) -> Any:
    return aws[0]


@pytest.fixture
def clouds(session: Any) -> Clouds:
    return Clouds(options={"aws": {"session": session, "poll_seconds": 0.0}})


def deployment(
    world: SandboxWorld,
    clouds: Clouds,
    *,
    partner: bool = False,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Deployment:
    """A Deployment of the seed's topology, optionally edited first."""
    doc = world.topology(partner=partner)
    if edit:
        edit(doc)
    path = world.directory / "topology.yaml"
    path.write_text(json.dumps(doc))
    return Deployment(load_topology(path), clouds)


def desired_connector(**overrides: Any) -> DesiredConnector:
    """A connector as the planner hands it to the bootstrap; defaults: HQ with NAT on."""
    settings: dict[str, Any] = {
        "network": "hq",
        "subnet": "subnet-1",
        "size": "t3.small",
        "image": None,
        "profile": Path("/nonexistent"),
        "nat": True,
        "nat_preserve_source": True,
        "local_subnets": (IPv4Network("10.0.0.0/18"),),
        "lan_interface": None,
        "fingerprint": "-",
    }
    settings.update(overrides)
    return DesiredConnector(**settings)


# --- fault injection through botocore's own hook -------------------------------------------


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def error_response(service: str, status: int, code: str, message: str) -> AWSResponse:
    """An error as the service's wire protocol says it (EC2 XML, IAM query XML, SSM JSON)."""
    if service == "ssm":
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "fault"}
    elif service == "iam":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    else:
        body = (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
            f"</Error></Errors><RequestID>fault</RequestID></Response>"
        ).encode()
        headers = {"Content-Type": "text/xml"}
    return AWSResponse("https://fault.invalid/", status, headers, _Raw(body))


FORBIDDEN = {
    "ec2": (403, "UnauthorizedOperation", "You are not authorized to perform this operation."),
    "iam": (403, "AccessDenied", "User is not authorized to perform this action"),
    "ssm": (400, "AccessDeniedException", "User is not authorized to perform this action"),
}


_FAULT = threading.local()  # set while one attempt, on this thread, is answered by a fault


def _moto_skips_faulted_attempts() -> None:
    """botocore's before-send runs every handler and takes the first response, so moto would
    still carry out a request we answer with a fault. moto's handler is told, per thread, to
    stand aside for that one attempt; nothing else changes, so a request on another thread
    at the same moment is still answered by moto (and never reaches the network)."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    if getattr(original, "faults_aware", False):
        return

    def call(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        if getattr(_FAULT, "active", False):
            return None
        return original(self, event_name, request, **kwargs)

    call.faults_aware = True  # type: ignore[attr-defined]
    BotocoreStubber.__call__ = call  # type: ignore[method-assign]


def inject(
    session: Any,
    service: str,
    operation: str,
    response: Callable[[], AWSResponse],
    times: int = 1,
    after: int = 0,
) -> list[int]:
    """Let `after` attempts of service.operation through, then answer the next `times` with
    `response()` (not applied: moto stands aside for those). Returns a one-element list
    counting the faults served. Safe with calls on several threads."""
    _moto_skips_faulted_attempts()
    served = [0]
    seen = [0]
    lock = threading.Lock()

    def handler(**_: Any) -> AWSResponse | None:
        with lock:
            seen[0] += 1
            fault = seen[0] > after and served[0] < times
            if fault:
                served[0] += 1
        if fault:
            _FAULT.active = True
            return response()
        return None

    def restore(**_: Any) -> None:
        _FAULT.active = False

    session.events.register_first(f"before-send.{service}.{operation}", handler)
    session.events.register_last("before-send", restore, unique_id="fault-restore")
    return served


def every_session_faults(event: str, response: Callable[[], AWSResponse]) -> list[Any]:
    """botocore's built-in handlers plus a fault answering every `event` (e.g.
    'before-send.ec2.RunInstances'): patch them in to reach sessions the code makes itself."""
    _moto_skips_faulted_attempts()

    def fault(**_: Any) -> AWSResponse:
        _FAULT.active = True
        return response()

    def restore(**_: Any) -> None:
        _FAULT.active = False

    return [(event, fault), *botocore.handlers.BUILTIN_HANDLERS, ("before-send", restore)]


# --- snapshots -------------------------------------------------------------------------------


def snapshot(session: Any, regions: tuple[str, ...] = ("us-east-1", "us-west-2")) -> dict[str, Any]:
    """What a user would compare before apply and after destroy."""
    out: dict[str, Any] = {}
    for region in regions:
        ec2 = session.client("ec2", region_name=region)
        ssm = session.client("ssm", region_name=region)
        instances = sorted(
            i["InstanceId"]
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
            if i["State"]["Name"] != "terminated"
        )
        enis = sorted(
            n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces()["NetworkInterfaces"]
        )
        groups = sorted(
            json.dumps(
                {
                    "id": g["GroupId"],
                    "name": g["GroupName"],
                    "in": sorted(json.dumps(p, sort_keys=True) for p in g.get("IpPermissions", [])),
                    "out": sorted(
                        json.dumps(p, sort_keys=True) for p in g.get("IpPermissionsEgress", [])
                    ),
                },
                sort_keys=True,
            )
            for g in ec2.describe_security_groups()["SecurityGroups"]
        )
        tables = sorted(
            json.dumps(
                {
                    "id": t["RouteTableId"],
                    "routes": sorted(json.dumps(r, sort_keys=True) for r in t["Routes"]),
                },
                sort_keys=True,
            )
            for t in ec2.describe_route_tables()["RouteTables"]
        )
        volumes = sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"])
        params = sorted(p["Name"] for p in ssm.describe_parameters()["Parameters"])
        out[region] = {
            "instances": instances,
            "enis": enis,
            "security_groups": groups,
            "route_tables": tables,
            "volumes": volumes,
            "parameters": params,
        }
    iam = session.client("iam")
    out["iam"] = {
        "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
        "instance_profiles": sorted(
            p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]
        ),
    }
    return out


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The fake CloudConnexa API, and the environment that points the CLI at it."""
    from provisioner.cloudconnexa.fake import CloudConnexa
    from provisioner.sandbox import service_exports

    with CloudConnexa(online_with_profile=True).serve() as server:
        for key, value in service_exports(server.url).items():
            monkeypatch.setenv(key, value)
        yield server


# --- the namespace lab -----------------------------------------------------------------------


def lab_marks(group: str | None) -> list[Any]:
    """A lab test module's marks: `pytestmark = lab_marks("lab-<module>")`. Each group runs on
    one xdist worker, and each worker that runs lab tests builds its own world of namespaces
    (~2 s; namespaces carry the worker's pid, so worlds side by side never meet): the lab's
    modules, and each cloud's failover pair, wait on their packets side by side. `None`: no
    group (the module groups its tests itself)."""
    from lab.netns import lab_available

    why = lab_available()
    skip = pytest.mark.skipif(why is not None, reason=str(why))
    marks = [pytest.mark.lab, pytest.mark.slow, skip]
    return marks + ([pytest.mark.xdist_group(group)] if group else [])


@pytest.fixture(scope="session")
def seed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The seed's world in network namespaces (tests/lab), built once for every lab test,
    with Bob connected; removed at the end, also on failure or interrupt."""
    from lab.netns import remove_stale
    from lab.world import SeedWorld

    remove_stale()
    started = time.monotonic()
    world = SeedWorld(tmp_path_factory.mktemp("lab"))
    try:
        world.connect_bob()
        LAB_SECONDS["build"] = time.monotonic() - started
        yield world
    finally:
        started = time.monotonic()
        world.close()
        LAB_SECONDS["teardown"] = time.monotonic() - started
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        FIGURES["lab wall time" + (f" ({worker})" if worker else "")] = (
            f"{sum(LAB_SECONDS.values()):.1f}s (build {LAB_SECONDS['build']:.1f}s, tests "
            f"{LAB_SECONDS['tests']:.1f}s, teardown {LAB_SECONDS['teardown']:.1f}s)"
        )


LAB_SECONDS: dict[str, float] = {"build": 0.0, "tests": 0.0, "teardown": 0.0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    MEASURED[report.nodeid] = MEASURED.get(report.nodeid, 0.0) + report.duration
    if "lab" in report.keywords:
        LAB_SECONDS["tests"] += report.duration  # setup, call and teardown of every lab test


# --- Azure: the fake ARM on 127.0.0.1, driven by the real azure-mgmt SDK -------------------


@dataclass
class FakeCloudWorld:
    """One of our fakes on 127.0.0.1 with two seeded networks (hq, spoke) of its cloud, and
    the topologies, deployments and clients the tests drive it with."""

    url: str
    hq: Any  # the seeded networks: providers.<cloud>.world's Sandbox...
    spoke: Any
    directory: Path

    cloud: ClassVar[str] = ""
    profile_text: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    network_keys: ClassVar[frozenset[str]] = frozenset(
        {"route_tables", "route_priority", "app_security_groups", "subnets"}
    )

    def entry(self, seeded: Any, profile: str, **connector: Any) -> dict[str, Any]:
        return dict(seeded.network_entry(profile, **connector))

    def topology(self, partner: bool = True, **hq: Any) -> dict[str, Any]:
        """hq and spoke (and the external partner); `hq` keys go into hq's connector, or into
        hq itself when they are network keys (route_tables, route_priority...)."""
        for name in ("hq", "spoke"):
            profile = self.directory / f"{name}.ovpn"
            if not profile.exists():
                profile.write_text(self.profile_text.format(name=name))
        connector = {k: v for k, v in hq.items() if k not in self.network_keys}
        entry = self.entry(self.hq, "hq.ovpn", **connector)
        entry.update({k: v for k, v in hq.items() if k in self.network_keys})
        networks: dict[str, Any] = {"hq": entry, "spoke": self.entry(self.spoke, "spoke.ovpn")}
        if partner:
            networks["partner"] = {"cloud": "external", "subnets": ["172.31.0.0/16"]}
        return {"version": 1, "networks": networks}

    def write(self, doc: dict[str, Any], name: str = "") -> Path:
        path = self.directory / (name or f"{self.cloud}.yaml")
        path.write_text(json.dumps(doc))
        return path

    def clouds(self, **kw: Any) -> Clouds:
        options = {"endpoint": self.url, "progress_seconds": 5.0, **self.options}
        return Clouds(options={self.cloud: options}, **kw)

    def deployment(self, doc: dict[str, Any] | None = None) -> Deployment:
        return Deployment(load_topology(self.write(doc or self.topology())), self.clouds())


@dataclass
class AzureWorld(FakeCloudWorld):
    arm: Any = None  # provisioner.providers.azure.fake.Arm

    cloud = "azure"

    def entry(self, seeded: Any, profile: str, **connector: Any) -> dict[str, Any]:
        return dict(seeded.network_entry(profile, **connector))

    def snapshot(self) -> dict[str, Any]:
        """Every resource as GET shows it, less what changes on every write (etag)."""
        with self.arm.lock:
            return {k: _no_etags(self.arm._view(r)) for k, r in self.arm.state.resources.items()}

    def mutating(self) -> list[str]:
        return [f"{c.method} {c.kind}" for c in self.arm.mutating_calls()]


def _no_etags(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_etags(v) for k, v in value.items() if k != "etag"}
    if isinstance(value, list):
        return [_no_etags(v) for v in value]
    return value


AZURE_PROFILE = (
    "client\ndev tun\nremote sandbox.vpn.invalid 1194\n"
    "<key>\nAZURE-SANDBOX-PRIVATE-KEY-{name}-do-not-print\n</key>\n"
)
AzureWorld.profile_text = AZURE_PROFILE


@dataclass
class Seeded:
    """A fake seeded once per test process, on its own server, and its state just after: each
    test gets it back as it was (`restore`), without the seeding's SDK calls again."""

    fake: Any
    url: str
    hq: Any
    spoke: Any
    saved: dict[str, Any]

    def fresh(self) -> Any:
        self.fake.restore(self.saved)
        return self.fake


@contextlib.contextmanager
def seeded(fake: Any, seed: Callable[[str], tuple[Any, Any]]) -> Iterator[Seeded]:
    with fake.serve() as server:
        hq, spoke = seed(server.url)
        fake.calls.clear()
        # the SDKs' modules and models are imported now and live to the end: the collector
        # need not walk them again at every collection
        gc.freeze()
        yield Seeded(fake, server.url, hq, spoke, fake.checkpoint())


@pytest.fixture(scope="session")
def _seeded_arm() -> Iterator[Seeded]:
    from provisioner.providers.azure.fake import Arm
    from provisioner.providers.azure.world import seed_vnet

    arm = Arm()
    with seeded(
        arm,
        lambda url: (
            seed_vnet(arm, url, "hq", "10.1.0.0/16"),
            seed_vnet(arm, url, "spoke", "10.2.0.0/16", region="northeurope"),
        ),
    ) as found:
        yield found


@pytest.fixture
def azure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _seeded_arm: Seeded
) -> Iterator[AzureWorld]:
    """A fake ARM with two seeded VNets: hq (10.1.0.0/16, westeurope) and spoke (10.2.0.0/16,
    northeurope), each with a connector subnet, an app subnet behind the admin's route table
    and NSG, and a data subnet. The call log starts empty after the seeding."""
    for var in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    s = _seeded_arm
    monkeypatch.setenv("PROVISION_AZURE_ENDPOINT", s.url)  # the CLI's clients too
    yield AzureWorld(url=s.url, hq=s.hq, spoke=s.spoke, directory=tmp_path, arm=s.fresh())


# --- GCP: the fake Compute / Secret Manager / IAM on 127.0.0.1, driven by the real SDKs ------

GCP_PROFILE = (
    "client\ndev tun\nremote sandbox.vpn.invalid 1194\n"
    "<key>\nGCP-SANDBOX-PRIVATE-KEY-{name}-do-not-print\n</key>\n"
)


@dataclass
class GcpWorld(FakeCloudWorld):
    gce: Any = None  # provisioner.providers.gcp.fake.Gce

    cloud = "gcp"
    profile_text = GCP_PROFILE

    def snapshot(self) -> dict[str, Any]:
        return dict(self.gce.snapshot())

    def mutating(self) -> list[str]:
        return [f"{c.method} {c.api}.{c.kind}.{c.verb}" for c in self.gce.mutating_calls()]

    def compute(self) -> Any:
        from provisioner.providers.gcp.world import compute

        return compute(self.url)


@pytest.fixture(scope="session")
def _seeded_gce() -> Iterator[Seeded]:
    from provisioner.providers.gcp.fake import Gce
    from provisioner.providers.gcp.world import seed_network

    gce = Gce()
    with seeded(
        gce,
        lambda url: (
            seed_network(gce, url, "hq", "10.4.0.0/16"),
            seed_network(gce, url, "spoke", "10.5.0.0/16", zone="us-central1-a", cloud_nat=True),
        ),
    ) as found:
        yield found


@pytest.fixture
def gcp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _seeded_gce: Seeded) -> Iterator[GcpWorld]:
    """A fake Google Cloud with two seeded VPC networks in one project: hq (10.4.0.0/16,
    europe-west1-b, reaching the internet through the default internet gateway) and spoke
    (10.5.0.0/16, us-central1-a, behind Cloud NAT). Each has a connector subnetwork, an app
    subnetwork with an instance tagged `<name>-app`, the admin's HTTPS rule for that tag and an
    admin route. The call log starts empty after the seeding; the fake's own faults fail the
    test."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    s = _seeded_gce
    monkeypatch.setenv("PROVISION_GCP_ENDPOINT", s.url)  # the CLI's clients too
    gce = s.fresh()
    yield GcpWorld(url=s.url, hq=s.hq, spoke=s.spoke, directory=tmp_path, gce=gce)
    assert gce.errors == []


def edit_network(
    doc: dict[str, Any], changes: dict[str, Any], network: str = "hq"
) -> dict[str, Any]:
    """A copy of a topology with `changes` made to one network: `key` for the network's own
    keys, `connector.key` for its connector's; None deletes the key."""
    doc = copy.deepcopy(doc)
    entry = doc["networks"][network]
    for key, value in changes.items():
        node, leaf = (entry["connector"], key.split(".")[1]) if "." in key else (entry, key)
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return doc


# --- OCI: the fake Core / Identity / Vault on 127.0.0.1, driven by the real oci SDK ---------

OCI_PROFILE = (
    "client\ndev tun\nremote sandbox.vpn.invalid 1194\n"
    "<key>\nOCI-SANDBOX-PRIVATE-KEY-{name}-do-not-print\n</key>\n"
)


@dataclass
class OciWorld(FakeCloudWorld):
    fake: Any = None  # provisioner.providers.oci.fake.Oci

    cloud = "oci"
    profile_text = OCI_PROFILE
    options = {"poll_seconds": 0.05, "wait_seconds": 60.0}

    def snapshot(self) -> dict[str, Any]:
        return dict(self.fake.snapshot())

    def mutating(self) -> list[str]:
        return [f"{c.method} {c.kind}.{c.verb}" for c in self.fake.mutating_calls()]

    def api(self) -> Any:
        from provisioner.providers.oci.world import clients

        return clients(self.url, self.hq.region)


@pytest.fixture(scope="session")
def _seeded_oci() -> Iterator[Seeded]:
    from provisioner.providers.oci.fake import Oci
    from provisioner.providers.oci.world import seed_vcn

    fake = Oci()
    with seeded(
        fake,
        lambda url: (
            seed_vcn(fake, url, "hq", "10.6.0.0/16"),
            seed_vcn(fake, url, "spoke", "10.7.0.0/16", nat=True),
        ),
    ) as found:
        yield found


@pytest.fixture
def oci_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _seeded_oci: Seeded
) -> Iterator[OciWorld]:
    """A fake OCI region with two seeded VCNs: hq (10.6.0.0/16, its connector subnet behind an
    internet gateway) and spoke (10.7.0.0/16, behind a NAT gateway). Each has an app subnet
    behind the admin's route table, the admin's app NSG, and a vault with a key. The call log
    starts empty after the seeding; the fake's own faults fail the test."""
    s = _seeded_oci
    monkeypatch.setenv("PROVISION_OCI_ENDPOINT", s.url)  # the CLI's clients too
    fake = s.fresh()
    yield OciWorld(url=s.url, hq=s.hq, spoke=s.spoke, directory=tmp_path, fake=fake)
    assert fake.errors == []


def apply_survives(
    world: FakeCloudWorld,
    inject: Callable[[], Any],
    *expected: str,
    doc: dict[str, Any] | None = None,
) -> None:
    """The fault `inject` sets up stops apply (of `doc`, else the world's topology) with a
    message naming what was done and not (and `expected`); the next apply finishes, and destroy
    leaves the fake as it was."""
    from provisioner import CloudError

    before = world.snapshot()  # type: ignore[attr-defined]
    fault = inject()
    with pytest.raises(CloudError) as failed:
        world.deployment(doc).apply()
    assert fault.served == 1
    message = str(failed.value)
    assert all(part in message for part in expected) and "not done (" in message, message
    assert "Traceback" not in message
    world.deployment(doc).apply()
    assert all(s.healthy for s in world.deployment(doc).status())
    assert world.deployment(doc).plan().empty
    world.deployment(doc).destroy()
    assert world.snapshot() == before  # type: ignore[attr-defined]


def destroy_survives(world: FakeCloudWorld, inject: Callable[[], Any]) -> None:
    """After apply, the fault `inject` sets up stops destroy; the next destroy finishes and
    leaves the fake as it was before apply."""
    from provisioner import CloudError

    before = world.snapshot()  # type: ignore[attr-defined]
    world.deployment().apply()
    fault = inject()
    with pytest.raises(CloudError) as failed:
        world.deployment().destroy()
    assert fault.served == 1 and "not done (" in str(failed.value)
    world.deployment().destroy()
    assert world.snapshot() == before  # type: ignore[attr-defined]


class WriteWatch:
    """Put in place of a fake's lock: after every write the fake serves, `leads()` (run under
    the fake's own lock, reading its state directly) says where a network's routes lead, as a
    set of "ok" and "NOWHERE"; `nowhere` lists the writes after which any led nowhere."""

    def __init__(self, fake: Any, leads: Callable[[], set[str]]) -> None:
        self.fake, self.inner, self.leads = fake, fake.lock, leads
        self.depth, self.count = 0, len(fake.calls)
        self.seen: list[tuple[str, set[str]]] = []

    def __enter__(self) -> WriteWatch:
        self.inner.acquire()
        self.depth += 1
        return self

    def __exit__(self, *_: object) -> None:
        from provisioner.fakeserver import WRITE_METHODS

        try:
            self.depth -= 1
            calls = self.fake.calls
            if self.depth == 0 and len(calls) > self.count:
                self.count = len(calls)
                if calls[-1].method in WRITE_METHODS:
                    self.seen.append((f"{calls[-1].method} {calls[-1].kind}", self.leads()))
        finally:
            self.inner.release()

    def acquire(self, *a: Any, **k: Any) -> bool:
        return bool(self.inner.acquire(*a, **k))

    def release(self) -> None:
        self.inner.release()

    @property
    def nowhere(self) -> list[str]:
        return [op for op, leads in self.seen if leads != {"ok"}]

    @contextlib.contextmanager
    def installed(self) -> Iterator[WriteWatch]:
        self.fake.lock = self
        try:
            yield self
        finally:
            self.fake.lock = self.inner


def written(text: str, path: str) -> str:
    """What a cloud-init user-data writes at `path` (b64 or gz+b64)."""
    import base64
    import gzip
    import re

    found = re.search(rf"path: {path}\n.*\n    encoding: (\S+)\n    content: (\S+)", text)
    assert found, text
    raw = base64.b64decode(found.group(2))
    return (gzip.decompress(raw) if found.group(1) == "gz+b64" else raw).decode()


@contextlib.contextmanager
def peer_watchdogs(
    cloud: str, ups: dict[str, bool], addresses: dict[str, str], port: int
) -> Iterator[list[str]]:
    """Two watchdogs of a pair that agrees among itself (watchdog.Peers), on the loopback
    `addresses` (the first name sorted is the first connector), their tunnels as `ups` says;
    yields what they said."""
    import threading

    from provisioner.watchdog import Peers, Settings, run

    said: list[str] = []
    stops, threads = [], []
    names = sorted(addresses)
    for i, name in enumerate(names):
        settings = Settings(cloud=cloud, network="hq", interface=addresses[name],
                            address=addresses[name], health_port=port, interval=0.05, fails=3,
                            member=i, peer=addresses[names[1 - i]], refresh=0.3)  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=run, args=(settings, Peers(settings)),
                                  kwargs={"own_tunnel": lambda n=name: ups[n], "stop": stop,
                                          "say": said.append})  # fmt: skip
        thread.start()
        stops.append(stop)
        threads.append(thread)
    try:
        yield said
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(10)
