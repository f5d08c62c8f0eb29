"""Your own trading code under the harness's guard: a ccxt ``binance`` whose every REST call is
paced, measured, safety-capped and ledger-tracked, and a timer for anything else.

Inside a Locust user of your own (any class; the plugin must be registered, e.g. by importing
``letrade_perf.locustfile``)::

    from letrade_perf.users.guarded import guarded_ccxt, measure

    class MyTrader(User):
        def on_start(self):
            self.exchange = guarded_ccxt(self)          # a ccxt.binance for the run's target and keys
            self.connector = MyConnector(self.exchange) # your own code, unmodified

        @task
        def trade(self):
            with measure(self, "decide"):               # your capital manager's decision, timed
                ok = self.capital.approve(...)
            if ok:
                self.connector.buy("BTC/USDT", 0.001)   # ccxt create_order → the guarded call path

Every HTTP request the instance sends goes through one sequence — the same one the harness's
own users follow:

1. **safety** (orders, ``POST /api/v3/order``): the profile's ``safety`` (symbol allowlist,
   ``max_order_notional``, production guard, an aborted run) and the run's notional cap
   (``max_run_notional``) are checked *before* sending; a refused order raises
   :class:`OrderRefused` (a ``ccxt.InvalidOrder``) and is counted ``refused``, never ``sent``.
   A MARKET order by quantity is valued at the symbol's current price (one paced
   ``GET /api/v3/ticker/price``).
2. **pacing**: the endpoint's Binance weight (and one ORDERS unit for an order) is reserved from
   the process's budget; the call waits for room, 429/418 pause or abort the run.
3. **send**, with the timestamp on the run's synced server clock (``-1021`` re-syncs it).
4. **classify and feed back**: used-weight headers, refunds, unknown execution status.
5. **measure**: a Locust request event ``type="ccxt"``, ``name="<METHOD> <path>"`` — in the stats,
   the criteria (``request``, ``api_success``), InfluxDB and the reports.
6. **ledger**: orders are entered before sending and updated from the answer (placed, rejected,
   unknown), from order queries and from cancels, so ``order_success``, the end-of-run open-order
   list and the kill switch (which cancels what is still open at the end, on Ctrl-C and on an
   abort) see them. ccxt's own ``clientOrderId`` (``newClientOrderId``) identifies the order.

ccxt's errors reach your code unchanged (the measurement records them as failures).
"""
from __future__ import annotations

import inspect
import time
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator, Mapping
from urllib.parse import parse_qsl, urlsplit

import ccxt
from gevent.lock import Semaphore
from locust.exception import StopUser

from ..binance.ccxt_compat import ccxt_binance
from ..binance.endpoints import ENDPOINTS, Endpoint
from ..calls.path import Call, Order, SafetyRefusal, begin, call_failure, refuse
from ..harness.ledger import shielded
from ..pacing import waits as pacing_waits
from ..pacing.pacer import IpBanned

SOURCE = "user"
_ORDER = ("POST", "/api/v3/order")


class OrderRefused(ccxt.InvalidOrder):
    """An order the harness refused before sending it (profile ``safety`` or the run's notional cap)."""


class _Unpriced(Exception):
    pass


def order_notional(ctx, params: Mapping[str, str]) -> Decimal:
    """What an order is worth in its quote asset, for the safety gate: ``quoteOrderQty``, else
    ``quantity × price``, else (a MARKET order by quantity) ``quantity ×`` the symbol's current
    price (one paced ``GET /api/v3/ticker/price``). Raises ``_Unpriced`` when it cannot be valued."""
    quote = _dec(params.get("quoteOrderQty"))
    if quote is not None:
        return quote
    qty = _dec(params.get("quantity"))
    if qty is None:
        raise _Unpriced("an order without quantity or quoteOrderQty cannot be valued")
    price = _dec(params.get("price"))
    if price is None:
        symbol = params.get("symbol", "")
        client = ctx.exchange
        res = client.call("GET", "/api/v3/ticker/price", {"symbol": symbol}) if client is not None else None
        price = _dec(res.data.get("price")) if res is not None and res.ok and isinstance(res.data, dict) else None
        if price is None:
            raise _Unpriced(f"no price for {symbol} to value a MARKET order"
                            + (f" ({res.describe()})" if res is not None and not res.ok else ""))
    return qty * price


def context_of(user):
    """The run's :class:`~letrade_perf.harness.plugin.HarnessContext` of ``user``'s environment
    (``StopUser`` when the plugin is not registered)."""
    ctx = getattr(getattr(user, "environment", None), "letrade", None)
    if ctx is None:
        raise StopUser("letrade plugin not registered (environment.letrade missing)")
    return ctx


def priced_order(ctx, params: Mapping[str, str], client_order_id: str, source: str, via: str) -> Order:
    """The :class:`~letrade_perf.calls.path.Order` the safety gate judges, valued by
    :func:`order_notional`. An order that cannot be valued is refused — counted ``refused``,
    nothing sent — as :class:`OrderRefused`."""
    symbol, side = params.get("symbol", ""), params.get("side", "")
    try:
        notional = order_notional(ctx, params)
    except _Unpriced as e:
        try:
            refuse(ctx, symbol, side, source, str(e))
        except SafetyRefusal as refused:
            raise OrderRefused(str(refused)) from None
    return Order(client_order_id, symbol, side, notional, source, via)


def _fire(ctx, kind: str, name: str, elapsed_ms: float, length: int, exception: BaseException | None,
          context: dict | None = None) -> None:
    env = ctx.environment
    if env is not None:
        env.events.request.fire(request_type=kind, name=name, response_time=elapsed_ms, response_length=length,
                                response=None, context=context or {"source": SOURCE}, exception=exception)


def report(user, kind: str, name: str, elapsed_ms: float, exception: BaseException | None = None) -> None:
    """One measurement of your code's, ``kind``/``name``, on Locust's request event — from a
    greenlet at once, from the asyncio loop (an :class:`~letrade_perf.users.aio.AsyncTasksMixin`
    user) queued and fired in the user's greenlet when the bridged call returns."""
    ctx = context_of(user)
    fire_request = getattr(user, "fire_request", None)
    if fire_request is not None:
        from .aio import in_loop_thread
        if in_loop_thread():
            fire_request(name, elapsed_ms, request_type=kind, exception=exception, context={"source": SOURCE})
            return
    _fire(ctx, kind, name, elapsed_ms, 0, exception)


@contextmanager
def measure(user, name: str, kind: str = "user") -> Iterator[None]:
    """Time the block as one measurement ``kind``/``name`` (Locust stats, criteria, InfluxDB,
    reports). The time its calls spent waiting for the pacer (the weight budget, a 429 pause) is
    left out: it is the harness holding the requests back (:mod:`letrade_perf.pacing.waits`). An
    exception leaving the block is recorded as a failure and re-raised; a user stopped inside it
    (``GreenletExit``, a cancellation) leaves no measurement."""
    context_of(user)
    with pacing_waits.collecting() as waits:
        t0 = time.perf_counter()
        try:
            yield
        except Exception as e:
            report(user, kind, name, pacing_waits.unpaced_ms(t0, waits), e)
            raise
    # a BaseException that is not an Exception (the user stopped: GreenletExit, a cancellation,
    # Ctrl-C) ends the block unmeasured: the code did not fail, it was interrupted
    report(user, kind, name, pacing_waits.unpaced_ms(t0, waits))



def _params(url: str, body: Any) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body and not body.lstrip().startswith("{"):
        params.update(parse_qsl(body, keep_blank_values=True))
    params.pop("signature", None)
    return parts.path, params


def _dec(v: str | None) -> Decimal | None:
    try:
        d = Decimal(str(v)) if v not in (None, "") else None
    except InvalidOperation:
        return None
    return d if d is not None and d.is_finite() else None


class _Pending:
    """One guarded request between its two halves (before sending / after the answer)."""

    __slots__ = ("method", "path", "ep", "order", "call", "last")

    def __init__(self, method: str, path: str, ep: Endpoint | None):
        self.method, self.path, self.ep = method, path, ep
        self.order = False                                  # it places an order
        self.call: Call | None = None                       # on the one call path once paced
        self.last: tuple[int, dict, str] | None = None     # (status, headers, body) ccxt received


#: the request in flight in this greenlet / asyncio task (ccxt's ``on_rest_response`` fills it in)
_in_flight: ContextVar[_Pending | None] = ContextVar("letrade_guarded_in_flight", default=None)


class _GuardCore:
    """The guarded call path's two halves, shared by the sync and the async ccxt classes."""

    letrade_ctx: Any = None
    letrade_source: str = SOURCE
    #: ccxt's exchange options — provided by the ccxt binance class :func:`guarded_class` mixes
    #: these classes into at run time (declared, not set, here)
    options: dict[str, Any]

    def on_rest_response(self, code, reason, url, method, response_headers, response_body, request_headers,
                         request_body):
        pending = _in_flight.get()
        if pending is not None:
            pending.last = (int(code or 0), dict(response_headers or {}), response_body or "")
        return super().on_rest_response(code, reason, url, method, response_headers, response_body,
                                        request_headers, request_body)

    def _letrade_clock(self) -> None:
        """ccxt signs inside ``fetch2``: keep its timestamps on the run's server clock."""
        clock = self.letrade_ctx.clock
        if clock is not None:
            self.options["timeDifference"] = -int(clock.offset_ms)

    def _letrade_before(self, url: str, method: str, body: Any) -> _Pending:
        """Safety (orders) and pacing — everything before the request, but the ledger entry
        (:meth:`_letrade_enter`, done right before it leaves)."""
        ctx = self.letrade_ctx
        path, params = _params(url, body)
        method = method.upper()
        pending = _Pending(method, path, ENDPOINTS.get((method, path)))
        order = None
        if (method, path) == _ORDER:
            order = priced_order(ctx, params, params.get("newClientOrderId") or f"lu-{ctx.run_id}-{time.monotonic_ns()}",
                                 self.letrade_source, "ccxt")
        try:
            pending.call = begin(ctx, pending.ep, params, order=order)
        except SafetyRefusal as e:
            raise OrderRefused(str(e)) from None
        except IpBanned:
            raise ccxt.DDoSProtection("letrade-perf: the IP is banned (HTTP 418); the run is aborted") from None
        pending.order = order is not None
        if order is None:
            pending.call.leave()      # an order leaves in _letrade_enter, as it is entered
        return pending

    def _letrade_enter(self, pending: _Pending) -> None:
        """An order leaves: the call path enters it in the ledger (the kill switch then knows it
        may exist) and starts its clock."""
        if pending.order:
            assert pending.call is not None
            pending.call.leave()

    def _letrade_after(self, pending: _Pending, exc: BaseException | None) -> None:
        """Classify, feed pacing back, book the ledger (the call path), measure — after the
        answer (or none)."""
        call = pending.call
        assert call is not None   # set by _letrade_before, which every request passed before this
        status, hdrs, text = pending.last or (0, {}, "")
        res = call.answer(status, hdrs, text, None if exc is None else type(exc).__name__, answered=exc is None)
        name = pending.ep.name if pending.ep is not None else f"{pending.method} {pending.path}"
        _fire(self.letrade_ctx, "ccxt", name, res.elapsed_ms, len(text) if text else 0,
              None if exc is None else call_failure(res, exc))


class GuardedBinanceMixin(_GuardCore):
    """The guarded call path over ccxt's synchronous ``fetch`` (see the module docstring)."""

    def fetch2(self, *args, **kwargs):
        self._letrade_clock()
        return super().fetch2(*args, **kwargs)

    def fetch(self, url, method="GET", headers=None, body=None):
        pending = self._letrade_before(url, method, body)
        if pending.order:   # it leaves and is booked in a greenlet stopping the user cannot cut short
            return shielded(self.letrade_ctx.ledger, lambda: self._letrade_send(pending, url, method, headers, body))
        return self._letrade_send(pending, url, method, headers, body)

    def _letrade_send(self, pending: _Pending, url, method, headers, body):
        self._letrade_enter(pending)
        token = _in_flight.set(pending)
        try:
            # fetch is ccxt's: the base guarded_class() combines this mixin with at run time
            result = super().fetch(url, method, headers, body)  # type: ignore[misc]
        except ccxt.BaseError as e:
            self._letrade_after(pending, e)
            raise
        finally:
            _in_flight.reset(token)
        self._letrade_after(pending, None)
        return result


class GuardedAsyncBinanceMixin(_GuardCore):
    """The guarded call path over ccxt's *asyncio* ``fetch`` (``ccxt.async_support`` / ``ccxt.pro``
    binance), for code run on :mod:`letrade_perf.users.aio`'s loop. The halves before and after
    the request run in the gevent thread (where the pacer, the ledger and Locust's events live);
    the request itself runs on the asyncio loop."""

    async def fetch2(self, *args, **kwargs):
        self._letrade_clock()
        return await super().fetch2(*args, **kwargs)

    async def fetch(self, url, method="GET", headers=None, body=None):
        import asyncio

        from .aio import call_in_gevent

        pending = await call_in_gevent(self._letrade_before, url, method, body)
        if not pending.order:
            return await self._letrade_send(pending, url, method, headers, body)
        # An order: once it is in the ledger it is sent and its answer recorded even if the caller
        # is cancelled meanwhile (Locust stopping the user), so the ledger never holds an order
        # that did not leave, nor loses the answer of one that did.
        return await asyncio.shield(asyncio.ensure_future(self._letrade_send(pending, url, method, headers, body)))

    async def _letrade_send(self, pending: _Pending, url, method, headers, body):
        from .aio import call_in_gevent

        if pending.order:
            await call_in_gevent(self._letrade_enter, pending)
        token = _in_flight.set(pending)
        try:
            # fetch is ccxt's: the base guarded_class() combines this mixin with at run time
            result = await super().fetch(url, method, headers, body)  # type: ignore[misc]
        except ccxt.BaseError as e:
            await call_in_gevent(self._letrade_after, pending, e)
            raise
        finally:
            _in_flight.reset(token)
        await call_in_gevent(self._letrade_after, pending, None)
        return result


_classes: dict[type, type] = {}


def guarded_class(base: type[Any]) -> type:
    """``base`` (a ccxt binance class — sync, ``ccxt.async_support`` or ``ccxt.pro`` — or your
    subclass of one) with the guarded call path."""
    cls = _classes.get(base)
    if cls is None:
        mixin = GuardedAsyncBinanceMixin if inspect.iscoroutinefunction(base.fetch) else GuardedBinanceMixin
        cls = _classes[base] = type(f"Guarded{base.__name__}", (mixin, base), {})
    return cls


_markets_lock = Semaphore()
_markets: dict[str, tuple[Any, Any]] = {}
_async_markets_lock: Any = None


def _new_exchange(ctx, base: type, timeout_ms: int):
    creds = ctx.credentials
    secret = None
    if creds is not None:
        secret = creds.secret.reveal() if hasattr(creds.secret, "reveal") else creds.secret
    ex = ccxt_binance(ctx.base_url, creds.api_key if creds is not None else None, secret,
                      options={"adjustForTimeDifference": False}, cls=guarded_class(base))
    ex.timeout = timeout_ms
    ex.letrade_ctx = ctx
    return ex


def guarded_ccxt(user, base: type | None = None, timeout_ms: int = 10_000):
    """A ccxt ``binance`` (or ``base``, your subclass of one) for the run's target and credentials,
    every request of which takes the guarded call path. Markets are loaded once per process (one
    paced, measured ``GET /api/v3/exchangeInfo``) and shared by every instance."""
    ctx = context_of(user)
    ex = _new_exchange(ctx, base or ccxt.binance, timeout_ms)
    with _markets_lock:
        cached = _markets.get(ctx.base_url)
        if cached is None:
            ex.load_markets()
            _markets[ctx.base_url] = (ex.markets, ex.currencies)
        else:
            ex.set_markets(*cached)
    return ex


async def guarded_ccxt_async(user, base: type | None = None, timeout_ms: int = 10_000):
    """The asyncio form of :func:`guarded_ccxt`: ``await`` it in a coroutine on
    :mod:`letrade_perf.users.aio`'s loop (an ``async def on_start`` of an
    :class:`~letrade_perf.users.aio.AsyncTasksMixin` user). ``base`` defaults to
    ``ccxt.async_support.binance``; ``ccxt.pro.binance`` works too. Close it with
    ``await exchange.close()`` on the same loop (e.g. in ``async def on_stop``)."""
    import asyncio

    import ccxt.async_support as ccxt_async

    global _async_markets_lock
    ctx = context_of(user)
    ex = _new_exchange(ctx, base or ccxt_async.binance, timeout_ms)
    if _async_markets_lock is None:
        _async_markets_lock = asyncio.Lock()
    async with _async_markets_lock:
        cached = _markets.get("async:" + ctx.base_url)
        if cached is None:
            await ex.load_markets()
            _markets["async:" + ctx.base_url] = (ex.markets, ex.currencies)
        else:
            ex.set_markets(*cached)
    return ex


__all__ = ["OrderRefused", "GuardedBinanceMixin", "GuardedAsyncBinanceMixin", "guarded_class", "guarded_ccxt",
           "guarded_ccxt_async", "measure", "order_notional", "report"]
