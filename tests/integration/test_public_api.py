"""A user's own code on the public API (``letrade_perf.api``: ``call``, ``order``, ``timer``,
``measure``; ``acall`` / ``aorder`` from an ``AsyncTasksMixin`` user) under ``letrade-perf run``
against a real simulator: its calls are measured under their endpoint names, its orders are
ledgered (the run's counts equal the code's and the simulator's), an order above the safety cap
is refused before sending, its measurements are ``user`` requests (a timer stopped with an error
is a failure), and the kill switch cancels what it left open."""
from __future__ import annotations

import csv
import json
import os

import pytest
import yaml

from test_run import run_cli, run_dir

HERE = os.path.dirname(os.path.abspath(__file__))
LOCUSTFILE = os.path.join(HERE, "api_locustfile.py")
ORDER = ("POST", "POST /api/v3/order")
#: steps per user: done in ~3 s of the 6 s stage, so the end of the run stops no user inside a call
STEPS = 8


def _profile(tmp_path, users: int) -> str:
    doc = {"description": "public api", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": "6s", "users": users, "spawn_rate": users}],
           "users": {"rest_market": {"weight": 1, "fixed_count": 0}},
           "safety": {"max_order_notional": 20, "max_run_notional": 100000},
           # the code's oversized orders are refused on purpose: a planned refusal, not a shortfall
           "tolerate": {"safety_refusals": 1000},
           "criteria": {"order_success": ["rate>99.5%"]}}
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _rows(reports: str) -> dict[tuple[str, str], dict]:
    with open(os.path.join(run_dir(reports), "locust_stats.csv"), newline="", encoding="utf-8") as fh:
        return {(r["Type"], r["Name"]): {"count": int(r["Request Count"]), "failures": int(r["Failure Count"])}
                for r in csv.DictReader(fh) if r["Name"] != "Aggregated"}


@pytest.mark.parametrize("mode,users", [("sync", 3), ("async", 4)], ids=["sync", "asyncio"])
def test_users_code_on_the_public_api_is_paced_gated_ledgered_and_measured(sim_factory, tmp_path, mode, users):
    sim = sim_factory()
    reports = str(tmp_path / "reports")
    out = tmp_path / "seen.jsonl"
    p = run_cli("run", "-f", LOCUSTFILE, "--profile", _profile(tmp_path, users), "--host", sim.base_url,
                "--reports", reports, env={"API_USER": mode, "API_OUT": str(out), "API_STEPS": str(STEPS)},
                timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for noise in ("Traceback", "Unclosed client session", "Cannot run the event loop", "was never awaited"):
        assert noise not in p.stderr, p.stderr[-3000:]

    # every user did all its steps before the run ended (none was stopped inside a call)
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(seen) == users and {s["user"] for s in seen} == {mode}, seen
    expected = {"steps": STEPS, "decisions": STEPS, "reconciles": STEPS, "failed_timers": 1, "attempted": 2 * STEPS,
                "placed": 2 * STEPS, "market": STEPS, "limit": STEPS, "cancelled": STEPS // 2, "refused": 1}
    assert all({k: s[k] for k in expected} == expected for s in seen), seen
    n = {k: v * users for k, v in expected.items()}

    with open(os.path.join(run_dir(reports), "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    orders = summary["orders"]
    truth = sim.stats()["orders"]["by_status"]
    # the ledger holds exactly the orders the code placed and the simulator saw (MARKET ones
    # filled, LIMIT ones far under the market resting); the oversized ones were refused, not sent
    assert orders["sent"] == orders["placed"] == n["placed"], (n, orders)
    assert truth == {"FILLED": n["market"], "NEW": n["limit"]}, (n, truth)
    assert orders["filled"] == n["market"] and orders["canceled"] == n["limit"], (n, orders)
    assert orders["refused"] == n["refused"] == users, (n, orders)
    assert orders.get("rejected", 0) == orders.get("unknown", 0) == orders.get("not_executed", 0) == 0, orders

    rows = _rows(reports)
    # calls under their endpoint names: refused orders never left; the cancels are the code's own
    # plus the kill switch's, one per LIMIT order left open
    assert rows[ORDER] == {"count": orders["sent"], "failures": 0}, rows
    assert rows[("GET", "GET /api/v3/depth")] == {"count": n["steps"], "failures": 0}, rows
    assert rows[("DELETE", "DELETE /api/v3/order")] == {"count": n["limit"], "failures": 0}, rows
    # measurements are ``user`` requests; a timer stopped with an error is a failure
    assert rows[("user", "api decision")] == {"count": n["decisions"], "failures": 0}, rows
    assert rows[("user", "api reconcile")] == {"count": n["reconciles"], "failures": 0}, rows
    assert rows[("user", "api failing step")] == {"count": users, "failures": users}, rows
    assert set(rows) == {ORDER, ("GET", "GET /api/v3/depth"), ("DELETE", "DELETE /api/v3/order"),
                         ("user", "api decision"), ("user", "api reconcile"), ("user", "api failing step")}, rows

    judged = {c["label"]: c for c in summary["criteria"]}
    assert judged["order_success rate>99.5%"]["samples"] == orders["sent"], judged
    assert judged["order_success rate>99.5%"]["verdict"] == "pass", judged
    assert summary["verdict"] == "pass", judged
    # what the code left open was cancelled by the kill switch at the end
    assert sim.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json() == []
