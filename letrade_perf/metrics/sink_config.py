"""Where the InfluxDB sink writes: :class:`SinkConfig` from the profile's ``sink:`` section, the
``LETRADE_INFLUX_*`` environment variables and ``letrade-perf run --influx-*`` (in that order of
increasing precedence). The token only ever comes from the environment and is registered as a secret."""
from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ..core.errors import ConfigError
from ..core.secrets import register_secret

if TYPE_CHECKING:
    from ..config.profile import SinkSettings

ENV_URL = "LETRADE_INFLUX_URL"
ENV_TOKEN = "LETRADE_INFLUX_TOKEN"
ENV_ORG = "LETRADE_INFLUX_ORG"
ENV_BUCKET = "LETRADE_INFLUX_BUCKET"
ENV_MODE = "LETRADE_INFLUX_MODE"
ENV_INTERVAL = "LETRADE_INFLUX_INTERVAL"
MODES = ("aggregate", "raw")

# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class SinkConfig:
    """Where and how the sink writes. Built by :func:`resolve_sink_config`."""

    url: str
    """InfluxDB base URL (``http://127.0.0.1:8086``)."""
    token: str | None = field(default=None, repr=False)
    """API token (2.x/3.x), ``user:password`` (1.8) or None; read only from the environment."""
    org: str = "letrade"
    """Organisation (2.x/3.x; ignored by 1.x)."""
    bucket: str = "letrade_perf"
    """Bucket (2.x/3.x), ``database/retention_policy`` or ``database`` (1.8)."""
    mode: str = "aggregate"
    """``aggregate``: points per interval; ``raw``: also one point per sample."""
    interval_s: float = 5.0
    """Aggregation interval."""
    batch_size: int = 1000
    """Most points in one write request."""
    max_buffer_points: int = 100_000
    """Most points held; beyond it the oldest are dropped and counted."""
    timeout_s: float = 5.0
    """Timeout of one write request."""
    max_tag_values: int = 200
    """Distinct ``name`` / ``stream`` values per measurement; further values become ``(other)``."""
    flush_every_s: float = 1.0
    """The writer sends what is buffered at least this often (sooner when a batch is full)."""
    backoff_initial_s: float = 0.5
    """First retry delay after a failed write; doubles per failure."""
    backoff_max_s: float = 8.0
    """Largest retry delay."""
    token_env: str = ENV_TOKEN
    """The environment variable the token came from (for messages)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.batch_size < 1 or self.max_buffer_points < self.batch_size:
            raise ValueError("need 1 <= batch_size <= max_buffer_points")
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise ValueError("interval_s and timeout_s must be > 0")

    @property
    def display_url(self) -> str:
        """The URL without any user information (safe to print)."""
        return display_url(self.url)

    def __repr__(self) -> str:       # no token, no password in the URL
        return (f"SinkConfig(url={self.display_url!r}, org={self.org!r}, bucket={self.bucket!r}, "
                f"mode={self.mode!r}, interval_s={self.interval_s!r}, batch_size={self.batch_size!r}, "
                f"max_buffer_points={self.max_buffer_points!r}, timeout_s={self.timeout_s!r}, "
                f"token_env={self.token_env!r})")


def display_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_OVERRIDE_KEYS = ("url", "org", "bucket", "mode", "interval_s")


def resolve_sink_config(profile_sink: SinkSettings | None = None, environ: Mapping[str, str] | None = None,
                        overrides: Mapping[str, Any] | None = None) -> SinkConfig | None:
    """The sink's configuration, or None when no InfluxDB URL is configured anywhere.

    Precedence per setting: ``overrides`` (command line) > environment variables
    (:data:`ENV_URL`, :data:`ENV_ORG`, :data:`ENV_BUCKET`, :data:`ENV_MODE`, :data:`ENV_INTERVAL`)
    > the profile's ``sink:`` section (a :class:`~letrade_perf.config.profile.SinkSettings`) >
    defaults. The token comes only from the environment variable ``sink.token_env`` (default
    :data:`ENV_TOKEN`) and is registered for masking. Bad values raise :class:`ConfigError`
    naming the key or variable."""
    environ = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "")}
    unknown = sorted(set(overrides) - set(_OVERRIDE_KEYS))
    if unknown:
        raise ConfigError(f"sink: unknown option(s) {', '.join(unknown)} (known: {', '.join(_OVERRIDE_KEYS)})")
    ps = profile_sink

    def pick(key: str, env_var: str, profile_attr: str, default: Any) -> tuple[Any, str]:
        if key in overrides:
            return overrides[key], f"--influx-{key.replace('_s', '').replace('_', '-')}"
        if environ.get(env_var, "").strip():
            return environ[env_var].strip(), env_var
        value = getattr(ps, profile_attr, None) if ps is not None else None
        if value is not None:
            return value, f"sink.{profile_attr}"
        return default, f"sink.{profile_attr}"

    url, url_src = pick("url", ENV_URL, "influx_url", None)
    if not url:
        return None
    url = str(url).strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        register_secret(parts.password)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url_src}: expected an http(s) URL such as http://127.0.0.1:8086, "
                          f"got {display_url(url)!r}")
    org, _ = pick("org", ENV_ORG, "org", "letrade")
    bucket, bucket_src = pick("bucket", ENV_BUCKET, "bucket", "letrade_perf")
    if not str(bucket).strip():
        raise ConfigError(f"{bucket_src}: must not be empty")
    mode, mode_src = pick("mode", ENV_MODE, "mode", "aggregate")
    mode = str(mode).strip().lower()
    if mode not in MODES:
        raise ConfigError(f"{mode_src}: expected one of {', '.join(MODES)}, got {mode!r}")
    interval, interval_src = pick("interval_s", ENV_INTERVAL, "interval_s", 5.0)
    try:
        from ..core.strict import parse_duration
        interval_s = parse_duration(interval, interval_src, interval_src)
    except ConfigError:
        raise ConfigError(f"{interval_src}: invalid duration {interval!r} (e.g. 5s, 1m, or seconds)") from None
    if interval_s <= 0:
        raise ConfigError(f"{interval_src}: must be > 0, got {interval!r}")
    token_env = getattr(ps, "token_env", None) or ENV_TOKEN
    token = environ.get(token_env) or None
    if token is not None:
        register_secret(token)
    kw: dict[str, Any] = {}
    if ps is not None:
        for name in ("batch_size", "max_buffer_points", "timeout_s", "max_tag_values"):
            value = getattr(ps, name, None)
            if value is not None:
                kw[name] = value
    try:
        return SinkConfig(url=url, token=token, org=str(org), bucket=str(bucket).strip(), mode=mode,
                          interval_s=float(interval_s), token_env=token_env, **kw)
    except ValueError as e:
        raise ConfigError(f"sink: {e}") from None
