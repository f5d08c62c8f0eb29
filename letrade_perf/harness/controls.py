"""Operator controls while a run goes on: block new orders, resume them.

A block refuses every new order *before* it is sent (the call path's safety gate,
:func:`letrade_perf.calls.path.gate`) except the flatten step's own orders; the load, the
market-data users and the monitoring go on. The pipeline's strategies pause and resume when the
block is lifted; the user's own code and the guarded ccxt client get the refusal exception
(:class:`~letrade_perf.calls.path.OrdersBlocked`, a :class:`~letrade_perf.calls.path.SafetyRefusal`).

Who may block: the web UI's buttons and ``POST /letrade/orders/block`` (:mod:`.webui_ops`),
SIGUSR1 / SIGUSR2 (the plugin), a criterion with ``on_fail: block_orders`` (the gate) — all call
:meth:`~letrade_perf.harness.plugin.HarnessContext.block_orders` /
:meth:`~letrade_perf.harness.plugin.HarnessContext.resume_orders`, which land in :func:`apply`.

Distributed runs: the master is the authority. It applies a change and broadcasts its state to
every worker with the custom message :data:`MSG_ORDERS_BLOCK` (``{"blocked", "reason", "by",
"epoch"}``; a worker applies only a newer epoch). A worker that connects later is sent the state
when it connects, and every worker report carries the worker's state (``orders_blocked``): one
that differs from the master's is sent the state again (so a lost message is repaired within a
report interval).

:class:`BlockHistory` is pure (an injected clock): who blocked, when, why, who resumed, how long.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import gevent

log = logging.getLogger("letrade_perf.harness.controls")

MSG_ORDERS_BLOCK = "letrade_orders_block"
MSG_FLATTEN = "letrade_flatten_request"
"""Master → every worker: flatten your own orders (``{"reason", "by"}``); each worker's report
carries its flatten's report."""
"""Master → worker: the current block state ``{"blocked": bool, "reason", "by", "epoch"}``."""
CONNECT_SEND_DELAY_S = 1.0
"""A new worker is sent the state this long after it connects (it registers its handler in its
``init``, which may still be running when the master sees it connect)."""
MAX_HISTORY = 200
"""Blocks kept in the history (the oldest go first; the total blocked time stays exact)."""


class BlockHistory:
    """The run's blocks of new orders: the open one (if any) and the closed ones.

    Each entry: ``{"by", "reason", "at", "resumed_at", "resumed_by", "duration_s"}`` (times are
    the injected clock's: ``time.time`` by default, so they are epoch seconds)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.entries: list[dict[str, Any]] = []
        self.epoch = 0
        """Changes so far (a master's epoch orders its broadcasts)."""
        self.remote_epoch = -1
        """A worker: the newest master epoch applied."""
        self._closed_s = 0.0
        self._dropped = 0

    @property
    def current(self) -> dict[str, Any] | None:
        """The open block, or None."""
        if self.entries and self.entries[-1]["resumed_at"] is None:
            return self.entries[-1]
        return None

    def block(self, reason: str, by: str) -> bool:
        """Open a block; False (nothing changes) when one is open already."""
        if self.current is not None:
            return False
        self.entries.append({"by": by, "reason": reason, "at": self.clock(), "resumed_at": None,
                             "resumed_by": None, "duration_s": None})
        if len(self.entries) > MAX_HISTORY:
            self.entries.pop(0)
            self._dropped += 1
        self.epoch += 1
        return True

    def resume(self, by: str) -> bool:
        """Close the open block; False when there is none."""
        cur = self.current
        if cur is None:
            return False
        now = self.clock()
        cur["resumed_at"] = now
        cur["resumed_by"] = by
        cur["duration_s"] = round(max(0.0, now - cur["at"]), 3)
        self._closed_s += max(0.0, now - cur["at"])
        self.epoch += 1
        return True

    def blocked_s(self) -> float:
        """Seconds with new orders blocked so far (the open block up to now)."""
        cur = self.current
        return self._closed_s + (max(0.0, self.clock() - cur["at"]) if cur is not None else 0.0)

    def report(self) -> dict[str, Any]:
        """JSON-able: ``{"blocked", "reason", "by", "since", "blocked_s", "blocks", "history"}``."""
        cur = self.current
        history = [dict(e) for e in self.entries]
        if cur is not None:
            history[-1]["duration_s"] = round(max(0.0, self.clock() - cur["at"]), 3)
        return {"blocked": cur is not None, "reason": cur["reason"] if cur else None,
                "by": cur["by"] if cur else None, "since": cur["at"] if cur else None,
                "blocked_s": round(self.blocked_s(), 3), "blocks": len(self.entries) + self._dropped,
                "history": history}


def state_message(history: BlockHistory) -> dict[str, Any]:
    """What the master broadcasts: the current state and its epoch."""
    cur = history.current
    last = history.entries[-1] if history.entries else None
    by = cur["by"] if cur else (last["resumed_by"] if last else None)     # who blocked, or who resumed
    return {"blocked": cur is not None, "reason": cur["reason"] if cur else None, "by": by,
            "epoch": history.epoch}


def apply(ctx: Any, blocked: bool, reason: str | None, by: str, *, broadcast: bool = True) -> bool:
    """Block (``blocked``) or resume new orders on ``ctx`` (a HarnessContext): the history,
    ``ctx.orders_blocked``, a log line, the ``letrade_orders_blocked`` event and, on a master,
    the broadcast to the workers. Idempotent: False when the state was already that."""
    history: BlockHistory = ctx.order_blocks
    reason = (reason or "").strip() or "operator request"
    changed = history.block(reason, by) if blocked else history.resume(by)
    if not changed:
        return False
    cur = history.current
    ctx.orders_blocked = cur["reason"] if cur is not None else None
    if blocked:
        log.warning("new orders BLOCKED by %s: %s (market data and monitoring go on)", by, reason)
    else:
        last = history.entries[-1]
        log.warning("new orders RESUMED by %s after %.1f s blocked", by, last["duration_s"] or 0.0)
    env = ctx.environment
    hook = getattr(getattr(env, "events", None), "letrade_orders_blocked", None)
    if hook is not None:
        try:
            hook.fire(blocked=blocked, reason=ctx.orders_blocked if blocked else None, by=by)
        except Exception:     # a listener must not undo the operator's command
            log.exception("letrade_orders_blocked listener failed")
    if broadcast and ctx.role == "master":
        send_state(ctx)
    return True


def send_state(ctx: Any, client_id: str | None = None) -> None:
    """Master: send the block state to one worker (``client_id``) or to every worker."""
    runner = ctx.environment.runner
    if runner is None:
        return
    data = state_message(ctx.order_blocks)
    targets = [client_id] if client_id is not None else list(getattr(runner, "clients", {}) or {})
    for cid in targets:
        try:
            runner.send_message(MSG_ORDERS_BLOCK, data, client_id=cid)
        except Exception:
            log.exception("could not send the block state to worker %s", cid)


def on_worker_message(ctx: Any) -> Callable[..., None]:
    """A worker's handler of :data:`MSG_ORDERS_BLOCK`: apply the master's newer state."""

    def handle(environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        data = (msg.data if msg is not None else None) or {}
        epoch = int(data.get("epoch", 0))
        history: BlockHistory = ctx.order_blocks
        if epoch < history.remote_epoch:
            return
        history.remote_epoch = epoch
        by = f"master ({data.get('by') or 'operator'})"
        if data.get("blocked"):
            apply(ctx, True, data.get("reason"), by, broadcast=False)
        else:
            apply(ctx, False, None, by, broadcast=False)

    return handle


def request_flatten(ctx: Any, reason: str, by: str) -> int:
    """Master: ask every worker to flatten its own orders; the number of workers asked."""
    runner = ctx.environment.runner
    targets = list(getattr(runner, "clients", {}) or {}) if runner is not None else []
    for cid in targets:
        try:
            runner.send_message(MSG_FLATTEN, {"reason": reason, "by": by}, client_id=cid)
        except Exception:
            log.exception("could not ask worker %s to flatten", cid)
    return len(targets)


def on_flatten_message(ctx: Any) -> Callable[..., None]:
    """A worker's handler of :data:`MSG_FLATTEN`: flatten its own orders in a greenlet (the
    master has blocked new orders already; its block reaches this worker on its own)."""

    def handle(environment: Any = None, msg: Any = None, **_kw: Any) -> None:
        data = (msg.data if msg is not None else None) or {}
        by = f"master ({data.get('by') or 'operator'})"
        gevent.spawn(ctx.flatten, str(data.get("reason") or "operator"), by, block=False)

    return handle


def install(ctx: Any, environment: Any) -> None:
    """Wire the distributed part for ``ctx``'s role (nothing on a local process)."""
    runner = environment.runner
    if ctx.role == "worker":
        runner.register_message(MSG_ORDERS_BLOCK, on_worker_message(ctx))
        runner.register_message(MSG_FLATTEN, on_flatten_message(ctx))
    elif ctx.role == "master":
        def on_connect(client_id: str = "", **_kw: Any) -> None:
            if ctx.order_blocks.epoch:
                gevent.spawn_later(CONNECT_SEND_DELAY_S, send_state, ctx, client_id)

        def on_report(client_id: str | None = None, data: dict | None = None, **_kw: Any) -> None:
            report = (data or {}).get("letrade") or {}
            if "orders_blocked" not in report or client_id is None:
                return
            if bool(report.get("orders_blocked")) != (ctx.orders_blocked is not None) and ctx.order_blocks.epoch:
                send_state(ctx, client_id)

        environment.events.worker_connect.add_listener(on_connect)
        environment.events.worker_report.add_listener(on_report)
