"""Operator controls, pure parts: the block gate on the call path (a real ledger, a stand-in
context), the block history and its distributed state message, ``on_fail`` in the criteria
grammar, the time with orders blocked in planned-vs-achieved (an injected clock), and the
Operations tab's rows."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from letrade_perf.binance.endpoints import endpoint
from letrade_perf.calls.path import Order, OrdersBlocked, SafetyRefusal, begin
from letrade_perf.config.profile import profile_from_mapping
from letrade_perf.core import endings
from letrade_perf.core.errors import ConfigError
from letrade_perf.criteria.achieved import Achieved, untolerated
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.harness import controls
from letrade_perf.harness.controls import BlockHistory, state_message
from letrade_perf.harness.ledger import OrderLedger
from letrade_perf.harness.webui_ops import orders_state, position_rows, request_reason, state_row, tab_rows

ORDER = endpoint("POST", "/api/v3/order")


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class _Events:
    def __init__(self):
        self.fired: list[dict] = []
        self.letrade_orders_blocked = SimpleNamespace(fire=lambda **kw: self.fired.append(kw))


class _Ctx:
    """What the call path and :func:`controls.apply` read of the run's context."""

    def __init__(self, role: str = "local", clock: Clock | None = None):
        self.pacer = None
        self.ledger = OrderLedger(None)
        self.orders_blocked: str | None = None
        self.order_blocks = BlockHistory(clock or Clock())
        self.role = role
        self.events = _Events()
        self.sent: list[tuple] = []
        self.environment = SimpleNamespace(events=self.events, runner=SimpleNamespace(
            clients={"w1": 1, "w2": 2}, send_message=lambda t, d, client_id=None: self.sent.append((t, d, client_id))))

    def order_refusal(self, symbol, notional):
        return None

    def block_orders(self, reason, by):
        return controls.apply(self, True, reason, by)

    def resume_orders(self, by):
        return controls.apply(self, False, None, by)


def _order(cid: str = "o1", source: str = "pipeline") -> Order:
    return Order(cid, "BTCUSDT", "BUY", Decimal("12"), source)


def test_a_block_holds_back_every_new_order_but_flatten_s_counted_blocked_not_refused_and_resume_lifts_it():
    ctx = _Ctx()
    assert ctx.block_orders("maintenance", "web UI") is True
    assert ctx.block_orders("again", "signal") is False            # idempotent: the first block stands
    assert ctx.orders_blocked == "maintenance"
    for source in ("pipeline", "user", "ccxt"):
        with pytest.raises(OrdersBlocked, match="new orders are blocked \\(maintenance\\)") as e:
            begin(ctx, ORDER, {}, order=_order(f"b-{source}", source))
        assert e.value.blocked and isinstance(e.value, SafetyRefusal)   # own code gets a SafetyRefusal as before
    call = begin(ctx, ORDER, {}, order=_order("f1", "flatten"))       # flatten must still trade
    call.leave()
    c = ctx.ledger.counts()
    assert (c["blocked"], c["refused"], c["sent"]) == (3, 0, 1)
    assert ctx.ledger.run_notional == Decimal(12)                   # a blocked order reserved nothing
    assert ctx.resume_orders("signal") is True and ctx.resume_orders("signal") is False
    assert ctx.orders_blocked is None
    begin(ctx, ORDER, {}, order=_order("after")).leave()
    assert ctx.ledger.counts()["sent"] == 2
    assert [(f["blocked"], f["by"]) for f in ctx.events.fired] == [(True, "web UI"), (False, "signal")]
    assert not SafetyRefusal("cap").blocked


def test_the_block_history_says_who_when_why_and_how_long_with_an_injected_clock():
    clock = Clock(1000.0)
    h = BlockHistory(clock)
    assert h.report()["blocked"] is False and h.blocked_s() == 0
    h.block("criterion x failed", "criterion")
    clock.t = 1004.5
    rep = h.report()
    assert rep["blocked"] and rep["by"] == "criterion" and rep["since"] == 1000.0 and rep["blocked_s"] == 4.5
    assert rep["history"][0]["duration_s"] == 4.5                  # the open block so far
    h.resume("web UI")
    clock.t = 1010.0
    h.block("again", "signal")
    clock.t = 1011.0
    h.resume("signal")
    rep = h.report()
    assert rep["blocked_s"] == 5.5 and rep["blocks"] == 2 and h.epoch == 4
    assert rep["history"][0] == {"by": "criterion", "reason": "criterion x failed", "at": 1000.0,
                                 "resumed_at": 1004.5, "resumed_by": "web UI", "duration_s": 4.5}
    assert state_message(h) == {"blocked": False, "reason": None, "by": "signal", "epoch": 4}


def test_a_master_broadcasts_each_change_and_a_worker_applies_only_newer_states():
    master = _Ctx(role="master")
    master.block_orders("stop the bleeding", "http 127.0.0.1")
    assert [(t, d["blocked"], cid) for t, d, cid in master.sent] == [
        (controls.MSG_ORDERS_BLOCK, True, "w1"), (controls.MSG_ORDERS_BLOCK, True, "w2")]
    worker = _Ctx(role="worker")
    handle = controls.on_worker_message(worker)
    handle(msg=SimpleNamespace(data=master.sent[0][1]))
    assert worker.orders_blocked == "stop the bleeding" and worker.sent == []    # a worker never broadcasts
    assert worker.order_blocks.current["by"] == "master (http 127.0.0.1)"
    handle(msg=SimpleNamespace(data={"blocked": False, "epoch": 0}))            # stale: ignored
    assert worker.orders_blocked is not None
    handle(msg=SimpleNamespace(data={"blocked": False, "epoch": 2, "by": "signal"}))
    assert worker.orders_blocked is None


def test_on_fail_in_the_grammar():
    crit = parse_criteria({"order_success": [{"threshold": "rate>99%", "on_fail": "block_orders"},
                                             {"threshold": "rate>50%", "on_fail": "abort"},
                                             {"threshold": "rate>10%", "abort_on_fail": True},
                                             "rate>1%"]}, "p.yaml")
    assert [(c.on_fail, c.abort_on_fail) for c in crit] == [("block_orders", False), ("abort", True),
                                                            ("abort", True), (None, False)]
    with pytest.raises(ConfigError, match=r"on_fail: expected one of abort, block_orders, got 'stop'"):
        parse_criteria({"order_success": [{"threshold": "rate>99%", "on_fail": "stop"}]}, "p.yaml")
    with pytest.raises(ConfigError, match="contradict"):
        parse_criteria({"order_success": [{"threshold": "rate>99%", "on_fail": "block_orders",
                                           "abort_on_fail": True}]}, "p.yaml")
    # the profile loader and its JSON schema know the key
    prof = _profile(criteria={"request": [{"threshold": "avg<500", "on_fail": "block_orders"}]})
    assert prof.criteria[0].on_fail == "block_orders"
    from letrade_perf.config.jsonschema import profile_json_schema
    entry = profile_json_schema()["$defs"]["Threshold"]["anyOf"][1]
    assert entry["properties"]["on_fail"]["enum"] == ["abort", "block_orders"]


def _profile(**extra):
    doc = {"description": "plan", "stages": [{"duration": "20s", "users": 2, "spawn_rate": 2}],
           "users": {"rest_market": {"weight": 1}}}
    doc.update(extra)
    return profile_from_mapping(doc, source="plan.yaml", name="plan")


def test_time_with_orders_blocked_is_a_shortfall_beyond_the_tolerance_with_an_injected_clock():
    clock = Clock(100.0)
    a = Achieved(_profile(), clock=clock)
    a.orders_blocked(True)              # blocked before the test started: counts from the start
    clock.t = 102.0
    a.start()
    clock.t = 105.0
    a.orders_blocked(False)
    clock.t = 110.0
    a.orders_blocked(True)
    a.orders_blocked(True)              # a repeat changes nothing
    clock.t = 112.5
    assert a.orders_blocked_s() == pytest.approx(5.5)   # 3 s + the open 2.5 s
    clock.t = 122.0
    a.stop()
    clock.t = 130.0                     # after the stop: not the test's time
    rep = a.report(judge_plan=False)
    assert rep["achieved"]["orders_blocked_s"] == 15.0
    sf = [s for s in rep["shortfalls"] if s["kind"] == "orders_blocked"]
    assert sf and not sf[0]["tolerated"] and "15.0 s" in sf[0]["message"]
    assert endings.judge(endings.COMPLETED, False, len(untolerated(rep))) == ("incomplete", 4)
    assert endings.judge(endings.COMPLETED, True, len(untolerated(rep)))[0] == "fail"   # a failed criterion wins
    lenient = Achieved(_profile(tolerate={"orders_blocked_s": "20s"}), clock=clock)
    lenient.start()
    lenient.orders_blocked(True)
    clock.t = 140.0
    lenient.stop()
    rep = lenient.report(judge_plan=False)
    assert rep["shortfalls"] == [{"kind": "orders_blocked", "tolerated": True,
                                  "message": "new orders blocked for 10.0 s of the test (1 block(s); tolerated: 20 s)"}]
    with pytest.raises(ConfigError, match="orders_blocked_s"):
        _profile(tolerate={"orders_blocked_s": -1})


def test_the_operations_tab_rows_and_state_with_and_without_positions():
    ctx = _Ctx()
    rows = tab_rows(ctx)      # a context without positions_view: said plainly
    assert rows[0]["item"] == "New orders" and rows[0]["note"] == "accepted"
    assert rows[1]["note"].startswith("positions not available")
    ctx.block_orders("manual", "web UI")
    state = orders_state(ctx)
    assert state["blocked"] and not state["flatten_available"] and not state["positions_available"]
    assert "BLOCKED" in state_row(state)["note"] and "by web UI: manual" in state_row(state)["note"]
    ctx.positions_view = lambda: {"enabled": True, "assets": {"USDT": {"start": "1000", "now": "988.5", "delta": "-11.5",
                                                                        "unexplained": "0", "open_orders": 2}}}
    rows = tab_rows(ctx)
    assert rows[1] == {"item": "USDT", "start": "1000", "now": "988.5", "delta": "-11.5", "unexplained": "0",
                       "open": "2", "note": ""}
    assert all(isinstance(v, str) for r in rows for v in r.values())       # no null cells
    assert position_rows({"enabled": True, "assets": {}}, None)[0]["note"] == "no balance snapshot yet"
    ctx.positions_view = lambda: {"enabled": False, "reason": "a worker", "assets": {}}
    assert tab_rows(ctx)[1]["note"] == "positions not available: a worker"
    assert request_reason({"reason": "  risk\nlimit "}, "x") == "risk limit"
    assert request_reason(None, "operator request") == "operator request"
    assert len(request_reason({"reason": "r" * 999}, "x")) == 200


def test_the_http_routes_answer_json_with_their_status_codes():
    from flask import Flask

    from letrade_perf.harness.webui_ops import install_operations_tab

    guarded: list[str] = []

    def auth(view):          # stands in for Locust's auth_required_if_enabled: every route is wrapped
        guarded.append(view.__name__)
        return view

    web_ui = SimpleNamespace(app=Flask("t"), template_args={}, auth_required_if_enabled=auth)
    ctx = _Ctx()
    env = SimpleNamespace(web_ui=web_ui, parsed_options=SimpleNamespace(web_base_path=None))
    assert install_operations_tab(env, ctx)
    assert web_ui.template_args["extended_tabs"] == [{"title": "Operations", "key": "operations"}]
    assert {"letrade_orders_block", "letrade_orders_resume", "letrade_flatten", "letrade_positions",
            "letrade_orders_state"} <= set(guarded)
    client = web_ui.app.test_client()
    r = client.post("/letrade/orders/block", json={"reason": "risk"}, headers={"X-Letrade-UI": "1"})
    assert r.status_code == 200 and r.json["blocked"] and r.json["changed"] and r.json["by"] == "web UI"
    assert client.post("/letrade/orders/block").json["changed"] is False        # no body: allowed, idempotent
    assert client.get("/letrade/orders/state").json["reason"] == "risk"
    r = client.post("/letrade/flatten")
    assert r.status_code == 409 and "not available" in r.json["error"]
    r = client.get("/letrade/positions")
    assert r.status_code == 409 and r.json["available"] is False
    ctx.flatten = lambda reason, by: {"reason": reason, "by": by, "ok": True}
    ctx.positions_view = lambda: {"enabled": True, "assets": {"BTC": {"start": "1", "now": "1"}}}
    r = client.post("/letrade/flatten", json={"reason": "end of day"})
    assert r.status_code == 200 and r.json == {"reason": "end of day", "by": "http 127.0.0.1", "ok": True}
    assert client.get("/letrade/positions").json["assets"]["BTC"]["now"] == "1"

    def broken(reason, by):
        raise RuntimeError("exchange down")

    ctx.flatten = broken
    r = client.post("/letrade/flatten")
    assert r.status_code == 500 and "exchange down" in r.json["error"]
    r = client.post("/letrade/orders/resume")
    assert r.status_code == 200 and r.json["changed"] and not r.json["blocked"]
    assert b"Block new orders" in client.get("/letrade/operations").data
    assert b"Block new orders" in client.get("/letrade/operations.js").data
