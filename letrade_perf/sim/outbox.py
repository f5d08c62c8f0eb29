"""The operation bracket: events of one engine operation are buffered and flushed in Binance's order.

Every state-changing operation (an order, a cancel, a deposit, a market tick) runs between
:meth:`Outbox.begin` and :meth:`Outbox.end`; brackets nest and only the outermost ``end`` flushes:
first the changed books (by symbol), then the executionReports/balanceUpdates in the order they
were made, then one outboundAccountPosition per touched account.
"""
from __future__ import annotations

from typing import Any

from .events import EventHub
from .state import Account, Order, SymbolState, fmt_e8
from .stats import SimStats

_fmt = fmt_e8


class Outbox:
    """Per-operation event buffers and the operation's timestamp (:attr:`now`)."""

    def __init__(self, syms: dict[str, SymbolState], accounts: dict[str, Account], events: EventHub,
                 stats: SimStats, now: int):
        self._syms = syms
        self._accounts = accounts
        self.events = events
        self.stats = stats
        self.exec_id = 1
        self.depth = 0
        self.reports: list[tuple[str, dict[str, Any]]] = []
        self.touched: dict[str, set[str]] = {}
        self.books_touched: set[str] = set()
        self.now = now

    def begin(self, now: int) -> None:
        if self.depth == 0:
            self.now = now
        self.depth += 1

    def end(self) -> None:
        self.depth -= 1
        if self.depth:
            return
        now = self.now
        if self.books_touched:
            for sym in sorted(self.books_touched):
                bc = self._syms[sym].book.flush(now)
                if bc is not None:
                    self.events.book(bc)
            self.books_touched.clear()
        reports, self.reports = self.reports, []
        touched, self.touched = self.touched, {}
        for acct_id, ev in reports:
            self.events.user(acct_id, ev)
        for acct_id, assets in touched.items():
            a = self._accounts[acct_id]
            a.update_time = now
            self.events.user(acct_id, {
                "e": "outboundAccountPosition", "E": now, "u": now,
                "B": [{"a": x, "f": _fmt(a.balances[x][0]), "l": _fmt(a.balances[x][1])} for x in sorted(assets)]})

    def touch(self, a: Account, asset: str) -> None:
        s = self.touched.get(a.api_key)
        if s is None:
            s = self.touched[a.api_key] = set()
        s.add(asset)

    def report(self, o: Order, x: str, *, last_qty: int = 0, last_price: int = 0, fee: int = 0,
               fee_asset: str | None = None, trade_id: int = -1, maker: bool = False, last_quote: int = 0,
               cancel_cid: str | None = None) -> None:
        """Buffer the executionReport of ``o`` for execution type ``x``."""
        now = self.now
        ev = {
            "e": "executionReport", "E": now, "s": o.symbol,
            "c": cancel_cid if cancel_cid is not None else o.client_id,
            "S": o.side, "o": o.type, "f": o.tif, "q": _fmt(o.qty), "p": _fmt(o.price), "P": _fmt(o.stop_price),
            "F": _fmt(o.iceberg), "g": -1, "C": o.client_id if cancel_cid is not None else "",
            "x": x, "X": o.status, "r": "NONE", "i": o.order_id, "l": _fmt(last_qty), "z": _fmt(o.executed),
            "L": _fmt(last_price), "n": _fmt(fee) if fee_asset is not None else "0", "N": fee_asset,
            "T": now, "t": trade_id, "I": self.exec_id,
            "w": o.entry is not None if x != "NEW" else (o.type in ("LIMIT", "LIMIT_MAKER") and o.tif == "GTC"),
            "m": maker, "M": False,
            "O": o.time, "Z": _fmt(o.cum_quote), "Y": _fmt(last_quote), "Q": _fmt(o.quote_qty),
            "W": o.working_time, "V": o.stp,
        }
        if o.strategy_id is not None:
            ev["j"] = o.strategy_id
        if o.strategy_type is not None:
            ev["J"] = o.strategy_type
        if x == "EXPIRED" and o.expiry_reason:
            ev["eR"] = o.expiry_reason
        self.exec_id += 1
        self.stats.order_events[x] += 1
        self.reports.append((o.account, ev))
