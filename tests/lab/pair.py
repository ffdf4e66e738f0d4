"""HQ with a connector pair (`connector.ha`), in the seed's lab world:

- **the cloud**: the cloud API's fake on HQ's router (`cloud_router.py`: moto for AWS, the
  fake OCI for OCI) holds HQ's route table; the router follows it. The pair's watchdogs
  (`provisioner/watchdog.py`, run as the VM runs it) call it there, as they would call the
  cloud.
- **the connectors**: `a` is HQ's connector host, `b` a second host on HQ's LAN switch. Each
  runs the rendered setup script and its watchdog.
- **the VPN service**: one network with two connectors, as CloudConnexa has it. Each connector
  has its own tunnel (a server instance per connector: tunA, tunB), each may bring HQ's subnet
  back (`iroute`), and the service's own routing table sends HQ's subnet to a connected one:
  `a` first (metric 10), else `b`. A connector whose tunnel falls silent for 3 s is dropped
  (ping-restart 3), and its route with it. Answers from HQ come back through either tunnel,
  whichever one HQ's route table sends them to.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from provisioner.watchdog import Settings

from .pki import client_profile, make_cert
from .plan import NO_NAT, lab_plan, planned_routes, planned_setup_script
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
WATCHDOG = HERE.parent.parent / "provisioner" / "watchdog.py"
API_PORT = 5000
FLOW_PORT = 7007
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}
FIGURES_NOTES: list[str] = []  # what the lab had to retry, for the report

ROUTE_SCRIPT = """#!/bin/sh
# the service's routing table: HQ's subnet to a connected connector (OpenVPN sets $dev)
case "$1" in
  add) ip route replace {subnet} dev "$dev" metric "$2" ;;
  del) ip route del {subnet} dev "$dev" 2>/dev/null || true ;;
esac
exit 0
"""


@dataclass
class Member:
    name: str  # "a" or "b"
    site: Site  # its host, as the lab's helpers take it
    port: int  # its tunnel's server instance
    device: str  # the server's end of its tunnel
    metric: int  # the service's preference
    interface: str = ""  # its ENI (AWS) or VNIC (OCI) in the lab's cloud


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
    ) -> None:
        """`probe`: how often the lab's load balancer (Azure, GCP) probes the pair; the clouds'
        resources keep their documented 5 s, the test may follow them faster."""
        self.world, self.dir, self.cloud, self.probe = world, directory, cloud, probe
        self.subnet = ""  # OCI: where the floating private IP is
        self.b_ns = ""  # the second connector's host: gone with the pair
        self.interval, self.fails = interval, fails
        self.members: dict[str, Member] = {}
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
        lab.link(HQ.router, "p-c2", None, b_ns, "lan0", f"{_b_ip()}/{HQ.prefix}")
        lab.run(HQ.router, "ip", "link", "set", "p-c2", "master", "br0")
        lab.run(b_ns, "ip", "route", "add", "default", "via", HQ.router_ip)
        lab.run(b_ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.accept_redirects=0")
        self.members = {
            "a": Member("a", _site("hq-a", HQ.connector, HQ.connector_ip, "100.127.0.2"), 1195,
                        "tunA", 10),
            "b": Member("b", _site("hq-b", b_ns, _b_ip(), "100.127.0.6"), 1196, "tunB", 20),
        }  # fmt: skip
        # the service: Bob's server without HQ's old connector, then one instance per member
        world.restart_vpn_service(
            ServiceConfig(
                addresses={"branch": BRANCH.connector_vpn_ip},
                routes={"branch": [BRANCH.subnet], "hq": [HQ.subnet]},
            )
        )
        lab.run(world.vpn, "ip", "route", "del", HQ.subnet, "dev", "tun0")
        # answers may come back through the other tunnel than their question went out of
        for key in ("all", "default"):
            lab.run(world.vpn, "sysctl", "-q", "-w", f"net.ipv4.conf.{key}.rp_filter=0")
        script = directory / "service-route.sh"
        script.write_text(ROUTE_SCRIPT.format(subnet=HQ.subnet))
        script.chmod(0o755)
        for m in self.members.values():
            self._service_instance(m, script)
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
        self.setup = planned_setup_script(HQ, lab_plan(hq=NO_NAT))
        for m in self.members.values():
            self.start(m)
        # Bob's flow to the HR app
        self.flow_log = directory / "flow.log"
        lab.run(HQ.server, "sh", "-c",
                f"{sys.executable} {HERE / 'udp_flow.py'} serve {FLOW_PORT} >/dev/null 2>&1 &")  # fmt: skip
        lab.run(world.bob, "sh", "-c",
                f"{sys.executable} {HERE / 'udp_flow.py'} send {HQ.server_ip} {FLOW_PORT} "
                f"{self.flow_log} >/dev/null 2>&1 &")  # fmt: skip

    def _service_instance(self, m: Member, script: Path) -> None:
        world = self.world
        make_cert(world.pki, m.site.name)
        world.profiles[m.site.name] = client_profile(world.pki, m.site.name, VPN_SERVER,
                                                     port=m.port)  # fmt: skip
        ccd = self.dir / f"ccd-{m.name}"
        ccd.mkdir(exist_ok=True)
        server = _gateway(m)
        (ccd / m.site.name).write_text(
            f"ifconfig-push {m.site.connector_vpn_ip} 255.255.255.252\n"
            "iroute 10.0.0.0 255.255.192.0\n"
            'push "route 100.96.0.0 255.224.0.0"\npush "route 192.168.0.0 255.255.252.0"\n'
        )
        conf = self.dir / f"server-{m.name}.conf"
        pki = world.pki
        conf.write_text(
            f"port {m.port}\nproto udp\ndev {m.device}\ndev-type tun\nmode server\ntls-server\n"
            f"topology subnet\nifconfig {server} 255.255.255.252\n"
            f'push "topology subnet"\npush "route-gateway {server}"\n'
            f"ca {pki}/ca.crt\ncert {pki}/server.crt\nkey {pki}/server.key\ndh none\n"
            f"client-config-dir {ccd}\nccd-exclusive\n"
            'ping 1\nping-restart 3\npush "ping 1"\npush "ping-restart 3"\n'
            f'script-security 2\nclient-connect "{script} add {m.metric}"\n'
            f'client-disconnect "{script} del"\nverb 3\n'
        )
        world.start_openvpn(world.vpn, conf, server, self.dir / f"server-{m.name}.log")

    # --- a member's life --------------------------------------------------------------------

    def start(self, m: Member) -> None:
        """Its setup script (which starts its tunnel), then its watchdog. A tunnel that does
        not come up is tried once more, and what the path looked like is kept for the report
        (seen twice in CI; likely the bridge's MAC changing under the hosts' ARP caches when
        the second connector joined, which world.py now prevents)."""
        try:
            run_setup_script(self.world, m.site, self.setup)
        except AssertionError as first:
            seen = self._path_report(m)
            for pid in self.world.lab.pids(m.site.connector):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            try:
                run_setup_script(self.world, m.site, self.setup)
            except AssertionError as second:
                raise AssertionError(f"{second}\nfirst try: {first}\n{seen}") from None
            FIGURES_NOTES.append(
                f"connector {m.name}: its tunnel came up on the second try\n{seen}"
            )
        other = next(o for o in self.members.values() if o is not m)
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
        )
        config = self.dir / f"watchdog-{m.name}.json"
        config.write_text(json.dumps(settings.__dict__))
        self.world.lab.run(
            m.site.connector,
            "sh",
            "-c",
            f"{sys.executable} {WATCHDOG} {config} >>{self.dir / f'watchdog-{m.name}.log'} 2>&1 &",
            env={**os.environ, **AWS_ENV},
        )

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

    def revive_vm(self, m: Member) -> None:
        lab = self.world.lab
        lab.run(m.site.connector, "ip", "link", "set", "lan0", "up")
        lab.run(m.site.connector, "ip", "route", "replace", "default", "via", HQ.router_ip)
        self.start(m)

    def cut_tunnel(self, m: Member) -> None:
        """The VM up, the VPN service unreachable from it."""
        for chain, way in (("OUTPUT", "--dport"), ("INPUT", "--sport")):
            self.world.lab.run(m.site.connector, "iptables", "-I", chain, "-p", "udp", way,
                               str(m.port), "-j", "DROP")  # fmt: skip

    def mend_tunnel(self, m: Member) -> None:
        for chain, way in (("OUTPUT", "--dport"), ("INPUT", "--sport")):
            self.world.lab.run(m.site.connector, "iptables", "-D", chain, "-p", "udp", way,
                               str(m.port), "-j", "DROP")  # fmt: skip

    # --- what the world shows -------------------------------------------------------------

    def active(self) -> Member:
        """The member HQ's router sends Bob's answers to."""
        out = self.world.lab.run(HQ.router, "ip", "route", "get", BOB_VPN_IP).stdout
        return next(m for m in self.members.values() if f"via {m.site.connector_ip} " in out)

    def healthy(self, m: Member) -> bool:
        """Its health endpoint, asked from its peer: 200 (its tunnel is up)."""
        other = next(o for o in self.members.values() if o is not m)
        code = (
            "import urllib.request,sys\n"
            f"sys.exit(0 if urllib.request.urlopen('http://{m.site.connector_ip}:8181/health',"
            "timeout=1).status == 200 else 1)\n"
        )
        run = self.world.lab.run(other.site.connector, sys.executable, "-c", code, check=False)
        return run.returncode == 0

    def answers(self) -> list[tuple[int, float, float]]:
        if not self.flow_log.exists():
            return []
        out = []
        for line in self.flow_log.read_text().splitlines():
            seq, sent, answered = line.split()
            out.append((int(seq), float(sent), float(answered)))
        return out

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
        if self.b_ns:  # (its veth's end in the router's bridge goes with it)
            lab.drop(self.b_ns)
        connector_reset(world, HQ)
        world.restart_vpn_service()
        # the app servers' echo servers were killed with the flow's: back as the lab has them
        from .world import ECHO

        lab.run(HQ.server, "sh", "-c", f"{sys.executable} {ECHO} 80 >/dev/null 2>&1 &")


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
