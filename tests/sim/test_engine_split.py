"""The engine's coordinator and its parts: public surface, and seeded runs that repeat exactly."""
from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

from letrade_perf.binance.errors import BinanceError
from letrade_perf.sim import engine
from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import DEMO_API_KEY, SimConfig
from letrade_perf.sim.events import EventHub
from letrade_perf.sim.params import Params
from letrade_perf.sim.stats import SimStats

START = 1_700_000_000_000


def _run(seed: int, steps: int = 200) -> list:
    cfg = SimConfig()
    cfg.seed = seed
    cfg.market.trades_per_second = 50.0
    clock = ManualClock(START)
    events = EventHub()
    log: list = []
    events.on_user(lambda a, e: log.append(("user", a, e)))
    events.on_book(lambda b: log.append(("book", dataclasses.asdict(b))))
    events.on_trade(lambda t: log.append(("trade", dataclasses.asdict(t))))
    ex = engine.Exchange(cfg, clock, events, SimStats())
    rng = random.Random(seed)
    for _ in range(steps):
        if rng.random() < 0.4:
            clock.advance(rng.choice([10, 100, 1000]))
            ex.tick(clock.now_ms())
            continue
        sym = rng.choice(ex.symbols())
        bid = Decimal(ex.depth(Params({"symbol": sym, "limit": "1"}))["bids"][0][0])
        rules = ex._syms[sym].rules
        tick = Decimal(rules.tick) / 10**8
        step = Decimal(rules.step) / 10**8
        price = (bid * Decimal(1 + rng.uniform(-0.001, 0.002)) / tick).quantize(Decimal(1)) * tick
        qty = (Decimal(20) * Decimal(rules.min_notional) / 10**8 / bid / step).quantize(Decimal(1)) * step
        p = {"symbol": sym, "side": rng.choice(["BUY", "SELL"]), "type": rng.choice(["LIMIT", "MARKET"]),
             "quantity": str(qty), "newOrderRespType": "FULL"}
        if p["type"] == "LIMIT":
            p.update(price=str(price), timeInForce=rng.choice(["GTC", "IOC"]))
        try:
            log.append(("order", ex.new_order(DEMO_API_KEY, Params(p))))
        except BinanceError as e:
            log.append(("error", e.code))
        log.append(("ticker", ex.ticker_24hr(Params({"symbol": sym}))))
    log.append(("open", ex.open_orders(DEMO_API_KEY, Params({}))))
    return log


def test_the_coordinator_keeps_its_public_surface():
    for name in ("exchange_info", "depth", "trades", "historical_trades", "agg_trades", "klines", "ui_klines",
                 "avg_price", "ticker_24hr", "ticker_price", "book_ticker", "account", "new_order", "test_order",
                 "get_order", "cancel_order", "open_orders", "cancel_open_orders", "all_orders", "my_trades",
                 "deposit", "balance", "tick", "symbols", "has_symbol", "top_of_book", "depth_snapshot",
                 "book_update_id", "ticker_values", "rolling_ticker_values", "current_kline", "last_trade_time",
                 "avg_price_value", "account_ids", "limits_changed"):
        assert callable(getattr(engine.Exchange, name)), name
    assert set(engine.Exchange.ROLLING_WINDOWS_MS) == {"1h", "4h", "1d"}
    for name in ("Exchange", "Order", "Account", "SymbolState"):
        assert hasattr(engine, name)


def test_a_seeded_run_repeats_exactly_and_seeds_differ():
    a = _run(11)
    assert a == _run(11)
    assert any(e[0] == "trade" for e in a) and any(e[0] == "order" for e in a)
    assert a != _run(12)
