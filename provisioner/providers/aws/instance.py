"""The connector instance on AWS: image, launch, terminate, wait."""

from __future__ import annotations

import gzip
import time
from typing import Any

from botocore.exceptions import ClientError

from ...bootstrap import render_user_data
from ...errors import CloudError
from ...model import DesiredConnector
from .common import (
    ARCHES,
    FINGERPRINT_TAG,
    MEMBER_TAG,
    READY_TAG,
    TAG,
    UBUNTU_PARAMETER,
    AwsState,
)


class Instance(AwsState):
    def _image(self, connector: DesiredConnector) -> str:
        if connector.image:
            return connector.image
        return self._default_image(connector.size)

    def _newest_image(self, size: str) -> tuple[str, str] | None:
        """The Ubuntu release the public parameter names now, and its creation date."""
        image = self._default_image(size)
        found = self.ec2.describe_images(ImageIds=[image])["Images"]
        return image, str(found[0].get("CreationDate", "")) if found else ""

    def _default_image(self, size: str) -> str:
        """The image Ubuntu's public parameter names for `size`'s architecture in this region
        (read once per provider and size: plan's check and the launch share it)."""
        known: dict[str, str] = self.__dict__.setdefault("_default_images", {})
        if size not in known:
            types = self.ec2.describe_instance_types(InstanceTypes=[size])["InstanceTypes"]
            supported = types[0]["ProcessorInfo"]["SupportedArchitectures"] if types else ["x86_64"]
            arch = next((ARCHES[a] for a in supported if a in ARCHES), "amd64")
            name = UBUNTU_PARAMETER.format(arch=arch)
            known[size] = str(self.ssm.get_parameter(Name=name)["Parameter"]["Value"])
        return known[size]

    def image_problem(self, connector: DesiredConnector) -> str | None:
        if connector.image:
            return super().image_problem(connector)
        try:
            self._default_image(connector.size)
        except ClientError as e:
            region = self.location.region
            if e.response["Error"]["Code"] == "ParameterNotFound":
                return (f"no default image in {region}: Ubuntu's public parameter "
                        f"{UBUNTU_PARAMETER.format(arch='<arch>')} is not there")  # fmt: skip
            raise CloudError(
                f"network {self.network.name}: reading the default image in {region}: "
                f"{self.error_text(e)}; nothing was changed"
            ) from None
        return None

    def _pinned_image_problem(self, image: str) -> str | None:
        try:
            found = self.ec2.describe_images(ImageIds=[image])["Images"]
        except ClientError as e:
            if e.response["Error"]["Code"] not in (
                "InvalidAMIID.NotFound",
                "InvalidAMIID.Malformed",
            ):
                raise
            found = []
        return None if found else f"image {image} is not in {self.location.region}"

    def user_data(self, connector: DesiredConnector) -> str:
        return render_user_data("aws", connector, self.parameter, self.location.region)

    def _launch(self, connector: DesiredConnector) -> None:
        image = self._image(connector)
        args = self._run_args(connector, image)
        deadline = time.monotonic() + self.iam_propagation_seconds
        while True:
            try:
                inst = self.ec2.run_instances(**args)["Instances"][0]
                break
            except ClientError as e:
                # a new instance profile takes a few seconds to be usable by EC2
                message = e.response["Error"].get("Message", "").lower()
                if "instance profile" not in message or time.monotonic() > deadline:
                    raise
                self.progress(f"waiting for IAM to propagate instance profile {self.role}")
                time.sleep(self.poll_seconds)
        self.instance = inst["InstanceId"]
        self.interface = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
        self.progress(f"launched {self.instance} ({connector.size}, {image})")
        self._wait(self.instance, "running")

    def _root_disk(self, image: str) -> tuple[str, int]:
        """The image's root device and its size (GiB): the connector's disk is as big."""
        found = self.ec2.describe_images(ImageIds=[image])["Images"][0]
        root = found.get("RootDeviceName", "/dev/sda1")
        size = next(
            (
                m["Ebs"].get("VolumeSize", 8)
                for m in found.get("BlockDeviceMappings", [])
                if m.get("DeviceName") == root and "Ebs" in m
            ),
            8,
        )
        return root, size

    def _run_args(self, connector: DesiredConnector, image: str) -> dict[str, Any]:
        """RunInstances' request for the connector."""
        root, size = self._root_disk(image)
        tags = [
            *self.tags,
            {"Key": FINGERPRINT_TAG, "Value": connector.launch_fingerprint},
            {"Key": MEMBER_TAG, "Value": str(connector.member)},
        ]
        return {
            "ImageId": image,
            "InstanceType": connector.size,
            "MinCount": 1,
            "MaxCount": 1,
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "SubnetId": connector.subnet,
                    "Groups": [self._group()],
                    "DeleteOnTermination": True,
                    # seed remote access step 3: it dials the VPN service; behind an internet
                    # gateway only a public address gets out (the subnet may map none itself)
                    "AssociatePublicIpAddress": connector.public_address,
                }
            ],
            "IamInstanceProfile": {"Name": self.role},
            # gzip'd: EC2 takes at most 16 KB of user-data, a pair's watchdog is in it, and
            # cloud-init unzips what it is given ("gzip compressed content")
            "UserData": gzip.compress(self.user_data(connector).encode(), mtime=0),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "BlockDeviceMappings": [
                {
                    "DeviceName": root,
                    "Ebs": {
                        "Encrypted": True,
                        "VolumeType": "gp3",
                        "VolumeSize": max(8, size),
                        "DeleteOnTermination": True,
                    },
                }
            ],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": self.tags},
                {"ResourceType": "network-interface", "Tags": self.tags},
            ],
        }

    def _terminate(self) -> None:
        if not self.instance:
            return
        self.ec2.terminate_instances(InstanceIds=[self.instance])
        # its ENI must be gone before the security group can be deleted
        self._wait(self.instance, "terminated")
        self.instance = self.interface = None
        # EC2 deletes the primary ENI with the instance; sweep any of ours left detached
        leftovers = self.ec2.describe_network_interfaces(
            Filters=[
                {"Name": "vpc-id", "Values": [self.location.vpc]},
                {"Name": f"tag:{TAG}", "Values": [self.network.name]},
                {"Name": "status", "Values": ["available"]},
            ]
        )["NetworkInterfaces"]
        for eni in leftovers:
            self.ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])

    def _await_ready(self, replacing: str) -> None:
        """The new VM tags itself READY_TAG once its tunnel is up (its cloud-init's
        connector-ready): until then the routes stay on `replacing`."""
        instance = self.instance
        assert instance is not None

        def look() -> tuple[bool, str]:
            reservations = self.ec2.describe_instances(InstanceIds=[instance])["Reservations"]
            found = reservations[0]["Instances"][0] if reservations else {}
            tags = {t["Key"]: t["Value"] for t in found.get("Tags", [])}
            if READY_TAG in tags:
                return True, "ready"
            return False, f"{found.get('State', {}).get('Name', 'gone')}, its tunnel not up yet"

        self.wait_ready(instance, replacing, look, self.poll_seconds)

    def _retire(self, instance: str) -> None:
        self.ec2.stop_instances(InstanceIds=[instance])
        self._wait(instance, "stopped")

    def _wait(self, instance: str, state: str) -> None:
        def look() -> tuple[bool, str]:
            reservations = self.ec2.describe_instances(InstanceIds=[instance])["Reservations"]
            current = (
                reservations[0]["Instances"][0]["State"]["Name"] if reservations else "terminated"
            )
            return current == state, f"{current} -> {state}"

        self.wait_until(instance, look, pause=self.poll_seconds)

    def _interface(self) -> str:
        if not self.interface:
            raise CloudError("the connector has no network interface yet")
        return self.interface
