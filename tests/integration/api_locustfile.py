"""A user's own trading code on the public API (``letrade_perf.api``), in both forms.

``$API_USER`` picks the user class: ``sync`` (a plain Locust ``User``: ``call``, ``order``,
``timer``, ``measure``) or ``async`` (an ``AsyncTasksMixin`` user: ``await acall``, ``await aorder``,
and ``timer`` / ``measure`` inside the coroutine). Both do the same steps:

* first step only: one timer stopped with an error (a failure in the stats), and one MARKET BUY
  of 500 USDT, above ``safety.max_order_notional`` — refused before sending (``OrderRefused``);
* every step: ``GET /api/v3/depth`` inside ``measure("api decision")``; a MARKET BUY of 12 USDT;
  a resting LIMIT BUY far under the market inside ``timer("api reconcile")``; every second
  LIMIT is cancelled by the code itself (``DELETE /api/v3/order``), the rest are left for the
  kill switch.

With ``$API_STEPS`` each user does that many steps and then idles, so the end of the run stops
no user inside a call and every count is exact. What the code counted is written to
``$API_OUT`` (one JSON line per user) on stop; ``attempted`` is counted *before* an order is
handed to the API and ``placed`` after its answer.
"""
import json
import os
from decimal import ROUND_DOWN, Decimal

from locust import User, constant, task

from letrade_perf.api import AsyncTasksMixin, OrderRefused, acall, aorder, call, measure, order, timer
from letrade_perf.locustfile import BinanceProfileShape  # noqa: F401 - registers the plugin; the stages

SYMBOL = "BTCUSDT"
MODE = os.environ.get("API_USER", "sync")
#: steps per user, then the user idles (0: no bound). Bounded, the run stops no user inside a call
MAX_STEPS = int(os.environ.get("API_STEPS", "0"))
COUNTS = ("steps", "decisions", "reconciles", "failed_timers", "attempted", "placed", "market", "limit",
          "cancelled", "refused")


def _limit(book) -> tuple[str, str]:
    """(price, quantity) of a ~12 USDT LIMIT BUY at 80 % of the best bid: rests on the book."""
    price = (Decimal(book.data["bids"][0][0]) * Decimal("0.8")).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    qty = (Decimal(12) / price).quantize(Decimal("0.00001"), rounding=ROUND_DOWN)
    return str(price), str(qty)


def _write(counts: dict) -> None:
    out = os.environ.get("API_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(counts) + "\n")


def _depth(res):
    if not res.ok or not res.data.get("bids"):
        raise RuntimeError(f"depth failed: {res.describe()}")
    return res


class ApiTrader(User):
    abstract = MODE != "sync"
    wait_time = constant(0.3)

    def on_start(self) -> None:
        self.n = dict.fromkeys(COUNTS, 0)

    @task
    def step(self) -> None:
        n = self.n
        if MAX_STEPS and n["steps"] >= MAX_STEPS:
            return
        n["steps"] += 1
        if n["steps"] == 1:
            timer(self, "api failing step").stop(error="deliberate failure")
            n["failed_timers"] += 1
            try:
                order(self, SYMBOL, "BUY", quote_order_qty=500)          # > safety.max_order_notional 20
            except OrderRefused:
                n["refused"] += 1
        with measure(self, "api decision"):
            book = _depth(call(self, "GET", "/api/v3/depth", {"symbol": SYMBOL, "limit": 5}))
        n["decisions"] += 1
        n["attempted"] += 1
        res = order(self, SYMBOL, "BUY", quote_order_qty=12)
        if res.ok:
            n["placed"] += 1
            n["market"] += 1
        price, qty = _limit(book)
        t = timer(self, "api reconcile")
        n["attempted"] += 1
        res = order(self, SYMBOL, "BUY", "LIMIT", quantity=qty, price=price)
        t.stop(None if res.ok else res.describe())
        n["reconciles"] += 1
        if res.ok:
            n["placed"] += 1
            n["limit"] += 1
            if n["limit"] % 2 == 0:
                cancel = call(self, "DELETE", "/api/v3/order", {"symbol": SYMBOL, "orderId": res.data["orderId"]})
                n["cancelled"] += cancel.ok

    def on_stop(self) -> None:
        _write({"user": "sync", **self.n})


class AsyncApiTrader(AsyncTasksMixin, User):
    abstract = MODE != "async"
    wait_time = constant(0.3)
    aio_timeout = 30

    async def on_start(self) -> None:
        self.n = dict.fromkeys(COUNTS, 0)

    @task
    async def step(self) -> None:
        n = self.n
        if MAX_STEPS and n["steps"] >= MAX_STEPS:
            return
        n["steps"] += 1
        if n["steps"] == 1:
            timer(self, "api failing step").stop(error="deliberate failure")
            n["failed_timers"] += 1
            try:
                await aorder(self, SYMBOL, "BUY", quote_order_qty=500)    # > safety.max_order_notional 20
            except OrderRefused:
                n["refused"] += 1
        with measure(self, "api decision"):
            book = _depth(await acall(self, "GET", "/api/v3/depth", {"symbol": SYMBOL, "limit": 5}))
        n["decisions"] += 1
        n["attempted"] += 1
        res = await aorder(self, SYMBOL, "BUY", quote_order_qty=12)
        if res.ok:
            n["placed"] += 1
            n["market"] += 1
        price, qty = _limit(book)
        t = timer(self, "api reconcile")
        n["attempted"] += 1
        res = await aorder(self, SYMBOL, "BUY", "LIMIT", quantity=qty, price=price)
        t.stop(None if res.ok else res.describe())
        n["reconciles"] += 1
        if res.ok:
            n["placed"] += 1
            n["limit"] += 1
            if n["limit"] % 2 == 0:
                cancel = await acall(self, "DELETE", "/api/v3/order",
                                     {"symbol": SYMBOL, "orderId": res.data["orderId"]})
                n["cancelled"] += cancel.ok

    async def on_stop(self) -> None:
        _write({"user": "async", **self.n})
