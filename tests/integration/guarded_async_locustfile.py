"""The asyncio form of ``guarded_locustfile.py``: the same steps written with
``ccxt.async_support`` on the harness's process loop (``AsyncTasksMixin``, ``guarded_ccxt_async``)."""
import json
import os

from locust import User, constant, task

from letrade_perf.locustfile import BinanceProfileShape  # noqa: F401 - registers the plugin; the stages
from letrade_perf.users.aio import AsyncTasksMixin
from letrade_perf.users.guarded import OrderRefused, guarded_ccxt_async

MARKET = "BTC/USDT"


class MyAsyncCcxtTrader(AsyncTasksMixin, User):
    wait_time = constant(0.3)
    aio_timeout = 30

    async def on_start(self) -> None:
        self.exchange = await guarded_ccxt_async(self)
        self.steps = self.placed = self.cancelled = self.refused = 0

    @task
    async def step(self) -> None:
        ex = self.exchange
        self.steps += 1
        book = await self.measure("my decision", ex.fetch_order_book(MARKET, 5), request_type="user")
        price = float(ex.price_to_precision(MARKET, book["bids"][0][0] * 0.8))
        amount = float(ex.amount_to_precision(MARKET, 12 / price))
        order = await ex.create_order(MARKET, "limit", "buy", amount, price)
        self.placed += 1
        if self.steps % 2 == 0:
            await ex.cancel_order(order["id"], MARKET)
            self.cancelled += 1
        if self.steps == 3:
            try:
                await ex.create_order(MARKET, "limit", "buy", amount * 10, price)     # ~120 USDT > max 20
            except OrderRefused:
                self.refused += 1

    async def on_stop(self) -> None:
        await self.exchange.close()
        out = os.environ.get("GUARDED_OUT")
        if out:
            with open(out, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"steps": self.steps, "placed": self.placed, "cancelled": self.cancelled,
                                     "refused": self.refused}) + "\n")
