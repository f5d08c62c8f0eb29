"""The simulator's exchange: accounts, orders, matching, market data and the synthetic market.

Pure Python (no aiohttp): the REST app and the WebSocket API call :class:`Exchange` with a
:class:`~letrade_perf.sim.params.Params` and render what it returns or raises. Amounts are
integers in e8 units internally (exact fixed point at Binance's 8 decimals) and decimal strings
on the way out.

:class:`Exchange` is the coordinator; the work is done by

* :mod:`.state` — orders, accounts, per-symbol state, shared counters;
* :mod:`.matching` — :class:`~.matching.SymbolMatcher`, placement/fills/cancels/stops of one symbol;
* :mod:`.marketview` — :class:`~.marketview.MarketView`, the market-data answers;
* :mod:`.flow` — :class:`~.flow.Flow`, the synthetic market (seed trades, ladder, taker flow);
* :mod:`.orderentry` — :class:`~.orderentry.OrderEntry`, new-order parsing and filters;
* :mod:`.accounts` — :class:`~.accounts.AccountDesk`, balances and order/trade queries;
* :mod:`.outbox` — :class:`~.outbox.Outbox`, the operation bracket that orders the events.
"""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Any, Callable

from ..binance.errors import UNKNOWN_ORDER, BinanceError
from .accounts import AccountDesk
from .clock import SimClock
from .config import SimConfig
from .events import EventHub
from .flow import Flow
from .market import stable_hash
from .marketview import SYMBOL_STATUSES, MarketView
from .matching import SymbolMatcher
from .orderentry import OrderEntry
from .outbox import Outbox
from .params import Params
from .state import Account, MarketSeq, Order, Retention, SymbolState, account_of, symbol_state
from .stats import SimStats

CANCEL_RESTRICTED = "Order was not canceled due to cancel restrictions."
_CID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
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

    #: Windows of :meth:`rolling_ticker_values` (the ``@ticker_<w>`` streams) in ms.
    ROLLING_WINDOWS_MS = MarketView.ROLLING_WINDOWS_MS

    def __init__(self, config: SimConfig, clock: SimClock, events: EventHub, stats: SimStats):
        self.config = config
        self.clock = clock
        self.events = events
        self.stats = stats
        now = clock.now_ms()
        self.start_ms = now
        # The retention limits are read here (tests shrink the module constants before building one).
        retention = Retention(_TRADES_KEEP, _TRADES_MAX, _CLOSED_ORDERS_KEEP, _CLOSED_ORDERS_MAX, _MY_TRADES_KEEP,
                              _MY_TRADES_MAX)
        self._syms: dict[str, SymbolState] = {}
        for spec in config.symbols:
            self._syms[spec.symbol] = SymbolState(spec, config, now, _MINUTE_INDEX_KEEP)
        assets: list[str] = []
        for st in self._syms.values():
            for a in (st.rules.base, st.rules.quote):
                if a not in assets:
                    assets.append(a)
        self._accounts: dict[str, Account] = {a.api_key: Account(a, assets, now) for a in config.accounts}
        self._cid_rng = random.Random(stable_hash("cid", config.seed))
        self._seq = MarketSeq(now)
        self._out = Outbox(self._syms, self._accounts, events, stats, now)
        self._matchers: dict[str, SymbolMatcher] = {
            sym: SymbolMatcher(st, self._accounts, self._out, self._seq, clock, events, stats, self._new_cid,
                               retention)
            for sym, st in self._syms.items()}
        self._view = MarketView(self._syms, config, clock, self._seq)
        self._entry = OrderEntry(self._syms, clock, self._view)
        self._desk = AccountDesk(self._syms, self._accounts, clock, self._out)
        self._flow = Flow(config, self._syms, self._matchers, self._out, self._seq, now)
        self._flow.start(now)

    def set_fill_parts(self, fill_parts: Callable[[str], int] | None) -> None:
        """``fill_parts(symbol)`` → executions per fill of an account's taking order (the
        ``partial_fill`` fault of :class:`~letrade_perf.sim.faults.FaultModel`)."""
        for m in self._matchers.values():
            m.fill_parts = fill_parts

    def _new_cid(self) -> str:
        return "".join(self._cid_rng.choices(_CID_ALPHABET, k=22))

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
        return symbol_state(self._syms, symbol).book.update_id

    def top_of_book(self, symbol: str) -> dict[str, Any]:
        """The @bookTicker payload ``{"u","s","b","B","a","A"}`` (cached per book update)."""
        return self._view.top_of_book(symbol)

    def depth_snapshot(self, symbol: str, limit: int = 100) -> dict[str, Any]:
        return symbol_state(self._syms, symbol).book.snapshot(limit)

    def last_trade_time(self, symbol: str) -> int:
        return symbol_state(self._syms, symbol).last_time

    def avg_price_value(self, symbol: str) -> int:
        return self._view.avg_price8(symbol_state(self._syms, symbol), self.clock.now_ms())

    def current_kline(self, symbol: str, interval: str, at: int | None = None) -> dict[str, Any]:
        """The ``interval`` candle containing ``at`` (default: now) in the WS ``k`` shape.

        Evaluated as of the clock's now, so a candle whose close time has passed comes back
        final (``x: true``) with exactly the values REST klines return for it.
        """
        return self._view.current_kline(symbol, interval, at)

    def ticker_values(self, symbol: str) -> dict[str, Any]:
        return self._view.ticker(symbol_state(self._syms, symbol), self.clock.now_ms())

    def rolling_ticker_values(self, symbol: str, window: str) -> dict[str, Any]:
        """Rolling-window ticker of one symbol over the last ``window`` (``1h``/``4h``/``1d``) with the
        field names of REST ``GET /api/v3/ticker`` (FULL). Read-only.

        ``1d`` is the 24 h ticker's own computation (the values equal :meth:`ticker_values`). The
        shorter windows use the same data (candles, kept trades, per-minute index) on one-minute
        candles, so their window starts at the minute containing ``openTime`` (up to 59 999 ms
        wider, Binance's documented tolerance). Cached per symbol and window like the 24 h ticker.
        """
        return self._view.rolling_ticker_values(symbol, window)

    def limits_changed(self) -> None:
        """The rate limits were changed at runtime: rebuild exchangeInfo's ``rateLimits``."""
        self._view.limits_changed()

    # =========================================================================================
    # Market data (REST / WS API)
    # =========================================================================================
    def exchange_info(self, p: Params) -> dict[str, Any]:
        return self._view.exchange_info(p)

    def depth(self, p: Params) -> dict[str, Any]:
        return self._view.depth(p)

    def trades(self, p: Params) -> list[dict[str, Any]]:
        return self._view.trades(p)

    def historical_trades(self, p: Params) -> list[dict[str, Any]]:
        return self._view.historical_trades(p)

    def agg_trades(self, p: Params) -> list[dict[str, Any]]:
        return self._view.agg_trades(p)

    def klines(self, p: Params) -> list[list[Any]]:
        return self._view.klines(p)

    def ui_klines(self, p: Params) -> list[list[Any]]:
        return self._view.klines(p)

    def avg_price(self, p: Params) -> dict[str, Any]:
        return self._view.avg_price(p)

    def ticker_24hr(self, p: Params) -> dict[str, Any] | list[dict[str, Any]]:
        return self._view.ticker_24hr(p)

    def ticker_price(self, p: Params) -> Any:
        return self._view.ticker_price(p)

    def book_ticker(self, p: Params) -> dict[str, Any] | list[dict[str, Any]]:
        return self._view.book_ticker(p)

    # =========================================================================================
    # Accounts
    # =========================================================================================
    def account(self, account_id: str, p: Params) -> dict[str, Any]:
        return self._desk.account(account_id, p)

    def balance(self, account_id: str, asset: str) -> tuple[Decimal, Decimal]:
        """(free, locked) of one asset as Decimals (tests, control API)."""
        return self._desk.balance(account_id, asset)

    def deposit(self, account_id: str, asset: str, amount: Decimal) -> dict[str, Any]:
        return self._desk.deposit(account_id, asset, amount)

    def get_order(self, account_id: str, p: Params) -> dict[str, Any]:
        return self._desk.get_order(account_id, p)

    def open_orders(self, account_id: str, p: Params) -> list[dict[str, Any]]:
        return self._desk.open_orders(account_id, p)

    def all_orders(self, account_id: str, p: Params) -> list[dict[str, Any]]:
        return self._desk.all_orders(account_id, p)

    def my_trades(self, account_id: str, p: Params) -> list[dict[str, Any]]:
        return self._desk.my_trades(account_id, p)

    # =========================================================================================
    # Orders: placement and cancels
    # =========================================================================================
    def test_order(self, account_id: str, p: Params) -> dict[str, Any]:
        return self._entry.test_order(account_of(self._accounts, account_id), p)

    def new_order(self, account_id: str, p: Params) -> dict[str, Any]:
        a = account_of(self._accounts, account_id)
        q = self._entry.parse(a, p)
        return self._matchers[q["st"].symbol].place(a, q)

    def cancel_order(self, account_id: str, p: Params) -> dict[str, Any]:
        a = account_of(self._accounts, account_id)
        st = symbol_state(self._syms, p.symbol())
        new_cid = p.client_order_id("newClientOrderId")
        restrict = p.enum("cancelRestrictions", ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"))
        o = self._desk.lookup(a, st.symbol, p, for_cancel=True)
        if restrict == "ONLY_NEW" and o.status != "NEW" or \
                restrict == "ONLY_PARTIALLY_FILLED" and o.status != "PARTIALLY_FILLED":
            raise BinanceError(-2011, CANCEL_RESTRICTED)
        now = self.clock.now_ms()
        out = self._out
        out.begin(now)
        try:
            return self._matchers[st.symbol].cancel(o, new_cid or self._new_cid(), now)
        finally:
            out.end()

    def cancel_open_orders(self, account_id: str, p: Params) -> list[dict[str, Any]]:
        a = account_of(self._accounts, account_id)
        st = symbol_state(self._syms, p.symbol())
        opened = list(a.open.get(st.symbol, {}).values())
        if not opened:
            raise BinanceError(-2011, UNKNOWN_ORDER)
        now = self.clock.now_ms()
        m = self._matchers[st.symbol]
        out = self._out
        out.begin(now)
        try:
            return [m.cancel(o, self._new_cid(), now) for o in opened]
        finally:
            out.end()

    # =========================================================================================
    # The synthetic market
    # =========================================================================================
    def tick(self, now_ms: int) -> None:
        """Advance the synthetic market to ``now_ms``: refresh the ladder, run the taker flow."""
        self._flow.tick(now_ms)


__all__ = ["Exchange", "Order", "Account", "SymbolState", "SYMBOL_STATUSES"]
