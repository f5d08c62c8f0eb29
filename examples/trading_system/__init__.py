"""A small trading system shaped like a real user's — plain asyncio, no Locust.

It takes a ccxt *async* exchange object (``ccxt.async_support.binance`` or anything with the same
methods) and knows nothing about the load harness::

    exchange = ccxt.async_support.binance({...})
    connector = ExchangeConnector(exchange)
    engine = TradingEngine(connector, CapitalManager(max_position_quote=60, max_order_quote=50),
                           Reconciler(connector), [MaCrossStrategy(5, 20), MaCrossStrategy(3, 10)],
                           "BTC/USDT")
    await engine.start()
    while running:
        await engine.step()          # market data → signals → approve → order → fill → reconcile
    await engine.stop()              # cancel its open orders, close the exchange

``examples/locustfile_trading_system.py`` runs it, unmodified, under ``letrade-perf run``.
"""
from .capital import CapitalManager
from .connector import ExchangeConnector
from .engine import EngineStats, TradeResult, TradingEngine
from .reconcile import Reconciler, account_state
from .strategy import MaCrossStrategy

__all__ = ["CapitalManager", "EngineStats", "ExchangeConnector", "MaCrossStrategy", "Reconciler", "TradeResult",
           "TradingEngine", "account_state"]
