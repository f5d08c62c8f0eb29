"""Server-clock estimation: an NTP-style min-RTT filter over ``GET /api/v3/time``.

Binance's rate-limit windows are aligned on *server* time and WebSocket lag is measured against
server event times (``E``), so the harness needs ``server_now ≈ local_now + offset``. One sample
is ``t0 = now(); s = serverTime; t1 = now()``; assuming the server stamped ``s`` half-way through
the round trip, ``offset = s + 0.5 − (t0 + t1)/2`` (``serverTime`` is truncated to whole ms, so
the true server time lies in ``[s, s + 1)``; its midpoint is ``s + 0.5``). The error is at most
half the round trip plus 0.5 ms of truncation — so of several samples the one with the smallest RTT is the most trustworthy, and every figure derived from the
offset carries ``uncertainty_ms = RTT/2 + 0.5``.

Greenlet safety: :meth:`ClockSync.sync` builds the new estimate in locals and publishes it with
one attribute assignment, so readers never see a half-updated estimate and no lock is needed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

#: ``serverTime`` is an integer number of ms: truncation adds up to this much error.
TRUNCATION_MS = 0.5


@dataclass(frozen=True)
class ClockEstimate:
    """One published estimate of the server clock.

    ``offset_ms``: server time minus local time. ``uncertainty_ms``: bound on the offset's error
    (half the RTT of the chosen sample plus ms truncation). ``rtt_ms``: that sample's round trip.
    ``at``: local time (seconds, the ``now`` seam) when the estimate was taken.
    """

    offset_ms: float
    uncertainty_ms: float
    rtt_ms: float
    at: float

    def lag_ms(self, event_time_ms: int, received_at: float) -> float:
        """Delivery lag of an event stamped ``event_time_ms`` (server ms) received at local
        ``received_at`` (seconds): ``received_at·1000 + offset − E``."""
        return received_at * 1000.0 + self.offset_ms - event_time_ms


class ClockSync:
    """Estimates the server clock from ``fetch_server_ms`` (e.g. ``GET /api/v3/time`` →
    ``serverTime``) with the min-RTT filter described in the module docstring.

    * :meth:`sync` — take ``samples`` samples, publish the min-RTT one (always replaces).
    * :meth:`maybe_refresh` — re-sync when the estimate is older than ``refresh_s``; see there
      for the rule that rejects a congested re-sync.
    * :meth:`server_now_ms` — local ``now()·1000 + offset`` (offset 0 before the first sync).
    * :meth:`lag_ms` — WebSocket lag of an event time ``E``.

    ``now`` is the local clock in seconds (``time.time`` by default; injected in tests).
    """

    #: A re-sync whose best RTT exceeds this multiple of the current estimate's RTT is rejected.
    REJECT_RTT_FACTOR = 4.0
    #: ...unless the current estimate is older than this many refresh periods (drift wins then).
    MAX_AGE_REFRESHES = 4.0
    #: Least time between two re-syncs forced by ``-1021`` answers (a burst of them is one drift).
    RESYNC_MIN_INTERVAL_S = 1.0

    def __init__(self, fetch_server_ms: Callable[[], int], *, now: Callable[[], float] = time.time,
                 samples: int = 5, refresh_s: float = 30.0):
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if refresh_s <= 0:
            raise ValueError(f"refresh_s must be > 0, got {refresh_s}")
        self._fetch = fetch_server_ms
        self._now = now
        self.samples = samples
        self.refresh_s = refresh_s
        self._estimate: ClockEstimate | None = None
        self._last_attempt: float | None = None
        self._last_forced: float | None = None
        #: Re-syncs forced by ``-1021`` answers.
        self.forced = 0
        #: Re-syncs rejected by the RTT rule (for reports).
        self.rejected = 0

    # -- sampling -----------------------------------------------------------------------
    def _measure(self) -> ClockEstimate:
        best: tuple[float, float, float] | None = None  # (rtt_ms, offset_ms, t1)
        error: Exception | None = None
        for _ in range(self.samples):
            t0 = self._now()
            try:
                s = self._fetch()
            except Exception as exc:  # one failed sample must not lose the others
                error = exc
                continue
            t1 = self._now()
            rtt_ms = max(0.0, (t1 - t0) * 1000.0)
            # serverTime is truncated: the true server time lies in [s, s + 1) ms, so its
            # midpoint s + 0.5 leaves at most ±0.5 ms of truncation error.
            offset_ms = s + TRUNCATION_MS - (t0 + t1) / 2.0 * 1000.0
            if best is None or rtt_ms < best[0]:
                best = (rtt_ms, offset_ms, t1)
        if best is None:
            raise RuntimeError(f"clock sync failed: all {self.samples} samples raised") from error
        rtt_ms, offset_ms, t1 = best
        return ClockEstimate(offset_ms=offset_ms, uncertainty_ms=rtt_ms / 2.0 + TRUNCATION_MS,
                             rtt_ms=rtt_ms, at=t1)

    def sync(self) -> ClockEstimate:
        """Take ``samples`` samples and publish the one with the smallest round trip."""
        est = self._measure()
        self._last_attempt = est.at
        self._estimate = est
        return est

    def maybe_refresh(self) -> bool:
        """Re-sync when the estimate is older than ``refresh_s``; True when a new one was published.

        A re-sync normally replaces the estimate (clocks drift, so a fresh offset beats an old
        one). It is *rejected* when its best RTT is more than ``REJECT_RTT_FACTOR`` (4) × the
        current estimate's RTT — a congested network (e.g. the load test itself) would widen
        the uncertainty and skew the offset — unless the current estimate is older than
        ``MAX_AGE_REFRESHES`` × ``refresh_s``, when drift outweighs a noisy sample. A rejected
        attempt is retried ``refresh_s`` later, not on every call.
        """
        now = self._now()
        cur = self._estimate
        if cur is None:
            self.sync()
            return True
        last = self._last_attempt if self._last_attempt is not None else cur.at
        if now - last < self.refresh_s:
            return False
        self._last_attempt = now
        est = self._measure()
        too_old = now - cur.at >= self.MAX_AGE_REFRESHES * self.refresh_s
        if not too_old and est.rtt_ms > self.REJECT_RTT_FACTOR * max(cur.rtt_ms, TRUNCATION_MS):
            self.rejected += 1
            return False
        self._estimate = est
        return True

    def resync_due(self) -> bool:
        """Whether a forced re-sync may run now (at most one per ``RESYNC_MIN_INTERVAL_S``)."""
        return self._last_forced is None or self._now() - self._last_forced >= self.RESYNC_MIN_INTERVAL_S

    def resync(self) -> ClockEstimate:
        """A re-sync forced by the exchange (``-1021``: timestamp outside recvWindow): the
        current offset is known to be wrong, so the new estimate replaces it whatever its RTT."""
        self._last_forced = self._now()
        self.forced += 1
        return self.sync()

    # -- reading ------------------------------------------------------------------------
    @property
    def estimate(self) -> ClockEstimate | None:
        """The last published estimate (None before the first :meth:`sync`)."""
        return self._estimate

    @property
    def offset_ms(self) -> float:
        est = self._estimate
        return est.offset_ms if est is not None else 0.0

    def server_now_ms(self) -> float:
        """Estimated server time in ms: ``now()·1000 + offset`` (offset 0 before the first sync)."""
        return self._now() * 1000.0 + self.offset_ms

    def lag_ms(self, event_time_ms: int, received_at: float) -> float:
        """``received_at·1000 + offset − event_time_ms``; its error is ``estimate.uncertainty_ms``."""
        return received_at * 1000.0 + self.offset_ms - event_time_ms
