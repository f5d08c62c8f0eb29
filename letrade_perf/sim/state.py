"""The exchange's mutable state: orders, accounts, per-symbol state and the shared counters.

Plain data (no aiohttp, no events): the matching (:mod:`.matching`), the market-data view
(:mod:`.marketview`), the synthetic flow (:mod:`.flow`) and the account side (:mod:`.accounts`,
:mod:`.orderentry`) all work on these objects; :class:`~letrade_perf.sim.engine.Exchange` owns
them. Amounts are integers in e8 units.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from ..binance.errors import error
from .book import OrderBook
from .config import AccountSpec, SimConfig, SymbolSpec
from .filters import E8, SymbolRules, dec_e8
from .market import KlineHistory, PricePath, stable_hash
from .params import Params

OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
ZERO = "0.00000000"

#: ``(id, price, qty, quote, time, buyer_is_maker)``
MarketTrade = tuple[int, int, int, int, int, bool]
#: ``(id, order id, price, qty, quote, fee, fee asset, time, is_buyer, is_maker)``
AccountTrade = tuple[int, int, int, int, int, int, str, int, bool, bool]


def fmt_e8(v: int) -> str:
    """An e8 integer as Binance's 8-decimal string."""
    return "%d.%08d" % divmod(v, E8)


class Order:
    """One account order (all amounts in e8 units)."""

    __slots__ = ("symbol", "order_id", "client_id", "account", "side", "is_buy", "type", "tif", "price", "qty",
                 "quote_qty", "stop_price", "iceberg", "executed", "cum_quote", "status", "time", "update_time",
                 "working_time", "locked", "lock_asset", "expiry_reason", "stp", "strategy_id", "strategy_type",
                 "entry", "triggered")

    symbol: str
    order_id: int
    client_id: str
    account: str
    side: str
    is_buy: bool
    type: str
    tif: str
    price: int
    qty: int
    quote_qty: int
    stop_price: int
    iceberg: int
    executed: int
    cum_quote: int
    status: str
    time: int
    update_time: int
    working_time: int
    locked: int
    lock_asset: str
    expiry_reason: str | None
    stp: str
    strategy_id: int | None
    strategy_type: int | None
    entry: Any
    triggered: bool

    def __init__(self, **kw: Any) -> None:
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
        return self.status in OPEN_STATUSES

    @property
    def on_book(self) -> bool:
        return self.entry is not None


class Account:
    """Balances (``asset -> [free, locked]`` in e8), orders and trades of one API key."""

    def __init__(self, spec: AccountSpec, assets: list[str], now: int):
        self.api_key = spec.api_key
        self.spec = spec
        self.can_trade = spec.can_trade
        self.maker_rate = dec_e8(spec.maker_commission)
        self.taker_rate = dec_e8(spec.taker_commission)
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
        self.trades: dict[str, list[AccountTrade]] = {}

    def bal(self, asset: str) -> list[int]:
        b = self.balances.get(asset)
        if b is None:
            b = self.balances[asset] = [0, 0]
        return b


class SymbolState:
    """Everything the engine keeps per symbol except the synthetic flow's own state
    (:class:`~letrade_perf.sim.flow.SymbolFlow`): rules, book, price path and candles, the market
    trade tape (trades, aggregate trades, per-minute index), id counters, pending stops, caches."""

    def __init__(self, spec: SymbolSpec, config: SimConfig, now: int, minutes_keep: int):
        self.spec = spec
        self.rules = SymbolRules(spec)
        r = self.rules
        self.symbol = spec.symbol
        seed = config.seed
        self.path = PricePath(seed, spec.symbol, float(spec.price), spec.volatility, r.tick)
        self.ref8 = dec_e8(spec.price)
        # Typical synthetic taker size from the symbol's minimum notional.
        self.min_notional = max(r.min_notional, 10 * r.tick)
        self.taker_qty = self.lot(40 * self.min_notional * E8 // self.ref8)
        self.history = KlineHistory(self.path, seed=seed, symbol=spec.symbol, start_ms=now,
                                    history_days=config.market.history_days,
                                    trades_per_second=config.market.trades_per_second, taker_qty8=self.taker_qty)
        self.book = OrderBook(spec.symbol, update_id=1000 + stable_hash("book", seed, spec.symbol) % 1_000_000)
        self.next_order_id = 1
        self.next_trade_id = 1
        self.next_agg_id = 1
        self.trades: list[MarketTrade] = []
        self.trade_times: list[int] = []
        self.aggs: list[list[Any]] = []        # [a, price, qty, first, last, time, buyer_is_maker]
        self.minutes: deque[tuple[int, int]] = deque(maxlen=minutes_keep)   # (minute open ms, first trade id)
        self.agg_key: object | None = None
        self.last_price = 0
        self.last_qty = 0
        self.last_time = 0
        self.trade_seq = 0
        self.stops: list[Order] = []
        self.caches: dict[str, Any] = {}

    def lot(self, q: int) -> int:
        """``q`` rounded down to the lot step, at least the minimum quantity."""
        r = self.rules
        q -= q % r.step
        return max(q, r.min_qty, r.step)


class MarketSeq:
    """Counters shared by the matching, the view and the flow (cache keys and the clock of the
    last tick)."""

    __slots__ = ("tick_seq", "trade_seq", "last_tick")

    def __init__(self, now: int):
        self.tick_seq = 0
        self.trade_seq = 0
        self.last_tick = now


class Retention:
    """Retention limits (see the constants of :mod:`letrade_perf.sim.engine`)."""

    __slots__ = ("trades_keep", "trades_max", "closed_keep", "closed_max", "my_trades_keep", "my_trades_max")

    def __init__(self, trades_keep: int, trades_max: int, closed_keep: int, closed_max: int, my_trades_keep: int,
                 my_trades_max: int):
        self.trades_keep = trades_keep
        self.trades_max = trades_max
        self.closed_keep = closed_keep
        self.closed_max = closed_max
        self.my_trades_keep = my_trades_keep
        self.my_trades_max = my_trades_max


def symbol_state(syms: dict[str, SymbolState], symbol: str | None) -> SymbolState:
    """The state of ``symbol`` or ``-1121`` (invalid symbol)."""
    st = syms.get(symbol)  # type: ignore[arg-type]
    if st is None:
        raise error(-1121)
    return st


def account_of(accounts: dict[str, Account], account_id: str) -> Account:
    """The account of ``account_id`` or ``-2015`` (invalid API key)."""
    a = accounts.get(account_id)
    if a is None:
        raise error(-2015)
    return a


def clamp_limit(p: Params, default: int = 500, hi: int = 1000) -> int:
    n = p.int("limit", default=default, lo=1)
    return hi if n > hi else n
