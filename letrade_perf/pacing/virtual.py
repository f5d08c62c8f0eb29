"""Run real pacers in virtual time against a model of the exchange's counters.

What the smooth-pacing tests and ``bench/pacing_smooth.py`` drive: :class:`VirtualTime` is a
discrete-event clock for gevent — ``sleep`` parks the greenlet until the clock reaches its wake
time, and :meth:`VirtualTime.run` lets every runnable greenlet run (``gevent.idle``) before it
moves the clock to the next wake-up — so minutes of saturating demand take a fraction of a
second, and every figure is exact, not wall-time noise. :class:`ExchangeModel` counts weight per
fixed minute and orders per fixed 10 s like the exchange (one IP, one account), answers the
``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-10S`` headers, refuses past the limit (a 429),
and logs every request it accepted. :func:`saturate` runs ``workers`` pacers (the budget split
in equal shares, as a distributed run does) whose users send back to back, and
:func:`measure` turns the log into the figures the targets name.
"""
from __future__ import annotations

import heapq
import random
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

import gevent
from gevent.event import Event

from ..binance.intervals import MINUTE_MS
from .budgets import Budgets
from .pacer import Pacer
from .smoothing import DEFAULT_BURST_S, DEFAULT_SMOOTHING

_TEN_S_MS = 10_000


class VirtualTime:
    """A discrete-event clock (ms) for greenlets: ``clock`` and ``sleep`` go to the pacer and the
    simulated users; :meth:`run` advances it. Only greenlets sleeping through it, or waiting on
    something another such greenlet sets, may be running: anything else would block the loop."""

    def __init__(self, start_ms: float):
        self.ms = float(start_ms)
        self._wakes: list[tuple[float, int, Event]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.ms

    def sleep(self, seconds: float) -> None:
        ev = Event()
        self._seq += 1
        heapq.heappush(self._wakes, (self.ms + max(0.0, seconds) * 1000.0, self._seq, ev))
        ev.wait()

    def run(self, until_ms: float) -> None:
        """Run the greenlets until the clock reaches ``until_ms`` (or nobody sleeps any more)."""
        while True:
            gevent.idle()                     # every runnable greenlet runs until it parks
            if not self._wakes or self._wakes[0][0] > until_ms:
                self.ms = max(self.ms, until_ms)
                return
            t = self._wakes[0][0]
            self.ms = max(self.ms, t)
            while self._wakes and self._wakes[0][0] <= t:
                heapq.heappop(self._wakes)[2].set()


class ExchangeModel:
    """Fixed-window counters of one IP (weight per minute) and account (orders per 10 s).

    :meth:`request` charges a request arriving at ``now_ms`` and returns its rate-limit headers,
    or None for a 429 (over the limit: nothing charged). A successful order costs 0 weight (the
    order-entry rule); ``log`` lists ``(arrival_ms, weight, orders)`` of every accepted request.
    """

    def __init__(self, weight_limit: int = 6000, orders_limit: int = 100):
        self.weight_limit = weight_limit
        self.orders_limit = orders_limit
        self.minute = -1
        self.used = 0
        self.ten_s = -1
        self.orders = 0
        self.r429 = 0
        self.log: list[tuple[float, int, int]] = []

    def request(self, now_ms: float, weight: int, orders: int) -> dict[str, str] | None:
        m, t = int(now_ms // MINUTE_MS), int(now_ms // _TEN_S_MS)
        if m != self.minute:
            self.minute, self.used = m, 0
        if t != self.ten_s:
            self.ten_s, self.orders = t, 0
        charged = 0 if orders else weight
        if self.used + charged > self.weight_limit or self.orders + orders > self.orders_limit:
            self.r429 += 1
            return None
        self.used += charged
        self.orders += orders
        self.log.append((now_ms, charged, orders))
        return {"X-MBX-USED-WEIGHT-1M": str(self.used), "X-MBX-ORDER-COUNT-10S": str(self.orders)}


#: Request weights of a REST market-data mix (depth 100 → 5, klines 2, ticker 2, bookTicker 4, time 1).
MARKET_MIX = (5, 2, 2, 4, 1)


@dataclass
class Result:
    """One virtual run: the exchange's log and the pacers."""

    exchange: ExchangeModel
    pacers: list[Pacer]
    start_ms: float
    end_ms: float
    weight_budget: int
    orders_budget: int
    users: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def saturate(*, workers: int = 1, smoothing: str = DEFAULT_SMOOTHING, burst_s: float = DEFAULT_BURST_S, seconds: float = 150.0,
             users: int = 24, latency_ms: float = 20.0, weight_limit: int = 6000, orders_limit: int = 100,
             weight_fraction: float = 0.8, orders_fraction: float = 0.8, order_share: float = 0.1,
             mix: Sequence[int] = MARKET_MIX, start_ms: float | None = None, seed: int = 1) -> Result:
    """``workers`` pacers at share ``1 / workers`` each, ``users`` users per pacer sending back to
    back (no think time: saturating demand) with a round trip of ``latency_ms`` (±25 % jitter);
    ``order_share`` of the requests place an order (weight 1, refunded when it succeeds). Runs
    ``seconds`` of virtual time from ``start_ms`` (default: a random instant of a minute)."""
    rng = random.Random(seed)
    if start_ms is None:
        start_ms = 1_700_000_040_000 + rng.uniform(0, MINUTE_MS)
    vt = VirtualTime(start_ms)
    exchange = ExchangeModel(weight_limit, orders_limit)
    budgets = Budgets(weight=((MINUTE_MS, weight_limit),), orders=((_TEN_S_MS, orders_limit), (86_400_000, 200_000)))
    pacers = [Pacer(budgets, weight_fraction=weight_fraction, orders_fraction=orders_fraction,
                    share=1.0 / workers, clock=vt.clock, sleep=vt.sleep, smoothing=smoothing, burst_s=burst_s)
              for _ in range(workers)]

    def user(pacer: Pacer, urng: random.Random) -> None:
        while True:
            order = 1 if urng.random() < order_share else 0
            weight = 1 if order else urng.choice(mix)
            pacer.acquire(weight, order)
            sent = vt.clock()
            vt.sleep(latency_ms * urng.uniform(0.375, 0.625) / 1000.0)
            headers = exchange.request(vt.clock(), weight, order)
            vt.sleep(latency_ms * urng.uniform(0.375, 0.625) / 1000.0)
            if headers is None:
                pacer.on_429(1.0)
                continue
            pacer.observe(headers, sent_at_ms=sent)
            if order:
                pacer.refund(weight=1, reserved_at_ms=sent)       # order entry: 0 weight when it succeeds

    greenlets = [gevent.spawn(user, p, random.Random(rng.random())) for p in pacers for _ in range(users)]
    try:
        vt.run(start_ms + seconds * 1000.0)
    finally:
        gevent.killall(greenlets)
    return Result(exchange, pacers, start_ms, vt.ms, int(weight_limit * weight_fraction + 1e-9),
                  int(orders_limit * orders_fraction + 1e-9), users * workers)


def max_in_span(events: Sequence[tuple[float, int]], span_ms: float) -> int:
    """The largest sum of the amounts of ``(time_ms, amount)`` events (in time order) within any
    half-open span ``[t, t + span_ms)`` — a sliding window, stricter than aligned seconds."""
    best = total = 0
    lo = 0
    for t, amount in events:
        total += amount
        while events[lo][0] <= t - span_ms:
            total -= events[lo][1]
            lo += 1
        best = max(best, total)
    return best


@dataclass
class Figures:
    """What the smooth-pacing targets name, for one run."""

    weight_peak_1s: float
    """The most weight in any one second ÷ (weight budget ÷ 60)."""
    orders_peak_1s: float
    """The most orders in any one second ÷ (orders budget ÷ 10)."""
    weight_use: float
    """The least used of the run's whole minutes: weight charged ÷ weight budget."""
    weight_use_median: float
    """The median over the run's whole minutes."""
    r429: int
    minutes: int


def measure(result: Result) -> Figures:
    """Figures of a run, over the whole server minutes after its first (the demand is saturating
    from the start, but the first minute starts part-way)."""
    log = result.exchange.log
    first = int(result.start_ms // MINUTE_MS) + 1
    last = int(result.end_ms // MINUTE_MS)            # exclusive: the minute the run ends in is partial
    per_minute = {m: 0 for m in range(first, last)}
    for t, w, _o in log:
        m = int(t // MINUTE_MS)
        if m in per_minute:
            per_minute[m] += w
    uses = [v / result.weight_budget for v in per_minute.values()] or [0.0]
    weight_peak = max_in_span([(t, w) for t, w, _o in log], 1000.0)
    orders_peak = max_in_span([(t, o) for t, _w, o in log if o], 1000.0)
    return Figures(weight_peak_1s=weight_peak / (result.weight_budget / 60.0),
                   orders_peak_1s=orders_peak / (result.orders_budget / 10.0),
                   weight_use=min(uses), weight_use_median=statistics.median(uses),
                   r429=result.exchange.r429, minutes=len(per_minute))
