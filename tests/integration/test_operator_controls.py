"""Operator controls and the audit trail in one real run: ``letrade-perf run --web --operator``
with Locust's web UI on a free loopback port (``--autostart``), the embedded simulator, a pipeline
user and a REST market-data user.

During the run: ``POST /letrade/orders/block`` → new orders stop within one second (the audit
trail's timestamps) while market data goes on (Locust's own stats); ``POST /letrade/orders/resume``
→ orders again; SIGUSR1 / SIGUSR2 to ``letrade-perf run`` (forwarded to Locust) do the same; a
criterion with ``on_fail: block_orders`` (held off by ``delay_abort_eval``) blocks at the end; the
positions and state routes answer JSON. After it: the audit trail holds every action in order with
the run id and the operator, and the reports the block history, the time blocked and the verdict.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import chromium, chromium_missing  # noqa: E402
from chartcheck import assert_every_chart_has_data, chart_state, kind  # noqa: E402
from test_run import ROOT, run_dir  # noqa: E402

OPERATOR = "ops-tester"
STAGE_S = 22
CRITERION_AFTER_S = 19


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _audit(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.endswith("\n")]
    except FileNotFoundError:
        return []


def _sent_after(path: str, ts_ms: int) -> list[dict]:
    return [x for x in _audit(path) if x["action"] == "sent" and x["source"] == "pipeline" and x["ts_ms"] > ts_ms]


def _line(path: str, action: str, by: str | None = None) -> dict | None:
    return next((x for x in reversed(_audit(path)) if x["action"] == action and (by is None or x.get("by") == by)),
                None)


def _market_requests(base: str) -> int:
    _, stats = _request(base + "/stats/requests")
    return sum(int(r.get("num_requests") or 0) for r in stats.get("stats") or []
               if r.get("method") == "GET" and str(r.get("name", "")).startswith("GET /api/v3/"))


def _resume_in_browser(base: str, profile_dir: str) -> dict:
    """Open ``/letrade/operations`` in headless Chromium while orders are blocked, read its state
    line and positions table, click *Resume*, and read the page's answer and the console."""
    from selenium.webdriver.common.by import By

    with chromium(profile_dir) as driver:
        driver.get(base + "/letrade/operations")
        deadline = time.monotonic() + 15
        state = rows = ""
        while time.monotonic() < deadline:
            state = driver.find_element(By.ID, "state").text
            rows = driver.find_element(By.ID, "positions").text
            if "BLOCKED" in state and rows:
                break
            time.sleep(0.2)
        buttons = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#letrade-ops-bar button")]
        driver.find_element(By.ID, "letrade-resume").click()
        msg = ""
        while time.monotonic() < deadline and not msg:
            msg = driver.find_element(By.ID, "letrade-ops-msg").text
            time.sleep(0.1)
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        # the live Charts page in the same browser (a second or two): drawn from the running gate
        driver.get(base + "/letrade/charts")
        charts = chart_state(driver, want=5)
        charts["console_errors"] = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    return {"state": state, "rows": rows, "buttons": buttons, "message": msg, "console_errors": errors,
            "resumed": msg == "new orders resumed", "charts": charts}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ops")
    doc = {"description": "operator controls", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": f"{STAGE_S}s", "users": 2, "spawn_rate": 2}],
           "users": {"rest_market": {"weight": 1, "wait_min_s": 0.1, "wait_max_s": 0.2},
                     "pipeline": {"fixed_count": 1, "wait_min_s": 0.05, "wait_max_s": 0.1, "notional": 12,
                                  "strategy": {"force_every_s": "0.3s"}}},
           "criteria": {"request": ["avg<2000"],
                        "pipeline": [{"threshold": "count<1", "on_fail": "block_orders",
                                      "delay_abort_eval": f"{CRITERION_AFTER_S}s"}]},
           "gate": {"eval_every_s": "1s"}}
    prof = tmp / "ops.yaml"
    prof.write_text(yaml.safe_dump(doc))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = open(tmp / "out.txt", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "letrade_perf", "run", "--reports", str(tmp / "reports"),
                             "--profile", str(prof), "--operator", OPERATOR, "--web", "--",
                             "--web-port", str(port), "--autostart", "--autoquit", "1"],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    seen: dict = {"base": base}
    try:
        audit = _wait_for(lambda: os.path.isdir(tmp / "reports") and os.listdir(tmp / "reports")
                          and os.path.join(run_dir(str(tmp / "reports")), "audit.jsonl"), 30, "the run directory")
        seen["audit"] = audit
        _wait_for(lambda: len(_sent_after(audit, 0)) >= 2, 40, "the pipeline's first orders")
        # the web UI's block (over HTTP, as the button does)
        status, state = _request(base + "/letrade/orders/block", "POST", {"reason": "integration block"})
        seen["block"] = (status, state)
        market0 = _market_requests(base)
        time.sleep(2.5)           # beyond the 2 s Locust caches /stats/requests for
        seen["market"] = (market0, _market_requests(base))
        seen["state_blocked"] = _request(base + "/letrade/orders/state")
        if chromium_missing() is None:     # the Operations page's Resume button, in a real browser
            seen["browser"] = _resume_in_browser(base, str(tmp / "chromium-profile"))
            seen["resume"] = (200, {"changed": seen["browser"]["resumed"],
                                    "blocked": _request(base + "/letrade/orders/state")[1]["blocked"]})
        else:
            seen["resume"] = _request(base + "/letrade/orders/resume", "POST")
        resumed = _line(audit, "orders_resumed")
        _wait_for(lambda: _sent_after(audit, resumed["ts_ms"]), 5, "an order after the resume")
        # the signals, through letrade-perf run
        os.kill(proc.pid, signal.SIGUSR1)
        _wait_for(lambda: _line(audit, "orders_blocked", "signal"), 5, "the SIGUSR1 block")
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGUSR2)
        sig_resumed = _wait_for(lambda: _line(audit, "orders_resumed", "signal"), 5, "the SIGUSR2 resume")
        _wait_for(lambda: _sent_after(audit, sig_resumed["ts_ms"]), 5, "an order after SIGUSR2")
        seen["positions"] = _request(base + "/letrade/positions")
        seen["criterion_block"] = _wait_for(lambda: _line(audit, "orders_blocked", "criterion"), 20,
                                            "the on_fail: block_orders criterion")
        seen["state_end"] = _request(base + "/letrade/orders/state")
        seen["code"] = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        out.close()
    seen["out"] = (tmp / "out.txt").read_text(errors="replace")
    d = run_dir(str(tmp / "reports"))
    with open(os.path.join(d, "summary.json"), encoding="utf-8") as fh:
        seen["summary"] = json.load(fh)
    with open(os.path.join(d, "summary.md"), encoding="utf-8") as fh:
        seen["markdown"] = fh.read()
    return seen


def _blocks(audit: str) -> list[tuple[dict, dict | None]]:
    lines = _audit(audit)
    out, start = [], None
    for x in lines:
        if x["action"] == "orders_blocked":
            start = x
        elif x["action"] == "orders_resumed" and start is not None:
            out.append((start, x))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def test_orders_stop_within_one_second_of_each_block_and_resume_after(run):
    assert run["block"][0] == 200 and run["block"][1]["blocked"] and run["block"][1]["changed"], run["block"]
    audit = run["audit"]
    blocks = _blocks(audit)
    assert [b.get("by") for b, _ in blocks] == ["http 127.0.0.1", "signal", "criterion"], blocks
    sent = [x for x in _audit(audit) if x["action"] == "sent" and x["source"] == "pipeline"]
    for b, r in blocks:
        end = r["ts_ms"] if r is not None else float("inf")
        late = [x for x in sent if b["ts_ms"] + 1000 < x["ts_ms"] < end]
        assert not late, (b, late)
        if r is not None:           # and orders again after the resume
            assert any(x["ts_ms"] > r["ts_ms"] for x in sent), (r, sent[-3:])
    blocked = [x for x in _audit(audit) if x["action"] == "blocked"]
    assert blocked and all(x["source"] == "pipeline" and x["client_order_id"] for x in blocked)


def test_market_data_goes_on_while_orders_are_blocked_and_the_state_route_says_so(run):
    before, after = run["market"]
    assert after > before + 3, run["market"]
    status, state = run["state_blocked"]
    assert status == 200 and state["blocked"] and state["reason"] == "integration block", state
    assert state["flatten_available"] and state["positions_available"]
    status, resumed = run["resume"]
    assert status == 200 and resumed["changed"] and not resumed["blocked"]
    status, end = run["state_end"]
    assert status == 200 and end["blocked"] and end["by"] == "criterion"


def test_the_positions_route_answers_json(run):
    status, body = run["positions"]     # a local run with credentials: the snapshots are taken
    assert status == 200 and {"BTC", "USDT"} <= set(body["assets"]), body
    usdt = body["assets"]["USDT"]
    assert {"start", "now", "delta", "unexplained", "open_orders"} <= set(usdt), usdt


def test_the_audit_trail_has_each_action_in_order_with_the_run_id_and_operator(run):
    lines = _audit(run["audit"])
    summary = run["summary"]
    run_id = summary["run"]["run_id"]
    assert all(x["run_id"] == run_id and x["operator"] == OPERATOR and x["environment"] == "sim"
               and x["profile"] == "ops" for x in lines)
    assert [x["ts_ms"] for x in lines] == sorted(x["ts_ms"] for x in lines)
    actions = {x["action"] for x in lines}
    assert {"decided", "sent", "acknowledged", "filled", "blocked", "orders_blocked", "orders_resumed"} <= actions
    # per order: decided → sent → acknowledged → filled
    by_order: dict[str, list[str]] = {}
    for x in lines:
        if x["client_order_id"] and x["action"] in ("decided", "sent", "acknowledged", "filled"):
            by_order.setdefault(x["client_order_id"], []).append(x["action"])
    done = [a for a in by_order.values() if "filled" in a]
    assert done and all(a == ["decided", "sent", "acknowledged", "filled"] for a in done), by_order
    assert summary["run"]["audit"] == run["audit"] and summary["run"]["operator"] == OPERATOR


def test_the_verdict_stays_honest_and_the_reports_carry_the_block_history(run):
    summary = run["summary"]
    assert run["code"] == 99 == summary["run"]["exit_code"], run["out"][-3000:]     # the criterion failed
    hist = summary["orders_blocked"]["history"]
    assert [h["by"] for h in hist] == ["http 127.0.0.1", "signal", "criterion"]
    assert hist[0]["reason"] == "integration block" and hist[0]["duration_s"] >= 2.5
    assert summary["orders_blocked"]["blocked_s"] == pytest.approx(summary["achieved"]["achieved"]["orders_blocked_s"])
    assert summary["achieved"]["achieved"]["orders_blocked_s"] >= 4.0
    assert any(s["kind"] == "orders_blocked" and not s["tolerated"] for s in summary["achieved"]["shortfalls"])
    assert summary["orders"]["blocked"] >= 1
    assert "New orders blocked" in run["markdown"] and "by criterion" in run["markdown"]
    assert "Traceback" not in run["out"]


def test_the_operations_page_shows_the_block_and_its_resume_button_works_in_a_browser(run):
    seen = run.get("browser")
    if seen is None:
        pytest.skip(chromium_missing() or "no browser run")
    assert seen["buttons"] == ["Block new orders", "Resume", "Flatten"], seen
    assert "BLOCKED" in seen["state"] and "integration block" in seen["state"], seen
    assert seen["rows"].startswith("Asset"), seen        # the live positions table rendered
    assert seen["message"] == "new orders resumed", seen
    assert seen["console_errors"] == [], seen
    resumed = _line(run["audit"], "orders_resumed", "web UI")
    assert resumed is not None and resumed["operator"] == OPERATOR


def test_the_live_charts_page_draws_the_running_gate_in_a_browser(run):
    seen = run.get("browser")
    if seen is None:
        pytest.skip(chromium_missing() or "no browser run")
    charts = seen["charts"]
    assert charts["console_errors"] == [] and charts["echarts"], charts
    assert_every_chart_has_data(charts)
    assert {"latency", "throughput", "weight", "users", "orders"} <= {kind(c["id"]) for c in charts["charts"]}, charts
