"""Target URLs end to end: where a run's REST, stream and WebSocket-API traffic really goes.

* Offline (a network namespace with no network, tests/netns.py): the official targets (testnet,
  production) fail fast — exit 2 within seconds, naming the host, no traceback — from
  ``letrade-perf run``, ``letrade-perf check`` and plain ``locust -f`` with the plugin; a profile
  that signs requests without credentials stops before Locust starts.
* ``--host`` against an external simulator: REST, streams and WS API all reach *that* simulator
  (its ``/_sim/stats`` ground truth), no embedded simulator starts, reports record the derived URLs.
* ``--stream-url`` on its own: streams go to a second simulator, the rest stays on the first.
* ``-1021`` mid-run (``PUT /_sim/clock``): the harness re-syncs its clock at once, signed requests
  succeed again, and ``api_success`` leaves the -1021 answers out.

Every process is a real one, stopped by PID; everything runs on loopback or without network.
"""
from __future__ import annotations

import csv
import json
import os
import re
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from netns import ROOT, offline_env, run_bounded, run_offline  # noqa: E402
from test_run import profile_variant  # noqa: E402

SMOKE = os.path.join(ROOT, "letrade_perf", "profiles", "smoke.yaml")
LETRADE = [sys.executable, "-m", "letrade_perf"]
LOCUSTFILE = os.path.join(ROOT, "locustfiles", "binance.py")
#: a well-formed dummy API key (64 letters/digits) and secret: enough to pass the credential check
DUMMY_KEY = "DummyKey" + "0123456789" * 5 + "abcdef"
DUMMY_SECRET = "dummy-secret-not-used"
TESTNET_CREDS = {"BINANCE_TESTNET_API_KEY": DUMMY_KEY, "BINANCE_TESTNET_SECRET": DUMMY_SECRET}
PRODUCTION_CREDS = {"BINANCE_API_KEY": DUMMY_KEY, "BINANCE_API_SECRET": DUMMY_SECRET}
FAST_S = 15.0
API_TYPES = {"GET", "POST", "PUT", "DELETE", "ccxt", "WSAPI"}

assert len(DUMMY_KEY) == 64 and DUMMY_KEY.isalnum()


def _out(p) -> str:
    return f"exit {p.returncode} after {getattr(p, 'elapsed_s', 0):.1f}s\n--- stdout\n{p.stdout[-3000:]}\n" \
           f"--- stderr\n{p.stderr[-3000:]}"


def _no_locust_started(p, cwd) -> None:
    """Nothing after the pre-flight ran: no Locust banner, no run.json / Locust CSV / HTML report."""
    text = p.stdout + p.stderr
    assert "Starting Locust" not in text, _out(p)
    for base, _dirs, files in os.walk(os.path.join(str(cwd), "reports")):
        produced = set(files) & {"run.json", "locust_stats.csv", "report.html"}
        assert not produced, f"{base}: {produced}\n{_out(p)}"
        if "summary.json" in files:     # the reports say why: a configuration error, nothing judged
            with open(os.path.join(base, "summary.json"), encoding="utf-8") as fh:
                summary = json.load(fh)
            assert (summary["ending"], summary["run"]["exit_code"], summary["criteria"]) == ("config_error", 2, []), \
                summary["run"]


# ---------------------------------------------------------------------------------------------
# Offline: the official targets fail fast, naming the host
# ---------------------------------------------------------------------------------------------

OFFLINE_CASES = [
    # (id, argv, extra env, host that must be named)
    ("run-testnet-smoke-no-creds", ["run", "--env", "testnet", "--profile", "smoke"], {}, "testnet.binance.vision"),
    ("run-testnet-smoke-creds", ["run", "--env", "testnet", "--profile", "smoke"], TESTNET_CREDS,
     "testnet.binance.vision"),
    ("check-testnet", ["check", "--env", "testnet"], {}, "testnet.binance.vision"),
    ("check-testnet-creds", ["check", "--env", "testnet"], TESTNET_CREDS, "testnet.binance.vision"),
    ("run-production-canary", ["run", "--profile", "production-canary", "--allow-production-orders"],
     PRODUCTION_CREDS, "api.binance.com"),
    ("check-production", ["check", "--env", "production"], PRODUCTION_CREDS, "api.binance.com"),
]


@pytest.mark.parametrize("argv,env,host", [c[1:] for c in OFFLINE_CASES], ids=[c[0] for c in OFFLINE_CASES])
def test_official_target_offline_exits_2_fast_naming_the_host(tmp_path, argv, env, host):
    t0 = time.monotonic()
    p = run_offline(LETRADE + argv, env=env, cwd=str(tmp_path), timeout=60)
    elapsed = time.monotonic() - t0
    text = p.stdout + p.stderr
    assert p.returncode == 2, _out(p)
    assert elapsed <= FAST_S, f"took {elapsed:.1f}s\n{_out(p)}"
    assert host in text, _out(p)
    assert "Traceback" not in text, _out(p)
    assert "needs a host" not in text, _out(p)
    if argv[0] == "run":
        # named as the unreachable REST URL (not just the target log line), and Locust never started
        assert re.search(rf"cannot reach \w+ at https://{re.escape(host)}", p.stderr), _out(p)
        assert "not started" in p.stderr, _out(p)
        _no_locust_started(p, tmp_path)
    else:
        assert re.search(rf"connectivity\s+FAIL\s+https://{re.escape(host)}", p.stdout), _out(p)


def test_plain_locust_with_plugin_offline_exits_2_naming_the_host(tmp_path):
    """``locust -f locustfiles/binance.py`` (no letrade-perf run): the plugin's start-up checks.
    Credentials are given, so the check that fails is reachability (retried, then exit 2)."""
    t0 = time.monotonic()
    p = run_offline([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--profile", "smoke", "--headless",
                     "--letrade-env", "testnet"], env=TESTNET_CREDS, cwd=str(tmp_path), timeout=60)
    elapsed = time.monotonic() - t0
    text = p.stdout + p.stderr
    assert p.returncode == 2, _out(p)
    assert elapsed <= FAST_S, f"took {elapsed:.1f}s\n{_out(p)}"
    assert "cannot reach testnet at https://testnet.binance.vision" in text, _out(p)
    assert "Traceback" not in text and "needs a host" not in text, _out(p)


def test_plain_locust_without_credentials_names_the_host(tmp_path):
    """The command of the acceptance list as it stands: no credentials in the environment."""
    t0 = time.monotonic()
    p = run_offline([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--profile", "smoke", "--headless",
                     "--letrade-env", "testnet"], cwd=str(tmp_path), timeout=60)
    elapsed = time.monotonic() - t0
    text = p.stdout + p.stderr
    assert p.returncode == 2, _out(p)
    assert elapsed <= FAST_S, _out(p)
    assert "Traceback" not in text and "needs a host" not in text, _out(p)
    assert "BINANCE_TESTNET_API_KEY" in text and "testnet.binance.vision" in text, _out(p)


def test_signing_profile_without_credentials_stops_before_locust(tmp_path):
    """``trading`` places orders: on testnet without keys the run stops in seconds, naming the
    variables to set, before any Locust process exists."""
    t0 = time.monotonic()
    p = run_offline(LETRADE + ["run", "--env", "testnet", "--profile", "trading"], cwd=str(tmp_path), timeout=60)
    elapsed = time.monotonic() - t0
    assert "BINANCE_TESTNET_API_KEY" not in offline_env()   # the child really had no credentials
    assert p.returncode == 2, _out(p)
    assert elapsed < 5.0, f"took {elapsed:.1f}s\n{_out(p)}"
    assert "BINANCE_TESTNET_API_KEY" in p.stderr and "BINANCE_TESTNET_SECRET" in p.stderr, _out(p)
    assert "'trading'" in p.stderr and "Traceback" not in p.stdout + p.stderr, _out(p)
    _no_locust_started(p, tmp_path)


# ---------------------------------------------------------------------------------------------
# Against external simulators (loopback)
# ---------------------------------------------------------------------------------------------

def run_letrade(args: list[str], cwd, timeout: float = 150.0):
    """``letrade-perf <args>`` from ``cwd`` without any BINANCE_* variables (sim: demo key)."""
    return run_bounded(LETRADE + args, cwd=str(cwd), env=offline_env(), timeout=timeout)


def the_run_dir(reports: str) -> str:
    [d] = os.listdir(reports)
    return os.path.join(reports, d)


def load(run_dir: str, name: str) -> dict:
    with open(os.path.join(run_dir, name), encoding="utf-8") as fh:
        return json.load(fh)


def short_smoke(tmp_path, name: str, seconds: int, **pipeline) -> str:
    """The bundled smoke profile (REST market data, ccxt, WS streams, pipeline) for ``seconds``,
    the pipeline's orders over the WebSocket API."""
    import yaml

    with open(SMOKE, encoding="utf-8") as fh:
        users = yaml.safe_load(fh)["users"]
    users["pipeline"].update({"order_via": "ws_api", "strategy": {"force_every_s": "1s"}}, **pipeline)
    return profile_variant(SMOKE, tmp_path, name, users=users,
                           stages=[{"duration": f"{seconds}s", "users": 6, "spawn_rate": 6}])


def endpoint_rows(summary: dict) -> dict[tuple[str, str], dict]:
    return {(e["type"], e["name"]): e for e in summary["endpoints"]}


MARKET_STREAM = re.compile(r"^[a-z]+@")      # btcusdt@trade, ethusdt@depth@100ms (not userDataStream)


def test_host_sends_rest_streams_and_ws_api_to_that_simulator(tmp_path, sim_factory):
    sim = sim_factory()
    port = sim.base_url.rsplit(":", 1)[1]
    assert sim.control("POST", "stats/reset").status == 200
    reports = str(tmp_path / "reports")
    p = run_letrade(["run", "--profile", short_smoke(tmp_path, "host-smoke", 10), "--host", sim.base_url,
                     "--reports", reports], tmp_path)
    assert p.returncode == 0, _out(p)
    text = p.stdout + p.stderr
    assert "simulator started" not in text, "an embedded simulator was started\n" + _out(p)

    truth = sim.stats()
    by_ep = truth["requests"]["by_endpoint"]
    # REST: market data and signed calls reached this simulator
    for ep in ("GET /api/v3/exchangeInfo", "GET /api/v3/depth", "GET /api/v3/klines", "GET /api/v3/account"):
        assert by_ep.get(ep, {}).get("by_status", {}).get("200", 0) > 0, (ep, by_ep)
    # market streams: a connection and data messages of the profile's streams
    assert truth["ws"]["connections"].get("streams", 0) >= 1, truth["ws"]
    market = {s: n for s, n in truth["ws"]["messages_by_stream"].items() if MARKET_STREAM.match(s)}
    assert market.get("btcusdt@trade", 0) > 0 and market.get("ethusdt@depth@100ms", 0) > 0, truth["ws"]
    # WebSocket API: the pipeline's orders and its user-data subscription
    assert truth["ws"]["connections"].get("ws-api", 0) >= 1, truth["ws"]
    placed = truth["ws_api"].get("order.place", {})
    assert placed.get("by_status", {}).get("200", 0) > 0, truth["ws_api"]
    assert truth["ws_api"].get("userDataStream.subscribe.signature", {}).get("count", 0) >= 1, truth["ws_api"]
    assert sum(truth["orders"]["by_status"].values()) > 0

    d = the_run_dir(reports)
    expected = {"rest": sim.base_url, "streams": f"ws://127.0.0.1:{port}",
                "ws_api": f"ws://127.0.0.1:{port}/ws-api/v3"}
    run_json = load(d, "run.json")
    assert run_json["target"] == expected and run_json["host"] == sim.base_url, run_json
    summary = load(d, "summary.json")
    assert summary["run"]["target"] == expected, summary["run"]
    assert load(d, "orders.json")["target"] == expected
    # exactly what the harness reported is what this simulator answered
    rows = endpoint_rows(summary)
    assert rows[("WSAPI", "order.place")]["count"] == placed["count"], (rows.get(("WSAPI", "order.place")), placed)
    harness_depth = rows.get(("GET", "GET /api/v3/depth"), {}).get("count", 0) + \
        rows.get(("ccxt", "ccxt fetch_order_book"), {}).get("count", 0)
    assert harness_depth == by_ep["GET /api/v3/depth"]["count"], (harness_depth, by_ep["GET /api/v3/depth"])
    harness_stream_msgs = load(d, "orders.json")["ws"]["messages_by_stream"]
    for stream, n in harness_stream_msgs.items():
        assert 0 < n <= market.get(stream, 0), (stream, n, market)


def test_profile_target_block_points_plain_locust_at_a_simulator(tmp_path, sim_factory):
    """The plugin path with no --host: the profile's ``target: {host}`` is the base of all three
    URLs, and ``target.stream_url`` sends the streams elsewhere — no embedded simulator."""
    a, b = sim_factory(), sim_factory()
    for s in (a, b):
        assert s.control("POST", "stats/reset").status == 200
    path = profile_variant(short_smoke(tmp_path, "target-block", 8), tmp_path, "target-block",
                           target={"host": a.base_url, "stream_url": "ws" + b.base_url[4:]})
    reports = tmp_path / "reports"
    p = run_bounded([sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--profile", path, "--headless",
                     "--letrade-reports", str(reports), "--only-summary"], cwd=str(tmp_path), env=offline_env(),
                    timeout=120)
    assert p.returncode == 0, _out(p)
    assert "embedded simulator started" not in p.stdout + p.stderr, _out(p)
    ta, tb = a.stats(), b.stats()
    assert ta["requests"]["by_endpoint"].get("GET /api/v3/depth", {}).get("count", 0) > 0, ta["requests"]
    assert ta["ws"]["connections"].get("ws-api", 0) >= 1 and not ta["ws"]["connections"].get("streams"), ta["ws"]
    assert tb["ws"]["connections"].get("streams", 0) >= 1 and not tb["requests"]["by_endpoint"], (tb["ws"], tb["requests"])
    port_a = a.base_url.rsplit(":", 1)[1]
    assert load(str(reports), "summary.json")["run"]["target"] == {
        "rest": a.base_url, "streams": "ws" + b.base_url[4:], "ws_api": f"ws://127.0.0.1:{port_a}/ws-api/v3"}


@pytest.mark.slow     # the same target plumbing as test_host_sends_rest_streams_and_ws_api_to_that_simulator
def test_stream_url_sends_streams_to_another_simulator(tmp_path, sim_factory):
    a, b = sim_factory(), sim_factory()
    b_port = b.base_url.rsplit(":", 1)[1]
    for s in (a, b):
        assert s.control("POST", "stats/reset").status == 200
    reports = str(tmp_path / "reports")
    p = run_letrade(["run", "--profile", short_smoke(tmp_path, "split-smoke", 8), "--host", a.base_url,
                     "--stream-url", f"ws://127.0.0.1:{b_port}", "--reports", reports], tmp_path)
    assert p.returncode == 0, _out(p)
    ta, tb = a.stats(), b.stats()
    # A: all REST and the WebSocket API, no market stream
    assert ta["requests"]["total"] > 0
    assert ta["ws"]["connections"].get("ws-api", 0) >= 1 and ta["ws_api"].get("order.place", {}).get("count", 0) > 0
    assert ta["ws"]["connections"].get("streams", 0) == 0, ta["ws"]
    assert not [s for s in ta["ws"]["messages_by_stream"] if MARKET_STREAM.match(s)], ta["ws"]
    # B: the market streams only
    assert tb["ws"]["connections"].get("streams", 0) >= 1, tb["ws"]
    assert tb["ws"]["messages_by_stream"].get("btcusdt@trade", 0) > 0, tb["ws"]
    assert tb["requests"]["total"] == 0, tb["requests"]
    assert tb["ws_api"] == {} and tb["ws"]["connections"].get("ws-api", 0) == 0, (tb["ws_api"], tb["ws"])
    target = load(the_run_dir(reports), "run.json")["target"]
    assert target == {"rest": a.base_url, "streams": f"ws://127.0.0.1:{b_port}",
                      "ws_api": a.base_url.replace("http://", "ws://") + "/ws-api/v3"}, target


# ---------------------------------------------------------------------------------------------
# -1021 mid-run: immediate clock re-sync
# ---------------------------------------------------------------------------------------------

SKEW_MS = 20_000
SIGNED_REST = ("GET /api/v3/account", "POST /api/v3/order", "GET /api/v3/order")


class ClockSkewer(threading.Thread):
    """Waits until the run has placed ``after_orders`` orders (simulator ground truth), then
    ``settle_s`` more, snapshots ``/_sim/stats`` and moves the simulator's clock ``SKEW_MS`` ahead."""

    def __init__(self, sim, after_orders: int = 2, settle_s: float = 2.0, limit_s: float = 60.0):
        super().__init__(daemon=True)
        self.sim, self.after_orders, self.settle_s, self.limit_s = sim, after_orders, settle_s, limit_s
        self.stop = threading.Event()
        self.before: dict | None = None
        self.skewed_at: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + self.limit_s
            while not self.stop.is_set() and time.monotonic() < deadline:
                eps = self.sim.stats()["requests"]["by_endpoint"]
                placed = eps.get("POST /api/v3/order", {}).get("by_status", {}).get("200", 0)
                if placed >= self.after_orders:
                    break
                self.stop.wait(0.2)
            else:
                return
            if self.stop.wait(self.settle_s):
                return
            self.before = self.sim.stats()
            r = self.sim.control("PUT", "clock", {"skew_ms": SKEW_MS})
            assert r.status == 200 and r.json()["skew_ms"] == SKEW_MS, r.body
            self.skewed_at = time.monotonic()
        except Exception as e:  # noqa: BLE001 - re-raised by the test thread
            self.error = e


def signed_delta(before: dict, after: dict, endpoints=SIGNED_REST) -> tuple[int, int]:
    """``(ok, rejected)``: HTTP 200 and 400 answers to signed REST calls between two snapshots."""
    ok = bad = 0
    for ep in endpoints:
        b = before["requests"]["by_endpoint"].get(ep, {}).get("by_status", {})
        a = after["requests"]["by_endpoint"].get(ep, {}).get("by_status", {})
        ok += a.get("200", 0) - b.get("200", 0)
        bad += a.get("400", 0) - b.get("400", 0)
    return ok, bad


def clock_error_occurrences(run_dir: str) -> dict[str, int]:
    """``name → occurrences`` of ClientClockError rows of Locust's failures CSV."""
    out: dict[str, int] = {}
    with open(os.path.join(run_dir, "locust_failures.csv"), newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if "ClientClockError" in row["Error"]:
                out[row["Name"]] = out.get(row["Name"], 0) + int(row["Occurrences"])
    return out


def skewed_run(tmp_path, sim, users: dict, name: str, seconds: int = 15):
    """A ``seconds`` run of ``users`` against ``sim`` whose clock jumps ``SKEW_MS`` ahead mid-run.
    Returns ``(process, run dir, stats before the skew, stats after the run, seconds the run went
    on after the skew)``."""
    path = profile_variant(SMOKE, tmp_path, name, description="-1021 re-sync (test profile)", symbols=["BTCUSDT"],
                           stages=[{"duration": f"{seconds}s", "users": sum(u.get("fixed_count", 1)
                                                                               for u in users.values()),
                                    "spawn_rate": 10}],
                           users=users, safety={"max_order_notional": 20, "max_run_notional": 100000},
                           criteria={"api_success": ["rate>99%"]})
    reports = str(tmp_path / "reports")
    skewer = ClockSkewer(sim)
    skewer.start()
    try:
        p = run_letrade(["run", "--profile", path, "--host", sim.base_url, "--reports", reports], tmp_path)
        ended = time.monotonic()
    finally:
        skewer.stop.set()
        skewer.join(30)
    assert not skewer.is_alive()
    if skewer.error is not None:
        raise skewer.error
    assert skewer.before is not None, "the run placed no orders: the clock was never skewed\n" + _out(p)
    return p, the_run_dir(reports), skewer.before, sim.stats(), ended - skewer.skewed_at


PIPELINE_REST = {"fixed_count": 2, "wait_min_s": 0.1, "wait_max_s": 0.2, "order_via": "rest",
                 "strategy": {"force_every_s": "0.5s"}, "notional": 12}


def test_minus_1021_resyncs_the_clock_and_signed_requests_recover(tmp_path, sim_factory):
    """The harness's own signed path (the pipeline's REST orders and account reads): after the
    simulator's clock jumps 20 s ahead the next signed call gets -1021, the clock re-syncs at
    once, and the signed calls after it succeed. Without a re-sync every signed call after the
    skew would be rejected (recvWindow is 10 s; the periodic refresh is 30 s away)."""
    sim = sim_factory()
    users = {"rest_market": {"fixed_count": 1, "wait_min_s": 0.2, "wait_max_s": 0.4}, "pipeline": PIPELINE_REST}
    p, d, before, after, tail_s = skewed_run(tmp_path, sim, users, "clock-pipeline")
    text = p.stdout + p.stderr
    assert p.returncode == 0, _out(p)
    assert tail_s >= 6.0, f"the run went on only {tail_s:.1f}s after the skew"

    # the re-sync happened, and adopted the simulator's new clock
    m = re.search(r"-1021 \(timestamp outside recvWindow\): clock re-synced, server - local = ([+-][\d.]+) ms", text)
    assert m, _out(p)
    assert abs(float(m.group(1)) - SKEW_MS) < 1000, m.group(0)
    clock = load(d, "orders.json")["clock"]
    assert clock["errors_1021"] >= 1, clock
    assert abs(clock["offset_ms"] - SKEW_MS) < 1000, clock

    # ground truth: the skew bit (signed calls were rejected) and then most signed calls succeeded
    ok, rejected = signed_delta(before, after)
    assert rejected >= 1, (ok, rejected)
    assert ok >= 30 and rejected * 10 <= ok, f"signed calls after the skew: {ok} ok, {rejected} rejected"
    orders_after = after["orders"]["events"].get("NEW", 0) - before["orders"]["events"].get("NEW", 0)
    assert orders_after >= 10, (before["orders"], after["orders"])

    # every -1021 the simulator sent was seen and counted once by the harness
    occurrences = clock_error_occurrences(d)
    assert sum(occurrences.values()) == clock["errors_1021"], (occurrences, clock)
    assert clock["errors_1021"] <= rejected, (clock, rejected)

    # api_success leaves the -1021 answers out (neither success nor failure)
    summary = load(d, "summary.json")
    [api] = [c for c in summary["criteria"] if c["metric"] == "api_success" and c["source"] == "profile"]
    api_calls = sum(e["count"] for e in summary["endpoints"] if e["type"] in API_TYPES)
    assert api["verdict"] == "pass" and api["value"] == 1.0, api
    assert api["samples"] == api_calls - clock["errors_1021"], (api, api_calls, clock)
    assert summary["verdict"] == "pass"


def test_minus_1021_resync_reaches_ccxt_users(tmp_path, sim_factory):
    """The same with ccxt's signed balance calls (ccxt signs with its own clock + timeDifference)."""
    sim = sim_factory()
    users = {"ccxt": {"fixed_count": 1, "wait_min_s": 0.1, "wait_max_s": 0.2,
                      "task_weights": {"order_book": 0, "ohlcv": 0, "trades": 0, "ticker": 1, "balance": 4}},
             "pipeline": dict(PIPELINE_REST, fixed_count=1, wait_min_s=0.5, wait_max_s=1.0)}
    p, d, before, after, tail_s = skewed_run(tmp_path, sim, users, "clock-ccxt")
    assert p.returncode == 0, _out(p)
    assert tail_s >= 6.0, f"the run went on only {tail_s:.1f}s after the skew"
    assert "clock re-synced" in p.stdout + p.stderr, _out(p)
    ok, rejected = signed_delta(before, after, ("GET /api/v3/account",))
    assert rejected >= 1, (ok, rejected)
    clock_errors = clock_error_occurrences(d).get("ccxt fetch_balance", 0)
    ccxt_calls = endpoint_rows(load(d, "summary.json"))[("ccxt", "ccxt fetch_balance")]["count"]
    assert ccxt_calls >= 20, ccxt_calls
    # each ccxt call signs with the current offset: the re-sync reaches the ccxt instances too
    assert clock_errors * 5 <= ccxt_calls and rejected * 5 <= ok, (clock_errors, ccxt_calls, ok, rejected)
