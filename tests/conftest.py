"""Shared fixtures: real simulator processes and real time-series servers (VictoriaMetrics,
InfluxDB 1.x) on free loopback ports, stopped by PID."""
from __future__ import annotations

import os
import sys

# Locust applies gevent's monkey patching when it is imported. Tests that use Locust in this
# process (user classes, the asyncio bridge) import it; if aiohttp, urllib3 or ccxt were imported
# before that (by other test modules at collection), patching ssl afterwards recurses. So the
# patching comes first, for the whole session, as it does in every Locust process.
import locust  # noqa: F401 - before any test module is collected
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from simproc import SimProcess, start_sim  # noqa: E402
from tsdb import InfluxDB1, VictoriaMetrics, start_influxdb1, start_victoria_metrics  # noqa: E402


@pytest.fixture(scope="session")
def sim() -> SimProcess:
    """One default simulator for the whole session (seed 1, default symbols and limits).

    Tests that change its state globally (limits, faults, clock) must restore it, or use
    :func:`sim_factory` for a private one.
    """
    proc = start_sim()
    yield proc
    proc.stop()


@pytest.fixture
def sim_factory():
    """``sim_factory(config_mapping, extra_args=[...])`` → a private simulator, stopped after the test."""
    started: list[SimProcess] = []

    def make(config: dict | None = None, extra_args: list[str] | None = None) -> SimProcess:
        p = start_sim(config, extra_args)
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


# Real time-series servers (tests/tsdb.py) on free loopback ports, stopped by PID.

@pytest.fixture
def victoria_metrics(tmp_path) -> VictoriaMetrics:
    """A private VictoriaMetrics for one test (``.url``, ``.write()``, ``.export()``)."""
    server = start_victoria_metrics(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def influxdb1(tmp_path) -> InfluxDB1:
    """A private InfluxDB 1.x for one test (``.url``, ``.create_db()``, ``.write()``, ``.query()``)."""
    server = start_influxdb1(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def influxdb1_module(tmp_path_factory) -> InfluxDB1:
    """One InfluxDB 1.x shared by the tests of a module (load data once, query it many times)."""
    server = start_influxdb1(tmp_path_factory.mktemp("influxdb1"))
    try:
        yield server
    finally:
        server.stop()
