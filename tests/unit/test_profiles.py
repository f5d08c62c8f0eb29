"""Profiles: every bundled profile loads; bad profiles fail with the file and the key path."""
from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys

import pytest
import yaml

from letrade_perf.config import profile as prof
from letrade_perf.core.errors import ConfigError
from letrade_perf.core.strict import parse_duration
from letrade_perf.criteria.grammar import parse_criteria

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLED = [name for name, _, _ in prof.list_profiles()]

MINIMAL = {
    "description": "a test profile",
    "symbols": ["BTCUSDT"],
    "stages": [{"duration": "10s", "users": 2, "spawn_rate": 2}, {"duration": 5, "users": 2, "spawn_rate": 1}],
    "users": {"rest_market": {}, "pipeline": {"strategy": {"fast": 3, "slow": 7}}},
}


def write(tmp_path, doc, name="p.yaml"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def test_all_expected_profiles_are_bundled():
    expected = {"smoke", "ci-gate", "market-data", "ws-lag", "trading", "concurrency", "rate-limit-probe",
                "stress", "soak-24h", "production-canary"}
    assert expected <= set(BUNDLED)
    for name, desc, path in prof.list_profiles():
        assert desc and "\n" not in desc, name
        # package data (an installed letrade-perf needs no source tree); the checkout links profiles/ to it
        assert os.path.dirname(path) == os.path.join(REPO, "letrade_perf", "profiles")
    assert os.path.realpath(os.path.join(REPO, "profiles")) == os.path.join(REPO, "letrade_perf", "profiles")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_profile_loads(name):
    p = prof.load_profile(name)
    assert p.name == name and p.description and p.stages and p.duration_s > 0
    assert p.users.active()
    assert isinstance(p.symbols, tuple) and isinstance(p.stages, tuple) and isinstance(p.criteria, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "changed"          # frozen


def test_smoke_is_short_and_uses_every_user_kind():
    p = prof.load_profile("smoke")
    assert p.duration_s <= 40
    assert set(p.users.active()) == {"rest_market", "ccxt", "ws_streams", "pipeline"}
    assert p.env == "sim" and max(s.users for s in p.stages) <= 10
    assert p.users.pipeline.strategy.force_every_s > 0


def test_ci_gate_has_the_test_plan_criteria():
    p = prof.load_profile("ci-gate")
    assert 50 <= p.duration_s <= 70
    got = {(c.metric, c.aggregation, c.op, round(c.threshold, 6)) for c in p.criteria}
    assert got >= {("request", "avg", "<", 200.0), ("ws_lag", "avg", "<", 50.0), ("pipeline", "avg", "<", 500.0),
                   ("api_success", "rate", ">", 0.999), ("order_success", "rate", ">", 0.995),
                   ("ws_connection", "rate", ">", 0.999), ("reconciliation", "rate", "==", 1.0),
                   ("http_418", "count", "==", 0.0)}


def test_special_profiles():
    canary = prof.load_profile("production-canary")
    assert canary.env == "production" and canary.symbols == ("BTCUSDT",)
    assert canary.safety.max_order_notional == 20 and canary.safety.symbol_allowlist == ("BTCUSDT",)
    pl = canary.users.pipeline
    assert pl.max_orders == 2 and pl.order_type == "MARKET" and 10 <= pl.notional <= 20
    assert "buy" in canary.description and "sell" in canary.description
    probe = prof.load_profile("rate-limit-probe")
    assert probe.pacing.weight_fraction == 0.95 and probe.sim["limits"]["request_weight_per_minute"] == 600
    conc = prof.load_profile("concurrency")
    assert len(conc.symbols) >= 3 and max(conc.users.pipeline.fixed_count, conc.users.pipeline.weight) > 1
    assert prof.load_profile("soak-24h").duration_s == 24 * 3600
    stress = prof.load_profile("stress")
    assert len({s.users for s in stress.stages}) >= 3
    md = prof.load_profile("market-data")
    assert set(md.users.active()) == {"rest_market", "ccxt"} and not md.users.places_orders


def test_minimal_profile_defaults(tmp_path):
    p = prof.load_profile(write(tmp_path, MINIMAL))
    assert p.name == "p" and p.env == "sim" and p.duration_s == 15.0
    assert p.users.rest_market.task_weights == {"depth": 4, "klines": 1, "trades": 2, "ticker": 3, "book_ticker": 3}
    assert p.users.rest_market.kline_intervals == ("1m", "5m", "1h")
    assert p.users.pipeline.order_via == "rest" and p.users.pipeline.strategy.fast == 3
    assert p.users.ccxt is None and p.pacing.weight_fraction == 0.8 and p.safety.max_order_notional == 20.0
    assert p.criteria == () and p.sim is None and p.sink is None


def test_task_weights_merge_over_defaults(tmp_path):
    doc = copy.deepcopy(MINIMAL)
    doc["users"]["rest_market"] = {"task_weights": {"klines": 0, "depth": 9}}
    p = prof.load_profile(write(tmp_path, doc))
    assert p.users.rest_market.task_weights["depth"] == 9 and p.users.rest_market.task_weights["klines"] == 0
    assert p.users.rest_market.task_weights["ticker"] == 3


def _set(doc, dotted, value):
    node = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


BAD = [
    ("foo", 1, "unknown key 'foo'"),
    ("users.pipeline.strategy.fastt", 3, "unknown key 'users.pipeline.strategy.fastt'"),
    ("users.pipeline.strategy.fast", "x", "users.pipeline.strategy.fast: expected an integer, got 'x'"),
    ("users.pipeline.strategy.slow", 2, "users.pipeline.strategy.slow: must be greater than fast"),
    ("users.pipeline.order_via", "fix", "users.pipeline.order_via: expected one of 'rest', 'ws_api'"),
    ("users.rest_market.kline_intervals", ["1m", "7m"], "users.rest_market.kline_intervals[1]: unknown interval"),
    ("users.rest_market.task_weights", {"depht": 1}, "unknown key 'users.rest_market.task_weights.depht'"),
    ("users.ws_streams", {"streams": ["{symbol}@trades"]}, "users.ws_streams.streams[0]"),
    ("users.rest_market.wait_max_s", "5 minutes", "users.rest_market.wait_max_s: invalid duration"),
    ("stages", [{"duration": "10s", "users": 1, "spawn_rate": 1}, {"duration": "5 minutes", "users": 1,
                                                                    "spawn_rate": 1}],
     "stages[1].duration: invalid duration '5 minutes'"),
    ("stages", [{"duration": "10s", "users": 1}], "missing required key 'stages[0].spawn_rate'"),
    ("stages", [], "stages: needs at least one stage"),
    ("criteria", {"request": ["p95<200"]}, "criteria['request'][0]: invalid threshold 'p95<200'"),
    ("criteria", {'request{name=GET}': ["avg<1"]}, "criteria['request{name=GET}']: invalid tag list"),
    ("criteria", {"api_success": ["avg<1"]}, "criteria['api_success'][0]: api_success does not support avg"),
    ("criteria", {"ws_lag": [{"threshold": "avg<50", "abort": True}]}, "criteria['ws_lag'][0]: unknown key 'abort'"),
    ("criteria", {"ws_lag": [{"threshold": "avg<50", "delay_abort_eval": "soon"}]},
     "criteria['ws_lag'][0].delay_abort_eval: invalid duration 'soon'"),
    ("symbols", ["btcusdt"], "symbols[0]: must be upper-case letters and digits, got 'btcusdt'"),
    ("symbols", ["BTC-USDT"], "symbols[0]: must be upper-case"),
    ("symbols", ["XRPUSDT"], "symbols[0]: XRPUSDT is not a default simulator symbol"),
    ("env", "mainnet", "env: expected one of 'sim', 'testnet', 'production', got 'mainnet'"),
    ("pacing", {"weight_fraction": 1.5}, "pacing.weight_fraction: must be within (0, 1]"),
    ("safety", {"max_order_notional": 0}, "safety.max_order_notional: must be > 0"),
    ("safety", {"max_run_notional": -5}, "safety.max_run_notional: must be > 0"),
    ("users.pipeline.notional", 50, "users.pipeline.notional: 50.0 exceeds safety.max_order_notional 20.0"),
    ("users", {}, "users: at least one of rest_market, ccxt, ws_streams, pipeline"),
    ("users", {"rest_market": None}, "users: at least one of"),
    ("users.pipeline.weight", 0, "users.pipeline.weight: must be >= 1"),
    ("sim", {"limits": {"foo": 1}}, "sim: unknown key 'limits.foo'"),
    ("sim", {"limits": {"request_weight_per_minute": 0}}, "sim: limits.request_weight_per_minute: must be > 0"),
    ("sink", {"mode": "batch"}, "sink.mode: expected one of 'aggregate', 'raw'"),
    ("description", "", "description: must be one non-empty line"),
    ("gate", {"allow_inconclusve": True}, "unknown key 'gate.allow_inconclusve'"),
    ("gate", {"eval_every_s": "0s"}, "gate.eval_every_s: must be > 0"),
    ("gate", {"fees_min_bps": 20}, "gate.fees_min_bps: 20.0 is above fees_max_bps"),
    ("gate", {"max_429": -1}, "gate.max_429: must be >= 0"),
    ("notify", [{"kind": "telegram", "url_env": "TG_URL"}], "notify[0].chat_id: is required for kind telegram"),
    ("notify", [{"kind": "teams", "url_env": "X"}], "notify[0].kind: expected one of 'slack', 'telegram'"),
    ("notify", [{"kind": "slack", "url_env": "https://hooks.slack.com/SECRET"}],
     "notify[0].url_env: must be an environment variable name holding the URL"),
    ("notify", [{"kind": "slack", "url_env": "X", "events": ["verdict", "everything"]}], "notify[0].events[1]"),
]


@pytest.mark.parametrize("key,value,fragment", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_profile_names_file_and_key(tmp_path, key, value, fragment):
    doc = copy.deepcopy(MINIMAL)
    _set(doc, key, value)
    path = write(tmp_path, doc, "bad.yaml")
    with pytest.raises(ConfigError) as ei:
        prof.load_profile(path)
    msg = str(ei.value)
    assert msg.startswith(path + ":"), msg
    assert fragment in msg, msg


def test_missing_keys_and_unreadable_files(tmp_path):
    doc = copy.deepcopy(MINIMAL)
    del doc["description"]
    with pytest.raises(ConfigError, match="missing required key 'description'"):
        prof.load_profile(write(tmp_path, doc))
    with pytest.raises(ConfigError, match="file not found"):
        prof.load_profile(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="invalid YAML"):
        prof.load_profile(write(tmp_path, "stages: [1, 2", "broken.yaml"))
    with pytest.raises(ConfigError, match="top level: expected a mapping"):
        prof.load_profile(write(tmp_path, "- 1\n- 2\n", "list.yaml"))
    with pytest.raises(ConfigError, match=r"unknown profile 'no-such-profile'.*smoke"):
        prof.load_profile("no-such-profile")


def test_sim_section_declares_extra_symbols(tmp_path):
    doc = copy.deepcopy(MINIMAL)
    doc["symbols"] = ["XRPUSDT"]
    doc["sim"] = {"symbols": [{"symbol": "XRPUSDT", "base": "XRP", "quote": "USDT", "price": "0.5"}]}
    assert prof.load_profile(write(tmp_path, doc)).symbols == ("XRPUSDT",)
    doc["symbols"] = ["BTCUSDT"]
    with pytest.raises(ConfigError, match=r"symbols\[0\]: BTCUSDT is not a symbol of the sim section"):
        prof.load_profile(write(tmp_path, doc))


def test_production_orders_load_but_caps_must_be_positive(tmp_path):
    doc = copy.deepcopy(MINIMAL)
    doc["env"] = "production"
    p = prof.load_profile(write(tmp_path, doc))
    assert p.users.places_orders and not p.safety.allow_production_orders


def test_pyproject_ships_profiles_dashboards_and_locustfile_as_package_data():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as fh:
        cfg = tomllib.load(fh)
    patterns = cfg["tool"]["setuptools"]["package-data"]["letrade_perf"]
    assert {"**/*.yaml", "**/*.json", "locustfiles/*.py"} <= set(patterns)
    assert "data-files" not in cfg["tool"]["setuptools"]


# -- durations, criteria --------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("24h", 86400), (90, 90),
                                          (2.5, 2.5), ("250ms", 0.25), ("1d", 86400), ("1.5s", 1.5), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text, "k", "f") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 minutes", "-1", -3, "", "1x", True, None, "m5", [1]])
def test_bad_durations(text):
    with pytest.raises(ConfigError, match=r"f: k: invalid duration"):
        parse_duration(text, "k", "f")


def test_criteria_grammar():
    crits = parse_criteria({
        'request{name="GET /api/v3/depth"}': ["p(95)<200", {"threshold": "avg < 100", "abort_on_fail": True,
                                                           "delay_abort_eval": "10s"}],
        'request{status="200", name="GET /api/v3/klines"}': "med<=50",
        "ws_lag": ["avg<50"],
        "api_success": ["rate>99.9%"],
        "http_418": ["count==0"],
        "my_metric": ["p(99.9)>=1e3"],
    }, "f.yaml")
    a, b, c, d, e, f, g = crits
    assert (a.metric, a.tags, a.aggregation, a.op, a.threshold, a.expression) == (
        "request", (("name", "GET /api/v3/depth"),), "p(95)", "<", 200.0, "p(95)<200")
    assert a.percentile == 95.0 and not a.abort_on_fail and a.source_key == 'request{name="GET /api/v3/depth"}'
    assert b.abort_on_fail and b.delay_abort_eval_s == 10.0 and b.expression == "avg<100"
    assert c.tags == (("name", "GET /api/v3/klines"), ("status", "200")) and c.op == "<="
    assert c.selector == 'request{name="GET /api/v3/klines",status="200"}'
    assert d.label == "ws_lag avg<50" and d.passes(49.9) and not d.passes(50)
    assert e.threshold == 0.999 and e.passes(0.9995) and not e.passes(0.999)
    assert f.op == "==" and f.passes(0) and not f.passes(1)
    assert g.aggregation == "p(99.9)" and g.threshold == 1000.0


@pytest.mark.parametrize("mapping,fragment", [
    ({"request": ["p(0)<1"]}, "percentile must be within (0, 100]"),
    ({"request": ["avg<200%"]}, "a % threshold only makes sense for rate"),
    ({"request": ["avg=200"]}, "invalid threshold"),
    ({"request": ["avg<fast"]}, "invalid threshold"),
    ({"request": []}, "expected a list of thresholds"),
    ({"request": [42]}, "expected a threshold string"),
    ({"http_418": ["avg<1"]}, "http_418 does not support avg"),
    ({"1request": ["avg<1"]}, "invalid metric selector"),
    ({'request{name="a",name="b"}': ["avg<1"]}, "duplicate tag 'name'"),
    (["avg<1"], "criteria: expected a mapping"),
])
def test_bad_criteria(mapping, fragment):
    with pytest.raises(ConfigError) as ei:
        parse_criteria(mapping, "f.yaml")
    assert str(ei.value).startswith("f.yaml: criteria") and fragment in str(ei.value)


# -- command line -------------------------------------------------------------------------------

def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "letrade_perf", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)


def test_cli_profiles_lists_and_validates():
    r = _cli("profiles")
    assert r.returncode == 0, r.stderr
    for name, desc, _ in prof.list_profiles():
        assert name in r.stdout and desc in r.stdout
    r = _cli("profiles", "--validate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(" ok ") == len(BUNDLED)


def test_cli_bad_profile_exits_2_without_traceback(tmp_path):
    doc = copy.deepcopy(MINIMAL)
    _set(doc, "users.pipeline.strategy.fast", "x")
    path = write(tmp_path, doc, "bad.yaml")
    expected = f"{path}: users.pipeline.strategy.fast: expected an integer, got 'x'"
    r = _cli("profiles", "--validate", "smoke", path)
    assert r.returncode == 2
    assert expected in r.stdout and "Traceback" not in r.stdout + r.stderr
    r = _cli("check", "--profile", path)
    assert r.returncode == 2
    assert expected in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_every_error_of_a_profile_is_reported_at_once_each_with_its_line(tmp_path):
    path = tmp_path / "several.yaml"
    path.write_text("description: several errors\n"
                    "stages: [{duration: 5s, users: -1, spawn_rate: 1}, {duration: 5x, users: 1, spawn_rate: 1}]\n"
                    "users: {rest_market: {weight: 1, depht_limit: 5}}\n"
                    "pacing: {weight_fraction: 2}\n"
                    "bogus: 1\n")
    with pytest.raises(ConfigError) as info:
        prof.load_profile(str(path))
    found = [str(e) for e in info.value.errors]
    assert found == [f"{path}: stages[0].users: must be >= 0, got -1 (line 2)",
                     f"{path}: stages[1].duration: invalid duration '5x' (e.g. 30s, 5m, 1h30m, 24h, or seconds) (line 2)",
                     f"{path}: unknown key 'users.rest_market.depht_limit' (allowed: arrival_rate, depth_limit, fixed_count, "
                     "kline_intervals, kline_limit, kline_pages, task_weights, trades_limit, wait_max_s, wait_min_s, "
                     "weight) (line 3)",
                     f"{path}: pacing.weight_fraction: must be within (0, 1], got 2.0 (line 4)",
                     f"{path}: unknown key 'bogus' (allowed: criteria, description, env, flatten, funds, gate, generator, notify, pacing, safety, "
                     "sim, sink, stages, symbols, target, tolerate, users) (line 5)"]
    assert str(info.value) == " | ".join(found)
    out = subprocess.run([sys.executable, "-m", "letrade_perf", "profiles", "--validate", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and all(line in out.stdout for line in found), out.stdout + out.stderr
