"""``summary.md``: a run summary as GitHub-flavoured Markdown, for a CI job summary or a PR comment.

Headline (``**FAIL** — 2 of 9 criteria failed``), one metadata line, then tables: criteria,
endpoints, WebSocket lag per stream, baseline regressions, fund safety and PnL. Text from the run (labels, endpoint
names, reasons) is escaped so a ``|`` cannot split a table cell and a backtick, ``*``, ``_`` or
``<`` cannot start formatting or HTML.
"""
from __future__ import annotations

import re
from typing import AbstractSet

from . import fmt

OPEN_MODEL_TYPE = "request_intended"
"""The endpoint rows of the open model's latency from the intended start (the metric's name)."""
_MD_SPECIAL = re.compile(r"([\\`*_|<>\[\]~])")


def escape(text) -> str:
    """``text`` safe inside a Markdown table cell: specials backslash-escaped, newlines → spaces."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def code(text) -> str:
    """``text`` as a code span inside a table cell: readable as written (``request avg<200``), with
    only ``|`` escaped (GitHub splits cells on it even inside code spans)."""
    body = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in body else "`"
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def _table(header: list[str], rows: list[list[str]], right: AbstractSet[int] = frozenset()) -> list[str]:
    align = ["---:" if i in right else "---" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def headline(summary: dict) -> str:
    """``**PASS** — 9 of 9 criteria passed``, ``**FAIL** — 2 of 9 criteria failed``, ``**ABORTED** — why``."""
    verdict = summary.get("verdict", "fail")
    failed, inconclusive, total = fmt.criterion_counts(summary.get("criteria") or [])
    run = summary["run"]
    if verdict in ("aborted", "interrupted", "error"):
        text = f"**{verdict.upper()}** — {escape(run.get('ending_reason') or run.get('aborted') or verdict)}"
        if run.get("log"):
            text += f" (log: {escape(run['log'])})"
    elif verdict == "incomplete":
        missing = [s for s in (summary.get("achieved") or {}).get("shortfalls") or [] if not s.get("tolerated")]
        text = f"**INCOMPLETE** — the run fell short of its plan: {escape('; '.join(s['message'] for s in missing))}"
    elif total == 0:
        text = f"**{verdict.upper()}** — no criteria"
    elif failed:
        text = f"**{verdict.upper()}** — {failed} of {total} criteria failed"
    else:
        text = f"**{verdict.upper()}** — {total} of {total} criteria passed"
    if inconclusive:
        text += f" ({inconclusive} inconclusive)"
    regressions = len((summary.get("baseline") or {}).get("regressions") or [])
    if regressions:
        text += f"; {regressions} baseline regression{'s' if regressions != 1 else ''}"
    return text


def _metadata(summary: dict) -> str:
    run = summary["run"]
    versions = run.get("versions") or {}
    parts = [f"run {escape(run['run_id'])}", f"ending {escape(summary.get('ending') or '?')}",
             f"exit code {run.get('exit_code')}", f"env {escape(run['env'])}"]
    if run.get("host"):
        parts.append(f"host {escape(run['host'])}")
    parts.append(f"{fmt.number(run.get('duration_s'))} s")
    parts.append(f"{run.get('workers', 0)} worker{'s' if run.get('workers') != 1 else ''}")
    parts.append(f"started {escape(run.get('started_at'))}")
    if run.get("git_commit"):
        parts.append(f"commit {escape(str(run['git_commit'])[:12])}")
    parts.append(f"letrade-perf {escape(versions.get('letrade_perf', '?'))}, "
                 f"locust {escape(versions.get('locust', '?'))}")
    return " · ".join(parts)


def _verdict_cell(c: dict) -> str:
    if c["gate"] == "fail":
        cell = "**fail**" if c["verdict"] == "fail" else "**inconclusive** (fails the gate)"
    else:
        cell = "inconclusive (allowed)" if c["verdict"] == "inconclusive" else c["verdict"]
    if c.get("reason"):
        cell += f": {escape(c['reason'])}"
    return cell


def _blocks(summary: dict) -> list[str]:
    """The blocks of new orders (who, when, why, how long), one line each; the audit trail."""
    import datetime as _dt

    section = summary.get("orders_blocked") or {}
    history = section.get("history") or []
    run = summary["run"]
    lines: list[str] = []
    if history:
        lines += ["", f"#### New orders blocked ({fmt.number(section.get('blocked_s'))} s of the test)", ""]
        for b in history:
            at = _dt.datetime.fromtimestamp(float(b.get("at") or 0), _dt.timezone.utc).strftime("%H:%M:%S")
            end = (f"resumed by {escape(b.get('resumed_by'))} after {fmt.number(b.get('duration_s'))} s"
                   if b.get("resumed_at") is not None else "still blocked at the end")
            lines.append(f"- {at} UTC by {escape(b.get('by'))}: {escape(b.get('reason'))}; {end}")
    if run.get("audit"):
        lines += ["", f"Audit trail: {code(run['audit'])}" + (f" (operator {escape(run['operator'])})"
                                                                if run.get("operator") else "")]
    return lines


def _flatten(summary: dict) -> list[str]:
    """The flattens that ran: a table of the trade-back orders and one line per flatten."""
    reports = summary.get("flatten") or []
    if not reports:
        return []
    lines = ["", "#### Flatten", ""]
    for r in reports:
        where = f" (worker {escape(r['worker'])})" if r.get("worker") else ""
        lines.append(f"- {'**ok**' if r.get('ok') else '**not flat**'}{where}: {escape(r.get('human', ''))}")
    rows = [[escape(o.get("client_order_id")), escape(o.get("symbol")), escape(o.get("side")), escape(o.get("qty")),
             escape(o.get("status"))] for r in reports for o in r.get("orders") or ()]
    if rows:
        lines.append("")
        lines += _table(["Order", "Symbol", "Side", "Quantity", "Status"], rows, right={3})
    return lines


def _money(summary: dict) -> list[str]:
    """The "Fund safety and PnL" section: the unexplained deltas first, balances, PnL per strategy."""
    from . import funds

    money = summary.get("money")
    if not money:
        return []
    lines = ["", "#### Fund safety and PnL", "", escape(funds.funds_headline(money))]
    unexplained = funds.unexplained_rows(money)
    if unexplained:
        lines += ["", "**Unexplained balance changes** (not the run's fills and fees):", ""]
        lines += _table(["Asset", "Start", "End", "Change", "Explained", "Unexplained"],
                        [[escape(c) for c in r] for r in unexplained], right={1, 2, 3, 4, 5})
    balances = funds.balance_rows(money)
    if balances:
        lines += [""] + _table(funds.BALANCE_HEADER, [[escape(c) for c in r] for r in balances], right={1, 2, 3, 4, 5})
    pnl = funds.pnl_rows(money)
    if pnl:
        lines += ["", f"PnL in {escape(money.get('valuation_asset') or '?')} (average cost; fees in a third asset "
                      "listed apart; return = realised PnL ÷ quote value bought):", ""]
        lines += _table(funds.PNL_HEADER, [[escape(c) for c in r] for r in pnl], right={1, 2, 3, 5, 6, 7})
    return lines


def _generator(summary: dict) -> list[str]:
    """The load generator's own health: per process its highest CPU and loop-lag p99, its RSS from
    start to end and its saturated seconds; the saturation verdict effect when there was one."""
    procs = summary.get("generator") or {}
    if not procs:
        return []
    lines = ["", "#### Load generator", ""]
    lines += _table(["Process", "Max CPU %", "Max loop lag p99 ms", "RSS MB start → end", "Saturated s"],
                    [[code(name), fmt.number(g.get("cpu_percent_max")), fmt.ms(g.get("loop_lag_p99_ms_max")),
                      f"{fmt.number(g.get('rss_mb_start'))} → {fmt.number(g.get('rss_mb_end'))}",
                      fmt.number(g.get("saturated_s"))] for name, g in sorted(procs.items())], right={1, 2, 4})
    sat = summary.get("generator_saturation") or {}
    if sat.get("saturated"):
        lines += ["", f"**Saturated**: {escape(sat.get('message') or '')}"]
    elif sat:
        th = sat.get("thresholds") or {}
        lines += ["", f"Not saturated (CPU ≥ {fmt.number(th.get('cpu_percent'))} %, or loop lag p99 ≥ "
                      f"{fmt.number(th.get('loop_lag_p99_ms'))} ms at CPU ≥ {fmt.number(th.get('lag_cpu_percent'))} %, "
                      f"for more than {fmt.percent(th.get('max_saturated_fraction'))} of the test)."]
    return lines


def _open_model(endpoints: list[dict]) -> list[str]:
    """Open model: each request's service time beside its latency from the intended start
    (``request_intended``, coordinated-omission corrected), per endpoint."""
    intended = {e["name"]: e for e in endpoints if e["type"] == OPEN_MODEL_TYPE}
    if not intended:
        return []
    rows = []
    for e in endpoints:
        i = intended.get(e["name"]) if e["type"] != OPEN_MODEL_TYPE else None
        if i is not None:
            rows.append([code(e["name"]), str(i["count"]), fmt.ms(e["p50_ms"]), fmt.ms(i["p50_ms"]), fmt.ms(e["p95_ms"]),
                         fmt.ms(i["p95_ms"]), fmt.ms(e["p99_ms"]), fmt.ms(i["p99_ms"])])
    return ["", "#### Open model: service time and latency from the intended start", ""] + _table(
        ["Name", "Count", "p50 ms", "p50 ms intended", "p95 ms", "p95 ms intended", "p99 ms", "p99 ms intended"],
        rows, right=set(range(1, 8)))


def render_markdown(summary: dict) -> str:
    """The Markdown report for ``summary`` (ends with a newline)."""
    run = summary["run"]
    lines = [f"### letrade-perf {escape(run['profile'])}", "", headline(summary), "", _metadata(summary)]
    if run.get("description"):
        lines += ["", f"_{escape(run['description'])}_"]
    achieved = summary.get("achieved")
    if achieved:
        lines += ["", "#### Planned vs achieved", ""]
        lines += _table(["", "Planned", "Achieved"], fmt.plan_rows(achieved), right={1, 2})
        for sf in achieved.get("shortfalls") or []:
            lines.append(f"- {'tolerated' if sf.get('tolerated') else '**shortfall**'}: "
                         f"{escape(sf['kind'])}: {escape(sf['message'])}")
    lines += _blocks(summary)
    criteria = summary.get("criteria") or []
    if criteria:
        lines += ["", "#### Criteria", ""]
        lines += _table(["Criterion", "Value", "Threshold", "Samples", "Verdict"],
                        [[code(c["label"]), escape(fmt.value(c.get("value"), c.get("unit", ""))),
                          escape(fmt.threshold(c["op"], c["threshold"], c.get("unit", ""))), str(c.get("samples", "")),
                          _verdict_cell(c)] for c in criteria], right={1, 3})
    every_endpoint = summary.get("endpoints") or []
    endpoints = [e for e in every_endpoint if e["type"] != OPEN_MODEL_TYPE]   # paired in _open_model
    if endpoints:
        lines += ["", "#### Endpoints", ""]
        header = ["Type", "Name", "Count", "Failures", "Error rate", "RPS", "Avg ms", "p50 ms", "p95 ms", "p99 ms"]
        lines += _table(header,
                        [[escape(e["type"]), code(e["name"]), str(e["count"]), str(e["failures"]),
                          fmt.percent(e["error_rate"]), fmt.number(e["rps"]), fmt.ms(e["avg_ms"]), fmt.ms(e["p50_ms"]),
                          fmt.ms(e["p95_ms"]), fmt.ms(e["p99_ms"])] for e in endpoints], right=set(range(2, 10)))
    lines += _open_model(every_endpoint)
    streams = summary.get("streams") or []
    if streams:
        lines += ["", "#### WebSocket lag", ""]
        lines += _table(["Stream", "Count", "Avg ms", "p50 ms", "p95 ms", "p99 ms", "Max ms", "± ms"],
                        [[code(s["stream"]), str(s["count"]), fmt.ms(s["avg_ms"]), fmt.ms(s["p50_ms"]),
                          fmt.ms(s["p95_ms"]), fmt.ms(s["p99_ms"]), fmt.ms(s["max_ms"]), fmt.ms(s["uncertainty_ms"])]
                         for s in streams], right=set(range(1, 8)))
    baseline = summary.get("baseline")
    if baseline:
        regressions = baseline.get("regressions") or []
        lines += ["", "#### Baseline", "",
                  f"Compared with {escape(baseline.get('path'))} (tolerance {fmt.percent(baseline.get('tolerance'))}): "
                  f"**{str(baseline.get('verdict', '')).upper()}** — "
                  + (f"{len(regressions)} of {baseline.get('checked')} figures regressed" if regressions
                     else f"no regression in {baseline.get('checked')} figures")]
        if regressions:
            units = {c["label"]: c.get("unit", "") for c in criteria}

            def fig(r: dict, side: str) -> str:
                unit = units.get(r["key"]) if r["kind"] == "criterion" and r["figure"] == "value" else None
                return escape(fmt.regression_figure(r["kind"], r["figure"], r[side], unit))

            lines.append("")
            lines += _table(["Kind", "Key", "Figure", "Baseline", "Current", "Change", "Limit"],
                            [[r["kind"], escape(r["key"]), escape(r["figure"]), fig(r, "baseline"), fig(r, "current"),
                              fmt.change(r["change"]), escape(r["limit"])] for r in regressions], right={3, 4, 5})
        notes = baseline.get("notes") or []
        if notes:
            lines.append("")
            lines += [f"- {escape(n)}" for n in notes]
    lines += _generator(summary)
    lines += _flatten(summary)
    lines += _money(summary)
    lines += ["", f"Percentiles from histograms with ≤ {fmt.percent(summary.get('histogram_relative_error'))} "
                  "relative error."]
    return "\n".join(lines) + "\n"
