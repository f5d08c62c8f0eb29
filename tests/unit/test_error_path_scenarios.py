"""Error-path scenarios, pure: each request violates exactly what it should and cannot trade, the
schedule and the retry-storm counter, the wrong signature, the expected -1021 that re-syncs no clock,
order_success without the error-path orders, and the settings."""
from __future__ import annotations

import types
from decimal import Decimal

import pytest

from letrade_perf.binance.signing import ED25519, HMAC, hmac_sha256
from letrade_perf.calls.path import CallResult, feedback
from letrade_perf.config.profile import ErrorPathSettings, UserMix, profile_from_mapping
from letrade_perf.core.errors import ConfigError, FieldError
from letrade_perf.criteria.evaluate import judge
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.metrics.recorder import MetricsRecorder, MetricsStore, Snapshot
from letrade_perf.users.errorpaths import (
    SCENARIOS,
    NotConstructible,
    Schedule,
    SendCounter,
    anchor_order,
    code_name,
    plan,
    wrong_signature,
)
from letrade_perf.users.symbols import SymbolRules

D = Decimal
BID, ASK = D("65000.00"), D("65000.50")


def rules(**kw) -> SymbolRules:
    base = dict(symbol="BTCUSDT", base="BTC", quote="USDT", status="TRADING", step=D("0.00001"), min_qty=D("0.00001"),
                max_qty=D("9000"), market_step=D("0.00001"), market_min_qty=D("0.00001"), market_max_qty=D("100"),
                tick=D("0.01"), min_price=D("0.01"), max_price=D("1000000"), min_notional=D("5"),
                max_notional=D("9000000"))
    base.update(kw)
    return SymbolRules(**base)


def make(scenario: str, r: SymbolRules | None = None, **kw):
    kw.setdefault("free", {"USDT": D("100000"), "BTC": D("2")})
    return plan(scenario, r or rules(), bid=BID, ask=ASK, cid="lpe-x-0-0-1", offset_bps=200, **kw)


def qp(p) -> tuple[D, D]:
    return D(p.params["quantity"]), D(p.params["price"])


def cannot_trade(p) -> None:
    """An IOC order priced away from the market: accepted by mistake, it still cannot match."""
    assert p.params["timeInForce"] == "IOC" and p.params["type"] == "LIMIT"
    _, price = qp(p)
    assert price < ASK if p.side == "BUY" else price > BID


@pytest.mark.parametrize("scenario,problem", [("lot_size", "not on step"), ("notional", "notional"),
                                              ("tick_size", None), ("price_filter", None)])
def test_filter_scenarios_violate_their_filter_and_cannot_trade(scenario, problem):
    r = rules()
    p = make(scenario, r)
    assert (p.method, p.path, p.ledger, p.signing) == ("POST", "/api/v3/order", True, "normal")
    cannot_trade(p)
    qty, price = qp(p)
    if problem is not None:
        assert problem in (r.check(qty, price, market=False) or "")
    if scenario == "tick_size":
        assert price % r.tick != 0 and r.check(qty, price, market=False) is None   # only the tick is wrong
    if scenario == "price_filter":
        assert price > r.max_price and p.side == "SELL"


def test_valid_orders_of_the_signature_scenarios_pass_every_filter():
    r = rules()
    for scenario, how in (("stale_timestamp", "stale"), ("bad_signature", "bad")):
        p = make(scenario, r)
        assert p.signing == how and p.ledger
        cannot_trade(p)
        assert r.check(*qp(p), market=False) is None          # only the signature/timestamp is wrong


def test_insufficient_balance_asks_for_more_than_the_account_holds():
    r = rules()
    p = make("insufficient_balance", r, free={"USDT": D("100000"), "BTC": D("2")})
    cannot_trade(p)
    qty, price = qp(p)
    assert p.side == "BUY" and qty * price >= 2 * D("100000") and r.check(qty, price, market=False) is None
    # a quote balance no order within maxNotional can exceed: the SELL side instead
    whale = make("insufficient_balance", r, free={"USDT": D("1e12"), "BTC": D("2")})
    cannot_trade(whale)
    assert whale.side == "SELL" and D(whale.params["quantity"]) >= 4
    with pytest.raises(NotConstructible):
        make("insufficient_balance", r, free={"USDT": D("1e12"), "BTC": D("1e9")})


def test_other_scenarios():
    p = make("unknown_symbol", unknown_symbol="LPNOSUCHUSDT")
    assert (p.method, p.path, p.ledger, p.params["symbol"]) == ("POST", "/api/v3/order/test", False, "LPNOSUCHUSDT")
    p = make("cancel_unknown")
    assert (p.method, p.params) == ("DELETE", {"symbol": "BTCUSDT", "origClientOrderId": "lpe-x-0-0-1"})
    p = make("duplicate_cid", anchor_cid="lpa-x-0-0-9")
    assert p.params["newClientOrderId"] == "lpa-x-0-0-9" and not p.ledger
    cannot_trade(p)
    with pytest.raises(ValueError):
        make("duplicate_cid")
    with pytest.raises(ValueError):
        make("nonsense")


def test_the_anchor_rests_far_below_the_market_just_above_min_notional():
    r = rules()
    a = anchor_order(r, BID, 2000, "lpa-1")
    qty, price = D(a["quantity"]), D(a["price"])
    assert a["timeInForce"] == "GTC" and price <= BID * D("0.8") and r.check(qty, price, market=False) is None
    assert r.min_notional <= qty * price <= r.min_notional * D("1.2")


def test_filters_that_leave_no_violation_are_not_constructible():
    fine = rules(tick=D("0.00000001"), step=D("0.00000001"), min_qty=D("0.00000001"), max_qty=D(0), min_notional=D(0),
                 max_price=D(0), min_price=D(0))
    for scenario in ("tick_size", "lot_size", "notional", "price_filter"):
        with pytest.raises(NotConstructible):
            make(scenario, fine)
    with pytest.raises(NotConstructible):      # no price below the ask to buy at
        plan("lot_size", rules(), bid=D("0.01"), ask=D("0.01"), cid="c", offset_bps=200)


def test_schedule_staggers_paces_and_drops_missed_slots():
    s = Schedule({"a": 1.0, "b": 0.5}, start=100.0, stagger_s=0.1)
    assert s.claim(100.0) == ("a", 100.0)
    assert s.claim(100.0) == ("b", 100.1)
    assert s.claim(100.5) == ("a", 101.0)
    assert s.claim(101.0) == ("a", 102.0)
    assert s.claim(102.0) == ("b", 102.1)
    # 10 s behind: the missed slots are dropped, the next one is due within a period
    scenario, due = s.claim(112.5)
    assert scenario == "a" and due == 103.0
    assert s.due["a"] == 113.0
    with pytest.raises(ValueError):
        Schedule({}, 0.0)


def test_send_counter_flags_sends_beyond_the_schedule():
    c = SendCounter({"a": 0.5}, start=0.0)
    assert [c.sent("a", t) for t in (0.0, 2.0, 4.0)] == [False, False, False]
    assert c.sent("a", 4.5) is True                           # a retry right after the slot
    c2 = SendCounter({"a": 0.5}, start=0.0)
    sched = Schedule({"a": 0.5}, start=0.0)
    for _ in range(50):                                       # what the schedule hands out is never excess
        _s, due = sched.claim(0.0)
        assert c2.sent("a", due) is False


def test_wrong_signature_is_well_formed_but_not_the_accounts():
    payload = "symbol=BTCUSDT&timestamp=1"
    bad = wrong_signature(HMAC, payload)
    assert len(bad) == 64 and bad != hmac_sha256("secret", payload) and bad != wrong_signature(HMAC, payload)
    assert len(wrong_signature(ED25519, payload)) == 88      # base64 of 64 bytes


def test_code_names():
    assert code_name(CallResult(400, code=-2010, msg="x")) == "-2010"
    assert code_name(CallResult(200, data={})) == "accepted"
    assert code_name(CallResult(0, error="reset")) == "no answer"
    assert code_name(CallResult(503)) == "HTTP 503"


class _Pacer:
    def observe(self, *a, **kw): ...


def test_an_expected_minus_1021_resyncs_no_clock():
    calls = []
    ctx = types.SimpleNamespace(pacer=_Pacer(), on_clock_error=lambda: calls.append(1))
    res = CallResult(400, code=-1021, msg="Timestamp for this request is outside of the recvWindow.")
    feedback(ctx, res, None, expected=SCENARIOS["stale_timestamp"])
    assert calls == []
    feedback(ctx, res, None)
    assert calls == [1]


def test_order_success_leaves_out_the_error_path_orders():
    rec = MetricsRecorder(clock=lambda: 1000.0, samples_dir="")
    for _ in range(10):
        rec.on_order(outcome="sent", source="pipeline")
        rec.on_order(outcome="placed", source="pipeline")
    for _ in range(30):
        rec.on_order(outcome="sent", source="error_path")
        rec.on_order(outcome="rejected", source="error_path")
    rec.on_order(outcome="sent", source="error_path_anchor")
    rec.on_order(outcome="placed", source="error_path_anchor")
    store = MetricsStore()
    store.merge(Snapshot.from_wire(rec.drain().to_wire()))

    def j(sel: str):
        (c,) = parse_criteria({sel: ["rate>99.5%"]}, "t.yaml")
        return judge(c, store, 10)

    r = j("order_success")
    assert (r.verdict, r.value, r.samples) == ("pass", 1.0, 11)
    r = j('order_success{source="error_path"}')           # asked for by name: judged as it is
    assert (r.value, r.samples) == (0.0, 30)


def test_settings_rates_bounds_and_the_user_mix():
    s = ErrorPathSettings()
    assert set(s.rates()) == set(SCENARIOS) and all(r == 0.2 for r in s.rates().values())
    assert ErrorPathSettings(lot_size=0, bad_signature=2.5).rates()["bad_signature"] == 2.5
    assert "lot_size" not in ErrorPathSettings(lot_size=0).rates()
    with pytest.raises(FieldError):
        ErrorPathSettings(notional=-1)
    with pytest.raises(FieldError):
        ErrorPathSettings(notional=11)
    with pytest.raises(FieldError):
        ErrorPathSettings(**{name: 0 for name in SCENARIOS})
    assert UserMix(error_paths=ErrorPathSettings()).places_orders            # the duplicate's anchor
    assert not UserMix(error_paths=ErrorPathSettings(duplicate_cid=0)).places_orders
    doc = {"description": "d", "stages": [{"duration": "5s", "users": 1, "spawn_rate": 1}],
           "users": {"error_paths": {"duplicate_cid": 0}}}
    p = profile_from_mapping(doc, source="t.yaml", name="t")
    assert p.needs_credentials and p.users.error_paths.fixed_count == 1
    doc["users"] = {"error_paths": {"stale_timestamps": 1}}
    with pytest.raises(ConfigError, match="stale_timestamps"):
        profile_from_mapping(doc, source="t.yaml", name="t")
