"""The ``partial_fill`` fault: an account's taking order fills in several executions
(PARTIALLY_FILLED … then FILLED), and the FULL answer, the order query, the account trades, the
executionReports and the balances all agree."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from letrade_perf.sim.config import FaultSpec, SimConfigError, from_mapping
from letrade_perf.sim.faults import FaultModel
from letrade_perf.sim.matching import split_qty
from test_engine import KEY, P, Rig, locked_invariant, order


def faulted(parts: int = 3, **spec) -> Rig:
    rig = Rig()
    fm = FaultModel(rig.cfg, rig.clock, rig.stats, random.Random(7))
    fm.add(FaultSpec("partial_fill", parts=parts, **spec))
    rig.ex.set_fill_parts(fm.fill_parts)
    rig.faults = fm
    return rig


def test_split_qty_keeps_the_step_and_the_sum():
    assert split_qty(9, 3, 1) == [3, 3, 3]
    assert split_qty(10, 3, 1) == [3, 3, 4]
    assert split_qty(1000, 4, 100) == [200, 200, 200, 400]
    assert split_qty(200, 5, 100) == [100, 100]        # fewer steps than parts
    assert split_qty(100, 5, 100) == [100]
    assert split_qty(5, 1, 1) == [5]
    for qty, parts, step in ((12_345_000, 7, 1000), (99_000, 2, 1000), (1000, 100, 1000)):
        pieces = split_qty(qty, parts, step)
        assert sum(pieces) == qty and all(p % step == 0 and p > 0 for p in pieces)


def test_a_market_order_fills_in_parts_and_everything_agrees():
    rig = faulted(parts=3)
    base0, quote0 = rig.bal("BTC"), rig.bal("USDT")
    r = order(rig, side="BUY", type="MARKET", quantity="0.00300", newOrderRespType="FULL")
    assert r["status"] == "FILLED" and len(r["fills"]) >= 3
    reports = [e for e in rig.reports() if e["c"] == r["clientOrderId"]]
    xs = [(e["x"], e["X"]) for e in reports]
    assert xs[0] == ("NEW", "NEW") and xs[-1] == ("TRADE", "FILLED")
    assert xs[1:-1] and all(x == ("TRADE", "PARTIALLY_FILLED") for x in xs[1:-1])
    trades = [e for e in reports if e["x"] == "TRADE"]
    assert [e["t"] for e in trades] == [f["tradeId"] for f in r["fills"]]
    assert [Decimal(e["l"]) for e in trades] == [Decimal(f["qty"]) for f in r["fills"]]
    # cumulative quantities grow execution by execution up to the order's
    assert [Decimal(e["z"]) for e in trades] == sorted(Decimal(e["z"]) for e in trades)
    executed = sum(Decimal(f["qty"]) for f in r["fills"])
    quote = sum(Decimal(e["Y"]) for e in trades)
    fees = sum(Decimal(f["commission"]) for f in r["fills"])
    assert executed == Decimal("0.003") == Decimal(r["executedQty"]) == Decimal(trades[-1]["z"])
    assert quote == Decimal(r["cummulativeQuoteQty"]) == Decimal(trades[-1]["Z"])
    q = rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=r["orderId"]))
    assert (q["status"], q["executedQty"], q["cummulativeQuoteQty"]) == ("FILLED", r["executedQty"],
                                                                          r["cummulativeQuoteQty"])
    mine = rig.ex.my_trades(KEY, P(symbol="BTCUSDT", orderId=r["orderId"]))
    assert [t["id"] for t in mine] == [f["tradeId"] for f in r["fills"]]
    base1, quote1 = rig.bal("BTC"), rig.bal("USDT")
    assert sum(base1) - sum(base0) == executed - fees
    assert sum(quote1) - sum(quote0) == -quote
    locked_invariant(rig)
    assert rig.stats.snapshot()["faults"]["partial_fill"] == 1


def test_a_sell_fills_in_parts_with_fees_in_quote():
    rig = faulted(parts=2)
    base0, quote0 = rig.bal("BTC"), rig.bal("USDT")
    r = order(rig, side="SELL", type="MARKET", quantity="0.00200")
    assert r["status"] == "FILLED" and len(r["fills"]) >= 2
    proceeds = sum(Decimal(e["Y"]) for e in rig.reports() if e["x"] == "TRADE")
    fees = sum(Decimal(f["commission"]) for f in r["fills"])
    assert all(f["commissionAsset"] == "USDT" for f in r["fills"])
    assert sum(rig.bal("BTC")) - sum(base0) == Decimal("-0.002")
    assert sum(rig.bal("USDT")) - sum(quote0) == proceeds - fees
    locked_invariant(rig)


def test_the_rule_selects_symbols_and_counts_orders():
    rig = faulted(parts=4, endpoints=["ETHUSDT"], count=1)
    r = order(rig, side="BUY", type="MARKET", quantity="0.00100")
    assert len(r["fills"]) == 1                                   # BTCUSDT is not selected
    e1 = order(rig, symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.0040")
    e2 = order(rig, symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.0040")
    assert len(e1["fills"]) >= 4 and len(e2["fills"]) == 1           # count=1: the second is whole
    assert rig.faults.snapshot()["rules"][0]["fired"] == 1


def test_a_resting_order_is_not_split_until_it_takes():
    rig = faulted(parts=3)
    bid, _ask = rig.top()
    r = order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(bid - 100))
    assert r["status"] == "NEW" and r["fills"] == []
    assert rig.stats.snapshot()["faults"].get("partial_fill", 0) == 0


def test_config_accepts_partial_fill_and_bounds_parts():
    cfg = from_mapping({"faults": [{"kind": "partial_fill", "parts": 5, "endpoints": ["BTCUSDT"]}]}, "t.yaml")
    assert cfg.faults[0].parts == 5
    with pytest.raises(SimConfigError, match="parts"):
        from_mapping({"faults": [{"kind": "partial_fill", "parts": 0}]}, "t.yaml")


def test_a_real_simulator_splits_fills_from_its_config(sim_factory):
    sim = sim_factory({"faults": [{"kind": "partial_fill", "parts": 3}]})
    r = sim.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                             "quantity": "0.00300", "newOrderRespType": "FULL"})
    assert r.status == 200, r.body
    body = r.json()
    assert body["status"] == "FILLED" and len(body["fills"]) >= 3
    q = sim.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": body["orderId"]}).json()
    assert q["executedQty"] == body["executedQty"] and q["cummulativeQuoteQty"] == body["cummulativeQuoteQty"]
    assert sim.stats()["faults"]["partial_fill"] == 1
