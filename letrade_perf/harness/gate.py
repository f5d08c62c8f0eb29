"""The criteria gate inside a Locust run: recording, live evaluation, abort_on_fail, final verdict.

* Local and worker processes record every measurement with a
  :class:`~letrade_perf.metrics.recorder.MetricsRecorder`. A worker ships each interval's
  snapshot with Locust's worker report (``data["letrade_metrics"]``, every 3 s and once more
  when it quits); the master merges them. A local process merges its own at each evaluation.
* The local (or master) process judges the criteria every ``gate.eval_every_s`` seconds after the
  test starts: a console line, the live state for the web UI's Criteria tab, ``abort_on_fail``
  (after the criterion's ``delay_abort_eval``), and a webhook when a criterion turns to fail.
* At ``quitting`` it merges the last snapshots, judges once more, compares with the baseline,
  prints the table, writes ``summary.json``, ``junit.xml`` and ``summary.md`` and sets
  ``environment.process_exit_code``: 0 every criterion passes, 1 a criterion failed (or a
  baseline regression, or an ``abort_on_fail`` stop), 3 the run aborted for safety.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING

import gevent

from ..criteria.evaluate import FAIL, format_value
from ..criteria.gate import Gate
from ..metrics.recorder import MetricsRecorder, Snapshot

if TYPE_CHECKING:
    from .plugin import HarnessContext, ProcessState

log = logging.getLogger("letrade_perf.criteria")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_SAFETY = 0, 1, 2, 3
WIRE_KEY = "letrade_metrics"


class LocustGate:
    """Wires a :class:`Gate` into one Locust process (see the module docstring).

    ``ctx`` is the process's shared :class:`~letrade_perf.harness.plugin.HarnessContext`;
    ``state`` the plugin's :class:`~letrade_perf.harness.plugin.ProcessState` (the master's worker
    reports, the metrics sink whose counters go into ``summary.json``)."""

    def __init__(self, ctx: HarnessContext, state: ProcessState, *, baseline: dict | None = None,
                 baseline_path: str | None = None, tolerance: float | None = None, notifier=None) -> None:
        self.ctx = ctx
        self.state = state
        self.gate = Gate(ctx.profile)
        self.baseline = baseline
        self.baseline_path = baseline_path
        self.tolerance = ctx.profile.gate.baseline_tolerance if tolerance is None else tolerance
        self.notifier = notifier
        self.recorder: MetricsRecorder | None = None
        self.stopped_by: str | None = None        # the abort_on_fail criterion that stopped the run
        self.summary: dict | None = None
        self.snapshot_listeners: list = []    # called with every drained Snapshot of this process
        self.final_listeners: list = []       # called with the summary dict at the end (local/master)
        self._failing: set[str] = set()
        self.user_errors = 0                  # exceptions users of this process raised (cumulative)
        self._loop = None
        self._final_done = False

    # -- wiring ----------------------------------------------------------------------------------
    def register(self, environment) -> None:
        ctx = self.ctx
        events = environment.events
        if ctx.role != "master":
            self.recorder = MetricsRecorder(gauges=self._gauges)
            self.recorder.listen(events)
            events.user_error.add_listener(self.on_user_error)
        if ctx.role == "worker":
            events.report_to_master.add_listener(self.on_report_to_master)
            events.quitting.add_listener(self._close_recorder)
            return
        if ctx.role == "master":
            events.worker_report.add_listener(self.on_worker_report)
        events.test_start.add_listener(self.on_test_start)
        events.quitting.add_listener(self.on_quitting)
        hook = getattr(events, "letrade_abort", None)
        if hook is not None:
            hook.add_listener(self.on_abort)
        self._loop = gevent.spawn(self._live)

    def _gauges(self) -> dict:
        out = {"user_errors": self.user_errors}
        pacer = self.ctx.pacer
        if pacer is not None:
            st = pacer.stats()
            out.update(r429=st.r429, r418=st.r418)
        return out

    def on_user_error(self, user_instance=None, exception=None, tb=None, **_kw) -> None:
        """Locust's ``user_error``: an exception a user raised out of a task or on_start/on_stop."""
        self.user_errors += 1

    # -- listeners -----------------------------------------------------------------------------
    def on_test_start(self, **_kw) -> None:
        self.gate.start()

    def drain(self) -> Snapshot:
        """The recorder's interval so far, also handed to every snapshot listener (the sink)."""
        recorder = self.recorder
        assert recorder is not None   # called only where the process records (recorder set)
        snap = recorder.drain()
        for listener in self.snapshot_listeners:
            try:
                listener(snap)
            except Exception:
                log.exception("snapshot listener failed")
        return snap

    def on_report_to_master(self, client_id=None, data=None, **_kw) -> None:
        if data is not None and self.recorder is not None:
            data[WIRE_KEY] = self.drain().to_wire()

    def on_worker_report(self, client_id=None, data=None, **_kw) -> None:
        wire = (data or {}).get(WIRE_KEY)
        if wire:
            try:
                self.gate.merge(Snapshot.from_wire(wire), source=str(client_id))
            except (KeyError, TypeError, ValueError) as e:
                log.error("unreadable metrics from worker %s: %s", client_id, e)

    def on_abort(self, reason=None, **_kw) -> None:
        if self.notifier is not None:
            self.notifier.abort(self._run_info(), str(reason))

    def _close_recorder(self, **_kw) -> None:
        if self.recorder is not None:
            self.recorder.close()

    # -- live ------------------------------------------------------------------------------------
    def evaluate_now(self):
        if self.recorder is not None:
            self.gate.merge(self.drain())
        return self.gate.evaluate()

    def _live(self) -> None:
        every = self.ctx.profile.gate.eval_every_s
        while True:
            gevent.sleep(every)
            if self.gate.started_at is None or self._final_done:
                continue
            try:
                results = self.evaluate_now()
                log.info("%s", self.gate.console_line())
                self._after_live(results)
            except Exception:   # the gate must never take the run down
                log.exception("live criteria evaluation failed")

    def _after_live(self, results) -> None:
        elapsed = self.gate.elapsed_s()
        now_failing = {r.criterion.label for r in results if r.verdict == FAIL}
        for r in results:
            if r.verdict == FAIL and r.criterion.label not in self._failing and self.notifier is not None:
                self.notifier.criterion_failed(self._run_info(), r.to_dict())
        self._failing = now_failing
        if self.stopped_by is not None or self.ctx.aborted:
            return
        for r in results:
            c = r.criterion
            if c.abort_on_fail and r.verdict == FAIL and elapsed >= c.delay_abort_eval_s:
                self.stop_run(r)
                break

    def stop_run(self, result) -> None:
        """``abort_on_fail``: stop the whole run now (exit code 1)."""
        label = result.criterion.label
        self.stopped_by = label
        log.error("criterion %s failed (%s) and has abort_on_fail: stopping the run", label,
                  format_value(result.value, result.unit))
        if self.notifier is not None:
            self.notifier.abort(self._run_info(), f"abort_on_fail: {label} = {format_value(result.value, result.unit)}")
        gevent.spawn(self._stop)

    def _stop(self) -> None:
        ctx = self.ctx
        if ctx.role != "master":
            ctx.kill_switch()
        runner = ctx.environment.runner
        if runner is not None:
            runner.quit()

    # -- final -----------------------------------------------------------------------------------
    def on_quitting(self, environment=None, **_kw) -> None:
        if self._final_done:
            return
        self._final_done = True
        if self._loop is not None:
            self._loop.kill(block=False)
        ctx = self.ctx
        env = environment or ctx.environment
        gate = self.gate
        if self.recorder is not None:
            gate.merge(self.drain())
            self.recorder.close()
        gate.ended_at = time.time()
        results = gate.evaluate()
        baseline_section = None
        if self.baseline is not None:
            baseline_section = self._compare_baseline()
        if ctx.aborted:
            code = EXIT_SAFETY
            gate.state = "aborted"
        elif env.process_exit_code == EXIT_CONFIG:
            code = EXIT_CONFIG
            gate.state = "fail"
        else:
            failed = (gate.verdict == FAIL or self.stopped_by is not None
                      or (baseline_section is not None and baseline_section["verdict"] == "fail"))
            code = EXIT_FAILED if failed else EXIT_OK
            gate.state = "fail" if failed else "pass"
        env.process_exit_code = code
        self._print_final(results, code, baseline_section)
        self.summary = gate.summary(run_id=ctx.run_id, env=ctx.env.name, host=env.host, target=ctx.env.urls(),
                                    workers=self._workers(), exit_code=code, aborted=ctx.aborted,
                                    extra=self._extra(baseline_section))
        self.summary["run"]["stopped_by"] = self.stopped_by
        for listener in self.final_listeners:
            try:
                listener(self.summary)
            except Exception:
                log.exception("final listener failed")
        sink = self.state.sink
        if sink is not None:
            self.summary["sink"] = sink.stats()
        if ctx.reports_dir:
            self._write(self.summary, ctx.reports_dir)
        if self.notifier is not None:
            self.notifier.verdict(self.summary)
            self.notifier.flush(10.0)

    def _compare_baseline(self) -> dict | None:
        from ..reports import compare_summaries

        current = self.gate.summary(run_id=self.ctx.run_id, env=self.ctx.env.name, host=None, workers=0,
                                    exit_code=0, aborted=None)
        baseline = self.baseline
        assert baseline is not None   # called only with a baseline (on_quitting checks)
        try:
            comparison = compare_summaries(baseline, current, self.tolerance)
        except Exception as e:
            log.error("baseline comparison failed: %s", e)
            return {"path": self.baseline_path or "", "tolerance": self.tolerance, "verdict": "fail",
                    "regressions": [], "checked": 0}
        section = comparison.to_dict()
        section["path"] = self.baseline_path or ""
        return section

    def _print_final(self, results, code: int, baseline_section) -> None:
        gate = self.gate
        failed = [r for r in results if r.gate == FAIL]
        lines = ["", f"letrade-perf criteria — {self.ctx.profile.name} on {self.ctx.env.name}, run {self.ctx.run_id}",
                 gate.table()]
        if baseline_section is not None:
            regs = baseline_section.get("regressions") or []
            lines.append(f"baseline {baseline_section.get('path')}: {len(regs)} regression(s) beyond "
                         f"{baseline_section.get('tolerance', 0) * 100:g} %")
            for reg in regs[:20]:
                lines.append(f"  REGRESSION {reg.get('kind')} {reg.get('key')} {reg.get('figure')}: "
                             f"{reg.get('baseline')} → {reg.get('current')}")
        if self.ctx.aborted:
            lines.append(f"verdict: ABORTED ({self.ctx.aborted}) — exit code {code}")
        elif self.stopped_by:
            lines.append(f"verdict: FAIL — stopped by abort_on_fail criterion {self.stopped_by} — exit code {code}")
        else:
            regs = len((baseline_section or {}).get("regressions") or [])
            lines.append(f"verdict: {'FAIL' if code else 'PASS'} — {len(results) - len(failed)} of {len(results)} "
                         f"criteria passed" + (f", {regs} baseline regression(s)" if regs else "")
                         + f" — exit code {code}")
            for r in failed:
                lines.append(f"  FAILED: {r.criterion.label} = {format_value(r.value, r.unit)}"
                             + (f" ({r.reason})" if r.reason else ""))
        text = "\n".join(lines) + "\n"
        sys.stdout.write(text)
        sys.stdout.flush()
        for r in failed:
            log.error("criterion failed: %s = %s%s", r.criterion.label, format_value(r.value, r.unit),
                      f" ({r.reason})" if r.reason else "")

    def _workers(self) -> int:
        runner = self.ctx.environment.runner
        if self.ctx.role == "master":
            return max(len(self.state.worker_reports), getattr(runner, "worker_count", 0) or 0)
        return 0

    def _extra(self, baseline_section) -> dict:
        ctx = self.ctx
        s = ctx.summary()
        if ctx.role == "master":
            workers = s.get("workers") or {}
            pacing = {cid: r.get("pacer") for cid, r in workers.items()} or None
            ws = {cid: r.get("ws") for cid, r in workers.items()} or None
        else:
            pacing, ws = s.get("pacer"), s.get("ws")
        return {"baseline": baseline_section, "orders": s.get("orders") or {}, "pacing": pacing, "ws": ws,
                "sink": None}

    def _write(self, summary: dict, reports_dir: str) -> None:
        try:
            from ..reports import write_reports
            paths = write_reports(summary, reports_dir)
            log.info("reports: %s", ", ".join(os.path.basename(p) for p in paths.values()))
        except Exception as e:
            log.error("could not write the reports: %s", e)
            if self.ctx.environment.process_exit_code == EXIT_OK:
                self.ctx.environment.process_exit_code = EXIT_CONFIG

    def _run_info(self) -> dict:
        ctx = self.ctx
        return {"run_id": ctx.run_id, "profile": ctx.profile.name, "env": ctx.env.name}
