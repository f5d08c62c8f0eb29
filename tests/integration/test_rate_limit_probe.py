"""Acceptance: paced by Binance's weights, a run uses its budget fully and never earns a 429.

The simulator's REQUEST_WEIGHT limit is 600/minute; the profile's weight fraction 0.95. Its
clock is skewed so a server minute starts 17 s into the run, after the start-up (a distributed
run's workers get their shares some 10 s in): smooth pacing, the default, spreads the budget over
the minute, so a minute is used fully only when the load runs through all of it. The 80 s stage
covers that whole server minute; its used weight is read from the simulator's own accounting.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIMIT, FRACTION = 600, 0.95
BUDGET = int(LIMIT * FRACTION)                      # 570


def probe(sim, tmp_path, workers: int) -> tuple[dict, dict]:
    local = int(time.time() * 1000)
    skew = (43_000 - local % 60_000) % 60_000      # server time is 17 s before a whole minute
    assert sim.control("PUT", "clock", {"skew_ms": skew}).status == 200
    sim.control("PUT", "limits", {"request_weight_per_minute": LIMIT})
    per_minute: dict[int, int] = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            st = sim.control("GET", "limits").json()
            used = sum(ip["used_weight_1m"] for ip in st["ips"].values())
            b = st["now_ms"] // 60_000
            per_minute[b] = max(per_minute.get(b, 0), used)
            done.wait(0.25)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    env = dict(os.environ, PYTHONPATH=ROOT)
    args = [sys.executable, "-m", "letrade_perf", "run", "--profile",
            os.path.join(HERE, "profiles", "rate-probe.yaml"), "--host", sim.base_url,
            "--reports", str(tmp_path / "reports")]
    if workers:
        args += ["--workers", str(workers)]
    p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    done.set()
    t.join(5)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return per_minute, sim.stats()


# the local variant is marked slow: the 2-worker run exercises the same pacer in every worker plus
# the master's split, and the local pacer's use of a low budget is covered by
# tests/integration/test_example_trading_system.py::test_low_weight_budget_is_used_without_a_429
@pytest.mark.parametrize("workers", [pytest.param(0, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)],
                         ids=["local", "2-workers"])     # a full minute each: budget use is also judged in
                                                          # test_example_trading_system and test_workers_honest
def test_rate_limit_probe_uses_the_budget_without_a_429(sim_factory, tmp_path, workers):
    sim = sim_factory()
    per_minute, stats = probe(sim, tmp_path, workers)
    assert (stats["rate_limits"]["sent_429"], stats["rate_limits"]["sent_418"]) == (0, 0)
    assert stats["requests"]["total"] > 100
    buckets = sorted(per_minute)
    print("used weight per server minute:", per_minute)
    assert len(buckets) >= 2, per_minute
    full = buckets[1]                                # the minute that started 17 s into the run
    assert per_minute[full] >= 0.95 * BUDGET, per_minute
    # within the budget × fraction; 25 per extra process: its start-up calls precede its pacer
    assert all(v <= BUDGET + 25 * workers for v in per_minute.values()), per_minute
    assert all(v <= LIMIT for v in per_minute.values()), per_minute
