"""Run the simulator in its own process (it is asyncio; the harness is gevent) and stop it by PID.

Used by ``letrade-perf demo``, by ``letrade-perf run`` with env ``sim``, by the test fixtures and
by ``bench/``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Sequence

import yaml


class SimulatorError(RuntimeError):
    """The simulator process could not be started."""


class SimulatorProcess:
    """A simulator subprocess listening on ``base_url``; :meth:`stop` ends it by PID."""

    def __init__(self, proc: subprocess.Popen, base_url: str, workdir: str, log_path: str):
        self.proc = proc
        self.base_url = base_url
        self.workdir = workdir
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url[4:]

    @property
    def ws_api_url(self) -> str:
        return self.ws_url + "/ws-api/v3"

    def output(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        from ..procs import stop_process
        return stop_process(self.proc, timeout)

    def __enter__(self) -> "SimulatorProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_simulator(config: dict | None = None, extra_args: Sequence[str] = (), host: str = "127.0.0.1",
                    port: int = 0, timeout: float = 30.0, cpu: int | None = None,
                    python: str | None = None) -> SimulatorProcess:
    """Start ``python -m letrade_perf sim`` on ``host:port`` (0 = a free port) and wait until it listens.

    ``config`` is a simulator config mapping (the YAML schema of ``letrade-perf sim --config``);
    ``cpu`` pins the process to one core (``taskset``) for benchmarks.
    """
    workdir = tempfile.mkdtemp(prefix="letrade-sim-")
    ready = os.path.join(workdir, "ready")
    args = [python or sys.executable, "-m", "letrade_perf", "sim", "--host", host, "--port", str(port),
            "--ready-file", ready, "--log-level", "WARNING"]
    if config:
        cfg_path = os.path.join(workdir, "sim.yaml")
        with open(cfg_path, "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh)
        args += ["--config", cfg_path]
    args += list(extra_args)
    if cpu is not None:
        args = ["taskset", "-c", str(cpu)] + args
    log_path = os.path.join(workdir, "sim.log")
    env = dict(os.environ)
    from ..resources import source_checkout
    checkout = source_checkout()
    if checkout is not None:     # a source checkout: the child imports this tree, not another install
        env["PYTHONPATH"] = checkout + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(ready):
            with open(ready, encoding="utf-8") as fh:
                return SimulatorProcess(proc, fh.read().strip(), workdir, log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        out = fh.read()
    raise SimulatorError(f"simulator did not start (exit code {proc.returncode}):\n{out.strip()}")
