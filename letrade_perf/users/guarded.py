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
from ..pacing.pacer import IpBanned
from .callpath import Call, CallResult, begin, call_failure

SOURCE = "user"
_ORDER = ("POST", "/api/v3/order")
_LEDGER_STATUS = {("GET", "/api/v3/order"), ("DELETE", "/api/v3/order")}


class OrderRefused(ccxt.InvalidOrder):
    """An order the harness refused before sending it (profile ``safety`` or the run's notional cap)."""


class _Unpriced(Exception):
    pass


def _ctx_of(user):
    ctx = getattr(getattr(user, "environment", None), "letrade", None)
    if ctx is None:
        raise StopUser("letrade plugin not registered (environment.letrade missing)")
    return ctx


def _fire(ctx, kind: str, name: str, elapsed_ms: float, length: int, exception: BaseException | None,
          context: dict | None = None) -> None:
    env = ctx.environment
    if env is not None:
        env.events.request.fire(request_type=kind, name=name, response_time=elapsed_ms, response_length=length,
                                response=None, context=context or {"source": SOURCE}, exception=exception)


@contextmanager
def measure(user, name: str, kind: str = "user") -> Iterator[None]:
    """Time the block as one measurement ``kind``/``name`` (Locust stats, criteria, InfluxDB,
    reports). An exception leaving the block is recorded as a failure and re-raised."""
    ctx = _ctx_of(user)
    t0 = time.perf_counter()
    try:
        yield
    except BaseException as e:
        _fire(ctx, kind, name, (time.perf_counter() - t0) * 1000.0, 0, e)
        raise
    _fire(ctx, kind, name, (time.perf_counter() - t0) * 1000.0, 0, None)


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

    __slots__ = ("method", "path", "ep", "cid", "order", "call", "last")

    def __init__(self, method: str, path: str, ep: Endpoint | None):
        self.method, self.path, self.ep = method, path, ep
        self.cid: str | None = None
        self.order: tuple[str, str, Decimal] | None = None   # (symbol, side, notional) of an order
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
        order = (method, path) == _ORDER
        notional = self._letrade_order_gate(params) if order else None
        try:
            pending.call = begin(ctx, pending.ep, params)
        except IpBanned:
            if order:
                ctx.ledger.release_notional(notional)
                ctx.ledger.refused(params.get("symbol", ""), params.get("side", ""), self.letrade_source,
                                   "IP banned")
            raise ccxt.DDoSProtection("letrade-perf: the IP is banned (HTTP 418); the run is aborted") from None
        if notional is not None:   # exactly when ``order``: the gate returns a Decimal or raises
            pending.cid = params.get("newClientOrderId") or f"lu-{ctx.run_id}-{time.monotonic_ns()}"
            pending.order = (params.get("symbol", ""), params.get("side", ""), notional)
        pending.call.restart_clock()
        return pending

    def _letrade_enter(self, pending: _Pending) -> None:
        """Enter an order in the ledger as it leaves (the kill switch then knows it may exist)."""
        if pending.order is None:
            return
        ledger = self.letrade_ctx.ledger
        symbol, side, notional = pending.order
        try:
            ledger.sent(pending.cid, symbol, side, self.letrade_source, "ccxt", notional)
        except ValueError:
            ledger.release_notional(notional)
            raise

    def _letrade_after(self, pending: _Pending, exc: BaseException | None) -> None:
        """Classify, feed pacing back, measure, update the ledger — after the answer (or none)."""
        ctx = self.letrade_ctx
        call = pending.call
        assert call is not None   # set by _letrade_before, which every request passed before this
        status, hdrs, text = pending.last or (0, {}, "")
        res = call.answer(status, hdrs, text, None if exc is None else type(exc).__name__, answered=exc is None)
        name = pending.ep.name if pending.ep is not None else f"{pending.method} {pending.path}"
        _fire(ctx, "ccxt", name, res.elapsed_ms, len(text) if text else 0,
              None if exc is None else call_failure(res, exc))
        self._letrade_ledger(pending.method, pending.path, pending.cid, res, res.data)

    # -- safety and ledger -------------------------------------------------------------------------
    def _letrade_order_gate(self, params: Mapping[str, str]) -> Decimal:
        """Check ``safety`` and take the order's value from the run's notional cap before it is
        sent; returns the value. Raises :class:`OrderRefused` (counted ``refused``)."""
        ctx = self.letrade_ctx
        ledger = ctx.ledger
        symbol, side = params.get("symbol", ""), params.get("side", "")
        try:
            notional = self._letrade_notional(params)
        except _Unpriced as e:
            ledger.refused(symbol, side, self.letrade_source, str(e))
            raise OrderRefused(f"letrade-perf safety: {e}") from None
        refusal = ctx.order_refusal(symbol, notional)
        if refusal is None and not ledger.reserve_notional(notional):
            refusal = "max_run_notional reached"
        if refusal is not None:
            ledger.refused(symbol, side, self.letrade_source, refusal)
            raise OrderRefused(f"letrade-perf safety: order refused ({refusal})")
        return notional

    def _letrade_notional(self, params: Mapping[str, str]) -> Decimal:
        quote = _dec(params.get("quoteOrderQty"))
        if quote is not None:
            return quote
        qty = _dec(params.get("quantity"))
        if qty is None:
            raise _Unpriced("an order without quantity or quoteOrderQty cannot be valued")
        price = _dec(params.get("price"))
        if price is None:
            price = self._letrade_price(params.get("symbol", ""))
        return qty * price

    def _letrade_price(self, symbol: str) -> Decimal:
        client = self.letrade_ctx.exchange
        res = client.call("GET", "/api/v3/ticker/price", {"symbol": symbol}) if client is not None else None
        price = _dec(res.data.get("price")) if res is not None and res.ok and isinstance(res.data, dict) else None
        if price is None:
            raise _Unpriced(f"no price for {symbol} to value a MARKET order"
                            + (f" ({res.describe()})" if res is not None and not res.ok else ""))
        return price

    def _letrade_ledger(self, method: str, path: str, cid: str | None, res: CallResult, data: Any) -> None:
        ledger = self.letrade_ctx.ledger
        if ledger is None:
            return
        if cid is not None:
            if res.ok and isinstance(data, dict):
                ledger.accepted(cid, str(data.get("status", "NEW")), data.get("orderId"))
            elif res.unknown:
                ledger.unknown(cid)
            else:
                ledger.rejected(cid)
        elif (method, path) in _LEDGER_STATUS and res.ok and isinstance(data, dict):
            known = data.get("clientOrderId") if method == "GET" else data.get("origClientOrderId")
            if known and data.get("status"):
                ledger.status(str(known), str(data["status"]))
        elif (method, path) == ("DELETE", "/api/v3/openOrders") and res.ok and isinstance(data, list):
            for o in data:
                if isinstance(o, dict) and o.get("origClientOrderId") and o.get("status"):
                    ledger.status(str(o["origClientOrderId"]), str(o["status"]))




class GuardedBinanceMixin(_GuardCore):
    """The guarded call path over ccxt's synchronous ``fetch`` (see the module docstring)."""

    def fetch2(self, *args, **kwargs):
        self._letrade_clock()
        return super().fetch2(*args, **kwargs)

    def fetch(self, url, method="GET", headers=None, body=None):
        pending = self._letrade_before(url, method, body)
        self._letrade_enter(pending)
        token = _in_flight.set(pending)
        try:
            result = super().fetch(url, method, headers, body)
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
        if pending.order is None:
            return await self._letrade_send(pending, url, method, headers, body)
        # An order: once it is in the ledger it is sent and its answer recorded even if the caller
        # is cancelled meanwhile (Locust stopping the user), so the ledger never holds an order
        # that did not leave, nor loses the answer of one that did.
        return await asyncio.shield(asyncio.ensure_future(self._letrade_send(pending, url, method, headers, body)))

    async def _letrade_send(self, pending: _Pending, url, method, headers, body):
        from .aio import call_in_gevent

        if pending.order is not None:
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
    ctx = _ctx_of(user)
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
    ctx = _ctx_of(user)
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
           "guarded_ccxt_async", "measure"]
