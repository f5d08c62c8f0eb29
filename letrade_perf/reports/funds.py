"""The "Fund safety and PnL" section's content, shared by the Markdown and HTML reports: plain
text rows of ``summary["money"]`` (each report escapes them its own way)."""
from __future__ import annotations

from typing import Any

from . import fmt


def funds_headline(money: dict[str, Any]) -> str:
    """``5 of 5 assets explained by the run's fills (100 %)`` — or why there are no figures."""
    fs = money.get("fund_safety")
    if not fs:
        return f"no figures: {money.get('problem') or 'no end snapshot'}"
    text = f"{fs.get('safe')} of {fs.get('assets')} assets explained by the run's fills ({fmt.percent(fs.get('rate'))})"
    if money.get("problem"):
        text += f"; {money['problem']}"
    return text


def unexplained_rows(money: dict[str, Any]) -> list[list[str]]:
    """Asset, start, end, change, explained, unexplained — of every asset the run does not explain."""
    return [[str(u.get("asset")), str(u.get("start")), str(u.get("end")), str(u.get("delta")),
             str(u.get("explained")), str(u.get("unexplained"))]
            for u in (money.get("fund_safety") or {}).get("unexplained") or []]


BALANCE_HEADER = ["Asset", "Start", "End", "Change", "Explained by the run", "Weight"]
PNL_HEADER = ["Strategy", "Fills", "Realised PnL", "Fees", "Other fees", "Slippage cost", "Bought", "Return"]


def balance_rows(money: dict[str, Any]) -> list[list[str]]:
    """Per asset whose balance moved or that the portfolio weighs: start, end, change, explained, weight."""
    weights = money.get("weights") or {}
    rows = []
    for c in (money.get("fund_safety") or {}).get("checks") or []:
        asset = str(c.get("asset"))
        if c.get("delta") == "0" and c.get("explained") == "0" and asset not in weights:
            continue
        w = weights.get(asset)
        rows.append([asset, str(c.get("start")), str(c.get("end")), str(c.get("delta")), str(c.get("explained")),
                     fmt.percent(w) if w is not None else "—"])
    return rows


def _amount(value: Any) -> str:
    """A decimal string shortened for a table (8 decimals at most)."""
    if value is None:
        return "—"
    try:
        from decimal import Decimal
        d = Decimal(str(value))
        return format(d.quantize(Decimal("1e-8")).normalize(), "f") if d == d else str(value)
    except ArithmeticError:
        return str(value)


def pnl_rows(money: dict[str, Any]) -> list[list[str]]:
    """One row per strategy, then the run's (valuation asset; other fees per asset)."""
    pnl = money.get("pnl") or {}
    rows = []
    items = list((pnl.get("by_strategy") or {}).items()) + [("run (all strategies)", pnl.get("run"))]
    for name, p in items:
        if not p:
            continue
        other = ", ".join(f"{_amount(v)} {a}" for a, v in (p.get("fees_other") or {}).items()) or "—"
        ret = p.get("return")
        rows.append([str(name), str(p.get("fills", 0)), _amount(p.get("realised_pnl")), _amount(p.get("fees")), other,
                     _amount(p.get("slippage_cost")), _amount(p.get("bought")),
                     "—" if ret is None else f"{ret * 100:.4f} %"])
    return rows
