"""WebSocket API methods beyond the basics, over real sockets against a simulator process:
market data (``klines``, ``uiKlines``, ``trades.*``, ``avgPrice``, ``ticker.24hr``), order and
trade history (``allOrders``, ``myTrades``) and ``order.cancelReplace``.

Weights are checked as the ``REQUEST_WEIGHT`` count of ``rateLimits`` right after a ``ping``
(weight 1) on the same connection; the minute bucket may roll over in between, in which case the
count is the request's own weight.
"""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from test_wsapi import Api, weight_count

SYM = "BTCUSDT"


@pytest.fixture
def api(sim):
    a = Api(sim)
    yield a
    a.close()


def charged(api: Api, method: str, params: dict | None = None, sign: str | None = None) -> tuple[dict, int]:
    """``(response, weight it was charged)``: the weight count after it minus the count after a ping."""
    before = weight_count(api.call("ping"))
    r = api.call(method, params, sign=sign)
    after = weight_count(r)
    return r, (after - before if after >= before else after)


def orders_count(frame: dict, interval: str = "DAY") -> int:
    return next(r["count"] for r in frame["rateLimits"]
                if r["rateLimitType"] == "ORDERS" and r["interval"] == interval)


def last_price(api: Api, symbol: str = SYM) -> Decimal:
    return Decimal(api.call("ticker.price", {"symbol": symbol})["result"]["price"])


def px(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def place_passive_buy(api: Api, factor: str = "0.9", qty: str = "0.001", sign: str = "hmac", **extra) -> dict:
    p = {"symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": qty,
         "price": px(last_price(api) * Decimal(factor)), **extra}
    r = api.call("order.place", p, sign=sign)
    assert r["status"] == 200, r
    assert r["result"]["status"] == "NEW"
    return r["result"]


def order_status(api: Api, order_id: int, sign: str = "hmac") -> str:
    r = api.call("order.status", {"symbol": SYM, "orderId": order_id}, sign=sign)
    assert r["status"] == 200, r
    return r["result"]["status"]


# -- market data -----------------------------------------------------------------------------------

def test_klines_and_ui_klines_match_rest_with_rest_weights(sim, api):
    now = int(time.time() * 1000)
    end = now - now % 60_000 - 1          # only closed 1m candles: REST and WS must agree exactly
    q = {"symbol": SYM, "interval": "1m", "endTime": end, "limit": 5}
    for method, path in (("klines", "/api/v3/klines"), ("uiKlines", "/api/v3/uiKlines")):
        r, w = charged(api, method, q)
        assert r["status"] == 200, r
        assert w == 2
        rows = r["result"]
        assert len(rows) == 5
        for row in rows:
            assert len(row) == 12 and row[0] % 60_000 == 0 and row[6] == row[0] + 59_999
            assert Decimal(row[2]) >= max(Decimal(row[1]), Decimal(row[4])) >= Decimal(row[3]) > 0
        assert rows[-1][6] == end
        assert [b[0] - a[0] for a, b in zip(rows, rows[1:])] == [60_000] * 4
        rest = sim.get(path, q)
        assert rest.status == 200 and rest.json() == rows
    ts = api.call("klines", {"symbol": SYM, "interval": "1h", "limit": 3, "timeZone": "8"})
    assert ts["status"] == 200 and len(ts["result"]) == 3


def test_trades_methods_match_rest(sim, api):
    recent, w = charged(api, "trades.recent", {"symbol": SYM, "limit": 20})
    assert recent["status"] == 200 and w == 25
    trades = recent["result"]
    assert len(trades) == 20
    assert set(trades[0]) == {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}
    ids = [t["id"] for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == 20

    first = ids[0]
    hist, w = charged(api, "trades.historical", {"symbol": SYM, "fromId": first, "limit": 10})
    assert hist["status"] == 200 and w == 25
    assert [t["id"] for t in hist["result"]] == list(range(first, first + 10))
    assert hist["result"] == trades[:10]          # the same trades, field for field
    rest = sim.get("/api/v3/historicalTrades", {"symbol": SYM, "fromId": first, "limit": 10})
    assert rest.status == 200 and rest.json() == hist["result"]
    # NONE since 2023-07-11: an apiKey is accepted and ignored, no signature needed
    keyed = api.call("trades.historical", {"symbol": SYM, "fromId": first, "limit": 10, "apiKey": sim.api_key})
    assert keyed["status"] == 200 and keyed["result"] == hist["result"]

    agg, w = charged(api, "trades.aggregate", {"symbol": SYM, "limit": 5})
    assert agg["status"] == 200 and w == 4
    rows = agg["result"]
    assert len(rows) == 5 and set(rows[0]) == {"a", "p", "q", "f", "l", "T", "m", "M"}
    assert all(r["f"] <= r["l"] for r in rows)
    a0 = rows[0]["a"]
    by_id = api.call("trades.aggregate", {"symbol": SYM, "fromId": a0, "limit": 3})
    assert [r["a"] for r in by_id["result"]] == [a0, a0 + 1, a0 + 2]
    rest = sim.get("/api/v3/aggTrades", {"symbol": SYM, "fromId": a0, "limit": 3})
    assert rest.status == 200 and rest.json() == by_id["result"]


def test_avg_price_and_ticker_24hr(sim, api):
    avg, w = charged(api, "avgPrice", {"symbol": SYM})
    assert avg["status"] == 200 and w == 2
    assert set(avg["result"]) >= {"mins", "price", "closeTime"} and Decimal(avg["result"]["price"]) > 0

    one, w = charged(api, "ticker.24hr", {"symbol": SYM})
    assert one["status"] == 200 and w == 2
    t = one["result"]
    assert t["symbol"] == SYM and Decimal(t["highPrice"]) >= Decimal(t["lowPrice"]) > 0
    assert t["count"] == t["lastId"] - t["firstId"] + 1
    rest = sim.get("/api/v3/ticker/24hr", {"symbol": SYM}).json()
    assert set(rest) == set(t) and rest["openTime"] <= t["openTime"] + 1000

    two, w = charged(api, "ticker.24hr", {"symbols": ["BTCUSDT", "ETHUSDT"], "type": "MINI"})
    assert two["status"] == 200 and w == 2
    assert [x["symbol"] for x in two["result"]] == ["BTCUSDT", "ETHUSDT"]
    assert "priceChange" not in two["result"][0] and "lastPrice" in two["result"][0]

    every, w = charged(api, "ticker.24hr")
    assert every["status"] == 200 and w == 80
    assert {"BTCUSDT", "ETHUSDT"} <= {x["symbol"] for x in every["result"]}


@pytest.mark.parametrize("method,params,code", [
    ("klines", {"symbol": SYM, "interval": "7m"}, -1120),
    ("klines", {"symbol": SYM}, -1102),
    ("uiKlines", {"symbol": "NOPE", "interval": "1m"}, -1121),
    ("trades.recent", {"symbol": SYM, "limit": "x"}, -1100),
    ("trades.historical", {"symbol": SYM, "fromId": -5}, -1100),
    ("trades.aggregate", {"symbol": SYM, "startTime": 2_000_000, "endTime": 1_000_000}, -1128),
    ("avgPrice", {}, -1102),
    ("ticker.24hr", {"symbol": "bad symbol"}, -1100),
])
def test_market_data_bad_parameters(api, method, params, code):
    r, w = charged(api, method, params)
    assert r["status"] == 400, r
    assert r["error"]["code"] == code and r["error"]["msg"]
    assert w >= 2                                  # refused requests pay their weight too


# -- allOrders / myTrades ---------------------------------------------------------------------------

def test_all_orders_and_my_trades_after_a_fill(api):
    market = api.call("order.place", {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.002"},
                      sign="hmac")
    assert market["status"] == 200 and market["result"]["status"] == "FILLED", market
    filled_id = market["result"]["orderId"]
    fills = market["result"]["fills"]
    resting = place_passive_buy(api)

    orders, w = charged(api, "allOrders", {"symbol": SYM, "orderId": filled_id}, sign="hmac")
    assert orders["status"] == 200 and w == 20
    by_id = {o["orderId"]: o for o in orders["result"]}
    assert [o["orderId"] for o in orders["result"]][0] == filled_id
    assert by_id[filled_id]["status"] == "FILLED" and by_id[filled_id]["executedQty"] == "0.00200000"
    assert by_id[resting["orderId"]]["status"] == "NEW"
    assert by_id[resting["orderId"]]["price"] == resting["price"]
    limited = api.call("allOrders", {"symbol": SYM, "orderId": filled_id, "limit": 1}, sign="hmac")
    assert [o["orderId"] for o in limited["result"]] == [filled_id]

    mine, w = charged(api, "myTrades", {"symbol": SYM, "orderId": filled_id}, sign="hmac")
    assert mine["status"] == 200 and w == 5
    assert {t["orderId"] for t in mine["result"]} == {filled_id}
    assert [t["id"] for t in mine["result"]] == [f["tradeId"] for f in fills]
    assert sum(Decimal(t["qty"]) for t in mine["result"]) == Decimal("0.002")
    assert all(t["isBuyer"] is True and t["isMaker"] is False and t["symbol"] == SYM for t in mine["result"])

    recent, w = charged(api, "myTrades", {"symbol": SYM, "limit": 3}, sign="hmac")
    assert recent["status"] == 200 and w == 20
    assert recent["result"][-1]["id"] == fills[-1]["tradeId"]

    assert api.call("order.cancel", {"symbol": SYM, "orderId": resting["orderId"]}, sign="hmac")["status"] == 200


def test_all_orders_and_my_trades_signature_rules(sim, api):
    ts = int(time.time() * 1000)
    for method in ("allOrders", "myTrades"):
        unsigned = api.call(method, {"symbol": SYM, "timestamp": ts})
        assert unsigned["status"] == 400 and unsigned["error"]["code"] == -1102      # no apiKey, no session
        no_sig = api.call(method, {"symbol": SYM, "timestamp": ts, "apiKey": sim.api_key})
        assert no_sig["status"] == 400 and no_sig["error"]["code"] == -1102
        assert "signature" in no_sig["error"]["msg"]
        bad = api.call(method, {"symbol": SYM, "timestamp": ts, "apiKey": sim.api_key, "signature": "0" * 64})
        assert bad["status"] == 400 and bad["error"]["code"] == -1022
        stale = api.call(method, {"symbol": SYM, "timestamp": ts - 120_000}, sign="hmac")
        assert stale["status"] == 400 and stale["error"]["code"] == -1021
        assert api.call(method, {"symbol": SYM}, sign="ed25519")["status"] == 200
    # after session.logon (Ed25519) only the timestamp is needed
    assert api.call("session.logon", sign="ed25519")["status"] == 200
    for method in ("allOrders", "myTrades"):
        r = api.call(method, {"symbol": SYM, "timestamp": int(time.time() * 1000)})
        assert r["status"] == 200 and isinstance(r["result"], list), r


@pytest.mark.parametrize("method,params,code", [
    ("allOrders", {}, -1102),
    ("allOrders", {"symbol": SYM, "startTime": 2_000_000, "endTime": 1_000_000}, -1128),
    ("allOrders", {"symbol": SYM, "startTime": 1_000_000, "endTime": 1_000_000 + 25 * 3_600_000}, -1127),
    ("myTrades", {"symbol": SYM, "fromId": 1, "startTime": 1_000_000}, -1128),
    ("myTrades", {"symbol": "NOPE"}, -1121),
    ("myTrades", {"symbol": SYM, "orderId": "abc"}, -1100),
])
def test_history_bad_parameters(api, method, params, code):
    r = api.call(method, params, sign="hmac")
    assert r["status"] == 400 and r["error"]["code"] == code, r
    assert weight_count(r) >= 5


# -- order.cancelReplace --------------------------------------------------------------------------

def test_cancel_replace_success(api):
    placed = api.call("order.place", {"symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                      "quantity": "0.001", "price": px(last_price(api) * Decimal("0.9"))},
                      sign="hmac")
    assert placed["status"] == 200, placed
    old = placed["result"]
    new_price = px(last_price(api) * Decimal("0.88"))
    before = api.call("ping")
    r = api.call("order.cancelReplace", {
        "symbol": SYM, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": old["orderId"],
        "cancelNewClientOrderId": "cr-cancel-1", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.002", "price": new_price, "newClientOrderId": "cr-new-1", "newOrderRespType": "RESULT"},
        sign="hmac")
    assert r["status"] == 200, r
    res = r["result"]
    assert res["cancelResult"] == "SUCCESS" and res["newOrderResult"] == "SUCCESS"
    c = res["cancelResponse"]
    assert c["orderId"] == old["orderId"] and c["status"] == "CANCELED"
    assert c["origClientOrderId"] == old["clientOrderId"] and c["clientOrderId"] == "cr-cancel-1"
    n = res["newOrderResponse"]
    assert n["orderId"] > old["orderId"] and n["clientOrderId"] == "cr-new-1" and n["status"] == "NEW"
    assert n["price"] == f"{Decimal(new_price):.8f}" and n["origQty"] == "0.00200000"
    assert "fills" not in n                                     # newOrderRespType=RESULT
    # successful order entry costs no weight; the new order counts once in ORDERS
    assert weight_count(r) == weight_count(before) or weight_count(r) == 0
    assert orders_count(r) == orders_count(placed) + 1
    assert order_status(api, old["orderId"]) == "CANCELED"
    assert order_status(api, n["orderId"]) == "NEW"
    # by client order id, ALLOW_FAILURE: the new order may reuse the cancelled order's clientOrderId
    r2 = api.call("order.cancelReplace", {
        "symbol": SYM, "cancelReplaceMode": "ALLOW_FAILURE", "cancelOrigClientOrderId": "cr-new-1",
        "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001", "price": new_price,
        "newClientOrderId": "cr-new-1"}, sign="hmac")
    assert r2["status"] == 200, r2
    assert r2["result"]["cancelResponse"]["orderId"] == n["orderId"]
    n2 = r2["result"]["newOrderResponse"]
    assert n2["clientOrderId"] == "cr-new-1" and n2["fills"] == []   # LIMIT defaults to FULL
    assert orders_count(r2) == orders_count(r) + 1
    assert api.call("order.cancel", {"symbol": SYM, "orderId": n2["orderId"]}, sign="hmac")["status"] == 200


def test_cancel_replace_stop_on_failure_cancel_fails(api):
    prev = api.call("order.test", {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.001"},
                    sign="hmac")
    r, w = charged(api, "order.cancelReplace", {
        "symbol": SYM, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": 987654321,
        "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
        "price": px(last_price(api) * Decimal("0.9"))}, sign="hmac")
    assert r["status"] == 400, r
    assert w == 1                                                # a failed order-entry call pays its weight
    err = r["error"]
    assert err["code"] == -2022 and err["msg"] == "Order cancel-replace failed."
    assert err["data"] == {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                           "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                           "newOrderResponse": None}
    # the not-attempted new order still counts
    kinds = [x["rateLimitType"] for x in r["rateLimits"]]
    assert kinds.count("ORDERS") == 2 and "ORDERS" not in [x["rateLimitType"] for x in prev["rateLimits"]]


def test_cancel_replace_partial_failures_and_full_failure(api):
    # cancel succeeds, new order rejected by the engine (LIMIT_MAKER that would take) -> 409 -2021
    old = place_passive_buy(api, "0.9")
    crossing = px(last_price(api) * Decimal("1.02"))
    r = api.call("order.cancelReplace", {
        "symbol": SYM, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": old["orderId"],
        "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.001", "price": crossing}, sign="hmac")
    assert r["status"] == 409, r
    err = r["error"]
    assert err["code"] == -2021 and err["msg"] == "Order cancel-replace partially failed."
    d = err["data"]
    assert d["cancelResult"] == "SUCCESS" and d["newOrderResult"] == "FAILURE"
    assert d["cancelResponse"]["orderId"] == old["orderId"] and d["cancelResponse"]["status"] == "CANCELED"
    assert d["newOrderResponse"] == {"code": -2010, "msg": "Order would immediately match and take."}
    assert order_status(api, old["orderId"]) == "CANCELED"      # not transactional: the cancel stays done
    assert [x["rateLimitType"] for x in r["rateLimits"]].count("ORDERS") == 2

    # cancel fails, new order placed (ALLOW_FAILURE) -> 409 -2021
    r = api.call("order.cancelReplace", {
        "symbol": SYM, "cancelReplaceMode": "ALLOW_FAILURE", "cancelOrderId": old["orderId"],
        "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
        "price": px(last_price(api) * Decimal("0.9"))}, sign="hmac")
    assert r["status"] == 409 and r["error"]["code"] == -2021, r
    d = r["error"]["data"]
    assert d["cancelResult"] == "FAILURE" and d["newOrderResult"] == "SUCCESS"
    assert d["cancelResponse"] == {"code": -2011, "msg": "Unknown order sent."}
    placed = d["newOrderResponse"]["orderId"]
    assert order_status(api, placed) == "NEW"

    # both fail (ALLOW_FAILURE) -> 400 -2022 with both inner errors
    r = api.call("order.cancelReplace", {
        "symbol": SYM, "cancelReplaceMode": "ALLOW_FAILURE", "cancelOrderId": old["orderId"],
        "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.001", "price": crossing}, sign="hmac")
    assert r["status"] == 400 and r["error"]["code"] == -2022, r
    assert r["error"]["data"] == {"cancelResult": "FAILURE", "newOrderResult": "FAILURE",
                                  "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                                  "newOrderResponse": {"code": -2010,
                                                       "msg": "Order would immediately match and take."}}
    assert order_status(api, placed) == "NEW"
    assert api.call("order.cancel", {"symbol": SYM, "orderId": placed}, sign="hmac")["status"] == 200


def test_cancel_replace_validation_happens_before_the_cancel(sim, api):
    old = place_passive_buy(api, "0.9")
    base = {"symbol": SYM, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": old["orderId"],
            "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
            "price": px(last_price(api) * Decimal("0.9"))}
    cases = [
        ({"quantity": "0.00000001"}, -1013),                           # LOT_SIZE filter of the new order
        ({"timeInForce": None}, -1102),                                # LIMIT without timeInForce
        ({"cancelReplaceMode": None}, -1102),
        ({"cancelReplaceMode": "SOMETIMES"}, -1100),
        ({"cancelOrderId": None}, -1102),                              # neither cancel id
        ({"orderRateLimitExceededMode": "NEVER"}, -1100),
        ({"symbol": "NOPE"}, -1121),
    ]
    for change, code in cases:
        p = {k: v for k, v in {**base, **change}.items() if v is not None}
        r = api.call("order.cancelReplace", p, sign="hmac")
        assert r["status"] == 400 and r["error"]["code"] == code, (change, r)
        assert "data" not in r["error"], r
    assert order_status(api, old["orderId"]) == "NEW"                  # nothing was cancelled
    # signature rules: no apiKey/session, a wrong signature
    ts = int(time.time() * 1000)
    r = api.call("order.cancelReplace", {**base, "timestamp": ts})
    assert r["status"] == 400 and r["error"]["code"] == -1102
    r = api.call("order.cancelReplace", {**base, "timestamp": ts, "apiKey": sim.api_key, "signature": "0" * 64})
    assert r["status"] == 400 and r["error"]["code"] == -1022
    assert order_status(api, old["orderId"]) == "NEW"
    # Ed25519 session: timestamp only; the Ed25519 account cannot cancel the HMAC account's order
    assert api.call("session.logon", sign="ed25519")["status"] == 200
    r = api.call("order.cancelReplace", {**base, "timestamp": int(time.time() * 1000)})
    assert r["status"] == 400 and r["error"]["code"] == -2022, r
    assert r["error"]["data"]["cancelResponse"]["code"] == -2011
    assert order_status(api, old["orderId"]) == "NEW"
    assert api.call("order.cancel", {"symbol": SYM, "orderId": old["orderId"]}, sign="hmac")["status"] == 200


def test_cancel_replace_order_rate_limit_modes(sim_factory):
    # the DAY bucket (2 orders) is the one exhausted: it cannot roll over during the test
    sim = sim_factory({"limits": {"orders_per_day": 2}})
    api = Api(sim)
    try:
        first = place_passive_buy(api, "0.9")
        second = place_passive_buy(api, "0.91")
        base = {"symbol": SYM, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": first["orderId"],
                "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
                "price": px(last_price(api) * Decimal("0.9"))}
        r = api.call("order.cancelReplace", base, sign="hmac")
        assert r["status"] == 429 and r["error"]["code"] == -1015, r
        assert orders_count(r) == 2
        assert order_status(api, first["orderId"]) == "NEW"            # DO_NOTHING: not even cancelled

        r = api.call("order.cancelReplace", {**base, "orderRateLimitExceededMode": "CANCEL_ONLY"}, sign="hmac")
        assert r["status"] == 409 and r["error"]["code"] == -2021, r
        d = r["error"]["data"]
        assert d["cancelResult"] == "SUCCESS" and d["newOrderResult"] == "FAILURE"
        assert d["cancelResponse"]["orderId"] == first["orderId"]
        assert d["newOrderResponse"]["code"] == -1015
        assert order_status(api, first["orderId"]) == "CANCELED"
        assert orders_count(r) == 2

        # CANCEL_ONLY, the cancel fails too: STOP_ON_FAILURE -> the plain 429, ALLOW_FAILURE -> -2022
        r = api.call("order.cancelReplace", {**base, "orderRateLimitExceededMode": "CANCEL_ONLY"}, sign="hmac")
        assert r["status"] == 429 and r["error"]["code"] == -1015, r
        r = api.call("order.cancelReplace", {**base, "orderRateLimitExceededMode": "CANCEL_ONLY",
                                             "cancelReplaceMode": "ALLOW_FAILURE"}, sign="hmac")
        assert r["status"] == 400 and r["error"]["code"] == -2022, r
        assert r["error"]["data"]["cancelResponse"]["code"] == -2011
        assert r["error"]["data"]["newOrderResponse"]["code"] == -1015
        assert order_status(api, second["orderId"]) == "NEW"
    finally:
        api.close()
