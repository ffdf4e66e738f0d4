"""A connector pair on OCI (`connector.ha`): the pair shares one subnet, and the route rules name
a floating private IP there (a secondary IP tagged `connector-provisioner:ha: <network>`) that
leads to the active connector. The standby's watchdog (`provisioner/watchdog.py`) moves it to
its own VNIC with UpdatePrivateIp; the rules that name it follow, nothing else is written.

Each connector is in a dynamic group of its own that reads its own profile alone; the pair's
policy lets both groups read private IPs and move one, in the network's compartment only. OCI
documents no policy variable that names a private IP or a VNIC (and PRIVATE_IP_UPDATE and
VNIC_UNASSIGN do not work with target.resource.tag), so the narrowest scope it allows is the
operation, UpdatePrivateIp, in that compartment."""

from __future__ import annotations

from typing import Any

from ...errors import CloudError
from ...model import NEW_CONNECTOR, Action, Change, ObservedConnector, ObservedFront, Part
from ...watchdog import HA_TAG, WATCH_TAG
from .common import TAG, OciSeen, OciState

PAIR_POLICY_PART = "pair-policy"
FLOATING = "floating private IP"


def watch_key(member: int) -> str:
    """The floating private IP's freeform tag where member `member`'s watchdog keeps its word
    (UpdatePrivateIp, which the pair's policy allows; a primary private IP takes no update)."""
    return f"{WATCH_TAG}-{member}"


def pair_statements(groups: tuple[str, str], compartment: str) -> list[str]:
    """What each connector's watchdog may do: read private IPs (who holds the floating one, the
    holder's address) and move one between VNICs (UpdatePrivateIp, in this compartment)."""
    scope = f"in compartment id {compartment}"
    move = "where request.operation = 'UpdatePrivateIp'"
    return [
        line
        for group in groups
        for line in (
            f"Allow dynamic-group {group} to inspect private-ips {scope}",
            f"Allow dynamic-group {group} to use private-ips {scope} {move}",
            f"Allow dynamic-group {group} to use vnics {scope} {move}",
        )
    ]


class Pair(OciState):
    pair_policy_name: str

    def _pair_groups(self) -> tuple[str, str]:
        return (self.held[0]["group_name"], self.held[1]["group_name"])

    def _pair_statements(self) -> list[str]:
        return pair_statements(self._pair_groups(), self.compartment)

    def _pair_policy_part(self, policies: list[Any]) -> Part:
        assert self.network.connector is not None
        policy = next((p for p in policies if p.name == self.pair_policy_name), None)
        return Part(
            PAIR_POLICY_PART,
            self.pair_policy_name,
            "lets each connector's watchdog move the floating private IP to itself "
            "(UpdatePrivateIp, in this compartment)",
            policy is not None,
            complete=policy is not None and list(policy.statements) == self._pair_statements(),
            after_connector=True,
            member=1,
            wanted=self.network.connector.ha,
        )

    def _observe_front(
        self, subnet: str, found: dict[int, ObservedConnector], seen: OciSeen
    ) -> ObservedFront | None:
        """The pair's floating private IP in its subnet (its id into `seen`), and the connector
        it leads to."""
        assert self.network.connector is not None
        ips = self.api.network.list_private_ips(subnet_id=subnet).data
        floating = next(
            (
                p
                for p in ips
                if not p.is_primary and (p.freeform_tags or {}).get(HA_TAG) == self.network.name
            ),
            None,
        )
        seen.front_id = floating.id if floating is not None else None
        if floating is None:
            return None
        tags = floating.freeform_tags or {}
        seen.words = {m: tags[watch_key(m)] for m in (0, 1) if watch_key(m) in tags}
        holder = next(
            (found[m].interface for m in found if self.held[m]["vnic_id"] == floating.vnic_id),
            None,
        )
        return ObservedFront(FLOATING, floating.id, holder, wanted=self.network.connector.ha)

    def _watchdog_words(self, members: tuple[ObservedConnector, ...]) -> dict[str, str]:
        """Read with the floating private IP already (its tags)."""
        return {
            c.instance: self.seen.words[c.member] for c in members if c.member in self.seen.words
        }

    # --- the handlers ------------------------------------------------------------------------

    def _create_pair_policy(self) -> None:
        self._put_policy(  # type: ignore[attr-defined]
            self.pair_policy_name,
            f"connector-provisioner: {self.network.name}'s pair moves its floating private IP",
            self._pair_statements(),
        )

    def _delete_pair_policy(self) -> None:
        self._drop_policy(self.pair_policy_name)  # type: ignore[attr-defined]

    def _vnic_for(self, change: Change) -> str:
        """The VNIC of the connector a front change names: by its primary private IP, or the
        one launched in this apply."""
        if change.target and change.target != NEW_CONNECTOR:
            vnic = next(
                (h["vnic_id"] for h in self.held.values() if h["private_ip_id"] == change.target),
                None,
            )
        else:
            vnic = self.held[change.member]["vnic_id"]
        if not vnic:
            raise CloudError("the connector has no VNIC yet")
        return str(vnic)

    def _front(self, change: Change) -> None:
        import oci

        models = oci.core.models
        if change.action is Action.DELETE:
            front = self.seen.front_id or change.resource
            try:
                self.api.network.delete_private_ip(front)
            except oci.exceptions.ServiceError as e:  # gone with its VNIC, or before
                if e.status != 404 or not self.gone(lambda: self.api.network.get_private_ip(front)):
                    raise
            self.seen.front_id = None
            return
        vnic = self._vnic_for(change)
        if change.action is Action.CREATE:
            made = self.api.network.create_private_ip(
                models.CreatePrivateIpDetails(
                    vnic_id=vnic,
                    display_name=f"cp-{self.network.name}-floating",
                    freeform_tags={TAG: self.network.name, HA_TAG: self.network.name},
                )
            ).data
            self.seen.front_id = made.id
            self.progress(f"{self.network.name}: floating private IP {made.ip_address} made")
        else:
            assert self.seen.front_id is not None
            self.api.network.update_private_ip(
                self.seen.front_id, models.UpdatePrivateIpDetails(vnic_id=vnic)
            )

    def route_target(self, change: Change) -> str:
        """The private IP a route change names (the floating one, or a connector's primary)."""
        return self.target_of(change, self.seen.front_id, "private_ip_id")
