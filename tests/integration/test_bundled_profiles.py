"""Every bundled profile, compressed to a few seconds, against the embedded simulator: every
criterion gets samples, no strategy is stopped by a safety cap, the run is neither aborted nor
incomplete.

The profiles are listed from the package, so a new bundled profile is covered without a change
here. Each is written to a temporary copy whose stages are scaled down to :data:`TOTAL_S` seconds
(users capped at :data:`MAX_USERS` for a small CI box, spawn rates raised so the ramp still
completes) and whose strategies' forced signals come every :data:`FORCE_EVERY_S` at most — more
orders per second than the full profile, so a run cap that a profile would reach in its full
duration is reached here too. Everything else is kept. A production-only profile runs with
``--env sim``. The runs go two at a time (about 13 s each, start-up included).
"""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from letrade_perf.config import profile as prof
from letrade_perf.core.strict import parse_duration

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

BUNDLED = [(name, path) for name, _, path in prof.list_profiles()]
#: total duration of a compressed profile (s)
TOTAL_S = 8.0
#: users at most in any stage of a compressed profile
MAX_USERS = 12
#: a pipeline strategy's forced signal comes at least this often (s)
FORCE_EVERY_S = 0.5
#: runs at once (a 2-core CI box)
PARALLEL = 2
#: one run's wall-clock limit (s)
RUN_TIMEOUT_S = 75.0
#: aggregations whose value is a count: zero samples is a measurement (``http_418 count==0``)
COUNTS = ("count",)


def compress(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` (a profile) with its stages scaled to :data:`TOTAL_S` and forced signals sped up."""
    out = dict(data)
    durations = [parse_duration(s["duration"], f"stages[{i}].duration", source) for i, s in enumerate(data["stages"])]
    scale = TOTAL_S / sum(durations)
    stages = []
    for stage, d in zip(data["stages"], durations):
        n_users = min(int(stage["users"]), MAX_USERS)
        stages.append({**stage, "duration": max(1.0, round(d * scale, 1)), "users": n_users,
                       "spawn_rate": max(float(stage["spawn_rate"]), float(n_users))})
    out["stages"] = stages
    users = dict(out.get("users") or {})
    pipe = users.get("pipeline")
    if isinstance(pipe, dict):
        strategy = dict(pipe.get("strategy") or {})
        every = strategy.get("force_every_s")
        strategy["force_every_s"] = FORCE_EVERY_S if every is None else min(
            parse_duration(every, "users.pipeline.strategy.force_every_s", source), FORCE_EVERY_S)
        users["pipeline"] = {**pipe, "strategy": strategy}
    out["users"] = users
    return out


@dataclass
class Run:
    name: str
    returncode: int | None
    log: str
    summary: dict[str, Any] | None
    wall_s: float
    profile: dict[str, Any]


def _run(name: str, path: str, workdir: str) -> Run:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    tmp = os.path.join(workdir, f"{name}.yaml")
    with open(tmp, "w", encoding="utf-8") as fh:
        yaml.safe_dump(compress(data, path), fh)
    reports = os.path.join(workdir, f"reports-{name}")
    args = [sys.executable, "-m", "letrade_perf", "run", "--profile", tmp, "--reports", reports]
    if data.get("env", "sim") != "sim":
        args += ["--env", "sim"]              # production-only profiles run against the simulator
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)   # the run, its simulator and its Locust children
        log, _ = proc.communicate()
        log += f"\n(test: killed after {RUN_TIMEOUT_S:g}s)"
    summary = None
    found = glob.glob(os.path.join(reports, "*", "summary.json"))
    if found:
        with open(found[0], encoding="utf-8") as fh:
            summary = json.load(fh)
    return Run(name, proc.returncode, log, summary, time.monotonic() - t0, data)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    workdir = str(tmp_path_factory.mktemp("bundled"))
    with ThreadPoolExecutor(PARALLEL) as pool:
        done = list(pool.map(lambda np: _run(np[0], np[1], workdir), BUNDLED))
    return {r.name: r for r in done}


def test_every_bundled_profile_is_listed():
    assert len(BUNDLED) >= 10 and {"ci-gate", "trading", "concurrency", "soak-24h"} <= {n for n, _ in BUNDLED}


@pytest.mark.parametrize("name", [n for n, _ in BUNDLED])
def test_bundled_profile_trades_for_its_whole_run_and_every_criterion_is_judged(runs, name):
    run = runs[name]
    tail = run.log[-4000:]
    assert run.summary is not None, f"{name}: no summary.json (exit {run.returncode})\n{tail}"
    s = run.summary
    assert run.returncode == s["run"]["exit_code"], f"{name}: exit {run.returncode}\n{tail}"
    assert not s["run"].get("aborted"), f"{name}: aborted: {s['run']['aborted']}\n{tail}"
    assert s.get("verdict") != "incomplete", f"{name}: incomplete: {s.get('achieved')}\n{tail}"
    assert s.get("ending") in (None, "completed"), f"{name}: ended {s.get('ending')}\n{tail}"   # None: not recorded
    judged = [c for c in s["criteria"] if c["aggregation"] not in COUNTS]
    unjudged = [(c["label"], c["samples"], c["reason"]) for c in s["criteria"]
                if c["verdict"] == "inconclusive" or (c in judged and not c["samples"])]
    assert not unjudged, f"{name}: criteria without samples: {unjudged}"
    assert "stops trading" not in run.log, f"{name}: a strategy stopped trading:\n" + "\n".join(
        line for line in run.log.splitlines() if "stops trading" in line)
    orders = s.get("orders") or {}
    assert orders.get("refused", 0) == 0, f"{name}: orders refused before sending: {orders}"
    if "pipeline" in (run.profile.get("users") or {}):
        assert orders.get("sent", 0) > 0, f"{name}: the pipeline sent no orders: {orders}"
