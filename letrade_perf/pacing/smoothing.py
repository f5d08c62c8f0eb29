"""Smooth pacing: a token bucket per short window, on top of the fixed windows.

Binance counts weight and orders in fixed, clock-aligned windows, and a pacer that only mirrors
them admits a whole window's budget the moment the window opens: under saturating demand about
all of a minute's weight fires in its first half second, then nothing until the next minute.
With ``smoothing="bucket"`` (the default) every window of at most :data:`SMOOTH_MAX_WINDOW_MS`
(REQUEST_WEIGHT 1m, ORDERS 10s) also gets a :class:`TokenBucket` that refills at the window's
budget spread evenly over the window — ``budget / window`` (weight 4 800 a minute → 80 a second)
— and holds at most ``burst_s`` seconds of that rate. A request needs room in the fixed windows
*and* in the buckets: the fixed windows still mirror the exchange's counters (and still take the
server's headers, 429/418, shares) and are never exceeded; the buckets only spread the budget.

Why these numbers:

* Over any interval of ``T`` seconds a bucket admits at most ``rate × T + burst`` — so no
  one-second window carries more than ``rate + burst`` (``rate`` = budget / 60 for the minute).
* The bucket refills exactly the budget per window, so under saturating demand every fixed window
  is still used fully: the bucket gives ``budget + burst`` a window, the fixed window caps it at
  ``budget`` — it closes ``burst_s`` seconds before the boundary, the bucket fills meanwhile and
  the next window opens with one burst, never with the whole budget.
* Longer windows (ORDERS per day, RAW_REQUESTS per 5 minutes) are not smoothed: spreading a day's
  orders over the day would hold a one-hour run to 1/24 of what it may send. They stay fixed
  windows.
* A share (a distributed worker's part of the budget) scales the rate; the bucket's content is
  kept in *seconds of the rate*, so a share change rescales the rate and the burst alike, and the
  workers' bursts add up to the whole budget's burst.
* A request heavier than the burst (a 250-weight depth call against a 1 s burst of 80) is not
  refused: it goes when the bucket is full and leaves it in debt, so the requests after it wait
  until the rate has paid for it.

``smoothing="window"`` leaves the buckets out: the fixed windows alone, as before.
"""
from __future__ import annotations

#: The smoothing modes: ``bucket`` (token bucket on top of the fixed windows) and ``window``.
SMOOTHING_MODES = ("bucket", "window")
#: The default mode: smooth.
DEFAULT_SMOOTHING = "bucket"
#: The default burst, in seconds of a bucket's rate: five seconds (weight 400 at 4 800 a minute,
#: 1/12 of the minute's budget). A trading system's strategies act together — on a candle close,
#: at start-up — and a one-second burst holds such a step back for seconds although the minute's
#: budget is far from used; five seconds take it, while under saturating demand no one-second
#: window still carries more than the rate plus the burst (the documented bound is 1.5 × the rate
#: plus the burst) and a minute never opens with more than 1/12 of its budget.
DEFAULT_BURST_S = 5.0
#: Windows up to this long get a bucket (the minute of REQUEST_WEIGHT, the 10 s of ORDERS).
SMOOTH_MAX_WINDOW_MS = 60_000
#: Float slack: a bucket this close to enough credit has enough.
_EPS_MS = 1e-6


class TokenBucket:
    """A token bucket kept in milliseconds of its rate (virtual-scheduling form).

    ``credit_ms`` is how many milliseconds of the rate are banked: at most ``burst_ms``, below 0
    after a request heavier than the burst (debt). A request of ``n`` units costs
    ``n × window_ms / budget`` ms — the caller converts with the current budget, so the rate
    follows the share. It fits when the credit covers its cost, or the whole burst when it costs
    more than the burst. The clock is the pacer's (server ms); a clock stepping back adds nothing.
    """

    __slots__ = ("burst_ms", "credit_ms", "last_ms")

    def __init__(self, burst_ms: float):
        self.burst_ms = float(burst_ms)
        self.credit_ms = self.burst_ms       # starts full: the first burst is available at once
        self.last_ms: float | None = None

    def refill(self, now_ms: float) -> None:
        """Bank the time since the last refill, up to the burst."""
        last = self.last_ms
        if last is None:
            self.last_ms = now_ms
        elif now_ms > last:
            c = self.credit_ms + (now_ms - last)
            self.credit_ms = c if c < self.burst_ms else self.burst_ms
            self.last_ms = now_ms

    def delay_ms(self, now_ms: float, cost_ms: float) -> float:
        """Refill to ``now_ms``; 0.0 when ``cost_ms`` fits now, else the ms until it does (at
        the current rate). (:meth:`refill` inlined: this runs on every request.)"""
        last = self.last_ms
        burst = self.burst_ms
        if last is None:
            self.last_ms = now_ms
        elif now_ms > last:
            c = self.credit_ms + (now_ms - last)
            self.credit_ms = c if c < burst else burst
            self.last_ms = now_ms
        short = (cost_ms if cost_ms < burst else burst) - self.credit_ms
        return short if short > _EPS_MS else 0.0

    def take(self, cost_ms: float) -> None:
        """Spend ``cost_ms``, right after :meth:`delay_ms` said it fits (at the same instant)."""
        self.credit_ms -= cost_ms

    def give(self, now_ms: float, cost_ms: float) -> None:
        """Give back ``cost_ms`` (a refund), never above the burst."""
        self.refill(now_ms)
        c = self.credit_ms + cost_ms
        self.credit_ms = c if c < self.burst_ms else self.burst_ms
