"""Rate-limit response headers: names and parsing (``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S``)."""
from __future__ import annotations

import re
from typing import Mapping

from .intervals import RATE_INTERVAL_LETTER

USED_WEIGHT_PREFIX = "X-MBX-USED-WEIGHT-"
ORDER_COUNT_PREFIX = "X-MBX-ORDER-COUNT-"
RETRY_AFTER = "Retry-After"
API_KEY_HEADER = "X-MBX-APIKEY"

_SUFFIX = re.compile(r"^(\d+)([SMHD])$")
_LETTER_MS = {"S": 1000, "M": 60_000, "H": 3_600_000, "D": 86_400_000}


def interval_suffix(interval: str, interval_num: int) -> str:
    """``("MINUTE", 1) -> "1M"``; ``("SECOND", 10) -> "10S"``."""
    return f"{interval_num}{RATE_INTERVAL_LETTER[interval]}"


def used_weight_header(interval: str, interval_num: int) -> str:
    return USED_WEIGHT_PREFIX + interval_suffix(interval, interval_num)


def order_count_header(interval: str, interval_num: int) -> str:
    return ORDER_COUNT_PREFIX + interval_suffix(interval, interval_num)


def suffix_for_window(window_ms: int) -> str:
    """``60000 -> "1M"``, ``10000 -> "10S"``, ``86400000 -> "1D"`` (the largest whole unit)."""
    for letter, ms in (("D", 86_400_000), ("H", 3_600_000), ("M", 60_000), ("S", 1000)):
        if window_ms % ms == 0:
            return f"{window_ms // ms}{letter}"
    raise ValueError(f"window of {window_ms} ms is not a whole number of seconds")


def _parse(headers: Mapping[str, str], prefix: str) -> dict[int, int]:
    out: dict[int, int] = {}
    plen = len(prefix)
    for name, value in headers.items():
        upper = name.upper()
        if not upper.startswith(prefix):
            continue
        m = _SUFFIX.match(upper[plen:])
        if not m:
            continue
        try:
            out[int(m.group(1)) * _LETTER_MS[m.group(2)]] = int(value)
        except ValueError:
            continue
    return out


def parse_used_weight(headers: Mapping[str, str]) -> dict[int, int]:
    """``{window_ms: used}`` from every ``X-MBX-USED-WEIGHT-<n><letter>`` header."""
    return _parse(headers, USED_WEIGHT_PREFIX)


def parse_order_count(headers: Mapping[str, str]) -> dict[int, int]:
    """``{window_ms: count}`` from every ``X-MBX-ORDER-COUNT-<n><letter>`` header."""
    return _parse(headers, ORDER_COUNT_PREFIX)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``Retry-After``, or None."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return float(value)
            except ValueError:
                return None
    return None
