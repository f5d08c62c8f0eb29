"""What a person reads on the console: the live progress line, the final verdict block, colour.

Pure formatting (no Locust, no I/O): the Locust process's gate builds a progress *snapshot* dict
and prints :func:`progress_line` at most once per :class:`ProgressThrottle` period; ``letrade-perf
run`` prints :func:`verdict_block` from the written ``summary.json`` after Locust has exited, so
the verdict is the console's last word. Plain ``locust -f`` keeps the gate's own final print.

Colour (:func:`use_colour`) follows CPython's own rules: ``NO_COLOR`` (https://no-color.org, any
non-empty value) turns it off and wins; else a non-empty ``FORCE_COLOR`` turns it on even without a
terminal; else colour only on a TTY whose ``TERM`` is not ``dumb``.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Mapping

from .fmt import value as fmt_value

PROGRESS_EVERY_ENV = "LETRADE_PROGRESS_EVERY_S"
"""Seconds between two progress lines (default :data:`DEFAULT_PROGRESS_EVERY_S`; ``0`` turns them off)."""
DEFAULT_PROGRESS_EVERY_S = 10.0

GREEN, RED, AMBER, BOLD, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[1m", "\x1b[0m"
_VERDICT_COLOUR = {"pass": GREEN, "fail": RED, "error": RED, "incomplete": AMBER, "aborted": AMBER,
                   "interrupted": AMBER}


def use_colour(stream: Any, environ: Mapping[str, str]) -> bool:
    """Whether text written to ``stream`` may carry ANSI colours (see the module docstring)."""
    if environ.get("NO_COLOR"):
        return False
    force = environ.get("FORCE_COLOR", "")
    if force and force.lower() not in ("0", "false", "no"):
        return True
    if environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):      # a closed or odd stream
        return False


def paint_verdict(text: str, verdict: str | None, colour: bool) -> str:
    """``text`` in the verdict's colour (PASS green, FAIL/ERROR red, INCOMPLETE/ABORTED/INTERRUPTED
    amber) when ``colour``; unchanged otherwise or for an unknown verdict."""
    code = _VERDICT_COLOUR.get(str(verdict or "").lower())
    if not colour or code is None:
        return text
    return f"{BOLD}{code}{text}{RESET}"


def progress_every_s(environ: Mapping[str, str]) -> float:
    """The progress period from ``LETRADE_PROGRESS_EVERY_S`` (default 10 s; 0 or less: off).
    A value that is not a number keeps the default (the run must not fail for its console)."""
    raw = (environ.get(PROGRESS_EVERY_ENV) or "").strip()
    if not raw:
        return DEFAULT_PROGRESS_EVERY_S
    try:
        every = float(raw)
    except ValueError:
        return DEFAULT_PROGRESS_EVERY_S
    return every if every == every else DEFAULT_PROGRESS_EVERY_S     # NaN


def clock_text(seconds: float) -> str:
    """``75`` → ``1:15``; ``3725`` → ``1:02:05`` (whole seconds, never negative)."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(snap: Mapping[str, Any], now: float) -> str:
    """One progress line from a snapshot taken by the gate, at wall-clock ``now``.

    ``snap`` keys: ``started_at`` (epoch s of the test start), ``planned_s`` (planned duration),
    ``users`` / ``users_planned`` (running now / the stages' plan now), ``rps`` (current requests
    per second), ``requests`` / ``failures`` (so far), ``passing`` / ``failing`` / ``pending``
    (criteria counts; pending = not judged yet or inconclusive), optional ``failing_labels``
    (``"label = value"`` strings)."""
    elapsed = max(0.0, now - float(snap.get("started_at") or now))
    planned = float(snap.get("planned_s") or 0.0)
    parts = [f"progress {clock_text(elapsed)}/{clock_text(planned)}"]
    if planned > 0:
        left = planned - elapsed
        parts[0] += f" ({min(elapsed / planned, 1.0):.0%})"
        parts[0] += f", ETA {clock_text(left)}" if left >= 0.5 else ", ending"
    parts.append(f"users {int(snap.get('users') or 0)}/{int(snap.get('users_planned') or 0)}")
    requests, failures = int(snap.get("requests") or 0), int(snap.get("failures") or 0)
    rate = f"{float(snap.get('rps') or 0.0):.1f} req/s, {failures} failure{'' if failures == 1 else 's'}"
    if failures and requests:
        rate += f" ({failures / requests:.2%})"
    parts.append(rate)
    parts.append(f"criteria {int(snap.get('passing') or 0)} passing, {int(snap.get('failing') or 0)} failing, "
                 f"{int(snap.get('pending') or 0)} pending")
    line = " | ".join(parts)
    labels = list(snap.get("failing_labels") or [])
    if labels:
        line += " | FAIL " + "; ".join(labels[:3]) + (f"; +{len(labels) - 3} more" if len(labels) > 3 else "")
    return line


class ProgressThrottle:
    """At most one progress line per ``every_s`` seconds of ``clock`` (the first is due at once);
    ``every_s <= 0`` never is."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        """True (and the period restarts) when a line may be printed now."""
        if self.every_s <= 0:
            return False
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            return False
        self._last = now
        return True


def planned_vs_achieved_lines(achieved: Mapping[str, Any]) -> list[str]:
    """The "planned vs achieved" lines of a summary's ``achieved`` section (tolerated shortfalls
    included; the untolerated ones are the verdict block's ``shortfall:`` lines)."""
    plan, got = achieved.get("planned") or {}, achieved.get("achieved") or {}
    out = [f"planned vs achieved: {got.get('duration_s', 0):g} of {plan.get('duration_s', 0):g} s, "
           f"peak {got.get('peak_users', 0)} of {plan.get('peak_users', 0)} users, "
           f"{got.get('user_seconds', 0):g} of {got.get('planned_user_seconds', 0):g} user-seconds"
           + (f", paced {got['paced_fraction']:.1%} of the users' time" if got.get("paced_fraction") is not None else "")
           + (f", {got.get('user_errors')} user error(s)" if got.get("user_errors") else "")
           + "".join(f", {kind} {it.get('started', 0)} of {it.get('planned', 0)} iterations at "
                     f"{it.get('rate_per_s', 0):g}/s ({it.get('dropped', 0)} dropped)"
                     for kind, it in sorted((got.get("iterations") or {}).items()))]
    for sf in achieved.get("shortfalls") or []:
        if sf.get("tolerated"):
            out.append(f"  shortfall tolerated by the profile: {sf['kind']}: {sf['message']}")
    return out


def _criterion_detail(c: Mapping[str, Any]) -> str:
    unit = c.get("unit", "")
    text = f"{c.get('label', '?')} = {fmt_value(c.get('value'), unit)}"
    if c.get("threshold") is not None and c.get("op"):
        text += f" (threshold {c['op']} {fmt_value(c['threshold'], unit)})"
    if c.get("reason"):
        text += f" — {c['reason']}"
    return text


def criteria_table(criteria: Iterable[Mapping[str, Any]]) -> str:
    """The summary's criteria as a console table: verdict, criterion, value, threshold, samples, note."""
    rows = [("verdict", "criterion", "value", "threshold", "samples", "note")]
    for c in criteria:
        unit = c.get("unit", "")
        threshold = f"{c['op']} {fmt_value(c['threshold'], unit)}" if c.get("threshold") is not None else ""
        note = c.get("reason") or ""
        if c.get("verdict") == "inconclusive" and c.get("gate") == "pass":
            note += " (allowed)"
        rows.append((str(c.get("verdict", "?")).upper(), str(c.get("label", "?")), fmt_value(c.get("value"), unit),
                     threshold, str(c.get("samples", "")), note.strip()))
    if len(rows) == 1:
        return "(no criteria)"
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, r in enumerate(rows):
        cells = [r[j].rjust(widths[j]) if j in (2, 4) else r[j].ljust(widths[j]) for j in range(5)]
        lines.append(("  ".join(cells) + ("  " + r[5] if r[5] else "")).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict_block(summary: Mapping[str, Any] | None, code: int, reports_dir: str, *,
                  report_files: Iterable[str] = (), colour: bool = False) -> str:
    """The run's last lines: title, verdict with ending and exit code, planned vs achieved, the
    failing criteria, shortfalls and regressions, where the reports are."""
    files = ", ".join(report_files)
    where = f"reports: {reports_dir}" + (f" ({files})" if files else "")
    if not summary:
        return "\n".join([paint_verdict(f"verdict: ERROR — no summary.json was written — exit code {code}", "error",
                                        colour), where])
    run = summary.get("run") or {}
    verdict = str(summary.get("verdict") or "?")
    criteria = list(summary.get("criteria") or [])
    failed = [c for c in criteria if c.get("gate") == "fail"]
    regressions = list((summary.get("baseline") or {}).get("regressions") or [])
    reason = run.get("ending_reason")
    head = f"verdict: {verdict.upper()}"
    rest = f" — ending {summary.get('ending') or '?'}" + (f" ({reason})" if reason else "")
    if criteria:
        rest += f" — {len(criteria) - len(failed)} of {len(criteria)} criteria passed"
    if regressions:
        rest += f", {len(regressions)} baseline regression(s)"
    rest += f" — exit code {code}"
    lines = [f"letrade-perf {run.get('profile', '?')} on {run.get('env', '?')}, run {run.get('run_id', '?')}",
             paint_verdict(head, verdict, colour) + rest]
    achieved = summary.get("achieved")
    if achieved:
        lines += planned_vs_achieved_lines(achieved)
    for c in failed:
        lines.append(f"  FAILED: {_criterion_detail(c)}")
    baseline = summary.get("baseline")
    if baseline:
        lines.append(f"baseline {baseline.get('path', '')}: {len(regressions)} regression(s) beyond "
                     f"{float(baseline.get('tolerance') or 0) * 100:g} %")
    for reg in regressions[:20]:
        lines.append(f"  REGRESSION {reg.get('kind')} {reg.get('key')} {reg.get('figure')}: "
                     f"{reg.get('baseline')} → {reg.get('current')}")
    for sf in (achieved or {}).get("shortfalls") or []:
        if not sf.get("tolerated"):
            lines.append(f"  shortfall: {sf['kind']}: {sf['message']}")
    lines.append(where)
    return "\n".join(lines)
