"""The harness's REST user on a signed endpoint (``GET /api/v3/openOrders``) for bench/harness_users.py:
the real MarketDataUser call path — pacing, signing, classification, header feedback."""
from letrade_perf.harness.plugin import ProfileShape, register_plugin
from letrade_perf.users.rest import MarketDataUser

register_plugin()


class SignedOpenOrders(MarketDataUser):
    def depth(self) -> None:   # the profile's only task ("depth") is this signed call
        self.call("GET", "/api/v3/openOrders", {"symbol": self.symbol})


class Shape(ProfileShape):
    """The bench profile's stage."""
