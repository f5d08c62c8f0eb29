"""Every InfluxQL query the shipped dashboards send, run against a real InfluxDB 1.x.

A synthetic dataset holds every measurement of the sink's schema (three runs, several workers,
endpoints, streams and criteria, all within the last hour). For each dashboard the template
variables are resolved the way Grafana does it — by running their own queries in order — and every
panel target and annotation is rendered with Grafana's macros and run. Each must answer without
error, with at least one series, exactly the columns its SELECT names, and some non-null values in
every column: a misspelt field, tag or function, or a regex the variables break, fails here.
"""
from __future__ import annotations

import time

import grafana_json as g
import pytest

from letrade_perf.metrics.influx_io import format_line
from letrade_perf.metrics.sink import run_percentile_points

DB = g.DATABASE
STEP_MS = 5_000   # the sink's interval

#: three runs: two workers each for the first two, a single local process for the third
RUNS = [
    {"run_id": "20261124T080000Z-smoke", "profile": "smoke", "env": "sim", "start_min": 55,
     "workers": ["worker-1", "worker-2"], "extra": ["master"], "exit_code": 0, "verdict": "pass"},
    {"run_id": "20261124T082000Z-smoke", "profile": "smoke", "env": "sim", "start_min": 38,
     "workers": ["worker-1", "worker-2"], "extra": ["master"], "exit_code": 1, "verdict": "fail"},
    {"run_id": "20261124T084000Z-ci-gate", "profile": "ci-gate", "env": "testnet", "start_min": 20,
     "workers": ["local"], "extra": [], "exit_code": 1, "verdict": "fail"},
]
RUN_MINUTES = 8
ENDPOINTS = [("GET", "GET /api/v3/depth"), ("GET", "GET /api/v3/klines"), ("POST", "POST /api/v3/order"),
             ("ccxt", "fetch_order_book"), ("pipeline", "BTCUSDT rest"), ("GET", "GET /api/v3/order"),
             ("WSAPI", "GET /api/v3/order"),     # one name under two request types: never mixed
             ("rejection_code", "-2010"), ("expected_rejection", "insufficient_balance")]
STREAMS = ["btcusdt@trade", "ethusdt@aggTrade"]
CRITERIA = [  # label, metric, threshold, value(run index) -> verdict follows value vs threshold
    ("request p(95)<200", "request", 200.0, lambda i: 120.0 + 60 * i),
    ("ws_lag p(99)<50", "ws_lag", 50.0, lambda i: 30.0 + 15 * i),
    ("http_429 count<=0", "http_429", 0.0, lambda i: float(i % 2)),
    ("request success_rate>99.5%", "request", 99.5, lambda i: 99.9 - 0.3 * i),
    ('request{name="GET /api/v3/depth"} p(99)<400', "request", 400.0, lambda i: 200.0 + 120 * i),
    ("request med<80", "request", 80.0, lambda i: 40.0 + 10 * i),
    ("request avg<100", "request", 100.0, lambda i: 50.0 + 30 * i),
]
#: order outcomes per interval and worker: (outcome, source, count(k))
ORDERS = [("sent", "pipeline", lambda k: 3), ("placed", "pipeline", lambda k: 3 - (k % 5 == 0)),
          ("filled", "pipeline", lambda k: 2), ("rejected", "pipeline", lambda k: int(k % 5 == 0)),
          ("canceled", "pipeline", lambda k: 1), ("sent", "error_path", lambda k: 1),
          ("rejected", "error_path", lambda k: 1), ("blocked", "pipeline", lambda k: int(k % 11 == 0)),
          ("refused", "pipeline", lambda k: int(k % 13 == 0))]


# ------------------------------------------------------------------------ line protocol
def line(measurement: str, tags: dict, fields: dict, ts_ms: int) -> str:
    """The sink's own line-protocol encoder: the dashboards are tested on exactly what it writes."""
    out = format_line(measurement, tags, fields, ts_ms)
    assert out is not None
    return out


def _hist(mean: float) -> str:
    return '{"unit":"ms","counts":{"%d":3}}' % int(mean)


def synthetic_points(now_ms: int) -> list[str]:
    """Every measurement of the schema for every run in :data:`RUNS`."""
    out: list[str] = []
    for ri, run in enumerate(RUNS):
        base = {"run_id": run["run_id"], "profile": run["profile"], "env": run["env"]}
        start = (now_ms - run["start_min"] * 60_000) // STEP_MS * STEP_MS
        n = RUN_MINUTES * 60_000 // STEP_MS
        end = start + n * STEP_MS
        out.append(line("run", {**base, "event": "start"},
                        {"version": "0.1.0", "git_commit": "abc1234",
                         "text": f"{run['profile']} on {run['env']}: started"}, start))
        for w_i, worker in enumerate(run["workers"]):
            tags = {**base, "worker": worker}
            r429 = 0
            for k in range(1, n + 1):
                t = start + k * STEP_MS
                for e_i, (rtype, name) in enumerate(ENDPOINTS):
                    mean = 20.0 + 10 * e_i + w_i + (k % 7)
                    cnt = 40 + e_i * 3 + (k % 5)
                    out.append(line("request", {**tags, "request_type": rtype, "name": name, "status": "ok"},
                                    {"count": cnt, "failures": 0, "sum": mean * cnt, "mean": mean,
                                     "min": mean / 2, "max": mean * 3, "p50": mean * 0.9, "p90": mean * 1.5,
                                     "p95": mean * 1.8, "p99": mean * 2.5, "hist": _hist(mean)}, t))
                    if (k + e_i) % 7 == 0:
                        out.append(line("request", {**tags, "request_type": rtype, "name": name, "status": "fail"},
                                        {"count": 2, "failures": 2, "sum": 2 * mean, "mean": mean, "min": mean,
                                         "max": mean, "p50": mean, "p90": mean, "p95": mean, "p99": mean,
                                         "hist": _hist(mean)}, t))
                for s_i, stream in enumerate(STREAMS):
                    lag = 8.0 + 3 * s_i + (k % 4)
                    out.append(line("ws_lag", {**tags, "stream": stream},
                                    {"count": 50 + s_i, "sum": lag * (50 + s_i), "mean": lag, "min": lag / 3,
                                     "max": lag * 4, "p50": lag, "p90": lag * 1.5, "p95": lag * 2,
                                     "p99": lag * 3, "uncertainty_ms": 0.4 + 0.1 * w_i, "hist": _hist(lag)}, t))
                if k % 30 == 0:
                    r429 += 1
                out.append(line("pacing", tags,
                                {"weight_used": 100 + 10 * (k % 12), "weight_budget": 2880 // len(run["workers"]),
                                 "orders_used": k % 9, "orders_budget": 45, "wait_s": 0.05 * (k % 3),
                                 "waits": k % 3, "r429": r429, "r418": 0, "share": 1.0 / len(run["workers"])}, t))
                out.append(line("users", tags, {"count": 5 + (k > 10) * 5, "rps": 40.0 + (k % 6),
                                                "fail_rps": 0.2 * (k % 2)}, t))
                out.append(line("sink", tags, {"written": 30 * k, "dropped": 0, "retries": k // 40,
                                               "buffered": k % 4}, t))
                for metric, v in (("generator_cpu", 30.0 + (k % 9)), ("generator_rss_mb", 90.0 + k * 0.01),
                                  ("generator_loop_lag", 0.4 + 0.1 * (k % 5))):
                    out.append(line("generator", {**tags, "metric": metric, "process": worker},
                                    {"count": 5, "sum": 5 * v, "mean": v, "min": v / 2, "max": v * 2, "p50": v,
                                     "p90": v * 1.4, "p95": v * 1.6, "p99": v * 1.9, "hist": _hist(v)}, t))
                for outcome, source, count_of in ORDERS:
                    if count_of(k):
                        out.append(line("orders", {**tags, "outcome": outcome, "source": source},
                                        {"count": count_of(k)}, t))
        for worker in run["extra"]:   # the master of a distributed run: no requests, but users and sink
            tags = {**base, "worker": worker}
            for k in range(1, n + 1):
                t = start + k * STEP_MS
                out.append(line("users", tags, {"count": 10, "rps": 80.0, "fail_rps": 0.3}, t))
                out.append(line("sink", tags, {"written": 5 * k, "dropped": 0, "retries": 0, "buffered": 0}, t))
        for k in range(0, n + 1, 6):   # balance snapshots every 30 s (run-level points: no worker tag)
            t = start + k * STEP_MS
            for a_i, asset in enumerate(("BTC", "USDT")):
                delta = (0.0001 if a_i == 0 else -10.0) * k
                out.append(line("balance", {**base, "asset": asset},
                                {"start": 2.0 + a_i * 1000, "now": 2.0 + a_i * 1000 + delta, "delta": delta,
                                 "unexplained": 0.0 if ri != 1 else 1.5 * a_i, "open_orders": k % 2,
                                 "weight": 0.5 + 0.1 * (a_i - 0.5)}, t))
            for strategy in ("pipeline", "run"):
                out.append(line("pnl", {**base, "strategy": strategy},
                                {"realised_pnl": -0.01 * k, "fees": 0.012 * k, "slippage_cost": 0.001 * k,
                                 "return": -0.001}, t))
        passed_all = True
        for label, metric, threshold, value_of in CRITERIA:
            value = value_of(ri)
            lower_is_better = "<" in label
            ok = value <= threshold if lower_is_better else value >= threshold
            passed_all &= ok
            out.append(line("criteria", {**base, "criterion": label, "metric": metric,
                                         "verdict": "pass" if ok else "fail"},
                            {"value": value, "threshold": threshold, "passed": int(ok), "samples": 1000 + ri},
                            end))
        # the run's merged percentiles, as the sink writes them from summary.json at the end
        summary = {"endpoints": [{"type": rtype, "name": name, "count": 1000 + e_i, "failures": e_i,
                                  "avg_ms": 20.0 + 10 * e_i + ri, "max_ms": 90.0 + e_i, "p50_ms": 18.0 + 10 * e_i,
                                  "p90_ms": 30.0 + 10 * e_i, "p95_ms": 36.0 + 10 * e_i + 5 * ri,
                                  "p99_ms": 50.0 + 10 * e_i + 9 * ri} for e_i, (rtype, name) in enumerate(ENDPOINTS)],
                   "streams": [{"stream": stream, "count": 500, "avg_ms": 9.0 + s_i, "max_ms": 40.0,
                                "p50_ms": 8.0 + s_i, "p90_ms": 12.0, "p95_ms": 15.0, "p99_ms": 24.0 + ri}
                               for s_i, stream in enumerate(STREAMS)]}
        for tags, fields in run_percentile_points(summary):
            out.append(line("run_percentiles", {**base, **tags}, fields, end))
        out.append(line("run", {**base, "event": "stop"},
                        {"version": "0.1.0", "git_commit": "abc1234",
                         "text": f"{run['profile']} on {run['env']}: {run['verdict'].upper()}",
                         "verdict": run["verdict"], "exit_code": run["exit_code"],
                         "duration_s": float(RUN_MINUTES * 60)}, end + 1))
    return out


@pytest.fixture(scope="module")
def influx(influxdb1_module):
    """InfluxDB 1.x with database letrade_perf holding the synthetic dataset."""
    influxdb1_module.create_db(DB)
    points = synthetic_points(int(time.time() * 1000))
    for i in range(0, len(points), 5000):
        influxdb1_module.write(DB, points[i:i + 5000], precision="ms")
    return influxdb1_module


# ------------------------------------------------------------------------ helpers
def _dashboard(uid: str) -> dict:
    for path in g.dashboard_files():
        d = g.load_dashboard(path)
        if d["uid"] == uid:
            return d
    raise AssertionError(f"no dashboard with uid {uid}")


def _variables(dashboard: dict) -> list[dict]:
    return [v for v in dashboard["templating"]["list"] if v.get("type") == "query"]


def _tag_values(answer: dict) -> list[str]:
    values = []
    for result in answer["results"]:
        for series in result.get("series", []):
            assert series["columns"] == ["key", "value"], series
            values += [row[1] for row in series["values"]]
    return sorted(set(values))


def resolve_variables(influx, dashboard: dict, choose: dict[str, list[str] | None]) -> dict[str, list[str]]:
    """Run the template-variable queries in dashboard order, as Grafana does, each with the values
    chosen so far. ``choose[name]`` picks values (None or missing = All if the variable includes All,
    else Grafana's default: the first value in the variable's sort order)."""
    selected: dict[str, list[str]] = {}
    for v in _variables(dashboard):
        q = g.render(v["query"], selected)
        values = _tag_values(influx.query(DB, q))
        assert values, f"variable {v['name']}: {q!r} returned no values"
        if v.get("sort") in (2, 4, 6):
            values = sorted(values, reverse=True)
        want = choose.get(v["name"])
        if want is None:
            want = values if v.get("includeAll") else values[:1]
        missing = set(want) - set(values)
        assert not missing, f"variable {v['name']}: {missing} not among {values}"
        selected[v["name"]] = list(want)
    return selected


def check_query(influx, query: g.Query, variables: dict[str, list[str]]) -> None:
    text = g.render(query.text, variables)
    assert "$" not in text.replace("$/", ""), f"{query}: unresolved variable in {text!r}"
    answer = influx.query(DB, text)
    series = [s for r in answer["results"] for s in r.get("series", [])]
    assert series, f"{query}: no series for {text!r}"
    if query.kind == "variable":
        return
    expected = ["time"] + g.select_columns(query.text)
    tags = set(g.group_by_tags(query.text))
    for s in series:
        assert s["columns"] == expected, f"{query}: columns {s['columns']} != {expected}"
        assert set(s.get("tags", {})) == tags, f"{query}: tags {s.get('tags')} != {tags}"
        # InfluxDB groups by a tag that does not exist with the value "": a misspelt tag lands here
        assert all(s["tags"][t] != "" for t in tags), f"{query}: empty tag value in {s['tags']}"
    for ci, col in enumerate(expected[1:], start=1):
        assert any(row[ci] is not None for s in series for row in s["values"]), \
            f"{query}: column {col!r} is null everywhere for {text!r}"


# ------------------------------------------------------------------------ tests
def test_synthetic_data_covers_the_schema(influx):
    answer = influx.query(DB, "SHOW MEASUREMENTS")
    names = {row[0] for row in answer["results"][0]["series"][0]["values"]}
    assert names == set(g.SCHEMA)
    for measurement, (tags, fields) in g.SCHEMA.items():
        keys = influx.query(DB, f'SHOW FIELD KEYS FROM "{measurement}"')
        assert {row[0] for row in keys["results"][0]["series"][0]["values"]} == fields, measurement
        tkeys = influx.query(DB, f'SHOW TAG KEYS FROM "{measurement}"')
        assert {row[0] for row in tkeys["results"][0]["series"][0]["values"]} == tags | g.COMMON_TAGS, measurement


@pytest.mark.parametrize("run", RUNS, ids=[r["run_id"] for r in RUNS])
def test_live_dashboard_queries_answer_for_each_run(influx, run):
    dashboard = _dashboard("letrade-live")
    variables = resolve_variables(influx, dashboard, {"profile": [run["profile"]], "run_id": [run["run_id"]]})
    assert variables["worker"] == sorted(run["workers"] + run["extra"])
    queries = [q for q in g.iter_queries(dashboard) if q.kind != "variable"]
    assert len(queries) >= 20
    for q in queries:
        check_query(influx, q, variables)


def test_live_dashboard_defaults_pick_the_newest_run_of_the_first_profile(influx):
    dashboard = _dashboard("letrade-live")
    variables = resolve_variables(influx, dashboard, {})
    assert variables["profile"] == ["ci-gate"]
    assert variables["run_id"] == ["20261124T084000Z-ci-gate"]
    smoke = resolve_variables(influx, dashboard, {"profile": ["smoke"]})
    assert smoke["run_id"] == ["20261124T082000Z-smoke"]     # sorted descending: newest first


def test_live_dashboard_with_one_worker_selected(influx):
    dashboard = _dashboard("letrade-live")
    variables = resolve_variables(influx, dashboard, {"profile": ["smoke"], "run_id": [RUNS[0]["run_id"]],
                                                      "worker": ["worker-2"]})
    for q in g.iter_queries(dashboard):
        if q.kind != "target" or '"worker"' not in q.text:
            continue
        if any(m in g.measurements_of(q.text) for m in ("request", "ws_lag", "pacing", "users", "sink", "orders",
                                                          "generator")):
            check_query(influx, q, variables)


@pytest.mark.parametrize("choice", [
    {},                                                                   # everything (All)
    {"profile": ["smoke"], "env": ["sim"], "criterion": ["request p(95)<200"]},   # regex specials in a value
    {"profile": ["smoke", "ci-gate"], "env": ["sim", "testnet"],
     "criterion": ["http_429 count<=0", "request success_rate>99.5%"]},
], ids=["all", "one-each", "several"])
def test_trends_dashboard_queries_answer(influx, choice):
    dashboard = _dashboard("letrade-trends")
    variables = resolve_variables(influx, dashboard, choice)
    assert len(variables["criterion"]) == len(choice.get("criterion", CRITERIA))
    queries = [q for q in g.iter_queries(dashboard) if q.kind != "variable"]
    assert len(queries) >= 10
    for q in queries:
        check_query(influx, q, variables)


def test_criteria_table_reports_the_gate_verdicts(influx):
    """The live Criteria table returns one row per criterion with its verdict tag and exact values."""
    dashboard = _dashboard("letrade-live")
    target = next(q for q in g.iter_queries(dashboard) if q.kind == "target" and "Criteria (end of run)" in q.where)
    run = RUNS[1]
    answer = influx.query(DB, g.render(target.text, {"run_id": [run["run_id"]]}))
    series = answer["results"][0]["series"]
    got = {s["tags"]["criterion"]: (s["tags"]["verdict"], s["values"][0][1]) for s in series}
    expected = {}
    for label, _metric, threshold, value_of in CRITERIA:
        value = value_of(1)
        ok = value <= threshold if "<" in label else value >= threshold
        expected[label] = ("pass" if ok else "fail", value)
    assert got == expected


def test_requests_per_second_is_requests_per_bucket_divided_by_bucket_seconds(influx):
    """rps = sum(count) / ($__interval_ms / 1000): with 10 s buckets, the sum of the two 5 s points."""
    dashboard = _dashboard("letrade-live")
    target = next(q for q in g.iter_queries(dashboard) if q.kind == "target" and "Requests/s per endpoint" in q.where)
    run = RUNS[2]   # one process: every bucket of 10 s holds exactly two 5 s points per status
    variables = resolve_variables(influx, dashboard, {"profile": [run["profile"]], "run_id": [run["run_id"]]})
    rps = influx.query(DB, g.render(target.text, variables))
    raw = influx.query(DB, g.render(
        'SELECT sum("count") FROM "request" WHERE $timeFilter AND "run_id" =~ /^$run_id$/ '
        'GROUP BY time($__interval), "request_type", "name" fill(null)', variables))
    by_name = {(s["tags"]["request_type"], s["tags"]["name"]): s["values"] for s in raw["results"][0]["series"]}
    checked = 0
    for s in rps["results"][0]["series"]:
        for (t, value), (t2, total) in zip(s["values"], by_name[(s["tags"]["request_type"], s["tags"]["name"])]):
            assert t == t2
            if total is not None:
                assert value == pytest.approx(total / 10.0)
                checked += 1
    assert checked > 50


def _target(dashboard: dict, title: str, ref: str = "A") -> g.Query:
    return next(q for q in g.iter_queries(dashboard) if q.kind == "target" and f"{title!r} {ref}" in q.where)


def test_threshold_lines_carry_the_runs_criteria(influx):
    """Each latency panel's threshold query answers the run's own threshold for that aggregation."""
    dashboard = _dashboard("letrade-live")
    variables = resolve_variables(influx, dashboard, {"profile": ["smoke"], "run_id": [RUNS[1]["run_id"]]})
    expected = {"Mean response time per endpoint": 100.0,
                "Response time p50 per endpoint (worst worker)": 80.0,
                "Response time p95 per endpoint (worst worker)": 200.0,
                "Response time p99 per endpoint (worst worker)": 400.0,
                "WS lag p50 / p99 per stream (worst worker)": 50.0}
    for title, threshold in expected.items():
        answer = influx.query(DB, g.render(_target(dashboard, title, "B").text, variables))
        [series] = answer["results"][0]["series"]
        assert [row[1] for row in series["values"]] == [threshold], title


def test_latency_series_never_mix_request_types(influx):
    """One name under two request types (GET and WSAPI "GET /api/v3/order") stays two series."""
    dashboard = _dashboard("letrade-live")
    variables = resolve_variables(influx, dashboard, {"profile": ["ci-gate"]})
    answer = influx.query(DB, g.render(_target(dashboard, "Response time p95 per endpoint (worst worker)").text,
                                       variables))
    keys = {(s["tags"]["request_type"], s["tags"]["name"]) for s in answer["results"][0]["series"]}
    assert {("GET", "GET /api/v3/order"), ("WSAPI", "GET /api/v3/order")} <= keys
    mean = influx.query(DB, g.render(_target(dashboard, "Mean response time per request type").text, variables))
    assert {s["tags"]["request_type"] for s in mean["results"][0]["series"]} == {r for r, _ in ENDPOINTS}


def test_endpoint_and_stream_variables_narrow_the_panels(influx):
    dashboard = _dashboard("letrade-live")
    variables = resolve_variables(influx, dashboard, {"profile": ["ci-gate"], "request_type": ["GET"],
                                                      "endpoint": ["GET /api/v3/depth"],
                                                      "stream": ["ethusdt@aggTrade"]})
    assert variables["endpoint"] == ["GET /api/v3/depth"]
    p95 = influx.query(DB, g.render(_target(dashboard, "Response time p95 per endpoint (worst worker)").text,
                                    variables))
    assert [s["tags"] for s in p95["results"][0]["series"]] == [{"request_type": "GET",
                                                                 "name": "GET /api/v3/depth"}]
    lag = influx.query(DB, g.render(_target(dashboard, "WS lag p50 / p99 per stream (worst worker)").text, variables))
    assert [s["tags"] for s in lag["results"][0]["series"]] == [{"stream": "ethusdt@aggTrade"}]


def test_order_panels_count_the_ledger_outcomes(influx):
    dashboard = _dashboard("letrade-live")
    run = RUNS[2]
    variables = resolve_variables(influx, dashboard, {"profile": [run["profile"]], "run_id": [run["run_id"]]})
    answer = influx.query(DB, g.render(_target(dashboard, "Orders").text, variables))
    got = {s["tags"]["outcome"]: s["values"][0][1] for s in answer["results"][0]["series"]}
    n = RUN_MINUTES * 60_000 // STEP_MS
    want: dict[str, int] = {}
    for outcome, _source, count_of in ORDERS:
        if outcome in ("sent", "placed", "filled", "rejected", "blocked", "refused"):
            want[outcome] = want.get(outcome, 0) + sum(count_of(k) for k in range(1, n + 1))
    assert got == want


def test_trends_read_the_merged_per_run_percentiles(influx):
    """One point per run and endpoint: the run's merged p95, not a maximum of interval p95s."""
    dashboard = _dashboard("letrade-trends")
    variables = resolve_variables(influx, dashboard, {"endpoint": ["GET /api/v3/depth"], "request_type": ["GET"]})
    answer = influx.query(DB, g.render(_target(dashboard, "Response time p95 per endpoint (per run)").text,
                                       variables))
    [series] = answer["results"][0]["series"]
    assert [row[1] for row in series["values"]] == [36.0 + 5 * ri for ri in range(len(RUNS))]
