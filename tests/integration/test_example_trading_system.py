"""The example trading system (``examples/trading_system``, run by
``examples/locustfile_trading_system.py`` with ``examples/profiles/trading-system.yaml``) under
``letrade-perf run`` against a real simulator process: its orders reach the ledger and the
verdict, its pipeline and reconciliation are judged, an oversized order is refused before it
leaves, Ctrl-C cancels what it left resting, and at a low weight budget it is paced without a 429."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from test_dropin import stats
from test_run import ROOT, run_cli, run_dir

LOCUSTFILE = os.path.join(ROOT, "examples", "locustfile_trading_system.py")
PROFILE = os.path.join(ROOT, "examples", "profiles", "trading-system.yaml")
PIPELINE = "signal→order→fill"
RECONCILIATION = "order+balance"
NOISE = ("Traceback", "Unclosed client session", "was never awaited", "Cannot run the event loop")


def _profile(tmp_path, name: str, **changes) -> str:
    """The example profile with top-level keys replaced."""
    with open(PROFILE, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    doc.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return str(path)


def _stage(duration: str, users: int) -> list[dict]:
    return [{"duration": duration, "users": users, "spawn_rate": users}]


def _summary(reports: str) -> dict:
    with open(os.path.join(run_dir(reports), "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _engines(out) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def _open_orders(sim) -> list:
    r = sim.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
    assert r.status == 200, r.body
    return r.json()


def _sim_orders(sim) -> list:
    r = sim.signed("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT", "limit": 1000})
    assert r.status == 200, r.body
    return r.json()


@pytest.mark.parametrize("users", [pytest.param(1, marks=pytest.mark.slow), 10], ids=["1-user", "10-users"])
def test_trading_system_trades_reconciles_and_passes_the_gate(sim_factory, tmp_path, users):
    sim = sim_factory()
    reports, out = str(tmp_path / "reports"), tmp_path / "engines.jsonl"
    # a step every 2 s: ten engines (an account read of weight 20 each step) stay within the
    # budget's sustained rate (4 800 a minute, 80 a second); at 1 s they ask ~87 a second, the
    # smooth pacer holds them back and the engines' own pipeline clocks count the waits
    p = run_cli("run", "-f", LOCUSTFILE, "--profile", _profile(tmp_path, "ts", stages=_stage("10s", users)),
                "--host", sim.base_url, "--reports", reports, env={"TS_OUT": str(out), "TS_WAIT": "2"},
                timeout=150)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for noise in NOISE:
        assert noise not in p.stderr, p.stderr[-3000:]

    engines = _engines(out)
    assert len(engines) == users, engines
    placed = sum(e["placed"] for e in engines)
    # the forced signals make every engine trade (every 3rd / 4th step of a 2 s step: twice in 10 s)
    assert all(e["placed"] >= 1 for e in engines) and placed >= 2 * users, engines
    assert all(e["mismatches"] == 0 and e["errors"] == 0 and e["order_refused"] == 0 for e in engines), engines
    assert sum(e["reconciled"] for e in engines) == sum(e["filled"] for e in engines) == placed

    summary = _summary(reports)
    orders = summary["orders"]
    # an engine stopped mid-trade finishes that trade first (shielded): nothing is left pending
    assert orders["sent"] == orders["placed"] == orders["filled"] == placed, (orders, engines)
    assert orders["refused"] == orders["rejected"] == orders["unknown"] == 0, orders
    assert sim.stats()["orders"]["by_status"] == {"FILLED": placed}     # the exchange saw exactly those

    judged = {c["label"]: c for c in summary["criteria"]}
    for label, samples in (("order_success rate>99.5%", placed), ("reconciliation rate==100%", placed),
                           ("pipeline avg<500", placed)):
        assert judged[label]["samples"] == samples and judged[label]["verdict"] == "pass", judged[label]
    assert summary["verdict"] == "pass"

    rows = stats(os.path.join(run_dir(reports), "locust_stats.csv"))
    assert rows[("ccxt", "POST /api/v3/order")] == placed
    assert rows[("pipeline", PIPELINE)] == rows[("reconciliation", RECONCILIATION)] == placed
    assert rows[("ccxt", "GET /api/v3/exchangeInfo")] == 1             # markets once per process
    assert _open_orders(sim) == []


def test_oversized_order_is_refused_by_the_harness_and_the_engine_carries_on(sim_factory, tmp_path):
    sim = sim_factory()
    users = 2
    reports, out = str(tmp_path / "reports"), tmp_path / "engines.jsonl"
    # without a tolerance the refused orders make the run INCOMPLETE (orders the system wanted, not sent)
    p = run_cli("run", "-f", LOCUSTFILE, "--profile", _profile(tmp_path, "ts", stages=_stage("10s", users),
                                                               tolerate={"safety_refusals": users}),
                "--host", sim.base_url, "--reports", reports, env={"TS_OUT": str(out), "TS_OVERSIZED": "1"},
                timeout=150)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for noise in NOISE:
        assert noise not in p.stderr, p.stderr[-3000:]
    engines = _engines(out)
    # each engine's first order (30 USDT: within its own capital limit of 50, over safety's 20)
    assert [e["order_refused"] for e in engines] == [1] * users, engines
    assert all(e["placed"] >= 2 and e["errors"] == 0 for e in engines), engines   # and it kept trading
    placed = sum(e["placed"] for e in engines)

    summary = _summary(reports)
    orders = summary["orders"]
    assert orders["refused"] == users and orders["sent"] == orders["placed"] == placed, orders
    [refusals] = summary["achieved"]["shortfalls"]
    assert refusals["kind"] == "safety_refusals" and refusals["tolerated"], refusals
    # ground truth: the simulator saw exactly the orders sent, none of them over the cap
    seen = _sim_orders(sim)
    assert sum(sim.stats()["orders"]["by_status"].values()) == len(seen) == orders["sent"]
    assert max(float(o["cummulativeQuoteQty"]) for o in seen) <= 20.0, seen


def test_ctrl_c_cancels_the_resting_orders_through_the_kill_switch(sim_factory, tmp_path):
    sim = sim_factory()
    reports, out = tmp_path / "reports", tmp_path / "engines.jsonl"
    profile = _profile(tmp_path, "ts-long", stages=_stage("60s", 2))
    env = dict(os.environ, PYTHONPATH=ROOT, TS_MODE="resting", TS_WAIT="0.5", TS_OUT=str(out))
    with open(tmp_path / "stdout.txt", "wb") as so, open(tmp_path / "stderr.txt", "wb") as se:
        proc = subprocess.Popen([sys.executable, "-m", "letrade_perf", "run", "-f", LOCUSTFILE, "--profile", profile,
                                 "--host", sim.base_url, "--reports", str(reports)],
                                cwd=ROOT, env=env, stdout=so, stderr=se)
        try:
            deadline = time.monotonic() + 40
            resting = []
            while time.monotonic() < deadline and proc.poll() is None:
                resting = _open_orders(sim)
                if len(resting) >= 2:
                    break
                time.sleep(0.3)
            assert len(resting) >= 2, (resting, (tmp_path / "stderr.txt").read_text()[-3000:])
            os.kill(proc.pid, signal.SIGINT)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 105, stderr[-3000:]        # Ctrl-C: an operator's stop (the kill switch runs)
    assert "Traceback" not in stderr, stderr[-3000:]
    assert _open_orders(sim) == []            # the kill switch cancelled everything left resting
    assert os.path.exists(os.path.join(run_dir(str(reports)), "summary.json"))
    engines = _engines(out)
    left = sum(e["resting"] for e in engines)
    assert left >= 2 and all(e["cancelled"] == 0 for e in engines), engines   # the engine did not cancel them
    orders = _summary(str(reports))["orders"]
    assert orders["placed"] == orders["canceled"] == left, orders
    truth = sim.stats()["orders"]           # by_status: as answered when placed; events: what happened since
    assert truth["by_status"] == {"NEW": left} and truth["events"].get("CANCELED") == left, truth


LIMIT, FRACTION = 600, 0.95


def test_low_weight_budget_is_used_without_a_429(sim_factory, tmp_path):
    """10 engines reading market data as fast as they may (observe mode: signals, no orders)
    against a 600-weight/minute simulator.

    Binance (and the simulator, and the pacer) count weight in *fixed* server-minute buckets, so
    the budget available over a run is ``N × weight_fraction × (server-minute buckets the run
    touches)``, not ``N × fraction × run-minutes`` (a sliding rate): a bucket's whole budget may
    be used in its first second (the profile asks for ``smoothing: window``, the fixed windows
    alone; the default token bucket would spread it over the minute). The simulator's clock is
    skewed so the run (start-up, a 20 s stage, shutdown) lies inside one bucket: budget = 600 ×
    0.95 × 1 = 570, and the weight the simulator charged (its own accounting) must be ≥ 90 % of
    it, with no 429.
    """
    sim = sim_factory({"limits": {"request_weight_per_minute": LIMIT}})
    local = int(time.time() * 1000)
    assert sim.control("PUT", "clock", {"skew_ms": (1_000 - local % 60_000) % 60_000}).status == 200
    start_ms = sim.control("GET", "limits").json()["now_ms"]           # server time: ~1 s into a minute
    reports = str(tmp_path / "reports")
    profile = _profile(tmp_path, "ts-paced", stages=_stage("20s", 10),
                       pacing={"weight_fraction": FRACTION, "orders_fraction": 0.8, "smoothing": "window"},
                       criteria={"http_429": ["count==0"],
                                 "http_418": [{"threshold": "count==0", "abort_on_fail": True}],
                                 # the users wait for the next bucket most of the run by design, and
                                 # uptime counts those seconds as wanted and down
                                 "uptime": ["rate<50%"]})
    p = run_cli("run", "-f", LOCUSTFILE, "--profile", profile, "--host", sim.base_url, "--reports", reports,
                env={"TS_MODE": "observe", "TS_WAIT": "0.05"}, timeout=150)
    end = sim.control("GET", "limits").json()
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for noise in NOISE:
        assert noise not in p.stderr, p.stderr[-3000:]
    assert start_ms // 60_000 == end["now_ms"] // 60_000, "the run left its server minute: the skew is off"

    truth = sim.stats()
    budget = int(LIMIT * FRACTION)                                   # 570: one bucket
    used = truth["requests"]["weight_total"]                         # everything the simulator charged
    assert sum(ip["used_weight_1m"] for ip in end["ips"].values()) == used     # ... all in this bucket
    run_s = (end["now_ms"] - start_ms) / 1000
    print(f"weight used {used} of budget {budget} ({used / budget:.1%}) in one server minute; "
          f"sliding-rate view N×minutes×fraction = {LIMIT * run_s / 60 * FRACTION:.0f} over {run_s:.1f} s")
    assert truth["rate_limits"]["sent_429"] == truth["rate_limits"]["sent_418"] == 0
    summary = _summary(reports)
    pacing = summary["pacing"]
    assert pacing["r429"] == 0 and pacing["weight_budget"] == budget, pacing
    # weight-bound: the pacer's bucket is full (no klines call, weight 2, fits any more), so the
    # users spent the rest of the stage waiting — counted while it happened, though the run's
    # end cut those waits short
    assert pacing["weight_used"] >= budget - 1, pacing
    assert pacing["waits"] >= 1 and pacing["wait_s_total"] > 0, pacing
    assert used >= 0.9 * budget, (used, budget)
    assert used <= budget, (used, budget)
    judged = {c["label"]: c for c in summary["criteria"]}
    assert judged["http_429 count==0"]["verdict"] == "pass"
    assert judged["uptime rate<50%"]["verdict"] == "pass", judged["uptime rate<50%"]   # blocked seconds are down
    rows = stats(os.path.join(run_dir(reports), "locust_stats.csv"))
    assert rows[("ccxt", "GET /api/v3/klines")] > 100 and ("ccxt", "POST /api/v3/order") not in rows
