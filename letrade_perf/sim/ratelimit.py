"""Binance's rate limits, enforced the way the exchange does: fixed, clock-aligned buckets.

Scopes (reference §2):

* ``REQUEST_WEIGHT`` per IP per whole minute (``X-MBX-USED-WEIGHT-1M``),
* ``RAW_REQUESTS`` per IP per 5-minute bucket (every request counts 1, whatever its weight),
* ``ORDERS`` per account per 10-second bucket and per UTC day (``X-MBX-ORDER-COUNT-10S/-1D``),
* ``CONNECTIONS`` (WebSocket API connections) per IP per 5-minute bucket, and the same rule,
  counted apart, for new market-stream connections (300 per 5 minutes per IP, reference §1).

A request that would exceed a per-IP budget is refused with HTTP 429 / -1003 and a
``Retry-After`` of the seconds until every exhausted bucket resets. Refused requests are not
charged. After ``violations_before_ban`` refusals inside one weight bucket the next offending
request earns an IP ban (HTTP 418 / -1003 "IP banned until <ms>") whose length climbs
``ban_ladder_s`` with every repeat offence; while banned, every request is answered 418 with
``Retry-After`` = seconds until the ban ends.

The REST app and the WebSocket API share one :class:`RateLimiter` (Binance pools the weight of
an IP across both). All times come from the injected clock, so tests drive it with
:class:`~letrade_perf.sim.clock.ManualClock`.
"""
from __future__ import annotations

from ..binance.errors import BinanceError
from ..binance.headers import RETRY_AFTER, order_count_header, used_weight_header
from ..binance.intervals import DAY_MS, MINUTE_MS, SECOND_MS
from .config import LimitsSpec

WEIGHT_WINDOW_MS = MINUTE_MS
RAW_WINDOW_MS = 5 * MINUTE_MS
ORDERS_SHORT_MS = 10 * SECOND_MS
ORDERS_DAY_MS = DAY_MS
CONNECTIONS_WINDOW_MS = 5 * MINUTE_MS

#: Response header names (``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S``, ``-1D``).
USED_WEIGHT_1M = used_weight_header("MINUTE", 1)
ORDER_COUNT_10S = order_count_header("SECOND", 10)
ORDER_COUNT_1D = order_count_header("DAY", 1)

_BAN_MSG = ("Way too much request weight used; IP banned until %d. "
            "Please use WebSocket Streams for live updates to avoid bans.")
_WEIGHT_MSG = ("Too much request weight used; current limit is %d request weight per 1 MINUTE. "
               "Please use WebSocket Streams for live updates to avoid polling the API.")
_RAW_MSG = ("Too many requests; current limit is %d requests per 5 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.")
_CONN_MSG = "Too many new connections; current limit is %d connections per 5 MINUTE."
_ORDERS_10S_MSG = "Too many new orders; current limit is %d orders per 10 SECOND."
_ORDERS_1D_MSG = "Too many new orders; current limit is %d orders per 1 DAY."


class RateLimitError(BinanceError):
    """A 429 or 418 refusal. ``retry_after_ms`` is the epoch ms when the caller may retry
    (the WebSocket API reports it as ``error.data.retryAfter``); ``headers`` carries
    ``Retry-After`` in whole seconds for REST."""

    def __init__(self, code: int, msg: str, http: int, retry_after_ms: int, now_ms: int):
        seconds = max(1, -(-(retry_after_ms - now_ms) // 1000))
        super().__init__(code, msg, http, {RETRY_AFTER: str(seconds)})
        self.retry_after_ms = retry_after_ms
        self.retry_after_s = seconds


class _IpState:
    __slots__ = ("w_bucket", "weight", "violations", "raw_bucket", "raw", "c_bucket", "connections",
                 "sc_bucket", "stream_connections", "banned_until", "bans")

    def __init__(self):
        self.w_bucket = -1
        self.weight = 0
        self.violations = 0
        self.raw_bucket = -1
        self.raw = 0
        self.c_bucket = -1
        self.connections = 0
        self.sc_bucket = -1
        self.stream_connections = 0
        self.banned_until = 0
        self.bans = 0


class _AccountState:
    __slots__ = ("s_bucket", "short", "d_bucket", "day")

    def __init__(self):
        self.s_bucket = -1
        self.short = 0
        self.d_bucket = -1
        self.day = 0


class RateLimiter:
    """Per-IP weight/raw/connection budgets, per-account order budgets, 429 → 418 escalation.

    Public API (shared by REST and the WebSocket API):

    * :meth:`admit` ``(ip, weight, charge=True)`` — ban and budget check, then charge; raises
      :class:`RateLimitError` (429/418, ``Retry-After``).
    * :meth:`charge` ``(ip, weight)`` — add weight without a check (post-hoc costs, e.g. a
      failed order call).
    * :meth:`check_ban` ``(ip)`` — raise 418 while ``ip`` is banned.
    * :meth:`used_weight` ``(ip)`` — weight used in the current minute bucket.
    * :meth:`admit_order` / :meth:`record_order` ``(account_id)`` — ORDERS check (-1015) and the
      count of a successful new order; :meth:`order_counts` → ``{"10S": n, "1D": n}``.
    * :meth:`admit_connection` ``(ip)`` — WS API ``CONNECTIONS`` check plus the 2-weight
      connection cost.
    * :meth:`ws_api_limits` ``(ip, account_id=None)`` — ``rateLimits`` entries with ``count``.
    * :meth:`order_limits` ``(account_id)`` — ORDERS entries with ``count`` (``rateLimit/order``).
    * :meth:`weight_headers` / :meth:`order_headers` — response header dicts.
    * :meth:`reset` — clear all counters and bans; :meth:`state` — a JSON-able snapshot.

    ``limits`` is read on every call, so changing its fields at runtime takes effect at once.
    """

    def __init__(self, limits: LimitsSpec, clock, stats=None):
        self.limits = limits
        self.clock = clock
        self.stats = stats
        self._ips: dict[str, _IpState] = {}
        self._accounts: dict[str, _AccountState] = {}

    # -- internals ------------------------------------------------------------------------
    def _ip(self, ip: str) -> _IpState:
        st = self._ips.get(ip)
        if st is None:
            st = self._ips[ip] = _IpState()
        return st

    def _roll_weight(self, st: _IpState, now: int) -> None:
        b = now // WEIGHT_WINDOW_MS
        if b != st.w_bucket:
            st.w_bucket = b
            st.weight = 0
            st.violations = 0

    def _roll_raw(self, st: _IpState, now: int) -> None:
        b = now // RAW_WINDOW_MS
        if b != st.raw_bucket:
            st.raw_bucket = b
            st.raw = 0

    def _banned(self, st: _IpState, now: int) -> RateLimitError:
        return RateLimitError(-1003, _BAN_MSG % st.banned_until, 418, st.banned_until, now)

    def _ban(self, st: _IpState, now: int) -> RateLimitError:
        ladder = self.limits.ban_ladder_s
        seconds = ladder[min(st.bans, len(ladder) - 1)]
        st.bans += 1
        st.banned_until = now + seconds * 1000
        return self._banned(st, now)

    # -- per-IP request budget ------------------------------------------------------------
    def check_ban(self, ip: str) -> None:
        """Raise the 418 refusal while ``ip`` is banned."""
        st = self._ips.get(ip)
        if st is not None and st.banned_until:
            now = self.clock.now_ms()
            if now < st.banned_until:
                raise self._banned(st, now)

    def admit(self, ip: str, weight: int, charge: bool = True) -> None:
        """Admit one request of ``weight`` from ``ip`` or raise :class:`RateLimitError`.

        Counts one RAW_REQUESTS hit (also for refused requests) and, when admitted and
        ``charge`` is true, adds ``weight`` to the minute bucket. A refusal while the bucket
        already saw ``violations_before_ban`` refusals bans the IP (418).
        """
        now = self.clock.now_ms()
        st = self._ips.get(ip)
        if st is None:
            st = self._ips[ip] = _IpState()
        if st.banned_until:
            if now < st.banned_until:
                raise self._banned(st, now)
            st.banned_until = 0
        if now // WEIGHT_WINDOW_MS != st.w_bucket:
            self._roll_weight(st, now)
        if now // RAW_WINDOW_MS != st.raw_bucket:
            self._roll_raw(st, now)
        lim = self.limits
        st.raw += 1
        over_weight = st.weight + weight > lim.request_weight_per_minute
        over_raw = st.raw > lim.raw_requests_per_5m
        if not (over_weight or over_raw):
            if charge:
                st.weight += weight
            return
        if st.violations >= lim.violations_before_ban:
            raise self._ban(st, now)
        st.violations += 1
        retry = now
        if over_weight:
            retry = max(retry, (st.w_bucket + 1) * WEIGHT_WINDOW_MS)
        if over_raw:
            retry = max(retry, (st.raw_bucket + 1) * RAW_WINDOW_MS)
        msg = _WEIGHT_MSG % lim.request_weight_per_minute if over_weight else _RAW_MSG % lim.raw_requests_per_5m
        raise RateLimitError(-1003, msg, 429, retry, now)

    def charge(self, ip: str, weight: int) -> None:
        """Add ``weight`` to ``ip``'s current minute bucket without a budget check."""
        if not weight:
            return
        now = self.clock.now_ms()
        st = self._ip(ip)
        if now // WEIGHT_WINDOW_MS != st.w_bucket:
            self._roll_weight(st, now)
        st.weight += weight

    def used_weight(self, ip: str) -> int:
        """Weight ``ip`` used in the current minute bucket (0 after the bucket rolled)."""
        st = self._ips.get(ip)
        if st is None or self.clock.now_ms() // WEIGHT_WINDOW_MS != st.w_bucket:
            return 0
        return st.weight

    def weight_headers(self, ip: str) -> dict[str, str]:
        """``{"X-MBX-USED-WEIGHT-1M": "<used>"}``."""
        return {USED_WEIGHT_1M: str(self.used_weight(ip))}

    # -- WebSocket API connections --------------------------------------------------------
    def admit_connection(self, ip: str, weight: int = 2) -> None:
        """Admit one WS API connection: ban check, CONNECTIONS per 5 min, then ``weight``
        REQUEST_WEIGHT (opening a WS API connection costs 2)."""
        now = self.clock.now_ms()
        st = self._ip(ip)
        if st.banned_until and now < st.banned_until:
            raise self._banned(st, now)
        self._check_connections(st, "c_bucket", "connections", self.limits.ws_connections_per_5m, now)
        self.admit(ip, weight)
        st.connections += 1

    def admit_stream_connection(self, ip: str) -> None:
        """Admit one market-stream connection: at most ``stream_connections_per_5m`` new ones
        per IP per 5-minute bucket (429 / -1003 with ``Retry-After`` beyond). Streams carry no
        request weight and are not refused for a REST ban (a separate service at Binance)."""
        st = self._ip(ip)
        self._check_connections(st, "sc_bucket", "stream_connections", self.limits.stream_connections_per_5m,
                                self.clock.now_ms())
        st.stream_connections += 1

    @staticmethod
    def _check_connections(st: _IpState, bucket_attr: str, count_attr: str, limit: int, now: int) -> None:
        """Roll ``st``'s 5-minute connection bucket; 429 / -1003 when one more would exceed ``limit``."""
        b = now // CONNECTIONS_WINDOW_MS
        if b != getattr(st, bucket_attr):
            setattr(st, bucket_attr, b)
            setattr(st, count_attr, 0)
        if getattr(st, count_attr) + 1 > limit:
            raise RateLimitError(-1003, _CONN_MSG % limit, 429, (b + 1) * CONNECTIONS_WINDOW_MS, now)

    # -- per-account ORDERS ---------------------------------------------------------------
    def _account(self, account_id: str, now: int) -> _AccountState:
        st = self._accounts.get(account_id)
        if st is None:
            st = self._accounts[account_id] = _AccountState()
        b = now // ORDERS_SHORT_MS
        if b != st.s_bucket:
            st.s_bucket = b
            st.short = 0
        d = now // ORDERS_DAY_MS
        if d != st.d_bucket:
            st.d_bucket = d
            st.day = 0
        return st

    def admit_order(self, account_id: str) -> None:
        """Raise 429 / -1015 when one more order would exceed an ORDERS bucket of the account.

        ``Retry-After`` is the seconds until every exhausted bucket resets. No IP ban follows
        from ORDERS refusals (they are per account)."""
        now = self.clock.now_ms()
        st = self._account(account_id, now)
        lim = self.limits
        over_short = st.short + 1 > lim.orders_per_10s
        over_day = st.day + 1 > lim.orders_per_day
        if not (over_short or over_day):
            return
        retry = now
        if over_short:
            retry = max(retry, (st.s_bucket + 1) * ORDERS_SHORT_MS)
        if over_day:
            retry = max(retry, (st.d_bucket + 1) * ORDERS_DAY_MS)
        msg = _ORDERS_10S_MSG % lim.orders_per_10s if over_short else _ORDERS_1D_MSG % lim.orders_per_day
        raise RateLimitError(-1015, msg, 429, retry, now)

    def record_order(self, account_id: str) -> None:
        """Count one accepted new order in both ORDERS buckets of the account."""
        st = self._account(account_id, self.clock.now_ms())
        st.short += 1
        st.day += 1

    def unrecord_order(self, account_id: str) -> None:
        """Take back :meth:`record_order` for an order the engine rejected."""
        self._lower_order_count(account_id)

    def order_filled(self, account_id: str) -> None:
        """An order's first fill lowers the unfilled-order count by one in every ORDERS window
        (reference §2), so orders that trade do not use up the limit."""
        self._lower_order_count(account_id)

    def _lower_order_count(self, account_id: str) -> None:
        st = self._account(account_id, self.clock.now_ms())
        if st.short > 0:
            st.short -= 1
        if st.day > 0:
            st.day -= 1

    def order_counts(self, account_id: str) -> dict[str, int]:
        """``{"10S": n, "1D": n}`` in the current buckets."""
        st = self._account(account_id, self.clock.now_ms())
        return {"10S": st.short, "1D": st.day}

    def order_headers(self, account_id: str) -> dict[str, str]:
        """``X-MBX-ORDER-COUNT-10S`` and ``-1D`` for a successful order response."""
        st = self._account(account_id, self.clock.now_ms())
        return {ORDER_COUNT_10S: str(st.short), ORDER_COUNT_1D: str(st.day)}

    def order_limits(self, account_id: str) -> list[dict]:
        """ORDERS ``rateLimits`` entries with ``count`` (``GET /api/v3/rateLimit/order``)."""
        c = self.order_counts(account_id)
        lim = self.limits
        return [
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": lim.orders_per_10s, "count": c["10S"]},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
             "limit": lim.orders_per_day, "count": c["1D"]},
        ]

    def ws_api_limits(self, ip: str, account_id: str | None = None) -> list[dict]:
        """WS API response ``rateLimits``: REQUEST_WEIGHT with ``count``, plus the account's
        ORDERS entries when ``account_id`` is given (order placement responses)."""
        out = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                "limit": self.limits.request_weight_per_minute, "count": self.used_weight(ip)}]
        if account_id is not None:
            out.extend(self.order_limits(account_id))
        return out

    # -- admin ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every counter, violation and ban (``POST /_sim/limits/reset``)."""
        self._ips.clear()
        self._accounts.clear()

    def state(self) -> dict:
        """JSON-able view: limits and per-IP / per-account usage in the current buckets."""
        now = self.clock.now_ms()
        ips = {}
        for ip, st in self._ips.items():
            cur_w = now // WEIGHT_WINDOW_MS == st.w_bucket
            ips[ip] = {
                "used_weight_1m": st.weight if cur_w else 0,
                "violations": st.violations if cur_w else 0,
                "raw_requests_5m": st.raw if now // RAW_WINDOW_MS == st.raw_bucket else 0,
                "ws_connections_5m": st.connections if now // CONNECTIONS_WINDOW_MS == st.c_bucket else 0,
                "stream_connections_5m": (st.stream_connections
                                          if now // CONNECTIONS_WINDOW_MS == st.sc_bucket else 0),
                "banned_until": st.banned_until if st.banned_until > now else None,
                "bans": st.bans,
            }
        accounts = {a: self.order_counts(a) for a in list(self._accounts)}
        lim = self.limits
        return {
            "now_ms": now,
            "limits": {
                "request_weight_per_minute": lim.request_weight_per_minute,
                "raw_requests_per_5m": lim.raw_requests_per_5m,
                "orders_per_10s": lim.orders_per_10s,
                "orders_per_day": lim.orders_per_day,
                "violations_before_ban": lim.violations_before_ban,
                "ban_ladder_s": list(lim.ban_ladder_s),
                "ws_connections_per_5m": lim.ws_connections_per_5m,
                "stream_connections_per_5m": lim.stream_connections_per_5m,
            },
            "ips": ips,
            "accounts": accounts,
        }
