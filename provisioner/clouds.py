"""What a cloud is, as the rest of the toolkit sees it: one `Cloud` description per cloud,
registered by the cloud's own package (`providers/<cloud>/cloud.py`, SDK-free). The parser,
planner, doctor, CLI, help, bootstrap and sandbox read these; none of them names a cloud.

Adding a cloud: a package under `providers/` whose `__init__` holds `CLOUD = Cloud(...)` (found
by its place, imported when first asked for), or `register(Cloud(...))` from anywhere else (a
cloud of a test, of a plug-in). Nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .model import Location

PROVIDERS = "provisioner.providers"  # the built-in clouds' packages are found under it


@dataclass(frozen=True)
class CloudSchema:
    """What the topology file says about a network of one cloud: the keys that place it, and
    the shape of the ids it names (as (pattern, example))."""

    keys: tuple[str, ...]
    # the network's location from its keys: called with the parser's reader of one network's
    # mapping (`spec._Fields`: .text(key, pattern=, example=), .has(key), .field(key)); bad
    # input raises SpecError naming the key
    location: Callable[[Any], Location]
    route_table: tuple[str, str] = (r"^\S+$", "a route table id")
    security_group: tuple[str, str] = (r"^\S+$", "a security group id")
    subnet: tuple[str, str] = (r"^\S+$", "a subnet id")
    default_size: str = "t3.small"
    # settings of this cloud alone: of the network, and of its connector
    network_keys: tuple[str, ...] = ()
    connector_keys: tuple[str, ...] = ()
    # connector keys this cloud cannot do without: (key, pattern, example)
    required_connector_keys: tuple[tuple[str, str, str], ...] = ()
    # the shape of its optional connector keys: key -> (pattern, example)
    connector_key_patterns: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # what each of its own keys means, in one line (the editor schema, the docs' key table)
    key_help: Mapping[str, str] = field(default_factory=dict)
    # a connector pair (`connector.ha`): how this cloud moves the routes to the standby, for
    # the plan; empty: not (yet) on this cloud
    ha_mechanism: str = ""
    # what the routes name instead of a connector, where the cloud moves that (a floating
    # private IP) rather than the routes; empty: the routes name the active connector
    ha_front: str = ""
    # the pair's two connectors share one subnet (what the front moves within)
    ha_one_subnet: bool = False
    # the front stays where it is and leads to whichever connector answers its probe (a load
    # balancer): nothing to move, apply only makes it (and puts each new connector behind it)
    ha_front_probed: bool = False
    # a pair's watchdog: which of the connector's settings (DesiredConnector fields) it needs
    # beside its cloud, network and region, and the interpreter that has the cloud's SDK
    watchdog_settings: tuple[str, ...] = ()
    watchdog_python: str = "/usr/bin/python3"
    # seconds a draining member waits, once the routes or front have left it, before its tunnel
    # closes: what the cloud takes to follow (a route write's propagation; a balancer's probe
    # interval x threshold, plus a margin; tests/test_watchdog.py holds them to the providers')
    drain_settle: float = 2.0
    # a single connector that must be replaced is made beside the old one, the routes move to
    # it, then the old one goes (make before break); False: the old one goes first (an outage
    # for as long as the new one takes to boot: the plan says so)
    make_before_break: bool = False
    # the app groups admit a connector that NATs everything by its own address: one made
    # beside another is admitted by its own before the routes move to it, the old one's
    # address only after the old VM goes
    connector_by_address: bool = False


@dataclass(frozen=True)
class Cloud:
    """One cloud, whole: what the file says of it, where its provider is, what its VMs run,
    what the help tells of it and what the sandbox seeds in it. Every module path is imported
    only when that part is used (a cloud's SDK never by `provision --help`)."""

    name: str  # as the file's `cloud:` names it
    title: str  # as people write it
    package: str  # its package: the cloud-init template and the watchdog's mechanism are in it
    location: type[Location]
    schema: CloudSchema
    provider: str  # "module:Class" of its NetworkProvider
    # the module of its pair's mechanism (`MECHANISM = (identity, Mechanism)`), shipped to each
    # member's VM after the watchdog's own code; empty: no pair on this cloud
    watchdog: str = ""
    cloud_init: str = "cloud-init.yaml"  # in `package`: {{placeholders}} as bootstrap fills them
    # the environment it reads: (variables, meaning) for the help's credentials, its endpoint
    credentials: tuple[tuple[str, str], ...] = ()
    endpoint: tuple[str, str] | None = None
    secret_variables: tuple[str, ...] = ()  # never shown (redact)
    quiet_loggers: tuple[str, ...] = ()  # its SDK's loggers, silenced below errors by the CLI
    # "module:function" of its part of the sandbox: a context manager yielding a SandboxPart
    sandbox: str = ""
    # flags of `provision apply` that place an example network of it (the help's example)
    example_flags: str = ""


_lock = threading.Lock()
_registered: dict[str, Cloud] = {}
_found = False


def register(cloud: Cloud) -> None:
    """`cloud` known from now on (replacing one of its name)."""
    with _lock:
        _registered[cloud.name] = cloud


def unregister(name: str) -> None:
    with _lock:
        _registered.pop(name, None)


def known() -> dict[str, Cloud]:
    """Every cloud, by name: the built-in ones (each package under `providers/` holding a
    `CLOUD`, in the packages' order) and those registered."""
    global _found
    if not _found:
        with _lock:
            if not _found:
                package = importlib.import_module(PROVIDERS)
                builtin = {}
                for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                    if info.ispkg:
                        cloud = getattr(
                            importlib.import_module(f"{PROVIDERS}.{info.name}"), "CLOUD", None
                        )
                        if isinstance(cloud, Cloud):
                            builtin[cloud.name] = cloud
                # the built-in clouds first, in their packages' order (the help's example and
                # the parser's name the first); one registered under a built-in name replaces it
                merged = {**builtin, **_registered}
                _registered.clear()
                _registered.update(merged)
                _found = True
    return _registered


def get(name: str) -> Cloud | None:
    return known().get(name)


def names() -> tuple[str, ...]:
    return tuple(known())


def load(target: str) -> Any:
    """What a "module:attribute" names."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


class _Schemas(Mapping[str, CloudSchema]):
    """Every cloud's schema by name, as the registry holds them now."""

    def __getitem__(self, name: str) -> CloudSchema:
        return known()[name].schema

    def __iter__(self) -> Iterator[str]:
        return iter(known())

    def __len__(self) -> int:
        return len(known())


SCHEMAS: Mapping[str, CloudSchema] = _Schemas()


def place_from_text(text: str) -> tuple[str, Location] | None:
    """The cloud and location `model.place_text` wrote, found in `text`; None when absent or
    cut short (no closing `;`), or when its fields are not its cloud's location's."""
    found = re.search(r"\b([a-z]+) ((?:\w+=[^\s;=]+ ?)+);", text)
    cloud = get(found.group(1)) if found else None
    if found is None or cloud is None:
        return None
    values = dict(pair.split("=", 1) for pair in found.group(2).split())
    if {f.name for f in fields(cloud.location) if f.compare} != values.keys():
        return None
    return cloud.name, cloud.location(**values)
