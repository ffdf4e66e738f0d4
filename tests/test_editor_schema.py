"""The editor schema (`schema/topology.schema.json`, issue 39): generated from the parser's own
key lists and patterns, kept equal to the generator's output, valid JSON Schema (draft-07),
met by every example (each of which names it on its first line, for the YAML language server)
and by the sandbox's files, and refusing what the parser refuses for its shape."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from provisioner.editor_schema import text
from provisioner.errors import SpecError
from provisioner.spec import parse_topology

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schema" / "topology.schema.json"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
LINE = "# yaml-language-server: $schema=../schema/topology.schema.json"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_the_kept_schema_is_the_generators_output():
    assert SCHEMA.read_text() == text(), (
        "schema/topology.schema.json is stale: python -m provisioner.editor_schema > "
        "schema/topology.schema.json"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_names_the_schema_and_meets_it(example: Path, validator: Draft7Validator):
    assert example.read_text().splitlines()[0] == LINE
    doc = yaml.safe_load(example.read_text())
    assert [e.message for e in validator.iter_errors(doc)] == []


def test_the_sandbox_files_meet_it(validator: Draft7Validator, unchanged_aws: Any):
    _, world = unchanged_aws
    for doc in (world.topology(), world.topology(partner=True, service=True)):
        assert [e.message for e in validator.iter_errors(doc)] == []


def _seed() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "hq-branch.yaml").read_text())


def _edit(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_seed())
    node = doc
    *parents, last = path.split(".")
    for k in parents:
        node = node[k]
    node[last] = value
    return doc


REFUSED = {
    "a key misspelt": ("networks.hq.route_table", "all"),
    "a subnet not in CIDR form": ("networks.hq.subnets", ["10.0.0.0"]),
    "an unknown cloud": ("networks.hq.cloud", "aws2"),
    "a port spec by name": ("networks.hq.app_security_groups",
                            [{"group": "sg-0123abcd", "ports": ["tcp/https"]}]),
    "a summary not a CIDR": ("networks.hq.summarize", ["172.20.0.0/33"]),
    "a connector key of another cloud": ("networks.hq.connector.vault", "ocid1.vault.oc1..x"),
    "a version the parser does not know": ("version", 2),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_the_schema_refuses_the_parser_refuses(case: str, validator: Draft7Validator):
    doc = _edit(*REFUSED[case])
    assert list(validator.iter_errors(doc)), case
    with pytest.raises(SpecError):
        parse_topology(doc, ROOT / "examples")


def test_the_topology_page_lists_every_key_as_the_schema_has_it():
    """docs/topology.md's table of every key is the generator's (as the README's "Use" is
    --help's), and every key the parser takes has its meaning on that page."""
    from provisioner import spec
    from provisioner.editor_schema import keys_block, keys_table

    page = (ROOT / "docs" / "topology.md").read_text()
    assert keys_block(page) == keys_table(), (
        "docs/topology.md's key table is stale: python -m provisioner.editor_schema --docs "
        "docs/topology.md"
    )
    meanings = page[page.index("What each means:") :]
    keys = {*spec.TOP_KEYS, *spec.COMMON_KEYS, *spec.CONNECTOR_KEYS, *spec.CONNECTOR_MORE_KEYS}
    keys |= {k for s in spec.CLOUD_SCHEMAS.values() for k in (*s.keys, *s.network_keys,
                                                               *s.connector_keys)}  # fmt: skip
    missing = sorted(k for k in keys if not any(f in meanings for f in (f"`{k}`", f".{k}`",
                                                                        f"`{k}.", f".{k}.")))  # fmt: skip
    assert missing == [], missing
