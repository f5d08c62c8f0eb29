"""Simulator memory under the soak profile's load: RSS growth per hour, this tree versus a baseline, side by side.

Starts two simulator processes at once — the working tree's ``letrade_perf`` and ``letrade_perf``
as of a git revision (``--baseline REV``, default HEAD, taken with ``git archive``; skipped with
``--no-baseline`` or outside a git checkout) —
both pinned to core 0 with ``taskset`` when available, and drives both with the same load from
this process (pinned to core 1):

* the request mix of ``letrade_perf/profiles/soak-24h.yaml``: 20 users = 4 ``ws_streams``
  (one combined connection each: ``@trade``, ``@aggTrade``, ``@depth@100ms``, ``@kline_1m``,
  ``@bookTicker`` of the profile's three symbols), 2 ``pipeline`` (a signed MARKET order every 30 s,
  then ``GET /api/v3/order`` and ``GET /api/v3/account``), and the other 14 split 6:2 between
  ``rest_market`` (depth / klines / trades / 24 h ticker / bookTicker, waits 1–3 s) and ``ccxt``
  (orderbook / ohlcv / trades / ticker / balance / a LIMIT order far from the market that is
  cancelled again, waits 2–5 s);
* compressed ``--speed`` times (default 10): every wait divided by it and the simulator's
  synthetic flow (``market.trades_per_second``) multiplied by it, so N wall minutes stand for
  N × speed soak minutes (printed as equivalent hours).

Every few seconds the simulators' ``VmRSS`` (``/proc/PID/status``) is sampled. After the warm-up
(default: half the run; the retention rings fill during it) it prints the RSS growth per hour —
least-squares slope of the post-warm-up samples — per wall hour and per equivalent soak hour
(wall ÷ speed), with min / median / max of the slopes of consecutive 60 s windows as spread.

    .venv/bin/python bench/sim_soak.py [--minutes 6] [--warmup-minutes 3] [--speed 10] [--baseline REV | --no-baseline]
    .venv/bin/python bench/sim_soak.py --quick            # 2 minutes, 1 of them warm-up
    .venv/bin/python bench/sim_soak.py --append           # the Markdown table appended to BENCHMARKS.md

The result is a Markdown table (bench/_table.py) under a heading with the UTC date, the machine
and the command line; ``--append`` adds it to BENCHMARKS.md, ``--note`` a sentence above it.

Loopback only; every loop is bounded by the run's deadline and a request cap.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import aiohttp
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from letrade_perf.binance.signing import encode_params, hmac_sha256  # noqa: E402
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _table  # noqa: E402

PROFILE = os.path.join(ROOT, "letrade_perf", "profiles", "soak-24h.yaml")
MAX_REQUESTS_PER_USER = 200_000
SAMPLE_EVERY_S = 3.0
WINDOW_S = 60.0


# -- simulator processes ------------------------------------------------------------------------
def taskset(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > core else []


def baseline_tree(tmp: str, rev: str) -> str | None:
    """``letrade_perf`` as of git revision ``rev`` (``git archive``); None outside a git checkout
    or for an unknown revision."""
    dst = os.path.join(tmp, "baseline")
    os.makedirs(dst)
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", rev, "letrade_perf"], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", dst], input=archive.stdout, check=True)
    return dst


class Sim:
    def __init__(self, label: str, pythonpath: str, config_path: str, tmp: str):
        self.label = label
        ready = os.path.join(tmp, f"ready-{label}")
        self.log = open(os.path.join(tmp, f"sim-{label}.log"), "wb")
        env = dict(os.environ, PYTHONPATH=pythonpath)
        self.proc = subprocess.Popen(
            taskset(0) + [sys.executable, "-m", "letrade_perf", "sim", "--port", "0", "--ready-file", ready,
                          "--config", config_path, "--log-level", "WARNING"],
            cwd=pythonpath, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"simulator {label} did not start (see {self.log.name})")
            time.sleep(0.1)
        with open(ready) as f:
            self.base = f.read().strip().rstrip("/")
        self.ws = self.base.replace("http://", "ws://", 1)
        self.samples: list[tuple[float, float]] = []     # (monotonic s, RSS MB)
        self.requests = 0
        self.errors = 0

    def rss_mb(self) -> float | None:
        return _table.rss_mb(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# -- load -----------------------------------------------------------------------------------------
class Driver:
    """The soak profile's users against one simulator, every wait divided by ``speed``."""

    def __init__(self, sim: Sim, session: aiohttp.ClientSession, symbols: list[str], speed: float,
                 deadline: float, rng: random.Random):
        self.sim, self.session, self.symbols, self.speed = sim, session, symbols, speed
        self.deadline, self.rng = deadline, rng

    def alive(self, n: int) -> bool:
        return time.monotonic() < self.deadline and n < MAX_REQUESTS_PER_USER

    async def wait(self, lo: float, hi: float) -> None:
        await asyncio.sleep(max(0.0, min(self.rng.uniform(lo, hi) / self.speed, self.deadline - time.monotonic())))

    async def call(self, method: str, path: str, params: dict | None = None, signed: bool = False):
        p = dict(params or {})
        headers = {}
        if signed:
            p["timestamp"] = int(time.time() * 1000)
            q = encode_params(p)
            q += "&signature=" + hmac_sha256(DEMO_SECRET, q)
            headers["X-MBX-APIKEY"] = DEMO_API_KEY
        else:
            q = encode_params(p)
        self.sim.requests += 1
        try:
            async with self.session.request(method, f"{self.sim.base}{path}?{q}", headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=10)) as r:
                body = await r.read()
                if r.status != 200:
                    self.sim.errors += 1
                    return None
                return json.loads(body)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.sim.errors += 1
            return None

    async def rest_market(self) -> None:
        sym = self.rng.choice(self.symbols)
        tasks = [("GET", "/api/v3/depth", {"symbol": sym, "limit": 100})] * 4 + \
                [("GET", "/api/v3/klines", {"symbol": sym, "interval": "1m", "limit": 500})] * 2 + \
                [("GET", "/api/v3/trades", {"symbol": sym, "limit": 500})] * 2 + \
                [("GET", "/api/v3/ticker/24hr", {"symbol": sym}), ("GET", "/api/v3/ticker/bookTicker", {"symbol": sym})]
        n = 0
        while self.alive(n):
            m, path, params = self.rng.choice(tasks)
            await self.call(m, path, params)
            n += 1
            await self.wait(1, 3)

    async def ccxt(self) -> None:
        n = 0
        while self.alive(n):
            sym = self.rng.choice(self.symbols)
            k = self.rng.randrange(6)
            if k == 0:
                await self.call("GET", "/api/v3/depth", {"symbol": sym, "limit": 100})
            elif k == 1:
                await self.call("GET", "/api/v3/klines", {"symbol": sym, "interval": "1m", "limit": 100,
                                                          "startTime": int(time.time() * 1000) - 3_600_000})
            elif k == 2:
                await self.call("GET", "/api/v3/trades", {"symbol": sym, "limit": 100})
            elif k == 3:
                await self.call("GET", "/api/v3/ticker/24hr", {"symbol": sym})
            elif k == 4:
                await self.call("GET", "/api/v3/account", {"omitZeroBalances": "true"}, signed=True)
            else:
                book = await self.call("GET", "/api/v3/ticker/bookTicker", {"symbol": sym})
                if book:
                    price = float(book["bidPrice"]) * 0.9
                    o = await self.call("POST", "/api/v3/order", {
                        "symbol": sym, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                        "quantity": "0.01" if sym != "BTCUSDT" else "0.001",
                        "price": f"{price:.2f}"}, signed=True)
                    if o:
                        await self.call("DELETE", "/api/v3/order", {"symbol": sym, "orderId": o["orderId"]},
                                        signed=True)
                n += 1
            n += 1
            await self.wait(2, 5)

    async def pipeline(self, idx: int) -> None:
        n = 0
        await self.wait(0, 30)
        while self.alive(n):
            sym = self.symbols[(n + idx) % len(self.symbols)]
            side = "BUY" if (n // len(self.symbols)) % 2 == 0 else "SELL"
            cid = f"soak{idx}x{n}x{self.rng.randrange(1 << 30)}"
            await self.call("GET", "/api/v3/klines", {"symbol": sym, "interval": "1m", "limit": 51})
            await self.call("POST", "/api/v3/order", {"symbol": sym, "side": side, "type": "MARKET",
                                                      "quoteOrderQty": "20", "newClientOrderId": cid}, signed=True)
            await self.call("GET", "/api/v3/order", {"symbol": sym, "origClientOrderId": cid}, signed=True)
            await self.call("GET", "/api/v3/account", {}, signed=True)
            if n % 10 == 0:
                await self.call("GET", "/api/v3/myTrades", {"symbol": sym, "limit": 50}, signed=True)
                await self.call("GET", "/api/v3/allOrders", {"symbol": sym, "limit": 50}, signed=True)
            n += 6
            await self.wait(30, 30)

    async def ws_streams(self) -> None:
        names = [f"{s.lower()}@{t}" for s in self.symbols
                 for t in ("trade", "aggTrade", "depth@100ms", "kline_1m", "bookTicker")]
        url = f"{self.sim.ws}/stream?streams={'/'.join(names)}"
        n = 0
        while self.alive(n):
            try:
                async with self.session.ws_connect(url, heartbeat=None) as ws:
                    while time.monotonic() < self.deadline:
                        try:
                            msg = await asyncio.wait_for(ws.receive(), timeout=max(0.1, self.deadline - time.monotonic()))
                        except asyncio.TimeoutError:
                            break
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        n += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                self.sim.errors += 1
            n += 1
            await self.wait(1, 1)

    def users(self, profile: dict) -> list:
        u = profile["users"]
        total = profile["stages"][-1]["users"]
        fixed = sum(v.get("fixed_count", 0) for v in u.values())
        rest_w, ccxt_w = u["rest_market"]["weight"], u["ccxt"]["weight"]
        free = total - fixed
        n_rest = round(free * rest_w / (rest_w + ccxt_w))
        coros = [self.rest_market() for _ in range(n_rest)]
        coros += [self.ccxt() for _ in range(free - n_rest)]
        coros += [self.ws_streams() for _ in range(u["ws_streams"]["fixed_count"])]
        coros += [self.pipeline(i) for i in range(u["pipeline"]["fixed_count"])]
        return coros


async def sampler(sims: list[Sim], deadline: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        for s in sims:
            r = s.rss_mb()
            if r is not None:
                s.samples.append((time.monotonic() - t0, r))
        await asyncio.sleep(SAMPLE_EVERY_S)


async def run_load(sims: list[Sim], profile: dict, speed: float, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        coros = [sampler(sims, deadline)]
        for i, s in enumerate(sims):
            d = Driver(s, session, profile["symbols"], speed, deadline, random.Random(1000 + i))
            coros += d.users(profile)
        await asyncio.gather(*coros)


# -- analysis ------------------------------------------------------------------------------------
def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope in MB per second."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0


def growth(samples: list[tuple[float, float]], warmup_s: float) -> dict:
    post = [p for p in samples if p[0] >= warmup_s]
    if len(post) < 3:
        return {}
    per_window = []
    t = post[0][0]
    while t + WINDOW_S <= post[-1][0] + 1e-9:
        w = [p for p in post if t <= p[0] <= t + WINDOW_S]
        if len(w) >= 3:
            per_window.append(slope(w) * 3600)
        t += WINDOW_S
    return {"fit": slope(post) * 3600, "windows": per_window, "start": post[0][1], "end": post[-1][1],
            "peak": max(p[1] for p in samples)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=6.0, help="run length in wall minutes (default 6)")
    ap.add_argument("--warmup-minutes", type=float, default=None, help="excluded from the fit (default: half)")
    ap.add_argument("--speed", type=float, default=10.0, help="compression factor of waits and market flow")
    ap.add_argument("--baseline", default="HEAD", metavar="REV",
                    help="git revision whose simulator runs beside this tree's (default HEAD)")
    ap.add_argument("--no-baseline", action="store_true", help="only the working tree's simulator")
    ap.add_argument("--quick", action="store_true", help="2 minutes, 1 of them warm-up (a smoke run, not a figure)")
    _table.add_args(ap)
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.warmup_minutes = 2.0, 1.0
    warmup = args.warmup_minutes if args.warmup_minutes is not None else args.minutes / 2
    with open(PROFILE) as f:
        profile = yaml.safe_load(f)
    os.sched_setaffinity(0, {1}) if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1 else None

    report = _table.Report("Simulator memory under the soak load")     # date and machine: at the start
    tmp = tempfile.mkdtemp(prefix="sim-soak-")
    sims: list[Sim] = []
    try:
        cfg = {"limits": {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9,
                          "orders_per_10s": 10**6, "orders_per_day": 10**9, "ws_connections_per_5m": 10**6},
               "market": {"trades_per_second": 5.0 * args.speed}}
        cfg_path = os.path.join(tmp, "sim.yaml")
        with open(cfg_path, "w") as f:
            yaml.safe_dump(cfg, f)
        sims.append(Sim("current", ROOT, cfg_path, tmp))
        if not args.no_baseline:
            base = baseline_tree(tmp, args.baseline)
            if base is None:
                print(f"no git revision {args.baseline!r} here: baseline skipped", file=sys.stderr)
            else:
                sims.append(Sim(args.baseline[:10], base, cfg_path, tmp))
        print(f"soak-24h mix at {args.speed:g}x for {args.minutes:g} min "
              f"(= {args.minutes * args.speed / 60:.2f} soak hours), warm-up {warmup:g} min, "
              f"sims pinned to core 0{'' if taskset(0) else ' (no taskset)'}", flush=True)
        asyncio.run(run_load(sims, profile, args.speed, args.minutes * 60))
        for s in sims:
            if s.proc.poll() is not None:
                print(f"simulator {s.label} exited with {s.proc.returncode} (see {s.log.name})", file=sys.stderr)
    finally:
        for s in sims:
            s.stop()

    report.intro = (
        f"The soak-24h mix at {args.speed:g}× for {args.minutes:g} wall minutes "
        f"(= {args.minutes * args.speed / 60:.2f} soak hours), warm-up {warmup:g} min left out of the fit; "
        f"simulators on core 0, the load on core 1; RSS sampled every {SAMPLE_EVERY_S:g} s. Growth = "
        f"least-squares slope after the warm-up; spread = slopes of consecutive {WINDOW_S:g} s windows.")
    table = []
    results = {}
    for s in sims:
        g = growth(s.samples, warmup * 60)
        results[s.label] = g
        if not g:
            table.append([s.label, str(s.requests), str(s.errors), "too few samples after the warm-up",
                          "—", "—", "—", "—"])
            continue
        w = g["windows"]
        table.append([s.label, f"{s.requests:,}", str(s.errors), f"{g['start']:.1f} → {g['end']:.1f} MB",
                      f"{g['peak']:.1f} MB", f"{g['fit']:.2f}", f"{g['fit'] / args.speed:.2f}",
                      _table.spread(w, digits=1) if w else "n/a"])
    report.text(_table.markdown_table(
        ["simulator", "requests", "errors", "RSS start → end", "peak", "MB per wall hour", "MB per soak hour",
         f"{WINDOW_S:g} s windows MB/h wall: min / median / max"], table))
    base_label = args.baseline[:10]
    if base_label in results and results[base_label] and results["current"]:
        report.text(f"RSS after {args.minutes:g} min: current {results['current']['end']:.1f} MB vs {base_label} "
                    f"{results[base_label]['end']:.1f} MB; growth after warm-up {results['current']['fit']:.2f} vs "
                    f"{results[base_label]['fit']:.2f} MB per wall hour.")
    rc = report.finish(args)
    shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
