"""The simulator's control API under ``/_sim/``: ground-truth stats, faults, latency, clock, limits.

Answers loopback peers only (HTTP 403 otherwise) unless ``config.allow_remote_control``.
Control requests are neither rate-limited nor counted as API requests. Bodies are JSON;
errors are ``{"error": "..."}`` with HTTP 400 naming the offending key.

| Route | Does |
|---|---|
| ``GET /_sim/health`` | ``{"status": "ok", "serverTime": ms}`` |
| ``GET /_sim/stats`` | ``ctx.stats.snapshot()`` plus rate-limit state under ``rate_limits`` |
| ``POST /_sim/stats/reset`` | zero the stats |
| ``GET /_sim/faults`` | rules with their match/fire counters |
| ``POST /_sim/faults`` | install one rule or a list (validated; all or nothing) → ``{"ids": [...]}`` |
| ``DELETE /_sim/faults[?kind=K]`` | remove all rules (or those of kind K) → ``{"removed": n}`` |
| ``GET/PUT /_sim/latency`` | ``{"default": {...}, "endpoints": {name: {...}}}`` (PUT replaces the given parts) |
| ``GET/PUT /_sim/clock`` | ``{"skew_ms": N}`` — operator skew (clock_skew faults add to it) |
| ``PUT /_sim/limits`` | change LimitsSpec fields at runtime |
| ``POST /_sim/limits/reset`` | clear all rate-limit counters, violations and bans |
| ``POST /_sim/deposit`` | ``{"api_key", "asset", "amount"}`` → ``ctx.exchange.deposit`` |
| ``GET /_sim/key?api_key=K`` | the key's ``/sapi`` key status (the config's ``key_status`` fields) |
| ``PUT /_sim/key`` | ``{"api_key", "reset"?, <key_status fields>}`` → the new key status |
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from ..binance.errors import BinanceError
from .config import LimitsSpec, SimConfigError, fault_from_mapping, from_mapping
from .keystatus import book_of, update_from_mapping

_JSON_CT = "application/json"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data, default=str).encode(), status=status, content_type=_JSON_CT)


def _bad(msg: str, status: int = 400) -> web.Response:
    return _json({"error": msg}, status)


class _BadRequest(Exception):
    pass


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class Control:
    """Handlers of the ``/_sim/`` routes bound to a simulator context."""

    def __init__(self, ctx):
        self.ctx = ctx

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise _BadRequest("a JSON body is required")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise _BadRequest(f"invalid JSON: {e}") from None

    async def _object(self, request: web.Request) -> dict:
        data = await self._body(request)
        if not isinstance(data, dict):
            raise _BadRequest("expected a JSON object")
        return data

    # -- stats ------------------------------------------------------------------------------
    async def health(self, request):
        return _json({"status": "ok", "serverTime": self.ctx.clock.now_ms()})

    async def stats(self, request):
        snap = self.ctx.stats.snapshot()
        snap.setdefault("rate_limits", {}).update(self.ctx.ratelimiter.state())
        snap["serverTime"] = self.ctx.clock.now_ms()
        return _json(snap)

    async def stats_reset(self, request):
        self.ctx.stats.reset()
        return _json({})

    # -- faults -----------------------------------------------------------------------------
    async def faults_get(self, request):
        return _json(self.ctx.faults.snapshot())

    async def faults_post(self, request):
        data = await self._body(request)
        items = data if isinstance(data, list) else [data]
        specs = []
        for i, item in enumerate(items):
            source = f"faults[{i}]" if isinstance(data, list) else "fault"
            try:
                specs.append(fault_from_mapping(item, source))
            except SimConfigError as e:
                # validation names the rule faults[0]; say which one of the posted rules it was
                raise _BadRequest(str(e).replace(f"{source}: faults[0].", f"{source}.")) from None
        ids = [self.ctx.faults.add(s) for s in specs]
        return _json({"ids": ids})

    async def faults_delete(self, request):
        kind = request.query.get("kind") or None
        return _json({"removed": self.ctx.faults.clear(kind)})

    # -- latency ----------------------------------------------------------------------------
    async def latency_get(self, request):
        return _json(self.ctx.faults.latency_snapshot())

    async def latency_put(self, request):
        data = await self._object(request)
        unknown = set(data) - {"default", "endpoints"}
        if unknown:
            raise _BadRequest(f"unknown key '{sorted(unknown)[0]}' (allowed: default, endpoints)")
        mapping = {}
        if "default" in data:
            mapping["latency"] = data["default"]
        if "endpoints" in data:
            mapping["endpoint_latency"] = data["endpoints"]
        try:
            cfg = from_mapping(mapping, "latency")
        except SimConfigError as e:
            raise _BadRequest(str(e)) from None
        self.ctx.faults.set_latency(cfg.latency if "default" in data else None,
                                    cfg.endpoint_latency if "endpoints" in data else None)
        return _json(self.ctx.faults.latency_snapshot())

    # -- clock ------------------------------------------------------------------------------
    def _clock_view(self) -> dict:
        f = self.ctx.faults
        return {"skew_ms": self.ctx.clock.skew_ms, "base_skew_ms": f.base_skew_ms,
                "serverTime": self.ctx.clock.now_ms()}

    async def clock_get(self, request):
        return _json(self._clock_view())

    async def clock_put(self, request):
        data = await self._object(request)
        unknown = set(data) - {"skew_ms"}
        if unknown:
            raise _BadRequest(f"unknown key '{sorted(unknown)[0]}' (allowed: skew_ms)")
        skew = data.get("skew_ms")
        if isinstance(skew, bool) or not isinstance(skew, int):
            raise _BadRequest(f"skew_ms: expected an integer, got {skew!r}")
        self.ctx.faults.set_base_skew(skew)
        return _json(self._clock_view())

    # -- limits -----------------------------------------------------------------------------
    async def limits_get(self, request):
        return _json(self.ctx.ratelimiter.state())

    async def limits_put(self, request):
        data = await self._object(request)
        current: LimitsSpec = self.ctx.ratelimiter.limits
        merged = {**dataclasses.asdict(current), **data}
        try:
            new = from_mapping({"limits": merged}, "limits").limits
        except SimConfigError as e:
            raise _BadRequest(str(e)) from None
        # Mutate in place: the config, the engine (exchangeInfo) and the WS API share this object.
        for f in dataclasses.fields(LimitsSpec):
            setattr(current, f.name, getattr(new, f.name))
        self._limits_changed()
        return _json(self.ctx.ratelimiter.state())

    def _limits_changed(self) -> None:
        """Let the engine drop what it derived from the limits (exchangeInfo ``rateLimits``)."""
        self.ctx.exchange.limits_changed()

    async def limits_reset(self, request):
        self.ctx.ratelimiter.reset()
        return _json(self.ctx.ratelimiter.state())

    # -- accounts ---------------------------------------------------------------------------
    async def deposit(self, request):
        data = await self._object(request)
        unknown = set(data) - {"api_key", "asset", "amount"}
        if unknown:
            raise _BadRequest(f"unknown key '{sorted(unknown)[0]}' (allowed: api_key, asset, amount)")
        api_key, asset, amount = data.get("api_key"), data.get("asset"), data.get("amount")
        if not isinstance(api_key, str) or self.ctx.auth.account_for_key(api_key) is None:
            raise _BadRequest("api_key: unknown account")
        if not isinstance(asset, str) or not asset.isalnum():
            raise _BadRequest(f"asset: expected an asset name, got {asset!r}")
        try:
            value = Decimal(str(amount))
        except (InvalidOperation, ValueError):
            raise _BadRequest(f"amount: expected a decimal string, got {amount!r}") from None
        if isinstance(amount, bool) or amount is None or not value.is_finite() or value <= 0:
            raise _BadRequest(f"amount: expected a positive decimal, got {amount!r}")
        try:
            result = self.ctx.exchange.deposit(api_key, asset.upper(), value)
        except BinanceError as e:
            return _json({"error": e.msg, "code": e.code}, 400)
        return _json(result if result is not None else {})

    # -- API-key status (/sapi key-status endpoints) ------------------------------------------
    async def key_get(self, request):
        api_key = request.query.get("api_key")
        book = book_of(self.ctx)
        if not api_key or not book.known(api_key):
            raise _BadRequest("api_key: unknown account")
        return _json(book.view(api_key))

    async def key_put(self, request):
        data = await self._object(request)
        try:
            return _json(update_from_mapping(book_of(self.ctx), data))
        except (SimConfigError, ValueError) as e:
            raise _BadRequest(str(e)) from None


def add_control_routes(app: web.Application, ctx) -> Control:
    """Mount the ``/_sim/`` control API on ``app``; returns the :class:`Control` instance."""
    c = Control(ctx)
    allow_remote = ctx.config.allow_remote_control

    def guard(fn):
        async def handler(request: web.Request) -> web.StreamResponse:
            if not allow_remote and not _is_loopback(request.remote):
                return _bad("the control API answers loopback clients only", 403)
            try:
                return await fn(request)
            except _BadRequest as e:
                return _bad(str(e))
        handler.__name__ = "sim_" + fn.__name__
        return handler

    r = app.router
    r.add_get("/_sim/health", guard(c.health))
    r.add_get("/_sim/stats", guard(c.stats))
    r.add_post("/_sim/stats/reset", guard(c.stats_reset))
    r.add_get("/_sim/faults", guard(c.faults_get))
    r.add_post("/_sim/faults", guard(c.faults_post))
    r.add_delete("/_sim/faults", guard(c.faults_delete))
    r.add_get("/_sim/latency", guard(c.latency_get))
    r.add_put("/_sim/latency", guard(c.latency_put))
    r.add_get("/_sim/clock", guard(c.clock_get))
    r.add_put("/_sim/clock", guard(c.clock_put))
    r.add_get("/_sim/limits", guard(c.limits_get))
    r.add_put("/_sim/limits", guard(c.limits_put))
    r.add_post("/_sim/limits/reset", guard(c.limits_reset))
    r.add_post("/_sim/deposit", guard(c.deposit))
    r.add_get("/_sim/key", guard(c.key_get))
    r.add_put("/_sim/key", guard(c.key_put))
    return c
