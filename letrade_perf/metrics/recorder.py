"""Every measurement of one Locust process, as mergeable per-interval snapshots.

:class:`MetricsRecorder` listens to Locust's ``request`` event and the harness's own events and
keeps, for the current interval, one :class:`Series` (a :class:`Histogram` plus the largest clock
uncertainty) per *series key* ``(metric, tags)``, plus counters and the per-second up/down map.
:meth:`MetricsRecorder.drain` hands the interval over as a :class:`Snapshot` and starts the next
one. Snapshots merge (:class:`MetricsStore`) across intervals and across workers — a worker
ships its snapshot with each Locust worker report — so every percentile comes from one merged
histogram.

What each event becomes (metric ``{tags}``):

* ``request`` from REST (request types ``GET POST PUT DELETE``), ``ccxt`` and ``WSAPI`` →
  ``request{type, name, status}``, and the second it happened in counts towards ``uptime``;
* a pacing wait (:meth:`MetricsRecorder.watch_pacing`: the pacer reports each wait that ends,
  and the waits in progress are read at each drain) → every whole second it spanned counts
  towards ``uptime`` as wanted; with no successful answer in that second it is a down second;
* ``pipeline`` → ``pipeline{name, status}``; ``reconciliation`` → ``reconciliation{name, status}``;
* ``WSCONN`` → ``ws_connection{name, status}`` (connects succeed; failed connects and
  disconnects fail: the catalogue's ``ws_connection_events``);
* ``letrade_ws_time`` → counters ``ws_time{name, state}`` (``state`` ``wanted`` or
  ``connected``, in ms): what a :class:`ConnectionTime` reports (the catalogue's ``ws_connection``
  = connected ÷ wanted). :meth:`MetricsRecorder.listen` adds the hook when the events lack it;
* a ``request`` whose ``context`` holds :data:`INTENDED_CONTEXT` (an open-model user's request:
  its latency from the intended start, ms) → also ``request_intended{type, name, status}``
  (the catalogue's coordinated-omission-corrected figure; the request's own sample stays the
  service time);
* ``letrade_arrival(kind, started, dropped)`` (an open-model schedule's iterations) → the
  cumulative gauges ``iterations``, ``dropped_iterations`` and, per kind, ``iterations.<kind>``,
  ``dropped_iterations.<kind>`` (:meth:`MetricsRecorder.listen` adds the hook when the events lack it);
* ``WS`` is skipped (the same lag arrives with its uncertainty on ``letrade_ws_lag``);
* any other request type ``X`` → ``X{name, status}``;
* ``letrade_ws_lag`` → ``ws_lag{stream}`` (raw lag, may be negative under clock error; the
  series remembers the largest uncertainty);
* ``letrade_slippage`` → ``slippage{symbol, side}`` (bps); ``letrade_fee`` → ``fees{symbol, asset}`` (bps);
* ``letrade_order`` → counter ``orders{outcome, source}``;
* the pacer's 429/418 totals are read at each drain (gauges).

``status`` is ``ok`` or ``fail`` — or ``clock`` for a ``-1021`` answer (an exception with
``client_clock_error``): the client's clock was off, the exchange answered, so it is neither a
success nor a failure of the API (``api_success`` leaves it out; ``uptime`` counts it as up). Tag values are capped per metric (:data:`MAX_SERIES_PER_METRIC`):
beyond it new tag sets fold into ``name="(other)"``.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, TextIO, cast

from .histogram import Histogram

if TYPE_CHECKING:
    from locust.event import Events

Tags = tuple[tuple[str, str], ...]
Key = tuple[str, Tags]

API_REQUEST_TYPES = frozenset({"GET", "POST", "PUT", "DELETE", "ccxt", "WSAPI"})
MAX_SERIES_PER_METRIC = 500
OTHER = "(other)"
SAMPLES_ENV = "LETRADE_RECORD_SAMPLES"
"""Test hook: a directory; every sample is also appended to ``samples-<pid>.jsonl`` there."""
WS_TIME = "ws_time"
"""Counter series of connection time: ``ws_time{name, state=wanted|connected}``, milliseconds."""
WS_TIME_EVENT = "letrade_ws_time"
"""The event a :class:`ConnectionTime` reports on: ``(name, wanted_ms, connected_ms)`` (deltas)."""
INTENDED_CONTEXT = "letrade_intended_ms"
"""Key of a request event's ``context``: the request's latency from its intended start (open model), ms."""
INTENDED_SERIES = "request_intended"
"""The series of those latencies: ``request_intended{type, name, status}``."""
ARRIVAL_EVENT = "letrade_arrival"
"""The event an open-model schedule reports its iterations on: ``(kind, started, dropped)`` (deltas)."""


class PacingSource(Protocol):
    """What :meth:`MetricsRecorder.watch_pacing` needs of the process's pacer
    (:class:`~letrade_perf.pacing.pacer.Pacer`)."""

    def subscribe(self, *, on_wait: Callable[[float], Any] | None = None) -> None: ...

    def blocked_s(self) -> float: ...


class Series:
    """One series' samples in an interval (or merged over many)."""

    __slots__ = ("hist", "uncertainty_ms")

    def __init__(self) -> None:
        self.hist = Histogram()
        self.uncertainty_ms: float | None = None

    def merge(self, other: "Series") -> "Series":
        self.hist.merge(other.hist)
        if other.uncertainty_ms is not None and (self.uncertainty_ms is None
                                                 or other.uncertainty_ms > self.uncertainty_ms):
            self.uncertainty_ms = other.uncertainty_ms
        return self


class Snapshot:
    """What one process measured in one interval ``[start, end)`` (epoch seconds)."""

    __slots__ = ("start", "end", "series", "counters", "up_seconds", "gauges")

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.series: dict[Key, Series] = {}
        self.counters: dict[Key, int] = {}
        self.up_seconds: dict[int, bool] = {}
        self.gauges: dict[str, float] = {}

    def to_wire(self) -> dict[str, Any]:
        """A msgpack/JSON-friendly form (lists, string keys)."""
        return {"start": self.start, "end": self.end,
                "series": [[m, [list(t) for t in tags], s.hist.to_dict(), s.uncertainty_ms]
                           for (m, tags), s in self.series.items()],
                "counters": [[m, [list(t) for t in tags], n] for (m, tags), n in self.counters.items()],
                "up": [[sec, 1 if ok else 0] for sec, ok in self.up_seconds.items()],
                "gauges": dict(self.gauges)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> "Snapshot":
        snap = cls(float(data["start"]), float(data["end"]))
        for m, tags, hist, unc in data.get("series", ()):
            s = Series()
            s.hist = Histogram.from_dict(hist)
            s.uncertainty_ms = unc
            snap.series[(m, tuple((str(k), str(v)) for k, v in tags))] = s
        for m, tags, n in data.get("counters", ()):
            snap.counters[(m, tuple((str(k), str(v)) for k, v in tags))] = int(n)
        for sec, ok in data.get("up", ()):
            snap.up_seconds[int(sec)] = bool(ok)
        snap.gauges = {str(k): float(v) for k, v in (data.get("gauges") or {}).items()}
        return snap


UPTIME_BLOCK_S = 4096
"""Seconds per block of :class:`UptimeSeconds` (one byte each)."""


class UptimeSeconds:
    """The run's wanted seconds and which of them were up, exact and compact.

    One byte per second of the run (0: not wanted, 1: wanted and down, 2: up), in blocks of
    :data:`UPTIME_BLOCK_S` seconds allocated as the run reaches them: about 3.5 KB per hour of
    run whatever the load (a dict of seconds costs ~30× that), and a second that arrives late —
    a worker's report a period behind — still merges exactly (down, then up, is up). The counts
    are kept as seconds are marked, so :meth:`counts` is O(1)."""

    __slots__ = ("_blocks", "wanted", "up")

    def __init__(self) -> None:
        self._blocks: dict[int, bytearray] = {}
        self.wanted = 0
        """Seconds marked (wanted)."""
        self.up = 0
        """Seconds marked up at least once."""

    def mark(self, sec: int, ok: bool) -> None:
        """Second ``sec`` was wanted; ``ok``: it had a successful answer."""
        b, i = divmod(int(sec), UPTIME_BLOCK_S)
        block = self._blocks.get(b)
        if block is None:
            block = self._blocks[b] = bytearray(UPTIME_BLOCK_S)
        v = block[i]
        if v == 0:
            self.wanted += 1
        if ok and v != 2:
            self.up += 1
            block[i] = 2
        elif v == 0:
            block[i] = 1

    def counts(self) -> tuple[int, int]:
        """(up seconds, wanted seconds)."""
        return self.up, self.wanted

    def items(self) -> Iterable[tuple[int, bool]]:
        """(second, up) of every wanted second, in order."""
        for b in sorted(self._blocks):
            block = self._blocks[b]
            base = b * UPTIME_BLOCK_S
            for i, v in enumerate(block):
                if v:
                    yield base + i, v == 2

    def __len__(self) -> int:
        return self.wanted

    def nbytes(self) -> int:
        """Bytes held by the seconds (the blocks)."""
        return len(self._blocks) * UPTIME_BLOCK_S


class MetricsStore:
    """Snapshots merged: the run so far (local: one process; master: every worker).

    Gauges are kept per source (a worker's client id) and summed when read. The per-second
    up/down record of ``uptime`` is an :class:`UptimeSeconds` (one byte per second of run), not
    a growing dict: a day-long soak keeps it under 100 KB."""

    def __init__(self) -> None:
        self.series: dict[Key, Series] = {}
        self.counters: dict[Key, int] = {}
        self.uptime_seconds = UptimeSeconds()
        self._gauges: dict[str, dict[str, float]] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.snapshots = 0

    def merge(self, snap: Snapshot, source: str = "local") -> None:
        for key, s in snap.series.items():
            mine = self.series.get(key)
            if mine is None:
                mine = self.series[key] = Series()
            mine.merge(s)
        for key, n in snap.counters.items():
            self.counters[key] = self.counters.get(key, 0) + n
        mark = self.uptime_seconds.mark
        for sec, ok in snap.up_seconds.items():
            mark(sec, ok)
        if snap.gauges:
            self._gauges[source] = dict(snap.gauges)
        if snap.series or snap.counters:
            self.first = snap.start if self.first is None else min(self.first, snap.start)
            self.last = snap.end if self.last is None else max(self.last, snap.end)
        self.snapshots += 1

    def gauge(self, name: str) -> float:
        """A gauge summed over the sources' latest values."""
        return sum(g.get(name, 0.0) for g in self._gauges.values())

    # -- selection ------------------------------------------------------------------------------
    def select(self, metric: str, tags: Tags = ()) -> list[tuple[Tags, Series]]:
        """The series of ``metric`` whose tags include every ``tags`` pair."""
        want = tags
        out = []
        for (m, t), s in self.series.items():
            if m != metric:
                continue
            if want and not all(pair in t for pair in want):
                continue
            out.append((t, s))
        return out

    def merged(self, metric: str, tags: Tags = ()) -> Series:
        """One series merged from every matching one."""
        out = Series()
        for _t, s in self.select(metric, tags):
            out.merge(s)
        return out

    def ok_fail(self, metric: str, tags: Tags = ()) -> tuple[int, int]:
        """Samples with ``status=ok`` and with ``status=fail`` among the matching series
        (``status=clock``, a client-clock error, is neither)."""
        ok = fail = 0
        for t, s in self.select(metric, tags):
            if ("status", "clock") in t:
                continue
            if ("status", "fail") in t:
                fail += s.hist.count
            else:
                ok += s.hist.count
        return ok, fail

    def counter(self, metric: str, tags: Tags = ()) -> int:
        total = 0
        for (m, t), n in self.counters.items():
            if m == metric and all(pair in t for pair in tags):
                total += n
        return total

    def connection_time(self, tags: Tags = ()) -> tuple[int, int]:
        """(wanted ms, connected ms) of the connections whose ``ws_time`` tags include ``tags``."""
        return (self.counter(WS_TIME, tags + (("state", "wanted"),)),
                self.counter(WS_TIME, tags + (("state", "connected"),)))

    @property
    def up_seconds(self) -> dict[int, bool]:
        """Every wanted second → whether it was up (a dict built on each read: for tests and
        diagnostics; :meth:`uptime` reads the counts)."""
        return dict(self.uptime_seconds.items())

    def uptime(self) -> tuple[int, int]:
        """(seconds with a successful API answer, seconds the run wanted the exchange: with API
        traffic or spent wholly blocked by pacing by some user)."""
        return self.uptime_seconds.counts()

    def by_tag(self, metric: str, tag: str) -> dict[str, Series]:
        """``metric``'s series merged per value of ``tag`` (e.g. per endpoint ``name``)."""
        out: dict[str, Series] = {}
        for t, s in self.select(metric):
            value = dict(t).get(tag)
            if value is None:
                continue
            out.setdefault(value, Series()).merge(s)
        return out


class ConnectionTime:
    """The time one connection was *wanted* and was *connected*, reported as millisecond deltas.

    One per connection its owner keeps open (a WS stream user's connection, a pipeline user's
    WebSocket API connection across its reconnects). Wanted time runs from the first connect
    attempt until :meth:`stop` (the owner no longer wants the connection: the user stops), except
    that a first attempt that succeeds starts it at the connect: the opening handshake is not an
    outage (a first attempt that fails is: wanted from that attempt). Connected time runs from each
    :meth:`up` to the next :meth:`down` or :meth:`stop`. So a reconnect gap — disconnect, back-off,
    failed connects, the handshake that finally succeeds — is wanted but not connected: down
    time. The owner calls :meth:`want` before each connect attempt, :meth:`up` when it succeeds,
    :meth:`down` when it fails or the connection ends. :meth:`flush` hands the
    milliseconds accrued since the last flush to ``report(name, wanted_ms, connected_ms)``;
    the reported totals are the floors of the exact totals (no rounding drift, never more
    connected than wanted). ``clock`` is monotonic seconds (injectable)."""

    __slots__ = ("name", "_report", "_clock", "_wanted", "_connected", "_want_since", "_up_since",
                 "_attempt_at", "_sent_wanted", "_sent_connected")

    def __init__(self, name: str, report: Callable[[str, int, int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._report = report
        self._clock = clock
        self._wanted = 0.0            # seconds of closed wanted periods
        self._connected = 0.0         # seconds of closed connected periods
        self._want_since: float | None = None
        self._up_since: float | None = None
        self._attempt_at: float | None = None   # a first attempt whose outcome is not known yet
        self._sent_wanted = 0         # ms reported so far
        self._sent_connected = 0

    def want(self) -> None:
        """A connect attempt is about to start."""
        if self._want_since is None and self._attempt_at is None:
            self._attempt_at = self._clock()

    def up(self) -> None:
        """Connected. The first connect starts the wanted time now (its handshake is not down time)."""
        now = self._clock()
        if self._want_since is None:
            self._want_since = now
        self._attempt_at = None
        if self._up_since is None:
            self._up_since = now

    def down(self) -> None:
        """Disconnected, or a connect attempt failed; wanted time goes on (a failed first attempt
        starts it at that attempt)."""
        now = self._clock()
        if self._want_since is None and self._attempt_at is not None:
            self._want_since = self._attempt_at
        self._attempt_at = None
        if self._up_since is not None:
            self._connected += now - self._up_since
            self._up_since = None

    def stop(self) -> None:
        """No longer wanted (the user stops): both times stop until the next :meth:`want`."""
        now = self._clock()
        if self._up_since is not None:
            self._connected += now - self._up_since
            self._up_since = None
        if self._want_since is not None:
            self._wanted += now - self._want_since
            self._want_since = None
        self._attempt_at = None

    @property
    def connected(self) -> bool:
        return self._up_since is not None

    def totals(self) -> tuple[float, float]:
        """(wanted seconds, connected seconds) so far, both as of one clock reading."""
        now = self._clock()
        wanted = self._wanted + (now - self._want_since if self._want_since is not None else 0.0)
        connected = self._connected + (now - self._up_since if self._up_since is not None else 0.0)
        return wanted, min(connected, wanted)

    def flush(self) -> tuple[int, int]:
        """Report (and return) the milliseconds (wanted, connected) accrued since the last flush."""
        wanted, connected = self.totals()
        w_ms, c_ms = int(wanted * 1000.0), int(connected * 1000.0)
        dw, dc = w_ms - self._sent_wanted, c_ms - self._sent_connected
        if dw or dc:
            self._sent_wanted, self._sent_connected = w_ms, c_ms
            if self._report is not None:
                self._report(self.name, dw, dc)
        return dw, dc


class MetricsRecorder:
    """The process's event listeners, accumulating the current interval.

    ``clock`` (wall seconds) is injectable; ``gauges`` is called at each :meth:`drain` for the
    process's cumulative gauges (the pacer's 429/418 totals)."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 gauges: Callable[[], dict[str, float]] | None = None,
                 samples_dir: str | None = None) -> None:
        self._clock = clock
        self._gauges = gauges
        self._cap: dict[str, set[Tags]] = {}
        self._cur = Snapshot(clock(), clock())
        self._fast: dict[tuple[object, ...], Series] = {}   # (request_type, name, ok) → this interval's series
        self._keys: dict[int, Key] = {}          # id(series) → its key (test hook only)
        self._samples: TextIO | None = None
        self._pacing: PacingSource | None = None
        self._iterations: dict[str, float] = {}    # open-model iteration totals (cumulative gauges)
        samples_dir = samples_dir if samples_dir is not None else os.environ.get(SAMPLES_ENV)
        if samples_dir:
            os.makedirs(samples_dir, exist_ok=True)
            self._samples = open(os.path.join(samples_dir, f"samples-{os.getpid()}.jsonl"), "a",
                                 encoding="utf-8", buffering=1 << 16)

    # -- wiring ----------------------------------------------------------------------------------
    def listen(self, events: Events) -> None:
        """Subscribe to Locust's ``request`` and the harness's events on ``events``."""
        # locust's EventHook.add_listener is unannotated
        events.request.add_listener(self.on_request)  # type: ignore[no-untyped-call]
        for name, handler in (("letrade_ws_lag", self.on_ws_lag), ("letrade_slippage", self.on_slippage),
                              ("letrade_fee", self.on_fee), ("letrade_order", self.on_order)):
            hook = getattr(events, name, None)
            if hook is not None:
                hook.add_listener(handler)
        hook = getattr(events, WS_TIME_EVENT, None)
        if hook is None:
            try:   # an event hook of Locust's own kind, without importing Locust here
                hook = type(events.request)()
                setattr(events, WS_TIME_EVENT, hook)
            except Exception:
                hook = None
        if hook is not None:
            hook.add_listener(self.on_ws_time)
        hook = getattr(events, ARRIVAL_EVENT, None)
        if hook is None:
            try:
                hook = type(events.request)()
                setattr(events, ARRIVAL_EVENT, hook)
            except Exception:
                hook = None
        if hook is not None:
            hook.add_listener(self.on_arrival)

    def watch_pacing(self, pacer: PacingSource) -> None:
        """Count the seconds users of this process are blocked by ``pacer`` as seconds the run
        wanted the exchange (``uptime``): each wait that ends is reported to
        :meth:`on_pacing_wait`; the waits still in progress are read at each :meth:`drain`."""
        self._pacing = pacer
        pacer.subscribe(on_wait=self.on_pacing_wait)

    # -- recording -------------------------------------------------------------------------------
    def _series(self, metric: str, tags: Tags) -> Series:
        cur = self._cur.series
        key = (metric, tags)
        s = cur.get(key)
        if s is None:
            seen = self._cap.setdefault(metric, set())
            if tags not in seen:
                if len(seen) >= MAX_SERIES_PER_METRIC:
                    tags = tuple((k, OTHER if k in ("name", "stream") else v) for k, v in tags)
                    key = (metric, tags)
                    s = cur.get(key)
                seen.add(tags)
            if s is None:
                s = cur[key] = Series()
        return s

    def record(self, metric: str, tags: Tags, value: float, uncertainty_ms: float | None = None) -> None:
        """Record one sample of ``metric{tags}`` (tags sorted by name)."""
        s = self._series(metric, tags)
        s.hist.record(value)
        if uncertainty_ms is not None and (s.uncertainty_ms is None or uncertainty_ms > s.uncertainty_ms):
            s.uncertainty_ms = uncertainty_ms
        if self._samples is not None:
            self._samples.write(json.dumps([metric, dict(tags), value]) + "\n")

    def on_request(self, request_type: str | None = None, name: str | None = None,
                   response_time: float | None = None, exception: BaseException | None = None,
                   context: Mapping[str, Any] | None = None, **_kw: Any) -> None:
        # the hot path (every request of every user): one dict lookup finds the interval's series
        if request_type == "WS" or response_time is None:
            return
        ok = exception is None or getattr(exception, "client_clock_error", False)
        key = (request_type, name, ok, exception is None)
        s = self._fast.get(key)
        if s is None:
            # Locust always passes request_type and name (str); the None defaults are defensive
            s = self._fast[key] = self._request_series(cast(str, request_type), cast(str, name),
                                                       "ok" if exception is None else ("clock" if ok else "fail"))
        s.hist.record(response_time)
        if self._samples is not None:
            self._write_sample(s, response_time)
        if context and INTENDED_CONTEXT in context:
            self._record_intended(key, context[INTENDED_CONTEXT])
        if request_type in API_REQUEST_TYPES:
            sec = int(self._clock())
            up = self._cur.up_seconds
            if ok:
                up[sec] = True
            elif sec not in up:
                up[sec] = False

    def _record_intended(self, key: tuple[object, ...], value: Any) -> None:
        """An open-model request's latency from its intended start, beside its service time."""
        ikey = (INTENDED_SERIES,) + key
        s = self._fast.get(ikey)
        if s is None:
            request_type, name, ok, clean = key
            tags: Tags = (("name", cast(str, name)), ("status", "ok" if clean else ("clock" if ok else "fail")),
                          ("type", cast(str, request_type)))
            s = self._fast[ikey] = self._series(INTENDED_SERIES, tags)
            self._keys[id(s)] = (INTENDED_SERIES, tags)
        try:
            ms = float(value)
        except (TypeError, ValueError):
            return
        s.hist.record(ms)
        if self._samples is not None:
            self._write_sample(s, ms)

    def _request_series(self, request_type: str, name: str, status: str) -> Series:
        tags: Tags
        if request_type in API_REQUEST_TYPES:
            metric, tags = "request", (("name", name), ("status", status), ("type", request_type))
        else:
            metric = "ws_connection" if request_type == "WSCONN" else str(request_type)
            tags = (("name", name), ("status", status))
        s = self._series(metric, tags)
        self._keys[id(s)] = (metric, tags)
        return s

    def _write_sample(self, s: Series, value: float) -> None:
        metric, tags = self._keys[id(s)]
        if self._samples is not None:   # callers check it; this narrows the Optional
            self._samples.write(json.dumps([metric, dict(tags), value]) + "\n")

    def on_ws_lag(self, stream: str | None = None, lag_ms: float | None = None,
                  uncertainty_ms: float | None = None, **_kw: Any) -> None:
        # hot path (every WS event): the interval's series by stream name
        if lag_ms is None or lag_ms != lag_ms:
            return
        key = ("WS", stream)
        s = self._fast.get(key)
        if s is None:
            tags: Tags = (("stream", cast(str, stream)),)   # the firers always pass a stream name
            s = self._fast[key] = self._series("ws_lag", tags)
            self._keys[id(s)] = ("ws_lag", tags)
        s.hist.record(lag_ms)
        if uncertainty_ms is not None and (s.uncertainty_ms is None or uncertainty_ms > s.uncertainty_ms):
            s.uncertainty_ms = uncertainty_ms
        if self._samples is not None:
            self._write_sample(s, lag_ms)

    def on_slippage(self, symbol: str | None = None, side: str | None = None, bps: float | None = None,
                    **_kw: Any) -> None:
        if bps is not None:   # the firers always pass symbol and side (str)
            self.record("slippage", cast(Tags, (("side", side), ("symbol", symbol))), float(bps))

    def on_fee(self, symbol: str | None = None, asset: str | None = None, bps: float | None = None,
               **_kw: Any) -> None:
        if bps is not None:   # the firers always pass symbol and asset (str)
            self.record("fees", cast(Tags, (("asset", asset), ("symbol", symbol))), float(bps))

    def on_order(self, outcome: object = None, source: object = None, **_kw: Any) -> None:
        key = ("orders", (("outcome", str(outcome)), ("source", str(source))))
        counters = self._cur.counters
        counters[key] = counters.get(key, 0) + 1

    def on_arrival(self, kind: object = None, started: int = 0, dropped: int = 0, **_kw: Any) -> None:
        """An open-model schedule of ``kind`` started and dropped this many iterations (deltas)."""
        totals = self._iterations
        for name, n in (("iterations", started), ("dropped_iterations", dropped)):
            if n:
                for key in (name, f"{name}.{kind}"):
                    totals[key] = totals.get(key, 0.0) + n

    def count(self, metric: str, tags: Tags, n: int = 1) -> None:
        """Add ``n`` to the counter ``metric{tags}`` of this interval (tags sorted by name)."""
        if n:
            counters = self._cur.counters
            key = (metric, tags)
            counters[key] = counters.get(key, 0) + int(n)

    def on_pacing_wait(self, blocked_s: float) -> None:
        """A pacing wait that ends now was blocked for ``blocked_s`` seconds."""
        self._mark_blocked(self._clock(), blocked_s)

    def _mark_blocked(self, now: float, blocked_s: float) -> None:
        """Every whole second inside ``[now - blocked_s, now)`` is wanted; one without a successful
        answer (so far: a later answer in it makes it up, here or when snapshots merge) is down.
        The partly blocked seconds at either end are left to the traffic in them: a wait of a few
        ms (behind another waiter, a share that arrives) never turns a second down."""
        if not blocked_s > 0.0:
            return
        up = self._cur.up_seconds
        for sec in range(math.ceil(now - blocked_s), math.floor(now)):
            if sec not in up:
                up[sec] = False

    def on_ws_time(self, name: object = None, wanted_ms: int = 0, connected_ms: int = 0, **_kw: Any) -> None:
        """Milliseconds a connection ``name`` was wanted and connected (a :class:`ConnectionTime` flush)."""
        counters = self._cur.counters
        for state, ms in (("wanted", wanted_ms), ("connected", connected_ms)):
            if ms:
                key = (WS_TIME, (("name", str(name)), ("state", state)))
                counters[key] = counters.get(key, 0) + int(ms)

    # -- handing over ------------------------------------------------------------------------
    def drain(self) -> Snapshot:
        """The interval so far; a new one starts now."""
        now = self._clock()
        if self._pacing is not None:
            try:
                self._mark_blocked(now, self._pacing.blocked_s())   # the waits in progress
            except Exception:   # a pacing source must never break the measurement path
                pass
        snap, self._cur = self._cur, Snapshot(now, now)
        self._fast = {}
        self._keys = {}
        snap.end = now
        if self._gauges is not None:
            try:
                snap.gauges = {k: float(v) for k, v in self._gauges().items()}
            except Exception:   # a gauge source must never break the measurement path
                pass
        if self._iterations:
            snap.gauges.update(self._iterations)
        if self._samples is not None:
            self._samples.flush()
        return snap

    def close(self) -> None:
        if self._samples is not None:
            self._samples.close()
            self._samples = None


def load_samples(directory: str) -> Iterable[tuple[str, dict[str, str], float]]:
    """The samples the :data:`SAMPLES_ENV` test hook wrote (every process's file)."""
    for fname in sorted(os.listdir(directory)):
        if fname.startswith("samples-") and fname.endswith(".jsonl"):
            with open(os.path.join(directory, fname), encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        metric, tags, value = json.loads(line)
                        yield metric, tags, value
