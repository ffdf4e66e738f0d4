"""Azure's pair mechanism: the pair agrees who is active and the internal load balancer's
probe follows; the peer's address and this VM's from the instance metadata.

Runs on the pair's VMs after the watchdog's own code (`provisioner/watchdog.py`): bootstrap
appends this module to it without the import of the watchdog below, so it uses only what that
module and the standard library have, and the cloud's SDK on the VM."""

from __future__ import annotations

import json
import urllib.request

from ...watchdog import Peers, Settings


class AzurePeers(Peers):
    """Azure's pair: the load balancer's probe follows who answers `/active`; the other
    connector's address is a tag of this VM."""

    def metadata_peer(self) -> str:
        return azure_peer()


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


MECHANISM = (azure_identity, AzurePeers)
