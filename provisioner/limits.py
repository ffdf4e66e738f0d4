"""How long any call to a cloud or to the VPN service may take: every SDK client the toolkit
makes waits at most CONNECT seconds for a connection and READ seconds for an answer, and gives
up on a call with its retries after DEADLINE seconds, with one line naming the endpoint. An
endpoint that accepts and never answers costs minutes, never a pipeline hung for good.

The environment may shorten or lengthen them (a slow proxy, a test):
PROVISION_READ_TIMEOUT (seconds, default 60) and PROVISION_CALL_DEADLINE (default 300)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .errors import SpecError

READ_VARIABLE = "PROVISION_READ_TIMEOUT"
DEADLINE_VARIABLE = "PROVISION_CALL_DEADLINE"


@dataclass(frozen=True)
class Limits:
    connect: float = 10.0  # a TCP (and TLS) connection
    read: float = 60.0  # between bytes of an answer
    deadline: float = 300.0  # one call with all its retries

    @property
    def pair(self) -> tuple[float, float]:
        """(connect, read), as requests and the OCI SDK take them."""
        return (self.connect, self.read)


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise SpecError(name, f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0 or value > 3600:
        raise SpecError(name, f"{text!r} is not between 0 and 3600 seconds")
    return value


def limits() -> Limits:
    """The limits this run uses (bad values in the environment are bad input, exit 2)."""
    read = _seconds(READ_VARIABLE, Limits.read)
    deadline = _seconds(DEADLINE_VARIABLE, max(Limits.deadline, read))
    return Limits(connect=min(Limits.connect, read), read=read, deadline=max(deadline, read))
