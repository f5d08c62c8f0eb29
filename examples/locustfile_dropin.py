"""Your own locustfile, with letrade-perf as a drop-in Locust plugin.

One import brings letrade-perf's users, its load shape and the plugin; ``--profile`` then
configures letrade-perf's users and drives the stages, and the classes below run beside them
untouched — their requests land in Locust's stats, the criteria (``request``, ``api_success``) and
the reports like every other request::

    locust -f examples/locustfile_dropin.py --profile smoke --headless
    letrade-perf run -f examples/locustfile_dropin.py --profile smoke

With env ``sim`` and no ``--host`` an embedded simulator is started and ``self.client`` points at
it; with ``--env testnet`` it points at the testnet's REST URL.
"""
from locust import HttpUser, between, task

from letrade_perf.locustfile import *  # noqa: F401,F403 - letrade-perf's users, load shape and plugin


class MyServerTime(HttpUser):
    """A user of your own: it polls the server time the way a trading system's heartbeat does."""

    wait_time = between(0.2, 0.5)

    @task
    def server_time(self) -> None:
        with self.client.get("/api/v3/time", name="my heartbeat GET /api/v3/time", catch_response=True) as r:
            if r.status_code != 200 or "serverTime" not in (r.json() if r.status_code == 200 else {}):
                r.failure(f"HTTP {r.status_code}")
