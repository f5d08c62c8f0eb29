"""Run metadata: the versions a run reports (``letrade-perf --version``, ``summary.json``) — read from the
installed distributions' metadata, never by importing Locust (it monkey-patches the process)."""
from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version


def versions() -> dict[str, str | None]:
    """``{"letrade_perf", "python", "locust", "ccxt"}`` (None for a package that is not installed)."""
    from .. import __version__

    out: dict[str, str | None] = {"letrade_perf": __version__, "python": platform.python_version(), "locust": None, "ccxt": None}
    for dist in ("locust", "ccxt"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def versions_line() -> str:
    """``letrade-perf X (locust Y, ccxt Z, Python P)``."""
    v = versions()
    return (f"letrade-perf {v['letrade_perf']} (locust {v['locust'] or 'not installed'}, "
            f"ccxt {v['ccxt'] or 'not installed'}, Python {v['python']})")


def git_commit(start: str | None = None) -> str | None:
    """The commit of the repository the harness runs from (or CI's commit variable), else None."""
    for var in ("LETRADE_GIT_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"):
        if os.environ.get(var):
            return os.environ[var]
    here = start or os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    if not os.path.exists(os.path.join(here, ".git")):
        return None
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None
