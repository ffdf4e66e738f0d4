"""A JSON Schema of the topology file, for editors: generated from the key lists and patterns the
parser (`spec.py`) checks with, so the two cannot drift, and kept in the repository at
`schema/topology.schema.json` (a test holds it equal to this output and validates every example
against it). An editor with a YAML language server validates and completes a file whose first
line is

    # yaml-language-server: $schema=<path or URL of schema/topology.schema.json>

The schema checks the shape (keys, types, id patterns, CIDR form); the parser alone checks what
needs more than one value (overlaps, a summary against the subnets, the VPN service block).

    python -m provisioner.editor_schema > schema/topology.schema.json
    python -m provisioner.editor_schema --docs docs/topology.md   # its table of every key
"""

from __future__ import annotations

import json
from typing import Any

from . import spec

CIDR = r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}/([0-9]|[12]\d|3[0-2])$"

# what each key is, as the README's table says it (shown by editors on hover)
SAID: dict[str, str] = {
    "version": "the file format's version: 1",
    "id": "which file this is, when several share a VPN service or cloud account",
    "vpn_subnet": "the VPN client range (default 100.96.0.0/11)",
    "networks": "the networks, by name ([a-z0-9-], up to 32 characters)",
    "service": "the VPN service's half, made from the same file",
    "cloud_id": "the CloudConnexa account's id (https://<cloud_id>.api.openvpn.com)",
    "vpn_region": "the VPN region the connectors attach in, like eu-central-1",
    "subnets": "what the network offers to the VPN; default: the network's own CIDRs",
    "route_tables": "all (default: every route table of the network) or a list of ids",
    "app_security_groups": "groups of the app servers the VPN reaches: an id, or {group, ports}",
    "summarize": "covering prefixes routed and admitted instead of the other networks' subnets in them",
    "connector": "the connector VM",
    "adopt_service_network": "the VPN service's network of this name is ours to manage",
    "subnet": "where the connector VM goes",
    "size": "the instance type or shape",
    "nat": "MASQUERADE on the connector (default false; true with egress)",
    "egress": "this network is the VPN's internet exit (needs NAT)",
    "profile": "the VPN profile file, relative to this file (a secret)",
    "profiles": "with ha: the two connectors' profiles",
    "image": "the image id; default: the current Ubuntu 24.04 LTS",
    "nat_preserve_source": "NAT skips the local subnets (default true)",
    "lan_interface": "the connector's interface into the network; default: the default route's",
    "ha": "true: a connector pair",
    "takes_over": "a connector made by hand to take over, by its VM's id",
    "profile_out": "where apply writes the external site's connector profile (mode 0600)",
    "group": "the app group's id",
    "ports": "port specs: all, tcp, udp, icmp, tcp/443, udp/5000-5100",
}


def said(key: str, default: str | None = None) -> str:
    """What `key` is: SAID's, a cloud's own key as its cloud says (`GCP: ...`), or the clouds."""
    from .clouds import known

    if key == "cloud":
        return f"{', '.join(known())}, or external (only routed to: subnets required)"
    if key in SAID:
        return SAID[key]
    for cloud in known().values():
        if key in cloud.schema.key_help:
            return f"{cloud.title}: {cloud.schema.key_help[key]}"
    if default is None:
        raise KeyError(key)
    return default


PORT = r"^(all|tcp|udp|icmp|(tcp|udp)/\d{1,5}(-\d{1,5})?)$"
BOOLEANS = {"nat", "egress", "nat_preserve_source", "ha", "adopt_service_network"}


def _text(key: str, pattern: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "description": said(key, key)}
    if pattern:
        out["pattern"] = pattern
    return out


def _cidrs(key: str) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "pattern": CIDR},
        "description": said(key),
    }


def _connector(schema: spec.CloudSchema) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for key in (*spec.CONNECTOR_KEYS, *spec.CONNECTOR_MORE_KEYS, *schema.connector_keys):
        if key in BOOLEANS:
            props[key] = {"type": "boolean", "description": said(key)}
        elif key == "subnet":
            props[key] = _text(key, schema.subnet[0])
        elif key == "subnets":
            props[key] = {
                "type": "array", "minItems": 2, "maxItems": 2,
                "items": {"type": "string", "pattern": schema.subnet[0]},
                "description": "with ha: the pair's two subnets",
            }  # fmt: skip
        elif key == "profiles":
            props[key] = {"type": "array", "minItems": 2, "maxItems": 2,
                          "items": {"type": "string"}, "description": said(key)}  # fmt: skip
        elif key == "vpn_region":
            props[key] = _text(key, spec.VPN_REGION_PATTERN)
        else:
            props[key] = _text(key)
    for key, pattern, _ in schema.required_connector_keys:
        props[key] = _text(key, pattern)
    required = [k for k, _, _ in schema.required_connector_keys]
    return {"type": "object", "properties": props, "additionalProperties": False,
            "description": said("connector"), **({"required": required} if required else {})}  # fmt: skip


def _managed(cloud: str, schema: spec.CloudSchema) -> dict[str, Any]:
    groups = {
        "oneOf": [
            {"type": "string", "pattern": schema.security_group[0]},
            {
                "type": "object",
                "properties": {
                    "group": _text("group", schema.security_group[0]),
                    "ports": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "pattern": PORT},
                        "description": said("ports"),
                    },  # fmt: skip
                },
                "required": ["group"],
                "additionalProperties": False,
            },
        ]
    }
    props: dict[str, Any] = {
        "cloud": {"const": cloud, "description": said("cloud")},
        "subnets": _cidrs("subnets"),
        "route_tables": {
            "oneOf": [
                {"const": "all"},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": schema.route_table[0]},
                },
            ],
            "description": said("route_tables"),
        },  # fmt: skip
        "app_security_groups": {
            "type": "array",
            "items": groups,
            "description": said("app_security_groups"),
        },  # fmt: skip
        "summarize": _cidrs("summarize"),
        "connector": _connector(schema),
        "adopt_service_network": {"type": "boolean", "description": said("adopt_service_network")},
    }
    for key in schema.keys:
        props[key] = _text(key)
    for key in schema.network_keys:
        props[key] = (
            {"type": "integer", "minimum": 0, "maximum": 65535, "description": said(key)}
            if key == "route_priority"
            else _text(key)
        )
    assert set(props) == {*spec.COMMON_KEYS, *schema.keys, *schema.network_keys,
                          "adopt_service_network"}  # (the parser's keys, no more)  # fmt: skip
    return {
        "if": {"properties": {"cloud": {"const": cloud}}, "required": ["cloud"]},
        "then": {
            "properties": props,
            "required": ["cloud", "connector"],
            "additionalProperties": False,
        },  # fmt: skip
    }


def _external() -> dict[str, Any]:
    props = {
        "cloud": {"const": "external", "description": said("cloud")},
        "subnets": _cidrs("subnets"),
        "adopt_service_network": {"type": "boolean", "description": said("adopt_service_network")},
        "connector": {
            "type": "object",
            "properties": {"profile_out": _text("profile_out")},
            "additionalProperties": False,
        },
    }
    assert set(props) == {*spec.EXTERNAL_KEYS, *spec.EXTERNAL_SERVICE_KEYS}
    return {
        "if": {"properties": {"cloud": {"const": "external"}}, "required": ["cloud"]},
        "then": {
            "properties": props,
            "required": ["cloud", "subnets"],
            "additionalProperties": False,
        },  # fmt: skip
    }


def json_schema() -> dict[str, Any]:
    """The topology file's JSON Schema (draft-07: what YAML language servers read)."""
    clouds = sorted(spec.CLOUD_SCHEMAS)
    network = {
        "type": "object",
        "properties": {"cloud": {"enum": [*clouds, "external"], "description": said("cloud")}},
        "required": ["cloud"],
        "allOf": [_managed(c, spec.CLOUD_SCHEMAS[c]) for c in clouds] + [_external()],
    }
    top = {
        "version": {"const": 1, "description": said("version")},
        "id": _text("id", spec.FILE_ID_PATTERN),
        "vpn_subnet": _text("vpn_subnet", CIDR),
        "networks": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": spec.NAME_RE.pattern},
            "additionalProperties": network,
            "description": said("networks"),
        },
        "service": {
            "type": "object",
            "properties": {
                "cloudconnexa": {
                    "type": "object",
                    "properties": {
                        "cloud_id": _text("cloud_id", spec.CLOUD_ID_PATTERN),
                        "vpn_region": _text("vpn_region", spec.VPN_REGION_PATTERN),
                    },
                    "required": list(spec.SERVICE_KEYS),
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
            "description": said("service"),
        },
    }
    assert set(top) == set(spec.TOP_KEYS)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://github.com/connector-provisioner/schema/topology.schema.json",
        "title": "connector-provisioner topology file",
        "type": "object",
        "properties": top,
        "required": ["version", "networks"],
        "additionalProperties": False,
    }


KEYS_BEGIN = "<!-- every key: generated from provisioner/editor_schema.py, do not edit -->"
KEYS_END = "<!-- end of the generated keys -->"


def keys_table() -> str:
    """Every key of the file, where it may stand and for which clouds, as the schema has it:
    the table docs/topology.md holds between its markers (a test keeps it current)."""
    rows = [("version, id, vpn_subnet, networks, service", "the file", "")]
    rows.append((", ".join(spec.SERVICE_KEYS), "service.cloudconnexa", ""))
    rows.append((", ".join(spec.COMMON_KEYS), "networks.NAME", "every cloud"))
    rows.append(("adopt_service_network", "networks.NAME", "every cloud, with the service"))
    for cloud in sorted(spec.CLOUD_SCHEMAS):
        schema = spec.CLOUD_SCHEMAS[cloud]
        rows.append((", ".join((*schema.keys, *schema.network_keys)), "networks.NAME", cloud))
    rows.append((", ".join((*spec.CONNECTOR_KEYS, *spec.CONNECTOR_MORE_KEYS)),
                 "networks.NAME.connector", "every cloud"))  # fmt: skip
    for cloud in sorted(spec.CLOUD_SCHEMAS):
        if spec.CLOUD_SCHEMAS[cloud].connector_keys:
            rows.append((", ".join(spec.CLOUD_SCHEMAS[cloud].connector_keys),
                         "networks.NAME.connector", cloud))  # fmt: skip
    rows.append((", ".join(spec.EXTERNAL_KEYS + spec.EXTERNAL_SERVICE_KEYS), "networks.NAME",
                 "external (adopt_service_network, connector: with the service)"))  # fmt: skip
    rows.append(("profile_out", "networks.NAME.connector", "external, with the service"))
    rows.append((", ".join(spec.APP_ACCESS_KEYS), "an app_security_groups entry", "every cloud"))
    out = [KEYS_BEGIN, "| keys | where | clouds |", "|---|---|---|"]
    out += [f"| {', '.join(f'`{k}`' for k in keys.split(', '))} | `{where}` | {clouds} |"
            for keys, where, clouds in rows]  # fmt: skip
    return "\n".join([*out, KEYS_END])


def keys_block(text: str) -> str | None:
    start, end = text.find(KEYS_BEGIN), text.find(KEYS_END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(KEYS_END)]


def text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":  # pragma: no cover
    import sys
    from pathlib import Path

    if sys.argv[1:2] == ["--docs"]:
        page = Path(sys.argv[2])
        body = page.read_text(encoding="utf-8")
        old = keys_block(body)
        if old is None:
            raise SystemExit(f"{page}: no '{KEYS_BEGIN}' ... '{KEYS_END}' markers")
        page.write_text(body.replace(old, keys_table()), encoding="utf-8")
    else:
        print(text(), end="")
