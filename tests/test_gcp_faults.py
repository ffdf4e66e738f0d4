"""Faults in the fake Google Cloud, served before anything changes, at each kind of write apply
and destroy make (and at an operation's wait, after its write was made): the error says what was
done and what was not, the next run finishes, destroy leaves the project as it was."""

from __future__ import annotations

import pytest
from conftest import GcpWorld, apply_survives, destroy_survives

FORBIDDEN = (403, "forbidden", "Required permission is missing for this resource.")

# (method, path pattern, matching calls let through first)
APPLY_STEPS = [
    ("POST", r"/serviceAccounts$", 0),
    ("POST", r"/secrets$", 2),  # a profile's (the first two: the leases of hq and spoke)
    ("POST", r":addVersion$", 0),
    ("POST", r":setIamPolicy$", 0),
    ("POST", r"/zones/[^/]+/instances$", 0),
    ("POST", r"/operations/[^/]+/wait$", 0),  # the instance's insert was made, not seen done
    ("POST", r"/global/firewalls$", 0),
    ("POST", r"/global/firewalls$", 1),  # the app rule, made with all its sources at once
    ("POST", r"/global/routes$", 1),  # half-way through the routes
]
DESTROY_STEPS = [
    ("DELETE", r"/global/routes/", 1),
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
    apply_survives(
        gcp,
        lambda: gcp.gce.fail(method, path, *FORBIDDEN, after=after),
        "403",
        "Required permission",
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [r"/zones/[^/]+/instances$", r"/global/routes$", r"/global/firewalls$"]
)
def test_a_write_that_fails_in_its_operation_is_reported_and_finished_by_apply(path, gcp: GcpWorld):
    """Compute accepts the request, then its operation ends DONE with an error (quota,
    capacity): the change did not happen, the error says so, the next apply makes it."""
    apply_survives(
        gcp,
        lambda: gcp.gce.fail(
            "POST", path, 403, "QUOTA_EXCEEDED", "Quota 'ROUTES' exceeded.", in_operation=True
        ),
        "QUOTA_EXCEEDED: Quota 'ROUTES' exceeded.",
    )


@pytest.mark.slow
@pytest.mark.parametrize("method, path, after", DESTROY_STEPS, ids=_ids(DESTROY_STEPS))
def test_a_failed_write_during_destroy_is_finished_by_destroy(method, path, after, gcp: GcpWorld):
    destroy_survives(gcp, lambda: gcp.gce.fail(method, path, *FORBIDDEN, after=after))


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("gcp")
