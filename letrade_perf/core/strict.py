"""Strict YAML → dataclass loading: unknown keys and bad values are errors naming source and key path.

Used by the simulator config and by profiles. Types come from the dataclass annotations:
``int``, ``float``, ``bool``, ``str``, ``X | None``, ``Literal[...]``, ``list[X]``, ``tuple[X, ...]``,
``dict[str, X]`` and nested dataclasses. A field can change how it is read through its metadata:

- ``key``: the YAML key when it differs from the field name (``duration`` → ``duration_s``);
- ``parse``: ``parse(value, key_path, source)`` replaces the type-driven conversion;
- ``yaml=False``: the field is not read from YAML (set by the loader through ``extra``).

Range checks live in the dataclasses' ``__post_init__``; a :class:`FieldError` raised there
becomes an error naming the field's full key path.

:func:`read_yaml` is stricter than ``yaml.safe_load``: a file that is not UTF-8, a duplicate key,
nesting deeper than :data:`MAX_DEPTH` (aliases included), a recursive or exploding alias, ``.nan``
or ``.inf``, and an integer outside 64 bits are errors naming the file, the key path and the line.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Callable, Literal, Mapping, TypeVar

import yaml

from .errors import ConfigError, FieldError, combined

Hook = Callable[[Any, str, str], Any]
T = TypeVar("T")


def key_path(path: str, key: object) -> str:
    """``a.b`` + ``c`` → ``a.b.c``; an empty path yields the key."""
    return f"{path}.{key}" if path else str(key)


def printable(text: str) -> str:
    """``text`` for a one-line message: control characters (a key may hold a newline) escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


#: Deepest nesting of mappings and lists a YAML document may have (profiles need about 6).
MAX_DEPTH = 32
#: Most nodes a document may expand to once aliases are followed (a guard against alias bombs).
MAX_NODES = 100_000
#: Integers must fit in 64 bits (signed).
MAX_INT = 2**63 - 1
#: Longest duration :func:`parse_duration` accepts: 365 days.
MAX_DURATION_S = 365 * 86400.0


def read_yaml(path: str, error: type[ConfigError] = ConfigError, *, lines: dict[str, int] | None = None) -> Any:
    """The parsed YAML document at ``path``; unreadable files and invalid YAML raise ``error``.

    ``lines``, when given, is filled with the (1-based) line of every key path (``stages[0].users``),
    for :func:`with_line`.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError as e:
        raise error(f"{path}: file not found") from e
    except IsADirectoryError as e:
        raise error(f"{path}: is a directory, not a YAML file") from e
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from e
    return parse_yaml(raw, path, error, lines=lines)


def parse_yaml(raw: bytes | str, source: str, error: type[ConfigError] = ConfigError, *,
               lines: dict[str, int] | None = None) -> Any:
    """Parse one YAML document (bytes must be UTF-8) strictly; errors name ``source``, the key path and the line."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            where = _path_at_line(raw.decode("utf-8", "replace"), line)
            raise error(f"{source}: {where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}, "
                        f"line {line})") from None
    else:
        text = raw
    try:
        loader = _StrictLoader(text, source, error)
    except yaml.reader.ReaderError as e:    # a control character: PyYAML checks the whole text up front
        line = text.count("\n", 0, e.position) + 1
        where = _path_at_line(yaml.reader.Reader.NON_PRINTABLE.sub(" ", text), line)
        raise error(f"{source}: {where}: character #x{e.character:04x} is not allowed in YAML (line {line})") from None
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if mark is None:
            raise error(f"{source}: invalid YAML: {' '.join(str(e).split())}") from e
        what = ", ".join(str(x) for x in (e.context, e.problem) if x)
        raise error(f"{source}: {_path_at_line(text, mark.line + 1)}: invalid YAML: {' '.join(what.split())} "
                    f"(line {mark.line + 1}, column {mark.column + 1})") from e
    except yaml.YAMLError as e:
        raise error(f"{source}: invalid YAML: {' '.join(str(e).split())}") from e
    except RecursionError:      # a guard of last resort: MAX_DEPTH normally stops it first
        raise error(f"{source}: nested too deeply") from None
    finally:
        if lines is not None:
            lines.update(loader.lines)
        loader.dispose()


def with_line(e: ConfigError, source: str, lines: Mapping[str, int]) -> ConfigError:
    """``e`` with `` (line N)`` appended: the line of the key path its message names (or of its
    nearest parent). ``e`` itself when the message names no key path found in ``lines`` or has a line.
    Several errors found at once (``e.errors``): each gets its own line."""
    if len(e.errors) > 1:
        located = [with_line(x, source, lines) for x in e.errors]
        if all(a is b for a, b in zip(located, e.errors)):
            return e
        return combined(located, type(e))
    text = str(e)
    prefix = f"{source}: "
    if not text.startswith(prefix) or not lines or re.search(r"\bline \d+", text):
        return e
    rest = text[len(prefix):]
    quoted = re.match(r"(?:unknown key|missing required key) '([^']*)'", rest)
    if quoted:
        parts = [quoted.group(1)]
    else:
        parts = []
        for segment in rest.split(": ")[:-1]:
            if not _KEY_PATH.match(segment):
                break
            parts.append(segment)
    kp = ".".join(re.sub(r"\['([^']*)'\]", r".\1", p) for p in parts).strip(".")
    while kp:
        if kp in lines:
            return type(e)(f"{text} (line {lines[kp]})")
        kp = kp[:max(kp.rfind("."), kp.rfind("["), 0)]
    return e


_KEY_PATH = re.compile(r"^[A-Za-z0-9_\-]+(?:\[(?:\d+|'[^']*')\]|\.[A-Za-z0-9_\-]+)*$")


def _path_at_line(text: str, line: int) -> str:
    """The key path the text's ``line`` belongs to (best effort: the last key at or before it)."""
    try:
        loader = _StrictLoader(text, "", ConfigError)
    except yaml.YAMLError:
        return "top level"
    try:
        loader.get_single_data()
    except (ConfigError, yaml.YAMLError, RecursionError):
        pass
    finally:
        loader.dispose()
    before = [(n, len(kp), kp) for kp, n in loader.lines.items() if n <= line]
    return printable(max(before)[2]) if before else "top level"


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML is untyped here
    """``yaml.SafeLoader`` that knows the key path of every node and refuses what :func:`read_yaml` refuses."""

    def __init__(self, text: str, source: str, error: type[ConfigError]):
        super().__init__(text)
        self.name = source          # marks in YAML errors name the file
        self.source, self.error = source, error
        self.path: list[str] = []
        self.lines: dict[str, int] = {}
        self.paths: dict[int, str] = {}

    def _fail(self, kp: str, line: int, message: str) -> ConfigError:
        return self.error(f"{self.source}: {printable(kp) or 'top level'}: {message} (line {line})")

    def compose_node(self, parent: Any, index: Any) -> Any:
        if parent is None:
            segment = ""
        elif index is None:
            segment = ""       # a key: errors name the mapping it is in
        elif isinstance(index, int):
            segment = f"[{index}]"
        else:
            segment = "." + (str(index.value) if isinstance(index, yaml.ScalarNode) else "?")
        kp = ("".join(self.path) + segment).lstrip(".")
        if len(self.path) > MAX_DEPTH:
            raise self._fail(kp, self.peek_event().start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels")
        self.path.append(segment)
        try:
            node = super().compose_node(parent, index)
        finally:
            self.path.pop()
        if index is not None and id(node) not in self.paths:
            self.paths[id(node)] = kp
            mark = index.start_mark if isinstance(index, yaml.Node) else node.start_mark
            self.lines.setdefault(kp, mark.line + 1)
        if parent is None:
            self.paths[id(node)] = ""
            self._check_expansion(node)
        return node

    def _check_expansion(self, root: Any) -> None:
        """Refuse cycles, and documents that expand (aliases followed) too deep or too large — iteratively."""
        size: dict[int, int] = {}
        depth: dict[int, int] = {}
        active: set[int] = set()
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            nid = id(node)
            children = _children(node)
            if done:
                active.discard(nid)
                size[nid] = 1 + sum(size[id(c)] for c in children)
                depth[nid] = 1 + max((depth[id(c)] for c in children), default=0)
                kp = self.paths.get(nid, "")
                if depth[nid] > MAX_DEPTH + 1:
                    raise self._fail(kp, node.start_mark.line + 1, f"nested deeper than {MAX_DEPTH} levels (through aliases)")
                if size[nid] > MAX_NODES:
                    raise self._fail(kp, node.start_mark.line + 1, f"expands to more than {MAX_NODES} values (aliases)")
                continue
            if nid in size:
                continue
            if nid in active:
                raise self._fail(self.paths.get(nid, ""), node.start_mark.line + 1, "an alias refers to itself")
            active.add(nid)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                line, key = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
                if key in seen:
                    kp = key_path(self.paths.get(id(node), ""), key_node.value)
                    raise self.error(f"{self.source}: {printable(kp)}: duplicate key (lines {seen[key]} and {line})")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except ConfigError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            # PyYAML's constructors raise these for values their tag cannot hold (2026-13-45, !!float x)
            raise self._fail(self.paths.get(id(node), ""), node.start_mark.line + 1,
                             f"{show(node.value) if isinstance(node, yaml.ScalarNode) else 'value'} is not a valid "
                             f"{node.tag.rsplit(':', 1)[-1]} ({type(e).__name__})") from None

    def construct_yaml_float(self, node: Any) -> Any:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise self._fail(self.paths.get(id(node), ""), node.start_mark.line + 1,
                             f"{node.value} is not a finite number")
        return value

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            value = super().construct_yaml_int(node)
        except ValueError:
            if not re.fullmatch(r"[-+]?[0-9_]{19,}", str(node.value)):
                raise       # not a number at all (!!int x): construct_object reports it
            value = MAX_INT + 1     # more digits than Python converts (sys.get_int_max_str_digits)
        if abs(value) > MAX_INT:
            raise self._fail(self.paths.get(id(node), ""), node.start_mark.line + 1,
                             "integer out of range (more than 64 bits)")
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


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
    problems: list[ConfigError] = []      # every bad key of this mapping, reported at once
    for key, value in data.items():
        kp = key_path(path, key)
        f = by_key.get(key) if isinstance(key, str) else None
        if f is None:
            problems.append(error(f"{source}: unknown key '{printable(kp)}' (allowed: {', '.join(sorted(by_key))})"))
            continue
        parse = f.metadata.get("parse")
        try:
            if parse is not None:
                kwargs[f.name] = parse(value, kp, source)
            else:
                kwargs[f.name] = convert(hints[f.name], value, kp, source, error=error, hooks=hooks)
        except ConfigError as e:
            problems.append(e)
    for key, f in by_key.items():
        if (f.name not in kwargs and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and key not in data):
            problems.append(error(f"{source}: {where}: missing required key '{key_path(path, key)}'"))
    if problems:
        raise combined(problems, error)
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
            raise error(f"{source}: {kp}: expected one of {', '.join(repr(a) for a in args)}, got {show(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise error(f"{source}: {kp}: expected a list, got {_type_name(value)}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise error(f"{source}: {kp}: unsupported type {tp}")
        item = args[0] if args else Any
        items, problems = [], []
        for i, v in enumerate(value):       # every bad item, reported at once
            try:
                items.append(convert(item, v, f"{kp}[{i}]", source, error=error, hooks=hooks))
            except ConfigError as e:
                problems.append(e)
        if problems:
            raise combined(problems, error)
        return items if origin is list else tuple(items)
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise error(f"{source}: {kp}: expected a mapping, got {_type_name(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): convert(vt, v, key_path(kp, k), source, error=error, hooks=hooks)
                for k, v in value.items()}
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise error(f"{source}: {kp}: expected an integer, got {show(value)}")
        if abs(value) > MAX_INT:
            raise error(f"{source}: {kp}: integer out of range (more than 64 bits)")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{source}: {kp}: expected a number, got {show(value)}")
        if isinstance(value, int) and abs(value) > MAX_INT or not math.isfinite(value):
            raise error(f"{source}: {kp}: expected a finite number, got {show(value)}")
        return float(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise error(f"{source}: {kp}: expected true or false, got {show(value)}")
        return value
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise error(f"{source}: {kp}: expected a string, got {show(value)}")
        return str(value)
    return value


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any, kp: str, source: str) -> float:
    """Seconds from a number (seconds) or a string such as ``30s``, ``5m``, ``1h30m``, ``24h``, ``250ms``;
    finite, within 0 .. :data:`MAX_DURATION_S` (365 days)."""
    seconds = -1.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{source}: {kp}: invalid duration {show(value)} (must be >= 0)")
        if value != value:      # NaN
            raise ConfigError(f"{source}: {kp}: invalid duration {show(value)} (must be a finite number)")
        seconds = float(value) if value <= MAX_DURATION_S else math.inf
    elif isinstance(value, str):
        text = value.strip()
        if text and _DURATION.sub("", text) == "":
            seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION.findall(text))
        else:
            try:
                seconds = float(text)
            except ValueError:
                seconds = -1.0
            if math.isnan(seconds):
                seconds = -1.0
    if seconds > MAX_DURATION_S:
        raise ConfigError(f"{source}: {kp}: invalid duration {show(value)} (at most 365 days)")
    if seconds >= 0:
        return seconds
    raise ConfigError(f"{source}: {kp}: invalid duration {show(value)} (e.g. 30s, 5m, 1h30m, 24h, or seconds)")


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for a message: one line, at most about ``limit`` characters, safe for any value."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return "an integer of more than 64 bits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit] + "…"


def _hashable(tp: Any) -> bool:
    try:
        hash(tp)
        return True
    except TypeError:
        return False


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__)
