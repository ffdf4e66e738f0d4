"""Names and helpers shared by the AWS provider's modules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

TAG = "connector-provisioner:network"
FINGERPRINT_TAG = "connector-provisioner:fingerprint"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
UBUNTU_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id"
)
ARCHES = {"x86_64": "amd64", "arm64": "arm64"}
POLICY_NAME = "read-vpn-profile"


def pages(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def error_text(e: Exception) -> str:
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return f"{type(e).__name__}: {e}"
