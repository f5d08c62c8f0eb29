"""Market streams of the simulator over real sockets (websocket-client against a real process).

Payload shapes and types per stream kind, raw and combined forms, live control messages and
their error codes, diff-depth contiguity with a local book synced against REST, connection
rules (ping/pong, incoming-message limit, lifetime, max streams), the ``ws_*`` faults and the
ground-truth counters in ``/_sim/stats``; the 1000 ms ticker family (``@avgPrice`` against REST
``avgPrice``, ``@ticker_<w>`` against REST klines/trades and the 24 h ticker, ``!ticker_<w>@arr``,
``@referencePrice``) with its cadence judged by the server's event times.
"""
from __future__ import annotations

import json
import re
import time
from decimal import Decimal

import pytest
import websocket

DEC = re.compile(r"^[0-9]+(\.[0-9]+)?$")


# -- helpers ---------------------------------------------------------------------------------------

def connect(sim, path: str, timeout: float = 5.0) -> websocket.WebSocket:
    return websocket.create_connection(sim.ws_url + path, timeout=timeout, skip_utf8_validation=True)


def recv_json(ws, deadline: float):
    ws.settimeout(max(0.05, deadline - time.time()))
    return json.loads(ws.recv())


def request(ws, obj: dict, timeout: float = 5.0) -> dict:
    """Send a control message; return the reply with the same id (data messages skipped)."""
    ws.send(json.dumps(obj))
    deadline = time.time() + timeout
    while True:
        m = recv_json(ws, deadline)
        if isinstance(m, dict) and "id" in m and ("result" in m or "code" in m) and m["id"] == obj.get("id"):
            return m


def reply_to_raw(ws, text: str, timeout: float = 5.0) -> dict:
    """Send raw text; return the first error/result frame."""
    ws.send(text)
    deadline = time.time() + timeout
    while True:
        m = recv_json(ws, deadline)
        if isinstance(m, dict) and ("result" in m or "code" in m):
            return m


def closed_within(ws, seconds: float) -> bool:
    """True when the server closes ``ws`` within ``seconds`` (data frames are drained)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        ws.settimeout(max(0.05, deadline - time.time()))
        try:
            opcode, _ = ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return True
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return True
    return False


def is_dec(v) -> bool:
    return isinstance(v, str) and bool(DEC.match(v))


def is_signed_dec(v) -> bool:
    return isinstance(v, str) and bool(DEC.match(v[1:] if v.startswith("-") else v))


WINDOW_MS = {"1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}


def check_levels(levels):
    assert isinstance(levels, list)
    for lv in levels:
        assert isinstance(lv, list) and len(lv) == 2 and is_dec(lv[0]) and is_dec(lv[1]), lv


def check_payload(stream: str, d) -> None:
    """Assert the Binance field set and types of one event of ``stream``."""
    if stream == "!miniTicker@arr":
        assert isinstance(d, list) and d
        for item in d:
            check_payload(item["s"].lower() + "@miniTicker", item)
        return
    m = re.fullmatch(r"!ticker_(1h|4h|1d)@arr", stream)
    if m:
        assert isinstance(d, list) and d
        assert len({item["s"] for item in d}) == len(d)
        for item in d:
            check_payload(item["s"].lower() + "@ticker_" + m.group(1), item)
        return
    sym = stream.split("@")[0].upper()
    kind = stream.split("@")[1]
    if kind in ("trade", "aggTrade", "ticker", "miniTicker", "depth", "avgPrice") or kind.startswith(("kline_",
                                                                                                   "ticker_")):
        assert isinstance(d["E"], int) and d["E"] > 1_600_000_000_000 and d["s"] == sym
    if kind == "trade":
        assert d["e"] == "trade" and isinstance(d["t"], int) and is_dec(d["p"]) and is_dec(d["q"])
        assert isinstance(d["T"], int) and isinstance(d["m"], bool) and d["M"] is True
    elif kind == "aggTrade":
        assert d["e"] == "aggTrade" and isinstance(d["a"], int) and is_dec(d["p"]) and is_dec(d["q"])
        assert isinstance(d["f"], int) and isinstance(d["l"], int) and d["f"] <= d["l"]
        assert isinstance(d["T"], int) and isinstance(d["m"], bool)
    elif kind.startswith("kline_"):
        k = d["k"]
        assert d["e"] == "kline" and k["i"] == kind[6:] and k["s"] == sym
        for f in ("t", "T", "f", "L", "n"):
            assert isinstance(k[f], int), f
        for f in ("o", "c", "h", "l", "v", "q", "V", "Q"):
            assert is_dec(k[f]), f
        assert isinstance(k["x"], bool) and k["T"] > k["t"]
        assert Decimal(k["l"]) <= min(Decimal(k["o"]), Decimal(k["c"])) <= Decimal(k["h"])
    elif kind == "depth" and len(stream.split("@")) >= 2 and stream.split("@")[1] == "depth":
        assert d["e"] == "depthUpdate" and isinstance(d["U"], int) and isinstance(d["u"], int)
        assert d["U"] <= d["u"]
        check_levels(d["b"])
        check_levels(d["a"])
    elif kind in ("depth5", "depth10", "depth20"):
        n = int(kind[5:])
        assert set(d) == {"lastUpdateId", "bids", "asks"} and isinstance(d["lastUpdateId"], int)
        assert 0 < len(d["bids"]) <= n and 0 < len(d["asks"]) <= n
        check_levels(d["bids"])
        check_levels(d["asks"])
        assert Decimal(d["bids"][0][0]) < Decimal(d["asks"][0][0])
    elif kind == "bookTicker":
        assert set(d) == {"u", "s", "b", "B", "a", "A"} and isinstance(d["u"], int) and d["s"] == sym
        assert all(is_dec(d[f]) for f in "bBaA") and Decimal(d["b"]) < Decimal(d["a"])
    elif kind == "ticker":
        assert d["e"] == "24hrTicker"
        for f in ("p", "P", "w", "x", "c", "Q", "b", "B", "a", "A", "o", "h", "l", "v", "q"):
            assert isinstance(d[f], str), f
        for f in ("O", "C", "F", "L", "n"):
            assert isinstance(d[f], int), f
    elif kind == "miniTicker":
        assert d["e"] == "24hrMiniTicker"
        assert all(is_dec(d[f]) for f in ("c", "o", "h", "l", "v", "q"))
    elif kind in ("ticker_1h", "ticker_4h", "ticker_1d"):
        window = kind[7:]
        assert list(d) == ["e", "E", "s", "p", "P", "o", "h", "l", "c", "w", "v", "q", "O", "C", "F", "L", "n"], d
        assert d["e"] == window + "Ticker"
        assert all(is_dec(d[f]) for f in ("o", "h", "l", "c", "w", "v", "q"))
        assert is_signed_dec(d["p"]) and is_signed_dec(d["P"])
        for f in ("O", "C", "F", "L", "n"):
            assert isinstance(d[f], int) and not isinstance(d[f], bool), f
        assert d["C"] - d["O"] == WINDOW_MS[window]
        assert Decimal(d["l"]) <= min(Decimal(d["o"]), Decimal(d["c"])) <= max(Decimal(d["o"]), Decimal(d["c"])) \
            <= Decimal(d["h"])
        assert Decimal(d["p"]) == Decimal(d["c"]) - Decimal(d["o"])
        assert d["n"] == (d["L"] - d["F"] + 1 if d["F"] != -1 else 0)
    elif kind == "referencePrice":
        assert d == {"e": "referencePrice", "s": sym, "r": None, "t": d["t"]}, d
        assert isinstance(d["t"], int) and not isinstance(d["t"], bool) and d["t"] > 1_600_000_000_000
    elif kind == "avgPrice":
        assert list(d) == ["e", "E", "s", "i", "w", "T"], d
        assert d["e"] == "avgPrice" and d["i"] == "5m" and is_dec(d["w"]) and Decimal(d["w"]) > 0
        assert isinstance(d["T"], int) and not isinstance(d["T"], bool) and 0 < d["T"] <= d["E"] + 1000
    else:  # pragma: no cover
        raise AssertionError(f"unchecked stream {stream}")


ALL_STREAMS = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@kline_1s", "btcusdt@depth",
               "btcusdt@depth@100ms", "btcusdt@depth5", "ethusdt@depth10@100ms", "btcusdt@depth20",
               "btcusdt@bookTicker", "btcusdt@ticker", "btcusdt@miniTicker", "!miniTicker@arr",
               "btcusdt@avgPrice", "ethusdt@ticker_1h", "btcusdt@ticker_4h", "bnbusdt@ticker_1d", "!ticker_1h@arr",
               "solusdt@referencePrice"]


# -- payloads ------------------------------------------------------------------------------------

def test_every_stream_kind_in_one_combined_connection(sim):
    ws = connect(sim, "/stream?streams=" + "/".join(ALL_STREAMS))
    seen: dict[str, int] = {}
    deadline = time.time() + 8
    try:
        while set(ALL_STREAMS) - set(seen) and time.time() < deadline:
            m = recv_json(ws, deadline)
            assert set(m) == {"stream", "data"}, m
            check_payload(m["stream"], m["data"])
            seen[m["stream"]] = seen.get(m["stream"], 0) + 1
    finally:
        ws.close()
    assert set(ALL_STREAMS) <= set(seen), set(ALL_STREAMS) - set(seen)


@pytest.mark.parametrize("stream", ["ethusdt@trade", "ethusdt@kline_1s", "ethusdt@bookTicker", "ethusdt@depth5@100ms",
                                    "ethusdt@avgPrice", "ethusdt@ticker_4h", "!ticker_1d@arr",
                                    "ethusdt@referencePrice"])
def test_raw_stream_sends_bare_payloads(sim, stream):
    ws = connect(sim, "/ws/" + stream)
    try:
        d = recv_json(ws, time.time() + 5)
    finally:
        ws.close()
    assert "stream" not in d
    check_payload(stream, d)


def test_kline_cadence_is_about_two_seconds(sim):
    """Updates every 2 s by the server's event times (a slow machine only stretches gaps, so only
    the lower bound is exact); a closing candle (``x`` true) is sent at once when the minute rolls."""
    ws = connect(sim, "/ws/bnbusdt@kline_1m")
    try:
        deadline = time.time() + 12
        got = []
        while len(got) < 4:
            m = recv_json(ws, deadline)
            check_payload("bnbusdt@kline_1m", m)
            got.append((m["E"], m["k"]["x"], m["k"]["t"]))
    finally:
        ws.close()
    gaps = [b[0] - a[0] for a, b in zip(got, got[1:]) if not b[1] and not a[1]]
    assert gaps and all(g >= 1990 for g in gaps), got
    for a, b in zip(got, got[1:]):
        if b[1]:                                  # closed candle: the one that was open before
            assert b[2] == a[2] and b[0] - a[0] < 2000


def test_unknown_symbol_or_stream_in_url_is_http_400(sim):
    # combined URLs only: /ws/<x> with an unusable <x> opens an empty connection (reference §1,
    # see test_ws_paths_without_a_valid_stream_open_and_wait_for_subscribe)
    for path, code in (("/stream?streams=xxxyyy@trade", -1121), ("/stream?streams=btcusdt@nonsense", -1100),
                       ("/stream?streams=btcusdt@trade/BTCUSDT@trade", -1100)):
        with pytest.raises(websocket.WebSocketBadStatusException) as ei:
            connect(sim, path)
        assert ei.value.status_code == 400
        assert json.loads(ei.value.resp_body)["code"] == code


# -- live control messages ---------------------------------------------------------------------------

def test_subscribe_unsubscribe_list_and_properties(sim):
    ws = connect(sim, "/ws")
    try:
        assert request(ws, {"method": "SUBSCRIBE", "params": ["solusdt@trade", "solusdt@bookTicker"], "id": 1}) \
            == {"result": None, "id": 1}
        d = recv_json(ws, time.time() + 5)
        assert "stream" not in d
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "abc"}) == \
            {"result": ["solusdt@trade", "solusdt@bookTicker"], "id": "abc"}
        assert request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}) == {"result": False, "id": 2}
        assert request(ws, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 3}) == {"result": None, "id": 3}
        deadline = time.time() + 5
        while True:
            m = recv_json(ws, deadline)
            if "stream" in m:
                assert m["stream"] in ("solusdt@trade", "solusdt@bookTicker")
                break
        time.sleep(1.1)   # stay under 5 incoming messages per second
        assert request(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 4}) == {"result": True, "id": 4}
        assert request(ws, {"method": "UNSUBSCRIBE", "params": ["solusdt@bookTicker"], "id": 5}) == \
            {"result": None, "id": 5}
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 6})["result"] == ["solusdt@trade"]
        assert request(ws, {"method": "UNSUBSCRIBE", "params": ["solusdt@trade"], "id": 7})["result"] is None
        # after the reply nothing more arrives for the unsubscribed streams
        ws.settimeout(1.0)
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()
    finally:
        ws.close()


def test_control_message_errors_codes_0_to_3(sim):
    ws = connect(sim, "/ws")
    try:
        bad_json = reply_to_raw(ws, "{not json")
        assert bad_json["code"] == 3 and bad_json["msg"].startswith("Invalid JSON")
        assert reply_to_raw(ws, json.dumps({"method": "SET_PROPERTY", "params": ["nope", True], "id": 1})) == \
            {"code": 0, "msg": "Unknown property", "id": 1}
        r = reply_to_raw(ws, json.dumps({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 2}))
        assert r["code"] == 1 and r["id"] == 2
        time.sleep(1.1)   # stay under 5 incoming messages per second
        r = reply_to_raw(ws, json.dumps({"method": "FROB", "params": [], "id": 3}))
        assert r["code"] == 2 and "unknown variant" in r["msg"]
        r = reply_to_raw(ws, json.dumps({"params": [], "id": 4}))
        assert r["code"] == 2 and "method" in r["msg"]
        r = reply_to_raw(ws, json.dumps({"method": "SUBSCRIBE", "params": ["zzzusdt@trade"], "id": 5}))
        assert r["code"] == 2 and r["id"] == 5
        time.sleep(1.1)
        r = reply_to_raw(ws, json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": {"x": 1}}))
        assert r["code"] == 2
        # the connection survived all of it
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 9}) == {"result": [], "id": 9}
    finally:
        ws.close()


# -- diff depth ---------------------------------------------------------------------------------------

def _apply(book: dict, levels) -> None:
    for p, q in levels:
        if Decimal(q) == 0:
            book.pop(Decimal(p), None)
        else:
            book[Decimal(p)] = Decimal(q)


@pytest.mark.parametrize("stream, min_events, exact", [("btcusdt@depth@100ms", 12, True), ("ethusdt@depth", 4, False)])
def test_diff_depth_is_contiguous_and_syncs_a_local_book(sim, stream, min_events, exact):
    """Reference §8 sync; with 100 ms batches a fresh snapshot also lands exactly on an event's
    ``u`` (each batch is one market tick), so the local book is compared level by level."""
    symbol = stream.split("@")[0].upper()
    ws = connect(sim, "/ws/" + stream)
    try:
        buffered = [recv_json(ws, time.time() + 5)]
        snap = sim.get("/api/v3/depth", {"symbol": symbol, "limit": 5000}).json()
        for _ in range(20):   # retry the snapshot while it is older than the first buffered event
            if snap["lastUpdateId"] >= buffered[0]["U"]:
                break
            time.sleep(0.2)
            snap = sim.get("/api/v3/depth", {"symbol": symbol, "limit": 5000}).json()
        bids = {Decimal(p): Decimal(q) for p, q in snap["bids"]}
        asks = {Decimal(p): Decimal(q) for p, q in snap["asks"]}
        local_id = snap["lastUpdateId"]
        prev_u = None
        events = 0
        matched = 0
        deadline = time.time() + 10
        while (events < min_events or (exact and matched < 1)) and time.time() < deadline:
            ev = buffered.pop(0) if buffered else recv_json(ws, deadline)
            check_payload(stream, ev)
            if prev_u is not None:
                assert ev["U"] == prev_u + 1, (prev_u, ev["U"])
            prev_u = ev["u"]
            if ev["u"] <= local_id:
                continue
            assert ev["U"] <= local_id + 1 <= ev["u"], "gap between snapshot and stream"
            _apply(bids, ev["b"])
            _apply(asks, ev["a"])
            local_id = ev["u"]
            events += 1
            if exact and events >= 3 and events % 3 == 0:
                # a fresh snapshot taken exactly at the local id must equal the local book
                snap2 = sim.get("/api/v3/depth", {"symbol": symbol, "limit": 5000}).json()
                if snap2["lastUpdateId"] == local_id:
                    assert {Decimal(p): Decimal(q) for p, q in snap2["bids"]} == bids
                    assert {Decimal(p): Decimal(q) for p, q in snap2["asks"]} == asks
                    matched += 1
        assert events >= min_events and (matched >= 1 or not exact), (events, matched)
        assert max(bids) < min(asks)
    finally:
        ws.close()


# -- connection rules -----------------------------------------------------------------------------------

@pytest.fixture
def tight_sim(sim_factory):
    return sim_factory({"ws": {"ping_interval_s": 0.3, "pong_timeout_s": 0.8, "max_incoming_per_s": 5,
                               "lifetime_s": 30.0, "max_streams": 3}})


def test_server_pings_and_a_ponging_client_stays(tight_sim):
    ws = connect(tight_sim, "/ws")
    try:
        pings = 0
        deadline = time.time() + 2.0
        while time.time() < deadline:
            ws.settimeout(max(0.05, deadline - time.time()))
            try:
                opcode, frame = ws.recv_data_frame(control_frame=True)   # answers pings itself
            except websocket.WebSocketTimeoutException:
                continue
            assert opcode != websocket.ABNF.OPCODE_CLOSE
            pings += opcode == websocket.ABNF.OPCODE_PING
        assert pings >= 4
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})["result"] == []
    finally:
        ws.close()
    assert tight_sim.stats()["ws"]["disconnects"].get("pong_timeout", 0) == 0


def test_client_without_pong_is_dropped(tight_sim):
    ws = connect(tight_sim, "/ws")
    time.sleep(2.0)           # not reading: websocket-client only pongs while receiving
    assert closed_within(ws, 1.0) or ws.sock is None
    assert tight_sim.stats()["ws"]["disconnects"].get("pong_timeout") == 1


def test_incoming_message_limit_disconnects(tight_sim):
    ok = connect(tight_sim, "/ws")
    for i in range(3):
        assert request(ok, {"method": "LIST_SUBSCRIPTIONS", "id": i})["id"] == i
    ws = connect(tight_sim, "/ws")
    try:
        for i in range(8):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        pass
    assert closed_within(ws, 2.0)
    assert request(ok, {"method": "LIST_SUBSCRIPTIONS", "id": 99})["id"] == 99   # the other one lives
    ok.close()
    assert tight_sim.stats()["ws"]["disconnects"].get("rate_limit") == 1


def test_max_streams_per_connection(tight_sim):
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        connect(tight_sim, "/stream?streams=btcusdt@trade/ethusdt@trade/bnbusdt@trade/solusdt@trade")
    assert ei.value.status_code == 400
    ws = connect(tight_sim, "/stream?streams=btcusdt@trade/ethusdt@trade")
    try:
        r = request(ws, {"method": "SUBSCRIBE", "params": ["bnbusdt@trade", "solusdt@trade"], "id": 1})
        assert r["code"] == 2
        assert request(ws, {"method": "SUBSCRIBE", "params": ["bnbusdt@trade"], "id": 2})["result"] is None
    finally:
        ws.close()


def test_connection_lifetime(sim_factory):
    sim = sim_factory({"ws": {"lifetime_s": 1.0}})
    ws = connect(sim, "/ws/btcusdt@trade")
    t0 = time.time()
    assert closed_within(ws, 4.0)
    assert time.time() - t0 >= 0.9
    assert sim.stats()["ws"]["disconnects"].get("lifetime") == 1


# -- ground truth and faults --------------------------------------------------------------------------

def _drain_until_reply(ws, req_id, counts: dict, timeout: float = 5.0) -> None:
    ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["ethusdt@trade", "ethusdt@aggTrade"], "id": req_id}))
    deadline = time.time() + timeout
    while True:
        m = recv_json(ws, deadline)
        if isinstance(m, dict) and m.get("id") == req_id:
            return
        counts[m["e"]] = counts.get(m["e"], 0) + 1


def test_ws_message_counts_are_exact_per_connection(sim_factory):
    sim = sim_factory()
    conns = [connect(sim, "/ws/ethusdt@trade") for _ in range(3)]
    agg = connect(sim, "/ws/ethusdt@aggTrade")
    time.sleep(1.5)
    counts = [dict() for _ in range(4)]
    for i, ws in enumerate(conns + [agg]):
        _drain_until_reply(ws, 100 + i, counts[i])
        ws.close()
    got = sim.stats()["ws"]
    received_trades = sum(c.get("trade", 0) for c in counts)
    assert received_trades > 0
    assert got["messages_by_stream"]["ethusdt@trade"] == received_trades
    assert got["messages_by_stream"]["ethusdt@aggTrade"] == counts[3].get("aggTrade", 0)
    assert got["connections"]["streams"] == 4


def _lags(sim, path: str, n: int) -> list[float]:
    """Receive time − ``E`` of the first ``n`` events of a raw stream (same clock: loopback)."""
    ws = connect(sim, path)
    try:
        lags = []
        deadline = time.time() + 6
        while len(lags) < n:
            d = recv_json(ws, deadline)
            lags.append(time.time() * 1000 - d["E"])
        return lags
    finally:
        ws.close()


def test_ws_delay_holds_events_past_their_event_time(sim_factory):
    sim = sim_factory()
    r = sim.control("POST", "faults", {"kind": "ws_delay", "endpoints": ["btcusdt@trade"], "delay_ms": 300})
    assert r.status == 200, r.body
    plain_lag = _lags(sim, "/ws/ethusdt@trade", 3)
    lags = _lags(sim, "/ws/btcusdt@trade", 5)
    assert min(lags) >= 300 - 2, lags          # 2 ms: ms truncation of E and of the clock
    assert max(plain_lag) < 300, plain_lag
    s = sim.stats()
    assert s["delays"]["ws_event"]["count"] >= 5
    assert s["faults"]["ws_delay"] >= 5


def test_ws_disconnect_closes_matching_connections_once(sim_factory):
    sim = sim_factory()
    victim = connect(sim, "/ws/btcusdt@aggTrade")
    bystander = connect(sim, "/ws/ethusdt@aggTrade")
    recv_json(victim, time.time() + 5)
    r = sim.control("POST", "faults", {"kind": "ws_disconnect", "endpoints": ["btcusdt@aggTrade"], "count": 1})
    assert r.status == 200, r.body
    assert closed_within(victim, 3.0)
    second = connect(sim, "/ws/btcusdt@aggTrade")   # count 1: the rule is used up
    try:
        recv_json(second, time.time() + 5)
        recv_json(bystander, time.time() + 5)
        assert not closed_within(second, 1.5)
    finally:
        second.close()
        bystander.close()
    s = sim.stats()
    assert s["ws"]["disconnects"].get("fault") == 1
    assert s["faults"]["ws_disconnect"] == 1


def test_ws_stall_pauses_then_resumes_in_order(sim_factory):
    sim = sim_factory()
    ws = connect(sim, "/ws/btcusdt@trade")
    try:
        recv_json(ws, time.time() + 5)
        r = sim.control("POST", "faults", {"kind": "ws_stall", "endpoints": ["btcusdt@trade"],
                                           "duration_ms": 1500, "count": 1})
        assert r.status == 200, r.body
        arrivals = [(time.time(), 0)]
        deadline = time.time() + 6
        while time.time() < deadline - 2 and len(arrivals) < 40:
            d = recv_json(ws, deadline)
            arrivals.append((time.time(), d["t"]))
    finally:
        ws.close()
    times = [a for a, _ in arrivals]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) >= 1.2, gaps                                 # the stall
    ids = [t for _, t in arrivals]
    assert ids == sorted(ids)                                     # late, not reordered
    assert sim.stats()["faults"]["ws_stall"] == 1


def test_server_shutdown_event_on_clean_stop(sim_factory):
    sim = sim_factory()
    raw = connect(sim, "/ws")
    comb = connect(sim, "/stream?streams=btcusdt@trade")
    recv_json(comb, time.time() + 5)
    sim.stop()
    got = None
    deadline = time.time() + 5
    while got is None and time.time() < deadline:
        m = recv_json(raw, deadline)
        if m.get("e") == "serverShutdown":
            got = m
    assert got is not None and isinstance(got["E"], int)
    deadline = time.time() + 5
    while True:
        m = recv_json(comb, deadline)
        if m["stream"] == "!serverShutdown":
            assert m["data"]["e"] == "serverShutdown"
            break


# -- URL forms without a stream (reference §1) and request ids (reference §8) ---------------------------

EMPTY_PATHS = ["/ws", "/ws/", "/ws/0", "/ws/1", "/ws/17", "/ws/btcusdt@nonsense", "/ws/xxxyyy@trade",
               "/ws/BTCUSDT@trade", "/ws/a/b", "/stream", "/stream?streams=", "/stream/"]


def test_ws_paths_without_a_valid_stream_open_and_wait_for_subscribe(sim):
    conns = {path: connect(sim, path) for path in EMPTY_PATHS}
    try:
        time.sleep(1.2)    # market data flows meanwhile (trades, book, tickers): none of it may arrive
        for path, ws in conns.items():
            ws.settimeout(0.05)
            with pytest.raises(websocket.WebSocketTimeoutException):
                ws.recv()
            assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": [], "id": 1}, path
            assert request(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "btcusdt@kline_1s"],
                                "id": 2}) == {"result": None, "id": 2}, path
        for path, ws in conns.items():
            m = recv_json(ws, time.time() + 5)
            if path.startswith("/stream"):
                assert m["stream"] in ("btcusdt@trade", "btcusdt@kline_1s"), (path, m)
                m = m["data"]
            assert m["e"] in ("trade", "kline") and m["s"] == "BTCUSDT", (path, m)
            assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})["result"] == \
                ["btcusdt@trade", "btcusdt@kline_1s"]
    finally:
        for ws in conns.values():
            ws.close()


def test_ws_path_with_a_valid_stream_still_streams_it(sim):
    ws = connect(sim, "/ws/btcusdt@kline_1s")
    try:
        m = recv_json(ws, time.time() + 5)
        assert m["e"] == "kline" and "stream" not in m
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})["result"] == ["btcusdt@kline_1s"]
    finally:
        ws.close()


VALID_IDS = [2**63 - 1, -2**63, 0, -1, "a" * 36, "0123ABCxyz", "7", None]
INVALID_IDS = [2**63, -2**63 - 1, "a" * 37, "123e4567-e89b-12d3-a456-426614174000", "id_1", "x y", True, 1.5,
               [1], {"x": 1}]


def test_request_ids_are_echoed_for_every_control_method(sim):
    ws = connect(sim, "/ws/0")
    try:
        for i, rid in enumerate(VALID_IDS):
            method = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "GET_PROPERTY", "SET_PROPERTY")[i % 5]
            params = {"SUBSCRIBE": ["ethusdt@miniTicker"], "UNSUBSCRIBE": ["ethusdt@miniTicker"],
                      "LIST_SUBSCRIPTIONS": [], "GET_PROPERTY": ["combined"],
                      "SET_PROPERTY": ["combined", False]}[method]
            text = json.dumps({"method": method, "params": params, "id": rid})
            r = reply_to_raw(ws, text)
            assert "code" not in r and r["id"] == rid and type(r["id"]) is type(rid), (rid, r)
            if i % 4 == 3:
                time.sleep(1.05)     # stay under 5 incoming messages per second
        # an absent id is null
        r = reply_to_raw(ws, json.dumps({"method": "LIST_SUBSCRIPTIONS"}))
        assert r == {"result": [], "id": None}
    finally:
        ws.close()


def test_invalid_request_ids_are_code_2_and_the_connection_survives(sim):
    ws = connect(sim, "/ws")
    try:
        for n, rid in enumerate(INVALID_IDS, 1):
            r = reply_to_raw(ws, json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": rid}))
            assert set(r) == {"code", "msg", "id"} and r["code"] == 2 and r["id"] is None, (rid, r)
            assert r["msg"].startswith("Invalid request")
            if n % 4 == 0:
                time.sleep(1.05)
        time.sleep(1.05)
        # SUBSCRIBE with a bad id subscribes nothing
        r = reply_to_raw(ws, json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": "a-b"}))
        assert r["code"] == 2
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "ok"}) == {"result": [], "id": "ok"}
    finally:
        ws.close()


def test_control_errors_echo_valid_ids_of_any_kind(sim):
    ws = connect(sim, "/ws")
    try:
        big = -2**63
        assert reply_to_raw(ws, json.dumps({"method": "SET_PROPERTY", "params": ["nope", True], "id": big})) == \
            {"code": 0, "msg": "Unknown property", "id": big}
        r = reply_to_raw(ws, json.dumps({"method": "SET_PROPERTY", "params": ["combined", 1], "id": "Z9"}))
        assert r["code"] == 1 and r["id"] == "Z9"
        r = reply_to_raw(ws, json.dumps({"method": "GET_PROPERTY", "params": ["combined", 1], "id": None}))
        assert r["code"] == 2 and r["id"] is None and "too many parameters" in r["msg"]
        r = reply_to_raw(ws, json.dumps({"method": "subscribe", "params": [], "id": "x"}))
        assert r["code"] == 2 and r["id"] == "x" and "unknown variant" in r["msg"]
    finally:
        ws.close()


def test_url_encoded_stream_urls(sim):
    for path in ("/ws/btcusdt%40kline_1s", "/stream?streams=btcusdt%40kline_1s%2Fethusdt%40kline_1s"):
        ws = connect(sim, path)
        try:
            m = recv_json(ws, time.time() + 5)
            if path.startswith("/stream"):
                assert m["stream"] in ("btcusdt@kline_1s", "ethusdt@kline_1s")
                m = m["data"]
            assert m["e"] == "kline"
        finally:
            ws.close()


def test_new_stream_connections_per_ip_are_capped(sim_factory):
    sim = sim_factory({"limits": {"stream_connections_per_5m": 3}})
    opened = [connect(sim, p) for p in ("/ws", "/ws/btcusdt@trade", "/stream?streams=btcusdt@trade")]
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as ei:
            connect(sim, "/ws/0")
        assert ei.value.status_code == 429
        body = json.loads(ei.value.resp_body)
        assert body["code"] == -1003 and "3 connections per 5 MINUTE" in body["msg"]
        assert int(ei.value.resp_headers["retry-after"]) >= 1
        api = websocket.create_connection(sim.ws_url + "/ws-api/v3", timeout=5)   # a separate count
        api.close()
        ip = sim.control("GET", "limits").json()["ips"]["127.0.0.1"]
        assert (ip["stream_connections_5m"], ip["ws_connections_5m"]) == (3, 1)
    finally:
        for ws in opened:
            ws.close()


# -- avgPrice and the rolling-window tickers (reference §8) -------------------------------------------

FROZEN = {"market": {"trades_per_second": 0}}     # no synthetic taker flow: trades stay put


def _events(ws, per_stream: int, streams: set[str], timeout: float = 15.0) -> dict[str, list]:
    """``per_stream`` events of each of ``streams`` from a combined connection (checked)."""
    got: dict[str, list] = {s: [] for s in streams}
    deadline = time.time() + timeout
    while any(len(v) < per_stream for v in got.values()):
        m = recv_json(ws, deadline)
        if m.get("stream") in got:
            check_payload(m["stream"], m["data"])
            got[m["stream"]].append(m["data"])
    return got


def _e(d) -> int:
    """Event time of an event: ``E`` (``t`` for referencePrice, which has no ``E``)."""
    d = d[0] if isinstance(d, list) else d
    return d["E"] if "E" in d else d["t"]


def test_avg_price_stream_equals_rest_avg_price(sim_factory):
    """``w`` is REST ``avgPrice.price`` at the event (the engine caches the value per second, so the
    read right after an event lands in the same second; the read before covers a late delivery),
    ``T`` its ``closeTime`` (the last trade time, fixed while the market is frozen)."""
    sim = sim_factory(FROZEN)
    rest = lambda: sim.get("/api/v3/avgPrice", {"symbol": "ETHUSDT"}).json()   # noqa: E731
    ws = connect(sim, "/ws/ethusdt@avgPrice")
    try:
        before = rest()
        for _ in range(4):
            d = recv_json(ws, time.time() + 5)
            after = rest()
            check_payload("ethusdt@avgPrice", d)
            assert d["s"] == "ETHUSDT" and "stream" not in d
            assert d["w"] in (before["price"], after["price"]), (d, before, after)
            assert d["T"] == after["closeTime"] == before["closeTime"], (d, before, after)
            before = after
    finally:
        ws.close()
    last = sim.get("/api/v3/trades", {"symbol": "ETHUSDT", "limit": 1}).json()[0]
    assert d["T"] == last["time"]


def test_ticker_family_cadence_is_one_event_per_server_second(sim):
    """By event times: never two events of a stream in one server second, at most one second skipped
    over six events (a stalled machine), and every stream of one round carries the same ``E``."""
    streams = {"btcusdt@avgPrice", "btcusdt@ticker_1h", "ethusdt@ticker_4h", "!ticker_1d@arr", "btcusdt@ticker",
               "bnbusdt@referencePrice"}
    ws = connect(sim, "/stream?streams=" + "/".join(sorted(streams)))
    try:
        got = _events(ws, 6, streams)
    finally:
        ws.close()
    for name, evs in got.items():
        secs = [_e(d) // 1000 for d in evs]
        assert all(b > a for a, b in zip(secs, secs[1:])), (name, secs)
        assert secs[-1] - secs[0] <= len(secs), (name, secs)
    rounds: dict[int, set[int]] = {}
    for evs in got.values():
        for d in evs:
            rounds.setdefault(_e(d) // 1000, set()).add(_e(d))
    assert all(len(es) == 1 for es in rounds.values()), rounds


def test_ticker_1d_equals_the_24h_ticker_of_the_same_round(sim):
    """``@ticker_1d`` is the 24 h ticker's computation: same values whenever both carry the same ``E``."""
    ws = connect(sim, "/stream?streams=solusdt@ticker/solusdt@ticker_1d")
    try:
        got = _events(ws, 3, {"solusdt@ticker", "solusdt@ticker_1d"})
    finally:
        ws.close()
    full = {d["E"]: d for d in got["solusdt@ticker"]}
    pairs = [(full[d["E"]], d) for d in got["solusdt@ticker_1d"] if d["E"] in full]
    assert len(pairs) >= 2, got
    for t, w in pairs:
        for f in ("p", "P", "o", "h", "l", "c", "w", "v", "q", "O", "C", "F", "L", "n"):
            assert w[f] == t[f], (f, t, w)
        assert w["e"] == "1dTicker" and t["e"] == "24hrTicker"


@pytest.mark.parametrize("window", ["1h", "4h"])
def test_rolling_ticker_agrees_with_rest_klines_trades_and_price(sim_factory, window):
    """In a frozen market the 1 h / 4 h windows match REST: ``v``/``q`` are the sums of the 1m klines
    from the minute containing ``O`` to ``C`` (open candle included), ``h``/``l`` bound the closed
    ones, ``c`` is the last price, ``w`` = q / v, ``F`` the first trade at or after ``O``, ``L`` the
    last trade, ``n`` = L − F + 1."""
    sim = sim_factory(FROZEN)
    stream = f"bnbusdt@ticker_{window}"
    ws = connect(sim, "/stream?streams=" + stream)
    try:
        evs = _events(ws, 2, {stream})[stream]
    finally:
        ws.close()
    price = sim.get("/api/v3/ticker/price", {"symbol": "BNBUSDT"}).json()["price"]
    last_trade = sim.get("/api/v3/trades", {"symbol": "BNBUSDT", "limit": 1}).json()[0]
    for d in evs:
        assert d["s"] == "BNBUSDT" and abs(d["C"] - d["E"]) < 1000, d
        start = d["O"] - d["O"] % 60_000
        ks = sim.get("/api/v3/klines", {"symbol": "BNBUSDT", "interval": "1m", "startTime": start,
                                        "endTime": d["C"], "limit": 1000}).json()
        assert ks[0][0] == start and ks[-1][0] <= d["C"] <= ks[-1][6]
        assert len(ks) == WINDOW_MS[window] // 60_000 + 1
        assert Decimal(d["v"]) == sum(Decimal(k[5]) for k in ks)
        assert Decimal(d["q"]) == sum(Decimal(k[7]) for k in ks)
        closed = ks[:-1]
        assert Decimal(d["h"]) >= max(Decimal(k[2]) for k in closed)
        assert Decimal(d["l"]) <= min(Decimal(k[3]) for k in closed)
        assert d["c"] == price
        v8, q8 = int(Decimal(d["v"]) * 10**8), int(Decimal(d["q"]) * 10**8)
        assert int(Decimal(d["w"]) * 10**8) == q8 * 10**8 // v8
        first = sim.get("/api/v3/aggTrades", {"symbol": "BNBUSDT", "startTime": d["O"], "limit": 1}).json()[0]
        assert (d["F"], d["L"], d["n"]) == (first["f"], last_trade["id"], last_trade["id"] - first["f"] + 1)
        pct = (Decimal(d["p"]) * 100 / Decimal(d["o"])).quantize(Decimal("0.001"))
        assert abs(Decimal(d["P"]) - pct) <= Decimal("0.001"), (d["P"], pct)


STILL = {"market": {"trades_per_second": 0},     # frozen, and a flat price path: values rarely change
         "symbols": [{"symbol": sym, "base": sym[:3], "quote": "USDT", "price": price, "volatility": 0.0}
                     for sym, price in (("BTCUSDT", "65000.00"), ("ETHUSDT", "3200.00"), ("SOLUSDT", "150.00"))]}
_WINDOW_VALUES = ("p", "P", "o", "h", "l", "c", "w", "v", "q", "F", "L", "n")


def test_rolling_ticker_arr_holds_only_changed_symbols(sim_factory):
    """A new ``!ticker_1h@arr`` subscription starts with every symbol; afterwards a symbol is in an
    array only when one of its values changed since its previous appearance (the window's ``O``/``C``
    move every second and do not count). Unsubscribing forgets that state: subscribing again
    starts with every symbol again."""
    sim = sim_factory(STILL)
    ws = connect(sim, "/ws")
    try:
        for rid in (1, 3):
            assert request(ws, {"method": "SUBSCRIBE", "params": ["!ticker_1h@arr"], "id": rid}) == \
                {"result": None, "id": rid}
            first = recv_json(ws, time.time() + 5)
            check_payload("!ticker_1h@arr", first)
            assert sorted(item["s"] for item in first) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
            last = {item["s"]: item for item in first}
            deadline = time.time() + 3.5
            while True:
                try:
                    d = recv_json(ws, deadline)
                except websocket.WebSocketTimeoutException:
                    break
                check_payload("!ticker_1h@arr", d)
                for item in d:
                    prev = last[item["s"]]
                    assert any(item[f] != prev[f] for f in _WINDOW_VALUES), (prev, item)
                    last[item["s"]] = item
            assert request(ws, {"method": "UNSUBSCRIBE", "params": ["!ticker_1h@arr"], "id": rid + 1}) == \
                {"result": None, "id": rid + 1}
    finally:
        ws.close()


def test_new_streams_by_live_subscribe_and_bad_names_refused(sim):
    ws = connect(sim, "/ws")
    names = ["solusdt@avgPrice", "solusdt@ticker_1h", "!ticker_4h@arr"]
    try:
        assert request(ws, {"method": "SUBSCRIBE", "params": names, "id": 1}) == {"result": None, "id": 1}
        got = set()
        deadline = time.time() + 5
        while got != set(names):
            d = recv_json(ws, deadline)
            assert "stream" not in d
            if isinstance(d, list):
                check_payload("!ticker_4h@arr", d)
                got.add("!ticker_4h@arr")
            elif d.get("e") == "avgPrice":
                check_payload("solusdt@avgPrice", d)
                got.add("solusdt@avgPrice")
            elif d.get("e") == "1hTicker":
                check_payload("solusdt@ticker_1h", d)
                got.add("solusdt@ticker_1h")
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2}) == {"result": names, "id": 2}
        assert request(ws, {"method": "UNSUBSCRIBE", "params": names, "id": 3}) == {"result": None, "id": 3}
        sent = sim.stats()["ws"]["messages_by_stream"]
        time.sleep(1.1)
        for bad in ("solusdt@ticker_2h", "solusdt@avgprice", "!ticker@arr", "solusdt@ticker_1h@1000ms"):
            r = request(ws, {"method": "SUBSCRIBE", "params": [bad], "id": 4})
            assert r["code"] == 2 and r["id"] == 4 and bad in r["msg"], r
        time.sleep(1.1)     # stay under 5 incoming messages per second; a ticker round passes
        assert request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 5}) == {"result": [], "id": 5}
        after = sim.stats()["ws"]["messages_by_stream"]
        assert {n: after.get(n) for n in names} == {n: sent.get(n) for n in names}   # nothing sent since
    finally:
        ws.close()
    for path, code in (("/stream?streams=btcusdt@ticker_1w", -1100), ("/stream?streams=btcusdt@avgPrice@1s", -1100),
                       ("/stream?streams=!ticker_1H@arr", -1100), ("/stream?streams=!ticker@arr", -1100),
                       ("/stream?streams=BTCUSDT@avgPrice", -1100), ("/stream?streams=xxxyyy@ticker_1h", -1121),
                       ("/stream?streams=xxxyyy@avgPrice", -1121), ("/stream?streams=btcusdt@referenceprice", -1100),
                       ("/stream?streams=xxxyyy@referencePrice", -1121)):
        with pytest.raises(websocket.WebSocketBadStatusException) as ei:
            connect(sim, path)
        assert ei.value.status_code == 400 and json.loads(ei.value.resp_body)["code"] == code, path
