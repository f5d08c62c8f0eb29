"""The market-data view: what answers exchangeInfo, depth, trades, aggTrades, klines, avgPrice and
the tickers from the engine's state. Read-only on the state apart from its own caches."""
from __future__ import annotations

import json
from bisect import bisect_left
from decimal import Decimal
from typing import Any

from ..binance.errors import BinanceError, error
from ..binance.intervals import DAY_MS, MINUTE_MS, kline_open
from .clock import SimClock
from .config import SimConfig
from .filters import E8, fmt8
from .market import check_interval, kline_ws, parse_time_zone
from .params import Params
from .state import ZERO, MarketSeq, MarketTrade, SymbolState, clamp_limit, fmt_e8, symbol_state

_fmt = fmt_e8
_ZERO = ZERO
SYMBOL_STATUSES = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")


class MarketView:
    """Market-data answers over the symbol states ``syms`` (shared with the engine)."""

    #: Windows of :meth:`rolling_ticker_values` (the ``@ticker_<w>`` streams) in ms.
    ROLLING_WINDOWS_MS = {"1h": 60 * MINUTE_MS, "4h": 240 * MINUTE_MS, "1d": DAY_MS}
    _ROLLING_KEYS = ("symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "openPrice", "highPrice",
                     "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime", "closeTime", "firstId", "lastId",
                     "count")
    _MINI_KEYS = ("symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime",
                  "closeTime", "firstId", "lastId", "count")

    def __init__(self, syms: dict[str, SymbolState], config: SimConfig, clock: SimClock, seq: MarketSeq):
        self._syms = syms
        self.config = config
        self.clock = clock
        self._seq = seq
        self._info_cache: dict[str, Any] | None = None
        self._price_cache: tuple[tuple[int, int], dict[str, dict[str, str]], list[dict[str, str]]] | None = None

    # =========================================================================================
    # Helpers for the WebSocket layers
    # =========================================================================================
    def top_of_book(self, symbol: str) -> dict[str, Any]:
        """The @bookTicker payload ``{"u","s","b","B","a","A"}`` (cached per book update)."""
        st = symbol_state(self._syms, symbol)
        book = st.book
        c = st.caches.get("tob")
        if c is not None and c["u"] == book.update_id:
            return c
        bb, ba = book.best_bid(), book.best_ask()
        c = {"u": book.update_id, "s": symbol,
             "b": book.pstr(bb) if bb else _ZERO, "B": _fmt(book.bids.levels[bb].qty) if bb else _ZERO,
             "a": book.pstr(ba) if ba else _ZERO, "A": _fmt(book.asks.levels[ba].qty) if ba else _ZERO}
        st.caches["tob"] = c
        return c

    def current_kline(self, symbol: str, interval: str, at: int | None = None) -> dict[str, Any]:
        """The ``interval`` candle containing ``at`` (default: now) in the WS ``k`` shape."""
        st = symbol_state(self._syms, symbol)
        check_interval(interval)
        now = self.clock.now_ms()
        c = st.history.candles(interval, [kline_open(interval, now if at is None else at)], now)[0]
        return kline_ws(symbol, interval, c, now)

    def rolling_ticker_values(self, symbol: str, window: str) -> dict[str, Any]:
        """Rolling-window ticker of one symbol over the last ``window`` (``1h``/``4h``/``1d``)."""
        st = symbol_state(self._syms, symbol)
        window_ms = self.ROLLING_WINDOWS_MS[window]
        now = self.clock.now_ms()
        if window_ms == DAY_MS:
            t = self.ticker(st, now)
            return {k: t[k] for k in self._ROLLING_KEYS}
        key = (self._seq.tick_seq, st.trade_seq, now // 1000)
        ck = "rolling_" + window
        c = st.caches.get(ck)
        if c is not None and c[0] == key:
            return c[1]
        d = self._window_fields(st, now, window_ms, "1m", 1000)
        st.caches[ck] = (key, d)
        return d

    # =========================================================================================
    # Selection
    # =========================================================================================
    @staticmethod
    def _symbol_status(p: Params) -> str | None:
        return p.enum("symbolStatus", SYMBOL_STATUSES)

    @staticmethod
    def _check_status(st: SymbolState, status: str | None) -> None:
        if status is not None and st.spec.status != status:
            raise BinanceError(-1220, "The symbol's status does not match the requested symbolStatus.")

    def _select(self, p: Params) -> tuple[list[SymbolState], bool]:
        """``symbol`` | ``symbols`` | all; returns (states, single)."""
        sym = p.symbol(required=False)
        syms = p.symbols()
        if sym is not None and syms is not None:
            raise error(-1128)
        status = self._symbol_status(p)
        if sym is not None:
            st = symbol_state(self._syms, sym)
            self._check_status(st, status)
            return [st], True
        if syms is not None:
            out = [symbol_state(self._syms, s) for s in syms]
        else:
            out = list(self._syms.values())
        if status is not None:
            out = [s for s in out if s.spec.status == status]
        return out, False

    # =========================================================================================
    # REST market data
    # =========================================================================================
    def limits_changed(self) -> None:
        self._info_cache = None

    def exchange_info(self, p: Params) -> dict[str, Any]:
        if self._info_cache is None:
            self._info_cache = {
                "timezone": "UTC",
                "serverTime": 0,
                "rateLimits": self.config.rate_limits(),
                "exchangeFilters": [],
                "symbols": [st.rules.exchange_info_entry() for st in self._syms.values()],
            }
        info = self._info_cache
        sym = p.symbol(required=False)
        syms = p.symbols()
        perms_raw = p.str("permissions")
        status = self._symbol_status(p)
        if sym is None and syms is None and perms_raw is None and status is None:
            return {**info, "serverTime": self.clock.now_ms()}
        if sym is not None and syms is not None:
            raise error(-1128)
        if sym is not None or syms is not None:
            names = [sym] if sym is not None else (syms or [])
            sts = [symbol_state(self._syms, n) for n in names]
            if status is not None:
                for st in sts:
                    self._check_status(st, status)
        else:
            sts = list(self._syms.values())
            if status is not None:
                sts = [s for s in sts if s.spec.status == status]
        if perms_raw is not None:
            try:
                perms = json.loads(perms_raw) if perms_raw.startswith("[") else [perms_raw]
            except ValueError:
                raise error(-1100, "permissions", "SPOT|MARGIN|LEVERAGED") from None
            if not isinstance(perms, list):
                raise error(-1100, "permissions", "SPOT|MARGIN|LEVERAGED")
            wanted = set(perms)
            by_name = {e["symbol"]: e for e in info["symbols"]}
            sts = [s for s in sts
                   if any(wanted.intersection(ps) for ps in by_name[s.symbol]["permissionSets"])]
        entries = {e["symbol"]: e for e in info["symbols"]}
        return {**info, "serverTime": self.clock.now_ms(), "symbols": [entries[s.symbol] for s in sts]}

    def depth(self, p: Params) -> dict[str, Any]:
        st = symbol_state(self._syms, p.symbol())
        limit = p.int("limit", default=100, lo=1)
        self._check_status(st, self._symbol_status(p))
        if limit > 5000:
            limit = 5000
        return st.book.snapshot(limit)

    @staticmethod
    def _trade_dict(t: MarketTrade) -> dict[str, Any]:
        return {"id": t[0], "price": _fmt(t[1]), "qty": _fmt(t[2]), "quoteQty": _fmt(t[3]), "time": t[4],
                "isBuyerMaker": t[5], "isBestMatch": True}

    def trades(self, p: Params) -> list[dict[str, Any]]:
        st = symbol_state(self._syms, p.symbol())
        limit = clamp_limit(p)
        return [self._trade_dict(t) for t in st.trades[-limit:]]

    def historical_trades(self, p: Params) -> list[dict[str, Any]]:
        st = symbol_state(self._syms, p.symbol())
        limit = clamp_limit(p)
        from_id = p.int("fromId", lo=0)
        if from_id is None:
            sel = st.trades[-limit:]
        else:
            first = st.trades[0][0] if st.trades else 0
            i = max(0, from_id - first)
            sel = st.trades[i:i + limit]
        return [self._trade_dict(t) for t in sel]

    def agg_trades(self, p: Params) -> list[dict[str, Any]]:
        st = symbol_state(self._syms, p.symbol())
        limit = clamp_limit(p)
        from_id = p.int("fromId", lo=0)
        start = p.int("startTime", lo=0)
        end = p.int("endTime", lo=0)
        aggs = st.aggs
        if from_id is not None:
            first = aggs[0][0] if aggs else 0
            i = max(0, from_id - first)
            sel = aggs[i:i + limit]
            if end is not None:
                sel = [a for a in sel if a[5] <= end]
        elif start is not None or end is not None:
            if start is not None and end is not None and end < start:
                raise error(-1128)
            times = [a[5] for a in aggs]
            if start is not None:
                i = bisect_left(times, start)
                j = len(aggs) if end is None else bisect_left(times, end + 1)
                sel = aggs[i:min(j, i + limit)]
            else:
                assert end is not None
                j = bisect_left(times, end + 1)
                sel = aggs[max(0, j - limit):j]
        else:
            sel = aggs[-limit:]
        return [{"a": a[0], "p": _fmt(a[1]), "q": _fmt(a[2]), "f": a[3], "l": a[4], "T": a[5], "m": a[6],
                 "M": True} for a in sel]

    def klines(self, p: Params) -> list[list[Any]]:
        st = symbol_state(self._syms, p.symbol())
        interval = check_interval(p.str("interval"))
        start = p.int("startTime", lo=0)
        end = p.int("endTime", lo=0)
        tz = parse_time_zone(p.str("timeZone"))
        limit = clamp_limit(p, 500, 1000)
        now = self.clock.now_ms()
        h = st.history
        opens = h.opens(interval, now, tz, start, end, limit)
        return h.rows(interval, opens, now, tz)

    def avg_price8(self, st: SymbolState, now: int) -> int:
        """The 5-minute average price of ``st`` in e8 (cached per trade and second)."""
        key = ("avg", st.trade_seq, now // 1000)
        c = st.caches.get("avg")
        if c is not None and c[0] == key:
            return c[1]
        i = bisect_left(st.trade_times, now - 5 * MINUTE_MS)
        vol = quote = 0
        for t in st.trades[i:]:
            vol += t[2]
            quote += t[3]
        if vol > 0:
            v = quote * E8 // vol
        else:
            v = st.path.price8(now)
        st.caches["avg"] = (key, v)
        return v

    def avg_price(self, p: Params) -> dict[str, Any]:
        st = symbol_state(self._syms, p.symbol())
        now = self.clock.now_ms()
        return {"mins": 5, "price": _fmt(self.avg_price8(st, now)), "closeTime": st.last_time or now}

    def _window_fields(self, st: SymbolState, now: int, window_ms: int, interval: str,
                       max_candles: int) -> dict[str, Any]:
        """The rolling-window statistics of ``st`` over ``(now - window_ms, now]`` (REST ticker field
        names, FULL minus the book): open/high/low from ``interval`` candles and the price path,
        volumes, and the trade-id range from the kept trades — or, where the window reaches past
        them, the per-minute index (to the minute, Binance's documented tolerance)."""
        open_t = now - window_ms
        h = st.history
        opens = h.opens(interval, now, 0, kline_open(interval, open_t), now, max_candles)
        cs = h.candles(interval, opens, now)
        open8 = st.path.price8(open_t)
        last8 = st.last_price or st.path.price8(now)
        hi = max([open8, last8] + [c_[3] for c_ in cs])
        lo = min([open8, last8] + [c_[4] for c_ in cs])
        vol = sum(c_[6] for c_ in cs)
        quote = sum(c_[7] for c_ in cs)
        if st.trade_times and st.trade_times[0] < open_t:
            i = bisect_left(st.trade_times, open_t)
            first_id = st.trades[i][0] if i < len(st.trades) else -1
        else:
            first_id = st.trades[0][0] if st.trades else -1
            for m, tid in st.minutes:
                if m + MINUTE_MS > open_t:
                    if first_id == -1 or tid < first_id:
                        first_id = tid
                    break
        if first_id != -1:
            last_id = st.trades[-1][0]
            count = last_id - first_id + 1
        else:
            first_id = last_id = -1
            count = 0
        chg = last8 - open8
        pct = Decimal(chg * 100) / Decimal(open8) if open8 else Decimal(0)
        return {
            "symbol": st.symbol,
            "priceChange": fmt8(chg),
            "priceChangePercent": f"{pct:.3f}",
            "weightedAvgPrice": _fmt(quote * E8 // vol if vol else last8),
            "openPrice": _fmt(open8),
            "highPrice": _fmt(hi),
            "lowPrice": _fmt(lo),
            "lastPrice": _fmt(last8),
            "volume": _fmt(vol),
            "quoteVolume": _fmt(quote),
            "openTime": open_t,
            "closeTime": now,
            "firstId": first_id,
            "lastId": last_id,
            "count": count,
        }

    def ticker(self, st: SymbolState, now: int) -> dict[str, Any]:
        """The FULL 24 h ticker of ``st`` (cached per tick, trade and second)."""
        key = (self._seq.tick_seq, st.trade_seq, now // 1000)
        c = st.caches.get("t24")
        if c is not None and c[0] == key:
            return c[1]
        w = self._window_fields(st, now, DAY_MS, "15m", 200)
        book = st.book
        bb, ba = book.best_bid(), book.best_ask()
        d = {
            "symbol": st.symbol,
            "priceChange": w["priceChange"],
            "priceChangePercent": w["priceChangePercent"],
            "weightedAvgPrice": w["weightedAvgPrice"],
            "prevClosePrice": w["openPrice"],
            "lastPrice": w["lastPrice"],
            "lastQty": _fmt(st.last_qty),
            "bidPrice": _fmt(bb) if bb else _ZERO,
            "bidQty": _fmt(book.bids.levels[bb].qty) if bb else _ZERO,
            "askPrice": _fmt(ba) if ba else _ZERO,
            "askQty": _fmt(book.asks.levels[ba].qty) if ba else _ZERO,
            **{k: w[k] for k in ("openPrice", "highPrice", "lowPrice", "volume", "quoteVolume", "openTime",
                                 "closeTime", "firstId", "lastId", "count")},
        }
        st.caches["t24"] = (key, d)
        return d

    def ticker_24hr(self, p: Params) -> dict[str, Any] | list[dict[str, Any]]:
        typ = p.enum("type", ("FULL", "MINI"), default="FULL")
        sts, single = self._select(p)
        now = self.clock.now_ms()
        out = []
        for st in sts:
            d = self.ticker(st, now)
            if typ == "MINI":
                d = {k: d[k] for k in self._MINI_KEYS}
            out.append(d)
        return out[0] if single else out

    def ticker_price(self, p: Params) -> Any:
        sym = p.symbol(required=False)
        seq = self._seq
        key = (seq.tick_seq, seq.trade_seq)
        c = self._price_cache
        if c is None or c[0] != key:
            per = {}
            for st in self._syms.values():
                price = st.last_price or st.path.price8(seq.last_tick)
                per[st.symbol] = {"symbol": st.symbol, "price": _fmt(price)}
            c = self._price_cache = (key, per, list(per.values()))
        if sym is not None:
            if p.get("symbols") is not None:
                raise error(-1128)
            d = c[1].get(sym)
            if d is None:
                raise error(-1121)
            return d
        syms = p.symbols()
        if syms is None:
            return c[2]
        return [c[1][s] if s in c[1] else symbol_state(self._syms, s) for s in syms]

    def book_ticker(self, p: Params) -> dict[str, Any] | list[dict[str, Any]]:
        sts, single = self._select(p)
        out = []
        for st in sts:
            t = self.top_of_book(st.symbol)
            out.append({"symbol": st.symbol, "bidPrice": t["b"], "bidQty": t["B"], "askPrice": t["a"],
                        "askQty": t["A"]})
        return out[0] if single else out
