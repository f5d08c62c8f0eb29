"""Profiles, environments and credentials (profile schema and loader).

Submodules: :mod:`.profile` (schema, ``load_profile``, ``list_profiles``), :mod:`.environments`
(base URLs), :mod:`.credentials` (API keys and signing), :mod:`.secrets` (masking),
:mod:`.strict` (the strict YAML → dataclass loader, shared with the simulator config),
:mod:`.errors` (``ConfigError``). Names are imported lazily so the simulator, which uses
:mod:`.strict`, does not import the profile schema.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "ConfigError": "errors", "ProfileError": "errors",
    "Environment": "environments", "environment": "environments",
    "Credentials": "credentials", "load_credentials": "credentials",
    "Secret": "secrets", "mask": "secrets", "register_secret": "secrets", "install_log_masking": "secrets",
    "Profile": "profile", "load_profile": "profile", "list_profiles": "profile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
