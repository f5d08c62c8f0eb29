"""A locustfile for tests/integration/test_aio_users.py: ``async def`` tasks through
:class:`letrade_perf.users.aio.AsyncTasksMixin`, one ``ccxt.async_support.binance`` per user
(created in the async ``on_start``, closed in the async ``on_stop``) against ``--host``.

``on_stop`` appends one JSON line per user to ``$LETRADE_AIO_TEST_DIR/users.jsonl``: its index,
how many ``fetch_ticker`` calls succeeded, the loop and thread it ran on, and that the exchange
was closed. At ``quit`` (after every user stopped) the final request stats go to
``$LETRADE_AIO_TEST_DIR/final_stats.json`` (the CSV is a periodic snapshot).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading

import ccxt.async_support as ccxt_async
from locust import User, constant, events, task

from letrade_perf.binance.ccxt_compat import ccxt_binance
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET
from letrade_perf.users.aio import AsyncTasksMixin

OUT_DIR = os.environ["LETRADE_AIO_TEST_DIR"]
OUT = os.path.join(OUT_DIR, "users.jsonl")
SYMBOLS = ("BTC/USDT", "ETH/USDT")
_index = itertools.count()


@events.init.add_listener
def _dump_final_stats_at_quit(environment, **_kw):
    @environment.events.quit.add_listener
    def _dump(**_kw2):
        stats = {e.name: {"requests": e.num_requests, "failures": e.num_failures}
                 for e in environment.runner.stats.entries.values()}
        with open(os.path.join(OUT_DIR, "final_stats.json"), "w") as f:
            json.dump(stats, f)


class AsyncCcxtUser(AsyncTasksMixin, User):
    wait_time = constant(0.2)
    aio_timeout = 20.0

    async def on_start(self):
        self.index = next(_index)
        self.calls = 0
        self.exchange = ccxt_binance(self.host, DEMO_API_KEY, DEMO_SECRET, module=ccxt_async)
        self.exchange.timeout = 10_000
        await self.measure("load_markets", self.exchange.load_markets())

    @task
    async def ticker(self):
        symbol = SYMBOLS[self.index % len(SYMBOLS)]
        t = await self.measure("fetch_ticker", self.exchange.fetch_ticker(symbol))
        assert t["symbol"] == symbol and t["bid"] < t["ask"]
        self.calls += 1

    async def on_stop(self):
        await self.exchange.close()
        session = getattr(self.exchange, "session", None)
        record = {"user": self.index, "calls": self.calls, "loop": id(asyncio.get_running_loop()),
                  "thread": threading.get_ident(), "closed": session is None or session.closed}
        with open(OUT, "a") as f:
            f.write(json.dumps(record) + "\n")
