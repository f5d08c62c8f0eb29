"""The process-wide pacer: REQUEST_WEIGHT, ORDERS and RAW_REQUESTS budgets in fixed windows,
spread over each short window by a token bucket.

Binance counts weight per IP and orders per account in *fixed, clock-aligned* buckets of
server time (reference §2): a 1-minute bucket starts at every whole server minute, 10-second
buckets at :00, :10 …, the day at 00:00 UTC. The pacer mirrors that: every window keeps a
``used`` count for its current bucket (``floor(server_now / window_ms)``) and a request is
admitted when every window has room for it within ``limit × fraction × share``. When one does
not, the caller sleeps (through the injected ``sleep``, so other greenlets run) until the
bucket boundary of every exhausted window — never a sliding-window guess.

Smoothing (:mod:`.smoothing`): with ``smoothing="bucket"`` (the default) the windows of up to a
minute (REQUEST_WEIGHT 1m, ORDERS 10s) also have a token bucket that refills at ``budget /
window`` and holds ``burst_s`` seconds of that rate, so the budget is spread over the window
instead of firing when it opens; a request needs room in both. ``smoothing="window"`` is the
fixed windows alone (the whole budget may go in a window's first second).

Usage pattern (one :class:`Pacer` per process, shared by all users)::

    waited = pacer.acquire(endpoint.cost(params, ok=False), orders=1)   # may sleep
    t0 = time.perf_counter()            # time the request only AFTER acquire returns:
    resp = send(...)                    # waiting for budget is never response time
    pacer.observe(resp.headers, sent_at_ms=...)   # X-MBX-USED-WEIGHT-1M / ORDER-COUNT-*
    if resp.ok: pacer.refund(weight=endpoint.cost(params, ok=False))  # 0-weight order entry

or the same through :meth:`Pacer.acquire_for` / :meth:`Reservation.settle`, which knows the
refund rules. Order-entry endpoints cost 0 weight when they succeed and their listed weight
when they fail (2026-04-02 rule), so the pacer reserves the failure cost and the caller gives it
back on success.

Fairness: waiters queue FIFO in two lanes — requests that place orders, and requests that
do not — so orders throttled by the 10-second ORDERS window do not stall market-data calls, and
within a lane nobody overtakes (a ticket queue: only the lane's head evaluates the budgets; the
others wait on an event until the head leaves). New callers never barge past a non-empty lane.

429 and 418: :meth:`Pacer.on_429` pauses every acquire of the process until server-now +
``Retry-After``; :meth:`Pacer.on_418` makes every acquire raise :class:`IpBanned` until the
ban ends.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import gevent
from gevent.event import Event

from ..binance.errors import IpBanned as IpBanned  # raised here, re-exported; defined with the Binance answers
from ..binance.headers import (
    ORDER_COUNT_PREFIX,
    USED_WEIGHT_PREFIX,
    parse_order_count,
    parse_used_weight,
    suffix_for_window,
)
from ..binance.intervals import MINUTE_MS
from .budgets import ORDERS, RAW_REQUESTS, REQUEST_WEIGHT, Budgets
from .smoothing import DEFAULT_BURST_S, DEFAULT_SMOOTHING, SMOOTH_MAX_WINDOW_MS, SMOOTHING_MODES, TokenBucket
from .waits import note_wait

#: Shortest sleep the pacer asks for; guards against float rounding turning into a busy loop.
MIN_SLEEP_S = 0.001
#: The suffix-less legacy ``X-MBX-USED-WEIGHT`` header counts the 1-minute bucket.
_LEGACY_USED_WEIGHT = "x-mbx-used-weight"
_EPS = 1e-9


class CostedEndpoint(Protocol):
    """What :meth:`Pacer.acquire_for` needs of an endpoint (an
    :class:`~letrade_perf.binance.endpoints.Endpoint` or ``WsApiMethod``)."""

    def cost(self, params: Mapping[str, str], ok: bool = True) -> int: ...


@dataclass
class PacerStats:
    """A snapshot of the pacer. ``weight_*`` refer to the shortest REQUEST_WEIGHT window (the
    minute), ``orders_*`` to the shortest ORDERS window (10 s); ``*_used`` count our reservations
    and what the server reported for the current bucket (the larger), ``*_budget`` is
    ``limit × fraction × share`` rounded down. Totals count since the pacer was created.

    Waits count *while they happen*, so a snapshot taken mid-wait shows the blocking (a user
    held back for the rest of the run, or by a 429 pause, would otherwise never show): ``waits``
    is the number of acquires that had to wait — one counts when it starts, whether it is
    still waiting, got its budget, or ended otherwise (a ban, the run's end); ``wait_s_total``
    the seconds waited, the finished waits' plus the elapsed part of those in progress (it never
    goes down, even when the clock steps back). ``waiting_now`` is the number of acquires waiting
    right now and ``waiting_s`` the seconds they have waited so far (part of ``wait_s_total``)."""

    weight_used: int
    weight_budget: int
    orders_used: int
    orders_budget: int
    waits: int
    wait_s_total: float
    acquired_weight_total: int
    r429: int
    r418: int
    paused_until_ms: float
    banned_until_ms: float
    share: float
    refunded_weight_total: int = 0
    acquired_orders_total: int = 0
    refunded_orders_total: int = 0
    requests_total: int = 0
    orders_day_used: int = 0
    orders_day_budget: int = 0
    waiting_now: int = 0
    waiting_s: float = 0.0


def _label(kind: str, window_ms: int) -> str:
    for unit_ms, letter in ((86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")):
        if window_ms % unit_ms == 0:
            return f"{kind} {window_ms // unit_ms}{letter}"
    return f"{kind} {window_ms}ms"


class _Window:
    """One fixed window: the current bucket index and what is used in it, and its token bucket
    (``smooth``; None when the window is not smoothed)."""

    __slots__ = ("kind", "window_ms", "limit", "fraction", "bucket", "used", "ours", "label", "caps", "smooth",
                 "unit_ms", "need_kind")

    def __init__(self, kind: str, window_ms: int, limit: int, fraction: float):
        self.kind = kind
        self.window_ms = window_ms
        self.limit = limit
        self.fraction = fraction
        self.bucket = -1
        self.used = 0   # max(ours, server-reported) for the bucket, plus our later reservations
        self.ours = 0   # our own reservations in the bucket (what a refund may give back)
        self.label = _label(kind, window_ms)
        self.caps: dict[float, int] = {}   # budget per share (shares are few)
        self.smooth: TokenBucket | None = None
        self.unit_ms = 0.0   # what one unit costs in the token bucket at the current share (set_unit)
        #: what :meth:`need` counts, for the pacer's inlined fast path: 0 weight, 1 orders, 2 one per request
        self.need_kind = 0 if kind == REQUEST_WEIGHT else 1 if kind == ORDERS else 2

    def roll(self, now_ms: float) -> None:
        b = int(now_ms // self.window_ms)
        # A clock that steps backwards (a re-sync) keeps the newer bucket: conservative.
        if b > self.bucket:
            self.bucket = b
            self.used = 0
            self.ours = 0

    def budget(self, share: float) -> int:
        cap = self.caps.get(share)
        if cap is None:
            cap = self.caps[share] = int(self.limit * self.fraction * share + _EPS)
        return cap

    def need(self, weight: int, orders: int) -> int:
        if self.kind == REQUEST_WEIGHT:
            return weight
        if self.kind == ORDERS:
            return orders
        return 1  # RAW_REQUESTS: every request counts once

    def end_ms(self) -> int:
        return (self.bucket + 1) * self.window_ms

    def set_unit(self, share: float) -> None:
        """What one unit costs in this window's token bucket at ``share``: ms of its rate
        (0 at a zero budget, which the fixed window refuses anyway)."""
        cap = self.budget(share)
        self.unit_ms = self.window_ms / cap if cap > 0 else 0.0


class _Waiter:
    __slots__ = ("event", "start", "blocked_since")

    def __init__(self, start: float, has_share: bool = True) -> None:
        self.event = Event()
        self.start = start   # pacer clock (ms) when the acquire began
        # when it began to wait for the exchange's budget (or a 429 pause) rather than for a
        # share (a worker before its first share / after it quits): None while it has not
        self.blocked_since: float | None = start if has_share else None

    def wait(self) -> None:
        self.event.wait()
        self.event.clear()

    def wake(self) -> None:
        self.event.set()


def _local_ms() -> float:
    return time.time() * 1000.0


class Pacer:
    """Process-wide rate-limit budgets (see the module docstring for the usage pattern).

    :param budgets: windows from :func:`~letrade_perf.pacing.budgets_from_rate_limits`.
    :param weight_fraction: fraction of each REQUEST_WEIGHT (and RAW_REQUESTS) limit we may use.
    :param orders_fraction: fraction of each ORDERS limit we may use.
    :param share: this process's share of the IP/account budget (1.0 locally; a distributed
        worker starts at 0 — no requests — until the master assigns one).
    :param clock: *server* time in ms (e.g. ``ClockSync.server_now_ms``); windows align on it.
    :param sleep: seconds → None; ``gevent.sleep`` so waiting greenlets yield.
    :param margin_ms: extra wait past a bucket boundary (e.g. the clock's uncertainty) so a
        request released at the boundary does not land in the old bucket on the server.
    :param smoothing: ``"bucket"`` (default): windows of up to a minute also pace through a
        token bucket at ``budget / window`` (see :mod:`.smoothing`); ``"window"``: the fixed
        windows alone — a window's whole budget may go the moment it opens.
    :param burst_s: the buckets' capacity in seconds of their rate (at most the window);
        ignored with ``smoothing="window"``.
    """

    def __init__(self, budgets: Budgets, *, weight_fraction: float = 0.8, orders_fraction: float = 0.8,
                 share: float = 1.0, clock: Callable[[], float] = _local_ms,
                 sleep: Callable[[float], Any] = gevent.sleep, margin_ms: float = 0.0,
                 smoothing: str = DEFAULT_SMOOTHING, burst_s: float = DEFAULT_BURST_S):
        for name, f in (("weight_fraction", weight_fraction), ("orders_fraction", orders_fraction)):
            if not 0.0 < f <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {f}")
        if smoothing not in SMOOTHING_MODES:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHING_MODES)}, got {smoothing!r}")
        if not 0.0 <= burst_s < float("inf"):
            raise ValueError(f"burst_s must be a finite number >= 0, got {burst_s}")
        self._check_share(share)
        self.budgets = budgets
        self._clock = clock
        self._sleep = sleep
        self.margin_ms = float(margin_ms)
        self._share = float(share)
        self._weight = [_Window(REQUEST_WEIGHT, ms, lim, weight_fraction) for ms, lim in budgets.weight]
        self._orders = [_Window(ORDERS, ms, lim, orders_fraction) for ms, lim in budgets.orders]
        self._raw = [_Window(RAW_REQUESTS, ms, lim, weight_fraction) for ms, lim in budgets.raw]
        self._windows = self._weight + self._orders + self._raw
        self.smoothing = smoothing
        self.burst_s = float(burst_s)
        if smoothing == "bucket":
            for w in self._windows:
                if w.window_ms <= SMOOTH_MAX_WINDOW_MS:
                    w.smooth = TokenBucket(min(self.burst_s * 1000.0, w.window_ms))
                    w.set_unit(self._share)
        #: (canonical header name, window, is-weight) for observe()'s fast path, in the order
        #: _apply_reports applies them (weight windows, then order windows)
        self._fast_headers: tuple[tuple[str, _Window, bool], ...] | None = tuple(
            [(USED_WEIGHT_PREFIX + suffix_for_window(w.window_ms), w, True) for w in self._weight]
            + [(ORDER_COUNT_PREFIX + suffix_for_window(w.window_ms), w, False) for w in self._orders])
        # Lane 0: requests without orders; lane 1: requests that place orders.
        self._lanes: tuple[deque[_Waiter], deque[_Waiter]] = (deque(), deque())
        self._paused_until = 0.0
        self._banned_until = 0.0
        self._listeners_429: list[Callable[[float, float], Any]] = []
        self._listeners_418: list[Callable[[float, float], Any]] = []
        self._listeners_wait: list[Callable[[float], Any]] = []
        self._waits = 0               # waits started (the lanes hold those in progress)
        self._wait_s_done = 0.0       # seconds of the waits that have ended
        self._wait_s_reported = 0.0   # the largest wait_s_total stats() gave: it never goes down
        self._acquired_weight = 0
        self._acquired_orders = 0
        self._refunded_weight = 0
        self._refunded_orders = 0
        self._requests = 0
        self._r429 = 0
        self._r418 = 0

    # -- properties ---------------------------------------------------------------------
    @property
    def share(self) -> float:
        return self._share

    @property
    def paused_until_ms(self) -> float:
        return self._paused_until

    @property
    def banned_until_ms(self) -> float:
        return self._banned_until

    def now_ms(self) -> float:
        """The pacer's clock (server ms): pass it as ``sent_at_ms`` to :meth:`observe`."""
        return self._clock()

    # -- acquiring ----------------------------------------------------------------------
    def acquire(self, weight: int, orders: int = 0, *, name: str | None = None) -> float:
        """Block until every window has room for ``weight`` (REQUEST_WEIGHT), ``orders``
        (ORDERS) and one request (RAW_REQUESTS), then reserve it; return the seconds waited
        (0.0 when there was room at once).

        Raises ValueError when the request could never fit (heavier than the whole budget —
        at share 1, or at the current share when it is > 0; ``name`` labels the message), and
        :class:`IpBanned` while a 418 ban lasts. During a 429 pause it waits for the pause to end;
        at share 0 it waits until a share is assigned.
        """
        if weight < 0 or orders < 0:
            raise ValueError(f"{name or 'request'}: weight and orders must be >= 0 (got {weight}, {orders})")
        start = self._clock()
        self._raise_if_banned(start)
        lane = self._lanes[1 if orders else 0]
        if not lane and self._admit_now(start, weight, orders):   # it fits now, so it fits the whole budget
            return 0.0
        return self._acquire_slow(start, weight, orders, name)

    def _acquire_slow(self, start: float, weight: int, orders: int, name: str | None) -> float:
        """:meth:`acquire` once the request did not fit at ``start`` (or others wait before it):
        queue in its lane and wait for the budget; the seconds waited."""
        lane = self._lanes[1 if orders else 0]
        self._check_fits(weight, orders, 1.0, name)
        me = _Waiter(start, self._share > 0)
        lane.append(me)
        self._waits += 1   # counted as it starts: stats() shows the waits in progress
        try:
            while True:
                now = self._clock()
                self._raise_if_banned(now)
                if lane[0] is not me:
                    me.wait()  # woken when the waiter ahead leaves (or on a ban)
                    continue
                if self._share > 0:
                    if me.blocked_since is None:
                        me.blocked_since = now
                    self._check_fits(weight, orders, self._share, name)
                delay = self._delay_ms(now, weight, orders)
                if delay == 0.0:
                    self._reserve(now, weight, orders)
                    break
                if delay is None:
                    me.wait()  # share 0: woken by set_share (or a ban)
                else:
                    self._sleep(max(delay / 1000.0, MIN_SLEEP_S))
        finally:
            lane.remove(me)
            if lane:
                lane[0].wake()
            end = self._clock()
            waited = max(0.0, (end - start) / 1000.0)
            self._wait_s_done += waited   # also a wait ended by a ban or by killing the greenlet
            note_wait(waited)             # the timed blocks open in this context leave it out
            if me.blocked_since is not None and self._listeners_wait:
                blocked = max(0.0, (end - me.blocked_since) / 1000.0)
                for cb in list(self._listeners_wait):
                    try:
                        cb(blocked)
                    except Exception:   # a listener must never break an acquire
                        pass
        return waited

    def acquire_for(self, endpoint: CostedEndpoint, params: Mapping[str, str] | None = None,
                    orders: int | None = None) -> "Reservation":
        """Reserve what ``endpoint`` (an :class:`~letrade_perf.binance.endpoints.Endpoint` or
        ``WsApiMethod``) costs if it *fails* — the upper bound — plus ``orders`` (default: 1
        when the endpoint places an order). Settle the returned :class:`Reservation` with the
        outcome to refund what the call did not cost."""
        params = params or {}
        weight = endpoint.cost(params, ok=False)
        if orders is None:
            orders = 1 if getattr(endpoint, "counts_order", False) else 0
        if weight >= 0 and orders >= 0 and not self._lanes[1 if orders else 0]:
            # acquire()'s no-wait path, inlined: this runs before every request
            start = self._clock()
            self._raise_if_banned(start)
            if self._admit_now(start, weight, orders):
                return Reservation(self, endpoint, params, weight, orders, self._clock(), 0.0)
            waited = self._acquire_slow(start, weight, orders, self._endpoint_name(endpoint))
        else:
            waited = self.acquire(weight, orders, name=self._endpoint_name(endpoint))
        return Reservation(self, endpoint, params, weight, orders, self._clock(), waited)

    @staticmethod
    def _endpoint_name(endpoint: Any) -> str | None:
        return getattr(endpoint, "name", None) or getattr(endpoint, "method", None)

    def _check_fits(self, weight: int, orders: int, share: float, name: str | None) -> None:
        for w in self._windows:
            need = w.need(weight, orders)
            cap = w.budget(share)
            if need > cap:
                raise ValueError(
                    f"{name or 'request'} needs {need} of {w.label} but the whole budget is {cap} "
                    f"(limit {w.limit} × fraction {w.fraction:g} × share {share:g})")

    def _raise_if_banned(self, now: float) -> None:
        if self._banned_until > now:
            raise IpBanned(self._banned_until)

    def _delay_ms(self, now: float, weight: int, orders: int) -> float | None:
        """0.0 when the request fits now; ms to wait (pause end / latest boundary of every
        window without room); None at share 0 (only a new share can help)."""
        if self._share <= 0:
            return None
        until = self._paused_until if self._paused_until > now else 0.0
        share = self._share
        for w in self._windows:
            w.roll(now)
            n = w.need(weight, orders)
            # Two limits: our own reservations within our share, and the IP/account-wide use
            # (what the server reports, which counts the other workers and clients too) within
            # the whole budget. Locally (share 1) both are the same limit.
            if w.ours + n > w.budget(share) or w.used + n > w.budget(1.0):
                until = max(until, w.end_ms() + self.margin_ms)
            smooth = w.smooth
            if smooth is not None and n:
                # the bucket spreads our share of the budget; the fixed window above still caps it
                d = smooth.delay_ms(now, n * w.unit_ms)
                if d and now + d > until:
                    until = now + d
        return 0.0 if until <= now else until - now

    def _admit_now(self, now: float, weight: int, orders: int) -> bool:
        """``_delay_ms(now, …) == 0.0`` and then ``_reserve(now, …)``, in one method with the
        windows' helpers inlined (it runs before every request): the same rolls, token-bucket
        refills, checks and reservations, in the same order. False (nothing reserved; the
        windows rolled and the buckets refilled, as ``_delay_ms`` leaves them) when it must wait."""
        share = self._share
        if share <= 0:
            return False
        fits = self._paused_until <= now
        for w in self._windows:
            b = int(now // w.window_ms)
            if b > w.bucket:                      # _Window.roll
                w.bucket = b
                w.used = 0
                w.ours = 0
            k = w.need_kind
            n = weight if k == 0 else orders if k == 1 else 1
            caps = w.caps
            cap = caps.get(share)
            if cap is None:
                cap = w.budget(share)
            full = caps.get(1.0)
            if full is None:
                full = w.budget(1.0)
            if w.ours + n > cap or w.used + n > full:
                fits = False
            smooth = w.smooth
            if smooth is not None and n and smooth.delay_ms(now, n * w.unit_ms):
                fits = False
        if not fits:
            return False
        for w in self._windows:                   # _reserve(now, …, rolled=True)
            k = w.need_kind
            n = weight if k == 0 else orders if k == 1 else 1
            w.used += n
            w.ours += n
            if w.smooth is not None and n:
                w.smooth.take(n * w.unit_ms)
        self._acquired_weight += weight
        self._acquired_orders += orders
        self._requests += 1
        return True

    def _reserve(self, now: float, weight: int, orders: int, rolled: bool = False) -> None:
        for w in self._windows:
            if not rolled:      # _delay_ms(now, ...) just rolled them
                w.roll(now)
            n = w.need(weight, orders)
            w.used += n
            w.ours += n
            if w.smooth is not None and n:
                w.smooth.take(n * w.unit_ms)     # _delay_ms(now, ...) refilled it just before
        self._acquired_weight += weight
        self._acquired_orders += orders
        self._requests += 1

    # -- feedback -----------------------------------------------------------------------
    def observe(self, headers: Mapping[str, str], *, sent_at_ms: float | None = None,
                orders: bool = True) -> None:
        """Raise the current buckets' used counts to the server-reported
        ``X-MBX-USED-WEIGHT-<n><u>`` / ``X-MBX-ORDER-COUNT-<n><u>`` values (other clients of
        the IP/account count too). Counts only ever go up: a report that lags behind our own
        reservations changes nothing. Header names are case-insensitive.

        ``sent_at_ms`` (the pacer clock when the request was sent): a report for a request sent
        in an earlier bucket is ignored for that window — it may count the old bucket, and
        applying it to the new one would throttle a whole window for nothing. Without it every
        report is applied to the current bucket (safe, possibly over-cautious at boundaries).
        """
        fast = self._fast_headers
        if fast is not None:
            # Binance sends the canonical upper-case names: one dict lookup per window instead
            # of scanning every header (this runs on every response); applied as _apply_reports
            # would (one clock reading, the windows in its order), without its dicts.
            found: list[tuple[_Window, int]] = []
            weight_found = False
            for hname, win, is_weight in fast:
                if not (is_weight or orders):   # only order responses carry X-MBX-ORDER-COUNT-*
                    continue
                v = headers.get(hname)
                if v is not None:
                    try:
                        found.append((win, int(v)))
                    except ValueError:
                        continue
                    if is_weight:
                        weight_found = True
            if weight_found:
                now = self._clock()
                for win, value in found:
                    b = int(now // win.window_ms)
                    if b > win.bucket:            # _Window.roll
                        win.bucket = b
                        win.used = 0
                        win.ours = 0
                    if sent_at_ms is not None and int(sent_at_ms // win.window_ms) != win.bucket:
                        continue
                    if value > win.used:
                        win.used = value
                return
        used = parse_used_weight(headers)
        if MINUTE_MS not in used:
            for k, v in headers.items():
                if k.lower() == _LEGACY_USED_WEIGHT:
                    try:
                        used[MINUTE_MS] = int(v)
                    except ValueError:
                        pass
                    break
        counts = parse_order_count(headers) if self._orders else {}
        if not used and not counts:
            return
        self._apply_reports(used, counts, sent_at_ms)

    def _apply_reports(self, used: dict[int, int], counts: dict[int, int], sent_at_ms: float | None) -> None:
        now = self._clock()
        for windows, reported in ((self._weight, used), (self._orders, counts)):
            for w in windows:
                v = reported.get(w.window_ms)
                if v is None:
                    continue
                w.roll(now)
                if sent_at_ms is not None and int(sent_at_ms // w.window_ms) != w.bucket:
                    continue
                if v > w.used:
                    w.used = v

    def refund(self, weight: int = 0, orders: int = 0, *, reserved_at_ms: float | None = None) -> None:
        """Give back part of a reservation: e.g. the failure weight of an order-entry call that
        succeeded (0 weight), or the order of a rejected order. Only what *we* reserved in the
        current bucket can be given back. ``reserved_at_ms`` (the pacer clock at acquire):
        nothing is refunded in a window whose bucket has rolled since — that reservation
        belonged to the old bucket (a token bucket gets its part back all the same: it has no
        buckets, and never holds more than its burst). Waiters notice the freed room at their next
        wake-up."""
        if weight < 0 or orders < 0:
            raise ValueError("refund amounts must be >= 0")
        if not weight and not orders:
            return
        now = self._clock()
        given_w = given_o = 0
        for windows, amount in ((self._weight, weight), (self._orders, orders)):
            for w in windows:
                if not amount:
                    continue
                w.roll(now)
                if w.smooth is not None:
                    w.smooth.give(now, amount * w.unit_ms)
                if reserved_at_ms is not None and int(reserved_at_ms // w.window_ms) != w.bucket:
                    continue
                r = min(amount, w.ours)
                w.ours -= r
                w.used = max(w.ours, w.used - r)
                if w.kind == REQUEST_WEIGHT:
                    given_w = max(given_w, r)
                else:
                    given_o = max(given_o, r)
        self._refunded_weight += given_w
        self._refunded_orders += given_o

    def on_429(self, retry_after_s: float) -> None:
        """A 429 arrived: pause every acquire of the process until server-now + ``retry_after_s``."""
        now = self._clock()
        until = now + max(0.0, float(retry_after_s)) * 1000.0
        self._r429 += 1
        self.pause_until(until)
        for cb in list(self._listeners_429):
            cb(retry_after_s, until)

    def on_418(self, retry_after_s: float) -> None:
        """A 418 arrived: every acquire raises :class:`IpBanned` until server-now + ``retry_after_s``."""
        now = self._clock()
        until = now + max(0.0, float(retry_after_s)) * 1000.0
        self._r418 += 1
        self.ban_until(until)
        for cb in list(self._listeners_418):
            cb(retry_after_s, until)

    def pause_until(self, until_ms: float) -> None:
        """Pause acquires until server time ``until_ms`` without counting a 429 (a pause relayed
        from another worker)."""
        if until_ms > self._paused_until:
            self._paused_until = float(until_ms)

    def ban_until(self, until_ms: float) -> None:
        """Ban until server time ``until_ms`` without counting a 418 (relayed); wakes waiters so
        they raise :class:`IpBanned` now."""
        if until_ms > self._banned_until:
            self._banned_until = float(until_ms)
        self._wake_all()

    def subscribe(self, *, on_429: Callable[[float, float], Any] | None = None,
                  on_418: Callable[[float, float], Any] | None = None,
                  on_wait: Callable[[float], Any] | None = None) -> None:
        """Call ``on_429(retry_after_s, until_ms)`` / ``on_418(...)`` after every *local*
        :meth:`on_429` / :meth:`on_418` (the distributed worker forwards them to the master).

        ``on_wait(blocked_s)`` is called when an acquire that had to wait ends (it got its
        budget, a ban ended it, or its greenlet was killed), with the seconds it was blocked up
        to now: waiting for the budget or a 429 pause, not for a share (a worker before its
        first share). The metrics recorder counts those seconds as wanted (``uptime``)."""
        if on_429 is not None:
            self._listeners_429.append(on_429)
        if on_418 is not None:
            self._listeners_418.append(on_418)
        if on_wait is not None:
            self._listeners_wait.append(on_wait)

    def blocked_s(self) -> float:
        """Seconds the longest-blocked acquire waiting now has been blocked (0.0 when none is):
        the waits in progress that :meth:`subscribe`'s ``on_wait`` has not reported yet."""
        now = self._clock()
        since = [w.blocked_since for lane in self._lanes for w in lane if w.blocked_since is not None]
        return max(0.0, (now - min(since)) / 1000.0) if since else 0.0

    # -- share --------------------------------------------------------------------------
    @staticmethod
    def _check_share(share: float) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")

    def set_share(self, share: float) -> None:
        """Use ``share`` of every budget from now on (distributed split). Reservations already
        made stay; a lower share simply leaves less room in the current buckets. The token
        buckets' rates follow the share (their content is kept in seconds of the rate)."""
        self._check_share(share)
        self._share = float(share)
        for w in self._windows:
            if w.smooth is not None:
                w.set_unit(self._share)
        for lane in self._lanes:
            if lane:
                lane[0].wake()

    def _wake_all(self) -> None:
        for lane in self._lanes:
            for waiter in list(lane):
                waiter.wake()

    # -- stats --------------------------------------------------------------------------
    def stats(self) -> PacerStats:
        now = self._clock()
        for w in self._windows:
            w.roll(now)
        share = self._share
        weight = self._weight[0] if self._weight else None
        orders = self._orders[0] if self._orders else None
        day = next((w for w in self._orders if w.window_ms == 86_400_000), None)
        waiting_now = len(self._lanes[0]) + len(self._lanes[1])
        waiting_s = sum(max(0.0, (now - w.start) / 1000.0) for lane in self._lanes for w in lane)
        wait_s_total = self._wait_s_reported = max(self._wait_s_reported, self._wait_s_done + waiting_s)
        return PacerStats(
            weight_used=weight.used if weight else 0,
            weight_budget=weight.budget(share) if weight else 0,
            orders_used=orders.used if orders else 0,
            orders_budget=orders.budget(share) if orders else 0,
            waits=self._waits,
            wait_s_total=wait_s_total,
            acquired_weight_total=self._acquired_weight,
            r429=self._r429,
            r418=self._r418,
            paused_until_ms=self._paused_until,
            banned_until_ms=self._banned_until,
            share=share,
            refunded_weight_total=self._refunded_weight,
            acquired_orders_total=self._acquired_orders,
            refunded_orders_total=self._refunded_orders,
            requests_total=self._requests,
            orders_day_used=day.used if day else 0,
            orders_day_budget=day.budget(share) if day else 0,
            waiting_now=waiting_now,
            waiting_s=waiting_s,
        )


class Reservation:
    """What :meth:`Pacer.acquire_for` reserved; :meth:`settle` refunds what the call did not cost.

    ``waited_s`` is the time spent waiting for budget (never part of the response time);
    ``at_ms`` the pacer clock when the reservation was made.
    """

    __slots__ = ("pacer", "endpoint", "params", "weight", "orders", "at_ms", "waited_s", "settled")

    def __init__(self, pacer: Pacer, endpoint: CostedEndpoint, params: Mapping[str, str], weight: int, orders: int,
                 at_ms: float, waited_s: float):
        self.pacer = pacer
        self.endpoint = endpoint
        self.params = params
        self.weight = weight
        self.orders = orders
        self.at_ms = at_ms
        self.waited_s = waited_s
        self.settled = False

    def settle(self, ok: bool, *, order_counted: bool | None = None) -> None:
        """Record the outcome (once): a successful order-entry call refunds its weight (0-weight
        rule); reserved orders are refunded unless the order counted (default: it counted when
        ``ok``; pass ``order_counted=True`` for an outcome you cannot know, e.g. a timeout)."""
        if self.settled:
            return
        self.settled = True
        weight_back = 0
        if ok and getattr(self.endpoint, "order_entry", True):   # only order entry costs less on success
            weight_back = self.weight - self.endpoint.cost(self.params, ok=True)
        counted = ok if order_counted is None else order_counted
        orders_back = 0 if counted else self.orders
        if weight_back > 0 or orders_back:
            self.pacer.refund(max(0, weight_back), orders_back, reserved_at_ms=self.at_ms)
