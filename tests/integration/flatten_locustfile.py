"""Own code (the public API) left holding a position and a resting order when the run aborts.

One user, once: three MARKET BUYs of 18 USDT (one answered ``ACK``, without its executed
quantity: the flatten must look it up), one LIMIT BUY far under the market (it rests), then the
run aborts for safety (``environment.letrade.abort``, what a 418 or the kill switch's triggers
do). The profile's ``flatten: {on_abort: true, trade_back: true}`` must cancel the LIMIT and
sell the position back. ``$FLATTEN_OUT`` receives the client order ids the code placed.
"""
import json
import os
from decimal import ROUND_DOWN, Decimal

import gevent
from locust import User, constant, task

from letrade_perf.api import call, order
from letrade_perf.locustfile import BinanceProfileShape  # noqa: F401 - registers the plugin; the stages

SYMBOL = "BTCUSDT"


class PositionHolder(User):
    wait_time = constant(0.2)
    fixed_count = 1

    def on_start(self) -> None:
        self.done = False

    @task
    def step(self) -> None:
        if self.done:
            return
        self.done = True
        placed = []
        for resp_type in ("FULL", "ACK", "RESULT"):
            res = order(self, SYMBOL, "BUY", quote_order_qty=18, newOrderRespType=resp_type)
            placed.append({"cid": res.data.get("clientOrderId"), "ok": res.ok, "kind": "market"})
        book = call(self, "GET", "/api/v3/depth", {"symbol": SYMBOL, "limit": 5})
        price = (Decimal(book.data["bids"][0][0]) * Decimal("0.8")).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        qty = (Decimal(12) / price).quantize(Decimal("0.00001"), rounding=ROUND_DOWN)
        res = order(self, SYMBOL, "BUY", "LIMIT", quantity=qty, price=price)
        placed.append({"cid": res.data.get("clientOrderId"), "ok": res.ok, "kind": "limit"})
        out = os.environ.get("FLATTEN_OUT")
        if out:
            with open(out, "w", encoding="utf-8") as fh:
                json.dump(placed, fh)
        gevent.sleep(0.5)
        self.environment.letrade.abort("test: the kill switch trips")
