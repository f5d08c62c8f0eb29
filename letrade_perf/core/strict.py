"""Strict YAML → dataclass loading: unknown keys and bad values are errors naming source and key path.

Used by the simulator config and by profiles. Types come from the dataclass annotations:
``int``, ``float``, ``bool``, ``str``, ``X | None``, ``Literal[...]``, ``list[X]``, ``tuple[X, ...]``,
``dict[str, X]`` and nested dataclasses. A field can change how it is read through its metadata:

- ``key``: the YAML key when it differs from the field name (``duration`` → ``duration_s``);
- ``parse``: ``parse(value, key_path, source)`` replaces the type-driven conversion;
- ``yaml=False``: the field is not read from YAML (set by the loader through ``extra``).

Range checks live in the dataclasses' ``__post_init__``; a :class:`FieldError` raised there
becomes an error naming the field's full key path.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Callable, Literal, Mapping, TypeVar

import yaml

from .errors import ConfigError, FieldError

Hook = Callable[[Any, str, str], Any]
T = TypeVar("T")


def key_path(path: str, key: object) -> str:
    """``a.b`` + ``c`` → ``a.b.c``; an empty path yields the key."""
    return f"{path}.{key}" if path else str(key)


def read_yaml(path: str, error: type[ConfigError] = ConfigError) -> Any:
    """The parsed YAML document at ``path``; missing files and invalid YAML raise ``error``."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError as e:
        raise error(f"{path}: file not found") from e
    except IsADirectoryError as e:
        raise error(f"{path}: is a directory, not a YAML file") from e
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML: {e}") from e


def yaml_fields(cls: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    """The dataclass fields read from YAML, by YAML key."""
    return {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)
            if f.init and f.metadata.get("yaml", True)}


def build(cls: type[T], data: Any, path: str = "", source: str = "config", *, error: type[ConfigError] = ConfigError,
          hooks: Mapping[Any, Hook] | None = None, extra: Mapping[str, Any] | None = None) -> T:
    """Build dataclass ``cls`` from mapping ``data`` found at ``path`` in ``source``."""
    where = path or "top level"
    if not isinstance(data, Mapping):
        raise error(f"{source}: {where}: expected a mapping, got {_type_name(data)}")
    hints = typing.get_type_hints(cls)
    by_key = yaml_fields(cls)
    kwargs: dict[str, Any] = dict(extra or {})
    for key, value in data.items():
        kp = key_path(path, key)
        f = by_key.get(key) if isinstance(key, str) else None
        if f is None:
            raise error(f"{source}: unknown key '{kp}' (allowed: {', '.join(sorted(by_key))})")
        parse = f.metadata.get("parse")
        if parse is not None:
            kwargs[f.name] = parse(value, kp, source)
        else:
            kwargs[f.name] = convert(hints[f.name], value, kp, source, error=error, hooks=hooks)
    for key, f in by_key.items():
        if (f.name not in kwargs and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING):
            raise error(f"{source}: {where}: missing required key '{key_path(path, key)}'")
    try:
        return cls(**kwargs)
    except FieldError as e:
        raise error(f"{source}: {key_path(path, e.field) if e.field else where}: {e.message}") from e
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise error(f"{source}: {where}: {e}") from e


def convert(tp: Any, value: Any, kp: str, source: str, *, error: type[ConfigError] = ConfigError,
            hooks: Mapping[Any, Hook] | None = None) -> Any:
    """Convert one YAML value to type ``tp`` (see the module docstring for the supported types)."""
    if hooks and _hashable(tp) and tp in hooks:
        return hooks[tp](value, kp, source)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build(tp, value, kp, source, error=error, hooks=hooks)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if value is None and len(rest) < len(args):
            return None
        if len(rest) == 1:
            return convert(rest[0], value, kp, source, error=error, hooks=hooks)
        raise error(f"{source}: {kp}: unsupported type {tp}")
    if origin is Literal:
        if isinstance(value, bool) or value not in args:
            raise error(f"{source}: {kp}: expected one of {', '.join(repr(a) for a in args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise error(f"{source}: {kp}: expected a list, got {_type_name(value)}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise error(f"{source}: {kp}: unsupported type {tp}")
        item = args[0] if args else Any
        items = [convert(item, v, f"{kp}[{i}]", source, error=error, hooks=hooks) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise error(f"{source}: {kp}: expected a mapping, got {_type_name(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): convert(vt, v, key_path(kp, k), source, error=error, hooks=hooks)
                for k, v in value.items()}
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise error(f"{source}: {kp}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{source}: {kp}: expected a number, got {value!r}")
        return float(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise error(f"{source}: {kp}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise error(f"{source}: {kp}: expected a string, got {value!r}")
        return str(value)
    return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, kp: str, source: str) -> float:
    """Seconds from a number (seconds) or a string such as ``30s``, ``5m``, ``1h30m``, ``24h``, ``250ms``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{source}: {kp}: invalid duration {value!r} (must be >= 0)")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text and _DURATION.sub("", text) == "":
            return sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(text))
        try:
            number = float(text)
        except ValueError:
            number = -1.0
        if number >= 0:
            return number
    raise ConfigError(f"{source}: {kp}: invalid duration {value!r} (e.g. 30s, 5m, 1h30m, 24h, or seconds)")


def _hashable(tp: Any) -> bool:
    try:
        hash(tp)
        return True
    except TypeError:
        return False


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__)
