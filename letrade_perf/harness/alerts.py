"""The opt-in trading-operation alerts: which events become webhook messages, and when.

:mod:`letrade_perf.notify` formats and delivers; this module decides, per webhook target:

* ``trade`` — the run's fills (``letrade_order`` with outcome ``filled`` / ``partially_filled``),
  batched: at most one message per target's ``trade_batch_s`` (the first fill goes at once, later
  ones wait for the window), listing up to :data:`MAX_LISTED_FILLS` fills and counting the rest.
  ``trade_batch_s: 0`` sends one message per fill, at most :data:`TRADES_PER_MINUTE` a minute;
  fills beyond wait for the next free slot and go together. What is pending at quit goes out
  before the verdict.
* ``balance`` — ``letrade_balance(asset, before, after, delta)``: a message when an asset's balance
  has moved by at least its threshold since the last message about it (at first: since the first
  balance seen, the start). The threshold is the target's ``balance_threshold[asset]``, else its
  ``balance_threshold_fraction`` × the asset's start balance (none for an asset that started at 0).
  Measuring against the last alerted value, not the last snapshot, catches slow drifts and
  sends a repeated report of the same balance only once.
* ``orders_blocked`` — ``letrade_orders_blocked(blocked, reason, by)``: a message when the state
  changes (blocked → resumed or back); a repeat of the same state (a worker relaying the master's
  block) is not sent again.
* ``flatten`` — ``letrade_flatten(report)``: a message per report; an identical report (the same
  flatten seen twice) is sent once.

Who sends: the local process, or the master of a distributed run — the only processes that hold
the webhook URLs (:func:`~letrade_perf.harness.plugin.build_notifier`; a worker needs no webhook
variable). A worker forwards the events the profile's ``notify`` entries ask for to the master as
:data:`MSG_ALERT` messages (fills with their details from its ledger); the master batches them
with its own, so a run with many workers still sends one ``trade`` message per window. Fills a
worker forwards after the master has sent its final batch are lost (a worker stops after the
master decided to quit).

:class:`AlertRouter` holds the logic with an injected clock (tests drive it directly);
:func:`install_alerts` wires it to Locust's events.
"""
from __future__ import annotations

import json
import logging
import time
from collections import deque
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..notify import Notifier, WebhookTarget, balance_alert, flatten_alert, orders_blocked_alert, trade_alert

if TYPE_CHECKING:
    from .plugin import HarnessContext

log = logging.getLogger(__name__)

ALERT_EVENTS = ("trade", "balance", "orders_blocked", "flatten")
"""The opt-in events this module routes."""
FILL_OUTCOMES = frozenset({"filled", "partially_filled"})
"""``letrade_order`` outcomes that are fills."""
MAX_LISTED_FILLS = 20
"""At most this many fills are listed in one ``trade`` message; the rest are counted."""
TRADES_PER_MINUTE = 20
"""``trade_batch_s: 0``: at most this many ``trade`` messages a minute per target (Telegram lets a
bot post about 20 a minute into a group)."""
TICK_S = 1.0
"""How often due trade batches are looked for."""
MSG_ALERT = "letrade_alert"
"""Worker → master: ``{"event": name, "data": {...}}``, one opt-in event seen on the worker."""
MAX_FLATTEN_SEEN = 100

Clock = Callable[[], float]


def _decimal(value: object) -> Decimal | None:
    try:
        d = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


class TradeBatcher:
    """One target's pending fills and its sending window (see the module docstring)."""

    def __init__(self, batch_s: float, *, per_minute: int = TRADES_PER_MINUTE, max_listed: int = MAX_LISTED_FILLS):
        self.batch_s = float(batch_s)
        self.per_minute = per_minute
        self.max_listed = max_listed
        self.pending: list[dict] = []
        self.omitted = 0
        self.last_sent: float | None = None
        self._recent: deque[float] = deque()

    def add(self, fill: dict) -> None:
        """Queue one fill (listed while there is room, else only counted)."""
        if len(self.pending) < self.max_listed:
            self.pending.append(fill)
        else:
            self.omitted += 1

    def due(self, now: float, final: bool = False) -> tuple[list[dict], int] | None:
        """``(fills, omitted)`` to send now, or None (nothing pending, or the window is closed);
        ``final``: whatever is pending, window or not."""
        if not self.pending and not self.omitted:
            return None
        if not final:
            if self.batch_s > 0:
                if self.last_sent is not None and now - self.last_sent < self.batch_s:
                    return None
            else:
                while self._recent and now - self._recent[0] >= 60.0:
                    self._recent.popleft()
                if len(self._recent) >= self.per_minute:
                    return None
        out = (self.pending, self.omitted)
        self.pending, self.omitted = [], 0
        self.last_sent = now
        self._recent.append(now)
        return out


class BalanceWatch:
    """One target's balance thresholds and the reference each asset is measured against."""

    def __init__(self, thresholds: Mapping[str, Any], fraction: float):
        self.thresholds = {str(k).upper(): d for k, v in thresholds.items() if (d := _decimal(v)) is not None}
        self.fraction = _decimal(fraction) or Decimal(0)
        self.start: dict[str, Decimal] = {}
        self.reference: dict[str, Decimal] = {}

    def limit(self, asset: str) -> tuple[Decimal, str] | None:
        """``(amount, description)`` of ``asset``'s threshold; None: the asset is not watched."""
        if asset in self.thresholds:
            amount = self.thresholds[asset]
            return amount, f"{_plain(amount)} {asset}"
        start = self.start.get(asset)
        if self.fraction > 0 and start is not None and start != 0:
            amount = abs(start) * self.fraction
            return amount, f"{_plain(self.fraction * 100)} % of the start balance ({_plain(amount)} {asset})"
        return None

    def update(self, asset: str, before: object, after: object) -> dict | None:
        """A new balance of ``asset``: the alert's fields when it moved by at least the threshold
        since the reference (the reference then becomes ``after``), else None."""
        asset = str(asset).upper()
        now = _decimal(after)
        if now is None:
            return None
        first = _decimal(before)
        if asset not in self.start:
            self.start[asset] = first if first is not None else now
            self.reference[asset] = self.start[asset]
        limit = self.limit(asset)
        if limit is None:
            return None
        reference = self.reference[asset]
        if abs(now - reference) < limit[0]:
            return None
        self.reference[asset] = now
        return {"asset": asset, "reference": reference, "after": now, "start": self.start[asset],
                "threshold": limit[1]}


def _plain(d: Decimal) -> str:
    text = f"{d.normalize():f}" if d == d.to_integral_value() else f"{d:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class AlertRouter:
    """Routes fills, balances, blocks and flattens to ``notifier``'s targets.

    ``run`` is the run's ``{"profile", "env", "run_id"}`` (message titles); ``clock`` (monotonic
    seconds) times the trade windows. Call :meth:`tick` periodically and :meth:`close` at the end.
    """

    def __init__(self, notifier: Notifier, run: Mapping[str, Any], *, clock: Clock = time.monotonic):
        self.notifier = notifier
        self.run = dict(run)
        self.clock = clock
        targets: list[WebhookTarget] = notifier.targets
        self._batchers = {i: TradeBatcher(t.trade_batch_s) for i, t in enumerate(targets) if "trade" in t.events}
        self._balances = {i: BalanceWatch(t.balance_threshold, t.balance_threshold_fraction)
                          for i, t in enumerate(targets) if "balance" in t.events}
        self._blocked: bool | None = None
        self._flattens: deque[str] = deque(maxlen=MAX_FLATTEN_SEEN)
        self.closed = False

    def wants(self, event: str) -> bool:
        """Whether any target receives ``event``."""
        return self.notifier.wants(event)

    # -- events
    def fill(self, fill: dict) -> None:
        """One fill (:func:`fill_details`); sent now if its targets' windows are open."""
        if self.closed:
            return
        for batcher in self._batchers.values():
            batcher.add(fill)
        self.tick()

    def balance(self, asset: object, before: object, after: object, delta: object = None, **_kw: Any) -> None:
        """``letrade_balance``: a message to each target whose threshold the change reaches."""
        for index, watch in self._balances.items():
            found = watch.update(str(asset), before, after)
            if found is not None:
                self.notifier.send(balance_alert(self.run, found["asset"], found["reference"], found["after"],
                                                 found["start"], found["threshold"]), only={index})

    def orders_blocked(self, blocked: object, reason: object = None, by: object = None, **_kw: Any) -> None:
        """``letrade_orders_blocked``: a message when the state changes."""
        state = bool(blocked)
        if state == self._blocked or (self._blocked is None and not state):
            return          # a repeat, or "resumed" with nothing blocked before
        self._blocked = state
        self.notifier.send(orders_blocked_alert(self.run, state, reason, by))

    def flatten(self, report: object = None, **_kw: Any) -> None:
        """``letrade_flatten``: a message per distinct report."""
        key = json.dumps(report, sort_keys=True, default=str)
        if key in self._flattens:
            return
        self._flattens.append(key)
        self.notifier.send(flatten_alert(self.run, report))

    # -- timing
    def tick(self, final: bool = False) -> None:
        """Send every trade batch whose window is open (``final``: every pending one)."""
        now = self.clock()
        for index, batcher in self._batchers.items():
            batch = batcher.due(now, final)
            if batch is not None:
                self.notifier.send(trade_alert(self.run, *batch), only={index})

    def close(self) -> None:
        """Send what is pending; later fills are ignored."""
        if not self.closed:
            self.tick(final=True)
            self.closed = True


def fill_details(ledger: Any, rules: Mapping[str, Any] | None, outcome: str, client_order_id: str,
                 symbol: str, side: str, source: str, via: str | None = None, **kw: Any) -> dict:
    """A fill as the ``trade`` message lists it (JSON-able): symbol, side, quantity (when known),
    quote value, status, source, route and client order id — the event's fields completed from the
    ledger's record (executed quantities, last status) and the symbol's quote asset."""
    rec = ledger.get(client_order_id) if ledger is not None else None
    qty = kw.get("qty", getattr(rec, "executed_qty", None))
    notional = None
    for name in ("executed_quote", "executed_notional", "notional"):
        value = getattr(rec, name, None)
        if value is not None and (name != "notional" or value):
            notional = value
            break
    status = getattr(rec, "status", None) or outcome.upper()
    rule = (rules or {}).get(symbol)
    return {"symbol": symbol, "side": side, "qty": None if qty is None else str(qty),
            "notional": None if notional is None else str(notional), "quote": getattr(rule, "quote", None),
            "status": status, "source": source, "via": via, "client_order_id": client_order_id}


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def install_alerts(ctx: HarnessContext, environment: Any, notifier: Notifier | None) -> AlertRouter | None:
    """Wire the opt-in alerts for this process: on a local or master process with a notifier an
    :class:`AlertRouter` (returned) listening to the events, to the workers' :data:`MSG_ALERT`
    messages (master) and to ``quitting`` (sends what is pending — install before the gate, so the
    last fills go before the verdict); on a worker, forwarders of the events the profile's
    ``notify`` entries ask for. Nothing when no target wants any of them."""
    import gevent

    events = environment.events
    runner = environment.runner

    def listen(name: str, listener: Callable[..., None]) -> None:
        hook = getattr(events, name, None)
        if hook is not None:
            hook.add_listener(listener)

    def order_listener(send_fill: Callable[[dict], None]) -> Callable[..., None]:
        def on_order(outcome: str = "", **kw: Any) -> None:
            if outcome in FILL_OUTCOMES:
                try:
                    send_fill(fill_details(ctx.ledger, ctx.symbol_rules, outcome, **kw))
                except Exception:      # an alert must never break order accounting
                    log.exception("trade alert failed")
        return on_order

    if ctx.role == "worker":
        wanted = {e for s in ctx.profile.notify for e in s.events} & set(ALERT_EVENTS)
        if not wanted or runner is None:
            return None

        def forward(event: str, data: dict) -> None:
            try:
                runner.send_message(MSG_ALERT, {"event": event, "data": _json_safe(data)})
            except Exception:
                log.exception("could not forward a %s alert to the master", event)

        if "trade" in wanted:
            listen("letrade_order", order_listener(lambda fill: forward("trade", fill)))
        if "balance" in wanted:
            listen("letrade_balance", lambda asset=None, before=None, after=None, delta=None, **_kw: forward(
                "balance", {"asset": asset, "before": before, "after": after, "delta": delta}))
        if "orders_blocked" in wanted:
            listen("letrade_orders_blocked", lambda blocked=False, reason=None, by=None, **_kw: forward(
                "orders_blocked", {"blocked": blocked, "reason": reason, "by": by}))
        if "flatten" in wanted:
            listen("letrade_flatten", lambda report=None, **_kw: forward("flatten", {"report": report}))
        return None

    if notifier is None or not any(notifier.wants(e) for e in ALERT_EVENTS):
        return None
    router = AlertRouter(notifier, {"profile": ctx.profile.name, "env": ctx.env.name, "run_id": ctx.run_id})
    if router.wants("trade"):
        listen("letrade_order", order_listener(router.fill))
    if router.wants("balance"):
        listen("letrade_balance", router.balance)
    if router.wants("orders_blocked"):
        listen("letrade_orders_blocked", router.orders_blocked)
    if router.wants("flatten"):
        listen("letrade_flatten", router.flatten)
    if ctx.role == "master" and runner is not None:
        def on_message(environment: Any = None, msg: Any = None, **_kw: Any) -> None:
            data = (msg.data if msg is not None else None) or {}
            handler = {"trade": router.fill, "balance": lambda d: router.balance(**d),
                       "orders_blocked": lambda d: router.orders_blocked(**d),
                       "flatten": lambda d: router.flatten(**d)}.get(str(data.get("event")))
            if handler is not None and isinstance(data.get("data"), dict):
                try:
                    handler(data["data"])
                except Exception:
                    log.exception("worker alert %s failed", data.get("event"))

        runner.register_message(MSG_ALERT, on_message)

    def ticker() -> None:
        while not router.closed:
            gevent.sleep(TICK_S)
            try:
                router.tick()
            except Exception:
                log.exception("trade alerts failed")

    greenlet = gevent.spawn(ticker)

    def on_quitting(**_kw: Any) -> None:
        greenlet.kill(block=False)
        router.close()

    events.quitting.add_listener(on_quitting)
    return router
