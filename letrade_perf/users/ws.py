"""WebSocket market streams: combined-stream connections, per-stream lag, reconnects.

One connection per user (``/stream?streams=a/b/c``) read by a greenlet with websocket-client's
``create_connection()`` + ``recv_data()`` loop (``skip_utf8_validation=True``: ~3× the message
rate). ``recv_data`` answers server pings with the echoed pong itself, so the server's
pong-timeout never drops us.

Lag of an event = local receive time + clock offset − its event time ``E`` (streams whose
payload has ``E`` only: ``parse_stream(name).has_event_time``). Every lag is reported twice:

* ``events.request`` with ``request_type="WS"``, ``name=<stream>`` (``btcusdt@trade``),
  ``response_time=max(lag_ms, 0)`` (Locust's histograms take no negatives),
  ``response_length=len(message)``, ``context={"uncertainty_ms": …, "lag_ms": <raw lag>}``;
* ``events.letrade_ws_lag`` (when the plugin defined it) with ``stream``, ``lag_ms`` (raw,
  may be slightly negative within the uncertainty), ``uncertainty_ms``, ``event_time``,
  ``received_at``.

Connections are reported as ``request_type="WSCONN"``: ``connect`` (success with the handshake
time, or failure) and ``disconnect`` (failure: the server or network closed a live connection) —
the ``ws_connection_events`` metric. The connection's time is reported as well, on
``events.letrade_ws_time`` under the name ``connect`` (a
:class:`~letrade_perf.metrics.recorder.ConnectionTime`, flushed every second): wanted from the
first connect (from the first attempt if that one fails) until ``on_stop``, connected from each
successful handshake until the connection ends — the ``ws_connection`` metric.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import gevent
from locust import User, constant, task

from ..binance.streams import parse_stream
from ..config.profile import WsStreamSettings
from ..metrics.recorder import WS_TIME_EVENT, ConnectionTime
from .base import Failure, HarnessUserMixin

if TYPE_CHECKING:
    from websocket import WebSocket

#: orjson's and json's ``loads`` (their signatures differ; both take the frame's ``str``/``bytes``)
_loads: Callable[[str | bytes], Any]
try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover
    import json

    _loads = json.loads


def connection_time(environment, name: str, clock: Callable[[], float] = time.monotonic) -> ConnectionTime:
    """A :class:`ConnectionTime` that reports on ``environment.events.letrade_ws_time`` (when the
    recorder defined it; otherwise it only counts)."""
    def report(conn_name: str, wanted_ms: int, connected_ms: int) -> None:
        hook = getattr(environment.events, WS_TIME_EVENT, None)
        if hook is not None:
            hook.fire(name=conn_name, wanted_ms=wanted_ms, connected_ms=connected_ms)

    return ConnectionTime(name, report, clock)


@dataclass
class WsCounters:
    """Connection counters (per user and process-wide): attempts, connects, failures,
    disconnects, messages, and the seconds connected out of the seconds alive."""

    attempts: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    messages: int = 0
    lag_samples: int = 0
    connected_s: float = 0.0
    alive_s: float = 0.0
    by_stream: dict = field(default_factory=dict)

    @property
    def connected_ratio(self) -> float:
        return self.connected_s / self.alive_s if self.alive_s > 0 else 0.0

    def snapshot(self) -> dict:
        return {"attempts": self.attempts, "connects": self.connects, "connect_failures": self.connect_failures,
                "disconnects": self.disconnects, "messages": self.messages, "lag_samples": self.lag_samples,
                "connected_s": round(self.connected_s, 3), "alive_s": round(self.alive_s, 3),
                "connected_ratio": round(self.connected_ratio, 6), "messages_by_stream": dict(self.by_stream)}


class WsStreamUser(HarnessUserMixin, User):
    """Market streams of every profile symbol over one combined connection per user, with lag
    per stream.

    The work happens in a reader greenlet started in ``on_start``; the Locust task only
    watches it. Reconnects back off exponentially between ``settings.reconnect_min_s`` and
    ``settings.reconnect_max_s``.
    """

    abstract = True
    wait_time = constant(1)
    letrade_kind: ClassVar[str] = "ws_streams"
    #: the profile's ``users.ws_streams`` (frozen): stream templates (``{symbol}`` becomes each
    #: profile symbol in lower case), reconnect back-off (``reconnect_min_s`` doubling up to
    #: ``reconnect_max_s``)
    settings: ClassVar[WsStreamSettings] = WsStreamSettings()
    #: handshake timeout (s)
    connect_timeout_s: float = 10.0
    #: no frame at all (data or ping) for this long ⇒ the connection is treated as dead (s)
    idle_timeout_s: float = 60.0

    def on_start(self) -> None:
        self.pick_symbol()
        names = []
        for sym in self.ctx.symbols:
            for template in self.settings.streams:
                name = template.format(symbol=sym.lower())
                parse_stream(name)  # ValueError for a bad template: a profile error
                if name not in names:
                    names.append(name)
        self.stream_names = names
        self._has_e = {n: parse_stream(n).has_event_time for n in names}
        self.counters = WsCounters()
        self._conn: WebSocket | None = None
        self._running = True
        self._last_tick = time.monotonic()
        #: wanted vs connected time of this user's connection (``ws_connection``)
        self.uptime = connection_time(self.environment, "connect")
        self._reader = gevent.spawn(self._run)

    def on_stop(self) -> None:
        self._running = False
        uptime = getattr(self, "uptime", None)     # absent when on_start stopped early
        if uptime is not None:
            uptime.stop()
            uptime.flush()
        conn = self._conn
        if conn is not None:
            try:
                conn.close(timeout=1)
            except Exception:
                pass
        self._tick()
        self._conn = None
        if self._reader is not None:
            self._reader.kill(block=True, timeout=2)

    @task
    def watch(self) -> None:
        """Keep the reader alive (restart it if it died) and account alive/connected time."""
        self._tick()
        self.uptime.flush()
        if self._running and self._reader.dead:
            self._reader = gevent.spawn(self._run)
        gevent.sleep(1.0)  # the profile's wait may be 0: never spin

    def _tick(self) -> None:
        now = time.monotonic()
        delta, self._last_tick = now - self._last_tick, now
        totals = self.ctx.ws_counters
        self.counters.alive_s += delta
        totals.alive_s += delta
        if self._conn is not None:
            self.counters.connected_s += delta
            totals.connected_s += delta

    # -- the reader ---------------------------------------------------------------------------
    def url(self) -> str:
        return f"{self.ctx.ws_stream_url}/stream?streams={'/'.join(self.stream_names)}"

    def _run(self) -> None:
        try:
            self._connect_loop()
        finally:            # however the reader ends, the connection is not up any more
            self._conn = None
            self.uptime.down()

    def _connect_loop(self) -> None:
        import websocket

        failures = 0
        ctx = self.ctx
        while self._running:
            self.counters.attempts += 1
            ctx.ws_counters.attempts += 1
            self.uptime.want()
            t0 = time.perf_counter()
            try:
                conn = websocket.create_connection(self.url(), timeout=self.connect_timeout_s,
                                                   skip_utf8_validation=True, enable_multithread=False)
            except Exception as e:
                if not self._running:
                    return
                failures += 1
                self.uptime.down()
                self.counters.connect_failures += 1
                ctx.ws_counters.connect_failures += 1
                self.fire("WSCONN", "connect", (time.perf_counter() - t0) * 1000.0,
                          exception=Failure(f"connect failed: {type(e).__name__}"))
                gevent.sleep(self._backoff(failures))
                continue
            if self._running:             # (on_stop may have come during the handshake)
                self.uptime.up()
            self.fire("WSCONN", "connect", (time.perf_counter() - t0) * 1000.0)
            self.counters.connects += 1
            ctx.ws_counters.connects += 1
            self._conn = conn
            connected_at = time.monotonic()
            reason = self._read(conn)
            self.uptime.down()
            lasted = time.monotonic() - connected_at
            self._tick()
            self._conn = None
            self._close_quietly(conn)
            if not self._running:
                return
            self.counters.disconnects += 1
            ctx.ws_counters.disconnects += 1
            self.fire("WSCONN", "disconnect", lasted * 1000.0, exception=Failure(f"disconnected: {reason}"))
            failures = 1 if lasted > self.settings.reconnect_max_s else failures + 1
            gevent.sleep(self._backoff(failures))

    @staticmethod
    def _close_quietly(conn) -> None:
        try:
            conn.close(timeout=1)
        except Exception:
            pass

    def _backoff(self, failures: int) -> float:
        return min(self.settings.reconnect_max_s, self.settings.reconnect_min_s * (2 ** max(0, failures - 1)))

    def _read(self, conn) -> str:
        """Read until the connection ends; returns why it ended."""
        import websocket

        ctx = self.ctx
        clock = ctx.clock
        request = self.environment.events.request
        lag_event = getattr(self.environment.events, "letrade_ws_lag", None)
        has_e = self._has_e
        counters, totals = self.counters, ctx.ws_counters
        by_stream = counters.by_stream
        conn.settimeout(self.idle_timeout_s)
        while self._running:
            try:
                opcode, data = conn.recv_data()
            except websocket.WebSocketTimeoutException:
                return f"no frame for {self.idle_timeout_s:g}s"
            except websocket.WebSocketConnectionClosedException:
                return "closed by server"
            except Exception as e:  # socket errors, protocol errors
                return f"{type(e).__name__}"
            received_at = time.time()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return "close frame"
            if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                continue
            counters.messages += 1
            totals.messages += 1
            try:
                msg = _loads(data)
                stream = msg["stream"]
                payload = msg["data"]
            except (ValueError, KeyError, TypeError):
                continue  # a control reply or a malformed frame: not a stream event
            by_stream[stream] = by_stream.get(stream, 0) + 1
            totals.by_stream[stream] = totals.by_stream.get(stream, 0) + 1
            if not has_e.get(stream) or not isinstance(payload, dict):
                continue
            e_time = payload.get("E")
            if not isinstance(e_time, (int, float)):
                continue
            lag = clock.lag_ms(e_time, received_at)
            est = clock.estimate
            unc = est.uncertainty_ms if est is not None else None
            counters.lag_samples += 1
            totals.lag_samples += 1
            request.fire(request_type="WS", name=stream, response_time=lag if lag > 0 else 0.0,
                         response_length=len(data), response=None,
                         context={"uncertainty_ms": unc, "lag_ms": lag}, exception=None)
            if lag_event is not None:
                lag_event.fire(stream=stream, lag_ms=lag, uncertainty_ms=unc, event_time=e_time,
                               received_at=received_at)
        return "stopped"
