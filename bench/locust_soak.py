"""Locust process memory under the soak profile's load: RSS growth per hour, the harness versus bare Locust.

One simulator (pinned to core 0) and, at the same time, two or more Locust processes against it
(all pinned to core 1 with ``taskset`` when available):

* **harness** — ``locust -f locustfiles/binance.py --headless --profile <derived> -t <run>``: the
  real harness (plugin, pacer, ledger, gate, recorder, audit trail, funds) running a profile
  derived from ``letrade_perf/profiles/soak-24h.yaml``: its symbols, users, criteria, user kinds
  and stages (the 24 h plan: what the harness sizes by the planned duration — the per-interval
  table's 12 min width, the timelines — is as in the soak), every wait (and the pipeline's
  ``force_every_s``) divided by ``--speed``, ended by ``-t`` (the run time); the InfluxDB sink
  is left out (no server);
* **bare** — a plain Locust process with a similar request mix (written into the run's temporary
  directory, :data:`BARE_LOCUSTFILE`): FastHttpUser market data with the same task weights and
  waits, ccxt users with the same tasks, the same WebSocket streams (websocket-client receive loop,
  JSON decoded), and signed MARKET orders every ``force_every_s`` with their query and balance —
  nothing of letrade-perf on the way.

``--baseline REV`` adds the harness as of a git revision, ``--extra-tree LABEL=DIR`` the harness
from another directory (a patched copy), each a process of its own in the same run.

The simulator's synthetic flow (``market.trades_per_second``) is multiplied by ``--speed`` as well,
so N wall minutes stand for N × speed soak minutes (printed as equivalent hours).

Every few seconds both processes' ``VmRSS`` (``/proc/PID/status``) is sampled. After the warm-up
(default 40 % of the run) the RSS growth is the least-squares slope of the samples, per wall hour
and per equivalent soak hour, with min / median / max of the slopes of consecutive windows as
spread. Growth driven by requests scales with the speed and growth driven by time does not, so the
true growth per soak hour lies between the two figures: MB per wall hour is its upper bound (every
byte time-driven), MB per wall hour ÷ speed its lower bound (every byte request-driven). The
target (< 5 MB per soak hour, issue 15) is judged on the upper bound.

    .venv/bin/python bench/locust_soak.py [--minutes 10] [--warmup-minutes 4] [--speed 10]
    .venv/bin/python bench/locust_soak.py --quick            # 3 minutes, 1.5 of them warm-up
    .venv/bin/python bench/locust_soak.py --diagnose         # + tracemalloc / gc diff of the harness process
    .venv/bin/python bench/locust_soak.py --append           # the Markdown table appended to BENCHMARKS.md

``--diagnose`` runs the harness process under :mod:`tracemalloc` (which slows it and adds to its
RSS: not a figure run) and prints what grew between the end of the warm-up and the end of the run:
the top allocation sites (``lineno``) and the object counts by type (``gc``).

Loopback only; both Locust runs are bounded in time (``-t`` / the profile's stage, and a hard
kill at the deadline plus a grace period); their request counts are bounded by the compressed
waits (every kind waits at least its minimum × 1/speed between tasks).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from letrade_perf.sim.process import start_simulator  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _table  # noqa: E402

PROFILE = os.path.join(ROOT, "letrade_perf", "profiles", "soak-24h.yaml")
LOCUSTFILE = os.path.join(ROOT, "locustfiles", "binance.py")
SAMPLE_EVERY_S = 3.0
GRACE_S = 90.0
TARGET_MB_PER_H = 5.0

#: the bare process: the soak mix without letrade-perf (``BENCH_SPEED``, ``BENCH_SYMBOLS``, ``BENCH_STREAMS``)
BARE_LOCUSTFILE = '''\
import hashlib
import hmac
import itertools
import json
import os
import random
import time

import gevent
from locust import FastHttpUser, User, between, constant, task

from letrade_perf.binance.ccxt_compat import ccxt_binance
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET

SPEED = float(os.environ["BENCH_SPEED"])
SYMBOLS = os.environ["BENCH_SYMBOLS"].split(",")
STREAMS = os.environ["BENCH_STREAMS"]
FORCE_EVERY_S = float(os.environ["BENCH_FORCE_EVERY_S"])
_ids = itertools.count()


def signed(params):
    q = "&".join(f"{k}={v}" for k, v in params.items()) + f"&timestamp={int(time.time() * 1000)}"
    return q + "&signature=" + hmac.new(DEMO_SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()


KEY = {"X-MBX-APIKEY": DEMO_API_KEY}


class BareRestMarket(FastHttpUser):
    weight = 6
    wait_time = between(1 / SPEED, 3 / SPEED)

    def sym(self):
        return random.choice(SYMBOLS)

    @task(4)
    def depth(self):
        self.client.get(f"/api/v3/depth?symbol={self.sym()}&limit=5", name="GET /api/v3/depth")

    @task(1)
    def klines(self):
        s, iv = self.sym(), random.choice(("1m", "5m", "1h"))
        r = self.client.get(f"/api/v3/klines?symbol={s}&interval={iv}&limit=1000", name="GET /api/v3/klines")
        try:
            first = json.loads(r.content)[0][0]
            self.client.get(f"/api/v3/klines?symbol={s}&interval={iv}&limit=1000&endTime={first - 1}",
                            name="GET /api/v3/klines")
        except Exception:
            pass

    @task(2)
    def trades(self):
        self.client.get(f"/api/v3/trades?symbol={self.sym()}&limit=100", name="GET /api/v3/trades")

    @task(3)
    def ticker(self):
        self.client.get(f"/api/v3/ticker/24hr?symbol={self.sym()}", name="GET /api/v3/ticker/24hr")

    @task(3)
    def book_ticker(self):
        self.client.get(f"/api/v3/ticker/bookTicker?symbol={self.sym()}", name="GET /api/v3/ticker/bookTicker")


class BareCcxt(User):
    weight = 2
    wait_time = between(2 / SPEED, 5 / SPEED)

    def on_start(self):
        self.ex = ccxt_binance(self.host, DEMO_API_KEY, DEMO_SECRET, options={"adjustForTimeDifference": False})
        self.ex.timeout = 10_000
        self.ex.load_markets()

    def timed(self, name, fn):
        t0 = time.perf_counter()
        exc = None
        try:
            fn()
        except Exception as e:
            exc = e
        self.environment.events.request.fire(request_type="ccxt", name=name,
                                             response_time=(time.perf_counter() - t0) * 1000,
                                             response_length=0, exception=exc, context={})

    def market(self):
        return random.choice(SYMBOLS).replace("USDT", "/USDT")

    @task(4)
    def order_book(self):
        self.timed("ccxt fetch_order_book", lambda: self.ex.fetch_order_book(self.market(), 5))

    @task(1)
    def ohlcv(self):
        self.timed("ccxt fetch_ohlcv", lambda: self.ex.fetch_ohlcv(self.market(), "1m", limit=100))

    @task(2)
    def trades(self):
        self.timed("ccxt fetch_trades", lambda: self.ex.fetch_trades(self.market(), limit=100))

    @task(3)
    def ticker(self):
        self.timed("ccxt fetch_ticker", lambda: self.ex.fetch_ticker(self.market()))

    @task(1)
    def balance(self):
        self.timed("ccxt fetch_balance", lambda: self.ex.fetch_balance())


class BareWsStreams(User):
    fixed_count = 4
    wait_time = constant(1)

    def on_start(self):
        import websocket

        url = self.host.replace("http", "ws", 1) + "/stream?streams=" + STREAMS
        self.conn = websocket.create_connection(url, skip_utf8_validation=True, timeout=10)
        self.loop = gevent.spawn(self._recv)

    def _recv(self):
        conn, fire = self.conn, self.environment.events.request.fire
        while True:
            try:
                _, data = conn.recv_data()
            except Exception:
                return
            msg = json.loads(data)
            e = msg.get("data", {}).get("E")
            if e is not None:
                fire(request_type="WS", name=msg.get("stream", "?").split("@", 1)[-1],
                     response_time=time.time() * 1000 - e, response_length=len(data), exception=None, context={})

    def on_stop(self):
        self.loop.kill()
        self.conn.close()

    @task
    def idle(self):
        pass


class BarePipeline(FastHttpUser):
    fixed_count = 2
    wait_time = between(0.5 / SPEED, 1.5 / SPEED)

    def on_start(self):
        self.next_order = time.monotonic() + FORCE_EVERY_S
        self.n = 0

    @task
    def step(self):
        sym = SYMBOLS[self.n % len(SYMBOLS)]
        self.client.get(f"/api/v3/klines?symbol={sym}&interval=1m&limit=21", name="GET /api/v3/klines")
        if time.monotonic() < self.next_order:
            return
        self.next_order = time.monotonic() + FORCE_EVERY_S
        side = "BUY" if (self.n // len(SYMBOLS)) % 2 == 0 else "SELL"
        self.n += 1
        cid = f"bare{os.getpid()}x{next(_ids)}"
        self.client.post("/api/v3/order?" + signed({"symbol": sym, "side": side, "type": "MARKET",
                                                   "quoteOrderQty": "12", "newClientOrderId": cid}),
                         headers=KEY, name="POST /api/v3/order")
        self.client.get("/api/v3/order?" + signed({"symbol": sym, "origClientOrderId": cid}), headers=KEY,
                        name="GET /api/v3/order")
        self.client.get("/api/v3/account?" + signed({"omitZeroBalances": "true"}), headers=KEY,
                        name="GET /api/v3/account")
'''

#: ``--diagnose``: the harness's locustfile under tracemalloc; snapshots at the end of the warm-up
#: and near the end of the run, their difference written to ``BENCH_DIAG_OUT`` (JSON)
DIAG_LOCUSTFILE = '''\
import gc
import json
import os
import time
import tracemalloc
from collections import Counter

import gevent
from locust import events

from letrade_perf.locustfile import *  # noqa: F401,F403 - the users, the load shape and the plugin

OUT = os.environ["BENCH_DIAG_OUT"]
AT = [float(x) for x in os.environ["BENCH_DIAG_AT"].split(",")]
tracemalloc.start(int(os.environ.get("BENCH_DIAG_FRAMES", "8")))
T0 = time.monotonic()


def types():
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


def _take():
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    return tracemalloc.take_snapshot().filter_traces(filters), types()


def _steady(a, b, c, key):
    """Sites that grew in both halves (a transient — a response being decoded — grows in one)."""
    first = {d.traceback: d for d in b.compare_to(a, key)}
    out = []
    for d in c.compare_to(b, key):
        d1 = first.get(d.traceback)
        if d1 is not None and d.size_diff > 0 and d1.size_diff > 0:
            out.append((d.traceback, d.size_diff + d1.size_diff, d.count_diff + d1.count_diff))
    return sorted(out, key=lambda x: -x[1])


def _watch():
    marks = [AT[0], (AT[0] + AT[1]) / 2, AT[1]]
    snaps = []
    for at in marks:
        gevent.sleep(max(0.0, at - (time.monotonic() - T0)))
        snaps.append(_take())
    (s1, t1), (s2, t2), (s3, t3) = snaps
    lineno = _steady(s1, s2, s3, "lineno")
    tb = _steady(s1, s2, s3, "traceback")
    grew = {k: (t2[k] - t1.get(k, 0), t3[k] - t2.get(k, 0)) for k in t3}
    out = {"seconds": AT[1] - AT[0],
           "lineno": [[str(t), size, count] for t, size, count in lineno[:40]],
           "traceback": [[t.format(), size, count] for t, size, count in tb[:12]],
           "types": sorted(((k, a + b) for k, (a, b) in grew.items() if a > 0 and b > 0),
                           key=lambda kv: -kv[1])[:40]}
    with open(OUT, "w") as fh:
        json.dump(out, fh, indent=1)


@events.test_start.add_listener
def _start(**_kw):
    gevent.spawn(_watch)
'''


def taskset(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > core else []


def tree_at(tmp: str, rev: str) -> str:
    """``letrade_perf`` as of git revision ``rev`` (``git archive``) in a directory of its own."""
    dst = os.path.join(tmp, "tree-" + "".join(c if c.isalnum() else "_" for c in rev))
    os.makedirs(dst)
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", rev, "letrade_perf"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {rev}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", dst], input=archive.stdout, check=True)
    return dst


def derived_profile(src: dict, speed: float) -> dict:
    """soak-24h at ``speed``: every wait ÷ speed, no sink. The stages stay the soak's own: what
    the harness sizes by the planned duration (the per-interval table's width: 24 h / 120 = 12 min;
    the timelines) behaves as in the real soak; ``-t`` ends the run early."""
    doc = json.loads(json.dumps(src))
    doc["description"] = f"soak-24h, waits compressed {speed:g}x (bench/locust_soak.py)"
    defaults = {"rest_market": (0.5, 1.5), "ccxt": (1.0, 2.0), "pipeline": (0.5, 1.5)}
    for kind, settings in doc["users"].items():
        lo_hi = defaults.get(kind)
        if lo_hi is None and "wait_min_s" not in settings:
            continue
        lo = float(settings.get("wait_min_s", lo_hi[0] if lo_hi else 0.0))
        hi = float(settings.get("wait_max_s", lo_hi[1] if lo_hi else 0.0))
        settings["wait_min_s"], settings["wait_max_s"] = lo / speed, hi / speed
        strat = settings.get("strategy")
        if isinstance(strat, dict) and "force_every_s" in strat:
            strat["force_every_s"] = parse_s(strat["force_every_s"]) / speed
    doc.pop("sink", None)
    return doc


def parse_s(v) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    v = str(v).strip()
    for suffix, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if v.endswith(suffix) and v[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(v[:-len(suffix)]) * mult
    return float(v)


class LocustProc:
    """One Locust process whose RSS is sampled."""

    def __init__(self, label: str, cmd: list[str], env: dict, tmp: str) -> None:
        self.label = label
        self.log = open(os.path.join(tmp, f"locust-{label}.log"), "wb")
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.samples: list[tuple[float, float]] = []
        self.csv_prefix = os.path.join(tmp, label)
        self.cpu_s = 0.0
        self.alive_s = 0.0

    def sample(self, t: float) -> None:
        r = _table.rss_mb(self.proc.pid) if self.proc.poll() is None else None
        if r is not None:
            self.samples.append((t, r))
            self.alive_s = t
            try:
                with open(f"/proc/{self.proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                self.cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError, IndexError):
                pass

    def stop(self, wait_s: float) -> None:
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def requests(self) -> tuple[int, int]:
        """(requests, failures) of Locust's Aggregated row (0, 0 when the CSV is missing)."""
        try:
            with open(self.csv_prefix + "_stats.csv", newline="") as fh:
                for r in csv.DictReader(fh):
                    if r["Name"] == "Aggregated":
                        return int(r["Request Count"]), int(r["Failure Count"])
        except (OSError, KeyError, ValueError):
            pass
        return 0, 0


# -- analysis ------------------------------------------------------------------------------------
def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope in MB per second."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0


def windows(samples: list[tuple[float, float]], warmup_s: float, window_s: float) -> list[tuple[float, float]]:
    """(window start, slope MB/h) of consecutive ``window_s`` windows after the warm-up."""
    post = [p for p in samples if p[0] >= warmup_s]
    out = []
    t = warmup_s
    while post and t + window_s <= post[-1][0] + 1e-9:
        w = [p for p in post if t <= p[0] <= t + window_s]
        if len(w) >= 3:
            out.append((t, slope(w) * 3600))
        t += window_s
    return out


def growth(samples: list[tuple[float, float]], warmup_s: float, window_s: float) -> dict:
    post = [p for p in samples if p[0] >= warmup_s]
    if len(post) < 3:
        return {}
    return {"fit": slope(post) * 3600, "windows": windows(samples, warmup_s, window_s), "start": post[0][1],
            "end": post[-1][1], "peak": max(p[1] for p in samples), "first": samples[0][1]}


def print_diag(path: str) -> str:
    """The ``--diagnose`` result as Markdown."""
    try:
        with open(path) as fh:
            d = json.load(fh)
    except (OSError, ValueError) as e:
        return f"diagnose: no result ({e})"
    lines = [f"Harness process, tracemalloc difference over {d['seconds']:.0f} s after the warm-up; only "
             "allocation sites that grew in both halves (a transient grows in one):", "", "```"]
    lines += [f"{size / 1024:+10.1f} KiB {count:+8d}  {where}" for where, size, count in d["lineno"][:25]]
    lines += ["```", "", "Objects by type (gc) that grew in both halves:", "", "```"]
    lines += [f"{n:+8d}  {name}" for name, n in d["types"][:25]]
    lines += ["```", "", "Largest growing tracebacks:", "", "```"]
    for tb, size, count in d["traceback"][:6]:
        lines.append(f"{size / 1024:+.1f} KiB {count:+d}")
        lines += ["    " + ln for ln in tb[-12:]]
    lines.append("```")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="run length in wall minutes (default 10)")
    ap.add_argument("--warmup-minutes", type=float, default=None, help="excluded from the fit (default: 40 %%)")
    ap.add_argument("--speed", type=float, default=10.0, help="compression factor of waits and market flow")
    ap.add_argument("--window-s", type=float, default=None, help="window of the spread's slopes (default 60 s; 30 s quick)")
    ap.add_argument("--quick", action="store_true", help="3 minutes, 1.5 of them warm-up (a smoke run, not a figure)")
    ap.add_argument("--diagnose", action="store_true",
                    help="the harness under tracemalloc: what grew after the warm-up (not a figure run)")
    ap.add_argument("--no-bare", action="store_true", help="no bare Locust process")
    ap.add_argument("--harness-rev", default=None, metavar="REV",
                    help="run the harness as of git revision REV (git archive) instead of the working tree")
    ap.add_argument("--harness-tree", default=None, metavar="DIR",
                    help="run the harness from DIR (a directory holding a letrade_perf package) instead of the "
                         "working tree")
    ap.add_argument("--extra-tree", action="append", default=[], metavar="LABEL=DIR",
                    help="also run the harness from DIR beside the others, labelled harness:LABEL (repeatable)")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="also run the harness as of git revision REV beside the working tree's (a third process)")
    _table.add_args(ap)
    args = ap.parse_args()
    if args.quick:
        args.minutes = 3.0
        args.warmup_minutes = 1.5 if args.warmup_minutes is None else args.warmup_minutes
    warmup = args.warmup_minutes if args.warmup_minutes is not None else args.minutes * 0.4
    window_s = args.window_s or (30.0 if args.minutes <= 4 else 60.0)
    if not 0 < warmup < args.minutes:
        ap.error("--warmup-minutes must lie inside the run")
    seconds = args.minutes * 60.0
    with open(PROFILE) as f:
        soak = yaml.safe_load(f)
    prof = derived_profile(soak, args.speed)
    symbols = soak["symbols"]
    templates = ("{symbol}@trade", "{symbol}@aggTrade", "{symbol}@depth@100ms", "{symbol}@kline_1m")
    streams = "/".join(t.replace("{symbol}", s.lower()) for s in symbols
                       for t in soak["users"]["ws_streams"].get("streams", templates))
    force = parse_s(soak["users"]["pipeline"].get("strategy", {}).get("force_every_s", 2.0)) / args.speed

    report = _table.Report("Locust process memory under the soak load", base="bare", cand="harness")
    tmp = tempfile.mkdtemp(prefix="locust-soak-")
    procs: list[LocustProc] = []
    sim = None
    diag_out = os.path.join(tmp, "diagnose.json")
    deadline = time.monotonic() + seconds + GRACE_S
    try:
        big = {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9, "orders_per_10s": 10**6,
               "orders_per_day": 10**9, "ws_connections_per_5m": 10**6}
        sim = start_simulator({"limits": big, "market": {"trades_per_second": 5.0 * args.speed}}, cpu=0)
        host = sim.base_url
        prof_path = os.path.join(tmp, "soak-compressed.yaml")
        with open(prof_path, "w") as f:
            yaml.safe_dump(prof, f)
        env = dict(os.environ, PYTHONPATH=ROOT)
        base = taskset(1) + [sys.executable, "-m", "locust", "--headless", "--host", host, "--only-summary",
                             "--exit-code-on-error", "0", "--loglevel", "WARNING"]
        locustfile = LOCUSTFILE
        henv = dict(env)
        harness_label = f"harness@{args.harness_rev[:10]}" if args.harness_rev else "harness"
        if args.harness_rev:
            henv["PYTHONPATH"] = tree_at(tmp, args.harness_rev)
        elif args.harness_tree:
            henv["PYTHONPATH"] = os.path.abspath(args.harness_tree)
        if args.diagnose:
            locustfile = os.path.join(tmp, "locust_diag.py")
            with open(locustfile, "w") as f:
                f.write(DIAG_LOCUSTFILE)
            henv.update(BENCH_DIAG_OUT=diag_out, BENCH_DIAG_AT=f"{warmup * 60:.0f},{seconds - 15:.0f}")
        base += ["-t", f"{int(seconds)}s"]      # the harness: the soak's plan, ended by the run time
        procs.append(LocustProc(harness_label, base + ["-f", locustfile, "--profile", prof_path,
                                                         "--letrade-reports", os.path.join(tmp, "reports"),
                                                         "--csv", os.path.join(tmp, harness_label)], henv, tmp))
        if args.baseline:
            label = f"harness@{args.baseline[:10]}"
            procs.append(LocustProc(label, base + ["-f", LOCUSTFILE, "--profile", prof_path,
                                                   "--letrade-reports", os.path.join(tmp, "reports-base"),
                                                   "--csv", os.path.join(tmp, label)],
                                    dict(env, PYTHONPATH=tree_at(tmp, args.baseline)), tmp))
        for spec in args.extra_tree:
            name, _, tree = spec.partition("=")
            if not tree:
                ap.error(f"--extra-tree {spec!r}: expected LABEL=DIR")
            label = f"harness:{name}"
            procs.append(LocustProc(label, base + ["-f", LOCUSTFILE, "--profile", prof_path,
                                                   "--letrade-reports", os.path.join(tmp, f"reports-{name}"),
                                                   "--csv", os.path.join(tmp, label)],
                                    dict(env, PYTHONPATH=os.path.abspath(tree)), tmp))
        if not args.no_bare:
            bare_path = os.path.join(tmp, "locust_bare_soak.py")
            with open(bare_path, "w") as f:
                f.write(BARE_LOCUSTFILE)
            benv = dict(env, BENCH_SPEED=str(args.speed), BENCH_SYMBOLS=",".join(symbols), BENCH_STREAMS=streams,
                        BENCH_FORCE_EVERY_S=str(force))
            procs.append(LocustProc("bare", base + ["-f", bare_path, "-u", str(prof["stages"][0]["users"]),
                                                    "-r", str(prof["stages"][0]["spawn_rate"]),
                                                    "--csv", os.path.join(tmp, "bare")], benv, tmp))
        print(f"soak-24h mix at {args.speed:g}x for {args.minutes:g} min (= {args.minutes * args.speed / 60:.2f} "
              f"soak hours), warm-up {warmup:g} min; simulator on core 0, Locust on core 1"
              f"{'' if taskset(1) else ' (no taskset)'}; work dir {tmp}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        deadline = t0 + seconds + GRACE_S
        last_print = t0
        while time.monotonic() < deadline and any(p.proc.poll() is None for p in procs):
            t = time.monotonic() - t0
            for p in procs:
                p.sample(t)
            if time.monotonic() - last_print >= 60:
                last_print = time.monotonic()
                print(f"  {t / 60:5.1f} min: " + ", ".join(f"{p.label} {p.samples[-1][1]:.1f} MB"
                                                          for p in procs if p.samples), file=sys.stderr, flush=True)
            time.sleep(SAMPLE_EVERY_S)
    finally:
        for p in procs:
            p.stop(max(0.0, deadline - time.monotonic()))
        if sim is not None:
            sim.stop()

    report.intro = (
        f"The soak-24h mix (20 users: rest_market, ccxt, 4 ws_streams, 2 pipeline) at {args.speed:g}× for "
        f"{args.minutes:g} wall minutes (= {args.minutes * args.speed / 60:.2f} soak hours), warm-up {warmup:g} min "
        f"left out of the fit; {', '.join(p.label for p in procs)} side by side (one Locust process each) against "
        f"one simulator (core 0), all on core 1; RSS sampled every {SAMPLE_EVERY_S:g} s. Growth = least-squares slope "
        f"after the warm-up. Per soak hour: between wall ÷ speed (all growth request-driven) and the wall figure "
        f"(all growth time-driven); the target < {TARGET_MB_PER_H:g} MB/h is judged on the wall figure."
        + (" **Diagnose run: the harness under tracemalloc — not a figure.**" if args.diagnose else ""))
    results = {p.label: growth(p.samples, warmup * 60, window_s) for p in procs}
    # the summary row: per window, harness − bare growth (MB per wall hour)
    for label, g in results.items():
        if label == "bare" or not g or not results.get("bare"):
            continue
        with report.row(f"`{label}`: RSS growth per wall hour, per {window_s:g} s window ({label} − bare)",
                        unit="MB/h", compare="diff", target=f"{label} < {TARGET_MB_PER_H:g} MB/h", digits=2) as row:
            bw = dict(results["bare"]["windows"])
            for t, h in g["windows"]:
                if t in bw:
                    row.pair(bw[t], h, f"window at {t / 60:.1f} min")
    table = []
    for p in procs:
        g = results[p.label]
        n, fails = p.requests()
        if not g:
            table.append([p.label, f"{n:,}", str(fails), "—", "too few samples after the warm-up", "—", "—", "—", "—",
                          "—"])
            continue
        w = [v for _t, v in g["windows"]]
        upper = g["fit"]
        verdict = "met" if upper < TARGET_MB_PER_H else ("met if request-driven" if upper / args.speed
                                                          < TARGET_MB_PER_H else "missed")
        cpu = f"{100 * p.cpu_s / p.alive_s:.0f} %" if p.alive_s else "—"
        table.append([p.label, f"{n:,}", f"{fails:,}", cpu, f"{g['first']:.1f} / {g['start']:.1f} → {g['end']:.1f} MB",
                      f"{g['peak']:.1f} MB", f"{upper:+.2f}", f"{upper / args.speed:+.2f} … {upper:+.2f}",
                      _table.spread(w, digits=1, sign=True) if w else "n/a",
                      verdict if p.label.startswith("harness") else "—"])
    report.text(_table.markdown_table(
        ["process", "Locust requests (WS messages included)", "failures", "CPU (of one core)", "RSS first / after warm-up → end", "peak", "MB per wall hour",
         "MB per soak hour (lower … upper)", f"{window_s:g} s windows MB/h wall: min / median / max",
         f"target < {TARGET_MB_PER_H:g} MB/h"], table))
    for p in procs:
        if p.proc.returncode not in (0, None):
            report.text(f"{p.label}: Locust exited {p.proc.returncode} (a criterion may have failed; the memory "
                        f"figures stand).")
    if args.diagnose:
        report.text(print_diag(diag_out))
    rc = report.finish(args)
    if os.environ.get("BENCH_KEEP"):
        print(f"kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
