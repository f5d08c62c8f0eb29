"""The criteria gate without Locust: merged metrics in, verdicts, live state and the run summary out.

:class:`Gate` owns the run's :class:`~letrade_perf.metrics.recorder.MetricsStore` (every
snapshot merged: a local process's own, or every worker's on the master), judges the profile's
effective criteria (its own plus the test plan's defaults) on demand, and builds the
``summary.json`` document (:data:`letrade_perf.reports.SCHEMA_VERSION`). The Locust wiring —
when to evaluate, abort, write and notify — is :mod:`letrade_perf.harness.gate`.
"""
from __future__ import annotations

import datetime as _dt
import time
from typing import TYPE_CHECKING, Any, Callable

from ..core.runmeta import git_commit, versions
from ..metrics.generator import METRICS as GENERATOR_METRICS
from ..metrics.generator import GeneratorTimeline
from ..metrics.histogram import RELATIVE_ERROR
from ..metrics.recorder import MetricsStore, Snapshot
from .evaluate import FAIL, PASS, Result, effective_criteria, format_value, judge, saturated_result, unit_of, verdict_of
from .intervals import IntervalTable, interval_width

if TYPE_CHECKING:
    from ..config.profile import Profile

SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
_TREND_EXCLUDED = frozenset({"ws_lag", "slippage", "fees", "fund_safety", "portfolio_weight"}) | GENERATOR_METRICS


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(float(v), nd)


class Gate:
    """The criteria of one run and their latest verdicts.

    ``clock`` is wall time in seconds (injectable for tests)."""

    def __init__(self, profile: Profile, *, clock: Callable[[], float] = time.time) -> None:
        self.profile = profile
        self.criteria = effective_criteria(profile)
        self.allow_inconclusive = profile.gate.allow_inconclusive
        self.store = MetricsStore()
        # per-interval rollups for summary.json["intervals"]: the noise `compare` judges against
        self.intervals = IntervalTable(interval_width(profile.gate.eval_every_s, getattr(profile, "duration_s", 0.0)),
                                       [c for c, _src in self.criteria], excluded=_TREND_EXCLUDED)
        gen = getattr(profile, "generator", None)
        self.generator_enabled = gen is None or gen.enabled
        # the generator's own health over the test: summary["generator"] and its saturation
        self.generator = GeneratorTimeline(*((gen.cpu_percent, gen.loop_lag_p99_ms, gen.max_saturated_fraction,
                                              gen.min_saturated_s, gen.lag_cpu_percent) if gen is not None else ()))
        self.clock = clock
        self.created_at = clock()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.results: list[Result] = []
        self.evaluated_at: float | None = None
        self.state = "pending"          # pending | running | then the final verdict (core.endings.VERDICTS)

    # -- data -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.started_at is None:
            self.started_at = self.clock()
            self.state = "running"

    def merge(self, snap: Snapshot, source: str = "local") -> None:
        self.store.merge(snap, source)
        self.intervals.add(snap, source)
        self.generator.add(snap, since=self.started_at)

    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return max(0.0, (self.ended_at or self.clock()) - self.started_at)

    # -- judging --------------------------------------------------------------------------------
    def evaluate(self) -> list[Result]:
        """Judge every criterion on the metrics merged so far."""
        elapsed = self.elapsed_s()
        self.results = [judge(c, self.store, elapsed, allow_inconclusive=self.allow_inconclusive, source=src)
                        for c, src in self.criteria]
        saturation = self.generator.saturation(elapsed)
        if self.generator_enabled and saturation.saturated:   # the latency figures measured the generator
            message = saturation.message()
            self.results = [saturated_result(r, message) for r in self.results]
        self.evaluated_at = self.clock()
        return self.results

    def generator_saturated(self) -> bool:
        """Whether the last evaluation found the load generator saturated (latency criteria inconclusive)."""
        return any(r.generator_saturated for r in self.results)

    @property
    def verdict(self) -> str:
        """``pass`` when every criterion's gate passes (a run without criteria passes), else ``fail``."""
        return verdict_of(self.results)

    def failing(self) -> list[Result]:
        return [r for r in self.results if r.gate == FAIL]

    def snapshot(self) -> dict[str, Any]:
        """The live state for the web UI's Criteria tab and ``GET /letrade/criteria``."""
        results = self.results
        if self.state not in ("pending", "running"):
            verdict = self.state
        elif not results:
            verdict = "pending"
        else:
            verdict = verdict_of(results)
        if results:
            rows = [r.to_dict() for r in results]
        else:
            rows = [{"label": c.label, "metric": c.metric, "tags": dict(c.tags), "expression": c.expression,
                     "aggregation": c.aggregation, "op": c.op, "threshold": c.threshold, "value": None,
                     "samples": 0, "verdict": "inconclusive", "gate": FAIL if not self.allow_inconclusive else PASS,
                     "reason": "not evaluated yet", "abort_on_fail": c.abort_on_fail, "source": src,
                     "unit": unit_of(c)} for c, src in self.criteria]
        return {"updated_at": self.evaluated_at or self.created_at, "elapsed_s": round(self.elapsed_s(), 3),
                "verdict": verdict, "criteria": rows,
                "generator_saturation": self.generator.saturation(self.elapsed_s()).to_dict()
                if self.generator_enabled else None}

    def console_line(self) -> str:
        """One line for the live console: counts and the failing criteria."""
        counts = {PASS: 0, FAIL: 0, "inconclusive": 0}
        for r in self.results:
            counts[r.verdict] += 1
        line = (f"criteria @ {self.elapsed_s():.0f}s: {counts[PASS]} pass, {counts[FAIL]} fail, "
                f"{counts['inconclusive']} inconclusive")
        bad = [r for r in self.results if r.verdict == FAIL]
        if bad:
            line += " | FAIL " + "; ".join(f"{r.criterion.label} = {format_value(r.value, r.unit)}" for r in bad[:4])
        return line

    def table(self) -> str:
        """The final criteria table for the console."""
        rows = [("verdict", "criterion", "value", "samples", "note")]
        for r in self.results:
            rows.append((r.verdict.upper(), r.criterion.label, format_value(r.value, r.unit), str(r.samples),
                         (r.reason or "") + (" (allowed)" if r.verdict == "inconclusive" and r.allow_inconclusive
                                             else "")))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for i, row in enumerate(rows):
            lines.append("  ".join(row[j].ljust(widths[j]) if j != 2 else row[j].rjust(widths[j])
                                   for j in range(4)) + ("  " + row[4] if row[4] else ""))
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    # -- the summary ----------------------------------------------------------------------------
    def endpoint_rows(self) -> list[dict[str, Any]]:
        """Per (type, name): counts and exact-histogram figures of every timed request kind."""
        duration = self.elapsed_s()
        groups: dict[tuple[str, str], list[Any]] = {}   # [merged Histogram, failures, clock errors]
        for (metric, tags), s in self.store.series.items():
            if metric in _TREND_EXCLUDED:
                continue
            t = dict(tags)
            kind = t.get("type", metric) if metric == "request" else metric
            name = t.get("name", "")
            g = groups.setdefault((kind, name), [None, 0, 0])
            if g[0] is None:
                g[0] = s.hist.copy()
            else:
                g[0].merge(s.hist)
            if t.get("status") == "fail":
                g[1] += s.hist.count
            elif t.get("status") == "clock":
                g[2] += s.hist.count
        out = []
        for (kind, name), (h, fails, clock_errors) in sorted(groups.items()):
            p50, p90, p95, p99 = h.percentiles(SUMMARY_PERCENTILES)
            out.append({"type": kind, "name": name, "count": h.count, "failures": fails, "clock_errors": clock_errors,
                        "error_rate": round(fails / h.count, 6) if h.count else 0.0,
                        "rps": round(h.count / duration, 3) if duration > 0 else 0.0,
                        "avg_ms": _r(h.mean), "min_ms": _r(h.min if h.count else None),
                        "max_ms": _r(h.max if h.count else None), "p50_ms": _r(p50), "p90_ms": _r(p90),
                        "p95_ms": _r(p95), "p99_ms": _r(p99)})
        return out

    def stream_rows(self) -> list[dict[str, Any]]:
        out = []
        for stream, s in sorted(self.store.by_tag("ws_lag", "stream").items()):
            h = s.hist
            p50, p90, p95, p99 = h.percentiles(SUMMARY_PERCENTILES)
            out.append({"stream": stream, "count": h.count, "avg_ms": _r(h.mean),
                        "min_ms": _r(h.min if h.count else None), "max_ms": _r(h.max if h.count else None),
                        "p50_ms": _r(p50), "p90_ms": _r(p90), "p95_ms": _r(p95), "p99_ms": _r(p99),
                        "uncertainty_ms": _r(s.uncertainty_ms)})
        return out

    def summary(self, *, run_id: str, env: str, host: str | None, workers: int, exit_code: int,
                aborted: str | None, extra: dict[str, Any] | None = None,
                target: dict[str, Any] | None = None, verdict: str | None = None,
                ending: str | None = None, ending_reason: str | None = None,
                achieved: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``summary.json`` document (schema version 1). ``verdict`` (with ``ending``) is the
        run's final verdict when the caller judged the ending (:func:`~letrade_perf.core.endings.judge`);
        without it the criteria's (``aborted`` when ``aborted``)."""
        end = self.ended_at or self.clock()
        start = self.started_at or self.created_at
        extra = extra or {}
        if verdict is None:
            verdict = "aborted" if aborted else self.verdict
            if verdict == PASS and (extra.get("baseline") or {}).get("verdict") == "fail":
                verdict = FAIL              # a regression beyond the tolerance fails the gate too
        p = self.profile
        return {
            "schema": "letrade-perf/summary", "schema_version": 1,
            "run": {"run_id": run_id, "profile": p.name, "profile_source": p.source, "description": p.description,
                    "env": env, "host": host, "target": target, "started_at": _iso(start), "ended_at": _iso(end),
                    "duration_s": round(max(0.0, end - start), 3), "workers": workers, "git_commit": git_commit(),
                    "versions": versions(), "aborted": aborted, "exit_code": exit_code,
                    "ending_reason": ending_reason},
            "verdict": verdict,
            "ending": ending,
            "achieved": achieved,
            "histogram_relative_error": RELATIVE_ERROR,
            "endpoints": self.endpoint_rows(),
            "streams": self.stream_rows(),
            "criteria": [r.to_dict() for r in self.results],
            "baseline": extra.get("baseline"),
            "orders": extra.get("orders") or {},
            "pacing": extra.get("pacing"),
            "ws": extra.get("ws"),
            "sink": extra.get("sink"),
            "intervals": self.intervals.to_summary(self.started_at),
            "generator": self.generator.to_summary(self.started_at),
            "generator_saturation": self.generator.saturation(self.elapsed_s()).to_dict()
            if self.generator_enabled else None,
        }
