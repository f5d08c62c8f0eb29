"""Where the package's data lives — the same whether installed from a wheel or run from a checkout.

The bundled profiles, the Grafana dashboards and provisioning, and the locustfile are package
data inside ``letrade_perf/`` (a source checkout links ``profiles/`` and ``deploy/grafana/`` to
them), so an installed ``letrade-perf`` needs no source tree. ``letrade-perf paths`` prints them.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TextIO

PKG_DIR = Path(__file__).resolve().parent.parent   # letrade_perf/ (this file is letrade_perf/core/resources.py)


def locustfile_path() -> str:
    """The locustfile for ``locust -f`` (it imports :mod:`letrade_perf.locustfile`)."""
    return str(PKG_DIR / "locustfiles" / "letrade_perf_binance.py")


def profiles_dir() -> str:
    """The bundled profiles (``*.yaml``)."""
    return str(PKG_DIR / "profiles")


def grafana_dir() -> str:
    """Grafana provisioning (``provisioning/``) and dashboards (``dashboards/*.json``)."""
    return str(PKG_DIR / "grafana")


def dashboards_dir() -> str:
    """The Grafana dashboards (``letrade-live.json``, ``letrade-trends.json``)."""
    return str(PKG_DIR / "grafana" / "dashboards")


def paths() -> dict[str, str]:
    """Every data location by name (``letrade-perf paths``)."""
    return {"locustfile": locustfile_path(), "profiles": profiles_dir(), "dashboards": dashboards_dir(),
            "grafana": grafana_dir(), "package": str(PKG_DIR)}


def source_checkout() -> str | None:
    """The repository root when the package is imported from a source checkout, else None."""
    root = PKG_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "locustfiles").is_dir():
        return str(root)
    return None


def run_from_args(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``letrade-perf paths [NAME]``: one path, or every one as ``name: path``."""
    import sys

    out = out or sys.stdout
    table = paths()
    if args.name:
        print(table[args.name], file=out)
        return 0
    width = max(len(k) for k in table)
    for k, v in table.items():
        print(f"{k:<{width}}  {v}", file=out)
    return 0 if all(os.path.exists(v) for v in table.values()) else 2
