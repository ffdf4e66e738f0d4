"""How a plan is carried out (provisioner/engine.py), against moto through the real boto3:
networks side by side, a network's steps in order with its routes and rules at once (bounded),
a failure that stops everything with an honest account of what was done, readable progress."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from conftest import FORBIDDEN, deployment, error_response, inject, snapshot
from test_aws import routes_of

from provisioner import CloudError, Clouds
from provisioner.cli import run
from provisioner.sandbox import SandboxWorld


def region_of(kwargs: dict[str, Any]) -> str:
    """The region a before-send request goes to, from its endpoint."""
    return re.search(r"\.([a-z]{2}-[a-z]+-\d)\.", kwargs["request"].url).group(1)  # type: ignore[union-attr]


def operation_of(kwargs: dict[str, Any]) -> str:
    return str(kwargs["event_name"]).rsplit(".", 1)[-1]


def test_networks_are_launched_side_by_side(session, world: SandboxWorld, clouds: Clouds):
    """HQ's launch waits until Branch's has started: one after the other, it never would."""
    started = {"us-east-1": threading.Event(), "us-west-2": threading.Event()}
    overlapped: list[bool] = []

    def launch(**kwargs: Any) -> None:
        region = region_of(kwargs)
        started[region].set()
        other = next(r for r in started if r != region)
        overlapped.append(started[other].wait(timeout=20))

    session.events.register("before-send.ec2.RunInstances", launch)
    deployment(world, clouds).apply()
    assert overlapped == [True, True]


def test_a_networks_routes_and_rules_run_at_once_after_its_connector(
    session, world: SandboxWorld, clouds: Clouds
):
    lock = threading.Lock()
    in_flight = {"now": 0, "most": 0}
    order: list[tuple[str, str]] = []

    def before(**kwargs: Any) -> None:
        name = operation_of(kwargs)
        with lock:
            order.append((region_of(kwargs), name))
            if name in ("CreateRoute", "AuthorizeSecurityGroupIngress"):
                in_flight["now"] += 1
                in_flight["most"] = max(in_flight["most"], in_flight["now"])
        if name == "CreateRoute":
            time.sleep(0.02)  # long enough for the others of its step to start

    def after(**kwargs: Any) -> None:
        if kwargs["model"].name in ("CreateRoute", "AuthorizeSecurityGroupIngress"):
            with lock:
                in_flight["now"] -= 1

    session.events.register("before-send.ec2", before)
    session.events.register("after-call.ec2", after)
    deployment(world, clouds).apply()
    # bounded: AWS allows 8 calls at once per region; the two regions have their own
    assert 2 <= in_flight["most"] <= 16
    for region in ("us-east-1", "us-west-2"):
        calls = [name for r, name in order if r == region]
        # the plan's order holds where it must: the VM and its forwarding flag first
        first_route = calls.index("CreateRoute")
        assert calls.index("RunInstances") < calls.index("ModifyNetworkInterfaceAttribute")
        assert calls.index("ModifyNetworkInterfaceAttribute") < first_route


def test_one_at_a_time_when_asked(session, world: SandboxWorld):
    clouds = Clouds(
        options={"aws": {"session": session, "poll_seconds": 0.0}},
        concurrency={"aws": 1},
        networks_at_once=1,
    )
    lock = threading.Lock()
    in_flight = {"now": 0, "most": 0}

    def before(**_: Any) -> None:
        with lock:
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])

    def after(**_: Any) -> None:
        with lock:
            in_flight["now"] -= 1

    session.events.register("before-send.ec2.CreateRoute", before)
    session.events.register("after-call.ec2.CreateRoute", after)
    deployment(world, clouds).apply()
    assert in_flight["most"] == 1


def test_a_failure_stops_every_network_and_says_truly_what_was_done(
    session, world: SandboxWorld, clouds: Clouds
):
    before = snapshot(session)
    # Branch's third route is refused; HQ is mid-way through its own routes then
    inject(session, "ec2", "CreateRoute", lambda: error_response("ec2", *FORBIDDEN["ec2"]), after=2)
    with pytest.raises(CloudError) as failed:
        deployment(world, clouds).apply()
    error = failed.value
    assert "UnauthorizedOperation" in error.message
    assert error.done and error.not_done
    # every route the error calls done is in its table, every one it calls not done is not
    for summaries, present in ((error.done, True), (error.not_done, False)):
        for line in summaries:
            m = re.match(r"(\w+): create route (\S+) -> \S+ in (\S+)", line)
            if m:
                network, destination, table = m.groups()
                region = "us-east-1" if network == "hq" else "us-west-2"
                assert (destination in routes_of(session, region, table)) is present, line
    # the next apply finishes the job, destroy leaves the account as it was
    deployment(world, clouds).apply()
    assert all(s.healthy for s in deployment(world, clouds).status())
    deployment(world, clouds).destroy()
    assert snapshot(session) == before


def test_progress_counts_every_change_once_tagged_by_network(world: SandboxWorld, capsys):
    path = world.write_topology(partner=True)
    assert run(["apply", "-f", str(path), "--yes"]) == 0
    err = capsys.readouterr().err
    counted = re.findall(r"\[(\d+)/(\d+) \d+s\] (hq|branch): ", err)
    total = int(counted[0][1])
    assert sorted(int(k) for k, _, _ in counted) == list(range(1, total + 1))
    assert {n for _, _, n in counted} == {"hq", "branch"}
    # what a provider says while it works is tagged too
    assert re.search(r"^  \.\. (hq|branch): launched i-", err, re.M)


INTERRUPTED_RUN = """
import sys, time
from pathlib import Path
import botocore.handlers
from provisioner import Clouds, Deployment, load_topology
from provisioner.cli import run
from moto import mock_aws
from provisioner.providers.aws.world import fake_session, seed_world, serialize_moto

# every write of the first apply takes a while, as on a cloud, so that Ctrl-C lands mid-way
slow = [False]
botocore.handlers.BUILTIN_HANDLERS.append(
    ("before-send", lambda event_name, **_: time.sleep(0.3) if slow[0] and not event_name.split(".")[-1].startswith(("Describe", "Get", "List")) else None)
)
serialize_moto()
with mock_aws():  # the seed's HQ and Branch on AWS: what the engine runs side by side
    world = seed_world(fake_session(), Path.cwd())
    path = world.write_topology()
    slow[0] = True
    print("FIRST", run(["apply", "-f", str(path), "--yes"]), flush=True)
    slow[0] = False  # what follows needs no Ctrl-C: at full speed
    print("SECOND", run(["apply", "-f", str(path), "--yes"]), flush=True)
    print("EMPTY", Deployment(load_topology(path), Clouds()).plan().empty, flush=True)
"""


@pytest.mark.long
def test_ctrl_c_lets_calls_under_way_finish_and_the_next_apply_completes(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_RUN],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        # Ctrl-C is what is tested: not ignored, even when this test runs in the background
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if re.search(r"\[3/\d+ \d+s\]", line):
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    out = "".join(lines) + rest
    assert "FIRST 130" in out, out
    assert "apply stopped after" in out and "interrupted" in out
    assert "not done (" in out and "Traceback" not in out
    assert "SECOND 0" in out and "EMPTY True" in out
