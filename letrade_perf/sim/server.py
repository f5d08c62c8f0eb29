"""Compose and run the simulator: one aiohttp app on one port for REST, streams and the WS API.

``letrade-perf sim`` → :func:`run_from_args`. The market tick loop, clean shutdown (a
``serverShutdown`` event to stream clients, open sockets closed) and the start banner live here.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, Callable, cast

import yaml
from aiohttp import web, web_protocol

from . import config as simconfig
from .config import SimConfig, SimConfigError
from .context import SimContext

log = logging.getLogger("letrade_perf.sim")


def build_app(ctx: SimContext) -> web.Application:
    """The simulator's aiohttp application for ``ctx``: REST, control API, streams and WS API."""
    from . import streams, wsapi
    from .app import add_rest_routes
    from .control import add_control_routes

    app = web.Application(client_max_size=1024 * 1024)
    app["ctx"] = ctx
    add_control_routes(app, ctx)
    ctx.streams = streams.add_routes(app, ctx)
    ctx.wsapi = wsapi.add_routes(app, ctx)
    add_rest_routes(app, ctx)   # last: it may own a catch-all route
    app.on_startup.append(_start_ticker)
    app.on_shutdown.append(_on_shutdown)
    app.on_cleanup.append(_stop_ticker)
    return app


async def _tick_loop(ctx: SimContext) -> None:
    period = ctx.config.market.tick_ms / 1000.0
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        try:
            ctx.exchange.tick(ctx.clock.now_ms())
        except Exception:  # the market must keep ticking whatever one tick did
            log.exception("market tick failed")
        next_at += period
        delay = next_at - loop.time()
        if delay < 0:       # fell behind: don't try to catch up in a burst
            next_at = loop.time()
            delay = 0
        await asyncio.sleep(delay)


async def _start_ticker(app: web.Application) -> None:
    app["tick_task"] = asyncio.get_running_loop().create_task(_tick_loop(app["ctx"]))


async def _stop_ticker(app: web.Application) -> None:
    task = app.get("tick_task")
    if task:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _on_shutdown(app: web.Application) -> None:
    ctx: SimContext = app["ctx"]
    for part in (ctx.streams, ctx.wsapi):
        shutdown = getattr(part, "shutdown", None)
        if shutdown is not None:
            with contextlib.suppress(Exception):
                await shutdown()


@dataclass
class Urls:
    rest: str
    ws: str
    ws_api: str


def urls_for(host: str, port: int) -> Urls:
    h = f"[{host}]" if ":" in host else host
    return Urls(f"http://{h}:{port}", f"ws://{h}:{port}", f"ws://{h}:{port}/ws-api/v3")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_kv_spec(spec: str, what: str) -> dict:
    """``"kind=http_5xx,probability=0.1,endpoints=GET /api/v3/depth|POST /api/v3/order"`` → dict.

    Values are typed as YAML scalars; ``endpoints`` is split on ``|``.
    """
    out: dict = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" not in part:
            raise SimConfigError(f"{what}: expected key=value, got {part!r}")
        k, v = (x.strip() for x in part.split("=", 1))
        if k == "endpoints":
            out[k] = [e.strip() for e in v.split("|") if e.strip()]
        else:
            try:
                out[k] = yaml.safe_load(v)
            except yaml.YAMLError:
                out[k] = v
    return out


def config_from_args(args) -> SimConfig:
    cfg = simconfig.load(args.config) if args.config else SimConfig()
    if args.host is not None:
        cfg.host = args.host
    if args.port is not None:
        cfg.port = args.port
    if args.seed is not None:
        cfg.seed = args.seed
    if args.clock_skew_ms is not None:
        cfg.clock_skew_ms = args.clock_skew_ms
    if args.latency:
        cfg.latency = simconfig._build(simconfig.LatencySpec, parse_kv_spec(args.latency, "--latency"),
                                       "latency", "--latency")
    for i, spec in enumerate(args.fault):
        cfg.faults.append(simconfig._build(simconfig.FaultSpec, parse_kv_spec(spec, "--fault"),
                                           f"fault[{i}]", "--fault"))
    return simconfig.validate(cfg, args.config or "command line")


def banner(cfg: SimConfig, urls: Urls) -> str:
    hmac_acct = next((a for a in cfg.accounts if a.key_type == "HMAC"), None)
    ed_acct = next((a for a in cfg.accounts if a.key_type == "ED25519"), None)
    lines = [
        "letrade-perf simulator (Binance Spot compatible) listening",
        f"  REST      {urls.rest}/api/v3",
        f"  streams   {urls.ws}/ws/<stream>   {urls.ws}/stream?streams=<a>/<b>",
        f"  WS API    {urls.ws_api}",
        f"  control   {urls.rest}/_sim/stats",
        f"  symbols   {', '.join(s.symbol for s in cfg.symbols)}   seed {cfg.seed}",
    ]
    if hmac_acct is not None and hmac_acct.api_key == simconfig.DEMO_API_KEY:
        lines += ["  demo HMAC key (simulator only):",
                  f"    BINANCE_API_KEY={hmac_acct.api_key}",
                  f"    BINANCE_API_SECRET={hmac_acct.secret}"]
    elif hmac_acct is not None:
        lines.append(f"  HMAC key  {hmac_acct.api_key} (secret from the config file)")
    if ed_acct is not None and ed_acct.api_key == simconfig.DEMO_ED25519_API_KEY:
        lines.append(f"  demo Ed25519 key {ed_acct.api_key} (private key: letrade_perf.sim.config.DEMO_ED25519_PRIVATE_PEM)")
    return "\n".join(lines)


class _BinanceErrorHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, except that a request its parser refuses (over
    ``PARSER_MAX_LINE``, too many headers, malformed) is answered by the simulator's REST app —
    Binance's JSON error, counted — instead of a plain-text 400 that echoes the input and logs a
    traceback."""

    unparsable: Callable[[str, BaseException | None], web.StreamResponse]

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        log.debug("unparsable request from %s: %s", request.remote, type(exc).__name__)
        return self.unparsable(request.remote or "unknown", exc)


class _BinanceErrorServer(web.Server):
    """:class:`aiohttp.web.Server` whose connections use :class:`_BinanceErrorHandler`."""

    unparsable: Callable[[str, BaseException | None], web.StreamResponse]

    def __call__(self) -> web_protocol.RequestHandler:
        handler = _BinanceErrorHandler(self, loop=self._loop, **self._kwargs)
        handler.unparsable = self.unparsable
        return handler


def _answer_parse_errors_as_binance(server: web.Server | None, unparsable) -> None:
    """Make ``server`` (an AppRunner's, after ``setup``) answer unparsable requests via
    ``unparsable(ip, exc)``. The class swap adds no state to the instance but the callback."""
    assert server is not None and type(server) is web.Server
    server.__class__ = _BinanceErrorServer
    cast(_BinanceErrorServer, server).unparsable = unparsable


async def serve(cfg: SimConfig, ready_file: str | None = None, stop: asyncio.Event | None = None) -> None:
    """Run the simulator until ``stop`` is set (or SIGINT/SIGTERM)."""
    ctx = SimContext(cfg)
    app = build_app(ctx)
    from .app import PARSER_MAX_HEADERS, PARSER_MAX_LINE, REST_APP
    # aiohttp's parser limits are raised so oversized request lines and headers reach the app,
    # which answers them with a Binance-style JSON error (and counts them) instead of aiohttp's
    # plain-text 400 echoing the input.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                           max_line_size=PARSER_MAX_LINE, max_field_size=PARSER_MAX_LINE,
                           max_headers=PARSER_MAX_HEADERS)
    await runner.setup()
    _answer_parse_errors_as_binance(runner.server, app[REST_APP].unparsable)
    site = web.TCPSite(runner, cfg.host, cfg.port, backlog=1024, reuse_address=True)
    await site.start()
    # the bound port (cfg.port may be 0); TCPSite._server is an asyncio.Server once started
    port = cast(asyncio.Server, site._server).sockets[0].getsockname()[1]
    urls = urls_for(cfg.host, port)
    print(banner(cfg, urls), flush=True)
    if ready_file:
        tmp = ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(urls.rest + "\n")
        os.replace(tmp, ready_file)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        print("letrade-perf simulator: shutting down", flush=True)
        await runner.cleanup()


def run_from_args(args) -> int:
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
    except SimConfigError as e:
        print(f"letrade-perf sim: {e}", file=sys.stderr)
        return 2
    if not _is_loopback(cfg.host):
        log.warning("binding %s: the simulator is reachable beyond this machine", cfg.host)
    run: Callable[..., Any]   # uvloop.run and asyncio.run differ in their keyword-only options
    try:
        import uvloop  # optional, Linux: ~30% more requests per second
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(serve(cfg, args.ready_file))
    except OSError as e:
        print(f"letrade-perf sim: cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0
