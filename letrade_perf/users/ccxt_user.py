"""The ccxt user: the same market data (and optionally orders) through ccxt's *sync* ``binance``
class — what a trading system built on ccxt sees, including ccxt's own parsing and signing.

One ccxt instance per user, ``enableRateLimit: False`` (the process pacer owns pacing), markets
loaded once per process and shared (``set_markets``). Every call is paced by the REST endpoint
ccxt will hit, timed after pacing, and reported as ``request_type="ccxt"``,
``name="ccxt <method>"`` (``ccxt fetch_order_book``); rate-limit headers, 429 and 418 are read
from the HTTP response ccxt received.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, ClassVar, Mapping

import gevent
from gevent.lock import Semaphore
from locust import User, task
from locust.exception import StopUser

from ..binance.ccxt_compat import ccxt_binance
from ..binance.endpoints import endpoint
from ..calls.path import CallResult, Order, SafetyRefusal, begin, call_failure
from ..config.profile import CcxtSettings
from ..harness.ledger import shielded
from ..pacing import IpBanned
from .arrival import INTENDED_CONTEXT, OpenModelMixin
from .base import HarnessUserMixin, next_index, weighted_tasks
from .orders import client_order_id

_markets_lock = Semaphore()
_shared_markets: dict[str, Any] = {}


class CcxtUser(HarnessUserMixin, OpenModelMixin, User):
    """ccxt market data and optional resting-order round trips (see the module docstring)."""

    abstract = True
    letrade_kind: ClassVar[str] = "ccxt"
    #: the profile's ``users.ccxt`` (frozen): ``orders`` (a LIMIT far from the market, queried and
    #: cancelled; needs credentials), ``order_notional``, task weights
    settings: ClassVar[CcxtSettings] = CcxtSettings()
    #: how far below the best bid the resting BUY is priced (fraction)
    order_distance: float = 0.10
    #: order book depth requested by fetch_order_book
    depth_limit: int = 5
    #: candles per fetch_ohlcv
    ohlcv_limit: int = 100
    #: trades per fetch_trades
    trades_limit: int = 100
    #: ccxt request timeout (ms)
    timeout_ms: int = 10_000

    @classmethod
    def set_task_weights(cls, weights: Mapping[str, int]) -> None:
        """Replace the task mix (0 disables a task; ``order`` only runs with ``settings.orders``)."""
        weighted_tasks(cls, weights, "ccxt", disabled=() if cls.settings.orders else ("order",))

    def on_start(self) -> None:
        self.pick_symbol()
        ctx = self.ctx
        creds = ctx.credentials
        secret = creds.secret.reveal() if creds is not None and hasattr(creds.secret, "reveal") else \
            (creds.secret if creds is not None else None)
        self.exchange = ccxt_binance(ctx.base_url, creds.api_key if creds else None, secret,
                                     options={"adjustForTimeDifference": False})
        self.exchange.timeout = self.timeout_ms
        self._last: tuple[int, dict, str] | None = None
        original = self.exchange.on_rest_response

        def capture(code, reason, url, method, response_headers, response_body, request_headers, request_body):
            self._last = (int(code or 0), dict(response_headers or {}), response_body or "")
            return original(code, reason, url, method, response_headers, response_body, request_headers,
                            request_body)

        self.exchange.on_rest_response = capture
        # ccxt signs with its own clock: keep its timestamps on the server clock too
        self.exchange.options["timeDifference"] = -int(ctx.clock.offset_ms) if ctx.clock is not None else 0
        self.user_index = next_index("ccxt-user")
        self._seq = 0
        self._load_markets()
        rules = ctx.symbol_rules.get(self.symbol)
        self.market = f"{rules.base}/{rules.quote}" if rules else self.symbol
        self.arrival_start()     # open model (settings.arrival_rate): waits for the first slot

    def on_stop(self) -> None:
        self.arrival_stop()

    def _load_markets(self) -> None:
        """Markets once per process (one paced ``GET /api/v3/exchangeInfo``), shared by all users."""
        with _markets_lock:
            if "markets" not in _shared_markets:
                markets, res = self.ccxt_call("load_markets", "GET", "/api/v3/exchangeInfo", {},
                                              self.exchange.load_markets)
                if markets is None:
                    raise StopUser()
                _shared_markets["markets"] = self.exchange.markets
                _shared_markets["currencies"] = self.exchange.currencies
                return
        self.exchange.set_markets(_shared_markets["markets"], _shared_markets.get("currencies"))

    # -- the one call path -----------------------------------------------------------------------
    def ccxt_call(self, name: str, method: str, path: str, cost_params: Mapping[str, Any],
                  fn: Callable[[], Any], order: Order | None = None) -> tuple[Any, CallResult]:
        """Pace by the endpoint ccxt will hit, run ``fn``, report ``ccxt <name>``. ``order``: the
        call places it (safety gate: :class:`~letrade_perf.calls.path.SafetyRefusal`; ledger).

        Returns ``(result or None, CallResult)``; never raises ccxt errors."""
        import ccxt

        ctx = self.ctx
        try:
            call = begin(ctx, endpoint(method, path), {k: str(v) for k, v in cost_params.items()}, order=order)
        except IpBanned:
            raise StopUser() from None
        self._last = None
        if ctx.clock is not None:    # the clock may have been re-synced (refresh, or a -1021) since the last call
            self.exchange.options["timeDifference"] = -int(ctx.clock.offset_ms)

        def exchange() -> tuple[Any, CallResult]:
            call.leave()
            late_ms = self.arrival_sent()     # open model: since the intended start (pacing included)
            exc: BaseException | None = None
            try:
                result = fn()
            except ccxt.BaseError as e:
                result, exc = None, e
            elapsed = call.elapsed_ms()
            headers: dict
            status, headers, body = self._last or (0, {}, "")
            res = call.answer(status, headers, body, None if exc is None else type(exc).__name__,
                              elapsed_ms=elapsed, answered=exc is None)
            self.fire("ccxt", f"ccxt {name}", elapsed, length=len(body) if body else 0,
                      exception=None if exc is None else call_failure(res, exc),
                      context=None if late_ms is None else {INTENDED_CONTEXT: late_ms + elapsed})
            self.arrival_done()
            return result, res

        # an order leaves and is booked in a greenlet stopping this user cannot cut short
        return shielded(ctx.ledger, exchange) if order is not None else exchange()

    # -- tasks ---------------------------------------------------------------------------------
    @task
    def order_book(self) -> None:
        self.ccxt_call("fetch_order_book", "GET", "/api/v3/depth", {"limit": self.depth_limit},
                       lambda: self.exchange.fetch_order_book(self.market, self.depth_limit))

    @task
    def ohlcv(self) -> None:
        self.ccxt_call("fetch_ohlcv", "GET", "/api/v3/klines", {},
                       lambda: self.exchange.fetch_ohlcv(self.market, "1m", limit=self.ohlcv_limit))

    @task
    def trades(self) -> None:
        self.ccxt_call("fetch_trades", "GET", "/api/v3/trades", {},
                       lambda: self.exchange.fetch_trades(self.market, limit=self.trades_limit))

    @task
    def ticker(self) -> None:
        self.ccxt_call("fetch_ticker", "GET", "/api/v3/ticker/24hr", {"symbol": self.symbol},
                       lambda: self.exchange.fetch_ticker(self.market))

    @task
    def balance(self) -> None:
        if self.ctx.credentials is None:
            return
        self.ccxt_call("fetch_balance", "GET", "/api/v3/account", {}, self.exchange.fetch_balance)

    @task
    def order(self) -> None:
        """A resting LIMIT BUY far below the market, queried and cancelled (ledger-tracked)."""
        ctx = self.ctx
        if not self.settings.orders or ctx.credentials is None:
            gevent.sleep(1.0)
            return
        notional = Decimal(str(self.settings.order_notional))
        ticker, res = self.ccxt_call("fetch_ticker", "GET", "/api/v3/ticker/24hr", {"symbol": self.symbol},
                                     lambda: self.exchange.fetch_ticker(self.market))
        if not ticker or not ticker.get("bid"):
            return
        ex = self.exchange
        price = float(ex.price_to_precision(self.market, ticker["bid"] * (1.0 - self.order_distance)))
        amount = float(ex.amount_to_precision(self.market, float(notional) / price))
        rules = ctx.symbol_rules.get(self.symbol)
        if rules is not None and rules.check(Decimal(str(amount)), Decimal(str(price)), market=False):
            return
        value = Decimal(str(amount)) * Decimal(str(price))
        self._seq += 1
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        cid = client_order_id("lc", ctx.run_id, worker, self.user_index, self._seq)
        try:   # the call path gates, enters and books the order
            order, res = self.ccxt_call("create_order", "POST", "/api/v3/order", {},
                                        lambda: ex.create_order(self.market, "limit", "buy", amount, price,
                                                                {"newClientOrderId": cid}),
                                        order=Order(cid, str(self.symbol), "BUY", value, "ccxt", "ccxt"))
        except SafetyRefusal:
            return
        if order is None and res.unknown:
            found, q = self.ccxt_call("fetch_order", "GET", "/api/v3/order", {},
                                      lambda: ex.fetch_order(None, self.market, {"origClientOrderId": cid}))
            if found is None:
                if q.code == -2013:
                    ctx.ledger.resolved(cid, None)
                return   # else still unknown: the kill switch resolves it at the end
        elif order is None:
            return       # rejected
        self.ccxt_call("fetch_order", "GET", "/api/v3/order", {},
                       lambda: ex.fetch_order(None, self.market, {"origClientOrderId": cid}))
        canceled, res = self.ccxt_call("cancel_order", "DELETE", "/api/v3/order", {},
                                       lambda: ex.cancel_order(None, self.market, {"origClientOrderId": cid}))
        if canceled is not None:
            info = canceled.get("info") or {}
            if info.get("status", "CANCELED") == "CANCELED" and not Decimal(str(info.get("executedQty", "0"))):
                ctx.ledger.release_notional(value, client_order_id=cid)


CcxtUser.set_task_weights({})   # the task mix of the settings' defaults
