"""The factory a profile names to run this system with no locustfile (``users.own.factory``).

``examples/profiles/own-code.yaml``: ``factory: trading_system.factory:build``, ``path: ..``.
"""
from __future__ import annotations

from .capital import CapitalManager
from .connector import ExchangeConnector
from .engine import TradingEngine
from .reconcile import Reconciler
from .strategy import MaCrossStrategy


def build(exchange, symbol: str = "BTC/USDT") -> TradingEngine:
    """One instance of the system on ``exchange`` (a ccxt async binance), trading ``symbol``."""
    connector = ExchangeConnector(exchange)
    return TradingEngine(connector, CapitalManager(max_position_quote=60, max_order_quote=50), Reconciler(connector),
                         [MaCrossStrategy(5, 20, force_every_n=3), MaCrossStrategy(3, 10, force_every_n=4)], symbol,
                         order_quote=12.0)
