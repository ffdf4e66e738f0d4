"""What a cloud is lives in its own package: read from the code, no module outside
`providers/<cloud>/` names a cloud (in its code: names and strings; comments and docstrings may
give a cloud as an example), nor does one cloud's package name another; each package
registers a whole description, and the watchdog's mechanism a VM runs is the one its
description names."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from provisioner import clouds

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "provisioner"
# what names a cloud besides its own name: its SDK's modules
SDKS = {"aws": ("boto3", "botocore", "moto"), "azure": ("Microsoft",), "gcp": ("google",),
        "oci": ()}  # fmt: skip


def _pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """A name as a word or a part of an identifier: aws, AWS_..., AwsLocation, aws_identity."""
    forms = [
        alt
        for n in names
        for alt in (
            rf"(?<![A-Za-z]){n.lower()}(?![a-z])",
            rf"(?<![A-Za-z]){n.capitalize()}(?![a-z])",
            rf"(?<![A-Za-z]){n.upper()}(?![A-Za-z])",
        )  # fmt: skip
    ]
    return re.compile("|".join(forms))


def _named(path: Path, pattern: re.Pattern[str]) -> list[str]:
    """Where the code of `path` (not its comments or docstrings) matches."""
    source = path.read_text(encoding="utf-8")
    docstrings = {
        node.body[0].value.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(getattr(node, "body", None), list)
        and node.body  # type: ignore[attr-defined]
        and isinstance(node.body[0], ast.Expr)  # type: ignore[attr-defined]
        and isinstance(node.body[0].value, ast.Constant)  # type: ignore[attr-defined]
        and isinstance(node.body[0].value.value, str)  # type: ignore[attr-defined]
    }
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            continue
        if token.type == tokenize.STRING and token.start[0] in docstrings:
            continue
        if pattern.search(token.string):
            found.append(f"{path.relative_to(REPO)}:{token.start[0]}: {token.string[:60]}")
    return found


def _words(names: tuple[str, ...]) -> re.Pattern[str]:
    return _pattern(tuple(w for n in names for w in (n, *SDKS.get(n, ()))))


def test_the_scan_finds_what_it_looks_for():
    """(The scan itself: a name in code is found, in a comment or a docstring it is not.)"""
    sample = REPO / "provisioner" / "clouds.py"
    assert _named(sample, _pattern(("Cloud",)))  # the registry's own class, in code
    assert not _named(sample, _pattern(("pkgutil_is_not_there",)))


def test_no_module_outside_a_clouds_package_names_a_cloud():
    every = _words(tuple(SDKS))
    outside = [
        p
        for p in PACKAGE.rglob("*.py")
        if not (p.relative_to(PACKAGE).parts[0] == "providers" and len(p.relative_to(PACKAGE).parts) > 2)
    ]  # fmt: skip
    assert (
        len(outside) > 30 and PACKAGE / "spec.py" in outside and PACKAGE / "watchdog.py" in outside
    )
    found = [hit for path in outside for hit in _named(path, every)]
    assert not found, "\n".join(found)
    # nor the cloud-neutral templates (each cloud's cloud-init is in its package)
    for template in (REPO / "templates").iterdir():
        if template.suffix != ".py":
            assert not every.search(template.read_text(encoding="utf-8")), template


@pytest.mark.parametrize("cloud", sorted(SDKS))
def test_a_clouds_package_names_no_other_cloud(cloud: str):
    others = _words(tuple(c for c in SDKS if c != cloud))
    found = [hit for p in (PACKAGE / "providers" / cloud).glob("*.py") for hit in _named(p, others)]
    assert not found, "\n".join(found)


def test_each_package_registers_its_whole_cloud():
    """The built-in clouds are the packages under providers/ (found by their place), each with
    its location, schema, provider, cloud-init template and, where it does pairs, the
    watchdog's mechanism: the watchdog a VM runs is its core and that module."""
    from importlib import resources

    from provisioner.bootstrap import watchdog_source
    from provisioner.model import Location

    packages = sorted(
        p.name for p in (PACKAGE / "providers").iterdir() if (p / "cloud.py").exists()
    )
    assert packages == sorted(SDKS) and list(clouds.known())[: len(packages)] == packages
    for name, cloud in clouds.known().items():
        assert cloud.name == name and cloud.package == f"provisioner.providers.{name}"
        assert issubclass(cloud.location, Location) and cloud.schema.keys
        module, _, attribute = cloud.provider.partition(":")
        assert module.startswith(cloud.package + ".") and attribute
        assert resources.files(cloud.package).joinpath(cloud.cloud_init).is_file()
        assert bool(cloud.watchdog) == bool(cloud.schema.ha_mechanism), name
        if cloud.watchdog:
            identity, mechanism = clouds.load(f"{cloud.watchdog}:MECHANISM")
            script = watchdog_source(name)
            compile(script, f"watchdog-{name}", "exec")  # runs alone on the VM
            assert f"def {identity.__name__}(" in script and f"class {mechanism.__name__}" in script
            assert "from provisioner" not in script and "from ..." not in script
            # only its own cloud's mechanism is in it
            for other, described in clouds.known().items():
                if other != name and described.watchdog:
                    theirs = clouds.load(f"{described.watchdog}:MECHANISM")[1]
                    if theirs is not mechanism and theirs.__name__ != mechanism.__name__:
                        assert f"class {theirs.__name__}" not in script, (name, other)


def test_a_cloud_registered_before_the_built_ins_are_found_comes_after_them():
    """The help's example and the parser's example name the first cloud: a plug-in registered
    early does not push the built-in clouds behind it (a fresh process: nothing found yet)."""
    import subprocess
    import sys

    code = (
        "from provisioner import clouds\n"
        "clouds.register(clouds.Cloud('zz', 'ZZ', 'x', clouds.Location,"
        " clouds.CloudSchema(('a',), lambda f: None), 'm:C'))\n"
        "print(','.join(clouds.names()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout.strip() == "aws,azure,gcp,oci,zz"
