"""Comparison of a run summary with a baseline summary: which figures regressed beyond the noise.

A figure regresses only when its change is **beyond the run-to-run noise** the two runs show in
their own per-interval values (``summary.json["intervals"]``; the statistics are in
:mod:`letrade_perf.reports.noise`: batch means, a Welch band, Bonferroni over the figures) **and**
beyond a **minimum effect** (``tolerance``, a fraction, default 0.10 = 10 %), so a change that is
real but too small to matter does not fail a build either. Each figure gets one verdict:

* ``regressed`` — worse by more than the noise band and more than the minimum effect;
* ``improved`` — better by more than both;
* ``within noise`` — the change is inside the noise band;
* ``within tolerance`` — beyond the noise band but below the minimum effect;
* ``not judgeable`` — the data cannot carry a verdict: fewer than :data:`MIN_INTERVALS` (5)
  intervals with samples on either side (a run shorter than about 25 s at the default 5 s
  evaluation period, or a summary from before per-interval data), or too few samples (below).

Figures and their minimum effects:

* **Endpoints** are matched by ``(type, name)``, **streams** by ``stream``; only entries present in
  both summaries are compared. An entry with fewer than :data:`MIN_SAMPLES` (20) samples on
  either side is not judgeable.
* A **percentile** needs at least :data:`MIN_TAIL_SAMPLES` (5) samples beyond it on both sides
  (``p95_ms`` 100 samples, a ``p(99)`` criterion 500); its per-interval values count only from
  intervals with :data:`INTERVAL_MIN_SAMPLES` (10) samples. A ``min``/``max`` (``p(0)``/``p(100)``) criterion
  value is one sample and is never compared (a note; its verdict still is).
* ``p95_ms`` and ``avg_ms``: minimum effect ``tolerance × baseline`` and :data:`MS_FLOOR` (1 ms).
* ``error_rate`` (endpoints): ``max(tolerance × baseline,`` :data:`ERROR_RATE_FLOOR`\\ ``)`` (0.1
  percentage point). Its noise has a binomial floor, so it is judgeable without intervals.
* **Criteria** are matched by ``label``. A ``pass`` → ``fail`` verdict is a regression (figure
  ``verdict``: the current run failed a criterion the baseline passed; no noise applies). The
  value regresses when it moved in the bad direction — up for ``<``/``<=``, down for ``>``/``>=``,
  either way for ``==`` — beyond the noise and ``tolerance × |baseline|`` (and 1 ms for ``ms``).
  ``count`` values are Poisson counts (noise ``√(b + c)``, no intervals needed); ``rate`` values
  of a success ratio have a binomial floor; ``avg``/``med``/``p(N)`` need intervals.
* Entries present on one side only are notes, never regressions (a renamed endpoint must not
  fail a build; a human reads the note).

``checked`` counts the figures judged (not the not-judgeable ones, counted in ``not_judgeable``
and listed in ``notes``). ``change`` is ``current / baseline − 1`` (None when the baseline is 0 or
the figure is a verdict); ``noise`` the half-width of the band in the figure's unit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..criteria.grammar import percentile_of
from . import fmt, noise

MIN_SAMPLES = 20
"""Entries with fewer samples than this on either side are not judgeable."""
MS_FLOOR = 1.0
"""A millisecond figure must also grow by more than this many ms to regress."""
ERROR_RATE_FLOOR = 0.001
"""An error rate must grow by more than this (0.1 percentage point) to regress."""
MIN_TAIL_SAMPLES = 5
"""A percentile p(q) is compared only when ``count × min(q, 100 − q) / 100`` reaches this on both sides."""
INTERVAL_MIN_SAMPLES = 10
"""Samples an interval needs for its percentile to count in the noise estimate. The test statistic
is the mean of the interval percentiles of both runs alike, so a small interval's biased percentile
(of 10 samples a p95 is near the maximum) biases neither side against the other; fewer than 10
and the value is one sample."""
MIN_INTERVALS = 5
"""Intervals with samples each side needs for a noise estimate (fewer: not judgeable). With 4
degrees of freedom the band is already ~1.5× wider than with many; below it the spread of a
handful of intervals says too little about the noise to fail a build on."""

STATUSES = ("regressed", "improved", "within noise", "within tolerance", "not judgeable", "unchanged")
"""A figure's verdict; ``unchanged`` is a criterion's verdict figure that did not change."""


def tail_samples_needed(q: float) -> int | None:
    """Samples a run needs for its ``q``-th percentile to be compared (95 → 100, 99 → 500, 1 → 500);
    None for p(0) and p(100), the minimum and maximum: one sample, never compared."""
    tail = min(q, 100 - q)
    return math.ceil(round(MIN_TAIL_SAMPLES * 100 / tail, 6)) if tail > 0 else None


_FIGURE_PERCENTILE = {"p95_ms": 95.0}
"""Endpoint and stream figures that are percentiles, with their q."""

_BAD_DIRECTION = {"<": 1, "<=": 1, ">": -1, ">=": -1, "==": 0}


@dataclass
class _Side:
    """One run's noise estimate of a figure: its SE and how many intervals it rests on (∞: a model)."""

    se: float
    k: float
    mean: float | None = None
    """The batch estimate of the figure (the weighted mean of its interval values), when from intervals."""


@dataclass
class _Figure:
    kind: str
    key: str
    figure: str
    base: Any
    cur: Any
    direction: int = 1                # +1 up is worse, -1 down is worse, 0 either way
    min_effect: float = 0.0
    limit: str = ""
    sides: tuple[_Side, _Side] | None = None
    reason: str | None = None         # not judgeable: why
    verdict_status: str | None = None  # a verdict figure's status (no noise)


@dataclass
class Comparison:
    """The outcome of :func:`compare_summaries`.

    ``regressions`` holds Regression dicts (``kind key figure baseline current change limit noise``);
    ``rows`` every figure (the same keys plus ``status``, one of :data:`STATUSES`, and ``reason``
    for a not-judgeable one) for the full table; ``notes`` what could not be compared and why.
    """

    tolerance: float
    alpha: float = noise.FAMILY_ALPHA
    regressions: list[dict] = field(default_factory=list)
    checked: int = 0
    not_judgeable: int = 0
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
                "not_judgeable": self.not_judgeable, "alpha": self.alpha, "notes": list(self.notes)}

    def unit(self, kind: str, key: str, figure: str) -> str | None:
        """The unit of a criterion's value (``ms``, ``ratio``, …), else None (the figure name says it)."""
        return self.units.get(key) if kind == "criterion" and figure == "value" else None


def compare_summaries(baseline: dict, current: dict, tolerance: float = 0.10,
                      alpha: float = noise.FAMILY_ALPHA) -> Comparison:
    """Compare ``current`` with ``baseline`` (both summary dicts) by the rules in the module docstring;
    ``alpha`` is the chance of a false regression per comparison."""
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0) or tolerance != tolerance:
        raise ValueError(f"tolerance must be a fraction >= 0, got {tolerance!r}")
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ValueError(f"alpha must be within (0, 1), got {alpha!r}")
    c = Comparison(tolerance=float(tolerance), alpha=float(alpha), baseline_run=dict(baseline.get("run") or {}),
                   current_run=dict(current.get("run") or {}))
    bp, cp = c.baseline_run.get("profile"), c.current_run.get("profile")
    if bp != cp:
        c.notes.append(f"comparing profile {cp!r} with a baseline of profile {bp!r}")
    for side, s in (("baseline", baseline), ("current run", current)):
        if not s.get("intervals"):
            c.notes.append(f"the {side} has no per-interval data (a summary from an older letrade-perf, or no "
                           "interval ended): its latency figures are not judgeable")
    bi, ci = baseline.get("intervals") or {}, current.get("intervals") or {}
    figures: list[_Figure] = []
    figures += _entries(c, "endpoint", baseline.get("endpoints") or [], current.get("endpoints") or [],
                        _columns(bi, "endpoints", _endpoint_key), _columns(ci, "endpoints", _endpoint_key),
                        _endpoint_key, lambda k: f"{k[0]} {k[1]}", ("p95_ms", "avg_ms", "error_rate"))
    figures += _entries(c, "stream", baseline.get("streams") or [], current.get("streams") or [],
                        _columns(bi, "streams", _stream_key), _columns(ci, "streams", _stream_key),
                        _stream_key, str, ("p95_ms", "avg_ms"))
    figures += _criteria(c, baseline.get("criteria") or [], current.get("criteria") or [],
                         _columns(bi, "criteria", _label_key), _columns(ci, "criteria", _label_key))
    _judge(c, figures)
    return c


def _endpoint_key(e: dict) -> tuple[str, str]:
    return (e["type"], e["name"])


def _stream_key(s: dict) -> str:
    return s["stream"]


def _label_key(x: dict) -> str:
    return x["label"]


def _columns(intervals: dict, section: str, key) -> dict:
    return {key(e): e for e in intervals.get(section) or []}


# -- figures ------------------------------------------------------------------------------------

def _one_sided(c: Comparison, kind: str, base: dict, cur: dict, name) -> list:
    for k in base:
        if k not in cur:
            c.notes.append(f"{kind} {name(k)}: only in the baseline")
    for k in cur:
        if k not in base:
            c.notes.append(f"{kind} {name(k)}: only in the current run")
    return [k for k in cur if k in base]          # current order: the table reads like the report


def _interval_side(col: dict | None, figure: str, weight: str, min_weight: int = 1) -> tuple[noise.Spread | None, int]:
    """The batch spread of ``figure`` over the intervals of ``col`` with at least ``min_weight``
    samples, and how many such intervals there are."""
    if not col:
        return None, 0
    values, weights = [], []
    for i, w in enumerate(col.get(weight) or []):
        v = _value(col, figure, i)
        if v is not None and w and w >= min_weight:
            values.append(v)
            weights.append(w)
    return noise.batch_spread(values, weights), len(values)


def _value(col: dict, figure: str, i: int) -> float | None:
    if figure == "error_rate":
        counts, fails = col.get("count") or [], col.get("failures") or []
        n = counts[i] if i < len(counts) else 0
        return (fails[i] if i < len(fails) else 0) / n if n else None
    vals = col.get(figure) or []
    return vals[i] if i < len(vals) else None


def _noise_sides(bcol: dict | None, ccol: dict | None, figure: str, weight: str, min_weight: int,
                 f: _Figure) -> None:
    """Set ``f.sides`` from both runs' intervals, or ``f.reason`` when there are too few."""
    (bs, bk), (cs, ck) = _interval_side(bcol, figure, weight, min_weight), _interval_side(ccol, figure, weight,
                                                                                         min_weight)
    if bs is None or cs is None or min(bk, ck) < MIN_INTERVALS:
        f.reason = f"too few intervals: baseline {bk}, current {ck}; needs {MIN_INTERVALS}"
        return
    f.sides = (_Side(bs.se, bs.k, bs.mean), _Side(cs.se, cs.k, cs.mean))


def _binomial_floor(f: _Figure, p_base: float, n_base: int, p_cur: float, n_cur: int) -> None:
    """Rates: raise each side's SE to at least the binomial SE at the pooled rate (a run without
    any error in any interval has no spread, yet its 0 % is a sample); without intervals the
    binomial SE alone (a model: ∞ degrees of freedom)."""
    n = n_base + n_cur
    if n <= 0:
        return
    p = (p_base * n_base + p_cur * n_cur) / n
    floor_b = math.sqrt(p * (1 - p) / n_base) if n_base else 0.0
    floor_c = math.sqrt(p * (1 - p) / n_cur) if n_cur else 0.0
    if f.sides is None:
        f.sides, f.reason = (_Side(floor_b, math.inf), _Side(floor_c, math.inf)), None
    else:
        b, c = f.sides
        f.sides = (_Side(max(b.se, floor_b), b.k, b.mean), _Side(max(c.se, floor_c), c.k, c.mean))


def _entries(c: Comparison, kind: str, base_list: list, cur_list: list, base_cols: dict, cur_cols: dict,
             key, name, figures) -> list[_Figure]:
    base, cur = {key(e): e for e in base_list}, {key(e): e for e in cur_list}
    out = []
    for k in _one_sided(c, kind, base, cur, name):
        b, n = base[k], cur[k]
        bn, cn = b.get("count") or 0, n.get("count") or 0
        for figure in figures:
            bv, cv = b.get(figure), n.get(figure)
            if bv is None or cv is None:
                continue
            f = _Figure(kind, name(k), figure, bv, cv)
            if figure == "error_rate":
                f.min_effect = max(c.tolerance * bv, ERROR_RATE_FLOOR)
                f.limit = f"+{fmt.number(f.min_effect * 100)} pp"
            else:
                f.min_effect = max(c.tolerance * bv, MS_FLOOR)
                f.limit = f"+{fmt.number(c.tolerance * 100)} % and +{fmt.number(MS_FLOOR)} ms"
            out.append(f)
            if min(bn, cn) < MIN_SAMPLES:
                f.reason = f"too few samples: baseline {bn}, current {cn}; needs {MIN_SAMPLES}"
                continue
            q = _FIGURE_PERCENTILE.get(figure)
            if q is not None:
                need = tail_samples_needed(q)
                if need is not None and min(bn, cn) < need:
                    f.reason = (f"too few samples: a {fmt.number(q)}th percentile needs {need} "
                                f"(baseline {bn}, current {cn})")
                    continue
            _noise_sides(base_cols.get(k), cur_cols.get(k), figure, "count",
                         INTERVAL_MIN_SAMPLES if q is not None else 1, f)
            if figure == "error_rate":
                _binomial_floor(f, bv, bn, cv, cn)
    return out


def _criteria(c: Comparison, base_list: list, cur_list: list, base_cols: dict, cur_cols: dict) -> list[_Figure]:
    base, cur = {x["label"]: x for x in base_list}, {x["label"]: x for x in cur_list}
    out = []
    for label in _one_sided(c, "criterion", base, cur, str):
        b, n = base[label], cur[label]
        unit = n.get("unit", "")
        c.units[label] = unit
        bverdict, cverdict = b.get("verdict"), n.get("verdict")
        status = ("regressed" if bverdict == "pass" and cverdict == "fail"
                  else "improved" if bverdict == "fail" and cverdict == "pass" else "unchanged")
        out.append(_Figure("criterion", label, "verdict", bverdict, cverdict, limit="pass", verdict_status=status))
        if bverdict == "pass" and cverdict == "inconclusive":
            c.notes.append(f"criterion {label}: pass in the baseline, inconclusive now "
                           f"({n.get('reason') or 'no reason'})")
        bv, cv = b.get("value"), n.get("value")
        if bv is None or cv is None:
            continue
        agg = b.get("aggregation") or ""
        q = percentile_of(agg)
        if agg in ("min", "max") or (q is not None and tail_samples_needed(q) is None):
            what = f"a {agg}imum" if q is None else f"a {fmt.number(q)}th percentile"
            c.notes.append(f"criterion {label}: value not compared, {what} is one sample")
            continue
        op = n.get("op", b.get("op"))
        direction = _BAD_DIRECTION.get(op, 0)
        is_ms = unit == "ms"
        sign = {1: "+", -1: "-", 0: "±"}[direction]
        f = _Figure("criterion", label, "value", bv, cv, direction=direction,
                    min_effect=max(c.tolerance * abs(bv), MS_FLOOR if is_ms else 0.0),
                    limit=f"{sign}{fmt.number(c.tolerance * 100)} %" + (f" and {sign}{fmt.number(MS_FLOOR)} ms"
                                                                         if is_ms else ""))
        out.append(f)
        bn, cn = b.get("samples") or 0, n.get("samples") or 0
        if agg == "count":                 # a count of events: Poisson, exact in itself
            f.sides = (_Side(math.sqrt(max(bv, 0.0)), math.inf), _Side(math.sqrt(max(cv, 0.0)), math.inf))
            continue
        if min(bn, cn) < MIN_SAMPLES:
            f.reason = f"too few samples: baseline {bn}, current {cn}; needs {MIN_SAMPLES}"
            continue
        if q is not None:
            need = tail_samples_needed(q)
            if need is not None and min(bn, cn) < need:
                f.reason = f"too few samples: a {fmt.number(q)}th percentile needs {need} (baseline {bn}, current {cn})"
                continue
        _noise_sides(base_cols.get(label), cur_cols.get(label), "value", "samples",
                     INTERVAL_MIN_SAMPLES if q is not None and q != 50 else 1, f)
        if agg == "rate" and unit == "ratio" and 0 <= bv <= 1 and 0 <= cv <= 1:
            _binomial_floor(f, bv, bn, cv, cn)
    return out


# -- judging ------------------------------------------------------------------------------------

def _judge(c: Comparison, figures: list[_Figure]) -> None:
    tested = [f for f in figures if f.verdict_status is None and f.reason is None and f.sides is not None]
    each = c.alpha / max(1, len(tested))           # Bonferroni: the family-wise rate stays <= alpha
    for f in figures:
        change = None
        if isinstance(f.base, (int, float)) and isinstance(f.cur, (int, float)) and f.base != 0:
            change = f.cur / f.base - 1.0
        row: dict[str, Any] = {"kind": f.kind, "key": f.key, "figure": f.figure, "baseline": f.base,
                               "current": f.cur, "change": change, "limit": f.limit, "noise": None}
        if f.verdict_status is not None:
            status = f.verdict_status
        elif f.reason is not None or f.sides is None:
            status = "not judgeable"
            row["reason"] = f.reason or "no noise estimate"
            c.notes.append(f"{f.kind} {f.key}: {f.figure} not judgeable ({row['reason']})")
        else:
            b, n = f.sides
            half = noise.band(b.se, b.k, n.se, n.k, each)
            row["noise"] = round(half, 6)
            # The noise test is on the batch estimates (the interval values' weighted means), whose
            # noise the intervals estimate; for a percentile the run's merged percentile reacts more to
            # its slowest intervals than their spread shows (measured: ~15 % more noise at p95). The
            # minimum effect is on the figures people read, the run's own.
            d = f.cur - f.base
            dt = n.mean - b.mean if n.mean is not None and b.mean is not None else d
            moved, moved_t = (abs(d), abs(dt)) if f.direction == 0 else (d * f.direction, dt * f.direction)
            if moved_t > half and moved > f.min_effect:
                status = "regressed"
            elif f.direction != 0 and -moved_t > half and -moved > f.min_effect:
                status = "improved"
            elif abs(dt) <= half:
                status = "within noise"
            else:
                status = "within tolerance"
        if status == "not judgeable":
            c.not_judgeable += 1
        else:
            c.checked += 1
        c.rows.append({**row, "status": status})
        if status == "regressed":
            c.regressions.append(dict(row))


# -- rendering ----------------------------------------------------------------------------------

def render_comparison(c: Comparison) -> str:
    """A plain-text report: the verdict line, every figure with its noise band and verdict, the
    regressions and the notes."""
    def fig(r: dict, side: str) -> str:
        return fmt.regression_figure(r["kind"], r["figure"], r[side], c.unit(r["kind"], r["key"], r["figure"]))

    def band(r: dict) -> str:
        if r.get("noise") is None:
            return "-"
        return "±" + fmt.regression_figure(r["kind"], r["figure"], r["noise"], c.unit(r["kind"], r["key"], r["figure"]))

    def verdict(r: dict) -> str:
        if r["status"] == "regressed":
            return "REGRESSED"
        if r["status"] == "not judgeable":
            return f"not judgeable ({r.get('reason', '')})"
        return r["status"]

    base_id, cur_id = c.baseline_run.get("run_id", "?"), c.current_run.get("run_id", "?")
    lines = [f"baseline {base_id} ({c.baseline_run.get('profile', '?')}) → current {cur_id} "
             f"({c.current_run.get('profile', '?')}), tolerance {fmt.number(c.tolerance * 100)} %, "
             f"noise band: {fmt.number((1 - c.alpha) * 100)} % for the whole comparison"]
    if c.rows:
        header = ("kind", "key", "figure", "baseline", "current", "change", "noise", "min effect", "verdict")
        table = [header] + [(r["kind"], r["key"], r["figure"], fig(r, "baseline"), fig(r, "current"),
                             fmt.change(r["change"]), band(r), r["limit"], verdict(r)) for r in c.rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        lines.append("")
        for row in table:
            lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    notes = [n for n in c.notes if "not judgeable (" not in n]      # those are in the table
    if notes:
        lines.append("")
        lines.extend(f"note: {n}" for n in notes)
    lines.append("")
    tail = f"; {c.not_judgeable} not judgeable" if c.not_judgeable else ""
    if c.passed:
        lines.append(f"PASS: no regression in {c.checked} figures compared{tail}")
    else:
        lines.append(f"REGRESSION: {len(c.regressions)} of {c.checked} figures regressed{tail}")
        lines.extend(f"  {r['kind']} {r['key']} {r['figure']}: "
                     f"{fig(r, 'baseline')} → {fig(r, 'current')} "
                     f"({fmt.change(r['change'])}, noise {band(r)}, min effect {r['limit']})" for r in c.regressions)
    return "\n".join(lines) + "\n"
