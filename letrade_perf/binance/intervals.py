"""Kline intervals and rate-limit interval units."""
from __future__ import annotations

import calendar
import datetime as _dt

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

#: Fixed-length kline intervals in ms. ``1M`` (calendar month) is handled by :func:`kline_open`.
KLINE_INTERVALS_MS: dict[str, int] = {
    "1s": SECOND_MS, "1m": MINUTE_MS, "3m": 3 * MINUTE_MS, "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS, "30m": 30 * MINUTE_MS, "1h": HOUR_MS, "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS, "6h": 6 * HOUR_MS, "8h": 8 * HOUR_MS, "12h": 12 * HOUR_MS,
    "1d": DAY_MS, "3d": 3 * DAY_MS, "1w": 7 * DAY_MS,
}
KLINE_INTERVALS: tuple[str, ...] = tuple(KLINE_INTERVALS_MS) + ("1M",)

# Binance weeks start on Monday; the epoch (1970-01-01) was a Thursday.
_WEEK_OFFSET_MS = 4 * DAY_MS

#: Rate-limit ``interval`` names and their length in ms.
RATE_INTERVAL_MS = {"SECOND": SECOND_MS, "MINUTE": MINUTE_MS, "HOUR": HOUR_MS, "DAY": DAY_MS}
#: Header letter for a rate-limit interval (``X-MBX-USED-WEIGHT-1M``).
RATE_INTERVAL_LETTER = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}


def _month_start(ms: int) -> int:
    d = _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc)
    return calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000


def _add_months(ms: int, n: int) -> int:
    d = _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc)
    m = d.month - 1 + n
    return calendar.timegm((d.year + m // 12, m % 12 + 1, 1, 0, 0, 0)) * 1000


def kline_open(interval: str, ms: int) -> int:
    """Open time of the ``interval`` candle containing ``ms`` (UTC)."""
    if interval == "1M":
        return _month_start(ms)
    step = KLINE_INTERVALS_MS[interval]
    if interval == "1w":
        return (ms - _WEEK_OFFSET_MS) // step * step + _WEEK_OFFSET_MS
    return ms // step * step


def kline_next(interval: str, open_ms: int) -> int:
    """Open time of the candle after the one opening at ``open_ms``."""
    if interval == "1M":
        return _add_months(open_ms, 1)
    return open_ms + KLINE_INTERVALS_MS[interval]


def kline_prev(interval: str, open_ms: int) -> int:
    """Open time of the candle before the one opening at ``open_ms``."""
    if interval == "1M":
        return _add_months(open_ms, -1)
    return open_ms - KLINE_INTERVALS_MS[interval]
