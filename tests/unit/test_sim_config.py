"""Simulator config loading: strict keys, typed values, errors naming the file and key path."""
from __future__ import annotations

import argparse

import pytest

from letrade_perf.sim import config as sc
from letrade_perf.sim.server import config_from_args, parse_kv_spec


def test_defaults_are_valid():
    cfg = sc.from_mapping({})
    assert [s.symbol for s in cfg.symbols][:2] == ["BTCUSDT", "ETHUSDT"]
    assert {a.key_type for a in cfg.accounts} == {"HMAC", "ED25519"}
    assert cfg.rate_limits()[0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                    "intervalNum": 1, "limit": 6000}


def test_yaml_file_round_trip(tmp_path):
    p = tmp_path / "sim.yaml"
    p.write_text("seed: 9\nlimits: {request_weight_per_minute: 50}\n"
                 "endpoint_latency: {'GET /api/v3/depth': {fixed_ms: 5, jitter_ms: 1, dist: normal}}\n"
                 "faults: [{kind: storm_429, every: 3, count: 2}]\n")
    cfg = sc.load(p)
    assert cfg.seed == 9 and cfg.limits.request_weight_per_minute == 50
    assert cfg.endpoint_latency["GET /api/v3/depth"].fixed_ms == 5.0
    assert cfg.faults[0].kind == "storm_429" and cfg.faults[0].every == 3


@pytest.mark.parametrize("doc,fragment", [
    ("limits: {foo: 1}", "unknown key 'limits.foo'"),
    ("seed: abc", "seed: expected an integer"),
    ("faults: [{kind: boom}]", "faults[0].kind: unknown fault 'boom'"),
    ("faults: [{kind: http_5xx, probability: 2}]", "faults[0].probability"),
    ("faults: [{kind: http_5xx, status: 404}]", "faults[0].status"),
    ("latency: {dist: cauchy}", "latency.dist"),
    ("symbols: [{symbol: btcusdt, base: BTC, quote: USDT, price: '1'}]", "symbols[0].symbol"),
    ("symbols: [{symbol: BTCUSDT, base: BTC, quote: USDT, price: 'x'}]", "symbols[0].price"),
    ("accounts: [{api_key: k}]", "accounts[0].secret"),
    ("accounts: [{api_key: k, secret: s, balances: {BTC: lots}}]", "accounts[0].balances.BTC"),
    ("- 1\n- 2", "top level: expected a mapping"),
    ("limits: {ban_ladder_s: []}", "limits.ban_ladder_s"),
])
def test_errors_name_file_and_key(tmp_path, doc, fragment):
    p = tmp_path / "bad.yaml"
    p.write_text(doc)
    with pytest.raises(sc.SimConfigError) as ei:
        sc.load(p)
    assert str(p) in str(ei.value) and fragment in str(ei.value)


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(sc.SimConfigError, match="file not found"):
        sc.load(tmp_path / "nope.yaml")
    p = tmp_path / "x.yaml"
    p.write_text("a: [1, 2")
    with pytest.raises(sc.SimConfigError, match="invalid YAML"):
        sc.load(p)


def test_cli_specs():
    assert parse_kv_spec("kind=http_5xx,probability=0.1,endpoints=GET /api/v3/depth|POST /api/v3/order", "f") == {
        "kind": "http_5xx", "probability": 0.1, "endpoints": ["GET /api/v3/depth", "POST /api/v3/order"]}
    args = argparse.Namespace(config=None, host=None, port=0, seed=5, clock_skew_ms=250,
                              latency="fixed_ms=3,dist=uniform,jitter_ms=2", fault=["kind=reset,every=4"])
    cfg = config_from_args(args)
    assert cfg.seed == 5 and cfg.port == 0 and cfg.clock_skew_ms == 250
    assert cfg.latency.fixed_ms == 3.0 and cfg.latency.dist == "uniform"
    assert cfg.faults[0].kind == "reset" and cfg.faults[0].every == 4
    bad = argparse.Namespace(**{**vars(args), "fault": ["kind=reset,every=x"]})
    with pytest.raises(sc.SimConfigError, match="every"):
        config_from_args(bad)
