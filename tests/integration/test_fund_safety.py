"""Fund safety and PnL in a real run: a pipeline user trades against a real simulator process for
10 s while the test deposits USDT into the account behind the run's back (the simulator's control
API). The run's own fills and fees explain every other balance change exactly; the deposit is the
one unexplained delta, listed with its asset and amount, and ``fund_safety`` fails the run (exit
code 99). One run; every test reads its artifacts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal as D

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from letrade_perf.sim.config import DEMO_API_KEY  # noqa: E402
from simproc import start_sim  # noqa: E402
from test_run import ROOT  # noqa: E402

DEPOSIT = "1.23456789"
PROFILE = {
    "description": "fund safety test", "env": "sim", "symbols": ["BTCUSDT"],
    "stages": [{"duration": "10s", "users": 1, "spawn_rate": 1}],
    "users": {"pipeline": {"fixed_count": 1, "wait_min_s": 0.1, "wait_max_s": 0.2, "notional": 12,
                           "strategy": {"force_every_s": "0.5s"}}},
    "gate": {"eval_every_s": "1s"},
    "funds": {"snapshot_every_s": "5s"},
}


def _wait_for_text(path, text: str, proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {text!r}")
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                if text in fh.read():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {text!r} in the run's output")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The run, with a deposit made 2 s after the start snapshot: (exit code, output, summary,
    report directory, the simulator's own balances after the run)."""
    tmp = tmp_path_factory.mktemp("funds")
    profile = tmp / "funds.yaml"
    profile.write_text(yaml.safe_dump(PROFILE))
    sim = start_sim()
    out_path = tmp / "out.txt"
    proc = None
    try:
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(out_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "letrade_perf", "run", "--profile", str(profile),
                                     "--host", sim.base_url, "--reports", str(tmp / "reports")],
                                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for_text(out_path, "funds: start balances taken", proc, 60)
        time.sleep(2.0)
        r = sim.request("POST", "/_sim/deposit", body=json.dumps({"api_key": DEMO_API_KEY, "asset": "USDT",
                                                                   "amount": DEPOSIT}),
                        headers={"Content-Type": "application/json"})
        assert r.status == 200, r.body
        code = proc.wait(120)
        acct = sim.signed("GET", "/api/v3/account").json()
        balances = {b["asset"]: D(b["free"]) + D(b["locked"]) for b in acct["balances"]}
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        sim.stop()
    output = out_path.read_text(errors="replace")
    [run_dir] = [os.path.join(tmp / "reports", d) for d in os.listdir(tmp / "reports")]
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    return code, output, summary, run_dir, balances


def test_the_deposit_fails_fund_safety_with_exit_code_99(run):
    code, output, summary, _d, _b = run
    assert code == 99, output[-4000:]
    assert summary["run"]["exit_code"] == 99 and summary["verdict"] == "fail" and summary["ending"] == "completed"
    (fs,) = [c for c in summary["criteria"] if c["metric"] == "fund_safety"]
    assert fs["verdict"] == "fail" and fs["source"] == "default" and 0 < fs["value"] < 1
    assert f"unexplained: USDT {DEPOSIT}" in fs["reason"]
    assert "USDT changed by" in output and f"unexplained {DEPOSIT}" in output
    # nothing else failed: the deposit is why the run fails
    assert [c["label"] for c in summary["criteria"] if c["gate"] == "fail"] == [fs["label"]]


def test_the_unexplained_delta_is_the_deposit_and_everything_else_is_explained(run):
    _c, _o, summary, _d, sim_balances = run
    money = summary["money"]
    fs = money["fund_safety"]
    assert [(u["asset"], D(u["unexplained"])) for u in fs["unexplained"]] == [("USDT", D(DEPOSIT))]
    for c in fs["checks"]:
        delta = D(c["end"]) - D(c["start"])
        assert D(c["delta"]) == delta
        expected = D(DEPOSIT) if c["asset"] == "USDT" else D(0)
        assert delta - D(c["explained"]) == expected, c
    # the run traded: BTC and USDT moved, and the end balances are the exchange's own
    assert D(money["balances"]["BTC"]["end"]) != D(money["balances"]["BTC"]["start"])
    assert {a: D(b["end"]) for a, b in money["balances"].items()} == \
        {a: v for a, v in sim_balances.items() if a in money["balances"]}
    assert fs["assets"] - fs["safe"] == 1 and money["snapshots"] >= 3


def test_pnl_per_strategy_fees_slippage_and_weights(run):
    _c, _o, summary, _d, _b = run
    money = summary["money"]
    run_pnl, pipeline = money["pnl"]["run"], money["pnl"]["by_strategy"]["pipeline"]
    assert pipeline["fills"] > 0 and D(pipeline["fees"]) > 0 and D(pipeline["bought"]) > 0
    assert D(run_pnl["fees"]) == D(pipeline["fees"]) and run_pnl["return"] is not None
    # realised PnL = trading result − fees: never better than the fees allow on a market-order round trip
    assert D(run_pnl["realised_pnl"]) <= D(run_pnl["bought"])
    assert money["valuation_asset"] == "USDT" and set(money["weights"]) == {"BTC", "USDT"}
    assert sum(money["weights"].values()) == pytest.approx(1.0, abs=1e-5)
    (w,) = [c for c in summary["criteria"] if c["metric"] == "fund_safety"]
    assert w["samples"] == money["fund_safety"]["assets"]


def test_the_reports_show_the_fund_safety_and_pnl_section(run):
    _c, _o, _s, run_dir, _b = run
    with open(os.path.join(run_dir, "summary.md"), encoding="utf-8") as fh:
        md = fh.read()
    section = md[md.index("#### Fund safety and PnL"):]
    assert "Unexplained balance changes" in section and DEPOSIT in section and "| pipeline |" in section
    with open(os.path.join(run_dir, "summary.html"), encoding="utf-8") as fh:
        html = fh.read()
    assert "<h2>Fund safety and PnL</h2>" in html and DEPOSIT in html
    with open(os.path.join(run_dir, "junit.xml"), encoding="utf-8") as fh:
        assert f"unexplained: USDT {DEPOSIT}" in fh.read()


def test_the_html_report_renders_offline_with_data_in_every_chart(run):
    """summary.html of this real run in headless Chromium from a file:// URL: it renders, the
    console has no error, nothing is fetched, and every chart of a normal run has data."""
    from selenium.webdriver.common.by import By

    from browser import chromium, require_chromium
    from chartcheck import KINDS, assert_every_chart_has_data, chart_state, kind, severe

    require_chromium()
    _c, _o, summary, run_dir, _b = run
    with chromium() as driver:
        driver.get("file://" + os.path.join(run_dir, "summary.html"))
        state = chart_state(driver, want=len(KINDS))
        banner = driver.find_element(By.CLASS_NAME, "verdict").text
        errors = severe(driver)
    assert banner.startswith("FAIL") and errors == [], (banner, errors)
    assert state["echarts"] and state["resources"] == [], state     # ECharts inlined: no request at all
    assert_every_chart_has_data(state)
    drawn = {kind(c["id"]) for c in state["charts"]}
    assert drawn == set(KINDS) if summary.get("generator") else drawn == set(KINDS) - {"generator"}, state
