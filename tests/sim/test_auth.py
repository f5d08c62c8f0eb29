"""Auth: the docs' HMAC vectors, Ed25519 round trip, timestamp/recvWindow rules, every failure code."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from letrade_perf.binance import signing
from letrade_perf.binance.errors import BinanceError
from letrade_perf.sim.auth import Auth, _strip_signature
from letrade_perf.sim.clock import ManualClock
from letrade_perf.sim.config import DEMO_ED25519_API_KEY, DEMO_ED25519_PRIVATE_PEM, AccountSpec, SimConfig, from_mapping

DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_PAYLOAD = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_SIG = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
# Docs example 3: part in the query string, part in the body, concatenated without a separator.
DOC_QUERY_PART = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
DOC_BODY_PART = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_MIXED_SIG = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
DOC_TS = 1499827319559


def parse(raw: str) -> dict:
    from urllib.parse import parse_qsl
    return dict(parse_qsl(raw, keep_blank_values=True))


def make(now_ms: int = DOC_TS + 200) -> tuple[Auth, ManualClock]:
    cfg = SimConfig()
    cfg.accounts.append(AccountSpec(DOC_KEY, DOC_SECRET))
    clock = ManualClock(now_ms)
    return Auth(cfg, clock), clock


def code_of(fn, *args) -> tuple[int, int, str]:
    with pytest.raises(BinanceError) as ei:
        fn(*args)
    e = ei.value
    return e.code, e.http, e.msg


def test_docs_hmac_vector_in_query():
    auth, _ = make()
    raw = f"{DOC_PAYLOAD}&signature={DOC_SIG}"
    assert auth.verify_rest(DOC_KEY, raw, "", parse(raw)) == DOC_KEY


def test_docs_hmac_vector_in_body_and_case_insensitive():
    auth, _ = make()
    body = f"{DOC_PAYLOAD}&signature={DOC_SIG.upper()}"
    assert auth.verify_rest(DOC_KEY, "", body, parse(body)) == DOC_KEY


def test_docs_mixed_query_and_body_vector():
    auth, _ = make()
    body = f"{DOC_BODY_PART}&signature={DOC_MIXED_SIG}"
    params = {**parse(body), **parse(DOC_QUERY_PART)}
    assert auth.verify_rest(DOC_KEY, DOC_QUERY_PART, body, params) == DOC_KEY
    # the same signature does not verify the '&'-joined payload
    assert signing.hmac_sha256(DOC_SECRET, DOC_QUERY_PART + DOC_BODY_PART) == DOC_MIXED_SIG


def test_signature_in_the_middle_is_spliced_out_exactly():
    assert _strip_signature("a=1&signature=xx&b=2") == "a=1&b=2"
    assert _strip_signature("signature=xx&a=1") == "a=1"
    assert _strip_signature("a=1&signature=xx") == "a=1"
    assert _strip_signature("a=1&mysignature=xx") == "a=1&mysignature=xx"
    auth, _ = make()
    head, tail = DOC_PAYLOAD.split("&quantity=")
    raw = f"{head}&signature={DOC_SIG}&quantity={tail}"
    assert auth.verify_rest(DOC_KEY, raw, "", parse(raw)) == DOC_KEY


def test_ed25519_round_trip_percent_encoded():
    auth, clock = make(1_700_000_000_000)
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
              "timestamp": str(clock.now_ms() - 10)}
    raw = signing.signed_query(signing.ED25519, DEMO_ED25519_PRIVATE_PEM, params)
    sig = signing.ed25519_sign(DEMO_ED25519_PRIVATE_PEM, signing.encode_params(params))
    assert f"signature={quote(sig, safe='')}" in raw and ("%2B" in raw or "%2F" in raw or "%3D" in raw)
    assert auth.verify_rest(DEMO_ED25519_API_KEY, raw, "", parse(raw)) == DEMO_ED25519_API_KEY
    tampered = raw.replace("quantity=0.01", "quantity=0.02")
    assert code_of(auth.verify_rest, DEMO_ED25519_API_KEY, tampered, "", parse(tampered))[0] == -1022
    # an HMAC signature for an Ed25519 key is not accepted either
    hm = signing.signed_query(signing.HMAC, DOC_SECRET, params)
    assert code_of(auth.verify_rest, DEMO_ED25519_API_KEY, hm, "", parse(hm))[0] == -1022


def signed(secret: str, ts: int, **extra) -> str:
    payload = signing.encode_params({"symbol": "BTCUSDT", **extra, "timestamp": ts})
    return f"{payload}&signature={signing.hmac_sha256(secret, payload)}"


def test_api_key_failures():
    auth, _ = make()
    raw = f"{DOC_PAYLOAD}&signature={DOC_SIG}"
    assert code_of(auth.verify_rest, None, raw, "", parse(raw)) == (
        -2015, 401, "Invalid API-key, IP, or permissions for action.")
    assert code_of(auth.verify_rest, "", raw, "", parse(raw))[:2] == (-2015, 401)
    assert code_of(auth.verify_rest, "A" * 64, raw, "", parse(raw))[:2] == (-2015, 401)
    assert code_of(auth.verify_rest, "bad key!", raw, "", parse(raw)) == (-2014, 401, "API-key format invalid.")
    assert code_of(auth.check_api_key, None)[0] == -2015
    assert code_of(auth.check_api_key, "x" * 200)[0] == -2014
    assert auth.check_api_key(DOC_KEY) == DOC_KEY
    assert auth.account_for_key(DOC_KEY).secret == DOC_SECRET
    assert auth.account_for_key("nope") is None


def test_missing_signature_and_timestamp():
    auth, _ = make()
    assert code_of(auth.verify_rest, DOC_KEY, DOC_PAYLOAD, "", parse(DOC_PAYLOAD)) == (
        -1102, 400, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    no_ts = "symbol=LTCBTC&signature=" + signing.hmac_sha256(DOC_SECRET, "symbol=LTCBTC")
    assert code_of(auth.verify_rest, DOC_KEY, no_ts, "", parse(no_ts)) == (
        -1102, 400, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    bad_ts = signed(DOC_SECRET, "12ab")  # type: ignore[arg-type]
    assert code_of(auth.verify_rest, DOC_KEY, bad_ts, "", parse(bad_ts))[0] == -1102


def test_bad_signature_and_non_ascii_payload():
    auth, clock = make(1_700_000_000_000)
    raw = signed("wrong-secret", clock.now_ms())
    assert code_of(auth.verify_rest, DOC_KEY, raw, "", parse(raw)) == (-1022, 400, "Signature for this request is not valid.")
    payload = f"symbol=BTCUSDT&note=\u00e9&timestamp={clock.now_ms()}"
    raw = payload + "&signature=" + signing.hmac_sha256(DOC_SECRET, payload)
    assert code_of(auth.verify_rest, DOC_KEY, raw, "", parse(raw))[0] == -1022


def test_timestamp_ahead_boundary():
    auth, clock = make(1_700_000_000_000)
    now = clock.now_ms()
    ok = signed(DOC_SECRET, now + 999)
    assert auth.verify_rest(DOC_KEY, ok, "", parse(ok)) == DOC_KEY
    ahead = signed(DOC_SECRET, now + 1000)
    assert code_of(auth.verify_rest, DOC_KEY, ahead, "", parse(ahead)) == (
        -1021, 400, "Timestamp for this request was 1000ms ahead of the server's time.")


def test_recv_window_default_and_boundaries():
    auth, clock = make(1_700_000_000_000)
    now = clock.now_ms()
    ok = signed(DOC_SECRET, now - 5000)
    assert auth.verify_rest(DOC_KEY, ok, "", parse(ok)) == DOC_KEY
    late = signed(DOC_SECRET, now - 5001)
    assert code_of(auth.verify_rest, DOC_KEY, late, "", parse(late)) == (
        -1021, 400, "Timestamp for this request is outside of the recvWindow.")
    wide = signed(DOC_SECRET, now - 59_000, recvWindow=60000)
    assert auth.verify_rest(DOC_KEY, wide, "", parse(wide)) == DOC_KEY
    frac = signed(DOC_SECRET, now - 5000, recvWindow="4999.999")
    assert code_of(auth.verify_rest, DOC_KEY, frac, "", parse(frac))[0] == -1021
    too_wide = signed(DOC_SECRET, now, recvWindow=60001)
    assert code_of(auth.verify_rest, DOC_KEY, too_wide, "", parse(too_wide))[:2] == (-1131, 400)
    garbage = signed(DOC_SECRET, now, recvWindow="abc")
    assert code_of(auth.verify_rest, DOC_KEY, garbage, "", parse(garbage))[0] == -1102


def test_microsecond_timestamps():
    auth, clock = make(1_700_000_000_000)
    raw = signed(DOC_SECRET, clock.now_ms() * 1000 - 1500_000)   # 1.5 s ago, in µs
    assert auth.verify_rest(DOC_KEY, raw, "", parse(raw)) == DOC_KEY


def test_server_clock_skew_moves_the_window():
    auth, clock = make(1_700_000_000_000)
    raw = signed(DOC_SECRET, clock.now_ms())
    clock.skew_ms = 6000
    assert code_of(auth.verify_rest, DOC_KEY, raw, "", parse(raw))[0] == -1021


def test_verify_ws_sorted_payload_hmac_and_ed25519():
    auth, clock = make(1_700_000_000_000)
    params = {"symbol": "BTCUSDT", "apiKey": DOC_KEY, "timestamp": clock.now_ms(), "newOrderRespType": "ACK"}
    payload = signing.ws_api_payload(params)
    assert payload.startswith("apiKey=") and payload.index("newOrderRespType") < payload.index("symbol")
    params["signature"] = signing.hmac_sha256(DOC_SECRET, payload)
    assert auth.verify_ws(params) == DOC_KEY
    ed = {"apiKey": DEMO_ED25519_API_KEY, "timestamp": clock.now_ms()}
    ed["signature"] = signing.ed25519_sign(DEMO_ED25519_PRIVATE_PEM, signing.ws_api_payload(ed))
    assert auth.verify_ws(ed) == DEMO_ED25519_API_KEY
    assert code_of(auth.verify_ws, {**params, "symbol": "ETHUSDT"})[0] == -1022
    assert code_of(auth.verify_ws, {k: v for k, v in params.items() if k != "apiKey"})[0] == -2015
    assert code_of(auth.verify_ws, {k: v for k, v in params.items() if k != "signature"})[0] == -1102
    old = {"apiKey": DOC_KEY, "timestamp": clock.now_ms() - 10_000}
    old["signature"] = signing.hmac_sha256(DOC_SECRET, signing.ws_api_payload(old))
    assert code_of(auth.verify_ws, old)[0] == -1021


def test_accounts_from_config_mapping():
    cfg = from_mapping({"accounts": [{"api_key": "k1", "secret": "s1"}]})
    auth = Auth(cfg, ManualClock())
    assert auth.check_api_key("k1") == "k1"
    assert auth.account_for_key(DOC_KEY) is None
