"""The least an identity needs for `provision plan`, `apply`, `status`, `doctor` and `destroy` on GCP: a
custom role in the network's project. `tests/test_gcp.py` checks it against every call the
provider makes (as Compute's, Secret Manager's and IAM's references name the permissions of
each method), and that it holds nothing those calls do not need.

    python -m provisioner.providers.gcp.permissions     # the custom role, as YAML for gcloud

A service account named in the file (`connector.service_account`) needs no `iam.serviceAccounts`
create/delete; the caller still needs `iam.serviceAccounts.actAs` on it to attach it.
"""

from __future__ import annotations

PERMISSIONS = (
    # observe: the network, its subnetworks (every region: the network's own ranges), the
    # instances carrying the file's tags, routes, firewall rules, Cloud NAT in the region
    "compute.networks.get",
    "compute.subnetworks.list",
    "compute.instances.list",
    "compute.routes.list",
    "compute.firewalls.list",
    "compute.routers.list",
    # the project's quotas on routes and firewall rules, counted at plan
    "compute.projects.get",
    # routes: inserted and deleted (they cannot be changed); a route or firewall rule changes
    # the network's policy
    "compute.routes.create",
    "compute.routes.delete",
    "compute.networks.updatePolicy",
    # firewall rules of ours: the connector's, and one per app tag and port spec
    "compute.firewalls.get",
    "compute.firewalls.create",
    "compute.firewalls.update",
    "compute.firewalls.delete",
    # the connector instance, its boot disk, its subnetwork and external address
    "compute.instances.get",
    # a connector made beside the one it replaces: its guest attribute says its tunnel is up
    "compute.instances.getGuestAttributes",
    "compute.instances.create",
    "compute.instances.delete",
    "compute.instances.start",
    "compute.instances.setMetadata",
    "compute.instances.setTags",
    "compute.instances.setLabels",
    "compute.instances.setServiceAccount",
    "compute.disks.create",
    "compute.subnetworks.use",
    "compute.subnetworks.useExternalIp",
    "compute.zoneOperations.get",
    "compute.regionOperations.get",
    "compute.globalOperations.get",
    # a pair's internal load balancer (connector.ha): its health check, an instance group per
    # zone, the backend service, the forwarding rule the routes name, the zones to pick from
    "compute.zones.list",
    "compute.regionHealthChecks.create",
    "compute.regionHealthChecks.delete",
    "compute.regionHealthChecks.useReadOnly",
    "compute.instanceGroups.create",
    "compute.instanceGroups.list",
    "compute.instanceGroups.update",
    "compute.instanceGroups.delete",
    "compute.instanceGroups.use",
    "compute.instances.use",
    "compute.regionBackendServices.create",
    "compute.regionBackendServices.delete",
    "compute.regionBackendServices.use",
    "compute.forwardingRules.create",
    "compute.forwardingRules.get",
    "compute.forwardingRules.delete",
    "compute.forwardingRules.use",
    "compute.networks.use",
    # its identity, and the secret only that identity may read
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.create",
    "iam.serviceAccounts.delete",
    "iam.serviceAccounts.actAs",
    "secretmanager.secrets.get",
    "secretmanager.secrets.create",
    "secretmanager.secrets.update",
    "secretmanager.secrets.delete",
    "secretmanager.secrets.getIamPolicy",
    "secretmanager.secrets.setIamPolicy",
    "secretmanager.versions.list",
    "secretmanager.versions.add",
    "secretmanager.versions.destroy",
)


def role_yaml() -> str:
    lines = [
        "title: connector-provisioner",
        "description: Puts a VPN connector into a VPC network and routes the network through it.",
        "stage: GA",
        "includedPermissions:",
    ]
    return "\n".join(lines + [f"- {p}" for p in PERMISSIONS]) + "\n"


if __name__ == "__main__":
    print(role_yaml(), end="")
