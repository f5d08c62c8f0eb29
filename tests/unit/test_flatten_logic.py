"""The run's net position in the ledger and the flatten step's trade-back sizing (pure logic)."""
from __future__ import annotations

from decimal import Decimal as D

from letrade_perf.harness.flatten import SETTLED, plan_trade_back, residual_state
from letrade_perf.harness.ledger import OrderLedger
from letrade_perf.users.symbols import SymbolRules

RULES = SymbolRules.from_exchange_info({
    "symbol": "BTCUSDT", "baseAsset": "BTC", "quoteAsset": "USDT", "status": "TRADING",
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.0001", "maxQty": "100", "stepSize": "0.0001"},
        {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True, "maxNotional": "9000000"},
    ]})


# -- the ledger's net position -------------------------------------------------------------------
def test_net_position_from_answers_queries_cancels_and_fills():
    led = OrderLedger()
    led.sent("b1", "BTCUSDT", "BUY", "pipeline", notional=12)
    led.accepted("b1", "FILLED", 1, "0.00020000", "12.00")            # a FULL answer
    led.sent("s1", "BTCUSDT", "SELL", "ccxt", notional=6)
    led.accepted("s1", "NEW", 2, "0", "0")                             # rests
    led.seen("s1", "PARTIALLY_FILLED", 2, "0.00005", "3.0")           # a query shows a partial fill
    led.seen("s1", "PARTIALLY_FILLED", 2, "0.00003", "1.8")           # an older answer: ignored
    led.seen("s1", "CANCELED", 2, "0.00007", "4.2")                   # the cancel shows the rest
    assert led.net_positions() == {"BTCUSDT": D("0.00013")}
    led.sent("e1", "ETHUSDT", "SELL", "pipeline", notional=10)
    led.accepted("e1", "NEW", 3)                                       # an ACK: no quantity
    led.status("e1", "FILLED")                                         # the stream: filled, but how much?
    assert [r.client_order_id for r in led.unknown_executions()] == ["e1"]
    assert "ETHUSDT" not in led.net_positions()
    led.executed("e1", D("10"), D("0.004"))                            # the fills' sums
    assert led.net_positions()["ETHUSDT"] == D("-0.004") and led.unknown_executions() == []
    rec = led.get("e1")
    assert rec is not None and rec.executed_qty == D("0.004") and rec.executed_quote == D("10")
    assert led.snapshot()["net_positions"] == {"BTCUSDT": "0.00013", "ETHUSDT": "-0.004"}


def test_unknown_orders_rejections_and_garbage_leave_the_position_exact():
    led = OrderLedger()
    led.sent("r", "BTCUSDT", "BUY", "pipeline", notional=12)
    led.rejected("r")                                                  # never placed: executed nothing
    led.sent("u", "BTCUSDT", "BUY", "pipeline", notional=12)
    led.unknown("u")
    assert [r.client_order_id for r in led.unknown_executions()] == ["u"]
    led.seen("u", "FILLED", 9, "0.0002", "12")                        # the query resolves it
    led.sent("n", "BTCUSDT", "SELL", "pipeline", notional=12)
    led.unknown("n")
    led.resolved("n", None)                                            # the exchange never had it
    led.sent("g", "BTCUSDT", "SELL", "pipeline", notional=12)
    led.accepted("g", "FILLED", 10, "not a number")                   # undecodable: stays unknown
    assert led.net_positions() == {"BTCUSDT": D("0.0002")}
    assert [r.client_order_id for r in led.unknown_executions()] == ["g"]
    assert led.counts()["filled"] == 2 and led.counts()["not_executed"] == 1


def test_exposure_accounting_is_unchanged_by_quantities():
    led = OrderLedger(max_run_notional=25)
    assert led.reserve_notional(D(12), "BTCUSDT", "BUY")
    led.sent("a", "BTCUSDT", "BUY", "pipeline", notional=12)
    led.accepted("a", "FILLED", 1, "0.0002", "12")
    assert led.exposure() == D(12)
    assert led.reserve_notional(D(12), "BTCUSDT", "SELL")
    led.sent("b", "BTCUSDT", "SELL", "pipeline", notional=12)
    led.accepted("b", "FILLED", 2, "0.0002", "12")
    assert led.exposure() == 0 and led.net_positions() == {"BTCUSDT": D(0)}


# -- trade-back sizing ------------------------------------------------------------------------------
def test_a_long_is_sold_rounded_down_to_the_market_step_never_more():
    plan = plan_trade_back(D("0.00037"), RULES, D("50000"), D("20"))
    assert plan.side == "SELL" and plan.quantities == [D("0.0003")]   # 15 USDT, step 0.0001
    assert plan.residual == D("0.00007") and "within the lot size" in plan.notes[0]
    short = plan_trade_back(D("-0.0002"), RULES, D("50000"), D("20"))
    assert short.side == "BUY" and short.quantities == [D("0.0002")] and short.residual == 0 and not short.notes


def test_a_large_position_is_split_into_equal_orders_within_max_order_notional():
    plan = plan_trade_back(D("0.0011"), RULES, D("50000"), D("20"))   # 55 USDT, ≤ 20 each
    assert len(plan.quantities) == 3 and sum(plan.quantities) == D("0.0011")
    assert all(q * 50000 <= 20 for q in plan.quantities)
    assert max(plan.quantities) - min(plan.quantities) <= D("0.0001")  # equal parts: no tiny last one
    capped = plan_trade_back(D("0.0011"), RULES, D("50000"), D("20"), max_orders=2)
    assert capped.quantities == [D("0.0004"), D("0.0004")] and capped.residual == D("0.0003")
    assert "at most 2" in capped.notes[0]


def test_below_the_minimum_notional_or_the_lot_nothing_is_sent():
    small = plan_trade_back(D("0.00005"), RULES, D("50000"), D("20"))
    assert small.quantities == [] and small.residual == D("0.00005") and "within the lot size" in small.notes[0]
    dust = plan_trade_back(D("0.0001"), RULES, D("40000"), D("20"))   # 4 USDT < minNotional 5
    assert dust.quantities == [] and dust.residual == D("0.0001") and "minimum" in dust.notes[0]
    tiny_cap = plan_trade_back(D("0.01"), RULES, D("50000"), D("4"))  # one order may carry < min qty
    assert tiny_cap.quantities == [] and tiny_cap.residual == D("0.01")
    assert plan_trade_back(D(0), RULES, D("50000"), D("20")).quantities == []


def test_residual_states():
    assert residual_state(D(0), RULES, None) == "flat"
    assert residual_state(D("0.00009"), RULES, D("50000")) == "within the lot size"
    assert residual_state(D("-0.0001"), RULES, D("40000")) == "below the minimum notional"
    assert residual_state(D("0.001"), RULES, D("50000")) == "open"
    assert residual_state(D("0.001"), None, None) == "open"
    assert "open" not in SETTLED


# -- the context's flatten: one at a time; its orders pass an aborted run's refusal ---------------
def _context():
    import types

    from letrade_perf.config.environments import environment
    from letrade_perf.config.profile import load_profile
    from letrade_perf.harness.plugin import HarnessContext

    events = types.SimpleNamespace(letrade_flatten=None)
    return HarnessContext(environment=types.SimpleNamespace(events=events, runner=None),
                          profile=load_profile("smoke"), env=environment("sim", "http://127.0.0.1:9"), role="local",
                          run_id="r", ledger=OrderLedger())


def test_one_flatten_at_a_time_and_only_its_orders_pass_an_abort():
    import gevent

    ctx = _context()
    ctx._process.flatten_running = True
    busy = ctx.flatten("operator request", "web")
    assert busy["already_running"] and not busy["ok"] and "already running" in busy["human"]
    ctx._process.flatten_running = False
    ctx.aborted = "IP banned"
    assert ctx.order_refusal("BTCUSDT", D(10)) == "run aborted: IP banned"
    ctx._process.flatten_greenlet = gevent.getcurrent()
    assert ctx.order_refusal("BTCUSDT", D(10)) is None                 # the flatten's own trade-back
    assert "max_order_notional" in ctx.order_refusal("BTCUSDT", D(10**6))   # the caps still hold
    assert gevent.spawn(ctx.order_refusal, "BTCUSDT", D(10)).get() == "run aborted: IP banned"
    ctx._process.flatten_greenlet = None
    # without an exchange client (nothing to flatten here) it reports and keeps nothing
    report = ctx.flatten("end of the run", "at_end", block=False)
    assert report["by"] == "at_end" and ctx._process.flatten_reports == [] and not ctx._process.flatten_running


# -- the canary's round trip ------------------------------------------------------------------------
def test_the_canary_is_a_round_trip_that_flattens_at_the_end():
    from letrade_perf.config.profile import load_profile

    canary = load_profile("production-canary")
    assert canary.users.pipeline.strategy.mode == "round_trip" and canary.users.pipeline.max_orders == 2
    assert canary.flatten.at_end and canary.flatten.trade_back and canary.flatten.on_abort
    smoke = load_profile("smoke")
    assert smoke.users.pipeline.strategy.mode == "signal"
    assert (smoke.flatten.on_abort, smoke.flatten.at_end, smoke.flatten.trade_back) == (True, False, False)


def test_round_trip_sells_what_the_buy_executed_then_is_done():
    import types

    from letrade_perf.users.pipeline import TradingPipelineUser

    step = TradingPipelineUser._round_trip_step
    user = types.SimpleNamespace(_rt_sell_qty=None, _rt_done=False, symbol="BTCUSDT")
    step(user, "BUY", D("0.0003"), D("0.00025"))          # a partly filled buy: sell what it executed
    assert user._rt_sell_qty == D("0.00025") and not user._rt_done
    step(user, "SELL", D("0.00025"), D("0.0001"))         # a partly executed sell: the rest still to sell
    assert user._rt_sell_qty == D("0.00015") and not user._rt_done
    step(user, "SELL", D("0.00015"), D("0.00015"))
    assert user._rt_done


def test_a_master_asks_every_worker_to_flatten_and_a_worker_flattens_its_own_without_a_second_block():
    from types import SimpleNamespace

    import gevent

    from letrade_perf.harness import controls

    sent: list[tuple] = []
    runner = SimpleNamespace(clients={"w1": 1, "w2": 2},
                             send_message=lambda t, d, client_id=None: sent.append((t, d, client_id)))
    master = SimpleNamespace(environment=SimpleNamespace(runner=runner))
    assert controls.request_flatten(master, "risk off", "web UI") == 2
    assert sent == [(controls.MSG_FLATTEN, {"reason": "risk off", "by": "web UI"}, "w1"),
                    (controls.MSG_FLATTEN, {"reason": "risk off", "by": "web UI"}, "w2")]
    calls: list[tuple] = []
    worker = SimpleNamespace(flatten=lambda reason, by, block=True: calls.append((reason, by, block)))
    controls.on_flatten_message(worker)(msg=SimpleNamespace(data=sent[0][1]))
    gevent.sleep(0)                      # the handler flattens in a greenlet of its own
    assert calls == [("risk off", "master (web UI)", False)]
