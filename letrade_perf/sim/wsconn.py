"""WebSocket connection plumbing shared by the stream server and the WebSocket API.

:class:`WsConn` owns one accepted socket: a bounded outgoing queue drained by its own writer
task (a slow client delays only itself; overflow drops that client, ``slow_consumer``), the
``ws_delay`` hold, server pings with pong matching, and the incoming-frame counter.
:class:`WsServerBase` keeps the set of connections, reads frames, and runs the housekeeping
loop (pings every ``ping_interval_s``, drop after ``pong_timeout_s`` without the echo, close
after ``lifetime_s``). Every close is counted once in ``stats.ws_disconnects[reason]``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from aiohttp import WSCloseCode, WSMsgType, web

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 0.05


class WsConn:
    """One accepted WebSocket: bounded outgoing queue, writer task, ping/pong and lifetime state.

    Queue items are ``(text, stat_name, ref_ms)``: ``stat_name`` None marks a control frame
    (responses), which is never delayed and never counted as a data message.
    """

    #: maximum queued outgoing messages before the client is dropped as too slow
    max_queue = 20000

    def __init__(self, server: "WsServerBase", ws: web.WebSocketResponse, ip: str, kind: str):
        self.server = server
        self.ws = ws
        self.ip = ip
        self.kind = kind
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self.opened = now
        self.next_ping = now + server.ws_spec.ping_interval_s
        self.pings: dict[bytes, float] = {}      # outstanding ping payload -> sent at
        self.ping_seq = 0
        self.incoming: deque = deque()
        self.queue: deque = deque()
        self.closed = False
        self.close_reason: str | None = None
        self.stalled_until = 0.0
        self.close_task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self.writer = self.loop.create_task(self._write_loop())

    # -- sending ------------------------------------------------------------------------
    def send(self, text: str, stat_name: str | None = None, ref_ms: int = 0) -> None:
        if self.closed:
            return
        q = self.queue
        if len(q) >= self.max_queue:
            self.drop("slow_consumer", WSCloseCode.POLICY_VIOLATION)
            return
        q.append((text, stat_name, ref_ms))
        if not self._wake.is_set():
            self._wake.set()

    async def _write_loop(self) -> None:
        q = self.queue
        ws = self.ws
        server = self.server
        try:
            while True:
                if not q:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self.stalled_until:
                    wait = self.stalled_until - self.loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                        continue
                    self.stalled_until = 0.0
                text, stat_name, ref_ms = q.popleft()
                held = stat_name is not None and server.delay_active and await self._delay(stat_name, ref_ms)
                await ws.send_str(text)
                if held:   # ground truth for lag measurements: how late after E the frame really left
                    server.stats.delay("ws_event_sent", server.clock.now()*1000.0 - ref_ms)
                if stat_name is not None:
                    server.stats.ws_messages[stat_name] += 1   # not cached: stats.reset() replaces it
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer went away mid-send
            self.drop("send_failed", WSCloseCode.ABNORMAL_CLOSURE)

    async def _delay(self, stat_name: str, ref_ms: int) -> bool:
        """Hold the frame until ``delay_ms`` after ``ref_ms``; False when no ``ws_delay`` rule matches."""
        faults = self.server.faults
        spec = faults.select("ws_delay", stat_name) if faults is not None else None
        if spec is None or spec.delay_ms <= 0:
            return False
        hold = ref_ms + spec.delay_ms - self.server.clock.now()*1000.0
        if hold > 0:
            await asyncio.sleep(hold / 1000.0)
        self.server.stats.delay("ws_event", max(hold, 0.0))
        return True

    # -- incoming accounting --------------------------------------------------------------
    def over_incoming_limit(self, limit: int) -> bool:
        """Count one incoming frame; True when more than ``limit`` arrived within one second."""
        now = self.loop.time()
        dq = self.incoming
        dq.append(now)
        cutoff = now - 1.0
        while dq[0] <= cutoff:
            dq.popleft()
        return len(dq) > limit

    def got_pong(self, payload: bytes) -> None:
        sent = self.pings.get(bytes(payload))
        if sent is None:
            return      # unsolicited pongs are allowed but answer nothing
        self.pings = {p: t for p, t in self.pings.items() if t > sent}

    # -- closing --------------------------------------------------------------------------
    def drop(self, reason: str, code: int = WSCloseCode.GOING_AWAY, final: str | None = None) -> None:
        """Close the connection (once), counting ``reason`` in ``stats.ws_disconnects``.

        ``final`` is a last text frame sent just before the close frame (e.g. listenKeyExpired).
        """
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.server.stats.ws_disconnects[reason] += 1
        self.queue.clear()
        self.close_task = self.loop.create_task(self._close(code, reason, final))

    async def _close(self, code: int, reason: str, final: str | None) -> None:
        self.writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.writer
        with contextlib.suppress(Exception):
            if final is not None:
                await self.ws.send_str(final)
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()[:120]), 2.0)

    def client_gone(self) -> None:
        """The reader saw the peer close: record it and stop the writer."""
        if not self.closed:
            self.closed = True
            self.close_reason = "client"
            self.server.stats.ws_disconnects["client"] += 1
        self.writer.cancel()


class WsServerBase:
    """Connection bookkeeping and housekeeping shared by the stream server and the WS API."""

    conn_kind = "streams"

    def __init__(self, ctx):
        self.ctx = ctx
        self.clock = ctx.clock
        self.stats = ctx.stats
        self.ws_spec = ctx.config.ws
        self.faults = getattr(ctx, "faults", None)
        self.conns: set[WsConn] = set()
        self.delay_active = False
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    def new_ws(self) -> web.WebSocketResponse:
        return web.WebSocketResponse(autoping=False, autoclose=True, compress=False, timeout=2.0,
                                     max_msg_size=1 << 20)

    async def read_loop(self, conn: WsConn, on_text) -> None:
        """Read frames until the connection closes; pings answered, pongs matched, rate counted."""
        ws = conn.ws
        limit = self.ws_spec.max_incoming_per_s
        limited = self.conn_kind != "ws-api"   # the WS API is limited by weight, not frame rate
        try:
            while not conn.closed:
                msg = await ws.receive()
                t = msg.type
                if t in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if limited and conn.over_incoming_limit(limit):
                    conn.drop("rate_limit", WSCloseCode.POLICY_VIOLATION)
                    break
                if t == WSMsgType.TEXT:
                    on_text(conn, msg.data)
                elif t == WSMsgType.BINARY:
                    on_text(conn, msg.data.decode("utf-8", "replace"))
                elif t == WSMsgType.PING:
                    with contextlib.suppress(Exception):
                        await ws.pong(msg.data)
                elif t == WSMsgType.PONG:
                    conn.got_pong(msg.data)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.debug("websocket read failed", exc_info=True)
        finally:
            conn.client_gone()
            if conn.close_task is not None:   # let a server-side close finish (final frame, close frame)
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close_task)

    def housekeep(self) -> None:
        """Pings, pong timeouts and lifetimes of every connection (called every 50 ms)."""
        now = asyncio.get_running_loop().time()
        spec = self.ws_spec
        for conn in tuple(self.conns):
            if conn.closed:
                continue
            if now - conn.opened >= spec.lifetime_s:
                conn.drop("lifetime", WSCloseCode.OK)
                continue
            if conn.pings and now - min(conn.pings.values()) >= spec.pong_timeout_s:
                conn.drop("pong_timeout", WSCloseCode.POLICY_VIOLATION)
                continue
            if now >= conn.next_ping and conn.stalled_until <= now:
                conn.ping_seq += 1
                payload = str(conn.ping_seq).encode()
                conn.pings[payload] = now
                conn.next_ping = now + spec.ping_interval_s
                conn.loop.create_task(self._ping(conn, payload))

    @staticmethod
    async def _ping(conn: WsConn, payload: bytes) -> None:
        with contextlib.suppress(Exception):
            await conn.ws.ping(payload)

    async def _housekeeping_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_second = loop.time() + 1.0
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                self.housekeep()
                if loop.time() >= next_second:
                    next_second = loop.time() + 1.0
                    self.every_second()
            except Exception:
                log.exception("websocket housekeeping failed")

    def every_second(self) -> None:
        pass

    def start(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._housekeeping_loop()))

    async def stop_tasks(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()

    async def close_all(self, text_for, timeout: float = 1.0) -> None:
        """Queue ``text_for(conn)`` (if not None) to every connection, let it flush, close all."""
        self._stopping = True
        conns = [c for c in self.conns if not c.closed]
        for c in conns:
            text = text_for(c)
            if text is not None:
                c.send(text)
        deadline = asyncio.get_running_loop().time() + timeout
        while any(c.queue for c in conns) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for c in conns:
            c.drop("server_shutdown", WSCloseCode.GOING_AWAY)
        await asyncio.sleep(0.05)
