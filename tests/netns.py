"""Run a command with no network at all: a new network namespace (``unshare -n``).

Inside the namespace only a loopback interface exists, and it is down: name resolution and every
connection fail at once, so a test of "the target is unreachable" is fast and can never reach the
internet. There is no fallback — when a namespace cannot be created (not root, no CAP_SYS_ADMIN,
a container without user namespaces), :func:`run_offline` fails the test with the reason instead
of running the command with the network it was meant not to have.

Commands run from a fresh temporary directory (or ``cwd``) with ``PYTHONPATH`` = the repository
root, so ``[sys.executable, "-m", "letrade_perf", ...]`` imports this checkout and relative paths
(``reports/``) land in that directory, not in the repository.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Run in the namespace by :func:`offline_available`: prints what it sees and exits 0 only when
#: the namespace has no interface but ``lo``, ``lo`` is down (no address to connect to), and
#: both name resolution and a TCP connect to a public address fail at once.
_PROBE = r"""
import errno, socket, sys, time
names = sorted(n for _, n in socket.if_nameindex())
if names != ["lo"]:
    print("interfaces:", names); sys.exit(1)
try:
    socket.getaddrinfo("example.com", 443)
    print("name resolution works"); sys.exit(1)
except socket.gaierror:
    pass
t0 = time.monotonic()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect(("1.1.1.1", 443))
    print("connected to 1.1.1.1"); sys.exit(1)
except OSError as e:
    if e.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
        print("connect failed unexpectedly:", repr(e)); sys.exit(1)
finally:
    s.close()
if time.monotonic() - t0 > 1.0:
    print("connect did not fail at once"); sys.exit(1)
print("offline")
"""

_checked: tuple[bool, str] | None = None


def _unshare() -> str | None:
    return shutil.which("unshare") or next((p for p in ("/usr/bin/unshare", "/bin/unshare") if os.path.exists(p)),
                                           None)


def offline_available() -> tuple[bool, str]:
    """``(True, "")`` when :func:`run_offline` can run commands without network, else
    ``(False, why)``. Checked once per session by running a probe in a new namespace."""
    global _checked
    if _checked is not None:
        return _checked
    unshare = _unshare()
    if unshare is None:
        _checked = (False, "the `unshare` command (util-linux) is not installed")
        return _checked
    try:
        p = subprocess.run([unshare, "-n", "--", sys.executable, "-c", _PROBE], capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        _checked = (False, f"`unshare -n` could not run: {e}")
        return _checked
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0 or not p.stdout.strip().endswith("offline"):
        _checked = (False, f"`unshare -n` did not give an offline namespace (exit {p.returncode}): {out[-500:]}")
    else:
        _checked = (True, "")
    return _checked


def require_offline() -> None:
    """Fail the calling test (never skip, never run with network) when no namespace is possible."""
    ok, why = offline_available()
    if not ok:
        pytest.fail(f"offline tests need a network namespace without network (`unshare -n`, as root or with "
                    f"CAP_SYS_ADMIN); refusing to run them with network: {why}", pytrace=False)


def offline_env(env: dict | None = None, *, keep_binance: bool = False) -> dict:
    """The environment for an offline command: this process's, without ``BINANCE_*`` credentials
    (unless ``keep_binance``) and proxy settings, with ``PYTHONPATH`` = the repository root, plus ``env``."""
    e = {k: v for k, v in os.environ.items()
         if (keep_binance or not k.startswith("BINANCE_")) and k.lower() not in
         ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    e["PYTHONPATH"] = ROOT + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    e["PYTHONUNBUFFERED"] = "1"
    e.update(env or {})
    return e


def run_bounded(cmd: list[str], *, cwd: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd`` (text output captured) in a session of its own, bounded by ``timeout``.

    On timeout (or any interruption) the session's process group — the command and every child it
    started, e.g. Locust under ``letrade-perf run`` — is killed by the command's PID, and
    TimeoutExpired is raised. The result carries ``elapsed_s`` (monotonic wall time) and ``cwd``.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)     # the session started here: pgid == proc.pid
            except ProcessLookupError:
                pass
            proc.communicate()
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    result.elapsed_s = time.monotonic() - t0
    result.cwd = cwd
    return result


def run_offline(cmd: list[str], env: dict | None = None, timeout: float = 60.0, cwd: str | None = None,
                keep_binance: bool = False) -> subprocess.CompletedProcess:
    """Run ``cmd`` in a new network namespace without network; see the module docstring.

    ``env`` adds to (or replaces) variables of :func:`offline_env`. ``cwd`` defaults to a new
    temporary directory (the result's ``cwd`` attribute). The result also carries ``elapsed_s``
    (monotonic wall time of the command). On ``timeout`` the command's process group is killed
    (``unshare`` execs the command in place, in a session of its own, so its children go too)
    and TimeoutExpired is raised.
    """
    require_offline()
    if cwd is None:
        cwd = tempfile.mkdtemp(prefix="offline-")
    return run_bounded([_unshare(), "-n", "--", *cmd], cwd=str(cwd),
                       env=offline_env(env, keep_binance=keep_binance), timeout=timeout)
