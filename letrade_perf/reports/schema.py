"""Validation of a run summary against ``summary.schema.json`` (JSON Schema draft 2020-12).

``jsonschema`` is a test dependency, not a runtime one: a harness install must not grow a
dependency only to check its own output. So :func:`validate_summary` uses ``jsonschema`` when it
can be imported and otherwise a small built-in validator that understands exactly the keywords
the shipped schema uses (``$ref`` to ``#/$defs/…``, ``type``, ``const``, ``enum``, ``required``,
``properties``, ``additionalProperties``, ``items``, ``minimum``, ``maximum``, ``minLength``,
``pattern``). Both report the first problem as ``$.json.path: what is wrong``; the test suite
runs both over the same documents.

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
from typing import Any, Iterator

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
    the schema (with ``jsonschema`` when installed, else the built-in validator).
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
    problem = _first_jsonschema_problem(document)
    if problem is _NO_JSONSCHEMA:
        problem = next(builtin_problems(document), None)
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


_NO_JSONSCHEMA = object()


def _first_jsonschema_problem(document: dict):
    try:
        import jsonschema
    except ImportError:
        return _NO_JSONSCHEMA
    validator = jsonschema.Draft202012Validator(load_schema())
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


# --- the built-in validator: only the keywords summary.schema.json uses ---------------------------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    # draft 2020-12: 1.0 is an integer
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def builtin_problems(document: Any, schema: dict | None = None) -> Iterator[str]:
    """Every problem of ``document`` against ``schema`` (default: the shipped one), as ``$.path: problem``."""
    root = schema if schema is not None else load_schema()
    yield from _walk(root, root, document, ())


def _resolve(root: dict, schema: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = target
    return schema


def _walk(root: dict, schema: dict, value: Any, parts: tuple) -> Iterator[str]:
    schema = _resolve(root, schema)
    where = json_path(parts)
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_TYPES[t](value) for t in names):
            yield f"{where}: {value!r} is not of type {' or '.join(repr(t) for t in names)}"
            return
    if "const" in schema and value != schema["const"]:
        yield f"{where}: {schema['const']!r} was expected"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{where}: {value!r} is not one of {schema['enum']!r}"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{where}: {value!r} is less than the minimum of {schema['minimum']!r}"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{where}: {value!r} is greater than the maximum of {schema['maximum']!r}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            yield f"{where}: {value!r} is too short"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            yield f"{where}: {value!r} does not match {schema['pattern']!r}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                yield f"{json_path(parts + (key,))}: is required"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                yield from _walk(root, props[key], item, parts + (key,))
            elif extra is False:
                yield f"{json_path(parts + (key,))}: unexpected key"
            elif isinstance(extra, dict):
                yield from _walk(root, extra, item, parts + (key,))
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _walk(root, schema["items"], item, parts + (i,))
