"""A tiny locustfile for the distributed pacing test: wires MasterPacing / WorkerPacing and
appends every share change (workers) and bound change (master) as JSON lines to files in
``$LETRADE_PACING_TEST_DIR``."""
from __future__ import annotations

import json
import os
import time

from locust import User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

from letrade_perf.harness.distributed import MasterPacing, WorkerPacing
from letrade_perf.pacing import Pacer, budgets_from_rate_limits

OUT_DIR = os.environ["LETRADE_PACING_TEST_DIR"]
PACER: Pacer | None = None


def _append(name: str, record: dict) -> None:
    with open(os.path.join(OUT_DIR, name), "a") as f:
        f.write(json.dumps(record) + "\n")


@events.init.add_listener
def _wire(environment, **_kw):
    global PACER
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        MasterPacing(runner, poll_s=0.5,
                     on_change=lambda bounds: _append("master.jsonl", {"t": time.time(), "bounds": bounds}))
    elif isinstance(runner, WorkerRunner):
        PACER = Pacer(budgets_from_rate_limits())
        name = f"worker-{os.getpid()}.jsonl"
        WorkerPacing(runner, PACER, on_share=lambda share, epoch: _append(
            name, {"t": time.time(), "share": share, "epoch": epoch, "client_id": runner.client_id}))


class PacedUser(User):
    wait_time = constant(0.2)

    @task
    def tick(self):
        if PACER is not None:
            PACER.acquire(1)
