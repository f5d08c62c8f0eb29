"""The money arithmetic of fund safety and PnL (letrade_perf.metrics.money): explained deltas,
fund safety with an unexplained delta, average-cost PnL with fees in base, quote and a third
asset, short positions, slippage cost, return and portfolio weights — all exact Decimals."""
from __future__ import annotations

from decimal import Decimal as D

import pytest
import yaml

from letrade_perf.config.profile import FundsSettings, profile_from_mapping
from letrade_perf.criteria.evaluate import default_criteria, judge
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.metrics import money
from letrade_perf.metrics.recorder import MetricsStore, Series, Snapshot

ASSETS = {"BTCUSDT": ("BTC", "USDT"), "ETHBTC": ("ETH", "BTC")}


def fill(tid, oid, buy, qty, price, fee="0", fee_asset="USDT", symbol="BTCUSDT", t=None):
    qty, price = D(qty), D(price)
    return money.Fill(symbol, tid, oid, price, qty, qty * price, D(fee), fee_asset, t if t is not None else tid, buy)


def test_a_myTrades_row_and_an_account_answer_read_as_exact_decimals():
    row = {"symbol": "BTCUSDT", "id": 7, "orderId": 3, "price": "50000.10", "qty": "0.00020000",
           "quoteQty": "10.00002000", "commission": "0.00000020", "commissionAsset": "BTC", "time": 1,
           "isBuyer": True, "isMaker": False}
    f = money.Fill.from_api(row)
    assert (f.price, f.qty, f.quote_qty, f.commission, f.is_buyer) == (D("50000.10"), D("0.0002"), D("10.00002"),
                                                                        D("0.0000002"), True)
    acct = {"balances": [{"asset": "BTC", "free": "1.5", "locked": "0.25"}, {"asset": "USDT", "free": "0.1",
                                                                              "locked": "0.2"}]}
    assert money.balances_from_account(acct) == {"BTC": D("1.75"), "USDT": D("0.3")}


def test_explained_deltas_sum_quantities_quote_and_commissions_per_asset():
    fills = [fill(1, 1, True, "0.5", "100", fee="0.0005", fee_asset="BTC"),       # +0.5 BTC −50 USDT −0.0005 BTC
             fill(2, 2, False, "0.2", "110", fee="0.022", fee_asset="USDT"),      # −0.2 BTC +22 USDT −0.022 USDT
             fill(3, 3, True, "0.1", "120", fee="0.01", fee_asset="BNB")]         # +0.1 BTC −12 USDT −0.01 BNB
    got = money.explained_deltas(fills, ASSETS)
    assert got == {"BTC": D("0.3995"), "USDT": D("-40.022"), "BNB": D("-0.01")}


def test_fund_safety_lists_exactly_the_unexplained_delta():
    start = {"BTC": D("1"), "USDT": D("1000"), "ETH": D("5")}
    explained = {"BTC": D("0.5"), "USDT": D("-50.05")}
    end = {"BTC": D("1.5"), "USDT": D("949.95") + D("1.23456789"), "ETH": D("5")}   # a deposit behind the run's back
    checks = {c.asset: c for c in money.fund_safety(start, end, explained)}
    assert [a for a, c in checks.items() if not c.safe] == ["USDT"]
    assert checks["USDT"].unexplained == D("1.23456789")
    assert checks["BTC"].safe and checks["ETH"].safe and checks["ETH"].explained == 0
    # an asset only in the end snapshot (a new asset appeared) is unexplained too
    (c,) = [c for c in money.fund_safety({}, {"XRP": D("3")}, {}) if c.asset == "XRP"]
    assert not c.safe and c.unexplained == D("3") and c.to_dict()["unexplained"] == "3"


def test_average_cost_pnl_with_fees_in_base_quote_and_a_third_asset():
    fills = [fill(1, 1, True, "1", "100", fee="0.001", fee_asset="BTC"),    # fee 0.001 BTC × 100 = 0.1 USDT
             fill(2, 2, True, "1", "200", fee="0.2", fee_asset="USDT"),
             fill(3, 3, False, "1", "180", fee="0.18", fee_asset="USDT"),   # closes 1 at avg 150: +30
             fill(4, 4, False, "0.5", "160", fee="0.05", fee_asset="BNB")]  # closes 0.5: +5; BNB fee apart
    (p,) = money.pnl_of(fills, ASSETS).values()
    assert p.fees == D("0.48")                       # 0.1 + 0.2 + 0.18
    assert p.realised == D("35") - D("0.48")
    assert p.fees_other == {"BNB": D("0.05")}
    assert (p.bought, p.sold, p.fills) == (D("300"), D("260"), 4)
    assert p.return_ == (D("35") - D("0.48")) / D("300")


def test_a_short_position_and_a_reversal_realise_the_right_amounts():
    pos = money.Position()
    assert pos.fill(False, D("1"), D("100")) == 0           # opens a short at 100
    assert pos.fill(True, D("2"), D("90")) == D("10")       # closes the short (+10), opens 1 long at 90
    assert (pos.qty, pos.avg) == (D("1"), D("90"))
    assert pos.fill(False, D("1"), D("95")) == D("5")
    assert (pos.qty, pos.avg) == (0, 0)


def test_slippage_cost_is_bps_times_the_orders_executed_quote_value():
    fills = [fill(1, 10, True, "0.1", "100"), fill(2, 10, True, "0.1", "102"), fill(3, 11, False, "0.1", "101")]
    costs = money.slippage_costs({("BTCUSDT", 10): 5.0, ("BTCUSDT", 99): 3.0}, fills)   # 99: no fill, no cost
    assert costs == {("BTCUSDT", 10): D("0.0101")}        # 5 bps × 20.2
    (p,) = money.pnl_of(fills, ASSETS, costs).values()
    assert p.slippage_cost == D("0.0101")


def test_portfolio_weights_value_every_asset_at_the_last_price():
    balances = {"BTC": D("1"), "USDT": D("50000"), "ETH": D("10"), "SOL": D("7")}
    prices = {"BTCUSDT": D("50000"), "ETHBTC": D("0.05")}
    # ETH has no direct pair with USDT: unvalued; BTC via BTCUSDT
    weights, values, unvalued = money.portfolio_weights(balances, {"BTC", "USDT", "ETH"}, "USDT", prices, ASSETS)
    assert weights == {"BTC": 0.5, "USDT": 0.5} and unvalued == ["ETH"] and values["BTC"] == D("50000")
    # valued in BTC, ETH is priced through ETHBTC and USDT through the inverse of BTCUSDT
    weights, _v, unvalued = money.portfolio_weights(balances, {"BTC", "USDT", "ETH"}, "BTC", prices, ASSETS)
    assert unvalued == [] and weights["ETH"] == pytest.approx(0.5 / 2.5)
    assert money.portfolio_weights({}, {"BTC"}, "USDT", prices, ASSETS)[0] == {}


def test_the_money_report_has_pnl_per_strategy_and_for_the_run_and_lists_the_unexplained():
    fills = [fill(1, 1, True, "1", "100", fee="0.1"), fill(2, 2, False, "1", "110", fee="0.11"),
             fill(3, 3, True, "1", "105", fee="0.105")]
    sources = {("BTCUSDT", 1): "pipeline", ("BTCUSDT", 2): "pipeline", ("BTCUSDT", 3): "ccxt"}
    start = {"BTC": D("0"), "USDT": D("1000")}
    end = {"BTC": D("1"), "USDT": D("1000") - D("95.315") + D("2")}         # 2 USDT from somewhere else
    rep = money.money_report(start=start, end=end, fills=fills, sources=sources, assets_of=ASSETS,
                             slippage_bps={("BTCUSDT", 1): 10}, valuation="USDT",
                             prices={"BTCUSDT": D("100")}, portfolio={"BTC", "USDT"})
    fs = rep["fund_safety"]
    assert (fs["assets"], fs["safe"], fs["rate"]) == (2, 1, 0.5)
    assert [(u["asset"], u["unexplained"]) for u in fs["unexplained"]] == [("USDT", "2")]
    run, by = rep["pnl"]["run"], rep["pnl"]["by_strategy"]
    assert set(by) == {"pipeline", "ccxt"}
    assert by["pipeline"]["realised_pnl"] == "9.79" and by["ccxt"]["realised_pnl"] == "-0.105"
    assert run["realised_pnl"] == "9.685" and run["fees"] == "0.315" and run["slippage_cost"] == "0.1"
    assert run["return"] == pytest.approx(9.685 / 205)
    assert rep["weights"]["BTC"] == pytest.approx(100 / (100 + 906.685))
    assert rep["balances"]["USDT"] == {"start": "1000", "end": "906.685"}


def _orders_profile(extra: dict | None = None):
    data = yaml.safe_load("""
description: unit
env: sim
symbols: [BTCUSDT]
stages: [{duration: 10s, users: 1, spawn_rate: 1}]
users:
  pipeline: {fixed_count: 1, notional: 12}
""")
    data.update(extra or {})
    return profile_from_mapping(data, "unit.yaml", "unit")


def test_fund_safety_is_a_default_criterion_of_runs_that_place_orders():
    assert "fund_safety rate==100%" in {c.label for c in default_criteria(_orders_profile())}
    off = _orders_profile({"funds": {"enabled": False}})
    assert "fund_safety rate==100%" not in {c.label for c in default_criteria(off)}
    md = profile_from_mapping(yaml.safe_load("""
description: unit
symbols: [BTCUSDT]
stages: [{duration: 10s, users: 1, spawn_rate: 1}]
users: {rest_market: {weight: 1}}
"""), "unit.yaml", "unit")
    assert not {c.metric for c in default_criteria(md)} & {"fund_safety", "portfolio_weight"}
    with pytest.raises(Exception, match="snapshot_every_s"):
        FundsSettings(snapshot_every_s=1.0)


def test_fund_safety_and_portfolio_weight_are_judged_from_their_series():
    snap = Snapshot(1.0, 2.0)
    for asset, status in (("BTC", "ok"), ("USDT", "fail"), ("ETH", "ok"), ("BNB", "ok")):
        snap.series.setdefault(("fund_safety", (("asset", asset), ("status", status))), Series()).hist.record(1.0)
    for w in (0.2, 0.55, 0.4):
        snap.series.setdefault(("portfolio_weight", (("asset", "BTC"),)), Series()).hist.record(w)
    store = MetricsStore()
    store.merge(snap)
    (fs,) = parse_criteria({"fund_safety": ["rate==100%"]}, "t.yaml")
    r = judge(fs, store, 10)
    assert (r.verdict, r.value, r.samples) == ("fail", 0.75, 4)
    (usdt,) = parse_criteria({'fund_safety{asset="BTC"}': ["rate==100%"]}, "t.yaml")
    assert judge(usdt, store, 10).verdict == "pass"
    (w,) = parse_criteria({'portfolio_weight{asset="BTC"}': ["max<0.5"]}, "t.yaml")
    r = judge(w, store, 10)
    assert r.verdict == "fail" and r.value == 0.55
