"""docker-compose.yml: valid for docker-compose 1.29 (the OS package; no Docker engine needed for
``config``), and built the way the stack needs: loopback-only ports, a worker that scales, mounts
of files that exist, one run id and profile for master and workers, one InfluxDB token everywhere.

Also checks what the services run: the ``letrade-perf sim`` and ``locust`` options they pass exist
(through ``--help`` in subprocesses; Locust is never imported here).

docker-compose.testnet.yml (the testnet variant, a standalone file of the same project): no
simulator and nothing that points at one, ``--letrade-env testnet`` without ``--host``, credentials
only from environment interpolation or the ``binance_testnet`` file secret, and otherwise the same
services as docker-compose.yml.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import grafana_json as g
import pytest
import yaml

REPO = g.REPO
SERVICES = {"sim", "influxdb", "grafana", "locust-master", "locust-worker"}


def _compose_bin() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail("docker-compose not found: run scripts/bootstrap --test (it installs the OS package)")
    return path


def _compose_config(env_overrides: dict | None = None, compose_file: Path = g.COMPOSE_FILE) -> dict:
    """``docker-compose config``: the file as compose resolves it (anchors merged, variables set)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PROFILE", "LETRADE_", "LOCUST_", "GRAFANA_", "COMPOSE_", "BINANCE_"))}
    env.update(env_overrides or {})
    proc = subprocess.run([_compose_bin(), "-f", str(compose_file), "config"], cwd=REPO, env=env,
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
# the same rules for the simulator stack and the testnet variant
BOTH_FILES = pytest.mark.parametrize("which", [("raw", "resolved"), ("testnet_raw", "testnet_resolved")],
                                     ids=["sim", "testnet"])


@BOTH_FILES
def test_published_ports_bind_loopback_only(which, request):
    resolved = request.getfixturevalue(which[1])
    published = {}
    for name, svc in resolved["services"].items():
        for host_ip, port in _ports(svc):
            assert host_ip == "127.0.0.1", f"{name} publishes {port} on {host_ip or 'every interface'}"
            published[name] = port
    assert published == {"grafana": "3000", "influxdb": "8086", "locust-master": "8089"}


@BOTH_FILES
def test_worker_can_scale(which, request):
    raw, resolved = (request.getfixturevalue(f) for f in which)
    worker = resolved["services"]["locust-worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert all("container_name" not in svc for svc in raw["services"].values()), "fixed names break -p/scale"


# ------------------------------------------------------------------------ mounts and build
@BOTH_FILES
def test_bind_mounts_point_at_existing_paths(which, request):
    raw = request.getfixturevalue(which[0])
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


@pytest.mark.parametrize("which", ["sim", "testnet"])
def test_profile_and_run_id_come_from_the_environment(which):
    run_id = f"20260101T000000Z-{which}-md"
    settings = {"PROFILE": "market-data", "LETRADE_RUN_ID": run_id}
    cfg = _compose_config(settings) if which == "sim" else _testnet(settings)
    for name in ("locust-master", "locust-worker"):
        cmd = _command(cfg["services"][name])
        assert _option(cmd, "--profile") == "market-data"
        assert _option(cmd, "--letrade-run-id") == run_id
    assert _option(_command(cfg["services"]["locust-master"]), "--letrade-reports") == f"/app/reports/{run_id}"


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
    _assert_locust_parses(resolved["services"][service])


def _assert_locust_parses(svc: dict) -> None:
    locust = Path(sys.executable).with_name("locust")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "BINANCE_"))}
    env.update({k: v for k, v in _env(svc).items() if k.startswith("LOCUST_")})   # e.g. LOCUST_AUTOSTART
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([str(locust), *_command(svc), "--list"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "RestMarketData" in out.stdout


# ======================================================================== testnet variant
TESTNET_FILE = REPO / "docker-compose.testnet.yml"
TESTNET_SERVICES = SERVICES - {"sim"}
TESTNET_SECRET = "binance_testnet"
TESTNET_SECRET_PATH = f"/run/secrets/{TESTNET_SECRET}"
FAKE_API_KEY = "k" * 32 + "0123456789" * 3 + "ab"          # 64 letters/digits, like a real key
FAKE_SECRET = "s3cr3tUnderTest"
CREDENTIAL_VARS = {"BINANCE_TESTNET_API_KEY", "BINANCE_TESTNET_SECRET"}


@pytest.fixture(scope="module")
def testnet_raw() -> dict:
    return g.load_yaml(TESTNET_FILE)


@pytest.fixture(scope="module")
def testnet_resolved() -> dict:
    return _compose_config(compose_file=TESTNET_FILE)


def _testnet(env_overrides: dict | None = None) -> dict:
    return _compose_config(env_overrides, compose_file=TESTNET_FILE)


def _depends_on(service: dict) -> set[str]:
    deps = service.get("depends_on", {}) or {}
    return set(deps)          # list (short syntax) or mapping (long syntax, as `config` prints it)


def _secret_mounts(service: dict) -> dict[str, str]:
    """secret name -> path inside the container (compose mounts file secrets at /run/secrets/<target>)."""
    out = {}
    for ref in service.get("secrets", []) or []:
        source, target = (ref, None) if isinstance(ref, str) else (ref["source"], ref.get("target"))
        target = target or source
        out[source] = target if target.startswith("/") else f"/run/secrets/{target}"
    return out


def _without(cmd: list[str], option: str) -> list[str]:
    """``cmd`` without ``option`` and its value."""
    i = cmd.index(option)
    return cmd[:i] + cmd[i + 2:]


def test_testnet_config_is_valid():
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
    proc = subprocess.run([_compose_bin(), "-f", str(TESTNET_FILE), "config", "-q"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr


def test_testnet_no_obsolete_version_key(testnet_raw):
    assert "version" not in testnet_raw


def test_testnet_runs_no_simulator(testnet_raw, testnet_resolved):
    # `up` starts every service of the file: none is hidden behind a profile, and none is a simulator
    assert set(testnet_resolved["services"]) == TESTNET_SERVICES
    for name, svc in testnet_raw["services"].items():
        assert "profiles" not in svc, name
    for name, svc in testnet_resolved["services"].items():
        cmd = _command(svc)
        assert not cmd or cmd[0] != "sim", name
    text = yaml.safe_dump(testnet_resolved)
    assert "sim:8765" not in text and "8765" not in text


def test_testnet_nothing_depends_on_the_simulator(testnet_resolved):
    services = testnet_resolved["services"]
    for name, svc in services.items():
        assert _depends_on(svc) <= set(services), f"{name} depends on a service the file does not define"
        assert "sim" not in _depends_on(svc), name
        for key in ("links", "external_links", "network_mode", "volumes_from"):
            assert key not in svc, (name, key)
    assert services["locust-master"]["depends_on"] == {"influxdb": {"condition": "service_healthy"}}
    assert _depends_on(services["locust-worker"]) == {"locust-master"}


def test_testnet_master_and_workers_target_testnet_without_host(testnet_resolved):
    master = testnet_resolved["services"]["locust-master"]
    worker = testnet_resolved["services"]["locust-worker"]
    mc, wc = _command(master), _command(worker)
    assert master["entrypoint"] == ["locust"] and worker["entrypoint"] == ["locust"]
    assert "--master" in mc and "--worker" in wc
    assert _option(wc, "--master-host") == "locust-master"
    for cmd, svc in ((mc, master), (wc, worker)):
        assert _option(cmd, "--letrade-env") == "testnet"
        # no host: the plugin resolves testnet's REST, stream and WebSocket-API URLs itself
        assert "--host" not in cmd and "-H" not in cmd and not any(c.startswith("--host=") for c in cmd)
        assert "LOCUST_HOST" not in _env(svc)
        assert not any(urlsplit(c).hostname == "sim" for c in cmd if "://" in c), cmd
    for opt in ("-f", "--profile", "--letrade-env", "--letrade-run-id", "--letrade-key-file"):
        assert _option(mc, opt) == _option(wc, opt), opt
    assert _option(mc, "-f") == "locustfiles/binance.py"
    assert _option(mc, "--profile") == "smoke"
    assert _option(mc, "--letrade-run-id") == "compose-testnet"      # not the simulator stack's default
    assert _option(mc, "--letrade-reports") == "/app/reports/compose-testnet"


def test_testnet_is_the_base_stack_without_the_simulator():
    """Same InfluxDB, Grafana, image, volumes, ports and sink settings as docker-compose.yml (one
    compose project: `up` with either file keeps the other's InfluxDB and Grafana containers); the
    Locust services differ only in target, credentials and dependencies."""
    same = {"LETRADE_RUN_ID": "run-under-test", "LETRADE_INFLUX_TOKEN": "t0ken-under-test"}
    base, testnet = _compose_config(same), _testnet(same)
    assert testnet["volumes"] == base["volumes"]
    for name in ("influxdb", "grafana"):
        assert testnet["services"][name] == base["services"][name], name
    for name in ("locust-master", "locust-worker"):
        b, t = base["services"][name], testnet["services"][name]
        differ = {"command", "depends_on", "environment", "secrets"}
        assert {k: v for k, v in t.items() if k not in differ} == {k: v for k, v in b.items() if k not in differ}
        assert {k: v for k, v in _env(t).items() if k not in CREDENTIAL_VARS} == _env(b), name
        base_cmd = _without(_command(b), "--host")
        base_cmd[base_cmd.index("--letrade-env") + 1] = "testnet"
        assert _without(_command(t), "--letrade-key-file") == base_cmd, name


def test_testnet_credentials_come_only_from_interpolation_or_the_secret(testnet_raw):
    text = TESTNET_FILE.read_text()
    assert not re.search(r"(?<![A-Za-z0-9])[A-Za-z0-9]{64}(?![A-Za-z0-9])", text), "a literal API key?"
    assert testnet_raw["secrets"] == {TESTNET_SECRET: {"file": "${BINANCE_TESTNET_KEY_FILE:-/dev/null}"}}
    for name, svc in testnet_raw["services"].items():
        env = svc.get("environment", {}) or {}
        binance = {k: v for k, v in env.items() if k.startswith("BINANCE")}
        if name in ("locust-master", "locust-worker"):
            # testnet variables only, each interpolated: never the production BINANCE_API_* pair
            assert binance == {k: "${%s:-}" % k for k in CREDENTIAL_VARS}, name
            assert _secret_mounts(svc) == {TESTNET_SECRET: TESTNET_SECRET_PATH}, name
        else:
            assert not binance and "secrets" not in svc, name
        assert not any("BINANCE" in str(c) or "SECRET" in str(c) for c in svc.get("command", []) or []), name


def test_testnet_credentials_never_reach_a_command_line():
    cfg = _testnet({"BINANCE_TESTNET_API_KEY": FAKE_API_KEY, "BINANCE_TESTNET_SECRET": FAKE_SECRET})
    for name, svc in cfg["services"].items():
        words = " ".join(_command(svc) + [str(e) for e in svc.get("entrypoint", []) or []])
        assert FAKE_API_KEY not in words and FAKE_SECRET not in words, name
        if name in ("locust-master", "locust-worker"):
            env = _env(svc)
            assert env["BINANCE_TESTNET_API_KEY"] == FAKE_API_KEY
            assert env["BINANCE_TESTNET_SECRET"] == FAKE_SECRET
        else:
            assert FAKE_API_KEY not in yaml.safe_dump(svc) and FAKE_SECRET not in yaml.safe_dump(svc), name


def test_testnet_environment_credentials_reach_the_harness():
    """Default route: no key file (the secret mounts /dev/null, ``--letrade-key-file ''`` is no key
    file), so the workers' BINANCE_TESTNET_* variables are the credentials."""
    from letrade_perf.config.credentials import load_credentials
    from letrade_perf.config.environments import TESTNET

    cfg = _testnet({"BINANCE_TESTNET_API_KEY": FAKE_API_KEY, "BINANCE_TESTNET_SECRET": FAKE_SECRET})
    assert cfg["secrets"][TESTNET_SECRET]["file"] == "/dev/null"
    for name in ("locust-master", "locust-worker"):
        svc = cfg["services"][name]
        key_file = _option(_command(svc), "--letrade-key-file")
        assert key_file == ""
        creds = load_credentials(TESTNET, key_file=key_file, environ=_env(svc))
        assert creds is not None and creds.api_key == FAKE_API_KEY
        assert creds.secret.reveal() == FAKE_SECRET and "BINANCE_TESTNET_API_KEY" in creds.source
    # nothing set: no credentials, and no error from the empty values compose passes; the default
    # profile (smoke) then stops at init naming the variables, market-data needs none (the header)
    from letrade_perf.config.profile import load_profile
    from letrade_perf.preflight import credential_problem

    svc = _testnet()["services"]["locust-worker"]
    env, key_file = _env(svc), _option(_command(svc), "--letrade-key-file")
    assert env["BINANCE_TESTNET_API_KEY"] == ""
    assert load_credentials(TESTNET, key_file=key_file, environ=env) is None
    _, problem = credential_problem(load_profile(_option(_command(svc), "--profile")), TESTNET, key_file, environ=env)
    assert problem and "BINANCE_TESTNET_API_KEY" in problem
    assert credential_problem(load_profile("market-data"), TESTNET, key_file, environ=env) == (None, None)


def test_testnet_key_file_secret_reaches_the_harness(tmp_path):
    """Key-file route: the host file becomes /run/secrets/binance_testnet, the path Locust is given;
    the harness reads it only with mode 0600 (the header's chmod/chown)."""
    from letrade_perf.config.credentials import load_credentials
    from letrade_perf.config.environments import TESTNET
    from letrade_perf.core.errors import ConfigError

    key_file = tmp_path / "binance-testnet.yaml"
    key_file.write_text(f"api_key: {FAKE_API_KEY}\nsecret: {FAKE_SECRET}\nenv: testnet\n")
    key_file.chmod(0o600)
    cfg = _testnet({"BINANCE_TESTNET_KEY_FILE": str(key_file), "LETRADE_KEY_FILE": TESTNET_SECRET_PATH})
    assert Path(cfg["secrets"][TESTNET_SECRET]["file"]) == key_file
    for name in ("locust-master", "locust-worker"):
        svc = cfg["services"][name]
        assert _secret_mounts(svc) == {TESTNET_SECRET: TESTNET_SECRET_PATH}, name
        assert _option(_command(svc), "--letrade-key-file") == TESTNET_SECRET_PATH, name
        assert FAKE_SECRET not in yaml.safe_dump(svc), name
    # what the container sees at /run/secrets/binance_testnet is the host file, owner and mode included
    creds = load_credentials(TESTNET, key_file=str(key_file), environ={})
    assert creds is not None and creds.api_key == FAKE_API_KEY and creds.secret.reveal() == FAKE_SECRET
    key_file.chmod(0o640)
    with pytest.raises(ConfigError, match="0600"):
        load_credentials(TESTNET, key_file=str(key_file), environ={})


def test_testnet_header_documents_usage_and_every_setting():
    text = TESTNET_FILE.read_text()
    header = text[:text.index("\nx-letrade")]
    assert all(line.startswith("#") or not line.strip() for line in header.splitlines())
    assert "docker compose -f docker-compose.testnet.yml up -d --build --remove-orphans" in header
    assert "docker compose --env-file ~/.letrade-testnet.env -f docker-compose.testnet.yml up" in header
    assert "install -m 600" in header and TESTNET_SECRET_PATH in header
    uid = re.search(r"useradd\b.*--uid (\d+)", (REPO / "deploy" / "Dockerfile").read_text()).group(1)
    assert f"sudo chown {uid} " in header, "the key file must be owned by the image's user"
    assert f"uid {uid}" in header
    body = text[len(header):]
    for var in sorted(set(re.findall(r"\$\{([A-Z0-9_]+)", body))):
        assert var in header, f"{var} is not documented in the header"


@pytest.mark.parametrize("service", ["locust-master", "locust-worker"])
@pytest.mark.parametrize("key_file", ["", TESTNET_SECRET_PATH], ids=["env-credentials", "key-file"])
def test_locust_accepts_the_testnet_service_command(service, key_file):
    cfg = _testnet({"LETRADE_KEY_FILE": key_file} if key_file else None)
    _assert_locust_parses(cfg["services"][service])
