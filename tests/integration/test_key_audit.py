"""``letrade-perf check``'s API-key audit: real ``check`` subprocesses against one real simulator whose
key status changes between runs through ``PUT /_sim/key``; the rules themselves at the function level."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from letrade_perf.check import FAIL, PASS, SKIP, WARN, Client, audit_key, exit_code
from letrade_perf.config.credentials import Credentials
from letrade_perf.config.environments import environment
from letrade_perf.core.secrets import Secret
from letrade_perf.keyaudit import Answer, audit
from letrade_perf.sim.config import DEMO_API_KEY, DEMO_SECRET
from simproc import start_sim

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAY_MS = 86_400_000
ROW = re.compile(r"^(\S+(?: \S+)?)\s{2,}(PASS|FAIL|WARN|SKIP)\s{2,}(.*)$")


@pytest.fixture(scope="module")
def sim():
    p = start_sim()
    yield p
    p.stop()


def _set_key(sim, **fields) -> None:
    r = sim.control("PUT", "key", {"api_key": DEMO_API_KEY, "reset": True, **fields})
    assert r.status == 200, r.body


def _check(sim, *args) -> tuple[int, dict[str, tuple[str, str]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BINANCE_")}   # the sim's demo key
    r = subprocess.run([sys.executable, "-m", "letrade_perf", "check", "--env", "sim", "--host", sim.base_url, *args],
                       capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    out = r.stdout + r.stderr
    assert "Traceback" not in out and DEMO_API_KEY not in out and DEMO_SECRET not in out, out
    rows = {}
    for line in r.stdout.splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3))
    return r.returncode, rows, r.stdout


def _server_ms(sim) -> int:
    return sim.control("GET", "health").json()["serverTime"]


def test_a_least_privilege_key_passes(sim):
    _set_key(sim)
    code, rows, out = _check(sim)
    assert code == 0, out
    assert rows["key audit"][0] == PASS and "least privilege" in rows["key audit"][1]
    assert rows["trading lock"] == (PASS, "API trading not locked; trigger thresholds: GCR 150, IFER 150, UFR 300 "
                                          "(GTC cancellation, IOC/FOK expiration and unfilled ratios)")
    assert rows["account status"] == (PASS, "Normal")
    assert rows["account"][0] == PASS and rows["market data"][0] == PASS        # the other rows still work


def test_funds_moving_permissions_a_lock_and_a_flagged_account_fail(sim):
    recover = _server_ms(sim) + 3 * 3_600_000
    _set_key(sim, enable_withdrawals=True, enable_internal_transfer=True, permits_universal_transfer=True,
             enable_margin=True, enable_futures=True, enable_vanilla_options=True,
             enable_portfolio_margin_trading=True, is_locked=True, planned_recover_time=recover,
             account_status="Frozen")
    code, rows, out = _check(sim)
    assert code == 2, out
    boxes = {"withdrawals": "Enable Withdrawals", "internal transfer": "Enable Internal Transfer",
             "universal transfer": "Permits Universal Transfer", "margin": "Enable Margin Loan, Repay & Transfer",
             "futures": "Enable Futures", "options": "Enable Vanilla Options",
             "portfolio margin": "Enable Portfolio Margin Trading"}
    for row, box in boxes.items():
        level, detail = rows[row]
        assert level == FAIL and f"API Management → Edit restrictions → untick '{box}'" in detail, (row, out)
    assert "key audit" not in rows                           # findings replace the clean summary
    level, detail = rows["trading lock"]
    assert level == FAIL and re.search(r"it recovers at \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 2 h 59 min\)|"
                                       r"it recovers at \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 3 h 0 min\)", detail), detail
    assert "GCR 150" in detail
    assert rows["account status"][0] == FAIL and "'Frozen', not 'Normal'" in rows["account status"][1]
    assert f"{sum(v[0] == FAIL for v in rows.values())} check(s) failed" in out


def test_no_ip_restriction_a_near_expiry_and_fix_warn(sim):
    _set_key(sim, ip_restrict=False, trading_authority_expiration_time=_server_ms(sim) + 5 * DAY_MS + 3_600_000,
             enable_fix_api_trade=True, enable_fix_read_only=True)
    code, rows, out = _check(sim)
    assert code == 0, out                                    # warnings alone pass
    assert rows["IP restriction"][0] == WARN and "Restrict access to trusted IPs only" in rows["IP restriction"][1]
    level, detail = rows["trading expiry"]
    assert level == WARN and "(in 5 d 0 h), within 30 days" in detail and "API Management" in detail, detail
    assert rows["FIX trading"][0] == WARN and "untick 'Enable FIX API Trade'" in rows["FIX trading"][1]
    assert rows["FIX read-only"][0] == WARN
    assert rows["trading lock"][0] == PASS and rows["account status"][0] == PASS


def test_the_expiry_window_is_an_option(sim):
    _set_key(sim, trading_authority_expiration_time=_server_ms(sim) + 60 * DAY_MS)
    code, rows, out = _check(sim, "--expiry-warn-days", "90")
    assert code == 0 and rows["trading expiry"][0] == WARN and "within 90 days" in rows["trading expiry"][1], out


def test_a_key_that_cannot_read_fails_with_both_causes(sim):
    _set_key(sim, enable_reading=False)
    try:
        code, rows, out = _check(sim)
    finally:
        _set_key(sim)
    assert code == 2, out
    level, detail = rows["key audit"]
    assert level == FAIL and "-2015" in detail
    assert "tick 'Enable Reading'" in detail and "IP is not in the key's allowlist" in detail
    assert "trading lock" not in rows and rows["account"][0] == PASS


# -- the rules at the function level (no network) ------------------------------------------------------
def test_testnet_skips_the_audit_without_a_request():
    creds = Credentials("k" * 64, "HMAC", Secret("s" * 64))
    client = Client(environment("testnet", "http://127.0.0.1:9"), creds)   # nothing listens there; no call is made
    rows = audit_key(client)
    assert [(r.check, r.result, r.detail) for r in rows] == [
        ("key audit", SKIP, "testnet has no /sapi: key audit skipped")]
    assert exit_code(rows) == 0


CLEAN = {"ipRestrict": True, "enableReading": True, "enableSpotAndMarginTrading": True, "enableWithdrawals": False}
NOW = 1_800_000_000_000


def _answers(restrictions: dict) -> dict[str, Answer]:
    return {"/sapi/v1/account/apiRestrictions": Answer(restrictions, None, ""),
            "/sapi/v1/account/apiTradingStatus": Answer({"data": {"isLocked": False, "plannedRecoverTime": 0,
                                                                  "triggerCondition": {"GCR": 1}}}, None, ""),
            "/sapi/v1/account/status": Answer({"data": "Normal"}, None, "")}


@pytest.mark.parametrize("expiry,level", [(NOW + 29 * DAY_MS, WARN), (NOW + 31 * DAY_MS, None), (NOW - 1, FAIL)])
def test_the_expiry_rule(expiry, level):
    answers = _answers({**CLEAN, "tradingAuthorityExpirationTime": expiry})
    rows = {f.check: f.level for f in audit(answers.__getitem__, NOW, 30)}
    assert rows.get("trading expiry") == level
    assert rows.get("key audit") == (PASS if level is None else None)


def test_spot_trading_off_fails():
    answers = _answers({**CLEAN, "enableSpotAndMarginTrading": False})
    rows = {f.check: (f.level, f.detail) for f in audit(answers.__getitem__, NOW)}
    assert rows["spot trading"][0] == FAIL and "tick 'Enable Spot & Margin Trading'" in rows["spot trading"][1]
