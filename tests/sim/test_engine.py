"""Matching engine: orders, balances, filters, errors, events and the synthetic flow."""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from letrade_perf.binance import errors as E
from letrade_perf.binance.errors import BinanceError
from letrade_perf.binance.intervals import DAY_MS
from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import DEMO_API_KEY, AccountSpec, SimConfig
from letrade_perf.sim.engine import Exchange
from letrade_perf.sim.events import EventHub
from letrade_perf.sim.params import Params
from letrade_perf.sim.stats import SimStats

KEY = DEMO_API_KEY
START = 1_700_000_000_000
OPENAPI = Path(__file__).resolve().parent.parent / "data" / "binance-spot-openapi.yaml"


class Rig:
    """An exchange on a manual clock with every published event recorded."""

    def __init__(self, **cfg_kw):
        market = cfg_kw.pop("market", {})
        self.cfg = SimConfig(**cfg_kw)
        for k, v in market.items():
            setattr(self.cfg.market, k, v)
        self.clock = ManualClock(START)
        self.events = EventHub()
        self.stats = SimStats()
        self.user: list[tuple[str, dict]] = []
        self.books = []
        self.trades = []
        self.events.on_user(lambda a, e: self.user.append((a, e)))
        self.events.on_book(self.books.append)
        self.events.on_trade(self.trades.append)
        self.ex = Exchange(self.cfg, self.clock, self.events, self.stats)

    def tick(self, ms: int = 100) -> None:
        self.clock.advance(ms)
        self.ex.tick(self.clock.now_ms())

    def reports(self, key: str = KEY) -> list[dict]:
        return [e for a, e in self.user if a == key and e["e"] == "executionReport"]

    def bal(self, asset: str, key: str = KEY) -> tuple[Decimal, Decimal]:
        return self.ex.balance(key, asset)

    def top(self, symbol: str = "BTCUSDT") -> tuple[Decimal, Decimal]:
        d = self.ex.depth(P(symbol=symbol, limit=1))
        return Decimal(d["bids"][0][0]), Decimal(d["asks"][0][0])


def P(**kw) -> Params:
    return Params({k: str(v) for k, v in kw.items()})


def order(rig: Rig, key: str = KEY, **kw) -> dict:
    kw.setdefault("symbol", "BTCUSDT")
    return rig.ex.new_order(key, P(**kw))


def raises(code: int, fn, *a, msg: str | None = None, **kw) -> BinanceError:
    with pytest.raises(BinanceError) as e:
        fn(*a, **kw)
    assert e.value.code == code, e.value.body()
    if msg is not None:
        assert e.value.msg == msg, e.value.body()
    return e.value


def locked_invariant(rig: Rig, key: str = KEY) -> None:
    """Locked balances equal what the open orders still hold."""
    acct = rig.ex._accounts[key]
    want: dict[str, int] = {}
    for opened in acct.open.values():
        for o in opened.values():
            want[o.lock_asset] = want.get(o.lock_asset, 0) + o.locked
    for asset, (free, locked) in acct.balances.items():
        assert locked == want.get(asset, 0), asset
        assert free >= 0 and locked >= 0


# -----------------------------------------------------------------------------------------------
# Market data shapes and caching
# -----------------------------------------------------------------------------------------------

def test_exchange_info_shape_filters_and_ccxt_parse():
    rig = Rig()
    info = rig.ex.exchange_info(P())
    assert info["timezone"] == "UTC" and info["rateLimits"] == rig.cfg.rate_limits()
    assert {s["symbol"] for s in info["symbols"]} == {s.symbol for s in rig.cfg.symbols}
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    names = [f["filterType"] for f in btc["filters"]]
    assert names == ["PRICE_FILTER", "LOT_SIZE", "ICEBERG_PARTS", "MARKET_LOT_SIZE", "TRAILING_DELTA",
                     "PERCENT_PRICE_BY_SIDE", "NOTIONAL", "MAX_NUM_ORDERS", "MAX_NUM_ALGO_ORDERS"]
    assert btc["filters"][0]["tickSize"] == "0.01000000"
    assert {"LIMIT", "LIMIT_MAKER", "MARKET"} <= set(btc["orderTypes"])
    rig.clock.advance(5000)
    assert rig.ex.exchange_info(P())["serverTime"] == START + 5000
    one = rig.ex.exchange_info(P(symbol="ETHBTC"))
    assert [s["symbol"] for s in one["symbols"]] == ["ETHBTC"]
    two = rig.ex.exchange_info(Params({"symbols": '["ETHBTC","BTCUSDT"]'}))
    assert [s["symbol"] for s in two["symbols"]] == ["ETHBTC", "BTCUSDT"]
    assert rig.ex.exchange_info(P(permissions="MARGIN"))["symbols"] == []
    assert len(rig.ex.exchange_info(P(permissions="SPOT"))["symbols"]) == 5
    assert len(rig.ex.exchange_info(P(symbolStatus="TRADING"))["symbols"]) == 5
    raises(-1121, rig.ex.exchange_info, P(symbol="NOPEUSDT"))
    raises(-1121, rig.ex.exchange_info, Params({"symbols": '["BTCUSDT","NOPE"]'}))
    ccxt = pytest.importorskip("ccxt")
    client = ccxt.binance()
    client.options["crossMarginPairsData"] = []        # set by fetch_markets normally
    client.options["isolatedMarginPairsData"] = []
    market = client.parse_market(btc)
    assert market["symbol"] == "BTC/USDT" and market["active"] is True
    assert market["precision"]["price"] == 0.01 and market["precision"]["amount"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5.0


def test_depth_cached_by_identity_until_the_book_changes():
    rig = Rig()
    a = rig.ex.depth(P(symbol="BTCUSDT"))
    b = rig.ex.depth(P(symbol="BTCUSDT"))
    assert a is b and len(a["bids"]) == 100 and len(a["asks"]) == 100
    bids = [Decimal(p) for p, _ in a["bids"]]
    asks = [Decimal(p) for p, _ in a["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    big = rig.ex.depth(P(symbol="BTCUSDT", limit=100000))
    assert len(big["bids"]) == rig.cfg.market.book_levels
    raises(-1100, rig.ex.depth, P(symbol="BTCUSDT", limit=0))
    raises(-1100, rig.ex.depth, P(symbol="BTCUSDT", limit="abc"))
    raises(-1102, rig.ex.depth, P())
    bid, ask = rig.top()
    order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(bid - 100))
    c = rig.ex.depth(P(symbol="BTCUSDT"))
    assert c is not a and c["lastUpdateId"] > a["lastUpdateId"]


def test_ticker_price_and_24hr_and_book_ticker():
    rig = Rig()
    one = rig.ex.ticker_price(P(symbol="BTCUSDT"))
    assert rig.ex.ticker_price(P(symbol="BTCUSDT")) is one
    every = rig.ex.ticker_price(P())
    assert rig.ex.ticker_price(P()) is every and len(every) == 5
    r = order(rig, side="BUY", type="MARKET", quantity="0.01")
    fresh = rig.ex.ticker_price(P(symbol="BTCUSDT"))
    assert fresh["price"] == r["fills"][-1]["price"]
    t = rig.ex.ticker_24hr(P(symbol="BTCUSDT"))
    assert isinstance(t, dict) and t["lastPrice"] == fresh["price"]
    assert Decimal(t["lowPrice"]) <= Decimal(t["lastPrice"]) <= Decimal(t["highPrice"])
    assert t["count"] == t["lastId"] - t["firstId"] + 1
    mini = rig.ex.ticker_24hr(Params({"symbols": '["BTCUSDT","ETHUSDT"]', "type": "MINI"}))
    assert isinstance(mini, list) and len(mini) == 2 and "bidPrice" not in mini[0]
    assert len(rig.ex.ticker_24hr(P())) == 5
    bt = rig.ex.book_ticker(P(symbol="ETHUSDT"))
    assert Decimal(bt["bidPrice"]) < Decimal(bt["askPrice"])
    tob = rig.ex.top_of_book("ETHUSDT")
    assert tob["b"] == bt["bidPrice"] and tob["u"] == rig.ex.book_update_id("ETHUSDT")
    avg = rig.ex.avg_price(P(symbol="BTCUSDT"))
    assert avg["mins"] == 5 and Decimal(avg["price"]) > 0
    raises(-1121, rig.ex.ticker_price, P(symbol="XXX"))
    raises(-1220, rig.ex.ticker_24hr, P(symbol="BTCUSDT", symbolStatus="HALT"))


def test_responses_validate_against_openapi_schemas():
    validator = pytest.importorskip("openapi_schema_validator")
    schemas = yaml.safe_load(OPENAPI.read_text())["components"]["schemas"]
    rig = Rig()

    def check(obj, name):
        validator.validate(obj, schemas[name])

    check(rig.ex.account(KEY, P()), "account")
    bid, ask = rig.top()
    full = order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.02", price=str(ask + 50))
    check(full, "orderResponseFull")
    check(order(rig, side="SELL", type="MARKET", quantity="0.01", newOrderRespType="RESULT"), "orderResponseResult")
    ack = order(rig, side="BUY", type="LIMIT_MAKER", quantity="0.01", price=str(bid - 10))
    check(ack, "orderResponseAck")
    check(rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=ack["orderId"])), "orderDetails")
    for t in rig.ex.my_trades(KEY, P(symbol="BTCUSDT")):
        check(t, "myTrade")
    for t in rig.ex.trades(P(symbol="BTCUSDT", limit=5)):
        check(t, "trade")
    check(rig.ex.ticker_24hr(P(symbol="BTCUSDT")), "dayTicker")
    check(rig.ex.book_ticker(P(symbol="BTCUSDT")), "bookTicker")
    check(rig.ex.ticker_price(P(symbol="BTCUSDT")), "priceTicker")


def test_account_shape_and_omit_zero_balances():
    rig = Rig()
    acc = rig.ex.account(KEY, P())
    assert acc["commissionRates"] == {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000",
                                      "seller": "0.00000000"}
    assert acc["makerCommission"] == 10 and acc["canTrade"] is True and acc["accountType"] == "SPOT"
    assets = {b["asset"] for b in acc["balances"]}
    assert {"BTC", "USDT", "ETH", "BNB", "SOL"} <= assets
    nonzero = rig.ex.account(KEY, P(omitZeroBalances="true"))["balances"]
    assert all(Decimal(b["free"]) or Decimal(b["locked"]) for b in nonzero)
    raises(-2015, rig.ex.account, "nobody", P())


# -----------------------------------------------------------------------------------------------
# Order lifecycle and exact balance accounting
# -----------------------------------------------------------------------------------------------

def test_limit_gtc_rests_locks_then_cancel_unlocks_with_events():
    rig = Rig()
    bid, ask = rig.top()
    usdt0 = rig.bal("USDT")
    price = bid - Decimal("10.00")
    r = order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01000", price=str(price),
              newClientOrderId="myOrder1")
    assert r["status"] == "NEW" and r["fills"] == [] and r["clientOrderId"] == "myOrder1"
    lock = price * Decimal("0.01")
    assert rig.bal("USDT") == (usdt0[0] - lock, usdt0[1] + lock)
    locked_invariant(rig)
    evs = [e for a, e in rig.user]
    assert [e["e"] for e in evs] == ["executionReport", "outboundAccountPosition"]
    er = evs[0]
    for k in ("E", "T", "i", "c", "C", "l", "z", "L", "n", "N", "t", "w", "m", "O", "Z", "Y", "Q", "W", "V", "I"):
        assert k in er
    assert (er["x"], er["X"], er["w"], er["t"], er["c"], er["C"]) == ("NEW", "NEW", True, -1, "myOrder1", "")
    assert [(b["a"], Decimal(b["f"]), Decimal(b["l"])) for b in evs[1]["B"]] == [
        ("USDT", usdt0[0] - lock, usdt0[1] + lock)]
    q = rig.ex.get_order(KEY, P(symbol="BTCUSDT", origClientOrderId="myOrder1"))
    assert q["status"] == "NEW" and q["isWorking"] is True and q["orderId"] == r["orderId"]
    assert rig.ex.open_orders(KEY, P(symbol="BTCUSDT"))[0]["orderId"] == r["orderId"]
    rig.user.clear()
    c = rig.ex.cancel_order(KEY, P(symbol="BTCUSDT", orderId=r["orderId"], newClientOrderId="cxl1"))
    assert c["status"] == "CANCELED" and c["origClientOrderId"] == "myOrder1" and c["clientOrderId"] == "cxl1"
    assert rig.bal("USDT") == usdt0
    evs = [e for a, e in rig.user]
    assert [e["e"] for e in evs] == ["executionReport", "outboundAccountPosition"]
    assert (evs[0]["x"], evs[0]["X"], evs[0]["c"], evs[0]["C"]) == ("CANCELED", "CANCELED", "cxl1", "myOrder1")
    raises(-2011, rig.ex.cancel_order, KEY, P(symbol="BTCUSDT", orderId=r["orderId"]), msg=E.UNKNOWN_ORDER)
    assert rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=r["orderId"]))["status"] == "CANCELED"
    assert rig.stats.orders["NEW"] == 1 and rig.stats.order_events["CANCELED"] == 1


def test_taker_limit_partial_fills_and_exact_balance_deltas():
    rig = Rig()
    depth = rig.ex.depth(P(symbol="BTCUSDT", limit=3))
    lvl = [(Decimal(p), Decimal(q)) for p, q in depth["asks"]]
    qty = lvl[0][1] + lvl[1][1] + lvl[2][1] / 2
    qty = qty.quantize(Decimal("0.00001"))
    base0, quote0 = rig.bal("BTC"), rig.bal("USDT")
    r = order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity=str(qty), price=str(lvl[2][0]))
    assert r["status"] == "FILLED" and len(r["fills"]) >= 3
    fills_qty = sum(Decimal(f["qty"]) for f in r["fills"])
    fills_quote = sum((Decimal(f["price"]) * Decimal(f["qty"])).quantize(Decimal("1e-8"), "ROUND_DOWN")
                      for f in r["fills"])
    fees = sum(Decimal(f["commission"]) for f in r["fills"])
    assert all(f["commissionAsset"] == "BTC" for f in r["fills"])
    assert fills_qty == qty == Decimal(r["executedQty"])
    assert Decimal(r["cummulativeQuoteQty"]) == fills_quote
    assert [Decimal(f["price"]) for f in r["fills"]] == sorted(Decimal(f["price"]) for f in r["fills"])
    base1, quote1 = rig.bal("BTC"), rig.bal("USDT")
    assert sum(base1) - sum(base0) == fills_qty - fees
    assert sum(quote1) - sum(quote0) == -fills_quote
    assert quote1[1] == quote0[1] == 0      # the price-improvement lock was released
    locked_invariant(rig)
    xs = [(e["x"], e["X"]) for e in rig.reports()]
    assert xs[0] == ("NEW", "NEW") and xs[-1] == ("TRADE", "FILLED")
    assert all(x == ("TRADE", "PARTIALLY_FILLED") for x in xs[1:-1])
    last = rig.reports()[-1]
    assert last["z"] == r["executedQty"] and last["Z"] == r["cummulativeQuoteQty"] and last["m"] is False
    assert rig.stats.fills == len(r["fills"])
    mine = rig.ex.my_trades(KEY, P(symbol="BTCUSDT", orderId=r["orderId"]))
    assert [t["id"] for t in mine] == [f["tradeId"] for f in r["fills"]]
    assert all(t["isBuyer"] and not t["isMaker"] for t in mine)


def test_limit_partially_fills_then_rests_and_maker_fill_charges_maker_fee_on_quote():
    rig = Rig(accounts=[AccountSpec(KEY, "s"), AccountSpec("other", "s2", maker_commission="0.00050000",
                                                                  taker_commission="0.00200000")])
    bid, ask = rig.top()
    ask_qty = Decimal(rig.ex.depth(P(symbol="BTCUSDT", limit=1))["asks"][0][1])
    r = order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity=str(ask_qty + Decimal("0.01")),
              price=str(ask))
    assert r["status"] == "PARTIALLY_FILLED" and Decimal(r["executedQty"]) == ask_qty
    assert rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=r["orderId"]))["status"] == "PARTIALLY_FILLED"
    assert Decimal(rig.ex.depth(P(symbol="BTCUSDT", limit=1))["bids"][0][0]) == ask
    # Another account sells into the resting remainder: it pays the taker fee in quote, we the maker fee in base.
    o_usdt0 = sum(rig.bal("USDT", "other"))
    s = order(rig, "other", side="SELL", type="MARKET", quantity="0.01")
    assert s["status"] == "FILLED" and s["fills"][0]["price"] == str(ask)
    fee = Decimal(s["fills"][0]["commission"])
    assert fee == (ask * Decimal("0.01") * Decimal("0.002")).quantize(Decimal("1e-8"))
    assert s["fills"][0]["commissionAsset"] == "USDT"
    assert sum(rig.bal("USDT", "other")) - o_usdt0 == ask * Decimal("0.01") - fee
    mine = rig.reports()[-1]
    assert (mine["x"], mine["X"], mine["m"], mine["N"]) == ("TRADE", "FILLED", True, "BTC")
    assert Decimal(mine["n"]) == Decimal("0.01") * Decimal("0.001")      # our maker rate, in base
    assert rig.ex.open_orders(KEY, P(symbol="BTCUSDT")) == []
    locked_invariant(rig)
    locked_invariant(rig, "other")


def test_ioc_and_fok():
    rig = Rig()
    bid, ask = rig.top()
    ask_qty = Decimal(rig.ex.depth(P(symbol="BTCUSDT", limit=1))["asks"][0][1])
    r = order(rig, side="BUY", type="LIMIT", timeInForce="IOC", quantity=str(ask_qty * 2), price=str(ask))
    assert r["status"] == "EXPIRED" and Decimal(r["executedQty"]) == ask_qty
    assert r["expiryReason"] == "UNFILLED_IOC_QUANTITY_EXPIRED"
    assert [e["x"] for e in rig.reports()] == ["NEW", "TRADE", "EXPIRED"]
    assert rig.reports()[-1]["eR"] == "UNFILLED_IOC_QUANTITY_EXPIRED"
    assert rig.bal("USDT")[1] == 0
    bid, ask = rig.top()
    rig.user.clear()
    top_qty = Decimal(rig.ex.depth(P(symbol="BTCUSDT", limit=1))["asks"][0][1])
    f = order(rig, side="BUY", type="LIMIT", timeInForce="FOK", quantity=str(top_qty + Decimal("0.001")),
              price=str(ask))
    assert f["status"] == "EXPIRED" and f["executedQty"] == "0.00000000" and f["fills"] == []
    assert [e["x"] for e in rig.reports()] == ["NEW", "EXPIRED"]
    ok = order(rig, side="BUY", type="LIMIT", timeInForce="FOK", quantity="0.001", price=str(ask + 100))
    assert ok["status"] == "FILLED"
    assert rig.stats.orders["EXPIRED"] == 2 and rig.stats.orders["FILLED"] == 1
    locked_invariant(rig)


def test_limit_maker():
    rig = Rig()
    bid, ask = rig.top()
    raises(-2010, order, rig, side="BUY", type="LIMIT_MAKER", quantity="0.001", price=str(ask),
           msg=E.WOULD_MATCH)
    raises(-2010, order, rig, side="SELL", type="LIMIT_MAKER", quantity="0.001", price=str(bid),
           msg=E.WOULD_MATCH)
    r = order(rig, side="SELL", type="LIMIT_MAKER", quantity="0.001", price=str(ask + 1))
    assert set(r) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}   # ACK default
    assert len(r["clientOrderId"]) == 22
    assert rig.bal("BTC")[1] == Decimal("0.001")
    full = order(rig, side="SELL", type="LIMIT_MAKER", quantity="0.001", price=str(ask + 2), newOrderRespType="FULL")
    assert full["status"] == "NEW" and full["type"] == "LIMIT_MAKER" and full["orderId"] == r["orderId"] + 1


def test_market_orders_by_quantity_and_quote():
    rig = Rig()
    base0, quote0 = rig.bal("BTC"), rig.bal("USDT")
    r = order(rig, side="BUY", type="MARKET", quoteOrderQty="1000")
    assert r["price"] == "0.00000000" and r["timeInForce"] == "GTC" and r["status"] == "FILLED"
    assert Decimal(r["cummulativeQuoteQty"]) <= 1000 and r["origQuoteOrderQty"] == "1000.00000000"
    assert Decimal(r["origQty"]) == Decimal(r["executedQty"]) > 0
    assert Decimal(r["executedQty"]) % Decimal("0.00001") == 0
    s = order(rig, side="SELL", type="MARKET", quoteOrderQty="500")
    assert Decimal(s["cummulativeQuoteQty"]) <= 500 and s["status"] == "FILLED"
    m = order(rig, side="SELL", type="MARKET", quantity="0.02")
    assert m["executedQty"] == "0.02000000"
    fills = r["fills"] + s["fills"] + m["fills"]
    db = sum(rig.bal("BTC")) - sum(base0)
    dq = sum(rig.bal("USDT")) - sum(quote0)
    want_b = sum(Decimal(f["qty"]) - Decimal(f["commission"]) for f in r["fills"]) \
        - sum(Decimal(f["qty"]) for f in s["fills"] + m["fills"])
    want_q = -Decimal(r["cummulativeQuoteQty"]) + sum(
        (Decimal(f["price"]) * Decimal(f["qty"])).quantize(Decimal("1e-8"), "ROUND_DOWN") - Decimal(f["commission"])
        for f in s["fills"] + m["fills"])
    assert db == want_b and dq == want_q
    assert len(fills) == rig.stats.fills
    locked_invariant(rig)
    # Bigger than the whole book: fills what there is, then expires.
    rig2 = Rig(market={"book_levels": 5})
    x = order(rig2, side="BUY", type="MARKET", quantity="5")
    assert x["status"] == "EXPIRED" and x["expiryReason"] == "INSUFFICIENT_LIQUIDITY"
    assert Decimal(x["executedQty"]) < 5 and rig2.bal("USDT")[1] == 0


def test_parameter_errors():
    rig = Rig()
    bid, ask = rig.top()
    raises(-1102, order, rig, type="LIMIT", timeInForce="GTC", quantity="1", price="1")          # side
    raises(-1117, order, rig, side="HOLD", type="LIMIT", timeInForce="GTC", quantity="1", price="1")
    raises(-1116, order, rig, side="BUY", type="ICEBERG", quantity="1")
    raises(-1115, order, rig, side="BUY", type="LIMIT", timeInForce="GTD", quantity="0.001", price=str(bid))
    raises(-1102, order, rig, side="BUY", type="LIMIT", quantity="0.001", price=str(bid))           # tif
    raises(-1102, order, rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001")       # price
    raises(-1106, order, rig, side="BUY", type="MARKET", timeInForce="GTC", quantity="0.001")
    raises(-1106, order, rig, side="BUY", type="MARKET", quantity="0.001", price=str(bid))
    e = raises(-1102, order, rig, side="BUY", type="MARKET")
    assert e.msg == "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
    raises(-1111, order, rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.000000001", price=str(bid))
    raises(-1100, order, rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="-1", price=str(bid))
    raises(-1121, order, rig, symbol="DOGEUSDT", side="BUY", type="MARKET", quantity="1")
    raises(-1100, order, rig, side="BUY", type="MARKET", quantity="0.001", newClientOrderId="bad id!")
    raises(-1013, order, rig, side="BUY", type="STOP_LOSS", quantity="0.001", trailingDelta="100")
    assert rig.user == [] and rig.stats.orders == {}


def test_every_filter_failure():
    cfg_symbols = [dataclasses.replace(s) for s in SimConfig().symbols]
    cfg_symbols[0].max_num_orders = 2
    rig = Rig(symbols=cfg_symbols)
    bid, ask = rig.top()

    def fails(code, name, **kw):
        e = raises(code, order, rig, **kw)
        assert e.msg == f"Filter failure: {name}", e.msg

    fails(-1013, "PRICE_FILTER", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
          price=str(bid - Decimal("0.005")))
    fails(-1013, "PRICE_FILTER", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price="0.001")
    fails(-1013, "LOT_SIZE", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.000015", price=str(bid))
    fails(-1013, "LOT_SIZE", side="BUY", type="LIMIT", timeInForce="GTC", quantity="10000", price=str(bid))
    fails(-1013, "MARKET_LOT_SIZE", side="BUY", type="MARKET", quantity="101")
    fails(-1013, "NOTIONAL", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.00001", price=str(bid))
    fails(-1013, "NOTIONAL", side="BUY", type="MARKET", quoteOrderQty="1")
    fails(-1013, "PERCENT_PRICE_BY_SIDE", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.001",
          price=str((ask * 6).quantize(Decimal("0.01"))))
    fails(-1013, "PERCENT_PRICE_BY_SIDE", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
          price=str((bid / 6).quantize(Decimal("0.01"))))
    fails(-1013, "ICEBERG_PARTS", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.5", icebergQty="0.001",
          price=str(bid - 100))
    raises(-2010, order, rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.5", icebergQty="0.6",
           price=str(bid - 100), msg="IcebergQty exceeds QTY.")
    for i in range(2):
        order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(bid - 100 - i))
    fails(-2010, "MAX_NUM_ORDERS", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
          price=str(bid - 200))


def test_engine_rejections():
    syms = [dataclasses.replace(s) for s in SimConfig().symbols]
    syms[1].status = "BREAK"
    rig = Rig(symbols=syms, accounts=[AccountSpec(KEY, "s", balances={"USDT": "100.00000000"}),
                                      AccountSpec("ro", "s", can_trade=False)])
    bid, ask = rig.top()
    raises(-2010, order, rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price=str(bid),
           msg=E.INSUFFICIENT_BALANCE)
    raises(-2010, order, rig, side="SELL", type="MARKET", quantity="0.01", msg=E.INSUFFICIENT_BALANCE)
    raises(-2010, order, rig, symbol="ETHUSDT", side="BUY", type="MARKET", quantity="1", msg=E.MARKET_CLOSED)
    raises(-2010, order, rig, "ro", side="BUY", type="MARKET", quantity="0.001",
           msg="This account may not place or cancel orders.")
    order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.0001", price=str(bid - 1000),
          newClientOrderId="dup")
    raises(-2010, order, rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.0001",
           price=str(bid - 1000), newClientOrderId="dup", msg=E.DUPLICATE_ORDER)
    rig.ex.cancel_order(KEY, P(symbol="BTCUSDT", origClientOrderId="dup"))
    again = order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.0001", price=str(bid - 1000),
                  newClientOrderId="dup")              # reuse allowed once closed
    assert again["status"] == "NEW"
    assert rig.stats.orders == {"NEW": 2}


def test_query_and_cancel_errors():
    rig = Rig()
    e = raises(-1102, rig.ex.get_order, KEY, P(symbol="BTCUSDT"))
    assert e.msg == "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
    raises(-2013, rig.ex.get_order, KEY, P(symbol="BTCUSDT", orderId=999))
    raises(-2013, rig.ex.get_order, KEY, P(symbol="BTCUSDT", origClientOrderId="nope"))
    raises(-2011, rig.ex.cancel_order, KEY, P(symbol="BTCUSDT", orderId=999), msg=E.UNKNOWN_ORDER)
    raises(-2011, rig.ex.cancel_open_orders, KEY, P(symbol="BTCUSDT"))
    raises(-1102, rig.ex.cancel_open_orders, KEY, P())
    bid, _ = rig.top()
    r = order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(bid - 50),
              newClientOrderId="abc")
    raises(-2039, rig.ex.cancel_order, KEY, P(symbol="BTCUSDT", orderId=r["orderId"], origClientOrderId="xyz"))
    raises(-2011, rig.ex.cancel_order, KEY, P(symbol="BTCUSDT", orderId=r["orderId"],
                                              cancelRestrictions="ONLY_PARTIALLY_FILLED"))
    order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(bid - 60))
    out = rig.ex.cancel_open_orders(KEY, P(symbol="BTCUSDT"))
    assert [o["status"] for o in out] == ["CANCELED", "CANCELED"]
    assert rig.bal("USDT")[1] == 0
    everything = rig.ex.all_orders(KEY, P(symbol="BTCUSDT"))
    assert [o["orderId"] for o in everything] == [r["orderId"], r["orderId"] + 1]
    assert rig.ex.all_orders(KEY, P(symbol="BTCUSDT", orderId=r["orderId"] + 1))[0]["orderId"] == r["orderId"] + 1
    raises(-1127, rig.ex.all_orders, KEY, P(symbol="BTCUSDT", startTime=START, endTime=START + DAY_MS + 1))
    raises(-1127, rig.ex.my_trades, KEY, P(symbol="BTCUSDT", startTime=START, endTime=START + DAY_MS + 1))
    raises(-1128, rig.ex.my_trades, KEY, P(symbol="BTCUSDT", fromId=1, startTime=START))
    assert rig.ex.my_trades(KEY, P(symbol="BTCUSDT", startTime=START, endTime=START + 1000)) == []


def test_test_order_validates_without_touching_the_book():
    rig = Rig()
    before = rig.ex.depth(P(symbol="BTCUSDT"))
    assert rig.ex.test_order(KEY, P(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")) == {}
    rates = rig.ex.test_order(KEY, P(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
                                     computeCommissionRates="true"))
    assert rates["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}
    assert set(rates) == {"standardCommissionForOrder", "specialCommissionForOrder", "taxCommissionForOrder",
                          "discount"}
    raises(-1013, rig.ex.test_order, KEY, P(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.000001"))
    assert rig.ex.depth(P(symbol="BTCUSDT")) is before and rig.user == [] and rig.stats.orders == {}


# -----------------------------------------------------------------------------------------------
# Events, synthetic flow, deposits, stops
# -----------------------------------------------------------------------------------------------

def test_book_change_ids_are_contiguous_and_match_depth():
    rig = Rig()
    bid, ask = rig.top()
    order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002", price=str(bid + 1))
    order(rig, side="SELL", type="MARKET", quantity="0.05")
    for _ in range(30):
        rig.tick()
    btc = [b for b in rig.books if b.symbol == "BTCUSDT"]
    assert len(btc) > 10
    for prev, nxt in zip(btc, btc[1:]):
        assert nxt.first_update_id == prev.last_update_id + 1
        assert nxt.last_update_id >= nxt.first_update_id
    assert btc[-1].last_update_id == rig.ex.depth(P(symbol="BTCUSDT"))["lastUpdateId"]
    # Replaying the changes onto the first snapshot reproduces the current book.
    rig2 = Rig()
    book = {"b": {}, "a": {}}
    snap = rig2.ex.depth(P(symbol="BTCUSDT", limit=5000))
    for p_, q in snap["bids"]:
        book["b"][p_] = q
    for p_, q in snap["asks"]:
        book["a"][p_] = q
    seen = []
    rig2.events.on_book(lambda bc: seen.append(bc) if bc.symbol == "BTCUSDT" else None)
    for _ in range(20):
        rig2.tick()
    for bc in seen:
        for side, rows in (("b", bc.bids), ("a", bc.asks)):
            for p_, q in rows:
                if Decimal(q) == 0:
                    book[side].pop(p_, None)
                else:
                    book[side][p_] = q
    now = rig2.ex.depth(P(symbol="BTCUSDT", limit=5000))
    assert dict(map(tuple, now["bids"])) == book["b"] and dict(map(tuple, now["asks"])) == book["a"]


def test_synthetic_flow_fills_a_resting_order():
    rig = Rig(market={"trades_per_second": 20.0})
    bid, ask = rig.top()
    price = bid + Decimal("0.01")                 # best bid, inside the spread
    usdt0, btc0 = sum(rig.bal("USDT")), sum(rig.bal("BTC"))
    r = order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(price))
    assert r["status"] == "NEW"
    for _ in range(600):
        rig.tick()
        if rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=r["orderId"]))["status"] == "FILLED":
            break
    q = rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=r["orderId"]))
    assert q["status"] == "FILLED"
    trades = [e for e in rig.reports() if e["x"] == "TRADE"]
    assert trades and all(e["m"] is True and e["L"] == str(price) for e in trades)
    assert trades[-1]["X"] == "FILLED"
    assert rig.stats.synthetic_trades > 0 and rig.stats.fills == len(trades)
    fees = sum(Decimal(e["n"]) for e in trades)
    assert sum(rig.bal("BTC")) - btc0 == Decimal("0.001") - fees
    assert sum(rig.bal("USDT")) - usdt0 == -(price * Decimal("0.001"))
    locked_invariant(rig)
    kinds = [e["e"] for _, e in rig.user]
    assert kinds[-1] == "outboundAccountPosition" and kinds[-2] == "executionReport"


def test_price_move_crosses_resting_orders():
    rig = Rig(market={"trades_per_second": 0.0})
    bid, ask = rig.top()
    # Place both orders where the seeded path will go within the next day (and not beyond).
    path = rig.ex._syms["BTCUSDT"].path
    ahead = [Decimal(v) / 10**8 for v in path.prices8([START + k * 60_000 for k in range(1, 24 * 60)])]
    lo, hi = min(ahead), max(ahead)
    assert lo < bid - 20 or hi > ask + 20
    below = ((lo + bid) / 2).quantize(Decimal("0.01"))
    above = ((hi + ask) / 2).quantize(Decimal("0.01"))
    ids = []
    if lo < bid - 20:
        ids.append(order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(below))["orderId"])
    if hi > ask + 20:
        ids.append(order(rig, side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.001", price=str(above))["orderId"])
    done = set()
    for _ in range(24 * 60):
        rig.tick(60_000)
        for oid in ids:
            if rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=oid))["status"] == "FILLED":
                done.add(oid)
        if len(done) == len(ids):
            break
    assert done == set(ids)
    assert rig.stats.synthetic_trades == 0 and rig.stats.fills == len(ids)
    assert all(e["m"] is True for e in rig.reports() if e["x"] == "TRADE")
    bid2, ask2 = rig.top()
    assert bid2 < ask2
    locked_invariant(rig)


def test_determinism_of_the_engine_with_the_same_seed():
    def run():
        rig = Rig(seed=11)
        bid, _ = rig.top()
        order(rig, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.003", price=str(bid))
        for _ in range(50):
            rig.tick()
        return ([(t.trade_id, t.price, t.qty) for t in rig.trades], rig.ex.depth(P(symbol="BTCUSDT")),
                [e for _, e in rig.user])
    assert run() == run()


def test_deposit_emits_balance_update_then_position():
    rig = Rig()
    free0 = rig.bal("USDT")[0]
    rig.ex.deposit(KEY, "USDT", Decimal("12.5"))
    assert rig.bal("USDT")[0] == free0 + Decimal("12.5")
    kinds = [e["e"] for _, e in rig.user]
    assert kinds == ["balanceUpdate", "outboundAccountPosition"]
    assert rig.user[0][1]["d"] == "12.50000000" and rig.user[0][1]["a"] == "USDT"
    rig.ex.deposit(KEY, "DOGE", Decimal("3"))
    assert rig.bal("DOGE") == (Decimal(3), Decimal(0))
    raises(-2015, rig.ex.deposit, "nobody", "USDT", Decimal(1))


def test_stop_loss_limit_triggers_on_last_price():
    rig = Rig(market={"trades_per_second": 0.0})
    bid, ask = rig.top()
    raises(-2010, order, rig, side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.001",
           price=str(bid - 100), stopPrice=str(ask + 100), msg=E.WOULD_TRIGGER)
    stop = order(rig, side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.001",
                 price=str(bid - 200), stopPrice=str(bid - 5))
    q = rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=stop["orderId"]))
    assert q["status"] == "NEW" and q["isWorking"] is False and q["stopPrice"] == str(bid - 5)
    assert rig.bal("BTC")[1] == Decimal("0.001")
    # Sell enough to push the last price below the stop.
    order(rig, side="SELL", type="MARKET", quantity="0.2")
    q = rig.ex.get_order(KEY, P(symbol="BTCUSDT", orderId=stop["orderId"]))
    assert q["status"] == "FILLED" and q["isWorking"] is True
    locked_invariant(rig)
