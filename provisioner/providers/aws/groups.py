"""Security groups on AWS: the connector's own group, and the app groups' inbound rules for the
traffic the connector delivers. Translates `IngressRule`s to EC2 IpPermissions and back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from ipaddress import IPv4Network
from typing import Any

from botocore.exceptions import ClientError

from ...errors import CloudError
from ...model import (
    ALL_TRAFFIC,
    CONNECTOR_SOURCE,
    Action,
    AppGroup,
    Change,
    FilterLayer,
    FilterRule,
    IngressRule,
    Kind,
    Member,
    Observed,
    Ports,
)
from ..base import PartlyDone
from .common import MARK, AwsState, error_text, pages

# what EC2 says when a rule to add is there already, or one to take away is gone
ALREADY = ("InvalidPermission.Duplicate", "InvalidPermission.NotFound")
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "-1": "all"}


def permission(rule: IngressRule, connector_group: str | None, description: str) -> dict[str, Any]:
    """One EC2 IpPermission for `rule` (all traffic: protocol -1; a bare tcp/udp: 0-65535)."""
    p = rule.ports
    perm: dict[str, Any] = {"IpProtocol": "-1" if p.protocol == "all" else p.protocol}
    if p.protocol in ("tcp", "udp"):
        perm["FromPort"], perm["ToPort"] = (0, 65535) if p.first is None else (p.first, p.last)
    elif p.protocol == "icmp":
        perm["FromPort"] = -1 if p.first is None else p.first
        perm["ToPort"] = -1 if p.last is None else p.last
    if rule.source == CONNECTOR_SOURCE:
        perm["UserIdGroupPairs"] = [{"GroupId": connector_group, "Description": description}]
    else:
        perm["IpRanges"] = [{"CidrIp": str(rule.source), "Description": description}]
    return perm


def ports_of(perm: dict[str, Any]) -> Ports:
    protocol = PROTOCOL_NAMES.get(str(perm.get("IpProtocol")), str(perm.get("IpProtocol")))
    if protocol == "all":
        return ALL_TRAFFIC
    first, last = perm.get("FromPort"), perm.get("ToPort")
    if protocol in ("tcp", "udp") and (first, last) in ((None, None), (0, 65535)):
        return Ports(protocol)
    if protocol == "icmp" and first in (None, -1):
        return Ports(protocol)
    if protocol == "icmp":
        return Ports(protocol, first, first)
    if first is None:
        return Ports(protocol)
    return Ports(protocol, int(first), int(last if last is not None else first))


def _acl_rule(entry: dict[str, Any]) -> FilterRule:
    """A network ACL entry as a rule of an ordered, stateless layer."""
    protocol = ACL_PROTOCOLS.get(str(entry.get("Protocol")), str(entry.get("Protocol")))
    span = entry.get("PortRange")
    if protocol in ("tcp", "udp") and span:
        ports = Ports(protocol, int(span["From"]), int(span["To"]))
    else:
        ports = Ports(protocol)
    return FilterRule(
        order=int(entry["RuleNumber"]),
        allow=entry.get("RuleAction") == "allow",
        inbound=not entry.get("Egress", False),
        peer=IPv4Network(entry.get("CidrBlock", "0.0.0.0/0")),
        ports=ports,
        name=f"rule {entry['RuleNumber']}",
    )


ACL_PROTOCOLS = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp"}


class Groups(AwsState):
    def _ours(self, description: str | None) -> dict[str, Any]:
        """`ours` and our label, from a rule's description. The label is kept so that a revoke
        names the rule exactly as it was authorized."""
        mark = f"{MARK}: {self.network.name}"
        if description is not None and (description == mark or description.startswith(mark + ":")):
            return {"ours": True, "label": description[len(mark) :].lstrip(": ")}
        return {}

    def _rules(
        self, group: dict[str, Any], own_group: str | None, key: str = "IpPermissions"
    ) -> Iterator[IngressRule]:
        """Every inbound rule of `group` (`key` IpPermissionsEgress: every outbound one, each
        `source` its destination): address ranges, group references (a reference to our
        connector's group, `own_group`, is the `connector` source) and prefix lists, each with
        its ports."""
        for perm in group.get(key, []):
            ports = ports_of(perm)
            for r in perm.get("IpRanges", []):
                yield IngressRule(
                    IPv4Network(r["CidrIp"], strict=False),
                    ports,
                    **self._ours(r.get("Description")),
                )
            for pair in perm.get("UserIdGroupPairs", []):
                gid = pair.get("GroupId", "")
                source = CONNECTOR_SOURCE if gid and gid == own_group else gid
                yield IngressRule(source, ports, **self._ours(pair.get("Description")))
            for pl in perm.get("PrefixListIds", []):
                yield IngressRule(pl.get("PrefixListId", ""), ports)

    def _observe_groups(
        self, groups: list[dict[str, Any]]
    ) -> tuple[tuple[AppGroup, ...], tuple[IPv4Network, ...], str | None]:
        """(the app groups we were asked for or hold rules in, the CIDRs our own group admits,
        our own group's id when it exists)."""
        own = next((g for g in groups if g["GroupName"] == self.group_name), None)
        own_id = own["GroupId"] if own else None
        ingress: list[IPv4Network] = []
        if own:
            for perm in own.get("IpPermissions", []):
                if perm.get("IpProtocol") == "-1":
                    ingress += [IPv4Network(r["CidrIp"]) for r in perm.get("IpRanges", [])]
        wanted = set(self.network.app_security_groups)
        app_groups = []
        for g in groups:
            if own is not None and g["GroupId"] == own["GroupId"]:
                continue
            rules = tuple(self._rules(g, own_id))
            if g["GroupId"] in wanted or any(r.ours for r in rules):
                egress = tuple(self._rules(g, own_id, "IpPermissionsEgress"))
                app_groups.append(AppGroup(g["GroupId"], rules, egress))
        return tuple(app_groups), tuple(ingress), own_id

    def _permission(self, change: Change) -> dict[str, Any]:
        """The IpPermission an app-access or connector-ingress change adds or takes away."""
        if change.kind is Kind.CONNECTOR_INGRESS:
            assert change.destination is not None
            return permission(IngressRule(change.destination), None, f"{MARK}: local subnet")
        rule = change.rule
        assert rule is not None
        description = f"{MARK}: {self.network.name}: {rule.label}".rstrip(": ")
        connector_group = self._group() if rule.source == CONNECTOR_SOURCE else None
        return permission(rule, connector_group, description)

    def _rules_batch(self, changes: Sequence[Change]) -> None:
        """A group's new rules in one authorize call (its old ones in one revoke): EC2 takes
        them together. When one is already as wanted (left by an interrupted run), EC2 refuses
        the whole call; then each goes alone, and one already as wanted is done."""
        first = changes[0]
        group = self._group() if first.kind is Kind.CONNECTOR_INGRESS else first.resource
        perms = [self._permission(c) for c in changes]
        if self._ingress(first.action, group, perms) or len(perms) == 1:
            return
        made: list[Change] = []
        for change, perm in zip(changes, perms, strict=True):
            try:
                self._ingress(first.action, group, [perm])
            except ClientError as e:
                if not made:
                    raise
                raise PartlyDone(f"{change.summary()}: {error_text(e)}", made) from e
            made.append(change)

    def _ingress(self, action: Action, group: str, perms: list[dict[str, Any]]) -> bool:
        """One authorize (or revoke) call: False when EC2 refused it because a rule of it was
        as wanted already."""
        call = (
            self.ec2.revoke_security_group_ingress
            if action is Action.DELETE
            else self.ec2.authorize_security_group_ingress
        )
        try:
            call(GroupId=group, IpPermissions=perms)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ALREADY:
                raise
            return False
        return True

    def _create_security_group(self) -> None:
        try:
            self.seen.group_id = self.ec2.create_security_group(
                GroupName=self.group_name,
                Description=f"{MARK}: connector of {self.network.name}; no inbound from the internet",
                VpcId=self.location.vpc,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": self.tags}],
            )["GroupId"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "InvalidGroup.Duplicate":
                raise
            self.seen.group_id = self.ec2.describe_security_groups(
                Filters=[
                    {"Name": "vpc-id", "Values": [self.location.vpc]},
                    {"Name": "group-name", "Values": [self.group_name]},
                ]
            )["SecurityGroups"][0]["GroupId"]

    def _delete_security_group(self) -> None:
        if not self.seen.group_id:
            return
        try:
            self.ec2.delete_security_group(GroupId=self.seen.group_id)
        except ClientError as e:
            if e.response["Error"]["Code"] != "InvalidGroup.NotFound":
                raise
        self.seen.group_id = None

    def filters(self, observed: Observed) -> Observed:
        """The doctor's reads: the VPC's network ACLs (one call) and the app groups' hosts
        (one call, their network interfaces)."""
        by_vpc = [{"Name": "vpc-id", "Values": [self.location.vpc]}]
        edges: dict[str, FilterLayer] = {}
        members: dict[str, list[Member]] = {}
        try:
            for acl in pages(self.ec2, "describe_network_acls", "NetworkAcls", Filters=by_vpc):
                layer = FilterLayer(
                    f"network ACL {acl['NetworkAclId']}",
                    ordered=True,
                    stateful=False,
                    rules=tuple(_acl_rule(e) for e in acl.get("Entries", [])),
                )
                for association in acl.get("Associations", []):
                    edges[association["SubnetId"]] = layer
            groups = [g.id for g in observed.app_groups]
            if groups:
                by_group = [{"Name": "group-id", "Values": groups}]
                for eni in pages(self.ec2, "describe_network_interfaces", "NetworkInterfaces",
                                 Filters=by_group):  # fmt: skip
                    for g in eni.get("Groups", []):
                        if g["GroupId"] in groups:
                            members.setdefault(g["GroupId"], []).append(
                                Member(eni["PrivateIpAddress"], eni["SubnetId"])
                            )
        except self.sdk_errors() as e:
            raise CloudError(f"network {self.network.name}: reading its filters: "
                             f"{self.error_text(e)}") from None  # fmt: skip
        return replace(
            observed,
            subnet_filters=edges,
            members={k: tuple(v) for k, v in members.items()},
        )
