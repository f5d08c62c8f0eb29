"""Operator controls in Locust's web UI and over HTTP: block / resume new orders, flatten, the
live positions view.

HTTP routes on the web UI's own Flask app (so under ``--web-base-path`` and behind
``--web-login`` like Locust's own; JSON answers, ``Cache-Control: no-store``):

=================================  ===========================================================
``GET  /letrade/orders/state``     ``{"blocked", "reason", "by", "since", "blocked_s", "blocks",
                                   "history", "flatten_available", "positions_available"}``
``POST /letrade/orders/block``     optional JSON ``{"reason": "..."}``; 200 with the state and
                                   ``"changed"`` (false: it was blocked already)
``POST /letrade/orders/resume``    200 with the state and ``"changed"``
``POST /letrade/flatten``          optional JSON ``{"reason": "..."}``; 200 the flatten report;
                                   409 when this run has no flatten; 500 when it failed
``GET  /letrade/positions``        200 ``ctx.positions_view()``; 409 when not available
``GET  /letrade/operations``       a plain page with the buttons and tables (no Locust UI needed)
=================================  ===========================================================

The "Operations" tab of the web UI uses the same extension mechanism as the Criteria tab
(:mod:`.webui`): its rows — the orders' state first, then one per asset of the positions view
(or "positions not available") — travel in ``/stats/requests`` under ``extended_stats``. The
React app renders table cells as text only, so the three buttons come from a small script
(:data:`TAB_SCRIPT`, served at ``/letrade/operations.js``) that the index page loads: while the
Operations tab is shown it puts a button bar above the table; each button POSTs to the routes
above and shows the answer.

Who acted (``by``, in the logs, the audit trail and the reports): ``web UI`` for the buttons,
``http <address>`` for other clients, with the logged-in user when ``--web-login`` is on.

Pure functions (the rows, the state) are testable without Locust; Flask is imported only in
:func:`install_operations_tab`.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

from .webui import DASH, STATS_ENDPOINT, _merge_list, index_with_script, json_safe, stats_with_rows

log = logging.getLogger("letrade_perf.harness.webui_ops")

TAB_KEY = "operations"
TAB_TITLE = "Operations"
PREFIX = "/letrade"
UI_HEADER = "X-Letrade-UI"
"""Sent by the tab's buttons: the action is recorded as the web UI's."""
COLUMNS: tuple[tuple[str, str], ...] = (
    ("item", "Item"),
    ("start", "Start"),
    ("now", "Now"),
    ("delta", "Run delta"),
    ("unexplained", "Unexplained"),
    ("open", "Open orders"),
    ("note", "Note"),
)
NOT_AVAILABLE = "positions not available"


def _text(value: Any) -> str:
    return DASH if value is None or value == "" else str(value)


def orders_state(ctx: Any) -> dict[str, Any]:
    """The block state of ``ctx`` plus which controls this run has (JSON-able)."""
    history = getattr(ctx, "order_blocks", None)
    state = history.report() if history is not None else {"blocked": getattr(ctx, "orders_blocked", None) is not None,
                                                          "reason": getattr(ctx, "orders_blocked", None),
                                                          "by": None, "since": None, "blocked_s": 0.0,
                                                          "blocks": 0, "history": []}
    state["flatten_available"] = callable(getattr(ctx, "flatten", None))
    state["positions_available"] = callable(getattr(ctx, "positions_view", None))
    return state


def positions(ctx: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``(ctx.positions_view(), None)``, or ``(None, why not)``."""
    view_fn = getattr(ctx, "positions_view", None)
    if not callable(view_fn):
        return None, f"{NOT_AVAILABLE} (this version has no positions view)"
    try:
        view = view_fn()
    except Exception as e:   # the UI must keep working
        return None, f"{NOT_AVAILABLE}: {type(e).__name__}: {e}"
    if not isinstance(view, Mapping):
        return None, f"{NOT_AVAILABLE}: unexpected {type(view).__name__}"
    if view.get("enabled") is False:
        return None, f"{NOT_AVAILABLE}: {view.get('reason') or 'disabled'}"
    return dict(view), None


def _clock(epoch: Any) -> str:
    import time
    try:
        return time.strftime("%H:%M:%S", time.localtime(float(epoch)))
    except (TypeError, ValueError):
        return DASH


def state_row(state: Mapping[str, Any]) -> dict[str, str]:
    """The tab's first row: new orders accepted, or blocked since when, by whom, why."""
    if state.get("blocked"):
        note = f"BLOCKED since {_clock(state.get('since'))} by {state.get('by')}: {state.get('reason')}"
    else:
        n = int(state.get("blocks") or 0)
        note = "accepted" + (f" ({n} block(s) so far, {float(state.get('blocked_s') or 0):.1f} s)" if n else "")
    return {"item": "New orders", "start": "", "now": "", "delta": "", "unexplained": "", "open": "", "note": note}


def position_rows(view: Mapping[str, Any] | None, why: str | None) -> list[dict[str, str]]:
    """One row per asset of the positions view (or one saying why there is none)."""
    if view is None:
        return [{"item": "Positions", "start": "", "now": "", "delta": "", "unexplained": "", "open": "",
                 "note": why or NOT_AVAILABLE}]
    assets = view.get("assets") or {}
    rows = []
    for asset, row in (assets.items() if isinstance(assets, Mapping) else ()):
        row = row if isinstance(row, Mapping) else {}
        opened = row.get("open_orders")
        rows.append({"item": str(asset), "start": _text(row.get("start")), "now": _text(row.get("now")),
                     "delta": _text(row.get("delta")), "unexplained": _text(row.get("unexplained")),
                     "open": _text(len(opened) if isinstance(opened, (list, tuple)) else opened),
                     "note": ""})
    if not rows:
        note = str(view.get("problem") or "no balance snapshot yet")
        rows.append({"item": "Positions", "start": "", "now": "", "delta": "", "unexplained": "", "open": "",
                     "note": note})
    return rows


def tab_rows(ctx: Any) -> list[dict[str, str]]:
    """The Operations tab's rows (plain strings: see :mod:`.webui` on ``null`` cells)."""
    view, why = positions(ctx)
    return [state_row(orders_state(ctx))] + position_rows(view, why)


def tab_template_args() -> dict[str, Any]:
    """The ``template_args`` entries that declare the tab."""
    return {"extended_tabs": [{"title": TAB_TITLE, "key": TAB_KEY}],
            "extended_tables": [{"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}]}


def request_reason(payload: Any, default: str) -> str:
    """The ``reason`` of a request's JSON body (bounded), else ``default``."""
    if isinstance(payload, Mapping):
        reason = payload.get("reason")
        if isinstance(reason, str) and reason.strip():
            return " ".join(reason.split())[:200]
    return default


# the button bar and the stand-alone page ------------------------------------------------------
_BAR_JS = r"""
(function () {
  var base = (document.currentScript && document.currentScript.getAttribute("data-base")) || ".";
  function post(path, body) {
    return fetch(base + path, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-Letrade-UI": "1"}, body: JSON.stringify(body || {})})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); });
  }
  function say(text) { var m = document.getElementById("letrade-ops-msg"); if (m) { m.textContent = text; } }
  function act(what) {
    if (what === "block") {
      var reason = window.prompt("Reason for blocking new orders", "operator request");
      if (reason === null) { return; }
      post("/letrade/orders/block", {reason: reason}).then(function (a) {
        say(a[1].changed ? "new orders blocked" : "already blocked"); });
    } else if (what === "resume") {
      post("/letrade/orders/resume").then(function (a) { say(a[1].changed ? "new orders resumed" : "not blocked"); });
    } else if (what === "flatten") {
      if (!window.confirm("Flatten: cancel the run's open orders and trade its position back?")) { return; }
      say("flattening ...");
      post("/letrade/flatten", {reason: "operator request"}).then(function (a) {
        say(a[0] === 200 ? "flatten done: " + (a[1].human || "ok") : "flatten: " + (a[1].error || a[0])); });
    }
  }
  function bar() {
    var d = document.createElement("div");
    d.id = "letrade-ops-bar";
    d.style.cssText = "display:flex;gap:8px;align-items:center;margin:12px 0;";
    [["block", "Block new orders"], ["resume", "Resume"], ["flatten", "Flatten"]].forEach(function (b) {
      var btn = document.createElement("button");
      btn.id = "letrade-" + b[0];
      btn.textContent = b[1];
      btn.style.cssText = "padding:6px 14px;cursor:pointer;";
      btn.onclick = function () { act(b[0]); };
      d.appendChild(btn);
    });
    var m = document.createElement("span");
    m.id = "letrade-ops-msg";
    d.appendChild(m);
    return d;
  }
  window.letradeOps = {act: act};
  function tick() {
    if (document.getElementById("letrade-ops-host")) { return; }   // the stand-alone page has its own bar
    var shown = new URLSearchParams(window.location.search).get("tab") === "operations";
    var have = document.getElementById("letrade-ops-bar");
    if (!shown) { if (have) { have.remove(); } return; }
    if (have) { return; }
    var table = document.querySelector("table");
    var holder = table && (table.closest(".MuiTableContainer-root") || table);
    if (holder && holder.parentNode) { holder.parentNode.insertBefore(bar(), holder); }
  }
  setInterval(tick, 500);
})();
"""
TAB_SCRIPT = _BAR_JS
"""The script the web UI's index page loads (``/letrade/operations.js``)."""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>letrade-perf operations</title>
<link rel="icon" href="data:,">
<style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse;margin-top:12px}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body>
<h2>letrade-perf operations</h2>
<div id="state">…</div>
<div id="letrade-ops-host"></div>
<table id="positions"></table>
<script src="./operations.js" data-base=".."></script>
<script>
(function () {
  var host = document.getElementById("letrade-ops-host");
  host.innerHTML = '<div id="letrade-ops-bar" style="margin:12px 0">' +
    '<button id="letrade-block" onclick="letradeOps.act(\\'block\\')">Block new orders</button> ' +
    '<button id="letrade-resume" onclick="letradeOps.act(\\'resume\\')">Resume</button> ' +
    '<button id="letrade-flatten" onclick="letradeOps.act(\\'flatten\\')">Flatten</button> ' +
    '<span id="letrade-ops-msg"></span></div>';
  function esc(s) { return String(s == null ? "—" : s).replace(/[&<>]/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;"}[c]; }); }
  function refresh() {
    fetch("./orders/state", {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (s) {
      document.getElementById("state").textContent = s.blocked ?
        "New orders BLOCKED by " + s.by + ": " + s.reason : "New orders accepted";
    });
    fetch("./positions", {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (p) {
      var t = document.getElementById("positions");
      if (!p.assets) { t.innerHTML = "<tr><td>" + esc(p.error || "positions not available") + "</td></tr>"; return; }
      var h = "<tr><th>Asset</th><th>Start</th><th>Now</th><th>Run delta</th><th>Unexplained</th><th>Open orders</th></tr>";
      Object.keys(p.assets).forEach(function (a) { var x = p.assets[a];
        h += "<tr><td>" + esc(a) + "</td><td>" + esc(x.start) + "</td><td>" + esc(x.now) + "</td><td>" +
          esc(x.delta) + "</td><td>" + esc(x.unexplained) + "</td><td>" + esc(x.open_orders) + "</td></tr>"; });
      t.innerHTML = h;
    });
  }
  refresh(); setInterval(refresh, 2000);
})();
</script></body></html>
"""


# -- installation (runs inside a Locust process) -------------------------------------------------
def install_operations_tab(environment: Any, ctx: Any) -> bool:
    """Add the routes and the Operations tab to Locust's web UI (False without a web UI).

    Call it from an ``init`` listener, like :func:`~letrade_perf.harness.webui.install_criteria_tab`."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return False
    if getattr(web_ui, "_letrade_operations", None) is not None:
        web_ui._letrade_operations["ctx"] = ctx
        return True
    holder: dict[str, Any] = {"ctx": ctx}
    web_ui._letrade_operations = holder

    from flask import Blueprint, Response, jsonify, request

    app = web_ui.app
    opts = getattr(environment, "parsed_options", None)
    base_path = (getattr(opts, "web_base_path", None) or "").rstrip("/") or None
    protect = getattr(web_ui, "auth_required_if_enabled", None) or (lambda f: f)
    blueprint = Blueprint("letrade_operations", __name__, url_prefix=base_path)

    def answer(payload: Any, status: int = 200) -> Response:
        resp = jsonify(json_safe(payload))
        resp.status_code = status
        resp.headers["Cache-Control"] = "no-store"
        return resp

    def who() -> str:
        by = "web UI" if request.headers.get(UI_HEADER) else f"http {request.remote_addr or '?'}"
        try:
            from flask_login import current_user
            name = getattr(current_user, "id", None) or getattr(current_user, "username", None)
            if getattr(web_ui, "web_login", False) and name:
                by += f" ({name})"
        except Exception:      # flask_login absent or no request context: the address is enough
            pass
        return by

    @blueprint.route(PREFIX + "/orders/state")
    @protect
    def letrade_orders_state():
        return answer(orders_state(holder["ctx"]))

    @blueprint.route(PREFIX + "/orders/block", methods=["POST"])
    @protect
    def letrade_orders_block():
        c = holder["ctx"]
        reason = request_reason(request.get_json(silent=True), "operator request")
        changed = c.block_orders(reason, who())
        return answer(dict(orders_state(c), changed=changed))

    @blueprint.route(PREFIX + "/orders/resume", methods=["POST"])
    @protect
    def letrade_orders_resume():
        c = holder["ctx"]
        changed = c.resume_orders(who())
        return answer(dict(orders_state(c), changed=changed))

    @blueprint.route(PREFIX + "/flatten", methods=["POST"])
    @protect
    def letrade_flatten():
        c = holder["ctx"]
        flatten = getattr(c, "flatten", None)
        if not callable(flatten):
            return answer({"error": "flatten is not available in this run"}, 409)
        reason = request_reason(request.get_json(silent=True), "operator request")
        try:
            report = flatten(reason, who())
        except Exception as e:
            log.exception("flatten failed")
            return answer({"error": f"flatten failed: {type(e).__name__}: {e}"}, 500)
        return answer(report if isinstance(report, dict) else {"report": report})

    @blueprint.route(PREFIX + "/positions")
    @protect
    def letrade_positions():
        view, why = positions(holder["ctx"])
        if view is None:
            return answer({"error": why, "available": False}, 409)
        return answer(view)

    @blueprint.route(PREFIX + "/operations")
    @protect
    def letrade_operations_page():
        return Response(_PAGE, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @blueprint.route(PREFIX + "/operations.js")
    def letrade_operations_js():
        return Response(TAB_SCRIPT, mimetype="application/javascript", headers={"Cache-Control": "no-store"})

    app.register_blueprint(blueprint)

    @app.after_request
    def add_operations(response):
        endpoint = request.endpoint
        if endpoint == STATS_ENDPOINT and response.status_code == 200 and response.is_json:
            return stats_with_rows(app, response, TAB_KEY, lambda: _rows(holder["ctx"]))
        if endpoint == "locust.index" and response.status_code == 200 and response.mimetype == "text/html":
            # a relative URL: works under --web-base-path
            return index_with_script(response, '<script src="./letrade/operations.js" data-base="."></script>')
        return response

    args = tab_template_args()
    for key, field in (("extended_tabs", "key"), ("extended_tables", "key")):
        web_ui.template_args[key] = _merge_list(web_ui.template_args.get(key), args[key], field)
    log.debug("operations tab installed (routes under %s%s)", base_path or "", PREFIX)
    return True


def _rows(ctx: Any) -> list[dict[str, str]]:
    try:
        return tab_rows(ctx)
    except Exception as e:   # never break Locust's own stats
        return [{"item": "Operations", "start": "", "now": "", "delta": "", "unexplained": "", "open": "",
                 "note": f"error: {type(e).__name__}: {e}"}]
