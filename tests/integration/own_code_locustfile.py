"""A user's own locustfile: a subclass of letrade-perf's market-data user with tasks of its own.

``my_server_time`` goes through the harness's paced call path (``self.call``); ``my_strategy``
stands for the user's own trading logic; ``on_stop`` reports one last measurement as the run ends. With ``OWN_CODE_RAISE=1`` that logic raises on every
user's second step (a bug in the user's code), which must fail the verdict.
"""
import os

from locust import task

from letrade_perf.locustfile import BinanceProfileShape  # noqa: F401 - registers the plugin; the stages
from letrade_perf.users.rest import MarketDataUser

RAISE = os.environ.get("OWN_CODE_RAISE") == "1"


class MyMarketData(MarketDataUser):
    steps = 0

    def on_stop(self) -> None:
        # a measurement at the very end of the run (what a stopping system's last order looks
        # like): it must reach the --csv stats as well as the summary
        self.fire("mine", "on_stop", 1.0)

    @task(3)
    def my_server_time(self) -> None:
        self.call("GET", "/api/v3/time", {})

    @task(1)
    def my_strategy(self) -> None:
        self.steps += 1
        if RAISE and self.steps == 2:
            raise ValueError("strategy bug")
        self.call("GET", "/api/v3/avgPrice", {"symbol": self.symbol})
