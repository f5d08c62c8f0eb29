"""The Binance-compatible exchange simulator (aiohttp, its own process; never imports Locust)."""
