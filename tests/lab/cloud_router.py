"""The lab's cloud for a connector pair, run inside HQ's router namespace: the cloud API's fake
serves on the router's LAN address (the connectors' watchdogs call it there, as they would call
the cloud), holding HQ's route table; and the router follows what the fake holds, `ip route
replace` whenever a destination's next hop changes, as the cloud's virtual router follows it.

- aws: moto; the table's routes name the pair's interfaces (the watchdog moves the routes);
- oci: the fake OCI; the table's rules name a floating private IP on the first connector's
  VNIC (the watchdog moves the IP: the rules stay), delivered to whichever VNIC holds it;
- azure: the fake ARM; the routes' next hop is an internal load balancer's frontend (HA ports)
  whose pool holds both connectors' NICs, and the router sends to the member its health probe
  finds up (`/active`, every `intervalInSeconds`, `probeThreshold` in a row): the watchdogs
  agree among themselves who answers, nothing is written;
- gcp: the fake Compute; the routes' next hop is an internal passthrough load balancer whose
  backend service has the first connector's group as primary and the second's as failover;
  the router sends to the backend its health checks find up (`/active`, every
  `checkIntervalSec`, the thresholds in a row), the primary while it is healthy.

Usage: [LAB_PROBE_SECONDS=S] cloud_router.py CLOUD STATE_DIR ADDRESS PORT ACTIVE_IP STANDBY_IP
DESTINATION...; LAB_PROBE_SECONDS: how often the balancer's probes run (Azure, GCP), default the
clouds' documented 5 s (what the load balancer resources say, whatever it is).
Writes STATE_DIR/seed.json (the interfaces, the table, and on OCI the subnet) once serving,
and one line per route it programs to STATE_DIR/routes.log: `<unix time> <destination> <next
hop>`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provisioner.watchdog import HA_TAG, TAG

FOLLOW_SECONDS = 0.2  # how often the router reads its table
Follow = Callable[[], dict[str, str]]  # destination -> the next hop's address, as the cloud says


def aws(address: str, port: int, ips: list[str], destinations: list[str]) -> tuple[dict[str, Any], Follow]:  # fmt: skip
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=f"http://{address}:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/18")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    tags = [{"ResourceType": "network-interface", "Tags": [{"Key": TAG, "Value": "hq"}]}]
    enis = [
        ec2.create_network_interface(SubnetId=subnet, PrivateIpAddress=ip, TagSpecifications=tags)[
            "NetworkInterface"
        ]["NetworkInterfaceId"]
        for ip in ips
    ]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_tags(Resources=[table], Tags=[{"Key": HA_TAG, "Value": "hq"}])
    for destination in destinations:
        ec2.create_route(
            RouteTableId=table, DestinationCidrBlock=destination, NetworkInterfaceId=enis[0]
        )
    hop = dict(zip(enis, ips, strict=True))
    held = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].route_tables[table]

    def follow() -> dict[str, str]:
        # as the cloud's virtual router: it reads the table it serves, not the API (five
        # requests a second through boto3 and moto's server were a third of the lab's CPU)
        routes = _settled(lambda: held.routes)  # (a copy, moto's property)
        return {
            r.destination_cidr_block: hop[r.interface.id]
            for r in routes
            if r.interface is not None and r.interface.id in hop
        }

    return {"interfaces": enis, "table": table}, follow


def oci(address: str, port: int, ips: list[str], destinations: list[str]) -> tuple[dict[str, Any], Follow]:  # fmt: skip
    from oci.core import models as m

    from provisioner.providers.oci.fake import Oci
    from provisioner.providers.oci.world import clients

    fake = Oci()
    server = fake.serve(port=port, host=address)
    compartment = fake.add_compartment("cmp-hq")
    image = fake.add_image(compartment)
    api = clients(server.url, fake.region)
    net = api.network
    vcn = net.create_vcn(m.CreateVcnDetails(compartment_id=compartment, cidr_blocks=["10.0.0.0/18"])).data  # fmt: skip
    subnet = net.create_subnet(
        m.CreateSubnetDetails(compartment_id=compartment, vcn_id=vcn.id, cidr_block="10.0.0.0/18")
    ).data.id
    vnics = []
    for i, ip in enumerate(ips):
        vm = api.compute.launch_instance(
            m.LaunchInstanceDetails(
                compartment_id=compartment, availability_domain=f"Uocm:{fake.region.upper()}-AD-{i + 1}",
                shape="VM.Standard.E4.Flex", display_name=f"cp-hq-connector{'-2' if i else ''}",
                shape_config=m.LaunchInstanceShapeConfigDetails(ocpus=1),
                source_details=m.InstanceSourceViaImageDetails(image_id=image),
                create_vnic_details=m.CreateVnicDetails(subnet_id=subnet, private_ip=ip,
                                                        skip_source_dest_check=True),
            )
        ).data  # fmt: skip
        vnics.append(
            api.compute.list_vnic_attachments(compartment, instance_id=vm.id).data[0].vnic_id
        )
    floating = net.create_private_ip(
        m.CreatePrivateIpDetails(vnic_id=vnics[0], freeform_tags={HA_TAG: "hq"})
    ).data.id
    rules = [m.RouteRule(destination=d, destination_type="CIDR_BLOCK", network_entity_id=floating)
             for d in destinations]  # fmt: skip
    table = net.create_route_table(
        m.CreateRouteTableDetails(compartment_id=compartment, vcn_id=vcn.id, route_rules=rules)
    ).data.id
    hop = dict(zip(vnics, ips, strict=True))

    def follow() -> dict[str, str]:
        # the virtual router delivers what a rule names to the VNIC that holds that IP now (read
        # from what the fake holds, as a virtual router would: not through its API)
        with fake.lock:
            held = fake.state.resources
            holders = {p["id"]: hop.get(p["vnicId"]) for p in held.values()
                       if p["_kind"] == "privateIps" and p.get("subnetId") == subnet}  # fmt: skip
            rules = [(r["destination"], r["networkEntityId"]) for r in held[table]["routeRules"]]
        return {d: holders[e] for d, e in rules if holders.get(e)}

    return {"interfaces": vnics, "table": table, "subnet": subnet, "floating": floating}, follow


PROBE_SECONDS, PROBE_THRESHOLD = 5, 1  # Azure's NVA guide: a probe every 5 s; the default threshold


def probe_seconds(documented: float) -> float:
    """The cadence of the lab's balancer: the cloud's documented one, or a test's shorter one."""
    return float(os.environ.get("LAB_PROBE_SECONDS") or documented)


def azure(address: str, port: int, ips: list[str], destinations: list[str]) -> tuple[dict[str, Any], Follow]:  # fmt: skip
    from azure.mgmt.network import models as m

    from provisioner.providers.azure.fake import Arm, LbProbes
    from provisioner.providers.azure.world import SUBSCRIPTION, network_client
    from provisioner.watchdog import DEFAULT_PORT

    arm = Arm()
    server = arm.serve(port=port, host=address)
    rg, region = "rg-hq", "westeurope"
    arm.create_resource_group(SUBSCRIPTION, rg, region)
    net = network_client(server.url)
    vnet = m.VirtualNetwork(location=region, address_space=m.AddressSpace(address_prefixes=["10.0.0.0/18"]),
                            subnets=[m.Subnet(name="lan", address_prefix="10.0.0.0/18")])  # fmt: skip
    subnet = net.virtual_networks.begin_create_or_update(rg, "vnet-hq", vnet).result().subnets[0].id
    base = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Network/loadBalancers/cp-hq"
    lb = net.load_balancers.begin_create_or_update(rg, "cp-hq", m.LoadBalancer(
        location=region, sku=m.LoadBalancerSku(name="Standard"),
        frontend_ip_configurations=[m.FrontendIPConfiguration(
            name="front", subnet=m.Subnet(id=subnet), private_ip_address="10.0.63.250",
            private_ip_allocation_method="Static")],
        backend_address_pools=[m.BackendAddressPool(name="pair")],
        probes=[m.Probe(name="active", protocol="Http", port=DEFAULT_PORT, request_path="/active",
                        interval_in_seconds=PROBE_SECONDS, probe_threshold=PROBE_THRESHOLD)],
        load_balancing_rules=[m.LoadBalancingRule(
            name="ha-ports", protocol="All", frontend_port=0, backend_port=0,
            frontend_ip_configuration=m.SubResource(id=f"{base}/frontendIPConfigurations/front"),
            backend_address_pool=m.SubResource(id=f"{base}/backendAddressPools/pair"),
            probe=m.SubResource(id=f"{base}/probes/active"))],
    )).result()  # fmt: skip
    nics = []
    for i, ip in enumerate(ips):
        nic = net.network_interfaces.begin_create_or_update(rg, f"cp-hq-nic{i}", m.NetworkInterface(
            location=region, enable_ip_forwarding=True, ip_configurations=[m.NetworkInterfaceIPConfiguration(
                name="ipconfig1", subnet=m.Subnet(id=subnet), private_ip_address=ip,
                private_ip_allocation_method="Static",
                load_balancer_backend_address_pools=[m.BackendAddressPool(id=lb.backend_address_pools[0].id)])],
        )).result()  # fmt: skip
        nics.append(nic.id)
    probes = LbProbes(arm, lb.id)
    next_round, every = [0.0], probe_seconds(PROBE_SECONDS)

    def follow() -> dict[str, str]:
        if time.monotonic() >= next_round[0]:
            probes.round(timeout=1.0)
            next_round[0] = time.monotonic() + every
        healthy = probes.healthy()
        return {d: healthy[0] for d in destinations} if healthy else {}

    return {"interfaces": ips, "load_balancer": lb.id, "nics": nics}, follow


def gcp(address: str, port: int, ips: list[str], destinations: list[str]) -> tuple[dict[str, Any], Follow]:  # fmt: skip
    from google.cloud import compute_v1 as c

    from provisioner.providers.gcp.fake import Gce, IlbHealth
    from provisioner.providers.gcp.pair import PROBE_SECONDS as CHECK_SECONDS
    from provisioner.providers.gcp.pair import UNHEALTHY_THRESHOLD
    from provisioner.providers.gcp.world import _done, compute
    from provisioner.watchdog import DEFAULT_PORT

    gce = Gce()
    server = gce.serve(port=port, host=address)
    api, project, region = compute(server.url), "lab-project", "europe-west1"
    zones = [f"{region}-b", f"{region}-c"]
    net = f"projects/{project}/global/networks/vpc-hq"
    subnet = f"projects/{project}/regions/{region}/subnetworks/hq-lan"

    def done(op: Any) -> None:
        _done(api, project, op)

    done(
        api.networks.insert_unary(
            project=project,
            network_resource=c.Network(name="vpc-hq", auto_create_subnetworks=False),
        )
    )
    done(
        api.subnetworks.insert_unary(
            project=project,
            region=region,
            subnetwork_resource=c.Subnetwork(
                name="hq-lan", network=net, ip_cidr_range="10.0.0.0/18", region=region
            ),
        )
    )
    done(
        api.health_checks.insert_unary(
            project=project,
            region=region,
            health_check_resource=c.HealthCheck(
                name="cp-hq-ilb",
                type_="HTTP",
                check_interval_sec=CHECK_SECONDS,
                timeout_sec=1,
                healthy_threshold=1,
                unhealthy_threshold=UNHEALTHY_THRESHOLD,
                http_health_check=c.HTTPHealthCheck(port=DEFAULT_PORT, request_path="/active"),
            ),
        )
    )
    backends = []
    for i, (ip, zone) in enumerate(zip(ips, zones, strict=True)):
        name = f"cp-hq-connector{'-2' if i else ''}"
        done(
            api.instances.insert_unary(
                project=project,
                zone=zone,
                instance_resource=c.Instance(
                    name=name,
                    machine_type=f"zones/{zone}/machineTypes/e2-small",
                    can_ip_forward=True,
                    network_interfaces=[c.NetworkInterface(subnetwork=subnet, network_i_p=ip)],
                    disks=[
                        c.AttachedDisk(
                            boot=True,
                            auto_delete=True,
                            initialize_params=c.AttachedDiskInitializeParams(
                                source_image="projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"
                            ),
                        )
                    ],
                ),
            )
        )
        group = f"cp-hq-ig{'-2' if i else ''}"
        done(
            api.instance_groups.insert_unary(
                project=project,
                zone=zone,
                instance_group_resource=c.InstanceGroup(name=group, network=net),
            )
        )
        done(
            api.instance_groups.add_instances_unary(
                project=project,
                zone=zone,
                instance_group=group,
                instance_groups_add_instances_request_resource=c.InstanceGroupsAddInstancesRequest(
                    instances=[
                        c.InstanceReference(
                            instance=f"projects/{project}/zones/{zone}/instances/{name}"
                        )
                    ]
                ),
            )
        )
        backends.append(
            c.Backend(
                group=f"projects/{project}/zones/{zone}/instanceGroups/{group}",
                balancing_mode="CONNECTION",
                failover=bool(i),
            )
        )
    done(
        api.backend_services.insert_unary(
            project=project,
            region=region,
            backend_service_resource=c.BackendService(
                name="cp-hq-ilb",
                load_balancing_scheme="INTERNAL",
                protocol="UNSPECIFIED",
                backends=backends,
                health_checks=[f"projects/{project}/regions/{region}/healthChecks/cp-hq-ilb"],
            ),
        )
    )
    done(
        api.forwarding_rules.insert_unary(
            project=project,
            region=region,
            forwarding_rule_resource=c.ForwardingRule(
                name="cp-hq-ilb",
                load_balancing_scheme="INTERNAL",
                I_p_protocol="L3_DEFAULT",
                all_ports=True,
                network=net,
                subnetwork=subnet,
                I_p_address="10.0.63.251",
                backend_service=f"projects/{project}/regions/{region}/backendServices/cp-hq-ilb",
            ),
        )
    )
    health = IlbHealth(gce, f"projects/{project}/regions/{region}/backendServices/cp-hq-ilb")
    next_round, every = [0.0], probe_seconds(CHECK_SECONDS)

    def follow() -> dict[str, str]:
        if time.monotonic() >= next_round[0]:
            health.round()
            next_round[0] = time.monotonic() + every
        targets = [t for t in health.targets() if health.up.get(t)]
        return {d: targets[0] for d in destinations} if targets else {}

    return {"interfaces": ips, "forwarding_rule": "10.0.63.251"}, follow  # fmt: skip


def _settled(read: Callable[[], list[Any]]) -> list[Any]:
    """`read` again while another thread (the fake's server) changes what it iterates."""
    while True:
        try:
            return read()
        except RuntimeError:  # changed size during iteration
            continue


CLOUDS = {"aws": aws, "oci": oci, "azure": azure, "gcp": gcp}


def main(cloud: str, state: Path, address: str, port: int, ips: list[str], destinations: list[str]) -> None:  # fmt: skip
    seed, follow = CLOUDS[cloud](address, port, ips, destinations)
    (state / "seed.json.new").write_text(json.dumps(seed))
    (state / "seed.json.new").rename(state / "seed.json")  # whole, or not yet
    programmed: dict[str, str] = {}
    with (state / "routes.log").open("a", buffering=1) as log:
        while True:
            for destination, target in follow().items():
                if programmed.get(destination) != target:
                    subprocess.run(
                        ["ip", "route", "replace", destination, "via", target, "proto", "static"],
                        check=True,
                    )
                    programmed[destination] = target
                    log.write(f"{time.time():.3f} {destination} {target}\n")
            time.sleep(FOLLOW_SECONDS)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:7], sys.argv[7:])
