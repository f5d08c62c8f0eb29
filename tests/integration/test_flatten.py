"""The flatten step in real runs against the simulator (two short runs, side by side).

* Own code (``flatten_locustfile.py``) holds a position (three MARKET BUYs, one answered ``ACK``)
  and a resting LIMIT when the run aborts, with ``flatten: {on_abort: true, trade_back: true}``:
  afterwards no order of the run is open on the simulator, the account's BTC is back where it
  was within one lot step, and the flatten's report (split trade-back orders) is in summary.json
  and summary.md.
* The bundled production canary, compressed and pointed at the simulator: a BUY, then a SELL of
  exactly the quantity bought, then the end-of-run flatten — in that order.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import yaml

from letrade_perf.config import profile as prof
from simproc import start_sim

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOCUSTFILE = os.path.join(HERE, "flatten_locustfile.py")
RUN_TIMEOUT_S = 90
SYMBOL = "BTCUSDT"


def _run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-m", "letrade_perf", *args], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)


def _reports(reports: str) -> tuple[dict, str]:
    [d] = os.listdir(reports)
    with open(os.path.join(reports, d, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    with open(os.path.join(reports, d, "summary.md"), encoding="utf-8") as fh:
        return summary, fh.read()


def _balance(sim, asset: str) -> Decimal:
    acct = sim.signed("GET", "/api/v3/account").json()
    b = next(x for x in acct["balances"] if x["asset"] == asset)
    return Decimal(b["free"]) + Decimal(b["locked"])


def _step(sim) -> Decimal:
    info = sim.get("/api/v3/exchangeInfo", {"symbol": SYMBOL}).json()
    filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
    return Decimal((filters.get("MARKET_LOT_SIZE") or filters["LOT_SIZE"])["stepSize"])


def _abort_run(sim, tmp) -> dict:
    doc = {"description": "own code holds a position when the run aborts", "env": "sim", "symbols": [SYMBOL],
           "stages": [{"duration": "10s", "users": 1, "spawn_rate": 1}],
           "users": {"rest_market": {"weight": 1, "fixed_count": 0}},
           "safety": {"max_order_notional": 20, "max_run_notional": 1000},
           "flatten": {"on_abort": True, "trade_back": True},
           "criteria": {"order_success": ["rate>99%"]}}
    path = os.path.join(tmp, "abort.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(doc, fh)
    reports, out = os.path.join(tmp, "abort-reports"), os.path.join(tmp, "placed.json")
    btc0 = _balance(sim, "BTC")
    p = _run(["run", "-f", LOCUSTFILE, "--profile", path, "--host", sim.base_url, "--reports", reports],
             env={"FLATTEN_OUT": out})
    with open(out, encoding="utf-8") as fh:
        placed = json.load(fh)
    return {"proc": p, "reports": reports, "placed": placed, "btc0": btc0}


def _canary_run(sim, tmp) -> dict:
    [path] = [p for name, _, p in prof.list_profiles() if name == "production-canary"]
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    doc["stages"] = [{"duration": "8s", "users": 1, "spawn_rate": 1}]     # the round trip takes ~3 s
    cpath = os.path.join(tmp, "canary.yaml")
    with open(cpath, "w", encoding="utf-8") as fh:
        yaml.safe_dump(doc, fh)
    reports = os.path.join(tmp, "canary-reports")
    p = _run(["run", "--profile", cpath, "--env", "sim", "--host", sim.base_url, "--reports", reports])
    return {"proc": p, "reports": reports}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("flatten"))
    sims = [start_sim(), start_sim()]
    try:
        with ThreadPoolExecutor(2) as pool:
            abort = pool.submit(_abort_run, sims[0], tmp)
            canary = pool.submit(_canary_run, sims[1], tmp)
            out = {"abort": abort.result(), "canary": canary.result()}
        out["abort"]["sim"], out["canary"]["sim"] = sims
        yield out
    finally:
        for s in sims:
            s.stop()


def _log(run) -> str:
    return (run["proc"].stdout + run["proc"].stderr)[-4000:]


def test_flatten_after_an_abort_leaves_no_open_orders_and_no_position(runs):
    run = runs["abort"]
    sim = run["sim"]
    assert run["proc"].returncode == 3, _log(run)          # a safety abort
    assert all(p["ok"] for p in run["placed"]), run["placed"]
    assert sim.signed("GET", "/api/v3/openOrders", {"symbol": SYMBOL}).json() == []
    # the simulator's ground truth: what the run's orders executed nets out within one lot step
    step = _step(sim)
    net = Decimal(0)
    for o in sim.signed("GET", "/api/v3/allOrders", {"symbol": SYMBOL}).json():
        qty = Decimal(o["executedQty"])
        net += qty if o["side"] == "BUY" else -qty
    assert abs(net) < step, net
    # the account's BTC is back where it was (the buys' commissions were charged in BTC)
    assert abs(_balance(sim, "BTC") - run["btc0"]) < step


def test_the_flatten_report_is_in_the_reports(runs):
    run = runs["abort"]
    summary, md = _reports(run["reports"])
    assert "kill switch trips" in (summary["run"]["aborted"] or "")
    [report] = summary["flatten"]
    assert report["by"] == "abort" and report["reason"].startswith("abort: ") and report["ok"], report
    assert report["cancelled"]["canceled"] == 1 and not report["cancelled"]["failures"], report
    # ~54 USDT bought, at most 20 USDT per order: sold back in equal parts, each filled
    sells = report["orders"]
    assert len(sells) >= 3 and {o["side"] for o in sells} == {"SELL"}, sells
    left = Decimal(report["positions"][SYMBOL]) - sum(Decimal(o["qty"]) for o in sells)   # never more
    assert Decimal(report["positions"][SYMBOL]) > 0 and 0 <= left < _step(run["sim"]), report
    assert {o["status"] for o in sells} == {"FILLED"} and all(o["client_order_id"].startswith("lf-") for o in sells)
    assert report["residual"][SYMBOL]["state"] in ("flat", "within the lot size"), report["residual"]
    assert report["open_orders"] == [] and report["unknown_executions"] == []
    assert report["ended_at"] >= report["started_at"] and report["human"].startswith("OK")
    assert summary["orders"]["refused"] == 0 and summary["orders"]["unknown"] == 0, summary["orders"]
    assert "#### Flatten" in md and "lf-" in md


def test_the_canary_buys_then_sells_the_same_quantity_then_flattens(runs):
    run = runs["canary"]
    sim = run["sim"]
    summary, _ = _reports(run["reports"])
    log = _log(run)
    assert run["proc"].returncode == summary["run"]["exit_code"], log
    assert not summary["run"]["aborted"] and summary["ending"] == "completed", log
    assert "stops trading" not in run["proc"].stdout + run["proc"].stderr
    orders = sorted(sim.signed("GET", "/api/v3/allOrders", {"symbol": SYMBOL}).json(), key=lambda o: o["orderId"])
    assert [(o["side"], o["status"]) for o in orders] == [("BUY", "FILLED"), ("SELL", "FILLED")], orders
    buy, sell = orders
    assert Decimal(buy["executedQty"]) == Decimal(sell["executedQty"]) > 0
    assert buy["updateTime"] <= sell["time"]
    [report] = summary["flatten"]
    assert report["by"] == "at_end" and report["ok"] and report["orders"] == [], report
    assert report["started_at"] * 1000 >= sell["updateTime"] - 5      # the flatten came after the sell
    assert report["residual"][SYMBOL]["state"] == "flat", report
    assert time.time() >= report["ended_at"]
