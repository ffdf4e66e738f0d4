"""The seed's world in network namespaces: the VPN service (an OpenVPN server on 100.96.0.0/11
routing each network's subnets to its connector), Bob, the HQ Network (router that NATs to the
"internet", HR app server, connector host) and the "internet" (documentation addresses only).
Nothing is linked to the host's network."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from provisioner.model import CONNECTOR_SOURCE, IngressRule

from .netns import Lab
from .pki import client_profile, make_ca, make_cert

VPN_SERVER = "198.51.100.10"
BOB_VPN_IP = "100.96.1.10"
# a second address of Bob's, in another part of the VPN range (its own /24, routed to him by
# `iroute`): the doctor's range verdicts are judged from both parts
BOB_ALT_IP = "100.96.8.10"
BOB_ALT = "100.96.8.0/24"
HQ_CONNECTOR_VPN_IP = "100.96.0.100"
ECHO = Path(__file__).with_name("echo_server.py")


def _mask(net: str) -> str:
    n = IPv4Network(net)
    return f"{n.network_address} {n.netmask}"


class Site:
    """One of the seed's networks: router (NAT to the internet), connector host, one server."""

    def __init__(self, name: str, subnet: str, wan: str, connector_vpn_ip: str) -> None:
        net = IPv4Network(subnet)
        self.name = name
        self.subnet = subnet
        self.router_ip = str(net.network_address + 1)
        self.connector_ip = str(net.network_address + 10)
        self.server_ip = str(net.network_address + 20)
        self.prefix = net.prefixlen
        self.wan = wan  # the router's /30 towards the internet, as "inet-side/router-side"
        self.connector_vpn_ip = connector_vpn_ip
        self.router = self.connector = self.server = ""


HQ = Site("hq", "10.0.0.0/18", "198.51.100.1/198.51.100.2", HQ_CONNECTOR_VPN_IP)
BRANCH_CONNECTOR_VPN_IP = "100.96.1.44"
BRANCH = Site("branch", "192.168.0.0/22", "198.51.100.5/198.51.100.6", BRANCH_CONNECTOR_VPN_IP)
WEB = "203.0.113.10"


@dataclass
class ServiceConfig:
    """What the VPN service knows, by the connectors' certificate names (the networks'):
    each connector's VPN address, the subnets the service sends it, and which connector takes
    the VPN's internet traffic."""

    addresses: dict[str, str]
    routes: dict[str, list[str]]
    egress: str | None = None


def seed_service_config() -> ServiceConfig:
    """The seed's service, as its text describes it: written by hand."""
    return ServiceConfig(
        addresses={"hq": HQ_CONNECTOR_VPN_IP, "branch": BRANCH_CONNECTOR_VPN_IP},
        routes={"hq": [HQ.subnet], "branch": [BRANCH.subnet]},
        egress="hq",
    )


class SeedWorld:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.lab = Lab("w")
        lab = self.lab
        self.sites = {s.name: s for s in (HQ, BRANCH)}
        self.inet, self.vpn, self.bob, self.web = (
            lab.ns("inet"),
            lab.ns("vpn"),
            lab.ns("bob"),
            lab.ns("web"),
        )
        # the internet: a router joining the service, Bob and the sites' routers
        lab.link(self.inet, "to-vpn", "198.51.100.9/30", self.vpn, "wan0", f"{VPN_SERVER}/30")
        lab.link(self.inet, "to-bob", "198.51.100.13/30", self.bob, "wan0", "198.51.100.14/30")
        lab.run(self.inet, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        for ns, gw in ((self.vpn, "198.51.100.9"), (self.bob, "198.51.100.13")):
            lab.run(ns, "ip", "route", "add", "default", "via", gw)
        for site in self.sites.values():
            self._site(site)
        # the internet server hangs off HQ's router only: the one way to it is through HQ
        lab.link(HQ.router, "wan1", "203.0.113.1/24", self.web, "wan0", f"{WEB}/24")
        lab.run(self.web, "ip", "route", "add", "default", "via", "203.0.113.1")
        self.nat_out(HQ.router, "wan1")
        self._pki()
        self._start_vpn_service()
        for ns in (HQ.server, BRANCH.server, self.web):
            lab.run(ns, "sh", "-c", f"{sys.executable} {ECHO} 80 >/dev/null 2>&1 &")

    def _site(self, site: Site) -> None:
        lab = self.lab
        site.router = lab.ns(f"{site.name[:2]}r")
        site.connector = lab.ns(f"{site.name[:2]}c")
        site.server = lab.ns(f"{site.name[:2]}s")
        inet_side, router_side = site.wan.split("/")
        lab.link(
            self.inet,
            f"to-{site.name[:2]}",
            f"{inet_side}/30",
            site.router,
            "wan0",
            f"{router_side}/30",
        )
        lab.run(site.router, "ip", "route", "add", "default", "via", inet_side)
        # a LAN switch (bridge) on the router joining the connector host and the server
        # a bridge takes the lowest MAC of its ports unless it has one of its own: a host added
        # later (a pair's second connector) would change the router's MAC under the hosts'
        # ARP caches, and their packets to it would be dropped until those entries expire
        mac = "02:00:00:00:%02x:01" % (1 if site.name == "hq" else 2)
        lab.run(site.router, "ip", "link", "add", "br0", "address", mac, "type", "bridge")
        lab.run(site.router, "ip", "addr", "add", f"{site.router_ip}/{site.prefix}", "dev", "br0")
        lab.run(site.router, "ip", "link", "set", "br0", "up")
        for host, port, addr in (
            (site.connector, "p-c", site.connector_ip),
            (site.server, "p-s", site.server_ip),
        ):
            lab.link(site.router, port, None, host, "lan0", f"{addr}/{site.prefix}")
            lab.run(site.router, "ip", "link", "set", port, "master", "br0")
            lab.run(host, "ip", "route", "add", "default", "via", site.router_ip)
        lab.run(site.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        # a cloud's route table never sends ICMP redirects: without this, a host told once to
        # use the connector directly would keep doing so after its route is gone
        for key in ("all", "default", "br0"):
            lab.run(site.router, "sysctl", "-q", "-w", f"net.ipv4.conf.{key}.send_redirects=0")
        for host in (site.connector, site.server):
            lab.run(host, "sysctl", "-q", "-w", "net.ipv4.conf.all.accept_redirects=0")
        # the router NATs everything it sends to the internet (seed egress step 10)
        self.nat_out(site.router, "wan0")

    def nat_out(self, router: str, interface: str) -> None:
        """The router NATs everything it sends out of `interface` (seed egress step 10)."""
        self.lab.run(
            router,
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            interface,
            "-j",
            "MASQUERADE",
        )

    def _pki(self) -> None:
        self.pki = self.dir / "pki"
        make_ca(self.pki)
        make_cert(self.pki, "server", server=True)
        for name in ("hq", "branch", "bob"):
            make_cert(self.pki, name)
        self.profiles = {
            n: client_profile(self.pki, n, VPN_SERVER) for n in ("hq", "branch", "bob")
        }

    def _start_vpn_service(self, config: ServiceConfig | None = None) -> None:
        """The VPN service as `config` says (default: the seed's, written by hand): each
        connector's fixed VPN address and the subnets routed to it (`iroute`, remote access
        hop 1), the other networks' routes pushed to each connector and all of them to Bob,
        and the egress network's connector as the VPN's way out (egress hop 1)."""
        config = config or seed_service_config()
        ccd = self.dir / "ccd"
        shutil.rmtree(ccd, ignore_errors=True)
        ccd.mkdir()
        every = [s for subnets in config.routes.values() for s in subnets]
        for name, address in config.addresses.items():
            mine = config.routes.get(name, [])
            body = f"ifconfig-push {address} 255.224.0.0\n"
            body += "".join(f"iroute {_mask(s)}\n" for s in mine)
            body += "".join(f'push "route {_mask(s)}"\n' for s in every if s not in mine)
            if config.egress == name:
                body += "iroute 0.0.0.0 0.0.0.0\n"
            (ccd / name).write_text(body)
        (ccd / "bob").write_text(
            f"ifconfig-push {BOB_VPN_IP} 255.224.0.0\n"
            + f"iroute {_mask(BOB_ALT)}\n"
            + "".join(f'push "route {_mask(s)}"\n' for s in every)
        )
        conf = self.dir / "server.conf"
        conf.write_text(
            # `server` refuses a /11; this is its expansion with the whole VPN range on tun0
            "port 1194\nproto udp\ndev tun0\nmode server\ntls-server\ntopology subnet\n"
            "ifconfig 100.96.0.1 255.224.0.0\nifconfig-pool 100.96.200.1 100.96.200.250 255.224.0.0\n"
            'push "topology subnet"\npush "route-gateway 100.96.0.1"\n'
            f"ca {self.pki}/ca.crt\ncert {self.pki}/server.crt\nkey {self.pki}/server.key\n"
            f"dh none\nclient-config-dir {ccd}\nkeepalive 2 10\nverb 3\n"
        )
        self.lab.run(self.vpn, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.start_openvpn(self.vpn, conf, "100.96.0.1", self.dir / "server.log")
        # the service's routing table: each network's subnets -> its connector
        for subnet in every:
            self.lab.run(self.vpn, "ip", "route", "add", subnet, "dev", "tun0")
        if config.egress:  # internet-bound VPN traffic -> the egress network's connector
            self.lab.run(self.vpn, "ip", "rule", "add", "iif", "tun0", "lookup", "100")
            self.lab.run(self.vpn, "ip", "route", "add", "default", "dev", "tun0", "table", "100")
        self.service = config

    def restart_vpn_service(self, config: ServiceConfig | None = None) -> None:
        """The service again, as `config` says; Bob reconnects. Connectors reconnect when their
        setup script runs again (each site's `connector_vpn_ip` is the config's address)."""
        for ns in (self.vpn, self.bob):
            for pid in self.lab.pids(ns):
                with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                    os.kill(pid, 9)
        time.sleep(0.2)
        self.lab.run(self.vpn, "ip", "rule", "del", "iif", "tun0", "lookup", "100", check=False)
        self.lab.run(self.vpn, "ip", "route", "flush", "table", "100", check=False)
        config = config or seed_service_config()
        for site in self.sites.values():
            site.connector_vpn_ip = config.addresses.get(site.name, site.connector_vpn_ip)
        self._start_vpn_service(config)
        self.connect_bob()

    def start_openvpn(self, ns: str, config: Path, address: str, log: Path) -> None:
        """OpenVPN in the background in `ns`; returns once its tunnel has `address`."""
        log.unlink(missing_ok=True)
        self.lab.run(ns, "openvpn", "--config", str(config), "--daemon", "--log", str(log))
        self.wait_tunnel(ns, address, log)

    def connect_bob(self) -> None:
        self.start_openvpn(self.bob, self.profiles["bob"], BOB_VPN_IP, self.dir / "bob.log")
        self.lab.run(self.bob, "ip", "addr", "add", f"{BOB_ALT_IP}/32", "dev", "tun0")
        # Bob answers too (the app's own connections to VPN clients, on the doctor's port); a
        # second one, while the first lives, cannot take the port and ends
        self.lab.run(self.bob, "sh", "-c", f"{sys.executable} {ECHO} 443 >/dev/null 2>&1 &")

    def wait_tunnel(self, ns: str, address: str, log: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = address in self.lab.run(ns, "ip", "-4", "addr", check=False).stdout
            if up and log.exists() and "Initialization Sequence Completed" in log.read_text():
                return
            time.sleep(0.2)
        raise AssertionError(
            f"no tunnel in {ns} after {timeout}s:\n{log.read_text() if log.exists() else ''}"
        )

    def http(
        self, ns: str, address: str, timeout: float = 3, source: str = "", port: int = 80
    ) -> str | None:
        """GET http://address/ from ns (from `source`, one of its addresses): the peer address
        the server saw, or None if unreachable."""
        code = (
            "import http.client, sys\n"
            "try:\n"
            f"    c = http.client.HTTPConnection('{address}', {port}, timeout={timeout}, "
            f"source_address=({source!r}, 0))\n"
            "    c.request('GET', '/'); print(c.getresponse().read().decode())\n"
            "except Exception as e:\n"
            "    print('FAIL', e); sys.exit(1)\n"
        )
        result = self.lab.run(ns, sys.executable, "-c", code, check=False, timeout=timeout + 5)
        return result.stdout.strip() if result.returncode == 0 else None

    def ping(self, ns: str, address: str) -> bool:
        return self.lab.run(ns, "ping", "-c", "1", "-W", "2", address, check=False).returncode == 0

    def close(self) -> None:
        self.lab.close()


def env_for(root: Path, profile: Path) -> dict[str, str]:
    return {**os.environ, "ROOT": str(root), "PROFILE": str(profile)}


def connector_reset(world: SeedWorld, site: Site) -> None:
    """Back to a plain host: no VPN client, no forwarding, no rules; the router without our routes."""
    lab, ns = world.lab, site.connector
    for pid in lab.pids(ns):
        with contextlib.suppress(ProcessLookupError):  # gone meanwhile
            os.kill(pid, 9)
    lab.run(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
    lab.run(ns, "iptables", "-t", "nat", "-F")
    lab.run(ns, "iptables", "-F")
    lab.run(site.router, "ip", "route", "flush", "proto", "static")
    time.sleep(0.2)  # the server notices the old session is gone on reconnect


def start_vpn_client_only(world: SeedWorld, site: Site) -> None:
    """The connector software alone, before any routing is enabled (seed step 3)."""
    world.start_openvpn(
        site.connector,
        world.profiles[site.name],
        site.connector_vpn_ip,
        world.dir / f"{site.name}-client.log",
    )


def run_setup_script(world: SeedWorld, site: Site, script: str) -> None:
    """The rendered setup script, for real, with ROOT and PROFILE so nothing touches the host."""
    root = world.dir / f"{site.name}-root"
    path = world.dir / f"{site.name}-setup.sh"
    path.write_text(script)
    log = root / "run/connector-provisioner-openvpn.log"
    log.unlink(missing_ok=True)
    world.lab.run(site.connector, "bash", str(path), env=env_for(root, world.profiles[site.name]))
    world.wait_tunnel(site.connector, site.connector_vpn_ip, log)


def add_router_routes(world: SeedWorld, site: Site, destinations: Iterable[IPv4Network]) -> None:
    """The planner's route-table entries for this network, as `ip route` on its router."""
    for dest in destinations:
        world.lab.run(
            site.router,
            "ip",
            "route",
            "add",
            str(dest),
            "via",
            site.connector_ip,
            "proto",
            "static",
        )


def enforce_security_group(world: SeedWorld, site: Site, rules: Iterable[IngressRule]) -> None:
    """The site's app server filters inbound packets as an AWS security group does: stateful
    (replies to what it sent are let in), an address rule admits the range it names, a group
    reference admits only the private addresses of the group's members (here the connector's
    own LAN address, never a source it forwards), everything else is dropped."""
    lab, ns = world.lab, site.server
    lab.run(ns, "iptables", "-N", "LAB-SG", check=False)
    lab.run(ns, "iptables", "-F", "LAB-SG")
    lab.run(ns, "iptables", "-A", "LAB-SG", "-i", "lo", "-j", "ACCEPT")
    lab.run(ns, "iptables", "-A", "LAB-SG", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
            "-j", "ACCEPT")  # fmt: skip
    for rule in rules:
        source = f"{site.connector_ip}/32" if rule.source == CONNECTOR_SOURCE else str(rule.source)
        match = ["-s", source]
        p = rule.ports
        if p.protocol != "all":
            match += ["-p", p.protocol]
            if p.first is not None:
                match += ["--dport", f"{p.first}:{p.last}"]
        lab.run(ns, "iptables", "-A", "LAB-SG", *match, "-j", "ACCEPT")
    lab.run(ns, "iptables", "-A", "LAB-SG", "-j", "DROP")
    if lab.run(ns, "iptables", "-C", "INPUT", "-j", "LAB-SG", check=False).returncode != 0:
        lab.run(ns, "iptables", "-A", "INPUT", "-j", "LAB-SG")


def open_security_group(world: SeedWorld, site: Site) -> None:
    """No filter on the app server (as the other lab tests expect)."""
    world.lab.run(site.server, "iptables", "-D", "INPUT", "-j", "LAB-SG", check=False)
    world.lab.run(site.server, "iptables", "-F", "LAB-SG", check=False)
