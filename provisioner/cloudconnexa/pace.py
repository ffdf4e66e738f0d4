"""Pacing calls to a token-bucket rate limit from what the API says of it.

CloudConnexa limits each API credential with a bucket (by default 20 calls at once, one more
every 15 s) and says so on every answer: X-RateLimit-Burst-Capacity, -Replenish-Rate,
-Replenish-Time and -Remaining. A client that waits for 429s meets one on nearly every call once
the burst is spent, and a few threads waiting side by side exhaust their attempts. `Pace` keeps
the bucket's state as the API last told it, shared by every thread of a run, and makes each call
wait for its token before it is sent: after the first answer, almost nothing is sent that the
bucket would refuse."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import CloudError

DEADLINE_VARIABLE = "PROVISION_SERVICE_DEADLINE"
DEFAULT_DEADLINE = 3600.0  # a run waits at most this long for the service's rate limit in all
SAY_AFTER = 5.0  # a wait longer than this gets a line


def service_deadline() -> float:
    """PROVISION_SERVICE_DEADLINE: how long a run may wait for the rate limit in all."""
    import os

    from ..limits import seconds

    return seconds(DEADLINE_VARIABLE, os.environ.get(DEADLINE_VARIABLE), DEFAULT_DEADLINE)


@dataclass(frozen=True)
class Limit:
    burst: int
    rate: int
    period: float

    @property
    def seconds_per_call(self) -> float:
        return self.period / self.rate

    def floor(self, calls: int, left: float | None = None) -> float:
        """The least time `calls` take through the bucket, `left` tokens in it now."""
        have = self.burst if left is None else left
        return max(0.0, calls - have) * self.seconds_per_call

    def text(self) -> str:
        return f"{self.burst} at once, {self.rate} more every {self.period:g} s"


def limit_from(headers: Mapping[str, str]) -> tuple[Limit | None, float | None]:
    """The bucket an answer describes, and the tokens it says are left (None: not said)."""

    def number(name: str) -> float | None:
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            return None
        return value if value >= 0 else None

    burst, rate = number("x-ratelimit-burst-capacity"), number("x-ratelimit-replenish-rate")
    period = number("x-ratelimit-replenish-time")
    limit = None
    if burst and rate and period:
        limit = Limit(int(burst), int(rate), period)
    return limit, number("x-ratelimit-remaining")


class Pace:
    """The bucket as the API last described it, and the calls already promised a token."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        progress: Callable[[str], None] | None = None,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self.clock, self.sleep, self.progress = clock, sleep, progress
        self.deadline = deadline
        self.limit: Limit | None = None
        self._tokens = 0.0  # at `_at`; below zero: tokens promised to calls that wait
        self._at = 0.0
        self._lock = threading.Lock()
        self._began: float | None = None

    def left(self) -> float | None:
        """Tokens the bucket holds now, as far as we know (None: no answer has said yet)."""
        with self._lock:
            if self.limit is None:
                return None
            return self._refilled(self.clock())

    def _refilled(self, now: float) -> float:
        assert self.limit is not None
        grown = (now - self._at) * self.limit.rate / self.limit.period
        return min(float(self.limit.burst), self._tokens + grown)

    def before(self, what: str) -> None:
        """Wait for this call's token (nothing before the API first describes its limit)."""
        with self._lock:
            now = self.clock()
            if self._began is None:
                self._began = now
            if self.limit is None:
                return
            tokens = self._refilled(now)
            self._tokens, self._at = tokens - 1.0, now  # this call's token, promised
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) * self.limit.seconds_per_call
            spent = now - self._began
        if wait <= 0:
            return
        if spent + wait > self.deadline:
            raise CloudError(
                f"the VPN service's rate limit ({self.limit.text()}) would keep {what} waiting "
                f"past the run's deadline of {self.deadline:.0f} s ({DEADLINE_VARIABLE})"
            )
        if wait >= SAY_AFTER and self.progress is not None:
            queued = max(0, int(-tokens))
            self.progress(
                f"the VPN service's rate limit ({self.limit.text()}): {what} waits "
                f"{wait:.0f} s, {queued} call(s) ahead of it"
            )
        self.sleep(wait)

    def after(self, headers: Mapping[str, str], refused: bool = False) -> None:
        """What an answer said: the bucket's shape, and what is left (never more than the
        tokens we have promised away: calls in flight are not in the API's count yet)."""
        limit, remaining = limit_from(headers)
        with self._lock:
            now = self.clock()
            if limit is not None and limit != self.limit:
                first = self.limit is None
                self.limit = limit
                if first:
                    self._tokens, self._at = float(limit.burst), now
            if self.limit is None:
                return
            ours = self._refilled(now)
            said = 0.0 if refused else remaining
            if said is not None and said < ours:
                self._tokens, self._at = said, now
