"""OCI's pair mechanism: a secondary private IP that the route rules name, moved with
UpdatePrivateIp by the standby's watchdog.

Runs on the pair's VMs after the watchdog's own code (`provisioner/watchdog.py`): bootstrap
appends this module to it without the import of the watchdog below, so it uses only what that
module and the standard library have, and the cloud's SDK on the VM."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from ...watchdog import HA_TAG, WATCH_TAG, Holder, Settings


class OciPrivateIp:
    """The route rules name a secondary private IP of the pair's subnet (tagged
    connector-provisioner:ha: <network>, its floating address); who holds it is active. The
    standby takes over by moving it to its own VNIC: the rules that name it follow, nothing
    else is written. One that is gone (apply made a new one) is looked for again."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        self.network = client or self._client()
        # the reporter's thread has a client of its own (one client is not shared by threads)
        self.reporting = client or self._client()
        self.floating: str | None = None
        self.last_peer = ""

    def _client(self) -> Any:
        import oci  # the VM's OCI CLI environment has the SDK

        if self.settings.endpoint:  # a sandbox's fake (the lab's): nothing to sign with
            signer, extra = self.sandbox_signer(), {"service_endpoint": self.settings.endpoint}
        else:
            signer, extra = oci.auth.signers.InstancePrincipalsSecurityTokenSigner(), {}
        return oci.core.VirtualNetworkClient(
            {"region": self.settings.region}, signer=signer, **extra
        )

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
            self.floating = self._find_floating(self.network)
        return self.floating

    def _find_floating(self, client: Any) -> str | None:
        found = client.list_private_ips(subnet_id=self.settings.subnet).data
        return next(
            (
                p.id
                for p in found
                if not p.is_primary and (p.freeform_tags or {}).get(HA_TAG) == self.settings.network
            ),
            None,
        )

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
        self.last_peer = primary or self.last_peer
        return Holder(vnic, primary)

    def peer(self) -> str:
        """The other member's address: the last holder but this one (or the setting)."""
        return self.last_peer or self.settings.peer

    def publish(self, word: str) -> None:
        """Its word as a freeform tag of the floating private IP, one key per member
        (UpdatePrivateIp, which the pair's policy allows; a primary private IP takes none),
        guarded by the IP's etag: the other member writes its own key there too."""
        import oci

        floating = self.floating or self._find_floating(self.reporting)
        if floating is None:
            return
        for _ in range(3):  # (the other's write in between: read again)
            got = self.reporting.get_private_ip(floating)
            key = f"{WATCH_TAG}-{self.settings.member}"
            tags = {**(got.data.freeform_tags or {}), key: word[:256]}
            try:
                self.reporting.update_private_ip(
                    floating,
                    oci.core.models.UpdatePrivateIpDetails(freeform_tags=tags),
                    if_match=got.headers.get("etag"),
                )
                return
            except oci.exceptions.ServiceError as e:
                if e.status != 412:
                    raise

    def take_over(self, previous: Holder | None) -> int:
        import oci

        floating = self._floating()
        if floating is None:
            return 0
        details = oci.core.models.UpdatePrivateIpDetails(vnic_id=self.settings.interface)
        self.network.update_private_ip(floating, details)
        return 1


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


MECHANISM = (oci_identity, OciPrivateIp)
