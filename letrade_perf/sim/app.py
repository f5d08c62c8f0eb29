"""The simulator's REST API: one aiohttp route per row of the endpoint table, one pipeline.

Per request, in this order:

1. route — aiohttp's router resolves the plain path (a dict lookup); each route is bound to its
   :class:`~letrade_perf.binance.endpoints.Endpoint`. Unknown paths → 404, a known path with
   another method → 405, both as JSON;
2. params — query string plus, for POST/PUT/DELETE, a form-urlencoded body; a name twice in one
   part → -1101; a name in both parts → the query wins; undecodable input → -1100;
3. latency (half before, half after processing) and faults (:class:`~letrade_perf.sim.faults.FaultModel`);
4. rate limits (:class:`~letrade_perf.sim.ratelimit.RateLimiter`), weight from the table;
5. auth (:class:`~letrade_perf.sim.auth.Auth`) for non-NONE endpoints, ORDERS budget for new orders;
6. the engine (``ctx.exchange``), serialization, headers, and ``stats.request`` exactly once.

The hot path (public market data) avoids per-request work: parsed query strings and serialized
bodies are cached (the engine returns the same object while its data is unchanged).
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from ..binance.endpoints import ENDPOINTS, NONE, Endpoint
from ..binance.errors import BinanceError, error
from ..binance.headers import API_KEY_HEADER, RETRY_AFTER
from .keystatus import book_of
from .params import Params, parse_query
from .ratelimit import USED_WEIGHT_1M, RateLimitError

log = logging.getLogger(__name__)

JSON_CT = "application/json;charset=UTF-8"
FORM_CT = "application/x-www-form-urlencoded"
MAX_PARAMS = 64
MAX_BODY = 64 * 1024
#: Request-line and header limits enforced here with a Binance-style JSON error (aiohttp's own,
#: raised in :mod:`.server` to :data:`PARSER_MAX_LINE`, would answer with a plain-text 400 that
#: echoes the input and is never counted). The reference is silent on the status Binance uses
#: for an over-long URL; 414 / 431 are HTTP's own statuses for these cases.
MAX_TARGET = 8 * 1024
MAX_HEADER_FIELD = 8 * 1024
MAX_HEADER_COUNT = 100
PARSER_MAX_LINE = 1024 * 1024
PARSER_MAX_HEADERS = 1024
UNKNOWN_NAME = "UNKNOWN"
_EMPTY: dict[str, str] = {}
_PARAM_CACHE_MAX = 4096
_BODY_CACHE_MAX = 16
#: Endpoints whose engine call returns the same object while its data is unchanged: their
#: serialized bodies are cached by object identity (others would only churn the cache).
_IDENTITY_CACHED = frozenset({"GET /api/v3/depth", "GET /api/v3/ticker/price", "GET /api/v3/ticker/bookTicker",
                              "GET /api/v3/ticker/24hr", "GET /api/v3/avgPrice"})
_MAX_LOGGED_CRASHES = 20


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


try:  # orjson when present (3-5× faster), else the standard library
    import orjson as _orjson

    def dumps(obj: Any) -> bytes:
        """Compact JSON bytes (Decimals as plain decimal strings)."""
        return _orjson.dumps(obj, default=_default)
except ImportError:  # pragma: no cover - depends on the environment
    _encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default)

    def dumps(obj: Any) -> bytes:
        """Compact JSON bytes (Decimals as plain decimal strings)."""
        return _encoder.encode(obj).encode()


_HTTP_5XX_CODES = {500: -1000, 502: -1001, 503: -1008, 504: -1001}
_MALFORMED_BODY = b'{"code":0,"msg":"ok","data":[1,2,'


def _bad_encoding() -> BinanceError:
    return BinanceError(-1100, "Illegal characters found in a parameter.", 400)


def _parse_part(raw: str) -> dict[str, str]:
    """Decode one ``a=1&b=2`` part; a repeated name is -1101."""
    if not raw:
        return {}
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_PARAMS, errors="strict")
    except UnicodeDecodeError:
        raise _bad_encoding() from None
    except ValueError:
        raise BinanceError(-1101, f"Too many parameters; expected '{MAX_PARAMS}' and received more.", 400) from None
    return parse_query(pairs)


class RestApp:
    """The REST request pipeline bound to a :class:`~letrade_perf.sim.context.SimContext`."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.stats = ctx.stats
        self.limiter = ctx.ratelimiter
        self.auth = ctx.auth
        self.faults = ctx.faults
        self._calls = self._bind_calls()
        self._paths = frozenset(path for _, path in ENDPOINTS)
        self._param_cache: dict[str, Params] = {}
        self._body_cache: dict[str, dict[int, tuple[Any, bytes]]] = {name: {} for name in _IDENTITY_CACHED}
        self._hangs: set[asyncio.Future] = set()
        self._crashes = 0

    # -- engine bindings --------------------------------------------------------------------
    def _bind_calls(self) -> dict[str, Callable[[str | None, Params], Any]]:
        ctx = self.ctx
        ex = ctx.exchange
        lim = ctx.ratelimiter
        clock = ctx.clock
        keys = book_of(ctx)   # the /sapi key-status endpoints (reference §12)

        def listen_keys():
            lk = getattr(ctx, "listen_keys", None)
            if lk is None:
                raise error(-1000)
            return lk

        def keepalive(a, p):
            listen_keys().keepalive(a, p.str("listenKey", required=True))
            return {}

        def close(a, p):
            listen_keys().close(a, p.str("listenKey", required=True))
            return {}

        calls = {
            "GET /api/v3/ping": lambda a, p: {},
            "GET /api/v3/time": lambda a, p: {"serverTime": clock.now_ms()},
            "GET /api/v3/exchangeInfo": lambda a, p: ex.exchange_info(p),
            "GET /api/v3/depth": lambda a, p: ex.depth(p),
            "GET /api/v3/trades": lambda a, p: ex.trades(p),
            "GET /api/v3/historicalTrades": lambda a, p: ex.historical_trades(p),
            "GET /api/v3/aggTrades": lambda a, p: ex.agg_trades(p),
            "GET /api/v3/klines": lambda a, p: ex.klines(p),
            "GET /api/v3/uiKlines": lambda a, p: ex.ui_klines(p),
            "GET /api/v3/avgPrice": lambda a, p: ex.avg_price(p),
            "GET /api/v3/ticker/24hr": lambda a, p: ex.ticker_24hr(p),
            "GET /api/v3/ticker/price": lambda a, p: ex.ticker_price(p),
            "GET /api/v3/ticker/bookTicker": lambda a, p: ex.book_ticker(p),
            "GET /api/v3/account": lambda a, p: ex.account(a, p),
            "POST /api/v3/order": lambda a, p: ex.new_order(a, p),
            "POST /api/v3/order/test": lambda a, p: ex.test_order(a, p),
            "GET /api/v3/order": lambda a, p: ex.get_order(a, p),
            "DELETE /api/v3/order": lambda a, p: ex.cancel_order(a, p),
            "GET /api/v3/openOrders": lambda a, p: ex.open_orders(a, p),
            "DELETE /api/v3/openOrders": lambda a, p: ex.cancel_open_orders(a, p),
            "GET /api/v3/allOrders": lambda a, p: ex.all_orders(a, p),
            "GET /api/v3/myTrades": lambda a, p: ex.my_trades(a, p),
            "GET /api/v3/rateLimit/order": lambda a, p: lim.order_limits(a),
            "POST /api/v3/userDataStream": lambda a, p: {"listenKey": listen_keys().create(a)},
            "PUT /api/v3/userDataStream": keepalive,
            "DELETE /api/v3/userDataStream": close,
            "GET /sapi/v1/account/apiRestrictions": lambda a, p: keys.api_restrictions(a),
            "GET /sapi/v1/account/apiTradingStatus": lambda a, p: keys.api_trading_status(a),
            "GET /sapi/v1/account/status": lambda a, p: keys.account_status(a),
        }
        missing = [ep.name for ep in ENDPOINTS.values() if ep.name not in calls]
        if missing:  # pragma: no cover - the table and this module must move together
            raise RuntimeError(f"REST endpoints without a handler: {missing}")
        return calls

    # -- responses --------------------------------------------------------------------------
    def _respond(self, name: str, status: int, body: bytes, ip: str, weight: int,
                 extra: dict | None = None) -> web.Response:
        headers = {"Content-Type": JSON_CT, USED_WEIGHT_1M: str(self.limiter.used_weight(ip))}
        if extra:
            headers.update(extra)
        self.stats.request(name, status, weight)
        return web.Response(body=body, status=status, headers=headers)

    def _error(self, name: str, e: BinanceError, ip: str, weight: int) -> web.Response:
        return self._respond(name, e.http, dumps(e.body()), ip, weight, e.headers or None)

    def _serialize(self, ep: Endpoint, result: Any) -> bytes:
        cache = self._body_cache.get(ep.name)
        if cache is None:
            return dumps(result)
        hit = cache.get(id(result))
        if hit is not None and hit[0] is result:
            return hit[1]
        body = dumps(result)
        if len(cache) >= _BODY_CACHE_MAX:
            cache.clear()
        cache[id(result)] = (result, body)  # holding the object keeps its id unique
        return body

    # -- params -----------------------------------------------------------------------------
    async def _read_body(self, request: web.Request) -> str:
        if not request.body_exists:
            return ""
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise BinanceError(-1101, "Too many parameters sent for this endpoint.", 400)
        try:
            data = await request.read()
        except web.HTTPException:
            raise BinanceError(-1101, "Too many parameters sent for this endpoint.", 400) from None
        if not data:
            return ""
        ctype = request.headers.get("Content-Type", "")
        if ctype and not ctype.lower().startswith(FORM_CT):
            return ""  # Binance only reads form bodies; params must then be in the query
        if len(data) > MAX_BODY:
            raise BinanceError(-1101, "Too many parameters sent for this endpoint.", 400)
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise _bad_encoding() from None

    def _params(self, raw_query: str, raw_body: str, cacheable: bool) -> Params:
        if raw_body:
            merged = _parse_part(raw_body)
            merged.update(_parse_part(raw_query))  # the query string wins
            return Params(merged)
        if not cacheable:
            return Params(_parse_part(raw_query))
        cache = self._param_cache
        p = cache.get(raw_query)
        if p is None:
            p = Params(_parse_part(raw_query))
            if len(cache) >= _PARAM_CACHE_MAX:
                cache.clear()
            cache[raw_query] = p
        return p

    # -- the pipeline -----------------------------------------------------------------------
    def handler(self, ep: Endpoint):
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, ep)
        handle.__name__ = "rest_" + ep.name.replace(" ", "_").replace("/", "_")
        return handle

    async def handle(self, request: web.Request, ep: Endpoint) -> web.StreamResponse:
        delay = self.faults.latency_ms(ep.name)
        if delay <= 0:
            return await self._handle(request, ep)
        # Latency is network-like: half before the request is processed, half after, so the
        # server's clock (serverTime, event times) sits in the middle of the round trip.
        self.stats.delay("rest", delay)
        half = delay / 2000.0
        await asyncio.sleep(half)
        response = await self._handle(request, ep)
        await asyncio.sleep(half)
        return response

    async def _handle(self, request: web.Request, ep: Endpoint) -> web.StreamResponse:
        name = ep.name
        ip = request.remote or "unknown"
        limiter = self.limiter
        raw_path = request.raw_path
        q = raw_path.find("?")
        raw_query = raw_path[q + 1:] if q >= 0 else ""
        order_entry = ep.order_entry

        # 2. params
        raw_body = ""
        try:
            if ep.method != "GET":
                raw_body = await self._read_body(request)
            params = self._params(raw_query, raw_body, ep.security == NONE)
        except BinanceError as e:
            weight = ep.cost(_EMPTY, False)
            try:
                limiter.admit(ip, weight)
            except RateLimitError as rl:
                return self._error(name, rl, ip, 0)
            return self._error(name, e, ip, weight)
        p = params.raw

        # 3. faults (latency: see handle)
        faults = self.faults
        fault = faults.pick_rest(name, count=False)
        if fault is not None:
            kind = fault.kind
            if kind != "truncated" and kind != "unknown_status":
                try:
                    limiter.check_ban(ip)  # a banned IP gets its 418, whatever else is injected
                except RateLimitError as e:
                    return self._error(name, e, ip, 0)
                return await self._inject(request, name, fault, ip)

        # 4. rate limits (order entry: checked at the failure weight, charged after the outcome)
        weight = ep.cost(p, False)
        try:
            limiter.admit(ip, weight, charge=not order_entry)
        except RateLimitError as e:
            return self._error(name, e, ip, 0)
        charged = 0 if order_entry else weight

        # 5. auth  6. engine
        account = None
        attempted = executed = False
        try:
            if ep.security != NONE:
                api_key = request.headers.get(API_KEY_HEADER)
                if ep.signed:
                    account = self.auth.verify_rest(api_key, raw_query, raw_body, p)
                else:
                    account = self.auth.check_api_key(api_key)
                if ep.counts_order:
                    limiter.admit_order(account)
            if fault is not None and fault.kind == "unknown_status" and not (fault.execute and order_entry):
                raise _UnknownStatus()
            attempted = True
            if ep.counts_order:
                # counted before the engine runs: its first fill (maybe immediate) lowers the count
                limiter.record_order(account)
            try:
                result = self._calls[name](account, params)
            except Exception:  # a rejection, or a crash (answered -1000 below): no order was placed
                if ep.counts_order:
                    limiter.unrecord_order(account)
                raise
            executed = True
            if fault is not None and fault.kind == "unknown_status":
                raise _UnknownStatus()
            body = self._serialize(ep, result)
            status = 200
            extra = limiter.order_headers(account) if ep.counts_order else None
        except _UnknownStatus:
            if order_entry and not executed:
                limiter.charge(ip, weight)
                charged = weight
            faults.count("unknown_status")
            return self._error(name, error(-1007), ip, charged)
        except BinanceError as e:
            if order_entry:
                limiter.charge(ip, weight)
                charged = weight
            if attempted and fault is not None and fault.kind == "unknown_status":
                # the engine rejected it, but the caller only learns "status unknown"
                faults.count("unknown_status")
                return self._error(name, error(-1007), ip, charged)
            body, status, extra = dumps(e.body()), e.http, e.headers or None
        except Exception:
            self._crashes += 1
            if self._crashes <= _MAX_LOGGED_CRASHES:
                log.exception("%s failed", name)
            if order_entry:
                limiter.charge(ip, weight)
                charged = weight
            err = error(-1000)
            body, status, extra = dumps(err.body()), err.http, None

        if fault is not None and fault.kind == "truncated":
            faults.count("truncated")
            body = body[: len(body) // 2]
        return self._respond(name, status, body, ip, charged, extra)

    # -- faults answered before the rate limiter --------------------------------------------
    async def _inject(self, request: web.Request, name: str, fault, ip: str) -> web.StreamResponse:
        kind = fault.kind
        self.faults.count(kind)
        if kind == "http_5xx":
            status = fault.status
            e = error(_HTTP_5XX_CODES.get(status, -1000))
            return self._respond(name, status, dumps(e.body()), ip, 0)
        if kind == "storm_429":
            lim = self.limiter.limits
            e = error(-1003, lim.request_weight_per_minute, "1 MINUTE")
            return self._respond(name, 429, dumps(e.body()), ip, 0, {RETRY_AFTER: str(fault.retry_after_s)})
        if kind == "malformed":
            return self._respond(name, 200, _MALFORMED_BODY, ip, 0)
        if kind == "hang":
            seconds = (fault.delay_ms or 60_000.0) / 1000.0
            waiter = asyncio.get_running_loop().create_future()
            self._hangs.add(waiter)
            try:
                await asyncio.wait_for(waiter, seconds)
            except asyncio.TimeoutError:
                pass
            finally:
                self._hangs.discard(waiter)
        # reset, and hang after its delay: drop the connection without a response
        self.stats.request(name, 0, 0)
        _abort(request)
        raise _Dropped()

    async def on_startup(self, app: web.Application) -> None:
        """Arm the timers of clock-skew windows installed before the event loop ran (config)."""
        self.faults.start()

    async def on_shutdown(self, app: web.Application) -> None:
        """Release requests held by ``hang`` faults so the server can stop promptly."""
        for w in list(self._hangs):
            if not w.done():
                w.set_result(None)

    # -- oversized requests (every route: REST, control, streams) -----------------------------
    @web.middleware
    async def size_middleware(self, request: web.Request, handler) -> web.StreamResponse:
        raw_path = request.raw_path
        if len(raw_path) > MAX_TARGET:
            e = BinanceError(-1101, "Too many parameters sent for this endpoint.", 414)
        elif len(request.raw_headers) > MAX_HEADER_COUNT or any(
                len(k) + len(v) > MAX_HEADER_FIELD for k, v in request.raw_headers):
            e = BinanceError(-1101, "Request header fields too large.", 431)
        else:
            return await handler(request)
        ep = ENDPOINTS.get((request.method, request.path))
        name = ep.name if ep is not None else UNKNOWN_NAME
        ip = request.remote or "unknown"
        try:
            self.limiter.admit(ip, 0)
        except RateLimitError as rl:
            return self._error(name, rl, ip, 0)
        response = self._error(name, e, ip, 0)
        response.force_close()  # the rest of an oversized request is not worth reading
        return response

    def unparsable(self, ip: str, exc: BaseException | None) -> web.Response:
        """The answer to a request aiohttp's parser gave up on (a request line or header field
        over :data:`PARSER_MAX_LINE`, too many headers, a malformed request): Binance's JSON
        error, counted like any other request, never the echoed input of aiohttp's own 400."""
        line = exc.args[0] if isinstance(exc, LineTooLong) and exc.args else None
        if isinstance(line, (bytes, bytearray, str)) and line[:1] in (b"/", "/"):   # the request target
            e = BinanceError(-1101, "Too many parameters sent for this endpoint.", 414)
        elif isinstance(exc, LineTooLong) or "Too many headers" in str(exc):
            e = BinanceError(-1101, "Request header fields too large.", 431)
        else:
            e = BinanceError(-1000, "Malformed request.", 400)
        try:
            self.limiter.admit(ip, 0)
        except RateLimitError as rl:
            e = rl
        response = self._error(UNKNOWN_NAME, e, ip, 0)
        response.force_close()
        return response

    # -- unknown routes ---------------------------------------------------------------------
    async def not_found(self, request: web.Request) -> web.Response:
        ip = request.remote or "unknown"
        try:
            self.limiter.admit(ip, 0)
        except RateLimitError as e:
            return self._error(UNKNOWN_NAME, e, ip, 0)
        if request.path in self._paths:
            body = {"code": -1000, "msg": f"Method {request.method} is not allowed for this endpoint."}
            return self._respond(UNKNOWN_NAME, 405, dumps(body), ip, 0)
        return self._respond(UNKNOWN_NAME, 404, dumps({"code": -1000, "msg": "Not found."}), ip, 0)


class _UnknownStatus(Exception):
    """Internal: answer with -1007 (execution status unknown)."""


class _Dropped(web.HTTPException):
    """Internal: the connection was dropped on purpose; aiohttp sends nothing on a closed transport."""

    status_code = 500

    def __init__(self):
        super().__init__()


def _abort(request: web.Request) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), like a reset by peer."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


#: ``app[REST_APP]`` is the mounted :class:`RestApp`.
REST_APP = web.AppKey("letrade_rest", RestApp)


def add_rest_routes(app: web.Application, ctx) -> RestApp:
    """Mount every REST endpoint of the table (plus JSON 404/405 for anything else) on ``app``.

    Returns the :class:`RestApp` (its pipeline state: caches, hang waiters)."""
    rest = RestApp(ctx)
    for ep in ENDPOINTS.values():
        app.router.add_route(ep.method, ep.path, rest.handler(ep))
    # Tried last by the router (most specific path first), so it never shadows other routes.
    app.router.add_route("*", "/{tail:.*}", rest.not_found)
    app.middlewares.append(rest.size_middleware)
    app.on_startup.append(rest.on_startup)
    app.on_shutdown.append(rest.on_shutdown)
    app[REST_APP] = rest
    return rest
