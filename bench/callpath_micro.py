"""The one call path's own cost: the sequence around one REST send — pace, decode, classify, feed
back — through ``users.callpath`` (``begin`` → ``Call.answer``) versus the same pieces called
inline (what every transport did before the path existed), side by side in one process.

One ``GET /api/v3/depth`` answer (a small JSON body, a used-weight header) against a pacer with a
budget too large to ever wait. Runs alternate (ABAB…, ``--pairs``), each ``--calls`` calls; the
table shows the best µs per call of each side and the per-pair ratios path ÷ inline
(min / median / max). Pin it to one core for stable figures::

    taskset -c 1 .venv/bin/python bench/callpath_micro.py [--pairs 7] [--calls 20000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from letrade_perf.binance.endpoints import endpoint  # noqa: E402
from letrade_perf.pacing import Pacer, budgets_from_rate_limits  # noqa: E402
from letrade_perf.users.callpath import CallResult, begin, classify, decode, feedback  # noqa: E402


class _Ctx:
    """The part of the run's context the call path touches."""

    def __init__(self) -> None:
        self.pacer = Pacer(budgets_from_rate_limits(
            [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 10**12}]))

    def on_clock_error(self) -> None: ...
    def on_429(self, wait_s: float) -> None: ...
    def on_418(self, wait_s: float) -> None: ...
    def abort(self, reason: str) -> None: ...


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--calls", type=int, default=20_000)
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

    def per_call_us(fn) -> float:
        n = args.calls
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e6

    per_call_us(inline), per_call_us(path)          # warm up
    a, b = [], []
    for _ in range(args.pairs):
        a.append(per_call_us(inline))
        b.append(per_call_us(path))
    ratios = [y / x for x, y in zip(a, b)]
    print("| sequence around one REST send | inline (µs/call) | call path (µs/call) | ratio | pairs min / med / max |")
    print("|---|---:|---:|---:|---:|")
    print(f"| pace → decode → classify → feed back | {min(a):.2f} | {min(b):.2f} | {min(b) / min(a):.2f}× | "
          f"{min(ratios):.2f} / {statistics.median(ratios):.2f} / {max(ratios):.2f} |")


if __name__ == "__main__":
    main()
