"""The run's long-lived structures stay bounded after many operations, and their aggregates stay exact.

A day-long soak sends tens of thousands of requests and thousands of orders through one Locust
process: the order ledger, the merged uptime record, the per-interval table, the recorder's
per-interval state, the funds' per-order bookkeeping of a worker and the audit trail must not
grow with them. Each test drives one structure through N operations (injected clocks, seeded
randomness; no wall time) and checks both the bound and — against an unbounded reference where
there is one — that nothing the run reports was lost.
"""
from __future__ import annotations

import random
import tracemalloc
import types
from decimal import Decimal

import yaml

from letrade_perf.config.profile import profile_from_mapping
from letrade_perf.criteria.intervals import MAX_INTERVALS, IntervalTable
from letrade_perf.harness.audit import AuditTrail
from letrade_perf.harness.ledger import OrderLedger
from letrade_perf.harness.plugin import ProcessState
from letrade_perf.harness.positions import RunFunds, worker_report
from letrade_perf.metrics.recorder import MAX_SERIES_PER_METRIC, UPTIME_BLOCK_S, MetricsRecorder, MetricsStore, Snapshot

D = Decimal
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")


# -- the order ledger ---------------------------------------------------------------------------
def _drive(ledgers: list[OrderLedger], n: int, seed: int = 7) -> None:
    """The same ``n`` orders, with every kind of ending, through each ledger."""
    rng = random.Random(seed)
    late: list[tuple[str, Decimal, Decimal]] = []
    for i in range(n):
        cid = f"lp-{i}"
        sym, side = rng.choice(SYMBOLS), rng.choice(("BUY", "SELL"))
        source = rng.choice(("pipeline", "ccxt"))
        notional = D(rng.randrange(10, 20))
        qty = D(rng.randrange(1, 100)) / D(1000)
        kind = rng.random()
        for led in ledgers:
            assert led.reserve_notional(notional, sym, side)
            led.sent(cid, sym, side, source, notional=notional)
            if kind < 0.70:                                   # filled at once, answer shows the quantities
                led.accepted(cid, "FILLED", 1000 + i, qty, notional)
            elif kind < 0.80:                                 # rests, partly fills, then the fills' exact value
                led.accepted(cid, "NEW", 1000 + i, D(0), D(0))
                led.seen(cid, "PARTIALLY_FILLED", 1000 + i, qty / 2, notional / 2)
                led.status(cid, "FILLED")
            elif kind < 0.85:                                 # resting order cancelled unfilled
                led.accepted(cid, "NEW", 1000 + i, D(0), D(0))
                led.seen(cid, "CANCELED", 1000 + i, D(0), D(0))
                led.release_notional(notional, client_order_id=cid)
            elif kind < 0.90:                                 # status unknown, resolved by a query
                led.unknown(cid)
                led.resolved(cid, "FILLED", 1000 + i, qty, notional)
            elif kind < 0.93:                                 # unknown, the exchange never had it
                led.unknown(cid)
                led.resolved(cid, None)
            elif kind < 0.96:
                led.rejected(cid)
            elif kind < 0.98:                                 # still open at the end
                led.accepted(cid, "NEW", 1000 + i, D(0), D(0))
            else:                                             # filled, no quantity shown yet
                led.accepted(cid, "FILLED", 1000 + i)
        if kind < 0.70 and rng.random() < 0.3:
            late.append((cid, notional - D("0.5"), qty))
        while late and rng.random() < 0.5:                    # the fills' exact value, a little later
            c, quote, q = late.pop(0)
            for led in ledgers:
                led.executed(c, quote, q)


def _views(led: OrderLedger) -> dict:
    snap = led.snapshot()
    return {"counts": led.counts(), "by_source": led.counts_by_source(), "run_notional": led.run_notional,
            "exposure": led.exposure(), "positions": led.net_positions(), "sources": led.order_sources(),
            "symbols": led.symbols(), "open": sorted(led.open_order_ids()),
            "unknown": sorted(r.client_order_id for r in led.unknown_executions()),
            "snapshot": snap}


def test_the_ledger_holds_a_bounded_number_of_orders_and_its_aggregates_stay_exact():
    bounded = OrderLedger(max_run_notional=10**9, max_retired_kept=64)
    reference = OrderLedger(max_run_notional=10**9, max_retired_kept=10**9)     # never rolls up
    n = 6000
    _drive([bounded, reference], n)
    live, retired = bounded.held()
    assert retired <= 64
    # only what may still change stays live: open orders and orders whose execution is unknown
    assert live == len(bounded.open_orders()) + len([r for r in bounded.unknown_executions() if r.outcome])
    assert live < n * 0.05
    assert bounded.rolled_up == n - live - retired and bounded.rolled_up > n * 0.9
    assert reference.held() == (live, n - live)
    assert _views(bounded) == _views(reference)
    assert len(bounded.order_sources()) == len([r for r in reference.records() if r.order_id is not None])
    assert bounded.late_answers == 0


def test_a_ledger_order_stays_whole_until_flatten_and_fund_safety_have_what_they_need():
    led = OrderLedger(max_retired_kept=0)
    led.sent("a", "BTCUSDT", "BUY", "pipeline")
    led.accepted("a", "FILLED")                   # no quantity, no orderId: flatten and funds still need it
    assert [r.client_order_id for r in led.unknown_executions()] == ["a"] and led.held() == (1, 0)
    led.seen("a", "FILLED", None, D("0.01"), D("12"))
    assert led.held() == (1, 0)                   # the orderId is still missing
    led.set_order_id("a", 77)
    assert led.held() == (0, 0) and led.rolled_up == 1
    assert led.order_sources() == {("BTCUSDT", 77): "pipeline"} and led.symbols() == {"BTCUSDT"}
    assert led.net_positions() == {"BTCUSDT": D("0.01")} and led.counts()["filled"] == 1
    led.sent("b", "ETHUSDT", "SELL", "pipeline")
    led.unknown("b")
    assert led.held() == (1, 0) and led.open_order_ids() == ["b"]   # unknown status: the kill switch needs it


def test_a_late_answer_for_an_order_rolled_up_long_ago_changes_nothing_and_is_counted():
    led = OrderLedger(max_retired_kept=2)
    for i in range(5):
        led.sent(f"o{i}", "BTCUSDT", "BUY", "pipeline", notional=10)
        led.accepted(f"o{i}", "FILLED", i, D("0.001"), D("10"))
    before = _views(led)
    assert led.get("o0") is None and led.get("o4") is not None
    led.accepted("o0", "FILLED", 0, D("0.001"), D("10"))
    led.rejected("o0")
    led.executed("o0", D("9"), D("0.001"))
    led.status("o0", "CANCELED")
    assert _views(led) == before and led.late_answers == 2
    led.executed("o4", D("9.5"), D("0.001"))      # still kept: the exact value replaces the estimate
    assert led.exposure() == before["exposure"] - D("0.5")


def test_the_ledger_memory_per_order_stays_flat_once_orders_roll_up():
    led = OrderLedger(max_retired_kept=256)

    def orders(start: int, n: int) -> None:
        for i in range(start, start + n):
            cid = f"lp-{i:08d}"
            led.sent(cid, SYMBOLS[i % 3], "BUY" if i % 2 else "SELL", "pipeline", notional=12)
            led.accepted(cid, "FILLED", 10**9 + i, D("0.0012"), D("12.01"))

    orders(0, 2000)                                # warm-up: the ring fills
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        orders(2000, 20000)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # 8 bytes of orderId per rolled-up order (array growth slack aside); a whole record is ~1 KB
    assert grown / 20000 < 40, f"{grown / 20000:.0f} bytes per order"


# -- uptime -------------------------------------------------------------------------------------
def test_the_merged_uptime_record_is_one_byte_per_second_and_exact():
    store = MetricsStore()
    reference: dict[int, bool] = {}
    rng = random.Random(3)
    t0 = 1_796_000_000
    day = 86_400
    for start in range(t0, t0 + day, 5):               # a day of 5 s intervals
        snap = Snapshot(start, start + 5)
        for sec in range(start, start + 5):
            if rng.random() < 0.999:
                ok = rng.random() < 0.995
                snap.up_seconds[sec] = ok
                reference[sec] = reference.get(sec, False) or ok
        store.merge(snap)
    late = Snapshot(t0, t0 + 5)                        # a worker's report, a day late: up after all
    late.up_seconds = {t0 + i: True for i in range(5)}
    store.merge(late)
    reference.update({t0 + i: True for i in range(5)})
    assert store.uptime() == (sum(reference.values()), len(reference))
    assert store.up_seconds == reference
    assert store.uptime_seconds.nbytes() <= (day // UPTIME_BLOCK_S + 2) * UPTIME_BLOCK_S   # ~88 KB a day


# -- the per-interval table -----------------------------------------------------------------------
def _snap(rec: MetricsRecorder, clock: list[float], seconds: float, n: int) -> Snapshot:
    for i in range(n):
        clock[0] += seconds / n
        rec.on_request(request_type="GET", name=f"GET /api/v3/e{i % 7}", response_time=1.0 + i % 50)
        rec.on_order(outcome="filled", source="pipeline")
    return rec.drain()


def test_the_interval_table_stays_bounded_past_its_plan():
    clock = [1_796_000_000.0]
    rec = MetricsRecorder(clock=lambda: clock[0])
    planned = 3_600.0
    table = IntervalTable(max(5.0, planned / MAX_INTERVALS), ())
    sizes = []
    for _ in range(int(planned * 6 / 5)):              # six times the plan (a web UI left running)
        table.add(_snap(rec, clock, 5.0, 20))
        sizes.append(len(table._closed) + len(table._open))
    assert len(table._open) <= 2
    within_plan = sizes[int(planned / 5) - 1]
    assert within_plan <= MAX_INTERVALS + 2
    assert max(sizes) <= MAX_INTERVALS + 3 * MAX_INTERVALS // 2 + 2   # a few doublings past the plan
    # closed intervals keep a few figures per endpoint, never histograms
    assert all(isinstance(v, (int, float)) or v is None
               for row in table._closed for ep in row["endpoints"].values() for v in ep.values())
    summary = table.to_summary(1_796_000_000.0)
    assert summary is not None and sum(summary["orders"]["filled"]) == int(planned * 6 / 5) * 20


# -- the recorder's per-interval state --------------------------------------------------------------
def test_the_recorder_forgets_each_interval_and_caps_its_tag_sets():
    clock = [1_796_000_000.0]
    rec = MetricsRecorder(clock=lambda: clock[0])
    for k in range(50):
        for i in range(100):
            clock[0] += 0.05
            rec.on_request(request_type="GET", name=f"GET /x/{k * 100 + i}", response_time=2.0)   # 5000 names
            rec.on_ws_lag(stream=f"s{k * 100 + i}", lag_ms=1.0, uncertainty_ms=0.2)
        snap = rec.drain()
        assert len(rec._fast) == 0 and len(rec._keys) == 0 and not rec._cur.up_seconds
        assert len(snap.series) <= 2 * MAX_SERIES_PER_METRIC + 4
    assert all(len(tags) <= MAX_SERIES_PER_METRIC + 4 for tags in rec._cap.values())


# -- a worker's funds bookkeeping -------------------------------------------------------------------
def _worker_ctx() -> types.SimpleNamespace:
    profile = profile_from_mapping(yaml.safe_load("""
description: unit
symbols: [BTCUSDT]
stages: [{duration: 10s, users: 1, spawn_rate: 1}]
users: {pipeline: {fixed_count: 1, notional: 12}}
"""), "unit.yaml", "unit")
    events = types.SimpleNamespace(letrade_balance=None)
    return types.SimpleNamespace(profile=profile, role="worker", ledger=OrderLedger(max_retired_kept=32),
                                 credentials=object(), environment=types.SimpleNamespace(events=events))


def test_a_worker_reports_every_order_once_and_keeps_nothing_per_order_it_shipped():
    ctx = _worker_ctx()
    funds = RunFunds(ctx, ProcessState())
    shipped: list = []
    slippage: list = []
    for i in range(3000):
        cid = f"w-{i}"
        ctx.ledger.sent(cid, "BTCUSDT", "BUY", "pipeline")
        ctx.ledger.accepted(cid, "FILLED", i, D("0.001"), D("12"))
        funds.on_slippage(client_order_id=cid, bps=1.5)
        if i % 10 == 9:                                 # a report every 10 orders
            rep = worker_report(ctx, funds)
            shipped += rep["orders"]
            slippage += rep["slippage"]
            assert len(funds._sent_orders) <= 32 and not funds.slippage and not funds._sent_slippage
    assert [row[1] for row in shipped] == list(range(3000))
    assert len(slippage) == 3000


# -- the audit trail ------------------------------------------------------------------------------
def test_the_audit_trail_writes_each_line_and_holds_none(tmp_path):
    now = [1_796_000_000.0]
    trail = AuditTrail(str(tmp_path / "audit.jsonl"), {"run_id": "r"}, clock=lambda: now[0])
    rec = types.SimpleNamespace(client_order_id="c", symbol="BTCUSDT", side="BUY", notional=D("12"),
                                source="pipeline", via="rest", status="FILLED")
    for _ in range(200):                               # warm-up: buffers and caches
        trail.on_outcome(rec, "filled")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(20000):
            now[0] += 0.01
            trail.on_outcome(rec, "filled")
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
        trail.close()
    assert trail.lines == 20200
    assert grown < 64 * 1024, f"{grown} bytes"
    assert sum(1 for _ in open(tmp_path / "audit.jsonl", encoding="utf-8")) == 20200
