"""A user's own trading code under the harness: its tasks run and are measured, and an exception
it raises fails the verdict (``user_errors``)."""
from __future__ import annotations

import json
import os

import yaml

from test_dropin import stats
from test_run import run_cli, run_dir

LOCUSTFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "own_code_locustfile.py")


def _profile(tmp_path) -> str:
    doc = {"description": "own code", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": "8s", "users": 3, "spawn_rate": 3}],
           "users": {"rest_market": {"weight": 1, "wait_min_s": 0.2, "wait_max_s": 0.4,
                                     "task_weights": {"depth": 1, "klines": 0, "trades": 0, "ticker": 0,
                                                      "book_ticker": 0}}}}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _summary(reports: str) -> dict:
    with open(os.path.join(run_dir(reports), "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


def test_a_subclasss_own_tasks_run_through_the_harness(tmp_path):
    reports = str(tmp_path / "reports")
    p = run_cli("run", "-f", LOCUSTFILE, "--profile", _profile(tmp_path), "--reports", reports, timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = stats(os.path.join(run_dir(reports), "locust_stats.csv"))
    assert rows.get(("GET", "GET /api/v3/time"), 0) > 0, sorted(rows)        # the user's own tasks
    assert rows.get(("GET", "GET /api/v3/avgPrice"), 0) > 0, sorted(rows)
    assert rows.get(("GET", "GET /api/v3/depth"), 0) > 0, sorted(rows)       # and the profile's
    # each user's last measurement, fired as the run ends, is in Locust's CSV too (its writer
    # snapshots once a second and closes without a last snapshot: the plugin waits for one)
    assert rows.get(("mine", "on_stop")) == 3, sorted(rows)
    summary = _summary(reports)
    judged = {c["label"]: c for c in summary["criteria"]}
    assert judged["user_errors count<=0"]["verdict"] == "pass" and judged["user_errors count<=0"]["value"] == 0


def test_an_exception_in_the_users_code_fails_the_verdict(tmp_path):
    reports = str(tmp_path / "reports")
    p = run_cli("run", "-f", LOCUSTFILE, "--profile", _profile(tmp_path), "--reports", reports,
                env={"OWN_CODE_RAISE": "1"}, timeout=180)
    assert p.returncode == 99, p.stdout[-3000:] + p.stderr[-3000:]
    assert "strategy bug" in p.stderr                       # Locust logs the traceback
    summary = _summary(reports)
    assert summary["verdict"] == "fail" and summary["run"]["exit_code"] == 99
    judged = {c["label"]: c for c in summary["criteria"]}
    errors = judged["user_errors count<=0"]
    assert errors["verdict"] == "fail" and 1 <= errors["value"] <= 3, errors      # once per user that got there
