"""Number and verdict formatting shared by the Markdown, JUnit, comparison and webhook texts.

One place decides how a figure reads, so a value looks the same in a PR comment, a JUnit failure
message and a Slack message. Rates (unit ``ratio``) are fractions 0..1 in the summary and are
shown as percentages here.
"""
from __future__ import annotations

from typing import Any, Iterable


def number(v: float | int | None) -> str:
    """A figure with as many decimals as its size warrants (``-`` for None)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    a = abs(v)
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.4g}"                   # 0.9998 must not read as 1


def percent(fraction: float | None) -> str:
    """``0.9995`` → ``99.95 %`` (up to three decimals, trailing zeros dropped)."""
    if fraction is None:
        return "-"
    text = f"{fraction * 100:.3f}".rstrip("0").rstrip(".")
    return f"{text} %"


def ms(v: float | None) -> str:
    """A duration in milliseconds (without the unit; tables put it in the header)."""
    return number(v)


def value(v: float | None, unit: str) -> str:
    """A criterion value with its unit: ``251.3 ms``, ``99.95 %``, ``3``, ``12 bps``."""
    if v is None:
        return "-"
    if unit == "ratio":
        return percent(v)
    if unit in ("count", ""):
        return number(v)
    return f"{number(v)} {unit}"


def threshold(op: str, limit: float, unit: str) -> str:
    """``< 200 ms``, ``> 99.9 %``, ``== 0``."""
    return f"{op} {value(limit, unit)}"


def criterion_counts(criteria: Iterable[dict]) -> tuple[int, int, int]:
    """``(failed, inconclusive, total)``: failed counts gates that fail (inconclusive ones included)."""
    failed = inconclusive = total = 0
    for c in criteria:
        total += 1
        failed += c.get("gate") == "fail"
        inconclusive += c.get("verdict") == "inconclusive"
    return failed, inconclusive, total


def run_title(run: dict[str, Any]) -> str:
    """``letrade-perf smoke (sim, run 20260101T000000Z-smoke)``."""
    return f"letrade-perf {run.get('profile', '?')} ({run.get('env', '?')}, run {run.get('run_id', '?')})"


def criterion_line(c: dict) -> str:
    """``<label>: 251.3 ms (threshold < 200 ms)`` plus the reason when there is one."""
    unit = c.get("unit", "")
    line = f"{c['label']}: {value(c.get('value'), unit)} (threshold {threshold(c['op'], c['threshold'], unit)})"
    if c.get("verdict") == "inconclusive":
        line += " inconclusive"
    if c.get("reason"):
        line += f" — {c['reason']}"
    return line


def regression_figure(kind: str, figure: str, v: Any, unit: str | None = None) -> str:
    """A regression's baseline/current figure: ms, percent for error rates, verdict text as is;
    a criterion value with its ``unit`` when known."""
    if v is None or isinstance(v, str):
        return "-" if v is None else v
    if figure == "error_rate":
        return percent(v)
    if figure.endswith("_ms"):
        return f"{number(v)} ms"
    if unit is not None:
        return value(v, unit)
    return number(v)


def change(v: float | None) -> str:
    """A relative change: ``+30.0 %`` (``-`` when there is none)."""
    if v is None:
        return "-"
    return f"{v * 100:+.1f} %"


def plan_rows(achieved: dict[str, Any]) -> list[list[str]]:
    """The "planned vs achieved" table of a summary's ``achieved`` section: ``[label, planned,
    achieved]`` rows as text (Markdown and HTML reports)."""
    plan, got = achieved.get("planned") or {}, achieved.get("achieved") or {}
    rows = [["Duration s", number(plan.get("duration_s")), number(got.get("duration_s"))],
            ["Peak users", str(plan.get("peak_users", "")), str(got.get("peak_users", ""))],
            ["User-seconds", number(got.get("planned_user_seconds")), number(got.get("user_seconds"))],
            ["Workers", str(plan.get("workers", 0)), f"{len(got.get('workers_lost') or [])} lost"],
            ["Safety refusals", "0", str(got.get("safety_refusals", 0))],
            ["User errors", "0", str(got.get("user_errors", 0))]]
    if got.get("paced_fraction") is not None:
        rows.append(["Time blocked by pacing", "", percent(got["paced_fraction"])])
    if got.get("orders_blocked_s"):
        rows.append(["New orders blocked s", "0", number(got["orders_blocked_s"])])
    for kind, it in sorted((got.get("iterations") or {}).items()):     # open model (arrival_rate)
        rows.append([f"Iterations {kind} at {number(it.get('rate_per_s'))}/s", str(it.get("planned", "")),
                     f"{it.get('started', '')} ({it.get('dropped', 0)} dropped)"])
    return rows
