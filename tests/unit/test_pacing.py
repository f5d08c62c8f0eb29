"""Pacer: fixed server-aligned windows, header feedback, refunds, 429/418, shares, fairness.

Time is fake: ``FakeTime.sleep`` records the delay the pacer asked for, advances the fake server
clock by exactly that much and yields to other greenlets (``gevent.sleep(0)``).

These tests pin the fixed windows themselves, so they run with ``smoothing="window"`` (the whole
budget may go the moment a window opens); the token bucket on top of them (the default) is tested
in test_pacing_smooth.py.
"""
from __future__ import annotations

import gevent
import pytest
from gevent.event import Event

from letrade_perf.binance.endpoints import DEFAULT_RATE_LIMITS, endpoint
from letrade_perf.clock import ClockSync
from letrade_perf.pacing import Budgets, IpBanned, Pacer, PacerStats, budgets_from_rate_limits

MIN0 = 1_700_000_040_000          # a whole minute (and a whole 10 s) of server time
DAY0 = MIN0 // 86_400_000 * 86_400_000
assert MIN0 % 60_000 == 0

SMALL = Budgets(weight=((60_000, 100),), orders=((10_000, 10), (86_400_000, 50)), raw=((300_000, 1000),))
# × 0.8: weight 80 per minute, orders 8 per 10 s and 40 per day, raw 800 per 5 minutes.


class FakeTime:
    def __init__(self, ms: float):
        self.ms = float(ms)
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.ms

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.ms += seconds * 1000.0
        gevent.sleep(0)


def make(start_ms: float, budgets: Budgets = SMALL, **kw) -> tuple[Pacer, FakeTime]:
    ft = FakeTime(start_ms)
    kw.setdefault("smoothing", "window")
    return Pacer(budgets, clock=ft.clock, sleep=ft.sleep, **kw), ft


# -- budgets ----------------------------------------------------------------------------
def test_budgets_from_exchange_info_rate_limits():
    b = budgets_from_rate_limits(list(DEFAULT_RATE_LIMITS))
    assert b.weight == ((60_000, 6000),)
    assert b.orders == ((10_000, 100), (86_400_000, 200_000))
    assert b.raw == ((300_000, 300_000),)
    b = budgets_from_rate_limits([
        {"rateLimitType": "CONNECTIONS", "interval": "MINUTE", "intervalNum": 5, "limit": 300},
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 10, "limit": 50},
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    ])
    assert b.weight == ((10_000, 50), (60_000, 1200)) and b.orders == () and b.raw == ()
    with pytest.raises(ValueError, match="FORTNIGHT"):
        budgets_from_rate_limits([{"rateLimitType": "ORDERS", "interval": "FORTNIGHT", "intervalNum": 1,
                                   "limit": 5}])


# -- windows ----------------------------------------------------------------------------
def test_fraction_of_budget_is_used_exactly_then_waits_for_next_aligned_window():
    p, ft = make(MIN0 + 15_000)
    assert p.acquire(50) == 0.0
    assert p.acquire(30) == 0.0            # 80 = 100 × 0.8, exactly
    assert ft.sleeps == []
    assert p.stats().weight_used == 80
    waited = p.acquire(1)                  # no room: sleep to the next whole server minute
    assert ft.sleeps == [45.0]
    assert waited == 45.0
    assert ft.ms == MIN0 + 60_000
    st = p.stats()
    assert st.weight_used == 1 and st.weight_budget == 80
    assert st.waits == 1 and st.wait_s_total == 45.0 and st.acquired_weight_total == 81


def test_windows_align_on_server_time_not_local_time():
    # Local clock 2.5 s behind the server: the window boundary is a whole *server* minute.
    local = FakeTime(MIN0 + 50_000)
    cs = ClockSync(lambda: int(local.ms + 2500), now=lambda: local.ms / 1000.0, samples=1)
    cs.sync()
    assert cs.estimate.offset_ms == pytest.approx(2500.5)
    p = Pacer(SMALL, clock=cs.server_now_ms, sleep=local.sleep, smoothing="window")
    p.acquire(80)
    p.acquire(1)
    assert local.sleeps == [pytest.approx(60 - 52.5005)]   # not the 10 s a local minute would give
    assert cs.server_now_ms() == pytest.approx(MIN0 + 60_000)


def test_margin_is_added_after_the_boundary():
    p, ft = make(MIN0 + 59_000, margin_ms=20)
    p.acquire(80)
    p.acquire(1)
    assert ft.sleeps == [pytest.approx(1.02)]


def test_orders_ten_second_window():
    p, ft = make(MIN0 + 3_000)
    for _ in range(8):
        assert p.acquire(1, orders=1) == 0.0
    assert p.stats().orders_used == 8 and p.stats().orders_budget == 8
    assert p.acquire(1, orders=1) == 7.0   # bucket [MIN0, MIN0+10s) is full
    assert ft.sleeps == [7.0]
    st = p.stats()
    assert st.orders_used == 1 and st.orders_day_used == 9 and st.weight_used == 9


def test_orders_day_window_waits_until_utc_midnight():
    budgets = Budgets(weight=((60_000, 1000),), orders=((10_000, 10), (86_400_000, 20)))
    midnight = DAY0 + 86_400_000
    p, ft = make(midnight - 25_000, budgets)      # 10 s bucket [-30 s, -20 s)
    for _ in range(8):
        p.acquire(1, orders=1)
    for _ in range(8):                            # first of these waits for the next 10 s bucket
        p.acquire(1, orders=1)
    assert ft.sleeps == [5.0]
    assert p.stats().orders_day_used == 16 and p.stats().orders_day_budget == 16
    p.acquire(1, orders=1)                        # both windows full: wait for the later (the day)
    assert ft.sleeps == [5.0, 20.0]
    assert ft.ms == midnight
    assert p.stats().orders_day_used == 1


def test_raw_requests_count_every_request_even_weight_zero():
    budgets = Budgets(weight=((60_000, 1000),), raw=((300_000, 5),))   # raw budget 4
    start = MIN0 + 60_000 * 3
    p, ft = make(start, budgets)
    for _ in range(4):
        p.acquire(0)
    p.acquire(0)
    next_5m = (start // 300_000 + 1) * 300_000
    assert ft.sleeps == [(next_5m - start) / 1000]   # until the next 5-minute bucket
    assert ft.sleeps != [300.0]


# -- header feedback --------------------------------------------------------------------
def test_headers_correct_used_upward_never_below_our_reservations():
    p, ft = make(MIN0 + 1_000)
    p.acquire(10)
    p.observe({"x-mbx-used-weight-1m": "70"})     # another client on the IP used 60
    assert p.stats().weight_used == 70
    p.observe({"X-MBX-USED-WEIGHT-1M": "5"})      # a lagging report never lowers the count
    assert p.stats().weight_used == 70
    assert p.acquire(10) == 0.0                   # 80: exactly the budget
    assert p.acquire(1) == 59.0
    assert ft.sleeps == [59.0]


def test_order_count_header_and_legacy_weight_header():
    p, ft = make(MIN0 + 1_000)
    p.observe({"X-MBX-ORDER-COUNT-10S": "7", "X-MBX-ORDER-COUNT-1D": "39", "X-MBX-USED-WEIGHT": "79"})
    st = p.stats()
    assert (st.orders_used, st.orders_day_used, st.weight_used) == (7, 39, 79)
    p.acquire(1, orders=1)
    assert ft.sleeps == []
    p.acquire(0, orders=1)                        # the day budget (40) is now full
    assert ft.sleeps == [pytest.approx((DAY0 + 86_400_000 - (MIN0 + 1_000)) / 1000)]


def test_report_for_request_sent_in_previous_bucket_is_ignored():
    p, ft = make(MIN0 + 59_990)
    sent = p.now_ms()
    p.acquire(5)
    ft.ms = MIN0 + 60_005                         # the response arrives in the next bucket
    p.observe({"X-MBX-USED-WEIGHT-1M": "78"}, sent_at_ms=sent)   # describes the old bucket
    assert p.stats().weight_used == 0
    p.observe({"X-MBX-USED-WEIGHT-1M": "12"}, sent_at_ms=p.now_ms())
    assert p.stats().weight_used == 12


# -- refunds ----------------------------------------------------------------------------
def test_refund_gives_back_only_our_reservations():
    p, ft = make(MIN0)
    p.acquire(80)
    p.refund(weight=30)
    assert p.stats().weight_used == 50
    assert p.acquire(30) == 0.0
    p.refund(weight=500)                          # cannot give back more than we reserved
    assert p.stats().weight_used == 0
    assert p.stats().refunded_weight_total == 110


def test_refund_after_bucket_rolled_is_ignored():
    p, ft = make(MIN0 + 59_000)
    at = p.now_ms()
    p.acquire(1, orders=1)
    ft.ms = MIN0 + 61_000
    p.acquire(3)
    p.refund(weight=1, orders=1, reserved_at_ms=at)
    st = p.stats()
    assert st.weight_used == 3 and st.refunded_weight_total == 0
    assert st.orders_day_used == 0                # the day window did not roll: refunded there


def test_acquire_for_order_entry_reserves_failure_cost_and_settles():
    p, ft = make(MIN0)
    place = endpoint("POST", "/api/v3/order")
    r = p.acquire_for(place, {"symbol": "BTCUSDT"})
    assert (r.weight, r.orders, r.waited_s) == (1, 1, 0.0)
    assert (p.stats().weight_used, p.stats().orders_used) == (1, 1)
    r.settle(ok=True)                             # successful order entry costs 0 weight
    assert (p.stats().weight_used, p.stats().orders_used) == (0, 1)
    r.settle(ok=False)                            # settling twice changes nothing
    assert (p.stats().weight_used, p.stats().orders_used) == (0, 1)
    r2 = p.acquire_for(place, {"symbol": "BTCUSDT"})
    r2.settle(ok=False)                           # rejected: weight charged, order not counted
    assert (p.stats().weight_used, p.stats().orders_used) == (1, 1)
    r3 = p.acquire_for(endpoint("GET", "/api/v3/depth"), {"limit": "500"})
    assert r3.weight == 25 and r3.orders == 0
    r3.settle(ok=True)
    assert p.stats().weight_used == 26


def test_request_heavier_than_whole_budget_raises_naming_it():
    p, ft = make(MIN0)
    with pytest.raises(ValueError, match=r"GET /api/v3/depth needs 250 of REQUEST_WEIGHT 1m .* budget is 80"):
        p.acquire_for(endpoint("GET", "/api/v3/depth"), {"limit": "5000"})
    with pytest.raises(ValueError, match="ORDERS 10s"):
        p.acquire(1, orders=9)
    assert ft.sleeps == [] and p.stats().acquired_weight_total == 0


# -- 429 / 418 --------------------------------------------------------------------------
def test_429_pauses_every_acquirer_for_exactly_retry_after():
    p, ft = make(MIN0 + 1_000)
    p.on_429(3.5)
    assert p.stats().r429 == 1 and p.paused_until_ms == MIN0 + 4_500
    done = []

    def worker(i):
        p.acquire(1, orders=i % 2)
        done.append(ft.ms)

    gevent.joinall([gevent.spawn(worker, i) for i in range(4)], raise_error=True)
    # Only lane heads sleep (one per lane at most), each exactly the Retry-After; the rest queued.
    assert 1 <= len(ft.sleeps) <= 2 and set(ft.sleeps) == {3.5}
    assert ft.ms == MIN0 + 4_500
    assert done == [MIN0 + 4_500] * 4
    assert p.acquire(1) == 0.0


def test_418_raises_ip_banned_until_the_ban_ends():
    p, ft = make(MIN0 + 1_000)
    p.acquire(80)
    blocked = gevent.spawn(p.acquire, 5)          # waits for the next minute
    gevent.sleep(0)
    assert ft.sleeps == [59.0]                    # (the fake sleep already advanced the clock)
    ft.ms = MIN0 + 30_000
    p.on_418(120)
    with pytest.raises(IpBanned) as exc:
        p.acquire(1)
    assert exc.value.until_ms == MIN0 + 150_000
    blocked.join()
    assert isinstance(blocked.exception, IpBanned)
    st = p.stats()
    assert st.r418 == 1 and st.banned_until_ms == MIN0 + 150_000
    ft.ms = MIN0 + 150_000
    assert p.acquire(1) == 0.0


def test_local_429_and_418_are_published_to_subscribers():
    p, ft = make(MIN0)
    seen = []
    p.subscribe(on_429=lambda s, u: seen.append(("429", s, u)), on_418=lambda s, u: seen.append(("418", s, u)))
    p.on_429(2)
    p.pause_until(MIN0 + 10_000)                  # a relayed pause: not counted, not published
    p.on_418(60)
    assert seen == [("429", 2, MIN0 + 2_000), ("418", 60, MIN0 + 60_000)]
    assert p.stats().r429 == 1 and p.paused_until_ms == MIN0 + 10_000


# -- shares -----------------------------------------------------------------------------
def test_share_scales_budgets_and_existing_reservations_stay():
    p, ft = make(MIN0, share=0.5)
    assert p.stats().weight_budget == 40 and p.stats().orders_budget == 4
    p.acquire(30)
    p.set_share(0.25)                             # budget 20 < 30 already reserved
    st = p.stats()
    assert st.weight_budget == 20 and st.weight_used == 30 and st.share == 0.25
    assert p.acquire(1) == 60.0
    with pytest.raises(ValueError, match="share 0.25"):
        p.acquire(21)                             # fits at share 1, never at share 0.25
    with pytest.raises(ValueError):
        p.set_share(1.5)


def test_share_limits_our_use_while_headers_limit_the_ip_wide_use():
    """Distributed: the server's used-weight header counts every worker of the IP. Our own
    reservations are held to our share; the reported IP-wide use to the whole budget."""
    p, ft = make(MIN0 + 1_000, share=0.5)         # our share 40 of the 80 budget
    p.observe({"X-MBX-USED-WEIGHT-1M": "35"})     # the other worker used 35 of its 40
    assert p.acquire(40) == 0.0                   # ours 40 ≤ 40 and IP-wide 75 ≤ 80: no wait
    p2, ft2 = make(MIN0 + 1_000, share=0.5)
    p2.acquire(10)
    p2.observe({"X-MBX-USED-WEIGHT-1M": "75"})    # foreign clients ate the IP budget
    assert p2.acquire(10) == 59.0                 # ours would be 20 ≤ 40, but IP-wide 85 > 80


def test_share_zero_blocks_until_a_share_is_assigned():
    p, ft = make(MIN0 + 5_000, share=0.0)
    got = []
    g = gevent.spawn(lambda: got.append(p.acquire(50)))
    gevent.sleep(0)
    gevent.sleep(0)
    assert got == [] and ft.sleeps == []          # no request, and no time-based polling
    ft.ms += 2_000                                # time passes while the master decides
    p.set_share(1.0)
    g.join()
    assert got == [2.0] and ft.sleeps == []


# -- fairness ---------------------------------------------------------------------------
def test_contending_greenlets_are_served_fifo_and_never_exceed_budget():
    p, ft = make(MIN0 + 30_000)
    per_bucket: dict[int, int] = {}
    order: list[int] = []
    n_greenlets, rounds, w = 12, 8, 7            # 672 weight at 80/min, 11 grants a minute

    def user(i):
        for _ in range(rounds):
            p.acquire(w)
            b = int(ft.ms // 60_000)
            per_bucket[b] = per_bucket.get(b, 0) + w
            order.append(i)
            gevent.sleep(0)

    gevent.joinall([gevent.spawn(user, i) for i in range(n_greenlets)], raise_error=True)
    assert len(order) == n_greenlets * rounds
    assert max(per_bucket.values()) <= 80
    assert all(v == 77 for b, v in sorted(per_bucket.items())[:-1])   # every full bucket used fully
    # Round-robin: at any point no greenlet is more than one grant ahead of another.
    counts = [0] * n_greenlets
    for i in order:
        counts[i] += 1
        assert max(counts) - min(counts) <= 1
    # Every sleep reached exactly the next whole minute.
    assert ft.sleeps[0] == 30.0 and all(s == 60.0 for s in ft.sleeps[1:])
    assert len(ft.sleeps) == len(per_bucket) - 1


def test_orders_throttled_do_not_stall_requests_without_orders():
    p, ft = make(MIN0 + 1_000)
    for _ in range(8):
        p.acquire(1, orders=1)
    results = []
    g = gevent.spawn(lambda: results.append(("order", p.acquire(1, orders=1), ft.ms)))
    gevent.sleep(0)                               # the order waiter is now sleeping to MIN0+10s
    assert ft.sleeps == [9.0]
    ft.ms = MIN0 + 2_000                          # (undo the fake sleep's jump to test the lane)
    results.append(("weight", p.acquire(5), ft.ms))
    g.join()
    assert results[0] == ("weight", 0.0, MIN0 + 2_000)


def test_stats_snapshot_fields():
    p, ft = make(MIN0)
    st = p.stats()
    assert isinstance(st, PacerStats)
    assert (st.weight_used, st.weight_budget, st.orders_used, st.orders_budget) == (0, 80, 0, 8)
    assert (st.waits, st.wait_s_total, st.r429, st.r418, st.share) == (0, 0.0, 0, 0, 1.0)
    assert (st.waiting_now, st.waiting_s) == (0, 0.0)


# -- waits count while they happen -----------------------------------------------------------
def test_a_stats_snapshot_taken_mid_wait_shows_the_wait():
    ft = FakeTime(MIN0 + 15_000)
    snaps: list[PacerStats] = []

    def sleep(seconds: float) -> None:            # snapshot halfway through the sleep and at its end
        ft.ms += seconds * 500.0
        snaps.append(p.stats())
        ft.ms += seconds * 500.0
        snaps.append(p.stats())

    p = Pacer(SMALL, clock=ft.clock, sleep=sleep, smoothing="window")
    p.acquire(80)
    assert p.acquire(1) == 45.0                   # the budget is spent: wait for the next minute
    half, end = snaps
    assert (half.waits, half.wait_s_total) == (1, 22.5)       # counted while it happens
    assert (half.waiting_now, half.waiting_s) == (1, 22.5)
    assert (end.waits, end.wait_s_total, end.waiting_now, end.waiting_s) == (1, 45.0, 1, 45.0)
    st = p.stats()
    assert (st.waits, st.wait_s_total, st.waiting_now, st.waiting_s) == (1, 45.0, 0, 0.0)


def test_waits_cut_short_by_the_end_of_the_run_still_count():
    """A 429 pause longer than the rest of the run: the users are blocked until they are killed."""
    ft = FakeTime(MIN0 + 1_000)
    parked = Event()                             # never set: the pause outlasts the run
    p = Pacer(SMALL, clock=ft.clock, sleep=lambda s: parked.wait())
    p.on_429(30)
    users = [gevent.spawn(p.acquire, 1, orders=i % 2) for i in range(3)]   # both lanes
    gevent.sleep(0)
    ft.ms += 18_000                               # blocked 18 s so far
    st = p.stats()
    assert (st.waits, st.wait_s_total) == (3, 54.0)
    assert (st.waiting_now, st.waiting_s) == (3, 54.0)
    assert st.acquired_weight_total == 0
    gevent.killall(users)                         # the run ends
    st = p.stats()
    assert (st.waits, st.wait_s_total, st.waiting_now, st.waiting_s) == (3, 54.0, 0, 0.0)


def test_a_wait_ended_by_a_ban_counts_and_wait_seconds_never_go_down():
    p, ft = make(MIN0 + 5_000, share=0.0)         # a distributed worker before its share arrives
    g = gevent.spawn(p.acquire, 5)
    gevent.sleep(0)
    ft.ms += 10_000
    assert (p.stats().waits, p.stats().wait_s_total, p.stats().waiting_now) == (1, 10.0, 1)
    ft.ms -= 4_000                                # the server clock is re-synced backwards
    assert p.stats().wait_s_total == 10.0 and p.stats().waiting_s == 6.0
    ft.ms += 6_000
    assert p.stats().wait_s_total == 12.0
    p.on_418(60)
    g.join()
    assert isinstance(g.exception, IpBanned)
    st = p.stats()
    assert (st.waits, st.wait_s_total, st.waiting_now, st.waiting_s) == (1, 12.0, 0, 0.0)
