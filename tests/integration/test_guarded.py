"""A user's own ccxt code through ``guarded_ccxt`` under ``letrade-perf run`` against a real
simulator: its calls are measured per endpoint and paced, its orders are in the ledger and the
verdict, an order above the safety cap is refused before sending, and the kill switch cancels
what it left open."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from test_dropin import stats
from test_run import run_cli, run_dir

HERE = os.path.dirname(os.path.abspath(__file__))


def _profile(tmp_path, users: int, weight_per_minute: int | None = None) -> str:
    doc = {"description": "guarded ccxt", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": "8s", "users": users, "spawn_rate": users}],
           "users": {"rest_market": {"weight": 1, "fixed_count": 0}},
           "safety": {"max_order_notional": 20, "max_run_notional": 100000},
           # the code's oversized orders are refused on purpose: a planned refusal, not a shortfall
           "tolerate": {"safety_refusals": 1000},
           # ten users trade at the simulator's order budget: most seconds are spent paced, which
           # uptime counts as wanted and (with no answer in them) down — not what this test judges
           "criteria": {"order_success": ["rate>99.5%"], "uptime": ["rate>0%"]}}
    path = tmp_path / "guarded.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _open_orders(sim) -> list:
    return sim.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()


@pytest.mark.parametrize("locustfile,users", [("guarded_locustfile.py", 3), ("guarded_async_locustfile.py", 10)],
                         ids=["sync-ccxt", "asyncio-ccxt-10-users"])
def test_users_ccxt_code_is_measured_ledgered_capped_and_cleaned_up(sim_factory, tmp_path, locustfile, users):
    sim = sim_factory()
    reports = str(tmp_path / "reports")
    out = tmp_path / "seen.jsonl"
    p = run_cli("run", "-f", os.path.join(HERE, locustfile), "--profile", _profile(tmp_path, users),
                "--host", sim.base_url, "--reports", reports, env={"GUARDED_OUT": str(out)}, timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for noise in ("Traceback", "Unclosed client session", "Cannot run the event loop", "was never awaited"):
        assert noise not in p.stderr, p.stderr[-3000:]
    seen = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(seen) == users and all(s["placed"] >= 2 for s in seen), seen
    placed, cancelled = sum(s["placed"] for s in seen), sum(s["cancelled"] for s in seen)
    refused = sum(s["refused"] for s in seen)
    assert placed >= 6 and refused == sum(1 for s in seen if s["steps"] >= 3) >= 1

    # a user stopped at the end of the run may be stopped inside a step: at most one call per user
    # is cut short between the request and the code's own count
    rows = stats(os.path.join(run_dir(reports), "locust_stats.csv"))
    steps = sum(s["steps"] for s in seen)
    assert placed <= rows[("ccxt", "POST /api/v3/order")] <= placed + users     # refused orders never left
    assert cancelled <= rows[("ccxt", "DELETE /api/v3/order")] <= cancelled + users
    assert steps - users <= rows[("ccxt", "GET /api/v3/depth")] <= steps
    assert rows[("ccxt", "GET /api/v3/exchangeInfo")] == 1          # markets once per process
    assert steps - users <= rows[("user", "my decision")] <= steps

    with open(os.path.join(run_dir(reports), "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    orders = summary["orders"]
    # the ledger holds exactly the orders the exchange saw, every one answered (an order whose
    # user was being stopped still completes); Locust's stats may miss the last answer per user
    truth = sim.stats()["orders"]["by_status"]
    assert truth == {"NEW": orders["sent"]} and orders["placed"] == orders["sent"], (truth, orders)
    assert orders["refused"] == refused and orders.get("rejected", 0) == 0, orders
    assert orders["sent"] - users <= rows[("ccxt", "POST /api/v3/order")] <= orders["sent"]
    judged = {c["label"]: c for c in summary["criteria"]}
    assert judged["order_success rate>99.5%"]["samples"] == orders["sent"]
    assert judged["order_success rate>99.5%"]["verdict"] == "pass"
    # what the code left open was cancelled by the kill switch at the end
    assert _open_orders(sim) == []
