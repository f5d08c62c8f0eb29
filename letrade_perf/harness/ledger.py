"""The run's orders: a process-wide ledger with exact outcome counts, and the kill switch.

Every order the run sends is entered under its own ``newClientOrderId`` *before* it is sent, so
an order whose status is unknown (HTTP 5xx, -1006/-1007/-1008, a timeout) can be resolved by
``GET /api/v3/order?origClientOrderId=`` and is never counted twice: each order moves through
``pending → placed | rejected | unknown`` and ends in exactly one outcome.

Counts (:meth:`OrderLedger.counts`):

* ``sent`` — orders handed to the exchange (every entry);
* ``placed`` — orders the exchange accepted (a success response, or an unknown status resolved
  to an existing order); equals the simulator's ``orders.by_status`` total;
* ``filled`` — orders that ended FILLED; ``expired`` / ``canceled`` likewise;
* ``rejected`` — orders the exchange refused with a 4xx;
* ``unknown`` — orders whose first answer was "status unknown";
* ``unknown_resolved`` — those resolved by a query (executed or not);
* ``not_executed`` — unknown orders the exchange never executed (-2013 on the query);
* ``refused`` — orders the harness refused before sending (safety, caps); not in ``sent``;
* ``blocked`` — orders held back while an operator blocked new orders; not in ``sent``.

The run cap (``safety.max_run_notional``) limits the run's **net exposure**, not its turnover:
per symbol, the quote value bought minus the quote value sold, summed over symbols as absolute
values. A strategy that buys and then sells nets out and trades for as long as the run lasts; a
runaway buyer (or seller) is stopped once its open position would pass the cap. The accounting is
worst-case: an order counts in its own direction from the moment the gate reserves it, and counts
as closing a position only once its execution is known (FILLED, or :meth:`OrderLedger.executed`);
an order that ended without a known executed amount (EXPIRED, CANCELED, unknown) keeps counting
in its own direction. An order that would not increase the exposure (it closes a position) always
passes the cap. Turnover is bounded elsewhere: ``max_order_notional`` per order, ``max_orders``
per strategy, and the exchange's order-rate limits that the pacer keeps to.

The run's **net position** (:meth:`OrderLedger.net_positions`) is per symbol the base quantity
executed bought minus sold, from the executed quantities the answers show (an order's own answer,
a query, a cancel: ``executedQty`` / ``cummulativeQuoteQty``; the user-data stream's fills through
:meth:`OrderLedger.executed`). It is kept as the answers arrive (no scan per call); orders that
may have executed but whose quantity no answer has shown are :meth:`OrderLedger.unknown_executions`.
The flatten step (:mod:`letrade_perf.harness.flatten`) trades it back.

The kill switch (:func:`cancel_open_orders`) cancels every order of the run that may still be
open — one ``DELETE /api/v3/order?origClientOrderId=`` per order, never
``DELETE /api/v3/openOrders`` (which would also cancel orders the run did not place).

**Bounded memory.** The ledger holds in full (:class:`OrderRecord`) every order that may still
change: open, pending, of unknown status, or finished without what flatten and fund safety still
need (its executed quantity, its ``orderId``). An order that is final and complete is *retired*:
it stays in full among the :data:`MAX_RETIRED_KEPT` most recently retired (so a late answer — the
user-data stream's fills after the REST answer, a cancel's release — still finds it), then rolls
up into 8 bytes: its ``orderId`` under ``(symbol, source)`` (:meth:`OrderLedger.order_sources`, what
fund safety matches the run's fills by). Everything else of a retired order is already in the
aggregates (counts, counts by source, turnover, exposure, net positions), which stay exact. So a
day-long soak holds a few thousand records at most, however many orders it sends; an answer for
an order rolled up that long ago is ignored (counted in :attr:`OrderLedger.late_answers`).
"""
from __future__ import annotations

import logging
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, TypeVar

import gevent

T = TypeVar("T")

log = logging.getLogger(__name__)

PENDING = "pending"
OPEN = "open"
UNKNOWN = "unknown"
FINAL_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
#: Order statuses under which an order may still rest on the book.
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW"})

#: Retired orders (final and complete) kept in full, the most recent first to go last; older
#: ones roll up into their ``orderId`` (see the module docstring).
MAX_RETIRED_KEPT = 1024
#: outcomes of orders the exchange never had (nothing to look up, nothing executed)
_NEVER_PLACED = frozenset({"rejected", "not_executed"})

COUNT_KEYS = ("sent", "placed", "filled", "partially_filled", "expired", "canceled", "rejected", "unknown",
              "unknown_resolved", "not_executed", "refused", "blocked")


@dataclass(slots=True)
class OrderRecord:
    """One order of the run, keyed by its client order id."""

    client_order_id: str
    symbol: str
    side: str
    source: str                      # "pipeline" | "ccxt" | ...
    via: str = "rest"                # "rest" | "ws_api" | "ccxt"
    state: str = PENDING             # pending | open | unknown | a final status | "not_executed" | "rejected"
    status: str | None = None        # last exchange status seen
    order_id: int | None = None
    was_unknown: bool = False
    #: the exchange showed the order PARTIALLY_FILLED (counted ``partially_filled`` once)
    was_partial: bool = False
    placed: bool = False
    notional: Decimal = Decimal(0)
    outcome: str | None = None       # the final outcome counted
    #: quote value executed, once known (FILLED: the order's notional; or :meth:`OrderLedger.executed`);
    #: None while unknown — the order then counts in its own direction in the run's exposure
    executed_notional: Decimal | None = None
    #: the order no longer counts in the exposure (rejected, never executed)
    void: bool = False
    #: base quantity executed so far (cumulative), once an answer or the fills showed it; None: not known
    executed_qty: Decimal | None = None
    #: quote quantity executed so far (``cummulativeQuoteQty``), when shown; None: not known
    executed_quote: Decimal | None = None


#: a reservation's direction: (symbol, side); None: undirected
_Key = tuple[str | None, str | None]


class OrderLedger:
    """Process-wide record of the run's orders and the run cap on net exposure.

    ``max_run_notional`` caps the run's net exposure (see the module docstring):
    :meth:`reserve_notional` refuses an order that would take it past the cap, unless the order
    does not increase it. ``run_notional`` is the run's turnover (gross notional of the orders
    reserved and not given back) and ``exposure()`` the net exposure the cap is judged on.

    In a distributed run each worker holds its own ledger; ``cap_share`` (the worker's pacing
    share) scales the run cap so the workers together stay near ``max_run_notional``.

    ``on_outcome(record, outcome)`` is called once per counted transition (the plugin fires the
    ``letrade_order`` event from it). All methods are safe to call from any greenlet.
    """

    def __init__(self, max_run_notional: Decimal | float | str | None = None,
                 on_outcome: Callable[[OrderRecord, str], None] | None = None,
                 cap_share: Callable[[], float] | None = None, max_retired_kept: int = MAX_RETIRED_KEPT):
        self._lock = threading.RLock()
        #: orders that may still change (open, pending, unknown, or final but not complete)
        self._orders: dict[str, OrderRecord] = {}
        #: retired orders kept in full, oldest first (at most ``max_retired_kept``)
        self._retired: OrderedDict[str, OrderRecord] = OrderedDict()
        self.max_retired_kept = max(0, int(max_retired_kept))
        #: orderIds of the orders rolled up, by (symbol, source)
        self._rolled: dict[tuple[str, str], array] = {}
        #: orders rolled up (their records dropped)
        self.rolled_up = 0
        #: answers for orders no longer held (rolled up long ago): ignored
        self.late_answers = 0
        #: every symbol the run sent an order on
        self._symbols: set[str] = set()
        self._counts = {k: 0 for k in COUNT_KEYS}
        self._by_source: dict[str, dict[str, int]] = {}
        self.max_run_notional = Decimal(str(max_run_notional)) if max_run_notional not in (None, 0, "0") else None
        #: turnover: gross notional reserved and not given back (reported; the cap is on exposure)
        self.run_notional = Decimal(0)
        #: reservations of orders not yet entered, by (symbol, side); (None, None): undirected
        self._held: dict[_Key, Decimal] = {}
        #: entered orders whose executed amount is not known, by (symbol, side)
        self._pending: dict[_Key, Decimal] = {}
        #: per symbol: quote value executed bought minus sold
        self._settled: dict[str, Decimal] = {}
        self.on_outcome = on_outcome
        #: this process's share of the run cap (a distributed worker: its pacing share)
        self.cap_share = cap_share
        #: per symbol: base quantity executed bought minus sold (of the executed quantities known)
        self._position: dict[str, Decimal] = {}
        #: greenlets sending an order right now (:func:`shielded`); the kill switch waits for them
        self.in_flight: set[Any] = set()

    # -- counting --------------------------------------------------------------------------
    def _count(self, rec: OrderRecord, key: str) -> None:
        self._counts[key] += 1
        src = self._by_source.setdefault(rec.source, {k: 0 for k in COUNT_KEYS})
        src[key] += 1
        if self.on_outcome is not None:
            try:
                self.on_outcome(rec, key)
            except Exception:  # a listener must not break order accounting
                log.exception("order outcome listener failed")

    # -- run notional and net exposure -----------------------------------------------------
    def _exposure(self, extra: _Key | None = None, amount: Decimal = Decimal(0)) -> Decimal:
        """Net exposure (worst case) with ``amount`` more reserved under ``extra``. Per symbol the
        larger of the long bound (settled + pending and reserved buys) and the short bound
        (−settled + pending and reserved sells); undirected reservations add in full."""
        held = dict(self._held)
        if extra is not None:
            held[extra] = held.get(extra, Decimal(0)) + amount
        symbols = set(self._settled)
        symbols.update(k[0] for k in held if k[0] is not None)
        symbols.update(k[0] for k in self._pending if k[0] is not None)
        zero = Decimal(0)
        total = zero
        for sym in symbols:
            net = self._settled.get(sym, zero)
            buys = self._pending.get((sym, "BUY"), zero) + held.get((sym, "BUY"), zero)
            sells = self._pending.get((sym, "SELL"), zero) + held.get((sym, "SELL"), zero)
            undirected = self._pending.get((sym, None), zero) + held.get((sym, None), zero)
            total += max(net + buys, sells - net, zero) + undirected
        return total + held.get((None, None), zero) + self._pending.get((None, None), zero)

    def exposure(self) -> Decimal:
        """The run's net exposure (quote asset) the cap is judged on."""
        with self._lock:
            return self._exposure()

    @staticmethod
    def _key(symbol: str | None, side: str | None) -> _Key:
        side = side.upper() if isinstance(side, str) else None
        if side not in ("BUY", "SELL"):
            side = None
        return (symbol, side) if symbol is not None else (None, None)

    def reserve_notional(self, notional: Decimal, symbol: str | None = None, side: str | None = None) -> bool:
        """Reserve ``notional`` of a ``side`` order on ``symbol`` (before it is sent); False
        (nothing reserved) if it would take the net exposure past the cap. An order that does not
        increase the exposure (it closes a position) always passes. Without a symbol and side the
        order counts in full, as if it only added exposure."""
        notional = Decimal(notional)
        key = self._key(symbol, side)
        with self._lock:
            if self.max_run_notional is not None:
                cap = self.max_run_notional
                if self.cap_share is not None:
                    cap = cap * Decimal(str(self.cap_share()))
                after = self._exposure(key, notional)
                if after > cap and after > self._exposure():
                    return False
            self._held[key] = self._held.get(key, Decimal(0)) + notional
            self.run_notional += notional
            return True

    def release_notional(self, notional: Decimal, symbol: str | None = None, side: str | None = None, *,
                         client_order_id: str | None = None) -> None:
        """Give back notional of an order that was never executed: a reservation whose order was
        never sent (``symbol``/``side`` as reserved), or, with ``client_order_id``, an entered
        order that ended without executing anything (a resting order cancelled unfilled)."""
        with self._lock:
            if client_order_id is not None:
                rec = self._find(client_order_id)
                if rec is not None:
                    if not rec.void:
                        self.run_notional = max(Decimal(0), self.run_notional - rec.notional)
                    self._settle(rec, None)
                    self._retire(rec)
                return
            self.run_notional = max(Decimal(0), self.run_notional - Decimal(notional))
            self._take_held(self._key(symbol, side), Decimal(notional))

    def _take_held(self, key: _Key, amount: Decimal) -> Decimal:
        """Take up to ``amount`` from the reservations under ``key`` (then the undirected ones);
        returns how much was found."""
        found = Decimal(0)
        for k in (key, (None, None)):
            have = self._held.get(k, Decimal(0))
            take = min(have, amount - found)
            if take > 0:
                self._held[k] = have - take
                found += take
            if found >= amount:
                break
        return found

    def executed(self, client_order_id: str, quote_notional: Decimal, base_qty: Decimal | None = None) -> None:
        """An order that has ended executed ``quote_notional`` (its fills' quote value, from the
        user-data stream or an answer): its exact contribution to the exposure. Ignored for an
        order not yet final (later fills would be missed). ``base_qty``: the base quantity it
        executed (the run's net position), recorded whether final or not."""
        with self._lock:
            rec = self._find(client_order_id)
            if rec is None:
                return
            if base_qty is not None:
                self._fill(rec, base_qty, quote_notional)
            if rec.outcome is not None:
                self._settle(rec, Decimal(quote_notional))
            self._retire(rec)

    def _fill(self, rec: OrderRecord, base_qty: Any, quote_qty: Any = None) -> None:
        """``rec`` has executed ``base_qty`` (cumulative, as ``executedQty``) so far: the net
        position moves by what is new. An answer older than one already seen (a smaller
        quantity) changes nothing; an undecodable one is ignored."""
        try:
            qty = base_qty if isinstance(base_qty, Decimal) else Decimal(str(base_qty))
            quote = None if quote_qty is None else (quote_qty if isinstance(quote_qty, Decimal)
                                                   else Decimal(str(quote_qty)))
        except (ArithmeticError, ValueError):
            return
        if not qty.is_finite() or qty < 0:
            return
        old = rec.executed_qty
        if old is not None and qty <= old:
            return
        rec.executed_qty = qty
        if quote is not None and quote.is_finite():
            rec.executed_quote = quote
        side = rec.side.upper() if isinstance(rec.side, str) else ""
        if side not in ("BUY", "SELL"):
            return
        delta = qty - (old or Decimal(0))
        self._position[rec.symbol] = self._position.get(rec.symbol, Decimal(0)) + (delta if side == "BUY" else -delta)

    def _settle(self, rec: OrderRecord, executed: Decimal | None) -> None:
        """Replace ``rec``'s contribution to the exposure: it executed ``executed`` (quote), or
        nothing at all (None: it no longer counts)."""
        if rec.void:
            return
        key = self._key(rec.symbol, rec.side)
        sign = Decimal(1) if key[1] == "BUY" else Decimal(-1)
        if rec.executed_notional is None:      # take out what it counted until now
            self._pending[key] = max(Decimal(0), self._pending.get(key, Decimal(0)) - rec.notional)
        else:
            self._settled[rec.symbol] -= sign * rec.executed_notional
        if executed is None:
            rec.void = True
        elif key[1] is None:                   # no side to net against: it keeps counting in full
            rec.notional = executed
            self._pending[key] = self._pending.get(key, Decimal(0)) + executed
        else:
            rec.executed_notional = executed
            self._settled[rec.symbol] = self._settled.get(rec.symbol, Decimal(0)) + sign * executed

    # -- transitions -----------------------------------------------------------------------
    def refused(self, symbol: str, side: str, source: str, reason: str) -> None:
        """An order the harness refused before sending (not entered in the ledger)."""
        with self._lock:
            rec = OrderRecord(f"refused:{reason}", symbol, side, source, outcome="refused")
            self._count(rec, "refused")

    def blocked(self, client_order_id: str, symbol: str, side: str, source: str, via: str = "rest",
                notional: Decimal | float | str = 0) -> None:
        """An order held back while new orders are blocked (an operator's block, not a safety
        cap; not entered in the ledger, nothing reserved)."""
        with self._lock:
            rec = OrderRecord(client_order_id, symbol, side, source, via, notional=Decimal(str(notional)),
                              outcome="blocked")
            self._count(rec, "blocked")

    def sent(self, client_order_id: str, symbol: str, side: str, source: str, via: str = "rest",
             notional: Decimal | float | str = 0) -> OrderRecord:
        """Enter an order just before it is sent."""
        with self._lock:
            if client_order_id in self._orders:
                raise ValueError(f"client order id {client_order_id!r} reused")
            if client_order_id in self._retired:
                raise ValueError(f"client order id {client_order_id!r} reused")
            rec = OrderRecord(client_order_id, symbol, side, source, via, notional=Decimal(str(notional)))
            self._orders[client_order_id] = rec
            self._symbols.add(symbol)
            key = self._key(symbol, side)
            self._take_held(key, rec.notional)     # the reservation becomes this order's
            self._pending[key] = self._pending.get(key, Decimal(0)) + rec.notional
            self._count(rec, "sent")
            return rec

    def get(self, client_order_id: str) -> OrderRecord | None:
        """The order's record while the ledger holds it (not once it rolled up)."""
        return self._find(client_order_id)

    def _find(self, client_order_id: str) -> OrderRecord | None:
        rec = self._orders.get(client_order_id)
        if rec is None:
            rec = self._retired.get(client_order_id)
        return rec

    def _require(self, client_order_id: str) -> OrderRecord | None:
        """The record of an order the caller entered: KeyError for an id never entered; None
        (counted late) when the ledger no longer holds it."""
        rec = self._find(client_order_id)
        if rec is None:
            if self.rolled_up:
                self.late_answers += 1
                log.debug("ledger: answer for %s, rolled up long ago: ignored", client_order_id)
                return None
            raise KeyError(client_order_id)
        return rec

    # -- retiring --------------------------------------------------------------------------
    @staticmethod
    def _complete(rec: OrderRecord) -> bool:
        """Final, and nothing the run still needs is missing: its executed quantity (flatten, net
        positions) and its ``orderId`` (fund safety) are known — or it never reached the exchange."""
        if rec.outcome is None or rec.state == UNKNOWN:
            return False
        if rec.outcome in _NEVER_PLACED or rec.outcome in ("refused", "blocked"):
            return True
        if not (rec.placed or rec.was_unknown or rec.state == PENDING):
            return True
        if rec.executed_qty is None and not rec.void:
            return False                      # an unknown execution (flatten queries it)
        return rec.order_id is not None       # fund safety matches fills by orderId

    def _retire(self, rec: OrderRecord) -> None:
        """Move a complete order out of the live set; roll the oldest retired ones up."""
        cid = rec.client_order_id
        if self._orders.get(cid) is not rec or not self._complete(rec):
            return
        del self._orders[cid]
        self._retired[cid] = rec
        while len(self._retired) > self.max_retired_kept:
            _cid, old = self._retired.popitem(last=False)
            self._roll_up(old)

    def _roll_up(self, rec: OrderRecord) -> None:
        if rec.order_id is not None:
            key = (rec.symbol, rec.source)
            ids = self._rolled.get(key)
            if ids is None:
                ids = self._rolled[key] = array("q")
            ids.append(int(rec.order_id))
        self.rolled_up += 1

    def retire(self, client_order_id: str) -> None:
        """Check again whether an order is complete (after a caller filled in its ``orderId``)."""
        with self._lock:
            rec = self._orders.get(client_order_id)
            if rec is not None:
                self._retire(rec)

    def set_order_id(self, client_order_id: str, order_id: int) -> None:
        """The exchange's ``orderId`` of an order, learned by a query outside the call path."""
        with self._lock:
            rec = self._find(client_order_id)
            if rec is not None and rec.order_id is None:
                rec.order_id = int(order_id)
                self._retire(rec)

    def accepted(self, client_order_id: str, status: str, order_id: int | None = None,
                 executed_qty: Any = None, executed_quote: Any = None) -> None:
        """The exchange accepted the order (success response or a resolved unknown); the
        answer's ``executedQty`` / ``cummulativeQuoteQty`` when it shows them."""
        with self._lock:
            rec = self._require(client_order_id)
            if rec is None:
                return
            if executed_qty is not None:
                self._fill(rec, executed_qty, executed_quote)
            if rec.order_id is None:
                rec.order_id = order_id
            if not rec.placed:
                rec.placed = True
                self._count(rec, "placed")
            self._status(rec, status)
            self._retire(rec)

    def status(self, client_order_id: str, status: str) -> None:
        """A later status of an accepted order (user data stream, query, cancel)."""
        with self._lock:
            rec = self._find(client_order_id)
            if rec is not None and rec.placed:
                self._status(rec, status)
                self._retire(rec)

    def _status(self, rec: OrderRecord, status: str) -> None:
        rec.status = status
        if status == "PARTIALLY_FILLED" and not rec.was_partial:
            rec.was_partial = True      # filled in several executions: counted once, whatever its end
            self._count(rec, "partially_filled")
        if rec.outcome is not None:
            return
        if status in OPEN_STATUSES:
            rec.state = OPEN
            return
        if status in FINAL_STATUSES:
            rec.state = status
            outcome = {"FILLED": "filled", "CANCELED": "canceled", "REJECTED": "rejected"}.get(status, "expired")
            rec.outcome = outcome
            if status == "FILLED" and rec.executed_notional is None:
                self._settle(rec, rec.notional)    # until the fills' exact value is known
            elif status == "REJECTED":
                self._settle(rec, None)
            self._count(rec, outcome)

    def rejected(self, client_order_id: str) -> None:
        """The exchange refused the order (4xx): it was never placed."""
        with self._lock:
            rec = self._require(client_order_id)
            if rec is None:
                return
            if rec.outcome is None and not rec.placed:
                rec.state = "rejected"
                rec.outcome = "rejected"
                self._count(rec, "rejected")
                self.run_notional = max(Decimal(0), self.run_notional - rec.notional)
                self._settle(rec, None)
                self._retire(rec)

    def unknown(self, client_order_id: str) -> None:
        """The exchange's answer left the status unknown; resolve with :meth:`resolved`."""
        with self._lock:
            rec = self._require(client_order_id)
            if rec is None:
                return
            if not rec.was_unknown:
                rec.was_unknown = True
                rec.state = UNKNOWN
                self._count(rec, "unknown")

    def resolved(self, client_order_id: str, status: str | None, order_id: int | None = None,
                 executed_qty: Any = None, executed_quote: Any = None) -> None:
        """An unknown order resolved by a query: ``status`` None means the exchange never had it."""
        with self._lock:
            rec = self._require(client_order_id)
            if rec is None or rec.state != UNKNOWN and rec.outcome is not None:
                return
            if rec.was_unknown and rec.state == UNKNOWN:
                self._count(rec, "unknown_resolved")
            if status is None:
                rec.state = "not_executed"
                rec.outcome = "not_executed"
                self._count(rec, "not_executed")
                self.run_notional = max(Decimal(0), self.run_notional - rec.notional)
                self._settle(rec, None)
                self._retire(rec)
            else:
                rec.state = PENDING
                self.accepted(client_order_id, status, order_id, executed_qty, executed_quote)

    def seen(self, client_order_id: str, status: str, order_id: int | None = None,
             executed_qty: Any = None, executed_quote: Any = None) -> None:
        """An exchange answer (a query, a cancel) showed the order with ``status`` (and the
        ``executedQty`` / ``cummulativeQuoteQty`` it shows): a later status of a placed order, or
        the resolution of one whose placement answer was unknown or has not arrived. Orders the
        run does not know are ignored."""
        with self._lock:
            rec = self._find(client_order_id)
            if rec is None:
                return
            if rec.state == UNKNOWN or not rec.placed:
                self.resolved(client_order_id, status, order_id, executed_qty, executed_quote)
            else:
                if executed_qty is not None:
                    self._fill(rec, executed_qty, executed_quote)
                if rec.order_id is None and order_id is not None:
                    rec.order_id = order_id
                self._status(rec, status)
                self._retire(rec)

    # -- views -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def counts_by_source(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {k: dict(v) for k, v in self._by_source.items()}

    def records(self) -> list[OrderRecord]:
        """Every order the ledger holds in full: every order that may still change and the
        :data:`MAX_RETIRED_KEPT` most recently retired (a copy of the list; the records are the
        ledger's own: read them, never change them). Orders rolled up are in
        :meth:`order_sources`, the counts and the aggregates."""
        with self._lock:
            return list(self._orders.values()) + list(self._retired.values())

    def order_sources(self) -> dict[tuple[str, int], str]:
        """(symbol, orderId) → source of every order of the run whose orderId is known, rolled up
        or held (what fund safety matches the run's fills by)."""
        with self._lock:
            out = {(sym, oid): src for (sym, src), ids in self._rolled.items() for oid in ids}
            for r in self._retired.values():
                if r.order_id is not None:
                    out[(r.symbol, r.order_id)] = r.source
            for r in self._orders.values():
                if r.order_id is not None:
                    out[(r.symbol, r.order_id)] = r.source
            return out

    def symbols(self) -> set[str]:
        """Every symbol the run sent an order on."""
        with self._lock:
            return set(self._symbols)

    def held(self) -> tuple[int, int]:
        """(orders that may still change, retired orders kept in full): what the ledger holds."""
        with self._lock:
            return len(self._orders), len(self._retired)

    def open_orders(self) -> list[OrderRecord]:
        """Orders of the run that may still be open: resting, pending or unresolved."""
        with self._lock:
            return [r for r in self._orders.values() if r.outcome is None]

    def open_order_ids(self) -> list[str]:
        return [r.client_order_id for r in self.open_orders()]

    def net_positions(self) -> dict[str, Decimal]:
        """Per symbol, the base quantity the run's orders executed bought minus sold (of the
        executed quantities known; see :meth:`unknown_executions`). Symbols the run has not
        traded are absent; a symbol traded back to flat shows 0."""
        with self._lock:
            return dict(self._position)

    def unknown_executions(self) -> list[OrderRecord]:
        """Orders that may have executed but whose executed quantity no answer has shown: filled
        or partly filled, ended (cancelled, expired) or still open without one, or of unknown
        status. Their quantities are missing from :meth:`net_positions` (a query of each —
        ``GET /api/v3/order`` on the call path — fills them in)."""
        with self._lock:
            return [r for r in self._orders.values()
                    if r.executed_qty is None and not r.void and r.outcome not in ("rejected", "not_executed")
                    and (r.placed or r.was_unknown or r.state == PENDING)]

    def snapshot(self) -> dict:
        """JSON-able summary: counts, counts by source, run notional and open order ids."""
        with self._lock:
            return {"counts": dict(self._counts), "by_source": self.counts_by_source(),
                    "run_notional": str(self.run_notional),
                    "run_exposure": str(self._exposure()),
                    "net_positions": {k: format(v.normalize(), "f") for k, v in self._position.items()},
                    "max_run_notional": None if self.max_run_notional is None else str(self.max_run_notional),
                    "open_orders": [{"clientOrderId": r.client_order_id, "symbol": r.symbol, "state": r.state}
                                    for r in self._orders.values() if r.outcome is None]}


def shielded(ledger: OrderLedger | None, send: Callable[[], T]) -> T:
    """Run ``send`` — an order leaving, its answer booked and measured — in a greenlet of its own
    that stopping the calling user cannot cut short: Locust kills a user's greenlet wherever it
    is, and an order cut between its ledger entry and the socket would be counted ``sent`` though
    it never left (or, cut after it left, never booked). The caller waits for the result; killed,
    it stops waiting and the send goes on. The kill switch waits for these first."""
    if ledger is None:
        return send()
    g = gevent.spawn(send)
    ledger.in_flight.add(g)
    g.link(ledger.in_flight.discard)
    return g.get()


def merge_counts(snapshots) -> dict[str, int]:
    """Sum the ``counts`` of several ledger snapshots (one per worker)."""
    total = {k: 0 for k in COUNT_KEYS}
    for snap in snapshots:
        for k, v in (snap or {}).get("counts", {}).items():
            total[k] = total.get(k, 0) + int(v)
    return total


@dataclass
class CancelReport:
    """What the kill switch did."""

    attempted: int = 0
    canceled: int = 0
    already_closed: int = 0
    failed: list[str] = field(default_factory=list)


#: The kill switch waits this long at most for an IP ban to end before it gives up.
MAX_BAN_WAIT_S = 30.0


#: answers the kill switch expects (the order is no longer open / never existed): not API failures
EXPECTED_CODES = (-2011, -2013)


def _call(ctx, client, method: str, path: str, params: dict, timeout_s: float, max_ban_wait_s: float):
    """One kill-switch call; while the IP is banned, wait for the ban to end if it is short."""
    from ..pacing import IpBanned

    try:
        return client.call(method, path, params, timeout=timeout_s, expected_codes=EXPECTED_CODES)
    except IpBanned as e:
        pacer = ctx.pacer
        wait_s = (e.until_ms - pacer.now_ms()) / 1000.0 if pacer is not None else max_ban_wait_s + 1
        if wait_s > max_ban_wait_s:
            raise
        log.warning("kill switch: IP banned, waiting %.1fs for the ban to end", wait_s)
        gevent.sleep(max(0.0, wait_s) + 0.5)
        return client.call(method, path, params, timeout=timeout_s, expected_codes=EXPECTED_CODES)


def cancel_open_orders(ctx, timeout_s: float = 10.0, max_ban_wait_s: float = MAX_BAN_WAIT_S) -> CancelReport:
    """Kill switch: cancel every order of the run that may still be open.

    One ``DELETE /api/v3/order?symbol=&origClientOrderId=`` per order through ``ctx.exchange``
    (a paced, signed process-level client on the one call path, which books each answer in the
    ledger). An order the exchange no longer knows as open (-2011) is looked up with
    ``GET /api/v3/order`` so the ledger ends exact. While the IP is
    banned (418) it waits for the ban to end when that is at most ``max_ban_wait_s`` away;
    orders still being sent (:func:`shielded`) are waited for (≤ ``timeout_s``) first;
    a longer ban leaves the orders listed as possibly open. Safe to call more than once;
    orders already final are skipped.
    """
    report = CancelReport()
    ledger = ctx.ledger
    client = getattr(ctx, "exchange", None)
    if ledger is None or client is None:
        return report
    sending = list(ledger.in_flight)
    if sending:      # orders leaving as their users were stopped: their answers first
        gevent.joinall(sending, timeout=timeout_s)
    for rec in ledger.open_orders():
        report.attempted += 1
        params = {"symbol": rec.symbol, "origClientOrderId": rec.client_order_id}
        try:
            res = _call(ctx, client, "DELETE", "/api/v3/order", params, timeout_s, max_ban_wait_s)
        except Exception as e:  # the kill switch goes on with the next order
            report.failed.append(f"{rec.client_order_id}: {type(e).__name__}: {e}")
            continue
        # the call path books what each answer shows (the cancel's CANCELED, the query's status)
        if res.ok:
            report.canceled += 1
            continue
        if res.code in (-2011, -2013):
            try:
                q = _call(ctx, client, "GET", "/api/v3/order", params, timeout_s, max_ban_wait_s)
            except Exception as e:
                report.failed.append(f"{rec.client_order_id}: {type(e).__name__}: {e}")
                continue
            if q.ok:
                report.already_closed += 1
                continue
            if q.code == -2013:
                report.already_closed += 1
                if rec.state == UNKNOWN or not rec.placed:
                    ledger.resolved(rec.client_order_id, None)
                continue
            report.failed.append(f"{rec.client_order_id}: query {q.status} {q.code} {q.msg}")
            continue
        report.failed.append(f"{rec.client_order_id}: cancel {res.status} {res.code} {res.msg}")
    if report.attempted:
        log.warning("kill switch: %d open order(s) of the run, %d canceled, %d already closed, %d failed",
                    report.attempted, report.canceled, report.already_closed, len(report.failed))
        for f in report.failed[:20]:
            log.warning("kill switch: %s", f)
    return report
