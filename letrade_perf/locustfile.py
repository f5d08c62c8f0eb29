"""letrade-perf's Locust users, load shape and plugin — import this from any locustfile.

``locust -f "$(letrade-perf paths locustfile)" --profile smoke`` (or ``letrade-perf run``) loads
a file that only does ``from letrade_perf.locustfile import *``. Your own locustfile can do the
same next to its own user classes (a drop-in plugin): ``--profile`` then configures these
users and drives the stages, and your classes run beside them, untouched::

    from locust import HttpUser, task
    from letrade_perf.locustfile import *   # noqa: F401,F403 - letrade-perf's users, shape and plugin

    class MyApi(HttpUser):
        @task
        def ping(self):
            self.client.get("/api/v3/ping")

``--profile`` names a bundled profile (``letrade-perf profiles``) or a YAML file; with env
``sim`` and no ``--host`` the embedded simulator is started. The profile decides which of the
users below run, how many, and how long (``ProfileShape``). Distributed: every worker needs the
same ``--profile`` and target options (``letrade-perf run --workers N`` passes them).
"""
from letrade_perf.harness.plugin import ProfileShape, register_plugin
from letrade_perf.users.ccxt_user import CcxtUser
from letrade_perf.users.errorpaths import ErrorPathUser
from letrade_perf.users.own import OwnCodeUser
from letrade_perf.users.pipeline import TradingPipelineUser
from letrade_perf.users.rest import MarketDataUser
from letrade_perf.users.ws import WsStreamUser

__all__ = ["RestMarketData", "CcxtTrader", "WsStreams", "TradingPipeline", "OwnCode", "ErrorPaths", "BinanceProfileShape"]

register_plugin()


class RestMarketData(MarketDataUser):
    """REST market data: depth, paged klines (integrity-checked), trades, tickers."""


class CcxtTrader(CcxtUser):
    """The same through ccxt's binance class (plus optional orders)."""


class WsStreams(WsStreamUser):
    """Combined market streams with lag per stream."""


class TradingPipeline(TradingPipelineUser):
    """Signal → order → fill on the user-data stream → reconciliation."""


class OwnCode(OwnCodeUser):
    """Your own trading code, built by the profile's ``users.own.factory``."""


class ErrorPaths(ErrorPathUser):
    """Requests the exchange must reject (error-path scenarios), each classified by its code."""


class BinanceProfileShape(ProfileShape):
    """The profile's stages."""


#: The user-kind registry: a profile's ``users.<kind>`` → the user class that runs it. A kind's
#: settings class is the type of ``UserMix.<kind>`` (letrade_perf.config.profile); its user reads
#: them, frozen, from ``settings`` (the plugin sets it). Adding a kind: its settings class and
#: ``UserMix`` field, its user module (``letrade_kind``, ``settings``), its class here.
USER_KINDS = {cls.letrade_kind: cls for cls in (RestMarketData, CcxtTrader, WsStreams, TradingPipeline, OwnCode,
                                                 ErrorPaths)}
