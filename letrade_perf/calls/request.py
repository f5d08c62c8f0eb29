"""How every REST request of the harness is encoded: parameters, signature, API key.

Rules every client follows (FastHttp users, the WebSocket API client, the harness's own client):
signed requests carry ``timestamp`` on the run's estimated server clock and ``recvWindow``; the
API key travels in its header, never in the query; unsigned parameter sets (the same few repeat
on every call of a load test) are encoded once.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from ..binance.endpoints import Endpoint
from ..binance.headers import API_KEY_HEADER
from ..binance.signing import encode_params

#: recvWindow sent on signed requests (ms); the clock offset keeps timestamps on server time.
RECV_WINDOW_MS = 10_000


def signed_params(ctx: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` plus ``timestamp`` on the estimated server clock and ``recvWindow``."""
    p = dict(params)
    p.setdefault("recvWindow", RECV_WINDOW_MS)
    p["timestamp"] = int(ctx.clock.server_now_ms()) if ctx.clock is not None else int(time.time() * 1000)
    return p


def encode_request(ctx: Any, ep: Endpoint, params: Mapping[str, Any]) -> tuple[str, str | None, dict[str, str]]:
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


_QUERY_CACHE: dict[tuple[Any, ...], str] = {}
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
