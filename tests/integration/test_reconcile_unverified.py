"""A reconciliation that could not be performed is retried, then *unverified* — never a mismatch.

Two real ``letrade-perf run`` processes (run side by side, each with its embedded simulator) of a
trading-pipeline profile whose simulator answers ``GET /api/v3/order`` — the reconciler's order
query — with 503:

* every second query (transient): each failed query is retried through the call path and the
  retry is answered, so ``reconciliation`` is 100 % with zero unverified checks and the run passes;
* every query (permanent): each order check is ``reconciliation_unverified`` after its retries,
  ``reconciliation`` has zero mismatches (its balance checks still match), and the run fails on
  ``reconciliation_unverified count==0`` alone — with that reason, not as a mismatch.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ORDER_QUERY = "GET /api/v3/order"


def profile(tmp_path, name: str, fault: dict) -> str:
    data = {
        "description": f"reconciliation under 503s on {ORDER_QUERY} ({name})",
        "env": "sim",
        "symbols": ["BTCUSDT"],
        # one strategy: its queries alternate strictly with the fault's every-second pick
        "stages": [{"duration": "6s", "users": 1, "spawn_rate": 1}],
        "users": {"pipeline": {"fixed_count": 1, "wait_min_s": 0.05, "wait_max_s": 0.1, "order_via": "rest",
                               "strategy": {"interval": "1m", "fast": 3, "slow": 8, "force_every_s": "0.3s"},
                               "notional": 12, "max_orders": 6}},
        "safety": {"max_order_notional": 20, "max_run_notional": 100000},
        "sim": {"faults": [dict(kind="http_5xx", endpoints=[ORDER_QUERY], status=503, **fault)]},
        "gate": {"defaults": False, "eval_every_s": "1s"},
        "criteria": {"reconciliation": ["rate==100%"], "reconciliation_unverified": ["count==0"]},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def start(tmp_path, name: str, fault: dict) -> tuple[subprocess.Popen, str, str]:
    reports = str(tmp_path / f"reports-{name}")
    log_path = str(tmp_path / f"{name}.log")
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "letrade_perf", "run", "--profile",
                                 profile(tmp_path, name, fault), "--reports", reports],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, reports, log_path


def finish(proc: subprocess.Popen, reports: str, log_path: str) -> tuple[int, dict, dict, str]:
    try:
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = open(log_path, encoding="utf-8", errors="replace").read()
    [d] = [os.path.join(reports, x) for x in os.listdir(reports)]
    with open(os.path.join(d, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    with open(os.path.join(d, "locust_stats.csv"), newline="") as fh:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(fh) if r["Name"] != "Aggregated"}
    return code, summary, rows, out


def counts(rows: dict, type_: str, name: str) -> tuple[int, int]:
    r = rows.get((type_, name))
    return (int(r["Request Count"]), int(r["Failure Count"])) if r else (0, 0)


def test_reconciliation_is_retried_then_unverified_never_a_mismatch(tmp_path):
    runs = {name: start(tmp_path, name, fault) for name, fault in
            (("transient", {"every": 2}), ("permanent", {}))}
    results = {name: finish(*run) for name, run in runs.items()}

    # transient: every failed query was retried and answered — 100 %, nothing unverified, a pass
    code, summary, rows, out = results["transient"]
    crit = {c["metric"]: c for c in summary["criteria"]}
    queries, failed = counts(rows, "GET", ORDER_QUERY)
    orders, _ = counts(rows, "reconciliation", "order")
    assert failed > 0 and orders > 0, out[-3000:]                  # the 503s were injected and answered
    assert queries == orders + failed                              # one retry per 503, each answered
    assert counts(rows, "reconciliation", "order") == (orders, 0)
    assert counts(rows, "reconciliation", "balance")[1] == 0
    assert counts(rows, "reconciliation_unverified", "order") == (0, 0)
    assert crit["reconciliation"]["verdict"] == "pass" and crit["reconciliation"]["value"] == 1.0
    assert crit["reconciliation_unverified"]["verdict"] == "pass" and crit["reconciliation_unverified"]["value"] == 0
    assert code == 0 and summary["verdict"] == "pass", out[-3000:]

    # permanent: every order check is unverified after 3 queries; no mismatch anywhere
    code, summary, rows, out = results["permanent"]
    crit = {c["metric"]: c for c in summary["criteria"]}
    unverified, _ = counts(rows, "reconciliation_unverified", "order")
    queries, failed = counts(rows, "GET", ORDER_QUERY)
    assert unverified > 0, out[-3000:]
    assert queries == failed == 3 * unverified                     # the first query and 2 retries each
    assert counts(rows, "reconciliation", "order") == (0, 0)       # never counted as a mismatch
    balance, balance_failed = counts(rows, "reconciliation", "balance")
    assert balance >= unverified and balance_failed == 0
    assert crit["reconciliation"]["verdict"] == "pass" and crit["reconciliation"]["value"] == 1.0
    u = crit["reconciliation_unverified"]
    assert (u["verdict"], u["value"], u["samples"]) == ("fail", unverified, unverified)
    assert [c["metric"] for c in summary["criteria"] if c["verdict"] != "pass"] == ["reconciliation_unverified"]
    assert code != 0 and summary["verdict"] == "fail", out[-3000:]


# -- the pieces, without processes -------------------------------------------------------------

def test_only_an_answer_that_is_not_definite_makes_a_check_unverified():
    from letrade_perf.calls.path import CallResult
    from letrade_perf.users.pipeline import _undecided

    assert not _undecided(CallResult(200, data={"status": "FILLED"}))
    for undecided in (CallResult(0, error="no response: timeout"), CallResult(503, code=-1008),
                      CallResult(500, code=-1007), CallResult(429, code=-1003), CallResult(418),
                      CallResult(200, error="HTTP 200: invalid JSON body (12 bytes)")):
        assert _undecided(undecided), undecided
    for definite in (CallResult(400, code=-2013, msg="Order does not exist."),
                     CallResult(400, code=-1021, msg="Timestamp for this request is outside of the recvWindow."),
                     CallResult(401, code=-2015)):
        assert not _undecided(definite), definite


def test_unverified_checks_are_their_own_default_criterion_never_reconciliation_samples():
    from letrade_perf.config.profile import load_profile
    from letrade_perf.criteria.evaluate import default_criteria, judge
    from letrade_perf.metrics.recorder import MetricsRecorder, MetricsStore

    class Failure(Exception):
        pass

    p = load_profile("trading")
    crit = {c.label: c for c in default_criteria(p)}
    assert {"reconciliation rate==100%", "reconciliation_unverified count==0"} <= set(crit)
    rec = MetricsRecorder(clock=lambda: 1000.0, samples_dir="")
    for _ in range(3):
        rec.on_request(request_type="reconciliation", name="balance", response_time=0.1)
    rec.on_request(request_type="reconciliation", name="order", response_time=2.0)
    rec.on_request(request_type="reconciliation_unverified", name="order", response_time=5.0,
                   exception=Failure("unverified: order query got no definite answer in 3 attempts: HTTP 503"))
    store = MetricsStore()
    store.merge(rec.drain())
    r = judge(crit["reconciliation rate==100%"], store, 10)
    assert (r.verdict, r.value, r.samples) == ("pass", 1.0, 4)
    u = judge(crit["reconciliation_unverified count==0"], store, 10)
    assert (u.verdict, u.value, u.samples) == ("fail", 1.0, 1)
    empty = judge(crit["reconciliation_unverified count==0"], MetricsStore(), 10)
    assert (empty.verdict, empty.value) == ("pass", 0.0)          # zero is a measurement, not "no samples"
