"""Load profiles: the schema (frozen dataclasses) and the loader.

A profile is a YAML file: who (the user mix) does what (symbols, stages), against which
environment, under which pacing and safety limits, judged by which criteria. Bundled profiles
are package data (``letrade_perf/profiles``, linked as ``profiles/`` in a source checkout);
``load_profile`` also takes a path to any YAML file.

Durations (``stages[].duration``, ``*_s`` fields) are numbers of seconds or strings such as
``30s``, ``5m``, ``1h30m``, ``24h``. Unknown keys and bad values raise :class:`ConfigError`
naming the file, the key path and, for a file, the line (``users.pipeline.strategy.fast: expected an
integer, got 'x' (line 12)``).

Numbers are bounded: every number is finite (no ``.nan`` / ``.inf``), integers fit in 64 bits, a
stage has at most :data:`MAX_STAGE_USERS` users started at most :data:`MAX_SPAWN_RATE` per second,
durations are at most 365 days. The YAML itself must be UTF-8, without duplicate keys, nested at
most 32 levels (see :func:`letrade_perf.core.strict.read_yaml`).
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal
from urllib.parse import urlsplit

from ..binance.intervals import KLINE_INTERVALS
from ..binance.streams import parse_stream
from ..core import strict
from ..core.errors import ConfigError, FieldError
from ..criteria.grammar import Criterion, parse_criteria

ProfileError = ConfigError

_SYMBOL = re.compile(r"^[A-Z0-9]+$")

#: Most users one stage may hold (all kinds together); a fixed bound, not a profile setting.
MAX_STAGE_USERS = 100_000
#: Fastest spawn rate (users started or stopped per second).
MAX_SPAWN_RATE = 10_000.0
#: Largest task weight in ``task_weights`` (Locust repeats a task this many times in a list).
MAX_TASK_WEIGHT = 1_000
#: Most klines pages one klines task fetches.
MAX_KLINE_PAGES = 1_000
#: Fastest open-model arrival rate of one user kind (task iterations per second).
MAX_ARRIVAL_RATE = 100_000.0

_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_RATE_UNIT_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0,
                "hour": 3600.0}


def _duration_field(default: float, **kw: Any) -> Any:
    return field(default=default, metadata={"parse": strict.parse_duration, **kw})


def _weights(defaults: dict[str, int]) -> Callable[[Any, str, str], dict[str, int]]:
    """Parser for a ``task_weights`` mapping: known task names, integers 0..MAX_TASK_WEIGHT, merged over the defaults."""
    def parse(value: Any, kp: str, source: str) -> dict[str, int]:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {kp}: expected a mapping of task name to weight")
        out = dict(defaults)
        for name, w in value.items():
            if name not in defaults:
                raise ConfigError(f"{source}: unknown key '{kp}.{name}' (tasks: {', '.join(defaults)})")
            if isinstance(w, bool) or not isinstance(w, int) or w < 0:
                raise ConfigError(f"{source}: {kp}.{name}: expected an integer >= 0, got {strict.show(w)}")
            if w > MAX_TASK_WEIGHT:
                raise ConfigError(f"{source}: {kp}.{name}: must be at most {MAX_TASK_WEIGHT}, got {strict.show(w)}")
            out[name] = w
        if not any(out.values()):
            raise ConfigError(f"{source}: {kp}: at least one task needs a weight > 0")
        return out
    return parse


def parse_rate(value: Any, kp: str, source: str) -> float | None:
    """An arrival rate in iterations per second: a number (per second) or ``50/s``, ``600/m``,
    ``2/h`` (also ``/sec``, ``/min``, ``/hour``); null = none (the closed model)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _RATE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(f"{source}: {kp}: expected a rate such as 50/s, 600/m or 2/h (or a number per second), "
                          f"got {strict.show(value)}")
    return float(m.group(1)) / _RATE_UNIT_S[m.group(2)]


def _check_wait(s: "UserSettings") -> None:
    if s.weight < 1:
        raise FieldError("weight", f"must be >= 1, got {s.weight}")
    if s.weight > MAX_STAGE_USERS:
        raise FieldError("weight", f"must be at most {MAX_STAGE_USERS}, got {s.weight}")
    if s.fixed_count < 0:
        raise FieldError("fixed_count", f"must be >= 0, got {s.fixed_count}")
    if s.fixed_count > MAX_STAGE_USERS:
        raise FieldError("fixed_count", f"must be at most {MAX_STAGE_USERS} (users per stage), got {s.fixed_count}")
    if s.wait_min_s < 0:
        raise FieldError("wait_min_s", f"must be >= 0, got {s.wait_min_s}")
    if s.wait_max_s < s.wait_min_s:
        raise FieldError("wait_max_s", f"must be >= wait_min_s ({s.wait_min_s}), got {s.wait_max_s}")
    if s.arrival_rate is not None:
        if not s.open_model:
            raise FieldError("arrival_rate", "open-model load (an arrival rate) is supported by the rest_market "
                                             "and ccxt kinds only; remove it here")
        if not 0.0 < s.arrival_rate <= MAX_ARRIVAL_RATE:
            raise FieldError("arrival_rate", f"must be > 0 and at most {MAX_ARRIVAL_RATE:g}/s, "
                                             f"got {s.arrival_rate:g}/s")


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One load stage: hold ``users`` users (reached at ``spawn_rate`` per second) for ``duration_s``."""

    duration_s: float = field(metadata={"parse": strict.parse_duration, "key": "duration"})
    """Length of the stage; YAML key ``duration`` (``30s``, ``5m``, ``1h30m`` or seconds)."""
    users: int
    """Total number of users during the stage (all kinds together)."""
    spawn_rate: float
    """Users started (or stopped) per second when moving to this stage."""

    def __post_init__(self) -> None:
        if self.duration_s <= 0:
            raise FieldError("duration", f"must be > 0, got {self.duration_s}")
        if self.users < 0:
            raise FieldError("users", f"must be >= 0, got {self.users}")
        if self.users > MAX_STAGE_USERS:
            raise FieldError("users", f"must be at most {MAX_STAGE_USERS} per stage, got {self.users}")
        if self.spawn_rate <= 0:
            raise FieldError("spawn_rate", f"must be > 0, got {self.spawn_rate}")
        if self.spawn_rate > MAX_SPAWN_RATE:
            raise FieldError("spawn_rate", f"must be at most {MAX_SPAWN_RATE:g} users per second, got {self.spawn_rate:g}")


@dataclass(frozen=True)
class UserSettings:
    """What every user kind shares: its share of the users and its pause between tasks."""

    calls_api: ClassVar[bool] = True
    """The kind calls the exchange's REST or WebSocket API (the ``api`` producer of the metric catalogue)."""
    open_model: ClassVar[bool] = False
    """The kind may run open-model load (``arrival_rate``)."""

    weight: int = 1
    """Relative share of the stage's users (Locust ``weight``)."""
    fixed_count: int = 0
    """Exactly this many users of the kind (Locust ``fixed_count``; 0 = use ``weight``)."""
    wait_min_s: float = _duration_field(0.5)
    """Shortest pause between two tasks of one user."""
    wait_max_s: float = _duration_field(1.5)
    """Longest pause between two tasks of one user."""
    arrival_rate: float | None = field(default=None, metadata={"parse": parse_rate})
    """Open-model load (``rest_market`` and ``ccxt`` only): task iterations per second for the kind
    across the process's users of the kind (``50/s``, ``600/m``, ``2/h`` or a number per second; a
    distributed run's worker serves its pacing share of it, 1/N of the live workers). Each iteration
    has an intended start on a fixed schedule; latency is measured from it too
    (``request_intended``), and iterations no user was free for are dropped
    (``dropped_iterations``). The waits are not used then. null: the closed model (the waits)."""

    def __post_init__(self) -> None:
        _check_wait(self)


REST_MARKET_TASKS = {"depth": 4, "klines": 1, "trades": 2, "ticker": 3, "book_ticker": 3}
CCXT_TASKS = {"order_book": 4, "ohlcv": 1, "trades": 2, "ticker": 3, "balance": 1, "order": 1}


@dataclass(frozen=True)
class RestMarketSettings(UserSettings):
    """Raw REST market-data user (Locust FastHttpUser): depth, klines (paged), trades, tickers."""

    open_model: ClassVar[bool] = True

    depth_limit: int = 5
    """``limit`` of ``GET /api/v3/depth`` (its weight follows: 1–100 ⇒ 5, …, 1001–5000 ⇒ 250)."""
    kline_intervals: tuple[str, ...] = ("1m", "5m", "1h")
    """Kline intervals the user picks from."""
    kline_limit: int = 1000
    """``limit`` of each klines page (max 1000)."""
    kline_pages: int = 2
    """Pages fetched per klines task (walking back with ``endTime``)."""
    trades_limit: int = 100
    """``limit`` of ``GET /api/v3/trades`` (max 1000)."""
    task_weights: dict[str, int] = field(default_factory=lambda: dict(REST_MARKET_TASKS),
                                         metadata={"parse": _weights(REST_MARKET_TASKS)})
    """Relative task frequencies; tasks: depth, klines, trades, ticker, book_ticker (given keys override)."""

    def __post_init__(self) -> None:
        _check_wait(self)
        if not 1 <= self.depth_limit <= 5000:
            raise FieldError("depth_limit", f"must be within 1..5000, got {self.depth_limit}")
        if not self.kline_intervals:
            raise FieldError("kline_intervals", "needs at least one interval")
        for i, iv in enumerate(self.kline_intervals):
            if iv not in KLINE_INTERVALS:
                raise FieldError(f"kline_intervals[{i}]", f"unknown interval {iv!r} (one of {' '.join(KLINE_INTERVALS)})")
        if not 1 <= self.kline_limit <= 1000:
            raise FieldError("kline_limit", f"must be within 1..1000, got {self.kline_limit}")
        if self.kline_pages < 1:
            raise FieldError("kline_pages", f"must be >= 1, got {self.kline_pages}")
        if self.kline_pages > MAX_KLINE_PAGES:
            raise FieldError("kline_pages", f"must be at most {MAX_KLINE_PAGES}, got {self.kline_pages}")
        if not 1 <= self.trades_limit <= 1000:
            raise FieldError("trades_limit", f"must be within 1..1000, got {self.trades_limit}")


@dataclass(frozen=True)
class CcxtSettings(UserSettings):
    """The unmodified ccxt ``binance`` client: what a trading system built on ccxt sees."""

    open_model: ClassVar[bool] = True

    wait_min_s: float = _duration_field(1.0)
    """Shortest pause between two tasks of one user."""
    wait_max_s: float = _duration_field(2.0)
    """Longest pause between two tasks of one user."""
    orders: bool = False
    """Also place small orders (a limit order far from the market and its cancel); needs credentials."""
    order_notional: float = 12.0
    """Quote-asset value of each order (must not exceed ``safety.max_order_notional``)."""
    task_weights: dict[str, int] = field(default_factory=lambda: dict(CCXT_TASKS),
                                         metadata={"parse": _weights(CCXT_TASKS)})
    """Relative task frequencies; tasks: order_book, ohlcv, trades, ticker, balance, order (``order`` only
    runs with ``orders: true``)."""

    def __post_init__(self) -> None:
        _check_wait(self)
        if self.order_notional <= 0:
            raise FieldError("order_notional", f"must be > 0, got {self.order_notional}")


@dataclass(frozen=True)
class WsStreamSettings(UserSettings):
    """Market-stream user (websocket-client): subscribes and measures lag of every event."""

    calls_api: ClassVar[bool] = False

    wait_min_s: float = _duration_field(0.0)
    """Pause between connection checks (the receive loop itself never waits)."""
    wait_max_s: float = _duration_field(0.0)
    """Pause between connection checks (the receive loop itself never waits)."""
    streams: tuple[str, ...] = ("{symbol}@trade", "{symbol}@aggTrade", "{symbol}@depth@100ms", "{symbol}@kline_1m")
    """Stream name templates; ``{symbol}`` becomes each profile symbol in lower case."""
    reconnect_min_s: float = _duration_field(0.5)
    """First reconnect delay after a disconnect (doubles up to ``reconnect_max_s``)."""
    reconnect_max_s: float = _duration_field(10.0)
    """Longest reconnect delay."""
    clock_refresh_s: float = _duration_field(30.0)
    """How often the server clock offset is re-measured (``GET /api/v3/time``)."""

    def __post_init__(self) -> None:
        _check_wait(self)
        if not self.streams:
            raise FieldError("streams", "needs at least one stream")
        for i, template in enumerate(self.streams):
            try:
                parse_stream(template.replace("{symbol}", "btcusdt"))
            except ValueError as e:
                raise FieldError(f"streams[{i}]", f"{e} (templates look like '{{symbol}}@trade')") from None
        if self.reconnect_min_s <= 0 or self.reconnect_max_s < self.reconnect_min_s:
            raise FieldError("reconnect_max_s", "needs 0 < reconnect_min_s <= reconnect_max_s")
        if self.clock_refresh_s <= 0:
            raise FieldError("clock_refresh_s", f"must be > 0, got {self.clock_refresh_s}")


@dataclass(frozen=True)
class StrategySettings:
    """The trading signal of a pipeline user."""

    kind: Literal["ma_crossover"] = "ma_crossover"
    """Strategy kind: ``ma_crossover`` (fast/slow simple moving averages of kline closes)."""
    interval: str = "1m"
    """Kline interval the averages are computed on."""
    fast: int = 5
    """Fast moving-average length (klines)."""
    slow: int = 20
    """Slow moving-average length (klines); greater than ``fast``."""
    force_every_s: float = _duration_field(2.0)
    """Emit an alternating buy/sell signal at least this often, so tests trade deterministically
    (0 = only real crossovers)."""
    mode: Literal["signal", "round_trip"] = "signal"
    """``signal``: trade on the signal for the whole run. ``round_trip``: one BUY of the
    pipeline's ``notional`` at once, then one SELL of exactly the base quantity that buy
    executed, then no more orders (a deterministic canary: it never starts with a sell it
    cannot cover); the averages are not used."""

    def __post_init__(self) -> None:
        if self.interval not in KLINE_INTERVALS:
            raise FieldError("interval", f"unknown interval {self.interval!r} (one of {' '.join(KLINE_INTERVALS)})")
        if self.fast < 1:
            raise FieldError("fast", f"must be >= 1, got {self.fast}")
        if self.slow <= self.fast:
            raise FieldError("slow", f"must be greater than fast ({self.fast}), got {self.slow}")


@dataclass(frozen=True)
class PipelineSettings(UserSettings):
    """A strategy instance: market data → signal → order → fill → balance, timed end to end."""

    order_via: Literal["rest", "ws_api"] = "rest"
    """Where orders go: ``rest`` (``POST /api/v3/order``) or ``ws_api`` (``order.place``)."""
    strategy: StrategySettings = field(default_factory=StrategySettings)
    """The signal source."""
    notional: float = 12.0
    """Quote-asset value of each order (must not exceed ``safety.max_order_notional``)."""
    order_type: Literal["MARKET", "LIMIT_IOC"] = "MARKET"
    """``MARKET`` or an immediate-or-cancel ``LIMIT`` at the touch."""
    max_orders: int = 0
    """Stop placing orders after this many per user (0 = unbounded)."""
    reconcile: bool = True
    """Check every fill against the account balance and the user-data stream."""

    def __post_init__(self) -> None:
        _check_wait(self)
        if self.notional <= 0:
            raise FieldError("notional", f"must be > 0, got {self.notional}")
        if self.max_orders < 0:
            raise FieldError("max_orders", f"must be >= 0, got {self.max_orders}")


_FACTORY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class OwnCodeSettings(UserSettings):
    """Your own trading code as a user kind, no locustfile needed (``letrade_perf.users.own``)."""

    factory: str = ""
    """``module:callable`` that builds your system, e.g. ``trading_system.factory:build``. It is
    called with the harness's guarded asyncio ccxt binance (and ``symbol="BTC/USDT"`` if it takes
    a ``symbol``) and returns — or resolves to — an object with an async ``step()`` and optional
    async ``start()`` / ``stop()``."""
    path: str = ""
    """A directory put first on ``sys.path`` to import ``factory`` from (relative to the profile file)."""
    orders: bool = True
    """Whether the code places orders (the ``order_success`` default criterion applies)."""

    def __post_init__(self) -> None:
        _check_wait(self)
        if not _FACTORY.match(self.factory):
            raise FieldError("factory", f"expected module:callable (e.g. mypkg.engine:build), got {self.factory!r}")


#: The error-path scenarios (:mod:`letrade_perf.users.errorpaths`), in the order they first go out.
ERROR_PATH_SCENARIOS = ("lot_size", "price_filter", "notional", "tick_size", "unknown_symbol", "insufficient_balance",
                        "cancel_unknown", "duplicate_cid", "stale_timestamp", "bad_signature")
#: Fastest rate of one error-path scenario (sends per second and process).
MAX_ERROR_PATH_RATE = 10.0


@dataclass(frozen=True)
class ErrorPathSettings(UserSettings):
    """Requests the exchange must reject, each at its own rate (sends per second per process; 0 =
    off): filter violations, an unknown symbol, insufficient balance, a cancel of an unknown order,
    a duplicate client order id, a stale timestamp, a bad signature. Every answer is classified by
    its code (``expected_rejection``); none counts against ``order_success``, ``api_success`` or
    ``uptime``. Orders are priced so they cannot trade even if accepted (see the README)."""

    fixed_count: int = 1
    """Users of the kind (one per process sends every scenario at its rate; more users share the
    same schedule, they do not multiply it)."""
    wait_min_s: float = _duration_field(0.0)
    """Pause between two sends of one user (the schedule paces the scenarios)."""
    wait_max_s: float = _duration_field(0.0)
    """Pause between two sends of one user (the schedule paces the scenarios)."""
    lot_size: float = 0.2
    """LOT_SIZE violation (quantity off the step size, or above maxQty): ``-1013``."""
    price_filter: float = 0.2
    """PRICE_FILTER violation (a SELL above maxPrice, or a BUY below minPrice): ``-1013``."""
    notional: float = 0.2
    """NOTIONAL violation (price × quantity below minNotional): ``-1013``."""
    tick_size: float = 0.2
    """Price off the tick size (PRICE_FILTER): ``-1013``."""
    unknown_symbol: float = 0.2
    """An order (``POST /api/v3/order/test``) on a symbol the exchange does not list: ``-1121``."""
    insufficient_balance: float = 0.2
    """A quantity far beyond the account's balance: ``-2010``."""
    cancel_unknown: float = 0.2
    """A cancel of an order that does not exist: ``-2011``."""
    duplicate_cid: float = 0.2
    """A new order reusing the client order id of an open order (a resting anchor order placed far
    from the market and cancelled right after): ``-2010`` ``Duplicate order sent.``"""
    stale_timestamp: float = 0.2
    """An order signed with a timestamp older than recvWindow: ``-1021`` (expected: no clock
    re-sync, not a ``clock_errors`` sample)."""
    bad_signature: float = 0.2
    """An order signed with a wrong secret: ``-1022``."""
    price_offset_bps: int = 200
    """How far below the best bid (above the best ask for a SELL) the scenarios' orders are priced,
    in basis points: an order the exchange accepted by mistake cannot trade (it is IOC)."""
    anchor_offset_bps: int = 2000
    """How far below the best bid the duplicate-id scenario's resting anchor order is priced (bps)."""

    def __post_init__(self) -> None:
        _check_wait(self)
        for name in ERROR_PATH_SCENARIOS:
            v = getattr(self, name)
            if not 0.0 <= v <= MAX_ERROR_PATH_RATE:
                raise FieldError(name, f"must be within 0..{MAX_ERROR_PATH_RATE:g} sends per second, got {v}")
        if not any(getattr(self, name) for name in ERROR_PATH_SCENARIOS):
            raise FieldError("", f"at least one scenario needs a rate > 0 ({', '.join(ERROR_PATH_SCENARIOS)})")
        for name in ("price_offset_bps", "anchor_offset_bps"):
            if not 1 <= getattr(self, name) <= 5000:
                raise FieldError(name, f"must be within 1..5000 bps, got {getattr(self, name)}")

    def rates(self) -> dict[str, float]:
        """Each scenario's rate (sends per second and process), the ones switched off left out."""
        return {name: float(getattr(self, name)) for name in ERROR_PATH_SCENARIOS if getattr(self, name) > 0}


@dataclass(frozen=True)
class UserMix:
    """Which user kinds run (a missing or null section = not run; ``{}`` = run with defaults)."""

    rest_market: RestMarketSettings | None = None
    """Raw REST market data."""
    ccxt: CcxtSettings | None = None
    """ccxt market data (and optional orders)."""
    ws_streams: WsStreamSettings | None = None
    """WebSocket market streams and lag."""
    pipeline: PipelineSettings | None = None
    """Trading pipeline (strategy instances)."""
    own: OwnCodeSettings | None = None
    """Your own trading code, built by a factory the profile names."""
    error_paths: ErrorPathSettings | None = None
    """Requests the exchange must reject (error-path scenarios), each at its own rate."""

    def __post_init__(self) -> None:
        if not self.active():
            raise FieldError("", f"at least one of {', '.join(self.kinds())} is needed")

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """Every user kind a profile may name (one field each; its type is the kind's settings)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def active(self) -> dict[str, UserSettings]:
        """The configured user kinds by name."""
        return {name: s for name in self.kinds() if (s := getattr(self, name)) is not None}

    def produces(self) -> set[str]:
        """What the run's users produce samples as (the metric catalogue's ``produced_by``): the
        active kinds' names, ``api`` when one of them calls the exchange's API, and ``arrival_rate``
        when one of them runs open-model load."""
        active = self.active()
        return set(active) | ({"api"} if any(s.calls_api for s in active.values()) else set()) \
            | ({"arrival_rate"} if any(s.arrival_rate is not None for s in active.values()) else set())

    @property
    def places_orders(self) -> bool:
        """Whether any user places orders."""
        # the error paths' only orders that may be accepted are the duplicate-id scenario's anchors
        return self.pipeline is not None or bool(self.ccxt and self.ccxt.orders) or bool(self.own and self.own.orders) \
            or bool(self.error_paths and self.error_paths.duplicate_cid > 0)


@dataclass(frozen=True)
class PacingSettings:
    """How much of the exchange's limits the pacer may use (the rest is headroom)."""

    weight_fraction: float = 0.8
    """Fraction of REQUEST_WEIGHT per minute, within (0, 1]."""
    orders_fraction: float = 0.8
    """Fraction of the ORDERS limits (per 10 s and per day), within (0, 1]."""
    smoothing: Literal["bucket", "window"] = "bucket"
    """``bucket`` (the default): spread each budget over its window — a token bucket at budget ÷
    window (weight per minute ÷ 60 a second, orders per 10 s ÷ 10) on top of the exchange's fixed
    windows, for the windows of up to a minute (the daily order count stays a fixed window);
    ``window``: the exchange's fixed windows alone, so a window's whole budget may go in its first
    second (the behaviour before smoothing)."""
    burst_s: float = _duration_field(5.0)
    """The token bucket's size in seconds of its rate (``5s``: at weight 4 800 a minute, 400 weight
    at once); at most 60 s, 0 spaces requests evenly. Ignored with ``smoothing: window``."""

    def __post_init__(self) -> None:
        for name in ("weight_fraction", "orders_fraction"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise FieldError(name, f"must be within (0, 1], got {v}")
        if self.smoothing not in ("bucket", "window"):
            raise FieldError("smoothing", f"must be bucket or window, got {self.smoothing!r}")
        if not 0.0 <= self.burst_s <= 60.0:
            raise FieldError("burst_s", f"must be within 0 .. 60 s, got {self.burst_s}")


@dataclass(frozen=True)
class SafetySettings:
    """Guards for real money (enforced by the run and the order path)."""

    allow_production_orders: bool = False
    """Production orders also need ``--allow-production-orders`` on the command line."""
    max_order_notional: float = 20.0
    """Largest quote-asset value of one order."""
    max_run_notional: float = 200.0
    """Largest total quote-asset value of all orders of a run."""
    symbol_allowlist: tuple[str, ...] = ()
    """Symbols orders may be placed on (empty = the profile's symbols)."""

    def __post_init__(self) -> None:
        for name in ("max_order_notional", "max_run_notional"):
            if getattr(self, name) <= 0:
                raise FieldError(name, f"must be > 0, got {getattr(self, name)}")
        for i, s in enumerate(self.symbol_allowlist):
            if not _SYMBOL.match(s):
                raise FieldError(f"symbol_allowlist[{i}]", f"must be upper-case letters and digits, got {s!r}")


@dataclass(frozen=True)
class TargetSettings:
    """Where the run sends its requests, instead of the environment's standard URLs (for a
    simulator elsewhere, a mirror or a proxy). ``letrade-perf run --host/--rest-url/--stream-url/
    --ws-api-url`` override these (a ``--host`` replaces the whole block)."""

    host: str | None = None
    """Base URL from which REST, streams and WebSocket API derive (``http://h:p`` → ``ws://h:p``,
    ``ws://h:p/ws-api/v3``); with env ``sim`` no embedded simulator is started."""
    rest_url: str | None = None
    """REST base URL on its own (``https://mirror.example``)."""
    stream_url: str | None = None
    """Market-stream base URL on its own (``wss://stream.mirror.example``)."""
    ws_api_url: str | None = None
    """WebSocket API URL on its own (``wss://ws-api.mirror.example/ws-api/v3``)."""

    def __post_init__(self) -> None:
        from .environments import normalise_rest, normalise_streams, normalise_ws_api

        for name, check in (("host", normalise_rest), ("rest_url", normalise_rest),
                            ("stream_url", normalise_streams), ("ws_api_url", normalise_ws_api)):
            value = getattr(self, name)
            if value is not None:
                try:
                    check(value, name)
                except ConfigError as e:
                    raise FieldError(name, str(e).split(": ", 1)[-1]) from None


@dataclass(frozen=True)
class SinkSettings:
    """InfluxDB output (written by the metrics sink)."""

    influx_url: str | None = None
    """InfluxDB base URL (``http://127.0.0.1:8086``); None = no sink."""
    org: str = "letrade"
    """InfluxDB organisation (2.x/3.x; ignored by 1.x)."""
    bucket: str = "letrade_perf"
    """Bucket (2.x/3.x) or database (1.x)."""
    token_env: str = "LETRADE_INFLUX_TOKEN"
    """Environment variable holding the token (never put tokens in a profile)."""
    mode: Literal["aggregate", "raw"] = "aggregate"
    """``aggregate``: one point per metric and interval; ``raw``: one point per sample."""
    interval_s: float = _duration_field(5.0)
    """Aggregation interval."""
    batch_size: int = 1000
    """Most points sent in one write request."""
    max_buffer_points: int = 100_000
    """Most points held while InfluxDB is slow or down; beyond it the oldest are dropped (and
    counted)."""
    timeout_s: float = _duration_field(5.0)
    """Timeout of one write request."""
    max_tag_values: int = 200
    """Distinct ``name`` / ``stream`` tag values per measurement; further values become ``(other)``."""

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise FieldError("interval_s", f"must be > 0, got {self.interval_s}")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.token_env):
            raise FieldError("token_env", f"must be an environment variable name, got {self.token_env!r}")
        if self.batch_size < 1:
            raise FieldError("batch_size", f"must be >= 1, got {self.batch_size}")
        if self.max_buffer_points < self.batch_size:
            raise FieldError("max_buffer_points",
                             f"must be >= batch_size ({self.batch_size}), got {self.max_buffer_points}")
        if self.timeout_s <= 0:
            raise FieldError("timeout_s", f"must be > 0, got {self.timeout_s}")
        if self.max_tag_values < 1:
            raise FieldError("max_tag_values", f"must be >= 1, got {self.max_tag_values}")


@dataclass(frozen=True)
class GateSettings:
    """How the criteria gate judges the run (see :mod:`letrade_perf.criteria`)."""

    defaults: bool = True
    """Apply the test plan's default criteria (for the metrics this profile's users produce); a
    criterion of the profile on the same bare metric (no tags) replaces the default."""
    allow_inconclusive: bool = False
    """Let inconclusive criteria (no samples; WS lag with clock uncertainty above half the
    threshold) pass the gate instead of failing it."""
    eval_every_s: float = _duration_field(5.0)
    """Live evaluation period (console line, Criteria tab, abort_on_fail checks)."""
    max_429: int = 0
    """The default criterion ``http_429 count<=max_429``."""
    max_clock_errors: int = 10
    """The default criterion ``clock_errors count<=max_clock_errors``: a ``-1021`` (timestamp
    outside recvWindow) re-syncs the clock at once and is left out of ``api_success``; the few
    requests in flight at that moment may get one too, more mean the re-sync did not hold."""
    max_user_errors: int = 0
    """The default criterion ``user_errors count<=max_user_errors``: an exception a user raised out
    of a task, ``on_start`` or ``on_stop`` (your trading code's, or the harness's) fails the run."""
    fees_min_bps: float = 0.0
    """Lower bound of the default fees criterion (average fee in basis points of the notional)."""
    fees_max_bps: float = 10.1
    """Upper bound of the default fees criterion: Binance's standard 0.1 % spot fee (10 bps) plus
    room for fee amounts rounded up to the asset's precision."""
    baseline_tolerance: float = 0.10
    """Relative regression allowed against ``--baseline`` (0.10 = 10 %)."""

    def __post_init__(self) -> None:
        if self.eval_every_s <= 0:
            raise FieldError("eval_every_s", f"must be > 0, got {self.eval_every_s}")
        if self.max_429 < 0:
            raise FieldError("max_429", f"must be >= 0, got {self.max_429}")
        if self.max_clock_errors < 0:
            raise FieldError("max_clock_errors", f"must be >= 0, got {self.max_clock_errors}")
        if self.max_user_errors < 0:
            raise FieldError("max_user_errors", f"must be >= 0, got {self.max_user_errors}")
        if self.fees_min_bps > self.fees_max_bps:
            raise FieldError("fees_min_bps", f"{self.fees_min_bps} is above fees_max_bps {self.fees_max_bps}")
        if not 0.0 <= self.baseline_tolerance < 10.0:
            raise FieldError("baseline_tolerance", f"must be within [0, 10), got {self.baseline_tolerance}")


@dataclass(frozen=True)
class TolerateSettings:
    """Shortfalls against the plan the run accepts. Beyond them the run is INCOMPLETE (exit 4):
    it did not do what the profile planned, whatever its criteria say (the README's "planned vs
    achieved")."""

    users_below_plan: float = 0.05
    """Fraction of the run's time in which fewer users may run than the stage plans (outside the
    ramp from one stage to the next: the spawn rate's time plus 3 s)."""
    short_run_s: float = _duration_field(2.0)
    """How much shorter than the profile's duration the test may be (a ``--run-time`` from the
    command line or a ``locust.conf`` that cuts the stages short is beyond it)."""
    workers_lost: int = 0
    """Worker processes that may be lost while the test runs."""
    safety_refusals: int = 0
    """Orders the safety caps may refuse before sending (each stops a strategy's trading)."""
    paced: float = 1.0
    """Fraction of the users' time they may spend blocked by pacing (1.0: any; pacing is part of
    the plan, the time is reported either way)."""
    orders_blocked_s: float = _duration_field(0.0)
    """How long new orders may be blocked by an operator (or an ``on_fail: block_orders``
    criterion) while the test runs: the plan's orders were not placed meanwhile."""
    dropped_iterations: float = 0.01
    """Open model (``users.<kind>.arrival_rate``): the fraction of a kind's planned iterations
    (started + dropped) that may be dropped because no user of the kind was free within the slot."""

    def __post_init__(self) -> None:
        for name in ("users_below_plan", "paced", "dropped_iterations"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise FieldError(name, f"must be within [0, 1], got {v}")
        if self.short_run_s < 0:
            raise FieldError("short_run_s", f"must be >= 0, got {self.short_run_s}")
        if self.orders_blocked_s < 0:
            raise FieldError("orders_blocked_s", f"must be >= 0, got {self.orders_blocked_s}")
        for name in ("workers_lost", "safety_refusals"):
            if getattr(self, name) < 0:
                raise FieldError(name, f"must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class GeneratorSettings:
    """The load generator's self-monitoring and when it counts as saturated (README "Load generator").

    Every Locust process measures its CPU, RSS and event-loop lag (``generator_cpu``,
    ``generator_rss_mb``, ``generator_loop_lag``). A second is *saturated* when the process's CPU
    or its loop-lag p99 in that second reaches the threshold below. When some process was
    saturated for more than ``max_saturated_fraction`` of the test and at least
    ``min_saturated_s``, the run's latency and lag criteria (``request``, ``ws_lag``, ``pipeline`` … in ms) are
    INCONCLUSIVE — whatever ``gate.allow_inconclusive`` says — and the run is INCOMPLETE (exit 4)
    unless another criterion failed: the figures measured the generator, not the system under test."""

    enabled: bool = True
    """Measure the generator (off: no ``generator_*`` samples, no saturation check)."""
    cpu_percent: float = 90.0
    """A second with at least this CPU use (% of one core; a gevent process cannot use more) is
    saturated. Measured: the harness costs about 115 µs of CPU per request, and the latency it
    adds grows like a queue's, ρ ÷ (1 − ρ): at 90 % each request waits about nine services'
    time for the CPU (Locust warns at 90 % too)."""
    loop_lag_p99_ms: float = 10.0
    """A second whose event-loop lag p99 (how late a greenlet wakes, 100 samples a second) reaches
    this, while its CPU is at least ``lag_cpu_percent``, is saturated.
    Measured: from 50 users the harness added > 1 ms to the median, at 200 users +9.2 ms p50 and
    +44 ms p99; 10 ms is a fifth of the default ``ws_lag avg<50``."""
    lag_cpu_percent: float = 50.0
    """The CPU use below which loop lag does not count as saturation: a loop that lags at low CPU
    is stalled by a blocking call, not overloaded (more workers would not help; the lag is still
    measured and a ``generator_loop_lag`` criterion judges it). Measured: bare Locust's latency
    error crosses 1 ms at about 100 users, 54 % of a core."""
    max_saturated_fraction: float = 0.10
    """The share of the test time a process may be saturated before the latency and lag criteria
    become inconclusive (1.0: never; the measurements stay)."""
    min_saturated_s: float = _duration_field(3.0)
    """Saturated time below this never makes them inconclusive: the users' start (ccxt instances
    loading markets, WebSocket handshakes) or a collection pause saturates a second or two, which
    in a short run is more than the fraction above."""

    def __post_init__(self) -> None:
        if not 0.0 < self.cpu_percent <= 1000.0:
            raise FieldError("cpu_percent", f"must be within (0, 1000], got {self.cpu_percent}")
        if not 0.0 <= self.lag_cpu_percent <= 1000.0:
            raise FieldError("lag_cpu_percent", f"must be within [0, 1000], got {self.lag_cpu_percent}")
        if not self.loop_lag_p99_ms > 0:
            raise FieldError("loop_lag_p99_ms", f"must be > 0, got {self.loop_lag_p99_ms}")
        if not 0.0 <= self.max_saturated_fraction <= 1.0:
            raise FieldError("max_saturated_fraction", f"must be within [0, 1], got {self.max_saturated_fraction}")
        if self.min_saturated_s < 0:
            raise FieldError("min_saturated_s", f"must be >= 0, got {self.min_saturated_s}")


@dataclass(frozen=True)
class WebhookSettings:
    """One notification target. The URL is a secret: the profile names the environment variable
    that holds it, never the URL itself."""

    kind: Literal["slack", "telegram"]
    """``slack`` (any Slack-compatible incoming webhook: a plain ``text`` plus a coloured
    attachment in Block Kit) or ``telegram`` (Bot API ``sendMessage``)."""
    url_env: str
    """Environment variable holding the URL: the Slack webhook URL, or
    ``https://api.telegram.org/bot<token>/sendMessage`` for Telegram."""
    chat_id: str = ""
    """Telegram chat id (required for ``telegram``)."""
    events: tuple[Literal["verdict", "abort", "criterion_failed", "trade", "balance", "orders_blocked",
                          "flatten"], ...] = ("verdict", "abort", "criterion_failed")
    """Which events are sent: the final verdict, a safety abort, a live criterion turning to fail
    (the default), and on request the fills (``trade``, batched), a balance change beyond the
    threshold (``balance``), new orders blocked or resumed (``orders_blocked``) and a finished
    flatten (``flatten``)."""
    trade_batch_s: float = _duration_field(60.0)
    """``trade``: at most one message per this many seconds, listing the fills since the last one
    (0: one message per fill, at most 20 a minute — the rest wait for the next free slot)."""
    balance_threshold: dict[str, float] = field(default_factory=dict)
    """``balance``: asset → absolute amount; a message when the asset's balance has moved by at
    least that much since the last message about it (or since the start), e.g. ``{USDT: 100, BTC: 0.01}``."""
    balance_threshold_fraction: float = 0.05
    """``balance``: for assets not in ``balance_threshold``, the same as a fraction of the asset's
    balance at the start of the run (0.05: 5 %; 0: only the listed assets). An asset that started at
    zero has no fraction threshold."""
    reports_url: str = ""
    """Public URL of the run's reports for this target's messages; ``{run_id}`` is replaced and
    ``/summary.html`` appended unless it names an ``.html``/``.md`` file (default: the
    ``LETRADE_REPORTS_URL`` environment variable, else the local ``file://…/summary.html``)."""

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", self.url_env):
            # never echo the value: it may be the (secret) webhook URL itself
            raise FieldError("url_env", "must be an environment variable name holding the URL "
                                        "(webhook URLs are secrets and do not belong in a profile)")
        if self.kind == "telegram" and not str(self.chat_id).strip():
            raise FieldError("chat_id", "is required for kind telegram")
        for asset, amount in self.balance_threshold.items():
            if not re.match(r"^[A-Za-z0-9]{1,20}$", str(asset)):
                raise FieldError(f"balance_threshold.{asset}", "must be an asset name such as USDT or BTC")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 < amount < float("inf"):
                raise FieldError(f"balance_threshold.{asset}", f"must be an amount > 0, got {amount!r}")
        if not 0 <= self.balance_threshold_fraction < float("inf"):
            raise FieldError("balance_threshold_fraction", f"must be >= 0, got {self.balance_threshold_fraction}")
        url = self.reports_url.strip()
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise FieldError("reports_url", "must be an http(s) URL (e.g. https://ci.example.com/runs/{run_id}/)")
            if "@" in parts.netloc:
                raise FieldError("reports_url", "must not hold credentials (user:password@): every reader sees it")


def _parse_sim(value: Any, kp: str, source: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {kp}: expected a mapping (the simulator config schema)")
    from ..sim.config import from_mapping
    from_mapping(value, f"{source}: {kp}")
    return value


def _parse_criteria(value: Any, kp: str, source: str) -> tuple[Criterion, ...]:
    return parse_criteria(value, source)


@dataclass(frozen=True)
class FlattenSettings:
    """The flatten step: cancel the run's open orders and, where allowed, trade the run's net
    position back (MARKET orders within the ``safety`` caps). It runs on an operator's request
    (web UI, HTTP, signal), on abort and, optionally, at the end of the run."""

    on_abort: bool = True
    """Flatten when the run aborts for safety (the cancel is the kill switch's anyway; with
    ``trade_back`` the position is traded back too)."""
    at_end: bool = False
    """Flatten at the end of the run, after the users stopped and before the final reports."""
    trade_back: bool = False
    """Trade the run's net position back with MARKET orders the other way (real orders: opt-in);
    false: only cancel the open orders."""


@dataclass(frozen=True)
class FundsSettings:
    """Balance snapshots, fund safety and PnL (runs that place orders, with credentials): the
    account's balances at the start (before any order), every ``snapshot_every_s`` and at the end
    (after every order is final), and the run's fills from ``myTrades``."""

    enabled: bool = True
    """Take the snapshots (false: no ``fund_safety``, ``portfolio_weight`` or ``money`` figures)."""
    snapshot_every_s: float = _duration_field(30.0)
    """Seconds between two balance snapshots while the test runs (each costs weight 20, plus 2 per
    profile symbol for its price and 20 per traded symbol for new fills); at least 5."""

    def __post_init__(self) -> None:
        if self.snapshot_every_s < 5:
            raise FieldError("snapshot_every_s", f"must be >= 5 seconds, got {self.snapshot_every_s}")


@dataclass(frozen=True)
class Profile:
    """A validated load profile."""

    name: str = field(metadata={"yaml": False})
    """Profile name (the file name without ``.yaml``)."""
    description: str
    """One line saying what the profile is for."""
    stages: tuple[Stage, ...]
    """Load stages, run in order."""
    users: UserMix
    """User kinds and their settings."""
    env: Literal["sim", "testnet", "production"] = "sim"
    """Target environment (``letrade-perf run --env`` overrides it)."""
    symbols: tuple[str, ...] = ("BTCUSDT",)
    """Symbols the users work on (upper case)."""
    pacing: PacingSettings = field(default_factory=PacingSettings)
    """Rate-limit headroom."""
    safety: SafetySettings = field(default_factory=SafetySettings)
    """Real-money guards."""
    criteria: tuple[Criterion, ...] = field(default=(), metadata={"parse": _parse_criteria})
    """Acceptance criteria (see :mod:`letrade_perf.criteria.grammar`)."""
    sim: dict[str, Any] | None = field(default=None, metadata={"parse": _parse_sim})
    """Simulator config for env ``sim`` (the ``letrade-perf sim --config`` schema)."""
    sink: SinkSettings | None = None
    """InfluxDB sink settings (None = no sink)."""
    target: TargetSettings = field(default_factory=TargetSettings)
    """Target URLs instead of the environment's standard ones (see :class:`TargetSettings`)."""
    gate: GateSettings = field(default_factory=GateSettings)
    """How the criteria decide the verdict (defaults, inconclusive handling, live period)."""
    tolerate: TolerateSettings = field(default_factory=TolerateSettings)
    """Shortfalls against the plan the run accepts (beyond them: INCOMPLETE, exit 4)."""
    flatten: FlattenSettings = field(default_factory=FlattenSettings)
    """When and how the run's orders are cancelled and its net position traded back."""
    funds: FundsSettings = field(default_factory=FundsSettings)
    """Balance snapshots, fund safety and PnL (see :class:`FundsSettings`)."""
    generator: GeneratorSettings = field(default_factory=GeneratorSettings)
    """The load generator's self-monitoring and saturation thresholds (see :class:`GeneratorSettings`)."""
    notify: tuple[WebhookSettings, ...] = ()
    """Webhooks told about the verdict, aborts and live failures."""
    source: str = field(default="", metadata={"yaml": False})
    """The file the profile was loaded from."""

    def __post_init__(self) -> None:
        if not self.description.strip() or "\n" in self.description.strip():
            raise FieldError("description", "must be one non-empty line")
        if not self.stages:
            raise FieldError("stages", "needs at least one stage")
        if not self.symbols:
            raise FieldError("symbols", "needs at least one symbol")
        for i, s in enumerate(self.symbols):
            if not _SYMBOL.match(s):
                raise FieldError(f"symbols[{i}]", f"must be upper-case letters and digits, got {s!r}")
        if len(set(self.symbols)) != len(self.symbols):
            raise FieldError("symbols", "duplicate symbol")
        caps = self.safety.max_order_notional
        if self.users.pipeline and self.users.pipeline.notional > caps:
            raise FieldError("users.pipeline.notional",
                             f"{self.users.pipeline.notional} exceeds safety.max_order_notional {caps}")
        if self.users.ccxt and self.users.ccxt.orders and self.users.ccxt.order_notional > caps:
            raise FieldError("users.ccxt.order_notional",
                             f"{self.users.ccxt.order_notional} exceeds safety.max_order_notional {caps}")
        fixed = sum(s.fixed_count for s in self.users.active().values())
        peak = max(st.users for st in self.stages)
        if fixed > peak:
            raise FieldError("stages", f"the peak of {peak} users is less than the {fixed} fixed_count users")

    @property
    def duration_s(self) -> float:
        """Total length of all stages in seconds."""
        return sum(s.duration_s for s in self.stages)

    @property
    def needs_credentials(self) -> bool:
        """Whether any user sends signed requests (orders, balances)."""
        u = self.users
        return u.places_orders or bool(u.ccxt and u.ccxt.task_weights.get("balance", 0) > 0) or u.error_paths is not None


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

def profile_dirs() -> list[Path]:
    """Directories searched for bundled profiles: the package's ``profiles/`` (package data)."""
    from ..core.resources import profiles_dir

    d = Path(profiles_dir())
    return [d] if d.is_dir() else []


def _bundled() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in profile_dirs():
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def list_profiles() -> list[tuple[str, str, str]]:
    """Bundled profiles as (name, description, path), by name. A broken file shows its error."""
    out = []
    for name, path in sorted(_bundled().items()):
        try:
            data = strict.read_yaml(str(path))
            desc = data.get("description", "") if isinstance(data, dict) else ""
        except ConfigError as e:
            desc = f"(unreadable: {e})"
        out.append((name, str(desc), str(path)))
    return out


def resolve_profile(ref: str) -> str:
    """The file a profile reference names: a bundled profile name, or a path to a YAML file."""
    bundled = _bundled()
    looks_like_path = ref.endswith((".yaml", ".yml")) or os.sep in ref or "/" in ref
    if not looks_like_path and ref in bundled:
        return str(bundled[ref])
    if looks_like_path or os.path.exists(ref):
        return ref
    raise ConfigError(f"unknown profile {ref!r}: not a bundled profile ({', '.join(sorted(bundled)) or 'none found'}) "
                      "and not a YAML file")


def load_profile(ref: str) -> Profile:
    """Load and validate a profile by bundled name (``smoke``) or path (``my/profile.yaml``)."""
    path = resolve_profile(ref)
    lines: dict[str, int] = {}
    data = strict.read_yaml(path, lines=lines)
    try:
        return profile_from_mapping(data, source=path, name=Path(path).stem)
    except ConfigError as e:
        located = strict.with_line(e, path, lines)
        if located is e:
            raise
        raise located from e


def profile_from_mapping(data: Any, source: str = "profile", name: str = "profile") -> Profile:
    """Build and validate a :class:`Profile` from a parsed YAML document."""
    if isinstance(data, dict) and "name" in data:
        # an optional display name; the file name is the default
        data = dict(data)
        given = data.pop("name")
        if not isinstance(given, str) or not given.strip():
            raise ConfigError(f"{source}: name: expected a non-empty string, got {given!r}")
        name = given.strip()
    profile = strict.build(Profile, data, "", source, extra={"name": name, "source": source})
    if profile.sim is not None and profile.env == "sim":
        from ..sim.config import from_mapping
        listed = {s.symbol for s in from_mapping(profile.sim, f"{source}: sim").symbols}
        for i, s in enumerate(profile.symbols):
            if s not in listed:
                raise ConfigError(f"{source}: symbols[{i}]: {s} is not a symbol of the sim section "
                                  f"({', '.join(sorted(listed))})")
    elif profile.env == "sim":
        from ..sim.config import DEFAULT_SYMBOLS
        listed = {s.symbol for s in DEFAULT_SYMBOLS}
        for i, s in enumerate(profile.symbols):
            if s not in listed:
                raise ConfigError(f"{source}: symbols[{i}]: {s} is not a default simulator symbol "
                                  f"({', '.join(sorted(listed))}); add it under sim.symbols")
    from ..criteria.grammar import misnamed
    problems = misnamed(profile.criteria, source)
    if problems:
        raise ConfigError("; ".join(problems))
    return profile
