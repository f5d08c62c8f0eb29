"""The trading engine: market data → signals → capital approval → order → fill → reconciliation."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import ccxt

from .reconcile import account_state

log = logging.getLogger(__name__)


@dataclass
class TradeResult:
    """One trade decision and what became of it.

    ``outcome``: ``reconciled`` (placed, filled/rested, exchange agrees), ``mismatch`` (placed,
    the exchange disagrees: ``problems``), ``capital_refused`` (our capital manager said no),
    ``order_refused`` (refused before or by the exchange: ``ccxt.InvalidOrder``), ``error``
    (any other failure). ``elapsed_ms`` runs from the decision to the reconciled order;
    ``reconcile_ms`` is the reconciliation's own share."""

    strategy: str
    side: str
    quote: float
    outcome: str
    elapsed_ms: float
    reconcile_ms: float = 0.0
    order_id: str | None = None
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def placed(self) -> bool:
        return self.outcome in ("reconciled", "mismatch")


@dataclass
class EngineStats:
    steps: int = 0
    signals: int = 0
    capital_refused: int = 0
    order_refused: int = 0
    placed: int = 0
    filled: int = 0
    resting: int = 0
    reconciled: int = 0
    mismatches: int = 0
    errors: int = 0
    cancelled: int = 0


class TradingEngine:
    """Runs several strategies on one symbol through one connector.

    * ``mode``: ``market`` (MARKET orders, filled at once), ``resting`` (LIMIT buys priced
      ``resting_discount`` below the market that rest on the book) or ``observe`` (signals only,
      no orders — a paper mode).
    * ``order_quote``: each order's value in quote currency; ``oversized_quote``: when set, the
      engine's first order uses this size instead (a fat-finger drill: something downstream must
      refuse it; the engine counts the refusal and carries on).
    * ``cancel_on_stop``: :meth:`stop` cancels the orders it left open (off: leave them to the
      operator's kill switch).

    Trades of one account are serialised (its :class:`~.reconcile.AccountState` lock) so each
    order's balance change can be checked exactly. A step that is cancelled while an order is in
    flight lets that order finish (it is shielded); :meth:`stop` waits for it.
    """

    def __init__(self, connector, capital, reconciler, strategies, symbol: str, *, timeframe: str = "1m",
                 candles: int = 50, mode: str = "market", order_quote: float = 12.0,
                 oversized_quote: float | None = None, resting_discount: float = 0.15,
                 cancel_on_stop: bool = True, fill_timeout_s: float = 5.0, stop_timeout_s: float = 20.0):
        if mode not in ("market", "resting", "observe"):
            raise ValueError(f"mode must be market, resting or observe, got {mode!r}")
        if not strategies:
            raise ValueError("at least one strategy is needed")
        self.connector, self.capital, self.reconciler = connector, capital, reconciler
        self.strategies = list(strategies)
        self.symbol, self.timeframe = symbol, timeframe
        self.candles = max(candles, max(s.bars_needed for s in self.strategies))
        self.mode = mode
        self.order_quote = order_quote
        self.oversized_quote = oversized_quote
        self.resting_discount = resting_discount
        self.cancel_on_stop = cancel_on_stop
        self.fill_timeout_s, self.stop_timeout_s = fill_timeout_s, stop_timeout_s
        self.stats = EngineStats()
        self.open_orders: dict[str, str] = {}          # order id -> symbol, orders left resting
        self._results: list[TradeResult] = []
        self._inflight: set[asyncio.Future] = set()
        self._account = None
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        await self.connector.connect()
        self._account = account_state(self.connector.account_key)
        self._started = True

    async def stop(self) -> None:
        """Let an in-flight trade finish, cancel what the engine left open (``cancel_on_stop``),
        close the connector."""
        try:
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=self.stop_timeout_s)
            if self.cancel_on_stop:
                for oid, symbol in list(self.open_orders.items()):
                    try:
                        await self.connector.cancel_order(oid, symbol)
                        self.stats.cancelled += 1
                        del self.open_orders[oid]
                    except ccxt.OrderNotFound:
                        del self.open_orders[oid]
                    except ccxt.BaseError as e:
                        self.stats.errors += 1
                        log.warning("could not cancel %s: %s", oid, e)
        finally:
            self._started = False
            await self.connector.close()

    def drain_results(self) -> list[TradeResult]:
        """The trade results since the last call (every trade appears exactly once)."""
        out, self._results = self._results, []
        return out

    def stats_dict(self) -> dict:
        return asdict(self.stats)

    # -- one step -------------------------------------------------------------------------------
    async def step(self) -> list[TradeResult]:
        """Market data → every strategy's signal → the trades they ask for (concurrently)."""
        if not self._started:
            raise RuntimeError("TradingEngine.start() first")
        self.stats.steps += 1
        candles = await self.connector.get_market_data(self.symbol, self.timeframe, self.candles)
        closes = [float(c[4]) for c in candles]
        wanted = [(s, sig) for s in self.strategies if (sig := s.signal(closes))]
        t_decision = time.perf_counter()
        self.stats.signals += len(wanted)
        if not wanted or self.mode == "observe":
            return []
        work = asyncio.ensure_future(self._trades(wanted, t_decision))
        self._inflight.add(work)
        work.add_done_callback(self._inflight.discard)
        return await asyncio.shield(work)

    async def _trades(self, wanted, t_decision: float) -> list[TradeResult]:
        ticker = await self.connector.get_ticker(self.symbol)
        return list(await asyncio.gather(*(self._trade(s, sig, ticker, t_decision) for s, sig in wanted)))

    async def _trade(self, strategy, sig: int, ticker: dict, t0: float) -> TradeResult:
        side = "buy" if sig > 0 else "sell"
        if self.mode == "resting":
            side = "buy"          # resting orders are bids far below the market
        quote = self.order_quote
        if self.oversized_quote and not getattr(self, "_oversized_tried", False):
            self._oversized_tried = True
            quote = self.oversized_quote

        def done(outcome: str, **kw) -> TradeResult:
            r = TradeResult(strategy.name, side, quote, outcome, (time.perf_counter() - t0) * 1000.0, **kw)
            self._results.append(r)
            return r

        ok, reason = self.capital.approve(self.symbol, side, quote)
        if not ok:
            self.stats.capital_refused += 1
            return done("capital_refused", error=reason)
        filled_quote = 0.0
        try:
            price = float((ticker.get("ask") if side == "buy" else ticker.get("bid")) or ticker["last"])
            if self.mode == "resting":
                price = self.connector.price_to_precision(self.symbol, price * (1 - self.resting_discount))
            amount = self.connector.amount_to_precision(self.symbol, quote / price)
            account = self._account
            async with account.lock:
                before = account.balance
                if before is None:
                    before = await self.connector.fetch_balance()
                account.balance = None       # unknown until this order is reconciled
                try:
                    if self.mode == "resting":
                        order = await self.connector.place_order(self.symbol, side, amount, price, type="limit")
                    else:
                        order = await self.connector.place_order(self.symbol, side, amount, type="market")
                except ccxt.InvalidOrder as e:          # refused before sending, or by the exchange
                    account.balance = before
                    self.stats.order_refused += 1
                    log.info("order refused (%s %s %g): %s", side, self.symbol, quote, e)
                    return done("order_refused", error=str(e))
                self.stats.placed += 1
                if self.mode == "resting":
                    self.open_orders[order["id"]] = self.symbol
                    self.stats.resting += 1
                else:
                    order = await self._wait_filled(order)
                    self.stats.filled += 1 if (order.get("info") or {}).get("status") == "FILLED" else 0
                    filled_quote = float(Decimal(str((order.get("info") or {}).get("cummulativeQuoteQty") or 0)))
                t_rec = time.perf_counter()
                problems, after = await self.reconciler.check(order, self.symbol, before,
                                                              expect_open=self.mode == "resting")
                account.balance = after
                rec_ms = (time.perf_counter() - t_rec) * 1000.0
        except ccxt.BaseError as e:
            self.stats.errors += 1
            return done("error", error=f"{type(e).__name__}: {e}")
        finally:
            self.capital.settle(self.symbol, side, quote, filled_quote)
        if problems:
            self.stats.mismatches += 1
            return done("mismatch", reconcile_ms=rec_ms, order_id=order["id"], problems=problems)
        self.stats.reconciled += 1
        return done("reconciled", reconcile_ms=rec_ms, order_id=order["id"])

    async def _wait_filled(self, order: dict) -> dict:
        """A MARKET order's answer is normally final; otherwise poll until it is (bounded)."""
        deadline = time.monotonic() + self.fill_timeout_s
        while (order.get("info") or {}).get("status") not in ("FILLED", "CANCELED", "EXPIRED", "REJECTED"):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
            fetched = await self.connector.fetch_order(order["id"], self.symbol)
            fetched.setdefault("info", {}).setdefault("fills", (order.get("info") or {}).get("fills"))
            order = fetched
        return order
