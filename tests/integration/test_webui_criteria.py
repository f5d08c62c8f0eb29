"""The live Criteria tab of Locust's web UI, seen by a real headless Chromium.

``letrade-perf run --web`` starts the embedded simulator and a real Locust process with its web
UI on 127.0.0.1 (free port, ``--autostart``, bounded by the profile and ``--run-time``). A
real Chromium, driven by Selenium, opens the UI, clicks the "Criteria" tab and reads the table
the React app rendered. This proves, end to end and in the browser an engineer would use:

* the tab is injected through Locust's own extension mechanism and shows up next to the
  built-in tabs;
* it lists every criterion of the profile (labels as the gate names them), each with a value,
  a threshold (operator and number), a sample count and a recognisable status, plus the
  overall verdict row;
* it is live: the figures change while the run goes, without reloading the page (the UI's
  2-second stats polling carries them);
* ``GET /letrade/criteria`` serves the same criteria as JSON over plain HTTP.

A screenshot is left in ``test-artifacts/webui-criteria.png`` (and in pytest's tmp dir).
Locust is only ever run as a subprocess; this module never imports it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from browser import chromium, require_chromium
from letrade_perf.core.procs import stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROFILE = os.path.join(HERE, "profiles", "webui.yaml")
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
SCREENSHOT = "webui-criteria.png"

OVERALL_LABEL = "Overall verdict"
STATUSES = ("✔ PASS", "✘ FAIL", "? INCONCLUSIVE")
OVERALL_STATUSES = STATUSES[:2] + ("… PENDING", "■ ABORTED")


# -- processes -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(cmd: list[str], log_path: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    log = open(log_path, "wb")
    try:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
    finally:
        log.close()   # the child has its own descriptor


def _descendants(pid: int) -> list[int]:
    try:
        import psutil
    except ImportError:
        return []
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def stop_run_tree(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM (``letrade-perf run`` then stops Locust and the simulator), SIGKILL by PID if stuck."""
    if proc.poll() is not None:
        return
    children = _descendants(proc.pid)
    stop_process(proc, timeout)
    for pid in children:   # a clean shutdown leaves none; a stuck one must not outlive the test
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def tail(path: str, n: int = 4000) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-n:]
    except OSError:
        return ""


# -- HTTP ----------------------------------------------------------------------------------------
def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def wait_until_running(base_url: str, proc: subprocess.Popen, log_path: str, timeout: float = 90.0) -> None:
    """Until the web UI answers and the run is spawning or running (then the UI shows the tabs)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run exited early with code {proc.returncode}:\n{tail(log_path)}")
        try:
            last = get_json(base_url + "/stats/requests").get("state")
            if last in ("spawning", "running"):
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the web UI at {base_url} did not reach a running state (last: {last}):\n{tail(log_path)}")


# -- browser -------------------------------------------------------------------------------------
_READ_TABLE = """
const table = document.querySelector('table');
if (!table) return null;
const head = Array.from(table.querySelectorAll('thead th')).map(th => th.innerText.trim());
const rows = Array.from(table.querySelectorAll('tbody tr'))
    .map(tr => Array.from(tr.cells).map(td => td.innerText.trim()));
return {head: head, rows: rows};
"""


def read_table(driver) -> tuple[list[str], list[dict[str, str]]]:
    """The rendered table of the current tab as (column titles, rows keyed by title)."""
    data = driver.execute_script(_READ_TABLE)
    if not data:
        return [], []
    head = data["head"]
    return head, [dict(zip(head, row)) for row in data["rows"]]


def open_criteria_tab(driver, base_url: str, timeout: float = 30.0) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base_url + "/")
    tab = WebDriverWait(driver, timeout).until(
        EC.element_to_be_clickable((By.XPATH, "//button[@role='tab'][normalize-space(.)='Criteria']")))
    tab.click()
    WebDriverWait(driver, timeout).until(
        lambda d: "tab=criteria" in d.current_url and any(r.get("Criterion") == OVERALL_LABEL
                                                          for r in read_table(d)[1]))


def criterion_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r.get("Criterion") != OVERALL_LABEL]


def check_criteria_tab(driver, base_url: str, expected_labels: list[str], screenshot_paths: list[str],
                       change_timeout: float = 30.0) -> dict:
    """Open the tab, check labels/columns/statuses, wait for a live change, take the screenshots.

    Returns what was seen (for the caller's own assertions and messages).
    """
    open_criteria_tab(driver, base_url)
    head, rows = read_table(driver)
    assert head == ["Criterion", "Value", "Threshold", "Samples", "Status", "Gate", "Note"], head
    assert rows[0]["Criterion"] == OVERALL_LABEL, rows
    assert rows[0]["Status"] in OVERALL_STATUSES, rows[0]
    labels = [r["Criterion"] for r in criterion_rows(rows)]
    missing = [label for label in expected_labels if label not in labels]
    assert not missing, f"criteria missing from the tab: {missing}; shown: {labels}"
    for r in criterion_rows(rows):
        assert r["Status"] in STATUSES, r
        assert r["Threshold"][:1] in "<>=", r
        assert r["Value"] == "—" or r["Value"][:1].isdigit() or r["Value"][:1] == "-", r

    # Live: the same page, no reload — a criterion's value or sample count must change.
    first = [(r["Criterion"], r["Value"], r["Samples"]) for r in criterion_rows(rows)]
    deadline = time.monotonic() + change_timeout
    seen = first
    while time.monotonic() < deadline:
        time.sleep(1.0)
        _, now_rows = read_table(driver)
        seen = [(r["Criterion"], r["Value"], r["Samples"]) for r in criterion_rows(now_rows)]
        if seen and seen != first:
            break
    assert seen != first, f"no criterion changed within {change_timeout:.0f} s: {first}"
    time.sleep(0.5)
    for path in screenshot_paths:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        assert driver.save_screenshot(path), path
    head, rows = read_table(driver)
    return {"first": first, "later": seen, "rows": rows}


def profile_labels(path: str) -> list[str]:
    from letrade_perf.config.profile import load_profile

    return [c.label for c in load_profile(path).criteria]


# -- the test ------------------------------------------------------------------------------------
def test_criteria_tab_is_live_in_chromium(tmp_path):
    """A real ``letrade-perf run --web`` shows its profile's criteria, live, on the Criteria tab."""
    require_chromium()
    expected = profile_labels(PROFILE)
    assert expected == ["request avg<200", "request p(95)<500", "ws_lag avg<50", "api_success rate>99%"]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = str(tmp_path / "run.log")
    cmd = [sys.executable, "-m", "letrade_perf", "run", "--profile", PROFILE, "--web",
           "--reports", str(tmp_path / "reports"),
           "--", "--web-port", str(port), "--autostart", "--run-time", "40s"]
    proc = start_process(cmd, log_path)
    try:
        wait_until_running(base_url, proc, log_path)

        # The JSON route lists the profile's criteria with the documented fields.
        try:
            snap = get_json(base_url + "/letrade/criteria")
        except urllib.error.HTTPError as e:
            pytest.fail(f"GET /letrade/criteria answered {e.code}: the plugin must call "
                        f"letrade_perf.harness.webui.install_criteria_tab(environment, gate.snapshot) on init")
        assert snap["verdict"] in ("pass", "fail", "pending", "aborted"), snap
        json_labels = [c["label"] for c in snap["criteria"]]
        assert set(expected) <= set(json_labels), json_labels
        for c in snap["criteria"]:
            assert c["verdict"] in ("pass", "fail", "inconclusive"), c
            assert c["unit"] in ("ms", "ratio", "count", "bps", ""), c
            assert {"value", "samples", "threshold", "op", "gate", "abort_on_fail", "source"} <= set(c), c

        with chromium(str(tmp_path / "chromium-profile")) as driver:
            seen = check_criteria_tab(driver, base_url, json_labels,
                                      [os.path.join(ARTIFACTS, SCREENSHOT), str(tmp_path / SCREENSHOT)])
        shown = [r["Criterion"] for r in criterion_rows(seen["rows"])]
        assert shown == [c["label"] for c in get_json(base_url + "/letrade/criteria")["criteria"]], shown
        assert proc.poll() is None, f"the run ended while the UI was being checked:\n{tail(log_path)}"
    finally:
        stop_run_tree(proc)
