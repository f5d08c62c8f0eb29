"""Shared fixtures: real simulator processes on free loopback ports, stopped by PID."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from simproc import SimProcess, start_sim  # noqa: E402


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
