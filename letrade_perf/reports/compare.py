"""Comparison of a run summary with a baseline summary: which figures regressed.

Rules (``tolerance`` is a fraction, default 0.10 = 10 %):

* **Endpoints** are matched by ``(type, name)``, **streams** by ``stream``; only entries present in
  both summaries are compared. An entry with fewer than :data:`MIN_SAMPLES` (20) samples on
  either side is skipped (too few to compare; not counted in ``checked``, listed in ``notes``).
* A **percentile** is compared only when at least :data:`MIN_TAIL_SAMPLES` (5) samples lie beyond
  it (above a high one, below a low one) on both sides — ``p95_ms`` needs 100 samples, a
  ``p(99)`` criterion 500 — since a tail percentile of fewer samples is one or two outliers and
  moves by tens of percent between identical runs. A ``min``/``max`` (or ``p(0)``/``p(100)``)
  criterion value is one sample and is never compared (its verdict still is). Each skipped
  figure is listed in ``notes``.
* ``p95_ms`` and ``avg_ms`` regress when ``current > baseline × (1 + tolerance)`` **and**
  ``current − baseline >`` :data:`MS_FLOOR` (1.0 ms) — the floor keeps sub-millisecond loopback
  figures (0.3 → 0.4 ms is +33 %) from failing a build on noise.
* ``error_rate`` (endpoints only) regresses when ``current − baseline > max(tolerance × baseline,``
  :data:`ERROR_RATE_FLOOR`\\ ``)`` — an absolute floor of 0.1 percentage point, so 0 % → 0.05 %
  is not a regression while 0 % → 0.5 % is.
* **Criteria** are matched by ``label``. A ``pass`` → ``fail`` verdict is a regression (figure
  ``verdict``). The value regresses when it moved in the bad direction — up for ``<``/``<=``,
  down for ``>``/``>=``, either way for ``==`` — by more than ``tolerance × |baseline|`` (with
  the same 1 ms floor when the unit is ``ms``). A value with fewer than 20 samples on either side
  is skipped like an endpoint, except for ``count`` aggregations: a count is exact, not a
  statistic of a sample.
* Improvements never count. Entries present on one side only are reported in ``notes``, never
  as regressions (a renamed endpoint must not fail a build; a human reads the note).

Every figure compared counts once in ``checked``. ``change`` is the relative change
``current / baseline − 1`` (None when the baseline is 0 or the figure is a verdict).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..criteria.grammar import percentile_of
from . import fmt

MIN_SAMPLES = 20
"""Entries with fewer samples than this on either side are not compared."""
MS_FLOOR = 1.0
"""A millisecond figure must also grow by more than this many ms to regress."""
ERROR_RATE_FLOOR = 0.001
"""An error rate must grow by more than this (0.1 percentage point) to regress."""
MIN_TAIL_SAMPLES = 5
"""A percentile p(q) is compared only when ``count × min(q, 100 − q) / 100`` reaches this on both sides."""


def tail_samples_needed(q: float) -> int | None:
    """Samples a run needs for its ``q``-th percentile to be compared (95 → 100, 99 → 500, 1 → 500);
    None for p(0) and p(100), the minimum and maximum: one sample, never compared."""
    tail = min(q, 100 - q)
    return math.ceil(round(MIN_TAIL_SAMPLES * 100 / tail, 6)) if tail > 0 else None

_FIGURE_PERCENTILE = {"p95_ms": 95.0}
"""Endpoint and stream figures that are percentiles, with their q."""

_BAD_DIRECTION = {"<": 1, "<=": 1, ">": -1, ">=": -1, "==": 0}


@dataclass
class Comparison:
    """The outcome of :func:`compare_summaries`.

    ``regressions`` holds Regression dicts (``kind key figure baseline current change limit``);
    ``rows`` every figure compared (the same keys plus ``status``: ``ok``, ``improved`` or
    ``regressed``) for the full table; ``notes`` what could not be compared and why.
    """

    tolerance: float
    regressions: list[dict] = field(default_factory=list)
    checked: int = 0
    notes: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    baseline_run: dict = field(default_factory=dict)
    current_run: dict = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    """Criterion label → unit of its value, for display."""

    @property
    def passed(self) -> bool:
        """True when nothing regressed."""
        return not self.regressions

    def to_dict(self) -> dict:
        """The summary's ``baseline`` section without ``path``."""
        return {"tolerance": self.tolerance, "verdict": "pass" if self.passed else "fail",
                "regressions": [dict(r) for r in self.regressions], "checked": self.checked,
                "notes": list(self.notes)}

    def unit(self, kind: str, key: str, figure: str) -> str | None:
        """The unit of a criterion's value (``ms``, ``ratio``, …), else None (the figure name says it)."""
        return self.units.get(key) if kind == "criterion" and figure == "value" else None

    def _add(self, kind: str, key: str, figure: str, base: Any, cur: Any, limit: str, regressed: bool,
             improved: bool) -> None:
        change = None
        if isinstance(base, (int, float)) and isinstance(cur, (int, float)) and base != 0:
            change = cur / base - 1.0
        reg = {"kind": kind, "key": key, "figure": figure, "baseline": base, "current": cur, "change": change,
               "limit": limit}
        self.checked += 1
        self.rows.append({**reg, "status": "regressed" if regressed else "improved" if improved else "ok"})
        if regressed:
            self.regressions.append(reg)


def compare_summaries(baseline: dict, current: dict, tolerance: float = 0.10) -> Comparison:
    """Compare ``current`` with ``baseline`` (both summary dicts) by the rules in the module docstring."""
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0) or tolerance != tolerance:
        raise ValueError(f"tolerance must be a fraction >= 0, got {tolerance!r}")
    c = Comparison(tolerance=float(tolerance), baseline_run=dict(baseline.get("run") or {}),
                   current_run=dict(current.get("run") or {}))
    bp, cp = c.baseline_run.get("profile"), c.current_run.get("profile")
    if bp != cp:
        c.notes.append(f"comparing profile {cp!r} with a baseline of profile {bp!r}")

    def endpoint_key(e: dict) -> tuple[str, str]:
        return (e["type"], e["name"])

    _compare_entries(c, "endpoint", baseline.get("endpoints") or [], current.get("endpoints") or [],
                     endpoint_key, lambda k: f"{k[0]} {k[1]}", ("p95_ms", "avg_ms", "error_rate"))
    _compare_entries(c, "stream", baseline.get("streams") or [], current.get("streams") or [],
                     lambda s: s["stream"], str, ("p95_ms", "avg_ms"))
    _compare_criteria(c, baseline.get("criteria") or [], current.get("criteria") or [])
    return c


def _index(entries: list[dict], key) -> dict:
    return {key(e): e for e in entries}


def _one_sided(c: Comparison, kind: str, base: dict, cur: dict, name) -> list:
    for k in base:
        if k not in cur:
            c.notes.append(f"{kind} {name(k)}: only in the baseline")
    for k in cur:
        if k not in base:
            c.notes.append(f"{kind} {name(k)}: only in the current run")
    return [k for k in cur if k in base]          # current order: the table reads like the report


def _compare_entries(c: Comparison, kind: str, base_list: list, cur_list: list, key, name, figures) -> None:
    base, cur = _index(base_list, key), _index(cur_list, key)
    for k in _one_sided(c, kind, base, cur, name):
        b, n = base[k], cur[k]
        if min(b.get("count") or 0, n.get("count") or 0) < MIN_SAMPLES:
            c.notes.append(f"{kind} {name(k)}: skipped, fewer than {MIN_SAMPLES} samples "
                           f"(baseline {b.get('count')}, current {n.get('count')})")
            continue
        for figure in figures:
            bv, cv = b.get(figure), n.get(figure)
            if bv is None or cv is None:
                continue
            q = _FIGURE_PERCENTILE.get(figure)
            if q is not None and not _tail_ok(c, f"{kind} {name(k)}: {figure}", q, b.get("count"), n.get("count")):
                continue
            if figure == "error_rate":
                allowed = max(c.tolerance * bv, ERROR_RATE_FLOOR)
                limit = f"+{fmt.number(allowed * 100)} pp"
                c._add(kind, name(k), figure, bv, cv, limit, cv - bv > allowed, cv < bv)
            else:
                regressed = cv > bv * (1 + c.tolerance) and cv - bv > MS_FLOOR
                limit = f"+{fmt.number(c.tolerance * 100)} % and +{fmt.number(MS_FLOOR)} ms"
                c._add(kind, name(k), figure, bv, cv, limit, regressed, cv < bv)


def _compare_criteria(c: Comparison, base_list: list, cur_list: list) -> None:
    base, cur = _index(base_list, lambda x: x["label"]), _index(cur_list, lambda x: x["label"])
    for label in _one_sided(c, "criterion", base, cur, str):
        b, n = base[label], cur[label]
        c.units[label] = n.get("unit", "")
        c._add("criterion", label, "verdict", b.get("verdict"), n.get("verdict"), "pass",
               b.get("verdict") == "pass" and n.get("verdict") == "fail",
               b.get("verdict") == "fail" and n.get("verdict") == "pass")
        if b.get("verdict") == "pass" and n.get("verdict") == "inconclusive":
            c.notes.append(f"criterion {label}: pass in the baseline, inconclusive now "
                           f"({n.get('reason') or 'no reason'})")
        bv, cv = b.get("value"), n.get("value")
        if bv is None or cv is None:
            continue
        if b.get("aggregation") != "count" and min(b.get("samples") or 0, n.get("samples") or 0) < MIN_SAMPLES:
            c.notes.append(f"criterion {label}: value skipped, fewer than {MIN_SAMPLES} samples "
                           f"(baseline {b.get('samples')}, current {n.get('samples')})")
            continue
        agg = b.get("aggregation") or ""
        if agg in ("min", "max"):
            c.notes.append(f"criterion {label}: value not compared, a {agg}imum is one sample")
            continue
        q = percentile_of(agg)
        if q is not None and not _tail_ok(c, f"criterion {label}: value", q, b.get("samples"), n.get("samples")):
            continue
        op = n.get("op", b.get("op"))
        direction = _BAD_DIRECTION.get(op, 0)
        moved = cv - bv if direction >= 0 else bv - cv          # > 0 means worse (for == either way)
        if direction == 0:
            moved = abs(cv - bv)
        allowed = c.tolerance * abs(bv)
        is_ms = n.get("unit") == "ms"
        regressed = moved > allowed and (not is_ms or moved > MS_FLOOR)
        sign = {1: "+", -1: "-", 0: "±"}[direction]
        limit = f"{sign}{fmt.number(c.tolerance * 100)} %" + (f" and {sign}{fmt.number(MS_FLOOR)} ms" if is_ms else "")
        improved = direction != 0 and moved < 0
        c._add("criterion", label, "value", bv, cv, limit, regressed, improved)


def _tail_ok(c: Comparison, what: str, q: float, base_n, cur_n) -> bool:
    """True when both sides have enough samples beyond the ``q``-th percentile; else a note."""
    need = tail_samples_needed(q)
    if need is None:
        c.notes.append(f"{what} not compared, a {fmt.number(q)}th percentile is one sample")
        return False
    if min(base_n or 0, cur_n or 0) >= need:
        return True
    c.notes.append(f"{what} skipped, a {fmt.number(q)}th percentile needs {need} samples "
                   f"(baseline {base_n}, current {cur_n})")
    return False


def render_comparison(c: Comparison) -> str:
    """A plain-text report: the verdict line, every figure compared, the regressions and the notes."""
    def fig(r: dict, side: str) -> str:
        return fmt.regression_figure(r["kind"], r["figure"], r[side], c.unit(r["kind"], r["key"], r["figure"]))

    base_id, cur_id = c.baseline_run.get("run_id", "?"), c.current_run.get("run_id", "?")
    lines = [f"baseline {base_id} ({c.baseline_run.get('profile', '?')}) → current {cur_id} "
             f"({c.current_run.get('profile', '?')}), tolerance {fmt.number(c.tolerance * 100)} %"]
    if c.rows:
        header = ("kind", "key", "figure", "baseline", "current", "change", "limit", "status")
        table = [header] + [(r["kind"], r["key"], r["figure"], fig(r, "baseline"), fig(r, "current"),
                             fmt.change(r["change"]), r["limit"],
                             r["status"].upper() if r["status"] == "regressed" else r["status"]) for r in c.rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        lines.append("")
        for row in table:
            lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    if c.notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in c.notes)
    lines.append("")
    if c.passed:
        lines.append(f"PASS: no regression in {c.checked} figures compared")
    else:
        lines.append(f"REGRESSION: {len(c.regressions)} of {c.checked} figures regressed")
        lines.extend(f"  {r['kind']} {r['key']} {r['figure']}: "
                     f"{fig(r, 'baseline')} → {fig(r, 'current')} "
                     f"({fmt.change(r['change'])}, limit {r['limit']})" for r in c.regressions)
    return "\n".join(lines) + "\n"
