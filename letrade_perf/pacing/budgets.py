"""Rate-limit budgets read from ``exchangeInfo.rateLimits`` (reference §2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..binance.endpoints import DEFAULT_RATE_LIMITS
from ..binance.intervals import RATE_INTERVAL_MS

REQUEST_WEIGHT = "REQUEST_WEIGHT"
ORDERS = "ORDERS"
RAW_REQUESTS = "RAW_REQUESTS"

#: ``(window_ms, limit)``: one fixed, clock-aligned window and the exchange's limit in it.
Window = tuple[int, int]


@dataclass(frozen=True)
class Budgets:
    """The exchange limits the pacer enforces, each window as ``(window_ms, limit)``, shortest
    first. ``CONNECTIONS`` (WebSocket API connects) is not paced here."""

    weight: tuple[Window, ...] = ()
    orders: tuple[Window, ...] = ()
    raw: tuple[Window, ...] = ()


def budgets_from_rate_limits(rate_limits: Iterable[Mapping[str, Any]] = DEFAULT_RATE_LIMITS) -> Budgets:
    """Budgets from ``exchangeInfo.rateLimits`` entries such as
    ``{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}``.

    Unknown limit types (``CONNECTIONS``) are ignored; an unknown ``interval`` or a non-positive
    ``intervalNum``/``limit`` raises ValueError. When the same window appears twice the lower
    limit wins.
    """
    found: dict[str, dict[int, int]] = {REQUEST_WEIGHT: {}, ORDERS: {}, RAW_REQUESTS: {}}
    for entry in rate_limits:
        kind = entry.get("rateLimitType")
        if kind not in found:
            continue
        interval = entry.get("interval")
        if interval not in RATE_INTERVAL_MS:
            raise ValueError(f"rateLimits entry {dict(entry)!r}: unknown interval {interval!r}")
        num = int(entry.get("intervalNum", 1))
        limit = int(entry["limit"])
        if num <= 0 or limit <= 0:
            raise ValueError(f"rateLimits entry {dict(entry)!r}: intervalNum and limit must be > 0")
        window_ms = num * RATE_INTERVAL_MS[interval]
        prev = found[kind].get(window_ms)
        found[kind][window_ms] = limit if prev is None else min(prev, limit)

    def windows(kind: str) -> tuple[Window, ...]:
        return tuple(sorted(found[kind].items()))

    return Budgets(weight=windows(REQUEST_WEIGHT), orders=windows(ORDERS), raw=windows(RAW_REQUESTS))
