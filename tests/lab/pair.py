"""HQ with a connector pair (`connector.ha`), in the seed's lab world:

- **the cloud**: the cloud API's fake on HQ's router (`cloud_router.py`: moto for AWS, the
  fake OCI for OCI, the fake ARM's balancer for Azure, the fake Compute's for GCP) holds HQ's
  route table or front; the router follows it. The pair's watchdogs (`provisioner/watchdog.py`,
  run as the VM runs it) call it there, as they would call the cloud. Each member's interface
  has the cloud's stateful filter (`cloud_filter`): connection tracking per interface, a packet
  coming in admitted when it answers what went out through that same interface or when a rule
  of the connector's group (the plan's `connector-ingress`) admits its source; the rest dropped.
- **the connectors**: `a` is HQ's connector host, `b` a second host on HQ's LAN switch. Each
  runs the rendered setup script and its watchdog.
- **the VPN service, as CloudConnexa documents it** ("About Networks"): one network with two
  connectors whose traffic is "equally distributed among them". Each connector has its own
  tunnel (a server instance per connector: tunA, tunB), and the service's routing table sends
  HQ's subnet over every connected one at once: a multipath route hashed per flow (source and
  destination address and port: `fib_multipath_hash_policy=1`), rebuilt when a connector's
  session starts or ends (`client-connect`, `client-disconnect`, each logged with its time to
  `service/events.log`). A connector that says it leaves (OpenVPN's explicit exit notification,
  sent when its tunnel is closed gracefully) is dropped at once (`service_watch.py`: OpenVPN's
  own server would keep sending to it for 5 s more); one that falls silent after
  `detection` seconds (the server's `ping-restart`: the lab's named parameter, since the real
  service's timers are pushed by it and not published). Answers from HQ come back through
  whichever tunnel HQ's route table sends them to.
- **the traffic**: two VPN clients, Bob and Carol, each with `udp_flows` UDP flows and
  `tcp_flows` long TCP connections to the HR app (`flows.py`): both members carry some.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from provisioner.watchdog import Settings

from .pki import client_profile, make_cert
from .plan import (
    NO_NAT,
    Mode,
    lab_plan,
    planned_connector_ingress,
    planned_routes,
    planned_setup_script,
)
from .world import (
    BOB_VPN_IP,
    BRANCH,
    HQ,
    VPN_SERVER,
    SeedWorld,
    ServiceConfig,
    Site,
    connector_reset,
    run_setup_script,
)

HERE = Path(__file__).parent
WATCHDOG = Path("watchdog.py")  # the script a member runs: as bootstrap ships it (its cloud's)
FLOWS = HERE / "flows.py"
API_PORT = 5000
UDP_PORT, TCP_PORT = 7007, 7008
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}
FIGURES_NOTES: list[str] = []  # what the lab had to retry, for the report
CAROL_VPN_IP = "100.96.1.11"

ROUTE_SCRIPT = """#!/bin/sh
# the service's routing table: HQ's subnet over every connected connector at once (a multipath
# route, hashed per flow). OpenVPN sets $dev and the session's $trusted_ip and $trusted_port: a
# session is one file, so an old session's late end never takes out its successor's. One
# change at a time: both instances call it.
state={state}
exec 9>"$state/lock"
flock 9
session="$state/up-$dev@$trusted_ip:$trusted_port"
case "$1" in
  add) touch "$session" ;;
  del) [ -e "$session" ] || exit 0; rm -f "$session" ;;
esac
hops=""
for dev_up in $(for f in "$state"/up-*; do [ -e "$f" ] && f="${{f##*/up-}}" && echo "${{f%%@*}}"; done | sort -u); do
  hops="$hops nexthop dev $dev_up"
done
if [ -n "$hops" ]; then
  ip route replace {subnet} $hops
else
  ip route del {subnet} 2>/dev/null || true
fi
echo "$(date +%s.%N) $1 $dev" >> "$state/events.log"
exit 0
"""


@dataclass
class _Log:
    """A client's flow log as read so far."""

    offset: int = 0
    answers: list[tuple[str, int, float, float]] = field(default_factory=list)
    at: list[float] = field(default_factory=list)  # each answer's time, for bisect
    ports: dict[int, str] = field(default_factory=dict)
    resets: list[str] = field(default_factory=list)


@dataclass
class Member:
    name: str  # "a" or "b"
    site: Site  # its host, as the lab's helpers take it
    port: int  # its tunnel's server instance
    device: str  # the server's end of its tunnel
    interface: str = ""  # its ENI (AWS) or VNIC (OCI) in the lab's cloud
    identity: str = ""  # its certificate's name: a replaced member dials in as a new one
    lives: int = 0  # how many times it was made (a replacement is a new VM)


class PairWorld:
    def __init__(
        self,
        world: SeedWorld,
        directory: Path,
        *,
        interval: float,
        fails: int,
        cloud: str = "aws",
        probe: float = 5.0,
        detection: float = 3.0,
        mode: Mode = NO_NAT,
        udp_flows: int = 16,
        tcp_flows: int = 2,
        flow_interval: float = 0.1,
    ) -> None:
        """`probe`: how often the lab's load balancer (Azure, GCP) probes the pair; the clouds'
        resources keep their documented 5 s, the test may follow them faster. `detection`:
        after how many silent seconds the service drops a connector. `mode`: the connectors'
        NAT. `udp_flows`, `tcp_flows`: each VPN client's (Bob's, Carol's)."""
        self.world, self.dir, self.cloud, self.probe = world, directory, cloud, probe
        self.detection, self.mode = detection, mode
        self.udp_flows, self.tcp_flows = udp_flows, tcp_flows
        self.flow_interval = flow_interval  # each flow's pace (the suite's is lighter)
        self.subnet = ""  # OCI: where the floating private IP is
        self.b_ns = self.carol = ""  # the second connector's host, Carol: gone with the pair
        self.interval, self.fails = interval, fails
        self.members: dict[str, Member] = {}
        self.service = directory / "service"
        self.flow_logs: list[Path] = []
        self._logs: dict[Path, _Log] = {}
        try:
            self._build()
        except BaseException:
            self.close()  # the seed's world as the other lab tests expect it, even so
            raise

    def _build(self) -> None:
        world, directory = self.world, self.dir
        lab = world.lab
        connector_reset(world, HQ)
        b_ns = self.b_ns = lab.ns("hqc2")
        # (an earlier pair's end of the link goes with its namespace, unless a process of it
        # outlived the kill for a moment: then the name is still taken)
        lab.run(HQ.router, "ip", "link", "del", "p-c2", check=False)
        lab.link(HQ.router, "p-c2", None, b_ns, "lan0", f"{_b_ip()}/{HQ.prefix}")
        lab.run(HQ.router, "ip", "link", "set", "p-c2", "master", "br0")
        lab.run(b_ns, "ip", "route", "add", "default", "via", HQ.router_ip)
        lab.run(b_ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.accept_redirects=0")
        self.members = {
            "a": Member("a", _site("hq-a", HQ.connector, HQ.connector_ip, "100.127.0.2"), 1195,
                        "tunA", identity="hq-a"),
            "b": Member("b", _site("hq-b", b_ns, _b_ip(), "100.127.0.6"), 1196, "tunB",
                        identity="hq-b"),
        }  # fmt: skip
        # the service: Bob's server without HQ's old connector, then one instance per member
        world.restart_vpn_service(
            ServiceConfig(
                addresses={"branch": BRANCH.connector_vpn_ip},
                routes={"branch": [BRANCH.subnet], "hq": [HQ.subnet]},
            )
        )
        lab.run(world.vpn, "ip", "route", "del", HQ.subnet, "dev", "tun0")
        # answers may come back through the other tunnel than their question went out of; the
        # multipath route hashes each flow by its addresses and ports
        for key in ("all", "default"):
            lab.run(world.vpn, "sysctl", "-q", "-w", f"net.ipv4.conf.{key}.rp_filter=0")
        lab.run(world.vpn, "sysctl", "-q", "-w", "net.ipv4.fib_multipath_hash_policy=1")
        self.service.mkdir(exist_ok=True)
        script = directory / "service-route.sh"
        script.write_text(ROUTE_SCRIPT.format(subnet=HQ.subnet, state=self.service))
        script.chmod(0o755)
        for m in self.members.values():
            self._service_instance(m, script)
        watched = " ".join(f"{self.dir / f'server-{m.name}.log'}:{m.device}"
                           for m in self.members.values())  # fmt: skip
        lab.run(world.vpn, "sh", "-c",
                f"{sys.executable} {HERE / 'service_watch.py'} {script} {watched} "
                f">{self.service / 'watch.log'} 2>&1 &")  # fmt: skip
        self._carol()
        # the cloud, then the connectors
        state = directory / "cloud"
        state.mkdir(exist_ok=True)
        self.routes_log = state / "routes.log"
        lab.run(
            HQ.router,
            "sh",
            "-c",
            f"LAB_PROBE_SECONDS={self.probe:g} "
            f"{sys.executable} {HERE / 'cloud_router.py'} {self.cloud} {state} {HQ.router_ip} "
            f"{API_PORT} "
            f"{HQ.connector_ip} {_b_ip()} "
            + " ".join(str(d) for d in planned_routes(HQ))
            + f" >{state / 'cloud.log'} 2>&1 &",
        )
        seed = _wait_file(state / "seed.json", state / "cloud.log")
        self.members["a"].interface, self.members["b"].interface = seed["interfaces"]
        self.subnet = str(seed.get("subnet", ""))
        plan = lab_plan(hq=self.mode)
        self.setup = planned_setup_script(HQ, plan)
        self.ingress = [str(c) for c in planned_connector_ingress(HQ, plan)]
        for m in self.members.values():
            self.cloud_filter(m, self.ingress)
            self.start(m)
        # the VPN clients' flows to the HR app, once the answers have a way back (on Azure and
        # GCP: once a member has claimed and the balancer's probe has found it)
        deadline = time.monotonic() + 60
        while not self.route_moves() and time.monotonic() < deadline:
            time.sleep(0.2)
        lab.run(HQ.server, "sh", "-c",
                f"{sys.executable} {FLOWS} serve {UDP_PORT} {TCP_PORT} >/dev/null 2>&1 &")  # fmt: skip
        time.sleep(0.2)
        for who, ns in (("bob", world.bob), ("carol", self.carol)):
            log = directory / f"flows-{who}.log"
            self.flow_logs.append(log)
            lab.run(ns, "sh", "-c",
                    f"{sys.executable} {FLOWS} send {HQ.server_ip} {UDP_PORT} {TCP_PORT} "
                    f"{self.udp_flows} {self.tcp_flows} {who} {log} {self.flow_interval:g} "
                    ">/dev/null 2>&1 &")  # fmt: skip

    def _carol(self) -> None:
        """A second VPN client, on the internet beside Bob, connected to the service."""
        world, lab = self.world, self.world.lab
        self.carol = lab.ns("carol")
        lab.run(world.inet, "ip", "link", "del", "to-carol", check=False)
        lab.link(world.inet, "to-carol", "198.51.100.17/30", self.carol, "wan0",
                 "198.51.100.18/30")  # fmt: skip
        lab.run(self.carol, "ip", "route", "add", "default", "via", "198.51.100.17")
        make_cert(world.pki, "carol")
        (world.dir / "ccd" / "carol").write_text(
            f'ifconfig-push {CAROL_VPN_IP} 255.224.0.0\npush "route 10.0.0.0 255.255.192.0"\n'
        )
        profile = client_profile(world.pki, "carol", VPN_SERVER)
        world.start_openvpn(self.carol, profile, CAROL_VPN_IP, self.dir / "carol.log")

    def _service_instance(self, m: Member, script: Path) -> None:
        world = self.world
        ccd = self.dir / f"ccd-{m.name}"
        ccd.mkdir(exist_ok=True)
        self._identity(m)
        server = _gateway(m)
        conf = self.dir / f"server-{m.name}.conf"
        pki = world.pki
        ping = max(1, int(self.detection // 6))  # OpenVPN's `keepalive 10 60`: a ping every 10 s
        conf.write_text(
            f"port {m.port}\nproto udp\ndev {m.device}\ndev-type tun\nmode server\ntls-server\n"
            f"topology subnet\nifconfig {server} 255.255.255.252\n"
            f'push "topology subnet"\npush "route-gateway {server}"\n'
            f"ca {pki}/ca.crt\ncert {pki}/server.crt\nkey {pki}/server.key\ndh none\n"
            f"client-config-dir {ccd}\nccd-exclusive\n"
            f'ping {ping}\nping-restart {self.detection:g}\npush "ping {ping}"\n'
            f'push "ping-restart {self.detection:g}"\n'
            f'script-security 2\nclient-connect "{script} add"\n'
            f'client-disconnect "{script} del"\nverb 3\n'
        )
        world.start_openvpn(world.vpn, conf, server, self.dir / f"server-{m.name}.log")

    def _identity(self, m: Member) -> None:
        """`m`'s certificate and profile, and the service's entry for it (its address, HQ's
        subnet behind it): a new identity is a new connector of the network."""
        world = self.world
        make_cert(world.pki, m.identity)
        world.profiles[m.identity] = client_profile(world.pki, m.identity, VPN_SERVER,
                                                    port=m.port)  # fmt: skip
        (self.dir / f"ccd-{m.name}" / m.identity).write_text(
            f"ifconfig-push {m.site.connector_vpn_ip} 255.255.255.252\n"
            "iroute 10.0.0.0 255.255.192.0\n"
            'push "route 100.96.0.0 255.224.0.0"\npush "route 192.168.0.0 255.255.252.0"\n'
        )

    def cloud_filter(self, m: Member, sources: list[str]) -> None:
        """The cloud's stateful filter on `m`'s interface, as security groups (and NSGs,
        firewall rules, OCI's NSGs) are: what comes in is admitted if it answers what went out
        through this interface (its connection tracked), or if a rule admits its source;
        everything else is dropped. In `m`'s namespace, before its own routing sees it."""
        lab, ns = self.world.lab, m.site.connector
        lab.run(ns, "iptables", "-t", "mangle", "-N", "LAB-CLOUD", check=False)
        lab.run(ns, "iptables", "-t", "mangle", "-F", "LAB-CLOUD")
        lab.run(ns, "iptables", "-t", "mangle", "-A", "LAB-CLOUD", "-m", "conntrack",
                "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")  # fmt: skip
        for source in sources:
            lab.run(ns, "iptables", "-t", "mangle", "-A", "LAB-CLOUD", "-s", source, "-j",
                    "ACCEPT")  # fmt: skip
        lab.run(ns, "iptables", "-t", "mangle", "-A", "LAB-CLOUD", "-j", "DROP")
        hook = ("PREROUTING", "-i", "lan0", "-j", "LAB-CLOUD")
        if lab.run(ns, "iptables", "-t", "mangle", "-C", *hook, check=False).returncode != 0:
            lab.run(ns, "iptables", "-t", "mangle", "-A", *hook)

    def forget_connections(self) -> None:
        """Every member's tracked connections forgotten (what a new VM starts with)."""
        for m in self.members.values():
            self.world.lab.run(m.site.connector, "conntrack", "-F", check=False)

    # --- a member's life --------------------------------------------------------------------

    def start(self, m: Member, *, watchdog: bool = True) -> None:
        """Its setup script (which starts its tunnel), then its watchdog. A tunnel that does
        not come up is tried once more, and what the path looked like is kept for the report
        (seen twice in CI; likely the bridge's MAC changing under the hosts' ARP caches when
        the second connector joined, which world.py now prevents)."""
        m.lives += 1
        site = self._as_identity(m)
        try:
            run_setup_script(self.world, site, self.setup)
        except AssertionError as first:
            seen = self._path_report(m)
            for pid in self.world.lab.pids(m.site.connector):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            try:
                run_setup_script(self.world, site, self.setup)
            except AssertionError as second:
                raise AssertionError(f"{second}\nfirst try: {first}\n{seen}") from None
            FIGURES_NOTES.append(
                f"connector {m.name}: its tunnel came up on the second try\n{seen}"
            )
        if watchdog:  # (a single connector, the replacement lab's, has none)
            self.start_watchdog(m)

    def start_watchdog(self, m: Member) -> None:
        """Its watchdog, as the VM's unit runs it."""
        site = self._as_identity(m)
        other = next(o for o in self.members.values() if o is not m)
        root = self.world.dir / f"{site.name}-root"
        pidfile = root / "run" / "connector-provisioner-openvpn.pid"
        settings = Settings(
            cloud=self.cloud,
            network="hq",
            region={"aws": "us-east-1", "oci": "eu-frankfurt-1"}.get(self.cloud, ""),
            subnet=self.subnet,
            member=0 if m.name == "a" else 1,
            peer=other.site.connector_ip if self.cloud in ("azure", "gcp") else "",
            interface=m.interface,
            address=m.site.connector_ip,
            interval=self.interval,
            fails=self.fails,
            endpoint=f"http://{HQ.router_ip}:{API_PORT}",
            # the lab's VM has no systemd: its tunnel is the setup script's OpenVPN
            # (stopped: once it has forwarded what was in flight and exited, as systemctl stop)
            tunnel_stop=[
                "sh",
                "-c",
                f'p="$(cat {pidfile})"; kill -TERM "$p"; '
                'while kill -0 "$p" 2>/dev/null; do sleep 0.2; done',
            ],
            tunnel_start=["bash", str(self.world.dir / f"{site.name}-setup.sh")],
            drain_file=str(self.drain_file(m)),
            settle=self.probe + 1 if self.cloud in ("azure", "gcp") else 0.5,
        )
        config = self.dir / f"watchdog-{m.name}.json"
        config.write_text(json.dumps(settings.__dict__))
        env = {**os.environ, **AWS_ENV, "ROOT": str(root),
               "PROFILE": str(self.world.profiles[site.name])}  # fmt: skip
        self.world.lab.run(
            m.site.connector,
            "sh",
            "-c",
            f"{sys.executable} {self._watchdog()} {config} "
            f">>{self.dir / f'watchdog-{m.name}.log'} 2>&1 &",
            env=env,
        )

    def _watchdog(self) -> Path:
        """The watchdog as this cloud's VMs get it (bootstrap.watchdog_source): its core and the
        cloud's mechanism in one script."""
        from provisioner.bootstrap import watchdog_source

        script = self.dir / WATCHDOG.name
        if not script.exists():
            script.write_text(watchdog_source(self.cloud))
        return script

    def _as_identity(self, m: Member) -> Site:
        """`m`'s host as the setup script is run for it: its current identity's profile."""
        site = copy.copy(m.site)
        site.name = m.identity
        return site

    def drain_file(self, m: Member) -> Path:
        return self.dir / f"drain-{m.name}"

    def _path_report(self, m: Member) -> str:
        """The connector's way to the VPN service, as each hop has it."""
        lab, out = self.world.lab, []
        for ns, cmd in (
            (m.site.connector, ["ip", "-4", "addr"]),
            (m.site.connector, ["ip", "route"]),
            (m.site.connector, ["ip", "neigh"]),
            (HQ.router, ["ip", "link", "show", "br0"]),
            (HQ.router, ["ping", "-c", "1", "-W", "1", VPN_SERVER]),
            (m.site.connector, ["iptables-save"]),
            (m.site.connector, ["ping", "-c", "1", "-W", "1", VPN_SERVER]),
            (HQ.router, ["ip", "route"]),
            (HQ.router, ["iptables-save", "-t", "nat"]),
            (self.world.vpn, ["ss", "-uanp"]),
        ):
            run = lab.run(ns, *cmd, check=False)
            out.append(f"[{ns}] {' '.join(cmd)} -> {run.returncode}\n{run.stdout}{run.stderr}")
        return "\n".join(out)

    def kill_vm(self, m: Member) -> None:
        """The VM gone: every process of it killed, its interface down."""
        lab = self.world.lab
        lab.run(m.site.connector, "ip", "link", "set", "lan0", "down")
        for pid in lab.pids(m.site.connector):
            with contextlib.suppress(ProcessLookupError):  # (one of its short-lived ones, gone)
                os.kill(pid, 9)

    def shut_down(self, m: Member) -> None:
        """The VM shut down gracefully, as the clouds' deletes do or apply makes them do (an OS
        shutdown first): systemd stops its watchdog first, which drains it (the other member
        takes the routes or front, then its tunnel closes with an exit notice); then its
        OpenVPN, if still running, stopped as systemd would; then the VM gone."""
        for name in (WATCHDOG.name, "openvpn"):  # the watchdog, then the VPN client
            self._stop_all(m, name, 40 if name == WATCHDOG.name else 15)
        self.kill_vm(m)

    def _stop_all(self, m: Member, command: str, seconds: float) -> None:
        pids = [p for p in self.world.lab.pids(m.site.connector) if _command(p).startswith(command)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        deadline = time.monotonic() + seconds
        while any(_command(p).startswith(command) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop_watchdog(self, m: Member) -> None:
        """Its watchdog gone at once (a single connector has none): no drain."""
        for pid in self.world.lab.pids(m.site.connector):
            if _command(pid).startswith(WATCHDOG.name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)

    def revive_vm(self, m: Member, *, new_identity: bool = False, watchdog: bool = True) -> None:
        """The VM up again (its tracked connections gone with its old life); with
        `new_identity`, as a new VM with a new connector profile (a replacement)."""
        lab = self.world.lab
        self.drain_file(m).unlink(missing_ok=True)
        lab.run(m.site.connector, "conntrack", "-F", check=False)
        if new_identity:
            m.identity = f"hq-{m.name}{m.lives + 1}"
            self._identity(m)
        lab.run(m.site.connector, "ip", "link", "set", "lan0", "up")
        lab.run(m.site.connector, "ip", "route", "replace", "default", "via", HQ.router_ip)
        lab.run(m.site.connector, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.start(m, watchdog=watchdog)

    def cut_tunnel(self, m: Member) -> None:
        """The VM up, the VPN service unreachable from it."""
        for chain, way in (("OUTPUT", "--dport"), ("INPUT", "--sport")):
            self.world.lab.run(m.site.connector, "iptables", "-I", chain, "-p", "udp", way,
                               str(m.port), "-j", "DROP")  # fmt: skip

    def mend_tunnel(self, m: Member) -> None:
        for chain, way in (("OUTPUT", "--dport"), ("INPUT", "--sport")):
            self.world.lab.run(m.site.connector, "iptables", "-D", chain, "-p", "udp", way,
                               str(m.port), "-j", "DROP")  # fmt: skip

    def break_forwarding(self, m: Member) -> None:
        """The VM up and its tunnel up, but it forwards nothing (IPv4 forwarding turned off:
        an image's hardening, a package resetting sysctl)."""
        self.world.lab.run(m.site.connector, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")

    def mend_forwarding(self, m: Member) -> None:
        self.world.lab.run(m.site.connector, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def drain(self, m: Member) -> None:
        """A planned change asks `m` to leave (what apply's drain marker does on a VM)."""
        self.drain_file(m).write_text("planned change\n")

    # --- what the world shows -------------------------------------------------------------

    def active(self) -> Member:
        """The member HQ's router sends the VPN clients' answers to."""
        out = self.world.lab.run(HQ.router, "ip", "route", "get", "100.96.1.10").stdout
        return next(m for m in self.members.values() if f"via {m.site.connector_ip} " in out)

    def connected(self) -> set[str]:
        """The members the service sends HQ's traffic to now (its multipath route's hops)."""
        out = self.world.lab.run(self.world.vpn, "ip", "route", "show", HQ.subnet).stdout
        return {m.name for m in self.members.values() if f"dev {m.device} " in out + " "}

    def service_events(self) -> list[tuple[float, str, str]]:
        """(time, add|del, member) for each session the service started or ended."""
        log = self.service / "events.log"
        names = {m.device: m.name for m in self.members.values()}
        out = []
        for line in log.read_text().splitlines() if log.exists() else []:
            at, what, device = line.split()
            out.append((float(at), what, names.get(device, device)))
        return out

    def route_moves(self) -> list[tuple[float, str]]:
        """(time, member) each time HQ's router began sending the VPN's answers elsewhere."""
        names = {m.site.connector_ip: m.name for m in self.members.values()}
        out: list[tuple[float, str]] = []
        for line in self.routes_log.read_text().splitlines() if self.routes_log.exists() else []:
            at, destination, target = line.split()
            if destination.startswith("100.96.") and (not out or out[-1][1] != names[target]):
                out.append((float(at), names[target]))
        return out

    def healthy(self, m: Member) -> bool:
        """Its health endpoint, asked from HQ's router: 200 (its tunnel is up)."""
        return self.health(m).get("code") == 200

    def health(self, m: Member) -> dict[str, object]:
        """What its watchdog's health endpoint says (its JSON, and the status as `code`)."""
        # bash's own TCP, not a Python process per probe (a matrix asks ~120 times: ~6 s of
        # CPU as Python); the watchdog answers HTTP/1.0 and closes
        ask = (
            f"exec 3<>/dev/tcp/{m.site.connector_ip}/8181 || exit 0; "
            "printf 'GET /health HTTP/1.0\\r\\nHost: lab\\r\\n\\r\\n' >&3; cat <&3"
        )
        run = self.world.lab.run(HQ.router, "timeout", "1", "bash", "-c", ask, check=False)
        head, _, body = run.stdout.partition("\n\n")  # (text mode: CR LF read as LF)
        status = head.split(" ", 2)
        try:
            return {**json.loads(body), "code": int(status[1])}
        except (ValueError, IndexError, TypeError):
            return {}

    def answers(self, since: float = 0.0) -> list[tuple[str, int, float, float]]:
        """(flow, seq, sent, answered) for every answer the clients got at `since` or later.
        The logs are read on from where the last call left them (a bench's logs grow by a
        million lines an hour: read whole every tenth of a second, they starve the lab)."""
        out = []
        for log in self.flow_logs:
            seen = self._read_log(log)
            start = bisect.bisect_left(seen.at, since)
            out += seen.answers[start:]
        return out

    def _read_log(self, log: Path) -> _Log:
        seen = self._logs.setdefault(log, _Log())
        if log.exists():
            with log.open("rb") as f:
                f.seek(seen.offset)
                data = f.read()
            whole = data.rfind(b"\n") + 1  # a line still being written waits for the next call
            seen.offset += whole
            for line in data[:whole].decode().splitlines():
                words = line.split()
                if len(words) == 4 and words[1] != "reset":
                    answer = (words[0], int(words[1]), float(words[2]), float(words[3]))
                    # each client logs in the order it got its answers
                    seen.answers.append(answer)
                    seen.at.append(answer[3])
                elif len(words) == 3 and words[1] == "port":
                    seen.ports[int(words[2])] = words[0]
                elif len(words) == 3 and words[1] == "reset":
                    seen.resets.append(words[0])
        return seen

    def flow_name(self, source: str, port: int) -> str:
        """The clients' name for the flow from `source`:`port` ("" if none)."""
        client = {BOB_VPN_IP: "bob", CAROL_VPN_IP: "carol"}.get(source)
        for log in self.flow_logs:
            flow = self._read_log(log).ports.get(port, "")
            if flow.startswith(f"{client}-"):
                return flow
        return ""

    def resets(self) -> list[str]:
        """The TCP flows that the network reset."""
        return [flow for log in self.flow_logs for flow in self._read_log(log).resets]

    def close(self) -> None:
        lab, world = self.world.lab, self.world
        for ns in (
            HQ.router,
            HQ.server,
            world.bob,
            *(m.site.connector for m in self.members.values()),
        ):
            for pid in lab.pids(ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
        lab.run(HQ.router, "ip", "route", "flush", "proto", "static", check=False)
        lab.run(HQ.connector, "iptables", "-t", "mangle", "-D", "PREROUTING", "-i", "lan0", "-j",
                "LAB-CLOUD", check=False)  # fmt: skip
        for ns in (self.b_ns, self.carol):  # (their veths' ends go with them)
            if ns:
                lab.drop(ns)
        connector_reset(world, HQ)
        world.restart_vpn_service()
        # the app servers' echo servers were killed with the flow's: back as the lab has them
        from .world import ECHO

        lab.run(HQ.server, "sh", "-c", f"{sys.executable} {ECHO} 80 >/dev/null 2>&1 &")


def _command(pid: int) -> str:
    """What a process runs: its program's name, or for a Python script the script's name
    (whatever the interpreter is called here: python, python3, python3.11)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    words = [Path(a.decode(errors="replace")).name for a in argv if a]
    if words and words[0].startswith("python") and len(words) > 1:
        return words[1]
    return words[0] if words else ""


def _b_ip() -> str:
    return "10.0.0.11"


def _gateway(m: Member) -> str:
    last = int(m.site.connector_vpn_ip.rsplit(".", 1)[1])
    return m.site.connector_vpn_ip.rsplit(".", 1)[0] + f".{last - 1}"


def _site(name: str, ns: str, ip: str, vpn_ip: str) -> Site:
    site = copy.copy(HQ)
    site.name, site.connector, site.connector_ip, site.connector_vpn_ip = name, ns, ip, vpn_ip
    return site


def _wait_file(path: Path, log: Path, seconds: float = 60) -> dict[str, list[str]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text()))
        time.sleep(0.1)
    raise AssertionError(
        f"the lab's cloud did not start:\n{log.read_text() if log.exists() else ''}"
    )
