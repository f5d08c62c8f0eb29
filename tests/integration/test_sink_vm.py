"""The InfluxDB sink end to end: real ``letrade-perf run`` subprocesses against the embedded
simulator write to a real VictoriaMetrics (InfluxDB v2 write API, read back via its export API).

Every measurement arrives; the counts and sums stored equal the harness's own totals in
``summary.json`` (also with two workers, tagged ``worker-0``/``worker-1``); criteria values equal
the summary's. VictoriaMetrics stopped mid-run and restarted on the same port and storage: the run
exits normally, users kept firing during the outage, points written after the restart arrive, and
``summary.json["sink"]`` accounts for every point. An unreachable sink changes nothing but one
WARNING line and the dropped count.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_run import PROFILES, ROOT, profile_variant, run_cli, run_dir  # noqa: E402

SINK_PROFILE = os.path.join(PROFILES, "sink.yaml")
MEASUREMENTS = ("request_count", "ws_lag_count", "pacing_weight_used", "users_count", "criteria_value",
                "run_text", "sink_written", "balance_open_orders", "pnl_fees", "orders_count",
                "run_percentiles_count", "generator_count")


def sink_env(url: str) -> dict:
    return {"LETRADE_INFLUX_URL": url, "LETRADE_INFLUX_TOKEN": "x"}


def load_summary(reports: str) -> dict:
    with open(os.path.join(run_dir(reports), "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


def series(vm, name: str, run_id: str, min_series: int = 1) -> list[dict]:
    return vm.export(f'{{__name__="{name}",run_id="{run_id}"}}', min_series=min_series)


def sums_by(vm, name: str, run_id: str, keys: tuple[str, ...], min_series: int = 1) -> dict[tuple, float]:
    out: dict[tuple, float] = defaultdict(float)
    for s in series(vm, name, run_id, min_series):
        out[tuple(s["metric"].get(k) for k in keys)] += sum(s["values"])
    return dict(out)


def warning_lines(text: str, url: str) -> list[str]:
    return [ln for ln in text.splitlines() if "WARNING" in ln and f"InfluxDB sink at {url}" in ln]


def variant(tmp_path, name: str, **changes) -> str:
    return profile_variant(SINK_PROFILE, tmp_path, name, **changes)


def stored_points(vm, run_id: str, expected: int | None = None, wait: float = 15.0) -> int:
    """Points (lines) VictoriaMetrics holds for the run: the samples of one field every point of
    its measurement carries. Rows ingested just now (and series new to a restarted server) become
    searchable a moment later: poll until ``expected`` (or the same count twice) or ``wait`` passes."""
    deadline = time.monotonic() + wait
    last = None
    while True:
        total = 0
        for name in ("request_count", "ws_lag_count", "users_count", "pacing_share", "sink_written",
                     "criteria_threshold", "run_text", "balance_open_orders", "pnl_fees", "orders_count",
                     "run_percentiles_count", "generator_count"):
            total += sum(len(s["values"]) for s in vm.export(f'{{__name__="{name}",run_id="{run_id}"}}', wait=0))
        done = total == expected if expected is not None else total == last
        if done or time.monotonic() >= deadline:
            return total
        last = total
        time.sleep(0.5)


def check_totals(vm, summary: dict, run_id: str) -> None:
    """Counts and sums read back equal the harness's totals; criteria equal the summary's."""
    endpoints = summary["endpoints"]
    counts = sums_by(vm, "request_count", run_id, ("request_type", "name"), min_series=len(endpoints))
    assert counts == {(e["type"], e["name"]): e["count"] for e in endpoints}
    failures = sums_by(vm, "request_failures", run_id, ("request_type", "name"), min_series=len(endpoints))
    assert failures == {(e["type"], e["name"]): e["failures"] for e in endpoints}
    sums = sums_by(vm, "request_sum", run_id, ("request_type", "name"), min_series=len(endpoints))
    for e in endpoints:
        if e["avg_ms"] is not None:
            assert sums[(e["type"], e["name"])] / e["count"] == pytest.approx(e["avg_ms"], abs=0.0006), e
    streams = summary["streams"]
    assert streams, "the profile runs a WS user: ws_lag streams expected"
    lag = sums_by(vm, "ws_lag_count", run_id, ("stream",), min_series=len(streams))
    assert lag == {(s["stream"],): s["count"] for s in streams}
    criteria = summary["criteria"]
    with_value = [c for c in criteria if c["value"] is not None]
    values = {s["metric"]["criterion"]: s for s in series(vm, "criteria_value", run_id, len(with_value))}
    assert set(values) == {c["label"] for c in with_value}
    passed = {s["metric"]["criterion"]: s["values"] for s in series(vm, "criteria_passed", run_id, len(criteria))}
    for c in criteria:
        assert passed[c["label"]] == [1 if c["gate"] == "pass" else 0]
        if c["value"] is not None:
            s = values[c["label"]]
            assert s["values"] == [pytest.approx(c["value"], rel=1e-9, abs=1e-12)], c
            assert (s["metric"]["metric"], s["metric"]["verdict"]) == (c["metric"], c["verdict"])
            assert "worker" not in s["metric"]
    runs = {s["metric"]["event"]: s for s in series(vm, "run_text", run_id, 2)}
    assert set(runs) == {"start", "stop"}
    for s in runs.values():
        assert {k: s["metric"][k] for k in ("profile", "env")} == {"profile": summary["run"]["profile"],
                                                                  "env": summary["run"]["env"]}
    [code] = series(vm, "run_exit_code", run_id)
    assert code["values"] == [summary["run"]["exit_code"]]
    assert runs["start"]["timestamps"][0] < runs["stop"]["timestamps"][0]


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_every_measurement_arrives_and_totals_match_the_summary(tmp_path, victoria_metrics, workers):
    vm = victoria_metrics
    reports = str(tmp_path / "r")
    run_id = f"sink-vm-{workers}"
    args = ["run", "--profile", SINK_PROFILE, "--reports", reports, "--run-id", run_id]
    if workers:
        args += ["--workers", str(workers)]
    p = run_cli(*args, env=sink_env(vm.url))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    summary = load_summary(reports)
    if workers:    # the workers' counts in summary.json are as of their last report
        assert stored_points(vm, run_id) >= sum(st["written"] for st in summary["sink"]["by_worker"].values())
    else:          # VictoriaMetrics holds exactly what the sink counted as written
        assert stored_points(vm, run_id, summary["sink"]["written"]) == summary["sink"]["written"]
    for name in MEASUREMENTS:
        assert series(vm, name, run_id), f"no {name} points"
    check_totals(vm, summary, run_id)
    sink = summary["sink"]
    assert sink["url"] == vm.url and sink["dropped"] == 0 and sink["retries"] == 0
    worker_tags = {s["metric"]["worker"] for s in series(vm, "request_count", run_id)}
    users_tags = {s["metric"]["worker"] for s in series(vm, "users_count", run_id)}
    if workers:
        assert worker_tags == {"worker-0", "worker-1"}
        assert users_tags == {"master", "worker-0", "worker-1"}
        assert set(sink["by_worker"]) == {"master", "worker-0", "worker-1"}
        own = sink["by_worker"]["master"]
        assert own["written"] == own["produced"] > 0 and own["buffered"] == 0
        # the workers' figures are as of their last report (their sinks close afterwards)
        for w in ("worker-0", "worker-1"):
            st = sink["by_worker"][w]
            assert st["written"] + st["dropped"] + st["buffered"] == st["produced"] > 0 and st["dropped"] == 0
        pacing_tags = {s["metric"]["worker"] for s in series(vm, "pacing_weight_budget", run_id)}
        assert pacing_tags == {"worker-0", "worker-1"}
    else:
        assert worker_tags == users_tags == {"local"}
        assert sink["written"] == sink["produced"] > 0 and sink["buffered"] == 0
        # one point per interval: the 2 s drains of a 12 s run give ≤ 8 timestamps per series
        for s in series(vm, "request_count", run_id):
            assert len(s["timestamps"]) == len(set(s["timestamps"])) <= 8


def locust_requests(reports: str) -> list[tuple[int, int]]:
    """(epoch second, total requests so far) from Locust's own stats history (every second)."""
    with open(os.path.join(run_dir(reports), "locust_stats_history.csv"), newline="") as fh:
        return [(int(r["Timestamp"]), int(r["Total Request Count"])) for r in csv.DictReader(fh)
                if r["Name"] == "Aggregated"]


def rate(history: list[tuple[int, int]], t0: float, t1: float) -> float:
    """Requests per second between ``t0`` and ``t1`` (from the history rows inside the window)."""
    rows = [(t, n) for t, n in history if t0 <= t <= t1]
    assert len(rows) >= 2, (t0, t1, history)
    (ta, na), (tb, nb) = rows[0], rows[-1]
    return (nb - na) / (tb - ta)


@pytest.mark.parametrize("buffer", ["default", pytest.param("small", marks=pytest.mark.slow)])
def test_sink_outage_mid_run_loses_nothing_silently(tmp_path, victoria_metrics, buffer):
    """VictoriaMetrics stopped for 7 s mid-run, then restarted on the same port and storage. With
    the default buffer the outage is held and retried (nothing dropped, every total matches); with
    a 60-point buffer the oldest points are dropped — and counted."""
    vm = victoria_metrics
    reports = str(tmp_path / "r")
    run_id = f"sink-outage-{buffer}"
    sink_section = {"interval_s": "2s"}
    if buffer == "small":
        sink_section.update(max_buffer_points=60, batch_size=20)
    # steady load: REST and WS only (the pipeline's first orders make the opening seconds busier),
    # and a weight budget the run cannot use up (the pacer would slow the users down near the end)
    users = {k: v for k, v in yaml.safe_load(open(SINK_PROFILE))["users"].items() if k != "pipeline"}
    profile = variant(tmp_path, "sink-outage", stages=[{"duration": "24s", "users": 4, "spawn_rate": 4}],
                      users=users, sink=sink_section, sim={"limits": {"request_weight_per_minute": 600_000}})
    env = dict(os.environ, **sink_env(vm.url))
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "letrade_perf", "run", "--profile", profile, "--reports",
                                 reports, "--run-id", run_id], cwd=ROOT, env=env, stdout=out, stderr=err)
    try:
        # wait until the run is writing (a few interval points are in), then take VictoriaMetrics down
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = vm.export(f'{{__name__="users_rps",run_id="{run_id}"}}', wait=0)
            if got and len(got[0]["values"]) >= 3:
                break
            assert proc.poll() is None, err_path.read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("no points arrived before the outage")
        t_down = time.time()
        vm.stop()
        time.sleep(7.0)
        assert proc.poll() is None, "the run must still be going during the outage"
        vm.restart()
        t_up = time.time()
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(30)
    stderr = err_path.read_text()
    assert code == 0, out_path.read_text()[-3000:] + stderr[-3000:]
    summary = load_summary(reports)
    sink = summary["sink"]
    assert sink["retries"] > 0 and sink["last_error"], sink
    assert sink["buffered"] == 0 and sink["written"] + sink["dropped"] == sink["produced"], sink
    assert len(warning_lines(stderr, vm.url)) == 1, warning_lines(stderr, vm.url)
    # what VictoriaMetrics holds is exactly what the sink counted as written
    assert stored_points(vm, run_id, sink["written"]) == sink["written"]
    [local] = series(vm, "users_rps", run_id)
    assert any(ts > t_up * 1000 for ts in local["timestamps"]), "points written after the restart arrive"
    if buffer == "default":
        assert sink["dropped"] == 0, sink
        check_totals(vm, summary, run_id)
    else:
        assert sink["dropped"] > 0 and sink["written"] > 0, sink
        counts = sums_by(vm, "request_count", run_id, ("request_type", "name"))
        assert sum(counts.values()) < sum(e["count"] for e in summary["endpoints"])
    # users kept firing while InfluxDB was down (Locust's own statistics, not the sink's)
    history = locust_requests(reports)
    start = history[0][0] + 2          # past the spawn
    during, before = rate(history, t_down + 1, t_up - 1), rate(history, start, t_down)
    assert during >= 0.7 * before, (during, before)          # a blocked user greenlet would take it near 0


def test_unreachable_sink_changes_nothing_but_one_warning(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]       # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    reports = str(tmp_path / "r")
    p = run_cli("run", "--profile", SINK_PROFILE, "--reports", reports, env=sink_env(url))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    lines = warning_lines(p.stdout + p.stderr, url)
    assert len(lines) == 1, lines
    assert "points are buffered and retried, dropped points are counted" in lines[0]
    sink = load_summary(reports)["sink"]
    assert sink["written"] == 0 and sink["dropped"] == sink["produced"] > 0 and sink["buffered"] == 0
    assert sink["retries"] > 0 and "cannot connect" in sink["last_error"]
    assert "Traceback" not in p.stderr
