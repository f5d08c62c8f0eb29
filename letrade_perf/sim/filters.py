"""Symbol rules: fixed-point units, exchangeInfo filters and the order filter checks.

Prices, quantities and balances are held as integers in units of 1e-8 ("e8"), the precision
Binance prints, so every sum is exact and formatting is a cheap integer split. The filters a
symbol advertises in ``exchangeInfo`` and the checks :mod:`.engine` runs come from the same
:class:`SymbolRules`, so what a client reads is what the simulator enforces.
"""
from __future__ import annotations

from decimal import Decimal
from typing import cast

from ..binance.errors import error, filter_failure
from .config import SymbolSpec

E8 = 100_000_000
_E8D = Decimal(E8)
_Q8 = Decimal("0.00000001")

#: Order types the simulator executes (listed in exchangeInfo ``orderTypes``).
ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
               "TAKE_PROFIT_LIMIT")
STOP_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
STP_MODES = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT")
ICEBERG_PARTS_LIMIT = 100
MAX_NUM_ALGO_ORDERS = 5
TRAILING_DELTA_MIN = 10
TRAILING_DELTA_MAX = 2000


def fmt8(v: int) -> str:
    """``123456789`` -> ``"1.23456789"`` (e8 units to Binance's 8-decimal string)."""
    if v < 0:
        v = -v
        return f"-{v // E8}.{v % E8:08d}"
    return f"{v // E8}.{v % E8:08d}"


def to_e8(d: Decimal) -> int:
    """A Decimal with at most 8 decimals to e8 units (callers check precision first).

    Exact integer arithmetic on the digits: a request value may carry up to 40 digits
    (``^([0-9]{1,20})(\\.[0-9]{1,20})?$``), more than Decimal's 28-digit context holds."""
    if not d.is_finite():
        raise ValueError(f"not a finite decimal: {d}")
    sign, digits, exp = d.as_tuple()
    n = int("".join(map(str, digits)) or "0")
    shift = cast(int, exp) + 8  # finite: the exponent is an int (not 'n'/'N'/'F')
    n = n * 10 ** shift if shift >= 0 else n // 10 ** -shift
    return -n if sign else n


def dec_e8(s: str) -> int:
    """A decimal string (config value) to e8 units, rounded to 8 decimals."""
    return int(Decimal(str(s)).quantize(_Q8) * _E8D)


def has_excess_precision(d: Decimal, places: int = 8) -> bool:
    """True when ``d`` has non-zero digits beyond ``places`` decimals."""
    _, digits, exp = d.as_tuple()
    if not isinstance(exp, int) or exp >= -places:
        return False
    # the digits past ``places`` decimals; no context arithmetic (quantize overflows 28 digits)
    return any(digits[exp + places:])


def check_precision(name: str, d: Decimal | None, places: int = 8) -> None:
    if d is not None and has_excess_precision(d, places):
        raise error(-1111, name)


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


class SymbolRules:
    """A symbol's filters in e8 units, its exchangeInfo entry and the checks behind them."""

    def __init__(self, spec: SymbolSpec):
        self.spec = spec
        self.symbol = spec.symbol
        self.base = spec.base
        self.quote = spec.quote
        self.tick = dec_e8(spec.tick_size)
        self.step = dec_e8(spec.step_size)
        self.min_price = dec_e8(spec.min_price)
        self.max_price = dec_e8(spec.max_price)
        self.min_qty = dec_e8(spec.min_qty)
        self.max_qty = dec_e8(spec.max_qty)
        self.market_min_qty = self.min_qty
        self.market_max_qty = dec_e8(spec.market_max_qty)
        self.min_notional = dec_e8(spec.min_notional)
        self.max_notional = dec_e8(spec.max_notional)
        self.up = Decimal(spec.percent_price_up)
        self.down = Decimal(spec.percent_price_down)
        self.max_num_orders = spec.max_num_orders
        self.base_precision = spec.base_precision
        self.quote_precision = spec.quote_precision
        if self.tick <= 0 or self.step <= 0:
            raise ValueError(f"{spec.symbol}: tick_size and step_size must be at least 0.00000001")

    @property
    def trading(self) -> bool:
        return self.spec.status == "TRADING"

    # -- exchangeInfo ------------------------------------------------------------------------
    def filters(self) -> list[dict]:
        f8 = fmt8
        return [
            {"filterType": "PRICE_FILTER", "minPrice": f8(self.min_price), "maxPrice": f8(self.max_price),
             "tickSize": f8(self.tick)},
            {"filterType": "LOT_SIZE", "minQty": f8(self.min_qty), "maxQty": f8(self.max_qty),
             "stepSize": f8(self.step)},
            {"filterType": "ICEBERG_PARTS", "limit": ICEBERG_PARTS_LIMIT},
            {"filterType": "MARKET_LOT_SIZE", "minQty": f8(self.market_min_qty),
             "maxQty": f8(self.market_max_qty), "stepSize": f8(self.step)},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": TRAILING_DELTA_MIN,
             "maxTrailingAboveDelta": TRAILING_DELTA_MAX, "minTrailingBelowDelta": TRAILING_DELTA_MIN,
             "maxTrailingBelowDelta": TRAILING_DELTA_MAX},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": str(self.up),
             "bidMultiplierDown": str(self.down), "askMultiplierUp": str(self.up),
             "askMultiplierDown": str(self.down), "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": f8(self.min_notional), "applyMinToMarket": True,
             "maxNotional": f8(self.max_notional), "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": self.max_num_orders},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": MAX_NUM_ALGO_ORDERS},
        ]

    def exchange_info_entry(self) -> dict:
        return {
            "symbol": self.symbol,
            "status": self.spec.status,
            "baseAsset": self.base,
            "baseAssetPrecision": self.base_precision,
            "quoteAsset": self.quote,
            "quotePrecision": self.quote_precision,
            "quoteAssetPrecision": self.quote_precision,
            "baseCommissionPrecision": self.base_precision,
            "quoteCommissionPrecision": self.quote_precision,
            "orderTypes": list(ORDER_TYPES),
            "icebergAllowed": True,
            "ocoAllowed": False,
            "otoAllowed": False,
            "opoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "pegInstructionsAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": self.filters(),
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": list(STP_MODES),
        }

    # -- checks (each raises the BinanceError Binance sends) ----------------------------------
    def round_price(self, price8: int) -> int:
        """Nearest tick, never below one tick."""
        t = self.tick
        return max(t, (price8 + t // 2) // t * t)

    def check_price(self, price8: int) -> None:
        if price8 <= 0 or (self.min_price and price8 < self.min_price) or (self.max_price and price8 > self.max_price) \
                or price8 % self.tick:
            raise filter_failure("PRICE_FILTER")

    def check_lot(self, qty8: int, market: bool = False) -> None:
        if market:
            if qty8 < self.market_min_qty or (self.market_max_qty and qty8 > self.market_max_qty) \
                    or qty8 % self.step:
                raise filter_failure("MARKET_LOT_SIZE")
        if qty8 < self.min_qty or qty8 > self.max_qty or qty8 % self.step:
            raise filter_failure("LOT_SIZE")

    def check_iceberg(self, qty8: int, iceberg8: int) -> None:
        if iceberg8 % self.step or iceberg8 < self.min_qty:
            raise filter_failure("LOT_SIZE")
        if ceil_div(qty8, iceberg8) > ICEBERG_PARTS_LIMIT:
            raise filter_failure("ICEBERG_PARTS")

    def check_percent_price(self, side: str, price8: int, ref8: int) -> None:
        """PERCENT_PRICE_BY_SIDE: price within [ref × down, ref × up] (same band both sides)."""
        if ref8 <= 0:
            return
        ref = Decimal(ref8)
        if Decimal(price8) > ref * self.up or Decimal(price8) < ref * self.down:
            raise filter_failure("PERCENT_PRICE_BY_SIDE")

    def check_notional(self, notional8: int, market: bool = False) -> None:
        if notional8 < self.min_notional:
            raise filter_failure("NOTIONAL")
        if not market and self.max_notional and notional8 > self.max_notional:
            raise filter_failure("NOTIONAL")
