"""WebSocket market streams: ``/ws/<stream>``, ``/ws`` (live subscriptions), ``/stream?streams=a/b``.

Streams served (reference §8, names parsed by :func:`letrade_perf.binance.streams.parse_stream`):

* real time: ``<s>@trade``, ``<s>@aggTrade``, ``<s>@bookTicker`` (on a top-of-book change);
* every 100 ms step: ``<s>@depth@100ms``, ``<s>@depth<5|10|20>@100ms``, ``<s>@kline_<i>`` (every
  1 s for ``1s``, 2 s otherwise, and at once when a candle closes);
* every 1000 ms: ``<s>@depth``/``@depth@1000ms``, ``<s>@depth<5|10|20>``;
* once per server-clock second (event times ``E`` in consecutive seconds): ``<s>@ticker``,
  ``<s>@miniTicker``, ``!miniTicker@arr`` (only changed symbols), ``<s>@ticker_<1h|4h|1d>``
  (``e`` = ``1hTicker``/``4hTicker``/``1dTicker``; the engine's rolling-window ticker, ``1d`` equal
  to the 24 h ticker), ``!ticker_<1h|4h|1d>@arr`` (only changed symbols), ``<s>@avgPrice``
  (``{"e":"avgPrice","E","s","i":"5m","w","T"}``: exactly what REST ``GET /api/v3/avgPrice``
  returns at ``E`` — ``w`` its ``price``, ``T`` its ``closeTime``, the last trade time),
  ``<s>@referencePrice`` (``{"e":"referencePrice","s","r":null,"t"}``: the simulator sets no
  reference prices, so ``r`` is always null and ``t`` is the time of the round).

Not served: ``<s>@kline_<i>@+08:00`` (the engine keeps the simulator's own trades in UTC candles
only), ``<s>@blockTrade`` (no block trades), ``!ticker@arr`` (retired by Binance).

A stream nobody subscribes to is never computed: the ticker family visits only its subscribed
names (``_timed``), the event-driven streams stop at a dictionary miss, kline and rolling-array
state exists only while subscribed. State is bounded by the symbols and the distinct valid
names, never grows per event.

URL forms (reference §1): ``/ws``, ``/ws/``, ``/stream`` and ``/ws/<x>`` whose ``<x>`` is not a
stream this server serves (ccxt.pro opens ``/ws/0``, ``/ws/1``… and subscribes afterwards; also an
unknown symbol) open a connection that delivers nothing until a ``SUBSCRIBE``. Only an unknown
listenKey-shaped ``<x>`` (-1125) and bad names in ``/stream?streams=`` are refused with HTTP 400.

Control messages (reference §8): ``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``,
``SET_PROPERTY``/``GET_PROPERTY`` (``combined``). ``id`` is a signed 64-bit integer, a string of
1–36 ASCII letters/digits, or null (an absent ``id`` counts as null) and is echoed unchanged; a
bad id is error code 2 with ``"id":null``. Errors are ``{"code":0..3,"msg":…,"id":…}``.

Every event is built and JSON-serialised once per stream name (the combined wrapper is
formed once from the raw text by string concatenation) and the same ``str`` is queued to every
subscriber. Each connection has a bounded queue drained by its own writer task, so a slow client
delays only itself; a client whose queue overflows is disconnected (``slow_consumer``), never
the server.

Connection rules (``config.ws``): server pings every ``ping_interval_s`` and drops a connection
that has not echoed a ping within ``pong_timeout_s``; more than ``max_incoming_per_s`` incoming
frames (text, ping, pong) within one second disconnects; connections close after
``lifetime_s``; at most ``max_streams`` streams per connection. New connections beyond
``limits.stream_connections_per_5m`` per IP per 5-minute bucket are refused with HTTP 429 / -1003.

Faults: ``ws_disconnect`` closes matching connections, ``ws_stall`` stops a matching
connection's writer for ``duration_ms`` (events produced meanwhile stay queued and are delivered
late, in order, when the stall ends — unless the queue overflows, which drops the connection),
``ws_delay`` holds each event until at least ``delay_ms`` after its event time ``E`` (or after
the time it was produced, for payloads without ``E``). Rules are matched against the
connection's stream names and evaluated when rules change and once a second while active.

Legacy user-data streams: ``/ws/<listenKey>`` (or a listenKey in ``SUBSCRIBE``) delivers the
account's events bare; on expiry ``{"e":"listenKeyExpired",…}`` is sent and the stream ends.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from typing import Iterable, cast

from aiohttp import WSCloseCode, web

from ..binance.errors import BinanceError
from ..binance.streams import StreamName, parse_stream
from .params import Params
from .userdata import LISTEN_KEY_LENGTH, router_for
from .wsconn import WsConn, WsServerBase

log = logging.getLogger(__name__)

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_LISTEN_KEY = re.compile(r"^[A-Za-z0-9]{%d}$" % LISTEN_KEY_LENGTH)
_ID_STR = re.compile(r"^[A-Za-z0-9]{1,36}$")
_INT64 = 2**63

#: stats key for messages on legacy listenKey streams (keys themselves would be unbounded tags)
LISTEN_KEY_STAT = "listenKey"
_CONTROL_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")

MARKET_TICK_S = 0.1
#: Stream kinds served by :meth:`StreamServer._tickers` once per server-clock second.
_TIMED_KINDS = frozenset({"ticker", "miniTicker", "miniTickerArr", "windowTicker", "windowTickerArr", "avgPrice",
                          "referencePrice"})


class StreamRequestError(Exception):
    """A stream URL or live-subscription parameter the server refuses."""

    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code
        self.msg = msg


# =============================================================================================
# Market stream server
# =============================================================================================

class StreamConn(WsConn):
    """A market-stream connection: its subscriptions in order, and the combined flag."""

    def __init__(self, server, ws, ip, kind: str, combined: bool):
        super().__init__(server, ws, ip, kind)
        self.combined = combined
        self.streams: dict[str, None] = {}     # ordered set of subscribed names


class StreamServer(WsServerBase):
    """Market streams and legacy listenKey streams on one aiohttp app."""

    conn_kind = "streams"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.exchange = ctx.exchange
        self.symbols = {s.symbol for s in ctx.config.symbols}
        self.subs: dict[str, set[StreamConn]] = {}
        self._parsed: dict[str, StreamName | None] = {}   # None = listenKey
        self._depth_buf: dict[tuple[str, int], list] = {}
        self._last_tob: dict[str, tuple] = {}
        self._klines: dict[str, list] = {}                # name -> [next_emit_s, open_t, last_k]
        self._mini_last: dict[str, tuple] = {}
        self._timed: dict[str, StreamName] = {}           # subscribed 1000 ms ticker-family names
        self._warr_last: dict[tuple[str, str], tuple] = {}  # (window, symbol) -> last values in the arr
        self._second = -1                                 # server second of the last ticker round
        self._lk_tokens: dict[str, tuple[str, int]] = {}  # listenKey -> (account, router token)
        self._names_cache: dict[str, tuple] = {}
        self.router = router_for(ctx)
        ctx.events.on_trade(self._on_trade)
        ctx.events.on_book(self._on_book)
        lk = getattr(ctx, "listen_keys", None)
        if lk is not None:
            lk.on_end(self._on_listen_key_end)
        if self.faults is not None and hasattr(self.faults, "on_change"):
            self.faults.on_change(self._faults_changed)

    # -- routes ---------------------------------------------------------------------------
    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        """``/ws``, ``/ws/`` and ``/ws/<x>``: a raw stream when ``<x>`` is a stream this server
        serves, otherwise (``/ws/0`` as ccxt.pro opens it, an unknown symbol, any other text) an
        open connection with no streams that delivers nothing until a ``SUBSCRIBE`` (§1).
        A listenKey-shaped ``<x>`` that is no live key is still refused with -1125."""
        name = request.match_info.get("name") or ""
        names: list[str] = []
        if name:
            try:
                self.check_stream(name)
                names = [name]
            except StreamRequestError as e:
                if e.code == -1125:
                    return web.json_response({"code": e.code, "msg": e.msg}, status=400)
        return await self._serve(request, names, combined=False)

    async def handle_combined(self, request: web.Request) -> web.StreamResponse:
        raw = request.query.get("streams", "")
        return await self._serve(request, [n for n in raw.split("/") if n], combined=True)

    async def _serve(self, request: web.Request, names: list[str], combined: bool) -> web.StreamResponse:
        try:
            if len(names) > self.ws_spec.max_streams:
                raise StreamRequestError(-1102, f"Too many streams; at most {self.ws_spec.max_streams} per connection.")
            for n in names:
                self.check_stream(n)
        except StreamRequestError as e:
            return web.json_response({"code": e.code, "msg": e.msg}, status=400)
        if self._stopping:
            return web.json_response({"code": -1016, "msg": "This service is no longer available."}, status=503)
        ip = request.remote or ""
        try:
            self.ctx.ratelimiter.admit_stream_connection(ip)
        except BinanceError as e:
            return web.json_response(e.body(), status=e.http, headers=e.headers)
        ws = self.new_ws()
        await ws.prepare(request)
        kind = "listenKey" if names and self._parsed.get(names[0], 0) is None else "streams"
        conn = StreamConn(self, ws, ip, kind, combined)
        self.conns.add(conn)
        self.stats.ws_connections[kind] += 1
        for n in names:
            self._subscribe(conn, n)
        if self.faults is not None and self._fault_rules_active():
            self._apply_conn_faults(conn)
        try:
            await self.read_loop(conn, self._on_control)
        finally:
            self._remove(conn)
        return ws

    # -- validation -----------------------------------------------------------------------
    def check_stream(self, name: str) -> None:
        """Raise :class:`StreamRequestError` unless ``name`` is a stream this server serves."""
        if name in self._parsed:
            if self._parsed[name] is None and self._listen_account(name) is None:
                raise StreamRequestError(-1125, "This listenKey does not exist.")
            return
        if "@" not in name and _LISTEN_KEY.match(name):
            if self._listen_account(name) is None:
                raise StreamRequestError(-1125, "This listenKey does not exist.")
            self._parsed[name] = None
            return
        try:
            sn = parse_stream(name)
        except ValueError:
            raise StreamRequestError(-1100, f"Invalid stream name '{name}'.") from None
        if sn.symbol is not None and sn.symbol not in self.symbols:
            raise StreamRequestError(-1121, "Invalid symbol.")
        if len(self._parsed) < 100000:
            self._parsed[name] = sn

    def _listen_account(self, key: str) -> str | None:
        lk = getattr(self.ctx, "listen_keys", None)
        return lk.account_of(key) if lk is not None else None

    # -- subscriptions --------------------------------------------------------------------
    def _subscribe(self, conn: StreamConn, name: str) -> None:
        if name in conn.streams:
            return
        conn.streams[name] = None
        subs = self.subs.get(name)
        if subs is None:
            subs = self.subs[name] = set()
            self._first_subscriber(name)
        subs.add(conn)

    def _unsubscribe(self, conn: StreamConn, name: str) -> None:
        if name not in conn.streams:
            return
        del conn.streams[name]
        subs = self.subs.get(name)
        if subs is None:
            return
        subs.discard(conn)
        if not subs:
            del self.subs[name]
            self._last_subscriber_gone(name)

    def _remove(self, conn: StreamConn) -> None:
        for name in list(conn.streams):
            self._unsubscribe(conn, name)
        self.conns.discard(conn)

    def _first_subscriber(self, name: str) -> None:
        sn = self._parsed.get(name)
        if sn is None:
            account = self._listen_account(name)
            if account is not None:
                token = self.router.add(account, lambda text, ev, _n=name: self.publish_text(
                    _n, text, ev.get("E") or self.clock.now_ms(), LISTEN_KEY_STAT))
                self._lk_tokens[name] = (account, token)
        elif sn.kind == "kline":
            self._klines[name] = [0.0, None, None]
        elif sn.kind in _TIMED_KINDS:
            self._timed[name] = sn

    def _last_subscriber_gone(self, name: str) -> None:
        sn = self._parsed.get(name)
        if sn is None:
            entry = self._lk_tokens.pop(name, None)
            if entry is not None:
                self.router.remove(*entry)
        elif sn.kind == "kline":
            self._klines.pop(name, None)
        elif sn.kind == "bookTicker":
            self._last_tob.pop(cast(str, sn.symbol), None)
        elif sn.kind in _TIMED_KINDS:
            self._timed.pop(name, None)
            if sn.kind == "windowTickerArr":
                for key in [k for k in self._warr_last if k[0] == sn.window]:
                    del self._warr_last[key]

    def subscriptions(self, conn: StreamConn) -> list[str]:
        return list(conn.streams)

    # -- live control messages --------------------------------------------------------------
    def _reply(self, conn: StreamConn, obj: dict) -> None:
        conn.send(_dumps(obj))

    def _error(self, conn: StreamConn, code: int, msg: str, rid=None, with_id: bool = True) -> None:
        obj = {"code": code, "msg": msg}
        if with_id:
            obj["id"] = rid
        self._reply(conn, obj)

    def _on_control(self, conn: StreamConn, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError as e:
            line, col = getattr(e, "lineno", 1), getattr(e, "colno", 1)
            self._error(conn, 3, f"Invalid JSON: expected value at line {line} column {col}", with_id=False)
            return
        if not isinstance(req, dict):
            self._error(conn, 3, "Invalid JSON: expected an object", with_id=False)
            return
        rid = req.get("id")     # an absent id is null, like an explicit null
        if "method" not in req:
            self._error(conn, 2, "Invalid request: missing field `method` at line 1 column "
                        f"{len(text)}", rid if _valid_id(rid) else None)
            return
        if not _valid_id(rid):
            self._error(conn, 2, "Invalid request: request ID must be an unsigned integer", None)
            return
        method = req["method"]
        params = req.get("params")
        if method not in _CONTROL_METHODS:
            self._error(conn, 2, f"Invalid request: unknown variant `{method}`, expected one of "
                        "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` "
                        "at line 1 column 28", rid)
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                self._error(conn, 2, "Invalid request: params must be a list of stream names", rid)
                return
            if method == "SUBSCRIBE":
                new = [p for p in dict.fromkeys(params) if p not in conn.streams]
                if len(conn.streams) + len(new) > self.ws_spec.max_streams:
                    self._error(conn, 2, "Invalid request: too many streams "
                                f"(at most {self.ws_spec.max_streams} per connection)", rid)
                    return
                for p in new:
                    try:
                        self.check_stream(p)
                    except StreamRequestError as e:
                        self._error(conn, 2, f"Invalid request: {e.msg} ({p})", rid)
                        return
                for p in new:
                    self._subscribe(conn, p)
            else:
                for p in params:
                    self._unsubscribe(conn, p)
            self._reply(conn, {"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            if params not in (None, []):
                self._error(conn, 2, "Invalid request: too many parameters", rid)
                return
            self._reply(conn, {"result": list(conn.streams), "id": rid})
        else:  # SET_PROPERTY / GET_PROPERTY
            want = 2 if method == "SET_PROPERTY" else 1
            if not isinstance(params, list) or len(params) > want:
                self._error(conn, 2, "Invalid request: too many parameters", rid)
                return
            if len(params) < 1 or not isinstance(params[0], str):
                self._error(conn, 2, "Invalid request: property name must be a string", rid)
                return
            if params[0] != "combined":
                self._error(conn, 0, "Unknown property", rid)
                return
            if method == "GET_PROPERTY":
                self._reply(conn, {"result": conn.combined, "id": rid})
                return
            if len(params) < 2 or not isinstance(params[1], bool):
                self._error(conn, 1, "Invalid value type: expected Boolean", rid)
                return
            conn.combined = params[1]
            self._reply(conn, {"result": None, "id": rid})

    # -- fan-out ----------------------------------------------------------------------------
    def publish(self, name: str, payload, ref_ms: int | None = None) -> int:
        """Serialise ``payload`` once and queue it to every subscriber of ``name``; returns the fan-out."""
        subs = self.subs.get(name)
        if not subs:
            return 0
        if ref_ms is None:
            ref_ms = payload.get("E") if isinstance(payload, dict) else None
            if ref_ms is None:
                ref_ms = self.clock.now_ms()
        return self.publish_text(name, _dumps(payload), ref_ms, name)

    def publish_text(self, name: str, text: str, ref_ms: int, stat_name: str | None = None) -> int:
        subs = self.subs.get(name)
        if not subs:
            return 0
        stat = stat_name or name
        combined = None
        for c in tuple(subs):
            if c.combined:
                if combined is None:
                    combined = '{"stream":"%s","data":%s}' % (name, text)
                c.send(combined, stat, ref_ms)
            else:
                c.send(text, stat, ref_ms)
        return len(subs)

    def _names(self, symbol: str) -> tuple:
        n = self._names_cache.get(symbol)
        if n is None:
            s = symbol.lower()
            n = (f"{s}@trade", f"{s}@aggTrade", (f"{s}@depth", f"{s}@depth@1000ms"), (f"{s}@depth@100ms",),
                 f"{s}@bookTicker")
            self._names_cache[symbol] = n
        return n

    # -- event-driven streams ------------------------------------------------------------------
    def _on_trade(self, ev) -> None:
        subs = self.subs
        if not subs:
            return
        trade_name, agg_name = self._names(ev.symbol)[:2]
        if trade_name in subs or agg_name in subs:
            now = self.clock.now_ms()
            if trade_name in subs:
                self.publish_text(trade_name, _dumps({
                    "e": "trade", "E": now, "s": ev.symbol, "t": ev.trade_id, "p": ev.price, "q": ev.qty,
                    "T": ev.time_ms, "m": ev.buyer_is_maker, "M": True}), now)
            if agg_name in subs:
                self.publish_text(agg_name, _dumps({
                    "e": "aggTrade", "E": now, "s": ev.symbol, "a": ev.agg_id, "p": ev.price, "q": ev.qty,
                    "f": ev.trade_id, "l": ev.trade_id, "T": ev.time_ms, "m": ev.buyer_is_maker,
                    "M": True}), now)

    def _on_book(self, ev) -> None:
        subs = self.subs
        if not subs:
            return
        names = self._names(ev.symbol)
        for speed, group in ((1000, names[2]), (100, names[3])):
            if any(n in subs for n in group):
                key = (ev.symbol, speed)
                buf = self._depth_buf.get(key)
                if buf is None:
                    buf = self._depth_buf[key] = [ev.first_update_id, ev.last_update_id, {}, {}]
                buf[1] = ev.last_update_id
                bids, asks = buf[2], buf[3]
                for p, q in ev.bids:
                    bids[p] = q
                for p, q in ev.asks:
                    asks[p] = q
        bt = names[4]
        if bt in subs:
            self._book_ticker(ev.symbol, bt)

    def _book_ticker(self, symbol: str, name: str) -> None:
        try:
            tob = _tob(self.exchange.top_of_book(symbol))
        except Exception:
            log.exception("top_of_book failed")
            return
        if tob is None:
            return
        u, b, bq, a, aq = tob
        key = (b, bq, a, aq)
        if self._last_tob.get(symbol) == key:
            return
        self._last_tob[symbol] = key
        self.publish(name, {"u": u, "s": symbol, "b": b, "B": bq, "a": a, "A": aq}, self.clock.now_ms())

    # -- timed streams ----------------------------------------------------------------------
    async def _market_loop(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        next_at = loop.time()
        while True:
            next_at += MARKET_TICK_S
            delay = next_at - loop.time()
            if delay < 0:
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)
            n += 1
            try:
                self.market_tick(n % 10 == 0)
            except Exception:
                log.exception("stream market tick failed")

    def market_tick(self, whole_second: bool) -> None:
        """One 100 ms step: depth@100ms, kline roll-overs; every tenth step (``whole_second``) the
        1000 ms depth streams; on the first step of each server-clock second the ticker family
        (``_tickers``), so their event times ``E`` fall in consecutive seconds, one per second."""
        second = self.clock.now_ms() // 1000
        new_second = second != self._second
        self._second = second
        if not self.subs:
            self._depth_buf.clear()
            return
        self._flush_depth(100)
        self._partial_depth(100)
        self._kline_tick()
        if whole_second:
            self._flush_depth(1000)
            self._partial_depth(1000)
        if new_second:
            self._tickers()

    def _flush_depth(self, speed: int) -> None:
        if not self._depth_buf:
            return
        now = self.clock.now_ms()
        for key in [k for k in self._depth_buf if k[1] == speed]:
            symbol = key[0]
            U, u, bids, asks = self._depth_buf.pop(key)
            group = self._names(symbol)[2 if speed == 1000 else 3]
            payload = None
            for name in group:
                if name in self.subs:
                    if payload is None:
                        payload = _dumps({"e": "depthUpdate", "E": now, "s": symbol, "U": U, "u": u,
                                          "b": [[p, q] for p, q in bids.items()],
                                          "a": [[p, q] for p, q in asks.items()]})
                    self.publish_text(name, payload, now)

    def _partial_depth(self, speed: int) -> None:
        snaps: dict[str, dict] = {}
        now = self.clock.now_ms()
        for name in tuple(self.subs):
            sn = self._parsed.get(name)
            if sn is None or sn.kind != "partialDepth" or sn.speed_ms != speed:
                continue
            sym = cast(str, sn.symbol)   # partial depth streams always name a symbol
            snap = snaps.get(sym)
            if snap is None:
                try:
                    snap = snaps[sym] = self._depth20(sym)
                except Exception:
                    log.exception("depth snapshot failed")
                    continue
            n = sn.levels
            self.publish(name, {"lastUpdateId": snap["lastUpdateId"], "bids": snap["bids"][:n],
                                "asks": snap["asks"][:n]}, now)

    def _kline_tick(self) -> None:
        if not self._klines:
            return
        t = self.loop_time()
        for name, state in list(self._klines.items()):
            sn = self._parsed.get(name)
            if sn is None:
                continue
            try:
                k = self.exchange.current_kline(sn.symbol, sn.interval)
            except Exception:
                log.exception("current_kline failed")
                continue
            if k is None:
                continue
            period = 1.0 if sn.interval == "1s" else 2.0
            prev_open, prev_k = state[1], state[2]
            now = self.clock.now_ms()
            if prev_open is not None and k["t"] != prev_open:
                closed = self._closed_kline(sn, prev_open, prev_k)
                self.publish(name, {"e": "kline", "E": now, "s": sn.symbol, "k": closed}, now)
                state[0] = t + period
            elif t >= state[0]:
                self.publish(name, {"e": "kline", "E": now, "s": sn.symbol, "k": k}, now)
                state[0] = t + period
            state[1], state[2] = k["t"], k

    def _closed_kline(self, sn: StreamName, open_ms: int, last: dict) -> dict:
        """The candle that opened at ``open_ms``, final: as the engine sees it at its close time."""
        try:
            k = dict(self.exchange.current_kline(sn.symbol, sn.interval, last["T"]))
        except Exception:
            log.exception("closing kline failed")
            k = dict(last)
        k["x"] = True
        return k

    def _depth20(self, symbol: str) -> dict:
        snap = getattr(self.exchange, "depth_snapshot", None)
        if snap is not None:
            return snap(symbol, 20)
        return self.exchange.depth(Params({"symbol": symbol, "limit": "20"}))

    def _ticker(self, symbol: str) -> dict:
        values = getattr(self.exchange, "ticker_values", None)
        if values is not None:
            return values(symbol)
        return self.exchange.ticker_24hr(Params({"symbol": symbol}))

    def _tickers(self) -> None:
        """The 1000 ms streams of the ticker family, for subscribed names only (``_timed``: no
        subscriber, no work): ``@ticker``, ``@miniTicker``, ``!miniTicker@arr``, ``@ticker_<w>``,
        ``!ticker_<w>@arr``, ``@avgPrice``, ``@referencePrice``. Each symbol's values are computed
        once per round and every event of a round carries the same ``E``."""
        timed = self._timed
        if not timed:
            return
        now = self.clock.now_ms()
        wanted: dict[str, list] = {}                       # symbol -> 24 h ticker/miniTicker names
        windows: dict[str, dict[str, list]] = {}           # window -> symbol -> @ticker_<w> names
        window_arrs: list[str] = []
        avg: list[StreamName] = []
        ref: list[StreamName] = []
        for sn in timed.values():
            kind = sn.kind
            # these kinds always carry their symbol / window (parse_stream)
            if kind in ("ticker", "miniTicker"):
                wanted.setdefault(cast(str, sn.symbol), []).append(sn.raw)
            elif kind == "windowTicker":
                windows.setdefault(cast(str, sn.window), {}).setdefault(cast(str, sn.symbol), []).append(sn.raw)
            elif kind == "windowTickerArr":
                window_arrs.append(cast(str, sn.window))
                windows.setdefault(cast(str, sn.window), {})
            elif kind == "avgPrice":
                avg.append(sn)
            elif kind == "referencePrice":
                ref.append(sn)
        if wanted or "!miniTicker@arr" in timed:
            self._tickers_24h(now, wanted, "!miniTicker@arr" in timed)
        for window, per_symbol in windows.items():
            self._window_tickers(now, window, per_symbol, window in window_arrs)
        for sn in avg:
            try:
                r = self.exchange.avg_price(Params({"symbol": cast(str, sn.symbol)}))   # what REST /avgPrice returns
            except Exception:
                log.exception("avg_price failed")
                continue
            self.publish(sn.raw, {"e": "avgPrice", "E": now, "s": sn.symbol, "i": "%dm" % r["mins"],
                                  "w": r["price"], "T": r["closeTime"]}, now)
        for sn in ref:     # the simulator sets no reference prices: ``r`` is null (no ``E`` either)
            self.publish(sn.raw, {"e": "referencePrice", "s": sn.symbol, "r": None, "t": now}, now)

    def _tickers_24h(self, now: int, wanted: dict[str, list], arr_subscribed: bool) -> None:
        symbols = sorted(self.symbols) if arr_subscribed else sorted(wanted)
        arr = []
        for symbol in symbols:
            try:
                t = self._ticker(symbol)
            except Exception:
                log.exception("ticker_24hr failed")
                continue
            mini = {"e": "24hrMiniTicker", "E": now, "s": symbol, "c": t["lastPrice"], "o": t["openPrice"],
                    "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"]}
            for name in wanted.get(symbol, ()):
                if name.endswith("@miniTicker"):
                    self.publish(name, mini, now)
                else:
                    self.publish(name, {
                        "e": "24hrTicker", "E": now, "s": symbol, "p": t["priceChange"],
                        "P": t["priceChangePercent"], "w": t["weightedAvgPrice"], "x": t["prevClosePrice"],
                        "c": t["lastPrice"], "Q": t["lastQty"], "b": t["bidPrice"], "B": t["bidQty"],
                        "a": t["askPrice"], "A": t["askQty"], "o": t["openPrice"], "h": t["highPrice"],
                        "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"],
                        "C": t["closeTime"], "F": t["firstId"], "L": t["lastId"], "n": t["count"]}, now)
            if arr_subscribed:
                sig = (mini["c"], mini["o"], mini["h"], mini["l"], mini["v"], mini["q"])
                if self._mini_last.get(symbol) != sig:
                    self._mini_last[symbol] = sig
                    arr.append(mini)
        if arr_subscribed and arr:
            self.publish("!miniTicker@arr", arr, now)

    def _window_tickers(self, now: int, window: str, per_symbol: dict[str, list], arr_subscribed: bool) -> None:
        """``@ticker_<window>`` per symbol and ``!ticker_<window>@arr`` (only the symbols whose values
        changed since the array's previous event; the window's open/close times always move)."""
        symbols = sorted(self.symbols) if arr_subscribed else sorted(per_symbol)
        event = window + "Ticker"
        arr = []
        for symbol in symbols:
            try:
                t = self.exchange.rolling_ticker_values(symbol, window)
            except Exception:
                log.exception("rolling_ticker_values failed")
                continue
            d = {"e": event, "E": now, "s": symbol, "p": t["priceChange"], "P": t["priceChangePercent"],
                 "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"], "c": t["lastPrice"],
                 "w": t["weightedAvgPrice"], "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"],
                 "C": t["closeTime"], "F": t["firstId"], "L": t["lastId"], "n": t["count"]}
            for name in per_symbol.get(symbol, ()):
                self.publish(name, d, now)
            if arr_subscribed:
                sig = (d["p"], d["o"], d["h"], d["l"], d["c"], d["w"], d["v"], d["q"], d["F"], d["L"], d["n"])
                key = (window, symbol)
                if self._warr_last.get(key) != sig:
                    self._warr_last[key] = sig
                    arr.append(d)
        if arr_subscribed and arr:
            self.publish("!ticker_%s@arr" % window, arr, now)

    @staticmethod
    def loop_time() -> float:
        return asyncio.get_running_loop().time()

    # -- listen keys ------------------------------------------------------------------------
    def _on_listen_key_end(self, key: str, account_id: str, reason: str) -> None:
        subs = self.subs.get(key)
        if not subs:
            return
        now = self.clock.now_ms()
        text = _dumps({"e": "listenKeyExpired", "E": now, "listenKey": key})
        for conn in tuple(subs):
            if len(conn.streams) == 1:
                final = '{"stream":"%s","data":%s}' % (key, text) if conn.combined else text
                conn.drop("listen_key_" + reason, WSCloseCode.OK, final=final)
                self.stats.ws_messages[LISTEN_KEY_STAT] += 1
            else:
                self.publish_text(key, text, now, LISTEN_KEY_STAT)
            self._unsubscribe(conn, key)

    # -- faults -----------------------------------------------------------------------------
    def _fault_rules_active(self) -> bool:
        f = self.faults
        return bool(f.rules("ws_disconnect") or f.rules("ws_stall"))

    def _faults_changed(self, *args, **kwargs) -> None:
        try:
            self.delay_active = bool(self.faults.rules("ws_delay"))
            for conn in tuple(cast("set[StreamConn]", self.conns)):   # this server only makes StreamConns
                self._apply_conn_faults(conn)
        except Exception:
            log.exception("applying websocket faults failed")

    def _apply_conn_faults(self, conn: StreamConn) -> None:
        if conn.closed:
            return
        f = self.faults
        names: Iterable[str] = list(conn.streams) or ["/ws"]
        if f.rules("ws_disconnect"):
            for n in names:
                if f.select("ws_disconnect", _fault_name(n)) is not None:
                    conn.drop("fault", WSCloseCode.GOING_AWAY)
                    return
        now = conn.loop.time()
        if f.rules("ws_stall") and conn.stalled_until <= now:
            for n in names:
                spec = f.select("ws_stall", _fault_name(n))
                if spec is not None:
                    conn.stalled_until = now + max(spec.duration_ms, 0.0) / 1000.0
                    return

    def every_second(self) -> None:
        lk = getattr(self.ctx, "listen_keys", None)
        if lk is not None:
            lk.expire_due()
        if self.faults is not None:
            self.delay_active = bool(self.faults.rules("ws_delay"))
            if self._fault_rules_active():
                for conn in tuple(cast("set[StreamConn]", self.conns)):
                    self._apply_conn_faults(conn)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._market_loop()))
        if self.faults is not None:
            with contextlib.suppress(Exception):
                self.delay_active = bool(self.faults.rules("ws_delay"))

    async def shutdown(self) -> None:
        """Clean shutdown: ``serverShutdown`` to every stream client, then close them all."""
        await self.stop_tasks()
        text = _dumps({"e": "serverShutdown", "E": self.clock.now_ms()})
        combined = '{"stream":"!serverShutdown","data":%s}' % text
        await self.close_all(lambda c: combined if getattr(c, "combined", False) else text)


def _fault_name(stream: str) -> str:
    """Fault rules name listenKey streams ``listenKey`` (keys are secrets and unbounded)."""
    return LISTEN_KEY_STAT if "@" not in stream and _LISTEN_KEY.match(stream) else stream


def _valid_id(rid) -> bool:
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -_INT64 <= rid < _INT64
    if isinstance(rid, str):
        return bool(_ID_STR.match(rid))
    return False


def _tob(tob) -> tuple | None:
    """``(update_id, bid, bidQty, ask, askQty)`` from the engine's top-of-book value."""
    if tob is None:
        return None
    if isinstance(tob, dict):
        def pick(*keys):
            for k in keys:
                if k in tob:
                    return tob[k]
            return None
        return (pick("u", "updateId", "update_id", "lastUpdateId"),
                pick("b", "bidPrice", "bid", "bid_price"), pick("B", "bidQty", "bid_qty"),
                pick("a", "askPrice", "ask", "ask_price"), pick("A", "askQty", "ask_qty"))
    if isinstance(tob, (tuple, list)) and len(tob) == 5:
        return tuple(tob)
    return (getattr(tob, "update_id", None), getattr(tob, "bid_price", None), getattr(tob, "bid_qty", None),
            getattr(tob, "ask_price", None), getattr(tob, "ask_qty", None))


def add_routes(app: web.Application, ctx) -> StreamServer:
    """Mount ``/ws``, ``/ws/{name}`` and ``/stream`` on ``app``; returns the server (``ctx.streams``)."""
    server = StreamServer(ctx)
    app.router.add_get("/ws", server.handle_ws)
    app.router.add_get("/ws/{name:.*}", server.handle_ws)     # also "/ws/" and "/ws/a/b"
    app.router.add_get("/stream", server.handle_combined)
    app.router.add_get("/stream/", server.handle_combined)

    async def _start(_app):
        server.start()

    app.on_startup.append(_start)
    return server
