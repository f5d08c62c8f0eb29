"""Matching of one symbol: order placement on the book, fills, cancels, expiries and stop orders.

A :class:`SymbolMatcher` owns the state changes of one symbol's book and trade tape and the
account side of each fill (balances, locks, account trades, executionReports). It works inside the
caller's :class:`~letrade_perf.sim.outbox.Outbox` bracket, except :meth:`SymbolMatcher.place`,
which opens its own once the order passed every check.
"""
from __future__ import annotations

from typing import Any, Callable

from ..binance.errors import (
    DUPLICATE_ORDER,
    INSUFFICIENT_BALANCE,
    LIQUIDITY_LOW,
    WOULD_MATCH,
    WOULD_TRIGGER,
    filter_failure,
    order_rejected,
)
from ..binance.intervals import MINUTE_MS
from .clock import SimClock
from .events import EventHub, TradeEvent
from .filters import E8, STOP_TYPES, ceil_div
from .outbox import Outbox
from .state import Account, MarketSeq, Order, Retention, SymbolState, fmt_e8
from .stats import SimStats

_fmt = fmt_e8


class SymbolMatcher:
    """Matching engine of one symbol (``st``); accounts, outbox, counters and stats are shared."""

    def __init__(self, st: SymbolState, accounts: dict[str, Account], out: Outbox, seq: MarketSeq,
                 clock: SimClock, events: EventHub, stats: SimStats, new_cid: Callable[[], str],
                 retention: Retention):
        self.st = st
        self._accounts = accounts
        self._out = out
        self._seq = seq
        self._clock = clock
        self._events = events
        self._stats = stats
        self._new_cid = new_cid
        self._trades_keep = retention.trades_keep
        self._trades_max = retention.trades_max
        self._closed_keep = retention.closed_keep
        self._closed_max = retention.closed_max
        self._my_trades_keep = retention.my_trades_keep
        self._my_trades_max = retention.my_trades_max
        #: executions per fill of an account's taking order (the ``partial_fill`` fault; None: 1)
        self.fill_parts: Callable[[str], int] | None = None

    # =========================================================================================
    # Placement
    # =========================================================================================
    def place(self, a: Account, q: dict[str, Any]) -> dict[str, Any]:
        """Place the validated order request ``q`` (from :class:`~letrade_perf.sim.orderentry.OrderEntry`)
        of account ``a``: the book/balance checks, then (in one bracket) lock, match, rest or expire."""
        st = self.st
        r = st.rules
        book = st.book
        sym = st.symbol
        is_buy: bool = q["is_buy"]
        otype: str = q["type"]
        cid: str | None = q["cid"]
        if cid is not None and (sym, cid) in a.open_cids:
            raise order_rejected(DUPLICATE_ORDER)
        price: int = q["price"]
        qty: int = q["qty"]
        quote_qty: int = q["quote"]
        # -- engine checks that need the book and balances (nothing changes before they pass) --
        if otype == "LIMIT_MAKER":
            opp = book.best_ask() if is_buy else book.best_bid()
            if opp is not None and (price >= opp if is_buy else price <= opp):
                raise order_rejected(WOULD_MATCH)
        if otype in STOP_TYPES:
            if self.stop_triggered(q["side"], otype, q["stop"]):
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

        now = self._clock.now_ms()
        out = self._out
        out.begin(now)
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
                out.touch(a, need_asset)
            out.report(o, "NEW")
            fills: list[dict[str, Any]] = []
            if otype in STOP_TYPES:
                st.stops.append(o)
            elif otype == "MARKET":
                self.take(o, None, o.qty, fills, now)
                if o.executed < o.qty:
                    self.expire(o, "INSUFFICIENT_LIQUIDITY")
            elif otype == "LIMIT_MAKER":
                self.rest(o)
            elif fok_fail:
                self.expire(o, "UNFILLED_FOK_ORDER_EXPIRED")
            else:
                self.take(o, price, o.qty, fills, now)
                if o.executed < o.qty:
                    if o.tif == "GTC":
                        self.rest(o)
                    else:
                        self.expire(o, "UNFILLED_IOC_QUANTITY_EXPIRED" if o.tif == "IOC"
                                    else "UNFILLED_FOK_ORDER_EXPIRED")
            self.run_stops(now)
            self._stats.orders[o.status] += 1
            return self._order_response(o, q["resp"], fills, now)
        finally:
            out.end()

    def _register(self, a: Account, o: Order) -> None:
        sym = o.symbol
        a.orders[(sym, o.order_id)] = o
        a.open.setdefault(sym, {})[o.order_id] = o
        a.open_cids[(sym, o.client_id)] = o
        a.last_cid[(sym, o.client_id)] = o
        hist = a.history.setdefault(sym, [])
        hist.append(o)
        if len(hist) > self._closed_max:
            self._trim_history(a, sym, hist)

    def _trim_history(self, a: Account, sym: str, hist: list[Order]) -> None:
        """Forget the oldest closed orders beyond the kept number; open orders stay."""
        closed = sum(1 for o in hist if not o.is_open)
        excess = closed - self._closed_keep
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

    def _order_response(self, o: Order, resp: str, fills: list[dict[str, Any]], now: int) -> dict[str, Any]:
        d: dict[str, Any] = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1,
                             "clientOrderId": o.client_id, "transactTime": now}
        if resp == "ACK":
            return d
        d.update({
            "price": _fmt(o.price), "origQty": _fmt(o.qty), "executedQty": _fmt(o.executed),
            "origQuoteOrderQty": _fmt(o.quote_qty), "cummulativeQuoteQty": _fmt(o.cum_quote), "status": o.status,
            "timeInForce": o.tif, "type": o.type, "side": o.side, "workingTime": o.working_time,
            "selfTradePreventionMode": o.stp,
        })
        conditional_fields(o, d)
        if resp == "FULL":
            d["fills"] = fills
        return d

    # =========================================================================================
    # Book, lock and order-state changes
    # =========================================================================================
    def rest(self, o: Order) -> None:
        st = self.st
        st.book.add_order(o, o.is_buy, o.price, o.qty - o.executed)
        self._out.books_touched.add(st.symbol)

    def close(self, o: Order) -> None:
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
            self._out.touch(a, o.lock_asset)

    def expire(self, o: Order, reason: str) -> None:
        o.status = "EXPIRED"
        o.expiry_reason = reason
        o.update_time = self._out.now
        self.close(o)
        self._out.report(o, "EXPIRED")

    def cancel(self, o: Order, cancel_cid: str, now: int) -> dict[str, Any]:
        """Cancel ``o`` (an open order of this symbol) inside the caller's bracket."""
        st = self.st
        if o.entry is not None:
            st.book.remove_order(o, o.is_buy, o.price)
            self._out.books_touched.add(st.symbol)
        if o in st.stops:
            st.stops.remove(o)
        o.status = "CANCELED"
        o.update_time = now
        self.close(o)
        self._out.report(o, "CANCELED", cancel_cid=cancel_cid)
        d: dict[str, Any] = {
            "symbol": o.symbol, "origClientOrderId": o.client_id, "orderId": o.order_id, "orderListId": -1,
            "clientOrderId": cancel_cid, "transactTime": now, "price": _fmt(o.price), "origQty": _fmt(o.qty),
            "executedQty": _fmt(o.executed), "origQuoteOrderQty": _fmt(o.quote_qty),
            "cummulativeQuoteQty": _fmt(o.cum_quote), "status": o.status, "timeInForce": o.tif, "type": o.type,
            "side": o.side, "selfTradePreventionMode": o.stp}
        conditional_fields(o, d)
        return d

    # =========================================================================================
    # Matching and fills
    # =========================================================================================
    def take(self, o: Order | None, limit: int | None, qty: int | None, fills: list[dict[str, Any]] | None,
             now: int, taker_buy: bool = False) -> None:
        """Match a taker (an account order ``o`` or, with ``o`` None, synthetic flow)."""
        st = self.st
        is_buy = o.is_buy if o is not None else taker_buy
        matched = st.book.sweep(is_buy, limit, qty, None, st.rules.step)
        if not matched:
            return
        self._out.books_touched.add(st.symbol)
        taker_key = object()
        parts = self.fill_parts(st.symbol) if o is not None and self.fill_parts is not None else 1
        for maker, price, fq in matched:
            for q in split_qty(fq, parts, st.rules.step):
                self.trade(o, maker, price, q, is_buy, taker_key, fills, now)

    def trade(self, taker: Order | None, maker: Order | None, price: int, qty: int, taker_buy: bool,
              taker_key: object | None, fills: list[dict[str, Any]] | None, now: int) -> None:
        """One print between ``taker`` and ``maker`` (either None for the synthetic side)."""
        st = self.st
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
            self._stats.fills += 1
        else:
            self._stats.synthetic_trades += 1
        self._record_trade(tid, price, qty, quote, taker_buy, taker_key, now)

    def _record_trade(self, tid: int, price: int, qty: int, quote: int, taker_buy: bool,
                      taker_key: object | None, now: int) -> None:
        st = self.st
        buyer_maker = not taker_buy
        st.trades.append((tid, price, qty, quote, now, buyer_maker))
        st.trade_times.append(now)
        minute = now - now % MINUTE_MS
        if not st.minutes or st.minutes[-1][0] != minute:
            st.minutes.append((minute, tid))
        if len(st.trades) > self._trades_max:
            cut = len(st.trades) - self._trades_keep
            del st.trades[:cut]
            del st.trade_times[:cut]
        if taker_key is not None and st.agg_key is taker_key and st.aggs and st.aggs[-1][1] == price:
            agg = st.aggs[-1]
            agg[2] += qty
            agg[4] = tid
        else:
            agg = [st.next_agg_id, price, qty, tid, tid, now, buyer_maker]
            st.next_agg_id += 1
            st.aggs.append(agg)
            if len(st.aggs) > self._trades_max:
                del st.aggs[: len(st.aggs) - self._trades_keep]
        st.agg_key = taker_key
        st.last_price = price
        st.last_qty = qty
        st.last_time = now
        st.trade_seq += 1
        self._seq.trade_seq += 1
        st.history.record_trade(now, price, qty, quote, tid, taker_buy)
        self._events.trade(TradeEvent(st.symbol, tid, _fmt(price), _fmt(qty), _fmt(quote), now, buyer_maker,
                                      agg[0]))

    def _fill(self, o: Order, price: int, qty: int, quote: int, tid: int, maker: bool) -> tuple[int, str]:
        a = self._accounts[o.account]
        st = self.st
        r = st.rules
        out = self._out
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
        out.touch(a, r.base)
        out.touch(a, r.quote)
        o.executed += qty
        o.cum_quote += quote
        o.update_time = out.now
        o.status = "FILLED" if o.executed >= o.qty else "PARTIALLY_FILLED"
        trades = a.trades.setdefault(o.symbol, [])
        trades.append((tid, o.order_id, price, qty, quote, fee, fee_asset, out.now, o.is_buy, maker))
        if len(trades) > self._my_trades_max:
            del trades[: len(trades) - self._my_trades_keep]
        if o.status == "FILLED":
            if o.entry is not None:
                st.book.remove_order(o, o.is_buy, o.price)
            self.close(o)
        out.report(o, "TRADE", last_qty=qty, last_price=price, fee=fee, fee_asset=fee_asset, trade_id=tid,
                   maker=maker, last_quote=quote)
        return fee, fee_asset

    # =========================================================================================
    # Stop orders
    # =========================================================================================
    def stop_triggered(self, side: str, otype: str, stop: int) -> bool:
        st = self.st
        last = st.last_price or st.path.price8(self._seq.last_tick)
        above = (otype in ("STOP_LOSS", "STOP_LOSS_LIMIT")) == (side == "BUY")
        return last >= stop if above else last <= stop

    def run_stops(self, now: int) -> None:
        st = self.st
        for _ in range(10):
            if not st.stops:
                return
            fired = [o for o in st.stops if o.is_open and self.stop_triggered(o.side, o.type, o.stop_price)]
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
                            self.take(o, None, q, None, now)
                    else:
                        self.take(o, None, o.qty, None, now)
                    if o.is_open:
                        self.expire(o, "INSUFFICIENT_LIQUIDITY")
                else:
                    self.take(o, o.price, o.qty - o.executed, None, now)
                    if o.is_open:
                        if o.tif == "GTC":
                            self.rest(o)
                        else:
                            self.expire(o, "UNFILLED_IOC_QUANTITY_EXPIRED" if o.tif == "IOC"
                                        else "UNFILLED_FOK_ORDER_EXPIRED")


def split_qty(qty: int, parts: int, step: int) -> list[int]:
    """``qty`` (e8) in up to ``parts`` pieces on ``step`` that sum to it: equal pieces rounded down
    to the step, the remainder on the last (fewer pieces when ``qty`` has fewer steps)."""
    if parts <= 1 or step <= 0:
        return [qty]
    steps = qty // step
    n = min(parts, steps)
    if n <= 1:
        return [qty]
    piece = steps // n * step
    return [piece] * (n - 1) + [qty - piece * (n - 1)]


def conditional_fields(o: Order, d: dict[str, Any]) -> None:
    """Add the fields Binance sends only when set (stop price, iceberg, strategy, expiry reason)."""
    if o.stop_price:
        d["stopPrice"] = _fmt(o.stop_price)
    if o.iceberg:
        d["icebergQty"] = _fmt(o.iceberg)
    strategy_and_expiry(o, d)


def strategy_and_expiry(o: Order, d: dict[str, Any]) -> None:
    """Add ``strategyId`` / ``strategyType`` and an expired order's ``expiryReason`` when set (every
    order answer; query answers carry stop price and iceberg always)."""
    if o.strategy_id is not None:
        d["strategyId"] = o.strategy_id
    if o.strategy_type is not None:
        d["strategyType"] = o.strategy_type
    if o.status == "EXPIRED" and o.expiry_reason:
        d["expiryReason"] = o.expiry_reason
