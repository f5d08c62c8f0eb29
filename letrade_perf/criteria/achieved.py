"""Planned vs achieved: what the profile planned, what the run did, and the shortfalls.

The gate keeps one :class:`Achieved` per run (local or master process): it is started with the
test, sampled with the running user count about once a second, and stopped with the test. At
the end :meth:`Achieved.report` compares it with the plan:

* **users** — the stages' user count against the users running, outside each ramp (a stage's
  change of users ÷ its spawn rate, plus :data:`RAMP_GRACE_S`); more time below the plan than
  ``tolerate.users_below_plan`` of the run is a shortfall;
* **duration** — a test shorter than the profile's duration by more than
  ``tolerate.short_run_s`` (a ``--run-time`` from the command line or a ``locust.conf``, a stop);
* **workers lost** while the test ran, beyond ``tolerate.workers_lost``;
* **safety refusals** — orders the safety caps refused before sending (each stops a strategy's
  trading), beyond ``tolerate.safety_refusals``;
* **pacing** — the users' time blocked by pacing (reported; a shortfall only beyond
  ``tolerate.paced``, 1.0 by default: pacing is part of the plan);
* **user errors** — exceptions out of tasks and ``on_start`` (reported here; the
  ``user_errors`` criterion judges them);
* **orders blocked** — the test's time with new orders blocked by an operator or an
  ``on_fail: block_orders`` criterion (:meth:`Achieved.orders_blocked`): the plan's orders were
  not placed meanwhile; beyond ``tolerate.orders_blocked_s`` a shortfall;
* **dropped iterations** — open model (a kind's ``arrival_rate``): the iterations the schedule
  planned (started + dropped) against those started, from the processes' cumulative gauges
  ``iterations.<kind>`` and ``dropped_iterations.<kind>`` (:attr:`Achieved.gauge`); more dropped
  than ``tolerate.dropped_iterations`` of the planned is a shortfall.

No wall clock: the clock is injected (``time.monotonic`` by default), so tests drive it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config.profile import Profile

RAMP_GRACE_S = 3.0
"""Time after a stage's ramp in which users below the plan are not a shortfall (spawning is
dispatched in steps; a distributed run adds a report interval)."""
MAX_TIMELINE_POINTS = 240
"""At most this many ``[t, planned, running]`` points in the report (evenly thinned)."""


@dataclass(frozen=True)
class Shortfall:
    """One way the run fell short of its plan."""

    kind: str
    """``users``, ``duration``, ``workers_lost``, ``safety_refusals``, ``paced``, ``orders_blocked`` or
    ``dropped_iterations``."""
    message: str
    tolerated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "tolerated": self.tolerated}


def planned_users(profile: Profile, t: float) -> tuple[int, bool]:
    """``(users the stages plan at t seconds into the test, whether t is inside a ramp)``; after
    the last stage ``(0, False)``."""
    start = 0.0
    prev = 0
    for stage in profile.stages:
        end = start + stage.duration_s
        if t < end:
            ramp = abs(stage.users - prev) / stage.spawn_rate if stage.spawn_rate > 0 else 0.0
            return stage.users, t < start + ramp + RAMP_GRACE_S
        start, prev = end, stage.users
    return 0, False


class Achieved:
    """Samples of the running users between the test's start and stop (see the module docstring)."""

    def __init__(self, profile: Profile, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self.clock = clock
        self.started: float | None = None
        self.stopped: float | None = None
        self.samples: list[tuple[float, int, int, bool]] = []   # (t, planned, running, in ramp)
        self.peak_running = 0
        self._blocked_since: float | None = None      # clock time new orders were blocked at
        self.gauge: Callable[[str], float] | None = None
        """The run's merged cumulative gauges by name (``MetricsStore.gauge``): the open model's counts."""
        self._blocks: list[tuple[float, float | None]] = []   # (from, to) clock times

    def orders_blocked(self, blocked: bool) -> None:
        """New orders were blocked (``blocked``) or resumed now (repeats are ignored)."""
        now = self.clock()
        if blocked and self._blocked_since is None:
            self._blocked_since = now
            self._blocks.append((now, None))
        elif not blocked and self._blocked_since is not None:
            self._blocks[-1] = (self._blocked_since, now)
            self._blocked_since = None

    def orders_blocked_s(self) -> float:
        """Seconds of the test (between its start and stop, or now) with new orders blocked."""
        if self.started is None:
            return 0.0
        end = self.stopped if self.stopped is not None else self.clock()
        total = 0.0
        for a, b in self._blocks:
            b = end if b is None else b
            total += max(0.0, min(b, end) - max(a, self.started))
        return total

    def start(self) -> None:
        if self.started is None:
            self.started = self.clock()

    def stop(self) -> None:
        if self.started is not None and self.stopped is None:
            self.stopped = self.clock()

    @property
    def running(self) -> bool:
        return self.started is not None and self.stopped is None

    def elapsed_s(self) -> float:
        if self.started is None:
            return 0.0
        return max(0.0, (self.stopped if self.stopped is not None else self.clock()) - self.started)

    def sample(self, users: int) -> None:
        """Record the users running now (ignored before the start and after the stop)."""
        if not self.running:
            return
        t = self.elapsed_s()
        planned, ramp = planned_users(self.profile, t)
        self.samples.append((t, planned, users, ramp))
        self.peak_running = max(self.peak_running, users)

    def below_plan_s(self) -> float:
        """Seconds (outside ramps) in which fewer users ran than planned."""
        total = 0.0
        for (t, planned, running, ramp), nxt in zip(self.samples, self.samples[1:] + [None]):
            end = nxt[0] if nxt is not None else self.elapsed_s()
            if not ramp and running < planned:
                total += max(0.0, end - t)
        return total

    def user_seconds(self) -> tuple[float, float]:
        """``(planned, achieved)`` user-seconds over the samples."""
        planned = achieved = 0.0
        for (t, p, running, _ramp), nxt in zip(self.samples, self.samples[1:] + [None]):
            end = nxt[0] if nxt is not None else self.elapsed_s()
            dt = max(0.0, end - t)
            planned += p * dt
            achieved += running * dt
        return planned, achieved

    def iterations(self) -> dict[str, dict[str, Any]]:
        """Per open-model kind: its ``rate_per_s`` and the iterations ``planned`` (started +
        dropped), ``started`` and ``dropped`` so far (empty without open-model kinds)."""
        out: dict[str, dict[str, Any]] = {}
        for kind, settings in self.profile.users.active().items():
            rate = getattr(settings, "arrival_rate", None)
            if rate is None:
                continue
            gauge = self.gauge
            started = int(gauge(f"iterations.{kind}")) if gauge is not None else 0
            dropped = int(gauge(f"dropped_iterations.{kind}")) if gauge is not None else 0
            out[kind] = {"rate_per_s": rate, "planned": started + dropped, "started": started, "dropped": dropped}
        return out

    def timeline(self) -> list[list[float]]:
        pts = [[round(t, 1), p, r] for t, p, r, _ in self.samples]
        if len(pts) <= MAX_TIMELINE_POINTS:
            return pts
        step = len(pts) / MAX_TIMELINE_POINTS
        return [pts[int(i * step)] for i in range(MAX_TIMELINE_POINTS)] + [pts[-1]]

    def report(self, *, run_time_s: float | None = None, workers_planned: int = 0,
               workers_lost: list[dict[str, Any]] | None = None, safety_refusals: int = 0,
               strategies_stopped: dict[str, int] | None = None, paced_s: float | None = None,
               user_errors: int = 0, judge_plan: bool = True) -> dict[str, Any]:
        """The ``achieved`` section of ``summary.json``: plan, achieved figures and shortfalls.

        ``judge_plan`` False (a run that ended for another reason: an operator stop, an abort, a
        crash) lists what was achieved without calling the missing part of the plan shortfalls.
        """
        p = self.profile
        tol = p.tolerate
        lost = list(workers_lost or [])
        stops = dict(strategies_stopped or {})
        duration = self.elapsed_s()
        below = self.below_plan_s()
        planned_us, achieved_us = self.user_seconds()
        # user-seconds come from 1 s samples, the pacer's waits from every user's own clock: the
        # ratio may pass 1 by a sample's worth (a user waiting since before the first sample)
        paced_fraction = min(1.0, paced_s / achieved_us) if paced_s is not None and achieved_us > 0 else None
        blocked_s = self.orders_blocked_s()
        iterations = self.iterations()
        shortfalls: list[Shortfall] = []

        def short(kind: str, message: str, tolerated: bool) -> None:
            shortfalls.append(Shortfall(kind, message, tolerated))

        if judge_plan:
            if self.started is None:
                short("duration", "the test never started", False)
            else:
                missing = p.duration_s - duration
                if missing > tol.short_run_s:
                    why = ""
                    if run_time_s is not None and run_time_s < p.duration_s:
                        why = (f" (cut by a run time of {run_time_s:g} s: --run-time on the command line, "
                               "LOCUST_RUN_TIME or a locust.conf)")
                    short("duration", f"the test ran {duration:.1f} s of the profile's {p.duration_s:g} s{why}", False)
                if duration > 0 and below > tol.users_below_plan * duration:
                    short("users", f"fewer users than planned for {below:.1f} s of {duration:.1f} s "
                                   f"(tolerated: {tol.users_below_plan:.0%}); peak {self.peak_running} of "
                                   f"{max(s.users for s in p.stages)} planned", False)
            for kind, it in iterations.items():
                if it["dropped"]:
                    short("dropped_iterations",
                          f"{it['dropped']} of {it['planned']} {kind} iterations dropped "
                          f"({it['dropped'] / it['planned']:.1%}; tolerated: {tol.dropped_iterations:.0%}): no user of "
                          f"the kind was free within the slot at {it['rate_per_s']:g}/s — add users of the kind "
                          "(or workers), or lower the arrival rate", it["dropped"] <= tol.dropped_iterations * it["planned"])
        if lost:
            names = ", ".join(str(w.get("worker")) for w in lost)
            short("workers_lost", f"{len(lost)} worker(s) lost while the test ran: {names}; their counts "
                                  "after their last report are missing", len(lost) <= tol.workers_lost)
        if safety_refusals:
            why = ", ".join(f"{k} ×{v}" for k, v in sorted(stops.items())) or "orders refused"
            short("safety_refusals", f"{safety_refusals} order(s) refused by the safety caps before sending ({why}): "
                                     "strategies stopped trading", safety_refusals <= tol.safety_refusals)
        if paced_fraction is not None and tol.paced < 1.0 and paced_fraction > tol.paced:
            short("paced", f"users blocked by pacing {paced_fraction:.0%} of their time "
                           f"(tolerated: {tol.paced:.0%})", False)
        if blocked_s > 0:
            short("orders_blocked", f"new orders blocked for {blocked_s:.1f} s of the test ({len(self._blocks)} "
                                    f"block(s); tolerated: {tol.orders_blocked_s:g} s)",
                  blocked_s <= tol.orders_blocked_s)
        return {
            "planned": {"duration_s": round(p.duration_s, 3), "peak_users": max(s.users for s in p.stages),
                        "stages": [{"duration_s": s.duration_s, "users": s.users, "spawn_rate": s.spawn_rate}
                                   for s in p.stages],
                        "workers": workers_planned, "run_time_s": run_time_s,
                        "arrival_rates": {k: it["rate_per_s"] for k, it in iterations.items()}},
            "achieved": {"duration_s": round(duration, 3), "peak_users": self.peak_running,
                         "user_seconds": round(achieved_us, 1), "planned_user_seconds": round(planned_us, 1),
                         "below_plan_s": round(below, 1), "user_errors": user_errors,
                         "workers_lost": lost, "safety_refusals": safety_refusals,
                         "strategies_stopped": stops,
                         "paced_s": None if paced_s is None else round(paced_s, 3),
                         "paced_fraction": None if paced_fraction is None else round(paced_fraction, 4),
                         "orders_blocked_s": round(blocked_s, 3), "iterations": iterations},
            "shortfalls": [s.to_dict() for s in shortfalls],
            "timeline": self.timeline(),
        }


def untolerated(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The shortfalls of a report that make the run INCOMPLETE."""
    return [s for s in report.get("shortfalls") or [] if not s.get("tolerated")]
