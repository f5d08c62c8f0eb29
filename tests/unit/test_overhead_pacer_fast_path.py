"""The pacer's inlined hot paths behave exactly as the general code they shortcut.

``Pacer._admit_now`` (the no-wait acquire: windows rolled, token buckets refilled, checks and
reservations in one method) must leave the pacer as ``_delay_ms`` followed by ``_reserve`` do;
``Pacer.observe``'s fast path (the canonical ``X-MBX-*`` header names, applied without building
dicts) as the same names gathered in dicts for ``_apply_reports``. A reference pacer takes the general code;
both are driven through the same seeded sequence of acquires, waits, header reports, refunds,
429 pauses and share changes on a fake clock, and their state and statistics are compared after
every step. ``feedback`` observes headers whatever their number (an empty set changes nothing).
"""
from __future__ import annotations

import random

import pytest
from test_pacing import FakeTime  # the pacer tests' fake clock

from letrade_perf.binance.endpoints import endpoint
from letrade_perf.calls.path import CallResult, feedback
from letrade_perf.pacing import Budgets, Pacer

MIN0 = 1_700_000_040_000
BUDGETS = Budgets(weight=((60_000, 400),), orders=((10_000, 10), (86_400_000, 60)), raw=((300_000, 900),))


class ReferencePacer(Pacer):
    """The general code paths: ``_delay_ms`` + ``_reserve``; the canonical headers gathered in
    dicts for ``_apply_reports``, anything else through the general header parser."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self._canonical = self._fast_headers
        self._fast_headers = None

    def observe(self, headers, *, sent_at_ms=None, orders=True) -> None:
        used: dict[int, int] = {}
        counts: dict[int, int] = {}
        for hname, win, is_weight in self._canonical:
            if not (is_weight or orders):
                continue
            v = headers.get(hname)
            if v is not None:
                try:
                    (used if is_weight else counts)[win.window_ms] = int(v)
                except ValueError:
                    pass
        if used:
            self._apply_reports(used, counts, sent_at_ms)
            return
        super().observe(headers, sent_at_ms=sent_at_ms, orders=orders)   # the general parser

    def _admit_now(self, now: float, weight: int, orders: int) -> bool:
        if self._delay_ms(now, weight, orders) == 0.0:
            self._reserve(now, weight, orders, rolled=True)
            return True
        return False


def state(p: Pacer) -> list:
    out: list = [p.stats()]          # first: stats() rolls the windows
    for w in p._windows:
        sm = w.smooth
        out.append((w.label, w.bucket, w.used, w.ours,
                    None if sm is None else (round(sm.credit_ms, 9), sm.last_ms)))
    return out


ENDPOINTS = [("GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5}),
             ("GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": 500}),
             ("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"}),
             ("POST", "/api/v3/order", {"symbol": "BTCUSDT"}),
             ("DELETE", "/api/v3/order", {"symbol": "BTCUSDT"})]


@pytest.mark.parametrize("smoothing", ["bucket", "window"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_paths_leave_the_pacer_as_the_general_code_does(smoothing, seed):
    rng = random.Random(seed)
    clocks = FakeTime(MIN0), FakeTime(MIN0)
    pacers = [cls(BUDGETS, clock=ft.clock, sleep=ft.sleep, smoothing=smoothing, burst_s=2.0)
              for cls, ft in zip((Pacer, ReferencePacer), clocks)]
    for step in range(600):
        op = rng.random()
        if op < 0.6:
            method, path, params = rng.choice(ENDPOINTS)
            ep = endpoint(method, path)
            ok = rng.random() < 0.8
            for p in pacers:
                r = p.acquire_for(ep, params)
                r.settle(ok)
        elif op < 0.8:
            used = str(rng.randrange(0, 450))
            headers = {"X-MBX-USED-WEIGHT-1M": used}
            if rng.random() < 0.5:
                headers["X-MBX-ORDER-COUNT-10S"] = str(rng.randrange(0, 12))
                headers["X-MBX-ORDER-COUNT-1D"] = str(rng.randrange(0, 70))
            if rng.random() < 0.1:
                headers = {"x-mbx-used-weight": used}                      # the legacy name only
            if rng.random() < 0.05:
                headers = {"X-MBX-USED-WEIGHT-1M": "not a number"}
            sent_at = clocks[0].ms - rng.choice((0.0, 500.0, 61_000.0))
            with_orders = rng.random() < 0.5
            for p in pacers:
                p.observe(headers, sent_at_ms=sent_at, orders=with_orders)
        elif op < 0.9:
            advance = 0.0 if rng.random() < 0.3 else rng.uniform(1.0, 9_000.0)
            for ft in clocks:
                ft.ms += advance
        elif op < 0.95:
            weight, orders = rng.randrange(0, 6), rng.randrange(0, 2)
            for p in pacers:
                p.refund(weight=weight, orders=orders, reserved_at_ms=clocks[0].ms)
        elif op < 0.98:
            retry_after = rng.uniform(0.0, 2.0)
            for p in pacers:
                p.on_429(retry_after)
        else:
            share = rng.choice((0.5, 1.0, 0.25))
            for p in pacers:
                p.set_share(share)
        assert clocks[0].ms == clocks[1].ms, f"step {step}: the fast path waited differently"
        assert clocks[0].sleeps == clocks[1].sleeps, f"step {step}"
        assert state(pacers[0]) == state(pacers[1]), f"step {step}"
    assert pacers[0].stats().waits > 0          # the sequence exercised waiting, not only the fast path
    assert pacers[0].stats().requests_total > 100


def test_a_negative_weight_is_refused_before_anything_is_reserved():
    ft = FakeTime(MIN0)
    p = Pacer(BUDGETS, clock=ft.clock, sleep=ft.sleep)

    class Odd:
        name = "GET /odd"

        def cost(self, params, ok=True):
            return -1

    with pytest.raises(ValueError, match="GET /odd"):
        p.acquire_for(Odd(), {})
    assert p.stats().requests_total == 0


def test_feedback_observes_headers_whatever_their_number():
    """``feedback`` hands every header object to the pacer (not only non-empty ones: a client's
    header object may be costly to count); an empty set changes nothing."""
    seen: list = []

    class Spy:
        def observe(self, headers, **kw):
            seen.append(headers)

    class Ctx:
        pacer = Spy()

    feedback(Ctx(), CallResult(200, headers={}), None)
    feedback(Ctx(), CallResult(200, headers={"X-MBX-USED-WEIGHT-1M": "7"}), None)
    assert seen == [{}, {"X-MBX-USED-WEIGHT-1M": "7"}]

    ft = FakeTime(MIN0)
    p = Pacer(BUDGETS, clock=ft.clock, sleep=ft.sleep)
    before = state(p)
    p.observe({}, sent_at_ms=ft.ms)
    assert state(p) == before
