"""letrade-perf as a drop-in Locust plugin: a user's own locustfile keeps its own users.

``examples/locustfile_dropin.py`` imports ``letrade_perf.locustfile`` next to an ``HttpUser`` of its
own. With ``--profile`` (through ``letrade-perf run -f`` and through plain ``locust -f``), the
user's requests and letrade-perf's both reach the stats, the criteria and the reports.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import yaml

from test_run import ROOT, run_cli, run_dir

EXAMPLE = os.path.join(ROOT, "examples", "locustfile_dropin.py")
MINE = "my heartbeat GET /api/v3/time"
API_TYPES = {"GET", "POST", "PUT", "DELETE", "WSAPI", "ccxt"}


def short_smoke(tmp_path) -> str:
    """The bundled smoke profile cut to one 12 s stage of 8 users (a user of the example joins them)."""
    with open(os.path.join(ROOT, "profiles", "smoke.yaml"), encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    doc["stages"] = [{"duration": "12s", "users": 8, "spawn_rate": 8}]
    path = tmp_path / "smoke-short.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def stats(path: str) -> dict[tuple[str, str], int]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {(r["Type"], r["Name"]): int(r["Request Count"]) for r in csv.DictReader(fh) if r["Name"] != "Aggregated"}


def test_run_with_a_users_own_locustfile_keeps_its_users_in_stats_and_verdict(tmp_path):
    reports = str(tmp_path / "reports")
    p = run_cli("run", "-f", EXAMPLE, "--profile", "smoke", "--reports", reports, timeout=240)   # the bundled one
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    d = run_dir(reports)
    rows = stats(os.path.join(d, "locust_stats.csv"))
    assert rows.get(("GET", MINE), 0) > 0, sorted(rows)
    assert rows.get(("GET", "GET /api/v3/depth"), 0) > 0 and rows.get(("ccxt", "ccxt fetch_order_book"), 0) > 0
    assert any(t == "pipeline" for t, _ in rows) and any(t == "WS" for t, _ in rows)
    assert '"MyServerTime": ' in p.stdout + p.stderr          # spawned beside letrade-perf's four kinds
    with open(os.path.join(d, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["verdict"] == "pass" and summary["run"]["exit_code"] == 0
    endpoints = {(e["type"], e["name"]): e for e in summary["endpoints"]}
    assert endpoints[("GET", MINE)]["count"] == rows[("GET", MINE)]
    api_calls = sum(e["count"] for (t, _), e in endpoints.items() if t in API_TYPES)
    judged = {c["label"]: c for c in summary["criteria"]}
    # the user's requests are judged with letrade-perf's: the request and api_success criteria count them
    assert judged["request avg<200"]["samples"] == api_calls
    assert api_calls > endpoints[("GET", MINE)]["count"] > 0


def test_plain_locust_with_the_plugin_keeps_the_users_classes(tmp_path):
    reports = tmp_path / "reports"
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "locust", "-f", EXAMPLE, "--profile", short_smoke(tmp_path), "--headless",
           "--letrade-reports", str(reports), "--csv", str(tmp_path / "locust"), "--only-summary"]
    p = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = stats(str(tmp_path / "locust_stats.csv"))
    assert rows.get(("GET", MINE), 0) > 0 and rows.get(("GET", "GET /api/v3/depth"), 0) > 0, sorted(rows)
    with open(reports / "summary.json", encoding="utf-8") as fh:
        summary = json.load(fh)
    assert ("GET", MINE) in {(e["type"], e["name"]) for e in summary["endpoints"]}
