"""The harness's own paced, signing REST client: calls no Locust user makes (exchangeInfo, clock
samples, the kill switch's cancels, the public API's :func:`~letrade_perf.api.call`). It only
sends; everything around the send is :mod:`letrade_perf.calls.path`'s."""
from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any, Mapping

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
        req = urllib.request.Request(self.base_url + target, data=body.encode() if body else None,
                                     method=ep.method, headers=headers)

        def exchange() -> CallResult:
            call.leave()
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
            if self.report and ctx.environment is not None:
                ctx.environment.events.request.fire(
                    request_type=ep.method, name=ep.name, response_time=res.elapsed_ms, response_length=len(raw),
                    response=None, context={"source": source},
                    exception=None if res.code in expected_codes else call_failure(res))
            return res

        return shielded(ctx.ledger, exchange) if order is not None else exchange()
