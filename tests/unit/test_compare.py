"""Baseline comparison rules and the ``compare`` sub-command (in process).

The summaries carry per-interval data (:func:`intervaldata.with_intervals`: 12 intervals, 5 %
noise) so every figure has a noise estimate; :func:`iv` regenerates it after a change, with the
same noise draws, so the intervals move with the figure as a real run's would. The noise itself
is tested in ``test_compare_noise.py``."""
from __future__ import annotations

import argparse
import copy
import json

import pytest

from intervaldata import with_intervals as iv
from letrade_perf import compare_cli
from letrade_perf.reports import compare_summaries, render_comparison, validate_summary, write_reports
from reportdata import criterion
from reportdata import make_summary as _make_summary
from reportdata import with_endpoint as _with_endpoint

DEPTH = "GET /api/v3/depth"


def make_summary(**kw):
    return iv(_make_summary(**kw))


def with_endpoint(summary, name, **changes):
    return iv(_with_endpoint(summary, name, **changes))


def regressions(c) -> set[tuple[str, str, str]]:
    return {(r["kind"], r["key"], r["figure"]) for r in c.regressions}


def test_an_identical_pair_passes():
    s = make_summary()
    c = compare_summaries(s, copy.deepcopy(s))
    assert c.passed and c.regressions == []
    # 5 endpoints x 3 figures + 2 streams x 2 + 9 criteria x 2 (WSAPI and userData have < 20 samples)
    assert c.checked == 15 + 4 + 18 and c.not_judgeable == 3 + 2
    assert c.to_dict() == {"tolerance": 0.1, "verdict": "pass", "regressions": [], "checked": 37,
                           "not_judgeable": 5, "alpha": 0.05, "notes": c.notes}
    assert "endpoint WSAPI order.place: p95_ms not judgeable (too few samples: baseline 10, current 10; " \
           "needs 20)" in c.notes
    assert "PASS: no regression in 37 figures compared; 5 not judgeable" in render_comparison(c)


def test_a_30_percent_p95_regression_on_one_endpoint_is_flagged():
    base = make_summary()
    cur = with_endpoint(base, DEPTH, p95_ms=156.0)
    c = compare_summaries(base, cur)
    assert not c.passed
    assert c.regressions == [{"kind": "endpoint", "key": f"REST {DEPTH}", "figure": "p95_ms", "baseline": 120.0,
                              "current": 156.0, "change": pytest.approx(0.3), "limit": "+10 % and +1 ms",
                              "noise": c.regressions[0]["noise"]}]
    assert 0 < c.regressions[0]["noise"] < 36
    text = render_comparison(c)
    assert "REGRESSION: 1 of 37 figures regressed" in text
    assert f"endpoint REST {DEPTH} p95_ms: 120 ms → 156 ms (+30.0 %" in text
    # the regression section fits into a summary's baseline section
    validate_summary(make_summary(baseline={"path": "base/summary.json", **c.to_dict()}))
    # within a 50 % tolerance it is not a regression
    assert compare_summaries(base, cur, tolerance=0.5).passed


def test_avg_regression_and_improvements():
    base = make_summary()
    assert regressions(compare_summaries(base, with_endpoint(base, DEPTH, avg_ms=50.0))) == {
        ("endpoint", f"REST {DEPTH}", "avg_ms")}
    faster = with_endpoint(base, DEPTH, avg_ms=10.0, p95_ms=20.0)
    c = compare_summaries(base, faster)
    assert c.passed
    assert {r["figure"]: r["status"] for r in c.rows if r["key"] == f"REST {DEPTH}"} == {
        "p95_ms": "improved", "avg_ms": "improved", "error_rate": "within noise"}
    # swapping the roles turns the improvement into a regression
    assert not compare_summaries(faster, base).passed


def test_sub_millisecond_figures_need_more_than_one_ms_to_regress():
    base = make_summary()
    ticker = "GET /api/v3/ticker/price"                         # avg 0.4 ms, p95 0.9 ms
    assert compare_summaries(base, with_endpoint(base, ticker, p95_ms=1.8, avg_ms=1.3)).passed   # +100 %, +0.9 ms
    assert regressions(compare_summaries(base, with_endpoint(base, ticker, p95_ms=2.0))) == {
        ("endpoint", f"REST {ticker}", "p95_ms")}


def test_error_rate_regression_with_an_absolute_floor_beyond_binomial_noise():
    base = make_summary()
    assert compare_summaries(base, with_endpoint(base, DEPTH, failures=1, error_rate=0.0008)).passed
    # 0 → 6 failures of 1200 (0.5 %) is beyond the 0.1 pp floor but within binomial noise (p ≈ 0.016
    # for one figure, far from 0.05 / 30 figures); 0 → 30 (2.5 %) is not
    c = compare_summaries(base, with_endpoint(base, DEPTH, failures=6, error_rate=0.005))
    assert c.passed and next(r for r in c.rows if r["key"] == f"REST {DEPTH}" and r["figure"] == "error_rate")[
        "status"] == "within noise"
    c = compare_summaries(base, with_endpoint(base, DEPTH, failures=30, error_rate=0.025))
    assert regressions(c) == {("endpoint", f"REST {DEPTH}", "error_rate")}
    assert c.regressions[0]["baseline"] == 0.0 and c.regressions[0]["change"] is None
    assert c.regressions[0]["limit"] == "+0.1 pp"
    assert "0 % → 2.5 %" in render_comparison(c)
    high = with_endpoint(base, DEPTH, failures=60, error_rate=0.05)
    assert compare_summaries(high, with_endpoint(base, DEPTH, failures=65, error_rate=0.054)).passed      # +8 %
    assert not compare_summaries(high, with_endpoint(base, DEPTH, failures=120, error_rate=0.10)).passed  # +100 %


def test_entries_with_few_samples_are_skipped_and_one_sided_entries_are_notes():
    base = make_summary()
    cur = with_endpoint(base, "order.place", p95_ms=450.0)        # 10 samples: not compared
    cur["endpoints"] = [e for e in cur["endpoints"] if e["name"] != "fetch_order_book"]
    cur["endpoints"].append({**cur["endpoints"][0], "name": "GET /api/v3/trades"})
    cur["streams"][2]["p95_ms"] = 900.0                            # userData: 12 samples
    c = compare_summaries(base, cur)
    assert c.passed
    assert "endpoint ccxt fetch_order_book: only in the baseline" in c.notes
    assert "endpoint REST GET /api/v3/trades: only in the current run" in c.notes
    assert any(n.startswith("stream userData: p95_ms not judgeable (too few samples") for n in c.notes)
    assert c.checked == 12 + 4 + 18


def test_criterion_pass_to_fail_is_a_regression():
    base = make_summary()
    cur = copy.deepcopy(base)
    label = base["criteria"][0]["label"]
    cur["criteria"][0] = criterion(value=251.0)
    c = compare_summaries(base, iv(cur))
    assert ("criterion", label, "verdict") in regressions(c)
    verdict = next(r for r in c.regressions if r["figure"] == "verdict")
    assert verdict == {"kind": "criterion", "key": label, "figure": "verdict", "baseline": "pass",
                       "current": "fail", "change": None, "limit": "pass", "noise": None}
    assert ("criterion", label, "value") in regressions(c)          # 120 → 251 ms is also +109 %
    # fail → pass is an improvement, never a regression
    assert compare_summaries(cur, base).passed


def test_criterion_values_regress_in_the_bad_direction_only():
    base = make_summary()
    labels = {c["label"]: i for i, c in enumerate(base["criteria"])}

    def with_value(label, value):
        out = copy.deepcopy(base)
        out["criteria"][labels[label]]["value"] = value
        return iv(out)

    # '<' : up is bad (avg 48.1 → 54 ms is +12 % and +5.9 ms), down is fine
    assert regressions(compare_summaries(base, with_value("request avg<200", 54.0))) == {
        ("criterion", "request avg<200", "value")}
    assert compare_summaries(base, with_value("request avg<200", 20.0)).passed
    # '>' : down is bad; a rate criterion uses the plain relative tolerance
    rate = "api_success rate>99.9%"
    assert compare_summaries(base, with_value(rate, 0.95)).passed                     # -5 %: inside 10 %
    c = compare_summaries(base, with_value(rate, 0.80), tolerance=0.05)
    assert regressions(c) == {("criterion", rate, "value")}
    assert "0.9998 → 0.8" not in render_comparison(c) and "99.98 % → 80 %" in render_comparison(c)
    # '==' : any change beyond the tolerance and the noise; a count is a Poisson count (0 → 1 is
    # within its noise; the verdict going pass → fail is what fails), compared even with no samples
    assert compare_summaries(base, with_value("http_418 count==0", 1.0)).passed
    assert regressions(compare_summaries(base, with_value("http_418 count==0", 20.0))) == {
        ("criterion", "http_418 count==0", "value")}
    # ms floor for criteria in ms
    assert compare_summaries(base, with_value("ws_lag avg<50", 9.0)).passed          # +9.8 % and +0.8 ms


def test_tail_percentiles_need_samples_above_them():
    """A p95 needs 100 samples, a p99 500: fewer and the figure is a note, not a verdict."""
    from letrade_perf.reports.compare import tail_samples_needed
    assert [tail_samples_needed(q) for q in (50, 90, 95, 99, 99.9, 1, 0, 100)] == [10, 50, 100, 500, 5000, 500,
                                                                                  None, None]
    base = make_summary()
    few = with_endpoint(base, DEPTH, count=99)
    c = compare_summaries(few, with_endpoint(few, DEPTH, p95_ms=400.0, avg_ms=30.0))    # p95 +233 %
    assert c.passed, c.regressions
    assert f"endpoint REST {DEPTH}: p95_ms not judgeable (too few samples: a 95th percentile needs 100 " \
           "(baseline 99, current 99))" in c.notes
    assert regressions(compare_summaries(few, with_endpoint(few, DEPTH, avg_ms=60.0))) == {
        ("endpoint", f"REST {DEPTH}", "avg_ms")}                         # the average is still judged
    # 120, not 100: each of the 12 intervals also needs 10 samples for its p95 to count in the noise
    enough = with_endpoint(base, DEPTH, count=120)
    assert compare_summaries(with_endpoint(base, DEPTH, count=100), with_endpoint(base, DEPTH, count=100,
                                                                                 p95_ms=400.0)).passed
    assert regressions(compare_summaries(enough, with_endpoint(enough, DEPTH, p95_ms=400.0))) == {
        ("endpoint", f"REST {DEPTH}", "p95_ms")}
    # a p(99) criterion over 110 samples (38.6 -> 56.9 ms between two identical runs) is not judged
    p99 = criterion('request{name="GET /api/v3/depth"} p(99)<400', expression="p(99)<400", aggregation="p(99)",
                    threshold=400.0, value=38.6, samples=110)
    b, n = make_summary(criteria=[p99]), make_summary(criteria=[{**p99, "value": 56.9}])
    c = compare_summaries(b, n)
    assert c.passed and any("p(99)<400: value not judgeable (too few samples: a 99th percentile needs 500" in x
                            for x in c.notes)
    b, n = make_summary(criteria=[{**p99, "samples": 500}]), make_summary(criteria=[{**p99, "value": 56.9, "samples": 500}])
    assert regressions(compare_summaries(b, n)) == {("criterion", p99["label"], "value")}
    # a maximum is one sample: its value is never compared, its verdict is
    mx = criterion("request max<100", tags={}, expression="max<100", aggregation="max", threshold=100.0,
                   value=40.0, samples=4000)
    c = compare_summaries(make_summary(criteria=[mx]), make_summary(criteria=[criterion(
        "request max<100", tags={}, expression="max<100", aggregation="max", threshold=100.0, value=140.0,
        samples=4000)]))
    assert regressions(c) == {("criterion", "request max<100", "verdict")}
    assert "criterion request max<100: value not compared, a maximum is one sample" in c.notes


def test_tolerance_must_be_a_non_negative_fraction():
    s = make_summary()
    for bad in (-0.1, float("nan"), "10%"):
        with pytest.raises(ValueError):
            compare_summaries(s, s, tolerance=bad)


# --- the compare sub-command, in process (the subprocess test is tests/integration/test_compare_cli.py) --

@pytest.mark.parametrize("text,value", [("10%", 0.1), ("0.1", 0.1), (" 25 % ", 0.25), ("0", 0.0), ("150%", 1.5),
                                        ("0.05", 0.05)])
def test_parse_tolerance(text, value):
    assert compare_cli.parse_tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "10", "-5%", "nan%", "", "%", "1e400"])
def test_parse_tolerance_rejects_bad_values_naming_them(text):
    with pytest.raises(ValueError, match=r"--tolerance"):
        compare_cli.parse_tolerance(text)


def _run(*argv) -> int:
    parser = argparse.ArgumentParser(prog="letrade-perf")
    compare_cli.add_parser(parser.add_subparsers(dest="command"))
    return compare_cli.run_from_args(parser.parse_args(["compare", *map(str, argv)]))


def test_compare_command_exit_codes(tmp_path, capsys):
    base = make_summary()
    write_reports(base, tmp_path / "base")
    write_reports(copy.deepcopy(base), tmp_path / "same")
    write_reports(with_endpoint(base, DEPTH, p95_ms=156.0), tmp_path / "slow")
    assert _run(tmp_path / "base", tmp_path / "same") == 0
    assert "PASS: no regression" in capsys.readouterr().out
    assert _run(tmp_path / "base", tmp_path / "slow" / "summary.json") == 1
    assert "REGRESSION: 1 of 37" in capsys.readouterr().out
    assert _run(tmp_path / "base", tmp_path / "slow", "--tolerance", "50%") == 0
    capsys.readouterr()
    assert _run(tmp_path / "base", tmp_path / "slow", "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "fail" and out["regressions"][0]["figure"] == "p95_ms" and out["checked"] == 37
    assert _run(tmp_path / "base", tmp_path / "slow", "--tolerance", "ten") == 2
    assert "--tolerance 'ten'" in capsys.readouterr().err
    assert _run(tmp_path / "base", tmp_path / "missing") == 2
    assert f"{tmp_path / 'missing'}: no such file" in capsys.readouterr().err
