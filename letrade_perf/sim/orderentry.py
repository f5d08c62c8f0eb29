"""Order entry: parsing and validation of new-order requests (parameters, symbol filters, account
permissions) into the request dict that :meth:`SymbolMatcher.place
<letrade_perf.sim.matching.SymbolMatcher.place>` executes."""
from __future__ import annotations

from typing import Any

from ..binance.errors import MARKET_CLOSED, BinanceError, error, order_rejected
from .clock import SimClock
from .filters import E8, MAX_NUM_ALGO_ORDERS, ORDER_TYPES, STOP_TYPES, STP_MODES, check_precision, to_e8
from .marketview import MarketView
from .params import Params
from .state import ZERO, Account, SymbolState, fmt_e8, symbol_state

_fmt = fmt_e8
_ZERO = ZERO
CANNOT_TRADE = "This account may not place or cancel orders."
ICEBERG_EXCEEDS = "IcebergQty exceeds QTY."
QTY_OR_QUOTE_EMPTY = "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
STOP_OR_TRAILING_EMPTY = "Param 'stopPrice' or 'trailingDelta' must be sent, but both were empty/null!"
TRAILING_UNSUPPORTED = "Trailing stop orders are not supported for this symbol."


class OrderEntry:
    """Validates new orders against the symbols ``syms`` (the average price comes from ``view``)."""

    def __init__(self, syms: dict[str, SymbolState], clock: SimClock, view: MarketView):
        self._syms = syms
        self.clock = clock
        self._view = view

    def parse(self, a: Account, p: Params) -> dict[str, Any]:
        """The checked request of a new order (``-1xxx``/``-2010``/``-1013`` on bad input), amounts in e8."""
        st = symbol_state(self._syms, p.symbol())
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

    def _check_filters(self, a: Account, q: dict[str, Any]) -> None:
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
        avg = self._view.avg_price8(st, now)
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

    def test_order(self, a: Account, p: Params) -> dict[str, Any]:
        compute = p.bool("computeCommissionRates", False)
        self.parse(a, p)
        if not compute:
            return {}
        return {
            "standardCommissionForOrder": {"maker": _fmt(a.maker_rate), "taker": _fmt(a.taker_rate)},
            "specialCommissionForOrder": {"maker": _ZERO, "taker": _ZERO},
            "taxCommissionForOrder": {"maker": _ZERO, "taker": _ZERO},
            "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB",
                         "discount": "0.25000000"},
        }
