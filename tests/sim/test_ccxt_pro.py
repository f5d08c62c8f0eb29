"""Acceptance: ccxt.pro's unmodified ``binance`` class against a simulator process.

The REST URLs are set as :mod:`letrade_perf.binance.ccxt_compat` does; the websocket URLs
(``urls['api']['ws']['spot']`` for market streams, ``urls['api']['ws']['ws-api']['spot']`` for
the WebSocket API) point at the simulator. ccxt.pro opens ``/ws/<n>`` (``/ws/0``, ``/ws/1``…)
and sends ``SUBSCRIBE`` on it; private data comes over the WS API
(``userDataStream.subscribe.signature``, ``account.status``, ``order.place``, ``order.cancel``,
``allOrders``, ``myTrades``, ``order.cancelReplace``), signed over every parameter including
``returnRateLimits``; public history too (``klines``, ``trades.historical``).

Every flow is bounded with ``asyncio.wait_for`` and the exchange is closed at the end.
"""
from __future__ import annotations

import asyncio
import copy
import json
import time
from decimal import Decimal

import ccxt.pro
import pytest
import websocket

from letrade_perf.binance.ccxt_compat import ccxt_config
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET
from simproc import start_sim

SYM = "BTC/USDT"
STEP_S = 5.0     # bound of one awaited ccxt call


@pytest.fixture(scope="module")
def sim():
    """A private simulator: balance and order assertions must not see other modules' orders."""
    p = start_sim()
    yield p
    p.stop()


def pro_config(sim) -> dict:
    cfg = ccxt_config(sim.base_url, DEMO_API_KEY, DEMO_SECRET)
    cfg["urls"]["api"]["ws"] = {"spot": sim.ws_url + "/ws", "margin": sim.ws_url + "/ws",
                                "ws-api": {"spot": sim.ws_api_url}}
    return cfg


def run(sim, flow, total_s: float = 20.0):
    """Run ``await flow(exchange)`` with a fresh ccxt.pro binance; always close it."""
    async def main():
        ex = ccxt.pro.binance(pro_config(sim))
        try:
            await asyncio.wait_for(ex.load_markets(), STEP_S)
            return await asyncio.wait_for(flow(ex), total_s)
        finally:
            await asyncio.wait_for(ex.close(), STEP_S)
    return asyncio.run(main())


async def step(coro, seconds: float = STEP_S):
    return await asyncio.wait_for(coro, seconds)


async def passive_buy_price(ex) -> float:
    """A price 3% under the last trade: rests on the book, inside PERCENT_PRICE_BY_SIDE."""
    t = await step(ex.fetch_ticker(SYM))
    return float(ex.price_to_precision(SYM, t["last"] * 0.97))


def stream_urls(ex, sim) -> list[str]:
    return [u for u in ex.clients if u.startswith(sim.ws_url + "/ws/")]


# -- market streams ------------------------------------------------------------------------------

def test_watch_order_book(sim):
    async def flow(ex):
        first = (await step(ex.watch_order_book(SYM)))["nonce"]
        for _ in range(50):   # later diff-depth updates are applied on top (ccxt checks U/u contiguity)
            ob = copy.deepcopy(await step(ex.watch_order_book(SYM)))
            if ob["nonce"] > first:
                break
        return first, ob, stream_urls(ex, sim)

    nonce1, ob, urls = run(sim, flow)
    assert urls, "ccxt.pro should connect to /ws/<n>"
    assert ob["symbol"] == SYM
    assert ob["bids"] and ob["asks"]
    assert ob["bids"][0][0] < ob["asks"][0][0]
    assert [b[0] for b in ob["bids"]] == sorted((b[0] for b in ob["bids"]), reverse=True)
    assert [a[0] for a in ob["asks"]] == sorted(a[0] for a in ob["asks"])
    assert all(q > 0 for _, q in ob["bids"] + ob["asks"])
    assert ob["nonce"] > nonce1


def test_watch_trades(sim):
    async def flow(ex):
        return await step(ex.watch_trades(SYM)), stream_urls(ex, sim)

    trades, urls = run(sim, flow)
    assert urls
    assert trades
    for t in trades:
        assert t["symbol"] == SYM and t["price"] > 0 and t["amount"] > 0
        assert t["side"] in ("buy", "sell") and t["id"] and isinstance(t["timestamp"], int)
        assert t["info"]["e"] == "trade"


def test_watch_ticker(sim):
    async def flow(ex):
        return await step(ex.watch_ticker(SYM))

    t = run(sim, flow)
    assert t["symbol"] == SYM
    assert t["last"] > 0 and t["high"] >= t["low"] > 0 and t["baseVolume"] >= 0
    assert isinstance(t["timestamp"], int)
    assert t["info"]["e"] in ("24hrMiniTicker", "24hrTicker")   # ccxt.pro subscribes @miniTicker


def test_watch_ohlcv(sim):
    async def flow(ex):
        return await step(ex.watch_ohlcv(SYM, "1m"))

    candles = run(sim, flow)
    assert candles
    ts, o, h, low, c, v = candles[-1]
    assert ts % 60_000 == 0 and abs(ts - time.time() * 1000) < 120_000
    assert h >= max(o, c) and low <= min(o, c) and low > 0 and v >= 0


# -- WebSocket API ---------------------------------------------------------------------------------

def test_fetch_balance_ws_matches_rest(sim):
    async def flow(ex):
        ws_bal = await step(ex.fetch_balance_ws())
        rest_bal = await step(ex.fetch_balance())
        return ws_bal, rest_bal

    ws_bal, rest_bal = run(sim, flow)
    # ccxt.pro sends account.status signed over returnRateLimits=false too; the simulator verifies
    # the signature over all params and honours the flag. ``info`` is the raw ``result``.
    ws_assets = {b["asset"]: b for b in ws_bal["info"]["balances"]}
    rest_assets = {b["asset"]: b for b in rest_bal["info"]["balances"]}
    assert ws_assets == rest_assets
    assert Decimal(ws_assets["USDT"]["free"]) > 0 and Decimal(ws_assets["BTC"]["free"]) > 0
    assert ws_bal["info"]["accountType"] == "SPOT"


@pytest.mark.xfail(strict=True, reason=(
    "ccxt 4.5.90 bug, not the simulator: binance.handle_account_status_ws() calls "
    "parseBalanceCustom(result) without type='spot', so the spot account.status result "
    "(balances[]) falls through to the futures branch (reads result['assets']) and the parsed "
    "balance is empty; the same happens against api.binance.com"))
def test_fetch_balance_ws_parsed_balance(sim):
    async def flow(ex):
        return await step(ex.fetch_balance_ws())

    ws_bal = run(sim, flow)
    assert ws_bal["USDT"]["total"] > 0


def test_create_order_ws_and_cancel_order_ws(sim):
    async def flow(ex):
        price = await passive_buy_price(ex)
        placed = await step(ex.create_order_ws(SYM, "limit", "buy", 0.001, price))
        queried = await step(ex.fetch_order(placed["id"], SYM))
        cancelled = await step(ex.cancel_order_ws(placed["id"], SYM))
        after = await step(ex.fetch_order(placed["id"], SYM))
        return price, placed, queried, cancelled, after

    price, placed, queried, cancelled, after = run(sim, flow)
    assert placed["id"] and placed["status"] == "open" and placed["symbol"] == SYM
    assert placed["price"] == price and placed["amount"] == 0.001 and placed["side"] == "buy"
    assert placed["clientOrderId"].startswith("x-TKT5PX2F")
    assert queried["status"] == "open"
    assert cancelled["id"] == placed["id"] and cancelled["status"] == "canceled"
    assert after["status"] == "canceled"


def test_create_order_ws_market_fills(sim):
    async def flow(ex):
        return await step(ex.create_order_ws(SYM, "market", "buy", 0.001))

    o = run(sim, flow)
    assert o["status"] == "closed" and o["filled"] == 0.001 and o["average"] > 0
    assert o["trades"] and sum(Decimal(str(t["amount"])) for t in o["trades"]) == Decimal("0.001")


def test_watch_balance_and_watch_orders(sim):
    async def flow(ex):
        price = await passive_buy_price(ex)
        # what watch_balance / watch_orders do first (userDataStream.subscribe.signature on the
        # WS API); awaited here so the order below cannot race the subscription
        await step(ex.authenticate())
        bal_task = asyncio.ensure_future(ex.watch_balance())
        ord_task = asyncio.ensure_future(ex.watch_orders(SYM))
        await asyncio.sleep(0.2)   # both register their futures (no I/O left to do)
        assert not bal_task.done() and not ord_task.done()
        placed = await step(ex.create_order_ws(SYM, "limit", "buy", 0.001, price))
        # ccxt.pro keeps mutating the returned cache objects: copy what each await returned
        balance = copy.deepcopy(await step(bal_task))
        orders = copy.deepcopy(await step(ord_task))
        cancel_seen = asyncio.ensure_future(ex.watch_orders(SYM))
        await step(ex.cancel_order_ws(placed["id"], SYM))
        orders_after = copy.deepcopy(await step(cancel_seen))
        return price, placed, balance, orders, orders_after

    price, placed, balance, orders, orders_after = run(sim, flow)
    # the order locks price x qty of USDT
    assert balance["USDT"]["used"] >= price * 0.001 * 0.999
    assert balance["info"]["e"] == "outboundAccountPosition"
    mine = [o for o in orders if o["id"] == placed["id"]]
    assert mine and mine[-1]["status"] == "open" and mine[-1]["price"] == price
    assert mine[-1]["info"]["e"] == "executionReport" and mine[-1]["info"]["x"] == "NEW"
    done = [o for o in orders_after if o["id"] == placed["id"]]
    assert done and done[-1]["status"] == "canceled"


def test_ccxt_pro_sign_params_is_accepted_verbatim(sim):
    """The exact params ccxt.pro's ``sign_params`` builds (keysorted, ``apiKey``, ``recvWindow``
    10000, ``returnRateLimits`` false, HMAC over all of them) authenticate on the WS API."""
    ex = ccxt.pro.binance(pro_config(sim))
    params = ex.sign_params({"returnRateLimits": False})
    assert params["returnRateLimits"] is False and "signature" in params
    ws = websocket.create_connection(sim.ws_api_url, timeout=5)
    try:
        ws.send(json.dumps({"id": "c1", "method": "account.status", "params": params}))
        r = json.loads(ws.recv())
        assert r["id"] == "c1" and r["status"] == 200, r
        assert "rateLimits" not in r
        tampered = dict(params, returnRateLimits=True)
        ws.send(json.dumps({"id": "c2", "method": "account.status", "params": tampered}))
        r = json.loads(ws.recv())
        assert r["status"] == 400 and r["error"]["code"] == -1022
    finally:
        ws.close()
        asyncio.run(ex.close())


# -- WebSocket API: history and cancel-replace -------------------------------------------------------

def test_fetch_ohlcv_ws_matches_rest(sim):
    async def flow(ex):
        now = int(time.time() * 1000)
        until = now - now % 60_000 - 1           # closed candles only: both answers must be equal
        ws = await step(ex.fetch_ohlcv_ws(SYM, "1m", limit=5, params={"until": until}))
        rest = await step(ex.fetch_ohlcv(SYM, "1m", limit=5, params={"until": until}))
        return until, ws, rest

    until, ws, rest = run(sim, flow)
    assert len(ws) == 5
    assert ws == rest
    assert [c[0] for c in ws] == [until + 1 - 60_000 * k for k in range(5, 0, -1)]
    for _ts, o, h, low, c, v in ws:
        assert h >= max(o, c) and low <= min(o, c) and low > 0 and v >= 0


def test_fetch_trades_ws(sim):
    async def flow(ex):
        return await step(ex.fetch_trades_ws(SYM, limit=20))

    ws = run(sim, flow)
    assert len(ws) == 20
    ids = [int(t["id"]) for t in ws]
    assert ids == list(range(ids[0], ids[0] + 20))           # the newest 20, consecutive, oldest first
    for t in ws:
        assert t["price"] > 0 and t["amount"] > 0 and t["side"] in ("buy", "sell")
        assert isinstance(t["timestamp"], int) and t["info"]["isBestMatch"] is True
        assert t["side"] == ("sell" if t["info"]["isBuyerMaker"] else "buy")
    # REST historicalTrades from the same first id holds the same trades, field for field
    rest = sim.get("/api/v3/historicalTrades", {"symbol": "BTCUSDT", "fromId": ids[0], "limit": 20})
    assert rest.status == 200 and rest.json() == [t["info"] for t in ws]


def test_fetch_orders_ws_and_fetch_closed_orders_ws(sim):
    async def flow(ex):
        price = await passive_buy_price(ex)
        resting = await step(ex.create_order_ws(SYM, "limit", "buy", 0.001, price))
        filled = await step(ex.create_order_ws(SYM, "market", "buy", 0.001))
        orders = await step(ex.fetch_orders_ws(SYM))
        closed = await step(ex.fetch_closed_orders_ws(SYM))
        await step(ex.cancel_order_ws(resting["id"], SYM))
        after = await step(ex.fetch_orders_ws(SYM))
        return price, resting, filled, orders, closed, after

    price, resting, filled, orders, closed, after = run(sim, flow)
    by_id = {o["id"]: o for o in orders}
    assert by_id[resting["id"]]["status"] == "open" and by_id[resting["id"]]["price"] == price
    assert by_id[resting["id"]]["amount"] == 0.001 and by_id[resting["id"]]["symbol"] == SYM
    assert by_id[filled["id"]]["status"] == "closed" and by_id[filled["id"]]["filled"] == 0.001
    assert by_id[filled["id"]]["clientOrderId"] == filled["clientOrderId"]
    closed_ids = [o["id"] for o in closed]
    assert filled["id"] in closed_ids and resting["id"] not in closed_ids
    assert all(o["status"] == "closed" for o in closed)
    assert {o["id"]: o["status"] for o in after}[resting["id"]] == "canceled"


def test_fetch_my_trades_ws_after_a_fill(sim):
    async def flow(ex):
        order = await step(ex.create_order_ws(SYM, "market", "buy", 0.002))
        mine = await step(ex.fetch_my_trades_ws(SYM, params={"orderId": order["id"]}))
        recent = await step(ex.fetch_my_trades_ws(SYM, limit=5))
        rest = await step(ex.fetch_my_trades(SYM, params={"orderId": order["id"]}))
        return order, mine, recent, rest

    order, mine, recent, rest = run(sim, flow)
    assert order["status"] == "closed" and order["trades"]
    assert mine and {t["order"] for t in mine} == {order["id"]}
    assert sorted(t["id"] for t in mine) == sorted(t["id"] for t in order["trades"])
    assert sum(Decimal(str(t["amount"])) for t in mine) == Decimal("0.002")
    assert all(t["symbol"] == SYM and t["side"] == "buy" and t["takerOrMaker"] == "taker" for t in mine)
    assert [t["id"] for t in mine] == [t["id"] for t in rest]
    assert recent[-1]["id"] == mine[-1]["id"]


def test_edit_order_ws(sim):
    async def flow(ex):
        price = await passive_buy_price(ex)
        placed = await step(ex.create_order_ws(SYM, "limit", "buy", 0.001, price))
        new_price = float(ex.price_to_precision(SYM, price * 0.99))
        edited = await step(ex.edit_order_ws(placed["id"], SYM, "limit", "buy", 0.002, new_price))
        old_after = await step(ex.fetch_order(placed["id"], SYM))
        new_open = await step(ex.fetch_order(edited["id"], SYM))
        cancelled = await step(ex.cancel_order_ws(edited["id"], SYM))
        return price, new_price, placed, edited, old_after, new_open, cancelled

    price, new_price, placed, edited, old_after, new_open, cancelled = run(sim, flow)
    assert placed["status"] == "open" and placed["price"] == price
    assert edited["id"] != placed["id"] and int(edited["id"]) > int(placed["id"])
    assert edited["status"] == "open" and edited["price"] == new_price and edited["amount"] == 0.002
    assert edited["side"] == "buy" and edited["symbol"] == SYM
    assert old_after["status"] == "canceled"
    assert new_open["status"] == "open" and new_open["price"] == new_price
    assert cancelled["id"] == edited["id"] and cancelled["status"] == "canceled"
