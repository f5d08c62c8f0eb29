"""The simulator's ``/sapi`` account and API-key status endpoints (reference §12): signed, weight 1,
a per-key restriction set from the config and from ``PUT /_sim/key``, -2015 without Reading."""
from __future__ import annotations

import pytest

from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET, SimConfigError, from_mapping, load
from simproc import start_sim
from test_openapi import validate

RESTRICTIONS = "/sapi/v1/account/apiRestrictions"
TRADING_STATUS = "/sapi/v1/account/apiTradingStatus"
STATUS = "/sapi/v1/account/status"
PATHS = (RESTRICTIONS, TRADING_STATUS, STATUS)
WIDE_KEY = "wideOpenKey000000000000000000000000000000000000000000000000000001"
WIDE_SECRET = "wideOpenSecret0001"
EXPIRY = 1_900_000_000_000


@pytest.fixture(scope="module")
def sim():
    p = start_sim({"accounts": [
        {"api_key": DEMO_API_KEY, "secret": DEMO_SECRET},
        {"api_key": WIDE_KEY, "secret": WIDE_SECRET,
         "key_status": {"enable_withdrawals": True, "ip_restrict": False, "create_time": 1_698_645_219_000,
                        "trading_authority_expiration_time": EXPIRY, "account_status": "Frozen"}},
    ]})
    yield p
    p.stop()


def _put(sim, **body):
    return sim.control("PUT", "key", body)


def test_defaults_are_a_least_privilege_spot_key(sim):
    r = sim.signed("GET", RESTRICTIONS)
    assert r.status == 200, r.body
    body = r.json()
    assert body.pop("createTime") > 1_600_000_000_000
    assert body == {"ipRestrict": True, "enableReading": True, "enableSpotAndMarginTrading": True,
                    "enableWithdrawals": False, "enableInternalTransfer": False, "permitsUniversalTransfer": False,
                    "enableMargin": False, "enableFutures": False, "enableVanillaOptions": False,
                    "enablePortfolioMarginTrading": False, "enableFixApiTrade": False, "enableFixReadOnly": False}
    data = sim.signed("GET", TRADING_STATUS).json()["data"]
    assert data["isLocked"] is False and data["plannedRecoverTime"] == 0
    assert data["triggerCondition"] == {"GCR": 150, "IFER": 150, "UFR": 300}
    assert isinstance(data["updateTime"], int)
    assert sim.signed("GET", STATUS).json() == {"data": "Normal"}


def test_answers_match_the_spec(sim):
    """Binance's OpenAPI schemas (with reference §12's optional fields), an expiry set and not set, locked."""
    for key, secret in ((DEMO_API_KEY, DEMO_SECRET), (WIDE_KEY, WIDE_SECRET)):
        for path in PATHS:
            validate("GET", path, sim.signed("GET", path, api_key=key, secret=secret))
    assert _put(sim, api_key=DEMO_API_KEY, is_locked=True, planned_recover_time=1_800_000_000_000).status == 200
    try:
        validate("GET", TRADING_STATUS, sim.signed("GET", TRADING_STATUS))
    finally:
        assert _put(sim, api_key=DEMO_API_KEY, reset=True).status == 200
    validate("GET", STATUS, sim.signed("GET", STATUS, secret="bad"))        # an error body


def test_config_sets_a_keys_status(sim):
    body = sim.signed("GET", RESTRICTIONS, api_key=WIDE_KEY, secret=WIDE_SECRET).json()
    assert body["enableWithdrawals"] is True and body["ipRestrict"] is False
    assert body["createTime"] == 1_698_645_219_000 and body["tradingAuthorityExpirationTime"] == EXPIRY
    assert sim.signed("GET", STATUS, api_key=WIDE_KEY, secret=WIDE_SECRET).json() == {"data": "Frozen"}
    # the other key is untouched
    assert "tradingAuthorityExpirationTime" not in sim.signed("GET", RESTRICTIONS).json()


@pytest.mark.parametrize("path", PATHS)
def test_a_signature_is_required(sim, path):
    r = sim.get(path)                                            # no key at all
    assert (r.status, r.json()["code"]) == (401, -2015)
    r = sim.get(path, {"timestamp": 1}, headers={"X-MBX-APIKEY": DEMO_API_KEY})    # no signature
    assert (r.status, r.json()["code"]) == (400, -1102)
    r = sim.signed("GET", path, secret="notTheSecret")
    assert (r.status, r.json()["code"]) == (400, -1022)


def test_each_call_weighs_one(sim):
    before = sim.stats()["requests"]["by_endpoint"]
    for path in PATHS:
        r = sim.signed("GET", path)
        assert r.status == 200 and int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 1
    after = sim.stats()["requests"]["by_endpoint"]
    for path in PATHS:
        name = f"GET {path}"
        was = before.get(name, {"count": 0, "weight": 0})
        assert (after[name]["count"] - was["count"], after[name]["weight"] - was["weight"]) == (1, 1)


def test_control_changes_and_resets_a_keys_status(sim):
    r = _put(sim, api_key=DEMO_API_KEY, enable_margin=True, enable_futures=True, is_locked=True,
             planned_recover_time=1_800_000_000_000)
    assert r.status == 200, r.body
    assert r.json()["enable_margin"] is True and r.json()["enable_withdrawals"] is False
    body = sim.signed("GET", RESTRICTIONS).json()
    assert body["enableMargin"] is True and body["enableFutures"] is True
    data = sim.signed("GET", TRADING_STATUS).json()["data"]
    assert data["isLocked"] is True and data["plannedRecoverTime"] == 1_800_000_000_000
    r = _put(sim, api_key=DEMO_API_KEY, enable_internal_transfer=True)      # changes add up
    assert r.json()["enable_margin"] is True and r.json()["enable_internal_transfer"] is True
    r = _put(sim, api_key=DEMO_API_KEY, reset=True)                         # back to the configuration
    assert r.json()["enable_margin"] is False and r.json()["is_locked"] is False
    view = sim.control("GET", f"key?api_key={DEMO_API_KEY}")
    assert view.status == 200 and view.json() == r.json()
    assert sim.signed("GET", RESTRICTIONS).json()["enableMargin"] is False


def test_a_key_without_reading_gets_2015_everywhere(sim):
    assert _put(sim, api_key=DEMO_API_KEY, enable_reading=False).status == 200
    try:
        for path in PATHS:
            r = sim.signed("GET", path)
            assert (r.status, r.json()) == (401, {"code": -2015,
                                                  "msg": "Invalid API-key, IP, or permissions for action."})
    finally:
        assert _put(sim, api_key=DEMO_API_KEY, reset=True).status == 200
    assert sim.signed("GET", STATUS).status == 200


@pytest.mark.parametrize("body,message", [
    ({"enable_margin": True}, "api_key: unknown account"),
    ({"api_key": "nobody", "enable_margin": True}, "api_key: unknown account"),
    ({"api_key": DEMO_API_KEY, "enable_margin": "yes"}, "key: enable_margin: expected true or false, got 'yes'"),
    ({"api_key": DEMO_API_KEY, "enable_everything": True}, "key: unknown key 'enable_everything' (allowed: "),
    ({"api_key": DEMO_API_KEY, "planned_recover_time": -5}, "key: planned_recover_time: must be a time in ms"),
    ({"api_key": DEMO_API_KEY, "trading_authority_expiration_time": 1.5},
     "key: trading_authority_expiration_time: expected an integer, got 1.5"),
    ({"api_key": DEMO_API_KEY, "account_status": ""}, "key: account_status: expected 1..64 printable characters"),
    ({"api_key": DEMO_API_KEY, "reset": "yes"}, "reset: expected true or false"),
])
def test_control_validation_names_the_key(sim, body, message):
    r = _put(sim, **body)
    assert r.status == 400 and message in r.json()["error"], r.json()
    assert sim.signed("GET", RESTRICTIONS).json()["enableMargin"] is False       # nothing changed


def test_control_needs_a_json_object_and_a_known_key(sim):
    r = sim.request("PUT", "/_sim/key", body=b"[1]", headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error"] == "expected a JSON object"
    r = sim.control("GET", "key?api_key=nobody")
    assert r.status == 400 and r.json()["error"] == "api_key: unknown account"


def test_config_validation_names_the_key_path(tmp_path):
    acct = {"api_key": DEMO_API_KEY, "secret": DEMO_SECRET}
    with pytest.raises(SimConfigError, match=r"^cfg: accounts\[0\]\.key_status\.enable_futures: expected true or "
                                             r"false, got 1$"):
        from_mapping({"accounts": [{**acct, "key_status": {"enable_futures": 1}}]}, "cfg")
    with pytest.raises(SimConfigError, match=r"unknown key 'accounts\[0\]\.key_status\.withdrawals'"):
        from_mapping({"accounts": [{**acct, "key_status": {"withdrawals": False}}]}, "cfg")
    with pytest.raises(SimConfigError, match=r"^cfg: accounts\[0\]\.key_status\.create_time: must be a time"):
        from_mapping({"accounts": [{**acct, "key_status": {"create_time": -1}}]}, "cfg")
    path = tmp_path / "sim.yaml"
    path.write_text(f"accounts:\n  - api_key: {DEMO_API_KEY}\n    secret: {DEMO_SECRET}\n"
                    "    key_status:\n      account_status: \"\"\n")
    with pytest.raises(SimConfigError, match=r"accounts\[0\]\.key_status\.account_status: expected 1\.\.64 .*line 5"):
        load(path)
    cfg = from_mapping({"accounts": [{**acct, "key_status": {"is_locked": True, "planned_recover_time": 5}}]})
    assert cfg.accounts[0].key_status.is_locked and cfg.accounts[0].key_status.enable_reading
