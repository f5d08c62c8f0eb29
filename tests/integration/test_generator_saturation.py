"""A load generator saturated on purpose: its latency criterion is INCONCLUSIVE with what to do,
never PASS or FAIL, and the run ends INCOMPLETE (exit 4), in the process and in every report.

One short run (5 s of load, three users that each burn ~20 ms of CPU per request against the
embedded simulator) shared by the assertions."""
from __future__ import annotations

import json
import os
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_run import run_cli, run_dir  # noqa: E402

LOCUSTFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "saturate_locustfile.py")
EXIT_INCOMPLETE = 4


@pytest.fixture(scope="module")
def saturated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("saturated")
    doc = {"description": "generator saturated on purpose", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": "5s", "users": 3, "spawn_rate": 3}],
           "users": {"rest_market": {"weight": 1, "wait_min_s": 0, "wait_max_s": 0,
                                     "task_weights": {"depth": 1, "klines": 0, "trades": 0, "ticker": 0,
                                                      "book_ticker": 0}}},
           # a threshold the simulator's answers meet easily: only saturation can stop it passing
           "criteria": {"request": ["avg<2000"], "generator_cpu": ["max<=1000"]},
           "gate": {"eval_every_s": "1s", "allow_inconclusive": True},
           # the fixed windows: the minute's whole budget is there at once, so no pacing wait
           # idles the burning users (the smooth bucket would, at 80 weight a second)
           "pacing": {"smoothing": "window"}}
    profile = tmp / "saturate.yaml"
    profile.write_text(yaml.safe_dump(doc))
    reports = str(tmp / "reports")
    p = run_cli("run", "-f", LOCUSTFILE, "--profile", str(profile), "--reports", reports, timeout=120,
                console=True, env={"NO_COLOR": "1"})
    d = run_dir(reports)
    with open(os.path.join(d, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    with open(os.path.join(d, "summary.md"), encoding="utf-8") as fh:
        md = fh.read()
    return p, summary, md


def test_the_latency_criterion_is_inconclusive_with_what_to_do(saturated):
    p, summary, _md = saturated
    judged = {c["label"]: c for c in summary["criteria"]}
    lat = judged["request avg<2000"]
    assert lat["verdict"] == "inconclusive" and lat["gate"] == "fail", lat     # allow_inconclusive notwithstanding
    assert "the load generator was saturated" in lat["reason"], lat
    assert "add workers (--workers) or lower users" in lat["reason"]
    assert judged["generator_cpu max<=1000"]["verdict"] == "pass"              # its own metric is judged


def test_the_run_does_not_pass_it_is_incomplete(saturated):
    p, summary, _md = saturated
    assert p.returncode == EXIT_INCOMPLETE, p.stdout[-4000:]
    assert summary["verdict"] == "incomplete" and summary["run"]["exit_code"] == EXIT_INCOMPLETE
    kinds = {s["kind"]: s for s in summary["achieved"]["shortfalls"]}
    assert not kinds["generator_saturated"]["tolerated"]
    assert "add workers" in p.stdout                     # the console says what to do


def test_the_reports_show_the_generator(saturated):
    _p, summary, md = saturated
    sat = summary["generator_saturation"]
    assert sat["saturated"] and sat["process"] == "local" and sat["fraction"] > 0.1, sat
    local = summary["generator"]["local"]
    n = len(local["t_s"])
    assert n >= 2 and all(len(local[k]) == n for k in ("cpu_percent", "rss_mb", "loop_lag_p99_ms", "saturated"))
    assert any(local["saturated"])
    assert local["cpu_percent_max"] >= 90 or local["loop_lag_p99_ms_max"] >= 10, local
    assert local["rss_mb_start"] > 10 and local["rss_mb_end"] > 10
    assert "#### Load generator" in md and "**Saturated**" in md
