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
* ``letrade_pacing_ready`` worker → master: its share handler is registered. The master sends a
  worker its shares only from then on (Locust would drop one that arrives earlier as an unknown
  message), and the last one at once; after ``ready_wait_polls`` polls without it, anyway.
* ``letrade_startup_request`` worker → master, answered by ``letrade_startup_info`` master → worker
  ``{"info": exchangeInfo, "startup_weight": w, "workers": n}`` (see *Start-up* below).

**Start-up inside the shares.** A worker's start-up calls precede its first share, and before
this they were outside every budget: with N workers each fetching exchangeInfo (weight 20) and
syncing its clock, a 100-weight/minute budget was spent before any user ran (429s; at 4 workers
a worker's own exchangeInfo was refused). Now the master fetches exchangeInfo *once* and hands it
to the workers (:func:`request_startup_info`) with ``startup_weight``, the IP's used weight the
master's response reported (its own call plus anything before it in that minute, e.g. the
launcher's pre-flight check), and ``workers``, the number it expects (Locust's ``--expect-workers``;
1 without it, which only makes each worker reserve more). Each worker then only syncs
its clock, and reserves in its own pacer, inside its share, its clock samples plus
``startup_weight / workers`` (:meth:`WorkerPacing.reserve_startup`): the reservation waits for the
share, and the users' requests queue behind it (the pacer serves FIFO). So the sum of what the
workers reserve covers everything the IP spent at start-up. A worker whose master does not answer
(an older master) fetches exchangeInfo itself and reserves that too.

**Why the sum of shares never exceeds 1.** The master keeps, per worker, an upper *bound* on the
share that worker may be using. A lowered share counts at its old value until the worker acks
it (the worker may still be using the old one); a raised share counts at its new value from the
moment it is sent. A raise is sent only when ``sum(bounds) − bound[w] + new ≤ 1``. So on a
join the existing workers are first told to go down to ``1/N``; the newcomer starts at 0 (a
worker makes no requests before its first assignment) and gets ``1/N`` only once the acks have
made room. On a leave the departed worker's bound is dropped at once, and the survivors are
raised to ``1/N_alive`` (N_alive = workers present and not missing), both when Locust removes it
from ``runner.clients`` (it quit) and as soon as Locust marks it ``STATE_MISSING`` (no heartbeat
for ~3 s), not only when Locust declares it dead (~60 s later).

**Tradeoff of dropping a missing worker's bound.** The invariant "sum of bounds ≤ 1" is kept for
*live* workers only. A missing worker is almost always a dead one (killed, OOM, host gone), and
keeping its share bound for a minute would leave the survivors at a fraction of the budget. But a
missing worker that is in fact alive (a network partition, a process stalled for > 3 s) may still
spend its last share until it is dead, or until it heals: the IP/account-wide use can then exceed
the budget (the server's headers, which every pacer honours, and the 429 feedback are the safety
net). When a missing worker heals (heartbeats again) its bound is restored to the share it was
last sent, and it is lowered to ``1/N`` like any worker.

**Lost workers.** :meth:`MasterPacing.lost_workers` lists the workers that went missing or left
while the test was running — between the master's ``test_start`` and ``test_stopping`` (a worker
that quits or stops after the run's own stop, quit or abort is not lost): ``{"worker": client_id,
"at": unix time, "how": "missing" | "left"}`` (``"recovered_at"`` is added if a missing worker
healed).

The master learns of membership changes from the ``worker_connect`` event and, as a robust
fallback (Locust has no event for a worker leaving), by polling ``runner.clients`` every
``poll_s``. Unacknowledged assignments are re-sent on the poll.

Known limit: a worker that reconnects to a *restarted* master keeps the share it had; the new
master assumes 0 for it until its first ack.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

import gevent
import gevent.event
from locust.runners import STATE_MISSING

from ..pacing.pacer import Pacer

if TYPE_CHECKING:
    from gevent import Greenlet

logger = logging.getLogger(__name__)

MSG_SHARE = "letrade_pacing_share"
MSG_ACK = "letrade_pacing_ack"
MSG_PAUSE = "letrade_pacing_pause"
MSG_BAN = "letrade_pacing_ban"
MSG_READY = "letrade_pacing_ready"
MSG_INFO_REQUEST = "letrade_startup_request"
MSG_INFO = "letrade_startup_info"

_EPS = 1e-9


class MasterPacing:
    """Runs on the Locust master: assigns shares and relays 429 pauses / 418 bans.

    ``history`` records ``(epoch, {worker: bound})`` after every change, for reports and tests;
    ``max_bound_sum`` is the largest sum of the live workers' bounds ever reached (≤ 1 by
    construction); ``lost`` lists the workers lost while the test ran (see :meth:`lost_workers`).
    ``on_change(bounds)`` is called after each change.
    """

    def __init__(self, runner, *, poll_s: float = 0.5, resend_after_polls: int = 3, ready_wait_polls: int = 20,
                 on_change: Callable[[dict[str, float]], Any] | None = None,
                 wall_clock: Callable[[], float] = time.time, exchange_info: dict | None = None,
                 startup_weight: int = 0, expected_workers: int = 1):
        self.runner = runner
        self.exchange_info = exchange_info
        self.startup_weight = startup_weight
        self.expected_workers = max(1, int(expected_workers or 1))
        self.poll_s = poll_s
        self.resend_after_polls = resend_after_polls
        self.ready_wait_polls = ready_wait_polls
        self.on_change = on_change
        self._wall = wall_clock
        self._epoch = 0
        self._bounds: dict[str, float] = {}
        self._sent: dict[str, tuple[int, float]] = {}    # worker -> (epoch, share) last sent
        self._unacked_polls: dict[str, int] = {}
        self._missing: set[str] = set()                   # known workers Locust marks missing
        self._ready: set[str] = set()                     # workers that said their handler is registered
        self._unready_polls: dict[str, int] = {}
        self._running = False                             # between test_start and test_stopping
        self.history: list[tuple[int, dict[str, float]]] = []
        self.max_bound_sum = 0.0
        self.lost: list[dict[str, Any]] = []
        self.relayed_pauses = 0
        self.relayed_bans = 0
        runner.register_message(MSG_ACK, self._on_ack)
        runner.register_message(MSG_PAUSE, self._on_pause)
        runner.register_message(MSG_BAN, self._on_ban)
        runner.register_message(MSG_READY, self._on_ready)
        runner.register_message(MSG_INFO_REQUEST, self._on_info_request)
        events = runner.environment.events
        events.worker_connect.add_listener(self._on_worker_connect)
        events.test_start.add_listener(self._on_test_start)
        stopping = getattr(events, "test_stopping", None)     # fired first thing in runner.stop()
        for hook in (stopping, events.test_stop, events.quitting):
            if hook is not None:
                hook.add_listener(self._on_test_end)
        self._poller = gevent.spawn(self._poll)
        self.reconcile()

    # -- membership ---------------------------------------------------------------------
    def _on_worker_connect(self, client_id: str = "", **_kw) -> None:
        # Fired before the master adds the worker to runner.clients: reconcile right after.
        gevent.spawn(self.reconcile)

    def _on_test_start(self, **_kw) -> None:
        self._running = True

    def _on_test_end(self, **_kw) -> None:
        # A worker that went missing or left just before the stop is still lost: look once more
        # while the test counts as running; what leaves from now on quits with the run.
        if self._running:
            try:
                self.reconcile()
            finally:
                self._running = False

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
        """Upper bound of the share each live worker may be using now."""
        return dict(self._bounds)

    def lost_workers(self) -> list[dict[str, Any]]:
        """Workers that went missing (``"how": "missing"``) or left ``runner.clients``
        (``"left"``) while the test was running, in the order they were lost: ``{"worker":
        client_id, "at": unix time, "how": ...}``, plus ``"recovered_at"`` for a missing worker
        that healed. A worker that quits after the master's stop or quit is not lost."""
        return [dict(rec) for rec in self.lost]

    def _lose(self, cid: str, how: str) -> None:
        if not self._running:
            return
        if any(rec["worker"] == cid and "recovered_at" not in rec for rec in self.lost):
            return   # already lost (a missing worker later removed as dead)
        at = self._wall()
        self.lost.append({"worker": cid, "at": at, "how": how})
        logger.warning("worker %s %s while the test was running: its pacing share goes to the %d "
                       "other worker(s)", cid, "went missing" if how == "missing" else "left",
                       sum(1 for k in self._bounds if k != cid))

    def reconcile(self) -> None:
        """Bring every live worker towards ``1/N`` (N = workers present and not missing) keeping
        the sum of live workers' bounds ≤ 1; drop the bounds of missing and departed workers."""
        clients = self.runner.clients
        present = {cid: clients[cid] for cid in list(clients)}
        active = sorted(cid for cid, node in present.items() if node.state != STATE_MISSING)
        changed = False
        for cid in list(self._sent):
            if cid not in present:                      # quit, stopped or declared dead
                if cid in self._bounds:
                    self._lose(cid, "left")
                    del self._bounds[cid]
                    changed = True
                self._sent.pop(cid, None)
                self._unacked_polls.pop(cid, None)
                self._missing.discard(cid)
                self._ready.discard(cid)
                self._unready_polls.pop(cid, None)
        for cid in list(self._bounds):
            if cid not in present:                      # known but never sent a share
                self._lose(cid, "left")
                del self._bounds[cid]
                changed = True
        for cid in present:
            if cid in active:
                continue
            if cid not in self._missing:                # newly missing: drop its bound at once
                self._missing.add(cid)
                if cid in self._bounds:
                    self._lose(cid, "missing")
                    del self._bounds[cid]
                    changed = True
                self._unacked_polls.pop(cid, None)      # no point re-sending to a missing worker
        for cid in active:
            if cid in self._missing:                    # healed: it may use what it was last sent
                self._missing.discard(cid)
                self._bounds[cid] = self._current(cid)
                for rec in self.lost:
                    if rec["worker"] == cid and "recovered_at" not in rec:
                        rec["recovered_at"] = self._wall()
                logger.warning("worker %s is back (heartbeat again): its share is re-split", cid)
                changed = True
            elif cid not in self._bounds:
                self._bounds[cid] = 0.0  # a worker makes no requests before its first share
                changed = True
        target = 1.0 / len(active) if active else 0.0
        # Lower first: bounds stay at the old value until acknowledged.
        for cid in active:
            if self._current(cid) > target + _EPS:
                self._send(cid, target)
                changed = True
        # Then raise where the bound sum leaves room.
        for cid in active:
            if self._current(cid) < target - _EPS:
                others = sum(b for k, b in self._bounds.items() if k != cid)
                if others + target <= 1.0 + _EPS:
                    self._send(cid, target)
                    self._bounds[cid] = max(self._bounds[cid], target)
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

    def _transmit(self, cid: str, force: bool = False) -> None:
        if cid not in self._ready and not force:
            return   # sent on its ready message: before it, Locust would drop it as unknown
        epoch, share = self._sent[cid]
        try:
            self.runner.send_message(MSG_SHARE, {"share": share, "epoch": epoch}, client_id=cid)
        except Exception:
            logger.exception("could not send pacing share to %s", cid)

    def _resend_unacked(self) -> None:
        for cid in list(self._unacked_polls):
            if cid not in self._ready:
                n = self._unready_polls[cid] = self._unready_polls.get(cid, 0) + 1
                if n >= self.ready_wait_polls:   # no ready message (lost?): send it anyway
                    self._ready.add(cid)
                    self._transmit(cid)
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
        self._ready.add(cid)          # it handles shares
        data = msg.data or {}
        sent = self._sent.get(cid)
        if sent is None or cid not in self._bounds or data.get("epoch") != sent[0]:
            return  # an ack superseded by a later assignment: keep the conservative bound
        self._unacked_polls.pop(cid, None)
        if abs(self._bounds[cid] - sent[1]) > _EPS:
            self._bounds[cid] = sent[1]
            self._record()
        self.reconcile()

    def _on_ready(self, environment=None, msg=None, **_kw) -> None:
        self._ready.add(msg.node_id)
        self._unready_polls.pop(msg.node_id, None)
        if msg.node_id in self._sent:
            self._transmit(msg.node_id)

    def _on_info_request(self, environment=None, msg=None, **_kw) -> None:
        data = {"info": self.exchange_info, "startup_weight": self.startup_weight,
                "workers": self.expected_workers}
        try:
            self.runner.send_message(MSG_INFO, data, client_id=msg.node_id)
        except Exception:
            logger.exception("could not send the start-up info to %s", msg.node_id)

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
        self._send(MSG_READY, {})

    def reserve_startup(self, weight: int) -> Greenlet | None:
        """Reserve ``weight`` (what this worker's start-up spent before its pacer existed) in
        the pacer as soon as a share is assigned, inside that share; the users' requests queue
        behind it. When ``weight`` exceeds the whole share of a bucket, the share is filled.
        Returns the greenlet doing it (None for ``weight`` ≤ 0)."""
        if weight <= 0:
            return None

        def reserve() -> None:
            try:
                self.pacer.acquire(weight, name="worker start-up")
            except ValueError:          # heavier than the whole share: fill it
                cap = self.pacer.stats().weight_budget
                if cap > 0:
                    self.pacer.acquire(cap, name="worker start-up")
            except Exception as e:     # a ban: nothing to reserve against
                logger.warning("worker start-up reservation: %s", e)

        return gevent.spawn(reserve)

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


def request_startup_info(runner, *, timeout_s: float = 30.0, every_s: float = 1.0) -> dict | None:
    """On a worker: ask the master for exchangeInfo and the start-up weight to reserve (see the
    module docstring); the request is repeated every ``every_s`` (the master may not have
    registered its handler yet). Returns ``{"info", "startup_weight", "workers"}``, or None when
    the master did not answer with an exchangeInfo within ``timeout_s``."""
    got: dict[str, Any] = {}
    done = gevent.event.Event()

    def on_info(environment=None, msg=None, **_kw) -> None:
        if not done.is_set():
            got.update(msg.data or {})
            done.set()

    runner.register_message(MSG_INFO, on_info)
    deadline = time.monotonic() + timeout_s
    while not done.is_set() and time.monotonic() < deadline:
        try:
            runner.send_message(MSG_INFO_REQUEST, {})
        except Exception:
            logger.exception("could not ask the master for the start-up info")
        done.wait(min(every_s, max(0.0, deadline - time.monotonic())))
    if not isinstance(got.get("info"), dict):
        return None
    return got
