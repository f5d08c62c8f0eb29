"""Async (``ccxt.async_support``) Locust users through :mod:`letrade_perf.users.aio`, run by plain
``locust`` headless against a real simulator process.

Before the bridge, a second user calling ``asyncio.run`` failed with *Cannot run the event loop
while another loop is running* and one user did all the work. Here every one of 10 users makes
calls on the one process loop, nothing fails, and every exchange is closed.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simproc import start_sim

LOCUSTFILE = Path(__file__).with_name("aio_locustfile.py")
RUN_S = 8
BAD_OUTPUT = ("Cannot run the event loop", "Unclosed client session", "Unclosed connector",
              "requires to release all resources", "Traceback", "was never awaited")


@pytest.fixture(scope="module")
def sim():
    """A private simulator: request-weight budgets must not be shared with other modules."""
    p = start_sim()
    yield p
    p.stop()


def run_locust(sim, users: int, tmp_path: Path) -> tuple[str, list[dict], dict, list[dict], list[dict]]:
    """Run plain ``locust`` headless; return (output, per-user records, final stats, CSV stats rows,
    CSV failure rows)."""
    env = dict(os.environ, LETRADE_AIO_TEST_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
           "-r", str(users), "-t", f"{RUN_S}s", "--host", sim.base_url, "--only-summary",
           "--csv", str(tmp_path / "out"), "--exit-code-on-error", "0"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        output, _ = proc.communicate(timeout=RUN_S + 60)
    except subprocess.TimeoutExpired:
        proc.kill()   # by PID
        output, _ = proc.communicate(timeout=10)
        pytest.fail(f"locust did not finish within {RUN_S + 60} s:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    users_file = tmp_path / "users.jsonl"
    records = [json.loads(line) for line in users_file.read_text().splitlines()] if users_file.exists() else []
    final = json.loads((tmp_path / "final_stats.json").read_text())
    with open(tmp_path / "out_stats.csv") as f:
        stats = list(csv.DictReader(f))
    with open(tmp_path / "out_failures.csv") as f:
        failures = list(csv.DictReader(f))
    return output, records, final, stats, failures


def _row(stats: list[dict], name: str) -> dict:
    rows = [r for r in stats if r["Name"] == name]
    assert len(rows) == 1, (name, stats)
    return rows[0]


@pytest.mark.parametrize("users", [10, pytest.param(1, marks=pytest.mark.slow)])
def test_async_ccxt_users_share_one_loop(sim, tmp_path, users):
    output, records, final, stats, failures = run_locust(sim, users, tmp_path)
    for bad in BAD_OUTPUT:
        assert bad not in output, f"{bad!r} in locust output:\n{output[-4000:]}"

    # every user started, made calls, stopped and closed its exchange
    assert sorted(r["user"] for r in records) == list(range(users)), output[-4000:]
    assert all(r["calls"] > 0 for r in records), records
    assert all(r["closed"] for r in records), records
    assert len({r["loop"] for r in records}) == 1 and len({r["thread"] for r in records}) == 1

    # Locust saw every call (events fired in the greenlets), and nothing failed
    assert final["fetch_ticker"] == {"requests": sum(r["calls"] for r in records), "failures": 0}, final
    assert final["load_markets"] == {"requests": users, "failures": 0}, final
    assert failures == []
    assert _row(stats, "fetch_ticker")["Type"] == "aio"
    assert int(_row(stats, "Aggregated")["Failure Count"]) == 0
