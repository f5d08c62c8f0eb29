"""Process-wide REQUEST_WEIGHT and ORDERS budgets with header feedback and distributed shares.

* :class:`Pacer` — fixed, server-clock-aligned windows; ``acquire`` before a request (waiting
  for budget is never response time: time the request after ``acquire`` returns), ``observe``
  its rate-limit headers, ``refund`` what it did not cost, ``on_429`` / ``on_418``. By default
  a token bucket per short window spreads the budget over the window (:mod:`.smoothing`).
* :func:`budgets_from_rate_limits` — :class:`Budgets` from ``exchangeInfo.rateLimits``.
* :mod:`letrade_perf.harness.distributed` — ``MasterPacing`` / ``WorkerPacing``: the per-worker
  share split (in the harness wing: it needs Locust's runners).
"""
from .budgets import Budgets, budgets_from_rate_limits
from .pacer import IpBanned, Pacer, PacerStats, Reservation
from .smoothing import DEFAULT_BURST_S, DEFAULT_SMOOTHING, SMOOTHING_MODES

__all__ = ["DEFAULT_BURST_S", "DEFAULT_SMOOTHING", "SMOOTHING_MODES", "Budgets", "IpBanned", "Pacer", "PacerStats",
           "Reservation", "budgets_from_rate_limits"]
