"""Kline integrity: is a (paged) candle series contiguous, ordered, unique and OHLC-consistent?

A pure function over Binance kline rows (``[openTime, open, high, low, close, volume,
closeTime, quoteVolume, trades, takerBuyBase, takerBuyQuote, ignore]``). The market-data user
reports every problem found as a Locust failure; nothing here raises on bad data.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Sequence

from ..binance.intervals import kline_next, kline_open

#: Problem kinds, in the order they are checked for each row.
MALFORMED = "malformed"
MISALIGNED = "misaligned"
CLOSE_TIME = "close_time"
OHLC = "ohlc"
DUPLICATE = "duplicate"
DISORDER = "disorder"
GAP = "gap"


@dataclass(frozen=True)
class KlineIssue:
    """One problem in a kline series: its ``kind``, the row ``index`` and a short ``detail``."""

    kind: str
    index: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at row {self.index}: {self.detail}"


def _dec(v) -> Decimal:
    d = Decimal(str(v))
    if not d.is_finite():
        raise InvalidOperation(str(v))
    return d


def check_klines(rows: Sequence[Sequence], interval: str, max_issues: int = 20) -> list[KlineIssue]:
    """Every problem in ``rows`` (at most ``max_issues``); an empty list means the series is clean.

    Checks per row: 12 fields, integer open/close times, open time aligned to ``interval``,
    ``closeTime == next openTime - 1``, ``low <= open, close <= high``, non-negative volumes and
    trade count. Between rows: strictly increasing open times (``duplicate`` for an equal one,
    ``disorder`` for an earlier one) and no missing candle (``gap``).
    """
    issues: list[KlineIssue] = []

    def add(kind: str, i: int, detail: str) -> bool:
        issues.append(KlineIssue(kind, i, detail))
        return len(issues) >= max_issues

    prev_open: int | None = None
    for i, row in enumerate(rows):
        try:
            if len(row) != 12:
                raise ValueError(f"{len(row)} fields")
            t_open, t_close = row[0], row[6]
            if not isinstance(t_open, int) or not isinstance(t_close, int) or isinstance(t_open, bool):
                raise ValueError("open/close time not an integer")
            o, h, low, c, vol = (_dec(row[k]) for k in (1, 2, 3, 4, 5))
            qvol, tb, tq = _dec(row[7]), _dec(row[9]), _dec(row[10])
            n = row[8]
            if not isinstance(n, int) or isinstance(n, bool):
                raise ValueError("trade count not an integer")
        except (TypeError, ValueError, InvalidOperation, IndexError) as e:
            if add(MALFORMED, i, str(e) or type(e).__name__):
                return issues
            continue
        if kline_open(interval, t_open) != t_open:
            if add(MISALIGNED, i, f"openTime {t_open} not on a {interval} boundary"):
                return issues
        elif t_close != kline_next(interval, t_open) - 1:
            if add(CLOSE_TIME, i, f"closeTime {t_close} != {kline_next(interval, t_open) - 1}"):
                return issues
        if not (low <= min(o, c) and max(o, c) <= h and low <= h):
            if add(OHLC, i, f"o={o} h={h} l={low} c={c}"):
                return issues
        if min(vol, qvol, tb, tq) < 0 or n < 0 or tb > vol:
            if add(OHLC, i, f"negative or inconsistent volume v={vol} q={qvol} V={tb} n={n}"):
                return issues
        if prev_open is not None:
            if t_open == prev_open:
                if add(DUPLICATE, i, f"openTime {t_open} repeated"):
                    return issues
                continue
            if t_open < prev_open:
                if add(DISORDER, i, f"openTime {t_open} after {prev_open}"):
                    return issues
                continue
            expected = kline_next(interval, prev_open)
            if t_open != expected:
                missing = 0
                t = expected
                while t < t_open and missing < 1_000_000:
                    missing += 1
                    t = kline_next(interval, t)
                if add(GAP, i, f"{missing} candle(s) missing between {prev_open} and {t_open}"):
                    return issues
        prev_open = t_open
    return issues


# -- single-response checks (run on every response: keep them O(1) or close) ------------------

def check_depth(data: Any) -> str | None:
    """A depth answer has ``bids`` and ``asks`` of ``[price, qty]`` and is not crossed (O(1): it
    runs on every response; the order of deeper levels is the exchange's contract)."""
    if not isinstance(data, dict):
        return "depth: not an object"
    bids, asks = data.get("bids"), data.get("asks")
    if not isinstance(bids, list) or not isinstance(asks, list):
        return "depth: missing bids/asks"
    if bids and asks:
        try:
            bid, ask = float(bids[0][0]), float(asks[0][0])
        except (TypeError, ValueError, IndexError, KeyError):
            return "depth: malformed level"
        if bid >= ask:
            return f"depth: crossed book (bid {bids[0][0]} >= ask {asks[0][0]})"
    return None


def check_trades(data: Any) -> str | None:
    if not isinstance(data, list):
        return "trades: not a list"
    try:
        ids = [t["id"] for t in data]
    except (TypeError, KeyError):
        return "trades: malformed trade"
    if any(b <= a for a, b in zip(ids, ids[1:])):
        return "trades: ids not increasing"
    return None


def check_object(*fields: str) -> Callable[[Any], str | None]:
    def check(data: Any) -> str | None:
        if not isinstance(data, dict):
            return "not an object"
        missing = [f for f in fields if f not in data]
        return f"missing {', '.join(missing)}" if missing else None
    return check
