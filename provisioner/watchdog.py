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
- **Both members carry traffic from the VPN**: the service spreads a network's flows over all
  of its connected connectors, so each watchdog also checks that its own connector can forward
  into the network (IPv4 forwarding on, the kernel's route from the tunnel to the network, the
  FORWARD chain not dropping it). One that cannot closes its own tunnel gracefully (the
  service is told it leaves and stops sending to it at once) and dials in again once it can.
  The active one watches the other member too and says when it is gone and when it is back.
- **A planned change drains first** (the VM shutting down, which stops this service first: any
  terminate, delete or reboot that shuts the OS down; or a drain file, or the cloud's drain
  marker): the member says it is leaving (`/health` 503 with `leaving`, so a healthy standby
  takes the routes or the front over at once), waits until it holds nothing and the cloud has
  followed (`settle`), then closes its tunnel gracefully and stays drained while the drain is
  asked: it still forwards what is in flight until its VM goes.

Health endpoint (on the connector's private address, `health_port`): `GET /health` is 200 when
its tunnel is up and it is not leaving, 503 when not; `GET /active` is 200 only when it is up
and active (what a load balancer's probe asks where the cloud's mechanism is one). Both answer
a JSON of its state (tunnel, active, forwarding, leaving, drained, peer, word: the last thing it
said). Run: `watchdog.py CONFIG`.
"""

from __future__ import annotations

import json
import os
import socket
import struct
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
DRAIN_TAG = "connector-provisioner:drain"  # apply's marker on a member that is to leave
# its last word, where the cloud keeps it for `status` (AWS: a tag on its instance; OCI: a
# freeform tag on its primary private IP; GCP: a guest attribute connector-provisioner/watchdog)
WATCH_TAG = "connector-provisioner:watchdog"
DEFAULT_PORT = 8181
OPENVPN_UNIT = "openvpn-client@connector.service"
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
    instance: str = ""  # AWS: its instance (where it tags its word); empty: from the metadata
    health_port: int = DEFAULT_PORT
    # the other member is down after `fails` checks in a row, `interval` seconds apart, each
    # waiting at most `interval`: 1.5 s, so the cloud's half of a failover is about 2 s
    interval: float = 0.5
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
    # closing and opening its own tunnel (gracefully: the unit's OpenVPN tells the service it
    # leaves), where it cannot forward or is drained
    # (not waited for: at a shutdown systemd stops the unit after this service anyway)
    tunnel_stop: tuple[str, ...] | list[str] = ("systemctl", "stop", "--no-block", OPENVPN_UNIT)
    tunnel_start: tuple[str, ...] | list[str] = ("systemctl", "start", OPENVPN_UNIT)
    # a planned change asks this member to leave by this file (or the cloud's drain marker)
    drain_file: str = "/run/connector-provisioner/drain"
    # seconds between the routes or front leaving this member and its tunnel closing: what the
    # cloud takes to follow (a balancer's probe interval and threshold, a route's propagation)
    settle: float = 2.0
    # the interface towards the network; empty: the one of the default route
    lan_interface: str = ""
    # GCP: the metadata server (its guest attributes); empty: the VM's own
    metadata: str = ""

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


def _routes() -> list[tuple[str, str, str]]:
    """The kernel's IPv4 routes as (interface, destination, gateway), from /proc/net/route: a
    read, not a process (the watchdog asks every step)."""
    out: list[tuple[str, str, str]] = []
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        words = line.split()
        if len(words) < 8:
            continue
        dev, dest, gateway, flags, mask = words[0], words[1], words[2], int(words[3], 16), words[7]

        def address(hexed: str) -> str:
            return socket.inet_ntoa(struct.pack("<I", int(hexed, 16)))

        gateway = address(gateway) if flags & 0x2 else ""  # RTF_GATEWAY
        out.append((dev, "default" if dest == mask == "00000000" else address(dest), gateway))
    return out


def tunnel_gateway(device: str) -> str | None:
    """The first gateway the VPN's routes name on the tunnel device."""
    return next((gw for dev, _, gw in _routes() if dev == device and gw), None)


def _has_address(device: str) -> bool:
    """The device has an IPv4 address (SIOCGIFADDR: no process)."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", device[:15].encode()))
        except OSError:
            return False
    return True


def tunnel_up(settings: Settings) -> bool:
    if not _has_address(settings.tunnel_device):
        return False
    probe = settings.tunnel_probe
    if probe == "gateway":
        probe = tunnel_gateway(settings.tunnel_device) or ""
    if not probe:
        return True
    wait = str(max(1, int(settings.interval)))
    ping = ["ping", "-n", "-q", "-c", "1", "-W", wait, "-I", settings.tunnel_device, probe]
    return subprocess.run(ping, capture_output=True, check=False).returncode == 0


def _default_route() -> tuple[str, str]:
    """(interface, gateway) of the default route; empty where there is none."""
    return next(((dev, gw) for dev, dest, gw in _routes() if dest == "default"), ("", ""))


def forwarding_problem(settings: Settings, run_: Callable[..., Any] = subprocess.run) -> str | None:
    """Why this connector cannot forward from the VPN into the network, or None: IPv4
    forwarding off, no way to the network, the kernel refusing to route a packet from the
    tunnel (or, with the tunnel closed, from the LAN) to the network's gateway, or a FORWARD
    chain that drops by default without our rules."""
    try:
        with open("/proc/sys/net/ipv4/ip_forward", encoding="ascii") as f:
            if f.read().strip() != "1":
                return "IPv4 forwarding is off"
    except OSError as e:
        return f"cannot read the forwarding setting: {e}"
    dev, gateway = _default_route()
    lan = settings.lan_interface or dev
    if not lan or not gateway:
        return "no route to the network (no default route)"
    tunnel = settings.tunnel_device
    iif = tunnel if os.path.exists(f"/sys/class/net/{tunnel}") else lan
    source = tunnel_gateway(tunnel) if iif == tunnel else None
    got = run_(["ip", "-4", "route", "get", gateway, "from", source or "100.96.0.1", "iif", iif],
               capture_output=True, text=True, check=False)  # fmt: skip
    if got.returncode != 0:
        why = (got.stderr or got.stdout).strip().removeprefix("RTNETLINK answers: ")
        return f"the kernel does not route from {iif} into the network: {why or 'refused'}"
    rules = _forward_chain(run_)
    if "-P FORWARD DROP" in rules and "-j CP-FORWARD" not in rules:
        return "the FORWARD chain drops by default and our rules are gone from it"
    return None


CHAIN_EVERY = 2.0  # seconds between reads of the FORWARD chain (iptables: the costliest check)
_chain: dict[str, Any] = {"at": -CHAIN_EVERY, "rules": ""}


def _forward_chain(run_: Callable[..., Any]) -> str:
    """The FORWARD chain's rules, read again once CHAIN_EVERY seconds have passed (a chain
    someone flushed is found within that; the other checks run every step)."""
    now = time.monotonic()
    if now - _chain["at"] >= CHAIN_EVERY:
        chain = run_(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=False)
        _chain.update(at=now, rules=chain.stdout if chain.returncode == 0 else "")
    return str(_chain["rules"])


def close_tunnel(settings: Settings) -> None:
    """Its OpenVPN stopped gracefully: it tells the service it leaves (explicit-exit-notify)."""
    subprocess.run(list(settings.tunnel_stop), capture_output=True, check=False, timeout=30)


def open_tunnel(settings: Settings) -> None:
    subprocess.run(list(settings.tunnel_start), capture_output=True, check=False, timeout=60)


# --- the health endpoint ------------------------------------------------------------------------


@dataclass
class Health:
    """What the endpoint answers: updated by the loop, read by the server's threads."""

    tunnel: bool = False
    active: bool = False
    since: float = 0.0  # when it last became active (unix time): the later of two claims wins
    forwarding: bool = True
    leaving: bool = False  # a drain asked: its part handed over, then its tunnel closed
    drained: bool = False  # its tunnel closed for a drain
    closed: str = ""  # why it closed its own tunnel ("": it did not)
    peer: str = ""  # the other member as last seen: ok, leaving, no tunnel, no answer
    word: str = ""  # the last thing it said

    def answer(self, path: str) -> int:
        if path == "/health":
            return 200 if self.tunnel and not self.leaving and not self.closed else 503
        if path == "/active":  # a leaving active one keeps the front until the other claims
            return 200 if self.tunnel and self.active else 503
        return 404

    def summary(self) -> str:
        """Its state in a few words, as `status` shows it: its role or why it has none, and
        the other member as it last saw it."""
        if self.drained:
            return "drained: its tunnel closed for a planned change"
        if self.leaving:
            return "leaving: a drain asked"
        if self.closed:
            return f"its tunnel closed: {self.closed}"
        if not self.tunnel:
            return "no tunnel"
        role = "active" if self.active else "standby"
        return f"{role}, the other member {self.peer}" if self.peer else role

    def state(self) -> dict[str, Any]:
        # `leaving`: also a connector that closed its tunnel because it cannot forward: a
        # standby takes over at once, without waiting for misses
        return {**self.__dict__, "leaving": self.leaving or bool(self.closed)}


def serve_health(health: Health, address: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            code = health.answer(self.path)
            body = json.dumps(health.state()).encode()
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


def peer_state(address: str, port: int, timeout: float) -> str:
    """The other member, as its `/health` says: ok, leaving, no tunnel, or no answer."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/health", timeout=timeout) as r:
            return "ok" if r.status == 200 else "no tunnel"
    except urllib.error.HTTPError as e:
        try:
            said = dict(json.load(e))
        except ValueError:
            said = {}
        return "leaving" if said.get("leaving") else "no tunnel"
    except Exception:  # refused, timed out
        return "no answer"


# --- the decision -------------------------------------------------------------------------------


@dataclass
class Watch:
    """The standby's decision, one step per interval: plain data in, an action out."""

    me: str  # this connector's interface
    fails: int
    misses: int = 0

    def step(
        self, holder: Holder | None, mine_ok: bool, peer_ok: bool | None, leaving: bool = False
    ) -> bool:
        """True: take the routes over now. `peer_ok` is None when there is no peer to ask;
        `leaving`: the active one says it is drained away (no misses to wait for)."""
        if holder is None or holder.interface == self.me:  # nothing to take, or taken
            self.misses = 0
            return False
        if leaving and mine_ok:
            self.misses = 0
            return True
        self.misses = 0 if peer_ok else self.misses + 1
        if self.misses < self.fails:
            return False
        if not mine_ok:  # both down: moving the routes here would not help
            return False
        self.misses = 0
        return True


@dataclass
class Hooks:
    """What the loop does to the VM beyond the cloud: each a no-op unless given (tests)."""

    forwarding: Callable[[], str | None] = lambda: None  # why it cannot forward, or None
    # open (True) or close its tunnel; may return a Future (done once the command has run)
    tunnel: Callable[[bool], Any] = lambda up: None
    drain_asked: Callable[[], bool] = lambda: False
    # its word changed: published where the cloud keeps it (a Reporter's `offer`)
    report: Callable[[str], None] = lambda word: None


class Reporter:
    """Publishes the watchdog's word where the cloud keeps it (`publish`: one call), off the
    loop so a slow cloud never delays a takeover, the latest word only; a failure is said once
    and tried again after `retry` seconds (or sooner, when the word changes)."""

    def __init__(self, publish: Callable[[str], None], say: Callable[[str], None],
                 retry: float = 30.0) -> None:  # fmt: skip
        self.publish, self.say, self.retry = publish, say, retry
        self.pending: str | None = None
        self.failed = ""
        self.lock, self.wake = threading.Lock(), threading.Event()
        threading.Thread(target=self._run, name="watchdog-report", daemon=True).start()

    def offer(self, word: str) -> None:
        with self.lock:
            self.pending = word
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            with self.lock:
                word, self.pending = self.pending, None
                self.wake.clear()
            if word is None:
                continue
            try:
                self.publish(word)
            except Exception as e:  # unreachable, refused: its word waits, the loop goes on
                problem = f"watchdog: could not publish its state: {e}"
                if problem != self.failed:
                    self.say(problem)
                    self.failed = problem
                with self.lock:
                    self.pending = self.pending or word
                self.wake.wait(self.retry)
                self.wake.set()
                continue
            if self.failed:
                self.say("watchdog: publishing its state works again")
                self.failed = ""


def tunnel_worker(settings: Settings) -> Callable[[bool], Any]:
    """Closing and opening the tunnel one after the other, off the loop: a graceful close takes
    as long as OpenVPN forwards what is in flight (seconds), and an open must follow it."""
    pool = ThreadPoolExecutor(1)

    def act(up: bool) -> Any:
        return pool.submit(open_tunnel if up else close_tunnel, settings)

    return act


class _Done:
    @staticmethod
    def done() -> bool:
        return True


_DONE = _Done()


class Loop:
    """One connector's watchdog: each `step` reads its own state, who is active and the other
    member's, then takes over, closes or opens its own tunnel, or drains, as they say."""

    def __init__(self, settings: Settings, mechanism: Mechanism, own_tunnel: Callable[[], bool],
                 say: Callable[[str], None], hooks: Hooks) -> None:  # fmt: skip
        self.settings, self.mechanism, self.own_tunnel, self.hooks = (
            settings, mechanism, own_tunnel, hooks)  # fmt: skip
        self.health = Health()
        self.watch = Watch(settings.interface, settings.fails)
        self.holder: Holder | None = None
        self.read_at = 0.0
        self.said: list[str] = []  # the last read failure said
        self.leave_at: float | None = None  # when its tunnel closes, once it holds nothing
        self.waiting_said = False
        self.peer_address = ""  # the other member's, as last learnt
        self.opening: Any = None  # its tunnel being opened again (a Future)
        self.peer_said = False  # the other member's going was said (its return will be)
        self.reported = ""  # its state as last published

        def say_and_keep(line: str) -> None:
            self.health.word = line
            say(line)

        self.say = say_and_keep

    def step(self) -> None:
        s, h = self.settings, self.health
        started = time.monotonic()
        # a tunnel it closed is down to everyone from that moment, though its OpenVPN stays a
        # few seconds to forward what is in flight
        tunnel, h.tunnel = h.tunnel, self.own_tunnel() and not h.closed
        problem = self.hooks.forwarding()
        h.forwarding = problem is None
        # read again when anything changed here: a connector whose tunnel was down may have
        # lost the routes meanwhile, and must not go on answering `/active`
        changed = tunnel != h.tunnel
        if (self.holder is None or changed or self.watch.misses or h.leaving
                or started - self.read_at >= s.refresh):  # fmt: skip
            setattr(self.mechanism, "leaving", h.leaving)  # noqa: B010 (Peers reads it)
            self.holder = _read(self.mechanism, self.say, self.said) or self.holder
            self.read_at = started
        was_active = h.active
        h.active = self.holder is not None and self.holder.interface == s.interface
        if h.active and not was_active:
            h.since = getattr(self.mechanism, "since", 0.0) or time.time()
        peer = self._peer()
        if self.watch.step(self.holder, h.tunnel and h.forwarding and not h.leaving,
                           peer == "ok", leaving=peer == "leaving"):  # fmt: skip
            self._take_over()
        self._own_tunnel(problem)
        self._drain(peer)
        summary = h.summary()
        if summary != self.reported:
            self.reported = summary
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.hooks.report(f"{summary} (since {since})")

    def _peer(self) -> str | None:
        """The other member's state; said when the active one sees it go or come back."""
        h = self.health
        if self.holder is not None and not h.active and self.holder.address:
            self.peer_address = self.holder.address
        elif h.active:
            self.peer_address = getattr(self.mechanism, "peer", lambda: "")() or self.peer_address
        if not self.peer_address:
            return None
        seen = peer_state(self.peer_address, self.settings.health_port, self.settings.interval)
        # said by the active one, of a member it had seen: gone, leaving, and back again
        if h.active and seen != h.peer and (h.peer == "ok" or (seen == "ok" and self.peer_said)):
            what = {"ok": "is back", "leaving": "is leaving (drained)"}.get(
                seen, f"is gone ({seen})"
            )
            self.say(f"watchdog: the other member {self.peer_address} {what}")
            self.peer_said = seen != "ok"
        h.peer = seen
        return seen

    def _take_over(self) -> None:
        s, h = self.settings, self.health
        current = _read(self.mechanism, self.say, self.said)  # the cloud has the last word
        if current is not None and current.interface == s.interface:
            return
        try:
            writes = self.mechanism.take_over(current)
        except Exception as e:  # the next interval tries again
            self.say(f"watchdog: taking over failed, will retry: {e}")
            return
        was = current.interface if current else "no connector"
        self.say(f"watchdog: took over from {was} ({writes} writes)")
        self.holder = Holder(s.interface, s.address)
        h.active = True
        h.since = getattr(self.mechanism, "since", 0.0) or time.time()

    def _own_tunnel(self, problem: str | None) -> None:
        """Closed when it cannot forward, opened when it can again."""
        h = self.health
        if problem and not h.closed:  # (the kernel's own state, read: no misses to wait for)
            self.hooks.tunnel(False)
            h.closed, h.tunnel = problem, False
            self.say(f"watchdog: cannot forward into the network ({problem}): closed my tunnel, "
                     "so the service sends this network's traffic to the other member")  # fmt: skip
        elif not problem and h.closed and not h.drained and self.opening is None:
            self.opening = self.hooks.tunnel(True) or _DONE
            self.say("watchdog: forwarding works again: dialling in")
        if self.opening is not None and self.opening.done():
            self.opening, h.closed = None, ""  # its tunnel counts again once it has been opened

    def _drain(self, peer: str | None) -> None:
        """A drain asked: leave once the other member is healthy, close the tunnel once this
        one holds nothing and the cloud has followed; withdrawn: back in."""
        s, h = self.settings, self.health
        asked = self.hooks.drain_asked()
        if not asked:
            if h.leaving or h.drained:
                if h.drained:
                    self.opening = self.hooks.tunnel(True) or _DONE
                else:
                    h.closed = ""
                h.leaving = h.drained = False
                self.leave_at, self.waiting_said = None, False
                self.say("watchdog: drain withdrawn: dialling in again")
            return
        if h.drained:
            return
        if not h.leaving:
            if peer == "ok" or not h.active:
                h.leaving = True
                self.say("watchdog: drain asked: leaving, the other member takes over")
            elif not self.waiting_said:
                self.waiting_said = True
                self.say("watchdog: drain asked, but the other member is not healthy: waiting")
            return
        if h.active:
            return
        if self.leave_at is None:
            self.leave_at = time.monotonic() + s.settle
        if time.monotonic() >= self.leave_at:
            self.hooks.tunnel(False)
            h.drained, h.closed, h.tunnel = True, "drained", False
            self.say("watchdog: drained: my tunnel is closed, the other member carries the "
                     "network's traffic; what is in flight is still forwarded")  # fmt: skip


def run(
    settings: Settings,
    mechanism: Mechanism,
    *,
    own_tunnel: Callable[[], bool],
    stop: threading.Event,
    say: Callable[[str], None] = print,
    hooks: Hooks | None = None,
    stopping: threading.Event | None = None,
) -> None:
    """Steps until `stop`; `stopping` (its service stopped: the VM shutting down) drains this
    member first, and ends the loop once it is drained or `drain_limit` seconds have passed."""
    hooks = hooks or Hooks()
    if stopping is not None:
        asked = hooks.drain_asked
        hooks = Hooks(
            hooks.forwarding, hooks.tunnel, lambda: stopping.is_set() or asked(), hooks.report
        )
    loop = Loop(settings, mechanism, own_tunnel, say, hooks)
    server = serve_health(loop.health, settings.address, settings.health_port)
    ends: float | None = None
    try:
        while not stop.is_set():
            started = time.monotonic()
            loop.step()
            if stopping is not None and stopping.is_set():
                ends = ends or started + drain_limit(settings)
                if loop.health.drained or started >= ends:
                    if not loop.health.drained:
                        say("watchdog: stopping before it was drained (time is up)")
                    break
            stop.wait(max(0.0, settings.interval - (time.monotonic() - started)))
    finally:
        server.shutdown()
        server.server_close()


def drain_limit(settings: Settings) -> float:
    """How long a stopping watchdog drains at most: the other's takeover (its misses, each
    check's wait), the cloud following (`settle`), the tunnel's graceful close (OpenVPN's exit
    notice, a few seconds), and a margin; within the unit's TimeoutStopSec."""
    return settings.fails * settings.interval * 2 + settings.settle + 10


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


# --- where a load balancer follows: the pair agrees; its probe (`/active`) follows -----------


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
            peer_address = (lambda: settings.peer) if settings.peer else self.metadata_peer
        self.peer_address = peer_address
        self.since = 0.0  # when this one claimed; 0: it holds no claim
        self.leaving = False  # drained away: it claims nothing (the loop sets it)
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
        if said and said.get("tunnel") and self.settings.member == 0 and not self.leaving:
            self.since = time.time()  # nobody active, both healthy: the first claims
            return me
        return Holder(peer, peer)

    def take_over(self, previous: Holder | None) -> int:
        self.since = time.time()
        return 0  # nothing written: the probe finds this one answering `/active`

    def peer(self) -> str:
        return self.peer_address()

    def metadata_peer(self) -> str:
        """The other connector's address as this VM's cloud tells it (each cloud's own): none
        here."""
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: watchdog.py CONFIG.json", file=sys.stderr)
        return 2
    settings = Settings.from_file(args[0])
    # the cloud's mechanism: its code follows this module's in the script a VM runs
    # (bootstrap.watchdog_source); this module alone has none
    pair = globals().get("MECHANISM")
    if pair is None:
        print(f"watchdog: no mechanism of cloud {settings.cloud!r} in this script (run the "
              "one bootstrap.watchdog_source(cloud) makes)", file=sys.stderr)  # fmt: skip
        return 2
    identity, mechanism = pair
    settings = identity(settings)
    stop, stopping = threading.Event(), threading.Event()
    import signal

    # stopped (systemd at a shutdown, SIGTERM): drained first; interrupted: at once
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(
        f"watchdog: network {settings.network}, this connector {settings.interface} "
        f"({settings.address}), every {settings.interval:g} s, down after {settings.fails}",
        flush=True,
    )
    chosen = mechanism(settings)
    cloud_drain = getattr(chosen, "drain_asked", lambda: False)
    say = lambda line: print(line, flush=True)  # noqa: E731
    publish = getattr(chosen, "publish", None)  # (Azure's VM has no identity to write with)
    run(
        settings,
        chosen,
        own_tunnel=lambda: tunnel_up(settings),
        stop=stop,
        say=say,
        hooks=Hooks(
            forwarding=lambda: forwarding_problem(settings),
            tunnel=tunnel_worker(settings),
            drain_asked=lambda: os.path.exists(settings.drain_file) or bool(cloud_drain()),
            report=Reporter(publish, say).offer if publish else lambda word: None,
        ),
        stopping=stopping,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
