"""The one table of letrade-perf's metrics: what each is, how it is judged, what produces it.

Every name a criterion may use (``request``, ``ws_lag``, …) is a :class:`Metric` here. The
criteria grammar takes its names and aggregations from this table, the evaluation its units and
where each metric is read from, the profile check what produces it, and the README's metric table
is tested against it. A request type the table does not name (a user's own ``X``) is still a
metric: its samples, in ms, with tags ``name`` and ``status``.

Kinds: ``trend`` (a distribution: ``avg min max med p(N) count``), ``rate`` (ok ÷ all:
``rate``), ``counter`` (a count: ``count`` or ``rate`` per second of the run), ``request_type``
(the samples of one Locust request type: a trend, or ``rate`` = ok ÷ all).

``ws_connection`` is a rate of time, not of samples: connected ÷ wanted milliseconds, from the
recorder's ``ws_time{name, state}`` counters (its ``samples`` are the wanted milliseconds); its
events (``WSCONN``: connects, failed connects, disconnects) are ``ws_connection_events``, whose
recorder series keeps the name ``ws_connection`` (the InfluxDB ``request`` points the dashboards
query).

``reconciliation_unverified`` counts the samples of its own series (request type
``reconciliation_unverified``, fired by the pipeline with the reason as the failure), as
``clock_errors`` counts its ``request{status=clock}`` samples.

``uptime``'s wanted seconds are the seconds with API traffic plus the seconds a user of the
process spent wholly blocked by pacing (waiting for the weight/order budget or a 429 pause — not
a worker waiting for its first share): the run wanted the exchange then. Such a second is up only
if some API call was answered successfully in it.

``produced_by`` names the user kinds whose runs yield samples (``always``: every run, a counter
that is valid at 0; ``orders``: any user that places orders; ``api``: any user kind that calls the
exchange's REST or WebSocket API — a kind's settings class says so, ``calls_api``;
``arrival_rate``: a user kind that runs open-model load).

``request_intended`` is the open model's second figure of each REST and ccxt request: the time
from the request's intended start (its iteration's slot on the arrival schedule, or the end of the
iteration's previous request) to its answer, beside ``request``'s service time (send to answer).
``iterations`` and ``dropped_iterations`` are cumulative per-process gauges the recorder keeps
from the ``letrade_arrival`` event.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

TREND, RATE, COUNTER, REQUEST_TYPE = "trend", "rate", "counter", "request_type"
ALWAYS, ORDERS, API = "always", "orders", "api"
ARRIVAL = "arrival_rate"
"""Producer of the open-model metrics: a user kind with an ``arrival_rate``."""
_API_USERS = (API,)


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    unit: str
    tags: tuple[str, ...]
    what: str
    produced_by: tuple[str, ...]
    series: str | None = None
    """The recorder series it is read from (default: its own name)."""
    series_tags: tuple[tuple[str, str], ...] = ()
    """Tags fixed on that series (``fill_to_balance`` is ``userdata{name="fill_to_balance"}``)."""
    gauge: str | None = None
    """For counters read from the processes' cumulative gauges: the gauge's name."""
    in_sink: bool = True
    """Whether the InfluxDB sink writes its recorder series as a measurement of its own (slippage
    and fees are only judged and reported: the dashboards' schema has no measurement for them)."""

    @property
    def aggregations(self) -> tuple[str, ...]:
        """What the grammar accepts for it (``p`` stands for every ``p(N)``)."""
        return {TREND: ("avg", "min", "max", "med", "p", "count"), RATE: ("rate",),
                COUNTER: ("count", "rate"), REQUEST_TYPE: ("avg", "min", "max", "med", "p", "count", "rate")}[self.kind]


CATALOGUE: tuple[Metric, ...] = (
    Metric("request", TREND, "ms", ("type", "name", "status"),
           "REST, ccxt and WS API response times", _API_USERS),
    Metric("ws_lag", TREND, "ms", ("stream",), "clock-corrected event lag per stream", ("ws_streams",)),
    Metric("pipeline", TREND, "ms", ("name", "status"), "signal → order → fill → reconciled, per order",
           ("pipeline",)),
    Metric("fill_to_balance", TREND, "ms", ("status",), "FILLED executionReport → balance update",
           ("pipeline",), series="userdata", series_tags=(("name", "fill_to_balance"),)),
    Metric("slippage", TREND, "bps", ("symbol", "side"), "fill average vs decision price, positive = worse",
           ("pipeline",), in_sink=False),
    Metric("fees", TREND, "bps", ("symbol", "asset"), "fee value ÷ notional", ("pipeline",), in_sink=False),
    Metric("api_success", RATE, "ratio", ("type", "name", "status"),
           "successful REST / ccxt / WS API calls ÷ all", _API_USERS, series="request"),
    Metric("order_success", RATE, "ratio", ("outcome", "source"), "orders the exchange accepted ÷ orders sent",
           (ORDERS,)),
    Metric("ws_connection", RATE, "ratio", ("name",),
           "time each WS connection was connected ÷ time it was wanted (first connect → user stop; "
           "a reconnect gap is down time)", ("ws_streams", "pipeline"), series="ws_time", in_sink=False),
    Metric("ws_connection_events", RATE, "ratio", ("name", "status"),
           "connects ÷ (connects + failed connects + disconnects)", ("ws_streams", "pipeline"),
           series="ws_connection"),
    Metric("reconciliation", RATE, "ratio", ("name", "status"),
           "order and balance checks that matched ÷ checks performed (an unverified check is in neither)",
           ("pipeline",)),
    Metric("reconciliation_unverified", COUNTER, "count", ("name",),
           "order and balance checks that could not be performed: the order query still had no answer, "
           "a 5xx or a 429 after its retries, or the user-data stream reconnected during the order",
           ("pipeline",), in_sink=False),
    Metric("uptime", RATE, "ratio", (),
           "seconds with a successful API answer ÷ seconds the run wanted the exchange (with API traffic, "
           "or spent wholly blocked by pacing: a second spent only waiting is down)", _API_USERS),
    Metric("http_429", COUNTER, "count", (), "429 answers (the pacer's count)", (ALWAYS,), gauge="r429"),
    Metric("http_418", COUNTER, "count", (), "418 answers (the pacer's count)", (ALWAYS,), gauge="r418"),
    Metric("clock_errors", COUNTER, "count", ("type", "name"),
           "-1021 answers (timestamp outside recvWindow); the clock re-syncs at once", (ALWAYS,),
           series="request", series_tags=(("status", "clock"),)),
    Metric("user_errors", COUNTER, "count", (),
           "exceptions a user raised out of a task, on_start or on_stop", (ALWAYS,), gauge="user_errors"),
    Metric("userdata", REQUEST_TYPE, "ms", ("name", "status"), "user-data stream timings of the pipeline",
           ("pipeline",)),
    Metric("integrity", REQUEST_TYPE, "ms", ("name", "status"), "paged kline integrity checks", ("rest_market",)),
    Metric("fund_safety", RATE, "ratio", ("asset",),
           "assets whose end − start balance the run's own fills and fees explain exactly ÷ assets (at the end)",
           (ORDERS,), in_sink=False),
    Metric("portfolio_weight", TREND, "ratio", ("asset",),
           "an asset's value at the last price ÷ the portfolio's (the run's symbols' assets), one sample per "
           "asset and balance snapshot", (ORDERS,), in_sink=False),
    Metric("expected_rejection", RATE, "ratio", ("name", "status"),
           "error-path scenarios answered with the code they provoke ÷ scenarios sent (name = scenario)",
           ("error_paths",)),
    Metric("rejection_code", COUNTER, "count", ("name",),
           "error-path answers by Binance code (name = the code; `accepted`, `no answer` otherwise)",
           ("error_paths",)),
    Metric("error_path_excess", COUNTER, "count", ("name",),
           "error-path sends beyond a scenario's schedule (rate × elapsed + 1): a retry storm shows here",
           ("error_paths",)),
    Metric("generator_cpu", TREND, "%", ("process",),
           "the load generator process's CPU time ÷ wall time, % of one core, one sample a second",
           (ALWAYS,)),
    Metric("generator_rss_mb", TREND, "MB", ("process",),
           "the load generator process's resident set size, one sample a second", (ALWAYS,)),
    Metric("generator_loop_lag", TREND, "ms", ("process",),
           "how late a greenlet of the load generator process wakes after a fixed sleep (its scheduling "
           "delay, which every request of the process shares), one sample every 10 ms", (ALWAYS,)),
    Metric("request_intended", TREND, "ms", ("type", "name", "status"),
           "open model: REST and ccxt response times from each request's intended start (coordinated-omission "
           "corrected: the wait for a free user or for pacing included)", (ARRIVAL,), in_sink=False),
    Metric("iterations", COUNTER, "count", (), "open model: task iterations started on the arrival schedule",
           (ARRIVAL,), gauge="iterations"),
    Metric("dropped_iterations", COUNTER, "count", (),
           "open model: scheduled iterations dropped because no user of the kind was free within the slot",
           (ARRIVAL,), gauge="dropped_iterations"),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}


def names(kind: str) -> tuple[str, ...]:
    return tuple(m.name for m in CATALOGUE if m.kind == kind)


def unit(name: str) -> str:
    """The unit of a metric's values (ms for an uncatalogued request type)."""
    m = BY_NAME.get(name)
    return m.unit if m is not None else "ms"


def series_of(name: str, tags: tuple[tuple[str, str], ...]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The recorder series (name, tags) a selector of ``name`` with ``tags`` reads."""
    m = BY_NAME.get(name)
    if m is None:
        return name, tags
    fixed = dict(m.series_tags)
    return m.series or m.name, tuple((k, v) for k, v in tags if k not in fixed) + tuple(fixed.items())


def produced(name: str, active_kinds: Iterable[str], places_orders: bool) -> bool | None:
    """Whether a run whose active user kinds are ``active_kinds`` (plus ``api`` when one of them
    calls the exchange's API: ``UserMix.produces()``) yields samples of ``name`` (None: not a
    catalogued metric — a request type of the user's own code)."""
    m = BY_NAME.get(name)
    if m is None:
        return None
    kinds = set(active_kinds)
    return ALWAYS in m.produced_by or (ORDERS in m.produced_by and places_orders) or bool(kinds & set(m.produced_by))


__all__ = ["API", "ARRIVAL", "Metric", "CATALOGUE", "BY_NAME", "TREND", "RATE", "COUNTER", "REQUEST_TYPE", "names", "unit", "series_of", "produced"]
