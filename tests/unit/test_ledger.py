"""Order ledger accounting, symbol rules and the MA signal (pure logic, no processes)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from letrade_perf.harness.ledger import OrderLedger, merge_counts
from letrade_perf.users.orders import client_order_id, ma_signal
from letrade_perf.users.symbols import SymbolRules


def test_each_order_counted_once_whatever_arrives_twice():
    seen = []
    led = OrderLedger(on_outcome=lambda rec, outcome: seen.append((rec.client_order_id, outcome)))
    led.sent("a", "BTCUSDT", "BUY", "pipeline")
    led.accepted("a", "FILLED", 1)
    led.accepted("a", "FILLED", 1)          # the same answer twice (REST and a retry)
    led.status("a", "FILLED")               # and from the user-data stream
    led.sent("b", "BTCUSDT", "SELL", "pipeline")
    led.unknown("b")
    led.unknown("b")
    led.resolved("b", "FILLED", 2)
    led.resolved("b", "FILLED", 2)
    led.sent("c", "BTCUSDT", "BUY", "ccxt")
    led.unknown("c")
    led.resolved("c", None)                 # never executed
    led.sent("d", "BTCUSDT", "BUY", "ccxt")
    led.rejected("d")
    led.rejected("d")
    c = led.counts()
    assert c["sent"] == 4 and c["placed"] == 2 and c["filled"] == 2
    assert c["unknown"] == 2 and c["unknown_resolved"] == 2 and c["not_executed"] == 1 and c["rejected"] == 1
    assert led.open_orders() == []
    assert seen.count(("a", "filled")) == 1 and seen.count(("b", "unknown_resolved")) == 1
    by_source = led.counts_by_source()
    assert by_source["pipeline"]["filled"] == 2 and by_source["ccxt"]["rejected"] == 1
    with pytest.raises(ValueError):
        led.sent("a", "BTCUSDT", "BUY", "pipeline")


def test_open_orders_and_run_notional_cap():
    led = OrderLedger(max_run_notional=25)
    assert led.reserve_notional(Decimal(12)) and led.reserve_notional(Decimal(12))
    assert not led.reserve_notional(Decimal(2))          # 26 > 25: refused, nothing taken
    led.release_notional(Decimal(12))
    assert led.reserve_notional(Decimal(2))
    led.sent("x", "ETHUSDT", "BUY", "ccxt")
    led.accepted("x", "NEW", 5)
    led.sent("y", "ETHUSDT", "BUY", "ccxt")
    assert {r.client_order_id for r in led.open_orders()} == {"x", "y"}
    led.status("x", "CANCELED")
    assert led.open_order_ids() == ["y"]
    assert merge_counts([led.snapshot(), led.snapshot()])["sent"] == 4



def _order(led, cid, side, notional, symbol="BTCUSDT", status="FILLED"):
    """One order through the ledger as the call path takes it: gate, entry, answer."""
    if not led.reserve_notional(Decimal(notional), symbol, side):
        return False
    led.sent(cid, symbol, side, "pipeline", notional=Decimal(notional))
    led.accepted(cid, status, 1)
    return True


def test_the_run_cap_is_on_net_exposure_a_round_tripping_strategy_is_never_stopped():
    led = OrderLedger(max_run_notional=30)
    for i in range(100):                                  # 2400 USDT of turnover, never more than 12 open
        assert _order(led, f"b{i}", "BUY", 12) and _order(led, f"s{i}", "SELL", 12)
    assert led.exposure() == 0 and led.run_notional == 2400
    assert led.snapshot()["run_exposure"] == "0"


def test_the_run_cap_stops_a_runaway_buyer_and_still_lets_it_close():
    led = OrderLedger(max_run_notional=30)
    assert _order(led, "b1", "BUY", 12) and _order(led, "b2", "BUY", 12)
    assert not _order(led, "b3", "BUY", 12)               # 36 > 30: refused, nothing reserved
    assert led.exposure() == 24
    assert _order(led, "s1", "SELL", 12) and led.exposure() == 12     # closing always passes
    assert not _order(led, "x1", "SELL", 45)              # a seller is a runaway too: short 33 > 30


def test_closing_orders_count_only_once_their_execution_is_known():
    led = OrderLedger(max_run_notional=30)
    assert _order(led, "b1", "BUY", 24)
    assert led.reserve_notional(Decimal(12), "BTCUSDT", "SELL")       # reserved, not yet executed:
    assert led.exposure() == 24                                       # the long stays counted
    led.sent("s1", "BTCUSDT", "SELL", "pipeline", notional=Decimal(12))
    led.accepted("s1", "EXPIRED", 2)                      # an IOC that ended with an unknown fill
    assert led.exposure() == 24 and not led.reserve_notional(Decimal(12), "BTCUSDT", "BUY")
    led.executed("s1", Decimal("11.5"))                   # the fills' value, from the user-data stream
    assert led.exposure() == Decimal("12.5")
    led.executed("b1", Decimal("23.9"))                   # the exact value replaces the estimate
    assert led.exposure() == Decimal("12.4")


def test_orders_never_executed_give_their_exposure_back():
    led = OrderLedger(max_run_notional=30)
    assert led.reserve_notional(Decimal(20), "BTCUSDT", "BUY")
    led.release_notional(Decimal(20), "BTCUSDT", "BUY")   # never left
    assert led.exposure() == 0 and led.run_notional == 0
    assert _order(led, "r1", "BUY", 20, status="NEW")     # a resting order, cancelled unfilled
    led.status("r1", "CANCELED")
    assert led.exposure() == 20                           # executed amount unknown: still counted
    led.release_notional(Decimal(20), client_order_id="r1")
    assert led.exposure() == 0 and led.run_notional == 0
    assert led.reserve_notional(Decimal(20), "BTCUSDT", "BUY")
    led.sent("r2", "BTCUSDT", "BUY", "pipeline", notional=Decimal(20))
    led.rejected("r2")
    assert led.exposure() == 0


def test_exposure_is_per_symbol_a_buy_of_one_does_not_offset_a_sell_of_another():
    led = OrderLedger(max_run_notional=30)
    assert _order(led, "b1", "BUY", 12, "BTCUSDT") and _order(led, "s1", "SELL", 12, "ETHUSDT")
    assert led.exposure() == 24
    assert not _order(led, "b2", "BUY", 12, "BNBUSDT")


def test_the_cap_share_of_a_distributed_worker_scales_the_exposure_cap():
    led = OrderLedger(max_run_notional=30, cap_share=lambda: 0.5)
    assert _order(led, "b1", "BUY", 12)
    assert not _order(led, "b2", "BUY", 12)               # 24 > 15
    assert _order(led, "s1", "SELL", 12) and _order(led, "b3", "BUY", 12)

RULES = SymbolRules.from_exchange_info({
    "symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT", "status": "TRADING",
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00001", "maxQty": "100", "stepSize": "0.00001"},
        {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True, "maxNotional": "9000000"},
    ]})


def test_symbol_rules_size_orders_the_exchange_accepts():
    qty = RULES.qty_for_notional(Decimal(12), Decimal("65000.00"))
    assert qty == Decimal("0.00018") and RULES.check(qty, Decimal("65000")) is None
    assert "below the minimum" in RULES.check(RULES.qty_for_notional(Decimal(4), Decimal(65000)), Decimal(65000))
    assert "not on step" in RULES.check(Decimal("0.000185"), Decimal(65000))
    assert RULES.limit_price(Decimal("65000.003"), "BUY", Decimal(50)) == Decimal("65325.01")
    assert RULES.limit_price(Decimal("65000.003"), "SELL", Decimal(50)) == Decimal("64675.00")


def test_ma_signal_and_client_order_ids():
    up = [Decimal(i) for i in range(30)]
    assert ma_signal(up, 5, 20) == 1 and ma_signal(list(reversed(up)), 5, 20) == -1
    assert ma_signal([Decimal(1)] * 30, 5, 20) == 0 and ma_signal(up[:10], 5, 20) == 0
    cid = client_order_id("lp", "20260101T000000Z-smoke", 12, 345, 123456)
    assert len(cid) <= 36 and cid.replace("-", "").isalnum()
    assert cid != client_order_id("lp", "20260101T000000Z-other", 12, 345, 123456)
