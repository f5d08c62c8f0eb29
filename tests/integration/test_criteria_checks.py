"""Criteria that could never be judged are caught before any load: under ``letrade-perf run`` a
criterion on a metric none of the profile's users produce is exit 2 when only letrade-perf's
users run, and a warning when the locustfile has user classes of its own (which may produce it)."""
from __future__ import annotations

import os

import yaml

from test_run import run_cli

HERE = os.path.dirname(os.path.abspath(__file__))
MESSAGE = "criteria['ws_lag']: no user of this profile produces ws_lag (it comes from users.ws_streams)"


def _profile(tmp_path) -> str:
    doc = {"description": "a criterion no user produces", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": "3s", "users": 1, "spawn_rate": 1}],
           "users": {"rest_market": {"weight": 1, "fixed_count": 0}},
           "criteria": {"ws_lag": ["avg<50"]}}
    path = tmp_path / "unproduced.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_criterion_no_user_produces_stops_the_run_before_any_load(sim_factory, tmp_path):
    sim = sim_factory()
    p = run_cli("run", "--profile", _profile(tmp_path), "--host", sim.base_url, "--reports", str(tmp_path / "r"),
                timeout=120)
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert MESSAGE in p.stderr, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert sim.stats()["requests"]["total"] <= 30, sim.stats()["requests"]   # start-up calls only: no load


def test_with_user_classes_of_its_own_the_locustfile_may_produce_it_a_warning(sim_factory, tmp_path):
    sim = sim_factory()
    p = run_cli("run", "-f", os.path.join(HERE, "guarded_locustfile.py"), "--profile", _profile(tmp_path),
                "--host", sim.base_url, "--reports", str(tmp_path / "r"), timeout=120)
    assert p.returncode != 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert MESSAGE + " — unless the locustfile's own user classes produce it" in p.stderr, p.stderr[-2000:]
