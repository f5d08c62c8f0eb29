"""Pacing waits inside a timed block: what ``measure(...)`` leaves out of the time it reports.

A user's timed block (:func:`letrade_perf.users.guarded.measure`, the asyncio users' ``measure``)
times the user's own code, and the calls inside it wait for the pacer whenever the weight budget
says so. Those waits are the harness holding the request back, not the system under test being
slow, so the block reports its elapsed time minus the time its calls spent waiting for budget — as
the built-in pipeline does. :class:`Waits` collects the waits of one block; :func:`note_wait` (the
pacer, after a wait) adds a wait to every block open in the current context (greenlet or asyncio
task; the asyncio bridge hands the block on to the greenlet that makes the call).

Concurrent calls of one block (``asyncio.gather``) wait at the same time: the block leaves out
the **union** of the wait intervals, never more than it lasted.
"""
from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_INTERVALS = 4096
"""Wait intervals one block keeps; beyond it they are merged as they come (a block with more
waits than that is rare: the union stays exact while the waits do not overlap)."""


class Waits:
    """The pacing waits of one timed block, as ``(start, end)`` intervals of ``time.perf_counter()``."""

    __slots__ = ("intervals", "parent")

    def __init__(self, parent: Waits | None = None) -> None:
        self.intervals: list[tuple[float, float]] = []
        self.parent = parent

    def add(self, start: float, end: float) -> None:
        iv = self.intervals
        if len(iv) >= MAX_INTERVALS:
            self.intervals = iv = _merged(iv)
            if len(iv) >= MAX_INTERVALS:           # disjoint: fold the oldest two together
                a, b = iv.pop(0), iv.pop(0)
                iv.insert(0, (a[0], a[0] + (a[1] - a[0]) + (b[1] - b[0])))
        iv.append((start, end))

    def total_s(self, since: float | None = None, until: float | None = None) -> float:
        """Seconds covered by the waits (their union), counted from ``since`` to ``until`` when given."""
        total = 0.0
        for s, e in _merged(self.intervals):
            if since is not None:
                s = max(s, since)
            if until is not None:
                e = min(e, until)
            if e > s:
                total += e - s
        return total


def unpaced_ms(t0: float, waits: Waits, now: float | None = None) -> float:
    """Milliseconds from ``t0`` to ``now`` (``time.perf_counter()`` values) less the pacing waits in them."""
    end = time.perf_counter() if now is None else now
    return max(0.0, end - t0 - waits.total_s(since=t0, until=end)) * 1000.0


def _merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


_current: contextvars.ContextVar[Waits | None] = contextvars.ContextVar("letrade_pacing_waits", default=None)


def current() -> Waits | None:
    """The innermost open block of this context (None outside any)."""
    return _current.get()


def bind(waits: Waits | None) -> None:
    """Make ``waits`` the open block of this context (a bridge's greenlet calling for a coroutine)."""
    if waits is not None:
        _current.set(waits)


def note_wait(waited_s: float, now: float | None = None) -> None:
    """A pacing wait of ``waited_s`` seconds ended now: every block open in this context gets it."""
    w = _current.get()
    if w is None or not waited_s > 0.0:
        return
    end = time.perf_counter() if now is None else now
    start = end - waited_s
    while w is not None:
        w.add(start, end)
        w = w.parent


@contextmanager
def collecting() -> Iterator[Waits]:
    """Open a block: the pacing waits of the calls made inside it (nested blocks included) are
    collected in the yielded :class:`Waits`."""
    w = Waits(_current.get())
    token = _current.set(w)
    try:
        yield w
    finally:
        try:
            _current.reset(token)
        except ValueError:        # reset from another context (a generator closed elsewhere)
            _current.set(w.parent)
