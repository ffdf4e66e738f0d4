"""The connector VM on Azure: its public IP, its NIC (static private IP, IP forwarding), the VM,
and the VM extension that hands it the VPN profile."""

from __future__ import annotations

import base64
import contextlib
from typing import Any

from ...bootstrap import render_user_data
from ...errors import CloudError
from ...model import ConnectorState, DesiredConnector, ObservedConnector
from ...redact import protect
from .common import EXTENSION, FINGERPRINT_TAG, PEER_TAG, UBUNTU, AzureSeen, AzureState, short

POWER_STATES = {
    "running": ConnectorState.RUNNING,
    "starting": ConnectorState.PENDING,
    "stopping": ConnectorState.STOPPING,
    "deallocating": ConnectorState.STOPPING,
    "stopped": ConnectorState.STOPPED,
    "deallocated": ConnectorState.STOPPED,
}
PROFILE_PATH = "/etc/openvpn/client/connector.conf"


class Instance(AzureState):
    def user_data(self, connector: DesiredConnector) -> str:
        return render_user_data("azure", connector, EXTENSION, self.location.location)

    # --- observe -------------------------------------------------------------------------

    def _observe_connector(
        self, nics: list[Any], seen: AzureSeen
    ) -> tuple[ObservedConnector | None, bool, list[ObservedConnector]]:
        """(the member's connector, whether a NIC or public IP of ours is left without its VM,
        the older connectors of its other names); its VM's tags into `seen`. A VM made beside
        the one it replaces has the member's other names: the newer of the two is the
        member's, and the member's names become its names. The other names' VM is read only
        where their NIC is (a single connector costs no read more)."""
        from azure.core.exceptions import ResourceNotFoundError

        ours = {n.name: n for n in nics if self.rg.lower() in n.id.lower()}
        found = []
        left: dict[str, Any] | None = None
        for successor in (False, True):
            names = self.member_names(self.member, successor)
            if successor and names["nic_name"] not in ours:
                continue
            try:
                vm = self.compute.virtual_machines.get(
                    self.rg, names["vm_name"], expand="instanceView"
                )
            except ResourceNotFoundError:
                # a NIC or public IP of ours without their VM: what a failed destroy or launch left
                with self.as_vm(names):
                    if names["nic_name"] in ours or self._exists_public_ip():
                        left = names
                continue
            found.append((str(getattr(vm, "time_created", None) or ""), names, vm))
        if left is not None:
            seen.leftovers[self.member] = left
        if not found:
            return None, left is not None, []
        found.sort(key=lambda f: f[0])
        older = []
        for _, names, vm in found[:-1]:
            older.append(self._connector(ours.get(names["nic_name"]), names, vm))
            seen.older[names["vm_name"]] = older[-1].interface
        _, names, vm = found[-1]
        for key in ("vm_name", "nic_name", "ip_name"):
            setattr(self, key, names[key])
        connector = self._connector(ours.get(names["nic_name"]), names, vm)
        seen.vm_tags[self.member] = dict(vm.tags or {})
        return connector, left is not None, older

    def _connector(self, nic: Any, names: dict[str, Any], vm: Any) -> ObservedConnector:
        config = (nic.ip_configurations or [None])[0] if nic else None
        address = config.private_ip_address if config else None
        public_ip = None
        if config is not None and config.public_ip_address is not None:
            public_ip = self.net.public_ip_addresses.get(
                self.rg, short(config.public_ip_address.id)
            ).ip_address
        codes = [s.code for s in (vm.instance_view.statuses if vm.instance_view else None) or []]
        power = next((c.split("/", 1)[1] for c in codes if c.startswith("PowerState/")), "starting")
        image = vm.storage_profile.image_reference
        return ObservedConnector(
            instance=names["vm_name"],
            state=POWER_STATES.get(power, ConnectorState.PENDING),
            interface=address,  # what a UDR names as next hop
            private_ip=address,
            forwarding=bool(nic and nic.enable_ip_forwarding),
            size=str(getattr(vm.hardware_profile.vm_size, "value", vm.hardware_profile.vm_size)),
            # the version it was made with (`latest` resolved: Azure's read-only exactVersion)
            image=f"{image.publisher}:{image.offer}:{image.sku}:"
            f"{getattr(image, 'exact_version', None) or image.version}"
            if image
            else "",
            subnet=short(config.subnet.id) if config and config.subnet else "",
            fingerprint=(vm.tags or {}).get(FINGERPRINT_TAG, ""),
            public_ip=public_ip,
            member=self.member,
        )

    def _newest_image(self, size: str) -> tuple[str, str] | None:
        """The Marketplace's newest version of the Ubuntu LTS image (what `latest` launches),
        and the day its build number names (Canonical's: 24.04.YYYYMMDDn)."""
        found = self.compute.virtual_machine_images.list(
            self.location.location, UBUNTU["publisher"], UBUNTU["offer"], UBUNTU["sku"],
            orderby="name desc", top=1,
        )  # fmt: skip
        if not found:
            return None
        version = str(found[0].name)
        build = version.rsplit(".", 1)[-1]
        since = f"{build[:4]}-{build[4:6]}-{build[6:8]}" if len(build) >= 8 else ""
        return f"{UBUNTU['publisher']}:{UBUNTU['offer']}:{UBUNTU['sku']}:{version}", since

    def _exists_public_ip(self) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.net.public_ip_addresses.get(self.rg, self.ip_name)
        except ResourceNotFoundError:
            return False
        return True

    def _delete_connector_leftovers(self) -> None:
        names = self.seen.leftovers.get(self.member)
        if names is None or names["vm_name"] == self.vm_name and self.connector_ip:
            return  # (its names are the member's VM's own now: nothing is left over)
        with self.as_vm(names):
            self._terminate()

    def _observe_extension(self) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            found = self.compute.virtual_machine_extensions.get(self.rg, self.vm_name, EXTENSION)
        except ResourceNotFoundError:
            return None
        return {"settings": found.settings or {}, "state": found.provisioning_state}

    # --- apply ---------------------------------------------------------------------------

    def _launch(self, connector: DesiredConnector) -> None:
        subnet = next(
            (s for s in self.seen.vnet.subnets or [] if s.name == connector.subnet), None
        ) if self.seen.vnet is not None else None  # fmt: skip
        if subnet is None:
            raise CloudError(f"subnet {connector.subnet} is not in vnet {self.location.vnet}")
        public = self._public_address() if connector.public_address else None
        # a static private address: a dynamic one may change when the VM is deallocated, and
        # every route names it
        address = self.free_address(subnet, self.connector_ip)
        nic = self._interface(connector, subnet, address, public)
        image = connector.image.split(":") if connector.image else list(UBUNTU.values())
        if len(image) != 4:
            raise CloudError(f"image {connector.image!r} is not publisher:offer:sku:version")
        user_data = self.user_data(connector)
        tags = {**self.tags, FINGERPRINT_TAG: connector.launch_fingerprint}
        peer = self.held[1 - self.member]["connector_ip"] if connector.ha else None
        if peer:  # its watchdog's peer (the other's is set once this one has an address)
            tags[PEER_TAG] = peer
        self.wait(
            self.compute.virtual_machines.begin_create_or_update(
                self.rg, self.vm_name, self._vm(connector, image, user_data, tags, nic.id)
            ),
            f"VM {self.vm_name}",
        )
        self.connector_ip = address
        self.progress(f"launched {self.vm_name} ({connector.size}, {':'.join(image)}) at {address}")

    def _public_address(self) -> Any:
        from azure.mgmt.network import models as network

        return self.wait(
            self.net.public_ip_addresses.begin_create_or_update(
                self.rg,
                self.ip_name,
                network.PublicIPAddress(
                    location=self.location.location,
                    tags=self.tags,
                    sku=network.PublicIPAddressSku(name="Standard"),
                    properties=network.PublicIPAddressPropertiesFormat(
                        public_ip_allocation_method="Static",
                        public_ip_address_version="IPv4",
                    ),
                ),
            ),
            f"public IP {self.ip_name}",
        )

    def _interface(
        self, connector: DesiredConnector, subnet: Any, address: str, public: Any
    ) -> Any:
        """Its NIC: the connector's NSG, a static private address, the public one, and (one
        of a pair) the load balancer's pool once there is one."""
        from azure.mgmt.network import models as network

        return self.wait(
            self.net.network_interfaces.begin_create_or_update(
                self.rg,
                self.nic_name,
                network.NetworkInterface(
                    location=self.location.location,
                    tags=self.tags,
                    properties=network.NetworkInterfacePropertiesFormat(
                        network_security_group=network.NetworkSecurityGroup(
                            id=self.rid("networkSecurityGroups", self.nsg_name)
                        ),
                        ip_configurations=[
                            network.NetworkInterfaceIPConfiguration(
                                name="ipconfig1",
                                properties=network.NetworkInterfaceIPConfigurationPropertiesFormat(
                                    subnet=network.Subnet(id=subnet.id),
                                    private_ip_allocation_method="Static",
                                    private_ip_address=address,
                                    public_ip_address=network.PublicIPAddress(id=public.id)
                                    if public
                                    else None,
                                    # one of a pair: behind its load balancer, once there is one
                                    load_balancer_backend_address_pools=[
                                        network.BackendAddressPool(id=self.seen.pool_id)
                                    ]
                                    if connector.ha and self.seen.pool_id
                                    else None,
                                ),
                            )
                        ],
                    ),
                ),
            ),
            f"network interface {self.nic_name}",
        )

    def _vm(self, connector: DesiredConnector, image: list[str], user_data: str,
            tags: dict[str, str], nic: str) -> Any:  # fmt: skip
        """The VM: its size and image, a disk that goes with it, the cloud-init user data, an
        SSH key nobody holds, and its NIC."""
        from azure.mgmt.compute import models as compute

        return compute.VirtualMachine(
            location=self.location.location,
            tags=tags,
            properties=compute.VirtualMachineProperties(
                hardware_profile=compute.HardwareProfile(vm_size=connector.size),
                storage_profile=compute.StorageProfile(
                    image_reference=compute.ImageReference(
                        publisher=image[0], offer=image[1], sku=image[2], version=image[3]
                    ),
                    os_disk=compute.OSDisk(
                        create_option="FromImage",
                        delete_option="Delete",
                        managed_disk=compute.ManagedDiskParameters(
                            storage_account_type="StandardSSD_LRS"
                        ),
                    ),
                ),
                os_profile=compute.OSProfile(
                    computer_name=self.vm_name[:64],
                    admin_username="connector",
                    custom_data=base64.b64encode(user_data.encode()).decode(),
                    linux_configuration=compute.LinuxConfiguration(
                        disable_password_authentication=True,
                        ssh=compute.SshConfiguration(
                            public_keys=[
                                compute.SshPublicKey(
                                    path="/home/connector/.ssh/authorized_keys",
                                    key_data=_unusable_key(),
                                )
                            ]
                        ),
                    ),
                ),
                network_profile=compute.NetworkProfile(
                    network_interfaces=[
                        compute.NetworkInterfaceReference(
                            id=nic,
                            properties=compute.NetworkInterfaceReferenceProperties(primary=True),
                        )
                    ]
                ),
            ),
        )

    def _retire(self, instance: str) -> None:
        """A VM not of ours (its full id), powered off gracefully: stopped, not deallocated,
        not deleted."""
        group = instance.split("/resourceGroups/", 1)[1].split("/", 1)[0]
        self.wait(self.compute.virtual_machines.begin_power_off(group, short(instance)),
                  f"power-off of {short(instance)}")  # fmt: skip

    def _terminate(self) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        # first an OS shutdown (a delete is none): the connector's OpenVPN tells the VPN
        # service it leaves, which stops sending to it, and forwards what is in flight; a pair
        # member's watchdog hands the front over before that
        with contextlib.suppress(ResourceNotFoundError):
            self.wait(
                self.compute.virtual_machines.begin_power_off(
                    self.rg, self.vm_name, skip_shutdown=False
                ),
                f"VM {self.vm_name} to shut down",
            )
        for what, delete in (
            (f"VM {self.vm_name}", lambda: self.compute.virtual_machines.begin_delete(self.rg, self.vm_name)),
            (f"network interface {self.nic_name}", lambda: self.net.network_interfaces.begin_delete(self.rg, self.nic_name)),
            (f"public IP {self.ip_name}", lambda: self.net.public_ip_addresses.begin_delete(self.rg, self.ip_name)),
        ):  # fmt: skip
            with contextlib.suppress(ResourceNotFoundError):
                self.wait(delete(), what)

    def _enable_forwarding(self) -> None:
        # seed 'Set Source/Dest Check', Azure: "IP forwarding must be enabled at the VNIC"
        nic = self.net.network_interfaces.get(self.rg, self.nic_name)
        nic.enable_ip_forwarding = True  # PUT replaces the NIC: send it back whole
        self.wait(
            self.net.network_interfaces.begin_create_or_update(self.rg, self.nic_name, nic),
            f"network interface {self.nic_name}",
        )

    def _create_vpn_profile(self) -> None:
        from azure.mgmt.compute import models

        assert self.network.connector is not None
        connector = self.network.connector
        profile = connector.member_profile(self.member)
        content = profile.read().decode("utf-8")
        encoded = base64.b64encode(content.encode()).decode()
        script = (
            "#!/bin/sh\nset -eu\n"
            "cloud-init status --wait >/dev/null 2>&1 || true\n"  # the setup script is there
            f"umask 077\nmkdir -p {PROFILE_PATH.rsplit('/', 1)[0]}\n"
            f"echo '{encoded}' | base64 -d > {PROFILE_PATH}\n"
            "/usr/local/sbin/connector-setup\n"
            # the extension succeeds once the tunnel is up (an IPv4 address on a tun device):
            # apply moves the routes to a VM made beside another only then
            "for i in $(seq 1 180); do\n"
            "  ip -4 -o addr show | awk '$2 ~ /^tun/ {up=1} END {exit !up}' && exit 0\n"
            "  sleep 5\ndone\n"
            "echo 'connector-provisioner: no tunnel after 15 minutes' >&2\nexit 1\n"
        )
        wrapped = base64.b64encode(script.encode()).decode()
        # request bodies are what azure-core's logging prints at DEBUG: the profile in every
        # form it travels in
        for secret in (content, encoded, wrapped):
            protect(secret, "azure")
        self.wait(
            self.compute.virtual_machine_extensions.begin_create_or_update(
                self.rg,
                self.vm_name,
                EXTENSION,
                models.VirtualMachineExtension(
                    location=self.location.location,
                    tags=self.tags,
                    properties=models.VirtualMachineExtensionProperties(
                        publisher="Microsoft.Azure.Extensions",
                        type="CustomScript",
                        type_handler_version="2.1",
                        auto_upgrade_minor_version=True,
                        force_update_tag=profile.fingerprint,
                        settings={"profileSha256": profile.fingerprint},
                        # encrypted by Azure to this VM alone, never returned by a GET
                        protected_settings={"script": wrapped},
                    ),
                ),
            ),
            f"extension {EXTENSION}",
        )

    def _await_ready(self, replacing: str) -> None:
        """The new VM's profile extension succeeds once its tunnel is up (its script waits for
        it): until then the routes stay on `replacing`. (Its create already waited; an
        interrupted run's is waited for here.)"""
        vm = self.vm_name

        def look() -> tuple[bool, str]:
            state = (self._observe_extension() or {}).get("state") or "not there"
            if state == "Failed":
                raise CloudError(f"{vm}: its {EXTENSION} extension failed (no tunnel)")
            return state == "Succeeded", f"extension {state}"

        self.wait_ready(vm, replacing, look, 2.0)

    def _update_vpn_profile(self) -> None:
        self._create_vpn_profile()

    def _delete_vpn_profile(self) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.wait(
                self.compute.virtual_machine_extensions.begin_delete(
                    self.rg, self.vm_name, EXTENSION
                ),
                f"extension {EXTENSION}",
            )


def _unusable_key() -> str:
    """Azure wants an SSH key when password login is off; this one's private half is never
    kept, so nobody can log in with it (the connector needs no login)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode() + " connector-provisioner-no-login"
