"""Target environments: one resolution of the three URLs a run talks to (reference §1).

An environment resolves to three URLs — REST, market streams, WebSocket API:

=============  ================================  =====================================  ================================================
env            REST                              market streams                         WebSocket API
=============  ================================  =====================================  ================================================
``production`` ``https://api.binance.com``       ``wss://stream.binance.com:9443``      ``wss://ws-api.binance.com:443/ws-api/v3``
``testnet``    ``https://testnet.binance.vision`` ``wss://stream.testnet.binance.vision`` ``wss://ws-api.testnet.binance.vision/ws-api/v3``
``sim``        ``http://H:P``                    ``ws://H:P``                           ``ws://H:P/ws-api/v3``
=============  ================================  =====================================  ================================================

A *host* (``--host``, a profile's ``target.host``) is a base from which all three derive the way
the simulator serves them: ``http://h:p`` → ``http://h:p``, ``ws://h:p`` and ``ws://h:p/ws-api/v3``
(``https`` → ``wss``). One exception: a host that is one of Binance's own documented REST hosts of
the environment (``api1.binance.com``, ``api1.testnet.binance.vision``, …) keeps the environment's
stream and WebSocket-API URLs, because Binance serves those elsewhere. Each URL can also be set on
its own (``rest_url``, ``stream_url``, ``ws_api_url``) for mirrors and proxies; an explicit URL wins
over the derived one. The production guard applies to all three: https/wss on ``binance.com`` or
one of its subdomains.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from .profile import TargetSettings

ENV_NAMES = ("sim", "testnet", "production")
WS_API_PATH = "/ws-api/v3"


@dataclass(frozen=True)
class Environment:
    """Where a run sends its requests: one environment resolved to its three URLs."""

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

    def urls(self) -> dict[str, str]:
        """The three URLs as recorded in ``run.json`` and ``summary.json``."""
        return {"rest": self.rest_url, "streams": self.ws_stream_url, "ws_api": self.ws_api_url}



PRODUCTION = Environment("production", "https://api.binance.com", "wss://stream.binance.com:9443",
                         "wss://ws-api.binance.com:443/ws-api/v3", True)
TESTNET = Environment("testnet", "https://testnet.binance.vision", "wss://stream.testnet.binance.vision",
                      "wss://ws-api.testnet.binance.vision/ws-api/v3", False)
OFFICIAL = {"production": PRODUCTION, "testnet": TESTNET}

#: Binance's documented REST hosts per environment: a ``--host`` naming one of them keeps the
#: environment's own stream and WebSocket-API URLs (Binance serves those on other hosts).
BINANCE_REST_HOSTS = {
    "production": frozenset({"api.binance.com", "api-gcp.binance.com", "api1.binance.com", "api2.binance.com",
                             "api3.binance.com", "api4.binance.com"}),
    "testnet": frozenset({"testnet.binance.vision", "api1.testnet.binance.vision"}),
}


def _split(url: str, what: str, schemes: tuple[str, ...], example: str) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{what}: expected a URL such as {example}, got {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{what}: expected a {'/'.join(schemes)} URL such as {example}, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{what}: a base URL has no query or fragment, got {url!r}")
    try:
        parts.port   # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError(f"{what}: bad port in {url!r}") from None
    return parts


def _strip_suffix(path: str, *suffixes: str) -> str:
    path = path.rstrip("/")
    for s in suffixes:
        if path.endswith(s):
            return path[: -len(s)].rstrip("/")
    return path


def normalise_rest(url: str, what: str = "REST URL") -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing ``/`` or ``/api/v3``."""
    p = _split(url, what, ("http", "https"), "http://127.0.0.1:8765")
    return f"{p.scheme}://{p.netloc}{_strip_suffix(p.path, '/api/v3')}"


def normalise_streams(url: str, what: str = "stream URL") -> str:
    """``ws(s)://host[:port][/prefix]`` without a trailing ``/``, ``/ws`` or ``/stream``."""
    p = _split(url, what, ("ws", "wss"), "wss://stream.binance.com:9443")
    return f"{p.scheme}://{p.netloc}{_strip_suffix(p.path, '/ws', '/stream')}"


def normalise_ws_api(url: str, what: str = "WebSocket API URL") -> str:
    """A full WebSocket API URL; a bare ``ws(s)://host[:port]`` gets ``/ws-api/v3``."""
    p = _split(url, what, ("ws", "wss"), "wss://ws-api.binance.com:443/ws-api/v3")
    path = p.path.rstrip("/") or WS_API_PATH
    return f"{p.scheme}://{p.netloc}{path}"


def _ws_of(rest_base: str) -> str:
    scheme, rest = rest_base.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest


def _check_production(env: Environment) -> None:
    for what, url, scheme, example in (
            ("REST URL", env.rest_url, "https", PRODUCTION.rest_url),
            ("stream URL", env.ws_stream_url, "wss", PRODUCTION.ws_stream_url),
            ("WebSocket API URL", env.ws_api_url, "wss", PRODUCTION.ws_api_url)):
        p = urlsplit(url)
        host = (p.hostname or "").lower()
        if p.scheme != scheme or not (host == "binance.com" or host.endswith(".binance.com")):
            raise ConfigError(f"production {what} must be a {scheme} binance.com host (e.g. {example}), got {url!r}")


def target_options(profile_target: TargetSettings | None, host: str | None = None, rest_url: str | None = None,
                   stream_url: str | None = None, ws_api_url: str | None = None) -> dict[str, str | None]:
    """The keyword arguments of :func:`environment` from the command line over a profile's
    ``target:`` block (``profile_target`` may be None): a command-line ``host`` replaces the whole
    block; otherwise each URL given on the command line replaces the block's one. ``run``,
    ``check`` and the Locust plugin all resolve through this."""
    out: dict[str, str | None] = {"host": host, "rest_url": rest_url, "stream_url": stream_url, "ws_api_url": ws_api_url}
    if host is None and profile_target is not None:
        for key in out:
            if out[key] is None:
                out[key] = getattr(profile_target, key)
    return out


def environment(name: str, host: str | None = None, *, rest_url: str | None = None,
                stream_url: str | None = None, ws_api_url: str | None = None) -> Environment:
    """Resolve ``name`` (``sim`` | ``testnet`` | ``production``) to its three URLs.

    ``host`` is a base from which all three derive (see the module docstring); ``rest_url``,
    ``stream_url`` and ``ws_api_url`` replace one URL each. ``sim`` needs a host or a REST URL
    (the caller starts an embedded simulator when it has neither). Raises :class:`ConfigError`
    naming the bad URL.
    """
    if name not in ENV_NAMES:
        raise ConfigError(f"unknown environment {name!r} (valid: {', '.join(ENV_NAMES)})")
    official = OFFICIAL.get(name)
    base = host if host is not None else (rest_url if name == "sim" else None)
    if base is not None:      # an empty string is a bad URL, never "the default"
        rest = normalise_rest(base, f"{name} host")
        host_name = (urlsplit(rest).hostname or "").lower()
        if official is not None and host_name in BINANCE_REST_HOSTS[name]:
            streams, ws_api = official.ws_stream_url, official.ws_api_url
        else:
            streams = _ws_of(rest)
            ws_api = streams + WS_API_PATH
    elif official is not None:
        rest, streams, ws_api = official.rest_url, official.ws_stream_url, official.ws_api_url
    else:
        raise ConfigError("environment 'sim' needs the simulator's URL (--host http://127.0.0.1:PORT)")
    if rest_url is not None:
        rest = normalise_rest(rest_url, f"{name} REST URL")
    if stream_url is not None:
        streams = normalise_streams(stream_url, f"{name} stream URL")
    if ws_api_url is not None:
        ws_api = normalise_ws_api(ws_api_url, f"{name} WebSocket API URL")
    env = Environment(name, rest, streams, ws_api, name == "production")
    if env.production:
        _check_production(env)
    return env
