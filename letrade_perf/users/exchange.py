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
import time
import urllib.error
import urllib.request
from typing import Any, Mapping

from ..binance.endpoints import Endpoint, endpoint
from ..binance.headers import API_KEY_HEADER
from ..binance.signing import encode_params
from .callpath import (  # noqa: F401 - re-exported: the call's outcome and its failures
    CLOCK_ERROR_CODE,
    DEFAULT_RETRY_AFTER_S,
    CallResult,
    ClientClockError,
    ExchangeCallError,
    begin,
    call_failure,
    classify,
    decode,
)

#: recvWindow sent on signed requests (ms); the clock offset keeps timestamps on server time.
RECV_WINDOW_MS = 10_000
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
        call = begin(self.ctx, ep, {k: str(v) for k, v in params.items()}, paced=paced, abort_on_ban=False)
        target, body, headers = encode_request(self.ctx, ep, params)
        req = urllib.request.Request(self.base_url + target, data=body.encode() if body else None,
                                     method=ep.method, headers=headers)
        call.restart_clock()
        raw = b""
        err = None
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout_s) as r:
                status, hdrs, raw = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, hdrs = e.code, dict(e.headers or {})
            try:
                raw = e.read()
            except OSError:
                raw = b""
        except (OSError, ValueError, http.client.HTTPException) as e:
            from ..preflight import describe_network_error
            status, hdrs, err = 0, {}, f"no response: {describe_network_error(e)}"
        res = call.answer(status, hdrs, raw, err)
        if self.report and self.ctx.environment is not None:
            self.ctx.environment.events.request.fire(
                request_type=ep.method, name=ep.name, response_time=res.elapsed_ms, response_length=len(raw),
                response=None, context={"source": "harness"}, exception=call_failure(res))
        return res
