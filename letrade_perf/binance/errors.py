"""Binance Spot error codes, their canonical messages and HTTP statuses.

One table, shared by the simulator (which raises :class:`BinanceError` and renders it as
``{"code": ..., "msg": ...}``) and the harness (which classifies responses by code).
Messages follow Binance's ``errors.md``; ``%s`` placeholders are filled by :func:`error`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorSpec:
    """A Binance error code with its default message template and HTTP status."""

    code: int
    name: str
    msg: str
    http: int = 400


_SPECS = [
    ErrorSpec(-1000, "UNKNOWN", "An unknown error occurred while processing the request.", 500),
    ErrorSpec(-1001, "DISCONNECTED", "Internal error; unable to process your request. Please try again.", 500),
    ErrorSpec(-1002, "UNAUTHORIZED", "You are not authorized to execute this request.", 401),
    ErrorSpec(-1003, "TOO_MANY_REQUESTS",
              "Too much request weight used; current limit is %s request weight per %s. "
              "Please use WebSocket Streams for live updates to avoid polling the API.", 429),
    ErrorSpec(-1006, "UNEXPECTED_RESP",
              "An unexpected response was received from the message bus. Execution status unknown.", 500),
    ErrorSpec(-1007, "TIMEOUT",
              "Timeout waiting for response from backend server. Send status unknown; execution status unknown.", 500),
    ErrorSpec(-1008, "SERVER_BUSY",
              "Server is currently overloaded with other requests. Please try again in a few minutes.", 503),
    ErrorSpec(-1013, "INVALID_MESSAGE", "Filter failure: %s"),
    ErrorSpec(-1014, "UNKNOWN_ORDER_COMPOSITION", "Unsupported order combination."),
    ErrorSpec(-1015, "TOO_MANY_ORDERS", "Too many new orders; current limit is %s orders per %s.", 429),
    ErrorSpec(-1021, "INVALID_TIMESTAMP", "Timestamp for this request is outside of the recvWindow."),
    ErrorSpec(-1022, "INVALID_SIGNATURE", "Signature for this request is not valid."),
    ErrorSpec(-1100, "ILLEGAL_CHARS", "Illegal characters found in parameter '%s'; legal range is '%s'."),
    ErrorSpec(-1101, "TOO_MANY_PARAMETERS", "Duplicate values for a parameter detected."),
    ErrorSpec(-1102, "MANDATORY_PARAM_EMPTY_OR_MALFORMED",
              "Mandatory parameter '%s' was not sent, was empty/null, or malformed."),
    ErrorSpec(-1103, "UNKNOWN_PARAM", "An unknown parameter was sent."),
    ErrorSpec(-1104, "UNREAD_PARAMETERS", "Not all sent parameters were read; read '%s' parameter(s) but was sent '%s'."),
    ErrorSpec(-1105, "PARAM_EMPTY", "Parameter '%s' was empty."),
    ErrorSpec(-1106, "PARAM_NOT_REQUIRED", "Parameter '%s' sent when not required."),
    ErrorSpec(-1111, "BAD_PRECISION", "Parameter '%s' has too much precision."),
    ErrorSpec(-1112, "NO_DEPTH", "No orders on book for symbol."),
    ErrorSpec(-1114, "TIF_NOT_REQUIRED", "TimeInForce parameter sent when not required."),
    ErrorSpec(-1115, "INVALID_TIF", "Invalid timeInForce."),
    ErrorSpec(-1116, "INVALID_ORDER_TYPE", "Invalid orderType."),
    ErrorSpec(-1117, "INVALID_SIDE", "Invalid side."),
    ErrorSpec(-1118, "EMPTY_NEW_CL_ORD_ID", "New client order ID was empty."),
    ErrorSpec(-1119, "EMPTY_ORG_CL_ORD_ID", "Original client order ID was empty."),
    ErrorSpec(-1120, "BAD_INTERVAL", "Invalid interval."),
    ErrorSpec(-1121, "BAD_SYMBOL", "Invalid symbol."),
    ErrorSpec(-1125, "INVALID_LISTEN_KEY", "This listenKey does not exist."),
    ErrorSpec(-1127, "MORE_THAN_XX_HOURS", "Lookup interval is too big."),
    ErrorSpec(-1128, "OPTIONAL_PARAMS_BAD_COMBO", "Combination of optional parameters invalid."),
    ErrorSpec(-1130, "INVALID_PARAMETER", "Invalid data sent for a parameter."),
    ErrorSpec(-1131, "BAD_RECV_WINDOW", "recvWindow must be less than 60000"),
    ErrorSpec(-2010, "NEW_ORDER_REJECTED", "%s"),
    ErrorSpec(-2011, "CANCEL_REJECTED", "Unknown order sent."),
    ErrorSpec(-2013, "NO_SUCH_ORDER", "Order does not exist."),
    ErrorSpec(-2014, "BAD_API_KEY_FMT", "API-key format invalid.", 401),
    ErrorSpec(-2015, "REJECTED_MBX_KEY", "Invalid API-key, IP, or permissions for action.", 401),
    ErrorSpec(-2035, "SUBSCRIPTION_ACTIVE", "User Data Stream subscription already active."),
    ErrorSpec(-2036, "SUBSCRIPTION_INACTIVE", "User Data Stream subscription not active."),
    ErrorSpec(-2039, "CLIENT_ORDER_ID_INVALID", "Client order ID is not correct for this order ID."),
]

SPECS: dict[int, ErrorSpec] = {s.code: s for s in _SPECS}

# Engine messages carried by -2010 / -2011 (exact texts ccxt matches on).
INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
MARKET_CLOSED = "Market is closed."
UNKNOWN_ORDER = "Unknown order sent."
WOULD_TRIGGER = "Order would trigger immediately."
WOULD_MATCH = "Order would immediately match and take."
PRICE_QTY_ZERO = "Price * QTY is zero or less."
LIQUIDITY_LOW = "Order book liquidity is less than LOT_SIZE filter minimum quantity."
UNSUPPORTED_COMBINATION = "Unsupported order combination"


class BinanceError(Exception):
    """An error response as Binance sends it: ``{"code": code, "msg": msg}`` with ``http`` status.

    ``headers`` carries extra response headers (``Retry-After`` for 429/418).
    """

    def __init__(self, code: int, msg: str, http: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http = http if http is not None else (SPECS[code].http if code in SPECS else 400)
        self.headers = headers or {}

    def body(self) -> dict[str, int | str]:
        return {"code": self.code, "msg": self.msg}


def error(code: int, *args: object, http: int | None = None, headers: dict[str, str] | None = None) -> BinanceError:
    """Build a :class:`BinanceError` from the table, filling ``%s`` placeholders with ``args``."""
    spec = SPECS[code]
    msg = spec.msg % args if args else spec.msg
    return BinanceError(code, msg, http if http is not None else spec.http, headers)


def mandatory(name: str) -> BinanceError:
    return error(-1102, name)


def illegal_chars(name: str, legal: str = "^[A-Z0-9-_.]{1,20}$") -> BinanceError:
    return error(-1100, name, legal)


def filter_failure(filter_name: str) -> BinanceError:
    return error(-1013, filter_name)


def order_rejected(msg: str) -> BinanceError:
    return BinanceError(-2010, msg, 400)


def is_status_unknown(http_status: int, code: int | None) -> bool:
    """True when an order call's execution status is unknown (5xx or -1006/-1007/-1008)."""
    return http_status >= 500 or code in (-1006, -1007, -1008)


class IpBanned(Exception):
    """The IP is banned (HTTP 418) until ``until_ms`` (server epoch ms); the run must abort.
    Raised by the pacer (:mod:`letrade_perf.pacing`) for every call while the ban lasts."""

    def __init__(self, until_ms: float):
        super().__init__(f"IP banned (HTTP 418) until server time {int(until_ms)} ms")
        self.until_ms = until_ms

