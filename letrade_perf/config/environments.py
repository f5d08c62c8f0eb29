"""Target environments and their base URLs (reference §1).

``production`` and ``testnet`` are Binance's; ``sim`` is the built-in simulator at a URL the
caller gives (``http://127.0.0.1:PORT``), from which the stream and WebSocket-API URLs follow.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError

ENV_NAMES = ("sim", "testnet", "production")


@dataclass(frozen=True)
class Environment:
    """Where a run sends its requests."""

    name: str
    """``sim``, ``testnet`` or ``production``."""
    rest_url: str
    """REST base URL without ``/api/v3`` (``https://api.binance.com``)."""
    ws_stream_url: str
    """Market-stream base for ``/ws/<stream>`` and ``/stream?streams=`` (``wss://stream.binance.com:9443``)."""
    ws_api_url: str
    """Full WebSocket API URL (``wss://ws-api.binance.com:443/ws-api/v3``)."""
    production: bool
    """True for real money: orders are guarded by the profile's safety settings."""

    def stream_url(self, *streams: str) -> str:
        """A raw (one stream) or combined (several) stream URL."""
        if len(streams) == 1:
            return f"{self.ws_stream_url}/ws/{streams[0]}"
        return f"{self.ws_stream_url}/stream?streams={'/'.join(streams)}"


PRODUCTION = Environment("production", "https://api.binance.com", "wss://stream.binance.com:9443",
                         "wss://ws-api.binance.com:443/ws-api/v3", True)
TESTNET = Environment("testnet", "https://testnet.binance.vision", "wss://stream.testnet.binance.vision",
                      "wss://ws-api.testnet.binance.vision/ws-api/v3", False)


def _normalise(url: str, what: str) -> tuple[str, str, str]:
    """(base URL without a trailing ``/`` or ``/api/v3``, scheme, host) — or a ConfigError."""
    base = url.strip().rstrip("/")
    if base.endswith("/api/v3"):
        base = base[: -len("/api/v3")]
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what}: expected an http(s) base URL such as http://127.0.0.1:8765, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{what}: a base URL has no query or fragment, got {url!r}")
    return base, parts.scheme, parts.hostname.lower()


def environment(name: str, rest_url: str | None = None) -> Environment:
    """The environment ``name`` (``sim`` | ``testnet`` | ``production``), optionally with another REST URL.

    ``sim`` needs ``rest_url``; its stream and WebSocket-API URLs are derived from it. A production
    override must be an https ``binance.com`` host (``api1.binance.com``, ``api-gcp.binance.com``).
    """
    if name not in ENV_NAMES:
        raise ConfigError(f"unknown environment {name!r} (valid: {', '.join(ENV_NAMES)})")
    if name == "sim":
        if not rest_url:
            raise ConfigError("environment 'sim' needs the simulator's URL (--host http://127.0.0.1:PORT)")
        base, scheme, _ = _normalise(rest_url, "sim host")
        ws = ("wss" if scheme == "https" else "ws") + base[len(scheme):]
        return Environment("sim", base, ws, ws + "/ws-api/v3", False)
    fixed = PRODUCTION if name == "production" else TESTNET
    if not rest_url:
        return fixed
    base, scheme, host = _normalise(rest_url, f"{name} host")
    if name == "production" and (scheme != "https" or not (host == "binance.com" or host.endswith(".binance.com"))):
        raise ConfigError(f"production host must be an https binance.com host (e.g. https://api1.binance.com), "
                          f"got {rest_url!r}")
    return Environment(name, base, fixed.ws_stream_url, fixed.ws_api_url, fixed.production)
