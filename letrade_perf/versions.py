"""The versions a run reports (``letrade-perf --version``, ``summary.json``) — read from the
installed distributions' metadata, never by importing Locust (it monkey-patches the process)."""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def versions() -> dict:
    """``{"letrade_perf", "python", "locust", "ccxt"}`` (None for a package that is not installed)."""
    from . import __version__

    out = {"letrade_perf": __version__, "python": platform.python_version(), "locust": None, "ccxt": None}
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
