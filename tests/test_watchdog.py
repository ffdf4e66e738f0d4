"""The pair's watchdog (`provisioner/watchdog.py`) against moto with the real boto3 client: who
it finds active, when it takes the routes over, and what it never touches."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from provisioner.watchdog import HA_TAG, TAG, AwsRoutes, Holder, Settings, Watch, run


def test_the_standby_takes_over_only_after_enough_misses_and_only_when_healthy():
    w = Watch("b", fails=3)
    a = Holder("a", "10.0.0.10")
    assert [w.step(a, True, False) for _ in range(3)] == [False, False, True]
    assert w.step(a, True, True) is False  # the peer answers: misses start over
    assert [w.step(a, True, False) for _ in range(2)] == [False, False]
    assert w.step(a, True, True) is False and w.misses == 0
    # both down: moving the routes to a connector without its tunnel helps nobody
    assert [w.step(a, False, False) for _ in range(5)] == [False] * 5
    assert w.step(Holder("b", None), True, None) is False  # active: nothing to watch
    assert w.step(None, True, None) is False  # no route of ours anywhere: nothing to take


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Pair:
    """Two connectors' interfaces in a moto VPC whose addresses are on loopback (127.0.0.2 and
    .3), so each watchdog's health endpoint is where its interface's address says."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")["Subnet"]["SubnetId"]
        tags = [{"ResourceType": "network-interface", "Tags": [{"Key": TAG, "Value": "hq"}]}]
        self.eni = {}
        for name, address in (("a", "127.0.0.2"), ("b", "127.0.0.3"), ("other", "127.0.0.9")):
            eni = ec2.create_network_interface(
                SubnetId=subnet,
                PrivateIpAddress=address,
                TagSpecifications=tags if name != "other" else [],
            )["NetworkInterface"]
            self.eni[name] = eni["NetworkInterfaceId"]
        self.tables = []
        for tagged in (True, True, False):
            table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
            if tagged:
                ec2.create_tags(Resources=[table], Tags=[{"Key": HA_TAG, "Value": "hq"}])
            for destination in ("100.96.0.0/11", "192.168.0.0/22"):
                ec2.create_route(
                    RouteTableId=table,
                    DestinationCidrBlock=destination,
                    NetworkInterfaceId=self.eni["a"],
                )
            # the admin's own appliance: never ours to move
            ec2.create_route(
                RouteTableId=table,
                DestinationCidrBlock="172.16.0.0/12",
                NetworkInterfaceId=self.eni["other"],
            )
            self.tables.append(table)
        self.port = _free_port()

    def targets(self) -> list[dict[str, str]]:
        """Per table, each destination's target, by our names for the interfaces."""
        names = {v: k for k, v in self.eni.items()}
        out = []
        for table in self.tables:
            (found,) = self.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"]
            out.append(
                {
                    r["DestinationCidrBlock"]: names[r["NetworkInterfaceId"]]
                    for r in found["Routes"]
                    if "NetworkInterfaceId" in r
                }
            )
        return out

    def settings(self, name: str) -> Settings:
        address = {"a": "127.0.0.2", "b": "127.0.0.3"}[name]
        return Settings(
            cloud="aws",
            network="hq",
            region="us-east-1",
            interface=self.eni[name],
            address=address,
            health_port=self.port,
            interval=0.05,
            fails=3,
        )


@pytest.fixture
def ec2(session: Any) -> Any:
    return session.client("ec2", region_name="us-east-1")


@contextmanager
def watchdog(
    pair: Pair, name: str, tunnel: Callable[[], bool], said: list[str]
) -> Iterator[threading.Event]:
    stop = threading.Event()
    settings = pair.settings(name)
    mechanism = AwsRoutes(settings, pair.ec2)
    thread = threading.Thread(
        target=run,
        args=(settings, mechanism),
        kwargs={"own_tunnel": tunnel, "stop": stop, "say": said.append},
    )
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10)


def _until(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_the_standby_moves_exactly_our_routes_in_tagged_tables_and_never_takes_them_back(ec2):
    pair = Pair(ec2)
    up = {"a": True, "b": True}
    said: list[str] = []
    start = pair.targets()
    with (
        watchdog(pair, "a", lambda: up["a"], said),
        watchdog(pair, "b", lambda: up["b"], said),
    ):
        time.sleep(0.6)  # a dozen intervals with both healthy: nothing moves
        assert pair.targets() == start and said == []

        up["a"] = False  # a's tunnel goes down, its VM stays up and answers 503
        assert _until(lambda: pair.targets()[0]["100.96.0.0/11"] == "b")
        tagged = {"100.96.0.0/11": "b", "192.168.0.0/22": "b", "172.16.0.0/12": "other"}
        assert pair.targets() == [tagged, tagged, start[2]]  # the untagged table is not ours
        assert any(line.startswith(f"watchdog: took over from {pair.eni['a']}") for line in said)

        up["a"] = True  # a is back, healthy: it stays standby
        time.sleep(0.6)
        assert pair.targets() == [tagged, tagged, start[2]]
        assert sum("took over" in line for line in said) == 1


def test_a_vanished_active_is_replaced_and_a_sick_standby_takes_nothing(ec2):
    pair = Pair(ec2)
    up = {"a": True, "b": False}
    said: list[str] = []
    start = pair.targets()
    # a's VM is gone (no watchdog, no health endpoint) but b's own tunnel is down too
    with watchdog(pair, "b", lambda: up["b"], said):
        time.sleep(0.6)
        assert pair.targets() == start and said == []
        up["b"] = True
        assert _until(lambda: pair.targets()[1]["192.168.0.0/22"] == "b")
    assert [t["172.16.0.0/12"] for t in pair.targets()] == ["other"] * 3
