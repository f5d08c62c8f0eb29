"""Your own trading code as a user kind (``users.own.factory``): ``letrade-perf run --profile``
with no locustfile runs examples/trading_system through the guarded call path."""
from __future__ import annotations

import json
import os

import yaml

from test_dropin import stats
from test_run import ROOT, run_cli, run_dir

PROFILE = os.path.join(ROOT, "examples", "profiles", "own-code.yaml")


def test_a_profile_runs_the_users_own_system_by_its_factory(sim_factory, tmp_path):
    sim = sim_factory()
    reports = str(tmp_path / "reports")
    p = run_cli("run", "--profile", PROFILE, "--host", sim.base_url, "--reports", reports, timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    rows = stats(os.path.join(run_dir(reports), "locust_stats.csv"))
    assert rows.get(("user", "own step"), 0) >= 3, sorted(rows)
    assert rows.get(("ccxt", "POST /api/v3/order"), 0) > 0, sorted(rows)   # through the guarded path
    with open(os.path.join(run_dir(reports), "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    orders = summary["orders"]
    assert orders["sent"] == rows[("ccxt", "POST /api/v3/order")] == orders["placed"] > 0, orders
    assert sim.stats()["orders"]["by_status"].get("FILLED", 0) == orders["placed"]
    judged = {c["label"]: c for c in summary["criteria"]}
    assert judged["order_success rate>99.5%"]["samples"] == orders["sent"]
    assert judged["user_errors count<=0"]["value"] == 0


def test_a_bad_factory_names_the_profile_key_and_fails_the_run(sim_factory, tmp_path):
    sim = sim_factory()
    with open(PROFILE, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    doc["users"]["own"]["factory"] = "trading_system.nowhere:build"
    doc["users"]["own"]["path"] = os.path.join(ROOT, "examples")        # absolute: the profile moved
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    reports = str(tmp_path / "reports")
    p = run_cli("run", "--profile", str(bad), "--host", sim.base_url, "--reports", reports, timeout=180)
    assert p.returncode == 99, p.stdout[-3000:] + p.stderr[-3000:]
    assert "users.own.factory: cannot import 'trading_system.nowhere'" in p.stderr
    with open(os.path.join(run_dir(reports), "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["verdict"] == "fail"
    assert {c["label"]: c for c in summary["criteria"]}["user_errors count<=0"]["verdict"] == "fail"
