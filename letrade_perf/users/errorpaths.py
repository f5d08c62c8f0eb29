"""Error-path scenarios: requests the exchange must reject, each at its own rate, classified by code.

:class:`ErrorPathUser` (profile kind ``error_paths``) sends, through the one call path (paced like
every call; an order entered in the ledger with source ``error_path`` before it leaves), each
scenario of :data:`SCENARIOS` once per slot of its own schedule:

* ``lot_size`` — LIMIT IOC BUY, quantity half a step off ``stepSize`` (or above maxQty): ``-1013``;
* ``price_filter`` — LIMIT IOC SELL above ``maxPrice`` (or a BUY below ``minPrice``): ``-1013``;
* ``notional`` — LIMIT IOC BUY of the smallest quantity, below ``minNotional``: ``-1013``;
* ``tick_size`` — LIMIT IOC BUY half a tick off ``tickSize``: ``-1013``;
* ``unknown_symbol`` — ``POST /api/v3/order/test`` on a symbol exchangeInfo does not list: ``-1121``;
* ``insufficient_balance`` — LIMIT IOC BUY of twice the free quote balance (or a SELL): ``-2010``;
* ``cancel_unknown`` — ``DELETE /api/v3/order`` of a client order id never used: ``-2011``;
* ``duplicate_cid`` — a new order reusing an open anchor order's client order id: ``-2010``;
* ``stale_timestamp`` — a valid order signed with a timestamp recvWindow + 60 s old: ``-1021``;
* ``bad_signature`` — a valid order signed with a random secret: ``-1022``.

Nothing may trade even if an exchange accepted it by mistake: every scenario order is
immediate-or-cancel and priced ``price_offset_bps`` below the best bid (a SELL: above the best ask),
so it cannot match; an accepted order is recorded as an *unexpected acceptance* and cancelled at
once if it rests. The one order that is meant to be accepted is the duplicate scenario's anchor: a
GTC BUY ``anchor_offset_bps`` below the best bid of about 1.1 × minNotional (source
``error_path_anchor``), cancelled right after the duplicate was answered. The duplicate itself is
not entered in the ledger (its id is the anchor's, which the ledger holds).

Measurements (request types of their own, so no expected rejection counts against
``api_success``, ``uptime`` or — the ledger source ``error_path`` is left out — ``order_success``):

* ``expected_rejection`` ``name=<scenario>``: success iff the answer carries an expected code
  (the failure says what came instead: another code, an acceptance, no answer, a refusal);
* ``rejection_code`` ``name=<code>`` (``accepted``, ``no answer``, ``HTTP 503`` without one): one
  sample per answer, the count of rejections by code;
* ``error_path_excess`` ``name=<scenario>``: a send beyond the scenario's schedule (more than
  ``rate × elapsed + 1`` sends): never happens unless something retries — no retry storm.

The expected ``-1021`` re-syncs no clock and is no ``clock_errors`` sample: the call declares its
expected codes (:func:`letrade_perf.calls.path.begin` ``expected``).
"""
from __future__ import annotations

import http.client
import logging
import math
import secrets
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import ClassVar, Mapping
from urllib.parse import quote

import gevent
from locust import User, task
from locust.exception import StopUser

from ..binance import signing
from ..binance.endpoints import endpoint
from ..binance.headers import API_KEY_HEADER
from ..calls.path import CallResult, Order, SafetyRefusal, begin
from ..calls.request import RECV_WINDOW_MS, encode_request, signed_params
from ..config.profile import ERROR_PATH_SCENARIOS, ErrorPathSettings
from ..harness.ledger import shielded
from ..pacing import IpBanned
from .base import Failure, HarnessUserMixin, next_index
from .orders import client_order_id
from .symbols import SymbolRules

log = logging.getLogger(__name__)

#: The ledger source of the scenarios' orders (``order_success`` leaves it out).
SOURCE = "error_path"
#: The ledger source of the duplicate scenario's anchor orders (real, accepted, cancelled at once).
ANCHOR_SOURCE = "error_path_anchor"
#: Each scenario and the Binance codes that classify its answer as the expected rejection.
SCENARIOS: dict[str, frozenset[int]] = {
    "lot_size": frozenset({-1013}),
    "price_filter": frozenset({-1013}),
    "notional": frozenset({-1013}),
    "tick_size": frozenset({-1013}),
    "unknown_symbol": frozenset({-1121}),
    "insufficient_balance": frozenset({-2010}),
    "cancel_unknown": frozenset({-2011}),
    "duplicate_cid": frozenset({-2010}),
    "stale_timestamp": frozenset({-1021}),
    "bad_signature": frozenset({-1022}),
}
assert tuple(SCENARIOS) == ERROR_PATH_SCENARIOS
#: How much older than recvWindow the stale scenario's timestamp is (ms): no clock error explains it.
STALE_MARGIN_MS = 60_000
#: Binance prints 8 decimals: a violation must stay representable (more decimals would be -1111).
_DECIMALS = 8
#: Quotes (best bid/ask) are reused for this long (s) before they are fetched again.
QUOTE_TTL_S = 2.0
_BPS = Decimal(10_000)
_OPEN = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW"})


# -- scheduling (pure) ----------------------------------------------------------------------------

class Schedule:
    """The process's slots: scenario ``s`` is due at ``start + i × stagger + k / rate`` (i its
    position, k = 0, 1, …). :meth:`claim` hands out the earliest slot and moves the scenario to its
    next one; a slot missed by more than a period (a long pacing wait) is dropped, never caught up."""

    def __init__(self, rates: Mapping[str, float], start: float, stagger_s: float = 0.1) -> None:
        if not rates:
            raise ValueError("no scenario has a rate > 0")
        self.periods = {s: 1.0 / r for s, r in rates.items()}
        self.due = {s: start + i * stagger_s for i, s in enumerate(rates)}

    def claim(self, now: float) -> tuple[str, float]:
        """``(scenario, due time)`` of the earliest slot, now taken."""
        s = min(self.due, key=self.due.__getitem__)
        due, period = self.due[s], self.periods[s]
        nxt = due + period
        while nxt < now:            # behind by more than a period: drop the missed slots
            nxt += period
        self.due[s] = nxt
        return s, due


class SendCounter:
    """Sends per scenario against what the rates allow: ``floor(elapsed × rate) + 1`` by time
    ``start + elapsed``. :meth:`sent` says whether one send is beyond it (a retry storm)."""

    def __init__(self, rates: Mapping[str, float], start: float) -> None:
        self.rates = dict(rates)
        self.start = start
        self.sends = {s: 0 for s in rates}

    def allowed(self, scenario: str, now: float) -> int:
        return math.floor(max(0.0, now - self.start) * self.rates[scenario] + 1e-9) + 1

    def sent(self, scenario: str, now: float) -> bool:
        """Count one send of ``scenario`` at ``now``; True when it exceeds the schedule."""
        self.sends[scenario] = self.sends.get(scenario, 0) + 1
        return self.sends[scenario] > self.allowed(scenario, now)


# -- scenario construction (pure) -----------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """One scenario request: ``method path params``; ``ledger``: an order entered in the ledger
    (``newClientOrderId`` is its key); ``signing``: ``normal`` | ``stale`` | ``bad``."""

    method: str
    path: str
    params: dict[str, str]
    ledger: bool = True
    signing: str = "normal"

    @property
    def side(self) -> str:
        return self.params.get("side", "BUY")


class NotConstructible(ValueError):
    """The symbol's filters leave no request that provokes this scenario's rejection."""


def _floor(v: Decimal, step: Decimal) -> Decimal:
    return (v / step).to_integral_value(ROUND_FLOOR) * step if step > 0 else v


def _ceil(v: Decimal, step: Decimal) -> Decimal:
    return (v / step).to_integral_value(ROUND_CEILING) * step if step > 0 else v


def _fmt(v: Decimal) -> str:
    return format(v.normalize(), "f")


def _representable(v: Decimal) -> bool:
    exp = v.normalize().as_tuple().exponent
    return isinstance(exp, int) and exp >= -_DECIMALS


def safe_prices(rules: SymbolRules, bid: Decimal, ask: Decimal, offset_bps: int) -> tuple[Decimal, Decimal]:
    """``(buy, sell)``: a BUY price ``offset_bps`` below ``bid`` and a SELL price as far above
    ``ask``, on the tick — an IOC order at either cannot match."""
    off = Decimal(offset_bps) / _BPS
    buy = max(_floor(bid * (1 - off), rules.tick), rules.tick, rules.min_price)
    sell = _ceil(ask * (1 + off), rules.tick)
    if buy >= ask:
        raise NotConstructible(f"{rules.symbol}: no price below the best ask {ask} to buy at")
    return buy, sell


def valid_qty(rules: SymbolRules, price: Decimal) -> Decimal:
    """The smallest quantity on the step that passes LOT_SIZE and 1.5 × minNotional at ``price``."""
    qty = max(rules.min_qty, rules.step, _ceil(rules.min_notional * Decimal("1.5") / price, rules.step))
    if rules.max_qty and qty > rules.max_qty:
        raise NotConstructible(f"{rules.symbol}: minNotional needs more than maxQty at {price}")
    return qty


def _limit(symbol: str, side: str, qty: Decimal, price: Decimal, cid: str, tif: str = "IOC") -> dict[str, str]:
    return {"symbol": symbol, "side": side, "type": "LIMIT", "timeInForce": tif, "quantity": _fmt(qty),
            "price": _fmt(price), "newClientOrderId": cid, "newOrderRespType": "RESULT"}


def plan(scenario: str, rules: SymbolRules, *, bid: Decimal, ask: Decimal, cid: str, offset_bps: int,
         free: Mapping[str, Decimal] | None = None, unknown_symbol: str = "LPNOSUCHUSDT",
         anchor_cid: str | None = None) -> Plan:
    """The request of one scenario on ``rules``' symbol at the best ``bid``/``ask`` (pure).

    ``free``: the account's free balances (``insufficient_balance``); ``anchor_cid``: the open
    anchor order's id (``duplicate_cid``). Raises :class:`NotConstructible` when the filters leave
    no way to provoke the rejection (e.g. a tick of 1e-8 cannot be missed by half)."""
    sym = rules.symbol
    buy, sell = safe_prices(rules, bid, ask, offset_bps)
    order = "/api/v3/order"
    if scenario == "lot_size":
        half = rules.step / 2
        if rules.step > 0 and _representable(half):
            return Plan("POST", order, _limit(sym, "BUY", valid_qty(rules, buy) + half, buy, cid))
        if rules.max_qty > 0:
            return Plan("POST", order, _limit(sym, "BUY", rules.max_qty + max(rules.step, Decimal(1)), buy, cid))
        raise NotConstructible(f"{sym}: stepSize {rules.step} cannot be missed and maxQty is unbounded")
    if scenario == "price_filter":
        qty = max(rules.min_qty, rules.step)
        if rules.max_price > 0:     # a SELL above every bid: cannot match
            return Plan("POST", order, _limit(sym, "SELL", qty, rules.max_price + rules.tick, cid))
        if rules.min_price > rules.tick:
            return Plan("POST", order, _limit(sym, "BUY", valid_qty(rules, buy), rules.min_price - rules.tick, cid))
        raise NotConstructible(f"{sym}: PRICE_FILTER has no bound to cross")
    if scenario == "tick_size":
        half = rules.tick / 2
        if rules.tick > 0 and _representable(half):
            return Plan("POST", order, _limit(sym, "BUY", valid_qty(rules, buy), buy - half, cid))
        raise NotConstructible(f"{sym}: tickSize {rules.tick} cannot be missed by half within {_DECIMALS} decimals")
    if scenario == "notional":
        qty = max(rules.min_qty, rules.step)
        if not rules.min_notional or qty * buy >= rules.min_notional:
            raise NotConstructible(f"{sym}: the smallest order {qty} × {buy} is not below minNotional "
                                   f"{rules.min_notional}")
        return Plan("POST", order, _limit(sym, "BUY", qty, buy, cid))
    if scenario == "unknown_symbol":
        params = _limit(unknown_symbol, "BUY", valid_qty(rules, buy), buy, cid)
        return Plan("POST", "/api/v3/order/test", params, ledger=False)
    if scenario == "insufficient_balance":
        free = free or {}
        quote_free, base_free = free.get(rules.quote, Decimal(0)), free.get(rules.base, Decimal(0))
        qty = max(valid_qty(rules, buy), _ceil(2 * quote_free / buy + rules.step, rules.step))
        if _within(rules, qty, buy):
            return Plan("POST", order, _limit(sym, "BUY", qty, buy, cid))
        qty = max(valid_qty(rules, sell), _ceil(2 * base_free + rules.step, rules.step))
        if _within(rules, qty, sell):
            return Plan("POST", order, _limit(sym, "SELL", qty, sell, cid))
        raise NotConstructible(f"{sym}: the balances are too large for an order within the filters to exceed")
    if scenario == "cancel_unknown":
        return Plan("DELETE", order, {"symbol": sym, "origClientOrderId": cid}, ledger=False)
    if scenario == "duplicate_cid":
        if anchor_cid is None:
            raise ValueError("duplicate_cid needs the anchor order's client order id")
        return Plan("POST", order, _limit(sym, "BUY", valid_qty(rules, buy), buy, anchor_cid), ledger=False)
    if scenario in ("stale_timestamp", "bad_signature"):
        return Plan("POST", order, _limit(sym, "BUY", valid_qty(rules, buy), buy, cid),
                    signing="stale" if scenario == "stale_timestamp" else "bad")
    raise ValueError(f"unknown error-path scenario {scenario!r}")


def _within(rules: SymbolRules, qty: Decimal, price: Decimal) -> bool:
    """Whether a LIMIT of ``qty`` at ``price`` passes LOT_SIZE and NOTIONAL (so only the balance fails)."""
    return rules.check(qty, price, market=False) is None


def anchor_order(rules: SymbolRules, bid: Decimal, offset_bps: int, cid: str) -> dict[str, str]:
    """The duplicate scenario's anchor: a GTC BUY ``offset_bps`` below ``bid`` of about
    1.1 × minNotional (it rests; it is cancelled as soon as the duplicate is answered)."""
    price = max(_floor(bid * (1 - Decimal(offset_bps) / _BPS), rules.tick), rules.tick, rules.min_price)
    qty = max(rules.min_qty, rules.step, _ceil(rules.min_notional * Decimal("1.1") / price, rules.step))
    return _limit(rules.symbol, "BUY", qty, price, cid, tif="GTC")


def wrong_signature(key_type: str, payload: str) -> str:
    """A well-formed signature of ``payload`` by a key that is not the account's."""
    if key_type == signing.ED25519:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return signing.ed25519_sign(Ed25519PrivateKey.generate(), payload)
    return signing.hmac_sha256(secrets.token_hex(32), payload)


def code_name(res: CallResult) -> str:
    """The ``rejection_code`` tag of an answer."""
    if res.code is not None:
        return str(res.code)
    if res.ok:
        return "accepted"
    return f"HTTP {res.status}" if res.status else "no answer"


# -- the user ---------------------------------------------------------------------------------------

class ErrorPathUser(HarnessUserMixin, User):
    """Sends the error-path scenarios: see the module docstring. Needs API credentials."""

    abstract = True
    letrade_kind: ClassVar[str] = "error_paths"
    #: the profile's ``users.error_paths`` (frozen): each scenario's rate, the price offsets
    settings: ClassVar[ErrorPathSettings] = ErrorPathSettings()
    #: seconds to wait for an answer
    network_timeout: float = 10.0

    def on_start(self) -> None:
        self.pick_symbol()
        self.user_index = next_index("error-path-user")
        self._seq = 0
        self._quote: tuple[float, Decimal, Decimal] | None = None
        self._idle_reason: str | None = None
        env = self.environment
        shared: tuple[Schedule, SendCounter] | None = getattr(env, "letrade_error_paths", None)
        if shared is None:   # one schedule per process: more users share it, never multiply it
            now = time.monotonic()
            rates = self.settings.rates()
            shared = (Schedule(rates, now), SendCounter(rates, now))
            env.letrade_error_paths = shared
        self.schedule: Schedule = shared[0]
        self.counter: SendCounter = shared[1]

    def _idle(self, reason: str) -> None:
        if self._idle_reason is None:
            self._idle_reason = reason
            log.warning("error paths on %s do not run: %s", self.symbol, reason)
        gevent.sleep(1.0)

    @task
    def step(self) -> None:
        ctx = self.ctx
        if ctx.credentials is None:
            self._idle("no API credentials configured")
            return
        if ctx.exchange is None:
            self._idle("no exchange client in this process")
            return
        rules = ctx.symbol_rules.get(self.symbol)
        if rules is None:
            self._idle(f"{self.symbol} not in exchangeInfo")
            return
        scenario, due = self.schedule.claim(time.monotonic())
        wait = due - time.monotonic()
        if wait > 0:
            gevent.sleep(wait)
        self.run_scenario(scenario, rules)

    # -- one scenario ---------------------------------------------------------------------------
    def _cid(self, prefix: str) -> str:
        self._seq += 1
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        return client_order_id(prefix, self.ctx.run_id, worker, self.user_index, self._seq)

    def _book(self) -> tuple[Decimal, Decimal] | None:
        now = time.monotonic()
        if self._quote is not None and now - self._quote[0] < QUOTE_TTL_S:
            return self._quote[1], self._quote[2]
        res = self.ctx.exchange.call("GET", "/api/v3/ticker/bookTicker", {"symbol": self.symbol}, source=SOURCE)
        try:
            bid, ask = Decimal(str(res.data["bidPrice"])), Decimal(str(res.data["askPrice"]))
        except (TypeError, KeyError, ArithmeticError):
            return None
        if bid <= 0 or ask <= 0:
            return None
        self._quote = (now, bid, ask)
        return bid, ask

    def _free(self) -> dict[str, Decimal] | None:
        res = self.ctx.exchange.call("GET", "/api/v3/account", source=SOURCE)
        if not res.ok or not isinstance(res.data, dict):
            return None
        try:
            return {b["asset"]: Decimal(str(b["free"])) for b in res.data.get("balances") or ()}
        except (KeyError, TypeError, ArithmeticError):
            return None

    def run_scenario(self, scenario: str, rules: SymbolRules) -> None:
        """Build and send ``scenario`` once; record what came back."""
        t0 = time.perf_counter()

        def failed(why: str) -> None:
            self._record(scenario, (time.perf_counter() - t0) * 1000.0, None, why)

        book = self._book()
        if book is None:
            failed("no best bid/ask to price the scenario")
            return
        free = None
        if scenario == "insufficient_balance":
            free = self._free()
            if free is None:
                failed("account balances unavailable")
                return
        unknown = "LPNOSUCHUSDT"
        while unknown in self.ctx.symbol_rules:
            unknown = "X" + unknown[:19]
        anchor: str | None = None
        try:
            if scenario == "duplicate_cid":
                anchor, why = self._place_anchor(rules, book[0])
                if anchor is None:
                    if why:       # "": orders are blocked (or the run aborted); the slot is skipped
                        failed(why)
                    return
            p = plan(scenario, rules, bid=book[0], ask=book[1], cid=self._cid("lpx" if scenario == "cancel_unknown"
                                                                                   else "lpe"),
                     offset_bps=self.settings.price_offset_bps, free=free, unknown_symbol=unknown,
                     anchor_cid=anchor)
        except NotConstructible as e:
            if anchor:
                self._cancel(anchor)
            failed(f"not constructible: {e}")
            return
        try:
            self._send(scenario, p, rules)
        finally:
            if anchor:
                self._cancel(anchor)

    def _place_anchor(self, rules: SymbolRules, bid: Decimal) -> tuple[str | None, str]:
        """Place the duplicate scenario's anchor order: ``(its client order id, "")``, or
        ``(None, why it failed)``."""
        cid = self._cid("lpa")
        params = anchor_order(rules, bid, self.settings.anchor_offset_bps, cid)
        notional = Decimal(params["quantity"]) * Decimal(params["price"])
        try:
            res = self.ctx.exchange.call("POST", "/api/v3/order", params, source=SOURCE,
                                         order=Order(cid, rules.symbol, "BUY", notional, ANCHOR_SOURCE))
        except SafetyRefusal as e:
            if self._skip(e):
                return None, ""
            return None, f"anchor order refused before sending: {e.reason}"
        except IpBanned:
            raise StopUser() from None
        if not res.ok:
            return None, f"anchor order not placed: {res.describe()}"
        return cid, ""

    def _skip(self, refusal: SafetyRefusal) -> bool:
        """Whether a refused scenario order just skips its slot: new orders are blocked by an
        operator, or the run is aborting — no failure of the error handling."""
        return bool(getattr(refusal, "blocked", False) or self.ctx.aborted)

    def _cancel(self, cid: str) -> None:
        """Cancel an order of this scenario user (the anchor, an order accepted by mistake); the call
        path books what the answer shows. A cancel that fails leaves it to the kill switch."""
        try:
            res = self.ctx.exchange.call("DELETE", "/api/v3/order", {"symbol": self.symbol, "origClientOrderId": cid},
                                         source=SOURCE, expected_codes=(-2011,))
        except IpBanned:
            return
        if not res.ok and res.code != -2011:
            log.warning("error paths: cancel of %s failed (%s); the kill switch cancels it at the end",
                        cid, res.describe())

    def _encode(self, p: Plan, ep) -> tuple[str, str | None, dict[str, str]]:
        ctx = self.ctx
        if p.signing == "normal":
            return encode_request(ctx, ep, p.params)
        creds = ctx.credentials
        params = signed_params(ctx, p.params)
        if p.signing == "stale":
            params["timestamp"] = int(params["timestamp"]) - RECV_WINDOW_MS - STALE_MARGIN_MS
            query = creds.signed_query(params)
        else:
            payload = signing.encode_params(params)
            query = f"{payload}&signature={quote(wrong_signature(creds.key_type, payload), safe='')}"
        headers = {API_KEY_HEADER: creds.api_key}
        if ep.method in ("POST", "PUT"):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return ep.path, query, headers
        return f"{ep.path}?{query}", None, headers

    def _send(self, scenario: str, p: Plan, rules: SymbolRules) -> None:
        ctx = self.ctx
        ep = endpoint(p.method, p.path)
        codes = SCENARIOS[scenario]
        cid = p.params.get("newClientOrderId") or p.params.get("origClientOrderId") or ""
        order = Order(cid, rules.symbol, p.side, Decimal(0), SOURCE) if p.ledger else None
        try:
            # an error-path order cannot trade (IOC, priced away from the market): no notional at risk
            call = begin(ctx, ep, p.params, order=order, expected=codes)
        except IpBanned:
            raise StopUser() from None
        except SafetyRefusal as e:
            if not self._skip(e):
                self._record(scenario, 0.0, None, f"refused before sending: {e.reason}")
            return
        target, body, headers = self._encode(p, ep)
        conns = ctx.exchange.connections
        data = body.encode() if body else None

        def exchange() -> CallResult:
            call.leave()
            if self.counter.sent(scenario, time.monotonic()):
                self.fire("error_path_excess", scenario, 0.0)
            err, hdrs, raw = None, {}, b""
            try:
                status, hdrs, raw = conns.send(ep.method, target, data, headers, self.network_timeout)
            except (OSError, ValueError, http.client.HTTPException) as e:
                status, err = 0, f"no response: {type(e).__name__}: {e}"
            return call.answer(status, hdrs, raw, err)

        res = shielded(ctx.ledger, exchange) if order is not None else exchange()
        problem = None
        if res.code in codes:
            pass
        elif res.ok:
            problem = "unexpected acceptance"
            status = res.data.get("status") if isinstance(res.data, dict) else None
            if ep.order_entry and p.method == "POST" and status in _OPEN:
                self._cancel(cid)
        elif res.code is not None:
            problem = f"code {res.code} ({res.msg}), expected {' or '.join(map(str, sorted(codes)))}"
        else:
            problem = f"no rejection code: {res.describe()}"
        self._record(scenario, res.elapsed_ms, res, problem)

    def _record(self, scenario: str, elapsed_ms: float, res: CallResult | None, problem: str | None) -> None:
        code = res.code if res is not None else None
        self.fire("expected_rejection", scenario, elapsed_ms, exception=Failure(problem) if problem else None,
                  context={"code": code})
        if res is not None:
            self.fire("rejection_code", code_name(res), elapsed_ms, context={"scenario": scenario})


def scenario_codes() -> dict[str, list[int]]:
    """Each scenario's expected codes (for docs and reports)."""
    return {s: sorted(c) for s, c in SCENARIOS.items()}


__all__ = ["ErrorPathUser", "Plan", "NotConstructible", "SCENARIOS", "Schedule", "SendCounter", "plan",
           "anchor_order", "safe_prices", "wrong_signature", "code_name", "scenario_codes", "SOURCE", "ANCHOR_SOURCE"]
