"""Balance snapshots, the run's fills, fund safety and PnL inside a Locust run; the live positions view.

:class:`RunFunds` works in the process that judges the run (a local process, or the master of a
distributed run) when the profile places orders and has credentials:

* **Snapshots** (``GET /api/v3/account``, weight 20; plus ``GET /api/v3/ticker/price`` per
  profile symbol, weight 2, for the portfolio weights): at ``test_start`` — synchronously, before
  Locust spawns a single user, so before any order can be sent — every ``funds.snapshot_every_s``
  seconds while the test runs, and at ``quitting`` after the kill switch (every order of the run
  final: it runs the kill switch itself), before the gate judges and writes the reports (Locust
  fires ``quitting`` listeners in reverse order: this one is added after the gate's and the
  plugin's, which stops the embedded simulator).
* **The run's fills** (``GET /api/v3/myTrades?symbol=&startTime=``, then ``fromId`` pages of
  1000; weight 20 each) for every symbol the run sent orders on, read incrementally at each
  snapshot and once more at the end; only the rows of the run's own orders (``(symbol,
  orderId)`` of the ledger's records) count (:mod:`letrade_perf.metrics.money`).
* **Criteria**: at the end one ``fund_safety{asset, status}`` sample per asset (``ok``: the
  change is explained exactly), and at each snapshot one ``portfolio_weight{asset}`` sample per
  portfolio asset, merged into the gate's store (:class:`~letrade_perf.metrics.recorder.Snapshot`).
* **Events**: ``letrade_balance(asset, before, after, delta)`` (Decimals) for every asset whose
  balance changed between two snapshots.
* **Reports**: the ``money`` block of ``summary.json`` (a final listener of the gate), the
  InfluxDB sink's ``balance`` and ``pnl`` points (:meth:`RunFunds.points`).

Distributed runs: the master takes the snapshots with a small client of its own (unpaced — a
snapshot every 30 s costs the IP ~50 weight a minute, inside the headroom the pacing fractions
leave; signed on the master's own clock, synced once at start). Each worker ships the orders it
entered (symbol, orderId, source) and its slippage figures with its Locust worker report
(``data["letrade_funds"]``, only what is new since its last report); the master's end snapshot
waits (at most :data:`FINAL_WAIT_S`) for a report from every worker, sent after the test stopped,
that shows no order of its still open.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import gevent

from ..metrics import money
from ..metrics.recorder import Series, Snapshot

if TYPE_CHECKING:
    from .exchange import ExchangeClient
    from .plugin import HarnessContext, ProcessState

log = logging.getLogger("letrade_perf.funds")

WIRE_KEY = "letrade_funds"
FINAL_WAIT_S = 10.0
"""How long the master waits for the workers' last reports before its end snapshot."""
TRADES_LIMIT = 1000
START_MARGIN_MS = 60_000
"""myTrades' startTime is the start snapshot's time less this (clock error); the run's own
orders are picked by orderId, so earlier trades are read but never counted."""
MAX_PAGES = 200
"""Pages of myTrades read per symbol and snapshot at most (a bound on one read's weight)."""


@dataclass
class BalanceSnapshot:
    """One ``GET /api/v3/account`` answer: total balances and the time taken (epoch s)."""

    at: float
    balances: dict[str, Decimal]
    prices: dict[str, Decimal] = field(default_factory=dict)


class _ClockedCtx:
    """The master's context with a clock of the master's own for signing (the master's context
    has none): every other attribute is the context's."""

    def __init__(self, ctx: HarnessContext, clock) -> None:
        self._ctx = ctx
        self.clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


class RunFunds:
    """Fund safety and PnL of one run (see the module docstring). ``ctx``/``state``: the
    process's :class:`HarnessContext` and the plugin's :class:`ProcessState`."""

    def __init__(self, ctx: HarnessContext, state: ProcessState) -> None:
        self.ctx = ctx
        self.state = state
        self.settings = ctx.profile.funds
        self.client: ExchangeClient | None = None
        self.assets_of: dict[str, tuple[str, str]] = {}
        self.start: BalanceSnapshot | None = None
        self.last: BalanceSnapshot | None = None
        self.end: BalanceSnapshot | None = None
        self.start_ms: int | None = None
        self.fills: dict[tuple[str, int], money.Fill] = {}       # (symbol, trade id) → fill of any order
        self._next_id: dict[str, int] = {}                        # symbol → next myTrades fromId
        self.slippage: dict[str, float] = {}                      # client order id → bps (local)
        self.orders: dict[tuple[str, int], str] = {}              # (symbol, orderId) → source (master)
        self.order_cids: dict[str, tuple[str, int]] = {}          # client order id → (symbol, orderId) (master)
        self.worker_funds: dict[str, dict[str, Any]] = {}         # master: client id → last funds report
        self.money: dict[str, Any] | None = None
        self.problem: str | None = None
        self.snapshots = 0
        self._stopped_at: float | None = None
        self._loop: gevent.Greenlet | None = None
        self._final_done = False
        self._sent_orders: set[str] = set()                        # worker: client order ids reported
        self._sent_slippage: set[str] = set()
        #: local: client order id → (symbol, orderId) of the orders with slippage figures, taken when
        #: the figure arrives (the ledger rolls old finished orders up into their orderIds only)
        self._slippage_keys: dict[str, tuple[str, int]] = {}

    # -- wiring ------------------------------------------------------------------------------------
    @staticmethod
    def wanted(ctx: HarnessContext) -> bool:
        """Whether this run takes balance snapshots: it places orders and has credentials."""
        return bool(ctx.profile.users.places_orders and ctx.credentials is not None and ctx.profile.funds.enabled)

    def register(self, environment) -> None:
        """Listen on ``environment``'s events (call after the gate and the plugin added their
        ``quitting`` listeners: Locust fires them in reverse order, and the end snapshot must come
        first)."""
        events = environment.events
        ctx = self.ctx
        if ctx.role == "worker":
            events.report_to_master.add_listener(self.on_report_to_master)
            self._listen_slippage(events)
            return
        events.test_start.add_listener(self.on_test_start)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        if ctx.role == "master":
            events.worker_report.add_listener(self.on_worker_report)
        else:
            self._listen_slippage(events)
        gate = self.state.gate
        if gate is not None:
            gate.final_listeners.append(self.on_final)

    def _listen_slippage(self, events) -> None:
        hook = getattr(events, "letrade_slippage", None)
        if hook is not None:
            hook.add_listener(self.on_slippage)

    def on_slippage(self, client_order_id=None, bps=None, **_kw) -> None:
        if client_order_id and bps is not None:
            self.slippage[str(client_order_id)] = float(bps)
            ledger = self.ctx.ledger
            r = ledger.get(str(client_order_id)) if ledger is not None and self.ctx.role != "worker" else None
            if r is not None and r.order_id is not None:
                self._slippage_keys[str(client_order_id)] = (r.symbol, r.order_id)

    # -- clients -----------------------------------------------------------------------------------
    def _client(self) -> ExchangeClient | None:
        if self.client is not None:
            return self.client
        ctx = self.ctx
        if ctx.role != "master":
            self.client = ctx.exchange
            info = ctx.exchange_info
        else:
            from ..clock import ClockSync
            from .exchange import ExchangeClient
            pacing = self.state.master_pacing
            info = getattr(pacing, "exchange_info", None)
            proxy = _ClockedCtx(ctx, None)
            client = ExchangeClient(proxy, ctx.base_url, report=False)   # the master keeps no stats of its own

            def server_ms() -> int:
                res = client.call("GET", "/api/v3/time", paced=False)
                if not res.ok or not isinstance(res.data, dict):
                    raise RuntimeError(f"GET /api/v3/time failed: {res.describe()}")
                return int(res.data["serverTime"])

            clock = ClockSync(server_ms, samples=3, refresh_s=300.0)
            try:
                clock.sync()
                proxy.clock = clock
            except RuntimeError as e:      # sign on the local clock (recvWindow 10 s)
                log.warning("funds: clock sync failed (%s): signing on the local clock", e)
            self.client = client
        from ..users.symbols import rules_from_exchange_info
        rules = rules_from_exchange_info(info or {})
        self.assets_of = {s: (r.base, r.quote) for s, r in rules.items()}
        return self.client

    def _call(self, method: str, path: str, params: dict) -> Any:
        client = self._client()
        if client is None:
            raise RuntimeError("no exchange client")
        clock = getattr(client.ctx, "clock", None)
        if self.ctx.role == "master" and clock is not None:
            try:
                clock.maybe_refresh()      # the master's own clock (a worker's housekeeping refreshes its own)
            except Exception as e:         # keep the last estimate
                log.debug("funds: clock refresh failed: %s", e)
        res = client.call(method, path, params, paced=self.ctx.role != "master", source="funds")
        if not res.ok:
            raise RuntimeError(f"{method} {path}: {res.describe()}")
        return res.data

    # -- snapshots ---------------------------------------------------------------------------------
    def take(self) -> BalanceSnapshot:
        """One balance snapshot (and the profile symbols' last prices); raises on failure."""
        from ..retry import STARTUP, retry_call

        def account(_timeout: float):
            try:
                return self._call("GET", "/api/v3/account", {})
            except RuntimeError as e:
                return e

        data, _attempts = retry_call(account, lambda r: isinstance(r, RuntimeError), STARTUP, sleep=gevent.sleep)
        if isinstance(data, RuntimeError):
            raise data
        snap = BalanceSnapshot(time.time(), money.balances_from_account(data))
        for symbol in self.ctx.profile.symbols:
            try:
                p = self._call("GET", "/api/v3/ticker/price", {"symbol": symbol})
                snap.prices[symbol] = money.dec(p["price"])
            except (RuntimeError, KeyError, TypeError, ArithmeticError) as e:
                log.debug("funds: no price for %s: %s", symbol, e)
        self.snapshots += 1
        return snap

    def _server_ms(self) -> int:
        clock = getattr(self.client.ctx, "clock", None) if self.client is not None else None
        return int(clock.server_now_ms()) if clock is not None else int(time.time() * 1000)

    def on_test_start(self, **_kw) -> None:
        """The start snapshot, before a single user spawns (Locust fires ``test_start`` first)."""
        if self.start is not None or self._final_done:
            return
        try:
            self._client()
            self.start_ms = self._server_ms() - START_MARGIN_MS
            self.start = self.last = self.take()
            log.info("funds: start balances taken (%d assets)", len(self.start.balances))
            self._record_weights(self.start)
            self.write_points(self.start.at)
        except Exception as e:       # never take the run down: fund safety ends inconclusive
            self.problem = f"start snapshot failed: {e}"
            log.error("funds: %s — fund safety cannot be verified", self.problem)
            return
        self._loop = gevent.spawn(self._periodic)

    def on_test_stop(self, **_kw) -> None:
        self._stopped_at = time.time()

    def _periodic(self) -> None:
        every = self.settings.snapshot_every_s
        while True:
            gevent.sleep(every)
            if self._final_done:
                return
            try:
                self._step(self.take())
            except Exception as e:     # the next period tries again
                log.warning("funds: periodic snapshot failed: %s", e)

    def _step(self, snap: BalanceSnapshot) -> None:
        before = self.last
        self.last = snap
        self._record_weights(snap)
        if before is not None:
            self._fire_changes(before, snap)
        try:
            self._read_fills()
        except Exception as e:
            log.warning("funds: reading the run's fills failed: %s", e)
        self.write_points(snap.at)

    def _fire_changes(self, before: BalanceSnapshot, after: BalanceSnapshot) -> None:
        hook = getattr(self.ctx.environment.events, "letrade_balance", None)
        if hook is None:
            return
        for asset in sorted(set(before.balances) | set(after.balances)):
            b, a = before.balances.get(asset, money.ZERO), after.balances.get(asset, money.ZERO)
            if a != b:
                try:
                    hook.fire(asset=asset, before=b, after=a, delta=a - b)
                except Exception:
                    log.exception("letrade_balance listener failed")

    # -- the run's orders and fills -----------------------------------------------------------------
    def run_orders(self) -> dict[tuple[str, int], str]:
        """(symbol, orderId) → source of every order of the run whose orderId is known."""
        if self.ctx.role == "master":
            return dict(self.orders)
        ledger = self.ctx.ledger
        return ledger.order_sources() if ledger is not None else {}

    def run_symbols(self) -> set[str]:
        if self.ctx.role == "master":
            return {s for s, _ in self.orders}
        ledger = self.ctx.ledger
        return ledger.symbols() if ledger is not None else set()

    def _read_fills(self) -> None:
        """New myTrades rows of every symbol the run sent orders on (incremental: ``fromId``)."""
        if self.start_ms is None:
            return
        for symbol in sorted(self.run_symbols()):
            if symbol not in self.assets_of:
                continue
            for _ in range(MAX_PAGES):
                params: dict[str, Any] = {"symbol": symbol, "limit": TRADES_LIMIT}
                nxt = self._next_id.get(symbol)
                if nxt is None:
                    params["startTime"] = self.start_ms
                else:
                    params["fromId"] = nxt
                rows = self._call("GET", "/api/v3/myTrades", params)
                if not isinstance(rows, list):
                    raise RuntimeError(f"myTrades {symbol}: not a list")
                for row in rows:
                    f = money.Fill.from_api(row)
                    self.fills[(f.symbol, f.trade_id)] = f
                    self._next_id[symbol] = max(self._next_id.get(symbol, 0), f.trade_id + 1)
                if len(rows) < TRADES_LIMIT:
                    break

    def _resolve_order_ids(self) -> None:
        """Orders of the run (local) accepted or unresolved without a known orderId: look it up."""
        ledger = self.ctx.ledger
        if ledger is None or self.ctx.role == "master":
            return
        for r in ledger.records():
            if r.order_id is None and (r.placed or r.was_unknown) and r.outcome not in ("rejected", "not_executed"):
                try:
                    data = self._call("GET", "/api/v3/order", {"symbol": r.symbol,
                                                               "origClientOrderId": r.client_order_id})
                    ledger.set_order_id(r.client_order_id, int(data["orderId"]))
                except Exception as e:
                    log.warning("funds: orderId of %s unknown: %s", r.client_order_id, e)

    def _slippage_by_order(self) -> dict[tuple[str, int], float]:
        if self.ctx.role == "master":
            return {self.order_cids[cid]: bps for cid, bps in self.slippage.items() if cid in self.order_cids}
        ledger = self.ctx.ledger
        out: dict[tuple[str, int], float] = {}
        for cid, bps in self.slippage.items():
            key = self._slippage_keys.get(cid)
            if key is None:
                r = ledger.get(cid) if ledger is not None else None
                key = (r.symbol, r.order_id) if r is not None and r.order_id is not None else None
            if key is not None:
                out[key] = bps
        return out

    def run_fills(self) -> list[money.Fill]:
        orders = self.run_orders()
        return [f for f in self.fills.values() if (f.symbol, f.order_id) in orders]

    # -- the end -----------------------------------------------------------------------------------
    def on_quitting(self, **_kw) -> None:
        """The end snapshot after every order is final, then the criteria samples and the money block."""
        if self._final_done:
            return
        self._final_done = True
        if self._loop is not None:
            self._loop.kill(block=False)
        if self.start is None:
            return
        ctx = self.ctx
        try:
            if ctx.role == "master":
                self._wait_for_workers()
            else:
                ctx.kill_switch()
                self._resolve_order_ids()
            end = self._stable_end()
            self.end = end
            self._finish(end)
        except Exception as e:
            self.problem = f"end snapshot failed: {e}"
            log.error("funds: %s — fund safety cannot be verified", self.problem)

    def _stable_end(self) -> BalanceSnapshot:
        """The end snapshot between two reads of the fills that found nothing new (a fill between
        the balances and the fills read would otherwise look unexplained); at most 3 tries."""
        self._read_fills()
        end = None
        for _ in range(3):
            seen = len(self.fills)
            end = self.take()
            self._read_fills()
            if len(self.fills) == seen:
                break
            log.warning("funds: the run's fills changed during the end snapshot: taking it again")
        assert end is not None
        before, self.last = self.last, end
        self._record_weights(end)
        if before is not None:
            self._fire_changes(before, end)
        return end

    def _finish(self, end: BalanceSnapshot) -> None:
        assert self.start is not None
        fills = self.run_fills()
        portfolio = {a for s in self.ctx.profile.symbols if s in self.assets_of for a in self.assets_of[s]}
        valuation = self._valuation()
        self.money = money.money_report(start=self.start.balances, end=end.balances, fills=fills,
                                        sources=self.run_orders(), assets_of=self.assets_of,
                                        slippage_bps=self._slippage_by_order(), valuation=valuation,
                                        prices=end.prices, portfolio=portfolio)
        self.money["snapshots"] = self.snapshots
        fs = self.money["fund_safety"]
        snap = Snapshot(end.at, end.at)
        for check in fs["checks"]:
            s = snap.series.setdefault(("fund_safety", (("asset", check["asset"]),
                                                         ("status", "ok" if check["safe"] else "fail"))), Series())
            s.hist.record(1.0)
        self._merge(snap)
        self.write_points(end.at)
        for u in fs["unexplained"]:
            log.error("fund safety: %s changed by %s, the run's fills explain %s: unexplained %s", u["asset"],
                      u["delta"], u["explained"], u["unexplained"])
        log.info("funds: %d of %d assets explained; realised PnL %s %s, fees %s", fs["safe"], fs["assets"],
                 self.money["pnl"]["run"]["realised_pnl"], valuation, self.money["pnl"]["run"]["fees"])

    def _valuation(self) -> str:
        for s in self.ctx.profile.symbols:
            if s in self.assets_of:
                return self.assets_of[s][1]
        return "USDT"

    def _wait_for_workers(self) -> None:
        """Master: wait for a report from every worker sent after the test stopped with none of its
        orders open (bounded)."""
        stopped = self._stopped_at or time.time()
        deadline = time.monotonic() + FINAL_WAIT_S
        while time.monotonic() < deadline:
            reports = self.worker_funds
            if reports and all(r.get("_at", 0) > stopped and not r.get("open") for r in reports.values()):
                return
            gevent.sleep(0.25)
        log.warning("funds: not every worker reported its orders final within %.0f s", FINAL_WAIT_S)

    def _merge(self, snap: Snapshot) -> None:
        gate = self.state.gate
        if gate is not None:
            gate.gate.merge(snap, source="funds")

    def _record_weights(self, snap: BalanceSnapshot) -> None:
        if not self.assets_of:
            return
        portfolio = {a for s in self.ctx.profile.symbols if s in self.assets_of for a in self.assets_of[s]}
        weights, _values, _unvalued = money.portfolio_weights(snap.balances, portfolio, self._valuation(),
                                                              snap.prices, self.assets_of)
        if not weights:
            return
        out = Snapshot(snap.at, snap.at)
        for asset, w in weights.items():
            out.series.setdefault(("portfolio_weight", (("asset", asset),)), Series()).hist.record(w)
        self._merge(out)

    def on_final(self, summary: dict) -> None:
        """The gate's final listener: the ``money`` block of ``summary.json``."""
        block = self.money
        if block is None:
            block = {"problem": self.problem or "no end snapshot"} if (self.start or self.problem) else None
        elif self.problem:
            block = dict(block, problem=self.problem)
        summary["money"] = block
        unexplained = ((block or {}).get("fund_safety") or {}).get("unexplained") or []
        if unexplained:     # the criterion's detail names every unexplained asset and amount
            detail = "unexplained: " + ", ".join(f"{u['asset']} {u['unexplained']}" for u in unexplained[:20])
            for c in summary.get("criteria") or []:
                if c.get("metric") == "fund_safety" and c.get("verdict") == "fail":
                    c["reason"] = f"{c['reason']}; {detail}" if c.get("reason") else detail

    # -- distributed ---------------------------------------------------------------------------------
    def on_report_to_master(self, client_id=None, data=None, **_kw) -> None:
        """Worker: the orders entered and slippage figures since the last report."""
        if data is None:
            return
        data[WIRE_KEY] = worker_report(self.ctx, self)

    def on_worker_report(self, client_id=None, data=None, **_kw) -> None:
        """Master: accumulate a worker's orders and slippage figures."""
        rep = (data or {}).get(WIRE_KEY)
        if not isinstance(rep, dict):
            return
        for row in rep.get("orders") or ():
            try:
                symbol, oid, source, cid = row
                self.orders[(str(symbol), int(oid))] = str(source)
                self.order_cids[str(cid)] = (str(symbol), int(oid))
            except (TypeError, ValueError):
                continue
        for cid, bps in rep.get("slippage") or ():
            self.slippage[str(cid)] = float(bps)
        self.worker_funds[str(client_id)] = {"open": int(rep.get("open") or 0), "_at": time.time()}

    # -- views ---------------------------------------------------------------------------------------
    def open_orders_by_asset(self) -> dict[str, int]:
        """Open orders of the run per asset (both assets of the order's symbol)."""
        ctx = self.ctx
        if ctx.role == "master":
            symbols = [o.get("symbol") for r in self.state.worker_reports.values()
                       for o in (r.get("ledger") or {}).get("open_orders", [])]
        else:
            symbols = [r.symbol for r in ctx.ledger.open_orders()] if ctx.ledger is not None else []
        out: dict[str, int] = {}
        for s in symbols:
            for a in self.assets_of.get(str(s), ()):
                out[a] = out.get(a, 0) + 1
        return out

    def view(self) -> dict[str, Any]:
        """The live positions view (JSON-able): per asset start, now, the run's explained delta,
        the unexplained rest and open orders; PnL per strategy and for the run."""
        start, last = self.start, self.last
        out: dict[str, Any] = {"enabled": True, "snapshots": self.snapshots, "problem": self.problem,
                               "started_at": start.at if start else None, "updated_at": last.at if last else None,
                               "final": self.end is not None, "assets": {}, "pnl": None}
        if start is None or last is None:
            return out
        fills = self.run_fills()
        try:
            explained = money.explained_deltas(fills, self.assets_of)
            opened = self.open_orders_by_asset()
            for c in money.fund_safety(start.balances, last.balances, explained):
                if c.start == 0 and c.end == 0 and c.explained == 0 and not opened.get(c.asset):
                    continue
                out["assets"][c.asset] = {"start": money.fmt(c.start), "now": money.fmt(c.end),
                                          "delta": money.fmt(c.explained), "unexplained": money.fmt(c.unexplained),
                                          "open_orders": opened.get(c.asset, 0)}
            if self.money is not None:
                out["pnl"] = self.money["pnl"]
            else:
                rep = money.money_report(start=start.balances, end=last.balances, fills=fills,
                                         sources=self.run_orders(), assets_of=self.assets_of,
                                         slippage_bps=self._slippage_by_order(), valuation=self._valuation(),
                                         prices=last.prices, portfolio=())
                out["pnl"] = rep["pnl"]
        except Exception as e:   # a view never takes the run down
            out["problem"] = f"positions view: {e}"
        return out

    def points(self) -> list[tuple[str, dict[str, str], dict[str, float]]]:
        """InfluxDB points of the last snapshot: ``balance{asset}`` (start, now, delta, unexplained,
        weight) and ``pnl{strategy}`` (realised, fees, slippage_cost, return). At most
        :data:`MAX_POINT_TAGS` assets and strategies each."""
        v = self.view()
        out: list[tuple[str, dict[str, str], dict[str, float]]] = []
        weights = (self.money or {}).get("weights") or {}
        for asset, row in list(v.get("assets", {}).items())[:MAX_POINT_TAGS]:
            fields = {k: float(row[k]) for k in ("start", "now", "delta", "unexplained") if row.get(k) is not None}
            fields["open_orders"] = float(row.get("open_orders") or 0)
            if asset in weights:
                fields["weight"] = float(weights[asset])
            out.append(("balance", {"asset": asset}, fields))
        pnl = v.get("pnl") or {}
        rows = [("run", pnl.get("run"))] + list((pnl.get("by_strategy") or {}).items())[:MAX_POINT_TAGS]
        for strategy, p in rows:
            if not p:
                continue
            fields = {k: float(p[k]) for k in ("realised_pnl", "fees", "slippage_cost") if p.get(k) is not None}
            if p.get("return") is not None:
                fields["return"] = float(p["return"])
            out.append(("pnl", {"strategy": str(strategy)}, fields))
        return out


    def write_points(self, ts: float) -> None:
        """The InfluxDB sink's ``balance`` and ``pnl`` points (run-level: no ``worker`` tag), when
        the run has a sink."""
        sink = self.state.sink
        if sink is None:
            return
        try:
            for measurement, tags, fields in self.points():
                if fields:
                    capped = {k: sink.cap(measurement, v) for k, v in tags.items()}
                    sink.add_point(measurement, capped, fields, ts, per_process=False)
        except Exception:   # the sink never takes the run down
            log.exception("funds: sink points failed")


MAX_POINT_TAGS = 50
"""Assets and strategies written to InfluxDB per snapshot at most (tag cardinality)."""


def worker_report(ctx: HarnessContext, funds: RunFunds) -> dict[str, Any]:
    """A worker's ``letrade_funds`` report: orders whose orderId became known and slippage figures
    since the last report, and how many of its orders are still open."""
    sent, sent_slip = funds._sent_orders, funds._sent_slippage
    ledger = ctx.ledger
    orders = []
    open_n = 0
    if ledger is not None:
        held = set()
        for r in ledger.records():
            held.add(r.client_order_id)
            if r.outcome is None:
                open_n += 1
            if r.order_id is not None and r.client_order_id not in sent:
                sent.add(r.client_order_id)
                orders.append([r.symbol, r.order_id, r.source, r.client_order_id])
        open_n += len(ledger.in_flight)
        sent &= held            # an order the ledger rolled up never comes back: forget it (bounded)
    # shipped once: the master keeps them (the worker never judges), so the worker holds only the new
    slip = [[cid, bps] for cid, bps in funds.slippage.items() if cid not in sent_slip]
    funds.slippage.clear()
    sent_slip.clear()
    return {"orders": orders, "slippage": slip, "open": open_n}


def install_funds(ctx: HarnessContext, state: ProcessState, environment) -> RunFunds | None:
    """Build and register the run's :class:`RunFunds` when the run takes balance snapshots."""
    if not RunFunds.wanted(ctx):
        return None
    funds = RunFunds(ctx, state)
    funds.register(environment)
    return funds


__all__ = ["RunFunds", "BalanceSnapshot", "install_funds", "worker_report", "WIRE_KEY"]
