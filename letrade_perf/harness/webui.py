"""The live "Criteria" tab in Locust's web UI, and the ``GET /letrade/criteria`` JSON route.

The tab uses the web UI's own extension mechanism (Locust's ``examples/extend_web_ui.py``), so
it looks and behaves like the built-in tabs:

* ``web_ui.template_args`` gains ``extended_tabs`` (the tab), ``extended_tables`` (its column
  structure) and ``extended_csv_files`` (a "download criteria JSON" link on the Download Data
  tab). ``WebUI.update_template_args`` merges into the existing dict, so they survive every
  page render; the React app reads them from ``window.templateArgs``.
* The rows travel as ``extended_stats: [{"key": "criteria", "data": rows}]`` inside the
  ``/stats/requests`` JSON, added by an ``after_request`` hook. The web UI polls that endpoint
  every 2 s while the run is spawning or running (and once on every page load), so the tab is
  live without a poller of our own.

The React table renders every cell as plain text (a formatter would have to be JavaScript), so
all formatting happens here, in pure functions that unit tests can call without Locust: ratios
as percentages (``99.90 %``), milliseconds with one decimal, counts as integers, ``None`` as
``—``, statuses as ``✔ PASS`` / ``✘ FAIL`` / ``? INCONCLUSIVE``. Cells must never be ``null``:
the web UI's camel-casing walks every object it is given and fails on ``null`` inside rows.

This module imports neither Locust nor Flask at import time (Flask is imported inside
:func:`install_criteria_tab`, which only runs in a Locust process).
"""
from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Callable, Mapping

log = logging.getLogger("letrade_perf.harness.webui")

TAB_KEY = "criteria"
TAB_TITLE = "Criteria"
ROUTE = "/letrade/criteria"
#: The Locust endpoint the web UI polls for live stats (``locust/web.py``: ``request_stats``).
STATS_ENDPOINT = "locust.request_stats"
DASH = "—"

#: (row key, column title). Keys are single lower-case words: the web UI camel-cases row keys
#: and structure keys separately, and plain words come through both unchanged.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("criterion", "Criterion"),
    ("value", "Value"),
    ("threshold", "Threshold"),
    ("samples", "Samples"),
    ("status", "Status"),
    ("gate", "Gate"),
    ("note", "Note"),
)

STATUS_TEXT = {
    "pass": "✔ PASS",
    "fail": "✘ FAIL",
    "inconclusive": "? INCONCLUSIVE",
    "pending": "… PENDING",
    "aborted": "■ ABORTED",
    "incomplete": "◐ INCOMPLETE",
    "interrupted": "■ INTERRUPTED",
    "error": "! ERROR",
}
OVERALL_LABEL = "Overall verdict"
UNIT_SUFFIX = {"ms": " ms", "bps": " bps", "ratio": " %", "count": "", "": ""}


# -- formatting (pure) ---------------------------------------------------------------------------
def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _plain(number: float, max_decimals: int = 3) -> str:
    """``200`` for 200.0, ``0.25`` for 0.25: a threshold as the profile wrote it."""
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.{max_decimals}f}".rstrip("0").rstrip(".")


def format_percent(fraction: float, *, exact: bool = False) -> str:
    """``0.999`` → ``99.90 %``.

    Two decimals, except where rounding would misstate a comparison: a fraction below 1 never
    shows as ``100.00 %`` (``99.9960 %``), and with ``exact`` (thresholds) more decimals are
    used until the number is the one the gate compares with (``0.99995`` → ``99.995 %``).
    """
    pct = fraction * 100.0
    text = f"{pct:.2f}"
    if exact and abs(float(text) - pct) > 1e-9:
        text = _plain(pct, 6)
    elif not exact and fraction < 1.0 and text == "100.00":
        text = f"{math.floor(pct * 1e4) / 1e4:.4f}"
    return f"{text} %"


def format_number(value: Any, unit: str) -> str:
    """A measured value without its unit suffix except for ratios (``99.90 %``); None → ``—``."""
    v = _finite(value)
    if v is None:
        return DASH
    if unit == "ratio":
        return format_percent(v)
    if unit == "ms":
        return f"{v:.1f}"
    if unit == "count":
        return str(int(round(v)))
    if unit == "bps":
        return f"{v:.2f}"
    return _plain(v, 3)


def format_value(value: Any, unit: str) -> str:
    """A measured value with its unit: ``123.4 ms``, ``99.90 %``, ``3``, ``1.25 bps``, ``—``."""
    text = format_number(value, unit)
    if text == DASH or unit == "ratio":
        return text
    return text + UNIT_SUFFIX.get(unit, f" {unit}" if unit else "")


def format_threshold(op: str, threshold: Any, unit: str) -> str:
    """Operator and number: ``< 200 ms``, ``> 99.90 %``, ``== 0``."""
    t = _finite(threshold)
    if t is None:
        return f"{op} {DASH}".strip()
    if unit == "ratio":
        return f"{op} {format_percent(t, exact=True)}"
    return f"{op} {_plain(t, 3)}{UNIT_SUFFIX.get(unit, f' {unit}' if unit else '')}"


def format_status(verdict: Any) -> str:
    """``pass`` → ``✔ PASS``; unknown verdicts are shown upper-cased as they are."""
    key = str(verdict or "").lower()
    return STATUS_TEXT.get(key, str(verdict).upper() if verdict else DASH)


def format_samples(samples: Any) -> str:
    v = _finite(samples)
    return DASH if v is None else str(int(v))


def _elapsed(seconds: Any) -> str:
    s = _finite(seconds)
    if s is None:
        return DASH
    s = int(s)
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def _clock(epoch: Any) -> str:
    e = _finite(epoch)
    return DASH if e is None else time.strftime("%H:%M:%S", time.localtime(e))


def criterion_row(c: Mapping[str, Any]) -> dict[str, str]:
    """One criterion of a snapshot as a row of display strings (no None: see the module doc)."""
    unit = str(c.get("unit") or "")
    notes = []
    if c.get("reason"):
        notes.append(str(c["reason"]))
    if c.get("abort_on_fail"):
        notes.append("aborts the run on fail")
    if c.get("source") == "default":
        notes.append("default criterion")
    label = c.get("label") or f"{c.get('metric', '?')} {c.get('expression', '')}".strip()
    return {
        "criterion": str(label),
        "value": format_value(c.get("value"), unit),
        "threshold": format_threshold(str(c.get("op") or ""), c.get("threshold"), unit),
        "samples": format_samples(c.get("samples")),
        "status": format_status(c.get("verdict")),
        "gate": format_status(c.get("gate")) if c.get("gate") else DASH,
        "note": " · ".join(notes),
    }


def overall_row(snapshot: Mapping[str, Any]) -> dict[str, str]:
    """The first row: the run's verdict, elapsed time and when the gate last evaluated."""
    criteria = snapshot.get("criteria") or []
    counts: dict[str, int] = {}
    for c in criteria:
        v = str(c.get("verdict") or "")
        counts[v] = counts.get(v, 0) + 1
    summary = ", ".join(f"{counts[k]} {k}" for k in ("pass", "fail", "inconclusive") if counts.get(k))
    return {
        "criterion": OVERALL_LABEL,
        "value": f"elapsed {_elapsed(snapshot.get('elapsed_s'))}",
        "threshold": "",
        "samples": f"{len(criteria)} criteria",
        "status": format_status(snapshot.get("verdict")),
        "gate": "",
        "note": "; ".join(x for x in (summary, f"updated {_clock(snapshot.get('updated_at'))}") if x),
    }


def criteria_rows(snapshot: Mapping[str, Any]) -> list[dict[str, str]]:
    """The tab's rows: the overall verdict first, then every criterion in profile order."""
    return [overall_row(snapshot)] + [criterion_row(c) for c in (snapshot.get("criteria") or [])]


def error_rows(message: str) -> list[dict[str, str]]:
    """What the tab shows when ``snapshot()`` raised."""
    return [{"criterion": OVERALL_LABEL, "value": DASH, "threshold": "", "samples": "",
             "status": STATUS_TEXT["error"], "gate": "", "note": message}]


def tab_template_args(csv_href: str = "." + ROUTE) -> dict[str, Any]:
    """The ``template_args`` entries that declare the tab (merged into Locust's own)."""
    return {
        "extended_tabs": [{"title": TAB_TITLE, "key": TAB_KEY}],
        "extended_tables": [{"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}],
        "extended_csv_files": [{"href": csv_href, "title": "Download criteria (JSON)"}],
    }


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None (``NaN`` is not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def merge_extended_stats(payload: dict[str, Any], rows: list[dict[str, str]], key: str = TAB_KEY) -> dict[str, Any]:
    """``payload`` (the ``/stats/requests`` JSON) with ``rows`` under ``extended_stats`` as ``key``.

    Other extensions' entries are kept; ours replaces a previous one with the same key.
    """
    others = [e for e in (payload.get("extended_stats") or []) if isinstance(e, dict) and e.get("key") != key]
    return {**payload, "extended_stats": others + [{"key": key, "data": rows}]}


def stats_with_rows(app: Any, response: Any, key: str, rows: Callable[[], list[dict[str, str]]]) -> Any:
    """Locust's ``/stats/requests`` response with a tab's ``rows()`` under ``extended_stats`` as
    ``key``: a new response (Locust memoizes its own for up to 2 s, so it is never mutated); the
    response unchanged when it is not a JSON object."""
    try:
        payload = json.loads(response.get_data(as_text=True))
    except ValueError:
        return response
    if not isinstance(payload, dict):
        return response
    new = app.response_class(json.dumps(merge_extended_stats(payload, rows(), key)), status=response.status_code,
                             mimetype="application/json")
    for name, value in response.headers.items():
        if name.lower() not in ("content-length", "content-type"):
            new.headers.add(name, value)
    return new


def index_with_script(response: Any, tag: str) -> Any:
    """Locust's index page with a tab's ``<script>`` ``tag`` before ``</body>`` (once)."""
    html = response.get_data(as_text=True)
    if tag in html or "</body>" not in html:
        return response
    response.set_data(html.replace("</body>", tag + "\n</body>", 1))
    return response


def _merge_list(existing: Any, additions: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    keep = [e for e in (existing or []) if not (isinstance(e, dict) and e.get(key) in {a[key] for a in additions})]
    return keep + additions


# -- installation (runs inside a Locust process) -------------------------------------------------
def install_criteria_tab(environment, snapshot: Callable[[], dict]) -> bool:
    """Add a 'Criteria' tab to Locust's web UI (no-op returning False when environment.web_ui is None).

    Call it from an ``init`` listener: Locust creates the web UI (``delayed_start=True``) before
    firing ``init`` and starts serving only afterwards, so routes can still be added. Calling it
    again on the same web UI only replaces the snapshot function.

    Adds ``GET /letrade/criteria`` (``snapshot()`` as JSON, behind ``--web-login`` when enabled,
    under ``--web-base-path`` when set) and feeds the tab through ``/stats/requests``.
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return False
    state = getattr(web_ui, "_letrade_criteria", None)
    if state is not None:
        state["snapshot"] = snapshot
        return True
    state = {"snapshot": snapshot, "last_error": None}
    web_ui._letrade_criteria = state

    from flask import Blueprint, jsonify, request

    app = web_ui.app
    opts = getattr(environment, "parsed_options", None)
    base_path = (getattr(opts, "web_base_path", None) or "").rstrip("/") or None
    protect = getattr(web_ui, "auth_required_if_enabled", None) or (lambda f: f)

    def take() -> tuple[dict | None, str | None]:
        try:
            snap = state["snapshot"]()
        except Exception as e:  # the UI must keep working when the gate misbehaves
            msg = f"criteria snapshot failed: {type(e).__name__}: {e}"
            if msg != state["last_error"]:
                log.warning("%s", msg, exc_info=True)
                state["last_error"] = msg
            return None, msg
        state["last_error"] = None
        return snap, None

    blueprint = Blueprint("letrade_criteria", __name__, url_prefix=base_path)

    @blueprint.route(ROUTE)
    @protect
    def letrade_criteria():
        snap, err = take()
        if snap is None:
            resp = jsonify({"error": err})
            resp.status_code = 500
        else:
            resp = jsonify(json_safe(snap))
        resp.headers["Cache-Control"] = "no-store"
        return resp

    app.register_blueprint(blueprint)

    @app.after_request
    def add_criteria_to_stats(response):
        # /stats/requests is memoized by Locust (the same Response object for up to 2 s), so
        # build a new response instead of mutating the cached one.
        if request.endpoint != STATS_ENDPOINT or response.status_code != 200 or not response.is_json:
            return response

        def rows() -> list[dict[str, str]]:
            snap, err = take()
            return criteria_rows(snap) if snap is not None else error_rows(err or "")
        return stats_with_rows(app, response, TAB_KEY, rows)

    args = tab_template_args()
    web_ui.template_args["extended_tabs"] = _merge_list(web_ui.template_args.get("extended_tabs"),
                                                        args["extended_tabs"], "key")
    web_ui.template_args["extended_tables"] = _merge_list(web_ui.template_args.get("extended_tables"),
                                                          args["extended_tables"], "key")
    web_ui.template_args["extended_csv_files"] = _merge_list(web_ui.template_args.get("extended_csv_files"),
                                                             args["extended_csv_files"], "href")
    log.debug("criteria tab installed (route %s%s)", base_path or "", ROUTE)
    return True
