"""A connector pair on AWS (`connector.ha`): the second connector's profile, what the pair's
watchdogs may do, and which route tables they may change.

The watchdog (`provisioner/watchdog.py`, on each connector) moves the network's routes to its
own interface with `ec2:ReplaceRoute` when the other connector is down. Its role may do so only
in route tables tagged `connector-provisioner:ha=<network>` (tagged here, on the tables the
file selects) and only towards the pair's own interfaces (tagged with the network at launch);
it may read route tables and interfaces, which EC2 does not scope by resource. Nothing else is
always on: no Lambda, no alarm, no Auto Scaling group."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from ...errors import CloudError
from ...model import PROFILE_PART, Action, Change, Kind, Part
from ...planner import NEW_CONNECTOR
from ...watchdog import DEFAULT_PORT, HA_TAG
from .common import PAIR_POLICY, TAG, AwsState

PAIR_TAGS = "route-table-tags"
PAIR_POLICY_PART = "pair-policy"
PAIR_HEALTH = "pair-health-checks"


def health_permission(group: str) -> dict[str, Any]:
    """The connector's own group admits the watchdogs' health checks from its members: a
    reference to the group matches exactly the pair's private addresses. (The network's own
    subnets, which the group admits, need not include the connectors' subnets.)"""
    return {
        "IpProtocol": "tcp",
        "FromPort": DEFAULT_PORT,
        "ToPort": DEFAULT_PORT,
        "UserIdGroupPairs": [
            {"GroupId": group, "Description": "connector-provisioner: the pair's health checks"}
        ],
    }


def has_health_rule(group: dict[str, Any] | None) -> bool:
    if group is None:
        return False
    return any(
        p.get("IpProtocol") == "tcp"
        and p.get("FromPort") == DEFAULT_PORT
        and any(g.get("GroupId") == group["GroupId"] for g in p.get("UserIdGroupPairs", []))
        for p in group.get("IpPermissions", [])
    )


def pair_policy(region: str, account: str, network: str, second_profile: str) -> dict[str, Any]:
    """What a pair's connectors need beyond reading the first profile: the second one's profile
    (each VM reads only what its user-data names, but both share the role), and the watchdog's
    calls: two reads EC2 cannot scope, and ReplaceRoute on our tagged tables, to our interfaces."""
    arn = f"arn:aws:ec2:{region}:{account}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SecondProfile",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": f"arn:aws:ssm:{region}:{account}:parameter{second_profile}",
            },
            {
                "Sid": "WhoIsActive",
                "Effect": "Allow",
                "Action": ["ec2:DescribeRouteTables", "ec2:DescribeNetworkInterfaces"],
                "Resource": "*",
            },
            {
                "Sid": "TakeOverTaggedTables",
                "Effect": "Allow",
                "Action": "ec2:ReplaceRoute",
                "Resource": f"{arn}:route-table/*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/{HA_TAG}": network}},
            },
            {
                # where EC2 authorizes the route's target too: only the pair's own interfaces
                "Sid": "TowardsThePair",
                "Effect": "Allow",
                "Action": "ec2:ReplaceRoute",
                "Resource": f"{arn}:network-interface/*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/{TAG}": network}},
            },
        ],
    }


class Pair(AwsState):
    """Set by observe: the tables the file selects, and those that carry our ha tag now."""

    member: int
    launched: dict[int, tuple[str | None, str | None]]
    interfaces: dict[str, str | None]  # instance -> its primary interface, as observed
    ha_tables_wanted: set[str]
    ha_tables_tagged: set[str]

    def parameter_of(self, member: int) -> str:
        first = f"/connector-provisioner/{self.location.vpc}/{self.network.name}/profile"
        return first if member == 0 else f"{first}-{member + 1}"

    def _pair_parts(
        self,
        raw_tables: Sequence[dict[str, Any]],
        profile_state: tuple[bool, str | None],
        health_rule: bool,
        role_policies: set[str],
    ) -> tuple[Part, ...]:
        """The pair's parts: wanted with ha; otherwise listed only while left over, to go."""
        assert self.network.connector is not None
        ha = self.network.connector.ha
        selected = self.network.route_tables
        self.ha_tables_wanted = (
            {t["RouteTableId"] for t in raw_tables}
            if selected is None
            else set(selected) & {t["RouteTableId"] for t in raw_tables}
        )
        self.ha_tables_tagged = {
            t["RouteTableId"]
            for t in raw_tables
            if any(
                tag["Key"] == HA_TAG and tag["Value"] == self.network.name
                for tag in t.get("Tags", [])
            )
        }
        present, fingerprint = profile_state
        policy = PAIR_POLICY in role_policies
        parts = (
            Part(
                PROFILE_PART,
                self.parameter_of(1),
                "the second connector's own VPN profile, as an SSM SecureString",
                present,
                fingerprint=fingerprint,
                member=1,
                wanted=ha,
            ),
            Part(
                PAIR_POLICY_PART,
                f"{self.role}/{PAIR_POLICY}",
                "lets the pair's watchdogs move the routes to themselves (ec2:ReplaceRoute in "
                "tagged route tables, to the pair's interfaces) and read the second profile",
                policy,
                wanted=ha,
            ),
            Part(
                PAIR_TAGS,
                f"{HA_TAG}={self.network.name}",
                "marks the route tables the watchdogs may change (their role's condition)",
                bool(self.ha_tables_tagged),
                complete=self.ha_tables_tagged == self.ha_tables_wanted,
                wanted=ha,
            ),
            Part(
                PAIR_HEALTH,
                f"{self.group_name} tcp/{DEFAULT_PORT} from itself",
                "each watchdog asks the other connector's health endpoint",
                health_rule,
                wanted=ha,
            ),
        )
        return tuple(p for p in parts if p.wanted or p.present)

    # --- the parts' handlers -----------------------------------------------------------------

    def _put_pair_policy(self) -> None:
        account = self._account()  # type: ignore[attr-defined]
        policy = pair_policy(self.location.region, account, self.network.name, self.parameter_of(1))
        self.iam.put_role_policy(
            RoleName=self.role, PolicyName=PAIR_POLICY, PolicyDocument=json.dumps(policy)
        )

    def _delete_pair_policy(self) -> None:
        try:
            self.iam.delete_role_policy(RoleName=self.role, PolicyName=PAIR_POLICY)
        except ClientError as e:
            if e.response["Error"]["Code"] != "NoSuchEntity":
                raise

    def _allow_health_checks(self) -> None:
        try:
            self.ec2.authorize_security_group_ingress(
                GroupId=self._group(), IpPermissions=[health_permission(self._group())]
            )
        except ClientError as e:
            if e.response["Error"]["Code"] != "InvalidPermission.Duplicate":
                raise

    def _stop_health_checks(self) -> None:
        if not self.group_id:
            return
        try:
            self.ec2.revoke_security_group_ingress(
                GroupId=self.group_id, IpPermissions=[health_permission(self.group_id)]
            )
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("InvalidPermission.NotFound",):
                raise

    def _tag_route_tables(self) -> None:
        add = sorted(self.ha_tables_wanted - self.ha_tables_tagged)
        drop = sorted(self.ha_tables_tagged - self.ha_tables_wanted)
        if add:
            self.ec2.create_tags(Resources=add, Tags=[{"Key": HA_TAG, "Value": self.network.name}])
        if drop:
            self._untag(drop)
        self.ha_tables_tagged = set(self.ha_tables_wanted)

    def _untag_route_tables(self) -> None:
        if self.ha_tables_tagged:
            self._untag(sorted(self.ha_tables_tagged))
        self.ha_tables_tagged = set()

    def _untag(self, tables: list[str]) -> None:
        self.ec2.delete_tags(Resources=tables, Tags=[{"Key": HA_TAG, "Value": self.network.name}])

    # --- which connector a change is about ---------------------------------------------------

    @contextmanager
    def as_member(self, change: Change) -> Iterator[None]:
        """For the length of one change, the connector it is about as the one the handlers act
        on: an existing one by the instance or interface the plan names, one launched in this
        apply by its member (of a pair) and its profile's parameter by the same."""
        member = change.part.member if change.part is not None else change.member
        saved = (self.instance, self.interface, self.parameter, self.member)
        self.member, self.parameter = member, self.parameter_of(member)
        self.instance, self.interface = self.launched.get(member, (None, None))
        if change.kind is Kind.CONNECTOR and change.action is not Action.CREATE:
            self.instance = change.resource
            self.interface = self.interfaces.get(change.resource)
        elif change.kind is Kind.FORWARDING and change.resource != NEW_CONNECTOR:
            self.interface = change.resource
        try:
            yield
            if change.kind is Kind.CONNECTOR and change.action is not Action.DELETE:
                self.launched[member] = (self.instance, self.interface)
        finally:
            self.instance, self.interface, self.parameter, self.member = saved

    def route_target(self, change: Change) -> str:
        """The interface a route change points at: the one the plan names, or the one of the
        connector launched in this apply."""
        if change.target and change.target != NEW_CONNECTOR:
            return change.target
        interface = self.launched.get(change.member, (None, None))[1]
        if not interface:
            raise CloudError("the connector has no network interface yet")
        return interface
