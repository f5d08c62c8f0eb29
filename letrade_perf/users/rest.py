"""Raw REST users on Locust's FastHttpUser (geventhttpclient).

:class:`BinanceRestUser` owns the one way a user calls the exchange: :meth:`~BinanceRestUser.call`
(pacing, signing, ``catch_response``, request name = endpoint template, header feedback,
429/418 handling, Binance error JSON → failure with its code). :class:`MarketDataUser` is the
REST market-data load: depth, paged klines with an integrity check, trades, tickers.
"""
from __future__ import annotations

import time
from typing import Any, Callable, ClassVar, Mapping

from locust import FastHttpUser, task
from locust.exception import StopUser

from ..binance.endpoints import Endpoint, endpoint
from ..binance.intervals import KLINE_INTERVALS_MS
from ..calls.path import Call, CallResult, Order, begin, call_failure
from ..calls.request import encode_request
from ..config.profile import RestMarketSettings
from ..harness.ledger import shielded
from ..pacing import IpBanned
from .arrival import INTENDED_CONTEXT, OpenModelMixin
from .base import Failure, HarnessUserMixin, weighted_tasks
from .integrity import check_depth, check_klines, check_object, check_trades


class BinanceRestUser(HarnessUserMixin, OpenModelMixin, FastHttpUser):
    """A FastHttpUser that talks Binance: use :meth:`call` for every request.

    Requests are named by their endpoint template (``GET /api/v3/depth``), never by URL. In the
    open model (:mod:`.arrival`) each request also carries its latency from its intended start.
    """

    abstract = True
    #: seconds to wait for a response before the request fails (status unknown for orders)
    network_timeout = 10.0
    #: seconds to wait for a TCP connection
    connection_timeout = 5.0
    #: never retry: a retried order could be placed twice
    max_retries = 0
    #: seconds this user has waited for rate budget (never part of a response time)
    paced_wait_s: float = 0.0

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None, *,
             validate: Callable[[Any], str | None] | None = None, order: Order | None = None) -> CallResult:
        """One paced (and, when the endpoint needs it, signed) request; never raises for HTTP errors.

        ``validate(data)`` may return an error text for a 200 response whose content is wrong;
        the request is then reported as a failure. ``order``: the request places it (the call
        path's safety gate — :class:`~letrade_perf.calls.path.SafetyRefusal` when refused — and
        ledger). Raises ``StopUser`` when the IP is banned.
        """
        ctx = self.ctx
        ep = endpoint(method, path)
        if params is None:
            params = {}
        elif None in params.values():
            params = {k: v for k, v in params.items() if v is not None}
        try:
            call = begin(ctx, ep, params, order=order)   # weight functions read ints or strings
        except IpBanned:
            raise StopUser() from None
        reservation = call.reservation
        if reservation is not None:
            self.paced_wait_s += reservation.waited_s
        target, body, headers = encode_request(ctx, ep, params)
        if order is None:
            return self._exchange(call, ep, target, body, headers, validate)
        # an order leaves and is booked in a greenlet stopping this user cannot cut short
        return shielded(ctx.ledger, lambda: self._exchange(call, ep, target, body, headers, validate))

    def _exchange(self, call: Call, ep: Endpoint, target: str, body: str | None, headers: dict[str, str],
                  validate: Callable[[Any], str | None] | None) -> CallResult:
        """Send the encoded request and take the answer through the call path (:meth:`call`)."""
        call.leave()
        late_ms = self.arrival_sent()     # open model: since the intended start (pacing included)
        with self.client.request(ep.method, target, name=ep.name, data=body, headers=headers,
                                 catch_response=True) as resp:
            meta = getattr(resp, "request_meta", None)
            elapsed_ms = meta.get("response_time", 0.0) if meta is not None else 0.0
            if late_ms is not None:       # the event fires when this block ends
                resp.request_meta["context"][INTENDED_CONTEXT] = late_ms + elapsed_ms
            status = resp.status_code or 0
            err = None
            if not status:
                err = f"no response: {type(resp.error).__name__}: {resp.error}" if getattr(resp, "error", None) \
                    else "no response"
            rheaders = resp.headers
            res = call.answer(status, rheaders if rheaders is not None else {},   # case-insensitive
                              resp.content if status else b"", err, elapsed_ms=elapsed_ms)
            if validate is not None and res.ok:
                problem = validate(res.data)
                if problem:
                    res.error = problem
            failure = call_failure(res)
            if failure is None:
                resp.success()
            else:
                resp.failure(failure)
        self.arrival_done()
        return res


# -- response checks ------------------------------------------------------------------------------

class MarketDataUser(BinanceRestUser):
    """REST market data: depth, klines (paged, integrity-checked), trades, 24h ticker, book ticker.

    Each instance works on one symbol (round-robin over the profile's symbols). Task weights
    come from ``settings.task_weights`` (the plugin sets :attr:`settings` from the profile).

    Events: the REST requests (``GET /api/v3/...``), and one ``integrity`` measurement per
    paged kline fetch (name ``GET /api/v3/klines <interval>``; response time = all pages;
    failure lists the problems found: gaps, duplicates, disorder, OHLC violations).
    """

    abstract = True
    letrade_kind: ClassVar[str] = "rest_market"
    #: the profile's ``users.rest_market`` (frozen): limits, kline paging, task weights
    settings: ClassVar[RestMarketSettings] = RestMarketSettings()

    def on_start(self) -> None:
        self.pick_symbol()
        self._interval_i = 0
        self.arrival_start()     # open model (settings.arrival_rate): waits for the first slot

    def on_stop(self) -> None:
        self.arrival_stop()

    @classmethod
    def set_task_weights(cls, weights: Mapping[str, int]) -> None:
        """Replace the task mix: ``{"depth": 4, "klines": 1, ...}`` (0 disables a task)."""
        weighted_tasks(cls, weights, "market-data")

    # -- tasks -------------------------------------------------------------------------------
    @task
    def depth(self) -> None:
        self.call("GET", "/api/v3/depth", {"symbol": self.symbol, "limit": self.settings.depth_limit}, validate=check_depth)

    @task
    def klines(self) -> None:
        intervals = [i for i in self.settings.kline_intervals if i in KLINE_INTERVALS_MS] or ["1m"]
        interval = intervals[self._interval_i % len(intervals)]
        self._interval_i += 1
        self.fetch_klines(interval)

    @task
    def trades(self) -> None:
        self.call("GET", "/api/v3/trades", {"symbol": self.symbol, "limit": self.settings.trades_limit}, validate=check_trades)

    @task
    def ticker(self) -> None:
        self.call("GET", "/api/v3/ticker/24hr", {"symbol": self.symbol},
                  validate=check_object("symbol", "lastPrice", "volume"))

    @task
    def book_ticker(self) -> None:
        self.call("GET", "/api/v3/ticker/bookTicker", {"symbol": self.symbol},
                  validate=check_object("symbol", "bidPrice", "askPrice"))

    # -- kline paging ------------------------------------------------------------------------
    def fetch_klines(self, interval: str) -> list:
        """``settings.kline_pages`` contiguous pages of ``settings.kline_limit`` candles ending now (walking back
        with ``endTime``), checked for integrity; the check is one ``integrity`` measurement."""
        end: int | None = None
        pages: list[list] = []
        t0 = time.perf_counter()
        limit = self.settings.kline_limit
        for _ in range(self.settings.kline_pages):
            params = {"symbol": self.symbol, "interval": interval, "limit": limit}
            if end is not None:
                params["endTime"] = end
            res = self.call("GET", "/api/v3/klines", params)
            if not res.ok or not isinstance(res.data, list):
                return []  # the request itself is the failure; nothing to check
            if not res.data:
                break
            pages.append(res.data)
            first = res.data[0][0] if isinstance(res.data[0], list) and res.data[0] else None
            if len(res.data) < limit or not isinstance(first, int):
                break
            end = first - 1  # the next page ends just before this one's first candle
        elapsed = (time.perf_counter() - t0) * 1000.0
        rows = [row for page in reversed(pages) for row in page]
        issues = check_klines(rows, interval)
        name = f"GET /api/v3/klines {interval}"
        if issues:
            # a stable message (kinds only) keeps Locust's error table small; details go in context
            kinds = sorted({i.kind for i in issues})
            self.fire("integrity", name, elapsed, length=len(rows),
                      exception=Failure(f"kline integrity: {', '.join(kinds)}"),
                      context={"issues": [str(i) for i in issues]})
        else:
            self.fire("integrity", name, elapsed, length=len(rows))
        return rows


MarketDataUser.set_task_weights({})   # the task mix of the settings' defaults
