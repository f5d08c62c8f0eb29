"""The exact-percentile histogram: numpy's percentiles within the stated error, merging, wire form."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from letrade_perf.metrics.histogram import RELATIVE_ERROR, Histogram

PS = (0.0, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0)


def _close(ours: float, exact: float) -> bool:
    return abs(ours - exact) <= RELATIVE_ERROR * abs(exact) + 1e-9


def _check(samples: list[float], h: Histogram) -> None:
    exact = np.percentile(np.array(samples), PS)
    for p, want, got in zip(PS, exact, h.percentiles(PS)):
        assert _close(got, want), f"p{p}: histogram {got} vs numpy {want}"


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "bimodal", "constant", "tiny"])
def test_percentiles_match_numpy_within_the_stated_error(dist):
    rnd = random.Random(7)
    gen = {"lognormal": lambda: rnd.lognormvariate(3.0, 1.0),
           "uniform": lambda: rnd.uniform(0.1, 500.0),
           "bimodal": lambda: rnd.choice((rnd.gauss(5, 0.5), rnd.gauss(400, 20))),
           "constant": lambda: 42.0,
           "tiny": lambda: rnd.uniform(0.001, 0.01)}[dist]
    samples = [gen() for _ in range(20_000)]
    h = Histogram()
    h.record_many(samples)
    assert h.count == len(samples)
    assert h.min == min(samples) and h.max == max(samples)
    assert math.isclose(h.sum, sum(samples), rel_tol=1e-9)
    _check(samples, h)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=300))
def test_any_samples_including_negative_and_zero(samples):
    h = Histogram()
    h.record_many(samples)
    exact = np.percentile(np.array(samples), PS)
    for p, want, got in zip(PS, exact, h.percentiles(PS)):
        # interpolation between samples of opposite sign: the error is relative to the larger magnitude
        lo, hi = np.percentile(np.array(samples), p, method="lower"), np.percentile(np.array(samples), p, method="higher")
        bound = RELATIVE_ERROR * max(abs(lo), abs(hi)) + 1e-6
        assert abs(got - want) <= bound, (p, got, want)


def test_merged_histograms_equal_one_histogram_of_every_sample():
    rnd = random.Random(3)
    parts = [[rnd.expovariate(1 / (10 * (i + 1))) for _ in range(5000)] for i in range(4)]
    merged = Histogram()
    for part in parts:
        h = Histogram()
        h.record_many(part)
        merged.merge(Histogram.from_dict(h.to_dict()))      # through the wire form, as from a worker
    whole = Histogram()
    for part in parts:
        whole.record_many(part)
    assert merged.percentiles(PS) == whole.percentiles(PS)
    assert merged.count == whole.count and merged.min == whole.min and merged.max == whole.max
    _check([x for part in parts for x in part], merged)


def test_averaging_percentiles_would_be_wrong_but_merging_is_right():
    fast = [1.0] * 990 + [2.0] * 10
    slow = [100.0] * 10
    a, b = Histogram(), Histogram()
    a.record_many(fast)
    b.record_many(slow)
    avg_of_p99 = (a.percentile(99) + b.percentile(99)) / 2
    exact = float(np.percentile(np.array(fast + slow), 99))
    merged = a.copy().merge(b).percentile(99)
    assert _close(merged, exact)
    assert not _close(avg_of_p99, exact)


def test_empty_and_corrupt_wire_form():
    h = Histogram()
    assert h.percentile(50) is None and h.mean is None
    assert Histogram.from_dict(h.to_dict()).count == 0
    bad = {"n": 3, "s": 1.0, "mn": 0.1, "mx": 0.5, "z": 0, "p": [[1, 1]], "m": []}
    with pytest.raises(ValueError):
        Histogram.from_dict(bad)
    with pytest.raises(ValueError):
        Histogram().percentiles([101])


def test_nan_is_ignored():
    h = Histogram()
    h.record(float("nan"))
    h.record(1.0)
    assert h.count == 1
