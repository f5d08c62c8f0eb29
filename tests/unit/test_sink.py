"""The InfluxDB sink without a server: a fake writer, an injected clock and an injected retry wait.

Interval aggregation across snapshots, the shape of every measurement (our line protocol parsed
back), the bounded buffer (oldest dropped and counted), retry backoff delays, the invariant
``written + dropped + buffered == produced``, close() flushing, configuration precedence and
errors, and the token kept out of stats, errors and log records.
"""
from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from letrade_perf.config.profile import SinkSettings, profile_from_mapping
from letrade_perf.core.errors import ConfigError
from letrade_perf.core.secrets import mask
from letrade_perf.metrics.histogram import Histogram
from letrade_perf.metrics.recorder import MetricsRecorder
from letrade_perf.metrics.sink import (
    InfluxSink,
    InfluxWriter,
    ProcessGauges,
    SinkConfig,
    SinkWriteError,
    format_line,
    resolve_sink_config,
)

BASE = {"run_id": "20261124T000000Z-t", "profile": "t", "env": "sim", "worker": "local"}
RUN_TAGS = {"run_id", "profile", "env"}
PROC_TAGS = RUN_TAGS | {"worker"}
STATS_FIELDS = {"count", "sum", "mean", "min", "max", "p50", "p90", "p95", "p99", "hist"}


# ------------------------------------------------------------------------ helpers
def _split(text: str, sep: str, quotes: bool = False) -> list[str]:
    """Split on unescaped ``sep`` (outside double quotes when ``quotes``), keeping escapes."""
    out, cur, i, inq = [], [], 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if quotes and ch == '"':
            inq = not inq
        if ch == sep and not inq:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_line(line: str) -> tuple[str, dict, dict, int]:
    """``(measurement, tags, fields, ts_ms)`` of one line of InfluxDB line protocol."""
    key, fields_part, ts = _split(line, " ", quotes=True)
    meas, *tag_parts = _split(key, ",")
    tags = {}
    for part in tag_parts:
        k, v = _split(part, "=")
        tags[_unescape(k)] = _unescape(v)
    fields = {}
    for part in _split(fields_part, ",", quotes=True):
        k, v = part.split("=", 1)
        if v.startswith('"'):
            fields[k] = _unescape(v[1:-1])
        elif v.endswith("i"):
            fields[k] = int(v[:-1])
        else:
            fields[k] = float(v)
    return _unescape(meas), tags, fields, int(ts)


class Clock:
    def __init__(self, t: float = 1_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeWriter:
    """Records batches; ``fail`` = how many calls raise first (or a callable deciding per call)."""

    def __init__(self, fail=0, exc: Exception | None = None):
        self.batches: list[list[str]] = []
        self.calls = 0
        self.fail = fail
        self.exc = exc or ConnectionRefusedError("[Errno 111] Connection refused")
        self.lock = threading.Lock()

    def __call__(self, lines):
        with self.lock:
            self.calls += 1
            failing = self.fail(self.calls) if callable(self.fail) else self.calls <= self.fail
        if failing:
            raise self.exc
        with self.lock:
            self.batches.append(list(lines))

    @property
    def lines(self) -> list[str]:
        return [line for b in self.batches for line in b]

    def points(self):
        return [parse_line(line) for line in self.lines]


def config(**kw) -> SinkConfig:
    kw.setdefault("url", "http://127.0.0.1:9")
    kw.setdefault("flush_every_s", 0.01)
    return SinkConfig(**kw)


def invariant(stats: dict) -> None:
    assert stats["written"] + stats["dropped"] + stats["buffered"] == stats["produced"], stats


def request(rec: MetricsRecorder, name: str, ms: float, rtype: str = "GET", fail: bool = False) -> None:
    rec.on_request(request_type=rtype, name=name, response_time=ms, exception=RuntimeError("x") if fail else None)


PACER = SimpleNamespace(weight_used=120, weight_budget=4800, orders_used=3, orders_budget=80, waits=2,
                        wait_s_total=0.75, r429=0, r418=0, share=1.0)


# ------------------------------------------------------------------------ interval aggregation
def test_snapshots_within_an_interval_merge_into_one_point_per_series():
    clock = Clock()
    w = FakeWriter()
    sink = InfluxSink(config(interval_s=5.0), BASE, writer=w, clock=clock)
    rec = MetricsRecorder(clock=clock)
    want: dict[tuple, Histogram] = {}
    rnd = random.Random(3)
    for step in range(5):                       # a worker drains every 3 s: 1003, 1006, … 1015
        for _ in range(40):
            name = rnd.choice(["GET /api/v3/depth", "GET /api/v3/klines"])
            ms = rnd.uniform(1, 80)
            request(rec, name, ms)
            want.setdefault((name, step), Histogram()).record(ms)
        rec.on_ws_lag(stream="btcusdt@trade", lag_ms=rnd.uniform(0.5, 9), uncertainty_ms=0.2 + step / 10)
        clock.t += 3
        sink.add_snapshot(rec.drain())
    stats = sink.close(5)
    invariant(stats)
    assert stats["dropped"] == 0 and stats["buffered"] == 0
    points = w.points()
    req = [p for p in points if p[0] == "request"]
    # 1000→1006 and 1006→1012 close by span (≥ 4.5 s of 5 s), 1012→1015 at close
    assert sorted({p[3] for p in req}) == [1_006_000, 1_012_000, 1_015_000]
    per_key = {}
    for _m, tags, fields, ts in req:
        key = (tags["name"], ts)
        assert key not in per_key, f"two points for {key}"
        per_key[key] = fields
    for name in ("GET /api/v3/depth", "GET /api/v3/klines"):
        merged = [Histogram() for _ in range(3)]
        for (n, step), h in want.items():
            if n == name:
                merged[min(step // 2, 2)].merge(h)
        for i, ts in enumerate((1_006_000, 1_012_000, 1_015_000)):
            f = per_key[(name, ts)]
            assert f["count"] == merged[i].count
            assert f["sum"] == pytest.approx(merged[i].sum)
            assert f["p99"] == pytest.approx(merged[i].percentile(99))
            back = Histogram.from_dict(json.loads(f["hist"]))
            assert back.count == merged[i].count and back.pos == merged[i].pos
    lag = [p for p in points if p[0] == "ws_lag"]
    assert [p[2]["count"] for p in lag] == [2, 2, 1]
    assert [p[2]["uncertainty_ms"] for p in lag] == pytest.approx([0.3, 0.5, 0.6])


def test_every_measurement_has_the_schema_shape():
    clock = Clock()
    w = FakeWriter()
    pacer = SimpleNamespace(**vars(PACER))
    gauges = ProcessGauges("local", lambda: 7, lambda: pacer)
    sink = InfluxSink(config(interval_s=5.0), BASE, writer=w, clock=clock, interval_points=gauges)
    rec = MetricsRecorder(clock=clock)
    for ms in (10.0, 20.0, 30.0):
        request(rec, "GET /api/v3/depth", ms)
    request(rec, "GET /api/v3/depth", 500.0, fail=True)
    request(rec, "fetch_order_book", 40.0, rtype="ccxt")
    rec.on_request(request_type="pipeline", name="BTCUSDT rest", response_time=33.0, exception=None)
    rec.on_request(request_type="WSCONN", name="connect", response_time=3.0, exception=None)
    rec.on_request(request_type="WS", name="btcusdt@trade", response_time=1.0, exception=None)   # skipped
    rec.on_ws_lag(stream="btcusdt@trade", lag_ms=4.0, uncertainty_ms=0.25)
    rec.on_slippage(symbol="BTCUSDT", side="BUY", bps=1.5)                                       # no measurement
    sink.add_run_start("t on sim", {"version": "0.1.0", "git_commit": "abc"}, ts=1_000.0)
    clock.t += 5
    sink.add_snapshot(rec.drain())
    pacer.wait_s_total = 2.0
    pacer.waits = 5
    clock.t += 5
    sink.add_snapshot(rec.drain())
    summary = {"verdict": "fail", "run": {"exit_code": 1, "duration_s": 10.0},
               "criteria": [{"label": "request avg<200", "metric": "request", "verdict": "pass", "gate": "pass",
                             "value": 120.5, "threshold": 200, "samples": 6},
                            {"label": 'request{name="GET /api/v3/depth"} p(99)<1', "metric": "request",
                             "verdict": "fail", "gate": "fail", "value": 499.9, "threshold": 1.0, "samples": 4},
                            {"label": "ws_lag avg<50", "metric": "ws_lag", "verdict": "inconclusive",
                             "gate": "fail", "value": None, "threshold": 50, "samples": 0}]}
    sink.add_run_end(summary, "t on sim", {"version": "0.1.0"}, ts=clock.t)
    invariant(sink.close(5))
    by = {}
    for m, tags, fields, ts in w.points():
        by.setdefault(m, []).append((tags, fields, ts))
    assert set(by) == {"request", "ws_lag", "pacing", "users", "sink", "criteria", "run"}

    reqs = {(t["request_type"], t["name"], t["status"]): f for t, f, _ in by["request"]}
    assert set(reqs) == {("GET", "GET /api/v3/depth", "ok"), ("GET", "GET /api/v3/depth", "fail"),
                         ("ccxt", "fetch_order_book", "ok"), ("pipeline", "BTCUSDT rest", "ok"),
                         ("ws_connection", "connect", "ok")}
    for tags, fields, _ in by["request"]:
        assert set(tags) == PROC_TAGS | {"request_type", "name", "status"}
        assert set(fields) == STATS_FIELDS | {"failures"}
        assert isinstance(fields["count"], int) and isinstance(fields["failures"], int)
        assert all(isinstance(fields[k], float) for k in ("sum", "mean", "min", "max", "p50", "p90", "p95", "p99"))
        assert isinstance(fields["hist"], str)
    ok = reqs[("GET", "GET /api/v3/depth", "ok")]
    assert (ok["count"], ok["failures"], ok["sum"], ok["mean"], ok["min"], ok["max"]) == (3, 0, 60.0, 20.0, 10.0, 30.0)
    fail = reqs[("GET", "GET /api/v3/depth", "fail")]
    assert (fail["count"], fail["failures"]) == (1, 1)

    [(tags, fields, _)] = by["ws_lag"]
    assert set(tags) == PROC_TAGS | {"stream"} and tags["stream"] == "btcusdt@trade"
    assert set(fields) == STATS_FIELDS | {"uncertainty_ms"} and fields["uncertainty_ms"] == 0.25

    assert len(by["users"]) == 2 and len(by["pacing"]) == 2 and len(by["sink"]) == 2
    users = by["users"][0][1]
    assert users == {"count": 7, "rps": pytest.approx(7 / 5.0), "fail_rps": pytest.approx(1 / 5.0)}
    assert isinstance(users["count"], int) and isinstance(users["rps"], float)
    p1, p2 = by["pacing"][0][1], by["pacing"][1][1]
    assert set(p1) == {"weight_used", "weight_budget", "orders_used", "orders_budget", "wait_s", "waits", "r429",
                       "r418", "share"}
    assert all(isinstance(p1[k], int) for k in ("weight_used", "weight_budget", "orders_used", "orders_budget",
                                                 "waits", "r429", "r418"))
    assert p1["wait_s"] == 0.75 and p2["wait_s"] == pytest.approx(1.25) and p2["waits"] == 5   # delta vs cumulative
    assert set(by["pacing"][0][0]) == PROC_TAGS
    s1 = by["sink"][0][1]
    assert set(s1) == {"written", "dropped", "retries", "buffered"} and all(isinstance(v, int) for v in s1.values())

    crit = {t["criterion"]: (t, f, ts) for t, f, ts in by["criteria"]}
    assert len(crit) == 3
    t, f, ts = crit["request avg<200"]
    assert set(t) == RUN_TAGS | {"criterion", "metric", "verdict"}           # run-level: no worker tag
    assert f == {"value": 120.5, "threshold": 200.0, "passed": 1, "samples": 6}
    assert crit['request{name="GET /api/v3/depth"} p(99)<1'][1]["passed"] == 0
    t, f, _ = crit["ws_lag avg<50"]
    assert "value" not in f and t["verdict"] == "inconclusive" and f["passed"] == 0

    runs = {t["event"]: (t, f, ts) for t, f, ts in by["run"]}
    t, f, ts = runs["start"]
    assert set(t) == RUN_TAGS | {"event"} and ts == 1_000_000
    assert f == {"version": "0.1.0", "git_commit": "abc", "text": "t on sim: started"}
    t, f, ts = runs["stop"]
    assert f == {"version": "0.1.0", "text": "t on sim: FAIL", "verdict": "fail", "exit_code": 1, "duration_s": 10.0}
    assert ts == 1_010_001


def test_name_and_stream_values_are_capped_into_other():
    clock = Clock()
    w = FakeWriter()
    sink = InfluxSink(config(max_tag_values=3), BASE, writer=w, clock=clock)
    rec = MetricsRecorder(clock=clock)
    for i in range(5):
        for _ in range(i + 1):
            request(rec, f"GET /n{i}", 5.0)
        rec.on_ws_lag(stream=f"s{i}@trade", lag_ms=1.0)
    clock.t += 5
    sink.add_snapshot(rec.drain())
    invariant(sink.close(5))
    counts = {t["name"]: f["count"] for m, t, f, _ in w.points() if m == "request"}
    assert counts == {"GET /n0": 1, "GET /n1": 2, "GET /n2": 3, "(other)": 4 + 5}
    streams = {t["stream"]: f["count"] for m, t, f, _ in w.points() if m == "ws_lag"}
    assert streams == {"s0@trade": 1, "s1@trade": 1, "s2@trade": 1, "(other)": 2}


def test_raw_points_one_per_sample_never_sharing_a_timestamp():
    clock = Clock(2_000.0)
    w = FakeWriter()
    sink = InfluxSink(config(mode="raw"), BASE, writer=w, clock=clock)
    for v in (1.5, 2.5, 3.5):
        sink.add_raw_request("GET", "GET /api/v3/depth", True, v)
    sink.add_raw_request("GET", "GET /api/v3/depth", False, 9.0)
    sink.add_raw_ws_lag("btcusdt@trade", 4.25, 0.3)
    sink.add_raw_ws_lag("btcusdt@trade", 5.0)
    invariant(sink.close(5))
    pts = w.points()
    ok = [p for p in pts if p[0] == "request_raw" and p[1]["status"] == "ok"]
    assert [p[3] for p in ok] == [2_000_000, 2_000_001, 2_000_002]     # same ms: moved on, not overwritten
    assert [p[2] for p in ok] == [{"value": 1.5, "ok": 1}, {"value": 2.5, "ok": 1}, {"value": 3.5, "ok": 1}]
    assert set(ok[0][1]) == PROC_TAGS | {"request_type", "name", "status"}
    [bad] = [p for p in pts if p[0] == "request_raw" and p[1]["status"] == "fail"]
    assert bad[2] == {"value": 9.0, "ok": 0} and bad[3] == 2_000_000   # another series: its own timestamps
    lags = [p for p in pts if p[0] == "ws_lag_raw"]
    assert [p[2] for p in lags] == [{"value": 4.25, "uncertainty_ms": 0.3}, {"value": 5.0}]
    assert set(lags[0][1]) == PROC_TAGS | {"stream"}


def test_line_protocol_escapes_tags_and_strings():
    line = format_line("criteria", {"criterion": 'request{name="GET /a,b"} p(99)<300', "x": ""},
                       {"text": 'say "hi"\\', "n": 1, "v": 2.5, "nan": float("nan"), "none": None}, 5)
    m, tags, fields, ts = parse_line(line)
    assert tags == {"criterion": 'request{name="GET /a,b"} p(99)<300', "x": "(empty)"}
    assert fields == {"text": 'say "hi"\\', "n": 1, "v": 2.5} and ts == 5
    assert format_line("m", {}, {"a": None, "b": float("inf")}, 1) is None


# ------------------------------------------------------------------------ buffer, retries, close
def test_full_buffer_drops_the_oldest_points_and_counts_them():
    w = FakeWriter()
    sink = InfluxSink(config(batch_size=10, max_buffer_points=100), BASE, writer=w, start=False)
    sink.add_points([f"m v={i}i {i}" for i in range(250)])
    st = sink.own_stats()
    assert (st["produced"], st["dropped"], st["buffered"], st["written"]) == (250, 150, 100, 0)
    st = sink.close(5)                     # never started: close flushes synchronously
    invariant(st)
    assert (st["written"], st["dropped"], st["buffered"]) == (100, 150, 0)
    assert w.lines[0] == "m v=150i 150" and w.lines[-1] == "m v=249i 249"
    assert all(len(b) <= 10 for b in w.batches)


def test_points_evicted_while_their_batch_is_in_flight_are_not_counted_twice():
    sink = None

    def writer(lines):
        # while this batch is "on the wire", 25 new points push 25 of its points out of the buffer
        if writer.calls == 0:
            sink.add_points([f"late v={i}i {i}" for i in range(25)])
        writer.calls += 1
        writer.sent.extend(lines)
    writer.calls, writer.sent = 0, []
    sink = InfluxSink(config(batch_size=40, max_buffer_points=50), BASE, writer=writer, start=False)
    sink.add_points([f"m v={i}i {i}" for i in range(50)])
    st = sink.close(5)
    invariant(st)
    assert st["produced"] == 75 and st["buffered"] == 0
    assert st["dropped"] == 25                       # counted once, at eviction
    assert st["written"] == 50 and len(writer.sent) == 40 + 35


def test_failed_writes_retry_with_exponential_backoff_then_recover(caplog):
    waits: list[float] = []
    w = FakeWriter(fail=7)
    sink = InfluxSink(config(batch_size=5), BASE, writer=w, wait=waits.append)
    with caplog.at_level(logging.DEBUG, logger="letrade_perf.metrics.sink"):
        sink.add_points([f"m v={i}i {i}" for i in range(12)])
        deadline = time.monotonic() + 5
        while sink.own_stats()["written"] < 12 and time.monotonic() < deadline:
            time.sleep(0.01)
        st = sink.close(5)
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]      # doubling from 0.5 s, capped at 8 s
    assert st["retries"] == 7 and st["written"] == 12 and st["dropped"] == 0
    invariant(st)
    assert "Connection refused" in st["last_error"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]      # one per outage, not per attempt
    assert warnings[0].getMessage() == ("InfluxDB sink at http://127.0.0.1:9: [Errno 111] Connection refused; "
                                        "points are buffered and retried, dropped points are counted")
    assert any("writing again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_a_rejected_batch_is_dropped_and_counted_not_retried():
    w = FakeWriter(fail=1, exc=SinkWriteError("HTTP 400 Bad Request: unable to parse", status=400, permanent=True))
    sink = InfluxSink(config(batch_size=10), BASE, writer=w, start=False)
    sink.add_points([f"m v={i}i {i}" for i in range(15)])
    st = sink.close(5)
    invariant(st)
    assert (st["dropped"], st["written"], st["failed_batches"], st["retries"]) == (10, 5, 1, 0)
    assert st["last_error"].startswith("HTTP 400")


def test_invariant_holds_under_concurrent_producers_and_flaky_writes():
    rnd = random.Random(11)
    lock = threading.Lock()

    def flaky(_call):
        with lock:
            return rnd.random() < 0.3
    w = FakeWriter(fail=flaky)
    sink = InfluxSink(config(batch_size=50, max_buffer_points=400, flush_every_s=0.001), BASE, writer=w,
                      wait=lambda s: time.sleep(0.0005))
    stop = threading.Event()
    checks = []

    def produce(k):
        for i in range(3000):
            sink.add_points([f"m,p={k} v={i}i {i}"])
            if i % 100 == 0:
                time.sleep(0.001)

    def check():
        while not stop.is_set():
            checks.append(sink.own_stats())
            time.sleep(0.002)
    threads = [threading.Thread(target=produce, args=(k,)) for k in range(3)] + [threading.Thread(target=check)]
    for t in threads:
        t.start()
    for t in threads[:3]:
        t.join()
    stop.set()
    threads[3].join()
    st = sink.close(10)
    assert st["produced"] == 9000 and st["buffered"] == 0
    invariant(st)
    for c in checks:
        invariant(c)
        assert c["buffered"] <= 400
    assert st["written"] == len(w.lines)            # every point counted written was sent exactly once
    assert st["retries"] > 0


def test_close_flushes_everything_it_can():
    w = FakeWriter()
    sink = InfluxSink(config(batch_size=1000, flush_every_s=60.0), BASE, writer=w)   # nothing sent by itself
    sink.add_points([f"m v={i}i {i}" for i in range(30)])
    st = sink.close(5)
    assert (st["written"], st["dropped"], st["buffered"]) == (30, 0, 0) and len(w.lines) == 30
    sink.add_points(["m v=1i 1"])                   # after close: counted, never silently lost
    st = sink.stats()
    assert (st["produced"], st["dropped"]) == (31, 1)
    invariant(st)


def test_close_gives_up_at_its_timeout_and_counts_the_rest_as_dropped():
    release = threading.Event()
    calls = []

    def hanging(lines):
        calls.append(len(lines))
        release.wait(10)                             # InfluxDB accepted the connection and froze

    sink = InfluxSink(config(batch_size=10), BASE, writer=hanging)
    sink.add_points([f"m v={i}i {i}" for i in range(25)])
    t0 = time.monotonic()
    st = sink.close(0.3)
    assert time.monotonic() - t0 < 2.0
    assert (st["written"], st["dropped"], st["buffered"]) == (0, 25, 0)
    invariant(st)
    release.set()                                    # the stuck write completes afterwards…
    time.sleep(0.1)
    assert sink.stats()["written"] == 0              # …without being counted twice
    invariant(sink.stats())


def test_close_on_a_dead_sink_does_not_wait_for_the_whole_timeout():
    w = FakeWriter(fail=10**9)
    sink = InfluxSink(config(batch_size=10), BASE, writer=w, wait=lambda s: time.sleep(0.001))
    sink.add_points([f"m v={i}i {i}" for i in range(25)])
    deadline = time.monotonic() + 5
    while sink.own_stats()["retries"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    st = sink.close(10)
    assert time.monotonic() - t0 < 2.0
    assert st["written"] == 0 and st["dropped"] == st["produced"] and st["failed_batches"] >= 1
    invariant(st)


def test_unreachable_influxdb_through_the_real_client_warns_once(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                    # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}"
    cfg = config(url=url, token="x", batch_size=10, backoff_initial_s=0.01, backoff_max_s=0.02, timeout_s=2.0)
    with caplog.at_level(logging.INFO, logger="letrade_perf.metrics.sink"):
        sink = InfluxSink(cfg, BASE)
        sink.add_points([f"m v={i}i {i}" for i in range(20)])
        deadline = time.monotonic() + 10
        while sink.own_stats()["retries"] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        st = sink.close(2)
    assert st["retries"] >= 4 and st["written"] == 0 and st["dropped"] == 20
    invariant(st)
    assert st["last_error"].startswith("cannot connect") and "refused" in st["last_error"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"InfluxDB sink at {url}: {st['last_error']}; points are buffered and retried, "
                        "dropped points are counted"]


def test_influx_writer_translates_connection_errors():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SinkWriteError, match="cannot connect"):
        InfluxWriter(config(url=f"http://127.0.0.1:{port}"))(["m v=1i 1"])


# ------------------------------------------------------------------------ master and tick
def test_master_ticks_gauges_and_totals_the_workers_stats():
    clock = Clock()
    w = FakeWriter()
    gauges = ProcessGauges("master", lambda: 10)
    gauges.worker_rps = {"worker-0": (30.0, 0.5), "worker-1": (20.0, 0.0)}
    sink = InfluxSink(config(interval_s=5.0), {**BASE, "worker": "master"}, writer=w, clock=clock,
                      interval_points=gauges)
    sink.tick()                                      # not yet an interval
    clock.t += 5
    sink.tick()
    sink.add_remote_stats("worker-0", {"produced": 10, "written": 8, "dropped": 2, "retries": 3,
                                       "failed_batches": 1, "buffered": 0, "last_error": "boom"})
    sink.add_remote_stats("worker-1", {"produced": 5, "written": 5, "dropped": 0, "retries": 0,
                                       "failed_batches": 0, "buffered": 0, "last_error": None})
    st = sink.close(5)
    pts = w.points()
    assert [(m, f) for m, t, f, ts in pts if m == "users"] == [("users", {"count": 10, "rps": 50.0, "fail_rps": 0.5})]
    assert [t["worker"] for m, t, f, ts in pts if m in ("users", "sink")] == ["master", "master"]
    own = st["by_worker"]["master"]
    assert set(st["by_worker"]) == {"master", "worker-0", "worker-1"}
    assert st["produced"] == own["produced"] + 15 and st["dropped"] == own["dropped"] + 2
    assert st["written"] == own["written"] + 13 and st["retries"] == 3 and st["last_error"] == "boom"


# ------------------------------------------------------------------------ configuration
def test_config_precedence_cli_over_env_over_profile():
    prof = SinkSettings(influx_url="http://profile:8086", org="p-org", bucket="p-bucket", mode="raw",
                        interval_s=3.0, batch_size=500, max_buffer_points=5000, timeout_s=2.0)
    env = {"LETRADE_INFLUX_URL": "http://env:8086", "LETRADE_INFLUX_BUCKET": "e-bucket",
           "LETRADE_INFLUX_TOKEN": "tok-from-env-1234"}
    c = resolve_sink_config(prof, env, {"url": "http://cli:8086"})
    assert (c.url, c.org, c.bucket, c.mode, c.interval_s) == ("http://cli:8086", "p-org", "e-bucket", "raw", 3.0)
    assert (c.batch_size, c.max_buffer_points, c.timeout_s, c.token) == (500, 5000, 2.0, "tok-from-env-1234")
    c = resolve_sink_config(prof, {"LETRADE_INFLUX_MODE": "aggregate", "LETRADE_INFLUX_INTERVAL": "10s"})
    assert (c.url, c.mode, c.interval_s, c.token) == ("http://profile:8086", "aggregate", 10.0, None)
    c = resolve_sink_config(None, {"LETRADE_INFLUX_URL": "http://127.0.0.1:8428/", "LETRADE_INFLUX_ORG": "o"})
    assert (c.url, c.org, c.bucket, c.mode, c.interval_s) == ("http://127.0.0.1:8428", "o", "letrade_perf",
                                                              "aggregate", 5.0)
    assert resolve_sink_config(None, {}) is None
    assert resolve_sink_config(SinkSettings(), {"LETRADE_INFLUX_TOKEN": "t"}) is None   # no URL: no sink


def test_token_comes_only_from_the_named_variable_and_is_masked():
    secret = "my-influx-token-0123456789"
    c = resolve_sink_config(SinkSettings(influx_url="http://h:8086", token_env="MY_INFLUX_TOKEN"),
                            {"MY_INFLUX_TOKEN": secret, "LETRADE_INFLUX_TOKEN": "other-token-value"})
    assert c.token == secret and c.token_env == "MY_INFLUX_TOKEN"
    assert secret not in repr(c)
    assert mask(f"Authorization: Token {secret}") == "Authorization: Token ***"


@pytest.mark.parametrize("env,fragment", [
    ({"LETRADE_INFLUX_URL": "ftp://h:1"}, "LETRADE_INFLUX_URL: expected an http(s) URL"),
    ({"LETRADE_INFLUX_URL": "http://h:1", "LETRADE_INFLUX_MODE": "batch"},
     "LETRADE_INFLUX_MODE: expected one of aggregate, raw, got 'batch'"),
    ({"LETRADE_INFLUX_URL": "http://h:1", "LETRADE_INFLUX_INTERVAL": "soon"}, "LETRADE_INFLUX_INTERVAL: invalid duration"),
    ({"LETRADE_INFLUX_URL": "http://h:1", "LETRADE_INFLUX_INTERVAL": "0s"}, "LETRADE_INFLUX_INTERVAL: must be > 0"),
])
def test_bad_environment_values_name_the_variable(env, fragment):
    with pytest.raises(ConfigError) as ei:
        resolve_sink_config(None, env)
    assert fragment in str(ei.value)


def test_bad_values_name_the_profile_key_or_option():
    with pytest.raises(ConfigError, match=r"sink.influx_url: expected an http\(s\) URL"):
        resolve_sink_config(SinkSettings(influx_url="localhost:8086"), {})
    with pytest.raises(ConfigError, match="--influx-mode: expected one of"):
        resolve_sink_config(None, {"LETRADE_INFLUX_URL": "http://h:1"}, {"mode": "fast"})
    with pytest.raises(ConfigError, match="unknown option"):
        resolve_sink_config(None, {}, {"token": "x"})
    doc = {"description": "d", "symbols": ["BTCUSDT"], "stages": [{"duration": "5s", "users": 1, "spawn_rate": 1}],
           "users": {"rest_market": {}}, "sink": {"batch_size": 10, "max_buffer_points": 5}}
    with pytest.raises(ConfigError, match="sink.max_buffer_points: must be >= batch_size"):
        profile_from_mapping(doc, source="p.yaml")
    doc["sink"] = {"interval_s": "2s", "timeout_s": "1500ms", "max_tag_values": 50}
    p = profile_from_mapping(doc, source="p.yaml")
    assert (p.sink.interval_s, p.sink.timeout_s, p.sink.max_tag_values) == (2.0, 1.5, 50)


def test_the_token_never_reaches_stats_errors_or_logs(caplog):
    secret = "tkn-SECRET-5555-abcdef"
    c = resolve_sink_config(None, {"LETRADE_INFLUX_URL": "http://user:pw-in-url@127.0.0.1:9",
                                   "LETRADE_INFLUX_TOKEN": secret})
    w = FakeWriter(fail=3, exc=RuntimeError(f"401 Unauthorized: header 'Authorization: Token {secret}'"))
    with caplog.at_level(logging.DEBUG, logger="letrade_perf.metrics.sink"):
        sink = InfluxSink(c, BASE, writer=w, wait=lambda s: time.sleep(0.001))
        sink.add_points(["m v=1i 1"])
        deadline = time.monotonic() + 5
        while sink.own_stats()["written"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        st = sink.close(5)
    text = json.dumps(st) + "\n".join(r.getMessage() for r in caplog.records) + repr(c)
    assert st["retries"] == 3 and "***" in st["last_error"]
    assert secret not in text
    assert "pw-in-url" not in text and st["url"] == "http://127.0.0.1:9"
