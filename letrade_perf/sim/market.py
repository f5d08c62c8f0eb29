"""The synthetic market: a seeded price path and the kline history built on it.

The price of a symbol at any millisecond is a pure function of ``(seed, symbol, t)``:
multi-octave hashed value noise in log-price (periods 1 s … ~12 days, amplitudes growing with
the square root of the period like a random walk, scaled by ``SymbolSpec.volatility``
interpreted as annualised). Being stationary around ``SymbolSpec.price`` it needs no anchoring
to a start time, so two simulators with the same seed agree on every candle whenever they
started. The live book's mid follows the same path, so history and the book agree.

Candles: open = p(openTime), close = p(next openTime), so ``open[i+1] == close[i]`` exactly;
high/low = extremes of o, c, two samples inside the candle and a small seeded wick; volume,
trade count and taker volumes are seeded per candle at the scale of the synthetic taker flow.
Candles after the simulator started fold in the trades it actually printed (high/low, volume,
trade ids); the current candle closes at the last trade (or the path price before any trade).
"""
from __future__ import annotations

import hashlib
import itertools
import math
import re

from ..binance.errors import BinanceError, error
from ..binance.intervals import (
    DAY_MS,
    HOUR_MS,
    KLINE_INTERVALS,
    KLINE_INTERVALS_MS,
    MINUTE_MS,
    kline_next,
    kline_open,
    kline_prev,
)
from .filters import E8

_M64 = (1 << 64) - 1
_GOLD = 0x9E3779B97F4A7C15
_INV53 = 2.0 ** -52
_INV31 = 2.0 ** -31

#: Octave periods in ms: 1 s × 8^k, k = 0..6 (1 s … ~3 days); a slow 48-day drift is added on top.
_PERIODS = tuple(1000 * 8 ** k for k in range(7))
_SLOW_PERIOD = 48 * 86_400_000
_SLOW_AMP = 0.05


def stable_hash(*parts) -> int:
    """A 64-bit hash of ``parts`` that is stable across processes (unlike ``hash()``)."""
    h = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big")


def _mix(x: int) -> int:
    """splitmix64 finaliser."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _unit(salt: int, i: int) -> float:
    """Hashed lattice value in [-1, 1)."""
    return (_mix((salt + i * _GOLD) & _M64) >> 11) * _INV53 - 1.0


def _u01(salt: int, i: int) -> float:
    """Hashed value in [0, 1)."""
    return (_mix((salt + i * _GOLD) & _M64) >> 11) * (2.0 ** -53)


class PricePath:
    """Deterministic price of one symbol at any ms timestamp, O(octaves) per evaluation.

    Lattice values come from simple tabulation hashing (four seeded 256-entry tables per
    octave, XORed by byte of the lattice index): a few list look-ups instead of 64-bit
    multiplications, which keeps a 1000-candle kline page at a few milliseconds.
    """

    def __init__(self, seed: int, symbol: str, price: float, volatility: float, tick8: int):
        base = stable_hash("path", seed, symbol)
        self.p0 = float(price)
        self.log_p0 = math.log(self.p0)
        self.tick8 = tick8
        daily = max(0.0, float(volatility)) / math.sqrt(365.0)
        self.daily = daily
        # Amplitudes grow with sqrt(period) like a random walk; the path stays stationary
        # around ``price`` (within roughly ±10 % at the default volatility).
        specs = [(period, 1.5 * daily * math.sqrt(period / DAY_MS)) for period in _PERIODS]
        specs.append((_SLOW_PERIOD, _SLOW_AMP * min(1.0, daily / 0.03)))
        octaves = []
        for k, (period, amp) in enumerate(specs):
            salt = _mix((base + (k + 1) * 0x632BE59BD9B4E019) & _M64)
            tables = tuple(tuple(_mix((salt + (b * 256 + v) * _GOLD) & _M64) & 0xFFFFFFFF for v in range(256))
                           for b in range(4))
            octaves.append((period, amp, tables))
        self._octaves = tuple(octaves)

    def log_at(self, t: int) -> float:
        acc = self.log_p0
        inv = _INV31
        for period, amp, (t0, t1, t2, t3) in self._octaves:
            i, r = divmod(t, period)
            f = r / period
            h0 = (t0[i & 255] ^ t1[(i >> 8) & 255] ^ t2[(i >> 16) & 255] ^ t3[(i >> 24) & 255]) * inv - 1.0
            i += 1
            h1 = (t0[i & 255] ^ t1[(i >> 8) & 255] ^ t2[(i >> 16) & 255] ^ t3[(i >> 24) & 255]) * inv - 1.0
            acc += amp * (h0 + (h1 - h0) * (f * f * (3.0 - 2.0 * f)))
        return acc

    def price(self, t: int) -> float:
        return math.exp(self.log_at(t))

    def price8(self, t: int) -> int:
        """Path price at ``t`` rounded to the tick, in e8 units (≥ one tick)."""
        tick = self.tick8
        return max(tick, int(math.exp(self.log_at(t)) * E8 / tick + 0.5) * tick)

    def prices8(self, times: list[int]) -> list[int]:
        """:meth:`price8` for many ascending timestamps, walking each octave once."""
        n = len(times)
        acc = [self.log_p0] * n
        inv = _INV31
        rng = range(n)
        for period, amp, (t0, t1, t2, t3) in self._octaves:
            cur = -2
            h0 = h1 = 0.0
            for j in rng:
                i, r = divmod(times[j], period)
                if i != cur:
                    if i == cur + 1:
                        h0 = h1
                    else:
                        h0 = (t0[i & 255] ^ t1[(i >> 8) & 255] ^ t2[(i >> 16) & 255] ^ t3[(i >> 24) & 255]) * inv - 1.0
                    cur = i
                    i += 1
                    h1 = (t0[i & 255] ^ t1[(i >> 8) & 255] ^ t2[(i >> 16) & 255] ^ t3[(i >> 24) & 255]) * inv - 1.0
                f = r / period
                acc[j] += amp * (h0 + (h1 - h0) * (f * f * (3.0 - 2.0 * f)))
        tick = self.tick8
        scale = E8 / tick
        exp = math.exp
        return [max(tick, int(exp(a) * scale + 0.5) * tick) for a in acc]


# ---------------------------------------------------------------------------------------------
# Time zones and time-range helpers
# ---------------------------------------------------------------------------------------------

_TZ = re.compile(r"^([+-]?)(\d{1,2})(?::(\d{2}))?$")


def parse_time_zone(value: str | None) -> int:
    """``timeZone`` (``-1:00``, ``05:45``, ``8``) to an offset in ms; range [-12:00, +14:00]."""
    if value is None or value == "":
        return 0
    m = _TZ.match(value)
    if not m:
        raise error(-1100, "timeZone", "[-12:00, +14:00]")
    sign = -1 if m.group(1) == "-" else 1
    h = int(m.group(2))
    mins = int(m.group(3) or 0)
    if mins >= 60:
        raise error(-1100, "timeZone", "[-12:00, +14:00]")
    off = sign * (h * HOUR_MS + mins * MINUTE_MS)
    if off < -12 * HOUR_MS or off > 14 * HOUR_MS:
        raise error(-1100, "timeZone", "[-12:00, +14:00]")
    return off


def check_interval(interval: str | None) -> str:
    if interval is None or interval == "":
        raise error(-1102, "interval")
    if interval not in KLINE_INTERVALS:
        raise error(-1120)
    return interval


# ---------------------------------------------------------------------------------------------
# Kline history
# ---------------------------------------------------------------------------------------------

# Index of the fields in a numeric candle (all e8 ints except times/counts).
_O, _H, _L, _C, _V, _QV, _N, _TB, _TQ, _F, _LID = range(11)


class LiveAgg:
    """Trades the simulator printed inside one candle."""

    __slots__ = ("high", "low", "vol", "quote", "count", "tb", "tq", "first", "last", "last_price")

    def __init__(self, price8: int, trade_id: int):
        self.high = self.low = self.last_price = price8
        self.vol = self.quote = self.count = self.tb = self.tq = 0
        self.first = self.last = trade_id


class KlineHistory:
    """Seeded kline history of one symbol plus the live candles built from its trades.

    ``start_ms`` is when the simulator started: candles before it are entirely synthetic,
    later ones add the trades recorded through :meth:`record_trade`.
    """

    #: Cap of cached closed rows per symbol (all intervals together); when full, the oldest
    #: tenth (insertion order) is evicted. Rows are rebuilt deterministically on demand.
    ROW_CACHE_MAX = 20_000
    #: Live aggregates (the simulator's own trades folded into a candle) kept per interval, in
    #: candles: 1500 one-minute candles is 25 h. Older candles fall back to the seeded synthetic
    #: part only (their volume/trade count no longer include the printed trades).
    LIVE_KEEP = 1500
    #: Per-interval overrides of :attr:`LIVE_KEEP`: one-second candles are kept for 3 minutes
    #: (180 candles), otherwise they would grow by one object per symbol and second for 25 min.
    LIVE_KEEP_BY_INTERVAL = {"1s": 180}

    def __init__(self, path: PricePath, *, seed: int, symbol: str, start_ms: int, history_days: int,
                 trades_per_second: float, taker_qty8: int):
        self.path = path
        self.symbol = symbol
        self.start_ms = start_ms
        self.history_ms = history_days * DAY_MS
        self._salt = stable_hash("kline", seed, symbol)
        # Synthetic volume scale: the taker flow's volume per ms.
        self._vol_per_ms = max(trades_per_second, 0.05) * taker_qty8 / 1000.0
        self._trades_per_ms = max(trades_per_second, 0.05) / 1000.0
        self._daily = path.daily
        self._rows: dict = {}        # (interval, tz, open) -> [numeric tuple, formatted row, final]
        self._live: dict[str, dict[int, LiveAgg]] = {i: {} for i in KLINE_INTERVALS}
        self.last_trade_price8 = 0

    # -- live trades -----------------------------------------------------------------------
    def record_trade(self, t: int, price8: int, qty8: int, quote8: int, trade_id: int, taker_buy: bool) -> None:
        """Fold one printed trade into the candle of every interval that contains ``t``."""
        self.last_trade_price8 = price8
        for interval, book in self._live.items():
            if interval == "1M" or interval == "1w":
                o = kline_open(interval, t)
            else:
                step = KLINE_INTERVALS_MS[interval]
                o = t - t % step
            agg = book.get(o)
            if agg is None:
                agg = book[o] = LiveAgg(price8, trade_id)
                keep = self.LIVE_KEEP_BY_INTERVAL.get(interval, self.LIVE_KEEP)
                if len(book) > keep + keep // 10:
                    for k in sorted(book)[: len(book) - keep]:
                        del book[k]
            else:
                if price8 > agg.high:
                    agg.high = price8
                if price8 < agg.low:
                    agg.low = price8
                agg.last = trade_id
                agg.last_price = price8
            agg.vol += qty8
            agg.quote += quote8
            agg.count += 1
            if taker_buy:
                agg.tb += qty8
                agg.tq += quote8

    # -- candles ---------------------------------------------------------------------------
    def _open_of(self, interval: str, t: int, tz: int) -> int:
        return kline_open(interval, t + tz) - tz

    def _next_of(self, interval: str, o: int, tz: int) -> int:
        return kline_next(interval, o + tz) - tz

    def earliest_open(self, interval: str, now: int, tz: int = 0) -> int:
        return self._open_of(interval, now - self.history_ms, tz)

    def opens(self, interval: str, now: int, tz: int, start: int | None, end: int | None, limit: int) -> list[int]:
        """Open times selected by Binance's time-range rule, chronological, at most ``limit``."""
        first = self.earliest_open(interval, now, tz)
        last = self._open_of(interval, now, tz)
        if start is not None and end is not None and end < start:
            return []
        if start is not None:
            lo = self._open_of(interval, max(start, first), tz)
            if lo < start:
                lo = self._next_of(interval, lo, tz)
            lo = max(lo, first)
            hi = last if end is None else min(last, self._open_of(interval, end, tz))
            return self._forward(interval, lo, hi, limit, tz)
        hi = last if end is None else min(last, self._open_of(interval, end, tz))
        if hi < first:
            return []
        return self._backward(interval, hi, first, limit, tz)

    def _forward(self, interval: str, lo: int, hi: int, limit: int, tz: int) -> list[int]:
        if lo > hi:
            return []
        if interval != "1M":
            step = KLINE_INTERVALS_MS[interval]
            n = min(limit, (hi - lo) // step + 1)
            return [lo + k * step for k in range(n)]
        out: list[int] = []
        o = lo
        while o <= hi and len(out) < limit:
            out.append(o)
            o = self._next_of(interval, o, tz)
        return out

    def _backward(self, interval: str, hi: int, first: int, limit: int, tz: int) -> list[int]:
        if interval != "1M":
            step = KLINE_INTERVALS_MS[interval]
            n = min(limit, (hi - first) // step + 1)
            return [hi - (n - 1 - k) * step for k in range(n)]
        out: list[int] = []
        o = hi
        while o >= first and len(out) < limit:
            out.append(o)
            o = kline_prev(interval, o + tz) - tz
        out.reverse()
        return out

    def candles(self, interval: str, opens: list[int], now: int, tz: int = 0) -> list[tuple]:
        """Numeric candles ``(open, close_time, o, h, l, c, v, qv, n, tb, tq, first, last)``."""
        return [r[0] for r in self._entries(interval, opens, now, tz)]

    def rows(self, interval: str, opens: list[int], now: int, tz: int = 0) -> list[list]:
        """REST kline rows; rows of closed candles are cached (the same list objects)."""
        out = []
        for ent in self._entries(interval, opens, now, tz):
            row = ent[1]
            if row is None:
                row = kline_row(ent[0])
                if ent[2]:
                    ent[1] = row
            out.append(row)
        return out

    def _entries(self, interval: str, opens: list[int], now: int, tz: int) -> list[list]:
        """``[candle, row or None, final]`` per open time, from the cache or freshly built."""
        if not opens:
            return []
        rows = self._rows
        step = KLINE_INTERVALS_MS.get(interval)
        out: list = [None] * len(opens)
        missing = []
        for j, o in enumerate(opens):
            r = rows.get((interval, tz, o))
            if r is None:
                missing.append(j)
            else:
                out[j] = r
        if missing:
            # Evaluate the path once at every boundary and the midpoint of the missing candles.
            bounds = []
            for j in missing:
                o = opens[j]
                nx = self._next_of(interval, o, tz) if step is None else o + step
                bounds.append((o, nx))
            times: set[int] = set()
            for o, nx in bounds:
                times.update((o, (o + nx) // 2, nx))
            ordered = sorted(times)
            value = dict(zip(ordered, self.path.prices8(ordered)))
            cap = self.ROW_CACHE_MAX
            if len(rows) + len(missing) > cap:
                n = min(len(rows), max(len(rows) + len(missing) - cap, cap // 10))
                for k in list(itertools.islice(rows, n)):
                    del rows[k]
            for j, (o, nx) in zip(missing, bounds):
                cndl, final = self._build(interval, tz, o, nx, value[o], value[(o + nx) // 2], value[nx], now)
                ent = [cndl, None, final]
                out[j] = ent
                if final:
                    rows[(interval, tz, o)] = ent
        return out

    def _build(self, interval: str, tz: int, o: int, nx: int, p_o: int, p_m: int, p_c: int,
               now: int) -> tuple[tuple, bool]:
        d = nx - o
        closed = now >= nx
        x = _mix((self._salt + (o + d * 7 + tz) * _GOLD) & _M64)
        u1 = (x & 0xFFFF) / 65536.0
        u2 = ((x >> 16) & 0xFFFF) / 65536.0
        u3 = ((x >> 32) & 0xFFFF) / 65536.0
        u4 = (x >> 48) / 65536.0
        # Synthetic part: the whole candle before the start, the part before it otherwise.
        syn_end = min(nx, self.start_ms)
        frac = 0.0 if syn_end <= o else (syn_end - o) / d
        if not closed:
            close8 = p_o
        else:
            close8 = p_c
        if (o + nx) // 2 <= min(now, syn_end):
            hi = max(p_o, close8, p_m)
            lo = min(p_o, close8, p_m)
        else:
            hi = max(p_o, close8)
            lo = min(p_o, close8)
        tick = self.path.tick8
        if frac >= 1.0:
            # A seeded wick for fully historical candles: one inner sample misses the extremes.
            w = u4 * 0.5 * self._daily * math.sqrt(d / DAY_MS)
            hi = hi + int(hi * w * u2 / tick) * tick
            lo = max(tick, lo - int(lo * w * u3 / tick) * tick)
        vol = int(self._vol_per_ms * d * frac * (0.5 + u1))
        count = int(self._trades_per_ms * d * frac * (0.5 + u2)) if frac > 0 else 0
        if frac > 0:
            count = max(1, count)
            vol = max(vol, 1)
        vwap = (p_o + close8 + hi + lo) // 4
        quote = vol * vwap // E8
        ratio = 0.3 + 0.4 * u3
        tb = int(vol * ratio)
        tq = int(quote * ratio)
        first = last = -1
        final = closed
        if nx > self.start_ms:
            if not closed:
                final = False
            agg = self._live.get(interval, {}).get(o) if tz == 0 else None
            if agg is not None:
                if agg.high > hi:
                    hi = agg.high
                if agg.low < lo:
                    lo = agg.low
                vol += agg.vol
                quote += agg.quote
                count += agg.count
                tb += agg.tb
                tq += agg.tq
                first, last = agg.first, agg.last
                if not closed:
                    close8 = agg.last_price
            if not closed:
                if agg is None:
                    close8 = self.path.price8(min(now, nx - 1))
                hi = max(hi, close8)
                lo = min(lo, close8)
                if close8 < lo:
                    lo = close8
        return (o, nx - 1, p_o, hi, lo, close8, vol, quote, count, tb, tq, first, last), final

    def current(self, interval: str, now: int) -> tuple:
        """The live candle of ``interval`` (UTC) at ``now``."""
        o = kline_open(interval, now)
        return self.candles(interval, [o], now)[0]


def kline_row(c: tuple) -> list:
    """REST klines row (12 elements) from a numeric candle."""
    f = _fmt
    return [c[0], f(c[2]), f(c[3]), f(c[4]), f(c[5]), f(c[6]), c[1], f(c[7]), c[8], f(c[9]), f(c[10]), "0"]


def _fmt(v: int) -> str:
    return "%d.%08d" % divmod(v, E8)


def kline_ws(symbol: str, interval: str, c: tuple, now: int) -> dict:
    """The WebSocket ``k`` object of a numeric candle."""
    f = _fmt
    return {"t": c[0], "T": c[1], "s": symbol, "i": interval, "f": c[11], "L": c[12], "o": f(c[2]),
            "c": f(c[5]), "h": f(c[3]), "l": f(c[4]), "v": f(c[6]), "n": c[8], "x": now > c[1],
            "q": f(c[7]), "V": f(c[9]), "Q": f(c[10]), "B": "0"}


__all__ = ["PricePath", "KlineHistory", "kline_row", "kline_ws", "parse_time_zone", "check_interval",
           "stable_hash", "BinanceError"]
