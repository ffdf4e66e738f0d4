"""GCP's pair mechanism: the pair agrees who is active and the internal load balancer's
health check follows; the peer's address and this VM's from the metadata server, its word a
guest attribute.

Runs on the pair's VMs after the watchdog's own code (`provisioner/watchdog.py`): bootstrap
appends this module to it without the import of the watchdog below, so it uses only what that
module and the standard library have, and the cloud's SDK on the VM."""

from __future__ import annotations

import urllib.error
import urllib.request

from ...watchdog import Peers, Settings


class GcpPeers(Peers):
    """GCP's pair, which also publishes its word as a guest attribute (the metadata server:
    no permission, the instance has guest attributes enabled)."""

    def metadata_peer(self) -> str:
        return gcp_peer()

    def publish(self, word: str) -> None:
        base = self.settings.metadata or "http://metadata.google.internal"
        request = urllib.request.Request(
            f"{base}/computeMetadata/v1/instance/guest-attributes/connector-provisioner/watchdog",
            data=word.encode(),
            method="PUT",
            headers={"Metadata-Flavor": "Google"},
        )
        with urllib.request.urlopen(request, timeout=2):
            pass


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


MECHANISM = (gcp_identity, GcpPeers)
