"""The least an OCI user's group needs for `provision plan`, `apply`, `status`, `doctor` and `destroy`: IAM
policy statements, by resource type and verb (inspect < read < use < manage), in the network's
compartment or the tenancy. `tests/test_oci.py` checks them against every call the provider
makes, and that they grant nothing those calls do not need.

    python -m provisioner.providers.oci.permissions GROUP COMPARTMENT_OCID   # the statements

With a dynamic group named in the file (`connector.dynamic_group`), `manage dynamic-groups` is
not needed (`inspect dynamic-groups` still is: the provider checks that it exists).
"""

from __future__ import annotations

import sys

VERBS = ("inspect", "read", "use", "manage")

# (resource type, where: "compartment" or "tenancy") -> the verb
POLICY: dict[tuple[str, str], str] = {
    # observe: the VCN, its subnets, tables, gateways and NSGs; the connector's VNIC and IP
    ("vcns", "compartment"): "read",
    ("subnets", "compartment"): "use",  # the connector's VNIC goes in one
    ("route-tables", "compartment"): "manage",  # rule lists are written back whole
    ("internet-gateways", "compartment"): "inspect",
    ("nat-gateways", "compartment"): "inspect",
    ("network-security-groups", "compartment"): "manage",  # ours, and rules in the app NSGs
    ("vnics", "compartment"): "use",  # the source/destination check, the NSG membership
    ("vnic-attachments", "compartment"): "read",
    ("security-lists", "compartment"): "read",  # status and doctor judge packets by them
    ("private-ips", "compartment"): "use",  # a pair's floating IP (read is enough without)
    # the connector instance and its boot volume
    ("instances", "compartment"): "manage",
    # a connector made beside the one it replaces says on its serial console when its tunnel
    # is up: a console history captured, read and deleted (the instance needs nothing)
    ("console-histories", "compartment"): "manage",
    ("instance-images", "compartment"): "inspect",
    ("boot-volumes", "compartment"): "manage",
    # the profile secret, in the vault and under the key the file names
    ("secrets", "compartment"): "manage",
    ("vaults", "compartment"): "use",
    ("keys", "compartment"): "use",
    ("policies", "compartment"): "manage",
    # the connector's dynamic group lives in the tenancy; compartments are walked to find it
    ("dynamic-groups", "tenancy"): "manage",
    ("compartments", "tenancy"): "inspect",
}


# a verb granted for one permission only: a run's lease is a freeform tag on the VCN, written
# by UpdateVcn (VCN_UPDATE is in `manage vcns`; the rest of manage, deleting a VCN, is not given)
ONLY: dict[tuple[str, str], tuple[str, str]] = {
    ("vcns", "compartment"): ("manage", "VCN_UPDATE"),
}


def statements(group: str = "<group>", compartment: str = "<compartment OCID>") -> list[str]:
    out = []
    for (resource, where), verb in POLICY.items():
        scope = "tenancy" if where == "tenancy" else f"compartment id {compartment}"
        out.append(f"Allow group {group} to {verb} {resource} in {scope}")
    for (resource, where), (verb, permission) in ONLY.items():
        scope = "tenancy" if where == "tenancy" else f"compartment id {compartment}"
        out.append(
            f"Allow group {group} to {verb} {resource} in {scope} "
            f"where request.permission = '{permission}'"
        )
    return out


if __name__ == "__main__":
    print("\n".join(statements(*sys.argv[1:3])))
