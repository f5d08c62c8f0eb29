"""Judging criteria on merged metrics: every metric kind, inconclusive rules, defaults, the live state."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from letrade_perf.config.profile import profile_from_mapping
from letrade_perf.core.errors import ConfigError
from letrade_perf.criteria.evaluate import default_criteria, effective_criteria, judge
from letrade_perf.criteria.gate import Gate
from letrade_perf.criteria.grammar import parse_criteria, unproduced
from letrade_perf.metrics.recorder import MetricsRecorder, MetricsStore, Snapshot


class Clock:
    def __init__(self, t: float = 1_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def crit(key: str, expr):
    (c,) = parse_criteria({key: [expr]}, "test.yaml")
    return c


def store_with(fill) -> MetricsStore:
    clock = Clock()
    rec = MetricsRecorder(clock=clock, gauges=lambda: {"r429": 2, "r418": 0, "user_errors": 3}, samples_dir="")
    fill(rec, clock)
    store = MetricsStore()
    store.merge(Snapshot.from_wire(rec.drain().to_wire()))
    return store


class Err(Exception):
    pass


def test_request_aggregations_and_tag_filters():
    def fill(rec, clock):
        for i in range(100):
            rec.on_request(request_type="GET", name="GET /api/v3/depth", response_time=10.0 + i)
        for i in range(10):
            rec.on_request(request_type="GET", name="GET /api/v3/klines", response_time=500.0,
                           exception=Err("boom") if i < 2 else None)
        rec.on_request(request_type="WS", name="btcusdt@trade", response_time=9999.0)   # lag: not a request
    store = store_with(fill)
    depth = crit('request{name="GET /api/v3/depth"}', "avg<100")
    r = judge(depth, store, 10)
    assert r.verdict == "pass" and r.value == pytest.approx(59.5) and r.samples == 100
    r = judge(crit("request", "max<400"), store, 10)
    assert r.verdict == "fail" and r.value == 500.0 and r.samples == 110
    r = judge(crit('request{name="GET /api/v3/depth"}', "p(95)<105"), store, 10)
    assert r.verdict == "pass" and r.value == pytest.approx(104.05, rel=0.005)
    r = judge(crit('api_success{name="GET /api/v3/klines"}', "rate>90%"), store, 10)
    assert r.verdict == "fail" and r.value == pytest.approx(0.8)
    r = judge(crit("request", "count>=110"), store, 10)
    assert r.verdict == "pass" and r.value == 110
    r = judge(crit('request{name="GET /api/v3/nothing"}', "avg<100"), store, 10)
    assert r.verdict == "inconclusive" and r.reason == "no samples" and r.gate == "fail"


def test_ws_lag_uncertainty_makes_a_criterion_inconclusive():
    def fill(rec, clock):
        for _ in range(50):
            rec.on_ws_lag(stream="btcusdt@trade", lag_ms=5.0, uncertainty_ms=1.0)
            rec.on_ws_lag(stream="ethusdt@trade", lag_ms=8.0, uncertainty_ms=30.0)
    store = store_with(fill)
    ok = judge(crit('ws_lag{stream="btcusdt@trade"}', "avg<50"), store, 10)
    assert ok.verdict == "pass"
    unsure = judge(crit("ws_lag", "avg<50"), store, 10)
    assert unsure.verdict == "inconclusive" and "uncertainty 30.0 ms" in unsure.reason
    allowed = judge(crit("ws_lag", "avg<50"), store, 10, allow_inconclusive=True)
    assert allowed.verdict == "inconclusive" and allowed.gate == "pass"
    assert judge(crit("ws_lag", "avg<100"), store, 10).verdict == "pass"   # 30 ms is not over half of 100


def test_rates_counters_orders_and_uptime():
    def fill(rec, clock):
        for sec in range(10):
            clock.t = 1_000.0 + sec
            ok = sec != 3
            rec.on_request(request_type="ccxt", name="fetch_order_book", response_time=5.0,
                           exception=None if ok else Err("down"))
        for outcome in ["sent"] * 10 + ["placed"] * 9 + ["rejected"]:
            rec.on_order(outcome=outcome, source="pipeline")
        rec.on_request(request_type="WSCONN", name="connect", response_time=3.0)
        rec.on_request(request_type="WSCONN", name="disconnect", response_time=0.0, exception=Err("x"))
        rec.on_request(request_type="reconciliation", name="order", response_time=2.0)
        rec.on_slippage(symbol="BTCUSDT", side="BUY", bps=-1.5)
        rec.on_slippage(symbol="BTCUSDT", side="SELL", bps=3.5)
        rec.on_fee(symbol="BTCUSDT", asset="USDT", bps=10.0)
    store = store_with(fill)
    assert judge(crit("uptime", "rate>99.9%"), store, 10).value == pytest.approx(0.9)
    assert judge(crit("order_success", "rate>99.5%"), store, 10).value == pytest.approx(0.9)
    assert judge(crit("ws_connection_events", "rate>99.9%"), store, 10).value == pytest.approx(0.5)
    assert judge(crit("reconciliation", "rate==100%"), store, 10).verdict == "pass"
    assert judge(crit("slippage", "avg<10"), store, 10).value == pytest.approx(1.0)
    assert judge(crit('slippage{side="SELL"}', "max<3"), store, 10).verdict == "fail"
    assert judge(crit("fees", "avg<=10.1"), store, 10).verdict == "pass"
    r429 = judge(crit("http_429", "count<=1"), store, 10)
    assert r429.verdict == "fail" and r429.value == 2
    assert judge(crit("http_429", "rate<1"), store, 10).value == pytest.approx(0.2)
    assert judge(crit("http_418", "count==0"), store, 10).verdict == "pass"
    user = judge(crit("user_errors", "count<=0"), store, 10)
    assert (user.verdict, user.value, user.unit) == ("fail", 3, "count")


def _profile(extra: dict):
    data = yaml.safe_load("""
description: unit
env: sim
symbols: [BTCUSDT]
stages: [{duration: 10s, users: 2, spawn_rate: 2}]
users:
  rest_market: {weight: 1}
""")
    data.update(extra)
    return profile_from_mapping(data, "unit.yaml", "unit")


class ClockErr(Exception):
    client_clock_error = True


def test_clock_errors_are_counted_and_left_out_of_api_success():
    def fill(rec, clock):
        for i in range(40):
            rec.on_request(request_type="GET", name="GET /api/v3/account", response_time=5.0,
                           exception=ClockErr("-1021") if i < 3 else None)
        rec.on_request(request_type="ccxt", name="ccxt fetch_balance", response_time=5.0, exception=ClockErr("-1021"))
        rec.on_request(request_type="GET", name="GET /api/v3/depth", response_time=5.0, exception=Err("503"))
    store = store_with(fill)
    r = judge(crit("clock_errors", "count<=3"), store, 10)
    assert r.verdict == "fail" and r.value == 4.0 and r.samples == 4
    r = judge(crit('clock_errors{name="GET /api/v3/account"}', "count<=3"), store, 10)
    assert r.verdict == "pass" and r.value == 3.0
    assert judge(crit("clock_errors", "rate<1"), store, 10).value == pytest.approx(0.4)
    api = judge(crit("api_success", "rate>99%"), store, 10)
    assert api.samples == 38 and api.value == pytest.approx(37 / 38)     # 37 ok + 1 failure; -1021s are neither
    gate = Gate(_profile({"criteria": {"clock_errors": ["count<=3"]}, "gate": {"defaults": False}}), clock=Clock())
    gate.store = store
    rows = {(e["type"], e["name"]): e for e in gate.endpoint_rows()}
    assert rows[("GET", "GET /api/v3/account")]["clock_errors"] == 3
    assert rows[("GET", "GET /api/v3/account")]["failures"] == 0 and rows[("GET", "GET /api/v3/depth")]["failures"] == 1


def test_defaults_follow_the_user_mix_and_profile_criteria_replace_them():
    rest_only = {c.label for c in default_criteria(_profile({}))}
    assert rest_only == {"request avg<200", "api_success rate>99.9%", "uptime rate>99.9%", "http_418 count==0",
                         "http_429 count<=0", "clock_errors count<=10", "user_errors count<=0"}
    strict = {c.label for c in default_criteria(_profile({"gate": {"max_clock_errors": 0}}))}
    assert "clock_errors count<=0" in strict
    full = _profile({"users": {"rest_market": {"weight": 1}, "ws_streams": {"fixed_count": 1},
                               "pipeline": {"fixed_count": 1, "notional": 12}},
                     "stages": [{"duration": "10s", "users": 3, "spawn_rate": 3}]})
    labels = {c.label for c in default_criteria(full)}
    assert {"ws_lag avg<50", "pipeline avg<500", "reconciliation rate==100%", "order_success rate>99.5%",
            "ws_connection rate>99.9%", "slippage avg<10", "fees avg>=0", "fees avg<=10.1"} <= labels
    # a WebSocket-only profile calls no API: no REST defaults it could never get samples for
    ws_only = {c.label for c in default_criteria(_profile({"users": {"ws_streams": {"fixed_count": 1}}}))}
    assert ws_only == {"ws_lag avg<50", "ws_connection rate>99.9%", "http_418 count==0", "http_429 count<=0",
                       "clock_errors count<=10", "user_errors count<=0"}
    no_reconcile = _profile({"users": {"pipeline": {"fixed_count": 1, "notional": 12, "reconcile": False}}})
    assert "reconciliation rate==100%" not in {c.label for c in default_criteria(no_reconcile)}
    own = _profile({"criteria": {"request": ["p(95)<100"], 'request{name="GET /api/v3/depth"}': ["avg<5"]}})
    eff = effective_criteria(own)
    labels = [(c.label, src) for c, src in eff]
    assert ("request avg<200", "default") not in labels          # the bare selector replaced it
    assert ("request p(95)<100", "profile") in labels and ('request{name="GET /api/v3/depth"} avg<5', "profile") in labels
    assert not effective_criteria(_profile({"gate": {"defaults": False}}))


def test_gate_live_state_summary_and_verdicts():
    clock = Clock(2_000.0)
    prof = _profile({"criteria": {"request": ["avg<100"]}, "gate": {"defaults": False}})
    gate = Gate(prof, clock=clock)
    snap = gate.snapshot()
    assert snap["verdict"] == "pending" and snap["criteria"][0]["reason"] == "not evaluated yet"
    gate.start()
    rec = MetricsRecorder(clock=clock, samples_dir="")
    for _ in range(10):
        rec.on_request(request_type="GET", name="GET /api/v3/depth", response_time=150.0)
    clock.t += 5
    gate.merge(rec.drain())
    gate.evaluate()
    assert gate.verdict == "fail" and gate.snapshot()["criteria"][0]["value"] == 150.0
    assert "1 fail" in gate.console_line() and "request avg<100 = 150.00 ms" in gate.console_line()
    gate.ended_at = clock.t
    s = gate.summary(run_id="r1", env="sim", host=None, workers=0, exit_code=1, aborted=None)
    (ep,) = s["endpoints"]
    assert ep["count"] == 10 and ep["rps"] == 2.0 and ep["p95_ms"] == 150.0
    assert s["criteria"][0]["verdict"] == "fail" and s["verdict"] == "fail"
    assert s["run"]["versions"]["locust"]
    # reading versions must not import locust (it monkey-patches the process): a fresh interpreter
    probe = "import sys, letrade_perf.core.runmeta as v; v.versions(); print('locust' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_criteria_that_name_nothing_a_run_records_are_refused_with_a_did_you_mean():
    with pytest.raises(ConfigError, match=r"criteria\['reqest'\]: unknown metric 'reqest' — did you mean 'request'\?"):
        _profile({"criteria": {"reqest": ["avg<200"]}})
    with pytest.raises(ConfigError, match=r"request has no tag 'nmae' — did you mean 'name'\?"):
        _profile({"criteria": {'request{nmae="GET /api/v3/depth"}': ["avg<200"]}})
    with pytest.raises(ConfigError, match=r"order_success has no tag 'sorce' — did you mean 'source'\?"):
        _profile({"criteria": {'order_success{sorce="ccxt"}': ["rate>99%"]}})
    # request types of the user's own code (measure → ``user``, api.call → the HTTP method) are metrics
    ok = _profile({"criteria": {'user{name="my step"}': ["p(95)<300"], "GET": ["avg<100"],
                                'request{type="ccxt",status="ok"}': ["avg<200"]}})
    assert len(ok.criteria) == 3


def test_criteria_no_user_of_the_profile_produces_are_named():
    p = _profile({"criteria": {"ws_lag": ["avg<50"], "order_success": ["rate>99.5%"], "request": ["avg<200"]}})
    problems = unproduced(p.criteria, p.users.produces(), p.users.places_orders, p.source)
    assert problems == [f"{p.source}: criteria['ws_lag']: no user of this profile produces ws_lag (it comes from "
                        "users.ws_streams)",
                        f"{p.source}: criteria['order_success']: no user of this profile produces order_success (it "
                        "comes from a user that places orders)"]
