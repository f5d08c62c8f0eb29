"""The run's money, computed from the exchange's own records: explained balance deltas, fund
safety, realised PnL, fees, slippage cost, return and portfolio weights. Pure (no I/O, no Locust).

Definitions (the README's "Fund safety and PnL" repeats them for users):

* **Balance** of an asset: ``free + locked`` of ``GET /api/v3/account``.
* **The run's fills**: the ``GET /api/v3/myTrades`` rows whose ``(symbol, orderId)`` is an order
  of the run's ledger. Nothing else is the run's.
* **Explained delta** of an asset: the sum over the run's fills of ``+qty`` of the base asset and
  ``−quoteQty`` of the quote asset for a buy (``−qty`` / ``+quoteQty`` for a sell), and
  ``−commission`` in ``commissionAsset``.
* **Unexplained delta**: ``(end − start) − explained``, exact (:class:`~decimal.Decimal`). An
  asset is *safe* when it is zero; ``fund_safety`` is safe assets ÷ assets (every asset of the
  start or end snapshot or of the run's fills).
* **Realised PnL** (quote asset of the symbol): average cost per symbol (per strategy: per
  ``(strategy, symbol)``). A fill that adds to the position (or opens it, long or short) moves
  the average entry price; a fill that reduces it realises ``closed qty × (price − average
  entry)`` (reversed for a short). Every fee is an expense at once: a fee in the quote asset as
  is, a fee in the base asset converted at the fill's price; a fee in a third asset (BNB) is not
  in the PnL and is listed under ``fees_other``.
* **Fees** (quote): the fees converted as above; ``fees_other``: per third asset.
* **Slippage cost** (quote): per order with a ``letrade_slippage`` figure, ``bps ÷ 10 000 ×``
  the order's executed quote value (positive: worse than the decision price).
* **Return**: realised PnL ÷ quote value bought (None when nothing was bought).
* **Portfolio weight** of an asset: its balance valued in the valuation asset (the first
  symbol's quote asset) at the last price ÷ the total value of the valued assets. Only the base
  and quote assets of the run's symbols form the portfolio; an asset without a price path to the
  valuation asset is left out (listed as unvalued).

Figures for several quote assets add up per quote asset (``by_quote``); the run's and each
strategy's headline figures (``pnl``, ``fees``, …) are in the valuation asset, summed over the
symbols quoted in it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping

ZERO = Decimal(0)
BPS = Decimal(10_000)
COST_QUANTUM = Decimal("1e-12")
"""Slippage costs are estimates (bps × notional): rounded to 12 decimals."""


def dec(value: Any) -> Decimal:
    """A Decimal of an exchange figure (strings as sent; never through float)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fmt(value: Decimal | None) -> str | None:
    """A Decimal as a plain string without exponent or trailing zeros (None stays None)."""
    if value is None:
        return None
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


@dataclass(frozen=True)
class Fill:
    """One row of ``GET /api/v3/myTrades``."""

    symbol: str
    trade_id: int
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_buyer: bool

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> "Fill":
        """A fill from one myTrades row (raises KeyError/ArithmeticError on a malformed row)."""
        return cls(str(row["symbol"]), int(row["id"]), int(row["orderId"]), dec(row["price"]), dec(row["qty"]),
                   dec(row["quoteQty"]), dec(row["commission"]), str(row["commissionAsset"]),
                   int(row.get("time") or 0), bool(row["isBuyer"]))


def balances_from_account(account: Mapping[str, Any]) -> dict[str, Decimal]:
    """``asset → free + locked`` of a ``GET /api/v3/account`` answer."""
    out: dict[str, Decimal] = {}
    for b in account.get("balances") or ():
        out[str(b["asset"])] = dec(b.get("free", 0)) + dec(b.get("locked", 0))
    return out


def explained_deltas(fills: Iterable[Fill], assets_of: Mapping[str, tuple[str, str]]) -> dict[str, Decimal]:
    """Per asset, what the fills moved (see the module docstring). ``assets_of``: symbol →
    (base, quote); a fill of a symbol not in it raises KeyError."""
    out: dict[str, Decimal] = {}
    for f in fills:
        base, quote = assets_of[f.symbol]
        sign = 1 if f.is_buyer else -1
        out[base] = out.get(base, ZERO) + sign * f.qty
        out[quote] = out.get(quote, ZERO) - sign * f.quote_qty
        if f.commission:
            out[f.commission_asset] = out.get(f.commission_asset, ZERO) - f.commission
    return out


@dataclass(frozen=True)
class AssetCheck:
    """One asset's balances and whether the run explains their change."""

    asset: str
    start: Decimal
    end: Decimal
    explained: Decimal

    @property
    def actual(self) -> Decimal:
        return self.end - self.start

    @property
    def unexplained(self) -> Decimal:
        return self.actual - self.explained

    @property
    def safe(self) -> bool:
        return self.unexplained == 0

    def to_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "start": fmt(self.start), "end": fmt(self.end), "delta": fmt(self.actual),
                "explained": fmt(self.explained), "unexplained": fmt(self.unexplained), "safe": self.safe}


def fund_safety(start: Mapping[str, Decimal], end: Mapping[str, Decimal],
                explained: Mapping[str, Decimal]) -> list[AssetCheck]:
    """Every asset of ``start``, ``end`` or ``explained`` checked, sorted by asset (a missing
    balance is zero)."""
    assets = sorted(set(start) | set(end) | set(explained))
    return [AssetCheck(a, start.get(a, ZERO), end.get(a, ZERO), explained.get(a, ZERO)) for a in assets]


@dataclass
class Pnl:
    """Money figures of one strategy (or the run) in one quote asset."""

    realised: Decimal = ZERO
    fees: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    slippage_cost: Decimal = ZERO
    fills: int = 0
    fees_other: dict[str, Decimal] = field(default_factory=dict)

    @property
    def return_(self) -> Decimal | None:
        return self.realised / self.bought if self.bought else None

    def add(self, other: "Pnl") -> None:
        self.realised += other.realised
        self.fees += other.fees
        self.bought += other.bought
        self.sold += other.sold
        self.slippage_cost += other.slippage_cost
        self.fills += other.fills
        for a, v in other.fees_other.items():
            self.fees_other[a] = self.fees_other.get(a, ZERO) + v

    def to_dict(self) -> dict[str, Any]:
        ret = self.return_
        return {"realised_pnl": fmt(self.realised), "fees": fmt(self.fees),
                "fees_other": {a: fmt(v) for a, v in sorted(self.fees_other.items())},
                "slippage_cost": fmt(self.slippage_cost), "bought": fmt(self.bought), "sold": fmt(self.sold),
                "return": None if ret is None else float(ret), "fills": self.fills}


class Position:
    """Average-cost position of one symbol (signed base quantity, average entry price)."""

    __slots__ = ("qty", "avg")

    def __init__(self) -> None:
        self.qty = ZERO
        self.avg = ZERO

    def fill(self, is_buy: bool, qty: Decimal, price: Decimal) -> Decimal:
        """Apply one fill; returns the PnL it realised (before fees)."""
        sign = 1 if is_buy else -1
        realised = ZERO
        if self.qty == 0 or (self.qty > 0) == is_buy:
            held = abs(self.qty)
            self.avg = (held * self.avg + qty * price) / (held + qty) if held + qty else ZERO
            self.qty += sign * qty
            return realised
        closed = min(qty, abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        realised = closed * (price - self.avg) * direction
        self.qty += sign * closed
        rest = qty - closed
        if self.qty == 0:
            self.avg = ZERO
        if rest > 0:                 # the fill reverses the position: the rest opens it anew
            self.qty = sign * rest
            self.avg = price
        return realised


def pnl_of(fills: Iterable[Fill], assets_of: Mapping[str, tuple[str, str]],
           slippage_cost: Mapping[tuple[str, int], Decimal] | None = None) -> dict[str, Pnl]:
    """Per quote asset, the :class:`Pnl` of ``fills`` (average cost per symbol, fills in trade-id
    order). ``slippage_cost``: per (symbol, orderId), the order's slippage cost in quote."""
    by_quote: dict[str, Pnl] = {}
    positions: dict[str, Position] = {}
    for f in sorted(fills, key=lambda x: (x.time_ms, x.symbol, x.trade_id)):
        base, quote = assets_of[f.symbol]
        p = by_quote.setdefault(quote, Pnl())
        pos = positions.setdefault(f.symbol, Position())
        p.realised += pos.fill(f.is_buyer, f.qty, f.price)
        p.fills += 1
        if f.is_buyer:
            p.bought += f.quote_qty
        else:
            p.sold += f.quote_qty
        if f.commission:
            if f.commission_asset == quote:
                fee: Decimal | None = f.commission
            elif f.commission_asset == base:
                fee = f.commission * f.price
            else:
                fee = None
                p.fees_other[f.commission_asset] = p.fees_other.get(f.commission_asset, ZERO) + f.commission
            if fee is not None:
                p.fees += fee
                p.realised -= fee
    for (symbol, _oid), cost in (slippage_cost or {}).items():
        pair = assets_of.get(symbol)
        if pair is not None and pair[1] in by_quote:
            by_quote[pair[1]].slippage_cost += cost
    return by_quote


def slippage_costs(slippage_bps: Mapping[tuple[str, int], float | Decimal],
                   fills: Iterable[Fill]) -> dict[tuple[str, int], Decimal]:
    """Per (symbol, orderId) with a slippage figure: ``bps ÷ 10 000 × executed quote value``."""
    executed: dict[tuple[str, int], Decimal] = {}
    for f in fills:
        key = (f.symbol, f.order_id)
        executed[key] = executed.get(key, ZERO) + f.quote_qty
    return {k: (dec(bps) / BPS * executed[k]).quantize(COST_QUANTUM)
            for k, bps in slippage_bps.items() if k in executed}


def price_in(asset: str, valuation: str, prices: Mapping[str, Decimal],
             assets_of: Mapping[str, tuple[str, str]]) -> Decimal | None:
    """The price of one unit of ``asset`` in ``valuation`` from the symbols' last prices (a
    direct pair either way), or None."""
    if asset == valuation:
        return Decimal(1)
    for symbol, (base, quote) in assets_of.items():
        price = prices.get(symbol)
        if not price:
            continue
        if base == asset and quote == valuation:
            return price
        if base == valuation and quote == asset:
            return Decimal(1) / price
    return None


def portfolio_weights(balances: Mapping[str, Decimal], assets: Iterable[str], valuation: str,
                      prices: Mapping[str, Decimal], assets_of: Mapping[str, tuple[str, str]]
                      ) -> tuple[dict[str, float], dict[str, Decimal], list[str]]:
    """``(weights, values, unvalued)`` of the portfolio ``assets``: each asset's value in
    ``valuation`` ÷ the total (weights empty when the total is zero)."""
    values: dict[str, Decimal] = {}
    unvalued: list[str] = []
    for a in sorted(set(assets)):
        p = price_in(a, valuation, prices, assets_of)
        if p is None:
            unvalued.append(a)
            continue
        values[a] = balances.get(a, ZERO) * p
    total = sum(values.values(), ZERO)
    weights = {a: float(v / total) for a, v in values.items()} if total > 0 else {}
    return weights, values, unvalued


def money_report(*, start: Mapping[str, Decimal], end: Mapping[str, Decimal], fills: list[Fill],
                 sources: Mapping[tuple[str, int], str], assets_of: Mapping[str, tuple[str, str]],
                 slippage_bps: Mapping[tuple[str, int], float | Decimal] | None = None,
                 valuation: str, prices: Mapping[str, Decimal], portfolio: Iterable[str]) -> dict[str, Any]:
    """The ``money`` block of ``summary.json`` (JSON-able; amounts as decimal strings).

    ``fills``: the run's fills only; ``sources``: (symbol, orderId) → strategy (the ledger
    record's ``source``); ``portfolio``: the assets weighed."""
    explained = explained_deltas(fills, assets_of)
    checks = fund_safety(start, end, explained)
    costs = slippage_costs(slippage_bps or {}, fills)
    run = pnl_of(fills, assets_of, costs)
    by_source: dict[str, list[Fill]] = {}
    for f in fills:
        by_source.setdefault(sources.get((f.symbol, f.order_id), "unknown"), []).append(f)
    strategies = {}
    for src, fs in sorted(by_source.items()):
        keys = {(f.symbol, f.order_id) for f in fs}
        per_quote = pnl_of(fs, assets_of, {k: v for k, v in costs.items() if k in keys})
        strategies[src] = _headline(per_quote, valuation)
    weights, values, unvalued = portfolio_weights(end, portfolio, valuation, prices, assets_of)
    safe = sum(1 for c in checks if c.safe)
    return {
        "valuation_asset": valuation,
        "balances": {c.asset: {"start": fmt(c.start), "end": fmt(c.end)} for c in checks},
        "fund_safety": {"assets": len(checks), "safe": safe,
                        "rate": (safe / len(checks)) if checks else None,
                        "unexplained": [c.to_dict() for c in checks if not c.safe],
                        "checks": [c.to_dict() for c in checks]},
        "pnl": {"run": _headline(run, valuation), "by_strategy": strategies},
        "weights": {a: round(w, 6) for a, w in weights.items()},
        "values": {a: fmt(v) for a, v in values.items()},
        "unvalued": unvalued,
        "fills": len(fills),
    }


def _headline(per_quote: Mapping[str, Pnl], valuation: str) -> dict[str, Any]:
    """One strategy's (or the run's) figures in ``valuation``, with every quote asset's own."""
    main = per_quote.get(valuation) or Pnl()
    out = main.to_dict()
    out["by_quote"] = {q: p.to_dict() for q, p in sorted(per_quote.items())}
    return out


__all__ = ["Fill", "AssetCheck", "Pnl", "Position", "balances_from_account", "explained_deltas", "fund_safety",
           "pnl_of", "slippage_costs", "price_in", "portfolio_weights", "money_report", "dec", "fmt"]
