"""The connector VMs of a network's plan: each member's slot (kept, started, replaced beside the
old one or in its place), the pair's front, the ready steps of a connector made before break
and the VPN service's successors. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Network

from .changes import part_changes
from .desired import (
    WHY_FORWARDING,
    WHY_LAUNCH,
    bootstrap_fingerprint,
    desired_connector,
    lacks_public_address,
    makes_before_break,
    pair_of,
)
from .model import (
    NEW_CONNECTOR,
    NEW_FRONT,
    PROFILE_PART,
    VPN_SERVICE,
    Action,
    Change,
    ConnectorState,
    DesiredConnector,
    ForeignConnector,
    Kind,
    Network,
    NetworkPlan,
    Observed,
    ObservedConnector,
    ObservedService,
    ObservedSubnet,
    ServiceProfile,
    Topology,
    WayOut,
    profile_mark,
)
from .spec import CLOUD_SCHEMAS


def offline_members(
    network: Network, topology: Topology, service: ObservedService | None
) -> frozenset[int]:
    """The members whose connector on the VPN service (the newest of ours) is not ONLINE."""
    from .cloudconnexa.planner import our_connector, vpn_region

    found = service.network(network.name) if service is not None else None
    if found is None or network.connector is None:
        return frozenset()
    region = vpn_region(network, topology)
    out = set()
    for m in range(len(network.connector.subnets)):
        ours = our_connector(found, network.name, region, m)
        if ours is not None and ours.status != "ONLINE":
            out.add(m)
    return frozenset(out)


def successors(
    network: Network,
    topology: Topology,
    service: ObservedService,
    obs: Observed,
    plan: NetworkPlan,
    renewed: frozenset[tuple[str, int]],
    rotate: bool = False,
) -> list[Change]:
    """A connector VM made beside the one it replaces dials in while the old one still does: it
    needs a connector of its own on the VPN service (which admits one session per connector),
    made first; the old one's goes after the clouds' changes. `rotate`: every member's VM gets
    one (and is replaced for it). None when the newest connector of ours is not the one the
    old VM dials in with: an interrupted run made it for this."""
    from .cloudconnexa.planner import successor, vpn_region

    assert network.connector is not None
    found = service.network(network.name)
    replacing: dict[int, tuple[str, str]] = {}  # member -> (the VM it replaces, why)
    for c in plan.changes:
        if c.kind is Kind.CONNECTOR and c.action is Action.CREATE and c.previous_target:
            replacing[c.member] = (c.previous_target, f"for {c.resource}")
    if rotate:
        for vm in pair_of(obs):  # (newest first: a member's newest is the one it runs)
            replacing.setdefault(vm.member, (vm.instance, "(rotate)"))
    out: list[Change] = []
    for member, (instance, why) in sorted(replacing.items()):
        profile = network.connector.member_profile(member)
        if found is None or (network.name, member) in renewed:
            continue
        if not isinstance(profile, ServiceProfile):
            continue
        old = next((x for x in pair_of(obs) if x.instance == instance), None)
        if old is not None and old.runs not in (None, profile_mark(profile.fingerprint)):
            continue
        out += successor(network.name, found, vpn_region(network, topology), member, why)
    return out


def rotation_notes(network: Network, obs: Observed, plan: NetworkPlan) -> tuple[str, ...]:
    """What `provision rotate` does to the network's connectors, or why nothing."""
    assert network.connector is not None
    notes = []
    for member in range(len(network.connector.subnets)):
        profile = network.connector.member_profile(member)
        whose = f" (of the pair: {member + 1})" if network.connector.ha else ""
        new = any(c.kind is Kind.CONNECTOR and c.member == member and c.action in
                  (Action.CREATE, Action.REPLACE) for c in plan.changes)  # fmt: skip
        handed = any(c.kind is Kind.PART and c.part is not None and c.part.member == member
                     and c.part.kind == PROFILE_PART for c in plan.changes)  # fmt: skip
        if isinstance(profile, ServiceProfile) and new:
            notes.append(f"rotate{whose}: a new connector on the VPN service, its profile stored "
                         "for a new VM; the old connector and its profile are removed once the "
                         "routes have left the old VM")  # fmt: skip
        elif isinstance(profile, ServiceProfile) and handed:
            notes.append(f"rotate{whose}: a new connector on the VPN service, its profile handed "
                         "to the running VM, which dials in again with it (a gap of seconds); "
                         "the old connector and its profile are removed after")  # fmt: skip
        elif isinstance(profile, ServiceProfile):
            notes.append(f"rotate{whose}: no connector VM to hand a new profile to")
        elif new:
            notes.append(f"rotate{whose}: the new profile file is stored and a new VM dials in "
                         "with it; the old profile's VM goes once the routes have left it")  # fmt: skip
        else:
            path = getattr(profile, "path", "the profile file")
            notes.append(f"rotate{whose}: nothing to rotate: {path} is the profile the connector "
                         "already dials in with; put the new profile there first (revoke the "
                         "old one on the VPN service once it is handed over)")  # fmt: skip
    return tuple(notes)


@dataclass
class Slot:
    """One connector the file wants (a pair has two): what is there, and what apply does to it."""

    member: int
    subnet: ObservedSubnet
    want: DesiredConnector
    current: ObservedConnector | None
    changes: list[Change]
    new: bool  # launched in this apply (made or replaced)

    @property
    def stays(self) -> bool:
        """There, running, and kept: routes may lead to it before anything else is done."""
        return (
            self.current is not None
            and not self.new
            and self.current.state == ConnectorState.RUNNING
        )

    @property
    def interface(self) -> str:
        if self.new or self.current is None or not self.current.interface:
            return NEW_CONNECTOR
        return self.current.interface


def front_plan(network: Network, obs: Observed, target: Slot) -> tuple[str, list[Change]]:
    """Where the cloud moves a front rather than the routes (CLOUD_SCHEMAS' ha_front): the
    front made on the target connector, or moved to it, before the routes name it. Returns
    what the routes name ("" where there is no front) and the change."""
    schema = CLOUD_SCHEMAS[network.cloud]
    assert network.connector is not None
    if not (network.connector.ha and schema.ha_front):
        return "", []
    where = "the new connector" if target.interface == NEW_CONNECTOR else target.interface
    if obs.front is None:
        why = (f"the {schema.ha_front} the routes name: it leads to the active connector, "
               f"and the standby's watchdog moves it to itself")  # fmt: skip
        return NEW_FRONT, [
            Change(network.name, Action.CREATE, Kind.FRONT, f"{schema.ha_front} on {where}", why,
                   target=target.interface, member=target.member)
        ]  # fmt: skip
    if schema.ha_front_probed:  # nothing to move: its probe decides; new members join it
        if obs.front.complete:
            return obs.front.id, []
        why = f"every connector of the pair behind the {schema.ha_front}"
        return obs.front.id, [
            Change(network.name, Action.UPDATE, Kind.FRONT, obs.front.id, why,
                   target=target.interface, member=target.member)
        ]  # fmt: skip
    if target.interface == NEW_CONNECTOR or obs.front.holder != target.interface:
        why = (f"the routes lead to {where}: the {schema.ha_front} moves to it "
               f"(from {obs.front.holder or 'nowhere'})")  # fmt: skip
        return obs.front.id, [
            Change(network.name, Action.UPDATE, Kind.FRONT, obs.front.id, why,
                   target=target.interface, previous_target=obs.front.holder,
                   member=target.member)
        ]  # fmt: skip
    return obs.front.id, []


def slots_of(
    network: Network,
    topology: Topology,
    obs: Observed,
    local: tuple[IPv4Network, ...],
    renewed: set[int],
    prints: Mapping[int, str],
) -> tuple[list[Slot], list[ObservedConnector]]:
    """Each connector the file wants, matched with the one found of that member (the newest);
    the others found are extras, deleted once the routes lead elsewhere."""
    c = network.connector
    assert c is not None
    found: dict[int, ObservedConnector] = {}
    extras: list[ObservedConnector] = []
    for x in pair_of(obs):
        if x.member < len(c.subnets) and x.member not in found:
            found[x.member] = x
        else:
            extras.append(x)
    # what the bootstrap a connector was launched with says: None, it may stay; else why not.
    # One launched as one of a pair may stay alone (its watchdog finds no pair and idles).
    other = bootstrap_fingerprint(network, local, topology.vpn_subnet, ha=not c.ha)
    slots = []
    for member, subnet_id in enumerate(c.subnets):
        subnet = obs.subnet(subnet_id)
        assert subnet is not None  # check_against_cloud
        want = desired_connector(
            network,
            local,
            topology.vpn_subnet,
            public_address=subnet.way_out is WayOut.INTERNET_GATEWAY,
            member=member,
        )
        current = found.get(member)
        fits = {
            want.fingerprint: None,
            other: "it runs without the pair's watchdog" if c.ha else None,
        }
        beside = makes_before_break(network) and not c.ha
        changes, new = _vm_changes(
            network, obs, subnet, want, current, member in renewed, prints[member], fits, beside
        )
        slots.append(Slot(member, subnet, want, current, changes, new))
    return slots, extras


def _vm_changes(
    network: Network,
    obs: Observed,
    subnet: ObservedSubnet,
    want: DesiredConnector,
    current: ObservedConnector | None,
    profile_changed: bool,
    profile_fingerprint: str,
    fits: Mapping[str, str | None],
    beside: bool = False,
) -> tuple[list[Change], bool]:
    """One connector's VM, its forwarding flag, and the parts that hang on the VM: (changes,
    whether the VM is new). `beside`: one to replace is made beside the old one (which the
    caller deletes once the routes lead to the new one)."""
    name, member = network.name, want.member
    changes: list[Change] = []
    # the stored profile changed, or the VM dials in with another than the one stored (an
    # interrupted run stored the new one and stopped before the VM was replaced); not where the
    # profile is handed to the running VM (Azure's extension)
    runs = current.runs if current is not None else None
    in_place = any(
        p.kind == PROFILE_PART and p.after_connector and p.member == member for p in obs.parts
    )
    profile_changed |= (
        not in_place and runs is not None and runs != profile_mark(profile_fingerprint)
    )
    reasons = _replace_reasons(network, obs, subnet, want, current, profile_changed, fits)
    changes += _the_vm(name, want, current, reasons, beside)
    new = current is None or bool(reasons)
    interface = NEW_CONNECTOR if new else current.interface  # type: ignore[union-attr]
    assert interface is not None
    # (a cloud that sets the flag only at launch launched it so, or replaces it above)
    if not obs.forwarding_at_launch and (new or not current.forwarding):  # type: ignore[union-attr]
        changes.append(
            Change(name, Action.UPDATE, Kind.FORWARDING, interface, WHY_FORWARDING, member=member)
        )
    # parts that hang on the VM itself (a VM extension...): a new VM needs them again
    for part in obs.parts:
        if part.after_connector and part.member == member and part.wanted:
            changes += part_changes(name, part, profile_fingerprint, vm_is_new=new)
    return changes, new


def _the_vm(
    name: str,
    want: DesiredConnector,
    current: ObservedConnector | None,
    reasons: list[str],
    beside: bool,
) -> list[Change]:
    """The VM's own change: made (none yet), made beside the old one or replacing it (a reason
    to), started (stopped), or none."""
    member = want.member
    if current is None:
        what = f"VM in {want.subnet}" + (f" (of the pair: {member + 1})" if want.ha else "")
        return [Change(name, Action.CREATE, Kind.CONNECTOR, what, WHY_LAUNCH, connector=want,
                       member=member)]  # fmt: skip
    if reasons and beside:
        why = (f"{WHY_LAUNCH}; replaces {current.instance} ({', '.join(reasons)}), made beside "
               "it: the routes move to the new one once it runs, then the old one goes")  # fmt: skip
        return [Change(name, Action.CREATE, Kind.CONNECTOR, f"VM in {want.subnet} (replacing "
                       f"{current.instance})", why, connector=want, member=member,
                       previous_target=current.instance)]  # fmt: skip
    if reasons:
        why = WHY_LAUNCH + "; replaced: " + ", ".join(reasons)
        if not want.ha:
            why += (" (the old one goes first: the routes lead nowhere until the new one runs; "
                    "make before break is not yet done on this cloud)")  # fmt: skip
        return [Change(name, Action.REPLACE, Kind.CONNECTOR, current.instance, why,
                       connector=want, member=member)]  # fmt: skip
    if current.state in (ConnectorState.STOPPED, ConnectorState.STOPPING):
        return [Change(name, Action.START, Kind.CONNECTOR, current.instance,
                       "the connector is stopped: nothing routes", member=member)]  # fmt: skip
    return []


def _replace_reasons(
    network: Network,
    obs: Observed,
    subnet: ObservedSubnet,
    want: DesiredConnector,
    current: ObservedConnector | None,
    profile_changed: bool,
    fits: Mapping[str, str | None],
) -> list[str]:
    """Why the connector that is there cannot stay (none: it stays). `fits`: the bootstraps it
    may have been launched with."""
    c = network.connector
    assert c is not None
    if current is None:
        return []
    reasons = []
    if current.size != c.size:
        reasons.append(f"size {current.size} -> {c.size}")
    if current.subnet != want.subnet:
        reasons.append(f"subnet {current.subnet} -> {want.subnet}")
    if current.bootstrap not in fits or fits[current.bootstrap]:
        reasons.append(
            fits.get(current.bootstrap)
            or "bootstrap settings changed (nat, subnets, image or interface)"
        )
    if profile_changed:
        reasons.append("VPN profile changed")
    if obs.newer_image and not c.image and current.image != obs.newer_image[0]:
        reasons.append(f"image {current.image} -> {obs.newer_image[0]} (--roll)")
    if obs.forwarding_at_launch and not current.forwarding:
        reasons.append("it cannot forward packets, and the flag is set only at launch")
    if current.subnet == want.subnet and lacks_public_address(subnet, current):
        # a public address is given at launch only (seed remote access step 3)
        reasons.append(
            f"it has no public address and its subnet reaches the internet only through "
            f"internet gateway {subnet.via}, so it cannot dial the VPN service"
        )
    return reasons


def pair_notes(network: Network, slots: list[Slot], target: Slot) -> list[str]:
    assert network.connector is not None
    where = " and ".join(f"{s.want.subnet}" + (f" ({s.subnet.zone})" if s.subnet.zone else "")
                         for s in slots)  # fmt: skip
    lead = target.current.instance if not target.new and target.current else "the new connector"
    notes = [
        f"connector pair in {where}: the routes lead to one ({lead} in {target.want.subnet}); "
        "when it is down (VM gone, or its tunnel down), "
        + CLOUD_SCHEMAS[network.cloud].ha_mechanism.replace("<network>", network.name)
    ]
    zones = {s.subnet.zone for s in slots}
    if len(zones) == 1 and None not in zones:
        notes.append(
            f"warning: both connectors of the pair are in zone {zones.pop()}: an outage of that "
            "zone stops both"
        )
    return notes


def ready_changes(
    network: str,
    target: Slot,
    extras: list[ObservedConnector],
    others: list[ObservedConnector | None],
    offline: bool = False,
    hand: ForeignConnector | None = None,
) -> list[Change]:
    """Before the routes move to a new connector while another one still carries them (one made
    beside the one it replaces; a pair's standby replaced first, before the active one): wait
    until it says its tunnel is up. Also when an interrupted run left it launched, not ready."""
    why = ("made before break: the routes move to it only once its tunnel is up; until then "
           "they stay on the one they lead to now")  # fmt: skip
    made = next(
        (c for c in target.changes
         if c.kind is Kind.CONNECTOR and c.action is Action.CREATE and c.previous_target),
        None,
    )  # fmt: skip
    if made is not None:
        return [Change(network, Action.UPDATE, Kind.READY, NEW_CONNECTOR, why,
                       previous_target=made.previous_target, member=target.member)]  # fmt: skip
    carrying = next((o for o in others if o is not None and o.state == ConnectorState.RUNNING),
                    None)  # fmt: skip
    if target.new and carrying is not None:  # a pair's member replaced while the other routes
        return [Change(network, Action.UPDATE, Kind.READY, NEW_CONNECTOR, why,
                       previous_target=carrying.instance, member=target.member)]  # fmt: skip
    if target.new and hand is not None:  # a hand-made connector carries them until ours is up
        return [Change(network, Action.UPDATE, Kind.READY, NEW_CONNECTOR, why,
                       previous_target=hand.instance, member=target.member)]  # fmt: skip
    current = target.current
    old = next((x for x in extras if x.state == ConnectorState.RUNNING), None)
    # (with the service block: not ONLINE there, whatever the VM says)
    if current is None or target.new or old is None or (current.ready is not False and not offline):
        return []
    return [Change(network, Action.UPDATE, Kind.READY, current.instance, why,
                   previous_target=old.instance, member=target.member)]  # fmt: skip


def told_by_service(
    change: Change,
    network: Network,
    obs: Observed,
    prints: Mapping[int, str],
    new_profiles: frozenset[int],
) -> Change:
    """A new VM that dials in with a connector of its own on the VPN service (made for it: the
    one it replaces dialled in with another) is ready when the service says that connector is
    ONLINE; otherwise the VM's own word is waited for (the old session could still show)."""
    assert network.connector is not None
    member = change.member
    if not isinstance(network.connector.member_profile(member), ServiceProfile):
        return change
    old = next((c for c in pair_of(obs) if c.instance == change.previous_target), None)
    made_for_it = member in new_profiles or (
        old is not None and old.runs is not None and old.runs != profile_mark(prints[member])
    )
    return replace(change, target=VPN_SERVICE) if made_for_it else change


def beside_made(slot: Slot) -> bool:
    """The slot's connector is made beside the one it replaces in this apply."""
    return any(c.kind is Kind.CONNECTOR and c.action is Action.CREATE and c.previous_target
               for c in slot.changes)  # fmt: skip
