"""A JSON Schema (draft 2020-12) of the profile, for editor completion and validation as you type.

:func:`profile_json_schema` derives it from the frozen dataclasses of :mod:`.profile` by
introspection, reading them the way the strict loader (:mod:`letrade_perf.core.strict`) does:

- YAML keys come from the field metadata (``key``), fields with ``yaml=False`` are left out and
  unknown keys are errors (``additionalProperties: false``); fields without a default are required;
- ``int`` → ``integer``, ``float`` → ``number``, ``bool`` → ``boolean``, ``str`` → any scalar (the
  loader reads YAML numbers and booleans as their text), ``X | None`` adds ``null``,
  ``Literal[...]`` → ``enum``, ``list``/``tuple[X, ...]`` → ``array``, ``dict[str, X]`` → ``object``,
  nested dataclasses → ``$defs``;
- fields read by their own parser (``metadata={"parse": ...}``) get the shapes that parser accepts:
  durations are a number of seconds >= 0 or a string (``30s``, ``5m``, ``1h30m``), task weights a
  mapping of the known task names to integers >= 0, criteria the mapping of selector to thresholds,
  ``sim`` any mapping (the simulator config is checked by the loader); a parser this module does not
  know gets ``{}`` (anything);
- descriptions are the attribute docstrings of the fields (read from the source), defaults the
  field defaults as the YAML that produces them.

The schema is never stricter than the loader: checks made in ``__post_init__`` (ranges, intervals,
stream names, ...) stay with the loader. ``letrade-perf profiles --schema`` prints the schema; the
package ships it as ``profiles/profile.schema.json``.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import json
import re
import textwrap
import types
import typing
from typing import Any, Callable, Literal, Mapping

from ..core import strict
from ..core.errors import ConfigError
from . import profile as profile_mod

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://letrade-perf.invalid/schemas/profile.json"

Schema = dict[str, Any]

DURATION: Schema = {
    "description": "Seconds (a number >= 0) or a string such as `30s`, `5m`, `1h30m`, `24h`, `250ms`.",
    "anyOf": [{"type": "number", "minimum": 0},
              {"type": "string", "examples": ["30s", "5m", "1h30m", "24h", "250ms"]}],
}
"""A duration as :func:`letrade_perf.core.strict.parse_duration` reads it: seconds or ``30s``, ``5m``,
``1h30m``, ``24h``, ``250ms`` (the string form is checked by the loader)."""

_CRITERION_ENTRY: Schema = {
    "type": "object",
    "description": "A threshold with options.",
    "properties": {
        "threshold": {"type": "string", "description": "The threshold, e.g. `p(95)<200`."},
        "abort_on_fail": {"type": "boolean", "description": "Stop the run as soon as the threshold fails."},
        "on_fail": {"enum": ["abort", "block_orders"],
                    "description": "What a failure during the run does: `abort` (as `abort_on_fail: true`) or "
                                   "`block_orders` (block new orders; the load and the monitoring go on)."},
        "delay_abort_eval": {"$ref": "#/$defs/Duration",
                             "description": "Do not abort before this long into the run."},
    },
    "required": ["threshold"],
    "additionalProperties": False,
}
_THRESHOLD: Schema = {"anyOf": [{"type": "string"}, _CRITERION_ENTRY]}
_THRESHOLD_REF: Schema = {"$ref": "#/$defs/Threshold"}
CRITERIA: Schema = {
    "type": ["object", "null"],
    "additionalProperties": {"anyOf": [_THRESHOLD_REF, {"type": "array", "items": _THRESHOLD_REF, "minItems": 1}]},
}
"""Metric selector (``http_req_duration{name:REST GET /api/v3/depth}``) → a threshold (``p(95)<200``),
a threshold with options, or a list of them."""
SIM: Schema = {"type": ["object", "null"]}


def profile_json_schema() -> dict[str, Any]:
    """The profile's JSON Schema (draft 2020-12) as a JSON-able dict; see the module docstring."""
    defs: dict[str, Schema] = {"Duration": DURATION, "Threshold": _THRESHOLD}
    root = _object_schema(profile_mod.Profile, defs)
    # profile_from_mapping takes an optional display name before the dataclass is built
    root["properties"]["name"] = {
        "type": "string", "pattern": r"\S",
        "description": "Display name of the profile (default: the file name without `.yaml`).",
    }
    schema: Schema = {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": "letrade-perf load profile"}
    schema.update(root)
    schema["$defs"] = dict(sorted(defs.items()))
    return copy.deepcopy(schema)          # the caller's to change: no shared module constants


def profile_json_schema_text() -> str:
    """The schema as shipped in ``profiles/profile.schema.json``: indented, sorted keys, final newline."""
    return json.dumps(profile_json_schema(), indent=2, sort_keys=True) + "\n"


# --- dataclasses ---------------------------------------------------------------------------------

def _object_schema(cls: type[Any], defs: dict[str, Schema]) -> Schema:
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    properties: dict[str, Schema] = {}
    required: list[str] = []
    for key, f in strict.yaml_fields(cls).items():
        parse = f.metadata.get("parse")
        prop = _parser_schema(parse) if parse is not None else _type_schema(hints[f.name], defs)
        prop = dict(prop)
        doc = docs.get(f.name)
        if doc:
            prop["description"] = doc
        factory: Any = f.default_factory
        if f.default is dataclasses.MISSING and factory is dataclasses.MISSING:
            required.append(key)
        else:
            default = f.default if f.default is not dataclasses.MISSING else factory()
            found = _yaml_default(default, hints[f.name], parse)
            if found is not _NO_DEFAULT:
                prop["default"] = found
        properties[key] = prop
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    doc = _class_doc(cls)
    if doc:
        out["description"] = doc
    if required:
        out["required"] = required
    return out


def _type_schema(tp: Any, defs: dict[str, Schema]) -> Schema:
    """The schema of what :func:`letrade_perf.core.strict.convert` accepts for type ``tp``."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}                      # placeholder: recursion ends here
            defs[name] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return {}                            # the loader supports only X | None
        inner = _type_schema(rest[0], defs)
        return _nullable(inner) if len(rest) < len(args) else inner
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (list, tuple):
        out: Schema = {"type": "array"}
        if args and args[0] is not Any:
            out["items"] = _type_schema(args[0], defs)
        return out
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        obj: Schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            obj["additionalProperties"] = _type_schema(args[1], defs)
        return obj
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        # str(value) of any scalar: `description: 2024` is the text "2024"
        return {"type": ["string", "number", "boolean"]}
    return {}


def _nullable(schema: Schema) -> Schema:
    kind = schema.get("type")
    if kind is not None and "$ref" not in schema and "anyOf" not in schema:
        out = dict(schema)
        kinds = [kind] if isinstance(kind, str) else list(kind)
        out["type"] = kinds + ["null"] if "null" not in kinds else kinds
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
        return out
    if "enum" in schema and set(schema) == {"enum"}:
        return {"enum": list(schema["enum"]) + [None]}
    return {"anyOf": [schema, {"type": "null"}]}


# --- fields with their own parser ----------------------------------------------------------------

def _parser_schema(parse: Callable[..., Any]) -> Schema:
    if parse is strict.parse_duration:
        return {"$ref": "#/$defs/Duration"}
    if parse is getattr(profile_mod, "_parse_criteria", None):
        return CRITERIA
    if parse is getattr(profile_mod, "_parse_sim", None):
        return SIM
    tasks = _weight_tasks(parse)
    if tasks is not None:
        return {"type": "object",
                "properties": {name: {"type": "integer", "minimum": 0} for name in tasks},
                "additionalProperties": False}
    return {}


def _weight_tasks(parse: Callable[..., Any]) -> list[str] | None:
    """The task names a ``task_weights`` parser (``profile._weights(defaults)``) accepts, else None."""
    if not getattr(parse, "__qualname__", "").startswith("_weights."):
        return None
    try:
        defaults = inspect.getclosurevars(parse).nonlocals.get("defaults")
    except (TypeError, ValueError):
        return None
    if isinstance(defaults, dict) and all(isinstance(k, str) for k in defaults):
        return list(defaults)
    return None


# --- defaults -------------------------------------------------------------------------------------

_NO_DEFAULT: Any = object()


def _yaml_default(value: Any, tp: Any, parse: Callable[..., Any] | None) -> Any:
    """The YAML (as JSON) that gives ``value``, if the loader reads it back as ``value``; else _NO_DEFAULT."""
    try:
        doc = _to_json(value)
        back = parse(doc, "default", "schema") if parse is not None else strict.convert(tp, doc, "default", "schema")
    except (ConfigError, TypeError, ValueError):
        return _NO_DEFAULT
    return doc if back == value else _NO_DEFAULT


def _to_json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: _to_json(getattr(value, f.name)) for key, f in strict.yaml_fields(type(value)).items()}
    raise TypeError(f"no YAML for {type(value).__name__}")


# --- descriptions ---------------------------------------------------------------------------------

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def _text(doc: str) -> str:
    """A docstring as one plain line: reST ``code`` and :role:`x` become `code` and `x`."""
    text = " ".join(inspect.cleandoc(doc).split())
    return _ROLE.sub(r"`\1`", text).replace("``", "`")


def _class_doc(cls: type[Any]) -> str:
    doc = cls.__dict__.get("__doc__")
    if not doc or doc.startswith(f"{cls.__name__}("):     # dataclass's generated signature
        return ""
    return _text(doc)


def _field_docs(cls: type[Any]) -> dict[str, str]:
    """Attribute docstrings (the string after ``name: type = ...``) of ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        node = tree.body[0] if tree.body else None
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt, nxt in zip(node.body, node.body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = _text(nxt.value.value)
    return docs


if __name__ == "__main__":
    print(profile_json_schema_text(), end="")
