"""Faults in the fake OCI, served before anything changes, at each kind of write apply and
destroy make: the error says what was done and what was not, the next run finishes, destroy
leaves the tenancy as it was (but for what OCI itself keeps a while)."""

from __future__ import annotations

import pytest
from conftest import OciWorld, apply_survives, destroy_survives

FORBIDDEN = (
    404,
    "NotAuthorizedOrNotFound",
    "Authorization failed or requested resource not found.",
)

# (method, path pattern, matching calls let through first)
APPLY_STEPS = [
    ("POST", r"/networkSecurityGroups$", 0),
    ("POST", r"/secrets$", 0),
    ("POST", r"/instances/?$", 0),
    ("PUT", r"/vnics/", 0),  # the source/dest check
    ("POST", r"/dynamicGroups$", 0),
    ("POST", r"/policies$", 0),
    ("POST", r"/actions/addSecurityRules$", 1),
    ("PUT", r"/routeTables/", 2),
]
DESTROY_STEPS = [
    ("PUT", r"/routeTables/", 1),
    ("POST", r"/actions/removeSecurityRules$", 0),
    ("DELETE", r"/policies/", 0),
    ("DELETE", r"/dynamicGroups/", 0),
    ("DELETE", r"/instances/", 0),
    ("POST", r"/actions/scheduleDeletion$", 0),
    ("DELETE", r"/networkSecurityGroups/", 0),
]


def _ids(steps: list[tuple[str, str, int]]) -> list[str]:
    return [f"{m} {p} #{a}" for m, p, a in steps]


@pytest.mark.slow
@pytest.mark.parametrize("method, path, after", APPLY_STEPS, ids=_ids(APPLY_STEPS))
def test_a_failed_write_during_apply_is_finished_by_apply_and_cleaned_by_destroy(
    method, path, after, oci_world: OciWorld
):
    o = oci_world
    apply_survives(
        o, lambda: o.fake.fail(method, path, *FORBIDDEN, after=after), "NotAuthorizedOrNotFound"
    )


@pytest.mark.slow
@pytest.mark.parametrize("method, path, after", DESTROY_STEPS, ids=_ids(DESTROY_STEPS))
def test_a_failed_write_during_destroy_is_finished_by_destroy(
    method, path, after, oci_world: OciWorld
):
    o = oci_world
    destroy_survives(o, lambda: o.fake.fail(method, path, *FORBIDDEN, after=after))


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("oci")
