"""Run the simulator in its own process (it is asyncio; the harness is gevent) and stop it by PID.

Used by ``letrade-perf demo``, by ``letrade-perf run`` with env ``sim``, by the test fixtures and
by ``bench/``.

An embedded simulator never outlives the process that started it (the *owner*, whoever called
:func:`start_simulator`), whatever killed the owner, SIGKILL included:

* on Linux the child asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, only
  when started from the owner's main thread: the signal follows the forking *thread*), then
  checks ``os.getppid()`` to close the race with a parent that died first;
* everywhere, the child inherits the read end of a pipe whose only write end the owner keeps: end
  of file means the owner is gone, and the child stops itself (SIGTERM, the simulator's own clean
  shutdown; a hard exit if that hangs).

Its files (``sim.yaml`` with the accounts' secrets, ``sim.log``, the ready file, ``owner``) live
in a private ``letrade-sim-*`` directory (0700, files 0600) that is removed at every ending: by
:meth:`SimulatorProcess.stop`; by the child when it exits because its owner died; and, for what a
crash of both left behind, by the next :func:`start_simulator` of the same user (directories whose
owner PID is dead).
"""
from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from typing import Sequence

import yaml

from ..core.procs import on_main_thread, pid_alive, process_start_time, set_parent_death_signal, stop_process

WORKDIR_PREFIX = "letrade-sim-"
OWNER_FILE = "owner"
LEGACY_MAX_AGE_S = 3600.0
"""A ``letrade-sim-*`` directory without an owner file (written by an older version, or one being
created right now) is removed at start only when older than this."""
EXIT_GRACE_S = 10.0
"""How long the child waits for its clean shutdown after its owner died before it exits hard."""

_WATCHDOG_FDS: dict[int, int] = {}
"""Simulator PID → write end of its watchdog pipe (a raw fd: garbage collection never closes it)."""
_WATCHDOG_LOCK = threading.Lock()


class SimulatorError(RuntimeError):
    """The simulator process could not be started."""


class SimulatorProcess:
    """A simulator subprocess listening on ``base_url``; :meth:`stop` ends it by PID and removes
    its working directory."""

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
        """SIGTERM, then SIGKILL after ``timeout`` seconds; removes the working directory (its log
        with it); returns the exit code. Idempotent."""
        try:
            return stop_process(self.proc, timeout)
        finally:
            _close_watchdog(self.proc.pid)
            _remove_workdir(self.workdir)

    def __enter__(self) -> "SimulatorProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_simulator(config: dict | None = None, extra_args: Sequence[str] = (), host: str = "127.0.0.1",
                    port: int = 0, timeout: float = 30.0, cpu: int | None = None,
                    python: str | None = None) -> SimulatorProcess:
    """Start ``python -m letrade_perf sim`` on ``host:port`` (0 = a free port) and wait until it listens.

    ``config`` is a simulator config mapping (the YAML schema of ``letrade-perf sim --config``);
    ``cpu`` pins the process to one core (``taskset``) for benchmarks. The process ends when the
    caller's process dies (see the module docstring).
    """
    remove_stale_workdirs()
    workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)        # 0700
    read_fd = write_fd = -1
    proc = None
    try:
        me = os.getpid()
        _write_private(os.path.join(workdir, OWNER_FILE), f"{me} {process_start_time(me) or ''}\n")
        ready = os.path.join(workdir, "ready")
        sim_args = ["--host", host, "--port", str(port), "--ready-file", ready, "--log-level", "WARNING"]
        if config:
            cfg_path = os.path.join(workdir, "sim.yaml")
            _write_private(cfg_path, yaml.safe_dump(config))
            sim_args += ["--config", cfg_path]
        sim_args += list(extra_args)
        read_fd, write_fd = os.pipe()          # both ends non-inheritable; the child gets read_fd
        args = [python or sys.executable, "-m", "letrade_perf.sim.process", "--workdir", workdir,
                "--owner-pid", str(me), "--watchdog-fd", str(read_fd)]
        if on_main_thread():
            args.append("--parent-death-signal")
        args += ["--"] + sim_args
        if cpu is not None:
            args = ["taskset", "-c", str(cpu)] + args
        log_path = os.path.join(workdir, "sim.log")
        env = dict(os.environ)
        from ..core.resources import source_checkout
        checkout = source_checkout()
        if checkout is not None:     # a source checkout: the child imports this tree, not another install
            env["PYTHONPATH"] = checkout + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o600)
        try:
            proc = subprocess.Popen(args, stdout=log_fd, stderr=subprocess.STDOUT, env=env, pass_fds=(read_fd,))
        finally:
            os.close(log_fd)
            os.close(read_fd)
            read_fd = -1
        with _WATCHDOG_LOCK:
            _WATCHDOG_FDS[proc.pid] = write_fd
        write_fd = -1
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
    except BaseException:
        if proc is not None and proc.poll() is None:
            stop_process(proc, 5.0)
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        if proc is not None:
            _close_watchdog(proc.pid)
        _remove_workdir(workdir)
        raise


def _write_private(path: str, text: str) -> None:
    """Create ``path`` (it must not exist) readable by its owner only, with ``text``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _close_watchdog(pid: int) -> None:
    with _WATCHDOG_LOCK:
        fd = _WATCHDOG_FDS.pop(pid, None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _remove_workdir(workdir: str) -> None:
    shutil.rmtree(workdir, ignore_errors=True)


# -- stale working directories ---------------------------------------------------------------------

def _owner_alive(workdir: str) -> bool | None:
    """Whether the process that created ``workdir`` still runs (None: no readable owner file)."""
    try:
        fd = os.open(os.path.join(workdir, OWNER_FILE), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, encoding="ascii", errors="replace") as fh:
            fields = fh.read(200).split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return True
    if not pid_alive(pid):
        return False
    started = fields[1] if len(fields) > 1 else None
    if started and process_start_time(pid) not in (None, started):
        return False        # the PID was reused by another process
    return True


def remove_stale_workdirs(tmpdir: str | None = None) -> list[str]:
    """Remove this user's ``letrade-sim-*`` directories (in ``tmpdir``, default the temp dir)
    whose owner process is dead, or that have no owner file and are older than
    :data:`LEGACY_MAX_AGE_S`; returns the removed paths. Never raises."""
    base = tmpdir or tempfile.gettempdir()
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(base) if n.startswith(WORKDIR_PREFIX)]
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for name in names:
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or (uid is not None and st.st_uid != uid):
            continue        # not ours (or a symlink): leave it alone
        alive = _owner_alive(path)
        if alive is None:
            if time.time() - st.st_mtime < LEGACY_MAX_AGE_S:
                continue    # being created right now, or an older version's running simulator
        elif alive:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            removed.append(path)
    return removed


# -- the child: the simulator, tied to its owner ---------------------------------------------------

def _child_main(argv: Sequence[str]) -> int:
    """``python -m letrade_perf.sim.process --workdir D --owner-pid P --watchdog-fd N
    [--parent-death-signal] -- <letrade-perf sim arguments>``: run the simulator in this process,
    stopping it when the owner dies (and then removing ``D``)."""
    import argparse

    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog="python -m letrade_perf.sim.process")
    p.add_argument("--workdir", required=True)
    p.add_argument("--owner-pid", type=int, required=True)
    p.add_argument("--watchdog-fd", type=int, default=None)
    p.add_argument("--parent-death-signal", action="store_true")
    opts = p.parse_args(argv[:split])
    sim_args = argv[split + 1:]
    os.umask(0o077)                 # whatever the simulator writes (the ready file) is private too

    def owner_gone() -> bool:
        return os.getppid() != opts.owner_pid

    def on_term(signum, frame):     # until the simulator's event loop installs its own handler
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    if opts.parent_death_signal:
        set_parent_death_signal(signal.SIGTERM)
    try:
        if owner_gone():            # the owner died before we were tied to it
            return 1
        if opts.watchdog_fd is not None:
            threading.Thread(target=_watch_owner, args=(opts.watchdog_fd, opts.workdir, owner_gone),
                             name="owner-watchdog", daemon=True).start()
        from .args import main
        return main(sim_args)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if owner_gone():            # nobody else will remove our files
            _remove_workdir(opts.workdir)


def _watch_owner(fd: int, workdir: str, owner_gone) -> None:
    """Block on the watchdog pipe; at end of file (the owner closed it or died), stop the
    simulator cleanly, and exit hard if that takes longer than :data:`EXIT_GRACE_S`."""
    try:
        while os.read(fd, 512):
            pass
    except OSError:
        pass
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except OSError:
        pass
    time.sleep(EXIT_GRACE_S)
    if owner_gone():
        _remove_workdir(workdir)
    os._exit(1)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
