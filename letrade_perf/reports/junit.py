"""JUnit XML (the Ant/Jenkins dialect) from a run summary, for CI test reporters.

One ``<testsuite name="letrade-perf <profile>">`` holds:

* one testcase per criterion (``classname="letrade-perf.<profile>.criteria"``, ``name=<label>``):
  a failing gate is a ``<failure type="criterion">``; an inconclusive criterion that fails the
  gate a ``<failure type="inconclusive">``; an inconclusive one that is allowed ``<skipped>``;
* one testcase ``baseline`` (``….baseline``) when the summary has a baseline comparison, failing
  with every regression listed;
* one testcase ``plan`` (``….plan``): planned vs achieved, failing (``type="incomplete"``)
  with every shortfall the profile does not tolerate;
* one testcase ``run`` (``….run``) that passes when the run completed, or carries an ``<error>``
  with the ending (``aborted`` for safety, ``interrupted``, ``error``) and its reason — always
  present so CI trend views see a stable set of test names.

The suite's properties carry the ``verdict``, the ``ending`` and the ``exit_code``: the same as
``summary.json`` and the process.

The suite's ``<system-out>`` carries the endpoint and stream tables as text. Attribute and text
values are stripped of characters XML 1.0 cannot carry (a stray control character in an error
message would otherwise make the whole file unreadable to the CI reporter).
"""
from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from . import fmt

_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def _timestamp(iso: str | None) -> str:
    """The Ant timestamp: ``yyyy-mm-ddThh:mm:ss`` in UTC, no zone (that is what its schema allows)."""
    try:
        t = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        t = datetime.now(timezone.utc)
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: _clean(v) for k, v in attrs.items() if v is not None})
    if text:
        el.text = _clean(text)
    return el


def _criterion_details(c: dict) -> str:
    tags = ", ".join(f'{k}="{v}"' for k, v in sorted((c.get("tags") or {}).items())) or "none"
    return "\n".join([
        f"metric: {c['metric']}  tags: {tags}",
        f"expression: {c['expression']}  aggregation: {c['aggregation']}",
        f"value: {fmt.value(c.get('value'), c.get('unit', ''))}  threshold: "
        f"{fmt.threshold(c['op'], c['threshold'], c.get('unit', ''))}  samples: {c.get('samples')}",
        f"verdict: {c['verdict']}  gate: {c['gate']}  reason: {c.get('reason') or '-'}",
        f"source: {c.get('source')}  abort_on_fail: {str(c.get('abort_on_fail')).lower()}",
    ])


def _add_criterion(suite: ET.Element, classname: str, c: dict, counts: dict) -> None:
    case = _sub(suite, "testcase", classname=classname, name=c["label"], time="0")
    unit = c.get("unit", "")
    shown = f"value {fmt.value(c.get('value'), unit)}, threshold {fmt.threshold(c['op'], c['threshold'], unit)}"
    if c.get("reason"):
        shown += f": {c['reason']}"
    if c["gate"] == "fail":
        kind = "inconclusive" if c["verdict"] == "inconclusive" else "criterion"
        _sub(case, "failure", _criterion_details(c), message=f"{kind}: {shown}", type=kind)
        counts["failures"] += 1
    elif c["verdict"] == "inconclusive":
        _sub(case, "skipped", message=f"inconclusive (allowed): {shown}")
        counts["skipped"] += 1


def _add_baseline(suite: ET.Element, classname: str, baseline: dict, counts: dict) -> None:
    case = _sub(suite, "testcase", classname=classname, name="baseline", time="0")
    regressions = baseline.get("regressions") or []
    if baseline.get("verdict") == "fail" or regressions:
        lines = [f"{r['kind']} {r['key']} {r['figure']}: {fmt.regression_figure(r['kind'], r['figure'], r['baseline'])}"
                 f" -> {fmt.regression_figure(r['kind'], r['figure'], r['current'])} ({fmt.change(r['change'])},"
                 f" limit {r['limit']})" for r in regressions]
        lines.append(f"baseline: {baseline.get('path')}  tolerance: {fmt.percent(baseline.get('tolerance'))}  "
                     f"figures checked: {baseline.get('checked')}")
        _sub(case, "failure", "\n".join(lines), type="baseline",
             message=f"{len(regressions)} regression(s) against the baseline in {baseline.get('checked')} figures")
        counts["failures"] += 1


def _add_plan(suite: ET.Element, classname: str, achieved: dict, counts: dict) -> None:
    case = _sub(suite, "testcase", classname=classname, name="plan", time="0")
    missing = [s for s in achieved.get("shortfalls") or [] if not s.get("tolerated")]
    if missing:
        lines = [f"{s['kind']}: {s['message']}" for s in missing]
        plan, got = achieved.get("planned") or {}, achieved.get("achieved") or {}
        lines.append(f"planned {plan.get('duration_s')} s, peak {plan.get('peak_users')} users; achieved "
                     f"{got.get('duration_s')} s, peak {got.get('peak_users')} users")
        _sub(case, "failure", "\n".join(lines), type="incomplete",
             message=f"incomplete: {len(missing)} shortfall(s) against the plan: "
                     + "; ".join(s["message"] for s in missing)[:500])
        counts["failures"] += 1


def _tables(summary: dict) -> str:
    out = []
    if summary.get("endpoints"):
        out.append("endpoints (ms): type name count failures error_rate rps avg p50 p95 p99")
        out += [f"  {e['type']} {e['name']}  {e['count']} {e['failures']} {fmt.percent(e['error_rate'])} "
                f"{fmt.number(e['rps'])}/s  {fmt.ms(e['avg_ms'])} {fmt.ms(e['p50_ms'])} {fmt.ms(e['p95_ms'])} "
                f"{fmt.ms(e['p99_ms'])}" for e in summary["endpoints"]]
    if summary.get("streams"):
        out.append("ws lag (ms): stream count avg p50 p95 p99 ±uncertainty")
        out += [f"  {s['stream']}  {s['count']}  {fmt.ms(s['avg_ms'])} {fmt.ms(s['p50_ms'])} {fmt.ms(s['p95_ms'])} "
                f"{fmt.ms(s['p99_ms'])} ±{fmt.ms(s['uncertainty_ms'])}" for s in summary["streams"]]
    return "\n".join(out)


def render_junit(summary: dict, hostname: str | None = None) -> str:
    """The JUnit XML document (a string with an XML declaration) for ``summary``.

    ``hostname`` defaults to this machine's name (JUnit's "host the tests ran on"; the target
    host is in the ``host`` property).
    """
    run = summary["run"]
    profile = run["profile"]
    prefix = f"letrade-perf.{profile}"
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.Element("testsuites", {"name": "letrade-perf"})
    suite = _sub(root, "testsuite", name=f"letrade-perf {profile}", id="0", package="letrade-perf",
                 timestamp=_timestamp(run.get("started_at")), hostname=hostname or socket.gethostname() or "localhost",
                 time=f"{float(run.get('duration_s') or 0):.3f}")
    props = _sub(suite, "properties")
    for name, v in (("run_id", run.get("run_id")), ("profile", profile), ("env", run.get("env")),
                    ("host", run.get("host")), ("git_commit", run.get("git_commit")),
                    ("verdict", summary.get("verdict")), ("ending", summary.get("ending")),
                    ("ending_reason", run.get("ending_reason")), ("exit_code", run.get("exit_code")),
                    ("started_at", run.get("started_at")), ("ended_at", run.get("ended_at")),
                    ("letrade_perf_version", (run.get("versions") or {}).get("letrade_perf")),
                    ("locust_version", (run.get("versions") or {}).get("locust"))):
        _sub(props, "property", name=name, value="" if v is None else str(v))
    for c in summary.get("criteria") or []:
        _add_criterion(suite, f"{prefix}.criteria", c, counts)
    if summary.get("baseline"):
        _add_baseline(suite, f"{prefix}.baseline", summary["baseline"], counts)
    achieved = summary.get("achieved")
    if achieved:
        _add_plan(suite, f"{prefix}.plan", achieved, counts)
    case = _sub(suite, "testcase", classname=f"{prefix}.run", name="run",
                time=f"{float(run.get('duration_s') or 0):.3f}")
    verdict = summary.get("verdict")
    if verdict in ("aborted", "interrupted", "error") or run.get("aborted"):
        kind = verdict if verdict in ("interrupted", "error") else "aborted"
        reason = run.get("ending_reason") or run.get("aborted") or kind
        ending = summary.get("ending") or kind
        _sub(case, "error", f"the run ended: {ending}: {reason}\nverdict: {verdict}\nexit code: {run.get('exit_code')}"
             + (f"\nlog: {run['log']}" if run.get("log") else ""),
             message=f"{kind} ({ending}): {reason}", type=kind)
        counts["errors"] += 1
    counts["tests"] = len(suite.findall("testcase"))
    tables = _tables(summary)
    if tables:
        _sub(suite, "system-out", tables)
    for el in (root, suite):
        for k in ("tests", "failures", "errors", "skipped"):
            el.set(k, str(counts[k]))
    root.set("time", suite.attrib["time"])   # set on the suite above
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
