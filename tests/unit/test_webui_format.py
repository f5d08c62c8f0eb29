"""The Criteria tab's display logic (pure functions of :mod:`letrade_perf.harness.webui`; no Locust here)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from letrade_perf.harness import webui

SNAPSHOT = {
    "updated_at": 1_700_000_000.0,
    "elapsed_s": 75.4,
    "verdict": "fail",
    "criteria": [
        {"label": 'request{name="GET /api/v3/depth"} p(95)<200', "metric": "request",
         "tags": {"name": "GET /api/v3/depth"}, "expression": "p(95)<200", "threshold": 200.0, "op": "<",
         "unit": "ms", "value": 123.456, "samples": 812, "verdict": "pass", "gate": "pass", "reason": None,
         "abort_on_fail": False, "source": "profile"},
        {"label": "api_success rate>99.9%", "metric": "api_success", "tags": {}, "expression": "rate>99.9%",
         "threshold": 0.999, "op": ">", "unit": "ratio", "value": 0.9981, "samples": 900, "verdict": "fail",
         "gate": "fail", "reason": None, "abort_on_fail": True, "source": "profile"},
        {"label": "ws_lag avg<50", "metric": "ws_lag", "tags": {}, "expression": "avg<50", "threshold": 50.0,
         "op": "<", "unit": "ms", "value": None, "samples": 0, "verdict": "inconclusive", "gate": "pass",
         "reason": "no samples yet", "abort_on_fail": False, "source": "default"},
        {"label": "http_418 count==0", "metric": "http_418", "tags": {}, "expression": "count==0",
         "threshold": 0.0, "op": "==", "unit": "count", "value": 0.0, "samples": 1200, "verdict": "pass",
         "gate": "pass", "reason": None, "abort_on_fail": True, "source": "profile"},
    ],
}


@pytest.mark.parametrize("value, unit, shown", [
    (0.999, "ratio", "99.90 %"),
    (1.0, "ratio", "100.00 %"),
    (0.0, "ratio", "0.00 %"),
    (0.99996, "ratio", "99.9960 %"),      # never rounds a miss up to 100 %
    (123.456, "ms", "123.5 ms"),
    (0, "ms", "0.0 ms"),
    (7.0, "count", "7"),
    (2.6, "count", "3"),
    (1.234, "bps", "1.23 bps"),
    (0.5, "", "0.5"),
    (3.0, "", "3"),
    (None, "ms", "—"),
    (None, "ratio", "—"),
    (float("nan"), "ms", "—"),
    (float("inf"), "count", "—"),
    ("oops", "ms", "—"),
])
def test_format_value(value, unit, shown):
    assert webui.format_value(value, unit) == shown


@pytest.mark.parametrize("op, threshold, unit, shown", [
    ("<", 200.0, "ms", "< 200 ms"),
    ("<=", 12.5, "ms", "<= 12.5 ms"),
    (">", 0.999, "ratio", "> 99.90 %"),
    (">", 0.995, "ratio", "> 99.50 %"),
    (">=", 0.99995, "ratio", ">= 99.995 %"),   # exact: the number the gate compares with
    ("==", 0.0, "count", "== 0"),
    ("<", 5, "bps", "< 5 bps"),
    ("<", None, "ms", "< —"),
])
def test_format_threshold(op, threshold, unit, shown):
    assert webui.format_threshold(op, threshold, unit) == shown


def test_statuses_are_visibly_distinct():
    shown = {v: webui.format_status(v) for v in ("pass", "fail", "inconclusive")}
    assert shown == {"pass": "✔ PASS", "fail": "✘ FAIL", "inconclusive": "? INCONCLUSIVE"}
    assert len({s[0] for s in shown.values()}) == 3      # distinct leading symbol, not only the word
    assert webui.format_status("pending") == "… PENDING"
    assert webui.format_status("aborted") == "■ ABORTED"
    assert webui.format_status("PASS") == "✔ PASS"
    assert webui.format_status(None) == "—"


def test_rows_overall_first_then_every_criterion_in_order():
    rows = webui.criteria_rows(SNAPSHOT)
    assert [r["criterion"] for r in rows] == ["Overall verdict"] + [c["label"] for c in SNAPSHOT["criteria"]]
    overall = rows[0]
    assert overall["status"] == "✘ FAIL"
    assert overall["value"] == "elapsed 1m 15s"
    assert overall["samples"] == "4 criteria"
    assert overall["note"].startswith("2 pass, 1 fail, 1 inconclusive; updated ")
    depth, success, lag, bans = rows[1:]
    assert depth == {"criterion": 'request{name="GET /api/v3/depth"} p(95)<200', "value": "123.5 ms",
                     "threshold": "< 200 ms", "samples": "812", "status": "✔ PASS", "gate": "✔ PASS", "note": ""}
    assert (success["value"], success["threshold"], success["status"]) == ("99.81 %", "> 99.90 %", "✘ FAIL")
    assert success["note"] == "aborts the run on fail"
    assert (lag["value"], lag["samples"], lag["status"], lag["gate"]) == ("—", "0", "? INCONCLUSIVE", "✔ PASS")
    assert lag["note"] == "no samples yet · default criterion"
    assert (bans["value"], bans["threshold"]) == ("0", "== 0")


def test_rows_hold_only_strings_for_every_column():
    # The web UI camel-cases row objects recursively and fails on null, so no cell may be None.
    keys = [k for k, _ in webui.COLUMNS]
    for snapshot in (SNAPSHOT, {"verdict": "pending", "criteria": []}, {}):
        for row in webui.criteria_rows(snapshot):
            assert list(row) == keys
            assert all(isinstance(v, str) for v in row.values()), row
    for row in webui.error_rows("boom"):
        assert list(row) == keys and all(isinstance(v, str) for v in row.values())


def test_missing_label_falls_back_to_metric_and_expression():
    row = webui.criterion_row({"metric": "pipeline", "expression": "avg<500", "op": "<", "threshold": 500,
                               "unit": "ms", "value": 12, "samples": 3, "verdict": "pass", "gate": "pass"})
    assert row["criterion"] == "pipeline avg<500"


def test_template_args_declare_one_tab_with_matching_table():
    args = webui.tab_template_args()
    assert args["extended_tabs"] == [{"title": "Criteria", "key": "criteria"}]
    [table] = args["extended_tables"]
    assert table["key"] == "criteria"
    assert [c["key"] for c in table["structure"]] == [k for k, _ in webui.COLUMNS]
    # Keys survive the UI's snake→camel conversion unchanged (single lower-case words).
    assert all(c["key"].isalpha() and c["key"].islower() for c in table["structure"])
    assert args["extended_csv_files"][0]["href"] == "./letrade/criteria"   # relative: works under a base path


def test_merge_extended_stats_keeps_other_extensions_and_replaces_ours():
    other = {"key": "content-length", "data": [{"name": "x"}]}
    payload = {"state": "running", "extended_stats": [other, {"key": "criteria", "data": ["stale"]}]}
    merged = webui.merge_extended_stats(payload, [{"criterion": "a"}])
    assert merged["state"] == "running"
    assert merged["extended_stats"] == [other, {"key": "criteria", "data": [{"criterion": "a"}]}]
    assert payload["extended_stats"][1]["data"] == ["stale"]     # input not mutated
    assert webui.merge_extended_stats({}, [])["extended_stats"] == [{"key": "criteria", "data": []}]


def test_json_safe_replaces_non_finite_floats():
    snap = {"value": float("nan"), "xs": [1.5, float("inf")], "nested": {"v": -float("inf"), "ok": 2}}
    safe = webui.json_safe(snap)
    assert safe == {"value": None, "xs": [1.5, None], "nested": {"v": None, "ok": 2}}
    json.dumps(safe, allow_nan=False)
    assert math.isnan(snap["value"])   # input not mutated


def test_install_is_a_noop_without_web_ui():
    class Env:
        web_ui = None

    assert webui.install_criteria_tab(Env(), lambda: {}) is False


def test_importing_the_module_pulls_in_neither_locust_nor_flask():
    code = "import sys, letrade_perf.harness.webui; print(sorted(m for m in ('locust', 'flask', 'gevent') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
