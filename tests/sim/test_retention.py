"""Retention bounds of the simulator's growing state (24 h soak): each holds, and the APIs still answer.

Asserted through counts on a manual clock; the limits are the module constants of
``letrade_perf.sim.engine`` / ``KlineHistory`` class attributes, shrunk here with monkeypatch so
the tests run in well under a second each.
"""
from __future__ import annotations

import dataclasses

import pytest

from letrade_perf.binance.errors import BinanceError
from letrade_perf.binance.intervals import DAY_MS, MINUTE_MS
from letrade_perf.sim import engine as E
from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import DEFAULT_SYMBOLS, DEMO_API_KEY, SimConfig
from letrade_perf.sim.engine import Exchange
from letrade_perf.sim.events import EventHub
from letrade_perf.sim.market import KlineHistory
from letrade_perf.sim.params import Params
from letrade_perf.sim.stats import SimStats

KEY = DEMO_API_KEY
START = 1_700_000_000_000
SYM = "BTCUSDT"


def P(**kw) -> Params:
    return Params({k: str(v) for k, v in kw.items()})


class Rig:
    def __init__(self, trades_per_second: float = 0.0):
        self.cfg = SimConfig(symbols=[dataclasses.replace(DEFAULT_SYMBOLS[0])])
        self.cfg.market.trades_per_second = trades_per_second
        self.clock = ManualClock(START)
        self.events = EventHub()
        self.printed = []
        self.events.on_trade(self.printed.append)
        self.ex = Exchange(self.cfg, self.clock, self.events, SimStats())
        self.st = self.ex._syms[SYM]

    def tick(self, ms: int = 100, n: int = 1) -> None:
        for _ in range(n):
            self.clock.advance(ms)
            self.ex.tick(self.clock.now_ms())

    def run_until_trades(self, n: int) -> None:
        for _ in range(100_000):
            if self.st.next_trade_id > n:
                return
            self.tick()
        raise AssertionError("not enough trades")


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(E, "_TRADES_KEEP", 1200)
    monkeypatch.setattr(E, "_TRADES_MAX", 1320)
    monkeypatch.setattr(E, "_CLOSED_ORDERS_KEEP", 20)
    monkeypatch.setattr(E, "_CLOSED_ORDERS_MAX", 22)
    monkeypatch.setattr(E, "_MY_TRADES_KEEP", 30)
    monkeypatch.setattr(E, "_MY_TRADES_MAX", 33)


def test_constants_serve_the_documented_limits():
    assert E._TRADES_KEEP >= 1000                     # GET /api/v3/trades limit ≤ 1000
    assert E._CLOSED_ORDERS_KEEP >= 1000              # allOrders limit ≤ 1000
    assert E._MY_TRADES_KEEP >= 1000                  # myTrades limit ≤ 1000
    assert E._MINUTE_INDEX_KEEP * MINUTE_MS > DAY_MS  # the rolling 24 h ticker
    assert KlineHistory.LIVE_KEEP * MINUTE_MS >= DAY_MS


def test_market_trades_are_a_bounded_ring_and_the_api_answers_at_the_edges(small):
    rig = Rig(trades_per_second=400)
    rig.run_until_trades(4000)
    st = rig.st
    assert E._TRADES_KEEP <= len(st.trades) <= E._TRADES_MAX
    assert len(st.trade_times) == len(st.trades)
    assert len(st.aggs) <= E._TRADES_MAX
    ids = [t[0] for t in st.trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))           # contiguous
    last = st.next_trade_id - 1
    assert ids[-1] == last and ids[0] > 1                          # the oldest were dropped
    # /trades: the last 1000, newest last.
    got = rig.ex.trades(P(symbol=SYM, limit=1000))
    assert [t["id"] for t in got] == list(range(last - 999, last + 1))
    # /historicalTrades at the edges: oldest kept, newest, and an id older than the ring.
    oldest = ids[0]
    assert [t["id"] for t in rig.ex.historical_trades(P(symbol=SYM, fromId=oldest, limit=5))] == \
        list(range(oldest, oldest + 5))
    assert [t["id"] for t in rig.ex.historical_trades(P(symbol=SYM, fromId=last))] == [last]
    assert rig.ex.historical_trades(P(symbol=SYM, fromId=last + 1)) == []
    assert rig.ex.historical_trades(P(symbol=SYM, fromId=1, limit=3))[0]["id"] == oldest
    # /aggTrades by id: the oldest kept aggregate and the newest.
    a0 = st.aggs[0][0]
    assert rig.ex.agg_trades(P(symbol=SYM, fromId=a0, limit=2))[0]["a"] == a0
    assert rig.ex.agg_trades(P(symbol=SYM, limit=1))[0]["a"] == st.next_agg_id - 1
    assert rig.ex.agg_trades(P(symbol=SYM, fromId=1, limit=1))[0]["a"] == a0


def test_ticker_24h_counts_trades_past_the_ring(small):
    rig = Rig(trades_per_second=400)
    seeded = [(t[0], t[4]) for t in rig.st.trades]   # trades before the start (not published)
    rig.tick(n=300)                                  # 30 s of trades
    early = [e for e in rig.printed if e.symbol == SYM]
    assert len(early) > 1000
    rig.clock.advance(DAY_MS - 25_000)               # a day later the early trades leave the window…
    rig.run_until_trades(rig.st.next_trade_id + 3000)   # …and the ring
    st = rig.st
    assert st.trades[0][0] > early[-1].trade_id      # none of the early trades is kept any more
    now = rig.clock.now_ms()
    t = rig.ex.ticker_24hr(P(symbol=SYM))
    open_t = now - DAY_MS
    # First trade of the minute that contains the window's start (Binance: window ≤ 59 999 ms wider).
    floor = open_t - open_t % MINUTE_MS
    assert START < open_t < START + 30_000            # the window starts inside the early trades
    everything = seeded + [(e.trade_id, e.time_ms) for e in rig.printed]
    expected_first = min(tid for tid, tm in everything if tm >= floor)
    assert t["firstId"] == expected_first
    assert t["lastId"] == st.next_trade_id - 1
    assert t["count"] == t["lastId"] - t["firstId"] + 1
    assert len(st.minutes) <= E._MINUTE_INDEX_KEEP


def _limit_away(rig: Rig) -> dict:
    bid = int(float(rig.ex.depth(P(symbol=SYM, limit=1))["bids"][0][0]))
    return rig.ex.new_order(KEY, P(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
                                   price=f"{bid // 2}.00", newClientOrderId="keepme"))


def test_closed_orders_bounded_open_orders_never_dropped(small):
    rig = Rig()
    rig.tick()
    open_ack = _limit_away(rig)
    closed = []
    for i in range(60):
        side = "BUY" if i % 2 == 0 else "SELL"
        r = rig.ex.new_order(KEY, P(symbol=SYM, side=side, type="MARKET", quantity="0.001",
                                    newClientOrderId=f"c{i}"))
        assert r["status"] == "FILLED"
        closed.append(r["orderId"])
        rig.tick()
    a = rig.ex._accounts[KEY]
    hist = a.history[SYM]
    n_closed = sum(1 for o in hist if not o.is_open)
    assert E._CLOSED_ORDERS_KEEP <= n_closed <= E._CLOSED_ORDERS_MAX
    assert len(a.orders) == len(hist)                              # nothing lingers outside the window
    assert len(a.last_cid) == len(hist)
    # The open order survives, by id and by client id, and in openOrders/allOrders.
    assert rig.ex.get_order(KEY, P(symbol=SYM, orderId=open_ack["orderId"]))["status"] == "NEW"
    assert rig.ex.get_order(KEY, P(symbol=SYM, origClientOrderId="keepme"))["orderId"] == open_ack["orderId"]
    assert [o["orderId"] for o in rig.ex.open_orders(KEY, P(symbol=SYM))] == [open_ack["orderId"]]
    every = rig.ex.all_orders(KEY, P(symbol=SYM, limit=1000))
    ids = [o["orderId"] for o in every]
    assert ids == sorted(ids) and ids[0] == open_ack["orderId"]
    assert ids[1:] == closed[-n_closed:]                            # the newest closed ones
    # The oldest closed orders are forgotten (-2013); the newest still answer.
    with pytest.raises(BinanceError) as e:
        rig.ex.get_order(KEY, P(symbol=SYM, orderId=closed[0]))
    assert e.value.code == -2013
    with pytest.raises(BinanceError) as e:
        rig.ex.get_order(KEY, P(symbol=SYM, origClientOrderId="c0"))
    assert e.value.code == -2013
    assert rig.ex.get_order(KEY, P(symbol=SYM, orderId=closed[-1]))["status"] == "FILLED"
    # allOrders by orderId at the edge: an id before the window starts at the oldest kept.
    assert rig.ex.all_orders(KEY, P(symbol=SYM, orderId=closed[1], limit=2))[0]["orderId"] == \
        closed[-n_closed]
    # The open order can still be cancelled.
    assert rig.ex.cancel_order(KEY, P(symbol=SYM, orderId=open_ack["orderId"]))["status"] == "CANCELED"


def test_my_trades_bounded(small):
    rig = Rig()
    rig.tick()
    tids = []
    for i in range(60):
        r = rig.ex.new_order(KEY, P(symbol=SYM, side="BUY" if i % 2 == 0 else "SELL", type="MARKET",
                                    quantity="0.001", newResponseType="FULL"))
        tids += [f["tradeId"] for f in r["fills"]]
        rig.tick()
    kept = rig.ex._accounts[KEY].trades[SYM]
    assert E._MY_TRADES_KEEP <= len(kept) <= E._MY_TRADES_MAX
    got = rig.ex.my_trades(KEY, P(symbol=SYM, limit=1000))
    assert [t["id"] for t in got] == tids[-len(kept):]
    assert rig.ex.my_trades(KEY, P(symbol=SYM, fromId=tids[0], limit=1))[0]["id"] == tids[-len(kept)]
    assert [t["id"] for t in rig.ex.my_trades(KEY, P(symbol=SYM, fromId=tids[-1]))] == [tids[-1]]


def test_kline_live_aggregates_bounded_per_interval(monkeypatch):
    monkeypatch.setattr(KlineHistory, "LIVE_KEEP", 50)
    monkeypatch.setattr(KlineHistory, "LIVE_KEEP_BY_INTERVAL", {"1s": 20})
    rig = Rig()
    h = rig.st.history
    t = START
    for i in range(200 * 60):                        # one trade a second for 200 minutes
        h.record_trade(t, 6_500_000_000_000, 100_000, 6_500_000_000, i + 1, i % 2 == 0)
        t += 1000
    assert len(h._live["1s"]) <= 22
    assert 50 <= len(h._live["1m"]) <= 55
    assert len(h._live["1d"]) <= 2
    # The newest candles keep their printed trades.
    c = h.current("1m", t - 1)
    assert c[8] > 0 and c[12] == 200 * 60
    prev = h.candles("1m", [c[0] - MINUTE_MS], t)[0]
    assert prev[8] >= 60 and prev[12] == c[11] - 1


def test_kline_row_cache_bounded_and_rows_unchanged(monkeypatch):
    monkeypatch.setattr(KlineHistory, "ROW_CACHE_MAX", 300)
    rig = Rig()
    rig.tick()
    first = rig.ex.klines(P(symbol=SYM, interval="1h", limit=100))
    for k in range(20):
        rig.ex.klines(P(symbol=SYM, interval="1m", startTime=START - (k + 1) * 200 * MINUTE_MS, limit=100))
    assert len(rig.st.history._rows) <= 300
    assert rig.ex.klines(P(symbol=SYM, interval="1h", limit=100)) == first
