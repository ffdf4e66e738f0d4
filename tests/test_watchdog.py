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

from provisioner.providers.aws.watchdog import AwsRoutes
from provisioner.providers.oci.watchdog import OciPrivateIp
from provisioner.watchdog import (
    DRAIN_TAG,
    HA_TAG,
    TAG,
    Holder,
    Hooks,
    Peers,
    Settings,
    Watch,
    ask_active,
    peer_state,
    run,
)


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

    def mechanism(self, settings: Settings) -> AwsRoutes:
        return AwsRoutes(settings, self.ec2)

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
    pair: Any, name: str, tunnel: Callable[[], bool], said: list[str], hooks: Hooks | None = None
) -> Iterator[threading.Event]:
    stop = threading.Event()
    settings = pair.settings(name)
    mechanism = pair.mechanism(settings)
    thread = threading.Thread(
        target=run,
        args=(settings, mechanism),
        kwargs={"own_tunnel": tunnel, "stop": stop, "say": said.append, "hooks": hooks},
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
        took = f"watchdog: took over from {pair.eni['a']} (4 writes)"  # 2 routes x 2 tables
        assert _until(lambda: took in said)
        tagged = {"100.96.0.0/11": "b", "192.168.0.0/22": "b", "172.16.0.0/12": "other"}
        assert pair.targets() == [tagged, tagged, start[2]]  # the untagged table is not ours

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


class Vm:
    """What the watchdog does to its own VM, as the VM would show it: whether it can forward,
    its tunnel (closed and opened by the watchdog's commands), and where the routes were each
    time the tunnel closed."""

    def __init__(self, pair: Pair, name: str) -> None:
        self.pair, self.name = pair, name
        self.problem: str | None = None
        self.tunnel = True
        self.closed_while: list[list[dict[str, str]]] = []  # the routes, at each close
        self.drain = False
        self.words: list[str] = []  # what its watchdog published, without its time

    def said(self) -> list[str]:
        return [w.rsplit(" (since ", 1)[0] for w in self.words]

    def hooks(self) -> Hooks:
        def act(up: bool) -> None:
            if not up:
                self.closed_while.append(self.pair.targets())
            self.tunnel = up

        return Hooks(forwarding=lambda: self.problem, tunnel=act, drain_asked=lambda: self.drain,
                     report=self.words.append)  # fmt: skip


def _ours(targets: list[dict[str, str]]) -> set[str]:
    """Who the tagged tables' routes of ours lead to."""
    return {t[d] for t in targets[:2] for d in ("100.96.0.0/11", "192.168.0.0/22")}


def test_an_active_that_cannot_forward_leaves_at_once_and_dials_in_again_when_it_can(ec2):
    """Its tunnel up but its forwarding off: the active one closes its own tunnel (the service
    then sends to the other), says it leaves, and the standby takes the routes without waiting
    for misses; once it can forward again it dials in and stays standby."""
    pair = Pair(ec2)
    vm = {n: Vm(pair, n) for n in "ab"}
    said: list[str] = []
    with (
        watchdog(pair, "a", lambda: vm["a"].tunnel, said, vm["a"].hooks()),
        watchdog(pair, "b", lambda: vm["b"].tunnel, said, vm["b"].hooks()),
    ):
        time.sleep(0.3)
        vm["a"].problem = "IPv4 forwarding is off"
        assert _until(lambda: _ours(pair.targets()) == {"b"})
        assert not vm["a"].tunnel and vm["b"].tunnel
        assert peer_state("127.0.0.2", pair.port, 0.5) == "leaving"
        assert any("cannot forward into the network (IPv4 forwarding is off): closed my tunnel"
                   in line for line in said), said  # fmt: skip
        # b took over on a's word, before it could have counted its misses
        took = said.index(f"watchdog: took over from {pair.eni['a']} (4 writes)")
        assert took >= 0
        vm["a"].problem = None
        assert _until(lambda: vm["a"].tunnel)
        assert "watchdog: forwarding works again: dialling in" in said
        time.sleep(0.5)
        assert _ours(pair.targets()) == {"b"}  # back, healthy, standby
        assert sum("took over" in line for line in said) == 1


def test_a_drain_hands_the_routes_over_before_the_tunnel_closes_and_is_undone_when_withdrawn(ec2):
    """apply's drain marker (a tag on the member's interface) on the active member: it says it
    leaves, the standby takes the routes at once, and only once they lead away from it does it
    close its tunnel; the marker gone, it dials in again. The active one says when the other
    member goes and comes back."""
    pair = Pair(ec2)
    vm = {n: Vm(pair, n) for n in "ab"}
    said: list[str] = []
    with watchdog(pair, "a", lambda: vm["a"].tunnel, said, vm["a"].hooks()):
        with watchdog(pair, "b", lambda: vm["b"].tunnel, said, vm["b"].hooks()):
            assert _until(lambda: peer_state("127.0.0.3", pair.port, 0.5) == "ok")
            time.sleep(0.3)
        # b's watchdog (its VM) gone: a, the active one, says so
        assert _until(lambda: any("the other member 127.0.0.3 is gone" in x for x in said))
        with watchdog(pair, "b", lambda: vm["b"].tunnel, said, vm["b"].hooks()):
            assert _until(lambda: "watchdog: the other member 127.0.0.3 is back" in said)
            ec2.create_tags(Resources=[pair.eni["a"]], Tags=[{"Key": DRAIN_TAG, "Value": "1"}])
            vm["a"].drain = True  # (the tag is read at a's next refresh; the file at once)
            assert _until(lambda: not vm["a"].tunnel)
            # the routes had left a before its tunnel closed
            assert [_ours(t) for t in vm["a"].closed_while] == [{"b"}]
            assert "watchdog: drain asked: leaving, the other member takes over" in said
            assert any(line.startswith("watchdog: drained:") for line in said)
            time.sleep(0.3)
            assert not vm["a"].tunnel  # drained: it stays so while asked
            vm["a"].drain = False
            assert _until(lambda: vm["a"].tunnel)
            assert "watchdog: drain withdrawn: dialling in again" in said
            assert _until(lambda: vm["a"].said()[-1] == "standby, the other member ok")
    # what a published where status reads it, each change once, in order
    words = vm["a"].said()
    # (b's watchdog starts just after a's: a may first find it not answering yet)
    first = ("active", "active, the other member ok", "active, the other member no answer")
    assert words[0] in first, words
    for expected in ("active, the other member no answer", "active, the other member ok",
                     "leaving: a drain asked", "drained: its tunnel closed for a planned change",
                     "standby, the other member ok"):  # fmt: skip
        assert expected in words, (expected, words)
    assert all(a != b for a, b in zip(words, words[1:], strict=False))  # only changes
    assert all(" (since 20" in w for w in vm["a"].words)


def test_its_word_reaches_the_cloud_latest_first_and_a_failure_is_said_once():
    """The reporter publishes off the loop: while the cloud refuses, the word waits (said once),
    and what reaches the cloud at last is the newest word, not each one in between."""
    from provisioner.watchdog import Reporter

    published: list[str] = []
    refusing = threading.Event()
    refusing.set()

    def publish(word: str) -> None:
        if refusing.is_set():
            raise RuntimeError("AccessDenied")
        published.append(word)

    said: list[str] = []
    reporter = Reporter(publish, said.append, retry=0.1)
    reporter.offer("standby")
    assert _until(lambda: len(said) == 1)
    reporter.offer("active")
    reporter.offer("active, the other member ok")
    time.sleep(0.3)
    assert said == ["watchdog: could not publish its state: AccessDenied"] and not published
    refusing.clear()
    assert _until(lambda: published == ["active, the other member ok"])
    assert said[-1] == "watchdog: publishing its state works again"


def test_the_cloud_drain_marker_is_read_from_the_members_own_interface(ec2):
    pair = Pair(ec2)
    mechanism = pair.mechanism(pair.settings("a"))
    mechanism.holder()
    assert mechanism.drain_asked() is False and mechanism.peer() == "127.0.0.3"
    ec2.create_tags(Resources=[pair.eni["b"]], Tags=[{"Key": DRAIN_TAG, "Value": "1"}])
    mechanism.holder()
    assert mechanism.drain_asked() is False  # b's marker is b's
    ec2.create_tags(Resources=[pair.eni["a"]], Tags=[{"Key": DRAIN_TAG, "Value": "1"}])
    mechanism.holder()
    assert mechanism.drain_asked() is True


# --- OCI: the floating private IP, against the fake OCI through the oci SDK -----------------


class OciPair:
    """Two connectors' VNICs in a fake OCI subnet on loopback addresses, the floating private
    IP on the first one's, and a route rule that names it."""

    def __init__(self, o: Any) -> None:
        from oci.core import models as m

        self.o = o
        api = o.api()
        self.net = api.network
        c = o.hq.compartment
        vcn = self.net.create_vcn(
            m.CreateVcnDetails(compartment_id=c, cidr_blocks=["127.0.0.0/16"])
        ).data
        self.subnet = self.net.create_subnet(
            m.CreateSubnetDetails(compartment_id=c, vcn_id=vcn.id, cidr_block="127.0.0.0/24")
        ).data.id
        image = next(iter(o.fake.of_kind("images")))["id"]
        self.vnic, self.address = {}, {}
        for name in ("a", "b"):
            vm = api.compute.launch_instance(
                m.LaunchInstanceDetails(
                    compartment_id=c, availability_domain="Uocm:EU-FRANKFURT-1-AD-1",
                    shape="VM.Standard.E4.Flex", display_name=f"cp-hq-{name}",
                    shape_config=m.LaunchInstanceShapeConfigDetails(ocpus=1),
                    source_details=m.InstanceSourceViaImageDetails(image_id=image),
                    create_vnic_details=m.CreateVnicDetails(subnet_id=self.subnet, skip_source_dest_check=True),
                )
            ).data  # fmt: skip
            attachment = api.compute.list_vnic_attachments(c, instance_id=vm.id).data[0]
            self.vnic[name] = attachment.vnic_id
            (ip,) = self.net.list_private_ips(vnic_id=attachment.vnic_id).data
            self.address[name] = ip.ip_address
        self.floating = self.net.create_private_ip(
            m.CreatePrivateIpDetails(vnic_id=self.vnic["a"], freeform_tags={HA_TAG: "hq"})
        ).data.id
        self.table = self.net.create_route_table(
            m.CreateRouteTableDetails(compartment_id=c, vcn_id=vcn.id, route_rules=[
                m.RouteRule(destination="100.96.0.0/11", destination_type="CIDR_BLOCK",
                            network_entity_id=self.floating)])
        ).data.id  # fmt: skip
        self.port = _free_port()

    def holder(self) -> str:
        vnic = self.net.get_private_ip(self.floating).data.vnic_id
        return next(k for k, v in self.vnic.items() if v == vnic)

    def mechanism(self, settings: Settings) -> OciPrivateIp:
        return OciPrivateIp(settings, self.o.api().network)

    def settings(self, name: str) -> Settings:
        return Settings(
            cloud="oci", network="hq", region="eu-frankfurt-1", interface=self.vnic[name],
            address=self.address[name], subnet=self.subnet, health_port=self.port,
            interval=0.05, fails=3,
        )  # fmt: skip


def test_oci_the_standby_moves_the_floating_ip_and_the_rule_follows_it(oci_world):
    pair = OciPair(oci_world)
    up = {"a": True, "b": True}
    said: list[str] = []
    with (
        watchdog(pair, "a", lambda: up["a"], said),
        watchdog(pair, "b", lambda: up["b"], said),
    ):
        time.sleep(0.6)
        assert pair.holder() == "a" and said == []
        up["a"] = False  # a's tunnel is down: b moves the address to its own VNIC
        assert _until(lambda: pair.holder() == "b")
        rules = pair.net.get_route_table(pair.table).data.route_rules
        assert [r.network_entity_id for r in rules] == [pair.floating]  # nothing else written
        up["a"] = True
        time.sleep(0.6)
        assert pair.holder() == "b"
    assert [line for line in said if "took over" in line] == [
        f"watchdog: took over from {pair.vnic['a']} (1 writes)"
    ]
    writes = [c for c in oci_world.fake.mutating_calls() if c.kind == "privateIps"]
    assert [c.verb for c in writes][-1:] == ["update"]


# --- Azure, GCP: the pair agrees among itself; a load balancer's probe follows `/active` -------


class PeerPair:
    """Two connectors on loopback (127.0.0.2, the first; 127.0.0.3), each told the other's
    address, as the instance metadata tells them. `probe` is what a load balancer's health
    probe on `/active` finds: the addresses it would send traffic to."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.address = {"a": "127.0.0.2", "b": "127.0.0.3"}
        self.peer_of = {"a": "127.0.0.3", "b": "127.0.0.2"}

    def settings(self, name: str) -> Settings:
        return Settings(
            cloud="azure", network="hq", interface=self.address[name], address=self.address[name],
            health_port=self.port, interval=0.05, fails=3, member=0 if name == "a" else 1,
            refresh=0.3,
        )  # fmt: skip

    def mechanism(self, settings: Settings) -> Peers:
        name = "a" if settings.member == 0 else "b"
        return Peers(settings, lambda: self.peer_of[name])

    def probe(self) -> set[str]:
        return {
            name
            for name, address in self.address.items()
            if (ask_active(address, self.port, 0.5) or {}).get("active")
            and _answers_200(address, self.port)
        }


def _answers_200(address: str, port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{address}:{port}/active", timeout=0.5) as r:
            return bool(r.status == 200)
    except Exception:
        return False


def test_peers_agree_on_one_active_and_a_returning_one_stays_standby():
    pair = PeerPair()
    up = {"a": True, "b": True}
    said: list[str] = []
    with (
        watchdog(pair, "a", lambda: up["a"], said),
        watchdog(pair, "b", lambda: up["b"], said),
    ):
        assert _until(lambda: pair.probe() == {"a"})  # both healthy: the first claims
        time.sleep(0.6)
        assert pair.probe() == {"a"} and not any("took over" in line for line in said)

        up["a"] = False  # a's tunnel is down: its probe fails at once, b claims after 3 misses
        assert _until(lambda: pair.probe() == {"b"})
        assert [line for line in said if "took over" in line] == [
            "watchdog: took over from 127.0.0.2 (0 writes)"
        ]
        up["a"] = True  # a is back and healthy: b's claim is the later one, a stays standby
        time.sleep(1.0)
        assert pair.probe() == {"b"}
        assert sum("took over" in line for line in said) == 1


def test_peers_a_drained_active_keeps_the_front_until_the_other_claims():
    """Where a balancer's probe follows the pair: the active one, drained, goes on answering
    `/active` until the other has claimed, so the probe never finds nobody; then it closes."""
    pair = PeerPair()
    tunnel = {"a": True, "b": True}
    drain = {"a": False}
    said: list[str] = []

    def hooks(name: str) -> Hooks:
        def act(up: bool) -> None:
            tunnel[name] = up

        return Hooks(tunnel=act, drain_asked=lambda: drain.get(name, False))

    seen: list[set[str]] = []
    with (
        watchdog(pair, "a", lambda: tunnel["a"], said, hooks("a")),
        watchdog(pair, "b", lambda: tunnel["b"], said, hooks("b")),
    ):
        assert _until(lambda: pair.probe() == {"a"})
        drain["a"] = True
        deadline = time.monotonic() + 10
        while tunnel["a"] and time.monotonic() < deadline:
            seen.append(pair.probe())
        assert not tunnel["a"], said
        assert pair.probe() == {"b"}
        assert set() not in seen, seen  # the front always had a member to send to
        assert {"b"} in seen  # and it moved before a's tunnel closed


def test_peers_a_vanished_active_is_replaced_and_a_split_is_settled_by_the_later_claim():
    pair = PeerPair()
    up = {"a": True, "b": True}
    said: list[str] = []
    with watchdog(pair, "b", lambda: up["b"], said):
        with watchdog(pair, "a", lambda: up["a"], said):
            assert _until(lambda: pair.probe() == {"a"})
        # a's VM is gone (its endpoint with it): b takes over
        assert _until(lambda: pair.probe() == {"b"})
        # a comes back: it finds b's claim and stays standby
        with watchdog(pair, "a", lambda: up["a"], said):
            time.sleep(0.6)
            assert pair.probe() == {"b"}
            # cut apart (each told no peer): each claims; told again, the later claim stands
            pair.peer_of = {"a": "", "b": ""}
            assert _until(lambda: pair.probe() == {"a", "b"})
            pair.peer_of = {"a": "127.0.0.3", "b": "127.0.0.2"}
            assert _until(lambda: len(pair.probe()) == 1)
            time.sleep(0.6)
            assert len(pair.probe()) == 1
