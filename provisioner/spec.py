"""The topology file (version 1): parsed and validated into `model.Topology`.

Every input error is found here, before any cloud call, and reported as one `SpecError`
naming the field and the value.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from ipaddress import AddressValueError, IPv4Network, NetmaskValueError
from pathlib import Path
from typing import Any

import yaml

from .clouds import SCHEMAS as CLOUD_SCHEMAS
from .clouds import CloudSchema, names
from .errors import SpecError
from .files import MAX_PROFILE_BYTES, MAX_TOPOLOGY_BYTES, Unreadable, read_bounded, unwritable
from .model import (
    ALL_TRAFFIC,
    DEFAULT_VPN_SUBNET,
    PROTOCOLS,
    SERVICE_PLAN,
    AppAccess,
    CloudConnexa,
    Connector,
    Location,
    Network,
    Ports,
    ProfileFile,
    ProfileSource,
    ServiceProfile,
    Topology,
    first_overlap,
)

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")

TOP_KEYS = ("version", "id", "vpn_subnet", "networks", "service")
FILE_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"
SERVICE_KEYS = ("cloud_id", "vpn_region")
CLOUD_ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
VPN_REGION_PATTERN = r"^[a-z]{2}(-[a-z0-9]+){1,3}$"
COMMON_KEYS = (
    "cloud", "subnets", "route_tables", "app_security_groups", "connector", "summarize",
)  # fmt: skip
CONNECTOR_KEYS = (
    "subnet",
    "size",
    "nat",
    "egress",
    "profile",
    "image",
    "nat_preserve_source",
    "lan_interface",
    "ha",
    "subnets",
    "profiles",
)
# a connector's keys beside CONNECTOR_KEYS: where it attaches on the VPN service, and a
# connector made by hand it takes over
CONNECTOR_MORE_KEYS = ("vpn_region", "takes_over")
# an external network's keys (the service's: with a service.cloudconnexa block only)
EXTERNAL_KEYS = ("cloud", "subnets")
EXTERNAL_SERVICE_KEYS = ("adopt_service_network", "connector")
APP_ACCESS_KEYS = ("group", "ports")
PORTS_EXAMPLE = "all, tcp, udp, icmp, tcp/443 or udp/5000-5100"


MAX_ALIASES = 200  # YAML aliases (*name) in one topology
MAX_NODES = 200_000  # values in the document once every alias is expanded


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one, and a document
    whose aliases would expand past MAX_NODES values (a 'billion laughs' of a few lines) before
    anything walks it."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _bounded(node)
        return self.construct_document(node)


def _bounded(root: yaml.Node) -> None:
    """The expanded size of the node graph, counted over shared nodes once each (no expansion)."""
    sizes: dict[int, int] = {}
    aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = [
            child
            for item in (node.value if isinstance(node.value, list) else [])
            for child in (item if isinstance(item, tuple) else (item,))
        ]
        if not children_done:
            stack.append((node, True))
            for child in children:
                if id(child) in sizes:
                    aliases += 1
                else:
                    stack.append((child, False))
            if aliases > MAX_ALIASES:
                raise SpecError(
                    f"line {node.start_mark.line + 1}",
                    f"more than {MAX_ALIASES} YAML aliases: a topology needs none or a few",
                )
            continue
        size = 1 + sum(sizes.get(id(c), 1) for c in children)
        if size > MAX_NODES:
            raise SpecError(
                f"line {node.start_mark.line + 1}",
                f"YAML aliases here expand to more than {MAX_NODES:,} values: refused",
            )
        sizes[id(node)] = size


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise SpecError(
                f"line {key_node.start_mark.line + 1}",
                f"duplicate key {key!r} (first at line {seen[key] + 1})",
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict = 2, 4, 4


def _show(value: object) -> str:
    """A value in an error, bounded (a shared YAML alias may stand for a huge structure)."""
    return _SHOWN.repr(value)


def _unknown_keys(path: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in data:
        if key not in known:
            if not (isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", key)):
                # not a name anyone meant as a key: a file that is not a topology, whose
                # content an error must not repeat
                node = f"{path}: a" if path else "the file has a"
                raise SpecError("", f"{node} key that is no topology key (not shown); known "
                                f"keys: {', '.join(known)}")  # fmt: skip
            where = f"{path}.{key}" if path else str(key)
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
            raise SpecError(where, f"unknown key{hint}")


def parse_network_cidr(field: str, value: object) -> IPv4Network:
    """An IPv4 network in CIDR form, host bits clear: `10.0.0.0/18`."""
    if not isinstance(value, str):
        raise SpecError(field, f"{_show(value)} is not an IPv4 network (write it as '10.0.0.0/18')")
    text = value.strip()
    if "/" not in text:
        raise SpecError(field, f"{value!r} is not an IPv4 network: it needs a prefix length (/NN)")
    try:
        return IPv4Network(text, strict=True)
    except ValueError as e:
        if "host bits set" in str(e):
            fixed = IPv4Network(text, strict=False)
            raise SpecError(field, f"{value!r} has host bits set; did you mean '{fixed}'?") from e
        raise SpecError(field, f"{value!r} is not an IPv4 network") from e
    except (AddressValueError, NetmaskValueError) as e:  # pragma: no cover - ValueError above
        raise SpecError(field, f"{value!r} is not an IPv4 network") from e


# ranges no route table may send to a connector: what they are, in words
UNROUTABLE = (
    (IPv4Network("0.0.0.0/8"), "'this network' (0.0.0.0/8)"),
    (IPv4Network("127.0.0.0/8"), "loopback (127.0.0.0/8): it never leaves a host"),
    (IPv4Network("169.254.0.0/16"), "link-local (169.254.0.0/16): the clouds' own metadata"),
    (IPv4Network("224.0.0.0/4"), "multicast (224.0.0.0/4)"),
    (IPv4Network("240.0.0.0/4"), "reserved (240.0.0.0/4) or broadcast"),
)


def routable(field: str, net: IPv4Network) -> IPv4Network:
    """A network's subnet or the VPN range: never one that cannot be routed."""
    for block, what in UNROUTABLE:
        if net.overlaps(block):
            raise SpecError(field, f"'{net}' overlaps {what}: it cannot be routed")
    return net


def parse_location(cloud: str, raw: Mapping[str, Any]) -> Location:
    """A cloud's location from its keys alone (`provision discover`'s flags); bad input names
    the key."""
    schema = CLOUD_SCHEMAS.get(cloud)
    if schema is None:
        raise SpecError("cloud", f"{cloud!r} is not one of {', '.join(CLOUD_SCHEMAS)}")
    return schema.location(_Fields("", raw))


class _Fields:
    """Typed reads from one mapping of the file, each error naming the full field path."""

    def __init__(self, path: str, data: Mapping[str, Any]) -> None:
        self.path = path
        self.data = data

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def text(
        self,
        key: str,
        *,
        default: str | None = None,
        pattern: str | None = None,
        example: str | None = None,
    ) -> str:
        if not self.has(key):
            if default is not None:
                return default
            raise SpecError(
                self.field(key), "is required" + (f" (e.g. {example})" if example else "")
            )
        value = self.data[key]
        if not isinstance(value, str) or not value.strip():
            raise SpecError(self.field(key), f"{_show(value)} is not a non-empty string")
        if pattern and not re.match(pattern, value):
            hint = f" (expected something like {example})" if example else ""
            raise SpecError(self.field(key), f"{value!r} is not a valid {key}{hint}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        if not self.has(key):
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            raise SpecError(self.field(key), f"{_show(value)} is not true or false")
        return value

    def text_list(self, key: str, *, pattern: str, example: str) -> tuple[str, ...]:
        if not self.has(key):
            return ()
        value = self.data[key]
        if not isinstance(value, list):
            raise SpecError(self.field(key), f"{_show(value)} is not a list")
        out: list[str] = []
        for i, item in enumerate(value):
            where = f"{self.field(key)}[{i}]"
            if not isinstance(item, str) or not re.match(pattern, item):
                raise SpecError(where, f"{_show(item)} is not a valid id (expected like {example})")
            if item in out:
                raise SpecError(where, f"{item!r} is listed twice")
            out.append(item)
        return tuple(out)

    def cidrs(self, key: str) -> tuple[IPv4Network, ...] | None:
        if not self.has(key):
            return None
        value = self.data[key]
        if not isinstance(value, list) or not value:
            raise SpecError(self.field(key), f"{_show(value)} is not a non-empty list of CIDRs")
        out: list[IPv4Network] = []
        for i, item in enumerate(value):
            where = f"{self.field(key)}[{i}]"
            net = routable(where, parse_network_cidr(where, item))
            for j, other in enumerate(out):
                if net.overlaps(other):
                    raise SpecError(where, f"'{net}' overlaps '{other}' ({self.field(key)}[{j}])")
            out.append(net)
        return tuple(out)


def parse_ports(field: str, value: object) -> Ports:
    """One port spec: `all`, `tcp`, `udp`, `icmp`, `tcp/443`, `udp/5000-5100`."""
    if not isinstance(value, str):
        hint = f" (write it as 'tcp/{value}')" if isinstance(value, int) else ""
        raise SpecError(field, f"{_show(value)} is not a port spec{hint}; one of {PORTS_EXAMPLE}")
    text = value.strip().lower()
    if text == "all":
        return ALL_TRAFFIC
    protocol, slash, ports = text.partition("/")
    if protocol not in PROTOCOLS:
        raise SpecError(
            field, f"{value!r}: {protocol!r} is not a protocol (tcp, udp, icmp, or all)"
        )
    if not slash:
        return Ports(protocol)
    if protocol == "icmp":
        raise SpecError(field, f"{value!r}: icmp has no ports; write 'icmp'")
    first_text, dash, last_text = ports.partition("-")
    if not first_text.isdigit() or (dash and not last_text.isdigit()):
        raise SpecError(field, f"{value!r} is not a port spec; one of {PORTS_EXAMPLE}")
    first = int(first_text)
    last = int(last_text) if dash else first
    for port in (first, last):
        if not 1 <= port <= 65535:
            raise SpecError(field, f"{value!r}: port {port} is not in 1-65535")
    if last < first:
        raise SpecError(field, f"{value!r}: the range ends before it starts")
    return Ports(protocol, first, last)


def _app_access(f: _Fields, key: str, pattern: str, example: str) -> tuple[AppAccess, ...]:
    """`app_security_groups`: each entry a group id (all traffic) or {group, ports}."""
    if not f.has(key):
        return ()
    value = f.data[key]
    if not isinstance(value, list):
        raise SpecError(f.field(key), f"{_show(value)} is not a list")
    out: list[AppAccess] = []
    for i, item in enumerate(value):
        where = f"{f.field(key)}[{i}]"
        ports: tuple[Ports, ...] = (ALL_TRAFFIC,)
        if isinstance(item, Mapping):
            _unknown_keys(where, item, APP_ACCESS_KEYS)
            entry = _Fields(where, item)
            group = entry.text("group", pattern=pattern, example=example)
            if entry.has("ports"):
                ports = _port_list(entry.field("ports"), item["ports"])
        elif isinstance(item, str):
            group = item
        else:
            raise SpecError(where, f"{_show(item)} is not a group id or a {{group, ports}} mapping")
        if not re.match(pattern, group):
            raise SpecError(where, f"{group!r} is not a valid id (expected like {example})")
        if group in (a.group for a in out):
            raise SpecError(where, f"{group!r} is listed twice")
        out.append(AppAccess(group, ports))
    return tuple(out)


def _port_list(field: str, value: object) -> tuple[Ports, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(
            field, f"{_show(value)} is not a non-empty list of port specs ({PORTS_EXAMPLE})"
        )
    out: list[Ports] = []
    for i, item in enumerate(value):
        ports = parse_ports(f"{field}[{i}]", item)
        for other in out:
            if other.covers(ports) or ports.covers(other):
                raise SpecError(
                    f"{field}[{i}]", f"{item!r} overlaps {str(other)!r} listed before it"
                )
        out.append(ports)
    return tuple(out)


def _connector(
    path: str, data: object, base: Path, schema: CloudSchema, service: bool, name: str
) -> Connector:
    if not isinstance(data, Mapping):
        raise SpecError(path, f"{_show(data)} is not a mapping")
    _unknown_keys(path, data, (*CONNECTOR_KEYS, *CONNECTOR_MORE_KEYS, *schema.connector_keys))
    f = _Fields(path, data)
    if service and f.has("profile"):
        raise SpecError(
            f.field("profile"),
            f"{_show(data['profile'])} is not used with service.cloudconnexa: the VPN service "
            "makes the connector's profile and it goes straight into the cloud's secret store "
            "(remove 'profile')",
        )
    region = None
    if f.has("vpn_region"):
        if not service:
            raise SpecError(f.field("vpn_region"), "needs a service.cloudconnexa block")
        region = f.text("vpn_region", pattern=VPN_REGION_PATTERN, example="eu-central-1")
    subnet, standby_subnet = _connector_subnets(f, schema, data)
    egress = f.flag("egress", False)
    if egress and f.has("nat") and data["nat"] is False:
        raise SpecError(
            f.field("nat"),
            "false is not possible with egress: true: the internet gateway only translates "
            "the connector's own address, so the connector must NAT (docs/flows.md, egress hop 4)",
        )
    nat = f.flag("nat", egress)
    if (
        standby_subnet
        and schema.ha_front_probed
        and nat
        and not f.flag("nat_preserve_source", True)
    ):
        raise SpecError(
            f.field("nat_preserve_source"),
            "false is not supported with ha: true on this cloud yet: the app groups would admit "
            "the NATed traffic of the first connector only, not of the one that takes over",
        )
    profile, standby_profile = _connector_profiles(f, base, service, name, bool(standby_subnet))
    lan = (
        f.text("lan_interface", pattern=r"^[A-Za-z0-9_.-]{1,15}$", example="eth0")
        if f.has("lan_interface")
        else None
    )
    owned, group, account = _connector_identity(f, schema, bool(standby_subnet))
    return Connector(
        vault=owned.get("vault"),
        key=owned.get("key"),
        dynamic_group=group,
        service_account=account,
        subnet=subnet,
        standby_subnet=standby_subnet,
        standby_profile=standby_profile,
        size=f.text("size", default=schema.default_size, pattern=r"^[A-Za-z0-9._-]+$"),
        nat=nat,
        egress=egress,
        profile=profile,
        image=f.text("image") if f.has("image") else None,
        nat_preserve_source=f.flag("nat_preserve_source", True),
        lan_interface=lan,
        vpn_region=region,
        # a connector made by hand to take over, by its VM's id (or what the routes name): where
        # the routes alone would not say which (no VPN range route, or two forwarding VMs)
        takes_over=f.text("takes_over", pattern=r"^\S{1,300}$") if f.has("takes_over") else None,
    )


def _connector_profiles(
    f: _Fields, base: Path, service: bool, name: str, pair: bool
) -> tuple[ProfileSource, ProfileSource | None]:
    """The VPN profile of the connector (and of a pair's second): the service's, or files."""
    if service:
        if f.has("profiles"):
            raise SpecError(
                f.field("profiles"),
                "is not used with service.cloudconnexa: the VPN service makes each connector's "
                "profile (remove 'profiles')",
            )
        # (a pair: the service's second connector of the network)
        return ServiceProfile(name), ServiceProfile(name, member=1) if pair else None
    if pair:
        return _pair_profiles(f, base)
    return _profile_file(f, base), None


def _connector_identity(
    f: _Fields, schema: CloudSchema, pair: bool
) -> tuple[dict[str, str], str | None, str | None]:
    """(the keys the cloud cannot do without, its dynamic group, its service account): one
    identity for both of a pair is refused, since each could read the other's profile."""
    owned = {}
    for key, pattern, example in schema.required_connector_keys:
        owned[key] = f.text(key, pattern=pattern, example=example)
    named: dict[str, str | None] = {}
    for key, what in (("dynamic_group", "group"), ("service_account", "identity")):
        named[key] = None
        if not f.has(key):
            continue
        pattern, example = schema.connector_key_patterns.get(key, (r"^\S+$", ""))
        value = f.text(key, example=example)
        if pair:
            own = "a dynamic group" if what == "group" else "a service account"
            raise SpecError(
                f.field(key),
                f"{value!r} is one {what} for both connectors of the pair, so each could read "
                f"the other's profile: with ha: true each gets {own} of its own (remove it)",
            )
        if not re.match(pattern, value):
            raise SpecError(
                f.field(key),
                f"{value!r} is not a valid {key.replace('_', ' ')} (expected like {example})",
            )
        named[key] = value
    return owned, named["dynamic_group"], named["service_account"]


def _connector_subnets(
    f: _Fields, schema: CloudSchema, data: Mapping[str, Any]
) -> tuple[str, str | None]:
    """`subnet`, or with `ha: true` the pair's `subnets: [a, b]` (the first one's connector is
    the one the routes lead to at first)."""
    ha = f.flag("ha", False)
    if not ha:
        for key in ("subnets", "profiles"):
            if f.has(key):
                raise SpecError(f.field(key), "is for a connector pair: it needs ha: true")
        return f.text("subnet", example="subnet-0123abcd"), None
    if not schema.ha_mechanism:
        raise SpecError(
            f.field("ha"),
            "true is not supported on this cloud yet (a connector pair is on "
            + ", ".join(k for k, v in CLOUD_SCHEMAS.items() if v.ha_mechanism)
            + " for now)",
        )
    if schema.ha_one_subnet:
        # the front moves only within its subnet; a regional subnet spans availability domains
        if f.has("subnets"):
            raise SpecError(
                f.field("subnets"),
                f"{_show(data['subnets'])}: on this cloud the pair shares one subnet (its "
                f"{schema.ha_front} moves only between the VNICs of one subnet; a regional subnet "
                "spans availability domains, and the pair is launched in two): give subnet: s",
            )
        subnet = f.text("subnet", example=schema.subnet[1])
        return subnet, subnet
    if f.has("subnet"):
        raise SpecError(
            f.field("subnet"),
            f"{_show(data['subnet'])} is not used with ha: true: give the pair's two subnets "
            "as subnets: [a, b]",
        )
    pattern, example = schema.subnet
    subnets = f.text_list("subnets", pattern=pattern, example=example)
    if len(subnets) != 2:
        raise SpecError(
            f.field("subnets"),
            f"{_show(data.get('subnets'))} is not two subnets: a pair has one connector in each "
            f"(e.g. [{example}, ...], in two zones where the cloud has them)",
        )
    return subnets[0], subnets[1]


def _pair_profiles(f: _Fields, base: Path) -> tuple[ProfileFile, ProfileFile]:
    """Each connector of a pair is a client of its own on the VPN service: two profiles."""
    if f.has("profile"):
        raise SpecError(
            f.field("profile"),
            "is one profile: each connector of a pair is its own client of the VPN service "
            "(two connectors on one profile would push each other off); give profiles: [a, b]",
        )
    names = f.data.get("profiles")
    if not isinstance(names, list) or len(names) != 2:
        raise SpecError(
            f.field("profiles"),
            f"{_show(names)} is not two profile files (e.g. [hq-a.ovpn, hq-b.ovpn])",
        )
    first, second = (_profile_file(f, base, key="profiles", index=i) for i in (0, 1))
    if first.fingerprint == second.fingerprint:
        raise SpecError(
            f"{f.field('profiles')}[1]",
            f"{_show(names[1])} has the same content as {_show(names[0])}: each connector of a "
            "pair needs its own profile",
        )
    return first, second


def _profile_file(f: _Fields, base: Path, key: str = "profile", index: int = -1) -> ProfileFile:
    if index >= 0:
        value = f.data[key][index]
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{f.field(key)}[{index}]", f"{_show(value)} is not a file name")
        profile_field, profile_name = f"{f.field(key)}[{index}]", value
    else:
        profile_field = f.field("profile")
        profile_name = f.text("profile", example="hq.ovpn")
    profile = (base / profile_name).expanduser()
    try:
        content = read_bounded(profile, MAX_PROFILE_BYTES)
    except Unreadable as e:
        raise SpecError(profile_field, f"{profile_name!r}: {e} ({profile})") from None
    if not content.strip():
        raise SpecError(profile_field, f"{profile_name!r} is empty")
    why = _not_a_profile(content)
    if why:
        raise SpecError(profile_field, f"{profile_name!r} is not an OpenVPN client profile: {why}")
    return ProfileFile(profile, hashlib.sha256(content).hexdigest()[:16])


# what every profile the VPN service issues has: where to connect, and key material inline
_REMOTE = re.compile(rb"^\s*(remote\s+\S+|<connection>)", re.MULTILINE)
_KEY_MATERIAL = re.compile(
    rb"^\s*<(ca|cert|key|tls-crypt|tls-crypt-v2|tls-auth|pkcs12)>", re.MULTILINE
)


def _not_a_profile(content: bytes) -> str | None:
    """Why `content` is not an OpenVPN client profile (None: it is one), in words that quote
    nothing of it: a file named by mistake (or on purpose) never reaches a cloud's store."""
    if b"\0" in content:
        return "it is binary"
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not text"
    if not _REMOTE.search(content):
        return "no 'remote' line or <connection> block"
    if not _KEY_MATERIAL.search(content):
        return "no inline key material (<ca>, <cert>, <key>, <tls-crypt> ...)"
    return None


def _service(data: object) -> CloudConnexa:
    path = "service"
    if not isinstance(data, Mapping):
        raise SpecError(path, f"{_show(data)} is not a mapping")
    _unknown_keys(path, data, ("cloudconnexa",))
    body = data.get("cloudconnexa")
    path = "service.cloudconnexa"
    if not isinstance(body, Mapping):
        raise SpecError(path, f"{_show(body)} is not a mapping with cloud_id and vpn_region")
    _unknown_keys(path, body, SERVICE_KEYS)
    f = _Fields(path, body)
    return CloudConnexa(
        cloud_id=f.text("cloud_id", pattern=CLOUD_ID_PATTERN, example="acme"),
        vpn_region=f.text("vpn_region", pattern=VPN_REGION_PATTERN, example="eu-central-1"),
    )


def _network(name: str, data: object, base: Path, service: bool) -> Network:
    path = f"networks.{name}"
    if not isinstance(data, Mapping):
        raise SpecError(path, f"{_show(data)} is not a mapping")
    f = _Fields(path, data)
    cloud = f.text("cloud", example=names()[0])
    clouds = (*names(), "external")
    if cloud not in clouds:
        close = difflib.get_close_matches(cloud, clouds, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; one of: {', '.join(clouds)}"
        raise SpecError(f.field("cloud"), f"{cloud!r} is not a known cloud{hint}")
    adopt = False
    if f.has("adopt_service_network"):
        if not service:
            raise SpecError(f.field("adopt_service_network"), "needs a service.cloudconnexa block")
        adopt = f.flag("adopt_service_network", False)
    if cloud == "external":
        return _external(f, name, data, base, service, adopt)
    return _managed(f, name, cloud, data, base, service, adopt)


def _external(
    f: _Fields, name: str, data: Mapping[str, Any], base: Path, service: bool, adopt: bool
) -> Network:
    """A network only routed to: its subnets (and with the service, its site's profile)."""
    allowed = (*EXTERNAL_KEYS, *(EXTERNAL_SERVICE_KEYS if service else ()))
    _unknown_keys(f.path, data, allowed)
    subnets = f.cidrs("subnets")
    if subnets is None:
        raise SpecError(f.field("subnets"), "is required for an external network")
    profile_out = None
    if f.has("connector"):
        profile_out = _profile_out(f"{f.path}.connector", data["connector"], base, service)
    return Network(name=name, cloud="external", subnets=subnets, adopt_service_network=adopt,
                   profile_out=profile_out)  # fmt: skip


def _managed(
    f: _Fields,
    name: str,
    cloud: str,
    data: Mapping[str, Any],
    base: Path,
    service: bool,
    adopt: bool,
) -> Network:
    """A network of a cloud: its place by the cloud's keys, what is routed and admitted there,
    and its connector."""
    path, schema = f.path, CLOUD_SCHEMAS[cloud]
    _unknown_keys(
        path, data, (*COMMON_KEYS, *schema.keys, *schema.network_keys, "adopt_service_network")
    )
    location = schema.location(f)
    route_tables: tuple[str, ...] | None = None
    if f.has("route_tables") and data["route_tables"] != "all":
        pattern, example = schema.route_table
        route_tables = f.text_list("route_tables", pattern=pattern, example=example)
        if not route_tables:
            raise SpecError(f.field("route_tables"), "[] selects no route table; use 'all'")
    pattern, example = schema.security_group
    app_access = _app_access(f, "app_security_groups", pattern, example)
    if not f.has("connector"):
        raise SpecError(f.field("connector"), "is required for a managed network")
    connector = _connector(f.field("connector"), data["connector"], base, schema, service, name)
    priority = _route_priority(f, data)
    pattern, example = schema.subnet
    if not connector.ha and not re.match(pattern, connector.subnet):
        raise SpecError(
            f"{path}.connector.subnet",
            f"{connector.subnet!r} is not a valid subnet id (expected like {example})",
        )
    return Network(
        name=name,
        cloud=cloud,
        subnets=f.cidrs("subnets"),
        location=location,
        route_tables=route_tables,
        app_access=app_access,
        connector=connector,
        route_priority=priority,
        adopt_service_network=adopt,
        summarize=f.cidrs("summarize") or (),
    )


def _route_priority(f: _Fields, data: Mapping[str, Any]) -> int | None:
    if not f.has("route_priority"):
        return None
    priority = data["route_priority"]
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 65535:
        raise SpecError(
            f.field("route_priority"),
            f"{_show(priority)} is not a route priority (0-65535, lower wins; default 1000)",
        )
    return priority


def _profile_out(path: str, data: object, base: Path, service: bool) -> Path:
    """An external network's `connector: {profile_out: path}`: where apply writes the profile
    the VPN service made for that site's connector (mode 0600), for its admin to install."""
    if not isinstance(data, Mapping):
        raise SpecError(path, f"{_show(data)} is not a mapping")
    _unknown_keys(path, data, ("profile_out",))
    f = _Fields(path, data)
    if not service:
        raise SpecError(f.field("profile_out"), "needs a service.cloudconnexa block")
    out = (base / f.text("profile_out", example="branch.ovpn")).expanduser()
    why = unwritable(out)
    if why:
        raise SpecError(f.field("profile_out"), f"cannot be written: {why}")
    return out


def file_id(name: str) -> str:
    """The default `id` of a topology read from `name`: its file name without the extension,
    as the id's pattern takes it (stable wherever the file is checked out)."""
    stem = Path(name).name.rsplit(".", 1)[0].lower()
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._")[:32]
    return cleaned or "topology"


def parse_topology(data: object, base: Path, default_id: str = "topology") -> Topology:
    """Validate an already-loaded YAML document. `base` resolves relative profile paths;
    `default_id`: the file's id when it sets none."""
    if not isinstance(data, Mapping):
        raise SpecError(
            "", "the topology file must be a YAML mapping with 'version' and 'networks'"
        )
    _unknown_keys("", data, TOP_KEYS)
    version = data.get("version")
    if version != 1:
        raise SpecError("version", f"{_show(version)} is not supported (this tool reads version 1)")
    vpn_subnet = DEFAULT_VPN_SUBNET
    if data.get("vpn_subnet") is not None:
        vpn_subnet = routable("vpn_subnet", parse_network_cidr("vpn_subnet", data["vpn_subnet"]))
    networks_data = data.get("networks")
    if not isinstance(networks_data, Mapping) or not networks_data:
        raise SpecError("networks", "needs at least one network")

    service = _service(data["service"]) if data.get("service") is not None else None
    networks: list[Network] = []
    for name, body in networks_data.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise SpecError(
                f"networks.{name}",
                f"{_show(name)} is not a valid network name "
                "(lower-case letters, digits and '-', 1-32 characters)",
            )
        if service is not None and name == SERVICE_PLAN:
            raise SpecError(f"networks.{name}", f"{name!r} names the VPN service's own entry")
        networks.append(_network(name, body, base, service is not None))

    _check_overlaps(networks, vpn_subnet)
    check_summaries(networks, {n.name: n.subnets for n in networks}, vpn_subnet)
    if not any(n.managed for n in networks):
        raise SpecError(
            "networks", "no managed network: at least one needs a cloud other than external"
        )
    topology_id = default_id
    if data.get("id") is not None:
        topology_id = _Fields("", data).text("id", pattern=FILE_ID_PATTERN, example="team-a-prod")
    return Topology(
        networks=tuple(replace(n, file=topology_id) for n in networks),
        vpn_subnet=vpn_subnet,
        service=service,
        id=topology_id,
    )


def check_summaries(
    networks: Sequence[Network],
    subnets: Mapping[str, tuple[IPv4Network, ...] | None],
    vpn_subnet: IPv4Network,
) -> None:
    """A network's `summarize` prefixes stand for whole subnets of *other* networks: one that
    takes in the VPN range, a subnet of its own (its own traffic would go to the connector) or
    part of another network's subnet is bad input. `subnets`: each network's, where known (as
    written; read from the cloud, at plan)."""
    for n in networks:
        for i, summary in enumerate(n.summarize):
            where = f"networks.{n.name}.summarize[{i}]"
            if summary.overlaps(vpn_subnet):
                raise SpecError(where, f"'{summary}' overlaps vpn_subnet '{vpn_subnet}' "
                                "(the VPN range is routed by itself)")  # fmt: skip
            for own in subnets.get(n.name) or ():
                if summary.overlaps(own):
                    raise SpecError(where, f"'{summary}' takes in '{own}', a subnet of {n.name} "
                                    "itself: its own traffic would go to the connector")  # fmt: skip
            for peer in networks:
                for other in (subnets.get(peer.name) or ()) if peer.name != n.name else ():
                    if summary.overlaps(other) and not other.subnet_of(summary):
                        raise SpecError(where, f"'{summary}' takes in part of '{other}' of "
                                        f"network {peer.name}: a summary covers whole subnets")  # fmt: skip


def _check_overlaps(networks: list[Network], vpn_subnet: IPv4Network) -> None:
    seen: list[tuple[str, IPv4Network]] = []
    for n in networks:
        for i, net in enumerate(n.subnets or ()):
            where = f"networks.{n.name}.subnets[{i}]"
            if net.overlaps(vpn_subnet):
                raise SpecError(where, f"'{net}' overlaps vpn_subnet '{vpn_subnet}'")
            seen.append((where, net))
    found = first_overlap(seen)
    if found is not None:
        (other_field, other), (where, net) = seen[found[0]], seen[found[1]]
        raise SpecError(where, f"'{net}' overlaps '{other}' ({other_field})")
    # two networks in the same cloud network would fight over its route tables
    placed: dict[Location, str] = {}
    for n in networks:
        if n.location is None:
            continue
        if n.location in placed:
            raise SpecError(
                f"networks.{n.name}",
                f"is the same cloud network as networks.{placed[n.location]} "
                f"({n.location.describe()})",
            )
        placed[n.location] = n.name


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file. Raises `SpecError` for any bad input."""
    p = Path(path)
    try:
        raw = read_bounded(p, MAX_TOPOLOGY_BYTES)
    except Unreadable as e:
        raise SpecError("file", f"{str(path)!r}: {e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("file", f"{str(path)!r} is not UTF-8 text (a topology is YAML)") from None
    if "\0" in text:
        raise SpecError("file", f"{str(path)!r} is binary, not YAML")
    return load_topology_text(text, base=p.resolve().parent, name=str(path))


# what PyYAML says when a line is indented more or less than its siblings (the usual mistake)
_INDENTATION = (
    "expected <block end>",
    "could not find expected ':'",
    "did not find expected key",
    "mapping values are not allowed here",
    "did not find expected '-' indicator",
)


def load_topology_text(text: str, base: Path, name: str = "topology") -> Topology:
    """`name`: the file the text came from, for errors (`hq.yaml:5: ...`)."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = str(e.problem)
        if "'\\t'" in problem or "\t" in problem:
            hint = ": YAML indents with spaces, not tabs"
        elif problem.startswith(_INDENTATION):
            hint = (
                ": check the indentation of this line and the one before it (each key "
                "indented like its siblings, with spaces)"
            )
            if "expected ':'" in problem:
                hint += ", and that each key there ends with ':'"
        else:
            hint = ""
        raise SpecError(where, f"not valid YAML: {problem}{hint}") from None
    except yaml.YAMLError as e:
        raise SpecError(name, f"not valid YAML: {e}") from None
    return parse_topology(data, base=base, default_id=file_id(name))
