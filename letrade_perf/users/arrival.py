"""Open-model load: a fixed schedule of iteration starts per user kind, latency from the intended start.

A kind whose settings give an ``arrival_rate`` (``users.rest_market.arrival_rate: 50/s``) is no
longer paced by its users' waits (the closed model, where a slow answer slows the load down and
hides itself: coordinated omission). Instead, as with k6's ``constant-arrival-rate`` executor and
wrk2, the process keeps one :class:`ArrivalSchedule` per kind: iteration ``i`` (one task) is
intended to start at ``t0 + i / rate``, and the kind's users are the pool that serves it.

* A free user claims the next slot and sleeps until its time; if that time has passed (every
  user was busy) it starts at once, late.
* A slot whose window — until the next slot's time — closed before any user was free is
  **dropped** and counted (``dropped_iterations``): the load the plan asked for did not happen.
* Each request of an iteration has an intended start: the slot's time for the first, the end of
  the iteration's previous request for the others. Its latency from the intended start
  (``request_intended``) is the lateness of its send plus its service time; the request event
  itself keeps the service time, as in the closed model. Time spent waiting for the weight budget
  (pacing) is never service time, but it is in the lateness: that is the correction.
* The schedule runs while at least one user of the kind runs in the process: it starts (``t0``)
  when the first user asks for a slot, and it stops when the last user stops; the slots whose
  window closed meanwhile without a user are dropped then.
* In a distributed run each worker serves its pacing share of the rate (``1/N`` of the live
  workers, re-split by the master when workers join or leave); before its first share a worker
  serves none.

Iteration counts are reported on the ``letrade_arrival(kind, started, dropped)`` event (deltas),
which the metrics recorder turns into the cumulative gauges ``iterations`` and
``dropped_iterations``. :class:`ArrivalSchedule` is pure (an injected clock) and knows nothing of Locust.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import gevent

from ..metrics.recorder import ARRIVAL_EVENT, INTENDED_CONTEXT

__all__ = ["ArrivalSchedule", "OpenModelMixin", "INTENDED_CONTEXT", "schedule_for"]

_EPS = 1e-9


class ArrivalSchedule:
    """The intended start times of one user kind's iterations in one process (see the module docstring).

    ``rate``: iterations per second (0: no slots until it is raised). ``clock``: monotonic
    seconds (injectable). ``report(started, dropped)`` is called with the deltas whenever
    iterations are started or dropped."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 report: Callable[[int, int], Any] | None = None) -> None:
        if not rate >= 0.0 or math.isinf(rate):
            raise ValueError(f"arrival rate must be a finite number >= 0, got {rate!r}")
        self._rate = float(rate)
        self._clock = clock
        self._report = report
        self._base: float | None = None    # time of slot 0 of the running period (None: not running)
        self._next = 0                     # the next slot to hand out, counted from _base
        self.users = 0
        """Users of the kind in the process that joined and did not leave yet."""
        self.started = 0
        """Iterations handed to a user (claimed slots)."""
        self.dropped = 0
        """Slots whose window closed while every user was busy."""

    @property
    def rate(self) -> float:
        return self._rate

    def join(self) -> None:
        """A user of the kind starts (the schedule itself starts at the first :meth:`claim`)."""
        self.users += 1

    def leave(self) -> None:
        """A user of the kind stops; with the last one the schedule stops: the slots whose window
        closed since the last claim are dropped, and a later :meth:`claim` starts a new period."""
        self.users = max(0, self.users - 1)
        if self.users == 0 and self._base is not None:
            self._tell(0, self._settle(self._clock()))
            self._base = None

    def set_rate(self, rate: float) -> None:
        """Serve ``rate`` per second from now on: the current period is settled at the old rate and
        the next slot keeps its time (a new rate spaces the slots after it)."""
        rate = float(rate)
        if rate == self._rate:
            return
        if not rate >= 0.0 or math.isinf(rate):
            raise ValueError(f"arrival rate must be a finite number >= 0, got {rate!r}")
        if self._base is not None:
            now = self._clock()
            if self._rate > 0.0:
                self._tell(0, self._settle(now))
                self._base, self._next = self._base + self._next / self._rate, 0
            else:   # no slots while the rate was 0: the new period starts now
                self._base, self._next = now, 0
        self._rate = rate

    def claim(self) -> float | None:
        """The intended start (clock seconds) of the next slot, now taken; None while the rate is 0.
        Slots whose window closed unclaimed are counted as dropped first."""
        if self._rate <= 0.0:
            return None
        now = self._clock()
        if self._base is None:
            self._base, self._next = now, 0
            dropped = 0
        else:
            dropped = self._settle(now)
        t = self._base + self._next / self._rate
        self._next += 1
        self.started += 1
        self._tell(1, dropped)
        return t

    def next_at(self) -> float | None:
        """The intended start of the next unclaimed slot (None: not running or rate 0)."""
        if self._base is None or self._rate <= 0.0:
            return None
        return self._base + self._next / self._rate

    def _settle(self, now: float) -> int:
        """Drop the unclaimed slots before the one whose window holds ``now``; how many."""
        if self._base is None or self._rate <= 0.0:
            return 0
        current = math.floor((now - self._base) * self._rate + _EPS)
        if current <= self._next:
            return 0
        n = current - self._next
        self._next = current
        self.dropped += n
        return n

    def _tell(self, started: int, dropped: int) -> None:
        if (started or dropped) and self._report is not None:
            self._report(started, dropped)


def schedule_for(environment: Any, kind: str, rate: float, clock: Callable[[], float] = time.monotonic,
                 report: Callable[[int, int], Any] | None = None) -> ArrivalSchedule:
    """The process's schedule of ``kind`` (kept on the Locust ``environment``; created at ``rate``)."""
    schedules: dict[str, ArrivalSchedule] = environment.__dict__.setdefault("letrade_arrivals", {})
    sched = schedules.get(kind)
    if sched is None:
        sched = schedules[kind] = ArrivalSchedule(rate, clock=clock, report=report)
    return sched


class OpenModelMixin:
    """What a user needs to run open-model load (REST and ccxt users).

    The user calls :meth:`arrival_start` at the end of ``on_start`` and :meth:`arrival_stop` in
    ``on_stop``; with an ``arrival_rate`` in its ``settings`` its waits then come from the kind's
    :class:`ArrivalSchedule` (the first task waits for its slot too). Its call path asks
    :meth:`arrival_sent` right before a request leaves (the lateness to add to the service time,
    or None in the closed model) and calls :meth:`arrival_done` when the answer is in."""

    environment: Any
    #: the monotonic clock of the schedule and the lateness (injectable in tests)
    arrival_clock: Callable[[], float] = staticmethod(time.monotonic)
    #: how long a user waits before asking again while its process serves no share of the rate (s)
    arrival_idle_s: float = 0.1
    _arrival: ArrivalSchedule | None = None
    _arrival_rate: float = 0.0
    _intended_at: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def arrival_start(self) -> None:
        """Join the kind's schedule (no-op without ``settings.arrival_rate``) and wait for the first slot."""
        rate = getattr(getattr(self, "settings", None), "arrival_rate", None)
        if rate is None or self._arrival is not None:
            return
        kind = str(getattr(self, "letrade_kind", type(self).__name__))
        events = self.environment.events

        def report(started: int, dropped: int) -> None:
            hook = getattr(events, ARRIVAL_EVENT, None)
            if hook is not None:
                hook.fire(kind=kind, started=started, dropped=dropped)

        self._arrival_rate = float(rate)
        sched = schedule_for(self.environment, kind, self._arrival_rate * self._arrival_share(),
                             self.arrival_clock, report)
        sched.join()
        self._arrival = sched
        # Locust calls ``self.wait_time()`` between tasks: the schedule replaces the profile's waits
        self.wait_time = self.arrival_wait    # type: ignore[method-assign]
        # and Locust runs the first task right after on_start: it waits for its slot too
        self.wait()    # type: ignore[attr-defined]   # Locust's User.wait (a stop ends the user here)

    def arrival_stop(self) -> None:
        """Leave the kind's schedule (idempotent)."""
        sched, self._arrival = self._arrival, None
        self._intended_at = None
        if sched is not None:
            sched.leave()

    def _arrival_share(self) -> float:
        """This process's share of the kind's rate: a worker's pacing share, else 1."""
        ctx = getattr(self.environment, "letrade", None)
        if ctx is None or getattr(ctx, "role", "local") != "worker" or ctx.pacer is None:
            return 1.0
        return float(ctx.pacer.share)

    def arrival_wait(self) -> float:
        """Seconds until this user's next slot (Locust's ``wait_time``); claims the slot."""
        sched = self._arrival
        if sched is None:
            return 0.0
        while True:
            sched.set_rate(self._arrival_rate * self._arrival_share())
            t = sched.claim()
            if t is not None:
                break
            self._intended_at = None
            gevent.sleep(self.arrival_idle_s)   # no share of the rate yet: nothing to serve
        self._intended_at = t
        return max(0.0, t - self.arrival_clock())

    # -- the call path ---------------------------------------------------------------------------
    def arrival_sent(self) -> float | None:
        """A request leaves now: ms since its intended start (None in the closed model)."""
        t = self._intended_at
        if t is None:
            return None
        return max(0.0, (self.arrival_clock() - t) * 1000.0)

    def arrival_done(self) -> None:
        """A request's answer is in: the iteration's next request is intended to leave now."""
        if self._intended_at is not None:
            self._intended_at = self.arrival_clock()
