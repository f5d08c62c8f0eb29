"""Simulator configuration: symbols, accounts (with their key status), limits, WebSocket rules, latency and faults.

Loaded from a YAML file (``letrade-perf sim --config FILE``), from a mapping (a profile's
``sim:`` section) or built in code. Unknown keys and bad values raise :class:`SimConfigError`
naming the source, the key path (``faults[2].probability``) and, for a file, the line. Numbers are
finite (decimal strings too: no ``NaN`` or ``Infinity``); the market's sizes are bounded
(``book_levels`` <= 5000, ``trades_per_second`` <= 10000, ``history_days`` <= 3650).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ..binance.intervals import DAY_MS
from ..core import strict
from ..core.errors import ConfigError

DEMO_API_KEY = "letradeDemoKeyHMAC0000000000000000000000000000000000000000000000"
DEMO_SECRET = "letradeDemoSecret000000000000000000000000000000000000000000000000"
#: A fixed, public Ed25519 demo key pair (simulator only; never valid anywhere else).
DEMO_ED25519_API_KEY = "letradeDemoKeyED255190000000000000000000000000000000000000000000"
DEMO_ED25519_PRIVATE_PEM = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEILhidy/BQJLAeo8n2bBVpDI/GAwXzLfuC+BRAU6J8Hd5
-----END PRIVATE KEY-----
"""
DEMO_ED25519_PUBLIC_PEM = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAb/sRuSC91ew6bPvMAafij0jsl8K0uL33M3vL+D+chE4=
-----END PUBLIC KEY-----
"""


MAX_BOOK_LEVELS = 5000
MAX_TRADES_PER_SECOND = 10_000
MAX_HISTORY_DAYS = 3650


class SimConfigError(ConfigError):
    """A bad simulator configuration value; the message names the source and the key path."""


@dataclass
class SymbolSpec:
    """One tradable symbol and its filters (values as Binance prints them, decimal strings)."""

    symbol: str
    base: str
    quote: str
    price: str                      # starting mid price of the seeded random walk
    tick_size: str = "0.01"
    step_size: str = "0.00001"
    min_qty: str = "0.00001"
    max_qty: str = "9000.00000000"
    market_max_qty: str = "100.00000000"
    min_price: str = "0.01"
    max_price: str = "1000000.00"
    min_notional: str = "5.00"
    max_notional: str = "9000000.00"
    base_precision: int = 8
    quote_precision: int = 8
    volatility: float = 0.6         # annualised-ish: fraction of price per sqrt(day) of the random walk
    status: str = "TRADING"
    max_num_orders: int = 200
    percent_price_up: str = "5"
    percent_price_down: str = "0.2"


DEFAULT_SYMBOLS = (
    SymbolSpec("BTCUSDT", "BTC", "USDT", "65000.00", tick_size="0.01", step_size="0.00001",
               min_qty="0.00001", max_qty="9000.00000000", market_max_qty="100.00000000"),
    SymbolSpec("ETHUSDT", "ETH", "USDT", "3200.00", tick_size="0.01", step_size="0.0001",
               min_qty="0.0001", max_qty="9000.00000000", market_max_qty="1000.00000000"),
    SymbolSpec("BNBUSDT", "BNB", "USDT", "600.00", tick_size="0.01", step_size="0.001",
               min_qty="0.001", max_qty="9000.00000000", market_max_qty="5000.00000000"),
    SymbolSpec("SOLUSDT", "SOL", "USDT", "150.00", tick_size="0.01", step_size="0.001",
               min_qty="0.001", max_qty="90000.00000000", market_max_qty="20000.00000000"),
    SymbolSpec("ETHBTC", "ETH", "BTC", "0.04900", tick_size="0.00001", step_size="0.0001",
               min_qty="0.0001", max_qty="100000.00000000", market_max_qty="2000.00000000",
               min_price="0.00001", max_price="922327.00000000", min_notional="0.0001"),
)


ACCOUNT_STATUS_MAX = 64


@dataclass
class KeyStatusSpec:
    """What the ``/sapi`` key-status endpoints answer for one API key (reference §12).

    The defaults are a least-privilege spot trading key: reading and spot trading on, every
    other permission off, IP-restricted, no trading-authority expiry, not locked, status Normal.
    Change them per account here or at run time with ``PUT /_sim/key``.
    """

    #: the key is bound to an IP allowlist (``ipRestrict``)
    ip_restrict: bool = True
    #: Reading permission; false: all three key-status endpoints answer -2015
    enable_reading: bool = True
    #: ``enableSpotAndMarginTrading``
    enable_spot_and_margin_trading: bool = True
    #: ``enableWithdrawals``
    enable_withdrawals: bool = False
    #: ``enableInternalTransfer`` (master ⇄ sub-account transfers)
    enable_internal_transfer: bool = False
    #: ``permitsUniversalTransfer``
    permits_universal_transfer: bool = False
    #: ``enableMargin``
    enable_margin: bool = False
    #: ``enableFutures``
    enable_futures: bool = False
    #: ``enableVanillaOptions``
    enable_vanilla_options: bool = False
    #: ``enablePortfolioMarginTrading``
    enable_portfolio_margin_trading: bool = False
    #: ``enableFixApiTrade``
    enable_fix_api_trade: bool = False
    #: ``enableFixReadOnly``
    enable_fix_read_only: bool = False
    #: ``tradingAuthorityExpirationTime`` in ms since the epoch; omitted from the answer when unset
    trading_authority_expiration_time: int | None = None
    #: ``createTime`` in ms since the epoch; unset: the simulator's start time
    create_time: int | None = None
    #: apiTradingStatus ``isLocked``: the account's API trading is locked by Binance's trading rules
    is_locked: bool = False
    #: apiTradingStatus ``plannedRecoverTime`` (ms since the epoch; 0 when not locked)
    planned_recover_time: int = 0
    #: ``GET /sapi/v1/account/status`` ``data``: "Normal" for an account in good standing
    account_status: str = "Normal"


@dataclass
class AccountSpec:
    """An account and its API key. ``key_type`` is HMAC (``secret``) or ED25519 (``public_key`` PEM)."""

    api_key: str
    secret: str | None = None
    key_type: str = "HMAC"
    public_key: str | None = None
    balances: dict[str, str] = field(default_factory=lambda: {
        "USDT": "100000.00000000", "BTC": "2.00000000", "ETH": "30.00000000",
        "BNB": "100.00000000", "SOL": "500.00000000"})
    can_trade: bool = True
    #: what the ``/sapi`` key-status endpoints answer for this key
    key_status: KeyStatusSpec = field(default_factory=KeyStatusSpec)
    maker_commission: str = "0.00100000"
    taker_commission: str = "0.00100000"


@dataclass
class LimitsSpec:
    """Exchange rate limits (exchangeInfo ``rateLimits``) and the ban ladder."""

    request_weight_per_minute: int = 6000
    raw_requests_per_5m: int = 300000
    orders_per_10s: int = 100
    orders_per_day: int = 200000
    #: requests refused with 429 in one window before the next refusal becomes a 418 ban
    violations_before_ban: int = 5
    #: ban lengths in seconds for the 1st, 2nd, … ban (the last repeats); Binance: 2 min up to 3 days
    ban_ladder_s: list[int] = field(default_factory=lambda: [120, 600, 3600, 21600, 86400, 259200])
    #: new WebSocket API connections per IP per 5 minutes
    ws_connections_per_5m: int = 300
    #: new market-stream connections per IP per 5 minutes (counted apart from the WS API's)
    stream_connections_per_5m: int = 300


@dataclass
class WsSpec:
    """WebSocket connection rules."""

    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    max_incoming_per_s: int = 5
    lifetime_s: float = 86400.0
    max_streams: int = 1024
    listen_key_ttl_s: float = 3600.0


@dataclass
class MarketSpec:
    """Synthetic market activity."""

    trades_per_second: float = 5.0       # synthetic taker trades per symbol per second
    book_levels: int = 200               # synthetic levels per side
    tick_ms: int = 100                   # market tick (book refresh, depth@100ms cadence)
    history_days: int = 400              # how far back seeded klines/trades go


@dataclass
class LatencySpec:
    """Latency added to a response: ``fixed_ms`` + a jitter drawn from ``dist``; half of it before the
    request is processed and half after, like network latency on both legs of the round trip.

    dist: ``none`` | ``uniform`` (0..jitter_ms) | ``normal`` (|N(0, jitter_ms)|) |
    ``exponential`` (mean jitter_ms) | ``lognormal`` (median jitter_ms, sigma 1).
    """

    fixed_ms: float = 0.0
    jitter_ms: float = 0.0
    dist: str = "none"


FAULT_KINDS = ("http_5xx", "unknown_status", "storm_429", "ws_disconnect", "ws_stall", "ws_delay",
               "clock_skew", "malformed", "truncated", "reset", "hang", "partial_fill")
#: Most executions a ``partial_fill`` rule splits one fill into.
MAX_FILL_PARTS = 100
LATENCY_DISTS = ("none", "uniform", "normal", "exponential", "lognormal")


@dataclass
class FaultSpec:
    """One fault rule.

    kinds: ``http_5xx`` (HTTP ``status`` 500/502/503/504 with a -1000/-1001/-1008 body),
    ``unknown_status`` (-1007 with HTTP 500 on order calls; with ``execute: true`` the order still
    executes), ``storm_429`` (429 + Retry-After regardless of budget), ``ws_disconnect`` (close
    stream connections), ``ws_stall`` (stop sending for ``duration_ms``), ``ws_delay`` (send
    events ``delay_ms`` after their ``E``), ``clock_skew`` (server clock off by ``skew_ms``),
    ``malformed`` (invalid JSON body), ``truncated`` (body cut in half), ``reset`` (connection
    reset without a response), ``hang`` (no response for ``delay_ms``, default 60 s),
    ``partial_fill`` (an account's taking order fills in ``parts`` executions per price level:
    executionReports ``PARTIALLY_FILLED`` … then ``FILLED``; ``endpoints`` are symbols here).

    Selection: ``endpoints`` (request names like ``GET /api/v3/depth``, ``*`` for all; for WS
    kinds stream names), ``probability`` per request, or ``every`` N-th matching request, at
    most ``count`` times (0 = unlimited), active from ``after_s`` for ``duration_s`` (0 = forever)
    after the rule was installed.
    """

    kind: str
    endpoints: list[str] = field(default_factory=lambda: ["*"])
    probability: float = 0.0
    every: int = 0
    count: int = 0
    after_s: float = 0.0
    duration_s: float = 0.0
    status: int = 503
    delay_ms: float = 0.0
    duration_ms: float = 0.0
    skew_ms: int = 0
    execute: bool = True
    retry_after_s: int = 10
    parts: int = 2


@dataclass
class SimConfig:
    """Everything the simulator needs; every field has a sensible default."""

    host: str = "127.0.0.1"
    port: int = 8765
    seed: int = 1
    symbols: list[SymbolSpec] = field(default_factory=lambda: [dataclasses.replace(s) for s in DEFAULT_SYMBOLS])
    accounts: list[AccountSpec] = field(default_factory=lambda: [
        AccountSpec(DEMO_API_KEY, DEMO_SECRET),
        AccountSpec(DEMO_ED25519_API_KEY, key_type="ED25519", public_key=DEMO_ED25519_PUBLIC_PEM)])
    limits: LimitsSpec = field(default_factory=LimitsSpec)
    ws: WsSpec = field(default_factory=WsSpec)
    market: MarketSpec = field(default_factory=MarketSpec)
    latency: LatencySpec = field(default_factory=LatencySpec)
    endpoint_latency: dict[str, LatencySpec] = field(default_factory=dict)
    faults: list[FaultSpec] = field(default_factory=list)
    clock_skew_ms: int = 0
    allow_remote_control: bool = False   # /_sim/ control API answers loopback peers only unless set

    def rate_limits(self) -> list[dict]:
        """exchangeInfo ``rateLimits``."""
        lim = self.limits
        return [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": lim.request_weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": lim.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": lim.orders_per_day},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
             "limit": lim.raw_requests_per_5m},
        ]


# ---------------------------------------------------------------------------------------------
# Loading with strict validation
# ---------------------------------------------------------------------------------------------

def _is_decimal(s: Any) -> bool:
    """A finite decimal (``Decimal`` also reads ``NaN`` and ``Infinity``, which no amount is)."""
    if isinstance(s, bool) or isinstance(s, int) and abs(s) > strict.MAX_INT:
        return False
    try:
        return Decimal(str(s)).is_finite()
    except (InvalidOperation, ValueError):
        return False


def _decimal_map(value: Any, kp: str, source: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SimConfigError(f"{source}: {kp}: expected a mapping")
    for k, v in value.items():
        if not _is_decimal(v):
            raise SimConfigError(f"{source}: {kp}.{k}: expected a decimal amount, got {strict.show(v)}")
    return {str(k): str(v) for k, v in value.items()}


# Balances are decimal strings; everything else follows the annotations (core/strict.py).
_HOOKS = {dict[str, str]: _decimal_map}


def _build(cls, data: Any, path: str, source: str):
    """Build one config dataclass from a mapping at ``path`` in ``source`` (strict keys and types)."""
    return strict.build(cls, data, path, source, error=SimConfigError, hooks=_HOOKS)


def validate(cfg: SimConfig, source: str = "config") -> SimConfig:
    """Check value ranges and cross-field rules; raise :class:`SimConfigError` naming the key."""
    seen = set()
    for i, s in enumerate(cfg.symbols):
        kp = f"symbols[{i}]"
        if not s.symbol.isalnum() or s.symbol != s.symbol.upper():
            raise SimConfigError(f"{source}: {kp}.symbol: must be upper-case alphanumerics, got {s.symbol!r}")
        if s.symbol in seen:
            raise SimConfigError(f"{source}: {kp}.symbol: duplicate symbol {s.symbol}")
        seen.add(s.symbol)
        for name in ("price", "tick_size", "step_size", "min_qty", "max_qty", "market_max_qty", "min_price",
                     "max_price", "min_notional", "max_notional", "percent_price_up", "percent_price_down"):
            v = getattr(s, name)
            if not _is_decimal(v) or Decimal(str(v)) < 0:
                raise SimConfigError(f"{source}: {kp}.{name}: expected a non-negative decimal, got {strict.show(v)}")
        if Decimal(s.tick_size) <= 0 or Decimal(s.step_size) <= 0 or Decimal(s.price) <= 0:
            raise SimConfigError(f"{source}: {kp}: price, tick_size and step_size must be > 0")
    keys = set()
    for i, a in enumerate(cfg.accounts):
        kp = f"accounts[{i}]"
        if a.key_type not in ("HMAC", "ED25519"):
            raise SimConfigError(f"{source}: {kp}.key_type: expected HMAC or ED25519, got {a.key_type!r}")
        if a.key_type == "HMAC" and not a.secret:
            raise SimConfigError(f"{source}: {kp}.secret: an HMAC account needs a secret")
        if a.key_type == "ED25519" and not a.public_key:
            raise SimConfigError(f"{source}: {kp}.public_key: an ED25519 account needs a public_key (PEM)")
        if a.api_key in keys:
            raise SimConfigError(f"{source}: {kp}.api_key: duplicate API key")
        keys.add(a.api_key)
        validate_key_status(a.key_status, f"{kp}.key_status", source)
    for i, f in enumerate(cfg.faults):
        kp = f"faults[{i}]"
        if f.kind not in FAULT_KINDS:
            raise SimConfigError(f"{source}: {kp}.kind: unknown fault {f.kind!r} (one of {', '.join(FAULT_KINDS)})")
        if not 0.0 <= f.probability <= 1.0:
            raise SimConfigError(f"{source}: {kp}.probability: must be within 0..1, got {f.probability}")
        if f.every < 0 or f.count < 0:
            raise SimConfigError(f"{source}: {kp}: every and count must be >= 0")
        if not 1 <= f.parts <= MAX_FILL_PARTS:
            raise SimConfigError(f"{source}: {kp}.parts: must be within 1..{MAX_FILL_PARTS}, got {f.parts}")
        if f.kind == "http_5xx" and not 500 <= f.status <= 599:
            raise SimConfigError(f"{source}: {kp}.status: must be a 5xx status, got {f.status}")
    for kp, lat in [("latency", cfg.latency)] + [(f"endpoint_latency.{k}", v) for k, v in cfg.endpoint_latency.items()]:
        if lat.dist not in LATENCY_DISTS:
            raise SimConfigError(f"{source}: {kp}.dist: unknown distribution {lat.dist!r} (one of {', '.join(LATENCY_DISTS)})")
        if lat.fixed_ms < 0 or lat.jitter_ms < 0:
            raise SimConfigError(f"{source}: {kp}: fixed_ms and jitter_ms must be >= 0")
    lim = cfg.limits
    for name in ("request_weight_per_minute", "raw_requests_per_5m", "orders_per_10s", "orders_per_day"):
        if getattr(lim, name) <= 0:
            raise SimConfigError(f"{source}: limits.{name}: must be > 0")
    if not lim.ban_ladder_s or any(b <= 0 for b in lim.ban_ladder_s):
        raise SimConfigError(f"{source}: limits.ban_ladder_s: must be a non-empty list of positive seconds")
    if cfg.market.tick_ms <= 0 or cfg.market.book_levels <= 0:
        raise SimConfigError(f"{source}: market: tick_ms and book_levels must be > 0")
    if cfg.market.book_levels > MAX_BOOK_LEVELS:
        raise SimConfigError(f"{source}: market.book_levels: must be at most {MAX_BOOK_LEVELS}, got {cfg.market.book_levels}")
    if not 0 <= cfg.market.trades_per_second <= MAX_TRADES_PER_SECOND:
        raise SimConfigError(f"{source}: market.trades_per_second: must be within 0..{MAX_TRADES_PER_SECOND}, "
                             f"got {cfg.market.trades_per_second}")
    if cfg.market.history_days > MAX_HISTORY_DAYS:
        raise SimConfigError(f"{source}: market.history_days: must be at most {MAX_HISTORY_DAYS}, "
                             f"got {cfg.market.history_days}")
    if not 0 <= cfg.port <= 65535:
        raise SimConfigError(f"{source}: port: must be 0..65535")
    if cfg.market.history_days * DAY_MS <= 0:
        raise SimConfigError(f"{source}: market.history_days: must be > 0")
    return cfg


def validate_key_status(ks: KeyStatusSpec, kp: str, source: str) -> KeyStatusSpec:
    """Range checks of one :class:`KeyStatusSpec` at key path ``kp`` (times >= 0, a short status)."""
    at = f"{kp}." if kp else ""
    for name in ("trading_authority_expiration_time", "create_time", "planned_recover_time"):
        v = getattr(ks, name)
        if v is not None and v < 0:
            raise SimConfigError(f"{source}: {at}{name}: must be a time in ms since the epoch (>= 0), got {v}")
    status = ks.account_status
    if not status or len(status) > ACCOUNT_STATUS_MAX or not status.isprintable():
        raise SimConfigError(f"{source}: {at}account_status: expected 1..{ACCOUNT_STATUS_MAX} printable "
                             f"characters, got {strict.show(status)}")
    return ks


def key_status_from_mapping(data: Any, source: str = "key") -> KeyStatusSpec:
    """One :class:`KeyStatusSpec` from a mapping (control API), strictly built and validated."""
    return validate_key_status(_build(KeyStatusSpec, data, "", source), "", source)


def from_mapping(data: dict | None, source: str = "config") -> SimConfig:
    """Build and validate a :class:`SimConfig` from a mapping (YAML document or profile section)."""
    if data is None:
        data = {}
    return validate(_build(SimConfig, data, "", source), source)


def load(path: str | os.PathLike) -> SimConfig:
    """Load a YAML simulator config; errors name the file and the key path."""
    source = str(path)
    lines: dict[str, int] = {}
    data = strict.read_yaml(source, SimConfigError, lines=lines)
    try:
        return from_mapping(data, source)
    except SimConfigError as e:
        located = strict.with_line(e, source, lines)
        if located is e:
            raise
        raise located from e


def fault_from_mapping(data: dict, source: str = "fault") -> FaultSpec:
    """One fault rule from a mapping (control API), validated."""
    f = _build(FaultSpec, data, "", source)
    validate(SimConfig(symbols=[], accounts=[], faults=[f]), source)
    return f
