"""Open-model load (``users.<kind>.arrival_rate``): the arrival schedule's slots, lateness and dropped
iterations under an injected clock, the two latencies a request reports (service time and
latency from the intended start), the recorder's series and gauges, the criteria that name them,
the planned-vs-achieved shortfall, and the profile's validation errors."""
from __future__ import annotations

import heapq
from types import SimpleNamespace

import pytest
from locust.event import EventHook

from letrade_perf.config.profile import parse_rate, profile_from_mapping
from letrade_perf.core.errors import ConfigError
from letrade_perf.criteria.achieved import Achieved, untolerated
from letrade_perf.criteria.evaluate import judge
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.metrics import catalogue
from letrade_perf.metrics.recorder import ARRIVAL_EVENT, INTENDED_CONTEXT, MetricsRecorder, MetricsStore, Snapshot
from letrade_perf.users.arrival import ArrivalSchedule, OpenModelMixin


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _profile(users: dict | None = None, **extra):
    doc = {"description": "open model", "stages": [{"duration": "10s", "users": 2, "spawn_rate": 2}],
           "users": users or {"rest_market": {"arrival_rate": "10/s"}}}
    doc.update(extra)
    return profile_from_mapping(doc, "t.yaml", "t")


# -- the schedule -------------------------------------------------------------------------------------

def test_free_users_take_the_next_slots_on_the_fixed_schedule():
    clock = Clock(100.0)
    reports: list[tuple[int, int]] = []
    s = ArrivalSchedule(10.0, clock=clock, report=lambda a, b: reports.append((a, b)))
    s.join()
    s.join()
    # the schedule starts at the first claim; two free users take slots 0 and 1 (0.1 s apart)
    assert [s.claim(), s.claim()] == [100.0, pytest.approx(100.1)]
    clock.t = 100.1
    assert s.claim() == pytest.approx(100.2)    # a user free before its slot waits for it
    assert (s.started, s.dropped, reports) == (3, 0, [(1, 0)] * 3)


def test_a_late_user_takes_the_current_slot_and_the_closed_slots_are_dropped():
    clock = Clock(0.0)
    reports: list[tuple[int, int]] = []
    s = ArrivalSchedule(10.0, clock=clock, report=lambda a, b: reports.append((a, b)))
    s.join()
    assert s.claim() == 0.0
    clock.t = 0.35   # slots 1 (0.1) and 2 (0.2) closed at 0.2 and 0.3 with every user busy
    assert s.claim() == pytest.approx(0.3)    # slot 3's window holds 0.35: taken, 50 ms late
    assert (s.started, s.dropped) == (2, 2)
    assert reports[-1] == (1, 2)
    clock.t = 0.4    # exactly at slot 4's time: slot 3 was taken, nothing is dropped
    assert s.claim() == pytest.approx(0.4)
    assert s.dropped == 2


def test_the_last_user_leaving_settles_the_period_and_a_new_one_starts_later():
    clock = Clock(0.0)
    s = ArrivalSchedule(4.0, clock=clock)
    s.join()
    s.join()
    assert s.claim() == 0.0
    clock.t = 1.1      # slots 1..3 (0.25, 0.5, 0.75) closed unclaimed; slot 4 (1.0) is still open
    s.leave()
    assert s.dropped == 0 and s.users == 1     # one user still runs: nothing settles yet
    s.leave()
    assert (s.dropped, s.users) == (3, 0)
    clock.t = 50.0     # the time without users is no part of the plan
    assert s.claim() == 50.0
    assert (s.started, s.dropped) == (2, 3)


def test_a_rate_change_keeps_the_next_slot_and_rate_zero_serves_nothing():
    clock = Clock(0.0)
    s = ArrivalSchedule(10.0, clock=clock)
    s.join()
    assert s.claim() == 0.0
    clock.t = 0.05
    s.set_rate(2.0)                 # the next slot keeps its time (0.1); the ones after are 0.5 s apart
    assert s.claim() == pytest.approx(0.1)
    assert s.claim() == pytest.approx(0.6)
    s.set_rate(0.0)                 # a worker whose share went to 0
    assert s.claim() is None and s.next_at() is None
    clock.t = 30.0
    s.set_rate(1.0)                 # serving again: from now, nothing dropped for the idle time
    assert s.claim() == 30.0
    assert s.dropped == 0
    with pytest.raises(ValueError):
        ArrivalSchedule(float("nan"))


# -- users of the kind: the two latencies -------------------------------------------------------------

class FakeUser(OpenModelMixin):
    """The mixin as a Locust user uses it: ``wait()`` sleeps ``wait_time()`` on the fake clock."""

    letrade_kind = "rest_market"

    def __init__(self, env, clock: Clock, rate: float) -> None:
        self.environment = env
        self.settings = SimpleNamespace(arrival_rate=rate)
        self.arrival_clock = clock
        self.clock = clock
        self.slept: list[float] = []

    def wait(self) -> None:
        d = self.wait_time()
        self.slept.append(d)
        self.clock.t += d


def _env(recorder: MetricsRecorder | None = None):
    events = SimpleNamespace(request=EventHook())
    setattr(events, ARRIVAL_EVENT, EventHook())
    if recorder is not None:
        recorder.listen(events)
    return SimpleNamespace(events=events, letrade=None)


def test_a_request_reports_its_service_time_and_its_latency_from_the_intended_start():
    clock = Clock(10.0)
    env = _env()
    user = FakeUser(env, clock, 5.0)
    assert user.arrival_sent() is None            # the closed model: no intended start
    user.arrival_start()                          # joins and waits for slot 0 (now)
    assert user.slept == [0.0]
    clock.t += 0.3                                # waited 300 ms for the weight budget (pacing)
    assert user.arrival_sent() == pytest.approx(300.0)
    clock.t += 0.05                               # the answer: 50 ms service time
    user.arrival_done()
    clock.t += 0.01                               # the iteration's second request (a klines page)
    assert user.arrival_sent() == pytest.approx(10.0)
    clock.t += 0.05
    user.arrival_done()
    user.wait()          # at 10.41 slot 1 (10.2) closed unserved; slot 2 (10.4) is taken 10 ms late
    assert user.slept[-1] == 0.0
    assert user.arrival_sent() == pytest.approx(10.0)
    sched = env.letrade_arrivals["rest_market"]
    assert (sched.started, sched.dropped) == (2, 1)
    user.arrival_stop()
    assert user.arrival_sent() is None
    assert env.letrade_arrivals["rest_market"].users == 0


def test_users_that_cannot_keep_up_are_late_and_drop_iterations():
    """Two users whose requests take 250 ms against 10 iterations a second (capacity 8/s): a
    discrete-event run of the user loop on the injected clock."""
    clock = Clock(0.0)
    rec = MetricsRecorder(clock=clock, samples_dir="")
    env = _env(rec)
    service = 0.25
    users = [FakeUser(env, clock, 10.0) for _ in range(2)]
    queue: list[tuple[float, int, str]] = []
    for i, u in enumerate(users):
        u.arrival_start()                        # claims slots 0 and 1
        queue.append((u.clock.t, i, "send"))
        clock.t = 0.0
    heapq.heapify(queue)
    sent: dict[int, float] = {}
    while queue:
        t, i, what = heapq.heappop(queue)
        clock.t = t
        u = users[i]
        if what == "send":
            late = u.arrival_sent()
            sent[i] = late
            heapq.heappush(queue, (t + service, i, "done"))
        else:
            ms = service * 1000.0
            env.events.request.fire(request_type="GET", name="GET /api/v3/depth", response_time=ms,
                                    exception=None, context={INTENDED_CONTEXT: sent[i] + ms})
            u.arrival_done()
            if t >= 10.0:
                u.arrival_stop()
                continue
            d = u.arrival_wait()
            heapq.heappush(queue, (t + d, i, "send"))
    sched = env.letrade_arrivals["rest_market"]
    assert sched.users == 0
    assert sched.started + sched.dropped == pytest.approx(100, abs=3)   # 10/s for ~10 s planned
    assert 75 <= sched.started <= 85 and sched.dropped >= 15            # 8/s served, the rest dropped
    store = MetricsStore()
    store.merge(Snapshot.from_wire(rec.drain().to_wire()))
    service_h = store.merged("request").hist
    intended_h = store.merged("request_intended").hist
    assert service_h.count == intended_h.count == sched.started
    assert service_h.max == pytest.approx(250.0, rel=0.01)
    assert intended_h.min >= service_h.min * 0.99          # never below the service time
    assert intended_h.mean > service_h.mean + 10.0         # late by up to a slot (100 ms)
    assert intended_h.max <= 350.0 * 1.01
    assert store.gauge("iterations") == sched.started
    assert store.gauge("dropped_iterations.rest_market") == sched.dropped


# -- recorder, catalogue and criteria -------------------------------------------------------------------

def test_the_recorder_keeps_the_intended_latency_beside_the_service_time_and_counts_iterations():
    rec = MetricsRecorder(clock=lambda: 1000.0, samples_dir="")
    events = SimpleNamespace(request=EventHook())
    rec.listen(events)                       # adds the letrade_arrival hook the events lack
    events.request.fire(request_type="ccxt", name="ccxt fetch_ticker", response_time=40.0, exception=None,
                        context={INTENDED_CONTEXT: 140.0})
    events.request.fire(request_type="ccxt", name="ccxt fetch_ticker", response_time=60.0, exception=None,
                        context={})                                       # a closed-model request
    events.request.fire(request_type="GET", name="GET /api/v3/depth", response_time=30.0,
                        exception=RuntimeError("x"), context={INTENDED_CONTEXT: 90.0})
    getattr(events, ARRIVAL_EVENT).fire(kind="ccxt", started=3, dropped=0)
    getattr(events, ARRIVAL_EVENT).fire(kind="ccxt", started=1, dropped=2)
    snap = Snapshot.from_wire(rec.drain().to_wire())
    assert snap.gauges == {"iterations": 4.0, "iterations.ccxt": 4.0, "dropped_iterations": 2.0,
                           "dropped_iterations.ccxt": 2.0}
    store = MetricsStore()
    store.merge(snap, "w1")
    other = MetricsRecorder(clock=lambda: 1000.0, samples_dir="")
    other.on_arrival(kind="ccxt", started=4, dropped=2)
    store.merge(other.drain(), "w2")        # two workers: their gauges add up
    [(tags, s)] = store.select("request_intended", (("type", "ccxt"),))
    assert dict(tags) == {"type": "ccxt", "name": "ccxt fetch_ticker", "status": "ok"}
    assert (s.hist.count, s.hist.max) == (1, pytest.approx(140.0, rel=0.01))
    assert store.merged("request_intended", (("status", "fail"),)).hist.count == 1
    assert store.merged("request", (("type", "ccxt"),)).hist.count == 2

    def verdict(spec: dict) -> tuple[str, float | None]:
        (c,) = parse_criteria(spec, "t.yaml")
        r = judge(c, store, 10.0)
        return r.verdict, r.value

    assert verdict({'request_intended{type="ccxt"}': ["max<200"]}) == ("pass", pytest.approx(140.0, rel=0.01))
    assert verdict({'request{type="ccxt"}': ["max<100"]})[0] == "pass"
    assert verdict({"dropped_iterations": ["count==0"]}) == ("fail", 4.0)
    assert verdict({"iterations": ["count>=8"]}) == ("pass", 8.0)


def test_the_open_model_metrics_are_produced_only_by_a_kind_with_an_arrival_rate():
    closed = _profile({"rest_market": {}})
    open_ = _profile()
    for name in ("request_intended", "iterations", "dropped_iterations"):
        assert catalogue.produced(name, closed.users.produces(), False) is False
        assert catalogue.produced(name, open_.users.produces(), False) is True


# -- planned vs achieved --------------------------------------------------------------------------------

def _achieved(profile, gauges: dict[str, float]) -> dict:
    clock = Clock(0.0)
    a = Achieved(profile, clock=clock)
    a.gauge = lambda name: gauges.get(name, 0.0)
    a.start()
    for t in range(11):
        clock.t = float(t)
        a.sample(2)
    a.stop()
    return a.report()


def test_dropped_iterations_beyond_the_tolerance_are_a_shortfall():
    p = _profile({"rest_market": {"arrival_rate": "10/s"}, "ccxt": {"arrival_rate": "120/m"}})
    rep = _achieved(p, {"iterations.rest_market": 80, "dropped_iterations.rest_market": 20,
                        "iterations.ccxt": 20})
    assert rep["planned"]["arrival_rates"] == {"rest_market": 10.0, "ccxt": 2.0}
    assert rep["achieved"]["iterations"] == {
        "rest_market": {"rate_per_s": 10.0, "planned": 100, "started": 80, "dropped": 20},
        "ccxt": {"rate_per_s": 2.0, "planned": 20, "started": 20, "dropped": 0}}
    [sf] = untolerated(rep)
    assert sf["kind"] == "dropped_iterations"
    assert sf["message"].startswith("20 of 100 rest_market iterations dropped (20.0%; tolerated: 1%)")


def test_dropped_iterations_within_the_tolerance_are_listed_as_tolerated():
    p = _profile({"rest_market": {"arrival_rate": 10}}, tolerate={"dropped_iterations": 0.25})
    rep = _achieved(p, {"iterations.rest_market": 80, "dropped_iterations.rest_market": 20})
    assert [(s["kind"], s["tolerated"]) for s in rep["shortfalls"]] == [("dropped_iterations", True)]
    assert untolerated(rep) == []
    closed = _achieved(_profile({"rest_market": {}}), {})
    assert closed["achieved"]["iterations"] == {} and closed["shortfalls"] == []


# -- profile validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,per_s", [("50/s", 50.0), ("600/m", 10.0), ("7200/hour", 2.0), ("1.5 / sec", 1.5),
                                        (25, 25.0), (0.5, 0.5), (None, None)])
def test_rates_read_per_second(text, per_s):
    assert parse_rate(text, "users.ccxt.arrival_rate", "t.yaml") == per_s


@pytest.mark.parametrize("users,message", [
    ({"ws_streams": {"arrival_rate": "5/s"}},
     "t.yaml: users.ws_streams.arrival_rate: open-model load (an arrival rate) is supported by the rest_market "
     "and ccxt kinds only"),
    ({"pipeline": {"arrival_rate": 1}}, "users.pipeline.arrival_rate: open-model load"),
    ({"rest_market": {"arrival_rate": "fast"}},
     "users.rest_market.arrival_rate: expected a rate such as 50/s, 600/m or 2/h (or a number per second), "
     "got 'fast'"),
    ({"rest_market": {"arrival_rate": True}}, "users.rest_market.arrival_rate: expected a rate"),
    ({"ccxt": {"arrival_rate": 0}}, "users.ccxt.arrival_rate: must be > 0 and at most 100000/s, got 0/s"),
    ({"ccxt": {"arrival_rate": "200000/s"}}, "users.ccxt.arrival_rate: must be > 0 and at most 100000/s"),
])
def test_bad_arrival_rates_name_the_key(users, message):
    with pytest.raises(ConfigError) as e:
        _profile(users)
    assert message in str(e.value)


def test_the_tolerance_of_dropped_iterations_is_a_fraction():
    with pytest.raises(ConfigError, match=r"tolerate\.dropped_iterations: must be within \[0, 1\], got 2"):
        _profile(tolerate={"dropped_iterations": 2})
