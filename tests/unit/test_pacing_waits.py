"""letrade_perf.pacing.waits: a timed block leaves out the time its calls waited for the pacer.

Time is injected (the pacer's FakeTime, explicit ``now``); greenlets and the asyncio bridge show
that a block sees its own waits only.
"""
from __future__ import annotations

import asyncio

import gevent
import pytest
from test_pacing import SMALL, FakeTime  # the pacer tests' fake clock and small budgets

from letrade_perf.pacing import Pacer
from letrade_perf.pacing import waits as pw
from letrade_perf.users import aio


def test_the_union_of_overlapping_and_nested_waits_counts_once():
    w = pw.Waits()
    for s, e in ((1.0, 3.0), (2.0, 4.0), (10.0, 11.0), (10.2, 10.5), (0.5, 0.6)):
        w.add(s, e)
    assert w.total_s() == pytest.approx(3.0 + 1.0 + 0.1)
    assert w.total_s(since=2.5) == pytest.approx(1.5 + 1.0)        # clipped to the block's start
    assert pw.unpaced_ms(0.0, w, now=20.0) == pytest.approx((20.0 - 4.1) * 1000.0)
    assert pw.unpaced_ms(9.0, w, now=10.5) == pytest.approx(1000.0)  # 1.5 s less 0.5 s of waits
    assert pw.unpaced_ms(10.0, w, now=10.5) == 0.0                   # never below zero


def test_a_wait_goes_to_every_open_block_and_nowhere_outside_them():
    pw.note_wait(5.0, now=100.0)                 # no block open: nothing to do, no error
    with pw.collecting() as outer:
        pw.note_wait(1.0, now=10.0)
        with pw.collecting() as inner:
            pw.note_wait(2.0, now=20.0)
            pw.note_wait(0.0, now=21.0)          # a zero wait is no wait
        pw.note_wait(0.5, now=30.0)
    assert pw.current() is None
    assert inner.intervals == [(18.0, 20.0)]
    assert outer.total_s() == pytest.approx(3.5)


def test_many_waits_stay_bounded_and_the_total_stays_exact_when_disjoint():
    w = pw.Waits()
    n = pw.MAX_INTERVALS * 2
    for i in range(n):
        w.add(i * 1.0, i * 1.0 + 0.25)
    assert len(w.intervals) <= pw.MAX_INTERVALS
    assert w.total_s() == pytest.approx(n * 0.25)


def test_greenlets_collect_their_own_waits():
    seen: dict[str, float] = {}

    def block(name: str, wait_s: float) -> None:
        with pw.collecting() as w:
            gevent.sleep(0)                       # the other greenlet runs inside this block
            pw.note_wait(wait_s, now=50.0)
            gevent.sleep(0)
        seen[name] = w.total_s()

    gevent.joinall([gevent.spawn(block, "a", 1.0), gevent.spawn(block, "b", 3.0)], timeout=5, raise_error=True)
    assert seen == {"a": pytest.approx(1.0), "b": pytest.approx(3.0)}


def test_a_real_pacer_wait_is_what_the_block_leaves_out():
    ft = FakeTime(1_000_000.0 * 60_000)               # a minute boundary
    pacer = Pacer(SMALL, clock=ft.clock, sleep=ft.sleep, smoothing="window")
    assert pacer.acquire(80) == 0.0                    # the minute's whole budget, at once
    with pw.collecting() as w:
        waited = pacer.acquire(10)                     # waits for the next minute
        assert pacer.acquire(1) == 0.0                 # no wait: nothing added
    assert waited == pytest.approx(60.0, abs=0.1)
    assert w.total_s() == pytest.approx(waited)


def test_the_asyncio_bridge_hands_the_coroutines_block_to_the_calling_greenlet():
    def paced_call() -> str:                           # runs in a gevent greenlet of the bridge
        pw.note_wait(2.0, now=1000.0)
        return "ok"

    async def timed() -> tuple[str, float, float]:
        with pw.collecting() as w:
            got = await aio.call_in_gevent(paced_call)
        outside = pw.current()
        return got, w.total_s(), 0.0 if outside is None else outside.total_s()

    try:
        got, inside, outside = aio.run(timed(), timeout=10)
    finally:
        assert aio.shutdown()
    assert (got, inside, outside) == ("ok", pytest.approx(2.0), 0.0)


def test_concurrent_bridged_calls_of_one_block_count_their_overlap_once():
    def paced(end: float) -> None:
        pw.note_wait(2.0, now=end)

    async def timed() -> float:
        with pw.collecting() as w:
            await asyncio.gather(aio.call_in_gevent(paced, 100.0), aio.call_in_gevent(paced, 101.0))
        return w.total_s()

    try:
        total = aio.run(timed(), timeout=10)
    finally:
        assert aio.shutdown()
    assert total == pytest.approx(3.0)                 # [98, 100] ∪ [99, 101]


def test_measure_reports_the_block_less_its_pacing_wait(monkeypatch):
    """guarded.measure around a call that waits 60 s (fake time) for the pacer: the reported
    time is the block's own (the fake clock's wait is left out in full, never below zero)."""
    from types import SimpleNamespace

    from locust.env import Environment

    from letrade_perf.users import guarded

    env = Environment()
    seen: list[float] = []
    env.events.request.add_listener(lambda **kw: seen.append(kw["response_time"]))
    user = SimpleNamespace(environment=SimpleNamespace(letrade=SimpleNamespace(environment=env)))
    ft = FakeTime(1_000_000.0 * 60_000)
    pacer = Pacer(SMALL, clock=ft.clock, sleep=ft.sleep, smoothing="window")
    pacer.acquire(80)
    # time.perf_counter: the block starts at 100 s, the pacer's wait ends at 160.2 s, the block at 160.25 s
    ticks = iter([100.0, 160.2, 160.25])
    monkeypatch.setattr(pw.time, "perf_counter", lambda: next(ticks))
    with guarded.measure(user, "step"):
        assert pacer.acquire(10) == pytest.approx(60.0, abs=0.1)
    waited = pacer.stats().wait_s_total
    assert seen == [pytest.approx((60.25 - waited) * 1000.0, abs=0.01)]
    assert 200.0 <= seen[0] <= 300.0                   # 60.25 s less a wait of about 60 s
