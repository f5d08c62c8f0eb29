"""The profile's JSON Schema (``profiles/profile.schema.json``): in step with the dataclasses, a valid
draft 2020-12 schema, accepting every real profile, rejecting what the loader rejects for unknown keys
and wrong types, and never stricter than the loader."""
from __future__ import annotations

import copy
import glob
import json
import os
import subprocess
import sys

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letrade_perf.config.jsonschema import profile_json_schema, profile_json_schema_text
from letrade_perf.config.profile import list_profiles, profile_from_mapping
from letrade_perf.core import resources
from letrade_perf.core.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(resources.profiles_dir(), "profile.schema.json")
PROFILE_FILES = sorted(glob.glob(os.path.join(resources.profiles_dir(), "*.yaml"))
                       + glob.glob(os.path.join(ROOT, "examples", "profiles", "*.yaml"))
                       + glob.glob(os.path.join(ROOT, "tests", "integration", "profiles", "*.yaml")))
REGENERATE = "regenerate: letrade-perf profiles --schema > letrade_perf/profiles/profile.schema.json"


def _load(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(profile_json_schema())


def _loader_accepts(doc) -> bool:
    try:
        profile_from_mapping(copy.deepcopy(doc), source="mutated.yaml", name="mutated")
    except ConfigError:
        return False
    return True


# --- the shipped file ------------------------------------------------------------------------------

def test_the_shipped_schema_is_the_generated_one():
    with open(SHIPPED, encoding="utf-8") as fh:
        text = fh.read()
    assert json.loads(text) == profile_json_schema(), REGENERATE
    assert text == profile_json_schema_text(), REGENERATE
    assert text.endswith("}\n") and not text.endswith("\n\n")


def test_the_schema_is_a_valid_draft_2020_12_schema():
    schema = profile_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["description", "stages", "users"]
    # every nested settings class, with its field docs and defaults
    assert {"Stage", "UserMix", "RestMarketSettings", "CcxtSettings", "WsStreamSettings", "PipelineSettings",
            "StrategySettings", "OwnCodeSettings", "PacingSettings", "SafetySettings", "SinkSettings",
            "TargetSettings", "GateSettings", "WebhookSettings"} <= set(schema["$defs"])
    stage = schema["$defs"]["Stage"]
    assert stage["required"] == ["duration", "users", "spawn_rate"]          # the YAML key, not duration_s
    assert stage["properties"]["duration"]["$ref"] == "#/$defs/Duration"
    pipeline = schema["$defs"]["PipelineSettings"]["properties"]
    assert pipeline["order_via"]["enum"] == ["rest", "ws_api"]
    assert pipeline["wait_min_s"]["default"] == 0.5                          # inherited from UserSettings
    assert "Shortest pause" in pipeline["wait_min_s"]["description"]
    assert schema["properties"]["symbols"]["default"] == ["BTCUSDT"]
    assert schema["$defs"]["SinkSettings"]["properties"]["max_buffer_points"]["default"] == 100_000


def test_the_schema_file_does_not_show_up_as_a_profile():
    assert os.path.isfile(SHIPPED)
    names = [name for name, _, _ in list_profiles()]
    assert names and all(not n.startswith("profile.schema") for n in names)
    assert all(path.endswith(".yaml") for _, _, path in list_profiles())


def test_letrade_perf_profiles_schema_prints_the_shipped_schema():
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-m", "letrade_perf", "profiles", "--schema"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with open(SHIPPED, encoding="utf-8") as fh:
        assert json.loads(done.stdout) == json.load(fh)
    with open(SHIPPED, encoding="utf-8") as fh:
        assert done.stdout == fh.read()


# --- real profiles ---------------------------------------------------------------------------------

def test_there_are_profiles_of_every_origin():
    origins = {os.path.basename(os.path.dirname(os.path.dirname(p))) for p in PROFILE_FILES}
    assert {"letrade_perf", "examples", "integration"} <= origins, PROFILE_FILES


@pytest.mark.parametrize("path", PROFILE_FILES, ids=[os.path.relpath(p, ROOT) for p in PROFILE_FILES])
def test_every_shipped_profile_validates(path, validator):
    doc = _load(path)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []


# --- what the loader rejects ------------------------------------------------------------------------

BASE = os.path.join(resources.profiles_dir(), "smoke.yaml")


def _set(doc: dict, path: str, value=None, delete: bool = False) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    target = doc
    for p in parents:
        target = target.setdefault(p, {}) if isinstance(target, dict) else target[p]
    if delete:
        del target[last]
    else:
        target[last] = value
    return doc


REJECTED = [
    ("stage", [{"duration": "10s", "users": 1, "spawn_rate": 1}]),          # misspelled top-level key
    ("stages/0/users", "ten"),                                              # a string where an int is needed
    ("stages/0/users", 2.5),
    ("stages/0/spawn_rate", "fast"),
    ("stages/0/duration", -5),
    ("stages/0/duraton", "10s"),
    ("stages", {"duration": "10s"}),                                        # a mapping where a list is needed
    ("env", "staging"),
    ("pacing/weight_fraction", "high"),
    ("pacing/weight_frac", 0.5),
    ("safety/allow_production_orders", "yes"),
    ("gate/max_429", True),
    ("users/rest_market/weight", "2"),
    ("users/rest_market/task_weights", {"depth": 1, "candles": 2}),
    ("users/rest_market/task_weights", {"depth": -1}),
    ("users/pipeline/strategy", {"fast": "x"}),
    ("users/pipeline/order_type", "STOP"),
    ("users/websockets", {}),
    ("symbols", "BTCUSDT"),
    ("notify", [{"kind": "email", "url_env": "HOOK"}]),
    ("notify", [{"kind": "slack"}]),
    ("criteria", ["p(95)<200"]),
    ("criteria", {"http_req_duration": [{"threshold": "p(95)<200", "abort": True}]}),
    ("description", None),
]


@pytest.mark.parametrize("path,value", REJECTED, ids=[f"{p}={v!r}" for p, v in REJECTED])
def test_the_schema_rejects_what_the_loader_rejects_for_keys_and_types(path, value, validator):
    doc = _set(_load(BASE), path, value)
    assert not _loader_accepts(doc)
    assert not validator.is_valid(doc)


ACCEPTED = [
    ("stages/0/duration", "1h30m"),
    ("stages/0/duration", 90),
    ("stages/0/duration", "250ms"),
    ("description", 2024),                                                  # read as the text "2024"
    ("name", "my smoke"),
    ("criteria", None),
    ("sink", None),
    ("users/rest_market/task_weights", {"depth": 0, "klines": 3}),
    ("users/ccxt", {}),
]


@pytest.mark.parametrize("path,value", ACCEPTED, ids=[f"{p}={v!r}" for p, v in ACCEPTED])
def test_the_schema_accepts_what_the_loader_accepts(path, value, validator):
    doc = _set(_load(BASE), path, value)
    assert _loader_accepts(doc)
    assert validator.is_valid(doc), [e.message for e in validator.iter_errors(doc)]


# --- never stricter than the loader -------------------------------------------------------------------

BUNDLED = {os.path.basename(p): _load(p) for p in sorted(glob.glob(os.path.join(resources.profiles_dir(), "*.yaml")))}


def _paths(value, prefix=()):
    """Every (path, value) below ``value``, depth first."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,), v
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,), v
            yield from _paths(v, prefix + (i,))


def _schema_keys(schema) -> list[str]:
    keys: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            keys.update(node.get("properties", {}) if isinstance(node.get("properties"), dict) else ())
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(schema)
    return sorted(keys)


# known keys (placed anywhere: sometimes right, mostly wrong) and one nobody knows
KEYS = _schema_keys(profile_json_schema()) + ["bogus_key"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 2000), st.floats(-1.0, 1e4, allow_nan=False),
                    st.sampled_from(["", "x", "30s", "5m", "1h30m", "BTCUSDT", "rest", "MARKET", "1m", "p(95)<200",
                                     "0.5", "-1", "{symbol}@trade", "slack", "LETRADE_HOOK"]),
                    st.just([]), st.just({}))


@st.composite
def mutations(draw):
    name = draw(st.sampled_from(sorted(BUNDLED)))
    doc = copy.deepcopy(BUNDLED[name])
    paths = [((), doc)] + list(_paths(doc))
    path, value = draw(st.sampled_from(paths))
    kind = draw(st.sampled_from(["drop", "add", "retype"]))
    parent = doc
    for p in path[:-1]:
        parent = parent[p]
    if kind == "drop" and path and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind == "add" and isinstance(value, dict):
        value[draw(st.sampled_from(KEYS))] = draw(SCALARS)
    elif path:
        parent[path[-1]] = draw(SCALARS)
    return name, kind, path, doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=mutations())
def test_the_schema_is_never_stricter_than_the_loader(mutation, validator):
    name, kind, path, doc = mutation
    if _loader_accepts(doc):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == [], (name, kind, path)
