"""The toy cloud's provider: the toolkit's NetworkProvider over the toy's fake, in the toy's
words. What a fifth cloud writes beside its description: observe, and each part's handlers."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Network
from typing import Any

from provisioner.bootstrap import render_user_data
from provisioner.model import (
    PROFILE_PART,
    Action,
    Change,
    ConnectorState,
    DesiredConnector,
    Network,
    Observed,
    ObservedConnector,
    ObservedRoute,
    ObservedSubnet,
    Part,
    RouteTable,
    WayOut,
)
from provisioner.providers.base import PartHandlers, Provider

from . import ToyLocation
from .fake import ToyError, ToyFake

IMAGE = "toy-ubuntu-24.04"


class ToyNetwork(Provider):
    concurrency = 4

    def __init__(
        self,
        network: Network,
        *,
        progress: Callable[[str], None],
        fake: ToyFake,
        wait_seconds: float = 60.0,
        progress_seconds: float = 10.0,
    ) -> None:
        assert isinstance(network.location, ToyLocation) and network.connector is not None
        self.network, self.location, self.progress = network, network.location, progress
        self.fake = fake
        self.wait_seconds, self.progress_seconds = wait_seconds, progress_seconds
        self.throttle_scope = f"toy:{network.location.zone}"
        self.secret = f"connector-provisioner/{network.name}/profile"
        self.group = f"cp-{network.name}"

    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        return (ToyError,)

    def user_data(self, connector: DesiredConnector) -> str:
        return render_user_data("toy", connector, self.secret, self.location.zone)

    # --- observe ----------------------------------------------------------------------------

    def _observe(self) -> Observed:
        net = self.fake.get_net(self.location.net)
        vms = self.fake.list_vms(self.location.net)
        ours = [(k, v) for k, v in vms.items() if v.get("network") == self.network.name]
        connector = None
        if ours:
            vm, seen = ours[0]
            connector = ObservedConnector(
                instance=vm, state=ConnectorState.RUNNING, interface=seen["nic"],
                private_ip=seen["ip"], forwarding=seen["forwarding"], size=seen["size"],
                image=seen["image"], subnet=seen["subnet"], fingerprint=seen["fingerprint"],
                public_ip=seen["public_ip"],
            )  # fmt: skip
        secret = self.fake.get_secret(self.secret)
        group = self.fake.get_group(self.group)
        return Observed(
            network=self.network.name,
            cidrs=(IPv4Network(net["cidr"]),),
            route_tables=tuple(
                RouteTable(t, tuple(ObservedRoute(IPv4Network(d), to) for d, to in r.items()))
                for t, r in net["tables"].items()
            ),
            subnets=tuple(
                ObservedSubnet(s, WayOut.INTERNET_GATEWAY, "gw-internet", cidr=IPv4Network(c))
                for s, c in net["subnets"].items()
            ),
            connector=connector,
            connectors=(connector,) if connector else (),
            parts=(
                Part(
                    PROFILE_PART,
                    self.secret,
                    "the VPN profile, in the toy's secret store",
                    secret is not None,
                    fingerprint=(secret or {}).get("fingerprint"),
                ),
                Part("group", self.group, "the connector's own group", group is not None),
            ),  # fmt: skip
            connector_ingress=tuple(IPv4Network(c) for c in (group or {}).get("rules", [])),
        )

    # --- the parts ---------------------------------------------------------------------------

    def _put_profile(self, create: bool) -> None:
        assert self.network.connector is not None
        source = self.network.connector.member_profile(0)
        value = source.read().decode("utf-8")
        self.fake.put_secret(self.secret, value, source.fingerprint, create)

    def _create_profile(self) -> None:
        self._put_profile(create=True)

    def _update_profile(self) -> None:
        self._put_profile(create=False)

    def _delete_profile(self) -> None:
        self._gone(lambda: self.fake.delete_secret(self.secret))

    def _create_group(self) -> None:
        self.fake.put_group(self.group)

    def _delete_group(self) -> None:
        self._gone(lambda: self.fake.delete_group(self.group))

    PARTS = {
        PROFILE_PART: PartHandlers(
            create=_create_profile, update=_update_profile, delete=_delete_profile
        ),
        "group": PartHandlers(create=_create_group, delete=_delete_group),
    }

    @staticmethod
    def _gone(call: Callable[[], Any]) -> None:
        """A delete that finds nothing: done already (an interrupted run's)."""
        try:
            call()
        except ToyError as e:
            if e.code != "NotFound":
                raise

    # --- the connector, its group, the routes ----------------------------------------------

    def _vm(self) -> tuple[str, dict[str, Any]] | None:
        vms = self.fake.list_vms(self.location.net)
        return next(((k, v) for k, v in vms.items() if v.get("network") == self.network.name), None)

    def _launch(self, connector: DesiredConnector) -> None:
        self.fake.run_vm(
            self.location.net, connector.subnet, network=self.network.name, size=connector.size,
            image=connector.image or IMAGE, fingerprint=connector.launch_fingerprint,
            user_data=self.user_data(connector), group=self.group,
        )  # fmt: skip

    def _terminate(self) -> None:
        found = self._vm()
        if found is not None:
            self.fake.delete_vm(found[0])

    def _enable_forwarding(self) -> None:
        found = self._vm()
        assert found is not None, "forwarding before the connector"
        self.fake.set_forwarding(found[0])

    def _connector_ingress(self, action: Action, cidr: IPv4Network) -> None:
        self.fake.group_rule(self.group, str(cidr), add=action is not Action.DELETE)

    def _route(self, change: Change) -> None:
        table, destination = change.route_table, str(change.destination)
        assert table is not None
        if change.action is Action.DELETE:
            self._gone(lambda: self.fake.delete_route(table, destination))
            return
        found = self._vm()
        assert found is not None, "a route before its connector"
        replace = change.action is Action.REPLACE
        self.fake.put_route(table, destination, found[1]["nic"], replace)
