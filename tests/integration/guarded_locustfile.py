"""A user's own ccxt trading code under the harness's guard (``guarded_ccxt``).

Each step reads the book, places a resting LIMIT BUY far below the market and cancels every
second one itself; the rest stay open for the kill switch at the end. Its third step also tries
an order above ``safety.max_order_notional``, which the guard refuses before sending.
Counts of what the code saw are written to ``$GUARDED_OUT`` (one JSON line per user) on stop.
"""
import json
import os

from locust import User, constant, task

from letrade_perf.locustfile import BinanceProfileShape  # noqa: F401 - registers the plugin; the stages
from letrade_perf.users.guarded import OrderRefused, guarded_ccxt, measure

MARKET = "BTC/USDT"


class MyCcxtTrader(User):
    wait_time = constant(0.3)

    def on_start(self) -> None:
        self.exchange = guarded_ccxt(self)
        self.steps = self.placed = self.cancelled = self.refused = 0

    @task
    def step(self) -> None:
        ex = self.exchange
        self.steps += 1
        with measure(self, "my decision"):
            book = ex.fetch_order_book(MARKET, 5)
            price = float(ex.price_to_precision(MARKET, book["bids"][0][0] * 0.8))
        amount = float(ex.amount_to_precision(MARKET, 12 / price))
        order = ex.create_order(MARKET, "limit", "buy", amount, price)
        self.placed += 1
        if self.steps % 2 == 0:
            ex.cancel_order(order["id"], MARKET)
            self.cancelled += 1
        if self.steps == 3:
            try:
                ex.create_order(MARKET, "limit", "buy", amount * 10, price)     # ~120 USDT > max 20
            except OrderRefused:
                self.refused += 1

    def on_stop(self) -> None:
        out = os.environ.get("GUARDED_OUT")
        if out:
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"steps": self.steps, "placed": self.placed, "cancelled": self.cancelled,
                                     "refused": self.refused}) + "\n")
