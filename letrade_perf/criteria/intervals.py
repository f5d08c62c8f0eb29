"""The run's per-interval figures: ``summary.json["intervals"]``, what ``compare`` estimates noise from.

:class:`IntervalTable` takes every snapshot the gate merges (a local process's every
``gate.eval_every_s``, each worker's every 3 s) and files it into a time bucket of ``width_s``
seconds by the snapshot's midpoint; the workers' snapshots of one period land in one bucket. The
two newest buckets stay open as merged :class:`~letrade_perf.metrics.recorder.MetricsStore`\\ s (a
worker's report may arrive a period late); an older bucket is rolled up into a few numbers per
endpoint, stream and criterion and its histograms are dropped. Percentiles come from each
bucket's merged histogram, never from averaged percentiles.

Size is bounded: the width is ``max(eval_every_s, planned duration / MAX_INTERVALS)``, so a run
that keeps to its plan has at most about :data:`MAX_INTERVALS` intervals; a run that goes on
past it (the web UI) doubles the width of further buckets each time the table grows by another
``MAX_INTERVALS / 2``, so a day-long overrun adds a few hundred intervals at most.

The summary form is columnar: ``t_s`` (each interval's start, seconds from the test start) and
``dur_s`` are shared, and each endpoint, stream and criterion holds one list per figure aligned
with them (``null`` where the interval had no sample). ``gauges`` (pacer weight used and budget at
each interval's end, 429 / 418 answers in it), ``orders`` (per outcome) and ``errors`` (per code, at
most :data:`MAX_ERROR_CODES` columns) are the charts' time series (:mod:`letrade_perf.reports.charts`).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from ..metrics.recorder import MetricsStore, Snapshot
from .evaluate import measure
from .grammar import Criterion

MAX_INTERVALS = 120
"""Intervals a run that keeps to its plan has at most (the width grows with the planned duration)."""
INTERVAL_PERCENTILES = (50.0, 95.0, 99.0)
"""Percentiles kept per interval (``p50_ms``, ``p95_ms``, ``p99_ms``)."""
#: Process gauges kept per interval (their sum over the sources at the interval's end): the pacer's
#: weight used in its current window vs its budget, and its cumulative 429 / 418 counts.
INTERVAL_GAUGES = ("weight_used", "weight_budget", "r429", "r418")
#: Order outcomes counted per interval (the ``orders`` counter, :mod:`letrade_perf.harness.ledger`).
ORDER_OUTCOMES = ("sent", "placed", "filled", "canceled", "expired", "rejected", "refused", "blocked")
#: Error codes kept per interval at most (the most frequent; the rest are summed as ``other``).
MAX_ERROR_CODES = 8
#: Criterion aggregations whose per-interval value is kept: a statistic of the interval's samples.
#: A count or a min/max is not (counts are compared as Poisson counts; a min/max is one sample).
NOISY_AGGREGATIONS = ("avg", "med", "rate")


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(float(v), nd)


def _is_percentile(agg: str) -> bool:
    return agg.startswith("p(")


class IntervalTable:
    """Per-interval rollups of the merged snapshots (see the module docstring).

    ``excluded`` are metrics that are not endpoints (the gate's own exclusion list);
    ``criteria`` the run's effective criteria (those with a per-interval statistic are kept)."""

    def __init__(self, width_s: float, criteria: Iterable[Criterion] = (), *,
                 excluded: Iterable[str] = (), max_intervals: int = MAX_INTERVALS) -> None:
        if not width_s > 0:
            raise ValueError(f"interval width must be > 0 s, got {width_s}")
        self.width_s = float(width_s)
        self.criteria = [c for c in criteria if c.aggregation in NOISY_AGGREGATIONS or _is_percentile(c.aggregation)]
        self.excluded = frozenset(excluded)
        self.max_intervals = max_intervals
        self._limit = max_intervals
        self._origin: float | None = None
        self._width = self.width_s
        self._open: dict[float, tuple[float, MetricsStore]] = {}    # bucket start → (width, store)
        self._closed: list[dict[str, Any]] = []

    # -- filling ---------------------------------------------------------------------------------
    def add(self, snap: Snapshot, source: str = "local") -> None:
        """File ``snap`` into its bucket; roll up the buckets no snapshot can reach any more."""
        if not (snap.series or snap.counters):
            return
        mid = (snap.start + snap.end) / 2.0
        if self._origin is None:
            self._origin = snap.start
        start = self._origin + math.floor((mid - self._origin) / self._width) * self._width
        if start < self._origin and self._open:
            start = min(self._open)                 # a late report: into the oldest open bucket
        if start not in self._open:
            if len(self._closed) + len(self._open) >= self._limit:
                # past the plan: further buckets twice as wide, from the end of the newest one
                newest = max([s + w for s, (w, _st) in self._open.items()] or [start])
                self._origin, self._width = max(newest, self._origin), self._width * 2.0
                self._limit += self.max_intervals // 2
                start = self._origin + max(0, math.floor((mid - self._origin) / self._width)) * self._width
            if start not in self._open:
                self._open[start] = (self._width, MetricsStore())
        self._open[start][1].merge(snap, source)
        for s in sorted(self._open)[:-2]:        # the two newest stay open for late reports
            width, store = self._open.pop(s)
            self._closed.append(self._rollup(s, width, store))

    def _rollup(self, start: float, width: float, store: MetricsStore) -> dict[str, Any]:
        """One interval's figures from its merged store."""
        endpoints: dict[tuple[str, str], list[Any]] = {}
        for (metric, tags), s in store.series.items():
            if metric in self.excluded or metric == "ws_lag":
                continue
            t = dict(tags)
            key = (t.get("type", metric) if metric == "request" else metric, t.get("name", ""))
            g = endpoints.setdefault(key, [None, 0])
            g[0] = s.hist.copy() if g[0] is None else g[0].merge(s.hist)
            if t.get("status") == "fail":
                g[1] += s.hist.count
        ep = {}
        for key, (h, fails) in endpoints.items():
            p50, p95, p99 = h.percentiles(INTERVAL_PERCENTILES)
            ep[key] = {"count": h.count, "failures": fails, "avg_ms": _r(h.mean), "p50_ms": _r(p50), "p95_ms": _r(p95),
                       "p99_ms": _r(p99)}
        st = {}
        for stream, s in store.by_tag("ws_lag", "stream").items():
            p50, p95, p99 = s.hist.percentiles(INTERVAL_PERCENTILES)
            st[stream] = {"count": s.hist.count, "avg_ms": _r(s.hist.mean), "p50_ms": _r(p50), "p95_ms": _r(p95),
                          "p99_ms": _r(p99), "unc_ms": _r(s.uncertainty_ms)}
        cr = {}
        for c in self.criteria:
            try:
                value, samples, _unc = measure(c, store, width)
            except Exception:        # a criterion that cannot be read per interval has no interval values
                continue
            cr[c.label] = {"value": None if value is None else round(float(value), 6), "samples": int(samples)}
        gauges = {g: store.gauge(g) for g in INTERVAL_GAUGES}
        orders = {o: store.counter("orders", (("outcome", o),)) for o in ORDER_OUTCOMES}
        return {"start": start, "dur": width, "endpoints": ep, "streams": st, "criteria": cr, "gauges": gauges,
                "orders": orders, "errors": _error_codes(store)}

    # -- reading ---------------------------------------------------------------------------------
    def to_summary(self, started_at: float | None) -> dict[str, Any] | None:
        """The summary's ``intervals`` section (open buckets rolled up too, without closing them);
        None before the first snapshot. ``started_at`` is the test start (epoch seconds)."""
        rows = self._closed + [self._rollup(s, w, st) for s, (w, st) in sorted(self._open.items())]
        if not rows:
            return None
        rows.sort(key=lambda r: r["start"])
        zero = started_at if started_at is not None else rows[0]["start"]
        n = len(rows)

        def columns(section: str, figures: tuple[str, ...]) -> dict[Any, dict[str, list[Any]]]:
            out: dict[Any, dict[str, list[Any]]] = {}
            for i, row in enumerate(rows):
                for key, figs in row[section].items():
                    col = out.setdefault(key, {f: [None] * n for f in figures})
                    for f in figures:
                        col[f][i] = figs.get(f)
            for col in out.values():      # an interval without the key had no sample of it
                for f in ("count", "failures", "samples"):
                    if f in col:
                        col[f] = [0 if v is None else v for v in col[f]]
            return out

        eps = columns("endpoints", ("count", "failures", "avg_ms", "p50_ms", "p95_ms", "p99_ms"))
        sts = columns("streams", ("count", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "unc_ms"))
        crs = columns("criteria", ("samples", "value"))
        codes = _top_codes(rows)
        return {
            "width_s": round(self.width_s, 3),
            "t_s": [round(r["start"] - zero, 3) for r in rows],
            "dur_s": [round(r["dur"], 3) for r in rows],
            "endpoints": [{"type": k[0], "name": k[1], **v} for k, v in sorted(eps.items())],
            "streams": [{"stream": k, **v} for k, v in sorted(sts.items())],
            "criteria": [{"label": k, **v} for k, v in crs.items()],
            "gauges": _gauge_columns(rows),
            "orders": {o: [int(r["orders"].get(o, 0)) for r in rows] for o in ORDER_OUTCOMES},
            "errors": {c: [_code_count(r["errors"], c, codes) for r in rows] for c in codes},
        }


def _error_codes(store: MetricsStore) -> dict[str, int]:
    """One interval's errors by code: ``failed`` requests (every transport; no code is recorded per
    request), ``-1021`` (client clock errors), and the error-path scenarios' answers by Binance code."""
    out: dict[str, int] = {}
    for (metric, tags), s in store.series.items():
        if metric == "ws_lag":
            continue
        status = dict(tags).get("status")
        if status in ("fail", "clock"):
            code = "failed" if status == "fail" else "-1021"
            out[code] = out.get(code, 0) + s.hist.count
    for (metric, tags), n in store.counters.items():
        if metric == "rejection_code":
            code = dict(tags).get("name", "?")
            if code != "accepted":
                out[code] = out.get(code, 0) + n
    return out


def _top_codes(rows: list[dict[str, Any]]) -> list[str]:
    """The codes of the table's ``errors`` columns: the most frequent (``other`` holds the rest)."""
    totals: dict[str, int] = {}
    for r in rows:
        for code, n in r["errors"].items():
            totals[code] = totals.get(code, 0) + n
    ranked = sorted(totals, key=lambda c: (-totals[c], c))
    if len(ranked) <= MAX_ERROR_CODES:
        return ranked
    return ranked[:MAX_ERROR_CODES - 1] + ["other"]


def _code_count(errors: dict[str, int], code: str, codes: list[str]) -> int:
    if code != "other":
        return int(errors.get(code, 0))
    return int(sum(n for c, n in errors.items() if c not in codes))


def _gauge_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """``weight_used`` / ``weight_budget`` per interval (null where no process reported a budget),
    and the 429 / 418 answers in each interval (differences of the cumulative gauges)."""
    out: dict[str, list[Any]] = {"weight_used": [], "weight_budget": [], "r429": [], "r418": []}
    last = {"r429": 0.0, "r418": 0.0}
    for r in rows:
        g = r.get("gauges") or {}
        budget = g.get("weight_budget") or 0.0
        out["weight_used"].append(int(g.get("weight_used") or 0) if budget else None)
        out["weight_budget"].append(int(budget) if budget else None)
        for k in ("r429", "r418"):
            now = float(g.get(k) or 0.0)
            out[k].append(max(0, int(now - last[k])))
            last[k] = max(last[k], now)
    return out


def interval_width(eval_every_s: float, planned_s: float | None) -> float:
    """The width of a run's intervals: the gate's evaluation period, or wider for a long plan."""
    return max(float(eval_every_s), float(planned_s or 0.0) / MAX_INTERVALS)
