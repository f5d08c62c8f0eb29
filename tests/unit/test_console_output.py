"""The console's pure formatting (:mod:`letrade_perf.reports.console`), the progress line's writer
(:class:`letrade_perf.logs.StatusLine`) and ``letrade-perf run``'s final block (no Locust here)."""
from __future__ import annotations

import io
import logging

import pytest

from letrade_perf.logs import StatusLine, apply_console
from letrade_perf.reports import console

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


SNAP = {"started_at": T0, "planned_s": 120.0, "users": 40, "users_planned": 50, "rps": 312.46,
        "requests": 9000, "failures": 18, "passing": 9, "failing": 1, "pending": 2,
        "failing_labels": ["request avg<200 = 251.3 ms"]}


def test_progress_line_from_a_snapshot_and_a_clock():
    line = console.progress_line(SNAP, T0 + 45.2)
    assert line == ("progress 0:45/2:00 (38%), ETA 1:15 | users 40/50 | 312.5 req/s, 18 failures (0.20%) | "
                    "criteria 9 passing, 1 failing, 2 pending | FAIL request avg<200 = 251.3 ms")


def test_progress_line_at_and_past_the_end_and_before_any_request():
    snap = dict(SNAP, failures=0, failing=0, failing_labels=[])
    assert "progress 2:00/2:00 (100%), ending |" in console.progress_line(snap, T0 + 120.0)
    assert "progress 2:05/2:00 (100%), ending |" in console.progress_line(snap, T0 + 125.0)
    empty = console.progress_line({"started_at": T0, "planned_s": 3725}, T0)
    assert empty == ("progress 0:00/1:02:05 (0%), ETA 1:02:05 | users 0/0 | 0.0 req/s, 0 failures | "
                     "criteria 0 passing, 0 failing, 0 pending")
    many = console.progress_line(dict(SNAP, failing_labels=[f"c{i} = 1" for i in range(5)]), T0)
    assert many.endswith("FAIL c0 = 1; c1 = 1; c2 = 1; +2 more")


def test_throttle_allows_one_line_per_period_on_an_injected_clock():
    clock = Clock(100.0)
    t = console.ProgressThrottle(10.0, clock)
    seen = []
    for step in range(31):          # an evaluation every second for 30 s
        clock.t = 100.0 + step
        if t.due():
            seen.append(step)
    assert seen == [0, 10, 20, 30]
    off = console.ProgressThrottle(0.0, clock)
    assert not off.due()


@pytest.mark.parametrize("raw, every", [(None, 10.0), ("", 10.0), ("2.5", 2.5), ("0", 0.0), ("x", 10.0),
                                        ("nan", 10.0)])
def test_progress_period_from_the_environment(raw, every):
    env = {} if raw is None else {console.PROGRESS_EVERY_ENV: raw}
    assert console.progress_every_s(env) == every


@pytest.mark.parametrize("tty, env, expected", [
    (True, {}, True),
    (False, {}, False),
    (True, {"NO_COLOR": "1"}, False),
    (True, {"NO_COLOR": ""}, True),                      # no-color.org: only a non-empty value counts
    (False, {"FORCE_COLOR": "1"}, True),
    (True, {"FORCE_COLOR": "0"}, True),                  # "0" does not force; the TTY decides
    (False, {"FORCE_COLOR": "0"}, False),
    (False, {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),   # NO_COLOR wins, as in CPython
    (True, {"TERM": "dumb"}, False),
])
def test_colour_decision(tty, env, expected):
    assert console.use_colour(Tty() if tty else io.StringIO(), env) is expected


def test_verdict_colours():
    assert console.paint_verdict("verdict PASS", "pass", True) == "\x1b[1m\x1b[32mverdict PASS\x1b[0m"
    assert "\x1b[31m" in console.paint_verdict("x", "fail", True)
    for amber in ("incomplete", "aborted", "interrupted"):
        assert "\x1b[33m" in console.paint_verdict("x", amber, True)
    assert console.paint_verdict("x", "fail", False) == "x"
    assert console.paint_verdict("x", "unknown", True) == "x"


SUMMARY = {
    "run": {"run_id": "r1", "profile": "smoke", "env": "sim", "ending_reason": None, "exit_code": 99},
    "verdict": "fail", "ending": "completed",
    "achieved": {"planned": {"duration_s": 30, "peak_users": 6},
                 "achieved": {"duration_s": 30.1, "peak_users": 6, "user_seconds": 170, "planned_user_seconds": 171,
                              "paced_fraction": 0.0},
                 "shortfalls": [{"kind": "users_below_plan", "message": "fewer users", "tolerated": True},
                                {"kind": "workers_lost", "message": "1 worker lost", "tolerated": False}]},
    "criteria": [
        {"label": "request avg<200", "unit": "ms", "op": "<", "threshold": 200.0, "value": 251.3, "samples": 90,
         "verdict": "fail", "gate": "fail", "reason": None},
        {"label": "api_success rate>99.9%", "unit": "ratio", "op": ">", "threshold": 0.999, "value": 1.0,
         "samples": 90, "verdict": "pass", "gate": "pass", "reason": None},
        {"label": "ws_lag avg<50", "unit": "ms", "op": "<", "threshold": 50.0, "value": None, "samples": 0,
         "verdict": "inconclusive", "gate": "pass", "reason": "no samples"},
    ],
}


def test_verdict_block_names_verdict_plan_failures_and_reports():
    text = console.verdict_block(SUMMARY, 99, "/r/run", report_files=["summary.html", "summary.json"])
    lines = text.splitlines()
    assert lines[0] == "letrade-perf smoke on sim, run r1"
    assert lines[1] == "verdict: FAIL — ending completed — 2 of 3 criteria passed — exit code 99"
    assert lines[2].startswith("planned vs achieved: 30.1 of 30 s, peak 6 of 6 users")
    assert "  shortfall tolerated by the profile: users_below_plan: fewer users" in lines
    assert "  FAILED: request avg<200 = 251.3 ms (threshold < 200 ms)" in lines
    assert "  shortfall: workers_lost: 1 worker lost" in lines
    assert lines[-1] == "reports: /r/run (summary.html, summary.json)"
    assert "\x1b[" not in text
    coloured = console.verdict_block(SUMMARY, 99, "/r/run", colour=True)
    assert coloured.splitlines()[1].startswith("\x1b[1m\x1b[31mverdict: FAIL\x1b[0m — ending")


def test_verdict_block_names_the_baseline_and_its_regressions():
    summary = dict(SUMMARY, baseline={"path": "/b/summary.json", "tolerance": 0.1, "verdict": "fail", "regressions": [
        {"kind": "endpoint", "key": "GET /api/v3/depth", "figure": "p95_ms", "baseline": 10, "current": 13}]})
    lines = console.verdict_block(summary, 99, "/r").splitlines()
    assert "2 of 3 criteria passed, 1 baseline regression(s) — exit code 99" in lines[1]
    assert "baseline /b/summary.json: 1 regression(s) beyond 10 %" in lines
    assert "  REGRESSION endpoint GET /api/v3/depth p95_ms: 10 → 13" in lines


def test_verdict_block_without_a_summary():
    text = console.verdict_block(None, 70, "/r/run")
    assert text.splitlines() == ["verdict: ERROR — no summary.json was written — exit code 70", "reports: /r/run"]


def test_criteria_table():
    table = console.criteria_table(SUMMARY["criteria"]).splitlines()
    assert table[0].split() == ["verdict", "criterion", "value", "threshold", "samples", "note"]
    assert table[2].split()[:2] == ["FAIL", "request"] and "251.3 ms" in table[2] and "< 200 ms" in table[2]
    assert table[4].endswith("no samples (allowed)")
    assert console.criteria_table([]) == "(no criteria)"


def test_status_line_rewrites_in_place_on_a_tty_and_logs_elsewhere(caplog):
    logger = logging.getLogger("test.console.progress")
    tty = Tty()
    status = StatusLine(logger, stream=tty, environ={})
    status.show("progress 1")
    status.show("progress 2")
    status.close()
    status.close()                   # closing twice adds nothing
    assert tty.getvalue() == "\r\x1b[Kprogress 1\r\x1b[Kprogress 2\n"
    for fmt, stream in (("text", io.StringIO()), ("json", Tty())):
        plain = StatusLine(logger, stream=stream, fmt=fmt, environ={})
        with caplog.at_level(logging.INFO, logger=logger.name):
            plain.show(f"progress {fmt}")
        assert stream.getvalue() == ""
        assert f"progress {fmt}" in caplog.messages


def test_a_log_record_ends_the_open_status_line():
    tty = Tty()
    handler = logging.StreamHandler(tty)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        status = StatusLine(logging.getLogger("test.console.progress2"), stream=tty, environ={})
        status.show("progress 1")
        logging.getLogger("test.console.other").warning("something happened")
        assert tty.getvalue() == "\r\x1b[Kprogress 1\nsomething happened\n"
        assert not status.open
    finally:
        root.removeHandler(handler)


def test_quiet_mutes_locust_stats_tables():
    stats = logging.getLogger("locust.stats_logger")
    before = stats.level
    try:
        apply_console("run")
        assert stats.level == before
        apply_console("quiet")
        assert not stats.isEnabledFor(logging.INFO) and stats.isEnabledFor(logging.WARNING)
    finally:
        stats.setLevel(before)


def _plan(**kw):
    from letrade_perf.run import RunPlan
    base = dict(profile_ref="smoke", profile_name="smoke", env="sim", host=None, run_id="r1", reports_dir="/tmp/r1",
                web=False, workers=0, key_file=None, log_format="text", extra=[])
    base.update(kw)
    return RunPlan(**base)


def test_locust_command_lines_for_the_console():
    from types import SimpleNamespace

    from letrade_perf.run import locust_commands
    target = SimpleNamespace(rest_url="http://127.0.0.1:1", ws_stream_url="ws://127.0.0.1:1",
                             ws_api_url="ws://127.0.0.1:1/ws-api/v3")
    [plain] = locust_commands(_plan(), target)
    assert "--only-summary" in plain and "--loglevel" not in plain      # the progress line replaces the 2-s tables
    [stats] = locust_commands(_plan(extra=["--print-stats"]), target)
    assert "--only-summary" not in stats
    [quiet] = locust_commands(_plan(quiet=True, extra=["--print-stats"]), target)
    assert "--only-summary" in quiet and quiet[quiet.index("--loglevel") + 1] == "WARNING"
    [loud] = locust_commands(_plan(quiet=True, log_level="debug"), target)
    assert loud[loud.index("--loglevel") + 1] == "DEBUG" and loud.count("--loglevel") == 1
    master, worker = locust_commands(_plan(quiet=True, workers=1), target, master_port=5557)
    assert "--only-summary" in master and "--loglevel" not in worker     # the workers' log files keep INFO
    [web] = locust_commands(_plan(web=True), target)
    assert "--only-summary" not in web


def test_final_console_ends_with_the_verdict_block(tmp_path, monkeypatch):
    from letrade_perf.run import final_console
    for name in ("FORCE_COLOR", "NO_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "summary.json").write_text("{}")
    text = final_console(_plan(reports_dir=str(tmp_path)), 99, SUMMARY, stream=io.StringIO())
    lines = text.splitlines()
    assert lines[-1] == f"reports: {tmp_path} (summary.json)" and "verdict: FAIL" in text
    assert text.index("(no statistics were written)") < text.index("request avg<200  ") < text.index("verdict: FAIL")
    quiet = final_console(_plan(reports_dir=str(tmp_path), quiet=True), 99, SUMMARY, stream=Tty()).splitlines()
    assert quiet[0] == "" and quiet[1] == "letrade-perf smoke on sim, run r1" and "\x1b[31m" in quiet[2]
