"""Bad input never crashes: every bundled profile, mutated at random (NaN, infinities, huge and
negative numbers, strings, lists, nested mappings, non-UTF-8 bytes, duplicated keys and lines, deep
nesting, aliases), loads or fails with a one-line :class:`ConfigError` naming the file — never another
exception, never a hang. The same for ``letrade-perf run``'s command line, checked up to the
validated plan (:func:`letrade_perf.run.plan_from_args`), which starts nothing."""
from __future__ import annotations

import contextlib
import glob
import io
import json
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letrade_perf import run as run_mod
from letrade_perf.cli import MAX_WORKERS, build_parser
from letrade_perf.config.profile import load_profile
from letrade_perf.core import resources
from letrade_perf.core.errors import ConfigError

PROFILES = sorted(glob.glob(os.path.join(resources.profiles_dir(), "*.yaml")))
TEXTS = {os.path.basename(p): open(p, encoding="utf-8").read() for p in PROFILES}
DOCS = {name: yaml.safe_load(text) for name, text in TEXTS.items()}
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


def _paths(value, prefix=()):
    """Every key path below ``value`` (mapping keys and list indexes)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _nest(depth: int, leaf: str = "1") -> st.SearchStrategy[str]:
    return st.sampled_from(["[" * depth + leaf + "]" * depth, "{a: " * depth + leaf + "}" * depth])


#: YAML text put in place of a value: written as text, so that the loader (not a dumper) meets it
SCALARS = st.one_of(
    st.sampled_from([".nan", ".NaN", ".inf", "-.inf", "1.0e+400", "-1.0e+400", "1e20", "nan", "inf", "'NaN'",
                     "'Infinity'", "'-0'", "null", "~", "''", "yes", "no", "true", "0", "-1", "-0.5", "0.0",
                     "[]", "{}", "[1, 2]", "{a: 1}", "{a: {b: [1, {c: .nan}]}}", "*nowhere", "&x [*x]",
                     "!!binary aGVsbG8=", "!!python/object/apply:os.getcwd []", "!!set {a, b}", "2026-01-01",
                     "'\\x00'", "\"\\x00\"", "1:30", "0x1F", "0o777", "1_000", "'30s'", "'1h30m'", "'99999999d'",
                     "'-5s'", "'s'", "'250ms'", "{<<: {a: 1}, a: 2}", "[&a x, *a, *a]", "2026-13-45",
                     "!!float abc", "!!int abc", "!!bool maybe", "!!timestamp x", "{[1]: 2}", "{<<: 1}"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from([4300, 4301, 6000]).map(lambda n: "9" * n),      # around Python's int-string digit limit
    st.floats(allow_nan=False, allow_infinity=False).map(repr).map(lambda r: r if "e" not in r or "." in r
                                                                   else r.replace("e", ".0e")),
    st.text(max_size=40).map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.integers(min_value=1, max_value=400).flatmap(_nest),
)
BAD_BYTES = st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
                             b"\x00", b"\x1b[31m", b"\t", b"\r", b"\xef\xbb\xbf"])


@st.composite
def mutated_profile(draw) -> tuple[str, bytes]:
    """(bundled profile name, the bytes of a mutated copy)."""
    name = draw(st.sampled_from(sorted(DOCS)))
    doc = json.loads(json.dumps(DOCS[name]))        # a deep copy
    paths = list(_paths(doc))
    fragments = {}
    for i in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(paths))
        target = doc
        try:
            for key in path[:-1]:
                target = target[key]
            token = f"FUZZTOKEN{i}"
            target[path[-1]] = token
            fragments[token] = draw(SCALARS)
        except (KeyError, IndexError, TypeError):   # an earlier mutation replaced a parent
            pass
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=10**6)
    for token, fragment in fragments.items():
        text = text.replace(token, fragment)
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 2))):          # duplicated lines: duplicate keys, among others
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
    data = "\n".join(lines).encode("utf-8")
    for _ in range(draw(st.integers(0, 2))):          # bytes that are not UTF-8 (or are control characters)
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(BAD_BYTES) + data[at:]
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        data = data[:draw(st.integers(0, len(data)))]   # a truncated file
    return name, data


def _assert_clean(e: ConfigError, path: str) -> None:
    message = str(e)
    assert path in message, message
    assert "\n" not in message, message
    assert len(message) < 2000, message


def test_every_bundled_profile_is_fuzzed():
    assert len(PROFILES) >= 10 and all(isinstance(d, dict) for d in DOCS.values())


@FUZZ
@given(case=mutated_profile())
def test_a_mutated_profile_loads_or_fails_with_a_config_error_naming_the_file(case, tmp_path):
    name, data = case
    path = str(tmp_path / name)
    with open(path, "wb") as fh:
        fh.write(data)
    try:
        load_profile(path)
    except ConfigError as e:
        _assert_clean(e, path)


# --- the command line of `letrade-perf run` ------------------------------------------------------

@pytest.fixture(scope="module")
def places(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    (base / "a-file").write_text("x")
    (base / "dir").mkdir()
    bad = base / "bad.yaml"
    bad.write_bytes(b"description: \xff\n")
    nan = base / "nan.yaml"
    nan.write_text(TEXTS["smoke.yaml"].replace("spawn_rate: 6", "spawn_rate: .nan"))
    return {"file": str(base / "a-file"), "dir": str(base / "dir"), "bad": str(bad), "nan": str(nan), "base": str(base)}


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@st.composite
def run_argv(draw, places) -> list[str]:
    argv = ["run"]
    options = {
        "--profile": st.sampled_from(["smoke", "trading", places["bad"], places["nan"], places["dir"],
                                      places["file"], "no-such-profile", "x.yaml", ""]),
        "--workers": st.one_of(st.integers(-10, 10**6).map(str), st.sampled_from(["0", "1", "-1", "256", "257",
                                                                                    "1e3", "nan", "", "0x10"]), TEXT),
        "--reports": st.one_of(st.sampled_from([places["file"], places["file"] + "/sub", places["dir"],
                                                places["dir"] + "/new/deeper", places["base"], "", "."]), TEXT),
        "--run-id": st.one_of(st.sampled_from(["ok-run", "../up", "a/b", ".", "..", "", " "]), TEXT),
        "--env": st.one_of(st.sampled_from(["sim", "testnet", "production"]), TEXT),
        "--host": st.one_of(st.sampled_from(["http://127.0.0.1:9", "ftp://x", "http://", "ws://h:1"]), TEXT),
        "--rest-url": st.one_of(st.sampled_from(["https://mirror.example", "nope"]), TEXT),
        "--stream-url": st.one_of(st.sampled_from(["wss://s.example", "http://s"]), TEXT),
        "--tolerance": st.one_of(st.sampled_from(["10%", "0.1", "nan", "inf", "-1", "1e400"]), TEXT),
        "--log-level": st.one_of(st.sampled_from(["DEBUG", "info", "LOUD"]), TEXT),
        "--webhook": st.one_of(st.sampled_from(["slack=https://hooks.example/x", "telegram=https://t.example/b",
                                                "email=x", "slack="]), TEXT),
        "--influx-url": st.one_of(st.sampled_from(["http://127.0.0.1:8086", "nope", "http://"]), TEXT),
        "--baseline": st.sampled_from([places["file"], places["dir"], places["bad"], "/no/such/summary.json"]),
        "--key-file": st.sampled_from([places["bad"], "/no/such/key"]),
        "--locustfile": st.sampled_from([places["file"], "/no/such.py"]),
    }
    for opt in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)):
        value = draw(options[opt])
        argv += [f"{opt}={value}"] if value.startswith("-") else [opt, value]
    return argv


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_run_arguments_give_a_plan_or_exit_2_with_a_message(data, places):
    argv = data.draw(run_argv(places))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:
            assert e.code == 2, (argv, err.getvalue())
            assert err.getvalue().strip().splitlines()[-1].startswith("letrade-perf run: error: "), err.getvalue()
            return
        result = run_mod.plan_from_args(args)
    if isinstance(result, int):
        assert result in (run_mod.EXIT_CONFIG, run_mod.EXIT_SAFETY), (argv, result)
        lines = err.getvalue().strip().splitlines()
        assert lines and all(line.startswith("letrade-perf run: ") for line in lines), (argv, err.getvalue())
        return
    plan, profile = result
    assert 0 <= plan.workers <= MAX_WORKERS
    assert profile.name == plan.profile_name
    parent = plan.reports_dir
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    assert os.path.isdir(parent), (argv, plan.reports_dir)
