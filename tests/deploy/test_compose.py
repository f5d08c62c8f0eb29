"""docker-compose.yml: valid for docker-compose 1.29 (the OS package; no Docker engine needed for
``config``), and built the way the stack needs: loopback-only ports, a worker that scales, mounts
of files that exist, one run id and profile for master and workers, one InfluxDB token everywhere.

Also checks what the services run: the ``letrade-perf sim`` and ``locust`` options they pass exist
(through ``--help`` in subprocesses; Locust is never imported here).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import grafana_json as g

REPO = g.REPO
SERVICES = {"sim", "influxdb", "grafana", "locust-master", "locust-worker"}


def _compose_bin() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail("docker-compose not found: run scripts/bootstrap --test (it installs the OS package)")
    return path


def _compose_config(env_overrides: dict | None = None) -> dict:
    """``docker-compose config``: the file as compose resolves it (anchors merged, variables set)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PROFILE", "LETRADE_", "LOCUST_", "GRAFANA_", "COMPOSE_"))}
    env.update(env_overrides or {})
    proc = subprocess.run([_compose_bin(), "-f", str(g.COMPOSE_FILE), "config"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return g.load_yaml(g.COMPOSE_FILE)


@pytest.fixture(scope="module")
def resolved() -> dict:
    return _compose_config()


def _env(service: dict) -> dict:
    env = service.get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def _option(cmd: list[str], name: str) -> str:
    assert name in cmd, f"{name} missing from {cmd}"
    return cmd[cmd.index(name) + 1]


def _ports(service: dict) -> list[tuple[str | None, str]]:
    """(host ip, published port) of every port, short or long syntax."""
    out = []
    for p in service.get("ports", []) or []:
        if isinstance(p, dict):
            out.append((p.get("host_ip"), str(p.get("published"))))
        else:
            parts = str(p).split(":")
            out.append((parts[0] if len(parts) == 3 else None, parts[-2] if len(parts) >= 2 else parts[0]))
    return out


# ------------------------------------------------------------------------ validity
def test_docker_compose_config_is_valid():
    proc = subprocess.run([_compose_bin(), "-f", str(g.COMPOSE_FILE), "config", "-q"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr


def test_no_obsolete_version_key(raw):
    # docker compose v2 warns that `version` is obsolete; 1.29 reads the Compose Specification without it
    assert "version" not in raw


def test_services(resolved):
    assert set(resolved["services"]) == SERVICES


# ------------------------------------------------------------------------ network exposure
def test_published_ports_bind_loopback_only(resolved):
    published = {}
    for name, svc in resolved["services"].items():
        for host_ip, port in _ports(svc):
            assert host_ip == "127.0.0.1", f"{name} publishes {port} on {host_ip or 'every interface'}"
            published[name] = port
    assert published == {"grafana": "3000", "influxdb": "8086", "locust-master": "8089"}


def test_worker_can_scale(raw, resolved):
    worker = resolved["services"]["locust-worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert all("container_name" not in svc for svc in raw["services"].values()), "fixed names break -p/scale"


# ------------------------------------------------------------------------ mounts and build
def test_bind_mounts_point_at_existing_paths(raw):
    named = set(raw.get("volumes", {}) or {})
    for name, svc in raw["services"].items():
        for v in svc.get("volumes", []):
            source, target = v.split(":")[:2]
            assert target.startswith("/"), (name, v)
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} not declared"


def test_images_are_built_from_deploy_dockerfile(resolved):
    for name in ("sim", "locust-master", "locust-worker"):
        svc = resolved["services"][name]
        assert svc["image"] == "letrade-perf:local", name
        assert Path(svc["build"]["context"]).resolve() == REPO, name
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile", name
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r"^RUN pip install \.", dockerfile, re.M)
    assert '["letrade-perf"]' in dockerfile and re.search(r"^ENTRYPOINT", dockerfile, re.M)
    for src in re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile, re.M):
        for path in src.split():
            assert (REPO / path).exists(), f"Dockerfile copies missing {path}"


def test_influxdb_init_script_creates_the_dbrp_mapping(resolved):
    influx = resolved["services"]["influxdb"]
    assert influx["image"].startswith("influxdb:2")
    env = _env(influx)
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] == "letrade"
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == "letrade_perf"
    assert len(env["DOCKER_INFLUXDB_INIT_PASSWORD"]) >= 8      # influx setup refuses shorter ones
    mounts = {v.split(":")[1]: v.split(":")[0] for v in influx["volumes"] if ":" in v}
    init_dir = Path(mounts["/docker-entrypoint-initdb.d"])
    scripts = sorted(init_dir.glob("*.sh"))
    assert scripts, "no init script"
    for script in scripts:
        # the image runs them with run-parts: executable *.sh files only
        assert os.access(script, os.X_OK), f"{script} is not executable"
        assert script.read_text().startswith("#!/bin/bash")
        subprocess.run(["bash", "-n", str(script)], check=True)
    text = "".join(s.read_text() for s in scripts)
    assert "influx v1 dbrp create" in text
    for flag in ("--db", "--rp autogen", '--bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}"', "--default"):
        assert flag in text, flag


# ------------------------------------------------------------------------ what runs
def test_sim_binds_all_interfaces_inside_its_container(resolved):
    cmd = _command(resolved["services"]["sim"])
    assert cmd[0] == "sim"
    assert _option(cmd, "--host") == "0.0.0.0" and _option(cmd, "--port") == "8765"
    assert "ports" not in resolved["services"]["sim"]        # reachable from the compose network only


def test_master_and_workers_run_the_same_profile_and_run_id(resolved):
    master = resolved["services"]["locust-master"]
    worker = resolved["services"]["locust-worker"]
    mc, wc = _command(master), _command(worker)
    assert master["entrypoint"] == ["locust"] and worker["entrypoint"] == ["locust"]
    assert "--master" in mc and "--worker" in wc
    assert _option(wc, "--master-host") == "locust-master"
    for opt in ("-f", "--profile", "--host", "--letrade-env", "--letrade-run-id"):
        assert _option(mc, opt) == _option(wc, opt), opt
    assert _option(mc, "-f") == "locustfiles/binance.py" and (REPO / "locustfiles" / "binance.py").is_file()
    assert _option(mc, "--profile") == "smoke"
    assert _option(mc, "--host") == "http://sim:8765"
    assert _option(mc, "--letrade-env") == "sim"


def test_profile_and_run_id_come_from_the_environment():
    cfg = _compose_config({"PROFILE": "market-data", "LETRADE_RUN_ID": "20260101T000000Z-md"})
    for name in ("locust-master", "locust-worker"):
        cmd = _command(cfg["services"][name])
        assert _option(cmd, "--profile") == "market-data"
        assert _option(cmd, "--letrade-run-id") == "20260101T000000Z-md"


def test_one_influx_token_for_influxdb_sink_and_grafana():
    cfg = _compose_config({"LETRADE_INFLUX_TOKEN": "t0ken-under-test"})
    services = cfg["services"]
    assert _env(services["influxdb"])["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == "t0ken-under-test"
    assert _env(services["grafana"])["LETRADE_INFLUX_TOKEN"] == "t0ken-under-test"
    for name in ("locust-master", "locust-worker"):
        env = _env(services[name])
        assert env["LETRADE_INFLUX_TOKEN"] == "t0ken-under-test"
        assert env["LETRADE_INFLUX_URL"] == "http://influxdb:8086"
        assert env["LETRADE_INFLUX_ORG"] == "letrade"
        assert env["LETRADE_INFLUX_BUCKET"] == "letrade_perf"


def test_grafana_service(resolved):
    grafana = resolved["services"]["grafana"]
    assert grafana["image"].split(":")[0] in ("grafana/grafana", "grafana/grafana-oss")
    env = _env(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    ro = [v for v in grafana["volumes"] if "provisioning" in str(v) or "dashboards" in str(v)]
    assert len(ro) == 3 and all(str(v).endswith(":ro") for v in ro), ro


def test_sim_command_options_exist():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sim = subprocess.run([sys.executable, "-m", "letrade_perf", "sim", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert sim.returncode == 0, sim.stderr
    assert "--host" in sim.stdout and "--port" in sim.stdout


@pytest.mark.parametrize("service", ["locust-master", "locust-worker"])
def test_locust_accepts_the_service_command(resolved, service):
    """The service's exact Locust command line parses, plugin options included: run with ``--list``,
    which exits after parsing and loading the locustfile, before binding or connecting anything.
    (A subprocess: Locust monkey-patches whatever process imports it.)"""
    svc = resolved["services"][service]
    locust = Path(sys.executable).with_name("locust")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env.update({k: v for k, v in _env(svc).items() if k.startswith("LOCUST_")})   # e.g. LOCUST_AUTOSTART
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([str(locust), *_command(svc), "--list"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "RestMarketData" in out.stdout
