"""The load generator's own health over the run: the timeline of ``summary["generator"]`` and saturation.

Every Locust process (local, master, each worker) measures itself
(:mod:`letrade_perf.harness.selfmon`) and records three catalogued series with tag ``process``:

* ``generator_cpu`` — the process's CPU time ÷ wall time, in % of one core, one sample a second;
* ``generator_rss_mb`` — its resident set size in MB, one sample a second;
* ``generator_loop_lag`` — how late a greenlet that sleeps a fixed period wakes up, in ms (the
  scheduling delay every request of that process suffers too), one sample per wake-up.

and the counter ``generator_saturated_ms{process}``: the milliseconds of its one-second ticks that
were *saturated* (CPU ≥ ``cpu_percent`` of one core, or the tick's loop-lag p99 ≥
``loop_lag_p99_ms``: :class:`~letrade_perf.harness.selfmon.SelfMonitor` judges each tick).

They travel in the processes' snapshots like every other metric, so criteria can name them.
:class:`GeneratorTimeline` takes the snapshots the gate merges and keeps, per process, at most
:data:`MAX_POINTS` points (one per snapshot interval; neighbours are merged pairwise when a long
run needs more), each with its CPU %, highest RSS, loop-lag p99 (from the merged histogram) and
its saturated seconds. :meth:`GeneratorTimeline.saturation` says whether a process was saturated
for more than ``max_saturated_fraction`` of the test and at least ``min_saturated_s`` — the
run's latency and lag figures then describe the generator, not the system under test.

No Locust here and no clock: the snapshots carry their own times.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .histogram import Histogram
from .recorder import Snapshot

CPU, RSS, LOOP_LAG = "generator_cpu", "generator_rss_mb", "generator_loop_lag"
METRICS = frozenset({CPU, RSS, LOOP_LAG})
"""The recorder series the generator's self-monitoring writes (tag ``process``)."""
SATURATED_MS = "generator_saturated_ms"
"""The counter of saturated milliseconds (tag ``process``)."""
MAX_POINTS = 120
"""Points per process in ``summary["generator"]`` at most (neighbours merge beyond it)."""


def _r(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(float(v), nd)


class _Point:
    """One process's figures over ``[start, end)``."""

    __slots__ = ("start", "end", "cpu", "rss", "lag", "saturated_s")

    def __init__(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.cpu, self.rss, self.lag = Histogram(), Histogram(), Histogram()
        self.saturated_s = 0.0

    def merge(self, other: "_Point") -> "_Point":
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        self.cpu.merge(other.cpu)
        self.rss.merge(other.rss)
        self.lag.merge(other.lag)
        self.saturated_s += other.saturated_s
        return self


@dataclass(frozen=True)
class Saturation:
    """The run's generator saturation as of one evaluation."""

    saturated: bool
    """More than ``max_saturated_fraction`` of the test, and at least ``min_saturated_s``, was
    saturated (in some process)."""
    saturated_s: float
    """The most saturated process's saturated seconds."""
    test_s: float
    process: str | None
    """That process (None: none was)."""
    cpu_percent_max: float | None
    """The highest interval CPU % of a saturated interval (any process)."""
    loop_lag_p99_ms_max: float | None
    """The highest interval loop-lag p99 of a saturated interval (any process)."""
    cpu_percent: float
    loop_lag_p99_ms: float
    max_saturated_fraction: float
    min_saturated_s: float = 0.0
    lag_cpu_percent: float = 0.0

    @property
    def fraction(self) -> float:
        return self.saturated_s / self.test_s if self.test_s > 0 else 0.0

    def message(self) -> str:
        """What happened and what to do (the reason of every criterion it makes inconclusive)."""
        cpu = "—" if self.cpu_percent_max is None else f"{self.cpu_percent_max:.0f} %"
        lag = "—" if self.loop_lag_p99_ms_max is None else f"{self.loop_lag_p99_ms_max:.1f} ms"
        return (f"the load generator was saturated for {self.saturated_s:.0f} s of the run's {self.test_s:.0f} s "
                f"({self.fraction:.0%}, process {self.process}: CPU up to {cpu} of one core, loop lag p99 up to {lag}; "
                f"saturated = CPU >= {self.cpu_percent:g} % or loop lag p99 >= {self.loop_lag_p99_ms:g} ms at CPU >= "
                f"{self.lag_cpu_percent:g} % in a second, "
                f"for more than {self.max_saturated_fraction:.0%} of the test and at least {self.min_saturated_s:g} s): "
                "its latency figures measure the generator, "
                "not the system under test — add workers (--workers) or lower users")

    def to_dict(self) -> dict[str, Any]:
        return {"saturated": self.saturated, "saturated_s": round(self.saturated_s, 3), "test_s": round(self.test_s, 3),
                "fraction": round(self.fraction, 4), "process": self.process,
                "cpu_percent_max": _r(self.cpu_percent_max, 1), "loop_lag_p99_ms_max": _r(self.loop_lag_p99_ms_max),
                "thresholds": {"cpu_percent": self.cpu_percent, "loop_lag_p99_ms": self.loop_lag_p99_ms,
                               "max_saturated_fraction": self.max_saturated_fraction,
                               "min_saturated_s": self.min_saturated_s, "lag_cpu_percent": self.lag_cpu_percent},
                "message": self.message() if self.saturated else None}


class GeneratorTimeline:
    """Per process: the generator's points over the test (see the module docstring).

    ``cpu_percent`` and ``loop_lag_p99_ms`` are a second's saturation thresholds (the processes
    judge their seconds; here they only name them), ``max_saturated_fraction`` and
    ``min_saturated_s`` how much of the test a process may be saturated."""

    def __init__(self, cpu_percent: float = 90.0, loop_lag_p99_ms: float = 10.0,
                 max_saturated_fraction: float = 0.10, min_saturated_s: float = 3.0,
                 lag_cpu_percent: float = 50.0, max_points: int = MAX_POINTS) -> None:
        self.cpu_percent = float(cpu_percent)
        self.loop_lag_p99_ms = float(loop_lag_p99_ms)
        self.max_saturated_fraction = float(max_saturated_fraction)
        self.min_saturated_s = float(min_saturated_s)
        self.lag_cpu_percent = float(lag_cpu_percent)
        self.max_points = max(2, int(max_points))
        self._points: dict[str, list[_Point]] = {}
        self._sat_cpu: float | None = None
        self._sat_lag: float | None = None

    def add(self, snap: Snapshot, since: float | None = None) -> None:
        """File the generator series of ``snap``; an interval that ended before ``since`` (the test
        start: the processes' start-up) is left out."""
        if since is None or snap.end <= since or snap.end <= snap.start:
            return
        fresh: dict[str, _Point] = {}
        for (metric, tags), s in snap.series.items():
            if metric not in METRICS or not s.hist.count:
                continue
            process = dict(tags).get("process", "local")
            p = fresh.get(process)
            if p is None:
                # the first interval may begin before the test (start-up): only the test's part counts
                p = fresh[process] = _Point(max(snap.start, since), snap.end)
            {CPU: p.cpu, RSS: p.rss, LOOP_LAG: p.lag}[metric].merge(s.hist)
        for (metric, tags), n in snap.counters.items():
            if metric == SATURATED_MS and n > 0:
                process = dict(tags).get("process", "local")
                p = fresh.get(process)
                if p is None:
                    p = fresh[process] = _Point(max(snap.start, since), snap.end)
                # a tick that began before the test (start-up) counts only with the test's part
                p.saturated_s = min(p.saturated_s + n / 1000.0, p.end - p.start)
        for process, p in fresh.items():
            cpu, lag = p.cpu.mean, p.lag.percentile(99.0)
            if p.saturated_s > 0:
                if cpu is not None:
                    self._sat_cpu = cpu if self._sat_cpu is None else max(self._sat_cpu, cpu)
                if lag is not None:
                    self._sat_lag = lag if self._sat_lag is None else max(self._sat_lag, lag)
            points = self._points.setdefault(process, [])
            points.append(p)
            if len(points) > self.max_points:     # a long run: every two neighbours become one
                points[:] = [points[i].merge(points[i + 1]) if i + 1 < len(points) else points[i]
                             for i in range(0, len(points), 2)]

    def saturated_s(self) -> dict[str, float]:
        """Saturated seconds per process."""
        return {proc: sum(p.saturated_s for p in pts) for proc, pts in self._points.items()}

    def saturation(self, test_s: float) -> Saturation:
        """Whether some process was saturated for more than the allowed share of ``test_s``."""
        per = self.saturated_s()
        process = max(per, key=lambda k: per[k]) if per and max(per.values()) > 0 else None
        worst = per[process] if process is not None else 0.0
        worst = min(worst, test_s) if test_s > 0 else worst
        saturated = test_s > 0 and worst > self.max_saturated_fraction * test_s and worst >= self.min_saturated_s
        return Saturation(saturated, worst, max(test_s, 0.0), process, self._sat_cpu, self._sat_lag,
                          self.cpu_percent, self.loop_lag_p99_ms, self.max_saturated_fraction, self.min_saturated_s,
                          self.lag_cpu_percent)

    def to_summary(self, started_at: float | None) -> dict[str, Any]:
        """``summary["generator"]``: per process the columns ``t_s`` (each point's start, seconds
        from the test start), ``cpu_percent``, ``rss_mb`` (the point's highest), ``loop_lag_p99_ms``
        and ``saturated`` (some of the point was), plus a headline: ``cpu_percent_max``,
        ``loop_lag_p99_ms_max``, ``rss_mb_start`` (the first point's lowest), ``rss_mb_end`` (the
        last point's highest) and ``saturated_s``."""
        out: dict[str, Any] = {}
        for process in sorted(self._points):
            pts = self._points[process]
            zero = started_at if started_at is not None else pts[0].start
            cpu = [_r(p.cpu.mean, 1) for p in pts]
            lag = [_r(p.lag.percentile(99.0)) for p in pts]
            rss = [_r(p.rss.max if p.rss.count else None, 1) for p in pts]
            out[process] = {
                "t_s": [round(p.start - zero, 3) for p in pts],
                "cpu_percent": cpu, "rss_mb": rss, "loop_lag_p99_ms": lag,
                "saturated": [p.saturated_s > 0 for p in pts],
                "cpu_percent_max": max((v for v in cpu if v is not None), default=None),
                "loop_lag_p99_ms_max": max((v for v in lag if v is not None), default=None),
                "rss_mb_start": next((_r(p.rss.min, 1) for p in pts if p.rss.count), None),
                "rss_mb_end": next((_r(p.rss.max, 1) for p in reversed(pts) if p.rss.count), None),
                "saturated_s": round(sum(p.saturated_s for p in pts), 3),
            }
        return out


__all__ = ["CPU", "RSS", "LOOP_LAG", "METRICS", "SATURATED_MS", "MAX_POINTS", "GeneratorTimeline", "Saturation"]
