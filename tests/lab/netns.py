"""Network namespaces for the lab: hosts on one machine with no link to the host's network.

Every namespace gets a per-run prefix; `Lab.close()` kills every process inside them and
deletes them (veth pairs go with their namespace). It runs on test teardown, on interrupt,
and at exit; namespaces left by a crashed earlier run with the same prefix family are
removed on start."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "cplab"


def lab_available() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing"
    # missing tools (openvpn, iptables, ...) are no reason to skip: scripts/test.sh installs
    # them, and a lab that cannot run them fails
    return None


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def remove_stale() -> None:
    """Namespaces of lab runs whose process is gone (a crash, a kill -9); never a live run's."""
    for line in _sh("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = re.match(rf"^{PREFIX}(\d+)[a-z]", name)
        if match and not _alive(int(match.group(1))):
            _kill_all(name)
            _sh("ip", "netns", "delete", name, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all(ns: str) -> None:
    pids = _sh("ip", "netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


class Lab:
    def __init__(self, tag: str) -> None:
        self.prefix = f"{PREFIX}{os.getpid()}{tag}"  # the pid: remove_stale knows it is alive
        self.namespaces: list[str] = []
        atexit.register(self.close)
        # a terminated run cleans up too: SIGTERM becomes an ordinary exit, so atexit runs
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def ns(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        _sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        self.run(full, "ip", "link", "set", "lo", "up")
        return full

    def run(
        self,
        ns: str,
        *cmd: str,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["ip", "netns", "exec", ns, *cmd],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"[{ns}] {' '.join(cmd)} -> {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result

    def link(
        self, a: str, a_if: str, a_addr: str | None, b: str, b_if: str, b_addr: str | None
    ) -> None:
        """A veth pair between two namespaces, addresses in CIDR form."""
        tmp_a, tmp_b = f"v{os.urandom(3).hex()}", f"v{os.urandom(3).hex()}"
        _sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        _sh("ip", "link", "set", tmp_a, "netns", a)
        _sh("ip", "link", "set", tmp_b, "netns", b)
        for ns, tmp, name, addr in ((a, tmp_a, a_if, a_addr), (b, tmp_b, b_if, b_addr)):
            self.run(ns, "ip", "link", "set", tmp, "name", name)
            if addr:
                self.run(ns, "ip", "addr", "add", addr, "dev", name)
            self.run(ns, "ip", "link", "set", name, "up")

    def drop(self, ns: str) -> None:
        """One namespace gone before the rest: its processes, its veth pairs with it."""
        _kill_all(ns)
        _sh("ip", "netns", "delete", ns, check=False)
        if ns in self.namespaces:
            self.namespaces.remove(ns)

    def pids(self, ns: str) -> list[int]:
        return [int(p) for p in _sh("ip", "netns", "pids", ns, check=False).stdout.split()]

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            _kill_all(ns)
        time.sleep(0.05)
        for ns in reversed(self.namespaces):
            _sh("ip", "netns", "delete", ns, check=False)
        self.namespaces.clear()
