"""Simulator REST throughput versus a bare aiohttp handler returning the same bytes, side by side.

Both servers are pinned to core 0 and loaded by wrk pinned to core 1, one after the other in
the same run, for ``GET /api/v3/depth?limit=5`` and ``GET /api/v3/ticker/price?symbol=BTCUSDT``.
The simulator runs with a REQUEST_WEIGHT budget large enough never to refuse (the weight
accounting still runs on every request). Prints a table of req/s and the ratio.

    .venv/bin/python bench/sim_rest.py [--seconds 10] [--connections 64]

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
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    cfg = {"limits": {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9}}
    sim = start_simulator(cfg, cpu=0)
    rows = []
    try:
        for path in PATHS:
            body = urllib.request.urlopen(sim.base_url + path).read()
            bare, bare_base = start_bare(body)
            try:
                wrk(bare_base + path, 2, args.connections)           # warm-up
                wrk(sim.base_url + path, 2, args.connections)
                bare_rps = wrk(bare_base + path, args.seconds, args.connections)
                sim_rps = wrk(sim.base_url + path, args.seconds, args.connections)
            finally:
                bare.terminate()
                bare.wait(10)
            rows.append((path, sim_rps, bare_rps))
    finally:
        sim.stop()
    print(f"\nREST throughput, one core each (wrk -t1 -c{args.connections} -d{args.seconds}s on the other core)\n")
    print("| request | simulator req/s | bare aiohttp req/s | ratio |")
    print("|---|---:|---:|---:|")
    for path, s, b in rows:
        print(f"| `GET {path}` | {s:,.0f} | {b:,.0f} | {s / b:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
