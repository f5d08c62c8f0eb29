"""The simulator's WebSocket API (``/ws-api/v3``) over real sockets with websocket-client."""
from __future__ import annotations

import json
import time

import pytest
import websocket

from letrade_perf.binance.signing import ed25519_sign, hmac_sha256, ws_api_payload
from letrade_perf.sim.config import DEMO_ED25519_API_KEY, DEMO_ED25519_PRIVATE_PEM


class Api:
    """A WS API client: ``call(method, params, sign=None|"hmac"|"ed25519")`` → response frame;
    events (frames with ``event``) received meanwhile are kept in ``events``."""

    def __init__(self, sim, query: str = ""):
        self.sim = sim
        self.ws = websocket.create_connection(sim.ws_api_url + query, timeout=5, skip_utf8_validation=True)
        self.events: list[dict] = []
        self._n = 0

    def send(self, obj) -> None:
        self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    def recv(self, timeout: float = 5.0) -> dict:
        self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def call(self, method: str, params: dict | None = None, sign: str | None = None, rid=None) -> dict:
        p = dict(params or {})
        if sign:
            p.setdefault("timestamp", int(time.time() * 1000))
            if sign == "hmac":
                p["apiKey"] = self.sim.api_key
                p["signature"] = hmac_sha256(self.sim.secret, ws_api_payload(p))
            else:
                p["apiKey"] = DEMO_ED25519_API_KEY
                p["signature"] = ed25519_sign(DEMO_ED25519_PRIVATE_PEM, ws_api_payload(p))
        self._n += 1
        rid = rid if rid is not None else f"r{self._n}"
        req = {"id": rid, "method": method}
        if p:
            req["params"] = p
        self.send(req)
        return self.reply(rid)

    def reply(self, rid, timeout: float = 5.0) -> dict:
        deadline = time.time() + timeout
        while True:
            m = self.recv(max(0.05, deadline - time.time()))
            if "event" in m:
                self.events.append(m)
            elif m.get("id") == rid:
                return m

    def wait_events(self, pred, timeout: float = 5.0) -> list[dict]:
        deadline = time.time() + timeout
        while not pred(self.events) and time.time() < deadline:
            try:
                m = self.recv(max(0.05, deadline - time.time()))
            except websocket.WebSocketTimeoutException:
                break
            if "event" in m:
                self.events.append(m)
        return self.events

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def api(sim):
    a = Api(sim)
    yield a
    a.close()


def weight_count(frame: dict) -> int:
    return next(r["count"] for r in frame["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT")


# -- public methods ------------------------------------------------------------------------------

def test_public_methods_and_rate_limit_counts(api):
    r = api.call("ping")
    assert r["status"] == 200 and r["result"] == {}
    w0 = weight_count(r)
    t = api.call("time")
    assert isinstance(t["result"]["serverTime"], int) and abs(t["result"]["serverTime"] - time.time() * 1000) < 5000
    assert weight_count(t) == w0 + 1
    d = api.call("depth", {"symbol": "BTCUSDT", "limit": 10})
    assert d["status"] == 200 and len(d["result"]["bids"]) == 10 and isinstance(d["result"]["lastUpdateId"], int)
    assert weight_count(d) == w0 + 1 + 5
    info = api.call("exchangeInfo", {"symbols": ["BTCUSDT", "ETHUSDT"]})
    assert [s["symbol"] for s in info["result"]["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert weight_count(info) == w0 + 26
    p = api.call("ticker.price", {"symbol": "ETHUSDT"})
    assert p["result"]["symbol"] == "ETHUSDT" and float(p["result"]["price"]) > 0
    b = api.call("ticker.book", {"symbol": "ETHUSDT"})
    assert float(b["result"]["bidPrice"]) < float(b["result"]["askPrice"])
    quiet = api.call("time", {"returnRateLimits": False})
    assert "rateLimits" not in quiet and quiet["status"] == 200
    bad = api.call("depth", {"symbol": "NOPE"})
    assert bad["status"] == 400 and bad["error"]["code"] == -1121 and "rateLimits" in bad


def test_return_rate_limits_false_on_the_url(sim):
    a = Api(sim, "?returnRateLimits=false")
    try:
        assert "rateLimits" not in a.call("ping")
        assert "rateLimits" in a.call("ping", {"returnRateLimits": True})
    finally:
        a.close()


def test_malformed_frames_get_400_errors_and_the_connection_survives(api):
    api.send("{oops")
    m = api.recv()
    assert m["id"] is None and m["status"] == 400 and m["error"]["code"] == -1135
    api.send({"id": 7, "params": {}})
    m = api.recv()
    assert m["id"] == 7 and m["status"] == 400 and m["error"]["code"] == -1102
    api.send({"id": 8, "method": "order.explode"})
    m = api.recv()
    assert m["id"] == 8 and m["status"] == 400 and m["error"]["code"] == -1020
    api.send({"id": 9, "method": "ping", "params": [1, 2]})
    m = api.recv()
    assert m["id"] == 9 and m["status"] == 400
    api.send("[]")
    assert api.recv()["status"] == 400
    assert api.call("v3/ping")["status"] == 200     # explicit version prefix
    stats = api.sim.stats()["ws_api"]
    assert stats["invalid"]["by_status"]["400"] >= 3 and stats["unknown"]["by_status"]["400"] >= 1


# -- signed requests and orders ------------------------------------------------------------------

def test_signed_order_lifecycle_with_hmac(api):
    acct = api.call("account.status", sign="hmac")
    assert acct["status"] == 200 and any(b["asset"] == "USDT" for b in acct["result"]["balances"])
    assert weight_count(acct) >= 20
    bad = api.call("account.status", {"timestamp": int(time.time() * 1000)})
    assert bad["status"] == 400 and bad["error"]["code"] == -1102          # no apiKey, no session
    price = float(api.call("ticker.price", {"symbol": "BTCUSDT"})["result"]["price"])
    limit = f"{price * 0.8:.2f}"
    placed = api.call("order.place", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                      "quantity": "0.001", "price": limit}, sign="hmac")
    assert placed["status"] == 200, placed
    oid = placed["result"]["orderId"]
    kinds = [r["rateLimitType"] for r in placed["rateLimits"]]
    assert kinds.count("ORDERS") == 2
    st = api.call("order.status", {"symbol": "BTCUSDT", "orderId": oid}, sign="hmac")
    assert st["result"]["status"] == "NEW"
    opened = api.call("openOrders.status", {"symbol": "BTCUSDT"}, sign="hmac")
    assert oid in [o["orderId"] for o in opened["result"]]
    c = api.call("order.cancel", {"symbol": "BTCUSDT", "orderId": oid}, sign="hmac")
    assert c["status"] == 200 and c["result"]["status"] == "CANCELED"
    again = api.call("order.cancel", {"symbol": "BTCUSDT", "orderId": oid}, sign="hmac")
    assert again["status"] == 400 and again["error"]["code"] == -2011
    tested = api.call("order.test", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"},
                      sign="hmac")
    assert tested["status"] == 200 and tested["result"] == {}
    cancel_all = api.call("openOrders.cancelAll", {"symbol": "BTCUSDT"}, sign="hmac")
    assert cancel_all["status"] in (200, 400)
    wrong = api.call("order.status", {"symbol": "BTCUSDT", "orderId": oid, "timestamp": int(time.time() * 1000),
                                      "apiKey": api.sim.api_key, "signature": "0" * 64})
    assert wrong["status"] == 400 and wrong["error"]["code"] == -1022


def test_session_logon_is_ed25519_only_and_authorises_later_requests(api):
    h = api.call("session.logon", sign="hmac")
    assert h["status"] == 401
    s = api.call("session.status")
    assert s["result"]["apiKey"] is None and s["result"]["authorizedSince"] is None
    r = api.call("session.logon", sign="ed25519")
    assert r["status"] == 200 and r["result"]["apiKey"] == DEMO_ED25519_API_KEY
    assert isinstance(r["result"]["connectedSince"], int) and r["result"]["userDataStream"] is False
    acct = api.call("account.status", {"timestamp": int(time.time() * 1000)})   # no apiKey/signature
    assert acct["status"] == 200
    stale = api.call("account.status", {"timestamp": int(time.time() * 1000) - 120_000})
    assert stale["status"] == 400 and stale["error"]["code"] == -1021
    out = api.call("session.logout")
    assert out["result"]["apiKey"] is None
    assert api.call("account.status", {"timestamp": int(time.time() * 1000)})["status"] == 400


# -- user data subscriptions -----------------------------------------------------------------------

def _reports(events, order_id):
    return [e["event"] for e in events if e["event"].get("e") == "executionReport" and e["event"]["i"] == order_id]


def _final(events, order_id):
    r = _reports(events, order_id)
    return bool(r) and r[-1]["X"] in ("FILLED", "CANCELED", "EXPIRED", "REJECTED")


def test_user_data_subscription_receives_execution_reports_in_order(sim, api):
    sub = api.call("userDataStream.subscribe")
    assert sub["status"] != 200                               # needs session.logon
    assert api.call("session.logon", sign="ed25519")["status"] == 200
    sub = api.call("userDataStream.subscribe")
    assert sub["status"] == 200 and sub["result"] == {"subscriptionId": 0}
    dup = api.call("userDataStream.subscribe")
    assert dup["status"] == 400 and dup["error"]["code"] == -2035
    hmac_sub = api.call("userDataStream.subscribe.signature", sign="hmac")
    assert hmac_sub["result"] == {"subscriptionId": 1}
    assert api.call("session.subscriptions")["result"] == [{"subscriptionId": 0}, {"subscriptionId": 1}]
    assert api.call("session.status")["result"]["userDataStream"] is True

    # an order of the HMAC account, placed over REST, arrives on subscription 1 only
    r = sim.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                             "quantity": "0.002", "newOrderRespType": "FULL"})
    assert r.status == 200, r.body
    oid = r.json()["orderId"]
    api.wait_events(lambda ev: _final(ev, oid) and any(e["event"]["e"] == "outboundAccountPosition" for e in ev))
    reports = _reports(api.events, oid)
    assert reports[0]["x"] == "NEW" and reports[0]["X"] == "NEW"
    assert [x["x"] for x in reports[1:]] == ["TRADE"] * (len(reports) - 1) and reports[-1]["X"] == "FILLED"
    assert {e["subscriptionId"] for e in api.events if e["event"].get("i") == oid} == {1}
    assert any(e["event"]["e"] == "outboundAccountPosition" and e["subscriptionId"] == 1 for e in api.events)

    # an order of the Ed25519 account placed over the WS API itself arrives on subscription 0
    api.events.clear()
    placed = api.call("order.place", {"symbol": "ETHUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01",
                                      "timestamp": int(time.time() * 1000)})
    assert placed["status"] == 200, placed
    oid2 = placed["result"]["orderId"]
    api.wait_events(lambda ev: _final(ev, oid2))
    reports = _reports(api.events, oid2)
    assert [x["x"] for x in reports][:2] == ["NEW", "TRADE"] and reports[-1]["X"] == "FILLED"
    assert {e["subscriptionId"] for e in api.events if e["event"].get("i") == oid2} == {0}

    un = api.call("userDataStream.unsubscribe", {"subscriptionId": 1})
    assert un["status"] == 200 and un["result"] == {}
    api.wait_events(lambda ev: any(e["event"]["e"] == "eventStreamTerminated" for e in ev))
    assert any(e == {"subscriptionId": 1, "event": {"e": "eventStreamTerminated", "E": e["event"]["E"]}}
               for e in api.events)
    assert api.call("userDataStream.unsubscribe", {"subscriptionId": 1})["error"]["code"] == -2036
    api.events.clear()
    api.call("session.logout")                   # ends the logon subscription too
    api.wait_events(lambda ev: any(e["event"]["e"] == "eventStreamTerminated" for e in ev))
    assert [e["subscriptionId"] for e in api.events if e["event"]["e"] == "eventStreamTerminated"] == [0]
    assert api.call("session.subscriptions")["result"] == []
    assert api.call("userDataStream.unsubscribe")["error"]["code"] == -2036
    stats = sim.stats()
    assert stats["ws"]["messages_by_stream"]["userDataStream"] >= 4
    assert stats["ws_api"]["userDataStream.subscribe"]["by_status"]["200"] >= 1


# -- rate limits -----------------------------------------------------------------------------------

def test_weight_429_then_418_ban_closes_the_connection(sim_factory):
    sim = sim_factory({"limits": {"request_weight_per_minute": 50, "violations_before_ban": 2}})
    a = Api(sim)
    try:
        first = a.call("exchangeInfo")
        assert first["status"] == 200 and weight_count(first) == 22     # 2 for the connection + 20
        assert a.call("exchangeInfo")["status"] == 200
        statuses = []
        for _ in range(3):
            r = a.call("exchangeInfo")
            statuses.append(r["status"])
            if r["status"] == 429:
                data = r["error"]["data"]
                assert r["error"]["code"] == -1003
                assert data["retryAfter"] > data["serverTime"] and data["retryAfter"] % 60000 == 0
            if r["status"] == 418:
                assert "IP banned until" in r["error"]["msg"]
                assert r["error"]["data"]["retryAfter"] > time.time() * 1000
                break
        assert statuses == [429, 429, 418]
        a.ws.settimeout(3)
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError,
                            websocket.WebSocketTimeoutException)):
            while True:
                if a.ws.recv() == "":
                    raise websocket.WebSocketConnectionClosedException("closed")
    finally:
        a.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        Api(sim)
    assert ei.value.status_code == 418
    s = sim.stats()
    assert s["ws_api"]["exchangeInfo"]["by_status"] == {"200": 2, "429": 2, "418": 1}
    assert s["ws"]["connections"]["ws-api"] == 1
    assert s["ws"]["disconnects"]["banned"] == 1


# -- returnRateLimits is an ordinary, signed request parameter (reference §2, §3) ---------------------

def _signed_with(api, params: dict, signed_params: dict) -> dict:
    """Send ``params`` with a signature computed over ``signed_params`` (HMAC, demo key)."""
    sp = dict(signed_params, apiKey=api.sim.api_key)
    p = dict(params, apiKey=api.sim.api_key, signature=hmac_sha256(api.sim.secret, ws_api_payload(sp)))
    api._n += 1
    rid = f"s{api._n}"
    api.send({"id": rid, "method": "account.status", "params": p})
    return api.reply(rid)


def test_return_rate_limits_is_covered_by_the_signature(api):
    quiet = api.call("account.status", {"returnRateLimits": False}, sign="hmac")
    assert quiet["status"] == 200, quiet
    assert "rateLimits" not in quiet and quiet["result"]["accountType"] == "SPOT"
    loud = api.call("account.status", {"returnRateLimits": True}, sign="hmac")
    assert loud["status"] == 200 and weight_count(loud) >= 20
    as_text = api.call("account.status", {"returnRateLimits": "false", "recvWindow": 10000}, sign="hmac")
    assert as_text["status"] == 200 and "rateLimits" not in as_text
    ed = api.call("account.status", {"returnRateLimits": False}, sign="ed25519")
    assert ed["status"] == 200 and "rateLimits" not in ed
    # signed without it but sent with it: the payload differs, so the signature is wrong
    ts = int(time.time() * 1000)
    bad = _signed_with(api, {"timestamp": ts, "returnRateLimits": False}, {"timestamp": ts})
    assert bad["status"] == 400 and bad["error"]["code"] == -1022
    assert "rateLimits" not in bad          # the flag still applies to the error frame
    good = _signed_with(api, {"timestamp": ts, "returnRateLimits": False},
                        {"timestamp": ts, "returnRateLimits": False})
    assert good["status"] == 200 and "rateLimits" not in good


def test_orders_with_return_rate_limits_false(api):
    price = float(api.call("ticker.price", {"symbol": "BTCUSDT"})["result"]["price"])
    placed = api.call("order.place", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                      "quantity": "0.001", "price": f"{price * 0.97:.2f}",
                                      "newOrderRespType": "RESULT", "returnRateLimits": False}, sign="hmac")
    assert placed["status"] == 200, placed
    assert "rateLimits" not in placed and "returnRateLimits" not in placed["result"]
    oid = placed["result"]["orderId"]
    st = api.call("order.status", {"symbol": "BTCUSDT", "orderId": oid, "returnRateLimits": False}, sign="hmac")
    assert st["status"] == 200 and st["result"]["status"] == "NEW" and "rateLimits" not in st
    c = api.call("order.cancel", {"symbol": "BTCUSDT", "orderId": oid, "returnRateLimits": True}, sign="hmac")
    assert c["status"] == 200 and c["result"]["status"] == "CANCELED"
    assert "REQUEST_WEIGHT" in [r["rateLimitType"] for r in c["rateLimits"]]


def test_return_rate_limits_false_on_the_url_for_signed_requests(sim):
    a = Api(sim, "?returnRateLimits=false")
    try:
        r = a.call("account.status", sign="hmac")
        assert r["status"] == 200 and "rateLimits" not in r
        assert "rateLimits" in a.call("account.status", {"returnRateLimits": True}, sign="hmac")
        assert a.call("session.status")["result"]["returnRateLimits"] is False
    finally:
        a.close()
