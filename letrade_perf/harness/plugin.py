"""The Locust plugin: turns a profile into a configured Locust run against Binance or the simulator.

Use from a locustfile (``locustfiles/binance.py`` does exactly this)::

    from letrade_perf.harness.plugin import ProfileShape, register_plugin
    register_plugin()

Command-line options (besides Locust's own ``--profile``, which names the profile: a bundled
name or a YAML path; default ``smoke``):

* ``--letrade-env sim|testnet|production`` — target (default: the profile's ``env``);
* ``--host URL`` (Locust's) — a base from which REST, streams and WebSocket API derive (default:
  the profile's ``target:``, else the environment's own URLs; env ``sim``: an embedded simulator);
* ``--letrade-stream-url URL`` / ``--letrade-ws-api-url URL`` — one of those URLs on its own;
* ``--letrade-key-file PATH`` — API credentials file (else environment variables; sim: demo key);
* ``--letrade-run-id ID`` — run id (default: UTC timestamp + profile name);
* ``--letrade-reports DIR`` — the run's report directory (``orders.json`` is written there);
* ``--operator NAME`` — who runs the run, for the audit trail (:mod:`.audit`) and the reports
  (default: the OS user).

SIGUSR1 blocks new orders and SIGUSR2 resumes them (:meth:`HarnessContext.block_orders`; a
master tells its workers, :mod:`.controls`); the web UI's Operations tab and ``/letrade/...``
routes do the same (:mod:`.webui_ops`).

The profile configures letrade-perf's own users (and drops those of its kinds the profile does
not run); every other user class of the locustfile is left as it is. Before any user starts,
credentials the profile needs and the target's exchangeInfo are checked (exit code 2 naming the
missing variables or the unreachable URL; start-up calls retry transient failures).

On ``init`` the plugin builds a :class:`HarnessContext` as ``environment.letrade``: what the
users of the process share (profile, target, credentials, clock, pacer, ledger, …). What only the
plugin uses — the embedded simulator, the budget split, the workers' reports, the criteria gate,
the metrics sink — it keeps apart in its :class:`ProcessState` (``plugin.state``). The master
of a distributed run fetches exchangeInfo once and hands it to the workers, splits the pacing
budget (:class:`MasterPacing`: a worker's start-up calls are reserved inside its share; a lost
worker's share goes to the survivors at once) and aggregates what workers report; local and
worker processes sync the clock, build the process pacer (wrapped by :class:`WorkerPacing` on
workers) and the order ledger (a local process fetches exchangeInfo itself). With env ``sim`` and no
``--host``, the local (or master) process starts the embedded simulator with the profile's
``sim:`` settings and stops it at quit; in a plain ``locust --master/--worker`` run every worker
needs ``--host`` (and the same ``--profile``) on its command line — ``letrade-perf run`` passes
both.

Events defined here (all on ``environment.events``):

* ``letrade_ws_lag(stream, lag_ms, uncertainty_ms, event_time, received_at)``
* ``letrade_ws_time(name, wanted_ms, connected_ms)`` — a WebSocket connection's wanted and
  connected time since its last report (``ws_connection`` is connected ÷ wanted)
* ``letrade_slippage(symbol, side, order_via, bps, decision_price, avg_price, client_order_id)``
* ``letrade_fee(symbol, side, asset, amount, quote_value, bps, client_order_id)``
* ``letrade_order(outcome, client_order_id, symbol, side, source, via)`` — one per counted
  ledger transition (``sent``, ``placed``, ``filled``, ``expired``, ``canceled``, ``rejected``,
  ``unknown``, ``unknown_resolved``, ``not_executed``, ``refused``)
* ``letrade_pacing(stats, role, client_id)`` — :class:`~letrade_perf.pacing.PacerStats` every 2 s
  (on the master: each worker's, as reported)
* ``letrade_abort(reason, exit_code)`` — the run is aborting for safety (418, kill switch)

Exit code 3 (``environment.process_exit_code``) when the run aborts for safety; the kill switch
(:func:`~letrade_perf.harness.ledger.cancel_open_orders`) runs on ``test_stop``, ``quitting``,
418 and abort.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Literal

import gevent
import locust
from locust import LoadTestShape, between, constant
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner

from ..core.endings import EXIT_CONFIG, EXIT_SAFETY
from ..core.errors import ConfigError
from ..run import make_run_id
from ..users.symbols import SymbolRules, rules_from_exchange_info
from ..users.ws import WsCounters
from .controls import BlockHistory
from .exchange import ExchangeClient
from .ledger import OrderLedger, cancel_open_orders, merge_counts

if TYPE_CHECKING:
    from gevent import Greenlet
    from locust.env import Environment as LocustEnvironment
    from locust.event import Events

    from ..clock import ClockSync
    from ..config.credentials import Credentials
    from ..config.environments import Environment
    from ..config.profile import Profile
    from ..metrics.sink import InfluxSink
    from ..pacing import Pacer
    from ..sim.process import SimulatorProcess
    from .audit import AuditTrail
    from .distributed import MasterPacing, WorkerPacing
    from .gate import LocustGate
    from .positions import RunFunds

log = logging.getLogger("letrade_perf.harness.plugin")

DEFAULT_PROFILE = "smoke"
PACING_EVENT_EVERY_S = 2.0
STARTUP_INFO_TIMEOUT_S = 30.0
"""How long a worker waits for the master's exchangeInfo before fetching it itself."""
MSG_ABORT = "letrade_abort"
CUSTOM_EVENTS = ("letrade_ws_lag", "letrade_ws_time", "letrade_slippage", "letrade_fee", "letrade_order",
                 "letrade_pacing", "letrade_abort",
                 # trading operations: ``letrade_orders_blocked(blocked, reason, by)`` (new orders
                 # blocked or resumed), ``letrade_flatten(report)`` (a flatten finished),
                 # ``letrade_balance(asset, before, after, delta)`` (an asset's balance changed between two
                 # balance snapshots, Decimals; alerts apply their threshold), ``letrade_audit(action, **fields)`` (one order action for the audit trail)
                 "letrade_orders_blocked", "letrade_flatten", "letrade_balance", "letrade_audit")


def define_events(events) -> None:
    """Add the plugin's custom event hooks to ``events`` (idempotent)."""
    for name in CUSTOM_EVENTS:
        if not isinstance(getattr(events, name, None), EventHook):
            setattr(events, name, EventHook())


def _hook(events: Events, name: str) -> EventHook:
    """One of the custom event hooks :func:`define_events` added (Locust's ``Events`` does not declare them)."""
    hook: EventHook = getattr(events, name)
    return hook


Role = Literal["local", "master", "worker"]
"""What one Locust process is in the run: a plain (local) run, or a distributed run's master or worker."""


@dataclass
class ProcessState:
    """What the plugin keeps for one process beside the shared context — nothing a user reads.

    Owned by :class:`LetradePlugin` (``plugin.state``); the context reaches it only for its own
    bookkeeping (the master's :meth:`HarnessContext.order_counts` and
    :meth:`HarnessContext.summary`, the kill switch, the clock re-sync).

    Fields: ``sim`` (the embedded simulator, if this process started it; stopped at quit),
    ``master_pacing`` (master: the :class:`MasterPacing` that splits the budget among workers),
    ``worker_pacing`` (worker: the :class:`WorkerPacing` that applies the master's share to the
    context's pacer), ``worker_reports`` (master: the last ``letrade`` report per worker client
    id), ``gate`` (the :class:`~letrade_perf.harness.gate.LocustGate`: metrics, criteria,
    reports), ``sink`` (the :class:`~letrade_perf.metrics.sink.InfluxSink`, when configured),
    ``greenlets`` (the plugin's background greenlets, killed at quit), ``resyncing`` (a ``-1021``
    clock re-sync is under way).
    """

    sim: SimulatorProcess | None = None
    master_pacing: MasterPacing | None = None
    worker_pacing: WorkerPacing | None = None
    worker_reports: dict[str, dict] = field(default_factory=dict)
    gate: LocustGate | None = None
    sink: InfluxSink | None = None
    greenlets: list[Greenlet] = field(default_factory=list, repr=False)
    resyncing: bool = False
    funds: RunFunds | None = None
    """The run's balance snapshots, fund safety and PnL (:mod:`.positions`; local or master, when
    the profile places orders)."""
    flatten_running: bool = False
    """A flatten (:meth:`HarnessContext.flatten`) is under way (one at a time)."""
    flatten_greenlet: Any = field(default=None, repr=False)
    """The greenlet running it: its own orders pass an aborted run's refusal."""
    flatten_reports: list[dict] = field(default_factory=list, repr=False)
    """The reports of the flattens this process ran (in the run's reports)."""


@dataclass
class HarnessContext:
    """Everything the users of one process share, as ``environment.letrade``.

    Fields: ``environment`` (Locust's :class:`~locust.env.Environment`), ``profile``
    (:class:`~letrade_perf.config.profile.Profile`), ``env`` (the target
    :class:`~letrade_perf.config.environments.Environment` with its URLs), ``role`` (``local`` |
    ``master`` | ``worker``), ``run_id``, ``reports_dir`` (None: no reports), ``credentials``
    (:class:`~letrade_perf.config.credentials.Credentials`; None without keys), ``clock``
    (:class:`~letrade_perf.clock.ClockSync`; None on the master), ``pacer``
    (:class:`~letrade_perf.pacing.Pacer`; None on the master — on a worker the master sets its
    share), ``exchange_info`` (the target's exchangeInfo; None on the master), ``symbol_rules``
    (symbol → :class:`SymbolRules`), ``ledger`` (:class:`OrderLedger`), ``exchange``
    (:class:`ExchangeClient`, the process-level paced client; None on the master), ``ws_counters``
    (:class:`WsCounters`, stream connection counters), ``aborted`` (the abort reason, or None),
    ``clock_errors`` (``-1021`` answers so far).

    What only the plugin uses — the embedded simulator, the budget split, the workers' reports,
    the criteria gate and the metrics sink — is in its :class:`ProcessState`, not here.
    """

    environment: LocustEnvironment
    profile: Profile
    env: Environment
    role: Role
    run_id: str
    reports_dir: str | None = None
    credentials: Credentials | None = None
    clock: ClockSync | None = None
    pacer: Pacer | None = None
    exchange_info: dict | None = None
    symbol_rules: dict[str, SymbolRules] = field(default_factory=dict)
    ledger: OrderLedger | None = None
    exchange: ExchangeClient | None = None
    ws_counters: WsCounters = field(default_factory=WsCounters)
    aborted: str | None = None
    clock_errors: int = 0
    """``-1021`` answers (timestamp outside recvWindow): each triggers a clock re-sync."""
    strategy_stops: dict[str, int] = field(default_factory=dict)
    """Strategies of this process that stopped trading, per reason (:meth:`note_strategy_stop`)."""
    orders_blocked: str | None = None
    """Why new orders are blocked (:meth:`block_orders`), or None: the call path's gate holds back
    every new order but the flatten step's while it is set."""
    order_blocks: BlockHistory = field(default_factory=BlockHistory)
    """Who blocked new orders, when, why, who resumed, how long (:mod:`.controls`)."""
    operator: str = ""
    """Who runs the run (``--operator``; default the OS user): in the audit trail and the reports."""
    audit: AuditTrail | None = None
    """This process's audit trail (:mod:`.audit`), when the run has a report directory."""
    _process: ProcessState = field(default_factory=ProcessState, repr=False, compare=False)
    """The plugin's :class:`ProcessState` of this process (private: only the methods below use it)."""

    # -- URLs and symbols ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.env.rest_url

    @property
    def ws_stream_url(self) -> str:
        return self.env.ws_stream_url

    @property
    def ws_api_url(self) -> str:
        return self.env.ws_api_url

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.profile.symbols)

    # -- safety ----------------------------------------------------------------------------------
    def order_refusal(self, symbol: str, notional: Decimal) -> str | None:
        """Why an order of ``notional`` on ``symbol`` must not be sent (None = allowed)."""
        safety = self.profile.safety
        if self.aborted and gevent.getcurrent() is not self._process.flatten_greenlet:
            return f"run aborted: {self.aborted}"     # the flatten's own orders still trade back
        if self.env.production and not safety.allow_production_orders:
            return "production orders not allowed (safety.allow_production_orders is false)"
        allow = tuple(safety.symbol_allowlist) or tuple(self.profile.symbols)
        if symbol not in allow:
            return f"{symbol} not in safety.symbol_allowlist"
        if Decimal(str(notional)) > Decimal(str(safety.max_order_notional)):
            return f"notional {notional} exceeds safety.max_order_notional {safety.max_order_notional}"
        return None

    # -- operator controls -------------------------------------------------------------------
    def block_orders(self, reason: str, by: str) -> bool:
        """Block new orders (idempotent: False when already blocked): the call path holds back
        every new order but the flatten step's; the load and the monitoring go on. A master
        tells every worker (:mod:`.controls`)."""
        from .controls import apply
        return apply(self, True, reason, by)

    def resume_orders(self, by: str) -> bool:
        """Lift the block of new orders (idempotent: False when not blocked)."""
        from .controls import apply
        return apply(self, False, None, by)

    # -- rate-limit feedback ------------------------------------------------------------------
    def on_429(self, retry_after_s: float) -> None:
        """A 429: the whole process (and, through the master, every worker) pauses."""
        if self.pacer is not None:
            self.pacer.on_429(retry_after_s)

    def on_clock_error(self) -> None:
        """A ``-1021`` (request timestamp outside recvWindow): the local clock drifted from the
        server's. Re-sync at once (one re-sync at a time, at most one per second)."""
        self.clock_errors += 1
        clock, process = self.clock, self._process
        if clock is None or process.resyncing or not clock.resync_due():
            return
        process.resyncing = True
        gevent.spawn(self._resync, clock)

    def _resync(self, clock: ClockSync) -> None:
        try:
            est = clock.resync()
            log.warning("-1021 (timestamp outside recvWindow): clock re-synced, server - local = %+.1f ms ± %.1f ms",
                        est.offset_ms, est.uncertainty_ms)
        except Exception as e:     # keep the last estimate; the next -1021 tries again
            log.warning("-1021: clock re-sync failed: %s", e)
        finally:
            self._process.resyncing = False

    def on_418(self, retry_after_s: float) -> None:
        """A 418: ban every acquire, cancel the run's orders, abort with exit code 3."""
        if self.pacer is not None:
            self.pacer.on_418(retry_after_s)
        self.abort(f"IP banned (HTTP 418, retry after {retry_after_s:g}s)")

    def abort(self, reason: str, exit_code: int = EXIT_SAFETY) -> None:
        """Abort the run for safety (idempotent): kill switch, exit code, quit.

        On a worker the master is told (it sets the exit code and quits the whole run)."""
        if self.aborted is not None:
            return
        self.aborted = reason
        env = self.environment
        env.process_exit_code = exit_code
        log.error("aborting the run: %s (exit code %d)", reason, exit_code)
        hook = getattr(env.events, "letrade_abort", None)
        if hook is not None:
            hook.fire(reason=reason, exit_code=exit_code)
        gevent.spawn(self._abort, reason, exit_code)

    def _abort(self, reason: str, exit_code: int) -> None:
        if self.profile.flatten.on_abort and self.role != "master":
            self.flatten(f"abort: {reason}", "abort", block=False)    # the kill switch, then the trade-back
        else:
            self.kill_switch()
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            try:
                runner.send_message(MSG_ABORT, {"reason": reason, "exit_code": exit_code})
            except Exception:
                log.exception("could not tell the master to abort")
        elif runner is not None:
            runner.quit()

    def note_strategy_stop(self, reason: str) -> None:
        """A strategy stopped trading for ``reason`` (counted per reason up to its first ``:``; a
        safety cap's stop is a shortfall of the run's plan)."""
        key = reason.split(":", 1)[0].strip()[:80] or "unknown"
        self.strategy_stops[key] = self.strategy_stops.get(key, 0) + 1

    def kill_switch(self) -> None:
        """Cancel every order of the run still open, after those still being sent are answered
        (never raises)."""
        ledger = self.ledger
        if ledger is None or self.exchange is None or not (ledger.in_flight or ledger.open_orders()):
            return
        try:
            cancel_open_orders(self)
        except Exception:
            log.exception("kill switch failed")

    def flatten(self, reason: str, by: str, *, trade_back: bool | None = None, block: bool = True) -> dict:
        """Cancel the run's open orders and, when ``trade_back`` (default: the profile's
        ``flatten.trade_back``), trade this process's net position back
        (:func:`~letrade_perf.harness.flatten.flatten`); the report. One at a time: a request
        while one runs answers ``already_running``. ``block`` (an operator's request while the run
        goes on): new orders are blocked first (:meth:`block_orders`) so the strategies do not
        reopen at once — they stay blocked until resumed. In a distributed run each worker
        flattens its own orders (the master forwards the request); the master holds none."""
        process = self._process
        if process.flatten_running:
            return {"reason": reason, "by": by, "ok": False, "already_running": True,
                    "human": "a flatten is already running"}
        process.flatten_running = True
        try:
            blocker = getattr(self, "block_orders", None)
            if block and self.aborted is None and blocker is not None:
                blocker(f"flatten: {reason}", by)
            if self.role == "master":      # no orders here: the workers' flattens report (and alert)
                from .controls import request_flatten
                asked = request_flatten(self, reason, by)
                return {"reason": reason, "by": by, "ok": asked > 0, "role": "master", "workers_asked": asked,
                        "human": f"asked {asked} worker(s) to flatten their own orders: each worker's "
                                 "report is in the run's summary"}
            from .flatten import flatten
            process.flatten_greenlet = gevent.getcurrent()
            report = flatten(self, reason, by, self.profile.flatten.trade_back if trade_back is None else trade_back)
            if self.ledger is not None and self.exchange is not None:
                process.flatten_reports.append(report)
            return report
        finally:
            process.flatten_greenlet = None
            process.flatten_running = False

    # -- reporting ---------------------------------------------------------------------------
    def positions_view(self) -> dict[str, Any]:
        """The live positions view (JSON-able; :meth:`~letrade_perf.harness.positions.RunFunds.view`):
        per asset ``start``, ``now`` (last balance snapshot), ``delta`` (explained by the run's
        fills), ``unexplained`` and ``open_orders``; ``pnl`` (``run`` and ``by_strategy``).
        ``{"enabled": False, ...}`` where no snapshots are taken (a worker; a run without orders
        or credentials)."""
        funds = self._process.funds
        if funds is None:
            why = "a worker: the master takes the snapshots" if self.role == "worker" else \
                "the run places no orders or has no credentials"
            return {"enabled": False, "reason": why, "assets": {}, "pnl": None}
        return funds.view()

    def order_counts(self) -> dict[str, int]:
        """The run's order counts (on the master: summed over the workers' last reports)."""
        if self.role == "master":
            return merge_counts(r.get("ledger") for r in self._process.worker_reports.values())
        return self.ledger.counts() if self.ledger is not None else {}

    def summary(self) -> dict:
        """JSON-able state for reports: orders, WS counters, pacer stats, abort reason."""
        out: dict[str, Any] = {"run_id": self.run_id, "profile": self.profile.name, "env": self.env.name,
                               "target": self.env.urls(), "role": self.role, "aborted": self.aborted,
                               "orders": self.order_counts(), "operator": self.operator,
                               "orders_blocked": self.order_blocks.report(),
                               "audit": self.audit.path if self.audit is not None else None}
        if self.role == "master":
            reports = self._process.worker_reports
            pacing = self._process.master_pacing
            lost = {str(w.get("worker")) for w in pacing.lost_workers()} if pacing is not None else set()
            # a lost worker's figures are its last report's: what it did after is missing
            out["workers"] = {cid: dict(r, lost=cid in lost) for cid, r in reports.items()}
            out["flatten"] = [dict(f, worker=cid) for cid, r in reports.items() for f in r.get("flatten") or ()]
            out["open_orders"] = [o for cid, r in reports.items() if cid not in lost
                                  for o in (r.get("ledger") or {}).get("open_orders", [])]
            out["orders_of_lost_workers"] = [dict(o, worker=cid) for cid, r in reports.items() if cid in lost
                                             for o in (r.get("ledger") or {}).get("open_orders", [])]
        else:
            snap = self.ledger.snapshot() if self.ledger is not None else {}
            out["orders_by_source"] = snap.get("by_source", {})
            out["open_orders"] = snap.get("open_orders", [])
            out["run_notional"] = snap.get("run_notional")
            out["flatten"] = list(self._process.flatten_reports)
            out["ws"] = self.ws_counters.snapshot()
            if self.pacer is not None:
                out["pacer"] = dataclasses.asdict(self.pacer.stats())
            if self.clock is not None and self.clock.estimate is not None:
                out["clock"] = dict(dataclasses.asdict(self.clock.estimate), errors_1021=self.clock_errors)
        return out


def _add_flatten(ctx: HarnessContext, summary: dict) -> None:
    """The run's flatten reports into ``summary.json`` (a gate final listener; only when one ran)."""
    reports = ctx.summary().get("flatten")
    if reports:
        summary["flatten"] = reports


class ProfileShape(LoadTestShape):
    """The profile's stages as a Locust load shape: ``(users, spawn_rate, user_classes)`` per
    stage, None after the last stage (the run ends by itself). ``--run-time`` (``-t``), when
    given, cuts the run short."""

    use_common_options = True

    def tick(self):
        env = self.runner.environment if self.runner is not None else None
        ctx = getattr(env, "letrade", None)
        if ctx is None:
            return None
        t = self.get_run_time()
        run_time = getattr(env.parsed_options, "run_time", None) if env.parsed_options is not None else None
        if run_time and t >= run_time:
            return None
        if ctx.aborted:
            return None
        elapsed = 0.0
        for stage in ctx.profile.stages:
            elapsed += stage.duration_s
            if t < elapsed:
                return stage.users, stage.spawn_rate, list(env.user_classes)
        return None


# ---------------------------------------------------------------------------------------------
# The plugin
# ---------------------------------------------------------------------------------------------

def _role(runner) -> Role:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


def _user_kind(cls: object) -> str | None:
    """The profile's ``users.<kind>`` a user class runs as (its ``letrade_kind``, inherited by
    subclasses), or None for a class that is not letrade-perf's."""
    return getattr(cls, "letrade_kind", None) if isinstance(cls, type) else None


def configure_user_class(cls, settings) -> None:
    """Give a concrete user class its kind's frozen profile settings (``cls.settings``, which the
    users read) and the Locust knobs they set: weight, fixed_count, wait_time, the task mix."""
    cls.settings = settings
    cls.weight = settings.weight
    cls.fixed_count = settings.fixed_count
    lo, hi = settings.wait_min_s, settings.wait_max_s
    cls.wait_time = constant(lo) if hi <= lo else between(lo, hi)
    if getattr(settings, "task_weights", None) and hasattr(cls, "set_task_weights"):
        cls.set_task_weights(settings.task_weights)


def _last_csv_snapshot(environment) -> Callable[..., None]:
    """A ``quit`` listener: Locust's ``--csv`` files are snapshots its writer greenlet takes once a
    second and closes at exit without a last one, so requests of the final second — an order a
    stopping user finished, a kill-switch cancel — could be in the summary but not in
    ``*_stats.csv``. Before the files close, wait (at most ~1.2 s) until a snapshot postdates
    the last request; then stop the writer, which would otherwise wake once more after the files
    closed (when something at exit yields to gevent's hub: the asyncio bridge's thread) and die
    with a traceback on the closed file."""
    from locust.stats import CSV_STATS_INTERVAL_SEC

    def wait_for_snapshot(**_kw: Any) -> None:
        options = getattr(environment, "parsed_options", None)
        if not getattr(options, "csv_prefix", None):
            return
        last = environment.stats.total.last_request_timestamp
        wait = last + CSV_STATS_INTERVAL_SEC + 0.2 - time.time() if last else 0.0
        if wait > 0:
            gevent.sleep(min(wait, CSV_STATS_INTERVAL_SEC + 0.2))
        _stop_csv_writers()

    return wait_for_snapshot


def _stop_csv_writers() -> None:
    """Kill Locust's ``--csv`` writer greenlets (Locust keeps no handle on them)."""
    import gc

    from locust.stats import StatsCSVFileWriter

    writers = [g for g in gc.get_objects() if isinstance(g, gevent.Greenlet) and not g.dead
               and isinstance(getattr(getattr(g, "_run", None), "__self__", None), StatsCSVFileWriter)]
    if writers:
        gevent.killall(writers, block=True, timeout=2.0)


class LetradePlugin:
    """The Locust plugin (see the module docstring). :meth:`register` wires one environment.

    ``ctx``: the :class:`HarnessContext` the users share (``environment.letrade``); ``state``: the
    plugin's own :class:`ProcessState` of the process (simulator, budget split, workers' reports,
    gate, sink, greenlets)."""

    def __init__(self) -> None:
        self.ctx: HarnessContext | None = None
        self.state = ProcessState()
        self._stopping = False

    # -- command line ----------------------------------------------------------------------------
    @staticmethod
    def add_arguments(parser, **_kw) -> None:
        group = parser  # Locust's include_in_web_ui works on the parser itself, not on groups
        group.add_argument("--letrade-env", default=None, choices=("sim", "testnet", "production"),
                           help="target environment (default: the profile's env)")
        group.add_argument("--letrade-stream-url", default=None, include_in_web_ui=False,
                           help="market-stream base URL on its own (default: derived from --host, else the env's)")
        group.add_argument("--letrade-ws-api-url", default=None, include_in_web_ui=False,
                           help="WebSocket API URL on its own (default: derived from --host, else the env's)")
        group.add_argument("--letrade-key-file", default=None, include_in_web_ui=False,
                           help="API credentials file (YAML/JSON, mode 0600)")
        group.add_argument("--letrade-run-id", default=None, include_in_web_ui=False,
                           help="run id (default: UTC timestamp and profile name)")
        group.add_argument("--letrade-reports", default=None, include_in_web_ui=False,
                           help="the run's report directory (summary.json, junit.xml, summary.md, orders.json)")
        group.add_argument("--letrade-baseline", default=None, include_in_web_ui=False,
                           help="a previous run's summary.json (or report directory) to compare with")
        group.add_argument("--letrade-tolerance", default=None, include_in_web_ui=False,
                           help="regression tolerance against the baseline (10%% or 0.1; default: the profile's)")
        group.add_argument("--operator", default=None, include_in_web_ui=False,
                           help="who runs the run, for the audit trail and the reports (default: the OS user)")

    # -- environment -----------------------------------------------------------------------------
    def register(self, environment) -> None:
        """Build ``environment.letrade`` and add the plugin's listeners."""
        define_events(environment.events)
        # A worker may be told to spawn users while this init still talks to the exchange (its
        # I/O yields to the runner's greenlets): users wait for the context while this is set.
        environment.letrade_initialising = True
        state = ProcessState()
        ctx = None
        try:
            ctx = self._build(environment, state)
            self._gate(ctx, state, environment)     # recording listens before any user sees the context
        except ConfigError as e:
            environment.letrade_initialising = False
            if ctx is not None and state.sim is not None:
                state.sim.stop()
            log.error("configuration error: %s", e)
            sys.stderr.write(f"letrade-perf: {e}\n")
            sys.stderr.flush()
            raise SystemExit(EXIT_CONFIG) from None
        self.ctx = ctx
        self.state = state
        events = environment.events
        environment.letrade = ctx
        environment.letrade_initialising = False
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)
        from .positions import install_funds
        # Locust fires ``quitting`` in reverse order: added last, the end balance snapshot comes
        # before this plugin's (the embedded simulator stops there) and the gate's final verdict
        state.funds = install_funds(ctx, state, environment)
        if ctx.role != "worker":
            events.quit.add_listener(_last_csv_snapshot(environment))
        if ctx.role == "worker":
            events.report_to_master.add_listener(self.on_report_to_master)
        if ctx.role == "master":
            events.worker_report.add_listener(self.on_worker_report)
            environment.runner.register_message(MSG_ABORT, self.on_abort_message)
        if ctx.role != "master":
            state.greenlets.append(gevent.spawn(self._housekeeping))
        if ctx.role != "worker":
            # Locust installs its own SIGTERM handler only after a headless shape run ends; until
            # then SIGTERM would kill the process without ``quitting`` (no kill switch, and the
            # embedded simulator left running). Quit the runner instead: the normal path follows.
            # Ctrl-C likewise, instead of a KeyboardInterrupt wherever the main greenlet is.
            gevent.signal_handler(signal.SIGTERM, self._on_stop_signal, "SIGTERM")
            gevent.signal_handler(signal.SIGINT, self._on_stop_signal, "SIGINT (Ctrl-C)")
        # operator controls: SIGUSR1 blocks new orders, SIGUSR2 resumes them (a master tells its
        # workers; without a handler either signal would kill the process)
        gevent.signal_handler(signal.SIGUSR1, self._on_block_signal, True)
        gevent.signal_handler(signal.SIGUSR2, self._on_block_signal, False)
        from . import controls
        controls.install(ctx, environment)
        if state.sim is not None:
            atexit.register(state.sim.stop)   # last resort; stop() is idempotent
        log.info("letrade-perf: profile %s, env %s at %s, role %s, run %s", ctx.profile.name, ctx.env.name,
                 ctx.base_url, ctx.role, ctx.run_id)

    def _gate(self, ctx: HarnessContext, state: ProcessState, environment) -> None:
        """The criteria gate (with baseline and webhooks) and the web UI's Criteria tab."""
        from .gate import LocustGate

        opts = environment.parsed_options
        baseline = baseline_path = tolerance = None
        notifier = None
        if ctx.role != "worker":
            ref = getattr(opts, "letrade_baseline", None) if opts is not None else None
            if ref:
                from ..reports import load_summary
                try:
                    baseline = load_summary(ref)
                except ValueError as e:
                    raise ConfigError(f"--baseline: {e}") from None
                baseline_path = ref
            tol = getattr(opts, "letrade_tolerance", None) if opts is not None else None
            if tol:
                from ..criteria.tolerance import parse_tolerance
                try:
                    tolerance = parse_tolerance(tol)
                except ValueError as e:
                    raise ConfigError(f"--tolerance: {e}") from None
            notifier = build_notifier(ctx.profile, run_id=ctx.run_id, reports_dir=ctx.reports_dir)
        from .alerts import install_alerts
        install_alerts(ctx, environment, notifier)     # before the gate: the last fills go before the verdict
        gate = LocustGate(ctx, state, baseline=baseline, baseline_path=baseline_path, tolerance=tolerance,
                          notifier=notifier)
        gate.register(environment)
        state.gate = gate
        gate.achieved.gauge = gate.gate.store.gauge    # the open model's iteration counts, merged
        if ctx.role != "worker":
            gate.final_listeners.append(lambda summary: _add_flatten(ctx, summary))
        from .sink import install_sink
        install_sink(ctx, state, environment)
        if ctx.role != "worker" and getattr(environment, "web_ui", None) is not None:
            from .webui import install_criteria_tab
            install_criteria_tab(environment, gate.gate.snapshot)
            from .webui_ops import install_operations_tab
            install_operations_tab(environment, ctx)     # block / resume / flatten, positions
            from .webui_charts import install_charts_tab, live_summary
            install_charts_tab(environment, lambda: live_summary(gate))   # the report's charts, live

    def _build(self, environment, state: ProcessState) -> HarnessContext:
        from ..config.profile import load_profile
        from ..core.secrets import install_log_masking
        from ..logs import FORMAT_ENV, apply_format

        apply_format(os.environ.get(FORMAT_ENV))
        install_log_masking()
        opts = environment.parsed_options
        ref = (getattr(opts, "profile", None) if opts is not None else None) or DEFAULT_PROFILE
        profile = load_profile(ref)
        env_name = (getattr(opts, "letrade_env", None) if opts is not None else None) or profile.env
        runner = environment.runner
        role = _role(runner)
        sim = None
        from ..config.environments import target_options

        # --host (Locust's) replaces the profile's whole target block, as in `letrade-perf run`
        urls = target_options(profile.target, (environment.host or "").strip() or None, None,
                              getattr(opts, "letrade_stream_url", None), getattr(opts, "letrade_ws_api_url", None))
        if urls["host"] is None and urls["rest_url"] is None and env_name == "sim":
            if role == "worker":
                raise ConfigError("a worker needs --host (the simulator's URL) for env sim")
            from ..sim.process import SimulatorError, start_simulator
            try:
                sim = start_simulator(profile.sim or None)
            except SimulatorError as e:
                raise ConfigError(f"could not start the embedded simulator: {e}") from None
            urls["host"] = sim.base_url
            log.info("embedded simulator started (pid %d) at %s", sim.pid, sim.base_url)
            state.sim = sim
        try:
            return self._build_with(environment, profile, env_name, urls, role, state, opts)
        except BaseException:
            if sim is not None:
                sim.stop()
            raise

    def _build_with(self, environment, profile, env_name: str, urls: dict, role: Role, state: ProcessState,
                    opts) -> HarnessContext:
        from ..clock import ClockSync
        from ..config.environments import environment as target
        from ..pacing import Pacer, budgets_from_rate_limits
        from ..preflight import credential_problem

        env = target(env_name, **urls)
        environment.host = env.rest_url   # every HttpUser of the locustfile targets the resolved REST URL
        if opts is not None:
            opts.host = env.rest_url
        if env.production and profile.users.places_orders and not profile.safety.allow_production_orders:
            log.warning("production target: orders are refused (safety.allow_production_orders is false)")
        key_file = getattr(opts, "letrade_key_file", None) if opts is not None else None
        credentials, problem = credential_problem(profile, env, key_file)
        if problem:
            raise ConfigError(problem)
        run_id = (getattr(opts, "letrade_run_id", None) if opts is not None else None) or make_run_id(profile.name)
        reports = getattr(opts, "letrade_reports", None) if opts is not None else None
        ctx = HarnessContext(environment=environment, profile=profile, env=env, role=role, run_id=run_id,
                             reports_dir=reports, credentials=credentials, _process=state)
        ledger = ctx.ledger = OrderLedger(profile.safety.max_run_notional, on_outcome=self._order_event(environment))
        from .audit import default_operator, install_audit
        ctx.operator = (getattr(opts, "operator", None) if opts is not None else None) or default_operator()
        install_audit(ctx, environment)     # before any order: the ledger's outcomes go to the trail
        self._select_users(environment, profile)
        pacer = self._connect(ctx, state, ClockSync, Pacer, budgets_from_rate_limits)
        if pacer is None:       # the master: it only splits the budget
            return ctx
        if role == "worker":
            ledger.cap_share = lambda: pacer.share
        return ctx

    def _connect(self, ctx: HarnessContext, state: ProcessState, ClockSync, Pacer,
                 budgets_from_rate_limits) -> Pacer | None:
        """Clock, exchangeInfo, pacer: the once-per-process exchange calls of local and workers.

        The bootstrap calls (one exchangeInfo, the first clock samples) go out before the pacer
        exists — it is built from exchangeInfo's rateLimits; a local pacer then reserves them.
        In a distributed run the master fetches exchangeInfo once and builds the
        :class:`MasterPacing` that hands it to the workers (returns None); a worker then only
        syncs its clock and reserves its start-up inside its share (see
        :mod:`letrade_perf.harness.distributed`). Returns the pacer (also ``ctx.pacer``)."""
        from ..binance.endpoints import endpoint
        from ..retry import STARTUP, retry_call, transient_status

        client = ExchangeClient(ctx, ctx.base_url)
        runner = ctx.environment.runner
        info_weight = endpoint("GET", "/api/v3/exchangeInfo").cost({})
        from_master = None
        if ctx.role == "worker":
            from .distributed import request_startup_info
            from_master = request_startup_info(runner, timeout_s=STARTUP_INFO_TIMEOUT_S)
            if from_master is None:
                log.warning("no exchangeInfo from the master within %.0f s: fetching it", STARTUP_INFO_TIMEOUT_S)
        if from_master is not None:
            data = from_master["info"]
            own_weight = 0
            workers = max(1, int(from_master.get("workers") or 1))
            master_part = -(-int(from_master.get("startup_weight") or 0) // workers)   # ceil
        else:
            def on_retry(res, n: int, pause: float) -> None:
                log.warning("%s: GET /api/v3/exchangeInfo: %s; retry %d in %.1f s", ctx.base_url, res.describe(),
                            n, pause)

            info, attempts = retry_call(lambda timeout: client.call("GET", "/api/v3/exchangeInfo", paced=False,
                                                                    timeout=timeout),
                                        lambda res: transient_status(res.status), STARTUP,
                                        sleep=gevent.sleep, on_retry=on_retry)
            if not info.ok or not isinstance(info.data, dict):
                what = "cannot reach" if info.status == 0 else "failed at"
                raise ConfigError(f"{what} {ctx.env.name} at {ctx.base_url}: GET {ctx.base_url}/api/v3/exchangeInfo: "
                                  f"{info.describe()} ({attempts.describe()})")
            data = info.data
            own_weight, master_part = info_weight, 0
        rules = rules_from_exchange_info(data)
        missing = [s for s in ctx.profile.symbols if s not in rules]
        if missing:
            raise ConfigError(f"{ctx.profile.source}: symbols {', '.join(missing)} are not listed by "
                              f"{ctx.base_url} exchangeInfo")
        if ctx.role == "master":
            from .distributed import MasterPacing
            # the IP's weight used in this minute so far (this call, and e.g. the launcher's
            # pre-flight): the workers reserve it among them inside their shares
            used = next((v for k, v in info.headers.items() if k.lower() == "x-mbx-used-weight-1m"), None)
            try:
                startup_weight = max(int(used), info_weight) if used is not None else info_weight
            except ValueError:
                startup_weight = info_weight
            opts = ctx.environment.parsed_options
            state.master_pacing = MasterPacing(runner, exchange_info=data, startup_weight=startup_weight,
                                               expected_workers=getattr(opts, "expect_workers", 1) or 1)
            return None
        ctx.exchange = client
        ctx.exchange_info = data
        ctx.symbol_rules = rules

        def server_ms() -> int:
            paced = ctx.pacer is not None and ctx.pacer.share > 0
            res = client.call("GET", "/api/v3/time", paced=paced)
            if not res.ok or not isinstance(res.data, dict):
                raise RuntimeError(f"GET /api/v3/time failed: {res.describe()}")
            return int(res.data["serverTime"])

        ws = ctx.profile.users.ws_streams
        clock: ClockSync = ClockSync(server_ms, samples=5, refresh_s=ws.clock_refresh_s if ws else 30.0)
        ctx.clock = clock

        def sync(_timeout: float):
            try:
                return clock.sync()
            except RuntimeError as e:       # every sample failed: worth another attempt
                return e

        est, attempts = retry_call(sync, lambda r: isinstance(r, RuntimeError), STARTUP, sleep=gevent.sleep)
        if isinstance(est, RuntimeError):
            raise ConfigError(f"{ctx.base_url}: GET /api/v3/time: {est.__cause__ or est} "
                              f"({attempts.describe()})") from None
        pacing = ctx.profile.pacing
        pacer: Pacer = Pacer(budgets_from_rate_limits(data.get("rateLimits") or ()),
                             weight_fraction=pacing.weight_fraction, orders_fraction=pacing.orders_fraction,
                             clock=clock.server_now_ms, sleep=gevent.sleep,
                             margin_ms=est.uncertainty_ms, smoothing=pacing.smoothing, burst_s=pacing.burst_s)
        ctx.pacer = pacer
        if ctx.role == "worker":
            from .distributed import WorkerPacing
            worker_pacing = state.worker_pacing = WorkerPacing(runner, pacer)
            # inside the first share, ahead of any user's request
            worker_pacing.reserve_startup(own_weight + clock.samples + master_part)
        else:
            pacer.acquire(info_weight + clock.samples, name="bootstrap")  # what the bootstrap used
        return pacer

    @staticmethod
    def _select_users(environment, profile) -> None:
        """Configure letrade-perf's user classes from the profile and drop those of kinds it does not
        run; every other user class of the locustfile (the user's own) stays as it is."""
        active = profile.users.active()
        selected, found = [], set()
        for cls in list(environment.user_classes):
            kind = _user_kind(cls)
            if kind is None:
                selected.append(cls)      # not ours: a drop-in plugin leaves the user's classes alone
                continue
            if kind not in active:
                continue
            configure_user_class(cls, active[kind])
            selected.append(cls)
            found.add(kind)
        missing = [k for k in active if k not in found]
        if not selected:
            raise ConfigError(f"{profile.source}: the locustfile has no user class at all for this profile "
                              f"({', '.join(active)}); import them with `from letrade_perf.locustfile import *`")
        if missing:
            log.warning("the profile's user kind(s) %s have no user class in the locustfile; they do not run "
                        "(`from letrade_perf.locustfile import *` brings letrade-perf's)", ", ".join(missing))
        environment.user_classes[:] = selected
        from ..criteria.grammar import unproduced

        problems = unproduced(profile.criteria, profile.users.produces(), profile.users.places_orders,
                              profile.source)
        if problems and all(_user_kind(cls) is not None for cls in selected):
            # only letrade-perf's users run: nothing else could produce these metrics
            raise ConfigError("; ".join(problems) + " — a criterion no user produces could only end inconclusive")
        for problem in problems:
            log.warning("%s — unless the locustfile's own user classes produce it", problem)

    @staticmethod
    def _order_event(environment):
        def fire(rec, outcome: str) -> None:
            hook = getattr(environment.events, "letrade_order", None)
            if hook is not None:
                hook.fire(outcome=outcome, client_order_id=rec.client_order_id, symbol=rec.symbol, side=rec.side,
                          source=rec.source, via=rec.via)
        return fire

    # -- background work ------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        """Clock refresh and the periodic ``letrade_pacing`` event."""
        ctx = self.ctx
        assert ctx is not None   # spawned by register() after it set self.ctx
        next_pacing = time.monotonic() + PACING_EVENT_EVERY_S
        while True:
            gevent.sleep(1.0)
            try:
                if ctx.clock is not None and ctx.aborted is None:
                    ctx.clock.maybe_refresh()
            except Exception as e:  # a failed refresh keeps the last estimate
                log.warning("clock refresh failed: %s", e)
            if time.monotonic() >= next_pacing and ctx.pacer is not None:
                next_pacing = time.monotonic() + PACING_EVENT_EVERY_S
                runner = ctx.environment.runner
                _hook(ctx.environment.events, "letrade_pacing").fire(stats=ctx.pacer.stats(), role=ctx.role,
                                                                     client_id=getattr(runner, "client_id", None))

    def _on_block_signal(self, block: bool) -> None:
        """SIGUSR1 (``block``) / SIGUSR2: block or resume new orders."""
        ctx = self.ctx
        if ctx is None:
            return
        if block:
            gevent.spawn(ctx.block_orders, "SIGUSR1", "signal")
        else:
            gevent.spawn(ctx.resume_orders, "signal")

    def _on_stop_signal(self, what: str) -> None:
        """SIGTERM or Ctrl-C: the gate notes the operator's stop, then the runner quits and the web
        UI stops, so Locust ends its normal way (HTML report, ``quitting``: kill switch, reports).
        No KeyboardInterrupt: a second Ctrl-C while stopping cannot cut the shutdown short."""
        if self._stopping:
            log.info("%s: already stopping", what)
            return
        self._stopping = True
        log.info("%s: stopping the run", what)
        if self.state.gate is not None:
            self.state.gate.note_operator(what)
        env = self.ctx.environment if self.ctx is not None else None
        runner = env.runner if env is not None else None

        def stop() -> None:
            if runner is not None:
                runner.quit()
            web_ui = getattr(env, "web_ui", None)
            if web_ui is not None:
                web_ui.stop()

        gevent.spawn(stop)

    # -- listeners --------------------------------------------------------------------------------
    def on_test_stop(self, **_kw) -> None:
        ctx = self.ctx
        if ctx is None or ctx.role == "master":
            return
        # the users have stopped: flatten at the end (unless the abort's flatten ran), else the kill switch
        if ctx.profile.flatten.at_end and not (ctx.aborted and ctx.profile.flatten.on_abort):
            ctx.flatten("end of the run", "at_end", block=False)
        else:
            ctx.kill_switch()

    def on_quitting(self, environment=None, **_kw) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        if ctx.role != "master":
            ctx.kill_switch()
        state = self.state
        for g in state.greenlets:
            g.kill(block=False)
        if state.master_pacing is not None:
            state.master_pacing.stop()
        summary = ctx.summary()
        counts = summary.get("orders") or {}
        if any(counts.values()):
            log.info("orders: %s", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        if summary.get("open_orders"):
            log.warning("orders possibly still open: %s",
                        ", ".join(o["clientOrderId"] for o in summary["open_orders"][:20]))
        if summary.get("orders_of_lost_workers"):
            log.warning("orders a lost worker had open at its last report (their state since is unknown; "
                        "no kill switch ran for them): %s",
                        ", ".join(f"{o['clientOrderId']} ({o['worker']})" for o in summary["orders_of_lost_workers"][:20]))
        if ctx.reports_dir and ctx.role != "worker":
            try:
                os.makedirs(ctx.reports_dir, exist_ok=True)
                with open(os.path.join(ctx.reports_dir, "orders.json"), "w", encoding="utf-8") as fh:
                    json.dump(summary, fh, indent=2, default=str)
            except OSError as e:
                log.error("could not write orders.json: %s", e)
        if state.sim is not None:
            if ctx.role == "master":
                gevent.sleep(2.0)  # let workers' kill switches reach the simulator first
            state.sim.stop()
            log.info("embedded simulator stopped")
            state.sim = None
        if ctx.aborted is not None and environment is not None:
            environment.process_exit_code = EXIT_SAFETY

    def on_report_to_master(self, client_id=None, data=None, **_kw) -> None:
        ctx = self.ctx
        if ctx is None or data is None:
            return
        data["letrade"] = {
            "ledger": ctx.ledger.snapshot() if ctx.ledger is not None else None,
            "ws": ctx.ws_counters.snapshot(),
            "pacer": dataclasses.asdict(ctx.pacer.stats()) if ctx.pacer is not None else None,
            "aborted": ctx.aborted,
            "strategy_stops": dict(ctx.strategy_stops),
            "flatten": list(ctx._process.flatten_reports),
            "orders_blocked": ctx.orders_blocked,
        }

    def on_worker_report(self, client_id=None, data=None, **_kw) -> None:
        ctx = self.ctx
        if ctx is None or not data or "letrade" not in data:
            return
        report = data["letrade"]
        self.state.worker_reports[client_id] = report
        if report.get("pacer"):
            _hook(ctx.environment.events, "letrade_pacing").fire(stats=report["pacer"], role="worker",
                                                                 client_id=client_id)

    def on_abort_message(self, environment=None, msg=None, **_kw) -> None:
        ctx = self.ctx
        data = (msg.data if msg is not None else None) or {}
        reason = data.get("reason", "aborted by a worker")
        if ctx is not None and ctx.aborted is None:
            ctx.abort(reason, int(data.get("exit_code", EXIT_SAFETY)))


WEBHOOKS_ENV = "LETRADE_WEBHOOKS"
"""Extra webhooks (``letrade-perf run --webhook``): specs separated by newlines, passed through
the environment so the URLs never show on a command line."""


def build_notifier(profile, run_id: str = "", reports_dir: str | None = None):
    """A :class:`~letrade_perf.notify.Notifier` for the profile's ``notify`` entries and the
    ``--webhook`` specs in :data:`WEBHOOKS_ENV`; None without any target. Its messages link to
    the run's reports (:func:`~letrade_perf.notify.report_link`: ``LETRADE_REPORTS_URL`` with
    ``{run_id}``, else ``file://<reports_dir>/summary.html``)."""
    specs = [s.strip() for s in os.environ.get(WEBHOOKS_ENV, "").splitlines() if s.strip()]
    if not profile.notify and not specs:
        return None
    from ..notify import Notifier, parse_webhook_spec, report_link, targets_from_settings

    targets = (list(targets_from_settings(profile.notify, run_id=run_id, reports_dir=reports_dir))
               if profile.notify else [])
    for i, spec in enumerate(specs):
        try:
            targets.append(parse_webhook_spec(spec))
        except ValueError as e:
            raise ConfigError(f"--webhook #{i + 1}: {e}") from None
    try:
        link = report_link(run_id, reports_dir)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return Notifier(targets, report_link=link) if targets else None


def register_plugin(events=None) -> LetradePlugin:
    """Install the plugin on Locust's global events (call once, from a locustfile at import)."""
    events = events or locust.events
    plugin = LetradePlugin()
    define_events(events)
    events.init_command_line_parser.add_listener(plugin.add_arguments)

    def on_init(environment, **_kw) -> None:
        plugin.register(environment)

    events.init.add_listener(on_init)
    return plugin
