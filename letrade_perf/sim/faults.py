"""Fault injection and latency: which request gets which fault, and how long each response waits.

A rule (:class:`~letrade_perf.sim.config.FaultSpec`) matches request names (``GET /api/v3/depth``;
``*`` matches everything; for WebSocket kinds the names are the WS layer's, e.g. stream names),
is active from ``after_s`` for ``duration_s`` (0 = forever) after it was installed, fires at
most ``count`` times (0 = unlimited) and picks requests by ``every`` (each N-th matching request),
else by ``probability`` (seeded rng), else every matching request. Rules are tried in
installation order; the first that fires wins. Every injection is counted in
``stats.fault(kind)``.

``clock_skew`` rules are not per request: while one is active the server clock is skewed by
its ``skew_ms`` (added to the base skew set through the control API).

``partial_fill`` rules are per order: the matching engine asks :meth:`FaultModel.fill_parts`
(``endpoints`` are symbols) once for each account order that takes liquidity, and a firing rule
splits each of the order's fills into ``parts`` executions.

Windows are measured on the clock without its skew, so a skew rule does not move windows.
"""
from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Callable

from .config import FaultSpec, LatencySpec, SimConfig

#: Kinds the REST pipeline injects (the WebSocket layers use :meth:`FaultModel.select` for theirs).
REST_KINDS = frozenset({"http_5xx", "unknown_status", "storm_429", "malformed", "truncated", "reset", "hang"})


class _Rule:
    __slots__ = ("id", "spec", "names", "any", "installed_ms", "start_ms", "end_ms", "matched", "fired",
                 "skew_applied")

    def __init__(self, rid: int, spec: FaultSpec, now_ms: int):
        self.id = rid
        self.spec = spec
        self.names = frozenset(spec.endpoints)
        self.any = "*" in self.names
        self.installed_ms = now_ms
        self.start_ms = now_ms + int(spec.after_s * 1000)
        self.end_ms = self.start_ms + int(spec.duration_s * 1000) if spec.duration_s > 0 else None
        self.matched = 0
        self.fired = 0
        self.skew_applied = False

    def active(self, now_ms: int) -> bool:
        if now_ms < self.start_ms:
            return False
        if self.end_ms is not None and now_ms >= self.end_ms:
            return False
        return not (self.spec.count and self.fired >= self.spec.count)

    def matches(self, name: str) -> bool:
        return self.any or name in self.names


class FaultModel:
    """Active fault rules and latency settings of the simulator.

    Public API:

    * :meth:`add` ``(rule)`` → rule id; :meth:`clear` ``(kind=None)`` → number removed.
    * :meth:`pick_rest` ``(name)`` → the REST fault for this request or None (counted).
    * :meth:`select` ``(kind, name)`` → the firing rule of ``kind`` or None (counted; WS layers).
    * :meth:`rules` ``(kind)`` → currently active rules of ``kind``.
    * :meth:`fill_parts` ``(symbol)`` → executions per fill of a taking order (1: no ``partial_fill``).
    * :meth:`on_change` ``(fn)`` — ``fn()`` is called after rules are added or cleared.
    * :meth:`latency_ms` ``(name)`` → the delay to add to this response (drawn, not counted).
    * :meth:`set_latency` ``(default=None, endpoints=None)``; :meth:`set_base_skew` ``(ms)``.
    * :meth:`refresh` — re-apply the clock skew; :meth:`start` — arm skew-window timers
      (called once the event loop runs; rules added later arm their own).
    * :meth:`snapshot` — JSON-able rules with their match/fire counters.
    """

    def __init__(self, config: SimConfig, clock, stats, rng):
        self.clock = clock
        self.stats = stats
        self.rng = rng
        self.latency: LatencySpec = config.latency
        self.endpoint_latency: dict[str, LatencySpec] = dict(config.endpoint_latency)
        self._latency_on = False
        self._rules: list[_Rule] = []
        self._rest: list[_Rule] = []       # rules of REST kinds (fast path: empty)
        self._skews: list[_Rule] = []
        self._partial: list[_Rule] = []    # partial_fill rules (fast path: empty)
        self._next_id = 1
        self._listeners: list[Callable[[], None]] = []
        self.base_skew_ms = clock.skew_ms
        self._update_latency_flag()
        for spec in config.faults:
            self.add(spec)

    # -- time -------------------------------------------------------------------------------
    def _now(self) -> int:
        """Clock time without its skew (windows must not move with a skew fault)."""
        return self.clock.now_ms() - self.clock.skew_ms

    # -- rules ------------------------------------------------------------------------------
    def add(self, spec: FaultSpec) -> int:
        """Install ``spec`` now; its window starts at this moment. Returns its id."""
        rule = _Rule(self._next_id, spec, self._now())
        self._next_id += 1
        self._rules.append(rule)
        self._reindex()
        if spec.kind == "clock_skew":
            self._schedule(rule)
            self.refresh()
        self._changed()
        return rule.id

    def clear(self, kind: str | None = None) -> int:
        """Remove every rule (or every rule of ``kind``); returns how many were removed."""
        before = len(self._rules)
        self._rules = [r for r in self._rules if kind is not None and r.spec.kind != kind]
        removed = before - len(self._rules)
        self._reindex()
        self.refresh()
        if removed:
            self._changed()
        return removed

    def on_change(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            fn()

    def _reindex(self) -> None:
        self._rest = [r for r in self._rules if r.spec.kind in REST_KINDS]
        self._skews = [r for r in self._rules if r.spec.kind == "clock_skew"]
        self._partial = [r for r in self._rules if r.spec.kind == "partial_fill"]

    def rules(self, kind: str) -> list[FaultSpec]:
        """Currently active rules of ``kind`` (inside their window and under their count)."""
        now = self._now()
        return [r.spec for r in self._rules if r.spec.kind == kind and r.active(now)]

    def _fire(self, rule: _Rule, count: bool = True) -> bool:
        spec = rule.spec
        rule.matched += 1
        if spec.every > 0:
            hit = rule.matched % spec.every == 0
        elif spec.probability > 0:
            hit = self.rng.random() < spec.probability
        else:
            hit = True
        if hit:
            rule.fired += 1
            if count:
                self.stats.fault(spec.kind)
        return hit

    def select(self, kind: str, name: str) -> FaultSpec | None:
        """The first active rule of ``kind`` matching ``name`` that fires for this request."""
        if not self._rules:
            return None
        now = self._now()
        for rule in self._rules:
            if rule.spec.kind == kind and rule.matches(name) and rule.active(now) and self._fire(rule):
                return rule.spec
        return None

    def pick_rest(self, name: str, count: bool = True) -> FaultSpec | None:
        """The REST fault (any of :data:`REST_KINDS`) for request ``name``, or None.

        With ``count=False`` the injection is not counted in stats yet: the caller counts it
        with :meth:`count` when it actually injects it."""
        if not self._rest:
            return None
        now = self._now()
        for rule in self._rest:
            if rule.matches(name) and rule.active(now) and self._fire(rule, count):
                return rule.spec
        return None

    def fill_parts(self, symbol: str) -> int:
        """Executions each fill of a taking order on ``symbol`` is split into: the ``parts`` of the
        first ``partial_fill`` rule that fires for this order (counted), else 1."""
        if not self._partial:
            return 1
        spec = self.select("partial_fill", symbol)
        return spec.parts if spec is not None else 1

    def count(self, kind: str) -> None:
        self.stats.fault(kind)

    # -- clock skew -------------------------------------------------------------------------
    def set_base_skew(self, ms: int) -> None:
        """The skew set by the operator; active ``clock_skew`` rules add to it."""
        self.base_skew_ms = int(ms)
        self.refresh()

    def refresh(self) -> None:
        """Re-apply the clock skew of the active ``clock_skew`` rules."""
        now = self._now()
        total = self.base_skew_ms
        for rule in self._skews:
            if rule.start_ms <= now and (rule.end_ms is None or now < rule.end_ms):
                total += rule.spec.skew_ms
                if not rule.skew_applied:
                    rule.skew_applied = True
                    rule.fired += 1
                    self.stats.fault("clock_skew")
        self.clock.skew_ms = total

    def start(self) -> None:
        """Arm skew-window timers for rules installed before an event loop was running."""
        for rule in self._skews:
            self._schedule(rule)
        self.refresh()

    def _schedule(self, rule: _Rule) -> None:
        """Wake up at the start and end of a skew window (when an event loop is running)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        now = self._now()
        for at in (rule.start_ms, rule.end_ms):
            if at is not None and at > now:
                loop.call_later((at - now) / 1000.0 + 0.001, self.refresh)  # harmless if the rule is gone

    # -- latency ----------------------------------------------------------------------------
    def _update_latency_flag(self) -> None:
        specs = [self.latency, *self.endpoint_latency.values()]
        self._latency_on = any(s.fixed_ms > 0 or (s.dist != "none" and s.jitter_ms > 0) for s in specs)

    def set_latency(self, default: LatencySpec | None = None,
                    endpoints: dict[str, LatencySpec] | None = None) -> None:
        """Replace the default latency and/or the per-endpoint overrides."""
        if default is not None:
            self.latency = default
        if endpoints is not None:
            self.endpoint_latency = dict(endpoints)
        self._update_latency_flag()

    def latency_ms(self, name: str) -> float:
        """Delay for one response to request ``name``: fixed + seeded jitter (0 when none)."""
        if not self._latency_on:
            return 0.0
        spec = self.endpoint_latency.get(name, self.latency)
        return spec.fixed_ms + self.jitter(spec)

    def jitter(self, spec: LatencySpec) -> float:
        j = spec.jitter_ms
        if j <= 0 or spec.dist == "none":
            return 0.0
        d = spec.dist
        rng = self.rng
        if d == "uniform":
            return rng.uniform(0.0, j)
        if d == "normal":
            return abs(rng.gauss(0.0, j))
        if d == "exponential":
            return rng.expovariate(1.0 / j)
        if d == "lognormal":
            return rng.lognormvariate(math.log(j), 1.0)
        return 0.0

    # -- introspection ----------------------------------------------------------------------
    def snapshot(self) -> dict:
        now = self._now()
        return {
            "rules": [
                {"id": r.id, **dataclasses.asdict(r.spec), "active": r.active(now),
                 "matched": r.matched, "fired": r.fired}
                for r in self._rules
            ],
            "clock_skew_ms": self.clock.skew_ms,
            "base_skew_ms": self.base_skew_ms,
        }

    def latency_snapshot(self) -> dict:
        return {"default": dataclasses.asdict(self.latency),
                "endpoints": {k: dataclasses.asdict(v) for k, v in self.endpoint_latency.items()}}
