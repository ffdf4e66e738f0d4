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


def seconds(field: str, text: str | None, default: float, most: float | None = None) -> float:
    """A number of seconds as the environment or a flag gives it (`field` names it in the
    error): blank is `default`; anything but a positive number (at most `most`) is bad input."""
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise SpecError(field, f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0 or (most is not None and value > most):
        span = f"between 0 and {most:g}" if most is not None else "a positive number of"
        raise SpecError(field, f"{text!r} is not {span} seconds")
    return value


def _seconds(name: str, default: float) -> float:
    return seconds(name, os.environ.get(name), default, most=3600)


def limits() -> Limits:
    """The limits this run uses (bad values in the environment are bad input, exit 2)."""
    read = _seconds(READ_VARIABLE, Limits.read)
    deadline = _seconds(DEADLINE_VARIABLE, max(Limits.deadline, read))
    return Limits(connect=min(Limits.connect, read), read=read, deadline=max(deadline, read))
