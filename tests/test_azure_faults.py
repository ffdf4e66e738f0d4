"""Faults in the fake ARM, served before anything changes, at each kind of write apply and
destroy make: the error says what was done and what was not, the next run finishes, destroy
leaves Azure as it was."""

from __future__ import annotations

import pytest
from conftest import AzureWorld, apply_survives, destroy_survives

FORBIDDEN = (
    403,
    "AuthorizationFailed",
    "The client does not have authorization to perform action.",
)

# (method, path pattern, matching calls let through first)
APPLY_STEPS = [
    ("PUT", r"/networkSecurityGroups/cp-hq-connector$", 0),
    ("PUT", r"/routeTables/cp-hq-routes$", 0),
    ("PUT", r"/subnets/", 0),  # associating our table
    ("PUT", r"/publicIPAddresses/", 0),
    ("PUT", r"/networkInterfaces/", 0),  # the NIC
    ("PUT", r"/virtualMachines/cp-hq-connector$", 0),
    ("PUT", r"/networkInterfaces/", 1),  # its forwarding flag
    ("PUT", r"/extensions/connector-profile$", 0),
    ("PUT", r"/networkSecurityGroups/cp-hq-connector$", 1),  # its rules, after its creation
    ("PUT", r"/networkSecurityGroups/(?!cp-)[^/]+$", 0),  # the app NSG's rules
    ("PUT", r"/routeTables/[^/]+$", 2),  # half-way through the route tables' writes
]
DESTROY_STEPS = [
    ("PUT", r"/routeTables/[^/]+$", 1),  # a route table's routes taken out
    ("PUT", r"/networkSecurityGroups/(?!cp-)[^/]+$", 0),  # the app NSG's rules taken out
    ("DELETE", r"/extensions/", 0),
    ("DELETE", r"/virtualMachines/", 0),
    ("DELETE", r"/networkInterfaces/", 0),
    ("PUT", r"/subnets/", 0),  # dissociating our table
    ("DELETE", r"/routeTables/", 0),
    ("DELETE", r"/networkSecurityGroups/", 0),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, path, after", APPLY_STEPS, ids=[f"{m} {p} #{a}" for m, p, a in APPLY_STEPS]
)
def test_a_failed_write_during_apply_is_finished_by_apply_and_cleaned_by_destroy(
    method, path, after, azure: AzureWorld
):
    apply_survives(
        azure, lambda: azure.arm.fail(method, path, *FORBIDDEN, after=after), "AuthorizationFailed"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, path, after", DESTROY_STEPS, ids=[f"{m} {p} #{a}" for m, p, a in DESTROY_STEPS]
)
def test_a_failed_write_during_destroy_is_finished_by_destroy(
    method, path, after, azure: AzureWorld
):
    destroy_survives(azure, lambda: azure.arm.fail(method, path, *FORBIDDEN, after=after))


# one worker seeds and serves this cloud's fake (and imports its SDK) for all its tests
pytestmark = pytest.mark.xdist_group("azure")
