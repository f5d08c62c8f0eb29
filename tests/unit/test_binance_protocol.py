"""Unit tests of the shared protocol package: weights, signing, headers, intervals, stream names."""
from __future__ import annotations

import calendar
import datetime as dt

import pytest

from letrade_perf.binance import endpoints as ep
from letrade_perf.binance import errors, headers, intervals, signing
from letrade_perf.binance.streams import parse_stream


@pytest.mark.parametrize("limit,weight", [(None, 5), (1, 5), (100, 5), (101, 25), (500, 25), (501, 50),
                                          (1000, 50), (1001, 250), (5000, 250), (9999, 250)])
def test_depth_weight_by_limit(limit, weight):
    params = {} if limit is None else {"limit": str(limit)}
    assert ep.endpoint("GET", "/api/v3/depth").cost(params) == weight


def test_ticker_weights():
    t24 = ep.endpoint("GET", "/api/v3/ticker/24hr")
    assert t24.cost({"symbol": "BTCUSDT"}) == 2
    assert t24.cost({}) == 80
    assert t24.cost({"symbols": '["A"]'}) == 2
    assert t24.cost({"symbols": "[" + ",".join(['"A"'] * 20) + "]"}) == 2
    assert t24.cost({"symbols": "[" + ",".join(['"A"'] * 21) + "]"}) == 40
    assert t24.cost({"symbols": "[" + ",".join(['"A"'] * 101) + "]"}) == 80
    for path in ("/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
        e = ep.endpoint("GET", path)
        assert e.cost({"symbol": "X"}) == 2 and e.cost({}) == 4 and e.cost({"symbols": '["X"]'}) == 4


def test_fixed_weights_match_the_reference():
    expected = {
        ("GET", "/api/v3/ping"): 1, ("GET", "/api/v3/time"): 1, ("GET", "/api/v3/exchangeInfo"): 20,
        ("GET", "/api/v3/trades"): 25, ("GET", "/api/v3/historicalTrades"): 25, ("GET", "/api/v3/aggTrades"): 4,
        ("GET", "/api/v3/klines"): 2, ("GET", "/api/v3/uiKlines"): 2, ("GET", "/api/v3/avgPrice"): 2,
        ("GET", "/api/v3/account"): 20, ("GET", "/api/v3/order"): 4, ("GET", "/api/v3/allOrders"): 20,
        ("GET", "/api/v3/rateLimit/order"): 40,
    }
    for (m, p), w in expected.items():
        assert ep.endpoint(m, p).cost({}) == w, (m, p)


def test_order_entry_costs_zero_when_successful():
    post = ep.endpoint("POST", "/api/v3/order")
    assert post.cost({}, ok=True) == 0 and post.cost({}, ok=False) == 1
    assert post.counts_order and post.signed
    test = ep.endpoint("POST", "/api/v3/order/test")
    assert test.cost({}, ok=True) == 1 and test.cost({"computeCommissionRates": "true"}) == 20
    assert ep.endpoint("GET", "/api/v3/openOrders").cost({"symbol": "X"}) == 6
    assert ep.endpoint("GET", "/api/v3/openOrders").cost({}) == 80
    assert ep.endpoint("GET", "/api/v3/myTrades").cost({"orderId": "1"}) == 5
    assert ep.endpoint("GET", "/api/v3/myTrades").cost({}) == 20


def test_request_names_are_endpoint_templates():
    assert ep.endpoint("get", "/api/v3/depth").name == "GET /api/v3/depth"
    assert all("?" not in e.name for e in ep.ENDPOINTS.values())


def test_hmac_docs_test_vector():
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
               "&recvWindow=5000&timestamp=1499827319559")
    sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert signing.hmac_sha256(secret, payload) == sig
    assert signing.verify_hmac(secret, payload, sig.upper())
    assert not signing.verify_hmac(secret, payload + "&x=1", sig)


def test_signed_query_preserves_order_and_percent_encodes():
    q = signing.signed_query(signing.HMAC, "s", {"b": "2", "a": "é"})
    payload, sig = q.rsplit("&signature=", 1)
    assert payload == "b=2&a=%C3%A9"
    assert sig == signing.hmac_sha256("s", payload)


def test_ed25519_round_trip_and_ws_payload():
    priv, pub = signing.generate_ed25519()
    params = {"timestamp": 1, "apiKey": "k", "symbol": "BTCUSDT", "signature": "ignored"}
    payload = signing.ws_api_payload(params)
    assert payload == "apiKey=k&symbol=BTCUSDT&timestamp=1"
    sig = signing.ed25519_sign(priv, payload)
    pk = signing.load_ed25519_public(pub)
    assert signing.verify_ed25519(pk, payload, sig)
    assert not signing.verify_ed25519(pk, payload + "x", sig)
    assert not signing.verify_ed25519(pk, payload, "not base64!")


def test_header_parsing():
    h = {"x-mbx-used-weight-1m": "321", "X-MBX-USED-WEIGHT": "321", "X-MBX-ORDER-COUNT-10S": "12",
         "X-MBX-ORDER-COUNT-1D": "4043", "Retry-After": "7"}
    assert headers.parse_used_weight(h) == {60_000: 321}
    assert headers.parse_order_count(h) == {10_000: 12, 86_400_000: 4043}
    assert headers.parse_retry_after(h) == 7.0
    assert headers.used_weight_header("MINUTE", 1) == "X-MBX-USED-WEIGHT-1M"
    assert headers.order_count_header("SECOND", 10) == "X-MBX-ORDER-COUNT-10S"


def test_kline_open_times():
    t = calendar.timegm((2026, 11, 19, 13, 47, 12)) * 1000 + 345   # a Thursday
    assert intervals.kline_open("1m", t) == calendar.timegm((2026, 11, 19, 13, 47, 0)) * 1000
    assert intervals.kline_open("4h", t) == calendar.timegm((2026, 11, 19, 12, 0, 0)) * 1000
    monday = intervals.kline_open("1w", t)
    assert dt.datetime.fromtimestamp(monday / 1000, dt.timezone.utc).weekday() == 0
    assert intervals.kline_open("1M", t) == calendar.timegm((2026, 11, 1, 0, 0, 0)) * 1000
    assert intervals.kline_next("1M", calendar.timegm((2026, 12, 1, 0, 0, 0)) * 1000) == \
        calendar.timegm((2027, 1, 1, 0, 0, 0)) * 1000
    assert intervals.kline_prev("1M", calendar.timegm((2026, 1, 1, 0, 0, 0)) * 1000) == \
        calendar.timegm((2025, 12, 1, 0, 0, 0)) * 1000


@pytest.mark.parametrize("name,kind,extra", [
    ("btcusdt@trade", "trade", {}),
    ("btcusdt@aggTrade", "aggTrade", {}),
    ("btcusdt@kline_1m", "kline", {"interval": "1m"}),
    ("btcusdt@kline_1M", "kline", {"interval": "1M"}),
    ("btcusdt@depth", "depth", {"speed_ms": 1000}),
    ("btcusdt@depth@100ms", "depth", {"speed_ms": 100}),
    ("btcusdt@depth10@100ms", "partialDepth", {"levels": 10, "speed_ms": 100}),
    ("btcusdt@bookTicker", "bookTicker", {}),
    ("btcusdt@ticker", "ticker", {}),
    ("btcusdt@miniTicker", "miniTicker", {}),
    ("!miniTicker@arr", "miniTickerArr", {}),
    ("btcusdt@avgPrice", "avgPrice", {}),
    ("btcusdt@ticker_1h", "windowTicker", {"window": "1h"}),
    ("btcusdt@ticker_4h", "windowTicker", {"window": "4h"}),
    ("btcusdt@ticker_1d", "windowTicker", {"window": "1d"}),
    ("!ticker_1h@arr", "windowTickerArr", {"window": "1h"}),
    ("!ticker_1d@arr", "windowTickerArr", {"window": "1d"}),
    ("btcusdt@referencePrice", "referencePrice", {}),
])
def test_parse_stream(name, kind, extra):
    s = parse_stream(name)
    assert s.kind == kind
    for k, v in extra.items():
        assert getattr(s, k) == v
    if kind in ("miniTickerArr", "windowTickerArr"):
        assert s.symbol is None
    else:
        assert s.symbol == "BTCUSDT"
    # lag is measured only on payloads that are one object with an event time E
    assert s.has_event_time == (kind not in ("miniTickerArr", "windowTickerArr", "bookTicker", "partialDepth",
                                             "referencePrice"))


@pytest.mark.parametrize("bad", ["BTCUSDT@trade", "btcusdt@nope", "btcusdt@kline_7m", "btcusdt", "@trade",
                                 "btcusdt@trade@100ms", "btcusdt@depth7", "btcusdt@kline_1m\n", "btcusdt@depth5\n",
                                 "btcusdt@avgprice", "btcusdt@avgPrice@1000ms", "btcusdt@ticker_2h",
                                 "btcusdt@ticker_1H", "btcusdt@ticker_1h\n", "btcusdt@ticker_", "!ticker@arr",
                                 "!ticker_1w@arr", "!ticker_1h@arr\n", "!ticker_1h", "btcusdt@!ticker_1h@arr",
                                 "!miniTicker@arr@x", "btcusdt@referenceprice", "btcusdt@referencePrice@1000ms"])
def test_parse_stream_rejects(bad):
    with pytest.raises(ValueError, match="invalid stream name"):
        parse_stream(bad)


def test_error_table():
    e = errors.error(-1003, 6000, "1 MINUTE")
    assert e.http == 429 and "6000 request weight per 1 MINUTE" in e.msg
    assert errors.error(-2015).http == 401
    assert errors.filter_failure("LOT_SIZE").body() == {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
    assert errors.is_status_unknown(503, None) and errors.is_status_unknown(400, -1007)
    assert not errors.is_status_unknown(400, -2010)


from urllib.parse import urlencode  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), max_size=5))
def test_encode_params_is_byte_identical_to_urlencode(params):
    assert signing.encode_params(params) == urlencode(list(params.items()))
