#!/usr/bin/python3
"""The watchdog of a connector pair (`connector.ha`): it runs on each connector of the pair,
and the one that is not active takes the network's routes over when the active one is down.

Standalone on purpose: the bootstrap writes this file onto the VM as it is, so it imports
nothing of the package and nothing beyond the standard library but the cloud's SDK, imported
when first needed (boto3 on AWS, which the VM installs for the profile already).

- **Who is active** is what the cloud says: the connector the network's routes lead to. The
  watchdog keeps no state of its own that could disagree with it, so two watchdogs never both
  believe they are active for long: the one the routes do not name is the standby.
- **Down** means either of: the active connector does not answer its health endpoint (the VM
  gone or stopped), or it answers that its tunnel is down (the VM up, the VPN service
  unreachable). `fails` consecutive misses, `interval` seconds apart.
- **Only a healthy standby takes over**, and only from a peer that is down: a connector that
  comes back finds the routes on the other one and stays standby while that one is healthy
  (no flapping).
- Its own tunnel is up when the tunnel device has an address and, when a probe address is
  set (default: the tunnel's gateway), that address answers a ping through the tunnel.

Health endpoint (on the connector's private address, `health_port`): `GET /health` is 200 when
its tunnel is up, 503 when not; `GET /active` is 200 only when it is up and active (what a
load balancer's probe asks where the cloud's mechanism is one). Run: `watchdog.py CONFIG`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

TAG = "connector-provisioner:network"  # on the pair's interfaces
HA_TAG = "connector-provisioner:ha"  # on the route tables the pair's watchdogs may change
DEFAULT_PORT = 8181
WRITERS = 8  # route writes in flight at once during a takeover (AWS)


@dataclass(frozen=True)
class Settings:
    """What the bootstrap writes to the watchdog's JSON file. `interface` and `address` are
    this connector's; empty: read from the instance's metadata at start."""

    cloud: str
    network: str
    region: str = ""
    interface: str = ""
    address: str = ""
    health_port: int = DEFAULT_PORT
    interval: float = 1.0
    fails: int = 3
    tunnel_device: str = "tun0"
    tunnel_probe: str = "gateway"  # an address, "gateway" (the tunnel's), or "" (device only)
    endpoint: str = ""  # the cloud API's address, for a sandbox; empty: the cloud's own
    subnet: str = ""  # OCI: the pair's subnet, where the floating private IP is
    # where the connectors agree among themselves (a load balancer's probe follows them):
    # which of the pair this one is, and the other's address (empty: from the metadata)
    member: int = 0
    peer: str = ""
    # seconds between reads of who is active while all is well: a connector that lost the
    # routes without noticing (its peer could not reach it) learns so within this
    refresh: float = 10.0

    @classmethod
    def from_file(cls, path: str) -> Settings:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise SystemExit(f"watchdog: {path}: unknown setting {unknown[0]!r}")
        return cls(**raw)


@dataclass(frozen=True)
class Holder:
    """The connector the network's routes lead to: its interface, its private address."""

    interface: str
    address: str | None


class Mechanism(Protocol):
    """The cloud's way of moving the network's traffic from one connector to the other."""

    def holder(self) -> Holder | None:
        """Who the routes lead to now (None: to no connector of the pair)."""
        ...

    def take_over(self, previous: Holder | None) -> int:
        """Make the routes lead to this connector; returns how many writes it took."""
        ...


# --- this connector's own tunnel --------------------------------------------------------------


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False).stdout


def tunnel_gateway(device: str) -> str | None:
    """The first gateway the VPN's routes name on the tunnel device."""
    for line in _ip("-4", "route", "show", "dev", device).splitlines():
        words = line.split()
        if "via" in words:
            return words[words.index("via") + 1]
    return None


def tunnel_up(settings: Settings) -> bool:
    if "inet " not in _ip("-4", "addr", "show", "dev", settings.tunnel_device):
        return False
    probe = settings.tunnel_probe
    if probe == "gateway":
        probe = tunnel_gateway(settings.tunnel_device) or ""
    if not probe:
        return True
    wait = str(max(1, int(settings.interval)))
    ping = ["ping", "-n", "-q", "-c", "1", "-W", wait, "-I", settings.tunnel_device, probe]
    return subprocess.run(ping, capture_output=True, check=False).returncode == 0


# --- the health endpoint ------------------------------------------------------------------------


@dataclass
class Health:
    """What the endpoint answers: updated by the loop, read by the server's threads."""

    tunnel: bool = False
    active: bool = False
    since: float = 0.0  # when it last became active (unix time): the later of two claims wins

    def answer(self, path: str) -> int:
        if path == "/health":
            return 200 if self.tunnel else 503
        if path == "/active":
            return 200 if self.tunnel and self.active else 503
        return 404


def serve_health(health: Health, address: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            code = health.answer(self.path)
            body = json.dumps(
                {"tunnel": health.tunnel, "active": health.active, "since": health.since}
            ).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # probes every second: not worth a line
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def peer_healthy(address: str, port: int, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except Exception:  # refused, timed out, 503: down
        return False


# --- the decision -------------------------------------------------------------------------------


@dataclass
class Watch:
    """The standby's decision, one step per interval: plain data in, an action out."""

    me: str  # this connector's interface
    fails: int
    misses: int = 0

    def step(self, holder: Holder | None, mine_ok: bool, peer_ok: bool | None) -> bool:
        """True: take the routes over now. `peer_ok` is None when there is no peer to ask."""
        if holder is None or holder.interface == self.me:  # nothing to take, or taken
            self.misses = 0
            return False
        self.misses = 0 if peer_ok else self.misses + 1
        if self.misses < self.fails:
            return False
        if not mine_ok:  # both down: moving the routes here would not help
            return False
        self.misses = 0
        return True


def run(
    settings: Settings,
    mechanism: Mechanism,
    *,
    own_tunnel: Callable[[], bool],
    stop: threading.Event,
    say: Callable[[str], None] = print,
) -> None:
    health = Health()
    server = serve_health(health, settings.address, settings.health_port)
    watch = Watch(settings.interface, settings.fails)
    holder: Holder | None = None
    read_at = 0.0
    said: list[str] = []  # the last read failure said
    try:
        while not stop.is_set():
            started = time.monotonic()
            tunnel, health.tunnel = health.tunnel, own_tunnel()
            # read again when anything changed here: a connector whose tunnel was down may
            # have lost the routes meanwhile, and must not go on answering `/active`
            changed = tunnel != health.tunnel
            if holder is None or changed or watch.misses or started - read_at >= settings.refresh:
                holder = _read(mechanism, say, said) or holder
                read_at = started
            was_active = health.active
            health.active = holder is not None and holder.interface == settings.interface
            if health.active and not was_active:
                health.since = getattr(mechanism, "since", 0.0) or time.time()
            peer_ok = None
            if not health.active and holder is not None and holder.address:
                peer_ok = peer_healthy(holder.address, settings.health_port, settings.interval)
            if watch.step(holder, health.tunnel, peer_ok):
                current = _read(
                    mechanism, say, said
                )  # still on the peer? the cloud has the last word
                if current is None or current.interface != settings.interface:
                    try:
                        writes = mechanism.take_over(current)
                    except Exception as e:  # the next interval tries again
                        say(f"watchdog: taking over failed, will retry: {e}")
                    else:
                        was = current.interface if current else "no connector"
                        say(f"watchdog: took over from {was} ({writes} writes)")
                        holder = Holder(settings.interface, settings.address)
                        health.active = True
                        health.since = getattr(mechanism, "since", 0.0) or time.time()
            stop.wait(max(0.0, settings.interval - (time.monotonic() - started)))
    finally:
        server.shutdown()
        server.server_close()


def _read(mechanism: Mechanism, say: Callable[[str], None], said: list[str]) -> Holder | None:
    """Who is active, as the cloud says; a failure is said once until it changes (a connector
    left alone after its pair keeps its watchdog, which may no longer read: it idles)."""
    try:
        holder = mechanism.holder()
    except Exception as e:  # the cloud unreachable for a moment: keep what we knew
        problem = f"watchdog: could not read who is active: {e}"
        if problem not in said:
            say(problem)
            said[:] = [problem]
        return None
    if said:
        say("watchdog: reading who is active works again")
        said.clear()
    return holder


# --- AWS: the routes of the network's tagged route tables, moved with ReplaceRoute ---------------


class AwsRoutes:
    """The pair's interfaces carry the network's tag; the route tables the watchdog may change
    carry `connector-provisioner:ha=<network>` (the role may replace routes in those only).
    A route of ours is one whose target is an interface of the pair: the watchdog remembers
    each it has seen, so a route left pointing at a deleted one (a blackhole) is still ours."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        if client is None:
            import boto3  # the VM's python3-boto3
            from botocore.config import Config

            extra = {"endpoint_url": settings.endpoint} if settings.endpoint else {}
            # a takeover writes many routes at once: botocore waits out EC2's throttling
            retries = Config(retries={"mode": "adaptive", "max_attempts": 10})
            client = boto3.client("ec2", region_name=settings.region, config=retries, **extra)
        self.ec2 = client
        self.pair: dict[str, str | None] = {settings.interface: settings.address}

    def _tagged(self, key: str) -> list[dict[str, str | list[str]]]:
        return [{"Name": f"tag:{key}", "Values": [self.settings.network]}]

    def _tables(self) -> list[dict[str, Any]]:
        return list(self.ec2.describe_route_tables(Filters=self._tagged(HA_TAG))["RouteTables"])

    def holder(self) -> Holder | None:
        enis = self.ec2.describe_network_interfaces(Filters=self._tagged(TAG))["NetworkInterfaces"]
        for eni in enis:
            self.pair[eni["NetworkInterfaceId"]] = eni.get("PrivateIpAddress")
        counts: dict[str, int] = {}
        for table in self._tables():
            for route in table.get("Routes", []):
                target = route.get("NetworkInterfaceId")
                if target in self.pair:
                    counts[target] = counts.get(target, 0) + 1
        if not counts:
            return None
        interface = max(counts, key=lambda i: (counts[i], i == self.settings.interface))
        return Holder(interface, self.pair.get(interface))

    def take_over(self, previous: Holder | None) -> int:
        """One ReplaceRoute per route of ours (EC2 has no call for several), WRITERS at once:
        a network of many tables and destinations takes that many writes."""
        moves = [
            (table["RouteTableId"], route["DestinationCidrBlock"])
            for table in self._tables()
            for route in table.get("Routes", [])
            if route.get("NetworkInterfaceId") in self.pair
            and route.get("NetworkInterfaceId") != self.settings.interface
            and "DestinationCidrBlock" in route
        ]

        def move(where: tuple[str, str]) -> None:
            self.ec2.replace_route(
                RouteTableId=where[0],
                DestinationCidrBlock=where[1],
                NetworkInterfaceId=self.settings.interface,
            )

        with ThreadPoolExecutor(WRITERS) as pool:
            list(pool.map(move, moves))  # the first failure is raised: the next tick retries
        return len(moves)


def aws_identity(settings: Settings) -> Settings:
    """This connector's interface and address from the instance metadata (IMDSv2)."""
    if settings.interface and settings.address:
        return settings
    base = "http://169.254.169.254/latest"
    put = urllib.request.Request(
        f"{base}/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
    )
    with urllib.request.urlopen(put, timeout=2) as r:
        token = r.read().decode()

    def get(path: str) -> str:
        request = urllib.request.Request(
            f"{base}/meta-data/{path}", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(request, timeout=2) as r:
            return str(r.read().decode()).strip()

    mac = get("mac")
    values = dict(settings.__dict__)
    values["interface"] = get(f"network/interfaces/macs/{mac}/interface-id")
    values["address"] = get("local-ipv4")
    return Settings(**values)


# --- OCI: a secondary private IP that the route rules name, moved with UpdatePrivateIp --------


class OciPrivateIp:
    """The route rules name a secondary private IP of the pair's subnet (tagged
    connector-provisioner:ha: <network>, its floating address); who holds it is active. The
    standby takes over by moving it to its own VNIC: the rules that name it follow, nothing
    else is written. One that is gone (apply made a new one) is looked for again."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        if client is None:
            import oci  # the VM's OCI CLI environment has the SDK

            if settings.endpoint:  # a sandbox's fake (the lab's): nothing to sign with
                signer, extra = self.sandbox_signer(), {"service_endpoint": settings.endpoint}
            else:
                signer, extra = oci.auth.signers.InstancePrincipalsSecurityTokenSigner(), {}
            client = oci.core.VirtualNetworkClient(
                {"region": settings.region}, signer=signer, **extra
            )
        self.network = client
        self.floating: str | None = None

    @staticmethod
    def sandbox_signer() -> Any:
        """A no-op signer for a sandbox's fake only: it signs nothing and holds no key (the
        provider's sandbox clients use it too). The real path keeps OCI's request signing."""
        from oci.auth.signers import KeyPairSigner

        class SandboxSigner(KeyPairSigner):  # a KeyPairSigner: the SDK asks for no config keys
            def __init__(self) -> None:
                pass  # no key: nothing is signed

            @property
            def without_content_headers(self) -> Any:
                return self

            def __call__(self, request: Any, enforce_content_headers: bool = True) -> Any:
                request.headers["authorization"] = (
                    'Signature version="1",keyId="sandbox",signature="none"'
                )
                return request

        return SandboxSigner()

    def _floating(self) -> str | None:
        if self.floating is None:
            found = self.network.list_private_ips(subnet_id=self.settings.subnet).data
            self.floating = next(
                (
                    p.id
                    for p in found
                    if not p.is_primary
                    and (p.freeform_tags or {}).get(HA_TAG) == self.settings.network
                ),
                None,
            )
        return self.floating

    def holder(self) -> Holder | None:
        import oci

        floating = self._floating()
        if floating is None:
            return None
        try:
            vnic = self.network.get_private_ip(floating).data.vnic_id
        except oci.exceptions.ServiceError as e:
            if e.status != 404:
                raise
            self.floating = None  # gone: the next read looks for the pair's new one
            return None
        if vnic == self.settings.interface:
            return Holder(vnic, self.settings.address)
        primary = next(
            (
                p.ip_address
                for p in self.network.list_private_ips(vnic_id=vnic).data
                if p.is_primary
            ),
            None,
        )
        return Holder(vnic, primary)

    def take_over(self, previous: Holder | None) -> int:
        import oci

        floating = self._floating()
        if floating is None:
            return 0
        details = oci.core.models.UpdatePrivateIpDetails(vnic_id=self.settings.interface)
        self.network.update_private_ip(floating, details)
        return 1


# --- Azure, GCP: the pair agrees; the load balancer's probe (`/active`) follows ----------------


def ask_active(address: str, port: int, timeout: float) -> dict[str, Any] | None:
    """What the peer's `/active` says (its JSON, whether 200 or 503); None: no answer."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/active", timeout=timeout) as r:
            return dict(json.load(r))
    except urllib.error.HTTPError as e:  # 503: it answers, and says why
        try:
            return dict(json.load(e))
        except ValueError:
            return {}
    except Exception:  # refused, timed out: no answer
        return None


class Peers:
    """Where the cloud's load balancer sends the network's traffic to whichever connector
    answers its probe on `/active` (an internal load balancer as the next hop), the pair decides
    who that is, and the cloud holds nothing to read or write: no call, no permission.

    - a connector that claimed keeps its claim until its peer shows a later one (the peer took
      over while this one was down or cut off): the newest decision stands;
    - with no claim on either side, the first connector (`member` 0) claims as soon as it sees
      its peer healthy and not active; the other waits;
    - otherwise the peer is presumed active: the loop watches its `/health` and takes over
      after `fails` misses, as it does on the other clouds. A connector that comes back finds
      its peer's claim and stays standby.

    Holders are addresses: `settings.interface` is this connector's address. The peer's
    address comes from `peer_address` (the instance metadata, which apply keeps current)."""

    def __init__(self, settings: Settings, peer_address: Callable[[], str] | None = None) -> None:
        self.settings = settings
        if peer_address is None:
            peer_address = (lambda: settings.peer) if settings.peer else PEERS[settings.cloud]
        self.peer_address = peer_address
        self.since = 0.0  # when this one claimed; 0: it holds no claim
        # a peer that did not answer is not asked again for a while: the loop's health checks
        # go on (one timeout a step, not two), and they notice it coming back
        self.quiet_until = 0.0

    def holder(self) -> Holder | None:
        me = Holder(self.settings.interface, self.settings.address)
        peer = self.peer_address()
        if not peer:  # alone (no pair, or not yet told of it): it carries the traffic
            self.since = self.since or time.time()
            return me
        said = None
        if time.monotonic() >= self.quiet_until:
            said = ask_active(peer, self.settings.health_port, self.settings.interval)
            if said is None:
                self.quiet_until = time.monotonic() + self.settings.interval * self.settings.fails
        theirs = float((said or {}).get("since") or 0.0)
        if self.since and not (said and said.get("active") and theirs > self.since):
            return me
        if said and said.get("active"):  # a later claim than ours (or we hold none)
            self.since = 0.0
            return Holder(peer, peer)
        if said and said.get("tunnel") and self.settings.member == 0:
            self.since = time.time()  # nobody active, both healthy: the first claims
            return me
        return Holder(peer, peer)

    def take_over(self, previous: Holder | None) -> int:
        self.since = time.time()
        return 0  # nothing written: the probe finds this one answering `/active`


def azure_peer() -> str:
    """The other connector's address: a tag on this VM that apply keeps current, read from the
    instance metadata (no identity needed)."""
    request = urllib.request.Request(
        "http://169.254.169.254/metadata/instance/compute/tagsList?api-version=2021-02-01",
        headers={"Metadata": "true"},
    )
    with urllib.request.urlopen(request, timeout=2) as r:
        tags = {t["name"]: t["value"] for t in json.load(r)}
    return str(tags.get("connector-provisioner:peer", ""))


def gcp_peer() -> str:
    """The other connector's address: this instance's metadata, which apply keeps current."""
    return _gcp_metadata("instance/attributes/connector-peer", missing="")


def _gcp_metadata(path: str, missing: str | None = None) -> str:
    request = urllib.request.Request(
        f"http://metadata.google.internal/computeMetadata/v1/{path}",
        headers={"Metadata-Flavor": "Google"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as r:
            return str(r.read().decode())
    except urllib.error.HTTPError as e:
        if e.code == 404 and missing is not None:
            return missing
        raise


def gcp_identity(settings: Settings) -> Settings:
    """This connector's address (its identity among peers) from the metadata server."""
    if settings.interface and settings.address:
        return settings
    address = _gcp_metadata("instance/network-interfaces/0/ip")
    values = dict(settings.__dict__)
    values["interface"] = values["address"] = address
    return Settings(**values)


PEERS: dict[str, Callable[[], str]] = {"azure": azure_peer, "gcp": gcp_peer}


def azure_identity(settings: Settings) -> Settings:
    """This connector's address (its identity among peers) from the instance metadata."""
    if settings.interface and settings.address:
        return settings
    request = urllib.request.Request(
        "http://169.254.169.254/metadata/instance/network?api-version=2021-02-01",
        headers={"Metadata": "true"},
    )
    with urllib.request.urlopen(request, timeout=2) as r:
        address = json.load(r)["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"]
    values = dict(settings.__dict__)
    values["interface"] = values["address"] = address
    return Settings(**values)


def oci_identity(settings: Settings) -> Settings:
    """This connector's VNIC and address from the instance metadata (v2)."""
    if settings.interface and settings.address:
        return settings
    request = urllib.request.Request(
        "http://169.254.169.254/opc/v2/vnics/", headers={"Authorization": "Bearer Oracle"}
    )
    with urllib.request.urlopen(request, timeout=2) as r:
        vnic = json.load(r)[0]
    values = dict(settings.__dict__)
    values["interface"], values["address"] = vnic["vnicId"], vnic["privateIp"]
    return Settings(**values)


MECHANISMS: dict[str, tuple[Callable[[Settings], Settings], Callable[[Settings], Mechanism]]] = {
    "aws": (aws_identity, AwsRoutes),
    "oci": (oci_identity, OciPrivateIp),
    "azure": (azure_identity, Peers),
    "gcp": (gcp_identity, Peers),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: watchdog.py CONFIG.json", file=sys.stderr)
        return 2
    settings = Settings.from_file(args[0])
    if settings.cloud not in MECHANISMS:
        print(f"watchdog: cloud {settings.cloud!r} has no mechanism here", file=sys.stderr)
        return 2
    identity, mechanism = MECHANISMS[settings.cloud]
    settings = identity(settings)
    stop = threading.Event()
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(
        f"watchdog: network {settings.network}, this connector {settings.interface} "
        f"({settings.address}), every {settings.interval:g} s, down after {settings.fails}",
        flush=True,
    )
    run(
        settings,
        mechanism(settings),
        own_tunnel=lambda: tunnel_up(settings),
        stop=stop,
        say=lambda line: print(line, flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
