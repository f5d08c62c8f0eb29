"""The harness's users versus bare Locust users, side by side against the same simulator endpoint.

Each variant is one Locust process pinned to core 1; the simulator is pinned to core 0 with a
weight budget too large to refuse anything (the pacer still runs on every harness call).

| row | bare | harness |
|---|---|---|
| REST public | FastHttpUser `GET /api/v3/depth` | `RestMarketData` (pacing, validation, header feedback) |
| REST signed | FastHttpUser + inline HMAC `GET /api/v3/openOrders` | `MarketDataUser.call(...)` signed |
| ccxt | `User` + ccxt `fetch_order_book` | `CcxtTrader` (pacing, header capture) |
| WS | websocket-client `recv_data` loop + json + lag | `WsStreams` (lag via clock offset, events) |

    .venv/bin/python bench/harness_users.py [--seconds 12] [--users 20] [--ws-users 5]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from letrade_perf.sim.process import start_simulator  # noqa: E402

LOCUSTFILE = os.path.join(ROOT, "locustfiles", "binance.py")
BARE = os.path.join(ROOT, "bench", "locust_bare.py")
SIGNED = os.path.join(ROOT, "bench", "locust_harness_signed.py")
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ETHBTC"]
WS_STREAMS = [f"{s.lower()}@{k}" for s in SYMBOLS for k in ("trade", "aggTrade")]


def locust(locustfile: str, host: str, workdir: str, tag: str, extra: list[str], env: dict | None = None) -> dict:
    prefix = os.path.join(workdir, tag)
    cmd = ["taskset", "-c", "1", sys.executable, "-m", "locust", "-f", locustfile, "--headless", "--host", host,
           "--csv", prefix, "--only-summary", "--exit-code-on-error", "0", "--loglevel", "WARNING"] + extra
    e = dict(os.environ, PYTHONPATH=ROOT)
    e.update(env or {})
    p = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"{tag}: locust exited {p.returncode}\n{p.stderr[-2000:]}")
    with open(prefix + "_stats.csv", newline="") as fh:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(fh)}
    return rows


def profile(workdir: str, name: str, users: dict, seconds: int, n: int) -> str:
    path = os.path.join(workdir, f"{name}.yaml")
    doc = {"description": f"bench {name}", "env": "sim", "symbols": SYMBOLS,
           "stages": [{"duration": f"{seconds}s", "users": n, "spawn_rate": n}], "users": users,
           "pacing": {"weight_fraction": 1.0, "orders_fraction": 1.0}}
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


def rps(rows: dict, key) -> float:
    return float(rows[key]["Requests/s"])


def pairs(repeat: int, bare, harness) -> tuple[float, float]:
    """Run bare and harness alternately ``repeat`` times (ABAB…: a noisy machine hits both alike)
    and return the medians of their rates."""
    b, h = [], []
    for _ in range(repeat):
        b.append(bare())
        h.append(harness())
    return statistics.median(b), statistics.median(h)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--ws-users", type=int, default=5)
    ap.add_argument("--ws-rate", type=float, default=190.0, help="synthetic trades/s per symbol (~15k msg/s)")
    ap.add_argument("--tick-ms", type=int, default=10, help="the simulator's market tick (ms)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating bare/harness pairs per row (medians)")
    ap.add_argument("--only", choices=("rest", "signed", "ccxt", "ws"), action="append",
                    help="run only these rows (repeatable; default all)")
    args = ap.parse_args()
    big = {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9, "orders_per_10s": 10**6,
           "orders_per_day": 10**9, "ws_connections_per_5m": 10**6}
    # A 10 ms market tick: trades leave the simulator in small bursts, as a real feed's do (at the
    # default 100 ms tick a whole tick's events arrive together and queue in every client).
    sim = start_simulator({"limits": big, "market": {"trades_per_second": args.ws_rate, "tick_ms": args.tick_ms}},
                          cpu=0)
    work = tempfile.mkdtemp(prefix="letrade-bench-")
    s, n, host = args.seconds, args.users, sim.base_url
    bare_args = ["-u", str(n), "-r", str(n), "-t", f"{s}s"]
    results = []
    ws_lag = None
    only = set(args.only or ("rest", "signed", "ccxt", "ws"))
    try:
        depth_only = {"depth": 1, "klines": 0, "trades": 0, "ticker": 0, "book_ticker": 0}
        rest_users = {"rest_market": {"weight": 1, "wait_min_s": 0, "wait_max_s": 0, "depth_limit": 5,
                                      "task_weights": depth_only}}
        if "rest" in only:
            key = ("GET", "GET /api/v3/depth")
            prof = profile(work, "rest", rest_users, s, n)
            b, h = pairs(args.repeat,
                         lambda: rps(locust(BARE, host, work, "bare-rest", bare_args, {"BENCH_USER": "rest"}), key),
                         lambda: rps(locust(LOCUSTFILE, host, work, "harness-rest", ["--profile", prof]), key))
            results.append(("REST `GET /api/v3/depth`", "req/s", b, h, 0.8))
        if "signed" in only:
            key = ("GET", "GET /api/v3/openOrders")
            prof = profile(work, "signed", rest_users, s, n)
            b, h = pairs(args.repeat,
                         lambda: rps(locust(BARE, host, work, "bare-signed", bare_args, {"BENCH_USER": "signed"}), key),
                         lambda: rps(locust(SIGNED, host, work, "harness-signed", ["--profile", prof]), key))
            results.append(("REST signed `GET /api/v3/openOrders`", "req/s", b, h, 0.8))
        if "ccxt" in only:
            ob_only = {"order_book": 1, "ohlcv": 0, "trades": 0, "ticker": 0, "balance": 0, "order": 0}
            key = ("ccxt", "ccxt fetch_order_book")
            prof = profile(work, "ccxt", {"ccxt": {"weight": 1, "wait_min_s": 0, "wait_max_s": 0,
                                                   "task_weights": ob_only}}, s, n)
            b, h = pairs(args.repeat,
                         lambda: rps(locust(BARE, host, work, "bare-ccxt", bare_args, {"BENCH_USER": "ccxt"}), key),
                         lambda: rps(locust(LOCUSTFILE, host, work, "harness-ccxt", ["--profile", prof]), key))
            results.append(("ccxt `fetch_order_book`", "req/s", b, h, 0.9))
        if "ws" in only:
            ws_lag = run_ws(args, host, work, results)
    finally:
        sim.stop()
    print(f"\nHarness users vs bare Locust users, {n} users ({args.ws_users} for WS), {s}s each, "
          f"medians of {args.repeat} alternating runs, simulator on core 0, Locust on core 1\n")
    print("| workload | unit | bare | harness | ratio | target |")
    print("|---|---|---:|---:|---:|---:|")
    for name, unit, bare, harness, target in results:
        print(f"| {name} | {unit} | {bare:,.0f} | {harness:,.0f} | {harness / bare:.2f}× | ≥ {target}× |")
    if ws_lag is not None:
        print(f"\nWS lag p99: bare loop {ws_lag[0]:.1f} ms, harness {ws_lag[1]:.1f} ms "
              f"(harness-added {ws_lag[1] - ws_lag[0]:+.1f} ms; target < 5 ms)")
    return 0


def run_ws(args, host: str, work: str, results: list) -> tuple[float, float]:
    s = args.seconds
    w = args.ws_users
    if w:
        out = os.path.join(work, "bare-ws.json")
        locust(BARE, host, work, "bare-ws", ["-u", str(w), "-r", str(w), "-t", f"{s}s"],
               {"BENCH_USER": "ws", "BENCH_OUT": out, "BENCH_STREAMS": "/".join(WS_STREAMS)})
        with open(out) as fh:
            bare_ws = json.load(fh)
        templates = ["{symbol}@trade", "{symbol}@aggTrade"]
        h = locust(LOCUSTFILE, host, work, "harness-ws", ["--profile", profile(
            work, "ws", {"ws_streams": {"weight": 1, "streams": templates}}, s, w)])
        ws_rows = [r for (t, _), r in h.items() if t == "WS"]
        h_msgs = sum(int(r["Request Count"]) for r in ws_rows)
        h_p99 = max(float(r["99%"]) for r in ws_rows)
        lags = sorted(bare_ws["lags"])
        b_p99 = lags[int(len(lags) * 0.99)] if lags else float("nan")
        results.append(("WS messages (10 streams × users)", "msg/s", bare_ws["messages"] / s, h_msgs / s, 0.75))
        return b_p99, h_p99


if __name__ == "__main__":
    sys.exit(main())
