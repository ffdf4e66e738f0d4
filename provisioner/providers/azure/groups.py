"""Network security groups on Azure: the connector's own NSG and its rules, and the app NSGs'
inbound rules for the traffic the connector delivers. Translates `IngressRule`s to NSG rules
(a source prefix, a protocol, destination ports) and back."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv4Network
from typing import Any

from ...errors import CloudError
from ...model import (
    ALL_TRAFFIC,
    CONNECTOR_SOURCE,
    Action,
    AppGroup,
    Change,
    FilterLayer,
    FilterRule,
    IngressRule,
    Kind,
    Member,
    Observed,
    Ports,
)
from .common import AzureSeen, AzureState, rule_name, short

PROTOCOLS = {"*": "all", "Tcp": "tcp", "Udp": "udp", "Icmp": "icmp"}
HIGHEST = 4096  # our allow rules take the last free priorities: the admin's own rules go first


def _ports(protocol: str, ranges: list[str]) -> list[Ports]:
    name = PROTOCOLS.get(protocol, protocol.lower())
    if name == "all":
        return [ALL_TRAFFIC] if ranges in ([], ["*"]) else [Ports(name)]
    out = []
    for r in ranges or ["*"]:
        if r == "*":
            out.append(Ports(name))
        else:
            first, _, last = r.partition("-")
            out.append(Ports(name, int(first), int(last or first)))
    return out


def _azure_ports(ports: Ports) -> tuple[str, str]:
    """(protocol, destination port range) as an NSG rule writes them."""
    protocol = {"all": "*", "tcp": "Tcp", "udp": "Udp", "icmp": "Icmp"}[ports.protocol]
    if ports.first is None:
        return protocol, "*"
    return protocol, str(
        ports.first
    ) if ports.first == ports.last else f"{ports.first}-{ports.last}"


def _source(text: str) -> IPv4Network | str:
    if text == "*":
        return IPv4Network("0.0.0.0/0")
    try:
        return IPv4Network(text, strict=False)
    except ValueError:
        return text  # a service tag (Internet, VirtualNetwork...) or an application group


def _nsg_layer(nsg: Any) -> FilterLayer:
    """An NSG's rules, its own and its default ones, as an ordered stateful layer: the lowest
    priority that matches decides; a service tag is a named peer ("*" matches everything)."""
    rules = []
    defaults = {id(r) for r in nsg.default_security_rules or []}
    for rule in [*(nsg.security_rules or []), *(nsg.default_security_rules or [])]:
        inbound = str(getattr(rule.direction, "value", rule.direction)) == "Inbound"
        peers = (
            (rule.source_address_prefixes or [rule.source_address_prefix])
            if inbound
            else (rule.destination_address_prefixes or [rule.destination_address_prefix])
        )
        spans = rule.destination_port_ranges or [rule.destination_port_range]
        protocol = str(getattr(rule.protocol, "value", rule.protocol)).lower()
        for peer in peers:
            for span in spans:
                rules.append(
                    FilterRule(
                        order=int(rule.priority),
                        allow=str(getattr(rule.access, "value", rule.access)) == "Allow",
                        inbound=inbound,
                        peer=_nsg_peer(str(peer)),
                        ports=_nsg_ports(protocol, str(span)),
                        name=f"{rule.name} ({rule.priority})",
                        default=id(rule) in defaults,
                    )
                )
    return FilterLayer(f"NSG {nsg.name}", ordered=True, stateful=True, rules=tuple(rules))


def _nsg_peer(value: str) -> IPv4Network | str:
    if value == "*":
        return "*"
    try:
        return IPv4Network(value, strict=False)
    except ValueError:
        return value  # a service tag: VirtualNetwork, Internet, AzureLoadBalancer...


def _nsg_ports(protocol: str, span: str) -> Ports:
    proto = {"*": "all", "tcp": "tcp", "udp": "udp", "icmp": "icmp"}.get(protocol, protocol)
    if proto in ("all", "icmp") or span in ("*", "None", ""):
        return Ports(proto) if proto != "all" or span in ("*", "None", "") else Ports("all")
    first, _, last = span.partition("-")
    return Ports(proto, int(first), int(last or first))


class Groups(AzureState):
    def _rules(self, nsg: Any, connector_ip: str | None) -> list[tuple[IngressRule, str]]:
        """(rule, its name) for every inbound allow rule, one per source and port range. An
        address of our connector is the `connector` source (Azure has no group reference
        for a NIC: the rule names the connector's private address)."""
        mine = f"cp-{self.network.name}-"
        out = []
        for r in nsg.security_rules or []:
            if r.direction != "Inbound" or r.access != "Allow":
                continue
            sources = list(r.source_address_prefixes or []) or (
                [r.source_address_prefix] if r.source_address_prefix else []
            )
            sources += [short(g.id) for g in r.source_application_security_groups or []]
            ranges = list(r.destination_port_ranges or []) or [r.destination_port_range or "*"]
            for text in sources:
                source = _source(text)
                if connector_ip and source == IPv4Network(f"{connector_ip}/32"):
                    source = CONNECTOR_SOURCE
                for ports in _ports(r.protocol or "*", ranges):
                    ours = r.name.startswith(mine)
                    rule = IngressRule(source, ports, ours=ours, label=r.description or "")
                    out.append((rule, r.name))
        return out

    def _observe_groups(
        self, groups: list[Any], connector_ip: str | None, seen: AzureSeen
    ) -> tuple[tuple[AppGroup, ...], tuple[IPv4Network, ...]]:
        """(the app groups asked for or holding rules of ours, the CIDRs our own NSG admits);
        the groups' ids and our rules' names into `seen`."""
        own = next((g for g in groups if g.name == self.nsg_name), None)
        if own is not None:
            seen.rule_counts[self.nsg_name] = len(own.security_rules or [])
        ingress = tuple(
            r.source for r, name in (self._rules(own, connector_ip) if own else []) if name.startswith("cp-local-")
            and isinstance(r.source, IPv4Network)
        )  # fmt: skip
        by_id = {g.id.lower(): g for g in groups}
        wanted: dict[str, Any] = {}
        for entry in self.network.app_security_groups:
            rid = entry if entry.startswith("/") else self.rid("networkSecurityGroups", entry)
            found = by_id.get(rid.lower())
            if found is None and entry.startswith("/"):
                found = self._group_elsewhere(rid)
            if found is not None:
                wanted[entry] = found
        out = []
        for label, g in [
            *wanted.items(),
            *((g.name, g) for g in groups if g not in wanted.values()),
        ]:
            if own is not None and g.id == own.id:
                continue
            rules = self._rules(g, connector_ip)
            if label in wanted or any(r.ours for r, _ in rules):
                seen.group_ids[label] = g.id
                seen.rule_counts[label] = len(g.security_rules or [])
                for r, name in rules:
                    if r.ours:
                        seen.app_rule_names[(label, str(r.source), str(r.ports))] = name
                out.append(AppGroup(label, tuple(r for r, _ in rules)))
        return tuple(out), ingress

    def _group_elsewhere(self, rid: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        parts = rid.split("/")
        try:
            return self.net.network_security_groups.get(parts[4], parts[-1])
        except ResourceNotFoundError:
            return None

    # --- apply ---------------------------------------------------------------------------

    def _create_security_group(self) -> None:
        from azure.mgmt.network import models

        self.wait(
            self.net.network_security_groups.begin_create_or_update(
                self.rg,
                self.nsg_name,
                models.NetworkSecurityGroup(location=self.location.location, tags=self.tags),
            ),
            f"security group {self.nsg_name}",
        )

    def _delete_security_group(self) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.wait(
                self.net.network_security_groups.begin_delete(self.rg, self.nsg_name),
                f"security group {self.nsg_name}",
            )

    def _nsg_of(self, change: Change) -> str:
        """The id of the NSG a connector-ingress or app-access change writes to."""
        if change.kind is Kind.CONNECTOR_INGRESS:
            return self.rid("networkSecurityGroups", self.nsg_name)
        return self.seen.group_ids.get(change.resource) or self.rid(
            "networkSecurityGroups", change.resource
        )

    def _nsg_rule(self, change: Change) -> tuple[str, IngressRule, str, str]:
        """(rule name, rule, source prefix, description) of the NSG rule a change adds or takes
        away."""
        if change.kind is Kind.CONNECTOR_INGRESS:
            cidr = change.destination
            assert cidr is not None
            name = "cp-local-" + str(cidr).replace(".", "-").replace("/", "-")
            label = "connector-provisioner: a local subnet"
            return name, IngressRule(cidr, ALL_TRAFFIC, label=label), str(cidr), label
        rule, group = change.rule, change.resource
        assert rule is not None
        source = (
            f"{self._connector_address()}/32"
            if rule.source == CONNECTOR_SOURCE
            else str(rule.source)
        )
        # the new connector's own rule beside the old one's (made before break): a name of its
        # own; the old one's (`previous_target` "replaced") is the one observe found
        from ...model import NEW_CONNECTOR

        fresh = change.target == NEW_CONNECTOR
        ours = (
            None
            if fresh
            else self.seen.app_rule_names.get((group, str(rule.source), str(rule.ports)))
        )
        name = ours or rule_name(self.network.name, f"{source}|{rule.ports}")
        label = f"connector-provisioner: {self.network.name}: {rule.label}".rstrip(": ")
        return name, rule, source, label

    def _rules_batch(self, changes: Sequence[Change]) -> None:
        """One NSG's rules of a step in one PUT of the NSG, guarded by its etag: ours merged in
        at the highest free priorities (the admin's own rules go first), or taken out; every
        other rule goes back as it was. A rule already as wanted (an interrupted run) stays."""
        from azure.mgmt.network import models

        nsg_id = self._nsg_of(changes[0])
        group_rg, nsg = nsg_id.split("/")[4], short(nsg_id)
        wanted = [(c.action, *self._nsg_rule(c)) for c in changes]

        def merge(current: Any) -> Any:
            rules = list(current.security_rules or [])
            names = {r.name.lower() for r in rules}
            taken = {r.priority for r in rules if r.direction == "Inbound"}
            changed = False
            for action, name, rule, source, description in wanted:
                if action is Action.DELETE:
                    if name.lower() in names:
                        rules = [r for r in rules if r.name.lower() != name.lower()]
                        names.discard(name.lower())
                        changed = True
                    continue
                if name.lower() in names:
                    continue
                priority = next(p for p in range(HIGHEST, 99, -1) if p not in taken)
                taken.add(priority)
                names.add(name.lower())
                protocol, ports = _azure_ports(rule.ports)
                rules.append(
                    models.SecurityRule(
                        name=name,
                        properties=models.SecurityRulePropertiesFormat(
                            protocol=protocol,
                            source_address_prefix=source,
                            source_port_range="*",
                            destination_address_prefix="*",
                            destination_port_range=ports,
                            access="Allow",
                            direction="Inbound",
                            priority=priority,
                            description=description,
                        ),
                    )
                )
                changed = True
            if not changed:
                return None
            current.security_rules = rules
            return current

        self.read_merge_write(
            f"security group {nsg}",
            lambda: self.net.network_security_groups.get(group_rg, nsg),
            merge,
            lambda current: self.put_whole(
                self.net.network_security_groups, group_rg, nsg, current
            ),
        )

    def filters(self, observed: Observed) -> Observed:
        """The doctor's reads: the resource group's NSGs with their own and default rules
        (ordered by priority, deny included, stateful) and the VNet's NICs. A host of an app
        group (an NSG on its NIC or its subnet) meets its subnet's NSG, then its NIC's."""
        try:
            nsgs = {n.id.lower(): n for n in self.net.network_security_groups.list(self.rg)}
            nics = list(self.net.network_interfaces.list_all())
        except self.sdk_errors() as e:
            raise CloudError(f"network {self.network.name}: reading its NSGs: "
                             f"{self.error_text(e)}") from None  # fmt: skip
        layers = {key: _nsg_layer(n) for key, n in nsgs.items()}
        subnet_nsg = {
            s.name: (s.network_security_group.id.lower() if s.network_security_group else None)
            for s in self.seen.vnet.subnets or []
        }
        vnet_id = self.seen.vnet.id.lower()
        members: dict[str, list[Member]] = {}
        hosts: dict[str, tuple[FilterLayer, ...]] = {}
        for nic in nics:
            config = (nic.ip_configurations or [None])[0]
            if config is None or config.subnet is None or not config.private_ip_address:
                continue
            if not config.subnet.id.lower().startswith(vnet_id + "/"):
                continue
            subnet = short(config.subnet.id)
            nic_nsg = nic.network_security_group.id.lower() if nic.network_security_group else None
            on_host = [k for k in (subnet_nsg.get(subnet), nic_nsg) if k and k in layers]
            hosts[config.private_ip_address] = tuple(layers[k] for k in on_host)
            for key in on_host:
                group = short(key)
                if group in self.network.app_security_groups:
                    members.setdefault(group, []).append(Member(config.private_ip_address, subnet))
        udr = tuple(r.destination for t in observed.route_tables for r in t.routes)
        return replace(
            observed,
            members={k: tuple(v) for k, v in members.items()},
            host_filters=hosts,
            peer_names={"VirtualNetwork": (*observed.cidrs, *udr)},
        )
