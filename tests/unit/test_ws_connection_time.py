"""``ws_connection`` is time: connected ÷ wanted milliseconds per connection name, accounted by
:class:`ConnectionTime` on an injected clock, shipped as ``ws_time`` counters and merged across
workers; the event ratio lives on as ``ws_connection_events``."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from locust.event import Events

from letrade_perf.criteria.evaluate import judge
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.metrics.recorder import WS_TIME_EVENT, ConnectionTime, MetricsRecorder, MetricsStore, Snapshot
from letrade_perf.users.userdata import UserDataTracker, WsApiClient
from letrade_perf.users.ws import connection_time


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Err(Exception):
    pass


def crit(metric: str, expr: str):
    (c,) = parse_criteria({metric: [expr]}, "t.yaml")
    return c


def accountant(clock: Clock, name: str = "connect"):
    reports: list[tuple[str, int, int]] = []
    return ConnectionTime(name, lambda n, w, c: reports.append((n, w, c)), clock), reports


def test_wanted_runs_from_the_first_connect_to_stop_and_reconnect_gaps_are_down_time():
    clock = Clock(100.0)
    ct, reports = accountant(clock)
    clock.t = 105.0                    # the user started 5 s ago: not wanted yet
    assert ct.totals() == (0.0, 0.0)
    ct.want()                          # first connect attempt
    clock.t = 105.25                   # its handshake took 250 ms: opening, not an outage
    assert ct.totals() == (0.0, 0.0)
    ct.up()
    clock.t = 205.25
    ct.down()                          # the server closed it after 100 s
    clock.t = 205.75
    ct.want()                          # reconnect attempt fails: still down
    ct.down()
    clock.t = 206.25
    ct.want()
    ct.up()                            # back after a 1 s gap
    clock.t = 306.25
    ct.stop()                          # the user stops
    clock.t = 999.0                    # nothing after the stop counts
    assert ct.totals() == pytest.approx((201.0, 200.0))
    assert ct.flush() == (201000, 200000)
    assert reports == [("connect", 201000, 200000)]
    assert ct.flush() == (0, 0) and len(reports) == 1


def test_a_failed_first_attempt_is_down_from_that_attempt():
    clock = Clock(10.0)
    ct, _ = accountant(clock)
    ct.want()
    clock.t = 20.0                     # a 10 s connect timeout
    ct.down()
    clock.t = 20.5
    ct.want()
    clock.t = 20.6
    ct.up()
    clock.t = 30.6
    assert ct.totals() == pytest.approx((20.6, 10.0))
    ct.stop()
    ct.want()                          # an attempt that the stop interrupts is not wanted either
    ct.stop()
    assert ct.totals() == pytest.approx((20.6, 10.0))


def test_flushes_report_deltas_whose_sums_are_the_exact_totals():
    clock = Clock(0.0)
    ct, reports = accountant(clock)
    ct.up()                            # up without a marked attempt starts the wanted time too
    for _ in range(1000):              # 0.4 ms steps: each flush alone would round to 0
        clock.t += 0.0004
        ct.flush()
    ct.down()
    clock.t += 0.0103                  # 10.3 ms down
    ct.flush()
    assert sum(w for _, w, _ in reports) == 410     # floor(0.4103 s)
    assert sum(c for _, _, c in reports) == 400
    assert all(c <= w for _, w, c in reports)


def test_the_recorder_counts_ws_time_and_the_store_merges_workers():
    stores = MetricsStore()
    for worker, (wanted, connected) in enumerate([(30_000, 29_990), (30_000, 30_000)]):
        rec = MetricsRecorder(clock=lambda: 1000.0, samples_dir="")
        rec.on_ws_time(name="connect", wanted_ms=wanted, connected_ms=connected)
        rec.on_ws_time(name="connect ws-api", wanted_ms=10_000, connected_ms=5_000)
        stores.merge(Snapshot.from_wire(rec.drain().to_wire()), source=f"worker-{worker}")
    assert stores.connection_time() == (80_000, 69_990)
    assert stores.connection_time((("name", "connect"),)) == (60_000, 59_990)
    r = judge(crit('ws_connection{name="connect"}', "rate>99.9%"), stores, 30)
    assert (r.verdict, r.samples) == ("pass", 60_000) and r.value == pytest.approx(59_990 / 60_000)
    r = judge(crit("ws_connection", "rate>99.9%"), stores, 30)
    assert r.verdict == "fail" and r.value == pytest.approx(69_990 / 80_000)


def test_three_quick_reconnects_pass_on_time_and_would_fail_as_events():
    """The issue's case: a stream dropped three times, each back within 100 ms, over an hour."""
    clock = Clock(0.0)
    rec = MetricsRecorder(clock=clock, samples_dir="")
    ct = ConnectionTime("connect", lambda n, w, c: rec.on_ws_time(name=n, wanted_ms=w, connected_ms=c), clock)
    ct.want()
    ct.up()
    rec.on_request(request_type="WSCONN", name="connect", response_time=3.0)
    for at in (900.0, 1800.0, 2700.0):
        clock.t = at
        ct.down()
        rec.on_request(request_type="WSCONN", name="disconnect", response_time=at * 1000, exception=Err("x"))
        clock.t = at + 0.1
        ct.want()
        ct.up()
        rec.on_request(request_type="WSCONN", name="connect", response_time=3.0)
        ct.flush()
    clock.t = 3600.0
    ct.stop()
    ct.flush()
    store = MetricsStore()
    store.merge(Snapshot.from_wire(rec.drain().to_wire()))
    time_ratio = judge(crit("ws_connection", "rate>99.9%"), store, 3600)
    assert time_ratio.verdict == "pass" and time_ratio.value == pytest.approx(1 - 0.3 / 3600)
    events = judge(crit("ws_connection_events", "rate>99.9%"), store, 3600)
    assert events.verdict == "fail" and events.value == pytest.approx(4 / 7) and events.samples == 7


def test_no_wanted_time_is_inconclusive():
    store = MetricsStore()
    rec = MetricsRecorder(clock=lambda: 1.0, samples_dir="")
    rec.on_request(request_type="WSCONN", name="connect", response_time=3.0)   # events only
    store.merge(rec.drain())
    r = judge(crit("ws_connection", "rate>99.9%"), store, 10)
    assert (r.verdict, r.value, r.reason) == ("inconclusive", None, "no samples")


def test_listen_adds_the_hook_and_a_users_accountant_reports_on_it():
    events = Events()
    assert getattr(events, WS_TIME_EVENT, None) is None
    rec = MetricsRecorder(clock=lambda: 1.0, samples_dir="")
    rec.listen(events)
    clock = Clock(50.0)
    ct = connection_time(SimpleNamespace(events=events), "connect", clock)
    ct.want()
    clock.t = 50.002
    ct.up()
    clock.t = 51.002
    ct.down()
    clock.t = 52.002
    ct.flush()
    snap = rec.drain()
    assert snap.counters == {("ws_time", (("name", "connect"), ("state", "wanted"))): 2000,
                             ("ws_time", (("name", "connect"), ("state", "connected"))): 1000}


def test_a_pipeline_users_ws_api_clients_share_one_connection_time():
    """The pipeline makes a new client per reconnect; the gap between them is down time."""
    env = SimpleNamespace(events=Events())
    tracker = UserDataTracker()
    a = WsApiClient(None, env, "ws://127.0.0.1:1/ws-api/v3", tracker)
    b = WsApiClient(None, env, "ws://127.0.0.1:1/ws-api/v3", tracker)
    assert a.uptime is b.uptime is tracker.connection_time and a.uptime.name == "connect ws-api"
    assert WsApiClient(None, env, "ws://x", None).uptime is not a.uptime
