"""Run-to-run noise of a summary figure, estimated from the run's own per-interval values.

The method is **batch means** (the standard way simulation output analysis puts an error bar on
a mean of autocorrelated samples): a run's per-interval figures (``summary.json["intervals"]``,
one value per few seconds) are treated as roughly independent replicates of the run's figure.
The standard error of the run's figure is the ratio-estimator (cluster-sample) standard error

    SE² = k / (k − 1) · Σ wᵢ² (xᵢ − x̄)²,   wᵢ = nᵢ / Σ n,   x̄ = Σ wᵢ xᵢ

over its ``k`` intervals (``nᵢ`` samples each), which weighs a short last interval or a thin
ramp-up interval by its samples instead of letting it swing the estimate. Two runs are compared
with a **Welch interval**: the noise band of ``current − baseline`` is
``t(1 − α, ν) · √(SE_b² + SE_c²)`` with the Welch–Satterthwaite degrees of freedom ``ν`` (each side
``k − 1``), so few intervals give a wide band rather than a false verdict. Why not a bootstrap:
with 5–20 intervals a bootstrap underestimates the spread (by ``(k − 1) / k``) and has no small-sample
correction; the t quantile has one. Why not Mann-Whitney on interval medians: it answers
"does one run's interval tend to be larger", not "by how many ms", and the report shows a band in
the figure's unit.

The difference tested against the band is that of the two batch estimates ``x̄`` (for a mean it is
the run's own mean); for a percentile the run's merged percentile reacts more to its slowest
intervals than their spread shows, so the test is on the mean of the interval percentiles, the
statistic whose noise the intervals do measure (:mod:`letrade_perf.reports.compare` shows the
merged figures and applies the minimum effect to them).

Rates (error rate, a success-rate criterion) also get a binomial floor: the SE is never below
``√(p (1 − p) / n)`` with ``p`` pooled from both runs (a run with no error in any interval has
no interval spread, yet its rate is a sample). Counts (``count`` criteria) are Poisson:
``SE² = b + c``.

The per-figure level is one-sided ``α`` = ``FAMILY_ALPHA / m`` for ``m`` figures compared
(Bonferroni): the chance that two runs of one system flag *any* regression stays at or below
:data:`FAMILY_ALPHA` however many endpoints the profile has.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Sequence

FAMILY_ALPHA = 0.05
"""Chance of a false regression per comparison (over every figure compared), as far as the
per-interval values are independent replicates."""


@dataclass(frozen=True)
class Spread:
    """A run figure's batch-means estimate: the weighted mean of ``k`` interval values and its SE."""

    mean: float
    se: float
    k: int


def batch_spread(values: Sequence[float], weights: Sequence[float]) -> Spread | None:
    """The ratio-estimator SE of the weighted mean of ``values`` (module docstring); None below two values."""
    pairs = [(float(x), float(w)) for x, w in zip(values, weights) if w > 0 and x is not None]
    k = len(pairs)
    if k < 2:
        return None
    total = sum(w for _x, w in pairs)
    mean = sum(x * w for x, w in pairs) / total
    var = k / (k - 1) * sum((w / total) ** 2 * (x - mean) ** 2 for x, w in pairs)
    return Spread(mean, math.sqrt(var), k)


def welch_df(se_a: float, k_a: float, se_b: float, k_b: float) -> float:
    """Welch–Satterthwaite degrees of freedom of ``SE_a² + SE_b²`` with ``k − 1`` per side
    (``k`` = ``math.inf`` for a model-based SE: that side adds no uncertainty about the SE)."""
    va, vb = se_a * se_a, se_b * se_b
    den = (va * va / (k_a - 1) if k_a > 1 else 0.0) + (vb * vb / (k_b - 1) if k_b > 1 else 0.0)
    if den <= 0.0:
        return math.inf
    return (va + vb) ** 2 / den


# -- Student's t distribution (no scipy) --------------------------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(ln)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom (the normal for df = ∞)."""
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def _t_pdf(t: float, df: float) -> float:
    if math.isinf(df):
        return math.exp(-t * t / 2.0) / math.sqrt(2.0 * math.pi)
    ln = (math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0) - 0.5 * math.log(df * math.pi)
          - (df + 1.0) / 2.0 * math.log1p(t * t / df))
    return math.exp(ln)


@lru_cache(maxsize=4096)
def _t_quantile(p: float, df: float) -> float:
    z = NormalDist().inv_cdf(p)
    if math.isinf(df):
        return z
    # Cornish-Fisher start, then Newton steps kept inside a bracket (bisection when one leaves it)
    t = z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df)
    lo, hi = 0.0, math.inf
    for _ in range(100):
        f = t_cdf(t, df) - p
        if f < 0:
            lo = t
        else:
            hi = t
        step = f / max(_t_pdf(t, df), 1e-300)
        nxt = t - step
        if not lo < nxt < hi:
            nxt = (lo + hi) / 2.0 if math.isfinite(hi) else max(2.0 * t, t + 1.0)
        if abs(nxt - t) <= 1e-9 * max(1.0, abs(t)):
            return nxt
        t = nxt
    return t


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 ≤ p < 1) of Student's t with ``df`` degrees of freedom (Newton on
    :func:`t_cdf` from a Cornish-Fisher start; ``df`` rounded to 0.01, which moves no band visibly)."""
    if not 0.5 <= p < 1.0:
        raise ValueError(f"p must be within [0.5, 1), got {p}")
    return _t_quantile(p, df if math.isinf(df) else round(df, 2))


def band(se_a: float, k_a: float, se_b: float, k_b: float, alpha: float) -> float:
    """Half-width of the one-sided ``1 − alpha`` Welch band of a difference of two run figures.

    ``k`` is each side's number of intervals (``math.inf`` for a model-based SE: binomial, Poisson)."""
    se = math.sqrt(se_a * se_a + se_b * se_b)
    if se == 0.0:
        return 0.0
    return t_quantile(1.0 - alpha, welch_df(se_a, k_a, se_b, k_b)) * se
