"""Network security groups on OCI: the connector's own NSG and its ingress rules, and the app
NSGs' ingress rules for the traffic the connector delivers: by source CIDR while sources are
kept, or by the connector's NSG when it NATs. Rules are added and removed by id. Security
lists are left alone."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network
from typing import Any

from ...errors import SpecError
from ...model import (
    ALL_TRAFFIC,
    CONNECTOR_SOURCE,
    Action,
    AppGroup,
    Change,
    IngressRule,
    Kind,
    Ports,
)
from .common import TAG, OciSeen, OciState

PROTOCOLS = {"all": "all", "1": "icmp", "6": "tcp", "17": "udp"}
NUMBERS = {v: k for k, v in PROTOCOLS.items()}
RULES_PER_CALL = 25  # AddNetworkSecurityGroupSecurityRules takes at most 25 rules a request


def _ports(rule: Any) -> Ports:
    protocol = PROTOCOLS.get(str(rule.protocol), str(rule.protocol))
    options = (
        rule.tcp_options if protocol == "tcp" else rule.udp_options if protocol == "udp" else None
    )
    span = options.destination_port_range if options is not None else None
    if protocol == "all":
        return ALL_TRAFFIC
    if span is None:
        return Ports(protocol)
    return Ports(protocol, span.min, span.max)


class Groups(OciState):
    def _rules(self, group_id: str) -> list[Any]:
        import oci

        return list(
            oci.pagination.list_call_get_all_results(
                self.api.network.list_network_security_group_security_rules,
                group_id,
                direction="INGRESS",
            ).data
        )

    def _as_rule(self, rule: Any, ours_marker: str, own_nsg: str | None) -> IngressRule | None:
        if rule.direction != "INGRESS":
            return None
        if rule.source_type == "NETWORK_SECURITY_GROUP":
            source: IPv4Network | str = (
                CONNECTOR_SOURCE if rule.source == own_nsg else str(rule.source)
            )
        elif rule.source_type == "CIDR_BLOCK":
            source = IPv4Network(rule.source, strict=False)
        else:
            return None  # a service's CIDR label
        ours = (rule.description or "").startswith(ours_marker)
        return IngressRule(source, _ports(rule), ours=ours, label=rule.description or "")

    def _observe_groups(
        self, groups: list[Any], seen: OciSeen
    ) -> tuple[tuple[AppGroup, ...], tuple[IPv4Network, ...], str | None]:
        """(the app NSGs asked for or holding rules of ours, the CIDRs our own NSG admits, our
        own NSG's id when it exists); our rules' ids into `seen`. Reads: one per app NSG of the
        file, and one for our own."""
        own = next(
            (
                g
                for g in groups
                if g.display_name == self.nsg_name
                and (g.freeform_tags or {}).get(TAG) == self.network.name
            ),
            None,
        )
        own_id = own.id if own else None
        marker = f"{TAG}: {self.network.name}"
        ingress: list[IPv4Network] = []
        if own is not None:
            held = list(self._rules(own.id))
            seen.rule_counts[own.id] = len(held)
            for r in held:
                rule = self._as_rule(r, marker, own_id)
                if rule is not None and isinstance(rule.source, IPv4Network):
                    ingress.append(rule.source)
                    seen.rule_ids[(own.id, str(rule.source), str(rule.ports))] = r.id
        by_id = {g.id: g for g in groups}
        out = []
        for i, group in enumerate(self.network.app_security_groups):
            if group not in by_id:  # an NSG of the VCN may live in another compartment
                found = self._group_elsewhere(group)
                if found is None:
                    raise SpecError(
                        f"networks.{self.network.name}.app_security_groups[{i}]",
                        f"{group!r} is not a network security group of {self.location.vcn}",
                    )
                by_id[group] = found
        # the file's groups, and any other of the VCN that holds rules of ours (left when a group
        # left the file): one read per NSG of the VCN
        for group in list(by_id.values()):
            if group.id == own_id:
                continue
            rules = []
            held = list(self._rules(group.id))
            seen.rule_counts[group.id] = len(held)
            for r in held:
                rule = self._as_rule(r, marker, own_id)
                if rule is None:
                    continue
                if rule.ours:
                    seen.rule_ids[(group.id, str(rule.source), str(rule.ports))] = r.id
                rules.append(rule)
            if group.id in self.network.app_security_groups or any(r.ours for r in rules):
                out.append(AppGroup(group.id, tuple(rules)))
        return tuple(out), tuple(ingress), own_id

    def _group_elsewhere(self, group_id: str) -> Any:
        import oci

        try:
            found = self.api.network.get_network_security_group(group_id).data
        except oci.exceptions.ServiceError as e:
            if e.status != 404:
                raise
            return None
        return found if found.vcn_id == self.location.vcn else None

    # --- apply ---------------------------------------------------------------------------

    def _create_security_group(self) -> None:
        import oci

        assert self.seen.vcn is not None
        made = self.api.network.create_network_security_group(
            oci.core.models.CreateNetworkSecurityGroupDetails(
                compartment_id=self.compartment,
                vcn_id=self.location.vcn,
                display_name=self.nsg_name,
                freeform_tags=self.tags,
            )
        ).data
        self.seen.nsg_id = made.id
        self.wait_for(
            lambda: self.api.network.get_network_security_group(made.id),
            ("AVAILABLE",),
            f"NSG {self.nsg_name}",
        )

    def _delete_security_group(self) -> None:
        import oci

        nsg_id = self.seen.nsg_id
        if nsg_id is None:
            return
        try:
            self.api.network.delete_network_security_group(nsg_id)
        except oci.exceptions.ServiceError as e:
            if e.status != 404 or not self.gone(
                lambda: self.api.network.get_network_security_group(nsg_id)
            ):
                raise

    def _group_of(self, change: Change) -> str:
        """The NSG a connector-ingress or app-access change writes to."""
        if change.kind is Kind.CONNECTOR_INGRESS:
            assert self.seen.nsg_id is not None
            return self.seen.nsg_id
        return change.resource

    def _rule_of(self, change: Change) -> IngressRule:
        if change.kind is Kind.CONNECTOR_INGRESS:
            assert change.destination is not None
            return IngressRule(change.destination, ALL_TRAFFIC, label="the VCN's own ranges")
        assert change.rule is not None
        return change.rule

    def _rules_batch(self, changes: Sequence[Change]) -> None:
        """One NSG's rules: added in calls of up to 25 (the API's most), removed in one call;
        those already as wanted (an interrupted run) are left alone."""
        import oci

        group_id = self._group_of(changes[0])
        rules = [self._rule_of(c) for c in changes]
        keys = [(group_id, str(r.source), str(r.ports)) for r in rules]
        if changes[0].action is Action.DELETE:
            ids = [self.seen.rule_ids[k] for k in keys if k in self.seen.rule_ids]
            if not ids:
                return
            try:
                self.api.network.remove_network_security_group_security_rules(
                    group_id,
                    oci.core.models.RemoveNetworkSecurityGroupSecurityRulesDetails(
                        security_rule_ids=ids
                    ),
                )
            except oci.exceptions.ServiceError as e:
                present = {r.id for r in self._rules(group_id)}
                if e.status not in (400, 404) or present & set(ids):
                    raise  # still there: a refusal, not "already gone"
            for k in keys:
                self.seen.rule_ids.pop(k, None)
            return
        wanted = [(k, r) for k, r in zip(keys, rules, strict=True) if k not in self.seen.rule_ids]
        for i in range(0, len(wanted), RULES_PER_CALL):
            chunk = wanted[i : i + RULES_PER_CALL]
            added = self.api.network.add_network_security_group_security_rules(
                group_id,
                oci.core.models.AddNetworkSecurityGroupSecurityRulesDetails(
                    security_rules=[self._details(r) for _, r in chunk]
                ),
            ).data
            for (k, _), made in zip(chunk, added.security_rules, strict=True):
                self.seen.rule_ids[k] = made.id

    def _details(self, rule: IngressRule) -> Any:
        import oci

        if rule.source == CONNECTOR_SOURCE:
            source, source_type = self.seen.nsg_id, "NETWORK_SECURITY_GROUP"
        else:
            source, source_type = str(rule.source), "CIDR_BLOCK"
        ports = rule.ports
        options: dict[str, Any] = {}
        if ports.first is not None:
            span = oci.core.models.PortRange(min=ports.first, max=ports.last)
            if ports.protocol == "tcp":
                options["tcp_options"] = oci.core.models.TcpOptions(destination_port_range=span)
            else:
                options["udp_options"] = oci.core.models.UdpOptions(destination_port_range=span)
        return oci.core.models.AddSecurityRuleDetails(
            direction="INGRESS",
            protocol=NUMBERS.get(ports.protocol, ports.protocol),
            source=source,
            source_type=source_type,
            description=f"{TAG}: {self.network.name}: {rule.label}"[:255],
            **options,
        )
