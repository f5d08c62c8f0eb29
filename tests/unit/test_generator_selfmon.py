"""The load generator watches itself: loop lag, CPU %, RSS with injected readers; the timeline of
summary["generator"]; saturation making latency criteria inconclusive (never pass, never fail)."""
from __future__ import annotations

import pytest
import yaml

from letrade_perf.config.profile import profile_from_mapping
from letrade_perf.core.errors import ConfigError
from letrade_perf.criteria.evaluate import INCONCLUSIVE, is_latency
from letrade_perf.criteria.gate import Gate
from letrade_perf.criteria.grammar import parse_criteria
from letrade_perf.harness.selfmon import SelfMonitor, p99, process_name
from letrade_perf.metrics.generator import CPU, LOOP_LAG, RSS, SATURATED_MS, GeneratorTimeline
from letrade_perf.metrics.recorder import MetricsRecorder, Snapshot
from letrade_perf.reports.markdown import render_markdown
from letrade_perf.reports.schema import validate_summary


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_loop_lag_is_how_late_the_greenlet_wakes_and_cpu_is_cpu_time_over_wall():
    clock, cpu = Clock(), Clock(50.0)
    samples: list[tuple[str, tuple, float]] = []
    late = [0.0, 0.0, 0.030]          # the third sleep returns 30 ms late

    def sleep(s: float) -> None:
        clock.t += s + late.pop(0)
        cpu.t += 0.6 * s              # the process burns 60 % of a core meanwhile

    counted: list[tuple[str, tuple, int]] = []
    mon = SelfMonitor(lambda m, t, v: samples.append((m, t, v)), lambda m, t, n: counted.append((m, t, n)),
                      lambda: "local", period_s=0.5, tick_s=1.0, clock=clock, cpu=cpu, rss=lambda: 123.5, sleep=sleep)
    for _ in range(3):
        mon.step()
    lags = [v for m, _t, v in samples if m == LOOP_LAG]
    assert lags == [0.0, 0.0, pytest.approx(30.0)]
    (cpu_pct,) = [v for m, _t, v in samples if m == CPU]      # one tick: after 1.0 s
    assert cpu_pct == pytest.approx(60.0)
    assert [v for m, _t, v in samples if m == RSS] == [123.5]
    assert {t for _m, t, _v in samples} == {(("process", "local"),)}
    # a clock that stood still records nothing; a negative lag (early wake) is 0
    assert counted == []                                       # 60 % and no lag: not saturated
    percent, mb, saturated = mon.tick(clock.t)                 # 0.3 CPU s over the 0.53 s since
    assert percent == pytest.approx(0.3 / 0.53 * 100) and mb == 123.5
    assert saturated and counted == [(SATURATED_MS, (("process", "local"),), 530)]   # its lag p99 was 30 ms
    assert mon.tick(clock.t) is None and mon.woke(10.0, 9.9) == 0.0


def test_a_second_is_saturated_by_cpu_or_by_its_loop_lag_p99():
    clock, cpu = Clock(), Clock()
    counted = []
    mon = SelfMonitor(lambda m, t, v: None, lambda m, t, n: counted.append(n), lambda: "local",
                      cpu_percent=90, loop_lag_p99_ms=10, clock=clock, cpu=cpu, rss=lambda: 1.0)
    clock.t += 1.0
    cpu.t += 0.95
    assert mon.tick(clock.t)[2] and counted == [1000]          # 95 % of a core
    for _ in range(99):
        mon.woke(0.0, 0.001)
    mon.woke(0.0, 0.2)                                         # one 200 ms pause in 100 wake-ups
    clock.t += 1.0
    assert not mon.tick(clock.t)[2]                            # p99 ≈ 3 ms: a lone pause is no saturation
    for _ in range(10):
        mon.woke(0.0, 0.015)
    clock.t += 1.0
    cpu.t += 0.3
    assert not mon.tick(clock.t)[2]                            # lag at 30 % CPU: a blocking call, not load
    for _ in range(10):
        mon.woke(0.0, 0.015)
    clock.t += 1.0
    cpu.t += 0.6
    assert mon.tick(clock.t)[2] and counted == [1000, 1000]     # lag at 60 % CPU: saturated
    assert p99([]) is None and p99([5.0]) == 5.0 and p99([float(i) for i in range(101)]) == pytest.approx(99.0)


def test_process_tag_waits_for_the_workers_index():
    class Runner:
        worker_index = -1
    r = Runner()
    assert process_name("local") == "local" and process_name("master", r) == "master"
    assert process_name("worker", r).startswith("worker-pid")
    seen = []
    mon = SelfMonitor(lambda m, t, v: seen.append(t), lambda m, t, n: None, lambda: process_name("worker", r),
                      clock=Clock(),
                      cpu=Clock(), rss=lambda: 1.0, sleep=lambda s: None)
    mon.woke(0.0, 0.0)
    r.worker_index = 2
    mon.woke(0.0, 0.0)
    mon.woke(0.0, 0.0)
    assert seen[0][0][1].startswith("worker-pid") and seen[1:] == [(("process", "worker-2"),)] * 2


def _snap(start: float, end: float, process: str, cpu: float, lag_ms: float, rss: float = 100.0,
          saturated_s: float = 0.0) -> Snapshot:
    rec = MetricsRecorder(clock=Clock(start), samples_dir="")
    tags = (("process", process),)
    rec.count(SATURATED_MS, tags, int(saturated_s * 1000))
    for _ in range(int(end - start)):
        rec.record(CPU, tags, cpu)
        rec.record(RSS, tags, rss)
    for _ in range(20):
        rec.record(LOOP_LAG, tags, lag_ms)
    snap = rec.drain()
    snap.start, snap.end = start, end
    return Snapshot.from_wire(snap.to_wire())      # as a worker's report arrives


def test_saturation_is_an_interval_at_the_cpu_or_lag_threshold_for_more_than_the_fraction():
    tl = GeneratorTimeline(cpu_percent=90, loop_lag_p99_ms=10, max_saturated_fraction=0.10, min_saturated_s=3)
    tl.add(_snap(0, 3, "worker-0", 95.0, 1.0, saturated_s=3), since=10.0)    # before the test: left out
    tl.add(_snap(9, 12, "worker-0", 95.0, 1.0, saturated_s=3), since=10.0)   # 2 s of it in the test
    tl.add(_snap(12, 15, "worker-0", 30.0, 2.0), since=10.0)
    tl.add(_snap(12, 15, "worker-1", 30.0, 25.0, saturated_s=3), since=10.0)
    assert tl.saturated_s() == {"worker-0": 2.0, "worker-1": 3.0}
    sat = tl.saturation(40.0)                                   # 3 s of 40 s = 7.5 %: not saturated
    assert not sat.saturated and sat.process == "worker-1" and sat.fraction == pytest.approx(0.075)
    sat = tl.saturation(20.0)                                   # 3 of 20 s = 15 %
    assert sat.saturated and sat.cpu_percent_max == pytest.approx(95.0, rel=0.01)
    assert sat.loop_lag_p99_ms_max == pytest.approx(25.0, rel=0.01)
    msg = sat.message()
    assert "saturated for 3 s of the run's 20 s" in msg and "add workers (--workers) or lower users" in msg
    assert tl.saturation(6.0).saturated                         # 50 % and 3 s: saturated
    strict = GeneratorTimeline(min_saturated_s=4)
    strict.add(_snap(0, 3, "local", 99.0, 50.0, saturated_s=3), since=0.0)
    assert not strict.saturation(5.0).saturated                # 60 % but 3 s < 4 s: a short burst
    summary = tl.to_summary(10.0)
    w0 = summary["worker-0"]
    assert w0["t_s"] == [0.0, 2.0] and w0["saturated"] == [True, False]
    assert w0["cpu_percent"] == [pytest.approx(95.0, rel=0.01), pytest.approx(30.0, rel=0.01)]
    assert w0["saturated_s"] == 2.0 and w0["rss_mb_start"] == pytest.approx(100.0, rel=0.01)


def test_the_timeline_stays_bounded_and_keeps_the_saturated_seconds():
    tl = GeneratorTimeline(max_points=120)
    for i in range(1000):                                        # a long run: 1000 worker reports
        hot = i % 10 == 0
        tl.add(_snap(3 * i, 3 * i + 3, "worker-0", 95.0 if hot else 20.0, 1.0, rss=100.0 + i,
                     saturated_s=3.0 if hot else 0.0), since=0.0)
    w0 = tl.to_summary(0.0)["worker-0"]
    assert len(w0["t_s"]) <= 120 and len(w0["t_s"]) == len(w0["cpu_percent"]) == len(w0["saturated"])
    assert w0["saturated_s"] == pytest.approx(300.0)             # 100 saturated 3 s reports, merged or not
    assert w0["t_s"] == sorted(w0["t_s"]) and w0["rss_mb_end"] == pytest.approx(1099.0, rel=0.01)
    # the oldest points hold many reports: their CPU is the average, saturated if some of it was
    assert w0["cpu_percent"][0] < 95.0 and w0["saturated"][0] and w0["t_s"][1] - w0["t_s"][0] > 3.0


def _profile(extra: dict):
    data = yaml.safe_load("""
description: unit
env: sim
symbols: [BTCUSDT]
stages: [{duration: 10s, users: 2, spawn_rate: 2}]
users:
  rest_market: {weight: 1}
""")
    data.update(extra)
    return profile_from_mapping(data, "unit.yaml", "unit")


def _run(gate: Gate, clock: Clock, cpu: float, lag: float) -> None:
    gate.start()
    rec = MetricsRecorder(clock=clock, samples_dir="")
    for _ in range(20):
        rec.on_request(request_type="GET", name="GET /api/v3/depth", response_time=150.0)
    tags = (("process", "local"),)
    for _ in range(10):
        rec.record(CPU, tags, cpu)
        rec.record(RSS, tags, 80.0)
    for _ in range(50):
        rec.record(LOOP_LAG, tags, lag)
    if cpu >= 90 or lag >= 10:                   # what the process's monitor counts each second
        rec.count(SATURATED_MS, tags, 10_000)
    clock.t += 10
    gate.merge(rec.drain())
    gate.ended_at = clock.t
    gate.evaluate()


def test_a_saturated_generator_makes_latency_criteria_inconclusive_with_what_to_do():
    clock = Clock(5_000.0)
    prof = _profile({"criteria": {"request": ["avg<100", "count>5"], "api_success": ["rate>99%"],
                                  "generator_loop_lag": ["p(99)<10"], "generator_cpu": ["max<95"]},
                     "gate": {"defaults": False, "allow_inconclusive": True}})
    gate = Gate(prof, clock=clock)
    _run(gate, clock, cpu=99.0, lag=40.0)
    by = {r.criterion.label: r for r in gate.results}
    lat = by["request avg<100"]
    assert lat.verdict == INCONCLUSIVE and lat.generator_saturated and lat.value == 150.0
    assert "the load generator was saturated for 10 s" in lat.reason and "add workers (--workers)" in lat.reason
    assert lat.gate == "fail"                    # allow_inconclusive does not let it pass
    # counts, rates and the generator's own metrics are judged as measured
    assert by["request count>5"].verdict == "pass" and by["api_success rate>99%"].verdict == "pass"
    assert by["generator_loop_lag p(99)<10"].verdict == "fail" and by["generator_cpu max<95"].verdict == "fail"
    assert gate.generator_saturated() and gate.verdict == "fail"
    assert gate.snapshot()["generator_saturation"]["saturated"]
    s = gate.summary(run_id="r", env="sim", host=None, workers=0, exit_code=4, aborted=None)
    validate_summary(s)
    assert s["generator"]["local"]["saturated"] == [True]
    assert s["generator_saturation"]["saturated"] and s["generator_saturation"]["saturated_s"] == 10.0
    assert "endpoints" in s and {e["type"] for e in s["endpoints"]} == {"GET"}    # no generator rows
    md = render_markdown(s)
    assert "#### Load generator" in md and "**Saturated**" in md and "add workers" in md


def test_a_generator_within_its_thresholds_changes_no_verdict():
    clock = Clock(5_000.0)
    prof = _profile({"criteria": {"request": ["avg<100"]}, "gate": {"defaults": False}})
    gate = Gate(prof, clock=clock)
    _run(gate, clock, cpu=40.0, lag=1.0)
    (r,) = gate.results
    assert r.verdict == "fail" and not r.generator_saturated and "does not satisfy" in r.reason
    s = gate.summary(run_id="r", env="sim", host=None, workers=0, exit_code=99, aborted=None)
    validate_summary(s)
    assert not s["generator_saturation"]["saturated"] and "Not saturated" in render_markdown(s)
    # self-monitoring off: no saturation verdict effect even with saturated samples
    off = Gate(_profile({"criteria": {"request": ["avg<200"]}, "gate": {"defaults": False},
                         "generator": {"enabled": False}}), clock=clock)
    _run(off, clock, cpu=99.0, lag=40.0)
    assert off.results[0].verdict == "pass"


def test_which_criteria_a_saturated_generator_distorts():
    def c(sel: str, expr: str):
        return parse_criteria({sel: [expr]}, "t.yaml")[0]
    assert is_latency(c("request", "p(95)<100")) and is_latency(c("ws_lag", "avg<50"))
    assert is_latency(c("pipeline", "max<500")) and is_latency(c("user", "avg<5"))
    assert not is_latency(c("request", "count>1")) and not is_latency(c("api_success", "rate>99%"))
    assert not is_latency(c("generator_loop_lag", "p(99)<10")) and not is_latency(c("slippage", "avg<10"))


@pytest.mark.parametrize("bad", [{"cpu_percent": 0}, {"loop_lag_p99_ms": -1}, {"max_saturated_fraction": 1.5},
                                 {"threshold": 3}])
def test_generator_settings_are_validated(bad):
    with pytest.raises(ConfigError):
        _profile({"generator": bad})
