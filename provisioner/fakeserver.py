"""What every cloud's fake shares: faults served before anything changes, and the HTTP server on
127.0.0.1 that puts a fake in front of the cloud's real SDK."""

from __future__ import annotations

import contextlib
import copy
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Protocol

Answer = tuple[int, dict[str, str], bytes]

WATCHDOG_UNIT = b"connector-watchdog.service"  # in the user-data of a pair's member only


def sandbox_watchdog_word(user_data: bytes | str, second: bool) -> str | None:
    """What a fresh pair member's watchdog publishes once both are up (the first claims, the
    second stands by): the word the sandbox's VMs give, where nothing runs. None: its
    user-data (plain, or base64 as EC2 takes it) runs no watchdog (a single connector)."""
    import base64
    import binascii
    import gzip

    raw = user_data.encode() if isinstance(user_data, str) else user_data
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded[:2] == b"\x1f\x8b":  # (EC2's: gzip'd, as cloud-init takes it)
        decoded = gzip.decompress(decoded)
    if WATCHDOG_UNIT not in raw and WATCHDOG_UNIT not in decoded:
        return None
    return stand_in_word(second)


def stand_in_word(second: bool) -> str:
    role = "standby" if second else "active"
    return f"{role}, the other member ok (the sandbox's stand-in: no watchdog runs on its VMs)"


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    code: str
    message: str
    times: int
    retry_after: str | None = None
    after: int = 0  # matching requests let through first
    in_operation: bool = False  # accepted, then failed in its long-running operation
    seen: int = 0
    served: int = 0


@dataclass
class Faults:
    """Errors a test asks for: `add` them, `due` tells a request whether one is served to it."""

    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        method: str,
        path_pattern: str,
        status: int,
        code: str,
        message: str = "injected fault",
        times: int = 1,
        retry_after: str | None = None,
        after: int = 0,
        in_operation: bool = False,
    ) -> Fault:
        """Let `after` requests whose method and path match through, then answer the next
        `times` with this error (before anything is changed)."""
        pattern = re.compile(path_pattern, re.I)
        fault = Fault(
            method.upper(), pattern, status, code, message, times, retry_after, after, in_operation
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def due(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method != method or not fault.pattern.search(path):
                    continue
                fault.seen += 1
                if fault.seen > fault.after and fault.served < fault.times:
                    fault.served += 1
                    return fault
        return None

    def __getitem__(self, i: int) -> Fault:
        return self.faults[i]


@dataclass
class Call:
    """One request a fake answered, as the tests and the bench read it back."""

    method: str
    path: str  # without the API's prefix and version
    kind: str  # the resource type: routeTables, firewalls, microsoft.network/routetables...
    verb: str = ""  # get | list | insert | update | delete | an action's name (GCP, OCI)
    api: str = ""  # compute | secretmanager | iam (GCP)
    body: Any = None  # as sent, secrets redacted (GCP, OCI)
    refs: tuple[str, ...] = ()  # resource types a write references (ARM checks join on each)


WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# a credential some APIs take in the query string (CloudConnexa's token request): never logged
SECRETS_IN_QUERY = re.compile(r"(client_secret|access_token|password)=[^&\s\"]*", re.I)
UNCOPIED = ("lock", "faults")  # a checkpoint keeps no lock; a restored fake has no fault due


class Injectable:
    """A fake that records what it is asked, serves faults (`fail(...)` adds one, see
    `Faults.add`) and serves itself on 127.0.0.1 (`serve`)."""

    faults: Faults
    calls: list[Call]
    name: ClassVar[str] = "fake-cloud"
    # writes by method that change nothing (GCP's operation wait, OCI's lookup by address...)
    not_mutating: ClassVar[frozenset[str]] = frozenset()

    def mutating_calls(self) -> list[Call]:
        return [
            c for c in self.calls if c.method in WRITE_METHODS and c.verb not in self.not_mutating
        ]

    def serve(self, port: int = 0, log: bool = False, host: str = "127.0.0.1") -> FakeServer:
        """On 127.0.0.1 (or `host`: the lab's, inside a namespace of its own); `log`: one line
        per request on stderr (`sandbox serve --verbose`)."""
        return FakeServer(self, port, self.name, log, host)  # type: ignore[arg-type]

    def checkpoint(self) -> dict[str, Any]:
        """Everything the fake holds (its resources, counters, what it was asked), to put back
        with `restore`: a world seeded once serves many tests."""
        with self._lock_of():
            return {k: copy.deepcopy(v) for k, v in vars(self).items() if k not in UNCOPIED}

    def restore(self, saved: dict[str, Any]) -> None:
        """Back to `saved`, with no fault pending and nothing recorded since."""
        with self._lock_of():
            for k, v in saved.items():
                setattr(self, k, copy.deepcopy(v))
            self.faults = Faults()

    def _lock_of(self) -> Any:
        return getattr(self, "lock", None) or threading.Lock()

    def fail(self, *args: Any, **kwargs: Any) -> Fault:
        """`Faults.add`: `code` as the cloud names it (ARM's `AuthorizationFailed`, Compute's
        `rateLimitExceeded`...); `in_operation` (the GCP fake): the request is accepted, nothing
        is changed, and its long-running operation ends with the error, as Compute reports quota
        and capacity failures."""
        return self.faults.add(*args, **kwargs)


class Fake(Protocol):
    def handle(
        self, method: str, url: str, headers: dict[str, str], body: bytes, base: str
    ) -> Answer: ...


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer is not the fake's error


class FakeServer:
    """A fake on 127.0.0.1 (a free port by default); `url` is its base URL. Stops on close."""

    def __init__(
        self,
        fake: Fake,
        port: int = 0,
        name: str = "fake-cloud",
        log: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.fake = fake
        self.host = host
        self.httpd = _QuietServer((host, port), _handler(fake.handle, name if log else ""))
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True)
        self.thread.start()

    def close(self) -> None:
        # serve_forever sees shutdown() only when its select wakes (every 0.5 s): a connection
        # wakes it at once, so closing a fake costs no half second (a shorter poll would, but
        # it takes the GIL from the tests 100 times a second instead)
        stopping = threading.Thread(target=self.httpd.shutdown)
        stopping.start()
        while stopping.is_alive():
            with contextlib.suppress(OSError):
                socket.create_connection((self.host, self.port), timeout=1).close()
            stopping.join(0.05)
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _handler(
    handle: Callable[[str, str, dict[str, str], bytes, str], Answer], log_as: str = ""
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out as two writes: without this, Nagle and the client's delayed
        # ACK hold every answer ~40 ms
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            if log_as:  # else quiet: the tests read the calls instead
                line = SECRETS_IN_QUERY.sub(r"\1=(redacted)", format % args)
                sys.stderr.write(f"{log_as}: {self.address_string()} {line}\n")

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            base = f"http://{self.headers.get('Host', '127.0.0.1')}"
            status, out_headers, out = handle(self.command, self.path, headers, body, base)
            if self.command == "HEAD":  # the status alone (ARM's check_existence)
                out = b""
            self.send_response(status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = do_HEAD = _answer

    return Handler


# --- the sandbox's world: each cloud's part of it, seeded by the cloud's package -------------

VPN_REGION = "eu-central-1"  # the sandbox's VPN region on the fake CloudConnexa
FAKE_PROFILE = (
    "client\ndev tun\nproto udp\nremote sandbox.vpn.invalid 1194\n"
    "<key>\nSANDBOX-PRIVATE-KEY-{name}-do-not-print\n</key>\n"
)


class Seeded(Protocol):
    """One network a cloud's part seeded: what a topology names."""

    name: str

    def network_entry(self, profile: str, **connector: Any) -> dict[str, Any]:
        """This network as a topology network entry, its connector's profile `profile`."""
        ...

    def describe(self) -> str:
        """What a user names of it in a topology of their own, in one line."""
        ...


@dataclass
class SandboxPart:
    """One cloud's part of the sandbox, as its package's `sandbox_part` makes it: its seeded
    networks, how its provider reaches the fake (`Clouds.options[cloud]`), the environment that
    points the CLI and the SDK there, and one line on what serves it."""

    cloud: str
    seeded: list[Any] = field(default_factory=list)  # Seeded
    options: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    served: str = ""
    # what the part's fake itself is, for a test that reaches into it (a fake, a session)
    fake: Any = None
    # where a seeded network is (a Location), for `provision discover`; None: not said
    location_of: Callable[[Any], Any] | None = None
    # makes a connector by hand in a seeded network, as the VPN service's guide has a user do:
    # (network, peer ranges) -> what it made (.instance, .interface); None: this cloud's part
    # does not
    hand_made: Callable[[Any, list[str]], Any] | None = None


@dataclass
class SandboxWorld:
    """The sandbox's networks, by cloud: the seed document's HQ and Branch and a hub on each
    other cloud (each seeded by its cloud's package), and a scratch directory for files."""

    directory: Path
    parts: dict[str, SandboxPart] = field(default_factory=dict)
    service_url: str = ""  # where the fake CloudConnexa listens

    def seeded(self, name: str) -> Any:
        """The seeded network `name` (KeyError when none is)."""
        for part in self.parts.values():
            for net in part.seeded:
                if net.name == name:
                    return net
        raise KeyError(name)

    def cloud_of(self, name: str) -> str:
        return next(p.cloud for p in self.parts.values() for n in p.seeded if n.name == name)

    @property
    def hq(self) -> Any:
        return self.seeded("hq")

    @property
    def branch(self) -> Any:
        return self.seeded("branch")

    def topology(self, partner: bool = False, service: bool = False) -> dict[str, Any]:
        """Every seeded network as a topology document (profiles written beside it), or with
        `service` the VPN service's half too: no profile files, the service makes them (and
        the partner's goes to partner.ovpn)."""
        networks: dict[str, Any] = {}
        for part in self.parts.values():
            for net in part.seeded:
                profile = self.directory / f"{net.name}.ovpn"
                if not profile.exists() and not service:
                    profile.write_text(FAKE_PROFILE.format(name=net.name))
                networks[net.name] = net.network_entry(profile.name)
        if partner:
            networks["partner"] = {"cloud": "external", "subnets": ["172.31.0.0/16"]}
        doc: dict[str, Any] = {"version": 1, "vpn_subnet": "100.96.0.0/11"}
        if service:
            doc["service"] = {"cloudconnexa": {"cloud_id": "sandbox", "vpn_region": VPN_REGION}}
            for entry in networks.values():
                entry.get("connector", {}).pop("profile", None)
            if partner:
                networks["partner"]["connector"] = {"profile_out": "partner.ovpn"}
        return {**doc, "networks": networks}

    def write_topology(self, partner: bool = False, service: bool = False) -> Path:
        """The topology as a user writes one: YAML, in the README's order of keys."""
        import yaml

        path = self.directory / "topology.yaml"
        made = "the VPN service makes" if service else "profiles are the files beside this one"
        path.write_text(
            f"# the sandbox's networks; {made}\n"
            + yaml.safe_dump(
                self.topology(partner, service), sort_keys=False, default_flow_style=False
            )
        )
        return path

    def describe(self) -> list[str]:
        """One line per seeded network: what a user names in a topology of their own."""
        lines = [
            f"{net.name:<7} {part.cloud:<6} {net.describe()}"
            for part in self.parts.values()
            for net in part.seeded
        ]
        lines.append("partner external, 172.31.0.0/16 (routed to, not managed)")
        return lines


@contextlib.contextmanager
def served_hub(
    cloud: str,
    fake: Any,
    seed: Callable[..., Any],
    hub: tuple[str, str],
    variable: str,
    served: str,
    verbose: bool = False,
    **options: Any,
) -> Iterator[SandboxPart]:
    """A cloud's part of the sandbox that is one fake on 127.0.0.1 with one hub network in it
    (`hub`: its name and range, seeded by `seed(fake, url, name, cidr)`): its provider reaches
    it at `endpoint` (and `options`), the CLI through `variable`; `served` says what it is
    ({url} filled in)."""
    with fake.serve(log=verbose) as server:
        yield SandboxPart(
            cloud,
            [seed(fake, server.url, *hub)],
            {"endpoint": server.url, **options},
            exports={variable: server.url},
            served=served.format(url=server.url),
            fake=server,
        )
