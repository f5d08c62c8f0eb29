"""Stopping child processes by PID: the one way every part of letrade-perf (and its tests) ends a
process it started; and tying a child's life to its parent's (it must not outlive a crashed or
SIGKILLed parent)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any, Callable

PR_SET_PDEATHSIG = 1


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
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


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent *thread* exits
    (``prctl(PR_SET_PDEATHSIG)``). Returns False where unsupported.

    Call it in the child (after exec or in a ``preexec_fn``), then compare ``os.getppid()`` with
    the expected parent: a parent that died before the call is not signalled.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        rc: int = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        return rc == 0
    except (OSError, AttributeError):
        return False


def on_main_thread() -> bool:
    """True when the calling OS thread is the process's main thread (whatever gevent patched).

    ``PR_SET_PDEATHSIG`` fires when the thread that forked the child exits, so it is only safe to
    ask for it from the main thread (whose end is the process's end).
    """
    try:
        return os.readlink("/proc/thread-self").rsplit("/", 1)[-1] == str(os.getpid())
    except OSError:
        import threading
        return threading.current_thread() is threading.main_thread()


def parent_death_preexec(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that ends the child with ``sig`` when the
    caller dies (Linux; None elsewhere, or when not called from the main thread — see
    :func:`on_main_thread`). Usage: ``Popen(cmd, preexec_fn=parent_death_preexec())``."""
    if not sys.platform.startswith("linux") or not on_main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        set_parent_death_signal(sig)
        if os.getppid() != parent:       # the parent died before prctl: nobody will signal us
            os.kill(os.getpid(), sig)
    return preexec


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists and is not a zombie (any owner)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = _proc_stat(pid)
    return not (stat is not None and stat[0] == "Z")


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``; None elsewhere): with
    the PID it names one process, even after the PID is reused."""
    stat = _proc_stat(pid)
    return stat[19] if stat is not None and len(stat) > 19 else None


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()
