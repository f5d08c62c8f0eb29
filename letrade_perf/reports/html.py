"""``summary.html``: the run report as one self-contained HTML file (works offline, no external file).

The verdict first (coloured, with the ending, its reason and the exit code) and the planned vs
achieved line, then the criteria with their thresholds, then the charts over time
(:mod:`letrade_perf.reports.charts`: response time per endpoint with threshold lines, WS lag with
its uncertainty band, throughput and errors by code, weight used vs budget, users planned vs
running, generator CPU and loop lag, order flow), then the tables: planned vs achieved, endpoints,
WebSocket lag, fund safety and PnL. The vendored Apache ECharts and the chart script are inlined
in ``<script>`` elements and the chart data as JSON, so the file opens from disk with no network;
without JavaScript the tables (and an SVG of the users) still read. Every text from the run is
HTML-escaped; the JSON is escaped for a script element.
"""
from __future__ import annotations

from html import escape

from . import charts, fmt
from .console import planned_vs_achieved_lines

_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "incomplete": "#bc4c00", "aborted": "#8250df",
            "interrupted": "#6e7781", "error": "#cf222e"}

_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px}h2{font-size:16px;margin-top:24px}
.verdict{color:#fff;padding:12px 16px;border-radius:6px;font-size:18px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
td.n{text-align:right}tr.fail td{background:#ffebe9}.muted{color:#6e7781}
svg{border:1px solid #d0d7de;background:#fff}
.plan{margin:8px 0 0;font-size:15px}
.letrade-chart-section h3{font-size:14px;margin:18px 0 4px}.letrade-note{color:#6e7781;font-style:italic}
.letrade-chart{border:1px solid #d0d7de;border-radius:4px}"""


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None,
           numeric: frozenset[int] = frozenset()) -> str:
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f'<td{" class=n" if j in numeric else ""}>{escape(str(c))}</td>'
                                           for j, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def users_chart(timeline: list[list[float]], width: int = 640, height: int = 160) -> str:
    """Planned (dashed) and running (solid) users over the test as an inline SVG, or ""."""
    if len(timeline) < 2:
        return ""
    t_max = max(p[0] for p in timeline) or 1.0
    u_max = max(max(p[1], p[2]) for p in timeline) or 1.0
    pad = 24

    def xy(t: float, u: float) -> str:
        return f"{pad + (width - 2 * pad) * t / t_max:.1f},{height - pad - (height - 2 * pad) * u / u_max:.1f}"

    planned = " ".join(xy(p[0], p[1]) for p in timeline)
    running = " ".join(xy(p[0], p[2]) for p in timeline)
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="users planned and running">'
            f'<polyline fill="none" stroke="#6e7781" stroke-dasharray="4 3" points="{planned}"/>'
            f'<polyline fill="none" stroke="#0969da" stroke-width="2" points="{running}"/>'
            f'<text x="{pad}" y="14" font-size="11">users (max {u_max:g}): planned dashed, running solid; '
            f'{t_max:g} s</text></svg>')


def _money(summary: dict) -> list[str]:
    """The "Fund safety and PnL" section (unexplained deltas highlighted)."""
    from . import funds

    money = summary.get("money")
    if not money:
        return []
    unexplained = funds.unexplained_rows(money)
    out = ["<h2>Fund safety and PnL</h2>", f"<p>{escape(funds.funds_headline(money))}</p>"]
    if unexplained:
        out.append(_table(["Asset", "Start", "End", "Change", "Explained", "Unexplained"], unexplained,
                          classes=["fail"] * len(unexplained), numeric=frozenset(range(1, 6))))
    balances = funds.balance_rows(money)
    if balances:
        out.append(_table(funds.BALANCE_HEADER, balances, numeric=frozenset(range(1, 6))))
    pnl = funds.pnl_rows(money)
    if pnl:
        out.append(f'<p class="muted">PnL in {escape(str(money.get("valuation_asset") or "?"))}: average cost; '
                   "return = realised PnL ÷ quote value bought.</p>")
        out.append(_table(funds.PNL_HEADER, pnl, numeric=frozenset({1, 2, 3, 5, 6, 7})))
    return out


def _criteria(criteria: list[dict]) -> str:
    return _table(["Criterion", "Value", "Threshold", "Samples", "Verdict", "Note"],
                  [[c["label"], fmt.value(c.get("value"), c.get("unit", "")),
                    fmt.threshold(c["op"], c["threshold"], c.get("unit", "")), c.get("samples", ""),
                    c["verdict"] + (" (fails the gate)" if c["gate"] == "fail" and c["verdict"] != "fail" else ""),
                    c.get("reason") or ""] for c in criteria],
                  classes=["fail" if c["gate"] == "fail" else "" for c in criteria], numeric=frozenset({1, 3}))


def _charts(summary: dict) -> list[str]:
    """The charts section: a container the inlined script fills, with the charts' titles and notes
    readable without JavaScript (and the users as an SVG)."""
    specs = charts.chart_specs(summary)
    fallback = "".join(f"<li>{escape(s['title'])}" + (f": {escape(s['note'])}" if "note" in s else "") + "</li>"
                       for s in specs)
    svg = users_chart((summary.get("achieved") or {}).get("timeline") or [])
    return ["<h2>Charts over time</h2>",
            f'<div id="letrade-charts"><noscript><p class="muted">The charts need JavaScript; the tables below '
            f"have the figures.</p><ul>{fallback}</ul>{svg}</noscript></div>",
            f'<script id="letrade-chart-data" type="application/json">{charts.script_json(specs)}</script>']


def _scripts() -> str:
    """ECharts (vendored, Apache-2.0) and the chart script, inlined, then the call that draws the charts."""
    return (f"<script>{charts.echarts_js()}</script>\n<script>{charts.charts_js()}</script>\n"
            "<script>letradeCharts.render(\"letrade-charts\", "
            "JSON.parse(document.getElementById(\"letrade-chart-data\").textContent));</script>")


def render_html(summary: dict) -> str:
    """The HTML page for ``summary``."""
    run = summary["run"]
    verdict = str(summary.get("verdict", "fail"))
    ending = summary.get("ending") or "?"
    reason = run.get("ending_reason") or run.get("aborted")
    head = f"{verdict.upper()} — ending {ending}" + (f": {reason}" if reason else "") + f" — exit code {run.get('exit_code')}"
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>letrade-perf {escape(run['profile'])} "
             f"{escape(verdict.upper())}</title><link rel=icon href=\"data:,\"><style>{_STYLE}</style></head><body>",
             f"<h1>letrade-perf {escape(run['profile'])} — run {escape(run['run_id'])}</h1>",
             f'<div class="verdict" style="background:{_COLOURS.get(verdict, "#6e7781")}">{escape(head)}</div>']
    achieved = summary.get("achieved")
    if achieved:
        parts.append(f'<p class="plan">{escape(planned_vs_achieved_lines(achieved)[0])}</p>')
    parts.append(f'<p class="muted">env {escape(run["env"])} · {escape(str(run.get("host") or ""))} · '
                 f'{fmt.number(run.get("duration_s"))} s · started {escape(str(run.get("started_at")))}'
                 + (f" · log {escape(run['log'])}" if run.get("log") else "") + "</p>")
    criteria = summary.get("criteria") or []
    if criteria:
        parts.append("<h2>Criteria</h2>")
        parts.append(_criteria(criteria))
    parts += _charts(summary)
    if achieved:
        parts.append("<h2>Planned vs achieved</h2>")
        parts.append(_table(["", "Planned", "Achieved"], fmt.plan_rows(achieved), numeric=frozenset({1, 2})))
        shortfalls = achieved.get("shortfalls") or []
        if shortfalls:
            parts.append("<ul>" + "".join(f"<li>{'tolerated' if s.get('tolerated') else '<b>shortfall</b>'}: "
                                          f"{escape(s['kind'])}: {escape(s['message'])}</li>" for s in shortfalls)
                         + "</ul>")
    endpoints = summary.get("endpoints") or []
    if endpoints:
        parts.append("<h2>Endpoints</h2>")
        parts.append(_table(["Type", "Name", "Count", "Failures", "Error rate", "RPS", "Avg ms", "p50", "p95", "p99"],
                            [[e["type"], e["name"], e["count"], e["failures"], fmt.percent(e["error_rate"]),
                              fmt.number(e["rps"]), fmt.ms(e["avg_ms"]), fmt.ms(e["p50_ms"]), fmt.ms(e["p95_ms"]),
                              fmt.ms(e["p99_ms"])] for e in endpoints], numeric=frozenset(range(2, 10))))
    streams = summary.get("streams") or []
    if streams:
        parts.append("<h2>WebSocket lag</h2>")
        parts.append(_table(["Stream", "Count", "Avg ms", "p50", "p95", "p99", "Max", "±"],
                            [[s["stream"], s["count"], fmt.ms(s["avg_ms"]), fmt.ms(s["p50_ms"]), fmt.ms(s["p95_ms"]),
                              fmt.ms(s["p99_ms"]), fmt.ms(s["max_ms"]), fmt.ms(s["uncertainty_ms"])] for s in streams],
                            numeric=frozenset(range(1, 8))))
    parts += _money(summary)
    parts.append(f'<p class="muted">Charts: Apache ECharts {charts.ECHARTS_VERSION} (Apache License 2.0), inlined. '
                 "Locust\'s own report.html is in the same directory.</p>")
    parts.append(_scripts())
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"
