"""A moving-average crossover strategy."""
from __future__ import annotations

from typing import Sequence


def _sma(values: Sequence[float], n: int, end: int) -> float:
    window = values[end - n:end]
    return sum(window) / n


class MaCrossStrategy:
    """+1 when the fast SMA crosses above the slow one on the last close, -1 when it crosses
    below, 0 otherwise.

    ``force_every_n`` (0 = off): every n-th evaluation without a natural signal returns a forced
    one, alternating buy and sell (so the position stays flat) — a test aid that makes a short
    run produce trades whatever the market does.
    """

    def __init__(self, fast: int, slow: int, force_every_n: int = 0, name: str | None = None):
        if not 0 < fast < slow:
            raise ValueError(f"need 0 < fast < slow, got fast={fast} slow={slow}")
        self.fast, self.slow = fast, slow
        self.force_every_n = force_every_n
        self.name = name or f"ma{fast}x{slow}"
        self.evaluations = 0
        self.natural = 0
        self.forced = 0
        self._next_forced = 1

    @property
    def bars_needed(self) -> int:
        return self.slow + 1

    def signal(self, closes: Sequence[float]) -> int:
        self.evaluations += 1
        sig = 0
        if len(closes) >= self.bars_needed:
            n = len(closes)
            prev = _sma(closes, self.fast, n - 1) - _sma(closes, self.slow, n - 1)
            now = _sma(closes, self.fast, n) - _sma(closes, self.slow, n)
            if prev <= 0 < now:
                sig = 1
            elif prev >= 0 > now:
                sig = -1
        if sig:
            self.natural += 1
            return sig
        if self.force_every_n and self.evaluations % self.force_every_n == 0:
            self.forced += 1
            sig, self._next_forced = self._next_forced, -self._next_forced
        return sig
