"""The harness's users versus bare Locust users, side by side against the same simulator endpoint.

Each variant is one Locust process pinned to core 1; the simulator is pinned to core 0 with a
weight budget too large to refuse anything (the pacer still runs on every harness call).

| row | bare | harness |
|---|---|---|
| REST public | FastHttpUser `GET /api/v3/depth` | `RestMarketData` (pacing, validation, header feedback) |
| REST signed | FastHttpUser + inline HMAC `GET /api/v3/openOrders` | `MarketDataUser.call(...)` signed |
| ccxt | `User` + ccxt `fetch_order_book` | `CcxtTrader` (pacing, header capture) |
| guarded | `User` + plain ccxt binance `fetch_order_book` | the same loop on `guarded_ccxt(self)` |
| WS | websocket-client `recv_data` loop + json + lag | `WsStreams` (lag via clock offset, events) |

The guarded row measures the user-code call path (:mod:`letrade_perf.users.guarded`): your own
``User`` whose ccxt binance has every request paced, measured, safety-checked and ledger-tracked.
Both of its locustfiles are written into the run's temporary directory (:data:`GUARDED_LOCUSTFILE`);
both share markets once per process and fire one Locust request event per ``fetch_order_book``
(the bare loop its own, the guarded one the guard's ``ccxt`` / ``GET /api/v3/depth``).

Bare and harness runs alternate (ABAB…, ``--repeat`` pairs); the table (bench/_table.py) shows
every pair, the medians of both rates and the per-pair ratios harness/bare as min / median / max;
the WS lag row the harness-added p99 lag (harness − bare) per pair. The REST and ccxt rows each
have a second row from the same runs: the Locust process's CPU time (user + system) per request in
the steady state, measured inside the process by the meter (:data:`METER_LOCUSTFILE`, loaded
beside the measured locustfile in bare and harness runs alike) over a window that leaves out
start-up and ramp-up. A row that fails shows its error; the other rows are kept. ``--append``
appends the table to BENCHMARKS.md.

    .venv/bin/python bench/harness_users.py [--seconds 8] [--users 20] [--ws-users 5] [--append]
    .venv/bin/python bench/harness_users.py --quick                  # 2 pairs of 5 s runs per row
    .venv/bin/python bench/harness_users.py --only guarded --repeat 5
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from letrade_perf.sim.process import start_simulator  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _table  # noqa: E402

LOCUSTFILE = os.path.join(ROOT, "locustfiles", "binance.py")
BARE = os.path.join(ROOT, "bench", "locust_bare.py")
SIGNED = os.path.join(ROOT, "bench", "locust_harness_signed.py")
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ETHBTC"]
WS_STREAMS = [f"{s.lower()}@{k}" for s in SYMBOLS for k in ("trade", "aggTrade")]

#: the guarded row's locustfile: ``BENCH_USER=bare`` a plain ccxt binance (no plugin),
#: ``BENCH_USER=guarded`` the same loop on ``guarded_ccxt(self)`` with the plugin and a profile
GUARDED_LOCUSTFILE = '''\
import os
import time

from gevent.lock import Semaphore
from locust import User, constant, task

KIND = os.environ.get("BENCH_USER", "bare")
MARKET = "BTC/USDT"

if KIND == "guarded":
    from letrade_perf.locustfile import BinanceProfileShape  # noqa: F401 - the plugin; the stages
    from letrade_perf.users.guarded import guarded_ccxt

    class GuardedOrderBook(User):
        wait_time = constant(0)

        def on_start(self):
            self.ex = guarded_ccxt(self)    # markets once per process; every request guarded

        @task
        def order_book(self):
            try:
                self.ex.fetch_order_book(MARKET, 5)   # measured by the guard: ccxt GET /api/v3/depth
            except Exception:
                pass                                  # recorded as a failure by the guard
else:
    from letrade_perf.binance.ccxt_compat import ccxt_binance
    from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET

    _lock, _markets = Semaphore(), {}

    class BareOrderBook(User):
        wait_time = constant(0)

        def on_start(self):
            self.ex = ccxt_binance(self.host, DEMO_API_KEY, DEMO_SECRET,
                                   options={"adjustForTimeDifference": False})   # enableRateLimit False
            self.ex.timeout = 10_000
            with _lock:                       # markets once per process, as guarded_ccxt does
                if "m" not in _markets:
                    self.ex.load_markets()
                    _markets["m"] = (self.ex.markets, self.ex.currencies)
                else:
                    self.ex.set_markets(*_markets["m"])

        @task
        def order_book(self):
            t0 = time.perf_counter()
            exc = None
            try:
                self.ex.fetch_order_book(MARKET, 5)
            except Exception as e:  # reported as a failure, like any Locust user would
                exc = e
            self.environment.events.request.fire(request_type="ccxt", name="GET /api/v3/depth",
                                                 response_time=(time.perf_counter() - t0) * 1000,
                                                 response_length=0, exception=exc, context={})
'''


#: The meter: a listener-only locustfile loaded beside the measured one (``-f main.py,meter.py``),
#: the same in bare and harness runs. ``BENCH_METER_WINDOW`` = ``"warm,length"`` seconds after
#: ``test_start``: at both ends it notes the wall time, the process's CPU seconds (user + system,
#: ``os.times``) and Locust's request count, and writes them to ``BENCH_METER_OUT`` (JSON) — CPU
#: per request in the steady state, start-up (imports, the plugin's init) and ramp-up left out.
#: ``BENCH_METER_RT=1`` also keeps every response time of ``BENCH_METER_NAME`` inside the window
#: (bench/added_latency.py: Locust's CSV percentiles are rounded to whole milliseconds).
METER_LOCUSTFILE = '''\
import json
import os
import time

import gevent
from locust import events

OUT = os.environ.get("BENCH_METER_OUT", "")
WARM, LENGTH = (float(x) for x in os.environ.get("BENCH_METER_WINDOW", "2,4").split(","))
KEEP_RT = os.environ.get("BENCH_METER_RT") == "1"
NAME = os.environ.get("BENCH_METER_NAME", "GET /api/v3/depth")
_state = {"on": False, "rts": [], "fails": 0}


def _snap(environment):
    t = os.times()
    return {"t": time.time(), "cpu": t.user + t.system, "requests": environment.stats.total.num_requests,
            "failures": environment.stats.total.num_failures}


def _measure(environment):
    gevent.sleep(WARM)
    a = _snap(environment)
    _state["on"] = True
    gevent.sleep(LENGTH)
    _state["on"] = False
    b = _snap(environment)
    doc = {"start": a, "end": b, "rts": _state["rts"], "rt_failures": _state["fails"]}
    if OUT:
        with open(OUT, "w") as fh:
            json.dump(doc, fh)


@events.test_start.add_listener
def _start(environment, **_kw):
    if OUT:
        gevent.spawn(_measure, environment)


if KEEP_RT:
    rts = _state["rts"]

    @events.request.add_listener
    def _rt(name=None, response_time=None, exception=None, **_kw):
        if _state["on"] and name == NAME:
            if exception is None:
                rts.append(response_time)
            else:
                _state["fails"] += 1
'''


def locust(locustfile: str, host: str, workdir: str, tag: str, extra: list[str], env: dict | None = None,
           meter: dict | None = None) -> dict:
    """One headless Locust process (core 1); Locust's ``_stats.csv`` rows by (type, name). With
    ``meter`` (:func:`meter_env`) the meter locustfile runs beside ``locustfile`` and its JSON is
    the row ``("meter", "")``."""
    prefix = os.path.join(workdir, tag)
    files = locustfile
    e = dict(os.environ, PYTHONPATH=ROOT)
    e.update(env or {})
    if meter is not None:
        mpath = os.path.join(workdir, "bench_meter.py")
        if not os.path.exists(mpath):
            with open(mpath, "w") as fh:
                fh.write(METER_LOCUSTFILE)
        files = f"{locustfile},{mpath}"
        out = prefix + "_meter.json"
        if os.path.exists(out):
            os.unlink(out)
        e.update(meter, BENCH_METER_OUT=out)
    cmd = ["taskset", "-c", "1", sys.executable, "-m", "locust", "-f", files, "--headless", "--host", host,
           "--csv", prefix, "--only-summary", "--exit-code-on-error", "0", "--loglevel", "WARNING"] + extra
    p = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        verdict = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith(("verdict:", "FAIL "))]
        raise RuntimeError(f"{tag}: locust exited {p.returncode}" + (f" ({'; '.join(verdict)})" if verdict else "")
                           + f"\n{p.stderr[-2000:]}")
    with open(prefix + "_stats.csv", newline="") as fh:
        rows: dict = {(r["Type"], r["Name"]): r for r in csv.DictReader(fh)}
    if meter is not None:
        try:
            with open(prefix + "_meter.json") as fh:
                rows[("meter", "")] = json.load(fh)
        except FileNotFoundError:
            raise RuntimeError(f"{tag}: the meter wrote nothing (the run ended before its window did)") from None
    return rows


def meter_env(seconds: float, rt: bool = False, name: str = "GET /api/v3/depth") -> dict:
    """The meter's settings for a run of ``seconds``: the window leaves out the first ~30 % (at
    most 2 s: users starting, connections opening) and the last second (users stopping)."""
    warm = min(2.0, seconds * 0.3)
    return {"BENCH_METER_WINDOW": f"{warm:g},{max(0.5, seconds - warm - 1.0):g}",
            "BENCH_METER_RT": "1" if rt else "0", "BENCH_METER_NAME": name}


def cpu_us_per_request(rows: dict) -> float:
    """Process CPU µs (user + system) per request inside the meter's window."""
    m = rows[("meter", "")]
    n = m["end"]["requests"] - m["start"]["requests"]
    if n <= 0:
        raise RuntimeError("no request inside the meter's window")
    return (m["end"]["cpu"] - m["start"]["cpu"]) / n * 1e6


def profile(workdir: str, name: str, users: dict, seconds: int, n: int) -> str:
    """A bench profile. ``gate.defaults`` is off: the benchmark judges its own figures, and the test
    plan's defaults do not fit a deliberately saturated generator (the WS row runs near one core's
    limit, where ``ws_lag avg<50`` fails whenever the shared machine is busy: exit 99, no figures)."""
    path = os.path.join(workdir, f"{name}.yaml")
    doc = {"description": f"bench {name}", "env": "sim", "symbols": SYMBOLS,
           "stages": [{"duration": f"{seconds}s", "users": n, "spawn_rate": n}], "users": users,
           "pacing": {"weight_fraction": 1.0, "orders_fraction": 1.0}, "gate": {"defaults": False}}
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


def rps(rows: dict, key) -> float:
    return float(rows[key]["Requests/s"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--ws-users", type=int, default=5)
    ap.add_argument("--ws-rate", type=float, default=190.0, help="synthetic trades/s per symbol (~15k msg/s)")
    ap.add_argument("--tick-ms", type=int, default=10, help="the simulator's market tick (ms)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating bare/harness pairs per row")
    ap.add_argument("--quick", action="store_true", help="2 pairs of 5 s runs per row (about 3 minutes in all on a quiet machine)")
    ap.add_argument("--only", choices=("rest", "signed", "ccxt", "guarded", "ws"), action="append",
                    help="run only these rows (repeatable; default all)")
    _table.add_args(ap)
    args = ap.parse_args()
    if args.quick:
        args.repeat, args.seconds = 2, 5
    big = {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9, "orders_per_10s": 10**6,
           "orders_per_day": 10**9, "ws_connections_per_5m": 10**6}
    s, n = args.seconds, args.users
    report = _table.Report(
        "Harness users vs bare Locust users", base="bare", cand="harness",
        intro=f"{n} users ({args.ws_users} for WS, {args.ws_rate:g} synthetic trades/s per symbol, market tick "
              f"{args.tick_ms} ms), {s} s per run, {args.repeat} alternating bare/harness pairs per row; simulator "
              "on core 0, Locust on core 1. Ratios are harness ÷ bare per pair; the WS lag row is the harness-added "
              "p99 lag (harness − bare) per pair. CPU per request: the Locust process's user + system CPU "
              "seconds ÷ requests inside a steady-state window of each run (start-up and ramp-up left out).")
    # A 10 ms market tick: trades leave the simulator in small bursts, as a real feed's do (at the
    # default 100 ms tick a whole tick's events arrive together and queue in every client).
    sim = start_simulator({"limits": big, "market": {"trades_per_second": args.ws_rate, "tick_ms": args.tick_ms}},
                          cpu=0)
    work = tempfile.mkdtemp(prefix="letrade-bench-")
    host = sim.base_url
    bare_args = ["-u", str(n), "-r", str(n), "-t", f"{s}s"]
    only = set(args.only or ("rest", "signed", "ccxt", "guarded", "ws"))
    try:
        depth_only = {"depth": 1, "klines": 0, "trades": 0, "ticker": 0, "book_ticker": 0}
        rest_users = {"rest_market": {"weight": 1, "wait_min_s": 0, "wait_max_s": 0, "depth_limit": 5,
                                      "task_weights": depth_only}}
        mtr = meter_env(s)
        if "rest" in only:
            prof = profile(work, "rest", rest_users, s, n)
            rate_cpu_rows(report, "REST `GET /api/v3/depth`", "≥ 0.9×", "≤ 1.1×", args.repeat,
                          lambda: locust(BARE, host, work, "bare-rest", bare_args, {"BENCH_USER": "rest"}, mtr),
                          lambda: locust(LOCUSTFILE, host, work, "harness-rest", ["--profile", prof], meter=mtr),
                          ("GET", "GET /api/v3/depth"))
        if "signed" in only:
            prof = profile(work, "signed", rest_users, s, n)
            rate_cpu_rows(report, "REST signed `GET /api/v3/openOrders`", "≥ 0.9×", "", args.repeat,
                          lambda: locust(BARE, host, work, "bare-signed", bare_args, {"BENCH_USER": "signed"}, mtr),
                          lambda: locust(SIGNED, host, work, "harness-signed", ["--profile", prof], meter=mtr),
                          ("GET", "GET /api/v3/openOrders"))
        if "ccxt" in only:
            ob_only = {"order_book": 1, "ohlcv": 0, "trades": 0, "ticker": 0, "balance": 0, "order": 0}
            prof = profile(work, "ccxt", {"ccxt": {"weight": 1, "wait_min_s": 0, "wait_max_s": 0,
                                                   "task_weights": ob_only}}, s, n)
            rate_cpu_rows(report, "ccxt `fetch_order_book`", "≥ 0.95×", "", args.repeat,
                          lambda: locust(BARE, host, work, "bare-ccxt", bare_args, {"BENCH_USER": "ccxt"}, mtr),
                          lambda: locust(LOCUSTFILE, host, work, "harness-ccxt", ["--profile", prof], meter=mtr),
                          ("ccxt", "ccxt fetch_order_book"))
        if "guarded" in only:
            report.run_row("ccxt `fetch_order_book` via `guarded_ccxt(user)`",
                           lambda row: run_guarded(args, host, work, row), unit="req/s")
        if "ws" in only and args.ws_users:
            run_ws(args, host, work, report)
    finally:
        sim.stop()
    return report.finish(args)


def rate_cpu_rows(report: _table.Report, name: str, rate_target: str, cpu_target: str, repeat: int,
                  bare, harness, key: tuple[str, str]) -> None:
    """Two rows from the same alternating runs: requests/s (Locust's, the whole run) and process
    CPU µs per request (the meter's steady-state window). A failing pair ends both rows."""
    rate = report.row(name, unit="req/s", target=rate_target)
    cpu = report.row(f"{name}: CPU per request", unit="µs/req", target=cpu_target or "—", digits=1)
    with rate as rrow:
        try:
            for _ in range(repeat):
                b = bare()
                h = harness()
                rrow.pair(rps(b, key), rps(h, key))
                cpu.row.pair(cpu_us_per_request(b), cpu_us_per_request(h))
        except Exception as e:
            cpu.row.error = f"see the {name} row ({type(e).__name__})"
            raise


def run_guarded(args, host: str, work: str, row: _table.Row) -> None:
    """The user-code call path: the same ``fetch_order_book`` loop on a plain ccxt binance (bare,
    no plugin) and on ``guarded_ccxt(self)`` (plugin, profile; the harness's own user kinds are
    not in the locustfile, so only the guarded user runs)."""
    s, n = args.seconds, args.users
    path = os.path.join(work, "locust_guarded.py")
    with open(path, "w") as fh:
        fh.write(GUARDED_LOCUSTFILE)
    # the profile needs one user kind; its class is not in the locustfile, so none of it runs
    prof = profile(work, "guarded", {"rest_market": {"weight": 1, "fixed_count": 0}}, s, n)
    key = ("ccxt", "GET /api/v3/depth")

    def run(tag: str, extra: list[str], kind: str) -> tuple[float, str]:
        rows = locust(path, host, work, tag, extra, {"BENCH_USER": kind})
        fails = int(rows[key]["Failure Count"])
        return rps(rows, key), (f"{tag}: {fails} failed calls of {rows[key]['Request Count']}" if fails else "")

    for _ in range(args.repeat):
        b, nb = run("bare-guarded", ["-u", str(n), "-r", str(n), "-t", f"{s}s"], "bare")
        h, nh = run("guarded", ["--profile", prof], "guarded")
        row.pair(b, h, "; ".join(x for x in (nb, nh) if x))


def run_ws(args, host: str, work: str, report: _table.Report) -> None:
    """Two rows from the same alternating runs: messages/s (ratio) and p99 lag (harness − bare)."""
    s, w = args.seconds, args.ws_users
    msgs = report.row(f"WS messages ({len(WS_STREAMS)} streams × {w} users)", unit="msg/s", target="≥ 1.0×")
    lag = report.row("WS lag p99, harness-added", unit="ms", compare="diff", target="≤ +2 ms at 15k msg/s",
                     digits=1)
    templates = ["{symbol}@trade", "{symbol}@aggTrade"]
    prof = profile(work, "ws", {"ws_streams": {"weight": 1, "streams": templates}}, s, w)
    with msgs as mrow:
        try:
            for i in range(args.repeat):
                out = os.path.join(work, f"bare-ws-{i}.json")
                locust(BARE, host, work, "bare-ws", ["-u", str(w), "-r", str(w), "-t", f"{s}s"],
                       {"BENCH_USER": "ws", "BENCH_OUT": out, "BENCH_STREAMS": "/".join(WS_STREAMS)})
                with open(out) as fh:
                    bare_ws = json.load(fh)
                h = locust(LOCUSTFILE, host, work, "harness-ws", ["--profile", prof])
                ws_rows = [r for (t, _), r in h.items() if t == "WS"]
                if not ws_rows:
                    raise RuntimeError("harness-ws: no WS rows in Locust's statistics (no message received)")
                # rates over the time messages actually flowed: a saturated process drains a backlog
                # long after the nominal end (a 5 s run measured 17 s of messages), so ÷ s overstates
                # it. Locust's Requests/s is count ÷ (last request − start); the bare loop's the same.
                h_rate = sum(float(r["Requests/s"]) for r in ws_rows)
                h_p99 = max(float(r["99%"]) for r in ws_rows)
                lags = sorted(bare_ws["lags"])
                b_p99 = lags[int(len(lags) * 0.99)] if lags else float("nan")
                span = (bare_ws["last"] or 0) - (bare_ws["first"] or 0)
                if span <= 0:
                    raise RuntimeError(f"bare-ws: {bare_ws['messages']} messages, no time span to rate them over")
                mrow.pair(bare_ws["messages"] / span, h_rate)
                lag.row.pair(b_p99, h_p99)
        except Exception as e:
            lag.row.error = f"see the WS messages row ({type(e).__name__})"
            raise


if __name__ == "__main__":
    sys.exit(main())
