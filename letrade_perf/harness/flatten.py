"""The flatten step: cancel the run's open orders and, where the profile allows it, trade the
run's net position back.

:func:`flatten` runs in one process on that process's ledger (in a distributed run each worker
flattens its own; the master forwards the request):

1. the kill switch (:func:`~letrade_perf.harness.ledger.cancel_open_orders`) cancels every
   order of the run that may still be open — its cancel answers show what each order executed;
2. orders that may have executed but whose quantity no answer showed are looked up
   (``GET /api/v3/order``, at most :data:`MAX_QUERIES`), so the net position is exact;
3. with ``trade_back``, per symbol with a net position (:meth:`~letrade_perf.harness.ledger.OrderLedger.net_positions`)
   MARKET orders the other way go through the one call path (source ``flatten``, so a block of
   new orders lets them through; the safety gate judges them like any order: production guard,
   symbol allowlist, ``max_order_notional``). The quantity is rounded *down* to the symbol's
   market lot step, never more than the position, split into equal orders when one would exceed
   ``safety.max_order_notional`` (:func:`plan_trade_back`); a residual below one step stays
   (*within the lot size*), one below the minimum notional is skipped and reported;
4. the ledger is read again: ``ok`` when no order of the run is open and every symbol's net
   position is within one lot step (or, untradeable, below the minimum notional).

The report (a JSON-able dict) is fired as ``letrade_flatten(report=...)`` and logged; the
context keeps it for the run's reports.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from ..calls.path import Order, SafetyRefusal
from ..pacing import IpBanned
from ..users.base import next_index
from ..users.orders import client_order_id
from ..users.symbols import SymbolRules
from .ledger import cancel_open_orders

log = logging.getLogger("letrade_perf.harness.flatten")

#: orders with an unknown executed quantity looked up before the position is computed
MAX_QUERIES = 100
#: trade-back orders per symbol at most (a position far above max_order_notional stays, reported)
MAX_ORDERS_PER_SYMBOL = 20
#: queries resolving a trade-back order whose answer left its status unknown
RESOLVE_ATTEMPTS = 2
_ZERO = Decimal(0)


@dataclass
class TradeBackPlan:
    """How one symbol's net position is traded back: ``side`` and the order ``quantities`` (each
    on the market lot step, within the caps), the ``residual`` left (base asset) and ``notes``
    saying why anything is left."""

    side: str
    quantities: list[Decimal] = field(default_factory=list)
    residual: Decimal = _ZERO
    notes: list[str] = field(default_factory=list)


def _floor(value: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def plan_trade_back(position: Decimal, rules: SymbolRules, price: Decimal, max_order_notional: Decimal,
                    max_orders: int = MAX_ORDERS_PER_SYMBOL) -> TradeBackPlan:
    """The MARKET orders that trade ``position`` (base asset; > 0 long: sell, < 0 short: buy)
    back at about ``price``.

    The total is rounded down to the market lot step (never more than the position); orders are
    split into equal parts (on the step) when one would exceed ``max_order_notional`` or the
    symbol's maximum quantity; at most ``max_orders`` orders. A part below the minimum quantity
    or the minimum notional is not planned (noted); what is not planned is the ``residual``."""
    side = "SELL" if position > 0 else "BUY"
    amount = abs(position)
    plan = TradeBackPlan(side, residual=amount)
    if amount == 0:
        return plan
    step = rules.market_step if rules.market_step > 0 else rules.step
    total = _floor(amount, step)
    if total <= 0:
        plan.notes.append(f"{amount} is within the lot size (step {step})")
        return plan
    caps = [q for q in (rules.market_max_qty, rules.max_qty) if q > 0]
    if price > 0 and max_order_notional > 0:
        caps.append(_floor(max_order_notional / price, step))
    per_order = min(caps) if caps else total
    lo = max(rules.market_min_qty, rules.min_qty)
    if per_order <= 0 or per_order < lo:
        plan.notes.append(f"one order may carry at most {per_order} (max_order_notional {max_order_notional} "
                          f"at {price}), below the minimum quantity {lo}")
        return plan
    n = int((total / per_order).to_integral_value(ROUND_CEILING))
    if n > max_orders:
        plan.notes.append(f"{n} orders would be needed, at most {max_orders} are sent")
        n, total = max_orders, per_order * max_orders
    steps = int(total / step) if step > 0 else 0
    if step > 0:
        base, extra = divmod(steps, n)     # equal parts: no tiny last order below the minimums
        parts = [(base + (1 if i < extra else 0)) * step for i in range(n)]
    else:
        parts = [total / n] * n
    for qty in parts:
        problem = rules.check(qty.normalize(), price, market=True) if qty > 0 else "nothing to trade"
        if problem is None:
            plan.quantities.append(qty.normalize())
        else:
            plan.notes.append(f"{qty.normalize()} not traded back: {problem}")
    plan.residual = amount - sum(plan.quantities, _ZERO)
    if 0 < plan.residual < step and not plan.notes:
        plan.notes.append(f"{plan.residual.normalize()} is within the lot size (step {step})")
    return plan


def residual_state(position: Decimal, rules: SymbolRules | None, price: Decimal | None) -> str:
    """How a symbol's net position after the flatten stands: ``flat``, ``within the lot size``
    (below one market step), ``below the minimum notional`` (cannot be traded) or ``open``."""
    amount = abs(position)
    if amount == 0:
        return "flat"
    if rules is None:
        return "open"
    step = rules.market_step if rules.market_step > 0 else rules.step
    if amount < step:
        return "within the lot size"
    if price is not None and rules.min_notional and _floor(amount, step) * price < rules.min_notional:
        return "below the minimum notional"
    return "open"


#: residual states that leave the flatten ``ok``
SETTLED = ("flat", "within the lot size", "below the minimum notional")


def _price(ctx: Any, symbol: str, side: str) -> Decimal | None:
    """The price a MARKET order of ``side`` would meet (best bid to sell, best ask to buy)."""
    res = ctx.exchange.call("GET", "/api/v3/ticker/bookTicker", {"symbol": symbol}, source="flatten")
    if not res.ok or not isinstance(res.data, dict):
        return None
    try:
        p = Decimal(str(res.data["bidPrice" if side == "SELL" else "askPrice"]))
    except (KeyError, ArithmeticError, ValueError):
        return None
    return p if p > 0 else None


def _query(ctx: Any, symbol: str, cid: str):
    """``GET /api/v3/order`` on the call path (which books what it shows in the ledger)."""
    return ctx.exchange.call("GET", "/api/v3/order", {"symbol": symbol, "origClientOrderId": cid}, source="flatten",
                             expected_codes=(-2013,))


def _resolve_quantities(ctx: Any, report: dict) -> None:
    """Look up the orders whose executed quantity is not known (the net position needs it)."""
    pending = ctx.ledger.unknown_executions()
    for rec in pending[:MAX_QUERIES]:
        try:
            q = _query(ctx, rec.symbol, rec.client_order_id)
        except IpBanned:
            report["failures"].append("IP banned: executed quantities not looked up")
            return
        if not q.ok and q.code == -2013 and (rec.was_unknown or not rec.placed):
            ctx.ledger.resolved(rec.client_order_id, None)


def _send(ctx: Any, symbol: str, side: str, qty: Decimal, price: Decimal) -> dict:
    """One trade-back MARKET order through the call path; its report row."""
    runner = getattr(ctx.environment, "runner", None) if ctx.environment is not None else None
    worker = getattr(runner, "worker_index", 0) or 0
    cid = client_order_id("lf", ctx.run_id, worker, 0, next_index("flatten-order"))
    row: dict[str, Any] = {"client_order_id": cid, "symbol": symbol, "side": side, "qty": format(qty, "f"),
                           "status": None, "executed_qty": None}
    params = {"symbol": symbol, "side": side, "type": "MARKET", "quantity": format(qty, "f"),
              "newClientOrderId": cid, "newOrderRespType": "FULL"}
    try:
        res = ctx.exchange.call("POST", "/api/v3/order", params, order=Order(cid, symbol, side, qty * price, "flatten"),
                                source="flatten")
    except SafetyRefusal as e:
        row["status"] = f"refused: {e.reason}"
        return row
    except IpBanned:
        row["status"] = "not sent: IP banned"
        return row
    data = res.data if res.ok and isinstance(res.data, dict) else None
    for _ in range(RESOLVE_ATTEMPTS if data is None and res.unknown else 0):
        q = _query(ctx, symbol, cid)
        if q.ok and isinstance(q.data, dict):
            data = q.data
            break
        if q.code == -2013:
            ctx.ledger.resolved(cid, None)
            row["status"] = "not executed"
            return row
    if data is not None:
        row["status"] = str(data.get("status"))
        row["executed_qty"] = data.get("executedQty")
    else:
        row["status"] = "unknown" if res.unknown else f"rejected: {res.describe()}"
    return row


def flatten(ctx: Any, reason: str, by: str, trade_back: bool) -> dict:
    """Cancel the run's open orders and, with ``trade_back``, trade its net position back (see
    the module docstring). Returns the report; fires ``letrade_flatten(report=...)``."""
    started = time.time()
    report: dict[str, Any] = {"reason": reason, "by": by, "trade_back": trade_back, "started_at": started,
                              "ended_at": None, "cancelled": {"attempted": 0, "canceled": 0, "already_closed": 0,
                                                              "failures": []},
                              "orders": [], "positions": {}, "residual": {}, "failures": [], "ok": False,
                              "human": ""}
    ledger = ctx.ledger
    if ledger is None or getattr(ctx, "exchange", None) is None:
        report["failures"].append("no orders in this process")
        return _finish(ctx, report, {})
    try:
        cancel = cancel_open_orders(ctx)
        report["cancelled"] = {"attempted": cancel.attempted, "canceled": cancel.canceled,
                               "already_closed": cancel.already_closed, "failures": list(cancel.failed)}
        if trade_back:      # the position must be exact; without a trade-back it is only reported
            _resolve_quantities(ctx, report)
        before = ledger.net_positions()
        report["positions"] = {s: _fmt(p) for s, p in sorted(before.items())}
        prices: dict[str, Decimal | None] = {}
        if trade_back:
            for symbol, position in sorted(before.items()):
                if position != 0:
                    prices[symbol] = _trade_back(ctx, symbol, position, report)
    except Exception as e:  # a flatten reports what went wrong; it never raises into its caller
        log.exception("flatten failed")
        report["failures"].append(f"{type(e).__name__}: {e}")
        prices = {}
    return _finish(ctx, report, prices)


def _trade_back(ctx: Any, symbol: str, position: Decimal, report: dict) -> Decimal | None:
    """Trade one symbol's position back; the price used (None: none could be had)."""
    rules = ctx.symbol_rules.get(symbol)
    side = "SELL" if position > 0 else "BUY"
    if rules is None:
        report["failures"].append(f"{symbol}: no exchangeInfo rules; position not traded back")
        return None
    try:
        price = _price(ctx, symbol, side)
    except IpBanned:
        report["failures"].append(f"{symbol}: IP banned; position not traded back")
        return None
    if price is None:
        report["failures"].append(f"{symbol}: no price (bookTicker); position not traded back")
        return None
    cap = Decimal(str(ctx.profile.safety.max_order_notional))
    plan = plan_trade_back(position, rules, price, cap)
    for note in plan.notes:
        report.setdefault("notes", []).append(f"{symbol}: {note}")
    for qty in plan.quantities:
        refusal = ctx.order_refusal(symbol, qty * price)
        if refusal is not None:     # judged before sending: a refusal here is not the run's shortfall
            report["failures"].append(f"{symbol}: not traded back: {refusal}")
            break
        row = _send(ctx, symbol, side, qty, price)
        report["orders"].append(row)
        if row["status"] not in ("FILLED", "PARTIALLY_FILLED", "EXPIRED", "NEW"):
            report["failures"].append(f"{symbol}: order {row['client_order_id']} {row['status']}")
            break
    return price


def _finish(ctx: Any, report: dict, prices: dict[str, Decimal | None]) -> dict:
    """Read the ledger again, judge, log and fire the event."""
    ledger = ctx.ledger
    open_ids = ledger.open_order_ids() if ledger is not None else []
    positions = ledger.net_positions() if ledger is not None else {}
    unknown = [r.client_order_id for r in ledger.unknown_executions()] if ledger is not None else []
    residual = {}
    for symbol, pos in sorted(positions.items()):
        state = residual_state(pos, ctx.symbol_rules.get(symbol), prices.get(symbol))
        residual[symbol] = {"qty": _fmt(pos), "state": state}
    report["residual"] = residual
    report["open_orders"] = open_ids
    report["unknown_executions"] = unknown[:50]
    trade_back = report["trade_back"]
    judged = [v["state"] for v in residual.values()] if trade_back else []
    report["ok"] = bool(ledger is not None and not open_ids and not (trade_back and unknown)
                        and not report["cancelled"]["failures"] and not report["failures"]
                        and all(s in SETTLED for s in judged))
    report["ended_at"] = time.time()
    report["human"] = _human(report)
    (log.info if report["ok"] else log.warning)("flatten: %s", report["human"])
    hook = getattr(getattr(ctx.environment, "events", None), "letrade_flatten", None)
    if hook is not None:
        try:
            hook.fire(report=report)
        except Exception:  # a listener must not break the flatten
            log.exception("letrade_flatten listener failed")
    return report


def _fmt(qty: Decimal) -> str:
    return format(qty.normalize(), "f")


def _human(report: dict) -> str:
    c = report["cancelled"]
    parts = [f"{'OK' if report['ok'] else 'NOT FLAT'} ({report['reason']}, by {report['by']}):",
             f"{c['canceled']} open order(s) cancelled" + (f", {len(c['failures'])} failed" if c["failures"] else "")]
    if report["trade_back"]:
        sent = report["orders"]
        parts.append(f"{len(sent)} trade-back order(s)" + (
            " (" + ", ".join(f"{o['side']} {o['qty']} {o['symbol']} {o['status']}" for o in sent[:5]) + ")"
            if sent else ""))
    else:
        parts.append("position not traded back (trade_back is off)")
    if report["residual"]:
        parts.append("net " + ", ".join(f"{s} {v['qty']} ({v['state']})" for s, v in report["residual"].items()))
    if report["open_orders"]:
        parts.append(f"{len(report['open_orders'])} order(s) still open")
    if report["failures"]:
        parts.append("; ".join(report["failures"][:3]))
    return " ".join(parts[:1]) + " " + "; ".join(parts[1:])
