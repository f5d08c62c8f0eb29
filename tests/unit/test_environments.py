"""Targets and start-up: environment URLs, the profile's ``target:`` block, start-up retries,
preflight (credentials, reachability, symbols), ``status=clock`` in the recorder, and the CLI's
``--version`` / ``--log-level`` / ``paths``.

Pure unit tests: time is asserted through injected clocks and sleeps, never wall time. The
preflight reachability tests talk to a real tiny HTTP server on 127.0.0.1 (port 0).
"""
from __future__ import annotations

import http.client
import http.server
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import threading
import urllib.error
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from letrade_perf.calls.path import ClientClockError
from letrade_perf.cli import LOG_LEVELS, build_parser, main
from letrade_perf.config.environments import (
    BINANCE_REST_HOSTS,
    PRODUCTION,
    TESTNET,
    WS_API_PATH,
    Environment,
    environment,
    target_options,
)
from letrade_perf.config.profile import TargetSettings, profile_from_mapping
from letrade_perf.core.errors import ConfigError
from letrade_perf.criteria.evaluate import judge
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.metrics.recorder import MetricsRecorder, MetricsStore, Snapshot
from letrade_perf.preflight import (
    credential_problem,
    describe_network_error,
    fetch_exchange_info,
    symbol_problem,
    users_needing_credentials,
)
from letrade_perf.retry import STARTUP, Attempts, RetryPolicy, retry_call
from letrade_perf.sim.config import DEMO_API_KEY

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------
# 1. environment(): the three URLs
# ---------------------------------------------------------------------------------------------

# The table of the module docstring, verbatim.
DOCUMENTED = {
    "production": ("https://api.binance.com", "wss://stream.binance.com:9443",
                   "wss://ws-api.binance.com:443/ws-api/v3"),
    "testnet": ("https://testnet.binance.vision", "wss://stream.testnet.binance.vision",
                "wss://ws-api.testnet.binance.vision/ws-api/v3"),
}


@pytest.mark.parametrize("name", ["production", "testnet"])
def test_official_environments_resolve_to_the_documented_urls(name):
    env = environment(name)
    rest, streams, ws_api = DOCUMENTED[name]
    assert (env.name, env.rest_url, env.ws_stream_url, env.ws_api_url) == (name, rest, streams, ws_api)
    assert env.production is (name == "production")
    assert env.urls() == {"rest": rest, "streams": streams, "ws_api": ws_api}
    assert env == (PRODUCTION if name == "production" else TESTNET)


def test_sim_resolves_from_its_host_and_needs_one():
    env = environment("sim", "http://127.0.0.1:8765")
    assert env.urls() == {"rest": "http://127.0.0.1:8765", "streams": "ws://127.0.0.1:8765",
                          "ws_api": "ws://127.0.0.1:8765/ws-api/v3"}
    assert env.production is False and env.name == "sim"
    # a REST URL alone is a base for sim too
    assert environment("sim", rest_url="http://10.0.0.5:9000/").urls() == {
        "rest": "http://10.0.0.5:9000", "streams": "ws://10.0.0.5:9000", "ws_api": "ws://10.0.0.5:9000/ws-api/v3"}
    with pytest.raises(ConfigError, match=r"sim.*--host"):
        environment("sim")


def test_unknown_environment_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown environment 'mainnet'.*sim, testnet, production"):
        environment("mainnet")


@pytest.mark.parametrize("name", ["sim", "testnet", "production"])
@pytest.mark.parametrize("given_host, base", [
    ("http://h.binance.com:8080", "h.binance.com:8080"),
    ("http://h.binance.com:8080/", "h.binance.com:8080"),
    ("http://h.binance.com:8080/api/v3", "h.binance.com:8080"),
    ("http://h.binance.com:8080/api/v3/", "h.binance.com:8080"),
    ("http://h.binance.com:8080/prefix/api/v3", "h.binance.com:8080/prefix"),
    ("http://h.binance.com:8080/prefix/", "h.binance.com:8080/prefix"),
])
def test_host_derives_all_three_urls_for_every_env(name, given_host, base):
    for scheme, ws in (("http", "ws"), ("https", "wss")):
        url = given_host.replace("http://", f"{scheme}://", 1)
        if name == "production" and scheme == "http":
            with pytest.raises(ConfigError, match="production REST URL"):
                environment(name, url)
            continue
        env = environment(name, url)
        assert env.urls() == {"rest": f"{scheme}://{base}", "streams": f"{ws}://{base}",
                              "ws_api": f"{ws}://{base}{WS_API_PATH}"}, (name, url)


def test_testnet_with_a_non_binance_host_derives_everything_from_it():
    env = environment("testnet", "http://127.0.0.1:18765")
    assert env.urls() == {"rest": "http://127.0.0.1:18765", "streams": "ws://127.0.0.1:18765",
                          "ws_api": "ws://127.0.0.1:18765/ws-api/v3"}
    assert env.name == "testnet" and env.production is False
    env = environment("testnet", "https://mirror.example/binance/")
    assert env.urls() == {"rest": "https://mirror.example/binance", "streams": "wss://mirror.example/binance",
                          "ws_api": "wss://mirror.example/binance/ws-api/v3"}


def test_ipv6_host_keeps_its_brackets():
    env = environment("sim", "http://[::1]:8765/")
    assert env.urls() == {"rest": "http://[::1]:8765", "streams": "ws://[::1]:8765",
                          "ws_api": "ws://[::1]:8765/ws-api/v3"}


@pytest.mark.parametrize("name, host, rest", [
    ("production", "https://api1.binance.com", "https://api1.binance.com"),
    ("production", "https://api-gcp.binance.com/api/v3/", "https://api-gcp.binance.com"),
    ("production", "https://API4.Binance.com", "https://API4.Binance.com"),
    ("testnet", "https://api1.testnet.binance.vision", "https://api1.testnet.binance.vision"),
    ("testnet", "https://testnet.binance.vision/api/v3", "https://testnet.binance.vision"),
])
def test_a_documented_binance_rest_host_keeps_the_official_stream_and_ws_api_urls(name, host, rest):
    env = environment(name, host)
    official = PRODUCTION if name == "production" else TESTNET
    assert env.rest_url == rest
    assert env.ws_stream_url == official.ws_stream_url == DOCUMENTED[name][1]
    assert env.ws_api_url == official.ws_api_url == DOCUMENTED[name][2]


def test_a_documented_host_of_the_other_environment_derives():
    # api1.binance.com is not a testnet host: testnet derives from it like from any other host
    env = environment("testnet", "https://api1.binance.com")
    assert env.ws_stream_url == "wss://api1.binance.com" and env.ws_api_url == "wss://api1.binance.com/ws-api/v3"


def test_each_url_can_be_overridden_on_its_own():
    env = environment("testnet", rest_url="https://mirror.example/api/v3/")
    assert env.urls() == {"rest": "https://mirror.example", "streams": DOCUMENTED["testnet"][1],
                          "ws_api": DOCUMENTED["testnet"][2]}
    env = environment("testnet", stream_url="wss://streams.example:9443/ws")
    assert env.urls() == {"rest": DOCUMENTED["testnet"][0], "streams": "wss://streams.example:9443",
                          "ws_api": DOCUMENTED["testnet"][2]}
    env = environment("testnet", ws_api_url="wss://wsapi.example")
    assert env.urls() == {"rest": DOCUMENTED["testnet"][0], "streams": DOCUMENTED["testnet"][1],
                          "ws_api": "wss://wsapi.example/ws-api/v3"}
    # an explicit URL wins over the one the host derives
    env = environment("sim", "http://127.0.0.1:1", stream_url="ws://other:2/stream/", ws_api_url="ws://third:3/x/")
    assert env.urls() == {"rest": "http://127.0.0.1:1", "streams": "ws://other:2", "ws_api": "ws://third:3/x"}
    env = environment("sim", "http://127.0.0.1:1", rest_url="http://proxy:4/base/api/v3")
    assert env.urls() == {"rest": "http://proxy:4/base", "streams": "ws://127.0.0.1:1",
                          "ws_api": "ws://127.0.0.1:1/ws-api/v3"}


@pytest.mark.parametrize("given_url, normalised", [
    ("wss://stream.binance.com:9443", "wss://stream.binance.com:9443"),
    ("wss://stream.binance.com:9443/", "wss://stream.binance.com:9443"),
    ("wss://stream.binance.com:9443/ws", "wss://stream.binance.com:9443"),
    ("wss://stream.binance.com:9443/ws/", "wss://stream.binance.com:9443"),
    ("wss://stream.binance.com:9443/stream", "wss://stream.binance.com:9443"),
    ("wss://data-stream.binance.com/prefix/stream/", "wss://data-stream.binance.com/prefix"),
])
def test_stream_url_suffixes_are_normalised(given_url, normalised):
    env = environment("production", stream_url=given_url)
    assert env.ws_stream_url == normalised
    assert env.stream_url("btcusdt@trade") == f"{normalised}/ws/btcusdt@trade"
    assert env.stream_url("a@trade", "b@trade") == f"{normalised}/stream?streams=a@trade/b@trade"


@pytest.mark.parametrize("given_url, normalised", [
    ("wss://ws-api.binance.com:443", "wss://ws-api.binance.com:443/ws-api/v3"),
    ("wss://ws-api.binance.com:443/", "wss://ws-api.binance.com:443/ws-api/v3"),
    ("wss://ws-api.binance.com:443/ws-api/v3/", "wss://ws-api.binance.com:443/ws-api/v3"),
    ("wss://ws-api.binance.com/custom/path", "wss://ws-api.binance.com/custom/path"),
])
def test_a_bare_ws_api_host_gets_the_ws_api_path(given_url, normalised):
    assert environment("production", ws_api_url=given_url).ws_api_url == normalised


@pytest.mark.parametrize("kwargs, names", [
    ({"host": "http://127.0.0.1:8765"}, "REST URL"),
    ({"rest_url": "http://api.binance.com"}, "REST URL"),
    ({"host": "https://api.binance.com.evil.example"}, "REST URL"),
    ({"host": "https://binance.com.evil.example"}, "REST URL"),
    ({"host": "https://evilbinance.com"}, "REST URL"),
    ({"stream_url": "ws://stream.binance.com:9443"}, "stream URL"),
    ({"stream_url": "wss://stream.binance.com.evil.example:9443"}, "stream URL"),
    ({"stream_url": "wss://stream.example.org"}, "stream URL"),
    ({"ws_api_url": "ws://ws-api.binance.com/ws-api/v3"}, "WebSocket API URL"),
    ({"ws_api_url": "wss://ws-api.binance.com.evil.example/ws-api/v3"}, "WebSocket API URL"),
    ({"ws_api_url": "wss://ws-api.example.org/ws-api/v3"}, "WebSocket API URL"),
])
def test_production_guard_applies_to_all_three_urls(kwargs, names):
    with pytest.raises(ConfigError) as e:
        environment("production", **kwargs)
    msg = str(e.value)
    assert msg.startswith(f"production {names} must be a "), msg
    assert msg.endswith(f"got {next(iter(kwargs.values()))!r}"), msg


def test_production_guard_names_the_offending_url_and_an_example():
    with pytest.raises(ConfigError) as e:
        environment("production", stream_url="wss://stream.example.org")
    assert str(e.value) == ("production stream URL must be a wss binance.com host "
                            "(e.g. wss://stream.binance.com:9443), got 'wss://stream.example.org'")
    with pytest.raises(ConfigError) as e:
        environment("production", host="https://api.binance.com.evil.example")
    assert "production REST URL must be a https binance.com host" in str(e.value)
    assert "'https://api.binance.com.evil.example'" in str(e.value)


def test_production_accepts_binance_subdomains_and_the_apex():
    assert environment("production", "https://binance.com").rest_url == "https://binance.com"
    env = environment("production", "https://eu.proxy.binance.com:8443")
    assert env.urls() == {"rest": "https://eu.proxy.binance.com:8443", "streams": "wss://eu.proxy.binance.com:8443",
                          "ws_api": "wss://eu.proxy.binance.com:8443/ws-api/v3"}


@pytest.mark.parametrize("kwargs, named", [
    ({"name": "sim", "host": "127.0.0.1:8765"}, "sim host"),
    ({"name": "sim", "host": "ftp://127.0.0.1:8765"}, "sim host"),
    ({"name": "sim", "host": "http://127.0.0.1:notaport"}, "sim host"),
    ({"name": "sim", "host": "http://127.0.0.1:99999"}, "sim host"),
    ({"name": "sim", "host": "http://127.0.0.1:1/?x=1"}, "sim host"),
    ({"name": "testnet", "host": "http:///nohost"}, "testnet host"),
    ({"name": "testnet", "rest_url": "ws://127.0.0.1:1"}, "testnet REST URL"),
    ({"name": "testnet", "stream_url": "https://stream.example"}, "testnet stream URL"),
    ({"name": "testnet", "stream_url": "wss://stream.example/#frag"}, "testnet stream URL"),
    ({"name": "testnet", "ws_api_url": "http://ws-api.example/ws-api/v3"}, "testnet WebSocket API URL"),
    ({"name": "production", "ws_api_url": "wss://"}, "production WebSocket API URL"),
    ({"name": "production", "stream_url": "   "}, "production stream URL"),
])
def test_bad_urls_raise_config_error_naming_the_parameter(kwargs, named):
    with pytest.raises(ConfigError) as e:
        environment(**kwargs)
    assert str(e.value).startswith(f"{named}: "), str(e.value)


def test_command_line_over_the_profile_target_block():
    """One rule for run, check and the plugin: a command-line host replaces the whole block,
    a single command-line URL replaces only its own."""
    block = TargetSettings(host="http://sim-a:1", stream_url="ws://streams-b:2")
    assert target_options(block) == {"host": "http://sim-a:1", "rest_url": None, "stream_url": "ws://streams-b:2",
                                     "ws_api_url": None}
    assert target_options(block, host="http://other:3") == {"host": "http://other:3", "rest_url": None,
                                                            "stream_url": None, "ws_api_url": None}
    assert target_options(block, ws_api_url="ws://c:4/ws-api/v3")["stream_url"] == "ws://streams-b:2"
    assert target_options(block, stream_url="ws://d:5")["stream_url"] == "ws://d:5"
    assert target_options(None, rest_url="http://r:6") == {"host": None, "rest_url": "http://r:6",
                                                           "stream_url": None, "ws_api_url": None}
    env = environment("sim", **target_options(block))
    assert isinstance(env, Environment) and env.urls() == {"rest": "http://sim-a:1", "streams": "ws://streams-b:2",
                                                           "ws_api": "ws://sim-a:1/ws-api/v3"}


# -- property: derivation only swaps the scheme; the production guard is exactly binance.com ----

_LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
_SUFFIX = st.sampled_from(["", ".binance.com", ".binance.com.evil.example", ".example", "binance.com",
                           "-binance.com", ".binance.co", ".binance.community", ".xbinance.com"])


@st.composite
def host_names(draw) -> str:
    labels = draw(st.lists(_LABEL, min_size=1, max_size=3))
    name = ".".join(labels) + draw(_SUFFIX)
    if draw(st.booleans()):
        name = "binance.com" if draw(st.booleans()) else name
    if draw(st.booleans()):
        name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    return name


@settings(max_examples=300, deadline=None)
@given(host=host_names(), port=st.none() | st.integers(min_value=1, max_value=65535),
       scheme=st.sampled_from(["http", "https"]), name=st.sampled_from(["sim", "testnet", "production"]),
       path=st.sampled_from(["", "/", "/api/v3", "/api/v3/"]))
def test_property_derived_urls_keep_host_and_port_and_only_swap_the_scheme(host, port, scheme, name, path):
    assume(name == "sim" or host.lower() not in BINANCE_REST_HOSTS[name])
    netloc = host if port is None else f"{host}:{port}"
    url = f"{scheme}://{netloc}{path}"
    lower = host.lower()
    binance = lower == "binance.com" or lower.endswith(".binance.com")
    if name == "production" and not (scheme == "https" and binance):
        with pytest.raises(ConfigError, match=r"^production REST URL must be a https binance.com host"):
            environment(name, url)
        return
    env = environment(name, url)
    ws = {"http": "ws", "https": "wss"}[scheme]
    assert env.rest_url == f"{scheme}://{netloc}"
    assert env.ws_stream_url == f"{ws}://{netloc}"
    assert env.ws_api_url == f"{ws}://{netloc}{WS_API_PATH}"
    for u, expected_scheme in ((env.rest_url, scheme), (env.ws_stream_url, ws), (env.ws_api_url, ws)):
        parts = urlsplit(u)
        assert (parts.scheme, parts.hostname, parts.port) == (expected_scheme, lower, port)


@settings(max_examples=200, deadline=None)
@given(host=host_names(), scheme=st.sampled_from(["http", "https"]))
def test_property_production_accepts_exactly_https_binance_com_hosts(host, scheme):
    lower = host.lower()
    should_accept = scheme == "https" and (lower == "binance.com" or lower.endswith(".binance.com"))
    try:
        env = environment("production", f"{scheme}://{host}")
    except ConfigError as e:
        assert not should_accept, f"rejected {scheme}://{host}: {e}"
        assert "production REST URL" in str(e)
    else:
        assert should_accept, f"accepted {scheme}://{host}"
        assert env.production is True
        assert all(urlsplit(u).scheme in ("https", "wss") for u in env.urls().values())


# ---------------------------------------------------------------------------------------------
# 2. the profile's target: block
# ---------------------------------------------------------------------------------------------

PROFILE = {
    "description": "target test",
    "stages": [{"duration": 5, "users": 1, "spawn_rate": 1}],
    "users": {"rest_market": {}},
}


def test_a_valid_target_block_loads():
    target = {"host": "http://127.0.0.1:9000/api/v3/", "rest_url": "https://mirror.example",
              "stream_url": "wss://stream.mirror.example/ws", "ws_api_url": "wss://ws-api.mirror.example"}
    p = profile_from_mapping(dict(PROFILE, target=target), source="t.yaml")
    assert p.target == TargetSettings(**target)     # kept as written; environment() normalises
    assert profile_from_mapping(dict(PROFILE), source="t.yaml").target == TargetSettings()
    assert profile_from_mapping(dict(PROFILE, target={}), source="t.yaml").target == TargetSettings()
    env = environment("testnet", p.target.host, rest_url=p.target.rest_url, stream_url=p.target.stream_url,
                      ws_api_url=p.target.ws_api_url)
    assert env.urls() == {"rest": "https://mirror.example", "streams": "wss://stream.mirror.example",
                          "ws_api": "wss://ws-api.mirror.example/ws-api/v3"}


@pytest.mark.parametrize("key, value", [
    ("stream_url", "http://stream.example"),
    ("stream_url", "not a url"),
    ("ws_api_url", "https://ws-api.example"),
    ("rest_url", "wss://api.example"),
    ("host", "127.0.0.1:8765"),
])
def test_a_bad_target_url_names_its_key(key, value):
    with pytest.raises(ConfigError) as e:
        profile_from_mapping(dict(PROFILE, target={key: value}), source="t.yaml")
    msg = str(e.value)
    assert msg.startswith(f"t.yaml: target.{key}: "), msg
    assert repr(value) in msg


def test_an_unknown_target_key_is_named():
    with pytest.raises(ConfigError) as e:
        profile_from_mapping(dict(PROFILE, target={"stream": "wss://x"}), source="t.yaml")
    assert "t.yaml" in str(e.value) and "'target.stream'" in str(e.value)
    assert "stream_url" in str(e.value)     # the allowed keys are listed


# ---------------------------------------------------------------------------------------------
# 3. retry_call with a fake clock and a fake sleep
# ---------------------------------------------------------------------------------------------

class FakeTime:
    """``now`` and ``sleep`` over one fake clock; each call takes ``call_s`` (at most its timeout)."""

    def __init__(self, results, call_s: float = 0.0, start: float = 100.0):
        self.t = start
        self.start = start
        self.results = list(results)
        self.call_s = call_s
        self.sleeps: list[float] = []
        self.sleep_ends: list[float] = []
        self.timeouts: list[float] = []
        self.call_starts: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s
        self.sleep_ends.append(self.t - self.start)

    def call(self, timeout: float):
        self.timeouts.append(timeout)
        self.call_starts.append(self.t - self.start)
        self.t += min(self.call_s, timeout)
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]


def transient(r) -> bool:
    return r in ("503", "timeout")


def test_retry_stops_at_the_first_non_transient_result():
    ft = FakeTime(["503", "timeout", "ok", "never"])
    result, att = retry_call(ft.call, transient, STARTUP, sleep=ft.sleep, now=ft.now)
    assert result == "ok"
    assert att.calls == 3 and ft.sleeps == [0.5, 1.0]
    ft = FakeTime(["400", "ok"])
    result, att = retry_call(ft.call, transient, STARTUP, sleep=ft.sleep, now=ft.now)
    assert result == "400" and att.calls == 1 and ft.sleeps == []   # a 4xx is an answer, not retried


def test_retry_pauses_half_one_two_seconds_and_stops_at_attempts():
    ft = FakeTime(["503"])
    result, att = retry_call(ft.call, transient, RetryPolicy(attempts=4), sleep=ft.sleep, now=ft.now)
    assert result == "503" and att.calls == 4
    assert ft.sleeps == [0.5, 1.0, 2.0]
    assert att.elapsed_s == pytest.approx(3.5)
    # the last pause repeats beyond the list
    ft = FakeTime(["503"])
    _r, att = retry_call(ft.call, transient, RetryPolicy(attempts=6, deadline_s=100.0), sleep=ft.sleep, now=ft.now)
    assert att.calls == 6 and ft.sleeps == [0.5, 1.0, 2.0, 2.0, 2.0]
    ft = FakeTime(["503"])
    _r, att = retry_call(ft.call, transient, RetryPolicy(attempts=1), sleep=ft.sleep, now=ft.now)
    assert att.calls == 1 and ft.sleeps == []


def test_retry_never_pauses_past_the_deadline():
    # calls are instant: pauses end at 0.5 and 1.5; the 2.0 s pause would end at 3.5 > 3.0
    ft = FakeTime(["503"])
    _r, att = retry_call(ft.call, transient, RetryPolicy(attempts=10, deadline_s=3.0), sleep=ft.sleep, now=ft.now)
    assert ft.sleeps == [0.5, 1.0] and att.calls == 3
    # calls that take 1 s: the call ends at 1.0, pause to 1.5, call ends at 2.5, a 1.0 s pause would reach 3.5
    ft = FakeTime(["timeout"], call_s=1.0)
    _r, att = retry_call(ft.call, transient, RetryPolicy(attempts=10, deadline_s=3.0), sleep=ft.sleep, now=ft.now)
    assert ft.sleeps == [0.5] and att.calls == 2 and att.elapsed_s == pytest.approx(2.5)
    assert all(end < 3.0 for end in ft.sleep_ends) and all(s < 3.0 for s in ft.call_starts)


@settings(max_examples=200, deadline=None)
@given(call_s=st.floats(min_value=0.0, max_value=6.0), deadline=st.floats(min_value=0.5, max_value=20.0),
       attempts=st.integers(min_value=1, max_value=8))
def test_property_no_pause_or_call_starts_past_the_deadline(call_s, deadline, attempts):
    ft = FakeTime(["503"], call_s=call_s, start=0.0)   # start 0: no rounding between our sums and retry's
    policy = RetryPolicy(attempts=attempts, deadline_s=deadline)
    _r, att = retry_call(ft.call, transient, policy, sleep=ft.sleep, now=ft.now)
    assert 1 <= att.calls <= attempts
    assert len(ft.sleeps) == att.calls - 1
    assert all(end < deadline for end in ft.sleep_ends)
    assert all(s < deadline for s in ft.call_starts)


def test_retry_passes_a_shrinking_timeout():
    # each call times out after 4 s of its 5 s: 0→4, pause→4.5, 4.5→8.5, pause→9.5, 9.5→12 (2.5 s left)
    ft = FakeTime(["timeout"], call_s=4.0)
    _r, att = retry_call(ft.call, transient, RetryPolicy(attempts=4, deadline_s=12.0, timeout_s=5.0),
                         sleep=ft.sleep, now=ft.now)
    assert ft.timeouts == [5.0, 5.0, pytest.approx(2.5)]
    assert att.calls == 3 and ft.sleeps == [0.5, 1.0]
    assert att.elapsed_s == pytest.approx(12.0)
    # never below 0.5 s, however little is left
    ft = FakeTime(["timeout"], call_s=1.4)
    _r, att = retry_call(ft.call, transient, RetryPolicy(attempts=4, deadline_s=2.0, timeout_s=5.0),
                         sleep=ft.sleep, now=ft.now)
    assert ft.timeouts == [2.0, 0.5] and ft.sleeps == [0.5]


def test_on_retry_is_told_each_retry_before_its_pause():
    told = []
    ft = FakeTime(["503", "timeout", "503", "503", "ok"])

    def on_retry(result, n, pause):
        told.append((result, n, pause, len(ft.sleeps)))

    result, att = retry_call(ft.call, transient, RetryPolicy(attempts=4), sleep=ft.sleep, now=ft.now,
                             on_retry=on_retry)
    assert result == "503" and att.calls == 4
    assert told == [("503", 1, 0.5, 0), ("timeout", 2, 1.0, 1), ("503", 3, 2.0, 2)]


def test_attempts_records_calls_and_elapsed_and_describes_them():
    ft = FakeTime(["503", "ok"], call_s=0.25)
    _r, att = retry_call(ft.call, transient, STARTUP, sleep=ft.sleep, now=ft.now)
    assert isinstance(att, Attempts)
    assert att.calls == 2 and att.elapsed_s == pytest.approx(0.25 + 0.5 + 0.25)
    assert att.describe() == "2 attempts in 1.0 s"
    assert Attempts(1, 0.04).describe() == "1 attempt in 0.0 s"
    assert RetryPolicy(backoff_s=()).pause(3) == 0.0
    assert STARTUP.pause(1) == 0.5 and STARTUP.pause(2) == 1.0 and STARTUP.pause(3) == 2.0 and STARTUP.pause(9) == 2.0


# ---------------------------------------------------------------------------------------------
# 4. preflight
# ---------------------------------------------------------------------------------------------

TESTNET_TRADING = {
    "description": "orders on testnet",
    "env": "testnet",
    "stages": [{"duration": 5, "users": 2, "spawn_rate": 1}],
    "users": {"rest_market": {}, "pipeline": {"strategy": {"fast": 3, "slow": 7}}},
}
KEY = "k" * 32 + "K1" * 16
SECRET = "s3cretValue" * 4


def test_credentials_missing_for_a_profile_that_signs():
    profile = profile_from_mapping(TESTNET_TRADING, source="trading.yaml", name="trading")
    creds, problem = credential_problem(profile, environment("testnet"), environ={})
    assert creds is None
    assert "BINANCE_TESTNET_API_KEY" in problem and "BINANCE_TESTNET_SECRET" in problem
    assert "'trading'" in problem and "env testnet" in problem
    assert "pipeline (orders, user data)" in problem
    ccxt = dict(TESTNET_TRADING, users={"ccxt": {"orders": True}})
    _c, problem = credential_problem(profile_from_mapping(ccxt, source="c.yaml"), environment("testnet"), environ={})
    assert "ccxt (orders)" in problem
    balance = dict(TESTNET_TRADING, users={"ccxt": {}})   # balance weight 1 by default
    p = profile_from_mapping(balance, source="b.yaml")
    assert users_needing_credentials(p) == ["ccxt (balance)"]
    assert "ccxt (balance)" in credential_problem(p, environment("testnet"), environ={})[1]


def test_credentials_from_the_environment_leave_no_problem():
    profile = profile_from_mapping(TESTNET_TRADING, source="trading.yaml", name="trading")
    environ = {"BINANCE_TESTNET_API_KEY": KEY, "BINANCE_TESTNET_SECRET": SECRET}
    creds, problem = credential_problem(profile, environment("testnet"), environ=environ)
    assert problem is None
    assert creds is not None and creds.api_key == KEY and creds.key_type == "HMAC"
    assert "BINANCE_TESTNET_API_KEY" in creds.source


def test_malformed_credentials_are_a_problem_even_when_not_needed():
    market = dict(TESTNET_TRADING, users={"rest_market": {}})
    profile = profile_from_mapping(market, source="m.yaml")
    creds, problem = credential_problem(profile, environment("testnet"),
                                        environ={"BINANCE_TESTNET_API_KEY": "short", "BINANCE_TESTNET_SECRET": SECRET})
    assert creds is None and problem.startswith("credentials: ") and "BINANCE_TESTNET_API_KEY" in problem


def test_market_data_profile_needs_no_credentials():
    market = dict(TESTNET_TRADING, users={"rest_market": {}, "ws_streams": {}, "ccxt": {"task_weights": {"balance": 0}}})
    profile = profile_from_mapping(market, source="m.yaml")
    assert profile.needs_credentials is False
    assert credential_problem(profile, environment("testnet"), environ={}) == (None, None)
    assert credential_problem(None, environment("production"), environ={}) == (None, None)


def test_sim_falls_back_to_the_demo_key():
    sim_profile = dict(TESTNET_TRADING, env="sim")
    profile = profile_from_mapping(sim_profile, source="s.yaml")
    creds, problem = credential_problem(profile, environment("sim", "http://127.0.0.1:1"), environ={})
    assert problem is None and creds.api_key == DEMO_API_KEY and creds.source == "simulator demo key"


@pytest.mark.parametrize("error, text", [
    (socket.gaierror(-2, "Name or service not known"), "name resolution failed (Name or service not known)"),
    (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
    (TimeoutError("timed out"), "timed out"),
    (socket.timeout(), "timed out"),
    (urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
     "name resolution failed (Temporary failure in name resolution)"),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "connection refused"),
    (urllib.error.URLError(TimeoutError("timed out")), "timed out"),
    (OSError(101, "Network is unreachable"), "Network is unreachable"),
    (urllib.error.URLError(OSError(113, "No route to host")), "No route to host"),
    (ValueError("unknown url type"), "ValueError: unknown url type"),
])
def test_describe_network_error(error, text):
    assert describe_network_error(error) == text


def _info(*symbols):
    return {"symbols": [{"symbol": s, "status": st_} for s, st_ in symbols]}


def test_symbol_problem():
    profile = profile_from_mapping(dict(TESTNET_TRADING, symbols=["BTCUSDT", "ETHUSDT", "BNBUSDT"]),
                                   source="p.yaml")
    ok = _info(("BTCUSDT", "TRADING"), ("ETHUSDT", "TRADING"), ("BNBUSDT", "TRADING"), ("XRPUSDT", "BREAK"))
    assert symbol_problem(profile, ok, "https://x") is None
    bad = _info(("BTCUSDT", "TRADING"), ("ETHUSDT", "BREAK"))
    assert symbol_problem(profile, bad, "https://x") == \
        "p.yaml: symbols at https://x: not listed: BNBUSDT; not trading: ETHUSDT (BREAK)"
    assert symbol_problem(profile, {"symbols": []}, "https://x") == \
        "p.yaml: symbols at https://x: not listed: BTCUSDT, ETHUSDT, BNBUSDT"


EXCHANGE_INFO = {"timezone": "UTC", "serverTime": 1, "rateLimits": [],
                 "symbols": [{"symbol": "BTCUSDT", "status": "TRADING"}]}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):   # noqa: N802 - http.server's name
        server = self.server
        server.paths.append(self.path)
        if len(server.paths) <= server.failures:
            body, status = b'{"code":-1001,"msg":"Internal error; unable to process your request."}', 503
        else:
            body, status = json.dumps(EXCHANGE_INFO).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def serve(no_proxy):
    servers = []

    def start(failures: int):
        srv = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
        srv.failures = failures
        srv.paths = []
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return srv, environment("sim", f"http://127.0.0.1:{srv.server_address[1]}")

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


POLICY = RetryPolicy(attempts=4, backoff_s=(0.5, 1.0, 2.0), deadline_s=30.0, timeout_s=5.0)


def test_exchange_info_succeeds_after_two_503s(serve, caplog):
    srv, env = serve(failures=2)
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, logger="letrade_perf.preflight"):
        info, problem = fetch_exchange_info(env, POLICY, sleep=sleeps.append)
    assert problem is None
    assert info == EXCHANGE_INFO
    assert srv.paths == ["/api/v3/exchangeInfo"] * 3        # 3 attempts
    assert sleeps == [0.5, 1.0]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert f"GET {env.rest_url}/api/v3/exchangeInfo: HTTP 503 -1001" in warnings[0]
    assert warnings[0].endswith("retry 1 in 0.5 s") and warnings[1].endswith("retry 2 in 1.0 s")


def test_exchange_info_always_503_names_the_url_and_the_attempts(serve):
    srv, env = serve(failures=10**6)
    sleeps: list[float] = []
    info, problem = fetch_exchange_info(env, POLICY, sleep=sleeps.append)
    assert info is None
    assert f"GET {env.rest_url}/api/v3/exchangeInfo" in problem
    assert "HTTP 503" in problem and "4 attempts" in problem
    assert len(srv.paths) == 4 and sleeps == [0.5, 1.0, 2.0]


def test_exchange_info_closed_port_is_connection_refused(no_proxy):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = environment("sim", f"http://127.0.0.1:{port}")
    sleeps: list[float] = []
    info, problem = fetch_exchange_info(env, RetryPolicy(attempts=2, deadline_s=30.0, timeout_s=2.0),
                                        sleep=sleeps.append)
    assert info is None
    assert problem.startswith(f"cannot reach sim at {env.rest_url}: GET {env.rest_url}/api/v3/exchangeInfo: ")
    assert "connection refused" in problem and "2 attempts" in problem
    assert sleeps == [0.5]


def test_exchange_info_from_a_server_that_is_not_http_is_a_problem(no_proxy):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def answer():   # an SSH banner: what --host http://h:22 (or a wrong port) answers
        srv.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        env = environment("sim", f"http://127.0.0.1:{srv.getsockname()[1]}")
        info, problem = fetch_exchange_info(env, RetryPolicy(attempts=2, deadline_s=30.0, timeout_s=2.0),
                                            sleep=lambda s: None)
    finally:
        stop.set()
        thread.join(5)
        srv.close()
    assert info is None
    assert problem.startswith(f"cannot reach sim at {env.rest_url}: ") and "2 attempts" in problem
    assert "not an HTTP answer (BadStatusLine)" in problem


@pytest.mark.parametrize("kwargs", [{"host": ""}, {"rest_url": ""}, {"stream_url": ""}, {"ws_api_url": " "}])
def test_an_empty_url_is_an_error_never_the_default(kwargs):
    # `--host "$MIRROR"` with MIRROR unset must not send the run to the real testnet or production
    for name in ("testnet", "production"):
        with pytest.raises(ConfigError):
            environment(name, **kwargs)


# ---------------------------------------------------------------------------------------------
# 6. the recorder: a -1021 answer is status=clock
# ---------------------------------------------------------------------------------------------

class Clock:
    def __init__(self, t: float = 1_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class LocalClockError(Exception):
    client_clock_error = True


def _store(rec: MetricsRecorder) -> MetricsStore:
    store = MetricsStore()
    store.merge(Snapshot.from_wire(rec.drain().to_wire()))
    return store


def test_client_clock_error_class_is_marked():
    assert ClientClockError("HTTP 400 code -1021: x").client_clock_error is True
    out = subprocess.run([sys.executable, "-c", "import sys, letrade_perf.calls.path, letrade_perf.calls.request; "
                          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("error_class", [ClientClockError, LocalClockError])
def test_clock_error_is_status_clock_left_out_of_api_success_and_up(error_class):
    clock = Clock(1_000.0)
    rec = MetricsRecorder(clock=clock, samples_dir="")
    name = "POST /api/v3/order"
    rec.on_request(request_type="POST", name=name, response_time=12.0,
                   exception=error_class("HTTP 400 code -1021: Timestamp for this request is outside of the recvWindow."))
    clock.t = 1_001.2
    rec.on_request(request_type="POST", name=name, response_time=30.0, exception=RuntimeError("HTTP 500"))
    clock.t = 1_002.5
    rec.on_request(request_type="POST", name=name, response_time=20.0)
    rec.on_request(request_type="POST", name=name, response_time=21.0,
                   exception=error_class("HTTP 400 code -1021: again"))
    store = _store(rec)

    by_status = {dict(t)["status"]: s.hist.count for t, s in store.select("request")}
    assert by_status == {"clock": 2, "fail": 1, "ok": 1}
    clock_tags = (("name", name), ("status", "clock"), ("type", "POST"))
    assert store.merged("request", clock_tags).hist.count == 2
    assert store.ok_fail("request") == (1, 1)                     # clock is neither
    assert store.ok_fail("request", (("status", "clock"),)) == (0, 0)
    # second 1000: only a clock error (the exchange answered) → up; 1001: a failure → down; 1002: up
    assert store.up_seconds == {1000: True, 1001: False, 1002: True}
    assert store.uptime() == (2, 3)
    # the criteria see the same
    (c,) = parse_criteria({"api_success": ["rate>40%"]}, "t.yaml")
    r = judge(c, store, 10)
    assert r.value == pytest.approx(0.5) and r.samples == 2
    (c,) = parse_criteria({"request": ["count>=4"]}, "t.yaml")
    assert judge(c, store, 10).value == 4                          # latency still counts every answer


def test_only_clock_errors_give_api_success_no_samples_but_full_uptime():
    clock = Clock(2_000.0)
    rec = MetricsRecorder(clock=clock, samples_dir="")
    rec.on_request(request_type="WSAPI", name="order.place", response_time=5.0, exception=LocalClockError("-1021"))
    store = _store(rec)
    assert store.ok_fail("request") == (0, 0)
    assert store.uptime() == (1, 1)
    (c,) = parse_criteria({"api_success": ["rate>99%"]}, "t.yaml")
    assert judge(c, store, 10).reason == "no samples"


def test_an_exception_without_the_marker_or_with_it_false_is_a_failure():
    class NotClock(Exception):
        client_clock_error = False

    clock = Clock(3_000.0)
    rec = MetricsRecorder(clock=clock, samples_dir="")
    rec.on_request(request_type="GET", name="GET /api/v3/time", response_time=1.0, exception=NotClock("x"))
    rec.on_request(request_type="GET", name="GET /api/v3/time", response_time=1.0, exception=ValueError("y"))
    store = _store(rec)
    assert {dict(t)["status"] for t, _ in store.select("request")} == {"fail"}
    assert store.ok_fail("request") == (0, 2) and store.uptime() == (0, 1)


# ---------------------------------------------------------------------------------------------
# 7. the CLI
# ---------------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "letrade_perf", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def test_version_prints_every_version():
    out = _cli("--version")
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line == (f"letrade-perf {version('letrade-perf')} (locust {version('locust')}, "
                    f"ccxt {version('ccxt')}, Python {platform.python_version()})")


@pytest.mark.parametrize("command", ["run", "check", "sim"])
def test_log_level_is_accepted_case_insensitively(command):
    parser = build_parser()
    for given_level in ("debug", "INFO", "Warning", "error"):
        args = parser.parse_args([command, "--log-level", given_level])
        assert args.log_level == given_level.upper() and args.log_level in LOG_LEVELS
    default = parser.parse_args([command]).log_level
    assert default == ("INFO" if command == "sim" else None)


@pytest.mark.parametrize("command", ["run", "check", "sim"])
def test_a_bad_log_level_is_rejected_naming_the_option(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([command, "--log-level", "LOUD"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --log-level" in err and "'LOUD'" in err and "DEBUG, INFO, WARNING, ERROR" in err


def test_paths_prints_existing_paths(capsys):
    assert main(["paths"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = dict(line.split(None, 1) for line in lines)
    assert set(table) == {"locustfile", "profiles", "dashboards", "grafana", "package"}
    assert all(os.path.exists(p) for p in table.values()), table
    assert os.path.isfile(table["locustfile"]) and os.path.isdir(table["profiles"])


def test_paths_locustfile_is_an_existing_file():
    script = Path(sys.executable).with_name("letrade-perf")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "letrade_perf"]
    out = subprocess.run([*cmd, "paths", "locustfile"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    path = out.stdout.strip()
    assert "\n" not in path and path.endswith(".py")
    assert os.path.isfile(path)
