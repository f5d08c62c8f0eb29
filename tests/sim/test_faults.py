"""FaultModel: seeded probability, every N-th, count cap, windows, clock skew, latency draws."""
from __future__ import annotations

import random

import pytest

from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import FaultSpec, LatencySpec, SimConfig
from letrade_perf.sim.faults import FaultModel
from letrade_perf.sim.stats import SimStats

DEPTH = "GET /api/v3/depth"
PRICE = "GET /api/v3/ticker/price"


def make(seed: int = 7, **cfg) -> tuple[FaultModel, ManualClock, SimStats]:
    clock = ManualClock(1_700_000_000_000)
    stats = SimStats()
    return FaultModel(SimConfig(**cfg), clock, stats, random.Random(seed)), clock, stats


def fired(fm: FaultModel, name: str, n: int) -> list[int]:
    return [i for i in range(1, n + 1) if fm.pick_rest(name) is not None]


def test_probability_with_seeded_rng_is_reproducible_and_exact():
    fm, _, stats = make(seed=7)
    fm.add(FaultSpec("http_5xx", endpoints=[DEPTH], probability=0.1))
    hits = fired(fm, DEPTH, 1000)
    expected_rng = random.Random(7)
    expected = [i for i in range(1, 1001) if expected_rng.random() < 0.1]
    assert hits == expected
    assert len(hits) == 108
    assert stats.faults["http_5xx"] == 108
    fm2, _, _ = make(seed=7)
    fm2.add(FaultSpec("http_5xx", endpoints=[DEPTH], probability=0.1))
    assert fired(fm2, DEPTH, 1000) == hits


def test_every_nth_matching_request():
    fm, _, stats = make()
    fm.add(FaultSpec("truncated", endpoints=[DEPTH], every=3))
    assert fired(fm, DEPTH, 10) == [3, 6, 9]
    assert fired(fm, PRICE, 5) == []                 # other endpoints neither fire nor advance the counter
    assert fired(fm, DEPTH, 2) == [2]                # 12th matching request
    assert stats.faults == {"truncated": 4}


def test_count_caps_injections():
    fm, _, stats = make()
    fm.add(FaultSpec("reset", count=2))              # neither every nor probability: every match fires
    assert fired(fm, PRICE, 5) == [1, 2]
    assert fm.rules("reset") == []                   # exhausted rules are no longer active
    assert stats.faults["reset"] == 2


def test_active_window_after_and_duration():
    fm, clock, _ = make()
    fm.add(FaultSpec("storm_429", endpoints=["*"], after_s=5, duration_s=10))
    assert fm.pick_rest(DEPTH) is None
    clock.advance(4_999)
    assert fm.pick_rest(DEPTH) is None
    clock.advance(1)
    assert fm.pick_rest(DEPTH).kind == "storm_429"
    clock.advance(9_999)
    assert fm.pick_rest(PRICE) is not None
    clock.advance(1)
    assert fm.pick_rest(PRICE) is None
    assert fm.rules("storm_429") == []


def test_first_firing_rule_wins_and_uncounted_picks():
    fm, _, stats = make()
    fm.add(FaultSpec("http_5xx", endpoints=[DEPTH], every=2))
    fm.add(FaultSpec("malformed", endpoints=["*"]))
    kinds = [fm.pick_rest(DEPTH, count=False).kind for _ in range(4)]
    assert kinds == ["malformed", "http_5xx", "malformed", "http_5xx"]
    assert stats.faults == {}                        # count=False: the caller counts what it injects
    fm.count("http_5xx")
    assert stats.faults == {"http_5xx": 1}


def test_select_for_ws_kinds_rules_clear_and_on_change():
    fm, _, stats = make()
    changes = []
    fm.on_change(lambda: changes.append(len(fm.rules("ws_disconnect")) + len(fm.rules("ws_delay"))))
    fm.add(FaultSpec("ws_disconnect", endpoints=["btcusdt@trade"], every=2))
    fm.add(FaultSpec("ws_delay", delay_ms=250))
    assert fm.pick_rest("btcusdt@trade") is None     # WS kinds are not REST faults
    assert fm.select("ws_disconnect", "btcusdt@trade") is None
    assert fm.select("ws_disconnect", "btcusdt@trade").kind == "ws_disconnect"
    assert fm.select("ws_disconnect", "ethusdt@trade") is None
    assert fm.select("ws_delay", "anything").delay_ms == 250
    assert [s.kind for s in fm.rules("ws_delay")] == ["ws_delay"]
    assert stats.faults == {"ws_disconnect": 1, "ws_delay": 1}
    assert fm.clear("ws_delay") == 1
    assert fm.rules("ws_delay") == []
    assert fm.clear() == 1
    assert changes == [1, 2, 1, 0]
    assert fm.clear() == 0 and changes == [1, 2, 1, 0]


def test_clock_skew_rule_applies_while_active():
    fm, clock, stats = make()
    fm.set_base_skew(100)
    assert clock.skew_ms == 100
    fm.add(FaultSpec("clock_skew", skew_ms=-3000, after_s=1, duration_s=2))
    assert clock.skew_ms == 100
    clock.advance(1000)
    fm.refresh()
    assert clock.skew_ms == -2900
    clock.advance(1999)
    fm.refresh()
    assert clock.skew_ms == -2900                    # the window ignores the skew it causes
    clock.advance(1)
    fm.refresh()
    assert clock.skew_ms == 100
    assert stats.faults == {"clock_skew": 1}
    fm.add(FaultSpec("clock_skew", skew_ms=500))
    assert clock.skew_ms == 600
    fm.clear("clock_skew")
    assert clock.skew_ms == 100


def test_config_faults_installed_at_start():
    fm, _, _ = make(faults=[FaultSpec("http_5xx", status=500, every=1)])
    assert fm.pick_rest(DEPTH).status == 500
    snap = fm.snapshot()["rules"]
    assert snap[0]["kind"] == "http_5xx" and snap[0]["matched"] == 1 and snap[0]["fired"] == 1


def test_latency_none_fixed_and_endpoint_override():
    fm, _, _ = make()
    assert fm.latency_ms(DEPTH) == 0.0
    fm.set_latency(LatencySpec(fixed_ms=20.0))
    assert fm.latency_ms(DEPTH) == 20.0
    fm.set_latency(endpoints={DEPTH: LatencySpec(fixed_ms=5.0, jitter_ms=10.0, dist="uniform")})
    r = random.Random(7)
    assert fm.latency_ms(DEPTH) == pytest.approx(5.0 + r.uniform(0, 10.0))
    assert fm.latency_ms(PRICE) == 20.0


@pytest.mark.parametrize("dist", ["uniform", "normal", "exponential", "lognormal"])
def test_latency_jitter_distributions_are_seeded(dist):
    spec = LatencySpec(fixed_ms=1.0, jitter_ms=10.0, dist=dist)
    a, _, _ = make(seed=3, latency=spec)
    b, _, _ = make(seed=3, latency=spec)
    xs = [a.latency_ms(DEPTH) for _ in range(2000)]
    assert xs == [b.latency_ms(DEPTH) for _ in range(2000)]
    assert min(xs) >= 1.0
    mean_jitter = sum(xs) / len(xs) - 1.0
    expected = {"uniform": 5.0, "normal": 10.0 * (2 / 3.141592653589793) ** 0.5,
                "exponential": 10.0, "lognormal": 10.0 * 2.718281828459045 ** 0.5}[dist]
    assert mean_jitter == pytest.approx(expected, rel=0.12)


def test_clock_skew_window_timers_fire_on_the_event_loop():
    import asyncio
    import time as _time

    from letrade_perf.sim.clock import SimClock

    async def scenario():
        clock = SimClock()
        fm = FaultModel(SimConfig(faults=[FaultSpec("clock_skew", skew_ms=7000, after_s=0.05, duration_s=0.1)]),
                        clock, SimStats(), random.Random(1))
        assert clock.skew_ms == 0
        fm.start()                                   # what the app does on startup
        seen = []
        t0 = _time.monotonic()
        while _time.monotonic() - t0 < 0.4:          # bounded: the window ends at 0.15 s
            seen.append(clock.skew_ms)
            await asyncio.sleep(0.01)
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] == 0 and 7000 in seen and seen[-1] == 0
