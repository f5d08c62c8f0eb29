"""Reconciliation: after an order, does the exchange agree with what the order said it did?"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

_FINAL_OK = {"FILLED"}


def _dec(v: Any) -> Decimal:
    return Decimal(str(v)) if v not in (None, "") else Decimal(0)


@dataclass
class AccountState:
    """What the code sharing one account shares: a lock around balance-changing work (so one
    order's balance change is not mixed with another's) and the last reconciled balance."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    balance: dict[str, Decimal] | None = None


_accounts: dict[tuple[int, str], AccountState] = {}


def account_state(key: str) -> AccountState:
    """The :class:`AccountState` of account ``key`` on the running event loop."""
    k = (id(asyncio.get_running_loop()), key)
    st = _accounts.get(k)
    if st is None:
        st = _accounts[k] = AccountState()
    return st


def expected_change(order_info: dict, base: str, quote: str) -> dict[str, Decimal]:
    """Balance change an order's fills imply: ± executed base, ∓ quote, minus commissions."""
    side = str(order_info.get("side", "")).upper()
    sign = 1 if side == "BUY" else -1
    out = {base: sign * _dec(order_info.get("executedQty")),
           quote: -sign * _dec(order_info.get("cummulativeQuoteQty"))}
    for f in order_info.get("fills") or ():
        asset = f.get("commissionAsset")
        if asset:
            out[asset] = out.get(asset, Decimal(0)) - _dec(f.get("commission"))
    return out


class Reconciler:
    """Checks one order against the exchange: status, filled amount, and the balance change."""

    def __init__(self, connector):
        self.connector = connector
        self.checked = 0
        self.mismatched = 0

    async def check(self, order: dict, symbol: str, balance_before: dict[str, Decimal], *,
                    expect_open: bool = False) -> tuple[list[str], dict[str, Decimal]]:
        """``order`` is what ``place_order`` returned (ccxt order, raw answer in ``info``).

        Returns ``(problems, balance_after)``; no problems = the exchange agrees."""
        problems: list[str] = []
        placed = order.get("info") or {}
        fetched = await self.connector.fetch_order(order["id"], symbol)
        got = fetched.get("info") or {}
        status = got.get("status")
        want_status = "NEW" if expect_open else "FILLED"
        if status != want_status:
            problems.append(f"status {status} != expected {want_status}")
        if expect_open:
            if _dec(got.get("executedQty")) != 0:
                problems.append(f"resting order executed {got.get('executedQty')}")
        else:
            if _dec(got.get("executedQty")) != _dec(got.get("origQty")):
                problems.append(f"executedQty {got.get('executedQty')} != origQty {got.get('origQty')}")
        for key in ("executedQty", "cummulativeQuoteQty"):
            if placed.get(key) is not None and _dec(placed.get(key)) != _dec(got.get(key)):
                problems.append(f"{key}: order answer {placed.get(key)} != query {got.get(key)}")
        fills = placed.get("fills") or []
        if sum((_dec(f.get("qty")) for f in fills), Decimal(0)) != _dec(got.get("executedQty")):
            problems.append("the order answer's fills do not add up to executedQty")

        after = await self.connector.fetch_balance()
        market = self.connector.market(symbol)
        base, quote = market["baseId"], market["quoteId"]
        for asset, want in expected_change(placed, base, quote).items():
            have = after.get(asset, Decimal(0)) - balance_before.get(asset, Decimal(0))
            if have != want:
                problems.append(f"{asset} changed {have} != fills-fees {want}")
        self.checked += 1
        if problems:
            self.mismatched += 1
        return problems, after
