"""The WebSocket API (``/ws-api/v3``): request/response frames and user-data subscriptions.

Request ``{"id":…, "method":…, "params":{…}}`` → ``{"id":…, "status":200, "result":…,
"rateLimits":[…]}`` or ``{"id":…, "status":4xx, "error":{"code":…, "msg":…}, "rateLimits":[…]}``.
Weights come from :data:`~letrade_perf.binance.endpoints.WS_API_METHODS` and are charged to the
shared per-IP :class:`~letrade_perf.sim.ratelimit.RateLimiter` (the connection itself costs 2);
429/418 refusals carry ``error.data.retryAfter`` (epoch ms) and a banned connection is closed
after the 418 frame. ``returnRateLimits=false`` (URL query or request param) omits
``rateLimits``; as a request parameter it is covered by the signature like every other
parameter (payload = all params except ``signature``, sorted by name) and never reaches the engine.

Methods (security, REQUEST_WEIGHT — the REST counterpart's; order entry costs 0 when it succeeds):

* general and market data (NONE): ``ping`` 1, ``time`` 1, ``exchangeInfo`` 20, ``depth`` 5–250 by
  ``limit``, ``trades.recent`` 25, ``trades.historical`` 25 (NONE since 2023-07-11: ``apiKey`` is
  ignored), ``trades.aggregate`` 4, ``klines`` / ``uiKlines`` 2, ``avgPrice`` 2, ``ticker.24hr``
  2–80 by symbols, ``ticker.price`` / ``ticker.book`` 2 or 4. They call the same engine methods
  as the REST endpoints, so both APIs return the same data;
* session: ``session.logon``, ``session.status``, ``session.logout`` (2 each);
* account (USER_DATA, signed): ``account.status`` 20, ``order.status`` 4, ``openOrders.status``
  6/80, ``allOrders`` 20, ``myTrades`` 20 (5 with ``orderId``);
* trading (TRADE, signed): ``order.place`` (counts one order), ``order.test`` 1/20,
  ``order.cancel``, ``openOrders.cancelAll``, ``order.cancelReplace`` (1 each when failing).
  ``order.cancelReplace`` validates the new order and the ORDERS budget first (plain errors,
  nothing cancelled), cancels, then places unless the cancel failed under ``STOP_ON_FAILURE``;
  it counts as one order even when the new order is not attempted. A half failure is ``-2021``
  (409), a full failure (or a failed cancel under ``STOP_ON_FAILURE``) ``-2022`` (400); both
  carry ``error.data`` = ``{cancelResult, newOrderResult, cancelResponse, newOrderResponse}``
  with the inner ``{code, msg}`` of a failed half (``NOT_ATTEMPTED`` / ``null`` when skipped).
  ``orderRateLimitExceededMode=CANCEL_ONLY`` cancels even when the ORDERS budget is exhausted;
* user data: ``userDataStream.subscribe`` (after logon), ``userDataStream.subscribe.signature``,
  ``userDataStream.unsubscribe``, ``session.subscriptions`` (2 each).

Authentication: signed methods take ``apiKey``/``timestamp``/``signature`` in ``params``, or
only ``timestamp`` after ``session.logon`` (Ed25519 accounts only). User-data events arrive as
``{"subscriptionId":N,"event":{…}}``; ``userDataStream.unsubscribe`` and ``session.logout``
(for the logon subscription) send ``eventStreamTerminated``.

Malformed frames never close the connection: bad JSON is ``-1135`` (status 400), a missing
``method`` ``-1102``, an unknown method ``-1020``, non-object ``params`` ``-1135``.
"""
from __future__ import annotations

import json
import logging
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import WSCloseCode, web

from ..binance.endpoints import WS_API_METHODS, WsApiMethod
from ..binance.errors import BinanceError, error, mandatory
from .params import Params
from .userdata import router_for
from .wsconn import WsConn, WsServerBase

log = logging.getLogger(__name__)

_dumps = json.JSONEncoder(separators=(",", ":")).encode

#: stats key (``ws_messages``) and fault-rule name of user-data events on the WS API
USER_DATA_STAT = "userDataStream"
MAX_ACTIVE_SUBSCRIPTIONS = 1000
MAX_SUBSCRIPTION_IDS = 65535
_STRIP = ("apiKey", "signature", "returnRateLimits")


def _to_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        try:
            return format(Decimal(repr(v)), "f")
        except InvalidOperation:
            return repr(v)
    return _dumps(v)


class ApiConn(WsConn):
    """A WS API connection: session key, connection time and user-data subscriptions."""

    def __init__(self, server, ws, ip):
        super().__init__(server, ws, ip, "ws-api")
        self.connected_since = server.clock.now_ms()
        self.return_rate_limits = True
        self.account: str | None = None
        self.authorized_since: int | None = None
        self.subs: dict[int, tuple[str, int]] = {}   # subscriptionId -> (account, router token)
        self.logon_sub: int | None = None
        self.next_sub_id = 0


class WsApiServer(WsServerBase):
    """Serves ``/ws-api/v3`` for one :class:`~letrade_perf.sim.context.SimContext`."""

    conn_kind = "ws-api"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.exchange = ctx.exchange
        self.auth = ctx.auth
        self.rl = ctx.ratelimiter
        self.router = router_for(ctx)
        self._handlers = {
            "ping": self._ping_m, "time": self._time, "exchangeInfo": self._exchange_info,
            "depth": self._depth, "ticker.price": self._ticker_price, "ticker.book": self._ticker_book,
            "ticker.24hr": self._ticker_24hr, "avgPrice": self._avg_price, "trades.recent": self._trades_recent,
            "trades.historical": self._trades_historical, "trades.aggregate": self._trades_aggregate,
            "klines": self._klines, "uiKlines": self._ui_klines,
            "session.logon": self._logon, "session.status": self._status, "session.logout": self._logout,
            "account.status": self._account_status, "order.place": self._order_place,
            "order.test": self._order_test, "order.status": self._order_status,
            "order.cancel": self._order_cancel, "openOrders.status": self._open_orders,
            "openOrders.cancelAll": self._cancel_all, "order.cancelReplace": self._cancel_replace,
            "allOrders": self._all_orders, "myTrades": self._my_trades,
            "userDataStream.subscribe": self._uds_subscribe,
            "userDataStream.subscribe.signature": self._uds_subscribe_signature,
            "userDataStream.unsubscribe": self._uds_unsubscribe,
            "session.subscriptions": self._subscriptions,
        }
        if self.faults is not None and hasattr(self.faults, "on_change"):
            self.faults.on_change(self._faults_changed)

    def _faults_changed(self, *args, **kwargs) -> None:
        try:
            self.delay_active = bool(self.faults.rules("ws_delay"))
        except Exception:
            log.exception("reading ws_delay rules failed")

    def every_second(self) -> None:
        if self.faults is not None:
            self._faults_changed()

    # -- connection ---------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ip = request.remote or ""
        try:
            self.rl.admit_connection(ip)
        except BinanceError as e:
            return web.json_response(e.body(), status=e.http, headers=e.headers)
        if self._stopping:
            return web.json_response({"code": -1016, "msg": "This service is no longer available."}, status=503)
        ws = self.new_ws()
        await ws.prepare(request)
        conn = ApiConn(self, ws, ip)
        conn.return_rate_limits = request.query.get("returnRateLimits", "true").lower() != "false"
        self.conns.add(conn)
        self.stats.ws_connections["ws-api"] += 1
        try:
            await self.read_loop(conn, self.on_text)
        finally:
            for sid in list(conn.subs):
                self._end_subscription(conn, sid, notify=False)
            self.conns.discard(conn)
        return ws

    # -- request dispatch -----------------------------------------------------------------
    def on_text(self, conn: ApiConn, text: str) -> None:
        rid = None
        name = "invalid"
        try:
            try:
                req = json.loads(text)
            except ValueError:
                raise BinanceError(-1135, "Invalid JSON Request", 400) from None
            if not isinstance(req, dict):
                raise BinanceError(-1135, "Invalid JSON Request", 400)
            rid = req.get("id")
            method = req.get("method")
            if not isinstance(method, str) or not method:
                raise mandatory("method")
            if method.startswith("v3/"):
                method = method[3:]
            m = WS_API_METHODS.get(method)
            if m is None or method not in self._handlers:
                name = "unknown"
                raise BinanceError(-1020, f"Unknown method '{method[:64]}'.", 400)
            name = method
            params = req.get("params", {})
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise BinanceError(-1135, "Invalid 'params' in JSON request; expected an object.", 400)
        except BinanceError as e:
            self._respond(conn, rid, name, e.http, None, e, conn.return_rate_limits, None)
            return
        self._call(conn, rid, m, params)

    def _call(self, conn: ApiConn, rid, m: WsApiMethod, params: dict) -> None:
        rrl = conn.return_rate_limits
        if "returnRateLimits" in params:
            # a request parameter like any other: it stays in ``params`` (the signature covers
            # every parameter except ``signature``) and is only kept away from the engine
            v = params["returnRateLimits"]
            rrl = v is True or (isinstance(v, str) and v.lower() == "true")
        sp = {k: _to_str(v) for k, v in params.items() if v is not None and k != "returnRateLimits"}
        weight = m.cost(sp, ok=False)
        account_for_limits = None
        try:
            self.rl.admit(conn.ip, weight, charge=not m.order_entry)
            try:
                result, account = self._handlers[m.method](conn, params, sp)
            except BinanceError as e:
                if m.order_entry and e.http < 500:
                    self.rl.charge(conn.ip, weight)
                raise
            if m.counts_order:
                account_for_limits = account
        except BinanceError as e:
            if m.counts_order:
                # ORDERS entries for order-count refusals and cancel-replace outcomes (-2021/-2022)
                acct = getattr(e, "account", None)
                if acct is None and e.code == -1015:
                    acct = conn.account
                account_for_limits = acct
            text = self._respond(conn, rid, m.method, e.http, None, e, rrl, account_for_limits,
                                 send=e.http != 418)
            if e.http == 418:   # a banned connection is closed after the refusal
                conn.drop("banned", WSCloseCode.POLICY_VIOLATION, final=text)
            return
        except Exception:
            log.exception("WS API %s failed", m.method)
            err = error(-1000)
            self._respond(conn, rid, m.method, 500, None, err, rrl, None)
            return
        self._respond(conn, rid, m.method, 200, result, None, rrl, account_for_limits)

    def _respond(self, conn: ApiConn, rid, name: str, status: int, result, err: BinanceError | None,
                 rrl: bool, account: str | None, send: bool = True) -> str:
        self.stats.ws_api_requests[(name, status)] += 1
        out: dict = {"id": rid, "status": status}
        if err is None:
            out["result"] = result
        else:
            body: dict[str, Any] = err.body()
            retry = getattr(err, "retry_after_ms", None)
            if retry is not None:
                body["data"] = {"serverTime": self.clock.now_ms(), "retryAfter": retry}
            out["error"] = body
        if rrl:
            try:
                out["rateLimits"] = self.rl.ws_api_limits(conn.ip, account)
            except Exception:
                log.exception("ws_api_limits failed")
        text = _dumps(out)
        if send:
            conn.send(text)
        return text

    # -- authentication -------------------------------------------------------------------
    def _signed_account(self, conn: ApiConn, params: dict) -> str:
        """Account of a SIGNED request: its own apiKey+signature, else the session's key."""
        if "apiKey" in params or "signature" in params or conn.account is None:
            if "apiKey" not in params:
                raise mandatory("apiKey")
            return self.auth.verify_ws(params)
        self.auth.check_timestamp(params)
        return conn.account

    @staticmethod
    def _engine_params(sp: dict) -> Params:
        return Params({k: v for k, v in sp.items() if k not in _STRIP})

    def _session(self, conn: ApiConn) -> dict:
        return {"apiKey": conn.account, "authorizedSince": conn.authorized_since,
                "connectedSince": conn.connected_since, "returnRateLimits": conn.return_rate_limits,
                "serverTime": self.clock.now_ms(), "userDataStream": bool(conn.subs)}

    # -- public methods -------------------------------------------------------------------
    def _ping_m(self, conn, params, sp):
        return {}, None

    def _time(self, conn, params, sp):
        return {"serverTime": self.clock.now_ms()}, None

    def _exchange_info(self, conn, params, sp):
        return self.exchange.exchange_info(Params(sp)), None

    def _depth(self, conn, params, sp):
        return self.exchange.depth(Params(sp)), None

    def _ticker_price(self, conn, params, sp):
        return self.exchange.ticker_price(Params(sp)), None

    def _ticker_book(self, conn, params, sp):
        return self.exchange.book_ticker(Params(sp)), None

    # the same engine calls as the REST endpoints, so both APIs answer identically
    def _ticker_24hr(self, conn, params, sp):
        return self.exchange.ticker_24hr(Params(sp)), None

    def _avg_price(self, conn, params, sp):
        return self.exchange.avg_price(Params(sp)), None

    def _trades_recent(self, conn, params, sp):
        return self.exchange.trades(Params(sp)), None

    def _trades_historical(self, conn, params, sp):
        return self.exchange.historical_trades(Params(sp)), None

    def _trades_aggregate(self, conn, params, sp):
        return self.exchange.agg_trades(Params(sp)), None

    def _klines(self, conn, params, sp):
        return self.exchange.klines(Params(sp)), None

    def _ui_klines(self, conn, params, sp):
        return self.exchange.ui_klines(Params(sp)), None

    # -- session --------------------------------------------------------------------------
    def _logon(self, conn, params, sp):
        account = self.auth.verify_ws(params)
        key_type = self.auth.key_type(params.get("apiKey")) if hasattr(self.auth, "key_type") else None
        if key_type != "ED25519":
            raise BinanceError(-1002, "You are not authorized to execute this request. "
                                      "Only Ed25519 API keys can log on.", 401)
        if conn.account is not None and conn.account != account and conn.logon_sub is not None:
            self._end_subscription(conn, conn.logon_sub, notify=True)
        conn.account = account
        conn.authorized_since = self.clock.now_ms()
        return self._session(conn), None

    def _status(self, conn, params, sp):
        return self._session(conn), None

    def _logout(self, conn, params, sp):
        if conn.logon_sub is not None:
            self._end_subscription(conn, conn.logon_sub, notify=True)
        conn.account = None
        conn.authorized_since = None
        return self._session(conn), None

    # -- account and orders ---------------------------------------------------------------
    def _account_status(self, conn, params, sp):
        account = self._signed_account(conn, params)
        return self.exchange.account(account, self._engine_params(sp)), account

    def _order_place(self, conn, params, sp):
        account = self._signed_account(conn, params)
        self.rl.admit_order(account)
        self.rl.record_order(account)   # before the engine: its first fill lowers the count
        try:
            result = self.exchange.new_order(account, self._engine_params(sp))
        except Exception:       # rejected, or a crash: no order was placed, so it does not count
            self.rl.unrecord_order(account)
            raise
        return result, account

    def _order_test(self, conn, params, sp):
        account = self._signed_account(conn, params)
        return self.exchange.test_order(account, self._engine_params(sp)), account

    def _order_status(self, conn, params, sp):
        account = self._signed_account(conn, params)
        return self.exchange.get_order(account, self._engine_params(sp)), account

    def _order_cancel(self, conn, params, sp):
        account = self._signed_account(conn, params)
        return self.exchange.cancel_order(account, self._engine_params(sp)), account

    def _open_orders(self, conn, params, sp):
        account = self._signed_account(conn, params)
        return self.exchange.open_orders(account, self._engine_params(sp)), account

    def _cancel_all(self, conn, params, sp):
        account = self._signed_account(conn, params)
        return self.exchange.cancel_open_orders(account, self._engine_params(sp)), account

    def _all_orders(self, conn, params, sp):
        account = self._signed_account(conn, params)
        return self.exchange.all_orders(account, self._engine_params(sp)), account

    def _my_trades(self, conn, params, sp):
        account = self._signed_account(conn, params)
        return self.exchange.my_trades(account, self._engine_params(sp)), account

    def _cancel_replace(self, conn, params, sp):
        """``order.cancelReplace`` on top of the engine's cancel and new-order operations.

        Parameters and the new order's filters are checked first (a failure there is a plain
        error; nothing is cancelled), then the ORDERS budget (``orderRateLimitExceededMode``),
        then the cancel and — unless it failed under ``STOP_ON_FAILURE`` — the new order.
        Not transactional, like Binance: a successful half stays done. The call counts as one
        order (also when the new order is not attempted); an order the engine rejects does not
        count, as for ``order.place``.
        """
        account = self._signed_account(conn, params)
        p = self._engine_params(sp)
        p.symbol()
        mode = p.enum("cancelReplaceMode", _CR_MODES, required=True)
        rl_mode = p.enum("orderRateLimitExceededMode", ("DO_NOTHING", "CANCEL_ONLY"), default="DO_NOTHING")
        cancel_id = p.int("cancelOrderId", lo=0)
        cancel_cid = p.client_order_id("cancelOrigClientOrderId")
        if cancel_id is None and cancel_cid is None:
            raise BinanceError(-1102, "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, "
                                      "but both were empty/null!")
        p.client_order_id("cancelNewClientOrderId")
        p.enum("cancelRestrictions", ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"))
        raw = p.raw
        cancel_p = Params({k: v for k, v in (
            ("symbol", raw.get("symbol")), ("orderId", raw.get("cancelOrderId")),
            ("origClientOrderId", raw.get("cancelOrigClientOrderId")),
            ("newClientOrderId", raw.get("cancelNewClientOrderId")),
            ("cancelRestrictions", raw.get("cancelRestrictions")),
            ("recvWindow", raw.get("recvWindow")), ("timestamp", raw.get("timestamp"))) if v is not None})
        new_p = Params({k: v for k, v in raw.items() if k not in _CR_ONLY})
        ex = self.exchange
        # parameters and filters of the new order, nothing changes yet (MAX_NUM_ORDERS still sees
        # the order to be cancelled as open: a replace at that limit is refused, a simplification)
        ex.test_order(account, new_p)
        try:
            self.rl.admit_order(account)
        except BinanceError as limit_error:
            limit_error.account = account
            if rl_mode != "CANCEL_ONLY":
                raise
            cancel_resp, cancel_err = self._try(lambda: ex.cancel_order(account, cancel_p))
            if cancel_err is not None and mode == "STOP_ON_FAILURE":
                raise
            raise _cancel_replace_error(account, cancel_resp, cancel_err, None, limit_error.body()) from None
        self.rl.record_order(account)       # counts even when the new order is not attempted
        try:
            cancel_resp, cancel_err = self._try(lambda: ex.cancel_order(account, cancel_p))
        except Exception:                   # a crash (answered -1000): nothing happened
            self.rl.unrecord_order(account)
            raise
        if cancel_err is not None and mode == "STOP_ON_FAILURE":
            raise _cancel_replace_error(account, None, cancel_err, None, None, attempted=False)
        try:
            new_resp, new_err = self._try(lambda: ex.new_order(account, new_p))
        except Exception:
            self.rl.unrecord_order(account)
            raise
        if new_err is not None:
            self.rl.unrecord_order(account)     # rejected by the engine: no order was placed
        if cancel_err is None and new_err is None:
            return {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
                    "cancelResponse": cancel_resp, "newOrderResponse": new_resp}, account
        raise _cancel_replace_error(account, cancel_resp, cancel_err, new_resp, new_err)

    @staticmethod
    def _try(fn) -> tuple[Any, dict | None]:
        """``(result, None)`` or ``(None, error body)`` for a Binance rejection; crashes propagate."""
        try:
            return fn(), None
        except BinanceError as e:
            return None, e.body()

    # -- user data stream -------------------------------------------------------------------
    def _new_subscription(self, conn: ApiConn, account: str) -> int:
        if any(acc == account for acc, _ in conn.subs.values()):
            raise error(-2035)
        if len(conn.subs) >= MAX_ACTIVE_SUBSCRIPTIONS or conn.next_sub_id >= MAX_SUBSCRIPTION_IDS:
            raise BinanceError(-2042, "Maximum subscription ID reached for this connection.", 400)
        sid = conn.next_sub_id
        conn.next_sub_id += 1
        prefix = '{"subscriptionId":%d,"event":' % sid
        clock = self.clock

        def sink(text: str, event: dict, _conn=conn, _prefix=prefix) -> None:
            _conn.send(_prefix + text + "}", USER_DATA_STAT, event.get("E") or clock.now_ms())

        conn.subs[sid] = (account, self.router.add(account, sink))
        return sid

    def _end_subscription(self, conn: ApiConn, sid: int, notify: bool) -> None:
        entry = conn.subs.pop(sid, None)
        if entry is None:
            return
        self.router.remove(*entry)
        if conn.logon_sub == sid:
            conn.logon_sub = None
        if notify:
            conn.send(_dumps({"subscriptionId": sid,
                              "event": {"e": "eventStreamTerminated", "E": self.clock.now_ms()}}))

    def _uds_subscribe(self, conn, params, sp):
        if conn.account is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        sid = self._new_subscription(conn, conn.account)
        conn.logon_sub = sid
        return {"subscriptionId": sid}, None

    def _uds_subscribe_signature(self, conn, params, sp):
        if "apiKey" not in params:
            raise mandatory("apiKey")
        account = self.auth.verify_ws(params)
        return {"subscriptionId": self._new_subscription(conn, account)}, None

    def _uds_unsubscribe(self, conn, params, sp):
        if "subscriptionId" in params:
            sid = Params(sp).int("subscriptionId", required=True)
            if sid not in conn.subs:
                raise error(-2036)
            self._end_subscription(conn, sid, notify=True)
        else:
            if not conn.subs:
                raise error(-2036)
            for sid in list(conn.subs):
                self._end_subscription(conn, sid, notify=True)
        return {}, None

    def _subscriptions(self, conn, params, sp):
        return [{"subscriptionId": sid} for sid in sorted(conn.subs)], None

    # -- lifecycle --------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Clean shutdown: ``{"event":{"e":"serverShutdown",…}}`` to every client, then close."""
        await self.stop_tasks()
        text = _dumps({"event": {"e": "serverShutdown", "E": self.clock.now_ms()}})
        await self.close_all(lambda c: text)


_CR_MODES = ("STOP_ON_FAILURE", "ALLOW_FAILURE")
#: ``order.cancelReplace`` parameters that are not the new order's
_CR_ONLY = frozenset({"cancelReplaceMode", "cancelOrderId", "cancelOrigClientOrderId", "cancelNewClientOrderId",
                      "cancelRestrictions", "orderRateLimitExceededMode"})


class CancelReplaceError(BinanceError):
    """-2021 (409, one half failed) / -2022 (400, both failed or the cancel failed under
    ``STOP_ON_FAILURE``) with Binance's ``data`` object; ``account`` gets the ORDERS entries."""

    def __init__(self, code: int, msg: str, http: int, data: dict, account: str):
        super().__init__(code, msg, http)
        self.data = data
        self.account = account

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg, "data": self.data}


def _cancel_replace_error(account: str, cancel_resp, cancel_err, new_resp, new_err,
                          attempted: bool = True) -> CancelReplaceError:
    cancel_ok = cancel_err is None
    new_ok = attempted and new_err is None
    data = {"cancelResult": "SUCCESS" if cancel_ok else "FAILURE",
            "newOrderResult": ("SUCCESS" if new_ok else "FAILURE") if attempted else "NOT_ATTEMPTED",
            "cancelResponse": cancel_resp if cancel_ok else cancel_err,
            "newOrderResponse": (new_resp if new_ok else new_err) if attempted else None}
    if cancel_ok or new_ok:
        return CancelReplaceError(-2021, "Order cancel-replace partially failed.", 409, data, account)
    return CancelReplaceError(-2022, "Order cancel-replace failed.", 400, data, account)


def add_routes(app: web.Application, ctx) -> WsApiServer:
    """Mount ``/ws-api/v3`` on ``app``; returns the server (``ctx.wsapi``)."""
    server = WsApiServer(ctx)
    app.router.add_get("/ws-api/v3", server.handle)

    async def _start(_app):
        server.start()

    app.on_startup.append(_start)
    return server
