"""WebSocket fan-out of one simulator process: messages per second sent to many subscribers.

The simulator (pinned to core 0) generates synthetic trades on every symbol; N clients
(asyncio on core 1) each subscribe to ``<symbol>@trade`` and ``<symbol>@aggTrade`` of every
symbol through one combined stream. Over a fixed window it reads the simulator's own ground
truth (``/_sim/stats``: messages sent) and the clients' received counts over ``--pairs``
consecutive windows (one pair = one window: sent/s, received/s), and prints the table of
bench/_table.py: every window, the medians and the ratio received ÷ sent as min / median / max.
``--append`` appends it to BENCHMARKS.md.

    .venv/bin/python bench/sim_ws_fanout.py [--clients 16] [--rate 200] [--seconds 10] [--pairs 3] [--append]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from letrade_perf.sim.process import start_simulator  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _table  # noqa: E402


def stats(base: str) -> dict:
    with urllib.request.urlopen(base + "/_sim/stats", timeout=10) as r:
        return json.loads(r.read())


async def client(url: str, counter: list, stop: asyncio.Event) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0, autoping=True) as ws:
            while not stop.is_set():
                try:
                    msg = await asyncio.wait_for(ws.receive(), timeout=1.0)
                except asyncio.TimeoutError:
                    continue
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                counter[0] += 1


async def measure(base_ws: str, base_http: str, symbols: list[str], clients: int, seconds: float,
                  windows: int) -> list[dict]:
    """One dict per consecutive window of ``seconds``: sent/s (ground truth), received/s, trades/s."""
    streams = "/".join(f"{s.lower()}@{k}" for s in symbols for k in ("trade", "aggTrade"))
    url = f"{base_ws}/stream?streams={streams}"
    counter = [0]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(url, counter, stop)) for _ in range(clients)]
    await asyncio.sleep(2.0)                       # connect and warm up
    out = []
    try:
        s0, c0, t0 = stats(base_http), counter[0], time.perf_counter()
        for _ in range(windows):
            await asyncio.sleep(seconds)
            s1, c1, t1 = stats(base_http), counter[0], time.perf_counter()
            elapsed = t1 - t0
            out.append({"sent_per_s": (s1["ws"]["messages_total"] - s0["ws"]["messages_total"]) / elapsed,
                        "received_per_s": (c1 - c0) / elapsed,
                        "trades_per_s": (s1["orders"]["synthetic_trades"] - s0["orders"]["synthetic_trades"]) / elapsed,
                        "disconnects": s1["ws"]["disconnects"] or 0})
            s0, c0, t0 = s1, c1, t1
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rate", type=float, default=200.0, help="synthetic trades per second per symbol")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one window (one pair)")
    ap.add_argument("--pairs", type=int, default=3, help="consecutive windows measured")
    _table.add_args(ap)
    args = ap.parse_args()
    os.sched_setaffinity(0, {1})
    cfg = {"market": {"trades_per_second": args.rate},
           "limits": {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9,
                      "ws_connections_per_5m": 10**6}}
    report = _table.Report("Simulator WebSocket fan-out", base="sent (simulator)", cand="received (clients)",
                           intro=f"{args.clients} clients, one combined stream each (`@trade` + `@aggTrade` of "
                                 f"every symbol), {args.rate:g} synthetic trades/s per symbol, {args.pairs} "
                                 f"consecutive {args.seconds:g} s windows; simulator on core 0, the clients "
                                 "(asyncio, this process) on core 1. Ratio = received ÷ sent per window.")
    sim = start_simulator(cfg, cpu=0)
    try:
        with report.row("messages per second", unit="msg/s", target="sent ≥ 20,000/s, ratio 1.00×") as row:
            symbols = [s["symbol"] for s in json.loads(urllib.request.urlopen(
                sim.base_url + "/api/v3/exchangeInfo").read())["symbols"]]
            try:
                import uvloop
                run = uvloop.run
            except ImportError:
                run = asyncio.run
            windows = run(measure(sim.ws_url, sim.base_url, symbols, args.clients, args.seconds, args.pairs))
            for w in windows:
                row.pair(w["sent_per_s"], w["received_per_s"])
            report.text(_table.markdown_table(
                ["window", "synthetic trades generated /s", "disconnects (cumulative)"],
                [[str(i), _table.fmt(w["trades_per_s"]), str(w["disconnects"])] for i, w in enumerate(windows, 1)]))
    finally:
        sim.stop()
    return report.finish(args)


if __name__ == "__main__":
    sys.exit(main())
