"""The audit trail: an append-only JSON-lines log of every order action of the run.

One line per action, written (and flushed) as it happens, in append mode — so what happened up to
a crash is on disk::

    {"time": "2026-12-03T06:40:01.123Z", "ts_ms": 1796280001123, "action": "sent", "run_id": "...",
     "profile": "smoke", "environment": "sim", "operator": "alice", "role": "local", "worker": null,
     "client_order_id": "lp-...", "symbol": "BTCUSDT", "side": "BUY", "notional": "12.01",
     "source": "pipeline", "via": "rest", "reason": null}

Actions: ``decided`` (a strategy decided to trade; fired by the pipeline as
``letrade_audit(action="decided", ...)``), ``refused`` (the safety caps), ``blocked`` (held back
while new orders are blocked), ``sent``, ``acknowledged`` (the exchange accepted it),
``partially_filled``, ``filled``, ``cancelled``, ``expired``, ``rejected``, ``not_executed``,
``unknown`` / ``unknown_resolved`` (an answer without a status, and its resolution),
``flattened`` (a flatten finished: ``letrade_flatten(report)``), ``orders_blocked`` /
``orders_resumed`` (``letrade_orders_blocked``). Any code may add a line with
``environment.events.letrade_audit.fire(action=..., **fields)``.

Where: ``<reports_dir>/audit.jsonl`` on a local or master process; a worker writes its own
``audit-worker-<index>.jsonl`` in the same directory (the run's processes share it on one host;
on another host each worker's directory is its own). Without a report directory no trail is
written. Never a secret: only the fields above are written, every text through
:func:`~letrade_perf.core.secrets.mask`.
"""
from __future__ import annotations

import datetime as _dt
import getpass
import json
import logging
import os
import threading
import time
from decimal import Decimal
from typing import Any, Callable, TextIO

from ..core.secrets import mask

log = logging.getLogger("letrade_perf.harness.audit")

AUDIT_FILE = "audit.jsonl"
#: the ledger's count keys → the audit trail's actions
OUTCOME_ACTIONS = {"sent": "sent", "placed": "acknowledged", "filled": "filled", "partially_filled": "partially_filled",
                   "canceled": "cancelled", "expired": "expired", "rejected": "rejected", "unknown": "unknown",
                   "unknown_resolved": "unknown_resolved", "not_executed": "not_executed", "refused": "refused",
                   "blocked": "blocked"}
#: the per-order fields a line carries (anything else a caller passes goes under ``detail``)
ORDER_FIELDS = ("client_order_id", "symbol", "side", "notional", "source", "via", "reason", "by")
MAX_TEXT = 500
"""Longest text kept in one field (a reason, a detail)."""


def default_operator() -> str:
    """The OS user (``getpass.getuser()``), or ``unknown`` when there is none."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:      # no user name in the environment nor the password database
        return "unknown"


def worker_file(index: int | str) -> str:
    """A worker's file name: ``audit-worker-<index>.jsonl``."""
    return f"audit-worker-{index}.jsonl"


def _iso_ms(ts: float) -> str:
    dt = _dt.datetime.fromtimestamp(ts, _dt.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _clean(value: Any) -> Any:
    """A JSON-able, masked, bounded value."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else None
    if isinstance(value, dict):
        return {str(k)[:80]: _clean(v) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in list(value)[:50]]
    return mask(str(value))[:MAX_TEXT]


class AuditTrail:
    """One process's audit file. ``base`` holds the fields of every line (run id, profile,
    environment, operator, role, worker); ``path`` the file, or a function naming it at the first
    write (a worker learns its index from the master after it starts). ``clock``: epoch seconds.

    :meth:`write` appends one line and flushes it; it never raises (a full disk must not stop
    the run: the failure is logged once)."""

    def __init__(self, path: str | Callable[[], str], base: dict[str, Any], *,
                 clock: Callable[[], float] = time.time, live: Callable[[], dict[str, Any]] | None = None) -> None:
        self._path = path
        self.base = {k: _clean(v) for k, v in base.items()}
        self.clock = clock
        self.live = live
        """Fields read at each write (a worker's index, known only after it starts)."""
        self._fh: TextIO | None = None
        self._lock = threading.Lock()
        self._failed = False
        self.lines = 0

    @property
    def path(self) -> str:
        """The file (named now if it was not yet)."""
        if callable(self._path):
            self._path = self._path()
        return self._path

    def write(self, action: str, **fields: Any) -> None:
        """Append one action line (see the module docstring for the fields)."""
        now = self.clock()
        line: dict[str, Any] = {"time": _iso_ms(now), "ts_ms": int(round(now * 1000)), "action": str(action)}
        line.update(self.base)
        if self.live is not None:
            line.update({k: _clean(v) for k, v in self.live().items()})
        for key in ORDER_FIELDS:
            line[key] = _clean(fields.pop(key, None))
        detail = {k: v for k, v in fields.items() if k not in line}
        if detail:
            line["detail"] = _clean(detail)
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            if self._failed:
                return
            try:
                if self._fh is None:
                    path = self.path
                    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                    self._fh = open(path, "a", encoding="utf-8")
                self._fh.write(text)
                self._fh.flush()          # on disk (in the OS) line by line: it survives a crash
                self.lines += 1
            except OSError as e:
                self._failed = True
                log.error("audit trail %s: cannot write (%s); no more lines are written", self._path, e)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.close()
                except OSError:
                    pass
                self._fh = None

    # -- event listeners ---------------------------------------------------------------------
    def on_outcome(self, rec: Any, outcome: str) -> None:
        """The ledger's outcome callback: one counted transition of an order."""
        cid = getattr(rec, "client_order_id", None)
        reason = None
        if outcome == "refused" and isinstance(cid, str) and cid.startswith("refused:"):
            reason = cid[len("refused:"):]
            cid = None
        notional = getattr(rec, "notional", None)
        status = getattr(rec, "status", None)
        extra = {"status": status} if status else {}      # the exchange's last status, when one was seen
        self.write(OUTCOME_ACTIONS.get(outcome, outcome), client_order_id=cid, symbol=getattr(rec, "symbol", None),
                   side=getattr(rec, "side", None), notional=notional if notional else None,
                   source=getattr(rec, "source", None), via=getattr(rec, "via", None), reason=reason, **extra)

    def on_audit(self, action: str = "unknown", **fields: Any) -> None:
        """``letrade_audit(action, **fields)``."""
        self.write(action, **fields)

    def on_orders_blocked(self, blocked: bool = False, reason: str | None = None, by: str | None = None,
                          **_kw: Any) -> None:
        """``letrade_orders_blocked(blocked, reason, by)``."""
        self.write("orders_blocked" if blocked else "orders_resumed", reason=reason, by=by)

    def on_flatten(self, report: Any = None, **_kw: Any) -> None:
        """``letrade_flatten(report)``: the flatten's report, compacted."""
        rep = report if isinstance(report, dict) else {"report": report}
        self.write("flattened", reason=rep.get("reason"), by=rep.get("by"),
                   report={k: v for k, v in rep.items() if k not in ("reason", "by")})


def audit_path(reports_dir: str, role: str, runner: Any) -> str | Callable[[], str]:
    """``<reports_dir>/audit.jsonl``, or for a worker a function naming its own file at the first
    write (by then the master has told it its index; else its client id)."""
    if role != "worker":
        return os.path.join(reports_dir, AUDIT_FILE)

    def name() -> str:
        index = getattr(runner, "worker_index", -1)
        if not isinstance(index, int) or index < 0:
            index = str(getattr(runner, "client_id", os.getpid())).replace(os.sep, "_")
        return os.path.join(reports_dir, worker_file(index))

    return name


def install_audit(ctx: Any, environment: Any) -> AuditTrail | None:
    """Open ``ctx``'s audit trail (None without a report directory) and listen: the ledger's
    outcome callback (chained after the one it has), ``letrade_audit``, ``letrade_orders_blocked``,
    ``letrade_flatten``; closed at ``quitting``."""
    if not ctx.reports_dir:
        return None
    runner = environment.runner
    base = {"run_id": ctx.run_id, "profile": ctx.profile.name, "environment": ctx.env.name,
            "operator": ctx.operator or default_operator(), "role": ctx.role,
            "worker": None}
    live = None
    if ctx.role == "worker":
        def live() -> dict[str, Any]:
            index = getattr(runner, "worker_index", -1)
            return {"worker": index if isinstance(index, int) and index >= 0 else None}
    trail = AuditTrail(audit_path(ctx.reports_dir, ctx.role, runner), base, live=live)
    ledger = ctx.ledger
    if ledger is not None:
        previous = ledger.on_outcome

        def on_outcome(rec: Any, outcome: str) -> None:
            if previous is not None:
                previous(rec, outcome)
            trail.on_outcome(rec, outcome)

        ledger.on_outcome = on_outcome
    events = environment.events
    for name, listener in (("letrade_audit", trail.on_audit), ("letrade_orders_blocked", trail.on_orders_blocked),
                           ("letrade_flatten", trail.on_flatten)):
        hook = getattr(events, name, None)
        if hook is not None:
            hook.add_listener(listener)
    events.quitting.add_listener(lambda **_kw: trail.close())
    ctx.audit = trail
    return trail

