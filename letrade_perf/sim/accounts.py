"""The account side: balances, deposits, order look-ups and the order/trade history queries."""
from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal
from typing import Any

from ..binance.errors import UNKNOWN_ORDER, BinanceError, error
from ..binance.intervals import DAY_MS
from .clock import SimClock
from .filters import E8, STOP_TYPES, check_precision, to_e8
from .matching import strategy_and_expiry
from .outbox import Outbox
from .params import Params
from .state import ZERO, Account, Order, SymbolState, account_of, clamp_limit, fmt_e8, symbol_state

_fmt = fmt_e8
_ZERO = ZERO
BOTH_IDS_EMPTY = "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"


class AccountDesk:
    """Answers the account requests over ``accounts`` (orders of the symbols ``syms``)."""

    def __init__(self, syms: dict[str, SymbolState], accounts: dict[str, Account], clock: SimClock, out: Outbox):
        self._syms = syms
        self._accounts = accounts
        self.clock = clock
        self._out = out

    def account(self, account_id: str, p: Params) -> dict[str, Any]:
        a = account_of(self._accounts, account_id)
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
        b = account_of(self._accounts, account_id).balances.get(asset, [0, 0])
        return Decimal(b[0]) / E8, Decimal(b[1]) / E8

    def deposit(self, account_id: str, asset: str, amount: Decimal) -> dict[str, Any]:
        a = account_of(self._accounts, account_id)
        amount = Decimal(amount)
        check_precision("amount", amount)
        if amount <= 0:
            raise error(-1100, "amount", "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
        v = to_e8(amount)
        now = self.clock.now_ms()
        out = self._out
        out.begin(now)
        try:
            a.bal(asset)[0] += v
            out.touch(a, asset)
            out.reports.append((a.api_key, {"e": "balanceUpdate", "E": now, "a": asset, "d": _fmt(v), "T": now}))
        finally:
            out.end()
        free, locked = a.balances[asset]
        return {"asset": asset, "free": _fmt(free), "locked": _fmt(locked)}

    def lookup(self, a: Account, sym: str, p: Params, for_cancel: bool) -> Order:
        """The order named by ``orderId``/``origClientOrderId`` (``-2013``, or ``-2011`` for a cancel)."""
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
            assert ocid is not None  # both None was refused above
            o = a.open_cids.get((sym, ocid)) if for_cancel else None
            if o is None:
                o = a.last_cid.get((sym, ocid))
            if o is None:
                raise missing
        if for_cancel and not o.is_open:
            raise missing
        return o

    @staticmethod
    def order_dict(o: Order) -> dict[str, Any]:
        d: dict[str, Any] = {
            "symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
            "price": _fmt(o.price), "origQty": _fmt(o.qty), "executedQty": _fmt(o.executed),
            "cummulativeQuoteQty": _fmt(o.cum_quote), "status": o.status, "timeInForce": o.tif, "type": o.type,
            "side": o.side, "stopPrice": _fmt(o.stop_price), "icebergQty": _fmt(o.iceberg), "time": o.time,
            "updateTime": o.update_time, "isWorking": o.type not in STOP_TYPES or o.triggered,
            "workingTime": o.working_time, "origQuoteOrderQty": _fmt(o.quote_qty),
            "selfTradePreventionMode": o.stp,
        }
        strategy_and_expiry(o, d)
        return d

    def get_order(self, account_id: str, p: Params) -> dict[str, Any]:
        a = account_of(self._accounts, account_id)
        st = symbol_state(self._syms, p.symbol())
        return self.order_dict(self.lookup(a, st.symbol, p, for_cancel=False))

    def open_orders(self, account_id: str, p: Params) -> list[dict[str, Any]]:
        a = account_of(self._accounts, account_id)
        sym = p.symbol(required=False)
        if sym is not None:
            symbol_state(self._syms, sym)
            return [self.order_dict(o) for o in a.open.get(sym, {}).values()]
        out: list[dict[str, Any]] = []
        for opened in a.open.values():
            out.extend(self.order_dict(o) for o in opened.values())
        return out

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

    def all_orders(self, account_id: str, p: Params) -> list[dict[str, Any]]:
        a = account_of(self._accounts, account_id)
        st = symbol_state(self._syms, p.symbol())
        oid = p.int("orderId", lo=0)
        start, end = self._time_span(p)
        limit = clamp_limit(p)
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
        return [self.order_dict(o) for o in sel]

    def my_trades(self, account_id: str, p: Params) -> list[dict[str, Any]]:
        a = account_of(self._accounts, account_id)
        st = symbol_state(self._syms, p.symbol())
        oid = p.int("orderId", lo=0)
        from_id = p.int("fromId", lo=0)
        start, end = self._time_span(p)
        limit = clamp_limit(p)
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
