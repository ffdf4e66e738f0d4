"""`provision`: the command-line face. Parses, calls the library, renders. No logic of its own.

Exit codes: 0 done, 1 cloud error or declined, 2 bad input, 3 conflicting routes refused.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import helptext as H
from .errors import CloudError, ProvisionerError, SpecError
from .spec import CLOUD_SCHEMAS

EXIT_DECLINED = 1
# every cloud's location keys, as flags of the one-network form: a new cloud's keys come with
# its spec.CLOUD_SCHEMAS entry, no edit here
LOCATION_KEYS = tuple(dict.fromkeys(k for schema in CLOUD_SCHEMAS.values() for k in schema.keys))
CLOUD_KEYS = tuple(
    dict.fromkeys(
        k
        for schema in CLOUD_SCHEMAS.values()
        for k in (*schema.network_keys, *schema.connector_keys)
    )
)


def _one_network_flags(p: argparse.ArgumentParser, shown: bool = True, making: bool = True) -> None:
    """The flags that stand for a one-network topology: on plan, apply, status, doctor and
    destroy instead of `-f`, and on `provision` itself (as apply, unlisted: the README's
    "Use" shows that form)."""

    def described(text: str) -> str:
        return text if shown else argparse.SUPPRESS

    one = p.add_argument_group("one network without a topology file")
    one.add_argument(
        "--cloud", help=described(H.KEYS["cloud"].format(clouds=", ".join(CLOUD_SCHEMAS)))
    )
    one.add_argument("--name", default="net", help=described(H.KEYS["name"]))
    one.add_argument(
        "--connector-subnet", metavar="SUBNET", help=described(H.KEYS["connector_subnet"])
    )
    for key, metavar in (("subnet", "RANGE"), ("peer", "RANGE"), ("route_table", "ID")):
        one.add_argument(
            f"--{key.replace('_', '-')}", action="append", default=[], metavar=metavar,
            help=described(H.KEYS[key]),
        )  # fmt: skip
    one.add_argument(
        "--app-security-group", action="append", default=[], metavar="GROUP[:PORTS]",
        help=described(H.KEYS["app_security_group"]),
    )  # fmt: skip
    one.add_argument("--profile", metavar="FILE", help=described(H.KEYS["profile"]))
    # (accepted where a VM is not made, so that one line works with any command; not listed)
    made = described if making else (lambda _: argparse.SUPPRESS)
    one.add_argument("--size", help=made(H.KEYS["size"]))
    one.add_argument("--image", help=made(H.KEYS["image"]))
    for key in ("nat", "egress"):
        one.add_argument(f"--{key}", action="store_true", default=None, help=made(H.KEYS[key]))
    one.add_argument("--vpn-subnet", metavar="RANGE", help=described(H.KEYS["vpn_subnet"]))
    where = p.add_argument_group("where the one network is, by cloud")
    for key in (*LOCATION_KEYS, *CLOUD_KEYS):  # a new cloud's keys come with its schema
        clouds = [
            name
            for name, schema in CLOUD_SCHEMAS.items()
            if key in (*schema.keys, *schema.network_keys, *schema.connector_keys)
        ]
        where.add_argument(
            f"--{key.replace('_', '-')}", dest=key, metavar=key.upper(),
            help=described(f"{', '.join(clouds)}: {H.KEYS[key]}"),
        )  # fmt: skip


def _usage(name: str, one_network: bool) -> str:
    c = H.command(name)
    usage = f"{H.PROG} {c.name} {c.synopsis} [options]".replace("  ", " ")
    if one_network:
        usage += (
            f"\n       {H.PROG} {c.name} --cloud CLOUD [where] --connector-subnet S ... [options]"
        )
    return usage


RAW = argparse.RawDescriptionHelpFormatter  # the texts are laid out by helptext


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=H.PROG,
        usage=f"{H.PROG} [-h] [--version] COMMAND [-f topology.yaml] [options]",
        description=H.main_description(),
        epilog=H.main_epilog(),
        formatter_class=RAW,
    )
    p.add_argument("--version", action="version", version="connector-provisioner 0.1.0")
    p.add_argument("--debug", action="store_true", help=H.FLAGS["debug"])
    # the one-network form with no command (as apply): accepted, listed by apply's --help
    _one_network_flags(p, shown=False)
    p.add_argument("-y", "--yes", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--replace-conflicting-routes", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(file=None, json=False, prune=False)
    # the commands are listed by the description (as the README lists them)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)
    _file_commands(sub)
    _sandbox_commands(sub)
    return p


def _command(sub: Any, name: str, *, file: str = "", one_network: bool = False) -> Any:
    """A command's parser, its texts from helptext; `file`: "required" or "optional" -f."""
    c = H.command(name)
    sp = sub.add_parser(
        name.split()[-1],  # (`sandbox serve`: serve, under sandbox)
        help=c.help,
        usage=_usage(name, one_network),
        description=H.wrapped(c.text),
        epilog=H.command_epilog(name),
        formatter_class=RAW,
        aliases=["force-unlock"] if name == "unlock" else [],
    )
    if file == "required":
        sp.add_argument("-f", "--file", required=True, help=H.FLAGS["file_only"])
    elif file:
        sp.add_argument("-f", "--file", help=H.FLAGS["file"])
    if one_network:
        # what only making a VM takes (its size, image, NAT) is listed where one is made
        _one_network_flags(sp, making=name in ("plan", "apply"))
    return sp


def _common(sp: Any, *flags: str, json_help: str = "json") -> None:
    """The flags several commands share (their lines: helptext.FLAGS), and --debug."""
    for flag in flags:
        if flag == "yes":
            sp.add_argument("-y", "--yes", action="store_true", help=H.FLAGS["yes"])
        elif flag == "json":
            sp.add_argument("--json", action="store_true", help=H.FLAGS[json_help])
        elif flag == "verbose":
            sp.add_argument("-v", "--verbose", action="store_true", help=H.FLAGS["verbose"])
        elif flag == "service_deadline":
            sp.add_argument(
                "--service-deadline", metavar="SECONDS", help=H.FLAGS["service_deadline"]
            )
        else:
            sp.add_argument(f"--{flag.replace('_', '-')}", action="store_true", help=H.FLAGS[flag])
    sp.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=H.FLAGS["debug"]
    )


def _file_commands(sub: Any) -> None:
    """The commands on a topology file (or, most of them, one network's flags)."""
    sp = _command(sub, "plan", file="optional", one_network=True)
    _common(sp, "json", "verbose", "replace_conflicting_routes", "roll", "retire_old",
            "detailed_exitcode")  # fmt: skip
    sp.add_argument("--prune", action="store_true", help=H.FLAGS["prune_plan"])
    sp = _command(sub, "apply", file="optional", one_network=True)
    _common(sp, "yes", "json", "verbose", "replace_conflicting_routes", "prune", "roll",
            "retire_old", "service_deadline", json_help="json_run")  # fmt: skip
    sp = _command(sub, "status", file="optional", one_network=True)
    _common(sp, "json")
    sp.add_argument("-v", "--verbose", action="store_true", help=H.FLAGS["verbose_status"])
    sp = _command(sub, "doctor", file="optional", one_network=True)
    sp.add_argument("--flow", metavar=H.FLOW_GRAMMAR, help=H.FLAGS["flow"])
    _common(sp, "json")
    sp = _command(sub, "rotate", file="required")
    sp.add_argument(
        "--network", action="append", metavar="NAME", dest="rotate_networks",
        help=H.FLAGS["network"],
    )  # fmt: skip
    _common(sp, "yes", "json", "verbose", "replace_conflicting_routes", "service_deadline",
            json_help="json_run")  # fmt: skip
    sp = _command(sub, "destroy", file="optional", one_network=True)
    _common(sp, "yes", "json", "verbose", "service_deadline", json_help="json_run")
    sp = _command(sub, "discover")
    sp.add_argument("--cloud", required=True, help=H.KEYS["cloud"].format(
        clouds=", ".join(CLOUD_SCHEMAS)))  # fmt: skip
    sp.add_argument("--name", help="the network's name in the file (default: the cloud's name)")
    sp.add_argument("--profile", metavar="FILE", help=H.KEYS["profile"])
    sp.add_argument("--service-cloud-id", metavar="ID", help="the VPN service's network with "
                    "these routes, adopted (its API credentials set)")  # fmt: skip
    for key in LOCATION_KEYS:
        clouds = [n for n, schema in CLOUD_SCHEMAS.items() if key in schema.keys]
        sp.add_argument(f"--{key.replace('_', '-')}", dest=key, metavar=key.upper(),
                        help=f"{', '.join(clouds)}: {H.KEYS[key]}")  # fmt: skip
    for key in dict.fromkeys(k for s in CLOUD_SCHEMAS.values() for k in s.connector_keys):
        clouds = [n for n, schema in CLOUD_SCHEMAS.items() if key in schema.connector_keys]
        sp.add_argument(f"--{key.replace('_', '-')}", dest=key, metavar=key.upper(),
                        help=f"{', '.join(clouds)}: {H.KEYS[key]} (written into the file)")  # fmt: skip
    _common(sp)
    sp = _command(sub, "unlock", file="required")
    sp.add_argument("--network", metavar="NAME", help="only this network (default: every one)")
    _common(sp)
    sp = _command(sub, "bootstrap", file="required")
    sp.add_argument("--network", required=True, metavar="NAME", help="the network of the file")
    sp.add_argument("--script", action="store_true", help="the setup script alone")
    _common(sp)


def _sandbox_commands(sub: Any) -> None:
    """demo, and sandbox serve: the built-in fakes."""
    sp = _command(sub, "demo")
    sp.add_argument(
        "-v", "--verbose", action="store_true", help="every change of the plans, and progress"
    )
    _common(sp)
    sandbox = H.command("sandbox serve")
    sp = sub.add_parser(
        "sandbox", help=sandbox.help, description=H.wrapped(sandbox.text),
        usage=_usage("sandbox serve", False), formatter_class=RAW,
    )  # fmt: skip
    serve = _command(sp.add_subparsers(dest="action", metavar="ACTION", required=True),
                     "sandbox serve")  # fmt: skip
    serve.add_argument(
        "--dir", default=None,
        help="where to write the topology (default: a new temp directory; it is printed)",
    )  # fmt: skip
    serve.add_argument("--seconds", type=float, default=None, help="stop after this long")
    serve.add_argument(
        "-v", "--verbose", action="store_true", help="log every request the fakes answer"
    )
    _common(serve)


def _err(message: str) -> None:
    from .redact import clean

    print(clean(f"provision: {message}"), file=sys.stderr)


def _progress(message: str) -> None:
    # one write per line: networks report from several threads at once
    sys.stderr.write(f"  .. {message}\n")
    sys.stderr.flush()


def _confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def one_network_topology(args: argparse.Namespace) -> dict[str, Any]:
    """The one-network invocation, as the topology document it stands for."""
    if args.cloud is None:
        raise SpecError("--cloud", "is required (or use a subcommand; see --help)")
    connector: dict[str, Any] = {"subnet": args.connector_subnet, "profile": args.profile}
    for key in ("size", "image", "nat", "egress"):
        if getattr(args, key) is not None:
            connector[key] = getattr(args, key)
    schema = CLOUD_SCHEMAS.get(args.cloud)
    network: dict[str, Any] = {"cloud": args.cloud, "connector": connector}
    for key in schema.keys if schema else ():
        network[key] = getattr(args, key)
    for key in schema.network_keys if schema else ():
        value = getattr(args, key)
        if value is not None:
            network[key] = int(value) if value.isdigit() else value
    for key in schema.connector_keys if schema else ():
        if getattr(args, key) is not None:
            connector[key] = getattr(args, key)
    if args.subnet:
        network["subnets"] = args.subnet
    if args.route_table:
        network["route_tables"] = args.route_table
    if args.app_security_group:
        network["app_security_groups"] = [_app_group_flag(v) for v in args.app_security_group]
    networks: dict[str, Any] = {args.name: network}
    if args.peer:
        networks["peers"] = {"cloud": "external", "subnets": args.peer}
    doc: dict[str, Any] = {"version": 1, "networks": networks}
    if args.vpn_subnet:
        doc["vpn_subnet"] = args.vpn_subnet
    return doc


def _app_group_flag(value: str) -> str | dict[str, Any]:
    """`sg-1` or `sg-1:tcp/443,udp/53`, as the topology file writes it."""
    group, colon, ports = value.partition(":")
    if not colon:
        return value
    return {"group": group, "ports": ports.split(",")}


_FLAG_NAMES = {
    **{key: f"--{key.replace('_', '-')}" for key in (*LOCATION_KEYS, *CLOUD_KEYS)},
    **{f"connector.{key}": f"--{key.replace('_', '-')}" for key in CLOUD_KEYS},
    "connector.subnet": "--connector-subnet",
    "connector.profile": "--profile",
    "connector.size": "--size",
    "connector.image": "--image",
    "cloud": "--cloud",
    "route_tables": "--route-table",
    "app_security_groups": "--app-security-group",
}


def _flag_error(e: SpecError, name: str) -> SpecError:
    """Name the flag, not the topology field, in errors about the one-network form."""
    field = e.field
    for prefix in (f"networks.{name}.", "networks.peers."):
        if field.startswith(prefix):
            rest = field[len(prefix) :]
            if prefix == "networks.peers.":
                return SpecError(rest.replace("subnets", "--peer", 1), e.message)
            base = rest.split("[")[0]
            if base in _FLAG_NAMES:
                return SpecError(_FLAG_NAMES[base] + rest[len(base) :], e.message)
            if base == "subnets":
                return SpecError("--subnet" + rest[len(base) :], e.message)
    if field == f"networks.{name}":
        return SpecError("--name", e.message)
    return e


def run(argv: Sequence[str] | None = None) -> int:
    # a command loads the cloud SDKs' models (hundreds of thousands of objects that live to the
    # end) and frees what it makes by reference counting: the cyclic collector, run every 700
    # allocations, spent a fifth of a command's time walking the models again and again
    gc.set_threshold(max(gc.get_threshold()[0], 50_000), 20, 100)
    args = _parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    from .redact import secrets_from_environment

    secrets_from_environment()
    if not debug:
        # a cloud SDK's loggers that say at length what the provider says in one line (its
        # whole credential chain, as a warning before the error); --debug shows them
        import logging

        from .clouds import known

        for logger in (name for cloud in known().values() for name in cloud.quiet_loggers):
            logging.getLogger(logger).setLevel(logging.CRITICAL)
    try:
        return _dispatch(args)
    except ProvisionerError as e:
        if debug:
            _traceback()
        _err(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        # whoever read our output has gone (`provision status | head`): stop without a word,
        # as any tool in a pipe; what a change did is on stderr. The exit's flush of what is
        # left for the pipe would fail again: it goes nowhere
        _output_gone()
        return EXIT_PIPE
    except Exception as e:  # never a bare traceback without --debug
        if debug:
            _traceback()
        _err(f"unexpected error: {type(e).__name__}: {e} (run again with --debug for details)")
        return 1


EXIT_UNKNOWN = 5  # doctor: no flow dropped, but one could not be judged
EXIT_DRIFT = 6  # plan --detailed-exitcode: something to change
EXIT_PIPE = 141  # the reader of our output went away (128 + SIGPIPE, as a shell reports it)


def _output_gone() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind stdout: nothing to flush there
        pass


def _doctor_exit(reports: Sequence[Any], flow: str | None) -> int:
    """0 only when every flow is OK: 1 when one is DROPPED, 5 when one could not be judged,
    2 when --flow matched no flow at all."""
    from .model import Verdict

    verdicts = {r.verdict for r in reports}
    if Verdict.DROPPED in verdicts:
        return 1
    if Verdict.UNKNOWN in verdicts:
        return EXIT_UNKNOWN
    if not reports and flow:
        _err(f"--flow: {flow!r} matches no flow of the file")
        return 2
    return 0


def _service_deadline(text: str) -> None:
    """--service-deadline: bad input (exit 2) unless a positive number of seconds; it then
    stands for PROVISION_SERVICE_DEADLINE in this run."""
    import os

    from .cloudconnexa.pace import DEADLINE_VARIABLE
    from .limits import seconds

    os.environ[DEADLINE_VARIABLE] = str(seconds("--service-deadline", text, 0.0))


def _traceback() -> None:
    """--debug: the traceback, through the same redaction as every other line we print."""
    import traceback

    from .redact import clean

    print(clean(traceback.format_exc()), file=sys.stderr, end="")


def _without_a_file(args: argparse.Namespace) -> int:
    """The commands that read no topology: the demo, the sandbox, discover."""
    if args.command == "demo":
        from .sandbox import run_demo

        return run_demo(verbose=args.verbose)
    if args.command == "sandbox":
        from .sandbox import serve

        _FAST_EXIT.append(True)
        import tempfile

        where = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="provision-sandbox-"))
        return serve(where.resolve(), args.seconds, verbose=args.verbose)
    return _discover(args)


def _topology(args: argparse.Namespace) -> Any:
    """The file's topology (--file), or the one network of the flags (from --cloud on)."""
    from . import spec

    if args.file is not None:
        if args.cloud is not None:
            raise SpecError("--cloud", f"{args.cloud!r} given with --file: use one or the other")
        return spec.load_topology(args.file)
    if args.cloud is not None or args.command is None:
        doc = one_network_topology(args)
        try:
            return spec.parse_topology(doc, base=Path.cwd())
        except SpecError as e:
            raise _flag_error(e, args.name) from None
    raise SpecError("--file", "is required (or give one network's flags, from --cloud on)")


def _dispatch(args: argparse.Namespace) -> int:
    from . import api
    from .providers import Clouds

    if args.command in ("demo", "sandbox", "discover"):
        return _without_a_file(args)
    if args.command is None and args.cloud is None:
        # the program's name alone (or flags that name no network): its usage, as any tool's
        _parser().print_usage(sys.stderr)
        _err("a command is needed (plan, apply, status, doctor, destroy, rotate...): "
             "provision --help lists them")  # fmt: skip
        return 2
    command = args.command or "apply"  # the one-network flags with no command: apply (README)
    if getattr(args, "service_deadline", None) is not None:
        _service_deadline(args.service_deadline)
    as_json = bool(getattr(args, "json", False))
    if command in ("apply", "destroy", "rotate") and not args.yes and not sys.stdin.isatty():
        # bad input, found before any cloud is read: a script without --yes fails at once
        raise SpecError("--yes", "not given, and there is no terminal to confirm on")
    topology = _topology(args)
    if command == "bootstrap":
        deployment = api.Deployment(topology, Clouds(progress=_progress))
        print(deployment.bootstrap(args.network, script_only=args.script), end="")
        return 0
    if command in ("unlock", "force-unlock"):
        removed = api.Deployment(topology, Clouds(progress=_progress)).unlock(args.network)
        for name, holder in removed.items():
            print(f"{name}: " + (f"removed the lease of {holder.text()}" if holder else "no lease"))
        return 0

    live = None
    if command in ("apply", "destroy", "rotate") and sys.stderr.isatty():
        # on a terminal: one live line (done/total, elapsed, an estimate), the rest above it
        from .progress import LiveLine

        live = LiveLine(sys.stderr, command)
    clouds = Clouds(progress=live or _progress, meter=live)
    try:
        deployment = api.Deployment(topology, clouds)
        if command == "plan":
            return _plan(args, deployment, as_json)
        if command == "doctor":
            return _doctor(args, deployment, as_json)
        if command == "status":
            return _status(args, deployment, as_json)
        # shown: the live line ends before the result is printed after it
        return _change(
            command, args, deployment, as_json=as_json, shown=live.close if live else None
        )
    finally:
        if live is not None:
            live.close()


def _discover(args: argparse.Namespace) -> int:
    """One network as it is, printed as a topology file (stdout; progress on stderr)."""
    from . import spec
    from .discover import render
    from .providers import Clouds
    from .reading import placeholder

    schema = CLOUD_SCHEMAS.get(args.cloud)
    if schema is None:
        raise SpecError("--cloud", f"{args.cloud!r} is not one of {', '.join(CLOUD_SCHEMAS)}")
    raw = {k: getattr(args, k) for k in schema.keys if getattr(args, k, None) is not None}
    try:
        location = spec.parse_location(args.cloud, raw)
    except SpecError as e:
        raise SpecError(f"--{e.field.replace('_', '-')}", e.message) from None
    if args.profile is not None and not Path(args.profile).is_file():
        raise SpecError("--profile", f"{args.profile!r} is not a file")
    if args.service_cloud_id and not re.match(spec.CLOUD_ID_PATTERN, args.service_cloud_id):
        raise SpecError("--service-cloud-id", f"{args.service_cloud_id!r} is not a cloud id "
                        "(lower-case letters, digits and '-')")  # fmt: skip
    network = placeholder(args.name or "net", args.cloud, location)
    found = Clouds(progress=_progress).connect(network).discover(args.name)
    given = {k: getattr(args, k) for k in schema.connector_keys if getattr(args, k, None)}
    required = tuple(k for k, _, _ in schema.required_connector_keys if k not in given)
    service = None
    if args.service_cloud_id:
        from .cloudconnexa.client import api_from_environment
        from .discover import service_network

        service = service_network(api_from_environment(args.service_cloud_id, _progress),
                                  args.service_cloud_id, found.cidrs)  # fmt: skip
    print(render(found, args.profile, given, required, service), end="")
    return 0


def _plan(args: argparse.Namespace, deployment: Any, as_json: bool) -> int:
    from . import render

    plan = deployment.plan(
        replace_conflicting_routes=args.replace_conflicting_routes, prune=args.prune,
        roll=getattr(args, "roll", False), retire_old=getattr(args, "retire_old", False),
    )  # fmt: skip
    print(json.dumps(plan.to_dict(), indent=2) if as_json else render.plan_text(plan, args.verbose))
    if plan.conflicts or plan.overfull:
        return 3
    return EXIT_DRIFT if getattr(args, "detailed_exitcode", False) and not plan.empty else 0


def _doctor(args: argparse.Namespace, deployment: Any, as_json: bool) -> int:
    from . import render

    reports = deployment.doctor(args.flow)
    if as_json:
        doc = {
            "schema": "connector-provisioner/doctor",
            "version": 1,
            "flows": [r.to_dict() for r in reports],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(render.doctor_text(reports))
    return _doctor_exit(reports, args.flow)


def _status(args: argparse.Namespace, deployment: Any, as_json: bool) -> int:
    from . import render

    statuses = deployment.status()
    # an external site's profile, where apply writes it for its admin: there or not
    written = {
        n.name: (str(n.profile_out), n.profile_out.is_file())
        for n in deployment.topology.networks
        if n.profile_out is not None
    }
    if as_json:
        doc = {
            "schema": "connector-provisioner/status",
            "version": 1,
            "networks": [s.to_dict() for s in statuses],
            "profiles_out": [
                {"network": name, "path": path, "present": present}
                for name, (path, present) in written.items()
            ],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(render.status_text(statuses, verbose=args.verbose))
        for name, (path, present) in written.items():
            state = "written" if present else "MISSING: run apply to write it"
            print(f"network {name} (external): its connector's profile {path}: {state}")
    healthy = all(s.healthy for s in statuses)
    return 0 if healthy and all(present for _, present in written.values()) else 1


def _run_change(
    command: str,
    args: argparse.Namespace,
    deployment: Any,
    confirm: Callable[[Any], bool],
    show: Callable[[Any], None],
) -> Any:
    """The library's own sequence (api.Deployment) for apply, rotate or destroy, told how to
    show and ask."""
    if command == "destroy":
        return deployment.destroy(confirm=confirm, show=show)
    if command == "rotate":
        return deployment.rotate(getattr(args, "rotate_networks", None) or (),
                                 confirm=confirm, show=show)  # fmt: skip
    return deployment.apply(
        replace_conflicting_routes=args.replace_conflicting_routes, prune=args.prune,
        roll=getattr(args, "roll", False), retire_old=getattr(args, "retire_old", False),
        confirm=confirm, show=show,
    )  # fmt: skip


def _change(
    command: str,
    args: argparse.Namespace,
    deployment: Any,
    *,
    as_json: bool,
    shown: Callable[[], None] | None,
) -> int:
    """apply, rotate or destroy: the plan, a yes, the run under the networks' leases, and what
    was done and what was not (--json: all of it as one document)."""
    from . import api, render

    shown_plans: list[api.Plan] = []

    def show(plan: api.Plan) -> None:
        shown_plans.append(plan)
        if not as_json:
            print(render.plan_text(plan, verbose=args.verbose))

    def confirm(plan: api.Plan) -> bool:
        return _confirm(f"{command} these {len(plan.changes)} change(s)?", args.yes)

    done = 0
    # what the run did and did not do, for --json: each change as `network: summary`
    result: dict[str, Any] = {"done": [], "not_done": [], "error": None}
    try:
        made = _run_change(command, args, deployment, confirm, show).done
        done = len(made)
        result["done"] = [f"{c.network}: {c.summary()}" for c in made]
    except api.Declined:
        _err(f"{command} declined; nothing was changed")
        result["error"] = "declined; nothing was changed"
        return EXIT_DECLINED
    except CloudError as e:
        done = len(e.done)
        result.update(done=list(e.done), not_done=list(e.not_done), error=e.message)
        raise
    except ProvisionerError as e:
        result["error"] = str(e).splitlines()[0]
        raise
    finally:
        if shown is not None:
            shown()  # the live line ends before what follows it
        if as_json and shown_plans:  # one document: the plan, how much of it was carried
            failing = sys.exc_info()[1]  # out, and what; the error the run ends with, if any
            try:
                doc = {**shown_plans[0].to_dict(), "done": done, "result": result}
                print(json.dumps(doc, indent=2))
            except BrokenPipeError:
                if failing is None:
                    raise
                # the reader has gone: the error under way (said on stderr) stays the one
    plan = shown_plans[0]
    if not as_json and not plan.empty:  # an empty plan has said "nothing to do"
        print(render.result_text(plan, done))
    return 0


# `sandbox serve` held everything in memory: once it has said it stopped, the process ends at
# once instead of tearing down the SDKs' modules one by one (measured: 1.9 s of a 2.3 s stop)
_FAST_EXIT: list[bool] = []


def main() -> None:
    code = run()
    if _FAST_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
