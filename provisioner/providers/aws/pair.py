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
from dataclasses import replace
from functools import partial
from typing import Any

from ...errors import CloudError
from ...model import NEW_CONNECTOR, PROFILE_PART, Action, Change, Kind, Part
from ...watchdog import DEFAULT_PORT, HA_TAG
from .common import PAIR_POLICY, TAG, AwsSeen, AwsState, done_already

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


def pair_policy(region: str, account: str, network: str) -> dict[str, Any]:
    """What each connector of a pair may do beyond reading its own profile (its role's other
    policy): the watchdog's calls, two reads EC2 cannot scope and ReplaceRoute on our tagged
    tables, towards the pair's interfaces."""
    arn = f"arn:aws:ec2:{region}:{account}"
    return {
        "Version": "2012-10-17",
        "Statement": [
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
    """A connector pair's parts (the second profile, the pair policy, the health rule, the
    tables' tags), and which connector a change is about."""

    def _pair_parts(
        self,
        raw_tables: Sequence[dict[str, Any]],
        profile_state: tuple[bool, str | None],
        health_rule: bool,
        identity: tuple[Part, ...],
        seen: AwsSeen,
    ) -> tuple[Part, ...]:
        """The pair's parts: wanted with ha; otherwise listed only while left over, to go.
        `identity`: the second connector's role and instance profile, as observed; the tables
        the pair writes, and those tagged so, into `seen`."""
        assert self.network.connector is not None
        ha = self.network.connector.ha
        present, fingerprint = profile_state
        self._ha_tables(raw_tables, seen)
        with_policy = [
            r for r in self._pair_roles() if PAIR_POLICY in seen.role_policies.get(r, ())
        ]
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
            *(replace(p, wanted=ha) for p in identity),
            Part(
                PAIR_POLICY_PART,
                f"{PAIR_POLICY} on {', '.join(self._pair_roles())}",
                "lets each connector's watchdog move the routes to itself (ec2:ReplaceRoute in "
                "tagged route tables, to the pair's interfaces)",
                bool(with_policy),
                complete=len(with_policy) == len(self._pair_roles()),
                wanted=ha,
            ),
            Part(
                PAIR_TAGS,
                f"{HA_TAG}={self.network.name}",
                "marks the route tables the watchdogs may change (their role's condition)",
                bool(seen.ha_tables_tagged),
                complete=seen.ha_tables_tagged == seen.ha_tables_wanted,
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

    def _ha_tables(self, raw_tables: Sequence[dict[str, Any]], seen: AwsSeen) -> None:
        """Into `seen`: the tables the pair's watchdogs may write (the selected ones), and
        those tagged so now."""
        selected = self.network.route_tables
        ids = {t["RouteTableId"] for t in raw_tables}
        seen.ha_tables_wanted = ids if selected is None else set(selected) & ids
        seen.ha_tables_tagged = {
            t["RouteTableId"]
            for t in raw_tables
            if any(
                tag["Key"] == HA_TAG and tag["Value"] == self.network.name
                for tag in t.get("Tags", [])
            )
        }

    # --- the parts' handlers -----------------------------------------------------------------

    def _pair_roles(self) -> tuple[str, ...]:
        return (self.role_of(0), self.role_of(1))

    def _put_pair_policy(self) -> None:
        account = self._account()  # type: ignore[attr-defined]
        policy = json.dumps(pair_policy(self.location.region, account, self.network.name))
        for role in self._pair_roles():
            self.iam.put_role_policy(RoleName=role, PolicyName=PAIR_POLICY, PolicyDocument=policy)
            self.seen.role_policies.setdefault(role, set()).add(PAIR_POLICY)

    def _delete_pair_policy(self) -> None:
        for role in self._pair_roles():
            done_already(
                partial(self.iam.delete_role_policy, RoleName=role, PolicyName=PAIR_POLICY),
                "NoSuchEntity",
            )
            self.seen.role_policies.get(role, set()).discard(PAIR_POLICY)

    def _allow_health_checks(self) -> None:
        done_already(
            lambda: self.ec2.authorize_security_group_ingress(
                GroupId=self._group(), IpPermissions=[health_permission(self._group())]
            ),
            "InvalidPermission.Duplicate",
        )

    def _stop_health_checks(self) -> None:
        if not self.seen.group_id:
            return
        group = self.seen.group_id
        done_already(
            lambda: self.ec2.revoke_security_group_ingress(
                GroupId=group, IpPermissions=[health_permission(group)]
            ),
            "InvalidPermission.NotFound",
        )

    def _tag_route_tables(self) -> None:
        add = sorted(self.seen.ha_tables_wanted - self.seen.ha_tables_tagged)
        drop = sorted(self.seen.ha_tables_tagged - self.seen.ha_tables_wanted)
        if add:
            self.ec2.create_tags(Resources=add, Tags=[{"Key": HA_TAG, "Value": self.network.name}])
        if drop:
            self._untag(drop)
        self.seen.ha_tables_tagged = set(self.seen.ha_tables_wanted)

    def _untag_route_tables(self) -> None:
        if self.seen.ha_tables_tagged:
            self._untag(sorted(self.seen.ha_tables_tagged))
        self.seen.ha_tables_tagged = set()

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
        saved_role = self.role
        self.member, self.parameter, self.role = (
            member,
            self.parameter_of(member),
            self.role_of(member),
        )
        self.instance, self.interface = self.seen.launched.get(member, (None, None))
        if change.kind is Kind.CONNECTOR and change.action is not Action.CREATE:
            self.instance = change.resource
            self.interface = self.seen.interfaces.get(change.resource)
        elif change.kind is Kind.FORWARDING and change.resource != NEW_CONNECTOR:
            self.interface = change.resource
        elif change.kind is Kind.READY and change.resource != NEW_CONNECTOR:
            self.instance = change.resource
        try:
            yield
            if change.kind is Kind.CONNECTOR and change.action is not Action.DELETE:
                self.seen.launched[member] = (self.instance, self.interface)
        finally:
            self.instance, self.interface, self.parameter, self.member = saved
            self.role = saved_role

    def route_target(self, change: Change) -> str:
        """The interface a route change points at: the one the plan names, or the one of the
        connector launched in this apply."""
        if change.target and change.target != NEW_CONNECTOR:
            return change.target
        interface = self.seen.launched.get(change.member, (None, None))[1]
        if not interface:
            raise CloudError("the connector has no network interface yet")
        return interface
