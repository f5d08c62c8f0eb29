"""A mergeable log-bucket histogram with a stated relative error.

Every sample ``v`` falls into the bucket ``i = ceil(log(|v|) / log(γ))`` with
``γ = (1 + α) / (1 − α)``; the bucket's representative ``2·γ^i / (γ + 1)`` is within ``α`` of
every value in the bucket (relative), so every percentile read from the histogram is within
``α`` of the same percentile of the exact samples (:data:`RELATIVE_ERROR` = 0.5 %). Count, sum,
min and max are exact. Negative values (slippage, raw clock-skewed WS lag) have their own
buckets; values with ``|v| < 1e-9`` count as zero.

Histograms merge by adding bucket counts, so per-interval histograms from many workers give the
same percentiles as one histogram of every sample — percentiles are never averaged.

Percentiles follow numpy's default (``method="linear"``): for ``n`` samples the ``p``-th
percentile lies at rank ``h = (n − 1)·p/100`` between the ``floor(h)``-th and ``ceil(h)``-th
smallest samples, interpolated linearly. Interpolating between two representatives that are each
within ``α`` of their exact samples keeps the result within ``α`` of numpy's figure.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, Iterable, Mapping

RELATIVE_ERROR = 0.005
"""The largest relative error of any percentile read from a :class:`Histogram`."""
_GAMMA = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
_INV_LOG_GAMMA = 1.0 / math.log(_GAMMA)
_REP_FACTOR = 2.0 / (_GAMMA + 1.0)
_ZERO = 1e-9


def bucket_index(magnitude: float) -> int:
    """The bucket of a positive magnitude."""
    return math.ceil(math.log(magnitude) * _INV_LOG_GAMMA)


def representative(index: int) -> float:
    """The value standing for every magnitude of bucket ``index``."""
    return _REP_FACTOR * _GAMMA ** index


class Histogram:
    """Counts of samples in log buckets, plus exact count, sum, min and max. Mergeable."""

    __slots__ = ("pos", "neg", "zero", "count", "sum", "min", "max")

    def __init__(self) -> None:
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}
        self.zero = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # -- recording ----------------------------------------------------------------------------
    def record(self, value: float) -> None:
        """Add one sample."""
        if value > _ZERO:
            i = math.ceil(math.log(value) * _INV_LOG_GAMMA)
            pos = self.pos
            pos[i] = pos.get(i, 0) + 1
        elif value < -_ZERO:
            i = math.ceil(math.log(-value) * _INV_LOG_GAMMA)
            neg = self.neg
            neg[i] = neg.get(i, 0) + 1
        elif value == value:        # not NaN
            self.zero += 1
        else:
            return
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def record_many(self, values: Iterable[float]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: "Histogram") -> "Histogram":
        """Add ``other``'s samples to this histogram (returns self)."""
        if other.count == 0:
            return self
        for mine, theirs in ((self.pos, other.pos), (self.neg, other.neg)):
            for i, c in theirs.items():
                mine[i] = mine.get(i, 0) + c
        self.zero += other.zero
        self.count += other.count
        self.sum += other.sum
        if other.min < self.min:
            self.min = other.min
        if other.max > self.max:
            self.max = other.max
        return self

    def copy(self) -> "Histogram":
        return Histogram().merge(self)

    # -- reading ---------------------------------------------------------------------------------
    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    def _ordered(self) -> tuple[list[int], list[float]]:
        """Cumulative counts and representatives of the buckets in ascending value order."""
        cum: list[int] = []
        reps: list[float] = []
        total = 0
        for i in sorted(self.neg, reverse=True):     # the most negative first
            total += self.neg[i]
            cum.append(total)
            reps.append(-representative(i))
        if self.zero:
            total += self.zero
            cum.append(total)
            reps.append(0.0)
        for i in sorted(self.pos):
            total += self.pos[i]
            cum.append(total)
            reps.append(representative(i))
        return cum, reps

    def percentiles(self, ps: Iterable[float]) -> list[float | None]:
        """The ``p``-th percentiles (0..100, numpy's linear method) for each ``p`` in ``ps``."""
        ps = list(ps)
        for p in ps:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"percentile must be within [0, 100], got {p}")
        n = self.count
        if n == 0:
            return [None for _ in ps]
        cum, reps = self._ordered()
        lo_v, hi_v = self.min, self.max

        def at(k: int) -> float:          # the k-th smallest sample (0-based), as its representative
            if k <= 0:
                return lo_v
            if k >= n - 1:
                return hi_v
            v = reps[bisect_right(cum, k)]
            return lo_v if v < lo_v else hi_v if v > hi_v else v

        out: list[float | None] = []
        for p in ps:
            h = (n - 1) * p / 100.0
            lo = math.floor(h)
            frac = h - lo
            a = at(lo)
            out.append(a if frac == 0.0 else a + frac * (at(lo + 1) - a))
        return out

    def percentile(self, p: float) -> float | None:
        return self.percentiles((p,))[0]

    # -- wire format (JSON and msgpack friendly: lists, no int dict keys) ------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"n", "s", "mn", "mx", "z", "p": [[i, c], ...], "m": [[i, c], ...]}``."""
        if self.count == 0:
            return {"n": 0}
        return {"n": self.count, "s": self.sum, "mn": self.min, "mx": self.max, "z": self.zero,
                "p": [[i, c] for i, c in self.pos.items()], "m": [[i, c] for i, c in self.neg.items()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Histogram":
        h = cls()
        n = int(data.get("n", 0))
        if n == 0:
            return h
        h.count = n
        h.sum = float(data["s"])
        h.min = float(data["mn"])
        h.max = float(data["mx"])
        h.zero = int(data.get("z", 0))
        h.pos = {int(i): int(c) for i, c in data.get("p", ())}
        h.neg = {int(i): int(c) for i, c in data.get("m", ())}
        if h.zero + sum(h.pos.values()) + sum(h.neg.values()) != n:
            raise ValueError("histogram bucket counts do not add up to its count")
        return h

    def __repr__(self) -> str:
        return f"Histogram(count={self.count}, mean={self.mean}, min={self.min}, max={self.max})"
