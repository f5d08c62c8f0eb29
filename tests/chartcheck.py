"""Reading the charts of the HTML report (and the web UI's Charts page) in headless Chromium.

:func:`chart_state` asks every chart container for its ECharts instance
(``echarts.getInstanceByDom``) and counts each series' points that carry a value; it also lists the
notes shown in place of absent charts and the resources the page fetched (the Resource Timing API
records every request a page makes: a self-contained report makes none).
"""
from __future__ import annotations

import time

#: The chart kinds every report of a normal run draws (a spec id is the kind or ``kind-<n>``).
KINDS = ("latency", "ws-lag", "throughput", "weight", "users", "generator", "orders")

CHART_STATE_JS = """
var charts = [];
document.querySelectorAll('.letrade-chart').forEach(function (el) {
  var c = window.echarts && window.echarts.getInstanceByDom(el);
  var o = c ? c.getOption() : null;
  charts.push({id: el.getAttribute('data-chart'), series: o ? o.series.map(function (s) {
    return {name: s.name, points: (s.data || []).filter(function (p) { return p && p[1] != null; }).length};
  }) : null});
});
var notes = [];
document.querySelectorAll('.letrade-note').forEach(function (n) { notes.push(n.parentNode.id + ': ' + n.textContent); });
return {charts: charts, notes: notes, echarts: !!window.echarts,
        resources: performance.getEntriesByType('resource').map(function (r) { return r.name; })};
"""


def chart_state(driver, want: int = 1, timeout: float = 5.0) -> dict:
    """The page's charts once at least ``want`` are drawn (or whatever is there after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        state = driver.execute_script(CHART_STATE_JS)
        if len(state["charts"]) >= want or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def kind(chart_id: str) -> str:
    head, _, tail = chart_id.rpartition("-")
    return head if tail.isdigit() else chart_id


def severe(driver) -> list[dict]:
    """The browser console's errors (a missing favicon is not the page's)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE" and "favicon" not in e["message"]]


def assert_every_chart_has_data(state: dict) -> None:
    for chart in state["charts"]:
        assert chart["series"], chart
        for s in chart["series"]:
            assert s["points"] > 0, (chart["id"], s)
