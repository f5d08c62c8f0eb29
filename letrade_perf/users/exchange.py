"""What every REST call of the harness shares: the call result, pacing feedback, and a
process-level client for calls no Locust user makes (exchangeInfo, clock samples, the kill switch).

Rules every client follows (FastHttp users, ccxt users, the WebSocket API client, this one):

* reserve the failure cost of the endpoint with the process pacer *before* timing the request
  (waiting for budget is never response time) and settle the reservation with the outcome;
* feed every response's ``X-MBX-USED-WEIGHT-*`` / ``X-MBX-ORDER-COUNT-*`` headers back;
* 429 → :meth:`Pacer.on_429` with ``Retry-After`` (the whole process pauses);
  418 → :meth:`Pacer.on_418` and the run aborts (``ctx.abort``, exit code 3);
* ``-1021`` (timestamp outside recvWindow) → ``ctx.on_clock_error()`` re-syncs the clock at once,
  and the call is reported as a :class:`ClientClockError` — the client's clock, not the exchange,
  failed (``api_success`` leaves it out).
"""
from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..binance.endpoints import Endpoint, endpoint
from ..binance.errors import is_status_unknown
from ..binance.headers import API_KEY_HEADER, parse_retry_after
from ..binance.signing import encode_params

try:  # orjson (a ccxt dependency) parses 2-3× faster; the standard library otherwise
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

#: recvWindow sent on signed requests (ms); the clock offset keeps timestamps on server time.
RECV_WINDOW_MS = 10_000
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

    def failure(self) -> Exception:
        """The exception reported for this (failed) call: a :class:`ClientClockError` for ``-1021``."""
        if self.code == CLOCK_ERROR_CODE:
            return ClientClockError(self.describe())
        return ExchangeCallError(self.describe())

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


def classify(ep: Endpoint, res: CallResult) -> CallResult:
    """Set ``res.unknown`` for order-entry calls whose execution status cannot be known."""
    if ep.order_entry and not res.ok:
        res.unknown = res.status == 0 or is_status_unknown(res.status, res.code) or (
            res.status == 200 and res.error is not None)
    return res


def feedback(ctx, res: CallResult, reservation, sent_at_ms: float | None = None) -> None:
    """Pacing feedback for one response: headers, refunds, 429 pause, 418 abort."""
    pacer = ctx.pacer
    if res.headers:
        pacer.observe(res.headers, sent_at_ms=sent_at_ms,
                      orders=reservation is None or reservation.orders > 0)
    if reservation is not None:
        if res.ok:
            reservation.settle(True)
        elif res.unknown:
            reservation.settle(False, order_counted=True)
        else:
            reservation.settle(False)
    if res.code == CLOCK_ERROR_CODE:
        ctx.on_clock_error()
    if res.status == 429:
        ctx.on_429(parse_retry_after(res.headers) or DEFAULT_RETRY_AFTER_S)
    elif res.status == 418:
        ctx.on_418(parse_retry_after(res.headers) or DEFAULT_RETRY_AFTER_S)


def signed_params(ctx, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` plus ``timestamp`` on the estimated server clock and ``recvWindow``."""
    p = dict(params)
    p.setdefault("recvWindow", RECV_WINDOW_MS)
    p["timestamp"] = int(ctx.clock.server_now_ms()) if ctx.clock is not None else int(time.time() * 1000)
    return p


def encode_request(ctx, ep: Endpoint, params: Mapping[str, Any]) -> tuple[str, str | None, dict[str, str]]:
    """``(path_with_query, form_body, headers)`` for ``ep`` — signed when the endpoint needs it."""
    headers: dict[str, str] = {}
    creds = ctx.credentials
    if ep.needs_key:
        if creds is None:
            raise MissingCredentials(f"{ep.name} needs API credentials (none configured for env {ctx.env.name})")
        headers[API_KEY_HEADER] = creds.api_key
    if ep.signed:
        query = creds.signed_query(signed_params(ctx, params))
    else:
        query = _public_query(params)
    if ep.method in ("POST", "PUT") and query:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return ep.path, query, headers
    return (ep.path + "?" + query) if query else ep.path, None, headers


_QUERY_CACHE: dict[tuple, str] = {}
_QUERY_CACHE_MAX = 1024


def _public_query(params: Mapping[str, Any]) -> str:
    """URL-encoded unsigned parameters; the same few parameter sets repeat on every call of a
    load test, so their encodings are cached (bounded)."""
    try:
        key = tuple(params.items())
        q = _QUERY_CACHE.get(key)
    except TypeError:          # an unhashable value: encode every time
        return encode_params(params)
    if q is None:
        if len(_QUERY_CACHE) >= _QUERY_CACHE_MAX:
            _QUERY_CACHE.clear()
        q = _QUERY_CACHE[key] = encode_params(params)
    return q


class MissingCredentials(RuntimeError):
    """A private endpoint was called without API credentials."""


class ExchangeClient:
    """A small paced, signing REST client for the harness's own calls (not a Locust user).

    Its calls are reported on the event bus like any user's (``request_type`` = HTTP method,
    ``name`` = endpoint template) when ``report`` is true, so kill-switch cancels show up in
    the stats.
    """

    def __init__(self, ctx, base_url: str, timeout_s: float = 10.0, report: bool = True):
        self.ctx = ctx
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.report = report

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None, *, paced: bool = True,
             timeout: float | None = None) -> CallResult:
        """One call of the endpoint ``method path``; never raises for HTTP errors.

        Raises :class:`~letrade_perf.pacing.pacer.IpBanned` while the IP is banned.
        """
        ep = endpoint(method, path)
        params = dict(params or {})
        reservation = self.ctx.pacer.acquire_for(ep, {k: str(v) for k, v in params.items()}) \
            if paced and self.ctx.pacer is not None else None
        target, body, headers = encode_request(self.ctx, ep, params)
        sent_at = self.ctx.pacer.now_ms() if self.ctx.pacer is not None else None
        req = urllib.request.Request(self.base_url + target, data=body.encode() if body else None,
                                     method=ep.method, headers=headers)
        t0 = time.perf_counter()
        raw = b""
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout_s) as r:
                status, hdrs, raw = r.status, dict(r.headers), r.read()
            err = None
        except urllib.error.HTTPError as e:
            status, hdrs = e.code, dict(e.headers or {})
            try:
                raw = e.read()
            except OSError:
                raw = b""
            err = None
        except (OSError, ValueError, http.client.HTTPException) as e:
            from ..preflight import describe_network_error
            status, hdrs, err = 0, {}, f"no response: {describe_network_error(e)}"
        elapsed = (time.perf_counter() - t0) * 1000.0
        data, code, msg, derr = decode(status, raw) if status else (None, None, None, None)
        res = classify(ep, CallResult(status, data, code, msg, hdrs, elapsed, err or derr))
        if self.ctx.pacer is not None:
            feedback(self.ctx, res, reservation, sent_at)
        if self.report and self.ctx.environment is not None:
            self.ctx.environment.events.request.fire(
                request_type=ep.method, name=ep.name, response_time=elapsed, response_length=len(raw),
                response=None, context={"source": "harness"},
                exception=None if res.ok else res.failure())
        return res


class ExchangeCallError(Exception):
    """A failed exchange call as reported to Locust (the message carries status and code)."""


class ClientClockError(ExchangeCallError):
    """A ``-1021`` answer: the request's timestamp was outside recvWindow — a client-clock error,
    not an exchange failure (the recorder tags it ``status=clock``; ``api_success`` leaves it out)."""

    client_clock_error = True
