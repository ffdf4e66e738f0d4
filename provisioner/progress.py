"""How a run shows its progress: a line per change as it starts (`Lines`, for logs and pipes), or
one live line on a terminal (`LiveLine`): how many of the run's changes are done of all, how
long it has taken, and an estimate of what is left; what else the run says is printed above it.

`engine.Ledger` reports to a `Meter`: `started` as a change starts, `finished` as changes end,
with the counts over the whole run (both halves)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import Protocol, TextIO


class Meter(Protocol):
    def started(self, what: str, started: int, total: int, elapsed: float) -> None:
        """`what` (`network: change`) starts, the `started`-th of the run's `total`."""

    def finished(self, done: int, total: int, elapsed: float) -> None:
        """`done` of the run's `total` changes are done."""


class Lines:
    """A line per change as it starts: `[12/1078 41s] hq: create route …`."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def started(self, what: str, started: int, total: int, elapsed: float) -> None:
        self.say(f"[{started}/{total} {elapsed:.0f}s] {what}")

    def finished(self, done: int, total: int, elapsed: float) -> None:
        pass


def duration(seconds: float) -> str:
    """`41s`, `3m05s`, `1h02m`: as a person reads a clock."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def estimate(done: int, total: int, elapsed: float) -> str:
    """What is left, at the pace so far: `about 1m20s left`; before the first change is done,
    or when the pace says nothing yet, `estimating`."""
    if done <= 0 or elapsed <= 0:
        return "estimating"
    if done >= total:
        return "done"
    return f"about {duration(elapsed / done * (total - done))} left"


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return shutil.get_terminal_size().columns


class LiveLine:
    """One line on a terminal, redrawn in place as changes end and every second meanwhile (a
    long wait still shows its time): `apply: 12/1078 done, 41s, about 9m left · hq: create
    route …`. It is also the run's `progress`: other messages go above it. `close()` leaves
    the line's last state on the screen, ended."""

    def __init__(self, stream: TextIO, operation: str, tick: float = 1.0) -> None:
        self.stream = stream
        self.operation = operation
        self._lock = threading.RLock()
        self._start = time.monotonic()
        self._done = 0
        self._total = 0
        self._doing = ""
        self._shown = False
        self._stop = threading.Event()
        self._ticker = threading.Thread(
            target=self._tick, args=(tick,), name="provision-progress", daemon=True
        )
        self._ticker.start()

    # --- the run's progress: a message above the line -----------------------------------------
    def __call__(self, message: str) -> None:
        with self._lock:
            self._erase()
            self.stream.write(f"  .. {message}\n")
            self._draw()

    # --- Meter -------------------------------------------------------------------------------
    def started(self, what: str, started: int, total: int, elapsed: float) -> None:
        with self._lock:
            self._doing, self._total = what, total
            self._draw()

    def finished(self, done: int, total: int, elapsed: float) -> None:
        with self._lock:  # reports from several threads may come out of order: counts only grow
            self._done, self._total = max(self._done, done), total
            self._draw()

    def close(self) -> None:
        """Stop redrawing; the last state stays as an ended line (nothing when no change ran)."""
        self._stop.set()
        self._ticker.join()
        with self._lock:
            if self._shown:
                self._doing = ""
                self._draw()
                self.stream.write("\n")
                self.stream.flush()
                self._shown = False

    def text(self) -> str:
        elapsed = time.monotonic() - self._start
        line = (
            f"{self.operation}: {self._done}/{self._total} done, {duration(elapsed)}, "
            f"{estimate(self._done, self._total, elapsed)}"
        )
        return f"{line} · {self._doing}" if self._doing else line

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            with self._lock:
                if self._shown:
                    self._draw()

    def _erase(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")

    def _draw(self) -> None:
        if not self._total:
            return
        width = _columns(self.stream) - 1
        text = self.text()
        if len(text) > width:
            text = text[: max(width - 1, 0)] + "…"
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()
        self._shown = True
