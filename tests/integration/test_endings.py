"""Every ending of ``letrade-perf run`` with real processes: the exit code, and the same code and
ending in summary.json and junit.xml (and the four reports present), no process left behind.

Endings here: headless Ctrl-C (SIGINT to the process group, as a terminal sends it), SIGTERM to
the run, the web UI's stop then Ctrl-C, Ctrl-C of ``--web`` after the test completed, a crash
of the Locust process (harness error), the web UI's port in use, a run cut short by a run time
(INCOMPLETE) and strategies stopped by the run's notional cap (INCOMPLETE). A worker lost with
SIGKILL is in ``test_workers_honest.py``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_run import ROOT, run_cli, run_dir  # noqa: E402

REPORTS = ("summary.json", "junit.xml", "summary.md", "summary.html")


def _profile(tmp_path, seconds: int = 6, pipeline: bool = False, **extra) -> str:
    doc = {"description": "endings test", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": f"{seconds}s", "users": 2, "spawn_rate": 2}],
           "users": {"rest_market": {"weight": 1, "wait_min_s": 0.2, "wait_max_s": 0.4}},
           "criteria": {"request": ["avg<2000"]}, "gate": {"eval_every_s": "1s"}}
    if pipeline:
        doc["users"]["pipeline"] = {"fixed_count": 1, "wait_min_s": 0.1, "wait_max_s": 0.2, "notional": 12,
                                    "strategy": {"force_every_s": "0.5s"}}
        doc["stages"][0]["users"] = 3
        doc["stages"][0]["spawn_rate"] = 3
    doc.update(extra)
    path = tmp_path / "endings.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _start(tmp_path, *args) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = open(tmp_path / "out.txt", "wb")
    return subprocess.Popen([sys.executable, "-m", "letrade_perf", "run", "--reports", str(tmp_path / "reports"),
                             *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _locust_running(proc) -> set[int]:
    return {p for p in _descendants(proc.pid) if b"locust" in _cmdline(p)}


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _finish(proc, tmp_path, seen: set[int], timeout: float = 90) -> tuple[int, str]:
    try:
        code = proc.wait(timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    out = (tmp_path / "out.txt").read_text(errors="replace")
    _wait_for(lambda: not _alive(seen), 15, f"no process left behind (alive: {_alive(seen)})")
    return code, out


def _check_reports(tmp_path, code: int, ending: str, verdict: str) -> dict:
    d = run_dir(str(tmp_path / "reports"))
    for name in REPORTS:
        assert os.path.exists(os.path.join(d, name)), (name, os.listdir(d))
    with open(os.path.join(d, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert (summary["ending"], summary["verdict"], summary["run"]["exit_code"]) == (ending, verdict, code), summary["run"]
    props = {p.get("name"): p.get("value")
             for p in ET.parse(os.path.join(d, "junit.xml")).getroot().iter("property")}
    assert (props["ending"], props["verdict"], props["exit_code"]) == (ending, verdict, str(code)), props
    return summary


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_operator_stop_of_a_headless_run_is_interrupted_everywhere(tmp_path, how):
    proc = _start(tmp_path, "--profile", _profile(tmp_path, seconds=60))
    seen = _wait_for(lambda: _locust_running(proc), 30, "Locust")
    time.sleep(6.0)       # the test is running (users spawned, the gate judging)
    seen |= _descendants(proc.pid)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)          # what a terminal does: every process of the group
    else:
        os.kill(proc.pid, signal.SIGTERM)
    code, out = _finish(proc, tmp_path, seen)
    assert code == 105, out[-3000:]
    summary = _check_reports(tmp_path, 105, "operator", "interrupted")
    assert summary["run"]["ending_reason"] == ("SIGINT (Ctrl-C)" if how == "ctrl-c" else "SIGTERM")
    assert os.path.exists(os.path.join(run_dir(str(tmp_path / "reports")), "report.html"))
    tail = out[out.rindex("verdict: INTERRUPTED"):]          # the verdict is at the end of the output
    assert "ending operator" in tail and "exit code 105" in tail and len(tail.splitlines()) <= 4, tail
    assert "Traceback" not in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, data: bytes = b"") -> dict:
    req = urllib.request.Request(url, data=data, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("stop", ["web-stop", "completed"])
def test_the_web_ui_stop_then_quit_is_an_operator_stop_and_quitting_after_the_end_is_not(tmp_path, stop):
    port = _free_port()
    seconds = 60 if stop == "web-stop" else 4
    proc = _start(tmp_path, "--profile", _profile(tmp_path, seconds=seconds), "--web", "--", "--web-port", str(port))
    base = f"http://127.0.0.1:{port}"
    _wait_for(lambda: _get_ok(base), 40, "the web UI")
    seen = _descendants(proc.pid)
    assert _post(base + "/swarm", b"user_count=1&spawn_rate=1")["success"]
    if stop == "web-stop":
        time.sleep(4.0)
        assert _post(base + "/stop")["success"]
    _wait_for(lambda: _state(base) == "stopped", 30, "the test to stop")
    seen |= _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)              # then quit, as one does: Ctrl-C
    code, out = _finish(proc, tmp_path, seen)
    if stop == "web-stop":
        assert code == 105, out[-3000:]
        summary = _check_reports(tmp_path, 105, "operator", "interrupted")
        assert summary["run"]["ending_reason"] == "the web UI's stop"
    else:
        assert code == 0, out[-3000:]
        summary = _check_reports(tmp_path, 0, "completed", "pass")
        assert summary["achieved"]["shortfalls"] == []
    assert "Traceback" not in out


def _get_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=2):
            return True
    except OSError:
        return False


def _state(base: str) -> str:
    with urllib.request.urlopen(base + "/stats/requests", timeout=5) as r:
        return json.loads(r.read())["state"]


def test_a_crash_of_the_locust_process_is_a_harness_error_in_every_report(tmp_path):
    proc = _start(tmp_path, "--profile", _profile(tmp_path, seconds=60))
    [locust] = _wait_for(lambda: _locust_running(proc), 30, "Locust")
    time.sleep(4.0)
    seen = _descendants(proc.pid)
    os.kill(locust, signal.SIGKILL)                 # as the OOM killer would
    code, out = _finish(proc, tmp_path, seen)
    assert code == 70, out[-3000:]
    summary = _check_reports(tmp_path, 70, "harness_error", "error")
    assert "signal SIGKILL" in summary["run"]["ending_reason"]


def test_a_web_ui_port_in_use_is_a_configuration_error_not_a_failed_criterion(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = run_cli("run", "--profile", _profile(tmp_path), "--web", "--reports", str(tmp_path / "reports"),
                    "--", "--web-port", str(port), timeout=60)
    assert p.returncode == 2, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"port 127.0.0.1:{port} is in use" in p.stderr
    summary = _check_reports(tmp_path, 2, "config_error", "error")
    assert summary["criteria"] == []                 # nothing was judged, nothing "failed"


def test_a_run_time_that_cuts_the_stages_short_is_incomplete(tmp_path):
    (tmp_path / "locust.conf").write_text("run-time = 3s\n")      # a stray config file, as users have
    p = run_cli("run", "--profile", _profile(tmp_path, seconds=12), "--reports", str(tmp_path / "reports"),
                "--", "--config", str(tmp_path / "locust.conf"), timeout=90)
    assert p.returncode == 4, p.stdout[-3000:] + p.stderr[-3000:]
    summary = _check_reports(tmp_path, 4, "completed", "incomplete")
    [short] = [s for s in summary["achieved"]["shortfalls"] if not s["tolerated"]]
    assert short["kind"] == "duration" and "run time of 3 s" in short["message"], short
    assert all(c["verdict"] == "pass" for c in summary["criteria"])      # the criteria alone would pass
    assert "shortfall: duration" in p.stdout


def test_strategies_stopped_by_the_run_cap_make_the_run_incomplete_not_pass(tmp_path):
    # the strategy's first buy (12 USDT) is past the run's 10 USDT cap: refused, it stops trading;
    # the criteria judge only REST latency, which passes (the pipeline's defaults would have no samples)
    judged = {"eval_every_s": "1s", "defaults": False}
    prof = _profile(tmp_path, seconds=8, pipeline=True, safety={"max_run_notional": 10}, gate=judged)
    p = run_cli("run", "--profile", prof, "--reports", str(tmp_path / "reports"), timeout=90)
    assert p.returncode == 4, p.stdout[-3000:] + p.stderr[-3000:]
    summary = _check_reports(tmp_path, 4, "completed", "incomplete")
    got = summary["achieved"]["achieved"]
    assert got["safety_refusals"] >= 1 and summary["orders"]["refused"] == got["safety_refusals"], got
    assert any(k.startswith("safety.max_run_notional") for k in got["strategies_stopped"]), got
    assert [s["kind"] for s in summary["achieved"]["shortfalls"] if not s["tolerated"]] == ["safety_refusals"]
    # the same profile tolerating it passes, with the shortfall still reported
    tolerant = _profile(tmp_path, seconds=8, pipeline=True, safety={"max_run_notional": 10}, gate=judged,
                        tolerate={"safety_refusals": 1000})
    p = run_cli("run", "--profile", tolerant, "--reports", str(tmp_path / "tolerant"), timeout=90)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    with open(os.path.join(run_dir(str(tmp_path / "tolerant")), "summary.json"), encoding="utf-8") as fh:
        tolerated = json.load(fh)["achieved"]["shortfalls"]
    assert [s["kind"] for s in tolerated] == ["safety_refusals"] and tolerated[0]["tolerated"]
