"""Fuzzing REST parameter parsing against a running simulator: every answer is 200 JSON or a 4xx
Binance error ``{"code": <negative int>, "msg": <str>}`` — never a 5xx, never HTML."""
from __future__ import annotations

import http.client
import json
import string
import time
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from letrade_perf.binance.endpoints import ENDPOINTS
from letrade_perf.binance.signing import hmac_sha256
from simproc import start_sim

BIG = 10**12
ROUTES = sorted(ENDPOINTS)
NAMES = ["symbol", "symbols", "limit", "interval", "startTime", "endTime", "fromId", "orderId",
         "origClientOrderId", "newClientOrderId", "side", "type", "quantity", "quoteOrderQty", "price",
         "timeInForce", "stopPrice", "recvWindow", "timestamp", "computeCommissionRates", "omitZeroBalances",
         "listenKey", "newOrderRespType", "timeZone", "windowSize", "permissions", "symbolStatus",
         "cancelRestrictions", "icebergQty", "signature"]
GOOD_VALUES = ["BTCUSDT", "ETHUSDT", "btcusdt", '["BTCUSDT","ETHUSDT"]', "[]", "5", "100", "5000", "5001", "0",
               "-1", "1m", "1M", "7m", "BUY", "SELL", "LIMIT", "MARKET", "LIMIT_MAKER", "GTC", "IOC", "FOK",
               "0.001", "1e5", "0.00000000001", "65000.00", "1.5.5", "true", "false", "TRUE", "NaN", "Infinity",
               "99999999999999999999999", "1700000000000", "ACK", "FULL", "+08:00", "%", "null", ""]
PRINTABLE = "".join(c for c in string.printable if c not in " \t\n\r\x0b\x0c")

names = st.one_of(st.sampled_from(NAMES), st.text(min_size=0, max_size=12))
values = st.one_of(
    st.sampled_from(GOOD_VALUES),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=40),
    st.text(alphabet=PRINTABLE, max_size=300),
)
params = st.lists(st.tuples(names, values), max_size=8)
junk = st.text(alphabet=PRINTABLE, max_size=60)          # raw, un-encoded query/body fragments


@pytest.fixture(scope="module")
def sim():
    """A private simulator with budgets the fuzzer cannot exhaust."""
    p = start_sim({"limits": {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9,
                              "orders_per_10s": 10**6, "orders_per_day": 10**8}})
    yield p
    p.stop()


def send(sim, method: str, target: str, body: bytes | None, headers: dict) -> tuple[int, bytes, str]:
    host, port = sim.base_url[len("http://"):].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(), r.getheader("Content-Type", "")
    finally:
        conn.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), pairs=params, raw=junk, use_raw=st.booleans(), sign=st.booleans(),
       in_body=st.booleans(), body_ctype=st.sampled_from(["application/x-www-form-urlencoded", "application/json",
                                                          "text/plain", None]),
       binary_body=st.one_of(st.none(), st.binary(max_size=200)))
def test_every_response_is_json_200_or_binance_4xx(sim, route, pairs, raw, use_raw, sign, in_body, body_ctype,
                                                   binary_body):
    method, path = route
    encoded = urlencode(pairs, quote_via=quote)
    if use_raw:
        encoded = f"{encoded}&{raw}" if encoded else raw
    ep = ENDPOINTS[route]
    headers = {"X-MBX-APIKEY": sim.api_key} if ep.needs_key else {}
    if sign and ep.signed:
        encoded = f"{encoded}&timestamp={int(time.time() * 1000)}" if encoded else f"timestamp={int(time.time() * 1000)}"
        encoded += "&signature=" + hmac_sha256(sim.secret, encoded)
    body = None
    target = path
    if method != "GET" and in_body:
        body = binary_body if binary_body is not None else encoded.encode()
        if body_ctype:
            headers["Content-Type"] = body_ctype
    elif encoded:
        target = f"{path}?{encoded}"
    status, data, ctype = send(sim, method, target, body, headers)
    assert ctype.startswith("application/json"), (status, data[:200])
    parsed = json.loads(data)
    if status == 200:
        return
    assert 400 <= status < 500, (route, target, body, status, data[:300])
    assert isinstance(parsed, dict) and set(parsed) == {"code", "msg"}, parsed
    assert isinstance(parsed["code"], int) and parsed["code"] < 0 and isinstance(parsed["msg"], str), parsed


def test_no_server_errors_were_counted(sim):
    by_endpoint = sim.stats()["requests"]["by_endpoint"]
    fives = {name: {s: n for s, n in e["by_status"].items() if s.startswith("5")} for name, e in by_endpoint.items()}
    assert not any(fives.values()), fives
