"""RateLimiter: fixed clock-aligned buckets, exact Retry-After, 429 → 418 ladder, ORDERS, weights."""
from __future__ import annotations

import pytest

from letrade_perf.binance.endpoints import ENDPOINTS
from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import LimitsSpec
from letrade_perf.sim.ratelimit import RateLimiter, RateLimitError
from letrade_perf.sim.stats import SimStats

T0 = 1_700_000_040_000          # a whole minute (and a whole 10 s)
DAY0 = 1_700_006_400_000        # 00:00 UTC (1700006400000 % 86400000 == 0)
IP = "10.0.0.1"


def make(**limits) -> tuple[RateLimiter, ManualClock]:
    clock = ManualClock(T0)
    return RateLimiter(LimitsSpec(**limits), clock, SimStats()), clock


def refused(fn, *args) -> RateLimitError:
    with pytest.raises(RateLimitError) as ei:
        fn(*args)
    return ei.value


def test_weight_accumulates_and_exact_limit_is_allowed():
    rl, clock = make(request_weight_per_minute=100)
    for _ in range(5):
        rl.admit(IP, 20)
    assert rl.used_weight(IP) == 100
    assert rl.weight_headers(IP) == {"X-MBX-USED-WEIGHT-1M": "100"}
    assert rl.used_weight("10.0.0.2") == 0          # per IP


def test_429_message_and_retry_after_to_the_minute_boundary():
    rl, clock = make(request_weight_per_minute=100)
    rl.admit(IP, 95)
    clock.advance(15_500)
    e = refused(rl.admit, IP, 6)
    assert (e.http, e.code) == (429, -1003)
    assert e.msg == ("Too much request weight used; current limit is 100 request weight per 1 MINUTE. "
                     "Please use WebSocket Streams for live updates to avoid polling the API.")
    assert e.headers == {"Retry-After": "45"}        # 44.5 s to 00:01:00, rounded up
    assert e.retry_after_ms == T0 + 60_000
    assert rl.used_weight(IP) == 95                  # a refused request is not charged
    rl.admit(IP, 5)                                  # what still fits is admitted
    assert rl.used_weight(IP) == 100


def test_window_is_clock_aligned_and_resets_on_next_bucket():
    rl, clock = make(request_weight_per_minute=10)
    clock.advance(59_999)                            # last ms of the bucket
    rl.admit(IP, 10)
    assert refused(rl.admit, IP, 1).headers == {"Retry-After": "1"}
    clock.advance(1)                                 # 00:01:00.000 — a fresh bucket, not a sliding window
    assert rl.used_weight(IP) == 0
    rl.admit(IP, 10)
    assert rl.used_weight(IP) == 10


def test_violations_then_ban_with_escalating_ladder():
    rl, clock = make(request_weight_per_minute=10, violations_before_ban=2, ban_ladder_s=[120, 600])
    rl.admit(IP, 10)
    clock.advance(30_000)
    assert refused(rl.admit, IP, 1).http == 429
    assert refused(rl.admit, IP, 1).http == 429
    e = refused(rl.admit, IP, 1)                      # third offence in the bucket → ban
    until = T0 + 30_000 + 120_000
    assert (e.http, e.code) == (418, -1003)
    assert e.msg == (f"Way too much request weight used; IP banned until {until}. "
                     "Please use WebSocket Streams for live updates to avoid bans.")
    assert e.headers == {"Retry-After": "120"}
    assert e.retry_after_ms == until
    clock.advance(100_500)                           # during the ban every request is 418, even weight 0
    e = refused(rl.admit, IP, 0)
    assert (e.http, e.headers["Retry-After"]) == (418, "20")   # 19.5 s left, rounded up
    assert refused(rl.check_ban, IP).http == 418
    clock.advance(19_500)                            # ban over, new bucket
    rl.check_ban(IP)
    rl.admit(IP, 10)
    assert rl.used_weight(IP) == 10
    refused(rl.admit, IP, 1)
    refused(rl.admit, IP, 1)
    e = refused(rl.admit, IP, 1)                      # repeat offender: next rung of the ladder
    assert e.http == 418 and e.headers == {"Retry-After": "600"}
    clock.advance(600_000)
    rl.admit(IP, 1)
    clock.advance(60_000)
    rl.admit(IP, 10)
    refused(rl.admit, IP, 1)
    refused(rl.admit, IP, 1)
    assert refused(rl.admit, IP, 1).headers == {"Retry-After": "600"}   # the last rung repeats
    assert rl.state()["ips"][IP]["bans"] == 3


def test_violations_reset_with_the_bucket():
    rl, clock = make(request_weight_per_minute=10, violations_before_ban=2)
    rl.admit(IP, 10)
    refused(rl.admit, IP, 1)
    refused(rl.admit, IP, 1)
    clock.advance(60_000)
    rl.admit(IP, 10)
    assert refused(rl.admit, IP, 1).http == 429       # counting starts again: no ban yet


def test_raw_requests_per_5_minutes_count_every_request():
    rl, clock = make(raw_requests_per_5m=3)
    start = (T0 // 300_000 + 1) * 300_000            # a whole 5-minute bucket
    clock.set_ms(start + 100_000)
    for _ in range(3):
        rl.admit(IP, 0)
    e = refused(rl.admit, IP, 0)
    assert (e.http, e.code) == (429, -1003)
    assert e.msg.startswith("Too many requests; current limit is 3 requests per 5 MINUTE.")
    assert e.headers == {"Retry-After": "200"}
    clock.set_ms(start + 300_000)
    rl.admit(IP, 0)


def test_charge_adds_without_check_and_reset_clears_everything():
    rl, clock = make(request_weight_per_minute=10, violations_before_ban=0)
    rl.charge(IP, 15)
    assert rl.used_weight(IP) == 15
    assert refused(rl.admit, IP, 0).http == 418      # already over, no violations allowed → ban
    rl.reset()
    assert rl.used_weight(IP) == 0
    rl.admit(IP, 10)


def test_orders_per_10_seconds():
    rl, clock = make(orders_per_10s=3)
    acct = "acct-A"
    clock.advance(4_200)
    for _ in range(3):
        rl.admit_order(acct)
        rl.record_order(acct)
    assert rl.order_counts(acct) == {"10S": 3, "1D": 3}
    assert rl.order_headers(acct) == {"X-MBX-ORDER-COUNT-10S": "3", "X-MBX-ORDER-COUNT-1D": "3"}
    e = refused(rl.admit_order, acct)
    assert (e.http, e.code) == (429, -1015)
    assert e.msg == "Too many new orders; current limit is 3 orders per 10 SECOND."
    assert e.headers == {"Retry-After": "6"}          # 5.8 s to :10, rounded up
    for _ in range(10):                              # order refusals never ban the IP or the account
        refused(rl.admit_order, acct)
    rl.admit_order("acct-B")                         # per account
    clock.advance(5_800)
    assert rl.order_counts(acct) == {"10S": 0, "1D": 3}
    rl.admit_order(acct)


def test_orders_per_day_resets_at_utc_midnight():
    rl, clock = make(orders_per_10s=100, orders_per_day=2)
    clock.set_ms(DAY0 + 86_400_000 - 30_000)         # 23:59:30 UTC
    acct = "acct-A"
    rl.record_order(acct)
    rl.record_order(acct)
    e = refused(rl.admit_order, acct)
    assert e.msg == "Too many new orders; current limit is 2 orders per 1 DAY."
    assert e.headers == {"Retry-After": "30"}
    clock.advance(30_000)
    assert rl.order_counts(acct) == {"10S": 0, "1D": 0}
    rl.admit_order(acct)


def test_order_limits_and_ws_api_limits_entries():
    rl, clock = make(request_weight_per_minute=6000, orders_per_10s=100, orders_per_day=200000)
    rl.admit(IP, 7)
    rl.record_order("a")
    assert rl.ws_api_limits(IP) == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 7}]
    assert rl.ws_api_limits(IP, "a") == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 7},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100, "count": 1},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000, "count": 1},
    ]


def test_ws_api_connections_cost_weight_and_are_capped():
    rl, clock = make(ws_connections_per_5m=2)
    rl.admit_connection(IP)
    rl.admit_connection(IP)
    assert rl.used_weight(IP) == 4
    e = refused(rl.admit_connection, IP)
    assert (e.http, e.code) == (429, -1003)
    assert e.retry_after_ms == (T0 // 300_000 + 1) * 300_000


def test_stream_connections_are_capped_apart_from_the_ws_api_and_cost_no_weight():
    rl, clock = make(ws_connections_per_5m=1, stream_connections_per_5m=2)
    rl.admit_stream_connection(IP)
    rl.admit_stream_connection(IP)
    assert rl.used_weight(IP) == 0
    rl.admit_connection(IP)                      # the WS API's own count is untouched
    e = refused(rl.admit_stream_connection, IP)
    assert (e.http, e.code) == (429, -1003)
    assert "2 connections per 5 MINUTE" in e.msg
    assert e.retry_after_ms == (T0 // 300_000 + 1) * 300_000
    rl.admit_stream_connection("10.0.0.2")       # per IP
    assert rl.state()["ips"][IP]["stream_connections_5m"] == 2
    clock.set_ms((T0 // 300_000 + 1) * 300_000)  # the next 5-minute bucket
    rl.admit_stream_connection(IP)


def test_limits_changed_at_runtime_take_effect():
    rl, clock = make(request_weight_per_minute=100)
    rl.admit(IP, 50)
    rl.limits.request_weight_per_minute = 40
    e = refused(rl.admit, IP, 1)
    assert "current limit is 40 request weight" in e.msg


@pytest.mark.parametrize("name,params,weight", [
    ("GET /api/v3/ping", {}, 1),
    ("GET /api/v3/time", {}, 1),
    ("GET /api/v3/exchangeInfo", {}, 20),
    ("GET /api/v3/depth", {"symbol": "BTCUSDT"}, 5),
    ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "5"}, 5),
    ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "101"}, 25),
    ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "1000"}, 50),
    ("GET /api/v3/depth", {"symbol": "BTCUSDT", "limit": "5000"}, 250),
    ("GET /api/v3/trades", {"symbol": "BTCUSDT"}, 25),
    ("GET /api/v3/aggTrades", {"symbol": "BTCUSDT"}, 4),
    ("GET /api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"}, 2),
    ("GET /api/v3/ticker/24hr", {"symbol": "BTCUSDT"}, 2),
    ("GET /api/v3/ticker/24hr", {}, 80),
    ("GET /api/v3/ticker/24hr", {"symbols": '["' + '","'.join(f"S{i}" for i in range(21)) + '"]'}, 40),
    ("GET /api/v3/ticker/price", {"symbol": "BTCUSDT"}, 2),
    ("GET /api/v3/ticker/price", {}, 4),
    ("GET /api/v3/ticker/bookTicker", {}, 4),
    ("GET /api/v3/account", {}, 20),
    ("GET /api/v3/openOrders", {"symbol": "BTCUSDT"}, 6),
    ("GET /api/v3/openOrders", {}, 80),
    ("GET /api/v3/myTrades", {"symbol": "BTCUSDT"}, 20),
    ("GET /api/v3/myTrades", {"symbol": "BTCUSDT", "orderId": "1"}, 5),
    ("POST /api/v3/order/test", {}, 1),
    ("POST /api/v3/order/test", {"computeCommissionRates": "true"}, 20),
    ("GET /api/v3/rateLimit/order", {}, 40),
])
def test_table_weights_are_charged_exactly(name, params, weight):
    rl, clock = make()
    method, path = name.split(" ", 1)
    rl.admit(IP, ENDPOINTS[(method, path)].cost(params))
    assert rl.used_weight(IP) == weight


def test_order_entry_costs_zero_on_success_and_weight_on_failure():
    for name in ("POST /api/v3/order", "DELETE /api/v3/order", "DELETE /api/v3/openOrders"):
        method, path = name.split(" ", 1)
        ep = ENDPOINTS[(method, path)]
        assert (ep.cost({}, ok=True), ep.cost({}, ok=False)) == (0, 1)


def test_first_fill_and_rejection_lower_the_order_count():
    clock = ManualClock(1_700_000_000_000 // 86_400_000 * 86_400_000 + 1_000)
    rl = RateLimiter(LimitsSpec(orders_per_10s=3), clock, SimStats())
    for _ in range(3):
        rl.admit_order("acct")
        rl.record_order("acct")
    rl.order_filled("acct")
    rl.unrecord_order("acct")
    assert rl.order_counts("acct") == {"10S": 1, "1D": 1}
    rl.admit_order("acct")          # room again: no -1015
    for _ in range(3):
        rl.order_filled("acct")     # never below zero
    assert rl.order_counts("acct") == {"10S": 0, "1D": 0}
