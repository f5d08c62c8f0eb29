"""WebSocket fan-out of one simulator process: messages per second sent to many subscribers.

The simulator (pinned to core 0) generates synthetic trades on every symbol; N clients
(asyncio on core 1) each subscribe to ``<symbol>@trade`` and ``<symbol>@aggTrade`` of every
symbol through one combined stream. Over a fixed window it reads the simulator's own ground
truth (``/_sim/stats``: messages sent) and the clients' received counts, and prints msg/s and
the ratio received/sent.

    .venv/bin/python bench/sim_ws_fanout.py [--clients 16] [--rate 200] [--seconds 10]
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


async def measure(base_ws: str, base_http: str, symbols: list[str], clients: int, seconds: float) -> dict:
    streams = "/".join(f"{s.lower()}@{k}" for s in symbols for k in ("trade", "aggTrade"))
    url = f"{base_ws}/stream?streams={streams}"
    counter = [0]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(url, counter, stop)) for _ in range(clients)]
    await asyncio.sleep(2.0)                       # connect and warm up
    s0, c0, t0 = stats(base_http), counter[0], time.perf_counter()
    await asyncio.sleep(seconds)
    s1, c1, t1 = stats(base_http), counter[0], time.perf_counter()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = t1 - t0
    sent = s1["ws"]["messages_total"] - s0["ws"]["messages_total"]
    return {"sent_per_s": sent / elapsed, "received_per_s": (c1 - c0) / elapsed,
            "trades_per_s": (s1["orders"]["synthetic_trades"] - s0["orders"]["synthetic_trades"]) / elapsed,
            "disconnects": s1["ws"]["disconnects"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rate", type=float, default=200.0, help="synthetic trades per second per symbol")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    os.sched_setaffinity(0, {1})
    cfg = {"market": {"trades_per_second": args.rate},
           "limits": {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9,
                      "ws_connections_per_5m": 10**6}}
    sim = start_simulator(cfg, cpu=0)
    try:
        symbols = [s["symbol"] for s in json.loads(urllib.request.urlopen(
            sim.base_url + "/api/v3/exchangeInfo").read())["symbols"]]
        try:
            import uvloop
            run = uvloop.run
        except ImportError:
            run = asyncio.run
        r = run(measure(sim.ws_url, sim.base_url, symbols, args.clients, args.seconds))
    finally:
        sim.stop()
    print(f"\nWebSocket fan-out, simulator on one core, {args.clients} clients × {2 * len(symbols)} streams, "
          f"{args.rate:g} synthetic trades/s per symbol, {args.seconds:g}s window\n")
    print("| figure | value |")
    print("|---|---:|")
    print(f"| synthetic trades generated /s | {r['trades_per_s']:,.0f} |")
    print(f"| messages sent /s (simulator ground truth) | {r['sent_per_s']:,.0f} |")
    print(f"| messages received /s (clients) | {r['received_per_s']:,.0f} |")
    print(f"| received / sent | {r['received_per_s'] / max(r['sent_per_s'], 1):.2f}× |")
    print(f"| disconnects | {r['disconnects'] or 0} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
