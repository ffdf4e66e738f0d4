"""The connector's identity on AWS: its VPN profile as an SSM SecureString and the role and
instance profile that may read exactly that parameter. Each create/delete is safe to repeat."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from ...model import Part
from ...redact import protect
from .common import (
    PAIR_POLICY,
    POLICY_NAME,
    READY_POLICY,
    READY_TAG,
    TAG,
    WATCH_TAG,
    AwsSeen,
    AwsState,
    done_already,
)


class Identity(AwsState):
    def _create_vpn_profile(self, overwrite: bool = False) -> None:
        assert self.network.connector is not None
        source = self.network.connector.member_profile(self.member)
        content = source.read().decode("utf-8")
        # the request body, with the profile in it, is what botocore.endpoint logs at DEBUG
        protect(content, "botocore.endpoint")
        args: dict[str, Any] = {
            "Name": self.parameter,
            "Value": content,
            "Type": "SecureString",
            "Description": f"connector-provisioner VPN profile for {self.network.name}; "
            f"sha256:{source.fingerprint}",
        }
        if overwrite:
            self.ssm.put_parameter(**args, Overwrite=True)
            return
        try:
            self.ssm.put_parameter(**args, Tags=[{"Key": TAG, "Value": self.network.name}])
        except ClientError as e:
            if e.response["Error"]["Code"] != "ParameterAlreadyExists":
                raise
            self.ssm.put_parameter(**args, Overwrite=True)

    def _update_vpn_profile(self) -> None:
        self._create_vpn_profile(overwrite=True)

    def _delete_vpn_profile(self) -> None:
        try:
            self.ssm.delete_parameter(Name=self.parameter)
        except ClientError as e:
            if e.response["Error"]["Code"] != "ParameterNotFound":
                raise

    def _parameter_arn(self) -> str:
        account = self._account()
        return f"arn:aws:ssm:{self.location.region}:{account}:parameter{self.parameter}"

    def _account(self) -> str:
        # the role's ARN carries the account: no STS call needed
        return str(self.iam.get_role(RoleName=self.role)["Role"]["Arn"].split(":")[4])

    def _create_role(self) -> None:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        done_already(
            lambda: self.iam.create_role(
                RoleName=self.role,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"connector-provisioner: the connector of {self.network.name} reads its VPN profile",
                Tags=[{"Key": TAG, "Value": self.network.name}],
            ),
            "EntityAlreadyExists",
        )
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": self._parameter_arn()}
            ],
        }
        self.iam.put_role_policy(
            RoleName=self.role, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy)
        )
        self.iam.put_role_policy(
            RoleName=self.role, PolicyName=READY_POLICY, PolicyDocument=json.dumps(self._ready())
        )

    def _ready(self) -> dict[str, object]:
        """The connector may set two tags on the network's own instances: READY_TAG, how it
        says its tunnel is up (what apply waits for before it moves routes to it), and a pair
        member's WATCH_TAG, its watchdog's last word (what `status` shows)."""
        return {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": f"arn:aws:ec2:{self.location.region}:*:instance/*",
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{TAG}": self.network.name},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [READY_TAG, WATCH_TAG]},
                },
            }],
        }  # fmt: skip

    def _delete_role(self) -> None:
        # its inline policies first (a pair's too, if an interrupted run left it): IAM deletes
        # no role that still has one
        left = [PAIR_POLICY] if PAIR_POLICY in self.seen.role_policies.get(self.role, set()) else []
        for name in (POLICY_NAME, READY_POLICY, *left):
            done_already(
                partial(self.iam.delete_role_policy, RoleName=self.role, PolicyName=name),
                "NoSuchEntity",
            )
        done_already(lambda: self.iam.delete_role(RoleName=self.role), "NoSuchEntity")

    def _create_instance_profile(self) -> None:
        done_already(
            lambda: self.iam.create_instance_profile(
                InstanceProfileName=self.role, Tags=[{"Key": TAG, "Value": self.network.name}]
            ),
            "EntityAlreadyExists",
        )
        if not self._instance_profile_state()[1]:
            self.iam.add_role_to_instance_profile(InstanceProfileName=self.role, RoleName=self.role)

    def _delete_instance_profile(self) -> None:
        try:
            ip = self.iam.get_instance_profile(InstanceProfileName=self.role)["InstanceProfile"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "NoSuchEntity":
                return
            raise
        for r in ip.get("Roles", []):
            self.iam.remove_role_from_instance_profile(
                InstanceProfileName=self.role, RoleName=r["RoleName"]
            )
        self.iam.delete_instance_profile(InstanceProfileName=self.role)

    def _member_identity(self, member: int, seen: AwsSeen) -> tuple[Part, Part]:
        """A connector's role (with its one policy) and instance profile, as they are; the
        role's inline policies into `seen`."""
        saved, self.role = self.role, self.role_of(member)
        try:
            role, policies = self._role_state()
            instance_profile, attached = self._instance_profile_state()
        finally:
            name, self.role = self.role, saved
        seen.role_policies[name] = policies
        return (
            Part(
                "role",
                name,
                "lets the connector read its own profile parameter and say it is ready, "
                "nothing else",
                role,
                complete=role and {POLICY_NAME, READY_POLICY} <= policies,
                member=member,
            ),
            Part(
                "instance-profile",
                name,
                "hands the role to the connector VM",
                instance_profile,
                complete=attached,
                member=member,
            ),
        )

    def _role_state(self) -> tuple[bool, set[str]]:
        """(the role exists, the names of its inline policies: one read for all of them). Of
        the role the handlers act on (`self.role`)."""
        try:
            self.iam.get_role(RoleName=self.role)
            names = self.iam.list_role_policies(RoleName=self.role)["PolicyNames"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "NoSuchEntity":
                return False, set()
            raise
        return True, set(names)

    def _instance_profile_state(self) -> tuple[bool, bool]:
        """(the instance profile exists, our role is in it)"""
        try:
            ip = self.iam.get_instance_profile(InstanceProfileName=self.role)["InstanceProfile"]
        except ClientError as e:
            if e.response["Error"]["Code"] == "NoSuchEntity":
                return False, False
            raise
        return True, any(r["RoleName"] == self.role for r in ip.get("Roles", []))
