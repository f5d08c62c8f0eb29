"""The Locust users end to end: real ``locust`` subprocesses against a real simulator process.

Every check compares the harness's own account (Locust CSV stats, the run's ``orders.json``)
with the simulator's ground truth (``GET /_sim/stats``) — never with wall-clock expectations.
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILES = os.path.join(REPO, "tests", "integration", "profiles")
LOCUSTFILE = os.path.join(REPO, "locustfiles", "binance.py")
PROBE = os.path.join(REPO, "tests", "integration", "event_probe.py")
TEMPLATE = re.compile(r"^(GET|POST|PUT|DELETE) /api/v3/[A-Za-z0-9/]+$")
ORDER_FAULTS = [
    {"kind": "unknown_status", "endpoints": ["POST /api/v3/order"], "every": 3, "execute": True},
    {"kind": "http_5xx", "endpoints": ["POST /api/v3/order"], "every": 4, "status": 503},
]


class Run:
    def __init__(self, code: int, out: str, stats: list[dict], orders: dict):
        self.code, self.out, self.stats, self.orders = code, out, stats, orders

    def rows(self, type_: str | None = None) -> list[dict]:
        return [r for r in self.stats if r["Name"] != "Aggregated" and (type_ is None or r["Type"] == type_)]

    def row(self, type_: str, name: str) -> dict | None:
        return next((r for r in self.rows(type_) if r["Name"] == name), None)

    def count(self, type_: str, name: str | None = None, failures: bool = False) -> int:
        key = "Failure Count" if failures else "Request Count"
        return sum(int(r[key]) for r in self.rows(type_) if name is None or r["Name"] == name)


def run_locust(tmp_path, profile: str, host: str, seconds: int = 15, extra: list[str] | None = None,
               during=None, timeout: float = 90.0, probe: bool = False) -> Run:
    """``locust -f locustfiles/binance.py --headless --profile P --host H -t Ns --csv ...``;
    with ``probe`` the event probe locustfile records the custom events (``Run.events``)."""
    reports = tmp_path / "reports"
    prefix = str(tmp_path / "locust")
    files = LOCUSTFILE + ("," + PROBE if probe else "")
    args = [sys.executable, "-m", "locust", "-f", files, "--headless", "--profile",
            os.path.join(PROFILES, profile), "--host", host, "-t", f"{seconds}s", "--csv", prefix,
            "--only-summary", "--letrade-reports", str(reports), "--letrade-run-id", f"test-{profile}"]
    args += extra or []
    log_path = tmp_path / "locust.log"
    env = dict(os.environ, PYTHONPATH=REPO, LETRADE_EVENT_PROBE=str(tmp_path / "events.json"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    try:
        if during is not None:
            during(proc)
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    out = log_path.read_text(errors="replace")
    stats_path = prefix + "_stats.csv"
    stats = list(csv.DictReader(open(stats_path, newline=""))) if os.path.exists(stats_path) else []
    orders_path = reports / "orders.json"
    orders = json.loads(orders_path.read_text()) if orders_path.exists() else {}
    run = Run(code, out, stats, orders)
    events_path = tmp_path / "events.json"
    run.events = json.loads(events_path.read_text()) if events_path.exists() else {}
    return run


def order_truth(sim) -> dict:
    s = sim.stats()
    by_status = s["orders"]["by_status"]
    return {"placed": sum(by_status.values()), "by_status": by_status, "faults": s["faults"], "stats": s}


def assert_orders_match(run: Run, sim, *, expect_unknown: bool = False) -> dict:
    truth = order_truth(sim)
    counts = run.orders["orders"]
    assert counts["placed"] == truth["placed"], (counts, truth["by_status"])
    assert counts["filled"] == truth["by_status"].get("FILLED", 0), (counts, truth["by_status"])
    injected = truth["faults"].get("unknown_status", 0) + truth["faults"].get("http_5xx", 0)
    assert counts["unknown"] == injected, (counts, truth["faults"])
    assert counts["unknown_resolved"] == injected, (counts, truth["faults"])
    if expect_unknown:
        assert truth["faults"].get("unknown_status", 0) > 0 and truth["faults"].get("http_5xx", 0) > 0
    # every order ended in exactly one outcome, none left open
    assert run.orders["open_orders"] == []
    outcomes = sum(counts[k] for k in ("filled", "expired", "canceled", "rejected", "not_executed"))
    assert outcomes == counts["sent"], counts
    # the simulator agrees: no order of the run is still open
    assert sim.signed("GET", "/api/v3/openOrders").json() == []
    # zero reconciliation discrepancies, and reconciliation actually ran
    assert run.count("reconciliation") > 0
    assert run.count("reconciliation", failures=True) == 0, [r for r in run.rows("reconciliation")]
    return truth


def test_all_user_kinds_match_ground_truth(sim_factory, tmp_path):
    # server pings every second, dropped after 3 s without a pong: the users must answer them
    sim = sim_factory({"ws": {"ping_interval_s": 1, "pong_timeout_s": 3}})
    run = run_locust(tmp_path, "users.yaml", sim.base_url, seconds=15, probe=True)
    assert run.code == 0, run.out[-4000:]
    ws_truth = sim.stats()["ws"]
    # every connection ended by our own close at the end — none dropped for a missing pong
    assert set(ws_truth["disconnects"]) <= {"client"}, ws_truth
    assert ws_truth["disconnects"].get("client", 0) == sum(ws_truth["connections"].values()), ws_truth
    # the custom events fired with their documented fields
    ev = run.events["events"]
    expected_fields = {
        "letrade_ws_lag": ["event_time", "lag_ms", "received_at", "stream", "uncertainty_ms"],
        "letrade_slippage": ["avg_price", "bps", "client_order_id", "decision_price", "order_via", "side", "symbol"],
        "letrade_fee": ["amount", "asset", "bps", "client_order_id", "quote_value", "side", "symbol"],
        "letrade_order": ["client_order_id", "outcome", "side", "source", "symbol", "via"],
        "letrade_pacing": ["client_id", "role", "stats"],
    }
    for name, fields in expected_fields.items():
        assert ev[name]["count"] > 0 and ev[name]["fields"] == fields, (name, ev[name])
    assert ev["letrade_abort"]["count"] == 0
    assert run.events["order_outcomes"]["filled"] == run.orders["orders"]["filled"]
    # every user kind produced requests
    assert run.count("GET") > 0 and run.count("ccxt") > 0 and run.count("WS") > 0 and run.count("pipeline") > 0
    assert run.count("integrity") > 0 and run.count("integrity", failures=True) == 0
    assert run.count("POST", "POST /api/v3/order") > 0
    assert run.count("ccxt", "ccxt create_order") > 0 and run.count("ccxt", "ccxt cancel_order") > 0
    # request names are endpoint templates, never URLs
    rest = [r["Name"] for r in run.stats if r["Type"] in ("GET", "POST", "PUT", "DELETE")]
    assert rest and all(TEMPLATE.match(n) for n in rest), rest
    assert not any("?" in r["Name"] or "http" in r["Name"] for r in run.rows())
    # a lag row per event-time stream of every symbol (bookTicker has no E: no lag row)
    ws_names = {r["Name"] for r in run.rows("WS")}
    for sym in ("btcusdt", "ethusdt"):
        for stream in ("trade", "aggTrade", "depth@100ms", "kline_1m"):
            assert f"{sym}@{stream}" in ws_names, ws_names
        assert f"{sym}@bookTicker" not in ws_names
    # the harness saw exactly the messages the simulator sent on those streams (lag samples ≤ sent)
    sent = order_truth(sim)["stats"]["ws"]["messages_by_stream"]
    for name in ws_names:
        if "@" in name:
            assert 0 < run.count("WS", name) <= sent.get(name, 0), (name, sent)
    assert run.count("WSCONN", "connect") >= 1 and run.count("WSCONN", failures=True) == 0
    assert run.count("userdata", "fill_to_balance") > 0
    assert run.count("pipeline", failures=True) == 0, run.rows("pipeline")
    truth = assert_orders_match(run, sim)
    pipeline = run.orders["orders_by_source"]["pipeline"]
    # one measurement per filled order, but for at most one order per pipeline user (3) cut by the stop
    assert pipeline["filled"] - 3 <= run.count("pipeline") <= pipeline["filled"] and run.count("pipeline") > 0
    assert truth["by_status"].get("FILLED", 0) == pipeline["filled"]


def test_unknown_status_orders_are_resolved_exactly(sim_factory, tmp_path):
    sim = sim_factory({"faults": ORDER_FAULTS})
    run = run_locust(tmp_path, "users.yaml", sim.base_url, seconds=15, extra=["--exit-code-on-error", "0"])
    assert run.code == 0, run.out[-4000:]
    assert_orders_match(run, sim, expect_unknown=True)
    counts = run.orders["orders"]
    truth = order_truth(sim)
    # http_5xx answered before the engine: never executed; unknown_status executed anyway
    assert counts["not_executed"] == truth["faults"]["http_5xx"], counts
    # a pipeline measurement per order that filled, none for the never-executed ones — but the
    # end of the run kills each pipeline user wherever it is: at most one order per user (3) can
    # fill and be cut before its reconciliation is measured (smooth pacing makes those steps longer)
    pipeline = run.orders["orders_by_source"]["pipeline"]
    measured = run.count("pipeline") - run.count("pipeline", failures=True)
    assert pipeline["filled"] - 3 <= measured <= pipeline["filled"], (measured, pipeline)


def test_ws_api_orders_with_ioc_limits_and_stream_reconnects(sim_factory, tmp_path):
    # the simulator drops the stream connection twice: the user reconnects each time
    drop = {"kind": "ws_disconnect", "endpoints": ["ethusdt@trade"], "count": 2, "after_s": 4}
    sim = sim_factory({"faults": [drop]})
    run = run_locust(tmp_path, "ws_api.yaml", sim.base_url, seconds=12, extra=["--exit-code-on-error", "0"])
    assert run.code == 0, run.out[-4000:]
    ws_truth = sim.stats()["ws"]
    assert ws_truth["disconnects"].get("fault") == 2, ws_truth
    assert run.count("WSCONN", "disconnect") == run.count("WSCONN", "disconnect", failures=True) == 2
    assert run.count("WSCONN", "connect") == ws_truth["connections"]["streams"] == 3
    assert run.count("WSCONN", "connect", failures=True) == 0
    counters = run.orders["ws"]
    assert counters["attempts"] == 3 and counters["disconnects"] == 2 and 0 < counters["connected_ratio"] < 1
    assert run.count("WS", "ethusdt@trade") > 0 and run.count("WS", "btcusdt@trade") > 0
    assert run.count("WSAPI", "order.place") > 0 and run.count("POST") == 0
    assert run.row("pipeline", "ETHUSDT ws_api") is not None and run.row("pipeline", "BTCUSDT ws_api") is not None
    assert_orders_match(run, sim)
    ws_api = order_truth(sim)["stats"]["ws_api"]
    assert ws_api["order.place"]["count"] == run.count("WSAPI", "order.place")


def test_429_pauses_every_user(sim_factory, tmp_path):
    # From 8 s after the simulator started, every REST request is answered 429 for 1.5 s. The
    # first 429 pauses the whole process for Retry-After (3 s), so only requests already in
    # flight can meet the storm: at most one per REST-calling user (4), not hundreds.
    storm = {"kind": "storm_429", "endpoints": ["*"], "after_s": 8, "duration_s": 1.5, "retry_after_s": 3}
    sim = sim_factory({"faults": [storm]})
    # the profile's 20 s cut to 14 s is a run shorter than planned (INCOMPLETE): the stage is 14 s here
    import yaml
    with open(os.path.join(PROFILES, "rate_limits.yaml"), encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    doc["stages"] = [dict(doc["stages"][0], duration="14s")]
    (tmp_path / "rate_limits_14s.yaml").write_text(yaml.safe_dump(doc))
    run = run_locust(tmp_path, str(tmp_path / "rate_limits_14s.yaml"), sim.base_url, seconds=14,
                     extra=["--exit-code-on-error", "0"])
    assert run.code == 0, run.out[-4000:]
    truth = sim.stats()
    assert 1 <= truth["rate_limits"]["sent_429"] <= 4, truth["rate_limits"]
    assert run.orders["pacer"]["r429"] >= 1
    assert truth["requests"]["total"] > 200  # the users did run before and after the pause


def test_418_aborts_with_exit_3_and_leaves_no_open_orders(sim_factory, tmp_path):
    sim = sim_factory()

    def tighten(proc):
        # let users run (resting ccxt orders come and go), then shrink the budget under their feet
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if sim.stats()["orders"]["by_status"].get("NEW", 0) >= 5:
                break
            time.sleep(0.2)
        r = sim.control("PUT", "limits", {"request_weight_per_minute": 40, "violations_before_ban": 0,
                                          "ban_ladder_s": [3]})
        assert r.status == 200, r.body
        # Once the 418 is out, give the budget back (as if the window rolled over): the 3 s ban
        # then ends into a usable budget, so the kill switch's cancels get through whatever the
        # time within the minute (with 40/minute they could wait up to a whole minute).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sim.stats()["rate_limits"]["sent_418"] == 0:
            time.sleep(0.05)
        sim.control("PUT", "limits", {"request_weight_per_minute": 6000})

    run = run_locust(tmp_path, "rate_limits.yaml", sim.base_url, seconds=40, during=tighten)
    assert run.code == 3, run.out[-4000:]
    assert sim.stats()["rate_limits"]["sent_418"] >= 1
    assert "418" in (run.orders.get("aborted") or "")
    assert run.orders["open_orders"] == []
    sim.control("POST", "limits/reset")
    sim.control("PUT", "limits", {"request_weight_per_minute": 6000})
    assert sim.signed("GET", "/api/v3/openOrders").json() == []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_master_and_workers_share_one_ledger_view(sim_factory, tmp_path):
    """Master + 2 workers on loopback: the master's orders.json sums the workers' ledgers and
    equals the simulator's ground truth; pacing shares are split between the workers."""
    sim = sim_factory({"faults": ORDER_FAULTS[:1]})
    port = _free_port()
    profile = os.path.join(PROFILES, "users.yaml")
    common = ["-f", LOCUSTFILE, "--profile", profile, "--host", sim.base_url]
    env = dict(os.environ, PYTHONPATH=REPO)
    logs = [open(tmp_path / f"{n}.log", "wb") for n in ("master", "w1", "w2")]
    master = subprocess.Popen([sys.executable, "-m", "locust", *common, "--headless", "--master",
                               "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                               "--expect-workers", "2", "--expect-workers-max-wait", "30", "-t", "14s",
                               "--only-summary", "--csv", str(tmp_path / "locust"), "--exit-code-on-error", "0",
                               "--letrade-reports", str(tmp_path / "reports")],
                              stdout=logs[0], stderr=subprocess.STDOUT, cwd=REPO, env=env)
    workers = [subprocess.Popen([sys.executable, "-m", "locust", *common, "--worker", "--master-host", "127.0.0.1",
                                 "--master-port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
               for log in logs[1:]]
    procs = [master, *workers]
    try:
        code = master.wait(timeout=90)
        for w in workers:
            w.wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
        for log in logs:
            log.close()
    out = (tmp_path / "master.log").read_text(errors="replace")
    assert code == 0, out[-4000:]
    orders = json.loads((tmp_path / "reports" / "orders.json").read_text())
    assert orders["role"] == "master" and len(orders["workers"]) == 2
    stats = list(csv.DictReader(open(str(tmp_path / "locust") + "_stats.csv", newline="")))
    run = Run(code, out, stats, orders)
    assert_orders_match(run, sim)
    shares = [w["pacer"]["share"] for w in orders["workers"].values()]
    assert sum(shares) <= 1.0 + 1e-9, shares
