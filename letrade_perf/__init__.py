"""letrade-perf: load, latency and acceptance harness for the Binance Spot API, built on Locust."""

__version__ = "0.1.0"
