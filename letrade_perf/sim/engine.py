"""The simulator's exchange: accounts, orders, matching, market data and the synthetic market.

Pure Python (no aiohttp): the REST app and the WebSocket API call :class:`Exchange` with a
:class:`~letrade_perf.sim.params.Params` and render what it returns or raises. Amounts are
integers in e8 units internally (exact fixed point at Binance's 8 decimals) and decimal strings
on the way out.
"""
from __future__ import annotations

import json
import random
from bisect import bisect_left
from collections import deque
from decimal import Decimal

from ..binance.errors import (
    DUPLICATE_ORDER,
    INSUFFICIENT_BALANCE,
    LIQUIDITY_LOW,
    MARKET_CLOSED,
    UNKNOWN_ORDER,
    WOULD_MATCH,
    WOULD_TRIGGER,
    BinanceError,
    error,
    filter_failure,
    order_rejected,
)
from ..binance.intervals import DAY_MS, MINUTE_MS, kline_open
from .book import OrderBook
from .clock import SimClock
from .config import SimConfig
from .events import EventHub, TradeEvent
from .filters import (
    E8,
    MAX_NUM_ALGO_ORDERS,
    ORDER_TYPES,
    STOP_TYPES,
    STP_MODES,
    SymbolRules,
    ceil_div,
    check_precision,
    dec_e8,
    fmt8,
    to_e8,
)
from .market import KlineHistory, PricePath, _u01, check_interval, kline_ws, parse_time_zone, stable_hash
from .params import Params
from .stats import SimStats

CANNOT_TRADE = "This account may not place or cancel orders."
CANCEL_RESTRICTED = "Order was not canceled due to cancel restrictions."
ICEBERG_EXCEEDS = "IcebergQty exceeds QTY."
BOTH_IDS_EMPTY = "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
QTY_OR_QUOTE_EMPTY = "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
STOP_OR_TRAILING_EMPTY = "Param 'stopPrice' or 'trailingDelta' must be sent, but both were empty/null!"
TRAILING_UNSUPPORTED = "Trailing stop orders are not supported for this symbol."
SYMBOL_STATUSES = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")
_CID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_OPEN = ("NEW", "PARTIALLY_FILLED")
_ZERO = "0.00000000"
#: Market trades (``/trades``, ``/historicalTrades``) and aggregate trades (``/aggTrades``) kept per
#: symbol. At least 1000 (the largest ``limit`` of ``GET /api/v3/trades``); at the default flow
#: (5 taker arrivals/s ≈ 5.5 prints/s) this is ~15 minutes, three times the ``avgPrice`` window.
#: ``historicalTrades``/``aggTrades`` with a ``fromId`` older than the oldest kept id start at the
#: oldest kept one. ``avgPrice`` averages the kept trades of its 5-minute window, so above
#: ~15 trades/s per symbol it covers less than 5 minutes. Lists are trimmed once they exceed the
#: limit by :data:`_TRIM_SLACK` (10 %), so a trim is amortised.
_TRADES_KEEP = 5_000
#: Closed (FILLED/CANCELED/EXPIRED/REJECTED) orders kept per account and symbol for ``allOrders``,
#: ``GET /api/v3/order`` and ``origClientOrderId`` look-ups; older closed orders are forgotten
#: (``-2013``). Open orders are never dropped, whatever their age.
_CLOSED_ORDERS_KEEP = 5_000
#: Account trades (``myTrades``) kept per account and symbol.
_MY_TRADES_KEEP = 10_000
#: Per-minute index ``(minute open ms, first trade id)`` kept per symbol: a little more than a day,
#: so the rolling 24 h ticker's ``firstId``/``count`` stay right after the trades themselves are
#: gone. Then the window starts at the minute containing ``openTime`` (up to 59 999 ms wider;
#: Binance documents the same tolerance for its rolling-window ``GET /api/v3/ticker``).
_MINUTE_INDEX_KEEP = 1_500
_TRIM_SLACK = 0.1
_TRADES_MAX = int(_TRADES_KEEP * (1 + _TRIM_SLACK))
_CLOSED_ORDERS_MAX = int(_CLOSED_ORDERS_KEEP * (1 + _TRIM_SLACK))
_MY_TRADES_MAX = int(_MY_TRADES_KEEP * (1 + _TRIM_SLACK))
_SEED_TRADES = 500
_MAX_ARRIVALS_PER_TICK = 50


def _fmt(v: int) -> str:
    return "%d.%08d" % divmod(v, E8)


def _rate_e8(s: str) -> int:
    return dec_e8(s)


class Order:
    """One account order (all amounts in e8 units)."""

    __slots__ = ("symbol", "order_id", "client_id", "account", "side", "is_buy", "type", "tif", "price", "qty",
                 "quote_qty", "stop_price", "iceberg", "executed", "cum_quote", "status", "time", "update_time",
                 "working_time", "locked", "lock_asset", "expiry_reason", "stp", "strategy_id", "strategy_type",
                 "entry", "triggered")

    def __init__(self, **kw):
        self.entry = None
        self.expiry_reason = None
        self.triggered = False
        self.executed = 0
        self.cum_quote = 0
        self.locked = 0
        for k, v in kw.items():
            setattr(self, k, v)

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    @property
    def on_book(self) -> bool:
        return self.entry is not None


class Account:
    """Balances (``asset -> [free, locked]`` in e8), orders and trades of one API key."""

    def __init__(self, spec, assets: list[str], now: int):
        self.api_key = spec.api_key
        self.spec = spec
        self.can_trade = spec.can_trade
        self.maker_rate = _rate_e8(spec.maker_commission)
        self.taker_rate = _rate_e8(spec.taker_commission)
        self.uid = stable_hash("uid", spec.api_key) % 900_000_000 + 100_000_000
        self.balances: dict[str, list[int]] = {}
        for a, v in spec.balances.items():
            self.balances[a] = [dec_e8(v), 0]
        for a in assets:
            self.balances.setdefault(a, [0, 0])
        self.update_time = now
        self.orders: dict[tuple[str, int], Order] = {}
        self.open: dict[str, dict[int, Order]] = {}
        self.open_cids: dict[tuple[str, str], Order] = {}
        self.last_cid: dict[tuple[str, str], Order] = {}
        self.history: dict[str, list[Order]] = {}
        self.trades: dict[str, list[tuple]] = {}

    def bal(self, asset: str) -> list[int]:
        b = self.balances.get(asset)
        if b is None:
            b = self.balances[asset] = [0, 0]
        return b


class SymbolState:
    """Everything the engine keeps per symbol."""

    def __init__(self, spec, config: SimConfig, now: int):
        self.spec = spec
        self.rules = SymbolRules(spec)
        r = self.rules
        self.symbol = spec.symbol
        seed = config.seed
        self.path = PricePath(seed, spec.symbol, float(spec.price), spec.volatility, r.tick)
        ref8 = dec_e8(spec.price)
        # Grid of the synthetic ladder: ~0.5 bp apart, whole ticks.
        self.grid = max(1, int(ref8 * 0.00005) // r.tick) * r.tick
        # Typical synthetic taker and level sizes from the symbol's minimum notional.
        min_not = max(r.min_notional, 10 * r.tick)
        self.taker_qty = self._lot(40 * min_not * E8 // ref8)
        self.level_qty = self._lot(400 * min_not * E8 // ref8)
        self.history = KlineHistory(self.path, seed=seed, symbol=spec.symbol, start_ms=now,
                                    history_days=config.market.history_days,
                                    trades_per_second=config.market.trades_per_second, taker_qty8=self.taker_qty)
        self.book = OrderBook(spec.symbol, update_id=1000 + stable_hash("book", seed, spec.symbol) % 1_000_000)
        self.size_salt = stable_hash("size", seed, spec.symbol)
        self.rng = random.Random(stable_hash("flow", seed, spec.symbol))
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_agg_id = 1
        self.trades: list[tuple] = []          # (id, price, qty, quote, time, buyer_is_maker)
        self.trade_times: list[int] = []
        self.aggs: list[list] = []             # [a, price, qty, first, last, time, buyer_is_maker]
        self.minutes: deque = deque(maxlen=_MINUTE_INDEX_KEEP)   # (minute open ms, first trade id)
        self._agg_key = None
        self.last_price = 0
        self.last_qty = 0
        self.last_time = 0
        self.trade_seq = 0
        self.mm_top = None
        self.mm_dirty = True
        self.sizes: dict[int, int] = {}
        self.next_arrival = now
        self.stops: list[Order] = []
        self.caches: dict = {}

    def _lot(self, q: int) -> int:
        r = self.rules
        q -= q % r.step
        return max(q, r.min_qty, r.step)

    def level_size(self, price: int) -> int:
        idx = price // self.grid
        q = self.sizes.get(idx)
        if q is None:
            if len(self.sizes) > 20_000:
                self.sizes.clear()
            u = _u01(self.size_salt, idx)
            q = self._lot(int(self.level_qty * (0.3 + 1.4 * u)))
            self.sizes[idx] = q
        return q


class Exchange:
    """Matching engine, accounts and market data of the simulator.

    Public API (``p`` is a :class:`Params`; every method raises ``BinanceError`` on bad input):

    * market data: :meth:`exchange_info`, :meth:`depth`, :meth:`trades`, :meth:`historical_trades`,
      :meth:`agg_trades`, :meth:`klines`, :meth:`ui_klines`, :meth:`avg_price`, :meth:`ticker_24hr`,
      :meth:`ticker_price`, :meth:`book_ticker`
    * account: :meth:`account`, :meth:`new_order`, :meth:`test_order`, :meth:`get_order`,
      :meth:`cancel_order`, :meth:`open_orders`, :meth:`cancel_open_orders`, :meth:`all_orders`,
      :meth:`my_trades`, :meth:`deposit`
    * market clock: :meth:`tick` (called every ``config.market.tick_ms``)

    Helpers for the WebSocket layers (plain values, no Params):

    * :meth:`symbols` — list of symbol names; :meth:`has_symbol`
    * :meth:`top_of_book` — ``{"u","s","b","B","a","A"}`` (the @bookTicker payload)
    * :meth:`depth_snapshot` — ``{"lastUpdateId","bids","asks"}`` for N levels; :meth:`book_update_id`
    * :meth:`ticker_values` — the FULL 24 h ticker dict of one symbol (REST field names)
    * :meth:`current_kline` — the live candle as the WS ``k`` object
    * :meth:`last_trade_time`, :meth:`avg_price_value` (e8 int), :meth:`account_ids`
    """

    def __init__(self, config: SimConfig, clock: SimClock, events: EventHub, stats: SimStats):
        self.config = config
        self.clock = clock
        self.events = events
        self.stats = stats
        now = clock.now_ms()
        self.start_ms = now
        self._syms: dict[str, SymbolState] = {}
        for spec in config.symbols:
            self._syms[spec.symbol] = SymbolState(spec, config, now)
        assets: list[str] = []
        for st in self._syms.values():
            for a in (st.rules.base, st.rules.quote):
                if a not in assets:
                    assets.append(a)
        self._accounts: dict[str, Account] = {a.api_key: Account(a, assets, now) for a in config.accounts}
        self._cid_rng = random.Random(stable_hash("cid", config.seed))
        self._exec_id = 1
        self._tick_seq = 0
        self._trade_seq = 0
        self._last_tick = now
        self._info_cache: dict | None = None
        self._price_cache: tuple | None = None
        # Per-operation event buffers.
        self._depth = 0
        self._reports: list[tuple[str, dict]] = []
        self._touched: dict[str, set[str]] = {}
        self._books_touched: set[str] = set()
        self._now = now
        for st in self._syms.values():
            self._seed_trades(st, now)
            self._begin(now)
            self._refresh_ladder(st, now)
            self._end()

    # =========================================================================================
    # Helpers for the other layers
    # =========================================================================================
    def symbols(self) -> list[str]:
        return list(self._syms)

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._syms

    def account_ids(self) -> list[str]:
        return list(self._accounts)

    def book_update_id(self, symbol: str) -> int:
        return self._sym(symbol).book.update_id

    def top_of_book(self, symbol: str) -> dict:
        """The @bookTicker payload ``{"u","s","b","B","a","A"}`` (cached per book update)."""
        st = self._sym(symbol)
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

    def depth_snapshot(self, symbol: str, limit: int = 100) -> dict:
        return self._sym(symbol).book.snapshot(limit)

    def last_trade_time(self, symbol: str) -> int:
        return self._sym(symbol).last_time

    def avg_price_value(self, symbol: str) -> int:
        return self._avg_price8(self._sym(symbol), self.clock.now_ms())

    def current_kline(self, symbol: str, interval: str, at: int | None = None) -> dict:
        """The ``interval`` candle containing ``at`` (default: now) in the WS ``k`` shape.

        Evaluated as of the clock's now, so a candle whose close time has passed comes back
        final (``x: true``) with exactly the values REST klines return for it.
        """
        st = self._sym(symbol)
        check_interval(interval)
        now = self.clock.now_ms()
        c = st.history.candles(interval, [kline_open(interval, now if at is None else at)], now)[0]
        return kline_ws(symbol, interval, c, now)

    def ticker_values(self, symbol: str) -> dict:
        return self._ticker(self._sym(symbol), self.clock.now_ms())

    #: Windows of :meth:`rolling_ticker_values` (the ``@ticker_<w>`` streams) in ms.
    ROLLING_WINDOWS_MS = {"1h": 60 * MINUTE_MS, "4h": 240 * MINUTE_MS, "1d": DAY_MS}
    _ROLLING_KEYS = ("symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "openPrice", "highPrice",
                     "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime", "closeTime", "firstId", "lastId",
                     "count")

    def rolling_ticker_values(self, symbol: str, window: str) -> dict:
        """Rolling-window ticker of one symbol over the last ``window`` (``1h``/``4h``/``1d``) with the
        field names of REST ``GET /api/v3/ticker`` (FULL). Read-only.

        ``1d`` is the 24 h ticker's own computation (the values equal :meth:`ticker_values`). The
        shorter windows use the same data (candles, kept trades, per-minute index) on one-minute
        candles, so their window starts at the minute containing ``openTime`` (up to 59 999 ms
        wider, Binance's documented tolerance). Cached per symbol and window like the 24 h ticker.
        """
        st = self._sym(symbol)
        window_ms = self.ROLLING_WINDOWS_MS[window]
        now = self.clock.now_ms()
        if window_ms == DAY_MS:
            t = self._ticker(st, now)
            return {k: t[k] for k in self._ROLLING_KEYS}
        key = (self._tick_seq, st.trade_seq, now // 1000)
        ck = "rolling_" + window
        c = st.caches.get(ck)
        if c is not None and c[0] == key:
            return c[1]
        d = self._window_fields(st, now, window_ms, "1m", 1000)
        st.caches[ck] = (key, d)
        return d

    # =========================================================================================
    # Market data
    # =========================================================================================
    def _sym(self, symbol: str | None) -> SymbolState:
        st = self._syms.get(symbol)  # type: ignore[arg-type]
        if st is None:
            raise error(-1121)
        return st

    def _symbol_status(self, p: Params) -> str | None:
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
            st = self._sym(sym)
            self._check_status(st, status)
            return [st], True
        if syms is not None:
            out = [self._sym(s) for s in syms]
        else:
            out = list(self._syms.values())
        if status is not None:
            out = [s for s in out if s.spec.status == status]
        return out, False

    def limits_changed(self) -> None:
        """The rate limits were changed at runtime: rebuild exchangeInfo's ``rateLimits``."""
        self._info_cache = None

    def exchange_info(self, p: Params) -> dict:
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
            names = [sym] if sym is not None else syms
            sts = [self._sym(n) for n in names]
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

    def depth(self, p: Params) -> dict:
        st = self._sym(p.symbol())
        limit = p.int("limit", default=100, lo=1)
        self._check_status(st, self._symbol_status(p))
        if limit > 5000:
            limit = 5000
        return st.book.snapshot(limit)

    @staticmethod
    def _limit(p: Params, default: int = 500, hi: int = 1000) -> int:
        n = p.int("limit", default=default, lo=1)
        return hi if n > hi else n

    @staticmethod
    def _trade_dict(t: tuple) -> dict:
        return {"id": t[0], "price": _fmt(t[1]), "qty": _fmt(t[2]), "quoteQty": _fmt(t[3]), "time": t[4],
                "isBuyerMaker": t[5], "isBestMatch": True}

    def trades(self, p: Params) -> list:
        st = self._sym(p.symbol())
        limit = self._limit(p)
        return [self._trade_dict(t) for t in st.trades[-limit:]]

    def historical_trades(self, p: Params) -> list:
        st = self._sym(p.symbol())
        limit = self._limit(p)
        from_id = p.int("fromId", lo=0)
        if from_id is None:
            sel = st.trades[-limit:]
        else:
            first = st.trades[0][0] if st.trades else 0
            i = max(0, from_id - first)
            sel = st.trades[i:i + limit]
        return [self._trade_dict(t) for t in sel]

    def agg_trades(self, p: Params) -> list:
        st = self._sym(p.symbol())
        limit = self._limit(p)
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
                j = bisect_left(times, end + 1)
                sel = aggs[max(0, j - limit):j]
        else:
            sel = aggs[-limit:]
        return [{"a": a[0], "p": _fmt(a[1]), "q": _fmt(a[2]), "f": a[3], "l": a[4], "T": a[5], "m": a[6],
                 "M": True} for a in sel]

    def klines(self, p: Params) -> list:
        st = self._sym(p.symbol())
        interval = check_interval(p.str("interval"))
        start = p.int("startTime", lo=0)
        end = p.int("endTime", lo=0)
        tz = parse_time_zone(p.str("timeZone"))
        limit = self._limit(p, 500, 1000)
        now = self.clock.now_ms()
        h = st.history
        opens = h.opens(interval, now, tz, start, end, limit)
        return h.rows(interval, opens, now, tz)

    def ui_klines(self, p: Params) -> list:
        return self.klines(p)

    def _avg_price8(self, st: SymbolState, now: int) -> int:
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

    def avg_price(self, p: Params) -> dict:
        st = self._sym(p.symbol())
        now = self.clock.now_ms()
        return {"mins": 5, "price": _fmt(self._avg_price8(st, now)), "closeTime": st.last_time or now}

    def _window_fields(self, st: SymbolState, now: int, window_ms: int, interval: str, max_candles: int) -> dict:
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

    def _ticker(self, st: SymbolState, now: int) -> dict:
        key = (self._tick_seq, st.trade_seq, now // 1000)
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

    _MINI_KEYS = ("symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime",
                  "closeTime", "firstId", "lastId", "count")

    def ticker_24hr(self, p: Params):
        typ = p.enum("type", ("FULL", "MINI"), default="FULL")
        sts, single = self._select(p)
        now = self.clock.now_ms()
        out = []
        for st in sts:
            d = self._ticker(st, now)
            if typ == "MINI":
                d = {k: d[k] for k in self._MINI_KEYS}
            out.append(d)
        return out[0] if single else out

    def ticker_price(self, p: Params):
        sym = p.symbol(required=False)
        key = (self._tick_seq, self._trade_seq)
        c = self._price_cache
        if c is None or c[0] != key:
            per = {}
            for st in self._syms.values():
                price = st.last_price or st.path.price8(self._last_tick)
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
        return [c[1][s] if s in c[1] else self._sym(s) for s in syms]

    def book_ticker(self, p: Params):
        sts, single = self._select(p)
        out = []
        for st in sts:
            t = self.top_of_book(st.symbol)
            out.append({"symbol": st.symbol, "bidPrice": t["b"], "bidQty": t["B"], "askPrice": t["a"],
                        "askQty": t["A"]})
        return out[0] if single else out

    # =========================================================================================
    # Accounts
    # =========================================================================================
    def _acct(self, account_id: str) -> Account:
        a = self._accounts.get(account_id)
        if a is None:
            raise error(-2015)
        return a

    def account(self, account_id: str, p: Params) -> dict:
        a = self._acct(account_id)
        omit = p.bool("omitZeroBalances", False)
        bals = [{"asset": k, "free": _fmt(v[0]), "locked": _fmt(v[1])} for k, v in a.balances.items()
                if not omit or v[0] or v[1]]
        return {
            "makerCommission": a.maker_rate * 10_000 // E8,
            "takerCommission": a.taker_rate * 10_000 // E8,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": _fmt(a.maker_rate), "taker": _fmt(a.taker_rate), "buyer": _ZERO,
                                "seller": _ZERO},
            "canTrade": a.can_trade,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": a.update_time,
            "accountType": "SPOT",
            "balances": bals,
            "permissions": ["SPOT"],
            "uid": a.uid,
        }

    def balance(self, account_id: str, asset: str) -> tuple[Decimal, Decimal]:
        """(free, locked) of one asset as Decimals (tests, control API)."""
        b = self._acct(account_id).balances.get(asset, [0, 0])
        return Decimal(b[0]) / E8, Decimal(b[1]) / E8

    def deposit(self, account_id: str, asset: str, amount: Decimal) -> dict:
        a = self._acct(account_id)
        amount = Decimal(amount)
        check_precision("amount", amount)
        if amount <= 0:
            raise error(-1100, "amount", "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
        v = to_e8(amount)
        now = self.clock.now_ms()
        self._begin(now)
        try:
            a.bal(asset)[0] += v
            self._touch(a, asset)
            self._reports.append((a.api_key, {"e": "balanceUpdate", "E": now, "a": asset, "d": _fmt(v), "T": now}))
        finally:
            self._end()
        free, locked = a.balances[asset]
        return {"asset": asset, "free": _fmt(free), "locked": _fmt(locked)}

    # =========================================================================================
    # Operation bracket: events are buffered and flushed in Binance's order
    # =========================================================================================
    def _begin(self, now: int) -> None:
        if self._depth == 0:
            self._now = now
        self._depth += 1

    def _end(self) -> None:
        self._depth -= 1
        if self._depth:
            return
        now = self._now
        if self._books_touched:
            for sym in sorted(self._books_touched):
                bc = self._syms[sym].book.flush(now)
                if bc is not None:
                    self.events.book(bc)
            self._books_touched.clear()
        reports, self._reports = self._reports, []
        touched, self._touched = self._touched, {}
        for acct_id, ev in reports:
            self.events.user(acct_id, ev)
        for acct_id, assets in touched.items():
            a = self._accounts[acct_id]
            a.update_time = now
            self.events.user(acct_id, {
                "e": "outboundAccountPosition", "E": now, "u": now,
                "B": [{"a": x, "f": _fmt(a.balances[x][0]), "l": _fmt(a.balances[x][1])} for x in sorted(assets)]})

    def _touch(self, a: Account, asset: str) -> None:
        s = self._touched.get(a.api_key)
        if s is None:
            s = self._touched[a.api_key] = set()
        s.add(asset)

    def _report(self, o: Order, x: str, *, last_qty: int = 0, last_price: int = 0, fee: int = 0,
                fee_asset: str | None = None, trade_id: int = -1, maker: bool = False, last_quote: int = 0,
                cancel_cid: str | None = None) -> None:
        now = self._now
        ev = {
            "e": "executionReport", "E": now, "s": o.symbol,
            "c": cancel_cid if cancel_cid is not None else o.client_id,
            "S": o.side, "o": o.type, "f": o.tif, "q": _fmt(o.qty), "p": _fmt(o.price), "P": _fmt(o.stop_price),
            "F": _fmt(o.iceberg), "g": -1, "C": o.client_id if cancel_cid is not None else "",
            "x": x, "X": o.status, "r": "NONE", "i": o.order_id, "l": _fmt(last_qty), "z": _fmt(o.executed),
            "L": _fmt(last_price), "n": _fmt(fee) if fee_asset is not None else "0", "N": fee_asset,
            "T": now, "t": trade_id, "I": self._exec_id,
            "w": o.entry is not None if x != "NEW" else (o.type in ("LIMIT", "LIMIT_MAKER") and o.tif == "GTC"),
            "m": maker, "M": False,
            "O": o.time, "Z": _fmt(o.cum_quote), "Y": _fmt(last_quote), "Q": _fmt(o.quote_qty),
            "W": o.working_time, "V": o.stp,
        }
        if o.strategy_id is not None:
            ev["j"] = o.strategy_id
        if o.strategy_type is not None:
            ev["J"] = o.strategy_type
        if x == "EXPIRED" and o.expiry_reason:
            ev["eR"] = o.expiry_reason
        self._exec_id += 1
        self.stats.order_events[x] += 1
        self._reports.append((o.account, ev))

    # =========================================================================================
    # Orders: parsing and validation
    # =========================================================================================
    def _parse_order(self, a: Account, p: Params, test: bool) -> dict:
        st = self._sym(p.symbol())
        r = st.rules
        side = p.str("side", required=True)
        if side not in ("BUY", "SELL"):
            raise error(-1117)
        otype = p.str("type", required=True)
        if otype not in ORDER_TYPES:
            raise error(-1116)
        tif = p.str("timeInForce")
        if otype in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            if tif is None:
                raise error(-1102, "timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise error(-1115)
        elif tif is not None:
            raise error(-1106, "timeInForce")
        qty = p.decimal("quantity")
        quote = p.decimal("quoteOrderQty")
        price = p.decimal("price")
        stop = p.decimal("stopPrice")
        iceberg = p.decimal("icebergQty")
        trailing = p.int("trailingDelta")
        if otype == "MARKET":
            if qty is None and quote is None:
                raise BinanceError(-1102, QTY_OR_QUOTE_EMPTY)
            if qty is not None and quote is not None:
                raise error(-1106, "quoteOrderQty")
            if price is not None:
                raise error(-1106, "price")
        else:
            if qty is None:
                raise error(-1102, "quantity")
            if quote is not None:
                raise error(-1106, "quoteOrderQty")
            if otype in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
                if price is None:
                    raise error(-1102, "price")
            elif price is not None:
                raise error(-1106, "price")
        if otype in STOP_TYPES:
            if stop is None and trailing is None:
                raise BinanceError(-1102, STOP_OR_TRAILING_EMPTY)
        else:
            if stop is not None:
                raise error(-1106, "stopPrice")
            if trailing is not None:
                raise error(-1106, "trailingDelta")
        if iceberg is not None and otype not in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            raise error(-1106, "icebergQty")
        check_precision("quantity", qty, r.base_precision)
        check_precision("quoteOrderQty", quote, r.quote_precision)
        check_precision("price", price, r.quote_precision)
        check_precision("stopPrice", stop, r.quote_precision)
        check_precision("icebergQty", iceberg, r.base_precision)
        cid = p.client_order_id("newClientOrderId")
        default_resp = "FULL" if otype in ("MARKET", "LIMIT") else "ACK"
        resp = p.enum("newOrderRespType", ("ACK", "RESULT", "FULL"), default=default_resp)
        stp = p.enum("selfTradePreventionMode", STP_MODES, default="NONE")
        strategy_id = p.int("strategyId", lo=0)
        strategy_type = p.int("strategyType")
        if strategy_type is not None and strategy_type < 1_000_000:
            raise BinanceError(-1100, "Illegal characters found in parameter 'strategyType'; "
                                      "legal range is '1000000..'.")
        if trailing is not None:
            raise BinanceError(-1013, TRAILING_UNSUPPORTED)
        if not r.trading:
            raise order_rejected(MARKET_CLOSED)
        if not a.can_trade:
            raise order_rejected(CANNOT_TRADE)
        req = {
            "st": st, "side": side, "is_buy": side == "BUY", "type": otype,
            "tif": tif if tif is not None else "GTC",
            "qty": to_e8(qty) if qty is not None else 0,
            "quote": to_e8(quote) if quote is not None else 0,
            "price": to_e8(price) if price is not None else 0,
            "stop": to_e8(stop) if stop is not None else 0,
            "iceberg": to_e8(iceberg) if iceberg is not None else 0,
            "cid": cid, "resp": resp, "stp": stp, "strategy_id": strategy_id, "strategy_type": strategy_type,
        }
        self._check_filters(a, req)
        return req

    def _check_filters(self, a: Account, q: dict) -> None:
        st: SymbolState = q["st"]
        r = st.rules
        otype = q["type"]
        priced = otype in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        market_like = otype in ("MARKET", "STOP_LOSS", "TAKE_PROFIT")
        if priced:
            r.check_price(q["price"])
        if otype in STOP_TYPES:
            r.check_price(q["stop"])
        if q["qty"] or otype != "MARKET":
            r.check_lot(q["qty"], market=market_like)
        if q["iceberg"]:
            if q["tif"] != "GTC":
                raise error(-1014)
            if q["iceberg"] > q["qty"]:
                raise order_rejected(ICEBERG_EXCEEDS)
            r.check_iceberg(q["qty"], q["iceberg"])
        now = self.clock.now_ms()
        avg = self._avg_price8(st, now)
        if priced:
            r.check_percent_price(q["side"], q["price"], avg)
            r.check_notional(q["price"] * q["qty"] // E8)
        elif otype == "MARKET":
            notional = q["quote"] if q["quote"] else avg * q["qty"] // E8
            r.check_notional(notional, market=True)
        else:
            r.check_notional(q["stop"] * q["qty"] // E8, market=True)
        opened = a.open.get(st.symbol)
        if opened is not None and len(opened) >= r.max_num_orders:
            raise order_rejected("Filter failure: MAX_NUM_ORDERS")
        if otype in STOP_TYPES and sum(1 for o in st.stops if o.account == a.api_key) >= MAX_NUM_ALGO_ORDERS:
            raise order_rejected("Filter failure: MAX_NUM_ALGO_ORDERS")

    def _new_cid(self) -> str:
        return "".join(self._cid_rng.choices(_CID_ALPHABET, k=22))

    # =========================================================================================
    # Orders: placement and matching
    # =========================================================================================
    def test_order(self, account_id: str, p: Params) -> dict:
        a = self._acct(account_id)
        compute = p.bool("computeCommissionRates", False)
        self._parse_order(a, p, test=True)
        if not compute:
            return {}
        return {
            "standardCommissionForOrder": {"maker": _fmt(a.maker_rate), "taker": _fmt(a.taker_rate)},
            "specialCommissionForOrder": {"maker": _ZERO, "taker": _ZERO},
            "taxCommissionForOrder": {"maker": _ZERO, "taker": _ZERO},
            "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB",
                         "discount": "0.25000000"},
        }

    def new_order(self, account_id: str, p: Params) -> dict:
        a = self._acct(account_id)
        q = self._parse_order(a, p, test=False)
        st: SymbolState = q["st"]
        r = st.rules
        book = st.book
        sym = st.symbol
        is_buy = q["is_buy"]
        otype = q["type"]
        cid = q["cid"]
        if cid is not None and (sym, cid) in a.open_cids:
            raise order_rejected(DUPLICATE_ORDER)
        price = q["price"]
        qty = q["qty"]
        quote_qty = q["quote"]
        # -- engine checks that need the book and balances (nothing changes before they pass) --
        if otype == "LIMIT_MAKER":
            opp = book.best_ask() if is_buy else book.best_bid()
            if opp is not None and (price >= opp if is_buy else price <= opp):
                raise order_rejected(WOULD_MATCH)
        if otype in STOP_TYPES:
            if self._stop_triggered(st, q["side"], otype, q["stop"]):
                raise order_rejected(WOULD_TRIGGER)
        plan = None
        if otype == "MARKET":
            if quote_qty:
                plan = book.sweep(is_buy, None, None, quote_qty, r.step, dry_run=True)
                qty = sum(f[2] for f in plan)
                if qty <= 0:
                    raise order_rejected(LIQUIDITY_LOW)
                if qty < r.min_qty:
                    raise filter_failure("LOT_SIZE")
            else:
                plan = book.sweep(is_buy, None, qty, None, r.step, dry_run=True)
            cost = sum(f[1] * f[2] // E8 for f in plan)
            if is_buy:
                need_asset, need, lock = r.quote, (quote_qty or cost), cost
            else:
                need_asset, need, lock = r.base, qty, qty
        elif is_buy:
            if otype in ("STOP_LOSS", "TAKE_PROFIT"):
                lock = ceil_div(q["stop"] * qty, E8)
            else:
                lock = ceil_div(price * qty, E8)
            need_asset, need = r.quote, lock
        else:
            need_asset, need, lock = r.base, qty, qty
        bal = a.bal(need_asset)
        if bal[0] < need:
            raise order_rejected(INSUFFICIENT_BALANCE)
        if otype == "LIMIT" and q["tif"] == "FOK" and book.available(is_buy, price) < qty:
            fok_fail = True
        else:
            fok_fail = False

        now = self.clock.now_ms()
        self._begin(now)
        try:
            oid = st.next_order_id
            st.next_order_id += 1
            if cid is None:
                cid = self._new_cid()
            o = Order(symbol=sym, order_id=oid, client_id=cid, account=a.api_key, side=q["side"], is_buy=is_buy,
                      type=otype, tif=q["tif"], price=price if otype != "MARKET" else 0, qty=qty,
                      quote_qty=quote_qty, stop_price=q["stop"], iceberg=q["iceberg"], status="NEW", time=now,
                      update_time=now, working_time=now if otype not in STOP_TYPES else -1, stp=q["stp"],
                      strategy_id=q["strategy_id"], strategy_type=q["strategy_type"])
            self._register(a, o)
            o.locked = lock
            o.lock_asset = need_asset
            bal[0] -= lock
            bal[1] += lock
            if lock:
                self._touch(a, need_asset)
            self._report(o, "NEW")
            fills: list = []
            if otype in STOP_TYPES:
                st.stops.append(o)
            elif otype == "MARKET":
                self._take(st, o, None, o.qty, fills, now)
                if o.executed < o.qty:
                    self._expire(o, "INSUFFICIENT_LIQUIDITY")
            elif otype == "LIMIT_MAKER":
                self._rest(st, o)
            elif fok_fail:
                self._expire(o, "UNFILLED_FOK_ORDER_EXPIRED")
            else:
                self._take(st, o, price, o.qty, fills, now)
                if o.executed < o.qty:
                    if o.tif == "GTC":
                        self._rest(st, o)
                    else:
                        self._expire(o, "UNFILLED_IOC_QUANTITY_EXPIRED" if o.tif == "IOC"
                                     else "UNFILLED_FOK_ORDER_EXPIRED")
            self._run_stops(st, now)
            self.stats.orders[o.status] += 1
            return self._order_response(o, q["resp"], fills, now)
        finally:
            self._end()

    def _register(self, a: Account, o: Order) -> None:
        sym = o.symbol
        a.orders[(sym, o.order_id)] = o
        a.open.setdefault(sym, {})[o.order_id] = o
        a.open_cids[(sym, o.client_id)] = o
        a.last_cid[(sym, o.client_id)] = o
        hist = a.history.setdefault(sym, [])
        hist.append(o)
        if len(hist) > _CLOSED_ORDERS_MAX:
            self._trim_history(a, sym, hist)

    @staticmethod
    def _trim_history(a: Account, sym: str, hist: list) -> None:
        """Forget the oldest closed orders beyond :data:`_CLOSED_ORDERS_KEEP`; open orders stay."""
        closed = sum(1 for o in hist if not o.is_open)
        excess = closed - _CLOSED_ORDERS_KEEP
        if excess <= 0:
            return
        keep = []
        for d in hist:
            if excess > 0 and not d.is_open:
                excess -= 1
                a.orders.pop((sym, d.order_id), None)
                if a.last_cid.get((sym, d.client_id)) is d:
                    del a.last_cid[(sym, d.client_id)]
            else:
                keep.append(d)
        hist[:] = keep

    def _rest(self, st: SymbolState, o: Order) -> None:
        st.book.add_order(o, o.is_buy, o.price, o.qty - o.executed)
        self._books_touched.add(st.symbol)

    def _close(self, o: Order) -> None:
        """The order left the open set: release what is still locked."""
        a = self._accounts[o.account]
        opened = a.open.get(o.symbol)
        if opened is not None:
            opened.pop(o.order_id, None)
        if a.open_cids.get((o.symbol, o.client_id)) is o:
            del a.open_cids[(o.symbol, o.client_id)]
        if o.locked:
            b = a.bal(o.lock_asset)
            b[0] += o.locked
            b[1] -= o.locked
            o.locked = 0
            self._touch(a, o.lock_asset)

    def _expire(self, o: Order, reason: str) -> None:
        o.status = "EXPIRED"
        o.expiry_reason = reason
        o.update_time = self._now
        self._close(o)
        self._report(o, "EXPIRED")

    def _take(self, st: SymbolState, o: Order | None, limit: int | None, qty: int, fills: list | None,
              now: int, taker_buy: bool | None = None) -> None:
        """Match a taker (an account order ``o`` or, with ``o`` None, synthetic flow)."""
        is_buy = o.is_buy if o is not None else taker_buy
        matched = st.book.sweep(is_buy, limit, qty, None, st.rules.step)
        if not matched:
            return
        self._books_touched.add(st.symbol)
        taker_key = object()
        for maker, price, fq in matched:
            self._trade(st, o, maker, price, fq, is_buy, taker_key, fills, now)

    def _trade(self, st: SymbolState, taker: Order | None, maker: Order | None, price: int, qty: int,
               taker_buy: bool, taker_key, fills: list | None, now: int) -> None:
        tid = st.next_trade_id
        st.next_trade_id += 1
        quote = price * qty // E8
        if taker is not None:
            fee, fee_asset = self._fill(taker, price, qty, quote, tid, False)
            if fills is not None:
                fills.append({"price": _fmt(price), "qty": _fmt(qty), "commission": _fmt(fee),
                              "commissionAsset": fee_asset, "tradeId": tid})
        if maker is not None:
            self._fill(maker, price, qty, quote, tid, True)
        if taker is not None or maker is not None:
            self.stats.fills += 1
        else:
            self.stats.synthetic_trades += 1
        self._record_trade(st, tid, price, qty, quote, taker_buy, taker_key, now)

    def _record_trade(self, st: SymbolState, tid: int, price: int, qty: int, quote: int, taker_buy: bool,
                      taker_key, now: int) -> None:
        buyer_maker = not taker_buy
        st.trades.append((tid, price, qty, quote, now, buyer_maker))
        st.trade_times.append(now)
        minute = now - now % MINUTE_MS
        if not st.minutes or st.minutes[-1][0] != minute:
            st.minutes.append((minute, tid))
        if len(st.trades) > _TRADES_MAX:
            cut = len(st.trades) - _TRADES_KEEP
            del st.trades[:cut]
            del st.trade_times[:cut]
        if taker_key is not None and st._agg_key is taker_key and st.aggs and st.aggs[-1][1] == price:
            agg = st.aggs[-1]
            agg[2] += qty
            agg[4] = tid
        else:
            agg = [st.next_agg_id, price, qty, tid, tid, now, buyer_maker]
            st.next_agg_id += 1
            st.aggs.append(agg)
            if len(st.aggs) > _TRADES_MAX:
                del st.aggs[: len(st.aggs) - _TRADES_KEEP]
        st._agg_key = taker_key
        st.last_price = price
        st.last_qty = qty
        st.last_time = now
        st.trade_seq += 1
        self._trade_seq += 1
        st.history.record_trade(now, price, qty, quote, tid, taker_buy)
        self.events.trade(TradeEvent(st.symbol, tid, _fmt(price), _fmt(qty), _fmt(quote), now, buyer_maker,
                                     agg[0]))

    def _fill(self, o: Order, price: int, qty: int, quote: int, tid: int, maker: bool) -> tuple[int, str]:
        a = self._accounts[o.account]
        st = self._syms[o.symbol]
        r = st.rules
        rate = a.maker_rate if maker else a.taker_rate
        if o.is_buy:
            fee = (qty * rate + E8 // 2) // E8
            fee_asset = r.base
            qb = a.bal(r.quote)
            qb[1] -= quote
            o.locked -= quote
            a.bal(r.base)[0] += qty - fee
        else:
            fee = (quote * rate + E8 // 2) // E8
            fee_asset = r.quote
            bb = a.bal(r.base)
            bb[1] -= qty
            o.locked -= qty
            a.bal(r.quote)[0] += quote - fee
        self._touch(a, r.base)
        self._touch(a, r.quote)
        o.executed += qty
        o.cum_quote += quote
        o.update_time = self._now
        o.status = "FILLED" if o.executed >= o.qty else "PARTIALLY_FILLED"
        trades = a.trades.setdefault(o.symbol, [])
        trades.append((tid, o.order_id, price, qty, quote, fee, fee_asset, self._now, o.is_buy, maker))
        if len(trades) > _MY_TRADES_MAX:
            del trades[: len(trades) - _MY_TRADES_KEEP]
        if o.status == "FILLED":
            if o.entry is not None:
                st.book.remove_order(o, o.is_buy, o.price)
            self._close(o)
        self._report(o, "TRADE", last_qty=qty, last_price=price, fee=fee, fee_asset=fee_asset, trade_id=tid,
                     maker=maker, last_quote=quote)
        return fee, fee_asset

    def _order_response(self, o: Order, resp: str, fills: list, now: int) -> dict:
        d = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
             "transactTime": now}
        if resp == "ACK":
            return d
        d.update({
            "price": _fmt(o.price), "origQty": _fmt(o.qty), "executedQty": _fmt(o.executed),
            "origQuoteOrderQty": _fmt(o.quote_qty), "cummulativeQuoteQty": _fmt(o.cum_quote), "status": o.status,
            "timeInForce": o.tif, "type": o.type, "side": o.side, "workingTime": o.working_time,
            "selfTradePreventionMode": o.stp,
        })
        self._conditional(o, d)
        if resp == "FULL":
            d["fills"] = fills
        return d

    @staticmethod
    def _conditional(o: Order, d: dict) -> None:
        if o.stop_price:
            d["stopPrice"] = _fmt(o.stop_price)
        if o.iceberg:
            d["icebergQty"] = _fmt(o.iceberg)
        if o.strategy_id is not None:
            d["strategyId"] = o.strategy_id
        if o.strategy_type is not None:
            d["strategyType"] = o.strategy_type
        if o.status == "EXPIRED" and o.expiry_reason:
            d["expiryReason"] = o.expiry_reason

    # -- stop orders -------------------------------------------------------------------------
    def _stop_triggered(self, st: SymbolState, side: str, otype: str, stop: int) -> bool:
        last = st.last_price or st.path.price8(self._last_tick)
        above = (otype in ("STOP_LOSS", "STOP_LOSS_LIMIT")) == (side == "BUY")
        return last >= stop if above else last <= stop

    def _run_stops(self, st: SymbolState, now: int) -> None:
        for _ in range(10):
            if not st.stops:
                return
            fired = [o for o in st.stops if o.is_open and self._stop_triggered(st, o.side, o.type, o.stop_price)]
            st.stops = [o for o in st.stops if o.is_open and o not in fired]
            if not fired:
                return
            for o in fired:
                o.triggered = True
                o.working_time = now
                if o.type in ("STOP_LOSS", "TAKE_PROFIT"):
                    if o.is_buy:
                        # Spend at most what was locked at the stop price.
                        plan = st.book.sweep(True, None, o.qty, o.locked, st.rules.step, dry_run=True)
                        q = sum(f[2] for f in plan)
                        if q:
                            self._take(st, o, None, q, None, now)
                    else:
                        self._take(st, o, None, o.qty, None, now)
                    if o.is_open:
                        self._expire(o, "INSUFFICIENT_LIQUIDITY")
                else:
                    self._take(st, o, o.price, o.qty - o.executed, None, now)
                    if o.is_open:
                        if o.tif == "GTC":
                            self._rest(st, o)
                        else:
                            self._expire(o, "UNFILLED_IOC_QUANTITY_EXPIRED" if o.tif == "IOC"
                                         else "UNFILLED_FOK_ORDER_EXPIRED")

    # =========================================================================================
    # Orders: queries and cancels
    # =========================================================================================
    def _lookup(self, a: Account, sym: str, p: Params, for_cancel: bool) -> Order:
        oid = p.int("orderId", lo=0)
        ocid = p.client_order_id("origClientOrderId")
        if oid is None and ocid is None:
            raise BinanceError(-1102, BOTH_IDS_EMPTY)
        missing = BinanceError(-2011, UNKNOWN_ORDER) if for_cancel else error(-2013)
        if oid is not None:
            o = a.orders.get((sym, oid))
            if o is None:
                raise missing
            if ocid is not None and o.client_id != ocid:
                raise error(-2039)
        else:
            o = a.open_cids.get((sym, ocid)) if for_cancel else None
            if o is None:
                o = a.last_cid.get((sym, ocid))
            if o is None:
                raise missing
        if for_cancel and not o.is_open:
            raise missing
        return o

    def _order_dict(self, o: Order) -> dict:
        d = {
            "symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
            "price": _fmt(o.price), "origQty": _fmt(o.qty), "executedQty": _fmt(o.executed),
            "cummulativeQuoteQty": _fmt(o.cum_quote), "status": o.status, "timeInForce": o.tif, "type": o.type,
            "side": o.side, "stopPrice": _fmt(o.stop_price), "icebergQty": _fmt(o.iceberg), "time": o.time,
            "updateTime": o.update_time, "isWorking": o.type not in STOP_TYPES or o.triggered,
            "workingTime": o.working_time, "origQuoteOrderQty": _fmt(o.quote_qty),
            "selfTradePreventionMode": o.stp,
        }
        if o.strategy_id is not None:
            d["strategyId"] = o.strategy_id
        if o.strategy_type is not None:
            d["strategyType"] = o.strategy_type
        if o.status == "EXPIRED" and o.expiry_reason:
            d["expiryReason"] = o.expiry_reason
        return d

    def get_order(self, account_id: str, p: Params) -> dict:
        a = self._acct(account_id)
        st = self._sym(p.symbol())
        return self._order_dict(self._lookup(a, st.symbol, p, for_cancel=False))

    def _cancel(self, st: SymbolState, o: Order, cancel_cid: str, now: int) -> dict:
        if o.entry is not None:
            st.book.remove_order(o, o.is_buy, o.price)
            self._books_touched.add(st.symbol)
        if o in st.stops:
            st.stops.remove(o)
        o.status = "CANCELED"
        o.update_time = now
        self._close(o)
        self._report(o, "CANCELED", cancel_cid=cancel_cid)
        d = {"symbol": o.symbol, "origClientOrderId": o.client_id, "orderId": o.order_id, "orderListId": -1,
             "clientOrderId": cancel_cid, "transactTime": now, "price": _fmt(o.price), "origQty": _fmt(o.qty),
             "executedQty": _fmt(o.executed), "origQuoteOrderQty": _fmt(o.quote_qty),
             "cummulativeQuoteQty": _fmt(o.cum_quote), "status": o.status, "timeInForce": o.tif, "type": o.type,
             "side": o.side, "selfTradePreventionMode": o.stp}
        self._conditional(o, d)
        return d

    def cancel_order(self, account_id: str, p: Params) -> dict:
        a = self._acct(account_id)
        st = self._sym(p.symbol())
        new_cid = p.client_order_id("newClientOrderId")
        restrict = p.enum("cancelRestrictions", ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"))
        o = self._lookup(a, st.symbol, p, for_cancel=True)
        if restrict == "ONLY_NEW" and o.status != "NEW" or \
                restrict == "ONLY_PARTIALLY_FILLED" and o.status != "PARTIALLY_FILLED":
            raise BinanceError(-2011, CANCEL_RESTRICTED)
        now = self.clock.now_ms()
        self._begin(now)
        try:
            return self._cancel(st, o, new_cid or self._new_cid(), now)
        finally:
            self._end()

    def open_orders(self, account_id: str, p: Params) -> list:
        a = self._acct(account_id)
        sym = p.symbol(required=False)
        if sym is not None:
            self._sym(sym)
            return [self._order_dict(o) for o in a.open.get(sym, {}).values()]
        out = []
        for opened in a.open.values():
            out.extend(self._order_dict(o) for o in opened.values())
        return out

    def cancel_open_orders(self, account_id: str, p: Params) -> list:
        a = self._acct(account_id)
        st = self._sym(p.symbol())
        opened = list(a.open.get(st.symbol, {}).values())
        if not opened:
            raise BinanceError(-2011, UNKNOWN_ORDER)
        now = self.clock.now_ms()
        self._begin(now)
        try:
            return [self._cancel(st, o, self._new_cid(), now) for o in opened]
        finally:
            self._end()

    @staticmethod
    def _time_span(p: Params) -> tuple[int | None, int | None]:
        start = p.int("startTime", lo=0)
        end = p.int("endTime", lo=0)
        if start is not None and end is not None:
            if end < start:
                raise error(-1128)
            if end - start > DAY_MS:
                raise error(-1127)
        return start, end

    def all_orders(self, account_id: str, p: Params) -> list:
        a = self._acct(account_id)
        st = self._sym(p.symbol())
        oid = p.int("orderId", lo=0)
        start, end = self._time_span(p)
        limit = self._limit(p)
        hist = a.history.get(st.symbol, [])
        if oid is not None:
            ids = [o.order_id for o in hist]
            i = bisect_left(ids, oid)
            sel = [o for o in hist[i:] if (start is None or o.time >= start) and (end is None or o.time <= end)]
            sel = sel[:limit]
        elif start is not None:
            sel = [o for o in hist if o.time >= start and (end is None or o.time <= end)][:limit]
        elif end is not None:
            sel = [o for o in hist if o.time <= end][-limit:]
        else:
            sel = hist[-limit:]
        return [self._order_dict(o) for o in sel]

    def my_trades(self, account_id: str, p: Params) -> list:
        a = self._acct(account_id)
        st = self._sym(p.symbol())
        oid = p.int("orderId", lo=0)
        from_id = p.int("fromId", lo=0)
        start, end = self._time_span(p)
        limit = self._limit(p)
        if from_id is not None and (start is not None or end is not None):
            raise error(-1128)
        if oid is not None and (start is not None or end is not None):
            raise error(-1128)
        trades = a.trades.get(st.symbol, [])
        if oid is not None:
            sel = [t for t in trades if t[1] == oid]
            if from_id is not None:
                sel = [t for t in sel if t[0] >= from_id]
            sel = sel[:limit]
        elif from_id is not None:
            ids = [t[0] for t in trades]
            i = bisect_left(ids, from_id)
            sel = trades[i:i + limit]
        elif start is not None:
            sel = [t for t in trades if t[7] >= start and (end is None or t[7] <= end)][:limit]
        elif end is not None:
            sel = [t for t in trades if t[7] <= end][-limit:]
        else:
            sel = trades[-limit:]
        sym = st.symbol
        return [{"symbol": sym, "id": t[0], "orderId": t[1], "orderListId": -1, "price": _fmt(t[2]),
                 "qty": _fmt(t[3]), "quoteQty": _fmt(t[4]), "commission": _fmt(t[5]), "commissionAsset": t[6],
                 "time": t[7], "isBuyer": t[8], "isMaker": t[9], "isBestMatch": True} for t in sel]

    # =========================================================================================
    # The synthetic market
    # =========================================================================================
    def _seed_trades(self, st: SymbolState, now: int) -> None:
        """Trades before the start so /trades and /aggTrades are never empty."""
        rate = max(self.config.market.trades_per_second, 0.2)
        rng = random.Random(stable_hash("seed-trades", self.config.seed, st.symbol))
        times = []
        t = float(now)
        for _ in range(_SEED_TRADES):
            t -= rng.expovariate(rate) * 1000.0
            times.append(int(t))
        times.reverse()
        prices = st.path.prices8(times)
        g2 = st.grid
        r = st.rules
        for t_, p_ in zip(times, prices):
            buy = rng.random() < 0.5
            price = (p_ // g2) * g2 + (g2 if buy else 0)
            price = max(price, r.tick)
            qty = st._lot(int(st.taker_qty * rng.lognormvariate(0.0, 0.6)))
            tid = st.next_trade_id
            st.next_trade_id += 1
            quote = price * qty // E8
            buyer_maker = not buy
            st.trades.append((tid, price, qty, quote, t_, buyer_maker))
            st.trade_times.append(t_)
            if not st.minutes or st.minutes[-1][0] != t_ - t_ % MINUTE_MS:
                st.minutes.append((t_ - t_ % MINUTE_MS, tid))
            st.aggs.append([st.next_agg_id, price, qty, tid, tid, t_, buyer_maker])
            st.next_agg_id += 1
            st.last_price, st.last_qty, st.last_time = price, qty, t_
        st.trade_seq += 1

    def _refresh_ladder(self, st: SymbolState, now: int) -> None:
        book = st.book
        g = st.grid
        n = self.config.market.book_levels
        mid = st.path.price8(now)
        bid_top = max(g, mid // g * g)
        ask_top = bid_top + g
        top = (bid_top, ask_top)
        if top == st.mm_top and not st.mm_dirty:
            return
        st.mm_top = top
        st.mm_dirty = False
        bid_lo = max(g, bid_top - (n - 1) * g)
        ask_hi = ask_top + (n - 1) * g
        book.clear_synthetic_outside(True, bid_lo, bid_top)
        book.clear_synthetic_outside(False, ask_top, ask_hi)
        self._books_touched.add(st.symbol)
        # Account orders the move crossed trade with the market maker at their own price.
        if book.bids.prices and book.bids.prices[-1] >= ask_top:
            self._take(st, None, ask_top, None, None, now, taker_buy=False)
        if book.asks.prices and book.asks.prices[0] <= bid_top:
            self._take(st, None, bid_top, None, None, now, taker_buy=True)
        size = st.level_size
        for k in range(n):
            pb = bid_top - k * g
            if pb >= bid_lo:
                book.set_synthetic(True, pb, size(pb))
            pa = ask_top + k * g
            book.set_synthetic(False, pa, size(pa))

    def tick(self, now_ms: int) -> None:
        """Advance the synthetic market to ``now_ms``: refresh the ladder, run the taker flow."""
        now = max(now_ms, self._last_tick)
        self._tick_seq += 1
        rate = self.config.market.trades_per_second
        self._begin(now)
        try:
            for st in self._syms.values():
                self._refresh_ladder(st, now)
                if rate > 0 and st.rules.trading:
                    self._flow(st, now, rate)
                if st.stops:
                    self._run_stops(st, now)
        finally:
            self._last_tick = now
            self._end()

    def _flow(self, st: SymbolState, now: int, rate: float) -> None:
        rng = st.rng
        n = 0
        while st.next_arrival <= now:
            if n >= _MAX_ARRIVALS_PER_TICK:
                st.next_arrival = now + rng.expovariate(rate) * 1000.0
                break
            n += 1
            buy = rng.random() < 0.5
            qty = st._lot(int(st.taker_qty * rng.lognormvariate(0.0, 0.6)))
            book = st.book
            matched = book.sweep(buy, None, qty, None, st.rules.step)
            if matched:
                self._books_touched.add(st.symbol)
                st.mm_dirty = True
                key = object()
                for maker, price, fq in matched:
                    self._trade(st, None, maker, price, fq, buy, key, None, now)
            st.next_arrival += rng.expovariate(rate) * 1000.0


__all__ = ["Exchange", "Order", "Account", "SymbolState"]
