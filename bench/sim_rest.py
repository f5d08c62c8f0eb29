"""Simulator REST throughput versus a bare aiohttp handler returning the same bytes, side by side.

Both servers are pinned to core 0 and loaded by wrk pinned to core 1, one after the other in
the same run, for ``GET /api/v3/depth?limit=5`` and ``GET /api/v3/ticker/price?symbol=BTCUSDT``.
The simulator runs with a REQUEST_WEIGHT budget large enough never to refuse (the weight
accounting still runs on every request). Bare and simulator runs alternate (``--pairs`` per
request); the table (bench/_table.py) shows every pair, the medians and the per-pair ratios
simulator ÷ bare as min / median / max; ``--append`` appends it to BENCHMARKS.md.

    .venv/bin/python bench/sim_rest.py [--seconds 5] [--pairs 3] [--connections 64] [--append]

Needs ``wrk`` (Debian package ``wrk``; ``scripts/bootstrap --test`` installs it).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from letrade_perf.sim.process import start_simulator  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _table  # noqa: E402

PATHS = ["/api/v3/depth?symbol=BTCUSDT&limit=5", "/api/v3/ticker/price?symbol=BTCUSDT"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise RuntimeError(f"{url}: {non2xx.group(1)} non-2xx responses — the comparison would be unfair")
    return float(m.group(1))


def start_bare(body: bytes) -> tuple[subprocess.Popen, str]:
    port = free_port()
    fd, path = tempfile.mkstemp()
    os.write(fd, body)
    os.close(fd)
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, os.path.join(ROOT, "bench", "bare_server.py"),
                             "--port", str(port), "--body-file", path])
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/", timeout=1).read()
            return proc, base
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("bare server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    ap.add_argument("--pairs", type=int, default=3, help="alternating bare/simulator runs per request")
    ap.add_argument("--connections", type=int, default=64)
    _table.add_args(ap)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    report = _table.Report(
        "Simulator REST throughput vs a bare aiohttp handler", base="bare aiohttp", cand="simulator",
        intro=f"One core each (core 0), `wrk -t1 -c{args.connections} -d{args.seconds}s` on core 1, "
              f"{args.pairs} alternating bare/simulator pairs per request after a 2 s warm-up of each; the "
              "simulator's weight budget is set high so nothing is refused. Ratio = simulator ÷ bare per pair.")
    cfg = {"limits": {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9}}
    sim = start_simulator(cfg, cpu=0)
    try:
        for path in PATHS:
            with report.row(f"`GET {path}`", unit="req/s", target="≥ 0.6×, ≥ 7,000 req/s") as row:
                body = urllib.request.urlopen(sim.base_url + path).read()
                bare, bare_base = start_bare(body)
                try:
                    wrk(bare_base + path, 2, args.connections)           # warm-up
                    wrk(sim.base_url + path, 2, args.connections)
                    for _ in range(args.pairs):
                        b = wrk(bare_base + path, args.seconds, args.connections)
                        row.pair(b, wrk(sim.base_url + path, args.seconds, args.connections))
                finally:
                    bare.terminate()
                    bare.wait(10)
    finally:
        sim.stop()
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(main())
