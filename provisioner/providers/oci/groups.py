"""Network security groups on OCI: the connector's own NSG and its ingress rules, and the app
NSGs' ingress rules for the traffic the connector delivers: by source CIDR while sources are
kept, or by the connector's NSG when it NATs. Rules are added and removed by id. Security
lists are left alone."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from ...errors import SpecError
from ...model import ALL_TRAFFIC, CONNECTOR_SOURCE, Action, AppGroup, IngressRule, Ports
from .common import TAG, OciState

PROTOCOLS = {"all": "all", "1": "icmp", "6": "tcp", "17": "udp"}
NUMBERS = {v: k for k, v in PROTOCOLS.items()}


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

    def _as_rule(self, rule: Any, ours_marker: str) -> IngressRule | None:
        if rule.direction != "INGRESS":
            return None
        if rule.source_type == "NETWORK_SECURITY_GROUP":
            source: IPv4Network | str = (
                CONNECTOR_SOURCE if rule.source == self.nsg_id else str(rule.source)
            )
        elif rule.source_type == "CIDR_BLOCK":
            source = IPv4Network(rule.source, strict=False)
        else:
            return None  # a service's CIDR label
        ours = (rule.description or "").startswith(ours_marker)
        return IngressRule(source, _ports(rule), ours=ours, label=rule.description or "")

    def _observe_groups(
        self, groups: list[Any]
    ) -> tuple[tuple[AppGroup, ...], tuple[IPv4Network, ...]]:
        """(the app NSGs asked for or holding rules of ours, the CIDRs our own NSG admits).
        Reads: one per app NSG of the file, and one for our own."""
        own = next(
            (
                g
                for g in groups
                if g.display_name == self.nsg_name
                and (g.freeform_tags or {}).get(TAG) == self.network.name
            ),
            None,
        )
        self.nsg_id = own.id if own else None
        marker = f"{TAG}: {self.network.name}"
        ingress: list[IPv4Network] = []
        if own is not None:
            for r in self._rules(own.id):
                rule = self._as_rule(r, marker)
                if rule is not None and isinstance(rule.source, IPv4Network):
                    ingress.append(rule.source)
                    self.rule_ids[(own.id, str(rule.source), str(rule.ports))] = r.id
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
            if group.id == self.nsg_id:
                continue
            rules = []
            for r in self._rules(group.id):
                rule = self._as_rule(r, marker)
                if rule is None:
                    continue
                if rule.ours:
                    self.rule_ids[(group.id, str(rule.source), str(rule.ports))] = r.id
                rules.append(rule)
            if group.id in self.network.app_security_groups or any(r.ours for r in rules):
                out.append(AppGroup(group.id, tuple(rules)))
        return tuple(out), tuple(ingress)

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

        assert self.vcn is not None
        made = self.api.network.create_network_security_group(
            oci.core.models.CreateNetworkSecurityGroupDetails(
                compartment_id=self.compartment,
                vcn_id=self.location.vcn,
                display_name=self.nsg_name,
                freeform_tags=self.tags,
            )
        ).data
        self.nsg_id = made.id
        self.wait_for(
            lambda: self.api.network.get_network_security_group(made.id),
            ("AVAILABLE",),
            f"NSG {self.nsg_name}",
        )

    def _delete_security_group(self) -> None:
        import oci

        nsg_id = self.nsg_id
        if nsg_id is None:
            return
        try:
            self.api.network.delete_network_security_group(nsg_id)
        except oci.exceptions.ServiceError as e:
            if e.status != 404 or not self.gone(
                lambda: self.api.network.get_network_security_group(nsg_id)
            ):
                raise

    def _connector_ingress(self, action: Action, cidr: IPv4Network) -> None:
        assert self.nsg_id is not None
        rule = IngressRule(cidr, ALL_TRAFFIC, label="the VCN's own ranges")
        self._rule(action, self.nsg_id, rule)

    def _app_access(self, action: Action, group: str, rule: IngressRule) -> None:
        self._rule(action, group, rule)

    def _rule(self, action: Action, group_id: str, rule: IngressRule) -> None:
        import oci

        key = (group_id, str(rule.source), str(rule.ports))
        if action is Action.DELETE:
            rule_id = self.rule_ids.get(key)
            if rule_id is None:
                return
            try:
                self.api.network.remove_network_security_group_security_rules(
                    group_id,
                    oci.core.models.RemoveNetworkSecurityGroupSecurityRulesDetails(
                        security_rule_ids=[rule_id]
                    ),
                )
            except oci.exceptions.ServiceError as e:
                if e.status not in (400, 404) or any(
                    r.id == rule_id for r in self._rules(group_id)
                ):
                    raise  # still there: a refusal, not "already gone"
            self.rule_ids.pop(key, None)
            return
        if key in self.rule_ids:
            return  # an interrupted run added it
        if rule.source == CONNECTOR_SOURCE:
            source, source_type = self.nsg_id, "NETWORK_SECURITY_GROUP"
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
        details = oci.core.models.AddSecurityRuleDetails(
            direction="INGRESS",
            protocol=NUMBERS.get(ports.protocol, ports.protocol),
            source=source,
            source_type=source_type,
            description=f"{TAG}: {self.network.name}: {rule.label}"[:255],
            **options,
        )
        added = self.api.network.add_network_security_group_security_rules(
            group_id,
            oci.core.models.AddNetworkSecurityGroupSecurityRulesDetails(security_rules=[details]),
        ).data
        self.rule_ids[key] = added.security_rules[0].id
