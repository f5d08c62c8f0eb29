"""The single declarative table of Binance Spot REST endpoints and WebSocket API methods.

Both the harness (pacing, request names) and the simulator (routing, weight accounting) read
this table, so client and server cannot drift. Weights are the current (2026) REQUEST_WEIGHT
values of the reference; a weight that depends on parameters is a function of the parsed
parameter mapping.

Since 2026-04-02 successful order-entry calls cost 0 weight and failed ones their listed
weight: such endpoints have ``order_entry=True`` and :meth:`Endpoint.cost` takes ``ok``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Mapping

NONE = "NONE"
TRADE = "TRADE"
USER_DATA = "USER_DATA"
USER_STREAM = "USER_STREAM"

WeightFn = Callable[[Mapping[str, str]], int]


def _count_symbols(params: Mapping[str, str]) -> int | None:
    raw = params.get("symbols")
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        return len(value) if isinstance(value, list) else 1
    except (ValueError, TypeError):
        return 1


def depth_weight(params: Mapping[str, str]) -> int:
    """depth: limit 1–100 ⇒ 5, 101–500 ⇒ 25, 501–1000 ⇒ 50, 1001–5000 ⇒ 250 (default limit 100)."""
    try:
        limit = int(params.get("limit") or 100)
    except ValueError:
        limit = 100
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def ticker_24hr_weight(params: Mapping[str, str]) -> int:
    """ticker/24hr: symbol ⇒ 2; none ⇒ 80; symbols 1–20 ⇒ 2, 21–100 ⇒ 40, ≥ 101 ⇒ 80."""
    if params.get("symbol"):
        return 2
    n = _count_symbols(params)
    if n is None:
        return 80
    if n <= 20:
        return 2
    if n <= 100:
        return 40
    return 80


def symbol_or_4(params: Mapping[str, str]) -> int:
    """ticker/price and ticker/bookTicker: symbol ⇒ 2; omitted or symbols ⇒ 4."""
    return 2 if params.get("symbol") else 4


def open_orders_weight(params: Mapping[str, str]) -> int:
    """openOrders GET: 6 with a symbol, 80 without."""
    return 6 if params.get("symbol") else 80


def my_trades_weight(params: Mapping[str, str]) -> int:
    """myTrades: 20; 5 when orderId is given."""
    return 5 if params.get("orderId") else 20


def order_test_weight(params: Mapping[str, str]) -> int:
    """order/test: 1; 20 with computeCommissionRates=true."""
    return 20 if str(params.get("computeCommissionRates", "")).lower() == "true" else 1


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint: method, path, security type and REQUEST_WEIGHT.

    ``weight`` is an int or a function of the request parameters. ``order_entry``: successful
    calls cost 0 weight (2026-04-02 rule). ``counts_order``: a successful call adds one to the
    account's unfilled-order count (ORDERS limits). ``shows_orders``: a successful answer shows
    orders by client order id with their status (the call path updates the order ledger from it).
    ``name`` is the request name the harness reports (an endpoint template, never a URL).
    """

    method: str
    path: str
    security: str
    weight: int | WeightFn
    order_entry: bool = False
    counts_order: bool = False
    shows_orders: bool = False
    retired: bool = False
    doc: str = ""
    name: str = field(init=False)
    #: needs ``timestamp`` and ``signature`` (TRADE, USER_DATA)
    signed: bool = field(init=False)
    #: needs the ``X-MBX-APIKEY`` header (every security type but NONE)
    needs_key: bool = field(init=False)

    def __post_init__(self) -> None:   # derived once: they are read on every request
        object.__setattr__(self, "name", f"{self.method} {self.path}")
        object.__setattr__(self, "signed", self.security in (TRADE, USER_DATA))
        object.__setattr__(self, "needs_key", self.security != NONE)

    def cost(self, params: Mapping[str, str], ok: bool = True) -> int:
        """REQUEST_WEIGHT this call costs; 0 for a successful order-entry call."""
        if self.order_entry and ok:
            return 0
        w = self.weight
        return w(params) if callable(w) else w


_ENDPOINTS = [
    Endpoint("GET", "/api/v3/ping", NONE, 1),
    Endpoint("GET", "/api/v3/time", NONE, 1),
    Endpoint("GET", "/api/v3/exchangeInfo", NONE, 20),
    Endpoint("GET", "/api/v3/depth", NONE, depth_weight),
    Endpoint("GET", "/api/v3/trades", NONE, 25),
    Endpoint("GET", "/api/v3/historicalTrades", NONE, 25),
    Endpoint("GET", "/api/v3/aggTrades", NONE, 4),
    Endpoint("GET", "/api/v3/klines", NONE, 2),
    Endpoint("GET", "/api/v3/uiKlines", NONE, 2),
    Endpoint("GET", "/api/v3/avgPrice", NONE, 2),
    Endpoint("GET", "/api/v3/ticker/24hr", NONE, ticker_24hr_weight),
    Endpoint("GET", "/api/v3/ticker/price", NONE, symbol_or_4),
    Endpoint("GET", "/api/v3/ticker/bookTicker", NONE, symbol_or_4),
    Endpoint("GET", "/api/v3/account", USER_DATA, 20),
    Endpoint("POST", "/api/v3/order", TRADE, 1, order_entry=True, counts_order=True),
    Endpoint("POST", "/api/v3/order/test", TRADE, order_test_weight),
    Endpoint("GET", "/api/v3/order", USER_DATA, 4, shows_orders=True),
    Endpoint("DELETE", "/api/v3/order", TRADE, 1, order_entry=True, shows_orders=True),
    Endpoint("GET", "/api/v3/openOrders", USER_DATA, open_orders_weight),
    Endpoint("DELETE", "/api/v3/openOrders", TRADE, 1, order_entry=True, shows_orders=True),
    Endpoint("GET", "/api/v3/allOrders", USER_DATA, 20),
    Endpoint("GET", "/api/v3/myTrades", USER_DATA, my_trades_weight),
    Endpoint("GET", "/api/v3/rateLimit/order", USER_DATA, 40),
    Endpoint("POST", "/api/v3/userDataStream", USER_STREAM, 2, retired=True),
    Endpoint("PUT", "/api/v3/userDataStream", USER_STREAM, 2, retired=True),
    Endpoint("DELETE", "/api/v3/userDataStream", USER_STREAM, 2, retired=True),
    # Account and API-key status (production only: testnet has no /sapi), reference §12
    Endpoint("GET", "/sapi/v1/account/apiRestrictions", USER_DATA, 1),
    Endpoint("GET", "/sapi/v1/account/apiTradingStatus", USER_DATA, 1),
    Endpoint("GET", "/sapi/v1/account/status", USER_DATA, 1),
]

#: ``(method, path) -> Endpoint`` for every REST endpoint.
ENDPOINTS: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in _ENDPOINTS}


def endpoint(method: str, path: str) -> Endpoint:
    """Look up an endpoint; ``KeyError`` if it is not in the table."""
    return ENDPOINTS[(method.upper(), path)]


@dataclass(frozen=True)
class WsApiMethod:
    """One WebSocket API method (``/ws-api/v3``) with its weight and security (the fields as
    :class:`Endpoint`'s)."""

    method: str
    security: str
    weight: int | WeightFn
    order_entry: bool = False
    counts_order: bool = False
    shows_orders: bool = False

    def cost(self, params: Mapping[str, str], ok: bool = True) -> int:
        if self.order_entry and ok:
            return 0
        w = self.weight
        return w(params) if callable(w) else w


_WS_API = [
    WsApiMethod("ping", NONE, 1),
    WsApiMethod("time", NONE, 1),
    WsApiMethod("exchangeInfo", NONE, 20),
    WsApiMethod("depth", NONE, depth_weight),
    WsApiMethod("ticker.price", NONE, symbol_or_4),
    WsApiMethod("ticker.book", NONE, symbol_or_4),
    WsApiMethod("ticker.24hr", NONE, ticker_24hr_weight),
    WsApiMethod("avgPrice", NONE, 2),
    WsApiMethod("trades.recent", NONE, 25),
    # NONE since 2023-07-11 (was MARKET_DATA): ``apiKey`` is no longer needed and is ignored
    WsApiMethod("trades.historical", NONE, 25),
    WsApiMethod("trades.aggregate", NONE, 4),
    WsApiMethod("klines", NONE, 2),
    WsApiMethod("uiKlines", NONE, 2),
    WsApiMethod("session.logon", NONE, 2),
    WsApiMethod("session.status", NONE, 2),
    WsApiMethod("session.logout", NONE, 2),
    WsApiMethod("account.status", USER_DATA, 20),
    WsApiMethod("order.place", TRADE, 1, order_entry=True, counts_order=True),
    WsApiMethod("order.test", TRADE, order_test_weight),
    WsApiMethod("order.status", USER_DATA, 4, shows_orders=True),
    WsApiMethod("order.cancel", TRADE, 1, order_entry=True, shows_orders=True),
    WsApiMethod("openOrders.status", USER_DATA, open_orders_weight),
    WsApiMethod("openOrders.cancelAll", TRADE, 1, order_entry=True, shows_orders=True),
    WsApiMethod("order.cancelReplace", TRADE, 1, order_entry=True, counts_order=True),
    WsApiMethod("allOrders", USER_DATA, 20),
    WsApiMethod("myTrades", USER_DATA, my_trades_weight),
    WsApiMethod("userDataStream.subscribe", USER_STREAM, 2),
    WsApiMethod("userDataStream.subscribe.signature", USER_DATA, 2),
    WsApiMethod("userDataStream.unsubscribe", NONE, 2),
    WsApiMethod("session.subscriptions", NONE, 2),
]

#: ``method -> WsApiMethod`` for every WebSocket API method.
WS_API_METHODS: dict[str, WsApiMethod] = {m.method: m for m in _WS_API}

#: Weight charged for opening a WebSocket API connection.
WS_API_CONNECT_WEIGHT = 2

#: Default exchange rate limits (production values, 2026) as exchangeInfo lists them.
DEFAULT_RATE_LIMITS = (
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
)
