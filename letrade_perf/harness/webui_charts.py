"""The live "Run charts" tab in Locust's web UI: the report's charts, drawn from the running gate.

Routes on the web UI's own Flask app (under ``--web-base-path`` and behind ``--web-login`` like
Locust's own; ``Cache-Control: no-store``):

==================================  ==========================================================
``GET /letrade/charts``             a page with the charts; it polls the JSON every 3 s
``GET /letrade/charts.json``        ``{"verdict", "elapsed_s", "charts": [spec, ...]}`` — the
                                    specs of :func:`letrade_perf.reports.charts.chart_specs`
                                    built from the live state (:func:`live_summary`)
``GET /letrade/charts.js``          the chart script the HTML report inlines (one builder for both)
``GET /letrade/echarts.min.js``     the vendored Apache ECharts (no CDN: the UI works offline)
==================================  ==========================================================

The tab itself uses the web UI's extension mechanism like the Criteria and Operations tabs: a
one-row table (a link to the page) travels in ``/stats/requests``, and a small script the index
page loads (``/letrade/charts-tab.js``) shows the page in a frame above that table while the tab
is selected.

Flask is imported only in :func:`install_charts_tab` (inside a Locust process).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..reports import charts
from .webui import STATS_ENDPOINT, _merge_list, index_with_script, json_safe, stats_with_rows

log = logging.getLogger("letrade_perf.harness.webui_charts")

#: Not "charts": Locust's own Charts tab (its RPS / response-time / users charts) has that key.
TAB_KEY = "runcharts"
TAB_TITLE = "Run charts"
PREFIX = "/letrade"
POLL_MS = 3000
"""How often the page asks for new chart data (the gate evaluates every few seconds)."""


def live_summary(lgate: Any) -> dict[str, Any]:
    """The parts of a ``summary.json`` the charts read, from a running
    :class:`~letrade_perf.harness.gate.LocustGate` (its criteria gate and achieved-plan tracker)."""
    gate = lgate.gate
    snap = gate.snapshot()
    timeline = getattr(gate, "generator", None)     # the generator's self-monitoring (GeneratorTimeline)
    generator = timeline.to_summary(gate.started_at) if timeline is not None else None
    return {"verdict": snap.get("verdict"), "elapsed_s": snap.get("elapsed_s"), "criteria": snap.get("criteria") or [],
            "intervals": gate.intervals.to_summary(gate.started_at),
            "achieved": {"timeline": lgate.achieved.timeline()}, "pacing": None,
            "generator": generator if isinstance(generator, dict) else None}


def charts_payload(summary: dict[str, Any]) -> dict[str, Any]:
    """The ``/letrade/charts.json`` answer for a (live) summary."""
    return json_safe({"verdict": summary.get("verdict"), "elapsed_s": summary.get("elapsed_s"),
                      "charts": charts.chart_specs(summary)})


def tab_template_args() -> dict[str, Any]:
    """The ``template_args`` entries that declare the tab."""
    return {"extended_tabs": [{"title": TAB_TITLE, "key": TAB_KEY}],
            "extended_tables": [{"key": TAB_KEY, "structure": [{"key": "charts", "title": "Charts"},
                                                               {"key": "note", "title": "Note"}]}]}


TAB_ROWS = [{"charts": "live charts: ./letrade/charts", "note": "shown above while this tab is selected"}]

_TAB_JS = r"""
(function () {
  function tick() {
    var shown = new URLSearchParams(window.location.search).get("tab") === "runcharts";
    var have = document.getElementById("letrade-charts-frame");
    if (!shown) { if (have) { have.remove(); } return; }
    if (have) { return; }
    var table = document.querySelector("table");
    var holder = table && (table.closest(".MuiTableContainer-root") || table);
    if (!holder || !holder.parentNode) { return; }
    var f = document.createElement("iframe");
    f.id = "letrade-charts-frame";
    f.src = "./letrade/charts";
    f.title = "letrade-perf charts";
    f.style.cssText = "width:100%;height:80vh;border:0;margin:8px 0;background:#fff;";
    holder.parentNode.insertBefore(f, holder);
  }
  setInterval(tick, 500);
})();
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>letrade-perf charts</title>
<link rel="icon" href="data:,">
<style>body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#1f2328;background:#fff}
#status{color:#6e7781}.letrade-chart-section h3{font-size:14px;margin:18px 0 4px}
.letrade-note{color:#6e7781;font-style:italic}.letrade-chart{border:1px solid #d0d7de;border-radius:4px}</style>
</head><body>
<div id="status">loading ...</div>
<div id="letrade-charts"></div>
<script src="./echarts.min.js"></script>
<script src="./charts.js"></script>
<script>
(function () {
  function refresh() {
    fetch("./charts.json", {credentials: "same-origin", cache: "no-store"}).then(function (r) { return r.json(); })
      .then(function (d) {
        if (d.error) { document.getElementById("status").textContent = d.error; return; }
        document.getElementById("status").textContent = "verdict so far: " + String(d.verdict).toUpperCase() +
          " · " + Math.round(d.elapsed_s || 0) + " s · updated every %(poll_s)s s";
        letradeCharts.render("letrade-charts", d.charts);
      }).catch(function (e) { document.getElementById("status").textContent = "no data: " + e; });
  }
  refresh(); setInterval(refresh, %(poll_ms)d);
})();
</script></body></html>
""" % {"poll_ms": POLL_MS, "poll_s": f"{POLL_MS / 1000:g}"}


# -- installation (runs inside a Locust process) -------------------------------------------------
def install_charts_tab(environment: Any, source: Callable[[], dict[str, Any]]) -> bool:
    """Add the Charts routes and tab to Locust's web UI (False without a web UI). ``source``
    returns the live summary (:func:`live_summary`). Call it from an ``init`` listener, like
    :func:`~letrade_perf.harness.webui.install_criteria_tab`; a second call replaces ``source``."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return False
    if getattr(web_ui, "_letrade_charts", None) is not None:
        web_ui._letrade_charts["source"] = source
        return True
    holder: dict[str, Any] = {"source": source, "last_error": None}
    web_ui._letrade_charts = holder

    from flask import Blueprint, Response, jsonify, request

    app = web_ui.app
    opts = getattr(environment, "parsed_options", None)
    base_path = (getattr(opts, "web_base_path", None) or "").rstrip("/") or None
    protect = getattr(web_ui, "auth_required_if_enabled", None) or (lambda f: f)
    blueprint = Blueprint("letrade_charts", __name__, url_prefix=base_path)
    no_store = {"Cache-Control": "no-store"}

    @blueprint.route(PREFIX + "/charts")
    @protect
    def letrade_charts_page():
        return Response(PAGE, mimetype="text/html", headers=no_store)

    @blueprint.route(PREFIX + "/charts.json")
    @protect
    def letrade_charts_json():
        try:
            payload, status = charts_payload(holder["source"]()), 200
            holder["last_error"] = None
        except Exception as e:     # the UI keeps working when the live state misbehaves
            msg = f"charts failed: {type(e).__name__}: {e}"
            if msg != holder["last_error"]:
                log.warning("%s", msg, exc_info=True)
                holder["last_error"] = msg
            payload, status = {"error": msg}, 500
        resp = jsonify(payload)
        resp.status_code = status
        resp.headers.update(no_store)
        return resp

    @blueprint.route(PREFIX + "/charts.js")
    def letrade_charts_js():
        return Response(charts.charts_js(), mimetype="application/javascript", headers=no_store)

    @blueprint.route(PREFIX + "/charts-tab.js")
    def letrade_charts_tab_js():
        return Response(_TAB_JS, mimetype="application/javascript", headers=no_store)

    @blueprint.route(PREFIX + "/echarts.min.js")
    def letrade_echarts_js():
        # the same bytes for the whole life of the package: the browser may keep them
        return Response(charts.echarts_js(), mimetype="application/javascript",
                        headers={"Cache-Control": "max-age=3600"})

    app.register_blueprint(blueprint)

    @app.after_request
    def add_charts(response):
        endpoint = request.endpoint
        if endpoint == STATS_ENDPOINT and response.status_code == 200 and response.is_json:
            return stats_with_rows(app, response, TAB_KEY, lambda: TAB_ROWS)
        if endpoint == "locust.index" and response.status_code == 200 and response.mimetype == "text/html":
            # a relative URL: works under --web-base-path
            return index_with_script(response, '<script src="./letrade/charts-tab.js"></script>')
        return response

    args = tab_template_args()
    for key in ("extended_tabs", "extended_tables"):
        web_ui.template_args[key] = _merge_list(web_ui.template_args.get(key), args[key], "key")
    log.debug("charts tab installed (routes under %s%s)", base_path or "", PREFIX)
    return True
