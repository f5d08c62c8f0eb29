"""Bounded retries with backoff for the start-up calls (``exchangeInfo``, ``time``).

A run's first calls decide whether it starts at all, so one 503 or one timeout must not end it —
but an unreachable target must fail within seconds, not minutes. :func:`retry_call` retries a
call whose outcome is *transient* (no response, 5xx) up to ``attempts`` times with growing
pauses, never past ``deadline_s`` in total. The sleep and the clock are injected (gevent's sleep
in Locust processes, ``time.sleep`` elsewhere; fakes in tests).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How start-up calls are retried."""

    attempts: int = 4
    """Calls at most (the first one included)."""
    backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0)
    """Pause before the 2nd, 3rd, … call (the last value repeats)."""
    deadline_s: float = 12.0
    """No call starts later than this after the first, and no pause runs past it."""
    timeout_s: float = 5.0
    """Timeout of one call (capped by what is left of the deadline)."""

    def pause(self, retry: int) -> float:
        """The pause before retry number ``retry`` (1 = the second call)."""
        if not self.backoff_s:
            return 0.0
        return self.backoff_s[min(retry, len(self.backoff_s)) - 1]


STARTUP = RetryPolicy()


def transient_status(status: int) -> bool:
    """An answer worth another start-up attempt: none at all (0) or a 5xx."""
    return status == 0 or status >= 500


@dataclass
class Attempts:
    """What :func:`retry_call` did: the calls made and the seconds they took in all."""

    calls: int = 0
    elapsed_s: float = 0.0

    def describe(self) -> str:
        return f"{self.calls} attempt{'s' if self.calls != 1 else ''} in {self.elapsed_s:.1f} s"


def retry_call(call: Callable[[float], T], transient: Callable[[T], bool], policy: RetryPolicy = STARTUP, *,
               sleep: Callable[[float], object] = time.sleep, now: Callable[[], float] = time.monotonic,
               on_retry: Callable[[T, int, float], object] | None = None) -> tuple[T, Attempts]:
    """Call ``call(timeout_s)`` until its result is not ``transient`` or the policy is used up.

    Returns the last result and the :class:`Attempts`. ``on_retry(result, retry_number, pause_s)``
    is told before each pause (for a log line).
    """
    start = now()
    attempts = Attempts()
    while True:
        left = policy.deadline_s - (now() - start)
        result = call(max(0.5, min(policy.timeout_s, left)))
        attempts.calls += 1
        attempts.elapsed_s = now() - start
        if not transient(result) or attempts.calls >= policy.attempts:
            return result, attempts
        pause = policy.pause(attempts.calls)
        if now() - start + pause >= policy.deadline_s:
            return result, attempts
        if on_retry is not None:
            on_retry(result, attempts.calls, pause)
        sleep(pause)
