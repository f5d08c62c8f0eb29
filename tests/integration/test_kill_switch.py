"""The kill switch against a real simulator: it cancels exactly the run's open orders, resolves
unknown ones, leaves other orders of the account alone, and waits out a short IP ban."""
from __future__ import annotations

import types

from letrade_perf.binance.endpoints import DEFAULT_RATE_LIMITS
from letrade_perf.clock import ClockSync
from letrade_perf.config.credentials import load_credentials
from letrade_perf.config.environments import environment
from letrade_perf.harness.exchange import ExchangeClient
from letrade_perf.harness.ledger import OrderLedger, cancel_open_orders
from letrade_perf.pacing import Pacer, budgets_from_rate_limits


def make_ctx(base_url: str):
    env = environment("sim", base_url)
    ctx = types.SimpleNamespace(env=env, environment=None, credentials=load_credentials(env, environ={}),
                                ledger=OrderLedger(1000))
    ctx.exchange = ExchangeClient(ctx, base_url, report=False)
    ctx.pacer = None
    ctx.clock = ClockSync(lambda: ctx.exchange.call("GET", "/api/v3/time", paced=False).data["serverTime"])
    ctx.clock.sync()
    ctx.pacer = Pacer(budgets_from_rate_limits(DEFAULT_RATE_LIMITS), clock=ctx.clock.server_now_ms)
    return ctx


def rest_limit_buy(sim, cid: str) -> dict:
    bid = float(sim.get("/api/v3/ticker/bookTicker", {"symbol": "BTCUSDT"}).json()["bidPrice"])
    r = sim.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                             "quantity": "0.0002", "price": f"{bid * 0.9:.2f}",
                                             "newClientOrderId": cid})
    assert r.status == 200, r.body
    return r.json()


def open_cids(sim) -> set[str]:
    return {o["clientOrderId"] for o in sim.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()}


def test_kill_switch_cancels_only_the_runs_open_orders(sim_factory):
    sim = sim_factory()
    ctx = make_ctx(sim.base_url)
    ledger = ctx.ledger
    # a resting order the run placed and knows about
    placed = rest_limit_buy(sim, "run-placed-1")
    ledger.sent("run-placed-1", "BTCUSDT", "BUY", "test")
    ledger.accepted("run-placed-1", placed["status"], placed["orderId"])
    # an order whose answer never arrived (its user was stopped mid-request) but which rests
    rest_limit_buy(sim, "run-pending-1")
    ledger.sent("run-pending-1", "BTCUSDT", "BUY", "test")
    # an order with unknown status that the exchange never executed
    ledger.sent("run-unknown-1", "BTCUSDT", "BUY", "test")
    ledger.unknown("run-unknown-1")
    # an order of the same account that the run did not place: must survive
    rest_limit_buy(sim, "someone-else-1")
    assert open_cids(sim) == {"run-placed-1", "run-pending-1", "someone-else-1"}

    # a short ban is in force: the kill switch waits it out instead of giving up
    ctx.pacer.ban_until(ctx.pacer.now_ms() + 500)
    report = cancel_open_orders(ctx)

    assert report.attempted == 3 and report.canceled == 2 and report.already_closed == 1, report
    assert report.failed == []
    assert open_cids(sim) == {"someone-else-1"}
    counts = ledger.counts()
    assert counts["canceled"] == 2 and counts["not_executed"] == 1 and counts["unknown_resolved"] == 1, counts
    assert counts["placed"] == 2 and ledger.open_orders() == []
    # idempotent: nothing left to do
    assert cancel_open_orders(ctx).attempted == 0


def test_kill_switch_gives_up_on_a_long_ban(sim_factory):
    sim = sim_factory()
    ctx = make_ctx(sim.base_url)
    placed = rest_limit_buy(sim, "run-placed-2")
    ctx.ledger.sent("run-placed-2", "BTCUSDT", "BUY", "test")
    ctx.ledger.accepted("run-placed-2", placed["status"], placed["orderId"])
    ctx.pacer.ban_until(ctx.pacer.now_ms() + 600_000)
    report = cancel_open_orders(ctx, max_ban_wait_s=1.0)
    assert report.canceled == 0 and len(report.failed) == 1 and "IpBanned" in report.failed[0]
    assert [r.client_order_id for r in ctx.ledger.open_orders()] == ["run-placed-2"]
    assert open_cids(sim) == {"run-placed-2"}


def test_an_order_whose_user_is_stopped_mid_request_still_leaves_and_is_booked(sim_factory):
    """Locust kills a stopping user's greenlet wherever it is. Killed right after its order was
    entered in the ledger — before the request was on the wire — the order must still leave and
    be booked (never ``sent`` in the ledger yet unseen by the exchange), and the kill switch waits
    for it before cancelling."""
    from decimal import Decimal

    import gevent

    from letrade_perf.calls.path import Order

    sim = sim_factory()
    ctx = make_ctx(sim.base_url)
    ctx.order_refusal = lambda symbol, notional: None
    ctx.abort = lambda reason: None
    bid = float(sim.get("/api/v3/ticker/bookTicker", {"symbol": "BTCUSDT"}).json()["bidPrice"])
    price = f"{bid * 0.9:.2f}"
    placed = []
    for i in range(3):
        params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.0002",
                  "price": price, "newClientOrderId": f"stopped-{i}"}
        intent = Order(f"stopped-{i}", "BTCUSDT", "BUY", Decimal("0.0002") * Decimal(price), "test")
        user = gevent.spawn(ctx.exchange.call, "POST", "/api/v3/order", params, order=intent)
        gevent.sleep(0)           # the user runs until its first wait (its request under way)
        user.kill()               # ... and is stopped there, as Locust stops users
        placed.append(f"stopped-{i}")
    report = cancel_open_orders(ctx)
    counts = ctx.ledger.counts()
    assert counts["sent"] == counts["placed"] == 3 and counts["not_executed"] == 0, counts
    assert report.canceled == 3 and not report.failed, report
    by_status = sim.stats()["orders"]["by_status"]
    assert sum(by_status.values()) == 3, by_status          # every order the ledger holds reached it
    assert open_cids(sim) == set() and ctx.ledger.open_orders() == []
