"""``letrade-perf check`` against real simulator processes (subprocesses, loopback only)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from letrade_perf.config.credentials import Credentials
from letrade_perf.core.secrets import Secret
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_ED25519_API_KEY, DEMO_ED25519_PRIVATE_PEM

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKS = ("environment", "credentials", "connectivity", "clock", "rate limits", "account", "market data")


def _check(*args, env_vars=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}
    env.update(env_vars or {})
    return subprocess.run([sys.executable, "-m", "letrade_perf", "check", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)


def _rows(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^(\S+(?: \S+)?)\s{2,}(PASS|FAIL|WARN|SKIP)\s{2}(.*)$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_check_against_a_running_simulator_passes(sim):
    r = _check("--env", "sim", "--host", sim.base_url, "--profile", "smoke")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _rows(r.stdout)
    for name in CHECKS + ("profile", "symbols"):
        assert rows.get(name) in ("PASS", "WARN"), (name, r.stdout)
    assert re.search(r"server - local = [-+]\d+\.\d ms ± \d+\.\d ms", r.stdout)
    assert "REQUEST_WEIGHT 6000/1m" in r.stdout and "ORDERS 100/10s" in r.stdout
    assert "canTrade=true" in r.stdout and "SPOT" in r.stdout
    assert "all checks passed" in r.stdout
    assert DEMO_API_KEY not in r.stdout            # the key's middle is masked


def test_check_with_a_wrong_secret_names_the_auth_failure(sim, tmp_path):
    wrong = "wrongSecretDoNotPrint0123456789"
    key_file = tmp_path / "keys.yaml"
    key_file.write_text(f"api_key: {DEMO_API_KEY}\nsecret: {wrong}\n")
    os.chmod(key_file, 0o600)
    r = _check("--env", "sim", "--host", sim.base_url, "--key-file", str(key_file))
    assert r.returncode == 2, r.stdout + r.stderr
    rows = _rows(r.stdout)
    assert rows["account"] == "FAIL" and rows["connectivity"] == "PASS" and rows["credentials"] == "PASS"
    assert "authentication failed" in r.stdout and "-1022 Signature for this request is not valid." in r.stdout
    assert wrong not in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr


def test_check_with_an_unknown_key_and_an_ed25519_key(sim, tmp_path):
    r = _check("--env", "sim", "--host", sim.base_url,
               env_vars={"BINANCE_SIM_API_KEY": "X" * 64, "BINANCE_SIM_API_SECRET": "whatever123"})
    assert r.returncode == 2 and "-2015" in r.stdout, r.stdout
    pem = tmp_path / "ed.pem"
    pem.write_text(DEMO_ED25519_PRIVATE_PEM)
    os.chmod(pem, 0o600)
    r = _check("--env", "sim", "--host", sim.base_url,
               env_vars={"BINANCE_SIM_API_KEY": DEMO_ED25519_API_KEY, "BINANCE_SIM_PRIVATE_KEY_FILE": str(pem)})
    assert r.returncode == 0, r.stdout
    assert "ED25519 key" in r.stdout


def test_check_reports_an_unreachable_host():
    import socket
    with socket.socket() as s:          # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _check("--env", "sim", "--host", f"http://127.0.0.1:{port}")
    assert r.returncode == 2
    rows = _rows(r.stdout)
    assert rows["connectivity"] == "FAIL" and rows["market data"] == "SKIP"
    assert "cannot connect" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_check_starts_and_stops_an_embedded_simulator():
    r = _check("--profile", "rate-limit-probe")      # env sim, no host: embedded, with the profile's sim section
    assert r.returncode == 0, r.stdout + r.stderr
    assert "REQUEST_WEIGHT 600/1m" in r.stdout
    pid = int(re.search(r"embedded simulator started at http://127\.0\.0\.1:\d+ \(pid (\d+)\)", r.stdout).group(1))
    deadline = time.monotonic() + 10
    alive = True
    while alive and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            alive = False
    assert not alive, "the embedded simulator outlived the check"


def test_ed25519_credentials_sign_requests_the_simulator_accepts(sim):
    creds = Credentials(DEMO_ED25519_API_KEY, "ED25519", Secret(DEMO_ED25519_PRIVATE_PEM))
    query = creds.signed_query({"timestamp": int(time.time() * 1000)})
    r = sim.get("/api/v3/account?" + query, headers={"X-MBX-APIKEY": creds.api_key})
    assert r.status == 200, r.body
    assert r.json()["canTrade"] is True
    bad = query[:-6] + ("AAAA%3D%3D" if not query.endswith("AAAA%3D%3D") else "BBBB%3D%3D")
    r = sim.get("/api/v3/account?" + bad, headers={"X-MBX-APIKEY": creds.api_key})
    assert r.status in (400, 401) and r.json()["code"] == -1022
