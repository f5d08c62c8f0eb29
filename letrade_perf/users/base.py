"""What every harness user shares: the run's context, symbol assignment and event helpers.

Users reach the process-wide :class:`~letrade_perf.harness.plugin.HarnessContext` through
``self.environment.letrade`` (set by the plugin on ``init``); they know nothing about stats,
sinks or criteria — they only fire events on ``self.environment.events``.
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from typing import Any, Mapping

from locust.exception import StopUser

from ..calls.path import Failure  # noqa: F401 - re-exported: every user reports its failures with it

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
    #: the Locust ``Environment`` — provided by the ``User`` this mixes into (declared, not set, here)
    environment: Any

    #: how long a user started during the plugin's init waits for the context (s)
    context_wait_s: float = 60.0

    @property
    def ctx(self):
        env = self.environment
        ctx = getattr(env, "letrade", None)
        if ctx is None and getattr(env, "letrade_initialising", False):
            import gevent  # users run under Locust: waiting yields to the init greenlet
            deadline = time.monotonic() + self.context_wait_s
            while ctx is None and getattr(env, "letrade_initialising", False) and time.monotonic() < deadline:
                gevent.sleep(0.05)
                ctx = getattr(env, "letrade", None)
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


def weighted_tasks(cls, weights: Mapping[str, int], kind: str, disabled: tuple[str, ...] = ()) -> None:
    """Set ``cls.settings.task_weights`` (``weights`` over the current ones) and ``cls.tasks``
    from them: each task name is a method of ``cls`` repeated by its weight (0 disables it, as
    do the names in ``disabled``). Unknown names and an all-zero mix are ValueErrors naming ``kind``.

    Tasks a subclass declares itself (``@task`` methods, or TaskSets, not named in the
    weights) are kept with their own Locust weight: a user's own tasks are never dropped."""
    current = cls.settings.task_weights
    own = [t for t in getattr(cls, "tasks", ()) if getattr(t, "__name__", None) not in current]
    merged = dict(current)
    merged.update({k: int(v) for k, v in weights.items()})
    unknown = [k for k in merged if not callable(getattr(cls, k, None))]
    if unknown:
        raise ValueError(f"unknown {kind} task(s): {', '.join(sorted(unknown))}")
    effective = dict(merged)
    for name in disabled:
        effective[name] = 0
    tasks = [getattr(cls, name) for name, w in effective.items() for _ in range(max(0, w))]
    own = [t for t in own if getattr(t, "__name__", None) not in merged]
    tasks += own
    if not tasks:
        raise ValueError(f"{kind} task weights are all 0")
    if merged != current:
        cls.settings = dataclasses.replace(cls.settings, task_weights=merged)
    cls.tasks = tasks
