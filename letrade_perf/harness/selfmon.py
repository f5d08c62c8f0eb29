"""The load generator watches itself: CPU, RSS and event-loop lag of one Locust process.

:class:`SelfMonitor` runs one greenlet per process (local, master, every worker). It sleeps a
fixed ``period_s`` (:data:`PERIOD_S`) and records how late it woke up — the *loop lag*: the time
the gevent hub took to get back to a greenlet that was due, which every request and WebSocket
message of the process waits too — as a ``generator_loop_lag`` sample (ms). Every ``tick_s`` it
records the process's CPU use over the tick (CPU seconds ÷ wall seconds, in % of one core: a
gevent process cannot use more than one) as ``generator_cpu`` and its resident set size as
``generator_rss_mb``. Every sample carries the tag ``process`` (``local``, ``master`` or
``worker-<index>``) and goes to the process's recorder, so it travels with the worker reports,
merges into the run's histograms, and criteria can judge it
(:mod:`letrade_perf.metrics.generator` turns it into ``summary["generator"]`` and saturation).

Each tick is also judged: it was *saturated* when its CPU was ≥ ``cpu_percent``, or the p99 of
its loop-lag samples (numpy's linear method, as every percentile here) was ≥ ``loop_lag_p99_ms``
while its CPU was ≥ ``lag_cpu_percent`` (a loop that lags at low CPU is stalled by a blocking
call, not overloaded: more workers would not help; the lag is still recorded);
a saturated tick adds its milliseconds to the counter ``generator_saturated_ms{process}``. One
second is the grain: a start-up burst or one collection pause costs the second it happened in,
not a whole report interval.

Connection-pool waits are not measured: geventhttpclient exposes no pool wait, and no harness
user shares a pool — each FastHttpUser has its own pool of ``concurrency`` (10) connections and
one greenlet, each ccxt user its own ``requests`` session (urllib3 opens a connection rather
than wait), each WebSocket user its own connection — so a harness request never waits for a
pooled connection. A wait for the CPU shows as loop lag instead.

The clock, the CPU and RSS readers and the sleep are injected (tests drive them).
"""
from __future__ import annotations

import logging
import os
import resource
import time
from typing import Callable

from ..metrics.generator import CPU, LOOP_LAG, RSS, SATURATED_MS

log = logging.getLogger("letrade_perf.selfmon")

PERIOD_S = 0.01
"""How long the lag greenlet sleeps: 100 wake-ups a second, so a second's p99 is not its one
worst wake-up (a lone late wake-up moves it by a hundredth of its lateness). About 0.2 % of a
core."""
TICK_S = 1.0
"""How often CPU and RSS are sampled."""
_PAGE_MB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / 1048576.0

Tags = tuple[tuple[str, str], ...]
Record = Callable[[str, Tags, float], None]
Count = Callable[[str, Tags, int], None]


def p99(values: list[float]) -> float | None:
    """The 99th percentile of ``values`` (numpy's linear method); None when empty."""
    if not values:
        return None
    v = sorted(values)
    h = (len(v) - 1) * 0.99
    lo = int(h)
    return v[lo] if lo + 1 >= len(v) else v[lo] + (h - lo) * (v[lo + 1] - v[lo])


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used, all its threads."""
    return time.process_time()


def rss_mb() -> float:
    """This process's resident set size in MB (``/proc/self/statm``; elsewhere the peak RSS)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_MB
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024.0 if os.uname().sysname != "Darwin" else peak / 1048576.0


def process_name(role: str, runner: object = None) -> str:
    """The ``process`` tag: ``local``, ``master`` or ``worker-<index>`` (Locust's worker index;
    the pid until the master has assigned one)."""
    if role != "worker":
        return role
    index = getattr(runner, "worker_index", -1)
    return f"worker-{index}" if isinstance(index, int) and index >= 0 else f"worker-pid{os.getpid()}"


class SelfMonitor:
    """Measures one process (see the module docstring).

    ``record(metric, tags, value)`` takes each sample (the recorder's :meth:`record`), ``count``
    the saturated milliseconds (its :meth:`count`); ``process`` returns the ``process`` tag (read
    again until it is final: a worker learns its index from the master). ``cpu_percent`` and
    ``loop_lag_p99_ms`` (with at least ``lag_cpu_percent``) are a tick's saturation thresholds. ``clock`` is monotonic seconds;
    ``cpu`` returns CPU seconds; ``rss`` MB; ``sleep`` sleeps (gevent's)."""

    def __init__(self, record: Record, count: Count, process: Callable[[], str], *, cpu_percent: float = 90.0,
                 loop_lag_p99_ms: float = 10.0, lag_cpu_percent: float = 50.0, period_s: float = PERIOD_S,
                 tick_s: float = TICK_S, clock: Callable[[], float] = time.perf_counter,
                 cpu: Callable[[], float] = cpu_seconds, rss: Callable[[], float] = rss_mb,
                 sleep: Callable[[float], object] | None = None) -> None:
        if not period_s > 0 or not tick_s > 0:
            raise ValueError(f"period_s and tick_s must be > 0, got {period_s}, {tick_s}")
        self._record = record
        self._count = count
        self._process = process
        self.cpu_percent = cpu_percent
        self.loop_lag_p99_ms = loop_lag_p99_ms
        self.lag_cpu_percent = lag_cpu_percent
        self._lags: list[float] = []      # this tick's loop-lag samples (ms)
        self._tags: tuple[tuple[str, str], ...] | None = None
        self.period_s = period_s
        self.tick_s = tick_s
        self._clock = clock
        self._cpu = cpu
        self._rss = rss
        self._sleep = sleep
        self._greenlet = None
        self._tick_at = clock()
        self._tick_cpu = cpu()

    def tags(self) -> tuple[tuple[str, str], ...]:
        if self._tags is not None:
            return self._tags
        name = self._process()
        tags = (("process", name),)
        if "pid" not in name:            # final: no need to ask again
            self._tags = tags
        return tags

    # -- one step each (the greenlet's loop; tests call them with their own clock) ---------------
    def woke(self, due: float, now: float) -> float:
        """The lag greenlet was due at ``due`` and runs at ``now``: record the lag (ms)."""
        lag_ms = max(0.0, (now - due) * 1000.0)
        self._record(LOOP_LAG, self.tags(), lag_ms)
        self._lags.append(lag_ms)
        return lag_ms

    def tick(self, now: float) -> tuple[float, float, bool] | None:
        """Record CPU % since the last tick and the RSS now, and the tick's milliseconds when it
        was saturated: ``(cpu %, rss MB, saturated)``; None (nothing recorded) when no time passed."""
        wall = now - self._tick_at
        if wall <= 0:
            return None
        cpu_now = self._cpu()
        percent = max(0.0, (cpu_now - self._tick_cpu) / wall * 100.0)
        self._tick_at, self._tick_cpu = now, cpu_now
        lag, self._lags = p99(self._lags), []
        mb = self._rss()
        tags = self.tags()
        self._record(CPU, tags, percent)
        self._record(RSS, tags, mb)
        saturated = percent >= self.cpu_percent or (lag is not None and lag >= self.loop_lag_p99_ms
                                                    and percent >= self.lag_cpu_percent)
        if saturated:
            self._count(SATURATED_MS, tags, int(round(wall * 1000.0)))
        return percent, mb, saturated

    def step(self) -> None:
        """Sleep one period, record the lag, and tick when due."""
        sleep = self._sleep
        assert sleep is not None   # the greenlet's loop sets it
        due = self._clock() + self.period_s
        sleep(self.period_s)
        now = self._clock()
        self.woke(due, now)
        if now - self._tick_at >= self.tick_s:
            self.tick(now)

    def _run(self) -> None:
        while True:
            try:
                self.step()
            except Exception:       # self-monitoring must never take the run down
                log.exception("generator self-monitoring failed; it stops")
                return

    # -- the greenlet ------------------------------------------------------------------------------
    def start(self) -> "SelfMonitor":
        import gevent

        if self._sleep is None:
            self._sleep = gevent.sleep
        if self._greenlet is None:
            self._tick_at, self._tick_cpu = self._clock(), self._cpu()
            self._greenlet = gevent.spawn(self._run)
        return self

    def stop(self) -> None:
        """Stop the greenlet and record the last partial tick."""
        g, self._greenlet = self._greenlet, None
        if g is not None:
            g.kill(block=False)
            try:
                if self._clock() - self._tick_at >= self.tick_s / 2:   # a shorter one says little
                    self.tick(self._clock())
            except Exception:
                log.exception("generator self-monitoring: the last sample failed")


__all__ = ["SelfMonitor", "PERIOD_S", "TICK_S", "cpu_seconds", "rss_mb", "process_name", "p99"]
