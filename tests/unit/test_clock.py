"""ClockSync: NTP-style min-RTT offset, uncertainty, refresh rules and WebSocket lag (fake clock)."""
from __future__ import annotations

import pytest

from letrade_perf.clock import ClockEstimate, ClockSync

TRUE_OFFSET_MS = 1234.0


class FakeNet:
    """Local clock (seconds) plus a server whose clock is local + TRUE_OFFSET_MS.

    Each fetch consumes the next ``(out_ms, back_ms)`` one-way delays: the server stamps its
    time after ``out_ms`` and the reply arrives ``back_ms`` later. Asymmetric delays bias the
    offset of that sample by (out − back)/2, which the min-RTT filter must avoid.
    """

    def __init__(self, delays, start_s: float = 1000.0, offset_ms: float = TRUE_OFFSET_MS):
        self.t = start_s
        self.delays = list(delays)
        self.offset_ms = offset_ms
        self.fetches = 0

    def now(self) -> float:
        return self.t

    def fetch(self) -> int:
        self.fetches += 1
        out_ms, back_ms = self.delays.pop(0)
        self.t += out_ms / 1000.0
        server = int(self.t * 1000.0 + self.offset_ms)  # serverTime is whole ms
        self.t += back_ms / 1000.0
        return server


def test_sync_keeps_min_rtt_sample_and_its_uncertainty():
    # RTTs 40, 10, 60 ms; the 40 and 60 ms samples are asymmetric (biased by ±15/20 ms).
    net = FakeNet([(35, 5), (5, 5), (10, 50)])
    cs = ClockSync(net.fetch, now=net.now, samples=3)
    est = cs.sync()
    assert net.fetches == 3
    assert est.rtt_ms == pytest.approx(10.0)
    assert est.uncertainty_ms == pytest.approx(10.0 / 2 + 0.5)
    assert est.offset_ms == pytest.approx(TRUE_OFFSET_MS, abs=0.51)  # only truncation error left
    assert abs(est.offset_ms - TRUE_OFFSET_MS) <= est.uncertainty_ms
    assert cs.estimate is est
    assert est.at == pytest.approx(net.t - (10 + 50) / 1000.0)  # end of the chosen sample


def test_offset_formula_exact():
    # t0 = 10.000 s, server says 20_000 ms (true time in [20000, 20001)), t1 = 10.008 s
    # -> offset = 20000.5 - 10004 = 9996.5.
    times = iter([10.000, 10.008])
    cs = ClockSync(lambda: 20_000, now=lambda: next(times), samples=1)
    est = cs.sync()
    assert est.offset_ms == pytest.approx(9996.5)
    assert est.rtt_ms == pytest.approx(8.0)
    assert est.uncertainty_ms == pytest.approx(4.5)


def test_server_now_and_lag():
    net = FakeNet([(2, 2)])
    cs = ClockSync(net.fetch, now=net.now, samples=1)
    assert cs.server_now_ms() == pytest.approx(net.t * 1000.0)  # offset 0 before the first sync
    cs.sync()
    off = cs.estimate.offset_ms
    assert cs.server_now_ms() == pytest.approx(net.t * 1000.0 + off)
    # An event stamped E at server time, received 30 ms (server time) later.
    received_at = 2000.0
    e = int(received_at * 1000.0 + off) - 30
    assert cs.lag_ms(e, received_at) == pytest.approx(30.0, abs=1.0)
    assert cs.lag_ms(e, received_at) == pytest.approx(received_at * 1000.0 + off - e)
    assert cs.estimate.lag_ms(e, received_at) == cs.lag_ms(e, received_at)
    est = ClockEstimate(offset_ms=-500.0, uncertainty_ms=1.0, rtt_ms=1.0, at=0.0)
    assert est.lag_ms(1_000_000, 1000.2) == pytest.approx(1_000_200 - 500 - 1_000_000)


def test_maybe_refresh_waits_for_refresh_period_then_replaces():
    net = FakeNet([(5, 5)] * 2 + [(3, 3)] * 2, offset_ms=100.0)
    cs = ClockSync(net.fetch, now=net.now, samples=2, refresh_s=30.0)
    first = cs.sync()
    net.t += 29.0
    assert cs.maybe_refresh() is False
    assert net.fetches == 2
    net.t += 1.5
    net.offset_ms = 130.0  # the clocks drifted 30 ms
    assert cs.maybe_refresh() is True
    assert cs.estimate is not first
    assert cs.estimate.offset_ms == pytest.approx(130.0, abs=0.51)
    assert cs.estimate.rtt_ms == pytest.approx(6.0)


def test_maybe_refresh_rejects_congested_sample_until_estimate_is_too_old():
    net = FakeNet([(5, 5)] + [(30, 30)] * 3, offset_ms=100.0)
    cs = ClockSync(net.fetch, now=net.now, samples=1, refresh_s=10.0)
    good = cs.sync()                       # RTT 10 ms
    net.t += 10.0
    assert cs.maybe_refresh() is False     # RTT 60 ms > 4 × 10: rejected
    assert cs.estimate is good and cs.rejected == 1
    net.t += 5.0
    assert cs.maybe_refresh() is False     # no new attempt before refresh_s after the last one
    assert net.fetches == 2
    net.t += 5.0
    assert cs.maybe_refresh() is False     # rejected again (estimate 20 s old)
    assert cs.rejected == 2
    net.t += 20.0                          # estimate now >= 4 × refresh_s old: drift wins
    assert cs.maybe_refresh() is True
    assert cs.estimate.rtt_ms == pytest.approx(60.0)


def test_failed_samples_are_skipped_and_all_failing_raises():
    calls = {"n": 0}
    t = {"v": 50.0}

    def fetch():
        calls["n"] += 1
        if calls["n"] % 2:
            raise OSError("connection reset")
        return int(t["v"] * 1000) + 7

    cs = ClockSync(fetch, now=lambda: t["v"], samples=4)
    assert cs.sync().offset_ms == pytest.approx(7.5)

    def broken():
        raise OSError("down")

    with pytest.raises(RuntimeError, match="all 3 samples"):
        ClockSync(broken, now=lambda: 1.0, samples=3).sync()
    with pytest.raises(ValueError):
        ClockSync(broken, samples=0)


def test_resync_replaces_the_estimate_even_with_a_much_worse_rtt():
    # a good sample (RTT 2 ms), then the clocks drift 300 ms and the network is congested (RTT 100 ms)
    net = FakeNet([(1, 1), (50, 50)], offset_ms=100.0)
    cs = ClockSync(net.fetch, now=net.now, samples=1, refresh_s=10.0)
    good = cs.sync()
    assert good.rtt_ms == pytest.approx(2.0) and cs.forced == 0
    net.offset_ms = 400.0
    est = cs.resync()
    assert cs.estimate is est and est is not good
    assert est.rtt_ms == pytest.approx(100.0) and est.rtt_ms > ClockSync.REJECT_RTT_FACTOR * good.rtt_ms
    assert est.offset_ms == pytest.approx(400.0, abs=0.51)
    assert cs.forced == 1 and cs.rejected == 0

    # maybe_refresh, given the same samples, keeps the old (wrong) estimate
    twin_net = FakeNet([(1, 1), (50, 50)], offset_ms=100.0)
    twin = ClockSync(twin_net.fetch, now=twin_net.now, samples=1, refresh_s=10.0)
    kept = twin.sync()
    twin_net.offset_ms = 400.0
    twin_net.t += 10.0
    assert twin.maybe_refresh() is False
    assert twin.estimate is kept and twin.rejected == 1 and twin.forced == 0
    assert twin.estimate.offset_ms == pytest.approx(100.0, abs=0.51)


def test_resync_due_at_most_once_per_min_interval():
    t = {"v": 500.0}
    fetches = []

    def fetch() -> int:
        fetches.append(t["v"])
        return int(t["v"] * 1000) + 50

    cs = ClockSync(fetch, now=lambda: t["v"], samples=1)
    gap = ClockSync.RESYNC_MIN_INTERVAL_S
    assert gap == 1.0
    assert cs.resync_due() is True            # never forced yet
    cs.sync()
    assert cs.resync_due() is True            # an ordinary sync is not a forced one
    cs.resync()
    assert cs.forced == 1 and len(fetches) == 2
    assert cs.resync_due() is False
    t["v"] = 500.0 + gap / 2
    assert cs.resync_due() is False
    t["v"] = 500.0 + gap - 0.001
    assert cs.resync_due() is False
    t["v"] = 500.0 + gap
    assert cs.resync_due() is True
    cs.resync()
    assert cs.forced == 2 and cs.resync_due() is False
    t["v"] += gap + 0.5
    assert cs.resync_due() is True
    assert cs.estimate.offset_ms == pytest.approx(50.5)
