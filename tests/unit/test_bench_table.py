"""bench/_table.py: every pair printed, the spread, a failing row kept, the append's heading."""
from __future__ import annotations

import argparse
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "bench"))

import _table  # noqa: E402


def _report() -> _table.Report:
    rep = _table.Report("Unit bench", base="bare", cand="harness")
    with rep.row("REST depth", unit="req/s", target="≥ 0.9×") as row:
        for b, h in [(1000.0, 800.0), (1000.0, 900.0), (500.0, 600.0)]:
            row.pair(b, h)
    with rep.row("WS", unit="msg/s") as row:
        row.pair(100.0, 100.0)
        raise RuntimeError("locust exited 99\nmore detail")
    with rep.row("lag p99", unit="ms", compare="diff", target="≤ +2 ms") as row:
        row.pair(8.0, 9.5)
        row.pair(7.0, 7.5)
    return rep


def test_every_pair_is_printed_with_its_ratio():
    text = _report().markdown()
    pairs = [line for line in text.splitlines() if line.startswith("| REST depth | ")]
    # three pair lines plus the summary line
    assert len(pairs) == 4
    for value in ("0.80×", "0.90×", "1.20×"):
        assert any(value in line for line in pairs), value
    assert "| lag p99 | 1 | 8.00 | 9.50 | +1.50 ms |" in text
    assert "| lag p99 | 2 | 7.00 | 7.50 | +0.50 ms |" in text


def test_spread_is_min_median_max_of_the_pair_ratios():
    rep = _report()
    rest = rep.rows[0]
    assert rest.values() == pytest.approx([0.8, 0.9, 1.2])
    summary = rep.summary()
    line = next(x for x in summary.splitlines() if x.startswith("| REST depth"))
    assert "0.80× / 0.90× / 1.20×" in line
    assert "| 3 | 1,000 | 800 |" in line              # pairs, median bare, median harness
    lag = next(x for x in summary.splitlines() if x.startswith("| lag p99"))
    assert "+0.50 / +1.00 / +1.50 ms" in lag
    assert _table.spread([]) == "—"


def test_a_failing_row_is_kept_and_the_others_print():
    rep = _report()
    assert [r.name for r in rep.failed] == ["WS"]
    ws = rep.rows[1]
    assert ws.pairs == [(100.0, 100.0)]                 # the pair measured before the error is kept
    assert ws.error == "RuntimeError: locust exited 99"
    text = rep.markdown()
    assert "**row failed**: RuntimeError: locust exited 99" in text
    assert "failed: RuntimeError: locust exited 99" in text     # the pairs table shows it too
    assert "| lag p99 |" in text                                # the row after it ran


def test_keyboard_interrupt_is_not_swallowed():
    rep = _table.Report("x")
    with pytest.raises(KeyboardInterrupt):
        with rep.row("r"):
            raise KeyboardInterrupt


def test_append_writes_date_machine_and_command(tmp_path, capsys, monkeypatch):
    dest = tmp_path / "BENCHMARKS.md"
    dest.write_text("# Benchmarks\n\nold history\n")
    monkeypatch.setattr(sys, "orig_argv", ["python", "bench/x.py", "--pairs", "7", "--note", "a b"], raising=False)
    ap = argparse.ArgumentParser()
    _table.add_args(ap)
    args = ap.parse_args(["--append", str(dest), "--note", "The machine was busy."])
    rc = _report().finish(args)
    assert rc == 1                                      # a row failed: printed, appended, exit 1
    text = dest.read_text()
    assert text.startswith("# Benchmarks\n\nold history\n\n## Unit bench — ")
    head = text.split("## Unit bench — ", 1)[1]
    date = head[:20]
    assert date[4] == "-" and date[7] == "-" and date[16:20] == " UTC"
    assert f"- machine: {_table.cpu_model()}, {os.cpu_count()} cores" in head
    assert "Python" in head and _table.platform.platform() in head
    assert "- command: `python bench/x.py --pairs 7 --note 'a b'`" in head
    assert head.index("The machine was busy.") < head.index("| workload |")
    assert "| REST depth | 3 |" in head
    assert capsys.readouterr().out.strip() in text      # what is printed is what is appended


def test_append_default_is_benchmarks_md():
    ap = argparse.ArgumentParser()
    _table.add_args(ap)
    assert ap.parse_args(["--append"]).append == _table.BENCHMARKS_MD
    assert ap.parse_args([]).append is None


def test_the_command_names_repository_paths_relative_to_it(monkeypatch):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    monkeypatch.setattr(sys, "orig_argv", [os.path.join(root, ".venv", "bin", "python"),
                                           os.path.join(root, "bench", "x.py"), "--note", "a b", "/tmp/out.md"])
    assert _table.command_line() == ".venv/bin/python bench/x.py --note 'a b' /tmp/out.md"
