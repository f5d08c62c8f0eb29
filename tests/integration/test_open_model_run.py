"""Open-model load end to end: one short ``letrade-perf run`` against the embedded simulator with a
fixed 100 ms latency, where the arrival rates ask for twice what the users can serve (REST: 2 users
at ~10 iterations/s each against 40/s; ccxt: 1 user against 20/s). The users are always late, so
the latency from the intended start is above the service time, iterations are dropped, and the
run is INCOMPLETE for it (exit 4) while its criteria, which name both figures, pass.

Several tests read the one run's reports (a module-scoped fixture): ~5 s of load.
"""
from __future__ import annotations

import json
import os
import sys

import pytest
import yaml

from letrade_perf.reports.schema import validate_summary

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_run import run_cli, run_dir  # noqa: E402

LATENCY_MS = 100.0
REST = "GET /api/v3/ticker/bookTicker"
CCXT = "ccxt fetch_ticker"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("open_model")
    only = {"depth": 0, "klines": 0, "trades": 0, "ticker": 0, "book_ticker": 1}   # weight 2: pacing is no limit
    doc = {"description": "open model over capacity", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": "5s", "users": 3, "spawn_rate": 3}],
           "users": {"rest_market": {"fixed_count": 2, "arrival_rate": "40/s", "task_weights": only},
                     "ccxt": {"fixed_count": 1, "arrival_rate": "1200/m",
                              "task_weights": {"order_book": 0, "ohlcv": 0, "trades": 0, "ticker": 1,
                                               "balance": 0, "order": 0}}},
           "sim": {"latency": {"fixed_ms": LATENCY_MS}},
           "criteria": {"request": ["avg<5000"], "request_intended": ["avg<10000"],
                        "dropped_iterations": ["count>=1"], "iterations": ["count>=1"]},
           "gate": {"defaults": False, "allow_inconclusive": True, "eval_every_s": "1s"}}
    profile = tmp / "open-model.yaml"
    profile.write_text(yaml.safe_dump(doc))
    reports = str(tmp / "reports")
    p = run_cli("run", "--profile", str(profile), "--reports", reports, "--quiet", timeout=90)
    d = run_dir(reports)
    with open(os.path.join(d, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    with open(os.path.join(d, "summary.md"), encoding="utf-8") as fh:
        md = fh.read()
    validate_summary(summary)        # the iterations and both latencies fit the shipped schema
    return p, summary, md


def _row(summary: dict, type_: str, name: str) -> dict:
    rows = [e for e in summary["endpoints"] if e["type"] == type_ and e["name"] == name]
    assert len(rows) == 1, [(e["type"], e["name"]) for e in summary["endpoints"]]
    return rows[0]


def test_dropped_iterations_make_the_run_incomplete_though_its_criteria_pass(run):
    p, summary, _md = run
    assert p.returncode == 4, p.stdout[-3000:] + p.stderr[-3000:]
    assert (summary["verdict"], summary["run"]["exit_code"]) == ("incomplete", 4)
    assert {c["label"]: c["verdict"] for c in summary["criteria"]} == {
        "request avg<5000": "pass", "request_intended avg<10000": "pass", "dropped_iterations count>=1": "pass",
        "iterations count>=1": "pass"}
    achieved = summary["achieved"]
    assert achieved["planned"]["arrival_rates"] == {"rest_market": 40.0, "ccxt": 20.0}
    its = achieved["achieved"]["iterations"]
    for kind in ("rest_market", "ccxt"):
        it = its[kind]
        assert it["planned"] == it["started"] + it["dropped"]
        assert it["started"] > 0 and it["dropped"] > 0.2 * it["planned"], its   # served about half
    sfs = [s for s in achieved["shortfalls"] if s["kind"] == "dropped_iterations"]
    assert [s["tolerated"] for s in sfs] == [False, False], achieved["shortfalls"]
    assert any("rest_market iterations dropped" in s["message"] for s in sfs)
    dropped = {c["label"]: c["value"] for c in summary["criteria"]}["dropped_iterations count>=1"]
    assert dropped == its["rest_market"]["dropped"] + its["ccxt"]["dropped"]


def test_both_latencies_are_in_the_summary_and_the_intended_one_is_later(run):
    _p, summary, _md = run
    for type_, name in (("GET", REST), ("ccxt", CCXT)):
        service = _row(summary, type_, name)
        intended = _row(summary, "request_intended", name)
        assert service["count"] == intended["count"] > 0
        assert service["p50_ms"] >= LATENCY_MS * 0.95           # the simulator's fixed latency
        # every user was late for its slot (by up to one slot: 25 ms REST, 50 ms ccxt)
        assert intended["avg_ms"] >= service["avg_ms"] + 3.0, (service, intended)
        assert intended["min_ms"] >= service["min_ms"] * 0.99
        assert intended["p99_ms"] >= service["p99_ms"] * 0.99


def test_summary_md_shows_the_two_latencies_side_by_side_and_the_iterations(run):
    _p, _summary, md = run
    assert "#### Open model: service time and latency from the intended start" in md
    assert f"| `{REST}` |" in md and f"| `{CCXT}` |" in md
    assert "| Iterations rest_market at 40/s |" in md
    assert "**shortfall**: dropped\\_iterations:" in md
