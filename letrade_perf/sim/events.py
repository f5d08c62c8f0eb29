"""In-process event hub between the matching engine and the WebSocket layers.

The engine publishes; the stream server and the user-data layer subscribe. Callbacks run
synchronously in the event loop thread, so they must be cheap (append to a buffer, schedule
a send) and must never raise into the engine.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One trade as the engine printed it (prices/quantities already formatted strings)."""

    symbol: str
    trade_id: int
    price: str
    qty: str
    quote_qty: str
    time_ms: int
    buyer_is_maker: bool
    agg_id: int


@dataclass(frozen=True, slots=True)
class BookChange:
    """Changed price levels of one book update: ``bids``/``asks`` are ``[[price, qty], ...]``,
    qty ``"0"`` removes a level. ``first_update_id``..``last_update_id`` is its id range."""

    symbol: str
    first_update_id: int
    last_update_id: int
    bids: list
    asks: list
    time_ms: int


class EventHub:
    """Synchronous publish/subscribe for trades, book changes and per-account user-data events."""

    def __init__(self):
        self._trade: list[Callable[[TradeEvent], None]] = []
        self._book: list[Callable[[BookChange], None]] = []
        self._user: list[Callable[[str, dict], None]] = []

    def on_trade(self, fn: Callable[[TradeEvent], None]) -> None:
        self._trade.append(fn)

    def on_book(self, fn: Callable[[BookChange], None]) -> None:
        self._book.append(fn)

    def on_user(self, fn: Callable[[str, dict], None]) -> None:
        """``fn(account_id, event)`` for executionReport / outboundAccountPosition / balanceUpdate."""
        self._user.append(fn)

    def _dispatch(self, fns, *args) -> None:
        for fn in fns:
            try:
                fn(*args)
            except Exception:  # a broken subscriber must not break the engine
                log.exception("event subscriber failed")

    def trade(self, ev: TradeEvent) -> None:
        if self._trade:
            self._dispatch(self._trade, ev)

    def book(self, ev: BookChange) -> None:
        if self._book:
            self._dispatch(self._book, ev)

    def user(self, account_id: str, event: dict) -> None:
        if self._user:
            self._dispatch(self._user, account_id, event)
