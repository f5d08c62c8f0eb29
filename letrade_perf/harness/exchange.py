"""The harness's own paced, signing REST client: calls no Locust user makes (exchangeInfo, clock
samples, the kill switch's cancels, the public API's :func:`~letrade_perf.api.call` and
:func:`~letrade_perf.api.order`). It only sends; everything around the send is
:mod:`letrade_perf.calls.path`'s.

Connections are kept alive and reused (as every HTTP client a trading system uses does): a
response time never includes a TCP or TLS handshake a persistent client would not make, except
for the first call and after an idle pause."""
from __future__ import annotations

import http.client
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..binance.endpoints import endpoint
from ..calls.path import CallResult, Order, begin, call_failure
from ..calls.request import encode_request
from .ledger import shielded


class ExchangeClient:
    """A small paced, signing REST client for the harness's own calls (not a Locust user).

    Its calls are reported on the event bus like any user's (``request_type`` = HTTP method,
    ``name`` = endpoint template, ``context["source"]``: ``harness``, or the caller's) when
    ``report`` is true, so kill-switch cancels show up in the stats.
    """

    def __init__(self, ctx, base_url: str, timeout_s: float = 10.0, report: bool = True):
        self.ctx = ctx
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.report = report
        self.connections = Connections(self.base_url)

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None, *, paced: bool = True,
             timeout: float | None = None, order: Order | None = None, source: str = "harness",
             abort_on_ban: bool = False, expected_codes: tuple[int, ...] = ()) -> CallResult:
        """One call of the endpoint ``method path``; never raises for HTTP errors.

        ``order``: the call places it (safety gate, ledger; :class:`~letrade_perf.calls.path.SafetyRefusal`
        when refused; sent and answered in a greenlet stopping the caller cannot cut —
        :func:`~letrade_perf.harness.ledger.shielded`). ``expected_codes``: Binance error codes
        the caller expects (the kill switch: the order is gone), not reported as failures.
        Raises :class:`~letrade_perf.pacing.pacer.IpBanned` while the IP is banned
        (``abort_on_ban``: and aborts the run — not for the kill switch's own calls).
        """
        ep = endpoint(method, path)
        params = dict(params or {})
        ctx = self.ctx
        call = begin(ctx, ep, {k: str(v) for k, v in params.items()}, paced=paced, abort_on_ban=abort_on_ban,
                     order=order)
        target, body, headers = encode_request(ctx, ep, params)
        data = body.encode() if body else None

        def exchange() -> CallResult:
            call.leave()
            raw = b""
            err = None
            try:
                status, hdrs, raw = self.connections.send(ep.method, target, data, headers,
                                                          timeout or self.timeout_s)
            except (OSError, ValueError, http.client.HTTPException) as e:
                from ..preflight import describe_network_error
                status, hdrs, err = 0, {}, f"no response: {describe_network_error(e)}"
            res = call.answer(status, hdrs, raw, err)
            if self.report and ctx.environment is not None:
                ctx.environment.events.request.fire(
                    request_type=ep.method, name=ep.name, response_time=res.elapsed_ms, response_length=len(raw),
                    response=None, context={"source": source},
                    exception=None if res.code in expected_codes else call_failure(res))
            return res

        return shielded(ctx.ledger, exchange) if order is not None else exchange()


#: A kept-alive connection idle longer than this is closed rather than reused (servers drop idle
#: connections after some seconds; a request on one they dropped would fail).
IDLE_S = 4.0
#: Idle connections kept per base URL.
MAX_IDLE = 16


class Connections:
    """Kept-alive HTTP(S) connections to one base URL (stdlib ``http.client``; cooperative under
    gevent), reused most-recent first. A GET that finds a reused connection closed by the server
    is retried once on a new one; nothing else is ever retried (an order could be placed twice)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self._idle: list[tuple[float, http.client.HTTPConnection]] = []

    def _take(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        now = time.monotonic()
        while self._idle:
            at, conn = self._idle.pop()
            if now - at < IDLE_S and conn.sock is not None:
                conn.timeout = timeout
                conn.sock.settimeout(timeout)
                return conn, True
            conn.close()
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout), False

    def send(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str],
             timeout: float) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` of one request; network errors raise."""
        conn, reused = self._take(timeout)
        try:
            conn.request(method, self.prefix + target, body=body, headers=dict(headers))
            resp = conn.getresponse()
            raw = resp.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            if not (reused and method == "GET"):
                raise
            return self.send(method, target, body, headers, timeout)   # the server dropped an idle one
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        elif len(self._idle) < MAX_IDLE:
            self._idle.append((time.monotonic(), conn))
        else:
            conn.close()
        return resp.status, dict(resp.getheaders()), raw

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()
