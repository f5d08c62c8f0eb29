"""The REST pipeline over real sockets: weights, 429 → 418, faults, auth, bad input, control API."""
from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from letrade_perf.binance import signing
from letrade_perf.sim.config import DEMO_ED25519_API_KEY, DEMO_ED25519_PRIVATE_PEM
from simproc import start_sim

DEFAULT_LIMITS = {"request_weight_per_minute": 6000, "raw_requests_per_5m": 300000, "orders_per_10s": 100,
                  "orders_per_day": 200000, "violations_before_ban": 5,
                  "ban_ladder_s": [120, 600, 3600, 21600, 86400, 259200], "ws_connections_per_5m": 300}


@pytest.fixture(scope="module")
def sim():
    """A private simulator: these tests change limits, faults and the clock."""
    p = start_sim()
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def restore(sim):
    yield
    assert sim.control("DELETE", "faults").status == 200
    assert sim.control("PUT", "limits", DEFAULT_LIMITS).status == 200
    assert sim.control("POST", "limits/reset").status == 200
    assert sim.control("PUT", "latency", {"default": {}, "endpoints": {}}).status == 200
    # the operator skew is left where a test moved it: the server clock only ever moves forward


# -- helpers ---------------------------------------------------------------------------------

class Server:
    """Server-time helpers: signed requests must carry the (possibly skewed) server time."""

    def __init__(self, sim):
        self.sim = sim
        self.skew = sim.control("GET", "clock").json()["base_skew_ms"]

    def now(self) -> int:
        return int(time.time() * 1000) + self.skew

    def align(self, into_ms: int = 300) -> None:
        """Skew the server clock forward so that it is ``into_ms`` past a whole minute."""
        server = self.sim.control("GET", "clock").json()
        base, now = server["base_skew_ms"], server["serverTime"]
        self.skew = base + (60_000 - now % 60_000) + into_ms
        assert self.sim.control("PUT", "clock", {"skew_ms": self.skew}).status == 200
        assert self.sim.control("POST", "limits/reset").status == 200

    def signed(self, method, path, params=None, **kw):
        p = dict(params or {})
        p.setdefault("timestamp", self.now())
        return self.sim.signed(method, path, p, **kw)


def used(r) -> int:
    return int(r.headers["X-MBX-USED-WEIGHT-1M"])


def binance_error(r, status: int, code: int) -> str:
    assert r.status == status, (r.status, r.body)
    body = r.json()
    assert set(body) == {"code", "msg"} and body["code"] == code, body
    return body["msg"]


def fault_counts(sim) -> dict:
    return sim.stats()["faults"]


def raw_request(sim, method: str, path: str, timeout: float = 5.0):
    """(status, headers, body) or the exception a dropped connection raises."""
    req = urllib.request.Request(sim.base_url + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def limit_price(sim, factor: str) -> str:
    price = Decimal(sim.get("/api/v3/ticker/price", {"symbol": "BTCUSDT"}).json()["price"])
    return str((price * Decimal(factor)).quantize(Decimal("0.01")))


# -- weights ---------------------------------------------------------------------------------

def test_weight_headers_follow_the_table_exactly(sim):
    srv = Server(sim)
    srv.align()
    script = [
        (lambda: sim.get("/api/v3/ping"), 1),
        (lambda: sim.get("/api/v3/time"), 1),
        (lambda: sim.get("/api/v3/depth", {"symbol": "BTCUSDT"}), 5),
        (lambda: sim.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5}), 5),
        (lambda: sim.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 500}), 25),
        (lambda: sim.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 1000}), 50),
        (lambda: sim.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5000}), 250),
        (lambda: sim.get("/api/v3/trades", {"symbol": "BTCUSDT", "limit": 10}), 25),
        (lambda: sim.get("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": 10}), 4),
        (lambda: sim.get("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 10}), 2),
        (lambda: sim.get("/api/v3/avgPrice", {"symbol": "BTCUSDT"}), 2),
        (lambda: sim.get("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"}), 2),
        (lambda: sim.get("/api/v3/ticker/24hr"), 80),
        (lambda: sim.get("/api/v3/ticker/price", {"symbol": "BTCUSDT"}), 2),
        (lambda: sim.get("/api/v3/ticker/price"), 4),
        (lambda: sim.get("/api/v3/ticker/bookTicker", {"symbol": "ETHUSDT"}), 2),
        (lambda: sim.get("/api/v3/exchangeInfo"), 20),
        (lambda: srv.signed("GET", "/api/v3/account"), 20),
        (lambda: srv.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}), 6),
        (lambda: srv.signed("GET", "/api/v3/openOrders"), 80),
        (lambda: srv.signed("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}), 20),
        (lambda: srv.signed("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"}), 20),
        (lambda: srv.signed("GET", "/api/v3/rateLimit/order"), 40),
        (lambda: srv.signed("POST", "/api/v3/order/test", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                             "quantity": "0.001"}), 1),
        (lambda: srv.signed("POST", "/api/v3/order/test", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                             "quantity": "0.001", "computeCommissionRates": "true"}), 20),
        (lambda: sim.get("/api/v3/depth", {"symbol": "NOSUCH"}), 5),          # failed calls cost their weight
    ]
    before = sim.stats()["requests"]["weight_total"]
    total = 0
    seen = []
    for call, weight in script:
        r = call()
        total += weight
        seen.append((r.status, used(r)))
        assert used(r) == total, (r.status, r.body, seen)
        assert "X-MBX-ORDER-COUNT-10S" not in r.headers
    assert [s for s, _ in seen][:-1] == [200] * (len(script) - 1)
    assert seen[-1][0] == 400
    assert total == 692
    assert sim.stats()["requests"]["weight_total"] - before == 692


def test_order_entry_costs_zero_on_success_and_counts_orders(sim):
    srv = Server(sim)
    srv.align()
    price = limit_price(sim, "0.9")
    base = used(sim.get("/api/v3/ping"))
    r = srv.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                             "timeInForce": "GTC", "quantity": "0.001", "price": price,
                                             "newClientOrderId": "rest-w-1"})
    assert r.status == 200, r.body
    assert used(r) == base
    assert (r.headers["X-MBX-ORDER-COUNT-10S"], r.headers["X-MBX-ORDER-COUNT-1D"]) == ("1", "1")
    bad = srv.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                               "timeInForce": "GTC", "quantity": "0.001", "price": "abc"})
    assert bad.status == 400 and used(bad) == base + 1 and "X-MBX-ORDER-COUNT-10S" not in bad.headers
    c = srv.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "rest-w-1"})
    assert c.status == 200 and used(c) == base + 1, c.body
    c2 = srv.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "rest-w-1"})
    assert c2.status == 400 and used(c2) == base + 2
    rl = srv.signed("GET", "/api/v3/rateLimit/order")
    counts = {(e["interval"], e["intervalNum"]): e["count"] for e in rl.json()}
    assert counts == {("SECOND", 10): 1, ("DAY", 1): 1}


def test_filled_orders_do_not_use_up_the_orders_limit(sim):
    srv = Server(sim)
    srv.align()
    price = limit_price(sim, "0.9")
    resting = srv.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                   "timeInForce": "GTC", "quantity": "0.001", "price": price})
    try:
        assert resting.status == 200 and resting.headers["X-MBX-ORDER-COUNT-10S"] == "1", resting.body
        for _ in range(3):   # each fills at once: counted, then lowered by its first fill
            m = srv.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                     "quantity": "0.001"})
            assert m.status == 200 and m.json()["status"] == "FILLED", m.body
            assert (m.headers["X-MBX-ORDER-COUNT-10S"], m.headers["X-MBX-ORDER-COUNT-1D"]) == ("1", "1")
        rejected = srv.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                        "quantity": "90"})   # insufficient balance
        assert rejected.status == 400 and rejected.json()["code"] == -2010
        rl = srv.signed("GET", "/api/v3/rateLimit/order")
        assert {e["intervalNum"]: e["count"] for e in rl.json()} == {10: 1, 1: 1}
    finally:
        srv.signed("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})


def test_orders_limit_gives_1015(sim):
    srv = Server(sim)
    assert sim.control("PUT", "limits", {"orders_per_10s": 2}).status == 200
    srv.align()
    price = limit_price(sim, "0.9")
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
             "price": price}
    try:
        for n in (1, 2):
            r = srv.signed("POST", "/api/v3/order", order)
            assert r.status == 200 and r.headers["X-MBX-ORDER-COUNT-10S"] == str(n), r.body
        r = srv.signed("POST", "/api/v3/order", order)
        msg = binance_error(r, 429, -1015)
        assert msg == "Too many new orders; current limit is 2 orders per 10 SECOND."
        assert 9 <= int(r.headers["Retry-After"]) <= 10
    finally:
        srv.signed("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})


# -- 429 / 418 -------------------------------------------------------------------------------

def test_budget_exceeded_429_then_418_ban_then_reset(sim):
    srv = Server(sim)
    assert sim.control("PUT", "limits", {"request_weight_per_minute": 30, "violations_before_ban": 2,
                                         "ban_ladder_s": [120, 600]}).status == 200
    srv.align(into_ms=500)
    before = sim.stats()["rate_limits"]
    for i in range(6):
        r = sim.get("/api/v3/depth", {"symbol": "BTCUSDT"})
        assert r.status == 200 and used(r) == 5 * (i + 1)
    for _ in range(2):
        r = sim.get("/api/v3/depth", {"symbol": "BTCUSDT"})
        msg = binance_error(r, 429, -1003)
        assert msg == ("Too much request weight used; current limit is 30 request weight per 1 MINUTE. "
                       "Please use WebSocket Streams for live updates to avoid polling the API.")
        assert used(r) == 30
        assert 58 <= int(r.headers["Retry-After"]) <= 60
    r = sim.get("/api/v3/ping")
    msg = binance_error(r, 418, -1003)
    until = int(msg.split("banned until ")[1].split(".")[0])
    assert abs(until - (srv.now() + 120_000)) < 2000
    assert msg == (f"Way too much request weight used; IP banned until {until}. "
                   "Please use WebSocket Streams for live updates to avoid bans.")
    assert r.headers["Retry-After"] in ("119", "120")
    for path in ("/api/v3/time", "/api/v3/nothing-here"):
        r = sim.get(path)
        binance_error(r, 418, -1003)
        assert used(r) == 30
    after = sim.stats()["rate_limits"]
    assert after["sent_429"] - before["sent_429"] == 2
    assert after["sent_418"] - before["sent_418"] == 3
    assert after["ips"]["127.0.0.1"]["bans"] == 1
    add_fault(sim, kind="http_5xx", status=503, count=1)     # a ban outranks injected faults
    binance_error(sim.get("/api/v3/ping"), 418, -1003)
    assert sim.control("POST", "limits/reset").status == 200
    r = sim.get("/api/v3/ping")
    assert r.status == 200 and used(r) == 1


def test_next_minute_bucket_restores_the_budget(sim):
    srv = Server(sim)
    assert sim.control("PUT", "limits", {"request_weight_per_minute": 10}).status == 200
    srv.align()
    assert sim.get("/api/v3/depth", {"symbol": "BTCUSDT"}).status == 200
    assert sim.get("/api/v3/depth", {"symbol": "BTCUSDT"}).status == 200
    assert sim.get("/api/v3/depth", {"symbol": "BTCUSDT"}).status == 429
    srv.skew += 60_000                                # cross into the next minute without waiting
    assert sim.control("PUT", "clock", {"skew_ms": srv.skew}).status == 200
    r = sim.get("/api/v3/depth", {"symbol": "BTCUSDT"})
    assert r.status == 200 and used(r) == 5


def test_every_response_carries_used_weight(sim):
    srv = Server(sim)
    srv.align()
    responses = [sim.get("/api/v3/ping"), sim.get("/nope"), sim.request("PUT", "/api/v3/depth"),
                 sim.get("/api/v3/depth"), srv.signed("GET", "/api/v3/account", api_key="A" * 64)]
    assert [r.status for r in responses] == [200, 404, 405, 400, 401]
    assert [used(r) for r in responses] == [1, 1, 1, 6, 26]


# -- faults ----------------------------------------------------------------------------------

def add_fault(sim, **rule) -> None:
    r = sim.control("POST", "faults", rule)
    assert r.status == 200, r.body


def test_http_5xx_storm_429_and_malformed(sim):
    before = fault_counts(sim)
    add_fault(sim, kind="http_5xx", status=503, count=1, endpoints=["GET /api/v3/depth"])
    assert sim.get("/api/v3/ping").status == 200                 # other endpoints untouched
    r = sim.get("/api/v3/depth", {"symbol": "BTCUSDT"})
    binance_error(r, 503, -1008)
    assert "X-MBX-USED-WEIGHT-1M" in r.headers
    assert sim.get("/api/v3/depth", {"symbol": "BTCUSDT"}).status == 200   # count exhausted
    add_fault(sim, kind="http_5xx", status=500, count=1)
    binance_error(sim.get("/api/v3/ping"), 500, -1000)
    add_fault(sim, kind="storm_429", retry_after_s=7, count=2)
    for _ in range(2):
        r = sim.get("/api/v3/ping")
        binance_error(r, 429, -1003)
        assert r.headers["Retry-After"] == "7"
    assert sim.get("/api/v3/ping").status == 200
    add_fault(sim, kind="malformed", every=2, count=1, endpoints=["GET /api/v3/time"])
    assert sim.get("/api/v3/time").status == 200
    r = sim.get("/api/v3/time")
    assert r.status == 200
    with pytest.raises(ValueError):
        json.loads(r.body)
    after = fault_counts(sim)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert {k: v for k, v in delta.items() if v} == {"http_5xx": 2, "storm_429": 2, "malformed": 1}


def test_truncated_body_with_correct_content_length(sim):
    add_fault(sim, kind="truncated", count=1, endpoints=["GET /api/v3/ping", "GET /api/v3/exchangeInfo"])
    status, headers, body = raw_request(sim, "GET", "/api/v3/ping")
    assert (status, body, headers["Content-Length"]) == (200, b"{", "1")
    full = sim.get("/api/v3/exchangeInfo").body
    add_fault(sim, kind="truncated", count=1, endpoints=["GET /api/v3/exchangeInfo"])
    status, headers, body = raw_request(sim, "GET", "/api/v3/exchangeInfo")
    assert status == 200 and int(headers["Content-Length"]) == len(body)
    assert abs(len(body) - len(full) // 2) <= 2 and full[:20] == body[:20] and body[-200:] in full
    with pytest.raises(ValueError):
        json.loads(body)
    assert fault_counts(sim).get("truncated", 0) >= 2


def test_reset_and_hang_drop_the_connection(sim):
    before = fault_counts(sim)
    add_fault(sim, kind="reset", count=1, endpoints=["GET /api/v3/ping"])
    with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        raw_request(sim, "GET", "/api/v3/ping")
    assert sim.get("/api/v3/ping").status == 200
    add_fault(sim, kind="hang", delay_ms=400, count=1, endpoints=["GET /api/v3/ping"])
    t0 = time.monotonic()
    with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        raw_request(sim, "GET", "/api/v3/ping", timeout=5)
    assert time.monotonic() - t0 >= 0.38   # held for delay_ms, then closed (not the client's 5 s timeout)
    after = fault_counts(sim)
    assert after.get("reset", 0) - before.get("reset", 0) == 1
    assert after.get("hang", 0) - before.get("hang", 0) == 1
    status = sim.stats()["requests"]["by_endpoint"]["GET /api/v3/ping"]["by_status"]
    assert status.get("0") == 2                      # dropped connections are counted with status 0


def test_unknown_status_executes_or_not(sim):
    srv = Server(sim)
    srv.align()
    price = limit_price(sim, "0.9")
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
             "price": price}
    before = fault_counts(sim).get("unknown_status", 0)
    try:
        add_fault(sim, kind="unknown_status", execute=True, count=1, endpoints=["POST /api/v3/order"])
        r = srv.signed("POST", "/api/v3/order", {**order, "newClientOrderId": "rest-unknown-1"})
        assert binance_error(r, 500, -1007).startswith("Timeout waiting for response from backend server.")
        q = srv.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "rest-unknown-1"})
        assert q.status == 200 and q.json()["status"] == "NEW"   # it did execute
        add_fault(sim, kind="unknown_status", execute=False, count=1, endpoints=["POST /api/v3/order"])
        r = srv.signed("POST", "/api/v3/order", {**order, "newClientOrderId": "rest-unknown-2"})
        binance_error(r, 500, -1007)
        q = srv.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "rest-unknown-2"})
        binance_error(q, 400, -2013)
        add_fault(sim, kind="unknown_status", execute=True, count=1, endpoints=["POST /api/v3/order"])
        binance_error(srv.signed("POST", "/api/v3/order", order, secret="wrong"), 400, -1022)  # gateway errors stay
        assert fault_counts(sim)["unknown_status"] - before == 2
    finally:
        srv.signed("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})


def test_clock_skew_fault_and_latency(sim):
    base = Server(sim).skew
    add_fault(sim, kind="clock_skew", skew_ms=30_000)
    t = sim.get("/api/v3/time").json()["serverTime"]
    assert abs(t - (time.time() * 1000 + base + 30_000)) < 1500
    clock = sim.control("GET", "clock").json()
    assert (clock["skew_ms"], clock["base_skew_ms"]) == (base + 30_000, base)
    sim.control("DELETE", "faults?kind=clock_skew")
    assert sim.control("GET", "clock").json()["skew_ms"] == base
    r = sim.control("PUT", "latency", {"endpoints": {"GET /api/v3/ping": {"fixed_ms": 250}}})
    assert r.status == 200 and r.json()["endpoints"]["GET /api/v3/ping"]["fixed_ms"] == 250
    before = sim.stats()["delays"].get("rest", {"count": 0, "total_ms": 0})
    t0 = time.monotonic()
    assert sim.get("/api/v3/ping").status == 200
    assert time.monotonic() - t0 >= 0.25
    assert sim.get("/api/v3/time").status == 200   # not delayed: the count below grows by one only
    after = sim.stats()["delays"]["rest"]
    assert after["count"] - before["count"] == 1
    assert after["total_ms"] - before["total_ms"] == pytest.approx(250.0)


# -- auth ------------------------------------------------------------------------------------

def test_auth_failures_over_http(sim):
    srv = Server(sim)
    r = sim.get("/api/v3/account", {"timestamp": srv.now(), "signature": "00"})
    assert binance_error(r, 401, -2015) == "Invalid API-key, IP, or permissions for action."
    binance_error(srv.signed("GET", "/api/v3/account", api_key="not a key!"), 401, -2014)
    binance_error(srv.signed("GET", "/api/v3/account", secret="wrong"), 400, -1022)
    r = srv.signed("GET", "/api/v3/account", {"timestamp": srv.now() - 10_000})
    assert binance_error(r, 400, -1021) == "Timestamp for this request is outside of the recvWindow."
    r = srv.signed("GET", "/api/v3/account", {"timestamp": srv.now() + 5_000})
    assert binance_error(r, 400, -1021) == "Timestamp for this request was 1000ms ahead of the server's time."
    binance_error(srv.signed("GET", "/api/v3/account", {"recvWindow": 60001}), 400, -1131)
    r = sim.request("GET", "/api/v3/account?timestamp=1", headers={"X-MBX-APIKEY": sim.api_key})
    binance_error(r, 400, -1102)
    assert srv.signed("GET", "/api/v3/account", {"recvWindow": 60000}).status == 200


def test_ed25519_and_mixed_query_body_signature(sim):
    srv = Server(sim)
    q = signing.signed_query(signing.ED25519, DEMO_ED25519_PRIVATE_PEM, {"timestamp": srv.now()})
    r = sim.request("GET", "/api/v3/account?" + q, headers={"X-MBX-APIKEY": DEMO_ED25519_API_KEY})
    assert r.status == 200 and "balances" in r.json()
    # query part + body part, signature in the body; a name in both places: the query wins
    srv.align()
    query = "computeCommissionRates=true&symbol=BTCUSDT"
    body = (f"side=BUY&type=MARKET&quantity=0.001&computeCommissionRates=false&timestamp={srv.now()}")
    sig = signing.hmac_sha256(sim.secret, query + body)
    r = sim.request("POST", "/api/v3/order/test?" + query, body=f"{body}&signature={sig}",
                    headers={"X-MBX-APIKEY": sim.api_key})
    assert r.status == 200, r.body
    assert used(r) == 20                              # computeCommissionRates=true (query) was used


def test_listen_key_endpoints_need_only_the_key(sim):
    srv = Server(sim)
    srv.align()
    h = {"X-MBX-APIKEY": sim.api_key}
    r = sim.request("POST", "/api/v3/userDataStream", headers=h)
    key = r.json()["listenKey"]
    assert r.status == 200 and len(key) == 64 and used(r) == 2
    r = sim.request("PUT", "/api/v3/userDataStream?listenKey=" + key, headers=h)
    assert (r.status, r.json(), used(r)) == (200, {}, 4)
    binance_error(sim.request("PUT", "/api/v3/userDataStream?listenKey=" + "x" * 64, headers=h), 400, -1125)
    binance_error(sim.request("PUT", "/api/v3/userDataStream", headers=h), 400, -1102)
    binance_error(sim.request("POST", "/api/v3/userDataStream"), 401, -2015)
    r = sim.request("DELETE", "/api/v3/userDataStream?listenKey=" + key, headers=h)
    assert (r.status, r.json()) == (200, {})


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("path,status,code", [
    ("/api/v3/depth", 400, -1102),                                   # missing symbol
    ("/api/v3/depth?symbol=", 400, -1102),                           # empty
    ("/api/v3/depth?symbol=btc%20usdt", 400, -1100),                 # illegal characters
    ("/api/v3/depth?symbol=NOPE", 400, -1121),                       # unknown symbol
    ("/api/v3/depth?symbol=BTCUSDT&symbol=ETHUSDT", 400, -1101),     # duplicate
    ("/api/v3/depth?symbol=BTCUSDT&limit=abc", 400, -1100),          # wrong type
    ("/api/v3/depth?symbol=BTCUSDT&limit=99999999999999999999999", 400, -1100),   # oversize
    ("/api/v3/depth?symbol=" + "A" * 5000, 400, -1100),
    ("/api/v3/depth?symbol=%FF%FE", 400, -1100),                     # not UTF-8
    ("/api/v3/klines?symbol=BTCUSDT&interval=7m", 400, -1120),
    ("/api/v3/klines?symbol=BTCUSDT", 400, -1102),
    ("/api/v3/ticker/price?symbols=notjson", 400, -1100),
    ("/api/v3/ticker/price?symbol=BTCUSDT&symbols=%5B%22BTCUSDT%22%5D", 400, -1128),
])
def test_bad_public_input_is_a_binance_error(sim, path, status, code):
    r = sim.get(path)
    binance_error(r, status, code)


def test_garbage_bodies_are_binance_errors(sim):
    h = {"X-MBX-APIKEY": sim.api_key, "Content-Type": "application/x-www-form-urlencoded"}
    for body in (b"\xff\xfe\x00garbage", b"%%%&&&===", b"a=1&a=2", b"=" * 10, "é=1".encode()):
        r = sim.request("POST", "/api/v3/order", body=body, headers=h)
        assert 400 <= r.status < 500, (body, r.status, r.body)
        assert r.json()["code"] < 0
    r = sim.request("POST", "/api/v3/order", body=b'{"symbol":"BTCUSDT"}',
                    headers={"X-MBX-APIKEY": sim.api_key, "Content-Type": "application/json"})
    binance_error(r, 400, -1102)                       # JSON bodies are not read
    r = sim.request("POST", "/api/v3/order", body=b"x=" + b"1" * 200_000, headers=h)
    assert r.status == 400 and r.json()["code"] == -1101


def test_unknown_routes_are_json(sim):
    for method, path, status in [("GET", "/", 404), ("GET", "/api/v3/nothing", 404), ("DELETE", "/api/v3/ping", 405),
                                 ("POST", "/api/v3/depth", 405)]:
        r = sim.request(method, path)
        assert r.status == status and r.headers["Content-Type"].startswith("application/json")
        assert r.json()["code"] < 0


def test_each_response_counted_once(sim):
    def snap():
        return sim.stats()["requests"]["by_endpoint"]
    before = snap()
    sim.get("/api/v3/ping")
    sim.get("/api/v3/depth", {"symbol": "NOPE"})
    sim.get("/api/v3/depth", {"symbol": "BTCUSDT"})
    sim.get("/nowhere")
    after = snap()

    def count(s, name, status):
        return s.get(name, {"by_status": {}})["by_status"].get(str(status), 0)
    assert count(after, "GET /api/v3/ping", 200) - count(before, "GET /api/v3/ping", 200) == 1
    assert count(after, "GET /api/v3/depth", 400) - count(before, "GET /api/v3/depth", 400) == 1
    assert count(after, "GET /api/v3/depth", 200) - count(before, "GET /api/v3/depth", 200) == 1
    assert count(after, "UNKNOWN", 404) - count(before, "UNKNOWN", 404) == 1
    assert "/_sim/stats" not in json.dumps(after)    # control requests are not API requests


# -- control API -----------------------------------------------------------------------------

def test_control_validation_names_the_key(sim):
    r = sim.control("POST", "faults", {"kind": "http_5xx", "probabilty": 0.5})
    assert r.status == 400 and "probabilty" in r.json()["error"]
    r = sim.control("POST", "faults", [{"kind": "reset"}, {"kind": "nope"}])
    assert r.status == 400 and "faults[1].kind" in r.json()["error"]
    assert sim.control("GET", "faults").json()["rules"] == []       # all or nothing
    r = sim.control("PUT", "limits", {"orders_per_10s": "many"})
    assert r.status == 400 and "orders_per_10s" in r.json()["error"]
    r = sim.control("PUT", "limits", {"weight": 1})
    assert r.status == 400 and "weight" in r.json()["error"]
    r = sim.control("PUT", "latency", {"default": {"dist": "cauchy"}})
    assert r.status == 400 and "dist" in r.json()["error"]
    r = sim.control("PUT", "clock", {"skew_ms": "x"})
    assert r.status == 400 and "skew_ms" in r.json()["error"]
    r = sim.request("POST", "/_sim/faults", body=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = sim.control("POST", "faults", [{"kind": "reset", "count": 1}, {"kind": "hang", "count": 1}])
    assert r.status == 200 and len(r.json()["ids"]) == 2
    assert [f["kind"] for f in sim.control("GET", "faults").json()["rules"]] == ["reset", "hang"]
    assert sim.control("DELETE", "faults?kind=hang").json() == {"removed": 1}
    assert sim.control("DELETE", "faults").json() == {"removed": 1}
    assert sim.control("GET", "health").json()["status"] == "ok"


def test_control_limits_and_deposit(sim):
    srv = Server(sim)
    r = sim.control("PUT", "limits", {"request_weight_per_minute": 1234})
    assert r.status == 200 and r.json()["limits"]["request_weight_per_minute"] == 1234
    info = sim.get("/api/v3/exchangeInfo").json()
    weight = [x for x in info["rateLimits"] if x["rateLimitType"] == "REQUEST_WEIGHT"]
    assert weight[0]["limit"] == 1234

    def btc_free():
        acct = srv.signed("GET", "/api/v3/account").json()
        return Decimal(next(b["free"] for b in acct["balances"] if b["asset"] == "BTC"))
    start = btc_free()
    r = sim.control("POST", "deposit", {"api_key": sim.api_key, "asset": "BTC", "amount": "1.5"})
    assert r.status == 200, r.body
    assert btc_free() - start == Decimal("1.5")
    assert sim.control("POST", "deposit", {"api_key": "nobody", "asset": "BTC", "amount": "1"}).status == 400
    assert sim.control("POST", "deposit", {"api_key": sim.api_key, "asset": "BTC", "amount": "-1"}).status == 400
    stats_before = sim.stats()
    assert sim.control("POST", "stats/reset").status == 200
    assert sim.stats()["requests"]["total"] == 0 and stats_before["requests"]["total"] > 0


def test_control_is_loopback_only():
    from letrade_perf.sim.control import _is_loopback
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("127.5.5.5")
    assert not _is_loopback("10.0.0.1") and not _is_loopback(None) and not _is_loopback("garbage")
