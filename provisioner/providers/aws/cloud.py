"""AWS as the rest of the toolkit sees it (no SDK here): where a network is, what the file
says of it, and where the provider, the watchdog's mechanism, the cloud-init and the sandbox
part are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...clouds import Cloud, CloudSchema
from ...errors import SpecError
from ...model import Location

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL"  # boto3's own: the sandbox's moto (sandbox serve)
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"


@dataclass(frozen=True)
class AwsLocation(Location):
    region: str
    vpc: str
    # another account's VPC: the role assumed for this network's calls (and its external id)
    role: str | None = field(default=None, compare=False)
    external_id: str | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        return f"{self.vpc} in {self.region}"


def location(f: Any) -> AwsLocation:
    role = None
    if f.has("assume_role"):
        role = f.text("assume_role", pattern=ROLE_ARN_PATTERN,
                      example="arn:aws:iam::111122223333:role/connector-provisioner")  # fmt: skip
    external_id = None
    if f.has("external_id"):
        if role is None:
            raise SpecError(f.field("external_id"), "is given without assume_role")
        external_id = f.text("external_id", pattern=r"^[\w+=,.@:/-]{2,1224}$", example="ops-42")
    return AwsLocation(
        region=f.text("region", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$", example="us-east-1"),
        vpc=f.text("vpc", pattern=r"^vpc-[0-9a-f]{8,17}$", example="vpc-0abc1234"),
        role=role,
        external_id=external_id,
    )


CLOUD = Cloud(
    name="aws",
    title="AWS",
    package=__package__ or "",
    location=AwsLocation,
    schema=CloudSchema(
        ("region", "vpc", "assume_role", "external_id"),
        location,
        route_table=(r"^rtb-[0-9a-f]{8,17}$", "rtb-0123abcd"),
        security_group=(r"^sg-[0-9a-f]{8,17}$", "sg-0123abcd"),
        subnet=(r"^subnet-[0-9a-f]{8,17}$", "subnet-0123abcd"),
        ha_mechanism=(
            "the standby's watchdog moves the routes to itself with ec2:ReplaceRoute, in route "
            "tables tagged connector-provisioner:ha=<network>"
        ),
        make_before_break=True,
    ),
    provider="provisioner.providers.aws.network:AwsNetwork",
    watchdog="provisioner.providers.aws.watchdog",
    credentials=(
        ("AWS_PROFILE, AWS_*", "AWS: boto3's own chain (environment, profile, SSO, role)"),
    ),
    endpoint=(
        ENDPOINT_VARIABLE,
        "AWS's address instead of the real one (what `sandbox serve` exports)",
    ),  # fmt: skip
    secret_variables=("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    sandbox="provisioner.providers.aws.world:sandbox_part",
    example_flags="--cloud aws --region us-east-1 --vpc vpc-0abc --connector-subnet subnet-0123",
)
