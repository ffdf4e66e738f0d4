"""The rendered connector setup script, run for real in a network namespace: forwarding and
rp_filter, the NAT rule with its local-subnet exceptions, persistence under ROOT, the VPN
client started from PROFILE, and a second run that changes nothing."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from ipaddress import IPv4Network as N
from pathlib import Path

import pytest
from conftest import desired_connector
from lab.netns import Lab, lab_available, remove_stale
from lab.pki import client_profile, make_ca, make_cert

from provisioner.bootstrap import render_setup_script
from provisioner.model import DesiredConnector

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(lab_available() is not None, reason=str(lab_available())),
]

LOCAL = (N("10.0.0.0/18"), N("10.64.0.0/16"))


def connector(**kw) -> DesiredConnector:
    return desired_connector(local_subnets=LOCAL, **kw)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[Lab, str, Path]]:
    """A connector host `c` on a LAN (lan0, 10.0.0.10/18) behind router `r` (10.0.0.1)."""
    remove_stale()
    lab = Lab("s")
    try:
        c, r = lab.ns("c"), lab.ns("r")
        lab.link(c, "lan0", "10.0.0.10/18", r, "lan0", "10.0.0.1/18")
        lab.run(c, "ip", "route", "add", "default", "via", "10.0.0.1")
        pki = tmp_path / "pki"
        make_ca(pki)
        make_cert(pki, "hq")
        # the VPN server's address is the router's: nothing ever leaves the namespaces
        profile = client_profile(pki, "hq", "10.0.0.1")
        yield lab, c, profile
    finally:
        lab.close()


def run_setup(lab: Lab, ns: str, script: str, root: Path, profile: Path) -> str:
    path = root.parent / "setup.sh"
    path.write_text(script)
    env = {**os.environ, "ROOT": str(root), "PROFILE": str(profile)}
    return lab.run(ns, "bash", str(path), env=env).stdout


def rules(lab: Lab, ns: str) -> list[str]:
    out = lab.run(ns, "iptables-save").stdout
    return [line for line in out.splitlines() if line.startswith(("-A", "-N", ":CP"))]


def sysctl(lab: Lab, ns: str, key: str) -> str:
    return lab.run(ns, "sysctl", "-n", key).stdout.strip()


def test_setup_turns_the_host_into_a_router_and_is_idempotent(host, tmp_path: Path):
    lab, c, profile = host
    root = tmp_path / "root"
    assert sysctl(lab, c, "net.ipv4.ip_forward") == "0"
    out = run_setup(lab, c, render_setup_script(connector()), root, profile)
    assert "LAN interface: lan0" in out  # found from the default route

    # seed "Enable Routing" and rp_filter off, live and persisted under ROOT only
    assert sysctl(lab, c, "net.ipv4.ip_forward") == "1"
    for key in ("all", "default", "lan0"):
        assert sysctl(lab, c, f"net.ipv4.conf.{key}.rp_filter") == "0"
    persisted = (root / "etc/sysctl.d/60-connector-provisioner.conf").read_text()
    assert (
        "net.ipv4.ip_forward = 1" in persisted and "net.ipv4.conf.lan0.rp_filter = 0" in persisted
    )
    assert not Path("/etc/sysctl.d/60-connector-provisioner.conf").exists()

    # seed "Enable NAT" with `! -d <local subnet>`: RETURN for each local subnet, then MASQUERADE
    first = rules(lab, c)
    nat = [r for r in first if "CP-NAT" in r]
    assert nat == [
        ":CP-NAT - [0:0]",
        "-A POSTROUTING -o lan0 -j CP-NAT",
        "-A CP-NAT -d 10.0.0.0/18 -j RETURN",
        "-A CP-NAT -d 10.64.0.0/16 -j RETURN",
        "-A CP-NAT -j MASQUERADE",
    ]
    saved = (root / "etc/iptables/rules.v4").read_text()
    assert "-A CP-NAT -d 10.0.0.0/18 -j RETURN" in saved and "-A CP-NAT -j MASQUERADE" in saved

    # the VPN client runs in the background from PROFILE (no systemd here)
    pidfile = root / "run/connector-provisioner-openvpn.pid"
    pid = int(pidfile.read_text())
    assert pid in lab.pids(c)

    # a second run changes nothing: same rules, same single VPN client
    out = run_setup(lab, c, render_setup_script(connector()), root, profile)
    assert "already running" in out
    assert rules(lab, c) == first
    assert int(pidfile.read_text()) == pid
    assert len([p for p in lab.pids(c) if "openvpn" in Path(f"/proc/{p}/comm").read_text()]) == 1


def test_nat_without_exceptions_and_nat_off(host, tmp_path: Path):
    lab, c, profile = host
    root = tmp_path / "root"
    run_setup(lab, c, render_setup_script(connector(nat_preserve_source=False)), root, profile)
    assert [r for r in rules(lab, c) if r.startswith("-A CP-NAT")] == ["-A CP-NAT -j MASQUERADE"]
    # turning NAT off removes the rule (re-run of the same host with new settings)
    run_setup(lab, c, render_setup_script(connector(nat=False)), root, profile)
    assert not [r for r in rules(lab, c) if re.match(r"-A (POSTROUTING|CP-NAT)", r)]
    assert sysctl(lab, c, "net.ipv4.ip_forward") == "1"


def test_lan_interface_given_and_no_default_route(host, tmp_path: Path):
    lab, c, profile = host
    lab.run(c, "ip", "route", "del", "default")
    path = tmp_path / "setup.sh"
    path.write_text(render_setup_script(connector()))
    env = {**os.environ, "ROOT": str(tmp_path / "root"), "PROFILE": str(profile)}
    failed = lab.run(c, "bash", str(path), env=env, check=False)
    assert failed.returncode != 0 and "no LAN interface" in failed.stdout + failed.stderr
    out = run_setup(
        lab, c, render_setup_script(connector(lan_interface="lan0")), tmp_path / "root", profile
    )
    assert "LAN interface: lan0" in out


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_lab_leaves_no_namespace_or_process(sig: str, tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import time

    # a sleeper of its own: the other signal's case (or another run's) may be running now
    sleeper = f"sleep {300 + os.getpid() * 10 + len(sig)}"
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from lab.netns import Lab\n"
        "lab = Lab('i')\n"
        "a, b = lab.ns('a'), lab.ns('b')\n"
        "lab.link(a, 'x0', '10.9.0.1/30', b, 'x0', '10.9.0.2/30')\n"
        f"lab.run(a, 'sh', '-c', '{sleeper} >/dev/null 2>&1 &')\n"
        "print(lab.prefix, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        # the signal is what is tested: not ignored, even when this test runs in the background
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    prefix = proc.stdout.readline().strip()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{prefix}-a" in listed  # it was there
    proc.send_signal(getattr(signal, sig))
    # (removing namespaces waits on the kernel, slow while other workers make and remove
    # theirs: once over 30 s on 2 busy cores; what is tested is that nothing is left)
    proc.wait(timeout=120)
    time.sleep(0.2)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert prefix not in listed
    sleepers = subprocess.run(["pgrep", "-f", sleeper], capture_output=True, text=True).stdout
    assert not sleepers.strip()


def test_the_stale_sweep_leaves_a_live_run_alone():
    """Parallel test workers each build their own namespaces: one worker's sweep for crashed
    runs must not delete another's."""
    import subprocess

    lab = Lab("v")
    try:
        ns = lab.ns("x")
        remove_stale()
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert ns in listed
    finally:
        lab.close()
