"""The least the IAM user or role running `provision plan`, `apply`, `status`, `doctor` and
`destroy` on AWS needs: one policy. `tests/test_aws_pair.py` checks it against every call the
provider makes over a single connector's and a pair's whole life, and that it grants nothing
those calls do not need.

    python -m provisioner.providers.aws.permissions      # the policy document, as JSON

Scoped where IAM can scope: the roles and instance profiles to our names (`cp-*`), the profile
parameters to `/connector-provisioner/*`, the Ubuntu image parameter to Canonical's public path,
PassRole to our roles and to EC2, and starting or terminating an instance to ours (tagged
`connector-provisioner:network`). EC2's Describe calls and the writes on the user's own route
tables and security groups (whose ids the topology names) take no narrower resource that does
not also depend on the user's own tags.
"""

from __future__ import annotations

import json
from typing import Any

from .common import TAG

READS = (
    "ec2:DescribeVpcs",
    "ec2:DescribeSubnets",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeNetworkAcls",  # the doctor's and status's filters at the app hosts
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",  # the size's architecture, for the image
    "ec2:DescribeImages",
    "ssm:DescribeParameters",
    "servicequotas:GetServiceQuota",  # routes per table, rules per group: counted at plan
)
EC2_WRITES = (
    # the connector, its forwarding flag and its own group
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "ec2:ModifyNetworkInterfaceAttribute",
    "ec2:CreateSecurityGroup",
    "ec2:DeleteSecurityGroup",
    # rules in the connector's group and in the app groups the topology names
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupIngress",
    # routes in the route tables the topology selects
    "ec2:CreateRoute",
    "ec2:ReplaceRoute",
    "ec2:DeleteRoute",
)
OUR_INSTANCES = ("ec2:StartInstances", "ec2:TerminateInstances")
ROLES = (
    "iam:GetRole",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:ListRolePolicies",
)
INSTANCE_PROFILES = (
    "iam:GetInstanceProfile",
    "iam:CreateInstanceProfile",
    "iam:DeleteInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",
)
PARAMETERS = ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:GetParameter")
# needed without being called: RunInstances hands the connector its role
IMPLIED = ("iam:PassRole",)

ACTIONS = (
    *READS,
    *EC2_WRITES,
    *OUR_INSTANCES,
    *ROLES,
    *INSTANCE_PROFILES,
    *PARAMETERS,
    *IMPLIED,
)


def policy() -> dict[str, Any]:
    """The IAM policy document."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": list(READS), "Resource": "*"},
            {
                "Sid": "ConnectorsRoutesRules",
                "Effect": "Allow",
                "Action": list(EC2_WRITES),
                "Resource": "*",
            },  # fmt: skip
            {
                "Sid": "OurInstancesOnly",
                "Effect": "Allow",
                "Action": list(OUR_INSTANCES),
                "Resource": "arn:aws:ec2:*:*:instance/*",
                "Condition": {"Null": {f"aws:ResourceTag/{TAG}": "false"}},
            },
            {
                "Sid": "OurRoles",
                "Effect": "Allow",
                "Action": list(ROLES),
                "Resource": "arn:aws:iam::*:role/cp-*",
            },  # fmt: skip
            {
                "Sid": "OurInstanceProfiles",
                "Effect": "Allow",
                "Action": list(INSTANCE_PROFILES),
                "Resource": "arn:aws:iam::*:instance-profile/cp-*",
            },  # fmt: skip
            {
                "Sid": "PassOurRolesToEc2",
                "Effect": "Allow",
                "Action": list(IMPLIED),
                "Resource": "arn:aws:iam::*:role/cp-*",
                "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            },
            {
                "Sid": "ProfilesAndTheUbuntuImage",
                "Effect": "Allow",
                "Action": list(PARAMETERS),
                "Resource": [
                    "arn:aws:ssm:*:*:parameter/connector-provisioner/*",
                    "arn:aws:ssm:*::parameter/aws/service/canonical/ubuntu/*",
                ],
            },
        ],
    }


if __name__ == "__main__":
    print(json.dumps(policy(), indent=2))
