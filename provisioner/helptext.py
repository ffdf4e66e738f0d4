"""What `provision --help` says and what the README's "Use" section shows: one source for both.

`cli` builds every parser's texts from here; `readme_use()` renders the README's block, and
`python3 -m provisioner.helptext README.md` writes it between the README's two markers.
tests/test_help.py checks that the README holds exactly that block and that each command's
`--help` carries its part. Standard library only: `provision --help` must stay fast."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

PROG = "provision"
FLOW_GRAMMAR = "SOURCE->NETWORK[:HOST|GROUP][:PORTS]"  # doctor --flow
WIDTH = 88  # the texts' paragraphs, wrapped here
DESCRIPTION = "Put a VPN connector into a cloud network and route the network through it."


@dataclass(frozen=True)
class Command:
    name: str
    synopsis: str  # what follows `provision NAME` in the common use
    help: str  # one line: the commands' list, the README's block
    exits: tuple[tuple[int, str], ...]  # every exit code it gives, and what it means here
    environment: tuple[str, ...]  # the ENVIRONMENT groups it reads
    description: str = ""  # its own --help, when the one line is not enough

    @property
    def text(self) -> str:
        """What its own --help opens with."""
        return self.description or f"{self.help[0].upper()}{self.help[1:]}."


BAD_INPUT = (2, "bad input: one line naming the field and the value; no cloud call")
READ_FAILED = (1, "a cloud or the VPN service could not be read (the line says which)")
CHANGE_FAILED = (
    1,
    "a cloud or the VPN service failed: what was done and what was not is listed, and the next "
    "apply or destroy finishes it; also: declined at the prompt",
)
NO_TERMINAL = (
    2,
    "bad input (one line naming the field and the value; no cloud call), also: no --yes and no "
    "terminal to confirm on",
)
CONFLICT = (3, "routes of ours conflict with routes already there: listed, nothing changed")
DRIFT = (6, "plan --detailed-exitcode: there are changes to make (drift, or a new file)")
LEASE = (
    4,
    "another run holds a network's lease, or the networks changed after the plan was shown: "
    "nothing changed (see unlock)",
)
INTERRUPTED = (
    130,
    "interrupted (Ctrl-C): the calls under way finished, no other started; run it again to finish",
)

# the environment variables the toolkit reads, in groups; each command names its groups
ENVIRONMENT: dict[str, tuple[tuple[str, str], ...]] = {
    "credentials": (),  # each cloud's (clouds.Cloud.credentials): environment()
    "service": (
        ("CLOUDCONNEXA_CLIENT_ID", "the VPN service's API client (for the file's service block)"),
        ("CLOUDCONNEXA_CLIENT_SECRET", "its secret (never printed)"),
        ("CLOUDCONNEXA_API_URL", "its API (default https://<cloud_id>.api.openvpn.com)"),
    ),
    "pace": (
        ("PROVISION_SERVICE_DEADLINE", "seconds a run may wait, in all, for the VPN service's "
         "rate limit (default 3600; --service-deadline)"),
    ),
    "limits": (
        ("PROVISION_READ_TIMEOUT", "seconds an answer may take to come (default 60)"),
        ("PROVISION_CALL_DEADLINE", "seconds a call may take with its retries (default 300)"),
    ),
    "endpoints": (),  # each cloud's (clouds.Cloud.endpoint): environment()
}  # fmt: skip


def environment() -> dict[str, tuple[tuple[str, str], ...]]:
    """ENVIRONMENT with each cloud's credentials and endpoint variables in their groups."""
    from .clouds import known

    clouds = known().values()
    return {
        **ENVIRONMENT,
        "credentials": tuple(row for c in clouds for row in c.credentials),
        "endpoints": tuple(c.endpoint for c in clouds if c.endpoint),
    }


READS = ("credentials", "service", "limits", "endpoints")
CHANGES = ("credentials", "service", "pace", "limits", "endpoints")

COMMANDS: tuple[Command, ...] = (
    Command(
        "plan",
        "-f topology.yaml [--json] [--detailed-exitcode]",
        "what apply would change, and why; touches nothing",
        (
            (0, "the plan is shown (with --detailed-exitcode: nothing to change)"),
            READ_FAILED,
            BAD_INPUT,
            CONFLICT,
            DRIFT,
        ),
        READS,
        "What apply would change on both halves (the clouds and the VPN service), and why; "
        "touches nothing. Grouped: routes as destinations x tables, each why once; --verbose: "
        "every change with its why.",
    ),
    Command(
        "apply",
        "-f topology.yaml [--yes]",
        "plan, confirm, and make every network route through its connector",
        ((0, "done, or nothing to do"), CHANGE_FAILED, NO_TERMINAL, CONFLICT, LEASE, INTERRUPTED),
        CHANGES,
        "Plan, confirm, and make every network of the file route through its connector, both "
        "halves. Progress: one live line on a terminal (done/total, elapsed, an estimate), one "
        "line per change otherwise. A failure starts nothing more and lists what was done and "
        "what was not; the next apply finishes it.",
    ),
    Command(
        "status",
        "-f topology.yaml [--json]",
        "per network: connector, forwarding, each route, what each app group admits",
        (
            (0, "every network healthy"),
            (1, "a network not healthy, or one could not be read"),
            BAD_INPUT,
        ),
        READS,
        "Per network: the connector and its way out, forwarding, each route (ok / MISSING / "
        "ELSEWHERE / BLACKHOLE), each app group: what it admits, what will arrive, what it "
        "DROPS. Routes that are ok are said once per target, as destinations x tables "
        "(--verbose: each on its own line); every other route has its own line. A network "
        "where nothing of ours is left is one line.",
    ),  # fmt: skip
    Command(
        "doctor",
        "-f topology.yaml [--flow F] [--json]",
        "trace every flow, whole ranges, through routes and filters; touches nothing",
        (
            (0, "every flow OK, every piece of its range"),
            (1, "a flow (or a piece of its range) DROPPED, or a cloud could not be read"),
            (2, "bad input, or a --flow that matches no flow (the flows that exist are named)"),
            (5, "none dropped, but one could not be judged (UNKNOWN; trace it with --flow)"),
        ),
        READS,
        "Trace every flow of the file (remote access, egress, site-to-site, the apps' own "
        "connections) hop by hop through the routes and filters the clouds have now, for every "
        f"piece of each range; touches nothing. --flow {FLOW_GRAMMAR} traces one: SOURCE is vpn, internet, a network of the file (external sites too) or an "
        "address or range; NETWORK a network of the file, vpn (the apps' own connections to "
        "VPN clients) or internet (egress); HOST any address of the network (in an app group "
        "or not) or GROUP an app group; PORTS e.g. tcp/443. Without '->': the flows whose name "
        "contains the text.",
    ),
    Command(
        "rotate",
        "-f topology.yaml [--network N] [--yes]",
        "a new VPN profile per connector, handed over without an outage",
        (
            (0, "done, or nothing to rotate"),
            CHANGE_FAILED,
            NO_TERMINAL,
            CONFLICT,
            LEASE,
            INTERRUPTED,
        ),
        CHANGES,
        "A new VPN profile for each connector of the file (or of --network), handed over "
        "without an outage. With the service block: a new connector on the VPN service per "
        "connector VM, its profile stored in the cloud's secret store for a VM made beside the "
        "old one (a pair: one member at a time); the routes move once the service says the new "
        "connector is ONLINE; the old VM goes, then the old connector, which revokes its "
        "profile. With a profile file: put the new profile in place of the old one first. The "
        "rest of the file is applied too, as by apply. The profile never leaves the secret "
        "store.",
    ),  # fmt: skip
    Command(
        "destroy",
        "-f topology.yaml [--yes]",
        "remove what apply created, and nothing else",
        ((0, "done: nothing of ours is left"), CHANGE_FAILED, NO_TERMINAL, LEASE, INTERRUPTED),
        CHANGES,
    ),
    Command(
        "discover",
        "--cloud C LOCATION... [--profile FILE] [--name N]",
        "print a topology file for a network as it is, its hand-made connector found",
        ((0, "printed"), READ_FAILED, BAD_INPUT),
        ("credentials", "limits", "endpoints"),
        "Read one network as it is and print a topology file for it: its address ranges, the "
        "connector someone made by hand (found by the routes that lead to a VM that forwards), "
        "the route tables that lead to it, the VPN range and the other ranges routed there "
        "(the peers), the app groups that admit the VPN range. What the cloud cannot say "
        "(NAT on the VM, which site a range is) is a comment marked DECIDE. Touches nothing. "
        "Where it is: the same flags as the one-network form (--region --vpc; --subscription "
        "--resource-group --vnet; --project --network; --compartment --vcn).",
    ),
    Command(
        "unlock",
        "-f topology.yaml [--network N]",
        "remove a network's lease left by a run that is gone",
        ((0, "each lease named is gone (or there was none)"), READ_FAILED, BAD_INPUT),
        READS,
        "Remove the lease each managed network (or --network) carries while an apply or "
        "destroy runs on it: for a run that crashed or was killed (a lease also expires by "
        "itself after an hour; as terraform force-unlock). Removing the lease of a run still "
        "going lets a second run change the network at the same time.",
    ),
    Command(
        "bootstrap",
        "-f topology.yaml --network N [--script]",
        "print a connector's cloud-init user-data (never the profile)",
        ((0, "printed"), READ_FAILED, BAD_INPUT),
        ("credentials", "limits", "endpoints"),
        "Print a network's connector user-data (cloud-init), or with --script its setup "
        "script alone; never the profile. Reads the cloud only when the file does not write "
        "the networks' subnets.",
    ),
    Command(
        "demo",
        "[--verbose]",
        "plan, apply, status, re-plan, destroy on the built-in sandbox",
        (
            (0, "every network was healthy after apply, and nothing was left after destroy"),
            (1, "otherwise (the output says where)"),
        ),
        ("limits",),  # its clouds are its own fakes: no credentials, no endpoints read
        "Plan, apply, status, re-plan, status and destroy against the built-in fakes of every "
        "cloud and the VPN service, on 127.0.0.1: no account, nothing leaves this machine.",
    ),
    Command(
        "sandbox serve",
        "[--dir D] [--verbose]",
        "the fakes on 127.0.0.1, and the exports that point here",
        ((0, "stopped (Ctrl-C, SIGTERM, or --seconds)"), BAD_INPUT),
        (),
        "Run every cloud's fake and the VPN service's on 127.0.0.1, seeded with the sandbox's "
        "networks: prints the export lines that point the CLI and each cloud's SDK at them, "
        "and a topology file of them.",
    ),
)

# the flags several commands share, described once
FLAGS = {
    "file": "the topology file (YAML, version 1); or one network's flags instead (below)",
    "file_only": "the topology file (YAML, version 1)",
    "yes": "do not ask for confirmation (needed without a terminal)",
    "json": "print it as JSON instead (schema in docs/cli.md)",
    "json_run": "print the plan and what was done and not done as one JSON document",
    "verbose": "every change on its own line with its why (default: grouped)",
    "verbose_status": "every route on its own line (default: the ok ones of a target at once)",
    "debug": "show tracebacks (redacted)",
    "replace_conflicting_routes": "take over routes to our destinations that lead elsewhere (else: exit 3)",
    "prune": "also remove networks of ours that left the file, on both halves",
    "prune_plan": "plan also the removal of networks of ours that left the file",
    "detailed_exitcode": "exit 6 when there is something to change, 0 when nothing (CI)",
    "roll": "connectors on the cloud's default image take its newest release",
    "retire_old": "a connector made by hand that is taken over: stopped once its routes moved",
    "service_deadline": "the longest to wait for the VPN service's rate limit (seconds; 3600)",
    "network": "only this network (again for more; default: every managed network)",
    "flow": "one flow, e.g. vpn->hq:10.0.1.5:tcp/443; a text: flows whose name contains it",
}

# the one-network flags: a topology key each (spec.CLOUD_SCHEMAS names the clouds' own)
KEYS = {
    "cloud": "the network's cloud: {clouds}",
    "name": "the network's name (default: net)",
    "connector_subnet": "the subnet (id or name) the connector VM goes into",
    "subnet": "a range this network offers to the VPN (repeat; default: the network's own)",
    "peer": "a range of another network, routed through the connector (repeat)",
    "route_table": "a route table that gets the routes (repeat; default: every one)",
    "app_security_group": "admits what the connector delivers; PORTS like tcp/443,udp/53 (repeat)",
    "size": "the connector's instance type or shape (default: the cloud's small one)",
    "image": "the connector's image (default: the current Ubuntu LTS)",
    "nat": "MASQUERADE on the connector",
    "egress": "this network is the VPN's internet exit (implies --nat)",
    "profile": "the connector's VPN profile file (a secret)",
    "vpn_subnet": "the VPN's client range (default 100.96.0.0/11)",
    # where the network is, by cloud
    "region": "the network's region",
    "vpc": "the VPC's id",
    "assume_role": "a role of the VPC's account to make the calls as",
    "external_id": "the external id that role asks for",
    "subscription": "the subscription's id",
    "resource_group": "the resource group of the VNet",
    "vnet": "the VNet's name",
    "project": "the project's id",
    "network": "the VPC network's name",
    "zone": "the zone of the connector",
    "compartment": "the compartment's OCID",
    "vcn": "the VCN's OCID",
    "route_priority": "our routes' priority (default 1000)",
    "service_account": "the connector's identity (default: one made for it)",
    "vault": "the vault that holds the profile secret (OCID)",
    "key": "the key that encrypts it (OCID)",
    "dynamic_group": "the connector's dynamic group (default: one made for it)",
}

EXAMPLES = (
    ("provision plan -f topology.yaml", "what apply would change, and why"),
    ("provision apply -f topology.yaml", "make it so, after a yes"),
    ("provision status -f topology.yaml", "is every network healthy?"),
    ("provision doctor -f topology.yaml", "where does a packet die?"),
    ("provision demo", "all of it on the built-in sandbox"),
)

ONE_NETWORK = (
    "One network without a file: the one-network flags after plan, apply, status or destroy "
    "(provision apply --help lists them), e.g. provision apply {example} "
    "--subnet 10.0.0.0/18 --peer 192.168.0.0/22 "
    '--profile hq.ovpn. With no command those flags act as apply (the README\'s "Use" has one '
    "such line per cloud)."
)

MARK_BEGIN = "<!-- provision --help: generated from provisioner/helptext.py, do not edit -->"
MARK_END = "<!-- end of the generated help -->"


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)


def _rows(rows: list[tuple[str, str]], indent: str = "  ", cont: str = "") -> list[str]:
    """Two columns, the second wrapped within WIDTH (its further lines start with `cont`)."""
    import textwrap

    width = max(len(a) for a, _ in rows)
    room = max(WIDTH - len(indent) - width - 2, 30)
    out = []
    for a, b in rows:
        lines = textwrap.wrap(b, room, subsequent_indent=cont) or [""]
        out.append(f"{indent}{a.ljust(width)}  {lines[0]}".rstrip())
        out.extend(f"{indent}{'':{width}}  {line}" for line in lines[1:])
    return out


def exits_text(exits: tuple[tuple[int, str], ...]) -> str:
    return "\n".join(["exit codes:", *_rows([(str(code), text) for code, text in exits])])


def environment_text(groups: tuple[str, ...]) -> str:
    everything = environment()
    rows = [row for group in groups for row in everything[group]]
    if not rows:
        return "environment: none read"
    return "\n".join(["environment:", *_rows(rows)])


def command_epilog(name: str) -> str:
    """The foot of a command's --help: its exit codes and the environment it reads."""
    c = command(name)
    return f"{exits_text(c.exits)}\n\n{environment_text(c.environment)}"


def all_exits() -> tuple[tuple[int, str], ...]:
    """Every exit code any command gives, with its general meaning."""
    general = {
        0: "done (status: all healthy; doctor: every flow OK)",
        1: "a cloud or the VPN service failed (what was done and not is listed), declined at "
        "the prompt, status not healthy, doctor a flow DROPPED",
        2: "bad input: one line naming the field and the value; no cloud call",
        3: CONFLICT[1],
        4: LEASE[1],
        5: "doctor: none dropped, but one could not be judged",
        6: DRIFT[1],
        130: INTERRUPTED[1],
        141: "the reader of the output went away (`| head`): stopped without a word; a change "
        "whose plan could not be shown was not started",
    }
    used = sorted({code for c in COMMANDS for code, _ in c.exits} | {141})
    return tuple((code, general[code]) for code in used)


def _example() -> str:
    """The first cloud's flags that place an example network."""
    from .clouds import known

    return next(c.example_flags for c in known().values() if c.example_flags)


def main_epilog() -> str:
    """The foot of `provision --help`: examples, the one-network form, exit codes and the
    environment (each command's --help has its own)."""
    examples = _rows([(cmd, f"# {why}") for cmd, why in EXAMPLES])
    groups = tuple(g for g in ENVIRONMENT if any(g in c.environment for c in COMMANDS))
    return "\n\n".join(
        [
            "examples:\n" + "\n".join(examples),
            wrapped(ONE_NETWORK.format(example=_example())),
            exits_text(all_exits()),
            environment_text(groups),
            f"{PROG} COMMAND --help: the command's flags, exit codes and environment",
        ]
    )


def commands_text(indent: str = "") -> str:
    """Every command with its common flags and its one line."""
    return "\n".join(
        f"{indent}{PROG} {c.name} {c.synopsis}".rstrip() + f"\n{indent}    {c.help}"
        for c in COMMANDS
    )


def wrapped(text: str) -> str:
    """A paragraph as --help prints it (the texts are laid out here, not by argparse)."""
    import textwrap

    return textwrap.fill(text, WIDTH)


def main_description() -> str:
    return f"{DESCRIPTION}\n\ncommands:\n{commands_text(indent='  ')}"


def readme_use() -> str:
    """The README's "Use" block: every command with its common flags and its one line, the
    examples, the exit codes and the environment, as --help says them."""
    lines = ["```text", commands_text(), "```", "", "```text", main_epilog(), "```"]
    return "\n".join([MARK_BEGIN, *lines, MARK_END])


def readme_block(text: str) -> str | None:
    """The generated block the README holds, markers included; None without markers."""
    start, end = text.find(MARK_BEGIN), text.find(MARK_END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(MARK_END)]


def write_readme(path: Path) -> bool:
    """Put readme_use() between the README's markers; True when it changed."""
    text = path.read_text(encoding="utf-8")
    old = readme_block(text)
    if old is None:
        raise SystemExit(f"{path}: no '{MARK_BEGIN}' ... '{MARK_END}' markers")
    new = text.replace(old, readme_use())
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    print(f"{target}: " + ("written" if write_readme(target) else "already current"))
