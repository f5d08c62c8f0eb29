"""The API-key audit of ``letrade-perf check``: what the three ``/sapi`` status calls (reference §12)
say about the key, as findings with a level and what to change on Binance's API Management page.

Pure: :func:`audit` takes a ``get(path) -> Answer`` function (``check`` passes its signed client)
and the server's time, so every rule is testable without a network. The key and secret never
appear in a finding.

Levels (README "Key audit" has the table):

* FAIL — the key can move funds or open leveraged exposure a spot load test never needs:
  withdrawals, internal transfer, universal transfer, margin, futures, vanilla options, portfolio
  margin; spot trading off or its trading authority expired; the account's API trading locked;
  an account status other than ``Normal``; -2015 (no Reading permission, or this machine's IP is
  not in the key's allowlist).
* WARN — no IP restriction; a trading-authority expiry within ``expiry_warn_days``; FIX API
  trading or FIX read-only enabled (another way in that this harness does not use: least
  privilege, but no funds leave the spot wallet through it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

RESTRICTIONS = "/sapi/v1/account/apiRestrictions"
TRADING_STATUS = "/sapi/v1/account/apiTradingStatus"
ACCOUNT_STATUS = "/sapi/v1/account/status"
PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
DAY_MS = 86_400_000
EDIT = "API Management → Edit restrictions → "


@dataclass(frozen=True)
class Answer:
    """One ``/sapi`` answer: the decoded body, or the Binance error ``code`` and a printable ``error``."""

    data: Any
    code: int | None
    error: str


@dataclass(frozen=True)
class Finding:
    """One row of the audit: check name, level, and the detail (what is wrong, what to change)."""

    check: str
    level: str
    detail: str


#: Permission flags that must be off: (field, row name, level, the API Management box, why).
FLAGS: tuple[tuple[str, str, str, str, str], ...] = (
    ("enableWithdrawals", "withdrawals", FAIL, "Enable Withdrawals",
     "a leaked key could withdraw the account's funds"),
    ("enableInternalTransfer", "internal transfer", FAIL, "Enable Internal Transfer",
     "a leaked key could move funds to other (sub-)accounts"),
    ("permitsUniversalTransfer", "universal transfer", FAIL, "Permits Universal Transfer",
     "a leaked key could move funds between wallets, out of the audited spot wallet"),
    ("enableMargin", "margin", FAIL, "Enable Margin Loan, Repay & Transfer",
     "a leaked key could borrow and trade on margin"),
    ("enableFutures", "futures", FAIL, "Enable Futures",
     "a leaked key could open leveraged futures positions"),
    ("enableVanillaOptions", "options", FAIL, "Enable Vanilla Options",
     "a leaked key could trade options (leveraged, outside spot)"),
    ("enablePortfolioMarginTrading", "portfolio margin", FAIL, "Enable Portfolio Margin Trading",
     "a leaked key could borrow through the portfolio-margin account"),
    ("enableFixApiTrade", "FIX trading", WARN, "Enable FIX API Trade",
     "orders through FIX bypass this harness's pacing and ledger; keep it only if your system trades over FIX"),
    ("enableFixReadOnly", "FIX read-only", WARN, "Enable FIX Read Only",
     "an access path this harness does not use (least privilege)"),
)


def when(ms: float, now_ms: float) -> str:
    """``2026-12-05 14:00 UTC (in 2 d 3 h)`` — an absolute UTC time and its distance from now."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))
    delta = int((ms - now_ms) // 60_000)
    span = abs(delta)
    d, rest = divmod(span, 1440)
    h, m = divmod(rest, 60)
    text = f"{d} d {h} h" if d else (f"{h} h {m} min" if h else f"{m} min")
    return f"{stamp} ({'in ' + text if delta >= 0 else text + ' ago'})"


def _restriction_findings(r: dict, now_ms: float, warn_days: float) -> list[Finding]:
    out = [Finding(name, level, f"{field}=true: {why}. Change: {EDIT}untick '{box}'")
           for field, name, level, box, why in FLAGS if r.get(field) is True]
    if r.get("enableSpotAndMarginTrading") is False:
        out.append(Finding("spot trading", FAIL, "enableSpotAndMarginTrading=false: the key cannot place spot "
                           f"orders. Change: {EDIT}tick 'Enable Spot & Margin Trading'"))
    if r.get("ipRestrict") is False:
        out.append(Finding("IP restriction", WARN, "ipRestrict=false: the key works from any IP address. "
                           f"Change: {EDIT}select 'Restrict access to trusted IPs only' and add this machine's "
                           "public IP"))
    expiry = r.get("tradingAuthorityExpirationTime")
    if isinstance(expiry, int) and not isinstance(expiry, bool) and expiry > 0:
        renew = (f"Change: {EDIT}restrict the key to trusted IPs, or renew the trading permission "
                 "('Enable Spot & Margin Trading') before it lapses")
        if expiry <= now_ms:
            out.append(Finding("trading expiry", FAIL, f"the key's trading authority expired at "
                               f"{when(expiry, now_ms)}: it cannot trade. {renew}"))
        elif expiry - now_ms <= warn_days * DAY_MS:
            out.append(Finding("trading expiry", WARN, f"the key's trading authority expires at "
                               f"{when(expiry, now_ms)}, within {warn_days:g} days. {renew}"))
    return out


def _clean_summary(r: dict, now_ms: float) -> str:
    expiry = r.get("tradingAuthorityExpirationTime")
    lapse = (f"trading authority until {when(expiry, now_ms)}" if isinstance(expiry, int) and expiry > 0
             else "no trading-authority expiry")
    return ("least privilege: reading and spot trading on; withdrawals, transfers, margin, futures, options, "
            f"portfolio margin and FIX off; IP-restricted; {lapse}")


def _no_access(path: str, a: Answer) -> Finding:
    if a.code == -2015:
        return Finding("key audit", FAIL, f"GET {path}: {a.error} — either the key lacks the Reading permission "
                       f"(change: {EDIT}tick 'Enable Reading'), or this machine's IP is not in the key's allowlist "
                       f"(change: {EDIT}add this machine's public IP under 'Restrict access to trusted IPs only')")
    return Finding("key audit", FAIL, f"GET {path}: {a.error}")


def audit(get: Callable[[str], Answer], now_ms: float,
          expiry_warn_days: float = 30) -> list[Finding]:
    """Call the three endpoints through ``get`` and return the findings (PASS rows when clean).

    Stops at the first call that fails (the key cannot read: the others would fail alike)."""
    a = get(RESTRICTIONS)
    if not isinstance(a.data, dict):
        return [_no_access(RESTRICTIONS, a) if a.error else
                Finding("key audit", FAIL, f"GET {RESTRICTIONS}: unexpected answer")]
    rows = _restriction_findings(a.data, now_ms, expiry_warn_days) or [
        Finding("key audit", PASS, _clean_summary(a.data, now_ms))]

    t = get(TRADING_STATUS)
    data = t.data.get("data") if isinstance(t.data, dict) else None
    if not isinstance(data, dict):
        return rows + [_no_access(TRADING_STATUS, t) if t.error else
                       Finding("trading lock", FAIL, f"GET {TRADING_STATUS}: unexpected answer")]
    cond = data.get("triggerCondition") or {}
    rules = ("trigger thresholds: " + ", ".join(f"{k} {cond[k]}" for k in ("GCR", "IFER", "UFR") if k in cond)
             + " (GTC cancellation, IOC/FOK expiration and unfilled ratios)") if cond else "no trigger thresholds"
    if data.get("isLocked") is True:
        recover = data.get("plannedRecoverTime")
        until = (f"it recovers at {when(recover, now_ms)}" if isinstance(recover, int) and recover > 0
                 else "no planned recovery time given")
        rows.append(Finding("trading lock", FAIL, f"Binance's trading rules locked this account's API trading; "
                            f"{until}. API Management cannot lift it: wait, and cancel, expire and leave "
                            f"unfilled fewer orders; {rules}"))
    else:
        rows.append(Finding("trading lock", PASS, f"API trading not locked; {rules}"))

    s = get(ACCOUNT_STATUS)
    status = s.data.get("data") if isinstance(s.data, dict) else None
    if not isinstance(status, str):
        return rows + [_no_access(ACCOUNT_STATUS, s) if s.error else
                       Finding("account status", FAIL, f"GET {ACCOUNT_STATUS}: unexpected answer")]
    if status != "Normal":
        rows.append(Finding("account status", FAIL, f"the account status is {status[:64]!r}, not 'Normal': the "
                            "account is flagged. API Management cannot change it: see the account's security "
                            "notifications or contact Binance support"))
    else:
        rows.append(Finding("account status", PASS, "Normal"))
    return rows
