"""The one call path every exchange call takes, whatever carries it.

Raw REST (:class:`~letrade_perf.users.rest.BinanceRestUser`), ccxt sync and asyncio
(:class:`~letrade_perf.users.ccxt_user.CcxtUser`, :mod:`~letrade_perf.users.guarded`), the
WebSocket API (:class:`~letrade_perf.users.userdata.WsApiClient`), the harness's own client
(:class:`~letrade_perf.harness.exchange.ExchangeClient`, also behind the public
:func:`~letrade_perf.api.call` / :func:`~letrade_perf.api.order`) and ``letrade-perf check`` each
only *send*; the sequence around the send exists here once::

    call = begin(ctx, endpoint, params,       # an order: safety and the run's notional cap first
                 order=Order(...))            # (refused → SafetyRefusal, counted ``refused``);
                                              # reserve weight / order budget (waiting is never
                                              # response time); a ban aborts the run
    call.leave()                              # it leaves now: an order enters the ledger as
                                              # ``sent``, the response time starts
    ... the transport sends and waits ...
    res = call.answer(status, headers, body)  # decode, classify (ok, exchange reject, status
                                              # unknown, transport error, 429/418), feed pacing,
                                              # update the ledger (the order's outcome; order
                                              # statuses an answer shows)
    failure = call_failure(res)               # what the metric records (None when ok)

The transport records the metric itself (each has its own Locust request type). The path needs
of ``ctx`` only: ``pacer`` (None: unpaced), ``ledger`` (None: no order book-keeping),
``order_refusal(symbol, notional)``, ``abort(reason)``, ``on_429`` / ``on_418`` /
``on_clock_error``. It imports no Locust and no gevent.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Collection, Mapping, NoReturn

from ..binance.endpoints import Endpoint, WsApiMethod
from ..binance.errors import IpBanned, is_status_unknown
from ..binance.headers import parse_retry_after

#: orjson's and json's ``loads`` (their signatures differ; both take the ``str``/``bytes`` body)
_loads: Callable[[str | bytes], Any]
try:  # orjson (a ccxt dependency) parses 2-3× faster; the standard library otherwise
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

#: Retry-After used when a 429/418 carries none.
DEFAULT_RETRY_AFTER_S = 10.0
#: "Timestamp for this request is outside of the recvWindow": the client's clock is off.
CLOCK_ERROR_CODE = -1021


@dataclass
class CallResult:
    """The outcome of one exchange call.

    ``status`` is the HTTP status (0 when no response arrived), ``code``/``msg`` the Binance
    error body (None on success), ``data`` the decoded JSON (None when undecodable),
    ``elapsed_ms`` the request time after pacing, ``unknown`` True when the execution status
    of an order-entry call is unknown (5xx, -1006/-1007/-1008, no response).
    """

    status: int
    data: Any = None
    code: int | None = None
    msg: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    error: str | None = None
    unknown: bool = False

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.code is not None:
            return f"HTTP {self.status} code {self.code}: {self.msg}"
        return f"HTTP {self.status}"


def decode(status: int, body: bytes | str | None) -> tuple[Any, int | None, str | None, str | None]:
    """``(data, code, msg, error)`` from a response body. A 200 with invalid JSON is an error."""
    data = None
    err = None
    if body:
        try:
            data = _loads(body)
        except (ValueError, UnicodeDecodeError):
            err = f"HTTP {status}: invalid JSON body ({len(body)} bytes)"
    elif status == 200:
        err = "HTTP 200 with an empty body"
    code = msg = None
    if isinstance(data, dict) and status != 200 and "code" in data:
        try:
            code = int(data["code"])
        except (TypeError, ValueError):
            code = None
        msg = str(data.get("msg", ""))
    return data, code, msg, err


def classify(ep: Endpoint | WsApiMethod, res: CallResult) -> CallResult:
    """Set ``res.unknown`` for order-entry calls whose execution status cannot be known."""
    if ep.order_entry and not res.ok:
        res.unknown = res.status == 0 or is_status_unknown(res.status, res.code) or (
            res.status == 200 and res.error is not None)
    return res


class Failure(Exception):
    """A measurement that failed; the message says why (reported, never raised out of a task)."""


class ExchangeCallError(Exception):
    """A failed exchange call as reported to Locust (the message carries status and code)."""


class ClientClockError(ExchangeCallError):
    """A ``-1021`` answer: the request's timestamp was outside recvWindow — a client-clock error,
    not an exchange failure (the recorder tags it ``status=clock``; ``api_success`` leaves it out)."""

    client_clock_error = True

class SafetyRefusal(Exception):
    """An order the harness refused before sending it (profile ``safety``, the run's notional cap,
    a banned IP); counted ``refused`` in the ledger, never ``sent``. ``reason`` says why.
    ``blocked`` is true for :class:`OrdersBlocked` (an operator's block, not a safety cap)."""

    blocked = False

    def __init__(self, reason: str) -> None:
        super().__init__(f"letrade-perf safety: order refused ({reason})")
        self.reason = reason


class OrdersBlocked(SafetyRefusal):
    """An order held back because an operator (or an ``on_fail: block_orders`` criterion) blocked
    new orders; counted ``blocked``, never ``sent``. Trading may resume when the block is lifted."""

    blocked = True

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, f"letrade-perf: new orders are blocked ({reason})")
        self.reason = reason


@dataclass(slots=True)
class Order:
    """An order about to take the call path: the ledger's key (``client_order_id``, sent as
    ``newClientOrderId``), what the safety gate judges (``symbol``, ``notional`` in the quote
    asset) and what the counts are kept by (``source``: the user kind or ``user``; ``via``:
    ``rest`` | ``ws_api`` | ``ccxt``)."""

    client_order_id: str
    symbol: str
    side: str
    notional: Decimal
    source: str
    via: str = "rest"


_NO_CODES: frozenset[int] = frozenset()

__all__ = ["Call", "CallResult", "Failure", "Order", "OrdersBlocked", "SafetyRefusal", "begin", "call_failure",
           "classify", "decode", "feedback", "IpBanned"]


class Call:
    """One exchange call between :func:`begin` and :meth:`answer`."""

    __slots__ = ("ctx", "ep", "reservation", "sent_at", "t0", "order", "expected")

    def __init__(self, ctx: Any, ep: Endpoint | WsApiMethod | None, reservation: Any, sent_at: float | None,
                 order: Order | None = None, expected: frozenset[int] = frozenset()) -> None:
        self.ctx = ctx
        self.ep = ep
        self.reservation = reservation
        self.sent_at = sent_at
        self.t0 = 0.0       # transports that time the call themselves pass ``elapsed_ms``
        self.order = order
        #: Binance error codes the caller provoked on purpose (the error-path scenarios): such an
        #: answer is no signal about the run (a deliberate ``-1021`` re-syncs no clock)
        self.expected = expected

    def leave(self) -> None:
        """The request leaves now (after signing: that is not the exchange's time): an order is
        entered in the ledger as ``sent`` — the kill switch then knows it may exist — and the
        response time starts (:meth:`elapsed_ms`, :meth:`answer` without ``elapsed_ms``).
        A client order id the ledger already holds raises ``ValueError`` (nothing is sent)."""
        order = self.order
        if order is not None:
            ledger = self.ctx.ledger
            if ledger is not None:
                try:
                    ledger.sent(order.client_order_id, order.symbol, order.side, order.source, order.via,
                                order.notional)
                except ValueError:
                    ledger.release_notional(order.notional, order.symbol, order.side)
                    self.order = None
                    raise
        self.t0 = time.perf_counter()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0

    def answer(self, status: int, headers: Mapping[str, str], body: bytes | str | None, error: str | None = None,
               *, elapsed_ms: float | None = None, answered: bool = False) -> CallResult:
        """The call's outcome from what the transport got: ``status`` 0 = no answer (``error``
        says why). ``answered``: the client library returned without raising — a success even
        without an HTTP answer of its own (a cached result). Pacing learns the outcome."""
        data, code, msg, derr = decode(status, body) if status else (None, None, None, None)
        res = CallResult(status, data, code, msg, headers,
                         self.elapsed_ms() if elapsed_ms is None else elapsed_ms, error or derr)
        if answered:
            res.error, res.status = None, status or 200
        ep = self.ep
        if ep is not None and ep.order_entry:
            classify(ep, res)
        ctx = self.ctx
        if ctx.pacer is not None:
            feedback(ctx, res, self.reservation, self.sent_at, expected=self.expected)
        if self.order is not None or (ep is not None and ep.shows_orders):
            self.book(res.ok, res.unknown, res.data)
        return res

    def book(self, ok: bool, unknown: bool, data: Any) -> None:
        """The ledger step (called by :meth:`answer`; a transport with its own answer format —
        the WebSocket API — calls it with its result): an order's outcome (placed with the status
        and id the exchange gave, status unknown, or rejected), and the status of every order of
        the run that a successful status or cancel answer shows."""
        ledger = self.ctx.ledger
        if ledger is None:
            return
        order = self.order
        if order is not None:
            cid = order.client_order_id
            if ledger.get(cid) is None:        # never left (the transport failed before leave())
                ledger.release_notional(order.notional, order.symbol, order.side)
                return
            if ok and isinstance(data, dict):   # the executed quantities: the run's net position
                ledger.accepted(cid, str(data.get("status", "NEW")), data.get("orderId"), data.get("executedQty"),
                                data.get("cummulativeQuoteQty"))
            elif unknown:
                ledger.unknown(cid)
            else:
                ledger.rejected(cid)
            return
        if ok:
            for o in (data if isinstance(data, list) else (data,)):
                if isinstance(o, dict) and o.get("status"):
                    shown = o.get("origClientOrderId") or o.get("clientOrderId")
                    if shown:
                        ledger.seen(str(shown), str(o["status"]), o.get("orderId"), o.get("executedQty"),
                                    o.get("cummulativeQuoteQty"))


def begin(ctx: Any, ep: Endpoint | WsApiMethod | None, params: Mapping[str, Any], *, paced: bool = True,
          abort_on_ban: bool = True, order: Order | None = None, expected: Collection[int] = ()) -> Call:
    """Start one call of ``ep`` with ``params``.

    An ``order`` first passes the safety gate (:func:`gate`: refused → :class:`SafetyRefusal`).
    Then ``ep``'s weight (and order count) is reserved with the process pacer — the wait is not
    part of the response time. While the IP is banned the run is aborted (unless
    ``abort_on_ban`` is false: the kill switch's own calls) and
    :class:`~letrade_perf.pacing.IpBanned` raised (each transport maps it: ``StopUser``, a ccxt
    ``DDoSProtection``, a 418 result); an order is then counted ``refused``. ``expected``: Binance
    error codes the caller provokes on purpose (see :func:`feedback`)."""
    if order is not None:
        gate(ctx, order)
    pacer = ctx.pacer
    reservation = None
    codes = frozenset(expected) if expected else _NO_CODES
    if pacer is None:
        return Call(ctx, ep, None, None, order, codes)
    if paced and ep is not None:
        try:
            reservation = pacer.acquire_for(ep, params)
        except IpBanned:
            if abort_on_ban:
                ctx.abort("IP banned (HTTP 418)")
            if order is not None and ctx.ledger is not None:
                ctx.ledger.release_notional(order.notional, order.symbol, order.side)
                ctx.ledger.refused(order.symbol, order.side, order.source, "IP banned")
            raise
    return Call(ctx, ep, reservation, pacer.now_ms(), order, codes)


def gate(ctx: Any, order: Order) -> None:
    """The safety gate an order passes before anything is sent: the profile's ``safety``
    (``ctx.order_refusal``: an aborted run, production, the symbol allowlist,
    ``max_order_notional``), then the run's cap on net exposure (``max_run_notional``: see the ledger).
    Refused: counted ``refused`` and :class:`SafetyRefusal` raised. First of all, while new orders
    are blocked (``ctx.orders_blocked``: an operator's block), every order but the flatten step's
    is held back: counted ``blocked`` and :class:`OrdersBlocked` raised."""
    ledger = ctx.ledger
    blocked = getattr(ctx, "orders_blocked", None)
    if blocked is not None and order.source != "flatten":
        if ledger is not None:
            ledger.blocked(order.client_order_id, order.symbol, order.side, order.source, order.via, order.notional)
        raise OrdersBlocked(blocked)
    refusal = ctx.order_refusal(order.symbol, order.notional)
    if refusal is None and ledger is not None and not ledger.reserve_notional(order.notional, order.symbol, order.side):
        refusal = "max_run_notional reached"
    if refusal is not None:
        refuse(ctx, order.symbol, order.side, order.source, refusal)


def refuse(ctx: Any, symbol: str, side: str, source: str, reason: str) -> NoReturn:
    """Count an order refused before sending and raise :class:`SafetyRefusal` — for a refusal
    the gate cannot judge (an order that cannot be valued)."""
    if ctx.ledger is not None:
        ctx.ledger.refused(symbol, side, source, reason)
    raise SafetyRefusal(reason)


def feedback(ctx: Any, res: Any, reservation: Any, sent_at_ms: float | None = None, *,
             headers: Mapping[str, str] | None = None, retry_after_s: float | None = None,
             unknown: bool | None = None, expected: Collection[int] = ()) -> None:
    """Pacing feedback for one answer: usage counts (``headers``, default ``res.headers``),
    the reservation settled (refunded unless the call cost it: an order whose status is
    ``unknown`` — default ``res.unknown`` — still counts), a clock re-sync on ``-1021`` (unless
    the caller provoked it: a code in ``expected``, e.g. the error-path scenario that signs with a
    stale timestamp), a process-wide pause on 429 (``retry_after_s``, default from the headers),
    the run's abort on 418."""
    pacer = ctx.pacer
    hdrs = res.headers if headers is None else headers
    if hdrs is not None:     # not ``if hdrs``: a client's header object may count its headers for that
        pacer.observe(hdrs, sent_at_ms=sent_at_ms, orders=reservation is None or reservation.orders > 0)
    if reservation is not None:
        if res.ok:
            reservation.settle(True)
        elif res.unknown if unknown is None else unknown:
            reservation.settle(False, order_counted=True)
        else:
            reservation.settle(False)
    if res.code == CLOCK_ERROR_CODE and CLOCK_ERROR_CODE not in expected:
        ctx.on_clock_error()
    if res.status == 429 or res.status == 418:
        wait = retry_after_s if retry_after_s is not None else parse_retry_after(hdrs or {})
        (ctx.on_429 if res.status == 429 else ctx.on_418)(DEFAULT_RETRY_AFTER_S if wait is None else wait)


def call_failure(res: Any, raised: BaseException | None = None, *,
                 plain: type[Exception] = ExchangeCallError) -> Exception | None:
    """What the measurement records for a call: None when it succeeded; a
    :class:`ClientClockError` for ``-1021`` (the client's clock
    failed, not the exchange); otherwise a failure naming the status and code — and, when the
    client library raised, the exception's class (``ExchangeError (code -2010)``)."""
    if raised is None:
        if res.ok:
            return None
        return ClientClockError(res.describe()) if res.code == CLOCK_ERROR_CODE else plain(res.describe())
    code, status = res.code, res.status
    detail = f"code {code}" if code is not None else (f"HTTP {status}" if status else "no response")
    text = f"{type(raised).__name__} ({detail})"
    return ClientClockError(text) if code == CLOCK_ERROR_CODE else Failure(text)
