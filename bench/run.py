"""Figures, not assertions: cold `provision --help` time, API calls per phase as route tables
grow, plan computation time for 100 peers, and apply wall time with a fixed latency added to
every call (botocore's before-send, so moto answers as slowly as a cloud): 1 vs 4 networks,
and many route tables one change at a time vs side by side. Compare runs by diffing the output.

    python bench/run.py            # 1, 50 and 500 route tables; 500 tables serial takes ~10 min
    python bench/run.py --quick    # 1 and 50, nothing one change at a time (what CI runs)
    python bench/failover.py       # a pair's failover on a real kernel, 10 runs (root, the lab)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import botocore.handlers

READS = ("Describe", "Get", "List")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")


class Latency:
    """Every AWS call waits this long before moto answers it, as a cloud's round trip does."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, **_: Any) -> None:
        time.sleep(self.seconds)


def hooked(*entries: tuple[str, Any]) -> Any:
    """botocore's built-in handlers, plus `entries`, for every session made meanwhile."""
    import contextlib

    @contextlib.contextmanager
    def hook() -> Any:
        botocore.handlers.BUILTIN_HANDLERS.extend(entries)
        try:
            yield
        finally:
            for e in entries:
                botocore.handlers.BUILTIN_HANDLERS.remove(e)

    return hook()


def cold_help(runs: int = 7) -> dict[str, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "provisioner.cli", "--help"], capture_output=True, check=True
        )
        times.append(time.perf_counter() - start)
    return {"min_s": round(min(times), 3), "median_s": round(statistics.median(times), 3)}


class Recorder:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, model: Any = None, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> dict[str, Any]:
        reads = {k: v for k, v in sorted(self.calls.items()) if k.startswith(READS)}
        writes = {k: v for k, v in sorted(self.calls.items()) if not k.startswith(READS)}
        self.calls.clear()
        return {
            "reads": sum(reads.values()),
            "mutations": sum(writes.values()),
            "by_kind": {**reads, **writes},
        }


def seeded(
    tmp: Path,
    networks: int,
    tables: int,
    peers: int,
    regions: tuple[str, ...],
    pair: bool = False,
) -> tuple[Any, Any]:
    """`networks` VPCs (network i in regions[i % len]), each with `tables` route tables and an
    app group, meshed with `peers` external networks: (session, topology). `pair`: each
    network's connector is a pair, the second in a public subnet of another zone."""
    from provisioner import load_topology
    from provisioner.providers.aws.world import fake_session, publish_ubuntu_image, seed_vpc
    from provisioner.sandbox import FAKE_PROFILE

    session = fake_session()
    for region in sorted(set(regions[:networks])):
        publish_ubuntu_image(session, region)
    doc: dict[str, Any] = {}
    for i in range(networks):
        name, region = f"net{i}", regions[i % len(regions)]
        vpc = seed_vpc(
            session,
            name,
            region,
            f"10.{i}.0.0/16",
            [f"10.{i}.0.0/24"],
            extra_route_tables=tables - 1,
        )
        (tmp / f"{name}.ovpn").write_text(FAKE_PROFILE.format(name=name))
        connector: dict[str, Any] = {"subnet": vpc.connector_subnet, "profile": f"{name}.ovpn"}
        if pair:
            ec2 = session.client("ec2", region_name=region)
            second = ec2.create_subnet(
                VpcId=vpc.vpc, CidrBlock=f"10.{i}.1.0/24", AvailabilityZone=f"{region}b"
            )["Subnet"]["SubnetId"]
            public = vpc.route_tables[1] if tables > 1 else vpc.route_tables[0]
            ec2.associate_route_table(RouteTableId=public, SubnetId=second)
            (tmp / f"{name}-b.ovpn").write_text(FAKE_PROFILE.format(name=f"{name}-b"))
            connector = {
                "ha": True,
                "subnets": [vpc.connector_subnet, second],
                "profiles": [f"{name}.ovpn", f"{name}-b.ovpn"],
            }
        doc[name] = {
            "cloud": "aws",
            "region": region,
            "vpc": vpc.vpc,
            "subnets": [f"10.{i}.0.0/16"],
            "app_security_groups": [vpc.app_group],
            "connector": connector,
        }
    for i in range(peers):
        doc[f"peer{i}"] = {"cloud": "external", "subnets": [f"172.20.{i}.0/24"]}
    path = tmp / "topology.yaml"
    path.write_text(json.dumps({"version": 1, "networks": doc}))
    return session, load_topology(path)


def calls_for(tables: int, peers: int, pair: bool = False) -> dict[str, Any]:
    """Calls by kind for plan, apply, re-apply and destroy of one network (no latency); with
    `pair`, of a connector pair, and the watchdog's calls to read who is active and to take
    the routes over."""
    from moto import mock_aws

    from provisioner import Clouds, Deployment

    recorder = Recorder()
    with hooked(("before-call", recorder)), mock_aws(), tempfile.TemporaryDirectory() as tmp:
        session, topology = seeded(Path(tmp), 1, tables, peers, REGIONS, pair=pair)
        clouds = Clouds(options={"aws": {"session": session, "poll_seconds": 0.0}})
        recorder.take()
        out: dict[str, Any] = {}
        for phase in ("plan", "apply", "re-apply", "destroy"):
            d = Deployment(topology, clouds)
            start = time.perf_counter()
            if phase == "plan":
                plan = d.plan()
            elif phase == "destroy":
                plan = d.plan_destroy()
                d.execute(plan)
            else:
                plan = d.plan()
                d.execute(plan)
            seconds = time.perf_counter() - start
            figures = recorder.take()
            figures["planned_changes"] = len(plan.changes)
            figures["planned_route_changes"] = sum(1 for c in plan.changes if c.kind == "route")
            figures["route_mutations"] = sum(
                figures["by_kind"].get(k, 0) for k in ("CreateRoute", "ReplaceRoute", "DeleteRoute")
            )
            figures["seconds_against_moto"] = round(seconds, 2)
            out[phase] = figures
            if pair and phase == "re-apply":
                out.update(_watchdog_calls(session, recorder, REGIONS[0]))
        return out


def _watchdog_calls(session: Any, recorder: Any, region: str) -> dict[str, Any]:
    """The standby's watchdog against the applied pair: one read of who is active (what it
    does every 10 s, and on each miss), and one takeover."""
    from provisioner.providers.aws.watchdog import AwsRoutes
    from provisioner.watchdog import Settings

    ec2 = session.client("ec2", region_name=region)
    found = ec2.describe_instances(
        Filters=[{"Name": "tag:connector-provisioner:member", "Values": ["1"]}]
    )["Reservations"][0]["Instances"][0]
    settings = Settings(
        cloud="aws", network="net0", region=region,
        interface=found["NetworkInterfaces"][0]["NetworkInterfaceId"],
    )  # fmt: skip
    watchdog = AwsRoutes(settings, ec2)
    recorder.take()
    out: dict[str, Any] = {}
    holder = watchdog.holder()
    out["watchdog read"] = recorder.take()
    watchdog.take_over(holder)
    out["watchdog takeover"] = recorder.take()
    return out


def apply_wall(
    networks: int,
    tables: int,
    peers: int,
    *,
    serial: bool,
    latency: float,
    regions: tuple[str, ...] = REGIONS,
    whole: bool = False,
) -> dict[str, Any]:
    """Wall time of one apply with `latency` added to every call; calls by kind; re-apply.
    `whole`: the apply a user runs, `Deployment.apply` (read, plan, the networks' leases, the
    read again under them, the changes, the leases released), timed from its start; else only
    the carrying out of a plan made before."""
    from moto import mock_aws

    from provisioner import Clouds, Deployment

    recorder = Recorder()
    with (
        hooked(("before-call", recorder), ("before-send", Latency(latency))),
        mock_aws(),
        tempfile.TemporaryDirectory() as tmp,
    ):
        session, topology = seeded(Path(tmp), networks, tables, peers, regions)
        clouds = Clouds(
            options={"aws": {"session": session, "poll_seconds": latency}},
            concurrency={"aws": 1} if serial else {},
            networks_at_once=1 if serial else 8,
        )
        recorder.take()
        d = Deployment(topology, clouds)
        if whole:
            start = time.perf_counter()
            plan = d.apply().plan
        else:
            plan = d.plan()
            start = time.perf_counter()
            d.execute(plan)
        seconds = time.perf_counter() - start
        applied = recorder.take()
        again = Deployment(topology, clouds)
        again.execute(again.plan())
        reapplied = recorder.take()
    return {
        "seconds": round(seconds, 2),
        "planned": len(plan.changes),
        "mutations": applied["mutations"],
        "reapply_mutations": reapplied["mutations"],
        "by_kind": applied["by_kind"],
    }


def fake_phases(
    fake: Any, topology: Any, clouds: Any, kind_of: Any, route_kinds: tuple[str, ...]
) -> dict[str, Any]:
    """Plan, apply, re-apply and destroy against one of our fakes, with the calls of each by
    kind: reads, operation polls, mutations (and those of routes) against what was planned."""
    from provisioner import Deployment

    out: dict[str, Any] = {}
    for phase in ("plan", "apply", "re-apply", "destroy"):
        fake.calls.clear()
        d = Deployment(topology, clouds)
        start = time.perf_counter()
        plan = d.plan_destroy() if phase == "destroy" else d.plan()
        if phase != "plan":
            d.execute(plan)
        seconds = time.perf_counter() - start
        kinds = Counter(kind_of(c) for c in fake.calls)
        polls = sum(v for k, v in kinds.items() if "operations" in k)
        mutations = len(fake.mutating_calls())
        out[phase] = {
            "reads": len(fake.calls) - polls - mutations,
            "polls": polls,
            "mutations": mutations,
            "planned_changes": len(plan.changes),
            "planned_route_changes": sum(1 for c in plan.changes if c.kind == "route"),
            "route_mutations": sum(kinds.get(k, 0) for k in route_kinds),
            "seconds_against_fake": round(seconds, 2),
            "by_kind": dict(sorted(kinds.items())),
        }
    return out


def azure_calls_for(tables: int, peers: int, pair: bool = False) -> dict[str, Any]:
    """Calls by kind for plan, apply, re-apply and destroy of one Azure VNet whose `tables`
    subnets each have a route table, against the fake ARM (no latency). `pair`: a connector
    pair behind its load balancer (the second in the second subnet)."""
    from azure.mgmt.network import models as m

    from provisioner import Clouds, load_topology
    from provisioner.providers.azure.fake import Arm
    from provisioner.providers.azure.world import SUBSCRIPTION, network_client
    from provisioner.sandbox import FAKE_PROFILE

    arm = Arm()
    with arm.serve() as server, tempfile.TemporaryDirectory() as tmp:
        arm.create_resource_group(SUBSCRIPTION, "rg-bench", "westeurope")
        net = network_client(server.url)
        subnets = []
        for i in range(tables):
            table = net.route_tables.begin_create_or_update(
                "rg-bench", f"rt-{i}", m.RouteTable(location="westeurope")
            ).result()
            prefix = f"10.0.{i // 2}.{(i % 2) * 128}/25"
            subnets.append(m.Subnet(name=f"snet-{i}", properties=m.SubnetPropertiesFormat(
                address_prefix=prefix, route_table=m.RouteTable(id=table.id))))  # fmt: skip
        net.virtual_networks.begin_create_or_update(
            "rg-bench", "vnet-bench", m.VirtualNetwork(location="westeurope", properties=m.VirtualNetworkPropertiesFormat(
                address_space=m.AddressSpace(address_prefixes=["10.0.0.0/16"]), subnets=subnets)),
        ).result()  # fmt: skip
        (Path(tmp) / "az.ovpn").write_text(FAKE_PROFILE.format(name="az"))
        (Path(tmp) / "az-b.ovpn").write_text(FAKE_PROFILE.format(name="az-b"))
        connector: dict[str, Any] = {"subnet": "snet-0", "profile": "az.ovpn"}
        if pair:
            connector = {"ha": True, "subnets": ["snet-0", f"snet-{min(1, tables - 1)}"],
                         "profiles": ["az.ovpn", "az-b.ovpn"]}  # fmt: skip
        networks: dict[str, Any] = {
            "az": {
                "cloud": "azure", "subscription": SUBSCRIPTION, "resource_group": "rg-bench",
                "vnet": "vnet-bench", "region": "westeurope", "subnets": ["10.0.0.0/16"],
                "connector": connector,
            }
        }  # fmt: skip
        for i in range(peers):
            networks[f"peer{i}"] = {"cloud": "external", "subnets": [f"172.20.{i}.0/24"]}
        path = Path(tmp) / "topology.yaml"
        path.write_text(json.dumps({"version": 1, "networks": networks}))
        topology = load_topology(path)
        clouds = Clouds(options={"azure": {"endpoint": server.url}})
        return fake_phases(
            arm,
            topology,
            clouds,
            lambda c: f"{c.method} {c.kind.split('/', 1)[1]}",
            # a route table's routes go in one PUT of the table (ours is made by one PUT more)
            ("PUT routetables/routes", "DELETE routetables/routes", "PUT routetables"),
        )


def gcp_calls_for(tables: int, peers: int, pair: bool = False) -> dict[str, Any]:
    """Calls by kind for plan, apply, re-apply and destroy of one GCP network whose routes are
    scoped to `tables` instance tags (GCP's unit of routing), against the fake (no latency).
    `pair`: a connector pair behind its internal load balancer."""
    from google.cloud import compute_v1 as c

    from provisioner import Clouds, load_topology
    from provisioner.providers.gcp.fake import Gce
    from provisioner.providers.gcp.world import PROJECT, compute, seed_network
    from provisioner.sandbox import FAKE_PROFILE

    gce = Gce()
    with gce.serve() as server, tempfile.TemporaryDirectory() as tmp:
        world = seed_network(gce, server.url, "gc", "10.0.0.0/16", app_instances=0)
        api = compute(server.url)
        zone, region = world.zone, world.region
        op = api.subnetworks.insert_unary(project=PROJECT, region=region, subnetwork_resource=c.Subnetwork(
            name="gc-tiers", network=f"projects/{PROJECT}/global/networks/{world.network}",
            ip_cidr_range="10.0.16.0/20", region=region))  # fmt: skip
        api.region_operations.wait(project=PROJECT, region=region, operation=op.name)
        for i in range(tables):  # an instance per tag: the routes' scopes
            op = api.instances.insert_unary(
                project=PROJECT,
                zone=zone,
                instance_resource=c.Instance(
                    name=f"app-{i}",
                    machine_type=f"zones/{zone}/machineTypes/e2-micro",
                    tags=c.Tags(items=[f"tier-{i}"]),
                    network_interfaces=[c.NetworkInterface(subnetwork=f"projects/{PROJECT}/regions/{region}/subnetworks/gc-tiers")],
                    disks=[c.AttachedDisk(boot=True, initialize_params=c.AttachedDiskInitializeParams(
                        source_image="projects/debian-cloud/global/images/family/debian-12"))],
                ),
            )  # fmt: skip
            api.zone_operations.wait(project=PROJECT, zone=zone, operation=op.name)
        (Path(tmp) / "gc.ovpn").write_text(FAKE_PROFILE.format(name="gc"))
        entry = world.network_entry("gc.ovpn")
        entry["route_tables"] = [f"tier-{i}" for i in range(tables)]
        entry["app_security_groups"] = ["tier-0"]
        if pair:
            (Path(tmp) / "gc-b.ovpn").write_text(FAKE_PROFILE.format(name="gc-b"))
            c_ = entry["connector"]
            c_["ha"], c_["subnets"] = True, [c_.pop("subnet"), "gc-tiers"]
            c_["profiles"] = [c_.pop("profile"), "gc-b.ovpn"]
        networks: dict[str, Any] = {"gc": entry}
        for i in range(peers):
            networks[f"peer{i}"] = {"cloud": "external", "subnets": [f"172.20.{i}.0/24"]}
        path = Path(tmp) / "topology.yaml"
        path.write_text(json.dumps({"version": 1, "networks": networks}))
        topology = load_topology(path)
        clouds = Clouds(options={"gcp": {"endpoint": server.url}})
        return fake_phases(
            gce,
            topology,
            clouds,
            lambda c: f"{c.api}.{c.kind}.{c.verb}",
            ("compute.routes.insert", "compute.routes.delete"),
        )


def oci_calls_for(tables: int, peers: int, pair: bool = False) -> dict[str, Any]:
    """Calls by kind for plan, apply, re-apply and destroy of one OCI VCN with `tables` more
    route tables (besides the seeded ones), against the fake (no latency). `pair`: a connector
    pair, its rules naming the floating private IP."""
    from oci.core import models as m

    from provisioner import Clouds, load_topology
    from provisioner.providers.oci.fake import Oci
    from provisioner.providers.oci.world import clients, seed_vcn
    from provisioner.sandbox import FAKE_PROFILE

    fake = Oci()
    with fake.serve() as server, tempfile.TemporaryDirectory() as tmp:
        world = seed_vcn(fake, server.url, "oc", "10.0.0.0/16")
        net = clients(server.url, world.region).network
        for i in range(tables - 3):  # the seeded VCN has three: default, public, app
            net.create_route_table(m.CreateRouteTableDetails(
                compartment_id=world.compartment, vcn_id=world.vcn, display_name=f"rt-{i}"))  # fmt: skip
        (Path(tmp) / "oc.ovpn").write_text(FAKE_PROFILE.format(name="oc"))
        (Path(tmp) / "oc-b.ovpn").write_text(FAKE_PROFILE.format(name="oc-b"))
        networks: dict[str, Any] = {"oc": world.network_entry("oc.ovpn")}
        if pair:
            c = networks["oc"]["connector"]
            c["ha"], c["profiles"] = True, [c.pop("profile"), "oc-b.ovpn"]
        for i in range(peers):
            networks[f"peer{i}"] = {"cloud": "external", "subnets": [f"172.20.{i}.0/24"]}
        path = Path(tmp) / "topology.yaml"
        path.write_text(json.dumps({"version": 1, "networks": networks}))
        clouds = Clouds(options={"oci": {"endpoint": server.url, "poll_seconds": 0.01}})
        return fake_phases(
            fake,
            load_topology(path),
            clouds,
            lambda c: f"{c.method} {c.kind}.{c.verb}",
            ("PUT routeTables.update",),
        )


def service_calls(networks: int) -> dict[str, dict[str, Any]]:
    """CloudConnexa API calls (token included) per phase, for `networks` networks of two
    subnets each: plan (observe), apply, re-apply (observe; nothing to write), destroy."""
    from provisioner import planner
    from provisioner.cloudconnexa.client import Api, CloudConnexaSide
    from provisioner.cloudconnexa.fake import (
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        CloudConnexa,
    )
    from provisioner.cloudconnexa.planner import plan_service, plan_service_destroy
    from provisioner.model import CloudConnexa as Service
    from provisioner.model import Network, Topology

    topology = Topology(
        networks=tuple(
            Network(
                name=f"n{i}",
                cloud="external",
                subnets=(IPv4Network(f"10.{i}.0.0/24"), IPv4Network(f"10.{i}.1.0/24")),
            )
            for i in range(networks)
        ),
        service=Service("bench", "eu-central-1"),
    )
    subnets = planner.local_subnets(topology, {})
    out: dict[str, dict[str, Any]] = {}
    with CloudConnexa().serve() as server:
        api = Api(server.url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
        side = CloudConnexaSide(topology, api)

        def phase(name: str, run: Any) -> None:
            before = api.calls
            started = time.perf_counter()
            changes = run()
            calls = api.calls - before
            out[name] = {
                "calls": calls,
                "per_network": round(calls / networks, 2),
                "changes": changes,
                "seconds": round(time.perf_counter() - started, 3),
            }

        def apply() -> int:
            plan, _ = plan_service(topology, side.observe(), subnets)
            side.apply(plan.changes)
            return len(plan.changes)

        def destroy() -> int:
            plan = plan_service_destroy(topology, side.observe())
            side.apply(plan.changes)
            return len(plan.changes)

        phase("plan", lambda: len(plan_service(topology, side.observe(), subnets)[0].changes))
        phase("apply", apply)
        phase("re-apply", apply)
        phase("destroy", destroy)
    return out


def plan_time(peers: int = 100, tables: int = 50, repeat: int = 20) -> dict[str, float]:
    from provisioner import planner
    from provisioner.model import (
        AppAccess,
        AppGroup,
        Connector,
        Network,
        Observed,
        ObservedSubnet,
        Part,
        ProfileFile,
        RouteTable,
        Topology,
        WayOut,
    )
    from provisioner.providers.aws.cloud import AwsLocation

    hq = Network(
        name="hq",
        cloud="aws",
        subnets=(IPv4Network("10.0.0.0/16"),),
        location=AwsLocation("us-east-1", "vpc-1"),
        app_access=(AppAccess("sg"),),
        connector=Connector(
            subnet="subnet-1",
            size="t3.small",
            nat=False,
            egress=False,
            profile=ProfileFile(Path("p"), "f"),
        ),
    )
    peer_nets = tuple(
        Network(name=f"p{i}", cloud="external", subnets=(IPv4Network(f"172.20.{i}.0/24"),))
        for i in range(peers)
    )
    topology = Topology(networks=(hq, *peer_nets))
    observed = {
        "hq": Observed(
            network="hq",
            cidrs=(IPv4Network("10.0.0.0/16"),),
            route_tables=tuple(RouteTable(f"rtb-{t}", ()) for t in range(tables)),
            subnets=(ObservedSubnet("subnet-1", WayOut.NAT_GATEWAY, "nat-1"),),
            parts=(Part("security-group", "g", "its group", True),),
            app_groups=(AppGroup("sg"),),
        )
    }
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        plan = planner.plan_apply(topology, observed)
        times.append(time.perf_counter() - start)
    return {
        "peers": peers,
        "route_tables": tables,
        "changes": len(plan.changes),
        "median_ms": round(statistics.median(times) * 1000, 2),
        "min_ms": round(min(times) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--quick", action="store_true", help="1 and 50 route tables, no apply one change at a time"
    )
    parser.add_argument("--peers", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    import os

    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # the sandbox has its own
    from provisioner.providers.aws.world import serialize_moto, tag_launched_interfaces

    serialize_moto()  # moto answers one request at a time; the latency is slept outside it
    tag_launched_interfaces()  # as EC2 does: a pair's watchdogs find its interfaces by tag
    sizes = (1, 50) if args.quick else (1, 50, 500)
    print(f"cold `provision --help`: {json.dumps(cold_help())}")
    print(f"plan computation, 100 peers: {json.dumps(plan_time())}")
    print("CloudConnexa (fake API v1): calls per phase, token included, networks of 2 subnets")
    for networks in (1, 10) if args.quick else (1, 10, 100):
        for name, f in service_calls(networks).items():
            print(f"{networks:>4} service networks, {name:>8}: {json.dumps(f)}")
    for tables, pair in [(t, False) for t in sizes] + [(t, True) for t in sizes]:
        if pair and tables == sizes[0]:
            print("AWS connector pair (ha): the same phases, then the standby's watchdog")
        figures = calls_for(tables, args.peers, pair=pair)
        for phase, f in figures.items():
            if phase.startswith("watchdog"):
                print(f"{tables:>4} route tables, {phase:>17}: {json.dumps(f['by_kind'])}")
                continue
            print(
                f"{tables:>4} route tables, {args.peers} peers, {phase:>8}: reads={f['reads']:<3} "
                f"mutations={f['mutations']:<6} planned={f['planned_changes']:<6} "
                f"route writes={f['route_mutations']} for {f['planned_route_changes']} planned routes "
                f"({f['seconds_against_moto']}s)"
            )
            print(f"      by kind: {json.dumps(f['by_kind'])}")

    print("Azure (fake ARM): reads = observe's, plus the SDK's GET of each written resource once")
    print("its operation is polled to Succeeded; polls = those operation polls")
    for tables, pair in [(t, False) for t in sizes] + [(max(sizes[0], 2), True)]:
        if pair:
            print("Azure connector pair (ha): the same phases")
        figures = azure_calls_for(tables, args.peers, pair=pair)
        for phase, f in figures.items():
            print(
                f"{tables:>4} Azure route tables, {args.peers} peers, {phase:>8}: "
                f"reads={f['reads']:<3} polls={f['polls']:<5} mutations={f['mutations']:<6} "
                f"planned={f['planned_changes']:<6} route writes="
                f"{f['route_mutations']} for {f['planned_route_changes']} planned routes "
                f"({f['seconds_against_fake']}s)"
            )
            print(f"      by kind: {json.dumps(f['by_kind'])}")

    print("GCP (fake Compute / Secret Manager / IAM): routes scoped to N instance tags; reads =")
    print(
        "observe's plus the read-before-write of each firewall rule's one write; polls = operations"
    )
    for tables, pair in [(t, False) for t in sizes] + [(sizes[0], True)]:
        if pair:
            print("GCP connector pair (ha): the same phases")
        figures = gcp_calls_for(tables, args.peers, pair=pair)
        for phase, f in figures.items():
            print(
                f"{tables:>4} GCP tag scopes, {args.peers} peers, {phase:>8}: "
                f"reads={f['reads']:<3} polls={f['polls']:<5} mutations={f['mutations']:<6} "
                f"planned={f['planned_changes']:<6} route writes="
                f"{f['route_mutations']} for {f['planned_route_changes']} planned routes "
                f"({f['seconds_against_fake']}s)"
            )
            print(f"      by kind: {json.dumps(f['by_kind'])}")

    print(
        "OCI (fake Core / Identity / Vault): every route table of the VCN; reads = observe's plus"
    )
    print(
        "the read-before-write of each route table's write (its rules go back whole, once a step)"
    )
    for tables, pair in [(t, False) for t in sizes] + [(sizes[0], True)]:
        if pair:
            print("OCI connector pair (ha): the same phases")
        figures = oci_calls_for(max(tables, 3), args.peers, pair=pair)
        for phase, f in figures.items():
            print(
                f"{max(tables, 3):>4} OCI route tables, {args.peers} peers, {phase:>8}: "
                f"reads={f['reads']:<5} mutations={f['mutations']:<6} planned={f['planned_changes']:<6} "
                f"route writes={f['route_mutations']} for {f['planned_route_changes']} planned routes "
                f"({f['seconds_against_fake']}s)"
            )
            print(f"      by kind: {json.dumps(f['by_kind'])}")

    latency = args.latency_ms / 1000
    print(f"apply wall time, {args.latency_ms:g} ms added to every call:")

    def line(label: str, f: dict[str, Any]) -> None:
        print(
            f"  {label}: {f['seconds']}s; mutations={f['mutations']} planned={f['planned']} "
            f"re-apply mutations={f['reapply_mutations']}"
        )

    # the same work per network: each routes the VPN range and 20 other networks' subnets (with
    # four managed networks, three of those 20 are the other managed ones)
    one = apply_wall(1, 4, args.peers, serial=False, latency=latency)
    line(f"1 network, 4 tables, {args.peers} peers", one)
    four = apply_wall(4, 4, args.peers - 3, serial=False, latency=latency)
    line(f"4 networks in 4 regions, 4 tables, {args.peers} peers each", four)
    print(f"    4 networks / 1 network: {four['seconds'] / one['seconds']:.2f}x")
    # what a user waits for: Deployment.apply, its reads, leases and read again included
    one_whole = apply_wall(1, 4, args.peers, serial=False, latency=latency, whole=True)
    line(f"the whole apply (Deployment.apply), 1 network, 4 tables, {args.peers} peers", one_whole)
    four_whole = apply_wall(4, 4, args.peers - 3, serial=False, latency=latency, whole=True)
    line("the whole apply, 4 networks in 4 regions", four_whole)
    ratio = four_whole["seconds"] / one_whole["seconds"]
    print(f"    the whole apply, 4 networks / 1 network: {ratio:.2f}x (goal: 1.3x or less)")
    same = apply_wall(4, 4, args.peers - 3, serial=False, latency=latency, regions=REGIONS[:1])
    line("4 networks in one region (one rate limit)", same)
    print(f"    4 networks in one region / 1 network: {same['seconds'] / one['seconds']:.2f}x")
    if not args.quick:  # 22 s of sleeping on 376 calls: the full bench's
        serial_four = apply_wall(4, 4, args.peers - 3, serial=True, latency=latency)
        line("4 networks in 4 regions, one change at a time", serial_four)
        print(f"    one at a time / side by side: {serial_four['seconds'] / four['seconds']:.1f}x")
    for tables in (50,) if args.quick else (50, 500):
        parallel = apply_wall(1, tables, args.peers, serial=False, latency=latency)
        line(f"{tables} tables x {args.peers} peers, side by side", parallel)
        if args.quick:  # a minute of sleeping on 1,000 calls: the full bench's
            print("    one at a time: `python bench/run.py` (the full bench)")
            continue
        serial = apply_wall(1, tables, args.peers, serial=True, latency=latency)
        line(f"{tables} tables x {args.peers} peers, one at a time", serial)
        print(f"    one at a time / side by side: {serial['seconds'] / parallel['seconds']:.1f}x")
        assert serial["by_kind"] == parallel["by_kind"], "calls by kind must not change"
        print("    calls by kind: the same both ways")


if __name__ == "__main__":
    main()
