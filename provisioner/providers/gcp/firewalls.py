"""VPC firewall rules on GCP: the connector's own ingress rule, and the app instances' ingress for
the traffic the connector delivers. An app tag's rules are one firewall rule of ours per port
spec, `targetTags` the tag, its sources the addresses that arrive (or the connector's tag when it
NATs: source tags match a VM's own primary address only, never a forwarded packet's). A rule is
read, changed and written back whole; it is deleted with its last source, since a rule with no
source at all would admit every address."""

from __future__ import annotations

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
from .common import GcpState, digest, partial, short

EVERYWHERE = IPv4Network("0.0.0.0/0")


def _ports(allowed: Any) -> list[Ports]:
    protocol = str(allowed.I_p_protocol).lower()
    if protocol == "all":
        return [ALL_TRAFFIC]
    if not allowed.ports:
        return [Ports(protocol)]
    out = []
    for p in allowed.ports:
        first, _, last = p.partition("-")
        out.append(Ports(protocol, int(first), int(last or first)))
    return out


def _allowed(ports: Ports) -> dict[str, Any]:
    if ports.protocol == "all":
        return {"I_p_protocol": "all"}
    if ports.first is None:
        return {"I_p_protocol": ports.protocol}
    text = str(ports.first) if ports.first == ports.last else f"{ports.first}-{ports.last}"
    return {"I_p_protocol": ports.protocol, "ports": [text]}


def _firewall_layer(
    name: str, firewalls: list[Any], tags: set[str], accounts: set[str]
) -> FilterLayer:
    """The ingress rules that apply to one instance, as one ordered stateful layer: ordered by
    priority, a deny before an allow of the same priority, the implied deny last."""

    rules = []
    for fw in firewalls:
        if "INGRESS" not in str(fw.direction):  # the field, or its enum's name
            continue
        targets_tags, targets_accounts = (
            set(fw.target_tags or []),
            set(fw.target_service_accounts or []),
        )
        if (targets_tags or targets_accounts) and not (
            targets_tags & tags or targets_accounts & accounts
        ):
            continue
        for allow, entries in ((False, fw.denied or []), (True, fw.allowed or [])):
            for entry in entries:
                for ports in _ports(entry):
                    for source in fw.source_ranges or []:
                        rules.append(FilterRule(
                            order=int(fw.priority) * 2 + (1 if allow else 0), allow=allow,
                            inbound=True, peer=IPv4Network(source, strict=False), ports=ports,
                            name=f"{fw.name} (priority {fw.priority})",
                        ))  # fmt: skip
    rules.append(FilterRule(65535 * 2, False, True, IPv4Network("0.0.0.0/0"),
                            name="the implied deny of all ingress (65535)", default=True))  # fmt: skip
    return FilterLayer(f"firewall rules of {name}", ordered=True, stateful=True, rules=tuple(rules))


class Firewalls(GcpState):
    def _sources(self, fw: Any) -> list[IPv4Network | str]:
        out: list[IPv4Network | str] = [
            IPv4Network(r, strict=False) for r in fw.source_ranges or []
        ]
        out += [CONNECTOR_SOURCE if t == self.tag else t for t in fw.source_tags or []]
        if not out and not fw.source_service_accounts:
            out.append(EVERYWHERE)  # a rule that names no source admits every address
        return out

    def _observe_firewalls(
        self, firewalls: list[Any], tags: set[str]
    ) -> tuple[tuple[AppGroup, ...], tuple[IPv4Network, ...]]:
        """(the app tags asked for or holding rules of ours, the ranges the connector admits)."""
        mine = f"cp-{self.network.name}-"
        ingress: tuple[IPv4Network, ...] = ()
        rules: dict[str, list[IngressRule]] = {}
        untargeted: list[IngressRule] = []
        for fw in firewalls:
            if fw.name == self.ingress_name:
                ingress = tuple(s for s in self._sources(fw) if isinstance(s, IPv4Network))
                continue
            if fw.name == f"{mine}hc":  # a pair's health checks: a part of its own
                continue
            if fw.direction != "INGRESS" or not fw.allowed or fw.disabled:
                continue
            ours = fw.name.startswith(mine)
            found = [
                IngressRule(source, ports, ours=ours, label=fw.description or "")
                for source in self._sources(fw)
                for allowed in fw.allowed
                for ports in _ports(allowed)
            ]
            if fw.target_service_accounts:
                continue  # applies to instances by service account, not by tag
            if not fw.target_tags:
                untargeted += [r for r in found if not r.ours]  # every instance: the app's too
            for tag in fw.target_tags or []:
                rules.setdefault(tag, []).extend(found)
        wanted = list(self.network.app_security_groups)
        held = [t for t, rs in rules.items() if any(r.ours for r in rs) and t not in wanted]
        groups = tuple(
            AppGroup(t, tuple(rules.get(t, [])) + tuple(untargeted)) for t in wanted + held
        )
        return groups, ingress

    # --- apply ---------------------------------------------------------------------------

    def _firewall_of(self, change: Change) -> tuple[str, str, Ports, str]:
        """(rule name, target tag, ports, description) of the firewall rule a connector-ingress
        or app-access change writes to."""
        if change.kind is Kind.CONNECTOR_INGRESS:
            return (
                self.ingress_name,
                self.tag,
                ALL_TRAFFIC,
                f"connector-provisioner: {self.network.name}: the network's own ranges to its "
                "connector",
            )
        assert change.rule is not None
        group, ports = change.resource, change.rule.ports
        return (
            f"cp-{self.network.name}-app-{digest(f'{group}|{ports}')}",
            group,
            ports,
            f"connector-provisioner: {self.network.name}: what the connector delivers to "
            f"instances tagged {group} ({ports})",
        )

    def _rules_batch(self, changes: Sequence[Change]) -> None:
        """Every source the changes add to or take from one firewall rule, in one write: the
        rule is read, changed and written back whole (a PATCH cannot empty a list), made with
        its first source, deleted with its last."""
        from google.api_core.exceptions import NotFound
        from google.cloud import compute_v1

        name, target, ports, description = self._firewall_of(changes[0])
        try:
            fw = self.call(
                f"firewall {name}", self.api.firewalls.get, project=self.project, firewall=name
            )
        except NotFound:
            fw = None
        ranges, tags = self._sources_after(fw, changes)
        if fw is not None and (ranges, tags) == (
            list(fw.source_ranges or []),
            list(fw.source_tags or []),
        ):
            return  # as wanted already
        if not ranges and not tags:
            if fw is not None:  # no source left: a rule without one would admit everything
                self.delete(
                    f"firewall {name}",
                    self.api.firewalls.delete_unary,
                    project=self.project,
                    firewall=name,
                )
            return
        body = compute_v1.Firewall(
            name=name,
            network=self.seen.network_url,
            direction="INGRESS",
            priority=1000,
            target_tags=[target],
            allowed=[compute_v1.Allowed(**_allowed(ports))],
            source_ranges=ranges,
            source_tags=tags,
            description=description,
        )
        if fw is None:
            op = self.call(
                f"firewall {name}",
                self.api.firewalls.insert_unary,
                project=self.project,
                firewall_resource=body,
            )
        else:
            op = self.call(
                f"firewall {name}",
                self.api.firewalls.update_unary,
                project=self.project,
                firewall=name,
                firewall_resource=body,
            )
        self.wait(op, f"firewall rule {name}")

    def _sources_after(self, fw: Any, changes: Sequence[Change]) -> tuple[list[str], list[str]]:
        """The rule's source ranges and tags once `changes` are made to them (what an
        interrupted run made already is not added twice)."""
        ranges = list(fw.source_ranges or []) if fw else []
        tags = list(fw.source_tags or []) if fw else []
        for change in changes:
            source: IPv4Network | str | None = (
                change.destination if change.kind is Kind.CONNECTOR_INGRESS else None
            )
            if source is None:
                assert change.rule is not None
                source = change.rule.source
            listed, value = (
                (tags, self.tag) if source == CONNECTOR_SOURCE else (ranges, str(source))
            )
            if change.action is Action.DELETE and value in listed:
                listed.remove(value)
            elif change.action is not Action.DELETE and value not in listed:
                listed.append(value)
        return ranges, tags

    def _delete_connector_firewall(self) -> None:

        self.delete(
            f"firewall {self.ingress_name}",
            self.api.firewalls.delete_unary,
            project=self.project,
            firewall=self.ingress_name,
        )

    def filters(self, observed: Observed) -> Observed:
        """The doctor's reads: the network's firewall rules, judged per instance as Compute
        does: the enabled ingress rules whose targets (tags, service accounts, or none: all)
        take the instance, the lowest priority deciding, a deny before an allow of the same
        priority, then the implied deny of all ingress (65535)."""
        try:
            firewalls = [
                f
                for f in self.call("firewalls", self.api.firewalls.list, project=self.project)
                if partial(f.network) == self.seen.network_url and not f.disabled
            ]
            instances = [
                i
                for scoped in self.call(
                    "instances", self.api.instances.aggregated_list, project=self.project
                )
                for i in (scoped[1].instances or [])
                if any(partial(n.network) == self.seen.network_url for n in i.network_interfaces)
            ]
        except self.sdk_errors() as e:
            raise CloudError(f"network {self.network.name}: reading its firewall rules: "
                             f"{self.error_text(e)}") from None  # fmt: skip
        members: dict[str, list[Member]] = {}
        hosts: dict[str, tuple[FilterLayer, ...]] = {}
        for vm in instances:
            nic = vm.network_interfaces[0]
            if not nic.network_i_p:
                continue
            tags = set(vm.tags.items if vm.tags else [])
            accounts = {a.email for a in vm.service_accounts or []}
            hosts[nic.network_i_p] = (_firewall_layer(vm.name, firewalls, tags, accounts),)
            for group in self.network.app_security_groups:
                if group in tags:
                    members.setdefault(group, []).append(
                        Member(nic.network_i_p, short(nic.subnetwork))
                    )
        return replace(
            observed, members={k: tuple(v) for k, v in members.items()}, host_filters=hosts
        )
