"""letrade-perf's locustfile in a source checkout: ``locust -f locustfiles/binance.py --profile smoke``.

The users, the load shape and the plugin live in :mod:`letrade_perf.locustfile`; installed, the
same file is at ``letrade-perf paths locustfile``.
"""
from letrade_perf.locustfile import *  # noqa: F401,F403 - the users, the load shape and the plugin
