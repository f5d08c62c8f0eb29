"""Error-path scenarios and forced partial fills in one real run: ``letrade-perf run`` with the
error_paths user (every scenario), a reconciling pipeline and a REST market user against a
simulator whose ``partial_fill`` fault splits every fill in three. One run (12 s of load); the
tests below read its reports and the simulator."""
from __future__ import annotations

import csv
import json
import os
from decimal import Decimal

import pytest
import yaml

from letrade_perf.users.errorpaths import SCENARIOS
from simproc import start_sim
from test_run import run_cli, run_dir

#: each scenario every 2 s: at least 5 sends of each in 12 s
RATE = 0.5
LOAD_S = 12
PARTS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("error-paths")
    sim = start_sim({"faults": [{"kind": "partial_fill", "parts": PARTS, "endpoints": ["BTCUSDT"]}]})
    try:
        profile = {
            "description": "error paths and partial fills", "env": "sim", "symbols": ["BTCUSDT"],
            "stages": [{"duration": f"{LOAD_S}s", "users": 3, "spawn_rate": 3}],
            "users": {"error_paths": {"fixed_count": 1, **{s: RATE for s in SCENARIOS}},
                      "pipeline": {"fixed_count": 1, "wait_min_s": 0.2, "wait_max_s": 0.4, "notional": 12,
                                   "strategy": {"force_every_s": "1s"}},
                      "rest_market": {"fixed_count": 1, "wait_min_s": 0.5, "wait_max_s": 1.0}},
            "criteria": {"expected_rejection": ["rate==100%"], "error_path_excess": ["count==0"],
                         "order_success": ["rate==100%"], "reconciliation": ["rate==100%"],
                         "api_success": ["rate==100%"], "uptime": ["rate==100%"], "clock_errors": ["count==0"]},
        }
        path = tmp / "error-paths.yaml"
        path.write_text(yaml.safe_dump(profile))
        reports = str(tmp / "reports")
        p = run_cli("run", "--profile", str(path), "--host", sim.base_url, "--reports", reports, timeout=120)
        d = run_dir(reports) if os.path.isdir(reports) and os.listdir(reports) else None

        def load(name: str):
            with open(os.path.join(d, name), encoding="utf-8") as fh:
                return json.load(fh)

        with open(os.path.join(d, "locust_stats.csv"), newline="", encoding="utf-8") as fh:
            rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(fh) if r["Name"] != "Aggregated"}
        open_orders = sim.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()
        all_orders = sim.signed("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT", "limit": 1000}).json()
        trades = sim.signed("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT", "limit": 1000}).json()
        yield {"proc": p, "summary": load("summary.json"), "orders": load("orders.json"), "rows": rows,
               "open_orders": open_orders, "all_orders": all_orders, "trades": trades, "sim_stats": sim.stats()}
    finally:
        sim.stop()


def _criteria(run) -> dict[str, dict]:
    return {c["label"]: c for c in run["summary"]["criteria"]}


def test_the_run_passes_with_exit_code_0(run):
    p = run["proc"]
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert run["summary"]["run"]["exit_code"] == 0 and run["summary"]["verdict"] == "pass"


def test_every_scenario_is_sent_and_classified_by_its_code(run):
    rows = run["rows"]
    for scenario in SCENARIOS:
        row = rows.get(("expected_rejection", scenario))
        assert row is not None, f"{scenario} never sent: {sorted(k for k in rows if k[0] == 'expected_rejection')}"
        assert int(row["Request Count"]) >= 3 and int(row["Failure Count"]) == 0, row
    codes = {name: int(r["Request Count"]) for (t, name), r in rows.items() if t == "rejection_code"}
    want = {str(c) for cs in SCENARIOS.values() for c in cs}
    assert set(codes) == want, codes                               # nothing accepted, nothing unexplained
    sent = sum(int(rows[("expected_rejection", s)]["Request Count"]) for s in SCENARIOS)
    assert sum(codes.values()) == sent
    # four filter scenarios answer -1013, insufficient balance and the duplicate -2010
    assert codes["-1013"] >= 4 * 3 and codes["-2010"] >= 2 * 3
    judged = _criteria(run)
    assert judged["expected_rejection rate==100%"]["verdict"] == "pass"
    assert judged["expected_rejection rate==100%"]["samples"] == sent


def test_no_retry_storm(run):
    judged = _criteria(run)["error_path_excess count==0"]
    assert judged["verdict"] == "pass" and judged["value"] == 0
    # at most one send per slot: rate × duration + 1 (and the start-up second)
    for scenario in SCENARIOS:
        assert int(run["rows"][("expected_rejection", scenario)]["Request Count"]) <= RATE * (LOAD_S + 2) + 1


def test_expected_rejections_count_against_no_success_rate(run):
    judged = _criteria(run)
    for label in ("order_success rate==100%", "api_success rate==100%", "uptime rate==100%"):
        assert judged[label]["verdict"] == "pass", judged[label]
    by_source = run["orders"]["orders_by_source"]
    pipeline, anchors = by_source["pipeline"], by_source["error_path_anchor"]
    # order_success is the pipeline's and the anchors' orders, never the rejected error-path ones
    assert judged["order_success rate==100%"]["samples"] == pipeline["sent"] + anchors["sent"]
    assert pipeline["sent"] >= 4 and pipeline["rejected"] == 0
    # the REST requests of the run all succeeded: no rejection is in the request stats
    assert all(int(r["Failure Count"]) == 0 for (t, _), r in run["rows"].items() if t in ("GET", "POST", "DELETE"))


def test_a_stale_timestamp_is_no_clock_error(run):
    judged = _criteria(run)["clock_errors count==0"]
    assert judged["verdict"] == "pass" and judged["value"] == 0
    assert int(run["rows"][("rejection_code", "-1021")]["Request Count"]) >= 3


def test_the_ledger_holds_every_error_path_order_rejected_and_nothing_open(run):
    by_source = run["orders"]["orders_by_source"]
    ep = by_source["error_path"]
    # order scenarios: filters ×4, insufficient balance, stale timestamp, bad signature
    assert ep["sent"] >= 7 * 3 and ep["rejected"] == ep["sent"] and ep["placed"] == 0, ep
    anchors = by_source["error_path_anchor"]
    assert anchors["sent"] == anchors["placed"] == anchors["canceled"] >= 3, anchors
    assert run["summary"]["orders"]["rejected"] == ep["rejected"]
    assert run["open_orders"] == []
    # the simulator saw exactly the orders the ledger accepted (rejections never became orders)
    placed = run["summary"]["orders"]["placed"]
    assert len(run["all_orders"]) == placed
    assert {o["status"] for o in run["all_orders"]} <= {"FILLED", "CANCELED"}


def test_partial_fills_are_tracked_to_filled_and_reconcile(run):
    filled = [o for o in run["all_orders"] if o["status"] == "FILLED"]
    assert len(filled) == run["orders"]["orders_by_source"]["pipeline"]["filled"] >= 4
    per_order: dict[int, list[dict]] = {}
    for t in run["trades"]:
        per_order.setdefault(t["orderId"], []).append(t)
    for o in filled:   # every pipeline order filled in several executions that add up
        mine = per_order.get(o["orderId"], [])
        assert len(mine) >= PARTS, (o, mine)
        assert sum(Decimal(t["qty"]) for t in mine) == Decimal(o["executedQty"])
    assert run["sim_stats"]["faults"]["partial_fill"] >= len(filled)
    # the ledger saw each of them PARTIALLY_FILLED on the stream before FILLED
    by_source = run["orders"]["orders_by_source"]["pipeline"]
    assert by_source["partially_filled"] == by_source["filled"]
    judged = _criteria(run)["reconciliation rate==100%"]
    # an order and a balance check per order (the last order may be cut short by the end of the run)
    assert judged["verdict"] == "pass" and 2 * (len(filled) - 1) <= judged["samples"] <= 2 * len(filled)
    pipeline = run["rows"][("pipeline", "BTCUSDT rest")]
    assert int(pipeline["Failure Count"]) == 0
