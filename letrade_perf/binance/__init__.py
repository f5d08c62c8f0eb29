"""Binance Spot protocol knowledge shared by the harness and the simulator.

Endpoint table with weights, error codes, signing, rate-limit headers, kline intervals and
stream names. Imports neither Locust nor aiohttp.
"""
from .endpoints import DEFAULT_RATE_LIMITS, ENDPOINTS, WS_API_METHODS, Endpoint, endpoint
from .errors import BinanceError, error

__all__ = ["DEFAULT_RATE_LIMITS", "ENDPOINTS", "WS_API_METHODS", "Endpoint", "endpoint",
           "BinanceError", "error"]
