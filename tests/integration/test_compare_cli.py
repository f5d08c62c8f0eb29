"""``letrade-perf compare`` as a subprocess: exit codes, output, messages naming the bad input.

Needs ``compare`` registered in ``letrade_perf/cli.py`` (``compare_cli.add_parser`` /
``compare_cli.run_from_args``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from intervaldata import with_intervals
from letrade_perf.reports import write_reports
from reportdata import criterion, make_summary, with_endpoint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = [sys.executable, "-m", "letrade_perf"]


def compare(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "compare", *map(str, args)], capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.fixture
def runs(tmp_path):
    """Report directories: a baseline, an identical run, a 30 % slower depth p95, more errors, a failed criterion.

    Each carries per-interval data (12 intervals, 5 % noise) so that every figure has a noise
    estimate; "errors" goes from 1 to 30 failures of 300, beyond binomial noise (9 of 300 is not)."""
    base = make_summary()
    failed = make_summary(criteria=[criterion(value=251.0)] + base["criteria"][1:])
    dirs = {"base": base, "same": json.loads(json.dumps(base)),
            "slow": with_endpoint(base, "GET /api/v3/depth", p95_ms=156.0),
            "errors": with_endpoint(base, "POST /api/v3/order", failures=30, error_rate=0.1),
            "failed": failed}
    for name, summary in dirs.items():
        write_reports(with_intervals(summary), tmp_path / name)
    return tmp_path


def test_an_identical_pair_exits_0(runs):
    r = compare(runs / "base", runs / "same")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS: no regression in 37 figures compared" in r.stdout


def test_a_30_percent_p95_regression_exits_1(runs):
    r = compare(runs / "base" / "summary.json", runs / "slow")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSION: 1 of 37 figures regressed" in r.stdout
    assert "endpoint REST GET /api/v3/depth p95_ms: 120 ms → 156 ms (+30.0 %" in r.stdout
    r = compare(runs / "base", runs / "slow", "--tolerance", "35%")
    assert r.returncode == 0, r.stdout + r.stderr
    r = compare(runs / "base", runs / "slow", "--tolerance", "0.35")
    assert r.returncode == 0, r.stdout + r.stderr


def test_error_rate_and_criterion_regressions_exit_1(runs):
    r = compare(runs / "base", runs / "errors")
    assert r.returncode == 1 and "endpoint REST POST /api/v3/order error_rate: 0.333 % → 10 %" in r.stdout, r.stdout
    r = compare(runs / "base", runs / "failed", "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    label = 'request{name="GET /api/v3/depth"} p(95)<200'
    assert {"kind": "criterion", "key": label, "figure": "verdict", "baseline": "pass", "current": "fail",
            "change": None, "limit": "pass", "noise": None} in out["regressions"]
    assert out["verdict"] == "fail" and out["tolerance"] == 0.1


@pytest.mark.parametrize("tolerance", ["ten", "10", "-5%"])
def test_a_bad_tolerance_exits_2_naming_it(runs, tolerance):
    r = compare(runs / "base", runs / "same", f"--tolerance={tolerance}")     # = so argparse takes -5%
    assert r.returncode == 2
    assert f"--tolerance {tolerance!r}" in r.stderr and "Traceback" not in r.stderr


def test_bad_input_files_exit_2_naming_the_file(runs):
    r = compare(runs / "base", runs / "nope")
    assert r.returncode == 2 and f"{runs / 'nope'}: no such file" in r.stderr and "Traceback" not in r.stderr
    (runs / "junk.json").write_text("<html>")
    r = compare(runs / "junk.json", runs / "base")
    assert r.returncode == 2 and f"{runs / 'junk.json'}: not JSON" in r.stderr and "Traceback" not in r.stderr
    (runs / "other.json").write_text(json.dumps({**make_summary(), "schema_version": 9}))
    r = compare(runs / "base", runs / "other.json")
    assert r.returncode == 2 and "schema_version 9 is not supported" in r.stderr and "Traceback" not in r.stderr
