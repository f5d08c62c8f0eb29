"""Endings, verdicts and exit codes; planned vs achieved with an injected clock; the reports that
carry them (summary.json schema, JUnit, Markdown, HTML)."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from letrade_perf import reports
from letrade_perf.config.profile import profile_from_mapping
from letrade_perf.core import endings
from letrade_perf.criteria.achieved import RAMP_GRACE_S, Achieved, planned_users, untolerated
from tests.reportdata import make_summary


def _profile(**extra):
    doc = {"description": "plan", "stages": [{"duration": "10s", "users": 4, "spawn_rate": 2},
                                              {"duration": "10s", "users": 8, "spawn_rate": 4}],
           "users": {"rest_market": {"weight": 1}}}
    doc.update(extra)
    return profile_from_mapping(doc, source="plan.yaml", name="plan")


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _run(achieved: Achieved, clock: Clock, users_at, until: float, step: float = 1.0) -> None:
    achieved.start()
    t = 0.0
    while t < until - 1e-9:
        clock.t += step
        t += step
        achieved.sample(users_at(t))
    achieved.stop()


# --- endings.judge ---------------------------------------------------------------------------------

@pytest.mark.parametrize("ending, failed, shortfalls, expected", [
    ("completed", False, 0, ("pass", 0)),
    ("completed", True, 0, ("fail", 99)),
    ("completed", False, 2, ("incomplete", 4)),
    ("completed", True, 2, ("fail", 99)),            # a failed criterion outranks a shortfall
    ("lost_worker", False, 1, ("incomplete", 4)),
    ("lost_worker", False, 0, ("pass", 0)),          # tolerated by the profile
    ("criteria", False, 0, ("fail", 99)),
    ("safety", True, 3, ("aborted", 3)),
    ("operator", False, 0, ("interrupted", 105)),
    ("harness_error", False, 0, ("error", 70)),
    ("config_error", False, 0, ("error", 2)),
])
def test_every_ending_has_one_verdict_and_exit_code(ending, failed, shortfalls, expected):
    assert endings.judge(ending, failed, shortfalls) == expected


def test_exit_codes_are_distinct_and_documented():
    codes = [endings.EXIT_PASS, endings.EXIT_CONFIG, endings.EXIT_SAFETY, endings.EXIT_INCOMPLETE,
             endings.EXIT_HARNESS, endings.EXIT_FAILED, endings.EXIT_INTERRUPTED]
    assert len(set(codes)) == len(codes) and 1 not in codes      # 1 is what a Python crash gives
    assert set(endings.EXIT_CODES) == set(codes)
    with pytest.raises(ValueError, match="unknown ending"):
        endings.judge("finished", False, 0)
    assert endings.ending_of_code(105) == "operator" and endings.ending_of_code(99) is None


# --- planned vs achieved ---------------------------------------------------------------------------

def test_planned_users_follow_the_stages_and_their_ramps():
    p = _profile()
    assert planned_users(p, 0.5) == (4, True)
    assert planned_users(p, 2 + RAMP_GRACE_S + 0.1) == (4, False)          # 4 users at 2/s: 2 s ramp
    assert planned_users(p, 10.5) == (8, True)
    assert planned_users(p, 10 + 1 + RAMP_GRACE_S + 0.1) == (8, False)
    assert planned_users(p, 25) == (0, False)


def test_a_run_that_follows_its_plan_has_no_shortfall():
    clock = Clock()
    a = Achieved(_profile(), clock=clock)
    _run(a, clock, lambda t: 4 if t <= 10 else 8, 20)
    r = a.report(paced_s=3.0)
    assert r["shortfalls"] == [] and untolerated(r) == []
    assert r["achieved"]["duration_s"] == 20 and r["achieved"]["peak_users"] == 8
    assert r["achieved"]["paced_fraction"] == pytest.approx(3.0 / r["achieved"]["user_seconds"], abs=1e-4)
    assert r["timeline"][0] == [1.0, 4, 4]


def test_users_below_the_plan_outside_a_ramp_is_a_shortfall():
    clock = Clock()
    a = Achieved(_profile(), clock=clock)
    _run(a, clock, lambda t: 4 if t <= 10 else 5, 20)         # 3 of 8 never came in the second stage
    [sf] = untolerated(a.report())
    assert sf["kind"] == "users" and "peak 5 of 8 planned" in sf["message"]


def test_a_short_run_is_a_shortfall_that_names_a_run_time():
    clock = Clock()
    a = Achieved(_profile(), clock=clock)
    _run(a, clock, lambda t: 4 if t <= 10 else 8, 12)
    [sf] = untolerated(a.report(run_time_s=12.0))
    assert sf["kind"] == "duration"
    assert "ran 12.0 s of the profile's 20 s" in sf["message"] and "run time of 12 s" in sf["message"]
    assert untolerated(a.report(judge_plan=False)) == []     # an operator's stop is its own ending


def test_safety_refusals_lost_workers_and_pacing_and_what_a_profile_tolerates():
    clock = Clock()
    strict = Achieved(_profile(), clock=clock)
    _run(strict, clock, lambda t: 4 if t <= 10 else 8, 20)
    r = strict.report(safety_refusals=3, strategies_stopped={"safety.max_run_notional": 2},
                      workers_lost=[{"worker": "w1", "at": 1.0, "how": "missing"}])
    assert {s["kind"] for s in untolerated(r)} == {"safety_refusals", "workers_lost"}
    assert "safety.max_run_notional ×2" in next(s for s in r["shortfalls"] if s["kind"] == "safety_refusals")["message"]

    clock2 = Clock()
    lenient = Achieved(_profile(tolerate={"safety_refusals": 5, "workers_lost": 1, "paced": 0.5}), clock=clock2)
    _run(lenient, clock2, lambda t: 4 if t <= 10 else 8, 20)
    r = lenient.report(safety_refusals=3, workers_lost=[{"worker": "w1", "at": 1.0, "how": "missing"}], paced_s=120.0)
    assert [s["kind"] for s in untolerated(r)] == ["paced"]          # 120 of ~140 user-seconds blocked
    assert all(s["tolerated"] for s in r["shortfalls"] if s["kind"] != "paced")


def test_a_test_that_never_started_is_a_shortfall():
    r = Achieved(_profile(), clock=Clock()).report()
    assert [s["kind"] for s in untolerated(r)] == ["duration"] and "never started" in r["shortfalls"][0]["message"]


# --- the reports carry the ending ------------------------------------------------------------------

def _incomplete_summary():
    clock = Clock()
    a = Achieved(_profile(), clock=clock)
    _run(a, clock, lambda t: 4 if t <= 10 else 5, 20)
    return make_summary(verdict="incomplete", ending="completed", achieved=a.report(), run={"exit_code": 4})


def test_an_incomplete_run_in_every_report(tmp_path):
    summary = _incomplete_summary()
    written = reports.write_reports(summary, tmp_path)
    suite = ET.parse(written["junit.xml"]).getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["verdict"] == "incomplete" and props["ending"] == "completed" and props["exit_code"] == "4"
    plan = next(c for c in suite.findall("testcase") if c.get("name") == "plan")
    assert plan.find("failure").get("type") == "incomplete" and "fewer users" in plan.find("failure").get("message")
    md = (tmp_path / "summary.md").read_text()
    assert "**INCOMPLETE** — the run fell short of its plan: fewer users than planned" in md
    assert "#### Planned vs achieved" in md and "| Peak users | 8 | 5 |" in md
    html = (tmp_path / "summary.html").read_text()
    assert "INCOMPLETE — ending completed — exit code 4" in html and "<svg" in html


@pytest.mark.parametrize("ending, verdict, code", [("operator", "interrupted", 105), ("harness_error", "error", 70),
                                                    ("config_error", "error", 2)])
def test_an_ending_without_a_gate_writes_every_report(tmp_path, ending, verdict, code):
    summary = reports.minimal_summary(run_id="r1", profile="smoke", env="sim", host=None, started=1e9,
                                      ended=1e9 + 3, workers=0, ending=ending, reason="because <b>",
                                      log_path="/tmp/x.log")
    written = reports.write_reports(summary, tmp_path)
    assert reports.load_summary(tmp_path) == summary
    assert summary["verdict"] == verdict and summary["run"]["exit_code"] == code
    suite = ET.parse(written["junit.xml"]).getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert (props["ending"], props["exit_code"]) == (ending, str(code))
    run_case = next(c for c in suite.findall("testcase") if c.get("name") == "run")
    assert run_case.find("error").get("type") == verdict and "because <b>" in run_case.find("error").get("message")
    assert f"**{verdict.upper()}** — because \\<b\\> (log: /tmp/x.log)" in (tmp_path / "summary.md").read_text()
    assert "because &lt;b&gt;" in (tmp_path / "summary.html").read_text()


def test_with_ending_rewrites_the_verdict_and_code_but_keeps_the_measurements():
    before = make_summary()
    after = reports.with_ending(before, ending="harness_error", reason="Locust exited with signal SIGKILL")
    assert after["verdict"] == "error" and after["run"]["exit_code"] == 70 and after["ending"] == "harness_error"
    assert after["endpoints"] == before["endpoints"] and before["verdict"] == "pass"
    reports.validate_summary(after)


# --- an unexpected error: one line, a log, exit 70 -------------------------------------------------

def test_an_unexpected_error_of_a_command_is_one_line_naming_its_log_and_exit_70(tmp_path, monkeypatch, capsys):
    from letrade_perf import cli
    from letrade_perf.config import listing
    from letrade_perf.core.secrets import register_secret

    secret = "s3cr3t-" + "x" * 24
    register_secret(secret)

    def boom(args):
        raise RuntimeError(f"broken listing with {secret}")

    monkeypatch.setattr(listing, "run_from_args", boom)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["profiles"]) == endings.EXIT_HARNESS
    err = capsys.readouterr().err
    [line] = err.splitlines()
    assert line.startswith("letrade-perf profiles: internal error (RuntimeError: broken listing with ***)")
    assert "Traceback" not in err and secret not in err and line.endswith("exit code 70")
    [log] = list(tmp_path.glob("letrade-perf-error-*.log"))
    assert log.name in line
    text = log.read_text()
    assert "Traceback" in text and "in boom" in text and secret not in text
