"""``letrade-perf check``: is everything in place for a run? (configuration, connectivity, clock,
rate limits, credentials and permissions, the API key's restrictions, market data) — printed as a
table; exit 0 when no check fails (WARN and SKIP rows pass), 2 otherwise. Read-only: it never
places an order.

The target resolves like ``letrade-perf run``'s (``--env``, ``--host``, ``--rest-url``,
``--stream-url``, ``--ws-api-url``, the profile's ``target:``). With env ``sim`` and no host it
starts the embedded simulator (with the profile's ``sim:`` settings) and stops it afterwards. The
first call (ping) is retried on transient failures like a run's start-up calls. Every line
printed goes through secret masking.
"""
from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable, Mapping, TextIO

from .binance.endpoints import ENDPOINTS
from .binance.headers import parse_used_weight
from .calls.path import CallResult, begin
from .config.credentials import Credentials, load_credentials, missing_credentials_hint
from .config.environments import ENV_NAMES, Environment, environment, target_options
from .core.errors import ConfigError
from .core.secrets import install_log_masking, mask, mask_api_key
from .keyaudit import Answer, audit

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
EXIT_OK, EXIT_FAILED = 0, 2
#: Binance rejects a signed request stamped 1000 ms or more ahead of its clock.
AHEAD_LIMIT_MS = 1000.0
#: A trading-authority expiry closer than this many days is a WARN (``check --expiry-warn-days``).
DEFAULT_EXPIRY_WARN_DAYS = 30


@dataclass
class CheckResult:
    """One row of the table."""

    check: str
    result: str
    detail: str


@dataclass
class HttpResponse:
    """One answer, as the call path read it (``result``: decoded body, Binance error code)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    rtt_ms: float
    result: CallResult | None = None

    def json(self) -> Any:
        """The decoded body; ``ValueError`` when it is not JSON."""
        if self.result is not None and self.result.data is not None:
            return self.result.data
        return json.loads(self.body)

    def error_text(self) -> str:
        """``HTTP 400 -1022 Signature for this request is not valid.`` (Binance error bodies)."""
        r = self.result
        if r is not None and r.code is not None:
            return f"HTTP {self.status} {r.code} {r.msg or ''}".strip()
        return f"HTTP {self.status} {self.body[:200].decode('utf-8', 'replace')}"


#: ``check`` sends a handful of read-only requests: the call path without pacing or an order ledger
_UNPACED = SimpleNamespace(pacer=None, ledger=None)


class Client:
    """A tiny stdlib HTTP client for the REST API (a handful of requests; no pacing needed) on the
    one call path (:mod:`letrade_perf.calls.path`: decoding, error codes, timing). Network errors
    raise (``get_with_retry`` retries them)."""

    def __init__(self, env: Environment, credentials: Credentials | None = None, timeout: float = 10.0):
        self.env = env
        self.credentials = credentials
        self.timeout = timeout
        self.offset_ms = 0.0

    def get(self, path: str, params: Mapping[str, Any] | None = None, signed: bool = False) -> HttpResponse:
        from .binance.signing import encode_params

        headers = {"User-Agent": "letrade-perf-check"}
        query = encode_params(params or {})
        if signed:
            assert self.credentials is not None
            p = dict(params or {})
            p["timestamp"] = int(time.time() * 1000 + self.offset_ms)
            p.setdefault("recvWindow", 5000)
            query = self.credentials.signed_query(p)
            headers["X-MBX-APIKEY"] = self.credentials.api_key
        url = f"{self.env.rest_url}{path}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, headers=headers, method="GET")
        call = begin(_UNPACED, ENDPOINTS.get(("GET", path)), params or {}, paced=False)
        call.leave()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                body, status, hdrs = r.read(), r.status, dict(r.headers)
        except urllib.error.HTTPError as e:
            body, status, hdrs = e.read(), e.code, dict(e.headers or {})
        res = call.answer(status, hdrs, body)
        return HttpResponse(status, hdrs, body, res.elapsed_ms, res)


def _describe_error(e: BaseException) -> str:
    from .preflight import describe_network_error
    if isinstance(e, (urllib.error.URLError, OSError)):
        return f"cannot connect: {describe_network_error(e)}"
    return f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------------------------------

def run_checks(env_name: str | None = None, host: str | None = None, key_file: str | None = None,
               profile_ref: str | None = None, environ: Mapping[str, str] | None = None,
               start_sim: Callable[..., Any] | None = None, *, rest_url: str | None = None,
               stream_url: str | None = None, ws_api_url: str | None = None,
               sleep: Callable[[float], object] = time.sleep,
               expiry_warn_days: float = DEFAULT_EXPIRY_WARN_DAYS) -> list[CheckResult]:
    """Run every check and return the rows (never raises for a failing check)."""
    rows: list[CheckResult] = []
    profile = None
    if profile_ref:
        try:
            from .config.profile import load_profile
            profile = load_profile(profile_ref)
            rows.append(CheckResult("profile", PASS, f"{profile.name}: {profile.description} "
                                    f"({profile.duration_s:g} s, env {profile.env})"))
        except ConfigError as e:
            rows.append(CheckResult("profile", FAIL, str(e)))
            return rows
    env_name = env_name or (profile.env if profile else "sim")
    if env_name not in ENV_NAMES:
        rows.append(CheckResult("environment", FAIL, f"unknown environment {env_name!r} (valid: {', '.join(ENV_NAMES)})"))
        return rows
    urls = target_options(profile.target if profile is not None else None, host, rest_url, stream_url, ws_api_url)
    sim_proc = None
    try:
        if env_name == "sim" and urls["host"] is None and urls["rest_url"] is None:
            from .sim.process import SimulatorError, start_simulator
            try:
                sim_proc = (start_sim or start_simulator)(profile.sim if profile and profile.sim else None)
            except SimulatorError as e:
                rows.append(CheckResult("simulator", FAIL, str(e)))
                return rows
            urls["host"] = sim_proc.base_url
            rows.append(CheckResult("simulator", PASS, f"embedded simulator started at {sim_proc.base_url} "
                                    f"(pid {sim_proc.pid})"))
        try:
            env = environment(env_name, **urls)
        except ConfigError as e:
            rows.append(CheckResult("environment", FAIL, str(e)))
            return rows
        rows.append(CheckResult("environment", PASS, f"{env.name}: REST {env.rest_url}, streams {env.ws_stream_url}, "
                                f"WS API {env.ws_api_url}"))
        creds = None
        try:
            creds = load_credentials(env, key_file=key_file, environ=environ)
        except ConfigError as e:
            rows.append(CheckResult("credentials", FAIL, str(e)))
        else:
            if creds is not None:
                rows.append(CheckResult("credentials", PASS, f"{creds.key_type} key {mask_api_key(creds.api_key)} "
                                        f"from {creds.source}"))
            elif profile is not None and not profile.needs_credentials:
                rows.append(CheckResult("credentials", SKIP, f"none configured; profile {profile.name} does not "
                                        "need them"))
            else:
                rows.append(CheckResult("credentials", FAIL, f"none configured: {missing_credentials_hint(env.name)}"))
        rows += _remote_checks(Client(env, creds), profile, sleep, expiry_warn_days)
        return rows
    finally:
        if sim_proc is not None:
            sim_proc.stop()


def _remote_checks(client: Client, profile, sleep: Callable[[float], object] = time.sleep,
                   expiry_warn_days: float = DEFAULT_EXPIRY_WARN_DAYS) -> list[CheckResult]:
    from .preflight import get_with_retry

    rows: list[CheckResult] = []
    r, attempts = get_with_retry(client, "/api/v3/ping", sleep=sleep)   # retried like a run's start-up calls
    if isinstance(r, Exception):
        rows.append(CheckResult("connectivity", FAIL, f"{client.env.rest_url}: GET /api/v3/ping: "
                                f"{_describe_error(r)} ({attempts.describe()})"))
        return rows + [CheckResult(c, SKIP, "no connectivity") for c in ("clock", "rate limits", "account",
                                                                          "key audit", "market data")]
    if r.status != 200:
        rows.append(CheckResult("connectivity", FAIL, f"{client.env.rest_url}: GET /api/v3/ping: {r.error_text()} "
                                f"({attempts.describe()})"))
        if r.status == 418:     # banned: do not send anything else
            return rows
    else:
        rows.append(CheckResult("connectivity", PASS, f"GET /api/v3/ping 200 in {r.rtt_ms:.1f} ms"))
    rows.append(_clock_check(client))
    rows += _limits_check(client, profile)
    rows.append(_account_check(client, profile))
    rows += audit_key(client, expiry_warn_days=expiry_warn_days)
    rows.append(_market_data_check(client, profile))
    return rows


def _clock_check(client: Client) -> CheckResult:
    from .clock import ClockSync

    def fetch() -> int:
        r = client.get("/api/v3/time")
        if r.status != 200:
            raise RuntimeError(r.error_text())
        return int(r.json()["serverTime"])

    try:
        est = ClockSync(fetch, samples=5).sync()
    except Exception as e:
        cause = e.__cause__ or e
        return CheckResult("clock", FAIL, f"GET /api/v3/time: {_describe_error(cause)}")
    client.offset_ms = est.offset_ms
    detail = (f"server - local = {est.offset_ms:+.1f} ms ± {est.uncertainty_ms:.1f} ms "
              f"(best of 5 by RTT, RTT {est.rtt_ms:.1f} ms)")
    if -est.offset_ms >= AHEAD_LIMIT_MS:
        return CheckResult("clock", WARN, detail + "; the local clock is ahead: signed requests depend on "
                           "the offset correction")
    return CheckResult("clock", PASS, detail)


def _window(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _limits_check(client: Client, profile) -> list[CheckResult]:
    try:
        r = client.get("/api/v3/exchangeInfo")
        info = r.json() if r.status == 200 else None
    except Exception as e:
        return [CheckResult("rate limits", FAIL, f"GET /api/v3/exchangeInfo: {_describe_error(e)}")]
    if not isinstance(info, dict):
        return [CheckResult("rate limits", FAIL, f"GET /api/v3/exchangeInfo: {r.error_text()}")]
    limits = info.get("rateLimits") or []
    parts = [f"{x.get('rateLimitType')} {x.get('limit')}/{x.get('intervalNum')}{str(x.get('interval', ''))[:1].lower()}"
             for x in limits if isinstance(x, dict)]
    used = parse_used_weight(r.headers)
    if used:
        parts.append("used weight " + ", ".join(f"{v}/{_window(k)}" for k, v in sorted(used.items())))
    rows = [CheckResult("rate limits", PASS if limits else FAIL, "; ".join(parts) or "exchangeInfo has no rateLimits")]
    if profile is not None:
        status = {s.get("symbol"): s.get("status") for s in info.get("symbols", []) if isinstance(s, dict)}
        missing = [s for s in profile.symbols if s not in status]
        halted = [f"{s} ({status[s]})" for s in profile.symbols if s in status and status[s] != "TRADING"]
        if missing or halted:
            rows.append(CheckResult("symbols", FAIL, "; ".join(filter(None, [
                f"unknown: {', '.join(missing)}" if missing else "",
                f"not trading: {', '.join(halted)}" if halted else ""]))))
        else:
            rows.append(CheckResult("symbols", PASS, f"{', '.join(profile.symbols)} trading"))
    return rows


def _account_check(client: Client, profile) -> CheckResult:
    if client.credentials is None:
        return CheckResult("account", SKIP, "no credentials")
    try:
        r = client.get("/api/v3/account", {"omitZeroBalances": "true"}, signed=True)
    except Exception as e:
        return CheckResult("account", FAIL, f"GET /api/v3/account: {_describe_error(e)}")
    if r.status != 200:
        return CheckResult("account", FAIL, f"authentication failed: GET /api/v3/account: {r.error_text()}")
    acct = r.json()
    perms = acct.get("permissions") or []
    can_trade = bool(acct.get("canTrade"))
    detail = (f"authenticated in {r.rtt_ms:.1f} ms; canTrade={str(can_trade).lower()}, permissions "
              f"{','.join(perms) or '(none)'}, {len(acct.get('balances') or [])} non-zero balances")
    if not can_trade or "SPOT" not in perms:
        return CheckResult("account", FAIL, detail + " — spot trading is not permitted for this key")
    return CheckResult("account", PASS, detail)


def audit_key(client: Client, *, expiry_warn_days: float = DEFAULT_EXPIRY_WARN_DAYS,
              now_ms: Callable[[], float] | None = None) -> list[CheckResult]:
    """The API-key audit rows (:mod:`letrade_perf.keyaudit`): SKIP on testnet (no ``/sapi``) or
    without credentials, else the findings of the three signed ``/sapi`` status calls. ``now_ms``:
    the server's time (default: the local clock corrected by the clock check's offset)."""
    if client.env.name == "testnet":
        return [CheckResult("key audit", SKIP, "testnet has no /sapi: key audit skipped")]
    if client.credentials is None:
        return [CheckResult("key audit", SKIP, "no credentials")]
    clock = now_ms or (lambda: time.time() * 1000 + client.offset_ms)
    return [CheckResult(f.check, f.level, f.detail)
            for f in audit(lambda path: _sapi_get(client, path), clock(), expiry_warn_days)]


def _sapi_get(client: Client, path: str) -> Answer:
    try:
        r = client.get(path, signed=True)
    except Exception as e:
        return Answer(None, None, _describe_error(e))
    code = r.result.code if r.result is not None else None
    if r.status != 200:
        return Answer(None, code, r.error_text())
    try:
        return Answer(r.json(), None, "")
    except ValueError:
        return Answer(None, None, f"HTTP {r.status}: the body is not JSON")


def _market_data_check(client: Client, profile) -> CheckResult:
    symbol = profile.symbols[0] if profile is not None else "BTCUSDT"
    try:
        d = client.get("/api/v3/depth", {"symbol": symbol, "limit": 5})
        k = client.get("/api/v3/klines", {"symbol": symbol, "interval": "1m", "limit": 5})
    except Exception as e:
        return CheckResult("market data", FAIL, f"{symbol}: {_describe_error(e)}")
    if d.status != 200:
        return CheckResult("market data", FAIL, f"GET /api/v3/depth {symbol}: {d.error_text()}")
    if k.status != 200:
        return CheckResult("market data", FAIL, f"GET /api/v3/klines {symbol}: {k.error_text()}")
    depth, klines = d.json(), k.json()
    if not (isinstance(depth, dict) and depth.get("bids") and depth.get("asks")):
        return CheckResult("market data", FAIL, f"GET /api/v3/depth {symbol}: empty or malformed book")
    if not (isinstance(klines, list) and klines and all(isinstance(c, list) and len(c) >= 12 for c in klines)):
        return CheckResult("market data", FAIL, f"GET /api/v3/klines {symbol}: malformed klines")
    return CheckResult("market data", PASS,
                       f"{symbol}: depth best {depth['bids'][0][0]} / {depth['asks'][0][0]} in {d.rtt_ms:.1f} ms; "
                       f"{len(klines)} klines 1m in {k.rtt_ms:.1f} ms")


# ---------------------------------------------------------------------------------------------

def render(rows: list[CheckResult]) -> str:
    """The rows as an aligned text table (masked)."""
    head = ("check", "result", "detail")
    body = [(r.check, r.result, r.detail) for r in rows]
    w0 = max(len(x[0]) for x in [head, *body])
    w1 = max(len(x[1]) for x in [head, *body])
    lines = [f"{head[0]:<{w0}}  {head[1]:<{w1}}  {head[2]}", f"{'-' * w0}  {'-' * w1}  {'-' * 6}"]
    lines += [f"{c:<{w0}}  {res:<{w1}}  {d}" for c, res, d in body]
    return mask("\n".join(lines))


def exit_code(rows: list[CheckResult]) -> int:
    """0 when no row failed, else 2."""
    return EXIT_FAILED if any(r.result == FAIL for r in rows) or not rows else EXIT_OK


def run_from_args(args, out: TextIO | None = None) -> int:
    """``letrade-perf check`` entry point."""
    out = out or sys.stdout
    install_log_masking()
    import logging
    logging.basicConfig(level=getattr(logging, (getattr(args, "log_level", None) or "WARNING")),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rows = run_checks(args.env, args.host, args.key_file, args.profile, rest_url=getattr(args, "rest_url", None),
                      stream_url=getattr(args, "stream_url", None), ws_api_url=getattr(args, "ws_api_url", None),
                      expiry_warn_days=getattr(args, "expiry_warn_days", None) or DEFAULT_EXPIRY_WARN_DAYS)
    print(render(rows), file=out)
    code = exit_code(rows)
    failed = sum(r.result == FAIL for r in rows)
    print(mask(f"\n{'all checks passed' if code == EXIT_OK else f'{failed} check(s) failed'}"), file=out)
    return code
