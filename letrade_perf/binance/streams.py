"""WebSocket market stream names: parsing and the set of supported kinds.

``btcusdt@trade``, ``btcusdt@aggTrade``, ``btcusdt@kline_1m``, ``btcusdt@depth@100ms``,
``btcusdt@depth5``, ``btcusdt@bookTicker``, ``btcusdt@ticker``, ``btcusdt@miniTicker``,
``!miniTicker@arr``, ``btcusdt@ticker_1h`` (also ``_4h``, ``_1d``), ``!ticker_1h@arr`` (same
windows), ``btcusdt@avgPrice``, ``btcusdt@referencePrice``. ``!ticker@arr`` was retired by
Binance (2026-03-26) and is no valid name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .intervals import KLINE_INTERVALS

# matched with fullmatch (``$`` would also accept a trailing newline)
_KLINE = re.compile(r"kline_(\w+)")
_PARTIAL = re.compile(r"depth(5|10|20)")
_WINDOW = re.compile(r"ticker_(1h|4h|1d)")
_WINDOW_ARR = re.compile(r"!ticker_(1h|4h|1d)@arr")

#: Rolling-window ticker windows (``@ticker_<w>``, ``!ticker_<w>@arr``).
TICKER_WINDOWS = ("1h", "4h", "1d")

#: Stream kinds whose payload carries an event time ``E`` usable for lag measurement.
EVENT_TIME_KINDS = frozenset({"trade", "aggTrade", "kline", "depth", "ticker", "miniTicker", "windowTicker",
                              "avgPrice"})


@dataclass(frozen=True)
class StreamName:
    """A parsed stream name. ``symbol`` is upper case (None for ``!…@arr`` streams)."""

    raw: str
    symbol: str | None
    kind: str           # trade | aggTrade | kline | depth | partialDepth | bookTicker | ticker | miniTicker |
    #                     miniTickerArr | windowTicker | windowTickerArr | avgPrice | referencePrice
    interval: str | None = None   # kline interval
    levels: int | None = None     # partial depth levels
    speed_ms: int = 1000          # depth update speed (100 or 1000)
    window: str | None = None     # rolling ticker window (1h, 4h, 1d)

    @property
    def has_event_time(self) -> bool:
        return self.kind in EVENT_TIME_KINDS


def parse_stream(name: str) -> StreamName:
    """Parse a stream name; ``ValueError`` naming the stream if it is not a supported kind."""
    raw = name
    if name == "!miniTicker@arr":
        return StreamName(raw, None, "miniTickerArr")
    m = _WINDOW_ARR.fullmatch(name)
    if m:
        return StreamName(raw, None, "windowTickerArr", window=m.group(1))
    parts = name.split("@")
    if len(parts) < 2 or not parts[0] or parts[0] != parts[0].lower() or not parts[0].isalnum():
        raise ValueError(f"invalid stream name {raw!r}")
    symbol = parts[0].upper()
    kind = parts[1]
    rest = parts[2:]
    speed = 1000
    if rest:
        if len(rest) == 1 and rest[0] in ("100ms", "1000ms") and (kind == "depth" or _PARTIAL.fullmatch(kind)):
            speed = int(rest[0][:-2])
        else:
            raise ValueError(f"invalid stream name {raw!r}")
    if kind in ("trade", "aggTrade", "bookTicker", "ticker", "miniTicker", "avgPrice", "referencePrice"):
        return StreamName(raw, symbol, kind)
    if kind == "depth":
        return StreamName(raw, symbol, "depth", speed_ms=speed)
    m = _PARTIAL.fullmatch(kind)
    if m:
        return StreamName(raw, symbol, "partialDepth", levels=int(m.group(1)), speed_ms=speed)
    m = _WINDOW.fullmatch(kind)
    if m:
        return StreamName(raw, symbol, "windowTicker", window=m.group(1))
    m = _KLINE.fullmatch(kind)
    if m and m.group(1) in KLINE_INTERVALS:
        return StreamName(raw, symbol, "kline", interval=m.group(1))
    raise ValueError(f"invalid stream name {raw!r}")
