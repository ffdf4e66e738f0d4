"""One apply or destroy at a time per network, across machines: a lease kept with the network
itself (each cloud's store: an SSM parameter made only if absent on AWS, a tag written under the
VNet's or the VCN's etag on Azure and OCI, a metadata item under its fingerprint on GCP), taken
with a conditional write before anything changes and removed after. A second run that finds it
stops at once with one line naming the holder (host, pid, since when); a crashed run's lease
ends when it expires; `provision unlock` removes one by hand, as Terraform's force-unlock."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .errors import ProvisionerError

LEASE_SECONDS = 3600.0  # longer than the longest apply (launch waits at most 15 min per step)
MAX_LEASE_TEXT = 1024


class Locked(ProvisionerError):
    """Another run holds the network's lease: nothing was changed by this one."""

    exit_code = 4


@dataclass(frozen=True)
class Holder:
    id: str
    host: str
    pid: int
    operation: str
    since: float
    expires: float

    @staticmethod
    def new(operation: str, seconds: float = LEASE_SECONDS) -> Holder:
        now = time.time()
        return Holder(
            secrets.token_hex(8), socket.gethostname()[:64], os.getpid(), operation, now,
            now + seconds,
        )  # fmt: skip

    def text(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.since))
        until = time.strftime("%H:%M:%SZ", time.gmtime(self.expires))
        return (
            f"{self.operation} by pid {self.pid} on {self.host} since {since} (lease until {until})"
        )

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @staticmethod
    def loads(text: str | None) -> Holder | None:
        """A stored lease; one that cannot be read counts as none (and is overwritten)."""
        if not text or len(text) > MAX_LEASE_TEXT:
            return None
        try:
            d = json.loads(text)
            return Holder(str(d["id"]), str(d["host"])[:64], int(d["pid"]), str(d["operation"]),
                          float(d["since"]), float(d["expires"]))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires


class LeaseStore(Protocol):
    """Where one network's lease lives. `read` gives the stored text (None: no lease) and a
    version; `write` stores text (None: removes it) only if the store is still at that version,
    and says whether it did."""

    where: str

    def read(self) -> tuple[str | None, Any]: ...

    def write(self, text: str | None, version: Any) -> bool: ...


def take(store: LeaseStore, network: str, operation: str) -> Holder:
    """The network's lease for this run, or Locked naming who holds it."""
    mine = Holder.new(operation)
    for _ in range(4):
        text, version = store.read()
        held = Holder.loads(text)
        if held is not None and not held.expired:
            raise Locked(
                f"network {network}: another run holds it: {held.text()}; nothing was changed "
                f"(when that run is gone: provision unlock -f FILE --network {network})"
            )
        if store.write(mine.dumps(), version):
            return mine
    raise Locked(f"network {network}: its lease ({store.where}) kept changing; nothing was changed")


def release(store: LeaseStore, holder: Holder) -> None:
    """Remove our lease (never another run's, should ours have expired and been taken)."""
    for _ in range(4):
        text, version = store.read()
        held = Holder.loads(text)
        if held is None or held.id != holder.id or store.write(None, version):
            return


def force_release(store: LeaseStore) -> Holder | None:
    """Remove whatever lease is there: the one it was, or None."""
    for _ in range(4):
        text, version = store.read()
        if text is None:
            return None
        if store.write(None, version):
            return Holder.loads(text)
    return None
