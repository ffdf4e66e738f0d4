"""Faults injected through botocore's own before-send hook, so the SDK's retries and our
error paths run for real: throttling is retried; a failure at any mutating step leaves a
state that the next apply completes and destroy cleans, and says what was and was not done."""

from __future__ import annotations

import pytest
from conftest import FORBIDDEN, CallLog, deployment, error_response, inject, snapshot

from provisioner import CloudError

# every mutating call a first apply makes, in order (service, operation, attempts let through)
APPLY_STEPS = [
    ("ssm", "PutParameter", 2),  # a profile (the first two: the leases of hq and branch)
    ("iam", "CreateRole", 0),
    ("iam", "PutRolePolicy", 0),
    ("iam", "CreateInstanceProfile", 0),
    ("iam", "AddRoleToInstanceProfile", 0),
    ("ec2", "CreateSecurityGroup", 0),
    ("ec2", "RunInstances", 0),
    ("ec2", "ModifyNetworkInterfaceAttribute", 0),
    ("ec2", "AuthorizeSecurityGroupIngress", 0),  # the connector group's own ingress
    ("ec2", "AuthorizeSecurityGroupIngress", 1),  # the app group admitting the connector
    ("ec2", "CreateRoute", 0),
    ("ec2", "CreateRoute", 5),  # half-way through the route tables
    ("ec2", "RunInstances", 1),  # the second network's connector
]
DESTROY_STEPS = [
    ("ec2", "DeleteRoute", 3),
    ("ec2", "RevokeSecurityGroupIngress", 0),
    ("ec2", "TerminateInstances", 0),
    ("ec2", "DeleteSecurityGroup", 0),
    ("iam", "RemoveRoleFromInstanceProfile", 0),
    ("iam", "DeleteInstanceProfile", 0),
    ("iam", "DeleteRolePolicy", 0),
    ("iam", "DeleteRole", 0),
    ("ssm", "DeleteParameter", 0),
]


def _forbidden(service: str):
    return lambda: error_response(service, *FORBIDDEN[service])


@pytest.mark.slow
@pytest.mark.parametrize(
    "service, operation, after", APPLY_STEPS, ids=[f"{o}#{a}" for _, o, a in APPLY_STEPS]
)
def test_failure_at_each_apply_step_is_finished_by_apply_and_cleaned_by_destroy(
    service, operation, after, session, world, clouds
):
    before = snapshot(session)
    served = inject(session, service, operation, _forbidden(service), after=after)
    with pytest.raises(CloudError) as failed:
        deployment(world, clouds, partner=True).apply()
    assert served == [1]
    message = str(failed.value)
    assert f"{FORBIDDEN[service][1]}" in message
    assert "done (" in message and "not done (" in message
    assert failed.value.not_done  # it names what was not done
    assert "Traceback" not in message

    # the next apply completes the job
    deployment(world, clouds, partner=True).apply()
    assert all(s.healthy for s in deployment(world, clouds, partner=True).status())
    assert deployment(world, clouds, partner=True).plan().empty
    # and destroy leaves the account as it was
    deployment(world, clouds, partner=True).destroy()
    assert snapshot(session) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "service, operation, after", APPLY_STEPS[:8], ids=[f"{o}#{a}" for _, o, a in APPLY_STEPS[:8]]
)
def test_destroy_cleans_a_half_made_apply(service, operation, after, session, world, clouds):
    before = snapshot(session)
    inject(session, service, operation, _forbidden(service), after=after)
    with pytest.raises(CloudError):
        deployment(world, clouds).apply()
    deployment(world, clouds).destroy()
    assert snapshot(session) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "service, operation, after", DESTROY_STEPS, ids=[f"{o}#{a}" for _, o, a in DESTROY_STEPS]
)
def test_failure_at_each_destroy_step_is_finished_by_destroy(
    service, operation, after, session, world, clouds
):
    before = snapshot(session)
    deployment(world, clouds).apply()
    served = inject(session, service, operation, _forbidden(service), after=after)
    with pytest.raises(CloudError) as failed:
        deployment(world, clouds).destroy()
    assert served == [1]
    assert "not done (" in str(failed.value)
    deployment(world, clouds).destroy()
    assert snapshot(session) == before


def test_throttling_is_retried_and_apply_succeeds(session, world, clouds, calls: CallLog):
    ec2 = inject(
        session,
        "ec2",
        "CreateRoute",
        lambda: error_response("ec2", 503, "RequestLimitExceeded", "Request limit exceeded."),
        times=2,
    )
    iam = inject(
        session,
        "iam",
        "CreateRole",
        lambda: error_response("iam", 400, "Throttling", "Rate exceeded"),
        times=1,
    )
    ssm = inject(
        session,
        "ssm",
        "PutParameter",
        lambda: error_response("ssm", 400, "ThrottlingException", "Rate exceeded"),
        times=1,
    )
    d = deployment(world, clouds)
    plan = d.plan()
    result = d.execute(plan)
    assert (ec2, iam, ssm) == ([2], [1], [1])
    assert len(result.done) == len(plan.changes)
    routes = sum(1 for c in plan.changes if c.kind == "route")
    assert calls.mutating.count("CreateRoute") == routes  # one call each ...
    assert calls.attempts["CreateRoute"] == routes + 2  # ... two of them retried
    assert all(s.healthy for s in deployment(world, clouds).status())


def test_persistent_5xx_gives_a_message_not_a_traceback(session, world, clouds):
    # every attempt fails: 3 attempts, not 8, so botocore's real backoff stays short
    clouds.options["aws"]["max_attempts"] = 3
    inject(
        session,
        "ec2",
        "CreateRoute",
        lambda: error_response("ec2", 503, "Unavailable", "Service unavailable"),
        times=100,
    )
    with pytest.raises(CloudError) as failed:
        deployment(world, clouds).apply()
    text = str(failed.value)
    assert "create route" in text and "Unavailable" in text
    assert "+ hq: create connector" in text  # done
    assert "- hq: create route" in text  # not done
