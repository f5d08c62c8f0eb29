"""Fail fast before load: what a profile needs, checked before the first user starts.

* **Credentials** — a profile whose users sign requests (orders, balances, user data) needs API
  credentials for its environment; without them the run would go its whole length and end
  "inconclusive". The problem names the variables to set.
* **Reachability** — ``GET /api/v3/exchangeInfo`` at the REST URL, retried on transient failures
  (:data:`~letrade_perf.retry.STARTUP`: no answer or 5xx, a few times within 12 s); the problem
  names the URL and why it could not be reached (name resolution, refused, timeout, HTTP status).
* **Symbols** — the profile's symbols are listed by the target and trading.

``letrade-perf run`` calls :func:`preflight` in its own process before it starts Locust; the
Locust plugin makes the same credential check and the same retried exchangeInfo call at ``init``
(for ``locust -f`` without ``letrade-perf run``).
"""
from __future__ import annotations

import http.client
import logging
import socket
import time
import urllib.error
from typing import Any, Callable, Mapping

from .config.credentials import Credentials, load_credentials, missing_credentials_hint
from .config.environments import Environment
from .core.errors import ConfigError
from .retry import STARTUP, Attempts, RetryPolicy, retry_call, transient_status

log = logging.getLogger("letrade_perf.preflight")


def describe_network_error(e: BaseException) -> str:
    """A one-line reason for a failed connection (no traceback, no URL query)."""
    reason: Any = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, str):
        return reason
    if isinstance(reason, http.client.HTTPException) and not isinstance(reason, OSError):
        return f"not an HTTP answer ({type(reason).__name__})"
    if isinstance(reason, socket.gaierror):
        return f"name resolution failed ({reason.strerror or reason})"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return f"{type(reason).__name__}: {reason}"


def users_needing_credentials(profile) -> list[str]:
    """The profile's user kinds that send signed requests."""
    u = profile.users
    out = []
    if u.pipeline is not None:
        out.append("pipeline (orders, user data)")
    if u.ccxt is not None and u.ccxt.orders:
        out.append("ccxt (orders)")
    elif u.ccxt is not None and u.ccxt.task_weights.get("balance", 0) > 0:
        out.append("ccxt (balance)")
    return out


def credential_problem(profile, env: Environment, key_file: str | None = None,
                       environ: Mapping[str, str] | None = None) -> tuple[Credentials | None, str | None]:
    """``(credentials, None)`` or ``(None, problem)`` when the profile needs keys it does not have
    (or the configured ones are malformed)."""
    try:
        creds = load_credentials(env, key_file=key_file, environ=environ)
    except ConfigError as e:
        return None, f"credentials: {e}"
    if creds is None and profile is not None and profile.needs_credentials:
        users = ", ".join(users_needing_credentials(profile))
        return None, (f"profile {profile.name!r} signs requests on env {env.name} at {env.rest_url} ({users}) but no "
                      f"API credentials are configured: {missing_credentials_hint(env.name)}")
    return creds, None


def get_with_retry(client, path: str, policy: RetryPolicy = STARTUP, *,
                   sleep: Callable[[float], object] = time.sleep):
    """``client.get(path)`` (a :class:`letrade_perf.check.Client`) retried on no answer and 5xx:
    ``(response or the last network error, Attempts)``. The client's timeout is restored after."""
    saved = client.timeout

    def call(timeout: float):
        client.timeout = timeout
        try:
            return client.get(path)
        except (OSError, ValueError, http.client.HTTPException) as e:     # urllib's URLError is an OSError
            return e

    def on_retry(r, n: int, pause: float) -> None:
        what = describe_network_error(r) if isinstance(r, BaseException) else r.error_text()
        log.warning("GET %s%s: %s; retry %d in %.1f s", client.env.rest_url, path, what, n, pause)

    try:
        return retry_call(call, lambda r: isinstance(r, BaseException) or transient_status(r.status), policy,
                          sleep=sleep, on_retry=on_retry)
    finally:
        client.timeout = saved


def fetch_exchange_info(env: Environment, policy: RetryPolicy = STARTUP, *,
                        sleep: Callable[[float], object] = time.sleep) -> tuple[dict | None, str | None]:
    """``(exchangeInfo, None)``, or ``(None, problem)`` naming the REST URL and the reason."""
    from .check import Client

    result, attempts = get_with_retry(Client(env), "/api/v3/exchangeInfo", policy, sleep=sleep)
    return _exchange_info_result(env, result, attempts)


def _exchange_info_result(env: Environment, result, attempts: Attempts) -> tuple[dict | None, str | None]:
    where = f"{env.rest_url}/api/v3/exchangeInfo"
    if isinstance(result, BaseException):
        return None, (f"cannot reach {env.name} at {env.rest_url}: GET {where}: {describe_network_error(result)} "
                      f"({attempts.describe()})")
    if result.status != 200:
        return None, f"{env.name} at {env.rest_url}: GET {where}: {result.error_text()} ({attempts.describe()})"
    try:
        info = result.json()
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("symbols"), list):
        return None, f"{env.name} at {env.rest_url}: GET {where}: not an exchangeInfo document"
    return info, None


def symbol_problem(profile, info: dict, rest_url: str) -> str | None:
    """The profile's symbols that ``info`` does not list, or lists as not trading."""
    status = {s.get("symbol"): s.get("status") for s in info.get("symbols", []) if isinstance(s, dict)}
    missing = [s for s in profile.symbols if s not in status]
    halted = [f"{s} ({status[s]})" for s in profile.symbols if s in status and status[s] != "TRADING"]
    if not missing and not halted:
        return None
    parts = ([f"not listed: {', '.join(missing)}"] if missing else []) + \
            ([f"not trading: {', '.join(halted)}"] if halted else [])
    return f"{profile.source}: symbols at {rest_url}: " + "; ".join(parts)


def preflight(profile, env: Environment, key_file: str | None = None, environ: Mapping[str, str] | None = None,
              policy: RetryPolicy = STARTUP) -> list[str]:
    """Every problem that would stop the run, in the order a user fixes them (empty = go)."""
    problems = []
    _creds, problem = credential_problem(profile, env, key_file, environ)
    if problem:
        problems.append(problem)
        policy = RetryPolicy(attempts=1, timeout_s=min(policy.timeout_s, 3.0))   # report it fast; creds first
    info, problem = fetch_exchange_info(env, policy)
    if problem:
        problems.append(problem)
    elif info is not None and profile is not None:
        problem = symbol_problem(profile, info, env.rest_url)
        if problem:
            problems.append(problem)
    return problems
