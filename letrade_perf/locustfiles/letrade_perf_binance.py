"""letrade-perf's locustfile as installed: ``locust -f "$(letrade-perf paths locustfile)" --profile smoke``."""
from letrade_perf.locustfile import *  # noqa: F401,F403 - the users, the load shape and the plugin
