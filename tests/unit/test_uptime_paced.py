"""``uptime`` counts every second the run wanted the exchange, including seconds blocked by pacing.

A second a user spent wholly waiting for the pacer (its weight/order budget or a 429 pause) is a
wanted second; it is up only if some API call was answered successfully in it. A worker waiting
for its first share is not blocked by the exchange: those seconds do not count. One fake time
drives the pacer (server ms) and the recorder (wall s): no wall time in any assert.
"""
from __future__ import annotations

import gevent
import pytest
from gevent.event import Event

from letrade_perf.criteria.evaluate import judge
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.metrics.recorder import MetricsRecorder, MetricsStore, Snapshot
from letrade_perf.pacing import Budgets, Pacer

MIN0 = 1_700_000_040_000          # a whole minute of server time (ms)
T0 = MIN0 / 1000.0                # the same instant in seconds
SMALL = Budgets(weight=((60_000, 100),), orders=((10_000, 10),), raw=((300_000, 1000),))   # × 0.8 used


class FakeTime:
    def __init__(self, ms: float) -> None:
        self.ms = float(ms)

    def pacer_ms(self) -> float:
        return self.ms

    def wall_s(self) -> float:
        return self.ms / 1000.0

    def sleep(self, seconds: float) -> None:
        self.ms += seconds * 1000.0


def ok(rec: MetricsRecorder) -> None:
    rec.on_request(request_type="GET", name="GET /api/v3/depth", response_time=5.0)


def store_of(*snaps: Snapshot) -> MetricsStore:
    store = MetricsStore()
    for i, snap in enumerate(snaps):
        store.merge(Snapshot.from_wire(snap.to_wire()), source=f"w{i}")   # as a worker ships it
    return store


def uptime_criterion(store: MetricsStore):
    (c,) = parse_criteria({"uptime": ["rate>99.9%"]}, "t.yaml")
    return judge(c, store, 60.0)


def test_a_second_blocked_by_pacing_is_wanted_and_down_unless_something_was_answered_in_it():
    ft = FakeTime(MIN0 + 6_500)
    rec = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    rec.on_pacing_wait(4.0)                   # blocked [T0+2.5, T0+6.5): whole seconds +3, +4, +5
    ft.ms = MIN0 + 3_200
    ok(rec)                                   # second +3 had an answer as well: up
    store = store_of(rec.drain())
    base = int(T0)
    assert store.up_seconds == {base + 3: True, base + 4: False, base + 5: False}
    assert store.uptime() == (1, 3)


def test_only_whole_seconds_of_a_wait_count():
    ft = FakeTime(MIN0 + 12_000)
    rec = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    rec.on_pacing_wait(2.0)                   # [T0+10, T0+12): +10 and +11, not +12
    rec.on_pacing_wait(0.0)                   # no wait at all: nothing
    ft.ms = MIN0 + 20_950
    rec.on_pacing_wait(0.9)                   # [+20.05, +20.95): no whole second
    ft.ms = MIN0 + 30_500
    rec.on_pacing_wait(1.0)                   # [+29.5, +30.5): a second's worth, but no whole second
    assert store_of(rec.drain()).up_seconds == {int(T0) + 10: False, int(T0) + 11: False}


def test_a_run_blocked_by_its_budget_is_not_up_in_the_seconds_it_only_waited():
    """One user spends the minute's weight, then waits 45 s for the next minute (fixed windows
    alone: the whole budget at once)."""
    ft = FakeTime(MIN0 + 15_000)
    pacer = Pacer(SMALL, clock=ft.pacer_ms, sleep=ft.sleep, smoothing="window")
    rec = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    rec.watch_pacing(pacer)
    assert pacer.acquire(80) == 0.0
    ok(rec)                                   # second +15: answered
    assert pacer.acquire(1) == 45.0           # blocked [+15, +60)
    ok(rec)                                   # second +60: answered
    store = store_of(rec.drain())
    base = int(T0)
    assert set(store.up_seconds) == set(range(base + 15, base + 61))
    assert store.uptime() == (2, 46)
    r = uptime_criterion(store)
    assert (r.verdict, r.samples) == ("fail", 46) and r.value == pytest.approx(2 / 46)


def test_without_pacing_waits_uptime_is_the_seconds_with_traffic():
    ft = FakeTime(MIN0 + 1_000)
    pacer = Pacer(SMALL, clock=ft.pacer_ms, sleep=ft.sleep)
    rec = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    rec.watch_pacing(pacer)
    for _ in range(3):
        assert pacer.acquire(1) == 0.0
        ok(rec)
        ft.ms += 2_000                        # seconds +1, +3, +5; the user idles between
    store = store_of(rec.drain())
    assert store.uptime() == (3, 3) and uptime_criterion(store).verdict == "pass"


def test_a_wait_in_progress_counts_at_each_drain_and_once_when_it_ends():
    """A 429 pause longer than the rest of the run: the users are blocked until they are killed."""
    ft = FakeTime(MIN0 + 1_000)
    parked = Event()                          # never set: the pause outlasts the run
    pacer = Pacer(SMALL, clock=ft.pacer_ms, sleep=lambda s: parked.wait())
    rec = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    rec.watch_pacing(pacer)
    ok(rec)                                   # second +1: answered
    pacer.on_429(30)
    users = [gevent.spawn(pacer.acquire, 1, orders=i % 2) for i in range(3)]   # both lanes
    gevent.sleep(0)
    ft.ms += 4_000
    assert pacer.blocked_s() == 4.0
    first = rec.drain()                       # live: the seconds blocked so far
    assert set(first.up_seconds) == {int(T0) + s for s in range(1, 5)}
    ft.ms += 14_000                           # blocked 18 s in all
    gevent.killall(users)                     # the run ends: each wait reports its 18 s once
    assert pacer.blocked_s() == 0.0
    store = store_of(first, rec.drain())
    assert store.uptime() == (1, 18)          # seconds +1 … +18, only +1 answered


def test_a_worker_waiting_for_its_share_is_not_blocked_by_the_exchange():
    ft = FakeTime(MIN0 + 5_000)
    pacer = Pacer(SMALL, clock=ft.pacer_ms, sleep=ft.sleep, share=0.0)   # before the master's share
    rec = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    rec.watch_pacing(pacer)
    g = gevent.spawn(pacer.acquire, 5)
    gevent.sleep(0)
    ft.ms += 3_000
    assert pacer.blocked_s() == 0.0 and rec.drain().up_seconds == {}
    pacer.set_share(0.5)                      # the share arrives; there is room at once
    g.join()
    assert g.value == 3.0                     # waited (pacing stats) but never blocked
    assert rec.drain().up_seconds == {}


def test_the_part_of_a_wait_after_the_share_arrived_is_blocked():
    ft = FakeTime(MIN0 + 50_000)
    pacer = Pacer(SMALL, clock=ft.pacer_ms, sleep=ft.sleep, share=0.0)
    rec = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    rec.watch_pacing(pacer)
    pacer.observe({"X-MBX-USED-WEIGHT-1M": "80"})   # the IP's whole budget is used until the minute ends
    g = gevent.spawn(pacer.acquire, 5)
    gevent.sleep(0)
    ft.ms += 2_000                            # +52: the share arrives, the budget is still spent
    pacer.set_share(1.0)
    g.join()
    assert g.value == 10.0                    # waited +50 … +60, blocked +52 … +60
    assert set(rec.drain().up_seconds) == {int(T0) + s for s in range(52, 60)}


def test_merged_workers_a_second_is_up_when_any_process_was_answered_in_it():
    ft = FakeTime(MIN0 + 8_000)
    a = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    b = MetricsRecorder(clock=ft.wall_s, samples_dir="")
    a.on_pacing_wait(3.0)                     # worker a blocked +5 … +7
    ft.ms = MIN0 + 6_500
    ok(b)                                     # worker b answered in +6
    earlier = b.drain()
    ft.ms = MIN0 + 7_000
    b.on_pacing_wait(1.0)                     # later, b's own blocked mark of +6 must not undo it
    store = store_of(a.drain(), earlier, b.drain())
    base = int(T0)
    assert store.up_seconds == {base + 5: False, base + 6: True, base + 7: False}


def test_a_failing_wait_listener_never_breaks_an_acquire():
    ft = FakeTime(MIN0 + 59_000)
    pacer = Pacer(SMALL, clock=ft.pacer_ms, sleep=ft.sleep, smoothing="window")   # the whole budget at once
    seen: list[float] = []

    def broken(blocked_s: float) -> None:
        raise RuntimeError("listener bug")

    pacer.subscribe(on_wait=broken)
    pacer.subscribe(on_wait=seen.append)
    pacer.acquire(80)
    assert pacer.acquire(1) == 1.0 and seen == [1.0]
