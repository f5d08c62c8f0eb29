"""Reports: the summary schema, summary.json / junit.xml / summary.md, and reading a summary back."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import xmlschema

from letrade_perf import reports
from letrade_perf.reports import schema as schema_mod
from reportdata import criterion, default_criteria, make_summary

JUNIT_XSD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "junit.xsd")


@pytest.fixture(scope="module")
def junit_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(JUNIT_XSD)


def failing_summary() -> dict:
    crit = default_criteria()
    crit[0] = criterion(value=251.3)                                   # p(95)<200 fails
    crit[3] = criterion("ws_lag avg<50", metric="ws_lag", tags={}, expression="avg<50", aggregation="avg",
                        threshold=50.0, value=None, samples=0, reason="clock uncertainty 30 ms > half of 50 ms")
    crit[6] = criterion("order_success rate>99.5%", metric="order_success", tags={}, expression="rate>99.5%",
                        aggregation="rate", op=">", threshold=0.995, value=None, samples=0, unit="ratio",
                        gate="pass", reason="no samples")                 # inconclusive but allowed
    baseline = {"path": "reports/base/summary.json", "tolerance": 0.1, "verdict": "fail", "checked": 37,
                "regressions": [{"kind": "endpoint", "key": "REST GET /api/v3/depth", "figure": "p95_ms",
                                 "baseline": 120.0, "current": 156.0, "change": 0.3, "limit": "+10 % and +1 ms"},
                                {"kind": "criterion", "key": crit[0]["label"], "figure": "verdict",
                                 "baseline": "pass", "current": "fail", "change": None, "limit": "pass"}],
                "notes": ["stream userData: skipped, fewer than 20 samples (baseline 12, current 12)"]}
    return make_summary(criteria=crit, baseline=baseline)


def aborted_summary() -> dict:
    return make_summary(run={"aborted": "HTTP 418: IP banned until 1767225600000", "exit_code": 3})


# --- schema -----------------------------------------------------------------------------------------

def test_shipped_schema_is_a_valid_draft_2020_12_schema_inside_the_package():
    assert reports.SCHEMA_VERSION == 1
    assert os.path.isfile(reports.SCHEMA_PATH)
    assert os.path.dirname(reports.SCHEMA_PATH) == os.path.dirname(reports.__file__)
    with open(reports.SCHEMA_PATH, encoding="utf-8") as fh:
        schema = json.load(fh)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("make", [make_summary, failing_summary, aborted_summary])
def test_realistic_summaries_validate(make):
    summary = make()
    reports.validate_summary(summary)
    jsonschema.Draft202012Validator(schema_mod.load_schema()).validate(summary)


def _break(path: str, value=None, delete: bool = False) -> dict:
    summary = make_summary()
    *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    target = summary
    for p in parents:
        target = target[p]
    if delete:
        del target[last]
    else:
        target[last] = value
    return summary


INVALID = [
    ("criteria/3/verdict", "maybe", False, "$.criteria[3].verdict"),
    ("run/run_id", None, True, "$.run.run_id"),
    ("run/env", "staging", False, "$.run.env"),
    ("endpoints/1/count", -5, False, "$.endpoints[1].count"),
    ("endpoints/0/error_rate", 1.5, False, "$.endpoints[0].error_rate"),
    ("endpoints/0/surprise", 1, False, "$.endpoints[0].surprise"),
    ("streams/0/p95_ms", "21", False, "$.streams[0].p95_ms"),
    ("criteria/0/op", "!=", False, "$.criteria[0].op"),
    ("criteria/0/abort_on_fail", "yes", False, "$.criteria[0].abort_on_fail"),
    ("run/started_at", "yesterday", False, "$.run.started_at"),
    ("verdict", "ok", False, "$.verdict"),
    ("sink", None, True, "$.sink"),
    ("baseline", {"path": "x", "tolerance": 0.1, "verdict": "fail", "checked": 1,
                  "regressions": [{"kind": "endpoint", "key": "k", "figure": "p42_ms", "baseline": 1, "current": 2,
                                   "change": 1.0, "limit": "+10 %"}]}, False, "$.baseline.regressions[0].figure"),
]


@pytest.mark.parametrize("path,value,delete,where", INVALID, ids=[w for *_, w in INVALID])
def test_an_invalid_summary_is_rejected_naming_the_json_path(path, value, delete, where):
    summary = _break(path, value, delete)
    with pytest.raises(ValueError) as err:
        reports.validate_summary(summary)
    assert str(err.value).startswith(f"summary {where}: "), str(err.value)


def test_missing_and_unexpected_keys_are_named_in_words():
    with pytest.raises(ValueError) as err:
        reports.validate_summary(_break("run/run_id", delete=True))
    assert str(err.value) == "summary $.run.run_id: is required"
    with pytest.raises(ValueError) as err:
        reports.validate_summary(_break("endpoints/0/surprise", 1))
    assert str(err.value) == "summary $.endpoints[0].surprise: unexpected key"


def test_non_json_values_and_other_versions_are_named():
    with pytest.raises(ValueError, match=r"\$\.endpoints\[1\]\.p95_ms: nan is not a finite number"):
        reports.validate_summary(_break("endpoints/1/p95_ms", float("nan")))
    with pytest.raises(ValueError, match=r"\$\.pacing\.when: datetime is not JSON-able"):
        import datetime
        reports.validate_summary(_break("pacing/when", datetime.datetime.now()))
    with pytest.raises(ValueError, match=r"\$\.schema_version: version 2 is not supported"):
        reports.validate_summary(_break("schema_version", 2))
    with pytest.raises(ValueError, match=r"\$\.schema: .*not a letrade-perf summary"):
        reports.validate_summary({"schema": "k6/summary"})
    # free-form sections accept anything JSON-able
    reports.validate_summary(_break("ws/anything", {"nested": [1, "two", None]}))
    reports.validate_summary(_break("run/versions/websocket_client", "1.8.0"))


# --- write_reports / load_summary ---------------------------------------------------------------

def test_write_reports_writes_three_files_atomically(tmp_path):
    out = tmp_path / "reports" / "run-1"
    summary = failing_summary()
    written = reports.write_reports(summary, out)
    assert set(written) == {"summary.json", "junit.xml", "summary.md", "summary.html"}
    assert sorted(os.listdir(out)) == ["junit.xml", "summary.html", "summary.json", "summary.md"]   # no temp files left
    for name, path in written.items():
        assert path == os.path.join(str(out), name)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "summary.md").read_text().startswith("### letrade-perf ci-gate")
    ET.parse(out / "junit.xml")
    assert reports.load_summary(out) == summary
    assert reports.load_summary(out / "summary.json") == summary
    # rewriting replaces the files
    reports.write_reports(make_summary(), out)
    assert reports.load_summary(out)["verdict"] == "pass"
    assert sorted(os.listdir(out)) == ["junit.xml", "summary.html", "summary.json", "summary.md"]


def test_write_reports_writes_nothing_for_an_invalid_summary(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=r"\$\.run\.env"):
        reports.write_reports(_break("run/env", "staging"), out)
    assert not out.exists()


def test_load_summary_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope" / "summary.json"
    with pytest.raises(ValueError, match=f"{missing}: no such file"):
        reports.load_summary(missing)
    with pytest.raises(ValueError, match=f"{tmp_path / 'summary.json'}: no such file"):
        reports.load_summary(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=f"{bad}: not JSON"):
        reports.load_summary(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"metrics": {}}))
    with pytest.raises(ValueError, match=f"{other}: not a letrade-perf summary"):
        reports.load_summary(other)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**make_summary(), "schema_version": 2}))
    with pytest.raises(ValueError, match=f"{newer}: summary schema_version 2 is not supported"):
        reports.load_summary(newer)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(_break("criteria/2/gate", "maybe")))
    with pytest.raises(ValueError, match=rf"{broken}: invalid summary \$\.criteria\[2\]\.gate"):
        reports.load_summary(broken)


# --- junit.xml ---------------------------------------------------------------------------------------

def _cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    return {(c.get("classname").rsplit(".", 1)[1], c.get("name")): c for c in root.iter("testcase")}


def test_junit_of_a_passing_run(junit_schema):
    summary = make_summary()
    xml = reports.render_junit(summary, hostname="ci-runner-1")
    junit_schema.validate(xml)
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "letrade-perf ci-gate"
    counts = (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped"))
    assert counts == ("10", "0", "0", "0")
    assert suite.get("timestamp") == "2026-03-01T12:00:00" and suite.get("hostname") == "ci-runner-1"
    assert float(suite.get("time")) == pytest.approx(60.25)
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_id"] == "20260301T120000Z-ci-gate" and props["env"] == "sim"
    assert props["git_commit"] == "0123456789abcdef0123456789abcdef01234567"
    cases = _cases(xml)
    assert ("criteria", 'request{name="GET /api/v3/depth"} p(95)<200') in cases
    assert all(c.get("classname").startswith("letrade-perf.ci-gate.") for c in cases.values())
    assert list(cases[("run", "run")]) == []
    assert "GET /api/v3/depth" in suite.find("system-out").text


def test_junit_of_a_failing_run_with_inconclusive_criteria_and_a_baseline(junit_schema):
    summary = failing_summary()
    xml = reports.render_junit(summary)
    junit_schema.validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    counts = (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped"))
    assert counts == ("11", "3", "0", "1")
    cases = _cases(xml)
    failure = cases[("criteria", 'request{name="GET /api/v3/depth"} p(95)<200')].find("failure")
    assert failure.get("type") == "criterion"
    assert "251.3 ms" in failure.get("message") and "< 200 ms" in failure.get("message")
    assert "threshold exceeded" in failure.get("message") and "samples: 1200" in failure.text
    inconclusive = cases[("criteria", "ws_lag avg<50")].find("failure")
    assert inconclusive.get("type") == "inconclusive" and "clock uncertainty 30 ms" in inconclusive.get("message")
    skipped = cases[("criteria", "order_success rate>99.5%")].find("skipped")
    assert skipped is not None and "no samples" in skipped.get("message")
    base = cases[("baseline", "baseline")].find("failure")
    assert base.get("type") == "baseline" and "2 regression(s)" in base.get("message")
    assert "REST GET /api/v3/depth p95_ms: 120 ms -> 156 ms (+30.0 %" in base.text
    assert "verdict: pass -> fail" in base.text
    assert ET.fromstring(xml).get("failures") == "3"


def test_junit_of_an_aborted_run_has_an_error_testcase(junit_schema):
    xml = reports.render_junit(aborted_summary())
    junit_schema.validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite.get("errors") == "1" and suite.get("failures") == "0"
    error = _cases(xml)[("run", "run")].find("error")
    assert error.get("type") == "aborted" and "HTTP 418: IP banned" in error.get("message")


def test_junit_survives_control_characters_and_markup_in_names(junit_schema):
    crit = [criterion('request{name="GET /x<y>&z"} p(95)<200', tags={"name": "GET /x<y>&z"}, value=300.0,
                      reason="bad \x00byte\x1b[31m")]
    xml = reports.render_junit(make_summary(criteria=crit, endpoints=[]))
    junit_schema.validate(xml)
    case = ET.fromstring(xml).find("testsuite/testcase")
    assert case.get("name") == 'request{name="GET /x<y>&z"} p(95)<200'
    assert "bad \ufffdbyte\ufffd[31m" in case.find("failure").get("message")


# --- summary.md --------------------------------------------------------------------------------------

def test_markdown_of_a_passing_run():
    md = reports.render_markdown(make_summary())
    lines = md.splitlines()
    assert lines[0] == "### letrade-perf ci-gate"
    assert "**PASS** — 9 of 9 criteria passed" in lines
    assert any(ln.startswith("run 20260301T120000Z-ci-gate · ending completed · exit code 0 · env sim") for ln in lines)
    assert "| Criterion | Value | Threshold | Samples | Verdict |" in lines
    assert "| `api_success rate>99.9%` | 99.98 % | \\> 99.9 % | 4000 | pass |" in lines
    assert any(ln.startswith("| REST | `GET /api/v3/depth` | 1200 | 0 | 0 % |") for ln in lines)
    assert any(ln.startswith("| `btcusdt@trade` | 5000 |") for ln in lines)
    assert "Baseline" not in md


def test_markdown_of_a_failing_run_lists_failures_and_regressions():
    md = reports.render_markdown(failing_summary())
    assert "**FAIL** — 2 of 9 criteria failed (2 inconclusive); 2 baseline regressions" in md
    assert "| 251.3 ms | \\< 200 ms | 1200 | **fail**: threshold exceeded |" in md
    assert "**inconclusive** (fails the gate): clock uncertainty 30 ms \\> half of 50 ms" in md
    assert "inconclusive (allowed): no samples" in md
    assert "#### Baseline" in md and "2 of 37 figures regressed" in md
    assert "| endpoint | REST GET /api/v3/depth | p95\\_ms | 120 ms | 156 ms | +30.0 % |" in md


def test_markdown_of_an_aborted_run():
    assert "**ABORTED** — HTTP 418: IP banned until 1767225600000" in reports.render_markdown(aborted_summary())


def test_markdown_escapes_pipes_and_backticks_in_names():
    crit = [criterion("weird|label `code` *x*", metric="weird", tags={}, value=10.0)]
    md = reports.render_markdown(make_summary(criteria=crit, endpoints=[]))
    row = next(ln for ln in md.splitlines() if ln.startswith("| ``weird"))
    assert row.startswith("| ``weird\\|label `code` *x*`` |")   # a code span: readable, only | escaped
    # the row still has exactly five cells: every unescaped pipe is a cell border
    unescaped = row.replace("\\|", "")
    assert unescaped.count("|") == 6


def test_markdown_shows_criterion_value_regressions_in_the_criterion_unit():
    summary = make_summary()
    rate = summary["criteria"][5]
    summary["baseline"] = {"path": "b", "tolerance": 0.01, "verdict": "fail", "checked": 1, "regressions": [
        {"kind": "criterion", "key": rate["label"], "figure": "value", "baseline": 0.9998, "current": 0.97,
         "change": 0.97 / 0.9998 - 1, "limit": "-1 %"}]}
    reports.validate_summary(summary)
    md = reports.render_markdown(summary)
    assert "| criterion | api\\_success rate\\>99.9% | value | 99.98 % | 97 % | -3.0 % | -1 % |" in md


def test_the_junit_schema_is_not_vacuous(junit_schema):
    good = reports.render_junit(make_summary(), hostname="h")
    assert junit_schema.is_valid(good)
    for broken in (good.replace('timestamp="2026-03-01T12:00:00"', 'timestamp="2026-03-01T12:00:00+00:00"'),
                   good.replace('tests="10"', 'tests="ten"', 2),
                   good.replace('name="run" ', ""),
                   good.replace("<properties>", "<properties><bogus/>")):
        assert broken != good and not junit_schema.is_valid(broken)
