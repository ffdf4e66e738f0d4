"""AWS's pair mechanism: the routes of the network's tagged route tables, moved with
ReplaceRoute by the standby's watchdog.

Runs on the pair's VMs after the watchdog's own code (`provisioner/watchdog.py`): bootstrap
appends this module to it without the import of the watchdog below, so it uses only what that
module and the standard library have, and the cloud's SDK on the VM."""

from __future__ import annotations

import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...watchdog import DRAIN_TAG, HA_TAG, TAG, WATCH_TAG, WRITERS, Holder, Settings


class AwsRoutes:
    """The pair's interfaces carry the network's tag; the route tables the watchdog may change
    carry `connector-provisioner:ha=<network>` (the role may replace routes in those only).
    A route of ours is one whose target is an interface of the pair: the watchdog remembers
    each it has seen, so a route left pointing at a deleted one (a blackhole) is still ours."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.settings = settings
        if client is None:
            import boto3  # the VM's python3-boto3
            from botocore.config import Config

            extra = {"endpoint_url": settings.endpoint} if settings.endpoint else {}
            # a takeover writes many routes at once: botocore waits out EC2's throttling
            retries = Config(retries={"mode": "adaptive", "max_attempts": 10})
            client = boto3.client("ec2", region_name=settings.region, config=retries, **extra)
        self.ec2 = client
        self.pair: dict[str, str | None] = {settings.interface: settings.address}
        self.live: dict[str, str | None] = {}  # the pair's interfaces as last described
        self.drain = False  # apply's drain marker on this connector's interface

    def _tagged(self, key: str) -> list[dict[str, str | list[str]]]:
        return [{"Name": f"tag:{key}", "Values": [self.settings.network]}]

    def _tables(self) -> list[dict[str, Any]]:
        return list(self.ec2.describe_route_tables(Filters=self._tagged(HA_TAG))["RouteTables"])

    def holder(self) -> Holder | None:
        enis = self.ec2.describe_network_interfaces(Filters=self._tagged(TAG))["NetworkInterfaces"]
        self.live = {e["NetworkInterfaceId"]: e.get("PrivateIpAddress") for e in enis}
        self.pair.update(self.live)
        mine: dict[str, Any] = next(
            (e for e in enis if e["NetworkInterfaceId"] == self.settings.interface), {}
        )
        self.drain = any(t.get("Key") == DRAIN_TAG for t in mine.get("TagSet", []))
        counts: dict[str, int] = {}
        for table in self._tables():
            for route in table.get("Routes", []):
                target = route.get("NetworkInterfaceId")
                if target in self.pair:
                    counts[target] = counts.get(target, 0) + 1
        if not counts:
            return None
        interface = max(counts, key=lambda i: (counts[i], i == self.settings.interface))
        return Holder(interface, self.pair.get(interface))

    def peer(self) -> str:
        """The other member's address, as last described."""
        return next((a or "" for i, a in self.live.items() if i != self.settings.interface), "")

    def drain_asked(self) -> bool:
        return self.drain

    def publish(self, word: str) -> None:
        """Its word as a tag on its own instance (the role may set that tag and READY_TAG on
        the network's instances only); none known (a lab's interface alone): not published."""
        if self.settings.instance:
            self.ec2.create_tags(Resources=[self.settings.instance],
                                 Tags=[{"Key": WATCH_TAG, "Value": word[:256]}])  # fmt: skip

    def take_over(self, previous: Holder | None) -> int:
        """One ReplaceRoute per route of ours (EC2 has no call for several), WRITERS at once:
        a network of many tables and destinations takes that many writes."""
        moves = [
            (table["RouteTableId"], route["DestinationCidrBlock"])
            for table in self._tables()
            for route in table.get("Routes", [])
            if route.get("NetworkInterfaceId") in self.pair
            and route.get("NetworkInterfaceId") != self.settings.interface
            and "DestinationCidrBlock" in route
        ]

        def move(where: tuple[str, str]) -> None:
            self.ec2.replace_route(
                RouteTableId=where[0],
                DestinationCidrBlock=where[1],
                NetworkInterfaceId=self.settings.interface,
            )

        with ThreadPoolExecutor(WRITERS) as pool:
            list(pool.map(move, moves))  # the first failure is raised: the next tick retries
        return len(moves)


def aws_identity(settings: Settings) -> Settings:
    """This connector's interface and address from the instance metadata (IMDSv2)."""
    if settings.interface and settings.address:
        return settings
    base = "http://169.254.169.254/latest"
    put = urllib.request.Request(
        f"{base}/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
    )
    with urllib.request.urlopen(put, timeout=2) as r:
        token = r.read().decode()

    def get(path: str) -> str:
        request = urllib.request.Request(
            f"{base}/meta-data/{path}", headers={"X-aws-ec2-metadata-token": token}
        )
        with urllib.request.urlopen(request, timeout=2) as r:
            return str(r.read().decode()).strip()

    mac = get("mac")
    values = dict(settings.__dict__)
    values["interface"] = get(f"network/interfaces/macs/{mac}/interface-id")
    values["address"] = get("local-ipv4")
    values["instance"] = get("instance-id")
    return Settings(**values)


MECHANISM = (aws_identity, AwsRoutes)
