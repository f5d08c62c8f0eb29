"""The sink's order and per-run percentile points, without a server (a list writer, a fixed clock).

``orders``: the order ledger's outcome counters of each interval become one point per outcome and
source (summed over the snapshots the interval merges, not repeated in the next interval).
``run_percentiles``: at the end, one point per endpoint and stream of ``summary.json`` — the run's
merged percentiles the trends dashboard plots — and no more than ``max_tag_values`` of each.
"""
from __future__ import annotations

from letrade_perf.metrics.recorder import Series, Snapshot
from letrade_perf.metrics.sink import InfluxSink, SinkConfig, run_percentile_points

BASE = {"run_id": "r1", "profile": "p", "env": "sim", "worker": "local"}


def _sink(lines: list[str], now: list[float]) -> InfluxSink:
    return InfluxSink(SinkConfig(url="http://127.0.0.1:1", interval_s=5.0), BASE, writer=lines.extend,
                      clock=lambda: now[0], start=False)


def _snap(start: float, end: float, **counts: int) -> Snapshot:
    snap = Snapshot(start, end)
    for key, n in counts.items():
        outcome, source = key.split("__")
        snap.counters[("orders", (("outcome", outcome), ("source", source)))] = n
    snap.counters[("ws_time", (("name", "x"), ("state", "wanted")))] = 900   # not an order: no point
    return snap


def _orders(lines: list[str]) -> list[str]:
    return sorted(ln.rsplit(" ", 1)[0] for ln in lines if ln.startswith("orders,"))


def test_order_outcomes_are_counted_per_interval_outcome_and_source():
    lines: list[str] = []
    now = [1000.0]
    sink = _sink(lines, now)
    sink.add_snapshot(_snap(1000.0, 1002.5, sent__pipeline=3, filled__pipeline=1))
    sink.add_snapshot(_snap(1002.5, 1005.0, sent__pipeline=2, rejected__error_path=4))   # closes the interval
    sink.add_snapshot(_snap(1005.0, 1010.0, blocked__pipeline=1))
    now[0] = 1010.0
    sink.close(1.0)
    tags = "env=sim,outcome={},profile=p,run_id=r1,source={},worker=local"
    assert _orders(lines) == sorted([
        f"orders,{tags.format('sent', 'pipeline')} count=5i",         # two snapshots, one interval
        f"orders,{tags.format('filled', 'pipeline')} count=1i",
        f"orders,{tags.format('rejected', 'error_path')} count=4i",
        f"orders,{tags.format('blocked', 'pipeline')} count=1i",      # the next interval's only outcome
    ])
    stamps = {ln.rsplit(" ", 1)[1] for ln in lines if ",outcome=blocked," in ln}
    assert stamps == {"1010000"}
    assert sink.stats()["written"] == sink.stats()["produced"]


def test_run_percentiles_are_the_summarys_merged_rows_and_bounded():
    summary = {"endpoints": [{"type": "GET", "name": f"GET /e{i}", "count": 10 + i, "failures": 1,
                              "avg_ms": 2.0, "max_ms": 9.0, "p50_ms": 1.5, "p90_ms": 3.0, "p95_ms": 4.0,
                              "p99_ms": 8.0} for i in range(5)]
               + [{"type": "GET", "name": "GET /none", "count": 0, "failures": 0, "avg_ms": None}],
               "streams": [{"stream": "btcusdt@trade", "count": 7, "avg_ms": 3.0, "max_ms": 6.0, "p50_ms": 2.0,
                            "p90_ms": 4.0, "p95_ms": 5.0, "p99_ms": None}]}
    points = run_percentile_points(summary, max_rows=3)
    assert [t for t, _ in points] == [{"metric": "request", "request_type": "GET", "name": f"GET /e{i}"}
                                      for i in range(3)] + [{"metric": "ws_lag", "stream": "btcusdt@trade"}]
    assert points[0][1] == {"count": 10, "failures": 1, "mean": 2.0, "p50": 1.5, "p90": 3.0, "p95": 4.0,
                            "p99": 8.0, "max": 9.0}
    assert points[-1][1] == {"count": 7, "mean": 3.0, "p50": 2.0, "p90": 4.0, "p95": 5.0, "max": 6.0}


def test_run_end_writes_the_run_percentiles_once_without_a_worker_tag():
    lines: list[str] = []
    now = [2000.0]
    sink = _sink(lines, now)
    summary = {"verdict": "pass", "run": {"exit_code": 0, "duration_s": 5.0}, "criteria": [],
               "endpoints": [{"type": "POST", "name": "POST /api/v3/order", "count": 4, "failures": 0,
                              "avg_ms": 5.0, "p95_ms": 7.0}], "streams": []}
    sink.add_run_end(summary, "p on sim", {"version": "0"})
    sink.close(1.0)
    rows = [ln for ln in lines if ln.startswith("run_percentiles,")]
    assert rows == ["run_percentiles,env=sim,metric=request,name=POST\\ /api/v3/order,profile=p,"
                    "request_type=POST,run_id=r1 count=4i,failures=0i,mean=5.0,p95=7.0 2000000"]


def test_the_generators_own_samples_are_generator_points_never_requests():
    """generator_cpu / _rss_mb / _loop_lag (the process watching itself) become one ``generator``
    point per metric and process per interval, and count in no ``request`` figure."""
    lines: list[str] = []
    now = [1000.0]
    sink = _sink(lines, now)
    snap = Snapshot(1000.0, 1005.0)
    for metric, values in (("generator_cpu", (20.0, 40.0)), ("generator_rss_mb", (80.0,)),
                           ("generator_loop_lag", (1.0, 3.0, 2.0))):
        for v in values:
            _record(snap, metric, v)
    _record(snap, "request", 12.0, (("name", "GET /api/v3/depth"), ("status", "ok"), ("type", "GET")))
    sink.add_snapshot(snap)
    now[0] = 1005.0
    sink.close(1.0)
    gen = sorted(ln for ln in lines if ln.startswith("generator,"))
    assert [ln.split(" ", 1)[0] for ln in gen] == [
        f"generator,env=sim,metric={m},process=local,profile=p,run_id=r1,worker=local"
        for m in ("generator_cpu", "generator_loop_lag", "generator_rss_mb")]
    cpu = next(ln for ln in gen if "metric=generator_cpu" in ln)
    assert "count=2i" in cpu and "mean=30" in cpu and "max=40" in cpu
    requests = [ln for ln in lines if ln.startswith("request,")]
    assert len(requests) == 1 and "count=1i" in requests[0] and "generator" not in requests[0]


def _record(snap: Snapshot, metric: str, value: float, tags=(("process", "local"),)) -> None:
    s = snap.series.setdefault((metric, tuple(tags)), Series())
    s.hist.record(value)
