"""User data: listenKey lifecycle (unit, injected clock) and account events over real sockets.

Covers the legacy listenKey stream (``/ws/<listenKey>``, bare events, ``listenKeyExpired``) and
that an executed account order prints on the public trade stream.
"""
from __future__ import annotations

import json
import random
import re
import time

import pytest
import websocket

from letrade_perf.binance.errors import BinanceError
from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import SimConfig, WsSpec
from letrade_perf.sim.events import EventHub
from letrade_perf.sim.userdata import ListenKeys, UserDataRouter


def _keys(ttl_s: float = 60.0):
    clock = ManualClock()
    cfg = SimConfig(ws=WsSpec(listen_key_ttl_s=ttl_s))
    return ListenKeys(cfg, clock, random.Random(7)), clock


# -- ListenKeys (injected clock) ------------------------------------------------------------------

def test_create_returns_64_alphanumerics_and_reuses_the_active_key():
    lk, clock = _keys(60)
    k1 = lk.create("acct-a")
    assert re.fullmatch(r"[A-Za-z0-9]{64}", k1)
    clock.advance(30_000)
    assert lk.create("acct-a") == k1                 # same account: same key, extended
    clock.advance(45_000)                            # 75 s after creation, 45 s after the extension
    assert lk.account_of(k1) == "acct-a"
    k2 = lk.create("acct-b")
    assert k2 != k1 and lk.account_of(k2) == "acct-b"


def test_keepalive_extends_and_unknown_or_foreign_keys_are_1125():
    lk, clock = _keys(10)
    key = lk.create("a")
    clock.advance(8_000)
    lk.keepalive("a", key)
    clock.advance(8_000)
    assert lk.account_of(key) == "a"
    for bad in (lambda: lk.keepalive("a", "x" * 64), lambda: lk.keepalive("b", key),
                lambda: lk.close("b", key)):
        with pytest.raises(BinanceError) as ei:
            bad()
        assert ei.value.code == -1125
    lk.close("a", key)
    with pytest.raises(BinanceError) as ei:
        lk.keepalive("a", key)
    assert ei.value.code == -1125


def test_expiry_notifies_listeners_once():
    lk, clock = _keys(5)
    ended = []
    lk.on_end(lambda key, acct, reason: ended.append((key, acct, reason)))
    key = lk.create("a")
    clock.advance(4_999)
    assert lk.expire_due() == []
    clock.advance(1)
    assert lk.expire_due() == [key]
    assert ended == [(key, "a", "expired")]
    assert lk.expire_due() == [] and lk.account_of(key) is None
    new = lk.create("a")
    assert new != key


def test_router_serialises_once_and_routes_by_account():
    hub = EventHub()
    router = UserDataRouter(hub)
    got_a, got_b = [], []
    ta = router.add("a", lambda text, ev: got_a.append(text))
    router.add("a", lambda text, ev: got_a.append(text))
    router.add("b", lambda text, ev: got_b.append(text))
    hub.user("a", {"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "1.0", "T": 1})
    assert len(got_a) == 2 and got_a[0] is got_a[1] and got_b == []
    assert json.loads(got_a[0])["e"] == "balanceUpdate"
    router.remove("a", ta)
    hub.user("a", {"e": "x", "E": 2})
    assert len(got_a) == 3


# -- over real sockets ---------------------------------------------------------------------------

def _recv_json(ws, deadline: float):
    ws.settimeout(max(0.05, deadline - time.time()))
    return json.loads(ws.recv())


def _market_buy(sim, qty="0.001"):
    r = sim.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                             "quantity": qty, "newOrderRespType": "FULL"})
    assert r.status == 200, r.body
    return r.json()


def _listen_key(sim) -> str:
    r = sim.request("POST", "/api/v3/userDataStream", headers={"X-MBX-APIKEY": sim.api_key})
    assert r.status == 200, r.body
    key = r.json()["listenKey"]
    assert re.fullmatch(r"[A-Za-z0-9]{64}", key)
    return key


def _execution_reports(ws, order_id: int, timeout: float = 5.0) -> list[dict]:
    """executionReports of ``order_id`` until a final status, bare or wrapped."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = _recv_json(ws, deadline)
        ev = m.get("event", m) if isinstance(m, dict) else m
        if isinstance(ev, dict) and ev.get("e") == "executionReport" and ev.get("i") == order_id:
            out.append(ev)
            if ev["X"] in ("FILLED", "CANCELED", "EXPIRED", "REJECTED"):
                return out
    raise AssertionError(f"no final executionReport for order {order_id}: {out}")


def test_listen_key_stream_delivers_bare_execution_reports_in_order(sim):
    key = _listen_key(sim)
    ws = websocket.create_connection(f"{sim.ws_url}/ws/{key}", timeout=5)
    try:
        order = _market_buy(sim)
        reports = _execution_reports(ws, order["orderId"])
    finally:
        ws.close()
    assert [r["x"] for r in reports][0] == "NEW" and reports[0]["X"] == "NEW"
    assert all(r["x"] == "TRADE" for r in reports[1:]) and len(reports) >= 2
    assert reports[-1]["X"] == "FILLED"
    assert [r["X"] for r in reports[1:-1]] == ["PARTIALLY_FILLED"] * (len(reports) - 2)
    fills = order["fills"]
    assert [r["t"] for r in reports[1:]] == [f["tradeId"] for f in fills]
    for r in reports:
        assert r["s"] == "BTCUSDT" and r["S"] == "BUY" and r["o"] == "MARKET"
        assert isinstance(r["E"], int) and isinstance(r["T"], int) and isinstance(r["i"], int)
    assert reports[-1]["z"] == order["executedQty"]


def test_unknown_listen_key_is_refused_before_upgrade(sim):
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        websocket.create_connection(f"{sim.ws_url}/ws/{'A' * 64}", timeout=5)
    assert ei.value.status_code == 400
    assert json.loads(ei.value.resp_body)["code"] == -1125


def test_listen_key_expiry_sends_listen_key_expired_and_closes(sim_factory):
    sim = sim_factory({"ws": {"listen_key_ttl_s": 1.0}})
    key = _listen_key(sim)
    ws = websocket.create_connection(f"{sim.ws_url}/ws/{key}", timeout=5)
    deadline = time.time() + 6
    msg = _recv_json(ws, deadline)
    assert msg["e"] == "listenKeyExpired" and msg["listenKey"] == key and isinstance(msg["E"], int)
    ws.settimeout(3)
    try:
        assert ws.recv() == ""        # close frame
    except websocket.WebSocketConnectionClosedException:
        pass
    r = sim.request("PUT", "/api/v3/userDataStream", params={"listenKey": key},
                    headers={"X-MBX-APIKEY": sim.api_key})
    assert r.status == 400 and r.json()["code"] == -1125
    assert sim.stats()["ws"]["connections"].get("listenKey") == 1


def test_account_order_trades_appear_on_the_trade_stream(sim):
    ws = websocket.create_connection(f"{sim.ws_url}/stream?streams=btcusdt@trade/btcusdt@aggTrade", timeout=5)
    try:
        time.sleep(0.2)
        order = _market_buy(sim)
        want = {f["tradeId"] for f in order["fills"]}
        seen_trade, seen_agg = set(), set()
        deadline = time.time() + 5
        while (want - seen_trade or want - seen_agg) and time.time() < deadline:
            m = _recv_json(ws, deadline)
            d = m["data"]
            if m["stream"] == "btcusdt@trade":
                seen_trade.add(d["t"])
            else:
                seen_agg.update(range(d["f"], d["l"] + 1))
    finally:
        ws.close()
    assert want <= seen_trade, (want, seen_trade)
    assert want <= seen_agg
