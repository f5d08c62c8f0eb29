"""Market model: the seeded price path and the kline history built on it."""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from letrade_perf.binance.errors import BinanceError
from letrade_perf.binance.intervals import DAY_MS, HOUR_MS, MINUTE_MS, kline_next
from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import DEMO_API_KEY, SimConfig
from letrade_perf.sim.engine import Exchange
from letrade_perf.sim.events import EventHub
from letrade_perf.sim.market import PricePath, parse_time_zone
from letrade_perf.sim.params import Params
from letrade_perf.sim.stats import SimStats

START = 1_700_000_000_000


def make(seed: int = 1, start: int = START, **market) -> tuple[Exchange, ManualClock]:
    cfg = SimConfig(seed=seed)
    for k, v in market.items():
        setattr(cfg.market, k, v)
    clock = ManualClock(start)
    return Exchange(cfg, clock, EventHub(), SimStats()), clock


def P(**kw) -> Params:
    return Params({k: str(v) for k, v in kw.items()})


def check_rows(rows: list, interval: str, start_ms: int, tz: int = 0) -> None:
    """Shape, OHLC consistency and contiguity of consecutive rows."""
    for i, r in enumerate(rows):
        assert len(r) == 12
        assert all(isinstance(r[k], int) for k in (0, 6, 8))
        assert all(isinstance(r[k], str) for k in (1, 2, 3, 4, 5, 7, 9, 10, 11))
        o, h, lo, c, v, qv, tb, tq = (Decimal(r[k]) for k in (1, 2, 3, 4, 5, 7, 9, 10))
        assert h >= max(o, c) and lo <= min(o, c) and lo > 0, r
        assert r[6] == kline_next(interval, r[0] + tz) - tz - 1, r
        assert 0 <= tb <= v and 0 <= tq <= qv
        if r[6] < start_ms:          # fully historical: synthetic volume is always there
            assert v > 0 and r[8] >= 1
        slack = Decimal("0.0001")
        assert lo * v - slack <= qv <= h * v + slack, r
        if i:
            prev = rows[i - 1]
            assert prev[6] + 1 == r[0], (prev, r)
            assert prev[4] == r[1], (prev, r)           # close[i-1] == open[i], exactly


@pytest.mark.parametrize("interval", ["1s", "1m", "5m", "1h", "4h", "1d", "1w", "1M"])
def test_klines_random_pages_are_consistent(interval):
    ex, _ = make()
    rng = random.Random(interval)
    now = ex.clock.now_ms()
    for _ in range(6):
        if interval in ("1s", "1m", "5m"):
            start = now - rng.randint(HOUR_MS, 20 * DAY_MS)
        else:
            start = now - rng.randint(70 * DAY_MS, 390 * DAY_MS)
        limit = rng.randint(1, 1000)
        rows = ex.klines(P(symbol="BTCUSDT", interval=interval, startTime=start, limit=limit))
        assert rows, (interval, start)
        assert len(rows) <= limit
        assert rows[0][0] >= start
        check_rows(rows, interval, ex.start_ms)


def test_klines_paging_over_more_than_1000_candles_has_no_gaps_or_duplicates():
    ex, _ = make()
    now = ex.clock.now_ms()
    for interval, span in (("1m", 2500 * MINUTE_MS), ("1h", 60 * DAY_MS)):
        start = now - span
        got = []
        while True:
            page = ex.klines(P(symbol="ETHUSDT", interval=interval, startTime=start, limit=1000))
            if not page:
                break
            got.extend(page)
            start = page[-1][6] + 1
            if len(page) < 1000:
                break
        assert len(got) > 1000
        opens = [r[0] for r in got]
        assert len(opens) == len(set(opens))
        check_rows(got, interval, ex.start_ms)
        assert got[-1][0] <= now < got[-1][6] + 1     # ends with the live candle


def test_klines_time_range_rules():
    ex, _ = make()
    now = ex.clock.now_ms()
    newest = ex.klines(P(symbol="BTCUSDT", interval="1m", limit=10))
    assert len(newest) == 10
    assert newest[-1][0] == now - now % MINUTE_MS           # the live candle is last
    default = ex.klines(P(symbol="BTCUSDT", interval="1m"))
    assert len(default) == 500
    capped = ex.klines(P(symbol="BTCUSDT", interval="1m", limit=5000))
    assert len(capped) == 1000
    end = now - 3 * HOUR_MS
    upto = ex.klines(P(symbol="BTCUSDT", interval="1m", endTime=end, limit=5))
    assert len(upto) == 5 and upto[-1][0] <= end < upto[-1][6] + 1
    start = now - 2 * HOUR_MS + 123
    both = ex.klines(P(symbol="BTCUSDT", interval="5m", startTime=start, endTime=start + HOUR_MS, limit=1000))
    assert both[0][0] >= start and both[-1][0] <= start + HOUR_MS
    assert len(both) == 12
    assert ex.klines(P(symbol="BTCUSDT", interval="1m", startTime=now + HOUR_MS)) == []
    # History starts history_days back.
    oldest = ex.klines(P(symbol="BTCUSDT", interval="1d", startTime=0, limit=3))
    assert oldest[0][0] >= now - 401 * DAY_MS
    # uiKlines returns the same data.
    assert ex.ui_klines(P(symbol="BTCUSDT", interval="1h", limit=50)) == ex.klines(
        P(symbol="BTCUSDT", interval="1h", limit=50))


def test_klines_errors():
    ex, _ = make()
    with pytest.raises(BinanceError) as e:
        ex.klines(P(symbol="BTCUSDT", interval="2m"))
    assert e.value.code == -1120
    with pytest.raises(BinanceError) as e:
        ex.klines(P(symbol="BTCUSDT"))
    assert e.value.code == -1102
    with pytest.raises(BinanceError) as e:
        ex.klines(P(symbol="NOPE", interval="1m"))
    assert e.value.code == -1121
    with pytest.raises(BinanceError) as e:
        ex.klines(P(symbol="BTCUSDT", interval="1m", timeZone="15:00"))
    assert e.value.code == -1100


def test_time_zone_shifts_daily_candles():
    ex, _ = make()
    assert parse_time_zone("-1:00") == -HOUR_MS
    assert parse_time_zone("05:45") == 5 * HOUR_MS + 45 * MINUTE_MS
    assert parse_time_zone("8") == 8 * HOUR_MS
    utc = ex.klines(P(symbol="BTCUSDT", interval="1d", limit=5))
    tz8 = ex.klines(P(symbol="BTCUSDT", interval="1d", limit=5, timeZone="8"))
    assert all(r[0] % DAY_MS == 0 for r in utc)
    assert all((r[0] + 8 * HOUR_MS) % DAY_MS == 0 for r in tz8)
    check_rows(tz8, "1d", ex.start_ms, tz=8 * HOUR_MS)


def test_determinism_same_seed_and_difference_across_seeds():
    a, _ = make(seed=7)
    b, _ = make(seed=7)
    c, _ = make(seed=8)
    q = P(symbol="SOLUSDT", interval="15m", limit=300)
    assert a.klines(q) == b.klines(q)
    assert a.klines(q) != c.klines(q)
    assert a.depth(P(symbol="SOLUSDT")) == b.depth(P(symbol="SOLUSDT"))
    # History before both starts does not depend on when the simulator started.
    late, _ = make(seed=7, start=START + 5 * DAY_MS)
    q2 = P(symbol="SOLUSDT", interval="1h", startTime=START - 10 * DAY_MS, limit=200)
    assert a.klines(q2) == late.klines(q2)


def test_price_path_is_anchored_and_batch_matches_single():
    path = PricePath(3, "BTCUSDT", 65000.0, 0.6, 1_000_000)
    ts = [START + i * 7_777 for i in range(300)]
    assert path.prices8(ts) == [path.price8(t) for t in ts]
    for t in (START, START + 200 * DAY_MS, START - 300 * DAY_MS):
        assert 0.7 * 65000 < path.price(t) < 1.3 * 65000
    assert all(p % 1_000_000 == 0 for p in path.prices8(ts))    # rounded to the tick


def test_live_candle_follows_trades_and_book_agrees_with_history():
    ex, clock = make()
    mid_before = ex.depth(P(symbol="BTCUSDT", limit=1))
    r = ex.new_order(DEMO_API_KEY, P(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.5"))
    top_fill = max(Decimal(f["price"]) for f in r["fills"])
    live = ex.klines(P(symbol="BTCUSDT", interval="1m", limit=1))[0]
    assert Decimal(live[2]) >= top_fill                 # high includes the sweep
    assert Decimal(live[4]) == Decimal(r["fills"][-1]["price"])   # closes at the last trade
    assert Decimal(live[5]) >= Decimal("0.5")
    k = ex.current_kline("BTCUSDT", "1m")
    assert k["x"] is False and k["c"] == live[4] and k["h"] == live[2] and k["i"] == "1m"
    assert k["L"] >= k["f"] > 0
    # The book is centred on the same path the history uses.
    bid = Decimal(mid_before["bids"][0][0])
    ask = Decimal(mid_before["asks"][0][0])
    path_now = Decimal(ex._syms["BTCUSDT"].path.price8(clock.now_ms())) / 10**8
    assert bid <= path_now <= ask
    # Once the minute is over the candle closes at the path price of the next open: contiguous.
    clock.advance(MINUTE_MS)
    ex.tick(clock.now_ms())
    rows = ex.klines(P(symbol="BTCUSDT", interval="1m", limit=3))
    check_rows(rows, "1m", ex.start_ms)
    assert Decimal(rows[-2][2]) >= top_fill
    final = ex.current_kline("BTCUSDT", "1m", k["T"])
    assert final["x"] is True and final["t"] == rows[-2][0]
    assert [final[x] for x in ("o", "h", "l", "c", "v")] == rows[-2][1:6]


def test_agg_trades_and_trades_ranges():
    ex, clock = make()
    trades = ex.trades(P(symbol="BTCUSDT", limit=20))
    assert len(trades) == 20
    assert [t["id"] for t in trades] == list(range(trades[0]["id"], trades[0]["id"] + 20))
    hist = ex.historical_trades(P(symbol="BTCUSDT", fromId=trades[0]["id"], limit=5))
    assert [t["id"] for t in hist] == [t["id"] for t in trades[:5]]
    aggs = ex.agg_trades(P(symbol="BTCUSDT", limit=50))
    assert len(aggs) == 50 and all(set(a) == {"a", "p", "q", "f", "l", "T", "m", "M"} for a in aggs)
    t_mid = aggs[25]["T"]
    after = ex.agg_trades(P(symbol="BTCUSDT", startTime=t_mid, limit=10))
    assert after[0]["T"] >= t_mid and len(after) == 10
    before = ex.agg_trades(P(symbol="BTCUSDT", endTime=t_mid, limit=10))
    assert before[-1]["T"] <= t_mid and len(before) == 10
    frm = ex.agg_trades(P(symbol="BTCUSDT", fromId=aggs[10]["a"], limit=3))
    assert [a["a"] for a in frm] == [aggs[10]["a"], aggs[11]["a"], aggs[12]["a"]]
    # A sweep over several levels makes one agg trade per price.
    r = ex.new_order(DEMO_API_KEY, P(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.3"))
    prices = {f["price"] for f in r["fills"]}
    newest = ex.agg_trades(P(symbol="BTCUSDT", limit=len(prices)))
    assert {a["p"] for a in newest} == prices
    assert sum(Decimal(a["q"]) for a in newest) == Decimal("0.3")
    assert newest[0]["f"] == r["fills"][0]["tradeId"] and newest[-1]["l"] == r["fills"][-1]["tradeId"]
    assert all(a["m"] is True for a in newest)
