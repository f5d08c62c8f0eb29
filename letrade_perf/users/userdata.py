"""WebSocket API client (``/ws-api/v3``) and the user-data stream it carries.

:class:`WsApiClient` — one connection: paced connect (2 REQUEST_WEIGHT), signed requests
(params sorted, ``apiKey``/``timestamp``/``signature``), responses matched by ``id``, the
user-data subscription ``userDataStream.subscribe.signature`` (any key type, no logon), and a
reader greenlet that hands every ``{"subscriptionId":…, "event":{…}}`` to a
:class:`UserDataTracker`. Requests are reported as ``request_type="WSAPI"``, ``name=<method>``;
the connection as ``WSCONN`` ``connect ws-api`` (events), and its time as
``letrade_ws_time`` ``connect ws-api`` (wanted from the first connect, connected while up;
one :class:`~letrade_perf.metrics.recorder.ConnectionTime` per tracker, so a pipeline user's
reconnects — a new client each — are one connection whose gaps are down time).

:class:`UserDataTracker` — what the stream says about the account: balances (free + locked per
asset, from ``outboundAccountPosition``, absolute values applied in stream order) and, per
watched client order id, the executionReports, the balances just before the order's first
event and just after the ``outboundAccountPosition`` that follows its final report. Because
the exchange emits an order's reports and then one account update per engine batch, in order,
on every connection of the account, ``after − before`` is exactly what that order changed.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping

import gevent
from gevent.event import AsyncResult, Event

from ..binance.endpoints import WS_API_CONNECT_WEIGHT, WS_API_METHODS
from ..binance.headers import ORDER_COUNT_PREFIX, USED_WEIGHT_PREFIX
from ..binance.intervals import RATE_INTERVAL_LETTER
from ..binance.signing import ws_api_payload
from ..calls.path import Order, begin, call_failure, feedback
from ..calls.request import RECV_WINDOW_MS
from ..harness.ledger import shielded
from ..metrics.recorder import ConnectionTime
from ..pacing import IpBanned
from .base import Failure
from .ws import connection_time

if TYPE_CHECKING:
    from websocket import WebSocket

FINAL = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
_ids = itertools.count(1)


def _usage_headers(rate_limits: list | None) -> dict[str, str]:
    """A WebSocket API answer's ``rateLimits`` as the REST usage headers the pacer reads."""
    headers: dict[str, str] = {}
    for rl in rate_limits or ():
        kind, num = rl.get("rateLimitType"), rl.get("intervalNum", 1)
        if "count" not in rl:
            continue
        if kind == "REQUEST_WEIGHT":
            headers[f"{USED_WEIGHT_PREFIX}{num}{RATE_INTERVAL_LETTER.get(rl.get('interval'), 'M')}"] = str(rl["count"])
        elif kind == "ORDERS":
            headers[f"{ORDER_COUNT_PREFIX}{num}{RATE_INTERVAL_LETTER.get(rl.get('interval'), 'S')}"] = str(rl["count"])
    return headers


@dataclass
class WsApiResult:
    """A WebSocket API response: ``status`` (0 = no response in time), ``result`` or ``code``/``msg``."""

    status: int
    result: Any = None
    code: int | None = None
    msg: str | None = None
    elapsed_ms: float = 0.0
    retry_after_ms: float | None = None
    rate_limits: list | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def unknown(self) -> bool:
        """Execution status unknown (order methods): no answer, 5xx or -1006/-1007/-1008."""
        return self.status == 0 or self.status >= 500 or self.code in (-1006, -1007, -1008)

    def describe(self) -> str:
        if self.status == 0:
            return self.msg or "no response"
        return f"status {self.status} code {self.code}: {self.msg}"


@dataclass
class OrderWatch:
    """What the user-data stream showed for one client order id."""

    client_order_id: str
    reports: list = field(default_factory=list)
    before: dict | None = None           # asset -> (free, locked) just before the first report
    after: dict | None = None            # asset -> (free, locked) after the closing account update
    final_status: str | None = None
    final_at: float | None = None        # perf_counter when the final report arrived
    filled_at: float | None = None       # perf_counter when the FILLED report arrived
    balance_at: float | None = None      # perf_counter when the following account update arrived
    epoch: int = 0                       # tracker epoch at the first report (reconnects change it)
    done: Event = field(default_factory=Event)       # final report seen
    balanced: Event = field(default_factory=Event)   # account update after the final report seen

    @property
    def fills(self) -> list[dict]:
        return [r for r in self.reports if r.get("x") == "TRADE"]

    def executed_qty(self) -> Decimal:
        return sum((Decimal(r["l"]) for r in self.fills), Decimal(0))

    def quote_qty(self) -> Decimal:
        return sum((Decimal(r["Y"]) if r.get("Y") is not None else Decimal(r["l"]) * Decimal(r["L"])
                    for r in self.fills), Decimal(0))

    def fees(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for r in self.fills:
            asset = r.get("N")
            if asset:
                out[asset] = out.get(asset, Decimal(0)) + Decimal(r.get("n") or "0")
        return out


class UserDataTracker:
    """Balances and per-order state from the user-data stream (see the module docstring)."""

    def __init__(self) -> None:
        self.balances: dict[str, tuple[Decimal, Decimal]] = {}
        self._watches: dict[str, OrderWatch] = {}
        self._awaiting_balance: list[OrderWatch] = []
        self.epoch = 0
        self.events = 0
        #: the user-data connection's wanted/connected time, across the clients that carry it
        #: (set by the first :class:`WsApiClient`; never reset)
        self.connection_time: ConnectionTime | None = None

    def seed(self, balances: list[Mapping]) -> None:
        """Balances from ``GET /api/v3/account`` taken *after* subscribing: only assets the stream
        has not reported yet are taken (the stream's values are newer or equally new)."""
        for b in balances:
            asset = b.get("asset")
            if asset and asset not in self.balances:
                self.balances[asset] = (Decimal(b.get("free", "0")), Decimal(b.get("locked", "0")))

    def reset(self) -> None:
        """The stream was interrupted: balances are no longer known from it."""
        self.epoch += 1
        self.balances = {}

    def total(self, balances: Mapping[str, tuple[Decimal, Decimal]] | None, asset: str) -> Decimal | None:
        if balances is None or asset not in balances:
            return None
        f, locked = balances[asset]
        return f + locked

    def watch(self, client_order_id: str) -> OrderWatch:
        w = OrderWatch(client_order_id, epoch=self.epoch)
        self._watches[client_order_id] = w
        return w

    def unwatch(self, client_order_id: str) -> None:
        w = self._watches.pop(client_order_id, None)
        if w is not None and w in self._awaiting_balance:
            self._awaiting_balance.remove(w)

    def on_event(self, ev: Mapping, received: float) -> None:
        """Apply one user-data event (``received`` = perf_counter at reception)."""
        self.events += 1
        kind = ev.get("e")
        if kind == "executionReport":
            cid: Any = ev.get("c")   # a JSON value: a str, or None when absent (then no watch matches)
            w = self._watches.get(cid)
            if w is None and (orig := ev.get("C")):
                w = self._watches.get(orig)  # a cancel's report names the original in C
            if w is None:
                return
            if not w.reports:
                w.before = dict(self.balances)
            w.reports.append(dict(ev))
            status = ev.get("X")
            if status == "FILLED" and w.filled_at is None:
                w.filled_at = received
            if status in FINAL and w.final_status is None:
                w.final_status = status
                w.final_at = received
                self._awaiting_balance.append(w)
                w.done.set()
        elif kind == "outboundAccountPosition":
            for b in ev.get("B") or ():
                try:
                    self.balances[b["a"]] = (Decimal(b["f"]), Decimal(b["l"]))
                except (KeyError, TypeError, ArithmeticError):
                    continue
            if self._awaiting_balance:
                waiting, self._awaiting_balance = self._awaiting_balance, []
                for w in waiting:
                    w.after = dict(self.balances)
                    w.balance_at = received
                    w.balanced.set()


class WsApiError(Exception):
    """The WebSocket API connection could not be used."""


class WsApiClient:
    """One WebSocket API connection with a reader greenlet (see the module docstring)."""

    #: seconds to wait for a response before the request counts as unanswered
    request_timeout_s = 10.0
    connect_timeout_s = 10.0
    #: how often a live connection reports its wanted/connected time (s)
    time_flush_s = 1.0

    def __init__(self, ctx, environment, url: str, tracker: UserDataTracker | None = None,
                 on_event: Callable[[Mapping, float, float], None] | None = None):
        self.ctx = ctx
        self.environment = environment
        self.url = url
        self.tracker = tracker
        self.on_event = on_event
        self._conn: WebSocket | None = None
        self._reader = None
        self._pending: dict[str, AsyncResult] = {}
        self.subscription_id: int | None = None
        self.closed = True
        #: seconds spent waiting for rate budget (never part of a response time)
        self.paced_wait_s = 0.0
        uptime = tracker.connection_time if tracker is not None else None
        if uptime is None:
            uptime = connection_time(environment, "connect ws-api")
            if tracker is not None:
                tracker.connection_time = uptime
        #: wanted vs connected time (``ws_connection``); shared with the tracker's other clients
        self.uptime: ConnectionTime = uptime
        self._flusher = None

    # -- connection ---------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the connection (paced: 2 REQUEST_WEIGHT) and start reading. Raises WsApiError."""
        import websocket

        ctx = self.ctx
        try:
            self.paced_wait_s += ctx.pacer.acquire(WS_API_CONNECT_WEIGHT, name="ws-api connect")
        except IpBanned:
            ctx.abort("IP banned (HTTP 418)")
            raise WsApiError("IP banned") from None
        self.uptime.want()
        t0 = time.perf_counter()
        try:
            self._conn = websocket.create_connection(self.url, timeout=self.connect_timeout_s,
                                                     skip_utf8_validation=True, enable_multithread=False)
        except Exception as e:
            status = getattr(e, "status_code", None)
            self.uptime.down()
            self.uptime.flush()
            self._fire("WSCONN", "connect ws-api", t0, Failure(f"connect failed: {type(e).__name__} {status or ''}"))
            if status == 429:
                ctx.on_429(10.0)
            elif status == 418:
                ctx.on_418(120.0)
            raise WsApiError(f"WebSocket API connect failed: {type(e).__name__}: {e}") from e
        self.uptime.up()
        self._fire("WSCONN", "connect ws-api", t0, None)
        self._conn.settimeout(None)
        self.closed = False
        self._reader = gevent.spawn(self._read)
        self._flusher = gevent.spawn(self._flush_time)

    def _flush_time(self) -> None:
        while True:
            gevent.sleep(self.time_flush_s)
            self.uptime.flush()

    def _connection_ended(self) -> None:
        """Down (until a reconnect): close the connected period and report it."""
        self.uptime.down()
        self.uptime.flush()
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher is not gevent.getcurrent():
            flusher.kill(block=False)

    def close(self) -> None:
        self.closed = True
        self._connection_ended()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close(timeout=1)
            except Exception:
                pass
        if self._reader is not None:
            self._reader.kill(block=True, timeout=2)
            self._reader = None
        for ar in self._pending.values():
            if not ar.ready():
                ar.set(None)

    @property
    def connected(self) -> bool:
        return not self.closed and self._reader is not None and not self._reader.dead

    def _read(self) -> None:
        import websocket

        conn = self._conn
        tracker = self.tracker
        while conn is not None and not self.closed:
            try:
                opcode, data = conn.recv_data()
            except Exception:
                break
            received = time.perf_counter()
            received_wall = time.time()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            try:
                msg = json.loads(data)
            except ValueError:
                continue
            if "event" in msg and "id" not in msg:
                ev = msg["event"]
                if isinstance(ev, dict):
                    if tracker is not None:
                        tracker.on_event(ev, received)
                    if self.on_event is not None:
                        self.on_event(ev, received, received_wall)
                continue
            rid = msg.get("id")
            ar = self._pending.get(rid) if isinstance(rid, str) else None
            if ar is not None and not ar.ready():
                ar.set((msg, received))
        if not self.closed:
            self.closed = True
            self._connection_ended()
            if tracker is not None:
                tracker.reset()
            self._fire("WSCONN", "disconnect ws-api", time.perf_counter(), Failure("disconnected"))
        for ar in self._pending.values():
            if not ar.ready():
                ar.set(None)

    def _fire(self, request_type: str, name: str, t0: float, exc: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type=request_type, name=name, response_time=max(0.0, (time.perf_counter() - t0) * 1000.0),
            response_length=0, response=None, context={}, exception=exc)

    # -- requests -----------------------------------------------------------------------------
    def request(self, method: str, params: Mapping[str, Any] | None = None, *, signed: bool = False,
                report: bool = True, order: Order | None = None) -> WsApiResult:
        """Send one request and wait for its response (paced; never raises for API errors).
        ``order``: the request places it (the call path's safety gate —
        :class:`~letrade_perf.calls.path.SafetyRefusal` when refused — and ledger)."""
        ctx = self.ctx
        m = WS_API_METHODS[method]
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if self.closed or self._conn is None:
            return WsApiResult(0, msg="not connected")
        try:
            call = begin(ctx, m, {k: str(v) for k, v in params.items()}, order=order)
        except IpBanned:
            return WsApiResult(418, code=-1003, msg="IP banned")
        reservation = call.reservation
        if reservation is not None:
            self.paced_wait_s += reservation.waited_s
        if signed:
            creds = ctx.credentials
            params["apiKey"] = creds.api_key
            params.setdefault("recvWindow", RECV_WINDOW_MS)
            params["timestamp"] = int(ctx.clock.server_now_ms())
            params["signature"] = creds.sign(ws_api_payload(params))
        conn = self._conn

        def exchange() -> WsApiResult:
            rid = f"r{next(_ids)}"
            ar = AsyncResult()
            self._pending[rid] = ar
            frame = json.dumps({"id": rid, "method": method, "params": params})
            call.leave()
            t0 = time.perf_counter()
            err: str | None
            try:
                conn.send(frame)
                got = ar.get(timeout=self.request_timeout_s)
            except gevent.Timeout:
                got = None
                err = None       # reported as "no response within …" below
            except Exception as e:
                got = None
                err = f"{type(e).__name__}"
            else:
                err = None
            finally:
                self._pending.pop(rid, None)
            if got is None:
                res = WsApiResult(0, msg=err or f"no response within {self.request_timeout_s:g}s",
                                  elapsed_ms=(time.perf_counter() - t0) * 1000.0)
            else:
                msg, received = got
                res = WsApiResult(int(msg.get("status", 0) or 0), elapsed_ms=(received - t0) * 1000.0,
                                  rate_limits=msg.get("rateLimits"))
                if res.status == 200:
                    res.result = msg.get("result")
                else:
                    error = msg.get("error") or {}
                    res.code = error.get("code")
                    res.msg = error.get("msg")
                    data = error.get("data") or {}
                    res.retry_after_ms = data.get("retryAfter") if isinstance(data, dict) else None
            feedback(ctx, res, reservation, call.sent_at, headers=_usage_headers(res.rate_limits),
                     retry_after_s=None if not res.retry_after_ms else
                     max(0.0, (float(res.retry_after_ms) - ctx.clock.server_now_ms()) / 1000.0),
                     unknown=m.order_entry and res.unknown)
            if order is not None or m.shows_orders:
                call.book(res.ok, m.order_entry and res.unknown, res.result)
            if report:
                self.environment.events.request.fire(
                    request_type="WSAPI", name=method, response_time=res.elapsed_ms, response_length=len(frame),
                    response=None, context={}, exception=call_failure(res, plain=Failure))
            return res

        # an order leaves and is booked in a greenlet stopping this user cannot cut short
        return shielded(ctx.ledger, exchange) if order is not None else exchange()

    # -- user data ------------------------------------------------------------------------------
    def subscribe_user_data(self) -> WsApiResult:
        """``userDataStream.subscribe.signature``; sets :attr:`subscription_id` on success."""
        res = self.request("userDataStream.subscribe.signature", {}, signed=True)
        if res.ok and isinstance(res.result, dict):
            self.subscription_id = res.result.get("subscriptionId")
        return res
