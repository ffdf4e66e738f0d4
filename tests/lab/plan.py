"""What the toolkit would do to the lab's networks: the planner's own decisions for HQ and Branch
as if they were AWS VPCs with empty route tables and app groups, so the lab's routers and app
servers get exactly the route entries and security-group rules a plan writes."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network as N
from pathlib import Path

from provisioner import planner
from provisioner.bootstrap import render_setup_script
from provisioner.model import (
    ALL_TRAFFIC,
    AppAccess,
    AppGroup,
    CloudConnexa,
    Connector,
    IngressRule,
    Kind,
    Network,
    Observed,
    ObservedSubnet,
    Plan,
    Ports,
    ProfileFile,
    RouteTable,
    Topology,
    WayOut,
)
from provisioner.providers.aws.cloud import AwsLocation

from .world import BRANCH, HQ, Site

APP_GROUP = "sg-0a99a99a"


@dataclass(frozen=True)
class Mode:
    """How a connector treats what it forwards to its LAN (the seed's 'Enable NAT')."""

    nat: bool
    preserve_source: bool = True  # the seed's `! -d <local subnet>` exception

    @property
    def keeps_source(self) -> bool:
        return not self.nat or self.preserve_source


NO_NAT = Mode(nat=False)
NAT_EXCEPT_LOCAL = Mode(nat=True, preserve_source=True)
NAT_EVERYTHING = Mode(nat=True, preserve_source=False)


def _network(site: Site, vpc: str, mode: Mode, egress: bool, ports: tuple[Ports, ...]) -> Network:
    return Network(
        name=site.name,
        cloud="aws",
        subnets=(N(site.subnet),),
        location=AwsLocation("us-east-1", vpc),
        app_access=(AppAccess(APP_GROUP, ports),),
        connector=Connector(
            subnet="subnet-1",
            size="t3.small",
            nat=mode.nat or egress,
            egress=egress,
            nat_preserve_source=mode.preserve_source,
            profile=ProfileFile(Path("unused"), "-"),
        ),
    )


def lab_topology(
    hq: Mode = NAT_EXCEPT_LOCAL,
    branch: Mode = NO_NAT,
    ports: tuple[Ports, ...] = (ALL_TRAFFIC,),
    service: CloudConnexa | None = None,
) -> Topology:
    """HQ (the egress network when it NATs) and Branch; with `service`, the VPN service's half."""
    return Topology(
        networks=(
            _network(HQ, "vpc-11111111", hq, egress=hq.nat, ports=ports),
            _network(BRANCH, "vpc-22222222", branch, egress=False, ports=ports),
        ),
        service=service,
    )


def lab_plan(
    hq: Mode = NAT_EXCEPT_LOCAL, branch: Mode = NO_NAT, ports: tuple[Ports, ...] = (ALL_TRAFFIC,)
) -> Plan:
    """plan_apply for HQ (the egress network) and Branch, each in one empty route table."""
    topology = lab_topology(hq, branch, ports)
    observed = {
        n.name: Observed(
            network=n.name,
            cidrs=n.subnets or (),
            route_tables=(RouteTable("rtb-lab", ()),),
            subnets=(ObservedSubnet("subnet-1", WayOut.INTERNET_GATEWAY, "igw-lab"),),
            app_groups=(AppGroup(APP_GROUP),),
        )
        for n in topology.networks
    }
    return planner.plan_apply(topology, observed)


def planned_routes(site: Site, plan: Plan | None = None) -> list[N]:
    """The route entries the plan writes into the network's empty route table."""
    return sorted(
        c.destination
        for c in (plan or lab_plan()).changes
        if c.network == site.name and c.kind is Kind.ROUTE and c.destination is not None
    )


def planned_app_rules(site: Site, plan: Plan) -> list[IngressRule]:
    """The inbound rules the plan adds to the network's app group."""
    return [
        c.rule
        for c in plan.changes
        if c.network == site.name and c.kind is Kind.APP_ACCESS and c.rule is not None
    ]


def planned_connector_ingress(site: Site, plan: Plan) -> list[N]:
    """The sources the plan admits into the network's connector group (its `connector-ingress`
    changes: what hosts of the network send through the connector)."""
    return [
        c.destination
        for c in plan.changes
        if c.network == site.name and c.kind is Kind.CONNECTOR_INGRESS and c.destination
    ]


def planned_setup_script(site: Site, plan: Plan) -> str:
    """The setup script of the connector the plan launches for the network."""
    (connector,) = [
        c.connector
        for c in plan.changes
        if c.network == site.name and c.kind is Kind.CONNECTOR and c.connector is not None
    ]
    return render_setup_script(connector)


def ready_script() -> Path:
    """The AWS user-data's connector-ready, written out as the VM's cloud-init writes it."""
    import tempfile

    import yaml

    from provisioner.bootstrap import render_user_data

    plan = lab_plan(hq=NO_NAT)
    (connector,) = [c.connector for c in plan.changes
                    if c.network == "hq" and c.kind is Kind.CONNECTOR and c.connector]  # fmt: skip
    doc = yaml.safe_load(render_user_data("aws", connector, "/p", "us-east-1"))
    (found,) = [f for f in doc["write_files"] if f["path"] == "/usr/local/sbin/connector-ready"]
    path = Path(tempfile.mkdtemp(prefix="cp-ready-")) / "connector-ready"
    path.write_text(found["content"])
    return path
