"""What every harness user shares: the run's context, symbol assignment and event helpers.

Users reach the process-wide :class:`~letrade_perf.plugin.HarnessContext` through
``self.environment.letrade`` (set by the plugin on ``init``); they know nothing about stats,
sinks or criteria — they only fire events on ``self.environment.events``.
"""
from __future__ import annotations

import itertools
import threading

from locust.exception import StopUser

_seq_lock = threading.Lock()
_sequences: dict[str, itertools.count] = {}


def next_index(key: str) -> int:
    """A process-wide counter per ``key`` (0, 1, 2, …): symbol round-robin, client order ids."""
    with _seq_lock:
        seq = _sequences.get(key)
        if seq is None:
            seq = _sequences[key] = itertools.count()
        return next(seq)


class HarnessUserMixin:
    """Context access and per-user symbol choice for the abstract users.

    ``symbol``: the symbol this user instance works on, picked round-robin over the profile's
    symbols per user class (offset by the worker index so workers spread over symbols too);
    ``None`` until :meth:`pick_symbol` ran (``on_start``).
    """

    symbol: str | None = None

    @property
    def ctx(self):
        ctx = getattr(self.environment, "letrade", None)
        if ctx is None:
            raise StopUser("letrade plugin not registered (environment.letrade missing)")
        return ctx

    def pick_symbol(self) -> str:
        symbols = tuple(self.ctx.symbols) or ("BTCUSDT",)
        runner = getattr(self.environment, "runner", None)
        offset = getattr(runner, "worker_index", 0) or 0
        i = next_index(f"symbol:{type(self).__name__}") + offset
        self.symbol = symbols[i % len(symbols)]
        return self.symbol

    def fire(self, request_type: str, name: str, response_time: float, *, length: int = 0,
             exception: BaseException | None = None, context: dict | None = None) -> None:
        """Report one measurement on Locust's request event."""
        self.environment.events.request.fire(
            request_type=request_type, name=name, response_time=response_time, response_length=length,
            response=None, context=context or {}, exception=exception)


class Failure(Exception):
    """A measurement that failed; the message says why (reported, never raised out of a task)."""
