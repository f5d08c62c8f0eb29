"""The InfluxDB sink: interval points (and raw samples) buffered, batched and written in the background.

:class:`InfluxSink` turns what one process measured into InfluxDB line protocol (the schema is in
``docs/metrics.md``; the Grafana dashboards under ``deploy/grafana`` query exactly it) and writes
it from a background thread through the v2 write API, which InfluxDB 1.8+, 2.x, 3.x and
VictoriaMetrics all accept:

* :meth:`InfluxSink.add_snapshot` merges the recorder's snapshots until one ``interval_s`` is
  covered, then emits one ``request`` / ``ws_lag`` point per series, one ``orders`` point per
  order outcome and source, the caller's per-interval gauge points (``pacing``, ``users``) and the
  sink's own ``sink`` point;
* :meth:`InfluxSink.add_raw_request` / :meth:`InfluxSink.add_raw_ws_lag` add one point per sample
  (``mode: raw``); :meth:`InfluxSink.add_point` / :meth:`InfluxSink.add_points` anything else.

Nothing here blocks the caller or raises into it: points go into a bounded buffer (when it is
full the *oldest* points are dropped and counted); the writer thread sends batches and retries
failures with exponential backoff (0.5 s doubling to 8 s). Every point produced is, in the end,
either written or counted as dropped: ``written + dropped + buffered == produced`` at any moment,
and :meth:`InfluxSink.close` counts whatever it could not flush within its timeout as dropped.
An unreachable InfluxDB logs one WARNING per outage, never a line per batch.

One batching layer, this one: the client's write API is used synchronously (one call per batch,
:class:`~letrade_perf.metrics.influx_io.InfluxWriter`) and its own batching writer is not. That
writer gives a batch up once its retries are spent (an error log line or a callback, no count),
logs every retried attempt, and runs a reactivex pipeline and a thread of its own per process;
the verdict needs the opposite — ``written + dropped + buffered == produced``, drops counted in
``summary.json``, one warning per outage, a bounded buffer that gives up the oldest points first.

No Locust or gevent here: under Locust's monkey-patching the thread and its locks are greenlets
(:mod:`letrade_perf.harness.sink` wires the sink into a run).
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import math
import threading
import time
from typing import Any, Callable, Iterable, Mapping, cast

from ..core.secrets import mask
from .catalogue import CATALOGUE
from .influx_io import InfluxWriter, SinkWriteError, _ms, escape_tag, format_line
from .recorder import Series, Snapshot, Tags
from .sink_config import (  # noqa: F401
    ENV_BUCKET,
    ENV_INTERVAL,
    ENV_MODE,
    ENV_ORG,
    ENV_TOKEN,
    ENV_URL,
    MODES,
    SinkConfig,
    display_url,
    resolve_sink_config,
)

__all__ = ["InfluxSink", "InfluxWriter", "SinkWriteError", "SinkConfig", "resolve_sink_config", "display_url",
           "escape_tag", "format_line", "criteria_points", "run_percentile_points", "run_fields", "ProcessGauges", "ENV_URL", "ENV_TOKEN",
           "ENV_ORG", "ENV_BUCKET", "ENV_MODE", "ENV_INTERVAL", "MODES"]

log = logging.getLogger("letrade_perf.metrics.sink")

PERCENTILES = (50, 90, 95, 99)
OTHER = "(other)"
#: Recorder series that have no measurement of their own in the schema (the catalogue's ``in_sink``).
SKIPPED_METRICS = frozenset(m.series or m.name for m in CATALOGUE if not m.in_sink)
#: The load generator's self-monitoring (:mod:`letrade_perf.harness.selfmon`): ``generator`` points.
GENERATOR_METRICS = frozenset(("generator_cpu", "generator_rss_mb", "generator_loop_lag"))
#: An interval closes when the merged snapshots cover this share of ``interval_s`` (drains are
#: timer-driven and land a few ms early or late: a 5 s drain must close a 5 s interval).
INTERVAL_SLACK = 0.1


# -------------------------------------------------------------------------------------- sink
IntervalPoints = Callable[[float, float, int, int], Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]]]
"""``f(start, end, requests, failures)`` → ``(measurement, tags, fields)`` points of one interval
(per-process tags such as ``worker`` are added by the sink)."""


class InfluxSink:
    """Buffers points of one process and writes them to InfluxDB from a background thread.

    ``base_tags`` go on every per-process point (``run_id``, ``profile``, ``env``, ``worker``);
    run-level points (:meth:`add_point` with ``per_process=False``) leave out ``worker``.
    ``writer(lines)`` sends one batch and raises on failure (default :class:`InfluxWriter`);
    ``clock`` is wall time in seconds (timestamps); ``wait(seconds)`` is how the writer thread
    waits before a retry (default: an event :meth:`close` interrupts); ``interval_points`` adds
    per-interval gauge points (see :data:`IntervalPoints`)."""

    def __init__(self, config: SinkConfig, base_tags: Mapping[str, Any], *,
                 writer: Callable[[list[str]], None] | None = None, clock: Callable[[], float] = time.time,
                 wait: Callable[[float], Any] | None = None, monotonic: Callable[[], float] = time.monotonic,
                 interval_points: IntervalPoints | None = None, start: bool = True) -> None:
        self.config = config
        self.base_tags = {k: str(v) for k, v in base_tags.items()}
        self.run_tags = {k: v for k, v in self.base_tags.items() if k != "worker"}
        self.worker = self.base_tags.get("worker", "local")
        self._writer = writer if writer is not None else InfluxWriter(config)
        self._clock = clock
        self._monotonic = monotonic
        self._stop = threading.Event()             # set by close(): retry waits end at once
        self._wait = wait if wait is not None else self._stop.wait
        self._wake = threading.Event()             # a batch is full / closing
        self._interval_points = interval_points
        self._lock = threading.Lock()              # buffer and counters
        self._agg_lock = threading.RLock()         # the interval accumulator
        # buffer: the oldest point has sequence number _head; a batch in flight is re-read from it
        self._buf: collections.deque[str] = collections.deque()
        self._head = 0
        self.produced = 0
        self.written = 0
        self.dropped = 0
        self.retries = 0
        self.failed_batches = 0
        self.last_error: str | None = None
        self._failing = False                      # inside an outage (one WARNING each)
        self._consecutive_failures = 0
        self._closing = False
        self._closed = False
        self._deadline: float | None = None
        self._remote: dict[str, dict[str, Any]] = {}
        # interval aggregation
        self._acc: dict[tuple[str, Tags], Series] = {}
        self._acc_start = clock()
        self._acc_end: float | None = None
        self._acc_requests = 0
        self._acc_failures = 0
        self._acc_orders: dict[tuple[str, str], int] = {}   # (outcome, source) -> orders in the interval
        self._last_interval_ms: int | None = None
        self._tag_seen: dict[str, set[str]] = {}
        # raw mode: escaped line prefixes per series, and the last timestamp per series
        self._raw_prefix: dict[tuple[str | bool, ...], str] = {}
        self._raw_last: dict[str, int] = {}
        self._base_tag_str = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(self.base_tags.items()))
        self._thread = threading.Thread(target=self._run, name="letrade-influx-sink", daemon=True)
        if start:
            self._thread.start()

    # -- tags ------------------------------------------------------------------------------------
    def cap(self, measurement: str, value: str) -> str:
        """``value`` of a ``name``/``stream`` tag, or ``(other)`` beyond ``max_tag_values``."""
        seen = self._tag_seen.get(measurement)
        if seen is None:
            seen = self._tag_seen[measurement] = set()
        if value in seen:
            return value
        if len(seen) >= self.config.max_tag_values:
            return OTHER
        seen.add(value)
        return value

    # -- producing -------------------------------------------------------------------------------
    def add_points(self, lines: Iterable[str | None]) -> None:
        """Queue line-protocol lines (never blocks, never raises; a full buffer drops the oldest)."""
        with self._lock:
            buf = self._buf
            limit = self.config.max_buffer_points
            for line in lines:
                if line is not None:
                    self._enqueue_locked(buf, line, limit)
            full = len(buf) >= self.config.batch_size
        if full and not self._wake.is_set():
            self._wake.set()

    def _enqueue_locked(self, buf: collections.deque[str], line: str, limit: int) -> None:
        """Count and queue one line (the caller holds ``_lock``): dropped when closed; a full
        buffer drops its oldest line first."""
        self.produced += 1
        if self._closed:
            self.dropped += 1
            return
        if len(buf) >= limit:
            buf.popleft()
            self._head += 1
            self.dropped += 1
        buf.append(line)

    def add_point(self, measurement: str, tags: Mapping[str, Any], fields: Mapping[str, Any],
                  ts: float | None = None, *, per_process: bool = True) -> None:
        """Queue one point; ``tags`` come on top of the base tags (without ``worker`` when
        ``per_process`` is False); ``ts`` in epoch seconds (default now)."""
        base = self.base_tags if per_process else self.run_tags
        ts_ms = _ms(self._clock() if ts is None else ts)
        self.add_points([format_line(measurement, {**base, **tags}, fields, ts_ms)])

    def add_raw_request(self, request_type: str, name: str, ok: bool, value_ms: float, ts: float | None = None) -> None:
        """``request_raw``: one sample (raw mode)."""
        key = (request_type, name, ok)
        prefix = self._raw_prefix.get(key)
        if prefix is None:
            prefix = self._raw_prefix[key] = (
                f"request_raw{self._base_tag_str},name={escape_tag(self.cap('request_raw', name))},"
                f"request_type={escape_tag(request_type)},status={'ok' if ok else 'fail'} value=")
        self._raw(prefix, f"{float(value_ms)!r},ok={'1i' if ok else '0i'}", ts)

    def add_raw_ws_lag(self, stream: str, value_ms: float, uncertainty_ms: float | None = None,
                       ts: float | None = None) -> None:
        """``ws_lag_raw``: one lag sample (raw mode)."""
        key = ("\0ws", stream)
        prefix = self._raw_prefix.get(key)
        if prefix is None:
            prefix = self._raw_prefix[key] = (
                f"ws_lag_raw{self._base_tag_str},stream={escape_tag(self.cap('ws_lag_raw', stream))} value=")
        v = float(value_ms)
        if not math.isfinite(v):
            return
        fields = repr(v) if uncertainty_ms is None else f"{v!r},uncertainty_ms={float(uncertainty_ms)!r}"
        self._raw(prefix, fields, ts)

    def _raw(self, prefix: str, fields: str, ts: float | None) -> None:
        # InfluxDB keeps one point per series and timestamp: two samples of one series in the same
        # millisecond would overwrite each other, so the later one moves to the next millisecond.
        ts_ms = _ms(self._clock() if ts is None else ts)
        last = self._raw_last.get(prefix)
        if last is not None and ts_ms <= last:
            ts_ms = last + 1
        self._raw_last[prefix] = ts_ms
        line = f"{prefix}{fields} {ts_ms}"
        with self._lock:
            buf = self._buf
            self._enqueue_locked(buf, line, self.config.max_buffer_points)
            full = len(buf) >= self.config.batch_size
        if full and not self._wake.is_set():
            self._wake.set()

    # -- interval aggregation ------------------------------------------------------------------
    def add_snapshot(self, snap: Snapshot) -> None:
        """Merge one drained snapshot; when the merged ones cover ``interval_s``, emit the interval."""
        try:
            with self._agg_lock:
                self._merge(snap)
                if snap.end - self._acc_start >= self.config.interval_s * (1.0 - INTERVAL_SLACK):
                    self._emit(snap.end)
        except Exception:          # the measurement path never breaks because of the sink
            log.exception("metrics sink: could not turn a snapshot into points")

    def _merge(self, snap: Snapshot) -> None:
        acc = self._acc
        for (metric, tags), s in snap.series.items():
            if metric in SKIPPED_METRICS or s.hist.count == 0:
                continue
            t = dict(tags)
            key: tuple[str, Tags]
            if metric == "ws_lag":
                key = ("ws_lag", (("stream", self.cap("ws_lag", t.get("stream") or "")),))
            elif metric in GENERATOR_METRICS:     # the process's own health: never a request
                key = ("generator", (("metric", metric), ("process", t.get("process") or "")))
            else:
                rtype = t.get("type", metric) if metric == "request" else metric
                status = t.get("status")
                if status not in ("fail", "clock"):
                    status = "ok"
                key = ("request", (("name", self.cap("request", t.get("name") or "")), ("request_type", rtype),
                                   ("status", status)))
                self._acc_requests += s.hist.count
                if status == "fail":
                    self._acc_failures += s.hist.count
            mine = acc.get(key)
            if mine is None:
                mine = acc[key] = Series()
            mine.merge(s)
        for (metric, tags), n in snap.counters.items():
            if metric == "orders" and n:
                t = dict(tags)
                okey = (t.get("outcome") or "", self.cap("orders", t.get("source") or ""))
                self._acc_orders[okey] = self._acc_orders.get(okey, 0) + n
        self._acc_end = snap.end if self._acc_end is None else max(self._acc_end, snap.end)

    def tick(self, now: float | None = None) -> None:
        """Close the interval by time (processes without snapshots: the master's gauge points)."""
        now = self._clock() if now is None else now
        with self._agg_lock:
            if now - self._acc_start >= self.config.interval_s * (1.0 - INTERVAL_SLACK):
                self._emit(now)

    def flush_interval(self, end: float | None = None) -> None:
        """Emit what the current interval holds now (at the end of the run)."""
        with self._agg_lock:
            end = end if end is not None else max(self._clock(), self._acc_end or 0.0)
            self._emit(end)

    def _emit(self, end: float) -> None:
        start = self._acc_start
        ts = _ms(end)
        # consecutive intervals must not share a timestamp (the later point would overwrite)
        if self._last_interval_ms is not None and ts <= self._last_interval_ms:
            ts = self._last_interval_ms + 1
        self._last_interval_ms = ts
        lines = [self._series_line(meas, dict(tags), s, ts) for (meas, tags), s in self._acc.items()]
        lines += [format_line("orders", {**self.base_tags, "outcome": outcome, "source": source}, {"count": n}, ts)
                  for (outcome, source), n in self._acc_orders.items()]
        requests, failures = self._acc_requests, self._acc_failures
        self._acc = {}
        self._acc_orders = {}
        self._acc_requests = self._acc_failures = 0
        self._acc_start = end
        if self._interval_points is not None:
            try:
                for measurement, tags, fields in self._interval_points(start, end, requests, failures):
                    lines.append(format_line(measurement, {**self.base_tags, **tags}, fields, ts))
            except Exception:
                log.exception("metrics sink: interval gauges failed")
        self.add_points(lines)
        with self._lock:
            fields = {"written": self.written, "dropped": self.dropped, "retries": self.retries,
                      "buffered": len(self._buf)}
        self.add_points([format_line("sink", self.base_tags, fields, ts)])

    def _series_line(self, measurement: str, tags: dict[str, str], s: Series, ts_ms: int) -> str | None:
        h = s.hist
        p50, p90, p95, p99 = h.percentiles(PERCENTILES)
        fields: dict[str, Any] = {"count": h.count}
        if measurement == "request":
            fields["failures"] = h.count if tags.get("status") == "fail" else 0
        # only series with samples reach here (_merge skips empty ones), so the mean is set
        fields.update({"sum": float(h.sum), "mean": float(cast(float, h.mean)), "min": float(h.min), "max": float(h.max),
                       "p50": p50, "p90": p90, "p95": p95, "p99": p99})
        if measurement == "ws_lag" and s.uncertainty_ms is not None:
            fields["uncertainty_ms"] = float(s.uncertainty_ms)
        fields["hist"] = json.dumps(h.to_dict(), separators=(",", ":"))
        return format_line(measurement, {**self.base_tags, **tags}, fields, ts_ms)

    # -- run-level points (local / master) ----------------------------------------------------
    def add_run_start(self, label: str, run_fields: Mapping[str, Any], ts: float | None = None) -> None:
        """The ``run`` start annotation: ``text`` = ``"<label>: started"`` (label: ``<profile> on <env>``)."""
        self.add_point("run", {"event": "start"}, {**run_fields, "text": f"{label}: started"}, ts, per_process=False)

    def add_run_end(self, summary: Mapping[str, Any], label: str, run_fields: Mapping[str, Any],
                    ts: float | None = None) -> None:
        """One ``criteria`` point per criterion of ``summary`` (a ``summary.json`` document), one
        ``run_percentiles`` point per endpoint and stream (the run's merged percentiles), then the
        ``run`` stop annotation (1 ms later, so it sorts last)."""
        ts = self._clock() if ts is None else ts
        for tags, fields in criteria_points(summary):
            self.add_point("criteria", tags, fields, ts, per_process=False)
        for tags, fields in run_percentile_points(summary, self.config.max_tag_values):
            self.add_point("run_percentiles", tags, fields, ts, per_process=False)
        verdict = str(summary.get("verdict") or "")
        run = summary.get("run") or {}
        self.add_point("run", {"event": "stop"}, {
            **run_fields, "text": f"{label}: {verdict.upper()}", "verdict": verdict,
            "exit_code": int(run.get("exit_code") or 0), "duration_s": float(run.get("duration_s") or 0.0)},
            ts + 0.001, per_process=False)

    # -- writing -------------------------------------------------------------------------------
    def _peek(self) -> tuple[int, list[str]]:
        with self._lock:
            return self._head, list(itertools.islice(self._buf, self.config.batch_size))

    def _commit(self, seq0: int, n: int, written: bool) -> None:
        """The batch ``[seq0, seq0 + n)`` is done: written, or dropped (a permanent failure)."""
        with self._lock:
            if self._closed:                   # close() already counted what was left as dropped
                return
            gone = max(0, self._head - seq0)   # evicted (and counted dropped) while in flight
            remove = max(0, n - gone)
            for _ in range(remove):
                self._buf.popleft()
            self._head += remove
            if written:
                self.written += remove
            else:
                self.dropped += remove

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:        # a bug here must not go unnoticed: close() counts what is left
            log.exception("InfluxDB sink writer stopped")

    def _loop(self) -> None:
        delay = self.config.backoff_initial_s
        while True:
            with self._lock:
                pending = len(self._buf)
                closing = self._closing
            if pending == 0:
                if closing:
                    return
                self._wake.wait(self.config.flush_every_s)
                self._wake.clear()
                continue
            if not closing and pending < self.config.batch_size and not self._consecutive_failures:
                # let a batch fill (or the flush period pass) before sending
                self._wake.wait(self.config.flush_every_s)
                self._wake.clear()
            seq0, batch = self._peek()
            if not batch:
                continue
            try:
                self._writer(batch)
            except Exception as e:
                if self._failed(e, seq0, len(batch)):
                    return      # closing and still failing: close() counts the rest as dropped
                delay_now = delay
                delay = min(delay * 2, self.config.backoff_max_s)
                if self._closing:
                    remaining = (self._deadline or 0) - self._monotonic()
                    if remaining <= 0:
                        return
                    delay_now = min(delay_now, remaining)
                self._wait(delay_now)
                time.sleep(0)   # yield even when the wait returned at once (a greenlet under gevent)
                continue
            delay = self.config.backoff_initial_s
            self._succeeded(seq0, len(batch))

    def _succeeded(self, seq0: int, n: int) -> None:
        self._commit(seq0, n, written=True)
        if self._failing:
            log.info("InfluxDB sink at %s: writing again (%d retries so far, %d points dropped)",
                     self.config.display_url, self.retries, self.dropped)
        self._failing = False
        self._consecutive_failures = 0

    def _failed(self, exc: BaseException, seq0: int, n: int) -> bool:
        """Count a failed attempt; True when the writer thread should give up (closing)."""
        reason = self._mask(str(exc) or type(exc).__name__)
        self.last_error = reason
        self._consecutive_failures += 1
        if getattr(exc, "permanent", False):
            with self._lock:
                self.failed_batches += 1
            self._commit(seq0, n, written=False)
            log.error("InfluxDB sink at %s rejected %d points: %s (dropped, counted)",
                      self.config.display_url, n, reason)
            return False
        with self._lock:
            self.retries += 1
        if not self._failing:
            self._failing = True
            log.warning("InfluxDB sink at %s: %s; points are buffered and retried, dropped points are counted",
                        self.config.display_url, reason)
        else:
            log.debug("InfluxDB sink at %s: %s (retrying)", self.config.display_url, reason)
        if self._closing:
            # closing: one more try after a failure, no more (close() counts the rest as dropped)
            return self._consecutive_failures >= 2 or self._monotonic() >= (self._deadline or 0)
        return False

    def _mask(self, text: str) -> str:
        token = self.config.token
        if token:
            text = text.replace(token, "***")
        return mask(text)

    # -- ending ----------------------------------------------------------------------------------
    def close(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """Emit the open interval, flush what can be written within ``timeout_s``, count the rest
        as dropped, stop the writer thread. Idempotent; returns :meth:`stats`."""
        if self._closed:
            return self.stats()
        with self._agg_lock:
            if self._acc or self._acc_orders:
                self.flush_interval()
        with self._lock:
            self._closing = True
            self._deadline = self._monotonic() + max(0.0, timeout_s)
        self._wake.set()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(max(0.0, timeout_s))
        elif self._thread.ident is None:
            self._run()          # never started (tests): flush synchronously
        with self._lock:
            left = len(self._buf)
            if left:
                self.dropped += left
                self.failed_batches += -(-left // self.config.batch_size)
                self._buf.clear()
            self._closed = True
        closer = getattr(self._writer, "close", None)
        if callable(closer) and not self._thread.is_alive():
            try:
                closer()
            except Exception:
                pass
        st = self.stats()
        log.info("InfluxDB sink at %s: %d points written, %d dropped, %d retries", self.config.display_url,
                 st["written"], st["dropped"], st["retries"])
        return st

    @property
    def closed(self) -> bool:
        return self._closed

    # -- reporting -------------------------------------------------------------------------------
    def own_stats(self) -> dict[str, Any]:
        with self._lock:
            return {"produced": self.produced, "written": self.written, "dropped": self.dropped,
                    "retries": self.retries, "failed_batches": self.failed_batches, "buffered": len(self._buf),
                    "last_error": self.last_error}

    def add_remote_stats(self, worker: str, stats: Mapping[str, Any]) -> None:
        """Another process's :meth:`own_stats` (the master keeps each worker's latest)."""
        self._remote[str(worker)] = dict(stats)

    def stats(self) -> dict[str, Any]:
        """Counters (``produced``, ``written``, ``dropped``, ``retries``, ``failed_batches``,
        ``buffered``), ``last_error`` (masked), and the configuration; with workers' stats added
        (:meth:`add_remote_stats`) the counters are totals and ``by_worker`` has each process's."""
        own = self.own_stats()
        out: dict[str, Any] = {"url": self.config.display_url, "bucket": self.config.bucket,
                               "mode": self.config.mode, "interval_s": self.config.interval_s, **own}
        if self._remote:
            by_worker = {self.worker: own, **self._remote}
            for k in ("produced", "written", "dropped", "retries", "failed_batches", "buffered"):
                out[k] = sum(int(s.get(k) or 0) for s in by_worker.values())
            out["last_error"] = own["last_error"] or next(
                (s.get("last_error") for s in self._remote.values() if s.get("last_error")), None)
            out["by_worker"] = by_worker
        return out


# ---------------------------------------------------------------------------------- helpers
def criteria_points(summary: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(tags, fields)`` of one ``criteria`` point per criterion of a ``summary.json`` document:
    tags ``criterion`` (label), ``metric``, ``verdict``; fields ``value`` (left out when null),
    ``threshold``, ``passed`` (1 when the criterion's gate passed), ``samples``."""
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for c in summary.get("criteria") or ():
        fields: dict[str, Any] = {}
        if c.get("value") is not None:
            fields["value"] = float(c["value"])
        fields["threshold"] = float(c["threshold"])
        fields["passed"] = 1 if c.get("gate") == "pass" else 0
        fields["samples"] = int(c.get("samples") or 0)
        out.append(({"criterion": c["label"], "metric": c["metric"], "verdict": c["verdict"]}, fields))
    return out


#: ``summary.json`` row keys -> ``run_percentiles`` fields (ms; the run's merged histograms)
_RUN_PERCENTILE_FIELDS = (("avg_ms", "mean"), ("p50_ms", "p50"), ("p90_ms", "p90"), ("p95_ms", "p95"),
                          ("p99_ms", "p99"), ("max_ms", "max"))


def run_percentile_points(summary: Mapping[str, Any],
                          max_rows: int = 200) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(tags, fields)`` of the ``run_percentiles`` points: one per endpoint row of ``summary``
    (tags ``metric=request``, ``request_type``, ``name``) and one per stream row (``metric=ws_lag``,
    ``stream``); fields ``count`` (and ``failures`` for endpoints) and the percentiles of the whole
    run, merged over every interval and process (what the trends dashboard plots: percentiles
    never average). At most ``max_rows`` of each kind: a run writes a bounded number of points."""
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    rows = [(r, {"metric": "request", "request_type": r.get("type") or "", "name": r.get("name") or ""})
            for r in list(summary.get("endpoints") or ())[:max_rows]]
    rows += [(r, {"metric": "ws_lag", "stream": r.get("stream") or ""})
             for r in list(summary.get("streams") or ())[:max_rows]]
    for row, tags in rows:
        if not row.get("count"):
            continue
        fields: dict[str, Any] = {"count": int(row["count"])}
        if tags["metric"] == "request":
            fields["failures"] = int(row.get("failures") or 0)
        for key, field in _RUN_PERCENTILE_FIELDS:
            if row.get(key) is not None:
                fields[field] = float(row[key])
        out.append((tags, fields))
    return out


def run_fields() -> dict[str, Any]:
    """``version`` and ``git_commit`` (when known) of the ``run`` annotations."""
    from ..core.runmeta import git_commit, versions

    fields: dict[str, Any] = {"version": versions().get("letrade_perf") or ""}
    commit = git_commit()
    if commit:
        fields["git_commit"] = commit
    return fields


class ProcessGauges:
    """The per-interval ``users`` and ``pacing`` points of one process, as an
    :data:`IntervalPoints` for :class:`InfluxSink`.

    ``user_count()`` is the process's running users; ``pacer_stats()`` a
    :class:`~letrade_perf.pacing.PacerStats` or None (no pacer: no ``pacing`` point). On the
    master (``role="master"``) ``rps``/``fail_rps`` are the sums of the workers' latest figures
    (:attr:`worker_rps`); elsewhere they are the interval's ``request`` samples per second."""

    def __init__(self, role: str, user_count: Callable[[], int],
                 pacer_stats: Callable[[], Any] | None = None) -> None:
        self.role = role
        self._user_count = user_count
        self._pacer_stats = pacer_stats
        self.rps = 0.0
        self.fail_rps = 0.0
        self.worker_rps: dict[str, tuple[float, float]] = {}
        self._wait_s_total: float | None = None

    def __call__(self, start: float, end: float, requests: int,
                 failures: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        if self.role == "master":
            rps = sum(r for r, _ in self.worker_rps.values())
            fail_rps = sum(f for _, f in self.worker_rps.values())
        else:
            seconds = end - start
            rps = requests / seconds if seconds > 0 else 0.0
            fail_rps = failures / seconds if seconds > 0 else 0.0
            self.rps, self.fail_rps = rps, fail_rps
        try:
            users = int(self._user_count() or 0)
        except Exception:
            users = 0
        out: list[tuple[str, dict[str, Any], dict[str, Any]]] = [("users", {}, {"count": users, "rps": float(rps),
                                                            "fail_rps": float(fail_rps)})]
        st = self._pacer_stats() if self._pacer_stats is not None else None
        if st is not None:
            total = float(st.wait_s_total)
            waited = total - self._wait_s_total if self._wait_s_total is not None else total
            self._wait_s_total = total
            out.append(("pacing", {}, {
                "weight_used": int(st.weight_used), "weight_budget": int(st.weight_budget),
                "orders_used": int(st.orders_used), "orders_budget": int(st.orders_budget),
                "wait_s": max(0.0, waited), "waits": int(st.waits), "r429": int(st.r429), "r418": int(st.r418),
                "share": float(st.share)}))
        return out
