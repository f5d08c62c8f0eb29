"""Latency the load generator adds over the true server time: bare Locust vs the harness's REST user.

The simulator answers ``GET /api/v3/depth`` after a fixed latency (``--sim-latency-ms``, default
20 ms; pinned to core 0 with a weight budget too large to refuse anything). While every Locust
run is on, a *probe* — its own process with raw blocking sockets on separate keep-alive
connections, lightly loaded (``--probe-connections`` × one request every ``--probe-interval-ms``
after the previous answer) — measures the same request's true server time. Each Locust run
(pinned to core 1) keeps the exact response time of every request inside a steady-state window
(the meter of bench/harness_users.py: Locust's own percentiles are rounded to whole ms), and the
probe's samples of the same wall-clock window are its reference:

    added p50 = p50(Locust's response times) − p50(the probe's), the same for p99.

For each user count (``--users``, default 10 25 50 100 200; wait 0: every user sends its next
request as soon as its answer arrived) bare Locust (``FastHttpUser`` in bench/locust_bare.py) and
the harness (``RestMarketData``, depth only, with the plugin: pacing, validation, header
feedback, the criteria gate's recorder) alternate (ABAB…, ``--repeat`` pairs). Per user count
the table shows bare's and the harness's added p50 and p99 (medians over the pairs) and the
per-pair difference harness − bare (min / median / max); below it, each side's rate and the
probe's own figures, and the user count at which each side's added p50 first exceeds 1 ms
(the target: the harness's added p50 stays ≤ 1 ms at every user count where bare's does).

    .venv/bin/python bench/added_latency.py [--users 10 25 50 100 200] [--seconds 10] [--repeat 2] [--append]
    .venv/bin/python bench/added_latency.py --quick            # 10, 50, 200 users; 1 pair of 6 s runs

Numbers to keep in mind: the probe's own client cost (Python, blocking socket, ~0.1 ms) is
part of its "server time", so both sides' added latency is understated by about that much —
the same for both, so the difference harness − bare is not.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import _table  # noqa: E402
from harness_users import BARE, LOCUSTFILE, locust, meter_env, rps  # noqa: E402

PATH = "/api/v3/depth?symbol=BTCUSDT&limit=5"
NAME = "GET /api/v3/depth"
KEY = ("GET", NAME)
#: added p50 above this (ms) is where a generator "crosses"
THRESHOLD_MS = 1.0


# -- the probe (its own process) --------------------------------------------------------------------
def _read_response(sock: socket.socket, buf: bytearray) -> None:
    """Read one HTTP/1.1 response with a Content-Length body (what the simulator sends)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1").lower()
    length = None
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip() == "content-length":
            length = int(v)
    if length is None:
        raise ValueError("the probe needs a Content-Length answer")
    need = end + 4 + length
    while len(buf) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    if not head.startswith("http/1.1 200"):
        raise ValueError(head.split("\r\n", 1)[0])
    del buf[:need]


def _probe_loop(host: str, port: int, interval_s: float, out, lock: threading.Lock, stop: threading.Event) -> None:
    req = f"GET {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: keep-alive\r\n\r\n".encode()
    sock = None
    buf = bytearray()
    while not stop.is_set():
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buf.clear()
            t0 = time.perf_counter()
            sock.sendall(req)
            _read_response(sock, buf)
            ms = (time.perf_counter() - t0) * 1000.0
            with lock:
                out.write(f"{time.time():.6f} {ms:.4f}\n")
                out.flush()
        except (OSError, ValueError) as e:
            with lock:
                out.write(f"# error {type(e).__name__}: {e}\n")
                out.flush()
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.1)
        stop.wait(interval_s)


def run_probe(host: str, port: int, connections: int, interval_ms: float, path: str) -> None:
    """The probe process: ``connections`` threads, each on its own connection; one line
    ``<epoch s> <ms>`` per answer in ``path``; runs until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    with open(path, "a") as out:
        threads = [threading.Thread(target=_probe_loop, args=(host, port, interval_ms / 1000.0, out, lock, stop),
                                    daemon=True) for _ in range(connections)]
        for t in threads:
            t.start()
            time.sleep(interval_ms / 1000.0 / connections)   # spread the connections' requests
        while not stop.is_set():
            stop.wait(0.5)
        for t in threads:
            t.join(timeout=12)


def probe_samples(path: str, t0: float, t1: float) -> list[float]:
    """The probe's response times (ms) of answers received within [t0, t1] (epoch s)."""
    out = []
    with open(path) as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            t, ms = line.split()
            if t0 <= float(t) <= t1:
                out.append(float(ms))
    return out


# -- figures --------------------------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """numpy's default (linear) percentile of ``values``."""
    v = sorted(values)
    if not v:
        return float("nan")
    h = (len(v) - 1) * p / 100.0
    lo = int(h)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (h - lo) * (v[hi] - v[lo])


def added(rows: dict, probe_path: str, tag: str) -> dict:
    """One run's figures: its p50/p99, the probe's over the same window, the differences."""
    m = rows[("meter", "")]
    rts = m["rts"]
    ref = probe_samples(probe_path, m["start"]["t"], m["end"]["t"])
    if len(rts) < 100:
        raise RuntimeError(f"{tag}: only {len(rts)} response times in the window")
    if len(ref) < 20:
        raise RuntimeError(f"{tag}: only {len(ref)} probe samples in the window (is the probe running?)")
    window = m["end"]["t"] - m["start"]["t"]
    f = {"p50": percentile(rts, 50), "p99": percentile(rts, 99), "probe_p50": percentile(ref, 50),
         "probe_p99": percentile(ref, 99), "rate": len(rts) / window if window > 0 else float("nan"),
         "n": len(rts), "probe_n": len(ref), "failures": m.get("rt_failures", 0), "csv_rate": rps(rows, KEY)}
    f["added_p50"] = f["p50"] - f["probe_p50"]
    f["added_p99"] = f["p99"] - f["probe_p99"]
    return f


def profile(workdir: str, seconds: int, users: int) -> str:
    """The harness's profile: REST depth only (BTCUSDT, limit 5), wait 0, one stage of ``users``;
    the gate's defaults off (the benchmark judges its own figures); pacing at the whole budget."""
    path = os.path.join(workdir, f"added-{users}.yaml")
    doc = {"description": "bench added latency", "env": "sim", "symbols": ["BTCUSDT"],
           "stages": [{"duration": f"{seconds}s", "users": users, "spawn_rate": users}],
           "users": {"rest_market": {"weight": 1, "wait_min_s": 0, "wait_max_s": 0, "depth_limit": 5,
                                     "task_weights": {"depth": 1, "klines": 0, "trades": 0, "ticker": 0,
                                                      "book_ticker": 0}}},
           "pacing": {"weight_fraction": 1.0, "orders_fraction": 1.0}, "gate": {"defaults": False}}
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh)
    return path


def crossing(counts: list[int], p50s: dict[int, float]) -> str:
    """The first user count whose added p50 exceeds the threshold (``> N`` when none does)."""
    for n in counts:
        if p50s.get(n, float("nan")) > THRESHOLD_MS:
            return str(n)
    return f"none up to {counts[-1]}" if counts else "—"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    ap.add_argument("--seconds", type=int, default=10, help="length of each Locust run")
    ap.add_argument("--repeat", type=int, default=2, help="alternating bare/harness pairs per user count")
    ap.add_argument("--sim-latency-ms", type=float, default=20.0, help="the simulator's fixed latency")
    ap.add_argument("--probe-connections", type=int, default=2)
    ap.add_argument("--probe-interval-ms", type=float, default=10.0,
                    help="pause between a probe connection's answer and its next request")
    ap.add_argument("--probe-cpu", default="0", help="core(s) the probe is pinned to ('' for none)")
    ap.add_argument("--quick", action="store_true", help="10, 50 and 200 users, 1 pair of 6 s runs each")
    ap.add_argument("--probe", nargs=3, metavar=("HOST", "PORT", "OUT"), help=argparse.SUPPRESS)
    _table.add_args(ap)
    args = ap.parse_args()
    if args.probe:
        run_probe(args.probe[0], int(args.probe[1]), args.probe_connections, args.probe_interval_ms, args.probe[2])
        return 0
    if args.quick:
        args.users, args.repeat, args.seconds = [10, 50, 200], 1, 6
    counts = sorted(set(args.users))
    if not counts or counts[0] < 1 or counts[-1] > 1000:
        ap.error("--users: between 1 and 1000")

    from letrade_perf.sim.process import start_simulator

    big = {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9, "orders_per_10s": 10**6,
           "orders_per_day": 10**9, "ws_connections_per_5m": 10**6}
    s = args.seconds
    report = _table.Report(
        "Harness-added latency over the true server time", base="bare", cand="harness",
        intro=f"Simulator latency fixed at {args.sim_latency_ms:g} ms (core 0); one Locust process per run (core 1), "
              f"wait 0, `{NAME}`; {s} s per run, {args.repeat} alternating bare/harness pair(s) per user count; a "
              f"probe ({args.probe_connections} raw-socket keep-alive connections in their own process, core "
              f"{args.probe_cpu or 'any'}, one request per connection every {args.probe_interval_ms:g} ms after its "
              "answer) measures the true server time in the same window. *Added* = the run's percentile − the "
              "probe's; the difference column is harness − bare per pair.")
    sim = start_simulator({"limits": big, "latency": {"fixed_ms": args.sim_latency_ms}}, cpu=0)
    work = tempfile.mkdtemp(prefix="letrade-bench-added-")
    probe_path = os.path.join(work, "probe.txt")
    pcmd = [sys.executable, os.path.abspath(__file__), "--probe", "127.0.0.1", str(sim.port), probe_path,
            "--probe-connections", str(args.probe_connections), "--probe-interval-ms", str(args.probe_interval_ms)]
    if args.probe_cpu:
        pcmd = ["taskset", "-c", args.probe_cpu] + pcmd
    probe = subprocess.Popen(pcmd, cwd=ROOT)
    runs: dict[tuple[str, int], list[dict]] = {}
    try:
        mtr = meter_env(s, rt=True, name=NAME)
        for n in counts:
            p50 = report.row(f"added p50, {n} users", unit="ms", compare="diff", target="≤ 1 ms where bare is",
                             digits=2)
            p99 = report.row(f"added p99, {n} users", unit="ms", compare="diff", digits=2)
            prof = profile(work, s, n)
            with p50 as r50:
                try:
                    for _ in range(args.repeat):
                        b = added(locust(BARE, sim.base_url, work, f"bare-{n}", ["-u", str(n), "-r", str(n),
                                         "-t", f"{s}s"], {"BENCH_USER": "rest"}, mtr), probe_path, f"bare-{n}")
                        h = added(locust(LOCUSTFILE, sim.base_url, work, f"harness-{n}", ["--profile", prof],
                                         meter=mtr), probe_path, f"harness-{n}")
                        runs.setdefault(("bare", n), []).append(b)
                        runs.setdefault(("harness", n), []).append(h)
                        note = (f"req/s {b['rate']:,.0f} vs {h['rate']:,.0f}; probe p50 {b['probe_p50']:.2f} / "
                                f"{h['probe_p50']:.2f} ms")
                        r50.pair(b["added_p50"], h["added_p50"], note)
                        p99.row.pair(b["added_p99"], h["added_p99"], note)
                except Exception as e:
                    p99.row.error = f"see the p50 row ({type(e).__name__})"
                    raise
    finally:
        probe.send_signal(signal.SIGTERM)
        try:
            probe.wait(timeout=15)
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.wait()
        sim.stop()
    report.text(figures(counts, runs))
    return report.finish(args)


def figures(counts: list[int], runs: dict[tuple[str, int], list[dict]]) -> str:
    """Per user count (medians over the pairs): each side's rate, p50/p99, the probe's p50/p99 and
    the added figures; then where each side's added p50 first exceeds 1 ms, and the target."""
    import statistics

    def med(side: str, n: int, k: str) -> float:
        v = [r[k] for r in runs.get((side, n), [])]
        return statistics.median(v) if v else float("nan")

    rows = []
    for n in counts:
        rows.append([str(n)] + [_table.fmt(med(side, n, k), d) for side in ("bare", "harness")
                                for k, d in (("rate", 0), ("probe_p50", 2), ("p50", 2), ("added_p50", 2),
                                             ("added_p99", 2))])
    head = ["users"] + [f"{side} {k}" for side in ("bare", "harness")
                        for k in ("req/s", "probe p50 ms", "p50 ms", "added p50 ms", "added p99 ms")]
    bare50 = {n: med("bare", n, "added_p50") for n in counts}
    harn50 = {n: med("harness", n, "added_p50") for n in counts}
    ok_counts = [n for n in counts if bare50[n] <= THRESHOLD_MS]
    bad = [n for n in ok_counts if not harn50[n] <= THRESHOLD_MS]
    if not ok_counts:
        verdict = "bare Locust's added p50 exceeds 1 ms at every user count measured: the target has no range"
    elif bad:
        verdict = (f"**missed**: the harness's added p50 exceeds 1 ms at {', '.join(map(str, bad))} users, where "
                   "bare Locust's does not")
    else:
        verdict = (f"**met**: the harness's added p50 is ≤ 1 ms at every user count where bare Locust's is "
                   f"({', '.join(map(str, ok_counts))})")
    return ("Medians over the pairs, per user count (probe = the true server time in the same window):\n\n"
            + _table.markdown_table(head, rows) + "\n\n"
            f"Added p50 first above 1 ms: bare at {crossing(counts, bare50)} users, harness at "
            f"{crossing(counts, harn50)} users. Target (harness-added p50 ≤ 1 ms up to where bare stays ≤ 1 ms): "
            f"{verdict}.")


if __name__ == "__main__":
    sys.exit(main())
