"""The public API for your own trading code under load: everything it needs from the harness.

Inside any Locust user of a locustfile that imports ``letrade_perf.locustfile`` (the plugin), or
the ``users.own`` factory a profile names::

    from letrade_perf.api import call, guarded_ccxt, measure, order, timer

    class MyTrader(User):
        def on_start(self):
            self.exchange = guarded_ccxt(self)            # ccxt binance: every request guarded

        @task
        def trade(self):
            with measure(self, "capital decision"):       # your own step, timed
                ok = self.capital.approve("BTCUSDT", 12)
            if ok:
                res = order(self, "BTCUSDT", "BUY", quote_order_qty=12)   # safety, ledger, pacing
            t = timer(self, "reconcile")                  # a step that ends elsewhere
            ...
            t.stop()
            book = call(self, "GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5})

Every exchange call here — :func:`call`, :func:`order`, and each request of a
:func:`guarded_ccxt` / :func:`guarded_ccxt_async` exchange — takes the one call path
(:mod:`letrade_perf.calls.path`): the endpoint's Binance weight is reserved from the process's
budget, an order passes the profile's ``safety`` and the run's notional cap before it is sent
(refused: :class:`OrderRefused`, counted ``refused``) and is entered in the order ledger as it
leaves (``order_success``, the open-order list, the kill switch), 429/418 pause or abort the run,
and the call is measured per endpoint. Measurements (:func:`measure`, :func:`timer`) are Locust
requests of type ``user``: in the stats, criteria, InfluxDB and the reports.

Asyncio code (an :class:`AsyncTasksMixin` user, or the ``users.own`` kind) awaits
:func:`acall` / :func:`aorder`; :func:`measure` and :func:`timer` work from either side.
An exception escaping your task, ``on_start`` or ``on_stop`` is counted as a user error and fails
the run's ``user_errors`` criterion.
"""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Mapping

from .calls.path import CallResult, SafetyRefusal
from .pacing import IpBanned
from .users.aio import AsyncTasksMixin, call_in_gevent
from .users.base import next_index
from .users.guarded import (
    OrderRefused,
    context_of,
    guarded_ccxt,
    guarded_ccxt_async,
    measure,
    priced_order,
    report,
)
from .users.orders import client_order_id

__all__ = ["AsyncTasksMixin", "CallResult", "OrderRefused", "Timer", "acall", "aorder", "call", "guarded_ccxt",
           "guarded_ccxt_async", "measure", "order", "timer"]

SOURCE = "user"


def call(user: Any, method: str, path: str, params: Mapping[str, Any] | None = None, *,
         timeout_s: float | None = None) -> CallResult:
    """One REST call of the endpoint ``method path`` (a Binance ``/api/v3`` endpoint the harness
    knows; ``KeyError`` otherwise), signed when the endpoint needs it, on the one call path.
    Reported as request type = the HTTP method, name = the endpoint template. Never raises for an
    HTTP error: the :class:`CallResult` says (``ok``, ``status``, ``code``, ``msg``, ``data``);
    while the IP is banned it is a 418 result without a request."""
    ctx = context_of(user)
    try:
        return ctx.exchange.call(method, path, params, timeout=timeout_s, source=SOURCE, abort_on_ban=True)
    except IpBanned:
        return CallResult(418, code=-1003, msg="IP banned", error="IP banned: the run is aborting")


def order(user: Any, symbol: str, side: str, type: str = "MARKET", *, quantity: Any = None, price: Any = None,
          quote_order_qty: Any = None, time_in_force: str | None = None, client_order_id: str | None = None,
          **params: Any) -> CallResult:
    """Place one order (``POST /api/v3/order``) on the one call path: valued for the safety gate
    (``quote_order_qty``, else ``quantity × price``, else ``quantity ×`` the current price), checked
    against the profile's ``safety`` and the run's notional cap — :class:`OrderRefused` when
    refused, nothing sent — then paced, entered in the ledger as it leaves, and booked from the
    answer (placed, rejected, or status unknown). ``params``: any other Binance order parameter
    (``newOrderRespType="FULL"``, ...). Returns the :class:`CallResult` (``data``: the order)."""
    ctx = context_of(user)
    p: dict[str, Any] = {"symbol": symbol, "side": side.upper(), "type": type.upper()}
    for key, value in (("quantity", quantity), ("price", price), ("quoteOrderQty", quote_order_qty),
                       ("timeInForce", time_in_force)):
        if value is not None:
            p[key] = _number(value)
    p.update({k: v for k, v in params.items() if v is not None})
    if type.upper() == "LIMIT":
        p.setdefault("timeInForce", "GTC")
    runner = getattr(getattr(user, "environment", None), "runner", None)
    cid = client_order_id or _client_order_id(ctx.run_id, getattr(runner, "worker_index", 0) or 0)
    p["newClientOrderId"] = cid
    try:
        intent = priced_order(ctx, {k: str(v) for k, v in p.items()}, cid, SOURCE, "rest")
        return ctx.exchange.call("POST", "/api/v3/order", p, order=intent, source=SOURCE, abort_on_ban=True)
    except SafetyRefusal as e:
        raise OrderRefused(str(e)) from None
    except IpBanned:     # counted ``refused`` by the call path
        return CallResult(418, code=-1003, msg="IP banned", error="IP banned: the run is aborting")


def _number(value: Any) -> str:
    """A decimal as Binance takes it: never in exponent form (``1e-05`` → ``0.00001``)."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _client_order_id(run_id: str, worker: int) -> str:
    return client_order_id("la", run_id, worker, 0, next_index("api-order"))


async def acall(user: Any, method: str, path: str, params: Mapping[str, Any] | None = None, *,
                timeout_s: float | None = None) -> CallResult:
    """:func:`call` from a coroutine on the process's asyncio loop (run in the gevent thread,
    where the pacer and Locust live)."""
    return await call_in_gevent(call, user, method, path, params, timeout_s=timeout_s)


async def aorder(user: Any, symbol: str, side: str, type: str = "MARKET", **kwargs: Any) -> CallResult:
    """:func:`order` from a coroutine on the process's asyncio loop."""
    return await call_in_gevent(order, user, symbol, side, type, **kwargs)


class Timer:
    """A measurement started by :func:`timer` and ended by :meth:`stop` — for a step whose start
    and end are in different places (a callback, another task). Also a context manager."""

    __slots__ = ("user", "name", "kind", "t0", "elapsed_ms")

    def __init__(self, user: Any, name: str, kind: str = "user") -> None:
        context_of(user)
        self.user, self.name, self.kind = user, name, kind
        self.t0 = time.perf_counter()
        self.elapsed_ms: float | None = None

    def stop(self, error: BaseException | str | None = None) -> float:
        """End the measurement (once; later calls return the first result): a success, or a
        failure when ``error`` (an exception or a text) is given. Returns the milliseconds."""
        if self.elapsed_ms is None:
            self.elapsed_ms = (time.perf_counter() - self.t0) * 1000.0
            exc = Exception(error) if isinstance(error, str) else error
            report(self.user, self.kind, self.name, self.elapsed_ms, exc)
        return self.elapsed_ms

    def __enter__(self) -> Timer:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, Exception):
            self.stop(exc)
        # else the user was stopped inside the block (GreenletExit, a cancellation): no measurement


def timer(user: Any, name: str, kind: str = "user") -> Timer:
    """Start a measurement ``kind``/``name`` now; :meth:`Timer.stop` ends it."""
    return Timer(user, name, kind)
