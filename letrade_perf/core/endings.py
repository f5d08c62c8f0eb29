"""How a run ended, its verdict and its exit code: one table for the gate, ``letrade-perf run``
and every report.

An *ending* says why the run stopped; the *verdict* says what that means for the gate; the exit
code is the verdict's, the same in the process and in every file.

=============  =============================================================  ===========  ====
ending         when                                                           verdict      exit
=============  =============================================================  ===========  ====
completed      the profile's stages ran to their end                          pass         0
                                                                              fail         99
                                                                              incomplete   4
criteria       an ``abort_on_fail`` criterion stopped the run                 fail         99
lost_worker    a worker process was lost while the test ran                   incomplete   4
                                                                              (or fail 99, or pass 0 when tolerated)
safety         a safety abort: 418 ban, kill switch, refused production run   aborted      3
operator       Ctrl-C, SIGTERM or the web UI's stop while the test ran        interrupted  105
harness_error  letrade-perf or Locust failed (a crash, a hang)                error        70
config_error   bad input found once the run had started (a port in use)      error        2
=============  =============================================================  ===========  ====

A criterion that failed outranks a shortfall (``fail`` before ``incomplete``): both are in the
report either way. 99 and 105 follow k6's exit codes for failed thresholds and an external
abort; 70 is ``EX_SOFTWARE``. Exit code 1 is never letrade-perf's own: it is what an uncaught
Python error would give, and ``letrade-perf run`` reports a child that exits 1 as a harness error.
"""
from __future__ import annotations

from typing import Final

EXIT_PASS: Final = 0
EXIT_CONFIG: Final = 2
EXIT_SAFETY: Final = 3
EXIT_INCOMPLETE: Final = 4
EXIT_HARNESS: Final = 70
EXIT_FAILED: Final = 99
EXIT_INTERRUPTED: Final = 105

COMPLETED: Final = "completed"
CRITERIA: Final = "criteria"
LOST_WORKER: Final = "lost_worker"
SAFETY: Final = "safety"
OPERATOR: Final = "operator"
HARNESS_ERROR: Final = "harness_error"
CONFIG_ERROR: Final = "config_error"

ENDINGS: Final = (COMPLETED, CRITERIA, LOST_WORKER, SAFETY, OPERATOR, HARNESS_ERROR, CONFIG_ERROR)
VERDICTS: Final = ("pass", "fail", "incomplete", "aborted", "interrupted", "error")

EXIT_CODES: Final = {
    EXIT_PASS: "pass: every criterion passed and the run did what it planned",
    EXIT_CONFIG: "configuration or usage error (profile, arguments, preflight, a port in use)",
    EXIT_SAFETY: "safety abort (418 ban, kill switch) or refused production orders",
    EXIT_INCOMPLETE: "incomplete: the run did not do what it planned (see the shortfalls)",
    EXIT_HARNESS: "harness error: letrade-perf or Locust failed (see the log the message names)",
    EXIT_FAILED: "a criterion failed (or the baseline regressed, or abort_on_fail stopped the run)",
    EXIT_INTERRUPTED: "interrupted by the operator (Ctrl-C, SIGTERM, the web UI's stop)",
}
"""Every exit code of ``letrade-perf run`` and what it means (the README's table)."""

_FIXED: Final = {
    CONFIG_ERROR: ("error", EXIT_CONFIG),
    HARNESS_ERROR: ("error", EXIT_HARNESS),
    SAFETY: ("aborted", EXIT_SAFETY),
    OPERATOR: ("interrupted", EXIT_INTERRUPTED),
    CRITERIA: ("fail", EXIT_FAILED),
}


def judge(ending: str, criteria_failed: bool, shortfalls: int) -> tuple[str, int]:
    """``(verdict, exit code)`` of a run that ended with ``ending``, given whether a criterion
    (or the baseline) failed and how many untolerated shortfalls against the plan it had."""
    if ending not in ENDINGS:
        raise ValueError(f"unknown ending {ending!r}")
    fixed = _FIXED.get(ending)
    if fixed is not None:
        return fixed
    if criteria_failed:
        return "fail", EXIT_FAILED
    if shortfalls:
        return "incomplete", EXIT_INCOMPLETE
    return "pass", EXIT_PASS


def ending_of_code(code: int) -> str | None:
    """The ending an exit code stands for when it can only mean one (None for 0, 4 and 99, which
    several endings share)."""
    for ending, (_verdict, fixed) in _FIXED.items():
        if fixed == code and ending != CRITERIA:
            return ending
    return None
