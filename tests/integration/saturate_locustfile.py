"""A generator saturated on purpose: each user's task burns about 20 ms of CPU in a tight loop
(no yield) before a paced request, so three users keep the Locust process's one core busy and
every greenlet — the self-monitor's lag probe and the requests' own timers — wakes late."""
import time

from locust import task

from letrade_perf.locustfile import BinanceProfileShape  # noqa: F401 - registers the plugin; the stages
from letrade_perf.users.rest import MarketDataUser

BURN_S = 0.02


class BurningUser(MarketDataUser):
    @task
    def burn_then_ask(self) -> None:
        end = time.perf_counter() + BURN_S
        n = 0
        while time.perf_counter() < end:     # the CPU-bound work of a user that does too much
            n += 1
        self.call("GET", "/api/v3/time", {})
