"""The charts of a run: pure data shaping from a summary to chart specifications, and the chart script.

:func:`chart_specs` turns a ``summary.json`` document (or the live state the web UI's Charts page
builds in the same shape) into a list of chart specifications; ``charts.js``
(:data:`CHARTS_JS`) turns each into an Apache ECharts chart. The HTML report
(:mod:`letrade_perf.reports.html`) inlines both with the vendored ``echarts.min.js``; the web UI's
Charts page (:mod:`letrade_perf.harness.webui_charts`) serves the same script and polls the specs.

A spec is ``{"id", "title", "x": [seconds...], "series": [...], "y_name", ...}`` or, when the data
for the chart is absent, ``{"id", "title", "note": "why there is no chart"}`` — never an empty chart.
A series is ``{"name", "data": [numbers or null], "kind": "line"|"bar"|"band", ...}``; a ``band``
series carries ``lower`` and ``upper`` lists (a shaded range, e.g. p50 ± the clock uncertainty).
Thresholds are ``{"name", "value"}`` lines drawn across a chart.

Sources (every one optional): ``intervals`` (per-interval columns, :mod:`letrade_perf.criteria.intervals`),
``achieved.timeline`` (``[t, planned, running]`` per second), ``criteria`` (latency thresholds) and
``generator`` (``{process: {t_s, cpu_percent, rss_mb, loop_lag_p99_ms}}``). Sizes are bounded:
at most :data:`MAX_ENDPOINT_CHARTS` endpoints and :data:`MAX_STREAM_CHARTS` streams get a chart
(the busiest), the rest are named in a note.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from ..metrics.recorder import API_REQUEST_TYPES

MAX_ENDPOINT_CHARTS = 6
"""Endpoints charted at most (the busiest by count; the tables list them all)."""
MAX_STREAM_CHARTS = 4
"""WebSocket streams charted at most (the busiest by count)."""
_HERE = os.path.dirname(os.path.abspath(__file__))
VENDOR_DIR = os.path.join(_HERE, "vendor")
"""The vendored Apache ECharts (``echarts.min.js``, its ``LICENSE`` and ``NOTICE``)."""
ECHARTS_VERSION = "6.1.0"
#: Percentile aggregations a latency criterion draws as a threshold line on the p50/p95/p99 charts.
_LATENCY_AGGS = ("avg", "med", "max", "p(")


@lru_cache(maxsize=1)
def echarts_js() -> str:
    """The vendored ``echarts.min.js`` (Apache-2.0; see ``vendor/LICENSE`` and ``vendor/NOTICE``)."""
    with open(os.path.join(VENDOR_DIR, "echarts.min.js"), encoding="utf-8") as fh:
        return fh.read()


@lru_cache(maxsize=1)
def charts_js() -> str:
    """The chart-building script shared by the report and the web UI (``window.letradeCharts``)."""
    with open(os.path.join(_HERE, "charts.js"), encoding="utf-8") as fh:
        return fh.read()


def script_json(data: Any) -> str:
    """``data`` as JSON safe inside an HTML ``<script>`` element (no ``</script>``, no ``<!--``)."""
    return (json.dumps(data, separators=(",", ":"), allow_nan=False)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _absent(cid: str, title: str, note: str) -> dict[str, Any]:
    return {"id": cid, "title": title, "note": note}


def _num(v: Any) -> float | None:
    return None if v is None or isinstance(v, bool) else float(v)


def _mid(iv: dict[str, Any]) -> list[float]:
    """Each interval's midpoint (seconds from the test start): the x of its figures."""
    return [round(t + d / 2.0, 3) for t, d in zip(iv.get("t_s") or [], iv.get("dur_s") or [])]


def _has_data(values: list[Any]) -> bool:
    return any(v is not None for v in values)


def latency_thresholds(criteria: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    """The latency criteria (unit ms) that judge endpoint ``(kind, name)``: for an API call (REST,
    ccxt, WS API) the ``request`` criteria whose tags it has; for a request-type metric
    (``pipeline``, ``userdata``, ...) the criteria on that metric."""
    out = []
    for c in criteria:
        if c.get("unit") != "ms" or not str(c.get("aggregation", "")).startswith(_LATENCY_AGGS):
            continue
        tags = c.get("tags") or {}
        metric = c.get("metric")
        if metric == "request":
            if kind not in API_REQUEST_TYPES or tags.get("type") not in (None, kind) \
                    or tags.get("name") not in (None, name):
                continue
        elif metric != kind or tags.get("name") not in (None, name):
            continue
        if tags.get("status") not in (None, "ok"):
            continue
        out.append({"name": str(c.get("label")), "value": float(c["threshold"])})
    return out


def _stream_thresholds(criteria: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [{"name": str(c.get("label")), "value": float(c["threshold"])} for c in criteria
            if c.get("metric") == "ws_lag" and c.get("unit") == "ms"
            and (c.get("tags") or {}).get("stream") in (None, stream)]


def _latency(iv: dict[str, Any] | None, criteria: list[dict[str, Any]]) -> list[dict[str, Any]]:
    title = "Response time per endpoint"
    eps = [e for e in (iv or {}).get("endpoints") or [] if sum(e.get("count") or []) > 0]
    if not eps:
        return [_absent("latency", title, "no timed request in any interval (no REST, ccxt or WS API calls)")]
    x = _mid(iv or {})
    eps.sort(key=lambda e: (-sum(e["count"]), e["type"], e["name"]))
    out = []
    for i, e in enumerate(eps[:MAX_ENDPOINT_CHARTS]):
        series = [{"name": p, "kind": "line", "data": [_num(v) for v in (e.get(f"{p}_ms") or [])]}
                  for p in ("p50", "p95", "p99") if _has_data(e.get(f"{p}_ms") or [])]
        label = e["name"] if e["name"].startswith(e["type"] + " ") else f"{e['type']} {e['name']}"
        out.append({"id": f"latency-{i}", "title": f"{label}: response time p50 / p95 / p99",
                    "x": x, "y_name": "ms", "series": series,
                    "thresholds": latency_thresholds(criteria, e["type"], e["name"])})
    rest = len(eps) - MAX_ENDPOINT_CHARTS
    if rest > 0:
        out.append(_absent("latency-more", f"{rest} more endpoint(s)",
                           f"{rest} less busy endpoint(s) are not charted: see the Endpoints table"))
    return out


def _ws_lag(iv: dict[str, Any] | None, criteria: list[dict[str, Any]]) -> list[dict[str, Any]]:
    title = "WebSocket lag per stream"
    streams = [s for s in (iv or {}).get("streams") or [] if sum(s.get("count") or []) > 0]
    if not streams:
        return [_absent("ws-lag", title, "no WebSocket lag measured (no event-time stream in this run)")]
    x = _mid(iv or {})
    streams.sort(key=lambda s: (-sum(s["count"]), s["stream"]))
    out = []
    for i, s in enumerate(streams[:MAX_STREAM_CHARTS]):
        p50 = [_num(v) for v in s.get("p50_ms") or []]
        unc = [_num(v) for v in s.get("unc_ms") or [None] * len(p50)]
        series: list[dict[str, Any]] = []
        if _has_data(unc):
            series.append({"name": "p50 ± uncertainty", "kind": "band",
                           "lower": [None if m is None or u is None else round(m - u, 3) for m, u in zip(p50, unc)],
                           "upper": [None if m is None or u is None else round(m + u, 3) for m, u in zip(p50, unc)]})
        series += [{"name": p, "kind": "line", "data": [_num(v) for v in (s.get(f"{p}_ms") or [])]}
                   for p in ("p50", "p95", "p99") if _has_data(s.get(f"{p}_ms") or [])]
        out.append({"id": f"ws-lag-{i}", "title": f"WS lag {s['stream']}: p50 / p95 / p99 (band: ± clock uncertainty)",
                    "x": x, "y_name": "ms", "series": series, "thresholds": _stream_thresholds(criteria, s["stream"])})
    rest = len(streams) - MAX_STREAM_CHARTS
    if rest > 0:
        out.append(_absent("ws-lag-more", f"{rest} more stream(s)",
                           f"{rest} less busy stream(s) are not charted: see the WebSocket lag table"))
    return out


def _throughput(iv: dict[str, Any] | None) -> list[dict[str, Any]]:
    title = "Throughput and errors by code"
    eps = (iv or {}).get("endpoints") or []
    if not eps:
        return [_absent("throughput", title, "no request in any interval")]
    assert iv is not None
    dur = iv.get("dur_s") or []
    n = len(dur)
    total = [sum((e.get("count") or [0] * n)[i] for e in eps) for i in range(n)]
    series: list[dict[str, Any]] = [{"name": "requests/s", "kind": "line", "axis": 0,
                                     "data": [round(c / d, 3) if d else None for c, d in zip(total, dur)]}]
    errors = dict(iv.get("errors") or {})
    gauges = iv.get("gauges") or {}
    for code in ("r429", "r418"):
        col = gauges.get(code) or []
        if any(col):
            errors[code[1:]] = col
    if not errors:      # an older summary: the failures of every endpoint
        errors = {"failed": [sum((e.get("failures") or [0] * n)[i] for e in eps) for i in range(n)]}
    for code, col in sorted(errors.items()):
        series.append({"name": f"errors {code}", "kind": "bar", "axis": 1, "stack": "errors",
                       "data": [int(v or 0) for v in col]})
    return [{"id": "throughput", "title": title + " (errors per interval; none is a row of zeros)",
             "x": _mid(iv), "y_name": "req/s", "y2_name": "errors", "series": series}]


def _weight(iv: dict[str, Any] | None, pacing: Any) -> list[dict[str, Any]]:
    title = "Request weight used vs budget"
    g = (iv or {}).get("gauges") or {}
    used, budget = g.get("weight_used") or [], g.get("weight_budget") or []
    if not _has_data(budget):
        why = "no pacer budget reported per interval" + (" (this summary predates it)" if pacing else
                                                         " (no REST pacing in this run)")
        return [_absent("weight", title, why)]
    assert iv is not None
    return [{"id": "weight", "title": title + " (the pacers' current window, summed over processes)",
             "x": _mid(iv), "y_name": "weight",
             "series": [{"name": "weight used", "kind": "line", "area": True, "data": [_num(v) for v in used]},
                        {"name": "budget", "kind": "line", "dashed": True, "data": [_num(v) for v in budget]}]}]


def _users(timeline: list[list[float]] | None) -> list[dict[str, Any]]:
    title = "Users planned vs running"
    if not timeline:
        return [_absent("users", title, "no users timeline (the test did not start)")]
    return [{"id": "users", "title": title, "x": [float(p[0]) for p in timeline], "y_name": "users",
             "series": [{"name": "planned", "kind": "line", "step": True, "dashed": True,
                         "data": [float(p[1]) for p in timeline]},
                        {"name": "running", "kind": "line", "step": True, "data": [float(p[2]) for p in timeline]}]}]


def _generator(generator: dict[str, Any] | None) -> list[dict[str, Any]]:
    title = "Load generator CPU and event-loop lag"
    procs = {k: v for k, v in (generator or {}).items() if isinstance(v, dict) and v.get("t_s")}
    if not procs:
        return [_absent("generator", title, "generator CPU and loop lag not measured in this run")]
    series: list[dict[str, Any]] = []
    xs: set[float] = set()
    for g in procs.values():
        xs.update(float(t) for t in g["t_s"])
    x = sorted(xs)
    for proc, g in sorted(procs.items()):
        by_t = {float(t): i for i, t in enumerate(g["t_s"])}
        for key, label, axis in (("cpu_percent", "CPU %", 0), ("loop_lag_p99_ms", "loop lag p99 ms", 1)):
            col = g.get(key) or []
            if _has_data(col):
                series.append({"name": f"{proc} {label}", "kind": "line", "axis": axis,
                               "data": [_num(col[by_t[t]]) if t in by_t and by_t[t] < len(col) else None
                                        for t in x]})
    if not series:
        return [_absent("generator", title, "generator CPU and loop lag not measured in this run")]
    saturated = sum(float(g.get("saturated_s") or 0.0) for g in procs.values())
    if saturated > 0:
        title += f" — saturated {saturated:g} s: latency and lag criteria of that time are inconclusive"
    return [{"id": "generator", "title": title, "x": x, "y_name": "CPU %", "y2_name": "ms", "series": series}]


def _orders(iv: dict[str, Any] | None) -> list[dict[str, Any]]:
    title = "Order flow (sent, filled, rejected)"
    orders = (iv or {}).get("orders") or {}
    if not any(sum(orders.get(o) or []) for o in ("sent", "filled", "rejected")):
        return [_absent("orders", title, "no order sent in this run" if "orders" in (iv or {})
                        else "no per-interval order counts in this summary")]
    assert iv is not None
    return [{"id": "orders", "title": title + " per interval", "x": _mid(iv), "y_name": "orders",
             "series": [{"name": o, "kind": "bar", "data": [int(v or 0) for v in orders.get(o) or []]}
                        for o in ("sent", "filled", "rejected")]}]


def chart_specs(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every chart of the report, in order, for ``summary`` (see the module docstring)."""
    iv = summary.get("intervals")
    criteria = summary.get("criteria") or []
    achieved = summary.get("achieved") or {}
    intervals_note = None if iv else ("no per-interval figures in this summary (the run ended before its first "
                                            "interval, or an older letrade-perf wrote it)")
    out: list[dict[str, Any]] = []
    out += _latency(iv, criteria)
    out += _ws_lag(iv, criteria)
    out += _throughput(iv)
    out += _weight(iv, summary.get("pacing"))
    out += _users(achieved.get("timeline"))
    out += _generator(summary.get("generator"))
    out += _orders(iv)
    if intervals_note:
        for spec in out:
            if "note" in spec and spec["id"] not in ("users", "generator"):
                spec["note"] = intervals_note
    return out


def charted(specs: list[dict[str, Any]]) -> list[str]:
    """The ids of the specs that draw a chart (not a note)."""
    return [s["id"] for s in specs if "note" not in s]
