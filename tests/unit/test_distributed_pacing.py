"""MasterPacing against a fake runner: shares, the "sum of live bounds ≤ 1" invariant, and lost
workers (missing → bound dropped at once, survivors raised to 1/N_alive; recorded only while the
test runs)."""
from __future__ import annotations

from types import SimpleNamespace

import gevent
from locust.event import Events
from locust.runners import STATE_MISSING, STATE_RUNNING

from letrade_perf.harness.distributed import MSG_SHARE, MasterPacing


class FakeRunner:
    """The parts of Locust's MasterRunner MasterPacing uses: ``clients`` (id → node with a
    ``state``), ``register_message``, ``send_message`` (recorded) and ``environment.events``."""

    def __init__(self) -> None:
        self.clients: dict[str, SimpleNamespace] = {}
        self.handlers: dict[str, object] = {}
        self.sent: list[tuple[str, dict, str]] = []
        self.environment = SimpleNamespace(events=Events())

    def register_message(self, msg_type, listener, concurrent=False) -> None:
        self.handlers[msg_type] = listener

    def send_message(self, msg_type, data=None, client_id=None) -> None:
        self.sent.append((msg_type, data, client_id))

    def join(self, cid: str) -> None:
        self.clients[cid] = SimpleNamespace(id=cid, state=STATE_RUNNING)

    def ready(self, cid: str) -> None:
        """The worker's WorkerPacing is built: it says so."""
        self.handlers[MSG_READY](msg=SimpleNamespace(node_id=cid, data={}))

    def ack_all(self, pacing: MasterPacing) -> None:
        """Every worker that is not missing acks the last share it was sent."""
        last: dict[str, dict] = {}
        for msg_type, data, cid in self.sent:
            if msg_type == MSG_SHARE:
                last[cid] = data
        for cid, data in last.items():
            node = self.clients.get(cid)
            if node is not None and node.state != STATE_MISSING:
                pacing._on_ack(msg=SimpleNamespace(node_id=cid, data=dict(data)))

    def last_share(self, cid: str) -> float | None:
        shares = [d["share"] for t, d, c in self.sent if t == MSG_SHARE and c == cid]
        return shares[-1] if shares else None


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def make(*workers: str) -> tuple[FakeRunner, MasterPacing, Clock]:
    runner, clock = FakeRunner(), Clock()
    for w in workers:
        runner.join(w)
    pacing = MasterPacing(runner, poll_s=3600, wall_clock=clock)   # reconcile is called by hand
    for w in workers:
        runner.ready(w)
    for _ in range(3):
        runner.ack_all(pacing)
    return runner, pacing, clock


def live_sum(pacing: MasterPacing) -> float:
    return sum(pacing.bounds().values())


def test_two_workers_get_half_each_and_bounds_never_exceed_one():
    runner, pacing, _ = make("a", "b")
    assert pacing.bounds() == {"a": 0.5, "b": 0.5}
    assert runner.last_share("a") == runner.last_share("b") == 0.5
    assert pacing.max_bound_sum <= 1.0 + 1e-9
    assert pacing.lost_workers() == []
    pacing.stop()


def test_a_missing_worker_loses_its_bound_at_once_and_the_survivor_gets_everything():
    runner, pacing, clock = make("a", "b")
    runner.environment.events.test_start.fire(environment=runner.environment)
    clock.t = 1_010.0
    runner.clients["b"].state = STATE_MISSING        # no heartbeat for ~3 s: Locust marks it missing
    pacing.reconcile()
    assert pacing.bounds() == {"a": 1.0}              # not 0.5 until Locust declares b dead
    assert runner.last_share("a") == 1.0
    assert pacing.lost_workers() == [{"worker": "b", "at": 1_010.0, "how": "missing"}]
    runner.ack_all(pacing)
    assert pacing.bounds() == {"a": 1.0}
    # ~60 s later Locust removes the dead worker: it is not lost a second time
    del runner.clients["b"]
    pacing.reconcile()
    assert pacing.bounds() == {"a": 1.0}
    assert len(pacing.lost_workers()) == 1
    pacing.stop()


def test_four_workers_one_missing_the_three_survivors_get_a_third():
    runner, pacing, _ = make("a", "b", "c", "d")
    assert pacing.bounds() == {w: 0.25 for w in "abcd"}
    runner.environment.events.test_start.fire(environment=runner.environment)
    runner.clients["c"].state = STATE_MISSING
    pacing.reconcile()
    assert set(pacing.bounds()) == {"a", "b", "d"}
    assert all(abs(runner.last_share(w) - 1 / 3) < 1e-9 for w in "abd")
    assert live_sum(pacing) <= 1.0 + 1e-9
    runner.ack_all(pacing)
    assert all(abs(b - 1 / 3) < 1e-9 for b in pacing.bounds().values())
    assert [w["worker"] for w in pacing.lost_workers()] == ["c"]
    pacing.stop()


def test_a_worker_that_leaves_mid_run_is_lost_as_left():
    runner, pacing, clock = make("a", "b")
    runner.environment.events.test_start.fire(environment=runner.environment)
    clock.t = 1_005.5
    del runner.clients["a"]                           # it quit (SIGTERM) while the test ran
    pacing.reconcile()
    assert pacing.bounds() == {"b": 1.0}
    assert pacing.lost_workers() == [{"worker": "a", "at": 1_005.5, "how": "left"}]
    pacing.stop()


def test_workers_that_quit_at_the_normal_end_are_not_lost():
    runner, pacing, _ = make("a", "b")
    events = runner.environment.events
    events.test_start.fire(environment=runner.environment)
    events.test_stopping.fire(environment=runner.environment)   # the master stops the run
    del runner.clients["a"]                           # client_stopped / quit at the end
    runner.clients["b"].state = STATE_MISSING
    pacing.reconcile()
    events.test_stop.fire(environment=runner.environment)
    events.quitting.fire(environment=runner.environment)
    assert pacing.lost_workers() == []
    pacing.stop()


def test_a_worker_lost_just_before_the_stop_is_still_lost():
    """The last worker going missing makes Locust stop the test at once: the poll has not seen
    it yet, but the stop looks once more."""
    runner, pacing, _ = make("a")
    events = runner.environment.events
    events.test_start.fire(environment=runner.environment)
    runner.clients["a"].state = STATE_MISSING
    events.test_stopping.fire(environment=runner.environment)
    assert [(w["worker"], w["how"]) for w in pacing.lost_workers()] == [("a", "missing")]
    assert pacing.bounds() == {}
    pacing.stop()


def test_workers_lost_before_the_test_starts_are_not_recorded():
    runner, pacing, _ = make("a", "b")
    del runner.clients["b"]
    pacing.reconcile()
    assert pacing.bounds() == {"a": 1.0}
    assert pacing.lost_workers() == []
    pacing.stop()


def test_a_missing_worker_that_heals_gets_its_last_share_back_as_bound_then_is_lowered():
    runner, pacing, clock = make("a", "b")
    runner.environment.events.test_start.fire(environment=runner.environment)
    runner.clients["b"].state = STATE_MISSING
    pacing.reconcile()
    runner.ack_all(pacing)
    assert pacing.bounds() == {"a": 1.0}
    clock.t = 1_020.0
    runner.clients["b"].state = STATE_RUNNING         # heartbeats again: it may still use 0.5
    pacing.reconcile()
    assert pacing.bounds()["b"] == 0.5
    assert runner.last_share("a") == 0.5              # lowered first ...
    assert runner.last_share("b") == 0.5
    runner.ack_all(pacing)
    assert pacing.bounds() == {"a": 0.5, "b": 0.5}    # ... back to half each
    lost = pacing.lost_workers()
    assert lost == [{"worker": "b", "at": 1_000.0, "how": "missing", "recovered_at": 1_020.0}]
    pacing.stop()


def test_lost_workers_is_a_copy():
    runner, pacing, _ = make("a", "b")
    runner.environment.events.test_start.fire(environment=runner.environment)
    del runner.clients["b"]
    pacing.reconcile()
    got = pacing.lost_workers()
    got[0]["how"] = "tampered"
    assert pacing.lost_workers()[0]["how"] == "left"
    pacing.stop()


def test_the_poll_drops_a_missing_worker_within_one_poll():
    runner = FakeRunner()
    runner.join("a")
    runner.join("b")
    pacing = MasterPacing(runner, poll_s=0.01)
    runner.ready("a")
    runner.ready("b")
    for _ in range(3):
        runner.ack_all(pacing)
    runner.environment.events.test_start.fire(environment=runner.environment)
    runner.clients["b"].state = STATE_MISSING
    gevent.sleep(0.05)
    assert pacing.bounds() == {"a": 1.0}
    assert runner.last_share("a") == 1.0
    pacing.stop()


# -- start-up inside the shares ----------------------------------------------------------
from letrade_perf.harness.distributed import (  # noqa: E402
    MSG_INFO,
    MSG_INFO_REQUEST,
    MSG_READY,
    WorkerPacing,
    request_startup_info,
)
from letrade_perf.pacing import Budgets, Pacer  # noqa: E402

MIN0 = 1_700_000_040_000          # a whole minute of server time
SMALL = Budgets(weight=((60_000, 100),), orders=((10_000, 10), (86_400_000, 50)), raw=((300_000, 1000),))


class FakeTime:
    def __init__(self, ms: float):
        self.ms = float(ms)

    def clock(self) -> float:
        return self.ms

    def sleep(self, seconds: float) -> None:
        self.ms += seconds * 1000.0
        gevent.sleep(0)


def test_the_master_answers_a_startup_request_with_exchange_info_weight_and_workers():
    runner = FakeRunner()
    runner.join("a")
    info = {"rateLimits": [], "symbols": []}
    pacing = MasterPacing(runner, poll_s=3600, exchange_info=info, startup_weight=40, expected_workers=4)
    runner.handlers[MSG_INFO_REQUEST](msg=SimpleNamespace(node_id="a", data={}))
    assert runner.sent[-1] == (MSG_INFO, {"info": info, "startup_weight": 40, "workers": 4}, "a")
    pacing.stop()


def test_shares_wait_for_the_workers_ready_message():
    """Locust drops a message whose handler is not registered yet: the worker says when."""
    runner = FakeRunner()
    runner.join("a")
    pacing = MasterPacing(runner, poll_s=3600)
    assert runner.last_share("a") is None and pacing.bounds() == {"a": 1.0}
    pacing._resend_unacked()
    assert runner.last_share("a") is None
    runner.ready("a")
    assert runner.last_share("a") == 1.0
    pacing.stop()


def test_without_a_ready_message_the_share_is_sent_after_ready_wait_polls():
    runner = FakeRunner()
    runner.join("a")
    pacing = MasterPacing(runner, poll_s=3600, ready_wait_polls=4)
    for _ in range(3):
        pacing._resend_unacked()
    assert runner.last_share("a") is None
    pacing._resend_unacked()
    assert runner.last_share("a") == 1.0
    pacing.stop()


class WorkerSide:
    """A worker runner whose master answers the ``answer_on``-th start-up request."""

    def __init__(self, answer_on: int | None, data: dict | None = None) -> None:
        self.handlers: dict[str, object] = {}
        self.sent: list[tuple[str, dict]] = []
        self.answer_on = answer_on
        self.data = data
        self.environment = SimpleNamespace(events=Events())

    def register_message(self, msg_type, listener, concurrent=False) -> None:
        self.handlers[msg_type] = listener

    def send_message(self, msg_type, data=None, client_id=None) -> None:
        self.sent.append((msg_type, data))
        requests = sum(1 for t, _ in self.sent if t == MSG_INFO_REQUEST)
        if msg_type == MSG_INFO_REQUEST and requests == self.answer_on:
            gevent.spawn(self.handlers[MSG_INFO], msg=SimpleNamespace(node_id="master", data=self.data))


def test_a_worker_repeats_its_startup_request_until_the_master_answers():
    data = {"info": {"rateLimits": []}, "startup_weight": 40, "workers": 2}
    runner = WorkerSide(answer_on=3, data=data)
    got = request_startup_info(runner, timeout_s=5, every_s=0.01)
    assert got == data
    assert sum(1 for t, _ in runner.sent if t == MSG_INFO_REQUEST) == 3


def test_without_an_answer_the_worker_falls_back_after_the_timeout():
    runner = WorkerSide(answer_on=None)
    assert request_startup_info(runner, timeout_s=0.05, every_s=0.01) is None


def test_the_startup_reservation_waits_for_the_share_and_goes_before_the_users():
    ft = FakeTime(MIN0 + 5_000)
    pacer = Pacer(SMALL, clock=ft.clock, sleep=ft.sleep)          # weight 80 per minute at share 1
    worker = WorkerPacing(WorkerSide(answer_on=None), pacer)
    assert pacer.share == 0.0
    g = worker.reserve_startup(25)
    gevent.sleep(0)
    user = gevent.spawn(pacer.acquire, 20)                        # a user's request, queued after it
    gevent.sleep(0)
    assert pacer.stats().weight_used == 0                         # nothing before a share
    pacer.set_share(0.5)                                          # 40 of this minute: 25 start-up + 15
    g.join()
    waited = user.get(timeout=5)
    # 25 + 20 > 40: the user's request waited for the next minute, where it is all there is
    assert waited > 0 and ft.ms >= MIN0 + 60_000
    stats = pacer.stats()
    assert stats.acquired_weight_total == 45 and stats.weight_used == 20


def test_a_startup_heavier_than_the_whole_share_fills_the_share():
    ft = FakeTime(MIN0 + 5_000)
    pacer = Pacer(SMALL, clock=ft.clock, sleep=ft.sleep)
    worker = WorkerPacing(WorkerSide(answer_on=None), pacer)
    g = worker.reserve_startup(45)
    pacer.set_share(0.25)                                         # 20 of 80
    g.join()
    assert pacer.stats().weight_used == 20
