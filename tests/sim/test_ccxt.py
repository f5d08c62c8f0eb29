"""Acceptance: ccxt's unmodified ``binance`` class against the simulator over real sockets."""
from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from letrade_perf.binance.ccxt_compat import ccxt_binance
from simproc import start_sim

SYM = "BTC/USDT"


@pytest.fixture(scope="module")
def sim():
    """A private simulator: balance assertions must not see other modules' orders."""
    p = start_sim()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def ex(sim):
    e = ccxt_binance(sim.base_url, sim.api_key, sim.secret)
    e.load_markets()
    return e


def _balances(ex) -> dict:
    b = ex.fetch_balance()
    return {a: (Decimal(str(b[a]["free"])), Decimal(str(b[a]["used"]))) for a in ("BTC", "USDT")}


def test_load_markets_uses_the_simulators_symbols(ex):
    assert {"BTC/USDT", "ETH/USDT", "ETH/BTC"} <= set(ex.markets)
    m = ex.market(SYM)
    assert m["spot"] and m["active"]
    assert m["precision"]["price"] == 0.01 and m["precision"]["amount"] == 0.00001
    assert m["limits"]["amount"]["min"] == 0.00001
    assert m["limits"]["cost"]["min"] == 5.0


def test_fetch_time_is_close_to_local(ex):
    t = ex.fetch_time()
    assert abs(t - ex.milliseconds()) < 2000


def test_fetch_order_book(ex):
    ob = ex.fetch_order_book(SYM, 5)
    assert len(ob["bids"]) == 5 and len(ob["asks"]) == 5
    assert ob["bids"][0][0] < ob["asks"][0][0]
    assert [b[0] for b in ob["bids"]] == sorted((b[0] for b in ob["bids"]), reverse=True)
    assert [a[0] for a in ob["asks"]] == sorted(a[0] for a in ob["asks"])
    assert ob["nonce"] > 0


@pytest.mark.parametrize("tf,step_ms", [("1m", 60_000), ("5m", 300_000), ("1h", 3_600_000)])
def test_fetch_ohlcv_pages_over_1000_candles(ex, tf, step_ms):
    want = 1500
    since = (ex.milliseconds() // step_ms - want) * step_ms
    rows = []
    pages = 0
    while len(rows) < want and pages < 5:
        page = ex.fetch_ohlcv(SYM, tf, since=since, limit=1000)
        pages += 1
        assert page, "empty page"
        rows += page
        since = page[-1][0] + step_ms
    assert pages == 2 and len(rows) >= want
    times = [r[0] for r in rows]
    assert times == sorted(set(times)), "duplicates or disorder"
    assert all(b - a == step_ms for a, b in zip(times, times[1:])), "gaps"
    for prev, cur in zip(rows, rows[1:]):
        assert cur[1] == prev[4], "open != previous close"
    for _, o, h, low, c, v in rows:
        assert low <= min(o, c) <= max(o, c) <= h and v > 0


def test_fetch_ticker_and_tickers(ex):
    t = ex.fetch_ticker(SYM)
    assert t["symbol"] == SYM and t["bid"] < t["ask"] and t["last"] > 0
    assert t["high"] >= t["low"] > 0
    ts = ex.fetch_tickers([SYM, "ETH/USDT"])
    assert set(ts) == {SYM, "ETH/USDT"}


def test_limit_order_rests_lists_and_cancels(ex):
    before = _balances(ex)
    price = float(ex.price_to_precision(SYM, ex.fetch_ticker(SYM)["bid"] * 0.9))
    order = ex.create_order(SYM, "limit", "buy", 0.001, price)
    assert order["status"] == "open" and order["filled"] == 0
    open_ids = [o["id"] for o in ex.fetch_open_orders(SYM)]
    assert order["id"] in open_ids
    locked = _balances(ex)
    assert locked["USDT"][1] - before["USDT"][1] == Decimal(str(price)) * Decimal("0.001")
    cancelled = ex.cancel_order(order["id"], SYM)
    assert cancelled["status"] == "canceled"
    assert order["id"] not in [o["id"] for o in ex.fetch_open_orders(SYM)]
    assert _balances(ex) == before


def test_market_buy_and_sell_move_balances_by_fills_and_fees(ex):
    for side in ("buy", "sell"):
        before = _balances(ex)
        order = ex.create_order(SYM, "market", side, 0.002)
        assert order["status"] == "closed" and order["filled"] == 0.002
        fills = order["info"]["fills"]
        assert fills, "FULL response carries fills"
        qty = sum(Decimal(f["qty"]) for f in fills)
        quote = sum(Decimal(f["qty"]) * Decimal(f["price"]) for f in fills)
        fee = sum(Decimal(f["commission"]) for f in fills)
        after = _balances(ex)
        d_btc = after["BTC"][0] - before["BTC"][0]
        d_usdt = after["USDT"][0] - before["USDT"][0]
        if side == "buy":
            assert {f["commissionAsset"] for f in fills} == {"BTC"}
            assert d_btc == qty - fee and d_usdt == -quote
        else:
            assert {f["commissionAsset"] for f in fills} == {"USDT"}
            assert d_btc == -qty and d_usdt == quote - fee
        assert qty == Decimal("0.002")


def test_fetch_my_trades_lists_the_fills(ex):
    order = ex.create_order(SYM, "market", "buy", 0.001)
    trades = ex.fetch_my_trades(SYM)
    mine = [t for t in trades if t["order"] == order["id"]]
    assert mine and sum(t["amount"] for t in mine) == pytest.approx(0.001)
    assert all(t["side"] == "buy" and t["fee"]["currency"] == "BTC" for t in mine)


def test_insufficient_funds(ex):
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYM, "market", "buy", 90)   # ~6M USDT, the account has 100k


def test_invalid_order_price_filter(ex):
    with pytest.raises(ccxt.InvalidOrder):
        ex.create_order(SYM, "limit", "buy", 0.001, 2_000_000)   # above PRICE_FILTER maxPrice


def test_authentication_error(sim):
    bad = ccxt_binance(sim.base_url, sim.api_key, "wrong-secret")
    with pytest.raises(ccxt.AuthenticationError):
        bad.fetch_balance()
    unknown = ccxt_binance(sim.base_url, "unknownKey" + "0" * 54, sim.secret)
    with pytest.raises(ccxt.AuthenticationError):
        unknown.fetch_balance()


def test_invalid_nonce(sim):
    skewed = ccxt_binance(sim.base_url, sim.api_key, sim.secret)
    skewed.options["timeDifference"] = 120_000    # our timestamps 2 minutes behind: outside recvWindow
    with pytest.raises(ccxt.InvalidNonce):
        skewed.fetch_balance()


def test_order_not_found(ex):
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order("987654321", SYM)
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order("987654321", SYM)


def test_rate_limit_exceeded(sim_factory):
    small = sim_factory({"limits": {"request_weight_per_minute": 30, "violations_before_ban": 100}})
    e = ccxt_binance(small.base_url, small.api_key, small.secret)
    with pytest.raises(ccxt.DDoSProtection):   # RateLimitExceeded is a DDoSProtection
        for _ in range(20):
            e.fetch_order_book(SYM, 5)         # weight 5 each
