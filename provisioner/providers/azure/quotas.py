"""Azure's limits on what the toolkit writes: the network's per-resource limits in a region.

Virtual Network's limits (Azure's "subscription and service limits" page; Azure's 2026 update
raised both): user-defined routes per route table, 1,000; security rules per network security
group, 2,000 (inbound and outbound together). Neither can be raised by a request. They are read
with Usages - List (`Microsoft.Network/locations/usages/read`), which names them
`RoutesPerRouteTable` and `SecurityRulesPerNetworkSecurityGroup`; a credential that cannot
read them gets the documented values, and the plan says so.
"""

from __future__ import annotations

from typing import Any

from ...model import Cap, Counted
from .common import error_text

# usage name -> (what it counts, one holder, the documented limit)
LIMITS = {
    "RoutesPerRouteTable": (Counted.ROUTES, "route table", 1000),
    "SecurityRulesPerNetworkSecurityGroup": (Counted.RULES, "network security group", 2000),
}


def caps(net: Any, location: str) -> tuple[Cap, ...]:
    from azure.core.exceptions import AzureError

    read: dict[str, int] = {}
    why = ""
    try:
        for usage in net.usages.list(location):
            if usage.name is not None and usage.name.value in LIMITS:
                read[usage.name.value] = int(usage.limit)
    except AzureError as e:
        why = error_text(e)
    out = []
    for name, (counts, per, documented) in LIMITS.items():
        if name in read:
            value, source = read[name], f"Azure's {name} in {location}, read"
        else:
            value = documented
            source = (f"Azure's documented limit; {name} in {location} was not read: "
                      f"{why or 'not among the usages'}")  # fmt: skip
        out.append(Cap(counts, per, value, source, ""))  # (not raised by a request)
    return tuple(out)
