"""A real Locust master and two workers on 127.0.0.1 split the pacing budget: a lone worker gets
1.0; when a second joins, the first is lowered to 0.5 *before* the newcomer gets 0.5 (the sum of
shares never exceeds 1); when one leaves, the other is re-split to 1.0."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOCUSTFILE = HERE / "pacing_locustfile.py"
LOCUST = str(Path(sys.executable).with_name("locust"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(predicate, timeout: float, what: str, logs: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_master_splits_budget_between_two_workers_and_resplits_on_leave(tmp_path):
    port = _free_port()
    env = dict(os.environ, LETRADE_PACING_TEST_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")
        p = subprocess.Popen([LOCUST, "-f", str(LOCUSTFILE), *args], cwd=tmp_path, env=env,
                             stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.append(p)
        return p

    try:
        start("master", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
              "--headless", "--expect-workers", "2", "-u", "2", "-r", "2", "-t", "60s", "--loglevel", "INFO")
        worker_args = ("--worker", "--master-host", "127.0.0.1", "--master-port", str(port))

        def last_share(path: Path):
            recs = _records(path)
            return recs[-1]["share"] if recs else None

        workers = [start("worker1", *worker_args)]
        files = [tmp_path / f"worker-{workers[0].pid}.jsonl"]
        _wait_for(lambda: last_share(files[0]) == 1.0, 25, "the lone worker at share 1.0", tmp_path)
        workers.append(start("worker2", *worker_args))
        files.append(tmp_path / f"worker-{workers[1].pid}.jsonl")
        _wait_for(lambda: all(last_share(f) == 0.5 for f in files), 25, "both workers at share 0.5", tmp_path)

        # A worker leaves: it quits on SIGTERM and the survivor is re-split to the whole budget.
        _stop(workers[1])
        _wait_for(lambda: last_share(files[0]) == 1.0, 15, "the remaining worker at share 1.0", tmp_path)

        first, second = _records(files[0]), _records(files[1])
        assert [r["share"] for r in first] == [1.0, 0.5, 1.0]
        assert [r["share"] for r in second] == [0.5, 0.0]     # dropped to 0 as it quit
        # The newcomer's share was applied only after the first worker had lowered its own.
        assert second[0]["t"] >= first[1]["t"]
        assert second[0]["epoch"] > first[1]["epoch"]

        # Sum of applied shares over time (one clock: all processes run on this host) never > 1.
        events = sorted((r["t"], str(f), r["share"]) for f in files for r in _records(f))
        current: dict[str, float] = {}
        for _t, who, share in events:
            current[who] = share
            assert sum(current.values()) <= 1.0 + 1e-9, events
        # The master's conservative bounds never exceeded 1 either.
        master = _records(tmp_path / "master.jsonl")
        assert master, "the master recorded no share changes"
        assert max(sum(r["bounds"].values()) for r in master) <= 1.0 + 1e-9
        assert list(master[-1]["bounds"].values()) == [1.0]
    finally:
        for p in reversed(procs):
            _stop(p)
