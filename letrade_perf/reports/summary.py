"""Writing a run's reports (``summary.json``, ``junit.xml``, ``summary.md``, ``summary.html``) and
reading a summary back."""
from __future__ import annotations

import json
import os
import tempfile

from .html import render_html
from .junit import render_junit
from .markdown import render_markdown
from .schema import SCHEMA_ID, SCHEMA_VERSION, validate_summary

SUMMARY_FILE = "summary.json"
JUNIT_FILE = "junit.xml"
MARKDOWN_FILE = "summary.md"
HTML_FILE = "summary.html"


def _write_atomic(path: str, text: str) -> None:
    # A CI step or a Grafana annotation may read the file while the run ends: it must see the old
    # file or the new one, never half of one. The temp file lives in the same directory so
    # os.replace is a rename on one file system.
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)            # mkstemp makes 0600; reports are meant to be read by CI
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_reports(summary: dict, reports_dir: str | os.PathLike) -> dict[str, str]:
    """Validate ``summary`` and write the four reports into ``reports_dir`` (created if needed).

    Every file is written atomically (temp file + ``os.replace``). Nothing is written when the
    summary is invalid (:class:`ValueError` naming the JSON path). Returns
    ``{"summary.json": path, "junit.xml": path, "summary.md": path, "summary.html": path}``.
    """
    validate_summary(summary)
    reports_dir = os.fspath(reports_dir)
    # Render everything before writing anything, so a rendering bug cannot leave a mixed set.
    texts = {SUMMARY_FILE: json.dumps(summary, indent=2, allow_nan=False, ensure_ascii=False) + "\n",
             JUNIT_FILE: render_junit(summary),
             MARKDOWN_FILE: render_markdown(summary),
             HTML_FILE: render_html(summary)}
    os.makedirs(reports_dir, exist_ok=True)
    written = {}
    for name, text in texts.items():
        path = os.path.join(reports_dir, name)
        _write_atomic(path, text)
        written[name] = path
    return written


def load_summary(path: str | os.PathLike) -> dict:
    """Read and validate a summary: ``path`` is a ``summary.json`` or a report directory holding one.

    Raises :class:`ValueError` naming the file when it is missing, not JSON, not a letrade-perf
    summary, of another schema version, or invalid (with the JSON path of the problem).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, SUMMARY_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a JSON file (not UTF-8 text)") from None
    try:
        summary = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(summary, dict) or summary.get("schema") != SCHEMA_ID:
        raise ValueError(f"{path}: not a letrade-perf summary (no \"schema\": \"{SCHEMA_ID}\")")
    if summary.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: summary schema_version {summary.get('schema_version')!r} is not supported "
                         f"(this letrade-perf reads version {SCHEMA_VERSION})")
    try:
        validate_summary(summary)
    except ValueError as e:
        raise ValueError(f"{path}: invalid {e}") from None
    return summary


def _iso(ts: float) -> str:
    import datetime as _dt
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat().replace("+00:00", "Z")


def minimal_summary(*, run_id: str, profile: str, profile_source: str = "", description: str = "", env: str,
                    host: str | None, started: float, ended: float, workers: int, ending: str, reason: str,
                    log_path: str | None = None) -> dict:
    """The summary of a run that ended before its gate could write one (the Locust process could
    not start, crashed or hung): no measurement, the ending, its reason and its exit code."""
    from ..core.endings import judge
    from ..core.runmeta import git_commit, versions
    from ..metrics.histogram import RELATIVE_ERROR

    verdict, code = judge(ending, False, 0)
    env_name = env if env in ("sim", "testnet", "production") else "sim"
    return {
        "schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION,
        "run": {"run_id": run_id, "profile": profile or "unknown", "profile_source": profile_source,
                "description": description, "env": env_name, "host": host, "target": None,
                "started_at": _iso(started), "ended_at": _iso(max(started, ended)),
                "duration_s": round(max(0.0, ended - started), 3), "workers": workers, "git_commit": git_commit(),
                "versions": versions(), "aborted": None, "exit_code": code, "ending_reason": reason,
                "log": log_path},
        "verdict": verdict, "ending": ending, "achieved": None,
        "histogram_relative_error": RELATIVE_ERROR, "endpoints": [], "streams": [], "criteria": [], "baseline": None,
        "orders": {}, "pacing": None, "ws": None, "sink": None,
    }


def with_ending(summary: dict, *, ending: str, reason: str, log_path: str | None = None) -> dict:
    """``summary`` (a copy) with another ending, its verdict and exit code: what the process that
    started Locust knows better (a crash after the reports, a hang, a stop the gate did not see)."""
    from ..core.endings import judge

    out = json.loads(json.dumps(summary))
    verdict, code = judge(ending, False, 0)
    out["ending"] = ending
    out["verdict"] = verdict
    out["run"]["exit_code"] = code
    out["run"]["ending_reason"] = reason
    if log_path:
        out["run"]["log"] = log_path
    return out
