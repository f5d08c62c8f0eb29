"""Validation of a run summary against ``summary.schema.json`` (JSON Schema draft 2020-12).

:func:`validate_summary` checks the document with ``jsonschema`` (a runtime dependency,
``Draft202012Validator``) and reports the first problem as ``$.json.path: what is wrong``
(``required`` and ``additionalProperties`` failures name the missing or unexpected key).

Before the schema, the document is checked for values JSON cannot carry (NaN, infinities,
objects that are not dicts/lists/strings/numbers/booleans/None), because ``json.dump`` would
either write invalid JSON or fail without saying where.
"""
from __future__ import annotations

import json
import math
import os
import re
from functools import lru_cache
from typing import Any

import jsonschema

SCHEMA_PATH: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "summary.schema.json")
"""The shipped JSON Schema of the summary."""
SCHEMA_ID = "letrade-perf/summary"
SCHEMA_VERSION = 1
"""The summary schema version this letrade-perf writes and reads."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The shipped schema as a dict (read once)."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def json_path(parts) -> str:
    """``$.criteria[2].verdict`` for ``("criteria", 2, "verdict")``."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _IDENT.match(str(p)):
            out += f".{p}"
        else:
            out += "[" + json.dumps(str(p)) + "]"
    return out


def validate_summary(summary: Any) -> None:
    """Raise :class:`ValueError` ``"summary $.path: problem"`` for the first problem in ``summary``.

    Checks, in order: that it is a letrade-perf summary of :data:`SCHEMA_VERSION` (a clear message
    for a file from another tool or version), that every value is JSON-able and finite, and then
    the schema (with ``jsonschema``).
    """
    if not isinstance(summary, dict):
        raise ValueError(f"summary $: expected a JSON object, got {type(summary).__name__}")
    if summary.get("schema") != SCHEMA_ID:
        raise ValueError(f"summary $.schema: expected {SCHEMA_ID!r}, got {summary.get('schema')!r} "
                         "(not a letrade-perf summary)")
    version = summary.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"summary $.schema_version: version {version!r} is not supported "
                         f"(this letrade-perf reads version {SCHEMA_VERSION})")
    problem = _first_non_json(summary, ())
    if problem is not None:
        raise ValueError(f"summary {problem}")
    # Validate what will actually be written: tuples become lists, int-valued floats stay floats.
    document = json.loads(json.dumps(summary))
    problem = _first_schema_problem(document)
    if problem is not None:
        raise ValueError(f"summary {problem}")


def _first_non_json(value: Any, parts: tuple) -> str | None:
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{json_path(parts)}: {value!r} is not a finite number"
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{json_path(parts)}: key {k!r} is not a string"
            found = _first_non_json(v, parts + (k,))
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _first_non_json(v, parts + (i,))
            if found:
                return found
        return None
    return f"{json_path(parts)}: {type(value).__name__} is not JSON-able"


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema())


def _first_schema_problem(document: dict) -> str | None:
    """The first problem of ``document`` against the shipped schema as ``$.path: problem``, or None."""
    validator = _validator()
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    e = errors[0]
    parts = tuple(e.absolute_path)
    if e.validator == "required":
        missing = [k for k in e.validator_value if k not in e.instance]
        return f"{json_path(parts + (missing[0],))}: is required"
    if e.validator == "additionalProperties" and e.validator_value is False:
        allowed = set(e.schema.get("properties", {}))
        extra = sorted(k for k in e.instance if k not in allowed)
        return f"{json_path(parts + (extra[0],))}: unexpected key"
    return f"{json_path(parts)}: {e.message}"

