"""`provision`: the command-line face. Parses, calls the library, renders. No logic of its own.

Exit codes: 0 done, 1 cloud error or declined, 2 bad input, 3 conflicting routes refused.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _one_network_flags(p: argparse.ArgumentParser) -> None:
    """The flags that stand for a one-network topology: on `provision` itself (behaves like
    apply) and on plan, apply, status and destroy instead of `-f`."""
    one = p.add_argument_group("one network without a topology file")
    one.add_argument("--cloud", help=", ".join(CLOUD_SCHEMAS))
    one.add_argument("--name", default="net", help="the network's name (default: net)")
    for key in LOCATION_KEYS:  # where the network is: the keys of its cloud in the file
        one.add_argument(f"--{key.replace('_', '-')}", dest=key, metavar=key.upper())
    for key in CLOUD_KEYS:  # settings of one cloud alone (GCP's route priority, OCI's vault...)
        one.add_argument(f"--{key.replace('_', '-')}", dest=key, metavar=key.upper())
    one.add_argument("--connector-subnet", help="subnet id for the connector VM")
    one.add_argument(
        "--subnet", action="append", default=[], help="a subnet this network offers (repeat)"
    )
    one.add_argument(
        "--peer", action="append", default=[], help="a subnet of another network (repeat)"
    )
    one.add_argument(
        "--route-table", action="append", default=[], help="route table id (repeat; default: all)"
    )
    one.add_argument(
        "--app-security-group",
        action="append",
        default=[],
        metavar="GROUP[:PORTS]",
        help="admits the connector's traffic; PORTS like tcp/443,udp/53 (default all; repeat)",
    )
    one.add_argument("--size", help="instance type (default t3.small)")
    one.add_argument("--image", help="image id (default: current Ubuntu LTS)")
    one.add_argument("--nat", action="store_true", default=None, help="MASQUERADE on the connector")
    one.add_argument("--egress", action="store_true", default=None, help="the VPN's internet exit")
    one.add_argument("--profile", help="VPN profile file for the connector (a secret)")
    one.add_argument("--vpn-subnet", help="the VPN's client range (default 100.96.0.0/11)")


ONE_NETWORK_EPILOG = (
    "One network without a file: provision [plan|apply|status|destroy] --cloud aws --region R "
    "--vpc V --connector-subnet S --subnet 10.0.0.0/18 --peer 192.168.0.0/22 --profile hq.ovpn "
    "[--nat] [--egress] [--app-security-group SG] [--yes] (without a command: apply)"
)


ROLL_HELP = (
    "connectors on the cloud's default image take its newest release (each made before the "
    "old one goes); without it a new release replaces nothing (status says when there is one)"
)
ROTATE_HELP = (
    "A new VPN profile for each connector of the file (or of --network), handed over without "
    "an outage. With the service block: a new connector on the VPN service per connector VM, "
    "its profile stored in the cloud's secret store for a VM made beside the old one (a pair: "
    "one member at a time); the routes move once the service says the new connector is "
    "ONLINE; the old VM goes, then the old connector, which revokes its profile. With a "
    "profile file: put the new profile in place of the old one first; rotate takes it the "
    "same way. The rest of the file is applied too, as by apply. The profile never leaves the "
    "secret store."
)
FLOW_HELP = (
    "one flow: SOURCE is vpn, internet, a network of the file (external sites too) or an "
    "address or range; NETWORK a network of the file, vpn (the apps' own connections to VPN "
    "clients) or internet (egress); HOST any address of the network (in an app group or not) "
    "or GROUP an app group; PORTS e.g. tcp/443 (e.g. vpn->hq:10.0.1.5:tcp/443). Without "
    "'->': the flows whose name contains the text. Exit 2 when it matches no flow"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="provision",
        description="Put a VPN connector into a cloud network and route the network through it.",
        epilog=ONE_NETWORK_EPILOG,
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version="connector-provisioner 0.1.0")
    _one_network_flags(p)
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--replace-conflicting-routes", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="every change on its own line")
    p.set_defaults(file=None, json=False, prune=False)

    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_file(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, epilog=ONE_NETWORK_EPILOG)
        sp.add_argument(
            "-f", "--file", help="topology file (YAML, version 1); or one network's flags below"
        )
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
        _one_network_flags(sp)
        return sp

    verbose_help = "every change on its own line with its why (default: grouped)"
    prune_help = "also remove our networks on the VPN service that left the file"
    sp = with_file("plan", "show what apply would change; touches nothing")
    sp.add_argument("--json", action="store_true", help="the plan as JSON (schema in README)")
    sp.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    sp.add_argument("--replace-conflicting-routes", action="store_true")
    sp.add_argument("--prune", action="store_true", help=prune_help)
    sp.add_argument("--roll", action="store_true", help=ROLL_HELP)
    deadline_help = (
        "the longest the run may wait for the VPN service's rate limit, in all (seconds; "
        "default 3600, or PROVISION_SERVICE_DEADLINE)"
    )
    sp = with_file("apply", "plan, confirm, and make the networks route through their connectors")
    sp.add_argument("--service-deadline", type=str, metavar="SECONDS", help=deadline_help)
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    sp.add_argument("--json", action="store_true", help="print the plan and result as JSON")
    sp.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    sp.add_argument("--replace-conflicting-routes", action="store_true")
    sp.add_argument("--prune", action="store_true", help=prune_help)
    sp.add_argument("--roll", action="store_true", help=ROLL_HELP)
    sp = sub.add_parser(
        "rotate",
        help="a new VPN profile for each connector, handed over without an outage (plan, "
        "confirm, apply)",
        description=ROTATE_HELP,
    )
    sp.add_argument("-f", "--file", required=True, help="topology file (YAML, version 1)")
    sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    sp.add_argument(
        "--network", action="append", metavar="NAME", dest="rotate_networks",
        help="only this network's connectors (again for more; default: every managed network)",
    )  # fmt: skip
    sp.add_argument("--service-deadline", type=str, metavar="SECONDS", help=deadline_help)
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    sp.add_argument("--json", action="store_true", help="print the plan and result as JSON")
    sp.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    sp.add_argument("--replace-conflicting-routes", action="store_true")
    sp = with_file("destroy", "remove what apply created, and nothing else")
    sp.add_argument("--service-deadline", type=str, metavar="SECONDS", help=deadline_help)
    sp.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    sp = with_file("status", "per network: the connector, forwarding, and the routes")
    sp.add_argument("--json", action="store_true")
    sp = with_file(
        "doctor", "trace every flow hop by hop through routes and filters; touches nothing"
    )
    sp.add_argument("--flow", metavar="SOURCE->NETWORK[:HOST|GROUP][:PORTS]", help=FLOW_HELP)
    sp.add_argument("--json", action="store_true")
    sp = sub.add_parser(
        "unlock",
        aliases=["force-unlock"],
        help="remove a network's lease left by a run that is gone (as terraform force-unlock)",
        description=(
            "Remove the lease each managed network (or --network) carries while an apply or "
            "destroy runs on it: for a run that crashed or was killed (a lease also expires by "
            "itself after an hour). Removing the lease of a run still going lets a second run "
            "change the network at the same time."
        ),
    )
    sp.add_argument("-f", "--file", required=True, help="topology file (YAML, version 1)")
    sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    sp.add_argument("--network", help="only this network (default: every managed one)")
    sp = sub.add_parser(
        "bootstrap",
        help="print a connector's cloud-init user-data (never the profile)",
        description="print a connector's cloud-init user-data (never the profile)",
    )
    sp.add_argument("-f", "--file", required=True, help="topology file (YAML, version 1)")
    sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    sp.add_argument("--network", required=True, help="the network's name in the file")
    sp.add_argument("--script", action="store_true", help="print the setup script alone")
    sp = sub.add_parser(
        "demo",
        help="plan, apply, status, destroy against the built-in sandbox",
        description="plan, apply, status, destroy against the built-in sandbox",
    )
    sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    sp.add_argument(
        "-v", "--verbose", action="store_true", help="every change of the plans and progress"
    )
    sp = sub.add_parser(
        "sandbox", help="the built-in fake clouds", description="the built-in fake clouds"
    )
    actions = sp.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="run every cloud's fake on 127.0.0.1 until Ctrl-C",
        description=(
            "Run every cloud's fake on 127.0.0.1, seeded with the sandbox's networks: prints the "
            "export lines that point the CLI and each cloud's SDK at them, and a topology file."
        ),
    )
    serve.add_argument("--dir", default="provision-sandbox", help="where to write the topology")
    serve.add_argument("--seconds", type=float, default=None, help="stop after this long")
    serve.add_argument(
        "-v", "--verbose", action="store_true", help="log every request the fakes answer"
    )
    serve.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    return p


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
        # azure-identity logs its whole credential chain (a dozen lines) as a warning before
        # the error the provider turns into one line; --debug shows it
        import logging

        logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
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
    except Exception as e:  # never a bare traceback without --debug
        if debug:
            _traceback()
        _err(f"unexpected error: {type(e).__name__}: {e} (run again with --debug for details)")
        return 1


EXIT_UNKNOWN = 5  # doctor: no flow dropped, but one could not be judged


def _doctor_exit(reports: Sequence[Any], flow: str | None) -> int:
    """0 only when every flow is OK: 1 when one is DROPPED, 5 when one could not be judged,
    2 when --flow matched no flow at all."""
    verdicts = {r.verdict for r in reports}
    if "DROPPED" in verdicts:
        return 1
    if "UNKNOWN" in verdicts:
        return EXIT_UNKNOWN
    if not reports and flow:
        _err(f"--flow: {flow!r} matches no flow of the file")
        return 2
    return 0


def _service_deadline(text: str) -> None:
    """--service-deadline: bad input (exit 2) unless a positive number of seconds; it then
    stands for PROVISION_SERVICE_DEADLINE in this run."""
    import os

    from .limits import seconds
    from .pace import DEADLINE_VARIABLE

    os.environ[DEADLINE_VARIABLE] = str(seconds("--service-deadline", text, 0.0))


def _traceback() -> None:
    """--debug: the traceback, through the same redaction as every other line we print."""
    import traceback

    from .redact import clean

    print(clean(traceback.format_exc()), file=sys.stderr, end="")


def _dispatch(args: argparse.Namespace) -> int:
    from . import api, render, spec
    from .providers import Clouds

    if args.command == "demo":
        from .sandbox import run_demo

        return run_demo(verbose=args.verbose)
    if args.command == "sandbox":
        from .sandbox import serve

        _FAST_EXIT.append(True)
        return serve(Path(args.dir).resolve(), args.seconds, verbose=args.verbose)

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
    if args.file is not None:
        if args.cloud is not None:
            raise SpecError("--cloud", f"{args.cloud!r} given with --file: use one or the other")
        topology = spec.load_topology(args.file)
    elif args.cloud is not None or args.command is None:
        doc = one_network_topology(args)
        try:
            topology = spec.parse_topology(doc, base=Path.cwd())
        except SpecError as e:
            raise _flag_error(e, args.name) from None
    else:
        raise SpecError("--file", "is required (or give one network's flags, from --cloud on)")

    if command == "bootstrap":
        deployment = api.Deployment(topology, Clouds(progress=_progress))
        print(deployment.bootstrap(args.network, script_only=args.script), end="")
        return 0
    if command in ("unlock", "force-unlock"):
        removed = api.Deployment(topology, Clouds(progress=_progress)).unlock(args.network)
        for name, holder in removed.items():
            print(f"{name}: " + (f"removed the lease of {holder.text()}" if holder else "no lease"))
        return 0

    deployment = api.Deployment(topology, Clouds(progress=_progress))
    if command == "plan":
        plan = deployment.plan(
            replace_conflicting_routes=args.replace_conflicting_routes, prune=args.prune,
            roll=getattr(args, "roll", False),
        )  # fmt: skip
        text = render.plan_text(plan, verbose=args.verbose)
        print(json.dumps(plan.to_dict(), indent=2) if as_json else text)
        return 3 if plan.conflicts else 0
    if command == "doctor":
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
    if command == "status":
        statuses = deployment.status()
        # an external site's profile, where apply writes it for its admin: there or not
        written = {
            n.name: (str(n.profile_out), n.profile_out.is_file())
            for n in topology.networks
            if n.profile_out is not None
        }
        if as_json:
            print(
                json.dumps(
                    {
                        "schema": "connector-provisioner/status",
                        "version": 1,
                        "networks": [s.to_dict() for s in statuses],
                        "profiles_out": [
                            {"network": name, "path": path, "present": present}
                            for name, (path, present) in written.items()
                        ],
                    },
                    indent=2,
                )
            )
        else:
            print(render.status_text(statuses))
            for name, (path, present) in written.items():
                state = "written" if present else "MISSING: run apply to write it"
                print(f"network {name} (external): its connector's profile {path}: {state}")
        healthy = all(s.healthy for s in statuses)
        return 0 if healthy and all(present for _, present in written.values()) else 1

    rotating = tuple(getattr(args, "rotate_networks", None) or (n.name for n in topology.managed))

    def again() -> api.Plan:
        if command in ("apply", "rotate"):
            return deployment.plan(
                replace_conflicting_routes=args.replace_conflicting_routes, prune=args.prune,
                roll=getattr(args, "roll", False),
                rotate=rotating if command == "rotate" else (),
            )  # fmt: skip
        return deployment.plan_destroy()

    plan = again()
    if not as_json:
        print(render.plan_text(plan, verbose=args.verbose))
    done = 0
    # what the run did and did not do, for --json: each change as `network: summary`
    result: dict[str, Any] = {"done": [], "not_done": [], "error": None}
    try:
        if plan.conflicts:
            deployment.execute(plan)  # raises ConflictError: nothing changed
        if not plan.empty:
            if not _confirm(f"{command} these {len(plan.changes)} change(s)?", args.yes):
                _err(f"{command} declined; nothing was changed")
                result["error"] = "declined; nothing was changed"
                return EXIT_DECLINED
            made = deployment.execute_leased(plan, again, shown=True).done
            done = len(made)
            result["done"] = [f"{c.network}: {c.summary()}" for c in made]
    except CloudError as e:
        done = len(e.done)
        result.update(done=list(e.done), not_done=list(e.not_done), error=e.message)
        raise
    except ProvisionerError as e:
        result["error"] = str(e).splitlines()[0]
        raise
    finally:
        if as_json:  # one document: the plan, how much of it was carried out, and what
            print(json.dumps({**plan.to_dict(), "done": done, "result": result}, indent=2))
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
