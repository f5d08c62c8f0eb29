"""Smooth pacing vs the fixed windows alone: the real pacer under saturating demand, in virtual time.

Each run drives real :class:`~letrade_perf.pacing.Pacer` objects — one process, or the budget split
in equal shares over 2 and 4 workers that also see each other's use in the used-weight header —
with ``--users`` users per process sending back to back (a REST market-data mix of weights 1–5
and 10 % orders, a ``--latency-ms`` round trip ±25 %) against a model of the exchange's
fixed-window counters (6 000 weight a minute, 100 orders per 10 s, fraction 0.8: budgets 4 800
and 80). Time is virtual (``letrade_perf.pacing.virtual``: a discrete-event clock every greenlet
sleeps through), so ``--seconds`` of demand take well under a second each and the figures are
exact; every run starts at a different instant of a minute (``--runs`` seeds).

Per run, over the exchange's log of accepted requests:

* **peak 1 s** — the most weight in any sliding one-second span ÷ (budget / 60); target at the
  defaults ≤ 1.5 + burst_s (6.5 with the default 5 s burst). Likewise for orders ÷ (budget / 10).
* **budget use** — the least used whole server minute of the run: weight ÷ budget; target ≥ 0.95.
* **429s** — requests the exchange model refused; target 0.

The table shows, per process count, ``window`` (the fixed windows alone: the behaviour before
smoothing) and ``bucket`` (the default) side by side, each figure as min / median / max over the
runs, then every run. ``--append`` appends it to BENCHMARKS.md (bench/_table.py)::

    .venv/bin/python bench/pacing_smooth.py [--runs 5] [--seconds 200] [--users 24] [--append]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _table  # noqa: E402
from letrade_perf.pacing.smoothing import DEFAULT_BURST_S  # noqa: E402
from letrade_perf.pacing.virtual import Figures, measure, saturate  # noqa: E402

MODES = ("window", "bucket")
WORKERS = (1, 2, 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per row (seeds; each starts at another instant)")
    ap.add_argument("--seconds", type=float, default=200.0, help="virtual seconds of demand per run")
    ap.add_argument("--users", type=int, default=24, help="users per process, sending back to back")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="round trip of one request (±25 %%)")
    ap.add_argument("--burst-s", type=float, default=DEFAULT_BURST_S, help="the bucket's burst (profile pacing.burst_s)")
    _table.add_args(ap)
    args = ap.parse_args(argv)

    bound = 1.5 + args.burst_s
    results: dict[tuple[int, str], list[Figures]] = {}
    errors: dict[tuple[int, str], str] = {}
    runs_rows: list[list[str]] = []
    wall = time.perf_counter()
    for workers in WORKERS:
        for mode in MODES:
            key = (workers, mode)
            results[key] = []
            try:
                for seed in range(1, args.runs + 1):
                    fig = measure(saturate(workers=workers, smoothing=mode, burst_s=args.burst_s,
                                           seconds=args.seconds, users=args.users, latency_ms=args.latency_ms,
                                           seed=seed))
                    results[key].append(fig)
                    runs_rows.append([str(workers), mode, str(seed), f"{fig.weight_peak_1s:.2f}",
                                      f"{fig.orders_peak_1s:.2f}", f"{fig.weight_use:.4f}",
                                      f"{fig.weight_use_median:.4f}", str(fig.minutes), str(fig.r429)])
                    print(f"  {workers} process(es), {mode}, run {seed}: peak 1 s {fig.weight_peak_1s:.2f}× "
                          f"budget/60, use {fig.weight_use:.4f}, 429s {fig.r429}", file=sys.stderr, flush=True)
            except Exception as e:                 # one row failing keeps the others
                errors[key] = f"{type(e).__name__}: {e}"[:300]
                traceback.print_exc()

    summary: list[list[str]] = []
    for workers in WORKERS:
        for mode in MODES:
            figs = results[(workers, mode)]
            smooth = mode == "bucket"
            peaks = [f.weight_peak_1s for f in figs]
            uses = [f.weight_use for f in figs]
            r429 = sum(f.r429 for f in figs)
            met = "—"
            if smooth and figs:
                ok = max(peaks) <= bound and min(uses) >= 0.95 and r429 == 0
                met = "yes" if ok else "**no**"
            row = [f"{workers}" + (" (shares 1/%d)" % workers if workers > 1 else ""), mode, str(len(figs)),
                   _table.spread(peaks), f"≤ {bound:g}" if smooth else "—",
                   _table.spread([f.orders_peak_1s for f in figs]),
                   _table.spread(uses, digits=4), "≥ 0.95" if smooth else "—", str(r429), met]
            if (workers, mode) in errors:
                row[-1] = f"**row failed**: {errors[(workers, mode)]}"
            summary.append(row)
    head = ["processes", "smoothing", "runs", "weight peak 1 s ÷ (budget/60) min / median / max", "target",
            "orders peak 1 s ÷ (budget/10) min / median / max", "budget use (least minute) min / median / max",
            "target", "429s", "targets met"]
    intro = (f"Real pacers in virtual time (`letrade_perf.pacing.virtual`): {args.users} users per process "
             f"sending back to back, {args.latency_ms:g} ms round trip ±25 %, a market-data mix of weights "
             f"1–5 and 10 % orders; the exchange model counts 6 000 weight a minute and 100 orders per "
             f"10 s in fixed windows, fractions 0.8 (budgets 4 800 and 80), burst {args.burst_s:g} s; "
             f"{args.seconds:g} virtual seconds a run, each from another instant of a minute. Peak 1 s is "
             f"a sliding one-second span; budget use is the least used whole server minute of a run. "
             f"{sum(len(v) for v in results.values())} runs took {time.perf_counter() - wall:.1f} s of wall time.")
    text = "\n\n".join([
        _table.machine_header("Smooth pacing: token bucket vs fixed windows (issue 15)"),
        args.note.strip() if args.note else "",
        intro,
        _table.markdown_table(head, summary, "llrrlrrlrl"),
        "Every run:",
        _table.markdown_table(["processes", "smoothing", "seed", "weight peak 1 s", "orders peak 1 s",
                               "use (least minute)", "use (median minute)", "whole minutes", "429s"],
                              runs_rows, "llrrrrrrr"),
    ])
    text = "\n\n".join(p for p in text.split("\n\n") if p) + "\n"
    print("\n" + text, flush=True)
    if args.append:
        _table.append(text, args.append)
        print(f"appended to {args.append}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
