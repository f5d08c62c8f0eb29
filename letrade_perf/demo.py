"""``letrade-perf demo``: a short, bounded tour of the embedded simulator.

Starts the simulator in its own process on a free loopback port, drives it the way a trading
system would — ccxt (unmodified ``binance`` class) for market data and orders, websocket-client
for a trade stream and the WebSocket API user-data stream — prints what it measured, and stops
the simulator. Exit 0 when every step worked, 1 otherwise.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field

from .binance.ccxt_compat import ccxt_binance
from .binance.signing import hmac_sha256, ws_api_payload
from .sim.config import DEMO_API_KEY, DEMO_SECRET
from .sim.process import start_simulator


@dataclass
class Step:
    name: str
    ok: bool
    ms: float
    detail: str = ""


@dataclass
class DemoReport:
    steps: list[Step] = field(default_factory=list)

    def run(self, name: str, fn):
        t0 = time.perf_counter()
        try:
            detail = fn()
            self.steps.append(Step(name, True, (time.perf_counter() - t0) * 1000, str(detail or "")))
        except Exception as e:  # the demo reports every failure and goes on
            self.steps.append(Step(name, False, (time.perf_counter() - t0) * 1000, f"{type(e).__name__}: {e}"))

    def render(self) -> str:
        w = max(len(s.name) for s in self.steps)
        lines = [f"{'step'.ljust(w)}  result  {'ms':>8}  detail", "-" * (w + 40)]
        for s in self.steps:
            lines.append(f"{s.name.ljust(w)}  {'ok' if s.ok else 'FAIL':6}  {s.ms:8.1f}  {s.detail}")
        ok = sum(s.ok for s in self.steps)
        lines.append(f"\n{ok}/{len(self.steps)} steps ok")
        return "\n".join(lines)


def _ws_trades(ws_url: str, seconds: float, clock_offset_ms: float) -> str:
    import websocket

    conn = websocket.create_connection(f"{ws_url}/stream?streams=btcusdt@trade/ethusdt@trade",
                                       timeout=5, skip_utf8_validation=True)
    lags = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            conn.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = json.loads(conn.recv())
            except websocket.WebSocketTimeoutException:
                break
            data = msg.get("data", {})
            if "E" in data:
                lags.append(time.time() * 1000 + clock_offset_ms - data["E"])
    finally:
        conn.close()
    if not lags:
        raise RuntimeError("no trade events received")
    return (f"{len(lags)} trade events in {seconds:.0f}s, lag avg {statistics.fmean(lags):.1f} ms, "
            f"max {max(lags):.1f} ms")


def _ws_user_data(ws_api_url: str, exchange, symbol: str) -> str:
    import websocket

    conn = websocket.create_connection(ws_api_url, timeout=5, skip_utf8_validation=True)
    try:
        params = {"apiKey": DEMO_API_KEY, "timestamp": int(time.time() * 1000)}
        params["signature"] = hmac_sha256(DEMO_SECRET, ws_api_payload(params))
        conn.send(json.dumps({"id": "sub", "method": "userDataStream.subscribe.signature", "params": params}))
        reply = json.loads(conn.recv())
        if reply.get("status") != 200:
            raise RuntimeError(f"subscribe failed: {reply}")
        t0 = time.perf_counter()
        exchange.create_order(symbol, "market", "buy", 0.001)
        kinds = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "outboundAccountPosition" not in kinds:
            msg = json.loads(conn.recv())
            if "event" in msg:
                ev = msg["event"]
                kinds.append(ev.get("e") + (f"/{ev['X']}" if ev.get("e") == "executionReport" else ""))
        return f"{' → '.join(kinds)} in {(time.perf_counter() - t0) * 1000:.1f} ms"
    finally:
        conn.close()


def run_demo(seconds: float = 3.0) -> int:
    sim = start_simulator()
    print(f"simulator started (pid {sim.pid}) at {sim.base_url}\n", flush=True)
    report = DemoReport()
    try:
        ex = ccxt_binance(sim.base_url, DEMO_API_KEY, DEMO_SECRET)
        sym = "BTC/USDT"
        offset = {"ms": 0.0}

        def clock():
            best = None
            for _ in range(5):
                t0 = time.time() * 1000
                server = ex.fetch_time()
                t1 = time.time() * 1000
                if best is None or t1 - t0 < best[0]:
                    best = (t1 - t0, server - (t0 + t1) / 2)
            offset["ms"] = best[1]
            return f"offset {best[1]:+.1f} ms ± {best[0] / 2:.1f} ms"

        report.run("clock offset (GET /api/v3/time ×5)", clock)
        report.run("load_markets", lambda: f"{len(ex.load_markets())} markets")
        report.run("fetch_ticker", lambda: f"last {ex.fetch_ticker(sym)['last']}")
        report.run("fetch_order_book", lambda: "best bid {} / ask {}".format(
            *(lambda b: (b['bids'][0][0], b['asks'][0][0]))(ex.fetch_order_book(sym, 5))))

        def ohlcv():
            since = ex.milliseconds() - 1500 * 60_000
            rows = []
            while len(rows) < 1500:
                page = ex.fetch_ohlcv(sym, "1m", since=since, limit=1000)
                if not page:
                    break
                rows += page
                since = page[-1][0] + 60_000
            gaps = sum(1 for a, b in zip(rows, rows[1:]) if b[0] - a[0] != 60_000)
            return f"{len(rows)} candles in {len(rows) // 1000 + 1} pages, {gaps} gaps"

        report.run("fetch_ohlcv 1m paging", ohlcv)
        report.run("fetch_balance", lambda: f"USDT free {ex.fetch_balance()['USDT']['free']}")

        def resting():
            price = ex.price_to_precision(sym, ex.fetch_ticker(sym)["bid"] * 0.95)
            o = ex.create_order(sym, "limit", "buy", 0.001, float(price))
            n = len(ex.fetch_open_orders(sym))
            ex.cancel_order(o["id"], sym)
            return f"order {o['id']} rested ({n} open), cancelled"

        report.run("limit order rest + cancel", resting)
        report.run("market buy", lambda: "filled {filled} @ {average}".format(**ex.create_order(sym, "market", "buy", 0.001)))
        report.run("fetch_my_trades", lambda: f"{len(ex.fetch_my_trades(sym))} trades")
        report.run(f"WS trade stream ({seconds:.0f}s)", lambda: _ws_trades(sim.ws_url, seconds, offset["ms"]))
        report.run("WS API user data (market buy)", lambda: _ws_user_data(sim.ws_api_url, ex, sym))
    finally:
        code = sim.stop()
    print(report.render())
    print(f"\nsimulator stopped (exit code {code})")
    return 0 if all(s.ok for s in report.steps) else 1
