"""The lab's cloud for a connector pair, run inside HQ's router namespace: moto serves EC2 on the
router's LAN address (the connectors' watchdogs call it there, as they would call EC2), holding
HQ's route table with its routes to the pair's interfaces; and the router follows that table,
`ip route replace` whenever a route's target changes, as a VPC's router follows its table.

Usage: cloud_router.py STATE_DIR ADDRESS PORT ACTIVE_IP STANDBY_IP DESTINATION...
Writes STATE_DIR/seed.json (the interfaces and the table) once serving, and one line per
route it programs to STATE_DIR/routes.log: `<unix time> <destination> <next hop>`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from provisioner.watchdog import HA_TAG, TAG

FOLLOW_SECONDS = 0.2  # how often the router reads its table


def main(state: Path, address: str, port: int, ips: list[str], destinations: list[str]) -> None:
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
    (state / "seed.json").write_text(json.dumps({"enis": enis, "table": table}))
    programmed: dict[str, str] = {}
    with (state / "routes.log").open("a", buffering=1) as log:
        while True:
            (found,) = ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"]
            for route in found["Routes"]:
                target = hop.get(route.get("NetworkInterfaceId", ""))
                destination = route["DestinationCidrBlock"]
                if target and programmed.get(destination) != target:
                    subprocess.run(
                        ["ip", "route", "replace", destination, "via", target, "proto", "static"],
                        check=True,
                    )
                    programmed[destination] = target
                    log.write(f"{time.time():.3f} {destination} {target}\n")
            time.sleep(FOLLOW_SECONDS)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:6], sys.argv[6:])
