"""Profiles, environments and credentials (profile schema and loader).

Submodules: :mod:`.profile` (schema, ``load_profile``, ``list_profiles``), :mod:`.environments`
(base URLs), :mod:`.credentials` (API keys and signing). Masking (:mod:`letrade_perf.core.secrets`),
the strict YAML → dataclass loader (:mod:`letrade_perf.core.strict`, shared with the simulator
config) and ``ConfigError`` (:mod:`letrade_perf.core.errors`) live at the bottom of the package,
in :mod:`letrade_perf.core`, and are re-exported here. Names are imported lazily.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "letrade_perf.core.errors", "ProfileError": "letrade_perf.core.errors",
    "Environment": f"{__name__}.environments", "environment": f"{__name__}.environments",
    "Credentials": f"{__name__}.credentials", "load_credentials": f"{__name__}.credentials",
    "Secret": "letrade_perf.core.secrets", "mask": "letrade_perf.core.secrets",
    "register_secret": "letrade_perf.core.secrets", "install_log_masking": "letrade_perf.core.secrets",
    "Profile": f"{__name__}.profile", "load_profile": f"{__name__}.profile", "list_profiles": f"{__name__}.profile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
