"""The installed package is the product: wheel and sdist built, installed into fresh virtualenvs,
run from empty directories outside the checkout.

* ``python -m build`` makes the sdist and then the wheel *from the sdist* — a file missing from
  the sdist makes the wheel (and everything below) fail.
* The wheel, with the newest allowed dependencies: ``--version``, ``profiles``, ``paths`` (every
  path inside the venv, dashboards included), ``sim`` serves, ``locust -f "$(letrade-perf paths
  locustfile)"`` loads the harness, and ``letrade-perf run --profile smoke`` passes with its reports
  written in the empty directory.
* The sdist, with the *lowest* allowed dependencies (``.ci/constraints-lowest.txt``): the smoke run
  passes, and the fast suites (unit and simulator) pass on those versions.
"""
from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / ".ci" / "constraints-lowest.txt"
PROFILES = ("smoke", "ci-gate", "market-data", "ws-lag", "trading", "concurrency", "rate-limit-probe", "stress",
            "soak-24h", "production-canary")


def clean_env(**extra) -> dict:
    """The environment of a user's shell: no PYTHONPATH into the checkout, no virtualenv of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(extra)
    return env


def sh(cmd, cwd, timeout, env=None, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env or clean_env(), capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert p.returncode == 0, f"{' '.join(map(str, cmd))} → exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """sdist and wheel (built from the sdist) of this checkout."""
    out = tmp_path_factory.mktemp("dist")
    src = tmp_path_factory.mktemp("src") / "letrade-perf"
    # a clean copy of the tracked files: what a fresh clone holds, nothing of this machine's (venvs, reports)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, files):
        rel = f.decode()
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(ROOT / rel):
            os.symlink(os.readlink(ROOT / rel), target)
        elif (ROOT / rel).is_file():
            shutil.copy2(ROOT / rel, target)
    sh([sys.executable, "-m", "build", "--outdir", out, src], cwd=out, timeout=600)
    [sdist] = glob.glob(str(out / "letrade_perf-*.tar.gz"))
    [wheel] = glob.glob(str(out / "letrade_perf-*.whl"))
    return {"sdist": Path(sdist), "wheel": Path(wheel)}


def make_venv(where: Path, requirement: str, *extra: str) -> Path:
    sh([sys.executable, "-m", "venv", where], cwd=where.parent, timeout=300)
    py = where / "bin" / "python"
    sh([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *extra, requirement], cwd=where.parent,
       timeout=900)
    return where / "bin"


@pytest.fixture(scope="module")
def wheel_venv(dist, tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("venv-wheel") / "venv", str(dist["wheel"]))


@pytest.fixture(scope="module")
def lowest_venv(dist, tmp_path_factory) -> Path:
    assert CONSTRAINTS.is_file(), f"{CONSTRAINTS} is missing"
    return make_venv(tmp_path_factory.mktemp("venv-lowest") / "venv", f"{dist['sdist']}[test]", "-c",
                     str(CONSTRAINTS))


def empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    assert not any(d.iterdir()) and ROOT not in d.resolve().parents
    return d


def smoke_passes(bin_dir: Path, cwd: Path) -> dict:
    """``letrade-perf run --profile smoke`` from ``cwd``: exit 0, reports written there; the summary."""
    p = sh([bin_dir / "letrade-perf", "run", "--profile", "smoke"], cwd=cwd, timeout=240, check=False)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    [run_dir] = list((cwd / "reports").iterdir())
    for f in ("summary.json", "junit.xml", "summary.md", "report.html", "run.json", "locust_stats.csv"):
        assert (run_dir / f).is_file(), f
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["run"]["exit_code"] == 0
    html = (run_dir / "summary.html").read_text()    # the vendored ECharts and the chart script, inlined
    assert "letradeCharts.render" in html and "Apache Software Foundation" in html
    assert summary["run"]["target"]["rest"].startswith("http://127.0.0.1:")
    return summary


def test_wheel_in_a_fresh_venv_runs_from_an_empty_directory(wheel_venv, tmp_path):
    cwd = empty_dir(tmp_path)
    py = wheel_venv / "python"
    where = sh([py, "-c", "import letrade_perf, locust; print(letrade_perf.__file__)"], cwd=cwd, timeout=60).stdout
    assert Path(where.strip()).resolve().is_relative_to(wheel_venv.parent.resolve()), where   # not the checkout

    version = sh([wheel_venv / "letrade-perf", "--version"], cwd=cwd, timeout=60).stdout
    assert version.startswith("letrade-perf 0.1.0 (locust ") and "ccxt " in version and "Python " in version

    listed = sh([wheel_venv / "letrade-perf", "profiles"], cwd=cwd, timeout=60).stdout
    assert all(f"\n{name} " in listed for name in PROFILES), listed
    sh([wheel_venv / "letrade-perf", "profiles", "--validate"], cwd=cwd, timeout=120)

    paths = dict(line.split(None, 1) for line in
                 sh([wheel_venv / "letrade-perf", "paths"], cwd=cwd, timeout=60).stdout.strip().splitlines())
    for name, path in paths.items():
        assert Path(path).exists() and Path(path).resolve().is_relative_to(wheel_venv.parent.resolve()), (name, path)
    dashboards = Path(paths["dashboards"])
    for board in ("letrade-live.json", "letrade-trends.json"):
        assert json.loads((dashboards / board).read_text())["panels"], board
    assert (Path(paths["grafana"]) / "provisioning" / "datasources" / "letrade.yaml").is_file()
    # the profile's JSON Schema ships with the package and the command prints it
    schema = json.loads(sh([wheel_venv / "letrade-perf", "profiles", "--schema"], cwd=cwd, timeout=60).stdout)
    shipped = Path(paths["profiles"]) / "profile.schema.json"
    assert schema == json.loads(shipped.read_text()) and "users" in schema["properties"]

    # the simulator serves
    ready = tmp_path / "ready"
    sim = subprocess.Popen([str(wheel_venv / "letrade-perf"), "sim", "--port", "0", "--ready-file", str(ready),
                            "--log-level", "WARNING"], cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline and sim.poll() is None:
            time.sleep(0.05)
        base = ready.read_text().strip()
        with urllib.request.urlopen(base + "/api/v3/ping", timeout=5) as r:
            assert r.status == 200 and json.loads(r.read()) == {}
    finally:
        sim.terminate()
        sim.wait(15)

    # Locust loads the harness from the installed package (no source tree): a user's own
    # locustfile (the drop-in import and the public API beside letrade-perf's users), a short profile
    short = cwd / "short.yaml"
    short.write_text("description: installed locust -f\nstages: [{duration: 6s, users: 2, spawn_rate: 2}]\n"
                     "users: {rest_market: {weight: 1}}\n")
    mine = cwd / "mine.py"
    mine.write_text("from locust import User, constant, task\n"
                    "from letrade_perf.locustfile import *  # noqa\n"
                    "from letrade_perf.api import call, measure\n\n"
                    "class Mine(User):\n"
                    "    wait_time = constant(0.5)\n\n"
                    "    @task\n"
                    "    def depth(self):\n"
                    "        with measure(self, 'my step'):\n"
                    "            assert call(self, 'GET', '/api/v3/depth', {'symbol': 'BTCUSDT', 'limit': 5}).ok\n")
    p = sh([py, "-m", "locust", "-f", mine, "--profile", str(short), "--headless", "--csv", cwd / "installed",
            "--letrade-reports", cwd / "locust-reports", "--only-summary"], cwd=cwd, timeout=120, check=False)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert json.loads((cwd / "locust-reports" / "summary.json").read_text())["verdict"] == "pass"
    rows = {(r["Type"], r["Name"]): int(r["Request Count"])
            for r in csv.DictReader((cwd / "installed_stats.csv").open(encoding="utf-8"))}
    assert rows.get(("user", "my step"), 0) >= 2 and rows.get(("GET", "GET /api/v3/depth"), 0) >= 2, rows

    smoke_passes(wheel_venv, cwd)


# slow (about 3 minutes: a venv of the lowest versions, a smoke run, the unit and simulator suites):
# the installed wheel test above covers the installed product in the default run; this one checks
# the declared version floors (scripts/test -m slow)
@pytest.mark.slow
@pytest.mark.timeout(1500)     # builds a venv, a smoke run, then the unit and simulator suites (900 s bound)
def test_sdist_with_the_lowest_allowed_versions_passes_smoke_and_fast_suites(lowest_venv, tmp_path):
    from importlib.metadata import Distribution

    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip().split(";")[0].strip()
    assert {"locust", "ccxt", "gevent", "websocket-client", "influxdb-client", "pyyaml", "aiohttp"} <= set(pins)
    site = next((lowest_venv.parent / "lib").glob("python3.*/site-packages"))
    for dist_info in site.glob("*.dist-info"):
        d = Distribution.at(dist_info)
        name = d.metadata["Name"].lower().replace("_", "-")
        if name in pins:
            assert d.version == pins[name], (name, d.version, pins[name])   # installed exactly at the bound

    cwd = empty_dir(tmp_path)
    smoke_passes(lowest_venv, cwd)
    # the fast suites on the lowest versions (the checkout's tests, the installed dependencies): the
    # unit tests and every simulator test that meets a dependency (aiohttp, ccxt, ccxt.pro,
    # websocket-client, cryptography); the engine's own pure-Python tests and the stream-cadence
    # tests (timing, not versions) run in the main suite only
    pure = ("test_streams.py", "test_fuzz_params.py", "test_retention.py", "test_engine_split.py",
            "test_market.py", "test_engine.py")
    p = sh([lowest_venv / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
            "tests/unit", "tests/sim", *(f"--ignore=tests/sim/{f}" for f in pure)],
           cwd=ROOT, timeout=900, env=clean_env(), check=False)
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-3000:]
