"""The call path's order step (pure: a real ledger, a stand-in context and pacer): the safety gate
before anything is sent, the ledger entry as the order leaves, the booking from the answer, and
the order statuses a query or cancel answer shows."""
from __future__ import annotations

from decimal import Decimal

import pytest

from letrade_perf.binance.endpoints import WS_API_METHODS, endpoint
from letrade_perf.binance.errors import IpBanned
from letrade_perf.calls.path import Order, SafetyRefusal, begin
from letrade_perf.harness.ledger import OrderLedger

ORDER = endpoint("POST", "/api/v3/order")
QUERY = endpoint("GET", "/api/v3/order")
CANCEL = endpoint("DELETE", "/api/v3/order")
DEPTH = endpoint("GET", "/api/v3/depth")


class _Ctx:
    """What the path reads of the run's context: no pacer (unpaced), a ledger, the safety check."""

    def __init__(self, max_run_notional=None, max_order=Decimal(20), pacer=None):
        self.pacer = pacer
        self.ledger = OrderLedger(max_run_notional)
        self.max_order = max_order
        self.aborted: list[str] = []

    def order_refusal(self, symbol, notional):
        if symbol != "BTCUSDT":
            return f"{symbol} not in safety.symbol_allowlist"
        return None if notional <= self.max_order else f"notional {notional} exceeds safety.max_order_notional"

    def abort(self, reason):
        self.aborted.append(reason)


def _order(cid="o1", notional="12", symbol="BTCUSDT"):
    return Order(cid, symbol, "BUY", Decimal(notional), "user")


def _counts(ctx, *keys):
    c = ctx.ledger.counts()
    return tuple(c[k] for k in keys)


def test_a_refused_order_is_counted_refused_and_never_reaches_the_transport():
    ctx = _Ctx()
    with pytest.raises(SafetyRefusal, match="exceeds safety.max_order_notional"):
        begin(ctx, ORDER, {}, order=_order(notional="21"))
    with pytest.raises(SafetyRefusal, match="not in safety.symbol_allowlist"):
        begin(ctx, ORDER, {}, order=_order(symbol="ETHUSDT"))
    assert _counts(ctx, "refused", "sent") == (2, 0)
    assert ctx.ledger.run_notional == 0


def test_the_run_notional_cap_refuses_the_order_that_would_cross_it_and_a_rejection_gives_it_back():
    ctx = _Ctx(max_run_notional=20)
    first = begin(ctx, ORDER, {}, order=_order("a"))
    first.leave()
    with pytest.raises(SafetyRefusal, match="max_run_notional reached"):
        begin(ctx, ORDER, {}, order=_order("b"))
    first.answer(400, {}, b'{"code":-2010,"msg":"Account has insufficient balance"}')
    assert _counts(ctx, "sent", "rejected", "refused") == (1, 1, 1)
    assert ctx.ledger.run_notional == 0                 # the rejected order's notional is back
    begin(ctx, ORDER, {}, order=_order("c")).leave()    # so the next one passes
    assert ctx.ledger.counts()["sent"] == 2


def test_an_order_is_sent_only_as_it_leaves_and_booked_from_the_answer():
    ctx = _Ctx()
    call = begin(ctx, ORDER, {}, order=_order("a"))
    assert ctx.ledger.get("a") is None                  # gated and paced, not yet sent
    call.leave()
    assert ctx.ledger.get("a").state == "pending"
    res = call.answer(200, {}, b'{"orderId":7,"clientOrderId":"a","status":"FILLED"}')
    assert res.ok
    rec = ctx.ledger.get("a")
    assert (rec.order_id, rec.outcome) == (7, "filled")
    assert _counts(ctx, "sent", "placed", "filled") == (1, 1, 1)


def test_an_unknown_status_is_resolved_by_a_later_query_answer():
    ctx = _Ctx()
    call = begin(ctx, ORDER, {}, order=_order("a"))
    call.leave()
    res = call.answer(503, {}, b'{"code":-1007,"msg":"Timeout waiting for response from backend server."}')
    assert res.unknown and ctx.ledger.get("a").state == "unknown"
    q = begin(ctx, QUERY, {"origClientOrderId": "a"})
    q.leave()
    q.answer(200, {}, b'{"orderId":9,"clientOrderId":"a","status":"NEW"}')
    assert _counts(ctx, "unknown", "unknown_resolved", "placed") == (1, 1, 1)
    c = begin(ctx, CANCEL, {"origClientOrderId": "a"})
    c.leave()
    c.answer(200, {}, b'{"orderId":9,"origClientOrderId":"a","clientOrderId":"cx","status":"CANCELED"}')
    assert ctx.ledger.get("a").outcome == "canceled" and ctx.ledger.open_orders() == []


def test_answers_about_orders_the_run_does_not_know_change_nothing():
    ctx = _Ctx()
    q = begin(ctx, QUERY, {})
    q.leave()
    q.answer(200, {}, b'{"orderId":1,"clientOrderId":"someone-else","status":"FILLED"}')
    d = begin(ctx, DEPTH, {})
    d.leave()
    d.answer(200, {}, b'{"lastUpdateId":1,"bids":[],"asks":[]}')
    assert not any(ctx.ledger.counts().values())


def test_an_order_whose_transport_failed_before_leaving_is_not_booked_and_frees_its_notional():
    ctx = _Ctx(max_run_notional=100)
    call = begin(ctx, ORDER, {}, order=_order("a"))
    assert ctx.ledger.run_notional == 12
    call.answer(0, {}, None, "no response: signing failed")
    assert ctx.ledger.get("a") is None and ctx.ledger.run_notional == 0
    assert not any(ctx.ledger.counts().values())


def test_a_reused_client_order_id_is_not_sent_twice():
    ctx = _Ctx(max_run_notional=100)
    begin(ctx, ORDER, {}, order=_order("a")).leave()
    again = begin(ctx, ORDER, {}, order=_order("a"))
    with pytest.raises(ValueError, match="reused"):
        again.leave()
    assert ctx.ledger.counts()["sent"] == 1 and ctx.ledger.run_notional == 12


def test_a_banned_ip_refuses_the_order_aborts_the_run_and_frees_its_notional():
    class Banned:
        def acquire_for(self, ep, params):
            raise IpBanned(1e12)

        def now_ms(self):
            return 0.0

    ctx = _Ctx(max_run_notional=100, pacer=Banned())
    with pytest.raises(IpBanned):
        begin(ctx, ORDER, {}, order=_order("a"))
    assert ctx.aborted and _counts(ctx, "refused", "sent") == (1, 0)
    assert ctx.ledger.run_notional == 0


def test_the_websocket_api_books_through_the_same_step():
    ctx = _Ctx()
    call = begin(ctx, WS_API_METHODS["order.place"], {}, order=_order("w"))
    call.leave()
    call.book(True, False, {"orderId": 3, "clientOrderId": "w", "status": "NEW"})
    status = begin(ctx, WS_API_METHODS["order.status"], {})
    status.book(True, False, {"orderId": 3, "clientOrderId": "w", "status": "FILLED"})
    assert ctx.ledger.get("w").outcome == "filled"
    assert _counts(ctx, "sent", "placed", "filled") == (1, 1, 1)
