"""Bare Locust users: the baselines the harness's users are measured against (bench/harness_users.py).

Selected with ``BENCH_USER`` = ``rest`` | ``signed`` | ``ccxt`` | ``ws``; symbol and simulator
come from ``--host``. They do only what the request needs: no pacing, no validation, no events
beyond Locust's own request statistics (the WS loop counts messages, their lags and the first and
last receive times, and writes them at quit: a loop that falls behind keeps receiving a backlog
after the run's nominal end, so its rate is messages ÷ (last − first), not ÷ the run time).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

from locust import FastHttpUser, User, constant, events, task

from letrade_perf.binance.ccxt_compat import ccxt_binance
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET

KIND = os.environ.get("BENCH_USER", "rest")
OUT = os.environ.get("BENCH_OUT", "")
STREAMS = os.environ.get("BENCH_STREAMS", "btcusdt@trade")


class BareRest(FastHttpUser):
    wait_time = constant(0)
    abstract = KIND != "rest"

    @task
    def depth(self):
        self.client.get("/api/v3/depth?symbol=BTCUSDT&limit=5", name="GET /api/v3/depth")


class BareSigned(FastHttpUser):
    wait_time = constant(0)
    abstract = KIND != "signed"

    @task
    def open_orders(self):
        q = f"symbol=BTCUSDT&timestamp={int(time.time() * 1000)}"
        sig = hmac.new(DEMO_SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()
        self.client.get(f"/api/v3/openOrders?{q}&signature={sig}", name="GET /api/v3/openOrders",
                        headers={"X-MBX-APIKEY": DEMO_API_KEY})


class BareCcxt(User):
    wait_time = constant(0)
    abstract = KIND != "ccxt"

    def on_start(self):
        self.ex = ccxt_binance(self.host, DEMO_API_KEY, DEMO_SECRET)
        self.ex.load_markets()

    @task
    def order_book(self):
        t0 = time.perf_counter()
        exc = None
        try:
            self.ex.fetch_order_book("BTC/USDT", 5)
        except Exception as e:  # reported as a failure, like any Locust user would
            exc = e
        self.environment.events.request.fire(request_type="ccxt", name="ccxt fetch_order_book",
                                             response_time=(time.perf_counter() - t0) * 1000,
                                             response_length=0, exception=exc, context={})


_ws = {"messages": 0, "lags": [], "first": None, "last": None}   # first/last: receive times (epoch s)


class BareWs(User):
    wait_time = constant(1)
    abstract = KIND != "ws"

    def on_start(self):
        import gevent
        import websocket

        url = self.host.replace("http", "ws", 1) + "/stream?streams=" + STREAMS
        self.conn = websocket.create_connection(url, skip_utf8_validation=True, timeout=5)
        self.loop = gevent.spawn(self._recv)

    def _recv(self):
        conn = self.conn
        lags = _ws["lags"]
        while True:
            try:
                _, data = conn.recv_data()
            except Exception:
                return
            now = time.time() * 1000
            e = json.loads(data)["data"].get("E")
            _ws["messages"] += 1
            if _ws["first"] is None:
                _ws["first"] = now / 1000
            _ws["last"] = now / 1000
            if e is not None:
                lags.append(now - e)

    def on_stop(self):
        self.loop.kill()
        self.conn.close()

    @task
    def idle(self):
        pass


@events.quitting.add_listener
def _write(environment, **_kw):
    if OUT and KIND == "ws":
        with open(OUT, "w") as fh:
            json.dump(_ws, fh)
