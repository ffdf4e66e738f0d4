"""The connector on OCI: the Vault secret holding its VPN profile, the instance and its primary
VNIC (source/destination check skipped, the connector's NSG), and the dynamic group and policy
that let that instance alone read the secret."""

from __future__ import annotations

import base64
import contextlib
from dataclasses import replace
from typing import Any

from ...bootstrap import render_user_data
from ...errors import CloudError, SpecError
from ...model import PROFILE_PART, ConnectorState, DesiredConnector, ObservedConnector, Part
from ...redact import protect
from .common import FINGERPRINT_TAG, PROFILE_TAG, TAG, UBUNTU, OciState

STATES = {
    "PROVISIONING": ConnectorState.PENDING,
    "STARTING": ConnectorState.PENDING,
    "RUNNING": ConnectorState.RUNNING,
    "STOPPING": ConnectorState.STOPPING,
    "STOPPED": ConnectorState.STOPPED,
    "CREATING_IMAGE": ConnectorState.RUNNING,
}
SDK_LOGGER = "oci.base_client"
READY_MARK = b"connector-provisioner: tunnel up"  # what connector-ready writes to the console
READY_BYTES = 1024 * 1024


class Instance(OciState):
    def user_data(self, connector: DesiredConnector) -> str:
        ref = self.secret_id or f"the secret {self.secret_name} of vault {connector_vault(self)}"
        return render_user_data("oci", connector, ref, self.location.region)

    # --- observe -------------------------------------------------------------------------

    def _observe_connector(self) -> tuple[ObservedConnector | None, list[ObservedConnector]]:
        """The member's connector (the newest of its name: one made beside the one it replaces)
        and the others of its name (an interrupted replacement's), older first."""
        import oci

        found = sorted(
            (
                i
                for i in oci.pagination.list_call_get_all_results(
                    self.api.compute.list_instances, self.compartment,
                    display_name=self.instance_name,
                ).data
                if i.lifecycle_state not in ("TERMINATED", "TERMINATING")
                and i.display_name == self.instance_name
                and (i.freeform_tags or {}).get(TAG) == self.network.name
            ),
            key=lambda i: str(i.time_created or ""),
        )  # fmt: skip
        if not found:
            self.instance_id = self.vnic_id = self.private_ip_id = None
            return None, []
        extras = [self._connector(vm) for vm in found[:-1]]
        newest = self._connector(found[-1])  # (the newest last: its ids stay)
        # made beside another: whether it said its tunnel is up is read when apply waits for it
        return (replace(newest, ready=False) if extras else newest), extras

    def _connector(self, vm: Any) -> ObservedConnector:
        self.instance_id = vm.id
        vnic = self._primary_vnic(vm.id)
        return ObservedConnector(
            instance=vm.id,
            state=STATES.get(vm.lifecycle_state, ConnectorState.PENDING),
            interface=self.private_ip_id,  # what a route rule names as its target
            private_ip=vnic.private_ip if vnic else None,
            forwarding=bool(vnic and vnic.skip_source_dest_check),
            size=vm.shape,
            image=vm.image_id or getattr(vm.source_details, "image_id", None) or "",
            subnet=vnic.subnet_id if vnic else "",
            fingerprint=(vm.freeform_tags or {}).get(FINGERPRINT_TAG, ""),
            public_ip=(vnic.public_ip or None) if vnic else None,
            member=self.member,
        )

    def _primary_vnic(self, instance_id: str) -> Any:
        attachments = self.api.compute.list_vnic_attachments(
            self.compartment, instance_id=instance_id
        ).data
        if not attachments:
            self.vnic_id = self.private_ip_id = None
            return None
        vnic = self.api.network.get_vnic(attachments[0].vnic_id).data
        self.vnic_id = vnic.id
        ips = self.api.network.list_private_ips(vnic_id=vnic.id).data
        self.private_ip_id = next((p.id for p in ips if p.is_primary), None)
        return vnic

    def _find_secret(self) -> Any:
        import oci

        assert self.network.connector is not None
        secrets = oci.pagination.list_call_get_all_results(
            self.api.vaults.list_secrets,
            self.compartment,
            name=self.secret_name,
            vault_id=self.network.connector.vault,
        ).data
        return next((s for s in secrets if s.lifecycle_state not in ("DELETED",)), None)

    def _observe_secret(self) -> Part:
        import oci

        assert self.network.connector is not None
        vault = self.network.connector.vault
        try:
            if self.member == 0:  # (once: the pair's profiles are in the one vault)
                self.api.kms.get_vault(vault)
        except oci.exceptions.ServiceError as e:
            if e.status != 404:
                raise
            raise SpecError(
                f"networks.{self.network.name}.connector.vault",
                f"{vault!r} does not exist (or is not visible to you)",
            ) from None
        secret = self._find_secret()
        self.secret_id = secret.id if secret is not None else None
        pending = secret is not None and secret.lifecycle_state == "PENDING_DELETION"
        return Part(
            PROFILE_PART,
            self.secret_name,
            "the VPN profile as a Vault secret, readable by the connector instance alone; "
            "fetched at boot with its instance principal, never in metadata",
            secret is not None and not pending,
            fingerprint=(secret.freeform_tags or {}).get(PROFILE_TAG) if secret else None,
            member=self.member,
            wanted=self.member == 0 or self.network.connector.ha,
        )

    def _tenancy(self) -> str:
        if self.api.tenancy:
            return self.api.tenancy
        if self.tenancy_id:
            return self.tenancy_id
        compartment = self.compartment
        for _ in range(8):  # compartments nest six deep at most
            if compartment.startswith("ocid1.tenancy."):
                self.tenancy_id = compartment  # walked once a run
                return compartment
            compartment = self.api.identity.get_compartment(compartment).data.compartment_id
        raise CloudError(f"could not find the tenancy of {self.compartment}")

    def _dynamic_groups(self) -> list[Any]:
        import oci

        return list(
            oci.pagination.list_call_get_all_results(
                self.api.identity.list_dynamic_groups, self._tenancy()
            ).data
        )

    def _observe_identity(self, groups: list[Any], policies: list[Any]) -> list[Part]:
        """The dynamic group of the current member's instance, and its policy (`groups`, the
        tenancy's dynamic groups, and `policies`, the compartment's: read once)."""
        assert self.network.connector is not None
        parts = []
        group = next((g for g in groups if g.name == self.group_name), None)
        if self.network.connector.dynamic_group is None or self.member:
            parts.append(
                Part(
                    "dynamic-group",
                    self.group_name,
                    "a dynamic group of the connector instance alone",
                    group is not None,
                    complete=group is not None and group.matching_rule == self._matching_rule(),
                    after_connector=True,
                    member=self.member,
                    wanted=self.member == 0 or self.network.connector.ha,
                )
            )
        elif group is None:
            raise SpecError(
                f"networks.{self.network.name}.connector.dynamic_group",
                f"{self.group_name!r} is not a dynamic group of the tenancy",
            )
        policy = next((p for p in policies if p.name == self.policy_name), None)
        parts.append(
            Part(
                "policy",
                self.policy_name,
                "lets that dynamic group read this secret's bundles, and nothing else",
                policy is not None,
                complete=policy is not None and list(policy.statements) == self._statements(),
                after_connector=True,
                member=self.member,
                wanted=self.member == 0 or self.network.connector.ha,
            )
        )
        return parts

    def _matching_rule(self) -> str:
        return f"ALL {{instance.id = '{self.instance_id}'}}"

    def _statements(self) -> list[str]:
        return [
            f"Allow dynamic-group {self.group_name} to read secret-bundles in compartment id "
            f"{self.compartment} where target.secret.id = '{self.secret_id}'"
        ]

    # --- the profile secret --------------------------------------------------------------

    def _content(self) -> Any:
        import oci

        assert self.network.connector is not None
        raw = self.network.connector.member_profile(self.member).read()
        encoded = base64.b64encode(raw).decode()
        # the vault client's own DEBUG logger (oci.base_client.<id>): both forms of the profile
        logger = self.api.vaults.base_client.logger.name
        protect(raw.decode("utf-8", "replace"), SDK_LOGGER, logger)
        protect(encoded, SDK_LOGGER, logger)
        return oci.vault.models.Base64SecretContentDetails(content_type="BASE64", content=encoded)

    def _profile_tags(self) -> dict[str, str]:
        assert self.network.connector is not None
        return {
            **self.tags,
            PROFILE_TAG: self.network.connector.member_profile(self.member).fingerprint,
        }

    def _create_vpn_profile(self) -> None:
        import oci

        connector = self.network.connector
        assert connector is not None
        found = self._find_secret()
        if found is not None and found.lifecycle_state == "PENDING_DELETION":
            # destroyed before: OCI keeps it a day at least; take it back with the new content
            self.api.vaults.cancel_secret_deletion(found.id)
            self.secret_id = found.id
            self._wait_secret()
            self._update_vpn_profile()
            return
        if found is None:
            made = self.api.vaults.create_secret(
                oci.vault.models.CreateSecretDetails(
                    compartment_id=self.compartment,
                    vault_id=connector.vault,
                    key_id=connector.key,
                    secret_name=self.secret_name,
                    description=f"connector-provisioner: the VPN profile of {self.network.name}",
                    secret_content=self._content(),
                    freeform_tags=self._profile_tags(),
                )
            ).data
            self.secret_id = made.id
        else:
            self.secret_id = found.id
        self._wait_secret()

    def _update_vpn_profile(self) -> None:
        import oci

        assert self.secret_id is not None
        self.api.vaults.update_secret(
            self.secret_id,
            oci.vault.models.UpdateSecretDetails(
                secret_content=self._content(), freeform_tags=self._profile_tags()
            ),
        )
        self._wait_secret()

    def _wait_secret(self) -> None:
        secret_id = self.secret_id
        assert secret_id is not None
        self.wait_for(
            lambda: self.api.vaults.get_secret(secret_id), ("ACTIVE",), f"secret {self.secret_name}"
        )

    def _delete_vpn_profile(self) -> None:
        import oci

        secret_id = self.secret_id
        if secret_id is None:
            return
        try:  # OCI deletes a secret one day at the soonest: it is scheduled
            self.api.vaults.schedule_secret_deletion(
                secret_id, oci.vault.models.ScheduleSecretDeletionDetails()
            )
        except oci.exceptions.ServiceError as e:
            scheduled = ("PENDING_DELETION", "DELETED")  # gone, or scheduled already
            if e.status not in (404, 409) or not self.gone(
                lambda: self.api.vaults.get_secret(secret_id), scheduled
            ):
                raise

    # --- identity: the instance alone reads the secret ------------------------------------

    def _create_dynamic_group(self) -> None:
        import oci

        group = next((g for g in self._dynamic_groups() if g.name == self.group_name), None)
        if group is None:
            made = self.api.identity.create_dynamic_group(
                oci.identity.models.CreateDynamicGroupDetails(
                    compartment_id=self._tenancy(),
                    name=self.group_name,
                    description=f"connector-provisioner: the connector of {self.network.name}",
                    matching_rule=self._matching_rule(),
                    freeform_tags=self.tags,
                )
            ).data
            self.wait_for(
                lambda: self.api.identity.get_dynamic_group(made.id),
                ("ACTIVE",),
                f"dynamic group {self.group_name}",
            )
        elif group.matching_rule != self._matching_rule():  # a new connector instance
            self.api.identity.update_dynamic_group(
                group.id,
                oci.identity.models.UpdateDynamicGroupDetails(matching_rule=self._matching_rule()),
            )

    def _delete_dynamic_group(self) -> None:
        for g in self._dynamic_groups():
            if g.name == self.group_name:
                self.api.identity.delete_dynamic_group(g.id)

    def _create_policy(self) -> None:
        self._put_policy(
            self.policy_name,
            f"connector-provisioner: {self.network.name}'s connector reads its VPN profile",
            self._statements(),
        )

    def _delete_policy(self) -> None:
        self._drop_policy(self.policy_name)

    def _put_policy(self, name: str, description: str, statements: list[str]) -> None:
        """The compartment's policy `name` made with `statements`, or set to them."""
        import oci

        policies = oci.pagination.list_call_get_all_results(
            self.api.identity.list_policies, self.compartment
        ).data
        policy = next((p for p in policies if p.name == name), None)
        if policy is None:
            made = self.api.identity.create_policy(
                oci.identity.models.CreatePolicyDetails(
                    compartment_id=self.compartment,
                    name=name,
                    description=description,
                    statements=statements,
                    freeform_tags=self.tags,
                )
            ).data
            self.wait_for(
                lambda: self.api.identity.get_policy(made.id), ("ACTIVE",), f"policy {name}"
            )
        elif list(policy.statements) != statements:
            self.api.identity.update_policy(
                policy.id, oci.identity.models.UpdatePolicyDetails(statements=statements)
            )

    def _drop_policy(self, name: str) -> None:
        import oci

        policies = oci.pagination.list_call_get_all_results(
            self.api.identity.list_policies, self.compartment
        ).data
        for p in policies:
            if p.name == name:
                self.api.identity.delete_policy(p.id)

    # --- the instance --------------------------------------------------------------------

    def _launch(self, connector: DesiredConnector) -> None:
        import oci

        subnet = self.api.network.get_subnet(connector.subnet).data
        if subnet.availability_domain:
            ad = subnet.availability_domain
        else:  # a regional subnet: a pair's connectors in two domains where the region has two
            domains = self.api.identity.list_availability_domains(self.compartment).data
            ad = domains[connector.member % len(domains)].name
        image = connector.image or self._ubuntu(connector.size)
        details = oci.core.models.LaunchInstanceDetails(
            compartment_id=self.compartment,
            availability_domain=ad,
            display_name=self.instance_name,
            shape=connector.size,
            shape_config=oci.core.models.LaunchInstanceShapeConfigDetails(ocpus=1, memory_in_gbs=8)
            if connector.size.endswith(".Flex")
            else None,
            source_details=oci.core.models.InstanceSourceViaImageDetails(
                source_type="image", image_id=image
            ),
            create_vnic_details=oci.core.models.CreateVnicDetails(
                subnet_id=connector.subnet,
                assign_public_ip=connector.public_address,
                skip_source_dest_check=False,  # turned off by its own step, as the seed says
                nsg_ids=[self.seen.nsg_id] if self.seen.nsg_id else [],
                display_name=f"{self.instance_name}-vnic",
            ),
            metadata={"user_data": base64.b64encode(self.user_data(connector).encode()).decode()},
            freeform_tags={**self.tags, FINGERPRINT_TAG: connector.launch_fingerprint},
        )
        made = self.api.compute.launch_instance(details).data
        self.instance_id = made.id
        self.wait_for(
            lambda: self.api.compute.get_instance(made.id),
            ("RUNNING",),
            f"instance {self.instance_name}",
        )
        vnic = self._primary_vnic(made.id)
        self.progress(
            f"launched {self.instance_name} ({connector.size}, {ad}) at "
            f"{vnic.private_ip if vnic else '?'}"
        )

    def _await_ready(self, replacing: str) -> None:
        """The new instance says on its serial console that its tunnel is up (its cloud-init's
        connector-ready): read through a console history (captured, read, deleted), until
        then the rules stay on `replacing`. The instance needs no permission for it."""
        import oci

        instance = self.instance_id
        assert instance is not None
        compute = self.api.compute

        def look() -> tuple[bool, str]:
            history = compute.capture_console_history(
                oci.core.models.CaptureConsoleHistoryDetails(
                    instance_id=instance, display_name=f"{self.instance_name}-ready",
                    freeform_tags=self.tags,
                )
            ).data  # fmt: skip
            try:
                captured = self.wait_for(lambda: compute.get_console_history(history.id),
                                         ("SUCCEEDED", "FAILED"), "its console history")  # fmt: skip
                if captured != "SUCCEEDED":  # (a capture that failed: the next look asks again)
                    return False, "its console history could not be captured"
                # the newest megabyte at most (what a capture holds): only the mark is looked for
                content = compute.get_console_history_content(history.id, length=READY_BYTES).data
            finally:
                with contextlib.suppress(oci.exceptions.ServiceError):
                    compute.delete_console_history(history.id)
            return READY_MARK in bytes(content or b""), "its tunnel not up yet"

        self.wait_ready(self.instance_name, replacing, look, self.poll_seconds * 2)

    def _pinned_image_problem(self, image: str) -> str | None:
        import oci

        try:
            self.api.compute.get_image(image)
        except oci.exceptions.ServiceError as e:
            if e.status != 404:
                raise
            return f"image {image} is not in {self.location.region} (or not visible to you)"
        return None

    def _newest_image(self, size: str) -> tuple[str, str] | None:
        """The newest Ubuntu LTS platform image for the shape, and when it was published."""
        image = self._ubuntu_image(size)
        return str(image.id), str(image.time_created or "")

    def _ubuntu(self, shape: str) -> str:
        return str(self._ubuntu_image(shape).id)

    def _ubuntu_image(self, shape: str) -> Any:
        images = self.api.compute.list_images(
            self.compartment,
            operating_system=UBUNTU[0],
            operating_system_version=UBUNTU[1],
            shape=shape,
            sort_by="TIMECREATED",
            sort_order="DESC",
        ).data
        if not images:
            raise CloudError(
                f"no {' '.join(UBUNTU)} image for shape {shape} in {self.location.region}"
            )
        return images[0]

    def _terminate(self) -> None:
        import oci

        instance_id = self.instance_id
        if instance_id is None:
            return
        self._shut_down(instance_id)
        try:
            self.api.compute.terminate_instance(instance_id)
        except oci.exceptions.ServiceError as e:
            if e.status != 404 or not self.gone(
                lambda: self.api.compute.get_instance(instance_id), ("TERMINATED",)
            ):
                raise
        self.wait_for(
            lambda: self.api.compute.get_instance(instance_id),
            ("TERMINATED",),
            f"instance {self.instance_name} to terminate",
            gone_ok=True,
        )
        self.instance_id = self.vnic_id = self.private_ip_id = None

    def _retire(self, instance: str) -> None:
        """An instance not of ours stopped gracefully (SOFTSTOP), never terminated."""
        self.api.compute.instance_action(instance, "SOFTSTOP")
        self.wait_for(lambda: self.api.compute.get_instance(instance), ("STOPPED",),
                      f"instance {instance}")  # fmt: skip

    def _shut_down(self, instance_id: str) -> None:
        """A running connector shut down first (SOFTSTOP: the OS's own shutdown): its OpenVPN
        tells the VPN service it leaves, which stops sending to it, and forwards what is in
        flight; a pair member's watchdog hands the routes over before that."""
        import oci

        try:
            state = self.api.compute.get_instance(instance_id).data.lifecycle_state
            if state != "RUNNING":
                return
            self.api.compute.instance_action(instance_id, "SOFTSTOP")
        except oci.exceptions.ServiceError as e:
            if e.status in (404, 409):  # gone, or no longer running: terminated as it is
                return
            raise
        self.wait_for(lambda: self.api.compute.get_instance(instance_id), ("STOPPED",),
                      f"instance {self.instance_name} to shut down", gone_ok=True)  # fmt: skip

    def _start(self) -> None:
        instance_id = self.instance_id
        assert instance_id is not None
        self.api.compute.instance_action(instance_id, "START")
        self.wait_for(
            lambda: self.api.compute.get_instance(instance_id),
            ("RUNNING",),
            f"instance {self.instance_name} to start",
        )

    def _enable_forwarding(self) -> None:
        # seed 'Set Source/Dest Check', Oracle: skip the source/destination check on the VNIC
        import oci

        assert self.vnic_id is not None
        self.api.network.update_vnic(
            self.vnic_id, oci.core.models.UpdateVnicDetails(skip_source_dest_check=True)
        )


def connector_vault(state: OciState) -> str:
    assert state.network.connector is not None
    return str(state.network.connector.vault)
