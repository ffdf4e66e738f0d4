"""The built-in sandbox: each cloud's fake, seeded with the seed document's world (HQ and
Branch, a hub on each other cloud) by the cloud's own package (`Cloud.sandbox`), and a fake
CloudConnexa, so `provision demo` shows the whole job without a cloud account. The tests use
the same world.

Nothing here can reach a real cloud: each fake answers in this process or on 127.0.0.1, and
every client is pointed there with fake credentials.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .fakeserver import FAKE_PROFILE, VPN_REGION, SandboxPart, SandboxWorld

__all__ = ["FAKE_PROFILE", "VPN_REGION", "SandboxPart", "SandboxWorld", "sandbox", "run_demo"]

SERVICE_VARIABLES = ("CLOUDCONNEXA_API_URL", "CLOUDCONNEXA_CLIENT_ID", "CLOUDCONNEXA_CLIENT_SECRET")


@contextlib.contextmanager
def world_of(
    directory: Path, served: bool = False, verbose: bool = False, **service: Any
) -> Iterator[tuple[SandboxWorld, Any]]:
    """Every cloud's part of the sandbox (in the clouds' order) and the fake CloudConnexa
    (`service`: its options), with the world they seeded; the environment that points
    clients at them set meanwhile, as it was after."""
    from . import clouds
    from .cloudconnexa.fake import CloudConnexa

    with contextlib.ExitStack() as stack:
        world = SandboxWorld(directory)
        for cloud in clouds.known().values():
            if cloud.sandbox:
                part = clouds.load(cloud.sandbox)(directory, served=served, verbose=verbose)
                world.parts[cloud.name] = stack.enter_context(part)
        server = stack.enter_context(
            CloudConnexa(online_with_profile=True, **service).serve(log=verbose)
        )
        world.service_url = server.url
        exports = {k: v for p in world.parts.values() for k, v in p.exports.items()}
        exports.update(service_exports(server.url))
        before = {name: os.environ.get(name) for name in exports}
        os.environ.update(exports)
        try:
            yield world, server
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@contextlib.contextmanager
def sandbox(keep: bool = False) -> Iterator[SandboxWorld]:
    """The sandbox's world in fakes in this process and on 127.0.0.1, and a scratch directory
    for topology files (`keep`: left where it is, for the user to read; else removed)."""
    with contextlib.ExitStack() as stack:
        if keep:
            tmp = tempfile.mkdtemp(prefix="provision-demo-")
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="provision-demo-"))
        try:
            world, _ = stack.enter_context(world_of(Path(tmp)))
        except ModuleNotFoundError as e:  # pragma: no cover - depends on the install
            from .errors import SpecError

            raise SpecError(
                "demo",
                f"the sandbox needs its extra ({e.name} is not installed): pip install "
                "'connector-provisioner[sandbox]'",
            ) from None
        yield world


def service_exports(url: str) -> dict[str, str]:
    """What points the CLI at the fake CloudConnexa: its URL and the sandbox's credentials."""
    from .cloudconnexa.fake import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    return dict(
        zip(SERVICE_VARIABLES, (url, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), strict=True)
    )


def _say(message: str) -> None:
    sys.stdout.write(f"  .. {message}\n")  # one write: networks report side by side
    sys.stdout.flush()


def _say_briefly(message: str) -> None:
    """Progress without the one line per change (`[12/133 4s] hq: create route ...`)."""
    if not re.match(r"^\[\d+/\d+ \d+s\] ", message):
        _say(message)


def run_demo(verbose: bool = False) -> int:
    """plan -> apply -> status -> re-plan -> destroy, printed as the CLI prints them."""
    from . import api, render, spec
    from . import clouds as registry
    from .model import ApplyResult
    from .providers import Clouds

    def step(title: str) -> None:
        print(f"\n=== {title}")

    def done(result: ApplyResult) -> None:
        print(render.result_text(result.plan, len(result.done)))

    with sandbox(keep=True) as world:
        path = world.write_topology(partner=True, service=True)
        # Branch already has a connector, made by hand from the VPN service's guide: the plan
        # takes it over (ours beside it, its routes moved to ours)
        b = world.branch
        part = world.parts[world.cloud_of(b.name)]
        assert part.hand_made is not None and part.location_of is not None
        made = part.hand_made(b, [world.hq.cidr, "172.31.0.0/16"])
        title = registry.known()[part.cloud].title
        print(
            f"Sandbox: fake clouds holding HQ and Branch on {title} and a hub on each other cloud, "
            "and a fake CloudConnexa (the VPN service's half, from the same file):"
        )
        for line in world.describe():
            print(f"  {line}")
        print(f"  branch already has a connector made by hand: {made.instance} "
              f"({made.interface}), its routes to it")  # fmt: skip
        topology = spec.load_topology(path)
        clouds = Clouds(
            options={name: part.options for name, part in world.parts.items()},
            progress=_say if verbose else _say_briefly,
        )
        deployment = api.Deployment(topology, clouds)
        more = "" if verbose else "   (grouped; every change: provision demo --verbose)"

        location = part.location_of(b)
        flags = " ".join(f"--{k} {v}" for k, v in _placed(location).items())
        step(f"provision discover --cloud {part.cloud} {flags} --name {b.name}")
        print(_discovered(clouds, b.name, part.cloud, location), end="")
        print("(the demo's topology names Branch the same way: its plan takes that connector "
              "over)")  # fmt: skip

        step(f"provision plan -f topology.yaml{more}")
        print(render.plan_text(deployment.plan(), verbose=verbose))
        step("provision apply -f topology.yaml --yes")
        done(deployment.apply())
        step("provision status -f topology.yaml")
        applied = deployment.status()
        print(render.status_text(applied))
        step("provision plan -f topology.yaml   (again: nothing to do)")
        print(render.plan_text(deployment.plan(), verbose=verbose))
        step("provision destroy -f topology.yaml --yes")
        done(deployment.destroy())
        step("provision status -f topology.yaml   (after destroy)")
        after = deployment.status()
        print(render.status_text(after))
        healthy = all(s.healthy for s in applied)
        clean = all(s.nothing_of_ours for s in after)
    print(_ending(healthy, clean, world.directory))
    return 0 if healthy and clean else 1


def _ending(healthy: bool, clean: bool, kept: Path) -> str:
    """The demo's last words: whether it ended as it should."""
    return (
        "\nThe demo "
        + ("planned, applied, checked, re-planned (nothing to do) and destroyed both halves: "
           "every network was healthy after apply, and nothing of ours was left after destroy."
           if healthy and clean else
           "did NOT end as it should: " + ("a network was not healthy after apply; "
                                           if not healthy else "")
           + ("something of ours was left after destroy" if not clean else "")
           + " (see above).")
        + f" The sandbox is gone; its topology stays, {kept / 'topology.yaml'}; no cloud "
        "account was used."
    )  # fmt: skip


def _placed(location: Any) -> dict[str, str]:
    """A location's fields that say where it is, as `provision discover` takes them."""
    from dataclasses import fields

    return {
        f.name.replace("_", "-"): getattr(location, f.name) for f in fields(location) if f.compare
    }


def _discovered(clouds: Any, name: str, cloud: str, location: Any) -> str:
    """What `provision discover` prints for one of the sandbox's networks."""
    from .discover import render
    from .reading import placeholder

    return render(clouds.connect(placeholder(name, cloud, location)).discover(name), None)


def serve(directory: Path, seconds: float | None = None, verbose: bool = False) -> int:
    """Every cloud's fake on 127.0.0.1, seeded with the sandbox's world: prints the `export`
    lines that point the CLI (or any SDK client) at them, one line per fake, the seeded
    networks and a topology file of them, then serves until Ctrl-C or SIGTERM (or for
    `seconds`). Requests are logged (to stderr) only when `verbose`."""
    import logging
    import signal
    import threading

    from .cloudconnexa.fake import RateLimit

    # the fakes' servers log every request (moto's through werkzeug): only with --verbose
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.ERROR)
    if verbose:
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
    directory.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    stopped_by: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # the service's kind of rate limit, which a user sees in every answer's headers and in
    # plan's note, at 10 calls a second where the service gives 1 per 15 s
    limit = RateLimit(burst=20, rate=10, period=1.0)
    with world_of(directory, served=True, verbose=verbose, rate_limit=limit) as (world, service):
        path = world.write_topology(partner=True, service=True)
        print("# fake clouds on 127.0.0.1 (no account, nothing leaves this machine):")
        for name, part in world.parts.items():
            print(f"#   {name:<6} {part.served}")
        print(
            f"#   cloudconnexa {service.url}  the VPN service's API v1 (cloud_id sandbox, "
            f"VPN region {VPN_REGION})"
        )
        print("# paste these lines into your shell:")
        for part in world.parts.values():
            print(" ".join(["export", *(f"{k}={v}" for k, v in part.exports.items())]))
        exports = service_exports(service.url)
        print(" ".join(["export", *(f"{k}={v}" for k, v in exports.items())]))
        print("# seeded networks:")
        for line in world.describe():
            print(f"#   {line}")
        print(f"# a topology of them: provision plan -f {path}")
        print("# serving until Ctrl-C" + ("" if verbose else " (requests: --verbose)"))
        sys.stdout.flush()
        stop.wait(seconds)
    why = f" ({stopped_by[0]})" if stopped_by else f" after {seconds:g} s" if seconds else ""
    print(f"sandbox stopped{why}; what it held is gone", file=sys.stderr)
    return 0
