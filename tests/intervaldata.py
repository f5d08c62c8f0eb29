"""Synthetic per-interval data (``summary.json["intervals"]``) for the comparison tests.

:func:`with_intervals` gives a summary from :mod:`reportdata` the intervals a real run of it would
have; :func:`synthetic_run` builds a whole run from latency samples drawn per interval with a
busy machine's noise (a per-interval load factor on top of the per-request spread), so the
run's figures and its intervals come from the same samples, as in a real summary.
"""
from __future__ import annotations

import copy
import math
import random

import numpy as np

from reportdata import endpoint, make_summary, stream


def _split(total: int, k: int) -> list[int]:
    return [total // k + (1 if i < total % k else 0) for i in range(k)]


def with_intervals(summary: dict, k: int = 12, noise: float = 0.05, seed: int = 1, width_s: float = 5.0) -> dict:
    """``summary`` (a copy) with ``k`` intervals per endpoint, stream and criterion whose figures
    scatter by ``noise`` (relative) around the summary's own."""
    rng = random.Random(seed)
    out = copy.deepcopy(summary)

    def jitter(v, lo=None, hi=None):
        if v is None:
            return None
        x = v * (1.0 + rng.gauss(0.0, noise))
        if lo is not None:
            x = max(lo, x)
        if hi is not None:
            x = min(hi, x)
        return round(x, 6)

    eps = []
    for e in out["endpoints"]:
        counts, fails = _split(e["count"], k), _split(e["failures"], k)
        eps.append({"type": e["type"], "name": e["name"], "count": counts, "failures": fails,
                    "avg_ms": [jitter(e["avg_ms"]) if n else None for n in counts],
                    "p50_ms": [jitter(e["p50_ms"]) if n else None for n in counts],
                    "p95_ms": [jitter(e["p95_ms"]) if n else None for n in counts]})
    sts = []
    for s in out["streams"]:
        counts = _split(s["count"], k)
        sts.append({"stream": s["stream"], "count": counts,
                    "avg_ms": [jitter(s["avg_ms"]) if n else None for n in counts],
                    "p50_ms": [jitter(s["p50_ms"]) if n else None for n in counts],
                    "p95_ms": [jitter(s["p95_ms"]) if n else None for n in counts]})
    crs = []
    for c in out["criteria"]:
        if c["aggregation"] in ("count", "min", "max") or c["value"] is None:
            continue
        samples = _split(c["samples"], k)
        hi = 1.0 if c["aggregation"] == "rate" else None
        crs.append({"label": c["label"], "samples": samples,
                    "value": [jitter(c["value"], 0.0, hi) if n else None for n in samples]})
    out["intervals"] = {"width_s": width_s, "t_s": [i * width_s for i in range(k)], "dur_s": [width_s] * k,
                        "endpoints": eps, "streams": sts, "criteria": crs}
    return out


ENDPOINTS = (("REST", "GET /api/v3/depth", 40, 12.0), ("REST", "POST /api/v3/order", 15, 20.0),
             ("ccxt", "fetch_ticker", 25, 8.0))
"""(type, name, requests per interval, median ms) of the synthetic runs."""
STREAM = ("btcusdt@trade", 120, 3.0)


def _figures(x: np.ndarray) -> tuple[list, list, list]:
    """Per row of ``x`` (one interval each, or one row for the run): mean, p50, p95, rounded."""
    x = np.sort(x, axis=-1)
    n = x.shape[-1]
    p50, p95 = ((x[..., math.floor(h)] * (1 - h % 1) + x[..., math.ceil(h)] * (h % 1))   # numpy's "linear"
                for h in ((n - 1) * 0.50, (n - 1) * 0.95))
    return (np.round(x.mean(axis=-1), 3).tolist(), np.round(p50, 3).tolist(), np.round(p95, 3).tolist())


def synthetic_run(rng: np.random.Generator, k: int = 12, shift: float = 0.0, *, shift_only: str | None = None,
                  load_sigma: float = 0.12, run_sigma: float = 0.0, spread_sigma: float = 0.5,
                  error_p: float = 0.002) -> dict:
    """A summary whose latencies are lognormal per request (``spread_sigma``) times a per-interval
    load factor (``load_sigma``: a busy shared machine, one factor per interval for every endpoint)
    times a run factor (``run_sigma``); every latency ``× (1 + shift)`` (only endpoint
    ``shift_only``'s when given); ``k`` intervals of 5 s; failures binomial at ``error_p``."""
    run_factor = float(np.exp(rng.normal(0.0, run_sigma)))
    loads = np.exp(rng.normal(0.0, load_sigma, size=(k, 1))) * run_factor
    eps, ep_cols = [], []
    for typ, name, per, median in ENDPOINTS:
        factor = 1.0 + (shift if shift_only in (None, name) else 0.0)
        x = median * factor * loads * np.exp(rng.normal(0.0, spread_sigma, size=(k, per)))
        fails = rng.binomial(per, error_p, size=k).tolist()
        avgs, p50s, p95s = _figures(x)
        (a,), (p50,), (p95,) = _figures(x.reshape(1, -1))
        eps.append(endpoint(name, type=typ, count=per * k, failures=sum(fails), avg_ms=a, p95_ms=p95, p50_ms=p50))
        ep_cols.append({"type": typ, "name": name, "count": [per] * k, "failures": fails, "avg_ms": avgs,
                        "p50_ms": p50s, "p95_ms": p95s})
    name, per, median = STREAM
    factor = 1.0 + (shift if shift_only in (None, name) else 0.0)
    x = median * factor * loads * np.exp(rng.normal(0.0, spread_sigma, size=(k, per)))
    avgs, p50s, p95s = _figures(x)
    (a,), (p50,), (p95,) = _figures(x.reshape(1, -1))
    streams = [stream(name, count=per * k, avg_ms=a, p95_ms=p95, p50_ms=p50)]
    st_cols = [{"stream": name, "count": [per] * k, "avg_ms": avgs, "p50_ms": p50s, "p95_ms": p95s}]
    intervals = {"width_s": 5.0, "t_s": [5.0 * i for i in range(k)], "dur_s": [5.0] * k,
                 "endpoints": ep_cols, "streams": st_cols, "criteria": []}
    return make_summary(endpoints=eps, streams=streams, criteria=[], intervals=intervals)
