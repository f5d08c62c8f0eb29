"""Splitting the budget among Locust workers with custom messages.

Binance counts weight per IP and orders per account, so N workers behind one IP must together
stay within one budget. The master gives each ready worker ``share = 1/N`` and re-splits when
workers join or leave; a worker multiplies every budget of its :class:`~.pacer.Pacer` by its
share.

Messages (``runner.register_message`` / ``runner.send_message``):

* ``letrade_pacing_share`` master → worker ``{"share": s, "epoch": k}``; ``epoch`` grows with
  every assignment the master sends, and a worker ignores one older than what it applied.
* ``letrade_pacing_ack`` worker → master ``{"share": s, "epoch": k}``: "I apply ``s`` from now".
* ``letrade_pacing_pause`` ``{"retry_after_s": x, "until_ms": t}``: a worker got a 429; the
  master relays it to every other worker, which pauses until server time ``t`` (all workers'
  clocks estimate the same server clock; ``retry_after_s`` is the fallback).
* ``letrade_pacing_ban`` likewise for 418.

**Why the sum of shares never exceeds 1.** The master keeps, per worker, an upper *bound* on the
share that worker may be using. A lowered share counts at its old value until the worker acks
it (the worker may still be using the old one); a raised share counts at its new value from the
moment it is sent. A raise is sent only when ``sum(bounds) − bound[w] + new ≤ 1``. So on a
join the existing workers are first told to go down to ``1/N``; the newcomer starts at 0 (a
worker makes no requests before its first assignment) and gets ``1/N`` only once the acks have
made room. On a leave the departed worker's bound is dropped when Locust removes it from
``runner.clients`` (a worker that quit, or went missing and was declared dead); a *missing*
worker keeps its bound meanwhile, since it may still be sending.

The master learns of membership changes from the ``worker_connect`` event and, as a robust
fallback (Locust has no event for a worker leaving), by polling ``runner.clients`` every
``poll_s``. Unacknowledged assignments are re-sent on the poll.

Known limit: a worker that reconnects to a *restarted* master keeps the share it had; the new
master assumes 0 for it until its first ack.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import gevent
from locust.runners import STATE_MISSING

from ..pacing.pacer import Pacer

logger = logging.getLogger(__name__)

MSG_SHARE = "letrade_pacing_share"
MSG_ACK = "letrade_pacing_ack"
MSG_PAUSE = "letrade_pacing_pause"
MSG_BAN = "letrade_pacing_ban"

_EPS = 1e-9


class MasterPacing:
    """Runs on the Locust master: assigns shares and relays 429 pauses / 418 bans.

    ``history`` records ``(epoch, {worker: bound})`` after every change, for reports and tests;
    ``max_bound_sum`` is the largest sum of bounds ever reached (≤ 1 by construction).
    ``on_change(bounds)`` is called after each change.
    """

    def __init__(self, runner, *, poll_s: float = 1.0, resend_after_polls: int = 3,
                 on_change: Callable[[dict[str, float]], Any] | None = None):
        self.runner = runner
        self.poll_s = poll_s
        self.resend_after_polls = resend_after_polls
        self.on_change = on_change
        self._epoch = 0
        self._bounds: dict[str, float] = {}
        self._sent: dict[str, tuple[int, float]] = {}    # worker -> (epoch, share) last sent
        self._unacked_polls: dict[str, int] = {}
        self.history: list[tuple[int, dict[str, float]]] = []
        self.max_bound_sum = 0.0
        self.relayed_pauses = 0
        self.relayed_bans = 0
        runner.register_message(MSG_ACK, self._on_ack)
        runner.register_message(MSG_PAUSE, self._on_pause)
        runner.register_message(MSG_BAN, self._on_ban)
        runner.environment.events.worker_connect.add_listener(self._on_worker_connect)
        self._poller = gevent.spawn(self._poll)
        self.reconcile()

    # -- membership ---------------------------------------------------------------------
    def _on_worker_connect(self, client_id: str = "", **_kw) -> None:
        # Fired before the master adds the worker to runner.clients: reconcile right after.
        gevent.spawn(self.reconcile)

    def _poll(self) -> None:
        while True:
            gevent.sleep(self.poll_s)
            try:
                self._resend_unacked()
                self.reconcile()
            except Exception:  # the poller must survive a transient RPC error
                logger.exception("pacing share reconcile failed")

    def stop(self) -> None:
        self._poller.kill(block=False)

    def bounds(self) -> dict[str, float]:
        """Upper bound of the share each known worker may be using now."""
        return dict(self._bounds)

    def reconcile(self) -> None:
        """Bring every worker towards ``1/N`` (N = workers not missing) keeping the bound sum ≤ 1."""
        clients = self.runner.clients
        present = {cid: clients[cid] for cid in list(clients)}
        changed = False
        for cid in list(self._bounds):
            if cid not in present:
                del self._bounds[cid]
                self._sent.pop(cid, None)
                self._unacked_polls.pop(cid, None)
                changed = True
        active = sorted(cid for cid, node in present.items() if node.state != STATE_MISSING)
        for cid in present:
            if cid not in self._bounds:
                self._bounds[cid] = 0.0  # a worker makes no requests before its first share
                changed = True
        target = 1.0 / len(active) if active else 0.0
        targets = {cid: (target if cid in self._bounds and cid in active else 0.0) for cid in present}
        # Lower first: bounds stay at the old value until acknowledged.
        for cid, t in targets.items():
            if self._current(cid) > t + _EPS:
                self._send(cid, t)
                changed = True
        # Then raise where the bound sum leaves room.
        for cid in active:
            t = targets[cid]
            if self._current(cid) < t - _EPS:
                others = sum(b for k, b in self._bounds.items() if k != cid)
                if others + t <= 1.0 + _EPS:
                    self._send(cid, t)
                    self._bounds[cid] = max(self._bounds[cid], t)
                    changed = True
        if changed:
            self._record()

    def _current(self, cid: str) -> float:
        sent = self._sent.get(cid)
        return sent[1] if sent is not None else 0.0

    def _send(self, cid: str, share: float) -> None:
        self._epoch += 1
        self._sent[cid] = (self._epoch, share)
        self._unacked_polls[cid] = 0
        self._transmit(cid)

    def _transmit(self, cid: str) -> None:
        epoch, share = self._sent[cid]
        try:
            self.runner.send_message(MSG_SHARE, {"share": share, "epoch": epoch}, client_id=cid)
        except Exception:
            logger.exception("could not send pacing share to %s", cid)

    def _resend_unacked(self) -> None:
        for cid, polls in list(self._unacked_polls.items()):
            polls += 1
            self._unacked_polls[cid] = polls
            if polls >= self.resend_after_polls and cid in self._sent:
                self._unacked_polls[cid] = 0
                self._transmit(cid)

    def _record(self) -> None:
        snapshot = dict(self._bounds)
        total = sum(snapshot.values())
        self.max_bound_sum = max(self.max_bound_sum, total)
        self.history.append((self._epoch, snapshot))
        if self.on_change is not None:
            self.on_change(snapshot)

    # -- messages -----------------------------------------------------------------------
    def _on_ack(self, environment=None, msg=None, **_kw) -> None:
        cid = msg.node_id
        data = msg.data or {}
        sent = self._sent.get(cid)
        if sent is None or cid not in self._bounds or data.get("epoch") != sent[0]:
            return  # an ack superseded by a later assignment: keep the conservative bound
        self._unacked_polls.pop(cid, None)
        if abs(self._bounds[cid] - sent[1]) > _EPS:
            self._bounds[cid] = sent[1]
            self._record()
        self.reconcile()

    def _relay(self, msg_type: str, msg) -> None:
        for cid in list(self.runner.clients):
            if cid != msg.node_id:
                try:
                    self.runner.send_message(msg_type, msg.data, client_id=cid)
                except Exception:
                    logger.exception("could not relay %s to %s", msg_type, cid)

    def _on_pause(self, environment=None, msg=None, **_kw) -> None:
        self.relayed_pauses += 1
        self._relay(MSG_PAUSE, msg)

    def _on_ban(self, environment=None, msg=None, **_kw) -> None:
        self.relayed_bans += 1
        self._relay(MSG_BAN, msg)


class WorkerPacing:
    """Runs on a Locust worker: applies assigned shares to ``pacer``, acknowledges them, and
    exchanges 429 pauses / 418 bans with the other workers through the master.

    The pacer is set to share 0 here: a worker makes no requests until the master assigns a
    share, and again when the worker quits (before the master learns of it). Local 429/418 handled by ``pacer.on_429`` / ``pacer.on_418`` are forwarded
    automatically; :meth:`report_429` / :meth:`report_418` do both (apply locally and forward),
    so call one *or* the other. ``share_history`` lists ``(epoch, share)`` as applied;
    ``on_share(share, epoch)`` is called after each.
    """

    def __init__(self, runner, pacer: Pacer, *, on_share: Callable[[float, int], Any] | None = None):
        self.runner = runner
        self.pacer = pacer
        self.on_share = on_share
        self.epoch = 0
        self.share_history: list[tuple[int, float]] = []
        self.relayed_pauses = 0
        self.relayed_bans = 0
        pacer.set_share(0.0)
        runner.register_message(MSG_SHARE, self._on_share)
        runner.register_message(MSG_PAUSE, self._on_pause)
        runner.register_message(MSG_BAN, self._on_ban)
        pacer.subscribe(on_429=self._forward_429, on_418=self._forward_418)
        # Locust fires ``quitting`` in reverse registration order, so this runs before the
        # runner's own listener tells the master we quit: our users stop paced requests before
        # the master hands our share to the others.
        runner.environment.events.quitting.add_listener(self._on_quitting)

    def _on_quitting(self, **_kw) -> None:
        self._apply(0.0, self.epoch)

    def _apply(self, share: float, epoch: int) -> None:
        self.pacer.set_share(share)
        self.epoch = epoch
        self.share_history.append((epoch, share))
        if self.on_share is not None:
            self.on_share(share, epoch)

    def _on_share(self, environment=None, msg=None, **_kw) -> None:
        data = msg.data or {}
        epoch = int(data.get("epoch", 0))
        if epoch > self.epoch:
            self._apply(float(data["share"]), epoch)
        # Ack what is applied now (also answers a re-sent duplicate).
        self._send(MSG_ACK, {"share": self.pacer.share, "epoch": self.epoch})

    def _on_pause(self, environment=None, msg=None, **_kw) -> None:
        self.relayed_pauses += 1
        until = self._until(msg.data or {})
        if until is not None:
            self.pacer.pause_until(until)

    def _on_ban(self, environment=None, msg=None, **_kw) -> None:
        self.relayed_bans += 1
        until = self._until(msg.data or {})
        if until is not None:
            self.pacer.ban_until(until)

    def _until(self, data: dict) -> float | None:
        if data.get("until_ms") is not None:
            return float(data["until_ms"])
        if data.get("retry_after_s") is not None:
            return self.pacer.now_ms() + float(data["retry_after_s"]) * 1000.0
        return None

    def report_429(self, retry_after_s: float) -> None:
        """A local 429: pause this process and (through :meth:`Pacer.subscribe`) all others."""
        self.pacer.on_429(retry_after_s)

    def report_418(self, retry_after_s: float) -> None:
        """A local 418: ban this process and (through :meth:`Pacer.subscribe`) all others."""
        self.pacer.on_418(retry_after_s)

    def _forward_429(self, retry_after_s: float, until_ms: float) -> None:
        self._send(MSG_PAUSE, {"retry_after_s": retry_after_s, "until_ms": until_ms})

    def _forward_418(self, retry_after_s: float, until_ms: float) -> None:
        self._send(MSG_BAN, {"retry_after_s": retry_after_s, "until_ms": until_ms})

    def _send(self, msg_type: str, data: dict) -> None:
        try:
            self.runner.send_message(msg_type, data)
        except Exception:
            logger.exception("could not send %s to the master", msg_type)
