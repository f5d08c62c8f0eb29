"""Smooth pacing: the token bucket on top of the fixed windows (``smoothing="bucket"``, the default).

Two kinds of time, both injected: ``FakeTime`` (as in test_pacing.py: a sleep advances the clock
by exactly what the pacer asked for) for exact delays, and ``VirtualTime`` (a discrete-event
clock: every greenlet sleeps through it) for minutes of saturating demand from many greenlets
against a model of the exchange's fixed-window counters (``letrade_perf.pacing.virtual``).
"""
from __future__ import annotations

import json

import gevent
import pytest

from letrade_perf.config import profile as prof
from letrade_perf.core.errors import ConfigError
from letrade_perf.core.resources import profiles_dir
from letrade_perf.pacing import DEFAULT_BURST_S, DEFAULT_SMOOTHING, Budgets, Pacer
from letrade_perf.pacing.virtual import VirtualTime, max_in_span, measure, saturate

MIN0 = 1_700_000_040_000          # a whole minute of server time
assert MIN0 % 60_000 == 0
PER_SECOND = Budgets(weight=((60_000, 75),))     # × 0.8 = 60 a minute: 1 weight a second, 1000 ms a weight


class FakeTime:
    def __init__(self, ms: float):
        self.ms = float(ms)
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.ms

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.ms += seconds * 1000.0
        gevent.sleep(0)


def make(start_ms: float, budgets: Budgets = PER_SECOND, **kw) -> tuple[Pacer, FakeTime]:
    """A pacer in fake time; the tests of the bucket's mechanics use a one-second burst unless
    they say otherwise (the default's own test asks for the default)."""
    ft = FakeTime(start_ms)
    if kw.pop("default_burst", False) is False:
        kw.setdefault("burst_s", 1.0)
    return Pacer(budgets, clock=ft.clock, sleep=ft.sleep, **kw), ft


# -- the bucket, exactly ----------------------------------------------------------------------
def test_the_default_is_a_five_second_bucket_then_requests_at_the_budget_rate():
    p, ft = make(MIN0 + 15_000, default_burst=True)
    assert (p.smoothing, p.burst_s) == (DEFAULT_SMOOTHING, DEFAULT_BURST_S) == ("bucket", 5.0)
    assert [p.acquire(1) for _ in range(5)] == [0.0] * 5   # the bucket starts full: five seconds of the rate
    assert p.acquire(1) == 1.0                    # then one weight a second (60 a minute)
    assert p.acquire(1) == 1.0
    assert ft.sleeps == [1.0, 1.0]
    ft.ms += 20_000                               # idle for 20 s: the bucket holds five seconds, not twenty
    assert [p.acquire(1) for _ in range(5)] == [0.0] * 5
    assert p.acquire(1) == 1.0


def test_burst_is_the_buckets_size_in_seconds_of_the_rate():
    p, ft = make(MIN0 + 15_000, burst_s=3.0)
    assert [p.acquire(1) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
    p0, ft0 = make(MIN0 + 15_000, burst_s=0.0)    # no burst: evenly spaced
    assert [p0.acquire(1) for _ in range(3)] == [0.0, 1.0, 1.0]


def test_a_request_heavier_than_the_burst_goes_when_the_bucket_is_full_and_leaves_a_debt():
    p, ft = make(MIN0 + 15_000, burst_s=2.0)
    assert p.acquire(2) == 0.0
    assert p.acquire(5) == 2.0                    # 5 s of rate > 2 s burst: waits for a full bucket
    assert p.acquire(1) == 4.0                    # 3 s of debt, then its own second
    assert p.stats().weight_used == 8             # the fixed window counts all of it


def test_refund_gives_the_bucket_back_what_the_call_did_not_cost():
    p, ft = make(MIN0 + 15_000)
    at = p.now_ms()
    p.acquire(1, orders=0)
    p.refund(weight=1, reserved_at_ms=at)         # e.g. an order entry that succeeded: 0 weight
    assert p.acquire(1) == 0.0
    p.refund(weight=50)                           # never more than the burst
    assert [p.acquire(1) for _ in range(2)] == [0.0, 1.0]


def test_a_clock_stepping_back_adds_no_credit():
    p, ft = make(MIN0 + 15_000)
    p.acquire(1)
    ft.ms -= 5_000                                # a re-sync sets the server clock back
    assert p.acquire(1) == 6.0                    # the bucket counts from the later instant


def test_the_fixed_windows_still_cap_the_bucket():
    """The bucket has credit, but the minute's budget is spent (here by another client of the
    IP, as the server's header says): wait for the next whole minute, as in window mode."""
    p, ft = make(MIN0 + 15_000)
    p.observe({"X-MBX-USED-WEIGHT-1M": "60"})
    assert p.acquire(1) == 45.0
    assert ft.ms == MIN0 + 60_000


def test_a_429_pause_ends_into_one_burst_not_the_banked_pause():
    p, ft = make(MIN0 + 15_000, burst_s=2.0)
    p.on_429(30)
    assert p.acquire(1) == 30.0
    assert [p.acquire(1) for _ in range(2)] == [0.0, 1.0]   # two seconds banked, not thirty
    assert p.stats().r429 == 1


def test_orders_ten_second_window_is_smoothed_and_the_day_is_not():
    budgets = Budgets(weight=((60_000, 100_000),), orders=((10_000, 10),))      # 8 orders per 10 s
    p, ft = make(MIN0 + 1_000, budgets)
    waits = [p.acquire(1, orders=1) for _ in range(4)]
    assert waits == [0.0, 1.25, 1.25, 1.25]       # 0.8 a second: 1.25 s an order
    day = Budgets(weight=((60_000, 100_000),), orders=((86_400_000, 100),))
    p, ft = make(MIN0 + 1_000, day)
    assert [p.acquire(1, orders=1) for _ in range(20)] == [0.0] * 20   # a day's orders are not spread


def test_window_mode_admits_the_whole_budget_at_once():
    p, ft = make(MIN0 + 15_000, smoothing="window")
    assert [p.acquire(1) for _ in range(60)] == [0.0] * 60
    assert p.acquire(1) == 45.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="smoothing must be one of bucket, window"):
        make(MIN0, smoothing="sliding")
    with pytest.raises(ValueError, match="burst_s"):
        make(MIN0, burst_s=-1)


# -- many greenlets, minutes of saturating demand ------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_saturating_demand_stays_within_the_one_second_bound_and_uses_the_budget(workers):
    """16 users per process send back to back (market data and 10 % orders, 20 ms round trip)
    from 5 s before a minute to 5 s after the next: no one-second span carries more than
    1.5 × (budget / 60) + burst of weight (nor of orders, per 10 s), the whole minute uses ≥ 95 %
    of the budget, the fixed windows are never exceeded, no 429. With 2 and 4 workers the budget
    is split in equal shares, and every pacer also sees the others' use in the headers."""
    run = saturate(workers=workers, start_ms=MIN0 - 5_000, seconds=70, users=16, seed=workers)
    fig = measure(run)
    bound = 1.5 + DEFAULT_BURST_S                 # in units of budget / 60 (orders: budget / 10)
    assert fig.minutes == 1 and fig.r429 == 0
    assert fig.weight_peak_1s <= bound, fig
    assert fig.orders_peak_1s <= bound, fig
    assert fig.weight_use >= 0.95, fig
    per_minute: dict[int, int] = {}
    for t, w, _o in run.exchange.log:
        per_minute[int(t // 60_000)] = per_minute.get(int(t // 60_000), 0) + w
    assert max(per_minute.values()) <= run.weight_budget, per_minute


def test_window_mode_reproduces_the_burst_at_the_top_of_the_minute():
    run = saturate(smoothing="window", start_ms=MIN0 - 5_000, seconds=70, users=16)
    fig = measure(run)
    assert fig.weight_use >= 0.95 and fig.r429 == 0
    assert fig.weight_peak_1s > 20, fig          # a burst at the top of the minute: 20 × the mean rate and more
    top = sum(w for t, w, _o in run.exchange.log if MIN0 <= t < MIN0 + 1_000)
    assert top >= 0.35 * run.weight_budget        # (as fast as 16 users with a 20 ms round trip can)


def test_a_share_change_rescales_the_bucket_rate():
    """A worker at share 1 for a minute, then 0.5 (another worker joined): its grants per
    second follow the budget — 8 a second, then 4 — with the one-second bound at each share."""
    vt = VirtualTime(MIN0)
    p = Pacer(Budgets(weight=((60_000, 600),)), clock=vt.clock, sleep=vt.sleep, burst_s=1.0)   # 480 a minute
    grants: list[tuple[float, int]] = []

    def user() -> None:
        while True:
            p.acquire(1)
            grants.append((vt.clock(), 1))
            vt.sleep(0.02)

    def master() -> None:
        vt.sleep(60.0)
        p.set_share(0.5)

    greenlets = [gevent.spawn(user) for _ in range(20)] + [gevent.spawn(master)]
    try:
        vt.run(MIN0 + 120_000)
    finally:
        gevent.killall(greenlets)

    def rate(a_s: float, b_s: float) -> float:
        return sum(1 for t, _ in grants if MIN0 + a_s * 1000 <= t < MIN0 + b_s * 1000) / (b_s - a_s)

    assert rate(5, 55) == pytest.approx(8.0, abs=0.05)
    assert rate(65, 115) == pytest.approx(4.0, abs=0.05)
    first = [g for g in grants if g[0] < MIN0 + 60_000]
    second = [g for g in grants if MIN0 + 60_000 <= g[0] < MIN0 + 120_000]
    assert max_in_span(first, 1000) <= 1.5 * 8 + 8
    assert max_in_span(second, 1000) <= 1.5 * 4 + 4
    assert len(first) == 480 and len(second) == 240   # each minute's budget used to the last weight


def test_max_in_span_is_a_sliding_window():
    events = [(0.0, 1), (900.0, 2), (1_400.0, 4), (2_500.0, 1)]
    assert max_in_span(events, 1000) == 6          # 900 and 1400 are 500 ms apart
    assert max_in_span(events, 100) == 4


# -- the profile --------------------------------------------------------------------------------
def _pacing(tmp_path, pacing: dict):
    doc = {"description": "smooth pacing test profile", "symbols": ["BTCUSDT"],
           "stages": [{"duration": "10s", "users": 1, "spawn_rate": 1}], "users": {"rest_market": {}},
           "pacing": pacing}
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(doc))
    return prof.load_profile(str(path)).pacing


def test_profile_pacing_settings_default_to_the_pacers_smoothing_and_burst(tmp_path):
    pacing = _pacing(tmp_path, {})
    assert (pacing.smoothing, pacing.burst_s) == (DEFAULT_SMOOTHING, DEFAULT_BURST_S) == ("bucket", 5.0)
    pacing = _pacing(tmp_path, {"smoothing": "window"})
    assert (pacing.smoothing, pacing.burst_s) == ("window", DEFAULT_BURST_S)
    pacing = _pacing(tmp_path, {"smoothing": "window", "burst_s": "500ms"})
    assert (pacing.smoothing, pacing.burst_s) == ("window", 0.5)


@pytest.mark.parametrize("pacing,fragment", [
    ({"smoothing": "sliding"}, "pacing.smoothing: expected one of 'bucket', 'window'"),
    ({"burst_s": "2m"}, "pacing.burst_s: must be within 0 .. 60 s"),
    ({"burst": 2}, "unknown key 'pacing.burst'"),
])
def test_profile_pacing_settings_are_checked(tmp_path, pacing, fragment):
    with pytest.raises(ConfigError) as ei:
        _pacing(tmp_path, pacing)
    assert fragment in str(ei.value)


def test_the_schema_documents_the_settings():
    with open(f"{profiles_dir()}/profile.schema.json", encoding="utf-8") as fh:
        schema = json.load(fh)
    text = json.dumps(schema)
    assert '"bucket"' in text and '"window"' in text and "burst_s" in text
