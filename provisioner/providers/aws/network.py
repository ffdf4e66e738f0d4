"""AWS: a VPC, its route tables and security groups, and the connector put there.
Translates; decides nothing.

Everything the toolkit creates carries the tag `connector-provisioner:network=<name>`
(or, for IAM and SSM, a name derived from the network and the VPC), so observe finds it
again after an interrupted run and destroy removes exactly that.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import replace
from ipaddress import IPv4Network
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ...discover import Found
from ...errors import CloudError, SpecError
from ...limits import limits
from ...model import (
    PROFILE_PART,
    Action,
    Cap,
    Change,
    ConnectorState,
    ForeignConnector,
    Kind,
    Network,
    Observed,
    ObservedConnector,
    ObservedRoute,
    ObservedSubnet,
    Part,
    RouteTable,
    Stray,
    WayOut,
)
from ..base import PartHandlers, Provider
from . import quotas
from .cloud import AwsLocation
from .common import (
    CREDENTIAL_CODES,
    FILE_TAG,
    FINGERPRINT_TAG,
    LIVE_STATES,
    MEMBER_TAG,
    READY_TAG,
    TAG,
    WATCH_TAG,
    AwsSeen,
    ParameterLease,
    assumed,
    bound_calls,
    error_text,
    new_session,
    pages,
)
from .groups import Groups
from .identity import Identity
from .instance import Instance
from .pair import PAIR_HEALTH, PAIR_POLICY_PART, PAIR_TAGS, Pair, has_health_rule

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")


class AwsNetwork(Pair, Identity, Instance, Groups, Provider):
    """One VPC, with the connector this toolkit puts there."""

    PARTS = {
        PROFILE_PART: PartHandlers(
            create=Identity._create_vpn_profile,
            update=Identity._update_vpn_profile,
            delete=Identity._delete_vpn_profile,
        ),
        "role": PartHandlers(create=Identity._create_role, delete=Identity._delete_role),
        "instance-profile": PartHandlers(
            create=Identity._create_instance_profile, delete=Identity._delete_instance_profile
        ),
        "security-group": PartHandlers(
            create=Groups._create_security_group, delete=Groups._delete_security_group
        ),
        PAIR_POLICY_PART: PartHandlers(
            create=Pair._put_pair_policy, delete=Pair._delete_pair_policy
        ),
        PAIR_HEALTH: PartHandlers(
            create=Pair._allow_health_checks, delete=Pair._stop_health_checks
        ),
        PAIR_TAGS: PartHandlers(
            create=Pair._tag_route_tables,
            update=Pair._tag_route_tables,
            delete=Pair._untag_route_tables,
        ),
    }

    # EC2's mutating calls share a token bucket per account and region: a few in flight at
    # once keep it busy; adaptive retries slow down when it runs dry
    concurrency = 8

    def __init__(
        self,
        network: Network,
        *,
        progress: Callable[[str], None],
        session: Any = None,
        poll_seconds: float = 5.0,
        wait_seconds: float = 900.0,
        progress_seconds: float = 0.0,
        iam_propagation_seconds: float = 90.0,
        max_attempts: int = 8,
    ) -> None:
        assert isinstance(network.location, AwsLocation) and network.connector is not None
        self.network = network
        self.location = network.location
        self.throttle_scope = f"aws:{network.location.region}"  # EC2 throttles per region
        self.progress = progress
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
        self.progress_seconds = progress_seconds
        self.iam_propagation_seconds = iam_propagation_seconds
        session = session or new_session()
        # retries are botocore's: adaptive mode backs off on throttling and 5xx
        bounds = limits()
        config = Config(
            region_name=self.location.region,
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            user_agent_extra="connector-provisioner",
            connect_timeout=bounds.connect,
            read_timeout=bounds.read,
        )
        if self.location.role:  # another account's VPC: its calls as the role the file names
            session = self._assumed(session, config)
        self.ec2, self.ssm, self.iam, self.quotas = (
            bound_calls(session.client(name, config=config), bounds.deadline, progress)
            for name in ("ec2", "ssm", "iam", "service-quotas")
        )
        name = network.name
        self.member = 0
        self.parameter = self.parameter_of(0)
        self.role = self.role_of(0)
        self.group_name = f"connector-{name}"
        self.tags = [
            {"Key": TAG, "Value": name},
            {"Key": "Name", "Value": f"connector-{name}"},
        ]
        if network.file:  # which file's: another file on the account never takes it for a stray
            self.tags.append({"Key": FILE_TAG, "Value": network.file})
        # learnt by observe and by apply
        self.seen = AwsSeen()
        self.instance: str | None = None
        self.interface: str | None = None

    # --- what the contract asks of the cloud ---------------------------------------------

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        return (ClientError, BotoCoreError)

    def error_text(self, e: BaseException) -> str:
        return error_text(e)

    def credentials_problem(self, e: BaseException) -> str | None:
        if isinstance(e, NoCredentialsError):
            return (
                "no AWS credentials found (boto3's default chain: environment, profile, SSO, "
                "instance role)"
            )
        if (
            isinstance(e, ClientError)
            and e.response.get("Error", {}).get("Code") in CREDENTIAL_CODES
        ):
            return f"AWS refused the credentials ({error_text(e)})"
        return None

    def batch_key(self, change: Change) -> Hashable | None:
        """A security group's new rules go in one authorize call, its old ones in one revoke."""
        if change.kind is Kind.APP_ACCESS:
            return ("ingress", change.resource, change.action is Action.DELETE)
        if change.kind is Kind.CONNECTOR_INGRESS:
            return ("ingress", self._group(), change.action is Action.DELETE)
        return None

    # --- observe -------------------------------------------------------------------------

    def _discover(self, name: str | None) -> Found:
        from .discover import discover

        try:
            return discover(self.ec2, self.location.region, self.location.vpc, name)
        except ClientError as e:
            if e.response["Error"]["Code"] in ("InvalidVpcID.NotFound", "InvalidVpcID.Malformed"):
                raise SpecError("--vpc", f"{self.location.vpc!r} does not exist in "
                                f"{self.location.region}") from None  # fmt: skip
            raise

    def strays(self, known: frozenset[str]) -> tuple[Stray, ...]:
        """Connectors of ours anywhere in this network's region, of networks not in `known`:
        one call (a page per 1000 instances), tag-filtered."""
        filters = [
            {"Name": "tag-key", "Values": [TAG]},
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ]
        found: dict[str, Stray] = {}
        try:
            reservations = list(
                pages(self.ec2, "describe_instances", "Reservations", Filters=filters)
            )
        except self.sdk_errors() as e:
            raise CloudError(f"looking for connectors of ours in {self.location.region}: "
                             f"{self.error_text(e)}") from None  # fmt: skip
        for r in reservations:
            for inst in r["Instances"]:
                tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                name, owner = tags.get(TAG, ""), tags.get(FILE_TAG)
                if not name or name in known or name in found or not inst.get("VpcId"):
                    continue
                if self.anothers(owner):
                    continue  # another file's network: never ours to list or prune
                found[name] = Stray(
                    network=name,
                    cloud="aws",
                    location=AwsLocation(self.location.region, inst["VpcId"]),
                    subnet=inst.get("SubnetId", ""),
                    instance=inst["InstanceId"],
                )
        return tuple(found.values())

    def _assumed(self, session: Any, config: Any) -> Any:
        assert self.location.role is not None
        try:
            return assumed(session, self.location.role, self.location.external_id,
                           self.network.name, config)  # fmt: skip
        except self.sdk_errors() as e:
            raise CloudError(
                f"network {self.network.name}: could not assume {self.location.role}: "
                f"{self.error_text(e)}; nothing was changed"
            ) from None

    def lease_store(self) -> ParameterLease:
        return ParameterLease(
            self.ssm, f"/connector-provisioner/{self.location.vpc}/{self.network.name}/lease"
        )

    def _caps(self) -> tuple[Cap, ...]:
        """The cloud's limits, read once per provider (a plan and its re-read under the
        leases ask the same account: the quotas do not change between them)."""
        found: tuple[Cap, ...] | None = getattr(self, "_read_caps", None)
        if found is None:
            found = self._read_caps = quotas.caps(self.quotas)
        return found

    def _observe(self) -> Observed:
        vpc = self.location.vpc
        try:
            vpcs = self.ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"]
        except ClientError as e:
            if e.response["Error"]["Code"] in ("InvalidVpcID.NotFound", "InvalidVpcID.Malformed"):
                raise SpecError(
                    f"networks.{self.network.name}.vpc",
                    f"{vpc!r} does not exist in {self.location.region}",
                ) from None
            raise
        cidrs = tuple(
            IPv4Network(a["CidrBlock"])
            for a in vpcs[0].get("CidrBlockAssociationSet", [])
            if a.get("CidrBlockState", {}).get("State", "associated") == "associated"
        ) or (IPv4Network(vpcs[0]["CidrBlock"]),)
        by_vpc = [{"Name": "vpc-id", "Values": [vpc]}]
        raw_subnets = list(pages(self.ec2, "describe_subnets", "Subnets", Filters=by_vpc))
        zones = {s["SubnetId"]: s.get("AvailabilityZone") for s in raw_subnets}
        ranges = {
            s["SubnetId"]: IPv4Network(s["CidrBlock"]) for s in raw_subnets if s.get("CidrBlock")
        }
        subnet_ids = list(zones)
        seen = AwsSeen()  # what this observe learns for apply; the parts' from now on
        raw_tables = list(pages(self.ec2, "describe_route_tables", "RouteTables", Filters=by_vpc))
        live, forwarding = self._existing_interfaces(raw_tables)
        tables = tuple(self._route_table(t, live) for t in raw_tables)
        subnets = tuple(
            replace(s, zone=zones.get(s.id), cidr=ranges.get(s.id))
            for s in self._ways_out(subnet_ids, raw_tables, {t.id: t for t in tables})
        )
        connectors = self._observe_connectors(by_vpc, seen)
        foreign = self._foreign(forwarding, {c.interface for c in connectors if c.interface})
        groups = list(pages(self.ec2, "describe_security_groups", "SecurityGroups", Filters=by_vpc))
        app_groups, ingress, own_group = self._observe_groups(groups)
        seen.group_id = own_group  # what apply's rules and the launch refer to
        parts = self._observe_parts(
            own_group,
            raw_tables,
            has_health_rule(next((g for g in groups if g["GroupId"] == own_group), None)),
            seen,
        )
        self.seen = seen
        own = next((g for g in groups if g["GroupId"] == own_group), None)
        return Observed(
            connector_egress=tuple(self._rules(own, own_group, "IpPermissionsEgress"))
            if own is not None
            else None,
            network=self.network.name,
            cidrs=cidrs,
            route_tables=tables,
            subnets=subnets,
            connector=connectors[0] if connectors else None,
            connectors=connectors,
            parts=parts,
            app_groups=app_groups,
            connector_ingress=ingress,
            foreign=foreign,
            caps=self._caps(),
            held=quotas.held(raw_tables),
            connector_group=own_group,
        )

    def _foreign(self, forwarding: dict[str, str], ours: set[str]) -> tuple[ForeignConnector, ...]:
        """Of the instances routes lead to whose interface may forward, those not of ours (no
        network tag): one call, only where there are such routes."""
        theirs = {eni: i for eni, i in forwarding.items() if eni not in ours}
        if not theirs:
            return ()
        found = {
            inst["InstanceId"]: inst
            for r in pages(self.ec2, "describe_instances", "Reservations",
                           InstanceIds=sorted(set(theirs.values())))
            for inst in r["Instances"]
        }  # fmt: skip
        out = []
        for eni, instance in sorted(theirs.items()):
            inst = found.get(instance)
            state = (inst or {}).get("State", {}).get("Name", "terminated")
            tags = {t["Key"]: t["Value"] for t in (inst or {}).get("Tags", [])}
            if inst is None or TAG in tags or state not in ConnectorState.__members__.values():
                continue  # gone, or a connector of ours (another network's: a conflict)
            out.append(ForeignConnector(instance, eni, ConnectorState(state),
                                        tags.get("Name", "")))  # fmt: skip
        return tuple(out)

    @staticmethod
    def _ways_out(
        subnet_ids: list[str], raw_tables: list[dict[str, Any]], tables: dict[str, RouteTable]
    ) -> tuple[ObservedSubnet, ...]:
        """Each subnet's way to the internet: the 0.0.0.0/0 of its route table (its explicit
        association, else the VPC's main table), by the kind of target."""
        main = None
        explicit: dict[str, str] = {}
        for t in raw_tables:
            for a in t.get("Associations", []):
                if a.get("AssociationState", {}).get("State", "associated") != "associated":
                    continue
                if a.get("Main"):
                    main = t["RouteTableId"]
                elif a.get("SubnetId"):
                    explicit[a["SubnetId"]] = t["RouteTableId"]
        out = []
        for subnet in subnet_ids:
            table_id = explicit.get(subnet, main)
            table = tables.get(table_id) if table_id else None
            route = table.route_to(DEFAULT_ROUTE) if table else None
            if route is None or not route.usable:
                way = WayOut.NONE
            elif route.target.startswith("igw-"):
                way = WayOut.INTERNET_GATEWAY
            elif route.target.startswith("nat-"):
                way = WayOut.NAT_GATEWAY
            else:  # transit or VPN gateway, an appliance's ENI, peering...
                way = WayOut.OTHER
            out.append(ObservedSubnet(subnet, way, route.target if route else None, table_id))
        return tuple(out)

    def _existing_interfaces(self, tables: list[dict[str, Any]]) -> tuple[set[str], dict[str, str]]:
        """Of the ENIs that routes point at, those that still exist: a route to a deleted ENI
        carries no traffic (AWS shows it as a blackhole); and of those, the ones on an instance
        that may forward (source/dest check off), with their instance. Batched: one call per
        200 ENIs."""
        targets = sorted(
            {
                r["NetworkInterfaceId"]
                for t in tables
                for r in t.get("Routes", [])
                if "NetworkInterfaceId" in r
            }
        )
        live: set[str] = set()
        forwarding: dict[str, str] = {}
        for i in range(0, len(targets), 200):
            found = pages(
                self.ec2,
                "describe_network_interfaces",
                "NetworkInterfaces",
                Filters=[{"Name": "network-interface-id", "Values": targets[i : i + 200]}],
            )
            for n in found:
                live.add(n["NetworkInterfaceId"])
                instance = (n.get("Attachment") or {}).get("InstanceId")
                if instance and not n.get("SourceDestCheck", True):
                    forwarding[n["NetworkInterfaceId"]] = instance
        return live, forwarding

    @staticmethod
    def _route_table(t: dict[str, Any], live_interfaces: set[str]) -> RouteTable:
        routes = []
        for r in t.get("Routes", []):
            if "DestinationCidrBlock" not in r:
                continue  # IPv6 and prefix-list routes are never ours
            target = (
                r.get("NetworkInterfaceId")
                or r.get("GatewayId")
                or r.get("NatGatewayId")
                or r.get("TransitGatewayId")
                or r.get("VpcPeeringConnectionId")
                or r.get("InstanceId")
                or r.get("LocalGatewayId")
                or r.get("CarrierGatewayId")
                or "unknown"
            )
            routes.append(
                ObservedRoute(
                    IPv4Network(r["DestinationCidrBlock"]),
                    target,
                    r.get("State") != "blackhole"
                    and ("NetworkInterfaceId" not in r or target in live_interfaces),
                )
            )
        return RouteTable(
            id=t["RouteTableId"],
            routes=tuple(routes),
        )

    def _observe_connectors(
        self, by_vpc: list[dict[str, Any]], seen: AwsSeen
    ) -> tuple[ObservedConnector, ...]:
        """Every live connector of the network (a pair has two), newest first; each one's
        interface into `seen`."""
        filters = [
            *by_vpc,
            {"Name": f"tag:{TAG}", "Values": [self.network.name]},
            {"Name": "instance-state-name", "Values": LIVE_STATES},
        ]
        found = [
            i
            for r in pages(self.ec2, "describe_instances", "Reservations", Filters=filters)
            for i in r["Instances"]
        ]
        found.sort(key=lambda i: i["LaunchTime"], reverse=True)
        out = []
        for inst in found:
            primary = next(
                (
                    n
                    for n in inst.get("NetworkInterfaces", [])
                    if n.get("Attachment", {}).get("DeviceIndex") == 0
                ),
                None,
            )
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            interface = primary["NetworkInterfaceId"] if primary else None
            seen.interfaces[inst["InstanceId"]] = interface
            member = tags.get(MEMBER_TAG, "0")
            out.append(
                ObservedConnector(
                    instance=inst["InstanceId"],
                    state=ConnectorState(inst["State"]["Name"]),
                    interface=interface,
                    private_ip=inst.get("PrivateIpAddress"),
                    forwarding=not (primary or inst).get("SourceDestCheck", True),
                    size=inst["InstanceType"],
                    image=inst["ImageId"],
                    subnet=inst.get("SubnetId", ""),
                    fingerprint=tags.get(FINGERPRINT_TAG, ""),
                    public_ip=inst.get("PublicIpAddress"),
                    member=int(member) if member.isdigit() else 0,
                    ready=READY_TAG in tags,
                    watchdog=tags.get(WATCH_TAG),
                )
            )
        first = out[0] if out else None
        self.instance = first.instance if first else None
        self.interface = first.interface if first else None
        return tuple(out)

    def _observe_parts(
        self,
        own_group: str | None,
        raw_tables: list[dict[str, Any]],
        health_rule: bool,
        seen: AwsSeen,
    ) -> tuple[Part, ...]:
        assert self.network.connector is not None
        ha = self.network.connector.ha
        names = [self.parameter_of(0), self.parameter_of(1)]
        found = {
            p["Name"]: (p.get("Description") or "").rpartition("sha256:")[2] or None
            for p in self.ssm.describe_parameters(
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": names}]
            )["Parameters"]
        }
        return (
            Part(
                PROFILE_PART,
                names[0],
                "the VPN profile as an SSM SecureString, never in user-data",
                names[0] in found,
                fingerprint=found.get(names[0]),
            ),
            *self._member_identity(0, seen),
            Part(
                "security-group",
                self.group_name,
                "the connector's own group: no inbound from the internet; app groups admit it",
                own_group is not None,
            ),
            *self._pair_parts(
                raw_tables,
                (names[1] in found, found.get(names[1])),
                health_rule,
                # the second connector's role: read for a pair, or while its profile is left
                # (deleted last of the pair's parts, so an interrupted run is still seen)
                self._member_identity(1, seen) if ha or names[1] in found else (),
                seen,
            ),
        )

    # --- apply ---------------------------------------------------------------------------

    def _dispatch(self, change: Change) -> None:
        if change.kind is Kind.ROUTE:
            super()._dispatch(change)
            return
        with self.as_member(change):
            super()._dispatch(change)

    def _start(self) -> None:
        assert self.instance
        self.ec2.start_instances(InstanceIds=[self.instance])
        self._wait(self.instance, "running")

    def _enable_forwarding(self) -> None:
        # seed 'Set Source/Dest Check': off, or the ENI drops forwarded packets
        self.ec2.modify_network_interface_attribute(
            NetworkInterfaceId=self._interface(), SourceDestCheck={"Value": False}
        )

    def _route(self, change: Change) -> None:
        table, dest = change.route_table, str(change.destination)
        try:
            if change.action is Action.DELETE:
                self.ec2.delete_route(RouteTableId=table, DestinationCidrBlock=dest)
            elif change.action is Action.REPLACE:
                self.ec2.replace_route(
                    RouteTableId=table,
                    DestinationCidrBlock=dest,
                    NetworkInterfaceId=self.route_target(change),
                )
            else:
                self.ec2.create_route(
                    RouteTableId=table,
                    DestinationCidrBlock=dest,
                    NetworkInterfaceId=self.route_target(change),
                )
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if change.action is Action.DELETE and code == "InvalidRoute.NotFound":
                return
            if change.action is Action.CREATE and code == "RouteAlreadyExists":
                # an interrupted run may have made it; make sure it is ours
                self.ec2.replace_route(
                    RouteTableId=table,
                    DestinationCidrBlock=dest,
                    NetworkInterfaceId=self.route_target(change),
                )
                return
            raise
