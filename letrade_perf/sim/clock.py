"""The simulator's clock: wall time plus an injectable skew, and an injectable time source.

Everything time-dependent in the simulator (rate-limit windows, timestamps, event times, bans)
reads this clock, so tests can drive it and the fault model can skew it at runtime.
"""
from __future__ import annotations

import time
from typing import Callable


class SimClock:
    """Server time in ms = ``time_fn()`` (seconds) × 1000 + ``skew_ms``."""

    __slots__ = ("_time_fn", "skew_ms")

    def __init__(self, time_fn: Callable[[], float] = time.time, skew_ms: int = 0):
        self._time_fn = time_fn
        self.skew_ms = skew_ms

    def now_ms(self) -> int:
        return int(self._time_fn() * 1000) + self.skew_ms

    def now(self) -> float:
        """Server time in seconds (float)."""
        return self._time_fn() + self.skew_ms / 1000.0


class ManualClock(SimClock):
    """A clock that only moves when told (unit tests)."""

    def __init__(self, start_ms: int = 1_700_000_000_000):
        self.t = start_ms / 1000.0
        super().__init__(lambda: self.t)

    def advance(self, ms: float) -> None:
        self.t += ms / 1000.0

    def set_ms(self, ms: int) -> None:
        self.t = ms / 1000.0
