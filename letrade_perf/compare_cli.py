"""``letrade-perf compare BASELINE CURRENT``: did a run regress against a baseline run?

BASELINE and CURRENT are ``summary.json`` files or report directories holding one. The rules are
those of :mod:`letrade_perf.reports.compare`: a figure regresses only beyond the noise the runs'
own per-interval values show and beyond ``--tolerance``. Exit codes: 0 no regression (figures
the data cannot judge are listed, never failed), 1 regressions, 2 bad input (a missing or invalid
summary, a bad ``--tolerance`` or ``--alpha``), with the message on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys

DEFAULT_TOLERANCE = "10%"
DEFAULT_ALPHA = "5%"


def parse_tolerance(text: str) -> float:
    """:func:`letrade_perf.criteria.tolerance.parse_tolerance`, with the option named in errors."""
    from .criteria.tolerance import parse_tolerance as parse

    try:
        return parse(text)
    except ValueError as e:
        raise ValueError(f"--tolerance {e}") from None


def parse_alpha(text: str) -> float:
    """``--alpha``: a fraction or percentage strictly between 0 and 1 (``5%``, ``0.01``)."""
    from .criteria.tolerance import parse_tolerance as parse

    try:
        value = parse(text)
    except ValueError as e:
        raise ValueError(f"--alpha {e}") from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"--alpha {text!r}: must be between 0 and 100 % (exclusive)")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``compare`` sub-command on an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "compare", help="compare a run's summary with a baseline run (exit 1 on regression)",
        description="Compare the summary of a run with a baseline run's. A figure regresses only when it "
                    "moved beyond the run-to-run noise estimated from both runs' per-interval values (a Welch "
                    "band over the intervals, family-wise --alpha over all figures) AND beyond a minimum "
                    "effect: endpoint and stream p95/avg latency the tolerance and 1 ms, error rates "
                    "max(tolerance, 0.1 percentage point), criterion values the tolerance; a criterion's "
                    "verdict going pass -> fail always regresses. Figures with fewer than 5 intervals (or too "
                    "few samples) are 'not judgeable'. Exit 0: no regression, 1: regressions, 2: bad input.")
    p.add_argument("baseline", metavar="BASELINE", help="baseline summary.json or its report directory")
    p.add_argument("current", metavar="CURRENT", help="current summary.json or its report directory")
    p.add_argument("--tolerance", default=DEFAULT_TOLERANCE, metavar="T",
                   help="allowed relative worsening, e.g. 10%% or 0.1 (default 10%%)")
    p.add_argument("--alpha", default=DEFAULT_ALPHA, metavar="A",
                   help="chance of a false regression for the whole comparison, e.g. 5%% or 0.01 (default 5%%)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    return p


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``compare`` for parsed ``args``; returns the exit code."""
    from .reports import compare_summaries, load_summary, render_comparison

    try:
        tolerance = parse_tolerance(args.tolerance)
        alpha = parse_alpha(args.alpha)
        baseline = load_summary(args.baseline)
        current = load_summary(args.current)
    except ValueError as e:
        print(f"letrade-perf compare: {e}", file=sys.stderr)
        return 2
    comparison = compare_summaries(baseline, current, tolerance, alpha)
    if args.json:
        out = {"baseline": args.baseline, "current": args.current, **comparison.to_dict(), "rows": comparison.rows}
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_comparison(comparison))
    return 0 if comparison.passed else 1
