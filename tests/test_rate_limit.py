"""CloudConnexa's rate limit as its support gives it: a token bucket per API credential, 20
calls at once and one more every 15 s, the state of the bucket on every answer and 429 when it
is empty. The fake keeps that bucket on a scaled clock (15 s of the service's time is 0.15 s
here); the client paces itself from the answers, so an apply of a hundred networks meets
almost no 429 and takes the bucket's own time."""

from __future__ import annotations

import time
from typing import Any

import yaml
from conftest import FIGURES

from provisioner import Deployment, load_topology
from provisioner.cloudconnexa.fake import (
    CloudConnexa,
    RateLimit,
)
from provisioner.providers import Clouds
from provisioner.providers.aws.world import sandbox_clouds
from provisioner.sandbox import SandboxWorld

SCALE = 1 / 100  # real seconds per second of the service's clock (15 s: 0.15 s here)


class Scaled:
    """The service's clock, run SCALE times real time; sleeping on it sleeps scaled."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def clock(self) -> float:
        return (time.monotonic() - self.t0) / SCALE

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) * SCALE)


def hundred_networks(world: SandboxWorld) -> Any:
    """HQ on AWS and 99 external sites, all new on the VPN service: 100 service networks."""
    doc = world.topology(service=True)
    hq = doc["networks"]["hq"]
    hq.pop("app_security_groups", None)
    hq["route_tables"] = [world.hq.route_tables[0]]
    doc["networks"] = {"hq": hq}
    for i in range(99):
        doc["networks"][f"site{i:02d}"] = {"cloud": "external", "subnets": [f"172.20.{i}.0/24"]}
    path = world.directory / "hundred.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_topology(path)


def test_a_hundred_networks_through_the_bucket_meet_no_failure_and_take_its_time(
    world: SandboxWorld, session: Any
):
    clock = Scaled()
    limit = RateLimit(burst=20, rate=1, period=15.0, clock=clock.clock)
    fake = CloudConnexa(rate_limit=limit)
    said: list[str] = []
    with fake.serve() as server:

        def clouds() -> Clouds:
            return sandbox_clouds(
                session, server.url, clock=clock.clock, sleep=clock.sleep, progress=said.append
            )

        topology = hundred_networks(world)
        plan = Deployment(topology, clouds()).plan()
        (service,) = [n for n in plan.networks if n.network == "cloudconnexa"]
        estimate = [x for x in service.notes if "rate limit" in x]
        assert estimate and "20 at once, 1 more every 15 s" in estimate[0], service.notes
        assert "100 change(s)" in estimate[0] and "min at that pace" in estimate[0], estimate
        Deployment(topology, clouds()).apply()  # raises if any call failed
        assert limit.first is not None and limit.last is not None
        spent = limit.last - limit.first  # the service half, first call to last
        calls = [c for c in fake.calls if c.kind not in ("oauth", "limit")]
        refused = limit.refused
        assert len(fake.snapshot()) == 100
        assert Deployment(topology, clouds()).plan().empty
    floor = max(0, len(calls) - limit.burst) * limit.period / limit.rate
    FIGURES["CloudConnexa rate limit, 100 new networks"] = (
        f"{len(calls)} calls, {refused} refused (429), {spent / 60:.1f} min of the service's time "
        f"against a floor of {floor / 60:.1f} min (burst 20, 1 per 15 s)"
    )
    assert refused <= 5, refused
    assert spent <= floor * 1.10, (spent, floor)
    assert any("rate limit" in line for line in said)  # the waits were said


def test_the_wait_stops_at_the_runs_deadline():
    """A run waits for the limit at most its deadline in all (PROVISION_SERVICE_DEADLINE or
    --service-deadline): the call that would wait past it stops the run with one line."""
    import pytest

    from provisioner.cloudconnexa.pace import Pace
    from provisioner.errors import CloudError

    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = Pace(clock=lambda: now[0], sleep=sleep, deadline=30.0)
    headers = {"x-ratelimit-burst-capacity": "2", "x-ratelimit-replenish-rate": "1",
               "x-ratelimit-replenish-time": "15", "x-ratelimit-remaining": "0"}  # fmt: skip
    pace.before("GET /networks")  # before the API has said anything: no wait
    pace.after(headers)
    pace.before("POST /networks")  # the next token in 15 s
    pace.before("POST /networks")  # and the one after: 15 s more, 30 s in all
    with pytest.raises(CloudError) as stopped:
        pace.before("POST /networks")
    assert slept == [15.0, 15.0]
    assert "past the run's deadline of 30 s (PROVISION_SERVICE_DEADLINE)" in str(stopped.value)


def test_a_service_deadline_that_is_no_time_is_bad_input(world: SandboxWorld, capsys):
    from provisioner.cli import run

    path = str(world.write_topology())
    assert run(["apply", "-f", path, "--yes", "--service-deadline", "soon"]) == 2
    assert "--service-deadline: 'soon' is not a number of seconds" in capsys.readouterr().err
