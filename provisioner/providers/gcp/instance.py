"""The connector on GCP: its service account, the Secret Manager secret holding its VPN profile
(readable by that account alone), and the instance (canIpForward, its own network tag, an
external address unless Cloud NAT serves its subnet)."""

from __future__ import annotations

import base64
import contextlib
from dataclasses import replace
from typing import Any

from ...bootstrap import render_user_data
from ...errors import SpecError
from ...model import PROFILE_PART, ConnectorState, DesiredConnector, ObservedConnector, Part
from ...redact import protect
from .common import (
    ACCESSOR,
    FILE_LABEL,
    FINGERPRINT_LABEL,
    LABEL,
    PROFILE_ANNOTATION,
    SCOPE,
    UBUNTU_FAMILY,
    GcpSeen,
    GcpState,
    file_label,
    partial,
    short,
    successor_name,
)

STATES = {
    "PROVISIONING": ConnectorState.PENDING,
    "STAGING": ConnectorState.PENDING,
    "RUNNING": ConnectorState.RUNNING,
    "STOPPING": ConnectorState.STOPPING,
    "SUSPENDING": ConnectorState.STOPPING,
    "REPAIRING": ConnectorState.PENDING,
    "TERMINATED": ConnectorState.STOPPED,
    "STOPPED": ConnectorState.STOPPED,
    "SUSPENDED": ConnectorState.STOPPED,
}
SECRET_LOGGER = "google.cloud.secretmanager_v1.services.secret_manager_service.transports.rest"


class Instance(GcpState):
    def user_data(self, connector: DesiredConnector) -> str:
        return render_user_data(
            "gcp", connector, f"projects/{self.project}/secrets/{self.secret_name}", self.region
        )

    # --- observe -------------------------------------------------------------------------

    def _observe_member(
        self, instances: list[Any], seen: GcpSeen
    ) -> tuple[ObservedConnector | None, str | None, ObservedConnector | None]:
        """The member's connector under either of its two names (`successor_name`): the
        newest is it, and its name the member's from now on; the other, left by a replacement
        not yet finished, is an extra (and then whether the newest said its tunnel is up)."""
        base = self.member_names(self.member)["instance_name"]
        names = {base, successor_name(base)}
        present = sorted(
            (i for i in instances if i.name in names and short(i.zone) == self.zone),
            key=lambda i: str(i.creation_timestamp or ""),
            reverse=True,
        )
        self.instance_name = present[0].name if present else base
        if len(present) < 2:
            connector, url = self._observe_connector(instances, seen)
            return connector, url, None
        self.instance_name = present[1].name
        extra, _ = self._observe_connector(instances, seen)
        self.instance_name = present[0].name
        connector, url = self._observe_connector(instances, seen)
        if connector is not None:
            connector = replace(connector, ready=self._says_ready())
        return connector, url, extra

    def _says_ready(self) -> bool:
        """The connector wrote the guest attribute connector-provisioner/ready (its tunnel is
        up: its cloud-init's connector-ready)."""
        return "ready" in self._guest_attributes(self.instance_name)

    def _guest_attributes(self, instance: str) -> dict[str, str]:
        """What the VM `instance` (in this member's zone) wrote under connector-provisioner/:
        its cloud-init's `ready`, a pair's watchdog's `watchdog` (its last word)."""
        from google.api_core.exceptions import NotFound

        try:
            found = self.api.instances.get_guest_attributes(request={
                "project": self.project, "zone": self.zone, "instance": instance,
                "query_path": "connector-provisioner/",
            })  # fmt: skip
        except NotFound:
            return {}
        items = found.query_value.items if found.query_value else []
        return {i.key: i.value for i in items}

    def _watchdog_words(self, members: tuple[ObservedConnector, ...]) -> dict[str, str]:
        words = {}
        for c in members:
            with self.as_member(c.member):
                word = self._guest_attributes(c.instance).get("watchdog")
            if word:
                words[c.instance] = word
        return words

    def _await_ready(self, replacing: str) -> None:
        """Until the new VM says its tunnel is up, the routes stay on `replacing`."""
        self.wait_ready(self.instance_name, replacing,
                        lambda: (self._says_ready(), "its tunnel not up yet"),
                        min(2.0, self.wait_seconds / 20))  # fmt: skip

    def _observe_connector(
        self, instances: list[Any], seen: GcpSeen
    ) -> tuple[ObservedConnector | None, str | None]:
        """(the connector, its URL as routes name their next hop), or (None, None); its
        metadata into `seen`."""
        vm = next(
            (i for i in instances if i.name == self.instance_name and short(i.zone) == self.zone),
            None,
        )
        if vm is None:
            return None, None
        nic = vm.network_interfaces[0]
        nat_ip = next((a.nat_i_p for a in nic.access_configs or [] if a.nat_i_p), None)
        connector = ObservedConnector(
            instance=self.instance_name,
            state=STATES.get(vm.status, ConnectorState.PENDING),
            interface=self.connector_ref,  # what a route names as its next hop
            private_ip=nic.network_i_p or None,
            forwarding=bool(vm.can_ip_forward),
            size=short(vm.machine_type),
            image=(vm.description or "").removeprefix("image: "),
            subnet=short(nic.subnetwork),
            fingerprint=(vm.labels or {}).get(FINGERPRINT_LABEL, ""),
            public_ip=nat_ip,
            member=self.member,
        )
        seen.metadata[self.member] = vm.metadata
        return connector, partial(vm.self_link)

    def _exists_account(self) -> bool:
        return self._get_account() is not None

    def _check_named_account(self) -> None:
        if self._get_account() is None:
            raise SpecError(
                f"networks.{self.network.name}.connector.service_account",
                f"{self.account_email!r} is not a service account of project {self.project}",
            )

    def _get_account(self) -> dict[str, Any] | None:
        response = self._iam(
            "GET", f"projects/{self.project}/serviceAccounts/{self.account_email}", ok=(404,)
        )
        return None if response.status_code == 404 else response.json()

    def _iam(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()) -> Any:
        """One IAM REST call through google-auth's session (the IAM admin library speaks gRPC
        only); throttles and 5xx retried as the SDK calls are."""
        from google.api_core.exceptions import from_http_response

        def send() -> Any:
            response = self.api.session.request(
                method, f"{self.api.iam_url}/{path}", json=body, timeout=60
            )
            if response.status_code >= 400 and response.status_code not in ok:
                raise from_http_response(response)
            return response

        return self.call(f"service account {self.account_email}", send)

    def _observe_secret(self) -> Part:
        from google.api_core.exceptions import NotFound

        name = f"projects/{self.project}/secrets/{self.secret_name}"
        why = (
            "the VPN profile in Secret Manager, readable by the connector's own service account "
            "alone; fetched at boot with the metadata server's token, never in metadata"
        )
        assert self.network.connector is not None
        member, wanted = self.member, self.member == 0 or self.network.connector.ha
        try:
            secret = self.call("secret", self.api.secrets.get_secret, name=name)
        except NotFound:
            return Part(PROFILE_PART, self.secret_name, why, False, member=member, wanted=wanted)
        versions = list(self.call("secret", self.api.secrets.list_secret_versions, parent=name))
        policy = self.call("secret", self.api.secrets.get_iam_policy, request={"resource": name})
        readers = sorted(m for b in policy.bindings if b.role == ACCESSOR for m in b.members)
        others = [b for b in policy.bindings if b.role != ACCESSOR]
        complete = (
            any(v.state.name == "ENABLED" for v in versions)
            and readers == [f"serviceAccount:{self.account_email}"]
            and not others
        )
        return Part(
            PROFILE_PART,
            self.secret_name,
            why,
            True,
            complete=complete,
            fingerprint=(secret.annotations or {}).get(PROFILE_ANNOTATION),
            member=member,
            wanted=wanted,
        )

    # --- the service account -------------------------------------------------------------

    def _create_service_account(self) -> None:
        account = self.account_email.split("@", 1)[0]
        response = self._iam(
            "POST",
            f"projects/{self.project}/serviceAccounts",
            {
                "accountId": account,
                "serviceAccount": {
                    "displayName": f"connector-provisioner: {self.network.name}",
                    "description": "the VPN connector's own identity: reads its profile secret",
                },
            },
            ok=(409,),  # an interrupted run made it
        )
        if response.status_code != 409:
            self.progress(f"made service account {self.account_email}")

    def _delete_service_account(self) -> None:
        self._iam(
            "DELETE", f"projects/{self.project}/serviceAccounts/{self.account_email}", ok=(404,)
        )

    # --- the profile secret --------------------------------------------------------------

    def _create_vpn_profile(self) -> None:
        from google.api_core.exceptions import Conflict

        assert self.network.connector is not None
        connector = self.network.connector
        parent = f"projects/{self.project}"
        name = f"{parent}/secrets/{self.secret_name}"
        with contextlib.suppress(Conflict):  # an interrupted run made it
            self.call(
                "secret",
                self.api.secrets.create_secret,
                request={
                    "parent": parent,
                    "secret_id": self.secret_name,
                    "secret": {
                        "replication": {"automatic": {}},
                        "labels": {LABEL: self.network.name},
                        "annotations": {
                            PROFILE_ANNOTATION: connector.member_profile(self.member).fingerprint
                        },
                    },
                },
            )
        versions = list(self.call("secret", self.api.secrets.list_secret_versions, parent=name))
        if not any(v.state.name == "ENABLED" for v in versions):
            self._add_version(name)
        self._grant_reader(name)

    def _update_vpn_profile(self) -> None:
        assert self.network.connector is not None
        name = f"projects/{self.project}/secrets/{self.secret_name}"
        old = [
            v
            for v in self.call("secret", self.api.secrets.list_secret_versions, parent=name)
            if v.state.name == "ENABLED"
        ]
        self._add_version(name)
        for v in old:  # the old profile is not kept around
            self.call("secret", self.api.secrets.destroy_secret_version, request={"name": v.name})
        self.call(
            "secret",
            self.api.secrets.update_secret,
            request={
                "secret": {
                    "name": name,
                    "annotations": {
                        PROFILE_ANNOTATION: self.network.connector.member_profile(
                            self.member
                        ).fingerprint
                    },
                },
                "update_mask": {"paths": ["annotations"]},
            },
        )
        self._grant_reader(name)

    def _add_version(self, name: str) -> None:
        assert self.network.connector is not None
        content = self.network.connector.member_profile(self.member).read()
        # the REST transport logs request bodies at DEBUG: the profile in both forms it travels
        protect(content.decode("utf-8", "replace"), SECRET_LOGGER)
        protect(base64.b64encode(content).decode(), SECRET_LOGGER)
        self.call(
            "secret",
            self.api.secrets.add_secret_version,
            request={"parent": name, "payload": {"data": content}},
        )

    def _grant_reader(self, name: str) -> None:
        """The connector's account alone may read the secret: the whole policy is ours."""
        self.call(
            "secret",
            self.api.secrets.set_iam_policy,
            request={
                "resource": name,
                "policy": {
                    "bindings": [
                        {"role": ACCESSOR, "members": [f"serviceAccount:{self.account_email}"]}
                    ]
                },
            },
        )

    def _delete_vpn_profile(self) -> None:
        from google.api_core.exceptions import NotFound

        with contextlib.suppress(NotFound):
            self.call(
                "secret",
                self.api.secrets.delete_secret,
                name=f"projects/{self.project}/secrets/{self.secret_name}",
            )

    # --- the instance --------------------------------------------------------------------

    def _pinned_image_problem(self, image: str) -> str | None:
        """An image by its path (`projects/P/global/images/NAME`, or `.../images/family/F`, with
        or without the API's URL before it); another form is left to the launch to judge."""
        import re

        from google.api_core.exceptions import NotFound

        found = re.match(r"^(?:.*/)?projects/([^/]+)/global/images/(family/)?([^/]+)$", image)
        if found is None:
            return None
        project, family, name = found.groups()
        try:
            if family:
                self.call("image family", self.api.images.get_from_family,
                          project=project, family=name)  # fmt: skip
            else:
                self.call("image", self.api.images.get, project=project, image=name)
        except NotFound:
            return f"image {image} is not in project {project}"
        return None

    def _newest_image(self, size: str) -> tuple[str, str] | None:
        return self._family_release()

    def _family_release(self) -> tuple[str, str]:
        """The Ubuntu LTS family's newest release (its selfLink), and when it was made."""
        found = self.call("image family", self.api.images.get_from_family,
                          project=UBUNTU_FAMILY[0], family=UBUNTU_FAMILY[1])  # fmt: skip
        return str(found.self_link), str(found.creation_timestamp or "")

    def _launch(self, connector: DesiredConnector) -> None:
        # the family's newest release, by name: what the VM runs is known (status compares it)
        image = connector.image or self._family_release()[0]
        instance = self._instance(connector, image)
        what = f"instance {self.instance_name}"
        self._insert(
            what,
            self.api.instances.insert_unary,
            lambda _: True,
            self.instance_name,
            project=self.project,
            zone=self.zone,
            instance_resource=instance,
        )
        vm = self.call(
            what,
            self.api.instances.get,
            project=self.project,
            zone=self.zone,
            instance=self.instance_name,
        )
        self.connector_url = partial(vm.self_link)
        address = vm.network_interfaces[0].network_i_p
        self.progress(
            f"launched {self.instance_name} ({connector.size}, {image}, {self.zone}) at {address}"
        )
        self.held[self.member]["connector_url"] = self.connector_url
        # behind the pair's load balancer, once there is one
        if connector.ha and self.seen.front_ip:
            self._join(self.member)  # type: ignore[attr-defined]

    def _instance(self, connector: DesiredConnector, image: str) -> Any:
        """The VM as Compute takes it: forwarding (fixed at creation), its tag and labels, its
        subnetwork and public address, its boot disk, the cloud-init user data and its peer,
        its identity, a shielded boot."""
        from google.cloud import compute_v1

        other = self.held[1 - self.member] if connector.ha else None
        address = self._address_of(1 - self.member) if other and other["connector_url"] else None  # type: ignore[attr-defined]
        # its watchdog's peer (the other's metadata names this one once it has an address)
        peer = [compute_v1.Items(key="connector-peer", value=address)] if address else []
        access = (
            [compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
            if connector.public_address
            else []
        )
        return compute_v1.Instance(
            name=self.instance_name,
            description=f"image: {image}",
            machine_type=f"zones/{self.zone}/machineTypes/{connector.size}",
            # seed 'Set Source/Dest Check', GCP: fixed at creation (a connector without it is
            # replaced, never patched)
            can_ip_forward=True,
            tags=compute_v1.Tags(items=[self.tag]),
            labels={
                LABEL: self.network.name,
                FINGERPRINT_LABEL: connector.launch_fingerprint,
                **({FILE_LABEL: file_label(self.network.file)} if self.network.file else {}),
            },
            network_interfaces=[
                compute_v1.NetworkInterface(
                    subnetwork=f"projects/{self.project}/regions/{self.region}/subnetworks/{connector.subnet}",
                    access_configs=access,
                )
            ],
            disks=[
                compute_v1.AttachedDisk(
                    boot=True,
                    auto_delete=True,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(
                        source_image=image, disk_size_gb=10
                    ),
                )
            ],
            metadata=compute_v1.Metadata(
                items=[
                    compute_v1.Items(key="user-data", value=self.user_data(connector)),
                    compute_v1.Items(key="block-project-ssh-keys", value="true"),
                    # its connector-ready writes connector-provisioner/ready there (apply reads it)
                    compute_v1.Items(key="enable-guest-attributes", value="TRUE"),
                    *peer,
                ]
            ),
            service_accounts=[compute_v1.ServiceAccount(email=self.account_email, scopes=[SCOPE])],
            shielded_instance_config=compute_v1.ShieldedInstanceConfig(
                enable_secure_boot=True, enable_vtpm=True, enable_integrity_monitoring=True
            ),
        )

    def _terminate(self) -> None:

        self.delete(
            f"instance {self.instance_name}",
            self.api.instances.delete_unary,
            project=self.project,
            zone=self.zone,
            instance=self.instance_name,
        )
        self.connector_url = None

    def _retire(self, instance: str) -> None:
        """An instance not of ours (zones/<z>/instances/<name>) stopped, never deleted."""
        _, zone, _, name = instance.split("/")
        op = self.call(f"instance {name}", self.api.instances.stop_unary, project=self.project,
                       zone=zone, instance=name)  # fmt: skip
        self.wait(op, f"instance {name} to stop")

    def _start(self) -> None:
        op = self.call(
            f"instance {self.instance_name}",
            self.api.instances.start_unary,
            project=self.project,
            zone=self.zone,
            instance=self.instance_name,
        )
        self.wait(op, f"instance {self.instance_name} to start")
