"""Symbol trading rules from exchangeInfo, and order sizing that respects them.

Pre-trade validation uses these rules so the harness sends orders the exchange accepts:
LOT_SIZE / MARKET_LOT_SIZE (step, min, max), PRICE_FILTER (tick), NOTIONAL / MIN_NOTIONAL.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Mapping

_ZERO = Decimal(0)


@dataclass(frozen=True)
class SymbolRules:
    """The filters of one symbol that decide an order's quantity and price."""

    symbol: str
    base: str
    quote: str
    status: str
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal
    max_notional: Decimal
    apply_min_to_market: bool = True

    @classmethod
    def from_exchange_info(cls, entry: Mapping) -> "SymbolRules":
        f = {x.get("filterType"): x for x in entry.get("filters", ())}
        lot = f.get("LOT_SIZE", {})
        mlot = f.get("MARKET_LOT_SIZE", {}) or lot
        price = f.get("PRICE_FILTER", {})
        notional = f.get("NOTIONAL") or {}
        legacy = f.get("MIN_NOTIONAL") or {}

        def d(m: Mapping, k: str, default: str = "0") -> Decimal:
            return Decimal(str(m.get(k, default)))

        step = d(lot, "stepSize")
        mstep = d(mlot, "stepSize") or step
        return cls(
            symbol=entry["symbol"], base=entry["baseAsset"], quote=entry["quoteAsset"],
            status=entry.get("status", "TRADING"),
            step=step, min_qty=d(lot, "minQty"), max_qty=d(lot, "maxQty"),
            market_step=mstep if mstep > 0 else step, market_min_qty=d(mlot, "minQty"), market_max_qty=d(mlot, "maxQty"),
            tick=d(price, "tickSize"), min_price=d(price, "minPrice"), max_price=d(price, "maxPrice"),
            min_notional=d(notional, "minNotional") if notional else d(legacy, "minNotional"),
            max_notional=d(notional, "maxNotional") if notional else _ZERO,
            apply_min_to_market=bool(notional.get("applyMinToMarket", legacy.get("applyToMarket", True))),
        )

    # -- rounding ------------------------------------------------------------------------------
    @staticmethod
    def _floor(value: Decimal, step: Decimal) -> Decimal:
        if step <= 0:
            return value
        return (value / step).to_integral_value(ROUND_FLOOR) * step

    @staticmethod
    def _ceil(value: Decimal, step: Decimal) -> Decimal:
        if step <= 0:
            return value
        return (value / step).to_integral_value(ROUND_CEILING) * step

    def qty_for_notional(self, notional: Decimal, price: Decimal, market: bool = True) -> Decimal:
        """The largest quantity on the (market) step whose value at ``price`` is ≤ ``notional``."""
        if price <= 0:
            return _ZERO
        step = self.market_step if market else self.step
        return self._floor(notional / price, step).normalize()

    def limit_price(self, price: Decimal, side: str, through_bps: Decimal) -> Decimal:
        """A marketable limit price ``through_bps`` beyond ``price`` (BUY up, SELL down), on the tick."""
        factor = Decimal(1) + (through_bps if side == "BUY" else -through_bps) / Decimal(10_000)
        p = price * factor
        p = self._ceil(p, self.tick) if side == "BUY" else self._floor(p, self.tick)
        return p.normalize()

    def check(self, qty: Decimal, price: Decimal, market: bool = True) -> str | None:
        """Why an order of ``qty`` at ``price`` would fail the filters (None when it passes)."""
        if self.status != "TRADING":
            return f"{self.symbol} status {self.status}"
        lo, hi, step = (self.market_min_qty, self.market_max_qty, self.market_step) if market \
            else (self.min_qty, self.max_qty, self.step)
        if qty <= 0 or (lo and qty < lo) or (self.min_qty and qty < self.min_qty):
            return f"quantity {qty} below the minimum {max(lo, self.min_qty)}"
        if (hi and qty > hi) or (self.max_qty and qty > self.max_qty):
            return f"quantity {qty} above the maximum"
        if step and (qty / step) != (qty / step).to_integral_value():
            return f"quantity {qty} not on step {step}"
        notional = qty * price
        if self.min_notional and (not market or self.apply_min_to_market) and notional < self.min_notional:
            return f"notional {notional} below the minimum {self.min_notional}"
        if not market and self.max_notional and notional > self.max_notional:
            return f"notional {notional} above the maximum {self.max_notional}"
        return None


def rules_from_exchange_info(info: Mapping) -> dict[str, SymbolRules]:
    """``{symbol: SymbolRules}`` for every symbol in an exchangeInfo response."""
    out = {}
    for entry in info.get("symbols", ()):
        try:
            out[entry["symbol"]] = SymbolRules.from_exchange_info(entry)
        except (KeyError, ArithmeticError, TypeError):
            continue
    return out
