"""The run's funds bookkeeping without an exchange (letrade_perf.harness.positions): a worker
reports each order's orderId and slippage once, the master accumulates them, the positions view
shows start, now, the explained delta, the unexplained rest and open orders per asset, and a
balance change between two snapshots fires ``letrade_balance``."""
from __future__ import annotations

import types
from decimal import Decimal as D

import yaml

from letrade_perf.config.profile import profile_from_mapping
from letrade_perf.harness.ledger import OrderLedger
from letrade_perf.harness.plugin import ProcessState
from letrade_perf.harness.positions import WIRE_KEY, BalanceSnapshot, RunFunds, worker_report
from letrade_perf.metrics.money import Fill


class Hook:
    def __init__(self):
        self.calls = []

    def fire(self, **kw):
        self.calls.append(kw)


def _ctx(role: str):
    profile = profile_from_mapping(yaml.safe_load("""
description: unit
symbols: [BTCUSDT]
stages: [{duration: 10s, users: 1, spawn_rate: 1}]
users: {pipeline: {fixed_count: 1, notional: 12}}
"""), "unit.yaml", "unit")
    events = types.SimpleNamespace(letrade_balance=Hook())
    return types.SimpleNamespace(profile=profile, role=role, ledger=OrderLedger(), credentials=object(),
                                 environment=types.SimpleNamespace(events=events))


def test_a_worker_reports_each_orderid_and_slippage_once_and_the_master_accumulates_them():
    w = _ctx("worker")
    funds = RunFunds(w, ProcessState())
    w.ledger.sent("c1", "BTCUSDT", "BUY", "pipeline")
    w.ledger.accepted("c1", "FILLED", 11)
    w.ledger.sent("c2", "BTCUSDT", "SELL", "pipeline")          # no answer yet: no orderId, open
    funds.on_slippage(client_order_id="c1", bps=4.0)
    first = worker_report(w, funds)
    assert first == {"orders": [["BTCUSDT", 11, "pipeline", "c1"]], "slippage": [["c1", 4.0]], "open": 1}
    assert worker_report(w, funds)["orders"] == []             # nothing new
    w.ledger.accepted("c2", "FILLED", 12)
    second = worker_report(w, funds)
    assert second == {"orders": [["BTCUSDT", 12, "pipeline", "c2"]], "slippage": [], "open": 0}

    m = _ctx("master")
    master = RunFunds(m, ProcessState())
    for rep in (first, second):
        master.on_worker_report(client_id="w1", data={WIRE_KEY: rep})
    assert master.run_orders() == {("BTCUSDT", 11): "pipeline", ("BTCUSDT", 12): "pipeline"}
    assert master._slippage_by_order() == {("BTCUSDT", 11): 4.0}
    assert master.worker_funds["w1"]["open"] == 0


def test_the_positions_view_and_the_balance_events():
    ctx = _ctx("local")
    funds = RunFunds(ctx, ProcessState())
    funds.assets_of = {"BTCUSDT": ("BTC", "USDT")}
    ctx.ledger.sent("c1", "BTCUSDT", "BUY", "pipeline")
    ctx.ledger.accepted("c1", "FILLED", 5)
    ctx.ledger.sent("c2", "BTCUSDT", "SELL", "pipeline")        # still open
    start = BalanceSnapshot(1.0, {"BTC": D("1"), "USDT": D("1000"), "ETH": D("0")})
    funds.start = funds.last = start
    funds.fills[("BTCUSDT", 1)] = Fill("BTCUSDT", 1, 5, D("100"), D("0.1"), D("10"), D("0.01"), "USDT", 1, True)
    funds.fills[("BTCUSDT", 2)] = Fill("BTCUSDT", 2, 99, D("100"), D("0.2"), D("20"), D("0"), "USDT", 2, True)
    now = BalanceSnapshot(2.0, {"BTC": D("1.1"), "USDT": D("989.99") + D("5"), "ETH": D("0")},
                          {"BTCUSDT": D("100")})
    funds._fire_changes(start, now)
    funds.last = now
    calls = ctx.environment.events.letrade_balance.calls
    assert [(c["asset"], c["delta"]) for c in calls] == [("BTC", D("0.1")), ("USDT", D("-5.01"))]
    assert calls[0]["before"] == D("1") and calls[0]["after"] == D("1.1")
    view = funds.view()
    # order 99 is not the run's: its fill explains nothing; the 5 USDT are unexplained
    assert view["assets"]["BTC"] == {"start": "1", "now": "1.1", "delta": "0.1", "unexplained": "0",
                                     "open_orders": 1}
    assert view["assets"]["USDT"]["delta"] == "-10.01" and view["assets"]["USDT"]["unexplained"] == "5"
    assert "ETH" not in view["assets"]                               # never held, never moved
    assert view["pnl"]["by_strategy"]["pipeline"]["fees"] == "0.01" and view["final"] is False
    names = {(m, t.get("asset") or t.get("strategy")) for m, t, _f in funds.points()}
    assert {("balance", "BTC"), ("balance", "USDT"), ("pnl", "run"), ("pnl", "pipeline")} <= names
