"""The trading pipeline: signal → pre-trade validation → order → fill on the user-data stream →
reconciliation against REST, measured as one ``pipeline`` figure per order.

Each :class:`TradingPipelineUser` is one strategy instance on one symbol (round-robin over the
profile's symbols). Per order it reports:

* ``pipeline`` — ``request_type="pipeline"``, ``name="<SYMBOL> <order_via>"``, response time =
  decision → final executionReport observed → reconciled, minus time spent waiting for rate
  budget; failure when the order was refused by validation, rejected, not executed, not
  observed, or did not reconcile;
* ``reconciliation`` — ``name="order"`` (``GET /api/v3/order`` status / executedQty /
  cummulativeQuoteQty equal the executionReports' sums) and ``name="balance"`` (each asset's
  change on the user-data stream equals the fills minus fees); failure carries the detail;
* ``reconciliation_unverified`` — ``name="order"`` / ``"balance"``: a check that could not be
  performed (the order query had no definite answer — none, 5xx, 429 — after
  :attr:`~TradingPipelineUser.reconcile_retries` retries; the stream reconnected during the
  order), reported as a failure with the reason; it is never a ``reconciliation`` sample;
* ``userdata`` ``fill_to_balance`` — FILLED executionReport → the following
  outboundAccountPosition (ms);
* custom events ``letrade_slippage`` (fill average vs decision price, bps, positive = worse)
  and ``letrade_fee`` (per fee asset); the ledger fires ``letrade_order`` per outcome.

Orders whose status is unknown (5xx, -1006/-1007/-1008, no answer) are resolved with
``GET /api/v3/order?origClientOrderId=`` — every order carries its own ``newClientOrderId`` —
and counted once in the process :class:`~letrade_perf.harness.ledger.OrderLedger`.
"""
from __future__ import annotations

import logging
import time
from decimal import Decimal, InvalidOperation
from typing import ClassVar

import gevent
from locust import task

from ..calls.path import CallResult, Order, SafetyRefusal
from ..config.profile import PipelineSettings
from .base import Failure, next_index
from .orders import client_order_id, ma_signal
from .rest import BinanceRestUser
from .symbols import SymbolRules
from .userdata import UserDataTracker, WsApiClient, WsApiError

log = logging.getLogger(__name__)

_BPS = Decimal(10_000)


class TradingPipelineUser(BinanceRestUser):
    """One strategy instance: see the module docstring. Needs API credentials."""

    abstract = True
    letrade_kind: ClassVar[str] = "pipeline"
    #: the profile's ``users.pipeline`` (frozen): ``order_via`` (``rest`` or ``ws_api``), the
    #: ``strategy``, ``notional``, ``order_type`` (``MARKET`` or ``LIMIT_IOC``: an IOC limit
    #: :attr:`limit_through_bps` through the decision price), ``max_orders``, ``reconcile``
    settings: ClassVar[PipelineSettings] = PipelineSettings()
    #: how far through the decision price an IOC limit is priced (bps)
    limit_through_bps: int = 50
    #: seconds to wait for the final executionReport
    fill_timeout_s: float = 10.0
    #: seconds to wait for the account update after the final report
    balance_timeout_s: float = 5.0
    #: queries of ``GET /api/v3/order`` to resolve an unknown status
    resolve_attempts: int = 3
    #: pause between those queries (s)
    resolve_delay_s: float = 0.5
    #: retries of a reconciliation query without a definite answer (no answer, 5xx, 429)
    reconcile_retries: int = 2
    #: pause before the n-th such retry: n × this (s); the retry is paced like every call
    reconcile_backoff_s: float = 0.25
    #: a BUY needs this much more quote balance than its notional (price moves, fees)
    balance_margin: Decimal = Decimal("1.05")

    def on_start(self) -> None:
        self.pick_symbol()
        self.user_index = next_index("pipeline-user")
        self.orders_sent = 0
        self.paced_wait_s = 0.0
        self.tracker = UserDataTracker()
        self.ws: WsApiClient | None = None
        self._prev_sign: int | None = None
        self._last_order_at = time.monotonic()
        #: long (bought, not yet sold) or flat: the strategy buys when flat and sells what it bought
        self._long = False
        self._stopped_reason: str | None = None
        #: ``round_trip`` mode: the base quantity still to sell back (None: nothing bought yet)
        self._rt_sell_qty: Decimal | None = None
        #: ``round_trip`` mode: bought and sold back; no more orders (done, not a stop)
        self._rt_done = False
        self._seq = 0
        self._ensure_stream()

    def on_stop(self) -> None:
        ws = getattr(self, "ws", None)       # absent when on_start stopped early
        if ws is not None:
            ws.close()
            self.ws = None

    # -- the user-data stream -------------------------------------------------------------------
    def _ensure_stream(self) -> bool:
        """One WS API connection per user, subscribed to user data, balances seeded."""
        if self.ws is not None and self.ws.connected and self.ws.subscription_id is not None:
            return True
        ctx = self.ctx
        if ctx.credentials is None:
            self._stop_trading("no API credentials configured")
            return False
        if self.ws is not None:
            self.ws.close()
        self.tracker.reset()
        self.ws = WsApiClient(ctx, self.environment, ctx.ws_api_url, self.tracker, on_event=self._on_user_event)
        try:
            self.ws.connect()
        except WsApiError:
            self.ws = None
            return False
        sub = self.ws.subscribe_user_data()
        if not sub.ok:
            self.ws.close()
            self.ws = None
            return False
        acct = self.call("GET", "/api/v3/account")
        if acct.ok and isinstance(acct.data, dict):
            self.tracker.seed(acct.data.get("balances") or [])
        return True

    def _on_user_event(self, ev, received: float, received_wall: float) -> None:
        e_time = ev.get("E")
        if not isinstance(e_time, (int, float)):
            return
        clock = self.ctx.clock
        lag = clock.lag_ms(e_time, received_wall)
        est = clock.estimate
        unc = est.uncertainty_ms if est is not None else None
        name = f"userData {ev.get('e')}"
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=lag if lag > 0 else 0.0, response_length=0,
            response=None, context={"uncertainty_ms": unc, "lag_ms": lag}, exception=None)
        lag_event = getattr(self.environment.events, "letrade_ws_lag", None)
        if lag_event is not None:
            lag_event.fire(stream=name, lag_ms=lag, uncertainty_ms=unc, event_time=e_time, received_at=received_wall)

    def _stop_trading(self, reason: str) -> None:
        if self._stopped_reason is None:
            self._stopped_reason = reason
            log.warning("%s: pipeline user stops trading: %s", self.symbol, reason)
            self.ctx.note_strategy_stop(reason)

    # -- the task -------------------------------------------------------------------------------
    @task
    def step(self) -> None:
        if self._stopped_reason is not None or self._rt_done or (
                self.settings.max_orders and self.orders_sent >= self.settings.max_orders):
            gevent.sleep(1.0)
            return
        signal = self.signal()
        if signal is None:
            return
        side, price = signal
        qty = self._rt_sell_qty if side == "SELL" and self.settings.strategy.mode == "round_trip" else None
        self.run_order(side, price, time.perf_counter(), qty=qty)

    def signal(self) -> tuple[str, Decimal] | None:
        """Moving-average crossover on live klines, or a forced signal every ``force_every_s``.

        The strategy is long or flat, as a spot strategy is: it buys only when flat and sells only
        what it bought (a crossover the other way is ignored; a forced signal closes the position
        or opens one). Its exposure so nets out, and the run cap on net exposure
        (``safety.max_run_notional``, see :mod:`~letrade_perf.harness.ledger`) never stops it —
        it stops a strategy that buys (or sells) without closing.

        ``strategy.mode: round_trip`` (the canary): a BUY at once, then a SELL of exactly what that
        buy executed (:meth:`step` passes the quantity), then nothing more (:meth:`_round_trip_step`)."""
        st = self.settings.strategy
        res = self.call("GET", "/api/v3/klines", {"symbol": self.symbol, "interval": st.interval, "limit": st.slow + 1})
        if not res.ok or not isinstance(res.data, list) or not res.data:
            return None
        try:
            closes = [Decimal(str(k[4])) for k in res.data]
        except (InvalidOperation, IndexError, TypeError):
            return None
        if st.mode == "round_trip":      # buy first, then sell exactly what the buy executed
            return ("BUY" if self._rt_sell_qty is None else "SELL"), closes[-1]
        sign = ma_signal(closes, st.fast, st.slow)
        side = None
        if self._prev_sign is not None and sign != 0 and sign != self._prev_sign:
            side = "BUY" if sign > 0 else "SELL"
        if sign != 0:
            self._prev_sign = sign
        if side is None and st.force_every_s and time.monotonic() - self._last_order_at >= st.force_every_s:
            side = "SELL" if self._long else "BUY"
        if side == ("BUY" if self._long else "SELL"):
            side = None     # already long (flat): nothing more to buy (to sell)
        return (side, closes[-1]) if side else None

    # -- one order through the whole chain --------------------------------------------------------
    def _paced_wait(self) -> float:
        return self.paced_wait_s + (self.ws.paced_wait_s if self.ws is not None else 0.0)

    def run_order(self, side: str, price: Decimal, t_decision: float, qty: Decimal | None = None) -> None:
        """One order of ``side`` at the decision ``price``: of the pipeline's ``notional``, or of
        exactly ``qty`` (base asset) when given (a round trip's sell)."""
        ctx = self.ctx
        ledger = ctx.ledger
        sym = self.symbol
        name = f"{sym} {self.settings.order_via}"
        wait0 = self._paced_wait()

        def finish(exc: str | None, context: dict | None = None) -> None:
            elapsed = (time.perf_counter() - t_decision) * 1000.0 - (self._paced_wait() - wait0) * 1000.0
            self.fire("pipeline", name, max(0.0, elapsed), exception=Failure(exc) if exc else None,
                      context=context or {})

        self._last_order_at = time.monotonic()
        rules = ctx.symbol_rules.get(sym)
        if rules is None:
            self._stop_trading(f"{sym} not in exchangeInfo")
            return
        notional = Decimal(str(self.settings.notional))
        if not self._ensure_stream():
            finish("user data stream unavailable")
            return
        market = self.settings.order_type == "MARKET"
        px = price if market else rules.limit_price(price, side, Decimal(self.limit_through_bps))
        fixed = qty is not None
        if qty is None:
            qty = rules.qty_for_notional(notional, px, market)
        problem = rules.check(qty, px, market)
        if problem:
            # a round trip's sell that can never pass ends the round trip (the flatten closes it)
            self._rt_done = self._rt_done or fixed
            finish(f"pre-trade: {problem}")
            return
        acct = self.call("GET", "/api/v3/account")
        if not acct.ok or not isinstance(acct.data, dict):
            finish("pre-trade: account unavailable")
            return
        free = {b.get("asset"): Decimal(str(b.get("free", "0"))) for b in acct.data.get("balances") or ()}
        if side == "BUY" and free.get(rules.quote, Decimal(0)) < qty * px * self.balance_margin:
            finish(f"pre-trade: insufficient {rules.quote}")
            return
        have = free.get(rules.base, Decimal(0))
        if side == "SELL" and fixed and have < qty:
            # the buy's commission was charged in the base asset and the account held none
            # before: sell what it received, on the lot step (the dust stays; flatten reports it)
            cut = SymbolRules._floor(have, rules.market_step if market else rules.step)
            if cut > 0 and rules.check(cut, px, market) is None:
                log.warning("%s: round trip sells %s of the %s bought (%s %s free)", sym, cut, qty, have, rules.base)
                qty = cut
        if side == "SELL" and have < qty:
            self._rt_done = self._rt_done or fixed
            finish(f"pre-trade: insufficient {rules.base}")
            return

        self._seq += 1
        worker = getattr(self.environment.runner, "worker_index", 0) or 0
        cid = client_order_id("lp", ctx.run_id, worker, self.user_index, self._seq)
        params = {"symbol": sym, "side": side, "type": "MARKET" if market else "LIMIT", "quantity": format(qty, "f"),
                  "newClientOrderId": cid, "newOrderRespType": "FULL"}
        if not market:
            params["timeInForce"] = "IOC"
            params["price"] = format(px, "f")
        audit = getattr(self.environment.events, "letrade_audit", None)   # the audit trail: the decision
        if audit is not None:
            audit.fire(action="decided", client_order_id=cid, symbol=sym, side=side, notional=qty * px,
                       source="pipeline", via=self.settings.order_via)
        watch = self.tracker.watch(cid)
        try:
            try:   # the call path gates (safety, run notional), enters and books the order
                outcome = self._place(cid, params, Order(cid, str(sym), side, qty * px, "pipeline", self.settings.order_via))
            except SafetyRefusal as e:
                if e.blocked:       # an operator's block: no failure, no stop; trade again once lifted
                    while ctx.orders_blocked is not None and ctx.aborted is None:
                        gevent.sleep(0.2)
                    return
                self._stop_trading(f"safety.{e.reason}" if e.reason.startswith("max_run_notional") else e.reason)
                return
            if outcome == "not_sent":
                finish("order not sent: the WebSocket API is not connected")
                return
            self.orders_sent += 1
            if outcome == "rejected":
                finish("order rejected")
                return
            if outcome == "not_executed":
                finish("order not executed (status was unknown)")
                return
            if not watch.done.wait(self.fill_timeout_s):
                finish(f"no final executionReport within {self.fill_timeout_s:g}s")
                return
            if any(r.get("X") == "PARTIALLY_FILLED" for r in watch.reports):
                ledger.status(cid, "PARTIALLY_FILLED")   # the stream showed it filling in parts
            ledger.status(cid, watch.final_status)
            # the fills' exact value and quantity: the run's net exposure and net position
            ledger.executed(cid, watch.quote_qty(), watch.executed_qty())
            watch.balanced.wait(self.balance_timeout_s)
            if watch.filled_at is not None and watch.balance_at is not None:
                self.fire("userdata", "fill_to_balance", (watch.balance_at - watch.filled_at) * 1000.0)
            problems = []
            if self.settings.reconcile:
                problems = self._reconcile(cid, watch, rules, side)
            executed = watch.executed_qty()
            if executed > 0:
                self._long = side == "BUY"
                if self.settings.strategy.mode == "round_trip":
                    self._round_trip_step(side, qty, executed)
            if executed > 0:
                self._report_fill(watch, rules, side, price, executed, cid)
            if watch.final_status != "FILLED" and not (executed > 0 and not market):
                finish(f"order ended {watch.final_status}")
            elif problems:
                finish("reconciliation: " + "; ".join(problems))
            else:
                finish(None, {"client_order_id": cid})
        finally:
            self.tracker.unwatch(cid)

    def _round_trip_step(self, side: str, qty: Decimal, executed: Decimal) -> None:
        """``round_trip`` mode after an order executed: a buy sets the quantity to sell back; a
        sell that sold it all ends the round trip (a partly executed sell leaves the rest to sell)."""
        if side == "BUY":
            self._rt_sell_qty = executed
            return
        rest = (self._rt_sell_qty or Decimal(0)) - executed
        if rest > 0 and executed < qty:
            self._rt_sell_qty = rest
            return
        self._rt_done = True
        log.info("%s: round trip done (bought and sold %s)", self.symbol, executed)

    def _place(self, cid: str, params: dict, order: Order) -> str:
        """Send the order on the call path (which enters and books it in the ledger); returns
        ``placed``, ``rejected``, ``not_executed``, ``unresolved`` or ``not_sent``. Raises
        :class:`~letrade_perf.calls.path.SafetyRefusal` when the safety gate refuses it."""
        if self.settings.order_via == "ws_api":
            ws = self.ws
            assert ws is not None   # run_order placed only after _ensure_stream() connected it
            wres = ws.request("order.place", params, signed=True, order=order)
            ok, unknown, result = wres.ok, wres.unknown, wres.result
        else:
            res = self.call("POST", "/api/v3/order", params, order=order)
            ok, unknown, result = res.ok, res.unknown, res.data
        if self.ctx.ledger.get(cid) is None:
            return "not_sent"
        if ok and isinstance(result, dict):
            return "placed"
        if not unknown:
            return "rejected"
        return self._resolve(cid, params["symbol"])

    def _resolve(self, cid: str, symbol: str) -> str:
        """Resolve an unknown status with ``GET /api/v3/order?origClientOrderId=`` (the call path
        books a found order); ``-2013`` on every attempt: the exchange never had it."""
        last_code = None
        for attempt in range(max(1, self.resolve_attempts)):
            if attempt:
                gevent.sleep(self.resolve_delay_s)
            q = self.call("GET", "/api/v3/order", {"symbol": symbol, "origClientOrderId": cid})
            if q.ok and isinstance(q.data, dict):
                return "placed"
            last_code = q.code
        if last_code == -2013:
            self.ctx.ledger.resolved(cid, None)
            return "not_executed"
        return "unresolved"   # stays open in the ledger: the kill switch resolves it

    # -- reconciliation and costs -----------------------------------------------------------------
    def _reconcile(self, cid: str, watch, rules, side: str) -> list[str]:
        """Check the order (``GET /api/v3/order``) and the balances against the user-data stream;
        the mismatches found. A check that cannot be performed — the order query gets no definite
        answer (:func:`_undecided`) in :attr:`reconcile_retries` + 1 attempts, or the stream
        reconnected during the order — is ``reconciliation_unverified``, neither a match nor a
        mismatch. A definite error answer (``-2013``, ``-1021``, a 4xx) is a failed check."""
        problems: list[str] = []
        executed, quote = watch.executed_qty(), watch.quote_qty()
        q, attempts = self._query_order(cid)
        detail: str | None
        if _undecided(q):
            self._unverified("order", q.elapsed_ms, f"order query got no definite answer in {attempts} "
                             f"attempt{'s' if attempts != 1 else ''}: {q.describe()}", cid)
            detail = None
        elif not q.ok or not isinstance(q.data, dict):
            detail = f"order query failed: {q.describe()}"
        else:
            d = q.data
            diffs = []
            if d.get("status") != watch.final_status:
                diffs.append(f"status {d.get('status')} != stream {watch.final_status}")
            try:
                if Decimal(str(d.get("executedQty"))) != executed:
                    diffs.append(f"executedQty {d.get('executedQty')} != stream {executed}")
                if Decimal(str(d.get("cummulativeQuoteQty"))) != quote:
                    diffs.append(f"cummulativeQuoteQty {d.get('cummulativeQuoteQty')} != stream {quote}")
            except InvalidOperation:
                diffs.append("undecodable quantities")
            detail = "; ".join(diffs) or None
        if not _undecided(q):
            self.fire("reconciliation", "order", q.elapsed_ms, exception=Failure(detail) if detail else None,
                      context={"client_order_id": cid})
        if detail:
            problems.append(detail)

        t0 = time.perf_counter()
        if watch.epoch != self.tracker.epoch:   # the before/after balances are of different streams
            self._unverified("balance", 0.0, "user data stream reconnected during the order", cid)
            return problems
        bdetail = self._balance_problem(watch, rules, side)
        self.fire("reconciliation", "balance", (time.perf_counter() - t0) * 1000.0,
                  exception=Failure(bdetail) if bdetail else None, context={"client_order_id": cid})
        if bdetail:
            problems.append(bdetail)
        return problems

    def _query_order(self, cid: str) -> tuple[CallResult, int]:
        """``GET /api/v3/order`` for reconciliation, through the call path (paced, recorded),
        retried after :attr:`reconcile_backoff_s` × n while the answer is not definite; (the
        last answer, attempts made)."""
        params = {"symbol": self.symbol, "origClientOrderId": cid}
        attempts = max(1, self.reconcile_retries + 1)
        for attempt in range(1, attempts + 1):
            q = self.call("GET", "/api/v3/order", params)
            if attempt == attempts or not _undecided(q):
                return q, attempt
            gevent.sleep(self.reconcile_backoff_s * attempt)
        raise AssertionError("unreachable")   # the loop returns on its last attempt

    def _unverified(self, name: str, elapsed_ms: float, reason: str, cid: str) -> None:
        """A check that could not be performed: its own metric, never a mismatch."""
        self.fire("reconciliation_unverified", name, elapsed_ms, exception=Failure(f"unverified: {reason}"),
                  context={"client_order_id": cid})

    def _balance_problem(self, watch, rules, side: str) -> str | None:
        if watch.before is None or watch.after is None:
            return "balance: no account update observed after the order"
        expected: dict[str, Decimal] = {rules.base: Decimal(0), rules.quote: Decimal(0)}
        for r in watch.fills:
            qty, quote = Decimal(r["l"]), Decimal(r["Y"]) if r.get("Y") is not None else Decimal(r["l"]) * Decimal(r["L"])
            sign = 1 if side == "BUY" else -1
            expected[rules.base] += sign * qty
            expected[rules.quote] -= sign * quote
            if r.get("N"):
                expected[r["N"]] = expected.get(r["N"], Decimal(0)) - Decimal(r.get("n") or "0")
        diffs = []
        for asset, want in expected.items():
            b, a = self.tracker.total(watch.before, asset), self.tracker.total(watch.after, asset)
            if b is None or a is None:
                if want != 0:
                    diffs.append(f"{asset} not reported")
                continue
            if a - b != want:
                diffs.append(f"{asset} changed {a - b} != fills-fees {want}")
        return ("balance: " + "; ".join(diffs)) if diffs else None

    def _report_fill(self, watch, rules, side: str, decision_price: Decimal, executed: Decimal, cid: str) -> None:
        events = self.environment.events
        avg = watch.quote_qty() / executed
        bps = (avg - decision_price) / decision_price * _BPS if decision_price else Decimal(0)
        if side == "SELL":
            bps = -bps
        slip = getattr(events, "letrade_slippage", None)
        if slip is not None:
            slip.fire(symbol=self.symbol, side=side, order_via=self.settings.order_via, bps=float(bps),
                      decision_price=float(decision_price), avg_price=float(avg), client_order_id=cid)
        fee_event = getattr(events, "letrade_fee", None)
        if fee_event is not None:
            notional = watch.quote_qty()
            for asset, amount in watch.fees().items():
                quote_value = amount if asset == rules.quote else (amount * avg if asset == rules.base else None)
                fee_event.fire(symbol=self.symbol, side=side, asset=asset, amount=float(amount),
                               quote_value=None if quote_value is None else float(quote_value),
                               bps=None if quote_value is None or not notional else float(quote_value / notional * _BPS),
                               client_order_id=cid)


def _undecided(q: CallResult) -> bool:
    """A reconciliation query without a definite answer, worth a retry and, failing that,
    *unverified*: no answer (timeout, connection error), a 5xx (also ``-1006/-1007/-1008``), a
    429/418, or a 200 whose body could not be read. A Binance error answer (``-2013``,
    ``-1021``, any 4xx) is definite."""
    if q.ok:
        return False
    return q.status == 0 or q.status >= 500 or q.status in (418, 429) or q.status == 200
