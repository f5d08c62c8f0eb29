"""Binance Spot load, latency and acceptance run — ``locust -f locustfiles/binance.py --profile smoke``.

``--profile`` names a bundled profile (``letrade-perf profiles``) or a YAML file; with env
``sim`` and no ``--host`` the embedded simulator is started. The profile decides which of the
users below run, how many, and how long (``ProfileShape``). Distributed: every worker needs
``--host`` and the same ``--profile`` (``letrade-perf run --workers N`` passes both).
"""
from letrade_perf.plugin import ProfileShape, register_plugin
from letrade_perf.users.ccxt_user import CcxtUser
from letrade_perf.users.pipeline import TradingPipelineUser
from letrade_perf.users.rest import MarketDataUser
from letrade_perf.users.ws import WsStreamUser

register_plugin()


class RestMarketData(MarketDataUser):
    """REST market data: depth, paged klines (integrity-checked), trades, tickers."""


class CcxtTrader(CcxtUser):
    """The same through ccxt's binance class (plus optional orders)."""


class WsStreams(WsStreamUser):
    """Combined market streams with lag per stream."""


class TradingPipeline(TradingPipelineUser):
    """Signal → order → fill on the user-data stream → reconciliation."""


class BinanceProfileShape(ProfileShape):
    """The profile's stages."""
