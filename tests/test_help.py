"""What a user reads first: `provision --help`, each command's --help, and the README's "Use",
from one source (provisioner/helptext.py) and agreeing with what the code does."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from provisioner import helptext as H
from provisioner.cli import EXIT_DRIFT, EXIT_PIPE, EXIT_UNKNOWN, _parser, run
from provisioner.errors import CloudError, ConflictError, Interrupted, SpecError
from provisioner.lease import Locked

REPO = Path(__file__).resolve().parent.parent
FILE_COMMANDS = ("plan", "apply", "status", "doctor", "rotate", "destroy", "unlock", "bootstrap")


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit:
        run([*argv, "--help"])
    assert exit.value.code == 0
    return capsys.readouterr().out


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(autouse=True)
def _width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # argparse's own columns; ours are laid out by helptext


def test_the_readme_shows_what_help_says():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = H.readme_block(readme)
    assert block is not None, "README.md has lost its generated-help markers"
    assert block == H.readme_use(), (
        "README.md's 'Use' block differs from provisioner/helptext.py: run "
        "`python3 -m provisioner.helptext README.md`"
    )
    # it is under "Use", and every command of the parser is in it
    assert readme.index("## Use") < readme.index(H.MARK_BEGIN) < readme.index("## A first real")
    commands = _subcommands(_parser())
    for name in commands:
        assert f"provision {name} " in block or f"provision {name}\n" in block, name


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out: dict[str, argparse.ArgumentParser] = {}
    for name, sp in sub.choices.items():
        if name == "force-unlock":
            continue  # unlock's alias
        inner = [a for a in sp._actions if isinstance(a, argparse._SubParsersAction)]
        if inner:
            out.update({f"{name} {n}": p for n, p in inner[0].choices.items()})
        else:
            out[name] = sp
    return out


def test_provision_help_teaches(capsys: pytest.CaptureFixture[str]):
    out = _help([], capsys)
    assert out.startswith("usage: provision")
    # every command with its common flags (-f where it applies) and its one line
    assert H.commands_text(indent="  ") in out
    for name in FILE_COMMANDS:
        assert f"provision {name} -f topology.yaml" in out
    # examples, the one-network form and how it works without a command, exit codes and
    # the environment, at the foot
    foot = out[out.index("examples:") :]
    for example, _why in H.EXAMPLES:
        assert example in foot
    assert "With no command those flags act as apply" in _words(foot)
    codes = re.findall(r"^  (\d+) ", foot[foot.index("exit codes:") :], re.M)
    assert codes == ["0", "1", "2", "3", "4", "5", "6", "130", "141"]
    environment = foot[foot.index("environment:") :]
    for group in H.environment().values():
        for name, _ in group:
            assert name in environment
    # not the 30 one-network flags without a word: those are apply's --help
    assert not re.search(r"^ +--(vpc|cloud|subscription)\b", out, re.M)


@pytest.mark.parametrize("name", [c.name for c in H.COMMANDS])
def test_each_commands_help_has_its_flags_exit_codes_and_environment(
    name: str, capsys: pytest.CaptureFixture[str]
):
    command = H.command(name)
    out = _help(name.split(), capsys)
    assert out.startswith(f"usage: provision {name} ")
    assert _words(command.text) in _words(out)
    if name in FILE_COMMANDS:
        assert "-f FILE, --file FILE" in out
    foot = out[out.index("exit codes:") :]
    assert [int(c) for c in re.findall(r"^  (\d+) ", foot, re.M)] == [c for c, _ in command.exits]
    for _code, meaning in command.exits:
        assert _words(meaning) in _words(foot)
    names = [n for g in command.environment for n, _ in H.environment()[g]]
    for variable in names:
        assert variable in foot[foot.index("environment:") :]
    if not names:
        assert "environment: none read" in foot
    # the service's deadline is read only by what changes the service
    assert ("PROVISION_SERVICE_DEADLINE" in foot) == (name in ("apply", "rotate", "destroy"))


def test_every_flag_is_described_in_one_line():
    parsers = {"": _parser(), **_subcommands(_parser())}
    missing, long = [], []
    for name, parser in parsers.items():
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            text = action.help or ""
            if not text.strip():
                missing.append(f"{name} {action.option_strings[0]}")
            elif len(text) > 90 or "\n" in text:
                long.append(f"{name} {action.option_strings[0]}: {len(text)}")
    assert not missing, missing
    assert not long, long


def test_the_exit_codes_said_are_the_ones_the_code_gives():
    given = {
        0,
        CloudError.exit_code,
        SpecError.exit_code,
        ConflictError.exit_code,
        Locked.exit_code,
        EXIT_UNKNOWN,
        EXIT_DRIFT,
        Interrupted.exit_code,
        EXIT_PIPE,
    }
    said = {code for code, _ in H.all_exits()}  # what `provision --help` lists
    assert said == given
    assert {code for c in H.COMMANDS for code, _ in c.exits} == given - {EXIT_PIPE}
    # the meanings a command gives are its own: bad input is 2 wherever input is read
    for c in H.COMMANDS:
        if c.name != "demo":
            assert 2 in dict(c.exits), c.name


def test_every_variable_the_code_reads_is_in_help():
    """A variable read anywhere in the package (not the fakes or the sandbox, which set them)
    is named in --help's environment; one named there is read somewhere."""
    read: set[str] = set()
    for path in (REPO / "provisioner").rglob("*.py"):
        if "fakes" in path.parts or path.name in ("sandbox.py", "helptext.py"):
            continue
        text = path.read_text(encoding="utf-8")
        read.update(re.findall(r'^[A-Z_]*VARIABLE = "([A-Z][A-Z0-9_]+)"', text, re.M))
        read.update(re.findall(r'environ\.get\("([A-Z][A-Z0-9_]+)"', text))
    assert read, "no variable found: the scan no longer matches the code"
    said = " ".join(n for g in H.environment().values() for n, _ in g)
    missing = sorted(v for v in read if v not in said)
    assert not missing, missing
    for name in re.findall(r"\b(PROVISION_[A-Z_]+|CLOUDCONNEXA_[A-Z_]+)\b", said):
        assert name in read, f"{name} is in --help but read nowhere"


def test_one_network_flags_without_a_command_are_documented_as_apply(
    capsys: pytest.CaptureFixture[str],
):
    out = _help(["apply"], capsys)
    # apply's --help lists them, each with its line, the location keys with their clouds
    for flag, said in (
        ("--cloud CLOUD", "aws, azure, gcp, oci"),
        ("--vpc VPC", "aws: the VPC's id"),
        ("--region REGION", "aws, azure, oci: the network's region"),
        ("--vault VAULT", "oci: the vault"),
        ("--connector-subnet SUBNET", "the connector VM goes into"),
    ):
        assert flag in out and said in out, flag
    # and the README's one-network lines with no command are what the top help says works
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\nprovision --cloud aws --region" in readme
    assert "with no\ncommand they act as apply" in readme
