"""``letrade-perf run`` end to end: real simulator, real Locust subprocesses, reports on disk."""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROFILES = os.path.join(HERE, "profiles")


def run_cli(*args, env=None, timeout=240, console=False) -> subprocess.CompletedProcess:
    """``letrade-perf *args``; ``console``: stderr merged into stdout, in order, as a terminal shows them."""
    e = dict(os.environ)
    e.update(env or {})
    e["PYTHONPATH"] = ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    if console:
        return subprocess.run([sys.executable, "-m", "letrade_perf", *args], cwd=ROOT, env=e, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return subprocess.run([sys.executable, "-m", "letrade_perf", *args], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=timeout)


def stats_rows(reports: str) -> list[dict]:
    [run_dir] = [os.path.join(reports, d) for d in os.listdir(reports)]
    with open(os.path.join(run_dir, "locust_stats.csv"), newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["Name"] != "Aggregated"]


def profile_variant(source: str, tmp_path, name: str, **changes) -> str:
    """``source`` (a test profile YAML) with top-level keys replaced, written under ``tmp_path``."""
    import yaml

    with open(source, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    data.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run_dir(reports: str) -> str:
    [d] = os.listdir(reports)
    return os.path.join(reports, d)


def test_smoke_profile_runs_every_user_kind_and_writes_reports(tmp_path):
    """The README's main job: the bundled smoke profile against the embedded simulator."""
    reports = str(tmp_path / "reports")
    p = run_cli("run", "--profile", "smoke", "--reports", reports, console=True,
                env={"NO_COLOR": "", "FORCE_COLOR": ""})       # empty: as if unset
    assert p.returncode == 0, p.stdout[-6000:]
    d = run_dir(reports)
    for f in ("report.html", "locust_stats.csv", "locust_stats_history.csv", "run.json"):
        assert os.path.exists(os.path.join(d, f)), f
    rows = stats_rows(reports)
    types = {r["Type"] for r in rows if int(r["Request Count"]) > 0}
    assert {"GET", "ccxt", "WS", "pipeline"} <= types, types
    assert all("?" not in r["Name"] for r in rows), "request names must be endpoint templates"
    assert sum(int(r["Failure Count"]) for r in rows) == 0
    assert "reports:" in p.stdout and "GET /api/v3/depth" in p.stdout
    # the console people read: progress lines during the run, the verdict block last, after
    # Locust's own tables (stdout and stderr in the order a terminal shows them), no colour on a pipe
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    progress = [line for line in lines if re.search(r"progress \d+:\d\d/0:30 \(\d+%\)(, ETA \d+:\d\d|, ending) \| "
                                                    r"users \d+/\d+ \| [\d.]+ req/s, \d+ failures? .*\| criteria "
                                                    r"\d+ passing, \d+ failing, \d+ pending", line)]
    assert progress, "no progress line on the console"
    assert len(progress) <= 4, f"the progress line is throttled (10 s): {progress}"
    assert lines[-4].startswith("letrade-perf smoke on sim, run "), lines[-8:]
    assert lines[-3].startswith("verdict: PASS — ending completed — ") and lines[-3].endswith("exit code 0"), lines[-3]
    assert lines[-2].startswith("planned vs achieved: "), lines[-2]
    assert lines[-1] == f"reports: {run_dir(reports)} (summary.html, report.html, summary.json, junit.xml, summary.md)"
    tables = max(i for i, line in enumerate(lines) if "Aggregated" in line)      # Locust's final tables
    assert tables < len(lines) - 4 and "\x1b[" not in p.stdout
    assert sum(line.startswith("verdict: PASS") for line in lines) == 1, "one verdict block"


def test_bad_profile_exits_2_naming_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: sim\nsymbols: [BTCUSDT]\nstages: [{duration: 5 minutes, users: 1, spawn_rate: 1}]\n"
                   "users: {rest_market: {}}\n")
    p = run_cli("run", "--profile", str(bad), "--reports", str(tmp_path / "r"))
    assert p.returncode == 2
    assert str(bad) in p.stderr and "stages[0].duration" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def test_unknown_profile_name_exits_2(tmp_path):
    p = run_cli("run", "--profile", "no-such-profile", "--reports", str(tmp_path / "r"))
    assert p.returncode == 2 and "no-such-profile" in p.stderr and "Traceback" not in p.stderr


def test_production_orders_need_the_flag(tmp_path):
    p = run_cli("run", "--profile", "production-canary", "--reports", str(tmp_path / "r"))
    assert p.returncode == 3
    assert "--allow-production-orders" in p.stderr
    assert not os.path.exists(tmp_path / "r")


def test_canary_secret_appears_nowhere(tmp_path, sim_factory):
    canary = "CANARYsecret0123456789abcdefCANARY0123456789abcdefCANARY012345"
    key = "canaryApiKey" + "0" * 52
    sim = sim_factory({"accounts": [{"api_key": key, "secret": canary}]})
    reports = str(tmp_path / "reports")
    p = run_cli("run", "--profile", os.path.join(PROFILES, "run-short.yaml"), "--host", sim.base_url,
                "--reports", reports, "--log-format", "json",
                env={"BINANCE_SIM_API_KEY": key, "BINANCE_SIM_API_SECRET": canary})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    json_lines = [json.loads(line) for line in (p.stderr + p.stdout).splitlines() if line.startswith('{"ts"')]
    assert {"letrade_perf.run", "letrade_perf.harness.plugin"} <= {j["logger"] for j in json_lines}, \
        "--log-format json: the run's and the Locust plugin's logs are JSON lines"
    # the run used the canary account: its orders are in the simulator's ground truth
    assert sum(sim.stats()["orders"]["by_status"].values()) > 0
    seen = [("stdout", p.stdout), ("stderr", p.stderr)]
    for base, _, files in os.walk(reports):
        for f in files:
            with open(os.path.join(base, f), encoding="utf-8", errors="replace") as fh:
                seen.append((f, fh.read()))
    for where, text in seen:
        assert canary not in text, f"secret leaked into {where}"


def test_workers_run_exits_0(tmp_path):
    reports = str(tmp_path / "reports")
    p = run_cli("run", "--profile", os.path.join(PROFILES, "run-short.yaml"), "--workers", "2",
                "--reports", reports)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    d = run_dir(reports)
    assert os.path.exists(os.path.join(d, "worker-1.log")) and os.path.exists(os.path.join(d, "worker-2.log"))
    types = {r["Type"] for r in stats_rows(reports) if int(r["Request Count"]) > 0}
    assert {"GET", "WS", "pipeline"} <= types, types


def test_latency_skew_and_ws_delay_are_measured_accurately(tmp_path, sim_factory):
    """Simulator: fixed 20 ms REST latency, WS events held 30 ms past E, server clock +500 ms.
    The harness must report REST median 20 ms (+ loopback) and a WS lag that matches how late
    after E the simulator really sent each frame (its ground truth: at least the 30 ms hold, more
    when the machine is busy), whatever the 500 ms clock skew."""
    import yaml

    source = os.path.join(PROFILES, "run-accuracy.yaml")
    with open(source, encoding="utf-8") as fh:
        sim = sim_factory(yaml.safe_load(fh)["sim"])
    profile = profile_variant(source, tmp_path, "accuracy", sim={})
    reports = str(tmp_path / "reports")
    p = run_cli("run", "--profile", profile, "--host", sim.base_url, "--reports", reports)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = stats_rows(reports)
    depth = [r for r in rows if r["Name"] == "GET /api/v3/depth"]
    assert depth and int(depth[0]["Request Count"]) > 20
    assert 20 <= float(depth[0]["50%"]) <= 23, depth[0]
    sent = sim.stats()["delays"]["ws_event_sent"]
    sent_mean = sent["total_ms"] / sent["count"]
    assert sent["count"] >= 40 and sent_mean >= 30, sent
    lag = [r for r in rows if r["Type"] == "WS" and int(r["Request Count"]) > 0]
    assert lag, rows
    for r in lag:
        assert int(r["Request Count"]) >= 20, r
        # never under the hold (a skew error would show as hundreds of ms either way); over the
        # simulator's real send lateness by no more than loopback delivery
        assert 28 <= float(r["50%"]) <= sent_mean + 4, (r, sent)
        assert abs(float(r["Average Response Time"]) - sent_mean) <= 4, (r, sent)


def test_locustfile_serves_the_web_ui_on_loopback(tmp_path, sim_factory):
    """`locust -f locustfiles/binance.py --profile ...` with the web UI (what `run --web` starts)."""
    import signal
    import socket
    import time
    import urllib.request

    sim = sim_factory()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "locust", "-f", os.path.join(ROOT, "locustfiles", "binance.py"),
                             "--profile", os.path.join(PROFILES, "run-short.yaml"), "--host", sim.base_url,
                             "--web-host", "127.0.0.1", "--web-port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        page = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert page is not None and "locust" in page.lower(), proc.poll()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert "Traceback" not in out, out[-3000:]
