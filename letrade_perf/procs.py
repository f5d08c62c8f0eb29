"""Stopping child processes by PID: the one way every part of letrade-perf (and its tests) ends a
process it started."""
from __future__ import annotations

import os
import signal
import subprocess


def stop_process(proc: subprocess.Popen, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
    """Send ``sig`` (SIGTERM), wait ``timeout`` seconds, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass
    return proc.returncode
