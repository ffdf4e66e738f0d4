"""AWS's limits on what the toolkit writes, read from the account's Service Quotas.

Amazon VPC's quotas (the VPC user guide's "Amazon VPC quotas"; Service Quotas, service code
`vpc`): routes per route table, 50 by default, adjustable to 1,000, counted per table and for
IPv4 apart from IPv6, propagated routes aside; inbound rules per security group, 60 by
default (outbound apart), each CIDR of a permission one rule. The account's value is read with
`servicequotas:GetServiceQuota`; a credential without it, or a quota the service has no
applied value for, gets the documented default, and the plan says which.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...model import Cap, Counted
from .common import error_text

# (what, one holder, quota code, its name in Service Quotas, the documented default)
VPC_QUOTAS = (
    (Counted.ROUTES, "route table", "L-93826ACB", "Routes per route table", 50),
    (Counted.RULES, "security group", "L-0EA8095F",
     "Inbound or outbound rules per security group", 60),
)  # fmt: skip


def caps(quotas: Any) -> tuple[Cap, ...]:
    """The account's VPC quotas for routes and rules, or the documented defaults."""
    out = []
    for counts, per, code, name, default in VPC_QUOTAS:
        quota = f"Service Quotas, Amazon VPC, '{name}' ({code})"
        try:
            found = quotas.get_service_quota(ServiceCode="vpc", QuotaCode=code)["Quota"]
            value = int(found["Value"])
            source = f"this account's Service Quotas, {code}"
        except (ClientError, BotoCoreError, KeyError, TypeError, ValueError) as e:
            why = error_text(e) if isinstance(e, ClientError | BotoCoreError) else "no value"
            value = default
            source = f"AWS's documented default; the account's quota was not read: {why}"
        out.append(Cap(counts, per, value, source, quota))
    return tuple(out)


def held(raw_tables: list[dict[str, Any]]) -> dict[str, int]:
    """Each table's IPv4 routes that count against the quota: those not propagated (a
    virtual private gateway's propagated routes do not count)."""
    return {
        t["RouteTableId"]: sum(
            1
            for r in t.get("Routes", [])
            if "DestinationCidrBlock" in r and r.get("Origin") != "EnableVgwRoutePropagation"
        )
        for t in raw_tables
    }
