"""The one call path's own cost: the sequence around one REST send — pace, decode, classify, feed
back, and for an order the safety gate and the ledger — through ``calls.path`` (``begin`` →
``Call.leave`` → ``Call.answer``) versus the same pieces called inline (what every transport did
before the path existed), side by side in one process.

Two rows: one ``GET /api/v3/depth`` answer (a small JSON body, a used-weight header), and one
``POST /api/v3/order`` (safety check, run notional, ledger entry, booked from a FILLED answer),
against a pacer with a budget too large to ever wait. Runs alternate (ABAB…, ``--pairs``), each ``--calls`` calls; the
table (bench/_table.py) shows every pair's µs per call of each side, the medians, and the per-pair
ratios path ÷ inline (min / median / max; below 1 the path is cheaper). ``--append`` appends it to
BENCHMARKS.md. Pin it to one core for stable figures::

    taskset -c 1 .venv/bin/python bench/callpath_micro.py [--pairs 7] [--calls 20000] [--append]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from decimal import Decimal  # noqa: E402

from letrade_perf.binance.endpoints import endpoint  # noqa: E402
from letrade_perf.calls.path import CallResult, Order, begin, classify, decode, feedback  # noqa: E402
from letrade_perf.harness.ledger import OrderLedger  # noqa: E402
from letrade_perf.pacing import Pacer, budgets_from_rate_limits  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _table  # noqa: E402


class _Ctx:
    """The part of the run's context the call path touches."""

    def __init__(self) -> None:
        self.pacer = Pacer(budgets_from_rate_limits(
            [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 10**12},
             {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 10**12}]))
        self.ledger = OrderLedger(None)

    def order_refusal(self, symbol: str, notional: Decimal) -> str | None:
        return None if notional <= 20 else "max_order_notional"

    def on_clock_error(self) -> None: ...
    def on_429(self, wait_s: float) -> None: ...
    def on_418(self, wait_s: float) -> None: ...
    def abort(self, reason: str) -> None: ...


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--calls", type=int, default=20_000)
    _table.add_args(ap)
    args = ap.parse_args()
    ctx = _Ctx()
    ep = endpoint("GET", "/api/v3/depth")
    params = {"symbol": "BTCUSDT", "limit": 5}
    headers = {"X-MBX-USED-WEIGHT-1M": "10", "Content-Type": "application/json"}
    body = b'{"lastUpdateId":1,"bids":[["1.0","2.0"]],"asks":[["1.1","2.0"]]}'

    def inline() -> None:
        reservation = ctx.pacer.acquire_for(ep, params)
        sent_at = ctx.pacer.now_ms()
        data, code, msg, derr = decode(200, body)
        res = classify(ep, CallResult(200, data, code, msg, headers, 1.0, derr))
        feedback(ctx, res, reservation, sent_at)

    def path() -> None:
        begin(ctx, ep, params).answer(200, headers, body, None, elapsed_ms=1.0)

    oep = endpoint("POST", "/api/v3/order")
    oparams = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": "12"}
    obody = b'{"symbol":"BTCUSDT","orderId":1,"clientOrderId":"x","status":"FILLED","executedQty":"0.0001"}'
    seq = iter(range(10**9))
    notional = Decimal(12)

    def order_inline() -> None:
        cid = f"o{next(seq)}"
        led = ctx.ledger
        if ctx.order_refusal("BTCUSDT", notional) is not None or not led.reserve_notional(notional):
            return
        reservation = ctx.pacer.acquire_for(oep, oparams)
        sent_at = ctx.pacer.now_ms()
        led.sent(cid, "BTCUSDT", "BUY", "bench", "rest", notional)
        data, code, msg, derr = decode(200, obody)
        res = classify(oep, CallResult(200, data, code, msg, headers, 1.0, derr))
        feedback(ctx, res, reservation, sent_at)
        if res.ok and isinstance(data, dict):
            led.accepted(cid, str(data.get("status", "NEW")), data.get("orderId"))
        elif res.unknown:
            led.unknown(cid)
        else:
            led.rejected(cid)

    def order_path() -> None:
        call = begin(ctx, oep, oparams, order=Order(f"o{next(seq)}", "BTCUSDT", "BUY", notional, "bench"))
        call.leave()
        call.answer(200, headers, obody, None, elapsed_ms=1.0)

    def per_call_us(fn) -> float:
        n = args.calls
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e6

    report = _table.Report(
        "The call path's own cost vs the same pieces inline", base="inline", cand="call path",
        intro=f"µs per call, {args.pairs} alternating pairs of {args.calls:,} calls each, one process "
              "(after one warm-up round per side); ratio = call path ÷ inline per pair.")
    for label, fa, fb in (("pace → decode → classify → feed back (GET depth)", inline, path),
                          ("+ safety gate, run notional, ledger entry and booking (POST order)", order_inline,
                           order_path)):
        with report.row(label, unit="µs/call", digits=2) as row:
            per_call_us(fa), per_call_us(fb)          # warm up
            for _ in range(args.pairs):
                a = per_call_us(fa)
                row.pair(a, per_call_us(fb))
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(main())
