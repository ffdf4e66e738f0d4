"""Faults in the fake Google Cloud, served before anything changes, at each kind of write apply
and destroy make (and at an operation's wait, after its write was made): the error says what was
done and what was not, the next run finishes, destroy leaves the project as it was."""

from __future__ import annotations

import pytest
from conftest import GcpWorld

from provisioner import CloudError

FORBIDDEN = (403, "forbidden", "Required permission is missing for this resource.")

# (method, path pattern, matching calls let through first)
APPLY_STEPS = [
    ("POST", r"/serviceAccounts$", 0),
    ("POST", r"/secrets$", 0),
    ("POST", r":addVersion$", 0),
    ("POST", r":setIamPolicy$", 0),
    ("POST", r"/zones/[^/]+/instances$", 0),
    ("POST", r"/operations/[^/]+/wait$", 0),  # the instance's insert was made, not seen done
    ("POST", r"/global/firewalls$", 0),
    ("PUT", r"/global/firewalls/", 0),  # an app rule's second source
    ("POST", r"/global/routes$", 1),  # half-way through the routes
]
DESTROY_STEPS = [
    ("DELETE", r"/global/routes/", 1),
    ("PUT", r"/global/firewalls/cp-hq-app-", 0),
    ("DELETE", r"/global/firewalls/cp-hq-app-", 0),
    ("DELETE", r"/zones/[^/]+/instances/", 0),
    ("DELETE", r"/global/firewalls/cp-hq-connector-in$", 0),
    ("DELETE", r"/secrets/", 0),
    ("DELETE", r"/serviceAccounts/", 0),
]


def _ids(steps: list[tuple[str, str, int]]) -> list[str]:
    return [f"{m} {p} #{a}" for m, p, a in steps]


@pytest.mark.slow
@pytest.mark.parametrize("method, path, after", APPLY_STEPS, ids=_ids(APPLY_STEPS))
def test_a_failed_write_during_apply_is_finished_by_apply_and_cleaned_by_destroy(
    method, path, after, gcp: GcpWorld
):
    before = gcp.snapshot()
    fault = gcp.gce.fail(method, path, *FORBIDDEN, after=after)
    with pytest.raises(CloudError) as failed:
        gcp.deployment().apply()
    assert fault.served == 1
    message = str(failed.value)
    assert "403" in message and "Required permission" in message and "not done (" in message
    assert "Traceback" not in message
    gcp.deployment().apply()
    assert all(s.healthy for s in gcp.deployment().status())
    assert gcp.deployment().plan().empty
    gcp.deployment().destroy()
    assert gcp.snapshot() == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [r"/zones/[^/]+/instances$", r"/global/routes$", r"/global/firewalls$"]
)
def test_a_write_that_fails_in_its_operation_is_reported_and_finished_by_apply(path, gcp: GcpWorld):
    """Compute accepts the request, then its operation ends DONE with an error (quota,
    capacity): the change did not happen, the error says so, the next apply makes it."""
    before = gcp.snapshot()
    fault = gcp.gce.fail(
        "POST", path, 403, "QUOTA_EXCEEDED", "Quota 'ROUTES' exceeded.", in_operation=True
    )
    with pytest.raises(CloudError) as failed:
        gcp.deployment().apply()
    assert fault.served == 1
    message = str(failed.value)
    assert "QUOTA_EXCEEDED: Quota 'ROUTES' exceeded." in message and "not done (" in message
    gcp.deployment().apply()
    assert all(s.healthy for s in gcp.deployment().status())
    gcp.deployment().destroy()
    assert gcp.snapshot() == before


@pytest.mark.slow
@pytest.mark.parametrize("method, path, after", DESTROY_STEPS, ids=_ids(DESTROY_STEPS))
def test_a_failed_write_during_destroy_is_finished_by_destroy(method, path, after, gcp: GcpWorld):
    before = gcp.snapshot()
    gcp.deployment().apply()
    fault = gcp.gce.fail(method, path, *FORBIDDEN, after=after)
    with pytest.raises(CloudError) as failed:
        gcp.deployment().destroy()
    assert fault.served == 1 and "not done (" in str(failed.value)
    gcp.deployment().destroy()
    assert gcp.snapshot() == before
