"""A user's own asyncio trading system (``examples/trading_system``) under ``letrade-perf run``.

    letrade-perf run -f examples/locustfile_trading_system.py --profile examples/profiles/trading-system.yaml

Each Locust user is one instance of the system — connector, capital manager, reconciler and two
MA-crossover strategies on BTC/USDT — built on the harness's guarded ccxt exchange, so every
request it sends is paced, measured per endpoint, safety-checked and ledger-tracked. The system's
code is unmodified; this file only wires it in and reports what it did:

* ``pipeline`` ``signal→order→fill`` — per placed order, decision → order → fill → reconciled
  (judged by the profile's ``pipeline`` criterion);
* ``reconciliation`` ``order+balance`` — per placed order; a mismatch is a failure (judged by
  ``reconciliation rate==100%``);
* ``user`` ``engine step`` — one whole step (market data, signals, trades).

Environment (a profile's ``users:`` section configures letrade-perf's own user kinds only):

* ``TS_MODE`` — ``market`` (default: MARKET orders), ``resting`` (LIMIT bids 15 % under the
  market, left open on stop for the harness's kill switch) or ``observe`` (signals, no orders);
* ``TS_OVERSIZED=1`` — each engine's first order is 30 USDT: inside the system's own capital
  limit (50) but above the profile's ``safety.max_order_notional`` (20), so the harness refuses it
  (``OrderRefused``) before it is sent; the engine counts it and keeps trading;
* ``TS_WAIT`` — seconds between steps (default 1); ``TS_OUT`` — a file each user appends its
  counters to (JSON lines) when it stops.
"""
import json
import os
import sys

from locust import User, constant, task

from letrade_perf.api import AsyncTasksMixin, guarded_ccxt_async
from letrade_perf.locustfile import BinanceProfileShape  # noqa: F401 - registers the plugin; the profile's stages

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trading_system import CapitalManager, ExchangeConnector, MaCrossStrategy, Reconciler, TradingEngine  # noqa: E402

SYMBOL = "BTC/USDT"
PIPELINE = "signal→order→fill"
RECONCILIATION = "order+balance"


class ReconciliationMismatch(Exception):
    pass


class PipelineFailed(Exception):
    pass


class TradingSystemUser(AsyncTasksMixin, User):
    wait_time = constant(float(os.environ.get("TS_WAIT", "1.0")))
    aio_timeout = 90        # bounds every bridged call; a weight-bound run may wait ~1 min for budget
    mode = os.environ.get("TS_MODE", "market")
    oversized_quote = 30.0 if os.environ.get("TS_OVERSIZED") == "1" else None

    async def on_start(self) -> None:
        self.engine = None
        connector = ExchangeConnector(await guarded_ccxt_async(self))
        engine = TradingEngine(
            connector,
            CapitalManager(max_position_quote=60, max_order_quote=50),
            Reconciler(connector),
            [MaCrossStrategy(5, 20, force_every_n=3), MaCrossStrategy(3, 10, force_every_n=4)],
            SYMBOL, mode=self.mode, order_quote=12.0, oversized_quote=self.oversized_quote,
            cancel_on_stop=self.mode != "resting")
        try:
            await engine.start()
        except BaseException:
            await connector.close()
            raise
        self.engine = engine

    @task
    async def step(self) -> None:
        try:
            await self.measure("engine step", self.engine.step(), request_type="user")
        finally:
            self._report()

    async def on_stop(self) -> None:
        if self.engine is None:
            return
        try:
            await self.engine.stop()
        finally:
            self._report()
            out = os.environ.get("TS_OUT")
            if out:
                with open(out, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(self.engine.stats_dict()) + "\n")

    def _report(self) -> None:
        for r in self.engine.drain_results():
            if r.placed or r.outcome == "error":
                failure = None if r.outcome == "reconciled" else PipelineFailed(r.error or "; ".join(r.problems))
                self.fire_request(PIPELINE, r.elapsed_ms, request_type="pipeline", exception=failure)
            if r.placed:
                mismatch = ReconciliationMismatch("; ".join(r.problems)) if r.problems else None
                self.fire_request(RECONCILIATION, r.reconcile_ms, request_type="reconciliation", exception=mismatch)
