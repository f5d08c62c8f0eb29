"""The embedded simulator's lifecycle: it never outlives the process that started it (SIGKILL
included), and its private files (``sim.yaml`` holds account secrets) are 0600 in a 0700
directory that is removed at every ending. Real processes, stopped by PID, bounded waits."""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from letrade_perf.core.procs import pid_alive, process_start_time
from letrade_perf.sim.process import OWNER_FILE, WORKDIR_PREFIX, remove_stale_workdirs, start_simulator

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TMP = tempfile.gettempdir()

SECRET = "LIFECYCLEsecret0123456789abcdefLIFECYCLE0123456789abcdefLIFECY01"
API_KEY = "lifecycleApiKey" + "0" * 49

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def sim_dirs() -> set[str]:
    return {os.path.join(TMP, n) for n in os.listdir(TMP) if n.startswith(WORKDIR_PREFIX)}


def files_containing(paths, needle: str) -> list[str]:
    hits = []
    for top in paths:
        for base, _, files in os.walk(top):
            for f in files:
                try:
                    with open(os.path.join(base, f), encoding="utf-8", errors="replace") as fh:
                        if needle in fh.read():
                            hits.append(os.path.join(base, f))
                except OSError:
                    pass
    return hits


def children_of(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(name))
    return out


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def assert_gone_with_workdir(sim_pid: int, workdir: str, killed: str) -> None:
    """The simulator exits within 5 s of its starter's SIGKILL, and its workdir goes too."""
    assert wait_gone(sim_pid, 5.0), f"the simulator outlived {killed} by 5 s"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(workdir):
        time.sleep(0.05)
    assert not os.path.exists(workdir), f"the simulator's workdir {workdir} was not removed"


def kill_if_alive(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(10)
    return p.pid


@linux_only
def test_sigkilled_run_takes_its_simulator_and_secret_files_along(tmp_path):
    profile = tmp_path / "lifecycle.yaml"
    profile.write_text(yaml.safe_dump({
        "description": "REST market data for a minute (lifecycle test)",
        "env": "sim",
        "symbols": ["BTCUSDT"],
        "stages": [{"duration": "60s", "users": 2, "spawn_rate": 2}],
        "users": {"rest_market": {"wait_min_s": 0.2, "wait_max_s": 0.5}},
        "sim": {"accounts": [{"api_key": API_KEY, "secret": SECRET}]},
    }))
    before = sim_dirs()
    log_path = tmp_path / "run.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    started = []
    with open(log_path, "wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "letrade_perf", "run", "--profile", str(profile),
                                "--reports", str(tmp_path / "reports")], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    started.append(run.pid)
    try:
        sim_pid = locust_pid = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None:
            out = log_path.read_text(errors="replace")
            m = re.search(r"simulator started \(pid (\d+)\)", out)
            if m and "All users spawned" in out:       # Locust is running its users against the simulator
                sim_pid = int(m.group(1))
                locusts = [c for c in children_of(run.pid) if "locust" in cmdline(c)]
                if locusts:
                    locust_pid = locusts[0]
                    started += [sim_pid, locust_pid]
                    break
            time.sleep(0.1)
        assert sim_pid is not None and locust_pid is not None, \
            f"no simulator/Locust child (run exit {run.poll()}):\n{log_path.read_text(errors='replace')[-3000:]}"
        assert pid_alive(sim_pid)
        m = re.search(r"--workdir (\S+)", cmdline(sim_pid))
        assert m, cmdline(sim_pid)
        workdir = m.group(1)
        assert files_containing([workdir], SECRET), "the running simulator's sim.yaml should hold the secret"

        os.kill(run.pid, signal.SIGKILL)
        run.wait(5)
        t0 = time.monotonic()
        assert wait_gone(sim_pid, 5.0), "the simulator outlived the SIGKILLed run by 5 s"
        sim_exit_s = time.monotonic() - t0
        assert_gone_with_workdir(sim_pid, workdir, "the SIGKILLed run")
        leftovers = files_containing(sim_dirs() - before, SECRET)
        assert not leftovers, f"secret left on disk: {leftovers}"
        print(f"simulator exited {sim_exit_s:.2f} s after the run's SIGKILL")
        # the Locust child goes too (parent-death signal → SIGTERM → its kill switch), not on with its stages
        assert wait_gone(locust_pid, 10.0), "the Locust child outlived the SIGKILLed run by 10 s"
    finally:
        for pid in reversed(started):
            kill_if_alive(pid)
        if run.poll() is None:
            run.wait(5)


def test_stop_removes_the_workdir(sim_factory):
    sim = sim_factory({"accounts": [{"api_key": API_KEY, "secret": SECRET}]})
    assert os.path.isdir(sim.workdir)
    assert files_containing([sim.workdir], SECRET)
    sim.stop()
    assert not os.path.exists(sim.workdir)
    assert not pid_alive(sim.pid)
    sim.stop()      # idempotent


def test_files_are_private_while_running(sim_factory):
    sim = sim_factory({"accounts": [{"api_key": API_KEY, "secret": SECRET}]})
    assert stat.S_IMODE(os.stat(sim.workdir).st_mode) == 0o700
    names = sorted(os.listdir(sim.workdir))
    assert {"sim.yaml", "sim.log", "ready", OWNER_FILE} <= set(names), names
    for name in names:
        mode = stat.S_IMODE(os.stat(os.path.join(sim.workdir, name)).st_mode)
        assert mode == 0o600, f"{name}: {oct(mode)}"


def test_a_failed_start_leaves_no_files():
    from letrade_perf.sim.process import SimulatorError

    before = sim_dirs()
    with pytest.raises(SimulatorError, match="no-such-option"):
        start_simulator({"accounts": [{"api_key": API_KEY, "secret": SECRET}]}, extra_args=["--no-such-option"])
    assert not files_containing(sim_dirs() - before, SECRET)


def make_workdir(owner: str | None) -> str:
    d = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
    with open(os.path.join(d, "sim.yaml"), "w") as fh:
        fh.write(f"accounts: [{{api_key: {API_KEY}, secret: {SECRET}}}]\n")
    if owner is not None:
        with open(os.path.join(d, OWNER_FILE), "w") as fh:
            fh.write(owner)
    return d


def test_stale_workdirs_are_removed_at_the_next_start():
    dead = make_workdir(f"{dead_pid()}\n")
    reused = make_workdir(f"{os.getppid()} 999999999999\n")   # a live PID, but another process's start time
    live = make_workdir(f"{os.getpid()} {process_start_time(os.getpid()) or ''}\n")
    live_no_start_time = make_workdir(f"{os.getppid()}\n")
    fresh_ownerless = make_workdir(None)                    # being created by someone right now
    try:
        sim = start_simulator()
        sim.stop()
        assert not os.path.exists(dead), "a dead owner's workdir survived the next start"
        if process_start_time(os.getppid()) is not None:
            assert not os.path.exists(reused), "a reused PID kept a dead owner's workdir"
        assert os.path.isdir(live) and os.path.isdir(live_no_start_time), "a live owner's workdir was removed"
        assert os.path.isdir(fresh_ownerless)
    finally:
        for d in (dead, reused, live, live_no_start_time, fresh_ownerless):
            if os.path.isdir(d):
                for f in os.listdir(d):
                    os.unlink(os.path.join(d, f))
                os.rmdir(d)


def test_old_ownerless_workdirs_are_removed(tmp_path):
    old = make_workdir(None)
    os.utime(old, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    other = tmp_path / (WORKDIR_PREFIX + "not-a-dir")
    other.write_text(SECRET)                                 # not a directory: left alone
    try:
        remove_stale_workdirs()
        assert not os.path.exists(old), "an ownerless workdir older than an hour survived"
        assert remove_stale_workdirs(str(tmp_path)) == [] and other.exists()
    finally:
        if os.path.isdir(old):
            for f in os.listdir(old):
                os.unlink(os.path.join(old, f))
            os.rmdir(old)


@linux_only
def test_simulator_started_from_a_thread_also_dies_with_its_owner(tmp_path):
    """Off the main thread there is no PR_SET_PDEATHSIG (it follows the forking thread, not the
    process): the watchdog pipe alone must end the simulator, and only once the owner dies."""
    code = ("import threading, time, sys\n"
            "from letrade_perf.sim.process import start_simulator\n"
            "out = []\n"
            "t = threading.Thread(target=lambda: out.append(start_simulator("
            f"{{'accounts': [{{'api_key': '{API_KEY}', 'secret': '{SECRET}'}}]}})))\n"
            "t.start(); t.join()\n"
            "time.sleep(1.0)\n"   # the starting thread has ended: the simulator must still run
            "print(out[0].pid, out[0].workdir, flush=True)\n"
            "time.sleep(120)\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    owner = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    sim_pid = None
    try:
        line = owner.stdout.readline()
        assert line, f"the owner exited early ({owner.wait(10)})"
        sim_pid_s, workdir = line.split()
        sim_pid = int(sim_pid_s)
        assert pid_alive(sim_pid) and "--parent-death-signal" not in cmdline(sim_pid)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(5)
        assert_gone_with_workdir(sim_pid, workdir, "its SIGKILLed owner")
    finally:
        kill_if_alive(owner.pid)
        if sim_pid is not None:
            kill_if_alive(sim_pid)
        owner.stdout.close()
        owner.wait(5)


@linux_only
def test_sigkilled_locust_takes_its_embedded_simulator_along(tmp_path):
    """The plugin path: a plain ``locust`` run with env sim and no --host starts the simulator."""
    profile = tmp_path / "plugin.yaml"
    profile.write_text(yaml.safe_dump({
        "description": "REST market data for a minute (lifecycle test, plugin path)",
        "env": "sim", "symbols": ["BTCUSDT"],
        "stages": [{"duration": "60s", "users": 1, "spawn_rate": 1}],
        "users": {"rest_market": {"wait_min_s": 0.2, "wait_max_s": 0.5}},
        "sim": {"accounts": [{"api_key": API_KEY, "secret": SECRET}]},
    }))
    log_path = tmp_path / "locust.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_path, "wb") as log:
        loc = subprocess.Popen([sys.executable, "-m", "locust", "-f", os.path.join(ROOT, "locustfiles", "binance.py"),
                                "--profile", str(profile), "--headless", "--letrade-reports", str(tmp_path / "r")],
                               cwd=str(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    sim_pid = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and loc.poll() is None:
            out = log_path.read_text(errors="replace")
            m = re.search(r"embedded simulator started \(pid (\d+)\)", out)
            if m and "All users spawned" in out:
                sim_pid = int(m.group(1))
                break
            time.sleep(0.1)
        assert sim_pid is not None, f"no embedded simulator (exit {loc.poll()}):\n{log_path.read_text()[-3000:]}"
        workdir = re.search(r"--workdir (\S+)", cmdline(sim_pid)).group(1)
        assert files_containing([workdir], SECRET)
        os.kill(loc.pid, signal.SIGKILL)
        loc.wait(5)
        assert_gone_with_workdir(sim_pid, workdir, "the SIGKILLed Locust process")
    finally:
        kill_if_alive(loc.pid)
        if sim_pid is not None:
            kill_if_alive(sim_pid)
        loc.wait(5)
