"""Property-based conformance of every implemented REST endpoint against Binance's contract.

"Never a 500, never an echo": parameters are generated per endpoint from the OpenAPI spec
(``tests/data/binance-spot-openapi.yaml``, loaded and patched by :mod:`test_openapi`) — valid
looking values and invalid ones (wrong types, huge numbers, long decimals, unicode, empty,
missing required, duplicates, unknown names) — and signed with the demo key where the endpoint
is SIGNED. Every answer must be:

* never a 5xx, always a JSON body;
* a 2xx: valid against the spec's response schema (with the reference-wins patches);
* an error: exactly ``{"code": int, "msg": str}``, the code in Binance's error table
  (:mod:`letrade_perf.binance.errors`) with the HTTP status the table gives it, and a message
  that never echoes a sent value (only parameter names).

Bounded and reproducible: ``EXAMPLES`` (30) examples per endpoint, ``derandomize=True``, one
private simulator with budgets the fuzz cannot exhaust. To hunt locally:
``LETRADE_CONFORMANCE_EXAMPLES=300 LETRADE_CONFORMANCE_RANDOM=1 pytest tests/sim/test_conformance.py``.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import time
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator

from letrade_perf.binance.endpoints import ENDPOINTS
from letrade_perf.binance.errors import SPECS
from letrade_perf.binance.signing import hmac_sha256
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET
from test_openapi import REFERENCE_WINS, response_schema, spec

EXAMPLES = int(os.environ.get("LETRADE_CONFORMANCE_EXAMPLES", "30"))  # per endpoint; raise locally to hunt
#: ``LETRADE_CONFORMANCE_RANDOM=1``: fresh random examples instead of the fixed, reproducible set.
RANDOM = os.environ.get("LETRADE_CONFORMANCE_RANDOM") == "1"
SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ETHBTC"]
GENEROUS_LIMITS = {"limits": {"request_weight_per_minute": 10**9, "raw_requests_per_5m": 10**9,
                              "orders_per_10s": 10**6, "orders_per_day": 10**8}}
#: HTTP statuses an error code may come with besides the table's own (rate limits: 429 or 418 ban).
EXTRA_STATUSES = {-1003: {418}}
ROUTES = sorted(ENDPOINTS, key=lambda r: (r[0] == "DELETE", r[1] == "/api/v3/openOrders", r))  # cancels last


# -- parameters from the spec ---------------------------------------------------------------------
def spec_params(method: str, path: str) -> list[dict]:
    s = spec()
    out = []
    for prm in s["paths"][path][method.lower()].get("parameters", []):
        if "$ref" in prm:
            prm = s["components"]["parameters"][prm["$ref"].split("/")[-1]]
        if prm["name"] in ("timestamp", "signature"):
            continue  # added by the signer below
        out.append(prm)
    return out


ALL_NAMES = {p["name"] for m, path in ROUTES for p in spec_params(m, path)} | {"timestamp", "signature"}
#: Enum values may appear in messages as words of their own (``MARKET`` in ``MARKET_LOT_SIZE``).
ALL_ENUMS = {str(v) for m, path in ROUTES for p in spec_params(m, path) for v in p.get("schema", {}).get("enum", ())}

# -- value strategies -------------------------------------------------------------------------------
digits = st.text(alphabet="0123456789", min_size=1, max_size=20)
long_decimals = st.one_of(
    st.builds(lambda i, f: f"{i}.{f}", digits, digits),                     # up to 20.20 digits
    st.sampled_from(["99999999999999999999.99999999999999999999", "0.00000000000000000001",
                     "99999999999999999999.00000000000000000000", "12345678901234567890.12345678",
                     "0." + "0" * 19 + "1", "1" * 20]),
)
EXTREME_DECIMALS = st.sampled_from([
    "99999999999999999999.99999999999999999999", "99999999999999999999.00000000000000000001",
    "0.00000000000000000001", "99999999999999999999.00000000000000000000", "1" * 20 + "." + "1" * 20,
    "0.00000001", "0", "0.00000000", "00000000000000000001", "1.000000000000000000000"])
good_decimals = st.one_of(
    st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False, allow_infinity=False).map(lambda d: f"{d:f}"),
    st.sampled_from(["0.001", "0.01", "1", "10", "60000", "65000.00", "3000.5", "0.00001", "100"]),
)
good_ints = st.one_of(st.integers(min_value=0, max_value=1000).map(str),
                      st.integers(min_value=1, max_value=2**40).map(str))
huge = st.one_of(st.integers(min_value=-(2**80), max_value=2**80).map(str),
                 st.sampled_from(["9" * 19, "9" * 20, "9" * 40, "-9" * 1, str(2**63), str(2**63 - 1), str(-(2**63))]))
junk = st.one_of(
    st.just(""),
    st.text(max_size=30),                                                   # unicode
    st.sampled_from(["null", "NaN", "Infinity", "-1", "1e5", "1.5.5", "0x10", " 1", "1 ", "true", "[]", "{}",
                     "%", "'", '"', "<script>", "\u00e9\u00e8", "\u0000", "\U0001F600", "-0", "+1", "0.0"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    huge,
    long_decimals,
)


def _now_ms_str(offset_ms: int) -> str:
    return str(int(time.time() * 1000) + offset_ms)


time_values = st.integers(min_value=-400 * 86_400_000, max_value=3_600_000).map(_now_ms_str)

GOOD_BY_NAME = {
    "symbol": st.sampled_from(SYMBOLS),
    "symbols": st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True).map(
        lambda xs: json.dumps(xs, separators=(",", ":"))),
    "permissions": st.sampled_from(["SPOT", '["SPOT"]', '["SPOT","MARGIN"]']),
    "limit": st.sampled_from(["1", "5", "10", "100", "500", "1000", "5000"]),
    "startTime": time_values,
    "endTime": time_values,
    "recvWindow": st.sampled_from(["5000", "60000", "1", "59999.5", "60001"]),
    "timeZone": st.sampled_from(["0", "+08:00", "-5", "14", "-12:00"]),
    "listenKey": st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
                         min_size=64, max_size=64),
    "newClientOrderId": st.text(alphabet="abcdefXYZ0123456789-_", min_size=1, max_size=36),
    "origClientOrderId": st.text(alphabet="abcdefXYZ0123456789-_", min_size=1, max_size=36),
    "strategyType": st.sampled_from(["1000000", "2000000"]),
    "trailingDelta": st.sampled_from(["10", "100", "2000"]),
}


def good_value(prm: dict):
    name = prm["name"]
    if name in GOOD_BY_NAME:
        return GOOD_BY_NAME[name]
    sch = prm.get("schema", {})
    if "enum" in sch:
        return st.sampled_from([str(v) for v in sch["enum"]])
    typ = sch.get("type")
    if typ == "number":
        return good_decimals
    if typ == "integer":
        return good_ints
    if typ == "boolean":
        return st.sampled_from(["true", "false"])
    return st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=12)


def bad_value(prm: dict):
    sch = prm.get("schema", {})
    extra = []
    if sch.get("type") == "number":   # decimals: digit counts beyond what a Decimal context holds
        extra += [EXTREME_DECIMALS, long_decimals, huge]
    elif sch.get("type") == "integer":
        extra += [huge, long_decimals]
    if "enum" in sch:
        extra.append(st.sampled_from([str(v).lower() for v in sch["enum"]] + [str(v) + " " for v in sch["enum"]]))
    if prm["name"] in ("symbol", "symbols"):
        extra.append(st.sampled_from(["btcusdt", "NOPE", "BTC USDT", '["BTCUSDT",]', '["btcusdt"]', "[]",
                                      '["' + "A" * 21 + '"]', "A" * 21, '["BTCUSDT","BTCUSDT"]']))
    return st.one_of(junk, *extra)


def value_for(prm: dict):
    good, bad = good_value(prm), bad_value(prm)
    return st.one_of(good, good, bad)  # mostly valid-looking, so requests reach the engine


#: Filled by the test before generating (live listen keys, order ids, prices), so valid-looking
#: requests reach the engine's success paths and not only its first rejection.
LIVE: dict = {"listenKeys": ["x" * 64], "orderIds": ["1"], "clientIds": ["none"], "low": "1.00", "high": "2.00"}


def order_templates() -> list[list[tuple[str, str]]]:
    low, high = LIVE["low"], LIVE["high"]
    base = [("symbol", "BTCUSDT")]
    return [base + t for t in (
        [("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "0.001"), ("price", low)],
        [("side", "SELL"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "0.001"), ("price", high)],
        [("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "IOC"), ("quantity", "0.001"), ("price", low)],
        [("side", "BUY"), ("type", "LIMIT_MAKER"), ("quantity", "0.001"), ("price", low)],
        [("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001")],
        [("side", "SELL"), ("type", "MARKET"), ("quantity", "0.001")],
        [("side", "BUY"), ("type", "MARKET"), ("quoteOrderQty", "20")],
        [("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "0.01"), ("price", low),
         ("icebergQty", "0.001")],
        [("side", "SELL"), ("type", "STOP_LOSS_LIMIT"), ("timeInForce", "GTC"), ("quantity", "0.001"),
         ("price", low), ("stopPrice", low)],
        [("side", "BUY"), ("type", "TAKE_PROFIT"), ("quantity", "0.001"), ("stopPrice", low)],
        [("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"), ("quantity", "0.001"), ("price", low),
         ("newOrderRespType", "RESULT"), ("newClientOrderId", "conf-1")],
    )]


def seed_pairs(draw, route) -> list[tuple[str, str]]:
    """A valid-looking parameter set for ``route``."""
    method, path = route
    if path in ("/api/v3/order", "/api/v3/order/test") and method == "POST":
        pairs = list(draw(st.sampled_from(order_templates())))
        if path.endswith("/test") and draw(st.booleans()):
            pairs.append(("computeCommissionRates", "true"))
        return pairs
    if path == "/api/v3/order":   # GET / DELETE: an order of the account, by id or client id
        if draw(st.booleans()):
            return [("symbol", "BTCUSDT"), ("orderId", draw(st.sampled_from(LIVE["orderIds"])))]
        return [("symbol", "BTCUSDT"), ("origClientOrderId", draw(st.sampled_from(LIVE["clientIds"])))]
    if path == "/api/v3/userDataStream" and method != "POST":
        return [("listenKey", draw(st.sampled_from(LIVE["listenKeys"])))]
    pairs = []
    for prm in spec_params(method, path):
        name = prm["name"]
        if not prm.get("required") and not draw(st.booleans()):
            continue
        if name == "orderId":
            v = draw(st.sampled_from(LIVE["orderIds"]))
        elif name == "origClientOrderId":
            v = draw(st.sampled_from(LIVE["clientIds"]))
        elif name == "symbol" and "symbols" in [p for p, _ in pairs]:
            continue
        else:
            v = draw(good_value(prm))
        pairs.append((name, v))
    return pairs


def mutate(draw, route, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One change to a valid-looking set: a bad value, a dropped, duplicated or unknown name."""
    method, path = route
    prms = {p["name"]: p for p in spec_params(method, path)}
    kind = draw(st.sampled_from(["bad", "bad", "bad", "drop", "dup", "unknown", "add"]))
    pairs = list(pairs)
    if kind in ("bad", "drop", "dup") and pairs:
        i = draw(st.integers(0, len(pairs) - 1))
        k, v = pairs[i]
        if kind == "bad":
            pairs[i] = (k, draw(bad_value(prms.get(k, {"name": k}))))
        elif kind == "drop":
            del pairs[i]
        else:
            pairs.append((k, draw(st.one_of(st.just(v), junk))))
    elif kind == "add" and prms:
        name = draw(st.sampled_from(sorted(prms)))
        pairs.append((name, draw(value_for(prms[name]))))
    else:
        pairs.append((draw(st.sampled_from(["foo", "Symbol", "SYMBOL", "", "\u00e9", "a" * 100])), draw(junk)))
    return pairs


def extreme(draw, route, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A valid-looking set with one numeric parameter (sent or added) at an extreme digit count."""
    method, path = route
    numeric = [p["name"] for p in spec_params(method, path) if p.get("schema", {}).get("type") in ("number", "integer")]
    if not numeric:
        return mutate(draw, route, pairs)
    name = draw(st.sampled_from(numeric))
    value = draw(st.one_of(EXTREME_DECIMALS, long_decimals, huge))
    return [(k, v) for k, v in pairs if k != name] + [(name, value)]


def chaos(draw, route) -> list[tuple[str, str]]:
    """Any mix of valid and invalid values, missing required names, duplicates, unknown names."""
    method, path = route
    pairs: list[tuple[str, str]] = []
    for prm in spec_params(method, path):
        include = draw(st.integers(0, 9)) > 0 if prm.get("required") else draw(st.booleans())
        if include:
            pairs.append((prm["name"], draw(value_for(prm))))
    if pairs and draw(st.integers(0, 9)) == 0:                       # a duplicated name
        k, _ = draw(st.sampled_from(pairs))
        pairs.append((k, draw(st.one_of(st.just(dict(pairs)[k]), junk))))
    if draw(st.integers(0, 9)) == 0:                                 # an unknown name
        pairs.append((draw(st.sampled_from(["foo", "Symbol", "SYMBOL", "", "\u00e9", "a" * 100])), draw(junk)))
    draw(st.randoms(use_true_random=False)).shuffle(pairs)
    return pairs


@st.composite
def requests(draw, route):
    method = route[0]
    ep = ENDPOINTS[route]
    mode = draw(st.sampled_from(["valid", "mutate", "mutate", "extreme", "chaos"]))
    if mode == "chaos":
        pairs = chaos(draw, route)
    else:
        pairs = seed_pairs(draw, route)
        if mode == "mutate":
            pairs = mutate(draw, route, pairs)
        elif mode == "extreme":
            pairs = extreme(draw, route, pairs)
    payload = urlencode(pairs, quote_via=quote)
    if ep.signed:
        ts = f"timestamp={int(time.time() * 1000)}"
        payload = f"{payload}&{ts}" if payload else ts
        payload += "&signature=" + hmac_sha256(DEMO_SECRET, payload)
    in_body = method in ("POST", "PUT", "DELETE") and draw(st.booleans())
    return pairs, payload, in_body


# -- transport and checks ---------------------------------------------------------------------------
def send(base_url: str, method: str, target: str, body: str | None, headers: dict):
    host, port = base_url[len("http://"):].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request(method, target, body=body.encode() if body is not None else None, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(), r.getheader("Content-Type", "")
    finally:
        conn.close()


_LEGAL_RANGE = re.compile(r"legal range is '.*'")


def check_error(status: int, body, pairs, route) -> None:
    assert isinstance(body, dict) and set(body) == {"code", "msg"}, body
    code, msg = body["code"], body["msg"]
    assert type(code) is int and isinstance(msg, str), body
    assert code in SPECS, f"code {code} is not in Binance's error table: {body}"
    assert status == SPECS[code].http or status in EXTRA_STATUSES.get(code, ()), \
        f"code {code} came with HTTP {status}, Binance uses {SPECS[code].http}: {body}"
    # never echo a value: strip the legal range and quoted parameter names, then look for values
    rest = _LEGAL_RANGE.sub("", msg)
    for name in ALL_NAMES | {k for k, _ in pairs}:
        rest = rest.replace(f"'{name}'", "")
    for k, v in pairs:
        if len(v) >= 4 and v in rest and v not in SPECS[code].msg and v not in ALL_NAMES | ALL_ENUMS:
            raise AssertionError(f"{route}: message echoes the value of {k!r}: {msg!r}")


def check_success(route, pairs, body) -> None:
    method, path = route
    schema = response_schema(method, path, 200)
    variant = dict(pairs).get("type") if path == "/api/v3/ticker/24hr" else None
    patches = list(REFERENCE_WINS.get((method, path, None), ()))
    if variant:
        patches += REFERENCE_WINS.get((method, path, variant), ())
    for patch in patches:
        patch(schema)
    OAS30Validator(schema).validate(body)


def check_one(base_url: str, route, req) -> None:
    method, path = route
    pairs, payload, in_body = req
    ep = ENDPOINTS[route]
    headers = {"X-MBX-APIKEY": DEMO_API_KEY} if ep.needs_key else {}
    if in_body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        target, body = path, payload
    else:
        target, body = (f"{path}?{payload}" if payload else path), None
    status, raw, ctype = send(base_url, method, target, body, headers)
    where = f"{method} {target} body={body!r}"
    assert status < 500, f"{where} -> HTTP {status}: {raw[:300]!r}"
    assert ctype.startswith("application/json"), f"{where} -> {status} {ctype}: {raw[:300]!r}"
    try:
        data = json.loads(raw)
    except ValueError:
        raise AssertionError(f"{where} -> {status}: not JSON: {raw[:300]!r}") from None
    if 200 <= status < 300:
        check_success(route, pairs, data)
    else:
        check_error(status, data, pairs, f"{method} {path}")


def _run_route(base_url: str, route) -> None:
    @settings(max_examples=EXAMPLES, derandomize=not RANDOM, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(req=requests(route))
    def prop(req):
        check_one(base_url, route, req)

    prop()


def prepare_live(sim) -> None:
    """Real listen keys, order ids and prices for the valid-looking requests."""
    bid = float(sim.get("/api/v3/ticker/bookTicker", {"symbol": "BTCUSDT"}).json()["bidPrice"])
    LIVE["low"], LIVE["high"] = f"{bid * 0.9:.2f}", f"{bid * 1.1:.2f}"
    r = sim.request("POST", "/api/v3/userDataStream", headers={"X-MBX-APIKEY": DEMO_API_KEY})
    LIVE["listenKeys"] = [r.json()["listenKey"], "x" * 64]
    ids, cids = [], []
    for i in range(3):
        o = sim.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                 "timeInForce": "GTC", "quantity": "0.001", "price": LIVE["low"],
                                                 "newClientOrderId": f"live-{i}"}).json()
        ids.append(str(o["orderId"]))
        cids.append(o["clientOrderId"])
    LIVE["orderIds"], LIVE["clientIds"] = ids + ["999999999"], cids + ["nope"]


def test_every_endpoint_conforms(sim_factory):
    """``EXAMPLES`` generated requests per implemented endpoint; all failures reported together."""
    sim = sim_factory(GENEROUS_LIMITS)
    prepare_live(sim)
    failures = []
    for route in ROUTES:
        try:
            _run_route(sim.base_url, route)
        except Exception as e:  # noqa: BLE001 - collected, reported below
            failures.append(f"{route[0]} {route[1]}: {type(e).__name__}: {str(e)[:800]}")
    assert not failures, "\n\n".join(failures)
    # nothing crashed on the way (the pipeline logs each crash as '<endpoint> failed')
    with open(sim.log_path, encoding="utf-8", errors="replace") as fh:
        log = fh.read()
    assert "Traceback" not in log, log[-4000:]


# -- regressions for what the fuzzing found ---------------------------------------------------------
def _signed(sim, method, path, params, in_body=True):
    payload = urlencode(list(params.items()) + [("timestamp", int(time.time() * 1000))], quote_via=quote)
    payload += "&signature=" + hmac_sha256(DEMO_SECRET, payload)
    headers = {"X-MBX-APIKEY": DEMO_API_KEY}
    if in_body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return send(sim.base_url, method, path, payload, headers)
    return send(sim.base_url, method, f"{path}?{payload}", None, headers)


BIG_DECIMAL = "99999999999999999999.99999999999999999999"   # 40 digits: beyond Decimal's 28-digit context


@pytest.mark.parametrize("path", ["/api/v3/order", "/api/v3/order/test"])
@pytest.mark.parametrize("field,base", [
    ("price", {"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001"}),
    ("quantity", {"type": "LIMIT", "timeInForce": "GTC", "price": "60000"}),
    ("stopPrice", {"type": "STOP_LOSS_LIMIT", "timeInForce": "GTC", "quantity": "0.001", "price": "60000"}),
    ("icebergQty", {"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001", "price": "60000"}),
    ("quoteOrderQty", {"type": "MARKET"}),
])
def test_forty_digit_decimal_is_bad_precision_not_500(sim, path, field, base):
    params = {"symbol": "BTCUSDT", "side": "BUY", **base, field: BIG_DECIMAL}
    status, raw, _ = _signed(sim, "POST", path, params)
    assert status == 400, raw
    assert json.loads(raw) == {"code": -1111, "msg": f"Parameter '{field}' has too much precision."}


def test_forty_digit_decimal_without_excess_precision_is_a_filter_failure(sim):
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
              "price": "99999999999999999999.00000000000000000000"}
    status, raw, _ = _signed(sim, "POST", "/api/v3/order/test", params)
    assert status == 400 and json.loads(raw)["code"] == -1013, raw


def test_oversized_request_line_is_a_counted_json_error(sim):
    before = sim.stats()["requests"]["by_endpoint"].get("GET /api/v3/depth", {}).get("count", 0)
    secret = "x" * 9000
    status, raw, ctype = send(sim.base_url, "GET", f"/api/v3/depth?symbol=BTCUSDT&junk={secret}", None, {})
    assert status == 414 and ctype.startswith("application/json"), raw[:200]
    body = json.loads(raw)
    assert body["code"] == -1101 and "xxxx" not in body["msg"]
    after = sim.stats()["requests"]["by_endpoint"]["GET /api/v3/depth"]
    assert after["count"] == before + 1 and after["by_status"].get("414", 0) >= 1
    # still served below the limit
    status, raw, _ = send(sim.base_url, "GET", "/api/v3/depth?symbol=BTCUSDT&limit=5", None, {})
    assert status == 200, raw


def test_oversized_header_is_a_json_error(sim):
    status, raw, ctype = send(sim.base_url, "GET", "/api/v3/ping", None, {"X-Big": "y" * 9000})
    assert status == 431 and ctype.startswith("application/json"), raw[:200]
    body = json.loads(raw)
    assert body["code"] == -1101 and "yyyy" not in body["msg"]


def _raw_exchange(base_url: str, request: bytes) -> tuple[int, bytes, str]:
    """Send raw bytes; return (status, body, content type) of the answer."""
    host, port = base_url[len("http://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=15) as s:
        with contextlib.suppress(OSError):      # the server may answer before reading it all
            s.sendall(request)
        r = http.client.HTTPResponse(s)
        r.begin()
        return r.status, r.read(), r.getheader("Content-Type", "")


@pytest.mark.parametrize("request_bytes,status,code", [
    (b"GET /api/v3/ping?x=" + b"Z" * (2 * 1024 * 1024) + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, -1101),
    (b"GET /api/v3/ping HTTP/1.1\r\nHost: a\r\nX-Big: " + b"Z" * (2 * 1024 * 1024) + b"\r\n\r\n", 431, -1101),
    (b"GET /api/v3/ping HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-H%d: ZZZZ\r\n" % i for i in range(2000)) + b"\r\n",
     431, -1101),
    (b"GET /api/v3/ping HTTP/1.1\r\nHost: a\r\nContent-Length: ZZZZ\r\n\r\n", 400, -1000),
], ids=["line-over-parser-limit", "header-over-parser-limit", "too-many-headers", "malformed"])
def test_requests_the_parser_refuses_get_counted_json_errors(sim_factory, request_bytes, status, code):
    sim = sim_factory()
    before = sim.stats()["requests"]["total"]
    got, raw, ctype = _raw_exchange(sim.base_url, request_bytes)
    assert got == status and ctype.startswith("application/json"), raw[:200]
    body = json.loads(raw)
    assert body["code"] == code and "ZZZZ" not in body["msg"], body
    assert sim.stats()["requests"]["total"] == before + 1
    with open(sim.log_path, encoding="utf-8", errors="replace") as fh:
        log = fh.read()
    assert "Traceback" not in log and "ZZZZ" not in log, log[-2000:]
