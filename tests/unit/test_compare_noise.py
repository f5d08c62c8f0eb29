"""The regression gate judges beyond the runs' own noise: false positives, power, not judgeable, the
per-interval data a run's summary carries, and the statistics underneath."""
from __future__ import annotations

import math

import numpy as np
import pytest

from intervaldata import synthetic_run, with_intervals
from letrade_perf.criteria.gate import Gate
from letrade_perf.criteria.intervals import IntervalTable, interval_width
from letrade_perf.metrics.recorder import MetricsRecorder, Snapshot
from letrade_perf.reports import compare_summaries, render_comparison, validate_summary
from letrade_perf.reports.noise import band, batch_spread, t_cdf, t_quantile
from reportdata import make_summary, with_endpoint

DEPTH = "GET /api/v3/depth"


def test_identical_runs_with_a_busy_machines_noise_flag_nothing():
    """200 pairs of runs of one system (12 intervals of 5 s: a 60 s run; each interval's load
    factor scatters by 12 %, each request by 50 %): at most a few % of the pairs flag anything,
    though single figures move by 10–20 % between the runs of a pair."""
    rng = np.random.default_rng(20260301)
    flagged, moved = 0, 0
    for _ in range(200):
        c = compare_summaries(synthetic_run(rng), synthetic_run(rng))
        flagged += not c.passed
        moved += any(abs(r["change"] or 0) > 0.10 for r in c.rows if r["figure"] in ("p95_ms", "avg_ms"))
        assert c.not_judgeable == 0
    assert flagged / 200 <= 0.03, flagged
    assert moved > 100          # the old rule (10 % and 1 ms) would have flagged these


@pytest.mark.parametrize("shift,k,min_rate", [(0.25, 24, 0.9), (0.30, 12, 0.8)])
def test_a_real_latency_shift_with_the_same_noise_is_flagged(shift, k, min_rate):
    rng = np.random.default_rng(7)
    hits, elsewhere, pairs = 0, 0, 30
    for _ in range(pairs):
        c = compare_summaries(synthetic_run(rng, k=k), synthetic_run(rng, k=k, shift=shift, shift_only=DEPTH))
        hits += any(r["key"] == f"REST {DEPTH}" and r["figure"] in ("avg_ms", "p95_ms") for r in c.regressions)
        elsewhere += any(r["key"] != f"REST {DEPTH}" for r in c.regressions)
    assert hits / pairs >= min_rate, hits
    assert elsewhere <= 2


def test_too_few_intervals_are_not_judgeable_and_flag_nothing():
    """A 15 s run has 3 intervals of 5 s: not enough to tell noise from change, even for +30 %."""
    rng = np.random.default_rng(3)
    base, cur = synthetic_run(rng, k=3), synthetic_run(rng, k=3, shift=0.3)
    c = compare_summaries(base, cur)
    assert c.passed and c.checked == 3 and c.not_judgeable == 8          # error rates: binomial, judgeable
    latency = [r for r in c.rows if r["figure"] != "error_rate"]
    assert {r["status"] for r in latency} == {"not judgeable"}
    assert all(r["reason"].startswith("too few") for r in latency)      # intervals, or samples for a p95
    assert latency[1]["reason"] == "too few intervals: baseline 3, current 3; needs 5"
    text = render_comparison(c)
    assert "not judgeable (too few intervals: baseline 3, current 3; needs 5)" in text
    assert "PASS: no regression in 3 figures compared; 8 not judgeable" in text
    assert c.to_dict()["not_judgeable"] == 8


def test_summaries_without_intervals_judge_only_what_needs_no_noise_estimate():
    old = make_summary()                                   # no "intervals": an older letrade-perf
    slow = with_endpoint(old, DEPTH, p95_ms=300.0, failures=120, error_rate=0.1)
    c = compare_summaries(old, slow)
    rows = {(r["key"], r["figure"]): r for r in c.rows}
    assert rows[(f"REST {DEPTH}", "p95_ms")]["status"] == "not judgeable"
    assert rows[(f"REST {DEPTH}", "error_rate")]["status"] == "regressed"        # binomial: 0 → 10 % of 1200
    assert any("the baseline has no per-interval data" in n for n in c.notes)
    assert [r["figure"] for r in c.regressions] == ["error_rate"]


def test_the_output_shows_baseline_current_noise_band_and_verdict_per_figure():
    base = with_intervals(make_summary())
    c = compare_summaries(base, with_intervals(with_endpoint(base, DEPTH, p95_ms=156.0)))
    row = next(r for r in c.rows if r["key"] == f"REST {DEPTH}" and r["figure"] == "p95_ms")
    assert row["status"] == "regressed" and 0 < row["noise"] < 36
    faster = next(r for r in compare_summaries(base, with_intervals(with_endpoint(base, DEPTH, avg_ms=20.0))).rows
                  if r["key"] == f"REST {DEPTH}" and r["figure"] == "avg_ms")
    assert faster["status"] == "improved"
    small = next(r for r in compare_summaries(base, with_intervals(with_endpoint(base, DEPTH, avg_ms=44.0))).rows
                 if r["key"] == f"REST {DEPTH}" and r["figure"] == "avg_ms")
    assert small["status"] in ("within noise", "within tolerance")
    text = render_comparison(c)
    header = next(line for line in text.splitlines() if line.startswith("kind"))
    assert header.split() == ["kind", "key", "figure", "baseline", "current", "change", "noise", "min", "effect",
                              "verdict"]
    line = next(x for x in text.splitlines() if x.startswith("endpoint") and DEPTH in x and "p95_ms" in x)
    assert "120 ms" in line and "156 ms" in line and "±" in line and line.endswith("REGRESSED")
    assert any(x.endswith("within noise") for x in text.splitlines())
    validate_summary(make_summary(baseline={"path": "b/summary.json", **c.to_dict()}))


def test_statistics_match_known_values():
    assert t_quantile(0.975, 10) == pytest.approx(2.228139, abs=1e-5)
    assert t_quantile(0.995, 4) == pytest.approx(4.604095, abs=1e-5)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-5)
    assert t_cdf(0.0, 7) == pytest.approx(0.5) and t_cdf(-2.0, 3) == pytest.approx(1 - t_cdf(2.0, 3))
    xs = [10.0, 12.0, 11.0, 13.0, 9.0]
    s = batch_spread(xs, [100] * 5)                      # equal weights: the plain standard error
    assert s.mean == pytest.approx(11.0) and s.k == 5
    assert s.se == pytest.approx(np.std(xs, ddof=1) / math.sqrt(5))
    assert batch_spread([5.0], [10]) is None
    assert band(0.0, 5, 0.0, 5, 0.05) == 0.0
    assert band(1.0, math.inf, 0.0, math.inf, 0.05) == pytest.approx(1.644854, abs=1e-5)


# --- the per-interval data in summary.json ---------------------------------------------------------

def _profile(seconds: int = 60, extra: dict | None = None):
    import yaml

    from letrade_perf.config.profile import profile_from_mapping
    data = yaml.safe_load(f"""
description: unit
env: sim
symbols: [BTCUSDT]
stages: [{{duration: {seconds}s, users: 2, spawn_rate: 2}}]
users:
  rest_market: {{weight: 1}}
criteria:
  'request{{name="GET /api/v3/depth"}}': ["p(95)<200", "avg<100"]
  api_success: ["rate>99%"]
  http_429: ["count<=0"]
gate: {{defaults: false}}
""")
    data.update(extra or {})
    return profile_from_mapping(data, "unit.yaml", "unit")


class Clock:
    def __init__(self, t: float = 1_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Err(Exception):
    pass


def test_a_gate_summary_carries_per_interval_figures_the_schema_accepts():
    clock = Clock()
    gate = Gate(_profile(), clock=clock)
    gate.start()
    rec = MetricsRecorder(clock=clock, samples_dir="")
    for i in range(7):                       # 7 drains of 5 s, as the gate's live loop does
        for j in range(30):
            rec.on_request(request_type="GET", name=DEPTH, response_time=10.0 + i + j % 5,
                           exception=Err("503") if j == 0 and i % 2 else None)
        rec.on_ws_lag(stream="btcusdt@trade", lag_ms=2.0 + i, uncertainty_ms=0.3)
        clock.t += 5.0
        gate.merge(rec.drain())
    gate.evaluate()
    gate.ended_at = clock.t
    s = gate.summary(run_id="r1", env="sim", host=None, workers=0, exit_code=0, aborted=None)
    validate_summary(s)
    iv = s["intervals"]
    assert iv["width_s"] == 5.0 and iv["t_s"] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0] and iv["dur_s"] == [5.0] * 7
    (ep,) = iv["endpoints"]
    assert (ep["type"], ep["name"]) == ("GET", DEPTH) and ep["count"] == [30] * 7
    assert ep["failures"] == [0, 1, 0, 1, 0, 1, 0] and ep["avg_ms"][0] == pytest.approx(12.0, rel=0.01)
    assert ep["p50_ms"][6] == pytest.approx(18.0, rel=0.01)
    (st,) = iv["streams"]
    assert st["stream"] == "btcusdt@trade" and st["count"] == [1] * 7 and st["avg_ms"][3] == pytest.approx(5.0)
    crit = {c["label"]: c for c in iv["criteria"]}
    assert set(crit) == {'request{name="GET /api/v3/depth"} p(95)<200', 'request{name="GET /api/v3/depth"} avg<100',
                         "api_success rate>99%"}                 # a count is compared as a Poisson count
    assert crit["api_success rate>99%"]["value"][1] == pytest.approx(29 / 30, abs=1e-6)
    # the summary compares with itself: every figure within noise (the stream's 7 samples are too few)
    c = compare_summaries(s, s)
    assert c.passed and {(r["key"], r["status"]) for r in c.rows if r["status"] not in ("within noise", "unchanged")} \
        == {("btcusdt@trade", "not judgeable")}


def test_worker_snapshots_of_one_period_share_an_interval_and_the_table_stays_bounded():
    table = IntervalTable(5.0)
    for t in range(0, 30, 3):                # two workers reporting every 3 s, out of phase
        for w, offset in (("a", 0.0), ("b", 1.0)):
            snap = Snapshot(1000.0 + t + offset, 1003.0 + t + offset)
            snap.series[("request", (("name", "x"), ("status", "ok"), ("type", "GET")))] = _series(10)
            table.add(snap, w)
    out = table.to_summary(1000.0)
    assert out["t_s"] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert sum(out["endpoints"][0]["count"]) == 200
    # a run that goes on far past its plan: widths double, the table stays small
    table = IntervalTable(5.0, max_intervals=20)
    for i in range(2000):
        snap = Snapshot(i * 5.0, i * 5.0 + 5.0)
        snap.series[("ws_lag", (("stream", "s"),))] = _series(1)
        table.add(snap)
    out = table.to_summary(0.0)
    assert len(out["t_s"]) <= 20 + 10 * 7 and max(out["dur_s"]) >= 5.0 * 2 ** 5
    assert sum(out["streams"][0]["count"]) == 2000 and out["t_s"] == sorted(out["t_s"])
    assert interval_width(5.0, 60.0) == 5.0 and interval_width(5.0, 86_400.0) == 720.0


def _series(n: int):
    from letrade_perf.metrics.recorder import Series
    s = Series()
    s.hist.record_many([10.0] * n)
    return s


def test_the_compare_command_takes_an_alpha_and_prints_every_figures_verdict(tmp_path, capsys):
    import argparse
    import json

    from letrade_perf import compare_cli
    from letrade_perf.reports import write_reports

    def run(*argv) -> int:
        parser = argparse.ArgumentParser(prog="letrade-perf")
        compare_cli.add_parser(parser.add_subparsers(dest="command"))
        return compare_cli.run_from_args(parser.parse_args(["compare", *map(str, argv)]))

    base = with_intervals(make_summary())
    write_reports(base, tmp_path / "base")
    write_reports(with_intervals(with_endpoint(base, DEPTH, p95_ms=135.0)), tmp_path / "new")    # +12.5 %
    assert run(tmp_path / "base", tmp_path / "new") == 1
    capsys.readouterr()
    assert run(tmp_path / "base", tmp_path / "new", "--alpha", "1e-12", "--json") == 0      # a far wider band
    out = json.loads(capsys.readouterr().out)
    assert out["alpha"] == 1e-12 and out["not_judgeable"] == 5
    row = next(r for r in out["rows"] if r["key"] == f"REST {DEPTH}" and r["figure"] == "p95_ms")
    assert row["status"] == "within noise" and row["noise"] > 15.0
    for bad in ("0", "100%", "abc"):
        assert run(tmp_path / "base", tmp_path / "new", f"--alpha={bad}") == 2
        assert "--alpha" in capsys.readouterr().err
