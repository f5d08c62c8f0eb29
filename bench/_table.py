"""The benchmarks' shared results table: every pair, the spread, failing rows kept, BENCHMARKS.md.

A benchmark measures a baseline (``bare``, ``inline``, ``off`` …) and a candidate (the harness)
side by side, alternating, several times: each alternation is one *pair*. On a shared machine
the pair-to-pair spread is often ±30 %, so a median alone hides what matters. A :class:`Report`
collects the pairs of each row and renders Markdown:

* a summary table — per row the number of pairs, the median of each side, and the per-pair
  ratios candidate ÷ baseline (or differences candidate − baseline, for latencies) as
  ``min / median / max``, plus the target;
* a table of every pair — both values and their ratio (or difference);
* free Markdown blocks (figures that are not pairs, notes).

A row runs inside ``with report.row(...)``: an exception ends that row only — its error is shown
in the table, the pairs measured before it are kept — and the next row runs. The whole block is
printed, and with ``--append`` (see :func:`add_args`) appended to BENCHMARKS.md under a heading
with the UTC date, the machine (CPU model, cores, the process's CPU affinity, load average, Python
and ``platform`` information) and the exact command line.

Usage::

    ap = argparse.ArgumentParser(); _table.add_args(ap); args = ap.parse_args()
    report = _table.Report("Harness users vs bare Locust users", base="bare", cand="harness")
    with report.row("REST `GET /api/v3/depth`", unit="req/s", target="≥ 0.9×") as row:
        for _ in range(3):
            row.pair(bare(), harness())
    return report.finish(args)          # prints; appends with --append; 1 if a row failed

The bench directory is not a package: scripts import this module as ``_table`` (their own
directory is first on ``sys.path`` when run as ``python bench/x.py``).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import statistics
import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")


# -- formatting -----------------------------------------------------------------------------------
def fmt(x: float | None, digits: int | None = None) -> str:
    """A value with thousands separators; decimals by magnitude unless ``digits`` is given."""
    if x is None or x != x:       # None or NaN
        return "—"
    if digits is None:
        a = abs(x)
        digits = 0 if a >= 100 else 1 if a >= 10 else 2
    return f"{x:,.{digits}f}"


def markdown_table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table; ``align`` one letter per column (``l`` left, ``r`` right; default: the
    first column left, the others right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def spread(values: list[float], digits: int = 2, sign: bool = False) -> str:
    """``min / median / max`` of ``values`` (``—`` when empty)."""
    if not values:
        return "—"
    f = f"{{:+,.{digits}f}}" if sign else f"{{:,.{digits}f}}"
    return " / ".join(f.format(v) for v in (min(values), statistics.median(values), max(values)))


# -- rows -----------------------------------------------------------------------------------------
@dataclass
class Row:
    """One workload: its (baseline, candidate) pairs, or the error that ended it."""

    name: str
    """What is measured (Markdown allowed)."""
    unit: str = ""
    """Unit of both sides' values (``req/s``, ``µs/call``, ``ms`` …)."""
    target: str = ""
    """The goal, as text (``≥ 0.9×``, ``≤ +2 ms``); empty when there is none."""
    compare: str = "ratio"
    """``ratio``: candidate ÷ baseline per pair; ``diff``: candidate − baseline (latencies added)."""
    digits: int | None = None
    """Decimals of the values (default: by magnitude)."""
    pairs: list[tuple[float, float]] = field(default_factory=list)
    """(baseline, candidate) per pair, in the order measured."""
    notes: list[str] = field(default_factory=list)
    """Per-pair notes (failed calls …), shown in the pairs table."""
    error: str | None = None
    """``Type: message`` of the exception that ended the row, if one did."""

    def __post_init__(self) -> None:
        if self.compare not in ("ratio", "diff"):
            raise ValueError(f"Row {self.name!r}: compare must be 'ratio' or 'diff', got {self.compare!r}")

    def pair(self, base: float, cand: float, note: str = "") -> float | None:
        """Record one pair; returns its ratio (or difference) and echoes it on stderr as progress."""
        self.pairs.append((float(base), float(cand)))
        self.notes.append(note)
        v = self.value(float(base), float(cand))
        shown = "—" if v is None else (f"{v:+.2f} {self.unit}" if self.compare == "diff" else f"{v:.3f}×")
        print(f"  {self.name}: pair {len(self.pairs)}: {fmt(base, self.digits)} vs {fmt(cand, self.digits)} "
              f"({shown}){' — ' + note if note else ''}", file=sys.stderr, flush=True)
        return v

    def value(self, base: float, cand: float) -> float | None:
        """The pair's ratio or difference (None: a ratio over a zero baseline)."""
        if self.compare == "diff":
            return cand - base
        return cand / base if base else None

    def values(self) -> list[float]:
        """Every pair's ratio (or difference), zero baselines left out."""
        return [v for v in (self.value(b, c) for b, c in self.pairs) if v is not None]

    def show(self, v: float | None) -> str:
        if v is None:
            return "—"
        return f"{v:+,.2f}" + (f" {self.unit}" if self.unit else "") if self.compare == "diff" else f"{v:.2f}×"


class _RowScope:
    """``with report.row(...) as row``: an exception ends only this row (kept, with its error)."""

    def __init__(self, row: Row) -> None:
        self.row = row

    def __enter__(self) -> Row:
        return self.row

    def __exit__(self, et, ev, tb) -> bool:
        if et is None or not issubclass(et, Exception):
            return False                  # KeyboardInterrupt / SystemExit still stop the benchmark
        msg = str(ev).strip().splitlines()
        self.row.error = f"{et.__name__}: {msg[0] if msg else ''}"[:300]
        print(f"row {self.row.name!r} failed after {len(self.row.pairs)} pair(s):", file=sys.stderr)
        traceback.print_exception(et, ev, tb, file=sys.stderr)
        return True


# -- the report -----------------------------------------------------------------------------------
class Report:
    """The rows and blocks of one benchmark invocation, rendered as Markdown."""

    def __init__(self, title: str, base: str = "bare", cand: str = "harness", intro: str = "") -> None:
        self.title, self.base, self.cand, self.intro = title, base, cand, intro
        self.rows: list[Row] = []
        self.blocks: list[str] = []
        self.started = _dt.datetime.now(_dt.timezone.utc)
        self.machine = machine()          # at the start: the load average before the benchmark's own load

    def row(self, name: str, unit: str = "", target: str = "", compare: str = "ratio",
            digits: int | None = None) -> _RowScope:
        """A new row, used as a context manager (see the module docstring)."""
        r = Row(name, unit, target, compare, digits)
        self.rows.append(r)
        return _RowScope(r)

    def run_row(self, name: str, fn: Callable[[Row], None], **kw) -> Row:
        """``fn(row)`` inside :meth:`row` — for rows written as functions."""
        with self.row(name, **kw) as r:
            fn(r)
        return r

    def text(self, markdown: str) -> None:
        """A free Markdown block after the tables (figures that are not pairs, notes)."""
        self.blocks.append(markdown.strip("\n"))

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.error]

    # rendering
    def summary(self) -> str:
        """Per row: pairs, the median of each side, per-pair ratio (difference) min / median / max, target."""
        if not self.rows:
            return ""
        cmp = "ratio" if all(r.compare == "ratio" for r in self.rows) else "ratio or difference"
        head = ["workload", "unit", "pairs", f"{self.base} (median)", f"{self.cand} (median)",
                f"{self.cand} vs {self.base}: {cmp} min / median / max", "target"]
        out = []
        for r in self.rows:
            b = statistics.median(p[0] for p in r.pairs) if r.pairs else None
            c = statistics.median(p[1] for p in r.pairs) if r.pairs else None
            vals = r.values()
            sp = spread(vals, sign=r.compare == "diff")
            if r.compare == "diff" and vals and r.unit:
                sp += f" {r.unit}"
            elif vals:
                sp = sp.replace(" / ", "× / ") + "×"
            if r.error:
                sp = (sp + "; " if vals else "") + f"**row failed**: {r.error}"
            out.append([r.name, r.unit, str(len(r.pairs)), fmt(b, r.digits), fmt(c, r.digits), sp, r.target or "—"])
        return markdown_table(head, out, "llrrrrr")

    def pairs_table(self) -> str:
        """Every pair of every row, in the order measured."""
        out = []
        for r in self.rows:
            for i, ((b, c), note) in enumerate(zip(r.pairs, r.notes), 1):
                out.append([r.name, str(i), fmt(b, r.digits), fmt(c, r.digits), r.show(r.value(b, c)), note])
            if r.error:
                out.append([r.name, str(len(r.pairs) + 1), "—", "—", "—", f"failed: {r.error}"])
        if not out:
            return ""
        return markdown_table(["workload", "pair", self.base, self.cand, f"{self.cand} vs {self.base}", "note"],
                              out, "lrrrrl")

    def markdown(self, note: str = "", header: bool = True) -> str:
        """The whole block: heading with date, machine and command (``header``), ``note``, the
        intro, the summary, every pair, the free blocks."""
        parts = [machine_header(self.title, self.started, self.machine)] if header else [f"### {self.title}"]
        if note:
            parts.append(note.strip())
        if self.intro:
            parts.append(self.intro.strip())
        if self.rows:
            parts.append(self.summary())
            parts.append("Every pair, in the order measured:")
            parts.append(self.pairs_table())
        parts += self.blocks
        return "\n\n".join(p for p in parts if p) + "\n"

    def finish(self, args: argparse.Namespace | None = None) -> int:
        """Print the block; append it to BENCHMARKS.md with ``--append``. Returns the exit code:
        1 when a row failed (the others are printed all the same), else 0."""
        note = getattr(args, "note", "") or ""
        text = self.markdown(note)
        print("\n" + text, flush=True)
        dest = getattr(args, "append", None)
        if dest:
            append(text, dest)
            print(f"appended to {dest}", file=sys.stderr)
        if self.failed:
            print(f"{len(self.failed)} row(s) failed: " + ", ".join(r.name for r in self.failed), file=sys.stderr)
            return 1
        return 0


# -- machine, command line, BENCHMARKS.md ---------------------------------------------------------
def rss_mb(pid: int) -> float | None:
    """Process ``pid``'s resident set size in MB (``VmRSS`` of ``/proc/PID/status``); None when gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line: CPU model, cores, this process's CPU affinity, load average, Python, platform."""
    cores = os.cpu_count() or 0
    parts = [f"{cpu_model()}, {cores} cores"]
    if hasattr(os, "sched_getaffinity"):
        aff = sorted(os.sched_getaffinity(0))
        if len(aff) != cores:
            parts.append("this process pinned to core" + ("s " if len(aff) > 1 else " ") + ",".join(map(str, aff)))
    try:
        parts.append("load average {:.2f} / {:.2f} / {:.2f} at the start".format(*os.getloadavg()))
    except OSError:
        pass
    parts.append(f"{platform.python_implementation()} {platform.python_version()}")
    parts.append(platform.platform())
    return "; ".join(parts)


def command_line() -> str:
    """The exact command line this process was started with (the interpreter as typed, the script,
    every argument), shell-quoted; paths inside the repository relative to it (``.venv/bin/python``),
    so a table reads the same on every checkout."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    return shlex.join(a[len(root):] if a.startswith(root) else a for a in argv)


def machine_header(title: str, when: _dt.datetime | None = None, machine_line: str | None = None) -> str:
    """``## title — YYYY-MM-DD HH:MM UTC`` plus the machine (:func:`machine` unless given) and the
    command line."""
    when = when or _dt.datetime.now(_dt.timezone.utc)
    return (f"## {title} — {when:%Y-%m-%d %H:%M} UTC\n\n"
            f"- machine: {machine_line or machine()}\n"
            f"- command: `{command_line()}`")


def append(text: str, path: str = BENCHMARKS_MD) -> None:
    """Append ``text`` to ``path`` after one blank line (the history above is kept as it is)."""
    lead = ""
    size = os.path.getsize(path) if os.path.exists(path) else 0
    if size:
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 2))
            tail = fh.read()
        lead = "" if tail.endswith(b"\n\n") else "\n" if tail.endswith(b"\n") else "\n\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(lead + text.rstrip("\n") + "\n")


def add_args(ap: argparse.ArgumentParser) -> None:
    """``--append [FILE]`` (default BENCHMARKS.md) and ``--note TEXT`` (shown above the table)."""
    ap.add_argument("--append", nargs="?", const=BENCHMARKS_MD, default=None, metavar="FILE",
                    help="append the printed Markdown block to FILE (default: BENCHMARKS.md at the repository root)")
    ap.add_argument("--note", default="", help="a sentence shown above the table (e.g. that the machine was busy)")
