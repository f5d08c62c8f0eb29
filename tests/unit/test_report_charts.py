"""The HTML report's charts: per-interval columns (p99, lag uncertainty, weight, orders, errors by
code), the chart specifications shaped from a summary, and the self-contained page."""
from __future__ import annotations

import json
import re

from letrade_perf.criteria.intervals import MAX_ERROR_CODES, IntervalTable
from letrade_perf.metrics.recorder import Series, Snapshot
from letrade_perf.reports import charts
from letrade_perf.reports.html import render_html
from letrade_perf.reports.schema import validate_summary
from reportdata import make_summary


def _snap(start: float, *, lat=(10.0, 20.0, 90.0), lag=(3.0, 4.0), unc=0.5, weight=(100, 1200), r429=0,
          orders=None, fails=0, codes=None) -> Snapshot:
    snap = Snapshot(start, start + 1.0)
    s = Series()
    for v in lat:
        s.hist.record(v)
    snap.series[("request", (("name", "GET /api/v3/depth"), ("status", "ok"), ("type", "GET")))] = s
    if fails:
        f = Series()
        for _ in range(fails):
            f.hist.record(5.0)
        snap.series[("request", (("name", "GET /api/v3/depth"), ("status", "fail"), ("type", "GET")))] = f
    w = Series()
    for v in lag:
        w.hist.record(v)
    w.uncertainty_ms = unc
    snap.series[("ws_lag", (("stream", "btcusdt@trade"),))] = w
    for outcome, n in (orders or {}).items():
        snap.counters[("orders", (("outcome", outcome), ("source", "pipeline")))] = n
    for code, n in (codes or {}).items():
        snap.counters[("rejection_code", (("name", code),))] = n
    snap.gauges = {"weight_used": weight[0], "weight_budget": weight[1], "r429": r429, "r418": 0}
    return snap


def _table(n: int = 6, **kw) -> dict:
    t = IntervalTable(1.0)
    for i in range(n):
        t.add(_snap(1000.0 + i, **kw))
    out = t.to_summary(1000.0)
    assert out is not None
    return out


def test_intervals_carry_p99_uncertainty_weight_orders_and_errors():
    iv = _table(orders={"sent": 3, "filled": 2, "rejected": 1}, fails=2, r429=0)
    (ep,) = iv["endpoints"]
    assert len(ep["p99_ms"]) == len(iv["t_s"]) == 6
    assert ep["p99_ms"][0] >= ep["p95_ms"][0] >= ep["p50_ms"][0]
    (st,) = iv["streams"]
    assert st["unc_ms"] == [0.5] * 6 and st["p99_ms"][0] >= st["p50_ms"][0]
    assert iv["gauges"]["weight_used"] == [100] * 6 and iv["gauges"]["weight_budget"] == [1200] * 6
    assert iv["orders"]["sent"] == [3] * 6 and iv["orders"]["filled"] == [2] * 6 and iv["orders"]["rejected"] == [1] * 6
    assert iv["errors"] == {"failed": [2] * 6}


def test_429_per_interval_is_the_difference_of_the_cumulative_gauge():
    t = IntervalTable(1.0)
    for i, cum in enumerate((0, 2, 2, 5)):
        t.add(_snap(1000.0 + i, r429=cum))
    iv = t.to_summary(1000.0)
    assert iv is not None and iv["gauges"]["r429"] == [0, 2, 0, 3]


def test_errors_by_code_are_bounded_the_rest_summed_as_other():
    codes = {str(-2000 - i): i + 1 for i in range(MAX_ERROR_CODES + 4)}
    codes["accepted"] = 50          # not an error
    iv = _table(n=3, codes=codes)
    assert len(iv["errors"]) == MAX_ERROR_CODES and "other" in iv["errors"] and "accepted" not in iv["errors"]
    assert sum(sum(col) for col in iv["errors"].values()) == 3 * sum(v for k, v in codes.items() if k != "accepted")


def test_a_pacer_less_run_has_no_weight_columns():
    iv = _table(n=3, weight=(0, 0))
    assert iv["gauges"]["weight_budget"] == [None] * 3
    spec = {s["id"]: s for s in charts.chart_specs({"intervals": iv})}["weight"]
    assert "no REST pacing" in spec["note"]


def _full_summary() -> dict:
    summary = make_summary()
    summary["intervals"] = _table(orders={"sent": 3, "filled": 2, "rejected": 1})
    summary["achieved"] = {"planned": {"duration_s": 6, "peak_users": 4}, "achieved": {"duration_s": 6},
                           "shortfalls": [], "timeline": [[float(t), 4, min(4, t)] for t in range(1, 7)]}
    summary["generator"] = {"local": {"t_s": [1.0, 2.0, 3.0], "cpu_percent": [20.0, 30.0, 25.0],
                                      "rss_mb": [80.0, 81.0, 81.0], "loop_lag_p99_ms": [0.4, 0.6, 0.5]}}
    return summary


def test_every_chart_of_a_full_summary_has_data():
    specs = charts.chart_specs(_full_summary())
    assert [s for s in specs if "note" in s] == []
    assert {s["id"] for s in specs} >= {"latency-0", "ws-lag-0", "throughput", "weight", "users", "generator",
                                       "orders"}
    for s in specs:
        assert s["series"], s["id"]
        for series in s["series"]:
            values = series.get("data") or series.get("upper")
            assert len(values) == len(s["x"]) and any(v is not None for v in values), (s["id"], series["name"])


def test_latency_chart_has_p50_p95_p99_and_the_criteria_thresholds():
    summary = _full_summary()
    summary["criteria"] = [
        {"label": "request avg<200", "metric": "request", "tags": {}, "aggregation": "avg", "threshold": 200.0,
         "unit": "ms"},
        {"label": 'request{name="GET /api/v3/depth"} p(95)<150', "metric": "request",
         "tags": {"name": "GET /api/v3/depth"}, "aggregation": "p(95)", "threshold": 150.0, "unit": "ms"},
        {"label": 'request{name="GET /api/v3/klines"} p(95)<99', "metric": "request",
         "tags": {"name": "GET /api/v3/klines"}, "aggregation": "p(95)", "threshold": 99.0, "unit": "ms"},
        {"label": "api_success rate>99%", "metric": "api_success", "tags": {}, "aggregation": "rate",
         "threshold": 0.99, "unit": "ratio"},
        {"label": "ws_lag avg<50", "metric": "ws_lag", "tags": {}, "aggregation": "avg", "threshold": 50.0,
         "unit": "ms"},
    ]
    by_id = {s["id"]: s for s in charts.chart_specs(summary)}
    lat = by_id["latency-0"]
    assert [s["name"] for s in lat["series"]] == ["p50", "p95", "p99"]
    assert lat["thresholds"] == [{"name": "request avg<200", "value": 200.0},
                                 {"name": 'request{name="GET /api/v3/depth"} p(95)<150', "value": 150.0}]
    lag = by_id["ws-lag-0"]
    band = lag["series"][0]
    assert band["kind"] == "band" and band["upper"][0] - band["lower"][0] == 1.0    # p50 ± 0.5
    assert lag["thresholds"] == [{"name": "ws_lag avg<50", "value": 50.0}]


def test_absent_data_is_a_note_never_an_empty_chart():
    summary = make_summary(endpoints=[], streams=[])
    summary["intervals"] = None
    summary["achieved"] = None
    specs = charts.chart_specs(summary)
    assert specs and all("note" in s and "series" not in s for s in specs)
    by_id = {s["id"]: s for s in specs}
    assert "not measured" in by_id["generator"]["note"] and "per-interval" in by_id["latency"]["note"]


def test_charts_are_bounded_to_the_busiest_endpoints():
    iv = _table(n=2)
    base = iv["endpoints"][0]
    iv["endpoints"] = [{**base, "name": f"GET /e{i}", "count": [i + 1, i + 1]} for i in range(10)]
    specs = charts.chart_specs({"intervals": iv})
    lat = [s for s in specs if s["id"].startswith("latency-") and "note" not in s]
    assert len(lat) == charts.MAX_ENDPOINT_CHARTS and lat[0]["title"].startswith("GET /e9")
    assert "4 less busy endpoint(s)" in next(s for s in specs if s["id"] == "latency-more")["note"]


def test_script_json_cannot_close_the_script_element():
    text = charts.script_json({"title": "</script><script>alert(1)</script> & <!--"})
    assert "</" not in text and "<!--" not in text and json.loads(text)["title"].startswith("</script>")


def test_the_report_is_one_self_contained_file():
    summary = _full_summary()
    summary["run"]["run_id"] = "r</script>1"
    validate_summary({k: v for k, v in summary.items() if k != "generator"})   # the intervals fit the schema
    html = render_html(summary)
    assert html.index('class="verdict"') < html.index('class="plan"') < html.index("<h2>Criteria</h2>") \
        < html.index("<h2>Charts over time</h2>") < html.index("<h2>Endpoints</h2>")
    assert charts.echarts_js()[:2000] in html and "window.letradeCharts" in html
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert "src=" not in markup and re.findall(r"href=\"[^\"]*\"", markup) == ['href="data:,"']    # nothing fetched
    assert "r&lt;/script&gt;1" in html and "r</script>1" not in html
    data = html[html.index('id="letrade-chart-data"'):]
    specs = json.loads(data[data.index(">") + 1:data.index("</script>")])
    assert specs == json.loads(json.dumps(charts.chart_specs(summary)))
    assert "<noscript>" in html and "<svg" in html       # readable without JavaScript


def test_the_live_charts_payload_comes_from_the_running_gate():
    from types import SimpleNamespace

    import yaml

    from letrade_perf.config.profile import profile_from_mapping
    from letrade_perf.criteria.achieved import Achieved
    from letrade_perf.criteria.gate import Gate
    from letrade_perf.harness.webui_charts import PAGE, charts_payload, live_summary
    profile = profile_from_mapping(yaml.safe_load("""
description: unit
env: sim
symbols: [BTCUSDT]
stages: [{duration: 10s, users: 2, spawn_rate: 2}]
users:
  rest_market: {weight: 1}
criteria:
  request: ["p(95)<200"]
gate: {defaults: false, eval_every_s: 1s}
"""), "unit.yaml", "unit")
    now = [1000.0]
    gate = Gate(profile, clock=lambda: now[0])
    achieved = Achieved(profile, clock=lambda: now[0])
    gate.start()
    achieved.start()
    for _ in range(4):
        now[0] += 1.0
        achieved.sample(2)
        gate.merge(_snap(now[0] - 1.0, orders={"sent": 1, "filled": 1}))
    gate.evaluate()
    payload = charts_payload(live_summary(SimpleNamespace(gate=gate, achieved=achieved)))
    assert payload["verdict"] == "pass" and payload["elapsed_s"] == 4.0
    by_id = {s["id"]: s for s in payload["charts"]}
    assert by_id["latency-0"]["thresholds"] == [{"name": "request p(95)<200", "value": 200.0}]
    assert by_id["users"]["series"][1]["data"] == [2.0] * 4 and by_id["orders"]["series"][0]["data"][0] == 1
    assert json.dumps(payload, allow_nan=False)
    assert './echarts.min.js' in PAGE and './charts.json' in PAGE and "letradeCharts.render" in PAGE
