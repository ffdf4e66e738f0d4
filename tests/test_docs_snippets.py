"""Every shell and Python snippet of the README and docs/ is run here as written, against the
sandbox, or is listed below with the reason it is not: a recipe that fails stops CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUNNABLE = ("sh", "bash", "shell", "python", "py")

# (page, the snippet's first line, as it begins): why it is not run here
NOT_RUN = {
    ("README.md", "pip install -e '.[sandbox]' && provision demo"):
        "the two set-up commands: .ci/run runs the second (this suite), and the first's "
        "`provision demo` is tests/test_cli.py's demo test",
    ("README.md", "pip install 'connector-provisioner[aws]'"):
        "installs the published package from PyPI; CI installs this clone (.ci/run)",
    ("README.md", "provision --cloud aws --region us-east-1 --vpc vpc-0abc"):
        "names networks of your own (vpc-0abc...); the same flags on each cloud are run against "
        "the fakes by tests/test_cli.py and tests/test_<cloud>.py's one-network tests",
    ("lab.md", "python3 -m pytest -m lab"):
        "runs the lab itself: CI runs it as part of the suite (the tests marked lab)",
    ("takeover.md", "provision discover --cloud aws --region us-east-1 --vpc vpc-0abc12345678"):
        "names a VPC of yours; tests/test_takeover.py runs discover, plan and apply "
        "--retire-old on the sandbox's hand-made connector",
}  # fmt: skip
# run below, as written
RUN = {
    ("sandbox.md", "mkdir -p /tmp/sandbox"): "test_the_own_network_recipe_runs_as_written",
    ("library.md", "import provisioner"): "test_the_library_snippet_runs_on_the_sandbox",
}


def snippets() -> list[tuple[str, str, str]]:
    """(page, language, text) of every fenced block in a runnable language."""
    out = []
    for page in PAGES:
        for lang, text in re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(), re.S | re.M):
            if lang in RUNNABLE:
                out.append((page.name, lang, text))
    return out


def _find(page: str, first: str) -> str:
    (text,) = [t for p, _, t in snippets() if p == page and t.startswith(first)]
    return text


def test_every_snippet_is_run_or_says_why_not():
    found = snippets()
    assert len(found) >= 7
    for page, _, text in found:
        key = next((k for k in (*NOT_RUN, *RUN) if k[0] == page and text.startswith(k[1])), None)
        assert key is not None, f"{page}: a snippet neither run nor said why: {text[:80]!r}"
    for page, first in (*NOT_RUN, *RUN):  # each listed one is still there
        assert any(p == page and t.startswith(first) for p, _, t in found), (page, first)
    assert all(len(why) > 20 for why in NOT_RUN.values())


@pytest.mark.long
@pytest.mark.xdist_group("docs-snippets")
def test_the_own_network_recipe_runs_as_written():
    """docs/sandbox.md's "Your own network", pasted into bash as it is printed: a served
    sandbox, a VPC of one's own made with boto3, plan, apply, status, destroy, the server
    stopped."""
    recipe = _find("sandbox.md", "mkdir -p /tmp/sandbox")
    shutil.rmtree("/tmp/sandbox", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PROVISION_"))}
    done = subprocess.run(
        ["bash", "-e", "-c", recipe], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**env, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"},
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert done.returncode == 0, said[-4000:]
    assert "network office-vpc (aws): healthy" in said, said[-4000:]
    assert "destroy: done, 9 change(s) made" in said
    assert "not-a-real-key" not in said  # the profile is never shown
    assert "sandbox stopped (SIGTERM)" in (Path("/tmp/sandbox") / "serve.out").read_text() + said


@pytest.mark.long
@pytest.mark.xdist_group("docs-snippets")
def test_the_library_snippet_runs_on_the_sandbox(monkeypatch, capsys):
    """docs/library.md's snippet as it is, in the sandbox's world (its topology as
    topology.yaml, every client pointed at the fakes): it plans, applies, prints each network
    healthy and destroys."""
    from provisioner.sandbox import sandbox

    snippet = _find("library.md", "import provisioner")
    with sandbox() as world:
        world.write_topology(partner=True, service=True)
        monkeypatch.chdir(world.directory)
        exec(compile(snippet, "docs/library.md", "exec"), {"__name__": "snippet"})
        printed = capsys.readouterr().out.split("\n")
        healthy = [line for line in printed if line.endswith(" True")]
        assert len(healthy) == 5, printed  # hq, branch and a hub on each other cloud
        assert (
            sys.modules["provisioner"]
            .status(sys.modules["provisioner"].load_topology("topology.yaml"))[0]
            .nothing_of_ours
        )  # destroyed


def test_the_librarys_names_stay_its_functions_once_every_module_is_loaded():
    """A module of the package named like one of the library's functions (a `status.py`)
    would, once imported, hide `provisioner.status` behind itself: every exported name is
    still what it is after all of the package is imported."""
    import importlib
    import pkgutil
    import types

    import provisioner

    for info in pkgutil.walk_packages(provisioner.__path__, "provisioner."):
        if ".providers." not in info.name and not info.name.endswith(("sandbox", "fake")):
            importlib.import_module(info.name)
    for name in provisioner.__all__:
        assert not isinstance(getattr(provisioner, name), types.ModuleType), name
